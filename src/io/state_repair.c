/*
 * state_repair.c: the order-expiry sweep (see state_repair.h).
 *
 * Invariants: every reply of a round trip is read before the next is
 * sent (an unread reply would shift the answers); a connection that
 * failed is closed, never used again; nothing is written but SET of the
 * marker and PERSIST of hashes holding order fields and an expiry.
 */
#include "state_repair.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "redis_cluster.h"
#include "state.h"
#include "util.h"

#define N_FIELDS PB_STATE_N_ORDER_FIELDS /* the order's own (state.h) */

#define REDIS_TIMEOUT_MS 2000
#define BACKOFF_FIRST_MS 5000
#define BACKOFF_MAX_MS	 300000
#define BUSY_TRIES	 12 /* asks while another sweeps, a lease apart */

const char *pb_repair_result_name(pb_repair_result_t r)
{
	switch (r) {
	case PB_REPAIR_SWEPT:
		return "swept";
	case PB_REPAIR_WAS_DONE:
		return "was done";
	case PB_REPAIR_BUSY:
		return "busy";
	case PB_REPAIR_STOPPED:
		return "stopped";
	case PB_REPAIR_EMPTY:
		return "empty";
	case PB_REPAIR_REFUSED:
		return "refused";
	case PB_REPAIR_FAILED:
		break;
	}
	return "failed";
}

char *pb_repair_pattern_new(const char *prefix)
{
	static const char tail[] = "{*}:o";
	if (!prefix)
		prefix = "pb:";
	size_t n = strlen(prefix);
	char *s = malloc(2 * n + sizeof(tail));
	if (!s)
		return NULL;
	char *o = s;
	for (size_t i = 0; i < n; i++) {
		if (strchr("*?[]\\", prefix[i]))
			*o++ = '\\';
		*o++ = prefix[i];
	}
	memcpy(o, tail, sizeof(tail));
	return s;
}

/* ---- round trips -------------------------------------------------------- */

typedef struct {
	pb_rconn_t *c;
	size_t n;
	bool bad; /* out of memory: the connection must be dropped */
} batch_t;

static void batch_cmd(batch_t *b, int argc, const char **argv,
		      const size_t *argvlen)
{
	char *cmd = NULL;
	int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
	if (len < 0 || !pb_rconn_append(b->c, cmd, (size_t)len))
		b->bad = true;
	else
		b->n++;
	if (len >= 0)
		redisFreeCommand(cmd);
}

/* Flush and read every reply into rs[0..b->n) (NULL where none came;
 * the caller frees them). */
static pb_err_t batch_run(batch_t *b, redisReply **rs, char *errstr,
			  size_t errstr_size)
{
	memset(rs, 0, b->n * sizeof(*rs));
	if (b->bad)
		return pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			       "out of memory building a Redis pipeline");
	pb_err_t err = pb_rconn_flush(b->c, errstr, errstr_size);
	for (size_t i = 0; !err && i < b->n; i++) {
		err = pb_rconn_reply(b->c, true, &rs[i], errstr, errstr_size);
		if (!err && !rs[i])
			err = pb_errf(errstr, errstr_size, PB_ERR_REDIS,
				      "Redis at %s sent no reply",
				      pb_rconn_peer(b->c));
	}
	return err;
}

static void replies_free(redisReply **rs, size_t n)
{
	for (size_t i = 0; rs && i < n; i++)
		pb_reply_free(rs[i]);
	free(rs);
}

/* ---- the marker --------------------------------------------------------- */

typedef struct {
	pb_rconn_t *c; /* the marker's connection (routed by key in Cluster) */
	char *key;
	char token[192]; /* this sweeper's lease value */
	char px[24];
} lease_t;

static bool is_str(const redisReply *r, const char *s)
{
	return r && r->type == REDIS_REPLY_STRING && strcmp(r->str, s) == 0;
}

/* One command on the marker; NULL with errstr set when it failed or
 * Redis refused it. */
static redisReply *marker_cmd(lease_t *l, int argc, const char **argv,
			      char *errstr, size_t errstr_size)
{
	redisReply *r = pb_rconn_command(l->c, errstr, errstr_size, argc, argv);
	if (r && r->type == REDIS_REPLY_ERROR) {
		pb_errf(errstr, errstr_size, PB_ERR_REDIS,
			"Redis refused %s of the marker %s: %s", argv[0],
			l->key, r->str);
		pb_reply_free(r);
		return NULL;
	}
	return r;
}

/* What the marker says now: WAS_DONE, SWEPT (this sweeper's lease),
 * BUSY (another's, or none) or FAILED. */
