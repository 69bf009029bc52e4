/*
 * relay.c: see relay.h. The receiver for Pruvan's relay calls.
 *
 * Design. libmicrohttpd in thread-per-connection mode: a call's handler
 * reads the body (bounded), turns the payload into inbound records, hands
 * them to a producer of its own (idempotent, acks=all, message.timeout.ms =
 * relay.ackTimeoutMs) and blocks on a condition variable until every
 * record's delivery report came back or the deadline passed. Only then
 * does it answer: Pruvan's success body when Kafka acknowledged all of
 * them, 503 otherwise. A poll thread serves the producer's delivery
 * reports.
 *
 * Invariants:
 *  - a success answer means every item of the call is on the inbound
 *    topic (acknowledged by all in-sync replicas);
 *  - a call's wait state (call_t) is reference counted: one reference per
 *    record in the producer plus one for the handler, so a report that
 *    arrives after the handler gave up (503) never touches freed memory;
 *  - the secret is compared in constant time and never written anywhere;
 *    MHD's own error log is off and the query string never reaches a log.
 *
 * Must never: answer success before Kafka acknowledged, buffer uploaded
 * file bytes, let one call hold more than PB_RELAY_MAX_JSON of JSON.
 */
#include "relay.h"
#include "kafka_conf.h"

#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "ops.h"
#include "rules.h"
#include "util.h"

#define RELAY_PP_BUFFER		   16384
#define RELAY_CONNECTION_TIMEOUT_S 60
#define RELAY_ACK_MARGIN_MS	   1000
#define RELAY_PATH_PREFIX	   "/relay/"
#define CT_JSON			   "application/json"

struct pb_relay {
	const pb_config_t *cfg;
	pb_metrics_t *metrics;
	struct MHD_Daemon *daemon;
	rd_kafka_t *producer;
	pthread_t poller;
	bool poller_started;
	atomic_int stop;
	int port;
};

/* ---- waiting for Kafka ----------------------------------------------------
 */

/* What one call waits on; see the reference counting invariant above. */
typedef struct call {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	int pending; /* records not yet reported */
	int failed;
	char error[256]; /* the first delivery error */
} call_t;

static call_t *call_new(void)
{
	call_t *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	c->refs = 1;
	return c;
}

/* Drop one reference; call with c->mu held, which this releases. */
static void call_unref_locked(call_t *c)
{
	bool last = --c->refs == 0;
	pthread_mutex_unlock(&c->mu);
	if (!last)
		return;
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* @locality: the poll thread (inside rd_kafka_poll), or rd_kafka_flush in
 * pb_relay_stop. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
			void *opaque)
{
	(void)rk;
	(void)opaque;
	call_t *c = m->_private;
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->pending--;
	if (m->err) {
		if (!c->failed++)
			pb_strlcpy(c->error, rd_kafka_err2str(m->err),
				   sizeof(c->error));
	}
	pthread_cond_broadcast(&c->cv);
	call_unref_locked(c);
}

static void *poll_main(void *arg)
{
	pb_relay_t *r = arg;
	while (!atomic_load(&r->stop))
		rd_kafka_poll(r->producer, 100);
	return NULL;
}

static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac,
			 const char *buf)
{
	(void)rk;
	pb_log(level <= 3   ? PB_LOG_ERROR
	       : level <= 4 ? PB_LOG_WARN
	       : level <= 6 ? PB_LOG_INFO
			    : PB_LOG_DEBUG,
	       buf, "component", "librdkafka", "client", "relay", "facility",
	       fac, NULL);
}

/*
 * Produce recs and wait for their reports. PB_OK when every one was
 * acknowledged; else PB_ERR_KAFKA / PB_ERR_TIMEOUT with the reason.
 */
