/*
 * The relay receiver inside a running worker (relay.listen set): Pruvan's
 * calls become records on the inbound topic (acknowledged before Pruvan
 * gets its answer) and then outcomes of the worker's pipeline:
 *  - a multipart uploadPictures call (secret in the URL) and a urlencoded
 *    status call (secret in a header) are answered as Pruvan expects, the
 *    records are on pruvan.inbound keyed ACCOUNT/KEY1 when the answer
 *    arrives, and come out relayed with their item;
 *  - the same status call again is a duplicate downstream (stable uuId);
 *  - after a delete, an item Pruvan relays under a new Key1 is discarded;
 *  - a wrong secret is 401 with a JSON error; the secret is in no log,
 *    record or metric; relay metrics count calls by method and status;
 *  - SIGTERM stops the worker and its receiver cleanly.
 * (503 while Kafka is down is in tests/unit/test_relay.c, against the
 * mock cluster: taking the harness's brokers down stalls its own clients.)
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
#include <curl/curl.h>

#include "harness.h"

#define WAIT_MS 20000
#define SECRET	"it-relay-Secret-0123456789"

H_SUITE("relay", 2)

/* The relay port from the worker's "relay endpoint listening" line. */
static int relay_port(h_worker_t *w)
{
	/* await the line, but not past the worker's exit */
	int64_t deadline = pb_mono_ms() + WAIT_MS;
	while (!h_worker_log_has(w, "relay endpoint listening", 0)) {
		if (!h_worker_running(w) || pb_mono_ms() >= deadline)
			return -1;
		h_nap_ms(20);
	}
	char *text = h_read_file(h_worker_log(w), NULL);
	char *line = text ? strstr(text, "relay endpoint listening") : NULL;
	int port = -1;
	if (line) {
		while (line > text && line[-1] != '\n')
			line--;
		char *end = strchr(line, '\n');
		json_t *j = json_loadb(
		    line, end ? (size_t)(end - line) : strlen(line), 0, NULL);
		const char *p = json_string_value(json_object_get(j, "port"));
		if (p)
			port = (int)strtol(p, NULL, 10);
		json_decref(j);
	}
	free(text);
	return port;
}

/*
 * POST to the relay: multipart with a payload part and a photo when
 * multipart, else a urlencoded payload=...; header may be NULL. Returns
 * the status; *body the parsed answer (new ref, may be NULL).
 */
static long post(int port, const char *path, const char *header,
		 const char *payload, bool multipart, json_t **body)
{
	char url[512];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	CURL *c = curl_easy_init();
	h_body_t t = {0};
	struct curl_slist *h = header ? curl_slist_append(NULL, header) : NULL;
	curl_mime *mime = NULL;
	char *form = NULL;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_curl_collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
	if (h)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (multipart) {
		static char photo[64 * 1024];
		memset(photo, 0xff, sizeof(photo));
		mime = curl_mime_init(c);
		curl_mimepart *part = curl_mime_addpart(mime);
		curl_mime_name(part, "payload");
		curl_mime_data(part, payload, CURL_ZERO_TERMINATED);
		part = curl_mime_addpart(mime);
		curl_mime_name(part, "file");
		curl_mime_filename(part, "p.jpg");
		curl_mime_type(part, "image/jpeg");
		curl_mime_data(part, photo, sizeof(photo));
		curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
	} else {
		char *esc = curl_easy_escape(c, payload, 0);
		size_t n = strlen(esc) + 16;
		form = malloc(n);
		snprintf(form, n, "payload=%s", esc);
		curl_free(esc);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
	}
	long st = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	curl_mime_free(mime);
	free(form);
	*body = t.data ? json_loads(t.data, 0, NULL) : NULL;
	free(t.data);
	return st;
}

/* Await n results and return the outcomes of id (array, borrowed from
 * *by which the caller releases). */
