/* produce.c: producer error classes, backoff and record bounds, the
 * truncated form of a part too large for its record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "produce.h"

static void classes(void **state)
{
	(void)state;
	assert_int_equal(pb_produce_classify(RD_KAFKA_RESP_ERR_NO_ERROR),
			 PB_PRODUCE_OK);
	assert_int_equal(pb_produce_classify(RD_KAFKA_RESP_ERR__QUEUE_FULL),
			 PB_PRODUCE_FULL);
	assert_int_equal(pb_produce_classify(RD_KAFKA_RESP_ERR__FATAL),
			 PB_PRODUCE_FATAL);
	static const rd_kafka_resp_err_t permanent[] = {
	    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
	    RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
	    RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
	    RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
	    RD_KAFKA_RESP_ERR_INVALID_RECORD,
	    RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE,
	};
	for (size_t i = 0; i < sizeof(permanent) / sizeof(*permanent); i++)
		assert_int_equal(pb_produce_classify(permanent[i]),
				 PB_PRODUCE_PERMANENT);
	static const rd_kafka_resp_err_t retriable[] = {
	    RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
	    RD_KAFKA_RESP_ERR__TRANSPORT,
	    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
	    RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
	    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
	};
	for (size_t i = 0; i < sizeof(retriable) / sizeof(*retriable); i++)
		assert_int_equal(pb_produce_classify(retriable[i]),
				 PB_PRODUCE_RETRIABLE);
	assert_string_equal(pb_produce_class_name(PB_PRODUCE_PERMANENT),
			    "permanent");
}

static void backoff_doubles_to_its_bound(void **state)
{
	(void)state;
	assert_int_equal(pb_produce_backoff_ms(0), 100);
	assert_int_equal(pb_produce_backoff_ms(1), 200);
	assert_int_equal(pb_produce_backoff_ms(5), 3200);
	assert_int_equal(pb_produce_backoff_ms(6), PB_PRODUCE_BACKOFF_MAX_MS);
	assert_int_equal(pb_produce_backoff_ms(1000),
			 PB_PRODUCE_BACKOFF_MAX_MS);
}

static void record_bound(void **state)
{
	(void)state;
	assert_int_equal(pb_produce_record_max(1000000),
			 1000000 - PB_PRODUCE_FRAMING);
	/* a tiny limit still leaves room for a minimal record */
	assert_true(pb_produce_record_max(1000) > 0);
	assert_true(pb_produce_record_max(1000) < 1000);
}

static void truncated_form(void **state)
{
	(void)state;
	pb_jtext_t b = {0};
	pb_jt_truncated(&b, "abc", 3);
	char *t = pb_jt_take(&b);
	assert_string_equal(t, "{\"truncated\":true,\"bytes\":3,\"sha256\":"
			       "\"ba7816bf8f01cfea414140de5dae2223b00361a396177"
			       "a9cb410ff61f20015ad\"}");
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(classes),
	    cmocka_unit_test(backoff_doubles_to_its_bound),
	    cmocka_unit_test(record_bound),
	    cmocka_unit_test(truncated_form),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
