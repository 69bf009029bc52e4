/*
 * config.h: the worker's configuration (contract section 9).
 *
 * The file is JSON; every key but "accounts" has a default. Environment
 * overrides: KAFKA_BOOTSTRAP_SERVERS, REDIS_URL, PRUVAN_BRIDGE_HTTP_LISTEN.
 * Secrets (PushKey URLs, the accounts' relay passwords and tokens) are
 * "env:NAME" or "file:/path" and are resolved at load time; a literal
 * PushKey URL in the file is a mistake (PushKeys come only from the
 * environment, a mounted secret, or Pruvan's validate call:
 * "pruvan:validate").
 *
 * Loading validates everything and reports every mistake, one per line,
 * each starting with its JSON path ("$.accounts.acme.mode: ..."). The loaded
 * struct is immutable and passed down read-only; secrets in it are never to
 * be printed (use pb_redact_url).
 */
#ifndef PB_CONFIG_H
#define PB_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef enum { PB_MODE_INTERNAL = 0, PB_MODE_EXTERNAL } pb_mode_t;
typedef enum {
	PB_STATUS_POLICY_DROP = 0,
	PB_STATUS_POLICY_REJECT
} pb_status_policy_t;
/* How a push carries {"workOrders":[...]} (contract section 8): form is
 * what Pruvan documents (urlencoded field workOrders), multipart the same
 * field as multipart/form-data, json a raw application/json body. */
typedef enum {
	PB_BODY_FORM = 0,
	PB_BODY_MULTIPART,
	PB_BODY_JSON,
} pb_body_encoding_t;

/* "form", "multipart" or "json". */
const char *pb_body_encoding_name(pb_body_encoding_t e);

/* pushKeyUrl value for a PushKey learned from Pruvan's validate call. */
#define PB_PUSH_KEY_LEARNED "pruvan:validate"

typedef struct pb_account {
	char *name;
	char *push_key_url; /* SECRET: never log, print or export */
	pb_mode_t mode;
	bool auto_admin;    /* initial Auto-Admin value (default true) */
	bool allow_deletes; /* default false */
	pb_status_policy_t status_policy; /* default drop */
	char **users;			  /* sub-users assignedTo may name */
	size_t users_len;
	char **extra_fields; /* order fields passed through as shared */
	size_t extra_fields_len;
	pb_body_encoding_t body_encoding; /* default form */
	/* Added: where push_key_url came from, "env:NAME" or "file:/path"
	 * (not secret; safe to print, unlike the URL itself). */
	char *push_key_source;
	/* pushKeyUrl "pruvan:validate": push_key_url is NULL and the key is
	 * the one Pruvan delivers in its validate call (kept in Redis). */
	bool push_key_learned;
	/* "relay": the credentials of the account's integration in Pruvan's
	 * setup screen. username may be literal; password and token are
	 * SECRETS (env:/file:), either may be NULL. All NULL when absent or
	 * when the relay is off. */
	char *relay_username;
	char *relay_password;	     /* SECRET */
	char *relay_token;	     /* SECRET */
	char *relay_password_source; /* "env:NAME" / "file:/path" */
	char *relay_token_source;
} pb_account_t;

