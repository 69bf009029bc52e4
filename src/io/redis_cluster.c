/*
 * redis_cluster.c: Redis Cluster routing under one connection handle (see
 * redis_cluster.h for the design).
 *
 * Invariants: a node's replies arrive in the order its groups were sent,
 * so each node keeps the replies read ahead in a queue and the groups,
 * kept in append order, take theirs from its head; a resend after MOVED or
 * ASK first reads everything the node still owes, then takes its own
 * replies from the tail. Nothing is dropped unread: a failure fails the
 * whole handle, and the caller reconnects.
 */
#include "redis_cluster.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define NSLOTS	      16384
#define MAX_REDIRECTS 5

typedef struct {
	char host[256];
	int port;
	pb_rconn_t *c;
	size_t inflight; /* replies owed by the connection, not read yet */
	redisReply **q;	 /* read, not yet taken by a group */
	size_t qh, ql, qcap;
	bool dirty; /* written to since the last WAIT */
} node_t;

typedef struct {
	int node;    /* -1: WAIT, asked of every node in fan */
	size_t n;    /* replies */
	char *bytes; /* the group's RESP, for a resend */
	size_t len;
	int *fan;
	size_t nfan;
} group_t;

struct pb_cluster {
	pb_redis_t *r;
	node_t *nodes;
	size_t nnodes;
	int slots[NSLOTS]; /* node index, -1: not served */
	group_t *g;
	size_t gh, gl, gcap;
	redisReply **out; /* whole groups' replies, in append order */
	size_t oh, ol, ocap;
	bool refresh; /* the map changed: read CLUSTER SLOTS when idle */
	bool failed;  /* a node could not be reached: err says why */
	char err[512];
};

/* ---- slots -------------------------------------------------------------- */

static uint16_t crc16(const char *buf, size_t len)
{
	uint16_t crc = 0;
	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)((unsigned char)buf[i] << 8);
		for (int k = 0; k < 8; k++)
			crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021)
					   : (uint16_t)(crc << 1);
	}
	return crc;
}

unsigned pb_cluster_slot(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len);
	if (open) {
		size_t rest = len - (size_t)(open - key) - 1;
		const char *close = memchr(open + 1, '}', rest);
		if (close && close > open + 1)
			return crc16(open + 1, (size_t)(close - open - 1)) %
			       NSLOTS;
	}
	return crc16(key, len) % NSLOTS;
}

/* ---- small queues ------------------------------------------------------- */

static bool push_reply(redisReply ***q, size_t *qh, size_t *ql, size_t *cap,
		       redisReply *r)
{
	if (*qh == *ql)
		*qh = *ql = 0;
	if (*ql == *cap) {
		if (*qh) {
			memmove(*q, *q + *qh, (*ql - *qh) * sizeof(**q));
			*ql -= *qh;
			*qh = 0;
		} else {
			size_t nc = *cap ? *cap * 2 : 64;
			redisReply **n = realloc(*q, nc * sizeof(*n));
			if (!n)
				return false;
			*q = n;
			*cap = nc;
		}
	}
	(*q)[(*ql)++] = r;
	return true;
}

static void free_queue(redisReply **q, size_t qh, size_t ql)
{
	for (size_t i = qh; i < ql; i++)
		pb_reply_free(q[i]);
	free(q);
}

/* A reply object of our own (the integer WAIT answers overall). */
static redisReply *int_reply(long long v)
{
	redisReader *rd = pb_reply_reader_new();
	if (!rd)
		return NULL;
	char b[32];
	int n = snprintf(b, sizeof(b), ":%lld\r\n", v);
	void *rep = NULL;
	if (redisReaderFeed(rd, b, (size_t)n) != REDIS_OK ||
	    redisReaderGetReply(rd, &rep) != REDIS_OK)
		rep = NULL;
	redisReaderFree(rd);
	return rep;
}

/* ---- nodes -------------------------------------------------------------- */

