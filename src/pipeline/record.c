/*
 * record.c: the outcome record's text and the DLQ copy's headers (see
 * record.h).
 *
 * The text is written directly: a jansson tree of the envelope, dumped,
 * with the response body parsed again for every event, was a sixth of the
 * loop's CPU (docs/benchmarks.md). Nested values (warnings, request, item)
 * go through pb_jt_json. Every string is UTF-8: identifiers come from
 * parsed JSON and messages are formatted whole (pb_format_text).
 *
 * Must never: do I/O, read the clock, or see a task (record.h).
 */
#include "record.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "headers.h"
#include "jtext.h"
#include "produce.h"

static void sb_json(pb_jtext_t *b, const json_t *j, const char *dflt)
{
	if (j)
		pb_jt_json(b, j, false);
	else
		pb_jt_lit(b, dflt);
}

/* A nested part (request, item) whole, or in its truncated form (cut). */
static void jt_part(pb_jtext_t *b, const json_t *j, const char *text, bool cut)
{
	if (!cut) {
		if (text)
			pb_jt_lit(b, text);
		else
			sb_json(b, j, "null");
		return;
	}
	char *own = text ? NULL : pb_jt_dumps(j, false);
	const char *x = text ? text : own;
	pb_jt_truncated(b, x, x ? strlen(x) : 0);
	free(own);
}

static const char *reason_or_null(pb_reason_t r)
{
	return r == PB_REASON_NONE ? NULL : pb_reason_name(r);
}

/* An outcome's or a reason's name (outcome.h: lower-case ASCII words,
 * nothing to escape) as a JSON string, null for NULL, without the
 * escaping scan pb_jt_str makes of text from outside. */
static void jt_name(pb_jtext_t *b, const char *name)
{
	if (!name) {
		pb_jt_put(b, "null", 4);
		return;
	}
	pb_jt_put(b, "\"", 1);
	pb_jt_lit(b, name);
	pb_jt_put(b, "\"", 1);
}

/* request, response, attempts: what a push leaves on the record */
static void push_parts(pb_jtext_t *b, const pl_record_t *r, bool cut)
{
	pb_jt_lit(b, ",\"request\":");
	if (r->pushed)
		jt_part(b, r->request, r->request_text, cut);
	else
		pb_jt_lit(b, "null");
	pb_jt_lit(b, ",\"response\":");
	if (r->pushed) {
		pb_jt_lit(b, "{\"httpStatus\":");
		pb_jt_i64(b, (long long)r->http_status);
		pb_jt_lit(b, ",\"body\":");
		pb_jt_lit(b, r->body_json ? r->body_json : "null");
		pb_jt_lit(b, "}");
		if (r->batch_size > 1) {
			pb_jt_lit(b, ",\"batchSize\":");
			pb_jt_i64(b, r->batch_size);
		}
	} else {
		pb_jt_lit(b, "null");
	}
	pb_jt_lit(b, ",\"attempts\":");
	pb_jt_i64(b, r->pushed ? r->attempts : 0);
}

#define RECORD_TEXT_START 1024

/* pl_record_text, its length in *len */
static char *record_text_len(const pl_record_t *r, pl_record_form_t f,
			     size_t *len)
{
	bool cut = f >= PL_RECORD_CUT, minimal = f >= PL_RECORD_MINIMAL;
	/* most outcome records fit: grown from the default 512 bytes, nearly
	 * every record was copied once on the way (1% of the worker) */
	pb_jtext_t b = {.p = malloc(RECORD_TEXT_START)};
	b.cap = b.p ? RECORD_TEXT_START : 0;
	pb_jt_lit(&b, "{\"eventId\":");
	pb_jt_str(&b, r->event_id);
	pb_jt_lit(&b, ",\"source\":");
	pb_jt_str(&b, r->source);
	pb_jt_lit(&b, ",\"account\":");
	pb_jt_str(&b, r->account);
	pb_jt_lit(&b, ",\"workOrderNumber\":");
	pb_jt_str(&b, r->work_order_number);
	pb_jt_lit(&b, ",\"outcome\":");
	jt_name(&b, pb_outcome_name(r->outcome));
	pb_jt_lit(&b, ",\"reason\":");
	jt_name(&b, reason_or_null(r->reason));
	pb_jt_lit(&b, ",\"message\":");
	pb_jt_str(&b, r->message && r->message[0] ? r->message : NULL);
	pb_jt_lit(&b, ",\"warnings\":");
	sb_json(&b, minimal ? NULL : r->warnings, "[]");
	pb_jt_lit(&b, ",\"withheld\":");
	sb_json(&b, minimal ? NULL : r->withheld, "[]");
	push_parts(&b, r, cut);
	pb_jt_lit(&b, ",\"partition\":");
	pb_jt_i64(&b, r->partition);
	pb_jt_lit(&b, ",\"offset\":");
	pb_jt_i64(&b, (long long)r->offset);
	pb_jt_lit(&b, ",\"processedAt\":");
	pb_jt_str(&b, r->processed_at);
	if (r->recovered)
		pb_jt_lit(&b, ",\"recovered\":true");
	if (r->schema_id >= 0) {
		pb_jt_lit(&b, ",\"schemaId\":");
		pb_jt_i64(&b, (long long)r->schema_id);
	}
	pb_headers_render(&b, r->headers);
	if (r->has_item) {
		pb_jt_lit(&b, ",\"kind\":");
		pb_jt_str(&b, r->kind);
		pb_jt_lit(&b, ",\"item\":");
		jt_part(&b, r->item, NULL, cut);
	}
	pb_jt_lit(&b, "}");
	*len = b.len;
	return pb_jt_take(&b);
}

