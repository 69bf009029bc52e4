/*
 * pusher.c: Pruvan HTTP pushes over libcurl multi (see pusher.h).
 *
 * Data structures, per account:
 *   queue    FIFO of jobs waiting for a batch;
 *   retries  batches waiting for their backoff (or split halves, due now);
 *   in_flight requests on the wire, bounded by pruvan.maxInFlight;
 *   circuit  consecutive failures, open-until time, probe in flight.
 * A batch owns its jobs from the moment it is formed until it finishes
 * (all jobs handed back) or is split (jobs move to two new batches).
 *
 * Invariants: every submitted job is handed back exactly once (done
 * callback) or taken back (pb_pusher_take_queued); a job is never in two
 * batches; attempts counts real sends only.
 */
#include "pusher.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "jtext.h"
#include "push_body.h"
#include "util.h"

#define BODY_MAX (1 << 20) /* responses larger than this are cut */

typedef struct batch {
	struct batch *next;
	struct batch *fly_next; /* list of requests on the wire */
	struct acct_state *as;
	pb_push_job_t **jobs;
	int n;
	int attempts;
	int64_t not_before;
	int64_t started_ms;
	char *body; /* what is sent (form text, or the JSON for json and
		       multipart); built once, kept across retries */
	size_t body_len;
	curl_mime *mime; /* multipart: the form of the request on the wire */
	CURL *easy;
	struct curl_slist *headers;
	char *resp;
	size_t resp_len;
	long retry_after_s; /* -1: none */
	char curl_err[CURL_ERROR_SIZE];
} batch_t;

typedef struct acct_state {
	const pb_account_t *acct;
	pb_push_job_t *q_head, *q_tail;
	int q_len;
	batch_t *retries; /* unsorted; scanned (short) */
	int in_flight;
	int consecutive_failures;
	int64_t open_until; /* 0: closed */
	bool probing;
	char labels[256];
	char *url; /* owned: a learned PushKey URL (pb_pusher_set_url) */
} acct_state_t;

struct pb_pusher {
	const pb_config_t *cfg;
	pb_metrics_t *metrics;
	pb_push_done_cb done;
	void *done_opaque;
	CURLM *multi;
	acct_state_t *accts;
	size_t n_accts;
	size_t pending;
	uint64_t requests;
	uint64_t rng;
	bool flush_all;
	batch_t *flying;
	pb_jtext_t json; /* scratch for a batch's JSON text, reused */
};

/* ---- helpers ----------------------------------------------------------- */

/* Where the account's pushes go; NULL while a learned key is awaited (its
 * jobs wait in the queue). */
static const char *url_of(const acct_state_t *as)
{
	return as->url ? as->url : as->acct->push_key_url;
}

static uint64_t rng_next(pb_pusher_t *p)
{
	/* xorshift64*: jitter only, no need for more */
	p->rng ^= p->rng >> 12;
	p->rng ^= p->rng << 25;
	p->rng ^= p->rng >> 27;
	return p->rng * 2685821657736338717ULL;
}

static acct_state_t *acct_of(pb_pusher_t *p, const pb_account_t *a)
{
	for (size_t i = 0; i < p->n_accts; i++)
		if (p->accts[i].acct == a)
			return &p->accts[i];
	return NULL;
}

static void batch_free(batch_t *b)
{
	if (!b)
		return;
	free(b->jobs);
	free(b->body);
	free(b->resp);
	curl_mime_free(b->mime);
	if (b->headers)
		curl_slist_free_all(b->headers);
	free(b);
}

static void hand_back(pb_pusher_t *p, pb_push_job_t *j)
{
	p->pending--;
	j->next = NULL;
	p->done(j, p->done_opaque);
}

