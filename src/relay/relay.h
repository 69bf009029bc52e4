/*
 * relay.h: the web service Pruvan calls (contract section 5.1; config
 * relay.listen, off by default).
 *
 * Each account's integration in Pruvan's setup screen points at
 * https://HOST{relay.basePath}/ACCOUNT with any file extension, and Pruvan
 * calls {URL}/{method}.{extension}. The service answers
 *
 *   POST {basePath}/ACCOUNT/METHOD   and   POST {basePath}/ACCOUNT/METHOD.EXT
 *
 * for any extension, METHOD case-insensitive:
 *   validate        checks the credentials; for an account configured
 *                   pushKeyUrl "pruvan:validate" stores the payload's
 *                   pushkey in Redis (every replica pushes with it from
 *                   its next refresh on)
 *   getWorkOrders   the account's live orders, every field last pushed,
 *                   changed since timestamp (Unix seconds) or all (null);
 *                   streamed page by page from Redis
 *   status          workOrders[]: one inbound item each (kind status)
 *   uploadPictures  the file part kept in relay.mediaDir (fsynced), the
 *                   metadata one inbound item (photo or survey) with media
 *
 * The JSON comes in the form field `payload` (urlencoded or multipart) or
 * as a plain application/json body. It carries the integration's
 * credentials: username equal to the account's relay.username, and token
 * equal to relay.token or password equal to relay.password or to its SHA-1
 * hex. Compared in constant time; never logged, recorded or exported, and
 * removed from every item written.
 *
 * Answers (Pruvan's shapes): validate {"error":"","validated":true},
 * getWorkOrders {"workOrders":[...],"error":""}, status
 * {"status":true,"error":null}, uploadPictures {"status":true,"error":""};
 * 401 for failed credentials, 404 unknown account or method, 400 malformed,
 * 413 beyond a bound (relay.maxBodyBytes, maxPayloadBytes, maxFileBytes,
 * maxItems), 503 until Kafka acknowledged every item (and the file is on
 * disk), all errors {"status":false,"error":"..."} (validate's 401:
 * {"error":"...","validated":false}).
 *
 * @locality: libmicrohttpd runs one thread per connection; a handler
 * blocks for at most relay.ackTimeoutMs (+1 s) waiting for delivery
 * reports, which a poll thread of this module serves, and as long again
 * for its share of the JSON the relay parses at once (503 past it). Redis calls
 * share one connection behind a mutex (each call is one whole round trip).
 */
#ifndef PB_RELAY_H
#define PB_RELAY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "metrics.h"

#define PB_RELAY_MAX_CONNECTIONS  64
#define PB_RELAY_WORK_ORDERS_PAGE 200 /* orders read from Redis at a time */

typedef struct pb_relay pb_relay_t;

/*
 * Start listening on cfg->relay_listen ("host:port"; port 0 picks a free
 * one, see pb_relay_port) with its own Kafka producer and Redis
 * connection. cfg and metrics are borrowed and must outlive the service.
 * PB_ERR_CONFIG when relay.listen is not set, PB_ERR_KAFKA / PB_ERR_REDIS
 * / PB_ERR_IO when the producer, Redis or the socket cannot be set up.
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

typedef enum {
	PB_RELAY_M_UNKNOWN = 0,
	PB_RELAY_M_VALIDATE,
	PB_RELAY_M_GET_WORK_ORDERS,
	PB_RELAY_M_STATUS,
	PB_RELAY_M_UPLOAD_PICTURES,
} pb_relay_method_t;

/* The method named (case-insensitive), PB_RELAY_M_UNKNOWN otherwise. */
pb_relay_method_t pb_relay_method_of(const char *name);
/* Pruvan's spelling of a method ("getWorkOrders"), "other" for unknown. */
const char *pb_relay_method_name(pb_relay_method_t m);

/* Constant-time (in the length of secret) equality; false for NULLs. */
bool pb_relay_secret_equal(const char *given, const char *secret);

