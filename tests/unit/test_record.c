/* record.c: the outcome record's text in its three forms and the DLQ
 * copy's headers, built from plain structs (no broker, no clock). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "produce.h"
#include "record.h"

/* A pushed, relayed-free record with every optional field set. */
static pl_record_t full_record(json_t *warnings, json_t *withheld)
{
	return (pl_record_t){
	    .event_id = "e-1",
	    .source = "orders",
	    .account = "acme",
	    .work_order_number = "WO-7",
	    .outcome = PB_OUTCOME_CREATED,
	    .reason = PB_REASON_NONE,
	    .message = "",
	    .warnings = warnings,
	    .withheld = withheld,
	    .pushed = true,
	    .request_text = "{\"workOrderNumber\":\"WO-7\"}",
	    .http_status = 200,
	    .body_json = "{\"status\":\"ok\"}",
	    .batch_size = 3,
	    .attempts = 2,
	    .partition = 5,
	    .offset = 42,
	    .processed_at = "2026-12-01T11:00:00.000Z",
	    .recovered = true,
	    .schema_id = 17,
	};
}

static json_t *parse(char *text)
{
	assert_non_null(text);
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	if (!j)
		fail_msg("not JSON (%s): %s", e.text, text);
	free(text);
	return j;
}

static const char *str_of(const json_t *j, const char *k)
{
	return json_string_value(json_object_get(j, k));
}

static long long int_of(const json_t *j, const char *k)
{
	const json_t *v = json_object_get(j, k);
	if (!json_is_integer(v))
		fail_msg("%s is not an integer", k);
	return json_integer_value(v);
}

static void every_field_whole(void **state)
{
	(void)state;
	json_t *w = json_pack("[{s:s}]", "code", "renamed_field");
	json_t *wh = json_pack("[s]", "notes");
	pl_record_t r = full_record(w, wh);
	json_t *j = parse(pl_record_text(&r, PL_RECORD_WHOLE));
	assert_string_equal(str_of(j, "eventId"), "e-1");
	assert_string_equal(str_of(j, "source"), "orders");
	assert_string_equal(str_of(j, "account"), "acme");
	assert_string_equal(str_of(j, "workOrderNumber"), "WO-7");
	assert_string_equal(str_of(j, "outcome"), "created");
	assert_true(json_is_null(json_object_get(j, "reason")));
	assert_true(json_is_null(json_object_get(j, "message")));
	assert_true(json_equal(json_object_get(j, "warnings"), w));
	assert_true(json_equal(json_object_get(j, "withheld"), wh));
	assert_string_equal(
	    str_of(json_object_get(j, "request"), "workOrderNumber"), "WO-7");
	json_t *resp = json_object_get(j, "response");
	assert_int_equal(int_of(resp, "httpStatus"), 200);
	assert_string_equal(str_of(json_object_get(resp, "body"), "status"),
			    "ok");
	assert_int_equal(int_of(j, "batchSize"), 3);
	assert_int_equal(int_of(j, "attempts"), 2);
	assert_int_equal(int_of(j, "partition"), 5);
	assert_int_equal(int_of(j, "offset"), 42);
	assert_string_equal(str_of(j, "processedAt"),
			    "2026-12-01T11:00:00.000Z");
	assert_true(json_is_true(json_object_get(j, "recovered")));
	assert_int_equal(int_of(j, "schemaId"), 17);
	assert_null(json_object_get(j, "headers"));
	assert_null(json_object_get(j, "item"));
	assert_null(json_object_get(j, "kind"));
	json_decref(j);
	json_decref(w);
	json_decref(wh);
}

/* Not pushed: request and response null, attempts 0 whatever was set;
 * optional members (batchSize, recovered, schemaId) absent. */
