/*
 * carry.h: where a partition resumes after a revoke whose commit the group
 * did not take (pure; the rules offsets.c and rebalance.c apply).
 *
 * A revoke commits the partition's stored offset. When the group refuses
 * that commit (a new generation, a lost assignment), the offset is still
 * where this worker's acknowledged outcomes end: it is kept as the
 * partition's carry, raised by outcomes acknowledged after the revoke, and
 * used as the start offset if the partition is assigned here again and the
 * group's committed offset is older. Without it every event between the
 * two offsets is consumed again and gets a second outcome record.
 *
 * Offsets are next-to-consume offsets; -1 means none.
 *
 * Must never: move a partition's start below the group's committed offset
 * (another owner may have committed further).
 */
#ifndef PL_CARRY_H
#define PL_CARRY_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

/* Whether the group took a revoke's commit: it did, or there was nothing
 * to commit (RD_KAFKA_RESP_ERR__NO_OFFSET). */
bool pl_carry_commit_taken(rd_kafka_resp_err_t e);

/* The carry a revoked partition keeps: -1 when the group took its commit,
 * else its stored offset. */
int64_t pl_carry_after_revoke(bool taken, int64_t stored);

/* An outcome acknowledged after its partition was revoked makes commit
 * safe: the carry, raised to commit when that is further. */
int64_t pl_carry_raise(int64_t carry, int64_t commit);

/* Where a partition assigned again starts: carry, when there is one and
 * the group's committed offset was read (committed_read) and is older
 * (nothing committed reads RD_KAFKA_OFFSET_INVALID, older than any);
 * else -1, the committed offset stands. */
int64_t pl_carry_start(int64_t carry, bool committed_read, int64_t committed);

#endif