/* Finish every job of b with the same verdict, then free b. */
static void finish_batch(pb_pusher_t *p, batch_t *b, bool ok,
			 const pb_pruvan_result_t *res, const char *reason,
			 const char *message, long http_status)
{
	for (int i = 0; i < b->n; i++) {
		pb_push_job_t *j = b->jobs[i];
		j->ok = ok;
		if (res)
			j->result = *res;
		j->batch_size = b->n;
		j->http_status = http_status;
		j->attempts = b->attempts;
		j->fail_reason = ok ? NULL : reason;
		pb_strlcpy(j->message, message ? message : "",
			   sizeof(j->message));
		size_t bl = b->resp_len < sizeof(j->body_start) - 1
				? b->resp_len
				: sizeof(j->body_start) - 1;
		if (b->resp)
			memcpy(j->body_start, b->resp, bl);
		j->body_start[b->resp ? bl : 0] = '\0';
	}
	for (int i = 0; i < b->n; i++)
		hand_back(p, b->jobs[i]);
	batch_free(b);
}

/* ---- lifecycle --------------------------------------------------------- */

pb_err_t pb_pusher_new(const pb_config_t *cfg, pb_metrics_t *metrics,
		       pb_push_done_cb done, void *done_opaque,
		       pb_pusher_t **out, char *errstr, size_t errstr_size)
{
	pb_pusher_t *p = calloc(1, sizeof(*p));
	if (!p)
		return PB_ERR_NOMEM;
	p->cfg = cfg;
	p->metrics = metrics;
	p->done = done;
	p->done_opaque = done_opaque;
	p->rng = (uint64_t)pb_wall_ms() ^ ((uint64_t)getpid() << 32) ^
		 0x9e3779b97f4a7c15ULL;
	p->multi = curl_multi_init();
	p->n_accts = cfg->accounts_len;
	p->accts = calloc(p->n_accts ? p->n_accts : 1, sizeof(*p->accts));
	if (!p->multi || !p->accts) {
		pb_pusher_destroy(p);
		return pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			       "cannot set up the HTTP client");
	}
	for (size_t i = 0; i < p->n_accts; i++) {
		p->accts[i].acct = &cfg->accounts[i];
		pb_metrics_labels(p->accts[i].labels,
				  sizeof(p->accts[i].labels), "account",
				  cfg->accounts[i].name, NULL);
		/* a closed circuit is a series too: alerts need the 0 */
		pb_metrics_set(metrics, "pruvan_bridge_circuit_open",
			       p->accts[i].labels, 0);
	}
	/* Keep connections to Pruvan open across requests. */
	curl_multi_setopt(
	    p->multi, CURLMOPT_MAXCONNECTS,
	    (long)(cfg->pruvan_max_in_flight * (int)(p->n_accts + 1)));
	*out = p;
	return PB_OK;
}

/* Moves the jobs of b onto the list out. */
static pb_push_job_t *take_jobs(batch_t *b, pb_push_job_t *out)
{
	for (int k = 0; k < b->n; k++) {
		b->jobs[k]->next = out;
		out = b->jobs[k];
	}
	b->n = 0;
	return out;
}

pb_push_job_t *pb_pusher_destroy(pb_pusher_t *p)
{
	if (!p)
		return NULL;
	/* abandon requests on the wire and retries: their jobs belong to the
	 * caller, which is shutting down, and go back to it */
	pb_push_job_t *out = NULL;
	while (p->flying) {
		batch_t *b = p->flying;
		p->flying = b->fly_next;
		curl_multi_remove_handle(p->multi, b->easy);
		curl_easy_cleanup(b->easy);
		out = take_jobs(b, out);
		batch_free(b);
	}
	for (size_t i = 0; i < p->n_accts; i++) {
		batch_t *b = p->accts[i].retries;
		while (b) {
			batch_t *nx = b->next;
			out = take_jobs(b, out);
			batch_free(b);
			b = nx;
		}
		pb_push_job_t *j = p->accts[i].q_head;
		while (j) {
			pb_push_job_t *nx = j->next;
			j->next = out;
			out = j;
			j = nx;
		}
	}
	if (p->multi)
		curl_multi_cleanup(p->multi);
	for (size_t i = 0; i < p->n_accts; i++)
		free(p->accts[i].url);
	free(p->accts);
	free(p->json.p);
	free(p);
	return out;
}

