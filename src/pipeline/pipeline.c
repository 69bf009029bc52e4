/*
 * pipeline.c: the worker loop (see pipeline.h for the guarantees and
 * docs/architecture.md for the modules).
 *
 * pb_pipeline_run subscribes, then turns pl_step until the stop flag is
 * set: consume a batch, run the Redis stages (taking the batch in while
 * Redis works), publish, poll the producer, and wait on every socket at
 * once (Pruvan, the consumer and producer queues, Redis). Stopping drains
 * what is held within the grace period, marks and commits.
 *
 * Must never: block on one request, or busy-wait.
 */
#include "pipeline_internal.h"

/* how long the start waits for an outcome topic's partitions */
#define METADATA_WAIT_MS 2000

static void drain_fd(int fd)
{
	char buf[64];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* Take up to what maxPending leaves room for from the consumer's queue
 * into msgs; the count. Pauses and resumes the partitions on the way.
 *
 * Full (maxPending events held): stop taking messages and let librdkafka's
 * bounded prefetch queue hold the rest. Pausing the partitions drops that
 * queue and costs a re-fetch on resume, which at a full pipeline happened
 * every few milliseconds; so pause only when Redis is down or the pipeline
 * stayed full for FULL_PAUSE_MS (a Pruvan outage), which keeps polling the
 * consumer within max.poll.interval.ms. */
static size_t consume_batch(pb_pipeline_t *pl, rd_kafka_message_t **msgs)
{
	size_t max = (size_t)pl->cfg->worker_max_pending;
	bool full = pl->alive >= max;
	int64_t now = pb_mono_ms();
	if (!full)
		pl->full_since = 0;
	else if (!pl->full_since)
		pl->full_since = now;
	bool pause =
	    !pl->redis_up || (full && now - pl->full_since >= FULL_PAUSE_MS);
	bool resume = pl->redis_up && pl->alive < max * 3 / 4;
	if (pause)
		pl_set_paused(pl, true);
	else if (resume)
		pl_set_paused(pl, false);
	size_t room = full ? 0 : max - pl->alive;
	if (room > CONSUME_BATCH || pl->paused_all)
		room = CONSUME_BATCH;
	pl_wake_fetcher(pl); /* before: arms it, after: wakes */
	ssize_t n =
	    room ? rd_kafka_consume_batch_queue(pl->cq, 0, msgs, room) : 0;
	pl_wake_fetcher(pl);
	return n > 0 ? (size_t)n : 0;
}

/* How long the turn may wait (at most wait_ms); *busy when there is work
 * now, so the wait is 0. */
static int wait_budget(pb_pipeline_t *pl, bool consume, int wait_ms, bool *busy)
{
	int pub_wait = pl_publish_wait_ms(pl);
	*busy = pub_wait == 0 ||
		(pl_stage_wanted(pl) && pl->stages.nflights < MAX_FLIGHTS);
	if (pub_wait > 0 && pub_wait < wait_ms)
		wait_ms = pub_wait;
	/* records left in the consumer's queue wake nobody: the queue
	 * signals its fd only when it turns non-empty */
	if (consume && !pl->paused_all &&
	    pl->alive < (size_t)pl->cfg->worker_max_pending &&
	    rd_kafka_queue_length(pl->cq) > 0)
		*busy = true;
	if (*busy && (pl->redis_up || pl_redis_may_try(pl)))
		wait_ms = 0;
	/* a revoke this turn's consume recorded: end the turn, so that its
	 * drain (pl_revoke_drain, whose own turns wait) starts at once; the
	 * whole group waits for it */
	if (consume && pl->revoking)
		wait_ms = 0;
	if (!pl->redis_up && !*busy) {
		int64_t d = pl->redis_retry_at - pb_mono_ms();
		if (d >= 0 && d < wait_ms)
			wait_ms = (int)d;
	}
	return wait_ms;
}

/* Wait for network activity: Pruvan answers (the pusher's sockets), a
 * Kafka message or a delivery report (their queues write to these pipes),
 * and the replies of a stage in flight. */
static void wait_sockets(pb_pipeline_t *pl, bool consume, int wait_ms)
{
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
}

/* An idle worker still probes Redis: every second while it is up
 * (readiness notices it going away, Auto-Admin switches reach the
 * metrics), on the backoff schedule while it is down. */
static void probe_redis(pb_pipeline_t *pl)
{
	bool probe = pl->redis_up ? pb_mono_ms() - pl->redis_ok_at >= 1000
				  : pl_redis_may_try(pl);
	if (!probe)
		return;
	char err[256];
	pl_stage_settle(pl);
	int64_t started = pb_mono_ms();
	if (pb_state_ping(pl->state, err, sizeof(err)) == PB_OK) {
		pl_redis_ok(pl, started);
		pl_refresh_auto_admin(pl);
	} else {
		pl_redis_failed(pl, "ping", err);
	}
}

/* What the ops thread and the metrics read about the loop. */
static void update_probes(pb_pipeline_t *pl)
{
	int open = pb_pusher_circuits_open(pl->pusher);
	atomic_store(&pl->ready_circuits, open);
	char why[128];
	int ready = pb_pipeline_ready(pl, why, sizeof(why));
	if (ready != pl->ready_metric) {
		pl->ready_metric = ready;
		pb_metrics_set(pl->m, PB_M_READY, "", ready);
	}
	pb_metrics_set(pl->m, PB_M_IN_FLIGHT, "", (double)pl->alive);
	pl_update_lag(pl);
}

/* One turn of the loop; consume false takes no new record (stopping,
 * draining a revoke), which also means no rebalance callback runs here
 * (librdkafka serves those from the consume call only). */
void pl_step(pb_pipeline_t *pl, bool consume, int wait_ms)
{
	atomic_store(&pl->heartbeat_ms, pb_mono_ms());
	rd_kafka_message_t *msgs[CONSUME_BATCH];
	overlap_t ov = {msgs, consume ? consume_batch(pl, msgs) : 0};
	/* the records just consumed are taken in while Redis works */
	pl_redis_stage(pl, &ov);
	pl_publish_stage(pl);
	rd_kafka_poll(pl->producer, 0);
	bool busy;
	wait_ms = wait_budget(pl, consume, wait_ms, &busy);
	wait_sockets(pl, consume, wait_ms);
	rd_kafka_poll(pl->producer, 0);
	pl_redis_stage(pl, NULL);
	pl_publish_stage(pl);
	if (!busy)
		probe_redis(pl);
	update_probes(pl);
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
	if (!pl->fatal && rd_kafka_fatal_error(pl->producer, NULL, 0) !=
			      RD_KAFKA_RESP_ERR_NO_ERROR)
		pl_producer_fatal(pl, pl->producer);
	if (!pl->fatal && rd_kafka_fatal_error(pl->consumer, NULL, 0) !=
			      RD_KAFKA_RESP_ERR_NO_ERROR)
		pl_producer_fatal(pl, pl->consumer);
	return pl->fatal;
}

static pb_err_t subscribe(pb_pipeline_t *pl, char *errstr, size_t errstr_size)
{
	const pb_config_t *c = pl->cfg;
	rd_kafka_topic_partition_list_t *topics =
	    rd_kafka_topic_partition_list_new(2);
	rd_kafka_topic_partition_list_add(topics, c->topic_orders,
					  RD_KAFKA_PARTITION_UA);
	rd_kafka_topic_partition_list_add(topics, c->topic_inbound,
					  RD_KAFKA_PARTITION_UA);
	learn_outcome_topics(pl);
	rd_kafka_resp_err_t kerr = rd_kafka_subscribe(pl->consumer, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (kerr)
		return pb_errf(errstr, errstr_size, PB_ERR_KAFKA,
			       "cannot subscribe: %s: check the topics exist "
			       "and the worker may read them",
			       rd_kafka_err2str(kerr));
	pb_log(PB_LOG_INFO, "consuming", "orders", c->topic_orders, "inbound",
	       c->topic_inbound, "results", c->topic_results, "worker",
	       pl->worker_id, NULL);
	return PB_OK;
}

/* With exit_on_eof: everything consumed, published and marked. */
static bool all_done(pb_pipeline_t *pl)
{
	return pl->opts.exit_on_eof && pl->alive == 0 && pl_all_eof(pl) &&
	       rd_kafka_outq_len(pl->producer) == 0 &&
	       pl->stages.pubmarks_len == 0;
}

static void log_progress(pb_pipeline_t *pl)
{
	char a[32], q[32];
	snprintf(a, sizeof(a), "%zu", pl->alive);
	snprintf(q, sizeof(q), "%zu", pb_pusher_pending(pl->pusher));
	pb_log(PB_LOG_INFO, "progress", "events_held", a, "pushes_pending", q,
	       NULL);
}

/* Finish what is held within the grace period (no new events), then hand
 * the rest back; deadline is when the grace period ends. */
static void drain_held(pb_pipeline_t *pl, int64_t deadline)
{
	pl_set_paused(pl, true);
	pb_pusher_flush(pl->pusher);
	while (pl->alive > 0 && pb_mono_ms() < deadline && !kafka_fatal(pl)) {
		pb_pusher_flush(pl->pusher);
		pl_step(pl, false, 10);
		/* the group may rebalance meanwhile (another member left or
		 * joined): its callbacks are served, and a revoke is finished
		 * within the same grace period. Left unserved, librdkafka's
		 * close finds the assignment still changing and aborts
		 * (rd_kafka_cgrp_terminated: assignment in progress). */
		pl_serve_group(pl, 0);
		if (pl->revoking && pl->revoke_deadline > deadline)
			pl->revoke_deadline = deadline;
		pl_revoke_drain(pl);
	}
	/* the grace period is spent: a revoke from here on (the close, a
	 * rejoin) hands back what is held instead of waiting again */
	pl->stopping = true;
	/* and one still recorded is finished now: librdkafka holds the
	 * rebalance until it is, and rd_kafka_consumer_close would wait for
	 * it forever */
	pl_revoke_drain(pl);
	/* half of what is left: the commit and the group leave follow */
	rd_kafka_flush(pl->producer, pl_kafka_wait_ms(pl) / 2);
	rd_kafka_poll(pl->producer, 0);
	pl_pubmark_stage(pl);
	if (pl->alive > 0) {
		char n[32];
		snprintf(n, sizeof(n), "%zu", pl->alive);
		pb_log(PB_LOG_WARN,
		       "grace period over; unfinished events are "
		       "handed back and will be redone by the next owner",
		       "events", n, NULL);
	}
}

/* Close the consumer through its own queue, served here until it is
 * closed: a rebalance already queued on it when the close begins reaches
 * the callback too. (rd_kafka_consumer_close waits on a queue of its own
 * and leaves it unserved; librdkafka 2.0.2 then aborts in
 * rd_kafka_cgrp_terminated, "assignment in progress".) Bounded by exit_by,
 * so that a close that never completes (no broker reachable) cannot keep
 * the worker from exiting. */
static void consumer_close_served(pb_pipeline_t *pl)
{
	rd_kafka_error_t *e =
	    rd_kafka_consumer_close_queue(pl->consumer, pl->cq);
	if (!e) {
		int64_t until = pb_mono_ms() + pl_kafka_wait_ms(pl);
		while (!rd_kafka_consumer_closed(pl->consumer) &&
		       pb_mono_ms() < until)
			pl_serve_group(pl, 100);
		if (rd_kafka_consumer_closed(pl->consumer))
			return;
	}
	pb_log(PB_LOG_WARN,
	       "cannot leave the consumer group cleanly; the group "
	       "reassigns this worker's partitions after its session timeout",
	       "error", e ? rd_kafka_error_string(e) : "close timed out", NULL);
	if (e)
		rd_kafka_error_destroy(e);
}

/* The final commit, and the consumer closed. */
static void close_consumer(pb_pipeline_t *pl, int64_t deadline)
{
	rd_kafka_resp_err_t cerr =
	    pl_commit_within(pl->consumer, pl_kafka_wait_ms(pl));
	if (pl_group_moved_on(cerr))
		cerr = pl_commit_after_rejoin(pl, deadline, cerr);
	if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
		pb_log(PB_LOG_WARN, "final commit failed", "error",
		       rd_kafka_err2str(cerr), "what_to_do",
		       "check that the Kafka brokers are reachable; the next "
		       "owner of these partitions redoes the events since the "
		       "last commit (reported duplicate, not pushed again)",
		       NULL);
	char fw[32];
	snprintf(fw, sizeof(fw), "%" PRIu64, pb_fetchwake_count(pl->wake));
	pb_fetchwake_destroy(pl->wake);
	pl->wake = NULL;
	consumer_close_served(pl);
	char rt[32]; /* Redis round trips made, read by bench/ */
	snprintf(rt, sizeof(rt), "%" PRIu64, pb_state_round_trips(pl->state));
	pb_log(PB_LOG_INFO, "stopped", "redis_round_trips", rt, "fetch_wakeups",
	       fw, NULL);
}

pb_err_t pb_pipeline_run(pb_pipeline_t *pl, char *errstr, size_t errstr_size)
{
	pb_err_t err = subscribe(pl, errstr, errstr_size);
	if (err)
		return err;
	int64_t last_progress = pb_mono_ms();
	while (!*pl->opts.stop_flag && !kafka_fatal(pl)) {
		pl_step(pl, true, 100);
		pl_revoke_drain(pl); /* a revoke the turn received */
		if (all_done(pl))
			break;
		if (pb_mono_ms() - last_progress >= 10000) {
			log_progress(pl);
			last_progress = pb_mono_ms();
		}
	}
	pb_log(PB_LOG_INFO,
	       *pl->opts.stop_flag ? "stopping: finishing in-flight events"
				   : "all partitions consumed; finishing",
	       NULL);
	int64_t deadline = pb_mono_ms() + pl->cfg->worker_shutdown_grace_ms;
	pl->exit_by = deadline + PL_EXIT_SPARE_MS;
	drain_held(pl, deadline);
	close_consumer(pl, deadline);
	if (pl->fatal)
		return pb_errf(errstr, errstr_size, PB_ERR_KAFKA, "%s",
			       pl->fatal_msg);
	return PB_OK;
}

bool pb_pipeline_alive(void *opaque, char *reason, size_t reason_size)
{
	pb_pipeline_t *pl = opaque;
	int64_t age = pb_mono_ms() - atomic_load(&pl->heartbeat_ms);
	if (age > 30000) {
		snprintf(reason, reason_size,
			 "worker loop stalled for %" PRId64 " ms", age);
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
	/* ready means consuming (contract 8): a worker whose group never
	 * answered (Kafka unreachable from the start: no consumer error
	 * reaches the loop then) has not consumed anything yet */
	if (!atomic_load(&pl->ready_assigned)) {
		snprintf(reason, reason_size,
			 "not consuming yet: waiting for the consumer group's "
			 "assignment (check that Kafka is reachable)");
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
		snprintf(reason, reason_size, "circuit open for %d accounts",
			 open);
		return false;
	}
	return true;
}
