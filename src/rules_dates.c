/*
 * rules_dates.c: the two date forms of the contract and Pruvan's notes.
 *
 * Accepted: RFC 3339 date-times with any offset and optional fractional
 * seconds, and Pruvan's own "YYYY-MM-DD HHMM +H" (offset in whole hours,
 * one or two digits, either sign). Pruvan only understands its own form,
 * so every date is sent in it; Pruvan shows the wall time with its offset,
 * so the wall time is kept as given and only an offset Pruvan cannot
 * express (not whole hours, or beyond +-14h) forces a conversion to UTC.
 *
 * Invariants: calendar validity is checked exactly (leap years, month
 * lengths, hours 0-23, minutes and seconds 0-59; leap seconds are refused
 * because Pruvan's form cannot carry them), years are 0000-9999, inputs
 * longer than PB_DATE_MAX are refused before any work. Arithmetic is done
 * on days-since-epoch (Howard Hinnant's civil algorithms), never with the
 * C library's time zone machinery: this module must not depend on TZ or
 * the clock.
 */
#include "rules_internal.h"

#include <stdio.h>
#include <string.h>

typedef struct {
	int year, mon, day, hour, min, sec, ms;
	int off_min; /* local = UTC + off_min */
} pb_dt_t;

static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
	static const int dim[12] = {31, 28, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Read exactly n digits at *p; advance. */
static bool digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool valid_fields(const pb_dt_t *t)
{
	return t->mon >= 1 && t->mon <= 12 && t->day >= 1 &&
	       t->day <= days_in_month(t->year, t->mon) && t->hour <= 23 &&
	       t->min <= 59 && t->sec <= 59;
}

/* "YYYY-MM-DD" */
static bool parse_date_part(const char **p, pb_dt_t *t)
{
	return digits(p, 4, &t->year) && *(*p)++ == '-' &&
	       digits(p, 2, &t->mon) && *(*p)++ == '-' &&
	       digits(p, 2, &t->day);
}

static bool parse_rfc3339(const char *s, pb_dt_t *t)
{
	memset(t, 0, sizeof(*t));
	if (strlen(s) > PB_DATE_MAX)
		return false;
	const char *p = s;
	if (!parse_date_part(&p, t))
		return false;
	if (*p != 'T' && *p != 't')
		return false;
	p++;
	if (!digits(&p, 2, &t->hour) || *p++ != ':' ||
	    !digits(&p, 2, &t->min) || *p++ != ':' ||
	    !digits(&p, 2, &t->sec))
		return false;
	if (*p == '.') {
		p++;
		int n = 0, ms = 0;
		while (*p >= '0' && *p <= '9') {
			if (n < 3)
				ms = ms * 10 + (*p - '0');
			n++;
			p++;
		}
		if (n == 0)
			return false;
		for (int i = n; i < 3; i++)
			ms *= 10;
		t->ms = ms;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
		t->off_min = 0;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om))
			return false;
		if (oh > 23 || om > 59)
			return false;
		t->off_min = sign * (oh * 60 + om);
	} else {
		return false;
	}
	return *p == '\0' && valid_fields(t);
}

/* "YYYY-MM-DD HHMM +H" (sign required, 1 or 2 hour digits, |H| <= 14). */
static bool parse_pruvan(const char *s, pb_dt_t *t)
{
	memset(t, 0, sizeof(*t));
	if (strlen(s) > PB_DATE_MAX)
		return false;
	const char *p = s;
	if (!parse_date_part(&p, t) || *p++ != ' ')
		return false;
	if (!digits(&p, 2, &t->hour) || !digits(&p, 2, &t->min) ||
	    *p++ != ' ')
		return false;
	if (*p != '+' && *p != '-')
		return false;
	int sign = *p++ == '-' ? -1 : 1, oh;
	if (p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9') {
		if (!digits(&p, 2, &oh))
			return false;
	} else if (!digits(&p, 1, &oh)) {
		return false;
	}
	if (*p != '\0' || oh > 14)
		return false;
	t->off_min = sign * oh * 60;
	return valid_fields(t);
}

static int64_t dt_utc_ms(const pb_dt_t *t)
{
	int64_t days = days_from_civil(t->year, t->mon, t->day);
	int64_t mins = days * 1440 + t->hour * 60 + t->min - t->off_min;
	return mins * 60000 + (int64_t)t->sec * 1000 + t->ms;
}

bool pb_rfc3339_to_ms(const char *s, int64_t *ms_out)
{
	pb_dt_t t;
	if (!s || !parse_rfc3339(s, &t))
		return false;
	*ms_out = dt_utc_ms(&t);
	return true;
}

bool pb_date_to_pruvan(const char *s, char *out, size_t out_size)
{
	pb_dt_t t;
	if (!s || out_size < 24)
		return false;
	if (!parse_rfc3339(s, &t) && !parse_pruvan(s, &t))
		return false;
	if (t.off_min % 60 != 0 || t.off_min > 14 * 60 ||
	    t.off_min < -14 * 60) {
		/* Pruvan's form carries whole hours only: fall back to UTC,
		 * which loses the local wall time but never the instant
		 * (to the minute; Pruvan has no seconds). */
		int64_t mins = days_from_civil(t.year, t.mon, t.day) * 1440 +
			       t.hour * 60 + t.min - t.off_min;
		int64_t days = mins >= 0 ? mins / 1440 : -((-mins + 1439) / 1440);
		int64_t rem = mins - days * 1440;
		int64_t y;
		civil_from_days(days, &y, &t.mon, &t.day);
		if (y < 0 || y > 9999)
			return false;
		t.year = (int)y;
		t.hour = (int)(rem / 60);
		t.min = (int)(rem % 60);
		t.off_min = 0;
	}
	/* "%04d-%02d-%02d %02d%02d %+d", written by hand: every dated
	 * field of every event comes through here */
	int v[] = {t.year / 100, t.year % 100, t.mon, t.day, t.hour, t.min};
	static const char sep[6] = {0, 0, '-', '-', ' ', 0}; /* before v[i] */
	char *o = out;
	for (size_t i = 0; i < 6; i++) {
		if (sep[i])
			*o++ = sep[i];
		*o++ = (char)('0' + v[i] / 10);
		*o++ = (char)('0' + v[i] % 10);
	}
	int h = t.off_min / 60;
	*o++ = ' ';
	*o++ = h < 0 ? '-' : '+';
	h = h < 0 ? -h : h;
	if (h >= 10)
		*o++ = (char)('0' + h / 10);
	*o++ = (char)('0' + h % 10);
	*o = '\0';
	return true;
}
