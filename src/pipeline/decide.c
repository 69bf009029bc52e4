/*
 * decide.c: what to do with an event once its state is fetched, and with
 * a push once Pruvan answered.
 *
 * A "published" mark, or a "done" mark whose first copy is still
 * publishing, makes the event a duplicate; a "done" mark alone is a crash
 * between recording and publishing, and the recorded outcome is published
 * again (recovered). Everything else goes to the rules (rules.h) and,
 * when they say push, to the pusher.
 *
 * Must never: push an event whose mark says it was recorded.
 */
#include "pipeline_internal.h"

void pl_to_record(pb_pipeline_t *pl, task_t *t)
{
	pl_list_push(&pl->to_record, t);
}

/* Decide what to do with an order event whose state was fetched. */
static void decide_order(pb_pipeline_t *pl, task_t *t)
{
	pb_event_t *ev = t->ev;
	/* t->acct: looked up once, when consumed (count_consumed) */
	pb_order_state_t *st = t->view.exists ? &t->view.order : NULL;
	pb_rules_decide(ev, t->acct,
			t->acct ? pl_auto_admin_of(pl, t->acct) : true, st,
			&t->dec);
	t->dec_set = true;
	/* the decision holds what it needs; the rest of the fetched state
	 * need not stay resident while the push waits */
	free(t->view.pushed_text);
	t->view.pushed_text = NULL;
	t->view.order.pushed = NULL;
	t->view.order.pushed_len = 0;
	json_decref(ev->order); /* nor the event as received */
	ev->order = NULL;
	switch (t->dec.verdict) {
	case PB_VERDICT_PUSH:
		t->job.acct = t->acct;
		t->job.work_order = t->dec.work_order;
		/* the rules' text of it when they wrote one (taken) */
		t->work_order_text =
		    t->dec.work_order_text
			? t->dec.work_order_text
			: pb_jt_dumps(t->dec.work_order, false);
		t->dec.work_order_text = NULL;
		t->job.work_order_text = t->work_order_text;
		t->job.alone = t->dec.unknown_order;
		t->job.opaque = t;
		pb_pusher_submit(pl->pusher, &t->job);
		return;
	case PB_VERDICT_UNCHANGED:
		pl_set_outcome(
		    t, PB_OUTCOME_UNCHANGED, PB_REASON_NONE, "%s",
		    t->dec.message[0]
			? t->dec.message
			: "nothing changed since the last push: nothing sent");
		t->write_order = true;
		break;
	case PB_VERDICT_STALE:
		pl_set_outcome(t, PB_OUTCOME_STALE,
			       t->dec.reason ? pl_reason_of(t->dec.reason)
					     : PB_REASON_STALE,
			       "%s", t->dec.message);
		break;
	case PB_VERDICT_REJECTED:
		pl_set_outcome(t, PB_OUTCOME_REJECTED,
			       pl_reason_of(t->dec.reason), "%s",
			       t->dec.message);
		break;
	}
	t->record = true;
	pl_to_record(pl, t);
}

/*
 * A discarded item's media file is deleted: nothing relayed for a deleted
 * order is kept (contract 5.1). Only a plain file name directly inside
 * relay.mediaDir is ever removed, whatever path the record names.
 */
static void discard_media(pb_pipeline_t *pl, const pb_inbound_t *in)
{
	const char *path = json_string_value(
	    json_object_get(json_object_get(in->item, "media"), "path"));
	const char *dir = pl->cfg->relay_media_dir;
	size_t dl = dir ? strlen(dir) : 0;
	if (!path || !dl || strncmp(path, dir, dl) != 0 || path[dl] != '/')
		return;
	const char *name = path + dl + 1;
	if (!*name || name[0] == '.' || strchr(name, '/'))
		return;
	if (unlink(path) != 0 && errno != ENOENT)
		pb_log(PB_LOG_WARN, "cannot delete a discarded item's media",
		       "account", in->account, "error", strerror(errno),
		       "what_to_do", "delete it from relay.mediaDir by hand",
		       NULL);
}

/* A pushed delete: the order's tombstone, and what identifies its relayed
 * data from now on (its learned Key1; the source ids last pushed for it,
 * contract section 5). */
