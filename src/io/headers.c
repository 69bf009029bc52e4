/*
 * headers.c: input headers onto outcome, DLQ and replayed records (the
 * contract is headers.h).
 */
#include "headers.h"

#include <string.h>

rd_kafka_headers_t *pb_headers_take_of_message(rd_kafka_message_t *m)
{
	rd_kafka_headers_t *h = NULL;
	if (rd_kafka_message_detach_headers(m, &h) !=
		RD_KAFKA_RESP_ERR_NO_ERROR ||
	    !h)
		return NULL;
	if (rd_kafka_header_cnt(h) == 0) {
		rd_kafka_headers_destroy(h);
		return NULL;
	}
	return h;
}

bool pb_header_reserved(const char *name)
{
	static const char *const exact[] = {
	    "x-attempts", "x-http-status", "x-response-body",
	    "x-request",  "x-truncated",   "x-replayed-from"};
	if (strncmp(name, "x-error-", 8) == 0 ||
	    strncmp(name, "x-source-", 9) == 0)
		return true;
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (strcmp(name, exact[i]) == 0)
			return true;
	return false;
}

void pb_headers_add_all(rd_kafka_headers_t *dst, const rd_kafka_headers_t *src,
			bool skip_reserved)
{
	const char *name;
	const void *v;
	size_t n;
	for (size_t i = 0;
	     src && !rd_kafka_header_get_all(src, i, &name, &v, &n); i++) {
		if (skip_reserved && pb_header_reserved(name))
			continue;
		rd_kafka_header_add(dst, name, -1, v, v ? (ssize_t)n : -1);
	}
}

rd_kafka_headers_t *pb_headers_copy_new(const rd_kafka_headers_t *h)
{
	if (!h || rd_kafka_header_cnt(h) == 0)
		return NULL;
	return rd_kafka_headers_copy(h);
}

/* Length of the valid UTF-8 sequence at s[0..n), 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	/* overlong, surrogate and beyond U+10FFFF forms */
	if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) ||
	    (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
		return 0;
	return len;
}

/* A JSON string of the bytes v[0..n). */
static void put_string(pb_jtext_t *b, const unsigned char *v, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	pb_jt_lit(b, "\"");
	size_t i = 0;
	while (i < n) {
		unsigned c = v[i];
		size_t k = utf8_seq(v + i, n - i);
		if (k == 0) {
			pb_jt_lit(b, "\\ufffd");
			i++;
		} else if (c == '"' || c == '\\') {
			pb_jt_put(b, "\\", 1);
			pb_jt_put(b, (const char *)v + i, 1);
			i++;
		} else if (c < 0x20) {
			char esc[7] = {'\\',	    'u',	 '0', '0',
				       hex[c >> 4], hex[c & 15], 0};
			pb_jt_lit(b, esc);
			i++;
		} else {
			pb_jt_put(b, (const char *)v + i, k);
			i += k;
		}
	}
	pb_jt_lit(b, "\"");
}

/* True when a later header of h has the same name as the i-th. */
static bool repeated_later(const rd_kafka_headers_t *h, size_t i,
			   const char *name)
{
	const char *other;
	const void *v;
	size_t n;
	for (size_t j = i + 1; !rd_kafka_header_get_all(h, j, &other, &v, &n);
	     j++)
		if (strcmp(other, name) == 0)
			return true;
	return false;
}

void pb_headers_render(pb_jtext_t *b, const rd_kafka_headers_t *h)
{
	if (!h || rd_kafka_header_cnt(h) == 0)
		return;
	pb_jt_lit(b, ",\"headers\":{");
	const char *name;
	const void *v;
	size_t n, used = 0;
	bool first = true, cut = false;
	for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &v, &n); i++) {
		if (repeated_later(h, i, name))
			continue;
		size_t size = strlen(name) + (v ? n : 0);
		if (used + size > PB_HEADERS_RENDER_MAX) {
			cut = true;
			continue;
		}
		used += size;
		if (!first)
			pb_jt_lit(b, ",");
		first = false;
		put_string(b, (const unsigned char *)name, strlen(name));
		pb_jt_lit(b, ":");
		put_string(b, v ? v : (const void *)"", v ? n : 0);
	}
	pb_jt_lit(b, "}");
	if (cut)
		pb_jt_lit(b, ",\"headersTruncated\":true");
}

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

bool pb_headers_traceparent(const rd_kafka_headers_t *h, char *buf, size_t size)
{
	const void *v;
	size_t n;
	if (size)
		buf[0] = '\0';
	if (!h || size < PB_TRACEPARENT_LEN + 1 ||
	    rd_kafka_header_get_last(h, "traceparent", &v, &n) || !v ||
	    n != PB_TRACEPARENT_LEN)
		return false;
	const char *s = v;
	if (s[2] != '-' || s[35] != '-' || s[52] != '-' || !is_hex(s, 2) ||
	    !is_hex(s + 3, 32) || !is_hex(s + 36, 16) || !is_hex(s + 53, 2))
		return false;
	memcpy(buf, s, PB_TRACEPARENT_LEN);
	buf[PB_TRACEPARENT_LEN] = '\0';
	return true;
}
