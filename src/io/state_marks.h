/*
 * state_marks.h: an event's dedupe mark as a field of its order's hash
 * (internal to state.c).
 *
 * A mark's value is "S|OUTCOME|REASON|HTTP|ATTEMPTS" (state.h), outcome
 * and reason as their codes (outcome.h); in the order's hash it carries a
 * sixth field, "|EXPIRES", the Unix second after which it reads as none
 * (Redis expires keys, not hash fields). The field is "m:ID".
 *
 * The order's "mi" field indexes its marks: lines "EXPIRES ID ID...\n",
 * oldest first, EXPIRES rounded up to PB_SMARK_INDEX_STEP_S so that the
 * marks of one hour share a line (the index is read and rewritten with
 * every event of the order: its bytes are Redis' cost, 12 bytes less a
 * mark than a line each). Earlier builds' "EXPIRES ID\n" lines read the
 * same. Each write of a mark appends its id; once PB_SMARK_EXPIRED_PRUNE
 * ids have expired, the write drops the expired
 * marks (their fields handed to a callback, for one HDEL in the same
 * round trip). So an order's hash holds the marks of its events of the
 * last dedupe.ttlSeconds, as many as the string keys of earlier builds
 * did: none is dropped for the order's traffic, since a dropped mark
 * would let a replay of its event be pushed again. (A busy order's index
 * grows with it: about 25 bytes a mark, rewritten with each event.)
 *
 * Invariants: a prune drops a mark only by its id's last entry (an id
 * written again may hold two until then), and never before the mark's
 * own expiry; an id holding a newline or a space is never indexed (its
 * mark stays until the order goes); a mark past its expiry never reads
 * as a duplicate. Pure
 * functions: no I/O, no clock (callers pass the time).
 */
#ifndef PB_STATE_MARKS_H
#define PB_STATE_MARKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state.h"

#define PB_SMARK_EXPIRED_PRUNE 8
#define PB_SMARK_INDEX_STEP_S  3600

/* The value (malloc'd; NULL: out of memory). s 'P' published, else 'D'.
 * expires > 0 appends "|EXPIRES" (the hash form); 0 is the string key's. */
char *pb_smark_value(char s, const char *outcome, const char *reason,
		     int http_status, int attempts, int64_t expires);

/* "m:ID" (malloc'd; NULL: out of memory). */
char *pb_smark_field(const char *id);

/* Fill v's mark (mark, outcome and reason names, http, attempts) from a
 * value of either form. An unknown state, or a hash value expired at
 * now_s, leaves v->mark PB_MARK_NONE; missing fields read as empty or 0.
 * Earlier builds' names read back like codes. */
void pb_smark_parse(const char *s, size_t n, int64_t now_s, pb_state_view_t *v);

/* Called once per mark field an index update drops. */
typedef void (*pb_smark_drop_fn)(void *ctx, const char *field, size_t len);

/* The index old (NULL: empty) once id, expiring at exp, is added, into
 * *out (malloc'd, NULL when empty); dropped marks go to drop. False: out
 * of memory (*out NULL; the caller fails the whole write). */
bool pb_smark_index_add(const char *old, const char *id, int64_t exp,
			int64_t now_s, pb_smark_drop_fn drop, void *ctx,
			char **out);

/* Ids in an index (for tests and the bound). */
size_t pb_smark_index_len(const char *mi);

#endif
