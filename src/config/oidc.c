/* oidc.c: OIDC tokens for SASL/OAUTHBEARER (the contract is oidc.h). */
#include "oidc.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "util.h"

#define PB_OIDC_BODY_MAX (64 * 1024)

static bool set_value(pb_oidc_t *o, const char *k, size_t kn, const char *v,
		      size_t vn)
{
	static const struct {
		const char *key;
		size_t off, size;
	} keys[] = {
	    {"token.endpoint.url", offsetof(pb_oidc_t, url), sizeof(o->url)},
	    {"client.id", offsetof(pb_oidc_t, client_id), sizeof(o->client_id)},
	    {"client.secret", offsetof(pb_oidc_t, client_secret),
	     sizeof(o->client_secret)},
	    {"scope", offsetof(pb_oidc_t, scope), sizeof(o->scope)},
	    {"principal", offsetof(pb_oidc_t, principal), sizeof(o->principal)},
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strlen(keys[i].key) != kn ||
		    strncmp(keys[i].key, k, kn) != 0)
			continue;
		if (vn >= keys[i].size)
			return false;
		char *dst = (char *)o + keys[i].off;
		memcpy(dst, v, vn);
		dst[vn] = '\0';
		return true;
	}
	return false;
}

pb_err_t pb_oidc_parse(const char *config, pb_oidc_t *o, char *err,
		       size_t err_size)
{
	memset(o, 0, sizeof(*o));
	if (!config || !strstr(config, "token.endpoint.url="))
		return PB_ERR_NOT_FOUND;
	const char *p = config;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			break;
		size_t n = strcspn(p, " \t\n");
		const char *eq = memchr(p, '=', n);
		/* the key is named, never the value (it may be the secret) */
		if (!eq || !set_value(o, p, (size_t)(eq - p), eq + 1,
				      n - (size_t)(eq - p) - 1))
			return pb_errf(
			    err, err_size, PB_ERR_INVALID,
			    "sasl.oauthbearer.config: \"%.*s\" is not "
			    "one of token.endpoint.url=, client.id=, "
			    "client.secret=, scope=, principal= (or "
			    "its value is too long)",
			    (int)(eq ? eq - p : 0), p);
		p += n;
	}
	if (strncmp(o->url, "https://", 8) != 0 &&
	    strncmp(o->url, "http://", 7) != 0)
		return pb_errf(err, err_size, PB_ERR_INVALID,
			       "sasl.oauthbearer.config: token.endpoint.url "
			       "must be an https:// URL");
	if (!o->client_id[0] || !o->client_secret[0])
		return pb_errf(err, err_size, PB_ERR_INVALID,
			       "sasl.oauthbearer.config: client.id= and "
			       "client.secret= are required");
	if (!o->principal[0])
		pb_strlcpy(o->principal, o->client_id, sizeof(o->principal));
	return PB_OK;
}

typedef struct body {
	char *p;
	size_t len;
	bool too_big;
} body_t;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	body_t *b = ud;
	size_t n = size * nmemb;
	if (b->len + n > PB_OIDC_BODY_MAX) {
		b->too_big = true;
		return 0;
	}
	char *np = realloc(b->p, b->len + n + 1);
	if (!np)
		return 0;
	memcpy(np + b->len, ptr, n);
	b->len += n;
	np[b->len] = '\0';
	b->p = np;
	return n;
}

static int64_t now_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* The token and its lifetime from the provider's answer. */
static pb_err_t parse_answer(const body_t *b, long status, char **token_out,
			     int64_t *expiry_ms_out, char *err, size_t size)
{
	json_error_t je;
	json_t *j = b->p ? json_loads(b->p, 0, &je) : NULL;
	const char *tok = json_string_value(json_object_get(j, "access_token"));
	pb_err_t e = PB_OK;
	if (status != 200 || !tok || !*tok) {
		const char *why =
		    json_string_value(json_object_get(j, "error"));
		e = pb_errf(err, size, PB_ERR_HTTP,
			    "OIDC token endpoint answered HTTP %ld%s%.80s%s: "
			    "check client.id, client.secret and scope",
			    status, why ? " (" : "", why ? why : "",
			    why ? ")" : "");
		if (status == 200)
			pb_errf(err, size, PB_ERR_HTTP,
				"OIDC token endpoint answered without an "
				"access_token");
		goto out;
	}
	json_t *exp = json_object_get(j, "expires_in");
	int64_t secs =
	    json_is_integer(exp) ? (int64_t)json_integer_value(exp) : 3600;
	if (secs < 10)
		secs = 10;
	if (!(*token_out = strdup(tok)))
		e = pb_errf(err, size, PB_ERR_NOMEM, "out of memory");
	*expiry_ms_out = now_ms() + secs * 1000;
out:
	json_decref(j);
	return e;
}

pb_err_t pb_oidc_fetch(const pb_oidc_t *o, long timeout_ms, char **token_out,
		       int64_t *expiry_ms_out, char *err, size_t size)
{
	CURL *c = curl_easy_init();
	if (!c)
		return pb_errf(err, size, PB_ERR_NOMEM, "out of memory");
	body_t b = {0};
	char form[600] = "grant_type=client_credentials";
	if (o->scope[0]) {
		char *s = curl_easy_escape(c, o->scope, 0);
		if (s)
			snprintf(form, sizeof(form),
				 "grant_type=client_credentials&scope=%s", s);
		curl_free(s);
	}
	curl_easy_setopt(c, CURLOPT_URL, o->url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
	curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(c, CURLOPT_USERNAME, o->client_id);
	curl_easy_setopt(c, CURLOPT_PASSWORD, o->client_secret);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	pb_err_t e;
	if (rc != CURLE_OK)
		e = pb_errf(err, size, PB_ERR_IO,
			    "OIDC token endpoint unreachable: %s%s",
			    b.too_big ? "answer too large"
				      : curl_easy_strerror(rc),
			    " (check token.endpoint.url and the network path)");
	else
		e = parse_answer(&b, status, token_out, expiry_ms_out, err,
				 size);
	free(b.p);
	return e;
}

void pb_oidc_refresh_cb(rd_kafka_t *rk, const char *config, void *opaque)
{
	(void)opaque;
	pb_oidc_t o;
	char err[512], kerr[512];
	char *token = NULL;
	int64_t expiry = 0;
	if (pb_oidc_parse(config, &o, err, sizeof(err)) != PB_OK ||
	    pb_oidc_fetch(&o, 10000, &token, &expiry, err, sizeof(err)) !=
		PB_OK) {
		rd_kafka_oauthbearer_set_token_failure(rk, err);
	} else if (rd_kafka_oauthbearer_set_token(rk, token, expiry,
						  o.principal, NULL, 0, kerr,
						  sizeof(kerr))) {
		rd_kafka_oauthbearer_set_token_failure(rk, kerr);
	}
	if (token) {
		memset(token, 0, strlen(token));
		free(token);
	}
	memset(o.client_secret, 0, sizeof(o.client_secret));
}
