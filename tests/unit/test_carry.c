/* carry.c: the offset a revoked partition resumes at when the group did
 * not take its commit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "carry.h"

static void commit_taken(void **state)
{
	(void)state;
	assert_true(pl_carry_commit_taken(RD_KAFKA_RESP_ERR_NO_ERROR));
	assert_true(pl_carry_commit_taken(RD_KAFKA_RESP_ERR__NO_OFFSET));
	assert_false(
	    pl_carry_commit_taken(RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION));
	assert_false(pl_carry_commit_taken(RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST));
	assert_false(
	    pl_carry_commit_taken(RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS));
}

static void after_revoke(void **state)
{
	(void)state;
	assert_int_equal(pl_carry_after_revoke(true, 120), -1);
	assert_int_equal(pl_carry_after_revoke(false, 120), 120);
	assert_int_equal(pl_carry_after_revoke(false, -1), -1);
}

/* Outcomes acknowledged after the revoke only ever move the carry on. */
static void raise_only_forward(void **state)
{
	(void)state;
	assert_int_equal(pl_carry_raise(-1, 7), 7);
	assert_int_equal(pl_carry_raise(10, 12), 12);
	assert_int_equal(pl_carry_raise(12, 10), 12);
}

static void start_offset(void **state)
{
	(void)state;
	/* the group's committed offset is older: resume at the carry */
	assert_int_equal(pl_carry_start(120, true, 100), 120);
	/* nothing committed yet */
	assert_int_equal(pl_carry_start(120, true, RD_KAFKA_OFFSET_INVALID),
			 120);
	/* another owner committed as far or further: its offset stands */
	assert_int_equal(pl_carry_start(120, true, 120), -1);
	assert_int_equal(pl_carry_start(120, true, 150), -1);
	/* the committed offsets could not be read: never guess past them */
	assert_int_equal(pl_carry_start(120, false, 100), -1);
	/* no carry */
	assert_int_equal(pl_carry_start(-1, true, 100), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(commit_taken),
	    cmocka_unit_test(after_revoke),
	    cmocka_unit_test(raise_only_forward),
	    cmocka_unit_test(start_offset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
