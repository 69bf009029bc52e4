/*
 * watch_view.h: the pure half of `pruvan-bridge watch`: aggregate outcome
 * records (contract section 6) and render them as text. No Kafka, no
 * clock reads in the *_at variants, no I/O, so tests feed it fixture lines
 * and compare strings.
 *
 * What it keeps, all bounded whatever the topic holds:
 *   - per account (at most PB_WATCH_MAX_ACCOUNTS; later ones are folded
 *     into one "(other)" row): a count per outcome and a per-second ring
 *     of the last 10 s for the rate;
 *   - per (account, outcome, reason) for non-null reasons (at most
 *     PB_WATCH_MAX_REASONS tuples; later ones count under "(other)");
 *   - the latest PB_WATCH_PROBLEMS failed, rejected or discarded records
 *     (eventId, workOrderNumber, reason, message), in fixed-size fields;
 *   - how many records were unreadable: not JSON, not an object, or
 *     without a known "outcome".
 *
 * Every string taken from a record is cut to a fixed size on a UTF-8
 * boundary and has its control characters replaced, so a record can
 * neither grow memory nor put escape codes on the operator's terminal.
 */
#ifndef PB_WATCH_VIEW_H
#define PB_WATCH_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define PB_WATCH_MAX_ACCOUNTS 64
#define PB_WATCH_MAX_REASONS  256
#define PB_WATCH_PROBLEMS     10
#define PB_WATCH_RATE_WINDOW  10 /* seconds */

/* The outcomes of contract section 6, in the table's column order. */
typedef enum pb_watch_outcome {
	PB_WATCH_CREATED = 0,
	PB_WATCH_UPDATED,
	PB_WATCH_DELETED,
	PB_WATCH_UNCHANGED,
	PB_WATCH_DUPLICATE,
	PB_WATCH_STALE,
	PB_WATCH_REJECTED,
	PB_WATCH_FAILED,
	PB_WATCH_RELAYED,
	PB_WATCH_DISCARDED,
	PB_WATCH_OUTCOMES /* count, not an outcome */
} pb_watch_outcome_t;

/* "created" ... "discarded"; NULL for an out-of-range value. */
const char *pb_watch_outcome_name(pb_watch_outcome_t o);
/* The outcome of that name; false if unknown. */
bool pb_watch_outcome_parse(const char *name, pb_watch_outcome_t *out);

/* One of the latest problems. Empty strings stand for null fields. */
typedef struct pb_watch_problem {
	pb_watch_outcome_t outcome;
	char account[64];
	char event_id[80];
	char work_order[64];
	char reason[48];
	char message[200];
} pb_watch_problem_t;

typedef struct pb_watch_view pb_watch_view_t;

/* A new, empty view (NULL when out of memory). */
pb_watch_view_t *pb_watch_view_new(void);
/* Accepts NULL. */
void pb_watch_view_destroy(pb_watch_view_t *v);

/*
 * Count one record (the bytes of a Kafka value, not NUL-terminated).
 * For the rate the record is placed at its processedAt, or at arrival_ms
 * when that is missing or later than arrival (clocks of the worker and of
 * the watcher differ; a record cannot have been processed after it was
 * read). Unreadable records are counted and otherwise ignored; the return
 * is PB_ERR_INVALID for them, PB_ERR_NOMEM never (memory is preallocated).
 */
pb_err_t pb_watch_view_add_at(pb_watch_view_t *v, const char *json, size_t len,
			      int64_t arrival_ms);
/* Same with arrival at the wall clock now. */
pb_err_t pb_watch_view_add(pb_watch_view_t *v, const char *json, size_t len);

/* Readable records so far, and unreadable ones. */
long pb_watch_view_total(const pb_watch_view_t *v);
long pb_watch_view_unreadable(const pb_watch_view_t *v);
/* Count of outcome o for account (NULL: all accounts); account "(none)"
 * holds records without one. */
long pb_watch_view_count(const pb_watch_view_t *v, const char *account,
			 pb_watch_outcome_t o);
/* Count of (outcome, reason) for account (NULL: all accounts). */
long pb_watch_view_reason_count(const pb_watch_view_t *v, const char *account,
				pb_watch_outcome_t o, const char *reason);
/* Records per second over the last PB_WATCH_RATE_WINDOW seconds before
 * now_ms, for account (NULL: all). */
double pb_watch_view_rate(const pb_watch_view_t *v, const char *account,
			  int64_t now_ms);
/* Number of problems held (<= PB_WATCH_PROBLEMS) and the i-th, newest
 * first (NULL when out of range). Borrowed; valid until the next add. */
size_t pb_watch_view_problems(const pb_watch_view_t *v);
const pb_watch_problem_t *pb_watch_view_problem(const pb_watch_view_t *v,
						size_t i);

/*
 * The view as text: a heading with topic and DLQ count, the per-account
 * table, reasons, the latest problems. With tty the text starts with the
 * ANSI codes that clear the screen and home the cursor; without, it has
 * no escape codes at all. dlq_count < 0 means unknown. Returns a malloc'd
 * string (free()), NULL when out of memory.
 */
char *pb_watch_view_render_at(const pb_watch_view_t *v, bool tty,
			      const char *topic, long dlq_count,
			      int64_t now_ms);
/* Same at the wall clock now. */
char *pb_watch_view_render(const pb_watch_view_t *v, bool tty,
			   const char *topic, long dlq_count);

#endif
