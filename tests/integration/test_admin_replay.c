/*
 * Operator commands against a live system:
 *   - `pruvan-bridge auto-admin ACCOUNT on|off -c CFG` switches Auto-Admin
 *     at run time; the running worker picks it up without a restart:
 *     while OFF an update withholds shared fields (listed in the
 *     outcome's withheld, absent from the push) and still sends
 *     remote-owned and address ones (Pruvan keeps the address out of
 *     Auto-Admin); back ON shared ones are sent again. Bad arguments exit 2.
 *   - `pruvan-bridge replay` copies DLQ records back to the orders topic:
 *     --dry-run changes nothing, --reason/--partition/--from/--to select
 *     (a --partition the DLQ does not have exits 2),
 *     a replayed event that failed before is pushed and created.
 * Every outcome record is validated against the outcome schema.
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

#include "harness.h"

#define WAIT_MS 90000

static char cfg_default[512];

static int setup(void **state)
{
	(void)state;
	if (h_start_all("admin-replay", 2))
		return -1;
	return h_write_config("config.json", NULL, cfg_default,
			      sizeof(cfg_default));
}

static bool has_string(const json_t *arr, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i,
			   v) if (!strcmp(json_string_value(v), s)) return true;
	return false;
}

/* Produce ev (stolen), await its outcome (the count grows by one) and
 * return the last outcome of id (new ref). */
static json_t *round_trip(json_t *ev, const char *id)
{
	long before = h_topic_count(H_TOPIC_RESULTS);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
	json_decref(ev);
	assert_true(h_await_count(H_TOPIC_RESULTS, before + 1, 30000) >=
		    before + 1);
	json_t *recs = h_consume(H_TOPIC_RESULTS, before + 1, 15000);
	assert_int_equal(h_check_schema(recs, "outcome.schema.json"), 0);
	json_t *by = h_by_event(recs);
	json_t *list = json_object_get(by, id);
	assert_true(json_array_size(list) >= 1);
	json_t *o =
	    json_incref(json_array_get(list, json_array_size(list) - 1));
	json_decref(by);
	json_decref(recs);
	return o;
}

static int bridge(const char *const *args, char **out)
{
	return h_bridge_cmd(args, 30000, out);
}

/* Run args; its exit code, and that each line it wrote on stderr is a
 * JSON log object (contract 8: logs are JSON lines on stderr). */
static int bridge_json_logs(const char *label, const char *const *args)
{
	h_worker_t *w = h_worker_start(label, args);
	assert_non_null(w);
	int rc = h_worker_wait(w, 30000);
	char *log = h_read_file(h_worker_log(w), NULL);
	assert_non_null(log);
	int lines = 0;
	for (char *line = log, *next; *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		else
			next = line + strlen(line);
		json_t *o = json_loads(line, 0, NULL);
		if (!json_is_object(o) || !json_object_get(o, "msg"))
			fail_msg("%s: a stderr line is not a JSON log: %s",
				 label, line);
		json_decref(o);
		lines++;
	}
	assert_true(lines > 0);
	free(log);
	return rc;
}