static void mark_deleted(task_t *t)
{
	t->set_deleted = true;
	t->deleted_key1 = t->view.key1_learned;
	const char *p = t->dec.pushed_after;
	size_t n = p ? strlen(p) : 0;
	if (!p) {
		p = t->view.order.pushed;
		n = t->view.order.pushed_len;
	}
	free(t->deleted_swo_id);
	free(t->deleted_swo_number);
	t->deleted_swo_id = pb_rules_pushed_source_id(p, n, "source_wo_id");
	t->deleted_swo_number =
	    pb_rules_pushed_source_id(p, n, "source_wo_number");
}

/* A discarded item's Key1 not known yet belongs to a deleted order from
 * now on (Pruvan's recreated copy of it, or the order itself): its later
 * items, with or without a work order number, are discarded for the same
 * reason. */
static void remember_discarded_key1(task_t *t, const char *why)
{
	const pb_inbound_t *in = t->in;
	if (!in->key1 || t->view.key1_deleted || t->view.key1_recreated ||
	    (t->view.key1_learned && !strcmp(t->view.key1_learned, in->key1)))
		return;
	if (!strcmp(why, "recreated_after_delete"))
		t->recreated_key1 = in->key1;
	else
		t->deleted_key1 = in->key1;
}

static void decide_inbound(pb_pipeline_t *pl, task_t *t)
{
	pb_inbound_t *in = t->in;
	if (!pb_config_account(pl->cfg, in->account)) {
		pl_set_outcome(t, PB_OUTCOME_REJECTED,
			       PB_REASON_UNKNOWN_ACCOUNT,
			       "account \"%s\" is not configured: add it under "
			       "accounts in the configuration",
			       in->account);
		t->record = true;
		pl_to_record(pl, t);
		return;
	}
	/* source ids pushed for a deleted order identify it too (contract
	 * section 5), whatever the item's keys say */
	const char *why = pb_rules_inbound_discard_reason(
	    t->view.order.deleted, t->view.key1_learned, in->key1,
	    t->view.key1_deleted || t->view.swo_deleted);
	if (!why && t->view.key1_recreated)
		why = "recreated_after_delete";
	if (why) {
		remember_discarded_key1(t, why);
		pb_reason_t r = pl_reason_of(why);
		pl_set_outcome(
		    t, PB_OUTCOME_DISCARDED, r,
		    r == PB_REASON_RECREATED_AFTER_DELETE
			? "the order was deleted by the back office; "
			  "Pruvan recreated it under a new Key1 to "
			  "relay queued data, which is discarded"
			: "the order was deleted by the back office; "
			  "its relayed data is discarded");
		discard_media(pl, in);
	} else {
		pl_set_outcome(t, PB_OUTCOME_RELAYED, PB_REASON_NONE, NULL);
		if (in->key1 && in->key2 && !t->view.key1_learned)
			t->learn_key1 = in->key1;
	}
	t->record = true;
	pl_to_record(pl, t);
}

/* The outcome a mark records, as codes or (marks of earlier builds) names;
 * PB_OUTCOME_NONE when it is neither. */
static pb_outcome_t mark_outcome(const task_t *t)
{
	pb_outcome_t o = PB_OUTCOME_NONE;
	const char *s = t->view.mark_outcome;
	pb_outcome_parse(s, strlen(s), &o);
	return o;
}

/* A recorded outcome published again after a crash: one that records an
 * effect or a decision; anything else reads as "updated". */
static pb_outcome_t recovered_outcome(pb_outcome_t o)
{
	switch (o) {
	case PB_OUTCOME_CREATED:
	case PB_OUTCOME_UPDATED:
	case PB_OUTCOME_DELETED:
	case PB_OUTCOME_UNCHANGED:
	case PB_OUTCOME_STALE:
	case PB_OUTCOME_REJECTED:
	case PB_OUTCOME_RELAYED:
	case PB_OUTCOME_DISCARDED:
		return o;
	default:
		return PB_OUTCOME_UPDATED;
	}
}

/* Decide what to do with an event whose state was fetched (t->view). A
 * "done" mark is a duplicate while the first copy is still listed with its
 * order (publishing); once its outcome is acknowledged its "published"
 * mark is written before any fetch (pl_redis_stage), so a "done" mark alone
 * means a crash came between recording and publishing. */
