/*
 * test_relay.c: the relay web service (contract 5.1). Its pure parts
 * (Pruvan's credential check in its three forms, paths with any
 * extension, case-insensitive methods, the records a payload becomes,
 * survey as string and object, fieldStatus, getWorkOrders' timestamp,
 * media names) and the live HTTP server against librdkafka's in-process
 * mock cluster: every refusal with its status and Pruvan's JSON shape,
 * both body forms, success only after Kafka acknowledged (the records are
 * on the topic when the answer arrives), the uploaded file kept, 503
 * within the ack timeout while the broker is down, metrics, and no secret
 * in the logs; and requests as the wire may cut them (a file part whose
 * first bytes come in a read of their own, a multipart body without its
 * closing boundary), nothing kept of an upload whose item is refused,
 * 413 for an item Kafka cannot take, 400 for a transfer coding MHD cannot
 * read; many large payloads at once parsed a few at a time. validate's PushKey
 * and getWorkOrders need Redis: the integration test covers them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "relay.h"
#include "relay_mpend.h"

#define SECRET "s3cr3t-relay-value"
#define TOKEN  "t0ken-relay-value"

static char media_dir[] = "/tmp/pb-test-relay-media.XXXXXX";

/* ---- pure parts ------------------------------------------------------------
 */

static void test_secret_equal(void **state)
{
	(void)state;
	assert_true(pb_relay_secret_equal("abc", "abc"));
	assert_false(pb_relay_secret_equal("abd", "abc"));
	assert_false(pb_relay_secret_equal("ab", "abc"));
	assert_false(pb_relay_secret_equal("abcd", "abc"));
	assert_false(pb_relay_secret_equal("", "abc"));
	assert_false(pb_relay_secret_equal(NULL, "abc"));
	assert_false(pb_relay_secret_equal("abc", NULL));
}

