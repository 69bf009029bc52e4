/*
 * state.c: Redis state, one pipelined round trip per call (see state.h).
 *
 * The connection is synchronous (hiredis) with connect and command
 * timeouts; Redis sits next to the worker and a pipelined batch costs one
 * network round trip, which is far below the Pruvan push it guards. After
 * any transport error the context is dropped and the next call reconnects,
 * so a restarted Redis is picked up without a restart of the worker.
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
#include <sys/time.h>

#include "jtext.h"
#include "util.h"

struct pb_state {
	char *host;
	int port;
	char *unix_path;
	char *password;
	int db;
	char *prefix;
	int64_t ttl;
	int timeout_ms;
	redisContext *c;
	uint64_t round_trips;
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

/* PREFIX{ACCOUNT/WON}:e:EVENTID */
static char *key_mark(const pb_state_t *st, const char *a, const char *w,
		      const char *id)
{
	const char *p[] = {st->prefix, "{", a, "/", w, "}:e:", id};
	return key_cat(p, 7);
}

/* PREFIX{ACCOUNT}:WHAT */
static char *key_account(const pb_state_t *st, const char *a, const char *what)
{
	const char *p[] = {st->prefix, "{", a, "}:", what};
	return key_cat(p, 5);
}

/* ---- connection -------------------------------------------------------- */

static pb_err_t parse_url(pb_state_t *st, const char *url, char *errstr,
			  size_t errstr_size)
{
	if (strncmp(url, "unix://", 7) == 0) {
		st->unix_path = strdup(url + 7);
		return st->unix_path ? PB_OK : PB_ERR_NOMEM;
	}
	if (strncmp(url, "redis://", 8) != 0)
		return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
			       "redis url must start with redis:// or unix://");
	const char *p = url + 8;
	const char *at = strchr(p, '@');
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		const char *pw = colon ? colon + 1 : p;
		st->password = strndup(pw, (size_t)(at - pw));
		p = at + 1;
	}
	const char *slash = strchr(p, '/');
	size_t hostport_len = slash ? (size_t)(slash - p) : strlen(p);
	char hostport[256];
	if (hostport_len == 0 || hostport_len >= sizeof(hostport))
		return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
			       "redis url has no host");
	memcpy(hostport, p, hostport_len);
	hostport[hostport_len] = '\0';
	st->port = 6379;
	char *colon = strrchr(hostport, ':');
	if (colon) {
		int64_t port;
		*colon = '\0';
		if (!pb_parse_i64(colon + 1, &port) || port <= 0 || port > 65535)
			return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
				       "redis url has an invalid port");
		st->port = (int)port;
	}
	st->host = strdup(hostport);
	if (slash && slash[1]) {
		int64_t db;
		if (!pb_parse_i64(slash + 1, &db) || db < 0 || db > 1000)
			return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
				       "redis url has an invalid database number");
		st->db = (int)db;
	}
	return st->host ? PB_OK : PB_ERR_NOMEM;
}

static void drop_conn(pb_state_t *st)
{
	if (st->c) {
		redisFree(st->c);
		st->c = NULL;
	}
}

static pb_err_t simple_cmd(redisContext *c, char *errstr, size_t errstr_size,
			   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (!r)
		return pb_errf(errstr, errstr_size, PB_ERR_REDIS, "%s",
			       c->errstr);
	pb_err_t err = PB_OK;
	if (r->type == REDIS_REPLY_ERROR)
		err = pb_errf(errstr, errstr_size, PB_ERR_REDIS, "%s", r->str);
	freeReplyObject(r);
	return err;
}

