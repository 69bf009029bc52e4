/*
 * relay.c: see relay.h. The web service Pruvan calls (contract 5.1).
 *
 * Design. libmicrohttpd in thread-per-connection mode. The first call of a
 * request decides what the headers can (path, account, method, size); the
 * body is then read bounded: the JSON (the form field `payload`, or a raw
 * application/json body) into memory up to relay.maxPayloadBytes, an
 * uploaded file part straight into a temporary file in relay.mediaDir
 * while its SHA-256 is computed (never buffered). The last call checks the
 * credentials and runs the method. status and uploadPictures hand their
 * items to a producer of their own (idempotent, acks=all,
 * message.timeout.ms = relay.ackTimeoutMs) and block on a condition
 * variable until every delivery report came back or the deadline passed;
 * only then do they answer, Pruvan's success body when Kafka acknowledged
 * all, 503 otherwise. getWorkOrders streams its answer from Redis a page
 * at a time (a response callback), so memory does not grow with the
 * account.
 *
 * Invariants:
 *  - a success answer means every item of the call is on the inbound
 *    topic (acknowledged by all in-sync replicas) and its file, if any, is
 *    in the media store under its final name, fsynced with its directory;
 *  - a call's wait state (call_t) is reference counted: one reference per
 *    record in the producer plus one for the handler, so a report that
 *    arrives after the handler gave up (503) never touches freed memory;
 *  - credentials and PushKeys are never written anywhere but Redis (the
 *    key); MHD's own error log is off and no payload reaches a log;
 *  - a media file's name is derived from the account and the item's uuId
 *    (pb_relay_media_name), never from a name the caller sent;
 *  - at most RELAY_JSON_BUDGET_CALLS x relay.maxPayloadBytes of JSON is
 *    parsed or held by calls at once (the parse precedes the credential
 *    check); a call that gets no share within the ack timeout is a 503.
 *
 * Must never: answer success before Kafka acknowledged, buffer uploaded
 * file bytes, hold more than relay.maxPayloadBytes of JSON per call.
 */
#include "relay.h"
#include "relay_mpend.h"
#include "kafka_client.h"
#include "produce.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jtext.h"
#include "log.h"
#include "ops.h"
#include "rules.h"
#include "state.h"
#include "util.h"

#define RELAY_PP_BUFFER		   16384
#define RELAY_CONNECTION_TIMEOUT_S 60
#define RELAY_STALE_UPLOAD_S	   3600 /* an unfinished upload's file */
#define RELAY_ACK_MARGIN_MS	   1000
#define RELAY_REDIS_TIMEOUT_MS	   5000
#define RELAY_STREAM_BLOCK	   16384
#define RELAY_PUSH_KEY_MAX	   2048
#define RELAY_JSON_BUDGET_CALLS	   4 /* max-size payloads parsed at once */
#define CT_JSON			   "application/json"
#define BAD_CREDENTIALS		   "invalid username or password"

