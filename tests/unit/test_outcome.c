/*
 * test_outcome.c: the outcome and reason tables (outcome.h).
 *
 * The stored codes are a format: the test pins a few numbers so that a
 * renumbering fails here before it misreads marks already in Redis.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "outcome.h"

static void test_names_round_trip(void **state)
{
	(void)state;
	for (int i = 1; i < PB_OUTCOME__COUNT; i++) {
		const char *n = pb_outcome_name((pb_outcome_t)i);
		assert_true(n[0] != '\0');
		pb_outcome_t o = PB_OUTCOME_NONE;
		assert_true(pb_outcome_parse(n, strlen(n), &o));
		assert_int_equal(o, i);
		char code[8];
		int len = snprintf(code, sizeof(code), "%d", i);
		o = PB_OUTCOME_NONE;
		assert_true(pb_outcome_parse(code, (size_t)len, &o));
		assert_int_equal(o, i);
	}
	for (int i = 1; i < PB_REASON__COUNT; i++) {
		const char *n = pb_reason_name((pb_reason_t)i);
		assert_true(n[0] != '\0');
		pb_reason_t r = PB_REASON_NONE;
		assert_true(pb_reason_parse(n, strlen(n), &r));
		assert_int_equal(r, i);
	}
}

static void test_stored_codes_are_pinned(void **state)
{
	(void)state;
	assert_int_equal(PB_OUTCOME_CREATED, 1);
	assert_int_equal(PB_OUTCOME_DISCARDED, 10);
	assert_int_equal(PB_REASON_INVALID_JSON, 1);
	assert_int_equal(PB_REASON_RETRIES_EXHAUSTED, 18);
	assert_string_equal(pb_outcome_name(PB_OUTCOME_RELAYED), "relayed");
	assert_string_equal(pb_reason_name(PB_REASON_EMPTY_RECORD),
			    "empty_record");
}

static void test_unknown_is_refused(void **state)
{
	(void)state;
	pb_outcome_t o = PB_OUTCOME_STALE;
	assert_false(pb_outcome_parse("", 0, &o));
	assert_false(pb_outcome_parse("0", 1, &o)); /* NONE is no outcome */
	assert_false(pb_outcome_parse("11", 2, &o));
	assert_false(pb_outcome_parse("create", 6, &o));
	assert_false(pb_outcome_parse("createdx", 8, &o)); /* longer */
	assert_false(pb_outcome_parse("1x", 2, &o));
	assert_int_equal(o, PB_OUTCOME_STALE); /* untouched on failure */
	pb_reason_t r = PB_REASON_STALE;
	assert_true(pb_reason_parse("", 0, &r));
	assert_int_equal(r, PB_REASON_NONE);
	r = PB_REASON_STALE;
	assert_false(pb_reason_parse("no_such_reason", 14, &r));
	assert_false(pb_reason_parse("9999", 4, &r));
	assert_int_equal(r, PB_REASON_STALE);
	assert_string_equal(pb_outcome_name((pb_outcome_t)99), "");
	assert_string_equal(pb_reason_name((pb_reason_t)-1), "");
}

static void test_effects(void **state)
{
	(void)state;
	assert_true(pb_outcome_is_effect(PB_OUTCOME_CREATED));
	assert_true(pb_outcome_is_effect(PB_OUTCOME_UPDATED));
	assert_true(pb_outcome_is_effect(PB_OUTCOME_DELETED));
	assert_false(pb_outcome_is_effect(PB_OUTCOME_UNCHANGED));
	assert_false(pb_outcome_is_effect(PB_OUTCOME_DUPLICATE));
	assert_false(pb_outcome_is_effect(PB_OUTCOME_NONE));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names_round_trip),
	    cmocka_unit_test(test_stored_codes_are_pinned),
	    cmocka_unit_test(test_unknown_is_refused),
	    cmocka_unit_test(test_effects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