static pb_err_t ensure_conn(pb_state_t *st, char *errstr, size_t errstr_size)
{
	if (st->c)
		return PB_OK;
	struct timeval tv = {st->timeout_ms / 1000,
			     (st->timeout_ms % 1000) * 1000};
	redisContext *c = st->unix_path
				  ? redisConnectUnixWithTimeout(st->unix_path, tv)
				  : redisConnectWithTimeout(st->host, st->port, tv);
	if (!c)
		return pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			       "cannot allocate a Redis context");
	if (c->err) {
		pb_errf(errstr, errstr_size, PB_ERR_REDIS,
			"cannot connect to Redis: %s", c->errstr);
		redisFree(c);
		return PB_ERR_REDIS;
	}
	redisSetTimeout(c, tv);
	pb_err_t err = PB_OK;
	if (st->password)
		err = simple_cmd(c, errstr, errstr_size, "AUTH %s", st->password);
	if (!err && st->db)
		err = simple_cmd(c, errstr, errstr_size, "SELECT %d", st->db);
	if (err) {
		redisFree(c);
		return err;
	}
	st->c = c;
	return PB_OK;
}

pb_err_t pb_state_new(const char *url, const char *prefix, int64_t ttl_seconds,
		      int timeout_ms, pb_state_t **out, char *errstr,
		      size_t errstr_size)
{
	pb_state_t *st = calloc(1, sizeof(*st));
	if (!st)
		return PB_ERR_NOMEM;
	st->prefix = strdup(prefix ? prefix : "pb:");
	st->ttl = ttl_seconds > 0 ? ttl_seconds : 604800;
	st->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
	pb_err_t err = parse_url(st, url, errstr, errstr_size);
	if (err) {
		pb_state_destroy(st);
		return err;
	}
	*out = st;
	return PB_OK;
}

void pb_state_destroy(pb_state_t *st)
{
	if (!st)
		return;
	drop_conn(st);
	free(st->host);
	free(st->unix_path);
	free(st->password);
	free(st->prefix);
	free(st);
}

uint64_t pb_state_round_trips(const pb_state_t *st)
{
	return st->round_trips;
}

/* ---- pipelines --------------------------------------------------------- */

/*
 * A pipeline collects commands (argv form, binary safe) and sends them in
 * one write; replies are read back in order. Strings passed to pl_arg are
 * copied, so callers may pass temporaries.
 */
typedef struct {
	int argc;
	char *argv[16];
	size_t argvlen[16];
} cmd_t;

typedef struct {
	cmd_t *cmds;
	size_t n, cap;
	bool oom;
} pipeline_t;

static cmd_t *pl_cmd(pipeline_t *pl)
{
	if (pl->oom)
		return NULL;
	if (pl->n == pl->cap) {
		size_t ncap = pl->cap ? pl->cap * 2 : 32;
		cmd_t *n = realloc(pl->cmds, ncap * sizeof(*n));
		if (!n) {
			pl->oom = true;
			return NULL;
		}
		pl->cmds = n;
		pl->cap = ncap;
	}
	cmd_t *c = &pl->cmds[pl->n++];
	c->argc = 0;
	return c;
}

static void pl_arg_len(pipeline_t *pl, cmd_t *c, const char *s, size_t len)
{
	if (!c || c->argc >= 16) {
		pl->oom = true;
		return;
	}
	char *d = malloc(len + 1);
	if (!d) {
		pl->oom = true;
		return;
	}
	memcpy(d, s, len);
	d[len] = '\0';
	c->argv[c->argc] = d;
	c->argvlen[c->argc] = len;
	c->argc++;
}

static void pl_arg(pipeline_t *pl, cmd_t *c, const char *s)
{
	pl_arg_len(pl, c, s, strlen(s));
}

static void pl_arg_i64(pipeline_t *pl, cmd_t *c, int64_t v)
{
	char b[24];
	size_t k = 0;
	unsigned long long u = (unsigned long long)v;
	if (v < 0) {
		b[k++] = '-';
		u = 0ULL - u;
	}
	pb_u64_text(b + k, u);
	pl_arg(pl, c, b);
}

/* Take ownership of an allocated string as the next argument. */
static void pl_arg_take(pipeline_t *pl, cmd_t *c, char *s)
{
	if (!s) {
		pl->oom = true;
		return;
	}
	pl_arg(pl, c, s);
	free(s);
}

