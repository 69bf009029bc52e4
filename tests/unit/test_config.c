/*
 * test_config.c: configuration loading, validation, secrets, describe.
 *
 * Most mistakes are data: tests/fixtures/config/invalid/NAME.json is a
 * configuration with one kind of mistake (many_mistakes.json has many) and
 * NAME.errors lists the exact lines the report must hold, one per line; a
 * line ending in '*' matches by prefix (for text that names the fixture's
 * own path or comes from jansson). The report must hold exactly those
 * lines, no more, and never a piece of a secret. Every file under
 * tests/fixtures/config/valid/ must load. The runner walks both folders, so
 * a new case is two files and no code.
 *
 * The environment the fixtures rely on is set up once in group_setup:
 * PB_TEST_PUSHKEY (a valid PushKey URL whose key is SECRETKEY123), and
 * friends; the override variables are cleared so the host cannot leak in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#define PUSHKEY "https://direct.pruvan.com/api/?apiKey=SECRETKEY123"
#define MINIMAL                                                                \
	"{\"accounts\": {\"acme\": {\"pushKeyUrl\": "                          \
	"\"env:PB_TEST_PUSHKEY\"}}}"

static char fixtures[1024];

/* Any of these in an error report or a describe output is a leak. */
static const char *const secrets[] = {
    "SECRETKEY", "relaysecret", "relaytoken", "hunter2", "redispass",
};

static void assert_no_secret(const char *text)
{
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
		if (strstr(text, secrets[i]))
			fail_msg("secret %s leaked into: %s", secrets[i], text);
	}
}

static void clear_overrides(void)
{
	unsetenv("KAFKA_BOOTSTRAP_SERVERS");
	unsetenv("REDIS_URL");
	unsetenv("PRUVAN_BRIDGE_HTTP_LISTEN");
}

static int group_setup(void **state)
{
	(void)state;
	const char *f = getenv("PB_FIXTURES");
#ifdef PB_SOURCE_DIR
	if (!f)
		f = PB_SOURCE_DIR "/tests/fixtures";
#endif
	snprintf(fixtures, sizeof(fixtures), "%s/config",
		 f ? f : "tests/fixtures");
	setenv("PB_TEST_PUSHKEY", PUSHKEY, 1);
	setenv("PB_TEST_FTP_PUSHKEY",
	       "ftp://direct.pruvan.com/?apiKey=SECRETKEY456", 1);
	setenv("PB_TEST_EMPTY", "", 1);
	setenv("PB_TEST_RELAY_SECRET", "relaysecret", 1);
	unsetenv("PB_TEST_UNSET");
	clear_overrides();
	return 0;
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1 << 16);
	size_t n = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
	(void)n;
	fclose(f);
	return buf;
}

