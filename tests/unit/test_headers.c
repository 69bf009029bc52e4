/* Headers carried through (headers.h) and Schema Registry framing
 * (framing.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "framing.h"
#include "headers.h"

static char *render(const rd_kafka_headers_t *h)
{
	pb_jtext_t b = {0};
	pb_jt_lit(&b, "{\"x\":1");
	pb_headers_render(&b, h);
	pb_jt_lit(&b, "}");
	return pb_jt_take(&b);
}

static void rendered_as_object_of_strings(void **state)
{
	(void)state;
	rd_kafka_headers_t *h = rd_kafka_headers_new(4);
	char *t = render(h);
	assert_string_equal(t, "{\"x\":1}"); /* absent when none */
	free(t);
	assert_string_equal((t = render(NULL)), "{\"x\":1}");
	free(t);
	rd_kafka_header_add(
	    h, "traceparent", -1,
	    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", -1);
	rd_kafka_header_add(h, "x-correlation-id", -1, "c-1", -1);
	rd_kafka_header_add(h, "x-correlation-id", -1, "c-2", -1);
	rd_kafka_header_add(h, "empty", -1, NULL, -1);
	rd_kafka_header_add(h, "odd", -1, "a\"\\\n\xff\xc3\xa9", 7);
	t = render(h);
	assert_string_equal(
	    t, "{\"x\":1,\"headers\":{\"traceparent\":\"00-"
	       "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\","
	       "\"x-correlation-id\":\"c-2\",\"empty\":\"\","
	       "\"odd\":\"a\\\"\\\\\\u000a\\ufffd\xc3\xa9\"}}");
	json_error_t je;
	json_t *j = json_loads(t, 0, &je);
	assert_non_null(j); /* valid JSON whatever the bytes */
	json_decref(j);
	free(t);
	char tp[PB_TRACEPARENT_LEN + 1];
	assert_true(pb_headers_traceparent(h, tp, sizeof(tp)));
	assert_string_equal(
	    tp, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
	rd_kafka_headers_destroy(h);
}

static void bounded_when_huge(void **state)
{
	(void)state;
	rd_kafka_headers_t *h = rd_kafka_headers_new(4);
	static char big[40000];
	memset(big, 'x', sizeof(big) - 1);
	rd_kafka_header_add(h, "a", -1, big, -1);
	rd_kafka_header_add(h, "b", -1, big, -1); /* over 64 KiB with a */
	rd_kafka_header_add(h, "c", -1, "small", -1);
	char *t = render(h);
	json_error_t je;
	json_t *j = json_loads(t, 0, &je);
	assert_non_null(j);
	json_t *hd = json_object_get(j, "headers");
	assert_int_equal(json_string_length(json_object_get(hd, "a")),
			 sizeof(big) - 1);
	assert_null(json_object_get(hd, "b"));
	assert_string_equal(json_string_value(json_object_get(hd, "c")),
			    "small");
	assert_true(json_is_true(json_object_get(j, "headersTruncated")));
	json_decref(j);
	free(t);
	rd_kafka_headers_destroy(h);
}

static void traceparent_form_checked(void **state)
{
	(void)state;
	char tp[PB_TRACEPARENT_LEN + 1];
	rd_kafka_headers_t *h = rd_kafka_headers_new(1);
	assert_false(pb_headers_traceparent(h, tp, sizeof(tp)));
	rd_kafka_header_add(
	    h, "traceparent", -1,
	    "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", -1);
	assert_false(pb_headers_traceparent(h, tp, sizeof(tp)));
	assert_string_equal(tp, "");
	rd_kafka_headers_destroy(h);
	assert_false(pb_headers_traceparent(NULL, tp, sizeof(tp)));
}

static void reserved_left_out(void **state)
{
	(void)state;
	rd_kafka_headers_t *src = rd_kafka_headers_new(6);
	rd_kafka_header_add(src, "x-correlation-id", -1, "c-1", -1);
	rd_kafka_header_add(src, "x-error-reason", -1, "http_4xx", -1);
	rd_kafka_header_add(src, "x-source-offset", -1, "7", -1);
	rd_kafka_header_add(src, "x-attempts", -1, "3", -1);
	rd_kafka_header_add(src, "x-replayed-from", -1, "pruvan.dlq/0/1", -1);
	rd_kafka_header_add(src, "tenant", -1, "t1", -1);
	rd_kafka_headers_t *dst = rd_kafka_headers_new(2);
	pb_headers_add_all(dst, src, true);
	assert_int_equal(rd_kafka_header_cnt(dst), 2);
	const char *name;
	const void *v;
	size_t n;
	assert_int_equal(rd_kafka_header_get_all(dst, 0, &name, &v, &n), 0);
	assert_string_equal(name, "x-correlation-id");
	assert_int_equal(rd_kafka_header_get_all(dst, 1, &name, &v, &n), 0);
	assert_string_equal(name, "tenant");
	pb_headers_add_all(dst, src, false);
	assert_int_equal(rd_kafka_header_cnt(dst), 8);
	rd_kafka_headers_destroy(dst);
	assert_null(pb_headers_copy_new(NULL));
	rd_kafka_headers_t *cp = pb_headers_copy_new(src);
	assert_int_equal(rd_kafka_header_cnt(cp), 6);
	rd_kafka_headers_destroy(cp);
	rd_kafka_headers_destroy(src);
}

static void schema_registry_framing(void **state)
{
	(void)state;
	uint32_t id = 0;
	const char framed[] = "\0\0\0\x01\x2c{\"a\":1}";
	assert_true(pb_sr_framed(framed, sizeof(framed) - 1, &id));
	assert_int_equal(id, 300);
	const char big[] = "\0\xff\xff\xff\xfe{}";
	assert_true(pb_sr_framed(big, sizeof(big) - 1, &id));
	assert_int_equal(id, 0xfffffffeu);
	id = 7;
	assert_false(pb_sr_framed("{\"a\":1}", 7, &id));
	assert_false(pb_sr_framed("\0\0\0\0\x01", 5, &id)); /* nothing after */
	assert_false(pb_sr_framed("\0\0", 2, &id));
	assert_false(pb_sr_framed(NULL, 0, &id));
	assert_int_equal(id, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rendered_as_object_of_strings),
	    cmocka_unit_test(bounded_when_huge),
	    cmocka_unit_test(traceparent_form_checked),
	    cmocka_unit_test(reserved_left_out),
	    cmocka_unit_test(schema_registry_framing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
