/*
 * Pruvan misbehaving (contract section 7), with faults armed in the
 * simulator for single work orders so that neighbours are unaffected:
 *   - 5xx for the first requests of one order: that order's later events
 *     wait (never overtake) while other orders and accounts go through;
 *   - 429 with Retry-After: the retry waits as long as Pruvan asked, even
 *     beyond pruvan.backoffMaxMs;
 *   - a held answer longer than pruvan.timeoutMs: retried, then created;
 *   - 5xx until pruvan.maxAttempts: failed retries_exhausted, on the DLQ
 *     with x-http-status, x-attempts, x-request and the source position;
 *   - a 4xx and a 200 carrying Pruvan's error: failed at once;
 *   - a batch Pruvan refuses whole because of one order: split, only that
 *     event fails, the rest are created.
 * Every outcome record is validated against the outcome schema.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define WAIT_MS 90000

H_SUITE("http-faults", 3)

static int64_t int_at(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void produce(json_t *ev)
{
	assert_non_null(ev);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, false), 0);
	json_decref(ev);
}

static json_t *with_info(json_t *ev, const char *info)
{
	json_object_set_new(json_object_get(ev, "order"), "workOrderInfo",
			    json_string(info));
	return ev;
}

static json_t *expect(json_t *by, const char *id, const char *outcome,
		      const char *reason, int attempts)
{
	json_t *o = h_one(by, id);
	if (!o)
		fail_msg("event %s: not exactly one outcome", id);
	if (strcmp(h_str(o, "outcome"), outcome) != 0)
		fail_msg("event %s: outcome %s, expected %s (%s)", id,
			 h_str(o, "outcome"), outcome,
			 h_str(o, "message") ? h_str(o, "message") : "-");
	if (reason)
		assert_string_equal(h_str(o, "reason"), reason);
	else
		assert_true(json_is_null(json_object_get(o, "reason")));
	if (attempts >= 0 && int_at(o, "attempts") != attempts)
		fail_msg("event %s: %lld attempts, expected %d", id,
			 (long long)int_at(o, "attempts"), attempts);
	return o;
}

/* The DLQ record whose x-source-offset/partition are those of outcome o. */
static json_t *dlq_of(json_t *dlq, const json_t *o)
{
	char part[32], off[32];
	snprintf(part, sizeof(part), "%lld", (long long)int_at(o, "partition"));
	snprintf(off, sizeof(off), "%lld", (long long)int_at(o, "offset"));
	size_t i;
	json_t *r;
	json_array_foreach(dlq, i, r)
	{
		json_t *h = json_object_get(r, "headers");
		const char *p = h_str(h, "x-source-partition");
		const char *f = h_str(h, "x-source-offset");
		if (p && f && !strcmp(p, part) && !strcmp(f, off))
			return r;
	}
	return NULL;
}

