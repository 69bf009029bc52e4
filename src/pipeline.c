/*
 * pipeline.c: the worker loop (see pipeline.h for the guarantees).
 *
 * An event is a task that moves through these stages, each a list drained
 * once per loop turn so that Redis and Kafka see batches, not single calls:
 *
 *   consumed -> parsed --(order busy)--> waits behind its order's key
 *                  |                         |
 *                  v                         v (previous one recorded)
 *               ready  --fetch state (a Redis stage)-->
 *               decide --push--> pusher (batched, retried) --+
 *                  |                                          |
 *                  +-------------> to_record <----------------+
 *               record effects (a Redis stage) -> release the order's key
 *               -> to_publish -> produce outcome (+DLQ) -> acked
 *               -> offset done in the partition tracker -> offsets_store
 *               -> "published" mark (a Redis stage)
 *
 * A Redis stage is one pipelined write carrying records, published marks
 * and fetches for many tasks; up to MAX_FLIGHTS are in flight, each
 * applied when its replies are in (redis_stage). librdkafka's prefetch is
 * refilled as it drains (wake_fetcher, fetchwake.h).
 *
 * Failure handling: Redis errors leave tasks where they are (nothing is
 * pushed without state, nothing is published before its effect is
 * recorded) and pause consumption until Redis answers again. Kafka
 * produce and delivery errors are handled per record by their class
 * (produce.h, publish_stage): pause, back off, shrink or give up, or stop
 * on a fatal one; never a retry without a pause. Records rejected as they
 * are read are marked by topic/partition/offset (task_mark_won) so that a
 * replay reports them duplicate. Events of revoked partitions are drained
 * within the grace budget, then abandoned (the next owner redoes them; the
 * marks in Redis stop a double push).
 *
 * Must never: commit an offset before its outcome is acknowledged, let a
 * later event of an order overtake an earlier one, log a PushKey.
 */
#include "pipeline.h"
#include "kafka_conf.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fetchwake.h"
#include "framing.h"
#include "headers.h"
#include "jtext.h"
#include "kstats.h"
#include "orderq.h"
#include "log.h"
#include "produce.h"
#include "pusher.h"
#include "rules.h"
#include "state.h"
#include "tracker.h"
#include "util.h"

#define CONSUME_BATCH 500
#define FULL_PAUSE_MS 10000
#define FETCH_BATCH 512
#define RECORD_BATCH 512
/* stages written to Redis and not applied yet (see redis_stage) */
#define MAX_FLIGHTS	 3
#define PUBLISH_MARK_MAX 200000
/* The largest record value read as an event (the event parser's own limit,
 * 1 MiB); a larger one is rejected too_large, and only as much of it as a
 * DLQ copy can carry is kept. */
#define RECORD_INPUT_MAX (1024 * 1024)

enum { SRC_ORDERS = 0, SRC_INBOUND = 1 };
static const char *src_names[] = {"orders", "inbound"};

typedef struct part part_t;
typedef struct task task_t;

/* The two records a task may write, each its own delivery report: the
 * message opaque points at one of these (on_delivery). */
enum { REC_OUTCOME = 0, REC_DLQ = 1 };
/* How much of a record is kept after the topic refused it permanently
 * (produce.h): all of it (cut to the size bound), a minimal form, none. */
enum { FORM_FULL = 0, FORM_MINIMAL = 1, FORM_NONE = 2 };
typedef struct {
	task_t *t;
	int rec; /* REC_OUTCOME or REC_DLQ */
} task_rec_t;

struct task {
	/* first: the order's queues hand back links, which are tasks */
	pb_orderq_link_t order;
	struct task *next; /* stage list */
	/* The record's key and value, copied: a held rd_kafka_message_t pins
	 * the whole (decompressed) fetch buffer it points into, so a few slow
	 * events kept megabytes resident. One allocation, value after key;
	 * key NULL when the record had none. */
	char *bytes;
	char *key, *value; /* value NULL: a NULL value (a tombstone) */
	size_t key_len, value_len;
	/* the value's size as consumed; larger than value_len when only its
	 * first bytes were kept (a record too large to read) */
	size_t value_size;
	/* a parse rejection: its mark's identity in Redis (task_mark_*), so
	 * that a replay of the offset is a duplicate; owned */
	char *mark_won;
	int src;
	part_t *part;
	int64_t offset;
	int64_t consumed_ms;
	/* the input's headers (owned, NULL when none): copied onto the
	 * outcome and DLQ records (headers.h); its W3C traceparent, "" when
	 * none, for the log lines about this event */
	rd_kafka_headers_t *headers;
	char traceparent[PB_TRACEPARENT_LEN + 1];
	/* Schema Registry framing (framing.h): the schema id, -1 when the
	 * record was plain JSON */
	int64_t schema_id;

	pb_event_t *ev;
	pb_inbound_t *in;
	pb_rejection_t rej;
	const pb_account_t *acct;

	pb_state_view_t view;
	bool view_set;
	pb_decision_t dec;
	bool dec_set;
	pb_push_job_t job;
	/* dec.work_order's JSON text: written once for the request body and
	 * the outcome record's "request" */
	char *work_order_text;

	/* what to record and publish */
	const char *outcome;
	const char *reason;
	char message[600];
	bool record;   /* write the mark (+ order) to Redis */
	bool write_order;
	bool set_created, set_deleted;
	const char *learn_key1;
	const char *deleted_key1;
	char *won_k1; /* owned: the state's order name of an item with only
			 a key1 (task_state_won) */
	bool to_dlq;
	bool recovered; /* outcome taken from a mark left by a crash */
	/* publishing (publish_stage, on_delivery): the records still to
	 * produce (1 << REC_*), those produced and not yet reported, the form
	 * each is written in, and when a retriable failure may try again */
	unsigned to_produce;
	int acks_pending;
	int form[2];
	int produce_tries;
	int64_t retry_at;
	bool publishing; /* listed in to_publish */
	bool pub_started;
	task_rec_t recs[2];
	bool needs_publish_mark;
	bool abandoned;
	uint64_t linger_seq; /* acknowledged: freed once this stage applied */
};

struct part {
	char *topic;
	int src;
	int32_t partition;
	pb_partition_track_t *track;
	int64_t held; /* tasks of this partition alive */
	/* next offset to commit, stored with librdkafka since the partition
	 * was assigned; -1: none */
	int64_t stored;
	/* a stored offset the group did not take at revoke (commit refused,
	 * assignment lost): every event below it has its outcome, so it is
	 * where this worker resumes if the partition comes back; -1: none */
	int64_t carry;
	bool eof;
	bool assigned;
	bool paused;
	part_t *next;
};

typedef struct {
	task_t *head, *tail;
	size_t n;
} tlist_t;

typedef struct {
	pb_state_ref_t ref;
	char *account, *won, *event_id, *reason;
} pubmark_t;

/* One write to Redis whose replies the loop has not applied yet (see
 * redis_stage). Stages take their tasks from the heads of the lists in the
 * order they are written: a stage's nrec records follow those of the
 * stages in flight before it in to_record, and likewise its nmark pending
 * marks and its nfetch fetches in ready. */
typedef struct {
	uint64_t seq;
	size_t nrec, nmark, nfetch;
	pb_state_view_t *views;
	pb_state_call_t crec, cmark, cfetch;
	int64_t spent_ms; /* the loop's time writing it */
} stage_t;

struct pb_pipeline {
	const pb_config_t *cfg;
	pb_metrics_t *m;
	pb_pipeline_opts_t opts;
	rd_kafka_t *consumer;
	rd_kafka_t *producer;
	rd_kafka_queue_t *cq;
	int cq_fds[2];
	int pq_fds[2];
	pb_state_t *state;
	pb_pusher_t *pusher;

	part_t *parts;
	pb_orderq_t *orders; /* per-order queues (orderq.h) */

	tlist_t ready, to_record, to_publish;
	/* publish_stage's pace: nothing before publish_hold_until (the
	 * producer's queue was full), the earliest retry due at
	 * publish_next_at */
	int64_t publish_hold_until, publish_next_at;
	/* the largest record (key + value + headers) the producer takes
	 * (its message.max.bytes less framing, produce.h) */
	size_t record_max;
	/* per outcome topic (REC_*): a permanent error its metadata showed
	 * after a record timed out, and when it was asked (topic_refusal) */
	rd_kafka_resp_err_t refusal[2];
	int64_t refusal_at[2];
	/* the producer or consumer hit a fatal error: stop, exit 1 */
	bool fatal;
	char fatal_msg[1024];
	stage_t flights[MAX_FLIGHTS]; /* written, oldest first */
	size_t nflights;
	uint64_t stage_seq;   /* stages written */
	uint64_t applied_seq; /* stages applied (or given up) */
	/* acknowledged tasks kept listed with their order while a stage
	 * written before their "published" mark is in flight (task_finish) */
	tlist_t lingering;
	size_t alive; /* tasks consumed and not finished */
	size_t in_revoke;
	bool stopping;	  /* the shutdown grace period is spent */
	uint64_t assigns; /* assignments received */

	pubmark_t *pubmarks;
	size_t pubmarks_len, pubmarks_cap;

	int *auto_admin; /* per account: -1 configured, 0, 1 */
	int64_t auto_admin_at;
	/* per account: the PushKey learned from validate as last read from
	 * Redis (owned, SECRET), refreshed with the Auto-Admin switches */
	char **push_keys;
	_Atomic int keys_missing;      /* learned accounts still without one */
	_Atomic int key_missing_first; /* the first of them (account index) */

	bool redis_up;
	int64_t redis_retry_at;
	int redis_backoff_ms;
	bool paused_all;
	bool assigned_once;
	/* the fetch waker (wake_fetcher): librdkafka's prefetch limits, the
	 * average record size seen, and whether the queue went over them */
	pb_fetchwake_t *wake;
	double prefetch_max_bytes, prefetch_max_msgs, avg_record;
	bool wake_armed;
	int64_t lag_at;
	int64_t full_since; /* when alive reached maxPending; 0: not full */
	/* the last push response body and its JSON text in outcome records:
	 * every event of a batch carries the same body */
	char body_src[sizeof(((pb_push_job_t *)0)->body_start)];
	char *body_out;
	int ready_metric; /* last value of PB_M_READY; -1 unset */
	int64_t redis_ok_at; /* last successful Redis round trip */

	char worker_id[64];

	/* probes, read by the ops thread */
	_Atomic int64_t heartbeat_ms;
	_Atomic int ready_redis;
	_Atomic int ready_kafka;
	_Atomic int ready_circuits;
	_Atomic int ready_assigned;
};

/* ---- small lists -------------------------------------------------------- */

static void tl_push(tlist_t *l, task_t *t)
{
	t->next = NULL;
	if (l->tail)
		l->tail->next = t;
	else
		l->head = t;
	l->tail = t;
	l->n++;
}

static task_t *tl_pop(tlist_t *l)
{
	task_t *t = l->head;
	if (!t)
		return NULL;
	l->head = t->next;
	if (!l->head)
		l->tail = NULL;
	l->n--;
	t->next = NULL;
	return t;
}

/* ---- order queues ---------------------------------------------------------- */

static task_t *task_of(pb_orderq_link_t *l)
{
	return (task_t *)l; /* the link is a task's first member */
}

static void task_free(pb_pipeline_t *pl, task_t *t);

/* The order's previous event is recorded: let the next one go. A task
 * whose effect is recorded stays listed with its order until its outcome is
 * acknowledged (orderq.h: publishing), so that a second copy of the same
 * event arriving meanwhile is recognised as a duplicate and not as a crash
 * to recover from. */
static void key_release(pb_pipeline_t *pl, task_t *t)
{
	bool publishing = t->needs_publish_mark && !t->abandoned;
	pb_orderq_link_t *nx = pb_orderq_release(pl->orders, &t->order,
						 publishing);
	while (nx) {
		task_t *n = task_of(nx);
		if (!n->abandoned) {
			tl_push(&pl->ready, n);
			return;
		}
		/* its partition was revoked or lost while it waited: the
		 * next owner redoes it; pushing it here could race that owner
		 * into a second push */
		nx = pb_orderq_release(pl->orders, &n->order, false);
		task_free(pl, n);
	}
}

static const char *task_mark_id(const task_t *t);

/* Another copy of t's event, recorded by this worker, still publishing. */
static const task_t *key_twin(const task_t *t)
{
	const char *id = task_mark_id(t);
	for (pb_orderq_link_t *l = pb_orderq_publishing(&t->order); l;
	     l = l->next_pub) {
		const task_t *x = task_of(l);
		if (!x->abandoned && x != t && strcmp(task_mark_id(x), id) == 0)
			return x;
	}
	return NULL;
}

