/* librdkafka's statistics and the process_* metrics, as rendered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kstats.h"
#include "procstat.h"

static const char *consumer_stats =
    "{\"name\":\"rdkafka#consumer-1\",\"type\":\"consumer\",\"msg_cnt\":0,"
    "\"brokers\":{"
    " \"GroupCoordinator\":{\"nodeid\":-1,\"state\":\"UP\",\"rtt\":{\"avg\":1}}"
    ","
    " \"k0:9092/"
    "1\":{\"nodeid\":1,\"state\":\"UP\",\"rtt\":{\"avg\":2500,\"p99\":12000}},"
    " \"k1:9092/"
    "2\":{\"nodeid\":2,\"state\":\"DOWN\",\"rtt\":{\"avg\":0,\"p99\":0}}},"
    "\"topics\":{\"pruvan.orders\":{\"partitions\":{"
    " \"0\":{\"partition\":0,\"consumer_lag\":42},"
    " \"1\":{\"partition\":1,\"consumer_lag\":-1},"
    " \"-1\":{\"partition\":-1,\"consumer_lag\":-1}}}}}";

static const char *producer_stats =
    "{\"type\":\"producer\",\"msg_cnt\":17,\"msg_size\":4096,\"brokers\":{},"
    "\"topics\":{\"pruvan.results\":{\"partitions\":{\"0\":{\"consumer_lag\":5}"
    "}}}}";

static double get(pb_metrics_t *m, const char *name, const char *labels)
{
	double v = -12345;
	assert_int_equal(pb_metrics_get(m, name, labels, &v), PB_OK);
	return v;
}

static void statistics_to_gauges(void **state)
{
	(void)state;
	pb_metrics_t *m = pb_metrics_new();
	assert_int_equal(pb_metrics_declare_standard(m), PB_OK);
	assert_int_equal(
	    pb_kstats_update(m, consumer_stats, strlen(consumer_stats)), PB_OK);
	assert_int_equal(
	    pb_kstats_update(m, producer_stats, strlen(producer_stats)), PB_OK);
	assert_true(get(m, PB_M_KAFKA_PARTITION_LAG,
			"topic=\"pruvan.orders\",partition=\"0\"") == 42);
	double v;
	assert_int_equal(
	    pb_metrics_get(m, PB_M_KAFKA_PARTITION_LAG,
			   "topic=\"pruvan.orders\",partition=\"1\"", &v),
	    PB_ERR_NOT_FOUND);
	/* a producer's partitions have no consumer lag */
	assert_int_equal(
	    pb_metrics_get(m, PB_M_KAFKA_PARTITION_LAG,
			   "topic=\"pruvan.results\",partition=\"0\"", &v),
	    PB_ERR_NOT_FOUND);
	assert_true(get(m, PB_M_KAFKA_BROKER_RTT_AVG,
			"client=\"consumer\",broker=\"k0:9092/1\"") == 0.0025);
	assert_true(get(m, PB_M_KAFKA_BROKER_RTT_P99,
			"client=\"consumer\",broker=\"k0:9092/1\"") == 0.012);
	assert_true(get(m, PB_M_KAFKA_BROKER_UP,
			"client=\"consumer\",broker=\"k1:9092/2\"") == 0);
	assert_int_equal(
	    pb_metrics_get(m, PB_M_KAFKA_BROKER_UP,
			   "client=\"consumer\",broker=\"GroupCoordinator\"",
			   &v),
	    PB_ERR_NOT_FOUND);
	assert_true(get(m, PB_M_KAFKA_PRODUCER_QUEUE_MSGS, "") == 17);
	assert_true(get(m, PB_M_KAFKA_PRODUCER_QUEUE_BYTES, "") == 4096);
	assert_int_equal(pb_kstats_update(m, "{nope", 5), PB_ERR_INVALID);
	assert_int_equal(pb_kstats_update(m, "{}", 2), PB_ERR_INVALID);
	pb_metrics_destroy(m);
}

static void process_metrics_rendered(void **state)
{
	(void)state;
	pb_metrics_t *m = pb_metrics_new();
	pb_procstat_t ps = {0};
	assert_int_equal(pb_procstat_attach(m, &ps), PB_OK);
	volatile double x = 0;
	for (int i = 0; i < 20000000; i++) /* some CPU time to count */
		x += i;
	char *text = pb_metrics_render(m);
	assert_non_null(text);
	assert_non_null(
	    strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
	assert_non_null(strstr(text, "\nprocess_open_fds "));
	assert_non_null(strstr(text, "\nprocess_max_fds "));
	free(text);
	assert_true(get(m, "process_resident_memory_bytes", "") > 1 << 20);
	assert_true(get(m, "process_open_fds", "") >= 3);
	assert_true(get(m, "process_start_time_seconds", "") > 1.6e9);
	assert_true(get(m, "process_cpu_seconds_total", "") > 0);
	pb_metrics_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(statistics_to_gauges),
	    cmocka_unit_test(process_metrics_rendered),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