static void not_pushed_and_optional_absent(void **state)
{
	(void)state;
	pl_record_t r = full_record(NULL, NULL);
	r.pushed = false;
	r.recovered = false;
	r.schema_id = -1;
	r.outcome = PB_OUTCOME_REJECTED;
	r.reason = PB_REASON_INVALID_JSON;
	r.message = "not JSON: fix the producer";
	json_t *j = parse(pl_record_text(&r, PL_RECORD_WHOLE));
	assert_string_equal(str_of(j, "outcome"), "rejected");
	assert_string_equal(str_of(j, "reason"), "invalid_json");
	assert_string_equal(str_of(j, "message"), "not JSON: fix the producer");
	assert_true(json_is_null(json_object_get(j, "request")));
	assert_true(json_is_null(json_object_get(j, "response")));
	assert_int_equal(int_of(j, "attempts"), 0);
	assert_int_equal(json_array_size(json_object_get(j, "warnings")), 0);
	assert_null(json_object_get(j, "batchSize"));
	assert_null(json_object_get(j, "recovered"));
	assert_null(json_object_get(j, "schemaId"));
	json_decref(j);
}

/* A pushed record whose answer had no body, in a batch of one. */
static void pushed_without_body(void **state)
{
	(void)state;
	pl_record_t r = full_record(NULL, NULL);
	r.body_json = NULL;
	r.batch_size = 1;
	json_t *j = parse(pl_record_text(&r, PL_RECORD_WHOLE));
	assert_true(json_is_null(
	    json_object_get(json_object_get(j, "response"), "body")));
	assert_null(json_object_get(j, "batchSize"));
	json_decref(j);
}

static void assert_truncated(const json_t *part, size_t bytes)
{
	assert_true(json_is_true(json_object_get(part, "truncated")));
	assert_int_equal(int_of(part, "bytes"), bytes);
	assert_int_equal(strlen(str_of(part, "sha256")), 64);
}

/* Cut: request and item become {truncated, bytes, sha256}; warnings stay.
 * Minimal: warnings and withheld go too. */
static void cut_and_minimal_forms(void **state)
{
	(void)state;
	json_t *w = json_pack("[{s:s}]", "code", "renamed_field");
	json_t *item = json_pack("{s:s}", "note", "roof leaks");
	pl_record_t r = full_record(w, NULL);
	r.outcome = PB_OUTCOME_RELAYED;
	r.has_item = true;
	r.kind = "survey";
	r.item = item;
	json_t *j = parse(pl_record_text(&r, PL_RECORD_WHOLE));
	assert_string_equal(str_of(j, "kind"), "survey");
	assert_true(json_equal(json_object_get(j, "item"), item));
	json_decref(j);

	j = parse(pl_record_text(&r, PL_RECORD_CUT));
	assert_truncated(json_object_get(j, "request"), strlen(r.request_text));
	char *item_text = json_dumps(item, JSON_COMPACT);
	assert_truncated(json_object_get(j, "item"), strlen(item_text));
	free(item_text);
	assert_int_equal(json_array_size(json_object_get(j, "warnings")), 1);
	assert_string_equal(str_of(j, "kind"), "survey");
	json_decref(j);

	j = parse(pl_record_text(&r, PL_RECORD_MINIMAL));
	assert_int_equal(json_array_size(json_object_get(j, "warnings")), 0);
	assert_int_equal(json_array_size(json_object_get(j, "withheld")), 0);
	assert_truncated(json_object_get(j, "request"), strlen(r.request_text));
	json_decref(j);
	json_decref(w);
	json_decref(item);
}