static pb_repair_result_t lease_read(lease_t *l, char *errstr,
				     size_t errstr_size)
{
	const char *get[] = {"GET", l->key};
	redisReply *r = marker_cmd(l, 2, get, errstr, errstr_size);
	if (!r)
		return PB_REPAIR_FAILED;
	pb_repair_result_t res = is_str(r, PB_REPAIR_DONE_VALUE)
				     ? PB_REPAIR_WAS_DONE
				 : is_str(r, l->token) ? PB_REPAIR_SWEPT
						       : PB_REPAIR_BUSY;
	pb_reply_free(r);
	return res;
}

static pb_repair_result_t lease_renew(lease_t *l, char *errstr,
				      size_t errstr_size);

/* SET NX PX: SWEPT when taken, or when the lease is this sweeper's own
 * (its token, left by a sweep of it that failed: renewed), else what the
 * marker says. */
static pb_repair_result_t lease_take(lease_t *l, char *errstr,
				     size_t errstr_size)
{
	const char *set[] = {"SET", l->key, l->token, "NX", "PX", l->px};
	redisReply *r = marker_cmd(l, 6, set, errstr, errstr_size);
	if (!r)
		return PB_REPAIR_FAILED;
	bool taken = r->type == REDIS_REPLY_STATUS;
	pb_reply_free(r);
	if (taken)
		return PB_REPAIR_SWEPT;
	pb_repair_result_t res = lease_read(l, errstr, errstr_size);
	return res == PB_REPAIR_SWEPT ? lease_renew(l, errstr, errstr_size)
				      : res;
}

/* Renew the lease while it is still this sweeper's (state_repair.h:
 * losing it between the GET and the SET only means two sweepers). */
static pb_repair_result_t lease_renew(lease_t *l, char *errstr,
				      size_t errstr_size)
{
	pb_repair_result_t res = lease_read(l, errstr, errstr_size);
	if (res != PB_REPAIR_SWEPT)
		return res;
	const char *set[] = {"SET", l->key, l->token, "XX", "PX", l->px};
	redisReply *r = marker_cmd(l, 6, set, errstr, errstr_size);
	if (!r)
		return PB_REPAIR_FAILED;
	pb_reply_free(r);
	return PB_REPAIR_SWEPT;
}

static pb_repair_result_t lease_finish(lease_t *l, char *errstr,
				       size_t errstr_size)
{
	const char *set[] = {"SET", l->key, PB_REPAIR_DONE_VALUE};
	redisReply *r = marker_cmd(l, 3, set, errstr, errstr_size);
	if (!r)
		return PB_REPAIR_FAILED;
	pb_reply_free(r);
	return PB_REPAIR_SWEPT;
}

/* ---- one master --------------------------------------------------------- */

typedef struct {
	const pb_repair_opts_t *o;
	const char *pattern;
	char count[16];
	lease_t *lease;
	pb_repair_stats_t *total;
	int64_t next_report;
	uint32_t *map; /* the Cluster's slot map before; NULL: no Cluster */
} sweep_t;

static bool hmget_has_order(const redisReply *h)
{
	if (!h || h->type != REDIS_REPLY_ARRAY)
		return false; /* not a hash (WRONGTYPE): not an order's */
	for (size_t j = 0; j < h->elements; j++)
		if (h->element[j]->type == REDIS_REPLY_STRING)
			return true;
	return false;
}

/* PERSIST each key[i] with mark[i]; *persisted counts those Redis kept. */
static pb_err_t page_persist(pb_rconn_t *c, redisReply *keys, const bool *mark,
			     uint64_t *persisted, char *errstr,
			     size_t errstr_size)
{
	batch_t b = {.c = c};
	for (size_t i = 0; i < keys->elements; i++) {
		if (!mark[i])
			continue;
		const char *argv[] = {"PERSIST", keys->element[i]->str};
		size_t len[] = {7, keys->element[i]->len};
		batch_cmd(&b, 2, argv, len);
	}
	if (!b.n && !b.bad)
		return PB_OK;
	redisReply **rs = calloc(b.n ? b.n : 1, sizeof(*rs));
	if (!rs)
		return pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			       "out of memory");
	pb_err_t err = batch_run(&b, rs, errstr, errstr_size);
	for (size_t i = 0; !err && i < b.n; i++) {
		if (rs[i]->type == REDIS_REPLY_ERROR)
			err = pb_errf(errstr, errstr_size, PB_ERR_REDIS,
				      "Redis at %s refused PERSIST: %s",
				      pb_rconn_peer(c), rs[i]->str);
		else if (rs[i]->type == REDIS_REPLY_INTEGER &&
			 rs[i]->integer == 1)
			(*persisted)++;
	}
	replies_free(rs, b.n);
	return err;
}

