/*
 * rules_internal.h: pieces of the rules module shared between its source
 * files and its tests, not part of the pipeline's contract (rules.h).
 *
 * - The status table, generated at build time from spec/status-matrix.csv
 *   by tools/gen_status_table.c (never edit the generated file).
 * - Date parsing and Pruvan's date form.
 *
 * Everything here is pure: no I/O, no clock, no mutable globals.
 */
#ifndef PB_RULES_INTERNAL_H
#define PB_RULES_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dates.h"
#include "rules.h"

typedef enum {
	PB_STATUS_ALLOW_BOTH = 0, /* internal+external */
	PB_STATUS_ALLOW_INTERNAL, /* internal mode only */
	PB_STATUS_ALLOW_NO,	  /* never */
	PB_STATUS_ALLOW_CAUTION,  /* only where the account allows deletes */
} pb_status_allow_t;

typedef struct pb_status_rule {
	pb_action_t action; /* CREATE or UPDATE */
	const char *status; /* lower-case; "" is the "not set" row */
	pb_status_allow_t allowed;
	const char *suggestion; /* Client Status suggestion, may be "" */
	const char *notes;
} pb_status_rule_t;

extern const pb_status_rule_t pb_status_table[];
extern const size_t pb_status_table_len;

/* The row for (action, status); status "" is "not set". NULL if none. */
const pb_status_rule_t *pb_status_rule_find(pb_action_t action,
					    const char *status);

/*
 * Normalise a date given as RFC 3339 or Pruvan's "YYYY-MM-DD HHMM +H" into
 * Pruvan's form, keeping the local wall time and a whole-hour offset
 * ("2020-05-28T12:00:00-05:00" -> "2020-05-28 1200 -5"); an offset that is
 * not a whole number of hours is converted to UTC ("+0"). out needs at
 * least 24 bytes. False (out untouched) when the date is invalid.
 */
bool pb_date_to_pruvan(const char *s, char *out, size_t out_size);

#endif