/* The first form that fits the budget; the minimal one when none does. */
static void within_budget(void **state)
{
	(void)state;
	char big[4096];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	json_t *req = json_pack("{s:s}", "notes", big);
	json_t *w = json_pack("[{s:s}]", "code", big);
	pl_record_t r = full_record(w, NULL);
	r.request_text = NULL;
	r.request = req;
	char *whole = pl_record_text(&r, PL_RECORD_WHOLE);
	char *cut = pl_record_text(&r, PL_RECORD_CUT);
	char *minimal = pl_record_text(&r, PL_RECORD_MINIMAL);
	assert_true(strlen(minimal) < strlen(cut));
	assert_true(strlen(cut) < strlen(whole));

	char *v = pl_record_text_within(&r, PL_RECORD_WHOLE, strlen(whole));
	assert_string_equal(v, whole);
	free(v);
	v = pl_record_text_within(&r, PL_RECORD_WHOLE, strlen(whole) - 1);
	assert_string_equal(v, cut);
	free(v);
	v = pl_record_text_within(&r, PL_RECORD_WHOLE, strlen(cut) - 1);
	assert_string_equal(v, minimal);
	free(v);
	/* the length handed back is the text's (the producer takes it) */
	size_t len = 0;
	v = pl_record_text_within_len(&r, PL_RECORD_WHOLE, strlen(whole) - 1,
				      &len);
	assert_string_equal(v, cut);
	assert_int_equal(len, strlen(cut));
	free(v);
	v = pl_record_text_within(&r, PL_RECORD_WHOLE, 10);
	assert_string_equal(v, minimal); /* nothing fits: the smallest */
	free(v);
	/* a record already made minimal stays minimal */
	v = pl_record_text_within(&r, PL_RECORD_MINIMAL, strlen(whole));
	assert_string_equal(v, minimal);
	free(v);
	free(whole);
	free(cut);
	free(minimal);
	json_decref(req);
	json_decref(w);
}

/* The input's headers as a "headers" object, in every form. */
static void headers_object(void **state)
{
	(void)state;
	rd_kafka_headers_t *h = rd_kafka_headers_new(2);
	rd_kafka_header_add(h, "x-tenant", -1, "north", -1);
	rd_kafka_header_add(h, "traceparent", -1, "00-abc", -1);
	pl_record_t r = full_record(NULL, NULL);
	r.headers = h;
	for (int f = PL_RECORD_WHOLE; f <= PL_RECORD_MINIMAL; f++) {
		json_t *j = parse(pl_record_text(&r, (pl_record_form_t)f));
		json_t *o = json_object_get(j, "headers");
		assert_string_equal(str_of(o, "x-tenant"), "north");
		assert_string_equal(str_of(o, "traceparent"), "00-abc");
		json_decref(j);
	}
	rd_kafka_headers_destroy(h);
}

static void headers_size(void **state)
{
	(void)state;
	assert_int_equal(pl_record_headers_size(NULL, false, 1000), 0);
	rd_kafka_headers_t *h = rd_kafka_headers_new(2);
	rd_kafka_header_add(h, "a", -1, "12345", -1);
	rd_kafka_header_add(h, "bb", -1, "1", -1);
	size_t want =
	    pb_produce_header_size("a", 5) + pb_produce_header_size("bb", 1);
	assert_int_equal(pl_record_headers_size(h, false, 1000), want);
	assert_int_equal(pl_record_headers_size(h, true, 1000), 0);
	/* more than half the record bound: the record goes without them */
	assert_int_equal(pl_record_headers_size(h, false, want * 2), want);
	assert_int_equal(pl_record_headers_size(h, false, want * 2 - 2), 0);
	rd_kafka_headers_destroy(h);
}

static const char *hdr(const rd_kafka_headers_t *h, const char *name)
{
	static char buf[8192];
	const void *v;
	size_t n;
	if (rd_kafka_header_get_last(h, name, &v, &n))
		return NULL;
	assert_true(n < sizeof(buf));
	memcpy(buf, v, n);
	buf[n] = '\0';
	return buf;
}

static size_t headers_total(const rd_kafka_headers_t *h)
{
	size_t n = 0, vlen;
	const char *name;
	const void *v;
	for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &v, &vlen);
	     i++)
		n += pb_produce_header_size(name, vlen);
	return n;
}

static pl_dlq_t failed_push(const rd_kafka_headers_t *in)
{
	return (pl_dlq_t){
	    .headers = in,
	    .reason = PB_REASON_HTTP_4XX,
	    .message = "Pruvan answered 400",
	    .topic = "orders",
	    .partition = 3,
	    .offset = 99,
	    .attempts = 1,
	    .http_status = 400,
	    .body = "{\"error\":\"bad\"}",
	    .request_text = "{\"workOrderNumber\":\"WO-7\"}",
	    .record_max = 100000,
	};
}

