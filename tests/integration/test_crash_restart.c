/*
 * Stopping the worker (contract sections 7 and 8):
 *   - SIGKILL mid-batch (pushes on the wire, outcomes half published),
 *     then a new worker: every event ends with exactly one outcome that is
 *     neither a duplicate nor recovered, plus at most recovered copies and
 *     duplicates; the simulator saw each event's effect at least once, in
 *     order per order, and never again after its outcome was published;
 *   - SIGTERM: the worker drains what it holds, commits and exits 0; the
 *     next worker of the group does not redo a single published event;
 *   - SIGTERM while pushes hang: the worker hands its events back when the
 *     grace period ends, not a grace period later.
 * Every event carries its own eventId as workOrderInfo, so the simulator's
 * request log tells which event each push belonged to.
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
#define ORDERS	  10
#define PER_ORDER 4

H_SUITE("crash", 3)

static int64_t int_at(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void event_id(char *buf, size_t n, const char *prefix, int order, int k)
{
	snprintf(buf, n, "%s-%02d-%d", prefix, order, k);
}

static void order_won(char *buf, size_t n, const char *prefix, int order)
{
	snprintf(buf, n, "WO-%s-%02d", prefix, order);
}

static bool is_recovered(const json_t *o)
{
	return json_is_true(json_object_get(o, "recovered"));
}

/*
 * The checks shared by both tests, over the events of prefix:
 *  - each has at least one outcome other than duplicate, at most one of
 *    them not recovered, all of the same kind (created/updated);
 *  - with strict, exactly one outcome and it is not a duplicate;
 *  - the sim saw each event's effect (a 200 push carrying its info) at
 *    least once and none after the event's first outcome was processed;
 *    successful pushes of one order carry non-decreasing event numbers.
 */
static void check_events(json_t *by, const char *prefix, bool strict)
{
	for (int o = 0; o < ORDERS; o++) {
		char won[64];
		order_won(won, sizeof(won), prefix, o);
		json_t *pushes = h_sim_pushes_of("acme", won);
		int last_k = -1;
		for (int k = 0; k < PER_ORDER; k++) {
			char id[64];
			event_id(id, sizeof(id), prefix, o, k);
			json_t *list = json_object_get(by, id);
			if (strict && json_array_size(list) != 1)
				fail_msg(
				    "%s: %zu outcomes, expected exactly one",
				    id, json_array_size(list));
			size_t i, firsts = 0, real = 0;
			json_t *x;
			const char *kind = NULL;
			int64_t first_at = INT64_MAX;
			json_array_foreach(list, i, x)
			{
				const char *oc = h_str(x, "outcome");
				int64_t at = h_time_ms(h_str(x, "processedAt"));
				if (at < first_at)
					first_at = at;
				if (!strcmp(oc, "duplicate")) {
					if (strict)
						fail_msg("%s: duplicate", id);
					continue;
				}
				real++;
				if (!is_recovered(x))
					firsts++;
				if (kind && strcmp(kind, oc))
					fail_msg("%s: outcomes %s and %s", id,
						 kind, oc);
				kind = oc;
			}
			if (real == 0 || firsts > 1)
				fail_msg("%s: %zu outcomes, %zu not recovered",
					 id, real, firsts);
			if (k > 0 && strcmp(kind, "updated"))
				fail_msg("%s: %s, expected updated", id, kind);
			if (k == 0 && strcmp(kind, "created") &&
			    strcmp(kind, "updated"))
				fail_msg("%s: %s, expected created", id, kind);
			size_t seen = 0, late = 0;
			json_array_foreach(pushes, i, x)
			{
				const char *info =
				    h_str(json_object_get(x, "workOrder"),
					  "workOrderInfo");
				if (int_at(x, "status") != 200 || !info ||
				    strcmp(info, id))
					continue;
				seen++;
				if (h_time_ms(h_str(x, "receivedAt")) >
				    first_at)
					late++;
			}
			if (seen == 0)
				fail_msg("%s: the simulator never got it", id);
			if (late)
				fail_msg("%s: pushed %zu time(s) after its "
					 "outcome was published",
					 id, late);
			if (strict && seen != 1)
				fail_msg("%s: pushed %zu times", id, seen);
		}
		size_t i;
		json_t *x;
		json_array_foreach(pushes, i, x)
		{
			const char *info = h_str(
			    json_object_get(x, "workOrder"), "workOrderInfo");
			if (int_at(x, "status") != 200 || !info)
				continue;
			int k = (int)strtol(info + strlen(info) - 1, NULL, 10);
			if (k < last_k)
				fail_msg("%s: event %d pushed after event %d",
					 won, k, last_k);
			last_k = k;
		}
		json_decref(pushes);
	}
}

static json_t *outcomes_of(const char *prefix, json_t *recs)
{
	json_t *mine = json_array();
	size_t i;
	json_t *r;
	json_array_foreach(recs, i, r)
	{
		const char *id = h_str(json_object_get(r, "value"), "eventId");
		if (id && !strncmp(id, prefix, strlen(prefix)))
			json_array_append(mine, r);
	}
	return mine;
}

