/*
 * state.c: Redis state, one pipelined round trip per call (see state.h).
 *
 * The connection (redis_conn.h: TCP, unix socket or TLS, one node,
 * Sentinel's master or a whole Cluster) has connect and command timeouts;
 * commands are formatted here as RESP and replies parsed by hiredis.
 * Redis sits next to the worker and a pipelined batch costs one network
 * round trip, which is far below the Pruvan push it guards. After any
 * transport error the connection is dropped and the next call reconnects,
 * so a restarted Redis or a failover is picked up without a restart of
 * the worker.
 *
 * Must never: log, block without a timeout, or leave a reply unread (an
 * unread reply would shift every later answer of the pipeline).
 */
#include "state.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "jtext.h"
#include "outcome.h"
#include "redis_conn.h"
#include "util.h"

struct pb_state {
	pb_redis_t *redis; /* where and how to connect (redis_conn.h) */
	char *prefix;
	int64_t ttl;
	int timeout_ms;
	int min_replicas; /* a commit waits for that many (WAIT) */
	int wait_timeout_ms;
	pb_rconn_t *c;
	uint64_t conn_id;   /* which connection c is (replies belong to one) */
	size_t outstanding; /* replies queued on c and not read yet */
	bool unflushed;	    /* commands appended and not written yet */
	uint64_t round_trips;
	/* replies read ahead by pb_state_pump, oldest at got[got_head] */
	redisReply **got;
	size_t got_head, got_len, got_cap;
};

/* ---- keys -------------------------------------------------------------- */

/* The concatenation of k strings; keys are built for every event and
 * snprintf was measurable. */
static char *key_cat(const char *const *p, size_t k)
{
	size_t len[8], n = 1;
	for (size_t i = 0; i < k; i++)
		n += len[i] = strlen(p[i]);
	char *s = malloc(n), *o = s;
	if (!s)
		return NULL;
	for (size_t i = 0; i < k; i++) {
		memcpy(o, p[i], len[i]);
		o += len[i];
	}
	*o = '\0';
	return s;
}

/* PREFIX{ACCOUNT/WON}:o */
static char *key_order(const pb_state_t *st, const char *a, const char *w)
{
	const char *p[] = {st->prefix, "{", a, "/", w, "}:o"};
	return key_cat(p, 6);
}

/* PREFIX{ACCOUNT/WON}:m:EVENTID */
static char *key_mark(const pb_state_t *st, const char *a, const char *w,
		      const char *id)
{
	const char *p[] = {st->prefix, "{", a, "/", w, "}:m:", id};
	return key_cat(p, 7);
}

/* A mark's value: "S|OUTCOME|REASON|HTTP|ATTEMPTS" (state.h). Outcomes and
 * reasons are the worker's own identifiers, never containing '|'. */
/* The stored form of an outcome or a reason: its code (outcome.h) when it
 * has one, else the name as it is (a reason the table does not know). */
static const char *mark_code(const char *name, bool outcome, char *buf)
{
	pb_outcome_t o;
	pb_reason_t r;
	size_t n = name ? strlen(name) : 0;
	if (!n)
		return "";
	if (outcome ? pb_outcome_parse(name, n, &o)
		    : pb_reason_parse(name, n, &r)) {
		pb_i64_text(buf, outcome ? (int64_t)o : (int64_t)r);
		return buf;
	}
	return name;
}

/* "S|OUTCOME|REASON|HTTP|ATTEMPTS", outcome and reason as codes. */
static char *mark_value(char s, const char *outcome, const char *reason,
			int http_status, int attempts)
{
	char h[24], a[24], oc[24], rc[24];
	pb_i64_text(h, http_status);
	pb_i64_text(a, attempts);
	const char *p[] = {s == 'P' ? "P|" : "D|",
			   mark_code(outcome, true, oc),
			   "|",
			   mark_code(reason, false, rc),
			   "|",
			   h,
			   "|",
			   a};
	return key_cat(p, 8);
}

/* PREFIX{ACCOUNT}:WHAT */
static char *key_account(const pb_state_t *st, const char *a, const char *what)
{
	const char *p[] = {st->prefix, "{", a, "}:", what};
	return key_cat(p, 5);
}

/* ---- connection -------------------------------------------------------- */

static void drop_conn(pb_state_t *st)
{
	pb_rconn_close(st->c);
	st->c = NULL;
	for (size_t i = st->got_head; i < st->got_len; i++)
		freeReplyObject(st->got[i]);
	st->got_head = st->got_len = 0;
	st->outstanding = 0;
	st->unflushed = false;
}

/* Connect when not connected; on a failure errstr names the step (DNS,
 * TCP, TLS, AUTH, protocol) and *fail (may be NULL) says which. */
static pb_err_t ensure_conn_step(pb_state_t *st, pb_rc_fail_t *fail,
				 char *errstr, size_t errstr_size)
{
	if (fail)
		*fail = PB_RC_OK;
	if (st->c)
		return PB_OK;
	pb_err_t err =
	    pb_redis_dial(st->redis, &st->c, fail, errstr, errstr_size);
	if (err)
		return err;
	st->conn_id++;
	return PB_OK;
}

static pb_err_t ensure_conn(pb_state_t *st, char *errstr, size_t errstr_size)
{
	return ensure_conn_step(st, NULL, errstr, errstr_size);
}

