/*
 * orderq.c: per-order queues (see orderq.h).
 *
 * A chained hash table of order entries, sized in powers of two and
 * doubled at half load. An entry's name is "ACCOUNT\0WON\0" in one
 * allocation with the entry, compared as two strings, so no account and
 * work order number pair can stand for another.
 */
#include "orderq.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ORDERQ_INITIAL_BUCKETS 4096

struct pb_orderq_key {
	pb_orderq_key_t *next; /* hash chain */
	uint64_t hash;
	pb_orderq_link_t *head, *tail; /* waiting behind the holder */
	pb_orderq_link_t *pub;	       /* publishing under this order */
	bool held;
	size_t account_len;
	char name[]; /* account, NUL, work order number, NUL */
};

struct pb_orderq {
	pb_orderq_key_t **buckets;
	size_t cap, len;
};

static uint64_t hash_order(const char *account, const char *won)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a, with a 0 between */
	for (const char *s = account; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	h *= 1099511628211ULL;
	for (const char *s = won; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static pb_err_t grow(pb_orderq_t *q)
{
	size_t ncap = q->cap ? q->cap * 2 : ORDERQ_INITIAL_BUCKETS;
	pb_orderq_key_t **nb = calloc(ncap, sizeof(*nb));
	if (!nb)
		return PB_ERR_NOMEM;
	for (size_t i = 0; i < q->cap; i++) {
		pb_orderq_key_t *k = q->buckets[i];
		while (k) {
			pb_orderq_key_t *nx = k->next;
			size_t b = k->hash & (ncap - 1);
			k->next = nb[b];
			nb[b] = k;
			k = nx;
		}
	}
	free(q->buckets);
	q->buckets = nb;
	q->cap = ncap;
	return PB_OK;
}

pb_err_t pb_orderq_new(pb_orderq_t **ret_q)
{
	pb_orderq_t *q = calloc(1, sizeof(*q));
	if (!q || grow(q)) {
		free(q);
		return PB_ERR_NOMEM;
	}
	*ret_q = q;
	return PB_OK;
}

static bool key_is(const pb_orderq_key_t *k, uint64_t h, const char *account,
		   const char *won)
{
	return k->hash == h && strcmp(k->name, account) == 0 &&
	       strcmp(k->name + k->account_len + 1, won) == 0;
}

/* The entry of (account, won), made when missing; NULL: out of memory. */
static pb_orderq_key_t *key_get(pb_orderq_t *q, const char *account,
				const char *won)
{
	if (q->len >= q->cap / 2 && grow(q))
		return NULL;
	uint64_t h = hash_order(account, won);
	size_t b = h & (q->cap - 1);
	for (pb_orderq_key_t *k = q->buckets[b]; k; k = k->next)
		if (key_is(k, h, account, won))
			return k;
	size_t al = strlen(account), wl = strlen(won);
	pb_orderq_key_t *k = calloc(1, sizeof(*k) + al + wl + 2);
	if (!k)
		return NULL;
	k->hash = h;
	k->account_len = al;
	memcpy(k->name, account, al + 1);
	memcpy(k->name + al + 1, won, wl + 1);
	k->next = q->buckets[b];
	q->buckets[b] = k;
	q->len++;
	return k;
}

/* Free k once nothing holds, waits for or publishes under it. */
static void key_drop_if_idle(pb_orderq_t *q, pb_orderq_key_t *k)
{
	if (k->held || k->head || k->pub)
		return;
	for (pb_orderq_key_t **pp = &q->buckets[k->hash & (q->cap - 1)]; *pp;
	     pp = &(*pp)->next) {
		if (*pp == k) {
			*pp = k->next;
			q->len--;
			free(k);
			return;
		}
	}
}

pb_err_t pb_orderq_admit(pb_orderq_t *q, const char *account, const char *won,
			 pb_orderq_link_t *l, bool *ret_go)
{
	pb_orderq_key_t *k = key_get(q, account, won);
	if (!k)
		return PB_ERR_NOMEM;
	l->key = k;
	l->next_wait = NULL;
	if (k->held) {
		if (k->tail)
			k->tail->next_wait = l;
		else
			k->head = l;
		k->tail = l;
		*ret_go = false;
		return PB_OK;
	}
	k->held = true;
	*ret_go = true;
	return PB_OK;
}

pb_orderq_link_t *pb_orderq_release(pb_orderq_t *q, pb_orderq_link_t *l,
				    bool publishing)
{
	pb_orderq_key_t *k = l->key;
	l->key = NULL;
	if (!k)
		return NULL;
	if (publishing && !l->pub_key) {
		l->pub_key = k;
		l->next_pub = k->pub;
		k->pub = l;
	}
	pb_orderq_link_t *nx = k->head;
	if (nx) {
		k->head = nx->next_wait;
		if (!k->head)
			k->tail = NULL;
		nx->next_wait = NULL;
		return nx; /* holds k now: k->held stays true */
	}
	k->held = false;
	key_drop_if_idle(q, k);
	return NULL;
}

void pb_orderq_unpublish(pb_orderq_t *q, pb_orderq_link_t *l)
{
	pb_orderq_key_t *k = l->pub_key;
	l->pub_key = NULL;
	if (!k)
		return;
	for (pb_orderq_link_t **pp = &k->pub; *pp; pp = &(*pp)->next_pub) {
		if (*pp == l) {
			*pp = l->next_pub;
			break;
		}
	}
	l->next_pub = NULL;
	key_drop_if_idle(q, k);
}

pb_orderq_link_t *pb_orderq_publishing(const pb_orderq_link_t *l)
{
	return l->key ? l->key->pub : NULL;
}

void pb_orderq_each_waiting(pb_orderq_t *q,
			    void (*fn)(pb_orderq_link_t *l, void *opaque),
			    void *opaque)
{
	for (size_t b = 0; b < q->cap; b++)
		for (pb_orderq_key_t *k = q->buckets[b]; k; k = k->next)
			for (pb_orderq_link_t *l = k->head; l; l = l->next_wait)
				fn(l, opaque);
}

size_t pb_orderq_orders(const pb_orderq_t *q)
{
	return q ? q->len : 0;
}

void pb_orderq_destroy(pb_orderq_t *q,
		       void (*free_waiting)(pb_orderq_link_t *l, void *opaque),
		       void *opaque)
{
	if (!q)
		return;
	for (size_t b = 0; b < q->cap; b++) {
		pb_orderq_key_t *k = q->buckets[b];
		while (k) {
			pb_orderq_key_t *nx = k->next;
			pb_orderq_link_t *l = k->head;
			while (l) {
				pb_orderq_link_t *ln = l->next_wait;
				l->key = NULL;
				l->next_wait = NULL;
				if (free_waiting)
					free_waiting(l, opaque);
				l = ln;
			}
			for (l = k->pub; l; l = l->next_pub)
				l->pub_key = NULL;
			free(k);
			k = nx;
		}
	}
	free(q->buckets);
	free(q);
}