struct pb_relay {
	const pb_config_t *cfg;
	pb_metrics_t *metrics;
	struct MHD_Daemon *daemon;
	rd_kafka_t *producer;
	pthread_t poller;
	bool poller_started;
	atomic_int stop;
	int port;
	/* one Redis connection for validate and getWorkOrders */
	pthread_mutex_t state_mu;
	pb_state_t *state;
	atomic_uint upload_seq; /* temporary file names */
	size_t record_max;	/* the largest record the producer takes */
	/* JSON text of the calls being parsed or served, bounded: parsed,
	 * a payload takes up to ~65 times its size (1 MiB of "{}," is 65 MB),
	 * and the parse comes before the credential check */
	pthread_mutex_t json_mu;
	pthread_cond_t json_cv;
	size_t json_inflight, json_budget;
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
	bool too_large;	 /* a record was refused for its size */
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

/* Kafka refuses the record for its size: sending it again cannot help. */
static bool relay_err_too_large(rd_kafka_resp_err_t e)
{
	return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
	       e == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE ||
	       e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
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
		c->too_large |= relay_err_too_large(m->err);
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

/*
 * Produce recs and wait for their reports. PB_OK when every one was
 * acknowledged; else PB_ERR_INVALID when Kafka refused a record for its
 * size (a repeat would be refused again), PB_ERR_KAFKA / PB_ERR_TIMEOUT
 * with the reason.
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
			c->too_large |= relay_err_too_large(e);
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
	if (c->too_large)
		err =
		    pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			    "Kafka refused %d of %zu items as too large (%s): "
			    "the inbound topic's message.max.bytes bounds an "
			    "item",
			    c->failed, n, c->error);
	else if (c->failed)
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

/* ---- requests
 * ----------------------------------------------------------------
 */

typedef enum { BODY_RAW = 0, BODY_FORM } body_mode_t;

/* What went wrong while the body was read; answered at its end. */
typedef enum {
	RQ_OK = 0,
	RQ_PAYLOAD_TOO_BIG,
	RQ_FILE_TOO_BIG,
	RQ_MEDIA_IO, /* the media store could not be written */
} rq_problem_t;

/* One request's state across MHD's calls of the handler. */
typedef struct request {
	pb_relay_t *relay;
	const pb_account_t *acct;
	char account[129];
	pb_relay_method_t method;
	body_mode_t mode;
	struct MHD_PostProcessor *pp;
	uint64_t total; /* body bytes seen */
	/* JSON text: the raw body, or the payload / metadata field */
	char *json;
	size_t json_len;
	int json_rank; /* 2 payload, 1 metadata / application/json part */
	char *field; /* what is being collected (a field may come in chunks) */
	size_t field_len;
	int field_rank;
	bool in_file; /* the current multipart part is the kept file */
	/* MHD announces a part whose first bytes are not in yet with an
	 * empty call at offset 0, then delivers its data from offset 0 */
	bool announced;
	int announced_rank;
	bool announced_file;
	/* the uploaded file, while it is written */
	int fd;
	bool file_seen;
	char tmp_path[512];
	int64_t file_bytes;
	EVP_MD_CTX *sha;
	char file_type[128];
	size_t json_held; /* of the relay's JSON budget */
	rq_problem_t problem;
	char problem_msg[256];
	bool body_too_big; /* past relay.maxBodyBytes: read on, not kept */
	/* an urlencoded body as it came (bounded by relay.maxPayloadBytes):
	 * a client that labels raw JSON urlencoded (curl -d) sent no field */
	bool urlencoded;
	char *raw;
	size_t raw_len;
	bool raw_over;
	pb_mpend_t mpend; /* a multipart body's end (relay_mpend.h) */
} request_t;

static void count_request(request_t *rq, unsigned int status)
{
	char lbl[128], code[8];
	snprintf(code, sizeof(code), "%u", status);
	pb_metrics_labels(lbl, sizeof(lbl), "method",
			  pb_relay_method_name(rq->method), "status", code,
			  NULL);
	pb_metrics_add(rq->relay->metrics, PB_M_RELAY_REQUESTS, lbl, 1);
}

static enum MHD_Result answer(request_t *rq, struct MHD_Connection *conn,
			      unsigned int status, json_t *body)
{
	char *text =
	    body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(body);
	if (!text)
		text = strdup("{\"status\":false,\"error\":\"out of memory\"}");
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
	count_request(rq, status);
	return ret;
}

static enum MHD_Result answer_error(request_t *rq, struct MHD_Connection *conn,
				    unsigned int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* {"status":false,"error":...} (validate's 401 and 503 keep validate's
 * own shape), logged without anything the caller sent but the path. */
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
	pb_log(status >= 500 ? PB_LOG_WARN : PB_LOG_INFO, "relay call refused",
	       "status", code, "method", pb_relay_method_name(rq->method),
	       "account", rq->acct ? rq->account : "-", "error", msg, NULL);
	bool validate_shape = rq->method == PB_RELAY_M_VALIDATE &&
			      (status == MHD_HTTP_UNAUTHORIZED ||
			       status == MHD_HTTP_SERVICE_UNAVAILABLE);
	return answer(
	    rq, conn, status,
	    validate_shape
		? json_pack("{s:s, s:b}", "error", msg, "validated", 0)
		: json_pack("{s:b, s:s}", "status", 0, "error", msg));
}

/* Append to a bounded buffer; false when it would exceed max. */
static bool append(char **buf, size_t *len, const char *data, size_t n,
		   size_t max)
{
	if (*len + n > max)
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

static void problem(request_t *rq, rq_problem_t p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(request_t *rq, rq_problem_t p, const char *fmt, ...)
{
	if (rq->problem)
		return; /* the first one is the one to answer */
	rq->problem = p;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rq->problem_msg, sizeof(rq->problem_msg), fmt, ap);
	va_end(ap);
}

/* Take n bytes of the JSON budget for rq, waiting at most the ack timeout
 * (+ margin) for other calls to give theirs back; false when they did not. */
static bool json_budget_take(request_t *rq, size_t n)
{
	pb_relay_t *r = rq->relay;
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec +=
	    (r->cfg->relay_ack_timeout_ms + RELAY_ACK_MARGIN_MS) / 1000;
	int rc = 0;
	pthread_mutex_lock(&r->json_mu);
	while (r->json_inflight > 0 && r->json_inflight + n > r->json_budget &&
	       rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&r->json_cv, &r->json_mu, &dl);
	bool ok =
	    r->json_inflight == 0 || r->json_inflight + n <= r->json_budget;
	if (ok) {
		r->json_inflight += n;
		rq->json_held = n;
	}
	pthread_mutex_unlock(&r->json_mu);
	return ok;
}

/* Give rq's share of the JSON budget back (none held: nothing). */
static void json_budget_give(request_t *rq)
{
	pb_relay_t *r = rq->relay;
	if (!rq->json_held)
		return;
	pthread_mutex_lock(&r->json_mu);
	r->json_inflight -= rq->json_held;
	rq->json_held = 0;
	pthread_cond_broadcast(&r->json_cv);
	pthread_mutex_unlock(&r->json_mu);
}

/* ---- the media store
 * -----------------------------------------------------------
 */

static void file_discard(request_t *rq)
{
	if (rq->fd >= 0) {
		close(rq->fd);
		rq->fd = -1;
	}
	if (rq->tmp_path[0]) {
		unlink(rq->tmp_path);
		rq->tmp_path[0] = '\0';
	}
	EVP_MD_CTX_free(rq->sha);
	rq->sha = NULL;
}

/* The file part begins: a temporary file of its own in the media dir. */
static void file_open(request_t *rq, const char *content_type)
{
	const pb_config_t *c = rq->relay->cfg;
	rq->file_seen = true;
	pb_strlcpy(rq->file_type, content_type ? content_type : "",
		   sizeof(rq->file_type));
	unsigned seq = atomic_fetch_add(&rq->relay->upload_seq, 1);
	snprintf(rq->tmp_path, sizeof(rq->tmp_path),
		 "%s/.upload-%ld-%u-%" PRId64, c->relay_media_dir,
		 (long)getpid(), seq, pb_mono_ms());
	rq->fd =
	    open(rq->tmp_path,
		 O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
	rq->sha = EVP_MD_CTX_new();
	if (rq->fd < 0 || !rq->sha ||
	    EVP_DigestInit_ex(rq->sha, EVP_sha256(), NULL) != 1) {
		int e = errno;
		if (rq->fd < 0)
			rq->tmp_path[0] = '\0';
		file_discard(rq);
		problem(rq, RQ_MEDIA_IO,
			"cannot write to relay.mediaDir %s: %s; mount a "
			"writable volume there",
			c->relay_media_dir, strerror(e));
	}
}

static void file_write(request_t *rq, const char *data, size_t size)
{
	if (rq->fd < 0 || size == 0)
		return;
	int64_t max = rq->relay->cfg->relay_max_file_bytes;
	if (rq->file_bytes + (int64_t)size > max) {
		file_discard(rq);
		problem(rq, RQ_FILE_TOO_BIG,
			"the file is larger than relay.maxFileBytes (%" PRId64
			" bytes)",
			max);
		return;
	}
	EVP_DigestUpdate(rq->sha, data, size);
	rq->file_bytes += (int64_t)size;
	while (size > 0) {
		ssize_t n = write(rq->fd, data, size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = errno;
			file_discard(rq);
			problem(rq, RQ_MEDIA_IO,
				"cannot write to relay.mediaDir: %s; free "
				"space on the volume",
				strerror(e));
			return;
		}
		data += n;
		size -= (size_t)n;
	}
}

static bool fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool ok = fsync(fd) == 0;
	close(fd);
	return ok;
}

/*
 * The whole file is in: hash it, fsync it and name where it will be kept
 * (uuid's name). path_out and sha_out receive what media records. It stays
 * under its temporary name until file_place: a call refused after this
 * (its item unusable) leaves nothing and overwrites nothing.
 */
static pb_err_t file_seal(request_t *rq, const char *uuid, char *path_out,
			  size_t path_size, char sha_out[65], char *errstr,
			  size_t errstr_size)
{
	const char *dir = rq->relay->cfg->relay_media_dir;
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;
	if (EVP_DigestFinal_ex(rq->sha, d, &dl) != 1 || dl != 32)
		return pb_errf(errstr, errstr_size, PB_ERR_IO,
			       "cannot hash the uploaded file");
	for (unsigned i = 0; i < dl; i++)
		snprintf(sha_out + 2 * i, 3, "%02x", d[i]);
	char name[256];
	pb_relay_media_name(rq->account, uuid, name, sizeof(name));
	snprintf(path_out, path_size, "%s/%s", dir, name);
	bool ok = fsync(rq->fd) == 0;
	int e = errno;
	close(rq->fd);
	rq->fd = -1;
	if (!ok)
		return pb_errf(errstr, errstr_size, PB_ERR_IO,
			       "cannot keep the file in relay.mediaDir %s: %s",
			       dir, strerror(e));
	return PB_OK;
}

/* The sealed file under its final name path, the directory fsynced. */
static pb_err_t file_place(request_t *rq, const char *path, char *errstr,
			   size_t errstr_size)
{
	const char *dir = rq->relay->cfg->relay_media_dir;
	bool ok = rename(rq->tmp_path, path) == 0;
	int e = errno;
	if (ok)
		rq->tmp_path[0] = '\0'; /* it is the kept file now */
	if (ok && !fsync_dir(dir)) {
		ok = false;
		e = errno;
	}
	if (!ok)
		return pb_errf(errstr, errstr_size, PB_ERR_IO,
			       "cannot keep the file in relay.mediaDir %s: %s",
			       dir, strerror(e));
	return PB_OK;
}

/* ---- the body
 * ------------------------------------------------------------------
 */

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
	bool file = false;
	if (key && strcmp(key, "payload") == 0 && !filename)
		rank = 2;
	else if ((key && strcmp(key, "metadata") == 0) ||
		 (content_type &&
		  strncasecmp(content_type, "application/json", 16) == 0 &&
		  !(key && strcmp(key, "file") == 0)))
		rank = 1;
	else if (filename || (key && strcmp(key, "file") == 0))
		file = true;
	/* offset 0 after an empty announcement of this part continues it */
	bool continued = off == 0 && rq->announced &&
			 rq->announced_rank == rank &&
			 rq->announced_file == file;
	rq->announced = off == 0 && size == 0;
	rq->announced_rank = rank;
	rq->announced_file = file;
	if (off == 0 && !continued) {
		field_done(rq);
		rq->field_rank = rank;
		/* the first file part is the one kept; others are read and
		 * dropped, like every file sent to another method */
		rq->in_file = file && !rq->file_seen &&
			      rq->method == PB_RELAY_M_UPLOAD_PICTURES;
		if (rq->in_file)
			file_open(rq, content_type);
	}
	if (file) {
		if (rq->in_file)
			file_write(rq, data, size);
		return MHD_YES;
	}
	if (rank == 0 || size == 0)
		return MHD_YES;
	if (!append(&rq->field, &rq->field_len, data, size,
		    (size_t)rq->relay->cfg->relay_max_payload_bytes))
		problem(rq, RQ_PAYLOAD_TOO_BIG,
			"the JSON payload is larger than "
			"relay.maxPayloadBytes (%" PRId64 " bytes)",
			rq->relay->cfg->relay_max_payload_bytes);
	return MHD_YES;
}

static void request_free(request_t *rq)
{
	if (!rq)
		return;
	if (rq->pp)
		MHD_destroy_post_processor(rq->pp);
	json_budget_give(rq);
	file_discard(rq);
	free(rq->json);
	free(rq->field);
	free(rq->raw);
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
	const pb_config_t *c = r->cfg;
	char acct[sizeof(rq->account)], meth[40];
	bool path_ok =
	    pb_relay_parse_path(url, c->relay_base_path, acct, sizeof(acct),
				meth, sizeof(meth)) == PB_OK;
	if (path_ok)
		rq->method = pb_relay_method_of(meth);
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
		return answer_error(rq, conn, MHD_HTTP_METHOD_NOT_ALLOWED,
				    "only POST is accepted");
	if (!path_ok)
		return answer_error(rq, conn, MHD_HTTP_NOT_FOUND,
				    "unknown path: Pruvan's web service URL "
				    "is %s/ACCOUNT, called as "
				    "%s/ACCOUNT/METHOD.EXT",
				    c->relay_base_path, c->relay_base_path);
	rq->acct = pb_config_account(c, acct);
	if (!rq->acct)
		return answer_error(rq, conn, MHD_HTTP_NOT_FOUND,
				    "unknown account: set the web service URL "
				    "to %s/ACCOUNT with a configured account",
				    c->relay_base_path);
	pb_strlcpy(rq->account, acct, sizeof(rq->account));
	if (rq->method == PB_RELAY_M_UNKNOWN)
		return answer_error(rq, conn, MHD_HTTP_NOT_FOUND,
				    "unknown method: validate, getWorkOrders, "
				    "status or uploadPictures");
	const char *cl = MHD_lookup_connection_value(
	    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	int64_t len;
	if (cl && pb_parse_i64(cl, &len) && len > c->relay_max_body_bytes)
		return answer_error(rq, conn, MHD_HTTP_CONTENT_TOO_LARGE,
				    "the body is %" PRId64 " bytes: "
				    "relay.maxBodyBytes is %" PRId64,
				    len, c->relay_max_body_bytes);
	/* MHD reads a body under any other transfer coding until the client
	 * closes: the caller would wait for an answer that never comes */
	const char *te = MHD_lookup_connection_value(
	    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	if (te && strcasecmp(te, "chunked") != 0)
		return answer_error(rq, conn, MHD_HTTP_BAD_REQUEST,
				    "Transfer-Encoding \"%.32s\" is not "
				    "accepted: send the body with a "
				    "Content-Length or chunked",
				    te);
	const char *ct = MHD_lookup_connection_value(
	    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (ct &&
	    (strncasecmp(ct, "multipart/form-data", 19) == 0 ||
	     strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0)) {
		rq->mode = BODY_FORM;
		rq->urlencoded = strncasecmp(ct,
					     "application/x-www-form-"
					     "urlencoded",
					     33) == 0;
		rq->pp = MHD_create_post_processor(conn, RELAY_PP_BUFFER,
						   on_field, rq);
		if (!rq->urlencoded)
			pb_mpend_init(&rq->mpend, ct);
		if (!rq->pp)
			return answer_error(rq, conn, MHD_HTTP_BAD_REQUEST,
					    "cannot read the form body (a "
					    "multipart body needs a boundary)");
	} else if (!ct || strncasecmp(ct, "application/json", 16) == 0 ||
		   strncasecmp(ct, "text/plain", 10) == 0) {
		rq->mode = BODY_RAW;
	} else {
		return answer_error(rq, conn, MHD_HTTP_BAD_REQUEST,
				    "Content-Type \"%.64s\" is not accepted: "
				    "send the form field payload or "
				    "application/json",
				    ct);
	}
	return MHD_YES;
}

/*
 * One chunk of the body. A body past relay.maxBodyBytes that no
 * Content-Length announced (chunked) is read on without being kept, so
 * that the client can read its 413 at the end (a client still sending
 * when the connection closes sees no answer at all); past twice the bound
 * the connection is cut, reading on would be the harm.
 */
static enum MHD_Result body_chunk(request_t *rq, const char *data, size_t n)
{
	const pb_config_t *c = rq->relay->cfg;
	rq->total += n;
	if (rq->total > 2 * (uint64_t)c->relay_max_body_bytes)
		return MHD_NO;
	if (rq->total > (uint64_t)c->relay_max_body_bytes) {
		rq->body_too_big = true;
		return MHD_YES;
	}
	if (rq->mode == BODY_FORM) {
		if (rq->urlencoded && !rq->raw_over &&
		    !append(&rq->raw, &rq->raw_len, data, n,
			    (size_t)c->relay_max_payload_bytes))
			rq->raw_over = true;
		/* a multipart body's epilogue is not handed on */
		size_t k =
		    rq->urlencoded ? n : pb_mpend_take(&rq->mpend, data, n);
		if (k)
			MHD_post_process(rq->pp, data, k);
	} else if (!rq->problem &&
		   !append(&rq->json, &rq->json_len, data, n,
			   (size_t)c->relay_max_payload_bytes)) {
		problem(rq, RQ_PAYLOAD_TOO_BIG,
			"the JSON body is larger than relay.maxPayloadBytes "
			"(%" PRId64 " bytes)",
			c->relay_max_payload_bytes);
	}
	return MHD_YES;
}

/* The payload, parsed: NULL (after answering) when there is none usable. */
static json_t *payload_of(request_t *rq, struct MHD_Connection *conn,
			  enum MHD_Result *ret)
{
	if (rq->mode == BODY_FORM)
		field_done(rq);
	if (!rq->json && rq->raw && !rq->raw_over && rq->raw[0] == '{') {
		rq->json = rq->raw; /* raw JSON labelled as a form */
		rq->json_len = rq->raw_len;
		rq->raw = NULL;
	}
	if (!rq->json || !rq->json_len) {
		*ret = answer_error(rq, conn, MHD_HTTP_BAD_REQUEST,
				    rq->mode == BODY_FORM
					? "no JSON found: send it in the "
					  "form field payload"
					: "the body is empty: send the JSON "
					  "in the form field payload");
		return NULL;
	}
	if (!json_budget_take(rq, rq->json_len)) {
		*ret = answer_error(rq, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "the relay is busy reading other large "
				    "calls; call again");
		return NULL;
	}
	json_error_t je;
	json_t *payload = json_loadb(rq->json, rq->json_len, 0, &je);
	if (!json_is_object(payload)) {
		*ret = payload ? answer_error(rq, conn, MHD_HTTP_BAD_REQUEST,
					      "the payload must be a JSON "
					      "object")
			       : answer_error(rq, conn, MHD_HTTP_BAD_REQUEST,
					      "the payload is not JSON: %s "
					      "(line %d)",
					      je.text, je.line);
		json_decref(payload);
		json_budget_give(rq);
		return NULL;
	}
	return payload;
}

/* ---- methods
 * -------------------------------------------------------------------
 */

/* A learned PushKey is a key, or a URL on pruvan.apiUrl's origin: one
 * elsewhere would send the account's orders (addresses, instructions) to
 * whoever holds the relay credentials. */
static bool push_key_destination_ok(const pb_relay_t *r, const char *key)
{
	return !pb_url_authority(key) ||
	       pb_url_same_origin(key, r->cfg->pruvan_api_url);
}

static enum MHD_Result do_validate(pb_relay_t *r, request_t *rq,
				   struct MHD_Connection *conn,
				   const json_t *payload)
{
	const json_t *pk = json_object_get(payload, "pushkey");
	if (!pk)
		pk = json_object_get(payload, "pushKey");
	if (rq->acct->push_key_learned) {
		const char *key = json_string_value(pk);
		size_t n = key ? json_string_length(pk) : 0;
		bool clean =
		    n > 0 && n <= RELAY_PUSH_KEY_MAX && strlen(key) == n;
		for (size_t i = 0; clean && i < n; i++)
			clean = (unsigned char)key[i] > ' ' && key[i] != 0x7f;
		if (pk && !json_is_null(pk) && !key) {
			return answer_error(rq, conn, MHD_HTTP_BAD_REQUEST,
					    "pushkey must be a string");
		} else if (!key || n == 0) {
			/* the credentials are right: validated, but the key
			 * stays what it was */
			pb_log(PB_LOG_WARN, "validate brought no pushkey",
			       "account", rq->account, "what_to_do",
			       "set the integration up again in Pruvan so "
			       "that it delivers its PushKey",
			       NULL);
		} else if (!clean) {
			return answer_error(
			    rq, conn, MHD_HTTP_BAD_REQUEST,
			    "pushkey must be 1..%d printable characters",
			    RELAY_PUSH_KEY_MAX);
		} else if (!push_key_destination_ok(r, key)) {
			pb_log(PB_LOG_WARN,
			       "validate refused: its pushkey is a URL off "
			       "pruvan.apiUrl's host",
			       "account", rq->account, "what_to_do",
			       "if Pruvan really pushes elsewhere, set "
			       "pruvan.apiUrl to that host; else the relay "
			       "credentials may have leaked",
			       NULL);
			return answer_error(
			    rq, conn, MHD_HTTP_BAD_REQUEST,
			    "pushkey is a URL on another host than "
			    "pruvan.apiUrl's: send the key itself");
		} else {
			char err[256];
			pthread_mutex_lock(&r->state_mu);
			pb_err_t e = pb_state_set_push_key(
			    r->state, rq->account, key, pb_wall_ms(), err,
			    sizeof(err));
			pthread_mutex_unlock(&r->state_mu);
			if (e)
				return answer_error(
				    rq, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "the PushKey could not be stored (%s); "
				    "validate again",
				    err);
			pb_log(PB_LOG_INFO, "PushKey learned from validate",
			       "account", rq->account, NULL);
		}
	}
	return answer(rq, conn, MHD_HTTP_OK,
		      json_pack("{s:s, s:b}", "error", "", "validated", 1));
}

/* status and uploadPictures: items to Kafka, then Pruvan's answer. */
static enum MHD_Result do_items(pb_relay_t *r, request_t *rq,
				struct MHD_Connection *conn,
				const json_t *payload,
				const pb_relay_media_t *media)
{
	const pb_config_t *c = r->cfg;
	const json_t *list = json_object_get(payload, "workOrders");
	if (rq->method == PB_RELAY_M_STATUS && json_is_array(list) &&
	    json_array_size(list) > (size_t)c->relay_max_items)
		return answer_error(rq, conn, MHD_HTTP_CONTENT_TOO_LARGE,
				    "%zu workOrders in one call: "
				    "relay.maxItems is %d",
				    json_array_size(list), c->relay_max_items);
	pb_relay_record_t *recs = NULL;
	size_t n = 0;
	char err[512];
	pb_err_t e = pb_relay_records(rq->account, rq->method, payload, media,
				      (size_t)c->relay_max_items, &recs, &n,
				      err, sizeof(err));
	if (e)
		return answer_error(rq, conn,
				    e == PB_ERR_INVALID
					? MHD_HTTP_BAD_REQUEST
					: MHD_HTTP_SERVICE_UNAVAILABLE,
				    "%s", err);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(recs[i].key) + strlen(recs[i].value);
		if (len <= r->record_max)
			continue;
		pb_relay_records_free(recs, n);
		return answer_error(
		    rq, conn, MHD_HTTP_CONTENT_TOO_LARGE,
		    "item %zu is %zu bytes as an inbound record: the "
		    "producer's message.max.bytes allows %zu",
		    i, len, r->record_max);
	}
	/* the item is usable: only now does its file take its name */
	if (media && file_place(rq, media->path, err, sizeof(err)) != PB_OK) {
		pb_relay_records_free(recs, n);
		return answer_error(rq, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "%s; nothing is lost, call again", err);
	}
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
	if (e == PB_ERR_INVALID)
		return answer_error(rq, conn, MHD_HTTP_CONTENT_TOO_LARGE, "%s",
				    err);
	if (e)
		return answer_error(rq, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "%s; nothing is lost, call again", err);
	if (rq->method == PB_RELAY_M_STATUS)
		return answer(rq, conn, MHD_HTTP_OK,
			      json_pack("{s:b, s:n}", "status", 1, "error"));
	return answer(rq, conn, MHD_HTTP_OK,
		      json_pack("{s:b, s:s}", "status", 1, "error", ""));
}

static enum MHD_Result do_upload(pb_relay_t *r, request_t *rq,
				 struct MHD_Connection *conn,
				 const json_t *payload)
{
	if (!rq->file_seen)
		return do_items(r, rq, conn, payload, NULL);
	/* the uuId the item will carry names the file */
	const char *uuid = json_string_value(json_object_get(payload, "uuId"));
	char derived[65];
	if (!uuid) {
		if (!pb_relay_derived_uuid(payload, derived))
			return answer_error(rq, conn,
					    MHD_HTTP_SERVICE_UNAVAILABLE,
					    "out of memory");
		uuid = derived;
	}
	char path[768], sha[65], err[512];
	if (file_seal(rq, uuid, path, sizeof(path), sha, err, sizeof(err)))
		return answer_error(rq, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "%s; nothing is lost, call again", err);
	pb_relay_media_t media = {.path = path,
				  .sha256 = sha,
				  .bytes = rq->file_bytes,
				  .content_type =
				      rq->file_type[0] ? rq->file_type : NULL};
	return do_items(r, rq, conn, payload, &media);
}

/* ---- getWorkOrders
 * ---------------------------------------------------------------
 */

/* A streamed answer: {"workOrders":[ page... ],"error":""}. */
typedef struct gwo {
	pb_relay_t *relay;
	char account[129];
	int64_t since_ms, until_ms;
	pb_state_cursor_t cur; /* how far the index is read */
	bool any;	       /* an order was written */
	bool done;	       /* the tail is written */
	pb_jtext_t buf;
	size_t pos; /* of buf sent */
} gwo_t;

/* One order of the answer: its last pushed fields, workOrderNumber set. */
static void gwo_order(gwo_t *g, const pb_state_changed_t *c)
{
	json_t *o = json_loads(c->pushed, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		return; /* not an object: nothing Pruvan could import */
	}
	json_object_set_new(o, "workOrderNumber", json_string(c->won));
	if (g->any)
		pb_jt_lit(&g->buf, ",");
	pb_jt_json(&g->buf, o, false);
	g->any = true;
	json_decref(o);
}

/* Read the next page into buf. */
static pb_err_t gwo_page(gwo_t *g, char *errstr, size_t errstr_size)
{
	pb_relay_t *r = g->relay;
	pb_state_changed_t *c = NULL;
	size_t n = 0;
	pthread_mutex_lock(&r->state_mu);
	pb_err_t e = pb_state_changed_page(
	    r->state, g->account, g->since_ms, g->until_ms, &g->cur,
	    PB_RELAY_WORK_ORDERS_PAGE, &c, &n, errstr, errstr_size);
	pthread_mutex_unlock(&r->state_mu);
	if (e)
		return e;
	for (size_t i = 0; i < n; i++)
		gwo_order(g, &c[i]);
	pb_state_changed_free(c, n);
	if (g->cur.done) {
		pb_jt_lit(&g->buf, "],\"error\":\"\"}");
		g->done = true;
	}
	return g->buf.bad
		   ? pb_errf(errstr, errstr_size, PB_ERR_NOMEM, "out of memory")
		   : PB_OK;
}

/* @locality: MHD, on the connection's thread, as the client reads. */
static ssize_t gwo_read(void *cls, uint64_t pos, char *out, size_t max)
{
	gwo_t *g = cls;
	(void)pos;
	while (g->pos == g->buf.len) {
		if (g->done)
			return MHD_CONTENT_READER_END_OF_STREAM;
		g->buf.len = 0;
		g->pos = 0;
		char err[256];
		if (gwo_page(g, err, sizeof(err)) != PB_OK) {
			/* the status line is gone: all that is left is to cut
			 * the answer short, which Pruvan sees as a failure */
			pb_log(PB_LOG_WARN, "getWorkOrders answer cut short",
			       "account", g->account, "error", err,
			       "what_to_do", "check Redis; Pruvan asks again",
			       NULL);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
	}
	size_t n = g->buf.len - g->pos;
	if (n > max)
		n = max;
	memcpy(out, g->buf.p + g->pos, n);
	g->pos += n;
	return (ssize_t)n;
}

static void gwo_free(void *cls)
{
	gwo_t *g = cls;
	pb_state_cursor_clear(&g->cur);
	free(g->buf.p);
	free(g);
}

static enum MHD_Result do_get_work_orders(pb_relay_t *r, request_t *rq,
					  struct MHD_Connection *conn,
					  const json_t *payload)
{
	int64_t since;
	if (pb_relay_since_ms(payload, &since) != PB_OK)
		return answer_error(rq, conn, MHD_HTTP_BAD_REQUEST,
				    "timestamp must be Unix seconds or null");
	gwo_t *g = calloc(1, sizeof(*g));
	if (!g)
		return answer_error(rq, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "out of memory");
	g->relay = r;
	pb_strlcpy(g->account, rq->account, sizeof(g->account));
	g->since_ms = since;
	g->until_ms = pb_wall_ms(); /* later changes: the next call */
	pb_jt_lit(&g->buf, "{\"workOrders\":[");
	/* the first page before the status line: Redis down is a 503 */
	char err[256];
	if (gwo_page(g, err, sizeof(err)) != PB_OK) {
		gwo_free(g);
		return answer_error(rq, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				    "cannot read the orders: %s; call again",
				    err);
	}
	struct MHD_Response *resp = MHD_create_response_from_callback(
	    MHD_SIZE_UNKNOWN, RELAY_STREAM_BLOCK, gwo_read, g, gwo_free);
	if (!resp) {
		gwo_free(g);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, CT_JSON);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				"no-store");
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	count_request(rq, MHD_HTTP_OK);
	return ret;
}

/* ---- dispatch
 * ---------------------------------------------------------------------
 */

/*
 * A multipart body that stopped short of its closing boundary (cut by the
 * client or a proxy, with a Content-Length that matches the cut), or with
 * a part MHD could not read, would otherwise be answered 200 with a
 * truncated file or none. MHD tells on destroying the post processor. It
 * counts data after the closing boundary as malformed too, so an epilogue
 * (RFC 2046 allows one) never reaches it (body_chunk, relay_mpend.h); an
 * urlencoded body has no such end.
 */
static bool multipart_complete(request_t *rq)
{
	if (rq->mode != BODY_FORM || rq->urlencoded || !rq->pp)
		return true;
	enum MHD_Result done = MHD_destroy_post_processor(rq->pp);
	rq->pp = NULL;
	return done == MHD_YES;
}

/* The last call: the whole body is in; check, run the method, answer. */
static enum MHD_Result finish(pb_relay_t *r, request_t *rq,
			      struct MHD_Connection *conn)
{
	if (rq->problem == RQ_PAYLOAD_TOO_BIG || rq->problem == RQ_FILE_TOO_BIG)
		return answer_error(rq, conn, MHD_HTTP_CONTENT_TOO_LARGE, "%s",
				    rq->problem_msg);
	if (!multipart_complete(rq))
		return answer_error(
		    rq, conn, MHD_HTTP_BAD_REQUEST,
		    "the multipart body ends before its closing "
		    "boundary or is malformed: send the whole "
		    "body again");
	enum MHD_Result ret = MHD_NO;
	json_t *payload = payload_of(rq, conn, &ret);
	if (!payload)
		return ret;
	if (!pb_relay_credentials_ok(rq->acct, payload)) {
		json_decref(payload);
		json_budget_give(rq);
		if (!rq->acct->relay_username)
			pb_log(PB_LOG_WARN,
			       "relay call for an account without relay "
			       "credentials",
			       "account", rq->account, "what_to_do",
			       "set accounts.NAME.relay {username, password, "
			       "token} as in Pruvan's setup screen",
			       NULL);
		return answer_error(rq, conn, MHD_HTTP_UNAUTHORIZED, "%s",
				    BAD_CREDENTIALS);
	}
	switch (rq->method) {
	case PB_RELAY_M_VALIDATE:
		ret = do_validate(r, rq, conn, payload);
		break;
	case PB_RELAY_M_GET_WORK_ORDERS:
		ret = do_get_work_orders(r, rq, conn, payload);
		break;
	case PB_RELAY_M_STATUS:
		ret = do_items(r, rq, conn, payload, NULL);
		break;
	case PB_RELAY_M_UPLOAD_PICTURES:
		ret = rq->problem == RQ_MEDIA_IO
			  ? answer_error(rq, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
					 "%s; nothing is lost, call again",
					 rq->problem_msg)
			  : do_upload(r, rq, conn, payload);
		break;
	default:
		ret = answer_error(rq, conn, MHD_HTTP_NOT_FOUND,
				   "unknown method");
	}
	json_decref(payload);
	json_budget_give(rq);
	return ret;
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
		rq->fd = -1;
		*con_cls = rq;
		return begin(r, rq, conn, url, method);
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		return body_chunk(rq, upload_data, n);
	}
	if (rq->body_too_big)
		return answer_error(
		    rq, conn, MHD_HTTP_CONTENT_TOO_LARGE,
		    "the body is larger than relay.maxBodyBytes "
		    "(%" PRId64 " bytes)",
		    r->cfg->relay_max_body_bytes);
	return finish(r, rq, conn);
}

/* ---- lifecycle
 * -------------------------------------------------------------------
 */

/*
 * Uploads still being written are ".upload-..." files in the media store;
 * one whose replica was killed mid-upload stays there. At start, those
 * older than RELAY_STALE_UPLOAD_S go: no upload lasts that long (each read
 * waits RELAY_CONNECTION_TIMEOUT_S at most, the file is bounded), so a
 * replica sharing the volume never loses one it is writing.
 */
static void stale_uploads_remove(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	time_t now = time(NULL);
	int removed = 0;
	for (struct dirent *e; (e = readdir(d));) {
		struct stat st;
		char p[1024];
		if (strncmp(e->d_name, ".upload-", 8) != 0 ||
		    snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) >=
			(int)sizeof(p) ||
		    lstat(p, &st) != 0 || !S_ISREG(st.st_mode) ||
		    now - st.st_mtime < RELAY_STALE_UPLOAD_S)
			continue;
		removed += unlink(p) == 0;
	}
	closedir(d);
	if (removed) {
		char n[16];
		snprintf(n, sizeof(n), "%d", removed);
		pb_log(PB_LOG_INFO,
		       "removed uploads left unfinished by a stopped replica",
		       "dir", dir, "files", n, NULL);
	}
}

/* mkdir -p, quietly: a store that cannot be made is reported per upload. */
static void media_dir_make(const char *dir)
{
	char p[512];
	pb_strlcpy(p, dir, sizeof(p));
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		mkdir(p, 0750);
		*s = '/';
	}
	if (mkdir(p, 0750) != 0 && errno != EEXIST)
		pb_log(PB_LOG_WARN, "cannot create relay.mediaDir", "dir", dir,
		       "error", strerror(errno), "what_to_do",
		       "mount a writable volume there; uploads answer 503 "
		       "until then",
		       NULL);
}

static void producer_setup(rd_kafka_conf_t *kc, void *opaque)
{
	(void)opaque;
	rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
}

static pb_err_t producer_new(pb_relay_t *r, char *errstr, size_t errstr_size)
{
	char timeout[16];
	snprintf(timeout, sizeof(timeout), "%d", r->cfg->relay_ack_timeout_ms);
	/* linger.ms: every relay call waits for its records' acknowledgement
	 * before Pruvan gets its answer; 1 ms (bench/relay.sh) answers a lone
	 * call in 1.5 ms instead of 5.6 and serves 8 concurrent callers 3x
	 * faster than 5, while 0 sends a request per record under load. */
	static const pb_kafka_prop_t defaults[] = {{"linger.ms", "1", false}};
	/* The guarantees the answer to Pruvan rests on: not overridable; a
	 * record not acknowledged in time fails instead of lingering after
	 * Pruvan was told 503. */
	const pb_kafka_prop_t fixed[] = {
	    {"enable.idempotence", "true", false},
	    {"acks", "all", false},
	    {"message.timeout.ms", timeout, false},
	};
	const pb_kafka_client_spec_t spec = {
	    .role = PB_KAFKA_PRODUCER,
	    .name = "relay producer",
	    .defaults = defaults,
	    .n_defaults = sizeof(defaults) / sizeof(defaults[0]),
	    .fixed = fixed,
	    .n_fixed = sizeof(fixed) / sizeof(fixed[0]),
	    .setup = producer_setup,
	};
	return pb_kafka_client_new(r->cfg, &spec, &r->producer, errstr,
				   errstr_size);
}

pb_err_t pb_relay_start(const pb_config_t *cfg, pb_metrics_t *metrics,
			pb_relay_t **relay_out, char *errstr,
			size_t errstr_size)
{
	if (!cfg || !metrics || !relay_out)
		return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			       "pb_relay_start: cfg, metrics and relay_out "
			       "required");
	if (!cfg->relay_listen)
		return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
			       "the relay web service needs relay.listen");
	pb_err_t err;
	pb_relay_t *r = calloc(1, sizeof(*r));
	if (!r)
		return pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			       "out of memory");
	r->cfg = cfg;
	r->metrics = metrics;
	atomic_init(&r->stop, 0);
	atomic_init(&r->upload_seq, 0);
	pthread_mutex_init(&r->state_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&r->json_mu, NULL);
	pthread_cond_init(&r->json_cv, &ca);
	pthread_condattr_destroy(&ca);
	r->json_budget =
	    RELAY_JSON_BUDGET_CALLS * (size_t)cfg->relay_max_payload_bytes;
	pb_metrics_declare_standard(metrics);
	media_dir_make(cfg->relay_media_dir);
	stale_uploads_remove(cfg->relay_media_dir);
	/* the same Redis as the pipeline's: TLS, ACL user, Sentinel, Cluster */
	err = pb_state_new_config(cfg, RELAY_REDIS_TIMEOUT_MS, &r->state,
				  errstr, errstr_size);
	if (err)
		goto fail;
	err = producer_new(r, errstr, errstr_size);
	if (err)
		goto fail;
	/* an item larger than this would be refused by Kafka on every
	 * call Pruvan repeats: 413 instead of 503 */
	r->record_max = pb_produce_record_max(pb_kafka_client_conf_i64(
	    r->producer, "message.max.bytes", 1000000));
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
	pb_state_destroy(r->state);
	pthread_mutex_destroy(&r->state_mu);
	pthread_cond_destroy(&r->json_cv);
	pthread_mutex_destroy(&r->json_mu);
	free(r);
}
