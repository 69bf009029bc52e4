/*
 * tracker.h: per-partition offset tracking for at-least-once commits.
 *
 * Events of one partition finish out of order (different orders push
 * concurrently), but an offset may only be committed once every event
 * before it has finished (its outcome acknowledged by Kafka). The tracker
 * holds, per partition, the lowest unfinished offset and a bitmap of the
 * finished offsets above it; pb_tracker_done() reports when the committable
 * position advances.
 *
 * Invariant: committable(tp) == lowest offset that was added and is not
 * done, or one past the highest added offset when all are done. Offsets are
 * added in increasing order per partition (Kafka's fetch order); gaps
 * (compacted or transactional offsets never delivered) are skipped.
 */
#ifndef PB_TRACKER_H
#define PB_TRACKER_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

typedef struct pb_partition_track pb_partition_track_t;

pb_partition_track_t *pb_track_new(void);
void pb_track_destroy(pb_partition_track_t *t);

/* Register a consumed offset (increasing). PB_ERR_INVALID if it goes back
 * (after a seek, call pb_track_reset first). */
pb_err_t pb_track_add(pb_partition_track_t *t, int64_t offset);

/*
 * Mark an added offset finished. Returns true and sets *commit_out (the
 * next offset to consume, i.e. what Kafka stores) when the committable
 * position advanced.
 */
bool pb_track_done(pb_partition_track_t *t, int64_t offset,
		   int64_t *commit_out);

/* Offsets added and not yet done. */
int64_t pb_track_pending(const pb_partition_track_t *t);

/* Forget everything (partition revoked or seeked). */
void pb_track_reset(pb_partition_track_t *t);

#endif
