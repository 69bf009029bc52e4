/*
 * pruvan-sim: plays Pruvan for the integration tests, the demo and the
 * benchmarks. It answers pushes as Pruvan's notes show
 * (spec/pruvan-remote-fields.txt, spec/pruvan-relay.md) and can be told to
 * be slow, fail or rate-limit.
 *
 * USAGE
 *   pruvan-sim [--port N] [--port-file PATH] [--latency-ms N]
 *              [--max-kept N] [--accept-json] [--quiet]
 *     --port N        listen on 127.0.0.1:N (default 0: pick a free port)
 *     --port-file P   once listening, write the port (decimal + "\n") to P,
 *                     atomically (temp file + rename): await the file.
 *     --latency-ms N  baseline delay before every /api/ answer (default 0)
 *     --max-kept N    requests kept for /_sim/requests (default 100000);
 *                     older ones are dropped, stats keep counting
 *     --accept-json   also accept a raw application/json push body (for
 *                     accounts with bodyEncoding json); see below
 *     --quiet         log warnings and errors only
 *   Logs are JSON lines on stderr. SIGTERM or SIGINT: exit 0.
 *
 * PRUVAN API (what the worker talks to)
 *   POST /api/?apiKey=KEY
 *     As Pruvan documents it: the form field workOrders holding the JSON
 *     object {"workOrders":[...]}, in an application/x-www-form-urlencoded
 *     body ("form") or a multipart/form-data body ("multipart"; a part
 *     that is a file does not count). A raw application/json body holding
 *     the object ("json") is accepted only with --accept-json or
 *     /_sim/settings acceptJson; otherwise it is answered like any body
 *     without the field, since no Pruvan source shows raw JSON accepted:
 *       400 {"response":{"created":0,"updated":0,"deleted":0},
 *            "error":"form field workOrders missing: ..."}
 *     Body limit 8 MiB (413 beyond). The field's value not JSON: 400 with
 *     the same shape. Valid JSON that is not {"workOrders":[...]}: 200 with
 *     an error, as Pruvan answers a bad payload.
 *     Per apiKey the sim keeps orders by workOrderNumber. Each order is:
 *     status "deleted" -> deleted; known and not deleted -> updated (fields
 *     merged); else a create, which needs workOrderNumber, address1, city,
 *     a two-letter state, a ZIP or ZIP+4 zip and a service with a non-empty
 *     serviceName. Any problem refuses the WHOLE batch, nothing applied:
 *       200 {"response":{"created":0,"updated":0,"deleted":0},
 *            "error":"TESTPOST: missing services"}
 *     Missing apiKey: 200 with "error":"invalid apiKey". Success:
 *       200 {"response":{"created":N,"updated":N,"deleted":N},"error":null}
 *   GET /api/?apiKey=KEY -> {"response":true,"error":"success"} (Pruvan's
 *     integration refresh; counted in stats.refreshes, no faults, no log).
 *
 * CONTROL API (JSON; faults apply to POST /api/ only)
 *   POST /_sim/faults  any of, armed in the order given, and queued after
 *     faults armed earlier (each request consumes one fault, FIFO):
 *       "fail":      {"count":N,"status":503}  answer that status (400-599)
 *                    with {"response":null,"error":"simulated 503"}
 *       "rateLimit": {"count":N,"retryAfter":S}  429 + "Retry-After: S"
 *       "timeout":   {"count":N,"holdMs":M,"close":false}  hold M ms, then
 *                    answer normally (or close without answering)
 *       "errorNext": {"count":N,"error":"text"}  200 with that error
 *     Each of these four may name "workOrder":"WO": then it applies only
 *     to requests whose workOrders include that workOrderNumber (other
 *     requests pass it by and take the next armed fault that applies),
 *     so a test can fail one order while its neighbours go through.
 *     and, not consumed (they stay until DELETE):
 *       "latencyMs": N               delay every /api/ answer N ms
 *       "rejectWorkOrders": ["WO1"]  a batch naming one of these is refused
 *                                    whole, 200 with an error naming it
 *     Unknown keys or out-of-range values: 400 {"error":"..."}.
 *   GET /_sim/faults     what is armed.
 *   DELETE /_sim/faults  disarm all; latency back to --latency-ms.
 *   GET /_sim/settings   {"acceptJson":bool}
 *   POST /_sim/settings  {"acceptJson":true|false}: whether a raw JSON push
 *     body is accepted (default: --accept-json); /_sim/reset restores it.
 *   GET /_sim/requests[?since=SEQ][&apiKey=K]
 *     {"requests":[{"seq":1,"apiKey":"K","contentType":"...",
 *       "encoding":"form|multipart|json|other","workOrders":[...],"status":200,
 *       "response":{...},"fault":null|"fail"|...,"receivedAt":"RFC3339"}]}
 *   GET /_sim/orders?apiKey=K
 *     {"orders":{"WO":{...merged fields...,"_created":n,"_updated":n,
 *       "_deleted":n,"_isDeleted":bool}}}
 *   GET /_sim/stats
 *     {"requests":N,"workOrders":N,"created":N,"updated":N,"deleted":N,
 *      "refused":N,"faulted":N,"refreshes":N,"kept":N,"dropped":N,
 *      "byStatus":{"200":N,...,"closed":N}}
 *   POST /_sim/reset     forget orders, requests, faults and stats.
 *
 * Design: libmicrohttpd with a thread per connection, so a request held by
 * latency or a timeout fault blocks only its own connection; keep-alive
 * connections keep their thread, which is what makes thousands of
 * requests/s cheap. All state lives in sim_state.c behind one mutex; this
 * file only speaks HTTP. Waits are on a condition variable so that SIGTERM
 * ends held requests at once instead of after their hold.
 */
