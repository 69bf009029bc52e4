/* kstats.c: librdkafka's statistics as metrics (the contract is kstats.h). */
#include "kstats.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static double num(const json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static void brokers(pb_metrics_t *m, const char *client, const json_t *bs)
{
	const char *name;
	json_t *b;
	json_object_foreach((json_t *)bs, name, b)
	{
		/* bootstrap and coordinator placeholders have no node id */
		if (num(b, "nodeid") < 0)
			continue;
		char lbl[300];
		pb_metrics_labels(lbl, sizeof(lbl), "client", client, "broker",
				  name, NULL);
		const json_t *rtt = json_object_get(b, "rtt");
		/* microseconds; 0 while no request completed in the window */
		pb_metrics_set(m, PB_M_KAFKA_BROKER_RTT_AVG, lbl,
			       num(rtt, "avg") / 1e6);
		pb_metrics_set(m, PB_M_KAFKA_BROKER_RTT_P99, lbl,
			       num(rtt, "p99") / 1e6);
		const char *st = json_string_value(json_object_get(b, "state"));
		pb_metrics_set(m, PB_M_KAFKA_BROKER_UP, lbl,
			       st && strcmp(st, "UP") == 0 ? 1 : 0);
	}
}

static void partitions(pb_metrics_t *m, const json_t *topics)
{
	const char *tname, *pname;
	json_t *t, *p;
	json_object_foreach((json_t *)topics, tname, t)
	{
		json_object_foreach(json_object_get(t, "partitions"), pname, p)
		{
			double lag = num(p, "consumer_lag");
			/* -1: the internal UA partition, or not consumed */
			if (strcmp(pname, "-1") == 0 || lag < 0)
				continue;
			char lbl[300];
			pb_metrics_labels(lbl, sizeof(lbl), "topic", tname,
					  "partition", pname, NULL);
			pb_metrics_set(m, PB_M_KAFKA_PARTITION_LAG, lbl, lag);
		}
	}
}

pb_err_t pb_kstats_update(pb_metrics_t *m, const char *json, size_t len)
{
	json_error_t je;
	json_t *st = json_loadb(json, len, 0, &je);
	const char *type = json_string_value(json_object_get(st, "type"));
	if (!st || !type) {
		json_decref(st);
		return PB_ERR_INVALID;
	}
	brokers(m, type, json_object_get(st, "brokers"));
	if (strcmp(type, "consumer") == 0)
		partitions(m, json_object_get(st, "topics"));
	if (strcmp(type, "producer") == 0) {
		pb_metrics_set(m, PB_M_KAFKA_PRODUCER_QUEUE_MSGS, "",
			       num(st, "msg_cnt"));
		pb_metrics_set(m, PB_M_KAFKA_PRODUCER_QUEUE_BYTES, "",
			       num(st, "msg_size"));
	}
	json_decref(st);
	return PB_OK;
}