static void test_digests(void **state)
{
	(void)state;
	char h[65];
	pb_relay_sha1_hex("abc", h);
	assert_string_equal(h, "a9993e364706816aba3e25717850c26c9cd0d89d");
	pb_relay_sha256_hex("abc", 3, h);
	assert_string_equal(
	    h,
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static pb_account_t account(char *user, char *pw, char *tok)
{
	pb_account_t a;
	memset(&a, 0, sizeof(a));
	a.name = "acme";
	a.relay_username = user;
	a.relay_password = pw;
	a.relay_token = tok;
	return a;
}

static bool creds(const pb_account_t *a, const char *json)
{
	json_t *p = json_loads(json, 0, NULL);
	assert_non_null(p);
	bool ok = pb_relay_credentials_ok(a, p);
	json_decref(p);
	return ok;
}

/* The three forms Pruvan's integrations use, and what must fail. */
static void test_credentials(void **state)
{
	(void)state;
	pb_account_t a = account("acme", "hunter2", "tok-1");
	/* SHA-1("hunter2") */
	const char *sha = "f3bbbd66a63d4bf1747940578ec3d0103530e21d";
	char buf[256];
	assert_true(creds(&a, "{\"username\":\"acme\",\"token\":\"tok-1\"}"));
	assert_true(
	    creds(&a, "{\"username\":\"acme\",\"password\":\"hunter2\"}"));
	snprintf(buf, sizeof(buf),
		 "{\"username\":\"acme\",\"password\":\"%s\"}", sha);
	assert_true(creds(&a, buf));
	snprintf(
	    buf, sizeof(buf),
	    "{\"username\":\"acme\",\"password\":\"F3BBBD66A63D4BF1747940578"
	    "EC3D0103530E21D\",\"token\":\"wrong\"}");
	assert_true(creds(&a, buf)); /* hex in upper case too */
	/* a right token makes up for a wrong password, and the reverse */
	assert_true(creds(&a, "{\"username\":\"acme\",\"password\":\"x\","
			      "\"token\":\"tok-1\"}"));
	assert_true(creds(&a, "{\"username\":\"acme\",\"password\":\"hunter2\","
			      "\"token\":\"x\"}"));
	/* wrong user, whatever else is right */
	assert_false(creds(&a, "{\"username\":\"acmex\",\"token\":\"tok-1\"}"));
	assert_false(
	    creds(&a, "{\"token\":\"tok-1\",\"password\":\"hunter2\"}"));
	/* wrong token, no password */
	assert_false(creds(&a, "{\"username\":\"acme\",\"token\":\"tok-2\"}"));
	assert_false(creds(&a, "{\"username\":\"acme\",\"token\":\"tok-\"}"));
	/* wrong password and its wrong hash */
	assert_false(
	    creds(&a, "{\"username\":\"acme\",\"password\":\"hunter\"}"));
	snprintf(buf, sizeof(buf),
		 "{\"username\":\"acme\",\"password\":\"%.39s0\"}", sha);
	assert_false(creds(&a, buf));
	/* the hash of the hash is not the password */
	char twice[41];
	pb_relay_sha1_hex(sha, twice);
	snprintf(buf, sizeof(buf),
		 "{\"username\":\"acme\",\"password\":\"%s\"}", twice);
	assert_false(creds(&a, buf));
	/* non-strings, nothing at all */
	assert_false(creds(&a, "{\"username\":\"acme\",\"token\":1}"));
	assert_false(creds(&a, "{}"));
	/* token only: a password never matches; empty secrets never do */
	pb_account_t t = account("acme", NULL, "tok-1");
	assert_true(creds(&t, "{\"username\":\"acme\",\"token\":\"tok-1\"}"));
	assert_false(creds(&t, "{\"username\":\"acme\",\"password\":\"\"}"));
	pb_relay_sha1_hex("", twice);
	snprintf(buf, sizeof(buf),
		 "{\"username\":\"acme\",\"password\":\"%s\"}", twice);
	assert_false(creds(&t, buf));
	pb_account_t none = account(NULL, NULL, NULL);
	assert_false(creds(&none, "{\"username\":\"\",\"token\":\"\"}"));
}

/* Constant time: the compare reads the whole secret whatever matched, so
 * a mismatch at the first byte and at the last one do the same work. The
 * property is checked structurally (no timing assert): every byte of the
 * secret is compared, including past the end of a shorter guess. */
static void test_secret_equal_whole_length(void **state)
{
	(void)state;
	char secret[65], guess[65];
	memset(secret, 'a', 64);
	secret[64] = '\0';
	for (size_t i = 0; i < 64; i++) {
		memcpy(guess, secret, 65);
		guess[i] = 'b';
		assert_false(pb_relay_secret_equal(guess, secret));
		guess[i] = '\0'; /* a prefix of the secret */
		assert_false(pb_relay_secret_equal(guess, secret));
	}
	assert_true(pb_relay_secret_equal(secret, secret));
}

static void test_parse_path(void **state)
{
	(void)state;
	char a[64], m[32];
	struct {
		const char *url, *acct, *meth;
	} ok[] = {
	    {"/pruvan/acme/validate", "acme", "validate"},
	    {"/pruvan/acme/validate.php", "acme", "validate"},
	    {"/pruvan/acme/getWorkOrders.aspx", "acme", "getWorkOrders"},
	    {"/pruvan/acme/uploadPictures.json", "acme", "uploadPictures"},
	    {"/pruvan/acme/status.", "acme", "status"},
	    {"/pruvan/acme/status.a.b", "acme", "status"},
	    {"/pruvan/acme/status/", "acme", "status"},
	    {"/pruvan/acme-2/STATUS.PHP", "acme-2", "STATUS"},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(pb_relay_parse_path(ok[i].url, "/pruvan", a,
						     sizeof(a), m, sizeof(m)),
				 PB_OK);
		assert_string_equal(a, ok[i].acct);
		assert_string_equal(m, ok[i].meth);
	}
	assert_int_equal(pb_relay_parse_path("/hooks/p/acme/status.x",
					     "/hooks/p", a, sizeof(a), m,
					     sizeof(m)),
			 PB_OK);
	assert_string_equal(a, "acme");
	const char *bad[] = {
	    "/pruvan/acme",
	    "/pruvan/acme/",
	    "/pruvan//status",
	    "/pruvan/acme/a/b",
	    "/relay/acme/status",
	    "/pruvanx/acme/status",
	    "/pruvan/acme/.php",
	    "pruvan/acme/status",
	    "/",
	    "/pruvan/acme/status//",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (pb_relay_parse_path(bad[i], "/pruvan", a, sizeof(a), m,
					sizeof(m)) != PB_ERR_NOT_FOUND)
			fail_msg("%s parsed", bad[i]);
	char small[4];
	assert_int_equal(pb_relay_parse_path("/pruvan/acme/status", "/pruvan",
					     small, sizeof(small), m,
					     sizeof(m)),
			 PB_ERR_NOT_FOUND);
}

static void test_methods(void **state)
{
	(void)state;
	assert_int_equal(pb_relay_method_of("validate"), PB_RELAY_M_VALIDATE);
	assert_int_equal(pb_relay_method_of("VALIDATE"), PB_RELAY_M_VALIDATE);
	assert_int_equal(pb_relay_method_of("getworkorders"),
			 PB_RELAY_M_GET_WORK_ORDERS);
	assert_int_equal(pb_relay_method_of("Status"), PB_RELAY_M_STATUS);
	assert_int_equal(pb_relay_method_of("UploadPictures"),
			 PB_RELAY_M_UPLOAD_PICTURES);
	assert_int_equal(pb_relay_method_of("upload"), PB_RELAY_M_UNKNOWN);
	assert_int_equal(pb_relay_method_of(NULL), PB_RELAY_M_UNKNOWN);
	assert_string_equal(pb_relay_method_name(PB_RELAY_M_GET_WORK_ORDERS),
			    "getWorkOrders");
	assert_string_equal(pb_relay_method_name(PB_RELAY_M_UNKNOWN), "other");
}

/* The one record of an uploadPictures payload, parsed back. */
static json_t *upload_record(const char *payload, const pb_relay_media_t *media,
			     char **key)
{
	json_t *p = json_loads(payload, 0, NULL);
	assert_non_null(p);
	pb_relay_record_t *recs = NULL;
	size_t n = 0;
	char err[256];
	assert_int_equal(pb_relay_records("acme", PB_RELAY_M_UPLOAD_PICTURES, p,
					  media, 10, &recs, &n, err,
					  sizeof(err)),
			 PB_OK);
	assert_int_equal(n, 1);
	json_t *v = json_loads(recs[0].value, 0, NULL);
	assert_non_null(v);
	if (key)
		*key = strdup(recs[0].key);
	pb_relay_records_free(recs, n);
	json_decref(p);
	return v;
}

static void test_records_upload(void **state)
{
	(void)state;
	pb_relay_media_t media = {.path = "/m/acme_ph-1",
				  .sha256 = "ab",
				  .bytes = 12,
				  .content_type = "image/jpeg"};
	char *key = NULL;
	json_t *v = upload_record(
	    "{\"username\":\"u\",\"password\":\"p\",\"token\":\"t\","
	    "\"uuId\":\"ph-1\",\"key1\":98765,\"key2\":\"WO-1\","
	    "\"evidenceType\":\"before\",\"fileType\":\"jpg\"}",
	    &media, &key);
	assert_string_equal(key, "acme/98765");
	free(key);
	assert_string_equal(json_string_value(json_object_get(v, "kind")),
			    "photo");
	json_t *item = json_object_get(v, "item");
	assert_null(json_object_get(item, "username"));
	assert_null(json_object_get(item, "password"));
	assert_null(json_object_get(item, "token"));
	assert_string_equal(json_string_value(json_object_get(item, "uuId")),
			    "ph-1");
	json_t *m = json_object_get(item, "media");
	assert_string_equal(json_string_value(json_object_get(m, "path")),
			    "/m/acme_ph-1");
	assert_string_equal(json_string_value(json_object_get(m, "sha256")),
			    "ab");
	assert_int_equal(json_integer_value(json_object_get(m, "bytes")), 12);
	assert_string_equal(
	    json_string_value(json_object_get(m, "contentType")), "image/jpeg");
	json_decref(v);

	/* a survey as a JSON string, as an object, or by evidenceType */
	const char *surveys[] = {
	    "{\"uuId\":\"s1\",\"key2\":\"W\",\"survey\":\"{\\\"q1\\\":"
	    "\\\"yes\\\"}\"}",
	    "{\"uuId\":\"s2\",\"key2\":\"W\",\"survey\":{\"q1\":\"yes\"}}",
	    "{\"uuId\":\"s3\",\"key2\":\"W\",\"evidenceType\":\"Survey\"}",
	    "{\"uuId\":\"s4\",\"key2\":\"W\",\"evidenceType\":\"survey\"}",
	};
	for (size_t i = 0; i < 4; i++) {
		v = upload_record(surveys[i], NULL, NULL);
		assert_string_equal(
		    json_string_value(json_object_get(v, "kind")), "survey");
		assert_null(
		    json_object_get(json_object_get(v, "item"), "media"));
		json_decref(v);
	}
	/* survey object kept whole */
	v = upload_record(surveys[1], NULL, NULL);
	assert_string_equal(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(v, "item"), "survey"), "q1")),
	    "yes");
	json_decref(v);
	/* an empty survey string is no survey */
	v = upload_record("{\"uuId\":\"p2\",\"key2\":\"W\",\"survey\":\"\"}",
			  NULL, NULL);
	assert_string_equal(json_string_value(json_object_get(v, "kind")),
			    "photo");
	json_decref(v);
	/* only a key1: accepted (contract 5), keyed by it */
	v = upload_record("{\"uuId\":\"p3\",\"key1\":\"777\"}", NULL, &key);
	assert_string_equal(key, "acme/777");
	free(key);
	json_decref(v);
}

/* The status call's records for payload p (acme, up to 10 items);
 * fails the test unless it makes them. */
static pb_relay_record_t *status_records(const json_t *p, size_t *n)
{
	pb_relay_record_t *recs = NULL;
	char err[256] = "";
	*n = 0;
	if (pb_relay_records("acme", PB_RELAY_M_STATUS, p, NULL, 10, &recs, n,
			     err, sizeof(err)) != PB_OK)
		fail_msg("status records: %s", err);
	return recs;
}

/* A media field the caller sends is never passed on: only the relay's own
 * (a file it kept) names a file the pipeline may delete on discard. */
static void test_records_caller_media(void **state)
{
	(void)state;
	const char *evil = "{\"uuId\":\"m1\",\"key2\":\"W\",\"media\":"
			   "{\"path\":\"/m/other_ph-9\",\"bytes\":1}}";
	json_t *v = upload_record(evil, NULL, NULL);
	assert_null(json_object_get(json_object_get(v, "item"), "media"));
	json_decref(v);
	pb_relay_media_t media = {.path = "/m/acme_m1", .sha256 = "ab"};
	v = upload_record(evil, &media, NULL);
	assert_string_equal(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(v, "item"), "media"), "path")),
	    "/m/acme_m1");
	json_decref(v);
	json_t *p =
	    json_loads("{\"workOrders\":[{\"workOrderNumber\":\"W\",\"media\":"
		       "{\"path\":\"/m/other_ph-9\"}}]}",
		       0, NULL);
	size_t n;
	pb_relay_record_t *recs = status_records(p, &n);
	assert_int_equal(n, 1);
	assert_null(strstr(recs[0].value, "other_ph-9"));
	pb_relay_records_free(recs, n);
	json_decref(p);
}