#include <errno.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sim_batch.h"
#include "sim_state.h"
#include "util.h"

/* Everything the handlers share; passed as the MHD closure. */
struct server {
	pb_sim_t *sim;
	pthread_mutex_t mu; /* guards stopping, for the waits below */
	pthread_cond_t cond;
	bool stopping;
	bool accept_json_default; /* --accept-json */
	bool accept_json;	  /* now; guarded by mu */
};

/* How a push body carries its work orders (by its Content-Type). */
enum body_kind { BODY_FORM, BODY_MULTIPART, BODY_JSON, BODY_OTHER };

static const char *const body_kind_names[] = {"form", "multipart", "json",
					      "other"};

/* Per-request state: the body as it arrives. */
struct request {
	char *buf;
	size_t len, cap;
	bool too_big;
};

/* The last body buffer of this connection's thread (MHD gives each
 * connection a thread): the next request on the keep-alive connection
 * reuses it instead of allocating ~100 KiB again. A thread-specific value,
 * so that it is freed when the thread ends. */
#define BODY_SPARE_MAX (1024u * 1024u)
struct body_spare {
	char *buf;
	size_t cap;
};
static pthread_key_t body_spare_key;

static void body_spare_free(void *p)
{
	struct body_spare *sp = p;
	free(sp->buf);
	free(sp);
}

/* A buffer of at least n bytes for rq (the spare when it fits). */
static bool body_reserve(struct request *rq, size_t n)
{
	struct body_spare *sp = pthread_getspecific(body_spare_key);
	if (!rq->buf && sp && sp->buf && sp->cap >= n) {
		rq->buf = sp->buf;
		rq->cap = sp->cap;
		sp->buf = NULL;
		sp->cap = 0;
		return true;
	}
	if (n <= rq->cap)
		return true;
	size_t cap = rq->cap ? rq->cap : 16384;
	while (cap < n)
		cap *= 2;
	char *nb = realloc(rq->buf, cap);
	if (!nb)
		return false;
	rq->buf = nb;
	rq->cap = cap;
	return true;
}

/* Keep rq's buffer as the thread's spare, or free it. */
static void body_release(struct request *rq)
{
	struct body_spare *sp = pthread_getspecific(body_spare_key);
	if (!sp && rq->buf && (sp = calloc(1, sizeof(*sp))) &&
	    pthread_setspecific(body_spare_key, sp) != 0) {
		free(sp);
		sp = NULL;
	}
	if (sp && rq->buf && rq->cap <= BODY_SPARE_MAX && rq->cap > sp->cap) {
		free(sp->buf);
		sp->buf = rq->buf;
		sp->cap = rq->cap;
	} else {
		free(rq->buf);
	}
	rq->buf = NULL;
	rq->cap = 0;
}

/* ---- helpers ---------------------------------------------------------- */

