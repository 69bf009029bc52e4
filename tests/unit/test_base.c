/*
 * test_base.c: errors, logging and helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
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

static void test_rfc3339_format(void **state)
{
	(void)state;
	char buf[40];
	pb_ms_to_rfc3339(1795881600123LL, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-28T16:00:00.123Z");
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redact_hides_query_and_userinfo),
		cmocka_unit_test(test_rfc3339_format),
		cmocka_unit_test(test_log_writes_one_json_object_per_line),
		cmocka_unit_test(test_log_level_parse),
		cmocka_unit_test(test_err_classes),
	};
	return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
