/*
 * kafka_conf.h: the configuration's one "kafka" section applied to each
 * kind of librdkafka client the worker makes.
 *
 * The section serves every client, so each gets only the properties it
 * understands (librdkafka warns about the others, or refuses them):
 * consumers skip producer-only properties, producers skip consumer-only
 * ones, and clients outside the consumer group (watch, replay) also skip
 * group.id. transactional.id is never applied: no client of ours runs
 * transactions, and a transactional producer refuses to produce without
 * them.
 */
#ifndef PB_KAFKA_CONF_H
#define PB_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "err.h"

typedef enum {
	PB_KAFKA_GROUP_CONSUMER, /* the worker's consumer-group member */
	PB_KAFKA_READER,	 /* a consumer outside the group */
	PB_KAFKA_PRODUCER,
} pb_kafka_role_t;

/* Set every property of c's "kafka" section that applies to role on kc;
 * PB_ERR_CONFIG naming "$.kafka.KEY" when librdkafka refuses one. */
pb_err_t pb_kafka_conf_apply(const pb_config_t *c, rd_kafka_conf_t *kc,
			     pb_kafka_role_t role, char *errstr,
			     size_t errstr_size);

/*
 * check-config (and every command before it starts): apply each "kafka"
 * property to a librdkafka configuration of the kind(s) of client it
 * applies to, reporting every refusal, one per line, as
 * "$.kafka.KEY: librdkafka's message". When create is true, also create
 * (and at once destroy, without connecting anywhere first) a producer
 * and a consumer from them, so that what librdkafka checks only then
 * (a missing SASL mechanism's settings, an unreadable ssl.ca.location) is
 * reported too, as "$.kafka: librdkafka's message". PB_ERR_CONFIG with
 * the report in errstr when anything was refused.
 */
pb_err_t pb_kafka_conf_check(const pb_config_t *c, bool create, char *errstr,
			     size_t errstr_size);

/*
 * The worker's default partition.assignment.strategy for the librdkafka
 * version it runs against (rd_kafka_version()); a value in the "kafka"
 * section still wins. cooperative-sticky (incremental rebalances: a member
 * joining or leaving moves only the partitions that must move) from
 * librdkafka 2.3.0 on. Before 2.3.0 the cooperative-sticky assignor aborts
 * the process when the consumer is closed before its first assignment
 * (rdkafka_sticky_assignor.c: assertion 'assignor_state'; fixed upstream in
 * 2.3.0), so a SIGTERM during the first group join would end in SIGABRT
 * instead of exit 0: those versions get the eager "range,roundrobin".
 */
#define PB_KAFKA_COOPERATIVE_MIN_VERSION 0x020300ff
const char *pb_kafka_default_assignor(int rdkafka_version);

#endif