/* One page of keys: PTTL and HMGET of each, then PERSIST where due. */
static pb_err_t page_check(pb_rconn_t *c, redisReply *keys, uint64_t *persisted,
			   char *errstr, size_t errstr_size)
{
	size_t n = keys->elements;
	if (!n)
		return PB_OK;
	batch_t b = {.c = c};
	for (size_t i = 0; i < n; i++) {
		const redisReply *k = keys->element[i];
		if (k->type != REDIS_REPLY_STRING)
			return pb_errf(errstr, errstr_size, PB_ERR_REDIS,
				       "Redis at %s: SCAN gave a key that "
				       "is no string",
				       pb_rconn_peer(c));
		const char *pt[] = {"PTTL", k->str};
		size_t ptl[] = {4, k->len};
		batch_cmd(&b, 2, pt, ptl);
		const char *hm[2 + N_FIELDS] = {"HMGET", k->str};
		size_t hml[2 + N_FIELDS] = {5, k->len};
		for (size_t j = 0; j < N_FIELDS; j++) {
			hm[2 + j] = pb_state_order_fields[j];
			hml[2 + j] = strlen(pb_state_order_fields[j]);
		}
		batch_cmd(&b, 2 + N_FIELDS, hm, hml);
	}
	redisReply **rs = calloc(2 * n, sizeof(*rs));
	bool *mark = calloc(n, sizeof(*mark));
	pb_err_t err = rs && mark ? batch_run(&b, rs, errstr, errstr_size)
				  : pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
					    "out of memory");
	for (size_t i = 0; !err && i < n; i++) {
		const redisReply *pt = rs[2 * i];
		if (pt->type != REDIS_REPLY_INTEGER)
			err = pb_errf(errstr, errstr_size, PB_ERR_REDIS,
				      "Redis at %s answered PTTL with %s "
				      "(a slot moving, or the ACL user may "
				      "not run PTTL)",
				      pb_rconn_peer(c),
				      pt->type == REDIS_REPLY_ERROR
					  ? pt->str
					  : "another type");
		else
			mark[i] =
			    pt->integer > 0 && hmget_has_order(rs[2 * i + 1]);
	}
	if (!err)
		err =
		    page_persist(c, keys, mark, persisted, errstr, errstr_size);
	replies_free(rs, rs ? 2 * n : 0);
	free(mark);
	return err;
}

static void log_counts(const char *msg, const char *master, uint64_t scanned,
		       uint64_t persisted, const pb_repair_stats_t *t)
{
	char s[24], p[24], ts[24], tp[24];
	snprintf(s, sizeof(s), "%" PRIu64, scanned);
	snprintf(p, sizeof(p), "%" PRIu64, persisted);
	snprintf(ts, sizeof(ts), "%" PRIu64, t->scanned);
	snprintf(tp, sizeof(tp), "%" PRIu64, t->persisted);
	pb_log(PB_LOG_INFO, msg, "master", master, "keys_scanned", s,
	       "hashes_persisted", p, "total_keys_scanned", ts,
	       "total_hashes_persisted", tp, NULL);
}

/* SCAN's reply: the next cursor into cursor, the keys into *keys. */
static pb_err_t scan_parse(pb_rconn_t *c, redisReply *r, char *cursor,
			   size_t size, redisReply **keys, char *errstr,
			   size_t errstr_size)
{
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_STRING &&
	    r->element[0]->len < size &&
	    r->element[1]->type == REDIS_REPLY_ARRAY) {
		pb_strlcpy(cursor, r->element[0]->str, size);
		*keys = r->element[1];
		return PB_OK;
	}
	return pb_errf(
	    errstr, errstr_size, PB_ERR_REDIS,
	    "Redis at %s answered SCAN with %s (may the ACL user "
	    "run SCAN?)",
	    pb_rconn_peer(c),
	    r && r->type == REDIS_REPLY_ERROR ? r->str : "no cursor and keys");
}

/* Between pages: renew the lease, report, pause; SWEPT to go on. */
static pb_repair_result_t between_pages(sweep_t *s, const char *master,
					uint64_t scanned, uint64_t persisted,
					char *errstr, size_t errstr_size)
{
	pb_repair_result_t res = lease_renew(s->lease, errstr, errstr_size);
	if (res != PB_REPAIR_SWEPT)
		return res;
	if (pb_mono_ms() >= s->next_report) {
		log_counts("order-expiry repair progress", master, scanned,
			   persisted, s->total);
		s->next_report = pb_mono_ms() + s->o->report_ms;
	}
	if (s->o->nap && s->o->nap(s->o->nap_ctx, s->o->pause_ms))
		return PB_REPAIR_STOPPED;
	return PB_REPAIR_SWEPT;
}

