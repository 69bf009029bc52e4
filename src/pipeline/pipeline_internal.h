/*
 * pipeline_internal.h: what the pipeline's modules share (src/pipeline/).
 *
 * Private to src/pipeline/: the task (one consumed record on its way to
 * an outcome), the partition, the stage lists and struct pb_pipeline, and
 * the functions one module of the pipeline offers the others, named pl_*.
 * The public interface is pipeline.h; see docs/architecture.md for the
 * modules and the flow of one event through them.
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
 * applied when its replies are in (pl_redis_stage, stages.c). librdkafka's
 * prefetch is refilled as it drains (pl_wake_fetcher, fetchwake.h).
 *
 * Failure handling: Redis errors leave tasks where they are (nothing is
 * pushed without state, nothing is published before its effect is
 * recorded) and pause consumption until Redis answers again. Kafka
 * produce and delivery errors are handled per record by their class
 * (produce.h, publish.c): pause, back off, shrink or give up, or stop
 * on a fatal one; never a retry without a pause. Records rejected as they
 * are read are marked by topic/partition/offset (pl_task_mark_won) so
 * that a replay reports them duplicate. Events of revoked partitions are
 * drained within the grace budget by the loop (rebalance.c), then
 * abandoned (the next owner redoes them; the marks in Redis stop a double
 * push).
 *
 * Must never: commit an offset before its outcome is acknowledged, let a
 * later event of an order overtake an earlier one, log a PushKey; be
 * included outside src/pipeline/.
 */
#ifndef PB_PIPELINE_INTERNAL_H
#define PB_PIPELINE_INTERNAL_H

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
#include "outcome.h"
#include "log.h"
#include "produce.h"
#include "carry.h"
#include "record.h"
#include "pusher.h"
#include "rules.h"
#include "state.h"
#include "tracker.h"
#include "util.h"

#define CONSUME_BATCH 500
#define FULL_PAUSE_MS 10000
#define FETCH_BATCH   512
#define RECORD_BATCH  512
/* stages written to Redis and not applied yet (see pl_redis_stage) */
#define MAX_FLIGHTS	 3
#define PUBLISH_MARK_MAX 200000
/* The largest record value read as an event (the event parser's own limit,
 * 1 MiB); a larger one is rejected too_large, and only as much of it as a
 * DLQ copy can carry is kept. */
#define RECORD_INPUT_MAX PB_RULES_RECORD_MAX

enum { SRC_ORDERS = 0, SRC_INBOUND = 1 };
extern const char *const pl_src_names[2]; /* by SRC_* */

typedef struct part part_t;
typedef struct task task_t;

/* The two records a task may write, each its own delivery report: the
 * message opaque points at one of these (pl_on_delivery). */
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
	pb_outcome_t outcome;
	pb_reason_t reason;
	char message[600];
	bool record; /* write the mark (+ order) to Redis */
	bool write_order;
	bool set_created, set_deleted;
	const char *learn_key1;
	const char *deleted_key1;
	const char *recreated_key1;
	char *deleted_swo_id; /* owned: a deleted order's source ids */
	char *deleted_swo_number;
	char *won_k1; /* owned: the state's order name of an item with only
			 a key1 (task_state_won) */
	bool to_dlq;
	bool recovered; /* outcome taken from a mark left by a crash */
	/* publishing (pl_publish_stage, pl_on_delivery): the records still to
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
	/* revoked, its held events draining: no new record taken in */
	bool revoking;
	bool paused;
	part_t *next;
};

typedef struct {
	task_t *head, *tail;
	size_t n;
} tlist_t;

typedef struct {
	pb_state_ref_t ref;
	/* one allocation, owned by account; won and event_id point into it */
	char *account, *won, *event_id;
} pubmark_t;

/* One write to Redis whose replies the loop has not applied yet (see
 * pl_redis_stage). Stages take their tasks from the heads of the lists in the
 * order they are written: a stage's nrec records follow those of the
 * stages in flight before it in to_record, and likewise its nmark pending
 * marks and its nfetch fetches in ready. */
