/*
 * test_base.c: errors, logging and helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "jtext.h"
#include "log.h"
#include "util.h"

static void test_redact_hides_query_and_userinfo(void **state)
{
	(void)state;
	char buf[256];
	pb_redact_url("https://direct.pruvan.com/api/?apiKey=SECRET123", buf,
		      sizeof(buf));
	assert_null(strstr(buf, "SECRET123"));
	assert_string_equal(buf, "https://direct.pruvan.com/api/?<redacted>");
	pb_redact_url("http://user:pw@host:1/x", buf, sizeof(buf));
	assert_null(strstr(buf, "pw"));
	assert_string_equal(buf, "http://<redacted>@host:1/x");
	pb_redact_url(NULL, buf, sizeof(buf));
	assert_string_equal(buf, "(none)");
}

/* A thread's first timestamp in the second before the epoch: that second
 * must not be taken for the one already formatted. */
static void *first_in_thread(void *buf)
{
	pb_ms_to_rfc3339(-1, buf, 40);
	return NULL;
}

static void test_rfc3339_format(void **state)
{
	(void)state;
	char buf[40];
	pb_ms_to_rfc3339(1795881600123LL, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-28T16:00:00.123Z");
	/* the same second again (its text is kept), the next, one before */
	pb_ms_to_rfc3339(1795881600007LL, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-28T16:00:00.007Z");
	pb_ms_to_rfc3339(1795881601999LL, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-28T16:00:01.999Z");
	pb_ms_to_rfc3339(1795881599000LL, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-28T15:59:59.000Z");
	pb_ms_to_rfc3339(-1, buf, sizeof(buf));
	assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
	pthread_t th;
	char fresh[40] = "";
	assert_int_equal(pthread_create(&th, NULL, first_in_thread, fresh), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_string_equal(fresh, "1969-12-31T23:59:59.999Z");
	char small[11];
	pb_ms_to_rfc3339(1795881600123LL, small, sizeof(small));
	assert_string_equal(small, "2026-11-28");
}

static void test_log_writes_one_json_object_per_line(void **state)
{
	(void)state;
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pb_log_set_fd(fds[1]);
	pb_log_set_level(PB_LOG_INFO);
	pb_log(PB_LOG_DEBUG, "hidden", NULL);
	pb_log(PB_LOG_WARN, "line \"one\"\n", "account", "acme", "x", NULL,
	       NULL);
	pb_log_set_fd(2);
	close(fds[1]);
	char buf[1024] = {0};
	ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	assert_true(n > 0);
	assert_int_equal(buf[n - 1], '\n');
	int lines = 0;
	for (ssize_t i = 0; i < n; i++)
		lines += buf[i] == '\n';
	assert_int_equal(lines, 1); /* the debug line was filtered out */
	json_error_t jerr;
	json_t *o = json_loads(buf, 0, &jerr);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "level")),
			    "warn");
	assert_string_equal(json_string_value(json_object_get(o, "msg")),
			    "line \"one\"\n");
	assert_string_equal(json_string_value(json_object_get(o, "account")),
			    "acme");
	assert_true(json_is_null(json_object_get(o, "x")));
	assert_non_null(json_object_get(o, "time"));
	json_decref(o);
}

static void test_log_level_parse(void **state)
{
	(void)state;
	pb_log_level_t l;
	assert_true(pb_log_level_parse("DEBUG", &l));
	assert_int_equal(l, PB_LOG_DEBUG);
	assert_true(pb_log_level_parse("warning", &l));
	assert_int_equal(l, PB_LOG_WARN);
	assert_false(pb_log_level_parse("loud", &l));
}

static void test_err_classes(void **state)
{
	(void)state;
	char buf[64];
	assert_int_equal(pb_errf(buf, sizeof(buf), PB_ERR_INVALID, "bad %d", 7),
			 PB_ERR_INVALID);
	assert_string_equal(buf, "bad 7");
	assert_true(pb_err_is_retriable(PB_ERR_REDIS));
	assert_false(pb_err_is_retriable(PB_ERR_INVALID));
	assert_string_equal(pb_err_name(PB_ERR_TIMEOUT), "timeout");
}

/* ---- jtext: the same bytes as json_dumps ------------------------------ */

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Text fragments that exercise escaping, multi-byte UTF-8, NUL bytes and
 * keys that sort by length after a common prefix. */
static const char *const pieces[] = {
    "a",
    "ab",
    "",
    "\"",
    "\\",
    "/",
    "\b\f\n\r\t",
    "\x01\x1f",
    "\x7f",
    "caf\xc3\xa9",
    "\xe2\x82\xac",
    "\xf0\x9f\x8f\xa0",
    "workOrderNumber",
    "Z",
    "0",
};

static json_t *gen_string(size_t *len_out, char *buf, size_t size)
{
	size_t len = 0;
	int parts = (int)(rng() % 4);
	for (int i = 0; i < parts; i++) {
		const char *p =
		    pieces[rng() % (sizeof(pieces) / sizeof(*pieces))];
		size_t n = strlen(p);
		if (len + n + 2 >= size)
			break;
		memcpy(buf + len, p, n);
		len += n;
		if (rng() % 16 == 0)
			buf[len++] = '\0';
	}
	buf[len] = '\0';
	*len_out = len;
	return json_stringn(buf, len);
}

static json_t *gen_value(int depth)
{
	char buf[128];
	size_t len;
	switch (depth > 4 ? rng() % 6 : rng() % 8) {
	case 0:
		return json_null();
	case 1:
		return rng() % 2 ? json_true() : json_false();
	case 2: {
		json_int_t v[] = {0,	     -1,	7,
				  INT64_MAX, INT64_MIN, 1234567890123};
		return json_integer(rng() % 2
					? v[rng() % 6]
					: (json_int_t)(rng() % 100000) - 50000);
	}
	case 3: {
		double v[] = {0.5, -2.0, 1e300, 3.14159, 1e-7, 100.0};
		return json_real(v[rng() % 6]);
	}
	case 4:
	case 5:
		return gen_string(&len, buf, sizeof(buf));
	case 6: {
		json_t *a = json_array();
		int n = (int)(rng() % 5);
		for (int i = 0; i < n; i++)
			json_array_append_new(a, gen_value(depth + 1));
		return a;
	}
	default: {
		json_t *o = json_object();
		int n = (int)(rng() % 7);
		for (int i = 0; i < n; i++) {
			json_t *k = gen_string(&len, buf, sizeof(buf));
			json_object_setn_new(o, buf, len, gen_value(depth + 1));
			json_decref(k);
		}
		return o;
	}
	}
}

static void test_jtext_matches_jansson(void **state)
{
	(void)state;
	for (int i = 0; i < 5000; i++) {
		json_t *j = gen_value(0);
		for (int sort = 0; sort < 2; sort++) {
			size_t flags = JSON_COMPACT | JSON_ENCODE_ANY |
				       (sort ? JSON_SORT_KEYS : 0);
			char *want = json_dumps(j, flags);
			char *got = pb_jt_dumps(j, sort);
			assert_non_null(want);
			assert_non_null(got);
			assert_string_equal(got, want);
			free(want);
			free(got);
		}
		json_decref(j);
	}
}

/* pb_json_load against json_loadb: the same value, or the same error, for
 * generated texts (compact and indented) and for copies with one byte
 * replaced, removed or inserted. A text with a raw NUL byte is refused
 * whatever jansson says (jansson skips some between tokens; jtext.c). */
static void load_both(const char *text, size_t n)
{
	static const size_t flag_sets[] = {0, JSON_REJECT_DUPLICATES};
	if (memchr(text, '\0', n)) {
		json_error_t eb;
		json_t *b = pb_json_load(text, n, 0, &eb);
		assert_null(b);
		assert_non_null(strstr(eb.text, "a raw NUL byte at byte "));
		return;
	}
	for (size_t f = 0; f < 2; f++) {
		json_error_t ea, eb;
		json_t *a = json_loadb(text, n, flag_sets[f], &ea);
		json_t *b = pb_json_load(text, n, flag_sets[f], &eb);
		if (!a != !b)
			fail_msg("%s by jansson, %s by pb_json_load: %.*s",
				 a ? "read" : "refused", b ? "read" : "refused",
				 (int)n, text);
		if (a)
			assert_true(json_equal(a, b));
		else
			assert_string_equal(ea.text, eb.text);
		json_decref(a);
		json_decref(b);
	}
}

static void test_json_load_matches_jansson(void **state)
{
	(void)state;
	static const char bytes[] =
	    "{}[],:\"\\ 0123456789-+.eEtrufalsn\x00\x1f\xc3";
	for (int i = 0; i < 5000; i++) {
		json_t *j = gen_value(0);
		char *texts[2] = {
		    json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY),
		    json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY)};
		for (int t = 0; t < 2; t++) {
			char *text = texts[t];
			assert_non_null(text);
			size_t n = strlen(text);
			load_both(text, n);
			char *m = malloc(n + 2);
			assert_non_null(m);
			for (int k = 0; k < 8 && n > 0; k++) {
				size_t at = rng() % n;
				char b = bytes[rng() % (sizeof(bytes) - 1)];
				memcpy(m, text, n); /* replaced */
				m[at] = b;
				load_both(m, n);
				memcpy(m, text, at); /* removed */
				memcpy(m + at, text + at + 1, n - at - 1);
				load_both(m, n - 1);
				memcpy(m, text, at); /* inserted */
				m[at] = b;
				memcpy(m + at + 1, text + at, n - at);
				load_both(m, n + 1);
			}
			free(m);
			free(text);
		}
		json_decref(j);
	}
	const char *cases[] = {
	    "{\"a\":1,\"a\":2}",
	    "[-0, -0.0, 1e400, 1e-400, 123456789012345678]",
	    "[1234567890123456789, -9223372036854775808, 01, 1., .5, -]",
	    "{\"k\\u00e9\":\"v\\/\\b\"}",
	    "  [ true , false , null ]  ",
	    "7",
	    "",
	    "[1] x",
	    "{\"a\" 1}",
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++)
		load_both(cases[c], strlen(cases[c]));
}

