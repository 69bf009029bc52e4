/*
 * validate teaches a pruvan:validate account its PushKey (contract 5.1,
 * 8), with two replicas of the worker: the account's events wait (not
 * ready, nothing pushed, nothing lost) until a key is known, then go to
 * the learned key, also when both replicas restarted meanwhile; a second
 * validate through the other replica switches both replicas without a
 * restart; the key never reaches a log.
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

H_SUITE("relay-pushkey", 2)

#include "relay_it.h"

/* The configuration of a pruvan:validate account acct (user jsmith, the
 * relay's credentials) with a grace period of grace_ms, written to file;
 * extra (stolen, may be NULL) adds top-level sections. Its path into cfg. */
static void write_learning_config(const char *file, const char *acct,
				  int grace_ms, json_t *extra, char *cfg,
				  size_t size)
{
	char media[512];
	h_path(media, sizeof(media), "media");
	json_t *ov = relay_config(
	    media, json_pack("{s:{s:s, s:[s], s:o}}", acct, "pushKeyUrl",
			     "pruvan:validate", "users", "jsmith", "relay",
			     relay_creds()));
	json_object_set_new(ov, "worker",
			    json_pack("{s:i}", "shutdownGraceMs", grace_ms));
	if (extra)
		json_object_update(ov, extra);
	json_decref(extra);
	assert_int_equal(h_write_config(file, ov, cfg, size), 0);
	json_decref(ov);
}

static void relay_learned_push_key(void **state)
{
	(void)state;
	h_begin("relay_learned_push_key");
	char api[256];
	snprintf(api, sizeof(api), "http://127.0.0.1:%d/api/", h_sim_port());
	/* a stop while events wait for the key hands them back after it */
	char cfg[512];
	write_learning_config("config.json", "lrn", 1500,
			      json_pack("{s:{s:s}}", "pruvan", "apiUrl", api),
			      cfg, sizeof(cfg));
	int r1, o1, r2, o2;
	h_worker_t *w1 = learned_worker("w1", cfg, &r1, &o1);
	h_worker_t *w2 = learned_worker("w2", cfg, &r2, &o2);
	await_assigned(w1, w2);

	/* no key yet: not ready, and the event waits (nothing pushed) */
	assert_int_equal(h_await_http_status(o1, "/readyz", 503, WAIT_MS), 503);
	char *body = NULL;
	assert_int_equal(h_http_get(o1, "/readyz", &body), 503);
	assert_non_null(strstr(body, "lrn"));
	free(body);
	json_t *ev = h_event_create("lk-c1", "lrn", "LK-1", 1);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
	json_decref(ev);
	/* consumed and held: its partition's replica reports it in flight */
	const char *fl = "pruvan_bridge_in_flight_events";
	int64_t until = pb_mono_ms() + WAIT_MS;
	while (h_await_metric(o1, fl, 1, 0) < 1 &&
	       h_await_metric(o2, fl, 1, 0) < 1) {
		if (pb_mono_ms() >= until)
			fail_msg("the event was never consumed");
		h_nap_ms(50);
	}
	assert_int_equal(h_topic_count(H_TOPIC_RESULTS), 0);
	assert_int_equal(pushed_to("key-A", "LK-1"), 0);

	/* both replicas restart meanwhile: the waiting event was never
	 * committed, so the new replicas have it again (not lost) */
	assert_int_equal(h_worker_signal(w1, SIGTERM), 0);
	assert_int_equal(h_worker_signal(w2, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w1, WAIT_MS), 0);
	assert_int_equal(h_worker_wait(w2, WAIT_MS), 0);
	assert_int_equal(h_topic_count(H_TOPIC_RESULTS), 0);
	w1 = learned_worker("w3", cfg, &r1, &o1);
	w2 = learned_worker("w4", cfg, &r2, &o2);
	await_assigned(w1, w2);
	assert_int_equal(h_await_http_status(o2, "/readyz", 503, WAIT_MS), 503);

	/* validate through replica 1: both become ready, the event goes to
	 * the learned key */
	validate(r1, "key-A");
	assert_int_equal(h_await_http_status(o1, "/readyz", 200, WAIT_MS), 200);
	assert_int_equal(h_await_http_status(o2, "/readyz", 200, WAIT_MS), 200);
	json_t *by = NULL;
	json_t *o = json_array_get(outcomes(1, "lk-c1", &by), 0);
	assert_string_equal(h_str(o, "outcome"), "created");
	json_decref(by);
	assert_int_equal(pushed_to("key-A", "LK-1"), 1);
	double t1 = h_await_metric(
	    o2,
	    "pruvan_bridge_push_key_learned_timestamp_seconds{account="
	    "\"lrn\"}",
	    1, WAIT_MS);
	assert_true(t1 > 1e9);

	/* a validate with wrong credentials teaches nothing; nor does one
	 * whose pushkey is not a string */
	json_t *ans = NULL;
	assert_int_equal(post(r1, "/pruvan/lrn/validate.php", NULL,
			      "{\"username\":\"acme-int\",\"token\":\"x\","
			      "\"pushkey\":\"evil\"}",
			      false, &ans),
			 401);
	assert_true(json_is_false(json_object_get(ans, "validated")));
	json_decref(ans);
	assert_int_equal(post(r1, "/pruvan/lrn/validate.php", NULL,
			      "{" CRED ",\"pushkey\":42}", false, &ans),
			 400);
	json_decref(ans);
	/* nor one whose pushkey is a URL off pruvan.apiUrl's host: the
	 * account's orders would be pushed there */
	assert_int_equal(post(r1, "/pruvan/lrn/validate.php", NULL,
			      "{" CRED ",\"pushkey\":\"http://127.0.0.2:1/"
			      "api/?apiKey=x\"}",
			      false, &ans),
			 400);
	const char *why = json_string_value(json_object_get(ans, "error"));
	assert_non_null(why);
	assert_non_null(strstr(why, "another host"));
	json_decref(ans);

	/* Pruvan's integration is set up again: a new key, delivered
	 * through replica 2; once both replicas show it learned, every push
	 * of either goes to it */
	int64_t t2 = (int64_t)time(NULL);
	while ((int64_t)time(NULL) == t2)
		h_nap_ms(20); /* the metric has second resolution */
	/* the second validate as pruvan-call makes it: password SHA-1 */
	char *out = NULL;
	assert_int_equal(
	    pruvan_call(r2, "lrn", "validate --pushkey key-B", &out), 0);
	assert_non_null(strstr(out, "\"validated\":true"));
	free(out);
	const char *metric =
	    "pruvan_bridge_push_key_learned_timestamp_seconds{account=\"lrn\"}";
	assert_true(h_await_metric(o1, metric, (double)t2 + 1, WAIT_MS) >
		    (double)t2);
	assert_true(h_await_metric(o2, metric, (double)t2 + 1, WAIT_MS) >
		    (double)t2);
	/* the metric follows the key read with it: the next push uses it;
	 * orders on both partitions, so both replicas push */
	char id[32], won[32];
	for (int i = 0; i < 6; i++) {
		snprintf(id, sizeof(id), "lk-c2-%d", i);
		snprintf(won, sizeof(won), "LK-2-%d", i);
		ev = h_event_create(id, "lrn", won, 1);
		assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
		json_decref(ev);
	}
	outcomes(7, "lk-c2-5", &by);
	for (int i = 0; i < 6; i++) {
		snprintf(id, sizeof(id), "lk-c2-%d", i);
		snprintf(won, sizeof(won), "LK-2-%d", i);
		assert_string_equal(h_str(h_one(by, id), "outcome"), "created");
		assert_int_equal(pushed_to("key-B", won), 1);
		assert_int_equal(pushed_to("key-A", won), 0);
		assert_int_equal(pushed_to("evil", won), 0);
	}
	json_decref(by);

	assert_int_equal(h_worker_signal(w1, SIGTERM), 0);
	assert_int_equal(h_worker_signal(w2, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w1, WAIT_MS), 0);
	assert_int_equal(h_worker_wait(w2, WAIT_MS), 0);
	assert_int_equal(h_worker_log_count(w1, "key-A"), 0);
	assert_int_equal(h_worker_log_count(w2, "key-B"), 0);
	h_end();
}

