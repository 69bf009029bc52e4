/* carry.c: see carry.h. */
#include "carry.h"

bool pl_carry_commit_taken(rd_kafka_resp_err_t e)
{
	return e == RD_KAFKA_RESP_ERR_NO_ERROR ||
	       e == RD_KAFKA_RESP_ERR__NO_OFFSET;
}

int64_t pl_carry_after_revoke(bool taken, int64_t stored)
{
	return taken ? -1 : stored;
}

int64_t pl_carry_raise(int64_t carry, int64_t commit)
{
	return commit > carry ? commit : carry;
}

int64_t pl_carry_start(int64_t carry, bool committed_read, int64_t committed)
{
	if (carry < 0 || !committed_read || committed >= carry)
		return -1;
	return carry;
}