static pb_err_t fail(pb_cluster_t *cl, const char *msg)
{
	if (!cl->failed)
		pb_strlcpy(cl->err, msg, sizeof(cl->err));
	cl->failed = true;
	return PB_ERR_REDIS;
}

static int node_index(pb_cluster_t *cl, const char *host, int port)
{
	for (size_t i = 0; i < cl->nnodes; i++)
		if (cl->nodes[i].port == port &&
		    strcmp(cl->nodes[i].host, host) == 0)
			return (int)i;
	node_t *n = realloc(cl->nodes, (cl->nnodes + 1) * sizeof(*n));
	if (!n)
		return -1;
	cl->nodes = n;
	memset(&n[cl->nnodes], 0, sizeof(*n));
	pb_strlcpy(n[cl->nnodes].host, host, sizeof(n->host));
	n[cl->nnodes].port = port;
	return (int)cl->nnodes++;
}

static pb_err_t node_conn(pb_cluster_t *cl, int i)
{
	node_t *n = &cl->nodes[i];
	if (n->c)
		return PB_OK;
	char e[512];
	if (pb_redis_dial_node(cl->r, n->host, n->port, &n->c, NULL, e,
			       sizeof(e)))
		return fail(cl, e);
	return PB_OK;
}

/* Read from node i until k replies wait in its queue. 1 ready, 0 not yet
 * (wait false), -1 failed. */
static int node_fill(pb_cluster_t *cl, int i, size_t k, bool wait)
{
	node_t *n = &cl->nodes[i];
	while (n->ql - n->qh < k) {
		if (!n->inflight || !n->c) {
			fail(cl,
			     "internal: a Redis Cluster node owes no reply");
			return -1;
		}
		redisReply *rep = NULL;
		char e[512];
		if (pb_rconn_reply(n->c, wait, &rep, e, sizeof(e))) {
			fail(cl, e);
			return -1;
		}
		if (!rep)
			return 0;
		n->inflight--;
		if (!push_reply(&n->q, &n->qh, &n->ql, &n->qcap, rep)) {
			pb_reply_free(rep);
			fail(cl, "out of memory reading from Redis Cluster");
			return -1;
		}
	}
	return 1;
}

/* ---- the slot map ------------------------------------------------------- */

/* Fill the map from a CLUSTER SLOTS reply; the masters become nodes. */
static bool map_from(pb_cluster_t *cl, const redisReply *r,
		     const char *asked_host)
{
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0)
		return false;
	for (size_t s = 0; s < NSLOTS; s++)
		cl->slots[s] = -1;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER ||
		    e->element[1]->type != REDIS_REPLY_INTEGER ||
		    e->element[2]->type != REDIS_REPLY_ARRAY ||
		    e->element[2]->elements < 2)
			return false;
		const redisReply *m = e->element[2];
		if (m->element[0]->type != REDIS_REPLY_STRING ||
		    m->element[1]->type != REDIS_REPLY_INTEGER)
			return false;
		const char *host =
		    m->element[0]->len ? m->element[0]->str : asked_host;
		int idx = node_index(cl, host, (int)m->element[1]->integer);
		if (idx < 0)
			return false;
		long long a = e->element[0]->integer,
			  b = e->element[1]->integer;
		for (long long s = a; s <= b && s < NSLOTS; s++)
			if (s >= 0)
				cl->slots[s] = idx;
	}
	return true;
}

static pb_err_t map_read(pb_cluster_t *cl, pb_rconn_t *c, const char *host,
			 char *errstr, size_t errstr_size)
{
	const char *argv[2] = {"CLUSTER", "SLOTS"};
	char e[512];
	redisReply *r = pb_rconn_command(c, e, sizeof(e), 2, argv);
	bool ok = map_from(cl, r, host);
	pb_err_t err =
	    ok ? PB_OK
	       : pb_errf(errstr, errstr_size, PB_ERR_REDIS,
			 "Redis protocol: CLUSTER SLOTS at %s gave "
			 "no slot map (%s; is it a Cluster node, "
			 "and may the ACL user run CLUSTER?)",
			 pb_rconn_peer(c),
			 !r				? e
			 : r->type == REDIS_REPLY_ERROR ? r->str
							: "bad reply");
	if (r)
		pb_reply_free(r);
	return err;
}

