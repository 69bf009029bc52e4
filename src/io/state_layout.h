/*
 * state_layout.h: which key layout a Redis holds, and for how long marks
 * of an earlier build must still be read and written (internal to
 * state.c).
 *
 * Earlier builds keep each event's mark as a string key and read only
 * those; this build keeps it in the order's hash. PREFIXlayout holds the
 * Unix second this layout first started on a Redis that held data, or 0
 * when Redis was empty then (a fresh deployment: no earlier marks, no
 * earlier replicas). During a rolling update replicas of both builds
 * share the consumer group for up to the upgrade window after that
 * second, so this build writes string marks too until the window ends,
 * and reads them until the window and one dedupe TTL have passed (the
 * last string mark an earlier replica could write has expired by then).
 *
 * Invariants: a layout of 0 never reads or writes string marks; the
 * read period always covers the write period. Pure functions.
 */
#ifndef PB_STATE_LAYOUT_H
#define PB_STATE_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

/* The layout key's value (NULL: absent) into *layout_at; false when it
 * is absent or not a number (then decide with pb_slayout_first). */
bool pb_slayout_parse(const char *value, int64_t *layout_at);

/* The layout to record at this build's first start. */
int64_t pb_slayout_first(bool redis_empty, int64_t now_s);

/* Read string marks too at now_s. */
bool pb_slayout_read_legacy(int64_t layout_at, int64_t window_s, int64_t ttl_s,
			    int64_t now_s);

/* Write string marks too at now_s. */
bool pb_slayout_write_legacy(int64_t layout_at, int64_t window_s,
			     int64_t now_s);

#endif
