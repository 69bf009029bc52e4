/*
 * test_push_body.c: the urlencoded push body (push_body.h) decodes back
 * to exactly the JSON it was made from, for every byte value, and keeps
 * the unreserved characters as they are.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "push_body.h"

static char *form_of(const char *json, size_t len, size_t *out_len)
{
	size_t n = pb_push_form_len(json, len);
	char *out = malloc(n + 1);
	assert_non_null(out);
	*out_len = pb_push_form_write(json, len, out);
	assert_int_equal(*out_len, n);
	assert_int_equal(strlen(out), n);
	return out;
}

static void test_known_body(void **state)
{
	(void)state;
	const char *json = "{\"workOrders\":[{\"workOrderNumber\":\"A "
			   "1&b=c+d%\",\"x\":\"~._-\"}]}";
	size_t n;
	char *f = form_of(json, strlen(json), &n);
	assert_string_equal(
	    f, "workOrders=%7B%22workOrders%22%3A%5B%7B%22workOrderNumber%22%3A"
	       "%22A%201%26b%3Dc%2Bd%25%22%2C%22x%22%3A%22~._-%22%7D%5D%7D");
	free(f);
}

static void test_every_byte_round_trips(void **state)
{
	(void)state;
	char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (char)i;
	size_t n;
	char *f = form_of(all, sizeof(all), &n);
	assert_memory_equal(f, "workOrders=", 11);
	/* only unreserved bytes and %XX escapes: no '&', '=' or '+' that a
	 * form decoder would split on or read as a space */
	for (size_t i = 11; i < n; i++)
		assert_null(strchr("&=+ ", f[i]));
	/* each byte on its own: kept exactly when RFC 3986 unreserved */
	for (int c = 0; c < 256; c++) {
		char one = (char)c, out[16];
		bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
			    c == '_' || c == '~';
		size_t l = pb_push_form_write(&one, 1, out);
		assert_int_equal(l, pb_push_form_len(&one, 1));
		assert_int_equal(l, keep ? 12u : 14u);
		if (keep)
			assert_int_equal(out[11], c);
		else
			assert_int_equal(out[11], '%');
	}
	int got = 0;
	char *dec = curl_easy_unescape(NULL, f + 11, (int)(n - 11), &got);
	assert_non_null(dec);
	assert_int_equal(got, 256);
	assert_memory_equal(dec, all, sizeof(all));
	curl_free(dec);
	free(f);
}

static void test_utf8_and_empty(void **state)
{
	(void)state;
	size_t n;
	char *f = form_of("", 0, &n);
	assert_string_equal(f, "workOrders=");
	free(f);
	f = form_of("\xc3\xa9", 2, &n); /* é */
	assert_string_equal(f, "workOrders=%C3%A9");
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_body),
	    cmocka_unit_test(test_every_byte_round_trips),
	    cmocka_unit_test(test_utf8_and_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
