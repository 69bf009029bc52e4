/*
 * dates.c: the calendar and RFC 3339 date-times (see dates.h).
 */
#include "dates.h"

#include <string.h>

int64_t pb_days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void pb_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
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

bool pb_date_digits(const char **p, int n, int *out)
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

bool pb_datetime_valid(const pb_datetime_t *t)
{
	return t->mon >= 1 && t->mon <= 12 && t->day >= 1 &&
	       t->day <= days_in_month(t->year, t->mon) && t->hour <= 23 &&
	       t->min <= 59 && t->sec <= 59;
}

bool pb_date_part_parse(const char **p, pb_datetime_t *t)
{
	return pb_date_digits(p, 4, &t->year) && *(*p)++ == '-' &&
	       pb_date_digits(p, 2, &t->mon) && *(*p)++ == '-' &&
	       pb_date_digits(p, 2, &t->day);
}

/* ".d+" at *p: the fraction of a second, kept to the millisecond. */
static bool fraction_parse(const char **p, int *ms_out)
{
	int n = 0, ms = 0;
	while (**p >= '0' && **p <= '9') {
		if (n < 3)
			ms = ms * 10 + (**p - '0');
		n++;
		(*p)++;
	}
	if (n == 0)
		return false;
	for (int i = n; i < 3; i++)
		ms *= 10;
	*ms_out = ms;
	return true;
}

/* "Z" or "+hh:mm" / "-hh:mm" at *p, in minutes east of UTC. */
static bool offset_parse(const char **p, int *off_min)
{
	if (**p == 'Z' || **p == 'z') {
		(*p)++;
		*off_min = 0;
		return true;
	}
	if (**p != '+' && **p != '-')
		return false;
	int sign = *(*p)++ == '-' ? -1 : 1, oh, om;
	if (!pb_date_digits(p, 2, &oh) || *(*p)++ != ':' ||
	    !pb_date_digits(p, 2, &om))
		return false;
	if (oh > 23 || om > 59)
		return false;
	*off_min = sign * (oh * 60 + om);
	return true;
}

bool pb_rfc3339_parse(const char *s, pb_datetime_t *t)
{
	memset(t, 0, sizeof(*t));
	if (!s || strlen(s) > PB_DATE_MAX)
		return false;
	const char *p = s;
	if (!pb_date_part_parse(&p, t))
		return false;
	if (*p != 'T' && *p != 't')
		return false;
	p++;
	if (!pb_date_digits(&p, 2, &t->hour) || *p++ != ':' ||
	    !pb_date_digits(&p, 2, &t->min) || *p++ != ':' ||
	    !pb_date_digits(&p, 2, &t->sec))
		return false;
	if (*p == '.') {
		p++;
		if (!fraction_parse(&p, &t->ms))
			return false;
	}
	if (!offset_parse(&p, &t->off_min))
		return false;
	return *p == '\0' && pb_datetime_valid(t);
}

int64_t pb_datetime_utc_ms(const pb_datetime_t *t)
{
	int64_t days = pb_days_from_civil(t->year, t->mon, t->day);
	int64_t mins = days * 1440 + t->hour * 60 + t->min - t->off_min;
	return mins * 60000 + (int64_t)t->sec * 1000 + t->ms;
}

bool pb_rfc3339_to_ms(const char *s, int64_t *ms_out)
{
	pb_datetime_t t;
	if (!pb_rfc3339_parse(s, &t))
		return false;
	*ms_out = pb_datetime_utc_ms(&t);
	return true;
}