void pb_pusher_submit(pb_pusher_t *p, pb_push_job_t *job)
{
	acct_state_t *as = acct_of(p, job->acct);
	job->next = NULL;
	job->ok = false;
	job->attempts = 0;
	job->fail_reason = NULL;
	job->message[0] = job->body_start[0] = '\0';
	job->http_status = 0;
	memset(&job->result, 0, sizeof(job->result));
	job->enqueued_ms = pb_mono_ms();
	p->pending++;
	if (!as) {
		job->fail_reason = "http_error";
		pb_strlcpy(job->message, "account has no PushKey configured",
			   sizeof(job->message));
		hand_back(p, job);
		return;
	}
	if (as->q_tail)
		as->q_tail->next = job;
	else
		as->q_head = job;
	as->q_tail = job;
	as->q_len++;
}

size_t pb_pusher_pending(const pb_pusher_t *p)
{
	return p->pending;
}

uint64_t pb_pusher_requests(const pb_pusher_t *p)
{
	return p->requests;
}

int pb_pusher_circuits_open(const pb_pusher_t *p)
{
	int n = 0;
	int64_t now = pb_mono_ms();
	for (size_t i = 0; i < p->n_accts; i++)
		if (p->accts[i].open_until && p->accts[i].open_until > now)
			n++;
	return n;
}

void pb_pusher_flush(pb_pusher_t *p)
{
	p->flush_all = true;
}

/* ---- sending ----------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	batch_t *b = ud;
	size_t n = size * nmemb;
	if (b->resp_len + n > BODY_MAX)
		return n; /* keep the start, drop the rest (bounded) */
	char *r = realloc(b->resp, b->resp_len + n + 1);
	if (!r)
		return 0;
	memcpy(r + b->resp_len, data, n);
	b->resp = r;
	b->resp_len += n;
	b->resp[b->resp_len] = '\0';
	return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	batch_t *b = ud;
	size_t n = size * nmemb;
	if (n > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
		char v[32];
		size_t l = n - 12 < sizeof(v) - 1 ? n - 12 : sizeof(v) - 1;
		memcpy(v, data + 12, l);
		v[l] = '\0';
		char *end;
		long s = strtol(v, &end, 10);
		if (end != v && s >= 0)
			b->retry_after_s = s > 3600 ? 3600 : s;
	}
	return n;
}

/* Copy of n bytes of s, NUL-terminated. */
static char *dup_bytes(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/*
 * b->body for the account's bodyEncoding (contract section 8): the JSON
 * object {"workOrders":[...]} as it is (json, and multipart, which puts it
 * in a part), or as the urlencoded field workOrders (form). The JSON is
 * written into the pusher's scratch buffer, so only the body itself is
 * allocated. False when out of memory or an order cannot be written.
 */
static bool build_body(pb_pusher_t *p, const pb_account_t *a, batch_t *b)
{
	pb_jtext_t *t = &p->json;
	t->len = 0;
	t->bad = false;
	pb_jt_lit(t, "{\"workOrders\":[");
	for (int i = 0; i < b->n; i++) {
		if (i)
			pb_jt_put(t, ",", 1);
		if (b->jobs[i]->work_order_text)
			pb_jt_lit(t, b->jobs[i]->work_order_text);
		else
			pb_jt_json(t, b->jobs[i]->work_order, false);
	}
	pb_jt_lit(t, "]}");
	if (t->bad || !t->p)
		return false;
	if (a->body_encoding != PB_BODY_FORM) {
		b->body = dup_bytes(t->p, t->len);
		b->body_len = t->len;
		return b->body != NULL;
	}
	size_t n = pb_push_form_len(t->p, t->len);
	b->body = malloc(n + 1);
	if (!b->body)
		return false;
	b->body_len = pb_push_form_write(t->p, t->len, b->body);
	return true;
}

/* The request's body and headers as the account's bodyEncoding wants. */
static bool set_body(batch_t *b, CURL *e, pb_body_encoding_t enc)
{
	const char *ctype = NULL;
	if (enc == PB_BODY_MULTIPART) {
		b->mime = curl_mime_init(e);
		curl_mimepart *part =
		    b->mime ? curl_mime_addpart(b->mime) : NULL;
		if (!part ||
		    curl_mime_name(part, PB_PUSH_FORM_FIELD) != CURLE_OK ||
		    curl_mime_data(part, b->body, b->body_len) != CURLE_OK)
			return false;
		/* curl writes Content-Type with the boundary itself */
		curl_easy_setopt(e, CURLOPT_MIMEPOST, b->mime);
	} else {
		ctype = enc == PB_BODY_JSON
			    ? "Content-Type: application/json"
			    : "Content-Type: application/x-www-form-urlencoded";
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, b->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)b->body_len);
	}
	struct curl_slist *h = ctype ? curl_slist_append(NULL, ctype) : NULL;
	if (ctype && !h)
		return false;
	b->headers = h;
	h = curl_slist_append(b->headers, "Accept: application/json");
	if (!h)
		return false;
	b->headers = h;
	h = curl_slist_append(b->headers, "Expect:");
	if (!h)
		return false;
	b->headers = h;
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, b->headers);
	return true;
}

