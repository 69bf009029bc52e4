/*
 * outcome.c: the name tables of outcomes and reasons (see outcome.h).
 *
 * Each table is indexed by its enum; a static assertion keeps the table
 * and the enum the same length, so a value added to one and not the other
 * does not build.
 */
#include "outcome.h"

#include <string.h>

static const char *const outcome_names[] = {
    [PB_OUTCOME_NONE] = "",
    [PB_OUTCOME_CREATED] = "created",
    [PB_OUTCOME_UPDATED] = "updated",
    [PB_OUTCOME_DELETED] = "deleted",
    [PB_OUTCOME_UNCHANGED] = "unchanged",
    [PB_OUTCOME_DUPLICATE] = "duplicate",
    [PB_OUTCOME_STALE] = "stale",
    [PB_OUTCOME_REJECTED] = "rejected",
    [PB_OUTCOME_FAILED] = "failed",
    [PB_OUTCOME_RELAYED] = "relayed",
    [PB_OUTCOME_DISCARDED] = "discarded",
};
_Static_assert(sizeof(outcome_names) / sizeof(*outcome_names) ==
		   PB_OUTCOME__COUNT,
	       "one name per pb_outcome_t");

static const char *const reason_names[] = {
    [PB_REASON_NONE] = "",
    [PB_REASON_INVALID_JSON] = "invalid_json",
    [PB_REASON_MISSING_FIELD] = "missing_field",
    [PB_REASON_INVALID_FIELD] = "invalid_field",
    [PB_REASON_INVALID_ACTION] = "invalid_action",
    [PB_REASON_INVALID_DATE] = "invalid_date",
    [PB_REASON_INVALID_ADDRESS] = "invalid_address",
    [PB_REASON_NO_SERVICES] = "no_services",
    [PB_REASON_UNKNOWN_ACCOUNT] = "unknown_account",
    [PB_REASON_STATUS_NOT_ALLOWED] = "status_not_allowed",
    [PB_REASON_ASSIGNED_TO_NOT_ALLOWED] = "assigned_to_not_allowed",
    [PB_REASON_DELETE_NOT_ALLOWED] = "delete_not_allowed",
    [PB_REASON_ORDER_DELETED] = "order_deleted",
    [PB_REASON_RECREATED_AFTER_DELETE] = "recreated_after_delete",
    [PB_REASON_STALE] = "stale",
    [PB_REASON_PRUVAN_ERROR] = "pruvan_error",
    [PB_REASON_HTTP_4XX] = "http_4xx",
    [PB_REASON_HTTP_ERROR] = "http_error",
    [PB_REASON_RETRIES_EXHAUSTED] = "retries_exhausted",
    [PB_REASON_BATCH_COUNTS_MISMATCH] = "batch_counts_mismatch",
    [PB_REASON_BAD_ANSWER] = "bad_answer",
    [PB_REASON_TOO_LARGE] = "too_large",
    [PB_REASON_EMPTY_RECORD] = "empty_record",
    [PB_REASON_INTERNAL] = "internal",
};
_Static_assert(sizeof(reason_names) / sizeof(*reason_names) == PB_REASON__COUNT,
	       "one name per pb_reason_t");

const char *pb_outcome_name(pb_outcome_t o)
{
	return (unsigned)o < PB_OUTCOME__COUNT ? outcome_names[o] : "";
}

const char *pb_reason_name(pb_reason_t r)
{
	return (unsigned)r < PB_REASON__COUNT ? reason_names[r] : "";
}

/* A stored code: 1 to 3 decimal digits, below count. -1 when s is not. */
static int code_of(const char *s, size_t len, int count)
{
	if (len == 0 || len > 3)
		return -1;
	int v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v < count ? v : -1;
}

/* The index of the name equal to len bytes of s; -1 when none is. */
static int name_of(const char *const *names, int count, const char *s,
		   size_t len)
{
	for (int i = 0; i < count; i++)
		if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
			return i;
	return -1;
}

static int lookup(const char *const *names, int count, const char *s,
		  size_t len)
{
	int v = code_of(s, len, count);
	return v >= 0 ? v : name_of(names, count, s, len);
}

bool pb_outcome_parse(const char *s, size_t len, pb_outcome_t *ret_o)
{
	int v = lookup(outcome_names, PB_OUTCOME__COUNT, s, len);
	if (v <= PB_OUTCOME_NONE)
		return false;
	*ret_o = (pb_outcome_t)v;
	return true;
}

bool pb_reason_parse(const char *s, size_t len, pb_reason_t *ret_r)
{
	int v = lookup(reason_names, PB_REASON__COUNT, s, len);
	if (v < 0)
		return false;
	*ret_r = (pb_reason_t)v;
	return true;
}

bool pb_outcome_is_effect(pb_outcome_t o)
{
	return o == PB_OUTCOME_CREATED || o == PB_OUTCOME_UPDATED ||
	       o == PB_OUTCOME_DELETED;
}
