/*
 * The command line against live services:
 *   - `explain --with-state` reads an order's stored state and its
 *     events' marks from Redis: an update of an order the worker created
 *     explains as an update of changed fields only, the event already
 *     processed as a duplicate; nothing is pushed, written or produced
 *     (the simulator's requests, the results topic and Redis's keys stay
 *     as they were);
 *   - check-config exits 3 naming a librdkafka property's mistake, and 0
 *     with --no-env on a file whose secrets are absent;
 *   - usage errors exit 2;
 *   - auto-admin, watch and replay run without the PushKeys and relay
 *     credentials (they use neither), not without Redis's password.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "harness.h"

static char cfg[512];

static int setup(void **state)
{
	(void)state;
	if (h_start_all("cli-live", 1))
		return -1;
	return h_write_config("config.json", NULL, cfg, sizeof(cfg));
}

static long long redis_keys(void)
{
	redisContext *c = redisConnect("127.0.0.1", h_redis_port());
	assert_non_null(c);
	assert_int_equal(c->err, 0);
	redisReply *r = redisCommand(c, "DBSIZE");
	assert_non_null(r);
	long long n = r->integer;
	freeReplyObject(r);
	redisFree(c);
	return n;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void explain_with_state(void **state)
{
	(void)state;
	h_begin("explain_with_state");
	h_worker_t *w = h_worker_run("worker-cli", cfg, false);
	assert_non_null(w);
	json_t *create = h_event_create("cl-1", "acme", "WO-CL", 1);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, create, true), 0);
	assert_true(h_await_count(H_TOPIC_RESULTS, 1, 60000) >= 1);
	assert_int_equal(h_worker_signal(w, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w, 30000), 0);

	json_t *f = json_pack("{s:s}", "workOrderInfo", "changed");
	json_t *update = h_event("cl-2", "acme", "update", "WO-CL", 2, f);
	json_decref(f);
	char *l1 = json_dumps(create, JSON_COMPACT);
	char *l2 = json_dumps(update, JSON_COMPACT);
	char input[600], text[8192];
	h_path(input, sizeof(input), "events.jsonl");
	snprintf(text, sizeof(text), "%s\n%s\n", l2, l1);
	write_text(input, text);
	free(l1);
	free(l2);
	json_decref(create);
	json_decref(update);

	long long keys = redis_keys();
	json_t *pushes = h_sim_requests("acme");
	size_t npush = json_array_size(pushes);
	json_decref(pushes);
	long results = h_topic_count(H_TOPIC_RESULTS);

	const char *args[] = {"explain",      "-c",  cfg, "--json",
			      "--with-state", input, NULL};
	char *out = NULL;
	assert_int_equal(h_bridge_cmd(args, 30000, &out), 0);
	assert_non_null(out);
	char *nl = strchr(out, '\n');
	assert_non_null(nl);
	json_error_t je;
	json_t *x2 = json_loadb(out, (size_t)(nl - out), 0, &je);
	json_t *x1 = json_loads(nl + 1, JSON_DISABLE_EOF_CHECK, &je);
	assert_non_null(x2);
	assert_non_null(x1);
	assert_string_equal(h_str(x2, "outcome"), "updated");
	assert_string_equal(h_str(x2, "state"), "stored in Redis");
	json_t *wo = json_object_get(x2, "request");
	assert_string_equal(h_str(wo, "workOrderInfo"), "changed");
	assert_null(json_object_get(wo, "address1")); /* unchanged: not sent */
	assert_null(json_object_get(x2, "unknownOrder"));
	assert_string_equal(h_str(x1, "outcome"), "duplicate");
	json_decref(x1);
	json_decref(x2);
	free(out);

	/* nothing pushed, written or produced */
	assert_int_equal(redis_keys(), keys);
	pushes = h_sim_requests("acme");
	assert_int_equal(json_array_size(pushes), npush);
	json_decref(pushes);
	assert_int_equal(h_topic_count(H_TOPIC_RESULTS), results);

	/* without --with-state the same update is of an unknown order */
	const char *plain[] = {"explain", "-c", cfg, "--json", input, NULL};
	assert_int_equal(h_bridge_cmd(plain, 30000, &out), 0);
	assert_non_null(strstr(out, "\"unknownOrder\":true"));
	free(out);
	h_end();
}

