/*
 * test_metrics.c: the metrics registry: exact exposition output per type,
 * label escaping, number formatting, histogram bucket math, the series
 * bound, thread safety and the standard metric set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static int setup(void **state)
{
	pb_metrics_t *m = pb_metrics_new();
	if (!m)
		return -1;
	*state = m;
	return 0;
}

static int teardown(void **state)
{
	pb_metrics_destroy(*state);
	return 0;
}

/* Every registry carries its own dropped-series counter; it sorts last in
 * these tests' output. */
#define DROPPED_BLOCK                                                          \
	"# HELP pruvan_bridge_metrics_series_dropped_total Metric updates "    \
	"dropped because the registry reached its series bound or the "        \
	"label set was invalid.\n"                                             \
	"# TYPE pruvan_bridge_metrics_series_dropped_total counter\n"          \
	"pruvan_bridge_metrics_series_dropped_total 0\n"

static void check_render(pb_metrics_t *m, const char *expected)
{
	char *out = pb_metrics_render(m);
	assert_non_null(out);
	assert_string_equal(out, expected);
	free(out);
}

static void test_empty_registry_renders_dropped_counter(void **state)
{
	check_render(*state, DROPPED_BLOCK);
}

static void test_counter_render_exact(void **state)
{
	pb_metrics_t *m = *state;
	assert_int_equal(pb_metrics_declare(m, "a_total", PB_METRIC_COUNTER,
					    "Things.", NULL, 0),
			 PB_OK);
	pb_metrics_add(m, "a_total", "x=\"2\"", 1);
	pb_metrics_add(m, "a_total", "x=\"1\"", 2);
	pb_metrics_add(m, "a_total", "x=\"1\"", 0.5);
	pb_metrics_add(m, "a_total", "x=\"1\"", -7);  /* ignored */
	pb_metrics_add(m, "a_total", "x=\"1\"", NAN); /* ignored */
	pb_metrics_add(m, "nope_total", "", 1);	      /* undeclared */
	check_render(m, "# HELP a_total Things.\n"
			"# TYPE a_total counter\n"
			"a_total{x=\"1\"} 2.5\n"
			"a_total{x=\"2\"} 1\n" DROPPED_BLOCK);
}

static void test_gauge_render_exact(void **state)
{
	pb_metrics_t *m = *state;
	assert_int_equal(pb_metrics_declare(m, "g", PB_METRIC_GAUGE,
					    "Line1\nback\\slash", NULL, 0),
			 PB_OK);
	pb_metrics_set(m, "g", "", 5);
	pb_metrics_gauge_add(m, "g", "", -7);
	pb_metrics_set(m, "g", "k=\"inf\"", INFINITY);
	pb_metrics_set(m, "g", "k=\"ninf\"", -INFINITY);
	pb_metrics_set(m, "g", "k=\"big\"", 1e21);
	pb_metrics_set(m, "g", "k=\"int\"", 123456789012.0);
	/* type mismatch: add on a gauge is ignored */
	pb_metrics_add(m, "g", "", 100);
	check_render(m, "# HELP g Line1\\nback\\\\slash\n"
			"# TYPE g gauge\n"
			"g -2\n"
			"g{k=\"big\"} 1e+21\n"
			"g{k=\"inf\"} +Inf\n"
			"g{k=\"int\"} 123456789012\n"
			"g{k=\"ninf\"} -Inf\n" DROPPED_BLOCK);
}

static void test_histogram_render_exact(void **state)
{
	pb_metrics_t *m = *state;
	const double b[] = {0.1, 1, 2.5};
	assert_int_equal(pb_metrics_declare(m, "h_seconds", PB_METRIC_HISTOGRAM,
					    "Latency.", b, 3),
			 PB_OK);
	/* Binary fractions, so the sum prints exactly. */
	pb_metrics_observe(m, "h_seconds", "a=\"x\"", 0.0625);
	pb_metrics_observe(m, "h_seconds", "a=\"x\"", 0.09375);
	pb_metrics_observe(m, "h_seconds", "a=\"y\"", 1); /* le inclusive */
	pb_metrics_observe(m, "h_seconds", "a=\"x\"", 2);
	pb_metrics_observe(m, "h_seconds", "a=\"x\"", 100);
	pb_metrics_observe(m, "h_seconds", "", 1);
	check_render(m, "# HELP h_seconds Latency.\n"
			"# TYPE h_seconds histogram\n"
			"h_seconds_bucket{le=\"0.1\"} 0\n"
			"h_seconds_bucket{le=\"1\"} 1\n"
			"h_seconds_bucket{le=\"2.5\"} 1\n"
			"h_seconds_bucket{le=\"+Inf\"} 1\n"
			"h_seconds_sum 1\n"
			"h_seconds_count 1\n"
			"h_seconds_bucket{a=\"x\",le=\"0.1\"} 2\n"
			"h_seconds_bucket{a=\"x\",le=\"1\"} 2\n"
			"h_seconds_bucket{a=\"x\",le=\"2.5\"} 3\n"
			"h_seconds_bucket{a=\"x\",le=\"+Inf\"} 4\n"
			"h_seconds_sum{a=\"x\"} 102.15625\n"
			"h_seconds_count{a=\"x\"} 4\n"
			"h_seconds_bucket{a=\"y\",le=\"0.1\"} 0\n"
			"h_seconds_bucket{a=\"y\",le=\"1\"} 1\n"
			"h_seconds_bucket{a=\"y\",le=\"2.5\"} 1\n"
			"h_seconds_bucket{a=\"y\",le=\"+Inf\"} 1\n"
			"h_seconds_sum{a=\"y\"} 1\n"
			"h_seconds_count{a=\"y\"} 1\n" DROPPED_BLOCK);
}

