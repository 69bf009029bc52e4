/*
 * state_pubq.c: waiting "published" marks, a FIFO threaded through a
 * chained hash table by order key (see state_pubq.h).
 */
#include "state_pubq.h"

#include <stdlib.h>
#include <string.h>

#include "state_memo.h"

#define BUCKETS 8192

typedef struct wait {
	struct wait *next_age;		  /* FIFO, oldest first */
	struct wait *next_bucket;	  /* the same bucket (by order key) */
	const char *okey, *field, *value; /* in text[] */
	uint32_t hash;			  /* pb_omemo_hash(okey) */
	int64_t at_ms;
	bool gone; /* written; freed when it reaches the head */
	char text[];
} wait_t;

struct pb_pubq {
	wait_t *head, *tail;
	wait_t *bucket[BUCKETS];
	size_t live;
};

pb_pubq_t *pb_pubq_new(void)
{
	return calloc(1, sizeof(pb_pubq_t));
}

/* Free written entries at the head. */
static void trim(pb_pubq_t *q)
{
	while (q->head && q->head->gone) {
		wait_t *w = q->head;
		q->head = w->next_age;
		if (!q->head)
			q->tail = NULL;
		free(w);
	}
}

void pb_pubq_destroy(pb_pubq_t *q)
{
	if (!q)
		return;
	for (wait_t *w = q->head; w; w = w->next_age)
		w->gone = true;
	trim(q);
	free(q);
}

static void unlink_bucket(pb_pubq_t *q, wait_t *w)
{
	wait_t **p = &q->bucket[w->hash % BUCKETS];
	while (*p && *p != w)
		p = &(*p)->next_bucket;
	if (*p)
		*p = w->next_bucket;
	w->gone = true;
	q->live--;
}

bool pb_pubq_add(pb_pubq_t *q, const char *okey, const char *field,
		 const char *value, int64_t now_ms)
{
	size_t lk = strlen(okey) + 1, lf = strlen(field) + 1,
	       lv = strlen(value) + 1;
	wait_t *w = malloc(sizeof(*w) + lk + lf + lv);
	if (!w)
		return false;
	memset(w, 0, sizeof(*w));
	memcpy(w->text, okey, lk);
	memcpy(w->text + lk, field, lf);
	memcpy(w->text + lk + lf, value, lv);
	w->okey = w->text;
	w->field = w->text + lk;
	w->value = w->text + lk + lf;
	w->hash = pb_omemo_hash(okey);
	w->at_ms = now_ms;
	wait_t **b = &q->bucket[w->hash % BUCKETS];
	w->next_bucket = *b; /* newest first: find sees it first */
	*b = w;
	if (q->tail)
		q->tail->next_age = w;
	else
		q->head = w;
	q->tail = w;
	q->live++;
	return true;
}

const char *pb_pubq_find(const pb_pubq_t *q, const char *okey,
			 const char *field)
{
	if (!q->live)
		return NULL;
	uint32_t h = pb_omemo_hash(okey);
	for (wait_t *w = q->bucket[h % BUCKETS]; w; w = w->next_bucket)
		if (w->hash == h && strcmp(w->okey, okey) == 0 &&
		    strcmp(w->field, field) == 0)
			return w->value;
	return NULL;
}

/* Emit okey's waiting values oldest first (a later value of one field
 * then wins in the HSET) and unlink them. */
static void fold_h(pb_pubq_t *q, const char *okey, uint32_t h,
		   pb_pubq_emit_fn emit, void *ctx)
{
	wait_t *mine[64];
	size_t n = 0;
	for (wait_t *w = q->bucket[h % BUCKETS], *nx; w; w = nx) {
		nx = w->next_bucket;
		if (w->hash != h || strcmp(w->okey, okey) != 0)
			continue;
		if (n == 64) { /* more than a batch holds: emit as found */
			emit(ctx, w->field, w->value);
			unlink_bucket(q, w);
			continue;
		}
		mine[n++] = w;
	}
	while (n--) {
		emit(ctx, mine[n]->field, mine[n]->value);
		unlink_bucket(q, mine[n]);
	}
}

void pb_pubq_fold(pb_pubq_t *q, const char *okey, pb_pubq_emit_fn emit,
		  void *ctx)
{
	if (q->live)
		fold_h(q, okey, pb_omemo_hash(okey), emit, ctx);
	trim(q);
}

void pb_pubq_flush(pb_pubq_t *q, int64_t now_ms, bool all,
		   pb_pubq_begin_fn begin, pb_pubq_emit_fn emit, void *ctx)
{
	for (wait_t *w = q->head; w; w = w->next_age) {
		if (w->gone)
			continue;
		if (!all && now_ms - w->at_ms < PB_PUBQ_DEFER_MS &&
		    q->live <= PB_PUBQ_MAX)
			break;
		begin(ctx, w->okey);
		/* w among them; it stays allocated until trim */
		fold_h(q, w->okey, w->hash, emit, ctx);
	}
	trim(q);
}

size_t pb_pubq_count(const pb_pubq_t *q)
{
	return q->live;
}
