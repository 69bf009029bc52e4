/*
 * Every outcome kind end to end (contract section 6), against real Redis,
 * the mock cluster and the simulator: created, updated, deleted,
 * unchanged, stale, duplicate (a second copy in the same run, and the same
 * event produced again after the first worker finished), rejected
 * (validation, unknown account, delete not allowed, order deleted) and a
 * poison record (not JSON, and a null value) among good neighbours of the
 * same partition: the poison goes to the DLQ with its headers while the
 * neighbours succeed. Every outcome record is validated against
 * docs/schemas/outcome.schema.json and no PushKey shows up anywhere.
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

static char cfg[512];

static int setup(void **state)
{
	(void)state;
	if (h_start_all("outcomes", 3))
		return -1;
	json_t *ov = json_pack("{s:{s:{s:s,s:[s]},s:{s:s,s:b}}}", "accounts",
			       "acme", "mode", "internal", "users", "jsmith",
			       "delco", "mode", "external", "allowDeletes", 1);
	int rc = h_write_config("config.json", ov, cfg, sizeof(cfg));
	json_decref(ov);
	return rc;
}

static void produce(json_t *ev)
{
	assert_non_null(ev);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, false), 0);
	json_decref(ev);
}

/* Assert the single outcome of id is `outcome` and its reason (NULL: null,
 * "*": any string). */
static json_t *expect(json_t *by, const char *id, const char *outcome,
		      const char *reason)
{
	json_t *o = h_one(by, id);
	if (!o)
		fail_msg("event %s: not exactly one outcome", id);
	if (strcmp(h_str(o, "outcome"), outcome) != 0)
		fail_msg("event %s: outcome %s, expected %s (message: %s)", id,
			 h_str(o, "outcome"), outcome,
			 h_str(o, "message") ? h_str(o, "message") : "-");
	if (reason && strcmp(reason, "*") == 0)
		assert_non_null(h_str(o, "reason"));
	else if (reason)
		assert_string_equal(h_str(o, "reason"), reason);
	else
		assert_true(json_is_null(json_object_get(o, "reason")));
	assert_string_equal(h_str(o, "source"), "orders");
	return o;
}

static size_t pushes(const char *acct, const char *won)
{
	json_t *p = h_sim_pushes_of(acct, won);
	size_t n = json_array_size(p);
	json_decref(p);
	return n;
}

