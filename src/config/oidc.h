/*
 * oidc.h: SASL/OAUTHBEARER tokens from an OIDC provider, fetched by the
 * worker.
 *
 * librdkafka fetches OIDC tokens itself (sasl.oauthbearer.method=oidc)
 * only when it was built with libcurl, and Debian 12's librdkafka 2.0.2
 * was not. So the worker does the client credentials grant (RFC 6749
 * 4.4) itself, through librdkafka's token refresh callback, configured by
 * the standard property sasl.oauthbearer.config (usually a secret
 * reference, as it holds the client secret) in this form:
 *
 *   token.endpoint.url=https://idp/token client.id=ID client.secret=SECRET
 *   [scope=SCOPE] [principal=NAME]
 *
 * (space-separated; the principal defaults to the client id). A value
 * without token.endpoint.url is not ours: librdkafka's own handling of
 * the property (its unsecured JWT for development) applies. The client
 * authenticates with HTTP Basic; the token's lifetime is the answer's
 * expires_in (librdkafka refreshes at 80% of it). Never logs; a message
 * never holds the client secret or the token.
 */
#ifndef PB_OIDC_H
#define PB_OIDC_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"

typedef struct pb_oidc {
	char url[1024];
	char client_id[256];
	char client_secret[1024]; /* SECRET */
	char scope[256];
	char principal[256];
} pb_oidc_t;

/* Parse sasl.oauthbearer.config. PB_ERR_NOT_FOUND: not an OIDC setting
 * (no token.endpoint.url); PB_ERR_INVALID: err says what is wrong. */
pb_err_t pb_oidc_parse(const char *config, pb_oidc_t *out, char *err,
		       size_t err_size);

/* One token request: *token_out (malloc'd) and its expiry as epoch ms. */
pb_err_t pb_oidc_fetch(const pb_oidc_t *o, long timeout_ms, char **token_out,
		       int64_t *expiry_ms_out, char *err, size_t err_size);

/* librdkafka's token refresh callback (set by pb_kafka_conf_apply when
 * the configuration is ours). @locality: the thread polling rk. */
void pb_oidc_refresh_cb(rd_kafka_t *rk, const char *config, void *opaque);

#endif
