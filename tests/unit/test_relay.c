/*
 * test_relay.c: the relay receiver. Its pure parts (secret comparison,
 * paths, the records a payload becomes) and the live HTTP server against
 * librdkafka's in-process mock cluster: authentication, every refusal with
 * its status and JSON error, success only after Kafka acknowledged (the
 * records are on the topic when the answer arrives), 503 within the ack
 * timeout while the broker is down, metrics, and no secret in the logs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "relay.h"

#define SECRET "s3cr3t-relay-value"

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

static void test_parse_path(void **state)
{
	(void)state;
	char a[16], m[16];
	assert_int_equal(pb_relay_parse_path("/relay/acme/status", a, sizeof(a),
					     m, sizeof(m)),
			 PB_OK);
	assert_string_equal(a, "acme");
	assert_string_equal(m, "status");
	char m8[8];
	assert_int_equal(pb_relay_parse_path("/relay/acme/uploadPictures/", a,
					     sizeof(a), m8, sizeof(m8)),
			 PB_ERR_NOT_FOUND); /* method longer than m8 */
	char m2[32];
	assert_int_equal(pb_relay_parse_path("/relay/acme/uploadPictures/", a,
					     sizeof(a), m2, sizeof(m2)),
			 PB_OK);
	assert_string_equal(m2, "uploadPictures");
	const char *bad[] = {"/relay/acme",
			     "/relay/acme/",
			     "/relay//status",
			     "/relay/a/b/c",
			     "/other/a/status",
			     "/relay/averyveryverylongname/x",
			     NULL};
	for (size_t i = 0; bad[i]; i++)
		if (pb_relay_parse_path(bad[i], a, sizeof(a), m, sizeof(m)) !=
		    PB_ERR_NOT_FOUND)
			fail_msg("%s parsed", bad[i]);
}

static json_t *value_of(const pb_relay_record_t *r)
{
	json_t *v = json_loads(r->value, 0, NULL);
	assert_non_null(v);
	return v;
}

static void test_records_upload(void **state)
{
	(void)state;
	json_t *meta =
	    json_pack("{s:s, s:i, s:s, s:s, s:s, s:s}", "uuId", "u-1", "key1",
		      98765, "key2", "TESTPOST", "key4", "Mow", "password",
		      "pw", "fileType", "jpg");
	pb_relay_record_t *recs = NULL;
	size_t n = 0;
	char err[256];
	assert_int_equal(pb_relay_records("acme", "uploadPictures", meta, &recs,
					  &n, err, sizeof(err)),
			 PB_OK);
	assert_int_equal(n, 1);
	assert_string_equal(recs[0].key, "acme/98765");
	assert_string_equal(recs[0].kind, "photo");
	json_t *v = value_of(&recs[0]);
	assert_string_equal(json_string_value(json_object_get(v, "account")),
			    "acme");
	assert_string_equal(json_string_value(json_object_get(v, "kind")),
			    "photo");
	json_t *item = json_object_get(v, "item");
	assert_string_equal(json_string_value(json_object_get(item, "uuId")),
			    "u-1");
	assert_string_equal(json_string_value(json_object_get(item, "key4")),
			    "Mow");
	assert_null(json_object_get(item, "password"));
	json_decref(v);
	pb_relay_records_free(recs, n);

	/* a survey's metadata is a survey item */
	json_object_set_new(meta, "survey", json_string("{\"q\":1}"));
	assert_int_equal(pb_relay_records("acme", "uploadPictures", meta, &recs,
					  &n, err, sizeof(err)),
			 PB_OK);
	assert_string_equal(recs[0].kind, "survey");
	pb_relay_records_free(recs, n);
	json_decref(meta);
}