/* ---- partitions ---------------------------------------------------------- */

static part_t *part_find(pb_pipeline_t *pl, const char *topic, int32_t p)
{
	for (part_t *x = pl->parts; x; x = x->next)
		if (x->partition == p && strcmp(x->topic, topic) == 0)
			return x;
	return NULL;
}

static part_t *part_get(pb_pipeline_t *pl, const char *topic, int32_t p)
{
	part_t *x = part_find(pl, topic, p);
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

/* ---- tasks -------------------------------------------------------------- */

/* The last key/value pair of a log line about t: its traceparent, or the
 * end of the list when it has none (pb_log stops at a NULL key). */
#define TRACEPARENT_KV(t)                                                   \
	((t)->traceparent[0] ? "traceparent" : NULL), (t)->traceparent

static void task_free(pb_pipeline_t *pl, task_t *t)
{
	pb_orderq_unpublish(pl->orders, &t->order);
	if (t->part)
		t->part->held--;
	pl->alive--;
	pb_event_destroy(t->ev);
	pb_inbound_destroy(t->in);
	free(t->won_k1);
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
	free(t);
}

static const char *task_account(const task_t *t)
{
	if (t->ev)
		return t->ev->account;
	if (t->in)
		return t->in->account;
	return t->rej.account;
}

static const char *task_won(const task_t *t)
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
	return task_won(t);
}

static const char *task_event_id(const task_t *t)
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
#define MARK_ID_RECORD "record"
static const char *task_mark_account(const task_t *t)
{
	return t->mark_won ? MARK_ACCOUNT_RECORD : task_account(t);
}

static const char *task_mark_won(const task_t *t)
{
	return t->mark_won ? t->mark_won : task_state_won(t);
}

static const char *task_mark_id(const task_t *t)
{
	return t->mark_won ? MARK_ID_RECORD : task_event_id(t);
}

static void set_outcome(task_t *t, const char *outcome, const char *reason,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void set_outcome(task_t *t, const char *outcome, const char *reason,
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

/* ---- outcome records ------------------------------------------------------ */

static void count_outcome(pb_pipeline_t *pl, task_t *t)
{
	char lbl[512];
	const char *acct = task_account(t);
	/* only configured accounts become label values (bounded cardinality) */
	if (!acct || !pb_config_account(pl->cfg, acct))
		acct = "unknown";
	pb_metrics_labels(lbl, sizeof(lbl), "source", src_names[t->src],
			  "account", acct, "outcome", t->outcome, "reason",
			  t->reason ? t->reason : "", NULL);
	pb_metrics_add(pl->m, PB_M_OUTCOMES, lbl, 1);
	if (t->in && strcmp(t->outcome, "discarded") == 0) {
		pb_metrics_labels(lbl, sizeof(lbl), "account", acct, "reason",
				  t->reason ? t->reason : "", NULL);
		pb_metrics_add(pl->m, PB_M_INBOUND_DISCARDED, lbl, 1);
	}
	if (t->to_dlq) {
		pb_metrics_labels(lbl, sizeof(lbl), "source", src_names[t->src],
				  "reason", t->reason ? t->reason : "", NULL);
		pb_metrics_add(pl->m, PB_M_DLQ_RECORDS, lbl, 1);
	}
}

/*
 * The outcome record's text (contract section 6), written directly: a
 * jansson tree of the envelope, dumped, with the response body parsed again
 * for every event, was a sixth of the loop's CPU (docs/benchmarks.md).
 * Nested values (warnings, request, item) go through pb_jt_json. Every
 * string is UTF-8: identifiers come from parsed JSON and messages are
 * formatted whole (pb_format_text); NULL only when out of memory, and the
 * record is produced again on the next turn.
 */
static void sb_json(pb_jtext_t *b, const json_t *j, const char *dflt)
{
	if (j)
		pb_jt_json(b, j, false);
	else
		pb_jt_lit(b, dflt);
}

/* The response body as the record carries it: parsed when it is JSON,
 * else the text as a string; cached for the next event of the batch. */
static const char *body_text(pb_pipeline_t *pl, const char *body_start)
{
	if (pl->body_out && strcmp(pl->body_src, body_start) == 0)
		return pl->body_out;
	json_t *body = json_loads(body_start, 0, NULL);
	if (!body)
		body = json_string(body_start);
	char *out = body ? pb_jt_dumps(body, false) : NULL;
	json_decref(body);
	free(pl->body_out);
	pl->body_out = out ? out : strdup("null");
	pb_strlcpy(pl->body_src, body_start, sizeof(pl->body_src));
	return pl->body_out ? pl->body_out : "null";
}

/* A nested part (request, item) whole, or in its truncated form (cut). */
static void jt_part(pb_jtext_t *b, const json_t *j, const char *text,
		    bool cut)
{
	if (!cut) {
		if (text)
			pb_jt_lit(b, text);
		else
			sb_json(b, j, "null");
		return;
	}
	char *own = text ? NULL : pb_jt_dumps(j, false);
	const char *x = text ? text : own;
	pb_jt_truncated(b, x, x ? strlen(x) : 0);
	free(own);
}

/* The outcome's text: every part whole, or request and item in their
 * truncated form (cut), and without warnings and withheld fields too
 * (minimal: what still fits any topic). */
static char *outcome_text_as(pb_pipeline_t *pl, task_t *t, bool cut,
			     bool minimal)
{
	pb_jtext_t b = {0};
	char ts[40];
	pb_now_rfc3339(ts, sizeof(ts));
	pb_jt_lit(&b, "{\"eventId\":");
	pb_jt_str(&b, task_event_id(t));
	pb_jt_lit(&b, ",\"source\":");
	pb_jt_str(&b, src_names[t->src]);
	pb_jt_lit(&b, ",\"account\":");
	pb_jt_str(&b, task_account(t));
	pb_jt_lit(&b, ",\"workOrderNumber\":");
	pb_jt_str(&b, task_won(t));
	pb_jt_lit(&b, ",\"outcome\":");
	pb_jt_str(&b, t->outcome);
	pb_jt_lit(&b, ",\"reason\":");
	pb_jt_str(&b, t->reason);
	pb_jt_lit(&b, ",\"message\":");
	pb_jt_str(&b, t->message[0] ? t->message : NULL);
	pb_jt_lit(&b, ",\"warnings\":");
	sb_json(&b, t->dec_set && !minimal ? t->dec.warnings : NULL, "[]");
	pb_jt_lit(&b, ",\"withheld\":");
	sb_json(&b, t->dec_set && !minimal ? t->dec.withheld : NULL, "[]");
	bool pushed = t->dec_set && t->dec.verdict == PB_VERDICT_PUSH &&
		      t->job.attempts > 0;
	pb_jt_lit(&b, ",\"request\":");
	if (pushed)
		jt_part(&b, t->dec.work_order, t->work_order_text, cut);
	else
		pb_jt_lit(&b, "null");
	pb_jt_lit(&b, ",\"response\":");
	if (pushed) {
		pb_jt_lit(&b, "{\"httpStatus\":");
		pb_jt_i64(&b, (long long)t->job.http_status);
		pb_jt_lit(&b, ",\"body\":");
		pb_jt_lit(&b, t->job.body_start[0] ? body_text(pl, t->job.body_start)
						: "null");
		pb_jt_lit(&b, "}");
		if (t->job.batch_size > 1) {
			pb_jt_lit(&b, ",\"batchSize\":");
			pb_jt_i64(&b, t->job.batch_size);
		}
	} else {
		pb_jt_lit(&b, "null");
	}
	pb_jt_lit(&b, ",\"attempts\":");
	pb_jt_i64(&b, pushed ? t->job.attempts : 0);
	pb_jt_lit(&b, ",\"partition\":");
	pb_jt_i64(&b, t->part ? t->part->partition : -1);
	pb_jt_lit(&b, ",\"offset\":");
	pb_jt_i64(&b, (long long)t->offset);
	pb_jt_lit(&b, ",\"processedAt\":");
	pb_jt_str(&b, ts);
	if (t->recovered)
		pb_jt_lit(&b, ",\"recovered\":true");
	if (t->schema_id >= 0) {
		pb_jt_lit(&b, ",\"schemaId\":");
		pb_jt_i64(&b, (long long)t->schema_id);
	}
	pb_headers_render(&b, t->headers);
	if (t->in && strcmp(t->outcome, "relayed") == 0) {
		pb_jt_lit(&b, ",\"kind\":");
		pb_jt_str(&b, t->in->kind);
		pb_jt_lit(&b, ",\"item\":");
		jt_part(&b, t->in->item, NULL, cut);
	}
	pb_jt_lit(&b, "}");
	return pb_jt_take(&b);
}

/* The outcome's text in the task's form, within budget bytes (contract
 * section 6): whole when it fits, else with its request or item in their
 * truncated form, else minimal. NULL when out of memory. */
static char *outcome_text(pb_pipeline_t *pl, task_t *t, size_t budget)
{
	bool minimal = t->form[REC_OUTCOME] >= FORM_MINIMAL;
	char *v = outcome_text_as(pl, t, minimal, minimal);
	if (v && strlen(v) > budget) {
		free(v);
		v = outcome_text_as(pl, t, true, false);
	}
	if (v && strlen(v) > budget) {
		free(v);
		v = outcome_text_as(pl, t, true, true);
	}
	return v;
}

/* The size of the input's headers (contract section 6) as the rec record
 * of t carries them: 0 when there are none, in the minimal form, and when
 * they would take more than half the record bound (the record then goes
 * without them rather than not at all). */
static size_t input_headers_size(const pb_pipeline_t *pl, const task_t *t,
				 int rec)
{
	if (!t->headers || t->form[rec] >= FORM_MINIMAL)
		return 0;
	size_t n = 0;
	const char *name;
	const void *v;
	size_t vlen;
	for (size_t i = 0;
	     !rd_kafka_header_get_all(t->headers, i, &name, &v, &vlen); i++)
		n += pb_produce_header_size(name, vlen);
	return n <= pl->record_max / 2 ? n : 0;
}

/* Produce t's outcome record (one function, so that whatever goes onto the
 * record, e.g. headers, is counted against its size bound here). */
static rd_kafka_resp_err_t produce_outcome(pb_pipeline_t *pl, task_t *t)
{
	size_t hsz = input_headers_size(pl, t, REC_OUTCOME);
	rd_kafka_headers_t *h = hsz ? pb_headers_copy_new(t->headers) : NULL;
	size_t used = t->key_len + hsz;
	size_t budget = pl->record_max > used ? pl->record_max - used : 0;
	char *val = outcome_text(pl, t, budget);
	if (!val) {
		if (h)
			rd_kafka_headers_destroy(h);
		return RD_KAFKA_RESP_ERR__NOENT;
	}
	rd_kafka_resp_err_t err = rd_kafka_producev(
		pl->producer, RD_KAFKA_V_TOPIC(pl->cfg->topic_results),
		RD_KAFKA_V_KEY(t->key, t->key_len),
		RD_KAFKA_V_VALUE(val, strlen(val)),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
		RD_KAFKA_V_HEADERS(h),
		RD_KAFKA_V_OPAQUE(&t->recs[REC_OUTCOME]), RD_KAFKA_V_END);
	if (err) {
		free(val);
		if (h)
			rd_kafka_headers_destroy(h);
	}
	return err;
}

/* Add a header, counting its size into *used. */
static void hdr_add(rd_kafka_headers_t *h, const char *name, const char *v,
		    size_t *used)
{
	size_t n = v ? strlen(v) : 0;
	rd_kafka_header_add(h, name, -1, v ? v : "", (ssize_t)n);
	*used += pb_produce_header_size(name, n);
}

/* The DLQ copy's headers (contract section 2); the Pruvan request only
 * while it takes at most a quarter of the record (else its truncated
 * form), none of the push details in the minimal form. */
static rd_kafka_headers_t *dlq_headers_new(pb_pipeline_t *pl, task_t *t,
					   size_t *used)
{
	char part[16], off[32], att[16];
	snprintf(part, sizeof(part), "%" PRId32, t->part->partition);
	snprintf(off, sizeof(off), "%" PRId64, t->offset);
	snprintf(att, sizeof(att), "%d", t->job.attempts);
	rd_kafka_headers_t *h = rd_kafka_headers_new(10);
	/* the back office's own headers first, then the DLQ's */
	size_t hsz = input_headers_size(pl, t, REC_DLQ);
	if (hsz) {
		pb_headers_add_all(h, t->headers, true);
		*used += hsz;
	}
	hdr_add(h, "x-error-reason", t->reason ? t->reason : "", used);
	hdr_add(h, "x-error-message", t->message, used);
	hdr_add(h, "x-source-topic", t->part->topic, used);
	hdr_add(h, "x-source-partition", part, used);
	hdr_add(h, "x-source-offset", off, used);
	hdr_add(h, "x-attempts", att, used);
	if (t->job.attempts > 0 && t->form[REC_DLQ] == FORM_FULL) {
		char st[16];
		snprintf(st, sizeof(st), "%ld", t->job.http_status);
		hdr_add(h, "x-http-status", st, used);
		hdr_add(h, "x-response-body", t->job.body_start, used);
		const char *req = t->work_order_text;
		if (req && strlen(req) <= pl->record_max / 4) {
			hdr_add(h, "x-request", req, used);
		} else if (req) {
			pb_jtext_t b = {0};
			pb_jt_truncated(&b, req, strlen(req));
			char *cut = pb_jt_take(&b);
			hdr_add(h, "x-request", cut ? cut : "", used);
			free(cut);
		}
	}
	return h;
}

/* Produce t's DLQ copy: the input unchanged (a NULL value stays NULL), or
 * its first bytes with x-truncated = the original size when the whole
 * would not fit the record bound (1 KiB of it in the minimal form). */
static rd_kafka_resp_err_t produce_dlq(pb_pipeline_t *pl, task_t *t)
{
	size_t used = t->key_len;
	rd_kafka_headers_t *h = dlq_headers_new(pl, t, &used);
	size_t room = pl->record_max > used + 64 ? pl->record_max - used - 64
						 : 0;
	if (t->form[REC_DLQ] >= FORM_MINIMAL && room > 1024)
		room = 1024;
	size_t n = t->value_len;
	if (n > room)
		n = room;
	if (t->value && (n < t->value_size)) {
		char sz[32];
		snprintf(sz, sizeof(sz), "%zu", t->value_size);
		hdr_add(h, "x-truncated", sz, &used);
	}
	rd_kafka_resp_err_t err = rd_kafka_producev(
		pl->producer, RD_KAFKA_V_TOPIC(pl->cfg->topic_dlq),
		RD_KAFKA_V_KEY(t->key, t->key_len),
		RD_KAFKA_V_VALUE(t->value, t->value ? n : 0),
		RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(&t->recs[REC_DLQ]),
		RD_KAFKA_V_END);
	if (err)
		rd_kafka_headers_destroy(h);
	return err;
}

static void pubmark_add(pb_pipeline_t *pl, task_t *t)
{
	if (pl->pubmarks_len >= PUBLISH_MARK_MAX)
		return; /* bounded: a lost mark only re-publishes on replay */
	if (pl->pubmarks_len == pl->pubmarks_cap) {
		size_t nc = pl->pubmarks_cap ? pl->pubmarks_cap * 2 : 256;
		pubmark_t *n = realloc(pl->pubmarks, nc * sizeof(*n));
		if (!n)
			return;
		pl->pubmarks = n;
		pl->pubmarks_cap = nc;
	}
	pubmark_t *p = &pl->pubmarks[pl->pubmarks_len++];
	p->account = strdup(task_mark_account(t));
	p->won = strdup(task_mark_won(t));
	p->event_id = strdup(task_mark_id(t));
	p->reason = t->reason ? strdup(t->reason) : NULL;
	p->ref.account = p->account;
	p->ref.won = p->won;
	p->ref.event_id = p->event_id;
	/* the mark as recorded (redis_stage), now published */
	p->ref.outcome = t->outcome; /* a string literal */
	p->ref.reason = p->reason;
	p->ref.http_status = (int)t->job.http_status;
	p->ref.attempts = t->job.attempts;
}

/* Forget the first n pending marks (written, or the worker is going);
 * the ones added after them stay, in order. */
static void pubmarks_drop(pb_pipeline_t *pl, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(pl->pubmarks[i].account);
		free(pl->pubmarks[i].won);
		free(pl->pubmarks[i].event_id);
		free(pl->pubmarks[i].reason);
	}
	if (n) {
		memmove(pl->pubmarks, pl->pubmarks + n,
			(pl->pubmarks_len - n) * sizeof(*pl->pubmarks));
		pl->pubmarks_len -= n;
	}
}

static void store_offset(pb_pipeline_t *pl, part_t *p, int64_t offset)
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

/* Everything of t is acknowledged: its offset may be committed. */
static void task_finish(pb_pipeline_t *pl, task_t *t)
{
	int64_t commit;
	part_t *p = t->part;
	if (!t->abandoned && p && pb_track_done(p->track, t->offset, &commit)) {
		if (p->assigned)
			store_offset(pl, p, commit);
		else if (commit > p->carry)
			/* revoked while its outcome was on its way: not ours
			 * to commit, but where to resume if it comes back */
			p->carry = commit;
	}
	if (t->needs_publish_mark && !t->abandoned)
		pubmark_add(pl, t);
	if (pl->nflights) {
		/* A stage in flight may fetch a second copy of t's event, and
		 * its replies show t's mark as "done": t stays listed with its
		 * order until they are applied, so the copy is a duplicate.
		 * Later stages write t's "published" mark before they fetch. */
		t->linger_seq = pl->stage_seq;
		tl_push(&pl->lingering, t);
		return;
	}
	task_free(pl, t);
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

static void publish_task(pb_pipeline_t *pl, task_t *t)
{
	if (t->publishing)
		return;
	t->publishing = true;
	tl_push(&pl->to_publish, t);
	if (t->retry_at < pl->publish_next_at)
		pl->publish_next_at = t->retry_at;
}

static void producer_fatal(pb_pipeline_t *pl, rd_kafka_t *rk)
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
		pb_log(PB_LOG_ERROR, "cannot write a record to Kafka; trying "
		       "again after a backoff (check that the brokers are "
		       "reachable)", "topic", topic, "source_offset", off,
		       "error", rd_kafka_err2str(err), "eventId",
		       task_event_id(t), TRACEPARENT_KV(t), NULL);
		return;
	}
	t->form[rec]++;
	if (t->form[rec] < FORM_NONE) {
		t->to_produce |= 1u << rec;
		pb_log(PB_LOG_WARN, "the topic refused a record; writing a "
		       "minimal form of it instead (check the topic's "
		       "max.message.bytes and ACLs)", "topic", topic,
		       "source_offset", off, "error", rd_kafka_err2str(err),
		       "eventId", task_event_id(t), TRACEPARENT_KV(t), NULL);
		return;
	}
	t->to_produce &= ~(1u << rec);
	pb_log(PB_LOG_ERROR, "the topic refused even the minimal form of a "
	       "record; it is dropped so that its partition goes on (create "
	       "the topic, grant the worker write access to it, or raise its "
	       "max.message.bytes)", "topic", topic, "source_offset", off,
	       "error", rd_kafka_err2str(err), "eventId",
		       task_event_id(t), TRACEPARENT_KV(t), NULL);
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
				producer_fatal(pl, pl->producer);
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
	if (pl->refusal_at[rec] && now - pl->refusal_at[rec] < 5000)
		return pl->refusal[rec];
	pl->refusal_at[rec] = now;
	pl->refusal[rec] = RD_KAFKA_RESP_ERR_NO_ERROR;
	rd_kafka_topic_t *rkt =
	    rd_kafka_topic_new(pl->producer, rec_topic(pl, rec), NULL);
	if (!rkt)
		return RD_KAFKA_RESP_ERR_NO_ERROR;
	const struct rd_kafka_metadata *md = NULL;
	if (rd_kafka_metadata(pl->producer, 0, rkt, &md, 1000) ==
		RD_KAFKA_RESP_ERR_NO_ERROR &&
	    md->topic_cnt == 1 &&
	    pb_produce_classify(md->topics[0].err) == PB_PRODUCE_PERMANENT)
		pl->refusal[rec] = md->topics[0].err;
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return pl->refusal[rec];
}

