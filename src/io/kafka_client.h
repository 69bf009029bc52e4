/*
 * kafka_client.h: the one way every command builds a librdkafka client.
 *
 * The worker's consumer and producer, the relay's producer, replay's pair
 * and watch's readers all come from pb_kafka_client_new, so that each gets
 * the configuration's "kafka" section the same way (kafka_conf.h), the
 * same log callback (librdkafka's lines as the worker's JSON lines, named
 * by client), and the same error text when librdkafka refuses a property.
 *
 * Properties are layered, in this order:
 *   1. spec->defaults: the worker's choices; the section may override them;
 *   2. the "kafka" section, filtered for spec->role;
 *   3. spec->fixed: what carries a guarantee (at-least-once offsets,
 *      idempotence); the section cannot override it.
 * A property marked optional is skipped where this librdkafka does not know
 * it (a newer setting on an older library); any other refusal fails.
 *
 * Must never: leak the rd_kafka_conf_t (freed on every failure, taken by
 * librdkafka on success), or log a property's value (it may be a secret).
 */
#ifndef PB_KAFKA_CLIENT_H
#define PB_KAFKA_CLIENT_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"
#include "kafka_conf.h"

typedef struct pb_kafka_prop {
	const char *key, *value;
	bool optional; /* skipped when this librdkafka does not know key */
} pb_kafka_prop_t;

typedef struct pb_kafka_client_spec {
	pb_kafka_role_t role;
	/* names the client in log lines and errors: "consumer", "relay" */
	const char *name;
	const pb_kafka_prop_t *defaults;
	size_t n_defaults;
	const pb_kafka_prop_t *fixed;
	size_t n_fixed;
	/* called on the configuration last, to set callbacks (delivery,
	 * rebalance, statistics) and the opaque; may be NULL */
	void (*setup)(rd_kafka_conf_t *kc, void *opaque);
	void *opaque;
} pb_kafka_client_spec_t;

/* Build the client spec describes into *ret_rk (untouched on failure).
 * PB_ERR_CONFIG naming the property when librdkafka refuses one,
 * PB_ERR_KAFKA when the client cannot be created. */
pb_err_t pb_kafka_client_new(const pb_config_t *cfg,
			     const pb_kafka_client_spec_t *spec,
			     rd_kafka_t **ret_rk, char *errstr,
			     size_t errstr_size);

/* A property of rk's configuration as in effect, as a number; dflt when it
 * cannot be read. */
int64_t pb_kafka_client_conf_i64(rd_kafka_t *rk, const char *name,
				 int64_t dflt);

#endif