static pb_repair_result_t sweep_master(sweep_t *s, pb_rconn_t *c, char *errstr,
				       size_t errstr_size)
{
	char cursor[32] = "0";
	char master[300];
	pb_strlcpy(master, pb_rconn_peer(c), sizeof(master));
	uint64_t scanned = 0, persisted = 0;
	pb_repair_result_t res = PB_REPAIR_SWEPT;
	do {
		const char *argv[] = {"SCAN",	  cursor,  "MATCH",
				      s->pattern, "COUNT", s->count};
		char e[512] = "";
		redisReply *r = pb_rconn_command(c, e, sizeof(e), 6, argv);
		redisReply *keys = NULL;
		pb_err_t err =
		    r ? scan_parse(c, r, cursor, sizeof(cursor), &keys, errstr,
				   errstr_size)
		      : pb_errf(errstr, errstr_size, PB_ERR_REDIS, "%s", e);
		uint64_t p0 = persisted;
		if (!err)
			err = page_check(c, keys, &persisted, errstr,
					 errstr_size);
		if (!err)
			scanned += keys->elements;
		s->total->scanned += err ? 0 : keys->elements;
		s->total->persisted += persisted - p0;
		pb_reply_free(r);
		if (err)
			return PB_REPAIR_FAILED;
		if (strcmp(cursor, "0") != 0)
			res = between_pages(s, master, scanned, persisted,
					    errstr, errstr_size);
	} while (res == PB_REPAIR_SWEPT && strcmp(cursor, "0") != 0);
	if (res == PB_REPAIR_SWEPT)
		log_counts("order-expiry repair swept a master", master,
			   scanned, persisted, s->total);
	return res;
}

/* ---- the Cluster's slot map --------------------------------------------- */

/* Each master is swept on its own, so the sweep covers every key only if
 * no slot changes master while it runs: a key that leaves a master not
 * swept yet for one swept already is on no master while it is swept.
 * The map (CLUSTER SLOTS) is read from the first master before the sweep
 * and from every master after it; a slot whose master changed, or one
 * whose master was not dialled, fails the sweep instead of setting the
 * marker "done" (the next sweep starts over; the repairs made stay). A
 * slot still being migrated at the end reads as before, though keys it
 * moved may have been missed: a PTTL of a key in each slot, sent to the
 * slot's master, finds it (ASK); during the sweep such a slot shows as
 * MOVED or ASK to PTTL or PERSIST. A slot moved and moved back between
 * the two reads goes unseen. */

#define N_SLOTS 16384

