/*
 * record.h: the outcome record's text and the DLQ copy's headers
 * (contract sections 2 and 6), built from plain structs.
 *
 * Pure: no Kafka client, no clock, no pipeline; the caller fills a
 * pl_record_t or pl_dlq_t from its task (publish.c) and produces what
 * comes back. So every field and every truncated form is unit-tested
 * (tests/unit/test_record.c) without a broker.
 *
 * Forms. An outcome record is written whole; when that is larger than its
 * budget, with its request and item in their truncated form (size and
 * SHA-256 digest, jtext.h); when still larger, minimal (no warnings or
 * withheld fields either: what fits any topic). A DLQ copy's headers lose
 * the push details in the minimal form, and the input's own headers when
 * they would take more than half the record bound.
 *
 * Must never: write a PushKey (nothing here sees one), or return a text
 * that is not valid JSON.
 */
#ifndef PL_RECORD_H
#define PL_RECORD_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outcome.h"

typedef enum pl_record_form {
	PL_RECORD_WHOLE = 0,
	PL_RECORD_CUT,	   /* request and item truncated */
	PL_RECORD_MINIMAL, /* truncated, no warnings or withheld */
} pl_record_form_t;

/* An outcome record's fields; every pointer borrowed, NULL writes null
 * (warnings and withheld: []). */
typedef struct pl_record {
	const char *event_id, *source, *account, *work_order_number;
	pb_outcome_t outcome;
	pb_reason_t reason;  /* PB_REASON_NONE: null */
	const char *message; /* NULL or "": null */
	const json_t *warnings, *withheld;
	/* pushed: request, response and attempts are written */
	bool pushed;
	const json_t *request;	  /* the work order pushed, */
	const char *request_text; /* or its JSON text (preferred) */
	long http_status;
	const char *body_json; /* the response body as JSON text; NULL: null */
	int batch_size;	       /* written when > 1 */
	int attempts;
	int32_t partition;
	int64_t offset;
	const char *processed_at; /* RFC 3339 */
	bool recovered;
	int64_t schema_id;		   /* -1: not framed, not written */
	const rd_kafka_headers_t *headers; /* the input's; NULL: none */
	/* a relayed item: kind and item written (has_item) */
	bool has_item;
	const char *kind;
	const json_t *item;
} pl_record_t;

/* The record's text in form f. Owned; NULL when out of memory. */
char *pl_record_text(const pl_record_t *r, pl_record_form_t f);

/* The record's text in the first form from `from` on whose length is at
 * most budget bytes, or in the minimal form when none is. Owned; NULL when
 * out of memory. */
char *pl_record_text_within(const pl_record_t *r, pl_record_form_t from,
			    size_t budget);
/* The same, with the text's length in *len (not measured again). */
char *pl_record_text_within_len(const pl_record_t *r, pl_record_form_t from,
				size_t budget, size_t *len);

/* The size the input headers h take on a record (produce.h's count):
 * 0 when there are none, in the minimal form, and when they would take
 * more than half of record_max (the record then goes without them). */
size_t pl_record_headers_size(const rd_kafka_headers_t *h, bool minimal,
			      size_t record_max);

/* A DLQ copy's header fields; every pointer borrowed. */
typedef struct pl_dlq {
	const rd_kafka_headers_t *headers; /* the input's; NULL: none */
	pb_reason_t reason;
	const char *message, *topic;
	int32_t partition;
	int64_t offset;
	int attempts; /* > 0: the push details are written (not minimal) */
	bool minimal;
	long http_status;
	const char *body;	  /* the response body as received */
	const char *request_text; /* the work order pushed; NULL: none */
	size_t record_max;	  /* the producer's record bound */
} pl_dlq_t;

/* Add header name = v (NULL: empty) to h, counting its size into *used. */
void pl_record_header_add(rd_kafka_headers_t *h, const char *name,
			  const char *v, size_t *used);

/* The DLQ copy's headers (contract section 2): the input's own first (when
 * they fit, pl_record_headers_size), then x-error-reason, x-error-message,
 * x-source-topic, x-source-partition, x-source-offset, x-attempts and,
 * after a push and not minimal, x-http-status, x-response-body and
 * x-request (whole while at most a quarter of record_max, else truncated).
 * Adds their size to *used. Owned; rd_kafka_headers_destroy it. */
rd_kafka_headers_t *pl_record_dlq_headers_new(const pl_dlq_t *d, size_t *used);

#endif
