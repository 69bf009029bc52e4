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
 * This file is the API and its orchestration: the connection, the
 * pipelines, and which commands each call sends. Its parts: the marks in
 * the order's hash and their prune (state_marks.h), the order memo
 * (state_memo.h), the waiting "published" marks (state_pubq.h) and the
 * upgrade window (state_layout.h).
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
#include "state_layout.h"
#include "state_marks.h"
#include "state_memo.h"
#include "state_pubq.h"
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
	/* The key layout (probe_layout): -1 not read yet; 0 Redis held
	 * nothing when this layout first started (no earlier marks); else
	 * that Unix second. Earlier builds' string marks are written too
	 * for upgrade_s after it and read for upgrade_s + ttl. */
	int64_t layout_at;
	int64_t upgrade_s;
	bool layout_write; /* the next commit records layout_at (SET NX) */
	pb_omemo_t *memo;  /* each order's "mx", from its fetch */
	pb_pubq_t *pub;	   /* "published" marks waiting */
	/* orders whose commit asked for their fields (HGETALL, a prune),
	 * oldest first; seq numbers them across calls (prune_recv) */
	struct prune_ask {
		uint64_t seq;
		char *okey;
	} * asks;
	size_t asks_head, asks_len, asks_cap;
	uint64_t ask_seq;
	bool prune_off; /* Redis refused HGETALL: marks are not pruned */
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

/* A string mark's value (state_marks.h), as earlier builds write it. */
static char *mark_value(char s, const char *outcome, const char *reason,
			int http_status, int attempts)
{
	return pb_smark_value(s, outcome, reason, http_status, attempts, 0);
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
		pb_reply_free(st->got[i]);
	st->got_head = st->got_len = 0;
	st->outstanding = 0;
	st->unflushed = false;
}

/* ---- key layout --------------------------------------------------------- */

static char *key_layout(const pb_state_t *st)
{
	const char *p[] = {st->prefix, "layout"};
	return key_cat(p, 2);
}

static int64_t now_s(void)
{
	return pb_wall_ms() / 1000;
}

/* Earlier builds' string marks may exist, or be written by replicas of
 * an earlier build still running: read them too. */
static bool legacy_read(const pb_state_t *st)
{
	return pb_slayout_read_legacy(st->layout_at, st->upgrade_s, st->ttl,
				      now_s());
}

/* Replicas of an earlier build may still run (a rolling update): write
 * the string mark beside the hash mark, the only one they read. */
static bool legacy_write(const pb_state_t *st)
{
	return pb_slayout_write_legacy(st->layout_at, st->upgrade_s, now_s());
}

/*
 * PREFIXlayout holds the Unix second this build's layout (marks in the
 * order's hash) first started on a Redis that held data, or 0 when it
 * held nothing (a fresh deployment: no earlier marks, no earlier
 * replicas). Read on a fresh connection, before anything is queued on it;
 * when absent, DBSIZE decides and the next commit writes it (SET NX: the
 * first replica's stays). Read only: explain never writes. DBSIZE refused
 * (an ACL of an earlier build) counts as data. With Cluster every master
 * is asked: earlier data may sit on any of them.
 */
static pb_err_t probe_layout(pb_state_t *st, char *errstr, size_t errstr_size)
{
	char *k = key_layout(st);
	if (!k)
		return PB_ERR_NOMEM;
	const char *get[] = {"GET", k};
	redisReply *r = pb_rconn_command(st->c, errstr, errstr_size, 2, get);
	free(k);
	if (!r)
		return PB_ERR_REDIS;
	bool have = r->type == REDIS_REPLY_STRING &&
		    pb_slayout_parse(r->str, &st->layout_at);
	bool refused = r->type == REDIS_REPLY_ERROR;
	pb_reply_free(r);
	if (refused)
		return pb_errf(errstr, errstr_size, PB_ERR_REDIS,
			       "Redis refused GET of the layout key; give the "
			       "worker's ACL user the commands "
			       "docs/operations.md lists");
	if (have)
		return PB_OK;
	bool empty, dbsize_refused;
	pb_err_t err = pb_redis_empty(st->redis, st->c, &empty, &dbsize_refused,
				      errstr, errstr_size);
	if (err && !dbsize_refused)
		return err;
	st->layout_at = pb_slayout_first(empty, now_s());
	st->layout_write = true;
	return PB_OK;
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
	if (st->layout_at < 0 &&
	    (err = probe_layout(st, errstr, errstr_size))) {
		drop_conn(st);
		return err;
	}
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
	st->layout_at = -1;
	st->upgrade_s = PB_STATE_UPGRADE_WINDOW_DEFAULT;
	st->memo = pb_omemo_new(PB_OMEMO_CAP);
	st->pub = pb_pubq_new();
	st->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 2000;
	st->min_replicas = min_replicas > 0 ? min_replicas : 0;
	st->wait_timeout_ms = wait_timeout_ms > 0 ? wait_timeout_ms : 1000;
	pb_redis_opts_t o = *opts;
	o.timeout_ms = st->timeout_ms;
	pb_err_t err = st->prefix && st->memo && st->pub
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

pb_redis_opts_t pb_state_redis_opts(const pb_config_t *cfg, int timeout_ms)
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
	return o;
}

