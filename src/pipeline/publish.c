/*
 * publish.c: producing outcome and DLQ records, and their delivery
 * reports.
 *
 * Each record is accounted on its own (to_produce, acks_pending), so a
 * record is produced again only when its own delivery failed, and its
 * task is finished once every report is in. Failures follow their class
 * (produce.h): a full queue pauses publishing briefly, a retriable error
 * backs the task off, a permanent one makes the record smaller and, past
 * its minimal form, drops it (logged); a fatal one stops the worker.
 *
 * Must never: retry a record without a pause, or keep a partition waiting
 * on a record the topic refuses.
 */
#include "pipeline_internal.h"

static void count_outcome(pb_pipeline_t *pl, task_t *t)
{
	char lbl[512];
	const char *name = pl_task_account(t);
	/* only configured accounts become label values (bounded cardinality) */
	const pb_account_t *a = t->ev  ? t->acct
				: name ? pb_config_account(pl->cfg, name)
				       : NULL;
	const char *acct = a ? name : "unknown";
	pl_count_outcome(pl, t->src, a, t->outcome, t->reason);
	if (t->in && t->outcome == PB_OUTCOME_DISCARDED) {
		pb_metrics_labels(lbl, sizeof(lbl), "account", acct, "reason",
				  pb_reason_name(t->reason), NULL);
		pb_metrics_add(pl->m, PB_M_INBOUND_DISCARDED, lbl, 1);
	}
	if (t->to_dlq) {
		pb_metrics_labels(lbl, sizeof(lbl), "source",
				  pl_src_names[t->src], "reason",
				  pb_reason_name(t->reason), NULL);
		pb_metrics_add(pl->m, PB_M_DLQ_RECORDS, lbl, 1);
	}
}

/* The response body as the record carries it: parsed when it is JSON,
 * else the text as a string; cached for the next event of the batch. */
static const char *body_text(pb_pipeline_t *pl, const char *body_start)
{
	if (pl->pub.body_out && strcmp(pl->pub.body_src, body_start) == 0)
		return pl->pub.body_out;
	json_t *body = json_loads(body_start, 0, NULL);
	if (!body)
		body = json_string(body_start);
	char *out = body ? pb_jt_dumps(body, false) : NULL;
	json_decref(body);
	free(pl->pub.body_out);
	pl->pub.body_out = out ? out : strdup("null");
	pb_strlcpy(pl->pub.body_src, body_start, sizeof(pl->pub.body_src));
	return pl->pub.body_out ? pl->pub.body_out : "null";
}

/* t's outcome record as record.h builds it; ts holds processedAt */
static void outcome_record_of(pb_pipeline_t *pl, const task_t *t,
			      pl_record_t *r, const char *ts)
{
	bool pushed = t->dec_set && t->dec.verdict == PB_VERDICT_PUSH &&
		      t->job.attempts > 0;
	*r = (pl_record_t){
	    .event_id = pl_task_event_id(t),
	    .source = pl_src_names[t->src],
	    .account = pl_task_account(t),
	    .work_order_number = pl_task_won(t),
	    .outcome = t->outcome,
	    .reason = t->reason,
	    .message = t->message,
	    .warnings = t->dec_set ? t->dec.warnings : NULL,
	    .withheld = t->dec_set ? t->dec.withheld : NULL,
	    .pushed = pushed,
	    .partition = t->part ? t->part->partition : -1,
	    .offset = t->offset,
	    .processed_at = ts,
	    .recovered = t->recovered,
	    .schema_id = t->schema_id,
	    .headers = t->headers,
	};
	if (pushed) {
		r->request = t->dec.work_order;
		r->request_text = t->work_order_text;
		r->http_status = t->job.http_status;
		r->body_json = t->job.body_start[0]
				   ? body_text(pl, t->job.body_start)
				   : NULL;
		r->batch_size = t->job.batch_size;
		r->attempts = t->job.attempts;
	}
	if (t->in && t->outcome == PB_OUTCOME_RELAYED) {
		r->has_item = true;
		r->kind = t->in->kind;
		r->item = t->in->item;
	}
}

