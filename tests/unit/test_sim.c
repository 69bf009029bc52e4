/*
 * test_sim.c: integration test of pruvan-sim, the Pruvan simulator.
 *
 * Starts the real binary (path in argv[1] or $PB_SIM) on a free port, awaits
 * its port file (bounded polling, no fixed sleeps), and drives it over HTTP
 * with libcurl: Pruvan's answers to creates, updates, deletes and refused
 * batches, the three body encodings (form and multipart as Pruvan
 * documents them; raw JSON only when told to accept it), the refresh GET, every
 * fault kind and the control endpoints. Each test starts from POST /_sim/reset.
 * The last test sends SIGTERM and requires exit status 0.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static const char *sim_path;

struct sim_proc {
	pid_t pid;
	unsigned int port;
	char dir[64];
	char port_file[128];
};

static struct sim_proc g_sim;
static CURL *g_curl;	      /* reused: keep-alive, like the worker */
static bool fresh_connection; /* next request on a new connection */
/* next request asks "Expect: 100-continue" and waits for the answer */
static bool expect_continue;

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Start pruvan-sim with extra arguments; await its port file (10 s). */
static int sim_start(struct sim_proc *p, const char *extra1, const char *extra2)
{
	memset(p, 0, sizeof(*p));
	pb_strlcpy(p->dir, "/tmp/test_sim.XXXXXX", sizeof(p->dir));
	if (!mkdtemp(p->dir))
		return -1;
	snprintf(p->port_file, sizeof(p->port_file), "%s/port", p->dir);
	p->pid = fork();
	if (p->pid < 0)
		return -1;
	if (p->pid == 0) {
		const char *argv[10] = {sim_path,      "--port",     "0",
					"--port-file", p->port_file, "--quiet"};
		int n = 6;
		if (extra1)
			argv[n++] = extra1;
		if (extra2)
			argv[n++] = extra2;
		argv[n] = NULL;
		execv(sim_path, (char *const *)argv);
		_exit(127);
	}
	/* Poll for the file the sim renames into place once listening. */
	for (int i = 0; i < 1000; i++) {
		FILE *f = fopen(p->port_file, "r");
		if (f) {
			int ok = fscanf(f, "%u", &p->port) == 1;
			fclose(f);
			if (ok && p->port > 0)
				return 0;
		}
		int status;
		if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
			p->pid = 0;
			return -1;
		}
		sleep_ms(10);
	}
	return -1;
}

/* SIGTERM and reap within 10 s; returns the exit status, -1 if it hung. */
static int sim_stop(struct sim_proc *p)
{
	int status = -1;
	if (p->pid <= 0)
		return -1;
	kill(p->pid, SIGTERM);
	for (int i = 0; i < 1000; i++) {
		if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
			p->pid = 0;
			unlink(p->port_file);
			rmdir(p->dir);
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		}
		sleep_ms(10);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, &status, 0);
	p->pid = 0;
	return -1;
}

struct buf {
	char *data;
	size_t len;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct buf *b = ud;
	size_t n = size * nmemb;
	char *nd = realloc(b->data, b->len + n + 1);
	if (!nd)
		return 0;
	memcpy(nd + b->len, ptr, n);
	b->data = nd;
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

struct http_result {
	CURLcode rc;
	long status;
	json_t *body; /* parsed answer, NULL if none or not JSON */
	char retry_after[32];
	int64_t elapsed_ms;
};

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct http_result *r = ud;
	size_t n = size * nmemb;
	static const char name[] = "Retry-After:";
	if (n > sizeof(name) && strncasecmp(ptr, name, sizeof(name) - 1) == 0) {
		size_t i = sizeof(name) - 1, j = 0;
		while (i < n && ptr[i] == ' ')
			i++;
		while (i < n && ptr[i] != '\r' && ptr[i] != '\n' &&
		       j + 1 < sizeof(r->retry_after))
			r->retry_after[j++] = ptr[i++];
		r->retry_after[j] = '\0';
	}
	return n;
}

