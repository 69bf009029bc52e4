/*
 * jtext.c: JSON text written straight into a growing buffer (jtext.h).
 */
#include "jtext.h"
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deeper than anything the worker parses (jansson's parser stops at 2048)
 * and well inside the stack. */
#define JT_MAX_DEPTH 2048

/* ---- plain runs: eight bytes at a time ----------------------------------
 * The string scans (the writer, the reader, the members' split) look at
 * every byte of every string of every event. jt_plain_end finds the first
 * byte of [p, e) that is '"', a backslash or below 0x20 (or, with high
 * set to JT_HIGHS, 0x80 or above) a word at a time: each test is "some
 * byte is below n <= 128", whose lowest flagged byte is exact (a borrow
 * only flags bytes above a true one), and on a little-endian machine the
 * lowest flagged byte is the first in memory. */

#define JT_ONES	 0x0101010101010101ULL
#define JT_HIGHS 0x8080808080808080ULL

static inline const char *jt_plain_end(const char *p, const char *e,
				       uint64_t high)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (e - p >= 8) {
		uint64_t x;
		memcpy(&x, p, 8);
		uint64_t q = x ^ (JT_ONES * '"');
		uint64_t bs = x ^ (JT_ONES * '\\');
		uint64_t m = ((x - JT_ONES * 0x20) & ~x) |
			     ((q - JT_ONES) & ~q) | ((bs - JT_ONES) & ~bs) |
			     (x & high);
		m &= JT_HIGHS;
		if (m)
			return p + (__builtin_ctzll(m) >> 3);
		p += 8;
	}
#endif
	for (; p < e; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == '"' || c == '\\' || (c >= 0x80 && high))
			return p;
	}
	return p;
}

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

bool pb_jt_reserve(pb_jtext_t *b, size_t more)
{
	jt_grow(b, more);
	return !b->bad;
}