static bool send_batch(pb_pusher_t *p, acct_state_t *as, batch_t *b)
{
	const pb_config_t *cfg = p->cfg;
	/* a retry sends the same orders: the body built for the first send */
	if (!b->body && !build_body(p, as->acct, b))
		return false;
	free(b->resp);
	b->resp = NULL;
	b->resp_len = 0;
	b->retry_after_s = -1;
	b->curl_err[0] = '\0';
	if (b->headers) {
		curl_slist_free_all(b->headers);
		b->headers = NULL;
	}
	curl_mime_free(b->mime);
	b->mime = NULL;
	CURL *e = curl_easy_init();
	if (!e)
		return false;
	if (!set_body(b, e, as->acct->body_encoding)) {
		curl_easy_cleanup(e);
		return false;
	}
	curl_easy_setopt(e, CURLOPT_URL, url_of(as));
	curl_easy_setopt(e, CURLOPT_USERAGENT,
			 "pruvan-bridge/"
			 "0.1.0");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)cfg->pruvan_timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(cfg->pruvan_timeout_ms < 5000
				    ? cfg->pruvan_timeout_ms
				    : 5000));
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	/* pruvan.caFile: a corporate proxy's or Pruvan's CA beside the
	 * system's (the system store stays as CAPATH); pruvan.proxy, else
	 * curl reads https_proxy / no_proxy from the environment. */
	if (cfg->pruvan_ca_file) {
		curl_easy_setopt(e, CURLOPT_CAINFO, cfg->pruvan_ca_file);
		curl_easy_setopt(e, CURLOPT_CAPATH, "/etc/ssl/certs");
	}
	if (cfg->pruvan_proxy)
		curl_easy_setopt(e, CURLOPT_PROXY, cfg->pruvan_proxy);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, b);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, b->curl_err);
	curl_easy_setopt(e, CURLOPT_PRIVATE, b);
	b->easy = e;
	b->as = as;
	b->attempts++;
	b->started_ms = pb_mono_ms();
	if (curl_multi_add_handle(p->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		b->easy = NULL;
		b->attempts--;
		return false;
	}
	as->in_flight++;
	p->requests++;
	b->fly_next = p->flying;
	p->flying = b;
	pb_metrics_observe(p->metrics, "pruvan_bridge_batch_size", as->labels,
			   (double)b->n);
	return true;
}

/* Form a batch from the head of the queue. */
static batch_t *take_batch(pb_pusher_t *p, acct_state_t *as)
{
	int max = p->cfg->pruvan_batch_max_orders;
	batch_t *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->jobs = calloc((size_t)max, sizeof(*b->jobs));
	if (!b->jobs) {
		free(b);
		return NULL;
	}
	while (as->q_head && b->n < max) {
		pb_push_job_t *j = as->q_head;
		if (j->alone && b->n > 0)
			break;
		as->q_head = j->next;
		if (!as->q_head)
			as->q_tail = NULL;
		as->q_len--;
		j->next = NULL;
		b->jobs[b->n++] = j;
		if (j->alone)
			break;
	}
	b->as = as;
	return b;
}