/* An object of generated members (gen_value's keys and values). */
static json_t *gen_object(void)
{
	json_t *o = json_object();
	char buf[128];
	size_t len;
	int n = (int)(rng() % 40);
	for (int i = 0; i < n; i++) {
		json_t *k = gen_string(&len, buf, sizeof(buf));
		json_object_setn_new(o, buf, len, gen_value(1));
		json_decref(k);
	}
	return o;
}

/* pb_jt_members_split of text reads what json_loadb reads: every member,
 * each value equal to jansson's, names in sorted order. */
static void check_members(const char *text, size_t n)
{
	json_t *j = json_loadb(text, n, 0, NULL);
	pb_jt_members_t ms;
	bool ok = pb_jt_members_split(text, n, &ms);
	if (!json_is_object(j)) {
		json_decref(j);
		pb_jt_members_free(&ms);
		return; /* not an object for jansson: checked apart */
	}
	if (!ok)
		fail_msg("an object for jansson, refused: %.*s", (int)n, text);
	assert_int_equal(ms.n, json_object_size(j));
	for (size_t i = 0; i < ms.n; i++) {
		const pb_jt_member_t *x = &ms.m[i];
		json_t *want = json_object_getn(j, x->key, x->klen);
		json_t *got =
		    json_loadb(x->val, x->vlen, JSON_DECODE_ANY, NULL);
		assert_non_null(want);
		assert_true(json_equal(want, got));
		json_decref(got);
		if (i) {
			const pb_jt_member_t *p = &ms.m[i - 1];
			size_t k = p->klen < x->klen ? p->klen : x->klen;
			int r = memcmp(p->key, x->key, k);
			assert_true(r < 0 || (r == 0 && p->klen < x->klen));
		}
	}
	pb_jt_members_free(&ms);
	json_decref(j);
}

