/*
 * getWorkOrders (contract 5.1) with two replicas: a full refresh
 * (timestamp null) answers the live orders with every field last pushed,
 * not the deleted one; a timestamp answers only what changed since, with
 * its new values, through either replica; a malformed timestamp is 400.
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "harness.h"

#define WAIT_MS	 20000
#define TOKEN	 "it-relay-Token-0123456789"
#define PASSWORD "it-relay-Password-9876543210"
#define CRED	 "\"username\":\"acme-int\",\"token\":\"" TOKEN "\""

H_SUITE("relay-orders", 2)

#include "relay_it.h"

/* getWorkOrders through port: the answer's orders by workOrderNumber. */
static json_t *work_orders(int port, const char *timestamp)
{
	char payload[256];
	snprintf(payload, sizeof(payload), "{" CRED ",\"timestamp\":%s}",
		 timestamp);
	json_t *ans = NULL;
	assert_int_equal(post(port, "/pruvan/acme/getWorkOrders.php", NULL,
			      payload, false, &ans),
			 200);
	assert_string_equal(h_str(ans, "error"), "");
	json_t *list = json_object_get(ans, "workOrders");
	assert_true(json_is_array(list));
	json_t *by = json_object();
	size_t i;
	json_t *wo;
	json_array_foreach(list, i, wo)
	    json_object_set(by, h_str(wo, "workOrderNumber"), wo);
	assert_int_equal(json_object_size(by), json_array_size(list));
	json_decref(ans);
	return by;
}

static void relay_get_work_orders(void **state)
{
	(void)state;
	h_begin("relay_get_work_orders");
	char media[512], cfg[512];
	write_acme_relay_config(media, sizeof(media), cfg, sizeof(cfg));
	int r1, o1, r2, o2;
	h_worker_t *w1 = learned_worker("w1", cfg, &r1, &o1);
	h_worker_t *w2 = learned_worker("w2", cfg, &r2, &o2);
	await_assigned(w1, w2);

	const char *wons[] = {"GW-A", "GW-B", "GW-C"};
	for (int i = 0; i < 3; i++) {
		char id[16];
		snprintf(id, sizeof(id), "gw-c%d", i);
		json_t *ev = h_event_create(id, "acme", wons[i], 1);
		assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
		json_decref(ev);
	}
	json_t *ev = h_event("gw-d2", "acme", "delete", "GW-C", 2, NULL);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
	json_decref(ev);
	json_t *by = NULL;
	outcomes(4, "gw-d2", &by);
	assert_string_equal(h_str(h_one(by, "gw-d2"), "outcome"), "deleted");
	json_decref(by);

	/* a full refresh: the live orders, every field last pushed */
	json_t *all = work_orders(r1, "null");
	assert_int_equal(json_object_size(all), 2);
	json_t *a = json_object_get(all, "GW-A");
	assert_non_null(a);
	assert_non_null(json_object_get(all, "GW-B"));
	assert_null(json_object_get(all, "GW-C"));
	assert_string_equal(h_str(a, "address1"), "111 East Main");
	assert_true(json_is_array(json_object_get(a, "services")));
	json_decref(all);

	/* an update after timestamp T: since T only that order, through the
	 * other replica, with its new value */
	int64_t t = (int64_t)time(NULL);
	while ((int64_t)time(NULL) == t)
		h_nap_ms(20); /* timestamps are whole seconds */
	t = (int64_t)time(NULL);
	ev = h_event_update("gw-u0", "acme", "GW-A", 2,
			    "Call Office 555-000-1111");
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
	json_decref(ev);
	outcomes(5, "gw-u0", &by);
	assert_string_equal(h_str(h_one(by, "gw-u0"), "outcome"), "updated");
	json_decref(by);
	char ts[32];
	snprintf(ts, sizeof(ts), "%lld", (long long)t);
	json_t *since = work_orders(r2, ts);
	assert_int_equal(json_object_size(since), 1);
	a = json_object_get(since, "GW-A");
	assert_string_equal(h_str(a, "workOrderInfo"),
			    "Call Office 555-000-1111");
	assert_string_equal(h_str(a, "address1"), "111 East Main");
	json_decref(since);
	/* as a string too; a future timestamp finds nothing */
	snprintf(ts, sizeof(ts), "\"%lld\"", (long long)t);
	since = work_orders(r1, ts);
	assert_int_equal(json_object_size(since), 1);
	json_decref(since);
	since = work_orders(r1, "4102444800");
	assert_int_equal(json_object_size(since), 0);
	json_decref(since);

	/* the same through pruvan-call, as Pruvan's Full Refresh and an
	 * incremental import ask */
	char *out = NULL, args[64];
	assert_int_equal(pruvan_call(r2, "acme", "getWorkOrders", &out), 0);
	json_t *full = json_loads(out, 0, NULL);
	free(out);
	assert_int_equal(json_array_size(json_object_get(full, "workOrders")),
			 2);
	json_decref(full);
	snprintf(args, sizeof(args), "getWorkOrders --timestamp %lld",
		 (long long)t);
	assert_int_equal(pruvan_call(r1, "acme", args, &out), 0);
	full = json_loads(out, 0, NULL);
	free(out);
	assert_int_equal(json_array_size(json_object_get(full, "workOrders")),
			 1);
	json_decref(full);

	/* malformed timestamp: 400 */
	json_t *ans = NULL;
	assert_int_equal(post(r1, "/pruvan/acme/getWorkOrders.php", NULL,
			      "{" CRED ",\"timestamp\":\"soon\"}", false, &ans),
			 400);
	json_decref(ans);

	assert_int_equal(h_worker_signal(w1, SIGTERM), 0);
	assert_int_equal(h_worker_signal(w2, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w1, WAIT_MS), 0);
	assert_int_equal(h_worker_wait(w2, WAIT_MS), 0);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(relay_get_work_orders),
	};
	return cmocka_run_group_tests(tests, h_suite_setup, h_suite_teardown);
}