/* Read the map again from a connected, idle node. */
static void map_refresh(pb_cluster_t *cl)
{
	cl->refresh = false;
	for (size_t i = 0; i < cl->nnodes; i++) {
		node_t *n = &cl->nodes[i];
		if (n->c && !n->inflight && n->qh == n->ql &&
		    map_read(cl, n->c, n->host, NULL, 0) == PB_OK)
			return;
	}
	cl->refresh = true; /* try again later; MOVED still works */
}

/* ---- open and close ----------------------------------------------------- */

pb_err_t pb_cluster_open(pb_redis_t *r, char *const *seeds, size_t nseeds,
			 size_t start, pb_cluster_t **out, pb_rc_fail_t *failp,
			 char *errstr, size_t errstr_size)
{
	pb_cluster_t *cl = calloc(1, sizeof(*cl));
	if (!cl)
		return PB_ERR_NOMEM;
	cl->r = r;
	pb_err_t err = pb_errf(errstr, errstr_size, PB_ERR_REDIS,
			       "Redis protocol: no Cluster node configured");
	for (size_t k = 0; k < nseeds; k++) {
		size_t i = (start + k) % nseeds;
		char host[256];
		int port;
		if (!pb_redis_split_hostport(seeds[i], host, sizeof(host),
					     &port))
			continue;
		pb_rconn_t *c = NULL;
		err = pb_redis_dial_node(r, host, port, &c, failp, errstr,
					 errstr_size);
		if (err)
			continue;
		err = map_read(cl, c, host, errstr, errstr_size);
		if (err) {
			if (failp)
				*failp = PB_RC_PROTOCOL;
			pb_rconn_close(c);
			continue;
		}
		int idx = node_index(cl, host, port);
		if (idx >= 0 && !cl->nodes[idx].c)
			cl->nodes[idx].c = c;
		else
			pb_rconn_close(c); /* a seed that serves no slot */
		*out = cl;
		return PB_OK;
	}
	pb_cluster_close(cl);
	return err;
}

static void group_free(group_t *g)
{
	free(g->bytes);
	free(g->fan);
}

void pb_cluster_close(pb_cluster_t *cl)
{
	if (!cl)
		return;
	for (size_t i = 0; i < cl->nnodes; i++) {
		pb_rconn_close(cl->nodes[i].c);
		free_queue(cl->nodes[i].q, cl->nodes[i].qh, cl->nodes[i].ql);
	}
	free(cl->nodes);
	for (size_t i = cl->gh; i < cl->gl; i++)
		group_free(&cl->g[i]);
	free(cl->g);
	free_queue(cl->out, cl->oh, cl->ol);
	free(cl);
}

/* ---- appending ---------------------------------------------------------- */

/* One RESP command of ours at buf[*off..len): its name and first argument
 * (the key for every command the worker sends with a key); *off moves past
 * it. False when malformed. */
static bool next_cmd(const char *buf, size_t len, size_t *off,
		     const char **name, size_t *name_len, const char **key,
		     size_t *key_len)
{
	size_t o = *off;
	if (o >= len || buf[o] != '*')
		return false;
	char *end;
	long argc = strtol(buf + o + 1, &end, 10);
	if (argc < 1 || (size_t)(end - buf) + 2 > len || end[0] != '\r')
		return false;
	o = (size_t)(end - buf) + 2;
	*key = NULL;
	*key_len = 0;
	for (long i = 0; i < argc; i++) {
		if (o >= len || buf[o] != '$')
			return false;
		long n = strtol(buf + o + 1, &end, 10);
		if (n < 0 || end[0] != '\r')
			return false;
		o = (size_t)(end - buf) + 2;
		if (o + (size_t)n + 2 > len)
			return false;
		if (i == 0) {
			*name = buf + o;
			*name_len = (size_t)n;
		} else if (i == 1) {
			*key = buf + o;
			*key_len = (size_t)n;
		}
		o += (size_t)n + 2;
	}
	*off = o;
	return true;
}