void pl_fetched(pb_pipeline_t *pl, task_t *t)
{
	const task_t *twin =
	    t->view.mark == PB_MARK_DONE ? pl_key_twin(t) : NULL;
	if (t->view.mark == PB_MARK_PUBLISHED || twin) {
		pb_outcome_t first = twin ? twin->outcome : mark_outcome(t);
		pl_set_outcome(
		    t, PB_OUTCOME_DUPLICATE, PB_REASON_NONE,
		    "already processed (outcome %s); not pushed again",
		    first ? pb_outcome_name(first) : t->view.mark_outcome);
		/* Pruvan sent a discarded item again: the relay stored its
		 * file again, which nothing else would delete */
		if (t->in && first == PB_OUTCOME_DISCARDED)
			discard_media(pl, t->in);
		t->record = false;
		pl_key_release(pl, t);
		pl_publish_task(pl, t);
		return;
	}
	if (t->mark_won) {
		/* a record rejected as read, not seen before: publish the
		 * rejection; its "published" mark makes a replay a
		 * duplicate (nothing to record first: it has no effect) */
		t->needs_publish_mark = true;
		pl_key_release(pl, t);
		pl_publish_task(pl, t);
		return;
	}
	if (t->view.mark == PB_MARK_DONE) {
		/* effect recorded, outcome never acknowledged: a crash
		 * came between; publish the recorded outcome now */
		pl_set_outcome(t, recovered_outcome(mark_outcome(t)),
			       pl_reason_of(t->view.mark_reason[0]
						? t->view.mark_reason
						: NULL),
			       "outcome recovered after a restart: the effect "
			       "was recorded before; not pushed again");
		/* outcome and reason as recorded, so metrics and
		 * readers see what happened; "recovered" marks it */
		t->recovered = true;
		t->needs_publish_mark = true;
		if (t->in && t->outcome == PB_OUTCOME_DISCARDED)
			discard_media(pl, t->in);
		pl_key_release(pl, t);
		pl_publish_task(pl, t);
		return;
	}
	if (t->ev)
		decide_order(pl, t);
	else
		decide_inbound(pl, t);
}

/* @locality: inside pb_pusher_poll on the pipeline thread. */
void pl_on_pushed(pb_push_job_t *job, void *opaque)
{
	pb_pipeline_t *pl = opaque;
	task_t *t = job->opaque;
	if (t->abandoned) {
		/* or the order's later events wait forever */
		pl_key_release(pl, t);
		pl_task_free(pl, t);
		return;
	}
	if (!job->ok) {
		pl_set_outcome(t, PB_OUTCOME_FAILED,
			       pl_reason_of(job->fail_reason), "%s",
			       job->message);
		/* no mark: a replay from the DLQ must push again */
		pl_key_release(pl, t);
		pl_publish_task(pl, t);
		return;
	}
	pb_outcome_t o = PB_OUTCOME_NONE;
	if (job->batch_size == 1) {
		const char *name = pb_rules_outcome_for(&t->dec, &job->result);
		if (name)
			pb_outcome_parse(name, strlen(name), &o);
	} else {
		o = t->dec.push_action == PB_ACTION_CREATE ? PB_OUTCOME_CREATED
		    : t->dec.push_action == PB_ACTION_DELETE
			? PB_OUTCOME_DELETED
			: PB_OUTCOME_UPDATED;
		int sum = job->result.created + job->result.updated +
			  job->result.deleted;
		if (sum != job->batch_size)
			pb_decision_warn(&t->dec, "batch_counts_mismatch",
					 "Pruvan's counts for the batch do not "
					 "add up to its orders; outcome taken "
					 "from the action");
	}
	if (o == PB_OUTCOME_NONE) {
		pl_set_outcome(t, PB_OUTCOME_FAILED, PB_REASON_PRUVAN_ERROR,
			       "Pruvan accepted the request but reported no "
			       "created, updated or deleted order; check the "
			       "order in Pruvan");
		pl_key_release(pl, t);
		pl_publish_task(pl, t);
		return;
	}
	pl_set_outcome(t, o, PB_REASON_NONE, NULL);
	t->record = true;
	t->write_order = true;
	t->set_created =
	    o == PB_OUTCOME_CREATED || t->dec.push_action == PB_ACTION_CREATE;
	if (t->dec.push_action == PB_ACTION_DELETE)
		mark_deleted(t);
	pl_to_record(pl, t);
}
