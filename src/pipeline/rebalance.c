/*
 * rebalance.c: partitions assigned and revoked.
 *
 * On a revoke, the events of the revoked partitions still held are drained
 * within worker.shutdownGraceMs, the stored offsets committed, and what is
 * left abandoned (the next owner redoes it; the marks in Redis stop a
 * double push). On an assign, offsets carried from an earlier revoke are
 * applied (offsets.c).
 *
 * Must never: commit an offset past an event without an acknowledged
 * outcome.
 */
#include "pipeline_internal.h"

/* An incremental (un)assign's error: logged, as librdkafka then keeps the
 * assignment it had (a protocol mismatch; nothing the loop can redo). */
static void assign_error_drop(rd_kafka_error_t *e)
{
	if (!e)
		return;
	pb_log(PB_LOG_ERROR,
	       "cannot change the partition assignment; "
	       "check partition.assignment.strategy",
	       "error", rd_kafka_error_string(e), NULL);
	rd_kafka_error_destroy(e);
}

static bool job_of_revoked(pb_push_job_t *j, void *opaque)
{
	(void)opaque;
	task_t *t = j->opaque;
	return t->part && !t->part->assigned;
}

static void abandon_if_revoked(pb_orderq_link_t *l, void *opaque)
{
	task_t *t = pl_task_of(l);
	(void)opaque;
	if (t->part && !t->part->assigned)
		t->abandoned = true;
}

/* Abandon every task of partitions no longer assigned. */
static void abandon_revoked(pb_pipeline_t *pl)
{
	pl_stage_settle(pl); /* the lists below are rebuilt */
	pb_push_job_t *j =
	    pb_pusher_take_queued(pl->pusher, job_of_revoked, NULL);
	while (j) {
		pb_push_job_t *nx = j->next;
		task_t *t = j->opaque;
		t->abandoned = true;
		pl_key_release(pl, t);
		pl_task_free(pl, t);
		j = nx;
	}
	tlist_t *lists[] = {&pl->ready, &pl->to_record, &pl->to_publish};
	for (size_t li = 0; li < 3; li++) {
		tlist_t keep = {0};
		task_t *t;
		while ((t = pl_list_pop(lists[li]))) {
			if (t->part && !t->part->assigned &&
			    t->acks_pending == 0) {
				t->abandoned = true;
				pl_key_release(pl, t);
				pl_task_free(pl, t);
			} else {
				pl_list_push(&keep, t);
			}
		}
		*lists[li] = keep;
	}
	/* tasks waiting behind their order, and pushes on the wire, are
	 * freed when their turn or answer comes (abandoned flag) */
	pb_orderq_each_waiting(pl->orders, abandon_if_revoked, NULL);
}

static void assign_partitions(pb_pipeline_t *pl, rd_kafka_t *rk,
			      rd_kafka_topic_partition_list_t *parts,
			      bool cooperative)
{
	rd_kafka_topic_partition_list_t *carried =
	    pl_carry_offsets(pl, rk, parts);
	for (int i = 0; i < parts->cnt; i++) {
		part_t *p = pl_part_get(pl, parts->elems[i].topic,
					parts->elems[i].partition);
		if (p) {
			p->assigned = true;
			p->revoking = false;
			p->eof = false;
			pb_track_reset(p->track);
		}
	}
	pl->assigned_once = true;
	pl->assigns++;
	/* the coordinator answered: the worker is consuming (/readyz) */
	atomic_store(&pl->ready_kafka, 1);
	atomic_store(&pl->ready_assigned, 1);
	pb_log(PB_LOG_INFO, "partitions assigned", NULL);
	if (cooperative)
		assign_error_drop(rd_kafka_incremental_assign(rk, parts));
	else
		rd_kafka_assign(rk, parts);
	if (pl->paused_all)
		rd_kafka_pause_partitions(rk, parts);
	if (carried)
		pl_store_carried(pl, carried);
}

/* The end of a revoke: commit the stored offsets (waiting, bounded), give the
 * partitions up, abandon what is still held of them, and tell librdkafka
 * (which holds the rebalance until this call, inside the callback or not). */
static void revoke_finish(pb_pipeline_t *pl, rd_kafka_t *rk,
			  rd_kafka_topic_partition_list_t *parts)
{
	bool cooperative =
	    strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	bool lost = rd_kafka_assignment_lost(rk);
	int64_t left = pl_held_in(pl, parts);
	rd_kafka_resp_err_t cerr =
	    lost ? RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST
		 : pl_commit_within(rk, pl_kafka_wait_ms(pl));
	bool taken = pl_carry_commit_taken(cerr);
	for (int i = 0; i < parts->cnt; i++) {
		part_t *p = pl_part_find(pl, parts->elems[i].topic,
					 parts->elems[i].partition);
		if (!p)
			continue;
		p->assigned = false;
		p->revoking = false;
		p->carry = pl_carry_after_revoke(taken, p->stored);
		p->stored = -1;
	}
	abandon_revoked(pl);
	char n[32];
	snprintf(n, sizeof(n), "%" PRId64, left);
	pb_log(left ? PB_LOG_WARN : PB_LOG_INFO,
	       lost ? "partitions lost" : "partitions revoked",
	       "abandoned_events", n, NULL);
	if (cooperative)
		assign_error_drop(rd_kafka_incremental_unassign(rk, parts));
	else
		rd_kafka_assign(rk, NULL);
}