/* A slot's master as a number, FNV-1a of host:port; 0: no master. */
static uint32_t owner_of(const char *host, long long port)
{
	char s[300];
	int n = snprintf(s, sizeof(s), "%s:%lld", host, port);
	uint32_t h = 2166136261u;
	for (int i = 0; i < n && i < (int)sizeof(s); i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h ? h : 1;
}

/* The host of c's peer into host ("" when it has none). */
static int peer_host(pb_rconn_t *c, char *host, size_t size)
{
	int port = 0;
	if (!pb_redis_split_hostport(pb_rconn_peer(c), host, size, &port))
		host[0] = '\0';
	return port;
}

/* The master c is connected to, as the map names it. */
static uint32_t master_of(pb_rconn_t *c)
{
	char host[256];
	int port = peer_host(c, host, sizeof(host));
	return owner_of(host, port);
}

static bool slots_entry_ok(const redisReply *e)
{
	return e->type == REDIS_REPLY_ARRAY && e->elements >= 3 &&
	       e->element[0]->type == REDIS_REPLY_INTEGER &&
	       e->element[1]->type == REDIS_REPLY_INTEGER &&
	       e->element[2]->type == REDIS_REPLY_ARRAY &&
	       e->element[2]->elements >= 2 &&
	       e->element[2]->element[0]->type == REDIS_REPLY_STRING &&
	       e->element[2]->element[1]->type == REDIS_REPLY_INTEGER;
}

/* map[slot] = its master as c sees it (CLUSTER SLOTS). */
static pb_err_t map_read(pb_rconn_t *c, uint32_t *map, char *errstr,
			 size_t errstr_size)
{
	const char *argv[] = {"CLUSTER", "SLOTS"};
	char e[512] = "";
	redisReply *r = pb_rconn_command(c, e, sizeof(e), 2, argv);
	if (!r)
		return pb_errf(errstr, errstr_size, PB_ERR_REDIS, "%s", e);
	char self[256];
	peer_host(c, self, sizeof(self));
	memset(map, 0, N_SLOTS * sizeof(*map));
	bool ok = r->type == REDIS_REPLY_ARRAY;
	for (size_t i = 0; ok && i < r->elements; i++) {
		const redisReply *en = r->element[i];
		if (!(ok = slots_entry_ok(en)))
			break;
		const redisReply *m = en->element[2];
		uint32_t o =
		    owner_of(m->element[0]->len ? m->element[0]->str : self,
			     m->element[1]->integer);
		for (long long s = en->element[0]->integer;
		     s <= en->element[1]->integer && s < N_SLOTS; s++)
			if (s >= 0)
				map[s] = o;
	}
	pb_err_t err = PB_OK;
	if (!ok)
		err = pb_errf(errstr, errstr_size, PB_ERR_REDIS,
			      "Redis at %s answered CLUSTER SLOTS with %s (may "
			      "the ACL user run CLUSTER SLOTS?)",
			      pb_rconn_peer(c),
			      r->type == REDIS_REPLY_ERROR ? r->str
							   : "no slot map");
	pb_reply_free(r);
	return err;
}

static pb_err_t map_changed(int slot, const char *peer, char *errstr,
			    size_t errstr_size)
{
	return pb_errf(errstr, errstr_size, PB_ERR_REDIS,
		       "the Redis Cluster slot map changed while the "
		       "order-expiry repair swept (slot %d has another master "
		       "as %s sees it: a resharding or a failover), so keys "
		       "that moved may have been missed; the hashes repaired "
		       "stay and the sweep starts over",
		       slot, peer);
}

/* The map before the sweep, from m[0], into *out (malloc'd); every slot's
 * master must be one of m[0..n). */
static pb_repair_result_t map_start(pb_rconn_t **m, size_t n, uint32_t **out,
				    char *errstr, size_t errstr_size)
{
	uint32_t *map = calloc(N_SLOTS, sizeof(*map));
	uint32_t *masters = calloc(n ? n : 1, sizeof(*masters));
	pb_err_t err =
	    n && map && masters
		? map_read(m[0], map, errstr, errstr_size)
		: pb_errf(errstr, errstr_size, PB_ERR_NOMEM, "out of memory");
	for (size_t i = 0; !err && i < n; i++)
		masters[i] = master_of(m[i]);
	for (int s = 0; !err && s < N_SLOTS; s++) {
		size_t i = 0;
		while (map[s] && i < n && masters[i] != map[s])
			i++;
		if (i == n)
			err = map_changed(s, pb_rconn_peer(m[0]), errstr,
					  errstr_size);
	}
	free(masters);
	if (err) {
		free(map);
		return PB_REPAIR_FAILED;
	}
	*out = map;
	return PB_REPAIR_SWEPT;
}

/* tag[slot]: a number n whose key "...{n}" is in slot. */
static void probe_tags(uint32_t *tag)
{
	memset(tag, 0xff, N_SLOTS * sizeof(*tag));
	size_t left = N_SLOTS; /* about 170000 numbers cover every slot */
	for (uint32_t i = 0; left && i < UINT32_MAX; i++) {
		char t[16];
		int len = snprintf(t, sizeof(t), "%" PRIu32, i);
		unsigned sl = pb_cluster_slot(t, (size_t)len);
		if (tag[sl] == UINT32_MAX) {
			tag[sl] = i;
			left--;
		}
	}
}

/* PTTL of a key no one writes (PREFIXrepair:probe:{n}) in each slot the
 * map gives c's master: a master answers ASK for a key it does not hold
 * while that key's slot is migrated away, a change the map does not show
 * until SETSLOT NODE. */
static pb_err_t probe_master(pb_rconn_t *c, const uint32_t *map,
			     const uint32_t *tag, const char *prefix,
			     char *errstr, size_t errstr_size)
{
	uint32_t self = master_of(c);
	batch_t b = {.c = c};
	for (int sl = 0; sl < N_SLOTS; sl++) {
		if (map[sl] != self)
			continue;
		char key[512];
		int len =
		    snprintf(key, sizeof(key), "%srepair:probe:{%" PRIu32 "}",
			     prefix, tag[sl]);
		const char *argv[] = {"PTTL", key};
		size_t lens[] = {4, len < (int)sizeof(key) ? (size_t)len
							   : sizeof(key) - 1};
		batch_cmd(&b, 2, argv, lens);
	}
	redisReply **rs = calloc(b.n ? b.n : 1, sizeof(*rs));
	pb_err_t err =
	    rs ? batch_run(&b, rs, errstr, errstr_size)
	       : pb_errf(errstr, errstr_size, PB_ERR_NOMEM, "out of memory");
	for (int sl = 0, k = 0; !err && sl < N_SLOTS; sl++) {
		if (map[sl] != self)
			continue;
		const redisReply *x = rs[k++];
		if (x->type != REDIS_REPLY_ERROR)
			continue;
		bool moving = strncmp(x->str, "ASK ", 4) == 0 ||
			      strncmp(x->str, "MOVED ", 6) == 0;
		err = moving ? pb_errf(errstr, errstr_size, PB_ERR_REDIS,
				       "Redis Cluster slot %d is being "
				       "migrated as the order-expiry repair "
				       "ends (%s answered PTTL with %s), so "
				       "keys it moved may have been missed; "
				       "the hashes repaired stay and the "
				       "sweep starts over",
				       sl, pb_rconn_peer(c), x->str)
			     : pb_errf(errstr, errstr_size, PB_ERR_REDIS,
				       "Redis at %s refused PTTL: %s",
				       pb_rconn_peer(c), x->str);
	}
	replies_free(rs, rs ? b.n : 0);
	return err;
}

/* After the sweep: SWEPT when every master still gives the map before
 * and no slot is being migrated. */
static pb_repair_result_t map_same(const uint32_t *before, const char *prefix,
				   pb_rconn_t **m, size_t n, char *errstr,
				   size_t errstr_size)
{
	uint32_t *now = calloc(N_SLOTS, sizeof(*now));
	pb_err_t err =
	    now ? PB_OK
		: pb_errf(errstr, errstr_size, PB_ERR_NOMEM, "out of memory");
	for (size_t i = 0; !err && i < n; i++) {
		err = map_read(m[i], now, errstr, errstr_size);
		for (int s = 0; !err && s < N_SLOTS; s++)
			if (now[s] != before[s])
				err = map_changed(s, pb_rconn_peer(m[i]),
						  errstr, errstr_size);
	}
	if (!err)
		probe_tags(now); /* now the tags */
	for (size_t i = 0; !err && i < n; i++)
		err = probe_master(m[i], before, now, prefix, errstr,
				   errstr_size);
	free(now);
	return err ? PB_REPAIR_FAILED : PB_REPAIR_SWEPT;
}

/* ---- the sweep ---------------------------------------------------------- */

/* A new sweeper's lease value: sweeping:HOST:PID:WALL_MS. */
static void token_make(char *out, size_t size)
{
	char host[64] = "";
	if (gethostname(host, sizeof(host) - 1) != 0)
		pb_strlcpy(host, "unknown", sizeof(host));
	snprintf(out, size, "sweeping:%s:%ld:%" PRId64, host, (long)getpid(),
		 pb_wall_ms());
}

static void lease_init(lease_t *l, const pb_repair_opts_t *o, int lease_ms)
{
	const char *p = o->prefix ? o->prefix : "pb:";
	size_t n = strlen(p) + sizeof(PB_REPAIR_MARKER);
	l->key = malloc(n);
	if (l->key)
		snprintf(l->key, n, "%s%s", p, PB_REPAIR_MARKER);
	if (o->token)
		pb_strlcpy(l->token, o->token, sizeof(l->token));
	else
		token_make(l->token, sizeof(l->token));
	snprintf(l->px, sizeof(l->px), "%d", lease_ms);
}

/* Every master (m[0..n)), in turn, then the marker "done". */
static pb_repair_result_t sweep_all(sweep_t *s, pb_rconn_t **m, size_t n,
				    char *errstr, size_t errstr_size)
{
	s->total->masters = n;
	char nm[16];
	snprintf(nm, sizeof(nm), "%zu", n);
	pb_log(PB_LOG_INFO, "order-expiry repair started", "marker",
	       s->lease->key, "masters", nm, "match", s->pattern, NULL);
	int64_t t0 = pb_mono_ms();
	pb_repair_result_t res = PB_REPAIR_SWEPT;
	for (size_t i = 0; res == PB_REPAIR_SWEPT && i < n; i++)
		res = s->o->nap && s->o->nap(s->o->nap_ctx, 0)
			  ? PB_REPAIR_STOPPED
			  : sweep_master(s, m[i], errstr, errstr_size);
	if (res == PB_REPAIR_SWEPT && s->map)
		res = map_same(s->map, s->o->prefix ? s->o->prefix : "pb:", m,
			       n, errstr, errstr_size);
	if (res == PB_REPAIR_SWEPT)
		res = lease_finish(s->lease, errstr, errstr_size);
	if (res == PB_REPAIR_STOPPED)
		pb_log(PB_LOG_INFO,
		       "order-expiry repair stopped before its end (shutting "
		       "down): a later start sweeps again once the lease "
		       "expires",
		       "marker", s->lease->key, NULL);
	if (res == PB_REPAIR_SWEPT) {
		char ms[24];
		snprintf(ms, sizeof(ms), "%" PRId64, pb_mono_ms() - t0);
		char sc[24], pe[24];
		snprintf(sc, sizeof(sc), "%" PRIu64, s->total->scanned);
		snprintf(pe, sizeof(pe), "%" PRIu64, s->total->persisted);
		pb_log(PB_LOG_INFO, "order-expiry repair finished", "marker",
		       s->lease->key, "masters", nm, "keys_scanned", sc,
		       "hashes_persisted", pe, "duration_ms", ms, NULL);
	}
	return res;
}

/* EMPTY when no master holds a key (DBSIZE 0 on each), SWEPT when some
 * does (the sweep goes on), FAILED. An empty Redis is left empty: the
 * worker takes a Redis with no key at its first start for one that no
 * earlier build wrote to (state_layout.h), and the marker written before
 * that start's first commit would make it write an earlier build's marks
 * too for a whole upgrade window. */
static pb_repair_result_t empty_check(pb_rconn_t **c, size_t n, char *errstr,
				      size_t errstr_size)
{
	bool empty, dbsize_refused;
	if (pb_rconn_all_empty(c, n, &empty, &dbsize_refused, errstr,
			       errstr_size))
		return PB_REPAIR_FAILED;
	return empty ? PB_REPAIR_EMPTY : PB_REPAIR_SWEPT;
}

/* A failure that names Redis's own refusal of a command: an ACL user
 * without it (NOPERM) or a command renamed away (unknown command). Every
 * error text of this module quotes Redis's reply as it came. */
static bool refused(const char *errstr)
{
	return strstr(errstr, "NOPERM") || strstr(errstr, "unknown command");
}

static void log_skip(pb_repair_result_t res, const char *key)
{
	if (res == PB_REPAIR_EMPTY)
		pb_log(PB_LOG_INFO,
		       "order-expiry repair: Redis holds no key, nothing to "
		       "repair",
		       "marker", key, NULL);
	else if (res == PB_REPAIR_WAS_DONE)
		pb_log(PB_LOG_INFO,
		       "order-expiry repair already done: nothing to do",
		       "marker", key, NULL);
	else if (res == PB_REPAIR_BUSY)
		pb_log(PB_LOG_INFO,
		       "order-expiry repair: another replica holds the "
		       "sweep's lease",
		       "marker", key, NULL);
}

pb_repair_result_t pb_repair_sweep(pb_redis_t *r, const pb_repair_opts_t *o,
				   pb_repair_stats_t *stats, char *errstr,
				   size_t errstr_size)
{
	memset(stats, 0, sizeof(*stats));
	lease_t l = {0};
	lease_init(&l, o, o->lease_ms > 0 ? o->lease_ms : PB_REPAIR_LEASE_MS);
	sweep_t s = {.o = o, .lease = &l, .total = stats};
	char *pattern = pb_repair_pattern_new(o->prefix);
	s.pattern = pattern;
	snprintf(s.count, sizeof(s.count), "%d",
		 o->page > 0 ? o->page : PB_REPAIR_PAGE);
	pb_repair_opts_t oo = *o;
	if (oo.report_ms <= 0)
		oo.report_ms = PB_REPAIR_REPORT_MS;
	s.o = &oo;
	s.next_report = pb_mono_ms() + oo.report_ms;
	/* every master's connection, for the empty check and the sweep */
	pb_rconn_t **m = NULL;
	size_t n = 0;
	pb_repair_result_t res = PB_REPAIR_FAILED;
	if (!l.key || !pattern)
		pb_errf(errstr, errstr_size, PB_ERR_NOMEM, "out of memory");
	else if (pb_redis_dial_masters(r, &m, &n, NULL, errstr, errstr_size))
		; /* failed */
	else if ((res = empty_check(m, n, errstr, errstr_size)) !=
		 PB_REPAIR_SWEPT)
		; /* empty, or failed */
	else if (pb_redis_is_cluster(r) &&
		 (res = map_start(m, n, &s.map, errstr, errstr_size)) !=
		     PB_REPAIR_SWEPT)
		; /* failed */
	else if (pb_redis_dial(r, &l.c, NULL, errstr, errstr_size) == PB_OK)
		res = lease_take(&l, errstr, errstr_size);
	else
		res = PB_REPAIR_FAILED;
	if (res == PB_REPAIR_SWEPT)
		res = sweep_all(&s, m, n, errstr, errstr_size);
	else
		log_skip(res, l.key);
	if (res == PB_REPAIR_FAILED && refused(errstr))
		res = PB_REPAIR_REFUSED;
	pb_redis_masters_close(m, n);
	pb_rconn_close(l.c);
	free(l.key);
	free(pattern);
	free(s.map);
	return res;
}

/* ---- the background thread ---------------------------------------------- */

struct pb_repair {
	pb_redis_t *redis;
	pb_metrics_t *m; /* borrowed, may be NULL */
	char *prefix;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC */
	bool stop;	   /* guarded by mu */
	_Atomic uint64_t persisted;
};

static bool thread_nap(void *ctx, int ms)
{
	pb_repair_t *rp = ctx;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&rp->mu);
	int rc = 0;
	while (!rp->stop && ms > 0 && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&rp->cv, &rp->mu, &ts);
	bool stop = rp->stop;
	pthread_mutex_unlock(&rp->mu);
	return stop;
}

