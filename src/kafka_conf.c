#include "kafka_conf.h"

#include <stdbool.h>
#include <string.h>

/* Properties only one kind of client understands (prefix match). */
static const char *const consumer_only[] = {
	"group.", "session.timeout.ms", "heartbeat.interval.ms",
	"max.poll.interval.ms", "auto.offset.reset", "auto.commit.",
	"enable.auto.", "partition.assignment.strategy", "fetch.",
	"isolation.level", "enable.partition.eof", "check.crcs",
	"queued.min.messages", "queued.max.messages.kbytes", NULL};
static const char *const producer_only[] = {
	"linger.ms", "acks", "request.required.acks", "enable.idempotence",
	"compression.", "batch.", "queue.buffering.", "message.timeout.ms",
	"delivery.timeout.ms", "retries", "message.send.max.retries",
	"max.in.flight", "partitioner", NULL};

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
		if (rd_kafka_conf_set(kc, c->kafka_keys[i], c->kafka_values[i], e,
				      sizeof(e)) != RD_KAFKA_CONF_OK)
			return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
				       "$.kafka.%s: %s", c->kafka_keys[i], e);
	}
	return PB_OK;
}

const char *pb_kafka_default_assignor(int rdkafka_version)
{
	return rdkafka_version >= PB_KAFKA_COOPERATIVE_MIN_VERSION
		       ? "cooperative-sticky"
		       : "range,roundrobin";
}