pb_err_t pb_state_new_redis(const pb_redis_opts_t *opts, const char *prefix,
			    int64_t ttl_seconds, int min_replicas,
			    int wait_timeout_ms, pb_state_t **out, char *errstr,
			    size_t errstr_size)
{
	pb_state_t *st = calloc(1, sizeof(*st));
	if (!st)
		return PB_ERR_NOMEM;
	st->prefix = strdup(prefix ? prefix : "pb:");
	st->ttl = ttl_seconds > 0 ? ttl_seconds : 604800;
	st->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 2000;
	st->min_replicas = min_replicas > 0 ? min_replicas : 0;
	st->wait_timeout_ms = wait_timeout_ms > 0 ? wait_timeout_ms : 1000;
	pb_redis_opts_t o = *opts;
	o.timeout_ms = st->timeout_ms;
	pb_err_t err = st->prefix
			   ? pb_redis_new(&o, &st->redis, errstr, errstr_size)
			   : PB_ERR_NOMEM;
	if (err) {
		pb_state_destroy(st);
		return err;
	}
	*out = st;
	return PB_OK;
}

pb_err_t pb_state_new(const char *url, const char *prefix, int64_t ttl_seconds,
		      int timeout_ms, pb_state_t **out, char *errstr,
		      size_t errstr_size)
{
	pb_redis_opts_t o = {.url = url, .timeout_ms = timeout_ms};
	return pb_state_new_redis(&o, prefix, ttl_seconds, 0, 0, out, errstr,
				  errstr_size);
}

pb_err_t pb_state_new_config(const pb_config_t *cfg, int timeout_ms,
			     pb_state_t **out, char *errstr, size_t errstr_size)
{
	pb_redis_opts_t o = {
	    .url = cfg->redis_url,
	    .password = cfg->redis_password,
	    .tls = cfg->redis_tls,
	    .ca_file = cfg->redis_tls_ca_file,
	    .cert_file = cfg->redis_tls_cert_file,
	    .key_file = cfg->redis_tls_key_file,
	    .server_name = cfg->redis_tls_server_name,
	    .tls_verify = cfg->redis_tls_verify,
	    .sentinel_master = cfg->redis_sentinel_master,
	    .sentinel_nodes = (const char *const *)cfg->redis_sentinel_nodes,
	    .sentinel_nodes_len = cfg->redis_sentinel_nodes_len,
	    .sentinel_password = cfg->redis_sentinel_password,
	    .cluster_nodes = (const char *const *)cfg->redis_cluster_nodes,
	    .cluster_nodes_len = cfg->redis_cluster_nodes_len,
	    .timeout_ms = timeout_ms,
	};
	pb_state_t *st = NULL;
	pb_err_t err = pb_state_new_redis(
	    &o, cfg->redis_key_prefix, cfg->dedupe_ttl_seconds,
	    cfg->redis_min_replicas, cfg->redis_wait_timeout_ms, &st, errstr,
	    errstr_size);
	if (err)
		return err;
	/* A certificate refused now is refused on every retry: fatal at
	 * start (contract section 9). Redis merely down is retried later. */
	if (pb_redis_tls(st->redis)) {
		pb_rc_fail_t fail;
		char e[512];
		if (ensure_conn_step(st, &fail, e, sizeof(e)) &&
		    fail == PB_RC_TLS_VERIFY) {
			pb_state_destroy(st);
			return pb_errf(errstr, errstr_size, PB_ERR_CONFIG, "%s",
				       e);
		}
	}
	*out = st;
	return PB_OK;
}

pb_err_t pb_state_connect(pb_state_t *st, char *errstr, size_t errstr_size)
{
	return ensure_conn(st, errstr, errstr_size);
}

void pb_state_destroy(pb_state_t *st)
{
	if (!st)
		return;
	drop_conn(st);
	free(st->got);
	pb_redis_destroy(st->redis);
	free(st->prefix);
	free(st);
}

void pb_state_disconnect(pb_state_t *st)
{
	drop_conn(st);
}

uint64_t pb_state_round_trips(const pb_state_t *st)
{
	return st->round_trips;
}

/* ---- pipelines --------------------------------------------------------- */

/*
 * A pipeline is written in RESP while it is built (arguments binary safe,
 * copied, so callers may pass temporaries) and handed to hiredis in one
 * append; replies are read back in order. Per command,
 * redisAppendCommandArgv formats through sdscatfmt into a buffer of its
 * own and copies it again, and an argv of copied arguments cost as much
 * again (docs/benchmarks.md).
 */
typedef struct {
	pb_jtext_t out; /* finished commands */
	pb_jtext_t cur; /* the arguments of the open command */
	int argc;	/* of the open command */
	bool open;
	size_t n; /* commands, the open one included */
} pipeline_t;

static void pl_close(pipeline_t *pl)
{
	if (!pl->open)
		return;
	char h[24];
	h[0] = '*';
	size_t k = 1 + pb_u64_text(h + 1, (unsigned long long)pl->argc);
	h[k++] = '\r';
	h[k++] = '\n';
	pb_jt_put(&pl->out, h, k);
	pb_jt_put(&pl->out, pl->cur.p ? pl->cur.p : "", pl->cur.len);
	if (pl->cur.bad)
		pl->out.bad = true;
	pl->cur.len = 0;
	pl->open = false;
}

/* Start the next command. */
static void pl_cmd(pipeline_t *pl)
{
	pl_close(pl);
	pl->open = true;
	pl->argc = 0;
	pl->n++;
}