/* What the failure's log line says to do. A slot that moved (the map
 * check, or MOVED / ASK quoted from Redis) needs nothing but time. */
static const char *what_to_do(const char *err)
{
	if (strstr(err, "slot map changed") || strstr(err, "being migrated") ||
	    strstr(err, " MOVED ") || strstr(err, " ASK "))
		return "nothing while a resharding or failover runs: the "
		       "hashes repaired stay and the sweep starts over by "
		       "itself; if this repeats once it ended, check the "
		       "Cluster (redis-cli --cluster check)";
	return "check that Redis is reachable and that the ACL user may run "
	       "SCAN, PTTL, PERSIST, GET and SET; the sweep starts over by "
	       "itself";
}

/* After a sweep that did not finish: how long until the next (0: none). */
static int next_try(pb_repair_result_t res, const char *err, int *backoff,
		    int *busy)
{
	char s[24];
	if (res == PB_REPAIR_BUSY) {
		if (++*busy > BUSY_TRIES) {
			pb_log(PB_LOG_WARN,
			       "order-expiry repair not run: another replica "
			       "kept its lease all along",
			       "what_to_do",
			       "look for the replica sweeping (its log says "
			       "order-expiry repair); the next start sweeps "
			       "if it never finished",
			       NULL);
			return 0;
		}
		return PB_REPAIR_LEASE_MS + 1000;
	}
	snprintf(s, sizeof(s), "%d", *backoff / 1000);
	pb_log(PB_LOG_ERROR, "order-expiry repair failed", "error", err,
	       "what_to_do", what_to_do(err), "retry_in_s", s, NULL);
	int wait = *backoff;
	*backoff =
	    *backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *backoff * 2;
	return wait;
}

