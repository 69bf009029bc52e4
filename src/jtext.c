/*
 * jtext.c: JSON text written straight into a growing buffer (jtext.h).
 */
#include "jtext.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deeper than anything the worker parses (jansson's parser stops at 2048)
 * and well inside the stack. */
#define JT_MAX_DEPTH 2048

static void jt_grow(pb_jtext_t *b, size_t more)
{
	if (b->bad || b->len + more + 1 <= b->cap)
		return;
	size_t nc = b->cap ? b->cap : 512;
	while (nc < b->len + more + 1)
		nc *= 2;
	char *n = realloc(b->p, nc);
	if (!n) {
		b->bad = true;
		return;
	}
	b->p = n;
	b->cap = nc;
}

void pb_jt_put(pb_jtext_t *b, const char *s, size_t n)
{
	jt_grow(b, n);
	if (b->bad)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void pb_jt_lit(pb_jtext_t *b, const char *s)
{
	pb_jt_put(b, s, strlen(s));
}

size_t pb_u64_text(char *buf, unsigned long long v)
{
	char tmp[24];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	buf[n] = '\0';
	return n;
}

size_t pb_i64_text(char *buf, long long v)
{
	if (v >= 0)
		return pb_u64_text(buf, (unsigned long long)v);
	buf[0] = '-';
	return 1 + pb_u64_text(buf + 1, 0ULL - (unsigned long long)v);
}

void pb_jt_i64(pb_jtext_t *b, long long v)
{
	char n[24];
	pb_jt_put(b, n, pb_i64_text(n, v));
}

static bool utf8_ok(const unsigned char *s, size_t n)
{
	for (size_t i = 0, k; i < n; i += k)
		if ((k = pb_utf8_seq(s + i, n - i)) == 0)
			return false;
	return true;
}

/* n bytes of valid UTF-8 as a JSON string: '"' and '\\' escaped, control
 * characters as jansson writes them, everything else as it is. */
static void jt_strn(pb_jtext_t *b, const char *s, size_t n)
{
	jt_grow(b, n * 6 + 2);
	if (b->bad)
		return;
	static const char hex[] = "0123456789ABCDEF";
	char *d = b->p + b->len;
	*d++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			*d++ = '\\';
			*d++ = (char)c;
		} else if (c >= 0x20) {
			*d++ = (char)c;
		} else {
			*d++ = '\\';
			switch (c) {
			case '\b': *d++ = 'b'; break;
			case '\f': *d++ = 'f'; break;
			case '\n': *d++ = 'n'; break;
			case '\r': *d++ = 'r'; break;
			case '\t': *d++ = 't'; break;
			default:
				*d++ = 'u';
				*d++ = '0';
				*d++ = '0';
				*d++ = hex[c >> 4];
				*d++ = hex[c & 15];
			}
		}
	}
	*d++ = '"';
	b->len = (size_t)(d - b->p);
	b->p[b->len] = '\0';
}

void pb_jt_str(pb_jtext_t *b, const char *s)
{
	if (!s) {
		pb_jt_lit(b, "null");
		return;
	}
	size_t n = strlen(s);
	if (!utf8_ok((const unsigned char *)s, n)) {
		b->bad = true;
		return;
	}
	jt_strn(b, s, n);
}

typedef struct {
	const char *key;
	size_t len;
	const json_t *val;
} member_t;

/* jansson's order for JSON_SORT_KEYS: bytes, then length. */
static int member_cmp(const void *a, const void *b)
{
	const member_t *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int r = memcmp(x->key, y->key, n);
	if (r)
		return r;
	return x->len < y->len ? -1 : x->len > y->len;
}

static void jt_value(pb_jtext_t *b, const json_t *j, bool sort, int depth);

static void jt_object(pb_jtext_t *b, const json_t *j, bool sort, int depth)
{
	size_t n = json_object_size(j);
	pb_jt_put(b, "{", 1);
	if (n == 0) {
		pb_jt_put(b, "}", 1);
		return;
	}
	member_t local[32];
	member_t *m = n <= 32 ? local : malloc(n * sizeof(*m));
	if (!m) {
		b->bad = true;
		return;
	}
	size_t k = 0;
	for (void *it = json_object_iter((json_t *)j); it && k < n;
	     it = json_object_iter_next((json_t *)j, it)) {
		m[k].key = json_object_iter_key(it);
		m[k].len = json_object_iter_key_len(it);
		m[k].val = json_object_iter_value(it);
		k++;
	}
	if (sort && k > 1)
		qsort(m, k, sizeof(*m), member_cmp);
	for (size_t i = 0; i < k && !b->bad; i++) {
		if (i)
			pb_jt_put(b, ",", 1);
		jt_strn(b, m[i].key, m[i].len);
		pb_jt_put(b, ":", 1);
		jt_value(b, m[i].val, sort, depth + 1);
	}
	if (m != local)
		free(m);
	pb_jt_put(b, "}", 1);
}

static void jt_value(pb_jtext_t *b, const json_t *j, bool sort, int depth)
{
	if (!j || depth > JT_MAX_DEPTH) {
		b->bad = true;
		return;
	}
	switch (json_typeof(j)) {
	case JSON_NULL:
		pb_jt_put(b, "null", 4);
		return;
	case JSON_TRUE:
		pb_jt_put(b, "true", 4);
		return;
	case JSON_FALSE:
		pb_jt_put(b, "false", 5);
		return;
	case JSON_INTEGER:
		pb_jt_i64(b, (long long)json_integer_value(j));
		return;
	case JSON_REAL: {
		/* rare here; jansson's own formatting (%.17g and its fix-ups) */
		char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!s) {
			b->bad = true;
			return;
		}
		pb_jt_lit(b, s);
		free(s);
		return;
	}
	case JSON_STRING:
		jt_strn(b, json_string_value(j), json_string_length(j));
		return;
	case JSON_ARRAY: {
		size_t n = json_array_size(j);
		pb_jt_put(b, "[", 1);
		for (size_t i = 0; i < n && !b->bad; i++) {
			if (i)
				pb_jt_put(b, ",", 1);
			jt_value(b, json_array_get(j, i), sort, depth + 1);
		}
		pb_jt_put(b, "]", 1);
		return;
	}
	case JSON_OBJECT:
		jt_object(b, j, sort, depth);
		return;
	}
	b->bad = true;
}

void pb_jt_json(pb_jtext_t *b, const json_t *j, bool sort_keys)
{
	jt_value(b, j, sort_keys, 0);
}

char *pb_jt_take(pb_jtext_t *b)
{
	char *p = b->bad ? NULL : b->p;
	if (b->bad)
		free(b->p);
	else if (!p)
		p = strdup("");
	b->p = NULL;
	b->len = b->cap = 0;
	b->bad = false;
	return p;
}

char *pb_jt_dumps(const json_t *j, bool sort_keys)
{
	pb_jtext_t b = {0};
	pb_jt_json(&b, j, sort_keys);
	return pb_jt_take(&b);
}