/* Sleep ms, but return early once the server is stopping. */
static void server_wait(struct server *srv, int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&srv->mu);
	while (!srv->stopping && pthread_cond_timedwait(&srv->cond, &srv->mu,
							&deadline) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&srv->mu);
}

/* Queue body (malloc'd, taken over) as a JSON answer. */
static enum MHD_Result respond(struct MHD_Connection *c, int status, char *body,
			       int64_t retry_after)
{
	if (!body)
		body = strdup("{\"error\":\"simulator out of memory\"}");
	if (!body)
		return MHD_NO;
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/json");
	if (retry_after > 0) {
		char v[24];
		snprintf(v, sizeof(v), "%lld", (long long)retry_after);
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
	}
	enum MHD_Result ret = MHD_queue_response(c, (unsigned int)status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Answer a JSON value (reference stolen). */
static enum MHD_Result respond_json(struct MHD_Connection *c, int status,
				    json_t *v)
{
	char *body = v ? json_dumps(v, JSON_COMPACT) : NULL;
	json_decref(v);
	return respond(c, body ? status : 500, body, 0);
}

static enum MHD_Result respond_error(struct MHD_Connection *c, int status,
				     const char *error)
{
	return respond_json(c, status, json_pack("{s:s}", "error", error));
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Decode one urlencoded value in place ('+' is a space); returns length.
 * Runs of plain bytes are moved whole: a push body is ~100 KiB. */
static size_t url_decode(char *s, size_t n)
{
	size_t out = 0, i = 0;
	while (i < n) {
		size_t run = i;
		while (run < n && s[run] != '%' && s[run] != '+')
			run++;
		if (run > i) {
			if (out != i)
				memmove(s + out, s + i, run - i);
			out += run - i;
			i = run;
			continue;
		}
		if (s[i] == '+') {
			s[out++] = ' ';
		} else if (i + 2 < n) {
			int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0) {
				s[out++] = s[i++];
				continue;
			}
			s[out++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			s[out++] = s[i];
		}
		i++;
	}
	return out;
}

/*
 * Find the form field "workOrders" in an urlencoded body and decode it in
 * place. Returns its start (inside body) and length, or NULL if absent.
 */
static char *form_work_orders(char *body, size_t len, size_t *out_len)
{
	static const char name[] = "workOrders=";
	size_t i = 0;
	while (i < len) {
		char *amp = memchr(body + i, '&', len - i);
		size_t end = amp ? (size_t)(amp - body) : len;
		if (end - i >= sizeof(name) - 1 &&
		    memcmp(body + i, name, sizeof(name) - 1) == 0) {
			char *v = body + i + sizeof(name) - 1;
			*out_len = url_decode(v, end - i - (sizeof(name) - 1));
			return v;
		}
		i = end + 1;
	}
	return NULL;
}

/* The multipart field workOrders as it arrives (MHD's post processor). */
struct mp_field {
	char *buf;
	size_t len;
	bool found, nomem;
};

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind,
			       const char *key, const char *filename,
			       const char *content_type,
			       const char *transfer_encoding, const char *data,
			       uint64_t off, size_t size)
{
	(void)kind;
	(void)content_type;
	(void)transfer_encoding;
	(void)off;
	struct mp_field *f = cls;
	if (!key || strcmp(key, "workOrders") != 0 || filename)
		return MHD_YES; /* other fields, and files, are not it */
	char *nb = realloc(f->buf, f->len + size + 1);
	if (!nb) {
		f->nomem = true;
		return MHD_NO;
	}
	memcpy(nb + f->len, data, size);
	f->buf = nb;
	f->len += size;
	f->buf[f->len] = '\0';
	f->found = true;
	return MHD_YES;
}

/* The field workOrders of a multipart/form-data body (malloc'd, *out_len),
 * or NULL when absent or the body cannot be read. */
static char *multipart_work_orders(struct MHD_Connection *c, struct request *rq,
				   size_t *out_len)
{
	struct mp_field f = {0};
	struct MHD_PostProcessor *pp =
	    MHD_create_post_processor(c, 64 * 1024, on_part, &f);
	if (!pp)
		return NULL; /* no boundary: not a readable form */
	if (rq->len)
		MHD_post_process(pp, rq->buf, rq->len);
	MHD_destroy_post_processor(pp);
	if (!f.found || f.nomem) {
		free(f.buf);
		return NULL;
	}
	*out_len = f.len;
	return f.buf;
}

static enum body_kind body_kind_of(const char *ctype)
{
	if (!ctype)
		return BODY_OTHER;
	if (strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0)
		return BODY_FORM;
	if (strncasecmp(ctype, "multipart/form-data", 19) == 0)
		return BODY_MULTIPART;
	if (strncasecmp(ctype, "application/json", 16) == 0)
		return BODY_JSON;
	return BODY_OTHER;
}

/*
 * Read a push body into *b: the JSON object {"workOrders":[...]} from the
 * form field workOrders (form, multipart), or the whole body (json, when
 * accepted). 0 when read (b->present false when the JSON is not that
 * object: Pruvan's error for a bad payload, answered with 200); -1 with
 * err set when there is no field or no JSON (400). *owned: the text b
 * points into when it is not rq->buf, to free after b.
 */
static int read_work_orders(struct MHD_Connection *c, struct request *rq,
			    enum body_kind kind, bool accept_json,
			    pb_sim_batch_t *b, char **owned, char *err,
			    size_t err_size)
{
	const char *text = NULL;
	size_t len = 0;

	*owned = NULL;
	if (kind == BODY_FORM && rq->buf)
		text = form_work_orders(rq->buf, rq->len, &len);
	else if (kind == BODY_MULTIPART)
		text = *owned = multipart_work_orders(c, rq, &len);
	else if (kind == BODY_JSON && accept_json) {
		text = rq->buf ? rq->buf : "";
		len = rq->len;
	}
	if (!text) {
		snprintf(err, err_size,
			 "form field workOrders missing: post it in an "
			 "application/x-www-form-urlencoded or "
			 "multipart/form-data body%s",
			 kind == BODY_JSON ? " (a raw JSON body is not "
					     "accepted)"
					   : "");
		return -1;
	}
	/* valid JSON of the wrong shape is no error here: the model answers
	 * it with 200 and "workOrders must be an array", Pruvan's kind */
	return pb_sim_batch_read(text, len, b, err, err_size);
}

/* ---- /api/ ------------------------------------------------------------ */

static enum MHD_Result handle_push(struct server *srv, struct MHD_Connection *c,
				   struct request *rq)
{
	pb_sim_push_t push = {0};
	pb_sim_answer_t answer = {0};
	pb_sim_batch_t batch = {0};
	char *owned = NULL;
	char err[512];
	int64_t latency = 0;
	const char *ctype = MHD_lookup_connection_value(
	    c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	enum body_kind kind = body_kind_of(ctype);
	pthread_mutex_lock(&srv->mu);
	bool accept_json = srv->accept_json;
	pthread_mutex_unlock(&srv->mu);

	push.received_ms = pb_wall_ms();
	push.api_key =
	    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "apiKey");
	push.content_type = ctype;
	push.encoding = body_kind_names[kind];
	if (rq->too_big) {
		push.reject_status = 413;
		push.reject_error = "body larger than 8 MiB";
	} else {
		if (read_work_orders(c, rq, kind, accept_json, &batch, &owned,
				     err, sizeof(err)) != 0) {
			push.reject_status = 400;
			push.reject_error = err;
		} else {
			push.batch = &batch;
		}
		/* Only too-big bodies skip faults: they were never read. */
		pb_sim_arrive(srv->sim, push.batch, &push.fault, &latency);
		if (push.fault.kind == PB_SIM_FAULT_TIMEOUT)
			latency += push.fault.hold_ms;
		server_wait(srv, latency);
	}

	pb_err_t pushed = pb_sim_push(srv->sim, &push, &answer);
	pb_sim_batch_free(&batch);
	free(owned);
	if (pushed != PB_OK)
		return respond_error(c, 500, "simulator out of memory");
	if (pb_log_get_level() <= PB_LOG_DEBUG) {
		char st[16], delay[24];
		snprintf(st, sizeof(st), "%d", answer.status);
		snprintf(delay, sizeof(delay), "%lld", (long long)latency);
		pb_log(PB_LOG_DEBUG, "push", "status", st, "delayMs", delay,
		       "fault", push.fault.kind ? "yes" : NULL, NULL);
	}
	if (answer.status == 0) {
		free(answer.body);
		return MHD_NO; /* timeout fault with close: drop the socket */
	}
	return respond(c, answer.status, answer.body, answer.retry_after);
}

static enum MHD_Result handle_api(struct server *srv, struct MHD_Connection *c,
				  const char *method, struct request *rq)
{
	if (strcmp(method, MHD_HTTP_METHOD_POST) == 0)
		return handle_push(srv, c, rq);
	if (strcmp(method, MHD_HTTP_METHOD_GET) == 0) {
		pb_sim_answer_t answer;
		const char *key = MHD_lookup_connection_value(
		    c, MHD_GET_ARGUMENT_KIND, "apiKey");
		if (pb_sim_refresh(srv->sim, key, &answer) != PB_OK)
			return respond_error(c, 500, "simulator out of memory");
		return respond(c, answer.status, answer.body, 0);
	}
	return respond_error(c, 405, "method not allowed");
}

/* ---- /_sim/ ----------------------------------------------------------- */

static enum MHD_Result handle_faults(struct server *srv,
				     struct MHD_Connection *c,
				     const char *method, struct request *rq)
{
	if (strcmp(method, MHD_HTTP_METHOD_GET) == 0)
		return respond_json(c, 200, pb_sim_faults_json(srv->sim));
	if (strcmp(method, MHD_HTTP_METHOD_DELETE) == 0) {
		pb_sim_faults_clear(srv->sim);
		pb_log(PB_LOG_INFO, "faults cleared", NULL);
		return respond_json(c, 200, pb_sim_faults_json(srv->sim));
	}
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
		return respond_error(c, 405, "method not allowed");
	if (rq->too_big)
		return respond_error(c, 413, "body larger than 8 MiB");

	json_error_t jerr;
	char err[256];
	json_t *spec = json_loadb(rq->buf ? rq->buf : "", rq->len, 0, &jerr);
	if (!spec) {
		snprintf(err, sizeof(err), "invalid JSON: %s", jerr.text);
		return respond_error(c, 400, err);
	}
	pb_err_t e = pb_sim_faults_add(srv->sim, spec, err, sizeof(err));
	if (e == PB_OK) {
		char *text = json_dumps(spec, JSON_COMPACT);
		pb_log(PB_LOG_INFO, "faults armed", "spec", text, NULL);
		free(text);
	}
	json_decref(spec);
	if (e != PB_OK)
		return respond_error(c, e == PB_ERR_NOMEM ? 500 : 400, err);
	return respond_json(c, 200, pb_sim_faults_json(srv->sim));
}

/* GET/POST /_sim/settings: {"acceptJson": bool}. */
static enum MHD_Result handle_settings(struct server *srv,
				       struct MHD_Connection *c,
				       const char *method, struct request *rq)
{
	if (strcmp(method, MHD_HTTP_METHOD_POST) == 0) {
		json_t *spec = rq->too_big ? NULL
					   : json_loadb(rq->buf ? rq->buf : "",
							rq->len, 0, NULL);
		json_t *aj = json_object_get(spec, "acceptJson");
		bool ok = json_is_object(spec) && json_is_boolean(aj) &&
			  json_object_size(spec) == 1;
		bool v = json_is_true(aj);
		json_decref(spec);
		if (!ok)
			return respond_error(
			    c, 400, "expected {\"acceptJson\": true|false}");
		pthread_mutex_lock(&srv->mu);
		srv->accept_json = v;
		pthread_mutex_unlock(&srv->mu);
		pb_log(PB_LOG_INFO, "settings", "acceptJson",
		       v ? "true" : "false", NULL);
	} else if (strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
		return respond_error(c, 405, "method not allowed");
	}
	pthread_mutex_lock(&srv->mu);
	bool now = srv->accept_json;
	pthread_mutex_unlock(&srv->mu);
	return respond_json(c, 200, json_pack("{s:b}", "acceptJson", now));
}

static enum MHD_Result handle_control(struct server *srv,
				      struct MHD_Connection *c, const char *url,
				      const char *method, struct request *rq)
{
	bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
	if (strcmp(url, "/_sim/faults") == 0)
		return handle_faults(srv, c, method, rq);
	if (strcmp(url, "/_sim/settings") == 0)
		return handle_settings(srv, c, method, rq);
	if (strcmp(url, "/_sim/requests") == 0 && get) {
		const char *s = MHD_lookup_connection_value(
		    c, MHD_GET_ARGUMENT_KIND, "since");
		const char *key = MHD_lookup_connection_value(
		    c, MHD_GET_ARGUMENT_KIND, "apiKey");
		int64_t since = 0;
		if (s && !pb_parse_i64(s, &since))
			return respond_error(c, 400, "since: not an integer");
		return respond_json(
		    c, 200,
		    pb_sim_requests_json(srv->sim, since,
					 key && key[0] ? key : NULL));
	}
	if (strcmp(url, "/_sim/orders") == 0 && get) {
		const char *key = MHD_lookup_connection_value(
		    c, MHD_GET_ARGUMENT_KIND, "apiKey");
		if (!key || !key[0])
			return respond_error(c, 400, "apiKey required");
		return respond_json(c, 200, pb_sim_orders_json(srv->sim, key));
	}
	if (strcmp(url, "/_sim/stats") == 0 && get)
		return respond_json(c, 200, pb_sim_stats_json(srv->sim));
	if (strcmp(url, "/_sim/reset") == 0 &&
	    strcmp(method, MHD_HTTP_METHOD_POST) == 0) {
		pb_sim_reset(srv->sim);
		pthread_mutex_lock(&srv->mu);
		srv->accept_json = srv->accept_json_default;
		pthread_mutex_unlock(&srv->mu);
		pb_log(PB_LOG_INFO, "reset", NULL);
		return respond_json(c, 200, json_pack("{s:b}", "reset", 1));
	}
	return respond_error(c, 404, "no such control endpoint");
}

/* ---- MHD callbacks ---------------------------------------------------- */

/* @locality: the connection's own thread. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct server *srv = cls;
	struct request *rq = *con_cls;

	if (!rq) {
		/* First call: headers only. Refuse oversized bodies early
		 * (by Content-Length) so we never read them. */
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*con_cls = rq;
		const char *cl = MHD_lookup_connection_value(
		    c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		int64_t n;
		if (cl && pb_parse_i64(cl, &n) && n > (int64_t)PB_SIM_MAX_BODY)
			rq->too_big = true;
		else {
			/* the whole body at once when its size is known */
			if (cl && n > 0)
				(void)body_reserve(rq, (size_t)n + 1);
			return MHD_YES;
		}
	} else if (*upload_data_size > 0) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (rq->too_big || n > PB_SIM_MAX_BODY - rq->len) {
			rq->too_big = true; /* keep draining, answer 413 */
			return MHD_YES;
		}
		if (!body_reserve(rq, rq->len + n + 1))
			return MHD_NO;
		memcpy(rq->buf + rq->len, upload_data, n);
		rq->len += n;
		rq->buf[rq->len] = '\0';
		return MHD_YES;
	}

	if (strcmp(url, "/api/") == 0 || strcmp(url, "/api") == 0)
		return handle_api(srv, c, method, rq);
	if (strncmp(url, "/_sim/", 6) == 0)
		return handle_control(srv, c, url, method, rq);
	return respond_error(c, 404, "not found");
}