static void pl_free(pipeline_t *pl)
{
	for (size_t i = 0; i < pl->n; i++)
		for (int j = 0; j < pl->cmds[i].argc; j++)
			free(pl->cmds[i].argv[j]);
	free(pl->cmds);
	memset(pl, 0, sizeof(*pl));
}

/*
 * Send every command and read every reply into replies[0..n) (caller frees
 * each with freeReplyObject). On a transport error the connection is
 * dropped and no reply is returned.
 */
static pb_err_t pl_exec(pb_state_t *st, pipeline_t *pl, redisReply ***replies,
			char *errstr, size_t errstr_size)
{
	*replies = NULL;
	if (pl->oom)
		return pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			       "out of memory building a Redis pipeline");
	if (pl->n == 0)
		return PB_OK;
	pb_err_t err = ensure_conn(st, errstr, errstr_size);
	if (err)
		return err;
	/* The whole pipeline in RESP, formatted here into one buffer and
	 * handed to hiredis once: per command, redisAppendCommandArgv
	 * formats through sdscatfmt into a buffer of its own and then copies
	 * it onto the output buffer, a tenth of the loop's CPU at 20,000
	 * events/s (docs/benchmarks.md). */
	size_t total = 0;
	for (size_t i = 0; i < pl->n; i++) {
		cmd_t *c = &pl->cmds[i];
		total += 16;
		for (int j = 0; j < c->argc; j++)
			total += c->argvlen[j] + 26;
	}
	char *buf = malloc(total);
	if (!buf)
		return PB_ERR_NOMEM;
	size_t len = 0;
	for (size_t i = 0; i < pl->n; i++) {
		cmd_t *c = &pl->cmds[i];
		buf[len++] = '*';
		len += pb_u64_text(buf + len, (unsigned long long)c->argc);
		buf[len++] = '\r';
		buf[len++] = '\n';
		for (int j = 0; j < c->argc; j++) {
			buf[len++] = '$';
			len += pb_u64_text(buf + len, c->argvlen[j]);
			buf[len++] = '\r';
			buf[len++] = '\n';
			memcpy(buf + len, c->argv[j], c->argvlen[j]);
			len += c->argvlen[j];
			buf[len++] = '\r';
			buf[len++] = '\n';
		}
	}
	int appended = redisAppendFormattedCommand(st->c, buf, len);
	free(buf);
	if (appended != REDIS_OK)
		goto transport;
	redisReply **r = calloc(pl->n, sizeof(*r));
	if (!r)
		return PB_ERR_NOMEM;
	for (size_t i = 0; i < pl->n; i++) {
		void *rep = NULL;
		if (redisGetReply(st->c, &rep) != REDIS_OK || !rep) {
			for (size_t j = 0; j < i; j++)
				freeReplyObject(r[j]);
			free(r);
			goto transport;
		}
		r[i] = rep;
	}
	st->round_trips++;
	*replies = r;
	return PB_OK;
transport:
	pb_errf(errstr, errstr_size, PB_ERR_REDIS, "Redis connection failed: %s",
		st->c->errstr[0] ? st->c->errstr : "no reply");
	drop_conn(st);
	return PB_ERR_REDIS;
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
	json_decref(v->order.pushed);
	v->order.pushed = NULL;
	free(v->key1_learned);
	v->key1_learned = NULL;
}

