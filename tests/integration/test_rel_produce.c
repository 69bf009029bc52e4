/*
 * Producing outcomes and DLQ copies under pressure and refusal (contract
 * sections 6 and 7), against real Redis, the mock cluster and the
 * simulator:
 *   - a producer queue of one message: every DLQ copy meets QUEUE_FULL
 *     right after its outcome was produced; the outcome is not produced
 *     again, each record gets exactly one outcome and one DLQ copy;
 *   - Produce requests answered MSG_SIZE_TOO_LARGE (a topic whose
 *     max.message.bytes is below the worker's): the records go out in
 *     their minimal form, once each, and the partition goes on;
 *   - Produce requests failing with a retriable error for longer than
 *     message.timeout.ms: the records are produced again after a backoff,
 *     a bounded number of times, and each arrives once;
 *   - a DLQ topic the worker may not write (TOPIC_AUTHORIZATION_FAILED):
 *     the DLQ copies are given up with an error log, every outcome is
 *     still published, and --exit-on-eof exits 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "test_rel_common.h"

#define WAIT_MS	    120000
#define API_PRODUCE 0

static char cfg[512];

static int setup(void **state)
{
	(void)state;
	if (h_start_all("rel-produce", 1))
		return -1;
	return h_write_config("config.json", NULL, cfg, sizeof(cfg));
}

/* n poison records and n creates, alternating, on one partition, for
 * orders PREFIX-i. Returns the offset of the first. */
static long produce_mix(const char *prefix, int n)
{
	long first = h_topic_count(H_TOPIC_ORDERS);
	for (int i = 0; i < n; i++) {
		char key[128], bad[64], id[64], won[64];
		snprintf(won, sizeof(won), "WO-%s-%d", prefix, i);
		snprintf(key, sizeof(key), "acme/%s", won);
		snprintf(bad, sizeof(bad), "poison %s %d", prefix, i);
		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		assert_int_equal(h_produce_nowait(H_TOPIC_ORDERS, key, bad), 0);
		json_t *ev = h_event_create(id, "acme", won, 1);
		assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, false), 0);
		json_decref(ev);
	}
	assert_int_equal(h_flush(10000), 0);
	return first;
}

static h_worker_t *run_to_end(const char *label, const char *c)
{
	h_worker_t *w = h_worker_run(label, c, true);
	assert_non_null(w);
	int rc = h_worker_wait(w, WAIT_MS);
	if (rc != 0)
		h_worker_dump(w, 40);
	assert_int_equal(rc, 0);
	return w;
}

/* Every record in [first, first + 2n) has exactly one outcome; the
 * poison ones (even) rejected invalid_json, the creates created. */
static void one_outcome_each(long first, int n)
{
	long total = first + 2 * n;
	json_t *recs = h_consume(H_TOPIC_RESULTS, total, 20000);
	assert_int_equal(json_array_size(recs), total);
	assert_int_equal(h_check_schema(recs, "outcome.schema.json"), 0);
	json_t *by = rel_by_source(recs);
	for (long off = first; off < total; off++) {
		json_t *o = rel_one(by, 0, off);
		assert_non_null(o);
		bool poison = (off - first) % 2 == 0;
		assert_string_equal(h_str(o, "outcome"),
				    poison ? "rejected" : "created");
	}
	json_decref(by);
	json_decref(recs);
}

static void queue_of_one(void **state)
{
	(void)state;
	h_begin("queue_of_one");
	long first = produce_mix("q1", 8);
	long dlq_before = h_topic_count(H_TOPIC_DLQ);
	json_t *ov = json_pack("{s:{s:s}}", "kafka",
			       "queue.buffering.max.messages", "1");
	char c[512];
	assert_int_equal(h_write_config("q1.json", ov, c, sizeof(c)), 0);
	json_decref(ov);
	run_to_end("q1", c);
	one_outcome_each(first, 8);
	json_t *dlq = h_consume(H_TOPIC_DLQ, dlq_before + 8, 20000);
	assert_int_equal(json_array_size(dlq), dlq_before + 8);
	for (int i = 0; i < 8; i++)
		assert_non_null(rel_dlq_of(dlq, 0, first + 2 * i));
	json_decref(dlq);
	h_end();
}