static void auto_admin_at_run_time(void **state)
{
	(void)state;
	h_begin("auto_admin_at_run_time");
	const char *cfg = cfg_default;
	h_worker_t *w = h_worker_run("worker-aa", cfg, false);
	assert_non_null(w);

	json_t *ev = h_event_create("aa-1", "acme", "WO-AA", 1);
	json_object_set_new(json_object_get(ev, "order"), "workOrderInfo",
			    json_string("v1"));
	json_t *o = round_trip(ev, "aa-1");
	assert_string_equal(h_str(o, "outcome"), "created");
	json_decref(o);

	const char *off[] = {"auto-admin", "-c", cfg, "acme", "off", NULL};
	char *out = NULL;
	assert_int_equal(bridge(off, &out), 0);
	assert_non_null(out);
	assert_non_null(strstr(out, "off"));
	free(out);
	assert_true(h_worker_log_has(w, "Auto-Admin switched off", 15000));

	json_t *f = json_pack("{s:s,s:s,s:s}", "workOrderInfo", "v2",
			      "address1", "222 West Main", "clientStatus",
			      "Remote Order Status is Waiting");
	o = round_trip(h_event("aa-2", "acme", "update", "WO-AA", 2, f),
		       "aa-2");
	json_decref(f);
	assert_string_equal(h_str(o, "outcome"), "updated");
	json_t *wh = json_object_get(o, "withheld");
	assert_true(has_string(wh, "workOrderInfo"));
	assert_false(has_string(wh, "address1"));
	json_t *req = json_object_get(o, "request");
	assert_null(json_object_get(req, "workOrderInfo"));
	assert_string_equal(h_str(req, "address1"), "222 West Main");
	assert_string_equal(h_str(req, "clientStatus"),
			    "Remote Order Status is Waiting");
	json_decref(o);
	json_t *orders = h_sim_orders("acme");
	json_t *so = json_object_get(orders, "WO-AA");
	assert_string_equal(h_str(so, "workOrderInfo"), "v1");
	assert_string_equal(h_str(so, "address1"), "222 West Main");
	json_decref(orders);

	const char *on[] = {"auto-admin", "-c", cfg, "acme", "on", NULL};
	assert_int_equal(bridge(on, NULL), 0);
	assert_true(h_worker_log_has(w, "Auto-Admin switched on", 15000));
	f = json_pack("{s:s}", "workOrderInfo", "v3");
	o = round_trip(h_event("aa-3", "acme", "update", "WO-AA", 3, f),
		       "aa-3");
	json_decref(f);
	assert_string_equal(h_str(o, "outcome"), "updated");
	assert_int_equal(json_array_size(json_object_get(o, "withheld")), 0);
	assert_string_equal(
	    h_str(json_object_get(o, "request"), "workOrderInfo"), "v3");
	json_decref(o);
	orders = h_sim_orders("acme");
	assert_string_equal(
	    h_str(json_object_get(orders, "WO-AA"), "workOrderInfo"), "v3");
	json_decref(orders);

	const char *bad_value[] = {"auto-admin", "-c",	  cfg,
				   "acme",	 "maybe", NULL};
	const char *bad_acct[] = {"auto-admin", "-c", cfg,
				  "nobody",	"on", NULL};
	assert_int_equal(bridge(bad_value, NULL), 2);
	assert_int_equal(bridge_json_logs("aa-bad-acct", bad_acct), 2);

	assert_int_equal(h_worker_signal(w, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w, 30000), 0);
	assert_int_equal(h_worker_log_count(w, "apiKey"), 0);
	h_end();
}

