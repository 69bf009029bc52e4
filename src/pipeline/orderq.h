/*
 * orderq.h: per-order queues, so that a later event of an order never
 * overtakes an earlier one.
 *
 * An item (the pipeline's task) embeds a pb_orderq_link_t. Admitted under
 * its order (account + work order number), it either holds the order at
 * once or waits behind the item that holds it, in arrival order. When the
 * holder's effect is recorded it releases the order and the next waiting
 * item holds it. A released item may stay listed with its order as
 * *publishing* (recorded, outcome not yet acknowledged by Kafka) until it
 * is unpublished: a second copy of its event that arrives meanwhile is then
 * recognised as a duplicate, not as a crash to recover from.
 *
 * An order's entry exists while some item holds it, waits for it or
 * publishes under it; it is freed when the last one leaves. The queues
 * never allocate per item (the links are intrusive); one allocation per
 * order with items in flight.
 *
 * Invariants: an item waits in at most one order and publishes under at
 * most one; a released order's next holder is the oldest waiting item.
 * Must never: free an item (its owner does), or touch an item's memory
 * outside its link.
 */
#ifndef PB_ORDERQ_H
#define PB_ORDERQ_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

typedef struct pb_orderq pb_orderq_t;
typedef struct pb_orderq_key pb_orderq_key_t;

/* An item's place in the queues; zero-initialised before admit. */
typedef struct pb_orderq_link {
	struct pb_orderq_link *next_wait; /* behind the same order */
	struct pb_orderq_link *next_pub;  /* in its order's publishing list */
	pb_orderq_key_t *key;		  /* held or waited for; NULL: none */
	pb_orderq_key_t *pub_key;	  /* published under; NULL: none */
} pb_orderq_link_t;

pb_err_t pb_orderq_new(pb_orderq_t **ret_q);

/* Free q and every order entry. Items still waiting are handed to
 * free_waiting (may be NULL); publishing items are unlinked (their
 * pub_key set to NULL) and left to their owners. */
void pb_orderq_destroy(pb_orderq_t *q,
		       void (*free_waiting)(pb_orderq_link_t *l, void *opaque),
		       void *opaque);

/* Admit l under the order (account, won). *ret_go is true when l holds
 * the order now, false when it waits. PB_ERR_NOMEM leaves l unlinked. */
pb_err_t pb_orderq_admit(pb_orderq_t *q, const char *account, const char *won,
			 pb_orderq_link_t *l, bool *ret_go);

/* l, holding its order, is done with it: with publishing, l stays listed
 * with the order until pb_orderq_unpublish (once; a second release of an
 * item already publishing does not list it again). Returns the next
 * waiting item, which holds the order now, or NULL: the order is idle. A
 * link that holds no order returns NULL. */
pb_orderq_link_t *pb_orderq_release(pb_orderq_t *q, pb_orderq_link_t *l,
				    bool publishing);

/* l's outcome is acknowledged (or l is given up): it leaves its order's
 * publishing list. No-op for a link that is not publishing. */
void pb_orderq_unpublish(pb_orderq_t *q, pb_orderq_link_t *l);

/* The first item publishing under the order l holds (then follow
 * next_pub); NULL when none, or when l holds no order. */
pb_orderq_link_t *pb_orderq_publishing(const pb_orderq_link_t *l);

/* Call fn on every waiting item (not the holders), in no set order. fn
 * must not change the queues. */
void pb_orderq_each_waiting(pb_orderq_t *q,
			    void (*fn)(pb_orderq_link_t *l, void *opaque),
			    void *opaque);

/* Orders with an entry now (held, waited for or publishing). */
size_t pb_orderq_orders(const pb_orderq_t *q);

#endif