static bool is_cmd(const char *name, size_t n, const char *what)
{
	return n == strlen(what) && strncasecmp(name, what, n) == 0;
}

static bool group_push(pb_cluster_t *cl, group_t g)
{
	if (cl->gh == cl->gl)
		cl->gh = cl->gl = 0;
	if (cl->gl == cl->gcap) {
		size_t nc = cl->gcap ? cl->gcap * 2 : 256;
		group_t *n = realloc(cl->g, nc * sizeof(*n));
		if (!n)
			return false;
		cl->g = n;
		cl->gcap = nc;
	}
	cl->g[cl->gl++] = g;
	return true;
}

/* Send bytes to node i, owing n replies. */
static bool node_send(pb_cluster_t *cl, int i, const char *b, size_t len,
		      size_t n)
{
	if (node_conn(cl, i))
		return true; /* failed: the flush says so */
	if (!pb_rconn_append(cl->nodes[i].c, b, len))
		return false;
	cl->nodes[i].inflight += n;
	return true;
}

/* WAIT: to every node written since the last one (or the first node). */
static bool append_wait(pb_cluster_t *cl, const char *b, size_t len)
{
	group_t g = {.node = -1, .n = 1};
	g.fan = calloc(cl->nnodes ? cl->nnodes : 1, sizeof(int));
	if (!g.fan)
		return false;
	for (size_t i = 0; i < cl->nnodes; i++)
		if (cl->nodes[i].dirty) {
			cl->nodes[i].dirty = false;
			g.fan[g.nfan++] = (int)i;
		}
	if (!g.nfan)
		g.fan[g.nfan++] = cl->slots[0] >= 0 ? cl->slots[0] : 0;
	for (size_t k = 0; k < g.nfan; k++)
		if (!node_send(cl, g.fan[k], b, len, 1)) {
			free(g.fan);
			return false;
		}
	if (!group_push(cl, g)) {
		free(g.fan);
		return false;
	}
	return true;
}

/* A single command or a MULTI..EXEC block, routed by its first key. */
static bool append_group(pb_cluster_t *cl, const char *b, size_t len, size_t n,
			 const char *key, size_t key_len)
{
	int idx = key ? cl->slots[pb_cluster_slot(key, key_len)]
		      : (cl->slots[0] >= 0 ? cl->slots[0] : 0);
	if (idx < 0 || (size_t)idx >= cl->nnodes) {
		fail(cl, "Redis protocol: a slot is served by no Cluster node "
			 "(is the Cluster down or being set up?)");
		idx = 0;
		if (!cl->nnodes)
			return true;
	}
	group_t g = {.node = idx, .n = n, .len = len};
	g.bytes = malloc(len);
	if (!g.bytes)
		return false;
	memcpy(g.bytes, b, len);
	if (!node_send(cl, idx, b, len, n) || !group_push(cl, g)) {
		free(g.bytes);
		return false;
	}
	if (key)
		cl->nodes[idx].dirty = true;
	return true;
}

bool pb_cluster_append(pb_cluster_t *cl, const char *buf, size_t len)
{
	if (cl->refresh && cl->gh == cl->gl)
		map_refresh(cl);
	size_t off = 0;
	while (off < len) {
		size_t start = off, name_len, key_len;
		const char *name, *key;
		if (!next_cmd(buf, len, &off, &name, &name_len, &key, &key_len))
			return fail(cl, "internal: malformed Redis pipeline"),
			       true;
		if (is_cmd(name, name_len, "WAIT")) {
			if (!append_wait(cl, buf + start, off - start))
				return false;
			continue;
		}
		size_t n = 1;
		if (is_cmd(name, name_len, "MULTI")) {
			/* through EXEC; the first key routes the block */
			const char *k = NULL, *nm;
			size_t kl = 0, nl;
			do {
				const char *kk;
				size_t kkl;
				if (!next_cmd(buf, len, &off, &nm, &nl, &kk,
					      &kkl))
					return fail(cl, "internal: MULTI "
							"without EXEC"),
					       true;
				n++;
				if (!k && kk && !is_cmd(nm, nl, "EXEC")) {
					k = kk;
					kl = kkl;
				}
			} while (!is_cmd(nm, nl, "EXEC"));
			key = k;
			key_len = kl;
		} else if (is_cmd(name, name_len, "PING")) {
			key = NULL;
		}
		if (!append_group(cl, buf + start, off - start, n, key,
				  key_len))
			return false;
	}
	return true;
}

