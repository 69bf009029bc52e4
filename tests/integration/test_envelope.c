/*
 * A record's envelope, end to end against the mock cluster:
 *   - the input's Kafka headers come back on its outcome record (as Kafka
 *     headers and as the outcome's "headers" object) and on its DLQ
 *     record beside the x-error-* headers; `replay` puts them back on the
 *     replayed record without the DLQ's own; a record without headers has
 *     no "headers" field;
 *   - the worker's log line for an event carries its W3C traceparent;
 *   - a value in Schema Registry framing (magic byte 0, 4-byte schema id)
 *     is read as the JSON after it, its schemaId on the outcome;
 *   - /metrics carries librdkafka's statistics (broker state and round
 *     trips, per-partition lag, the producer's queue) and process_*.
 * Every outcome is validated against the outcome schema.
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
#include <librdkafka/rdkafka.h>

#include "harness.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static char cfg[512];

static int setup(void **state)
{
	(void)state;
	if (h_start_all("envelope", 1))
		return -1;
	json_t *o =
	    json_pack("{s:{s:i}}", "kafka", "statistics.interval.ms", 100);
	int rc = h_write_config("config.json", o, cfg, sizeof(cfg));
	json_decref(o);
	return rc;
}

/* Produce value[0..len) with headers (name, value pairs, NULL-ended). */
static void produce(const char *key, const char *value, size_t len, ...)
{
	char err[256];
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	assert_int_equal(rd_kafka_conf_set(c, "bootstrap.servers",
					   h_kafka_bootstraps(), err,
					   sizeof(err)),
			 RD_KAFKA_CONF_OK);
	rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
	assert_non_null(p);
	rd_kafka_headers_t *h = rd_kafka_headers_new(4);
	va_list ap;
	va_start(ap, len);
	for (const char *n; (n = va_arg(ap, const char *));)
		rd_kafka_header_add(h, n, -1, va_arg(ap, const char *), -1);
	va_end(ap);
	assert_int_equal(
	    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(H_TOPIC_ORDERS),
			      RD_KAFKA_V_KEY(key, strlen(key)),
			      RD_KAFKA_V_VALUE((void *)value, len),
			      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			      RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
	    0);
	assert_int_equal(rd_kafka_flush(p, 10000), 0);
	rd_kafka_destroy(p);
}

static char *event_text(const char *id, const char *won)
{
	json_t *ev = h_event_create(id, "acme", won, 1);
	char *t = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	return t;
}

/* The record of recs whose value has eventId id (borrowed), or NULL. */
static json_t *by_id(json_t *recs, const char *id)
{
	size_t i;
	json_t *r;
	json_array_foreach(recs, i, r)
	{
		const char *e = h_str(json_object_get(r, "value"), "eventId");
		if (id ? e && !strcmp(e, id) : !e)
			return r;
	}
	return NULL;
}