static void http_on(unsigned int port, const char *method, const char *path,
		    const char *ctype, const char *body, size_t body_len,
		    struct http_result *r)
{
	char url[512];
	struct buf b = {0};
	struct curl_slist *hdrs = NULL;
	char ct[128];

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	curl_easy_reset(g_curl);
	curl_easy_setopt(g_curl, CURLOPT_URL, url);
	curl_easy_setopt(g_curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(g_curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(g_curl, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(g_curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(g_curl, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(g_curl, CURLOPT_TIMEOUT_MS, 20000L);
	if (fresh_connection) {
		curl_easy_setopt(g_curl, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(g_curl, CURLOPT_FORBID_REUSE, 1L);
	}
	if (body) {
		curl_easy_setopt(g_curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(g_curl, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)body_len);
	}
	if (ctype) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
		hdrs = curl_slist_append(hdrs, ct);
	}
	if (expect_continue) {
		hdrs = curl_slist_append(hdrs, "Expect: 100-continue");
		curl_easy_setopt(g_curl, CURLOPT_EXPECT_100_TIMEOUT_MS, 20000L);
	} else {
		hdrs = curl_slist_append(hdrs, "Expect:");
	}
	curl_easy_setopt(g_curl, CURLOPT_HTTPHEADER, hdrs);

	int64_t t0 = pb_mono_ms();
	r->rc = curl_easy_perform(g_curl);
	r->elapsed_ms = pb_mono_ms() - t0;
	curl_easy_getinfo(g_curl, CURLINFO_RESPONSE_CODE, &r->status);
	if (b.data)
		r->body = json_loadb(b.data, b.len, 0, NULL);
	free(b.data);
	curl_slist_free_all(hdrs);
}

static void http(const char *method, const char *path, const char *ctype,
		 const char *body, struct http_result *r)
{
	http_on(g_sim.port, method, path, ctype, body, body ? strlen(body) : 0,
		r);
}

/* "workOrders=" + json urlencoded, as Pruvan documents a push (malloc'd). */
static char *form_body(const char *json)
{
	char *esc = curl_easy_escape(g_curl, json, (int)strlen(json));
	assert_non_null(esc);
	size_t n = strlen(esc) + 16;
	char *body = malloc(n);
	assert_non_null(body);
	snprintf(body, n, "workOrders=%s", esc);
	curl_free(esc);
	return body;
}

/* POST the JSON text json to /api/?apiKey=key in the documented form (the
 * urlencoded field workOrders) and expect a transport success. */
static void push_form(const char *key, const char *json, struct http_result *r)
{
	char path[256];
	snprintf(path, sizeof(path), "/api/?apiKey=%s", key);
	char *body = form_body(json);
	http("POST", path, "application/x-www-form-urlencoded", body, r);
	free(body);
	assert_int_equal(r->rc, CURLE_OK);
}

/* POST json as the field workOrders of a multipart/form-data body, with
 * an unrelated field and a file part named workOrders before it (neither
 * is the field Pruvan reads). */
static void push_multipart(const char *key, const char *json,
			   struct http_result *r)
{
	char url[256];
	struct buf b = {0};
	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/?apiKey=%s",
		 g_sim.port, key);
	curl_easy_reset(g_curl);
	curl_mime *m = curl_mime_init(g_curl);
	curl_mimepart *part = curl_mime_addpart(m);
	curl_mime_name(part, "other");
	curl_mime_data(part, "1", CURL_ZERO_TERMINATED);
	part = curl_mime_addpart(m);
	curl_mime_name(part, "workOrders");
	curl_mime_filename(part, "orders.json");
	curl_mime_data(part, "not the field", CURL_ZERO_TERMINATED);
	if (json) {
		part = curl_mime_addpart(m);
		curl_mime_name(part, "workOrders");
		curl_mime_data(part, json, CURL_ZERO_TERMINATED);
	}
	curl_easy_setopt(g_curl, CURLOPT_URL, url);
	curl_easy_setopt(g_curl, CURLOPT_MIMEPOST, m);
	curl_easy_setopt(g_curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(g_curl, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(g_curl, CURLOPT_TIMEOUT_MS, 20000L);
	r->rc = curl_easy_perform(g_curl);
	curl_easy_getinfo(g_curl, CURLINFO_RESPONSE_CODE, &r->status);
	if (b.data)
		r->body = json_loadb(b.data, b.len, 0, NULL);
	free(b.data);
	curl_mime_free(m);
	assert_int_equal(r->rc, CURLE_OK);
}

/* POST json as a raw application/json body. */
static void push_raw_json(const char *key, const char *json,
			  struct http_result *r)
{
	char path[256];
	snprintf(path, sizeof(path), "/api/?apiKey=%s", key);
	http("POST", path, "application/json", json, r);
	assert_int_equal(r->rc, CURLE_OK);
}

static void release(struct http_result *r)
{
	json_decref(r->body);
	r->body = NULL;
}

static json_int_t count_of(json_t *answer, const char *what)
{
	return json_integer_value(
	    json_object_get(json_object_get(answer, "response"), what));
}

static const char *error_of(json_t *answer)
{
	return json_string_value(json_object_get(answer, "error"));
}

/* Assert a success answer with exactly these counts. */
static void assert_counts(struct http_result *r, json_int_t c, json_int_t u,
			  json_int_t d)
{
	assert_int_equal(r->status, 200);
	assert_non_null(r->body);
	assert_true(json_is_null(json_object_get(r->body, "error")));
	assert_int_equal(count_of(r->body, "created"), c);
	assert_int_equal(count_of(r->body, "updated"), u);
	assert_int_equal(count_of(r->body, "deleted"), d);
}

/* Assert a refused batch: 200, zero counts, error containing needle. */
static void assert_refused(struct http_result *r, const char *needle)
{
	assert_int_equal(r->status, 200);
	assert_non_null(r->body);
	assert_int_equal(count_of(r->body, "created"), 0);
	assert_int_equal(count_of(r->body, "updated"), 0);
	assert_int_equal(count_of(r->body, "deleted"), 0);
	const char *e = error_of(r->body);
	assert_non_null(e);
	assert_non_null(strstr(e, needle));
}

static json_t *get_json(const char *path)
{
	struct http_result r;
	http("GET", path, NULL, NULL, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_non_null(r.body);
	return r.body;
}

static json_int_t stat_of(const char *name)
{
	json_t *s = get_json("/_sim/stats");
	json_int_t v = json_integer_value(json_object_get(s, name));
	json_decref(s);
	return v;
}

/* The stored record of one order, or NULL (new reference). */
static json_t *order_of(const char *key, const char *won)
{
	char path[256];
	snprintf(path, sizeof(path), "/_sim/orders?apiKey=%s", key);
	json_t *o = get_json(path);
	json_t *rec = json_object_get(json_object_get(o, "orders"), won);
	json_incref(rec);
	json_decref(o);
	return rec;
}

static void arm(const char *spec)
{
	struct http_result r;
	http("POST", "/_sim/faults", "application/json", spec, &r);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	release(&r);
}

static char *read_fixture(const char *name)
{
	const char *dir = getenv("PB_FIXTURES");
	char path[1024];
	snprintf(path, sizeof(path), "%s/sim/%s", dir ? dir : "tests/fixtures",
		 name);
	json_t *j = json_load_file(path, 0, NULL);
	assert_non_null(j);
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

#define WO(n, extra)                                                           \
	"{\"workOrderNumber\":\"" n "\",\"address1\":\"1 Main\","              \
	"\"city\":\"Austin\",\"state\":\"TX\",\"zip\":\"78701\","              \
	"\"services\":[{\"serviceName\":\"Mow\"}]" extra "}"

static int reset(void **state)
{
	(void)state;
	struct http_result r;
	http("POST", "/_sim/reset", NULL, "", &r);
	release(&r);
	return r.rc == CURLE_OK && r.status == 200 ? 0 : -1;
}

/* ---- Pruvan behaviour -------------------------------------------------- */

static void test_create_then_update(void **state)
{
	(void)state;
	struct http_result r;
	char *create = read_fixture("create_testpost.json");
	char *update = read_fixture("update_testpost.json");

	push_form("K1", create, &r);
	assert_counts(&r, 1, 0, 0);
	release(&r);
	push_form("K1", update, &r); /* Pruvan's own update example */
	assert_counts(&r, 0, 1, 0);
	release(&r);
	push_form("K1", create, &r); /* the same order again: an update */
	assert_counts(&r, 0, 1, 0);
	release(&r);

	json_t *rec = order_of("K1", "TESTPOST");
	assert_non_null(rec);
	assert_int_equal(json_integer_value(json_object_get(rec, "_created")),
			 1);
	assert_int_equal(json_integer_value(json_object_get(rec, "_updated")),
			 2);
	assert_string_equal(
	    json_string_value(json_object_get(rec, "clientStatus")),
	    "Order Created");
	assert_string_equal(json_string_value(json_object_get(rec, "city")),
			    "Round Rock");
	json_decref(rec);

	/* Orders are per apiKey: another key sees a create. */
	push_form("K2", update, &r);
	assert_refused(&r, "TESTPOST: missing address1");
	release(&r);
	free(create);
	free(update);
}

static void test_create_missing_services_refuses_whole_batch(void **state)
{
	(void)state;
	struct http_result r;
	push_form(
	    "K1",
	    "{\"workOrders\":[" WO(
		"GOOD",
		"") ","
		    "{\"workOrderNumber\":\"BAD\",\"address1\":\"1 Main\","
		    "\"city\":\"Austin\",\"state\":\"TX\",\"zip\":\"78701\"}]}",
	    &r);
	assert_refused(&r, "BAD: missing services");
	release(&r);
	json_t *good = order_of("K1", "GOOD");
	assert_null(good); /* nothing applied, not even the valid order */
	assert_int_equal(stat_of("created"), 0);
	assert_int_equal(stat_of("refused"), 1);

	push_form("K1",
		  "{\"workOrders\":[{\"workOrderNumber\":\"E\",\"address1\":"
		  "\"1 Main\",\"city\":\"Austin\",\"state\":\"Texas\",\"zip\":"
		  "\"787\",\"services\":[{\"serviceName\":\"\"}]}]}",
		  &r);
	assert_refused(&r, "E: invalid state, invalid zip, no service");
	release(&r);
	push_form("K1", "{\"workOrders\":[" WO("A", "") ",{\"city\":\"X\"}]}",
		  &r);
	assert_refused(&r, "workOrders[1]: missing workOrderNumber");
	release(&r);
	assert_null(order_of("K1", "A"));
}

static void test_batch_counts_and_delete(void **state)
{
	(void)state;
	struct http_result r;
	/* Create and update of one order in one batch, plus another create. */
	push_form("K1",
		  "{\"workOrders\":[" WO("A", "") ",{\"workOrderNumber\":\"A\","
						  "\"clientStatus\":\"x\"}," WO(
						      "B", "") "]}",
		  &r);
	assert_counts(&r, 2, 1, 0);
	release(&r);
	push_form("K1",
		  "{\"workOrders\":[{\"workOrderNumber\":\"A\",\"status\":"
		  "\"deleted\",\"clientStatus\":\"Order Deleted\"}]}",
		  &r);
	assert_counts(&r, 0, 0, 1);
	release(&r);
	json_t *rec = order_of("K1", "A");
	assert_non_null(rec);
	assert_true(json_is_true(json_object_get(rec, "_isDeleted")));
	assert_int_equal(json_integer_value(json_object_get(rec, "_deleted")),
			 1);
	json_decref(rec);
	/* After a delete, an update is a create and needs the create minimum.
	 */
	push_form("K1",
		  "{\"workOrders\":[{\"workOrderNumber\":\"A\","
		  "\"clientStatus\":\"y\"}]}",
		  &r);
	assert_refused(&r, "A: missing address1");
	release(&r);
	push_form("K1", "{\"workOrders\":[" WO("A", "") "]}", &r);
	assert_counts(&r, 1, 0, 0);
	release(&r);
	rec = order_of("K1", "A");
	assert_int_equal(json_integer_value(json_object_get(rec, "_created")),
			 2);
	assert_false(json_is_true(json_object_get(rec, "_isDeleted")));
	json_decref(rec);
}

static void test_form_encoding(void **state)
{
	(void)state;
	struct http_result r;
	/* Whole object in the field, urlencoded. */
	char *esc =
	    curl_easy_escape(g_curl, "{\"workOrders\":[" WO("F1", "") "]}", 0);
	char *body = NULL;
	size_t n = strlen(esc) + 64;
	body = malloc(n);
	assert_non_null(body);
	snprintf(body, n, "other=1&workOrders=%s", esc);
	curl_free(esc);
	http("POST", "/api/?apiKey=K1", "application/x-www-form-urlencoded",
	     body, &r);
	assert_counts(&r, 1, 0, 0);
	release(&r);
	free(body);

	/* Just the array: Pruvan documents the whole object in the field. */
	esc = curl_easy_escape(g_curl, "[" WO("F2", "") "]", 0);
	n = strlen(esc) + 64;
	body = malloc(n);
	assert_non_null(body);
	snprintf(body, n, "workOrders=%s", esc);
	curl_free(esc);
	http("POST", "/api/?apiKey=K1", "application/x-www-form-urlencoded",
	     body, &r);
	assert_refused(&r, "workOrders must be an array");
	release(&r);
	free(body);
	assert_null(order_of("K1", "F2"));

	/* A form without the field. */
	http("POST", "/api/?apiKey=K1", "application/x-www-form-urlencoded",
	     "orders=1", &r);
	assert_int_equal(r.status, 400);
	assert_non_null(strstr(error_of(r.body), "form field workOrders"));
	release(&r);

	json_t *reqs = get_json("/_sim/requests");
	json_t *list = json_object_get(reqs, "requests");
	assert_int_equal(json_array_size(list), 3);
	json_t *first = json_array_get(list, 0);
	assert_string_equal(
	    json_string_value(json_object_get(first, "encoding")), "form");
	assert_string_equal(
	    json_string_value(json_object_get(first, "contentType")),
	    "application/x-www-form-urlencoded");
	json_t *wos = json_object_get(first, "workOrders");
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(wos, 0), "workOrderNumber")),
			    "F1");
	json_decref(reqs);
}

static void test_multipart_encoding(void **state)
{
	(void)state;
	struct http_result r;
	push_multipart("K1", "{\"workOrders\":[" WO("M1", "") "]}", &r);
	assert_counts(&r, 1, 0, 0);
	release(&r);
	json_t *rec = order_of("K1", "M1");
	assert_non_null(rec);
	json_decref(rec);
	/* only a file part named workOrders: not the field */
	push_multipart("K1", NULL, &r);
	assert_int_equal(r.status, 400);
	assert_non_null(strstr(error_of(r.body), "form field workOrders"));
	release(&r);

	json_t *reqs = get_json("/_sim/requests");
	json_t *list = json_object_get(reqs, "requests");
	assert_int_equal(json_array_size(list), 2);
	json_t *first = json_array_get(list, 0);
	assert_string_equal(
	    json_string_value(json_object_get(first, "encoding")), "multipart");
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(first, "workOrders"), 0),
		"workOrderNumber")),
	    "M1");
	json_decref(reqs);
}

/* No Pruvan source shows a raw JSON push accepted: by default it is
 * answered as a body without the workOrders field; acceptJson lets it in
 * (for accounts with bodyEncoding json) until the next reset. */
static void test_raw_json_needs_accept_json(void **state)
{
	(void)state;
	struct http_result r;
	const char *one = "{\"workOrders\":[" WO("J1", "") "]}";
	push_raw_json("K1", one, &r);
	assert_int_equal(r.status, 400);
	assert_int_equal(count_of(r.body, "created"), 0);
	assert_non_null(strstr(error_of(r.body), "raw JSON body"));
	release(&r);
	assert_null(order_of("K1", "J1"));
	json_t *reqs = get_json("/_sim/requests");
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_object_get(reqs, "requests"), 0),
		"encoding")),
	    "json");
	json_decref(reqs);

	http("POST", "/_sim/settings", "application/json",
	     "{\"acceptJson\":true}", &r);
	assert_int_equal(r.status, 200);
	assert_true(json_is_true(json_object_get(r.body, "acceptJson")));
	release(&r);
	push_raw_json("K1", one, &r);
	assert_counts(&r, 1, 0, 0);
	release(&r);
	/* the documented form still works meanwhile */
	push_form("K1", "{\"workOrders\":[" WO("J2", "") "]}", &r);
	assert_counts(&r, 1, 0, 0);
	release(&r);

	http("POST", "/_sim/settings", "application/json", "{\"acceptJson\":1}",
	     &r);
	assert_int_equal(r.status, 400);
	release(&r);
	http("POST", "/_sim/reset", NULL, "", &r);
	release(&r);
	json_t *st = get_json("/_sim/settings");
	assert_true(json_is_false(json_object_get(st, "acceptJson")));
	json_decref(st);
	push_raw_json("K1", one, &r);
	assert_int_equal(r.status, 400);
	release(&r);
}

