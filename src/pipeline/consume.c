/*
 * consume.c: taking consumed records in.
 *
 * A record's key and value are copied into its task (a held librdkafka
 * message pins its whole fetch buffer), its Schema Registry framing and
 * headers read, and it is parsed into an order event or relayed item. A
 * record that cannot be read is rejected with a reason and goes through
 * the state fetch under its topic/partition/offset identity, so that a
 * replay of it is a duplicate. Flow control (pausing, waking librdkafka's
 * fetcher) lives here too.
 *
 * Must never: crash, stop a partition or lose a neighbouring event on bad
 * input.
 */
#include "pipeline_internal.h"

static bool admit_key(pb_pipeline_t *pl, task_t *t);

/* A record rejected as it was read. It goes through the state fetch under
 * its record identity (pl_task_mark_won) so that a replay is a duplicate; only
 * when that cannot be set up (out of memory) is it published at once. */
static void reject_parse(pb_pipeline_t *pl, task_t *t, bool dedupe)
{
	pl_set_outcome(t, PB_OUTCOME_REJECTED, pl_reason_of(t->rej.reason),
		       "%s", t->rej.message);
	if (dedupe && t->part && !t->mark_won) {
		char w[400];
		snprintf(w, sizeof(w), "%s/%" PRId32 "/%" PRId64,
			 t->part->topic, t->part->partition, t->offset);
		t->mark_won = strdup(w);
		if (t->mark_won && admit_key(pl, t))
			return;
		free(t->mark_won);
		t->mark_won = NULL;
	}
	pl_publish_task(pl, t);
}

/* Queue t behind its order's key (the record's, for a rejection), or
 * make it ready when the order is idle. False when out of memory. */
static bool admit_key(pb_pipeline_t *pl, task_t *t)
{
	bool go = false;
	if (pb_orderq_admit(pl->orders, pl_task_mark_account(t),
			    pl_task_mark_won(t), &t->order, &go))
		return false;
	if (go)
		pl_list_push(&pl->ready, t);
	return true;
}

static void admit(pb_pipeline_t *pl, task_t *t)
{
	if (admit_key(pl, t))
		return;
	t->rej.reason = "internal";
	pb_strlcpy(t->rej.message, "out of memory", sizeof(t->rej.message));
	reject_parse(pl, t, false);
}

/* Read a consumed record into t: a NULL value and a value larger than any
 * event may be are rejected here (empty_record, too_large), the rest is
 * parsed. PB_OK when t holds an event or relayed item. */
static pb_err_t parse_record(task_t *t)
{
	if (!t->value) {
		t->rej.reason = "empty_record";
		pb_strlcpy(t->rej.message,
			   "the record has a NULL value (a tombstone), not an "
			   "event: send the event as a JSON object",
			   sizeof(t->rej.message));
		return PB_ERR_INVALID;
	}
	if (pb_rejection_too_large(t->value_size, &t->rej))
		return PB_ERR_INVALID;
	/* Schema Registry's wire format: the JSON after the schema id */
	const char *json = t->value;
	size_t json_len = t->value_len;
	uint32_t sid;
	if (pb_sr_framed(json, json_len, &sid)) {
		t->schema_id = sid;
		json += PB_SR_PREFIX_LEN;
		json_len -= PB_SR_PREFIX_LEN;
	}
	return t->src == SRC_ORDERS
		   ? pb_event_parse(json, json_len, &t->ev, &t->rej)
		   : pb_inbound_parse(json, json_len, &t->in, &t->rej);
}

/* A consumed message that carries an error instead of a record. */
static void consume_error(pb_pipeline_t *pl, part_t *p,
			  const rd_kafka_message_t *m)
{
	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		if (p)
			p->eof = true;
		return;
	}
	pb_log(PB_LOG_WARN, "consumer error", "topic",
	       rd_kafka_topic_name(m->rkt), "error", rd_kafka_message_errstr(m),
	       NULL);
	atomic_store(&pl->ready_kafka, 0);
}

/* A task holding a copy of m's key and value (of a value too large to
 * read, what its DLQ copy can carry) and its headers; NULL when out of
 * memory. */
static task_t *task_of_message(pb_pipeline_t *pl, part_t *p,
			       rd_kafka_message_t *m)
{
	size_t keep = m->len;
	if (keep > RECORD_INPUT_MAX && keep > pl->record_max)
		keep = pl->record_max;
	task_t *t = pl_task_new(pl);
	char *bytes = malloc(m->key_len + keep + 1);
	if (!t || !bytes) {
		free(t);
		free(bytes);
		return NULL;
	}
	if (m->key_len)
		memcpy(bytes, m->key, m->key_len);
	if (keep && m->payload)
		memcpy(bytes + m->key_len, m->payload, keep);
	bytes[m->key_len + keep] = '\0';
	t->bytes = bytes;
	t->key = m->key ? bytes : NULL;
	t->key_len = m->key ? m->key_len : 0;
	t->value = m->payload ? bytes + m->key_len : NULL;
	t->value_len = m->payload ? keep : 0;
	t->value_size = m->payload ? m->len : 0;
	t->part = p;
	t->src = p->src;
	t->offset = m->offset;
	t->schema_id = -1; /* plain JSON until parse_record sees framing */
	t->headers = pb_headers_take_of_message(m);
	pb_headers_traceparent(t->headers, t->traceparent,
			       sizeof(t->traceparent));
	return t;
}