/* A status entry whose workOrderNumber is a number names the same order
 * as its text: key2 "12345", not a refusal for a missing key2. */
static void test_records_status_numeric_won(void **state)
{
	(void)state;
	json_t *p = json_loads("{\"workOrders\":[{\"workOrderNumber\":12345,"
			       "\"status\":\"complete\"}]}",
			       0, NULL);
	size_t n;
	pb_relay_record_t *recs = status_records(p, &n);
	assert_int_equal(n, 1);
	assert_string_equal(recs[0].key, "acme/12345");
	json_t *v = json_loads(recs[0].value, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(v, "item"), "key2")),
			    "12345");
	json_decref(v);
	pb_relay_records_free(recs, n);
	json_decref(p);
}

static void test_records_status(void **state)
{
	(void)state;
	const char *entry = "{\"workOrderNumber\":\"WO-1\",\"fieldStatus\":"
			    "\"complete\",\"source_wo_id\":\"42\"}";
	char payload[512];
	snprintf(payload, sizeof(payload),
		 "{\"username\":\"u\",\"password\":\"p\",\"token\":\"t\","
		 "\"workOrders\":[%s,{\"workOrderNumber\":\"WO-2\","
		 "\"status\":\"complete\",\"key1\":\"5\"}]}",
		 entry);
	json_t *p = json_loads(payload, 0, NULL);
	size_t n;
	pb_relay_record_t *recs = status_records(p, &n);
	assert_int_equal(n, 2);
	assert_string_equal(recs[0].key, "acme/WO-1");
	assert_string_equal(recs[1].key, "acme/5");
	assert_string_equal(recs[0].kind, "status");
	json_t *v = json_loads(recs[0].value, 0, NULL);
	json_t *item = json_object_get(v, "item");
	assert_string_equal(json_string_value(json_object_get(item, "key2")),
			    "WO-1");
	assert_string_equal(
	    json_string_value(json_object_get(item, "fieldStatus")),
	    "complete");
	/* uuId: the SHA-256 hex of the entry's canonical JSON */
	json_t *e = json_loads(entry, 0, NULL);
	char *canon = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
	char want[65];
	pb_relay_sha256_hex(canon, strlen(canon), want);
	assert_string_equal(json_string_value(json_object_get(item, "uuId")),
			    want);
	assert_string_equal(recs[0].uuid, want);
	free(canon);
	json_decref(e);
	json_decref(v);
	/* the same entry again: the same uuId (a repeat is a duplicate) */
	size_t n2;
	pb_relay_record_t *again = status_records(p, &n2);
	assert_string_equal(again[0].uuid, recs[0].uuid);
	assert_string_not_equal(again[1].uuid, recs[0].uuid);
	pb_relay_records_free(again, n2);
	pb_relay_records_free(recs, n);
	/* more than max_items */
	char err[256];
	assert_int_equal(pb_relay_records("acme", PB_RELAY_M_STATUS, p, NULL, 1,
					  &recs, &n, err, sizeof(err)),
			 PB_ERR_INVALID);
	json_decref(p);
}

static void expect_invalid(pb_relay_method_t method, const char *payload,
			   const char *needle)
{
	json_t *p = json_loads(payload, 0, NULL);
	assert_non_null(p);
	pb_relay_record_t *recs = NULL;
	size_t n = 0;
	char err[256] = "";
	assert_int_equal(pb_relay_records("acme", method, p, NULL, 10, &recs,
					  &n, err, sizeof(err)),
			 PB_ERR_INVALID);
	if (!strstr(err, needle))
		fail_msg("error \"%s\" lacks \"%s\"", err, needle);
	json_decref(p);
}

static void test_records_invalid(void **state)
{
	(void)state;
	expect_invalid(PB_RELAY_M_UPLOAD_PICTURES, "{\"uuId\":\"x\"}", "key2");
	expect_invalid(PB_RELAY_M_STATUS, "{}", "workOrders");
	expect_invalid(PB_RELAY_M_STATUS, "{\"workOrders\":[1]}",
		       "workOrders[0]");
	expect_invalid(PB_RELAY_M_STATUS,
		       "{\"workOrders\":[{\"status\":\"x\"}]}",
		       "workOrders[0]");
	expect_invalid(PB_RELAY_M_VALIDATE, "{}", "relays no items");
}

static void test_since(void **state)
{
	(void)state;
	struct {
		const char *json;
		pb_err_t rc;
		int64_t ms;
	} c[] = {
	    {"{}", PB_OK, -1},
	    {"{\"timestamp\":null}", PB_OK, -1},
	    {"{\"timestamp\":\"\"}", PB_OK, -1},
	    {"{\"timestamp\":1700000000}", PB_OK, 1700000000000LL},
	    {"{\"timestamp\":\"1700000000\"}", PB_OK, 1700000000000LL},
	    {"{\"timestamp\":0}", PB_OK, 0},
	    {"{\"timestamp\":-5}", PB_ERR_INVALID, 0},
	    {"{\"timestamp\":\"yesterday\"}", PB_ERR_INVALID, 0},
	    {"{\"timestamp\":1.5}", PB_ERR_INVALID, 0},
	    {"{\"timestamp\":true}", PB_ERR_INVALID, 0},
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		json_t *p = json_loads(c[i].json, 0, NULL);
		int64_t ms = 42;
		assert_int_equal(pb_relay_since_ms(p, &ms), c[i].rc);
		if (c[i].rc == PB_OK)
			assert_int_equal(ms, c[i].ms);
		json_decref(p);
	}
}

static void test_media_name(void **state)
{
	(void)state;
	char n[256];
	pb_relay_media_name("acme", "5f0c-11", n, sizeof(n));
	assert_string_equal(n, "acme_5f0c-11");
	const char *tricks[] = {
	    "../../etc/passwd", "..", ".hidden", "a/b", "a b", "", "x\\y"};
	for (size_t i = 0; i < sizeof(tricks) / sizeof(tricks[0]); i++) {
		pb_relay_media_name("acme", tricks[i], n, sizeof(n));
		assert_int_equal(strncmp(n, "h-", 2), 0);
		assert_null(strchr(n, '/'));
		assert_int_equal(strlen(n), 66);
	}
	char other[256];
	pb_relay_media_name("acme", "a/b", n, sizeof(n));
	pb_relay_media_name("acme", "a/c", other, sizeof(other));
	assert_string_not_equal(n, other);
}

/* ---- the live service ------------------------------------------------------
 */

static rd_kafka_t *mock_rk, *probe;
static rd_kafka_mock_cluster_t *mock;
static pb_config_t *cfg;
static pb_metrics_t *metrics;
static pb_relay_t *relay;
static char log_path[] = "/tmp/pb-test-relay-log.XXXXXX";
static int log_fd = -1;

/* Before the relay starts: an unfinished upload two hours old (a replica
 * killed mid-upload), one being written now (another replica's), and an
 * old kept file. */
static const char *const planted[] = {".upload-1-0-1", ".upload-2-0-2",
				      "acme_old-kept"};

static void plant_uploads(void)
{
	for (size_t i = 0; i < 3; i++) {
		char p[600];
		snprintf(p, sizeof(p), "%s/%s", media_dir, planted[i]);
		FILE *f = fopen(p, "w");
		if (f)
			fclose(f);
		struct timeval old[2] = {{.tv_sec = time(NULL) - 7200},
					 {.tv_sec = time(NULL) - 7200}};
		if (i != 1)
			utimes(p, old);
	}
}

