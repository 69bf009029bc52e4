/*
 * headers.h: the back office's Kafka headers carried through the worker
 * (contract section 6).
 *
 * An input record's headers (a W3C traceparent, a correlation id,
 * whatever the producer sets) are copied onto its outcome record and its
 * DLQ record, listed in the outcome's "headers" object, and put back by
 * replay. The worker's own DLQ annotations (x-error-*, x-source-*,
 * x-attempts, x-http-status, x-response-body, x-request, x-truncated,
 * x-replayed-from) are "reserved": never copied from an input onto a DLQ
 * record (which has its own) nor back onto a replayed record.
 *
 * Pure apart from librdkafka's header lists; never logs.
 */
#ifndef PB_HEADERS_H
#define PB_HEADERS_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

#include "jtext.h"

/* A W3C traceparent is 55 characters: 00-<32 hex>-<16 hex>-<2 hex>. */
#define PB_TRACEPARENT_LEN 55

/* The outcome's "headers" object holds at most this many bytes of names
 * and values (a producer may send up to the topic's limit in headers; the
 * outcome carries them twice, as Kafka headers and as JSON). */
#define PB_HEADERS_RENDER_MAX (64 * 1024)
/* A consumed message's headers, taken from it (the caller owns them and
 * the message has none left; taking instead of copying saves a list per
 * event); NULL when it has none. */
rd_kafka_headers_t *pb_headers_take_of_message(rd_kafka_message_t *m);

/* True for the worker's own DLQ annotations (see above). */
bool pb_header_reserved(const char *name);

/* Append every header of src (may be NULL) to dst, in order, leaving out
 * the reserved ones when skip_reserved. */
void pb_headers_add_all(rd_kafka_headers_t *dst, const rd_kafka_headers_t *src,
			bool skip_reserved);

/* An owned copy of h for one more record; NULL when h is NULL or empty. */
rd_kafka_headers_t *pb_headers_copy_new(const rd_kafka_headers_t *h);

/*
 * The outcome's "headers" member, `,"headers":{"name":"value",...}`,
 * appended to b; nothing when h is NULL or empty. A name given twice keeps
 * its last value; a NULL value is ""; bytes that are not UTF-8 become
 * U+FFFD, so the record stays valid JSON whatever the producer sent.
 * Headers beyond PB_HEADERS_RENDER_MAX bytes are left out of the object
 * (not off the record's Kafka headers), and `,"headersTruncated":true`
 * follows it then.
 */
void pb_headers_render(pb_jtext_t *b, const rd_kafka_headers_t *h);

/* The traceparent header's value into buf (>= PB_TRACEPARENT_LEN + 1),
 * when there is one of W3C form; false otherwise (buf "" then). */
bool pb_headers_traceparent(const rd_kafka_headers_t *h, char *buf,
			    size_t size);

#endif