static void test_records_status(void **state)
{
	(void)state;
	json_t *p =
	    json_pack("{s:s, s:s, s:[{s:s, s:s}, {s:s, s:s, s:s}]}", "username",
		      "u", "password", "pw", "workOrders", "workOrderNumber",
		      "WO-1", "status", "complete", "workOrderNumber", "WO-2",
		      "status", "complete", "key1", "77");
	pb_relay_record_t *recs = NULL, *again = NULL;
	size_t n = 0, n2 = 0;
	char err[256];
	assert_int_equal(
	    pb_relay_records("acme", "status", p, &recs, &n, err, sizeof(err)),
	    PB_OK);
	assert_int_equal(n, 2);
	assert_string_equal(recs[0].key, "acme/WO-1"); /* no key1: key2 */
	assert_string_equal(recs[1].key, "acme/77");
	json_t *v0 = value_of(&recs[0]), *v1 = value_of(&recs[1]);
	json_t *i0 = json_object_get(v0, "item"),
	       *i1 = json_object_get(v1, "item");
	assert_string_equal(json_string_value(json_object_get(v0, "kind")),
			    "status");
	assert_string_equal(json_string_value(json_object_get(i0, "key2")),
			    "WO-1");
	const char *u0 = json_string_value(json_object_get(i0, "uuId"));
	const char *u1 = json_string_value(json_object_get(i1, "uuId"));
	assert_non_null(u0);
	assert_int_equal(strncmp(u0, "relay-", 6), 0);
	assert_int_equal(strlen(u0), 6 + 32);
	assert_string_not_equal(u0, u1);
	/* the same call again derives the same ids: deduplicated downstream */
	assert_int_equal(pb_relay_records("acme", "status", p, &again, &n2, err,
					  sizeof(err)),
			 PB_OK);
	assert_string_equal(again[0].value, recs[0].value);
	/* ... but another account's identical item is another item */
	pb_relay_records_free(again, n2);
	assert_int_equal(pb_relay_records("globex", "status", p, &again, &n2,
					  err, sizeof(err)),
			 PB_OK);
	json_t *g = value_of(&again[0]);
	assert_string_not_equal(json_string_value(json_object_get(
				    json_object_get(g, "item"), "uuId")),
				u0);
	json_decref(g);
	/* Pruvan's credentials never reach the topic */
	for (size_t i = 0; i < n; i++)
		assert_null(strstr(recs[i].value, "pw"));
	json_decref(v0);
	json_decref(v1);
	pb_relay_records_free(recs, n);
	pb_relay_records_free(again, n2);
	json_decref(p);
}

static void expect_invalid(const char *method, const char *payload,
			   const char *needle)
{
	json_t *p = json_loads(payload, 0, NULL);
	assert_non_null(p);
	pb_relay_record_t *recs = (pb_relay_record_t *)0x1;
	size_t n = 77;
	char err[256] = "";
	assert_int_equal(
	    pb_relay_records("acme", method, p, &recs, &n, err, sizeof(err)),
	    PB_ERR_INVALID);
	if (!strstr(err, needle))
		fail_msg("%s: error \"%s\" lacks \"%s\"", payload, err, needle);
	/* untouched on failure */
	assert_ptr_equal(recs, (pb_relay_record_t *)0x1);
	assert_int_equal(n, 77);
	json_decref(p);
}

static void test_records_invalid(void **state)
{
	(void)state;
	expect_invalid("uploadPictures", "{\"uuId\":\"u\",\"key1\":\"1\"}",
		       "metadata: ");
	expect_invalid("uploadPictures",
		       "{\"uuId\":\"u\",\"key1\":\"\",\"key2\":\"W\"}", "key1");
	expect_invalid("status", "{\"username\":\"u\"}", "workOrders");
	expect_invalid("status",
		       "{\"workOrders\":[{\"workOrderNumber\":\"W\"},3]}",
		       "workOrders[1]");
	expect_invalid("status", "{\"workOrders\":[{\"status\":\"x\"}]}",
		       "workOrders[0]");
	expect_invalid("status", "[]", "JSON object");
	char big[40000];
	size_t o = (size_t)snprintf(big, sizeof(big), "{\"workOrders\":[");
	for (int i = 0; i <= PB_RELAY_MAX_ITEMS; i++)
		o += (size_t)snprintf(big + o, sizeof(big) - o, "%s{}",
				      i ? "," : "");
	snprintf(big + o, sizeof(big) - o, "]}");
	expect_invalid("status", big, "at most");
}

/* ---- the live server ------------------------------------------------------
 */

