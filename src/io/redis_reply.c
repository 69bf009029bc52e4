/*
 * redis_reply.c: Redis reply trees built in one allocation (see
 * redis_reply.h).
 *
 * The root reply of a tree sits in a tree_t, whose room[] is sized when
 * the root is made (an array's elements, a string's bytes) and handed out
 * in 8-byte steps to the replies, strings and element vectors below it;
 * what does not fit (a long string further down) gets a block of its own,
 * listed in extra. hiredis's reader makes the root first and finds a
 * child's parent through task->parent, so the root, and its tree, is
 * found by climbing the tasks.
 */
#include "redis_reply.h"

#include <hiredis/read.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct extra {
	struct extra *next;
	char data[]; /* 8-aligned: after one pointer */
} extra_t;

typedef struct {
	extra_t *extra;	  /* blocks beyond room[] */
	size_t used, cap; /* of room[], in bytes */
	redisReply root;
	char room[]; /* 8-aligned: the fields before are */
} tree_t;

/* Room an array root's tree starts with: per element its pointer, its
 * reply and a short string, then some more. */
#define PER_ELEMENT (sizeof(redisReply *) + sizeof(redisReply) + 24)
#define ROOM_MORE   256

static tree_t *tree_of(const redisReply *root)
{
	return (tree_t *)(void *)((char *)root - offsetof(tree_t, root));
}

static void *tree_alloc(tree_t *t, size_t n)
{
	size_t k = (n + 7) & ~(size_t)7;
	if (k >= n && k <= t->cap - t->used) {
		void *p = t->room + t->used;
		t->used += k;
		return p;
	}
	extra_t *x = malloc(sizeof(*x) + n);
	if (!x)
		return NULL;
	x->next = t->extra;
	t->extra = x;
	return x->data;
}

/* The root of a new tree with room for cap more bytes; NULL when out of
 * memory or when cap cannot be had. */
static redisReply *root_new(int type, size_t cap)
{
	if (cap > ((size_t)-1) / 2)
		return NULL;
	tree_t *t = malloc(sizeof(*t) + cap);
	if (!t)
		return NULL;
	t->extra = NULL;
	t->used = 0;
	t->cap = cap;
	memset(&t->root, 0, sizeof(t->root));
	t->root.type = type;
	return &t->root;
}

/* A reply below the root: from the root's tree, attached to its parent. */
static redisReply *child_new(const redisReadTask *task, int type, size_t more,
			     void **more_out)
{
	const redisReadTask *top = task;
	while (top->parent)
		top = top->parent;
	tree_t *t = tree_of(top->obj);
	redisReply *r = tree_alloc(t, sizeof(*r));
	void *m = r && more ? tree_alloc(t, more) : NULL;
	if (!r || (more && !m))
		return NULL; /* what was taken goes with the tree */
	memset(r, 0, sizeof(*r));
	r->type = type;
	redisReply *parent = task->parent->obj;
	parent->element[task->idx] = r;
	if (more_out)
		*more_out = m;
	return r;
}

static redisReply *reply_new(const redisReadTask *task, int type,
			     size_t root_room, size_t more, void **more_out)
{
	if (task->parent)
		return child_new(task, type, more, more_out);
	redisReply *r = root_new(type, root_room);
	if (r && more) {
		*more_out = tree_alloc(tree_of(r), more);
		if (!*more_out) {
			pb_reply_free(r);
			return NULL;
		}
	}
	return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
	void *s = NULL;
	/* a root string's room: its bytes and the NUL, in 8-byte steps */
	redisReply *r = reply_new(task, task->type, len + 8, len + 1, &s);
	if (!r)
		return NULL;
	memcpy(s, str, len);
	((char *)s)[len] = '\0';
	r->str = s;
	r->len = len;
	return r;
}

static void *create_array(const redisReadTask *task, int elements)
{
	size_t n = elements > 0 ? (size_t)elements : 0;
	void *v = NULL;
	redisReply *r =
	    reply_new(task, REDIS_REPLY_ARRAY, n * PER_ELEMENT + ROOM_MORE,
		      n * sizeof(redisReply *), &v);
	if (!r)
		return NULL;
	if (n)
		memset(v, 0, n * sizeof(redisReply *));
	r->element = v;
	r->elements = n;
	return r;
}

static void *create_integer(const redisReadTask *task, long long value)
{
	redisReply *r = reply_new(task, REDIS_REPLY_INTEGER, 0, 0, NULL);
	if (r)
		r->integer = value;
	return r;
}

static void *create_nil(const redisReadTask *task)
{
	return reply_new(task, REDIS_REPLY_NIL, 0, 0, NULL);
}

static void free_object(void *root)
{
	pb_reply_free(root);
}

static redisReplyObjectFunctions tree_functions = {
    create_string, create_array, create_integer, create_nil, free_object};

redisReader *pb_reply_reader_new(void)
{
	return redisReaderCreateWithFunctions(&tree_functions);
}

void pb_reply_free(redisReply *r)
{
	if (!r)
		return;
	tree_t *t = tree_of(r);
	for (extra_t *x = t->extra, *nx; x; x = nx) {
		nx = x->next;
		free(x);
	}
	free(t);
}
