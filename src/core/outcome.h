/*
 * outcome.h: what happened to one consumed record, as codes.
 *
 * Every consumed record gets exactly one outcome (the contract's outcome
 * record, field "outcome") and, where the outcome needs one, a reason (a
 * stable snake_case code, field "reason"). Inside the worker both are
 * enums: branches compare codes, never strings, and this file's two name
 * tables are the only place their spelling lives.
 *
 * Stored codes. The Redis mark of an event (state.h) stores the numeric
 * value of both enums, so the numbers are part of the stored format:
 * append new values at the end of each enum, never renumber or reuse one.
 * pb_outcome_parse and pb_reason_parse read the names too, so that marks
 * written by earlier builds (which stored names) still read back.
 *
 * Must never: return NULL from a name function, or accept a code it does
 * not know.
 */
#ifndef PB_OUTCOME_H
#define PB_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>

typedef enum pb_outcome {
	PB_OUTCOME_NONE = 0, /* not decided yet */
	PB_OUTCOME_CREATED,
	PB_OUTCOME_UPDATED,
	PB_OUTCOME_DELETED,
	PB_OUTCOME_UNCHANGED,
	PB_OUTCOME_DUPLICATE,
	PB_OUTCOME_STALE,
	PB_OUTCOME_REJECTED,
	PB_OUTCOME_FAILED,
	PB_OUTCOME_RELAYED,
	PB_OUTCOME_DISCARDED,
	PB_OUTCOME__COUNT
} pb_outcome_t;

typedef enum pb_reason {
	PB_REASON_NONE = 0, /* no reason: the outcome says it all */
	PB_REASON_INVALID_JSON,
	PB_REASON_MISSING_FIELD,
	PB_REASON_INVALID_FIELD,
	PB_REASON_INVALID_ACTION,
	PB_REASON_INVALID_DATE,
	PB_REASON_INVALID_ADDRESS,
	PB_REASON_NO_SERVICES,
	PB_REASON_UNKNOWN_ACCOUNT,
	PB_REASON_STATUS_NOT_ALLOWED,
	PB_REASON_ASSIGNED_TO_NOT_ALLOWED,
	PB_REASON_DELETE_NOT_ALLOWED,
	PB_REASON_ORDER_DELETED,
	PB_REASON_RECREATED_AFTER_DELETE,
	PB_REASON_STALE,
	PB_REASON_PRUVAN_ERROR,
	PB_REASON_HTTP_4XX,
	PB_REASON_HTTP_ERROR,
	PB_REASON_RETRIES_EXHAUSTED,
	PB_REASON_BATCH_COUNTS_MISMATCH,
	PB_REASON_BAD_ANSWER,
	PB_REASON_TOO_LARGE,
	PB_REASON_EMPTY_RECORD,
	PB_REASON_INTERNAL,
	PB_REASON__COUNT
} pb_reason_t;

/* The contract's name of an outcome ("created"); "" for PB_OUTCOME_NONE
 * and for a value out of range. Never NULL. */
const char *pb_outcome_name(pb_outcome_t o);

/* The contract's name of a reason ("invalid_json"); "" for
 * PB_REASON_NONE and for a value out of range. Never NULL. */
const char *pb_reason_name(pb_reason_t r);

/* Read an outcome from its name or its stored code (decimal), len bytes
 * of s. Sets *ret_o and returns true when it is one; false (and *ret_o
 * untouched) otherwise. */
bool pb_outcome_parse(const char *s, size_t len, pb_outcome_t *ret_o);

/* Read a reason likewise. An empty text is PB_REASON_NONE. */
bool pb_reason_parse(const char *s, size_t len, pb_reason_t *ret_r);

/* An outcome that changed the order in Pruvan (created, updated,
 * deleted). */
bool pb_outcome_is_effect(pb_outcome_t o);

#endif
