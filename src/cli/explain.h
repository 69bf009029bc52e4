/*
 * explain.h: `pruvan-bridge explain`, what the rules would do with events.
 *
 * An integrator feeds it order events (JSON lines, a file or stdin) and
 * the configuration; for each event it prints the work order that would
 * be pushed, the fields withheld and why, the warnings, or the rejection
 * with its reason and message, as a table or as JSON lines (--json).
 * Nothing is pushed, written or produced.
 *
 * The decision is the pipeline's own: pb_event_parse then
 * pb_rules_decide (rules.h), never a second copy of the logic. What the
 * pipeline would then record (the order created, the fields pushed, the
 * version applied) is kept in memory as if each push succeeded, so a
 * create followed by an update explains as the worker would apply them;
 * an event id seen twice is a duplicate. With --with-state each order's
 * stored state, its events' marks and the accounts' Auto-Admin switches
 * are first read from Redis (reads only: HMGET, GET, SISMEMBER).
 */
#ifndef PB_EXPLAIN_H
#define PB_EXPLAIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "rules.h"

typedef struct pb_explain_opts {
	bool json;	 /* JSON lines instead of the table */
	bool with_state; /* read stored state from Redis */
} pb_explain_opts_t;

/*
 * Explain every event of input (a path, "-" or NULL for stdin) to out.
 * Returns an exit code: 0 (every event explained, whatever the rules
 * said), 1 (input unreadable, Redis unreachable; err says what to do).
 */
int pb_explain_run(const pb_config_t *cfg, const pb_explain_opts_t *o,
		   const char *input, FILE *out, char *err, size_t err_size);

/*
 * The explanation of one decision, as the JSON object --json prints
 * (owned): line, eventId, account, workOrderNumber, action, outcome (the
 * outcome record's, as if Pruvan accepted the push), reason, message,
 * pushAction, request (the work order that would be pushed, as the
 * outcome record names it; null when nothing would be), unknownOrder,
 * withheld, warnings, autoAdmin, state. ev NULL: rej says why the event
 * could not be read.
 */
json_t *pb_explain_describe(long line, const pb_event_t *ev,
			    const pb_rejection_t *rej, const pb_decision_t *d,
			    bool auto_admin, const char *state);

/* The readable form of pb_explain_describe's object (malloc'd text). */
char *pb_explain_table(const json_t *x);

#endif
