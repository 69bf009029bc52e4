/*
 * build.c: building and destroying the pipeline: its Kafka clients, Redis
 * state, pusher and the pipes that let Kafka's queues wake the loop.
 *
 * The consumer's settings that carry the at-least-once guarantee
 * (enable.auto.offset.store=false, enable.auto.commit=true) are set after
 * the configuration's kafka section and cannot be overridden.
 *
 * Must never: leave a half-built pipeline behind (pb_pipeline_destroy
 * takes one).
 */
#include "pipeline_internal.h"

#include "kafka_client.h"

/* @locality: inside rd_kafka_poll / rd_kafka_consumer_poll on the
 * pipeline thread. Returns 0: librdkafka frees json. */
static int on_kafka_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	pb_pipeline_t *pl = opaque;
	(void)rk;
	pb_kstats_update(pl->m, json, len);
	return 0;
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

static void consumer_setup(rd_kafka_conf_t *kc, void *opaque)
{
	warn_assignor(kc);
	rd_kafka_conf_set_opaque(kc, opaque);
	rd_kafka_conf_set_rebalance_cb(kc, pl_on_rebalance);
	rd_kafka_conf_set_stats_cb(kc, on_kafka_stats);
}

/* The consumer's default fetch.max.bytes: 1 MB, or the section's
 * message.max.bytes when that is larger (librdkafka refuses a fetch below
 * it, and the worker would not start). buf holds the number written. */
static const char *fetch_max_default(const pb_config_t *cfg, char *buf,
				     size_t size)
{
	int64_t m = 0;
	const char *v = pb_config_kafka_get(cfg, "message.max.bytes");
	if (!v || !pb_parse_i64(v, &m) || m <= 1048576)
		return "1048576";
	snprintf(buf, size, "%lld", (long long)m);
	return buf;
}

static pb_err_t build_consumer(pb_pipeline_t *pl, char *errstr,
			       size_t errstr_size)
{
	char fetch_max[24];
	const pb_kafka_prop_t defaults[] = {
	    {"group.id", "pruvan-bridge", false},
	    /* before the file's own, which may change or disable it */
	    {"statistics.interval.ms", PB_KSTATS_DEFAULT_INTERVAL_MS, false},
	    {"auto.offset.reset", "earliest", false},
	    {"partition.assignment.strategy",
	     pb_kafka_default_assignor(rd_kafka_version()), false},
	    {"auto.commit.interval.ms", "1000", false},
	    /* Memory and latency (docs/benchmarks.md). librdkafka
	     * prefetches up to 64 MB per partition by default; 2 MB still
	     * holds several thousand events, a tenth of a second at the
	     * rate one worker handles. A queue over the limit is fetched
	     * again only when the broker thread wakes, which the fetch
	     * waker sees to (pl_wake_fetcher). A broker that holds an empty
	     * fetch for fetch.wait.max.ms (500 by default) delays the next
	     * events by up to that much. */
	    {"queued.max.messages.kbytes", "2048", false},
	    {"fetch.wait.max.ms", "50", false},
	    /* librdkafka 2.2 and later hold a partition whose queue went
	     * over the limit for fetch.queue.backoff.ms (1000 by default)
	     * whatever wakes the broker thread, the same one-second stall
	     * the fetch waker ends on older versions: there it is made
	     * short. Older versions do not know it and keep the waker
	     * alone. */
	    {"fetch.queue.backoff.ms", "20", true},
	    /* a 50 MB fetch (8 partitions x 1 MB, decompressed) doubled the
	     * resident size for the first seconds of a backlog. One fetch
	     * lands whole on top of the queue's limit above: a 2 MB lz4
	     * fetch held 8 decompressed 1 MiB message sets and 33,000
	     * message ops (320 bytes each), 18 MiB of the worker's 64 MiB
	     * peak; 1 MB per fetch halves that at the same throughput.
	     * fetch.max.bytes cannot go below message.max.bytes (1 MB by
	     * default), so the per-partition share is what is cut. */
	    {"fetch.max.bytes",
	     fetch_max_default(pl->cfg, fetch_max, sizeof(fetch_max)), false},
	    {"max.partition.fetch.bytes", "131072", false},
	};
	/* not overridable: they carry the at-least-once guarantee */
	const pb_kafka_prop_t fixed[] = {
	    {"enable.auto.offset.store", "false", false},
	    {"enable.auto.commit", "true", false},
	    {"enable.partition.eof", pl->opts.exit_on_eof ? "true" : "false",
	     false},
	};
	const pb_kafka_client_spec_t spec = {
	    .role = PB_KAFKA_GROUP_CONSUMER,
	    .name = "consumer",
	    .defaults = defaults,
	    .n_defaults = sizeof(defaults) / sizeof(defaults[0]),
	    .fixed = fixed,
	    .n_fixed = sizeof(fixed) / sizeof(fixed[0]),
	    .setup = consumer_setup,
	    .opaque = pl,
	};
	pb_err_t err = pb_kafka_client_new(pl->cfg, &spec, &pl->consumer,
					   errstr, errstr_size);
	if (err)
		return err;
	rd_kafka_poll_set_consumer(pl->consumer);
	pl->cq = rd_kafka_queue_get_consumer(pl->consumer);
	pl->prefetch_max_bytes =
	    (double)pb_kafka_client_conf_i64(
		pl->consumer, "queued.max.messages.kbytes", 2048) *
	    1024;
	pl->prefetch_max_msgs = (double)pb_kafka_client_conf_i64(
	    pl->consumer, "queued.min.messages", 100000);
	pl->avg_record = 256;
	return pb_fetchwake_new(pl->consumer, &pl->wake, errstr, errstr_size);
}