static void test_histogram_bucket_math(void **state)
{
	pb_metrics_t *m = *state;
	const double b[] = {1, 2, 5, 10, 20, 50, 100, 200};
	assert_int_equal(
	    pb_metrics_declare(m, "bs", PB_METRIC_HISTOGRAM, "h", b, 8), PB_OK);
	/* 1..300: bucket le=N holds exactly N observations (cumulative). */
	for (int i = 1; i <= 300; i++)
		pb_metrics_observe(m, "bs", "", i);
	char *out = pb_metrics_render(m);
	assert_non_null(out);
	char line[64];
	for (size_t i = 0; i < 8; i++) {
		snprintf(line, sizeof(line), "bs_bucket{le=\"%g\"} %g\n", b[i],
			 b[i]);
		assert_non_null(strstr(out, line));
	}
	assert_non_null(strstr(out, "bs_bucket{le=\"+Inf\"} 300\n"));
	assert_non_null(strstr(out, "bs_sum 45150\n"));
	assert_non_null(strstr(out, "bs_count 300\n"));
	free(out);
	double v = 0;
	assert_int_equal(pb_metrics_get(m, "bs", "", &v), PB_OK);
	assert_true(v == 300);
}

static void test_declare_rules(void **state)
{
	pb_metrics_t *m = *state;
	const double bad[] = {1, 1};
	const double inf[] = {1, INFINITY};
	assert_int_equal(
	    pb_metrics_declare(m, "h", PB_METRIC_HISTOGRAM, "h", bad, 2),
	    PB_ERR_INVALID);
	assert_int_equal(
	    pb_metrics_declare(m, "h", PB_METRIC_HISTOGRAM, "h", inf, 2),
	    PB_ERR_INVALID);
	assert_int_equal(
	    pb_metrics_declare(m, "1bad", PB_METRIC_GAUGE, "h", NULL, 0),
	    PB_ERR_INVALID);
	assert_int_equal(
	    pb_metrics_declare(m, "has-dash", PB_METRIC_GAUGE, "h", NULL, 0),
	    PB_ERR_INVALID);
	assert_int_equal(
	    pb_metrics_declare(m, "ok", PB_METRIC_GAUGE, "h", NULL, 0), PB_OK);
	/* Twice: no-op. Other type: refused. */
	assert_int_equal(
	    pb_metrics_declare(m, "ok", PB_METRIC_GAUGE, "h2", NULL, 0), PB_OK);
	assert_int_equal(
	    pb_metrics_declare(m, "ok", PB_METRIC_COUNTER, "h", NULL, 0),
	    PB_ERR_STATE);
}

static void test_labels_escape(void **state)
{
	(void)state;
	char buf[128];
	assert_string_equal(pb_metrics_labels(buf, sizeof(buf), "a", "x", "b",
					      "q\"u\\o\nte", "c", NULL, NULL),
			    "a=\"x\",b=\"q\\\"u\\\\o\\nte\",c=\"\"");
	assert_string_equal(pb_metrics_labels(buf, sizeof(buf), NULL), "");
}

static void test_labels_overflow_is_dropped(void **state)
{
	pb_metrics_t *m = *state;
	char small[12];
	pb_metrics_labels(small, sizeof(small), "account", "a-long-value",
			  NULL);
	assert_string_equal(small, PB_METRICS_LABELS_OVERFLOW);
	assert_int_equal(
	    pb_metrics_declare(m, "c_total", PB_METRIC_COUNTER, "c", NULL, 0),
	    PB_OK);
	pb_metrics_add(m, "c_total", small, 1);
	double v = -1;
	assert_int_equal(pb_metrics_get(m, "c_total", small, &v),
			 PB_ERR_NOT_FOUND);
	assert_int_equal(pb_metrics_get(m, PB_M_SERIES_DROPPED, "", &v), PB_OK);
	assert_true(v == 1);
}