static int count_lines(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; p && (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void replay_from_dlq(void **state)
{
	(void)state;
	h_begin("replay_from_dlq");
	/* one order per request: each 400 hits its own order only */
	char cfg[512];
	json_t *ov = json_pack("{s:{s:i}}", "pruvan", "batchMaxOrders", 1);
	assert_int_equal(h_write_config("replay.json", ov, cfg, sizeof(cfg)),
			 0);
	json_decref(ov);
	long before = h_topic_count(H_TOPIC_RESULTS);
	assert_int_equal(h_sim_faults("{\"fail\":{\"count\":1,\"status\":400,"
				      "\"workOrder\":\"WO-RP1\"}}"),
			 0);
	assert_int_equal(h_sim_faults("{\"fail\":{\"count\":1,\"status\":400,"
				      "\"workOrder\":\"WO-RP2\"}}"),
			 0);
	json_t *ev = h_event_create("rp-1", "acme", "WO-RP1", 1);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, false), 0);
	json_decref(ev);
	ev = h_event_create("rp-2", "acme", "WO-RP2", 1);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, false), 0);
	json_decref(ev);
	assert_int_equal(
	    h_produce_nowait(H_TOPIC_ORDERS, "acme/WO-RP3", "not json at all"),
	    0);
	assert_int_equal(h_flush(10000), 0);

	h_worker_t *w = h_worker_run("worker-rp1", cfg, true);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, WAIT_MS), 0);
	json_t *dlq = h_consume(H_TOPIC_DLQ, 3, 15000);
	assert_int_equal(json_array_size(dlq), 3);
	json_t *rp1 = NULL;
	size_t i;
	json_t *r;
	json_array_foreach(dlq, i, r)
	{
		const char *id = h_str(json_object_get(r, "value"), "eventId");
		if (id && !strcmp(id, "rp-1"))
			rp1 = r;
	}
	assert_non_null(rp1);
	assert_string_equal(
	    h_str(json_object_get(rp1, "headers"), "x-error-reason"),
	    "http_4xx");
	char part[16], off[32];
	snprintf(
	    part, sizeof(part), "%lld",
	    (long long)json_integer_value(json_object_get(rp1, "partition")));
	snprintf(off, sizeof(off), "%lld",
		 (long long)json_integer_value(json_object_get(rp1, "offset")));

	/* dry run: lists all three, produces nothing */
	long orders = h_topic_count(H_TOPIC_ORDERS);
	const char *dry[] = {"replay", "-c", cfg, "--dry-run", NULL};
	char *out = NULL;
	assert_int_equal(bridge_json_logs("replay-dry-logs", dry), 0);
	assert_int_equal(bridge(dry, &out), 0);
	assert_int_equal(count_lines(out, "\"would-replay\""), 3);
	free(out);
	const char *dry_reason[] = {
	    "replay", "-c", cfg, "--dry-run", "--reason", "invalid_json", NULL};
	assert_int_equal(bridge(dry_reason, &out), 0);
	assert_int_equal(count_lines(out, "\"would-replay\""), 1);
	assert_int_equal(count_lines(out, "\"skip\""), 2);
	free(out);
	assert_int_equal(h_topic_count(H_TOPIC_ORDERS), orders);
	/* a partition the DLQ does not have is a usage error, not an empty
	 * DLQ */
	const char *no_part[] = {"replay",	"-c", cfg, "--dry-run",
				 "--partition", "99", NULL};
	assert_int_equal(bridge(no_part, &out), 2);
	assert_int_equal(count_lines(out, "\"partition\""), 0);
	free(out);

	/* replay exactly rp-1's record */
	const char *one[] = {"replay", "-c",	   cfg,	       "--partition",
			     part,     "--from",   off,	       "--to",
			     off,      "--reason", "http_4xx", NULL};
	assert_int_equal(bridge(one, &out), 0);
	assert_int_equal(count_lines(out, "\"replay\""), 1);
	free(out);
	assert_int_equal(h_topic_count(H_TOPIC_ORDERS), orders + 1);
	json_t *ins = h_consume(H_TOPIC_ORDERS, orders + 1, 15000);
	json_t *copy = NULL;
	json_array_foreach(ins, i, r)
	{
		if (json_object_get(json_object_get(r, "headers"),
				    "x-replayed-from"))
			copy = r;
	}
	assert_non_null(copy);
	assert_string_equal(h_str(copy, "raw"), h_str(rp1, "raw"));
	assert_string_equal(h_str(copy, "key"), "acme/WO-RP1");

	/* the worker takes the replayed event: pushed again, created */
	w = h_worker_run("worker-rp2", cfg, true);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, WAIT_MS), 0);
	json_t *recs = h_consume(H_TOPIC_RESULTS, before + 4, 15000);
	assert_int_equal(json_array_size(recs), before + 4);
	assert_int_equal(h_check_schema(recs, "outcome.schema.json"), 0);
	json_t *by = h_by_event(recs);
	json_t *list = json_object_get(by, "rp-1");
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(h_str(json_array_get(list, 0), "outcome"),
			    "failed");
	assert_string_equal(h_str(json_array_get(list, 0), "reason"),
			    "http_4xx");
	assert_string_equal(h_str(json_array_get(list, 1), "outcome"),
			    "created");
	json_t *o2 = h_one(by, "rp-2");
	assert_non_null(o2);
	assert_string_equal(h_str(o2, "outcome"), "failed");
	json_t *so = h_sim_orders("acme");
	assert_non_null(json_object_get(so, "WO-RP1"));
	assert_null(json_object_get(so, "WO-RP2"));
	json_decref(so);
	assert_int_equal(h_topic_count(H_TOPIC_DLQ), 3);
	json_decref(by);
	json_decref(recs);
	json_decref(ins);
	json_decref(dlq);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(auto_admin_at_run_time),
	    cmocka_unit_test(replay_from_dlq),
	};
	return cmocka_run_group_tests(tests, setup, h_group_teardown);
}
