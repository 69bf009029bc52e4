/* check-config's two additions: every "kafka" property applied to
 * librdkafka (pb_kafka_conf_check), and --no-env (pb_config_load_no_env):
 * a file checked without its secrets present, their references' form
 * still checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "kafka_conf.h"

static char path[] = "/tmp/pb-cfgcheck-XXXXXX";

static void write_config(const char *text)
{
	memcpy(path, "/tmp/pb-cfgcheck-XXXXXX", sizeof(path));
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void kafka_typos_named_with_librdkafkas_message(void **state)
{
	(void)state;
	char err[2048];
	pb_config_t *c = NULL;
	assert_int_equal(pb_config_load_string(
			     "{\"kafka\": {\"bootstrap.server\": \"b:9092\","
			     " \"security.protocol\": \"tls\","
			     " \"linger.ms\": 5, \"fetch.wait.max.ms\": 20},"
			     " \"accounts\": {}}",
			     &c, err, sizeof(err)),
			 PB_ERR_CONFIG); /* accounts empty: still invalid */
	assert_int_equal(
	    pb_config_load_string(
		"{\"kafka\": {\"bootstrap.server\": \"b:9092\","
		" \"security.protocol\": \"tls\","
		" \"linger.ms\": 5, \"fetch.wait.max.ms\": 20},"
		" \"accounts\": {\"a\": {\"pushKeyUrl\": \"env:PB_CC_URL\"}}}",
		&c, err, sizeof(err)),
	    PB_OK);
	assert_int_equal(pb_kafka_conf_check(c, true, err, sizeof(err)),
			 PB_ERR_CONFIG);
	assert_non_null(strstr(err,
			       "$.kafka.bootstrap.server: No such "
			       "configuration property: \"bootstrap.server\""));
	assert_non_null(strstr(err, "$.kafka.security.protocol: Invalid value "
				    "\"tls\""));
	/* properties of one kind of client only are fine */
	assert_null(strstr(err, "linger.ms"));
	assert_null(strstr(err, "fetch.wait.max.ms"));
	pb_config_destroy(c);
}

static void kafka_whole_configuration_checked(void **state)
{
	(void)state;
	char err[2048];
	pb_config_t *c = NULL;
	assert_int_equal(
	    pb_config_load_string(
		"{\"kafka\": {\"security.protocol\": \"ssl\","
		" \"ssl.ca.location\": \"/nonexistent/ca.pem\"},"
		" \"accounts\": {\"a\": {\"pushKeyUrl\": \"env:PB_CC_URL\"}}}",
		&c, err, sizeof(err)),
	    PB_OK);
	assert_int_equal(pb_kafka_conf_check(c, false, err, sizeof(err)),
			 PB_OK);
	assert_int_equal(pb_kafka_conf_check(c, true, err, sizeof(err)),
			 PB_ERR_CONFIG);
	assert_non_null(strstr(err, "$.kafka: ssl.ca.location"));
	pb_config_destroy(c);
	assert_int_equal(
	    pb_config_load_string(
		"{\"kafka\": {\"security.protocol\": \"sasl_plaintext\","
		" \"sasl.mechanisms\": \"SCRAM-SHA-512\","
		" \"sasl.username\": \"u\", \"sasl.password\": \"p\"},"
		" \"accounts\": {\"a\": {\"pushKeyUrl\": \"env:PB_CC_URL\"}}}",
		&c, err, sizeof(err)),
	    PB_OK);
	assert_int_equal(pb_kafka_conf_check(c, true, err, sizeof(err)), PB_OK);
	pb_config_destroy(c);
}

static void no_env_checks_forms_only(void **state)
{
	(void)state;
	unsetenv("PB_CC_ABSENT");
	write_config(
	    "{\"kafka\": {\"sasl.password\": \"env:PB_CC_ABSENT\"},"
	    " \"redis\": {\"url\": \"file:/nonexistent/redis-url\"},"
	    " \"accounts\": {\"a\": {\"pushKeyUrl\": \"env:PB_CC_ABSENT\"},"
	    "  \"b\": {\"pushKeyUrl\": \"file:/nonexistent/pushkey\"}}}");
	char err[2048];
	pb_config_t *c = NULL;
	assert_int_equal(pb_config_load(path, &c, err, sizeof(err)),
			 PB_ERR_CONFIG);
	assert_non_null(
	    strstr(err, "environment variable PB_CC_ABSENT is not set"));
	assert_int_equal(pb_config_load_no_env(path, &c, err, sizeof(err)),
			 PB_OK);
	assert_null(pb_config_account(c, "a")->push_key_url);
	/* check-config's effective configuration says where each would
	 * come from */
	assert_string_equal(pb_config_account(c, "a")->push_key_source,
			    "env:PB_CC_ABSENT");
	assert_string_equal(pb_config_account(c, "b")->push_key_source,
			    "file:/nonexistent/pushkey");
	assert_int_equal(pb_kafka_conf_check(c, false, err, sizeof(err)),
			 PB_OK);
	pb_config_destroy(c);
	unlink(path);

	/* a malformed reference or a literal PushKey is still a mistake */
	write_config("{\"accounts\": {\"a\": {\"pushKeyUrl\": \"env:9-bad\"},"
		     " \"b\": {\"pushKeyUrl\": \"https://x/?apiKey=K\"},"
		     " \"c\": {\"pushKeyUrl\": \"file:\"}}}");
	assert_int_equal(pb_config_load_no_env(path, &c, err, sizeof(err)),
			 PB_ERR_CONFIG);
	assert_non_null(strstr(
	    err, "$.accounts.a.pushKeyUrl: invalid environment variable name"));
	assert_non_null(
	    strstr(err, "$.accounts.b.pushKeyUrl: PushKeys come only"));
	assert_non_null(
	    strstr(err, "$.accounts.c.pushKeyUrl: \"file:\" needs a path"));
	unlink(path);
}

/* The operator commands' load: the accounts' secrets are not read, the
 * others are. */
static void tool_load_skips_account_secrets_only(void **state)
{
	(void)state;
	unsetenv("PB_CC_ABSENT");
	write_config("{\"kafka\": {\"sasl.password\": \"env:PB_CC_URL\"},"
		     " \"accounts\": {\"a\": {\"pushKeyUrl\": "
		     "\"env:PB_CC_ABSENT\"}}}");
	char err[2048];
	pb_config_t *c = NULL;
	assert_int_equal(pb_config_load_tool(path, &c, err, sizeof(err)),
			 PB_OK);
	assert_null(pb_config_account(c, "a")->push_key_url);
	assert_string_equal(pb_config_account(c, "a")->push_key_source,
			    "env:PB_CC_ABSENT");
	pb_config_destroy(c);
	unlink(path);
	write_config("{\"kafka\": {\"sasl.password\": \"env:PB_CC_ABSENT\"},"
		     " \"accounts\": {\"a\": {\"pushKeyUrl\": "
		     "\"env:PB_CC_URL\"}}}");
	assert_int_equal(pb_config_load_tool(path, &c, err, sizeof(err)),
			 PB_ERR_CONFIG);
	assert_non_null(
	    strstr(err, "environment variable PB_CC_ABSENT is not set"));
	unlink(path);
}

int main(void)
{
	setenv("PB_CC_URL", "https://pruvan.invalid/api/?apiKey=K", 1);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(kafka_typos_named_with_librdkafkas_message),
	    cmocka_unit_test(kafka_whole_configuration_checked),
	    cmocka_unit_test(no_env_checks_forms_only),
	    cmocka_unit_test(tool_load_skips_account_secrets_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
