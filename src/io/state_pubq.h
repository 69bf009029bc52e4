/*
 * state_pubq.h: "published" marks waiting to be written (internal to
 * state.c).
 *
 * An outcome acknowledged by Kafka turns its event's mark from "D" to
 * "P". Written at once that is one command per event; instead the new
 * value waits here and goes with the next write of the same order (in the
 * HSET that carries that order's state), or, when none comes within
 * PB_PUBQ_DEFER_MS or more than PB_PUBQ_MAX wait, in one HSET per order
 * with every mark waiting for it. The handle writes all of them at an
 * idle ping, a whole pb_state_mark_published and its destroy (shutdown).
 *
 * Why this keeps contract section 7: a "D" mark already stops a second
 * push; "P" only spares a replay the re-publication of the outcome. A
 * crash loses the waiting values: their events read "D" on a replay and
 * their outcome is published again as recovered, never pushed again, the
 * same as a crash between the acknowledgement and an immediate write.
 * Meanwhile this handle's fetches read a waiting mark as published.
 *
 * A longer wait changes nothing a crash does to section 7: the events
 * it would replay are those after the committed offset, whose marks may
 * wait in any case (the offset is committed after the acknowledgement,
 * and the wait starts there); they read "D" and are recovered, not
 * pushed. Entries waiting longer only risk a copy of an event arriving
 * later at another replica reading "D": published again as recovered.
 *
 * Invariants: at most one waiting value per (order, field) is read (the
 * newest added wins on find); flushing takes the oldest first; memory is
 * bounded by PB_PUBQ_MAX live entries once flushed (a written entry is
 * freed at once).
 */
#ifndef PB_STATE_PUBQ_H
#define PB_STATE_PUBQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An order's next event comes within a few seconds or not soon: on the
 * benchmark's mix 2 s leaves 0.17 HSETs of their own per event (500 ms
 * and 8,192 left 0.30). The bound is the memory: about 160 bytes an
 * entry, 2.5 MiB at most; a written entry is freed at once (folded
 * entries used to stay until the oldest went, up to 500 ms of them). */
#define PB_PUBQ_DEFER_MS 2000
#define PB_PUBQ_MAX	 16384

typedef struct pb_pubq pb_pubq_t;

pb_pubq_t *pb_pubq_new(void);
/* Frees what waits (lost: see above). */
void pb_pubq_destroy(pb_pubq_t *q);

/* Queue a mark's new value (copied) at now_ms (monotonic); false: out of
 * memory (the mark stays "D"). */
bool pb_pubq_add(pb_pubq_t *q, const char *okey, const char *field,
		 const char *value, int64_t now_ms);

/* The waiting value of an order's mark, or NULL. */
const char *pb_pubq_find(const pb_pubq_t *q, const char *okey,
			 const char *field);

/* Hand every waiting value of okey to emit (field, value) and forget
 * them: the caller has an HSET on okey open. */
typedef void (*pb_pubq_emit_fn)(void *ctx, const char *field,
				const char *value);
void pb_pubq_fold(pb_pubq_t *q, const char *okey, pb_pubq_emit_fn emit,
		  void *ctx);

/* The waiting values that are due at now_ms (every one when all), one
 * order at a time: begin (okey) opens its HSET, emit adds each value. */
typedef void (*pb_pubq_begin_fn)(void *ctx, const char *okey);
void pb_pubq_flush(pb_pubq_t *q, int64_t now_ms, bool all,
		   pb_pubq_begin_fn begin, pb_pubq_emit_fn emit, void *ctx);

size_t pb_pubq_count(const pb_pubq_t *q);

#endif