static void sigkill_mid_batch(void **state)
{
	(void)state;
	h_begin("sigkill_mid_batch");
	char cfg[512];
	json_t *ov = json_pack("{s:{s:i,s:i}}", "pruvan", "batchMaxOrders", 3,
			       "maxInFlight", 2);
	assert_int_equal(h_write_config("kill.json", ov, cfg, sizeof(cfg)), 0);
	json_decref(ov);
	assert_int_equal(h_sim_faults("{\"latencyMs\":150}"), 0);
	assert_int_equal(h_produce_series("k", "acme", ORDERS, PER_ORDER), 0);
	const long total = ORDERS * PER_ORDER;

	h_worker_t *w1 = h_worker_run("worker1", cfg, false);
	assert_non_null(w1);
	long seen = h_await_count(H_TOPIC_RESULTS, 8, WAIT_MS);
	assert_true(seen >= 8);
	assert_true(seen < total); /* mid-run, not after */
	json_t *st = h_sim_stats();
	assert_true(json_integer_value(json_object_get(st, "requests")) > 0);
	json_decref(st);
	assert_int_equal(h_worker_signal(w1, SIGKILL), 0);
	assert_int_equal(h_worker_wait(w1, 10000), 128 + SIGKILL);
	json_decref(h_sim_delete("/_sim/faults"));

	h_worker_t *w2 = h_worker_run("worker2", cfg, true);
	assert_non_null(w2);
	assert_int_equal(h_worker_wait(w2, WAIT_MS), 0);

	json_t *recs = h_consume(H_TOPIC_RESULTS, total, 15000);
	assert_true((long)json_array_size(recs) >= total);
	assert_int_equal(h_check_schema(recs, "outcome.schema.json"), 0);
	json_t *by = h_by_event(recs);
	check_events(by, "k", false);
	assert_int_equal(h_topic_count(H_TOPIC_DLQ), 0);
	json_decref(by);
	json_decref(recs);
	h_end();
}

static void sigterm_drains_and_commits(void **state)
{
	(void)state;
	h_begin("sigterm_drains_and_commits");
	char cfg[512];
	json_t *ov = json_pack("{s:{s:i,s:i}}", "pruvan", "batchMaxOrders", 2,
			       "maxInFlight", 1);
	assert_int_equal(h_write_config("term.json", ov, cfg, sizeof(cfg)), 0);
	json_decref(ov);
	long before = h_topic_count(H_TOPIC_RESULTS);
	assert_int_equal(h_sim_faults("{\"latencyMs\":100}"), 0);
	assert_int_equal(h_produce_series("t", "acme", ORDERS, PER_ORDER), 0);
	const long total = ORDERS * PER_ORDER;

	h_worker_t *w1 = h_worker_run("term1", cfg, false);
	assert_non_null(w1);
	long seen = h_await_count(H_TOPIC_RESULTS, before + 6, WAIT_MS);
	assert_true(seen >= before + 6);
	assert_true(seen < before + total);
	assert_int_equal(h_worker_signal(w1, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w1, 30000), 0);
	assert_true(h_worker_log_has(w1, "stopping: finishing in-flight", 0));
	assert_int_equal(h_worker_log_count(w1, "grace period over"), 0);
	long after_term = h_topic_count(H_TOPIC_RESULTS);
	json_decref(h_sim_delete("/_sim/faults"));

	h_worker_t *w2 = h_worker_run("term2", cfg, true);
	assert_non_null(w2);
	assert_int_equal(h_worker_wait(w2, WAIT_MS), 0);

	json_t *all = h_consume(H_TOPIC_RESULTS, before + total, 15000);
	json_t *recs = outcomes_of("t-", all);
	assert_int_equal(json_array_size(recs), total);
	assert_int_equal(h_check_schema(recs, "outcome.schema.json"), 0);
	json_t *by = h_by_event(recs);
	check_events(by, "t", true);
	/* the second worker published only what the first had not */
	assert_true(after_term > before);
	assert_int_equal(h_topic_count(H_TOPIC_RESULTS), before + total);
	json_decref(by);
	json_decref(recs);
	json_decref(all);
	h_end();
}

/* Events still held when the grace period ends are handed back at once:
 * the revoke at close does not wait a second grace period (it did, which
 * took a worker past Kubernetes' terminationGracePeriodSeconds). */
static void sigterm_past_the_grace_period(void **state)
{
	(void)state;
	h_begin("sigterm_past_the_grace_period");
	const int grace = 5000;
	char cfg[512];
	json_t *ov =
	    json_pack("{s:{s:i,s:i},s:{s:i}}", "pruvan", "batchMaxOrders", 1,
		      "maxInFlight", 1, "worker", "shutdownGraceMs", grace);
	assert_int_equal(h_write_config("grace.json", ov, cfg, sizeof(cfg)), 0);
	json_decref(ov);
	/* every push hangs far beyond the grace period */
	assert_int_equal(h_sim_faults("{\"latencyMs\":60000}"), 0);
	assert_int_equal(h_produce_series("g", "acme", ORDERS, PER_ORDER), 0);

	h_worker_t *w = h_worker_run("grace", cfg, false);
	assert_non_null(w);
	int port = h_worker_ops_port(w, 20000);
	assert_true(port > 0);
	/* the worker holds events (a push on the wire) */
	assert_true(h_await_metric(port, "pruvan_bridge_in_flight_events", 1,
				   WAIT_MS) >= 1);
	int64_t t0 = pb_mono_ms();
	assert_int_equal(h_worker_signal(w, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w, 4 * grace), 0);
	int64_t took = pb_mono_ms() - t0;
	assert_int_equal(h_worker_log_count(w, "grace period over"), 1);
	print_message("stopped %lld ms after SIGTERM (grace %d ms)\n",
		      (long long)took, grace);
	if (took >= 2 * grace)
		fail_msg("stopping took %lld ms with a %d ms grace period",
			 (long long)took, grace);
	json_decref(h_sim_delete("/_sim/faults"));
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sigkill_mid_batch),
	    cmocka_unit_test(sigterm_drains_and_commits),
	    cmocka_unit_test(sigterm_past_the_grace_period),
	};
	return cmocka_run_group_tests(tests, h_suite_setup, h_suite_teardown);
}