static bool circuit_allows(acct_state_t *as, int64_t now)
{
	if (!as->open_until)
		return true;
	if (now < as->open_until)
		return false;
	/* half-open: one probe at a time */
	return !as->probing && as->in_flight == 0;
}

static void dispatch(pb_pusher_t *p, int64_t now)
{
	for (size_t i = 0; i < p->n_accts; i++) {
		acct_state_t *as = &p->accts[i];
		while (url_of(as) &&
		       as->in_flight < p->cfg->pruvan_max_in_flight &&
		       circuit_allows(as, now)) {
			batch_t *b = NULL;
			for (batch_t **pp = &as->retries; *pp;
			     pp = &(*pp)->next) {
				if ((*pp)->not_before <= now) {
					b = *pp;
					*pp = b->next;
					b->next = NULL;
					break;
				}
			}
			if (!b && as->q_head &&
			    (p->flush_all ||
			     as->q_len >= p->cfg->pruvan_batch_max_orders ||
			     as->q_head->alone ||
			     now - as->q_head->enqueued_ms >=
				 p->cfg->pruvan_batch_max_wait_ms))
				b = take_batch(p, as);
			if (!b)
				break;
			if (as->open_until)
				as->probing = true;
			if (!send_batch(p, as, b)) {
				finish_batch(p, b, false, NULL, "http_error",
					     "cannot start the HTTP request "
					     "(out of memory?)",
					     0);
			}
		}
	}
	p->flush_all = false;
}

/* ---- answers ----------------------------------------------------------- */

static int64_t backoff_ms(pb_pusher_t *p, int attempts, long retry_after_s)
{
	const pb_config_t *c = p->cfg;
	if (retry_after_s >= 0)
		return retry_after_s * 1000;
	int64_t d = c->pruvan_backoff_base_ms;
	for (int i = 1; i < attempts && d < c->pruvan_backoff_max_ms; i++)
		d *= 2;
	if (d > c->pruvan_backoff_max_ms)
		d = c->pruvan_backoff_max_ms;
	/* equal jitter: half fixed, half random */
	return d / 2 + (int64_t)(rng_next(p) % (uint64_t)(d / 2 + 1));
}

static void circuit_result(pb_pusher_t *p, acct_state_t *as, bool failure)
{
	as->probing = false;
	if (!failure) {
		as->consecutive_failures = 0;
		if (as->open_until)
			pb_metrics_set(p->metrics, "pruvan_bridge_circuit_open",
				       as->labels, 0);
		as->open_until = 0;
		return;
	}
	as->consecutive_failures++;
	if (as->open_until ||
	    as->consecutive_failures >= p->cfg->pruvan_circuit_failures) {
		as->open_until = pb_mono_ms() + p->cfg->pruvan_circuit_open_ms;
		pb_metrics_set(p->metrics, "pruvan_bridge_circuit_open",
			       as->labels, 1);
	}
}

static void retry_or_fail(pb_pusher_t *p, acct_state_t *as, batch_t *b,
			  const char *why, long http_status,
			  const char *metric_reason)
{
	char lbl[300];
	pb_metrics_labels(lbl, sizeof(lbl), "account", as->acct->name, "reason",
			  metric_reason, NULL);
	if (b->attempts >= p->cfg->pruvan_max_attempts) {
		char msg[512];
		snprintf(
		    msg, sizeof(msg),
		    "gave up after %d attempts; last: %s. Check Pruvan's "
		    "status and the account's PushKey, then replay the DLQ",
		    b->attempts, why);
		finish_batch(p, b, false, NULL, "retries_exhausted", msg,
			     http_status);
		return;
	}
	pb_metrics_add(p->metrics, "pruvan_bridge_retries_total", lbl, 1);
	b->not_before =
	    pb_mono_ms() + backoff_ms(p, b->attempts, b->retry_after_s);
	b->next = as->retries;
	as->retries = b;
}

