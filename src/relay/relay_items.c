/*
 * relay_items.c: the pure parts of the relay web service (relay.h): method
 * names, paths, Pruvan's credential check, and the inbound records a call
 * becomes. No I/O, no logging.
 *
 * Invariants:
 *  - the credential check makes every comparison, each in constant time
 *    over the configured secret, whatever an earlier one found;
 *  - no item written carries a credential field, nor a media field but
 *    the one of the file this call kept;
 *  - every record passes the worker's own inbound parser, so what the
 *    service accepts is what the pipeline can consume;
 *  - an item's uuId, when Pruvan sent none, depends on its content only.
 */
#include "relay.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rules.h"
#include "util.h"

/* ---- methods and paths ----------------------------------------------------
 */

static const struct {
	pb_relay_method_t m;
	const char *name;
} methods[] = {
    {PB_RELAY_M_VALIDATE, "validate"},
    {PB_RELAY_M_GET_WORK_ORDERS, "getWorkOrders"},
    {PB_RELAY_M_STATUS, "status"},
    {PB_RELAY_M_UPLOAD_PICTURES, "uploadPictures"},
};

pb_relay_method_t pb_relay_method_of(const char *name)
{
	for (size_t i = 0; name && i < sizeof(methods) / sizeof(methods[0]);
	     i++)
		if (strcasecmp(name, methods[i].name) == 0)
			return methods[i].m;
	return PB_RELAY_M_UNKNOWN;
}

const char *pb_relay_method_name(pb_relay_method_t m)
{
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (methods[i].m == m)
			return methods[i].name;
	return "other";
}

pb_err_t pb_relay_parse_path(const char *url, const char *base, char *account,
			     size_t account_size, char *method,
			     size_t method_size)
{
	if (!url || !base)
		return PB_ERR_NOT_FOUND;
	size_t blen = strlen(base);
	if (strncmp(url, base, blen) != 0 || url[blen] != '/')
		return PB_ERR_NOT_FOUND;
	const char *a = url + blen + 1;
	const char *slash = strchr(a, '/');
	if (!slash || slash == a)
		return PB_ERR_NOT_FOUND;
	const char *m = slash + 1;
	size_t alen = (size_t)(slash - a), mlen = strlen(m);
	if (mlen && m[mlen - 1] == '/')
		mlen--; /* a trailing slash is harmless */
	if (mlen == 0 || memchr(m, '/', mlen))
		return PB_ERR_NOT_FOUND;
	const char *dot = memchr(m, '.', mlen);
	if (dot)
		mlen = (size_t)(dot - m); /* any extension: Pruvan's setup */
	if (mlen == 0 || alen >= account_size || mlen >= method_size)
		return PB_ERR_NOT_FOUND;
	memcpy(account, a, alen);
	account[alen] = '\0';
	memcpy(method, m, mlen);
	method[mlen] = '\0';
	return PB_OK;
}

/* ---- credentials ------------------------------------------------------------
 */

bool pb_relay_secret_equal(const char *given, const char *secret)
{
	if (!given || !secret)
		return false;
	size_t gl = strlen(given), sl = strlen(secret);
	/* Runs over the whole secret whatever was given: the time taken
	 * tells nothing about how much of it matched. */
	volatile unsigned char diff = gl != sl;
	for (size_t i = 0; i < sl; i++) {
		unsigned char g = i < gl ? (unsigned char)given[i] : 0;
		diff |= (unsigned char)(g ^ (unsigned char)secret[i]);
	}
	return diff == 0;
}

static void hex(const unsigned char *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

static void digest_hex(const EVP_MD *md, const void *data, size_t n, char *out,
		       size_t digest_len)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	if (EVP_Digest(data, n, d, &len, md, NULL) != 1 || len != digest_len) {
		memset(out, '0',
		       2 * digest_len); /* never equal to a real one */
		out[2 * digest_len] = '\0';
		return;
	}
	hex(d, len, out);
}

void pb_relay_sha1_hex(const char *s, char out[41])
{
	digest_hex(EVP_sha1(), s ? s : "", s ? strlen(s) : 0, out, 20);
}

void pb_relay_sha256_hex(const void *data, size_t n, char out[65])
{
	digest_hex(EVP_sha256(), data ? data : "", data ? n : 0, out, 32);
}

static const char *str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

