/*
 * tracker.c: see tracker.h.
 *
 * Representation: a sorted ring of added offsets with a done flag each.
 * Offsets are added in increasing order and completed in any order, so the
 * ring's head is always the lowest unfinished offset once finished heads are
 * popped. Memory is proportional to the events held, which the pipeline
 * bounds (it pauses a partition whose window grows too large).
 */
#include "tracker.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
	int64_t offset;
	bool done;
} slot_t;

struct pb_partition_track {
	slot_t *ring;
	size_t cap, head, len;
	int64_t pending;
	int64_t last_added; /* -1: none */
};

pb_partition_track_t *pb_track_new(void)
{
	pb_partition_track_t *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->last_added = -1;
	return t;
}

void pb_track_destroy(pb_partition_track_t *t)
{
	if (!t)
		return;
	free(t->ring);
	free(t);
}

static slot_t *slot_at(pb_partition_track_t *t, size_t i)
{
	return &t->ring[(t->head + i) % t->cap];
}

static pb_err_t grow(pb_partition_track_t *t)
{
	size_t ncap = t->cap ? t->cap * 2 : 64;
	slot_t *n = malloc(ncap * sizeof(*n));
	if (!n)
		return PB_ERR_NOMEM;
	for (size_t i = 0; i < t->len; i++)
		n[i] = *slot_at(t, i);
	free(t->ring);
	t->ring = n;
	t->cap = ncap;
	t->head = 0;
	return PB_OK;
}

pb_err_t pb_track_add(pb_partition_track_t *t, int64_t offset)
{
	if (offset <= t->last_added)
		return PB_ERR_INVALID;
	if (t->len == t->cap) {
		pb_err_t err = grow(t);
		if (err)
			return err;
	}
	slot_t *s = slot_at(t, t->len);
	s->offset = offset;
	s->done = false;
	t->len++;
	t->pending++;
	t->last_added = offset;
	return PB_OK;
}

/* Binary search for offset in the ring (sorted by construction). */
static slot_t *find(pb_partition_track_t *t, int64_t offset)
{
	size_t lo = 0, hi = t->len;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		slot_t *s = slot_at(t, mid);
		if (s->offset == offset)
			return s;
		if (s->offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

bool pb_track_done(pb_partition_track_t *t, int64_t offset, int64_t *commit_out)
{
	slot_t *s = find(t, offset);
	if (!s || s->done)
		return false;
	s->done = true;
	t->pending--;
	bool advanced = false;
	int64_t commit = 0;
	while (t->len > 0 && slot_at(t, 0)->done) {
		commit = slot_at(t, 0)->offset + 1;
		t->head = (t->head + 1) % t->cap;
		t->len--;
		advanced = true;
	}
	if (advanced && commit_out)
		*commit_out = commit;
	return advanced;
}

int64_t pb_track_pending(const pb_partition_track_t *t)
{
	return t->pending;
}

void pb_track_reset(pb_partition_track_t *t)
{
	t->head = t->len = 0;
	t->pending = 0;
	t->last_added = -1;
}
