/*
 * state_marks.h: an event's dedupe mark as a field of its order's hash
 * (internal to state.c).
 *
 * A mark's value is "S|OUTCOME|REASON|HTTP|ATTEMPTS" (state.h), outcome
 * and reason as their codes (outcome.h); in the order's hash it carries a
 * sixth field, "|EXPIRES", the Unix second after which it reads as none
 * (Redis expires keys, not hash fields). The field is "m:ID".
 *
 * The order's "mx" field holds when its marks are next due for a prune:
 * the earliest expiry among them plus PB_SMARK_PRUNE_GRACE_S (a new hash
 * gets its first mark's). An event's HMGET reads "mx" (a few bytes) and
 * its HSET writes its mark and nothing else: no index is read or
 * rewritten per event. Once "mx" has passed, the order's commit adds one
 * HGETALL after its HSET; its reply, read with the commit's, names the
 * mark fields whose own values have expired more than the grace ago, and
 * the order's next write sends their HDEL, before its HSET, with the new
 * "mx" in that HSET. Earlier builds' hashes carry an index "mi" and no
 * "mx": each is due at once and its "mi" goes with the expired marks
 * (the HMGET reads "mi" too while the memo does not know the hash to
 * hold the order, so a hash of marks only, which may expire, is told
 * from none). So an order's hash
 * holds the marks of its events of the last dedupe.ttlSeconds and at
 * most about an hour more: none is dropped for the order's traffic,
 * since a dropped mark would let a replay of its event be pushed again.
 *
 * Why a prune never drops a live mark: a field is named for its HDEL
 * only when the value HGETALL read had expired (by its own "|EXPIRES",
 * the exact expiry, plus the grace, so a replica's clock a little ahead
 * of the writer's does not count); the HGETALL follows the commit's own
 * HSET and the "published" marks of earlier events, which all carry
 * fresh expiries. An event replayed between that HGETALL and the HDEL
 * (a mark read expired reads as none, so it is done again) writes its
 * new mark with a later write of the same order, which, being the one
 * that sends the HDEL, orders the HDEL before its HSET in one pipeline:
 * Redis runs one connection's commands in order, the new value wins. An
 * order's events run one at a time on one replica (contract section 7),
 * so no other writer's mark lands between. A late prune (an evicted
 * memo, a lost reply) only keeps dead marks a while longer: each reads
 * as none past its expiry. An ACL that refuses HGETALL fails no commit:
 * the handle stops pruning (its marks then stay until the order goes).
 *
 * Invariants: a prune drops a mark only when the value it read had
 * expired PB_SMARK_PRUNE_GRACE_S ago, never earlier; a mark past its
 * expiry never reads as a duplicate. Pure
 * functions: no I/O, no clock (callers pass the time).
 */
#ifndef PB_STATE_MARKS_H
#define PB_STATE_MARKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state.h"

#define PB_SMARK_PRUNE_GRACE_S 3600

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

/* The expiry of a hash mark's value (its "|EXPIRES"), or -1 when the
 * value is not one (a prune leaves such a field alone). */
int64_t pb_smark_expiry(const char *s, size_t n);

#endif