static void test_accept_json_flag(void **state)
{
	(void)state;
	struct sim_proc lax;
	struct http_result r;
	assert_int_equal(sim_start(&lax, "--accept-json", NULL), 0);
	const char *one = "{\"workOrders\":[" WO("J1", "") "]}";
	http_on(lax.port, "POST", "/api/?apiKey=K", "application/json", one,
		strlen(one), &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(count_of(r.body, "created"), 1);
	release(&r);
	http_on(lax.port, "POST", "/_sim/reset", NULL, "", 0, &r);
	release(&r);
	http_on(lax.port, "GET", "/_sim/settings", NULL, NULL, 0, &r);
	assert_true(json_is_true(json_object_get(r.body, "acceptJson")));
	release(&r);
	sim_stop(&lax);
}

static void test_refresh_get_and_api_key(void **state)
{
	(void)state;
	struct http_result r;
	http("GET", "/api/?apiKey=K1", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_true(json_is_true(json_object_get(r.body, "response")));
	assert_string_equal(error_of(r.body), "success");
	release(&r);
	assert_int_equal(stat_of("refreshes"), 1);
	assert_int_equal(stat_of("requests"), 0); /* counted separately */

	push_form("", "{\"workOrders\":[" WO("X", "") "]}", &r);
	assert_refused(&r, "invalid apiKey");
	release(&r);
	char *form = form_body("{\"workOrders\":[" WO("X", "") "]}");
	http("POST", "/api/", "application/x-www-form-urlencoded", form, &r);
	free(form);
	assert_refused(&r, "invalid apiKey");
	release(&r);
}

static void test_invalid_json_is_400(void **state)
{
	(void)state;
	struct http_result r;
	push_form("K1", "{\"workOrders\":[", &r);
	assert_int_equal(r.status, 400);
	assert_non_null(r.body);
	assert_int_equal(count_of(r.body, "created"), 0);
	assert_non_null(error_of(r.body));
	release(&r);
	json_t *by = get_json("/_sim/stats");
	assert_int_equal(json_integer_value(json_object_get(
			     json_object_get(by, "byStatus"), "400")),
			 1);
	json_decref(by);
}

static void test_body_over_8mib_is_413(void **state)
{
	(void)state;
	struct http_result r;
	size_t n = 8u * 1024u * 1024u + 16;
	char *big = malloc(n);
	assert_non_null(big);
	memset(big, ' ', n);
	/* The sim answers from the headers and closes without reading the
	 * body. A client still writing it can see the connection reset
	 * before it reads the answer (status 0, seen on a loaded machine);
	 * with 100-continue the body is never sent. */
	expect_continue = true;
	http_on(g_sim.port, "POST", "/api/?apiKey=K1", "application/json", big,
		n, &r);
	expect_continue = false;
	free(big);
	assert_int_equal(r.status, 413);
	release(&r);
	assert_int_equal(stat_of("refused"), 1);
}

/* ---- faults ------------------------------------------------------------ */

static void test_fault_fail_503(void **state)
{
	(void)state;
	struct http_result r;
	arm("{\"fail\":{\"count\":2,\"status\":503}}");
	for (int i = 0; i < 2; i++) {
		push_form("K1", "{\"workOrders\":[" WO("A", "") "]}", &r);
		assert_int_equal(r.status, 503);
		assert_true(json_is_null(json_object_get(r.body, "response")));
		assert_string_equal(error_of(r.body), "simulated 503");
		release(&r);
	}
	assert_null(order_of("K1", "A"));
	push_form("K1", "{\"workOrders\":[" WO("A", "") "]}", &r);
	assert_counts(&r, 1, 0, 0);
	release(&r);
	assert_int_equal(stat_of("faulted"), 2);
}

static void test_fault_rate_limit_429(void **state)
{
	(void)state;
	struct http_result r;
	arm("{\"rateLimit\":{\"count\":1,\"retryAfter\":7}}");
	push_form("K1", "{\"workOrders\":[" WO("A", "") "]}", &r);
	assert_int_equal(r.status, 429);
	assert_string_equal(r.retry_after, "7");
	release(&r);
	push_form("K1", "{\"workOrders\":[" WO("A", "") "]}", &r);
	assert_counts(&r, 1, 0, 0);
	assert_string_equal(r.retry_after, "");
	release(&r);
}

static void test_faults_consumed_in_order(void **state)
{
	(void)state;
	struct http_result r;
	arm("{\"fail\":{\"count\":1,\"status\":500}}");
	arm("{\"rateLimit\":{\"count\":1,\"retryAfter\":2},"
	    "\"errorNext\":{\"count\":1,\"error\":\"boom\"}}");
	const long want[] = {500, 429, 200, 200};
	for (int i = 0; i < 4; i++) {
		push_form("K1", "{\"workOrders\":[" WO("A", "") "]}", &r);
		assert_int_equal(r.status, want[i]);
		if (i == 2)
			assert_refused(&r, "boom");
		if (i == 3)
			assert_counts(&r, 1, 0, 0);
		release(&r);
	}
}

/* A fault naming a work order hits only requests carrying that order;
 * other requests pass it by, and it stays armed until it hits. */
static void test_fault_for_one_work_order(void **state)
{
	(void)state;
	struct http_result r;
	arm("{\"fail\":{\"count\":2,\"status\":502,\"workOrder\":\"B\"}}");
	push_form("K1", "{\"workOrders\":[" WO("A", "") "]}", &r);
	assert_counts(&r, 1, 0, 0);
	release(&r);
	for (int i = 0; i < 2; i++) {
		push_form("K1",
			  "{\"workOrders\":[" WO("C", "") "," WO("B", "") "]}",
			  &r);
		assert_int_equal(r.status, 502);
		release(&r);
	}
	push_form("K1", "{\"workOrders\":[" WO("B", "") "]}", &r);
	assert_counts(&r, 1, 0, 0);
	release(&r);
	assert_int_equal(stat_of("faulted"), 2);
	http("POST", "/_sim/faults", "application/json",
	     "{\"fail\":{\"workOrder\":\"\"}}", &r);
	assert_int_equal(r.status, 400);
	release(&r);
}

static void test_fault_latency(void **state)
{
	(void)state;
	struct http_result r;
	arm("{\"latencyMs\":300}");
	push_form("K1", "{\"workOrders\":[" WO("A", "") "]}", &r);
	assert_counts(&r, 1, 0, 0);
	assert_true(r.elapsed_ms >= 300);
	release(&r);

	http("DELETE", "/_sim/faults", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	release(&r);
	push_form("K1", "{\"workOrders\":[" WO("B", "") "]}", &r);
	assert_counts(&r, 1, 0, 0);
	assert_true(r.elapsed_ms < 300);
	release(&r);
}

static void test_fault_timeout_hold_and_close(void **state)
{
	(void)state;
	struct http_result r;
	arm("{\"timeout\":{\"count\":1,\"holdMs\":250}}");
	push_form("K1", "{\"workOrders\":[" WO("A", "") "]}", &r);
	assert_true(r.elapsed_ms >= 250);
	assert_counts(&r, 1, 0, 0); /* held, then answered normally */
	release(&r);

	arm("{\"timeout\":{\"count\":1,\"holdMs\":0,\"close\":true}}");
	/* On a reused connection libcurl would silently resend a request
	 * that got no answer (and the resend would succeed): the worker
	 * must expect that too. Here a fresh connection shows the close. */
	fresh_connection = true;
	char *form = form_body("{\"workOrders\":[" WO("B", "") "]}");
	http("POST", "/api/?apiKey=K1", "application/x-www-form-urlencoded",
	     form, &r);
	free(form);
	fresh_connection = false;
	assert_int_not_equal(r.rc, CURLE_OK); /* no answer at all */
	release(&r);
	assert_null(order_of("K1", "B"));
	json_t *s = get_json("/_sim/stats");
	assert_int_equal(json_integer_value(json_object_get(
			     json_object_get(s, "byStatus"), "closed")),
			 1);
	assert_int_equal(json_integer_value(json_object_get(s, "faulted")), 2);
	json_decref(s);
}

/*
 * A held request must not hold up another connection (thread per
 * connection): two pushes in parallel, one fault; whichever arrives first
 * is held, the other must finish while it is still held.
 */
static void test_held_request_does_not_block_others(void **state)
{
	(void)state;
	arm("{\"timeout\":{\"count\":1,\"holdMs\":800}}");
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/?apiKey=K1",
		 g_sim.port);
	char *bodies[2] = {form_body("{\"workOrders\":[" WO("P1", "") "]}"),
			   form_body("{\"workOrders\":[" WO("P2", "") "]}")};
	CURLM *m = curl_multi_init();
	CURL *e[2];
	struct curl_slist *hdrs = curl_slist_append(
	    NULL, "Content-Type: application/x-www-form-urlencoded");
	struct buf sink[2] = {{0}, {0}};
	int64_t done_ms[2] = {0, 0};
	assert_non_null(m);
	for (int i = 0; i < 2; i++) {
		e[i] = curl_easy_init();
		assert_non_null(e[i]);
		curl_easy_setopt(e[i], CURLOPT_URL, url);
		curl_easy_setopt(e[i], CURLOPT_POSTFIELDS, bodies[i]);
		curl_easy_setopt(e[i], CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(e[i], CURLOPT_WRITEDATA, &sink[i]);
		curl_easy_setopt(e[i], CURLOPT_TIMEOUT_MS, 20000L);
		curl_multi_add_handle(m, e[i]);
	}
	int64_t t0 = pb_mono_ms();
	int running = 1;
	while (running) {
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			assert_int_equal(msg->data.result, CURLE_OK);
			for (int i = 0; i < 2; i++)
				if (msg->easy_handle == e[i])
					done_ms[i] = pb_mono_ms() - t0;
		}
		if (running)
			curl_multi_poll(m, NULL, 0, 1000, NULL);
	}
	int64_t slow = done_ms[0] > done_ms[1] ? done_ms[0] : done_ms[1];
	int64_t fast = done_ms[0] > done_ms[1] ? done_ms[1] : done_ms[0];
	assert_true(slow >= 800);
	assert_true(fast < 800);
	for (int i = 0; i < 2; i++) {
		long status = 0;
		curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &status);
		assert_int_equal(status, 200);
		curl_multi_remove_handle(m, e[i]);
		curl_easy_cleanup(e[i]);
		free(sink[i].data);
	}
	curl_multi_cleanup(m);
	curl_slist_free_all(hdrs);
	free(bodies[0]);
	free(bodies[1]);
	assert_int_equal(stat_of("created"), 2);
}

static void test_fault_reject_work_orders(void **state)
{
	(void)state;
	struct http_result r;
	arm("{\"rejectWorkOrders\":[\"BAD1\",\"BAD2\"]}");
	push_form("K1",
		  "{\"workOrders\":[" WO("OK1", "") "," WO("BAD2", "") "]}",
		  &r);
	assert_refused(&r, "BAD2");
	release(&r);
	assert_null(order_of("K1", "OK1"));
	/* The worker's split: the good half alone goes through. */
	push_form("K1", "{\"workOrders\":[" WO("OK1", "") "]}", &r);
	assert_counts(&r, 1, 0, 0);
	release(&r);
	/* Not consumed: still refused until cleared. */
	push_form("K1", "{\"workOrders\":[" WO("BAD1", "") "]}", &r);
	assert_refused(&r, "BAD1");
	release(&r);
	http("DELETE", "/_sim/faults", NULL, NULL, &r);
	release(&r);
	push_form("K1", "{\"workOrders\":[" WO("BAD1", "") "]}", &r);
	assert_counts(&r, 1, 0, 0);
	release(&r);
}

static void test_fault_error_next(void **state)
{
	(void)state;
	struct http_result r;
	arm("{\"errorNext\":{\"count\":2,\"error\":\"account locked\"}}");
	for (int i = 0; i < 2; i++) {
		push_form("K1", "{\"workOrders\":[" WO("A", "") "]}", &r);
		assert_refused(&r, "account locked");
		release(&r);
	}
	push_form("K1", "{\"workOrders\":[" WO("A", "") "]}", &r);
	assert_counts(&r, 1, 0, 0);
	release(&r);
}

static void test_bad_fault_spec_is_400(void **state)
{
	(void)state;
	struct http_result r;
	const char *bad[] = {
	    "{\"fial\":{\"count\":1}}",
	    "{\"fail\":{\"count\":0}}",
	    "{\"fail\":{\"status\":200}}",
	    "{\"rateLimit\":{\"retryAfter\":\"x\"}}",
	    "{\"rejectWorkOrders\":[1]}",
	    "not json",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		http("POST", "/_sim/faults", "application/json", bad[i], &r);
		assert_int_equal(r.status, 400);
		assert_non_null(error_of(r.body));
		release(&r);
	}
	/* Nothing half-armed: a valid push goes straight through. */
	push_form("K1", "{\"workOrders\":[" WO("A", "") "]}", &r);
	assert_counts(&r, 1, 0, 0);
	release(&r);
}

/* ---- control endpoints ------------------------------------------------- */

/*
 * The simulator reads plain bodies itself and hands the others (escapes,
 * bytes beyond ASCII, long numbers) to jansson: the same orders written
 * either way get the same answers and the same stored records.
 */
static void test_plain_and_escaped_bodies_alike(void **state)
{
	(void)state;
	static const char *const plain[] = {
	    /* a create, the same order updated, a duplicate key (the last
	     * one counts) and a zip that refuses the batch */
	    "{\"workOrders\":[" WO("P1",
				   ",\"n\":12.5,\"tags\":[true,null]") "]}",
	    "{\"workOrders\":[{\"workOrderNumber\":\"P1\",\"city\":\"Waco\"},"
	    "{\"workOrderNumber\":\"X\",\"workOrderNumber\":\"P2\","
	    "\"address1\":\"2 Elm\",\"city\":\"Waco\",\"state\":\"TX\","
	    "\"zip\":\"76701\",\"services\":[{\"serviceName\":\"Snow\"}]}]}",
	    "{\"workOrders\":[{\"workOrderNumber\":\"P3\",\"address1\":\"3 "
	    "Oak\","
	    "\"city\":\"Waco\",\"state\":\"tx\",\"zip\":\"767\","
	    "\"services\":[{\"serviceName\":\"\"}]}]}",
	};
	static const char *const escaped[] = {
	    "{\"workOrders\":[" WO("\\u0050\\u0031",
				   ",\"n\":1.25e1,\"tags\":[true,null]") "]}",
	    "{\"workOrders\":[{\"workOrderNumber\":\"P1\",\"c\\u0069ty\":"
	    "\"Waco\"},{\"workOrderNumber\":\"X\",\"workOrderNumber\":\"P2\","
	    "\"address1\":\"2 Elm\",\"city\":\"Waco\",\"state\":\"TX\","
	    "\"zip\":\"76701\",\"services\":[{\"serviceName\":\"Sn\\u006fw\"}]}"
	    "]}",
	    "{\"workOrders\":[{\"workOrderNumber\":\"P\\u0033\",\"address1\":"
	    "\"3 Oak\",\"city\":\"Waco\",\"state\":\"tx\",\"zip\":\"767\","
	    "\"services\":[{\"serviceName\":\"\"}]}]}",
	};
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		struct http_result a, b;
		push_form("KP", plain[i], &a);
		push_form("KE", escaped[i], &b);
		assert_int_equal(a.status, b.status);
		assert_non_null(a.body);
		assert_true(json_equal(a.body, b.body));
		release(&a);
		release(&b);
	}
	json_t *p = get_json("/_sim/orders?apiKey=KP");
	json_t *e = get_json("/_sim/orders?apiKey=KE");
	json_t *po = json_object_get(p, "orders");
	assert_int_equal(json_object_size(po), 2);
	assert_true(json_equal(po, json_object_get(e, "orders")));
	json_t *p1 = json_object_get(po, "P1");
	assert_string_equal(json_string_value(json_object_get(p1, "city")),
			    "Waco");
	assert_int_equal(json_integer_value(json_object_get(p1, "_updated")),
			 1);
	assert_non_null(json_object_get(po, "P2"));
	json_decref(p);
	json_decref(e);

	/* the log holds what was pushed, as pushed */
	json_t *j = get_json("/_sim/requests?apiKey=KP");
	json_t *list = json_object_get(j, "requests");
	assert_int_equal(json_array_size(list), 3);
	json_t *sent = json_loads(plain[1], 0, NULL);
	assert_true(
	    json_equal(json_object_get(json_array_get(list, 1), "workOrders"),
		       json_object_get(sent, "workOrders")));
	json_decref(sent);
	assert_non_null(strstr(
	    error_of(json_object_get(json_array_get(list, 2), "response")),
	    "P3: invalid state, invalid zip, no service with a serviceName"));
	json_decref(j);
}