/* @locality: inside rd_kafka_poll(producer) on the pipeline thread. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
			void *opaque)
{
	pb_pipeline_t *pl = opaque;
	task_rec_t *r = m->_private;
	if (!r)
		return;
	task_t *t = r->t;
	t->acks_pending--;
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
			producer_fatal(pl, rk);
		else if (c == PB_PRODUCE_FULL)
			t->to_produce |= 1u << r->rec;
		else
			produce_failed(pl, t, r->rec, err, c);
		if (t->to_produce)
			publish_task(pl, t);
	}
	if (t->acks_pending == 0 && !t->to_produce && !t->publishing)
		task_finish(pl, t);
}

static void tl_unlink(tlist_t *l, task_t *prev, task_t *t)
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

/* One line per event: a warning when it failed, else at debug level;
 * with the event's traceparent so a trace finds its lines. */
static void log_event(const task_t *t)
{
	bool failed = t->outcome && strcmp(t->outcome, "failed") == 0;
	pb_log_level_t lvl = failed ? PB_LOG_WARN : PB_LOG_DEBUG;
	if (lvl < pb_log_get_level())
		return;
	pb_log(lvl, failed ? "event failed" : "event processed", "eventId",
	       task_event_id(t), "account", task_account(t), "outcome",
	       t->outcome, "reason", t->reason, TRACEPARENT_KV(t), NULL);
}