static void every_outcome_kind(void **state)
{
	(void)state;
	h_begin("every_outcome_kind");
	long n = 0;

	/* created */
	produce(h_event_create("o-c1", "acme", "WO-C1", 1)), n++;
	/* updated: changed fields only */
	produce(h_event_create("o-u1", "acme", "WO-U", 1)), n++;
	produce(h_event_update("o-u2", "acme", "WO-U", 2, "gate code 4321")),
	    n++;
	/* unchanged: same value as last pushed, nothing sent */
	produce(h_event_create("o-n1", "acme", "WO-N", 1)), n++;
	produce(h_event_update("o-n2", "acme", "WO-N", 2,
			       "Call Office 555-111-2222")),
	    n++;
	/* stale: older version than the one applied */
	produce(h_event_create("o-s1", "acme", "WO-S", 5)), n++;
	produce(h_event_update("o-s2", "acme", "WO-S", 3, "stale value")), n++;
	/* duplicate: the same record twice in one run */
	json_t *dup = h_event_create("o-d1", "acme", "WO-DUP", 1);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, dup, false), 0);
	produce(dup), n += 2;
	/* deleted, then an update of the deleted order is rejected */
	produce(h_event_create("o-x1", "delco", "WO-X", 1)), n++;
	produce(h_event("o-x2", "delco", "delete", "WO-X", 2, NULL)), n++;
	produce(h_event_update("o-x3", "delco", "WO-X", 3, "after delete")),
	    n++;
	/* rejected: no address, unknown account, delete not allowed */
	json_t *f = json_pack("{s:[{s:s}]}", "services", "serviceName", "Mow");
	produce(h_event("o-r1", "acme", "create", "WO-R1", 1, f)), n++;
	json_decref(f);
	produce(h_event_create("o-r2", "nobody", "WO-R2", 1)), n++;
	produce(h_event("o-r3", "acme", "delete", "WO-C1", 9, NULL)), n++;
	/* poison among good neighbours on one key (one partition) */
	json_t *p1 = h_event_create("o-p1", "acme", "WO-P", 1);
	json_t *p2 = h_event_update("o-p2", "acme", "WO-P", 2, "after poison");
	char *t1 = json_dumps(p1, JSON_COMPACT),
	     *t2 = json_dumps(p2, JSON_COMPACT);
	assert_int_equal(h_produce_nowait(H_TOPIC_ORDERS, "acme/WO-P", t1), 0);
	assert_int_equal(
	    h_produce_nowait(H_TOPIC_ORDERS, "acme/WO-P", "{\"eventId\": oops"),
	    0);
	assert_int_equal(h_produce_nowait(H_TOPIC_ORDERS, "acme/WO-P", NULL),
			 0);
	assert_int_equal(h_produce_nowait(H_TOPIC_ORDERS, "acme/WO-P", t2), 0);
	n += 4;
	free(t1);
	free(t2);
	json_decref(p1);
	json_decref(p2);
	assert_int_equal(h_flush(10000), 0);

	h_worker_t *w = h_worker_run("worker", cfg, true);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, WAIT_MS), 0);

	json_t *recs = h_consume(H_TOPIC_RESULTS, n, 15000);
	assert_int_equal(json_array_size(recs), n);
	assert_int_equal(h_check_schema(recs, "outcome.schema.json"), 0);
	json_t *by = h_by_event(recs);

	json_t *o = expect(by, "o-c1", "created", NULL);
	assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 1);
	assert_int_equal(json_integer_value(json_object_get(
			     json_object_get(o, "response"), "httpStatus")),
			 200);
	assert_string_equal(
	    h_str(json_object_get(o, "request"), "workOrderNumber"), "WO-C1");

	expect(by, "o-u1", "created", NULL);
	o = expect(by, "o-u2", "updated", NULL);
	json_t *req = json_object_get(o, "request");
	assert_string_equal(h_str(req, "workOrderInfo"), "gate code 4321");
	assert_null(json_object_get(req, "address1")); /* changed fields only */

	expect(by, "o-n1", "created", NULL);
	o = expect(by, "o-n2", "unchanged", NULL);
	assert_true(json_is_null(json_object_get(o, "request")));
	assert_int_equal(pushes("acme", "WO-N"), 1);

	expect(by, "o-s1", "created", NULL);
	o = expect(by, "o-s2", "stale", "stale");
	assert_true(json_is_null(json_object_get(o, "request")));
	assert_int_equal(pushes("acme", "WO-S"), 1);

	json_t *dl = json_object_get(by, "o-d1");
	assert_int_equal(json_array_size(dl), 2);
	assert_string_equal(h_str(json_array_get(dl, 0), "outcome"), "created");
	assert_string_equal(h_str(json_array_get(dl, 1), "outcome"),
			    "duplicate");
	assert_int_equal(pushes("acme", "WO-DUP"), 1);

	expect(by, "o-x1", "created", NULL);
	o = expect(by, "o-x2", "deleted", NULL);
	assert_string_equal(h_str(json_object_get(o, "request"), "status"),
			    "deleted");
	expect(by, "o-x3", "rejected", "order_deleted");
	assert_int_equal(pushes("delco", "WO-X"), 2);

	expect(by, "o-r1", "rejected", "invalid_address");
	assert_int_equal(pushes("acme", "WO-R1"), 0);
	expect(by, "o-r2", "rejected", "unknown_account");
	expect(by, "o-r3", "rejected", "delete_not_allowed");

	/* the poison pair: outcomes with eventId null, both on the DLQ */
	o = expect(by, "o-p1", "created", NULL);
	int64_t part = json_integer_value(json_object_get(o, "partition"));
	int64_t off = json_integer_value(json_object_get(o, "offset"));
	o = expect(by, "o-p2", "updated", NULL);
	assert_int_equal(json_integer_value(json_object_get(o, "partition")),
			 part);
	assert_int_equal(json_integer_value(json_object_get(o, "offset")),
			 off + 3);
	json_t *nulls = json_object_get(by, "(null)");
	assert_int_equal(json_array_size(nulls), 2);
	json_t *dlq = h_consume(H_TOPIC_DLQ, 2, 15000);
	assert_int_equal(json_array_size(dlq), 2);
	size_t i;
	json_t *x;
	json_array_foreach(nulls, i, x)
	{
		assert_string_equal(h_str(x, "outcome"), "rejected");
		assert_int_equal(
		    json_integer_value(json_object_get(x, "partition")), part);
		int64_t xo = json_integer_value(json_object_get(x, "offset"));
		assert_true(xo == off + 1 || xo == off + 2);
		if (xo == off + 1)
			assert_string_equal(h_str(x, "reason"), "invalid_json");
	}
	json_array_foreach(dlq, i, x)
	{
		json_t *h = json_object_get(x, "headers");
		assert_string_equal(h_str(x, "key"), "acme/WO-P");
		assert_string_equal(h_str(h, "x-source-topic"), H_TOPIC_ORDERS);
		char want[32];
		snprintf(want, sizeof(want), "%lld", (long long)part);
		assert_string_equal(h_str(h, "x-source-partition"), want);
		assert_non_null(h_str(h, "x-error-reason"));
		assert_non_null(h_str(h, "x-error-message"));
		assert_string_equal(h_str(h, "x-attempts"), "0");
		const char *so = h_str(h, "x-source-offset");
		assert_non_null(so);
		if (strtoll(so, NULL, 10) == off + 1) {
			assert_string_equal(h_str(x, "raw"),
					    "{\"eventId\": oops");
			assert_string_equal(h_str(h, "x-error-reason"),
					    "invalid_json");
		}
	}
	assert_int_equal(pushes("acme", "WO-P"), 2);
	assert_int_equal(h_worker_log_count(w, "apiKey"), 0);
	json_decref(dlq);
	json_decref(by);
	json_decref(recs);
	h_end();
}