static rd_kafka_t *mock_rk, *probe;
static rd_kafka_mock_cluster_t *mock;
static pb_config_t *cfg;
static pb_metrics_t *metrics;
static pb_relay_t *relay;
static char log_path[] = "/tmp/pb-test-relay-log.XXXXXX";
static int log_fd = -1;

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
	setenv("PB_TEST_RELAY_SECRET", SECRET, 1);
	setenv("PB_TEST_PUSHKEY", "https://direct.pruvan.com/api/?apiKey=k", 1);
	char text[1024];
	snprintf(text, sizeof(text),
		 "{\"kafka\": {\"bootstrap.servers\": \"%s\", "
		 "\"reconnect.backoff.max.ms\": \"200\", \"log_level\": "
		 "\"0\"}, \"relay\": {\"listen\": \"127.0.0.1:0\", \"secret\": "
		 "\"env:PB_TEST_RELAY_SECRET\", \"ackTimeoutMs\": 1500}, "
		 "\"accounts\": {\"acme\": {\"pushKeyUrl\": "
		 "\"env:PB_TEST_PUSHKEY\"}}}",
		 rd_kafka_mock_cluster_bootstraps(mock));
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
} req_t;

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
			static char photo[200000];
			memset(photo, 0xd8, sizeof(photo));
			part = curl_mime_addpart(mime);
			curl_mime_name(part, "file");
			curl_mime_filename(part, "photo.jpg");
			curl_mime_type(part, "image/jpeg");
			curl_mime_data(part, photo, sizeof(photo));
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
	free(t.data);
	return st;
}

/* Expect status and, for errors, a JSON {"error": non-empty string}. */
static void expect_status(const req_t *r, long want)
{
	json_t *j = NULL;
	long st = call(r, &j);
	if (st != want)
		fail_msg("%s: status %ld, expected %ld", r->path, st, want);
	assert_non_null(j);
	if (want >= 400) {
		const char *e = json_string_value(json_object_get(j, "error"));
		assert_non_null(e);
		assert_true(strlen(e) > 0);
		assert_int_equal(json_object_size(j), 1);
	}
	json_decref(j);
}

#define META                                                                   \
	"{\"uuId\":\"ph-1\",\"key1\":\"111\",\"key2\":\"WO-1\","               \
	"\"fileType\":\"jpg\"}"
#define HDR "X-Relay-Secret: " SECRET

static void test_live_refusals(void **state)
{
	(void)state;
	long before = topic_count();
	assert_true(before >= 0);
	req_t r = {.path = "/relay/acme/uploadPictures",
		   .body = META,
		   .ctype = "application/json"};
	expect_status(&r, 401); /* no secret */
	r.path = "/relay/acme/uploadPictures?secret=wrong";
	expect_status(&r, 401);
	r.header = "X-Relay-Secret: " SECRET "x";
	r.path = "/relay/acme/uploadPictures";
	expect_status(&r, 401);
	r.header = "Authorization: Basic " SECRET;
	expect_status(&r, 401);
	r.header = HDR;
	r.method = "GET";
	expect_status(&r, 405);
	r.method = NULL;
	r.path = "/relay/nobody/uploadPictures";
	expect_status(&r, 404);
	r.path = "/relay/acme/getWorkOrders";
	expect_status(&r, 404);
	r.path = "/metrics";
	expect_status(&r, 404);
	r.path = "/relay/acme/uploadPictures";
	r.body = "{\"uuId\":";
	expect_status(&r, 400); /* not JSON */
	r.body = "{\"uuId\":\"x\",\"key1\":\"1\"}";
	expect_status(&r, 422); /* no key2 */
	r.body = "";
	expect_status(&r, 400);
	r.body = META;
	r.ctype = "image/png";
	expect_status(&r, 415);
	r.ctype = "multipart/form-data"; /* no boundary */
	expect_status(&r, 400);
	/* a declared body over the cap is refused before it is read */
	r.ctype = "application/json";
	static char huge[PB_RELAY_MAX_BODY + 16];
	memset(huge, ' ', sizeof(huge));
	r.body = huge;
	r.body_len = sizeof(huge);
	expect_status(&r, 413);
	/* JSON over its own cap */
	r.body_len = PB_RELAY_MAX_JSON + 10;
	expect_status(&r, 413);
	/* nothing reached the topic */
	assert_int_equal(topic_count(), before);
	double v = 0;
	assert_int_equal(pb_metrics_get(metrics, PB_M_RELAY_REQUESTS,
					"method=\"uploadPictures\","
					"status=\"401\"",
					&v),
			 PB_OK);
	assert_true(v == 4);
}