/* Produce t's outcome record (one function, so that whatever goes onto the
 * record, e.g. headers, is counted against its size bound here). */
static rd_kafka_resp_err_t produce_outcome(pb_pipeline_t *pl, task_t *t)
{
	bool minimal = t->form[REC_OUTCOME] >= FORM_MINIMAL;
	size_t hsz =
	    pl_record_headers_size(t->headers, minimal, pl->record_max);
	rd_kafka_headers_t *h = hsz ? pb_headers_copy_new(t->headers) : NULL;
	size_t used = t->key_len + hsz;
	size_t budget = pl->record_max > used ? pl->record_max - used : 0;
	char ts[40];
	pb_now_rfc3339(ts, sizeof(ts));
	pl_record_t r;
	outcome_record_of(pl, t, &r, ts);
	size_t val_len = 0;
	char *val = pl_record_text_within_len(
	    &r, minimal ? PL_RECORD_MINIMAL : PL_RECORD_WHOLE, budget,
	    &val_len);
	if (!val) {
		if (h)
			rd_kafka_headers_destroy(h);
		return RD_KAFKA_RESP_ERR__NOENT;
	}
	/* the results topic's handle, made once: by name, every record
	 * looked the topic up under the client's lock */
	if (!pl->results_rkt)
		pl->results_rkt = rd_kafka_topic_new(
		    pl->producer, pl->cfg->topic_results, NULL);
	if (!pl->results_rkt) {
		free(val);
		if (h)
			rd_kafka_headers_destroy(h);
		return RD_KAFKA_RESP_ERR__NOENT;
	}
	rd_kafka_resp_err_t err = rd_kafka_producev(
	    pl->producer, RD_KAFKA_V_RKT(pl->results_rkt),
	    RD_KAFKA_V_KEY(t->key, t->key_len), RD_KAFKA_V_VALUE(val, val_len),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_HEADERS(h),
	    RD_KAFKA_V_OPAQUE(&t->recs[REC_OUTCOME]), RD_KAFKA_V_END);
	if (err) {
		free(val);
		if (h)
			rd_kafka_headers_destroy(h);
	}
	return err;
}

/* Produce t's DLQ copy: the input unchanged (a NULL value stays NULL), or
 * its first bytes with x-truncated = the original size when the whole
 * would not fit the record bound (1 KiB of it in the minimal form). */
static rd_kafka_resp_err_t produce_dlq(pb_pipeline_t *pl, task_t *t)
{
	size_t used = t->key_len;
	pl_dlq_t d = {
	    .headers = t->headers,
	    .reason = t->reason,
	    .message = t->message,
	    .topic = t->part->topic,
	    .partition = t->part->partition,
	    .offset = t->offset,
	    .attempts = t->job.attempts,
	    .minimal = t->form[REC_DLQ] >= FORM_MINIMAL,
	    .http_status = t->job.http_status,
	    .body = t->job.body_start,
	    .request_text = t->work_order_text,
	    .record_max = pl->record_max,
	};
	rd_kafka_headers_t *h = pl_record_dlq_headers_new(&d, &used);
	size_t room =
	    pl->record_max > used + 64 ? pl->record_max - used - 64 : 0;
	if (t->form[REC_DLQ] >= FORM_MINIMAL && room > 1024)
		room = 1024;
	size_t n = t->value_len;
	if (n > room)
		n = room;
	if (t->value && (n < t->value_size)) {
		char sz[32];
		snprintf(sz, sizeof(sz), "%zu", t->value_size);
		pl_record_header_add(h, "x-truncated", sz, &used);
	}
	rd_kafka_resp_err_t err = rd_kafka_producev(
	    pl->producer, RD_KAFKA_V_TOPIC(pl->cfg->topic_dlq),
	    RD_KAFKA_V_KEY(t->key, t->key_len),
	    RD_KAFKA_V_VALUE(t->value, t->value ? n : 0),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
	    RD_KAFKA_V_OPAQUE(&t->recs[REC_DLQ]), RD_KAFKA_V_END);
	if (err)
		rd_kafka_headers_destroy(h);
	return err;
}

