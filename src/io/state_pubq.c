/*
 * state_pubq.c: waiting "published" marks, a FIFO threaded through a
 * chained hash table by order key (see state_pubq.h).
 */
#include "state_pubq.h"

#include <stdlib.h>
#include <string.h>

#include "state_memo.h"

#define BUCKETS 16384 /* one a live entry at the bound: chains stay short */

typedef struct wait {
	struct wait *older, *newer;	  /* the FIFO, oldest at head */
	struct wait *next_bucket;	  /* the same bucket (by order key) */
	const char *okey, *field, *value; /* in text[] */
	uint32_t hash;			  /* pb_omemo_hash(okey) */
	int64_t at_ms;
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

void pb_pubq_destroy(pb_pubq_t *q)
{
	if (!q)
		return;
	for (wait_t *w = q->head, *nx; w; w = nx) {
		nx = w->newer;
		free(w);
	}
	free(q);
}

/* Take w out of its bucket and the FIFO and free it: a written entry
 * costs nothing more (memory is the live entries only). */
static void drop(pb_pubq_t *q, wait_t *w)
{
	wait_t **p = &q->bucket[w->hash % BUCKETS];
	while (*p && *p != w)
		p = &(*p)->next_bucket;
	if (*p)
		*p = w->next_bucket;
	if (w->older)
		w->older->newer = w->newer;
	else
		q->head = w->newer;
	if (w->newer)
		w->newer->older = w->older;
	else
		q->tail = w->older;
	q->live--;
	free(w);
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
	w->older = q->tail;
	if (q->tail)
		q->tail->newer = w;
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
 * then wins in the HSET) and free them. okey must not point into one of
 * them. */
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
			drop(q, w);
			continue;
		}
		mine[n++] = w;
	}
	while (n--) {
		emit(ctx, mine[n]->field, mine[n]->value);
		drop(q, mine[n]);
	}
}

void pb_pubq_fold(pb_pubq_t *q, const char *okey, pb_pubq_emit_fn emit,
		  void *ctx)
{
	if (q->live)
		fold_h(q, okey, pb_omemo_hash(okey), emit, ctx);
}

void pb_pubq_flush(pb_pubq_t *q, int64_t now_ms, bool all,
		   pb_pubq_begin_fn begin, pb_pubq_emit_fn emit, void *ctx)
{
	while (q->head) {
		wait_t *w = q->head;
		if (!all && now_ms - w->at_ms < PB_PUBQ_DEFER_MS &&
		    q->live <= PB_PUBQ_MAX)
			break;
		/* the key outlives the entries fold_h frees (w among them) */
		size_t lk = strlen(w->okey) + 1;
		char small[256],
		    *okey = lk <= sizeof(small) ? small : malloc(lk);
		if (!okey) { /* out of memory: this one alone, by itself */
			begin(ctx, w->okey);
			emit(ctx, w->field, w->value);
			drop(q, w);
			continue;
		}
		memcpy(okey, w->okey, lk);
		begin(ctx, okey);
		fold_h(q, okey, w->hash, emit, ctx);
		if (okey != small)
			free(okey);
	}
}

size_t pb_pubq_count(const pb_pubq_t *q)
{
	return q->live;
}