static void check_config_exit_codes(void **state)
{
	(void)state;
	h_begin("check_config_exit_codes");
	char bad[600], noenv[600];
	h_path(bad, sizeof(bad), "bad-kafka.json");
	setenv("PB_IT_CLI_URL", "https://pruvan.invalid/api/?apiKey=K", 1);
	write_text(
	    bad,
	    "{\"kafka\": {\"bootstrap.server\": \"b:9092\"},"
	    " \"accounts\": {\"a\": {\"pushKeyUrl\": \"env:PB_IT_CLI_URL\"}}}");
	char *out = NULL;
	const char *a1[] = {"check-config", "-c", bad, NULL};
	h_worker_t *w = h_worker_start("check-bad", a1);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, 30000), 3);
	char *log = h_read_file(h_worker_log(w), NULL);
	assert_non_null(log);
	assert_non_null(strstr(log, "$.kafka.bootstrap.server: No such "
				    "configuration property"));
	free(log);
	const char *a2[] = {"run", "-c", bad, NULL};
	assert_int_equal(h_bridge_cmd(a2, 30000, NULL), 3);
	h_path(noenv, sizeof(noenv), "no-env.json");
	write_text(
	    noenv,
	    "{\"kafka\": {\"sasl.password\": \"env:PB_IT_ABSENT\"},"
	    " \"accounts\": {\"a\": {\"pushKeyUrl\": \"env:PB_IT_ABSENT\"}}}");
	const char *a3[] = {"check-config", "-c", noenv, NULL};
	assert_int_equal(h_bridge_cmd(a3, 30000, NULL), 3);
	const char *a4[] = {"check-config", "--no-env", "-c", noenv, NULL};
	assert_int_equal(h_bridge_cmd(a4, 30000, &out), 0);
	assert_non_null(strstr(out, "valid"));
	free(out);
	/* one run names every mistake: a missing secret and a property
	 * librdkafka refuses */
	char both[600];
	h_path(both, sizeof(both), "both.json");
	write_text(
	    both,
	    "{\"kafka\": {\"bootstrap.server\": \"b:9092\"},"
	    " \"accounts\": {\"a\": {\"pushKeyUrl\": \"env:PB_IT_ABSENT\"}}}");
	const char *a5[] = {"check-config", "-c", both, NULL};
	w = h_worker_start("check-both", a5);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, 30000), 3);
	log = h_read_file(h_worker_log(w), NULL);
	assert_non_null(log);
	assert_non_null(strstr(log, "$.accounts.a.pushKeyUrl: environment "
				    "variable PB_IT_ABSENT is not set"));
	assert_non_null(strstr(log, "$.kafka.bootstrap.server: No such "
				    "configuration property"));
	free(log);
	/* and when the file has mistakes of its own (not only a missing
	 * secret), with and without --no-env */
	char mixed[600];
	h_path(mixed, sizeof(mixed), "mixed.json");
	write_text(mixed, "{\"kafka\": {\"bootstrap.server\": \"b:9092\"},"
			  " \"pruvan\": {\"maxAttempts\": 0},"
			  " \"accounts\": {\"a\": {\"pushKeyUrl\": "
			  "\"env:PB_IT_CLI_URL\", \"mode\": \"intern\"}}}");
	for (int no_env = 0; no_env < 2; no_env++) {
		const char *a6[] = {"check-config", "-c", mixed,
				    no_env ? "--no-env" : NULL, NULL};
		w = h_worker_start(
		    no_env ? "check-mixed-no-env" : "check-mixed", a6);
		assert_non_null(w);
		assert_int_equal(h_worker_wait(w, 30000), 3);
		log = h_read_file(h_worker_log(w), NULL);
		assert_non_null(log);
		assert_non_null(strstr(log, "$.pruvan.maxAttempts: "));
		assert_non_null(strstr(log, "$.accounts.a.mode: "));
		assert_non_null(strstr(log, "$.kafka.bootstrap.server: No such "
					    "configuration property"));
		free(log);
	}
	const char *u1[] = {"replay", "--once", NULL};
	const char *u2[] = {"nonsense", NULL};
	const char *u3[] = {"explain", "a", "b", NULL};
	assert_int_equal(h_bridge_cmd(u1, 30000, NULL), 2);
	assert_int_equal(h_bridge_cmd(u2, 30000, NULL), 2);
	assert_int_equal(h_bridge_cmd(u3, 30000, NULL), 2);
	const char *v[] = {"--version", NULL};
	assert_int_equal(h_bridge_cmd(v, 30000, &out), 0);
	assert_non_null(strstr(out, "pruvan-bridge "));
	free(out);
	h_end();
}

/* Contract 9: check-config names each mistake; a file the configuration
 * names and the worker cannot read is one. */
