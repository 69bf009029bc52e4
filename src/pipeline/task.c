/*
 * task.c: the task, one consumed record on its way to its outcome, and its
 * one lifecycle owner.
 *
 * A task is made by consume.c and freed only here: pl_task_finish once
 * every record it writes is acknowledged (its offset may then be stored),
 * pl_task_free for the rest (abandoned, shutdown). pl_key_release hands
 * its order to the next waiting event. The stage lists (tlist_t) are
 * intrusive: a task is on at most one of them at a time.
 *
 * Must never: free a task a delivery report still points at
 * (acks_pending), or let an abandoned task's successor be pushed by this
 * worker.
 */
#include "pipeline_internal.h"

const char *const pl_src_names[2] = {"orders", "inbound"};

/* The order's previous event is recorded: let the next one go. A task
 * whose effect is recorded stays listed with its order until its outcome is
 * acknowledged (orderq.h: publishing), so that a second copy of the same
 * event arriving meanwhile is recognised as a duplicate and not as a crash
 * to recover from. */
void pl_key_release(pb_pipeline_t *pl, task_t *t)
{
	bool publishing = t->needs_publish_mark && !t->abandoned;
	pb_orderq_link_t *nx =
	    pb_orderq_release(pl->orders, &t->order, publishing);
	while (nx) {
		task_t *n = pl_task_of(nx);
		if (!n->abandoned) {
			pl_list_push(&pl->ready, n);
			return;
		}
		/* its partition was revoked or lost while it waited: the
		 * next owner redoes it; pushing it here could race that owner
		 * into a second push */
		nx = pb_orderq_release(pl->orders, &n->order, false);
		pl_task_free(pl, n);
	}
}

/* Another copy of t's event, recorded by this worker, still publishing. */
const task_t *pl_key_twin(const task_t *t)
{
	const char *id = pl_task_mark_id(t);
	for (pb_orderq_link_t *l = pb_orderq_publishing(&t->order); l;
	     l = l->next_pub) {
		const task_t *x = pl_task_of(l);
		if (!x->abandoned && x != t &&
		    strcmp(pl_task_mark_id(x), id) == 0)
			return x;
	}
	return NULL;
}

/* How many freed tasks the pool keeps: about one consumed batch, so that
 * the steady state allocates none (a task is ~3.6 KiB; calloc and free of
 * one per event were 3% of the worker's CPU). Sanitizer builds keep none,
 * so that a use after free is still caught. */
static bool task_pool_has_room(const pb_pipeline_t *pl)
{
#if defined(__SANITIZE_ADDRESS__)
	(void)pl;
	return false;
#else
	return pl->task_pool_len < CONSUME_BATCH;
#endif
}

task_t *pl_task_new(pb_pipeline_t *pl)
{
	task_t *t = pl->task_pool;
	if (!t)
		return calloc(1, sizeof(*t));
	pl->task_pool = t->next;
	pl->task_pool_len--;
	memset(t, 0, sizeof(*t));
	return t;
}

void pl_task_pool_drain(pb_pipeline_t *pl)
{
	while (pl->task_pool) {
		task_t *t = pl->task_pool;
		pl->task_pool = t->next;
		free(t);
	}
	pl->task_pool_len = 0;
}

void pl_task_free(pb_pipeline_t *pl, task_t *t)
{
	pb_orderq_unpublish(pl->orders, &t->order);
	if (t->part)
		t->part->held--;
	pl->alive--;
	pb_event_destroy(t->ev);
	pb_inbound_destroy(t->in);
	free(t->won_k1);
	free(t->deleted_swo_id);
	free(t->deleted_swo_number);
	pb_rejection_clear(&t->rej);
	if (t->view_set)
		pb_state_view_clear(&t->view);
	if (t->dec_set)
		pb_decision_clear(&t->dec);
	free(t->work_order_text);
	if (t->headers)
		rd_kafka_headers_destroy(t->headers);
	free(t->mark_won);
	free(t->bytes);
	if (task_pool_has_room(pl)) {
		t->next = pl->task_pool;
		pl->task_pool = t;
		pl->task_pool_len++;
		return;
	}
	free(t);
}