typedef struct {
	uint64_t seq;
	size_t nrec, nmark, nfetch;
	pb_state_view_t *views;
	pb_state_call_t crec, cmark, cfetch;
	int64_t spent_ms; /* the loop's time writing it */
	/* the last task it carries of to_record and of ready (NULL: none):
	 * where the next stage's part of each list starts */
	task_t *rec_last, *fetch_last;
} stage_t;

/* The Redis stages' own state (stages.c). */
typedef struct pl_stages {
	stage_t flights[MAX_FLIGHTS]; /* written, oldest first */
	size_t nflights;
	uint64_t stage_seq;   /* stages written */
	uint64_t applied_seq; /* stages applied (or given up) */
	/* "published" marks of acknowledged outcomes, not written yet */
	pubmark_t *pubmarks;
	size_t pubmarks_len, pubmarks_cap;
} pl_stages_t;

/* Publishing's own state (publish.c). */
typedef struct pl_publish {
	/* pl_publish_stage's pace: nothing before publish_hold_until (the
	 * producer's queue was full), the earliest retry due at
	 * publish_next_at */
	int64_t publish_hold_until, publish_next_at;
	/* per outcome topic (REC_*): a permanent error its metadata showed
	 * after a record timed out, and when it was asked (topic_refusal) */
	rd_kafka_resp_err_t refusal[2];
	int64_t refusal_at[2];
	/* the last push response body and its JSON text in outcome records:
	 * every event of a batch carries the same body */
	char body_src[sizeof(((pb_push_job_t *)0)->body_start)];
	char *body_out;
} pl_publish_t;

/* A counter series the loop updates per event, resolved once
 * (counters.c); key 0 is a free slot. */
#define PL_SERIES_SLOTS 1024
typedef struct {
	uint32_t key;
	pb_metrics_series_t *s;
} pl_series_slot_t;

struct pb_pipeline {
	const pb_config_t *cfg;
	pb_metrics_t *m;
	pb_pipeline_opts_t opts;
	rd_kafka_t *consumer;
	rd_kafka_t *producer;
	rd_kafka_topic_t *results_rkt; /* made on first use (publish.c) */
	rd_kafka_queue_t *cq;
	int cq_fds[2];
	int pq_fds[2];
	pb_state_t *state;
	pb_pusher_t *pusher;

	part_t *parts;
	pb_orderq_t *orders; /* per-order queues (orderq.h) */

	tlist_t ready, to_record, to_publish;
	pl_stages_t stages; /* stages.c */
	pl_publish_t pub;   /* publish.c */
	/* the largest record (key + value + headers) the producer takes
	 * (its message.max.bytes less framing, produce.h) */
	size_t record_max;
	/* freed tasks kept for the next ones consumed (pl_task_new): a task
	 * is a few KiB, made and freed once per event */
	task_t *task_pool;
	size_t task_pool_len;
	pl_series_slot_t series[PL_SERIES_SLOTS]; /* counters.c */
	/* the producer or consumer hit a fatal error: stop, exit 1 */
	bool fatal;
	char fatal_msg[1024];
	/* acknowledged tasks kept listed with their order while a stage
	 * written before their "published" mark is in flight (pl_task_finish)
	 */
	tlist_t lingering;
	size_t alive; /* tasks consumed and not finished */
	/* a revoke the loop has yet to finish (pl_revoke_drain): its
	 * partitions, owned, and when its grace budget ends; NULL: none */
	rd_kafka_topic_partition_list_t *revoking;
	int64_t revoke_deadline;
	bool stopping; /* the shutdown grace period is spent */
	/* being destroyed: a delivery report abandons its event */
	bool discarding;
	/* stopping: when the worker must be gone (the grace period's end
	 * plus PL_EXIT_SPARE_MS), bounding the last flush, commit and group
	 * leave; 0 while running */
	int64_t exit_by;
	uint64_t assigns; /* assignments received */

	int *auto_admin; /* per account: -1 configured, 0, 1 */
	int64_t auto_admin_at;
	/* per account: the PushKey learned from validate as last read from
	 * Redis (owned, SECRET), refreshed with the Auto-Admin switches */
	char **push_keys;
	/* per account: a learned PushKey not used (a URL off pruvan.apiUrl's
	 * origin), kept so that it is reported once (owned, SECRET) */
	char **push_keys_refused;
	_Atomic int keys_missing;      /* learned accounts still without one */
	_Atomic int key_missing_first; /* the first of them (account index) */