/* Pushes of some fields merge into the order; a later value wins; a
 * create over a deleted order starts from a clean record. */
static void test_partial_pushes_merge(void **state)
{
	(void)state;
	struct http_result r;
	push_form("K1", "{\"workOrders\":[" WO("M", ",\"notes\":\"a\"") "]}",
		  &r);
	assert_counts(&r, 1, 0, 0);
	release(&r);
	/* more partial pushes than the store keeps apart */
	for (int i = 0; i < 40; i++) {
		char body[256];
		snprintf(body, sizeof(body),
			 "{\"workOrders\":[{\"workOrderNumber\":\"M\","
			 "\"f%d\":%d,\"count\":%d,\"_created\":99}]}",
			 i % 7, i, i);
		push_form("K1", body, &r);
		assert_counts(&r, 0, 1, 0);
		release(&r);
	}
	push_form("K1", "{\"workOrders\":[" WO("M", "") "]}", &r);
	assert_counts(&r, 0, 1, 0);
	release(&r);
	json_t *rec = order_of("K1", "M");
	assert_non_null(rec);
	assert_string_equal(json_string_value(json_object_get(rec, "notes")),
			    "a");
	assert_int_equal(json_integer_value(json_object_get(rec, "count")), 39);
	for (int k = 0; k < 7; k++) {
		char name[8];
		snprintf(name, sizeof(name), "f%d", k);
		/* the last i with i % 7 == k */
		assert_int_equal(json_integer_value(json_object_get(rec, name)),
				 35 + k > 39 ? 28 + k : 35 + k);
	}
	assert_int_equal(json_integer_value(json_object_get(rec, "_created")),
			 1);
	assert_int_equal(json_integer_value(json_object_get(rec, "_updated")),
			 41);
	json_decref(rec);

	push_form("K1",
		  "{\"workOrders\":[{\"workOrderNumber\":\"M\","
		  "\"status\":\"Deleted\"}]}",
		  &r);
	assert_counts(&r, 0, 0, 1);
	release(&r);
	push_form("K1", "{\"workOrders\":[" WO("M", "") "]}", &r);
	assert_counts(&r, 1, 0, 0);
	release(&r);
	rec = order_of("K1", "M");
	assert_null(json_object_get(rec, "notes"));
	assert_null(json_object_get(rec, "count"));
	assert_null(json_object_get(rec, "status"));
	assert_string_equal(json_string_value(json_object_get(rec, "city")),
			    "Austin");
	assert_int_equal(json_integer_value(json_object_get(rec, "_created")),
			 2);
	assert_false(json_is_true(json_object_get(rec, "_isDeleted")));
	json_decref(rec);
}

