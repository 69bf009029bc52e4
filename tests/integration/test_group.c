/*
 * Two workers in one consumer group sharing the partitions (contract
 * sections 1 and 7: any number of replicas share the state in Redis):
 *   - both run with --exit-on-eof and exit 0;
 *   - one is SIGTERMed mid-run, the other takes its partitions over and
 *     finishes; both exit 0;
 *   - a worker whose commits the group refuses (final, or mid-run) still
 *     leaves nothing for the next worker of its group to redo.
 * The union of their outcomes has exactly one outcome per event that is
 * not a duplicate, and the simulator got each event's effect exactly once.
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

#define WAIT_MS	  120000
#define ORDERS	  16
#define PER_ORDER 3

H_SUITE("group", 4)

/* One real (non-duplicate) outcome per event of prefix, of the expected
 * kind, and each event's effect pushed exactly once. */
static void check_union(const char *prefix)
{
	json_t *recs = h_consume(H_TOPIC_RESULTS, ORDERS * PER_ORDER, 15000);
	assert_int_equal(h_check_schema(recs, "outcome.schema.json"), 0);
	json_t *by = h_by_event(recs);
	for (int o = 0; o < ORDERS; o++) {
		char won[64];
		snprintf(won, sizeof(won), "WO-%s-%02d", prefix, o);
		json_t *pushes = h_sim_pushes_of("acme", won);
		for (int k = 0; k < PER_ORDER; k++) {
			char id[64];
			snprintf(id, sizeof(id), "%s-%02d-%d", prefix, o, k);
			json_t *list = json_object_get(by, id);
			size_t i, real = 0;
			json_t *x;
			json_array_foreach(list, i, x)
			{
				const char *oc = h_str(x, "outcome");
				if (!strcmp(oc, "duplicate"))
					continue;
				real++;
				if (strcmp(oc, k ? "updated" : "created"))
					fail_msg("%s: %s (%s)", id, oc,
						 h_str(x, "message"));
			}
			if (real != 1)
				fail_msg("%s: %zu outcomes besides duplicates",
					 id, real);
			size_t n = 0;
			json_array_foreach(pushes, i, x)
			{
				const char *info =
				    h_str(json_object_get(x, "workOrder"),
					  "workOrderInfo");
				if (info && !strcmp(info, id) &&
				    json_integer_value(
					json_object_get(x, "status")) == 200)
					n++;
			}
			if (n != 1)
				fail_msg("%s: pushed %zu times", id, n);
		}
		json_decref(pushes);
	}
	json_decref(by);
	json_decref(recs);
}

static void two_workers_exit_on_eof(void **state)
{
	(void)state;
	h_begin("two_workers_exit_on_eof");
	char cfg[512];
	json_t *ov = json_pack("{s:{s:i,s:i}}", "pruvan", "batchMaxOrders", 2,
			       "maxInFlight", 2);
	assert_int_equal(h_write_config("eof.json", ov, cfg, sizeof(cfg)), 0);
	json_decref(ov);
	assert_int_equal(h_sim_faults("{\"latencyMs\":30}"), 0);
	assert_int_equal(h_produce_series("e", "acme", ORDERS, PER_ORDER), 0);

	h_worker_t *w1 = h_worker_run("eof1", cfg, true);
	h_worker_t *w2 = h_worker_run("eof2", cfg, true);
	assert_non_null(w1);
	assert_non_null(w2);
	assert_int_equal(h_worker_wait(w1, WAIT_MS), 0);
	assert_int_equal(h_worker_wait(w2, WAIT_MS), 0);
	assert_true(h_worker_log_count(w1, "partitions assigned") >= 1);
	assert_true(h_worker_log_count(w2, "partitions assigned") >= 1);
	check_union("e");
	json_decref(h_sim_delete("/_sim/faults"));
	h_end();
}