static int live_setup(void **state)
{
	(void)state;
	char err[512];
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	rd_kafka_conf_set(c, "log_level", "0", err, sizeof(err));
	mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
	if (!mock_rk)
		return -1;
	mock = rd_kafka_mock_cluster_new(mock_rk, 1);
	if (!mock || rd_kafka_mock_topic_create(mock, "pruvan.inbound", 2, 1))
		return -1;
	/* a client of the cluster, for watermarks */
	c = rd_kafka_conf_new();
	rd_kafka_conf_set(c, "log_level", "0", err, sizeof(err));
	if (rd_kafka_conf_set(c, "bootstrap.servers",
			      rd_kafka_mock_cluster_bootstraps(mock), err,
			      sizeof(err)) ||
	    !(probe = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err))))
		return -1;
	setenv("PB_TEST_RELAY_PASSWORD", SECRET, 1);
	setenv("PB_TEST_RELAY_TOKEN", TOKEN, 1);
	setenv("PB_TEST_PUSHKEY", "https://direct.pruvan.com/api/?apiKey=k", 1);
	if (!mkdtemp(media_dir))
		return -1;
	plant_uploads(); /* for test_live_stale_uploads */
	char text[2048];
	snprintf(text, sizeof(text),
		 "{\"kafka\": {\"bootstrap.servers\": \"%s\", "
		 "\"reconnect.backoff.max.ms\": \"200\", "
		 "\"message.max.bytes\": \"60000\", \"log_level\": "
		 "\"0\"}, \"relay\": {\"listen\": \"127.0.0.1:0\", "
		 "\"ackTimeoutMs\": 1500, \"mediaDir\": \"%s\", "
		 "\"maxBodyBytes\": 2000000, \"maxPayloadBytes\": 100000, "
		 "\"maxFileBytes\": 300000, \"maxItems\": 5}, "
		 "\"accounts\": {\"acme\": {\"pushKeyUrl\": "
		 "\"env:PB_TEST_PUSHKEY\", \"relay\": {\"username\": "
		 "\"acme\", \"password\": \"env:PB_TEST_RELAY_PASSWORD\", "
		 "\"token\": \"env:PB_TEST_RELAY_TOKEN\"}}, "
		 "\"bare\": {\"pushKeyUrl\": \"env:PB_TEST_PUSHKEY\"}}}",
		 rd_kafka_mock_cluster_bootstraps(mock), media_dir);
	if (pb_config_load_string(text, &cfg, err, sizeof(err)) != PB_OK) {
		fprintf(stderr, "config: %s\n", err);
		return -1;
	}
	log_fd = mkstemp(log_path);
	pb_log_set_fd(log_fd);
	pb_log_set_level(PB_LOG_DEBUG);
	metrics = pb_metrics_new();
	if (pb_relay_start(cfg, metrics, &relay, err, sizeof(err)) != PB_OK) {
		fprintf(stderr, "relay: %s\n", err);
		return -1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return 0;
}

static int live_teardown(void **state)
{
	(void)state;
	pb_relay_stop(relay);
	pb_metrics_destroy(metrics);
	pb_config_destroy(cfg);
	if (probe)
		rd_kafka_destroy(probe);
	if (mock)
		rd_kafka_mock_cluster_destroy(mock);
	if (mock_rk)
		rd_kafka_destroy(mock_rk);
	pb_log_set_fd(2);
	if (log_fd >= 0) {
		close(log_fd);
		if (!getenv("PB_KEEP_LOG"))
			unlink(log_path);
	}
	curl_global_cleanup();
	return 0;
}

/* Records on the inbound topic now (both partitions). */
static long topic_count(void)
{
	long sum = 0;
	for (int p = 0; p < 2; p++) {
		int64_t lo = 0, hi = 0;
		if (rd_kafka_query_watermark_offsets(probe, "pruvan.inbound", p,
						     &lo, &hi, 5000))
			return -1;
		sum += (long)hi;
	}
	return sum;
}

struct text {
	char *data;
	size_t len;
};

static size_t on_text(char *p, size_t size, size_t n, void *ud)
{
	struct text *t = ud;
	char *nd = realloc(t->data, t->len + size * n + 1);
	if (!nd)
		return 0;
	memcpy(nd + t->len, p, size * n);
	t->data = nd;
	t->len += size * n;
	t->data[t->len] = '\0';
	return size * n;
}

typedef struct {
	const char *method; /* NULL: POST */
	const char *path;   /* after the port */
	const char *header; /* one extra header or NULL */
	const char *ctype;  /* Content-Type or NULL */
	const char *body;
	size_t body_len;	   /* 0: strlen(body) */
	const char *payload_field; /* multipart: the payload part */
	bool with_file;
	size_t file_len; /* 0: 200000 */
} req_t;

static char last_body[4096]; /* of the last call, as sent */

/* Do the request; the status, and the body parsed into *json. */
static long call(const req_t *r, json_t **json)
{
	char url[512];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s",
		 pb_relay_port(relay), r->path);
	CURL *c = curl_easy_init();
	struct text t = {0};
	struct curl_slist *h = NULL;
	curl_mime *mime = NULL;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_text);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	if (r->header)
		h = curl_slist_append(h, r->header);
	if (r->ctype) {
		char ct[128];
		snprintf(ct, sizeof(ct), "Content-Type: %s", r->ctype);
		h = curl_slist_append(h, ct);
	}
	if (r->payload_field) {
		mime = curl_mime_init(c);
		curl_mimepart *part = curl_mime_addpart(mime);
		curl_mime_name(part, "payload");
		curl_mime_data(part, r->payload_field, CURL_ZERO_TERMINATED);
		if (r->with_file) {
			static char photo[400000];
			memset(photo, 0xd8, sizeof(photo));
			size_t flen = r->file_len ? r->file_len : 200000;
			part = curl_mime_addpart(mime);
			curl_mime_name(part, "file");
			curl_mime_filename(part, "photo.jpg");
			curl_mime_type(part, "image/jpeg");
			curl_mime_data(part, photo, flen);
		}
		curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
	} else if (r->body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
		curl_easy_setopt(
		    c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)(r->body_len ? r->body_len : strlen(r->body)));
	}
	if (r->method)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
	if (h)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	long st = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	curl_mime_free(mime);
	*json = t.data ? json_loads(t.data, 0, NULL) : NULL;
	snprintf(last_body, sizeof(last_body), "%s", t.data ? t.data : "");
	free(t.data);
	return st;
}

/* Expect status and, for errors, Pruvan's error shape with a non-empty
 * message: {"status":false,"error":"..."}, or validate's. */
static void expect_status(const req_t *r, long want)
{
	json_t *j = NULL;
	long st = call(r, &j);
	if (st != want)
		fail_msg("%s: status %ld, expected %ld (%s)", r->path, st, want,
			 last_body);
	assert_non_null(j);
	if (want >= 400) {
		const char *e = json_string_value(json_object_get(j, "error"));
		assert_non_null(e);
		assert_true(strlen(e) > 0);
		assert_int_equal(json_object_size(j), 2);
		json_t *flag = json_object_get(j, "status");
		if (!flag)
			flag = json_object_get(j, "validated");
		assert_true(json_is_false(flag));
	}
	json_decref(j);
}

#define CRED "\"username\":\"acme\",\"token\":\"" TOKEN "\""
#define META                                                                   \
	"{" CRED ",\"uuId\":\"ph-1\",\"key1\":\"111\",\"key2\":\"WO-1\","      \
	"\"fileType\":\"jpg\"}"
