/* OIDC tokens for SASL/OAUTHBEARER (oidc.h) against a token endpoint
 * served here (libmicrohttpd), also through librdkafka's refresh
 * callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <microhttpd.h>

#include "kafka_conf.h"
#include "oidc.h"

static struct MHD_Daemon *d;
static int port;
static int requests;
static char last_body[512], last_auth[256];
static int answer_status = 200;

static enum MHD_Result handler(void *cls, struct MHD_Connection *c,
			       const char *url, const char *method,
			       const char *version, const char *upload,
			       size_t *upload_size, void **state)
{
	(void)cls, (void)url, (void)method, (void)version;
	if (!*state) {
		*state = (void *)1;
		last_body[0] = '\0';
		return MHD_YES;
	}
	if (*upload_size) {
		strncat(last_body, upload,
			*upload_size < sizeof(last_body) - strlen(last_body) - 1
			    ? *upload_size
			    : sizeof(last_body) - strlen(last_body) - 1);
		*upload_size = 0;
		return MHD_YES;
	}
	const char *a =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	snprintf(last_auth, sizeof(last_auth), "%s", a ? a : "");
	requests++;
	const char *ok =
	    "{\"access_token\":\"tok-123\",\"token_type\":\"Bearer\","
	    "\"expires_in\":300}";
	const char *no = "{\"error\":\"invalid_client\"}";
	const char *body = answer_status == 200 ? ok : no;
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result rc = MHD_queue_response(c, (unsigned)answer_status, r);
	MHD_destroy_response(r);
	return rc;
}

static int setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
			     handler, NULL, MHD_OPTION_END);
	if (!d)
		return -1;
	port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	MHD_stop_daemon(d);
	curl_global_cleanup();
	return 0;
}

static char config[512];

static const char *cfg_text(void)
{
	snprintf(config, sizeof(config),
		 "token.endpoint.url=http://127.0.0.1:%d/token client.id=pb "
		 "client.secret=s3cr3t scope=kafka:write",
		 port);
	return config;
}

static void parse_forms(void **state)
{
	(void)state;
	pb_oidc_t o;
	char err[256];
	assert_int_equal(pb_oidc_parse("principal=admin", &o, err, sizeof(err)),
			 PB_ERR_NOT_FOUND);
	assert_int_equal(pb_oidc_parse(NULL, &o, err, sizeof(err)),
			 PB_ERR_NOT_FOUND);
	assert_int_equal(pb_oidc_parse(cfg_text(), &o, err, sizeof(err)),
			 PB_OK);
	assert_string_equal(o.client_id, "pb");
	assert_string_equal(o.principal, "pb");
	assert_string_equal(o.scope, "kafka:write");
	assert_int_equal(
	    pb_oidc_parse("token.endpoint.url=https://x/t client.id=a "
			  "client.secret=zz colour=blue",
			  &o, err, sizeof(err)),
	    PB_ERR_INVALID);
	assert_non_null(strstr(err, "\"colour\" is not one of"));
	assert_null(strstr(err, "blue"));
	assert_int_equal(
	    pb_oidc_parse("token.endpoint.url=https://x/t client.id=a", &o, err,
			  sizeof(err)),
	    PB_ERR_INVALID);
	assert_non_null(strstr(err, "client.secret= are required"));
	assert_int_equal(pb_oidc_parse("token.endpoint.url=ftp://x client.id=a "
				       "client.secret=b",
				       &o, err, sizeof(err)),
			 PB_ERR_INVALID);
}

static void fetch_client_credentials(void **state)
{
	(void)state;
	pb_oidc_t o;
	char err[256];
	assert_int_equal(pb_oidc_parse(cfg_text(), &o, err, sizeof(err)),
			 PB_OK);
	char *tok = NULL;
	int64_t exp = 0;
	answer_status = 200;
	assert_int_equal(pb_oidc_fetch(&o, 5000, &tok, &exp, err, sizeof(err)),
			 PB_OK);
	assert_string_equal(tok, "tok-123");
	free(tok);
	assert_true(exp > (int64_t)time(NULL) * 1000 + 290000);
	assert_string_equal(
	    last_body, "grant_type=client_credentials&scope=kafka%3Awrite");
	assert_string_equal(last_auth, "Basic cGI6czNjcjN0"); /* pb:s3cr3t */
	answer_status = 401;
	tok = NULL;
	assert_int_not_equal(
	    pb_oidc_fetch(&o, 5000, &tok, &exp, err, sizeof(err)), PB_OK);
	assert_null(tok);
	assert_non_null(strstr(err, "HTTP 401 (invalid_client)"));
	assert_null(strstr(err, "s3cr3t"));
	answer_status = 200;
}

/* librdkafka asks for a token as soon as an OAUTHBEARER client polls. */
static void refresh_through_librdkafka(void **state)
{
	(void)state;
	char *keys[] = {"bootstrap.servers", "security.protocol",
			"sasl.mechanisms", "sasl.oauthbearer.config"};
	char *vals[] = {"127.0.0.1:1", "sasl_plaintext", "OAUTHBEARER",
			(char *)cfg_text()};
	bool sens[] = {false, false, false, true};
	pb_config_t c = {0};
	c.kafka_keys = keys;
	c.kafka_values = vals;
	c.kafka_sensitive = sens;
	c.kafka_len = 4;
	char err[512];
	assert_int_equal(pb_kafka_conf_check(&c, true, err, sizeof(err)),
			 PB_OK);
	rd_kafka_conf_t *kc = rd_kafka_conf_new();
	assert_int_equal(
	    pb_kafka_conf_apply(&c, kc, PB_KAFKA_PRODUCER, err, sizeof(err)),
	    PB_OK);
	rd_kafka_conf_set(kc, "log_level", "0", err, sizeof(err));
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
	assert_non_null(rk);
	int before = requests;
	for (int i = 0; i < 100 && requests == before; i++)
		rd_kafka_poll(rk, 50);
	assert_int_equal(requests, before + 1);
	rd_kafka_destroy(rk);

	/* a malformed OIDC setting is a configuration mistake */
	vals[3] = "token.endpoint.url=https://x/t client.id=a";
	assert_int_equal(pb_kafka_conf_check(&c, true, err, sizeof(err)),
			 PB_ERR_CONFIG);
	assert_non_null(
	    strstr(err, "$.kafka.sasl.oauthbearer.config: client.id="));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parse_forms),
	    cmocka_unit_test(fetch_client_credentials),
	    cmocka_unit_test(refresh_through_librdkafka),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