static void publish_stage(pb_pipeline_t *pl)
{
	int64_t now = pb_mono_ms();
	if (now < pl->publish_hold_until || pl->fatal)
		return;
	pl->publish_next_at = INT64_MAX;
	task_t *prev = NULL, *t = pl->to_publish.head;
	while (t) {
		task_t *nx = t->next;
		if (t->abandoned || (t->pub_started && t->retry_at > now)) {
			if (t->abandoned) {
				tl_unlink(&pl->to_publish, prev, t);
				t->publishing = false;
				t->to_produce = 0;
				if (t->acks_pending == 0)
					task_free(pl, t);
				/* else freed by its last delivery report */
			} else {
				if (t->retry_at < pl->publish_next_at)
					pl->publish_next_at = t->retry_at;
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
			if (t->to_dlq)
				t->to_produce |= 1u << REC_DLQ;
			count_outcome(pl, t);
			log_event(t);
		}
		if (!produce_task(pl, t)) {
			/* the queue drains as delivery reports come in */
			pl->publish_hold_until = now + 10;
			pl->publish_next_at = now + 10;
			return;
		}
		if (t->to_produce) {
			/* backing off (or the producer failed fatally: the
			 * task stays listed for pb_pipeline_destroy) */
			if (t->retry_at < pl->publish_next_at)
				pl->publish_next_at = t->retry_at;
			prev = t;
			t = nx;
			continue;
		}
		tl_unlink(&pl->to_publish, prev, t);
		t->publishing = false;
		if (t->acks_pending == 0 && !t->to_produce)
			task_finish(pl, t); /* every record given up */
		t = nx;
	}
}

/* Milliseconds until publish_stage has work (0: now; -1: none). */
static int publish_wait_ms(const pb_pipeline_t *pl)
{
	if (!pl->to_publish.n || pl->fatal)
		return -1;
	int64_t at = pl->publish_next_at > pl->publish_hold_until
			 ? pl->publish_next_at
			 : pl->publish_hold_until;
	int64_t d = at - pb_mono_ms();
	return d <= 0 ? 0 : d > 10000 ? 10000 : (int)d;
}

/* ---- Redis ---------------------------------------------------------------- */

static void redis_failed(pb_pipeline_t *pl, const char *what, const char *err)
{
	pb_metrics_add(pl->m, PB_M_REDIS_ERRORS, "", 1);
	if (pl->redis_up)
		pb_log(PB_LOG_ERROR, "Redis unreachable; pausing consumption "
		       "and retrying (check REDIS_URL and that Redis is up)",
		       "during", what, "error", err, NULL);
	pl->redis_up = false;
	atomic_store(&pl->ready_redis, 0);
	pl->redis_backoff_ms = pl->redis_backoff_ms
				       ? (pl->redis_backoff_ms * 2 > 5000 ? 5000 : pl->redis_backoff_ms * 2)
				       : 100;
	pl->redis_retry_at = pb_mono_ms() + pl->redis_backoff_ms;
}

static void redis_ok(pb_pipeline_t *pl, int64_t started)
{
	pb_metrics_observe(pl->m, PB_M_REDIS_RTT, "",
			   (double)(pb_mono_ms() - started) / 1000.0);
	if (!pl->redis_up)
		pb_log(PB_LOG_INFO, "Redis reachable again; resuming", NULL);
	pl->redis_up = true;
	pl->redis_ok_at = pb_mono_ms();
	pl->redis_backoff_ms = 0;
	atomic_store(&pl->ready_redis, 1);
}

static bool redis_may_try(pb_pipeline_t *pl)
{
	return pl->redis_up || pb_mono_ms() >= pl->redis_retry_at;
}

static bool auto_admin_due(const pb_pipeline_t *pl)
{
	return pl->cfg->accounts_len &&
	       pb_mono_ms() - pl->auto_admin_at >= 1000;
}

/*
 * The URL a learned PushKey is pushed to: the key itself when Pruvan sent
 * a URL, else pruvan.apiUrl?apiKey=KEY (the key percent-encoded).
 */
static char *learned_push_url(const pb_config_t *c, const char *key)
{
	if (strncmp(key, "https://", 8) == 0 || strncmp(key, "http://", 7) == 0)
		return strdup(key);
	char *enc = curl_easy_escape(NULL, key, 0);
	if (!enc)
		return NULL;
	size_t n = strlen(c->pruvan_api_url) + strlen(enc) + 10;
	char *url = malloc(n);
	if (url)
		snprintf(url, n, "%s?apiKey=%s", c->pruvan_api_url, enc);
	curl_free(enc);
	return url;
}

/* One account's key as read: a change goes to the pusher at once (the
 * next request uses it), never to a log. */
static void push_key_apply(pb_pipeline_t *pl, size_t i, char *key_take,
			   int64_t at_ms)
{
	const pb_account_t *a = &pl->cfg->accounts[i];
	char lbl[300];
	pb_metrics_labels(lbl, sizeof(lbl), "account", a->name, NULL);
	if (at_ms > 0)
		pb_metrics_set(pl->m, PB_M_PUSH_KEY_LEARNED, lbl,
			       (double)at_ms / 1000.0);
	if (!key_take || (pl->push_keys[i] &&
			  strcmp(pl->push_keys[i], key_take) == 0)) {
		free(key_take);
		return;
	}
	char *url = learned_push_url(pl->cfg, key_take);
	if (!url || pb_pusher_set_url(pl->pusher, a, url) != PB_OK) {
		free(url);
		free(key_take);
		return; /* out of memory: the next refresh tries again */
	}
	free(url);
	pb_log(PB_LOG_INFO,
	       pl->push_keys[i] ? "learned PushKey changed: pushing with "
				  "the new one"
				: "learned PushKey in use",
	       "account", a->name, NULL);
	free(pl->push_keys[i]);
	pl->push_keys[i] = key_take;
}

/* The learned PushKeys of the accounts configured "pruvan:validate". */
static void refresh_push_keys(pb_pipeline_t *pl, const char **names)
{
	const pb_config_t *c = pl->cfg;
	size_t n = 0;
	for (size_t i = 0; i < c->accounts_len; i++)
		n += c->accounts[i].push_key_learned;
	if (n == 0)
		return;
	char **keys = calloc(c->accounts_len, sizeof(*keys));
	int64_t *at = calloc(c->accounts_len, sizeof(*at));
	char err[256];
	if (keys && at &&
	    pb_state_get_push_keys(pl->state, names, c->accounts_len, keys, at,
				   err, sizeof(err)) == PB_OK) {
		int missing = 0, first = -1;
		for (size_t i = 0; i < c->accounts_len; i++) {
			if (!c->accounts[i].push_key_learned) {
				free(keys[i]);
				continue;
			}
			push_key_apply(pl, i, keys[i], at[i]);
			if (!pl->push_keys[i] && missing++ == 0)
				first = (int)i;
		}
		atomic_store(&pl->key_missing_first, first);
		atomic_store(&pl->keys_missing, missing);
	}
	free(keys);
	free(at);
}

static void refresh_auto_admin(pb_pipeline_t *pl)
{
	const pb_config_t *c = pl->cfg;
	if (!auto_admin_due(pl))
		return;
	const char **names = calloc(c->accounts_len, sizeof(*names));
	int *vals = calloc(c->accounts_len, sizeof(*vals));
	if (!names || !vals)
		goto out;
	for (size_t i = 0; i < c->accounts_len; i++)
		names[i] = c->accounts[i].name;
	char err[256];
	if (pb_state_get_auto_admin(pl->state, names, c->accounts_len, vals,
				    err, sizeof(err)) == PB_OK) {
		for (size_t i = 0; i < c->accounts_len; i++) {
			int on = vals[i] < 0 ? c->accounts[i].auto_admin : vals[i];
			if (pl->auto_admin[i] != on && pl->auto_admin_at)
				pb_log(PB_LOG_INFO, on ? "Auto-Admin switched on"
						       : "Auto-Admin switched off",
				       "account", c->accounts[i].name, NULL);
			pl->auto_admin[i] = on;
			char lbl[300];
			pb_metrics_labels(lbl, sizeof(lbl), "account",
					  c->accounts[i].name, NULL);
			pb_metrics_set(pl->m, PB_M_AUTO_ADMIN, lbl, on);
		}
		pl->auto_admin_at = pb_mono_ms();
		refresh_push_keys(pl, names);
	}
out:
	free(names);
	free(vals);
}

static int auto_admin_of(pb_pipeline_t *pl, const pb_account_t *a)
{
	size_t i = (size_t)(a - pl->cfg->accounts);
	return pl->auto_admin[i] < 0 ? a->auto_admin : pl->auto_admin[i];
}

/* ---- stages ------------------------------------------------------------- */

static void on_pushed(pb_push_job_t *job, void *opaque);

static void to_record(pb_pipeline_t *pl, task_t *t)
{
	tl_push(&pl->to_record, t);
}

/* Decide what to do with an order event whose state was fetched. */
static void decide_order(pb_pipeline_t *pl, task_t *t)
{
	pb_event_t *ev = t->ev;
	t->acct = pb_config_account(pl->cfg, ev->account);
	pb_order_state_t *st = t->view.exists ? &t->view.order : NULL;
	pb_rules_decide(ev, t->acct, t->acct ? auto_admin_of(pl, t->acct) : true,
			st, &t->dec);
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
		t->work_order_text = pb_jt_dumps(t->dec.work_order, false);
		t->job.work_order_text = t->work_order_text;
		t->job.alone = t->dec.unknown_order;
		t->job.opaque = t;
		pb_pusher_submit(pl->pusher, &t->job);
		return;
	case PB_VERDICT_UNCHANGED:
		set_outcome(t, "unchanged", NULL, "%s", t->dec.message[0] ? t->dec.message : "nothing changed since the last push: nothing sent");
		t->write_order = true;
		break;
	case PB_VERDICT_STALE:
		set_outcome(t, "stale", t->dec.reason ? t->dec.reason : "stale",
			    "%s", t->dec.message);
		break;
	case PB_VERDICT_REJECTED:
		set_outcome(t, "rejected", t->dec.reason, "%s", t->dec.message);
		break;
	}
	t->record = true;
	to_record(pl, t);
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

static void decide_inbound(pb_pipeline_t *pl, task_t *t)
{
	pb_inbound_t *in = t->in;
	if (!pb_config_account(pl->cfg, in->account)) {
		set_outcome(t, "rejected", "unknown_account",
			    "account \"%s\" is not configured: add it under "
			    "accounts in the configuration", in->account);
		t->to_dlq = true;
		t->record = true;
		to_record(pl, t);
		return;
	}
	const char *why = pb_rules_inbound_discard_reason(
		t->view.order.deleted, t->view.key1_learned, in->key1,
		t->view.key1_deleted);
	if (why) {
		set_outcome(t, "discarded", why,
			    strcmp(why, "recreated_after_delete") == 0
				    ? "the order was deleted by the back office; "
				      "Pruvan recreated it under a new Key1 to "
				      "relay queued data, which is discarded"
				    : "the order was deleted by the back office; "
				      "its relayed data is discarded");
		discard_media(pl, in);
	} else {
		set_outcome(t, "relayed", NULL, NULL);
		if (in->key1 && in->key2 && !t->view.key1_learned)
			t->learn_key1 = in->key1;
	}
	t->record = true;
	to_record(pl, t);
}

/* Decide what to do with an event whose state was fetched (t->view). A
 * "done" mark is a duplicate while the first copy is still listed with its
 * order (publishing); once its outcome is acknowledged its "published"
 * mark is written before any fetch (redis_stage), so a "done" mark alone
 * means a crash came between recording and publishing. */
static void fetched(pb_pipeline_t *pl, task_t *t)
{
	const task_t *twin = t->view.mark == PB_MARK_DONE ? key_twin(t) : NULL;
	if (t->view.mark == PB_MARK_PUBLISHED || twin) {
		set_outcome(t, "duplicate", NULL,
			    "already processed (outcome %s); not pushed again",
			    twin ? twin->outcome : t->view.mark_outcome);
		t->record = false;
		t->to_dlq = false; /* its first copy went there */
		key_release(pl, t);
		publish_task(pl, t);
		return;
	}
	if (t->mark_won) {
		/* a record rejected as read, not seen before: publish the
		 * rejection; its "published" mark makes a replay a
		 * duplicate (nothing to record first: it has no effect) */
		t->needs_publish_mark = true;
		key_release(pl, t);
		publish_task(pl, t);
		return;
	}
	if (t->view.mark == PB_MARK_DONE) {
		/* effect recorded, outcome never acknowledged: a crash
		 * came between; publish the recorded outcome now */
		static const char *known[] = {
			"created", "updated", "deleted", "unchanged",
			"stale", "rejected", "relayed", "discarded"};
		const char *o = "updated";
		for (size_t k = 0; k < sizeof(known) / sizeof(*known); k++)
			if (strcmp(known[k], t->view.mark_outcome) == 0)
				o = known[k];
		set_outcome(t, o, t->view.mark_reason[0] ? t->view.mark_reason : NULL,
			    "outcome recovered after a restart: the effect "
			    "was recorded before; not pushed again");
		/* outcome and reason as recorded, so metrics and
		 * readers see what happened; "recovered" marks it */
		t->recovered = true;
		t->needs_publish_mark = true;
		key_release(pl, t);
		publish_task(pl, t);
		return;
	}
	if (t->ev)
		decide_order(pl, t);
	else
		decide_inbound(pl, t);
}

/* @locality: inside pb_pusher_poll on the pipeline thread. */
static void on_pushed(pb_push_job_t *job, void *opaque)
{
	pb_pipeline_t *pl = opaque;
	task_t *t = job->opaque;
	if (t->abandoned) {
		key_release(pl, t); /* or the order's later events wait forever */
		task_free(pl, t);
		return;
	}
	if (!job->ok) {
		set_outcome(t, "failed", job->fail_reason, "%s", job->message);
		t->to_dlq = true;
		/* no mark: a replay from the DLQ must push again */
		key_release(pl, t);
		publish_task(pl, t);
		return;
	}
	const char *o = NULL;
	if (job->batch_size == 1) {
		o = pb_rules_outcome_for(&t->dec, &job->result);
	} else {
		o = t->dec.push_action == PB_ACTION_CREATE   ? "created"
		    : t->dec.push_action == PB_ACTION_DELETE ? "deleted"
							     : "updated";
		int sum = job->result.created + job->result.updated +
			  job->result.deleted;
		if (sum != job->batch_size)
			json_array_append_new(
				t->dec.warnings,
				json_pack("{s:s,s:s}", "code", "batch_counts_mismatch",
					  "message", "Pruvan's counts for the batch do not add up to its orders; outcome taken from the action"));
	}
	if (!o) {
		set_outcome(t, "failed", "pruvan_error",
			    "Pruvan accepted the request but reported no "
			    "created, updated or deleted order; check the "
			    "order in Pruvan");
		t->to_dlq = true;
		key_release(pl, t);
		publish_task(pl, t);
		return;
	}
	set_outcome(t, o, NULL, NULL);
	t->record = true;
	t->write_order = true;
	t->set_created = strcmp(o, "created") == 0 ||
			 t->dec.push_action == PB_ACTION_CREATE;
	if (t->dec.push_action == PB_ACTION_DELETE) {
		t->set_deleted = true;
		t->deleted_key1 = t->view.key1_learned;
	}
	to_record(pl, t);
}

/* The loop's work that needs no Redis, done while Redis executes: see
 * redis_stage. */
typedef struct {
	rd_kafka_message_t **msgs; /* consumed records to take in */
	size_t n;
} overlap_t;

static void consume_one(pb_pipeline_t *pl, rd_kafka_message_t *m);

static void overlap_work(pb_pipeline_t *pl, overlap_t *o)
{
	for (size_t i = 0; o && i < o->n; i++)
		consume_one(pl, o->msgs[i]);
	publish_stage(pl);
}

static void stage_settle(pb_pipeline_t *pl);

/* Free the tasks held back for stages up to seq (see task_finish). */
static void free_lingering(pb_pipeline_t *pl, uint64_t seq)
{
	if (seq > pl->applied_seq)
		pl->applied_seq = seq;
	while (pl->lingering.head &&
	       pl->lingering.head->linger_seq <= pl->applied_seq)
		task_free(pl, tl_pop(&pl->lingering));
}

/* Forget a stage whose replies will not be applied. */
static void stage_discard(pb_pipeline_t *pl, stage_t *s)
{
	uint64_t seq = s->seq;
	for (size_t i = 0; s->views && i < s->nfetch; i++)
		pb_state_view_clear(&s->views[i]);
	free(s->views);
	memset(s, 0, sizeof(*s));
	free_lingering(pl, seq);
}

/* Forget every stage in flight (their replies are lost). */
static void stages_discard(pb_pipeline_t *pl)
{
	while (pl->nflights)
		stage_discard(pl, &pl->flights[--pl->nflights]);
}

/* What the stages in flight carry: the first *nrec of to_record, *nmark
 * of the pending marks and *nfetch of ready. */
static void in_flight(const pb_pipeline_t *pl, size_t *nrec, size_t *nmark,
		      size_t *nfetch)
{
	*nrec = *nmark = *nfetch = 0;
	for (size_t i = 0; i < pl->nflights; i++) {
		*nrec += pl->flights[i].nrec;
		*nmark += pl->flights[i].nmark;
		*nfetch += pl->flights[i].nfetch;
	}
}

/* Work for a stage not yet written. */
static bool stage_wanted(const pb_pipeline_t *pl)
{
	size_t nrec, nmark, nfetch;
	in_flight(pl, &nrec, &nmark, &nfetch);
	return pl->to_record.n > nrec || pl->pubmarks_len > nmark ||
	       pl->ready.n > nfetch;
}

/*
 * Write a stage: the records of finished pushes, the "published" marks of
 * acknowledged outcomes and the fetch of ready events, in that order (a
 * fetch sees the marks written before it), taken from the lists past what
 * the stages in flight carry. A failure drops the connection, and the
 * stages in flight fail with it.
 */
static void stage_send(pb_pipeline_t *pl)
{
	if (pl->nflights == MAX_FLIGHTS || !redis_may_try(pl))
		return;
	size_t rec_skip, mark_skip, fetch_skip;
	in_flight(pl, &rec_skip, &mark_skip, &fetch_skip);
	size_t nrec = pl->to_record.n - rec_skip;
	size_t nmark = pl->pubmarks_len - mark_skip;
	size_t nfetch = pl->ready.n - fetch_skip;
	if (nrec + nmark + nfetch == 0)
		return;
	if (nrec > RECORD_BATCH)
		nrec = RECORD_BATCH;
	if (nfetch > FETCH_BATCH)
		nfetch = FETCH_BATCH;
	pb_state_write_t *w = calloc(nrec + 1, sizeof(*w));
	pb_state_ref_t *refs = calloc(nmark + 1, sizeof(*refs));
	pb_state_view_t *views = calloc(nfetch + 1, sizeof(*views));
	if (!w || !refs || !views) {
		free(w);
		free(refs);
		free(views);
		return;
	}
	task_t *t = pl->to_record.head;
	for (size_t i = 0; i < rec_skip; i++)
		t = t->next;
	for (size_t i = 0; i < nrec; i++, t = t->next) {
		w[i].account = task_mark_account(t);
		w[i].won = task_mark_won(t);
		w[i].event_id = task_mark_id(t);
		w[i].outcome = t->outcome;
		w[i].reason = t->reason;
		w[i].http_status = (int)t->job.http_status;
		w[i].attempts = t->job.attempts;
		w[i].write_order = t->write_order;
		w[i].set_created = t->set_created;
		w[i].set_deleted = t->set_deleted;
		if (t->ev && t->write_order) {
			w[i].has_version = t->ev->has_version;
			w[i].version = t->ev->version;
			w[i].occurred_ms = t->ev->occurred_ms;
			w[i].pushed = t->dec_set ? t->dec.pushed_after : NULL;
		}
		w[i].learn_key1 = t->learn_key1;
		w[i].deleted_key1 = t->deleted_key1;
	}
	for (size_t i = 0; i < nmark; i++)
		refs[i] = pl->pubmarks[mark_skip + i].ref;
	t = pl->ready.head;
	for (size_t i = 0; i < fetch_skip; i++)
		t = t->next;
	for (size_t i = 0; i < nfetch; i++, t = t->next) {
		views[i].account = task_mark_account(t);
		views[i].won = task_mark_won(t);
		views[i].event_id = task_mark_id(t);
		views[i].key1 = t->in ? t->in->key1 : NULL;
	}
	stage_t *s = &pl->flights[pl->nflights];
	memset(s, 0, sizeof(*s));
	char err[512];
	const char *what = "record";
	int64_t started = pb_mono_ms();
	pb_err_t e = pb_state_commit_send(pl->state, w, nrec, &s->crec, err,
					  sizeof(err));
	if (!e) {
		what = "mark published";
		e = pb_state_mark_published_send(pl->state, refs, nmark,
						 &s->cmark, err, sizeof(err));
	}
	if (!e) {
		what = "fetch";
		e = pb_state_fetch_send(pl->state, views, nfetch, &s->cfetch,
					err, sizeof(err));
	}
	if (!e) {
		what = "write";
		e = pb_state_flush(pl->state, err, sizeof(err));
	}
	free(w);
	free(refs);
	if (e) {
		redis_failed(pl, what, err);
		free(views);
		memset(s, 0, sizeof(*s));
		return;
	}
	s->seq = ++pl->stage_seq;
	s->nrec = nrec;
	s->nmark = nmark;
	s->nfetch = nfetch;
	s->views = views;
	s->spent_ms = pb_mono_ms() - started;
	pl->nflights++;
}

static bool stage_ready(pb_pipeline_t *pl)
{
	const stage_t *s = &pl->flights[0];
	pb_state_call_t calls[3] = {s->crec, s->cmark, s->cfetch};
	return pb_state_ready(pl->state, calls, 3);
}

/*
 * Read the replies of the oldest stage in flight (waiting for them unless
 * wait is false and they are not in yet) and apply them: recorded tasks go
 * on to publish (their order's next event may go), written marks are
 * forgotten, fetched events are decided. The first failure drops the
 * connection and leaves the rest unapplied: their tasks stay listed and go
 * in a later stage, and every later stage in flight is discarded, as its
 * replies are lost with the connection. False when nothing was applied.
 */
static bool stage_apply(pb_pipeline_t *pl, bool wait)
{
	if (!pl->nflights)
		return false;
	if (!wait) {
		pb_state_pump(pl->state);
		if (!stage_ready(pl))
			return false;
	}
	stage_t st = pl->flights[0];
	pl->nflights--;
	memmove(pl->flights, pl->flights + 1, pl->nflights * sizeof(st));
	char err[512];
	int64_t started = pb_mono_ms();
	const char *what = "record";
	pb_err_t e = pb_state_write_recv(pl->state, &st.crec, err, sizeof(err));
	if (!e) {
		for (size_t i = 0; i < st.nrec; i++) {
			task_t *t = tl_pop(&pl->to_record);
			t->needs_publish_mark = true;
			key_release(pl, t);
			publish_task(pl, t);
		}
		what = "mark published";
		e = pb_state_write_recv(pl->state, &st.cmark, err, sizeof(err));
	}
	if (!e) {
		pubmarks_drop(pl, st.nmark);
		what = "fetch";
		e = pb_state_fetch_recv(pl->state, &st.cfetch, st.views,
					st.nfetch, err, sizeof(err));
	}
	int64_t spent = st.spent_ms + pb_mono_ms() - started;
	if (e) {
		pb_state_disconnect(pl->state);
		redis_failed(pl, what, err);
		stage_discard(pl, &st);
		stages_discard(pl);
		return false;
	}
	for (size_t i = 0; i < st.nfetch; i++) {
		task_t *t = tl_pop(&pl->ready);
		t->view = st.views[i];
		t->view_set = true;
		fetched(pl, t);
	}
	free(st.views);
	free_lingering(pl, st.seq);
	redis_ok(pl, pb_mono_ms() - spent);
	return true;
}

/*
 * Everything that waits on Redis, in stages kept in flight (up to
 * MAX_FLIGHTS): a stage is written as soon as there is work for it, and
 * its replies are applied when they are in, in the order written; the
 * loop meanwhile takes in consumed records, produces outcomes, serves
 * Pruvan's answers and decides the events of earlier stages, and its poll
 * waits on the Redis socket too. Holding still for every round trip was a
 * third of the loop's time (docs/benchmarks.md). A stage never carries a
 * task of one in flight, and an order's next event is ready only once its
 * previous one is recorded (key_release, on applying), so stages never
 * race over an order. A whole call (Auto-Admin, ping, marks at shutdown)
 * first settles every stage in flight (stage_settle).
 */
static void redis_stage(pb_pipeline_t *pl, overlap_t *ov)
{
	while (stage_apply(pl, false))
		;
	if (auto_admin_due(pl) && stage_wanted(pl)) {
		stage_settle(pl); /* the refresh is a whole call */
		refresh_auto_admin(pl);
	}
	stage_send(pl);
	overlap_work(pl, ov);
	while (stage_apply(pl, false))
		;
	stage_send(pl);
}

/* Apply every stage in flight, waiting for their replies: before a whole
 * call, or when the loop has nothing else to do. */
static void stage_settle(pb_pipeline_t *pl)
{
	while (stage_apply(pl, true))
		;
}

static void pubmark_stage(pb_pipeline_t *pl)
{
	stage_settle(pl);
	if (!pl->pubmarks_len || !redis_may_try(pl))
		return;
	pb_state_ref_t *refs = calloc(pl->pubmarks_len, sizeof(*refs));
	if (!refs)
		return;
	for (size_t i = 0; i < pl->pubmarks_len; i++)
		refs[i] = pl->pubmarks[i].ref;
	char err[512];
	int64_t started = pb_mono_ms();
	pb_err_t e = pb_state_mark_published(pl->state, refs, pl->pubmarks_len,
					     err, sizeof(err));
	free(refs);
	if (e) {
		redis_failed(pl, "mark published", err);
		return;
	}
	redis_ok(pl, started);
	pubmarks_drop(pl, pl->pubmarks_len);
}

/* ---- consuming -------------------------------------------------------------- */

static bool admit_key(pb_pipeline_t *pl, task_t *t);

/* A record rejected as it was read. It goes through the state fetch under
 * its record identity (task_mark_won) so that a replay is a duplicate; only
 * when that cannot be set up (out of memory) is it published at once. */
static void reject_parse(pb_pipeline_t *pl, task_t *t, bool dedupe)
{
	set_outcome(t, "rejected", t->rej.reason, "%s", t->rej.message);
	/* records that are not events and malformed relayed items go to
	 * the DLQ */
	const char *r = t->rej.reason ? t->rej.reason : "";
	t->to_dlq = t->src == SRC_INBOUND || strcmp(r, "invalid_json") == 0 ||
		    strcmp(r, "too_large") == 0 ||
		    strcmp(r, "empty_record") == 0;
	if (dedupe && t->part && !t->mark_won) {
		char w[400];
		snprintf(w, sizeof(w), "%s/%" PRId32 "/%" PRId64, t->part->topic,
			 t->part->partition, t->offset);
		t->mark_won = strdup(w);
		if (t->mark_won && admit_key(pl, t))
			return;
		free(t->mark_won);
		t->mark_won = NULL;
	}
	publish_task(pl, t);
}

/* Queue t behind its order's key (the record's, for a rejection), or
 * make it ready when the order is idle. False when out of memory. */
static bool admit_key(pb_pipeline_t *pl, task_t *t)
{
	bool go = false;
	if (pb_orderq_admit(pl->orders, task_mark_account(t), task_mark_won(t),
			    &t->order, &go))
		return false;
	if (go)
		tl_push(&pl->ready, t);
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
	if (t->value_size > RECORD_INPUT_MAX) {
		t->rej.reason = "too_large";
		snprintf(t->rej.message, sizeof(t->rej.message),
			 "the record is %zu bytes, more than the %d a record "
			 "may have: shorten its longest fields or split the "
			 "order's services over several events",
			 t->value_size, RECORD_INPUT_MAX);
		return PB_ERR_INVALID;
	}
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

static void consume_one(pb_pipeline_t *pl, rd_kafka_message_t *m)
{
	const char *topic = rd_kafka_topic_name(m->rkt);
	part_t *p = part_find(pl, topic, m->partition);
	if (m->err) {
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			if (p)
				p->eof = true;
		} else {
			pb_log(PB_LOG_WARN, "consumer error", "topic", topic,
			       "error", rd_kafka_message_errstr(m), NULL);
			atomic_store(&pl->ready_kafka, 0);
		}
		rd_kafka_message_destroy(m);
		return;
	}
	atomic_store(&pl->ready_kafka, 1);
	if (!p || !p->assigned) {
		/* fetched before its partition was revoked: the next owner
		 * gets it */
		rd_kafka_message_destroy(m);
		return;
	}
	p->eof = false;
	if (pb_track_add(p->track, m->offset) != PB_OK) {
		rd_kafka_message_destroy(m); /* already seen (re-fetch) */
		return;
	}
	/* of a value too large to read, keep what its DLQ copy can carry */
	size_t keep = m->len;
	if (keep > RECORD_INPUT_MAX && keep > pl->record_max)
		keep = pl->record_max;
	task_t *t = calloc(1, sizeof(*t));
	char *bytes = malloc(m->key_len + keep + 1);
	if (!t || !bytes) {
		free(t);
		free(bytes);
		rd_kafka_message_destroy(m);
		return;
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
	t->consumed_ms = pb_mono_ms();
	pl->avg_record += ((double)(m->key_len + m->len) - pl->avg_record) / 64;
	p->held++;
	pl->alive++;
	t->headers = pb_headers_of_message_new(m);
	pb_headers_traceparent(t->headers, t->traceparent,
			       sizeof(t->traceparent));
	pb_err_t err = parse_record(t);
	rd_kafka_message_destroy(m);
	char lbl[300];
	const char *acct = t->ev ? t->ev->account : t->in ? t->in->account : NULL;
	if (!acct || !pb_config_account(pl->cfg, acct))
		acct = "unknown";
	pb_metrics_labels(lbl, sizeof(lbl), "source", src_names[t->src],
			  "account", acct, NULL);
	pb_metrics_add(pl->m, PB_M_EVENTS_CONSUMED, lbl, 1);
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

static void set_paused(pb_pipeline_t *pl, bool pause)
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

/* ---- rebalance ------------------------------------------------------------ */

/* how long the start waits for an outcome topic's partitions */
#define METADATA_WAIT_MS 2000
/* how long an assignment waits for the committed offsets it may carry past */
#define CARRY_QUERY_MS 5000

static void step(pb_pipeline_t *pl, bool consume, int wait_ms);

static bool job_of_revoked(pb_push_job_t *j, void *opaque)
{
	(void)opaque;
	task_t *t = j->opaque;
	return t->part && !t->part->assigned;
}

static void abandon_if_revoked(pb_orderq_link_t *l, void *opaque)
{
	task_t *t = task_of(l);
	(void)opaque;
	if (t->part && !t->part->assigned)
		t->abandoned = true;
}

/* Abandon every task of partitions no longer assigned. */
static void abandon_revoked(pb_pipeline_t *pl)
{
	stage_settle(pl); /* the lists below are rebuilt */
	pb_push_job_t *j = pb_pusher_take_queued(pl->pusher, job_of_revoked, NULL);
	while (j) {
		pb_push_job_t *nx = j->next;
		task_t *t = j->opaque;
		t->abandoned = true;
		key_release(pl, t);
		task_free(pl, t);
		j = nx;
	}
	tlist_t *lists[] = {&pl->ready, &pl->to_record, &pl->to_publish};
	for (size_t li = 0; li < 3; li++) {
		tlist_t keep = {0};
		task_t *t;
		while ((t = tl_pop(lists[li]))) {
			if (t->part && !t->part->assigned && t->acks_pending == 0) {
				t->abandoned = true;
				key_release(pl, t);
				task_free(pl, t);
			} else {
				tl_push(&keep, t);
			}
		}
		*lists[li] = keep;
	}
	/* tasks waiting behind their order, and pushes on the wire, are
	 * freed when their turn or answer comes (abandoned flag) */
	pb_orderq_each_waiting(pl->orders, abandon_if_revoked, NULL);
}

static int64_t held_in(pb_pipeline_t *pl, rd_kafka_topic_partition_list_t *l)
{
	int64_t n = 0;
	for (int i = 0; i < l->cnt; i++) {
		part_t *p = part_find(pl, l->elems[i].topic, l->elems[i].partition);
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
static rd_kafka_topic_partition_list_t *
carry_offsets(pb_pipeline_t *pl, rd_kafka_t *rk,
	      rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_topic_partition_list_t *q =
	    rd_kafka_topic_partition_list_new(parts->cnt);
	for (int i = 0; i < parts->cnt; i++) {
		part_t *p = part_find(pl, parts->elems[i].topic,
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
		part_t *p = part_find(pl, c->topic, c->partition);
		/* nothing committed reads RD_KAFKA_OFFSET_INVALID: below */
		if (!err && !c->err && c->offset < p->carry) {
			rd_kafka_topic_partition_list_find(parts, c->topic,
							   c->partition)
			    ->offset = p->carry;
			if (!carried)
				carried =
				    rd_kafka_topic_partition_list_new(q->cnt);
			rd_kafka_topic_partition_list_add(carried, p->topic,
							  p->partition)
			    ->offset = p->carry;
		}
		p->carry = -1;
	}
	rd_kafka_topic_partition_list_destroy(q);
	return carried;
}

/* The carried start offsets, once assigned, become the partitions' stored
 * offsets, so the next commit records them. Frees carried. */
static void store_carried(pb_pipeline_t *pl,
			  rd_kafka_topic_partition_list_t *carried)
{
	for (int i = 0; i < carried->cnt; i++) {
		rd_kafka_topic_partition_t *e = &carried->elems[i];
		store_offset(pl, part_find(pl, e->topic, e->partition),
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

/* @locality: inside rd_kafka_consume_batch_queue on the pipeline thread. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	pb_pipeline_t *pl = opaque;
	bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		rd_kafka_topic_partition_list_t *carried =
		    carry_offsets(pl, rk, parts);
		for (int i = 0; i < parts->cnt; i++) {
			part_t *p = part_get(pl, parts->elems[i].topic,
					     parts->elems[i].partition);
			if (p) {
				p->assigned = true;
				p->eof = false;
				pb_track_reset(p->track);
			}
		}
		pl->assigned_once = true;
		pl->assigns++;
		atomic_store(&pl->ready_kafka, 1); /* the coordinator answered */
		pb_log(PB_LOG_INFO, "partitions assigned", NULL);
		if (cooperative)
			rd_kafka_incremental_assign(rk, parts);
		else
			rd_kafka_assign(rk, parts);
		if (pl->paused_all)
			rd_kafka_pause_partitions(rk, parts);
		if (carried)
			store_carried(pl, carried);
		return;
	}
	/* revoke (or lost): finish what we can within the grace budget */
	bool lost = rd_kafka_assignment_lost(rk);
	/* Lost: the group coordinator went silent past the session timeout
	 * (Kafka unreachable) and this worker consumes nothing until it is
	 * assigned again; /readyz must say so. No consumer error reaches
	 * the loop when every broker is down, so this is the signal. */
	if (lost)
		atomic_store(&pl->ready_kafka, 0);
	int64_t deadline = pb_mono_ms() + pl->cfg->worker_shutdown_grace_ms;
	pl->in_revoke++;
	while (!lost && !pl->stopping && held_in(pl, parts) > 0 &&
	       pb_mono_ms() < deadline)
		step(pl, false, 10);
	pl->in_revoke--;
	int64_t left = held_in(pl, parts);
	/* stored offsets, synchronously */
	rd_kafka_resp_err_t cerr = lost ? RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST
					: rd_kafka_commit(rk, NULL, 0);
	bool taken = !cerr || cerr == RD_KAFKA_RESP_ERR__NO_OFFSET;
	for (int i = 0; i < parts->cnt; i++) {
		part_t *p = part_find(pl, parts->elems[i].topic,
				      parts->elems[i].partition);
		if (!p)
			continue;
		p->assigned = false;
		p->carry = taken ? -1 : p->stored;
		p->stored = -1;
	}
	abandon_revoked(pl);
	char n[32];
	snprintf(n, sizeof(n), "%" PRId64, left);
	pb_log(left ? PB_LOG_WARN : PB_LOG_INFO,
	       lost ? "partitions lost" : "partitions revoked",
	       "abandoned_events", n, NULL);
	if (cooperative)
		rd_kafka_incremental_unassign(rk, parts);
	else
		rd_kafka_assign(rk, NULL);
}

/* ---- the loop -------------------------------------------------------------- */

static void update_lag(pb_pipeline_t *pl)
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
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
		if (!rd_kafka_position(pl->consumer, l) && l->elems[0].offset >= 0) {
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

/*
 * Wake librdkafka's fetcher once the consumer queue, having gone over the
 * prefetch limits (so librdkafka stopped fetching), has drained to half of
 * them: otherwise the next fetch waits for the broker thread's own wake-up,
 * up to a second, and the loop runs dry (fetchwake.h). The queue's size in
 * bytes is estimated from the records consumed so far.
 */
static void wake_fetcher(pb_pipeline_t *pl)
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

static void drain_fd(int fd)
{
	char buf[64];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void step(pb_pipeline_t *pl, bool consume, int wait_ms)
{
	atomic_store(&pl->heartbeat_ms, pb_mono_ms());
	rd_kafka_message_t *msgs[CONSUME_BATCH];
	overlap_t ov = {msgs, 0};
	if (consume) {
		/* Full (maxPending events held): stop taking messages and let
		 * librdkafka's bounded prefetch queue hold the rest. Pausing
		 * the partitions drops that queue and costs a re-fetch on
		 * resume, which at a full pipeline happened every few
		 * milliseconds; so pause only when Redis is down or the
		 * pipeline stayed full for FULL_PAUSE_MS (a Pruvan outage),
		 * which keeps polling the consumer within
		 * max.poll.interval.ms. */
		size_t max = (size_t)pl->cfg->worker_max_pending;
		bool full = pl->alive >= max;
		int64_t now = pb_mono_ms();
		if (!full)
			pl->full_since = 0;
		else if (!pl->full_since)
			pl->full_since = now;
		bool pause = !pl->redis_up ||
			     (full && now - pl->full_since >= FULL_PAUSE_MS);
		bool resume = pl->redis_up && pl->alive < max * 3 / 4;
		if (pause)
			set_paused(pl, true);
		else if (resume)
			set_paused(pl, false);
		size_t room = full ? 0 : max - pl->alive;
		if (room > CONSUME_BATCH || pl->paused_all)
			room = CONSUME_BATCH;
		wake_fetcher(pl); /* before: arms it, after: wakes */
		ssize_t n = room ? rd_kafka_consume_batch_queue(pl->cq, 0, msgs,
								room)
				 : 0;
		ov.n = n > 0 ? (size_t)n : 0;
		wake_fetcher(pl);
	}
	/* the records just consumed are taken in while Redis works */
	redis_stage(pl, &ov);
	publish_stage(pl);
	rd_kafka_poll(pl->producer, 0);

	/* wait for network activity: Pruvan answers, a Kafka message or a
	 * delivery report (their queues write to these pipes) */
	int pub_wait = publish_wait_ms(pl);
	bool busy = pub_wait == 0 ||
		    (stage_wanted(pl) && pl->nflights < MAX_FLIGHTS);
	if (pub_wait > 0 && pub_wait < wait_ms)
		wait_ms = pub_wait;
	/* records left in the consumer's queue wake nobody: the queue
	 * signals its fd only when it turns non-empty */
	if (consume && !pl->paused_all &&
	    pl->alive < (size_t)pl->cfg->worker_max_pending &&
	    rd_kafka_queue_length(pl->cq) > 0)
		busy = true;
	if (busy && (pl->redis_up || redis_may_try(pl)))
		wait_ms = 0;
	if (!pl->redis_up && !busy) {
		int64_t d = pl->redis_retry_at - pb_mono_ms();
		if (d >= 0 && d < wait_ms)
			wait_ms = (int)d;
	}
	/* and the replies of a stage in flight */
	struct curl_waitfd fds[3] = {
	    {.fd = pl->cq_fds[0], .events = CURL_WAIT_POLLIN},
	    {.fd = pl->pq_fds[0], .events = CURL_WAIT_POLLIN},
	    {.fd = pb_state_fd(pl->state), .events = CURL_WAIT_POLLIN},
	};
	struct curl_waitfd *wfd = consume ? fds : fds + 1;
	unsigned nfd = consume ? 2 : 1;
	if (fds[2].fd >= 0)
		nfd++;
	pb_pusher_poll(pl->pusher, wfd, nfd, wait_ms);
	drain_fd(pl->cq_fds[0]);
	drain_fd(pl->pq_fds[0]);
	rd_kafka_poll(pl->producer, 0);
	redis_stage(pl, NULL);
	publish_stage(pl);
	/* An idle worker still probes Redis: every second while it is up
	 * (readiness notices it going away, Auto-Admin switches reach the
	 * metrics), on the backoff schedule while it is down. */
	bool probe = pl->redis_up ? pb_mono_ms() - pl->redis_ok_at >= 1000
				  : redis_may_try(pl);
	if (probe && !busy) {
		char err[256];
		stage_settle(pl);
		int64_t started = pb_mono_ms();
		if (pb_state_ping(pl->state, err, sizeof(err)) == PB_OK) {
			redis_ok(pl, started);
			refresh_auto_admin(pl);
		} else {
			redis_failed(pl, "ping", err);
		}
	}
	int open = pb_pusher_circuits_open(pl->pusher);
	atomic_store(&pl->ready_circuits, open);
	char why[128];
	int ready = pb_pipeline_ready(pl, why, sizeof(why));
	if (ready != pl->ready_metric) {
		pl->ready_metric = ready;
		pb_metrics_set(pl->m, PB_M_READY, "", ready);
	}
	pb_metrics_set(pl->m, PB_M_IN_FLIGHT, "", (double)pl->alive);
	update_lag(pl);
}

static bool all_eof(pb_pipeline_t *pl)
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

/* A commit refused because the group went on to a new generation without
 * this worker's offsets (a member left or joined while it finished). */
static bool group_moved_on(rd_kafka_resp_err_t e)
{
	return e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
	       e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
	       e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS;
}

/* The final commit was refused (group_moved_on). The offsets count once
 * the coordinator assigns the partitions again: serve the rebalance,
 * paused, until an assignment arrives or the shutdown budget ends; the
 * assignment carries the offsets (carry_offsets) and they are committed.
 * Partitions that go to another member are redone there, as duplicates. */
static rd_kafka_resp_err_t commit_after_rejoin(pb_pipeline_t *pl,
					       int64_t deadline,
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
	while (pl->assigns == seen && pb_mono_ms() < deadline) {
		rd_kafka_message_t *m[64];
		ssize_t n = rd_kafka_consume_batch_queue(pl->cq, 100, m, 64);
		/* paused; a record that still arrives is not taken, and its
		 * offset is never stored */
		for (ssize_t i = 0; i < n; i++)
			rd_kafka_message_destroy(m[i]);
	}
	if (pl->assigns == seen)
		return cerr;
	return rd_kafka_commit(pl->consumer, NULL, 0);
}

/* Learn where the outcome topics live before the first event. Without it
 * librdkafka holds the first outcomes until it has fetched the topic's
 * metadata (about 0.5 s measured), every later event of those orders waits
 * behind them, and the first second's latency rose to 600-800 ms
 * (docs/benchmarks.md). Not fatal: the producer still learns it on first
 * use. */
static void learn_outcome_topics(pb_pipeline_t *pl)
{
	const char *topics[] = {pl->cfg->topic_results, pl->cfg->topic_dlq};
	for (size_t i = 0; i < 2; i++) {
		rd_kafka_topic_t *rkt =
		    rd_kafka_topic_new(pl->producer, topics[i], NULL);
		if (!rkt)
			continue;
		const struct rd_kafka_metadata *md = NULL;
		rd_kafka_resp_err_t err = rd_kafka_metadata(
		    pl->producer, 0, rkt, &md, METADATA_WAIT_MS);
		if (!err && md->topic_cnt == 1 && md->topics[0].err)
			err = md->topics[0].err;
		if (err)
			pb_log(
			    PB_LOG_WARN,
			    "cannot learn the outcome topic's "
			    "partitions yet; check that it exists, the first "
			    "outcomes wait for it",
			    "topic", topics[i], "error", rd_kafka_err2str(err),
			    NULL);
		if (md)
			rd_kafka_metadata_destroy(md);
		rd_kafka_topic_destroy(rkt);
	}
}

/* A fatal error of either Kafka client (rd_kafka_fatal_error): retrying
 * cannot heal it, the worker stops (exit 1, pb_pipeline_run). */
static bool kafka_fatal(pb_pipeline_t *pl)
{
	if (!pl->fatal &&
	    rd_kafka_fatal_error(pl->producer, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
		producer_fatal(pl, pl->producer);
	if (!pl->fatal &&
	    rd_kafka_fatal_error(pl->consumer, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
		producer_fatal(pl, pl->consumer);
	return pl->fatal;
}

pb_err_t pb_pipeline_run(pb_pipeline_t *pl, char *errstr, size_t errstr_size)
{
	const pb_config_t *c = pl->cfg;
	rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(2);
	rd_kafka_topic_partition_list_add(topics, c->topic_orders, RD_KAFKA_PARTITION_UA);
	rd_kafka_topic_partition_list_add(topics, c->topic_inbound, RD_KAFKA_PARTITION_UA);
	learn_outcome_topics(pl);
	rd_kafka_resp_err_t kerr = rd_kafka_subscribe(pl->consumer, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (kerr)
		return pb_errf(errstr, errstr_size, PB_ERR_KAFKA,
			       "cannot subscribe: %s", rd_kafka_err2str(kerr));
	pb_log(PB_LOG_INFO, "consuming", "orders", c->topic_orders, "inbound",
	       c->topic_inbound, "results", c->topic_results, "worker",
	       pl->worker_id, NULL);
	int64_t last_progress = pb_mono_ms();
	while (!*pl->opts.stop_flag && !kafka_fatal(pl)) {
		step(pl, true, 100);
		if (pl->opts.exit_on_eof && pl->alive == 0 && all_eof(pl) &&
		    rd_kafka_outq_len(pl->producer) == 0 && pl->pubmarks_len == 0)
			break;
		if (pb_mono_ms() - last_progress >= 10000) {
			char a[32], q[32];
			snprintf(a, sizeof(a), "%zu", pl->alive);
			snprintf(q, sizeof(q), "%zu", pb_pusher_pending(pl->pusher));
			pb_log(PB_LOG_INFO, "progress", "events_held", a,
			       "pushes_pending", q, NULL);
			last_progress = pb_mono_ms();
		}
	}
	/* Stop: no new events; finish what is held within the grace period. */
	pb_log(PB_LOG_INFO, *pl->opts.stop_flag ? "stopping: finishing in-flight events"
						: "all partitions consumed; finishing",
	       NULL);
	set_paused(pl, true);
	pb_pusher_flush(pl->pusher);
	int64_t deadline = pb_mono_ms() + c->worker_shutdown_grace_ms;
	while (pl->alive > 0 && pb_mono_ms() < deadline && !kafka_fatal(pl)) {
		pb_pusher_flush(pl->pusher);
		step(pl, false, 10);
	}
	/* the grace period is spent: a revoke from here on (the close, a
	 * rejoin) hands back what is held instead of waiting again */
	pl->stopping = true;
	rd_kafka_flush(pl->producer, 5000);
	rd_kafka_poll(pl->producer, 0);
	pubmark_stage(pl);
	if (pl->alive > 0) {
		char n[32];
		snprintf(n, sizeof(n), "%zu", pl->alive);
		pb_log(PB_LOG_WARN, "grace period over; unfinished events are "
		       "handed back and will be redone by the next owner",
		       "events", n, NULL);
	}
	rd_kafka_resp_err_t cerr = rd_kafka_commit(pl->consumer, NULL, 0);
	if (group_moved_on(cerr))
		cerr = commit_after_rejoin(pl, deadline, cerr);
	if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
		pb_log(PB_LOG_WARN, "final commit failed", "error",
		       rd_kafka_err2str(cerr), NULL);
	char fw[32];
	snprintf(fw, sizeof(fw), "%" PRIu64, pb_fetchwake_count(pl->wake));
	pb_fetchwake_destroy(pl->wake);
	pl->wake = NULL;
	rd_kafka_consumer_close(pl->consumer);
	char rt[32]; /* Redis round trips made, read by bench/ */
	snprintf(rt, sizeof(rt), "%" PRIu64, pb_state_round_trips(pl->state));
	pb_log(PB_LOG_INFO, "stopped", "redis_round_trips", rt, "fetch_wakeups",
	       fw, NULL);
	if (pl->fatal)
		return pb_errf(errstr, errstr_size, PB_ERR_KAFKA, "%s",
			       pl->fatal_msg);
	return PB_OK;
}

/* ---- construction ----------------------------------------------------------- */

static pb_err_t conf_set(rd_kafka_conf_t *kc, const char *k, const char *v,
			 char *errstr, size_t errstr_size)
{
	char e[512];
	if (rd_kafka_conf_set(kc, k, v, e, sizeof(e)) != RD_KAFKA_CONF_OK)
		return pb_errf(errstr, errstr_size, PB_ERR_CONFIG, "%s: %s", k, e);
	return PB_OK;
}

/* A numeric property of rk's configuration, as in effect (dflt when it
 * cannot be read). */
static double conf_number(rd_kafka_t *rk, const char *name, int64_t dflt)
{
	char v[64];
	size_t n = sizeof(v);
	int64_t x = dflt;
	if (rd_kafka_conf_get(rd_kafka_conf(rk), name, v, &n) !=
		RD_KAFKA_CONF_OK ||
	    !pb_parse_i64(v, &x))
		x = dflt;
	return (double)x;
}

/* @locality: inside rd_kafka_poll / rd_kafka_consumer_poll on the
 * pipeline thread. Returns 0: librdkafka frees json. */
static int on_kafka_stats(rd_kafka_t *rk, char *json, size_t len,
			  void *opaque)
{
	pb_pipeline_t *pl = opaque;
	(void)rk;
	pb_kstats_update(pl->m, json, len);
	return 0;
}

static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac,
			 const char *buf)
{
	(void)rk;
	pb_log(level <= 3 ? PB_LOG_ERROR : level <= 4 ? PB_LOG_WARN : level <= 6 ? PB_LOG_INFO : PB_LOG_DEBUG,
	       buf, "component", "librdkafka", "facility", fac, NULL);
}

/* A cooperative-sticky assignor set explicitly on a librdkafka that
 * aborts with it when closed before the first assignment (kafka_conf.h). */
static void warn_assignor(rd_kafka_conf_t *cc)
{
	char v[256];
	size_t n = sizeof(v);
	if (rd_kafka_version() >= PB_KAFKA_COOPERATIVE_MIN_VERSION ||
	    rd_kafka_conf_get(cc, "partition.assignment.strategy", v, &n) !=
		RD_KAFKA_CONF_OK ||
	    !strstr(v, "cooperative-sticky"))
		return;
	pb_log(PB_LOG_WARN,
	       "partition.assignment.strategy cooperative-sticky on a "
	       "librdkafka older than 2.3.0 can abort the worker when it stops "
	       "before its first assignment; remove the setting (the default "
	       "is range,roundrobin there) or upgrade librdkafka",
	       "librdkafka", rd_kafka_version_str(), NULL);
}

pb_err_t pb_pipeline_new(const pb_config_t *cfg, pb_metrics_t *metrics,
			 const pb_pipeline_opts_t *opts, pb_pipeline_t **out,
			 char *errstr, size_t errstr_size)
{
	pb_err_t err = PB_OK;
	pb_pipeline_t *pl = calloc(1, sizeof(*pl));
	if (!pl)
		return PB_ERR_NOMEM;
	pl->ready_metric = -1;
	pl->cfg = cfg;
	pl->m = metrics;
	pl->opts = *opts;
	pl->redis_up = true;
	pl->cq_fds[0] = pl->cq_fds[1] = pl->pq_fds[0] = pl->pq_fds[1] = -1;
	char host[32] = "host";
	gethostname(host, sizeof(host) - 1);
	snprintf(pl->worker_id, sizeof(pl->worker_id), "%s/%d", host, (int)getpid());
	atomic_store(&pl->ready_redis, 1);
	atomic_store(&pl->ready_kafka, 1);
	atomic_store(&pl->heartbeat_ms, pb_mono_ms());
	pl->auto_admin = calloc(cfg->accounts_len + 1, sizeof(int));
	if (!pl->auto_admin) {
		err = PB_ERR_NOMEM;
		goto fail;
	}
	for (size_t i = 0; i < cfg->accounts_len; i++)
		pl->auto_admin[i] = -1;
	pl->push_keys = calloc(cfg->accounts_len + 1, sizeof(char *));
	if (!pl->push_keys) {
		err = PB_ERR_NOMEM;
		goto fail;
	}
	for (size_t i = 0; i < cfg->accounts_len; i++)
		if (cfg->accounts[i].push_key_learned)
			atomic_fetch_add(&pl->keys_missing, 1);
	if (pb_orderq_new(&pl->orders)) {
		err = PB_ERR_NOMEM;
		goto fail;
	}

	err = pb_state_new_config(cfg, 2000, &pl->state, errstr, errstr_size);
	if (err)
		goto fail;
	err = pb_pusher_new(cfg, metrics, on_pushed, pl, &pl->pusher, errstr,
			    errstr_size);
	if (err)
		goto fail;

	/* consumer */
	rd_kafka_conf_t *cc = rd_kafka_conf_new();
	err = conf_set(cc, "group.id", "pruvan-bridge", errstr, errstr_size);
	if (!err) /* before the file's own, which may change or disable it */
		err = conf_set(cc, "statistics.interval.ms",
			       PB_KSTATS_DEFAULT_INTERVAL_MS, errstr, errstr_size);
	if (!err)
		err = conf_set(cc, "auto.offset.reset", "earliest", errstr, errstr_size);
	if (!err)
		err = conf_set(cc, "partition.assignment.strategy",
			       pb_kafka_default_assignor(rd_kafka_version()),
			       errstr, errstr_size);
	if (!err)
		err = conf_set(cc, "auto.commit.interval.ms", "1000", errstr, errstr_size);
	/* Memory and latency (docs/benchmarks.md). librdkafka prefetches up
	 * to 64 MB per partition by default; 2 MB still holds several
	 * thousand events, a tenth of a second at the rate one worker
	 * handles. A queue over the limit is fetched again only when the
	 * broker thread wakes, which the fetch waker sees to (wake_fetcher).
	 * A broker that holds an empty fetch for fetch.wait.max.ms (500 by
	 * default) delays the next events by up to that much. */
	if (!err)
		err = conf_set(cc, "queued.max.messages.kbytes", "2048", errstr, errstr_size);
	if (!err)
		err = conf_set(cc, "fetch.wait.max.ms", "50", errstr, errstr_size);
	/* librdkafka 2.2 and later hold a partition whose queue went over the
	 * limit for fetch.queue.backoff.ms (1000 by default) whatever wakes
	 * the broker thread, the same one-second stall the fetch waker ends
	 * on older versions: there it is made short. Versions that do not
	 * know the property answer RD_KAFKA_CONF_UNKNOWN and keep the waker
	 * alone. */
	if (!err) {
		char e[512];
		if (rd_kafka_conf_set(cc, "fetch.queue.backoff.ms", "20", e,
				      sizeof(e)) == RD_KAFKA_CONF_INVALID)
			err = pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
				      "fetch.queue.backoff.ms: %s", e);
	}
	/* a 50 MB fetch (8 partitions x 1 MB, decompressed) doubled the
	 * resident size for the first seconds of a backlog */
	if (!err)
		err = conf_set(cc, "fetch.max.bytes", "2097152", errstr, errstr_size);
	if (!err)
		err = conf_set(cc, "max.partition.fetch.bytes", "262144", errstr, errstr_size);
	if (!err)
		err = pb_kafka_conf_apply(cfg, cc, PB_KAFKA_GROUP_CONSUMER, errstr,
					  errstr_size);
	/* not overridable: they carry the at-least-once guarantee */
	if (!err)
		err = conf_set(cc, "enable.auto.offset.store", "false", errstr, errstr_size);
	if (!err)
		err = conf_set(cc, "enable.auto.commit", "true", errstr, errstr_size);
	if (!err)
		err = conf_set(cc, "enable.partition.eof", opts->exit_on_eof ? "true" : "false", errstr, errstr_size);
	if (err) {
		rd_kafka_conf_destroy(cc);
		goto fail;
	}
	warn_assignor(cc);
	rd_kafka_conf_set_opaque(cc, pl);
	rd_kafka_conf_set_rebalance_cb(cc, on_rebalance);
	rd_kafka_conf_set_log_cb(cc, on_kafka_log);
	rd_kafka_conf_set_stats_cb(cc, on_kafka_stats);
	char kerr[512];
	pl->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, kerr, sizeof(kerr));
	if (!pl->consumer) {
		rd_kafka_conf_destroy(cc);
		err = pb_errf(errstr, errstr_size, PB_ERR_KAFKA,
			      "cannot create the Kafka consumer: %s", kerr);
		goto fail;
	}
	rd_kafka_poll_set_consumer(pl->consumer);
	pl->cq = rd_kafka_queue_get_consumer(pl->consumer);
	pl->prefetch_max_bytes =
	    conf_number(pl->consumer, "queued.max.messages.kbytes", 2048) *
	    1024;
	pl->prefetch_max_msgs =
	    conf_number(pl->consumer, "queued.min.messages", 100000);
	pl->avg_record = 256;
	err = pb_fetchwake_new(pl->consumer, &pl->wake, errstr, errstr_size);
	if (err)
		goto fail;

	/* producer */
	rd_kafka_conf_t *pc = rd_kafka_conf_new();
	err = conf_set(pc, "linger.ms", "5", errstr, errstr_size);
	if (!err)
		err = conf_set(pc, "statistics.interval.ms",
			       PB_KSTATS_DEFAULT_INTERVAL_MS, errstr, errstr_size);
	if (!err)
		err = pb_kafka_conf_apply(cfg, pc, PB_KAFKA_PRODUCER, errstr,
					  errstr_size);
	if (!err)
		err = conf_set(pc, "enable.idempotence", "true", errstr, errstr_size);
	if (err) {
		rd_kafka_conf_destroy(pc);
		goto fail;
	}
	rd_kafka_conf_set_opaque(pc, pl);
	rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
	rd_kafka_conf_set_log_cb(pc, on_kafka_log);
	rd_kafka_conf_set_stats_cb(pc, on_kafka_stats);
	pl->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, kerr, sizeof(kerr));
	if (!pl->producer) {
		rd_kafka_conf_destroy(pc);
		err = pb_errf(errstr, errstr_size, PB_ERR_KAFKA,
			      "cannot create the Kafka producer: %s", kerr);
		goto fail;
	}
	/* every record written is bounded by what the producer takes (an
	 * outcome's large parts truncated, a DLQ copy cut, produce.h) */
	pl->record_max = pb_produce_record_max(
	    (int64_t)conf_number(pl->producer, "message.max.bytes", 1000000));

	/* let Kafka queues wake the loop's poll (one loop, no busy wait) */
	if (pipe(pl->cq_fds) || pipe(pl->pq_fds)) {
		err = pb_errf(errstr, errstr_size, PB_ERR_IO, "pipe: %s",
			      strerror(errno));
		goto fail;
	}
	int all_fds[4] = {pl->cq_fds[0], pl->cq_fds[1], pl->pq_fds[0],
			  pl->pq_fds[1]};
	for (int i = 0; i < 4; i++)
		fcntl(all_fds[i], F_SETFL, fcntl(all_fds[i], F_GETFL) | O_NONBLOCK);
	rd_kafka_queue_io_event_enable(pl->cq, pl->cq_fds[1], "1", 1);
	rd_kafka_queue_t *pq = rd_kafka_queue_get_main(pl->producer);
	rd_kafka_queue_io_event_enable(pq, pl->pq_fds[1], "1", 1);
	rd_kafka_queue_destroy(pq);
	*out = pl;
	return PB_OK;
fail:
	pb_pipeline_destroy(pl);
	return err ? err : PB_ERR_NOMEM;
}

static void free_waiting_task(pb_orderq_link_t *l, void *opaque)
{
	task_free(opaque, task_of(l));
}

void pb_pipeline_destroy(pb_pipeline_t *pl)
{
	if (!pl)
		return;
	stages_discard(pl);
	/* pushes still on the wire (the grace period ran out) are abandoned
	 * with the pusher; no answer comes to free their events, so free
	 * them here. A task whose push is out holds its order without
	 * waiting in it; the order queues are freed below. */
	pb_push_job_t *j = pb_pusher_destroy(pl->pusher);
	pl->pusher = NULL;
	while (j) {
		pb_push_job_t *nx = j->next;
		task_t *t = j->opaque;
		t->order.key = NULL;
		task_free(pl, t);
		j = nx;
	}
	tlist_t *lists[] = {&pl->ready, &pl->to_record, &pl->to_publish,
			    &pl->lingering};
	for (size_t li = 0; li < 4; li++) {
		task_t *t;
		while ((t = tl_pop(lists[li])))
			task_free(pl, t);
	}
	/* tasks still waiting behind their order are freed with the queues;
	 * outcomes still in the producer are unlinked from them */
	pb_orderq_destroy(pl->orders, free_waiting_task, pl);
	pl->orders = NULL;
	if (pl->cq) {
		rd_kafka_queue_io_event_enable(pl->cq, -1, NULL, 0);
		rd_kafka_queue_destroy(pl->cq);
	}
	for (part_t *p = pl->parts; p; p = p->next)
		p->assigned = false; /* late delivery reports store no offset */
	pb_fetchwake_destroy(pl->wake);
	if (pl->consumer)
		rd_kafka_destroy(pl->consumer);
	if (pl->producer) {
		rd_kafka_flush(pl->producer, 1000);
		rd_kafka_destroy(pl->producer);
	}
	for (int i = 0; i < 2; i++) {
		if (pl->cq_fds[i] >= 0)
			close(pl->cq_fds[i]);
		if (pl->pq_fds[i] >= 0)
			close(pl->pq_fds[i]);
	}
	part_t *p = pl->parts;
	while (p) {
		part_t *nx = p->next;
		pb_track_destroy(p->track);
		free(p->topic);
		free(p);
		p = nx;
	}
	pubmarks_drop(pl, pl->pubmarks_len);
	free(pl->pubmarks);
	pb_state_destroy(pl->state);
	free(pl->auto_admin);
	for (size_t i = 0; pl->push_keys && i < pl->cfg->accounts_len; i++)
		free(pl->push_keys[i]);
	free(pl->push_keys);
	free(pl->body_out);
	free(pl);
}

/* ---- probes ----------------------------------------------------------------- */

bool pb_pipeline_alive(void *opaque, char *reason, size_t reason_size)
{
	pb_pipeline_t *pl = opaque;
	int64_t age = pb_mono_ms() - atomic_load(&pl->heartbeat_ms);
	if (age > 30000) {
		snprintf(reason, reason_size, "worker loop stalled for %" PRId64 " ms", age);
		return false;
	}
	return true;
}

bool pb_pipeline_ready(void *opaque, char *reason, size_t reason_size)
{
	pb_pipeline_t *pl = opaque;
	if (!atomic_load(&pl->ready_redis)) {
		snprintf(reason, reason_size, "redis unreachable");
		return false;
	}
	if (!atomic_load(&pl->ready_kafka)) {
		snprintf(reason, reason_size, "kafka unreachable");
		return false;
	}
	int missing = atomic_load(&pl->keys_missing);
	if (missing > 0) {
		int first = atomic_load(&pl->key_missing_first);
		snprintf(reason, reason_size,
			 "no PushKey yet for account %s%s: its events wait "
			 "until Pruvan's validate call delivers one",
			 first >= 0 && (size_t)first < pl->cfg->accounts_len
				 ? pl->cfg->accounts[first].name
				 : "?",
			 missing > 1 ? " (and others)" : "");
		return false;
	}
	int open = atomic_load(&pl->ready_circuits);
	if (open > 0 && (size_t)open >= (pl->cfg->accounts_len + 1) / 2) {
		snprintf(reason, reason_size, "circuit open for %d accounts", open);
		return false;
	}
	return true;
}