	bool redis_up;
	int64_t redis_retry_at;
	int redis_backoff_ms;
	bool paused_all;
	bool assigned_once;
	/* the fetch waker (pl_wake_fetcher): librdkafka's prefetch limits, the
	 * average record size seen, and whether the queue went over them */
	pb_fetchwake_t *wake;
	double prefetch_max_bytes, prefetch_max_msgs, avg_record;
	bool wake_armed;
	int64_t lag_at;
	int64_t full_since;  /* when alive reached maxPending; 0: not full */
	int ready_metric;    /* last value of PB_M_READY; -1 unset */
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

/* The loop's work that needs no Redis, done while Redis executes: see
 * pl_redis_stage. */
typedef struct {
	rd_kafka_message_t **msgs; /* consumed records to take in */
	size_t n;
} overlap_t;

/* The last key/value pair of a log line about t: its traceparent, or the
 * end of the list when it has none (pb_log stops at a NULL key). */
#define TRACEPARENT_KV(t)                                                      \
	((t)->traceparent[0] ? "traceparent" : NULL), (t)->traceparent

/* ---- task.c ---- */

/* The stage lists and the order queues' links, on every event's path:
 * inline, so that the split into files costs no call. */
static inline void pl_list_push(tlist_t *l, task_t *t)
{
	t->next = NULL;
	if (l->tail)
		l->tail->next = t;
	else
		l->head = t;
	l->tail = t;
	l->n++;
}

static inline task_t *pl_list_pop(tlist_t *l)
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

static inline task_t *pl_task_of(pb_orderq_link_t *l)
{
	return (task_t *)l; /* the link is a task's first member */
}
void pl_key_release(pb_pipeline_t *pl, task_t *t);
const task_t *pl_key_twin(const task_t *t);
/* The per-event counters: events consumed (by source and account) and
 * outcomes (by source, account, outcome and reason), acct NULL for an
 * account not configured ("unknown"). */
void pl_count_consumed(pb_pipeline_t *pl, int src, const pb_account_t *acct);
void pl_count_outcome(pb_pipeline_t *pl, int src, const pb_account_t *acct,
		      pb_outcome_t outcome, pb_reason_t reason);

/* A zeroed task (from the pool of freed ones when it has any), NULL when
 * out of memory; pl_task_pool_drain frees the pool. */
task_t *pl_task_new(pb_pipeline_t *pl);
void pl_task_pool_drain(pb_pipeline_t *pl);
void pl_task_free(pb_pipeline_t *pl, task_t *t);
const char *pl_task_account(const task_t *t);
const char *pl_task_won(const task_t *t);
const char *pl_task_event_id(const task_t *t);
const char *pl_task_mark_account(const task_t *t);
const char *pl_task_mark_won(const task_t *t);
const char *pl_task_mark_id(const task_t *t);
void pl_set_outcome(task_t *t, pb_outcome_t outcome, pb_reason_t reason,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A reason named by another module (rules, pusher, state): NULL is
 * PB_REASON_NONE, a name outside the table PB_REASON_INTERNAL. */
pb_reason_t pl_reason_of(const char *name);
/* The state API's and the logs' spelling of a reason: NULL for none. */
const char *pl_reason_name_or_null(pb_reason_t r);
/* Whether an event of source src (SRC_*) with this outcome gets a DLQ
 * copy: every failed one, rejected records that are not events and
 * rejected relayed items (contract section 2). Duplicates and recovered
 * outcomes never do (their first copy went there). */
bool pl_dlq_wanted(int src, pb_outcome_t o, pb_reason_t r);
void pl_task_finish(pb_pipeline_t *pl, task_t *t);
void pl_list_unlink(tlist_t *l, task_t *prev, task_t *t);

/* ---- offsets.c ---- */

part_t *pl_part_find(pb_pipeline_t *pl, const char *topic, int32_t p);
part_t *pl_part_get(pb_pipeline_t *pl, const char *topic, int32_t p);
void pl_store_offset(pb_pipeline_t *pl, part_t *p, int64_t offset);
int64_t pl_held_in(pb_pipeline_t *pl, rd_kafka_topic_partition_list_t *l);
rd_kafka_topic_partition_list_t *
pl_carry_offsets(pb_pipeline_t *pl, rd_kafka_t *rk,
		 rd_kafka_topic_partition_list_t *parts);
void pl_store_carried(pb_pipeline_t *pl,
		      rd_kafka_topic_partition_list_t *carried);
void pl_update_lag(pb_pipeline_t *pl);
bool pl_all_eof(pb_pipeline_t *pl);

/* What a worker stopping may spend after worker.shutdownGraceMs on its
 * last flush, commit and group leave: the deployment kills it 5 s after
 * (terminationGracePeriodSeconds 30 against a 25 s grace). */
#define PL_EXIT_SPARE_MS 4000
/* How long a commit of the stored offsets may wait while running. */
#define PL_COMMIT_WAIT_MS 10000
/* Commit the stored offsets (as rd_kafka_commit(rk, NULL, 0)) and wait at
 * most timeout_ms for the group coordinator's answer: librdkafka's own
 * synchronous commit waits without end, and defers the commit while no
 * coordinator is reachable (every broker down), which kept a stopping
 * worker from ever exiting. RD_KAFKA_RESP_ERR__TIMED_OUT when no answer
 * came in time: the commit may still be made later, and the caller takes
 * it as not made (the offsets are carried, or the next owner redoes the
 * events; their marks stop a second push). */
rd_kafka_resp_err_t pl_commit_within(rd_kafka_t *rk, int timeout_ms);
/* How long pl's next wait on Kafka (a commit; stopping, also the last
 * flush and the group leave) may last: PL_COMMIT_WAIT_MS, or, stopping,
 * what is left until exit_by if less (at least 100 ms). */
int pl_kafka_wait_ms(const pb_pipeline_t *pl);

/* ---- publish.c ---- */

void pl_publish_task(pb_pipeline_t *pl, task_t *t);
void pl_producer_fatal(pb_pipeline_t *pl, rd_kafka_t *rk);
void pl_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
void pl_publish_stage(pb_pipeline_t *pl);
int pl_publish_wait_ms(const pb_pipeline_t *pl);

/* ---- stages.c ---- */

void pl_pubmark_add(pb_pipeline_t *pl, task_t *t);
void pl_pubmarks_drop(pb_pipeline_t *pl, size_t n);
void pl_redis_failed(pb_pipeline_t *pl, const char *what, const char *err);
void pl_redis_ok(pb_pipeline_t *pl, int64_t started);
bool pl_redis_may_try(pb_pipeline_t *pl);
void pl_refresh_auto_admin(pb_pipeline_t *pl);
int pl_auto_admin_of(pb_pipeline_t *pl, const pb_account_t *a);
void pl_stages_discard(pb_pipeline_t *pl);
bool pl_stage_wanted(const pb_pipeline_t *pl);
void pl_redis_stage(pb_pipeline_t *pl, overlap_t *ov);
void pl_stage_settle(pb_pipeline_t *pl);
void pl_pubmark_stage(pb_pipeline_t *pl);

/* ---- decide.c ---- */

void pl_to_record(pb_pipeline_t *pl, task_t *t);
void pl_fetched(pb_pipeline_t *pl, task_t *t);
void pl_on_pushed(pb_push_job_t *job, void *opaque);

/* ---- consume.c ---- */

void pl_consume_one(pb_pipeline_t *pl, rd_kafka_message_t *m);
void pl_set_paused(pb_pipeline_t *pl, bool pause);
void pl_wake_fetcher(pb_pipeline_t *pl);

/* ---- rebalance.c ---- */

void pl_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
		     rd_kafka_topic_partition_list_t *parts, void *opaque);
void pl_revoke_drain(pb_pipeline_t *pl);
void pl_serve_group(pb_pipeline_t *pl, int wait_ms);
bool pl_group_moved_on(rd_kafka_resp_err_t e);
rd_kafka_resp_err_t pl_commit_after_rejoin(pb_pipeline_t *pl, int64_t deadline,
					   rd_kafka_resp_err_t cerr);

/* ---- pipeline.c ---- */

void pl_step(pb_pipeline_t *pl, bool consume, int wait_ms);

#endif
