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
#include "kafka_conf.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "headers.h"
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

pb_err_t pb_replay_run(const pb_config_t *cfg, const pb_replay_opts_t *o,
		       long *replayed, char *errstr, size_t errstr_size)
{
	pb_err_t err = PB_OK;
	rd_kafka_t *cons = NULL, *prod = NULL;
	const rd_kafka_metadata_t *md = NULL;
	rd_kafka_topic_partition_list_t *assign = NULL;
	int64_t *ends = NULL;
	char e[512];
	*replayed = 0;

	rd_kafka_conf_t *cc = rd_kafka_conf_new();
	if ((err = pb_kafka_conf_apply(cfg, cc, PB_KAFKA_READER, errstr,
					 errstr_size))) {
		rd_kafka_conf_destroy(cc);
		return err;
	}
	rd_kafka_conf_set(cc, "group.id", "pruvan-bridge-replay", e, sizeof(e));
	rd_kafka_conf_set(cc, "enable.auto.commit", "false", e, sizeof(e));
	cons = rd_kafka_new(RD_KAFKA_CONSUMER, cc, e, sizeof(e));
	if (!cons) {
		rd_kafka_conf_destroy(cc);
		return pb_errf(errstr, errstr_size, PB_ERR_KAFKA, "consumer: %s", e);
	}
	rd_kafka_conf_t *pc = rd_kafka_conf_new();
	if ((err = pb_kafka_conf_apply(cfg, pc, PB_KAFKA_PRODUCER, errstr,
					 errstr_size))) {
		rd_kafka_conf_destroy(pc);
		goto out;
	}
	rd_kafka_conf_set(pc, "enable.idempotence", "true", e, sizeof(e));
	prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, e, sizeof(e));
	if (!prod) {
		rd_kafka_conf_destroy(pc);
		err = pb_errf(errstr, errstr_size, PB_ERR_KAFKA, "producer: %s", e);
		goto out;
	}
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(cons, cfg->topic_dlq, NULL);
	rd_kafka_resp_err_t kerr = rd_kafka_metadata(cons, 0, rkt, &md, 10000);
	rd_kafka_topic_destroy(rkt);
	if (kerr || md->topic_cnt != 1 || md->topics[0].err) {
		err = pb_errf(errstr, errstr_size, PB_ERR_KAFKA,
			      "cannot read the DLQ topic %s: %s", cfg->topic_dlq,
			      rd_kafka_err2str(kerr ? kerr : md ? md->topics[0].err : kerr));
		goto out;
	}
	int np = md->topics[0].partition_cnt;
	assign = rd_kafka_topic_partition_list_new(np);
	ends = calloc((size_t)np, sizeof(*ends));
	for (int i = 0; i < np; i++) {
		int32_t p = md->topics[0].partitions[i].id;
		if (o->partition >= 0 && p != o->partition)
			continue;
		int64_t lo, hi;
		if (rd_kafka_query_watermark_offsets(cons, cfg->topic_dlq, p, &lo,
						     &hi, 10000))
			continue;
		int64_t start = o->from >= 0 && o->from > lo ? o->from : lo;
		int64_t end = o->to >= 0 && o->to + 1 < hi ? o->to + 1 : hi;
		if (start >= end)
			continue;
		rd_kafka_topic_partition_list_add(assign, cfg->topic_dlq, p)->offset = start;
		ends[assign->cnt - 1] = end;
	}
	if (assign->cnt == 0)
		goto out; /* nothing to replay */
	if ((kerr = rd_kafka_assign(cons, assign))) {
		err = pb_errf(errstr, errstr_size, PB_ERR_KAFKA, "assign: %s",
			      rd_kafka_err2str(kerr));
		goto out;
	}
	int remaining = assign->cnt;
	while (remaining > 0) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 10000);
		if (!m) {
			err = pb_errf(errstr, errstr_size, PB_ERR_TIMEOUT,
				      "no DLQ record within 10 s; is Kafka reachable?");
			goto out;
		}
		if (m->err) {
			rd_kafka_message_destroy(m);
			continue;
		}
		int idx = -1;
		for (int i = 0; i < assign->cnt; i++)
			if (assign->elems[i].partition == m->partition)
				idx = i;
		if (idx < 0 || m->offset >= ends[idx]) {
			rd_kafka_message_destroy(m);
			continue;
		}
		bool from_orders = header_is(m, "x-source-topic", cfg->topic_orders);
		bool reason_ok = !o->reason || header_is(m, "x-error-reason", o->reason);
		bool take = from_orders && reason_ok;
		printf("{\"partition\":%" PRId32 ",\"offset\":%" PRId64
		       ",\"action\":\"%s\"}\n", m->partition, m->offset,
		       !take ? "skip" : o->dry_run ? "would-replay" : "replay");
		if (take && !o->dry_run) {
			char from[64];
			snprintf(from, sizeof(from), "%s/%" PRId32 "/%" PRId64,
				 cfg->topic_dlq, m->partition, m->offset);
			rd_kafka_headers_t *h = rd_kafka_headers_new(8), *dh = NULL;
			if (!rd_kafka_message_headers(m, &dh))
				pb_headers_add_all(h, dh, true);
			rd_kafka_header_add(h, "x-replayed-from", -1, from, -1);
			kerr = rd_kafka_producev(
				prod, RD_KAFKA_V_TOPIC(cfg->topic_orders),
				RD_KAFKA_V_KEY(m->key, m->key_len),
				RD_KAFKA_V_VALUE(m->payload, m->len),
				RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
			if (kerr) {
				rd_kafka_headers_destroy(h);
				rd_kafka_message_destroy(m);
				err = pb_errf(errstr, errstr_size, PB_ERR_KAFKA,
					      "produce: %s", rd_kafka_err2str(kerr));
				goto out;
			}
			(*replayed)++;
		} else if (take) {
			(*replayed)++;
		}
		if (m->offset + 1 >= ends[idx])
			remaining--;
		rd_kafka_message_destroy(m);
		rd_kafka_poll(prod, 0);
	}
	if (rd_kafka_flush(prod, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		err = pb_errf(errstr, errstr_size, PB_ERR_KAFKA,
			      "replayed records not acknowledged within 30 s");
out:
	fflush(stdout);
	free(ends);
	if (assign)
		rd_kafka_topic_partition_list_destroy(assign);
	if (md)
		rd_kafka_metadata_destroy(md);
	if (cons) {
		rd_kafka_consumer_close(cons);
		rd_kafka_destroy(cons);
	}
	if (prod)
		rd_kafka_destroy(prod);
	return err;
}