static void test_live_accepts(void **state)
{
	(void)state;
	long before = topic_count();
	assert_true(before >= 0);
	json_t *j = NULL;

	/* plain JSON, secret in a header: on the topic when answered */
	req_t r = {.path = "/relay/acme/uploadPictures",
		   .body = META,
		   .ctype = "application/json",
		   .header = HDR};
	assert_int_equal(call(&r, &j), 200);
	assert_true(json_is_true(json_object_get(j, "status")));
	assert_string_equal(json_string_value(json_object_get(j, "error")), "");
	json_decref(j);
	assert_int_equal(topic_count(), before + 1);

	/* Pruvan's multipart (payload part + the photo), secret in the URL */
	req_t m = {.path = "/relay/acme/uploadPictures?secret=" SECRET,
		   .payload_field = META,
		   .with_file = true};
	assert_int_equal(call(&m, &j), 200);
	json_decref(j);
	assert_int_equal(topic_count(), before + 2);

	/* status: urlencoded payload=..., Bearer; two items */
	char *esc = curl_easy_escape(
	    NULL,
	    "{\"username\":\"u\",\"password\":\"p\",\"token\":\"t\","
	    "\"workOrders\":[{\"workOrderNumber\":\"WO-1\",\"status\":"
	    "\"complete\"},{\"workOrderNumber\":\"WO-2\",\"status\":"
	    "\"complete\"}]}",
	    0);
	char body[1024];
	snprintf(body, sizeof(body), "username=u&payload=%s", esc);
	curl_free(esc);
	req_t s = {.path = "/relay/acme/status",
		   .ctype = "application/x-www-form-urlencoded",
		   .header = "Authorization: Bearer " SECRET,
		   .body = body};
	assert_int_equal(call(&s, &j), 200);
	assert_true(json_is_true(json_object_get(j, "status")));
	assert_true(json_is_null(json_object_get(j, "error")));
	json_decref(j);
	assert_int_equal(topic_count(), before + 4);

	/* validate answers and writes nothing */
	req_t v = {.path = "/relay/acme/validate",
		   .header = HDR,
		   .ctype = "application/x-www-form-urlencoded",
		   .body = "payload=%7B%7D"};
	assert_int_equal(call(&v, &j), 200);
	assert_true(json_is_true(json_object_get(j, "validated")));
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
	req_t r = {.path = "/relay/acme/uploadPictures",
		   .header = HDR,
		   .ctype = "application/json",
		   .body =
		       "{\"uuId\":\"ph-down\",\"key1\":\"1\",\"key2\":\"W\"}"};
	int64_t t0 = mono_ms();
	json_t *j = NULL;
	assert_int_equal(call(&r, &j), 503);
	int64_t took = mono_ms() - t0;
	const char *e = json_string_value(json_object_get(j, "error"));
	assert_non_null(e);
	assert_non_null(strstr(e, "Kafka"));
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
static void test_live_no_secret_in_logs(void **state)
{
	(void)state;
	char buf[65536];
	ssize_t n = pread(log_fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0); /* the refusals were logged */
	buf[n] = '\0';
	assert_non_null(strstr(buf, "relay call refused"));
	assert_null(strstr(buf, SECRET));
	char *text = pb_metrics_render(metrics);
	assert_null(strstr(text, SECRET));
	free(text);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
	    cmocka_unit_test(test_secret_equal),
	    cmocka_unit_test(test_parse_path),
	    cmocka_unit_test(test_records_upload),
	    cmocka_unit_test(test_records_status),
	    cmocka_unit_test(test_records_invalid),
	};
	const struct CMUnitTest live[] = {
	    cmocka_unit_test(test_live_refusals),
	    cmocka_unit_test(test_live_accepts),
	    cmocka_unit_test(test_live_kafka_down),
	    cmocka_unit_test(test_live_no_secret_in_logs),
	};
	int rc = cmocka_run_group_tests_name("relay_pure", pure, NULL, NULL);
	rc |= cmocka_run_group_tests_name("relay_live", live, live_setup,
					  live_teardown);
	return rc;
}
