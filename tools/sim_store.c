/*
 * sim_store.c: the simulator's orders (see sim_store.h).
 *
 * Per apiKey an open-addressing table of records by workOrderNumber. A
 * record keeps hist[]: the pushed texts since it was (re)created, oldest
 * first, each with its member names (NUL-separated, in the text's order).
 * A push drops every older entry with exactly its names (it overrides each
 * of their fields) and is appended, so hist holds one entry per shape of
 * push the client sends (the worker sends whole orders, a handful of
 * shapes); past SIM_MAX_HIST entries jansson merges them into one. An
 * entry's buffers are reused when the next text fits, so a steady stream
 * of pushes allocates nothing here.
 */
#include "sim_store.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SIM_MAX_HIST 16

typedef struct {
	char *t; /* NUL-terminated */
	size_t n, cap;
} sim_text_t;

/* One push's text and member names. */
typedef struct {
	sim_text_t text, names;
} sim_push_t;

typedef struct sim_rec {
	size_t won_len;
	int64_t created, updated, deleted;
	bool is_deleted;
	sim_push_t *hist; /* nhist in use; up to hcap with spare buffers */
	size_t nhist, hcap;
	char won[]; /* in the record: a lookup touches one allocation */
} sim_rec_t;

/* A slot keeps the hash beside the record: a probe reads no record. */
typedef struct {
	uint64_t hash;
	sim_rec_t *r;
} sim_slot_t;

struct pb_sim_account {
	char *api_key;
	pb_sim_account_t *next;
	sim_slot_t *slots;
	size_t cap, count;
};

struct pb_sim_store {
	pb_sim_account_t *accounts;
};

static uint64_t fnv(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* Copy s[0..n) into t, reusing its buffer when it fits. */
static bool text_set(sim_text_t *t, const char *s, size_t n)
{
	if (n + 1 > t->cap) {
		size_t cap = n + 1 + (n >> 2);
		char *c = malloc(cap);
		if (!c)
			return false;
		free(t->t);
		t->t = c;
		t->cap = cap;
	}
	memcpy(t->t, s, n);
	t->t[n] = '\0';
	t->n = n;
	return true;
}

/* Forget the pushed fields (the buffers stay for the next pushes). */
static void rec_drop_fields(sim_rec_t *r)
{
	r->nhist = 0;
}

static void rec_free(sim_rec_t *r)
{
	for (size_t i = 0; i < r->hcap; i++) {
		free(r->hist[i].text.t);
		free(r->hist[i].names.t);
	}
	free(r->hist);
	free(r);
}

static void account_free(pb_sim_account_t *a)
{
	for (size_t i = 0; i < a->cap; i++)
		if (a->slots[i].r)
			rec_free(a->slots[i].r);
	free(a->slots);
	free(a->api_key);
	free(a);
}

pb_sim_store_t *pb_sim_store_new(void)
{
	return calloc(1, sizeof(pb_sim_store_t));
}

void pb_sim_store_clear(pb_sim_store_t *st)
{
	while (st->accounts) {
		pb_sim_account_t *a = st->accounts;
		st->accounts = a->next;
		account_free(a);
	}
}

void pb_sim_store_free(pb_sim_store_t *st)
{
	if (!st)
		return;
	pb_sim_store_clear(st);
	free(st);
}

pb_sim_account_t *pb_sim_store_account(pb_sim_store_t *st, const char *api_key,
				       bool create)
{
	for (pb_sim_account_t *a = st->accounts; a; a = a->next)
		if (strcmp(a->api_key, api_key) == 0)
			return a;
	if (!create)
		return NULL;
	pb_sim_account_t *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->cap = 1024;
	a->slots = calloc(a->cap, sizeof(*a->slots));
	a->api_key = strdup(api_key);
	if (!a->slots || !a->api_key) {
		free(a->slots);
		free(a->api_key);
		free(a);
		return NULL;
	}
	a->next = st->accounts;
	st->accounts = a;
	return a;
}

/* The slot of won: its record, or the empty slot where it would go. */
static sim_slot_t *slot_of(const pb_sim_account_t *a, const char *won, size_t n,
			   uint64_t h)
{
	size_t mask = a->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		sim_slot_t *s = &a->slots[i];
		if (!s->r || (s->hash == h && s->r->won_len == n &&
			      memcmp(s->r->won, won, n) == 0))
			return s;
	}
}

static bool account_grow(pb_sim_account_t *a)
{
	size_t ncap = a->cap * 2;
	sim_slot_t *ns = calloc(ncap, sizeof(*ns));
	if (!ns)
		return false;
	sim_slot_t *old = a->slots;
	size_t ocap = a->cap;
	a->slots = ns;
	a->cap = ncap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].r)
			*slot_of(a, old[i].r->won, old[i].r->won_len,
				 old[i].hash) = old[i];
	free(old);
	return true;
}

pb_sim_rec_t *pb_sim_store_find(const pb_sim_account_t *acc, const char *won,
				size_t won_len)
{
	return acc ? slot_of(acc, won, won_len, fnv(won, won_len))->r : NULL;
}

bool pb_sim_rec_live(const pb_sim_rec_t *r)
{
	return r && !r->is_deleted;
}