static void test_escaped_labels_render(void **state)
{
	pb_metrics_t *m = *state;
	char l[128];
	assert_int_equal(
	    pb_metrics_declare(m, "e_total", PB_METRIC_COUNTER, "e", NULL, 0),
	    PB_OK);
	pb_metrics_add(m, "e_total",
		       pb_metrics_labels(l, sizeof(l), "v", "a\"b\n", NULL), 3);
	char *out = pb_metrics_render(m);
	assert_non_null(out);
	assert_non_null(strstr(out, "e_total{v=\"a\\\"b\\n\"} 3\n"));
	free(out);
}

static void test_format_value(void **state)
{
	(void)state;
	static const struct {
		double v;
		const char *s;
	} cases[] = {
	    {0, "0"},
	    {-0.0, "0"},
	    {1, "1"},
	    {-3, "-3"},
	    {0.005, "0.005"},
	    {2.5, "2.5"},
	    {0.1 + 0.2, "0.30000000000000004"},
	    {1e-4, "0.0001"},
	    {9007199254740991.0, "9007199254740991"},
	    {1e300, "1e+300"},
	    {INFINITY, "+Inf"},
	    {-INFINITY, "-Inf"},
	    {NAN, "NaN"},
	};
	char buf[64];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pb_metrics_format_value(cases[i].v, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].s);
	}
}

static void test_series_bound(void **state)
{
	pb_metrics_t *m = *state;
	char l[64];
	assert_int_equal(
	    pb_metrics_declare(m, "s", PB_METRIC_GAUGE, "s", NULL, 0), PB_OK);
	for (int i = 0; i < PB_METRICS_MAX_SERIES + 25; i++) {
		char id[16];
		snprintf(id, sizeof(id), "%d", i);
		pb_metrics_set(
		    m, "s", pb_metrics_labels(l, sizeof(l), "i", id, NULL), 1);
	}
	assert_int_equal(pb_metrics_series_count(m), PB_METRICS_MAX_SERIES);
	double v = 0;
	assert_int_equal(pb_metrics_get(m, PB_M_SERIES_DROPPED, "", &v), PB_OK);
	assert_true(v == 25);
	/* Existing series still update at the bound. */
	pb_metrics_set(m, "s", "i=\"0\"", 42);
	assert_int_equal(pb_metrics_get(m, "s", "i=\"0\"", &v), PB_OK);
	assert_true(v == 42);
	char *out = pb_metrics_render(m);
	assert_non_null(out);
	assert_non_null(
	    strstr(out, "pruvan_bridge_metrics_series_dropped_total 25\n"));
	free(out);
}

/* A resolved series adds to the same series as pb_metrics_add; an update
 * the registry ignores or drops resolves to no series and is still
 * counted as before. */
static void test_resolved_series(void **state)
{
	pb_metrics_t *m = *state;
	assert_int_equal(
	    pb_metrics_declare(m, "r_total", PB_METRIC_COUNTER, "r", NULL, 0),
	    PB_OK);
	pb_metrics_series_t *s =
	    pb_metrics_add_series(m, "r_total", "a=\"x\"", 2);
	assert_non_null(s);
	pb_metrics_series_add(m, s, 1);
	pb_metrics_series_add(m, s, -1); /* ignored, as pb_metrics_add */
	pb_metrics_add(m, "r_total", "a=\"x\"", 0.5);
	double v = 0;
	assert_int_equal(pb_metrics_get(m, "r_total", "a=\"x\"", &v), PB_OK);
	assert_true(v == 3.5);
	assert_null(pb_metrics_add_series(m, "nope_total", "", 1));
	assert_null(
	    pb_metrics_add_series(m, "r_total", PB_METRICS_LABELS_OVERFLOW, 1));
	pb_metrics_series_add(m, NULL, 1); /* no series: nothing */
	assert_int_equal(pb_metrics_get(m, PB_M_SERIES_DROPPED, "", &v), PB_OK);
	assert_true(v == 1);
}

#define THREAD_ADDS 100000

static void *adder(void *arg)
{
	pb_metrics_t *m = arg;
	for (int i = 0; i < THREAD_ADDS; i++) {
		pb_metrics_add(m, "t_total", "", 1);
		pb_metrics_observe(m, "t_hist", "", 0.5);
	}
	return NULL;
}

static void *renderer(void *arg)
{
	pb_metrics_t *m = arg;
	for (int i = 0; i < 50; i++)
		free(pb_metrics_render(m));
	return NULL;
}

