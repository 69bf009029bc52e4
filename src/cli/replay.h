/*
 * replay.h: `pruvan-bridge replay`: copy DLQ records back to the orders
 * topic so that they are processed again (after the cause was fixed).
 *
 * Failed events are never marked done in Redis, so a replayed event is
 * pushed again; events whose effect was recorded meanwhile come out as
 * "duplicate". Only records whose x-source-topic is the orders topic are
 * replayed (relayed items are not re-injected).
 */
#ifndef PB_REPLAY_H
#define PB_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "err.h"

typedef struct pb_replay_opts {
	int32_t partition; /* -1: all */
	int64_t from;	   /* first DLQ offset (inclusive); -1: beginning */
	int64_t to;	   /* last DLQ offset (inclusive); -1: end */
	const char
	    *reason;  /* only records with this x-error-reason; NULL: all */
	bool dry_run; /* list what would be replayed; produce nothing */
} pb_replay_opts_t;

/* Writes one JSON line per record to stdout; counts into *replayed.
 * PB_ERR_INVALID: o->partition is not a partition of the DLQ. */
pb_err_t pb_replay_run(const pb_config_t *cfg, const pb_replay_opts_t *o,
		       long *replayed, char *errstr, size_t errstr_size);

#endif