static void test_requests_orders_stats(void **state)
{
	(void)state;
	struct http_result r;
	push_form("K1", "{\"workOrders\":[" WO("A", "") "]}", &r);
	release(&r);
	push_form("K2", "{\"workOrders\":[" WO("B", "") "," WO("C", "") "]}",
		  &r);
	release(&r);
	push_form("K1", "{\"workOrders\":[{\"workOrderNumber\":\"A\"}]}", &r);
	release(&r);

	json_t *j = get_json("/_sim/requests?since=1");
	json_t *list = json_object_get(j, "requests");
	assert_int_equal(json_array_size(list), 2);
	json_t *e = json_array_get(list, 0);
	assert_int_equal(json_integer_value(json_object_get(e, "seq")), 2);
	assert_string_equal(json_string_value(json_object_get(e, "apiKey")),
			    "K2");
	assert_string_equal(
	    json_string_value(json_object_get(e, "contentType")),
	    "application/x-www-form-urlencoded");
	assert_string_equal(json_string_value(json_object_get(e, "encoding")),
			    "form");
	assert_int_equal(json_integer_value(json_object_get(e, "status")), 200);
	assert_int_equal(count_of(json_object_get(e, "response"), "created"),
			 2);
	assert_int_equal(json_array_size(json_object_get(e, "workOrders")), 2);
	const char *at = json_string_value(json_object_get(e, "receivedAt"));
	assert_non_null(at);
	assert_int_equal(strlen(at), 24);
	assert_int_equal(at[10], 'T');
	json_decref(j);

	j = get_json("/_sim/requests?apiKey=K1");
	assert_int_equal(json_array_size(json_object_get(j, "requests")), 2);
	json_decref(j);

	j = get_json("/_sim/orders?apiKey=K2");
	json_t *orders = json_object_get(j, "orders");
	assert_int_equal(json_object_size(orders), 2);
	assert_int_equal(json_integer_value(json_object_get(
			     json_object_get(orders, "C"), "_created")),
			 1);
	json_decref(j);

	j = get_json("/_sim/stats");
	assert_int_equal(json_integer_value(json_object_get(j, "requests")), 3);
	assert_int_equal(json_integer_value(json_object_get(j, "workOrders")),
			 4);
	assert_int_equal(json_integer_value(json_object_get(j, "created")), 3);
	assert_int_equal(json_integer_value(json_object_get(j, "updated")), 1);
	assert_int_equal(json_integer_value(json_object_get(j, "deleted")), 0);
	assert_int_equal(json_integer_value(json_object_get(
			     json_object_get(j, "byStatus"), "200")),
			 3);
	json_decref(j);

	/* Reset forgets it all. */
	assert_int_equal(reset(NULL), 0);
	assert_int_equal(stat_of("requests"), 0);
	assert_null(order_of("K2", "B"));
}