static void produce_refused_too_large(void **state)
{
	(void)state;
	h_begin("produce_refused_too_large");
	long first = produce_mix("big", 4);
	long dlq_before = h_topic_count(H_TOPIC_DLQ);
	/* the next Produce requests are refused as too large */
	/* the first Produce request is refused as too large */
	rd_kafka_mock_push_request_errors(h_kafka_mock(), API_PRODUCE, 1,
					  RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
	h_worker_t *w = run_to_end("big", cfg);
	one_outcome_each(first, 4);
	/* the refused records were written again, smaller, and went out */
	assert_true(h_worker_log_count(w, "writing a minimal form") >= 1);
	assert_int_equal(h_worker_log_count(w, "refused even the minimal"), 0);
	assert_int_equal(h_worker_log_count(w, "trying again after a backoff"),
			 0);
	json_t *dlq = h_consume(H_TOPIC_DLQ, dlq_before + 4, 20000);
	for (int i = 0; i < 4; i++)
		assert_non_null(rel_dlq_of(dlq, 0, first + 2 * i));
	json_decref(dlq);
	h_end();
}

static void dlq_not_authorised(void **state)
{
	(void)state;
	h_begin("dlq_not_authorised");
	long first = produce_mix("auth", 4);
	long dlq_before = h_topic_count(H_TOPIC_DLQ);
	rd_kafka_mock_topic_set_error(
	    h_kafka_mock(), H_TOPIC_DLQ,
	    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
	/* librdkafka reports a topic it may not write only as a timeout */
	json_t *ov =
	    json_pack("{s:{s:s}}", "kafka", "message.timeout.ms", "3000");
	char c[512];
	assert_int_equal(h_write_config("auth.json", ov, c, sizeof(c)), 0);
	json_decref(ov);
	h_worker_t *w = run_to_end("auth", c);
	rd_kafka_mock_topic_set_error(h_kafka_mock(), H_TOPIC_DLQ,
				      RD_KAFKA_RESP_ERR_NO_ERROR);
	one_outcome_each(first, 4);
	assert_int_equal(h_topic_count(H_TOPIC_DLQ), dlq_before);
	assert_int_equal(h_worker_log_count(w, "refused even the minimal form"),
			 4);
	h_end();
}

static void produce_retriable_timeouts(void **state)
{
	(void)state;
	h_begin("produce_retriable_timeouts");
	long first = produce_mix("retry", 3);
	long dlq_before = h_topic_count(H_TOPIC_DLQ);
	/* about 4 s of NOT_ENOUGH_REPLICAS: librdkafka retries them itself
	 * until message.timeout.ms (1 s), then the worker backs off */
	rd_kafka_resp_err_t errs[40];
	for (size_t i = 0; i < 40; i++)
		errs[i] = RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS;
	rd_kafka_mock_push_request_errors_array(h_kafka_mock(), API_PRODUCE, 40,
						errs);
	/* One Produce request in flight: the mock cluster checks the
	 * sequence numbers of transactional producers only, so with
	 * pipelining it accepts a later batch of this idempotent producer
	 * while an earlier one is still being retried, and librdkafka then
	 * counts the earlier batch as delivered ("implicitly acked by
	 * subsequent batch success"), which a real broker makes true by
	 * refusing the later batch (OUT_OF_ORDER_SEQUENCE_NUMBER). Against
	 * the mock that lost 3 records in about half the runs. */
	json_t *ov =
	    json_pack("{s:{s:s,s:s,s:s}}", "kafka", "message.timeout.ms",
		      "1000", "retry.backoff.ms", "100",
		      "max.in.flight.requests.per.connection", "1");
	char c[512];
	assert_int_equal(h_write_config("retry.json", ov, c, sizeof(c)), 0);
	json_decref(ov);
	h_worker_t *w = run_to_end("retry", c);
	one_outcome_each(first, 3);
	int tries = h_worker_log_count(w, "trying again after a backoff");
	fprintf(stderr, "[retry] %d backoffs logged\n", tries);
	assert_true(tries >= 1);
	assert_true(tries < 100); /* backed off, not a loop */
	json_t *dlq = h_consume(H_TOPIC_DLQ, dlq_before + 3, 20000);
	assert_int_equal(json_array_size(dlq), dlq_before + 3);
	json_decref(dlq);
	rd_kafka_mock_clear_request_errors(h_kafka_mock(), API_PRODUCE);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(queue_of_one),
	    cmocka_unit_test(produce_refused_too_large),
	    cmocka_unit_test(produce_retriable_timeouts),
	    cmocka_unit_test(dlq_not_authorised),
	};
	return cmocka_run_group_tests(tests, setup, h_group_teardown);
}