/* An event's account is looked up once, here: the stages, the decision
 * and the outcome's count use t->acct (NULL: not configured). */
static void count_consumed(pb_pipeline_t *pl, task_t *t)
{
	const char *acct = t->ev   ? t->ev->account
			   : t->in ? t->in->account
				   : NULL;
	const pb_account_t *a = acct ? pb_config_account(pl->cfg, acct) : NULL;
	if (t->ev)
		t->acct = a;
	/* only configured accounts become label values (bounded) */
	pl_count_consumed(pl, t->src, a);
}

/* No memory to track or hold a record: the worker stops, and takes no
 * record after it, so that no commit passes its offset (the next owner
 * redoes it); neither a partition waiting forever on an event that is not
 * held, nor a commit past one that was never tracked. */
static void out_of_memory(pb_pipeline_t *pl, const rd_kafka_message_t *m)
{
	if (pl->fatal)
		return;
	pl->fatal = true;
	snprintf(pl->fatal_msg, sizeof(pl->fatal_msg),
		 "out of memory holding the record at partition %" PRId32
		 " offset %" PRId64 ": lower worker.maxPending or raise the "
		 "memory limit; the record is redone after the restart",
		 m->partition, m->offset);
}

void pl_consume_one(pb_pipeline_t *pl, rd_kafka_message_t *m)
{
	part_t *p = pl_part_find(pl, rd_kafka_topic_name(m->rkt), m->partition);
	if (m->err) {
		consume_error(pl, p, m);
		rd_kafka_message_destroy(m);
		return;
	}
	atomic_store(&pl->ready_kafka, 1);
	/* fetched before its partition was revoked: the next owner gets it;
	 * or already seen (a re-fetch) */
	task_t *t = NULL;
	if (p && p->assigned && !p->revoking && !pl->fatal) {
		p->eof = false;
		pb_err_t terr = pb_track_add(p->track, m->offset);
		if (terr == PB_OK)
			t = task_of_message(pl, p, m);
		if (terr == PB_ERR_NOMEM || (terr == PB_OK && !t))
			out_of_memory(pl, m);
	}
	if (!t) {
		rd_kafka_message_destroy(m);
		return;
	}
	pl->avg_record += ((double)(m->key_len + m->len) - pl->avg_record) / 64;
	p->held++;
	pl->alive++;
	pb_err_t err = parse_record(t);
	rd_kafka_message_destroy(m);
	count_consumed(pl, t);
	if (!err && t->in && !t->in->key2) {
		size_t n = strlen(t->in->key1) + 8;
		t->won_k1 = malloc(n);
		if (t->won_k1)
			snprintf(t->won_k1, n, "#key1:%s", t->in->key1);
		else
			err = PB_ERR_NOMEM;
	}
	if (err) {
		reject_parse(pl, t, true);
		return;
	}
	admit(pl, t);
}

void pl_set_paused(pb_pipeline_t *pl, bool pause)
{
	if (pl->paused_all == pause)
		return;
	rd_kafka_topic_partition_list_t *a = NULL;
	if (rd_kafka_assignment(pl->consumer, &a) || !a)
		return;
	if (pause)
		rd_kafka_pause_partitions(pl->consumer, a);
	else
		rd_kafka_resume_partitions(pl->consumer, a);
	rd_kafka_topic_partition_list_destroy(a);
	pl->paused_all = pause;
	pb_metrics_set(pl->m, PB_M_PAUSED, "", pause);
}

/*
 * Wake librdkafka's fetcher once the consumer queue, having gone over the
 * prefetch limits (so librdkafka stopped fetching), has drained to half of
 * them: otherwise the next fetch waits for the broker thread's own wake-up,
 * up to a second, and the loop runs dry (fetchwake.h). The queue's size in
 * bytes is estimated from the records consumed so far.
 */
void pl_wake_fetcher(pb_pipeline_t *pl)
{
	if (!pl->wake || pl->paused_all)
		return;
	double n = (double)rd_kafka_queue_length(pl->cq);
	double bytes = n * pl->avg_record;
	if (bytes >= pl->prefetch_max_bytes || n >= pl->prefetch_max_msgs) {
		pl->wake_armed = true;
		return;
	}
	if (!pl->wake_armed || bytes > pl->prefetch_max_bytes / 2 ||
	    n > pl->prefetch_max_msgs / 2)
		return;
	pl->wake_armed = false;
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(8);
	for (part_t *p = pl->parts; p; p = p->next)
		if (p->assigned && !p->paused)
			rd_kafka_topic_partition_list_add(l, p->topic,
							  p->partition);
	pb_fetchwake_request(pl->wake, l);
	rd_kafka_topic_partition_list_destroy(l);
}