/* The same event produced again after the first worker finished: a new
 * worker of the group reports it duplicate and does not push it again. */
static void duplicate_across_restart(void **state)
{
	(void)state;
	h_begin("duplicate_across_restart");
	long before = h_topic_count(H_TOPIC_RESULTS);
	assert_true(before > 0);
	size_t c1 = pushes("acme", "WO-C1"), u = pushes("acme", "WO-U");
	assert_int_equal(c1, 1);
	assert_int_equal(u, 2);
	produce(h_event_create("o-c1", "acme", "WO-C1", 1));
	produce(h_event_update("o-u2", "acme", "WO-U", 2, "gate code 4321"));
	produce(h_event_create("o-c9", "acme", "WO-C9", 1));
	assert_int_equal(h_flush(10000), 0);

	h_worker_t *w = h_worker_run("worker2", cfg, true);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, WAIT_MS), 0);

	json_t *recs = h_consume(H_TOPIC_RESULTS, before + 3, 15000);
	assert_int_equal(json_array_size(recs), before + 3);
	assert_int_equal(h_check_schema(recs, "outcome.schema.json"), 0);
	json_t *by = h_by_event(recs);
	json_t *l = json_object_get(by, "o-c1");
	assert_int_equal(json_array_size(l), 2);
	json_t *o = json_array_get(l, 1);
	assert_string_equal(h_str(o, "outcome"), "duplicate");
	assert_true(json_is_null(json_object_get(o, "request")));
	l = json_object_get(by, "o-u2");
	assert_int_equal(json_array_size(l), 2);
	assert_string_equal(h_str(json_array_get(l, 1), "outcome"),
			    "duplicate");
	expect(by, "o-c9", "created", NULL);
	assert_int_equal(pushes("acme", "WO-C1"), 1);
	assert_int_equal(pushes("acme", "WO-U"), 2);
	assert_int_equal(h_worker_log_count(w, "apiKey"), 0);
	json_decref(by);
	json_decref(recs);
	h_end();
}

/* Copies of an event that come while the original's outcome is being
 * acknowledged and its "published" mark is not yet in Redis: each copy is
 * a duplicate, never a second "created" reported as recovered (found by the
 * benchmark: 2 of ~4,000 copies). The window is a step of the loop wide,
 * so each order's copies come after 0 to 39 updates that change nothing
 * (one loop step each) and some copy lands in it; a regression shows up
 * as a recovered outcome in most runs. */
