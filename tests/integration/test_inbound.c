/*
 * Relayed data (contract section 5) end to end through a real worker:
 *  - an item is relayed with its payload; the first item teaches the
 *    order's Key1; a re-sent uuId is a duplicate;
 *  - after a delete, items under the old Key1 are discarded
 *    (order_deleted), items under a new Key1 for the same work order are
 *    discarded (recreated_after_delete), and an item whose Key1 belonged
 *    to the deleted order is discarded whatever its work order number;
 *  - malformed items and unknown accounts are rejected and dead-lettered;
 *  - the discard metric counts per account and reason;
 *  - a delete racing a stream of items: relayed items form a prefix of the
 *    stream, discarded ones the rest, nothing is both;
 *  - the source ids pushed for a deleted order identify its items too,
 *    and the Key1 it is recreated under belongs to a deleted order;
 *  - a worker restart between the delete and the items changes nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define WAIT_MS 20000

/* One long-running worker serves the tests in turn (each worker start
 * costs a consumer group join); the restart test stops it. */
static h_worker_t *W;
static int W_ops;

static h_worker_t *worker(void)
{
	if (W)
		return W;
	char cfg[512];
	json_t *ov =
	    json_pack("{s:{s:{s:s, s:[s], s:b}}}", "accounts", "acme", "mode",
		      "internal", "users", "jsmith", "allowDeletes", 1);
	assert_int_equal(h_write_config("config.json", ov, cfg, sizeof(cfg)),
			 0);
	json_decref(ov);
	W = h_worker_run("worker", cfg, false);
	assert_non_null(W);
	W_ops = h_worker_ops_port(W, WAIT_MS);
	assert_true(W_ops > 0);
	/* the relay receiver is off unless relay.listen is set */
	assert_int_equal(h_worker_log_count(W, "relay endpoint listening"), 0);
	return W;
}

H_SUITE("inbound", 2)

/* The contract's wrapper for one relayed item. */
static json_t *item(const char *uuid, const char *key1, const char *won)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s}}", "account",
			 "acme", "kind", "photo", "item", "uuId", uuid, "key1",
			 key1, "key2", won, "fileType", "jpg");
}

static void put(const char *topic, json_t *v)
{
	assert_int_equal(h_produce_json(topic, v, true), 0);
	json_decref(v);
}

/* Await n records on results, then index them by eventId. */
static json_t *results(long n)
{
	assert_true(h_await_count(H_TOPIC_RESULTS, n, WAIT_MS) >= n);
	json_t *recs = h_consume(H_TOPIC_RESULTS, n, WAIT_MS);
	assert_non_null(recs);
	assert_int_equal(json_array_size(recs), n);
	json_t *by = h_by_event(recs);
	json_decref(recs);
	return by;
}

static void expect(const json_t *by, const char *id, const char *outcome,
		   const char *reason)
{
	json_t *o = h_one(by, id);
	assert_non_null(o);
	if (strcmp(h_str(o, "outcome"), outcome) != 0)
		fail_msg("%s: outcome %s, expected %s", id, h_str(o, "outcome"),
			 outcome);
	assert_string_equal(h_str(o, "source"),
			    id[0] == 'e' ? "orders" : "inbound");
	if (reason)
		assert_string_equal(h_str(o, "reason"), reason);
}

/* GET /metrics of the worker's ops port (malloc'd body). */
static char *metrics(int port)
{
	char *body = NULL;
	assert_int_equal(h_http_get(port, "/metrics", &body), 200);
	return body;
}

