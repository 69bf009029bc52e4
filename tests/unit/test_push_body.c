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

/* Every length up to 64 (the last bytes are written apart from the rest)
 * of fixed pseudo-random bytes: the same text as a byte-by-byte encoder,
 * in a buffer of exactly its size (the sanitizer build sees any byte
 * written past it). */
static void test_every_length_matches_bytewise(void **state)
{
	(void)state;
	static const char hex[] = "0123456789ABCDEF";
	unsigned x = 2463534242u; /* xorshift, seed fixed */
	for (size_t len = 0; len <= 64; len++) {
		for (int round = 0; round < 50; round++) {
			char in[64],
			    want[sizeof(PB_PUSH_FORM_FIELD) + 3 * 64 + 1];
			size_t w = 0;
			for (const char *f = PB_PUSH_FORM_FIELD "="; *f; f++)
				want[w++] = *f;
			for (size_t i = 0; i < len; i++) {
				x ^= x << 13;
				x ^= x >> 17;
				x ^= x << 5;
				/* half unreserved, half to be encoded */
				unsigned char c = (x & 1)
						      ? "aZ09-._~"[(x >> 1) & 7]
						      : (unsigned char)(x >> 8);
				in[i] = (char)c;
				if ((c >= 'A' && c <= 'Z') ||
				    (c >= 'a' && c <= 'z') ||
				    (c >= '0' && c <= '9') || c == '-' ||
				    c == '.' || c == '_' || c == '~') {
					want[w++] = (char)c;
				} else {
					want[w++] = '%';
					want[w++] = hex[c >> 4];
					want[w++] = hex[c & 15];
				}
			}
			want[w] = '\0';
			size_t n;
			char *f = form_of(in, len, &n);
			assert_int_equal(n, w);
			assert_memory_equal(f, want, w + 1);
			free(f);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_body),
	    cmocka_unit_test(test_every_byte_round_trips),
	    cmocka_unit_test(test_utf8_and_empty),
	    cmocka_unit_test(test_every_length_matches_bytewise),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