#define UP "/pruvan/acme/uploadPictures.php"

static void test_live_refusals(void **state)
{
	(void)state;
	long before = topic_count();
	assert_true(before >= 0);
	req_t r = {.path = UP,
		   .body = "{\"username\":\"acme\",\"token\":\"wrong\","
			   "\"uuId\":\"x\",\"key2\":\"W\"}",
		   .ctype = "application/json"};
	expect_status(&r, 401);
	assert_string_equal(
	    last_body,
	    "{\"status\":false,\"error\":\"invalid username or password\"}");
	r.body = "{\"username\":\"other\",\"token\":\"" TOKEN "\"}";
	expect_status(&r, 401);
	r.path = "/pruvan/acme/validate.php";
	expect_status(&r, 401);
	assert_string_equal(
	    last_body,
	    "{\"error\":\"invalid username or password\",\"validated\":false}");
	/* an account without relay credentials authenticates nobody */
	r.path = "/pruvan/bare/validate";
	r.body = "{\"username\":\"\",\"token\":\"\"}";
	expect_status(&r, 401);
	r.path = UP;
	r.body = META;
	r.method = "GET";
	expect_status(&r, 405);
	r.method = NULL;
	r.path = "/pruvan/nobody/uploadPictures.php";
	expect_status(&r, 404);
	r.path = "/pruvan/acme/deleteEverything.php";
	expect_status(&r, 404);
	r.path = "/relay/acme/uploadPictures"; /* the old receiver path */
	expect_status(&r, 404);
	r.path = UP;
	r.body = "{\"uuId\":";
	expect_status(&r, 400); /* not JSON */
	r.body = "[1]";
	expect_status(&r, 400); /* not an object */
	r.body = "{" CRED ",\"uuId\":\"x\"}";
	expect_status(&r, 400); /* neither key1 nor key2 */
	r.body = "";
	expect_status(&r, 400);
	r.body = META;
	r.ctype = "image/png";
	expect_status(&r, 400);
	r.ctype = "multipart/form-data"; /* no boundary */
	expect_status(&r, 400);
	r.ctype = "application/x-www-form-urlencoded";
	r.body = "other=1";
	expect_status(&r, 400); /* no payload field */
	/* a declared body over relay.maxBodyBytes: refused before reading */
	r.ctype = "application/json";
	static char huge[2000016];
	memset(huge, ' ', sizeof(huge));
	r.body = huge;
	r.body_len = sizeof(huge);
	expect_status(&r, 413);
	/* the same without a Content-Length (chunked): 413 all the same */
	r.header = "Transfer-Encoding: chunked";
	expect_status(&r, 413);
	r.header = NULL;
	/* JSON over relay.maxPayloadBytes */
	r.body_len = 100010;
	expect_status(&r, 413);
	/* a file over relay.maxFileBytes */
	req_t f = {.path = UP,
		   .payload_field = META,
		   .with_file = true,
		   .file_len = 300001};
	expect_status(&f, 413);
	/* more items than relay.maxItems */
	r.body = "{" CRED ",\"workOrders\":[{\"workOrderNumber\":\"1\"},"
		 "{\"workOrderNumber\":\"2\"},{\"workOrderNumber\":\"3\"},"
		 "{\"workOrderNumber\":\"4\"},{\"workOrderNumber\":\"5\"},"
		 "{\"workOrderNumber\":\"6\"}]}";
	r.body_len = 0;
	r.path = "/pruvan/acme/status.php";
	expect_status(&r, 413);
	/* nothing reached the topic, no file was left behind */
	assert_int_equal(topic_count(), before);
	DIR *d = opendir(media_dir);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' ||
		    strncmp(e->d_name, ".upload", 7) == 0)
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				fail_msg("left in the media dir: %s",
					 e->d_name);
	closedir(d);
	double v = 0;
	assert_int_equal(pb_metrics_get(metrics, PB_M_RELAY_REQUESTS,
					"method=\"uploadPictures\","
					"status=\"401\"",
					&v),
			 PB_OK);
	assert_true(v == 2);
}

static void test_live_accepts(void **state)
{
	(void)state;
	long before = topic_count();
	assert_true(before >= 0);
	json_t *j = NULL;

	/* plain JSON body, token: on the topic when answered */
	req_t r = {.path = UP, .body = META, .ctype = "application/json"};
	assert_int_equal(call(&r, &j), 200);
	assert_string_equal(last_body, "{\"status\":true,\"error\":\"\"}");
	json_decref(j);
	assert_int_equal(topic_count(), before + 1);

	/* Pruvan's multipart: payload part + the photo, the password as
	 * SHA-1 hex; the file is kept under the uuId's name */
	char sha[41], meta[512];
	pb_relay_sha1_hex(SECRET, sha);
	snprintf(
	    meta, sizeof(meta),
	    "{\"username\":\"acme\",\"password\":\"%s\",\"uuId\":\"ph-2\","
	    "\"key1\":\"111\",\"key2\":\"WO-1\",\"evidenceType\":\"after\"}",
	    sha);
	req_t m = {.path = "/pruvan/acme/UPLOADPICTURES.aspx",
		   .payload_field = meta,
		   .with_file = true};
	assert_int_equal(call(&m, &j), 200);
	json_decref(j);
	assert_int_equal(topic_count(), before + 2);
	char path[600];
	snprintf(path, sizeof(path), "%s/acme_ph-2", media_dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 200000);

	/* status: urlencoded payload=..., the plain password; fieldStatus */
	char *esc = curl_easy_escape(
	    NULL,
	    "{\"username\":\"acme\",\"password\":\"" SECRET "\","
	    "\"workOrders\":[{\"workOrderNumber\":\"WO-1\",\"fieldStatus\":"
	    "\"complete\"},{\"workOrderNumber\":\"WO-2\",\"status\":"
	    "\"complete\"}]}",
	    0);
	char body[1024];
	snprintf(body, sizeof(body), "other=1&payload=%s", esc);
	curl_free(esc);
	req_t s = {.path = "/pruvan/acme/status.php",
		   .ctype = "application/x-www-form-urlencoded",
		   .body = body};
	assert_int_equal(call(&s, &j), 200);
	assert_string_equal(last_body, "{\"status\":true,\"error\":null}");
	json_decref(j);
	assert_int_equal(topic_count(), before + 4);

	/* raw JSON labelled urlencoded (what curl -d sends): read as JSON */
	req_t raw = {.path = "/pruvan/acme/validate",
		     .ctype = "application/x-www-form-urlencoded",
		     .body = "{" CRED "}"};
	assert_int_equal(call(&raw, &j), 200);
	json_decref(j);

	/* validate (a configured PushKey): answers, writes nothing */
	req_t v = {.path = "/pruvan/acme/VALIDATE.php",
		   .ctype = "application/x-www-form-urlencoded",
		   .body =
		       "payload=%7B%22username%22%3A%22acme%22%2C%22token%22"
		       "%3A%22" TOKEN "%22%2C%22pushkey%22%3A%22K%22%7D"};
	assert_int_equal(call(&v, &j), 200);
	assert_string_equal(last_body, "{\"error\":\"\",\"validated\":true}");
	json_decref(j);
	assert_int_equal(topic_count(), before + 4);

	double n = 0;
	assert_int_equal(pb_metrics_get(metrics, PB_M_RELAY_ITEMS,
					"account=\"acme\",kind=\"status\"", &n),
			 PB_OK);
	assert_true(n == 2);
	assert_int_equal(pb_metrics_get(metrics, PB_M_RELAY_REQUESTS,
					"method=\"uploadPictures\","
					"status=\"200\"",
					&n),
			 PB_OK);
	assert_true(n == 2);
}