static void headers_framing_and_replay(void **state)
{
	(void)state;
	h_begin("headers_framing_and_replay");
	const char *args[] = {"--log-level", "debug", "run", "-c", cfg, NULL};
	h_worker_t *w = h_worker_start("worker-env", args);
	assert_non_null(w);

	char *e1 = event_text("env-1", "WO-E1");
	produce("acme/WO-E1", e1, strlen(e1), "traceparent", TP,
		"x-correlation-id", "corr-1", NULL);
	free(e1);
	produce("acme/WO-E2", "{not json", 9, "x-correlation-id", "corr-2",
		"x-error-reason", "forged", NULL);
	char *e3 = event_text("env-3", "WO-E3");
	size_t n3 = strlen(e3);
	char *framed = malloc(n3 + 5);
	memcpy(framed, "\0\0\0\x01\x2c", 5); /* schema id 300 */
	memcpy(framed + 5, e3, n3);
	produce("acme/WO-E3", framed, n3 + 5, NULL);
	free(framed);
	free(e3);

	assert_true(h_await_count(H_TOPIC_RESULTS, 3, 60000) >= 3);
	json_t *recs = h_consume(H_TOPIC_RESULTS, 3, 15000);
	assert_int_equal(h_check_schema(recs, "outcome.schema.json"), 0);

	json_t *r1 = by_id(recs, "env-1");
	assert_non_null(r1);
	json_t *o1 = json_object_get(r1, "value");
	assert_string_equal(h_str(o1, "outcome"), "created");
	json_t *hdr = json_object_get(o1, "headers");
	assert_string_equal(h_str(hdr, "traceparent"), TP);
	assert_string_equal(h_str(hdr, "x-correlation-id"), "corr-1");
	assert_int_equal(json_object_size(hdr), 2);
	assert_null(json_object_get(o1, "schemaId"));
	/* and as the outcome record's Kafka headers */
	assert_string_equal(
	    h_str(json_object_get(r1, "headers"), "traceparent"), TP);

	json_t *r2 = by_id(recs, NULL);
	assert_non_null(r2);
	assert_string_equal(h_str(json_object_get(r2, "value"), "reason"),
			    "invalid_json");
	assert_string_equal(
	    h_str(json_object_get(json_object_get(r2, "value"), "headers"),
		  "x-correlation-id"),
	    "corr-2");

	json_t *r3 = by_id(recs, "env-3");
	assert_non_null(r3);
	json_t *o3 = json_object_get(r3, "value");
	assert_string_equal(h_str(o3, "outcome"), "created");
	assert_int_equal(json_integer_value(json_object_get(o3, "schemaId")),
			 300);
	assert_null(json_object_get(o3, "headers"));
	json_decref(recs);

	/* the DLQ copy: the back office's headers and the worker's own */
	assert_true(h_await_count(H_TOPIC_DLQ, 1, 30000) >= 1);
	json_t *dlq = h_consume(H_TOPIC_DLQ, 1, 15000);
	assert_int_equal(json_array_size(dlq), 1);
	json_t *dh = json_object_get(json_array_get(dlq, 0), "headers");
	assert_string_equal(h_str(dh, "x-correlation-id"), "corr-2");
	assert_string_equal(h_str(dh, "x-error-reason"), "invalid_json");
	json_decref(dlq);

	/* the event's log line carries its traceparent */
	assert_true(h_worker_log_has(w, "\"traceparent\":\"" TP "\"", 10000));

	/* librdkafka's statistics and the process metrics on /metrics */
	int port = h_worker_ops_port(w, 10000);
	assert_true(port > 0);
	const char *want[] = {
	    "\npruvan_bridge_kafka_broker_up{client=\"consumer\",broker=",
	    "\npruvan_bridge_kafka_broker_up{client=\"producer\",broker=",
	    "\npruvan_bridge_kafka_broker_rtt_avg_seconds{client=\"producer\"",
	    "\npruvan_bridge_kafka_partition_lag{topic=\"pruvan.orders\","
	    "partition=\"0\"} 0\n",
	    "\npruvan_bridge_kafka_producer_queue_messages ",
	    "\nprocess_open_fds ",
	    "\nprocess_cpu_seconds_total ",
	    "\nprocess_resident_memory_bytes ",
	    "\nprocess_start_time_seconds "};
	for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
		bool seen = false;
		for (int k = 0; k < 200 && !seen; k++) {
			char *body = NULL;
			if (h_http_get(port, "/metrics", &body) == 200)
				seen = strstr(body, want[i]) != NULL;
			free(body);
			if (!seen)
				h_nap_ms(50);
		}
		if (!seen)
			fprintf(stderr, "not on /metrics: %s\n", want[i] + 1);
		assert_true(seen);
	}

	/* replay: back on the orders topic with its headers, not the DLQ's */
	const char *rp[] = {"replay", "-c", cfg, NULL};
	assert_int_equal(h_bridge_cmd(rp, 60000, NULL), 0);
	json_t *orders = h_consume(H_TOPIC_ORDERS, 4, 15000);
	assert_int_equal(json_array_size(orders), 4);
	json_t *rh = json_object_get(json_array_get(orders, 3), "headers");
	assert_string_equal(h_str(rh, "x-correlation-id"), "corr-2");
	assert_non_null(h_str(rh, "x-replayed-from"));
	assert_null(json_object_get(rh, "x-error-reason"));
	assert_null(json_object_get(rh, "x-source-topic"));
	json_decref(orders);

	assert_int_equal(h_worker_signal(w, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w, 30000), 0);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(headers_framing_and_replay),
	};
	return cmocka_run_group_tests(tests, setup, h_group_teardown);
}