static void producer_setup(rd_kafka_conf_t *kc, void *opaque)
{
	rd_kafka_conf_set_opaque(kc, opaque);
	rd_kafka_conf_set_dr_msg_cb(kc, pl_on_delivery);
	rd_kafka_conf_set_stats_cb(kc, on_kafka_stats);
}

static pb_err_t build_producer(pb_pipeline_t *pl, char *errstr,
			       size_t errstr_size)
{
	/* linger.ms: an event counts against worker.maxPending until its
	 * outcome is acknowledged, so the producer's wait is held events;
	 * 2 and 3 ms measured best (docs/benchmarks.md: with 5 maxPending
	 * fills sooner, 1 and 0 cost more CPU per record than they save) */
	const pb_kafka_prop_t defaults[] = {
	    {"linger.ms", "2", false},
	    {"statistics.interval.ms", PB_KSTATS_DEFAULT_INTERVAL_MS, false},
	};
	/* not overridable: no duplicate outcome from a producer retry */
	const pb_kafka_prop_t fixed[] = {
	    {"enable.idempotence", "true", false},
	};
	const pb_kafka_client_spec_t spec = {
	    .role = PB_KAFKA_PRODUCER,
	    .name = "producer",
	    .defaults = defaults,
	    .n_defaults = sizeof(defaults) / sizeof(defaults[0]),
	    .fixed = fixed,
	    .n_fixed = sizeof(fixed) / sizeof(fixed[0]),
	    .setup = producer_setup,
	    .opaque = pl,
	};
	pb_err_t err = pb_kafka_client_new(pl->cfg, &spec, &pl->producer,
					   errstr, errstr_size);
	if (err)
		return err;
	/* every record written is bounded by what the producer takes (an
	 * outcome's large parts truncated, a DLQ copy cut, produce.h) */
	pl->record_max = pb_produce_record_max(pb_kafka_client_conf_i64(
	    pl->producer, "message.max.bytes", 1000000));
	return PB_OK;
}