/* ---- the wire: requests as a network or a client may cut them ------------
 */

#define BOUNDARY "rl-wire-b0undary"

/* A multipart body: the payload part, then (file != NULL) the file part
 * (named "file", image/jpeg), then the closing boundary. *file_at is where
 * the file's bytes begin. Returns the body's length. */
static size_t wire_multipart(char *out, size_t size, const char *payload,
			     const char *file, size_t file_len, size_t *file_at)
{
	int n = snprintf(out, size,
			 "--" BOUNDARY "\r\nContent-Disposition: form-data; "
			 "name=\"payload\"\r\n\r\n%s\r\n",
			 payload);
	size_t len = (size_t)n;
	if (file) {
		n = snprintf(out + len, size - len,
			     "--" BOUNDARY "\r\nContent-Disposition: "
			     "form-data; name=\"file\"; filename=\"p.jpg\"\r\n"
			     "Content-Type: image/jpeg\r\n\r\n");
		len += (size_t)n;
		if (file_at)
			*file_at = len;
		assert_true(len + file_len + 64 < size);
		memcpy(out + len, file, file_len);
		len += file_len;
		n = snprintf(out + len, size - len, "\r\n");
		len += (size_t)n;
	}
	n = snprintf(out + len, size - len, "--" BOUNDARY "--\r\n");
	return len + (size_t)n;
}

/*
 * POST body[0..len) to path on a socket of its own, in pieces cut at the
 * offsets of the body in cuts (ascending; each piece its own write,
 * 30 ms apart, so that the server reads it on its own). The status, and
 * the answer's body into last_body and *json (may be NULL).
 */
static long wire_post(const char *path, const char *ctype, const char *body,
		      size_t len, const size_t *cuts, size_t n_cuts,
		      json_t **json)
{
	char head[512];
	int hl = snprintf(head, sizeof(head),
			  "POST %s HTTP/1.1\r\nHost: relay\r\nConnection: "
			  "close\r\nContent-Type: %s\r\nContent-Length: %zu"
			  "\r\n\r\n",
			  path, ctype, len);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port =
				     htons((uint16_t)pb_relay_port(relay))};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(write(fd, head, (size_t)hl), hl);
	size_t at = 0;
	for (size_t i = 0; i <= n_cuts; i++) {
		size_t end = i < n_cuts ? cuts[i] : len;
		while (at < end) {
			ssize_t w = write(fd, body + at, end - at);
			assert_true(w > 0);
			at += (size_t)w;
		}
		if (i < n_cuts) {
			struct timespec pause = {0, 30 * 1000000L};
			nanosleep(&pause, NULL);
		}
	}
	static char answer[8192];
	size_t got = 0;
	ssize_t r;
	while (got < sizeof(answer) - 1 &&
	       (r = read(fd, answer + got, sizeof(answer) - 1 - got)) > 0)
		got += (size_t)r;
	answer[got] = '\0';
	close(fd);
	long st = 0;
	if (strncmp(answer, "HTTP/1.1 ", 9) == 0)
		st = strtol(answer + 9, NULL, 10);
	const char *b = strstr(answer, "\r\n\r\n");
	snprintf(last_body, sizeof(last_body), "%s", b ? b + 4 : "");
	if (json)
		*json = json_loads(last_body, 0, NULL);
	return st;
}

/* The media store holds no temporary file of an upload. */
static void assert_no_upload_left(void)
{
	DIR *d = opendir(media_dir);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, ".upload", 7) == 0)
			fail_msg("left in the media dir: %s", e->d_name);
	closedir(d);
}

#define WIRE_META(uuid)                                                        \
	"{" CRED ",\"uuId\":\"" uuid "\",\"key1\":\"111\",\"key2\":\"WO-1\"}"

/* The close delimiter is found whole, across reads (one byte at a time),
 * after a partial match (CRLF CRLF "--"), with a quoted boundary; what
 * follows it (an epilogue) is not taken. */
static void test_mpend(void **state)
{
	(void)state;
	pb_mpend_t m;
	assert_false(pb_mpend_init(&m, "multipart/form-data"));
	assert_int_equal(pb_mpend_take(&m, "abc", 3), 3);
	const char *body = "--b1\r\n\r\nx\r\n\r\n--b1--\r\nepilogue";
	size_t n = strlen(body), end = strstr(body, "--b1--") + 6 - body;
	assert_true(pb_mpend_init(&m, "multipart/form-data; boundary=b1"));
	assert_int_equal(pb_mpend_take(&m, body, n), end);
	assert_int_equal(pb_mpend_take(&m, "more", 4), 0);
	assert_true(
	    pb_mpend_init(&m, "Multipart/Form-Data; BOUNDARY=\"b1\"; x=y"));
	size_t took = 0;
	for (size_t i = 0; i < n; i++)
		took += pb_mpend_take(&m, body + i, 1);
	assert_int_equal(took, end);
	assert_true(pb_mpend_init(&m, "multipart/form-data; boundary=b1"));
	const char *cut = "--b1\r\nx\r\n--b1-";
	assert_int_equal(pb_mpend_take(&m, cut, strlen(cut)), strlen(cut));
	assert_false(m.ended);
}

/*
 * A file part whose first bytes arrive in a read of their own after its
 * headers (a TCP segment ending there): MHD announces the part with an
 * empty call at offset 0 and then delivers its bytes from offset 0 again.
 * The kept file has every byte, not none.
 */
static void test_live_upload_split(void **state)
{
	(void)state;
	static char file[3000], body[8192];
	for (size_t i = 0; i < sizeof(file); i++)
		file[i] = (char)(i * 7 + 1);
	const char *metas[] = {WIRE_META("split-1"), WIRE_META("split-2"),
			       WIRE_META("split-3")};
	for (size_t k = 0; k < 3; k++) {
		size_t at = 0;
		size_t len = wire_multipart(body, sizeof(body), metas[k], file,
					    sizeof(file), &at);
		size_t cut = at + k + 1; /* inside the file's first bytes */
		if (wire_post(UP, "multipart/form-data; boundary=" BOUNDARY,
			      body, len, &cut, 1, NULL) != 200)
			fail_msg("split %zu: %s", k + 1, last_body);
		char name[64], path[600];
		snprintf(name, sizeof(name), "acme_split-%zu", k + 1);
		snprintf(path, sizeof(path), "%s/%s", media_dir, name);
		FILE *f = fopen(path, "rb");
		assert_non_null(f);
		static char kept[4096];
		size_t n = fread(kept, 1, sizeof(kept), f);
		fclose(f);
		if (n != sizeof(file))
			fail_msg("split %zu: kept %zu of %zu bytes", k + 1, n,
				 sizeof(file));
		assert_memory_equal(kept, file, sizeof(file));
	}
	assert_no_upload_left();
}

/*
 * A multipart body that ends before its closing boundary (Content-Length
 * matching the cut), or whose file part MHD cannot read, is a 400: never
 * a 200 with a truncated file or with the item relayed without its file.
 */