static void faults_of_single_orders(void **state)
{
	(void)state;
	h_begin("faults_of_single_orders");
	char cfg[512];
	json_t *ov = json_pack(
	    "{s:{s:i,s:i,s:i,s:i,s:i},s:{s:{s:s,s:[s]},s:{s:s}}}", "pruvan",
	    "batchMaxOrders", 1, "timeoutMs", 500, "maxAttempts", 4,
	    "backoffBaseMs", 50, "backoffMaxMs", 400, "accounts", "acme",
	    "mode", "internal", "users", "jsmith", "other", "mode", "external");
	assert_int_equal(h_write_config("faults.json", ov, cfg, sizeof(cfg)),
			 0);
	json_decref(ov);

	assert_int_equal(
	    h_sim_faults("{\"fail\":{\"count\":3,\"status\":503,"
			 "\"workOrder\":\"WO-A\"},"
			 "\"rateLimit\":{\"count\":1,\"retryAfter\":1,"
			 "\"workOrder\":\"WO-R\"},"
			 "\"timeout\":{\"count\":2,\"holdMs\":4000,"
			 "\"workOrder\":\"WO-T\"}}"),
	    0);
	assert_int_equal(h_sim_faults("{\"fail\":{\"count\":4,\"status\":503,"
				      "\"workOrder\":\"WO-F\"}}"),
			 0);
	assert_int_equal(
	    h_sim_faults("{\"fail\":{\"count\":1,\"status\":400,"
			 "\"workOrder\":\"WO-E\"},"
			 "\"errorNext\":{\"count\":1,\"error\":\"WO-G: bad "
			 "county\",\"workOrder\":\"WO-G\"}}"),
	    0);

	produce(with_info(h_event_create("f-a1", "acme", "WO-A", 1), "a1"));
	produce(h_event_update("f-a2", "acme", "WO-A", 2, "a2"));
	produce(h_event_update("f-a3", "acme", "WO-A", 3, "a3"));
	produce(with_info(h_event_create("f-b1", "acme", "WO-B", 1), "b1"));
	produce(h_event_update("f-b2", "acme", "WO-B", 2, "b2"));
	produce(h_event_create("f-c1", "other", "WO-C", 1));
	produce(h_event_create("f-r1", "acme", "WO-R", 1));
	produce(h_event_create("f-t1", "acme", "WO-T", 1));
	produce(h_event_create("f-f1", "acme", "WO-F", 1));
	produce(h_event_create("f-e1", "acme", "WO-E", 1));
	produce(h_event_create("f-g1", "acme", "WO-G", 1));
	const long n = 11;
	assert_int_equal(h_flush(10000), 0);

	h_worker_t *w = h_worker_run("worker", cfg, true);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, WAIT_MS), 0);

	json_t *recs = h_consume(H_TOPIC_RESULTS, n, 15000);
	assert_int_equal(json_array_size(recs), n);
	assert_int_equal(h_check_schema(recs, "outcome.schema.json"), 0);
	json_t *by = h_by_event(recs);

	/* one order retried: its later events waited, in order */
	json_t *o = expect(by, "f-a1", "created", NULL, 4);
	assert_int_equal(int_at(json_object_get(o, "response"), "httpStatus"),
			 200);
	expect(by, "f-a2", "updated", NULL, 1);
	expect(by, "f-a3", "updated", NULL, 1);
	json_t *pa = h_sim_pushes_of("acme", "WO-A");
	assert_int_equal(json_array_size(pa), 6);
	const char *want_info[] = {"a1", "a1", "a1", "a1", "a2", "a3"};
	const int want_status[] = {503, 503, 503, 200, 200, 200};
	for (size_t i = 0; i < 6; i++) {
		json_t *p = json_array_get(pa, i);
		assert_string_equal(
		    h_str(json_object_get(p, "workOrder"), "workOrderInfo"),
		    want_info[i]);
		assert_int_equal(int_at(p, "status"), want_status[i]);
	}
	int64_t a_ok_seq = int_at(json_array_get(pa, 3), "seq");
	json_decref(pa);
	/* meanwhile another order and another account went through */
	expect(by, "f-b1", "created", NULL, 1);
	expect(by, "f-b2", "updated", NULL, 1);
	expect(by, "f-c1", "created", NULL, 1);
	const char *others[][2] = {{"acme", "WO-B"}, {"other", "WO-C"}};
	for (size_t k = 0; k < 2; k++) {
		json_t *pb = h_sim_pushes_of(others[k][0], others[k][1]);
		assert_true(json_array_size(pb) >= 1);
		size_t i;
		json_t *p;
		json_array_foreach(pb, i, p)
		{
			assert_int_equal(int_at(p, "status"), 200);
			if (int_at(p, "seq") > a_ok_seq)
				fail_msg("%s waited for WO-A's retries",
					 others[k][1]);
		}
		json_decref(pb);
	}

	/* 429: the retry came after Retry-After (1 s), not backoffMaxMs */
	expect(by, "f-r1", "created", NULL, 2);
	json_t *pr = h_sim_pushes_of("acme", "WO-R");
	assert_int_equal(json_array_size(pr), 2);
	assert_int_equal(int_at(json_array_get(pr, 0), "status"), 429);
	int64_t t0 = h_time_ms(h_str(json_array_get(pr, 0), "receivedAt"));
	int64_t t1 = h_time_ms(h_str(json_array_get(pr, 1), "receivedAt"));
	if (t1 - t0 < 900)
		fail_msg(
		    "retry after 429 came %lld ms later; Retry-After is 1 s",
		    (long long)(t1 - t0));
	json_decref(pr);

	/* answers held beyond timeoutMs: retried, third attempt answered */
	expect(by, "f-t1", "created", NULL, 3);

	/* 5xx until maxAttempts: failed, on the DLQ with its headers */
	json_t *dlq = h_consume(H_TOPIC_DLQ, 3, 15000);
	assert_int_equal(json_array_size(dlq), 3);
	o = expect(by, "f-f1", "failed", "retries_exhausted", 4);
	json_t *d = dlq_of(dlq, o);
	assert_non_null(d);
	json_t *h = json_object_get(d, "headers");
	assert_string_equal(h_str(h, "x-error-reason"), "retries_exhausted");
	assert_string_equal(h_str(h, "x-http-status"), "503");
	assert_string_equal(h_str(h, "x-attempts"), "4");
	assert_string_equal(h_str(h, "x-source-topic"), H_TOPIC_ORDERS);
	assert_non_null(strstr(h_str(h, "x-request"), "WO-F"));
	assert_non_null(strstr(h_str(h, "x-error-message"), "4 attempts"));
	assert_string_equal(h_str(d, "key"), "acme/WO-F");
	assert_string_equal(
	    h_str(json_object_get(json_object_get(d, "value"), "order"),
		  "workOrderNumber"),
	    "WO-F");

	/* a 4xx and Pruvan's error: not retried */
	o = expect(by, "f-e1", "failed", "http_4xx", 1);
	d = dlq_of(dlq, o);
	assert_non_null(d);
	assert_string_equal(
	    h_str(json_object_get(d, "headers"), "x-http-status"), "400");
	o = expect(by, "f-g1", "failed", "pruvan_error", 1);
	assert_non_null(strstr(h_str(o, "message"), "bad county"));
	assert_non_null(dlq_of(dlq, o));

	/* every armed fault was used up by its own order */
	json_t *armed = h_sim_get("/_sim/faults");
	assert_int_equal(json_array_size(json_object_get(armed, "queue")), 0);
	json_decref(armed);
	assert_int_equal(h_worker_log_count(w, "apiKey"), 0);
	json_decref(dlq);
	json_decref(by);
	json_decref(recs);
	h_end();
}