static void test_max_kept_bounds_log_not_stats(void **state)
{
	(void)state;
	struct sim_proc small;
	struct http_result r;
	assert_int_equal(sim_start(&small, "--max-kept", "3"), 0);
	for (int i = 0; i < 5; i++) {
		char body[512];
		char won[8];
		snprintf(won, sizeof(won), "W%d", i);
		snprintf(body, sizeof(body),
			 "{\"workOrders\":[{\"workOrderNumber\":\"%s\","
			 "\"address1\":\"1 Main\",\"city\":\"Austin\","
			 "\"state\":\"TX\",\"zip\":\"78701\",\"services\":"
			 "[{\"serviceName\":\"Mow\"}]}]}",
			 won);
		char *form = form_body(body);
		http_on(small.port, "POST", "/api/?apiKey=K",
			"application/x-www-form-urlencoded", form, strlen(form),
			&r);
		free(form);
		assert_int_equal(r.status, 200);
		release(&r);
	}
	http_on(small.port, "GET", "/_sim/requests", NULL, NULL, 0, &r);
	json_t *list = json_object_get(r.body, "requests");
	assert_int_equal(json_array_size(list), 3);
	assert_int_equal(
	    json_integer_value(json_object_get(json_array_get(list, 0), "seq")),
	    3);
	release(&r);
	http_on(small.port, "GET", "/_sim/stats", NULL, NULL, 0, &r);
	assert_int_equal(
	    json_integer_value(json_object_get(r.body, "requests")), 5);
	assert_int_equal(json_integer_value(json_object_get(r.body, "dropped")),
			 2);
	release(&r);
	assert_int_equal(sim_stop(&small), 0);
}

