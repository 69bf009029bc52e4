/*
 * state.h: the worker's shared state in Redis.
 *
 * Any number of replicas share it, so everything that must survive a crash
 * or a rebalance lives here, not in memory:
 *   P{A/W}:o          hash: c (created), d (deleted), v/hv (version),
 *                     t (occurredAt ms), p (last pushed fields, JSON),
 *                     k1 (Key1 learned from relayed data)
 *                     and the order's recent events' marks: m:ID, the
 *                     mark (below) and "|EXPIRES", the Unix second
 *                     dedupe.ttlSeconds after it was written (past it the
 *                     mark reads as none); mx, when they are next due
 *                     for a prune (the earliest expiry plus an hour),
 *                     past which a commit reads the hash (HGETALL) and
 *                     the next write drops expired marks (state_marks.h;
 *                     never one still within its TTL, however busy the
 *                     order; earlier builds' index "mi" goes too). One
 *                     HMGET reads
 * an event's order and mark, one HSET (atomic by itself) writes both. A hash
 * that holds marks only (an event rejected before its order existed) expires.
 *   P{A/W}:m:ID       string, expiring after dedupe.ttlSeconds: the marks
 *                     of records rejected as read (account
 *                     PB_STATE_RECORD_ACCOUNT), and every event's mark in
 *                     earlier builds (see PREFIXlayout)
 * A mark is "S|OUTCOME|REASON|HTTP|ATTEMPTS": S "D" (effect done, outcome
 * not yet acknowledged) or "P" (outcome published), the outcome and its
 * reason as their codes (outcome.h; a reason without a code, and the marks
 * of earlier builds, as names: both read back), the last HTTP status and
 * the push attempts. (The hash marks P{A/W}:e:ID of older builds are no
 * longer read and expire on their own.)
 *   PREFIXlayout      the Unix second this layout first started on a Redis
 *                     that held data, or 0 when Redis was empty then
 *                     (SET NX by the first commit; read at connect, with
 *                     DBSIZE when absent). Upgrading (not 0): for
 *                     redis.upgradeWindowSeconds after it replicas of an
 *                     earlier build may still run (a rolling update), so
 *                     every mark is written as its string key too, in one
 *                     MULTI/EXEC with the order's HSET; string marks are
 *                     read until that window and one dedupe.ttlSeconds
 *                     more have passed.
 *   P{A}:dk1          set: Key1s of orders the remote system deleted
 *   P{A}:rk1          set: the Key1s Pruvan recreated deleted orders
 *                     under (their relayed data is discarded too)
 *   P{A}:dsw          set: "id:V" and "number:V", the source_wo_id and
 *                     source_wo_number last pushed for orders the remote
 *                     system deleted (relayed data carrying one is theirs)
 *   P{A}:aa           "on" / "off": the account's Auto-Admin switch
 *   P{A}:pk           hash: k (the PushKey learned from Pruvan's validate
 *                     call, SECRET), at (Unix ms it was learned)
 *   P{A}:ix           sorted set: the work order numbers of the account's
 *                     live orders, scored by the Unix ms of their last
 *                     pushed change, cut to the whole second (Pruvan asks
 *                     in seconds; getWorkOrders); one ZADD (ZREM)
 *                     per account per commit, after the orders' HSETs in
 *                     the same round trip (a crash between leaves the
 *                     change out until the order's next)
 * where P is the key prefix, A the account and W the work order number.
 * One order's keys share the hash tag {A/W}: its state and its events'
 * marks are one key written by one command (or, in the upgrade window,
 * one MULTI/EXEC on one slot), so the layout is Redis Cluster safe.
 *
 * Every call is one pipelined round trip for a whole batch. Calls fail with
 * PB_ERR_REDIS (retriable) when Redis is unreachable; the handle reconnects
 * on the next call (through Sentinel when configured, so a failover is
 * followed), and a server that answers READONLY (a master demoted under
 * us) is dropped the same way. The connection itself is redis_conn.h's.
 * Nothing here logs.
 */
#ifndef PB_STATE_H
#define PB_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "redis_conn.h"
#include "rules.h"

