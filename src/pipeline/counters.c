/*
 * counters.c: the counters the loop updates once per event, each series
 * resolved once.
 *
 * Building the label text and looking the series up by (name, labels)
 * for every consumed record and every outcome was 2-3% of the worker's
 * CPU. A series is found instead by a small integer key (which counter,
 * source, account, outcome, reason) in a fixed open-addressed table; a key
 * that does not fit or finds no free slot, and an update the registry
 * ignored or dropped, go through pb_metrics_add as before, so the values
 * and the drop count are the same.
 *
 * Must never: let an account name the configuration does not hold become
 * a label value.
 */
#include "pipeline_internal.h"

enum { KEY_CONSUMED = 1, KEY_OUTCOME = 2 };

_Static_assert(PB_OUTCOME__COUNT <= 64, "outcome fits 6 bits of the key");
_Static_assert(PB_REASON__COUNT <= 256, "reason fits 8 bits of the key");

/* The key of a series; 0 when it does not fit (too many accounts). */
static uint32_t series_key(const pb_pipeline_t *pl, unsigned what, int src,
			   const pb_account_t *acct, unsigned outcome,
			   unsigned reason)
{
	size_t a = acct ? (size_t)(acct - pl->cfg->accounts) + 1 : 0;
	if (a >= 1024)
		return 0;
	return what | (uint32_t)(src & 1) << 2 | (uint32_t)a << 3 |
	       outcome << 13 | reason << 19;
}

/* The slot of key, claimed when it was free; NULL when the table is full
 * or the key is 0. */
static pl_series_slot_t *series_slot(pb_pipeline_t *pl, uint32_t key)
{
	if (!key)
		return NULL;
	uint32_t h = key * 2654435761u;
	for (size_t i = 0; i < PL_SERIES_SLOTS; i++) {
		pl_series_slot_t *sl = &pl->series[(h + i) % PL_SERIES_SLOTS];
		if (sl->key == key)
			return sl;
		if (sl->key == 0) {
			sl->key = key;
			return sl;
		}
	}
	return NULL;
}

/* Counter name += 1 (labels: its label set), remembering the series in sl
 * (NULL: no slot to remember it in). */
static void count_new(pb_pipeline_t *pl, pl_series_slot_t *sl, const char *name,
		      const char *labels)
{
	pb_metrics_series_t *s = pb_metrics_add_series(pl->m, name, labels, 1);
	if (sl)
		sl->s = s;
}

static const char *account_label(const pb_account_t *acct)
{
	return acct && acct->name ? acct->name : "unknown";
}

void pl_count_consumed(pb_pipeline_t *pl, int src, const pb_account_t *acct)
{
	uint32_t key = series_key(pl, KEY_CONSUMED, src, acct, 0, 0);
	pl_series_slot_t *sl = series_slot(pl, key);
	if (sl && sl->s) {
		pb_metrics_series_add(pl->m, sl->s, 1);
		return;
	}
	char lbl[300];
	pb_metrics_labels(lbl, sizeof(lbl), "source", pl_src_names[src],
			  "account", account_label(acct), NULL);
	count_new(pl, sl, PB_M_EVENTS_CONSUMED, lbl);
}

void pl_count_outcome(pb_pipeline_t *pl, int src, const pb_account_t *acct,
		      pb_outcome_t outcome, pb_reason_t reason)
{
	uint32_t key = series_key(pl, KEY_OUTCOME, src, acct, (unsigned)outcome,
				  (unsigned)reason);
	pl_series_slot_t *sl = series_slot(pl, key);
	if (sl && sl->s) {
		pb_metrics_series_add(pl->m, sl->s, 1);
		return;
	}
	char lbl[512];
	pb_metrics_labels(lbl, sizeof(lbl), "source", pl_src_names[src],
			  "account", account_label(acct), "outcome",
			  pb_outcome_name(outcome), "reason",
			  pb_reason_name(reason), NULL);
	count_new(pl, sl, PB_M_OUTCOMES, lbl);
}