char *pl_record_text(const pl_record_t *r, pl_record_form_t f)
{
	size_t len;
	return record_text_len(r, f, &len);
}

char *pl_record_text_within_len(const pl_record_t *r, pl_record_form_t from,
				size_t budget, size_t *len)
{
	char *v = record_text_len(r, from, len);
	while (v && *len > budget && from < PL_RECORD_MINIMAL) {
		free(v);
		v = record_text_len(r, ++from, len);
	}
	return v;
}

char *pl_record_text_within(const pl_record_t *r, pl_record_form_t from,
			    size_t budget)
{
	size_t len;
	return pl_record_text_within_len(r, from, budget, &len);
}

size_t pl_record_headers_size(const rd_kafka_headers_t *h, bool minimal,
			      size_t record_max)
{
	if (!h || minimal)
		return 0;
	size_t n = 0;
	const char *name;
	const void *v;
	size_t vlen;
	for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &v, &vlen);
	     i++)
		n += pb_produce_header_size(name, vlen);
	return n <= record_max / 2 ? n : 0;
}

void pl_record_header_add(rd_kafka_headers_t *h, const char *name,
			  const char *v, size_t *used)
{
	size_t n = v ? strlen(v) : 0;
	rd_kafka_header_add(h, name, -1, v ? v : "", (ssize_t)n);
	*used += pb_produce_header_size(name, n);
}

/* x-request: whole while it takes at most a quarter of the record */
static void request_header_add(rd_kafka_headers_t *h, const char *req,
			       size_t record_max, size_t *used)
{
	if (strlen(req) <= record_max / 4) {
		pl_record_header_add(h, "x-request", req, used);
		return;
	}
	pb_jtext_t b = {0};
	pb_jt_truncated(&b, req, strlen(req));
	char *cut = pb_jt_take(&b);
	pl_record_header_add(h, "x-request", cut ? cut : "", used);
	free(cut);
}

rd_kafka_headers_t *pl_record_dlq_headers_new(const pl_dlq_t *d, size_t *used)
{
	char part[16], off[32], att[16];
	snprintf(part, sizeof(part), "%" PRId32, d->partition);
	snprintf(off, sizeof(off), "%" PRId64, d->offset);
	snprintf(att, sizeof(att), "%d", d->attempts);
	rd_kafka_headers_t *h = rd_kafka_headers_new(10);
	/* the back office's own headers first, then the DLQ's */
	size_t hsz =
	    pl_record_headers_size(d->headers, d->minimal, d->record_max);
	if (hsz) {
		pb_headers_add_all(h, d->headers, true);
		*used += hsz;
	}
	pl_record_header_add(h, "x-error-reason", pb_reason_name(d->reason),
			     used);
	pl_record_header_add(h, "x-error-message", d->message, used);
	pl_record_header_add(h, "x-source-topic", d->topic, used);
	pl_record_header_add(h, "x-source-partition", part, used);
	pl_record_header_add(h, "x-source-offset", off, used);
	pl_record_header_add(h, "x-attempts", att, used);
	if (d->attempts > 0 && !d->minimal) {
		char st[16];
		snprintf(st, sizeof(st), "%ld", d->http_status);
		pl_record_header_add(h, "x-http-status", st, used);
		pl_record_header_add(h, "x-response-body", d->body, used);
		if (d->request_text)
			request_header_add(h, d->request_text, d->record_max,
					   used);
	}
	return h;
}