static void relay_discard_and_reject(void **state)
{
	(void)state;
	h_begin("relay_discard_and_reject");
	worker();

	/* a live order and its first item: relayed, Key1 111 learned */
	put(H_TOPIC_ORDERS, h_event_create("e-c1", "acme", "WO-1", 1));
	put(H_TOPIC_INBOUND, item("i-1", "111", "WO-1"));
	json_t *by = results(2);
	expect(by, "e-c1", "created", NULL);
	expect(by, "i-1", "relayed", NULL);
	json_t *o = h_one(by, "i-1");
	assert_string_equal(h_str(o, "kind"), "photo");
	assert_string_equal(h_str(o, "workOrderNumber"), "WO-1");
	assert_string_equal(h_str(json_object_get(o, "item"), "fileType"),
			    "jpg");
	json_decref(by);

	/* the same uuId again: duplicate, not relayed twice */
	put(H_TOPIC_INBOUND, item("i-1", "111", "WO-1"));
	/* an order without any order event is relayed as well */
	put(H_TOPIC_INBOUND, item("i-2", "222", "WO-2"));
	by = results(4);
	json_t *both = json_object_get(by, "i-1");
	assert_int_equal(json_array_size(both), 2);
	assert_string_equal(h_str(json_array_get(both, 1), "outcome"),
			    "duplicate");
	expect(by, "i-2", "relayed", NULL);
	json_decref(by);

	/* delete WO-1: the tombstone takes Key1 111 with it */
	put(H_TOPIC_ORDERS, h_event("e-d1", "acme", "delete", "WO-1", 2, NULL));
	by = results(5);
	expect(by, "e-d1", "deleted", NULL);
	json_decref(by);

	put(H_TOPIC_INBOUND, item("i-3", "111", "WO-1")); /* old Key1 */
	put(H_TOPIC_INBOUND, item("i-4", "999", "WO-1")); /* recreated */
	put(H_TOPIC_INBOUND, item("i-5", "111", "WO-9")); /* Key1 of deleted */
	put(H_TOPIC_INBOUND, item("i-6", "222", "WO-2")); /* live, unaffected */
	/* malformed: no uuId; unknown account; not JSON at all */
	put(H_TOPIC_INBOUND,
	    json_pack("{s:s, s:s, s:{s:s, s:s}}", "account", "acme", "kind",
		      "photo", "item", "key1", "111", "key2", "WO-1"));
	put(H_TOPIC_INBOUND,
	    json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "account", "nobody",
		      "kind", "photo", "item", "uuId", "i-8", "key1", "5",
		      "key2", "WO-5"));
	assert_int_equal(h_produce(H_TOPIC_INBOUND, "acme/x", "{not json"), 0);
	json_t *recs = h_consume(H_TOPIC_RESULTS, 12, WAIT_MS);
	assert_int_equal(json_array_size(recs), 12);
	by = h_by_event(recs);
	expect(by, "i-3", "discarded", "order_deleted");
	expect(by, "i-4", "discarded", "recreated_after_delete");
	expect(by, "i-5", "discarded", "order_deleted");
	expect(by, "i-6", "relayed", NULL);
	expect(by, "i-8", "rejected", "unknown_account");
	/* a discarded record does not carry the item for the back office */
	assert_null(json_object_get(h_one(by, "i-3"), "item"));
	int rejected_null_id = 0;
	size_t i;
	json_t *r;
	json_array_foreach(recs, i, r)
	{
		json_t *v = json_object_get(r, "value");
		if (json_is_null(json_object_get(v, "eventId")) ||
		    !json_object_get(v, "eventId")) {
			assert_string_equal(h_str(v, "outcome"), "rejected");
			assert_string_equal(h_str(v, "source"), "inbound");
			rejected_null_id++;
		}
	}
	assert_int_equal(rejected_null_id, 2);
	json_decref(by);
	json_decref(recs);

	/* the three rejected items are dead-lettered, bytes unchanged */
	json_t *dlq = h_consume(H_TOPIC_DLQ, 3, WAIT_MS);
	assert_int_equal(json_array_size(dlq), 3);
	int raw_seen = 0;
	json_array_foreach(dlq, i, r)
	{
		json_t *h = json_object_get(r, "headers");
		assert_string_equal(h_str(h, "x-source-topic"),
				    H_TOPIC_INBOUND);
		if (strcmp(h_str(r, "raw"), "{not json") == 0)
			raw_seen++;
	}
	assert_int_equal(raw_seen, 1);
	json_decref(dlq);

	/* discards counted per account and reason */
	char *text = metrics(W_ops);
	assert_non_null(strstr(text,
			       "pruvan_bridge_inbound_discarded_total{account="
			       "\"acme\",reason=\"order_deleted\"} 2\n"));
	assert_non_null(strstr(text,
			       "pruvan_bridge_inbound_discarded_total{account="
			       "\"acme\",reason=\"recreated_after_delete\"} "
			       "1\n"));
	assert_null(strstr(text, "WO-1"));
	free(text);
	h_end();
}

/* The account-wide stream of outcomes for uuIds prefix-0..n-1. */
static void race_items(int from, int to, const char *prefix, const char *key1,
		       const char *won)
{
	for (int k = from; k < to; k++) {
		char id[32];
		snprintf(id, sizeof(id), "%s-%03d", prefix, k);
		json_t *v = item(id, key1, won);
		assert_int_equal(h_produce_json(H_TOPIC_INBOUND, v, false), 0);
		json_decref(v);
	}
}