typedef struct pb_config {
	/* "kafka": librdkafka properties, passed through in file order.
	 * Defaults: bootstrap.servers=127.0.0.1:9092, group.id=pruvan-bridge.
	 */
	char **kafka_keys;
	char **kafka_values;
	size_t kafka_len;

	char *topic_orders;  /* pruvan.orders */
	char *topic_inbound; /* pruvan.inbound */
	char *topic_results; /* pruvan.results */
	char *topic_dlq;     /* pruvan.dlq */

	char *redis_url;	/* redis://127.0.0.1:6379/0 */
	char *redis_key_prefix; /* pb: */

	int pruvan_timeout_ms;	      /* 10000 */
	int pruvan_max_attempts;      /* 8 */
	int pruvan_backoff_base_ms;   /* 200 */
	int pruvan_backoff_max_ms;    /* 30000 */
	int pruvan_batch_max_orders;  /* 50 */
	int pruvan_batch_max_wait_ms; /* 20 */
	int pruvan_max_in_flight;     /* 16: concurrent requests per account */
	int pruvan_circuit_failures; /* 5: consecutive failed requests that open
					an account's circuit */
	int pruvan_circuit_open_ms;  /* 30000: how long it stays open before a
					probe */

	int64_t dedupe_ttl_seconds; /* 604800 */

	char *http_listen; /* "127.0.0.1:9464" (ops endpoints) */

	/* "worker" (not in the contract's example; all optional) */
	int worker_max_pending;	      /* 2000: events held in memory before
					 consumption stops */
	int worker_shutdown_grace_ms; /* 25000: SIGTERM / revoke budget */

	/* "relay": optional receiver for Pruvan's relay calls; off when listen
	 * is NULL */
	char *relay_listen; /* e.g. "0.0.0.0:9465"; NULL = off */

	pb_account_t *accounts;
	size_t accounts_len;

	/* Added below this line (the fields above are the original contract).
	 */

	/* Parallel to kafka_keys: true when the value is a secret (resolved
	 * from env:/file:, or a property whose name says password, secret or
	 * private key); pb_config_describe redacts those. */
	bool *kafka_sensitive;
	/* relay.ackTimeoutMs (10000): how long a relay call waits for Kafka
	 * to acknowledge its items before answering 503. */
	int relay_ack_timeout_ms;
	/* relay.basePath ("/pruvan"): the web service is
	 * POST {basePath}/ACCOUNT/METHOD[.EXT] (contract 5.1). */
	char *relay_base_path;
	/* relay.mediaDir ("/var/lib/pruvan-bridge/media"): where uploaded
	 * files are kept (a mounted volume shared with the workers). */
	char *relay_media_dir;
	/* relay bounds: a request body (33554432), the JSON payload
	 * (1048576), one uploaded file (26214400), items per call (1000). */
	int64_t relay_max_body_bytes;
	int64_t relay_max_payload_bytes;
	int64_t relay_max_file_bytes;
	int relay_max_items;
	/* pruvan.apiUrl ("https://direct.pruvan.com/api/"): a PushKey learned
	 * from validate that is not a URL is pushed to apiUrl?apiKey=KEY. */
	char *pruvan_api_url;

	/* "redis" as production runs it (contract section 9). */
	char *redis_password;	     /* SECRET: redis.password (env:/file:) */
	char *redis_password_source; /* "env:NAME" / "file:/path", or NULL */
	bool redis_tls;		     /* redis.tls given */
	char *redis_tls_ca_file, *redis_tls_cert_file, *redis_tls_key_file;
	char *redis_tls_server_name;
	bool redis_tls_verify;	     /* true */
	char *redis_sentinel_master; /* NULL: no Sentinel */
	char **redis_sentinel_nodes; /* "HOST:PORT" */
	size_t redis_sentinel_nodes_len;
	char *redis_sentinel_password; /* SECRET, may be NULL */
	char **redis_cluster_nodes;    /* NULL: no Cluster */
	size_t redis_cluster_nodes_len;
	int redis_min_replicas;	   /* 0 */
	int redis_wait_timeout_ms; /* 1000 */
	/* after an upgrade of the key layout, how long replicas of an
	 * earlier build may still run (marks written both ways) */
	int64_t redis_upgrade_window_seconds; /* 3600 */

	/* Egress to Pruvan. */
	char *pruvan_ca_file; /* a CA bundle beside the system's; NULL: none */
	char *pruvan_proxy; /* an HTTP(S) proxy URL; NULL: the environment's */
} pb_config_t;

/*
 * Load and validate the file at path, apply environment overrides, resolve
 * secrets. On success *cfg_out is owned by the caller (pb_config_destroy).
 * On failure returns PB_ERR_CONFIG (or PB_ERR_IO when the file itself cannot
 * be read) and errstr holds every mistake, one per line, each beginning with
 * its JSON path, e.g.
 *   $.accounts.acme.mode: unknown mode "intrnal" (expected "internal" or
 * "external")
 *   $.pruvan.timeoutMs: expected an integer, got a string
 *   $.accounts.acme.pushKeyUrl: environment variable ACME_PUSHKEY_URL is not
 * set
 */
pb_err_t pb_config_load(const char *path, pb_config_t **cfg_out, char *errstr,
			size_t errstr_size);

/*
 * Same, for check-config --no-env (CI, GitOps): every "env:NAME" and
 * "file:/path" reference is checked for its form but not resolved, the
 * settings they name stay unset (a PushKey URL NULL, redis.url its
 * default) and the environment overrides are not applied. For checking
 * only: such a configuration is not fit to run.
 */
pb_err_t pb_config_load_no_env(const char *path, pb_config_t **cfg_out,
			       char *errstr, size_t errstr_size);

/*
 * Same, for the operator commands (auto-admin, replay, watch, explain
 * --with-state): everything resolved and the environment applied but the
 * accounts' PushKeys and relay credentials, which they never use, so they
 * run where the PushKey secrets are not mounted (a one-off pod from the
 * ConfigMap). Their references' form is still checked. Not fit to run.
 */
pb_err_t pb_config_load_tool(const char *path, pb_config_t **cfg_out,
			     char *errstr, size_t errstr_size);

/* Same, from a JSON text already in memory (for tests and defaults). */
pb_err_t pb_config_load_string(const char *json_text, pb_config_t **cfg_out,
			       char *errstr, size_t errstr_size);
/* Only the "kafka" section of the file at path, secrets not resolved (as
 * pb_config_load_no_env): for check-config to name the librdkafka
 * properties librdkafka refuses even when the rest of the file has
 * mistakes. */
pb_err_t pb_config_load_kafka(const char *path, pb_config_t **cfg_out,
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
 * relay passwords and tokens and sensitive librdkafka properties as
 * "<redacted>";
 * where a secret came from (env:NAME / file:/path) is shown instead.
 * Returns a malloc'd string the caller frees with free(), or NULL when out
 * of memory.
 */
char *pb_config_describe(const pb_config_t *cfg);

/*
 * The reference of every configuration key, for tools/gen_config_doc
 * (docs/configuration.md and docs/schemas/config.schema.json): an owned
 * JSON array of {"path", "type", "default", "minimum", "maximum", "unit",
 * "enum", "required", "description"} in the file's order, "*" in a path
 * standing for an account's name. NULL with the reasons in errstr when a
 * key of the tables has no description or a description names no key.
 */
json_t *pb_config_reference(char *errstr, size_t errstr_size);

#endif