/* ---- publishing -------------------------------------------------------------
 *
 * A task to publish writes its outcome record and, for rejected-as-input
 * and failed events, its DLQ copy. Each record is accounted on its own
 * (to_produce: not produced yet; acks_pending: produced, its delivery
 * report not in), so a record is produced again only when its own delivery
 * failed, and the task is finished once both bits are clear and every
 * report is in. Failures follow their class (produce.h): a full queue
 * pauses publishing briefly, a retriable error backs the task off, a
 * permanent one makes the record smaller and, past its minimal form,
 * drops it; a fatal one stops the worker. So no record keeps a partition
 * waiting and no failure is retried without a pause.
 */

static const char *rec_topic(const pb_pipeline_t *pl, int rec)
{
	return rec == REC_DLQ ? pl->cfg->topic_dlq : pl->cfg->topic_results;
}

void pl_publish_task(pb_pipeline_t *pl, task_t *t)
{
	if (t->publishing)
		return;
	t->publishing = true;
	pl_list_push(&pl->to_publish, t);
	if (t->retry_at < pl->pub.publish_next_at)
		pl->pub.publish_next_at = t->retry_at;
}

void pl_producer_fatal(pb_pipeline_t *pl, rd_kafka_t *rk)
{
	if (pl->fatal)
		return;
	char why[400] = "";
	rd_kafka_resp_err_t e = rd_kafka_fatal_error(rk, why, sizeof(why));
	pl->fatal = true;
	snprintf(pl->fatal_msg, sizeof(pl->fatal_msg),
		 "Kafka client fatal error: %s (%s): the client cannot "
		 "continue; check the broker's log and the idempotence "
		 "settings, then start the worker again (events without an "
		 "acknowledged outcome are redone)",
		 why[0] ? why : "unknown", rd_kafka_err2name(e));
}

/* One log line about a record of t that Kafka did not take: what
 * happens next (msg), the topic, the source offset, librdkafka's error,
 * the event and its traceparent. */
static void log_produce(pb_log_level_t level, const char *msg, const task_t *t,
			const char *topic, const char *off,
			rd_kafka_resp_err_t err)
{
	pb_log(level, msg, "topic", topic, "source_offset", off, "error",
	       rd_kafka_err2str(err), "eventId", pl_task_event_id(t),
	       TRACEPARENT_KV(t), NULL);
}

/* Record rec of t met err (class c, not full and not fatal): set it up to
 * be produced again, after a backoff or in a smaller form; or give it up. */
static void produce_failed(pb_pipeline_t *pl, task_t *t, int rec,
			   rd_kafka_resp_err_t err, pb_produce_class_t c)
{
	const char *topic = rec_topic(pl, rec);
	char off[32];
	snprintf(off, sizeof(off), "%" PRId64, t->offset);
	if (c == PB_PRODUCE_RETRIABLE) {
		int ms = pb_produce_backoff_ms(t->produce_tries++);
		t->retry_at = pb_mono_ms() + ms;
		t->to_produce |= 1u << rec;
		atomic_store(&pl->ready_kafka, 0);
		log_produce(PB_LOG_ERROR,
			    "cannot write a record to Kafka; trying "
			    "again after a backoff (check that the brokers are "
			    "reachable)",
			    t, topic, off, err);
		return;
	}
	t->form[rec]++;
	if (t->form[rec] < FORM_NONE) {
		t->to_produce |= 1u << rec;
		log_produce(PB_LOG_WARN,
			    "the topic refused a record; writing a "
			    "minimal form of it instead (check the topic's "
			    "max.message.bytes and ACLs)",
			    t, topic, off, err);
		return;
	}
	t->to_produce &= ~(1u << rec);
	log_produce(
	    PB_LOG_ERROR,
	    "the topic refused even the minimal form of a "
	    "record; it is dropped so that its partition goes on (create "
	    "the topic, grant the worker write access to it, or raise its "
	    "max.message.bytes)",
	    t, topic, off, err);
}