static void test_concurrent_adds_exact(void **state)
{
	pb_metrics_t *m = *state;
	const double b[] = {1};
	assert_int_equal(
	    pb_metrics_declare(m, "t_total", PB_METRIC_COUNTER, "t", NULL, 0),
	    PB_OK);
	assert_int_equal(
	    pb_metrics_declare(m, "t_hist", PB_METRIC_HISTOGRAM, "t", b, 1),
	    PB_OK);
	pthread_t a, c, r;
	assert_int_equal(pthread_create(&a, NULL, adder, m), 0);
	assert_int_equal(pthread_create(&c, NULL, adder, m), 0);
	assert_int_equal(pthread_create(&r, NULL, renderer, m), 0);
	pthread_join(a, NULL);
	pthread_join(c, NULL);
	pthread_join(r, NULL);
	double v = 0;
	assert_int_equal(pb_metrics_get(m, "t_total", "", &v), PB_OK);
	assert_true(v == 2.0 * THREAD_ADDS);
	char *out = pb_metrics_render(m);
	assert_non_null(out);
	assert_non_null(strstr(out, "t_hist_bucket{le=\"1\"} 200000\n"));
	assert_non_null(strstr(out, "t_hist_sum 100000\n"));
	free(out);
}

static void test_standard_set(void **state)
{
	pb_metrics_t *m = *state;
	assert_int_equal(pb_metrics_declare_standard(m), PB_OK);
	pb_metrics_gauge_add(m, PB_M_IN_FLIGHT, "", 3);
	/* Idempotent: a second call keeps values. */
	assert_int_equal(pb_metrics_declare_standard(m), PB_OK);
	double v = 0;
	assert_int_equal(pb_metrics_get(m, PB_M_IN_FLIGHT, "", &v), PB_OK);
	assert_true(v == 3);
	pb_metrics_set_build_info(m, "0.1.0");
	char l[256];
	pb_metrics_observe(
	    m, PB_M_PUSH_DURATION,
	    pb_metrics_labels(l, sizeof(l), "account", "acme", NULL), 0.2);
	pb_metrics_observe(m, PB_M_REDIS_RTT, "", 0.0003);
	pb_metrics_add(m, PB_M_OUTCOMES,
		       pb_metrics_labels(l, sizeof(l), "source", "orders",
					 "account", "acme", "outcome",
					 "created", "reason", "", NULL),
		       1);
	char *out = pb_metrics_render(m);
	assert_non_null(out);
	static const char *const want[] = {
	    "# TYPE pruvan_bridge_in_flight_events gauge\n",
	    "pruvan_bridge_in_flight_events 3\n",
	    "pruvan_bridge_redis_errors_total 0\n",
	    "pruvan_bridge_ready 0\n",
	    "pruvan_bridge_paused 0\n",
	    "pruvan_bridge_partitions_assigned 0\n",
	    "pruvan_bridge_build_info{version=\"0.1.0\"} 1\n",
	    "pruvan_bridge_push_duration_seconds_bucket{account=\"acme\","
	    "le=\"0.25\"} 1\n",
	    "pruvan_bridge_push_duration_seconds_bucket{account=\"acme\","
	    "le=\"30\"} 1\n",
	    "pruvan_bridge_redis_roundtrip_seconds_bucket{le=\"0.00025\"} "
	    "0\n",
	    "pruvan_bridge_redis_roundtrip_seconds_bucket{le=\"0.0005\"} "
	    "1\n",
	    "pruvan_bridge_outcomes_total{source=\"orders\",account=\"acme\","
	    "outcome=\"created\",reason=\"\"} 1\n",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (!strstr(out, want[i]))
			fail_msg("missing: %s", want[i]);
	}
	/* Each HELP/TYPE appears once. */
	const char *p = strstr(out, "# TYPE pruvan_bridge_push_duration");
	assert_non_null(p);
	assert_null(strstr(p + 1, "# TYPE pruvan_bridge_push_duration"));
	free(out);
}

static void test_null_safety(void **state)
{
	(void)state;
	pb_metrics_destroy(NULL);
	pb_metrics_add(NULL, "x", "", 1);
	pb_metrics_set(NULL, "x", "", 1);
	pb_metrics_observe(NULL, "x", "", 1);
	assert_null(pb_metrics_render(NULL));
	assert_int_equal(pb_metrics_series_count(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	    T(test_empty_registry_renders_dropped_counter),
	    T(test_counter_render_exact),
	    T(test_gauge_render_exact),
	    T(test_histogram_render_exact),
	    T(test_histogram_bucket_math),
	    T(test_declare_rules),
	    T(test_labels_escape),
	    T(test_labels_overflow_is_dropped),
	    T(test_escaped_labels_render),
	    T(test_format_value),
	    T(test_series_bound),
	    T(test_resolved_series),
	    T(test_concurrent_adds_exact),
	    T(test_standard_set),
	    cmocka_unit_test(test_null_safety),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