pb_err_t pb_state_new_config(const pb_config_t *cfg, int timeout_ms,
			     pb_state_t **out, char *errstr, size_t errstr_size)
{
	pb_redis_opts_t o = pb_state_redis_opts(cfg, timeout_ms);
	pb_state_t *st = NULL;
	pb_err_t err = pb_state_new_redis(
	    &o, cfg->redis_key_prefix, cfg->dedupe_ttl_seconds,
	    cfg->redis_min_replicas, cfg->redis_wait_timeout_ms, &st, errstr,
	    errstr_size);
	if (err)
		return err;
	pb_state_set_upgrade_window(st, cfg->redis_upgrade_window_seconds);
	pb_omemo_t *memo =
	    pb_omemo_new(pb_omemo_cap_for(cfg->worker_max_pending));
	if (memo) { /* else the default one stays */
		pb_omemo_destroy(st->memo);
		st->memo = memo;
	}
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

void pb_state_set_upgrade_window(pb_state_t *st, int64_t seconds)
{
	st->upgrade_s = seconds > 0 ? seconds : 0;
}

void pb_state_destroy(pb_state_t *st)
{
	if (!st)
		return;
	if (!st->outstanding && st->pub && pb_pubq_count(st->pub)) {
		/* the waiting "published" marks, best effort (lost, their
		 * events are recovered on a replay) */
		char e[256];
		(void)pb_state_mark_published(st, NULL, 0, e, sizeof(e));
	}
	drop_conn(st);
	pb_pubq_destroy(st->pub);
	pb_omemo_destroy(st->memo);
	for (size_t i = st->asks_head; i < st->asks_len; i++)
		free(st->asks[i].okey);
	free(st->asks);
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

/* One argument, "$len\r\n" s "\r\n", written in place: some 25 per event
 * (through three appends, 2% of the worker's instructions). */
static void pl_arg_len(pipeline_t *pl, const char *s, size_t len)
{
	pb_jtext_t *b = &pl->cur;
	pl->argc++;
	if (!pb_jt_reserve(b, len + 26)) /* '$', 20 digits, 2 x CRLF, NUL */
		return;
	char *d = b->p + b->len;
	*d++ = '$';
	d += pb_u64_text(d, len);
	*d++ = '\r';
	*d++ = '\n';
	memcpy(d, s, len);
	d += len;
	*d++ = '\r';
	*d++ = '\n';
	*d = '\0';
	b->len = (size_t)(d - b->p);
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
				pb_reply_free(r[j]);
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
				pb_reply_free(rep);
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
		pb_reply_free(r[i]);
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

/*
 * A whole call's end: send pl and read its replies (pl_exec), free pl,
 * and fail on the first error reply. replies NULL: the replies are freed;
 * else they are *replies on success (pl's command count of them, freed by
 * the caller with replies_free) and NULL on a failure.
 */
static pb_err_t pl_exec_checked(pb_state_t *st, pipeline_t *pl,
				redisReply ***replies, char *errstr,
				size_t errstr_size)
{
	redisReply **r = NULL;
	size_t nr = pl->n;
	pb_err_t err = pl_exec(st, pl, &r, errstr, errstr_size);
	pl_free(pl);
	if (!err)
		err = replies_check(r, nr, errstr, errstr_size);
	if (err || !replies) {
		replies_free(r, nr);
		r = NULL;
	}
	if (replies)
		*replies = r;
	return err;
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

/* Records rejected as read have no order: their marks stay string keys
 * (state.h). */
static bool is_record(const char *account)
{
	return account && strcmp(account, PB_STATE_RECORD_ACCOUNT) == 0;
}

/* The order fields a fetch reads, then the mark's and the index. The
 * order's own state comes first; "k1", last of them, is learned from
 * relayed data and may be in a hash of marks only. */
const char *const pb_state_order_fields[] = {"c", "d", "v", "hv",
					     "t", "p", "k1"};
#define N_ORDER_FIELDS 7
#define N_ORDER_STATE  PB_STATE_N_ORDER_FIELDS /* without "k1" */

/* How many of them v's fetch reads: "k1" only for an event that may use
 * it (pb_state_view_t.skip_key1); every field read costs Redis time. */
static size_t order_nread(const pb_state_view_t *v)
{
	return v->skip_key1 ? N_ORDER_STATE : N_ORDER_FIELDS;
}

/* cmd (SISMEMBER or SADD) on the account's set what (dk1, rk1, dsw) with
 * the member kind + value; nothing when value is NULL. */
static void set_cmd(pb_state_t *st, pipeline_t *pl, const char *account,
		    const char *cmd, const char *what, const char *kind,
		    const char *value)
{
	if (!value)
		return;
	const char *m[] = {kind, value};
	pl_cmd(pl);
	pl_arg(pl, cmd);
	pl_arg_take(pl, key_account(st, account, what));
	pl_arg_take(pl, key_cat(m, 2));
}

static void fetch_cmds(pb_state_t *st, pipeline_t *pl, const pb_state_view_t *v,
		       bool legacy)
{
	bool rec = is_record(v->account);
	if (!rec) {
		char *ok = key_order(st, v->account, v->won);
		pl_cmd(pl);
		pl_arg(pl, "HMGET");
		if (ok)
			pl_arg(pl, ok);
		else
			pl->cur.bad = true;
		for (size_t j = 0; j < order_nread(v); j++)
			pl_arg(pl, pb_state_order_fields[j]);
		if (v->event_id) {
			pl_arg_take(pl, pb_smark_field(v->event_id));
			pl_arg(pl, "mx");
			/* not known to hold the order: an earlier build's
			 * index (small in a hash of marks only) tells such a
			 * hash, which may expire, from none */
			const pb_omemo_entry_t *m =
			    ok ? pb_omemo_get(st->memo, ok) : NULL;
			if (!m || !m->has_order)
				pl_arg(pl, "mi");
		}
		free(ok);
	}
	if (v->event_id && (rec || legacy)) {
		pl_cmd(pl);
		pl_arg(pl, "GET");
		pl_arg_take(pl, key_mark(st, v->account, v->won, v->event_id));
	}
	set_cmd(st, pl, v->account, "SISMEMBER", "dk1", "", v->key1);
	set_cmd(st, pl, v->account, "SISMEMBER", "rk1", "", v->key1);
	set_cmd(st, pl, v->account, "SISMEMBER", "dsw", "id:", v->swo_id);
	set_cmd(st, pl, v->account, "SISMEMBER", "dsw",
		"number:", v->swo_number);
}

pb_err_t pb_state_fetch_send(pb_state_t *st, const pb_state_view_t *views,
			     size_t n, pb_state_call_t *call, char *errstr,
			     size_t errstr_size)
{
	memset(call, 0, sizeof(*call));
	if (n && st->layout_at < 0) {
		/* the layout is read with the connection: it decides below */
		pb_err_t e = ensure_conn(st, errstr, errstr_size);
		if (e)
			return e;
	}
	pipeline_t pl = {0};
	bool legacy = legacy_read(st);
	for (size_t i = 0; i < n; i++)
		fetch_cmds(st, &pl, &views[i], legacy);
	pb_err_t err = pl_send(st, &pl, call, errstr, errstr_size);
	pl_free(&pl);
	call->legacy = legacy;
	return err;
}

/* Whether element i is exactly the decimal text of x (as a commit writes
 * it). */
static bool elem_is_i64(redisReply *arr, size_t i, int64_t x)
{
	const char *s = elem_str(arr, i);
	char b[24];
	size_t n = pb_i64_text(b, x);
	return s && arr->element[i]->len == n && memcmp(s, b, n) == 0;
}

/* Which order fields of an HMGET reply hold the text a commit writes for
 * the values order_parse read (pb_state_view_t.stored). */
static unsigned order_stored(redisReply *o, const pb_order_state_t *s)
{
	unsigned b = 0;
	if (s->created && elem_is_i64(o, 0, 1))
		b |= PB_STATE_STORED_CREATED;
	if (elem_is_i64(o, 3, s->has_version ? 1 : 0))
		b |= PB_STATE_STORED_HV;
	if (elem_is_i64(o, 2, s->version))
		b |= PB_STATE_STORED_V;
	if (elem_is_i64(o, 4, s->occurred_ms))
		b |= PB_STATE_STORED_T;
	return b;
}

/* Whether any of an HMGET reply's first n fields is set. */
static bool any_field(redisReply *o, size_t n)
{
	for (size_t j = 0; j < n; j++)
		if (elem_str(o, j))
			return true;
	return false;
}

/* The order's fields of an HMGET reply into v. */
static void order_parse(redisReply *o, pb_state_view_t *v)
{
	v->order = (pb_order_state_t){0};
	size_t nread = order_nread(v);
	v->exists = any_field(o, nread);
	v->order.created = elem_i64(o, 0, 0) == 1;
	v->order.deleted = elem_i64(o, 1, 0) == 1;
	v->order.has_version = elem_i64(o, 3, 0) == 1;
	v->order.version = elem_i64(o, 2, 0);
	v->order.occurred_ms = elem_i64(o, 4, 0);
	v->stored = order_stored(o, &v->order);
	redisReply *p = o && o->type == REDIS_REPLY_ARRAY && o->elements > 5
			    ? o->element[5]
			    : NULL;
	if (p && p->type == REDIS_REPLY_STRING) {
		/* the text stays as it is: the rules read the fields they
		 * need from it (pb_jt_members_split) */
		v->pushed_text = malloc(p->len + 1);
		if (v->pushed_text) {
			memcpy(v->pushed_text, p->str, p->len + 1);
			v->order.pushed = v->pushed_text;
			v->order.pushed_len = p->len;
		}
	}
	v->key1_learned = nread > N_ORDER_STATE
			      ? pb_strdup(elem_str(o, N_ORDER_STATE))
			      : NULL;
}

/* The event's hash mark of an HMGET reply (a waiting "published" value
 * of this handle wins over "D"); the order's "mx" goes to the memo. */
static void hash_mark_parse(pb_state_t *st, redisReply *o, int64_t now,
			    pb_state_view_t *v)
{
	size_t nread = order_nread(v);
	redisReply *m = o->type == REDIS_REPLY_ARRAY && o->elements > nread + 1
			    ? o->element[nread]
			    : NULL;
	if (m && m->type == REDIS_REPLY_STRING)
		pb_smark_parse(m->str, m->len, now, v);
	char *ok = key_order(st, v->account, v->won);
	if (!ok)
		return;
	if (v->mark == PB_MARK_DONE && pb_pubq_count(st->pub)) {
		char *f = pb_smark_field(v->event_id);
		const char *w = f ? pb_pubq_find(st->pub, ok, f) : NULL;
		if (w)
			pb_smark_parse(w, strlen(w), now, v);
		free(f);
	}
	int64_t mx = elem_i64(o, nread + 1, 0);
	if (!mx && elem_str(o, nread + 2))
		mx = 1; /* an earlier build's index: due for a prune */
	/* a learned Key1 alone is no order: the hash still expires, and the
	 * order's first write must make it stay */
	pb_omemo_put(st->memo, ok, mx, any_field(o, N_ORDER_STATE));
	free(ok);
}

/* One view's replies, from r[*k] on. */
static void view_parse(pb_state_t *st, const pb_state_call_t *call,
		       redisReply **r, size_t *k, pb_state_view_t *v)
{
	bool rec = is_record(v->account);
	bool legacy = call->legacy;
	int64_t now = now_s();
	pb_state_view_clear(v);
	v->order = (pb_order_state_t){0};
	v->exists = false;
	v->stored = 0;
	v->stored_conn = call->conn;
	v->mark = PB_MARK_NONE;
	v->mark_outcome[0] = v->mark_reason[0] = '\0';
	v->mark_http = v->mark_attempts = 0;
	if (!rec) {
		redisReply *o = r[(*k)++];
		order_parse(o, v);
		if (v->event_id)
			hash_mark_parse(st, o, now, v);
	}
	if (v->event_id && (rec || legacy)) {
		redisReply *m = r[(*k)++];
		/* an earlier build's replica may have published it since */
		if (v->mark != PB_MARK_PUBLISHED &&
		    m->type == REDIS_REPLY_STRING)
			pb_smark_parse(m->str, m->len, now, v);
	}
	v->key1_deleted = v->key1_recreated = false;
	if (v->key1) {
		redisReply *s = r[(*k)++];
		v->key1_deleted =
		    s->type == REDIS_REPLY_INTEGER && s->integer == 1;
		s = r[(*k)++];
		v->key1_recreated =
		    s->type == REDIS_REPLY_INTEGER && s->integer == 1;
	}
	v->swo_deleted = false;
	for (int j = 0; j < (v->swo_id != NULL) + (v->swo_number != NULL);
	     j++) {
		redisReply *s = r[(*k)++];
		if (s->type == REDIS_REPLY_INTEGER && s->integer == 1)
			v->swo_deleted = true;
	}
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
	size_t k = 0;
	for (size_t i = 0; !err && i < n; i++)
		view_parse(st, call, r, &k, &views[i]);
	replies_free(r, nr);
	return err;
}

/* ---- commit ------------------------------------------------------------ */

/*
 * The change index of getWorkOrders: a live order is (re)scored with the
 * time of its last pushed change, a deleted one leaves the index. The score
 * is the writer's wall clock in ms, cut to the whole second: Pruvan asks
 * "changed since" in its own Unix seconds, so finer scores order nothing
 * a reader can ask for. The index is the account's key, in the account's slot,
 * so it follows the order's write in the same pipelined write rather than
 * sitting inside it (Redis Cluster refuses a transaction over two slots).
 * A crash between the two leaves the order's last change out of the index
 * until its next one; a deleted order left in it is skipped by the reader,
 * which reads every listed order's own state.
 */
static bool indexed(const pb_state_write_t *w)
{
	return w->write_order && (w->pushed || w->set_deleted);
}

/* The writes of group g (lead[g] first) as one ZADD or ZREM. */
static void index_group_cmd(const pb_state_t *st, pipeline_t *pl,
			    const pb_state_write_t *writes, size_t n,
			    const size_t *group, size_t lead, size_t g,
			    int64_t now)
{
	const pb_state_write_t *w = &writes[lead];
	pl_cmd(pl);
	pl_arg(pl, w->set_deleted ? "ZREM" : "ZADD");
	pl_arg_take(pl, key_account(st, w->account, "ix"));
	for (size_t k = lead; k < n; k++) {
		const pb_state_write_t *x = &writes[k];
		if (!indexed(x) || group[k] != g)
			continue;
		if (!x->set_deleted)
			pl_arg_i64(pl, now);
		pl_arg(pl, x->won);
	}
}

/* One ZADD (or ZREM) per account for the whole batch (an order is in a
 * batch once at most: its next event waits for this one's record). The
 * groups are few (two per account at most), the writes many: each write
 * is compared with the groups' first writes only. */
static void index_cmds(const pb_state_t *st, pipeline_t *pl,
		       const pb_state_write_t *writes, size_t n)
{
	if (!n)
		return;
	/* whole seconds, in ms: an order changed again within the second
	 * keeps its score, which Redis applies without moving it in the
	 * sorted set (a moved member costs about four times as much) */
	int64_t now = pb_wall_ms();
	now -= now % 1000;
	size_t *group = malloc(n * sizeof(*group));
	size_t *lead = malloc(n * sizeof(*lead));
	size_t ngroups = 0;
	if (!group || !lead) {
		pl->out.bad = true;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const pb_state_write_t *w = &writes[i];
		if (!indexed(w))
			continue;
		size_t g = 0;
		while (g < ngroups &&
		       (writes[lead[g]].set_deleted != w->set_deleted ||
			strcmp(writes[lead[g]].account, w->account) != 0))
			g++;
		if (g == ngroups)
			lead[ngroups++] = i;
		group[i] = g;
	}
	for (size_t g = 0; g < ngroups; g++)
		index_group_cmd(st, pl, writes, n, group, lead[g], g, now);
out:
	free(group);
	free(lead);
}

/*
 * The order fields (PB_STATE_STORED_*) that w would write with the value
 * its fetch read back: each field of the HSET costs Redis about as much
 * as a small command's parsing (issue 19). Trusted only when the fetch
 * was of this order, on this connection (a failover may have lost what
 * the old master held), and the HSET writes a mark too (never an HSET of
 * nothing). Nothing else writes these fields between an event's fetch
 * and its commit: the order's next event waits for this one's record.
 */
static unsigned order_unchanged(const pb_state_t *st, const pb_state_write_t *w)
{
	const pb_state_view_t *f = w->fetched;
	if (!f || !w->event_id || !st->c || f->stored_conn != st->conn_id ||
	    !f->account || !f->won || strcmp(f->account, w->account) != 0 ||
	    strcmp(f->won, w->won) != 0)
		return 0;
	unsigned same = 0;
	if ((f->stored & PB_STATE_STORED_CREATED) && f->order.created)
		same |= PB_STATE_STORED_CREATED;
	if ((f->stored & PB_STATE_STORED_HV) &&
	    f->order.has_version == w->has_version)
		same |= PB_STATE_STORED_HV;
	if ((f->stored & PB_STATE_STORED_V) &&
	    f->order.version == (w->has_version ? w->version : 0))
		same |= PB_STATE_STORED_V;
	if ((f->stored & PB_STATE_STORED_T) &&
	    f->order.occurred_ms == w->occurred_ms)
		same |= PB_STATE_STORED_T;
	return same;
}

/* The order's own fields of one HSET (already opened), but those that hold
 * the same value already (order_unchanged). */
static void order_fields(const pb_state_t *st, pipeline_t *pl,
			 const pb_state_write_t *w)
{
	unsigned same = order_unchanged(st, w);
	if (w->set_created && !(same & PB_STATE_STORED_CREATED)) {
		pl_arg(pl, "c");
		pl_arg(pl, "1");
	}
	if (w->set_deleted) {
		pl_arg(pl, "d");
		pl_arg(pl, "1");
	}
	if (!(same & PB_STATE_STORED_HV)) {
		pl_arg(pl, "hv");
		pl_arg(pl, w->has_version ? "1" : "0");
	}
	if (!(same & PB_STATE_STORED_V)) {
		pl_arg(pl, "v");
		pl_arg_i64(pl, w->has_version ? w->version : 0);
	}
	if (w->occurred_ms && !(same & PB_STATE_STORED_T)) {
		pl_arg(pl, "t");
		pl_arg_i64(pl, w->occurred_ms);
	}
	if (w->pushed) {
		pl_arg(pl, "p");
		pl_arg(pl, w->pushed);
	}
}

/* The event's string mark (SET EX): a record's, or, while replicas of an
 * earlier build may run, beside the hash mark. */
static void string_mark_cmd(const pb_state_t *st, pipeline_t *pl, char s,
			    const char *account, const char *won,
			    const char *id, const char *outcome,
			    const char *reason, int http, int attempts)
{
	pl_cmd(pl);
	pl_arg(pl, "SET");
	pl_arg_take(pl, key_mark(st, account, won, id));
	pl_arg_take(pl, mark_value(s, outcome, reason, http, attempts));
	pl_arg(pl, "EX");
	pl_arg_i64(pl, st->ttl);
}

static void commit_string_mark(const pb_state_t *st, pipeline_t *pl,
			       const pb_state_write_t *w)
{
	if (w->event_id)
		string_mark_cmd(st, pl, 'D', w->account, w->won, w->event_id,
				w->outcome, w->reason, w->http_status,
				w->attempts);
}

/* Callbacks that write into an open command of a pipeline. */
typedef struct {
	pipeline_t *pl;
	const char *okey;
} pl_ctx_t;

static void emit_field(void *ctx, const char *field, const char *value)
{
	pl_ctx_t *c = ctx;
	pl_arg(c->pl, field);
	pl_arg(c->pl, value);
}

/* The HSET of one order write: its fields, the event's mark, the new
 * "mx" (mx > 0) and the order's waiting "published" marks. */
static void order_hset(pb_state_t *st, pipeline_t *pl, const char *ok,
		       const pb_state_write_t *w, int64_t mx, int64_t exp)
{
	pl_cmd(pl);
	pl_arg(pl, "HSET");
	pl_arg(pl, ok);
	if (w->write_order)
		order_fields(st, pl, w);
	if (w->event_id) {
		pl_arg_take(pl, pb_smark_field(w->event_id));
		pl_arg_take(pl,
			    pb_smark_value('D', w->outcome, w->reason,
					   w->http_status, w->attempts, exp));
	}
	if (mx > 0) {
		pl_arg(pl, "mx");
		pl_arg_i64(pl, mx);
	}
	pl_ctx_t c = {.pl = pl, .okey = ok};
	pb_pubq_fold(st->pub, ok, emit_field, &c);
}

/* Ask for order ok's fields (a prune, state_marks.h): queued for the
 * HGETALL that pb_state_commit_send appends; false: out of memory. */
static bool prune_ask(pb_state_t *st, const char *ok)
{
	if (st->asks_len == st->asks_cap) {
		size_t nc = st->asks_cap ? st->asks_cap * 2 : 64;
		struct prune_ask *a = realloc(st->asks, nc * sizeof(*a));
		if (!a)
			return false;
		st->asks = a;
		st->asks_cap = nc;
	}
	char *k = pb_strdup(ok);
	if (!k)
		return false;
	st->asks[st->asks_len++] = (struct prune_ask){st->ask_seq++, k};
	return true;
}

/* The prune part of an order's write with an event's mark: a waiting
 * prune result sends its HDEL (before the HSET: a mark written again
 * since the HGETALL, this event's own among them, wins) and gives the
 * new "mx"; a due "mx" (or an earlier build's hash, with the order and
 * no "mx") asks for a prune; a hash without "mx" and without the order
 * (new, or an earlier build's of marks only, which expires) gets its
 * first. Returns the "mx" for the HSET (0: none). */
static int64_t prune_part(pb_state_t *st, pipeline_t *pl, const char *ok,
			  const pb_omemo_entry_t *memo, int64_t now,
			  int64_t exp)
{
	char *drops = NULL;
	size_t nd = 0;
	int64_t mx = 0;
	if (pb_omemo_prune_take(st->memo, ok, &drops, &nd, &mx)) {
		if (nd) {
			pl_cmd(pl);
			pl_arg(pl, "HDEL");
			pl_arg(pl, ok);
			const char *f = drops;
			for (size_t i = 0; i < nd; f += strlen(f) + 1, i++)
				pl_arg(pl, f);
		}
		free(drops);
		return mx;
	}
	if (!st->prune_off && (memo->mx ? memo->mx <= now : memo->has_order)) {
		if (!prune_ask(st, ok))
			pl->out.bad = true;
		return 0;
	}
	return memo->mx ? 0 : exp + PB_SMARK_PRUNE_GRACE_S;
}

/*
 * One order's write: the order's fields and the event's mark in one HSET,
 * atomic by itself. What goes before it only prepares (learning Key1 is
 * idempotent, dropped marks are past their use, a hash that held marks
 * only loses its expiry) and what follows only tidies (the expiry of a
 * hash of marks only, the account's keys, a prune's HGETALL): a crash
 * anywhere leaves either no mark (the event is done again, its effect not
 * seen yet or seen as "unchanged") or the mark with the order's state.
 * While replicas of an earlier build may run, the string mark is written
 * too, and the whole is one MULTI/EXEC (one slot: the keys share the
 * order's hash tag), so they never see the order's new state without the
 * event's mark.
 */
static void commit_order(pb_state_t *st, pipeline_t *pl,
			 const pb_state_write_t *w, int64_t now, bool dual)
{
	char *ok = key_order(st, w->account, w->won);
	if (!ok) {
		pl->out.bad = true;
		return;
	}
	const pb_omemo_entry_t *memo = pb_omemo_get(st->memo, ok);
	bool marks_only = memo && !memo->has_order;
	bool has_order = (memo && memo->has_order) || w->write_order;
	if (dual) {
		pl_cmd(pl);
		pl_arg(pl, "MULTI");
	}
	if (w->learn_key1) {
		pl_cmd(pl);
		pl_arg(pl, "HSETNX");
		pl_arg(pl, ok);
		pl_arg(pl, "k1");
		pl_arg(pl, w->learn_key1);
	}
	/* a hash of marks only (it has "mx", or an earlier build's "mi")
	 * expires: the order's first write makes sure it stays */
	if (w->write_order && (!memo || (marks_only && memo->mx))) {
		pl_cmd(pl);
		pl_arg(pl, "PERSIST");
		pl_arg(pl, ok);
	}
	int64_t exp = now + st->ttl;
	int64_t mx =
	    w->event_id && memo ? prune_part(st, pl, ok, memo, now, exp) : 0;
	int64_t memo_mx = memo ? (mx ? mx : memo->mx) : 0;
	if (w->write_order || w->event_id)
		order_hset(st, pl, ok, w, mx, exp);
	if (dual)
		commit_string_mark(st, pl, w);
	if (w->event_id && !w->write_order && marks_only) {
		pl_cmd(pl);
		pl_arg(pl, "EXPIRE");
		pl_arg(pl, ok);
		pl_arg_i64(pl, st->ttl);
	}
	if (dual) {
		pl_cmd(pl);
		pl_arg(pl, "EXEC");
	}
	if (memo && w->event_id)
		pb_omemo_put(st->memo, ok, memo_mx, has_order);
	else if (memo && w->write_order)
		pb_omemo_set_order(st->memo, ok);
	free(ok);
}

/* One write of a batch. While replicas of an earlier build may run, an
 * event that leaves its order alone writes its string mark only: a hash
 * of marks only expires, and an earlier replica writing the order into
 * it would not know to keep it. */
static void commit_one(pb_state_t *st, pipeline_t *pl,
		       const pb_state_write_t *w, int64_t now, bool dual)
{
	if (is_record(w->account) ||
	    (dual && !w->write_order && !w->learn_key1))
		commit_string_mark(st, pl, w);
	else if (w->write_order || w->event_id || w->learn_key1)
		commit_order(st, pl, w, now, dual);
	set_cmd(st, pl, w->account, "SADD", "dk1", "", w->deleted_key1);
	set_cmd(st, pl, w->account, "SADD", "rk1", "", w->recreated_key1);
	set_cmd(st, pl, w->account, "SADD", "dsw", "id:", w->deleted_swo_id);
	set_cmd(st, pl, w->account, "SADD", "dsw",
		"number:", w->deleted_swo_number);
}

pb_err_t pb_state_commit_send(pb_state_t *st, const pb_state_write_t *writes,
			      size_t n, pb_state_call_t *call, char *errstr,
			      size_t errstr_size)
{
	pipeline_t pl = {0};
	int64_t now = now_s();
	bool dual = legacy_write(st);
	if (n && st->layout_write) {
		pl_cmd(&pl);
		pl_arg(&pl, "SET");
		pl_arg_take(&pl, key_layout(st));
		pl_arg_i64(&pl, st->layout_at);
		pl_arg(&pl, "NX");
		st->layout_write = false;
	}
	if (st->asks_head == st->asks_len) /* none waits: start over */
		st->asks_head = st->asks_len = 0;
	size_t asked = st->asks_len;
	for (size_t i = 0; i < n; i++)
		commit_one(st, &pl, &writes[i], now, dual);
	index_cmds(st, &pl, writes, n);
	/* after every HSET of the batch, so each reads its order's marks
	 * as this commit leaves them (state_marks.h) */
	for (size_t i = asked; i < st->asks_len; i++) {
		pl_cmd(&pl);
		pl_arg(&pl, "HGETALL");
		pl_arg(&pl, st->asks[i].okey);
	}
	size_t prunes = st->asks_len - asked;
	uint64_t first = prunes ? st->asks[asked].seq : 0;
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
	if (err || !call->replies) {
		for (size_t i = asked; i < st->asks_len; i++)
			free(st->asks[i].okey);
		st->asks_len = asked;
		prunes = 0;
	}
	call->prunes = prunes;
	call->prune_seq = first;
	return err;
}

/* One prune's HGETALL reply for order ok: the mark fields whose values
 * expired PB_SMARK_PRUNE_GRACE_S ago (and an earlier build's "mi") and
 * the new "mx", kept for the order's next write (state_marks.h). */
static void prune_parse(pb_state_t *st, const char *ok, const redisReply *a)
{
	if (a->type == REDIS_REPLY_ERROR)
		st->prune_off = true; /* asked no more (state_marks.h) */
	if (a->type != REDIS_REPLY_ARRAY)
		return;
	int64_t now = now_s();
	int64_t mx = now + st->ttl + PB_SMARK_PRUNE_GRACE_S;
	pb_jtext_t d = {0};
	size_t nd = 0;
	for (size_t i = 0; i + 1 < a->elements; i += 2) {
		const redisReply *f = a->element[i], *v = a->element[i + 1];
		if (f->type != REDIS_REPLY_STRING ||
		    v->type != REDIS_REPLY_STRING)
			continue;
		bool mark = f->len > 2 && memcmp(f->str, "m:", 2) == 0;
		int64_t e = mark ? pb_smark_expiry(v->str, v->len) : -1;
		bool old_index = f->len == 2 && memcmp(f->str, "mi", 2) == 0;
		if (old_index ||
		    (e >= 0 && e + PB_SMARK_PRUNE_GRACE_S <= now)) {
			pb_jt_put(&d, f->str, f->len + 1); /* with its NUL */
			nd++;
		} else if (e >= 0 && e + PB_SMARK_PRUNE_GRACE_S < mx) {
			mx = e + PB_SMARK_PRUNE_GRACE_S;
		}
	}
	if (d.bad) {
		free(d.p);
		return; /* out of memory: the prune comes again */
	}
	pb_omemo_prune_set(st->memo, ok, d.p, nd, mx);
}

/* A commit's HGETALL replies (r NULL: lost), matched to the orders that
 * asked by their numbers; asks older than the call's (a call never
 * received) are dropped. */
static void prune_recv(pb_state_t *st, const pb_state_call_t *call,
		       redisReply **r)
{
	size_t base = call->replies - (call->wait ? 1 : 0) - call->prunes;
	for (size_t i = 0; i < call->prunes; i++) {
		uint64_t seq = call->prune_seq + i;
		while (st->asks_head < st->asks_len &&
		       st->asks[st->asks_head].seq <= seq) {
			struct prune_ask *x = &st->asks[st->asks_head++];
			if (x->seq == seq && r)
				prune_parse(st, x->okey, r[base + i]);
			free(x->okey);
		}
	}
}

/* Replies of commands whose only answer is success or an error: a commit's
 * or a mark's (pb_state_write_recv). */
pb_err_t pb_state_write_recv(pb_state_t *st, const pb_state_call_t *call,
			     char *errstr, size_t errstr_size)
{
	redisReply **r = NULL;
	pb_err_t err = pl_recv(st, call, &r, errstr, errstr_size);
	if (err) {
		prune_recv(st, call, NULL);
		return err;
	}
	/* a prune's HGETALL failing (an ACL without it) fails no commit */
	size_t base = call->replies - (call->wait ? 1 : 0) - call->prunes;
	err = replies_check(r, base, errstr, errstr_size);
	if (!err && call->wait)
		err = replies_check(r + call->replies - 1, 1, errstr,
				    errstr_size);
	prune_recv(st, call, err ? NULL : r);
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

/* One ref's "published" mark: a record's as its string key at once, an
 * order's to wait (state_pubq.h). While replicas of an earlier build may
 * run, the string key at once only: readers of this build read it too
 * until every hash mark written meanwhile has expired, and a waiting
 * value would create a hash, without expiry, for an event whose commit
 * wrote its string mark only (commit_one). */
static void published_one(pb_state_t *st, pipeline_t *pl,
			  const pb_state_ref_t *f, int64_t exp, bool dual)
{
	bool rec = is_record(f->account);
	if (rec || dual)
		string_mark_cmd(st, pl, 'P', f->account, f->won, f->event_id,
				f->outcome, f->reason, f->http_status,
				f->attempts);
	if (rec || dual)
		return;
	/* out of memory: the mark stays "done", a replay publishes its
	 * outcome again (recovered) */
	char *ok = key_order(st, f->account, f->won);
	char *fm = pb_smark_field(f->event_id);
	char *val = pb_smark_value('P', f->outcome, f->reason, f->http_status,
				   f->attempts, exp);
	if (ok && fm && val)
		(void)pb_pubq_add(st->pub, ok, fm, val, pb_mono_ms());
	free(ok);
	free(fm);
	free(val);
}

static void pub_begin(void *ctx, const char *okey)
{
	pl_ctx_t *c = ctx;
	pl_cmd(c->pl);
	pl_arg(c->pl, "HSET");
	pl_arg(c->pl, okey);
}

/* The waiting marks that are due (every one when all), one HSET each
 * order. */
static void published_flush(pb_state_t *st, pipeline_t *pl, bool all)
{
	pl_ctx_t c = {.pl = pl};
	pb_pubq_flush(st->pub, pb_mono_ms(), all, pub_begin, emit_field, &c);
}

static void published_cmds(pb_state_t *st, pipeline_t *pl,
			   const pb_state_ref_t *refs, size_t n, bool all)
{
	int64_t exp = now_s() + st->ttl;
	bool dual = legacy_write(st);
	for (size_t i = 0; i < n; i++)
		if (refs[i].event_id)
			published_one(st, pl, &refs[i], exp, dual);
	published_flush(st, pl, all);
}

pb_err_t pb_state_mark_published_send(pb_state_t *st,
				      const pb_state_ref_t *refs, size_t n,
				      pb_state_call_t *call, char *errstr,
				      size_t errstr_size)
{
	pipeline_t pl = {0};
	published_cmds(st, &pl, refs, n, false);
	pb_err_t err = pl_send(st, &pl, call, errstr, errstr_size);
	pl_free(&pl);
	return err;
}

/* Whole: every waiting mark is written too, before the call returns. */
pb_err_t pb_state_mark_published(pb_state_t *st, const pb_state_ref_t *refs,
				 size_t n, char *errstr, size_t errstr_size)
{
	pb_err_t err = whole_call_allowed(st, errstr, errstr_size);
	if (err)
		return err;
	pipeline_t pl = {0};
	published_cmds(st, &pl, refs, n, true);
	return pl_exec_checked(st, &pl, NULL, errstr, errstr_size);
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
	pb_err_t err = pl_exec_checked(st, &pl, &r, errstr, errstr_size);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		const char *s =
		    r[i]->type == REDIS_REPLY_STRING ? r[i]->str : NULL;
		out[i] = !s ? -1 : strcmp(s, "on") == 0 ? 1 : 0;
	}
	replies_free(r, n);
	return PB_OK;
}

pb_err_t pb_state_set_auto_admin(pb_state_t *st, const char *account, bool on,
				 char *errstr, size_t errstr_size)
{
	pipeline_t pl = {0};
	pl_cmd(&pl);
	pl_arg(&pl, "SET");
	pl_arg_take(&pl, key_account(st, account, "aa"));
	pl_arg(&pl, on ? "on" : "off");
	return pl_exec_checked(st, &pl, NULL, errstr, errstr_size);
}

pb_err_t pb_state_ping(pb_state_t *st, char *errstr, size_t errstr_size)
{
	pipeline_t pl = {0};
	/* an idle worker pings: the "published" marks waiting go now */
	if (!st->outstanding)
		published_flush(st, &pl, true);
	pl_cmd(&pl);
	pl_arg(&pl, "PING");
	return pl_exec_checked(st, &pl, NULL, errstr, errstr_size);
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
	return pl_exec_checked(st, &pl, NULL, errstr, errstr_size);
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
	pb_err_t err = pl_exec_checked(st, &pl, &r, errstr, errstr_size);
	if (err)
		return err;
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
	replies_free(r, n);
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
	pb_err_t err = pl_exec_checked(st, &pl, r_out, errstr, errstr_size);
	if (err)
		return err;
	if ((*r_out)[0]->type != REDIS_REPLY_ARRAY ||
	    (*r_out)[0]->elements % 2 != 0) {
		replies_free(*r_out, 1);
		*r_out = NULL;
		return pb_errf(errstr, errstr_size, PB_ERR_REDIS,
			       "Redis answered ZRANGEBYSCORE with no list");
	}
	return PB_OK;
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
		err = pl_exec_checked(st, &pl, &r, errstr, errstr_size);
	pl_free(&pl);
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
