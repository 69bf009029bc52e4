/*
 * relay.h: the optional receiver for Pruvan's relay calls (config
 * relay.listen, off by default).
 *
 * Pruvan relays queued orders and collected content to the order
 * originator's web service (spec/pruvan-relay.md). This receiver accepts
 * those calls on its own port and writes each item onto the inbound topic
 * in the contract's shape (section 5), where the worker's pipeline decides
 * relayed or discarded like for any other inbound record:
 *
 *   POST /relay/ACCOUNT/uploadPictures   one item (the metadata JSON)
 *   POST /relay/ACCOUNT/status           workOrders[]: one item each
 *   POST /relay/ACCOUNT/validate         answers validated, writes nothing
 *
 * ACCOUNT is a configured account name: each Pruvan integration is set up
 * with its own URL, so the account comes from the path (Pruvan's
 * clientCode is Pruvan's name, not ours, and the one relay secret is
 * shared by every account). The shared secret (relay.secret) is required
 * as the query parameter `secret`, or the header `X-Relay-Secret`, or
 * `Authorization: Bearer ...`; it is compared in constant time and never
 * logged, recorded or exported.
 *
 * Bodies: the JSON in a form field `payload` (urlencoded or multipart, as
 * Pruvan sends it; a multipart part named `metadata` or typed
 * application/json is accepted too; uploaded file bytes are read and
 * dropped, never buffered), or a plain application/json body. At most
 * PB_RELAY_MAX_BODY bytes per request, PB_RELAY_MAX_JSON of them JSON,
 * PB_RELAY_MAX_ITEMS items.
 *
 * Pruvan gets its success answer only after Kafka acknowledged every item
 * of the call (a dedicated idempotent producer, acks=all); otherwise 503
 * {"error":...} and Pruvan calls again (items are deduplicated by uuId
 * downstream, so a repeat is harmless). Bad requests get a 4xx with
 * {"error":"..."}.
 *
 * @locality: libmicrohttpd runs one thread per connection; a handler
 * blocks for at most relay.ackTimeoutMs (+1 s) waiting for delivery
 * reports, which a poll thread of this module serves.
 */
#ifndef PB_RELAY_H
#define PB_RELAY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"
#include "metrics.h"

#define PB_RELAY_MAX_BODY	 (32u * 1024u * 1024u) /* whole request */
#define PB_RELAY_MAX_JSON	 (1024u * 1024u)       /* the JSON payload */
#define PB_RELAY_MAX_ITEMS	 1000		       /* items per call */
#define PB_RELAY_MAX_CONNECTIONS 64

typedef struct pb_relay pb_relay_t;

/*
 * Start listening on cfg->relay_listen ("host:port"; port 0 picks a free
 * one, see pb_relay_port) with its own Kafka producer. cfg and metrics are
 * borrowed and must outlive the receiver. PB_ERR_CONFIG when the relay is
 * not configured (no listen or an empty secret), PB_ERR_KAFKA / PB_ERR_IO
 * when the producer or the socket cannot be set up.
 */
pb_err_t pb_relay_start(const pb_config_t *cfg, pb_metrics_t *metrics,
			pb_relay_t **relay_out, char *errstr,
			size_t errstr_size);
/* The bound port, or -1 for NULL. */
int pb_relay_port(const pb_relay_t *relay);
/* Stop accepting, let running calls finish (bounded by the ack timeout),
 * flush the producer; accepts NULL. */
void pb_relay_stop(pb_relay_t *relay);

/* ---- pure parts, exposed for unit tests ---------------------------------- */

/* Constant-time (in the length of secret) equality; false for NULLs. */
bool pb_relay_secret_equal(const char *given, const char *secret);

/*
 * "/relay/ACCOUNT/METHOD" into account and method (copied, NUL-terminated).
 * PB_ERR_NOT_FOUND when url is not of that shape or a part is too long.
 */
pb_err_t pb_relay_parse_path(const char *url, char *account,
			     size_t account_size, char *method,
			     size_t method_size);

/* One record for the inbound topic: key ACCOUNT/KEY1 and the wrapper. */
typedef struct pb_relay_record {
	char *key;	  /* owned */
	char *value;	  /* owned, {"account","kind","item"} as JSON text */
	const char *kind; /* static */
} pb_relay_record_t;

/*
 * The records for one call's payload (borrowed): method "uploadPictures"
 * (payload is the item's metadata; kind "survey" when it carries a
 * survey, else "photo") or "status" (payload.workOrders[]: kind "status",
 * key2 from workOrderNumber). Credentials Pruvan sends along (username,
 * password, token, pushkey, apiKey) are removed from items. An item
 * without uuId gets a stable one derived from its content ("relay-" and
 * 32 hex digits), so a repeated call is deduplicated downstream. The key
 * is ACCOUNT/KEY1, or ACCOUNT/KEY2 when the item has no key1.
 *
 * Every record passes the worker's own inbound parser. PB_ERR_INVALID
 * with the reason in errstr (naming the item) when the payload is not
 * usable; *out and *n_out are then untouched. Free with
 * pb_relay_records_free.
 */
pb_err_t pb_relay_records(const char *account, const char *method,
			  const json_t *payload, pb_relay_record_t **out,
			  size_t *n_out, char *errstr, size_t errstr_size);
void pb_relay_records_free(pb_relay_record_t *recs, size_t n);

#endif