bool pb_relay_credentials_ok(const pb_account_t *a, const json_t *payload)
{
	if (!a || !json_is_object(payload))
		return false;
	const char *user = str_of(payload, "username");
	const char *pw = str_of(payload, "password");
	const char *tok = str_of(payload, "token");
	bool user_ok = pb_relay_secret_equal(user, a->relay_username);
	bool tok_ok = pb_relay_secret_equal(tok, a->relay_token);
	bool pw_ok = pb_relay_secret_equal(pw, a->relay_password);
	/* the 40-hex form Pruvan sends, in either case */
	char want[41], given[41];
	pb_relay_sha1_hex(a->relay_password ? a->relay_password : "", want);
	size_t n = pw ? strlen(pw) : 0;
	for (size_t i = 0; i < 40; i++) {
		char c = i < n ? pw[i] : '\0';
		given[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
	}
	given[40] = '\0';
	bool sha_ok = pb_relay_secret_equal(n == 40 ? given : "", want) &&
		      a->relay_password != NULL;
	/* bitwise: no comparison is skipped by the outcome of another */
	return (int)user_ok & ((int)tok_ok | (int)pw_ok | (int)sha_ok);
}

/* ---- items ------------------------------------------------------------------
 */

const char *pb_relay_upload_kind(const json_t *meta)
{
	const json_t *s = json_object_get(meta, "survey");
	bool survey = json_is_string(s) ? json_string_length(s) > 0
					: json_is_object(s) || json_is_array(s);
	const char *et = str_of(meta, "evidenceType");
	if (et && strcasecmp(et, "survey") == 0)
		survey = true;
	return survey ? "survey" : "photo";
}

static bool name_safe(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 100 || s[0] == '.')
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
		      *p == '-'))
			return false;
	return true;
}

void pb_relay_media_name(const char *account, const char *uuid, char *out,
			 size_t out_size)
{
	if (name_safe(account) && name_safe(uuid)) {
		snprintf(out, out_size, "%s_%s", account, uuid);
		return;
	}
	/* anything else (slashes, dots, bytes a file system may mangle)
	 * becomes a hash: no name the caller sends reaches the path */
	size_t la = strlen(account), lu = strlen(uuid);
	char *both = malloc(la + lu + 2);
	char h[65];
	if (!both) {
		snprintf(out, out_size, "h-unnamed");
		return;
	}
	memcpy(both, account, la + 1);
	memcpy(both + la + 1, uuid, lu + 1);
	pb_relay_sha256_hex(both, la + lu + 1, h);
	free(both);
	snprintf(out, out_size, "h-%s", h);
}

pb_err_t pb_relay_since_ms(const json_t *payload, int64_t *since_ms_out)
{
	const json_t *t = json_object_get(payload, "timestamp");
	int64_t s;
	if (!t || json_is_null(t)) {
		*since_ms_out = -1;
		return PB_OK;
	}
	if (json_is_integer(t)) {
		s = json_integer_value(t);
	} else if (json_is_string(t) && json_string_length(t) == 0) {
		*since_ms_out = -1; /* an empty value: a full refresh too */
		return PB_OK;
	} else if (!json_is_string(t) ||
		   !pb_parse_i64(json_string_value(t), &s)) {
		return PB_ERR_INVALID;
	}
	if (s < 0 || s > 253402300799LL) /* year 9999 */
		return PB_ERR_INVALID;
	*since_ms_out = s * 1000;
	return PB_OK;
}

/* Fields Pruvan sends for its own authentication: never passed on. */
static const char *const credential_fields[] = {
    "username", "password", "token",  "pushkey",
    "pushKey",	"apiKey",   "apikey", NULL};

static void strip_credentials(json_t *item)
{
	for (size_t i = 0; credential_fields[i]; i++)
		json_object_del(item, credential_fields[i]);
}

bool pb_relay_derived_uuid(const json_t *item, char out[65])
{
	json_t *copy = json_deep_copy(item);
	if (copy)
		strip_credentials(copy);
	char *canon =
	    copy ? json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(copy);
	if (!canon)
		return false;
	pb_relay_sha256_hex(canon, strlen(canon), out);
	free(canon);
	return true;
}

/* Make a copy of src ready to wrap: credentials gone, key2 and uuId set,
 * media attached. NULL when out of memory. */
static json_t *prepared_item(const json_t *src, const pb_relay_media_t *media)
{
	json_t *item = json_deep_copy(src);
	if (!item)
		return NULL;
	strip_credentials(item);
	if (!json_object_get(item, "uuId")) {
		/* the entry's canonical JSON, before anything is added */
		char id[65];
		if (!pb_relay_derived_uuid(item, id)) {
			json_decref(item);
			return NULL;
		}
		json_object_set_new(item, "uuId", json_string(id));
	}
	/* status items name their order as Pruvan's own imports do (a
	 * number there is the same work order number, as text) */
	const json_t *won = json_object_get(item, "workOrderNumber");
	if (!json_object_get(item, "key2") && json_is_string(won))
		json_object_set(item, "key2", (json_t *)won);
	else if (!json_object_get(item, "key2") && json_is_integer(won))
		json_object_set_new(item, "key2",
				    json_sprintf("%" JSON_INTEGER_FORMAT,
						 json_integer_value(won)));
	/* media is the relay's account of a file it kept, never the
	 * caller's: a media.path naming another item's (or account's) file
	 * would have that file deleted when this item is discarded */
	json_object_del(item, "media");
	if (media && json_object_set_new(
			 item, "media",
			 json_pack("{s:s, s:s, s:I, s:s?}", "path", media->path,
				   "sha256", media->sha256, "bytes",
				   (json_int_t)media->bytes, "contentType",
				   media->content_type)) != 0) {
		json_decref(item);
		return NULL;
	}
	return item;
}