static void pl_arg_len(pipeline_t *pl, const char *s, size_t len)
{
	char h[24];
	h[0] = '$';
	size_t k = 1 + pb_u64_text(h + 1, len);
	h[k++] = '\r';
	h[k++] = '\n';
	pb_jt_put(&pl->cur, h, k);
	pb_jt_put(&pl->cur, s, len);
	pb_jt_put(&pl->cur, "\r\n", 2);
	pl->argc++;
}

static void pl_arg(pipeline_t *pl, const char *s)
{
	pl_arg_len(pl, s, strlen(s));
}

static void pl_arg_i64(pipeline_t *pl, int64_t v)
{
	char b[24];
	pl_arg_len(pl, b, pb_i64_text(b, v));
}

/* Take ownership of an allocated string as the next argument. */
static void pl_arg_take(pipeline_t *pl, char *s)
{
	if (!s) {
		pl->cur.bad = true;
		return;
	}
	pl_arg(pl, s);
	free(s);
}

static void pl_free(pipeline_t *pl)
{
	free(pl->out.p);
	free(pl->cur.p);
	memset(pl, 0, sizeof(*pl));
}

static pb_err_t transport_failed(pb_state_t *st, char *errstr,
				 size_t errstr_size)
{
	(void)errstr_size; /* errstr was written by the failed call */
	(void)errstr;
	drop_conn(st);
	return PB_ERR_REDIS;
}

/* Queue pl's commands on the connection (written by pb_state_flush or the
 * first read); call says how many replies are its and on which
 * connection. */
static pb_err_t pl_send(pb_state_t *st, pipeline_t *pl, pb_state_call_t *call,
			char *errstr, size_t errstr_size)
{
	memset(call, 0, sizeof(*call));
	pl_close(pl);
	if (pl->out.bad) {
		if (st->outstanding) /* their replies would go unread */
			drop_conn(st);
		return pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			       "out of memory building a Redis pipeline");
	}
	if (pl->n == 0)
		return PB_OK;
	pb_err_t err = ensure_conn(st, errstr, errstr_size);
	if (err)
		return err;
	if (!pb_rconn_append(st->c, pl->out.p, pl->out.len)) {
		pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			"out of memory queuing a Redis pipeline");
		return transport_failed(st, errstr, errstr_size);
	}
	call->replies = pl->n;
	call->conn = st->conn_id;
	st->outstanding += pl->n;
	st->unflushed = true;
	return PB_OK;
}

/* True when a reply says the server is no longer a writable master (a
 * failover demoted it) or a Cluster node is down for its slots: the next
 * call must reconnect and ask (Sentinel, CLUSTER SLOTS) again. */
static bool demoted(redisReply **r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (r[i]->type == REDIS_REPLY_ERROR &&
		    (strncmp(r[i]->str, "READONLY", 8) == 0 ||
		     strncmp(r[i]->str, "MASTERDOWN", 10) == 0 ||
		     strncmp(r[i]->str, "CLUSTERDOWN", 11) == 0 ||
		     strncmp(r[i]->str, "LOADING", 7) == 0))
			return true;
	return false;
}

/* Read call's replies into *replies[0..call->replies) (caller frees them
 * with replies_free). On a transport error the connection is dropped and
 * no reply is returned. */
static pb_err_t pl_recv(pb_state_t *st, const pb_state_call_t *call,
			redisReply ***replies, char *errstr, size_t errstr_size)
{
	*replies = NULL;
	if (call->replies == 0)
		return PB_OK;
	if (!st->c || st->conn_id != call->conn)
		return pb_errf(errstr, errstr_size, PB_ERR_REDIS,
			       "Redis connection lost before its replies "
			       "were read");
	if (st->unflushed) {
		st->unflushed = false;
		st->round_trips++;
		if (pb_rconn_flush(st->c, errstr, errstr_size))
			return transport_failed(st, errstr, errstr_size);
	}
	redisReply **r = calloc(call->replies, sizeof(*r));
	if (!r) {
		drop_conn(st); /* its replies can no longer be matched */
		return PB_ERR_NOMEM;
	}
	for (size_t i = 0; i < call->replies; i++) {
		void *rep = NULL;
		if (st->got_head < st->got_len) {
			r[i] = st->got[st->got_head++];
			if (st->got_head == st->got_len)
				st->got_head = st->got_len = 0;
			continue;
		}
		if (pb_rconn_reply(st->c, true, (redisReply **)&rep, errstr,
				   errstr_size) ||
		    !rep) {
			for (size_t j = 0; j < i; j++)
				freeReplyObject(r[j]);
			free(r);
			return transport_failed(st, errstr, errstr_size);
		}
		r[i] = rep;
	}
	st->outstanding -= call->replies;
	*replies = r;
	if (demoted(r, call->replies))
		drop_conn(st); /* replies all read: nothing shifts */
	return PB_OK;
}

pb_err_t pb_state_flush(pb_state_t *st, char *errstr, size_t errstr_size)
{
	if (!st->c || !st->unflushed)
		return PB_OK;
	st->unflushed = false;
	st->round_trips++;
	if (pb_rconn_flush(st->c, errstr, errstr_size))
		return transport_failed(st, errstr, errstr_size);
	return PB_OK;
}

int pb_state_fd(const pb_state_t *st)
{
	return st->c && st->outstanding > st->got_len - st->got_head
		   ? pb_rconn_fd(st->c)
		   : -1;
}

