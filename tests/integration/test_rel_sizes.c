/*
 * Size bounds (contract section 6), against real Redis, the mock cluster
 * and the simulator: a valid create of 1,020,000 bytes is pushed and its
 * outcome (which would repeat the whole request) carries the request in
 * its truncated form; a 3.9 MB record is rejected too_large and its DLQ
 * copy holds its first bytes with x-truncated; the neighbours on the same
 * partition get their outcomes and the worker exits 0 at end of input.
 * `replay` leaves that cut copy where it is (replaying its first bytes
 * would only reject them again) and says why. A message.max.bytes above
 * the consumer's default fetch size still starts the worker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_rel_common.h"

#define WAIT_MS 120000

static char cfg[512];

static int setup(void **state)
{
	(void)state;
	if (h_start_all("rel-sizes", 1))
		return -1;
	return h_write_config("config.json", NULL, cfg, sizeof(cfg));
}

/* A create of won whose workOrderInfo makes the record total bytes. */
static char *padded_create(const char *id, const char *won, size_t total)
{
	json_t *ev = h_event_create(id, "acme", won, 1);
	char *small = json_dumps(ev, JSON_COMPACT);
	size_t base = strlen(small);
	free(small);
	json_t *order = json_object_get(ev, "order");
	json_t *info = json_object_get(order, "workOrderInfo");
	size_t have = strlen(json_string_value(info));
	size_t pad = total - base + have;
	char *s = malloc(pad + 1);
	memset(s, 'x', pad);
	s[pad] = '\0';
	json_object_set_new(order, "workOrderInfo", json_string(s));
	free(s);
	char *text = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	return text;
}

static void produce_text(const char *key, const char *text)
{
	assert_int_equal(h_produce_raw(H_TOPIC_ORDERS, -1, key, strlen(key),
				       text, strlen(text)),
			 0);
}

static void is_truncated_form(const json_t *v, size_t min_bytes)
{
	assert_true(json_is_object(v));
	assert_true(json_is_true(json_object_get(v, "truncated")));
	assert_true(json_integer_value(json_object_get(v, "bytes")) >
		    (json_int_t)min_bytes);
	const char *d = h_str(v, "sha256");
	assert_non_null(d);
	assert_int_equal(strlen(d), 64);
	assert_int_equal(strspn(d, "0123456789abcdef"), 64);
}

static void large_records(void **state)
{
	(void)state;
	h_begin("large_records");
	char *big = padded_create("big-1", "WO-BIG", 1020000);
	assert_int_equal(strlen(big), 1020000);
	/* 3.9 MB: the mock cluster keeps at most 5 MiB per partition */
	char *huge = padded_create("huge-1", "WO-HUGE", 3900000);
	json_t *small = h_event_create("small-1", "acme", "WO-SMALL", 1);
	char *st = json_dumps(small, JSON_COMPACT);
	json_decref(small);
	produce_text("acme/WO-BIG", big);   /* offset 0 */
	produce_text("acme/WO-HUGE", huge); /* offset 1 */
	produce_text("acme/WO-SMALL", st);  /* offset 2 */
	assert_int_equal(h_flush(20000), 0);

	h_worker_t *w = h_worker_run("worker", cfg, true);
	assert_non_null(w);
	int rc = h_worker_wait(w, WAIT_MS);
	if (rc != 0)
		h_worker_dump(w, 40);
	assert_int_equal(rc, 0);

	json_t *recs = h_consume(H_TOPIC_RESULTS, 3, 20000);
	assert_int_equal(json_array_size(recs), 3);
	assert_int_equal(h_check_schema(recs, "outcome.schema.json"), 0);
	json_t *by = rel_by_source(recs);
	json_t *o = rel_one(by, 0, 0);
	assert_non_null(o);
	assert_string_equal(h_str(o, "outcome"), "created");
	assert_string_equal(h_str(o, "eventId"), "big-1");
	is_truncated_form(json_object_get(o, "request"), 1000000);
	o = rel_one(by, 0, 1);
	assert_non_null(o);
	assert_string_equal(h_str(o, "outcome"), "rejected");
	assert_string_equal(h_str(o, "reason"), "too_large");
	o = rel_one(by, 0, 2);
	assert_non_null(o);
	assert_string_equal(h_str(o, "outcome"), "created");
	assert_string_equal(h_str(o, "eventId"), "small-1");
	/* what was pushed is whole: the big one reached Pruvan */
	json_t *p = h_sim_pushes_of("acme", "WO-BIG");
	assert_int_equal(json_array_size(p), 1);
	json_decref(p);

	json_t *dlq = h_consume(H_TOPIC_DLQ, 1, 20000);
	assert_int_equal(json_array_size(dlq), 1);
	json_t *d = rel_dlq_of(dlq, 0, 1);
	assert_non_null(d);
	json_t *h = json_object_get(d, "headers");
	assert_string_equal(h_str(h, "x-error-reason"), "too_large");
	char want[32];
	snprintf(want, sizeof(want), "%zu", strlen(huge));
	assert_string_equal(h_str(h, "x-truncated"), want);
	const char *raw = h_str(d, "raw");
	assert_non_null(raw);
	assert_true(strlen(raw) > 100000 && strlen(raw) < 1000000);
	assert_memory_equal(raw, huge, strlen(raw)); /* its first bytes */
	/* no retry storm: nothing was refused */
	assert_int_equal(h_worker_log_count(w, "cannot write a record"), 0);
	assert_int_equal(h_worker_log_count(w, "refused"), 0);
	json_decref(dlq);
	long orders = h_topic_count(H_TOPIC_ORDERS);
	const char *replay[] = {"replay", "-c", cfg, NULL};
	char *out = NULL;
	assert_int_equal(h_bridge_cmd(replay, 30000, &out), 0);
	assert_non_null(
	    strstr(out, "\"action\":\"skip\",\"why\":\"truncated\""));
	free(out);
	assert_int_equal(h_topic_count(H_TOPIC_ORDERS), orders);
	json_decref(by);
	json_decref(recs);
	free(big);
	free(huge);
	free(st);
	h_end();
}