static void delete_races_items(void **state)
{
	(void)state;
	h_begin("delete_races_items");
	long base = h_topic_count(H_TOPIC_RESULTS);
	assert_true(base >= 0);
	worker();

	put(H_TOPIC_ORDERS, h_event_create("e-rc", "acme", "WO-R", 1));
	/* the first item is relayed before the delete exists at all */
	race_items(0, 1, "r", "444", "WO-R");
	assert_int_equal(h_flush(5000), 0);
	assert_true(h_await_count(H_TOPIC_RESULTS, base + 2, WAIT_MS) >=
		    base + 2);
	/* then the delete while more items are arriving: some of the first
	 * 59 are surely relayed by now, the rest race the delete */
	race_items(1, 60, "r", "444", "WO-R");
	assert_int_equal(h_flush(5000), 0);
	assert_true(h_await_count(H_TOPIC_RESULTS, base + 22, WAIT_MS) >=
		    base + 22);
	json_t *d = h_event("e-rd", "acme", "delete", "WO-R", 2, NULL);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, d, false), 0);
	json_decref(d);
	race_items(60, 151, "r", "444", "WO-R");
	assert_int_equal(h_flush(5000), 0);
	long want = base + 2 + 150 + 1;
	assert_true(h_await_count(H_TOPIC_RESULTS, want, WAIT_MS) >= want);

	/* items after the tombstone is known: all discarded; a re-sent
	 * relayed item stays what it was (duplicate) */
	race_items(151, 161, "r", "444", "WO-R");
	race_items(0, 1, "r", "444", "WO-R");
	assert_int_equal(h_flush(5000), 0);
	want += 11;
	json_t *recs = h_consume(H_TOPIC_RESULTS, want, WAIT_MS);
	assert_int_equal(json_array_size(recs), want);
	json_t *by = h_by_event(recs);
	expect(by, "e-rd", "deleted", NULL);

	int relayed = 0, discarded = 0, last_relayed = -1, first_discarded = -1;
	for (int k = 0; k < 161; k++) {
		char id[32];
		snprintf(id, sizeof(id), "r-%03d", k);
		json_t *all = json_object_get(by, id);
		assert_non_null(all);
		size_t want_n = k == 0 ? 2 : 1;
		if (json_array_size(all) != want_n)
			fail_msg("%s: %zu outcomes", id, json_array_size(all));
		const char *oc = h_str(json_array_get(all, 0), "outcome");
		if (strcmp(oc, "relayed") == 0) {
			relayed++;
			last_relayed = k;
		} else if (strcmp(oc, "discarded") == 0) {
			assert_string_equal(
			    h_str(json_array_get(all, 0), "reason"),
			    "order_deleted");
			discarded++;
			if (first_discarded < 0)
				first_discarded = k;
		} else {
			fail_msg("%s: outcome %s", id, oc);
		}
	}
	/* relayed ones are a prefix of the stream, discarded ones the rest */
	assert_int_equal(relayed + discarded, 161);
	assert_true(relayed >= 21 && discarded >= 10);
	assert_int_equal(last_relayed + 1, first_discarded);
	for (int k = 151; k < 161; k++) {
		char id[32];
		snprintf(id, sizeof(id), "r-%03d", k);
		expect(by, id, "discarded", "order_deleted");
	}
	json_t *again = json_array_get(json_object_get(by, "r-000"), 1);
	assert_string_equal(h_str(again, "outcome"), "duplicate");
	fprintf(stderr, "race: %d relayed, %d discarded\n", relayed, discarded);
	json_decref(by);
	json_decref(recs);
	h_end();
}

/* An item carrying one of the remote system's correlation fields; key2
 * NULL for an item with only a Key1. */
static json_t *item_with(const char *uuid, const char *key1, const char *won,
			 const char *field, json_t *value)
{
	json_t *v = item(uuid, key1, won ? won : "");
	json_t *it = json_object_get(v, "item");
	if (!won)
		json_object_del(it, "key2");
	if (field)
		json_object_set_new(it, field, value);
	return v;
}

/*
 * Contract 5: the source_wo_id and source_wo_number pushed for an order
 * identify its relayed data too, so after a delete an item carrying one
 * is discarded whatever its keys say (a number pushed, a string relayed
 * back: the same id); and the new Key1 Pruvan recreates the deleted order
 * under stays its copy's: a later item with only that Key1 is discarded
 * too, for the same reason.
 */