void pb_state_pump(pb_state_t *st)
{
	while (st->c && st->outstanding > st->got_len - st->got_head) {
		redisReply *rep = NULL;
		char e[8];
		if (pb_rconn_reply(st->c, false, &rep, e, sizeof(e))) {
			drop_conn(st); /* the recv that follows says so */
			return;
		}
		if (!rep)
			return;
		if (st->got_len == st->got_cap) {
			size_t nc = st->got_cap ? st->got_cap * 2 : 1024;
			redisReply **g = realloc(st->got, nc * sizeof(*g));
			if (!g) {
				freeReplyObject(rep);
				drop_conn(st);
				return;
			}
			st->got = g;
			st->got_cap = nc;
		}
		st->got[st->got_len++] = rep;
	}
}

bool pb_state_ready(const pb_state_t *st, const pb_state_call_t *calls,
		    size_t n)
{
	size_t need = 0;
	for (size_t i = 0; i < n; i++) {
		if (!calls[i].replies)
			continue;
		if (!st->c || calls[i].conn != st->conn_id)
			return true; /* lost: the recv fails at once */
		need += calls[i].replies;
	}
	return st->got_len - st->got_head >= need;
}

/* A whole call reads its replies at once: not while another call's are
 * still queued, it would take them for its own. */
static pb_err_t whole_call_allowed(const pb_state_t *st, char *errstr,
				   size_t errstr_size)
{
	if (!st->outstanding)
		return PB_OK;
	return pb_errf(errstr, errstr_size, PB_ERR_REDIS,
		       "internal: a Redis call came between queued commands "
		       "and their replies");
}

/* Send every command and read every reply (a synchronous round trip). */
static pb_err_t pl_exec(pb_state_t *st, pipeline_t *pl, redisReply ***replies,
			char *errstr, size_t errstr_size)
{
	*replies = NULL;
	pb_state_call_t call;
	pb_err_t err = whole_call_allowed(st, errstr, errstr_size);
	if (!err)
		err = pl_send(st, pl, &call, errstr, errstr_size);
	if (err)
		return err;
	return pl_recv(st, &call, replies, errstr, errstr_size);
}

static void replies_free(redisReply **r, size_t n)
{
	if (!r)
		return;
	for (size_t i = 0; i < n; i++)
		freeReplyObject(r[i]);
	free(r);
}

/* The first error reply among replies, as a pb_err_t. */
static pb_err_t replies_check(redisReply **r, size_t n, char *errstr,
			      size_t errstr_size)
{
	for (size_t i = 0; i < n; i++) {
		if (r[i]->type == REDIS_REPLY_ERROR)
			return pb_errf(errstr, errstr_size, PB_ERR_REDIS,
				       "Redis answered: %s", r[i]->str);
		if (r[i]->type == REDIS_REPLY_ARRAY)
			for (size_t j = 0; j < r[i]->elements; j++)
				if (r[i]->element[j]->type == REDIS_REPLY_ERROR)
					return pb_errf(errstr, errstr_size,
						       PB_ERR_REDIS,
						       "Redis answered: %s",
						       r[i]->element[j]->str);
	}
	return PB_OK;
}

/* ---- fetch ------------------------------------------------------------- */

static const char *elem_str(redisReply *arr, size_t i)
{
	if (!arr || arr->type != REDIS_REPLY_ARRAY || i >= arr->elements)
		return NULL;
	redisReply *e = arr->element[i];
	return e->type == REDIS_REPLY_STRING ? e->str : NULL;
}

static int64_t elem_i64(redisReply *arr, size_t i, int64_t dflt)
{
	int64_t v;
	const char *s = elem_str(arr, i);
	return s && pb_parse_i64(s, &v) ? v : dflt;
}

void pb_state_view_clear(pb_state_view_t *v)
{
	if (!v)
		return;
	free(v->pushed_text);
	v->pushed_text = NULL;
	v->order.pushed = NULL;
	v->order.pushed_len = 0;
	free(v->key1_learned);
	v->key1_learned = NULL;
}

pb_err_t pb_state_fetch_send(pb_state_t *st, const pb_state_view_t *views,
			     size_t n, pb_state_call_t *call, char *errstr,
			     size_t errstr_size)
{
	pipeline_t pl = {0};
	for (size_t i = 0; i < n; i++) {
		const pb_state_view_t *v = &views[i];
		pl_cmd(&pl);
		pl_arg(&pl, "HMGET");
		pl_arg_take(&pl, key_order(st, v->account, v->won));
		const char *f[] = {"c", "d", "v", "hv", "t", "p", "k1"};
		for (size_t j = 0; j < 7; j++)
			pl_arg(&pl, f[j]);
		if (v->event_id) {
			pl_cmd(&pl);
			pl_arg(&pl, "GET");
			pl_arg_take(
			    &pl, key_mark(st, v->account, v->won, v->event_id));
		}
		if (v->key1) {
			pl_cmd(&pl);
			pl_arg(&pl, "SISMEMBER");
			pl_arg_take(&pl, key_account(st, v->account, "dk1"));
			pl_arg(&pl, v->key1);
		}
	}
	pb_err_t err = pl_send(st, &pl, call, errstr, errstr_size);
	pl_free(&pl);
	return err;
}