struct pb_config;

typedef struct pb_state pb_state_t;

/*
 * The per-event operations come in halves, so that the loop's own work
 * overlaps Redis executing (the others are whole, synchronous calls): each
 * *_send queues its commands on the connection, pb_state_flush writes all
 * queued commands at once (a round trip), and each *_recv reads its
 * replies, in the order the sends were made. No other call on the state
 * may come between a send and its recv (the whole operations refuse to).
 * A failed send, flush or recv drops the connection: every outstanding
 * recv then fails as well.
 */
typedef struct pb_state_call {
	size_t replies; /* 0: nothing was sent, the recv succeeds at once */
	uint64_t conn;
	bool wait;	    /* the last reply is WAIT's (redis.minReplicas) */
	bool legacy;	    /* a fetch also read earlier builds' string marks */
	size_t prunes;	    /* a commit's HGETALLs, before the WAIT */
	uint64_t prune_seq; /* the first one's number (state.c) */
} pb_state_call_t;

pb_err_t pb_state_flush(pb_state_t *st, char *errstr, size_t errstr_size);
/* Without blocking, read the replies that have arrived (kept for the recvs
 * to come). The loop polls pb_state_fd (-1: no reply awaited) and asks
 * pb_state_ready whether calls[0..n), the oldest outstanding, can be
 * received without waiting (also true when their connection is lost: the
 * recv then fails at once). */
void pb_state_pump(pb_state_t *st);
int pb_state_fd(const pb_state_t *st);
bool pb_state_ready(const pb_state_t *st, const pb_state_call_t *calls,
		    size_t n);
/* Drop the connection on purpose: every outstanding recv fails, the next
 * call reconnects. For a caller that can no longer use replies it has
 * queued (an earlier call in the same write failed). */
void pb_state_disconnect(pb_state_t *st);

pb_err_t pb_state_new(const char *url, const char *prefix, int64_t ttl_seconds,
		      int timeout_ms, pb_state_t **out, char *errstr,
		      size_t errstr_size);
/* Redis as production runs it (redis_conn.h): TLS, ACL users, Sentinel;
 * min_replicas > 0 makes every commit wait (WAIT, up to wait_timeout_ms)
 * until that many replicas have it, or fail as retriable. */
pb_err_t pb_state_new_redis(const pb_redis_opts_t *opts, const char *prefix,
			    int64_t ttl_seconds, int min_replicas,
			    int wait_timeout_ms, pb_state_t **out, char *errstr,
			    size_t errstr_size);
/* The fields of an order's hash a fetch reads: first the
 * PB_STATE_N_ORDER_FIELDS that hold the order's own state (a hash with any
 * of them is an order's and never expires; one with none of them, marks
 * only or a learned Key1 besides, does), then "k1". */
extern const char *const pb_state_order_fields[];
#define PB_STATE_N_ORDER_FIELDS 6

/* The connection settings of the configuration's redis section (borrowed
 * from cfg), with timeout_ms for connecting and each command. */
pb_redis_opts_t pb_state_redis_opts(const struct pb_config *cfg,
				    int timeout_ms);
/* From the configuration's redis section. With TLS it connects at once: a
 * certificate or host name that fails verification is PB_ERR_CONFIG (fatal
 * at start; retrying cannot heal it). Other connection failures are left
 * to the first call, which retries. */
pb_err_t pb_state_new_config(const struct pb_config *cfg, int timeout_ms,
			     pb_state_t **out, char *errstr,
			     size_t errstr_size);
/* Connect now if not connected (errstr names the failed step). */
pb_err_t pb_state_connect(pb_state_t *st, char *errstr, size_t errstr_size);
/* Writes the "published" marks still waiting (best effort), then frees. */
void pb_state_destroy(pb_state_t *st);

/* How long after an upgrade replicas of an earlier build may still run
 * (redis.upgradeWindowSeconds; see PREFIXlayout above). */
#define PB_STATE_UPGRADE_WINDOW_DEFAULT 3600
void pb_state_set_upgrade_window(pb_state_t *st, int64_t seconds);