const char *pl_task_account(const task_t *t)
{
	if (t->ev)
		return t->ev->account;
	if (t->in)
		return t->in->account;
	return t->rej.account;
}

const char *pl_task_won(const task_t *t)
{
	if (t->ev)
		return t->ev->work_order_number;
	if (t->in)
		return t->in->key2;
	return t->rej.work_order_number;
}

/* The order name state keys use: an item with only a key1 has no work
 * order number; its marks live under "#key1:KEY1" (no order hash exists
 * there, so only the deleted-Key1 set decides it). */
static const char *task_state_won(const task_t *t)
{
	if (t->in && !t->in->key2)
		return t->won_k1 ? t->won_k1 : "";
	return pl_task_won(t);
}

const char *pl_task_event_id(const task_t *t)
{
	if (t->ev)
		return t->ev->event_id;
	if (t->in)
		return t->in->uuid;
	return t->rej.event_id;
}

/* The identity of t's mark in Redis: the event's own, or for a record
 * rejected as it was read (its eventId may be unreadable) one made of its
 * topic, partition and offset (contract section 6), so that a replay of
 * that offset finds the mark and reports a duplicate. */
#define MARK_ACCOUNT_RECORD "~"
#define MARK_ID_RECORD	    "record"
const char *pl_task_mark_account(const task_t *t)
{
	return t->mark_won ? MARK_ACCOUNT_RECORD : pl_task_account(t);
}

const char *pl_task_mark_won(const task_t *t)
{
	return t->mark_won ? t->mark_won : task_state_won(t);
}

const char *pl_task_mark_id(const task_t *t)
{
	return t->mark_won ? MARK_ID_RECORD : pl_task_event_id(t);
}

void pl_set_outcome(task_t *t, pb_outcome_t outcome, pb_reason_t reason,
		    const char *fmt, ...)
{
	t->outcome = outcome;
	t->reason = reason;
	t->message[0] = '\0';
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		pb_format_text(t->message, sizeof(t->message), fmt, ap);
		va_end(ap);
	}
}

pb_reason_t pl_reason_of(const char *name)
{
	pb_reason_t r = PB_REASON_NONE;
	if (name && !pb_reason_parse(name, strlen(name), &r))
		r = PB_REASON_INTERNAL;
	return r;
}

const char *pl_reason_name_or_null(pb_reason_t r)
{
	return r == PB_REASON_NONE ? NULL : pb_reason_name(r);
}

bool pl_dlq_wanted(int src, pb_outcome_t o, pb_reason_t r)
{
	switch (o) {
	case PB_OUTCOME_FAILED:
		return true;
	case PB_OUTCOME_REJECTED:
		/* records that are not events, and relayed items the worker
		 * cannot take */
		return src == SRC_INBOUND || r == PB_REASON_INVALID_JSON ||
		       r == PB_REASON_TOO_LARGE || r == PB_REASON_EMPTY_RECORD;
	default:
		return false;
	}
}

/* Everything of t is acknowledged: its offset may be committed. */
void pl_task_finish(pb_pipeline_t *pl, task_t *t)
{
	int64_t commit;
	part_t *p = t->part;
	if (!t->abandoned && p && pb_track_done(p->track, t->offset, &commit)) {
		if (p->assigned)
			pl_store_offset(pl, p, commit);
		else /* revoked while its outcome was on its way: not ours
		      * to commit, but where to resume if it comes back */
			p->carry = pl_carry_raise(p->carry, commit);
	}
	if (t->needs_publish_mark && !t->abandoned)
		pl_pubmark_add(pl, t);
	if (pl->stages.nflights) {
		/* A stage in flight may fetch a second copy of t's event, and
		 * its replies show t's mark as "done": t stays listed with its
		 * order until they are applied, so the copy is a duplicate.
		 * Later stages write t's "published" mark before they fetch. */
		t->linger_seq = pl->stages.stage_seq;
		pl_list_push(&pl->lingering, t);
		return;
	}
	pl_task_free(pl, t);
}

void pl_list_unlink(tlist_t *l, task_t *prev, task_t *t)
{
	if (prev)
		prev->next = t->next;
	else
		l->head = t->next;
	if (l->tail == t)
		l->tail = prev;
	l->n--;
	t->next = NULL;
}