static pb_err_t produce_and_wait(pb_relay_t *r, const pb_relay_record_t *recs,
				 size_t n, char *errstr, size_t errstr_size)
{
	if (n == 0)
		return PB_OK;
	call_t *c = call_new();
	if (!c)
		return pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			       "out of memory");
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < n; i++) {
		rd_kafka_resp_err_t e = rd_kafka_producev(
		    r->producer, RD_KAFKA_V_TOPIC(r->cfg->topic_inbound),
		    RD_KAFKA_V_KEY(recs[i].key, strlen(recs[i].key)),
		    RD_KAFKA_V_VALUE(recs[i].value, strlen(recs[i].value)),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		    RD_KAFKA_V_OPAQUE(c), RD_KAFKA_V_END);
		if (e) {
			if (!c->failed++)
				pb_strlcpy(c->error, rd_kafka_err2str(e),
					   sizeof(c->error));
			continue;
		}
		c->pending++;
		c->refs++;
	}
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	int64_t wait_ms =
	    (int64_t)r->cfg->relay_ack_timeout_ms + RELAY_ACK_MARGIN_MS;
	dl.tv_sec += (time_t)(wait_ms / 1000);
	dl.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	int rc = 0;
	while (c->pending > 0 && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&c->cv, &c->mu, &dl);
	pb_err_t err = PB_OK;
	if (c->failed)
		err = pb_errf(errstr, errstr_size, PB_ERR_KAFKA,
			      "Kafka did not accept %d of %zu items: %s",
			      c->failed, n, c->error);
	else if (c->pending > 0)
		err = pb_errf(errstr, errstr_size, PB_ERR_TIMEOUT,
			      "Kafka did not acknowledge %d of %zu items "
			      "within %d ms",
			      c->pending, n, r->cfg->relay_ack_timeout_ms);
	call_unref_locked(c);
	return err;
}

/* ---- pure parts ------------------------------------------------------------
 */

bool pb_relay_secret_equal(const char *given, const char *secret)
{
	if (!given || !secret)
		return false;
	size_t gl = strlen(given), sl = strlen(secret);
	/* Runs over the whole secret whatever was given: the time taken
	 * tells nothing about how much of it matched. */
	volatile unsigned char diff = gl != sl;
	for (size_t i = 0; i < sl; i++) {
		unsigned char g = i < gl ? (unsigned char)given[i] : 0;
		diff |= (unsigned char)(g ^ (unsigned char)secret[i]);
	}
	return diff == 0;
}

pb_err_t pb_relay_parse_path(const char *url, char *account,
			     size_t account_size, char *method,
			     size_t method_size)
{
	size_t plen = strlen(RELAY_PATH_PREFIX);
	if (!url || strncmp(url, RELAY_PATH_PREFIX, plen) != 0)
		return PB_ERR_NOT_FOUND;
	const char *a = url + plen;
	const char *slash = strchr(a, '/');
	if (!slash || slash == a)
		return PB_ERR_NOT_FOUND;
	const char *m = slash + 1;
	size_t alen = (size_t)(slash - a), mlen = strlen(m);
	if (mlen && m[mlen - 1] == '/')
		mlen--; /* a trailing slash is harmless */
	if (mlen == 0 || memchr(m, '/', mlen) || alen >= account_size ||
	    mlen >= method_size)
		return PB_ERR_NOT_FOUND;
	memcpy(account, a, alen);
	account[alen] = '\0';
	memcpy(method, m, mlen);
	method[mlen] = '\0';
	return PB_OK;
}

/* Two FNV-1a 64 passes with different bases: an id, not a MAC. */
static void content_id(const char *account, const char *kind, const char *text,
		       char *out, size_t out_size)
{
	uint64_t h1 = 0xcbf29ce484222325ULL, h2 = 0x84222325cbf29ce4ULL;
	const char *parts[] = {account, kind, text};
	for (size_t p = 0; p < 3; p++) {
		const unsigned char *s = (const unsigned char *)parts[p];
		for (;; s++) {
			h1 = (h1 ^ *s) * 0x100000001b3ULL;
			h2 = (h2 ^ *s) * 0x100000001b3ULL;
			h2 ^= h2 >> 29;
			if (!*s)
				break; /* the NUL separates the parts */
		}
	}
	snprintf(out, out_size, "relay-%016" PRIx64 "%016" PRIx64, h1, h2);
}

/* Fields Pruvan sends for its own authentication: never passed on. */
static const char *const credential_fields[] = {
    "username", "password", "token",  "pushkey",
    "pushKey",	"apiKey",   "apikey", NULL};

/*
 * One item (a copy of src) to one record. label names the item in
 * errors ("metadata", "workOrders[3]").
 */