/* Round trips made and their total latency, for metrics and benchmarks. */
uint64_t pb_state_round_trips(const pb_state_t *st);

typedef enum { PB_MARK_NONE = 0, PB_MARK_DONE, PB_MARK_PUBLISHED } pb_mark_t;

/* The account of marks for records rejected as read, which have no order
 * (the won names the record): their marks stay string keys. */
#define PB_STATE_RECORD_ACCOUNT "~"

/* Order fields a fetch read back as exactly the text a commit writes for
 * the value now in the view's order (pb_state_view_t.stored). */
#define PB_STATE_STORED_CREATED 1u /* "c" */
#define PB_STATE_STORED_HV	2u /* "hv" */
#define PB_STATE_STORED_V	4u /* "v" */
#define PB_STATE_STORED_T	8u /* "t" */

/* One event's view of the state, filled by pb_state_fetch. */
typedef struct pb_state_view {
	/* in (borrowed) */
	const char *account;
	const char *won;      /* work order number */
	const char *event_id; /* NULL: no mark lookup */
	const char *key1;     /* inbound: check whether it belonged to a
				 deleted order; NULL to skip */
	bool skip_key1;	      /* the event cannot use the learned Key1
				 (pb_rules_may_push_delete): not read,
				 key1_learned stays NULL */
	/* inbound: check whether the item's source ids (NULL: none) were
	 * a deleted order's */
	const char *swo_id, *swo_number;
	/* out */
	pb_mark_t mark;
	char mark_outcome[24];
	char mark_reason[64];
	int mark_http;
	int mark_attempts;
	bool exists;		/* the order hash exists */
	pb_order_state_t order; /* order.pushed points into pushed_text */
	char *pushed_text;	/* owned, may be NULL */
	char *key1_learned;	/* owned, may be NULL */
	bool key1_deleted;	/* key1 is in the account's deleted set */
	bool swo_deleted;	/* swo_id or swo_number is in P{A}:dsw */
	bool key1_recreated;	/* key1 is in P{A}:rk1 */
	unsigned stored;	/* PB_STATE_STORED_* (above) */
	uint64_t stored_conn;	/* the connection that read them (state.c) */
} pb_state_view_t;

/* Release what a view owns (not the view itself). */
void pb_state_view_clear(pb_state_view_t *v);

/* Fill views[0..n) (halves only: the loop overlaps them). */
pb_err_t pb_state_fetch_send(pb_state_t *st, const pb_state_view_t *views,
			     size_t n, pb_state_call_t *call, char *errstr,
			     size_t errstr_size);
pb_err_t pb_state_fetch_recv(pb_state_t *st, const pb_state_call_t *call,
			     pb_state_view_t *views, size_t n, char *errstr,
			     size_t errstr_size);

/* One event's effect to record. */
typedef struct pb_state_write {
	const char *account, *won, *event_id; /* event_id NULL: no mark */
	/* the mark */
	const char *outcome;
	const char *reason; /* may be NULL */
	int http_status;
	int attempts;
	/* the order (write_order false: leave the order hash alone) */
	bool write_order;
	bool set_created;
	bool set_deleted;
	bool has_version;
	int64_t version;
	int64_t occurred_ms;	/* 0: leave */
	const char *pushed;	/* the last pushed fields' text; NULL: leave */
	const char *learn_key1; /* set k1 if not set yet */
	const char *deleted_key1; /* add to the account's deleted set */
	/* add to P{A}:rk1 (a Key1 Pruvan recreated a deleted order under);
	 * may be NULL */
	const char *recreated_key1;
	/* add to the account's deleted source ids (P{A}:dsw); may be NULL */
	const char *deleted_swo_id, *deleted_swo_number;
	/* the fetch this event was decided on (NULL: none): an order field
	 * it read back with the value written now is not written again
	 * (read on the same connection; a write with a mark only) */
	const pb_state_view_t *fetched;
} pb_state_write_t;

/* Record writes[0..n), each atomically (halves only): a write's order
 * fields and mark are one HSET (see the key layout above). */
pb_err_t pb_state_commit_send(pb_state_t *st, const pb_state_write_t *writes,
			      size_t n, pb_state_call_t *call, char *errstr,
			      size_t errstr_size);