static void test_members_match_jansson(void **state)
{
	(void)state;
	static const char bytes[] = "{}[],:\"\\ 0123456789-eEtrufalsn\x1f";
	for (int i = 0; i < 3000; i++) {
		json_t *a = gen_object(), *b = gen_object();
		char *texts[3] = {json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS),
				  json_dumps(a, JSON_COMPACT),
				  json_dumps(a, JSON_INDENT(2))};
		char *bt = pb_jt_dumps(b, true);
		json_t *merged = json_deep_copy(a);
		json_object_update(merged, b);
		char *want = pb_jt_dumps(merged, true);
		pb_jt_members_t mb;
		bool b_ok = pb_jt_members_split(bt, strlen(bt), &mb);
		for (int t = 0; t < 3; t++) {
			size_t n = strlen(texts[t]);
			check_members(texts[t], n);
			pb_jt_members_t ma = {0};
			if (!b_ok || !pb_jt_members_split(texts[t], n, &ma)) {
				pb_jt_members_free(&ma);
				continue; /* NUL in a name: jansson refuses */
			}
			/* the merge: the same bytes as the merged tree
			 * written sorted, when a was (values are copied as
			 * they are: the same values otherwise). Trees with a
			 * NUL in a name are left out: jansson reads no such
			 * name, and its deep copy cuts it at the NUL. */
			char *got = pb_jt_members_merge(&ma, &mb);
			assert_non_null(got);
			json_t *ja = json_loads(texts[t], 0, NULL);
			json_t *jb = json_loads(bt, 0, NULL);
			json_t *g = json_loads(got, 0, NULL);
			if (ja && jb && t == 0)
				assert_string_equal(got, want);
			if (ja && jb)
				assert_true(json_equal(g, merged));
			json_decref(ja);
			json_decref(jb);
			json_decref(g);
			free(got);
			pb_jt_members_free(&ma);
			/* truncated, it is no object; mutated, it is read
			 * as jansson reads it */
			for (size_t k = 0; k < n; k += 1 + n / 16)
				assert_false(
				    pb_jt_members_split(texts[t], k, &ma));
			char *m = malloc(n + 1);
			assert_non_null(m);
			for (int k = 0; k < 8 && n > 0; k++) {
				memcpy(m, texts[t], n);
				m[rng() % n] =
				    bytes[rng() % (sizeof(bytes) - 1)];
				check_members(m, n);
			}
			free(m);
		}
		if (b_ok) {
			char *got = pb_jt_members_merge(NULL, &mb);
			assert_string_equal(got, bt);
			free(got);
		}
		pb_jt_members_free(&mb);
		for (int t = 0; t < 3; t++)
			free(texts[t]);
		free(bt);
		free(want);
		json_decref(merged);
		json_decref(a);
		json_decref(b);
	}
	/* repeated names: the last one, as jansson keeps it */
	pb_jt_members_t ms;
	const char *dup = " { \"b\" : 1 , \"a\":[2, {\"x\":\"}\"}] ,\"b\":3}  ";
	assert_true(pb_jt_members_split(dup, strlen(dup), &ms));
	assert_int_equal(ms.n, 2);
	assert_memory_equal(ms.m[1].val, "3", 1);
	assert_int_equal(ms.m[1].vlen, 1);
	assert_non_null(pb_jt_members_find(&ms, "a"));
	assert_null(pb_jt_members_find(&ms, "c"));
	pb_jt_members_free(&ms);
	const char *not_objects[] = {"",
				     "[]",
				     "7",
				     "\"x\"",
				     "{\"a\" 1}",
				     "{\"a\":01}",
				     "{\"a\":1,}",
				     "{\"a\":1} x",
				     "{\"a\":\"\\x\"}",
				     "{\"a\":tru}",
				     "{\"a\":-}",
				     "{\"a\":1.}"};
	for (size_t c = 0; c < sizeof(not_objects) / sizeof(*not_objects);
	     c++) {
		assert_false(pb_jt_members_split(not_objects[c],
						 strlen(not_objects[c]), &ms));
		assert_int_equal(ms.n, 0);
	}
	/* more members than the split keeps in place */
	json_t *big = json_object();
	for (int i = 0; i < 100; i++) {
		char k[8];
		snprintf(k, sizeof(k), "k%03d", 99 - i);
		json_object_set_new(big, k, json_integer(i));
	}
	char *bigt = json_dumps(big, JSON_COMPACT);
	check_members(bigt, strlen(bigt));
	free(bigt);
	json_decref(big);
}