static void *repair_main(void *arg)
{
	pb_repair_t *rp = arg;
	char token[192]; /* one for every try: a retry retakes the lease */
	token_make(token, sizeof(token));
	pb_repair_opts_t o = {.prefix = rp->prefix,
			      .pause_ms = PB_REPAIR_PAUSE_MS,
			      .nap = thread_nap,
			      .nap_ctx = rp,
			      .token = token};
	int backoff = BACKOFF_FIRST_MS, busy = 0;
	for (;;) {
		char err[512] = "";
		pb_repair_stats_t st;
		pb_repair_result_t res =
		    pb_repair_sweep(rp->redis, &o, &st, err, sizeof(err));
		atomic_fetch_add(&rp->persisted, st.persisted);
		if (rp->m && st.persisted)
			pb_metrics_add(rp->m, PB_M_ORDER_EXPIRY_REPAIRED, "",
				       (double)st.persisted);
		if (res == PB_REPAIR_SWEPT || res == PB_REPAIR_WAS_DONE ||
		    res == PB_REPAIR_STOPPED || res == PB_REPAIR_EMPTY)
			break;
		if (res == PB_REPAIR_REFUSED) {
			pb_log(
			    PB_LOG_WARN,
			    "order-expiry repair not run: Redis refused a "
			    "command it needs",
			    "error", err, "what_to_do",
			    "let the ACL user run SCAN, PTTL, HMGET, PERSIST, "
			    "GET and SET (docs/operations.md), then restart "
			    "one replica; order hashes an earlier build left "
			    "expiring lose their state until then",
			    NULL);
			break;
		}
		int wait = next_try(res, err, &backoff, &busy);
		if (!wait || thread_nap(rp, wait))
			break;
	}
	return NULL;
}