/* Copy the span f[0..n) into dst (cut to size, NUL-terminated). */
static void span_copy(char *dst, size_t size, const char *f, size_t n)
{
	if (n > size - 1)
		n = size - 1;
	if (n)
		memcpy(dst, f, n);
	dst[n] = '\0';
}

/* A mark's outcome or reason field into its name: a code (this build) or
 * a name (earlier builds, and reasons without a code) reads back alike. */
static void mark_name(char *out, size_t size, const char *f, size_t len,
		      bool outcome)
{
	pb_outcome_t o;
	pb_reason_t r;
	if (outcome && pb_outcome_parse(f, len, &o))
		pb_strlcpy(out, pb_outcome_name(o), size);
	else if (!outcome && len && pb_reason_parse(f, len, &r))
		pb_strlcpy(out, pb_reason_name(r), size);
	else
		span_copy(out, size, f, len);
}

/* Fill v's mark from its value (mark_value); an unknown state leaves it
 * PB_MARK_NONE. Missing fields read as empty or 0. */
static void mark_parse(const char *s, size_t n, pb_state_view_t *v)
{
	/* the five fields, split at '|' */
	const char *f[5] = {s, NULL, NULL, NULL, NULL};
	size_t len[5] = {0}, k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '|') {
			len[k]++;
			continue;
		}
		if (++k == 5)
			break;
		f[k] = s + i + 1;
	}
	if (len[0] != 1 || (s[0] != 'P' && s[0] != 'D'))
		return;
	v->mark = s[0] == 'P' ? PB_MARK_PUBLISHED : PB_MARK_DONE;
	mark_name(v->mark_outcome, sizeof(v->mark_outcome), f[1], len[1], true);
	mark_name(v->mark_reason, sizeof(v->mark_reason), f[2], len[2], false);
	char num[24];
	int64_t x;
	span_copy(num, sizeof(num), f[3], len[3]);
	v->mark_http = pb_parse_i64(num, &x) ? (int)x : 0;
	span_copy(num, sizeof(num), f[4], len[4]);
	v->mark_attempts = pb_parse_i64(num, &x) ? (int)x : 0;
}

pb_err_t pb_state_fetch_recv(pb_state_t *st, const pb_state_call_t *call,
			     pb_state_view_t *views, size_t n, char *errstr,
			     size_t errstr_size)
{
	redisReply **r = NULL;
	pb_err_t err = pl_recv(st, call, &r, errstr, errstr_size);
	size_t nr = call->replies;
	if (err)
		return err;
	err = replies_check(r, nr, errstr, errstr_size);
	if (err)
		goto out;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		pb_state_view_t *v = &views[i];
		redisReply *o = r[k++];
		pb_state_view_clear(v);
		v->order = (pb_order_state_t){0};
		v->exists = false;
		for (size_t j = 0; j < 7; j++)
			if (elem_str(o, j))
				v->exists = true;
		v->order.created = elem_i64(o, 0, 0) == 1;
		v->order.deleted = elem_i64(o, 1, 0) == 1;
		v->order.has_version = elem_i64(o, 3, 0) == 1;
		v->order.version = elem_i64(o, 2, 0);
		v->order.occurred_ms = elem_i64(o, 4, 0);
		redisReply *p = o->type == REDIS_REPLY_ARRAY && o->elements > 5
				    ? o->element[5]
				    : NULL;
		if (p && p->type == REDIS_REPLY_STRING) {
			/* the text stays as it is: the rules read the fields
			 * they need from it (pb_jt_members_split) */
			v->pushed_text = malloc(p->len + 1);
			if (v->pushed_text) {
				memcpy(v->pushed_text, p->str, p->len + 1);
				v->order.pushed = v->pushed_text;
				v->order.pushed_len = p->len;
			}
		}
		v->key1_learned = pb_strdup(elem_str(o, 6));
		v->mark = PB_MARK_NONE;
		v->mark_outcome[0] = v->mark_reason[0] = '\0';
		v->mark_http = v->mark_attempts = 0;
		if (v->event_id) {
			redisReply *m = r[k++];
			if (m->type == REDIS_REPLY_STRING)
				mark_parse(m->str, m->len, v);
		}
		v->key1_deleted = false;
		if (v->key1) {
			redisReply *s = r[k++];
			v->key1_deleted =
			    s->type == REDIS_REPLY_INTEGER && s->integer == 1;
		}
	}
out:
	replies_free(r, nr);
	return err;
}

/* ---- commit ------------------------------------------------------------ */

/*
 * The change index of getWorkOrders: a live order is (re)scored with the
 * time of its last pushed change, a deleted one leaves the index. The score
 * is the writer's wall clock in ms: Pruvan asks "changed since" in its own
 * Unix seconds. The index is the account's key, in the account's slot, so
 * it follows the order's MULTI/EXEC in the same pipelined write rather
 * than sitting inside it (Redis Cluster refuses a transaction over two
 * slots). A crash between the two leaves the order's last change out of
 * the index until its next one; a deleted order left in it is skipped by
 * the reader, which reads every listed order's own state.
 */
static void index_cmd(const pb_state_t *st, pipeline_t *pl,
		      const pb_state_write_t *w)
{
	pl_cmd(pl);
	if (w->set_deleted) {
		pl_arg(pl, "ZREM");
		pl_arg_take(pl, key_account(st, w->account, "ix"));
	} else {
		pl_arg(pl, "ZADD");
		pl_arg_take(pl, key_account(st, w->account, "ix"));
		pl_arg_i64(pl, pb_wall_ms());
	}
	pl_arg(pl, w->won);
}