static void relay_source_ids_identify_deleted_order(void **state)
{
	(void)state;
	h_begin("relay_source_ids_identify_deleted_order");
	worker();
	long base = h_topic_count(H_TOPIC_RESULTS);
	json_t *c = h_event_create("e-swc", "acme", "WO-SW", 1);
	json_t *o = json_object_get(c, "order");
	json_object_set_new(o, "source_wo_id", json_string("SRC-77"));
	json_object_set_new(o, "source_wo_number", json_integer(4711));
	put(H_TOPIC_ORDERS, c);
	assert_true(h_await_count(H_TOPIC_RESULTS, base + 1, WAIT_MS) >=
		    base + 1);
	put(H_TOPIC_INBOUND, item("w-0", "7000", "WO-SW")); /* Key1 learned */
	assert_true(h_await_count(H_TOPIC_RESULTS, base + 2, WAIT_MS) >=
		    base + 2);
	put(H_TOPIC_ORDERS,
	    h_event("e-swd", "acme", "delete", "WO-SW", 2, NULL));
	assert_true(h_await_count(H_TOPIC_RESULTS, base + 3, WAIT_MS) >=
		    base + 3);

	put(H_TOPIC_INBOUND, item_with("w-1", "7001", "WO-ELSE", "source_wo_id",
				       json_string("SRC-77")));
	put(H_TOPIC_INBOUND,
	    item_with("w-2", "7002", "WO-ELSE2", "source_wo_number",
		      json_string("4711")));
	put(H_TOPIC_INBOUND, item("w-3", "7003", "WO-SW")); /* recreated */
	put(H_TOPIC_INBOUND, item_with("w-4", "7004", "WO-LIVE", "source_wo_id",
				       json_string("SRC-78")));
	assert_true(h_await_count(H_TOPIC_RESULTS, base + 7, WAIT_MS) >=
		    base + 7);
	/* only the recreated order's Key1, after its first item */
	put(H_TOPIC_INBOUND, item_with("w-5", "7003", NULL, NULL, NULL));
	json_t *by = results(base + 8);
	expect(by, "w-0", "relayed", NULL);
	expect(by, "e-swd", "deleted", NULL);
	expect(by, "w-1", "discarded", "order_deleted");
	expect(by, "w-2", "discarded", "order_deleted");
	expect(by, "w-3", "discarded", "recreated_after_delete");
	expect(by, "w-4", "relayed", NULL);
	expect(by, "w-5", "discarded", "recreated_after_delete");
	json_decref(by);
	h_end();
}

static void restart_between_delete_and_items(void **state)
{
	(void)state;
	h_begin("restart_between_delete_and_items");
	char cfg[512];
	h_path(cfg, sizeof(cfg), "config.json");
	long base = h_topic_count(H_TOPIC_RESULTS);

	/* worker 1: create, first item (Key1 555), delete; then it stops */
	h_worker_t *w1 = worker();
	put(H_TOPIC_ORDERS, h_event_create("e-sc", "acme", "WO-S", 1));
	put(H_TOPIC_INBOUND, item("s-1", "555", "WO-S"));
	assert_true(h_await_count(H_TOPIC_RESULTS, base + 2, WAIT_MS) >=
		    base + 2);
	put(H_TOPIC_ORDERS, h_event("e-sd", "acme", "delete", "WO-S", 2, NULL));
	assert_true(h_await_count(H_TOPIC_RESULTS, base + 3, WAIT_MS) >=
		    base + 3);
	assert_int_equal(h_worker_signal(w1, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w1, WAIT_MS), 0);
	W = NULL;

	/* while no worker runs, Pruvan relays queued data under both Key1s */
	put(H_TOPIC_INBOUND, item("s-2", "555", "WO-S"));
	put(H_TOPIC_INBOUND, item("s-3", "556", "WO-S"));
	put(H_TOPIC_INBOUND, item("s-4", "555", "WO-T"));

	/* worker 2 knows all of it from Redis alone */
	h_worker_t *w2 = h_worker_run("after", cfg, true);
	assert_non_null(w2);
	assert_int_equal(h_worker_wait(w2, 60000), 0);
	json_t *recs = h_consume(H_TOPIC_RESULTS, base + 6, WAIT_MS);
	assert_int_equal(json_array_size(recs), base + 6);
	json_t *by = h_by_event(recs);
	expect(by, "s-1", "relayed", NULL);
	expect(by, "e-sd", "deleted", NULL);
	expect(by, "s-2", "discarded", "order_deleted");
	expect(by, "s-3", "discarded", "recreated_after_delete");
	expect(by, "s-4", "discarded", "order_deleted");
	json_decref(by);
	json_decref(recs);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(relay_discard_and_reject),
	    cmocka_unit_test(delete_races_items),
	    cmocka_unit_test(relay_source_ids_identify_deleted_order),
	    cmocka_unit_test(restart_between_delete_and_items),
	};
	return cmocka_run_group_tests(tests, h_suite_setup, h_suite_teardown);
}
