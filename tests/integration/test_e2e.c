/*
 * End to end: one create event on the orders topic becomes a Pruvan push
 * (seen by the simulator) and one outcome record on the results topic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

H_SUITE("e2e", 2)

static void create_reaches_pruvan_and_results(void **state)
{
	(void)state;
	h_begin("create_reaches_pruvan_and_results");
	char cfg[512];
	assert_int_equal(h_write_config("config.json", NULL, cfg, sizeof(cfg)), 0);

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(create_reaches_pruvan_and_results),
	};
	return cmocka_run_group_tests(tests, h_suite_setup, h_suite_teardown);
}