static void test_live_upload_cut(void **state)
{
	(void)state;
	long before = topic_count();
	static char file[2000], body[40000];
	memset(file, 0x5a, sizeof(file));
	const char *ct = "multipart/form-data; boundary=" BOUNDARY;
	size_t at = 0;
	size_t len = wire_multipart(body, sizeof(body), WIRE_META("cut-1"),
				    file, sizeof(file), &at);
	json_t *j = NULL;
	/* cut in the middle of the file */
	assert_int_equal(wire_post(UP, ct, body, at + 1000, NULL, 0, &j), 400);
	assert_true(json_is_false(json_object_get(j, "status")));
	const char *e = json_string_value(json_object_get(j, "error"));
	assert_non_null(e);
	assert_non_null(strstr(e, "closing boundary"));
	json_decref(j);
	/* the whole file, but no closing boundary */
	size_t no_close = len - strlen("--" BOUNDARY "--\r\n");
	assert_int_equal(wire_post(UP, ct, body, no_close, NULL, 0, NULL), 400);
	/* the file part's header line longer than MHD can read */
	len = wire_multipart(body, sizeof(body), WIRE_META("cut-2"), NULL, 0,
			     NULL);
	len -= strlen("--" BOUNDARY "--\r\n");
	len += (size_t)snprintf(body + len, sizeof(body) - len,
				"--" BOUNDARY "\r\nContent-Disposition: "
				"form-data; name=\"file\"; filename=\"p.jpg\""
				"\r\nX-Pad: ");
	memset(body + len, 'a', 20000); /* MHD reads 16 KiB at most */
	len += 20000;
	len += (size_t)snprintf(body + len, sizeof(body) - len,
				"\r\n\r\nJPEG\r\n--" BOUNDARY "--\r\n");
	assert_int_equal(wire_post(UP, ct, body, len, NULL, 0, NULL), 400);
	assert_int_equal(topic_count(), before);
	assert_no_upload_left();
	/* the same body whole is taken */
	len = wire_multipart(body, sizeof(body), WIRE_META("cut-3"), file,
			     sizeof(file), NULL);
	assert_int_equal(wire_post(UP, ct, body, len, NULL, 0, NULL), 200);
	assert_int_equal(topic_count(), before + 1);
}

static bool media_exists(const char *name)
{
	char path[600];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", media_dir, name);
	return stat(path, &st) == 0;
}

/*
 * A multipart body followed by an epilogue (RFC 2046: one more CRLF, or
 * text after the close delimiter) came whole: it is taken, file and all.
 */
static void test_live_upload_epilogue(void **state)
{
	(void)state;
	static char file[1500], body[8192];
	memset(file, 0x3c, sizeof(file));
	const char *tails[] = {"\r\n", "an epilogue\r\n"};
	const char *metas[] = {WIRE_META("epi-1"), WIRE_META("epi-2")};
	for (size_t k = 0; k < 2; k++) {
		size_t len = wire_multipart(body, sizeof(body), metas[k], file,
					    sizeof(file), NULL);
		len += (size_t)snprintf(body + len, sizeof(body) - len, "%s",
					tails[k]);
		size_t cut = len - strlen(tails[k]) - 3; /* in the delimiter */
		if (wire_post(UP, "multipart/form-data; boundary=" BOUNDARY,
			      body, len, &cut, 1, NULL) != 200)
			fail_msg("epilogue %zu: %s", k + 1, last_body);
		char name[64];
		snprintf(name, sizeof(name), "acme_epi-%zu", k + 1);
		assert_true(media_exists(name));
	}
	assert_no_upload_left();
}

/*
 * An upload whose item is refused (400: no key1 or key2, key1 not usable)
 * leaves no file in the media store, and a refused call carrying the uuId
 * of a kept file does not replace that file.
 */
static void test_live_upload_refused_keeps_nothing(void **state)
{
	(void)state;
	static char file[500], body[4096];
	const char *ct = "multipart/form-data; boundary=" BOUNDARY;
	memset(file, 0x11, sizeof(file));
	size_t len = wire_multipart(body, sizeof(body),
				    "{" CRED ",\"uuId\":\"orphan-1\"}", file,
				    sizeof(file), NULL);
	assert_int_equal(wire_post(UP, ct, body, len, NULL, 0, NULL), 400);
	assert_false(media_exists("acme_orphan-1"));
	/* a kept file, then a refused call under its uuId */
	len = wire_multipart(body, sizeof(body), WIRE_META("kept-1"), file,
			     sizeof(file), NULL);
	assert_int_equal(wire_post(UP, ct, body, len, NULL, 0, NULL), 200);
	memset(file, 0x22, sizeof(file));
	len = wire_multipart(body, sizeof(body),
			     "{" CRED ",\"uuId\":\"kept-1\",\"key1\":{}}", file,
			     sizeof(file), NULL);
	assert_int_equal(wire_post(UP, ct, body, len, NULL, 0, NULL), 400);
	char path[600];
	snprintf(path, sizeof(path), "%s/acme_kept-1", media_dir);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	int first = fgetc(f);
	fclose(f);
	assert_int_equal(first, 0x11);
	assert_no_upload_left();
}

/*
 * An item within relay.maxPayloadBytes that Kafka cannot take (past the
 * producer's message.max.bytes, 60000 here) is a 413: a 503 would have
 * Pruvan send it again for ever. Nothing reaches the topic, no file stays.
 */
static void test_live_item_too_large_for_kafka(void **state)
{
	(void)state;
	long before = topic_count();
	static char payload[80000], body[90000];
	static char pad[70001];
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	snprintf(payload, sizeof(payload),
		 "{" CRED ",\"workOrders\":[{\"workOrderNumber\":\"WO-1\","
		 "\"status\":\"a\"},{\"workOrderNumber\":\"WO-2\","
		 "\"notes\":\"%s\"}]}",
		 pad);
	req_t r = {.path = "/pruvan/acme/status.php",
		   .ctype = "application/json",
		   .body = payload};
	expect_status(&r, 413);
	assert_non_null(strstr(last_body, "message.max.bytes"));
	snprintf(payload, sizeof(payload),
		 "{" CRED ",\"uuId\":\"huge-1\",\"key1\":\"111\","
		 "\"key2\":\"WO-1\",\"notes\":\"%s\"}",
		 pad);
	static char file[1000];
	size_t len = wire_multipart(body, sizeof(body), payload, file,
				    sizeof(file), NULL);
	assert_int_equal(wire_post(UP,
				   "multipart/form-data; boundary=" BOUNDARY,
				   body, len, NULL, 0, NULL),
			 413);
	assert_false(media_exists("acme_huge-1"));
	assert_no_upload_left();
	assert_int_equal(topic_count(), before);
}

/* A transfer coding other than chunked is a 400 at once: MHD would read
 * such a body until the client closes, and the client waits for an answer
 * that never comes. */
static void test_live_transfer_coding(void **state)
{
	(void)state;
	req_t r = {.path = UP,
		   .ctype = "application/json",
		   .header = "Transfer-Encoding: gzip",
		   .body = META};
	expect_status(&r, 400);
	assert_non_null(strstr(last_body, "Transfer-Encoding"));
	r.header = "Transfer-Encoding: chunked";
	expect_status(&r, 200);
}

/* ---- many large payloads at once ------------------------------------------
 */

#if defined(__SANITIZE_ADDRESS__)
#define BUDGET_CALLERS 8 /* ASan parses slowly: all within the 2 s wait */
#else
#define BUDGET_CALLERS 60
#endif

static char budget_body[100000];
static size_t budget_len;
static pthread_barrier_t budget_gate;

/* One caller: the whole body but its last byte, then (with every other
 * caller) the last byte, so that all of them are parsed at the same time. */