/* pb_jt_members_of writes what pb_jt_dumps writes (insertion order), and
 * its members merge into the bytes that the split of the sorted text
 * merges into: the rules' work order written once, not twice and read. */
static void test_members_of_match_split(void **state)
{
	(void)state;
	for (int i = 0; i < 3000; i++) {
		json_t *a = gen_object(), *b = gen_object();
		char *at = pb_jt_dumps(a, true), *bt = pb_jt_dumps(b, true);
		char *bu = pb_jt_dumps(b, false);
		pb_jt_members_t ma, mb, mo;
		pb_jtext_t aux = {0};
		char *text = NULL;
		assert_true(pb_jt_members_of(b, &text, &mo, &aux));
		assert_string_equal(text, bu);
		bool a_ok = pb_jt_members_split(at, strlen(at), &ma);
		if (pb_jt_members_split(bt, strlen(bt), &mb)) {
			/* names with a NUL: jansson refuses the text */
			assert_int_equal(mo.n, mb.n);
			char *want =
			    pb_jt_members_merge(a_ok ? &ma : NULL, &mb);
			char *got = pb_jt_members_merge(a_ok ? &ma : NULL, &mo);
			assert_string_equal(got, want);
			free(want);
			free(got);
			got = pb_jt_members_merge(NULL, &mo);
			assert_string_equal(got, bt);
			free(got);
		}
		pb_jt_members_free(&ma);
		pb_jt_members_free(&mb);
		pb_jt_members_free(&mo);
		free(aux.p);
		free(text);
		free(at);
		free(bt);
		free(bu);
		json_decref(a);
		json_decref(b);
	}
	pb_jt_members_t mo;
	pb_jtext_t aux = {0};
	char *text = NULL;
	json_t *arr = json_array();
	assert_false(pb_jt_members_of(arr, &text, &mo, &aux));
	assert_null(text);
	json_decref(arr);
}