static pb_err_t build_record(const char *account, const char *kind,
			     const json_t *src, const char *label,
			     pb_relay_record_t *rec, char *errstr,
			     size_t errstr_size)
{
	if (!json_is_object(src))
		return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			       "%s must be a JSON object", label);
	json_t *item = json_deep_copy(src);
	json_t *wrap = NULL;
	char *text = NULL;
	pb_inbound_t *in = NULL;
	pb_rejection_t rej;
	memset(&rej, 0, sizeof(rej));
	pb_err_t err = PB_ERR_NOMEM;
	if (!item)
		goto out_nomem;
	for (size_t i = 0; credential_fields[i]; i++)
		json_object_del(item, credential_fields[i]);
	/* status items name their order as Pruvan's own imports do */
	const json_t *won = json_object_get(item, "workOrderNumber");
	if (!json_object_get(item, "key2") && json_is_string(won))
		json_object_set(item, "key2", (json_t *)won);
	if (!json_object_get(item, "uuId")) {
		char *canon = json_dumps(item, JSON_COMPACT | JSON_SORT_KEYS);
		if (!canon)
			goto out_nomem;
		char id[64];
		content_id(account, kind, canon, id, sizeof(id));
		free(canon);
		json_object_set_new(item, "uuId", json_string(id));
	}
	wrap = json_pack("{s:s, s:s, s:O}", "account", account, "kind", kind,
			 "item", item);
	text =
	    wrap ? json_dumps(wrap, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (!text)
		goto out_nomem;
	/* the worker's own parser: what passes here is consumable there */
	if (pb_inbound_parse(text, strlen(text), &in, &rej) != PB_OK) {
		err = pb_errf(errstr, errstr_size, PB_ERR_INVALID, "%s: %s",
			      label, rej.message);
		goto out;
	}
	const char *k = in->key1 ? in->key1 : in->key2;
	size_t klen = strlen(account) + strlen(k) + 2;
	rec->key = malloc(klen);
	if (!rec->key)
		goto out_nomem;
	snprintf(rec->key, klen, "%s/%s", account, k);
	rec->value = text;
	rec->kind = kind;
	text = NULL;
	err = PB_OK;
	goto out;
out_nomem:
	err = pb_errf(errstr, errstr_size, PB_ERR_NOMEM, "out of memory");
out:
	pb_inbound_destroy(in);
	pb_rejection_clear(&rej);
	free(text);
	json_decref(wrap);
	json_decref(item);
	return err;
}

void pb_relay_records_free(pb_relay_record_t *recs, size_t n)
{
	if (!recs)
		return;
	for (size_t i = 0; i < n; i++) {
		free(recs[i].key);
		free(recs[i].value);
	}
	free(recs);
}

static bool has_survey(const json_t *meta)
{
	const json_t *s = json_object_get(meta, "survey");
	if (json_is_string(s))
		return json_string_length(s) > 0;
	return json_is_object(s) || json_is_array(s);
}

pb_err_t pb_relay_records(const char *account, const char *method,
			  const json_t *payload, pb_relay_record_t **out,
			  size_t *n_out, char *errstr, size_t errstr_size)
{
	if (!json_is_object(payload))
		return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			       "the payload must be a JSON object");
	const json_t *list = NULL;
	size_t n;
	if (strcmp(method, "uploadPictures") == 0) {
		n = 1;
	} else if (strcmp(method, "status") == 0) {
		list = json_object_get(payload, "workOrders");
		if (!json_is_array(list))
			return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
				       "workOrders is missing or not an array");
		n = json_array_size(list);
		if (n > PB_RELAY_MAX_ITEMS)
			return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
				       "%zu workOrders in one call: at most %d",
				       n, PB_RELAY_MAX_ITEMS);
	} else {
		return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			       "method \"%.64s\" relays no items", method);
	}
	pb_relay_record_t *recs = calloc(n ? n : 1, sizeof(*recs));
	if (!recs)
		return pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			       "out of memory");
	for (size_t i = 0; i < n; i++) {
		pb_err_t err;
		if (!list) {
			err = build_record(
			    account, has_survey(payload) ? "survey" : "photo",
			    payload, "metadata", &recs[i], errstr, errstr_size);
		} else {
			char label[48];
			snprintf(label, sizeof(label), "workOrders[%zu]", i);
			err = build_record(account, "status",
					   json_array_get(list, i), label,
					   &recs[i], errstr, errstr_size);
		}
		if (err) {
			pb_relay_records_free(recs, i);
			return err;
		}
	}
	*out = recs;
	*n_out = n;
	return PB_OK;
}