/* Split b in two halves queued for sending now; b's shell is freed. */
static void split_batch(acct_state_t *as, batch_t *b)
{
	int half = b->n / 2;
	batch_t *h[2];
	for (int k = 0; k < 2; k++) {
		h[k] = calloc(1, sizeof(batch_t));
		int from = k == 0 ? 0 : half, to = k == 0 ? half : b->n;
		h[k]->jobs =
		    calloc((size_t)(to - from), sizeof(pb_push_job_t *));
		for (int i = from; i < to; i++)
			h[k]->jobs[h[k]->n++] = b->jobs[i];
		h[k]->attempts = b->attempts;
		h[k]->as = as;
	}
	/* second half first in the list so the first half goes first */
	h[1]->next = as->retries;
	h[0]->next = h[1];
	as->retries = h[0];
	b->n = 0;
	batch_free(b);
}

static const char *status_class(long s)
{
	if (s >= 200 && s < 300)
		return "2xx";
	if (s >= 400 && s < 500)
		return "4xx";
	if (s >= 500 && s < 600)
		return "5xx";
	return "error";
}

static void on_done(pb_pusher_t *p, CURL *e, CURLcode rc)
{
	batch_t *b = NULL;
	curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&b);
	long status = 0;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_multi_remove_handle(p->multi, e);
	curl_easy_cleanup(e);
	b->easy = NULL;
	curl_mime_free(b->mime); /* after the handle that used it */
	b->mime = NULL;
	for (batch_t **fp = &p->flying; *fp; fp = &(*fp)->fly_next) {
		if (*fp == b) {
			*fp = b->fly_next;
			break;
		}
	}
	acct_state_t *as = b->as;
	as->in_flight--;
	double secs = (double)(pb_mono_ms() - b->started_ms) / 1000.0;
	pb_metrics_observe(p->metrics, "pruvan_bridge_push_duration_seconds",
			   as->labels, secs);
	char lbl[300];
	pb_metrics_labels(
	    lbl, sizeof(lbl), "account", as->acct->name, "status_class",
	    rc == CURLE_OK ? status_class(status) : "error", NULL);
	pb_metrics_add(p->metrics, "pruvan_bridge_pushes_total", lbl, 1);
	char why[512];

	if (rc != CURLE_OK) {
		snprintf(why, sizeof(why), "%s: %s",
			 rc == CURLE_OPERATION_TIMEDOUT ? "timeout"
							: "connection error",
			 b->curl_err[0] ? b->curl_err : curl_easy_strerror(rc));
		circuit_result(p, as, true);
		retry_or_fail(p, as, b, why, 0,
			      rc == CURLE_OPERATION_TIMEDOUT ? "timeout"
							     : "connection");
		return;
	}
	if (status == 429 || status >= 500) {
		snprintf(why, sizeof(why), "HTTP %ld from Pruvan", status);
		circuit_result(p, as, true);
		retry_or_fail(p, as, b, why, status,
			      status == 429 ? "429" : "5xx");
		return;
	}
	if (status < 200 || status >= 300) {
		circuit_result(p, as, false);
		if (b->n > 1) {
			split_batch(as, b);
			return;
		}
		snprintf(
		    why, sizeof(why),
		    "Pruvan answered HTTP %ld; the request was refused and "
		    "is not retried: check the order and the PushKey",
		    status);
		finish_batch(p, b, false, NULL,
			     status >= 400 && status < 500 ? "http_4xx"
							   : "http_error",
			     why, status);
		return;
	}
	pb_pruvan_result_t res;
	char perr[256];
	if (pb_pruvan_response_parse(b->resp ? b->resp : "", b->resp_len, &res,
				     perr, sizeof(perr)) != PB_OK) {
		snprintf(why, sizeof(why), "unreadable answer from Pruvan: %s",
			 perr);
		circuit_result(p, as, true);
		retry_or_fail(p, as, b, why, status, "bad_answer");
		return;
	}
	circuit_result(p, as, false);
	if (res.has_error) {
		if (b->n > 1) {
			split_batch(as, b);
			return;
		}
		snprintf(why, sizeof(why), "Pruvan refused the order: %s",
			 res.error);
		finish_batch(p, b, false, &res, "pruvan_error", why, status);
		return;
	}
	finish_batch(p, b, true, &res, NULL, NULL, status);
}