pb_err_t pb_state_commit_send(pb_state_t *st, const pb_state_write_t *writes,
			      size_t n, pb_state_call_t *call, char *errstr,
			      size_t errstr_size)
{
	pipeline_t pl = {0};
	for (size_t i = 0; i < n; i++) {
		const pb_state_write_t *w = &writes[i];
		pl_cmd(&pl);
		pl_arg(&pl, "MULTI");
		if (w->event_id) {
			pl_cmd(&pl);
			pl_arg(&pl, "SET");
			pl_arg_take(
			    &pl, key_mark(st, w->account, w->won, w->event_id));
			pl_arg_take(&pl,
				    mark_value('D', w->outcome, w->reason,
					       w->http_status, w->attempts));
			pl_arg(&pl, "EX");
			pl_arg_i64(&pl, st->ttl);
		}
		char *ok = key_order(st, w->account, w->won);
		if (w->write_order) {
			pl_cmd(&pl);
			pl_arg(&pl, "HSET");
			pl_arg(&pl, ok ? ok : "");
			if (w->set_created) {
				pl_arg(&pl, "c");
				pl_arg(&pl, "1");
			}
			if (w->set_deleted) {
				pl_arg(&pl, "d");
				pl_arg(&pl, "1");
			}
			pl_arg(&pl, "hv");
			pl_arg(&pl, w->has_version ? "1" : "0");
			pl_arg(&pl, "v");
			pl_arg_i64(&pl, w->has_version ? w->version : 0);
			if (w->occurred_ms) {
				pl_arg(&pl, "t");
				pl_arg_i64(&pl, w->occurred_ms);
			}
			if (w->pushed) {
				pl_arg(&pl, "p");
				pl_arg(&pl, w->pushed);
			}
		}
		if (w->learn_key1) {
			pl_cmd(&pl);
			pl_arg(&pl, "HSETNX");
			pl_arg(&pl, ok ? ok : "");
			pl_arg(&pl, "k1");
			pl_arg(&pl, w->learn_key1);
		}
		free(ok);
		pl_cmd(&pl);
		pl_arg(&pl, "EXEC");
		if (w->write_order && (w->pushed || w->set_deleted))
			index_cmd(st, &pl, w);
		if (w->deleted_key1) {
			pl_cmd(&pl);
			pl_arg(&pl, "SADD");
			pl_arg_take(&pl, key_account(st, w->account, "dk1"));
			pl_arg(&pl, w->deleted_key1);
		}
	}
	bool wait = n && st->min_replicas;
	if (wait) {
		/* every write above is on this connection: one WAIT covers
		 * them all */
		pl_cmd(&pl);
		pl_arg(&pl, "WAIT");
		pl_arg_i64(&pl, st->min_replicas);
		pl_arg_i64(&pl, st->wait_timeout_ms);
	}
	pb_err_t err = pl_send(st, &pl, call, errstr, errstr_size);
	pl_free(&pl);
	call->wait = !err && call->replies && wait;
	return err;
}

/* Replies of commands whose only answer is success or an error: a commit's
 * or a mark's (pb_state_write_recv). */
pb_err_t pb_state_write_recv(pb_state_t *st, const pb_state_call_t *call,
			     char *errstr, size_t errstr_size)
{
	redisReply **r = NULL;
	pb_err_t err = pl_recv(st, call, &r, errstr, errstr_size);
	if (err)
		return err;
	err = replies_check(r, call->replies, errstr, errstr_size);
	if (!err && call->wait) {
		redisReply *w = r[call->replies - 1];
		long long got =
		    w->type == REDIS_REPLY_INTEGER ? w->integer : -1;
		if (got < st->min_replicas)
			err =
			    pb_errf(errstr, errstr_size, PB_ERR_REDIS,
				    "a commit reached %lld of the %d "
				    "replicas redis.minReplicas asks for "
				    "within %d ms (redis.waitTimeoutMs); "
				    "held and retried",
				    got, st->min_replicas, st->wait_timeout_ms);
	}
	replies_free(r, call->replies);
	return err;
}

pb_err_t pb_state_mark_published_send(pb_state_t *st,
				      const pb_state_ref_t *refs, size_t n,
				      pb_state_call_t *call, char *errstr,
				      size_t errstr_size)
{
	pipeline_t pl = {0};
	for (size_t i = 0; i < n; i++) {
		if (!refs[i].event_id)
			continue;
		pl_cmd(&pl);
		pl_arg(&pl, "SET");
		pl_arg_take(&pl, key_mark(st, refs[i].account, refs[i].won,
					  refs[i].event_id));
		pl_arg_take(&pl,
			    mark_value('P', refs[i].outcome, refs[i].reason,
				       refs[i].http_status, refs[i].attempts));
		pl_arg(&pl, "EX");
		pl_arg_i64(&pl, st->ttl);
	}
	pb_err_t err = pl_send(st, &pl, call, errstr, errstr_size);
	pl_free(&pl);
	return err;
}

pb_err_t pb_state_mark_published(pb_state_t *st, const pb_state_ref_t *refs,
				 size_t n, char *errstr, size_t errstr_size)
{
	pb_state_call_t call;
	pb_err_t err = whole_call_allowed(st, errstr, errstr_size);
	if (!err)
		err = pb_state_mark_published_send(st, refs, n, &call, errstr,
						   errstr_size);
	return err ? err : pb_state_write_recv(st, &call, errstr, errstr_size);
}