/* A producer limit far below the records' size: every outcome still fits
 * (request truncated), and a poison record's DLQ copy is cut. */
static void small_message_max_bytes(void **state)
{
	(void)state;
	h_begin("small_message_max_bytes");
	long before = h_topic_count(H_TOPIC_RESULTS);
	long dlq_before = h_topic_count(H_TOPIC_DLQ);
	char *mid = padded_create("mid-1", "WO-MID", 60000);
	produce_text("acme/WO-MID", mid); /* offset 3 */
	char *poison = malloc(50001);
	memset(poison, '{', 50000);
	poison[50000] = '\0';
	produce_text("acme/WO-POISON", poison); /* offset 4 */
	assert_int_equal(h_flush(20000), 0);
	json_t *ov =
	    json_pack("{s:{s:s}}", "kafka", "message.max.bytes", "20000");
	char cfg2[512];
	assert_int_equal(h_write_config("small.json", ov, cfg2, sizeof(cfg2)),
			 0);
	json_decref(ov);
	h_worker_t *w = h_worker_run("worker-small", cfg2, true);
	assert_non_null(w);
	int rc = h_worker_wait(w, WAIT_MS);
	if (rc != 0)
		h_worker_dump(w, 40);
	assert_int_equal(rc, 0);
	json_t *recs = h_consume(H_TOPIC_RESULTS, before + 2, 20000);
	assert_int_equal(json_array_size(recs), before + 2);
	json_t *by = rel_by_source(recs);
	json_t *o = rel_one(by, 0, 3);
	assert_non_null(o);
	assert_string_equal(h_str(o, "outcome"), "created");
	is_truncated_form(json_object_get(o, "request"), 20000);
	o = rel_one(by, 0, 4);
	assert_non_null(o);
	assert_string_equal(h_str(o, "reason"), "invalid_json");
	json_t *dlq = h_consume(H_TOPIC_DLQ, dlq_before + 1, 20000);
	assert_int_equal(json_array_size(dlq), dlq_before + 1);
	json_t *d = rel_dlq_of(dlq, 0, 4);
	assert_non_null(d);
	assert_string_equal(h_str(json_object_get(d, "headers"), "x-truncated"),
			    "50000");
	assert_true(strlen(h_str(d, "raw")) < 20000);
	json_decref(dlq);
	json_decref(by);
	json_decref(recs);
	free(mid);
	free(poison);
	h_end();
}

/* A producer limit above the consumer's default fetch size (1 MB): the
 * fetch follows it (librdkafka refuses a fetch.max.bytes below
 * message.max.bytes), so the worker starts and drains as usual. */
static void large_message_max_bytes(void **state)
{
	(void)state;
	h_begin("large_message_max_bytes");
	long before = h_topic_count(H_TOPIC_RESULTS);
	json_t *ev = h_event_create("lmb-1", "acme", "WO-LMB", 1);
	char *text = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	produce_text("acme/WO-LMB", text);
	assert_int_equal(h_flush(20000), 0);
	json_t *ov =
	    json_pack("{s:{s:s}}", "kafka", "message.max.bytes", "3000000");
	char cfg3[512];
	assert_int_equal(h_write_config("large.json", ov, cfg3, sizeof(cfg3)),
			 0);
	json_decref(ov);
	h_worker_t *w = h_worker_run("worker-large", cfg3, true);
	assert_non_null(w);
	int rc = h_worker_wait(w, WAIT_MS);
	if (rc != 0)
		h_worker_dump(w, 40);
	assert_int_equal(rc, 0);
	json_t *recs = h_consume(H_TOPIC_RESULTS, before + 1, 20000);
	assert_int_equal(json_array_size(recs), before + 1);
	const char *outcome = NULL;
	for (size_t i = 0; i < json_array_size(recs); i++) {
		json_t *o = json_object_get(json_array_get(recs, i), "value");
		const char *id = h_str(o, "eventId");
		if (id && strcmp(id, "lmb-1") == 0)
			outcome = h_str(o, "outcome");
	}
	assert_non_null(outcome);
	assert_string_equal(outcome, "created");
	json_decref(recs);
	free(text);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(large_records),
	    cmocka_unit_test(small_message_max_bytes),
	    cmocka_unit_test(large_message_max_bytes),
	};
	return cmocka_run_group_tests(tests, setup, h_group_teardown);
}
