/*
 * The relay web service inside a running worker (contract 5.1), called the
 * way Pruvan calls it ({basePath}/ACCOUNT/METHOD.EXT, the payload form
 * variable, the integration's credentials inside it), end to end through
 * Kafka and Redis:
 *  - uploadPictures (multipart, a real file part) and status (urlencoded,
 *    fieldStatus) are answered as Pruvan expects once the records are on
 *    pruvan.inbound, and come out relayed; the file is in relay.mediaDir
 *    with the sha256 and size the item's media says; a repeated status
 *    call is a duplicate downstream (its uuId is the entry's SHA-256);
 *  - after a delete, photos and a survey Pruvan relays under a new Key1
 *    are discarded and their files deleted; an item with only the old
 *    Key1 is discarded too;
 *  - wrong credentials are 401 in Pruvan's shape; no secret in any log,
 *    record or metric.
 * validate's PushKey: test_relay_pushkey.c; getWorkOrders:
 * test_relay_orders.c. (503 while Kafka is down is in
 * tests/unit/test_relay.c, against the mock cluster: taking the harness's
 * brokers down stalls its own clients.)
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

H_SUITE("relay", 2)

#include "relay_it.h"

#define PHOTO                                                                  \
	"{" CRED ",\"uuId\":\"rl-ph-1\",\"key1\":111,\"key2\":\"WO-1\","       \
	"\"key4\":\"Task-01 Mow Grass\",\"fileType\":\"jpg\","                 \
	"\"evidenceType\":\"before\"}"
#define STATUS                                                                 \
	"{" CRED ",\"workOrders\":[{\"workOrderNumber\":\"WO-1\","             \
	"\"key1\":\"111\",\"fieldStatus\":\"complete\"}]}"

static void relay_calls_end_to_end(void **state)
{
	(void)state;
	h_begin("relay_calls_end_to_end");
	char media[512], cfg[512];
	write_acme_relay_config(media, sizeof(media), cfg, sizeof(cfg));
	h_worker_t *w = h_worker_run("worker", cfg, false);
	assert_non_null(w);
	int port = relay_port(w);
	assert_true(port > 0);
	int ops = h_worker_ops_port(w, WAIT_MS);
	assert_true(ops > 0 && ops != port);

	json_t *ev = h_event_create("rl-c1", "acme", "WO-1", 1);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
	json_decref(ev);

	/* uploadPictures, multipart with the file, token */
	json_t *ans = NULL;
	assert_int_equal(post(port, "/pruvan/acme/uploadPictures.php", NULL,
			      PHOTO, true, &ans),
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
	json_t *item = json_object_get(v, "item");
	assert_string_equal(h_str(item, "uuId"), "rl-ph-1");
	assert_null(strstr(h_str(rec, "raw"), TOKEN));
	/* the file is kept: where media says, with its size and hash */
	json_t *md = json_object_get(item, "media");
	char want_path[600], sha[65];
	snprintf(want_path, sizeof(want_path), "%s/acme_rl-ph-1", media);
	assert_string_equal(h_str(md, "path"), want_path);
	assert_int_equal(json_integer_value(json_object_get(md, "bytes")),
			 PHOTO_BYTES);
	assert_string_equal(h_str(md, "contentType"), "image/jpeg");
	size_t flen = 0;
	char *bytes = h_read_file(want_path, &flen);
	assert_non_null(bytes);
	assert_int_equal(flen, PHOTO_BYTES);
	sha256_hex(bytes, flen, sha);
	free(bytes);
	assert_string_equal(h_str(md, "sha256"), sha);
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
	assert_true(exists(want_path)); /* relayed: kept */

	/* status, urlencoded, fieldStatus; twice (Pruvan resends) */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(post(port, "/pruvan/acme/STATUS.php", NULL,
				      STATUS, false, &ans),
				 200);
		assert_true(json_is_true(json_object_get(ans, "status")));
		assert_true(json_is_null(json_object_get(ans, "error")));
		json_decref(ans);
	}
	const char *entry = "{\"fieldStatus\":\"complete\",\"key1\":\"111\","
			    "\"workOrderNumber\":\"WO-1\"}";
	char status_id[65];
	sha256_hex(entry, strlen(entry), status_id);
	json_t *two = outcomes(4, status_id, &by);
	assert_int_equal(json_array_size(two), 2);
	assert_string_equal(h_str(json_array_get(two, 0), "outcome"),
			    "relayed");
	assert_string_equal(
	    h_str(json_object_get(json_array_get(two, 0), "item"),
		  "fieldStatus"),
	    "complete");
	assert_string_equal(h_str(json_array_get(two, 1), "outcome"),
			    "duplicate");
	json_decref(by);

	/* delete WO-1; Pruvan recreates it under Key1 222 to relay queued
	 * photos and a survey; one more item comes with only Key1 111 */
	ev = h_event("rl-d1", "acme", "delete", "WO-1", 2, NULL);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
	json_decref(ev);
	o = json_array_get(outcomes(5, "rl-d1", &by), 0);
	assert_string_equal(h_str(o, "outcome"), "deleted");
	json_decref(by);
	const char *late[] = {
	    "{" CRED
	    ",\"uuId\":\"rl-ph-2\",\"key1\":\"222\",\"key2\":\"WO-1\"}",
	    "{" CRED ",\"uuId\":\"rl-sv-1\",\"key1\":\"222\",\"key2\":\"WO-1\","
	    "\"evidenceType\":\"Survey\",\"survey\":{\"q1\":\"yes\"}}",
	    "{" CRED ",\"uuId\":\"rl-ph-3\",\"key1\":\"111\"}",
	};
	const char *late_ids[] = {"rl-ph-2", "rl-sv-1", "rl-ph-3"};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(post(port, "/pruvan/acme/uploadPictures.php",
				      NULL, late[i], true, &ans),
				 200);
		json_decref(ans);
	}
	for (int i = 0; i < 3; i++) {
		o = json_array_get(outcomes(8, late_ids[i], &by), 0);
		assert_string_equal(h_str(o, "outcome"), "discarded");
		assert_string_equal(h_str(o, "reason"),
				    i < 2 ? "recreated_after_delete"
					  : "order_deleted");
		json_decref(by);
		char p[600];
		snprintf(p, sizeof(p), "%s/acme_%s", media, late_ids[i]);
		if (exists(p))
			fail_msg("%s kept after its item was discarded", p);
	}
	assert_true(exists(want_path)); /* the relayed photo stays */
	/* Pruvan sends a discarded photo again (from its usage report): a
	 * duplicate, and the file the relay stored again is deleted again */
	assert_int_equal(post(port, "/pruvan/acme/uploadPictures.php", NULL,
			      late[0], true, &ans),
			 200);
	json_decref(ans);
	json_t *again = outcomes(9, late_ids[0], &by);
	assert_int_equal(json_array_size(again), 2);
	assert_string_equal(h_str(json_array_get(again, 1), "outcome"),
			    "duplicate");
	json_decref(by);
	char again_path[600];
	snprintf(again_path, sizeof(again_path), "%s/acme_%s", media,
		 late_ids[0]);
	if (exists(again_path))
		fail_msg("%s kept after its item was sent again", again_path);

	/* wrong credentials: 401 in Pruvan's shape, nothing written */
	long before = h_topic_count(H_TOPIC_INBOUND);
	assert_int_equal(
	    post(port, "/pruvan/acme/uploadPictures.php", NULL,
		 "{\"username\":\"acme-int\",\"token\":\"nope\",\"uuId\":\"x\","
		 "\"key2\":\"W\"}",
		 true, &ans),
	    401);
	assert_string_equal(h_str(ans, "error"),
			    "invalid username or password");
	assert_true(json_is_false(json_object_get(ans, "status")));
	json_decref(ans);
	assert_int_equal(h_topic_count(H_TOPIC_INBOUND), before);

	/* metrics by method and status; the secrets nowhere */
	char *m = NULL;
	assert_int_equal(h_http_get(ops, "/metrics", &m), 200);
	assert_non_null(strstr(m, "pruvan_bridge_relay_requests_total{method="
				  "\"status\",status=\"200\"} 2\n"));
	assert_non_null(strstr(m, "pruvan_bridge_relay_requests_total{method="
				  "\"uploadPictures\",status=\"401\"} 1\n"));
	assert_non_null(strstr(m, "pruvan_bridge_relay_items_total{account="
				  "\"acme\",kind=\"survey\"} 1\n"));
	assert_null(strstr(m, TOKEN));
	free(m);

	assert_int_equal(h_worker_signal(w, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w, WAIT_MS), 0);
	assert_int_equal(h_worker_log_count(w, TOKEN), 0);
	assert_int_equal(h_worker_log_count(w, PASSWORD), 0);
	json_t *recs = h_consume(H_TOPIC_RESULTS, 8, WAIT_MS);
	char *all = json_dumps(recs, 0);
	assert_null(strstr(all, TOKEN));
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