/* Let Kafka's queues wake the loop's poll (one loop, no busy wait). */
static pb_err_t build_pipes(pb_pipeline_t *pl, char *errstr, size_t errstr_size)
{
	if (pipe(pl->cq_fds) || pipe(pl->pq_fds))
		return pb_errf(errstr, errstr_size, PB_ERR_IO,
			       "pipe: %s: the worker cannot start (check the "
			       "open files limit, ulimit -n)",
			       strerror(errno));
	int all_fds[4] = {pl->cq_fds[0], pl->cq_fds[1], pl->pq_fds[0],
			  pl->pq_fds[1]};
	for (int i = 0; i < 4; i++)
		fcntl(all_fds[i], F_SETFL,
		      fcntl(all_fds[i], F_GETFL) | O_NONBLOCK);
	rd_kafka_queue_io_event_enable(pl->cq, pl->cq_fds[1], "1", 1);
	rd_kafka_queue_t *pq = rd_kafka_queue_get_main(pl->producer);
	rd_kafka_queue_io_event_enable(pq, pl->pq_fds[1], "1", 1);
	rd_kafka_queue_destroy(pq);
	return PB_OK;
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
	snprintf(pl->worker_id, sizeof(pl->worker_id), "%s/%d", host,
		 (int)getpid());
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
	pl->push_keys_refused = calloc(cfg->accounts_len + 1, sizeof(char *));
	if (!pl->push_keys || !pl->push_keys_refused) {
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
	err = pb_pusher_new(cfg, metrics, pl_on_pushed, pl, &pl->pusher, errstr,
			    errstr_size);
	if (err)
		goto fail;

	err = build_consumer(pl, errstr, errstr_size);
	if (!err)
		err = build_producer(pl, errstr, errstr_size);
	if (err)
		goto fail;

	err = build_pipes(pl, errstr, errstr_size);
	if (err)
		goto fail;
	*out = pl;
	return PB_OK;
fail:
	pb_pipeline_destroy(pl);
	return err ? err : PB_ERR_NOMEM;
}

static void free_waiting_task(pb_orderq_link_t *l, void *opaque)
{
	pl_task_free(opaque, pl_task_of(l));
}

/* Free every task still held, wherever it is. */
static void free_tasks(pb_pipeline_t *pl)
{
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
		pl_task_free(pl, t);
		j = nx;
	}
	tlist_t *lists[] = {&pl->ready, &pl->to_record, &pl->to_publish,
			    &pl->lingering};
	for (size_t li = 0; li < 4; li++) {
		task_t *t;
		while ((t = pl_list_pop(lists[li])))
			pl_task_free(pl, t);
	}
	/* tasks still waiting behind their order are freed with the queues;
	 * outcomes still in the producer are unlinked from them */
	pb_orderq_destroy(pl->orders, free_waiting_task, pl);
	pl->orders = NULL;
}

/* Outcome records Kafka never acknowledged (no broker answered at the
 * end) are purged, so that their delivery reports come and free their
 * events, abandoned, while the pipeline is whole. */
static void producer_discard(pb_pipeline_t *pl)
{
	if (!pl->producer || rd_kafka_outq_len(pl->producer) == 0)
		return;
	pl->discarding = true;
	rd_kafka_purge(pl->producer,
		       RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_flush(pl->producer, 1000);
}

void pb_pipeline_destroy(pb_pipeline_t *pl)
{
	if (!pl)
		return;
	producer_discard(pl);
	pl_stages_discard(pl);
	if (pl->revoking)
		rd_kafka_topic_partition_list_destroy(pl->revoking);
	free_tasks(pl);
	if (pl->cq) {
		rd_kafka_queue_io_event_enable(pl->cq, -1, NULL, 0);
		rd_kafka_queue_destroy(pl->cq);
	}
	for (part_t *p = pl->parts; p; p = p->next)
		p->assigned = false; /* late delivery reports store no offset */
	pb_fetchwake_destroy(pl->wake);
	/* a consumer whose close did not complete in time (no broker
	 * answering) is not closed again here: that close would wait for
	 * the coordinator as long as the one given up on */
	if (pl->consumer && rd_kafka_consumer_closed(pl->consumer))
		rd_kafka_destroy(pl->consumer);
	else if (pl->consumer)
		rd_kafka_destroy_flags(pl->consumer,
				       RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	if (pl->producer) {
		rd_kafka_flush(pl->producer, 1000);
		if (pl->results_rkt)
			rd_kafka_topic_destroy(pl->results_rkt);
		pl->results_rkt = NULL;
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
	pl_pubmarks_drop(pl, pl->stages.pubmarks_len);
	free(pl->stages.pubmarks);
	pb_state_destroy(pl->state);
	free(pl->auto_admin);
	for (size_t i = 0; pl->push_keys && i < pl->cfg->accounts_len; i++)
		free(pl->push_keys[i]);
	free(pl->push_keys);
	for (size_t i = 0; pl->push_keys_refused && i < pl->cfg->accounts_len;
	     i++)
		free(pl->push_keys_refused[i]);
	free(pl->push_keys_refused);
	free(pl->pub.body_out);
	pl_task_pool_drain(pl);
	free(pl);
}
