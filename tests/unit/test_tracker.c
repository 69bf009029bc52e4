/*
 * test_tracker.c: commit positions under out-of-order completion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tracker.h"

static void test_in_order(void **state)
{
	(void)state;
	pb_partition_track_t *t = pb_track_new();
	int64_t c = -1;
	for (int64_t o = 10; o < 13; o++)
		assert_int_equal(pb_track_add(t, o), PB_OK);
	assert_true(pb_track_done(t, 10, &c));
	assert_int_equal(c, 11);
	assert_int_equal(pb_track_pending(t), 2);
	pb_track_destroy(t);
}

static void test_out_of_order_waits_for_lowest(void **state)
{
	(void)state;
	pb_partition_track_t *t = pb_track_new();
	int64_t c = -1;
	for (int64_t o = 0; o < 5; o++)
		pb_track_add(t, o);
	assert_false(pb_track_done(t, 3, &c));
	assert_false(pb_track_done(t, 1, &c));
	assert_false(pb_track_done(t, 1, &c)); /* twice is a no-op */
	assert_true(pb_track_done(t, 0, &c));
	assert_int_equal(c, 2); /* 0 and 1 done, 2 not */
	assert_true(pb_track_done(t, 2, &c));
	assert_int_equal(c, 4);
	assert_true(pb_track_done(t, 4, &c));
	assert_int_equal(c, 5);
	assert_int_equal(pb_track_pending(t), 0);
	pb_track_destroy(t);
}

static void test_gaps_and_growth(void **state)
{
	(void)state;
	pb_partition_track_t *t = pb_track_new();
	int64_t c = -1;
	/* offsets with gaps (compaction), many more than the initial ring */
	for (int64_t i = 0; i < 1000; i++)
		assert_int_equal(pb_track_add(t, i * 3), PB_OK);
	assert_int_equal(pb_track_add(t, 5), PB_ERR_INVALID);
	for (int64_t i = 999; i >= 1; i--)
		assert_false(pb_track_done(t, i * 3, &c));
	assert_false(pb_track_done(t, 1, &c)); /* never added */
	assert_true(pb_track_done(t, 0, &c));
	assert_int_equal(c, 999 * 3 + 1);
	pb_track_reset(t);
	assert_int_equal(pb_track_add(t, 0), PB_OK);
	pb_track_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_in_order),
	    cmocka_unit_test(test_out_of_order_waits_for_lowest),
	    cmocka_unit_test(test_gaps_and_growth),
	};
	return cmocka_run_group_tests_name("tracker", tests, NULL, NULL);
}