static void repair_free(pb_repair_t *rp)
{
	pb_redis_destroy(rp->redis);
	free(rp->prefix);
	pthread_cond_destroy(&rp->cv);
	pthread_mutex_destroy(&rp->mu);
	free(rp);
}

pb_err_t pb_repair_start(const pb_config_t *cfg, pb_metrics_t *m,
			 pb_repair_t **out, char *errstr, size_t errstr_size)
{
	*out = NULL;
	pb_repair_t *rp = calloc(1, sizeof(*rp));
	if (!rp)
		return PB_ERR_NOMEM;
	rp->m = m;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rp->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&rp->mu, NULL);
	atomic_init(&rp->persisted, 0);
	rp->prefix =
	    pb_strdup(cfg->redis_key_prefix ? cfg->redis_key_prefix : "pb:");
	pb_redis_opts_t o = pb_state_redis_opts(cfg, REDIS_TIMEOUT_MS);
	pb_err_t err = rp->prefix
			   ? pb_redis_new(&o, &rp->redis, errstr, errstr_size)
			   : PB_ERR_NOMEM;
	if (!err && pthread_create(&rp->thread, NULL, repair_main, rp) != 0)
		err = pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			      "cannot start the order-expiry repair thread: "
			      "out of threads or memory");
	if (err) {
		repair_free(rp);
		return err;
	}
	*out = rp;
	return PB_OK;
}

void pb_repair_stop(pb_repair_t *rp)
{
	if (!rp)
		return;
	pthread_mutex_lock(&rp->mu);
	rp->stop = true;
	pthread_cond_broadcast(&rp->cv);
	pthread_mutex_unlock(&rp->mu);
	pthread_join(rp->thread, NULL);
	repair_free(rp);
}

uint64_t pb_repair_persisted(pb_repair_t *rp)
{
	return rp ? atomic_load(&rp->persisted) : 0;
}
