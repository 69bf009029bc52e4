/*
 * Pushes on the wire as Pruvan documents them (contract section 8), end to
 * end through Kafka, Redis, the worker and the simulator: an account with
 * no bodyEncoding pushes the urlencoded field workOrders (and text that
 * needs escaping arrives exactly), bodyEncoding multipart pushes the same
 * field as multipart/form-data, and bodyEncoding json pushes a raw JSON
 * body, which the simulator, like Pruvan's documentation, refuses until it
 * is told to accept it: the event then fails (http_4xx), it is not
 * retried, and its neighbours of other accounts go through. A multipart
 * push that meets a 503 is sent again, the same body in a new form.
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

H_SUITE("push_encoding", 2)

/* Text a form encoder must escape: separators, '+', '%', quotes, UTF-8. */
#define TRICKY "Gate 1&2=open + 100% \"quoted\" caf\xc3\xa9 #5"

/* The last request the simulator kept for api_key, asserting it kept n. */
static json_t *last_request(const char *api_key, size_t n)
{
	json_t *reqs = h_sim_requests(api_key);
	assert_non_null(reqs);
	assert_int_equal(json_array_size(reqs), n);
	json_t *r = json_incref(json_array_get(reqs, n - 1));
	json_decref(reqs);
	return r;
}

static void produce_create(const char *id, const char *acct, const char *won)
{
	json_t *ev = h_event_create(id, acct, won, 1);
	json_object_set_new(json_object_get(ev, "order"), "workOrderInfo",
			    json_string(TRICKY));
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
	json_decref(ev);
}

static const char *outcome_of(json_t *by, const char *id)
{
	json_t *o = h_one(by, id);
	assert_non_null(o);
	return h_str(o, "outcome");
}

static void each_body_encoding_on_the_wire(void **state)
{
	(void)state;
	h_begin("each_body_encoding_on_the_wire");
	json_t *ov = json_pack("{s:{s:{s:s, s:[s]}, s:{s:s}, s:{s:s}}}",
			       "accounts", "acme", "mode", "internal", "users",
			       "jsmith", "mp", "bodyEncoding", "multipart",
			       "js", "bodyEncoding", "json");
	char cfg[512];
	assert_int_equal(h_write_config("config.json", ov, cfg, sizeof(cfg)),
			 0);
	json_decref(ov);
	produce_create("pe-form", "acme", "WO-F");
	produce_create("pe-mp", "mp", "WO-M");
	produce_create("pe-js-1", "js", "WO-J1");
	assert_int_equal(h_sim_faults("{\"fail\":{\"count\":1,\"status\":503,"
				      "\"workOrder\":\"WO-M\"}}"),
			 0);

	h_worker_t *w = h_worker_run("worker", cfg, true);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, 60000), 0);
	json_t *recs = h_consume(H_TOPIC_RESULTS, 3, 10000);
	json_t *by = h_by_event(recs);
	assert_string_equal(outcome_of(by, "pe-form"), "created");
	assert_string_equal(outcome_of(by, "pe-mp"), "created");
	assert_int_equal(
	    json_integer_value(json_object_get(h_one(by, "pe-mp"), "attempts")),
	    2);
	json_t *js = h_one(by, "pe-js-1");
	assert_string_equal(h_str(js, "outcome"), "failed");
	assert_string_equal(h_str(js, "reason"), "http_4xx");
	assert_int_equal(json_integer_value(json_object_get(js, "attempts")),
			 1);
	json_decref(by);
	json_decref(recs);

	json_t *r = last_request("acme", 1);
	assert_string_equal(h_str(r, "encoding"), "form");
	assert_string_equal(h_str(r, "contentType"),
			    "application/x-www-form-urlencoded");
	json_decref(r);
	r = last_request("mp", 2);
	assert_int_equal(json_integer_value(json_object_get(r, "status")), 200);
	assert_string_equal(h_str(r, "encoding"), "multipart");
	assert_non_null(
	    strstr(h_str(r, "contentType"), "multipart/form-data; boundary="));
	json_decref(r);
	r = last_request("js", 1);
	assert_string_equal(h_str(r, "encoding"), "json");
	assert_int_equal(json_integer_value(json_object_get(r, "status")), 400);
	json_decref(r);
	/* what was escaped on the wire arrives exactly */
	const char *accts[2] = {"acme", "mp"}, *wons[2] = {"WO-F", "WO-M"};
	for (int i = 0; i < 2; i++) {
		json_t *orders = h_sim_orders(accts[i]);
		json_t *wo = json_object_get(orders, wons[i]);
		assert_non_null(wo);
		assert_string_equal(h_str(wo, "workOrderInfo"), TRICKY);
		json_decref(orders);
	}

	/* told to accept raw JSON (as for an account whose Pruvan setup
	 * was confirmed to take it), the json account pushes fine */
	json_t *set = json_pack("{s:b}", "acceptJson", 1);
	json_t *ans = h_sim_post("/_sim/settings", set);
	json_decref(set);
	assert_true(json_is_true(json_object_get(ans, "acceptJson")));
	json_decref(ans);
	produce_create("pe-js-2", "js", "WO-J2");
	w = h_worker_run("worker2", cfg, true);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, 60000), 0);
	recs = h_consume(H_TOPIC_RESULTS, 4, 10000);
	by = h_by_event(recs);
	assert_string_equal(outcome_of(by, "pe-js-2"), "created");
	json_t *orders = h_sim_orders("js");
	assert_string_equal(
	    h_str(json_object_get(orders, "WO-J2"), "workOrderInfo"), TRICKY);
	json_decref(orders);
	json_decref(by);
	json_decref(recs);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(each_body_encoding_on_the_wire),
	};
	return cmocka_run_group_tests(tests, h_suite_setup, h_suite_teardown);
}
