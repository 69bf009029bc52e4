/* Each kind of client gets only the "kafka" properties it understands. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kafka_conf.h"

static char *keys[] = {"bootstrap.servers", "group.id",		"linger.ms",
		       "fetch.wait.max.ms", "transactional.id", "client.id"};
static char *vals[] = {"127.0.0.1:1", "g1", "7", "33", "tx", "cid"};

/* The value of key on kc, or "" when unset/default-empty. */
static const char *get(rd_kafka_conf_t *kc, const char *key)
{
	static char buf[128];
	size_t n = sizeof(buf);
	if (rd_kafka_conf_get(kc, key, buf, &n) != RD_KAFKA_CONF_OK)
		return "?";
	return buf;
}

static rd_kafka_conf_t *applied(pb_kafka_role_t role)
{
	pb_config_t c = {0};
	c.kafka_keys = keys;
	c.kafka_values = vals;
	c.kafka_len = sizeof(keys) / sizeof(*keys);
	rd_kafka_conf_t *kc = rd_kafka_conf_new();
	char err[256];
	assert_int_equal(pb_kafka_conf_apply(&c, kc, role, err, sizeof(err)),
			 PB_OK);
	return kc;
}

static void group_consumer(void **state)
{
	(void)state;
	rd_kafka_conf_t *kc = applied(PB_KAFKA_GROUP_CONSUMER);
	assert_string_equal(get(kc, "group.id"), "g1");
	assert_string_equal(get(kc, "fetch.wait.max.ms"), "33");
	assert_string_equal(get(kc, "client.id"), "cid");
	assert_string_not_equal(get(kc, "linger.ms"), "7");
	assert_string_not_equal(get(kc, "transactional.id"), "tx");
	rd_kafka_conf_destroy(kc);
}

static void reader(void **state)
{
	(void)state;
	rd_kafka_conf_t *kc = applied(PB_KAFKA_READER);
	assert_string_not_equal(get(kc, "group.id"), "g1");
	assert_string_equal(get(kc, "fetch.wait.max.ms"), "33");
	assert_string_not_equal(get(kc, "linger.ms"), "7");
	rd_kafka_conf_destroy(kc);
}

static void producer(void **state)
{
	(void)state;
	rd_kafka_conf_t *kc = applied(PB_KAFKA_PRODUCER);
	assert_string_equal(get(kc, "linger.ms"), "7");
	assert_string_equal(get(kc, "bootstrap.servers"), "127.0.0.1:1");
	assert_string_not_equal(get(kc, "group.id"), "g1");
	assert_string_not_equal(get(kc, "fetch.wait.max.ms"), "33");
	assert_string_not_equal(get(kc, "transactional.id"), "tx");
	rd_kafka_conf_destroy(kc);
}

static void refused_property_names_its_path(void **state)
{
	(void)state;
	char *k[] = {"no.such.property"}, *v[] = {"1"};
	pb_config_t c = {0};
	c.kafka_keys = k;
	c.kafka_values = v;
	c.kafka_len = 1;
	rd_kafka_conf_t *kc = rd_kafka_conf_new();
	char err[256];
	assert_int_equal(
	    pb_kafka_conf_apply(&c, kc, PB_KAFKA_PRODUCER, err, sizeof(err)),
	    PB_ERR_CONFIG);
	assert_non_null(strstr(err, "$.kafka.no.such.property"));
	rd_kafka_conf_destroy(kc);
}

/* cooperative-sticky only where its close-before-assignment abort is
 * fixed (librdkafka 2.3.0), and librdkafka accepts what is chosen */
static void default_assignor_by_version(void **state)
{
	(void)state;
	assert_string_equal(pb_kafka_default_assignor(0x020002ff),
			    "range,roundrobin");
	assert_string_equal(pb_kafka_default_assignor(0x020201ff),
			    "range,roundrobin");
	assert_string_equal(pb_kafka_default_assignor(0x020300ff),
			    "cooperative-sticky");
	assert_string_equal(pb_kafka_default_assignor(0x020b01ff),
			    "cooperative-sticky");
	rd_kafka_conf_t *kc = rd_kafka_conf_new();
	char err[256];
	assert_int_equal(
	    rd_kafka_conf_set(kc, "partition.assignment.strategy",
			      pb_kafka_default_assignor(rd_kafka_version()),
			      err, sizeof(err)),
	    RD_KAFKA_CONF_OK);
	rd_kafka_conf_destroy(kc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(default_assignor_by_version),
	    cmocka_unit_test(group_consumer),
	    cmocka_unit_test(reader),
	    cmocka_unit_test(producer),
	    cmocka_unit_test(refused_property_names_its_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