/* ---- HTTP -------------------------------------------------------------------
 */

typedef enum { BODY_RAW = 0, BODY_FORM } body_mode_t;

/* One request's state across MHD's calls of the handler. */
typedef struct request {
	pb_relay_t *relay;
	char account[128];
	char method[32];
	body_mode_t mode;
	struct MHD_PostProcessor *pp;
	size_t total; /* body bytes seen */
	/* JSON text: the raw body, or the payload / metadata field */
	char *json;
	size_t json_len;
	int json_rank; /* 2 payload, 1 metadata / application/json part */
	char *field; /* what is being collected (a field may come in chunks) */
	size_t field_len;
	int field_rank;
	bool too_big;
} request_t;

static const char *method_label(const char *m)
{
	static const char *const known[] = {"status", "uploadPictures",
					    "validate", NULL};
	for (size_t i = 0; m && known[i]; i++)
		if (strcmp(m, known[i]) == 0)
			return known[i];
	return "other";
}

static enum MHD_Result answer(request_t *rq, struct MHD_Connection *conn,
			      unsigned int status, json_t *body)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text)
		text = strdup("{\"error\":\"out of memory\"}");
	if (!text)
		return MHD_NO;
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CT_JSON);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "POST");
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	char lbl[128], code[8];
	snprintf(code, sizeof(code), "%u", status);
	pb_metrics_labels(lbl, sizeof(lbl), "method", method_label(rq->method),
			  "status", code, NULL);
	pb_metrics_add(rq->relay->metrics, PB_M_RELAY_REQUESTS, lbl, 1);
	return ret;
}

static enum MHD_Result answer_error(request_t *rq, struct MHD_Connection *conn,
				    unsigned int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum MHD_Result answer_error(request_t *rq, struct MHD_Connection *conn,
				    unsigned int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	char code[8];
	snprintf(code, sizeof(code), "%u", status);
	/* the path only: MHD hands the query (which may hold the secret)
	 * over separately, and it is never logged */
	pb_log(status >= 500 ? PB_LOG_WARN : PB_LOG_DEBUG, "relay call refused",
	       "status", code, "method", method_label(rq->method), "account",
	       rq->account[0] ? rq->account : "-", "error", msg, NULL);
	return answer(rq, conn, status, json_pack("{s:s}", "error", msg));
}

/* The secret from the header X-Relay-Secret, Authorization: Bearer, or
 * the query parameter secret; NULL when none is given. */
static const char *given_secret(struct MHD_Connection *conn)
{
	const char *s = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						    "X-Relay-Secret");
	if (s)
		return s;
	s = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_AUTHORIZATION);
	if (s && strncasecmp(s, "Bearer ", 7) == 0)
		return s + 7;
	return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND,
					   "secret");
}

/* Append to a bounded buffer; false when it would exceed the JSON cap. */
static bool append(char **buf, size_t *len, const char *data, size_t n)
{
	if (*len + n > PB_RELAY_MAX_JSON)
		return false;
	char *nb = realloc(*buf, *len + n + 1);
	if (!nb)
		return false;
	memcpy(nb + *len, data, n);
	*len += n;
	nb[*len] = '\0';
	*buf = nb;
	return true;
}

/* Keep the collected field when it beats what we have. */
static void field_done(request_t *rq)
{
	if (rq->field && rq->field_rank > rq->json_rank) {
		free(rq->json);
		rq->json = rq->field;
		rq->json_len = rq->field_len;
		rq->json_rank = rq->field_rank;
	} else {
		free(rq->field);
	}
	rq->field = NULL;
	rq->field_len = 0;
	rq->field_rank = 0;
}

