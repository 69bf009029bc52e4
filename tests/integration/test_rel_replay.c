/*
 * Records rejected as they are read (contract section 6), against real
 * Redis, the mock cluster and the simulator: "not json at all", a NULL
 * value (a tombstone) and a valid create on one partition. The NULL value
 * is rejected empty_record and its DLQ copy keeps the NULL value. A second
 * consumer group then reads the same offsets again (what a restart before
 * the offset commit does): every record, the unreadable ones included, is
 * reported duplicate and nothing reaches the DLQ or Pruvan twice.
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

#define WAIT_MS 90000

static char cfg[512], cfg2[512];

static int setup(void **state)
{
	(void)state;
	if (h_start_all("rel-replay", 1))
		return -1;
	json_t *ov =
	    json_pack("{s:{s:s}}", "kafka", "group.id", "pb-it-replay");
	int rc = h_write_config("config.json", NULL, cfg, sizeof(cfg)) ||
		 h_write_config("replay.json", ov, cfg2, sizeof(cfg2));
	json_decref(ov);
	return rc;
}

static void run_to_end(const char *label, const char *c)
{
	h_worker_t *w = h_worker_run(label, c, true);
	assert_non_null(w);
	int rc = h_worker_wait(w, WAIT_MS);
	if (rc != 0)
		h_worker_dump(w, 40);
	assert_int_equal(rc, 0);
}

static void rejected_then_replayed(void **state)
{
	(void)state;
	h_begin("rejected_then_replayed");
	assert_int_equal(
	    h_produce_nowait(H_TOPIC_ORDERS, "acme/WO-RP", "not json at all"),
	    0); /* offset 0 */
	assert_int_equal(h_produce_nowait(H_TOPIC_ORDERS, "acme/WO-RP", NULL),
			 0); /* offset 1 */
	json_t *ev = h_event_create("rp-1", "acme", "WO-RP", 1);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, false), 0);
	json_decref(ev); /* offset 2 */
	assert_int_equal(h_flush(10000), 0);

	run_to_end("first", cfg);
	json_t *recs = h_consume(H_TOPIC_RESULTS, 3, 15000);
	assert_int_equal(json_array_size(recs), 3);
	assert_int_equal(h_check_schema(recs, "outcome.schema.json"), 0);
	json_t *by = rel_by_source(recs);
	json_t *o = rel_one(by, 0, 0);
	assert_non_null(o);
	assert_string_equal(h_str(o, "reason"), "invalid_json");
	assert_true(json_is_null(json_object_get(o, "eventId")));
	o = rel_one(by, 0, 1);
	assert_non_null(o);
	assert_string_equal(h_str(o, "outcome"), "rejected");
	assert_string_equal(h_str(o, "reason"), "empty_record");
	o = rel_one(by, 0, 2);
	assert_non_null(o);
	assert_string_equal(h_str(o, "outcome"), "created");
	json_t *dlq = h_consume(H_TOPIC_DLQ, 2, 15000);
	assert_int_equal(json_array_size(dlq), 2);
	json_t *d = rel_dlq_of(dlq, 0, 1);
	assert_non_null(d);
	assert_true(json_is_null(json_object_get(d, "raw"))); /* NULL kept */
	assert_string_equal(
	    h_str(json_object_get(d, "headers"), "x-error-reason"),
	    "empty_record");
	d = rel_dlq_of(dlq, 0, 0);
	assert_non_null(d);
	assert_string_equal(h_str(d, "raw"), "not json at all");
	json_decref(dlq);
	json_decref(by);
	json_decref(recs);

	/* the same offsets again, as after a restart before the commit */
	run_to_end("replay", cfg2);
	recs = h_consume(H_TOPIC_RESULTS, 6, 15000);
	assert_int_equal(json_array_size(recs), 6);
	assert_int_equal(h_check_schema(recs, "outcome.schema.json"), 0);
	by = rel_by_source(recs);
	for (int off = 0; off < 3; off++) {
		char k[32];
		snprintf(k, sizeof(k), "0/%d", off);
		json_t *a = json_object_get(by, k);
		assert_int_equal(json_array_size(a), 2);
		assert_string_equal(h_str(json_array_get(a, 1), "outcome"),
				    "duplicate");
	}
	assert_int_equal(h_topic_count(H_TOPIC_DLQ), 2);
	json_t *p = h_sim_pushes_of("acme", "WO-RP");
	assert_int_equal(json_array_size(p), 1);
	json_decref(p);
	json_decref(by);
	json_decref(recs);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rejected_then_replayed),
	};
	return cmocka_run_group_tests(tests, setup, h_group_teardown);
}
