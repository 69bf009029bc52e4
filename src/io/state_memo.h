/*
 * state_memo.h: what the last fetch (or commit) of an order saw of its
 * hash, for the commit that follows (internal to state.c).
 *
 * A commit appends its event's line to the order's mark index (mi,
 * state_marks.h) and must know whether the hash holds the order or only
 * marks (a hash of marks only expires). Reading that back would cost a
 * command; the memo keeps it from the fetch that preceded the commit,
 * keyed by the order's key, for the cap orders used last (an LRU: each
 * get or put makes an order the newest; past cap the oldest goes).
 *
 * Invariants: at most cap entries; a memo is a hint, never the truth: a
 * commit whose order was evicted leaves the index alone (its mark stays
 * until the order goes) and makes sure the hash does not expire; one
 * handle's memo is used by one thread.
 */
#ifndef PB_STATE_MEMO_H
#define PB_STATE_MEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* For worker.maxPending's default (2,000 events between a fetch and its
 * commit): one and a half times as many orders, so every order between
 * its fetch and its commit stays in (the benchmark saw no miss at 2,048;
 * each entry costs about 1 KiB of RSS). pb_state_new_config sizes it from
 * the configuration (pb_omemo_cap_for). */
#define PB_OMEMO_CAP 3000

/* The memo size for a worker holding max_pending events. */
size_t pb_omemo_cap_for(int max_pending);

typedef struct pb_omemo pb_omemo_t;

typedef struct pb_omemo_entry {
	const char *mi; /* the index text; NULL: empty */
	bool has_order; /* the hash holds the order, not only marks */
} pb_omemo_entry_t;

pb_omemo_t *pb_omemo_new(size_t cap);
void pb_omemo_destroy(pb_omemo_t *m);

/* The entry of okey (valid until the next put), or NULL; touches it. */
const pb_omemo_entry_t *pb_omemo_get(pb_omemo_t *m, const char *okey);

/* Remember okey's index (mi_take: owned, may be NULL) and whether it
 * holds the order. Out of memory forgets it (a miss, see above). */
void pb_omemo_put(pb_omemo_t *m, const char *okey, char *mi_take,
		  bool has_order);

/* Mark a remembered order as holding the order; no-op when not in. */
void pb_omemo_set_order(pb_omemo_t *m, const char *okey);

size_t pb_omemo_count(const pb_omemo_t *m);

/* FNV-1a of s, shared with state_pubq. */
uint32_t pb_omemo_hash(const char *s);

#endif