static void test_jtext_scalars_and_refusals(void **state)
{
	(void)state;
	pb_jtext_t b = {0};
	pb_jt_i64(&b, INT64_MIN);
	pb_jt_lit(&b, " ");
	pb_jt_i64(&b, 0);
	pb_jt_lit(&b, " ");
	pb_jt_str(&b, "say \"hi\"\n");
	pb_jt_lit(&b, " ");
	pb_jt_str(&b, NULL);
	char *s = pb_jt_take(&b);
	assert_string_equal(
	    s, "-9223372036854775808 0 \"say \\\"hi\\\"\\n\" null");
	free(s);
	/* not UTF-8 (a lone continuation byte, an overlong '/', a surrogate) */
	const char *bad[] = {"x\x80", "\xc0\xaf", "\xed\xa0\x80",
			     "\xf4\x90\x80\x80"};
	for (size_t i = 0; i < 4; i++) {
		pb_jt_str(&b, bad[i]);
		assert_null(pb_jt_take(&b));
	}
	pb_jt_json(&b, NULL, false);
	assert_null(pb_jt_take(&b));
	char n[24];
	assert_int_equal(pb_u64_text(n, 18446744073709551615ULL), 20);
	assert_string_equal(n, "18446744073709551615");
}

/* Integer texts as printf writes them: every length, both sides of each
 * power of ten, the extremes, and a fixed pseudo-random spread. */
static void check_int_text(long long v)
{
	char got[24], want[32];
	snprintf(want, sizeof(want), "%lld", v);
	assert_int_equal(pb_i64_text(got, v), strlen(want));
	assert_string_equal(got, want);
	if (v >= 0) {
		assert_int_equal(pb_u64_text(got, (unsigned long long)v),
				 strlen(want));
		assert_string_equal(got, want);
	}
}

/* pb_parse_i64 as strtoll reads a whole text, for comparison. */
static bool parse_i64_ref(const char *s, int64_t *out)
{
	if (!*s)
		return false;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return false;
	*out = (int64_t)v;
	return true;
}

static void check_parse_i64(const char *s)
{
	int64_t got = 7, want = 7;
	bool ok_want = parse_i64_ref(s, &want);
	assert_int_equal(pb_parse_i64(s, &got), ok_want);
	if (ok_want)
		assert_true(got == want);
}

static void test_parse_i64_matches_strtoll(void **state)
{
	(void)state;
	const char *texts[] = {"",
			       "0",
			       "-0",
			       "+5",
			       " 5",
			       "5 ",
			       "12a",
			       "-",
			       "--1",
			       "007",
			       "999999999999999999",
			       "-999999999999999999",
			       "1000000000000000000",
			       "9223372036854775807",
			       "-9223372036854775808",
			       "9223372036854775808",
			       "-9223372036854775809",
			       "99999999999999999999999",
			       "1764600000000"};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		check_parse_i64(texts[i]);
	unsigned long long x = 88172645463325252ULL; /* xorshift, seed fixed */
	for (int i = 0; i < 100000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		char t[32];
		snprintf(t, sizeof(t), "%lld", (long long)(x >> (i % 64)));
		check_parse_i64(t);
	}
	assert_false(pb_parse_i64(NULL, &(int64_t){0}));
}

