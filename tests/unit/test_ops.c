/*
 * test_ops.c: the operations HTTP server, over real sockets on loopback:
 * an ephemeral port, each route's status, content type and body, probe
 * toggling through the opaque, 404, 405, HEAD, IPv6 and listen parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

/* What the pipeline would expose: atomics read from MHD's thread. */
typedef struct {
	atomic_bool alive;
	atomic_bool ready;
} probe_state_t;

static bool probe_alive(void *opaque, char *reason, size_t size)
{
	probe_state_t *st = opaque;
	if (atomic_load(&st->alive))
		return true;
	snprintf(reason, size, "consumer loop stalled");
	return false;
}

static bool probe_ready(void *opaque, char *reason, size_t size)
{
	probe_state_t *st = opaque;
	if (atomic_load(&st->ready))
		return true;
	/* A quote, to check the body is escaped JSON. */
	snprintf(reason, size, "redis \"unreachable\"");
	return false;
}

typedef struct {
	pb_metrics_t *metrics;
	pb_ops_t *ops;
	probe_state_t probes;
	CURL *curl;
} fixture_t;

typedef struct {
	long status;
	char body[65536];
	size_t len;
	char content_type[128];
	char allow[64];
} reply_t;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	reply_t *r = ud;
	size_t len = sz * n;
	if (r->len + len >= sizeof(r->body))
		return 0;
	memcpy(r->body + r->len, p, len);
	r->len += len;
	r->body[r->len] = '\0';
	return len;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	reply_t *r = ud;
	size_t len = sz * n;
	if (len > 6 && strncasecmp(p, "Allow:", 6) == 0) {
		size_t k =
		    len - 6 < sizeof(r->allow) ? len - 6 : sizeof(r->allow) - 1;
		memcpy(r->allow, p + 6, k);
		r->allow[k] = '\0';
	}
	return len;
}

static void fetch(fixture_t *f, const char *method, const char *path,
		  reply_t *r)
{
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", pb_ops_port(f->ops),
		 path);
	memset(r, 0, sizeof(*r));
	CURL *c = f->curl;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "POST") == 0)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x=1");
	else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	CURLcode rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	char *ct = NULL;
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
	if (ct)
		snprintf(r->content_type, sizeof(r->content_type), "%s", ct);
}

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	atomic_init(&f->probes.alive, true);
	atomic_init(&f->probes.ready, true);
	f->metrics = pb_metrics_new();
	f->curl = curl_easy_init();
	if (!f->metrics || !f->curl ||
	    pb_metrics_declare_standard(f->metrics) != PB_OK)
		return -1;
	char err[256];
	if (pb_ops_start("127.0.0.1:0", f->metrics, probe_alive, probe_ready,
			 &f->probes, &f->ops, err, sizeof(err)) != PB_OK) {
		fprintf(stderr, "pb_ops_start: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	pb_ops_stop(f->ops);
	curl_easy_cleanup(f->curl);
	pb_metrics_destroy(f->metrics);
	free(f);
	return 0;
}

static void test_ephemeral_port(void **state)
{
	fixture_t *f = *state;
	assert_true(pb_ops_port(f->ops) > 0);
	assert_int_equal(pb_ops_port(NULL), -1);
}

static void test_metrics_endpoint(void **state)
{
	fixture_t *f = *state;
	pb_metrics_set(f->metrics, PB_M_READY, "", 1);
	pb_metrics_add(f->metrics, PB_M_REDIS_ERRORS, "", 2);
	reply_t r;
	fetch(f, "GET", "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type,
			    "text/plain; version=0.0.4; charset=utf-8");
	char *want = pb_metrics_render(f->metrics);
	assert_non_null(want);
	assert_string_equal(r.body, want);
	free(want);
	assert_non_null(strstr(r.body, "pruvan_bridge_ready 1\n"));
	assert_non_null(strstr(r.body, "pruvan_bridge_redis_errors_total 2\n"));
}

static void test_probes_ok(void **state)
{
	fixture_t *f = *state;
	reply_t r;
	fetch(f, "GET", "/healthz", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type, "application/json");
	assert_string_equal(r.body, "{\"status\":\"ok\"}");
	fetch(f, "GET", "/readyz", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"status\":\"ok\"}");
}

static void test_probes_toggle(void **state)
{
	fixture_t *f = *state;
	reply_t r;
	atomic_store(&f->probes.ready, false);
	fetch(f, "GET", "/readyz", &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(
	    r.body,
	    "{\"status\":\"fail\",\"reason\":\"redis \\\"unreachable\\\"\"}");
	/* Readiness failing leaves liveness alone. */
	fetch(f, "GET", "/healthz", &r);
	assert_int_equal(r.status, 200);

	atomic_store(&f->probes.alive, false);
	fetch(f, "GET", "/healthz", &r);
	assert_int_equal(r.status, 503);
	assert_string_equal(
	    r.body,
	    "{\"status\":\"fail\",\"reason\":\"consumer loop stalled\"}");

	atomic_store(&f->probes.alive, true);
	atomic_store(&f->probes.ready, true);
	fetch(f, "GET", "/healthz", &r);
	assert_int_equal(r.status, 200);
	fetch(f, "GET", "/readyz", &r);
	assert_int_equal(r.status, 200);
}

static void test_not_found(void **state)
{
	fixture_t *f = *state;
	reply_t r;
	static const char *const paths[] = {"/", "/metricsx", "/healthz/",
					    "/nope?x=1"};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		fetch(f, "GET", paths[i], &r);
		assert_int_equal(r.status, 404);
		assert_string_equal(r.content_type, "application/json");
		assert_string_equal(
		    r.body, "{\"status\":\"fail\",\"reason\":\"not found\"}");
	}
}

static void test_method_not_allowed(void **state)
{
	fixture_t *f = *state;
	reply_t r;
	static const char *const methods[] = {"POST", "PUT", "DELETE"};
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		fetch(f, methods[i], "/metrics", &r);
		assert_int_equal(r.status, 405);
		assert_non_null(strstr(r.allow, "GET, HEAD"));
	}
	fetch(f, "POST", "/nope", &r);
	assert_int_equal(r.status, 405);
}