/* @locality: inside MHD_post_process on the connection's thread. */
static enum MHD_Result on_field(void *cls, enum MHD_ValueKind kind,
				const char *key, const char *filename,
				const char *content_type,
				const char *transfer_encoding, const char *data,
				uint64_t off, size_t size)
{
	request_t *rq = cls;
	(void)kind;
	(void)transfer_encoding;
	int rank = 0;
	if (key && strcmp(key, "payload") == 0)
		rank = 2;
	else if ((key && strcmp(key, "metadata") == 0) ||
		 (content_type &&
		  strncasecmp(content_type, "application/json", 16) == 0))
		rank = 1;
	else if (filename)
		return MHD_YES; /* the photo itself: read and dropped */
	if (off == 0) {
		field_done(rq);
		rq->field_rank = rank;
	}
	if (rank == 0 || size == 0)
		return MHD_YES;
	if (!append(&rq->field, &rq->field_len, data, size)) {
		rq->too_big = true;
		return MHD_NO;
	}
	return MHD_YES;
}

static void request_free(request_t *rq)
{
	if (!rq)
		return;
	if (rq->pp)
		MHD_destroy_post_processor(rq->pp);
	free(rq->json);
	free(rq->field);
	free(rq);
}

/* @locality: MHD, when a request ends (answered or not). */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	request_free(*con_cls);
	*con_cls = NULL;
}

