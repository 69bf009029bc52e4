/*
 * dates.h: the calendar and RFC 3339 date-times, for every module that
 * reads a time (the rules read occurredAt and dated order fields; watch
 * reads the outcome records' processedAt).
 *
 * One parser, so that every command agrees on what a date is: an RFC 3339
 * date-time with "T", seconds, optional fractional seconds (kept to the
 * millisecond) and "Z" or a "+hh:mm" offset. Calendar validity is checked
 * exactly (leap years, month lengths, hours 0-23, minutes and seconds
 * 0-59; leap seconds are refused because Pruvan's form cannot carry them),
 * years are 0000-9999, inputs longer than PB_DATE_MAX are refused before
 * any work.
 *
 * Invariants: arithmetic is done on days since the epoch (Howard Hinnant's
 * civil algorithms), never with the C library's time zone machinery, so
 * nothing here depends on TZ or the clock.
 */
#ifndef PB_DATES_H
#define PB_DATES_H

#include <stdbool.h>
#include <stdint.h>

/* Longest date string accepted anywhere (bounds the parsers' work). */
#define PB_DATE_MAX 64

/* A wall time and its offset, as written. */
typedef struct pb_datetime {
	int year, mon, day, hour, min, sec, ms;
	int off_min; /* local = UTC + off_min */
} pb_datetime_t;

/* Days since 1970-01-01 of a proleptic Gregorian date, and back. */
int64_t pb_days_from_civil(int64_t y, int m, int d);
void pb_civil_from_days(int64_t z, int64_t *y, int *m, int *d);

/* Read exactly n digits at *p into *out and advance; false (nothing
 * advanced) when they are not all digits. */
bool pb_date_digits(const char **p, int n, int *out);

/* "YYYY-MM-DD" at *p into t's date; advances past what it read. */
bool pb_date_part_parse(const char **p, pb_datetime_t *t);

/* Whether t's date and time of day exist (month lengths, leap years). */
bool pb_datetime_valid(const pb_datetime_t *t);

/* Epoch milliseconds (UTC) of t. */
int64_t pb_datetime_utc_ms(const pb_datetime_t *t);

/* Parse an RFC 3339 date-time into *t (zeroed first). False when s is
 * NULL or not one. */
bool pb_rfc3339_parse(const char *s, pb_datetime_t *t);

/*
 * Parse an RFC 3339 date-time ("2026-11-28T16:00:00Z",
 * "2020-05-28T12:00:00.5-05:00") into epoch milliseconds (UTC). Checks
 * real calendar dates (no Feb 30, no hour 24). False when invalid;
 * *ms_out is then untouched.
 */
bool pb_rfc3339_to_ms(const char *s, int64_t *ms_out);

#endif
