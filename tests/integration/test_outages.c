/*
 * The worker's neighbours going away mid-run, while it keeps running:
 *   - every Kafka broker down, then up again: no event lost, none with two
 *     outcomes, none pushed twice;
 *   - Redis killed (SIGKILL) and restarted empty: the worker stops taking
 *     events, /readyz answers 503, and it resumes by itself once Redis is
 *     back; every event gets exactly one outcome and one push.
 * Both workers are stopped with SIGTERM at the end and must exit 0.
 *   - SIGTERM while every broker is down and outcomes are not committed
 *     yet: the worker still exits 0, within worker.shutdownGraceMs, the
 *     4 s its last commit and group leave may take, and the session
 *     timeout librdkafka then waits for a coordinator (librdkafka's own
 *     synchronous commit would wait without end), and it logs that the
 *     final commit failed.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define WAIT_MS	  90000
#define ORDERS	  8
#define PER_ORDER 3

H_SUITE("outages", 3)

/* Every event of prefix: exactly one outcome (with allow_dup: plus any
 * number of "duplicate" ones), created or updated, and its effect pushed
 * exactly once. */
static void check_exactly_once(json_t *recs, const char *prefix, bool allow_dup)
{
	assert_int_equal(h_check_schema(recs, "outcome.schema.json"), 0);
	json_t *by = h_by_event(recs);
	if (allow_dup) { /* drop the duplicates, keep the rest */
		const char *id;
		json_t *list;
		json_object_foreach(by, id, list)
		{
			for (size_t i = json_array_size(list); i-- > 0;)
				if (!strcmp(h_str(json_array_get(list, i),
						  "outcome"),
					    "duplicate"))
					json_array_remove(list, i);
		}
	}
	for (int o = 0; o < ORDERS; o++) {
		char won[64];
		snprintf(won, sizeof(won), "WO-%s-%02d", prefix, o);
		json_t *pushes = h_sim_pushes_of("acme", won);
		for (int k = 0; k < PER_ORDER; k++) {
			char id[64];
			snprintf(id, sizeof(id), "%s-%02d-%d", prefix, o, k);
			json_t *x = h_one(by, id);
			if (!x)
				fail_msg("%s: not exactly one outcome", id);
			const char *oc = h_str(x, "outcome");
			if (strcmp(oc, k ? "updated" : "created"))
				fail_msg("%s: %s (%s)", id, oc,
					 h_str(x, "message"));
			size_t i, n = 0;
			json_t *p;
			json_array_foreach(pushes, i, p)
			{
				const char *info =
				    h_str(json_object_get(p, "workOrder"),
					  "workOrderInfo");
				if (info && !strcmp(info, id))
					n++;
			}
			if (n != 1)
				fail_msg("%s: pushed %zu times", id, n);
		}
		json_decref(pushes);
	}
	json_decref(by);
}

/* Events of prefix without an outcome other than duplicate. */
static int count_missing(const json_t *recs, const char *prefix)
{
	json_t *by = h_by_event(recs);
	int missing = 0;
	for (int o = 0; o < ORDERS; o++) {
		for (int k = 0; k < PER_ORDER; k++) {
			char id[64];
			snprintf(id, sizeof(id), "%s-%02d-%d", prefix, o, k);
			bool real = false;
			size_t i;
			json_t *x;
			json_array_foreach(json_object_get(by, id), i, x) real =
			    real || strcmp(h_str(x, "outcome"), "duplicate");
			missing += !real;
		}
	}
	json_decref(by);
	return missing;
}

