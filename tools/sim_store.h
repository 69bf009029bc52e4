/*
 * sim_store.h: the orders the simulator holds, per apiKey and
 * workOrderNumber, as Pruvan would hold them (every field ever pushed,
 * merged) plus how many times each was created, updated and deleted.
 *
 * An order is kept as the texts of its pushes since it was (re)created,
 * oldest first, not as a tree: a push replaces the older ones with exactly
 * its fields (the worker sends whole orders, in a few shapes) and is added
 * after the rest; the fields are merged only when someone asks
 * (/_sim/orders), or when many shapes pile up. Merged, a later push's
 * value wins and fields starting with '_' are ignored, so a client can
 * never overwrite the bookkeeping.
 *
 * Not thread-safe: sim_state.c calls it under its mutex.
 */
#ifndef PB_SIM_STORE_H
#define PB_SIM_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "sim_batch.h"

typedef struct pb_sim_store pb_sim_store_t;
typedef struct pb_sim_account pb_sim_account_t;

typedef enum pb_sim_action {
	PB_SIM_CREATE,
	PB_SIM_UPDATE,
	PB_SIM_DELETE
} pb_sim_action_t;

pb_sim_store_t *pb_sim_store_new(void);
void pb_sim_store_free(pb_sim_store_t *st);
/* Forget every order of every apiKey. */
void pb_sim_store_clear(pb_sim_store_t *st);

/* The orders of api_key; NULL when it has none (and !create) or on NOMEM. */
pb_sim_account_t *pb_sim_store_account(pb_sim_store_t *st, const char *api_key,
				       bool create);

/* One order's record: stays where it is until the store is cleared. */
typedef struct sim_rec pb_sim_rec_t;

/* The record of won, NULL when never pushed (acc may be NULL). */
pb_sim_rec_t *pb_sim_store_find(const pb_sim_account_t *acc, const char *won,
				size_t won_len);
/* Whether the order exists and is not deleted (r may be NULL). */
bool pb_sim_rec_live(const pb_sim_rec_t *r);

/* Apply one order of a planned batch (o->won set) to r, its record as
 * pb_sim_store_find gave it, or NULL: then it is looked up again (an order
 * earlier in the batch may have made it) or made. PB_ERR_NOMEM only. */
pb_err_t pb_sim_store_apply(pb_sim_account_t *acc, pb_sim_rec_t *r,
			    const pb_sim_order_t *o, pb_sim_action_t action);

/* {"WO": {...merged fields..., "_created": n, "_updated": n, "_deleted": n,
 * "_isDeleted": bool}} of acc (NULL: {}); new reference, NULL on NOMEM. */
json_t *pb_sim_store_orders_json(const pb_sim_account_t *acc);

#endif
