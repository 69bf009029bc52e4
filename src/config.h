/*
 * config.h: the worker's configuration (contract section 9).
 *
 * The file is JSON; every key but "accounts" has a default. Environment
 * overrides: KAFKA_BOOTSTRAP_SERVERS, REDIS_URL, PRUVAN_BRIDGE_HTTP_LISTEN.
 * Secrets (PushKey URLs, the relay secret) are "env:NAME" or "file:/path"
 * and are resolved at load time; a literal PushKey URL in the file is a
 * mistake (PushKeys come only from the environment or a mounted secret).
 *
 * Loading validates everything and reports every mistake, one per line,
 * each starting with its JSON path ("$.accounts.acme.mode: ..."). The loaded
 * struct is immutable and passed down read-only; secrets in it are never to
 * be printed (use pb_redact_url).
 */
#ifndef PB_CONFIG_H
#define PB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef enum { PB_MODE_INTERNAL = 0, PB_MODE_EXTERNAL } pb_mode_t;
typedef enum { PB_STATUS_POLICY_DROP = 0, PB_STATUS_POLICY_REJECT } pb_status_policy_t;
typedef enum { PB_BODY_JSON = 0, PB_BODY_FORM } pb_body_encoding_t;

typedef struct pb_account {
	char *name;
	char *push_key_url; /* SECRET: never log, print or export */
	pb_mode_t mode;
	bool auto_admin;    /* initial Auto-Admin value (default true) */
	bool allow_deletes; /* default false */
	pb_status_policy_t status_policy; /* default drop */
	char **users;       /* sub-users assignedTo may name */
	size_t users_len;
	char **extra_fields; /* order fields passed through as shared */
	size_t extra_fields_len;
	pb_body_encoding_t body_encoding; /* default json */
	/* Added: where push_key_url came from, "env:NAME" or "file:/path"
	 * (not secret; safe to print, unlike the URL itself). */
	char *push_key_source;
} pb_account_t;

typedef struct pb_config {
	/* "kafka": librdkafka properties, passed through in file order.
	 * Defaults: bootstrap.servers=127.0.0.1:9092, group.id=pruvan-bridge. */
	char **kafka_keys;
	char **kafka_values;
	size_t kafka_len;

	char *topic_orders;  /* pruvan.orders */
	char *topic_inbound; /* pruvan.inbound */
	char *topic_results; /* pruvan.results */
	char *topic_dlq;     /* pruvan.dlq */

	char *redis_url;        /* redis://127.0.0.1:6379/0 */
	char *redis_key_prefix; /* pb: */

	int pruvan_timeout_ms;      /* 10000 */
	int pruvan_max_attempts;    /* 8 */
	int pruvan_backoff_base_ms; /* 200 */
	int pruvan_backoff_max_ms;  /* 30000 */
	int pruvan_batch_max_orders; /* 50 */
	int pruvan_batch_max_wait_ms; /* 20 */
	int pruvan_max_in_flight;   /* 16: concurrent requests per account */
	int pruvan_circuit_failures; /* 5: consecutive failed requests that open an account's circuit */
	int pruvan_circuit_open_ms; /* 30000: how long it stays open before a probe */

	int64_t dedupe_ttl_seconds; /* 604800 */

	char *http_listen; /* "127.0.0.1:9464" (ops endpoints) */

	/* "worker" (not in the contract's example; all optional) */
	int worker_max_pending;      /* 2000: events held in memory before consumption stops */
	int worker_shutdown_grace_ms; /* 25000: SIGTERM / revoke budget */

	/* "relay": optional receiver for Pruvan's relay calls; off when listen is NULL */
	char *relay_listen; /* e.g. "0.0.0.0:9465"; NULL = off */
	char *relay_secret; /* SECRET: env:/file: */

	pb_account_t *accounts;
	size_t accounts_len;

	/* Added below this line (the fields above are the original contract). */

	/* Parallel to kafka_keys: true when the value is a secret (resolved
	 * from env:/file:, or a property whose name says password, secret or
	 * private key); pb_config_describe redacts those. */
	bool *kafka_sensitive;
	/* Where relay_secret came from ("env:NAME" / "file:/path"), or NULL. */
	char *relay_secret_source;
	/* relay.ackTimeoutMs (10000): how long a relay call waits for Kafka
	 * to acknowledge its items before answering 503. */
	int relay_ack_timeout_ms;

	/* "redis" as production runs it (contract section 9). */
	char *redis_password;        /* SECRET: redis.password (env:/file:) */
	char *redis_password_source; /* "env:NAME" / "file:/path", or NULL */
	bool redis_tls;              /* redis.tls given */
	char *redis_tls_ca_file, *redis_tls_cert_file, *redis_tls_key_file;
	char *redis_tls_server_name;
	bool redis_tls_verify;           /* true */
	char *redis_sentinel_master;     /* NULL: no Sentinel */
	char **redis_sentinel_nodes;     /* "HOST:PORT" */
	size_t redis_sentinel_nodes_len;
	char *redis_sentinel_password;   /* SECRET, may be NULL */
	char **redis_cluster_nodes;      /* NULL: no Cluster */
	size_t redis_cluster_nodes_len;
	int redis_min_replicas;          /* 0 */
	int redis_wait_timeout_ms;       /* 1000 */

	/* Egress to Pruvan. */
	char *pruvan_ca_file; /* a CA bundle beside the system's; NULL: none */
	char *pruvan_proxy;   /* an HTTP(S) proxy URL; NULL: the environment's */
} pb_config_t;

/*
 * Load and validate the file at path, apply environment overrides, resolve
 * secrets. On success *cfg_out is owned by the caller (pb_config_destroy).
 * On failure returns PB_ERR_CONFIG (or PB_ERR_IO when the file itself cannot
 * be read) and errstr holds every mistake, one per line, each beginning with
 * its JSON path, e.g.
 *   $.accounts.acme.mode: unknown mode "intrnal" (expected "internal" or "external")
 *   $.pruvan.timeoutMs: expected an integer, got a string
 *   $.accounts.acme.pushKeyUrl: environment variable ACME_PUSHKEY_URL is not set
 */
pb_err_t pb_config_load(const char *path, pb_config_t **cfg_out,
			char *errstr, size_t errstr_size);

/* Same, from a JSON text already in memory (for tests and defaults). */
pb_err_t pb_config_load_string(const char *json_text, pb_config_t **cfg_out,
			       char *errstr, size_t errstr_size);

void pb_config_destroy(pb_config_t *cfg);

/* The account of that name, or NULL. */
const pb_account_t *pb_config_account(const pb_config_t *cfg, const char *name);

/* The value of a librdkafka property from "kafka", or NULL. */
const char *pb_config_kafka_get(const pb_config_t *cfg, const char *key);

/*
 * The effective configuration as JSON text (same keys as the file, indented,
 * defaults and environment overrides applied), for check-config. Every
 * secret is redacted: PushKey URLs and the Redis URL through pb_redact_url,
 * the relay secret and sensitive librdkafka properties as "<redacted>";
 * where a secret came from (env:NAME / file:/path) is shown instead.
 * Returns a malloc'd string the caller frees with free(), or NULL when out
 * of memory.
 */
char *pb_config_describe(const pb_config_t *cfg);

#endif