static void check_config_names_missing_files(void **state)
{
	(void)state;
	h_begin("check_config_names_missing_files");
	char *save = NULL;
	setenv("PB_IT_CLI_URL", "https://pruvan.invalid/api/?apiKey=K", 1);
	/* the files the configuration names must be there: check-config
	 * names each one that is not (not with --no-env, as in CI), and run
	 * refuses a missing pruvan.caFile, read only at each push */
	char nofile[600];
	h_path(nofile, sizeof(nofile), "no-file.json");
	write_text(nofile,
		   "{\"pruvan\": {\"caFile\": \"/nonexistent/egress-ca.pem\"},"
		   " \"redis\": {\"url\": \"rediss://127.0.0.1:1/0\", \"tls\":"
		   " {\"caFile\": \"/nonexistent/redis-ca.pem\"}},"
		   " \"accounts\": {\"a\": {\"pushKeyUrl\": "
		   "\"env:PB_IT_CLI_URL\"}}}");
	const char *a7[] = {"check-config", "-c", nofile, NULL};
	h_worker_t *w = h_worker_start("check-no-file", a7);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, 30000), 3);
	char *log = h_read_file(h_worker_log(w), NULL);
	assert_non_null(log);
	assert_non_null(strstr(log, "$.pruvan.caFile: cannot read "
				    "/nonexistent/egress-ca.pem"));
	assert_non_null(strstr(log, "$.redis.tls.caFile: cannot read "
				    "/nonexistent/redis-ca.pem"));
	free(log);
	const char *a8[] = {"check-config", "--no-env", "-c", nofile, NULL};
	assert_int_equal(h_bridge_cmd(a8, 30000, NULL), 0);
	/* run says it as all it says on stderr: JSON lines (contract 8) */
	const char *a9[] = {"run", "-c", nofile, NULL};
	w = h_worker_start("run-no-file", a9);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, 30000), 3);
	log = h_read_file(h_worker_log(w), NULL);
	assert_non_null(log);
	int lines = 0, named = 0;
	for (char *l = strtok_r(log, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		json_t *j = json_loads(l, 0, NULL);
		if (!j)
			fail_msg("run wrote a line that is not JSON: %s", l);
		const char *m =
		    json_string_value(json_object_get(j, "mistake"));
		named += m && strstr(m, "$.pruvan.caFile: cannot read") != NULL;
		lines++;
		json_decref(j);
	}
	assert_true(lines > 0);
	assert_int_equal(named, 1);
	free(log);
	h_end();
}

/* The operator commands run where the PushKey and relay secrets are not
 * mounted (a one-off pod from the ConfigMap): they use neither, while the
 * secrets they use (Redis's password here) are still required; run still
 * refuses the file. */
static void operator_commands_need_no_push_keys(void **state)
{
	(void)state;
	h_begin("operator_commands_need_no_push_keys");
	json_t *c = json_load_file(cfg, 0, NULL);
	assert_non_null(c);
	json_t *acme = json_object_get(json_object_get(c, "accounts"), "acme");
	assert_non_null(acme);
	json_object_set_new(acme, "pushKeyUrl",
			    json_string("env:PB_IT_NO_PUSHKEY"));
	json_object_set_new(
	    acme, "relay",
	    json_pack("{s:s, s:s}", "username", "acme", "password",
		      "file:/nonexistent/pb-it-relay-password"));
	char media[600], nokeys[600];
	json_object_set_new(c, "relay",
			    json_pack("{s:s, s:s}", "listen", "127.0.0.1:0",
				      "mediaDir",
				      h_path(media, sizeof(media), "media")));
	h_path(nokeys, sizeof(nokeys), "no-push-keys.json");
	assert_int_equal(json_dump_file(c, nokeys, JSON_INDENT(1)), 0);
	unsetenv("PB_IT_NO_PUSHKEY");
	const char *aa[] = {"auto-admin", "-c", nokeys, "acme", "on", NULL};
	assert_int_equal(h_bridge_cmd(aa, 30000, NULL), 0);
	const char *wa[] = {"watch", "-c", nokeys, "--once", NULL};
	assert_int_equal(h_bridge_cmd(wa, 30000, NULL), 0);
	const char *rp[] = {"replay", "-c", nokeys, "--dry-run", NULL};
	assert_int_equal(h_bridge_cmd(rp, 30000, NULL), 0);
	const char *run[] = {"run", "-c", nokeys, NULL};
	assert_int_equal(h_bridge_cmd(run, 30000, NULL), 3);
	/* a secret the command uses is resolved as ever */
	json_object_set_new(json_object_get(c, "redis"), "password",
			    json_string("env:PB_IT_NO_REDIS_PASSWORD"));
	assert_int_equal(json_dump_file(c, nokeys, JSON_INDENT(1)), 0);
	unsetenv("PB_IT_NO_REDIS_PASSWORD");
	h_worker_t *w = h_worker_start("auto-admin-no-redis-pw", aa);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, 30000), 3);
	char *log = h_read_file(h_worker_log(w), NULL);
	assert_non_null(log);
	assert_non_null(strstr(log, "PB_IT_NO_REDIS_PASSWORD is not set"));
	assert_null(strstr(log, "PB_IT_NO_PUSHKEY"));
	free(log);
	json_decref(c);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(explain_with_state),
	    cmocka_unit_test(check_config_exit_codes),
	    cmocka_unit_test(check_config_names_missing_files),
	    cmocka_unit_test(operator_commands_need_no_push_keys),
	};
	return cmocka_run_group_tests(tests, setup, h_group_teardown);
}
