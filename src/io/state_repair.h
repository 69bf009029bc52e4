/*
 * state_repair.h: a one-off sweep that makes order hashes stop expiring.
 *
 * Why: an earlier build let relayed data learn a Key1 (HSETNX "k1") into
 * a hash of marks only, which expires (dedupe.ttlSeconds); the order's
 * next fetch took "k1" for the order, so its first write sent no PERSIST
 * and the hash, now holding the order's state, kept the marks' expiry.
 * The current build never touches that expiry again, so such an order
 * loses its whole state (created, deleted, version, pushed fields, Key1)
 * at most one dedupe TTL after the upgrade, whether or not it gets an
 * event: only a sweep saves them all.
 *
 * What: every key matching PREFIX{*}:o (the prefix's glob characters
 * escaped) on every master (the one master, Sentinel's, or each master of
 * the Cluster's slot map) is read with SCAN MATCH COUNT; per page one
 * pipelined round trip asks PTTL and HMGET of the six order fields
 * (c, d, v, hv, t, p) of each key, and one more sends PERSIST to each
 * hash that has an expiry and any order field. A hash of marks only (no
 * order field, "k1" or not) keeps its expiry; nothing else is written.
 * With Cluster the slot map (CLUSTER SLOTS) is read from the first master
 * before and from every master after, and each master is asked PTTL of
 * a key no one writes (PREFIXrepair:probe:{N}) in each of its slots: a
 * slot that changed master in between (a resharding, a failover) or is
 * still being migrated (ASK) may have carried keys from a master not
 * swept yet to one already swept, so the sweep then ends FAILED, the
 * marker not "done", and the next one starts over.
 *
 * Why check-then-PERSIST without a transaction is safe: nothing the
 * worker does removes an order field from an order hash (the only HDEL
 * drops mark fields "m:..." and an earlier build's index "mi"; no build
 * sends DEL or UNLINK for an order key), so a hash seen holding order
 * fields still holds them when its PERSIST lands, unless it expired in
 * between. Fields written in between only add to it. The one interleaving
 * that matters: the hash expires in the gap (its PTTL was shorter than
 * one round trip) and an event of the same order recreates it as marks
 * only within that gap; the PERSIST then keeps that hash of marks only
 * without expiry. That costs a few bytes of memory, never correctness
 * (every mark carries its own expiry and reads as none after it; the
 * order's first write keeps the hash anyway). A hash the sweep finds
 * already expired answers PERSIST with 0 and is counted as none.
 *
 * Once: a marker key PREFIXrepair:order-expiry. A sweeper takes it with
 * SET NX PX (a lease of PB_REPAIR_LEASE_MS holding its token), renews it
 * between pages (while it still holds its token) and, when every master
 * was swept to the end, sets it to "done" without expiry. A replica that
 * finds "done" does nothing; one that finds another's live lease does
 * nothing now (the background thread asks again later, a bounded number
 * of times); a crashed sweeper's lease expires and the next start sweeps
 * again; a sweeper that tries again passes its token (opts.token) and
 * takes over the lease its failed try left. The sweep is idempotent, so
 * two sweepers at once (a lease lost to a long pause) only do the work
 * twice. Deleting the marker makes the next start sweep again
 * (docs/operations.md).
 *
 * The background thread (pb_repair_start) has its own Redis connections,
 * pauses between pages, checks its stop flag between pages and in every
 * wait, logs at start, every ~10 s and at the end (one JSON line each,
 * per master), and after a Redis error logs what happened and what to do
 * and sweeps again after a backoff (5 s doubling to 5 min). It never logs
 * a password (connection errors name the step and the host only).
 */
#ifndef PB_STATE_REPAIR_H
#define PB_STATE_REPAIR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "metrics.h"
#include "redis_conn.h"

#define PB_REPAIR_MARKER     "repair:order-expiry" /* after the prefix */
#define PB_REPAIR_DONE_VALUE "done"
#define PB_REPAIR_LEASE_MS   300000
#define PB_REPAIR_PAGE	     500   /* SCAN COUNT */
#define PB_REPAIR_PAUSE_MS   20	   /* between pages */
#define PB_REPAIR_REPORT_MS  10000 /* a progress line at most this often */

/* How a sweep ended. */
typedef enum {
	PB_REPAIR_SWEPT = 0, /* every master swept; the marker says "done" */
	PB_REPAIR_WAS_DONE,  /* the marker said "done": nothing to do */
	PB_REPAIR_BUSY,	     /* another sweeper's live lease (or it took over
				the lease, or finished, meanwhile) */
	PB_REPAIR_STOPPED,   /* asked to stop between pages */
	PB_REPAIR_FAILED,    /* a Redis error: errstr says what */
	PB_REPAIR_EMPTY,     /* Redis holds no key at all: nothing to repair,
				and nothing written (not even the marker) */
	PB_REPAIR_REFUSED,   /* Redis refused a command the sweep needs (an
				ACL without it, NOPERM, or the command
				renamed away): trying again cannot help */
} pb_repair_result_t;

/* "swept", "was done", "busy", "stopped", "failed", "empty",
 * "refused". */
const char *pb_repair_result_name(pb_repair_result_t r);

/* What a sweep did (over every master). */
typedef struct pb_repair_stats {
	size_t masters;
	uint64_t scanned;   /* keys SCAN returned */
	uint64_t persisted; /* order hashes whose expiry was removed */
} pb_repair_stats_t;

typedef struct pb_repair_opts {
	const char *prefix; /* redis.keyPrefix; NULL: "pb:" */
	int page;	    /* SCAN COUNT; 0: PB_REPAIR_PAGE */
	int pause_ms;	    /* between pages (through nap) */
	int lease_ms;	    /* 0: PB_REPAIR_LEASE_MS */
	int report_ms;	    /* 0: PB_REPAIR_REPORT_MS */
	/* Waits up to ms (0: only looks); true when the sweep must stop.
	 * NULL: never stops, never pauses. */
	bool (*nap)(void *ctx, int ms);
	void *nap_ctx;
	/* The lease's value; NULL: a new one. A sweeper that tries again
	 * passes the same, so it takes over the lease its failed try left
	 * instead of waiting it out. */
	const char *token;
} pb_repair_opts_t;

/* The SCAN MATCH pattern for prefix: the prefix with * ? [ ] \ escaped,
 * then "{*}:o" (malloc'd; NULL: out of memory). */
char *pb_repair_pattern_new(const char *prefix);

/* One sweep, synchronously, on connections of its own to r (borrowed).
 * Logs its start, progress and end (log.h). */
pb_repair_result_t pb_repair_sweep(pb_redis_t *r, const pb_repair_opts_t *o,
				   pb_repair_stats_t *stats, char *errstr,
				   size_t errstr_size);

/* The background sweep of `pruvan-bridge run`. */
typedef struct pb_repair pb_repair_t;

/* Start the thread (its own pb_redis_t from cfg's redis settings; cfg is
 * only read here). m (borrowed, may be NULL; must outlive the thread)
 * counts the hashes made to stay (PB_M_ORDER_EXPIRY_REPAIRED). */
pb_err_t pb_repair_start(const pb_config_t *cfg, pb_metrics_t *m,
			 pb_repair_t **out, char *errstr, size_t errstr_size);
/* Ask the thread to stop, join it (a page's round trips at most, each
 * bounded by the Redis timeout) and free everything. NULL: nothing. */
void pb_repair_stop(pb_repair_t *rp);
/* Order hashes the thread's sweeps made stay so far. */
uint64_t pb_repair_persisted(pb_repair_t *rp);

#endif