static void broker_down_and_back(void **state)
{
	(void)state;
	h_begin("broker_down_and_back");
	char cfg[512];
	/* slow pushes, one order each: the outage comes mid-run, and the
	 * assignment is lost while pushes with later events of their orders
	 * waiting behind them are on the wire */
	json_t *ov = json_pack("{s:{s:i,s:i}}", "pruvan", "batchMaxOrders", 1,
			       "maxInFlight", 1);
	assert_int_equal(h_write_config("kafka.json", ov, cfg, sizeof(cfg)), 0);
	json_decref(ov);
	assert_int_equal(h_sim_faults("{\"latencyMs\":1500}"), 0);
	long before = h_topic_count(H_TOPIC_RESULTS);
	assert_int_equal(h_produce_series("b", "acme", ORDERS, PER_ORDER), 0);
	const long total = ORDERS * PER_ORDER;

	h_worker_t *w = h_worker_run("worker-kafka", cfg, false);
	assert_non_null(w);
	int port = h_worker_ops_port(w, 20000);
	assert_true(port > 0);
	assert_true(h_await_count(H_TOPIC_RESULTS, before + 3, WAIT_MS) >=
		    before + 3);
	json_t *st = h_sim_stats();
	int64_t reqs = json_integer_value(json_object_get(st, "requests"));
	json_decref(st);

	assert_int_equal(h_kafka_set_down(true), 0);
	/* the worker goes on pushing what it holds, and stays down past
	 * the session timeout: its partitions are lost */
	bool lost = h_worker_log_has(w, "partitions lost", 30000);
	/* not consuming, Kafka unreachable: not ready (contract 8) */
	bool unready = h_await_http_status(port, "/readyz", 503, 10000) == 503;
	json_t *st2 = h_sim_stats();
	int64_t r = json_integer_value(json_object_get(st2, "requests"));
	json_decref(st2);
	/* (no h_topic_count while down: librdkafka 2.0.2's watermark query
	 * does not honour its timeout against a down mock broker, and the
	 * harness producer's handle stays slow after the outage; h_consume
	 * uses a fresh handle) */
	assert_int_equal(h_kafka_set_down(false), 0);
	assert_true(lost);
	assert_true(unready);
	assert_true(r > reqs);

	/* back: it rejoins, gets its partitions again and finishes */
	int64_t deadline = pb_mono_ms() + WAIT_MS;
	while (h_worker_log_count(w, "partitions assigned") < 2 &&
	       pb_mono_ms() < deadline)
		h_nap_ms(50);
	assert_true(h_worker_log_count(w, "partitions assigned") >= 2);
	/* done when every event has an outcome that is not a duplicate */
	json_t *all = NULL;
	int missing = -1;
	deadline = pb_mono_ms() + WAIT_MS;
	while (missing != 0 && pb_mono_ms() < deadline) {
		json_decref(all);
		all = h_consume(H_TOPIC_RESULTS, before + total, 5000);
		missing = count_missing(all, "b");
	}
	if (missing)
		fail_msg("%d events without a real outcome", missing);
	assert_true(h_await_http_status(port, "/readyz", 200, 30000) == 200);
	assert_int_equal(h_worker_signal(w, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w, 30000), 0);
	json_decref(all);
	all = h_consume(H_TOPIC_RESULTS, before + total, 15000);
	/* events whose outcome was out but not committed when the
	 * partitions were lost come again: reported duplicate, not pushed */
	check_exactly_once(all, "b", true);
	json_decref(all);
	json_decref(h_sim_delete("/_sim/faults"));
	h_end();
}

static void redis_killed_and_restarted(void **state)
{
	(void)state;
	h_begin("redis_killed_and_restarted");
	char cfg[512];
	json_t *ov = json_pack("{s:{s:i,s:i}}", "pruvan", "batchMaxOrders", 1,
			       "maxInFlight", 1);
	assert_int_equal(h_write_config("redis.json", ov, cfg, sizeof(cfg)), 0);
	json_decref(ov);
	assert_int_equal(h_sim_faults("{\"latencyMs\":150}"), 0);
	long before = h_topic_count(H_TOPIC_RESULTS);
	assert_int_equal(h_produce_series("r", "acme", ORDERS, PER_ORDER), 0);
	const long total = ORDERS * PER_ORDER;

	h_worker_t *w = h_worker_run("worker-redis", cfg, false);
	assert_non_null(w);
	int port = h_worker_ops_port(w, 20000);
	assert_true(port > 0);
	assert_true(h_await_http_status(port, "/readyz", 200, 30000) == 200);
	assert_true(h_await_count(H_TOPIC_RESULTS, before + 4, WAIT_MS) >=
		    before + 4);

	h_redis_kill();
	bool unready = h_await_http_status(port, "/readyz", 503, 15000) == 503;
	bool logged = h_worker_log_has(w, "Redis unreachable", 5000);
	long during = h_topic_count(H_TOPIC_RESULTS);
	assert_int_equal(h_redis_restart(), 0);
	assert_true(unready);
	assert_true(logged);
	assert_true(during < before + total);

	assert_true(h_worker_log_has(w, "Redis reachable again", 30000));
	assert_true(h_await_http_status(port, "/readyz", 200, 30000) == 200);
	assert_true(h_await_count(H_TOPIC_RESULTS, before + total, WAIT_MS) >=
		    before + total);
	assert_int_equal(h_worker_signal(w, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w, 30000), 0);
	json_t *all = h_consume(H_TOPIC_RESULTS, before + total, 15000);
	assert_int_equal(json_array_size(all), before + total);
	check_exactly_once(all, "r", false);
	json_decref(all);
	json_decref(h_sim_delete("/_sim/faults"));
	h_end();
}