void pb_jt_put_grow(pb_jtext_t *b, const char *s, size_t n)
{
	jt_grow(b, n);
	if (b->bad)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* "00".."99": two digits per division; the text is written back to front
 * once its length is known. Numbers are a Redis command's every argument
 * length, and the ids, offsets and times of every record: digit by digit
 * with a reversal, they were 2.7% of the worker's instructions. */
static const char digit_pairs[] = "00010203040506070809"
				  "10111213141516171819"
				  "20212223242526272829"
				  "30313233343536373839"
				  "40414243444546474849"
				  "50515253545556575859"
				  "60616263646566676869"
				  "70717273747576777879"
				  "80818283848586878889"
				  "90919293949596979899";

static size_t u64_digits(unsigned long long v)
{
	size_t n = 1;
	for (unsigned long long p = 10; n < 20 && v >= p; p *= 10)
		n++;
	return n;
}

size_t pb_u64_text(char *buf, unsigned long long v)
{
	size_t n = u64_digits(v);
	char *p = buf + n;
	*p = '\0';
	while (v >= 100) {
		unsigned i = (unsigned)(v % 100) * 2;
		v /= 100;
		p -= 2;
		p[0] = digit_pairs[i];
		p[1] = digit_pairs[i + 1];
	}
	if (v >= 10) {
		p -= 2;
		p[0] = digit_pairs[v * 2];
		p[1] = digit_pairs[v * 2 + 1];
	} else {
		*--p = (char)('0' + v);
	}
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

/* Whether s[0..n) is valid UTF-8; ASCII, nearly all of what the worker
 * writes, is passed over without a call per byte. */
static bool utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = pb_utf8_seq(s + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
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
		size_t k = (size_t)(jt_plain_end(s + i, s + n, 0) - (s + i));
		memcpy(d, s + i, k);
		d += k;
		i += k;
		if (i == n)
			break;
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			*d++ = '\\';
			*d++ = (char)c;
		} else if (c >= 0x20) {
			*d++ = (char)c;
		} else {
			*d++ = '\\';
			switch (c) {
			case '\b':
				*d++ = 'b';
				break;
			case '\f':
				*d++ = 'f';
				break;
			case '\n':
				*d++ = 'n';
				break;
			case '\r':
				*d++ = 'r';
				break;
			case '\t':
				*d++ = 't';
				break;
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

/* qsort(base, n, size, cmp) for the few members of the objects written
 * and split for every event: an insertion sort below 16 (qsort's merge
 * sort calls through a pointer per comparison and was most of a small
 * object's cost). cmp must be a total order (member names are unique; the
 * split breaks ties by position), so the result is qsort's. */
static void small_sort(void *base, size_t n, size_t size,
		       int (*cmp)(const void *, const void *))
{
	if (n > 16 || size > 64) {
		qsort(base, n, size, cmp);
		return;
	}
	char *a = base, tmp[64];
	for (size_t i = 1; i < n; i++) {
		size_t j = i;
		memcpy(tmp, a + i * size, size);
		while (j > 0 && cmp(a + (j - 1) * size, tmp) > 0) {
			memcpy(a + j * size, a + (j - 1) * size, size);
			j--;
		}
		memcpy(a + j * size, tmp, size);
	}
}

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
		small_sort(m, k, sizeof(*m), member_cmp);
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
		/* rare here; jansson's own formatting (%.17g and its fix-ups)
		 */
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

/* ---- JSON's grammar: white space and numbers ----------------------------
 * Shared by the reader (pb_json_load) and the members' split. */

/* Past the white space at p (p itself when there is none). */
static const char *ws_end(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static const char *digits_end(const char *p, const char *e)
{
	if (p >= e || *p < '0' || *p > '9')
		return NULL;
	while (p < e && *p >= '0' && *p <= '9')
		p++;
	return p;
}

/* Past the number at p, or NULL when none starts there; *real: it has a
 * fraction or an exponent. A leading zero ends the integer part ("01" is
 * the number 0, then a stray "1" for the caller to refuse). */
static const char *number_end(const char *p, const char *e, bool *real)
{
	*real = false;
	if (p < e && *p == '-')
		p++;
	if (p < e && *p == '0')
		p++;
	else if (!(p = digits_end(p, e)))
		return NULL;
	if (p < e && *p == '.') {
		*real = true;
		if (!(p = digits_end(p + 1, e)))
			return NULL;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		*real = true;
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		p = digits_end(p, e);
	}
	return p;
}

/* ---- reading ------------------------------------------------------------ */

/* A recursive-descent reader for plain JSON text (pb_json_load). Every
 * function returns NULL when the text is not plain or not JSON, and the
 * caller then lets jansson read the whole text: its values and its error
 * messages are the reference. */

#define RD_MAX_DEPTH 64

typedef struct {
	const char *p, *end;
	bool no_dups;
	int depth;
} reader_t;

static void rd_ws(reader_t *r)
{
	r->p = ws_end(r->p, r->end);
}

static json_t *rd_value(reader_t *r);

/* A string's text and length. Without escapes it points into the input
 * and *owned is NULL; with them it is decoded into *owned (malloc'd). */
static const char *rd_string(reader_t *r, size_t *len, char **owned)
{
	const char *s = ++r->p; /* past the quote */
	const char *q = s;
	bool escaped = false;
	*owned = NULL;
	for (;; q++) {
		q = jt_plain_end(q, r->end, JT_HIGHS);
		if (q >= r->end)
			return NULL;
		unsigned char c = (unsigned char)*q;
		if (c == '"')
			break;
		if (c < 0x20 || c >= 0x80)
			return NULL; /* control bytes and UTF-8: jansson's */
		if (c == '\\') {
			if (++q >= r->end)
				return NULL;
			escaped = true;
		}
	}
	r->p = q + 1;
	if (!escaped) {
		*len = (size_t)(q - s);
		return s;
	}
	char *out = malloc((size_t)(q - s));
	if (!out)
		return NULL;
	size_t n = 0;
	for (const char *c = s; c < q; c++) {
		if (*c != '\\') {
			out[n++] = *c;
			continue;
		}
		char e;
		switch (*++c) {
		case '"':
			e = '"';
			break;
		case '\\':
			e = '\\';
			break;
		case '/':
			e = '/';
			break;
		case 'b':
			e = '\b';
			break;
		case 'f':
			e = '\f';
			break;
		case 'n':
			e = '\n';
			break;
		case 'r':
			e = '\r';
			break;
		case 't':
			e = '\t';
			break;
		default: /* \u and invalid escapes: jansson's */
			free(out);
			return NULL;
		}
		out[n++] = e;
	}
	*len = n;
	*owned = out;
	return out;
}

static json_t *rd_number(reader_t *r)
{
	const char *s = r->p;
	bool real;
	const char *q = number_end(s, r->end, &real);
	if (!q)
		return NULL;
	r->p = q;
	if (!real) {
		const char *digits = s + (*s == '-');
		if (q - digits > 18)
			return NULL; /* may overflow: jansson says how */
		long long v = 0;
		for (const char *d = digits; d < q; d++)
			v = v * 10 + (*d - '0');
		return json_integer(*s == '-' ? -v : v);
	}
	char buf[64];
	if ((size_t)(q - s) >= sizeof(buf))
		return NULL;
	memcpy(buf, s, (size_t)(q - s));
	buf[q - s] = '\0';
	char *stop;
	double v = strtod(buf, &stop);
	if (*stop || v > 1.7976931348623157e308 || v < -1.7976931348623157e308)
		return NULL; /* overflow: jansson's error */
	return json_real(v);
}

/* Skips white space; steps over the next byte when it is c. */
static bool rd_take(reader_t *r, char c)
{
	rd_ws(r);
	if (r->p < r->end && *r->p == c) {
		r->p++;
		return true;
	}
	return false;
}

/* "key": value, into o. A key can hold no NUL here: raw control bytes
 * and \u go to jansson. */
static bool rd_member(reader_t *r, json_t *o)
{
	rd_ws(r);
	if (r->p >= r->end || *r->p != '"')
		return false;
	size_t klen;
	char *owned;
	const char *key = rd_string(r, &klen, &owned);
	bool ok = key && rd_take(r, ':');
	json_t *v = ok ? rd_value(r) : NULL;
	size_t before = json_object_size(o);
	ok = v && json_object_setn_new_nocheck(o, key, klen, v) == 0;
	/* a duplicate the caller refuses is jansson's to report: the set
	 * replaced a member, so the object did not grow (no lookup first) */
	if (ok && r->no_dups && json_object_size(o) == before)
		ok = false;
	if (owned) /* rare (escapes): free(NULL) per string was 1% */
		free(owned);
	return ok;
}

/* An object or an array, its opening byte at r->p. */
static json_t *rd_container(reader_t *r, bool object)
{
	r->p++;
	json_t *c = object ? json_object() : json_array();
	char close = object ? '}' : ']';
	if (c && !rd_take(r, close)) {
		do {
			json_t *v = object ? NULL : rd_value(r);
			bool ok = object
				      ? rd_member(r, c)
				      : v && json_array_append_new(c, v) == 0;
			if (!ok) {
				json_decref(c);
				return NULL;
			}
		} while (rd_take(r, ','));
		if (!rd_take(r, close)) {
			json_decref(c);
			return NULL;
		}
	}
	return c;
}

static json_t *rd_word(reader_t *r, const char *w, json_t *v)
{
	size_t n = strlen(w);
	if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0) {
		json_decref(v);
		return NULL;
	}
	r->p += n;
	return v;
}

static json_t *rd_value(reader_t *r)
{
	rd_ws(r);
	if (r->p >= r->end)
		return NULL;
	json_t *v = NULL;
	switch (*r->p) {
	case '{':
	case '[':
		if (++r->depth > RD_MAX_DEPTH)
			return NULL;
		v = rd_container(r, *r->p == '{');
		r->depth--;
		return v;
	case '"': {
		size_t n;
		char *owned;
		const char *s = rd_string(r, &n, &owned);
		v = s ? json_stringn_nocheck(s, n) : NULL;
		if (owned)
			free(owned);
		return v;
	}
	case 't':
		return rd_word(r, "true", json_true());
	case 'f':
		return rd_word(r, "false", json_false());
	case 'n':
		return rd_word(r, "null", json_null());
	default:
		return rd_number(r);
	}
}

/* A raw NUL byte is never JSON (RFC 8259: control characters are escaped,
 * in strings too), but jansson's reader skips some between tokens and
 * takes "{\"a\": 2\0}". The worker refuses every one, in pb_json_load and
 * in the members split alike, so both agree on what is JSON. */
static const char *raw_nul(const char *text, size_t n)
{
	return text ? memchr(text, '\0', n) : NULL;
}

json_t *pb_json_load(const char *text, size_t n, size_t flags,
		     json_error_t *err)
{
	const char *nul = raw_nul(text, n);
	if (nul) {
		if (err) {
			memset(err, 0, sizeof(*err));
			err->line = -1;
			err->column = -1;
			err->position = (int)(nul - text);
			snprintf(err->text, sizeof(err->text),
				 "a raw NUL byte at byte %zu: JSON text "
				 "carries none (escape it as \\u0000)",
				 (size_t)(nul - text));
		}
		return NULL;
	}
	if (text && (flags & ~(size_t)JSON_REJECT_DUPLICATES) == 0) {
		reader_t r = {text, text + n, flags & JSON_REJECT_DUPLICATES,
			      0};
		rd_ws(&r);
		/* jansson's default: an object or an array at the top */
		json_t *v = r.p < r.end && (*r.p == '{' || *r.p == '[')
				? rd_value(&r)
				: NULL;
		if (v) {
			rd_ws(&r);
			if (r.p == r.end)
				return v;
			json_decref(v);
		}
	}
	return json_loadb(text, n, flags, err);
}

/* ---- an object's members as spans --------------------------------------- */

static bool sp_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

/*
 * The span scan (sp_*) checks JSON's grammar; what only jansson decides
 * (valid UTF-8, \u escapes: surrogate pairs and U+0000, a number's range,
 * nesting near its depth limit) it flags in *check, and the split then has
 * jansson read the whole text, so that it accepts exactly what json_loadb
 * accepts (tests/fuzz/fuzz_event.c checks that).
 */

/* p at '"': past the closing quote, or NULL. */
static const char *sp_string(const char *p, const char *e, bool *escaped,
			     bool *check)
{
	for (p++; p < e; p++) {
		p = jt_plain_end(p, e, JT_HIGHS);
		if (p >= e)
			break;
		unsigned char c = (unsigned char)*p;
		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (c >= 0x80)
			*check = true;
		if (c != '\\')
			continue;
		*escaped = true;
		if (++p >= e)
			return NULL;
		if (*p == 'u') {
			if (e - p < 5 || !sp_hex(p[1]) || !sp_hex(p[2]) ||
			    !sp_hex(p[3]) || !sp_hex(p[4]))
				return NULL;
			*check = true;
			p += 4;
		} else if (*p == '\0' || !strchr("\"\\/bfnrt", *p)) {
			/* strchr finds the terminator: a NUL is no escape */
			return NULL;
		}
	}
	return NULL;
}

static const char *sp_value(const char *p, const char *e, int depth,
			    bool *check);

/* p at '{' or '['. */
static const char *sp_container(const char *p, const char *e, int depth,
				bool *check)
{
	char close = *p == '{' ? '}' : ']';
	bool escaped = false;
	if (depth >= 64)
		*check = true; /* jansson counts its depth limit its own way */
	p = ws_end(p + 1, e);
	if (p < e && *p == close)
		return p + 1;
	for (;;) {
		if (close == '}') {
			if (p >= e || *p != '"' ||
			    !(p = sp_string(p, e, &escaped, check)))
				return NULL;
			p = ws_end(p, e);
			if (p >= e || *p != ':')
				return NULL;
			p = ws_end(p + 1, e);
		}
		if (!(p = sp_value(p, e, depth + 1, check)))
			return NULL;
		p = ws_end(p, e);
		if (p < e && *p == ',') {
			p = ws_end(p + 1, e);
			continue;
		}
		return p < e && *p == close ? p + 1 : NULL;
	}
}

static const char *sp_value(const char *p, const char *e, int depth,
			    bool *check)
{
	bool escaped = false, real;
	const char *q;
	if (p >= e || depth > JT_MAX_DEPTH)
		return NULL;
	switch (*p) {
	case '"':
		return sp_string(p, e, &escaped, check);
	case '{':
	case '[':
		return sp_container(p, e, depth, check);
	case 't':
		return e - p >= 4 && !memcmp(p, "true", 4) ? p + 4 : NULL;
	case 'f':
		return e - p >= 5 && !memcmp(p, "false", 5) ? p + 5 : NULL;
	case 'n':
		return e - p >= 4 && !memcmp(p, "null", 4) ? p + 4 : NULL;
	default:
		q = number_end(p, e, &real);
		/* an integer of 19 digits or more may not fit json_int_t, a
		 * real with an exponent or 300 digits may overflow a double */
		if (q &&
		    (real ? q - p >= 300 || memchr(p, 'e', (size_t)(q - p)) ||
				memchr(p, 'E', (size_t)(q - p))
			  : q - p >= 19))
			*check = true;
		return q;
	}
}

/* member_cmp's order (jansson's) of two names */
static int span_key_cmp(const pb_jt_member_t *x, const pb_jt_member_t *y)
{
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int r = memcmp(x->key, y->key, n);
	if (r || x->klen == y->klen)
		return r;
	return x->klen < y->klen ? -1 : 1;
}

/* ... and of equal names, the later member first */
static int span_member_cmp(const void *a, const void *b)
{
	const pb_jt_member_t *x = a, *y = b;
	int r = span_key_cmp(x, y);
	if (r)
		return r;
	return x->pos > y->pos ? -1 : x->pos < y->pos;
}

void pb_jt_members_free(pb_jt_members_t *ms)
{
	for (size_t i = 0; ms->m && i < ms->n; i++)
		if (ms->m[i].owned) /* nearly never: a name with an escape */
			free(ms->m[i].owned);
	if (ms->m != ms->local)
		free(ms->m);
	ms->m = NULL;
	ms->n = 0;
}

static bool members_add(pb_jt_members_t *ms, size_t *cap,
			const pb_jt_member_t *x)
{
	if (ms->n == *cap) {
		size_t nc = *cap * 2;
		pb_jt_member_t *m = malloc(nc * sizeof(*m));
		if (!m)
			return false;
		memcpy(m, ms->m, ms->n * sizeof(*m));
		if (ms->m != ms->local)
			free(ms->m);
		ms->m = m;
		*cap = nc;
	}
	ms->m[ms->n++] = *x;
	return true;
}

char *pb_jt_string_text(const char *text, size_t n, size_t *len)
{
	if (n < 2 || text[0] != '"' || text[n - 1] != '"')
		return NULL;
	bool plain = true;
	for (size_t i = 1; plain && i < n - 1; i++)
		plain = text[i] != '\\' && text[i] != '"' &&
			(unsigned char)text[i] >= 0x20;
	char *out = NULL;
	size_t k = n - 2;
	if (plain) {
		out = malloc(k + 1);
		if (out) {
			memcpy(out, text + 1, k);
			out[k] = '\0';
		}
	} else {
		json_t *j = json_loadb(text, n, JSON_DECODE_ANY, NULL);
		if (json_is_string(j)) {
			k = json_string_length(j);
			out = malloc(k + 1);
			if (out)
				memcpy(out, json_string_value(j), k + 1);
		}
		json_decref(j);
	}
	if (out && len)
		*len = k;
	return out;
}

bool pb_jt_members_split(const char *text, size_t n, pb_jt_members_t *out)
{
	const char *p = text, *e = text + n;
	size_t cap = sizeof(out->local) / sizeof(out->local[0]);
	bool sorted = true, check = false;
	out->m = out->local;
	out->n = 0;
	if (raw_nul(text, n))
		goto bad;
	p = ws_end(p, e);
	if (p >= e || *p != '{')
		goto bad;
	p = ws_end(p + 1, e);
	if (p < e && *p == '}') {
		p++;
		goto end;
	}
	for (;;) {
		pb_jt_member_t x = {0};
		bool escaped = false;
		if (p >= e || *p != '"')
			goto bad;
		x.raw_key = p;
		if (!(p = sp_string(p, e, &escaped, &check)))
			goto bad;
		x.raw_klen = (size_t)(p - x.raw_key);
		x.key = x.raw_key + 1;
		x.klen = x.raw_klen - 2;
		x.pos = out->n;
		if (escaped) {
			x.owned =
			    pb_jt_string_text(x.raw_key, x.raw_klen, &x.klen);
			x.key = x.owned;
			if (!x.owned)
				goto bad;
		}
		p = ws_end(p, e);
		if (p >= e || *p != ':') {
			free(x.owned);
			goto bad;
		}
		x.val = ws_end(p + 1, e);
		p = sp_value(x.val, e, 2, &check);
		if (p)
			x.vlen = (size_t)(p - x.val);
		if (!p || !members_add(out, &cap, &x)) {
			free(x.owned);
			goto bad;
		}
		if (out->n > 1 &&
		    span_key_cmp(&out->m[out->n - 2], &out->m[out->n - 1]) >= 0)
			sorted = false;
		p = ws_end(p, e);
		if (p < e && *p == ',') {
			p = ws_end(p + 1, e);
			continue;
		}
		if (p >= e || *p != '}')
			goto bad;
		p++;
		break;
	}
end:
	if (ws_end(p, e) != e)
		goto bad;
	if (check) {
		json_t *j = json_loadb(text, n, 0, NULL);
		if (!j)
			goto bad;
		json_decref(j);
	}
	if (!sorted) {
		small_sort(out->m, out->n, sizeof(*out->m), span_member_cmp);
		size_t k = 0; /* of equal keys, the first (the latest) stays */
		for (size_t i = 0; i < out->n; i++) {
			if (k && !span_key_cmp(&out->m[k - 1], &out->m[i])) {
				free(out->m[i].owned);
				continue;
			}
			out->m[k++] = out->m[i];
		}
		out->n = k;
	}
	return true;
bad:
	pb_jt_members_free(out);
	return false;
}

const pb_jt_member_t *pb_jt_members_find(const pb_jt_members_t *ms,
					 const char *key)
{
	pb_jt_member_t k = {.key = key, .klen = strlen(key)};
	size_t lo = 0, hi = ms->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = span_key_cmp(&k, &ms->m[mid]);
		if (!r)
			return &ms->m[mid];
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Where a member's parts went while its object was written (the buffers
 * may move as they grow): offsets into the text, or for a sorted value
 * written apart, into aux. */
typedef struct {
	size_t key, vstart, vlen;
	size_t sstart, slen; /* the sorted value in aux; slen 0: none */
} member_at_t;

/* The nested value v written sorted into aux when that text can differ
 * from its insertion-order text (an object or an array holds one). */
static void sorted_apart(pb_jtext_t *aux, const json_t *v, member_at_t *at)
{
	at->slen = 0;
	if (!json_is_object(v) && !json_is_array(v))
		return;
	at->sstart = aux->len;
	jt_value(aux, v, true, 1);
	at->slen = aux->len - at->sstart;
}

static bool members_fill(const json_t *j, const pb_jtext_t *t,
			 const pb_jtext_t *aux, const member_at_t *at,
			 pb_jt_members_t *out)
{
	size_t cap = sizeof(out->local) / sizeof(out->local[0]), k = 0;
	for (void *it = json_object_iter((json_t *)j); it;
	     it = json_object_iter_next((json_t *)j, it), k++) {
		pb_jt_member_t x = {0};
		x.key = json_object_iter_key(it);
		x.klen = json_object_iter_key_len(it);
		x.raw_key = t->p + at[k].key;
		x.raw_klen = at[k].vstart - 1 - at[k].key;
		x.val =
		    at[k].slen ? aux->p + at[k].sstart : t->p + at[k].vstart;
		x.vlen = at[k].slen ? at[k].slen : at[k].vlen;
		x.pos = k;
		if (!members_add(out, &cap, &x))
			return false;
	}
	if (out->n > 1)
		small_sort(out->m, out->n, sizeof(*out->m), span_member_cmp);
	return true;
}

bool pb_jt_members_of(const json_t *j, char **text_out, pb_jt_members_t *out,
		      pb_jtext_t *aux)
{
	out->m = out->local;
	out->n = 0;
	*text_out = NULL;
	size_t n = json_object_size(j), k = 0;
	if (!json_is_object(j))
		return false;
	member_at_t local[32];
	member_at_t *at = n <= 32 ? local : malloc(n * sizeof(*at));
	pb_jtext_t t = {0};
	if (!at)
		return false;
	pb_jt_put(&t, "{", 1);
	for (void *it = json_object_iter((json_t *)j); it && k < n;
	     it = json_object_iter_next((json_t *)j, it), k++) {
		if (k)
			pb_jt_put(&t, ",", 1);
		at[k].key = t.len;
		/* as jt_object writes a member, one level down */
		jt_strn(&t, json_object_iter_key(it),
			json_object_iter_key_len(it));
		pb_jt_put(&t, ":", 1);
		at[k].vstart = t.len;
		const json_t *v = json_object_iter_value(it);
		jt_value(&t, v, false, 1);
		at[k].vlen = t.len - at[k].vstart;
		sorted_apart(aux, v, &at[k]);
	}
	pb_jt_put(&t, "}", 1);
	bool ok =
	    k == n && !t.bad && !aux->bad && members_fill(j, &t, aux, at, out);
	if (at != local)
		free(at);
	if (!ok) {
		pb_jt_members_free(out);
		free(t.p);
		return false;
	}
	*text_out = t.p;
	return true;
}

/* x as `,"key":value` (no comma when first) into room reserved before
 * (pb_jt_members_merge). */
static void member_put(pb_jtext_t *b, const pb_jt_member_t *x, bool first)
{
	char *d = b->p + b->len;
	if (!first)
		*d++ = ',';
	memcpy(d, x->raw_key, x->raw_klen);
	d += x->raw_klen;
	*d++ = ':';
	memcpy(d, x->val, x->vlen);
	d += x->vlen;
	b->len = (size_t)(d - b->p);
}

/* The room every member of ms takes written by member_put. */
static size_t members_room(const pb_jt_members_t *ms)
{
	size_t n = 0;
	for (size_t i = 0; ms && i < ms->n; i++)
		n += ms->m[i].raw_klen + ms->m[i].vlen + 2;
	return n;
}

char *pb_jt_members_merge(const pb_jt_members_t *a, const pb_jt_members_t *b)
{
	pb_jtext_t t = {0};
	size_t i = 0, j = 0, na = a ? a->n : 0;
	/* one allocation for the whole text: at most every member of both */
	jt_grow(&t, members_room(a) + members_room(b) + 2);
	if (t.bad)
		return NULL;
	pb_jt_put(&t, "{", 1);
	while (i < na || j < b->n) {
		const pb_jt_member_t *x;
		if (j == b->n) {
			x = &a->m[i++];
		} else if (i == na) {
			x = &b->m[j++];
		} else {
			int r = span_key_cmp(&a->m[i], &b->m[j]);
			if (r < 0) {
				x = &a->m[i++];
			} else {
				x = &b->m[j++];
				i += r == 0; /* the same name: b's value */
			}
		}
		member_put(&t, x, t.len == 1);
	}
	pb_jt_put(&t, "}", 1);
	return pb_jt_take(&t);
}
