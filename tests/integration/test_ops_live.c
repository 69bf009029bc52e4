/*
 * The operations endpoints of a running worker: /healthz, /readyz (and its
 * 503 with a JSON reason while Redis is down, and before Kafka ever
 * answered), /metrics checked by
 * promtool and for the series ops dashboards rely on, without secrets or
 * work order numbers in any label.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

H_SUITE("ops", 2)

static void endpoints_of_a_live_worker(void **state)
{
	(void)state;
	h_begin("endpoints_of_a_live_worker");
	char cfg[512];
	assert_int_equal(h_write_config("config.json", NULL, cfg, sizeof(cfg)),
			 0);
	json_t *ev = h_event_create("ops-1", "acme", "WO-OPS-1", 1);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
	json_decref(ev);

	h_worker_t *w = h_worker_run("worker", cfg, false);
	assert_non_null(w);
	int port = h_worker_ops_port(w, 20000);
	assert_true(port > 0);
	assert_int_equal(h_http_status(port, "/healthz"), 200);
	assert_int_equal(h_await_http_status(port, "/readyz", 200, 30000), 200);
	assert_true(h_await_count(H_TOPIC_RESULTS, 1, 30000) >= 1);

	/* the exposition passes promtool's linter */
	char *metrics = NULL;
	assert_int_equal(h_http_get(port, "/metrics", &metrics), 200);
	char path[512], cmd[1200];
	FILE *f = fopen(h_path(path, sizeof(path), "metrics.txt"), "w");
	assert_non_null(f);
	fputs(metrics, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd),
		 "command -v promtool >/dev/null || { echo 'promtool missing: "
		 "run scripts/deps.sh --test (Debian package prometheus)' >&2; "
		 "exit 127; }; promtool check metrics < '%s' >&2",
		 path);
	assert_int_equal(system(cmd), 0);

	/* the series dashboards and alerts use */
	static const char *want[] = {
	    "pruvan_bridge_build_info{",
	    "pruvan_bridge_ready 1",
	    "pruvan_bridge_events_consumed_total{",
	    "pruvan_bridge_outcomes_total{",
	    "outcome=\"created\"",
	    "pruvan_bridge_pushes_total{",
	    "status_class=\"2xx\"",
	    "pruvan_bridge_push_duration_seconds_bucket{",
	    "pruvan_bridge_batch_size_bucket{",
	    "pruvan_bridge_redis_roundtrip_seconds_bucket{",
	    "pruvan_bridge_circuit_open{account=\"acme\"} 0",
	    "pruvan_bridge_auto_admin{account=\"acme\"}",
	    "pruvan_bridge_in_flight_events",
	    "pruvan_bridge_partitions_assigned",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
		if (!strstr(metrics, want[i]))
			fail_msg("/metrics lacks %s", want[i]);
	}
	/* no secret, no work order number in any label */
	assert_null(strstr(metrics, "apiKey"));
	assert_null(strstr(metrics, "WO-OPS-1"));
	free(metrics);

	/* Redis down: not ready, with a reason; back by itself */
	h_redis_kill();
	assert_int_equal(h_await_http_status(port, "/readyz", 503, 30000), 503);
	char *body = NULL;
	assert_int_equal(h_http_get(port, "/readyz", &body), 503);
	json_t *why = json_loads(body, 0, NULL);
	assert_non_null(why);
	char *dump = json_dumps(why, 0);
	assert_non_null(strstr(dump, "edis"));
	free(dump);
	json_decref(why);
	free(body);
	assert_int_equal(h_http_status(port, "/healthz"), 200);
	assert_int_equal(h_redis_restart(), 0);
	assert_int_equal(h_await_http_status(port, "/readyz", 200, 30000), 200);

	/* SIGTERM: a clean exit */
	assert_int_equal(h_worker_signal(w, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w, 30000), 0);
	assert_int_equal(h_worker_log_count(w, "apiKey"), 0);
	h_end();
}

/* A worker that has never reached Kafka is not consuming: /readyz says
 * so from the start (no consumer error reaches the loop while every
 * broker is down, so nothing else would turn it not ready). */
static void not_ready_before_kafka_answers(void **state)
{
	(void)state;
	h_begin("not_ready_before_kafka_answers");
	char cfg[512];
	json_t *ov =
	    json_pack("{s:{s:s}}", "kafka", "bootstrap.servers", "127.0.0.1:1");
	assert_int_equal(h_write_config("nokafka.json", ov, cfg, sizeof(cfg)),
			 0);
	json_decref(ov);
	h_worker_t *w = h_worker_run("worker-nokafka", cfg, false);
	assert_non_null(w);
	int port = h_worker_ops_port(w, 20000);
	assert_true(port > 0);
	assert_int_equal(h_http_status(port, "/healthz"), 200);
	char *body = NULL;
	assert_int_equal(h_http_get(port, "/readyz", &body), 503);
	assert_non_null(strstr(body, "Kafka"));
	free(body);
	char *metrics = NULL;
	assert_int_equal(h_http_get(port, "/metrics", &metrics), 200);
	assert_non_null(strstr(metrics, "pruvan_bridge_ready 0"));
	free(metrics);
	assert_int_equal(h_worker_signal(w, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w, 30000), 0);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(endpoints_of_a_live_worker),
	    cmocka_unit_test(not_ready_before_kafka_answers),
	};
	return cmocka_run_group_tests(tests, h_suite_setup, h_suite_teardown);
}