/* The replica holding an event that waits for its key is stopped; the
 * other then stops too, so the group rebalances while the first drains
 * within its grace period. The revoke it receives then is finished within
 * that grace period (librdkafka holds the rebalance until it is, and the
 * consumer's close waited for it forever): both exit 0, nothing pushed,
 * no outcome. */
static void stop_while_group_rebalances(void **state)
{
	(void)state;
	h_begin("stop_while_group_rebalances");
	/* the leave reaches the draining replica within its grace period */
	char cfg[512];
	write_learning_config(
	    "rebalance.json", "lrn2", 4000,
	    json_pack("{s:{s:s}}", "kafka", "heartbeat.interval.ms", "100"),
	    cfg, sizeof(cfg));
	int r1, o1, r2, o2;
	h_worker_t *w1 = learned_worker("rb1", cfg, &r1, &o1);
	h_worker_t *w2 = learned_worker("rb2", cfg, &r2, &o2);
	await_assigned(w1, w2);
	long results = h_topic_count(H_TOPIC_RESULTS);
	json_t *ev = h_event_create("rb-c1", "lrn2", "RB-1", 1);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
	json_decref(ev);
	const char *fl = "pruvan_bridge_in_flight_events";
	h_worker_t *holder = NULL, *other = NULL;
	int64_t until = pb_mono_ms() + WAIT_MS;
	while (!holder) {
		if (h_await_metric(o1, fl, 1, 0) >= 1)
			holder = w1, other = w2;
		else if (h_await_metric(o2, fl, 1, 0) >= 1)
			holder = w2, other = w1;
		else if (pb_mono_ms() >= until)
			fail_msg("the event was never consumed");
		else
			h_nap_ms(50);
	}
	assert_int_equal(h_worker_signal(holder, SIGTERM), 0);
	assert_true(
	    h_worker_log_has(holder, "stopping: finishing in-flight", WAIT_MS));
	assert_int_equal(h_worker_signal(other, SIGTERM), 0);
	assert_int_equal(h_worker_wait(other, WAIT_MS), 0);
	int rc = h_worker_wait(holder, WAIT_MS);
	if (rc != 0)
		h_worker_dump(holder, 30);
	assert_int_equal(rc, 0);
	assert_true(h_worker_log_count(holder, "partitions revoked") >= 1);
	assert_int_equal(h_topic_count(H_TOPIC_RESULTS), results);
	assert_int_equal(pushed_to("key-A", "RB-1"), 0);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(relay_learned_push_key),
	    cmocka_unit_test(stop_while_group_rebalances),
	};
	return cmocka_run_group_tests(tests, h_suite_setup, h_suite_teardown);
}