static void dlq_headers_every_field(void **state)
{
	(void)state;
	rd_kafka_headers_t *in = rd_kafka_headers_new(1);
	rd_kafka_header_add(in, "x-tenant", -1, "north", -1);
	pl_dlq_t d = failed_push(in);
	size_t used = 7;
	rd_kafka_headers_t *h = pl_record_dlq_headers_new(&d, &used);
	assert_string_equal(hdr(h, "x-tenant"), "north");
	assert_string_equal(hdr(h, "x-error-reason"), "http_4xx");
	assert_string_equal(hdr(h, "x-error-message"), "Pruvan answered 400");
	assert_string_equal(hdr(h, "x-source-topic"), "orders");
	assert_string_equal(hdr(h, "x-source-partition"), "3");
	assert_string_equal(hdr(h, "x-source-offset"), "99");
	assert_string_equal(hdr(h, "x-attempts"), "1");
	assert_string_equal(hdr(h, "x-http-status"), "400");
	assert_string_equal(hdr(h, "x-response-body"), "{\"error\":\"bad\"}");
	assert_string_equal(hdr(h, "x-request"), d.request_text);
	assert_int_equal(used, 7 + headers_total(h));
	rd_kafka_headers_destroy(h);

	/* minimal: neither the input's headers nor the push details */
	d.minimal = true;
	used = 0;
	h = pl_record_dlq_headers_new(&d, &used);
	assert_null(hdr(h, "x-tenant"));
	assert_null(hdr(h, "x-http-status"));
	assert_null(hdr(h, "x-request"));
	assert_string_equal(hdr(h, "x-error-reason"), "http_4xx");
	assert_int_equal(used, headers_total(h));
	rd_kafka_headers_destroy(h);
	rd_kafka_headers_destroy(in);
}

/* A rejection (no push): no push details, an empty reason stays "". */
static void dlq_headers_rejection(void **state)
{
	(void)state;
	pl_dlq_t d = failed_push(NULL);
	d.attempts = 0;
	d.reason = PB_REASON_NONE;
	size_t used = 0;
	rd_kafka_headers_t *h = pl_record_dlq_headers_new(&d, &used);
	assert_string_equal(hdr(h, "x-error-reason"), "");
	assert_string_equal(hdr(h, "x-attempts"), "0");
	assert_null(hdr(h, "x-response-body"));
	assert_null(hdr(h, "x-request"));
	rd_kafka_headers_destroy(h);
}

/* A request over a quarter of the record bound goes truncated. */
static void dlq_request_truncated(void **state)
{
	(void)state;
	char req[2001];
	memset(req, 'r', sizeof(req) - 1);
	req[sizeof(req) - 1] = '\0';
	pl_dlq_t d = failed_push(NULL);
	d.request_text = req;
	d.record_max = 8000; /* a quarter: exactly 2000 fits */
	size_t used = 0;
	rd_kafka_headers_t *h = pl_record_dlq_headers_new(&d, &used);
	assert_string_equal(hdr(h, "x-request"), req);
	rd_kafka_headers_destroy(h);
	d.record_max = 7996;
	h = pl_record_dlq_headers_new(&d, &used);
	json_t *j = json_loads(hdr(h, "x-request"), 0, NULL);
	assert_non_null(j);
	assert_truncated(j, 2000);
	json_decref(j);
	rd_kafka_headers_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_field_whole),
	    cmocka_unit_test(not_pushed_and_optional_absent),
	    cmocka_unit_test(pushed_without_body),
	    cmocka_unit_test(cut_and_minimal_forms),
	    cmocka_unit_test(within_budget),
	    cmocka_unit_test(headers_object),
	    cmocka_unit_test(headers_size),
	    cmocka_unit_test(dlq_headers_every_field),
	    cmocka_unit_test(dlq_headers_rejection),
	    cmocka_unit_test(dlq_request_truncated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