static json_t *outcomes(long n, const char *id, json_t **by)
{
	assert_true(h_await_count(H_TOPIC_RESULTS, n, WAIT_MS) >= n);
	json_t *recs = h_consume(H_TOPIC_RESULTS, n, WAIT_MS);
	assert_true((long)json_array_size(recs) >= n);
	*by = h_by_event(recs);
	json_decref(recs);
	json_t *all = json_object_get(*by, id);
	if (!all)
		fail_msg("no outcome for %s", id);
	return all;
}

#define PHOTO                                                                  \
	"{\"uuId\":\"rl-ph-1\",\"key1\":111,\"key2\":\"WO-1\","                \
	"\"key4\":\"Task-01 Mow Grass\",\"fileType\":\"jpg\","                 \
	"\"password\":\"pruvan-pw\"}"
#define STATUS                                                                 \
	"{\"username\":\"u\",\"password\":\"pruvan-pw\",\"token\":"            \
	"\"t\",\"workOrders\":[{\"workOrderNumber\":\"WO-1\","                 \
	"\"key1\":\"111\",\"status\":\"complete\"}]}"

static void relay_calls_end_to_end(void **state)
{
	(void)state;
	h_begin("relay_calls_end_to_end");
	setenv("PB_IT_RELAY_SECRET", SECRET, 1);
	json_t *ov = json_pack("{s:{s:s, s:s, s:i}, s:{s:{s:s, s:[s], s:b}}}",
			       "relay", "listen", "127.0.0.1:0", "secret",
			       "env:PB_IT_RELAY_SECRET", "ackTimeoutMs", 1500,
			       "accounts", "acme", "mode", "internal", "users",
			       "jsmith", "allowDeletes", 1);
	char cfg[512];
	assert_int_equal(h_write_config("config.json", ov, cfg, sizeof(cfg)),
			 0);
	json_decref(ov);
	h_worker_t *w = h_worker_run("worker", cfg, false);
	assert_non_null(w);
	int port = relay_port(w);
	assert_true(port > 0);
	int ops = h_worker_ops_port(w, WAIT_MS);
	assert_true(ops > 0 && ops != port);

	json_t *ev = h_event_create("rl-c1", "acme", "WO-1", 1);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
	json_decref(ev);

	/* uploadPictures, multipart, secret in the URL */
	json_t *ans = NULL;
	assert_int_equal(post(port, "/relay/acme/uploadPictures?secret=" SECRET,
			      NULL, PHOTO, true, &ans),
			 200);
	assert_true(json_is_true(json_object_get(ans, "status")));
	assert_string_equal(h_str(ans, "error"), "");
	json_decref(ans);
	/* acknowledged before the answer: on the topic now, no waiting */
	assert_int_equal(h_topic_count(H_TOPIC_INBOUND), 1);
	json_t *in = h_consume(H_TOPIC_INBOUND, 1, WAIT_MS);
	assert_int_equal(json_array_size(in), 1);
	json_t *rec = json_array_get(in, 0);
	assert_string_equal(h_str(rec, "key"), "acme/111");
	json_t *v = json_object_get(rec, "value");
	assert_string_equal(h_str(v, "account"), "acme");
	assert_string_equal(h_str(v, "kind"), "photo");
	assert_string_equal(h_str(json_object_get(v, "item"), "uuId"),
			    "rl-ph-1");
	assert_null(strstr(h_str(rec, "raw"), "pruvan-pw"));
	json_decref(in);

	json_t *by = NULL;
	json_t *o = json_array_get(outcomes(2, "rl-ph-1", &by), 0);
	assert_string_equal(h_str(o, "outcome"), "relayed");
	assert_string_equal(h_str(o, "source"), "inbound");
	assert_string_equal(h_str(o, "workOrderNumber"), "WO-1");
	assert_string_equal(h_str(json_object_get(o, "item"), "key4"),
			    "Task-01 Mow Grass");
	assert_string_equal(h_str(h_one(by, "rl-c1"), "outcome"), "created");
	json_decref(by);

	/* status, urlencoded, secret in a header; twice */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(post(port, "/relay/acme/status",
				      "X-Relay-Secret: " SECRET, STATUS, false,
				      &ans),
				 200);
		assert_true(json_is_true(json_object_get(ans, "status")));
		assert_true(json_is_null(json_object_get(ans, "error")));
		json_decref(ans);
	}
	assert_true(h_await_count(H_TOPIC_RESULTS, 4, WAIT_MS) >= 4);
	json_t *recs = h_consume(H_TOPIC_RESULTS, 4, WAIT_MS);
	assert_int_equal(json_array_size(recs), 4);
	const char *status_id = NULL;
	size_t i;
	json_array_foreach(recs, i, rec)
	{
		v = json_object_get(rec, "value");
		if (h_str(v, "kind") && !strcmp(h_str(v, "kind"), "status"))
			status_id = h_str(v, "eventId");
	}
	assert_non_null(status_id);
	by = h_by_event(recs);
	json_t *two = json_object_get(by, status_id);
	assert_int_equal(json_array_size(two), 2);
	assert_string_equal(h_str(json_array_get(two, 0), "outcome"),
			    "relayed");
	assert_string_equal(h_str(json_array_get(two, 1), "outcome"),
			    "duplicate");
	json_decref(by);
	json_decref(recs);

	/* delete WO-1; Pruvan recreates it under Key1 222 to relay more */
	ev = h_event("rl-d1", "acme", "delete", "WO-1", 2, NULL);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
	json_decref(ev);
	o = json_array_get(outcomes(5, "rl-d1", &by), 0);
	assert_string_equal(h_str(o, "outcome"), "deleted");
	json_decref(by);
	assert_int_equal(
	    post(port, "/relay/acme/uploadPictures",
		 "Authorization: Bearer " SECRET,
		 "{\"uuId\":\"rl-ph-2\",\"key1\":\"222\",\"key2\":\"WO-1\"}",
		 true, &ans),
	    200);
	json_decref(ans);
	o = json_array_get(outcomes(6, "rl-ph-2", &by), 0);
	assert_string_equal(h_str(o, "outcome"), "discarded");
	assert_string_equal(h_str(o, "reason"), "recreated_after_delete");
	json_decref(by);

	/* wrong secret: 401, JSON error, nothing written */
	long before = h_topic_count(H_TOPIC_INBOUND);
	assert_int_equal(post(port, "/relay/acme/uploadPictures?secret=nope",
			      NULL, PHOTO, true, &ans),
			 401);
	assert_non_null(h_str(ans, "error"));
	json_decref(ans);
	assert_int_equal(h_topic_count(H_TOPIC_INBOUND), before);

	/* metrics by method and status; the secret nowhere */
	char *m = NULL;
	assert_int_equal(h_http_get(ops, "/metrics", &m), 200);
	assert_non_null(strstr(m, "pruvan_bridge_relay_requests_total{method="
				  "\"status\",status=\"200\"} 2\n"));
	assert_non_null(strstr(m, "pruvan_bridge_relay_requests_total{method="
				  "\"uploadPictures\",status=\"401\"} 1\n"));
	assert_non_null(strstr(m, "pruvan_bridge_relay_items_total{account="
				  "\"acme\",kind=\"status\"} 2\n"));
	assert_null(strstr(m, SECRET));
	free(m);

	assert_int_equal(h_worker_signal(w, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w, WAIT_MS), 0);
	assert_int_equal(h_worker_log_count(w, SECRET), 0);
	assert_int_equal(h_worker_log_count(w, "pruvan-pw"), 0);
	recs = h_consume(H_TOPIC_RESULTS, 6, WAIT_MS);
	char *all = json_dumps(recs, 0);
	assert_null(strstr(all, SECRET));
	assert_null(strstr(all, "pruvan-pw"));
	free(all);
	json_decref(recs);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(relay_calls_end_to_end),
	};
	return cmocka_run_group_tests(tests, h_suite_setup, h_suite_teardown);
}