static void copies_while_acknowledging(void **state)
{
	(void)state;
	h_begin("copies_while_acknowledging");
	long before = h_topic_count(H_TOPIC_RESULTS);
	enum { ORDERS = 120, MAX_UPDATES = 40 };
	long total = 0;
	for (int step = 0; step < MAX_UPDATES + 3; step++)
		for (int k = 0; k < ORDERS; k++) {
			int m = k % MAX_UPDATES; /* updates before the copies */
			char id[64], won[64];
			snprintf(won, sizeof(won), "WO-CW-%d", k);
			if (step == 0 || step == m + 1 || step == m + 2) {
				snprintf(id, sizeof(id), "cw-%d", k);
				produce(h_event_create(id, "acme", won, 1));
			} else if (step <= m) {
				snprintf(id, sizeof(id), "cw-%d-u%d", k, step);
				produce(
				    h_event_update(id, "acme", won, step + 1,
						   "Call Office 555-111-2222"));
			} else {
				continue;
			}
			total++;
		}
	assert_int_equal(h_flush(10000), 0);
	h_worker_t *w = h_worker_run("worker3", cfg, true);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, WAIT_MS), 0);
	json_t *recs = h_consume(H_TOPIC_RESULTS, before + total, 15000);
	assert_int_equal(json_array_size(recs), before + total);
	size_t i;
	json_t *r;
	json_array_foreach(recs, i, r)
	{
		json_t *v = json_object_get(r, "value");
		if (json_is_true(json_object_get(v, "recovered")))
			fail_msg("%s came out recovered (%s)",
				 h_str(v, "eventId"), h_str(v, "outcome"));
	}
	json_t *by = h_by_event(recs);
	for (int k = 0; k < ORDERS; k++) {
		char id[64];
		snprintf(id, sizeof(id), "cw-%d", k);
		json_t *l = json_object_get(by, id);
		assert_int_equal(json_array_size(l), 3);
		json_t *o;
		int created = 0;
		json_array_foreach(l, i, o)
		{
			if (!strcmp(h_str(o, "outcome"), "created"))
				created++;
			else
				assert_string_equal(h_str(o, "outcome"),
						    "duplicate");
		}
		assert_int_equal(created, 1);
	}
	json_decref(by);
	json_decref(recs);
	h_end();
}

/* Messages quote what was sent, cut to a bounded length (%.32s): a cut
 * inside a multi-byte character left bytes that are not UTF-8, the record
 * lost its "message" key and broke the contract. The message stays
 * whole characters. */
static void message_cut_inside_a_character(void **state)
{
	(void)state;
	h_begin("message_cut_inside_a_character");
	long before = h_topic_count(H_TOPIC_RESULTS);
	/* "a" then 20 two-byte characters: byte 32 is the first of a pair */
	char st[64] = "a";
	for (int i = 0; i < 20; i++)
		memcpy(st + 1 + 2 * i, "\xc3\x89", 3);
	json_t *ev = h_event_create("o-utf8", "acme", "WO-UTF8", 1);
	json_object_set_new(json_object_get(ev, "order"), "state",
			    json_string(st));
	produce(ev);
	assert_int_equal(h_flush(10000), 0);
	h_worker_t *w = h_worker_run("worker4", cfg, true);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, WAIT_MS), 0);
	json_t *recs = h_consume(H_TOPIC_RESULTS, before + 1, 15000);
	assert_int_equal(json_array_size(recs), before + 1);
	assert_int_equal(h_check_schema(recs, "outcome.schema.json"), 0);
	json_t *by = h_by_event(recs);
	json_t *o = expect(by, "o-utf8", "rejected", "invalid_address");
	const char *m = h_str(o, "message");
	assert_non_null(m);
	assert_non_null(strstr(m, "state \"a\xc3\x89"));
	assert_non_null(strstr(m, "is not a US state code"));
	json_decref(by);
	json_decref(recs);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_outcome_kind),
	    cmocka_unit_test(duplicate_across_restart),
	    cmocka_unit_test(copies_while_acknowledging),
	    cmocka_unit_test(message_cut_inside_a_character),
	};
	return cmocka_run_group_tests(tests, setup, h_group_teardown);
}
