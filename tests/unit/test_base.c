/*
 * test_base.c: errors, logging and helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
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
	assert_string_equal(json_string_value(json_object_get(o, "level")), "warn");
	assert_string_equal(json_string_value(json_object_get(o, "msg")), "line \"one\"\n");
	assert_string_equal(json_string_value(json_object_get(o, "account")), "acme");
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
	"a", "ab", "", "\"", "\\", "/", "\b\f\n\r\t", "\x01\x1f", "\x7f",
	"caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x8f\xa0", "workOrderNumber",
	"Z", "0",
};

static json_t *gen_string(size_t *len_out, char *buf, size_t size)
{
	size_t len = 0;
	int parts = (int)(rng() % 4);
	for (int i = 0; i < parts; i++) {
		const char *p = pieces[rng() % (sizeof(pieces) / sizeof(*pieces))];
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
	case 0: return json_null();
	case 1: return rng() % 2 ? json_true() : json_false();
	case 2: {
		json_int_t v[] = {0, -1, 7, INT64_MAX, INT64_MIN, 1234567890123};
		return json_integer(rng() % 2 ? v[rng() % 6]
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
 * replaced, removed or inserted. */
static void load_both(const char *text, size_t n)
{
	static const size_t flag_sets[] = {0, JSON_REJECT_DUPLICATES};
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
	assert_string_equal(s, "-9223372036854775808 0 \"say \\\"hi\\\"\\n\" null");
	free(s);
	/* not UTF-8 (a lone continuation byte, an overlong '/', a surrogate) */
	const char *bad[] = {"x\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"};
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_redact_hides_query_and_userinfo),
	    cmocka_unit_test(test_rfc3339_format),
	    cmocka_unit_test(test_log_writes_one_json_object_per_line),
	    cmocka_unit_test(test_log_level_parse),
	    cmocka_unit_test(test_err_classes),
	    cmocka_unit_test(test_jtext_matches_jansson),
	    cmocka_unit_test(test_jtext_scalars_and_refusals),
	    cmocka_unit_test(test_json_load_matches_jansson),
	    cmocka_unit_test(test_format_text_keeps_whole_characters),
	};
	return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