static void test_head(void **state)
{
	fixture_t *f = *state;
	reply_t r;
	fetch(f, "HEAD", "/healthz", &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 0);
	fetch(f, "HEAD", "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.content_type,
			    "text/plain; version=0.0.4; charset=utf-8");
}

static void test_null_probes_are_healthy(void **state)
{
	(void)state;
	pb_metrics_t *m = pb_metrics_new();
	assert_non_null(m);
	pb_ops_t *ops = NULL;
	char err[256];
	assert_int_equal(pb_ops_start("127.0.0.1:0", m, NULL, NULL, NULL, &ops,
				      err, sizeof(err)),
			 PB_OK);
	fixture_t f = {.metrics = m, .ops = ops, .curl = curl_easy_init()};
	assert_non_null(f.curl);
	reply_t r;
	fetch(&f, "GET", "/readyz", &r);
	assert_int_equal(r.status, 200);
	curl_easy_cleanup(f.curl);
	pb_ops_stop(ops);
	pb_metrics_destroy(m);
}

static void test_ipv6_loopback(void **state)
{
	(void)state;
	pb_metrics_t *m = pb_metrics_new();
	assert_non_null(m);
	pb_ops_t *ops = NULL;
	char err[256];
	pb_err_t rc = pb_ops_start("[::1]:0", m, NULL, NULL, NULL, &ops, err,
				   sizeof(err));
	if (rc != PB_OK) {
		/* Containers without IPv6 exist; that is not our bug. */
		pb_metrics_destroy(m);
		skip();
	}
	CURL *c = curl_easy_init();
	assert_non_null(c);
	char url[64];
	snprintf(url, sizeof(url), "http://[::1]:%d/healthz", pb_ops_port(ops));
	reply_t r;
	memset(&r, 0, sizeof(r));
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"status\":\"ok\"}");
	curl_easy_cleanup(c);
	pb_ops_stop(ops);
	pb_metrics_destroy(m);
}

static void test_parse_listen(void **state)
{
	(void)state;
	struct sockaddr_storage ss;
	socklen_t len;
	char err[256];
	static const char *const good[] = {"127.0.0.1:9464", "0.0.0.0:0",
					   "[::1]:9464",     "[::]:1",
					   ":9464",	     "*:80"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (pb_ops_parse_listen(good[i], &ss, &len, err, sizeof(err)) !=
		    PB_OK)
			fail_msg("%s: %s", good[i], err);
	}
	assert_int_equal(
	    pb_ops_parse_listen("[::1]:1", &ss, &len, err, sizeof(err)), PB_OK);
	assert_int_equal(ss.ss_family, AF_INET6);
	static const char *const bad[] = {"",
					  "127.0.0.1",
					  "127.0.0.1:",
					  "127.0.0.1:65536",
					  "127.0.0.1:-1",
					  "::1:80",
					  "[::1]80",
					  "[]:80",
					  "1.2.3.4:8x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (pb_ops_parse_listen(bad[i], &ss, &len, err, sizeof(err)) !=
		    PB_ERR_CONFIG)
			fail_msg("accepted: \"%s\"", bad[i]);
	}
	assert_int_equal(
	    pb_ops_start(NULL, NULL, NULL, NULL, NULL, NULL, err, sizeof(err)),
	    PB_ERR_INVALID);
}

static void test_port_in_use(void **state)
{
	fixture_t *f = *state;
	char listen[32], err[256];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", pb_ops_port(f->ops));
	pb_ops_t *ops = NULL;
	assert_int_equal(pb_ops_start(listen, f->metrics, NULL, NULL, NULL,
				      &ops, err, sizeof(err)),
			 PB_ERR_IO);
	assert_null(ops);
	assert_non_null(strstr(err, listen));
	pb_ops_stop(NULL);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	    T(test_ephemeral_port),
	    T(test_metrics_endpoint),
	    T(test_probes_ok),
	    T(test_probes_toggle),
	    T(test_not_found),
	    T(test_method_not_allowed),
	    T(test_head),
	    T(test_port_in_use),
	    cmocka_unit_test(test_null_probes_are_healthy),
	    cmocka_unit_test(test_ipv6_loopback),
	    cmocka_unit_test(test_parse_listen),
#undef T
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