/*
 * @locality: inside rd_kafka_consume_batch_queue (pl_step, the stop's
 * rejoin) or rd_kafka_consumer_close, on the pipeline thread.
 *
 * A revoke is not finished here: the callback only records it, marks its
 * partitions revoking (consume.c takes no new record of them) and returns,
 * and the loop drains the partitions' held events between its turns
 * (pl_revoke_drain), then finishes it. So the loop never runs inside its
 * own consume call. librdkafka holds the rebalance until the unassign,
 * made outside the callback then (rdkafka.h allows both incremental calls
 * there, and rd_kafka_assign is how the event API answers a rebalance).
 * A lost assignment, and a revoke once the grace period is spent (the
 * close, the stop's rejoin), are finished at once: nothing is drained.
 */
void pl_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
		     rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	pb_pipeline_t *pl = opaque;
	bool cooperative =
	    strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		assign_partitions(pl, rk, parts, cooperative);
		return;
	}
	/* revoke (or lost) */
	bool lost = rd_kafka_assignment_lost(rk);
	/* Lost: the group coordinator went silent past the session timeout
	 * (Kafka unreachable) and this worker consumes nothing until it is
	 * assigned again; /readyz must say so. No consumer error reaches
	 * the loop when every broker is down, so this is the signal. */
	if (lost)
		atomic_store(&pl->ready_kafka, 0);
	if (!lost && !pl->stopping && !pl->revoking)
		pl->revoking = rd_kafka_topic_partition_list_copy(parts);
	if (!pl->revoking || lost || pl->stopping) {
		revoke_finish(pl, rk, parts);
		return;
	}
	pl->revoke_deadline = pb_mono_ms() + pl->cfg->worker_shutdown_grace_ms;
	for (int i = 0; i < parts->cnt; i++) {
		part_t *p = pl_part_find(pl, parts->elems[i].topic,
					 parts->elems[i].partition);
		if (p)
			p->revoking = true;
	}
}

/* Finish a revoke the callback recorded: drain its partitions' held events
 * within the grace budget (turns that consume nothing), then give them up
 * (revoke_finish). Called by the loop between turns. */
void pl_revoke_drain(pb_pipeline_t *pl)
{
	rd_kafka_topic_partition_list_t *parts = pl->revoking;
	if (!parts)
		return;
	while (!pl->stopping && !pl->fatal && pl_held_in(pl, parts) > 0 &&
	       pb_mono_ms() < pl->revoke_deadline)
		pl_step(pl, false, 10);
	pl->revoking = NULL;
	revoke_finish(pl, pl->consumer, parts);
	rd_kafka_topic_partition_list_destroy(parts);
}

/* Serve the consumer's queue for its rebalance callbacks only, while the
 * stop drains (partitions paused, up to wait_ms): a record that still
 * arrives is not taken, and its offset is never stored (the next owner
 * has it). */
void pl_serve_group(pb_pipeline_t *pl, int wait_ms)
{
	rd_kafka_message_t *m[64];
	ssize_t n = rd_kafka_consume_batch_queue(pl->cq, wait_ms, m, 64);
	for (ssize_t i = 0; i < n; i++)
		rd_kafka_message_destroy(m[i]);
}

/* A commit refused because the group went on to a new generation without
 * this worker's offsets (a member left or joined while it finished). */
bool pl_group_moved_on(rd_kafka_resp_err_t e)
{
	return e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
	       e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
	       e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS;
}

/* The final commit was refused (pl_group_moved_on). The offsets count once
 * the coordinator assigns the partitions again: serve the rebalance,
 * paused, until an assignment arrives or the shutdown budget ends; the
 * assignment carries the offsets (pl_carry_offsets) and they are committed.
 * Partitions that go to another member are redone there, as duplicates. */
rd_kafka_resp_err_t pl_commit_after_rejoin(pb_pipeline_t *pl, int64_t deadline,
					   rd_kafka_resp_err_t cerr)
{
	pb_log(PB_LOG_WARN,
	       "final commit refused by the group; rejoining to "
	       "commit within the shutdown grace period",
	       "error", rd_kafka_err2str(cerr), NULL);
	for (part_t *p = pl->parts; p; p = p->next)
		if (p->assigned && p->stored >= 0)
			p->carry = p->stored;
	uint64_t seen = pl->assigns;
	while (pl->assigns == seen && pb_mono_ms() < deadline)
		pl_serve_group(pl, 100);
	if (pl->assigns == seen)
		return cerr;
	return pl_commit_within(pl->consumer, pl_kafka_wait_ms(pl));
}