/* One order in a batch makes Pruvan refuse the whole batch: the worker
 * splits it, only that event fails, its neighbours are created. */
static void batch_split(void **state)
{
	(void)state;
	h_begin("batch_split");
	char cfg[512];
	/* a long batch wait so that the six creates share one request */
	json_t *ov = json_pack("{s:{s:i,s:i}}", "pruvan", "batchMaxOrders", 50,
			       "batchMaxWaitMs", 400);
	assert_int_equal(h_write_config("split.json", ov, cfg, sizeof(cfg)), 0);
	json_decref(ov);
	assert_int_equal(h_sim_faults("{\"rejectWorkOrders\":[\"WO-S4\"]}"), 0);
	long before = h_topic_count(H_TOPIC_RESULTS);
	long dlq_before = h_topic_count(H_TOPIC_DLQ);
	const char *ids[] = {"s-1", "s-2", "s-3", "s-4", "s-5", "s-6"};
	const char *wos[] = {"WO-S1", "WO-S2", "WO-S3",
			     "WO-S4", "WO-S5", "WO-S6"};
	for (size_t i = 0; i < 6; i++)
		produce(h_event_create(ids[i], "acme", wos[i], 1));
	assert_int_equal(h_flush(10000), 0);

	h_worker_t *w = h_worker_run("worker-split", cfg, true);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, WAIT_MS), 0);

	json_t *recs = h_consume(H_TOPIC_RESULTS, before + 6, 15000);
	assert_int_equal(json_array_size(recs), before + 6);
	assert_int_equal(h_check_schema(recs, "outcome.schema.json"), 0);
	json_t *by = h_by_event(recs);
	for (size_t i = 0; i < 6; i++) {
		if (i == 3)
			continue;
		expect(by, ids[i], "created", NULL, -1);
		json_t *orders = h_sim_orders("acme");
		assert_non_null(json_object_get(orders, wos[i]));
		json_decref(orders);
	}
	json_t *o = expect(by, "s-4", "failed", "pruvan_error", -1);
	assert_non_null(strstr(h_str(o, "message"), "WO-S4"));
	json_t *orders = h_sim_orders("acme");
	assert_null(json_object_get(orders, "WO-S4"));
	json_decref(orders);
	/* the first request carried several orders and was refused whole */
	json_t *p4 = h_sim_pushes_of("acme", "WO-S4");
	assert_true(json_array_size(p4) >= 2);
	assert_true(int_at(json_array_get(p4, 0), "batch") > 1);
	json_t *last = json_array_get(p4, json_array_size(p4) - 1);
	assert_int_equal(int_at(last, "batch"), 1);
	json_decref(p4);
	json_t *dlq = h_consume(H_TOPIC_DLQ, dlq_before + 1, 15000);
	assert_int_equal(json_array_size(dlq), dlq_before + 1);
	json_t *d = dlq_of(dlq, o);
	assert_non_null(d);
	assert_string_equal(
	    h_str(json_object_get(d, "headers"), "x-error-reason"),
	    "pruvan_error");
	json_decref(dlq);
	json_decref(by);
	json_decref(recs);
	json_decref(h_sim_delete("/_sim/faults"));
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(faults_of_single_orders),
	    cmocka_unit_test(batch_split),
	};
	return cmocka_run_group_tests(tests, h_suite_setup, h_suite_teardown);
}
