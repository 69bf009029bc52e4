/*
 * state_memo.h: what the last fetch (or commit) of an order saw of its
 * hash, for the commit that follows (internal to state.c).
 *
 * A commit must know when the order's marks are due for a prune (the
 * hash's "mx", state_marks.h) and whether the hash holds the order or
 * only marks (a hash of marks only expires); a prune's result (the
 * expired fields, read by the commit before) waits here for the order's
 * next write. Reading these back would cost a command; the memo keeps
 * them from the fetch that preceded the commit,
 * keyed by the order's key, for the cap orders used last (an LRU: each
 * get or put makes an order the newest; past cap the oldest goes).
 *
 * Invariants: at most cap entries; a memo is a hint, never the truth: a
 * commit whose order was evicted prunes nothing (a late prune is
 * harmless) and makes sure the hash does not expire; one
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
	int64_t mx;	/* the hash's "mx" (next prune time); 0: none */
	bool has_order; /* the hash holds the order, not only marks */
	bool has_prune; /* a prune's result waits (pb_omemo_prune_take) */
} pb_omemo_entry_t;

pb_omemo_t *pb_omemo_new(size_t cap);
void pb_omemo_destroy(pb_omemo_t *m);

/* The entry of okey (valid until the next put), or NULL; touches it. */
const pb_omemo_entry_t *pb_omemo_get(pb_omemo_t *m, const char *okey);

/* Remember okey's "mx" and whether it holds the order; a waiting prune
 * result stays. Out of memory forgets it (a miss, see above). */
void pb_omemo_put(pb_omemo_t *m, const char *okey, int64_t mx, bool has_order);

/* Keep a prune's result for okey's next write: drops_take (owned) holds
 * ndrops NUL-terminated field names back to back, mx_new the "mx" to
 * write. Not in the memo: freed and forgotten (the prune comes again). */
void pb_omemo_prune_set(pb_omemo_t *m, const char *okey, char *drops_take,
			size_t ndrops, int64_t mx_new);

/* Take okey's waiting prune result (owned, may be NULL with ndrops 0);
 * false when none waits. */
bool pb_omemo_prune_take(pb_omemo_t *m, const char *okey, char **drops,
			 size_t *ndrops, int64_t *mx_new);

/* Mark a remembered order as holding the order; no-op when not in. */
void pb_omemo_set_order(pb_omemo_t *m, const char *okey);

size_t pb_omemo_count(const pb_omemo_t *m);

/* FNV-1a of s, shared with state_pubq. */
uint32_t pb_omemo_hash(const char *s);

#endif