/* The first call for a request: everything the headers decide. */
static enum MHD_Result begin(pb_relay_t *r, request_t *rq,
			     struct MHD_Connection *conn, const char *url,
			     const char *method)
{
	char acct[sizeof(rq->account)], meth[sizeof(rq->method)];
	bool path_ok = pb_relay_parse_path(url, acct, sizeof(acct), meth,
					   sizeof(meth)) == PB_OK;
	if (path_ok)
		pb_strlcpy(rq->method, meth, sizeof(rq->method));
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
		return answer_error(rq, conn, MHD_HTTP_METHOD_NOT_ALLOWED,
				    "only POST is accepted");
	/* authenticate before anything else tells the caller what exists */
	const char *given = given_secret(conn);
	if (!given)
		return answer_error(rq, conn, MHD_HTTP_UNAUTHORIZED,
				    "the relay secret is missing: pass it as "
				    "?secret=... or in the X-Relay-Secret "
				    "header");
	if (!pb_relay_secret_equal(given, r->cfg->relay_secret))
		return answer_error(rq, conn, MHD_HTTP_UNAUTHORIZED,
				    "the relay secret is wrong");
	if (!path_ok)
		return answer_error(rq, conn, MHD_HTTP_NOT_FOUND,
				    "unknown path: use /relay/ACCOUNT/"
				    "uploadPictures, /relay/ACCOUNT/status or "
				    "/relay/ACCOUNT/validate");
	if (!pb_config_account(r->cfg, acct))
		return answer_error(rq, conn, MHD_HTTP_NOT_FOUND,
				    "account \"%.64s\" is not configured",
				    acct);
	pb_strlcpy(rq->account, acct, sizeof(rq->account));
	if (strcmp(method_label(meth), "other") == 0)
		return answer_error(rq, conn, MHD_HTTP_NOT_FOUND,
				    "method \"%.32s\" is not supported: "
				    "uploadPictures, status or validate",
				    meth);
	const char *cl = MHD_lookup_connection_value(
	    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	int64_t len;
	if (cl && pb_parse_i64(cl, &len) && len > (int64_t)PB_RELAY_MAX_BODY)
		return answer_error(rq, conn, MHD_HTTP_CONTENT_TOO_LARGE,
				    "the body is %" PRId64 " bytes: at most %u",
				    len, PB_RELAY_MAX_BODY);
	const char *ct = MHD_lookup_connection_value(
	    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (ct &&
	    (strncasecmp(ct, "multipart/form-data", 19) == 0 ||
	     strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0)) {
		rq->mode = BODY_FORM;
		rq->pp = MHD_create_post_processor(conn, RELAY_PP_BUFFER,
						   on_field, rq);
		if (!rq->pp)
			return answer_error(rq, conn, MHD_HTTP_BAD_REQUEST,
					    "cannot read the form body (a "
					    "multipart body needs a boundary)");
	} else if (!ct || strncasecmp(ct, "application/json", 16) == 0 ||
		   strncasecmp(ct, "text/plain", 10) == 0) {
		rq->mode = BODY_RAW;
	} else {
		return answer_error(rq, conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
				    "Content-Type \"%.64s\" is not accepted: "
				    "send a form with a payload field or "
				    "application/json",
				    ct);
	}
	return MHD_YES;
}

/* The last call: the whole body is in; decide, produce, answer. */
static enum MHD_Result finish(pb_relay_t *r, request_t *rq,
			      struct MHD_Connection *conn)
{
	if (strcmp(rq->method, "validate") == 0)
		return answer(
		    rq, conn, MHD_HTTP_OK,
		    json_pack("{s:s, s:b}", "error", "", "validated", 1));
	if (rq->mode == BODY_FORM) {
		field_done(rq);
		if (!rq->json)
			return answer_error(rq, conn, MHD_HTTP_BAD_REQUEST,
					    "no JSON found: send it in the "
					    "form field payload");
	}
	if (!rq->json || !rq->json_len)
		return answer_error(rq, conn, MHD_HTTP_BAD_REQUEST,
				    "the body is empty");
	json_error_t je;
	json_t *payload = json_loadb(rq->json, rq->json_len, 0, &je);
	if (!payload)
		return answer_error(rq, conn, MHD_HTTP_BAD_REQUEST,
				    "the payload is not JSON: %s (line %d)",
				    je.text, je.line);
	pb_relay_record_t *recs = NULL;
	size_t n = 0;
	char err[512];
	pb_err_t e = pb_relay_records(rq->account, rq->method, payload, &recs,
				      &n, err, sizeof(err));
	json_decref(payload);
	if (e)
		return answer_error(rq, conn,
				    e == PB_ERR_INVALID
					? MHD_HTTP_UNPROCESSABLE_CONTENT
					: MHD_HTTP_INTERNAL_SERVER_ERROR,
				    "%s", err);
	e = produce_and_wait(r, recs, n, err, sizeof(err));
	if (e == PB_OK) {
		for (size_t i = 0; i < n; i++) {
			char lbl[256];
			pb_metrics_labels(lbl, sizeof(lbl), "account",
					  rq->account, "kind", recs[i].kind,
					  NULL);
			pb_metrics_add(r->metrics, PB_M_RELAY_ITEMS, lbl, 1);
		}
	}
	pb_relay_records_free(recs, n);
	if (e)
		return answer_error(rq, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "%s; nothing is lost, call again", err);
	/* Pruvan's own success answers */
	if (strcmp(rq->method, "status") == 0)
		return answer(rq, conn, MHD_HTTP_OK,
			      json_pack("{s:b, s:n}", "status", 1, "error"));
	return answer(rq, conn, MHD_HTTP_OK,
		      json_pack("{s:b, s:s}", "status", 1, "error", ""));
}

/* @locality: the connection's own thread (thread per connection). */
static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	pb_relay_t *r = cls;
	(void)version;
	request_t *rq = *con_cls;
	if (!rq) {
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		rq->relay = r;
		*con_cls = rq;
		return begin(r, rq, conn, url, method);
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		rq->total += n;
		/* a body past the cap without a Content-Length saying so
		 * (chunked): cut the connection, reading on is the harm */
		if (rq->total > PB_RELAY_MAX_BODY || rq->too_big)
			return MHD_NO;
		if (rq->mode == BODY_FORM) {
			if (MHD_post_process(rq->pp, upload_data, n) !=
				MHD_YES &&
			    rq->too_big)
				return MHD_NO;
		} else if (!append(&rq->json, &rq->json_len, upload_data, n)) {
			rq->too_big = true;
		}
		return MHD_YES;
	}
	if (rq->too_big)
		return answer_error(rq, conn, MHD_HTTP_CONTENT_TOO_LARGE,
				    "the JSON payload is larger than %u bytes",
				    PB_RELAY_MAX_JSON);
	return finish(r, rq, conn);
}

/* ---- lifecycle
 * ---------------------------------------------------------------- */

static pb_err_t producer_new(pb_relay_t *r, char *errstr, size_t errstr_size)
{
	const pb_config_t *c = r->cfg;
	rd_kafka_conf_t *kc = rd_kafka_conf_new();
	char e[512], timeout[16];
	snprintf(timeout, sizeof(timeout), "%d", c->relay_ack_timeout_ms);
	if (rd_kafka_conf_set(kc, "linger.ms", "5", e, sizeof(e)))
		goto fail;
	pb_err_t err = pb_kafka_conf_apply(c, kc, PB_KAFKA_PRODUCER, errstr,
					   errstr_size);
	if (err) {
		rd_kafka_conf_destroy(kc);
		return err;
	}
	/* The guarantees the answer to Pruvan rests on: not overridable. */
	static const char *const fixed[][2] = {{"enable.idempotence", "true"},
					       {"acks", "all"}};
	for (size_t i = 0; i < 2; i++)
		if (rd_kafka_conf_set(kc, fixed[i][0], fixed[i][1], e,
				      sizeof(e)))
			goto fail;
	/* a record not acknowledged in time fails instead of lingering
	 * after Pruvan was told 503 */
	if (rd_kafka_conf_set(kc, "message.timeout.ms", timeout, e, sizeof(e)))
		goto fail;
	rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
	rd_kafka_conf_set_log_cb(kc, on_kafka_log);
	r->producer = rd_kafka_new(RD_KAFKA_PRODUCER, kc, e, sizeof(e));
	if (!r->producer) {
		rd_kafka_conf_destroy(kc);
		return pb_errf(errstr, errstr_size, PB_ERR_KAFKA,
			       "cannot create the relay's Kafka producer: %s",
			       e);
	}
	return PB_OK;
fail:
	rd_kafka_conf_destroy(kc);
	return pb_errf(errstr, errstr_size, PB_ERR_KAFKA,
		       "relay producer configuration: %s", e);
}

pb_err_t pb_relay_start(const pb_config_t *cfg, pb_metrics_t *metrics,
			pb_relay_t **relay_out, char *errstr,
			size_t errstr_size)
{
	if (!cfg || !metrics || !relay_out)
		return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			       "pb_relay_start: cfg, metrics and relay_out "
			       "required");
	if (!cfg->relay_listen || !cfg->relay_secret || !cfg->relay_secret[0])
		return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
			       "the relay needs relay.listen and a non-empty "
			       "relay.secret");
	pb_err_t err;
	pb_relay_t *r = calloc(1, sizeof(*r));
	if (!r)
		return pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			       "out of memory");
	r->cfg = cfg;
	r->metrics = metrics;
	atomic_init(&r->stop, 0);
	pb_metrics_declare_standard(metrics);
	err = producer_new(r, errstr, errstr_size);
	if (err)
		goto fail;
	if (pthread_create(&r->poller, NULL, poll_main, r) != 0) {
		err = pb_errf(errstr, errstr_size, PB_ERR_IO,
			      "cannot start the relay's poll thread");
		goto fail;
	}
	r->poller_started = true;

	pb_http_listen_t l = {
	    .listen = cfg->relay_listen,
	    .what = "relay",
	    .flags =
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD,
	    .handler = handle,
	    .cls = r,
	    .max_connections = PB_RELAY_MAX_CONNECTIONS,
	    .timeout_s = RELAY_CONNECTION_TIMEOUT_S,
	    .completed = on_completed,
	};
	err = pb_ops_listen(&l, &r->daemon, &r->port, errstr, errstr_size);
	if (err)
		goto fail;
	*relay_out = r;
	return PB_OK;
fail:
	pb_relay_stop(r);
	return err;
}

int pb_relay_port(const pb_relay_t *relay)
{
	return relay ? relay->port : -1;
}

void pb_relay_stop(pb_relay_t *r)
{
	if (!r)
		return;
	/* Joins every connection thread: each call has answered (its wait is
	 * bounded by the ack timeout) before this returns. */
	if (r->daemon)
		MHD_stop_daemon(r->daemon);
	atomic_store(&r->stop, 1);
	if (r->poller_started)
		pthread_join(r->poller, NULL);
	if (r->producer) {
		/* Serve the last reports so every call_t is released. */
		rd_kafka_flush(r->producer, 2000);
		rd_kafka_purge(r->producer, RD_KAFKA_PURGE_F_QUEUE |
						RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_flush(r->producer, 1000);
		rd_kafka_destroy(r->producer);
	}
	free(r);
}
