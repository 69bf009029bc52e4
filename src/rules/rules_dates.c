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
 * Invariants: the RFC 3339 parser and the calendar are dates.h's, shared
 * with every command; the same calendar checks apply to Pruvan's form
 * (leap years, month lengths, hours 0-23, minutes 0-59), inputs longer
 * than PB_DATE_MAX are refused before any work, and nothing here depends
 * on TZ or the clock.
 */
#include "rules_internal.h"

#include <stdio.h>
#include <string.h>

/* "YYYY-MM-DD HHMM +H" (sign required, 1 or 2 hour digits, |H| <= 14). */
static bool parse_pruvan(const char *s, pb_datetime_t *t)
{
	memset(t, 0, sizeof(*t));
	if (strlen(s) > PB_DATE_MAX)
		return false;
	const char *p = s;
	if (!pb_date_part_parse(&p, t) || *p++ != ' ')
		return false;
	if (!pb_date_digits(&p, 2, &t->hour) ||
	    !pb_date_digits(&p, 2, &t->min) || *p++ != ' ')
		return false;
	if (*p != '+' && *p != '-')
		return false;
	int sign = *p++ == '-' ? -1 : 1, oh;
	if (p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9') {
		if (!pb_date_digits(&p, 2, &oh))
			return false;
	} else if (!pb_date_digits(&p, 1, &oh)) {
		return false;
	}
	if (*p != '\0' || oh > 14)
		return false;
	t->off_min = sign * oh * 60;
	return pb_datetime_valid(t);
}

bool pb_date_to_pruvan(const char *s, char *out, size_t out_size)
{
	pb_datetime_t t;
	if (!s || out_size < 24)
		return false;
	if (!pb_rfc3339_parse(s, &t) && !parse_pruvan(s, &t))
		return false;
	if (t.off_min % 60 != 0 || t.off_min > 14 * 60 ||
	    t.off_min < -14 * 60) {
		/* Pruvan's form carries whole hours only: fall back to UTC,
		 * which loses the local wall time but never the instant
		 * (to the minute; Pruvan has no seconds). */
		int64_t mins = pb_days_from_civil(t.year, t.mon, t.day) * 1440 +
			       t.hour * 60 + t.min - t.off_min;
		int64_t days =
		    mins >= 0 ? mins / 1440 : -((-mins + 1439) / 1440);
		int64_t rem = mins - days * 1440;
		int64_t y;
		pb_civil_from_days(days, &y, &t.mon, &t.day);
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