/* The SHA-1 of s in lower-case hex (41 bytes with the NUL). */
void pb_relay_sha1_hex(const char *s, char out[41]);
/* The SHA-256 of data[0..n) in lower-case hex (65 bytes with the NUL). */
void pb_relay_sha256_hex(const void *data, size_t n, char out[65]);

/*
 * Pruvan's credential check for account a on payload: username equal to
 * a->relay_username, and token equal to a->relay_token or password equal
 * to a->relay_password or to its SHA-1 hex (either case). Every
 * comparison is made, in constant time, whatever an earlier one found.
 */
bool pb_relay_credentials_ok(const pb_account_t *a, const json_t *payload);

/*
 * url "{base}/ACCOUNT/METHOD" or "{base}/ACCOUNT/METHOD.EXT" (any
 * extension, a trailing '/' allowed) into account and method (copied,
 * NUL-terminated, the method without its extension). PB_ERR_NOT_FOUND when
 * url is not of that shape or a part is too long.
 */
pb_err_t pb_relay_parse_path(const char *url, const char *base, char *account,
			     size_t account_size, char *method,
			     size_t method_size);

/* "survey" when meta carries a survey (a non-empty string, an object or an
 * array) or evidenceType Survey (any case), else "photo". */
const char *pb_relay_upload_kind(const json_t *meta);

/* A file name for the media of (account, uuid), safe in a directory: the
 * two joined by "_" when made of [A-Za-z0-9._-] (not starting with '.'),
 * a hash of them otherwise. out needs 256 bytes. */
void pb_relay_media_name(const char *account, const char *uuid, char *out,
			 size_t out_size);

/* The uuId of an item that came without one: the SHA-256 hex of its
 * canonical JSON (compact, keys sorted, credential fields left out).
 * false when out of memory. */
bool pb_relay_derived_uuid(const json_t *item, char out[65]);

/* An uploaded file as kept in the media store. */
typedef struct pb_relay_media {
	const char *path;   /* absolute */
	const char *sha256; /* hex */
	int64_t bytes;
	const char *content_type; /* may be NULL */
} pb_relay_media_t;

/* One record for the inbound topic: key ACCOUNT/KEY1 and the wrapper. */
typedef struct pb_relay_record {
	char *key;	  /* owned */
	char *value;	  /* owned, {"account","kind","item"} as JSON text */
	const char *kind; /* static */
	char uuid[160];	  /* the item's uuId (cut if longer) */
} pb_relay_record_t;

/*
 * The records for one call's payload (borrowed): method status
 * (payload.workOrders[]: kind status, key2 from workOrderNumber) or
 * uploadPictures (payload is the item's metadata; kind from
 * pb_relay_upload_kind; media, when not NULL, added as item.media).
 * Credentials Pruvan sends along (username, password, token, pushkey,
 * apiKey) are removed from items, and so is a media field the caller
 * sent (only the relay's own, of a file it kept, is written). An item without
 * uuId gets the SHA-256 hex of its canonical JSON (compact, keys sorted), so a
 * repeated call is deduplicated downstream. The key is ACCOUNT/KEY1, or
 * ACCOUNT/KEY2 when the item has no key1. At most max_items records.
 *
 * Every record passes the worker's own inbound parser. PB_ERR_INVALID
 * with the reason in errstr (naming the item) when the payload is not
 * usable; *out and *n_out are then untouched. Free with
 * pb_relay_records_free.
 */
pb_err_t pb_relay_records(const char *account, pb_relay_method_t method,
			  const json_t *payload, const pb_relay_media_t *media,
			  size_t max_items, pb_relay_record_t **out,
			  size_t *n_out, char *errstr, size_t errstr_size);
void pb_relay_records_free(pb_relay_record_t *recs, size_t n);

/*
 * getWorkOrders' timestamp: null or absent (-1: all), Unix seconds as an
 * integer or a decimal string (the since bound in ms). PB_ERR_INVALID for
 * anything else.
 */
pb_err_t pb_relay_since_ms(const json_t *payload, int64_t *since_ms_out);

#endif