pb_err_t pb_state_fetch(pb_state_t *st, pb_state_view_t *views, size_t n,
			char *errstr, size_t errstr_size)
{
	pipeline_t pl = {0};
	for (size_t i = 0; i < n; i++) {
		pb_state_view_t *v = &views[i];
		cmd_t *c = pl_cmd(&pl);
		pl_arg(&pl, c, "HMGET");
		pl_arg_take(&pl, c, key_order(st, v->account, v->won));
		const char *f[] = {"c", "d", "v", "hv", "t", "p", "k1"};
		for (size_t j = 0; j < 7; j++)
			pl_arg(&pl, c, f[j]);
		if (v->event_id) {
			c = pl_cmd(&pl);
			pl_arg(&pl, c, "HMGET");
			pl_arg_take(&pl, c, key_mark(st, v->account, v->won,
						     v->event_id));
			const char *m[] = {"s", "o", "r", "h", "a"};
			for (size_t j = 0; j < 5; j++)
				pl_arg(&pl, c, m[j]);
		}
		if (v->key1) {
			c = pl_cmd(&pl);
			pl_arg(&pl, c, "SISMEMBER");
			pl_arg_take(&pl, c, key_account(st, v->account, "dk1"));
			pl_arg(&pl, c, v->key1);
		}
	}
	redisReply **r = NULL;
	pb_err_t err = pl_exec(st, &pl, &r, errstr, errstr_size);
	size_t nr = pl.n;
	pl_free(&pl);
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
		memset(&v->order, 0, sizeof(v->order));
		v->exists = false;
		for (size_t j = 0; j < 7; j++)
			if (elem_str(o, j))
				v->exists = true;
		v->order.created = elem_i64(o, 0, 0) == 1;
		v->order.deleted = elem_i64(o, 1, 0) == 1;
		v->order.has_version = elem_i64(o, 3, 0) == 1;
		v->order.version = elem_i64(o, 2, 0);
		v->order.occurred_ms = elem_i64(o, 4, 0);
		const char *p = elem_str(o, 5);
		if (p)
			v->order.pushed = json_loads(p, 0, NULL);
		v->key1_learned = pb_strdup(elem_str(o, 6));
		v->mark = PB_MARK_NONE;
		v->mark_outcome[0] = v->mark_reason[0] = '\0';
		v->mark_http = v->mark_attempts = 0;
		if (v->event_id) {
			redisReply *m = r[k++];
			const char *s = elem_str(m, 0);
			if (s && s[0] == 'P')
				v->mark = PB_MARK_PUBLISHED;
			else if (s && s[0] == 'D')
				v->mark = PB_MARK_DONE;
			if (elem_str(m, 1))
				pb_strlcpy(v->mark_outcome, elem_str(m, 1),
					   sizeof(v->mark_outcome));
			if (elem_str(m, 2))
				pb_strlcpy(v->mark_reason, elem_str(m, 2),
					   sizeof(v->mark_reason));
			v->mark_http = (int)elem_i64(m, 3, 0);
			v->mark_attempts = (int)elem_i64(m, 4, 0);
		}
		v->key1_deleted = false;
		if (v->key1) {
			redisReply *s = r[k++];
			v->key1_deleted = s->type == REDIS_REPLY_INTEGER &&
					  s->integer == 1;
		}
	}
out:
	replies_free(r, nr);
	return err;
}

/* ---- commit ------------------------------------------------------------ */