/*
 * One item (a copy of src) to one record. label names the item in
 * errors ("metadata", "workOrders[3]").
 */
static pb_err_t build_record(const char *account, const char *kind,
			     const json_t *src, const pb_relay_media_t *media,
			     const char *label, pb_relay_record_t *rec,
			     char *errstr, size_t errstr_size)
{
	if (!json_is_object(src))
		return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			       "%s must be a JSON object", label);
	json_t *item = prepared_item(src, media);
	json_t *wrap = NULL;
	char *text = NULL;
	pb_inbound_t *in = NULL;
	pb_rejection_t rej;
	memset(&rej, 0, sizeof(rej));
	pb_err_t err = PB_ERR_NOMEM;
	if (!item)
		goto out_nomem;
	wrap = json_pack("{s:s, s:s, s:O}", "account", account, "kind", kind,
			 "item", item);
	text =
	    wrap ? json_dumps(wrap, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (!text)
		goto out_nomem;
	/* the worker's own parser: what passes here is consumable there */
	if (pb_inbound_parse(text, strlen(text), &in, &rej) != PB_OK) {
		err = pb_errf(errstr, errstr_size, PB_ERR_INVALID, "%s: %s",
			      label, rej.message);
		goto out;
	}
	const char *k = in->key1 ? in->key1 : in->key2;
	size_t klen = strlen(account) + strlen(k) + 2;
	rec->key = malloc(klen);
	if (!rec->key)
		goto out_nomem;
	snprintf(rec->key, klen, "%s/%s", account, k);
	rec->value = text;
	rec->kind = kind;
	pb_strlcpy(rec->uuid, in->uuid, sizeof(rec->uuid));
	text = NULL;
	err = PB_OK;
	goto out;
out_nomem:
	err = pb_errf(errstr, errstr_size, PB_ERR_NOMEM, "out of memory");
out:
	pb_inbound_destroy(in);
	pb_rejection_clear(&rej);
	free(text);
	json_decref(wrap);
	json_decref(item);
	return err;
}

void pb_relay_records_free(pb_relay_record_t *recs, size_t n)
{
	if (!recs)
		return;
	for (size_t i = 0; i < n; i++) {
		free(recs[i].key);
		free(recs[i].value);
	}
	free(recs);
}

pb_err_t pb_relay_records(const char *account, pb_relay_method_t method,
			  const json_t *payload, const pb_relay_media_t *media,
			  size_t max_items, pb_relay_record_t **out,
			  size_t *n_out, char *errstr, size_t errstr_size)
{
	if (!json_is_object(payload))
		return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			       "the payload must be a JSON object");
	const json_t *list = NULL;
	size_t n = 1;
	if (method == PB_RELAY_M_STATUS) {
		list = json_object_get(payload, "workOrders");
		if (!json_is_array(list))
			return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
				       "workOrders is missing or not an array");
		n = json_array_size(list);
		if (n > max_items)
			return pb_errf(
			    errstr, errstr_size, PB_ERR_INVALID,
			    "%zu workOrders in one call: at most %zu", n,
			    max_items);
	} else if (method != PB_RELAY_M_UPLOAD_PICTURES) {
		return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			       "method %s relays no items",
			       pb_relay_method_name(method));
	}
	pb_relay_record_t *recs = calloc(n ? n : 1, sizeof(*recs));
	if (!recs)
		return pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			       "out of memory");
	for (size_t i = 0; i < n; i++) {
		pb_err_t err;
		if (!list) {
			err = build_record(
			    account, pb_relay_upload_kind(payload), payload,
			    media, "metadata", &recs[i], errstr, errstr_size);
		} else {
			char label[48];
			snprintf(label, sizeof(label), "workOrders[%zu]", i);
			err = build_record(account, "status",
					   json_array_get(list, i), NULL, label,
					   &recs[i], errstr, errstr_size);
		}
		if (err) {
			pb_relay_records_free(recs, i);
			return err;
		}
	}
	*out = recs;
	*n_out = n;
	return PB_OK;
}