pb_err_t pb_cluster_flush(pb_cluster_t *cl, char *errstr, size_t errstr_size)
{
	if (cl->failed)
		return pb_errf(errstr, errstr_size, PB_ERR_REDIS, "%s",
			       cl->err);
	for (size_t i = 0; i < cl->nnodes; i++)
		if (cl->nodes[i].c &&
		    pb_rconn_flush(cl->nodes[i].c, errstr, errstr_size))
			return fail(cl, "a Redis Cluster node failed");
	return PB_OK;
}

/* ---- replies ------------------------------------------------------------ */

/* The first MOVED or ASK among replies[0..n): its node index, slot and
 * kind. */
static bool find_redirect(pb_cluster_t *cl, redisReply **rs, size_t n, int *idx,
			  int *slot, bool *ask)
{
	for (size_t i = 0; i < n; i++) {
		if (rs[i]->type != REDIS_REPLY_ERROR)
			continue;
		const char *s = rs[i]->str;
		*ask = strncmp(s, "ASK ", 4) == 0;
		if (!*ask && strncmp(s, "MOVED ", 6) != 0)
			continue;
		char *end;
		long sl = strtol(s + (*ask ? 4 : 6), &end, 10);
		char host[256];
		int port;
		if (sl < 0 || sl >= NSLOTS || *end != ' ' ||
		    !pb_redis_split_hostport(end + 1, host, sizeof(host),
					     &port))
			continue;
		*idx = node_index(cl, host, port);
		*slot = (int)sl;
		return *idx >= 0;
	}
	return false;
}

/* Send group g again to node i (after ASKING when ask) and take its
 * replies into rs[0..g->n). */
static pb_err_t resend(pb_cluster_t *cl, const group_t *g, int i, bool ask,
		       redisReply **rs)
{
	static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
	size_t extra = ask ? 1 : 0;
	if (node_conn(cl, i))
		return PB_ERR_REDIS;
	node_t *n = &cl->nodes[i];
	if ((ask && !pb_rconn_append(n->c, asking, sizeof(asking) - 1)) ||
	    !pb_rconn_append(n->c, g->bytes, g->len))
		return fail(cl, "out of memory resending to Redis Cluster");
	n->inflight += g->n + extra;
	n->dirty = true;
	char e[512];
	if (pb_rconn_flush(n->c, e, sizeof(e)))
		return fail(cl, e);
	size_t all = n->ql - n->qh + n->inflight;
	if (node_fill(cl, i, all, true) != 1)
		return PB_ERR_REDIS;
	n->ql -= g->n + extra;
	if (ask)
		pb_reply_free(n->q[n->ql]);
	memcpy(rs, n->q + n->ql + extra, g->n * sizeof(*rs));
	return PB_OK;
}

/* Follow MOVED / ASK for group g whose replies are rs (replaced). */
static pb_err_t follow(pb_cluster_t *cl, group_t *g, redisReply **rs)
{
	for (int t = 0; t < MAX_REDIRECTS; t++) {
		int idx, slot;
		bool ask;
		if (!find_redirect(cl, rs, g->n, &idx, &slot, &ask))
			return PB_OK;
		if (!ask) {
			cl->slots[slot] = idx;
			cl->refresh = true;
		}
		for (size_t k = 0; k < g->n; k++)
			pb_reply_free(rs[k]);
		memset(rs, 0, g->n * sizeof(*rs));
		if (resend(cl, g, idx, ask, rs))
			return PB_ERR_REDIS;
	}
	return fail(cl, "Redis Cluster: too many MOVED/ASK redirections "
			"(slots moving faster than they are followed)");
}

