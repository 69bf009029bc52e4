/*
 * state_memo.c: the order memo, an LRU over a chained hash table (see
 * state_memo.h).
 */
#include "state_memo.h"

#include <stdlib.h>
#include <string.h>

typedef struct node {
	struct node *next_bucket, *older, *newer;
	uint32_t hash;
	pb_omemo_entry_t e;
	char *drops; /* owned: a waiting prune's fields (state_memo.h) */
	size_t ndrops;
	int64_t mx_new;
	char key[];
} node_t;

struct pb_omemo {
	node_t **bucket;
	size_t nbuckets, cap, n;
	node_t *oldest, *newest;
};

uint32_t pb_omemo_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

size_t pb_omemo_cap_for(int max_pending)
{
	size_t n = max_pending > 0 ? (size_t)max_pending : 2000;
	n += n / 2;
	return n < 256 ? 256 : n;
}

pb_omemo_t *pb_omemo_new(size_t cap)
{
	pb_omemo_t *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->cap = cap ? cap : 1;
	m->nbuckets = m->cap;
	m->bucket = calloc(m->nbuckets, sizeof(*m->bucket));
	if (!m->bucket) {
		free(m);
		return NULL;
	}
	return m;
}

void pb_omemo_destroy(pb_omemo_t *m)
{
	if (!m)
		return;
	for (node_t *x = m->oldest, *nx; x; x = nx) {
		nx = x->newer;
		free(x->drops);
		free(x);
	}
	free(m->bucket);
	free(m);
}

static node_t *find(const pb_omemo_t *m, const char *okey, uint32_t h)
{
	for (node_t *x = m->bucket[h % m->nbuckets]; x; x = x->next_bucket)
		if (x->hash == h && strcmp(x->key, okey) == 0)
			return x;
	return NULL;
}

static void unlink_age(pb_omemo_t *m, node_t *x)
{
	if (x->older)
		x->older->newer = x->newer;
	else
		m->oldest = x->newer;
	if (x->newer)
		x->newer->older = x->older;
	else
		m->newest = x->older;
	x->older = x->newer = NULL;
}

static void link_newest(pb_omemo_t *m, node_t *x)
{
	x->older = m->newest;
	if (m->newest)
		m->newest->newer = x;
	else
		m->oldest = x;
	m->newest = x;
}

static void evict_oldest(pb_omemo_t *m)
{
	node_t *x = m->oldest;
	unlink_age(m, x);
	node_t **p = &m->bucket[x->hash % m->nbuckets];
	while (*p != x)
		p = &(*p)->next_bucket;
	*p = x->next_bucket;
	free(x->drops);
	free(x);
	m->n--;
}

const pb_omemo_entry_t *pb_omemo_get(pb_omemo_t *m, const char *okey)
{
	node_t *x = find(m, okey, pb_omemo_hash(okey));
	if (!x)
		return NULL;
	unlink_age(m, x);
	link_newest(m, x);
	return &x->e;
}

static node_t *insert(pb_omemo_t *m, const char *okey, uint32_t h)
{
	size_t len = strlen(okey) + 1;
	node_t *x = calloc(1, sizeof(*x) + len);
	if (!x)
		return NULL;
	memcpy(x->key, okey, len);
	x->hash = h;
	x->next_bucket = m->bucket[h % m->nbuckets];
	m->bucket[h % m->nbuckets] = x;
	if (++m->n > m->cap)
		evict_oldest(m);
	return x;
}

void pb_omemo_put(pb_omemo_t *m, const char *okey, int64_t mx, bool has_order)
{
	uint32_t h = pb_omemo_hash(okey);
	node_t *x = find(m, okey, h);
	if (x)
		unlink_age(m, x);
	else if (!(x = insert(m, okey, h)))
		return;
	link_newest(m, x);
	x->e.mx = mx;
	x->e.has_order = has_order;
}

void pb_omemo_prune_set(pb_omemo_t *m, const char *okey, char *drops_take,
			size_t ndrops, int64_t mx_new)
{
	node_t *x = find(m, okey, pb_omemo_hash(okey));
	if (!x) {
		free(drops_take);
		return;
	}
	free(x->drops);
	x->drops = drops_take;
	x->ndrops = ndrops;
	x->mx_new = mx_new;
	x->e.has_prune = true;
}

bool pb_omemo_prune_take(pb_omemo_t *m, const char *okey, char **drops,
			 size_t *ndrops, int64_t *mx_new)
{
	node_t *x = find(m, okey, pb_omemo_hash(okey));
	*drops = NULL;
	*ndrops = 0;
	if (!x || !x->e.has_prune)
		return false;
	*drops = x->drops;
	*ndrops = x->ndrops;
	*mx_new = x->mx_new;
	x->drops = NULL;
	x->ndrops = 0;
	x->e.has_prune = false;
	return true;
}

void pb_omemo_set_order(pb_omemo_t *m, const char *okey)
{
	node_t *x = find(m, okey, pb_omemo_hash(okey));
	if (x)
		x->e.has_order = true;
}

size_t pb_omemo_count(const pb_omemo_t *m)
{
	return m->n;
}