/* The replies of a commit or of published marks (both answer only
 * success or an error). */
pb_err_t pb_state_write_recv(pb_state_t *st, const pb_state_call_t *call,
			     char *errstr, size_t errstr_size);

/* An event's identity, for marking its outcome published. */
typedef struct pb_state_ref {
	const char *account, *won, *event_id;
	/* the mark's content, as recorded */
	const char *outcome, *reason; /* reason may be NULL */
	int http_status, attempts;
} pb_state_ref_t;

/* Mark refs[0..n) published ("P"); the expiry starts again. An order's
 * mark is not written at once: it waits in the handle (state_pubq.h: 2 s,
 * 16,384 marks at most) for the order's next commit, which carries it
 * in its HSET, or is written one HSET per order when that does not come
 * in time, at an idle pb_state_ping, by the whole pb_state_mark_published
 * (every waiting mark) and by pb_state_destroy. This handle's fetches read
 * a waiting mark as published; after a crash it reads "done" (recovered,
 * never pushed again). A record's mark is written at once. */
pb_err_t pb_state_mark_published(pb_state_t *st, const pb_state_ref_t *refs,
				 size_t n, char *errstr, size_t errstr_size);
pb_err_t pb_state_mark_published_send(pb_state_t *st,
				      const pb_state_ref_t *refs, size_t n,
				      pb_state_call_t *call, char *errstr,
				      size_t errstr_size);
/* its replies: pb_state_write_recv */

/*
 * Auto-Admin switches of accounts[0..n): out[i] is 1 (on), 0 (off) or -1
 * (never switched: use the configured value).
 */
pb_err_t pb_state_get_auto_admin(pb_state_t *st, const char *const *accounts,
				 size_t n, int *out, char *errstr,
				 size_t errstr_size);
pb_err_t pb_state_set_auto_admin(pb_state_t *st, const char *account, bool on,
				 char *errstr, size_t errstr_size);

/* Store the PushKey Pruvan delivered for account (SECRET: never log it). */
pb_err_t pb_state_set_push_key(pb_state_t *st, const char *account,
			       const char *key, int64_t at_ms, char *errstr,
			       size_t errstr_size);
/* The learned keys of accounts[0..n): keys_out[i] owned (NULL: none yet),
 * at_out[i] Unix ms learned (0: none). */
pb_err_t pb_state_get_push_keys(pb_state_t *st, const char *const *accounts,
				size_t n, char **keys_out, int64_t *at_out,
				char *errstr, size_t errstr_size);

/* One live order of a getWorkOrders page. */
typedef struct pb_state_changed {
	char *won;    /* owned */
	char *pushed; /* owned: the last pushed fields, a JSON object's text */
} pb_state_changed_t;

/* Where a getWorkOrders read is: after (score, member), the index's own
 * order. Zero it to start; pb_state_cursor_clear releases it. */
typedef struct pb_state_cursor {
	bool started, done;
	int64_t score;
	char *member; /* owned */
} pb_state_cursor_t;
void pb_state_cursor_clear(pb_state_cursor_t *cur);

/*
 * The next page of the account's change index: at most count orders
 * scored in [since_ms, until_ms] (since_ms < 0: from the start) after the
 * cursor, in change order; the cursor moves past them (cur->done at the
 * end). *out (free with pb_state_changed_free) holds the live ones with
 * pushed fields, so a page may hold fewer than it read. Reading by cursor,
 * not by offset, an order that changes meanwhile (rescored past until_ms,
 * or deleted) never makes the read skip another.
 */
pb_err_t pb_state_changed_page(pb_state_t *st, const char *account,
			       int64_t since_ms, int64_t until_ms,
			       pb_state_cursor_t *cur, size_t count,
			       pb_state_changed_t **out, size_t *n_out,
			       char *errstr, size_t errstr_size);
void pb_state_changed_free(pb_state_changed_t *c, size_t n);

/* PING; PB_OK when Redis answers. */
pb_err_t pb_state_ping(pb_state_t *st, char *errstr, size_t errstr_size);

#endif