/* ---- Auto-Admin -------------------------------------------------------- */

pb_err_t pb_state_get_auto_admin(pb_state_t *st, const char *const *accounts,
				 size_t n, int *out, char *errstr,
				 size_t errstr_size)
{
	pipeline_t pl = {0};
	for (size_t i = 0; i < n; i++) {
		pl_cmd(&pl);
		pl_arg(&pl, "GET");
		pl_arg_take(&pl, key_account(st, accounts[i], "aa"));
	}
	redisReply **r = NULL;
	pb_err_t err = pl_exec(st, &pl, &r, errstr, errstr_size);
	size_t nr = pl.n;
	pl_free(&pl);
	if (err)
		return err;
	err = replies_check(r, nr, errstr, errstr_size);
	if (!err)
		for (size_t i = 0; i < n; i++) {
			const char *s =
			    r[i]->type == REDIS_REPLY_STRING ? r[i]->str : NULL;
			out[i] = !s ? -1 : strcmp(s, "on") == 0 ? 1 : 0;
		}
	replies_free(r, nr);
	return err;
}

pb_err_t pb_state_set_auto_admin(pb_state_t *st, const char *account, bool on,
				 char *errstr, size_t errstr_size)
{
	pipeline_t pl = {0};
	pl_cmd(&pl);
	pl_arg(&pl, "SET");
	pl_arg_take(&pl, key_account(st, account, "aa"));
	pl_arg(&pl, on ? "on" : "off");
	redisReply **r = NULL;
	pb_err_t err = pl_exec(st, &pl, &r, errstr, errstr_size);
	size_t nr = pl.n;
	pl_free(&pl);
	if (err)
		return err;
	err = replies_check(r, nr, errstr, errstr_size);
	replies_free(r, nr);
	return err;
}

pb_err_t pb_state_ping(pb_state_t *st, char *errstr, size_t errstr_size)
{
	pipeline_t pl = {0};
	pl_cmd(&pl);
	pl_arg(&pl, "PING");
	redisReply **r = NULL;
	pb_err_t err = pl_exec(st, &pl, &r, errstr, errstr_size);
	size_t nr = pl.n;
	pl_free(&pl);
	if (!err)
		err = replies_check(r, nr, errstr, errstr_size);
	replies_free(r, nr);
	return err;
}

/* ---- learned PushKeys ---------------------------------------------------- */

pb_err_t pb_state_set_push_key(pb_state_t *st, const char *account,
			       const char *key, int64_t at_ms, char *errstr,
			       size_t errstr_size)
{
	pipeline_t pl = {0};
	pl_cmd(&pl);
	pl_arg(&pl, "HSET");
	pl_arg_take(&pl, key_account(st, account, "pk"));
	pl_arg(&pl, "k");
	pl_arg(&pl, key);
	pl_arg(&pl, "at");
	pl_arg_i64(&pl, at_ms);
	redisReply **r = NULL;
	pb_err_t err = pl_exec(st, &pl, &r, errstr, errstr_size);
	size_t nr = pl.n;
	pl_free(&pl);
	if (err)
		return err;
	err = replies_check(r, nr, errstr, errstr_size);
	replies_free(r, nr);
	return err;
}

pb_err_t pb_state_get_push_keys(pb_state_t *st, const char *const *accounts,
				size_t n, char **keys_out, int64_t *at_out,
				char *errstr, size_t errstr_size)
{
	pipeline_t pl = {0};
	for (size_t i = 0; i < n; i++) {
		keys_out[i] = NULL;
		at_out[i] = 0;
		pl_cmd(&pl);
		pl_arg(&pl, "HMGET");
		pl_arg_take(&pl, key_account(st, accounts[i], "pk"));
		pl_arg(&pl, "k");
		pl_arg(&pl, "at");
	}
	redisReply **r = NULL;
	pb_err_t err = pl_exec(st, &pl, &r, errstr, errstr_size);
	size_t nr = pl.n;
	pl_free(&pl);
	if (err)
		return err;
	err = replies_check(r, nr, errstr, errstr_size);
	for (size_t i = 0; !err && i < n; i++) {
		const char *k = elem_str(r[i], 0);
		if (!k || !*k)
			continue;
		keys_out[i] = strdup(k);
		at_out[i] = elem_i64(r[i], 1, 0);
		if (!keys_out[i])
			err = pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
				      "out of memory");
	}
	if (err)
		for (size_t i = 0; i < n; i++) {
			free(keys_out[i]);
			keys_out[i] = NULL;
		}
	replies_free(r, nr);
	return err;
}

/* ---- getWorkOrders ---------------------------------------------------------
 */

void pb_state_changed_free(pb_state_changed_t *c, size_t n)
{
	if (!c)
		return;
	for (size_t i = 0; i < n; i++) {
		free(c[i].won);
		free(c[i].pushed);
	}
	free(c);
}

void pb_state_cursor_clear(pb_state_cursor_t *cur)
{
	if (!cur)
		return;
	free(cur->member);
	memset(cur, 0, sizeof(*cur));
}