static int64_t next_due(pb_pusher_t *p, int64_t now)
{
	int64_t due = INT64_MAX;
	for (size_t i = 0; i < p->n_accts; i++) {
		acct_state_t *as = &p->accts[i];
		if (as->open_until && as->open_until > now) {
			if (as->q_head || as->retries)
				due =
				    due < as->open_until ? due : as->open_until;
			continue;
		}
		if (as->in_flight >= p->cfg->pruvan_max_in_flight ||
		    !url_of(as))
			continue;
		for (batch_t *b = as->retries; b; b = b->next)
			due = due < b->not_before ? due : b->not_before;
		if (as->q_head) {
			int64_t d = as->q_head->enqueued_ms +
				    p->cfg->pruvan_batch_max_wait_ms;
			due = due < d ? due : d;
		}
	}
	return due;
}

pb_err_t pb_pusher_poll(pb_pusher_t *p, struct curl_waitfd *extra,
			unsigned n_extra, int timeout_ms)
{
	int64_t now = pb_mono_ms();
	dispatch(p, now);
	int running = 0;
	curl_multi_perform(p->multi, &running);
	int64_t due = next_due(p, now);
	int wait = timeout_ms;
	if (due != INT64_MAX) {
		int64_t d = due - now;
		if (d < 0)
			d = 0;
		if (d < wait)
			wait = (int)d;
	}
	if (wait > 0) {
		int numfds = 0;
		CURLMcode mc =
		    curl_multi_poll(p->multi, extra, n_extra, wait, &numfds);
		if (mc != CURLM_OK)
			return PB_ERR_HTTP;
	}
	curl_multi_perform(p->multi, &running);
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(p->multi, &left))) {
		if (m->msg == CURLMSG_DONE)
			on_done(p, m->easy_handle, m->data.result);
	}
	dispatch(p, pb_mono_ms());
	curl_multi_perform(p->multi, &running);
	return PB_OK;
}

pb_push_job_t *pb_pusher_take_queued(pb_pusher_t *p,
				     bool (*pred)(pb_push_job_t *, void *),
				     void *pred_opaque)
{
	pb_push_job_t *out = NULL;
	for (size_t i = 0; i < p->n_accts; i++) {
		acct_state_t *as = &p->accts[i];
		pb_push_job_t **pp = &as->q_head, *last = NULL;
		while (*pp) {
			pb_push_job_t *j = *pp;
			if (pred(j, pred_opaque)) {
				*pp = j->next;
				as->q_len--;
				p->pending--;
				j->next = out;
				out = j;
			} else {
				last = j;
				pp = &j->next;
			}
		}
		as->q_tail = last;
		/* batches waiting for a retry: take them whole when every
		 * job in them matches */
		for (batch_t **bp = &as->retries; *bp;) {
			batch_t *b = *bp;
			bool all = b->n > 0;
			for (int k = 0; k < b->n && all; k++)
				all = pred(b->jobs[k], pred_opaque);
			if (!all) {
				bp = &b->next;
				continue;
			}
			*bp = b->next;
			for (int k = 0; k < b->n; k++) {
				b->jobs[k]->next = out;
				out = b->jobs[k];
				p->pending--;
			}
			b->n = 0;
			batch_free(b);
		}
	}
	return out;
}

pb_err_t pb_pusher_set_url(pb_pusher_t *p, const pb_account_t *acct,
			   const char *url)
{
	acct_state_t *as = acct_of(p, acct);
	if (!as)
		return PB_ERR_NOT_FOUND;
	char *dup = url ? strdup(url) : NULL;
	if (url && !dup)
		return PB_ERR_NOMEM;
	free(as->url);
	as->url = dup;
	return PB_OK;
}