/* Count the lines of a report (no trailing newline). */
static size_t count_lines(const char *s)
{
	if (!*s)
		return 0;
	size_t n = 1;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Is want (exact, or a prefix when it ends in '*') a line of report? */
static bool has_line(const char *report, const char *want)
{
	size_t wl = strlen(want);
	bool prefix = wl > 0 && want[wl - 1] == '*';
	const char *p = report;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t ll = nl ? (size_t)(nl - p) : strlen(p);
		if (prefix) {
			/* '*' inside the pattern: each piece in order. */
			char pat[1024];
			snprintf(pat, sizeof(pat), "%.*s", (int)wl, want);
			char line[2048];
			snprintf(line, sizeof(line), "%.*s", (int)ll, p);
			const char *at = line;
			bool ok = true, first = true;
			for (char *piece = pat; ok && piece;) {
				char *star = strchr(piece, '*');
				if (star)
					*star = '\0';
				if (*piece) {
					const char *hit = strstr(at, piece);
					ok = hit && (!first || hit == line);
					if (ok)
						at = hit + strlen(piece);
				}
				first = false;
				piece = star ? star + 1 : NULL;
			}
			if (ok)
				return true;
		} else if (ll == wl && memcmp(p, want, wl) == 0) {
			return true;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Fixture runners                                                     */
/* ------------------------------------------------------------------ */

static void test_invalid_fixture(void **state)
{
	const char *name = *state;
	char path[1200], epath[1200];
	snprintf(path, sizeof(path), "%s/invalid/%s.json", fixtures, name);
	snprintf(epath, sizeof(epath), "%s/invalid/%s.errors", fixtures, name);
	char *expected = read_text(epath);
	assert_non_null(expected);

	pb_config_t *cfg = NULL;
	char err[8192];
	pb_err_t rc = pb_config_load(path, &cfg, err, sizeof(err));
	if (rc != PB_ERR_CONFIG)
		fail_msg("%s: expected PB_ERR_CONFIG, got %s (%s)", name,
			 pb_err_name(rc), err);
	assert_null(cfg);
	assert_no_secret(err);

	size_t want = 0;
	for (char *line = expected; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (*line) {
			want++;
			if (!has_line(err, line))
				fail_msg(
				    "%s: missing line\n  %s\nin report:\n%s",
				    name, line, err);
		}
		line = nl ? nl + 1 : NULL;
	}
	if (count_lines(err) != want)
		fail_msg("%s: expected %zu lines, report has %zu:\n%s", name,
			 want, count_lines(err), err);
	free(expected);
}

static void test_valid_fixture(void **state)
{
	const char *name = *state;
	char path[1200];
	snprintf(path, sizeof(path), "%s/valid/%s", fixtures, name);
	pb_config_t *cfg = NULL;
	char err[4096];
	pb_err_t rc = pb_config_load(path, &cfg, err, sizeof(err));
	if (rc != PB_OK)
		fail_msg("%s: %s", name, err);
	assert_non_null(cfg);
	assert_true(cfg->accounts_len >= 1);
	char *d = pb_config_describe(cfg);
	assert_non_null(d);
	assert_no_secret(d);
	free(d);
	pb_config_destroy(cfg);
}

/* ------------------------------------------------------------------ */
/* Hand-written cases                                                  */
/* ------------------------------------------------------------------ */

static pb_config_t *load_ok(const char *text)
{
	pb_config_t *cfg = NULL;
	char err[4096];
	pb_err_t rc = pb_config_load_string(text, &cfg, err, sizeof(err));
	if (rc != PB_OK)
		fail_msg("load failed: %s", err);
	return cfg;
}

static void test_defaults(void **state)
{
	(void)state;
	pb_config_t *cfg = load_ok(MINIMAL);
	assert_string_equal(pb_config_kafka_get(cfg, "bootstrap.servers"),
			    "127.0.0.1:9092");
	assert_string_equal(pb_config_kafka_get(cfg, "group.id"),
			    "pruvan-bridge");
	assert_int_equal(cfg->kafka_len, 2);
	assert_string_equal(cfg->topic_orders, "pruvan.orders");
	assert_string_equal(cfg->topic_inbound, "pruvan.inbound");
	assert_string_equal(cfg->topic_results, "pruvan.results");
	assert_string_equal(cfg->topic_dlq, "pruvan.dlq");
	assert_string_equal(cfg->redis_url, "redis://127.0.0.1:6379/0");
	assert_string_equal(cfg->redis_key_prefix, "pb:");
	assert_int_equal(cfg->pruvan_timeout_ms, 10000);
	assert_int_equal(cfg->pruvan_max_attempts, 8);
	assert_int_equal(cfg->pruvan_backoff_base_ms, 200);
	assert_int_equal(cfg->pruvan_backoff_max_ms, 30000);
	assert_int_equal(cfg->pruvan_batch_max_orders, 50);
	assert_int_equal(cfg->pruvan_batch_max_wait_ms, 20);
	assert_int_equal(cfg->pruvan_max_in_flight, 16);
	assert_int_equal(cfg->pruvan_circuit_failures, 5);
	assert_int_equal(cfg->pruvan_circuit_open_ms, 30000);
	assert_int_equal(cfg->dedupe_ttl_seconds, 604800);
	assert_string_equal(cfg->http_listen, "127.0.0.1:9464");
	assert_int_equal(cfg->worker_max_pending, 2000);
	assert_int_equal(cfg->worker_shutdown_grace_ms, 25000);
	assert_null(cfg->relay_listen);
	assert_string_equal(cfg->relay_base_path, "/pruvan");
	assert_string_equal(cfg->relay_media_dir,
			    "/var/lib/pruvan-bridge/media");
	assert_int_equal(cfg->relay_max_body_bytes, 32 * 1024 * 1024);
	assert_int_equal(cfg->relay_max_payload_bytes, 1024 * 1024);
	assert_int_equal(cfg->relay_max_file_bytes, 25 * 1024 * 1024);
	assert_int_equal(cfg->relay_max_items, 1000);
	assert_string_equal(cfg->pruvan_api_url,
			    "https://direct.pruvan.com/api/");

	assert_int_equal(cfg->accounts_len, 1);
	const pb_account_t *a = pb_config_account(cfg, "acme");
	assert_non_null(a);
	assert_string_equal(a->name, "acme");
	assert_string_equal(a->push_key_url, PUSHKEY);
	assert_string_equal(a->push_key_source, "env:PB_TEST_PUSHKEY");
	assert_int_equal(a->mode, PB_MODE_INTERNAL);
	assert_true(a->auto_admin);
	assert_false(a->allow_deletes);
	assert_int_equal(a->status_policy, PB_STATUS_POLICY_DROP);
	assert_int_equal(a->users_len, 0);
	assert_int_equal(a->extra_fields_len, 0);
	assert_int_equal(a->body_encoding, PB_BODY_FORM);
	assert_null(pb_config_account(cfg, "ACME"));
	assert_null(pb_config_account(cfg, NULL));
	assert_null(pb_config_kafka_get(cfg, "client.id"));
	pb_config_destroy(cfg);
	pb_config_destroy(NULL);
	assert_null(pb_config_account(NULL, "acme"));
	assert_null(pb_config_kafka_get(NULL, "group.id"));
}

static void test_every_value_read(void **state)
{
	(void)state;
	pb_config_t *cfg = load_ok(
	    "{\"topics\": {\"orders\": \"a\", \"inbound\": \"b\", "
	    "\"results\": \"c\", \"dlq\": \"d\"},"
	    "\"redis\": {\"url\": \"redis://r:6380/2\", \"keyPrefix\": \"x:\"},"
	    "\"pruvan\": {\"timeoutMs\": 100, \"maxAttempts\": 100, "
	    "\"backoffBaseMs\": 1, \"backoffMaxMs\": 2, "
	    "\"batchMaxOrders\": 1000, \"batchMaxWaitMs\": 0, "
	    "\"maxInFlight\": 3, \"circuitFailures\": 4, "
	    "\"circuitOpenMs\": 500},"
	    "\"dedupe\": {\"ttlSeconds\": 60},"
	    "\"http\": {\"listen\": \"0.0.0.0:1\"},"
	    "\"worker\": {\"maxPending\": 7, \"shutdownGraceMs\": 100},"
	    "\"accounts\": {\"b\": {\"pushKeyUrl\": \"env:PB_TEST_PUSHKEY\","
	    " \"mode\": \"external\", \"autoAdmin\": false, "
	    "\"allowDeletes\": true, \"statusPolicy\": \"reject\", "
	    "\"users\": [\"u1\", \"u2\"], \"extraFields\": [\"lockbox\"], "
	    "\"bodyEncoding\": \"multipart\"}, "
	    "\"a\": {\"pushKeyUrl\": \"env:PB_TEST_PUSHKEY\", "
	    "\"bodyEncoding\": \"json\"}}}");
	assert_string_equal(cfg->topic_orders, "a");
	assert_string_equal(cfg->topic_dlq, "d");
	assert_string_equal(cfg->redis_url, "redis://r:6380/2");
	assert_string_equal(cfg->redis_key_prefix, "x:");
	assert_int_equal(cfg->pruvan_timeout_ms, 100);
	assert_int_equal(cfg->pruvan_max_attempts, 100);
	assert_int_equal(cfg->pruvan_batch_max_orders, 1000);
	assert_int_equal(cfg->pruvan_batch_max_wait_ms, 0);
	assert_int_equal(cfg->pruvan_max_in_flight, 3);
	assert_int_equal(cfg->pruvan_circuit_failures, 4);
	assert_int_equal(cfg->pruvan_circuit_open_ms, 500);
	assert_int_equal(cfg->dedupe_ttl_seconds, 60);
	assert_string_equal(cfg->http_listen, "0.0.0.0:1");
	assert_int_equal(cfg->worker_max_pending, 7);
	assert_int_equal(cfg->worker_shutdown_grace_ms, 100);
	assert_int_equal(cfg->accounts_len, 2);
	/* file order is kept */
	assert_string_equal(cfg->accounts[0].name, "b");
	const pb_account_t *b = pb_config_account(cfg, "b");
	assert_int_equal(b->mode, PB_MODE_EXTERNAL);
	assert_false(b->auto_admin);
	assert_true(b->allow_deletes);
	assert_int_equal(b->status_policy, PB_STATUS_POLICY_REJECT);
	assert_int_equal(b->users_len, 2);
	assert_string_equal(b->users[1], "u2");
	assert_int_equal(b->extra_fields_len, 1);
	assert_string_equal(b->extra_fields[0], "lockbox");
	assert_int_equal(b->body_encoding, PB_BODY_MULTIPART);
	assert_int_equal(pb_config_account(cfg, "a")->body_encoding,
			 PB_BODY_JSON);
	pb_config_destroy(cfg);
}

/* librdkafka properties pass through as strings, in file order; the
 * defaults are appended only when absent; an override keeps the place. */
static void test_kafka_passthrough_order(void **state)
{
	(void)state;
	setenv("PB_TEST_KPASS", "hunter2\n", 1);
	pb_config_t *cfg = load_ok(
	    "{\"kafka\": {\"client.id\": \"me\", \"linger.ms\": 5, "
	    "\"group.id\": \"g1\", \"enable.idempotence\": true, "
	    "\"enable.auto.commit\": false, \"fetch.wait.max.ms\": 0.5, "
	    "\"sasl.password\": \"env:PB_TEST_KPASS\", "
	    "\"ssl.key.password\": \"plain\"}, "
	    "\"accounts\": {\"a\": {\"pushKeyUrl\": "
	    "\"env:PB_TEST_PUSHKEY\"}}}");
	static const char *const keys[] = {
	    "client.id",	  "linger.ms",		"group.id",
	    "enable.idempotence", "enable.auto.commit", "fetch.wait.max.ms",
	    "sasl.password",	  "ssl.key.password",	"bootstrap.servers"};
	static const char *const vals[] = {
	    "me",  "5",	      "g1",    "true",		"false",
	    "0.5", "hunter2", "plain", "127.0.0.1:9092"};
	static const bool sens[] = {false, false, false, false, false,
				    false, true,  true,	 false};
	assert_int_equal(cfg->kafka_len, 9);
	for (size_t i = 0; i < 9; i++) {
		assert_string_equal(cfg->kafka_keys[i], keys[i]);
		assert_string_equal(cfg->kafka_values[i], vals[i]);
		assert_int_equal(cfg->kafka_sensitive[i], sens[i]);
	}
	pb_config_destroy(cfg);

	setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092", 1);
	cfg = load_ok("{\"kafka\": {\"client.id\": \"me\", "
		      "\"bootstrap.servers\": \"file-value:9092\", "
		      "\"group.id\": \"g\"}, "
		      "\"accounts\": {\"a\": {\"pushKeyUrl\": "
		      "\"env:PB_TEST_PUSHKEY\"}}}");
	clear_overrides();
	assert_int_equal(cfg->kafka_len, 3);
	assert_string_equal(cfg->kafka_keys[1], "bootstrap.servers");
	assert_string_equal(cfg->kafka_values[1], "k1:9092,k2:9092");
	pb_config_destroy(cfg);
	unsetenv("PB_TEST_KPASS");
}

static void test_env_overrides(void **state)
{
	(void)state;
	setenv("KAFKA_BOOTSTRAP_SERVERS", "b1:9092", 1);
	setenv("REDIS_URL", "redis://:redispass@redis.svc:6379/1", 1);
	setenv("PRUVAN_BRIDGE_HTTP_LISTEN", "0.0.0.0:9999", 1);
	pb_config_t *cfg =
	    load_ok("{\"redis\": {\"url\": \"redis://file:6379\"}, "
		    "\"http\": {\"listen\": \"127.0.0.1:1\"}, "
		    "\"accounts\": {\"a\": {\"pushKeyUrl\": "
		    "\"env:PB_TEST_PUSHKEY\"}}}");
	assert_string_equal(pb_config_kafka_get(cfg, "bootstrap.servers"),
			    "b1:9092");
	assert_string_equal(cfg->redis_url,
			    "redis://:redispass@redis.svc:6379/1");
	assert_string_equal(cfg->http_listen, "0.0.0.0:9999");
	char *d = pb_config_describe(cfg);
	assert_non_null(d);
	assert_no_secret(d); /* the Redis password is redacted */
	free(d);
	pb_config_destroy(cfg);
	clear_overrides();
}

/* http.listen "" turns the operations endpoint off, as its reference
 * says, in the file and in PRUVAN_BRIDGE_HTTP_LISTEN alike. */
static void test_http_listen_empty_is_off(void **state)
{
	(void)state;
	clear_overrides();
	pb_config_t *cfg =
	    load_ok("{\"http\": {\"listen\": \"\"}, \"accounts\": {\"acme\": "
		    "{\"pushKeyUrl\": \"env:PB_TEST_PUSHKEY\"}}}");
	assert_string_equal(cfg->http_listen, "");
	pb_config_destroy(cfg);
	setenv("PRUVAN_BRIDGE_HTTP_LISTEN", "", 1);
	cfg = load_ok(MINIMAL);
	assert_string_equal(cfg->http_listen, "");
	pb_config_destroy(cfg);
	clear_overrides();
}

/* Overrides are validated like file values; the path names the variable. */
static void test_env_overrides_invalid(void **state)
{
	(void)state;
	static const struct {
		const char *var, *value, *line;
	} cases[] = {
	    {"KAFKA_BOOTSTRAP_SERVERS", "",
	     "env KAFKA_BOOTSTRAP_SERVERS: expected a comma-separated "
	     "list of host:port without spaces (unset it to use the "
	     "file's value)"},
	    {"KAFKA_BOOTSTRAP_SERVERS", "a:1, b:2",
	     "env KAFKA_BOOTSTRAP_SERVERS: expected a comma-separated "
	     "list of host:port without spaces (unset it to use the "
	     "file's value)"},
	    {"REDIS_URL", "http://:redispass@x:1",
	     "env REDIS_URL: not a Redis URL: expected "
	     "\"redis://[USER[:PASSWORD]@]HOST[:PORT][/DB]\", "
	     "\"rediss://...\" (TLS; HOST may be [IPv6], DB 0..15) or "
	     "\"unix:///PATH\""},
	    {"PRUVAN_BRIDGE_HTTP_LISTEN", "9464",
	     "env PRUVAN_BRIDGE_HTTP_LISTEN: expected \"host:port\" with "
	     "a port 0..65535, e.g. \"127.0.0.1:9464\" or \"[::]:9464\" "
	     "(got \"9464\")"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		clear_overrides();
		setenv(cases[i].var, cases[i].value, 1);
		pb_config_t *cfg = NULL;
		char err[4096];
		pb_err_t rc =
		    pb_config_load_string(MINIMAL, &cfg, err, sizeof(err));
		assert_int_equal(rc, PB_ERR_CONFIG);
		assert_null(cfg);
		if (!has_line(err, cases[i].line))
			fail_msg("case %zu: want\n%s\ngot\n%s", i,
				 cases[i].line, err);
		assert_int_equal(count_lines(err), 1);
		assert_no_secret(err);
	}
	clear_overrides();
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

/* file: secrets are read and trimmed; env: secrets trimmed too. */
static void test_file_and_env_secrets(void **state)
{
	(void)state;
	char dir[] = "/tmp/pb-config-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char pk[256], rs[256], text[1024];
	snprintf(pk, sizeof(pk), "%s/pushkey", dir);
	snprintf(rs, sizeof(rs), "%s/relay", dir);
	write_file(pk,
		   "https://direct.pruvan.com/api/?apiKey=SECRETKEY777\r\n \n");
	write_file(rs, "relaysecret\n");
	setenv("PB_TEST_PK_NL", PUSHKEY "\n", 1);
	snprintf(text, sizeof(text),
		 "{\"relay\": {\"listen\": \"0.0.0.0:9465\"}, \"accounts\": {"
		 "\"f\": {\"pushKeyUrl\": \"file:%s\", \"relay\": "
		 "{\"username\": \"f\", \"token\": \"file:%s\"}}, "
		 "\"e\": {\"pushKeyUrl\": \"env:PB_TEST_PK_NL\"}}}",
		 pk, rs);
	pb_config_t *cfg = load_ok(text);
	assert_string_equal(
	    pb_config_account(cfg, "f")->push_key_url,
	    "https://direct.pruvan.com/api/?apiKey=SECRETKEY777");
	char src[300];
	snprintf(src, sizeof(src), "file:%s", pk);
	assert_string_equal(pb_config_account(cfg, "f")->push_key_source, src);
	assert_string_equal(pb_config_account(cfg, "e")->push_key_url, PUSHKEY);
	assert_string_equal(cfg->relay_listen, "0.0.0.0:9465");
	assert_string_equal(pb_config_account(cfg, "f")->relay_token,
			    "relaysecret");
	assert_string_equal(pb_config_account(cfg, "f")->relay_username, "f");
	assert_null(pb_config_account(cfg, "f")->relay_password);
	char *d = pb_config_describe(cfg);
	assert_non_null(d);
	assert_no_secret(d);
	assert_non_null(strstr(d, src)); /* where it came from is shown */
	pb_config_destroy(cfg);
	free(d);

	/* an empty secret file, and one that holds no http(s) URL: the
	 * report names the file, never its content */
	write_file(pk, "\n");
	write_file(rs, "ftp://x/?apiKey=SECRETKEY888\n");
	snprintf(text, sizeof(text),
		 "{\"accounts\": {\"f\": {\"pushKeyUrl\": \"file:%s\"}, "
		 "\"g\": {\"pushKeyUrl\": \"file:%s\"}}}",
		 pk, rs);
	char err[4096], want[512];
	pb_config_t *bad = NULL;
	assert_int_equal(pb_config_load_string(text, &bad, err, sizeof(err)),
			 PB_ERR_CONFIG);
	assert_null(bad);
	assert_no_secret(err);
	snprintf(want, sizeof(want),
		 "$.accounts.f.pushKeyUrl: secret file %s is empty", pk);
	assert_true(has_line(err, want));
	snprintf(want, sizeof(want),
		 "$.accounts.g.pushKeyUrl: the PushKey URL from secret file %s "
		 "is not an http:// or https:// URL (expected e.g. "
		 "https://direct.pruvan.com/api/?apiKey=KEY)",
		 rs);
	assert_true(has_line(err, want));
	assert_int_equal(count_lines(err), 2);

	unlink(pk);
	unlink(rs);
	rmdir(dir);
	unsetenv("PB_TEST_PK_NL");
}

/* No message ever quotes a secret, whatever is wrong with it. */
static void test_secret_never_in_errstr(void **state)
{
	(void)state;
	static const struct {
		const char *env; /* PB_TEST_LEAK value, or NULL */
		const char *json;
	} cases[] = {
	    {NULL, "{\"accounts\": {\"a\": {\"pushKeyUrl\": "
		   "\"https://x/?apiKey=SECRETKEY1\"}}}"},
	    {NULL, "{\"accounts\": {\"a\": {\"pushKeyUrl\": "
		   "\"SECRETKEY1\"}}}"},
	    {"ftp://h/?apiKey=SECRETKEY2",
	     "{\"accounts\": {\"a\": "
	     "{\"pushKeyUrl\": \"env:PB_TEST_LEAK\"}}}"},
	    {"https://h/?apiKey=SECRETKEY3 with space",
	     "{\"accounts\": "
	     "{\"a\": {\"pushKeyUrl\": \"env:PB_TEST_LEAK\"}}}"},
	    {"redis-but-not://u:redispass@h",
	     "{\"redis\": {\"url\": "
	     "\"env:PB_TEST_LEAK\"}, \"accounts\": {}}"},
	    {NULL, "{\"redis\": {\"url\": \"rediss://:redispass@h:0\"}, "
		   "\"accounts\": {}}"},
	    {NULL, "{\"relay\": {\"listen\": \"0.0.0.0:1\"}, "
		   "\"accounts\": {\"a\": {\"pushKeyUrl\": "
		   "\"pruvan:validate\", \"relay\": {\"username\": "
		   "\"u\", \"password\": \"relaysecret\"}}}}"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].env)
			setenv("PB_TEST_LEAK", cases[i].env, 1);
		pb_config_t *cfg = NULL;
		char err[4096];
		assert_int_equal(pb_config_load_string(cases[i].json, &cfg, err,
						       sizeof(err)),
				 PB_ERR_CONFIG);
		assert_true(strlen(err) > 0);
		assert_no_secret(err);
		unsetenv("PB_TEST_LEAK");
	}
}

static void test_describe(void **state)
{
	(void)state;
	setenv("PB_TEST_KPASS", "hunter2", 1);
	pb_config_t *cfg = load_ok(
	    "{\"kafka\": {\"sasl.password\": \"env:PB_TEST_KPASS\", "
	    "\"sasl.username\": \"u\"}, "
	    "\"relay\": {\"listen\": \"0.0.0.0:9465\"}, "
	    "\"accounts\": {\"acme\": {\"pushKeyUrl\": \"env:PB_TEST_PUSHKEY\","
	    " \"users\": [\"jsmith\"], \"relay\": {\"username\": "
	    "\"acme\", \"password\": \"env:PB_TEST_RELAY_SECRET\"}}}}");
	char *text = pb_config_describe(cfg);
	assert_non_null(text);
	assert_no_secret(text);
	json_error_t jerr;
	json_t *d = json_loads(text, 0, &jerr);
	assert_non_null(d);
	json_t *acme = json_object_get(json_object_get(d, "accounts"), "acme");
	assert_string_equal(
	    json_string_value(json_object_get(acme, "pushKeyUrl")),
	    "https://direct.pruvan.com/api/?<redacted>");
	assert_string_equal(
	    json_string_value(json_object_get(acme, "pushKeyUrlFrom")),
	    "env:PB_TEST_PUSHKEY");
	assert_string_equal(json_string_value(json_object_get(acme, "mode")),
			    "internal");
	assert_int_equal(json_array_size(json_object_get(acme, "users")), 1);
	json_t *k = json_object_get(d, "kafka");
	assert_string_equal(
	    json_string_value(json_object_get(k, "sasl.password")),
	    "<redacted>");
	assert_string_equal(
	    json_string_value(json_object_get(k, "sasl.username")), "u");
	json_t *relay = json_object_get(acme, "relay");
	assert_string_equal(
	    json_string_value(json_object_get(relay, "password")),
	    "<redacted>");
	assert_string_equal(
	    json_string_value(json_object_get(relay, "passwordFrom")),
	    "env:PB_TEST_RELAY_SECRET");
	assert_string_equal(
	    json_string_value(json_object_get(relay, "username")), "acme");
	assert_true(json_is_null(json_object_get(relay, "token")));
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(d, "relay"), "basePath")),
			    "/pruvan");
	assert_int_equal(json_integer_value(json_object_get(
			     json_object_get(d, "pruvan"), "maxAttempts")),
			 8);
	assert_int_equal(json_integer_value(json_object_get(
			     json_object_get(d, "dedupe"), "ttlSeconds")),
			 604800);
	json_decref(d);
	free(text);
	pb_config_destroy(cfg);
	assert_null(pb_config_describe(NULL));
	unsetenv("PB_TEST_KPASS");
}

static void test_invalid_json_position(void **state)
{
	(void)state;
	pb_config_t *cfg = NULL;
	char err[1024];
	assert_int_equal(
	    pb_config_load_string("{\n  \"a\": tru\n}", &cfg, err, sizeof(err)),
	    PB_ERR_CONFIG);
	assert_null(cfg);
	assert_true(has_line(err, "$: invalid JSON at line 2, column *"));
	assert_int_equal(count_lines(err), 1);
}

static void test_missing_file_is_io(void **state)
{
	(void)state;
	pb_config_t *cfg = NULL;
	char err[1024];
	assert_int_equal(
	    pb_config_load("/nonexistent/pb.json", &cfg, err, sizeof(err)),
	    PB_ERR_IO);
	assert_null(cfg);
	assert_non_null(strstr(err, "/nonexistent/pb.json"));
	assert_int_equal(pb_config_load_string(NULL, &cfg, err, sizeof(err)),
			 PB_ERR_INVALID);
}

/* A report larger than errstr keeps whole lines and says what is left. */
static void test_report_truncation(void **state)
{
	(void)state;
	char text[4096];
	size_t o = (size_t)snprintf(text, sizeof(text), "{\"pruvan\": {");
	for (int i = 0; i < 40; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o,
				      "%s\"bogus%02d\": 1", i ? ", " : "", i);
	snprintf(text + o, sizeof(text) - o, "}, %s",
		 &MINIMAL[1]); /* reuse the accounts part */
	pb_config_t *cfg = NULL;
	char err[300];
	assert_int_equal(pb_config_load_string(text, &cfg, err, sizeof(err)),
			 PB_ERR_CONFIG);
	assert_true(strlen(err) < sizeof(err));
	const char *last = strrchr(err, '\n');
	assert_non_null(last);
	assert_true(strncmp(last + 1, "... and ", 8) == 0);
	/* every kept line is whole */
	assert_non_null(strstr(err, "$.pruvan.bogus00: unknown key (expected"
				    " one of: timeoutMs"));
	/* lines kept + the number left out = 40 */
	size_t kept = count_lines(err) - 1;
	size_t more = strtoul(last + 9, NULL, 10);
	assert_int_equal(kept + more, 40);

	/* a NULL or empty errstr is fine */
	assert_int_equal(pb_config_load_string(text, &cfg, NULL, 0),
			 PB_ERR_CONFIG);
	char tiny[1] = {'x'};
	assert_int_equal(pb_config_load_string(text, &cfg, tiny, 1),
			 PB_ERR_CONFIG);
	assert_int_equal(tiny[0], '\0');
}

/*
 * The production example in config/ must be valid given its secrets: the
 * env: ones are set here; its mounted PushKey file (the path the Kubernetes
 * manifests in deploy/ mount) is absent on a build machine, so it is first
 * reported by name, then pointed at a temp file and the whole file loads.
 */
static void test_example_config(void **state)
{
	(void)state;
	char dir[] = "/tmp/pb-config-example-XXXXXX";
	assert_non_null(mkdtemp(dir));
	setenv("ACME_PUSHKEY_URL", PUSHKEY, 1);
	setenv("KAFKA_SASL_PASSWORD", "hunter2", 1);
	setenv("ACME_RELAY_PASSWORD", "relaysecret", 1);
	setenv("ACME_RELAY_TOKEN", "relaytoken", 1);
	char path[1200];
	snprintf(path, sizeof(path),
		 "%s/../../../config/examples/sasl-scram.json", fixtures);
	pb_config_t *cfg = NULL;
	char err[4096];
	pb_err_t rc = pb_config_load(path, &cfg, err, sizeof(err));
	assert_no_secret(err);
	if (rc == PB_ERR_CONFIG) {
		assert_true(has_line(err,
				     "$.accounts.globex.pushKeyUrl: cannot "
				     "read secret file /var/run/secrets/"
				     "pruvan-bridge/globex: *"));
		assert_int_equal(count_lines(err), 1);
	} else {
		assert_int_equal(rc, PB_OK);
		pb_config_destroy(cfg);
	}
	char *text = read_text(path);
	assert_non_null(text);
	char pk[256];
	snprintf(pk, sizeof(pk), "%s/globex", dir);
	write_file(pk, "https://direct.pruvan.com/api/?apiKey=SECRETKEY999\n");
	json_t *root = json_loads(text, 0, NULL);
	assert_non_null(root);
	char ref[300];
	snprintf(ref, sizeof(ref), "file:%s", pk);
	json_object_set_new(
	    json_object_get(json_object_get(root, "accounts"), "globex"),
	    "pushKeyUrl", json_string(ref));
	char *patched = json_dumps(root, JSON_PRESERVE_ORDER);
	json_decref(root);
	cfg = load_ok(patched);
	assert_int_equal(cfg->accounts_len, 2);
	assert_string_equal(pb_config_kafka_get(cfg, "sasl.password"),
			    "hunter2");
	assert_string_equal(pb_config_kafka_get(cfg, "session.timeout.ms"),
			    "45000");
	assert_string_equal(pb_config_kafka_get(cfg, "enable.idempotence"),
			    "true");
	assert_string_equal(
	    pb_config_account(cfg, "acme-internal")->relay_password,
	    "relaysecret");
	assert_string_equal(
	    pb_config_account(cfg, "acme-internal")->relay_token, "relaytoken");
	assert_int_equal(pb_config_account(cfg, "globex")->body_encoding,
			 PB_BODY_FORM);
	char *d = pb_config_describe(cfg);
	assert_non_null(d);
	assert_no_secret(d);
	free(d);
	pb_config_destroy(cfg);
	free(patched);
	free(text);
	unlink(pk);
	rmdir(dir);
	unsetenv("ACME_PUSHKEY_URL");
	unsetenv("KAFKA_SASL_PASSWORD");
	unsetenv("PRUVAN_BRIDGE_RELAY_SECRET");
}

/* ------------------------------------------------------------------ */

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the files in dir ending in suffix (suffix cut when cut). */
static size_t list_fixtures(const char *dir, const char *suffix, bool cut,
			    char ***out)
{
	DIR *d = opendir(dir);
	size_t n = 0, cap = 0;
	char **names = NULL;
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name), sl = strlen(suffix);
		if (l <= sl || strcmp(e->d_name + l - sl, suffix) != 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof(*names));
			if (!nn)
				break;
			names = nn;
		}
		names[n] = strdup(e->d_name);
		if (cut)
			names[n][l - sl] = '\0';
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), by_name);
	*out = names;
	return n;
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_every_value_read),
	    cmocka_unit_test(test_kafka_passthrough_order),
	    cmocka_unit_test(test_env_overrides),
	    cmocka_unit_test(test_http_listen_empty_is_off),
	    cmocka_unit_test(test_env_overrides_invalid),
	    cmocka_unit_test(test_file_and_env_secrets),
	    cmocka_unit_test(test_secret_never_in_errstr),
	    cmocka_unit_test(test_describe),
	    cmocka_unit_test(test_invalid_json_position),
	    cmocka_unit_test(test_missing_file_is_io),
	    cmocka_unit_test(test_report_truncation),
	    cmocka_unit_test(test_example_config),
	};
	group_setup(NULL);
	char dir[1200];
	char **bad = NULL, **good = NULL;
	snprintf(dir, sizeof(dir), "%s/invalid", fixtures);
	size_t nbad = list_fixtures(dir, ".json", true, &bad);
	snprintf(dir, sizeof(dir), "%s/valid", fixtures);
	size_t ngood = list_fixtures(dir, ".json", false, &good);
	if (nbad == 0 || ngood == 0) {
		fprintf(stderr, "no fixtures under %s (PB_FIXTURES?)\n",
			fixtures);
		return 1;
	}
	size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
	size_t n = nfixed + nbad + ngood;
	struct CMUnitTest *tests = calloc(n, sizeof(*tests));
	char **names = calloc(nbad + ngood, sizeof(*names));
	if (!tests || !names)
		return 1;
	memcpy(tests, fixed, sizeof(fixed));
	for (size_t i = 0; i < nbad + ngood; i++) {
		bool isbad = i < nbad;
		const char *fname = isbad ? bad[i] : good[i - nbad];
		size_t len = strlen(fname) + 16;
		names[i] = malloc(len);
		snprintf(names[i], len, "%s/%s", isbad ? "invalid" : "valid",
			 fname);
		struct CMUnitTest *t = &tests[nfixed + i];
		t->name = names[i];
		t->test_func =
		    isbad ? test_invalid_fixture : test_valid_fixture;
		t->initial_state = (void *)fname;
	}
	int rc = _cmocka_run_group_tests("config", tests, n, group_setup, NULL);
	for (size_t i = 0; i < nbad + ngood; i++)
		free(names[i]);
	for (size_t i = 0; i < nbad; i++)
		free(bad[i]);
	for (size_t i = 0; i < ngood; i++)
		free(good[i]);
	free(bad);
	free(good);
	free(names);
	free(tests);
	return rc;
}
