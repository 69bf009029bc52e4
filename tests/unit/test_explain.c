/* explain: the pipeline's rules for given events, described; nothing
 * sent. Runs pb_explain_run on in-memory streams (no Redis). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "explain.h"

static const char *cfg_text =
    "{\"accounts\": {"
    "\"acme\": {\"pushKeyUrl\": \"env:PB_TEST_EXPLAIN_URL\", \"mode\": "
    "\"internal\","
    "  \"users\": [\"jsmith\"]},"
    "\"ext\": {\"pushKeyUrl\": \"env:PB_TEST_EXPLAIN_URL\", \"mode\": "
    "\"external\","
    "  \"autoAdmin\": false}}}";

#define CREATE(id, acct, won)                                                  \
	"{\"eventId\":\"" id "\",\"account\":\"" acct                          \
	"\",\"action\":\"create\","                                            \
	"\"occurredAt\":\"2026-11-28T16:00:00Z\",\"version\":1,\"order\":{"    \
	"\"workOrderNumber\":\"" won "\",\"address1\":\"1 Main\","             \
	"\"city\":\"Round Rock\",\"state\":\"TX\",\"zip\":\"78664\","          \
	"\"workOrderInfo\":\"v1\",\"services\":[{\"serviceName\":\"Mow\"}]}}"  \
	"\n"
#define UPDATE(id, acct, won, ver, info)                                       \
	"{\"eventId\":\"" id "\",\"account\":\"" acct                          \
	"\",\"action\":\"update\","                                            \
	"\"occurredAt\":\"2026-11-28T17:00:00Z\",\"version\":" ver ","         \
	"\"order\":{\"workOrderNumber\":\"" won "\",\"workOrderInfo\":\"" info \
	"\",\"clientInstructions\":\"Call first\"}}\n"

static pb_config_t *cfg;

static int setup(void **state)
{
	(void)state;
	setenv("PB_TEST_EXPLAIN_URL", "https://pruvan.invalid/api/?apiKey=K",
	       1);
	char err[1024];
	if (pb_config_load_string(cfg_text, &cfg, err, sizeof(err)) != PB_OK) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pb_config_destroy(cfg);
	return 0;
}

/* Explain input (as a file) to the table; the text, malloc'd. */
static char *explain_table(const char *input)
{
	char path[] = "/tmp/pb-explain-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, input, strlen(input)),
			 (ssize_t)strlen(input));
	close(fd);
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	pb_explain_opts_t o = {.json = false};
	char err[256];
	assert_int_equal(pb_explain_run(cfg, &o, path, out, err, sizeof(err)),
			 0);
	fclose(out);
	unlink(path);
	return buf;
}

/* A simpler reader: one JSON value per line. */
static json_t *lines(const char *input)
{
	char path[] = "/tmp/pb-explain-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, input, strlen(input)),
			 (ssize_t)strlen(input));
	close(fd);
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	pb_explain_opts_t o = {.json = true};
	char err[256];
	assert_int_equal(pb_explain_run(cfg, &o, path, out, err, sizeof(err)),
			 0);
	fclose(out);
	unlink(path);
	json_t *all = json_array();
	const char *p = buf;
	while (*p) {
		json_error_t je;
		json_t *v = json_loadb(p, strcspn(p, "\n"), 0, &je);
		assert_non_null(v);
		json_array_append_new(all, v);
		p += strcspn(p, "\n");
		if (*p)
			p++;
	}
	free(buf);
	return all;
}

static const char *s(const json_t *x, const char *k)
{
	return json_string_value(json_object_get(x, k));
}

static void create_then_update_chain(void **state)
{
	(void)state;
	json_t *all = lines(
	    CREATE("e1", "acme", "WO-1") UPDATE("e2", "acme", "WO-1", "2", "v2")
		UPDATE("e3", "acme", "WO-1", "3", "v2")
		    UPDATE("e2", "acme", "WO-1", "2", "v2"));
	assert_int_equal(json_array_size(all), 4);
	json_t *x = json_array_get(all, 0);
	assert_string_equal(s(x, "outcome"), "created");
	assert_string_equal(s(x, "pushAction"), "create");
	assert_string_equal(s(json_object_get(x, "request"), "workOrderInfo"),
			    "v1");
	x = json_array_get(all, 1);
	assert_string_equal(s(x, "outcome"), "updated");
	assert_string_equal(s(x, "state"), "from earlier events of this input");
	/* only what changed */
	json_t *wo = json_object_get(x, "request");
	assert_string_equal(s(wo, "workOrderInfo"), "v2");
	assert_string_equal(s(wo, "clientInstructions"), "Call first");
	assert_null(json_object_get(wo, "address1"));
	x = json_array_get(all, 2);
	assert_string_equal(s(x, "outcome"), "unchanged");
	assert_true(json_is_null(json_object_get(x, "request")));
	x = json_array_get(all, 3);
	assert_string_equal(s(x, "outcome"), "duplicate");
	json_decref(all);
}