/* The replies of the head group, when all are in: 1 taken (pushed to
 * out), 0 not yet, -1 failed. */
static int take_head(pb_cluster_t *cl, bool wait)
{
	group_t *g = &cl->g[cl->gh];
	if (g->node < 0) {
		for (size_t k = 0; k < g->nfan; k++) {
			int rc = node_fill(cl, g->fan[k], 1, wait);
			if (rc != 1)
				return rc;
		}
		long long least = -1;
		redisReply *err = NULL;
		for (size_t k = 0; k < g->nfan; k++) {
			node_t *n = &cl->nodes[g->fan[k]];
			redisReply *r = n->q[n->qh++];
			if (r->type == REDIS_REPLY_INTEGER &&
			    (least < 0 || r->integer < least))
				least = r->integer;
			if (r->type != REDIS_REPLY_INTEGER && !err)
				err = r;
			else
				pb_reply_free(r);
		}
		redisReply *r = err ? err : int_reply(least < 0 ? 0 : least);
		if (!r || !push_reply(&cl->out, &cl->oh, &cl->ol, &cl->ocap, r))
			return fail(cl, "out of memory in Redis Cluster"), -1;
	} else {
		int rc = node_fill(cl, g->node, g->n, wait);
		if (rc != 1)
			return rc;
		node_t *n = &cl->nodes[g->node];
		redisReply **rs = calloc(g->n, sizeof(*rs));
		if (!rs)
			return fail(cl, "out of memory in Redis Cluster"), -1;
		memcpy(rs, n->q + n->qh, g->n * sizeof(*rs));
		n->qh += g->n;
		pb_err_t e = follow(cl, g, rs);
		for (size_t k = 0; k < g->n; k++)
			if (rs[k] &&
			    (e || !push_reply(&cl->out, &cl->oh, &cl->ol,
					      &cl->ocap, rs[k]))) {
				pb_reply_free(rs[k]);
				e = fail(cl, "out of memory in Redis Cluster");
			}
		free(rs);
		if (e)
			return -1;
	}
	group_free(g);
	cl->gh++;
	return 1;
}

pb_err_t pb_cluster_reply(pb_cluster_t *cl, bool wait, redisReply **out,
			  char *errstr, size_t errstr_size)
{
	*out = NULL;
	for (;;) {
		if (cl->failed)
			return pb_errf(errstr, errstr_size, PB_ERR_REDIS, "%s",
				       cl->err);
		if (cl->oh < cl->ol) {
			*out = cl->out[cl->oh++];
			return PB_OK;
		}
		if (cl->gh == cl->gl)
			return wait ? pb_errf(errstr, errstr_size, PB_ERR_REDIS,
					      "internal: no Redis reply is "
					      "awaited")
				    : PB_OK;
		int rc = take_head(cl, wait);
		if (rc < 0)
			return pb_errf(errstr, errstr_size, PB_ERR_REDIS, "%s",
				       cl->err);
		if (rc == 0)
			return PB_OK;
	}
}

int pb_cluster_fd(const pb_cluster_t *cl)
{
	if (cl->gh == cl->gl)
		return -1;
	const group_t *g = &cl->g[cl->gh];
	if (g->node >= 0)
		return pb_rconn_fd(cl->nodes[g->node].c);
	for (size_t k = 0; k < g->nfan; k++) {
		const node_t *n = &cl->nodes[g->fan[k]];
		if (n->qh == n->ql)
			return pb_rconn_fd(n->c);
	}
	return -1;
}

bool pb_cluster_node_at(const pb_cluster_t *cl, size_t i, const char **host,
			int *port, bool *serves)
{
	if (i >= cl->nnodes)
		return false;
	*host = cl->nodes[i].host;
	*port = cl->nodes[i].port;
	*serves = false;
	for (size_t s = 0; s < NSLOTS && !*serves; s++)
		*serves = cl->slots[s] == (int)i;
	return true;
}