/* ---- merging ----------------------------------------------------------- */

/* The pushed fields of r merged into obj (later texts win, '_' skipped). */
static int merge_into(json_t *obj, const sim_rec_t *r)
{
	for (size_t i = 0; i < r->nhist; i++) {
		json_t *o =
		    json_loadb(r->hist[i].text.t, r->hist[i].text.n, 0, NULL);
		const char *key;
		json_t *v;
		json_object_foreach(o, key, v)
		{
			if (key[0] != '_' &&
			    json_object_set(obj, key, v) != 0) {
				json_decref(o);
				return -1;
			}
		}
		json_decref(o);
	}
	return 0;
}

/* Past SIM_MAX_HIST texts: merge them into one. */
static bool rec_compact(sim_rec_t *r)
{
	json_t *obj = json_object();
	char *text = NULL, *names = NULL;
	size_t len = 0, used = 0;
	bool ok = false;
	if (!obj || merge_into(obj, r) != 0 ||
	    !(text = json_dumps(obj, JSON_COMPACT)))
		goto out;
	len = strlen(text);
	if (!(names = malloc(len + 1)))
		goto out;
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		size_t m = strlen(key) + 1;
		memcpy(names + used, key, m);
		used += m;
	}
	ok = text_set(&r->hist[0].text, text, len) &&
	     text_set(&r->hist[0].names, names, used);
	if (ok)
		r->nhist = 1;
out:
	json_decref(obj);
	free(text);
	free(names);
	return ok;
}

/* The push o's fields merged into r (see the header comment). */
static bool rec_merge(sim_rec_t *r, const pb_sim_order_t *o)
{
	/* entries with the same names as o are overridden whole: drop them,
	 * keeping their buffers past nhist for reuse */
	size_t k = 0;
	for (size_t i = 0; i < r->nhist; i++) {
		sim_push_t *h = &r->hist[i];
		if (h->names.n == o->names_len &&
		    memcmp(h->names.t, o->names, o->names_len) == 0)
			continue;
		if (k != i) {
			sim_push_t tmp = r->hist[k];
			r->hist[k] = *h;
			*h = tmp;
		}
		k++;
	}
	r->nhist = k;
	if (r->nhist == r->hcap) {
		size_t nc = r->hcap ? r->hcap * 2 : 2;
		sim_push_t *nh = realloc(r->hist, nc * sizeof(*nh));
		if (!nh)
			return false;
		memset(nh + r->hcap, 0, (nc - r->hcap) * sizeof(*nh));
		r->hist = nh;
		r->hcap = nc;
	}
	sim_push_t *h = &r->hist[r->nhist];
	if (!text_set(&h->text, o->text, o->len) ||
	    !text_set(&h->names, o->names, o->names_len))
		return false;
	r->nhist++;
	if (r->nhist > SIM_MAX_HIST && !rec_compact(r))
		return false;
	return true;
}

/* The record of o->won, made when there is none. */
static sim_rec_t *rec_get(pb_sim_account_t *acc, const pb_sim_order_t *o)
{
	uint64_t h = fnv(o->won, o->won_len);
	sim_slot_t *s = slot_of(acc, o->won, o->won_len, h);
	if (s->r)
		return s->r;
	if ((acc->count + 1) * 2 > acc->cap) {
		if (!account_grow(acc))
			return NULL;
		s = slot_of(acc, o->won, o->won_len, h);
	}
	sim_rec_t *r = calloc(1, sizeof(*r) + o->won_len + 1);
	if (!r)
		return NULL;
	memcpy(r->won, o->won, o->won_len);
	r->won_len = o->won_len;
	*s = (sim_slot_t){h, r};
	acc->count++;
	return r;
}

pb_err_t pb_sim_store_apply(pb_sim_account_t *acc, pb_sim_rec_t *r,
			    const pb_sim_order_t *o, pb_sim_action_t action)
{
	if (!r && !(r = rec_get(acc, o)))
		return PB_ERR_NOMEM;
	switch (action) {
	case PB_SIM_CREATE:
		rec_drop_fields(r); /* a create over a deleted order */
		r->created++;
		r->is_deleted = false;
		break;
	case PB_SIM_UPDATE:
		r->updated++;
		break;
	case PB_SIM_DELETE:
		r->deleted++;
		r->is_deleted = true;
		break;
	}
	return rec_merge(r, o) ? PB_OK : PB_ERR_NOMEM;
}

json_t *pb_sim_store_orders_json(const pb_sim_account_t *acc)
{
	json_t *all = json_object();
	for (size_t i = 0; all && acc && i < acc->cap; i++) {
		const sim_rec_t *r = acc->slots[i].r;
		if (!r)
			continue;
		json_t *o = json_pack(
		    "{s:I,s:I,s:I,s:b}", "_created", (json_int_t)r->created,
		    "_updated", (json_int_t)r->updated, "_deleted",
		    (json_int_t)r->deleted, "_isDeleted", r->is_deleted);
		if (!o || merge_into(o, r) != 0 ||
		    json_object_setn_new(all, r->won, r->won_len, o) != 0) {
			json_decref(o);
			json_decref(all);
			return NULL;
		}
	}
	return all;
}
