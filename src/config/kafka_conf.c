#include "kafka_conf.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "oidc.h"

/* Properties only one kind of client understands (prefix match). */
static const char *const consumer_only[] = {"group.",
					    "session.timeout.ms",
					    "heartbeat.interval.ms",
					    "max.poll.interval.ms",
					    "auto.offset.reset",
					    "auto.commit.",
					    "enable.auto.",
					    "partition.assignment.strategy",
					    "fetch.",
					    "isolation.level",
					    "enable.partition.eof",
					    "check.crcs",
					    "queued.min.messages",
					    "queued.max.messages.kbytes",
					    NULL};
static const char *const producer_only[] = {"linger.ms",
					    "acks",
					    "request.required.acks",
					    "enable.idempotence",
					    "compression.",
					    "batch.",
					    "queue.buffering.",
					    "message.timeout.ms",
					    "delivery.timeout.ms",
					    "retries",
					    "message.send.max.retries",
					    "max.in.flight",
					    "partitioner",
					    NULL};

static bool has_prefix_in(const char *key, const char *const *list)
{
	for (size_t i = 0; list[i]; i++)
		if (strncmp(key, list[i], strlen(list[i])) == 0)
			return true;
	return false;
}

static bool applies(const char *key, pb_kafka_role_t role)
{
	if (strcmp(key, "transactional.id") == 0)
		return false;
	switch (role) {
	case PB_KAFKA_GROUP_CONSUMER:
		return !has_prefix_in(key, producer_only);
	case PB_KAFKA_READER:
		return strcmp(key, "group.id") != 0 &&
		       !has_prefix_in(key, producer_only);
	case PB_KAFKA_PRODUCER:
		return !has_prefix_in(key, consumer_only);
	}
	return false;
}

pb_err_t pb_kafka_conf_apply(const pb_config_t *c, rd_kafka_conf_t *kc,
			     pb_kafka_role_t role, char *errstr,
			     size_t errstr_size)
{
	char e[512];
	for (size_t i = 0; i < c->kafka_len; i++) {
		if (!applies(c->kafka_keys[i], role))
			continue;
		if (rd_kafka_conf_set(kc, c->kafka_keys[i], c->kafka_values[i],
				      e, sizeof(e)) != RD_KAFKA_CONF_OK)
			return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
				       "$.kafka.%s: %s", c->kafka_keys[i], e);
	}
	/* OIDC tokens fetched by the worker (oidc.h) */
	pb_oidc_t o;
	if (pb_oidc_parse(pb_config_kafka_get(c, "sasl.oauthbearer.config"), &o,
			  e, sizeof(e)) == PB_OK)
		rd_kafka_conf_set_oauthbearer_token_refresh_cb(
		    kc, pb_oidc_refresh_cb);
	memset(o.client_secret, 0, sizeof(o.client_secret));
	return PB_OK;
}

/* Append one line to errstr (bounded, '\n' between lines). */
static void report_line(char *errstr, size_t size, size_t *used,
			const char *key, const char *msg)
{
	if (*used >= size)
		return;
	int n =
	    snprintf(errstr + *used, size - *used, "%s$.kafka%s%s: %s",
		     *used ? "\n" : "", key ? "." : "", key ? key : "", msg);
	if (n > 0)
		*used +=
		    (size_t)n < size - *used ? (size_t)n : size - *used - 1;
}

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac,
		      const char *buf)
{
	(void)rk, (void)level, (void)fac, (void)buf;
}

/* Create a client from kc (taken) and destroy it; false with msg filled
 * when librdkafka refuses the configuration as a whole. Not built with
 * pb_kafka_client_new on purpose: check-config wants every refused property
 * of the section listed (the builder stops at the first), the section alone
 * (no worker defaults), and no librdkafka log lines from a probe. */
static bool try_create(rd_kafka_type_t type, rd_kafka_conf_t *kc, char *msg,
		       size_t size)
{
	rd_kafka_conf_set_log_cb(kc, quiet_log);
	rd_kafka_t *rk = rd_kafka_new(type, kc, msg, size);
	if (!rk) {
		rd_kafka_conf_destroy(kc);
		return false;
	}
	rd_kafka_destroy(rk);
	return true;
}

pb_err_t pb_kafka_conf_check(const pb_config_t *c, bool create, char *errstr,
			     size_t errstr_size)
{
	static const pb_kafka_role_t roles[] = {PB_KAFKA_GROUP_CONSUMER,
						PB_KAFKA_PRODUCER};
	rd_kafka_conf_t *kc[2] = {rd_kafka_conf_new(), rd_kafka_conf_new()};
	size_t used = 0, bad = 0;
	char e[512];
	if (errstr_size)
		errstr[0] = '\0';
	for (size_t i = 0; i < c->kafka_len; i++) {
		const char *k = c->kafka_keys[i];
		bool refused = false;
		for (size_t r = 0; r < 2 && !refused; r++) {
			if (!applies(k, roles[r]))
				continue;
			if (rd_kafka_conf_set(kc[r], k, c->kafka_values[i], e,
					      sizeof(e)) != RD_KAFKA_CONF_OK) {
				report_line(errstr, errstr_size, &used, k, e);
				refused = true;
				bad++;
			}
		}
	}
	pb_oidc_t o;
	pb_err_t oe =
	    pb_oidc_parse(pb_config_kafka_get(c, "sasl.oauthbearer.config"), &o,
			  e, sizeof(e));
	memset(o.client_secret, 0, sizeof(o.client_secret));
	if (oe == PB_ERR_INVALID) {
		report_line(errstr, errstr_size, &used,
			    "sasl.oauthbearer.config",
			    e + strlen("sasl.oauthbearer.config: "));
		bad++;
	} else if (oe == PB_OK) {
		for (size_t r = 0; r < 2; r++)
			rd_kafka_conf_set_oauthbearer_token_refresh_cb(
			    kc[r], pb_oidc_refresh_cb);
	}
	if (!bad && create) {
		if (!try_create(RD_KAFKA_PRODUCER, kc[1], e, sizeof(e))) {
			report_line(errstr, errstr_size, &used, NULL, e);
			bad++;
		}
		kc[1] = NULL;
		if (!bad) {
			if (!try_create(RD_KAFKA_CONSUMER, kc[0], e,
					sizeof(e))) {
				report_line(errstr, errstr_size, &used, NULL,
					    e);
				bad++;
			}
			kc[0] = NULL;
		}
	}
	for (size_t r = 0; r < 2; r++)
		if (kc[r])
			rd_kafka_conf_destroy(kc[r]);
	return bad ? PB_ERR_CONFIG : PB_OK;
}

const char *pb_kafka_default_assignor(int rdkafka_version)
{
	return rdkafka_version >= PB_KAFKA_COOPERATIVE_MIN_VERSION
		   ? "cooperative-sticky"
		   : "range,roundrobin";
}