/* Produce what t still has to produce. False when the producer's queue is
 * full (publishing pauses). */
static bool produce_task(pb_pipeline_t *pl, task_t *t)
{
	for (int rec = REC_OUTCOME; rec <= REC_DLQ; rec++) {
		while (t->to_produce & (1u << rec)) {
			rd_kafka_resp_err_t e = rec == REC_OUTCOME
						    ? produce_outcome(pl, t)
						    : produce_dlq(pl, t);
			pb_produce_class_t c = pb_produce_classify(e);
			if (c == PB_PRODUCE_OK) {
				t->to_produce &= ~(1u << rec);
				t->acks_pending++;
				break;
			}
			if (c == PB_PRODUCE_FULL)
				return false;
			if (c == PB_PRODUCE_FATAL) {
				pl_producer_fatal(pl, pl->producer);
				return true;
			}
			t->to_produce &= ~(1u << rec);
			produce_failed(pl, t, rec, e, c);
			if (t->retry_at > pb_mono_ms())
				return true; /* backing off */
		}
	}
	return true;
}

/* After a record of topic rec failed in a way a retry might heal (above
 * all message.timeout.ms): whether the topic itself refuses us (unknown,
 * not authorised), which librdkafka reports only as a timeout, so that the
 * record is not retried forever. Asked at most every 5 s per topic. */
static rd_kafka_resp_err_t topic_refusal(pb_pipeline_t *pl, int rec)
{
	int64_t now = pb_mono_ms();
	if (pl->pub.refusal_at[rec] && now - pl->pub.refusal_at[rec] < 5000)
		return pl->pub.refusal[rec];
	pl->pub.refusal_at[rec] = now;
	pl->pub.refusal[rec] = RD_KAFKA_RESP_ERR_NO_ERROR;
	rd_kafka_topic_t *rkt =
	    rd_kafka_topic_new(pl->producer, rec_topic(pl, rec), NULL);
	if (!rkt)
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	const struct rd_kafka_metadata *md = NULL;
	if (rd_kafka_metadata(pl->producer, 0, rkt, &md, 1000) ==
		RD_KAFKA_RESP_ERR_NO_ERROR &&
	    md->topic_cnt == 1 &&
	    pb_produce_classify(md->topics[0].err) == PB_PRODUCE_PERMANENT)
		pl->pub.refusal[rec] = md->topics[0].err;
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return pl->pub.refusal[rec];
}

/* @locality: inside rd_kafka_poll(producer) on the pipeline thread. */
void pl_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	pb_pipeline_t *pl = opaque;
	task_rec_t *r = m->_private;
	if (!r)
		return;
	task_t *t = r->t;
	t->acks_pending--;
	if (pl->discarding) /* purged at the end: never produced again */
		t->abandoned = true;
	if (!m->err) {
		atomic_store(&pl->ready_kafka, 1);
	} else if (!t->abandoned) {
		/* librdkafka gave up on it (message.timeout.ms, or the
		 * broker refused it): the offset stays uncommitted until
		 * the record gets through or is given up */
		rd_kafka_resp_err_t err = m->err;
		pb_produce_class_t c = pb_produce_classify(err);
		if (c == PB_PRODUCE_RETRIABLE && topic_refusal(pl, r->rec)) {
			err = topic_refusal(pl, r->rec);
			c = PB_PRODUCE_PERMANENT;
		}
		if (c == PB_PRODUCE_FATAL)
			pl_producer_fatal(pl, rk);
		else if (c == PB_PRODUCE_FULL)
			t->to_produce |= 1u << r->rec;
		else
			produce_failed(pl, t, r->rec, err, c);
		if (t->to_produce)
			pl_publish_task(pl, t);
	}
	if (t->acks_pending == 0 && !t->to_produce && !t->publishing)
		pl_task_finish(pl, t);
}