static void withheld_rejected_and_unreadable(void **state)
{
	(void)state;
	json_t *all = lines(
	    CREATE("x1", "ext", "WO-2") UPDATE("x2", "ext", "WO-2", "2",
					       "new info")
		CREATE("n1", "nobody", "WO-3") "{not json\n"
					       "\n" UPDATE("x3", "ext", "WO-2",
							   "1", "older"));
	assert_int_equal(json_array_size(all), 5);
	json_t *x = json_array_get(all, 1);
	/* Auto-Admin off: the shared field is withheld, the remote-owned
	 * one is sent */
	assert_string_equal(s(x, "outcome"), "updated");
	json_t *wh = json_object_get(x, "withheld");
	assert_int_equal(json_array_size(wh), 1);
	assert_string_equal(json_string_value(json_array_get(wh, 0)),
			    "workOrderInfo");
	assert_string_equal(
	    s(json_object_get(x, "request"), "clientInstructions"),
	    "Call first");
	assert_false(json_is_true(json_object_get(x, "autoAdmin")));
	x = json_array_get(all, 2);
	assert_string_equal(s(x, "outcome"), "rejected");
	assert_string_equal(s(x, "reason"), "unknown_account");
	x = json_array_get(all, 3);
	assert_string_equal(s(x, "reason"), "invalid_json");
	assert_int_equal(json_integer_value(json_object_get(x, "line")), 4);
	x = json_array_get(all, 4);
	assert_string_equal(s(x, "outcome"), "stale");
	assert_int_equal(json_integer_value(json_object_get(x, "line")), 6);
	json_decref(all);
}

/* A line larger than the worker reads is too_large, as the worker would
 * reject it, and the next line is explained as ever. */
static void oversized_line_is_too_large(void **state)
{
	(void)state;
	size_t big = 1024 * 1024 + 10;
	char *input = malloc(big + 2048);
	assert_non_null(input);
	memset(input, ' ', big);
	input[0] = '{';
	input[big - 1] = '}';
	input[big] = '\n';
	snprintf(input + big + 1, 2047, "%s", CREATE("b1", "ext", "WO-B"));
	json_t *all = lines(input);
	free(input);
	assert_int_equal(json_array_size(all), 2);
	json_t *x = json_array_get(all, 0);
	assert_string_equal(s(x, "outcome"), "rejected");
	assert_string_equal(s(x, "reason"), "too_large");
	assert_string_equal(s(json_array_get(all, 1), "outcome"), "created");
	json_decref(all);
}

static void table_is_readable(void **state)
{
	(void)state;
	char *t = explain_table(CREATE("x1", "ext", "WO-2") UPDATE(
	    "x2", "ext", "WO-2", "2", "new info") "[]\n");
	assert_non_null(
	    strstr(t, "line 1  event x1  ext/WO-2  create -> created\n"));
	assert_non_null(strstr(t, "    would push (create):\n"));
	assert_non_null(strstr(t, "      workOrderInfo = v1\n"));
	assert_non_null(
	    strstr(t, "    withheld (Auto-Admin is off): workOrderInfo\n"));
	assert_non_null(strstr(t, "-> rejected (invalid_json)"));
	assert_non_null(strstr(t, "2 to push, 0 not pushed, 1 rejected; "
				  "nothing was sent or stored."));
	free(t);
}

static void missing_input_fails(void **state)
{
	(void)state;
	pb_explain_opts_t o = {0};
	char err[256];
	assert_int_equal(pb_explain_run(cfg, &o, "/nonexistent/ev.jsonl",
					stdout, err, sizeof(err)),
			 1);
	assert_non_null(strstr(err, "cannot open /nonexistent/ev.jsonl"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(create_then_update_chain),
	    cmocka_unit_test(withheld_rejected_and_unreadable),
	    cmocka_unit_test(oversized_line_is_too_large),
	    cmocka_unit_test(table_is_readable),
	    cmocka_unit_test(missing_input_fails),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
