/*
 * replay.c: DLQ back to the orders topic (see replay.h).
 *
 * Reads the DLQ partitions by assignment (no consumer group: a replay is an
 * operator's one-off and must not disturb the worker's group), from the
 * chosen offsets to the end as it was when the replay started, and
 * produces each selected record's key and value unchanged to the orders
 * topic with the back office's headers as the DLQ record kept them (the
 * DLQ's own x-error-*, x-source-* and similar left out, headers.h) and an
 * x-replayed-from header. Waits for every produce to be
 * acknowledged before it reports success.
 */
#include "replay.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "headers.h"
#include "kafka_client.h"
#include "log.h"
#include "util.h"

static bool header_is(rd_kafka_message_t *m, const char *name, const char *want)
{
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t n;
	if (rd_kafka_message_headers(m, &h) || !h ||
	    rd_kafka_header_get_last(h, name, &v, &n))
		return false;
	return n == strlen(want) && memcmp(v, want, n) == 0;
}

/* Whether m carries a header called name. */
static bool header_has(rd_kafka_message_t *m, const char *name)
{
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t n;
	return !rd_kafka_message_headers(m, &h) && h &&
	       !rd_kafka_header_get_last(h, name, &v, &n);
}

/* The replay's consumer (no group commits: it reads by assignment) and its
 * idempotent producer, both or neither. */
static pb_err_t replay_clients_new(const pb_config_t *cfg, rd_kafka_t **cons,
				   rd_kafka_t **prod, char *errstr,
				   size_t errstr_size)
{
	static const pb_kafka_prop_t cons_fixed[] = {
	    {"group.id", "pruvan-bridge-replay", false},
	    {"enable.auto.commit", "false", false},
	};
	static const pb_kafka_prop_t prod_fixed[] = {
	    {"enable.idempotence", "true", false},
	};
	const pb_kafka_client_spec_t cs = {
	    .role = PB_KAFKA_READER,
	    .name = "replay consumer",
	    .fixed = cons_fixed,
	    .n_fixed = sizeof(cons_fixed) / sizeof(cons_fixed[0]),
	};
	const pb_kafka_client_spec_t ps = {
	    .role = PB_KAFKA_PRODUCER,
	    .name = "replay producer",
	    .fixed = prod_fixed,
	    .n_fixed = sizeof(prod_fixed) / sizeof(prod_fixed[0]),
	};
	rd_kafka_t *c = NULL;
	pb_err_t err = pb_kafka_client_new(cfg, &cs, &c, errstr, errstr_size);
	if (err)
		return err;
	err = pb_kafka_client_new(cfg, &ps, prod, errstr, errstr_size);
	if (err) {
		rd_kafka_destroy(c);
		return err;
	}
	*cons = c;
	return PB_OK;
}

/* What one replay reads: per DLQ partition, from its first chosen offset
 * (assign) to the end (ends, exclusive) as it was when the replay
 * started. */
typedef struct {
	rd_kafka_topic_partition_list_t *assign;
	int64_t *ends;
} replay_plan_t;

static void replay_plan_clear(replay_plan_t *p)
{
	free(p->ends);
	if (p->assign)
		rd_kafka_topic_partition_list_destroy(p->assign);
	p->ends = NULL;
	p->assign = NULL;
}

/* Add partition p of the DLQ to the plan when o selects records of it.
 * A partition whose offsets cannot be read fails the replay: skipping it
 * would report success over records never looked at. */
static pb_err_t replay_plan_add(rd_kafka_t *cons, const char *dlq, int32_t p,
				const pb_replay_opts_t *o, replay_plan_t *plan,
				char *errstr, size_t errstr_size)
{
	int64_t lo, hi;
	if (o->partition >= 0 && p != o->partition)
		return PB_OK;
	rd_kafka_resp_err_t kerr =
	    rd_kafka_query_watermark_offsets(cons, dlq, p, &lo, &hi, 10000);
	if (kerr)
		return pb_errf(
		    errstr, errstr_size, PB_ERR_KAFKA,
		    "cannot read the offsets of %s partition %" PRId32
		    ": %s; check that Kafka is reachable and replay "
		    "again",
		    dlq, p, rd_kafka_err2str(kerr));
	int64_t start = o->from >= 0 && o->from > lo ? o->from : lo;
	int64_t end = o->to >= 0 && o->to + 1 < hi ? o->to + 1 : hi;
	if (start >= end)
		return PB_OK;
	rd_kafka_topic_partition_list_add(plan->assign, dlq, p)->offset = start;
	plan->ends[plan->assign->cnt - 1] = end;
	return PB_OK;
}