#define STOP_GRACE_MS 3000
#define STOP_SPARE_MS 4000 /* PL_EXIT_SPARE_MS: the last commit and leave */
/* then librdkafka keeps a consumer whose commits wait for a coordinator
 * until session.timeout.ms (the harness's 6000) after its close began */
#define STOP_SESSION_MS 6000
/* what a loaded machine (CI, ASan) adds to those three waits */
#define STOP_MARGIN_MS 3000

/* Every broker down, then SIGTERM: w exits 0 in time (with
 * commit_failed: saying the final commit failed); the brokers are up again
 * after. */
static void stop_with_brokers_down(h_worker_t *w, bool commit_failed)
{
	assert_int_equal(h_kafka_set_down(true), 0);
	int64_t t0 = pb_mono_ms();
	assert_int_equal(h_worker_signal(w, SIGTERM), 0);
	int rc = h_worker_wait(w, STOP_GRACE_MS + STOP_SPARE_MS +
				      STOP_SESSION_MS + 20000);
	int64_t took = pb_mono_ms() - t0;
	if (rc < 0)
		h_worker_signal(w, SIGKILL);
	assert_int_equal(h_kafka_set_down(false), 0);
	fprintf(stderr, "[test] exited %d after %lld ms\n", rc,
		(long long)took);
	assert_int_equal(rc, 0);
	assert_true(took <= STOP_GRACE_MS + STOP_SPARE_MS + STOP_SESSION_MS +
				STOP_MARGIN_MS);
	if (commit_failed)
		assert_true(h_worker_log_has(w, "final commit failed", 1000));
}

static void sigterm_with_brokers_down(void **state)
{
	(void)state;
	h_begin("sigterm_with_brokers_down");
	char cfg[512];
	/* nothing committed by the timer: the final commit has work to do */
	json_t *ov =
	    json_pack("{s:{s:s},s:{s:i}}", "kafka", "auto.commit.interval.ms",
		      "600000", "worker", "shutdownGraceMs", STOP_GRACE_MS);
	assert_int_equal(h_write_config("down-stop.json", ov, cfg, sizeof(cfg)),
			 0);
	json_decref(ov);
	long before = h_topic_count(H_TOPIC_RESULTS);
	assert_int_equal(h_produce_series("t", "acme", ORDERS, PER_ORDER), 0);
	const long total = ORDERS * PER_ORDER;
	h_worker_t *w = h_worker_run("worker-down-stop", cfg, false);
	assert_non_null(w);
	assert_true(h_await_count(H_TOPIC_RESULTS, before + total, WAIT_MS) >=
		    before + total);
	stop_with_brokers_down(w, true);

	/* the same at once after an assignment (the group's session times
	 * out while the final commit waits, and the revoke it brings must
	 * be served): an earlier build never exited */
	w = h_worker_run("worker-down-stop-2", cfg, false);
	assert_non_null(w);
	assert_true(h_worker_log_has(w, "partitions assigned", 30000));
	stop_with_brokers_down(w, false);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(broker_down_and_back),
	    cmocka_unit_test(redis_killed_and_restarted),
	    cmocka_unit_test(sigterm_with_brokers_down),
	};
	return cmocka_run_group_tests(tests, h_suite_setup, h_suite_teardown);
}