static void test_int_text_matches_printf(void **state)
{
	(void)state;
	long long p = 1;
	for (int k = 0; k < 19; k++) {
		for (long long d = -2; d <= 2; d++) {
			check_int_text(p + d);
			check_int_text(-(p + d));
		}
		if (k < 18)
			p *= 10;
	}
	check_int_text(LLONG_MAX);
	check_int_text(LLONG_MIN);
	check_int_text(LLONG_MIN + 1);
	unsigned long long x = 88172645463325252ULL; /* xorshift, seed fixed */
	for (int i = 0; i < 100000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		check_int_text((long long)(x >> (i % 64)));
		char got[24], want[32];
		snprintf(want, sizeof(want), "%llu", x);
		assert_int_equal(pb_u64_text(got, x), strlen(want));
		assert_string_equal(got, want);
	}
}

static void fmt_text(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pb_format_text(buf, size, fmt, ap);
	va_end(ap);
}

static void test_format_text_keeps_whole_characters(void **state)
{
	(void)state;
	char buf[64];
	/* %.4s cuts "aÉÉ" after the first byte of the second É */
	fmt_text(buf, sizeof(buf), "state \"%.4s\" is wrong",
		 "a\xc3\x89\xc3\x89");
	assert_string_equal(buf, "state \"a\xc3\x89\" is wrong");
	/* the buffer's end cuts a € (3 bytes) after its first two */
	fmt_text(buf, 6, "abc%s", "\xe2\x82\xac");
	assert_string_equal(buf, "abc");
	/* whole characters of every length stay */
	fmt_text(buf, sizeof(buf), "%s",
		 "\xc3\xa9\xe2\x82\xac\xf0\x9f\x8f\xa0!");
	assert_string_equal(buf, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x8f\xa0!");
	assert_int_equal(pb_utf8_seq((const unsigned char *)"\xed\xa0\x80", 3),
			 0);
	assert_int_equal(
	    pb_utf8_seq((const unsigned char *)"\xf0\x9f\x8f\xa0", 4), 4);
}

static void test_url_same_origin(void **state)
{
	(void)state;
	const char *api = "https://direct.pruvan.com/api/";
	assert_true(
	    pb_url_same_origin("https://direct.pruvan.com/api/?apiKey=K", api));
	assert_true(pb_url_same_origin("HTTPS://Direct.Pruvan.com:443/x", api));
	assert_false(pb_url_same_origin("http://direct.pruvan.com/api/", api));
	assert_false(
	    pb_url_same_origin("https://direct.pruvan.com:8443/", api));
	assert_false(
	    pb_url_same_origin("https://direct.pruvan.com.evil/", api));
	assert_false(
	    pb_url_same_origin("https://evil@direct.pruvan.com/", api));
	assert_false(pb_url_same_origin("https://attacker.example/api/", api));
	assert_false(pb_url_same_origin("direct.pruvan.com", api));
	assert_false(pb_url_same_origin("https://direct.pruvan.com:x/", api));
	assert_true(pb_url_same_origin("http://127.0.0.1:8080/api/?apiKey=K",
				       "http://127.0.0.1:8080/api/"));
	assert_false(pb_url_same_origin(NULL, api));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_redact_hides_query_and_userinfo),
	    cmocka_unit_test(test_url_same_origin),
	    cmocka_unit_test(test_rfc3339_format),
	    cmocka_unit_test(test_log_writes_one_json_object_per_line),
	    cmocka_unit_test(test_log_level_parse),
	    cmocka_unit_test(test_err_classes),
	    cmocka_unit_test(test_jtext_matches_jansson),
	    cmocka_unit_test(test_jtext_scalars_and_refusals),
	    cmocka_unit_test(test_int_text_matches_printf),
	    cmocka_unit_test(test_parse_i64_matches_strtoll),
	    cmocka_unit_test(test_json_load_matches_jansson),
	    cmocka_unit_test(test_members_match_jansson),
	    cmocka_unit_test(test_members_of_match_split),
	    cmocka_unit_test(test_format_text_keeps_whole_characters),
	};
	return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
