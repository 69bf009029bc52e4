/*
 * offsets.c: partitions and their offsets.
 *
 * An offset is stored with librdkafka (for the auto-commit) only when the
 * partition tracker says every event below it has an acknowledged
 * outcome. A partition revoked while outcomes were on their way keeps the
 * offset its outcomes reached (carry): if the partition comes back and the
 * group's committed offset is older, consumption resumes at the carry
 * (pl_carry_offsets), so those events do not get a second outcome.
 *
 * Must never: store an offset for a partition this worker no longer owns.
 */
#include "pipeline_internal.h"

/* how long an assignment waits for the committed offsets it may carry past */
#define CARRY_QUERY_MS 5000

part_t *pl_part_find(pb_pipeline_t *pl, const char *topic, int32_t p)
{
	for (part_t *x = pl->parts; x; x = x->next)
		if (x->partition == p && strcmp(x->topic, topic) == 0)
			return x;
	return NULL;
}

part_t *pl_part_get(pb_pipeline_t *pl, const char *topic, int32_t p)
{
	part_t *x = pl_part_find(pl, topic, p);
	if (x)
		return x;
	x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->topic = strdup(topic);
	x->partition = p;
	x->src = strcmp(topic, pl->cfg->topic_inbound) == 0 ? SRC_INBOUND
							    : SRC_ORDERS;
	x->track = pb_track_new();
	x->stored = x->carry = -1;
	x->next = pl->parts;
	pl->parts = x;
	return x;
}

void pl_store_offset(pb_pipeline_t *pl, part_t *p, int64_t offset)
{
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset =
	    offset;
	rd_kafka_resp_err_t err = rd_kafka_offsets_store(pl->consumer, l);
	if (err)
		pb_log(PB_LOG_WARN, "cannot store offset", "topic", p->topic,
		       "error", rd_kafka_err2str(err), NULL);
	else
		p->stored = offset;
	rd_kafka_topic_partition_list_destroy(l);
}

int64_t pl_held_in(pb_pipeline_t *pl, rd_kafka_topic_partition_list_t *l)
{
	int64_t n = 0;
	for (int i = 0; i < l->cnt; i++) {
		part_t *p =
		    pl_part_find(pl, l->elems[i].topic, l->elems[i].partition);
		if (p)
			n += p->held;
	}
	return n;
}

/* Partitions assigned after a revoke whose commit the group did not take
 * (a refused commit, a lost assignment): resume where this worker's
 * outcomes end (carry), not at the older committed offset, unless an owner
 * in between committed further. Without it every event between the two
 * offsets is consumed again and gets a second outcome record. Sets the
 * start offsets in parts and returns them (NULL: none); every carry of
 * parts is used up. */
rd_kafka_topic_partition_list_t *
pl_carry_offsets(pb_pipeline_t *pl, rd_kafka_t *rk,
		 rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_topic_partition_list_t *q =
	    rd_kafka_topic_partition_list_new(parts->cnt);
	for (int i = 0; i < parts->cnt; i++) {
		part_t *p = pl_part_find(pl, parts->elems[i].topic,
					 parts->elems[i].partition);
		if (p && p->carry >= 0)
			rd_kafka_topic_partition_list_add(q, p->topic,
							  p->partition);
	}
	rd_kafka_topic_partition_list_t *carried = NULL;
	rd_kafka_resp_err_t err =
	    q->cnt ? rd_kafka_committed(rk, q, CARRY_QUERY_MS) : 0;
	if (err)
		pb_log(PB_LOG_WARN,
		       "cannot read the committed offsets; resuming from "
		       "them, events after them come again as duplicates",
		       "error", rd_kafka_err2str(err), NULL);
	for (int i = 0; i < q->cnt; i++) {
		rd_kafka_topic_partition_t *c = &q->elems[i];
		part_t *p = pl_part_find(pl, c->topic, c->partition);
		int64_t start =
		    pl_carry_start(p->carry, !err && !c->err, c->offset);
		if (start >= 0) {
			rd_kafka_topic_partition_list_find(parts, c->topic,
							   c->partition)
			    ->offset = start;
			if (!carried)
				carried =
				    rd_kafka_topic_partition_list_new(q->cnt);
			rd_kafka_topic_partition_list_add(carried, p->topic,
							  p->partition)
			    ->offset = start;
		}
		p->carry = -1;
	}
	rd_kafka_topic_partition_list_destroy(q);
	return carried;
}

/* The carried start offsets, once assigned, become the partitions' stored
 * offsets, so the next commit records them. Frees carried. */
void pl_store_carried(pb_pipeline_t *pl,
		      rd_kafka_topic_partition_list_t *carried)
{
	for (int i = 0; i < carried->cnt; i++) {
		rd_kafka_topic_partition_t *e = &carried->elems[i];
		pl_store_offset(pl, pl_part_find(pl, e->topic, e->partition),
				e->offset);
	}
	char n[32];
	snprintf(n, sizeof(n), "%d", carried->cnt);
	pb_log(PB_LOG_INFO,
	       "resuming where this worker's outcomes end, past the "
	       "committed offset",
	       "partitions", n, NULL);
	rd_kafka_topic_partition_list_destroy(carried);
}

void pl_update_lag(pb_pipeline_t *pl)
{
	if (pb_mono_ms() - pl->lag_at < 5000)
		return;
	pl->lag_at = pb_mono_ms();
	int assigned = 0;
	for (part_t *p = pl->parts; p; p = p->next) {
		if (!p->assigned)
			continue;
		assigned++;
		int64_t lo, hi;
		if (rd_kafka_get_watermark_offsets(pl->consumer, p->topic,
						   p->partition, &lo, &hi))
			continue;
		rd_kafka_topic_partition_list_t *l =
		    rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
		if (!rd_kafka_position(pl->consumer, l) &&
		    l->elems[0].offset >= 0) {
			char lbl[300], pn[16];
			snprintf(pn, sizeof(pn), "%" PRId32, p->partition);
			pb_metrics_labels(lbl, sizeof(lbl), "topic", p->topic,
					  "partition", pn, NULL);
			pb_metrics_set(pl->m, PB_M_CONSUMER_LAG, lbl,
				       (double)(hi - l->elems[0].offset));
		}
		rd_kafka_topic_partition_list_destroy(l);
	}
	pb_metrics_set(pl->m, PB_M_PARTITIONS_ASSIGNED, "", assigned);
}

bool pl_all_eof(pb_pipeline_t *pl)
{
	bool any = false;
	for (part_t *p = pl->parts; p; p = p->next) {
		if (!p->assigned)
			continue;
		any = true;
		if (!p->eof)
			return false;
	}
	return any;
}

rd_kafka_resp_err_t pl_commit_within(rd_kafka_t *rk, int timeout_ms)
{
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	if (!q)
		return RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE;
	rd_kafka_resp_err_t err =
	    rd_kafka_commit_queue(rk, NULL, q, NULL, NULL);
	if (!err) {
		rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms);
		err = ev ? rd_kafka_event_error(ev)
			 : RD_KAFKA_RESP_ERR__TIMED_OUT;
		rd_kafka_event_destroy(ev);
	}
	rd_kafka_queue_destroy(q);
	return err;
}

int pl_kafka_wait_ms(const pb_pipeline_t *pl)
{
	if (!pl->exit_by)
		return PL_COMMIT_WAIT_MS;
	int64_t left = pl->exit_by - pb_mono_ms();
	if (left > PL_COMMIT_WAIT_MS)
		left = PL_COMMIT_WAIT_MS;
	return left < 100 ? 100 : (int)left;
}