pb_err_t pb_state_commit(pb_state_t *st, const pb_state_write_t *writes,
			 size_t n, char *errstr, size_t errstr_size)
{
	pipeline_t pl = {0};
	for (size_t i = 0; i < n; i++) {
		const pb_state_write_t *w = &writes[i];
		cmd_t *c = pl_cmd(&pl);
		pl_arg(&pl, c, "MULTI");
		if (w->event_id) {
			char *mk = key_mark(st, w->account, w->won, w->event_id);
			c = pl_cmd(&pl);
			pl_arg(&pl, c, "HSET");
			pl_arg(&pl, c, mk ? mk : "");
			pl_arg(&pl, c, "s");
			pl_arg(&pl, c, "D");
			pl_arg(&pl, c, "o");
			pl_arg(&pl, c, w->outcome ? w->outcome : "");
			pl_arg(&pl, c, "r");
			pl_arg(&pl, c, w->reason ? w->reason : "");
			pl_arg(&pl, c, "h");
			pl_arg_i64(&pl, c, w->http_status);
			pl_arg(&pl, c, "a");
			pl_arg_i64(&pl, c, w->attempts);
			c = pl_cmd(&pl);
			pl_arg(&pl, c, "EXPIRE");
			pl_arg_take(&pl, c, mk);
			pl_arg_i64(&pl, c, st->ttl);
		}
		char *ok = key_order(st, w->account, w->won);
		if (w->write_order) {
			c = pl_cmd(&pl);
			pl_arg(&pl, c, "HSET");
			pl_arg(&pl, c, ok ? ok : "");
			if (w->set_created) {
				pl_arg(&pl, c, "c");
				pl_arg(&pl, c, "1");
			}
			if (w->set_deleted) {
				pl_arg(&pl, c, "d");
				pl_arg(&pl, c, "1");
			}
			pl_arg(&pl, c, "hv");
			pl_arg(&pl, c, w->has_version ? "1" : "0");
			pl_arg(&pl, c, "v");
			pl_arg_i64(&pl, c, w->has_version ? w->version : 0);
			if (w->occurred_ms) {
				pl_arg(&pl, c, "t");
				pl_arg_i64(&pl, c, w->occurred_ms);
			}
			if (w->pushed) {
				char *js = pb_jt_dumps(w->pushed, true);
				pl_arg(&pl, c, "p");
				pl_arg_take(&pl, c, js);
			}
		}
		if (w->learn_key1) {
			c = pl_cmd(&pl);
			pl_arg(&pl, c, "HSETNX");
			pl_arg(&pl, c, ok ? ok : "");
			pl_arg(&pl, c, "k1");
			pl_arg(&pl, c, w->learn_key1);
		}
		free(ok);
		c = pl_cmd(&pl);
		pl_arg(&pl, c, "EXEC");
		if (w->deleted_key1) {
			c = pl_cmd(&pl);
			pl_arg(&pl, c, "SADD");
			pl_arg_take(&pl, c, key_account(st, w->account, "dk1"));
			pl_arg(&pl, c, w->deleted_key1);
		}
	}
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

pb_err_t pb_state_mark_published(pb_state_t *st, const pb_state_ref_t *refs,
				 size_t n, char *errstr, size_t errstr_size)
{
	pipeline_t pl = {0};
	for (size_t i = 0; i < n; i++) {
		if (!refs[i].event_id)
			continue;
		char *mk = key_mark(st, refs[i].account, refs[i].won,
				    refs[i].event_id);
		cmd_t *c = pl_cmd(&pl);
		pl_arg(&pl, c, "HSET");
		pl_arg(&pl, c, mk ? mk : "");
		pl_arg(&pl, c, "s");
		pl_arg(&pl, c, "P");
		c = pl_cmd(&pl);
		pl_arg(&pl, c, "EXPIRE");
		pl_arg_take(&pl, c, mk);
		pl_arg_i64(&pl, c, st->ttl);
	}
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

/* ---- Auto-Admin -------------------------------------------------------- */

pb_err_t pb_state_get_auto_admin(pb_state_t *st, const char *const *accounts,
				 size_t n, int *out, char *errstr,
				 size_t errstr_size)
{
	pipeline_t pl = {0};
	for (size_t i = 0; i < n; i++) {
		cmd_t *c = pl_cmd(&pl);
		pl_arg(&pl, c, "GET");
		pl_arg_take(&pl, c, key_account(st, accounts[i], "aa"));
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
			const char *s = r[i]->type == REDIS_REPLY_STRING
						? r[i]->str
						: NULL;
			out[i] = !s ? -1 : strcmp(s, "on") == 0 ? 1 : 0;
		}
	replies_free(r, nr);
	return err;
}

pb_err_t pb_state_set_auto_admin(pb_state_t *st, const char *account, bool on,
				 char *errstr, size_t errstr_size)
{
	pipeline_t pl = {0};
	cmd_t *c = pl_cmd(&pl);
	pl_arg(&pl, c, "SET");
	pl_arg_take(&pl, c, key_account(st, account, "aa"));
	pl_arg(&pl, c, on ? "on" : "off");
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
	cmd_t *c = pl_cmd(&pl);
	pl_arg(&pl, c, "PING");
	redisReply **r = NULL;
	pb_err_t err = pl_exec(st, &pl, &r, errstr, errstr_size);
	size_t nr = pl.n;
	pl_free(&pl);
	if (!err)
		err = replies_check(r, nr, errstr, errstr_size);
	replies_free(r, nr);
	return err;
}
