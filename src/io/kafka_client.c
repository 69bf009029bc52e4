/*
 * kafka_client.c: building librdkafka clients (see kafka_client.h).
 */
#include "kafka_client.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* librdkafka's syslog levels as the worker's; the handle's name
 * ("rdkafka#producer-2") tells clients apart. */
static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac,
			 const char *buf)
{
	pb_log_level_t l = level <= 3	? PB_LOG_ERROR
			   : level <= 4 ? PB_LOG_WARN
			   : level <= 6 ? PB_LOG_INFO
					: PB_LOG_DEBUG;
	pb_log(l, buf, "component", "librdkafka", "client",
	       rk ? rd_kafka_name(rk) : NULL, "facility", fac, NULL);
}

static pb_err_t set_props(rd_kafka_conf_t *kc, const char *client,
			  const pb_kafka_prop_t *props, size_t n, char *errstr,
			  size_t errstr_size)
{
	for (size_t i = 0; i < n; i++) {
		char e[512];
		rd_kafka_conf_res_t r = rd_kafka_conf_set(
		    kc, props[i].key, props[i].value, e, sizeof(e));
		if (r == RD_KAFKA_CONF_OK ||
		    (r == RD_KAFKA_CONF_UNKNOWN && props[i].optional))
			continue;
		return pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
			       "Kafka %s: %s: %s", client, props[i].key, e);
	}
	return PB_OK;
}

pb_err_t pb_kafka_client_new(const pb_config_t *cfg,
			     const pb_kafka_client_spec_t *spec,
			     rd_kafka_t **ret_rk, char *errstr,
			     size_t errstr_size)
{
	rd_kafka_conf_t *kc = rd_kafka_conf_new();
	const char *name = spec->name ? spec->name : "client";
	pb_err_t err = set_props(kc, name, spec->defaults, spec->n_defaults,
				 errstr, errstr_size);
	if (!err)
		err = pb_kafka_conf_apply(cfg, kc, spec->role, errstr,
					  errstr_size);
	if (!err)
		err = set_props(kc, name, spec->fixed, spec->n_fixed, errstr,
				errstr_size);
	if (err) {
		rd_kafka_conf_destroy(kc);
		return err;
	}
	rd_kafka_conf_set_log_cb(kc, on_kafka_log);
	if (spec->setup)
		spec->setup(kc, spec->opaque);
	char e[512];
	rd_kafka_type_t type = spec->role == PB_KAFKA_PRODUCER
				   ? RD_KAFKA_PRODUCER
				   : RD_KAFKA_CONSUMER;
	rd_kafka_t *rk = rd_kafka_new(type, kc, e, sizeof(e));
	if (!rk) {
		rd_kafka_conf_destroy(kc);
		return pb_errf(errstr, errstr_size, PB_ERR_KAFKA,
			       "cannot create the Kafka %s: %s", name, e);
	}
	*ret_rk = rk;
	return PB_OK;
}

int64_t pb_kafka_client_conf_i64(rd_kafka_t *rk, const char *name, int64_t dflt)
{
	char v[64];
	size_t n = sizeof(v);
	int64_t x = dflt;
	if (rd_kafka_conf_get(rd_kafka_conf(rk), name, v, &n) !=
		RD_KAFKA_CONF_OK ||
	    !pb_parse_i64(v, &x))
		return dflt;
	return x;
}