/* --partition names a partition the DLQ has (else PB_ERR_INVALID: a
 * usage error, not an empty DLQ). */
static pb_err_t replay_partition_exists(const rd_kafka_metadata_topic_t *t,
					const pb_replay_opts_t *o, char *errstr,
					size_t errstr_size)
{
	if (o->partition < 0)
		return PB_OK;
	for (int i = 0; i < t->partition_cnt; i++)
		if (t->partitions[i].id == o->partition)
			return PB_OK;
	return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
		       "--partition %" PRId32 ": the DLQ topic %s has %d "
		       "partition%s (0..%d); give one of them",
		       o->partition, t->topic, t->partition_cnt,
		       t->partition_cnt == 1 ? "" : "s", t->partition_cnt - 1);
}

/* The plan for the DLQ's partitions as the cluster has them now. */
static pb_err_t replay_plan_new(rd_kafka_t *cons, const pb_config_t *cfg,
				const pb_replay_opts_t *o, replay_plan_t *plan,
				char *errstr, size_t errstr_size)
{
	pb_err_t err = PB_OK;
	const rd_kafka_metadata_t *md = NULL;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(cons, cfg->topic_dlq, NULL);
	rd_kafka_resp_err_t kerr = rd_kafka_metadata(cons, 0, rkt, &md, 10000);
	rd_kafka_topic_destroy(rkt);
	if (kerr || md->topic_cnt != 1 || md->topics[0].err) {
		err = pb_errf(
		    errstr, errstr_size, PB_ERR_KAFKA,
		    "cannot read the DLQ topic %s: %s", cfg->topic_dlq,
		    rd_kafka_err2str(kerr ? kerr
				     : md->topic_cnt == 1
					 ? md->topics[0].err
					 : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
		goto out;
	}
	err = replay_partition_exists(&md->topics[0], o, errstr, errstr_size);
	if (err)
		goto out;
	int np = md->topics[0].partition_cnt;
	plan->assign = rd_kafka_topic_partition_list_new(np);
	plan->ends = calloc(np > 0 ? (size_t)np : 1, sizeof(*plan->ends));
	if (!plan->ends) {
		err = pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			      "out of memory for %d DLQ partitions", np);
		goto out;
	}
	for (int i = 0; i < np && !err; i++)
		err = replay_plan_add(cons, cfg->topic_dlq,
				      md->topics[0].partitions[i].id, o, plan,
				      errstr, errstr_size);
out:
	if (md)
		rd_kafka_metadata_destroy(md);
	return err;
}

/* Produce DLQ record m to the orders topic, with the back office's
 * headers and x-replayed-from. */
static pb_err_t replay_produce(rd_kafka_t *prod, const pb_config_t *cfg,
			       rd_kafka_message_t *m, char *errstr,
			       size_t errstr_size)
{
	char from[64];
	snprintf(from, sizeof(from), "%s/%" PRId32 "/%" PRId64, cfg->topic_dlq,
		 m->partition, m->offset);
	rd_kafka_headers_t *h = rd_kafka_headers_new(8), *dh = NULL;
	if (!rd_kafka_message_headers(m, &dh))
		pb_headers_add_all(h, dh, true);
	rd_kafka_header_add(h, "x-replayed-from", -1, from, -1);
	rd_kafka_resp_err_t kerr =
	    rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(cfg->topic_orders),
			      RD_KAFKA_V_KEY(m->key, m->key_len),
			      RD_KAFKA_V_VALUE(m->payload, m->len),
			      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			      RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
	if (kerr) {
		rd_kafka_headers_destroy(h);
		return pb_errf(errstr, errstr_size, PB_ERR_KAFKA, "produce: %s",
			       rd_kafka_err2str(kerr));
	}
	return PB_OK;
}

/* The index of m's partition in the plan, or -1 when m is past its end
 * (or of no planned partition). */
static int replay_plan_index(const replay_plan_t *plan,
			     const rd_kafka_message_t *m)
{
	int idx = -1;
	for (int i = 0; i < plan->assign->cnt; i++)
		if (plan->assign->elems[i].partition == m->partition)
			idx = i;
	if (idx < 0 || m->offset >= plan->ends[idx])
		return -1;
	return idx;
}

/* One planned DLQ record: listed on stdout, replayed when selected. */
static pb_err_t replay_record(rd_kafka_t *prod, const pb_config_t *cfg,
			      const pb_replay_opts_t *o, rd_kafka_message_t *m,
			      long *replayed, char *errstr, size_t errstr_size)
{
	bool wanted = header_is(m, "x-source-topic", cfg->topic_orders) &&
		      (!o->reason || header_is(m, "x-error-reason", o->reason));
	/* a copy cut to fit the DLQ is not the event: replaying it would
	 * only reject its first bytes as invalid_json */
	bool cut = wanted && header_has(m, "x-truncated");
	bool take = wanted && !cut;
	printf("{\"partition\":%" PRId32 ",\"offset\":%" PRId64
	       ",\"action\":\"%s\"%s}\n",
	       m->partition, m->offset,
	       !take	    ? "skip"
	       : o->dry_run ? "would-replay"
			    : "replay",
	       cut ? ",\"why\":\"truncated\"" : "");
	if (cut) {
		char part[16], off[32];
		snprintf(part, sizeof(part), "%" PRId32, m->partition);
		snprintf(off, sizeof(off), "%" PRId64, m->offset);
		pb_log(PB_LOG_WARN,
		       "replay: skipped, the DLQ copy is cut (x-truncated)",
		       "partition", part, "offset", off, "what_to_do",
		       "produce the original again from the back office", NULL);
	}
	if (!take)
		return PB_OK;
	if (!o->dry_run) {
		pb_err_t err =
		    replay_produce(prod, cfg, m, errstr, errstr_size);
		if (err)
			return err;
	}
	(*replayed)++;
	return PB_OK;
}

/* Read the plan to its ends, replaying what o selects. */
static pb_err_t replay_loop(rd_kafka_t *cons, rd_kafka_t *prod,
			    const pb_config_t *cfg, const pb_replay_opts_t *o,
			    const replay_plan_t *plan, long *replayed,
			    char *errstr, size_t errstr_size)
{
	int remaining = plan->assign->cnt;
	while (remaining > 0) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 10000);
		if (!m)
			return pb_errf(errstr, errstr_size, PB_ERR_TIMEOUT,
				       "no DLQ record within 10 s; is Kafka "
				       "reachable?");
		int idx = m->err ? -1 : replay_plan_index(plan, m);
		if (idx < 0) {
			rd_kafka_message_destroy(m);
			continue;
		}
		pb_err_t err = replay_record(prod, cfg, o, m, replayed, errstr,
					     errstr_size);
		if (!err && m->offset + 1 >= plan->ends[idx])
			remaining--;
		rd_kafka_message_destroy(m);
		if (err)
			return err;
		rd_kafka_poll(prod, 0);
	}
	if (rd_kafka_flush(prod, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return pb_errf(errstr, errstr_size, PB_ERR_KAFKA,
			       "replayed records not acknowledged within 30 s");
	return PB_OK;
}

pb_err_t pb_replay_run(const pb_config_t *cfg, const pb_replay_opts_t *o,
		       long *replayed, char *errstr, size_t errstr_size)
{
	rd_kafka_t *cons = NULL, *prod = NULL;
	replay_plan_t plan = {0};
	*replayed = 0;
	pb_err_t err =
	    replay_clients_new(cfg, &cons, &prod, errstr, errstr_size);
	if (err)
		return err;
	err = replay_plan_new(cons, cfg, o, &plan, errstr, errstr_size);
	if (err || plan.assign->cnt == 0)
		goto out; /* on success: nothing to replay */
	rd_kafka_resp_err_t kerr = rd_kafka_assign(cons, plan.assign);
	if (kerr) {
		err = pb_errf(errstr, errstr_size, PB_ERR_KAFKA, "assign: %s",
			      rd_kafka_err2str(kerr));
		goto out;
	}
	err = replay_loop(cons, prod, cfg, o, &plan, replayed, errstr,
			  errstr_size);
out:
	fflush(stdout);
	replay_plan_clear(&plan);
	rd_kafka_consumer_close(cons);
	rd_kafka_destroy(cons);
	rd_kafka_destroy(prod);
	return err;
}