static void one_of_two_sigtermed(void **state)
{
	(void)state;
	h_begin("one_of_two_sigtermed");
	char cfg[512];
	/* a group of its own: it reads the topic from the start, so the
	 * previous test's events come again and must all be duplicates */
	/* few events held at a time, so that the first worker leaves
	 * events behind for the second to take over */
	json_t *ov =
	    json_pack("{s:{s:s},s:{s:i,s:i},s:{s:i}}", "kafka", "group.id",
		      "pb-it-term", "pruvan", "batchMaxOrders", 1,
		      "maxInFlight", 1, "worker", "maxPending", 4);
	assert_int_equal(h_write_config("term.json", ov, cfg, sizeof(cfg)), 0);
	json_decref(ov);
	assert_int_equal(h_sim_faults("{\"latencyMs\":100}"), 0);
	long before = h_topic_count(H_TOPIC_RESULTS);
	long earlier = h_topic_count(H_TOPIC_ORDERS);
	json_t *st = h_sim_stats();
	int64_t pushes_before =
	    json_integer_value(json_object_get(st, "workOrders"));
	json_decref(st);
	assert_int_equal(h_produce_series("t", "acme", ORDERS, PER_ORDER), 0);
	const long total = ORDERS * PER_ORDER;

	h_worker_t *w1 = h_worker_run("term1", cfg, false);
	h_worker_t *w2 = h_worker_run("term2", cfg, false);
	assert_non_null(w1);
	assert_non_null(w2);
	assert_true(h_await_count(H_TOPIC_RESULTS, before + earlier + 10,
				  WAIT_MS) >= before + earlier + 10);
	assert_int_equal(h_worker_signal(w1, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w1, 30000), 0);
	assert_true(h_await_count(H_TOPIC_RESULTS, before + earlier + total,
				  WAIT_MS) >= before + earlier + total);
	assert_int_equal(h_worker_signal(w2, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w2, 30000), 0);
	check_union("t");
	/* the earlier events: duplicates only, nothing pushed again */
	json_t *recs =
	    h_consume(H_TOPIC_RESULTS, before + earlier + total, 15000);
	json_t *by = h_by_event(recs);
	const char *id;
	json_t *list;
	json_object_foreach(by, id, list)
	{
		if (strncmp(id, "e-", 2))
			continue;
		json_t *last = json_array_get(list, json_array_size(list) - 1);
		assert_string_equal(h_str(last, "outcome"), "duplicate");
	}
	st = h_sim_stats();
	assert_int_equal(json_integer_value(json_object_get(st, "workOrders")) -
			     pushes_before,
			 total);
	json_decref(st);
	json_decref(by);
	json_decref(recs);

	/* both committed what they published: a third worker of the group
	 * finds nothing to redo */
	long published = h_topic_count(H_TOPIC_RESULTS);
	h_worker_t *w3 = h_worker_run("term3", cfg, true);
	assert_non_null(w3);
	assert_int_equal(h_worker_wait(w3, WAIT_MS), 0);
	assert_int_equal(h_topic_count(H_TOPIC_RESULTS), published);
	json_decref(h_sim_delete("/_sim/faults"));
	h_end();
}

/* A worker of a group of its own runs series prefix against a slow
 * simulator. After ten of its outcomes the mock cluster refuses commits:
 * - final: auto-commit is off, so the one refused is the final commit at
 *   SIGTERM; the worker must rejoin within its grace period and commit;
 * - otherwise: auto-commit runs every 200 ms and two are refused mid-run;
 *   librdkafka counts the assignment lost and rejoins.
 * Either way the partitions come back and the worker resumes where its
 * outcomes end, past the committed offset, so the group's next worker
 * finds nothing to redo: the results topic holds exactly one record per
 * event for this group (the earlier events come as duplicates, once).
 * Before, every event since the last commit was redone. */
static void refused_commits(const char *group, const char *prefix, bool final)
{
	char cfg[512], file[64], label[64];
	snprintf(file, sizeof(file), "%s.json", group);
	json_t *ov = json_pack(
	    "{s:{s:s,s:s},s:{s:i,s:i},s:{s:i}}", "kafka", "group.id", group,
	    "auto.commit.interval.ms", final ? "600000" : "200", "pruvan",
	    "batchMaxOrders", 1, "maxInFlight", 1, "worker", "maxPending", 4);
	assert_int_equal(h_write_config(file, ov, cfg, sizeof(cfg)), 0);
	json_decref(ov);
	assert_int_equal(h_sim_faults("{\"latencyMs\":50}"), 0);
	long before = h_topic_count(H_TOPIC_RESULTS);
	long earlier = h_topic_count(H_TOPIC_ORDERS);
	assert_int_equal(h_produce_series(prefix, "acme", ORDERS, PER_ORDER),
			 0);
	const long expected = before + earlier + ORDERS * PER_ORDER;

	h_worker_t *w = h_worker_run(group, cfg, false);
	assert_non_null(w);
	assert_true(h_await_count(H_TOPIC_RESULTS, before + earlier + 10,
				  WAIT_MS) >= before + earlier + 10);
	assert_int_equal(h_kafka_refuse_commits(final ? 1 : 2), 0);
	if (!final)
		assert_true(h_await_count(H_TOPIC_RESULTS, expected, WAIT_MS) >=
			    expected);
	assert_int_equal(h_worker_signal(w, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w, 60000), 0);
	if (final)
		assert_int_equal(
		    h_worker_log_count(w, "final commit refused by the group"),
		    1);
	assert_true(h_worker_log_count(w, "resuming where this worker's "
					  "outcomes end") >= 1);

	snprintf(label, sizeof(label), "%s-next", group);
	h_worker_t *next = h_worker_run(label, cfg, true);
	assert_non_null(next);
	assert_int_equal(h_worker_wait(next, WAIT_MS), 0);
	assert_int_equal(h_topic_count(H_TOPIC_RESULTS), expected);
	check_union(prefix);
	json_decref(h_sim_delete("/_sim/faults"));
}

static void final_commit_refused(void **state)
{
	(void)state;
	h_begin("final_commit_refused");
	refused_commits("pb-it-refused-final", "f", true);
	h_end();
}

static void commit_refused_mid_run(void **state)
{
	(void)state;
	h_begin("commit_refused_mid_run");
	refused_commits("pb-it-refused-run", "m", false);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(two_workers_exit_on_eof),
	    cmocka_unit_test(one_of_two_sigtermed),
	    cmocka_unit_test(final_commit_refused),
	    cmocka_unit_test(commit_refused_mid_run),
	};
	return cmocka_run_group_tests(tests, h_suite_setup, h_suite_teardown);
}