static void test_sigterm_exits_zero(void **state)
{
	(void)state;
	assert_int_equal(sim_stop(&g_sim), 0);
}

static int group_setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	g_curl = curl_easy_init();
	if (!g_curl)
		return -1;
	if (sim_start(&g_sim, NULL, NULL) != 0) {
		fprintf(stderr, "cannot start %s\n", sim_path);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (g_sim.pid > 0)
		sim_stop(&g_sim);
	curl_easy_cleanup(g_curl);
	curl_global_cleanup();
	return 0;
}

int main(int argc, char **argv)
{
	sim_path = argc > 1 ? argv[1] : getenv("PB_SIM");
	if (!sim_path) {
		fprintf(stderr, "usage: test_sim PATH_TO_PRUVAN_SIM "
				"(or set PB_SIM)\n");
		return 2;
	}
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup(f, reset)
	    T(test_create_then_update),
	    T(test_create_missing_services_refuses_whole_batch),
	    T(test_batch_counts_and_delete),
	    T(test_form_encoding),
	    T(test_multipart_encoding),
	    T(test_raw_json_needs_accept_json),
	    T(test_accept_json_flag),
	    T(test_refresh_get_and_api_key),
	    T(test_invalid_json_is_400),
	    T(test_body_over_8mib_is_413),
	    T(test_fault_fail_503),
	    T(test_fault_rate_limit_429),
	    T(test_faults_consumed_in_order),
	    T(test_fault_for_one_work_order),
	    T(test_fault_latency),
	    T(test_fault_timeout_hold_and_close),
	    T(test_held_request_does_not_block_others),
	    T(test_fault_reject_work_orders),
	    T(test_fault_error_next),
	    T(test_bad_fault_spec_is_400),
	    T(test_plain_and_escaped_bodies_alike),
	    T(test_partial_pushes_merge),
	    T(test_requests_orders_stats),
	    T(test_max_kept_bounds_log_not_stats),
	    /* Last: stops the shared simulator. */
	    T(test_sigterm_exits_zero),
#undef T
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