/* ZRANGEBYSCORE ix min until WITHSCORES LIMIT skip count. */
static pb_err_t changed_members(pb_state_t *st, const char *account,
				int64_t min_ms, int64_t until_ms, size_t skip,
				size_t count, redisReply ***r_out, char *errstr,
				size_t errstr_size)
{
	pipeline_t pl = {0};
	pl_cmd(&pl);
	pl_arg(&pl, "ZRANGEBYSCORE");
	pl_arg_take(&pl, key_account(st, account, "ix"));
	if (min_ms < 0)
		pl_arg(&pl, "-inf");
	else
		pl_arg_i64(&pl, min_ms);
	pl_arg_i64(&pl, until_ms);
	pl_arg(&pl, "WITHSCORES");
	pl_arg(&pl, "LIMIT");
	pl_arg_i64(&pl, (int64_t)skip);
	pl_arg_i64(&pl, (int64_t)count);
	pb_err_t err = pl_exec(st, &pl, r_out, errstr, errstr_size);
	size_t nr = pl.n;
	pl_free(&pl);
	if (err)
		return err;
	err = replies_check(*r_out, nr, errstr, errstr_size);
	if (!err && ((*r_out)[0]->type != REDIS_REPLY_ARRAY ||
		     (*r_out)[0]->elements % 2 != 0))
		err = pb_errf(errstr, errstr_size, PB_ERR_REDIS,
			      "Redis answered ZRANGEBYSCORE with no list");
	if (err) {
		replies_free(*r_out, nr);
		*r_out = NULL;
	}
	return err;
}

/* Already read: at or before the cursor in (score, member) order. */
static bool before_cursor(const pb_state_cursor_t *cur, int64_t score,
			  const char *member)
{
	return cur->started && score == cur->score &&
	       strcmp(member, cur->member) <= 0;
}

/*
 * The next members after the cursor, at most count, into names[] (owned
 * copies, *n of them); moves the cursor. Entries tied with the cursor's
 * score and already read are skipped, a page of nothing but them asks for
 * the next one.
 */
static pb_err_t next_members(pb_state_t *st, const char *account,
			     int64_t since_ms, int64_t until_ms,
			     pb_state_cursor_t *cur, size_t count, char **names,
			     size_t *n, char *errstr, size_t errstr_size)
{
	*n = 0;
	int64_t min = cur->started ? cur->score : since_ms;
	for (size_t skip = 0;; skip += count) {
		redisReply **r = NULL;
		pb_err_t err = changed_members(st, account, min, until_ms, skip,
					       count, &r, errstr, errstr_size);
		if (err)
			return err;
		redisReply *a = r[0];
		size_t m = a->elements / 2;
		int64_t score = 0;
		const char *member = NULL;
		for (size_t i = 0; i < m; i++) {
			member = elem_str(a, 2 * i);
			score = elem_i64(a, 2 * i + 1, 0);
			if (!member || before_cursor(cur, score, member))
				continue;
			if (!(names[(*n)++] = strdup(member))) {
				replies_free(r, 1);
				return pb_errf(errstr, errstr_size,
					       PB_ERR_NOMEM, "out of memory");
			}
		}
		char *last = member ? strdup(member) : NULL;
		replies_free(r, 1);
		if (m < count)
			cur->done = true;
		if (last && before_cursor(cur, score, last)) {
			free(last); /* a page of entries read before */
		} else if (last) {
			free(cur->member);
			cur->member = last;
			cur->score = score;
			cur->started = true;
		}
		if (*n > 0 || cur->done)
			return PB_OK;
	}
}

pb_err_t pb_state_changed_page(pb_state_t *st, const char *account,
			       int64_t since_ms, int64_t until_ms,
			       pb_state_cursor_t *cur, size_t count,
			       pb_state_changed_t **out, size_t *n_out,
			       char *errstr, size_t errstr_size)
{
	*out = NULL;
	*n_out = 0;
	if (cur->done)
		return PB_OK;
	char **names = calloc(count ? count : 1, sizeof(*names));
	if (!names)
		return pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			       "out of memory");
	size_t n = 0;
	pb_err_t err = next_members(st, account, since_ms, until_ms, cur, count,
				    names, &n, errstr, errstr_size);
	pipeline_t pl = {0};
	for (size_t i = 0; !err && i < n; i++) {
		pl_cmd(&pl);
		pl_arg(&pl, "HMGET");
		pl_arg_take(&pl, key_order(st, account, names[i]));
		pl_arg(&pl, "d");
		pl_arg(&pl, "p");
	}
	redisReply **r = NULL;
	pb_state_changed_t *c = NULL;
	size_t k = 0;
	if (!err && n)
		err = pl_exec(st, &pl, &r, errstr, errstr_size);
	pl_free(&pl);
	if (!err && n)
		err = replies_check(r, n, errstr, errstr_size);
	if (!err && n && !(c = calloc(n, sizeof(*c))))
		err =
		    pb_errf(errstr, errstr_size, PB_ERR_NOMEM, "out of memory");
	for (size_t i = 0; !err && i < n; i++) {
		const char *p = elem_str(r[i], 1);
		if (!p || elem_i64(r[i], 0, 0) == 1)
			continue; /* deleted, or no fields pushed yet */
		c[k].won = names[i];
		names[i] = NULL;
		if (!(c[k++].pushed = strdup(p)))
			err = pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
				      "out of memory");
	}
	if (r)
		replies_free(r, n);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (err) {
		pb_state_changed_free(c, k);
		return err;
	}
	*out = c;
	*n_out = k;
	return PB_OK;
}
