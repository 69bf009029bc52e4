/*
 * test_dates.c: the calendar and the RFC 3339 parser (dates.h), which the
 * rules (occurredAt, dated fields) and watch (processedAt) share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dates.h"

#define T0_MS 1795881600000LL /* 2026-11-28T16:00:00Z */

/* The cases watch's own parser had, now the shared parser's. */
static void test_rfc3339_watch_cases(void **state)
{
	(void)state;
	int64_t ms = 0;
	assert_true(pb_rfc3339_to_ms("2026-11-28T16:00:00Z", &ms));
	assert_int_equal(ms, T0_MS);
	assert_true(pb_rfc3339_to_ms("2026-11-28T16:00:00.123Z", &ms));
	assert_int_equal(ms, T0_MS + 123);
	assert_true(pb_rfc3339_to_ms("2026-11-28T18:00:00.5+02:00", &ms));
	assert_int_equal(ms, T0_MS + 500);
	assert_true(pb_rfc3339_to_ms("1970-01-01T00:00:00Z", &ms));
	assert_int_equal(ms, 0);
	assert_false(pb_rfc3339_to_ms("2026-11-28 16:00:00Z", &ms));
	assert_false(pb_rfc3339_to_ms("2026-13-28T16:00:00Z", &ms));
	assert_false(pb_rfc3339_to_ms("2026-11-28T16:00:00", &ms));
	assert_false(pb_rfc3339_to_ms("2026-11-28T16:00:00Zjunk", &ms));
	assert_false(pb_rfc3339_to_ms(NULL, &ms));
}

static void test_rfc3339_calendar(void **state)
{
	(void)state;
	int64_t ms = 42;
	assert_false(pb_rfc3339_to_ms("2026-02-29T00:00:00Z", &ms));
	assert_false(pb_rfc3339_to_ms("2026-04-31T00:00:00Z", &ms));
	assert_false(pb_rfc3339_to_ms("2026-11-28T24:00:00Z", &ms));
	assert_false(pb_rfc3339_to_ms("2016-12-31T23:59:60Z", &ms));
	assert_false(pb_rfc3339_to_ms("2026-11-28T16:00:00.Z", &ms));
	assert_false(pb_rfc3339_to_ms("2026-11-28T16:00:00+24:00", &ms));
	assert_int_equal(ms, 42); /* untouched on failure */
	assert_true(pb_rfc3339_to_ms("2024-02-29T00:00:00Z", &ms));
	assert_int_equal(ms, 1709164800000LL);
	/* fractions beyond the millisecond are cut, not rounded */
	assert_true(pb_rfc3339_to_ms("2026-11-28T16:00:00.1239z", &ms));
	assert_int_equal(ms, T0_MS + 123);
	assert_true(pb_rfc3339_to_ms("2026-11-28t10:30:00-05:30", &ms));
	assert_int_equal(ms, T0_MS);
}

static void test_rfc3339_parse_keeps_wall_time(void **state)
{
	(void)state;
	pb_datetime_t t;
	assert_true(pb_rfc3339_parse("2020-05-28T12:00:00-05:00", &t));
	assert_int_equal(t.year, 2020);
	assert_int_equal(t.mon, 5);
	assert_int_equal(t.day, 28);
	assert_int_equal(t.hour, 12);
	assert_int_equal(t.off_min, -300);
	char longer[PB_DATE_MAX + 2];
	for (size_t i = 0; i < sizeof(longer) - 1; i++)
		longer[i] = '0';
	longer[sizeof(longer) - 1] = '\0';
	assert_false(pb_rfc3339_parse(longer, &t));
}

static void test_civil_round_trip(void **state)
{
	(void)state;
	static const int64_t days[] = {-719468, -1,    0,      1,
				       11016,	20785, 2932896};
	for (size_t i = 0; i < sizeof(days) / sizeof(days[0]); i++) {
		int64_t y;
		int m, d;
		pb_civil_from_days(days[i], &y, &m, &d);
		assert_int_equal(pb_days_from_civil(y, m, d), days[i]);
	}
	assert_int_equal(pb_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(pb_days_from_civil(2000, 3, 1), 11017);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc3339_watch_cases),
	    cmocka_unit_test(test_rfc3339_calendar),
	    cmocka_unit_test(test_rfc3339_parse_keeps_wall_time),
	    cmocka_unit_test(test_civil_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