static void *budget_caller(void *arg)
{
	long *status = arg;
	char head[256];
	int hl = snprintf(head, sizeof(head),
			  "POST /pruvan/acme/status HTTP/1.1\r\nHost: relay\r\n"
			  "Connection: "
			  "close\r\nContent-Type: application/json\r\n"
			  "Content-Length: %zu\r\n\r\n",
			  budget_len);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port =
				     htons((uint16_t)pb_relay_port(relay))};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool ok =
	    fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    write(fd, head, (size_t)hl) == hl &&
	    write(fd, budget_body, budget_len - 1) == (ssize_t)(budget_len - 1);
	pthread_barrier_wait(&budget_gate);
	char answer[512] = "";
	if (ok && write(fd, budget_body + budget_len - 1, 1) == 1) {
		struct timeval tv = {.tv_sec = 20};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		ssize_t n = read(fd, answer, sizeof(answer) - 1);
		answer[n > 0 ? n : 0] = '\0';
	}
	if (fd >= 0)
		close(fd);
	*status = strncmp(answer, "HTTP/1.1 ", 9) == 0
		      ? strtol(answer + 9, NULL, 10)
		      : 0;
	return NULL;
}

/* This process's resident size now and at its peak, in kB. */
static long rss_kb(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	size_t fl = strlen(field);
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, field, fl) == 0)
			kb = strtol(line + fl + 1, NULL, 10);
	if (f)
		fclose(f);
	return kb;
}

/*
 * Parsed, a payload of empty objects takes ~65 times its size, and the
 * parse comes before the credential check: 64 callers without credentials
 * sending 1 MiB each took 3.3 GB. The relay parses at most a few
 * max-size payloads at a time; here 60 status calls of 58 kB each (about
 * 11 MB each parsed, copied and checked), all complete at the same
 * moment: each is answered 200 and the peak grows by ~140 MB, where
 * serving them all at once grew it by 450-690 MB. (The bound is not
 * asserted under ASan, whose quarantine keeps freed memory resident.)
 */
static void test_live_json_budget(void **state)
{
	(void)state;
	int n = snprintf(budget_body, sizeof(budget_body),
			 "{" CRED ",\"workOrders\":[{\"workOrderNumber\":"
			 "\"WO-1\",\"x\":[{}");
	budget_len = (size_t)n;
	while (budget_len + 6 < 58000) { /* a record under 60000 bytes */
		memcpy(budget_body + budget_len, ",{}", 3);
		budget_len += 3;
	}
	memcpy(budget_body + budget_len, "]}]}", 4);
	budget_len += 4;
	FILE *cr = fopen("/proc/self/clear_refs", "w");
	if (cr) { /* resets the peak resident size (Linux 4.0 on) */
		fputs("5", cr);
		fclose(cr);
	}
	long base = rss_kb("VmRSS:");
	pthread_t th[BUDGET_CALLERS];
	long status[BUDGET_CALLERS];
	assert_int_equal(
	    pthread_barrier_init(&budget_gate, NULL, BUDGET_CALLERS), 0);
	for (int i = 0; i < BUDGET_CALLERS; i++)
		assert_int_equal(
		    pthread_create(&th[i], NULL, budget_caller, &status[i]), 0);
	for (int i = 0; i < BUDGET_CALLERS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&budget_gate);
	long peak = rss_kb("VmHWM:");
	for (int i = 0; i < BUDGET_CALLERS; i++)
		assert_int_equal(status[i], 200);
	print_message("peak resident growth: %ld kB\n", peak - base);
#if !defined(__SANITIZE_ADDRESS__)
	assert_true(base > 0 && peak - base < 300 * 1024);
#endif
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_live_kafka_down(void **state)
{
	(void)state;
	assert_int_equal(rd_kafka_mock_broker_set_down(mock, 1), 0);
	req_t r = {.path = UP,
		   .ctype = "application/json",
		   .body = "{" CRED ",\"uuId\":\"ph-down\",\"key1\":\"1\","
			   "\"key2\":\"W\"}"};
	int64_t t0 = mono_ms();
	json_t *j = NULL;
	assert_int_equal(call(&r, &j), 503);
	int64_t took = mono_ms() - t0;
	const char *e = json_string_value(json_object_get(j, "error"));
	assert_non_null(e);
	assert_non_null(strstr(e, "Kafka"));
	assert_true(json_is_false(json_object_get(j, "status")));
	json_decref(j);
	/* answered after the ack timeout (1500 ms), within its margin */
	if (took < 1400 || took >= 4000)
		fail_msg("503 after %lld ms", (long long)took);
	assert_int_equal(rd_kafka_mock_broker_set_up(mock, 1), 0);
	/* Pruvan calls again: accepted once the producer reconnected */
	int64_t deadline = mono_ms() + 20000;
	long st;
	do {
		st = call(&r, &j);
		json_decref(j);
	} while (st != 200 && mono_ms() < deadline);
	assert_int_equal(st, 200);
	double v = 0;
	assert_int_equal(pb_metrics_get(metrics, PB_M_RELAY_REQUESTS,
					"method=\"uploadPictures\","
					"status=\"503\"",
					&v),
			 PB_OK);
	assert_true(v >= 1);
}

/* Runs last: everything logged so far, at debug level, holds no secret. */
/* The relay's start removed the old unfinished upload only. */
static void test_live_stale_uploads(void **state)
{
	(void)state;
	char p[600];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", media_dir, planted[0]);
	assert_int_not_equal(stat(p, &st), 0);
	/* the others stay; then they go, for the later tests' checks */
	for (size_t i = 1; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", media_dir, planted[i]);
		assert_int_equal(stat(p, &st), 0);
		unlink(p);
	}
	char buf[8192];
	ssize_t n = pread(log_fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "removed uploads left unfinished"));
}

static void test_live_no_secret_in_logs(void **state)
{
	(void)state;
	char buf[65536];
	ssize_t n = pread(log_fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0); /* the refusals were logged */
	buf[n] = '\0';
	assert_non_null(strstr(buf, "relay call refused"));
	char sha[41];
	pb_relay_sha1_hex(SECRET, sha);
	const char *never[] = {SECRET, TOKEN, sha};
	char *text = pb_metrics_render(metrics);
	for (size_t i = 0; i < 3; i++) {
		assert_null(strstr(buf, never[i]));
		assert_null(strstr(text, never[i]));
	}
	free(text);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
	    cmocka_unit_test(test_mpend),
	    cmocka_unit_test(test_records_status_numeric_won),
	    cmocka_unit_test(test_secret_equal),
	    cmocka_unit_test(test_secret_equal_whole_length),
	    cmocka_unit_test(test_digests),
	    cmocka_unit_test(test_credentials),
	    cmocka_unit_test(test_parse_path),
	    cmocka_unit_test(test_methods),
	    cmocka_unit_test(test_records_upload),
	    cmocka_unit_test(test_records_status),
	    cmocka_unit_test(test_records_caller_media),
	    cmocka_unit_test(test_records_invalid),
	    cmocka_unit_test(test_since),
	    cmocka_unit_test(test_media_name),
	};
	const struct CMUnitTest live[] = {
	    cmocka_unit_test(test_live_stale_uploads),
	    cmocka_unit_test(test_live_refusals),
	    cmocka_unit_test(test_live_accepts),
	    cmocka_unit_test(test_live_upload_split),
	    cmocka_unit_test(test_live_upload_cut),
	    cmocka_unit_test(test_live_upload_epilogue),
	    cmocka_unit_test(test_live_upload_refused_keeps_nothing),
	    cmocka_unit_test(test_live_item_too_large_for_kafka),
	    cmocka_unit_test(test_live_transfer_coding),
	    cmocka_unit_test(test_live_json_budget),
	    cmocka_unit_test(test_live_kafka_down),
	    cmocka_unit_test(test_live_no_secret_in_logs),
	};
	int rc = cmocka_run_group_tests_name("relay_pure", pure, NULL, NULL);
	rc |= cmocka_run_group_tests_name("relay_live", live, live_setup,
					  live_teardown);
	return rc;
}