/* @locality: the connection's thread, once the request is over. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *con_cls;
	if (rq) {
		body_release(rq);
		free(rq);
		*con_cls = NULL;
	}
}

__attribute__((format(printf, 2, 0))) static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	size_t n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	pb_log(PB_LOG_WARN, "libmicrohttpd", "detail", buf, NULL);
}

/* ---- main ------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: pruvan-sim [--port N] [--port-file PATH] "
			"[--latency-ms N] [--max-kept N] [--accept-json] "
			"[--quiet]\n");
}

/* Write the port to path atomically, so a watcher never reads half. */
static int write_port_file(const char *path, unsigned int port)
{
	char tmp[4096];
	int ret = -1;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path,
			     (long)getpid()) >= sizeof(tmp))
		return -1;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	if (fprintf(f, "%u\n", port) < 0)
		goto out_close;
	if (fclose(f) != 0) {
		f = NULL;
		goto out_unlink;
	}
	f = NULL;
	if (rename(tmp, path) != 0)
		goto out_unlink;
	return 0;
out_close:
	fclose(f);
out_unlink:
	unlink(tmp);
	return ret;
}

static bool parse_arg_i64(const char *name, const char *v, int64_t min,
			  int64_t max, int64_t *out)
{
	if (!v || !pb_parse_i64(v, out) || *out < min || *out > max) {
		fprintf(stderr,
			"pruvan-sim: %s: expected an integer in "
			"[%lld, %lld]\n",
			name, (long long)min, (long long)max);
		return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	int64_t port = 0, latency = 0, max_kept = 100000;
	const char *port_file = NULL;
	struct MHD_Daemon *d = NULL;
	struct server srv = {0};
	int rc = 1;
	sigset_t sigs;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--quiet") == 0) {
			pb_log_set_level(PB_LOG_WARN);
			continue;
		}
		if (strcmp(a, "--accept-json") == 0) {
			srv.accept_json = srv.accept_json_default = true;
			continue;
		}
		if (strcmp(a, "--port") == 0) {
			if (!parse_arg_i64(a, v, 0, 65535, &port))
				return 2;
		} else if (strcmp(a, "--latency-ms") == 0) {
			if (!parse_arg_i64(a, v, 0, 600000, &latency))
				return 2;
		} else if (strcmp(a, "--max-kept") == 0) {
			if (!parse_arg_i64(a, v, 1, 100000000, &max_kept))
				return 2;
		} else if (strcmp(a, "--port-file") == 0 && v) {
			port_file = v;
		} else {
			usage();
			return 2;
		}
		i++;
	}

	/* Signals are taken by sigwait in main only: block them before any
	 * thread exists so every MHD thread inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The store grows by ~1 KiB per order for the whole run: let the
	 * heaps grow in 16 MiB steps rather than one mprotect per page. */
	mallopt(M_TOP_PAD, 16 << 20);
	if (pthread_key_create(&body_spare_key, body_spare_free) != 0) {
		pb_log(PB_LOG_ERROR, "out of memory", NULL);
		return 1;
	}
	srv.sim = pb_sim_new((size_t)max_kept, latency);
	if (!srv.sim) {
		pb_log(PB_LOG_ERROR, "out of memory", NULL);
		return 1;
	}
	pthread_mutex_init(&srv.mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&srv.cond, &ca);
	pthread_condattr_destroy(&ca);

	struct sockaddr_in addr = {0};
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	d = MHD_start_daemon(
	    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
		MHD_USE_POLL | MHD_USE_ERROR_LOG,
	    0, NULL, NULL, on_request, &srv,
	    /* First, so that MHD never prints non-JSON lines. */
	    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, &srv, MHD_OPTION_SOCK_ADDR,
	    &addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed, &srv,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)300,
	    MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024, MHD_OPTION_END);
	if (!d) {
		pb_log(PB_LOG_ERROR, "cannot listen", "error", strerror(errno),
		       NULL);
		goto out;
	}
	const union MHD_DaemonInfo *info =
	    MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	unsigned int bound = info ? info->port : 0;
	if (bound == 0) {
		pb_log(PB_LOG_ERROR, "cannot read the bound port", NULL);
		goto out;
	}
	if (port_file && write_port_file(port_file, bound) != 0) {
		pb_log(PB_LOG_ERROR, "cannot write the port file", "path",
		       port_file, "error", strerror(errno), NULL);
		goto out;
	}
	char port_s[8], lat_s[24], kept_s[24];
	snprintf(port_s, sizeof(port_s), "%u", bound);
	snprintf(lat_s, sizeof(lat_s), "%lld", (long long)latency);
	snprintf(kept_s, sizeof(kept_s), "%lld", (long long)max_kept);
	pb_log(PB_LOG_INFO, "pruvan-sim listening", "address", "127.0.0.1",
	       "port", port_s, "latencyMs", lat_s, "maxKept", kept_s, NULL);

	int sig = 0;
	while (sigwait(&sigs, &sig) != 0)
		;
	pb_log(PB_LOG_INFO, "pruvan-sim stopping", "signal",
	       sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
	rc = 0;
out:
	/* Wake held requests so MHD_stop_daemon's joins finish promptly. */
	pthread_mutex_lock(&srv.mu);
	srv.stopping = true;
	pthread_cond_broadcast(&srv.cond);
	pthread_mutex_unlock(&srv.mu);
	if (d)
		MHD_stop_daemon(d);
	pb_sim_destroy(srv.sim);
	pthread_cond_destroy(&srv.cond);
	pthread_mutex_destroy(&srv.mu);
	return rc;
}
