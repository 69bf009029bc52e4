/*
 * End to end: one create event on the orders topic becomes a Pruvan push
 * (seen by the simulator) and one outcome record on the results topic; a
 * backlog many times librdkafka's prefetch limit is consumed without
 * stalling between refills.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "harness.h"

H_SUITE("e2e", 2)

static void create_reaches_pruvan_and_results(void **state)
{
	(void)state;
	h_begin("create_reaches_pruvan_and_results");
	char cfg[512];
	assert_int_equal(h_write_config("config.json", NULL, cfg, sizeof(cfg)),
			 0);

	json_t *ev = h_event_create("e2e-1", "acme", "WO-1", 1);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
	json_decref(ev);

	h_worker_t *w = h_worker_run("worker", cfg, true);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, 60000), 0);

	json_t *recs = h_consume(H_TOPIC_RESULTS, 1, 10000);
	assert_non_null(recs);
	assert_int_equal(json_array_size(recs), 1);
	json_t *by = h_by_event(recs);
	json_t *o = h_one(by, "e2e-1");
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "outcome")),
			    "created");
	assert_string_equal(json_string_value(json_object_get(o, "account")),
			    "acme");
	assert_string_equal(
	    json_string_value(json_object_get(o, "workOrderNumber")), "WO-1");
	/* the outcome never carries the PushKey URL */
	char *text = json_dumps(o, 0);
	assert_null(strstr(text, "apiKey"));
	free(text);

	json_t *orders = h_sim_orders("acme");
	assert_non_null(orders);
	json_t *wo = json_object_get(orders, "WO-1");
	assert_non_null(wo);
	json_decref(orders);

	json_t *reqs = h_sim_requests("acme");
	assert_int_equal(json_array_size(reqs), 1);
	json_decref(reqs);

	assert_int_equal(h_worker_log_count(w, "apiKey"), 0);
	json_decref(by);
	json_decref(recs);
	h_end();
}

/*
 * librdkafka stops fetching while its queue is over
 * queued.max.messages.kbytes and looks again only when its broker thread
 * wakes, up to a second later; the worker wakes it (fetchwake.h). Here
 * every fetch brings one small batch per partition and goes over the limit
 * at once, so the backlog takes 50 refills: without the wake-ups, 600
 * events got 162 outcomes in 30 s (over a second per refill); with them,
 * 600 took 11 s including the group join. The 40 s bound sits between.
 */
static void backlog_over_the_prefetch_limit(void **state)
{
	(void)state;
	h_begin("backlog_over_the_prefetch_limit");
	enum { EVENTS = 400, PER_BATCH = 4 };
	json_t *ov =
	    json_pack("{s:{s:s,s:s}}", "kafka", "queued.max.messages.kbytes",
		      "1", "max.partition.fetch.bytes", "1024");
	char cfg[512];
	assert_int_equal(h_write_config("config.json", ov, cfg, sizeof(cfg)),
			 0);
	json_decref(ov);
	for (int i = 0; i < EVENTS; i++) {
		char id[32], wo[32];
		snprintf(id, sizeof(id), "backlog-%d", i);
		snprintf(wo, sizeof(wo), "WO-B%d", i);
		json_t *ev = h_event_create(id, "acme", wo, 1);
		assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, false), 0);
		json_decref(ev);
		if (i % PER_BATCH == PER_BATCH - 1) /* one small batch */
			assert_int_equal(h_flush(10000), 0);
	}
	assert_int_equal(h_flush(10000), 0);

	long before = h_topic_count(H_TOPIC_RESULTS);
	assert_true(before >= 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	h_worker_t *w = h_worker_run("backlog", cfg, false);
	assert_non_null(w);
	long got = h_await_count(H_TOPIC_RESULTS, before + EVENTS, 40000);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "[backlog] %ld of %d outcomes in %ld ms\n",
		got - before, EVENTS,
		(long)((t1.tv_sec - t0.tv_sec) * 1000 +
		       (t1.tv_nsec - t0.tv_nsec) / 1000000));
	assert_int_equal(got, before + EVENTS);
	assert_int_equal(h_worker_signal(w, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w, 30000), 0);
	/* "fetch_wakeups":"N" on the stop line */
	size_t len = 0;
	char *log = h_read_file(h_worker_log(w), &len);
	assert_non_null(log);
	const char *fw = strstr(log, "\"fetch_wakeups\":\"");
	assert_non_null(fw);
	assert_true(strtol(fw + strlen("\"fetch_wakeups\":\""), NULL, 10) >=
		    20);
	free(log);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(create_reaches_pruvan_and_results),
	    cmocka_unit_test(backlog_over_the_prefetch_limit),
	};
	return cmocka_run_group_tests(tests, h_suite_setup, h_suite_teardown);
}