/* One line per event: a warning when it failed, else at debug level;
 * with the event's traceparent so a trace finds its lines. */
static void log_event(const task_t *t)
{
	bool failed = t->outcome == PB_OUTCOME_FAILED;
	pb_log_level_t lvl = failed ? PB_LOG_WARN : PB_LOG_DEBUG;
	if (lvl < pb_log_get_level())
		return;
	pb_log(lvl, failed ? "event failed" : "event processed", "eventId",
	       pl_task_event_id(t), "account", pl_task_account(t), "outcome",
	       pb_outcome_name(t->outcome), "reason",
	       pl_reason_name_or_null(t->reason), TRACEPARENT_KV(t), NULL);
}

void pl_publish_stage(pb_pipeline_t *pl)
{
	int64_t now = pb_mono_ms();
	if (now < pl->pub.publish_hold_until || pl->fatal)
		return;
	pl->pub.publish_next_at = INT64_MAX;
	task_t *prev = NULL, *t = pl->to_publish.head;
	while (t) {
		task_t *nx = t->next;
		if (t->abandoned || (t->pub_started && t->retry_at > now)) {
			if (t->abandoned) {
				pl_list_unlink(&pl->to_publish, prev, t);
				t->publishing = false;
				t->to_produce = 0;
				if (t->acks_pending == 0)
					pl_task_free(pl, t);
				/* else freed by its last delivery report */
			} else {
				if (t->retry_at < pl->pub.publish_next_at)
					pl->pub.publish_next_at = t->retry_at;
				prev = t;
			}
			t = nx;
			continue;
		}
		if (!t->pub_started) {
			t->pub_started = true;
			t->recs[REC_OUTCOME] = (task_rec_t){t, REC_OUTCOME};
			t->recs[REC_DLQ] = (task_rec_t){t, REC_DLQ};
			t->to_produce = 1u << REC_OUTCOME;
			t->to_dlq =
			    !t->recovered &&
			    pl_dlq_wanted(t->src, t->outcome, t->reason);
			if (t->to_dlq)
				t->to_produce |= 1u << REC_DLQ;
			count_outcome(pl, t);
			log_event(t);
		}
		if (!produce_task(pl, t)) {
			/* the queue drains as delivery reports come in */
			pl->pub.publish_hold_until = now + 10;
			pl->pub.publish_next_at = now + 10;
			return;
		}
		if (t->to_produce) {
			/* backing off (or the producer failed fatally: the
			 * task stays listed for pb_pipeline_destroy) */
			if (t->retry_at < pl->pub.publish_next_at)
				pl->pub.publish_next_at = t->retry_at;
			prev = t;
			t = nx;
			continue;
		}
		pl_list_unlink(&pl->to_publish, prev, t);
		t->publishing = false;
		if (t->acks_pending == 0 && !t->to_produce)
			pl_task_finish(pl, t); /* every record given up */
		t = nx;
	}
}

/* Milliseconds until pl_publish_stage has work (0: now; -1: none). */
int pl_publish_wait_ms(const pb_pipeline_t *pl)
{
	if (!pl->to_publish.n || pl->fatal)
		return -1;
	int64_t at = pl->pub.publish_next_at > pl->pub.publish_hold_until
			 ? pl->pub.publish_next_at
			 : pl->pub.publish_hold_until;
	int64_t d = at - pb_mono_ms();
	return d <= 0 ? 0 : d > 10000 ? 10000 : (int)d;
}
