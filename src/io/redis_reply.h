/*
 * redis_reply.h: Redis reply trees built in one allocation.
 *
 * hiredis's own reply functions allocate every reply, every string and
 * every element vector on its own: an order's HMGET reply was some twenty
 * allocations and as many frees, 4% of the worker's instructions. The
 * reader made here builds each whole reply tree in one block (a string
 * larger than what is left of it gets a block of its own), and
 * pb_reply_free releases the tree at once.
 *
 * Invariants: the trees have hiredis's layout (redisReply, the same types,
 * str NUL-terminated), so they are read as before; a tree from this
 * reader is freed with pb_reply_free only, never with freeReplyObject,
 * and pb_reply_free takes only such trees (every reader in src/io is made
 * here). A tree is owned by whoever took it from the reader.
 */
#ifndef PB_REDIS_REPLY_H
#define PB_REDIS_REPLY_H

#include <hiredis/hiredis.h>

/* A reader whose replies are freed with pb_reply_free; NULL when out of
 * memory. Free it with redisReaderFree. */
redisReader *pb_reply_reader_new(void);

/* Release a whole reply tree of such a reader (NULL: nothing). */
void pb_reply_free(redisReply *r);

#endif
