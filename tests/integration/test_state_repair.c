/*
 * The order-expiry sweep (state_repair.h) against real redis-server
 * processes:
 *   - standalone: order hashes with an expiry (one order field each, every
 *     field in turn; more than six SCAN pages) lose it; hashes of marks
 *     only (with a learned "k1") keep theirs; an order hash without expiry,
 *     keys of another prefix, other key shapes and a string at an order's
 *     key are left alone; the marker says "done" after, and a second sweep
 *     touches nothing (a hash planted after it keeps its expiry);
 *   - a prefix with glob characters matches only itself;
 *   - a live lease of another sweeper is respected; once it expires, the
 *     next sweep runs; a sweep told to stop stops between pages and leaves
 *     its lease, not "done"; a Redis killed between pages ends the sweep
 *     as failed (an error naming Redis), and a later one runs again;
 *   - a 3-master Cluster: planted keys on every master are repaired; a
 *     key only on a master that does not serve slot 0 makes the worker's
 *     layout probe (state.h) see an earlier build's data (every master is
 *     asked), and with no key anywhere it records a fresh deployment; a
 *     slot that migrates mid-sweep from a master not swept yet to one
 *     swept ends the sweep as failed (the slot map changed), not "done",
 *     and the same sweeper's retry repairs the rest, each key once; so
 *     does a migration of half a slot's keys still open at the end;
 *   - `pruvan-bridge run`: a hash an earlier build left with order fields
 *     and an expiry stays once the worker's sweep logs its end (counted
 *     in /metrics), and the order's next event is an update of the state
 *     kept.
 */
#include <inttypes.h>
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
#include "harness_redis.h"
#include "redis_cluster.h"
#include "redis_conn.h"
#include "state.h"
#include "state_repair.h"

#define MANY 3000 /* order hashes with an expiry: six pages of 500 */

static int setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	return h_setup("repair") || h_redis_start() || h_kafka_start(1, 2) ||
		       h_sim_start(0)
		   ? -1
		   : 0;
}

static int teardown(void **state)
{
	hr_stop_all();
	return h_group_teardown(state);
}

/* ---- Redis by hand ------------------------------------------------------ */

static redisContext *conn(void)
{
	redisContext *c = redisConnect("127.0.0.1", h_redis_port());
	assert_non_null(c);
	assert_int_equal(c->err, 0);
	return c;
}

/* A command's integer reply (-100: another reply). */
static long long cmd_int(redisContext *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -100;
	freeReplyObject(r);
	return v;
}

/* A command's string or status reply (owned; NULL: nil or another). */
static char *cmd_str(redisContext *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	char *v = r && (r->type == REDIS_REPLY_STRING ||
			r->type == REDIS_REPLY_STATUS)
		      ? strdup(r->str)
		      : NULL;
	freeReplyObject(r);
	return v;
}

static void cmd_ok(redisContext *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
	freeReplyObject(r);
}

static const char *const fields[] = {"c", "d", "v", "hv", "t", "p"};

/* n order hashes PREFIX{acme/WO-i}:o with one order field each (the
 * fields in turn), a mark, and an expiry of an hour. */
static void plant_orders(redisContext *c, const char *prefix, int n)
{
	for (int i = 0; i < n; i++) {
		redisAppendCommand(c, "HSET %s{acme/WO-%d}:o %s 1 m:e%d D|1",
				   prefix, i, fields[i % 6], i);
		redisAppendCommand(c, "PEXPIRE %s{acme/WO-%d}:o 3600000",
				   prefix, i);
	}
	for (int i = 0; i < 2 * n; i++) {
		void *r = NULL;
		assert_int_equal(redisGetReply(c, &r), REDIS_OK);
		assert_int_not_equal(((redisReply *)r)->type,
				     REDIS_REPLY_ERROR);
		freeReplyObject(r);
	}
}

/* How many of PREFIX{acme/WO-0..n}:o have no expiry. */
static int count_kept(redisContext *c, const char *prefix, int n)
{
	for (int i = 0; i < n; i++)
		redisAppendCommand(c, "TTL %s{acme/WO-%d}:o", prefix, i);
	int kept = 0;
	for (int i = 0; i < n; i++) {
		void *r = NULL;
		assert_int_equal(redisGetReply(c, &r), REDIS_OK);
		if (((redisReply *)r)->integer == -1)
			kept++;
		freeReplyObject(r);
	}
	return kept;
}

static pb_redis_t *redis_at(int port)
{
	char url[64], err[256];
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", port);
	pb_redis_opts_t o = {.url = url, .timeout_ms = 2000};
	pb_redis_t *r = NULL;
	assert_int_equal(pb_redis_new(&o, &r, err, sizeof(err)), PB_OK);
	return r;
}

static pb_repair_result_t sweep(pb_redis_t *r, const char *prefix,
				pb_repair_stats_t *st)
{
	pb_repair_opts_t o = {.prefix = prefix};
	char err[512] = "";
	pb_repair_result_t res = pb_repair_sweep(r, &o, st, err, sizeof(err));
	if (res == PB_REPAIR_FAILED)
		fprintf(stderr, "sweep failed: %s\n", err);
	return res;
}

/* ---- the pattern -------------------------------------------------------- */

static void pattern_escapes_glob(void **state)
{
	(void)state;
	char *p = pb_repair_pattern_new("a*b?[c]\\:");
	assert_string_equal(p, "a\\*b\\?\\[c\\]\\\\:{*}:o");
	free(p);
	p = pb_repair_pattern_new(NULL);
	assert_string_equal(p, "pb:{*}:o");
	free(p);
}

/* ---- standalone --------------------------------------------------------- */

static void plant_others(redisContext *c)
{
	/* marks only, a learned Key1 among them: keeps its expiry */
	for (int i = 0; i < 5; i++)
		cmd_ok(c, "HSET t:{acme/MK-%d}:o m:x D|1 mx 99 k1 K1-%d", i, i);
	for (int i = 0; i < 5; i++)
		cmd_ok(c, "EXPIRE t:{acme/MK-%d}:o 3600", i);
	/* an order without expiry */
	cmd_ok(c, "HSET t:{acme/KEEP}:o c 1 v 2");
	/* another prefix; a key with more before the tag; other shapes */
	cmd_ok(c, "HSET u:{acme/WO-1}:o c 1");
	cmd_ok(c, "EXPIRE u:{acme/WO-1}:o 3600");
	cmd_ok(c, "HSET t:x{acme/WO-1}:o c 1");
	cmd_ok(c, "EXPIRE t:x{acme/WO-1}:o 3600");
	cmd_ok(c, "SET t:{acme/WO-1}:m:ev1 D|1 EX 3600");
	cmd_ok(c, "HSET t:{acme/WO-1}:oo c 1");
	cmd_ok(c, "EXPIRE t:{acme/WO-1}:oo 3600");
	cmd_ok(c, "SET t:{acme/STR}:o c EX 3600"); /* not a hash */
	/* a glob prefix that, unescaped, would match t:-like keys */
	cmd_ok(c, "HSET g*[1]:{acme/WO-1}:o c 1");
	cmd_ok(c, "EXPIRE g*[1]:{acme/WO-1}:o 3600");
	cmd_ok(c, "HSET gzz1:{acme/WO-1}:o c 1");
	cmd_ok(c, "EXPIRE gzz1:{acme/WO-1}:o 3600");
}

static void assert_others_untouched(redisContext *c)
{
	for (int i = 0; i < 5; i++)
		assert_true(cmd_int(c, "TTL t:{acme/MK-%d}:o", i) > 0);
	assert_int_equal(cmd_int(c, "TTL t:{acme/KEEP}:o"), -1);
	assert_true(cmd_int(c, "TTL u:{acme/WO-1}:o") > 0);
	assert_true(cmd_int(c, "TTL t:x{acme/WO-1}:o") > 0);
	assert_true(cmd_int(c, "TTL t:{acme/WO-1}:m:ev1") > 0);
	assert_true(cmd_int(c, "TTL t:{acme/WO-1}:oo") > 0);
	assert_true(cmd_int(c, "TTL t:{acme/STR}:o") > 0);
	assert_true(cmd_int(c, "TTL gzz1:{acme/WO-1}:o") > 0);
}

static void sweep_repairs_expiring_orders(void **state)
{
	(void)state;
	h_begin("sweep_repairs_expiring_orders");
	redisContext *c = conn();
	cmd_ok(c, "FLUSHALL");
	plant_orders(c, "t:", MANY);
	plant_others(c);
	assert_int_equal(count_kept(c, "t:", MANY), 0);

	pb_redis_t *r = redis_at(h_redis_port());
	pb_repair_stats_t st;
	assert_int_equal(sweep(r, "t:", &st), PB_REPAIR_SWEPT);
	assert_int_equal(st.masters, 1);
	assert_int_equal(st.persisted, MANY);
	/* the orders, the marks-only, KEEP and the string */
	assert_int_equal(st.scanned, MANY + 5 + 1 + 1);
	assert_int_equal(count_kept(c, "t:", MANY), MANY);
	assert_others_untouched(c);
	assert_true(cmd_int(c, "TTL g*[1]:{acme/WO-1}:o") > 0);
	char *m = cmd_str(c, "GET t:repair:order-expiry");
	assert_non_null(m);
	assert_string_equal(m, "done");
	free(m);
	assert_int_equal(cmd_int(c, "TTL t:repair:order-expiry"), -1);

	/* done: a second sweep touches nothing, not even a new one */
	cmd_ok(c, "HSET t:{acme/LATE}:o c 1");
	cmd_ok(c, "EXPIRE t:{acme/LATE}:o 3600");
	assert_int_equal(sweep(r, "t:", &st), PB_REPAIR_WAS_DONE);
	assert_int_equal(st.persisted, 0);
	assert_int_equal(st.scanned, 0);
	assert_true(cmd_int(c, "TTL t:{acme/LATE}:o") > 0);

	/* the glob prefix: only its own key */
	assert_int_equal(sweep(r, "g*[1]:", &st), PB_REPAIR_SWEPT);
	assert_int_equal(st.persisted, 1);
	assert_int_equal(cmd_int(c, "TTL g*[1]:{acme/WO-1}:o"), -1);
	assert_true(cmd_int(c, "TTL gzz1:{acme/WO-1}:o") > 0);
	assert_others_untouched(c);
	pb_redis_destroy(r);
	redisFree(c);
	h_end();
}

static void live_lease_respected(void **state)
{
	(void)state;
	h_begin("live_lease_respected");
	redisContext *c = conn();
	cmd_ok(c, "FLUSHALL");
	plant_orders(c, "l:", 3);
	cmd_ok(c, "SET l:repair:order-expiry sweeping:other PX 60000");
	pb_redis_t *r = redis_at(h_redis_port());
	pb_repair_stats_t st;
	assert_int_equal(sweep(r, "l:", &st), PB_REPAIR_BUSY);
	assert_int_equal(count_kept(c, "l:", 3), 0);
	char *m = cmd_str(c, "GET l:repair:order-expiry");
	assert_string_equal(m, "sweeping:other");
	free(m);
	/* the other sweeper crashed: its lease runs out, the next sweeps */
	cmd_ok(c, "PEXPIRE l:repair:order-expiry 30");
	int64_t deadline = pb_mono_ms() + 5000;
	while (cmd_int(c, "EXISTS l:repair:order-expiry") == 1 &&
	       pb_mono_ms() < deadline)
		h_nap_ms(10);
	assert_int_equal(sweep(r, "l:", &st), PB_REPAIR_SWEPT);
	assert_int_equal(count_kept(c, "l:", 3), 3);
	pb_redis_destroy(r);
	redisFree(c);
	h_end();
}

/* An ACL user that may not SCAN: the sweep is refused, not failed, so
 * the worker's thread does not try again and again; nothing is touched. */
static void refused_without_scan(void **state)
{
	(void)state;
	h_begin("refused_without_scan");
	redisContext *c = conn();
	cmd_ok(c, "FLUSHALL");
	plant_orders(c, "n:", 3);
	cmd_ok(c, "ACL SETUSER noscan on >pw ~* &* +@all -scan");
	char url[96], err[512] = "";
	snprintf(url, sizeof(url), "redis://noscan:pw@127.0.0.1:%d/0",
		 h_redis_port());
	pb_redis_opts_t o = {.url = url, .timeout_ms = 2000};
	pb_redis_t *r = NULL;
	assert_int_equal(pb_redis_new(&o, &r, err, sizeof(err)), PB_OK);
	pb_repair_opts_t ro = {.prefix = "n:"};
	pb_repair_stats_t st;
	assert_int_equal(pb_repair_sweep(r, &ro, &st, err, sizeof(err)),
			 PB_REPAIR_REFUSED);
	assert_non_null(strstr(err, "NOPERM"));
	assert_null(strstr(err, "pw@"));
	assert_int_equal(count_kept(c, "n:", 3), 0);
	assert_string_equal(pb_repair_result_name(PB_REPAIR_REFUSED),
			    "refused");
	pb_redis_destroy(r);
	cmd_ok(c, "ACL DELUSER noscan");
	redisFree(c);
	h_end();
}

/* A Redis with no key has nothing to repair, and the sweep leaves it
 * with none: the worker's first start takes an empty Redis for one no
 * earlier build wrote to. */
static void empty_redis_left_empty(void **state)
{
	(void)state;
	h_begin("empty_redis_left_empty");
	redisContext *c = conn();
	cmd_ok(c, "FLUSHALL");
	pb_redis_t *r = redis_at(h_redis_port());
	pb_repair_stats_t st;
	assert_int_equal(sweep(r, "e:", &st), PB_REPAIR_EMPTY);
	assert_int_equal(cmd_int(c, "DBSIZE"), 0);
	pb_redis_destroy(r);
	redisFree(c);
	h_end();
}

/* The worker's first start on an empty Redis: the repair writes nothing
 * before the first commit, so the layout recorded is that of a fresh
 * deployment (0) and no earlier build's string mark is written. */
static void worker_first_start_stays_fresh(void **state)
{
	(void)state;
	h_begin("worker_first_start_stays_fresh");
	redisContext *c = conn();
	cmd_ok(c, "FLUSHALL");
	char cfg[512];
	assert_int_equal(h_write_config("config.json", NULL, cfg, sizeof(cfg)),
			 0);
	json_t *ev = h_event_create("fresh-1", "acme", "WO-FRESH", 1);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
	json_decref(ev);
	long before = h_topic_count(H_TOPIC_RESULTS);
	h_worker_t *w = h_worker_run("worker-fresh", cfg, true);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, 60000), 0);
	assert_true(h_await_count(H_TOPIC_RESULTS, before + 1, 10000) >=
		    before + 1);
	char *layout = cmd_str(c, "GET pb:layout");
	assert_non_null(layout);
	assert_string_equal(layout, "0");
	free(layout);
	assert_int_equal(cmd_int(c, "EXISTS pb:repair:order-expiry"), 0);
	redisReply *k = redisCommand(c, "KEYS pb:*:m:*");
	assert_non_null(k);
	assert_int_equal(k->type, REDIS_REPLY_ARRAY);
	assert_int_equal(k->elements, 0);
	freeReplyObject(k);
	redisFree(c);
	h_end();
}

static bool stop_now(void *ctx, int ms)
{
	(void)ms;
	int *calls = ctx;
	return ++*calls >= 2; /* the first asks before the first master */
}

static void stop_between_pages(void **state)
{
	(void)state;
	h_begin("stop_between_pages");
	redisContext *c = conn();
	cmd_ok(c, "FLUSHALL");
	plant_orders(c, "s:", 1200);
	pb_redis_t *r = redis_at(h_redis_port());
	int calls = 0;
	pb_repair_opts_t o = {
	    .prefix = "s:", .nap = stop_now, .nap_ctx = &calls};
	pb_repair_stats_t st;
	char err[512];
	/* told to stop after the first page */
	assert_int_equal(pb_repair_sweep(r, &o, &st, err, sizeof(err)),
			 PB_REPAIR_STOPPED);
	assert_int_equal(calls, 2);
	assert_true(st.persisted > 0 && st.persisted < 1200);
	char *m = cmd_str(c, "GET s:repair:order-expiry");
	assert_non_null(m);
	assert_true(strncmp(m, "sweeping:", 9) == 0);
	free(m);
	assert_true(cmd_int(c, "PTTL s:repair:order-expiry") > 0);
	assert_int_equal(count_kept(c, "s:", 1200), (int)st.persisted);
	pb_redis_destroy(r);
	redisFree(c);
	h_end();
}

#define LOST_SLOT 0 /* a Redis of its own, killed mid-sweep */

static bool kill_after_first_page(void *ctx, int ms)
{
	(void)ms;
	int *calls = ctx;
	if (++*calls == 2) /* the first asks before the first master */
		hr_kill(LOST_SLOT);
	return false;
}

/* Redis gone between two pages: the sweep ends FAILED with an error that
 * names Redis (the worker retries after its backoff), repairs kept; a
 * later sweep on the Redis back (empty: no persistence) finds nothing. */
static void redis_lost_mid_sweep(void **state)
{
	(void)state;
	h_begin("redis_lost_mid_sweep");
	int port = hr_free_port();
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	const char *args[] = {"--port", ps, NULL};
	assert_int_equal(hr_start(LOST_SLOT, port, args), 0);
	struct timeval tv = {2, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	assert_true(c && !c->err);
	plant_orders(c, "lost:", 1200);
	redisFree(c);
	pb_redis_t *r = redis_at(port);
	int calls = 0;
	pb_repair_opts_t o = {
	    .prefix = "lost:", .nap = kill_after_first_page, .nap_ctx = &calls};
	pb_repair_stats_t st;
	char err[512] = "";
	assert_int_equal(pb_repair_sweep(r, &o, &st, err, sizeof(err)),
			 PB_REPAIR_FAILED);
	assert_int_equal(calls, 2);
	assert_true(st.persisted > 0 && st.persisted < 1200);
	fprintf(stderr, "[test] the sweep's error: %s\n", err);
	assert_non_null(strstr(err, "Redis"));
	assert_int_equal(hr_restart(LOST_SLOT, NULL), 0);
	calls = 0;
	assert_int_equal(pb_repair_sweep(r, &o, &st, err, sizeof(err)),
			 PB_REPAIR_EMPTY);
	pb_redis_destroy(r);
	hr_kill(LOST_SLOT);
	h_end();
}

/* ---- Cluster ------------------------------------------------------------ */

#define CL_NODES 3
#define CL_SLOT0 4
static int cl_ports[CL_NODES];

static int start_cluster(void)
{
	return hr_start_cluster(CL_SLOT0, CL_NODES, 0, cl_ports);
}

/* The nodes as "host:port" seeds: seeds holds the text, sp points at it. */
static void cl_seeds(char seeds[CL_NODES][32], const char *sp[CL_NODES])
{
	for (int i = 0; i < CL_NODES; i++) {
		snprintf(seeds[i], 32, "127.0.0.1:%d", cl_ports[i]);
		sp[i] = seeds[i];
	}
}

/* A Cluster handle over the test Cluster's masters, and a connection
 * through it (routed by key). */
static void cl_open(pb_redis_t **r, pb_rconn_t **c)
{
	char seeds[CL_NODES][32];
	const char *sp[CL_NODES];
	cl_seeds(seeds, sp);
	pb_redis_opts_t o = {.url = "redis://ignored/0",
			     .cluster_nodes = sp,
			     .cluster_nodes_len = CL_NODES,
			     .timeout_ms = 2000};
	char err[512] = "";
	assert_int_equal(pb_redis_new(&o, r, err, sizeof(err)), PB_OK);
	assert_int_equal(pb_redis_dial(*r, c, NULL, err, sizeof(err)), PB_OK);
}

/* One command through the Cluster handle (routed by its key). */
static long long cl_int(pb_rconn_t *c, const char *a0, const char *a1,
			const char *a2, const char *a3, const char *a4)
{
	const char *argv[] = {a0, a1, a2, a3, a4};
	int argc = a4 ? 5 : a3 ? 4 : a2 ? 3 : 2;
	char err[256];
	redisReply *r = pb_rconn_command(c, err, sizeof(err), argc, argv);
	assert_non_null(r);
	long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -100;
	pb_reply_free(r);
	return v;
}

#define CL_KEYS 60

static void cluster_every_master(void **state)
{
	(void)state;
	h_begin("cluster_every_master");
	assert_int_equal(start_cluster(), 0);
	pb_redis_t *r = NULL;
	pb_rconn_t *c = NULL;
	cl_open(&r, &c);
	char key[CL_KEYS][64];
	for (int i = 0; i < CL_KEYS; i++) {
		/* every third a hash of marks only */
		snprintf(key[i], sizeof(key[i]), "pb:{acme/CL-%d}:o", i);
		assert_true(cl_int(c, "HSET", key[i],
				   i % 3 ? fields[i % 6] : "m:x", "1",
				   NULL) == 1);
		assert_int_equal(
		    cl_int(c, "EXPIRE", key[i], "3600", NULL, NULL), 1);
	}
	for (int i = 0; i < CL_NODES; i++) {
		const char *q[] = {"DBSIZE", NULL};
		char *n = hr_cmd(cl_ports[i], q);
		assert_non_null(n);
		assert_true(strtol(n, NULL, 10) > 0); /* keys on every master */
		free(n);
	}
	pb_repair_stats_t st;
	assert_int_equal(sweep(r, "pb:", &st), PB_REPAIR_SWEPT);
	assert_int_equal(st.masters, CL_NODES);
	assert_int_equal(st.scanned, CL_KEYS);
	assert_int_equal(st.persisted, CL_KEYS - CL_KEYS / 3);
	for (int i = 0; i < CL_KEYS; i++) {
		long long ttl = cl_int(c, "TTL", key[i], NULL, NULL, NULL);
		if (i % 3)
			assert_int_equal(ttl, -1);
		else
			assert_true(ttl > 0);
	}
	assert_int_equal(sweep(r, "pb:", &st), PB_REPAIR_WAS_DONE);
	pb_rconn_close(c);
	pb_redis_destroy(r);
	h_end();
}

/* The index of the master that holds key (the one that answers its GET
 * without MOVED), -1 when none. */
static int cl_owner(const char *key)
{
	for (int i = 0; i < CL_NODES; i++) {
		const char *q[] = {"GET", key, NULL};
		char *a = hr_cmd(cl_ports[i], q);
		bool moved = !a || !strncmp(a, "MOVED", 5);
		free(a);
		if (!moved)
			return i;
	}
	return -1;
}

/* A key of prefix whose slot is served by a master other than the one
 * serving slot 0 (the node a Cluster handle sends keyless commands to). */
static void key_off_slot0(char *out, size_t n, int *slot0_owner)
{
	char k[64];
	for (int i = 0; pb_cluster_slot(
			    k, (size_t)snprintf(k, sizeof(k), "s0-%d", i)) != 0;
	     i++)
		;
	*slot0_owner = cl_owner(k);
	assert_true(*slot0_owner >= 0);
	for (int i = 0;; i++) {
		snprintf(out, n, "ly:{old/WO-%d}:o", i);
		int o = cl_owner(out);
		if (o >= 0 && o != *slot0_owner)
			return;
	}
}

/* The layout the first commit of a new handle on the Cluster records. */
static char *cl_first_layout(const char *const *seeds, int nseeds)
{
	pb_redis_opts_t o = {.url = "redis://ignored/0",
			     .cluster_nodes = seeds,
			     .cluster_nodes_len = (size_t)nseeds,
			     .timeout_ms = 2000};
	pb_state_t *st = NULL;
	char err[256];
	assert_int_equal(
	    pb_state_new_redis(&o, "ly:", 3600, 0, 0, &st, err, sizeof(err)),
	    PB_OK);
	/* the event's fetch first, as the worker's: it connects and probes */
	pb_state_view_t v = {
	    .account = "acme", .won = "WO-NEW", .event_id = "ly-1"};
	pb_state_call_t f;
	assert_int_equal(pb_state_fetch_send(st, &v, 1, &f, err, sizeof(err)),
			 PB_OK);
	assert_int_equal(pb_state_flush(st, err, sizeof(err)), PB_OK);
	assert_int_equal(pb_state_fetch_recv(st, &f, &v, 1, err, sizeof(err)),
			 PB_OK);
	pb_state_view_clear(&v);
	pb_state_write_t w = {.account = "acme",
			      .won = "WO-NEW",
			      .event_id = "ly-1",
			      .outcome = "created",
			      .http_status = 200,
			      .attempts = 1,
			      .write_order = true,
			      .set_created = true,
			      .pushed = "{}"};
	pb_state_call_t c;
	assert_int_equal(pb_state_commit_send(st, &w, 1, &c, err, sizeof(err)),
			 PB_OK);
	assert_int_equal(pb_state_flush(st, err, sizeof(err)), PB_OK);
	assert_int_equal(pb_state_write_recv(st, &c, err, sizeof(err)), PB_OK);
	pb_state_destroy(st);
	int owner = cl_owner("ly:layout");
	assert_true(owner >= 0);
	const char *q[] = {"GET", "ly:layout", NULL};
	return hr_cmd(cl_ports[owner], q);
}

static void flush_masters(void)
{
	for (int i = 0; i < CL_NODES; i++) {
		const char *q[] = {"FLUSHALL", NULL};
		free(hr_cmd(cl_ports[i], q));
	}
}

static void cluster_layout_asks_every_master(void **state)
{
	(void)state;
	h_begin("cluster_layout_asks_every_master");
	assert_true(hr_await_cluster_ok(CL_SLOT0, CL_NODES, cl_ports));
	char seeds[CL_NODES][32];
	const char *sp[CL_NODES];
	cl_seeds(seeds, sp);
	flush_masters();
	char key[64];
	int slot0;
	key_off_slot0(key, sizeof(key), &slot0);
	int holder = cl_owner(key);
	const char *set[] = {"HSET", key, "c", "1", NULL};
	free(hr_cmd(cl_ports[holder], set));
	const char *dbsize[] = {"DBSIZE", NULL};
	char *n0 = hr_cmd(cl_ports[slot0], dbsize);
	assert_non_null(n0);
	assert_string_equal(n0, "0"); /* slot 0's master alone looks empty */
	free(n0);
	char *layout = cl_first_layout(sp, CL_NODES);
	assert_non_null(layout);
	assert_true(strlen(layout) >= 10); /* an upgrade: a Unix second */
	free(layout);

	flush_masters(); /* nothing anywhere: a fresh deployment */
	layout = cl_first_layout(sp, CL_NODES);
	assert_non_null(layout);
	assert_string_equal(layout, "0");
	free(layout);
	flush_masters();
	h_end();
}

/* ---- a slot migrated mid-sweep ------------------------------------------ */

#define MV_KEYS	 600 /* spread over the masters: pages of MV_PAGE */
#define MV_GROUP 21  /* in one slot of each master */
#define MV_ALL	 (MV_KEYS + CL_NODES * MV_GROUP)
#define MV_PAGE	 "50"

static char mv_key[MV_ALL][64];
static int mv_group_slot[CL_NODES]; /* the slot of group g (g's master) */

/* Key k needs the repair (an order field); every third has marks only. */
static bool mv_repairable(int k)
{
	return k % 3 != 0;
}

/* MV_KEYS orders over the Cluster, then MV_GROUP in one slot of each
 * master (group g: keys MV_KEYS + g * MV_GROUP ...). */
static void mv_names(void)
{
	for (int k = 0; k < MV_KEYS; k++)
		snprintf(mv_key[k], sizeof(mv_key[k]), "mv:{acme/MV-%d}:o", k);
	for (int g = 0; g < CL_NODES; g++) {
		char first[64];
		for (int i = 0;; i++) { /* a key on master g */
			snprintf(first, sizeof(first), "mv:{acme/G%d-%d}:o", g,
				 i);
			if (cl_owner(first) == g)
				break;
		}
		mv_group_slot[g] = (int)pb_cluster_slot(first, strlen(first));
		int k = MV_KEYS + g * MV_GROUP, made = 0;
		for (int i = 0; made < MV_GROUP; i++) {
			char t[32];
			int n = snprintf(t, sizeof(t), "acme/S%d-%d", g, i);
			if ((int)pb_cluster_slot(t, (size_t)n) !=
			    mv_group_slot[g])
				continue;
			snprintf(mv_key[k + made], sizeof(mv_key[0]),
				 "mv:{%s}:o", t);
			made++;
		}
	}
}

/* Each key with its field ("c"... or the mark "m:x") and a mark, and an
 * expiry of an hour, through the Cluster handle. */
static void mv_plant(pb_rconn_t *c)
{
	for (int k = 0; k < MV_ALL; k++) {
		const char *f = mv_repairable(k) ? fields[k % 6] : "m:x";
		const char *argv[] = {"HSET", mv_key[k], f, "1", "m:e1", "D|1"};
		char err[256];
		redisReply *r = pb_rconn_command(c, err, sizeof(err), 6, argv);
		assert_non_null(r);
		assert_int_equal(r->type, REDIS_REPLY_INTEGER);
		pb_reply_free(r);
		assert_int_equal(
		    cl_int(c, "PEXPIRE", mv_key[k], "3600000", NULL, NULL), 1);
	}
}

/* Where each key is and its TTL: owner[k] the master answering its TTL
 * after ASKING (the one holding it, also while its slot is migrated),
 * -1: none; ttl[k] that answer. */
static void mv_census(int owner[MV_ALL], long long ttl[MV_ALL])
{
	for (int k = 0; k < MV_ALL; k++)
		owner[k] = -1;
	for (int i = 0; i < CL_NODES; i++) {
		struct timeval tv = {2, 0};
		redisContext *c =
		    redisConnectWithTimeout("127.0.0.1", cl_ports[i], tv);
		assert_true(c && !c->err);
		for (int k = 0; k < MV_ALL; k++) {
			redisAppendCommand(c, "ASKING");
			redisAppendCommand(c, "TTL %s", mv_key[k]);
		}
		for (int k = 0; k < 2 * MV_ALL; k++) {
			void *r = NULL;
			assert_int_equal(redisGetReply(c, &r), REDIS_OK);
			redisReply *rr = r;
			if (k % 2 && rr->type == REDIS_REPLY_INTEGER) {
				owner[k / 2] = i;
				ttl[k / 2] = rr->integer;
			}
			freeReplyObject(r);
		}
		redisFree(c);
	}
}

/* Keys that need the repair and were repaired, per master (kept) and in
 * all (the return), from a census. */
static int mv_kept(const int owner[MV_ALL], const long long ttl[MV_ALL],
		   int kept[CL_NODES], int due[CL_NODES])
{
	int all = 0;
	for (int i = 0; i < CL_NODES; i++)
		kept[i] = due[i] = 0;
	for (int k = 0; k < MV_ALL; k++) {
		assert_true(owner[k] >= 0); /* no key lost */
		if (!mv_repairable(k)) {
			assert_true(ttl[k] > 0); /* marks only keep expiring */
			continue;
		}
		due[owner[k]]++;
		if (ttl[k] == -1) {
			kept[owner[k]]++;
			all++;
		}
	}
	return all;
}

/* Every key holds what was planted (its field and its mark), on the
 * master a census found it on. */
static void mv_as_planted(const int owner[MV_ALL])
{
	redisContext *c[CL_NODES];
	for (int i = 0; i < CL_NODES; i++) {
		struct timeval tv = {2, 0};
		c[i] = redisConnectWithTimeout("127.0.0.1", cl_ports[i], tv);
		assert_true(c[i] && !c[i]->err);
	}
	for (int k = 0; k < MV_ALL; k++) {
		const char *f = mv_repairable(k) ? fields[k % 6] : "m:x";
		redisContext *o = c[owner[k]];
		freeReplyObject(redisCommand(o, "ASKING"));
		char *v = cmd_str(o, "HGET %s %s", mv_key[k], f);
		assert_non_null(v);
		assert_string_equal(v, "1");
		free(v);
		freeReplyObject(redisCommand(o, "ASKING"));
		assert_int_equal(cmd_int(o, "HLEN %s", mv_key[k]), 2);
	}
	for (int i = 0; i < CL_NODES; i++)
		redisFree(c[i]);
}

static char *mv_id(int i)
{
	const char *q[] = {"CLUSTER", "MYID", NULL};
	char *id = hr_cmd(cl_ports[i], q);
	assert_non_null(id);
	assert_int_equal(strlen(id), 40);
	return id;
}

static void mv_ok(int i, const char *const *argv)
{
	char *a = hr_cmd(cl_ports[i], argv);
	assert_non_null(a);
	if (strcmp(a, "OK") != 0)
		fprintf(stderr, "[test] %s on node %d: %s\n", argv[0], i, a);
	assert_string_equal(a, "OK");
	free(a);
}

/* CLUSTER SETSLOT (group g's slot) WHAT (node whose's id) on node. */
static void mv_setslot(int node, int g, const char *what, int whose)
{
	char slot[16];
	snprintf(slot, sizeof(slot), "%d", mv_group_slot[g]);
	char *id = mv_id(whose);
	const char *q[] = {"CLUSTER", "SETSLOT", slot, what, id, NULL};
	mv_ok(node, q);
	free(id);
}

/* MIGRATE group g's keys [from, to) from src to dst. */
static void mv_keys(int g, int src, int dst, int from, int to)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", cl_ports[dst]);
	const char *argv[8 + MV_GROUP] = {"MIGRATE", "127.0.0.1", port,	 "",
					  "0",	     "5000",	  "KEYS"};
	int n = 7;
	for (int j = from; j < to; j++)
		argv[n++] = mv_key[MV_KEYS + g * MV_GROUP + j];
	argv[n] = NULL;
	mv_ok(src, argv);
}

/* Group g's slot from master src to dst as a resharding does it:
 * IMPORTING, MIGRATING, its first upto keys MIGRATEd; the rest and
 * SETSLOT NODE on both (mv_finish) when upto is all of them. */
static void mv_finish(int g, int src, int dst, int from);
static void mv_migrate(int g, int src, int dst, int upto)
{
	mv_setslot(dst, g, "IMPORTING", src);
	mv_setslot(src, g, "MIGRATING", dst);
	mv_keys(g, src, dst, 0, upto);
	if (upto == MV_GROUP)
		mv_finish(g, src, dst, upto);
}

/* The rest of a migration begun by mv_migrate: keys [from, ...) and
 * SETSLOT NODE on dst and src. */
static void mv_finish(int g, int src, int dst, int from)
{
	if (from < MV_GROUP)
		mv_keys(g, src, dst, from, MV_GROUP);
	mv_setslot(dst, g, "NODE", dst);
	mv_setslot(src, g, "NODE", dst);
	char slot[16];
	snprintf(slot, sizeof(slot), "%d", mv_group_slot[g]);
	const char *count[] = {"CLUSTER", "COUNTKEYSINSLOT", slot, NULL};
	char *n = hr_cmd(cl_ports[dst], count);
	assert_non_null(n);
	assert_int_equal(strtol(n, NULL, 10), MV_GROUP);
	free(n);
}

typedef struct {
	int calls, masters;  /* nap calls, those before a master (ms 0) */
	int src, dst, group; /* the move made (-1: none yet) */
	int upto;	     /* keys moved: MV_GROUP, or fewer (left open) */
} mv_hook_t;

/* After the first page of the second master swept (pages nap 1 ms, a
 * master's start 0 ms): the group of the master not swept yet moves to
 * the one swept to its end. */
static bool mv_after_page(void *ctx, int ms)
{
	mv_hook_t *h = ctx;
	h->calls++;
	if (ms == 0) {
		h->masters++;
		return false;
	}
	if (h->masters != 2 || h->src >= 0)
		return false;
	int owner[MV_ALL], kept[CL_NODES], due[CL_NODES];
	long long ttl[MV_ALL];
	mv_census(owner, ttl);
	mv_kept(owner, ttl, kept, due);
	for (int i = 0; i < CL_NODES; i++) {
		if (kept[i] == due[i])
			h->dst = i; /* swept */
		else if (kept[i] == 0)
			h->src = i; /* not yet */
	}
	assert_true(h->src >= 0 && h->dst >= 0 && h->src != h->dst);
	h->group = h->src; /* group g starts on master g */
	fprintf(stderr,
		"[test] after nap call %d: slot %d (%d of %d keys) from "
		"master %d to master %d (swept)\n",
		h->calls, mv_group_slot[h->group], h->upto, MV_GROUP, h->src,
		h->dst);
	mv_migrate(h->group, h->src, h->dst, h->upto);
	return false;
}

static const char *const mv_marker[] = {"GET", "mv:repair:order-expiry", NULL};

/* The first sweep ended FAILED with want in its error, not "done", each
 * repair counted once, no marks-only hash repaired, data as planted. */
static void mv_failed(const mv_hook_t *h, pb_repair_result_t res,
		      const pb_repair_stats_t *st, const char *err,
		      const char *want, int due_all)
{
	assert_true(h->src >= 0); /* the slot did move mid-sweep */
	int owner[MV_ALL], kept[CL_NODES], due[CL_NODES];
	long long ttl[MV_ALL];
	mv_census(owner, ttl);
	int kept1 = mv_kept(owner, ttl, kept, due);
	for (int j = 0; j < MV_GROUP; j++) /* moved, or left */
		assert_int_equal(owner[MV_KEYS + h->group * MV_GROUP + j],
				 j < h->upto ? h->dst : h->src);
	assert_int_equal(kept1, (int)st->persisted);
	/* not "done" with keys left expiring */
	assert_int_equal(res, PB_REPAIR_FAILED);
	assert_true(kept1 < due_all);
	assert_non_null(strstr(err, want));
	assert_non_null(strstr(err, "starts over"));
	char *m = hr_cmd(cl_ports[cl_owner(mv_marker[1])], mv_marker);
	assert_non_null(m);
	assert_string_not_equal(m, "done");
	free(m);
	mv_as_planted(owner);
}

/* A slot that holds keys to repair migrates (IMPORTING, MIGRATING,
 * MIGRATE of upto of its keys, SETSLOT NODE on both when that is all)
 * from a master not swept yet to one already swept, after the first page
 * of the next master: those keys were on no master while that one was
 * swept. The sweep must not report "done" having missed them: it ends
 * FAILED saying why (want) and that it starts over, keeping the repairs
 * it made (mv_failed); once the migration is done, the same sweeper's
 * retry, right after, takes over its lease and repairs the rest, each key
 * exactly once, data as planted, the marker "done". */
static void mv_scenario(int upto, const char *want)
{
	int64_t t0 = pb_mono_ms();
	assert_true(hr_await_cluster_ok(CL_SLOT0, CL_NODES, cl_ports));
	flush_masters();
	pb_redis_t *r = NULL;
	pb_rconn_t *c = NULL;
	cl_open(&r, &c);
	char err[512] = "";
	mv_names();
	mv_plant(c);
	pb_rconn_close(c);
	int owner[MV_ALL], kept[CL_NODES], due[CL_NODES];
	long long ttl[MV_ALL];
	mv_census(owner, ttl);
	assert_int_equal(mv_kept(owner, ttl, kept, due), 0);
	int due_all = 0;
	for (int i = 0; i < CL_NODES; i++) {
		assert_true(due[i] > 100); /* pages on every master */
		due_all += due[i];
	}
	mv_hook_t h = {.src = -1, .dst = -1, .group = -1, .upto = upto};
	pb_repair_opts_t o = {.prefix = "mv:",
			      .page = 50,
			      .pause_ms = 1,
			      .nap = mv_after_page,
			      .nap_ctx = &h,
			      .token = "sweeping:test-slotmove"};
	pb_repair_stats_t st;
	pb_repair_result_t res = pb_repair_sweep(r, &o, &st, err, sizeof(err));
	fprintf(stderr,
		"[test] first sweep: %s, %d nap calls, %" PRIu64
		" scanned, %" PRIu64 " persisted: %s\n",
		pb_repair_result_name(res), h.calls, st.scanned, st.persisted,
		err);
	mv_failed(&h, res, &st, err, want, due_all);
	if (upto < MV_GROUP)
		mv_finish(h.group, h.src, h.dst, upto);

	/* the retry (the same sweeper, its lease) repairs the rest, and
	 * nothing twice */
	mv_hook_t none = {.src = 0}; /* no move */
	o.nap_ctx = &none;
	uint64_t first = st.persisted;
	res = pb_repair_sweep(r, &o, &st, err, sizeof(err));
	fprintf(stderr, "[test] second sweep: %s, %" PRIu64 " persisted\n",
		pb_repair_result_name(res), st.persisted);
	assert_int_equal(res, PB_REPAIR_SWEPT);
	assert_int_equal(first + st.persisted, (uint64_t)due_all);
	mv_census(owner, ttl);
	assert_int_equal(mv_kept(owner, ttl, kept, due), due_all);
	mv_as_planted(owner);
	char *m = hr_cmd(cl_ports[cl_owner(mv_marker[1])], mv_marker);
	assert_non_null(m);
	assert_string_equal(m, "done");
	free(m);
	fprintf(stderr, "[test] %d keys (%d to repair), took %" PRId64 " ms\n",
		MV_ALL, due_all, pb_mono_ms() - t0);
	pb_redis_destroy(r);
}

/* The whole slot moves mid-sweep: the slot map read after differs. */
static void cluster_slot_moved_mid_sweep(void **state)
{
	(void)state;
	h_begin("cluster_slot_moved_mid_sweep");
	mv_scenario(MV_GROUP, "slot map changed");
	h_end();
}

/* Half the slot's keys move and the migration is still open when the
 * sweep ends (MIGRATING, IMPORTING; no SETSLOT NODE yet): the slot map
 * reads as before, yet the keys moved were missed. */
static void cluster_slot_open_at_sweep_end(void **state)
{
	(void)state;
	h_begin("cluster_slot_open_at_sweep_end");
	mv_scenario(MV_GROUP / 2, "being migrated");
	h_end();
}

/* ---- the worker --------------------------------------------------------- */

static const char *outcome_of(const json_t *by, const char *id)
{
	return json_string_value(json_object_get(h_one(by, id), "outcome"));
}

static void worker_repairs_at_start(void **state)
{
	(void)state;
	h_begin("worker_repairs_at_start");
	redisContext *c = conn();
	cmd_ok(c, "FLUSHALL");
	char cfg[512];
	assert_int_equal(h_write_config("config.json", NULL, cfg, sizeof(cfg)),
			 0);
	json_t *ev = h_event_create("rp-1", "acme", "WO-RP", 1);
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
	json_decref(ev);
	long before = h_topic_count(H_TOPIC_RESULTS);
	h_worker_t *w1 = h_worker_run("worker-1", cfg, true);
	assert_non_null(w1);
	assert_int_equal(h_worker_wait(w1, 60000), 0);
	assert_true(h_await_count(H_TOPIC_RESULTS, before + 1, 10000) >=
		    before + 1);
	assert_int_equal(cmd_int(c, "TTL pb:{acme/WO-RP}:o"), -1);

	/* what an earlier build left: the order's hash expiring; and the
	 * marker deleted, so the next start sweeps again */
	cmd_ok(c, "PEXPIRE pb:{acme/WO-RP}:o 3600000");
	cmd_ok(c, "DEL pb:repair:order-expiry");
	h_worker_t *w2 = h_worker_run("worker-2", cfg, false);
	assert_non_null(w2);
	assert_true(
	    h_worker_log_has(w2, "order-expiry repair finished", 60000));
	assert_int_equal(cmd_int(c, "TTL pb:{acme/WO-RP}:o"), -1);
	char *m = cmd_str(c, "GET pb:repair:order-expiry");
	assert_non_null(m);
	assert_string_equal(m, "done");
	free(m);
	assert_int_equal(h_worker_log_count(w2, "\"hashes_persisted\":\"1\""),
			 2);
	int port = h_worker_ops_port(w2, 10000);
	assert_true(port > 0);
	assert_true(h_await_metric(port,
				   "pruvan_bridge_order_expiry_repaired_total",
				   1, 10000) == 1);

	/* the order's state is still there: its next event updates it */
	ev = h_event_update("rp-2", "acme", "WO-RP", 2, "second");
	assert_int_equal(h_produce_json(H_TOPIC_ORDERS, ev, true), 0);
	json_decref(ev);
	assert_true(h_await_count(H_TOPIC_RESULTS, before + 2, 30000) >=
		    before + 2);
	assert_int_equal(h_worker_signal(w2, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w2, 30000), 0);
	json_t *recs = h_consume(H_TOPIC_RESULTS, before + 2, 10000);
	json_t *by = h_by_event(recs);
	assert_string_equal(outcome_of(by, "rp-1"), "created");
	assert_string_equal(outcome_of(by, "rp-2"), "updated");
	assert_int_equal(cmd_int(c, "TTL pb:{acme/WO-RP}:o"), -1);
	json_decref(by);
	json_decref(recs);
	redisFree(c);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(pattern_escapes_glob),
	    cmocka_unit_test(sweep_repairs_expiring_orders),
	    cmocka_unit_test(live_lease_respected),
	    cmocka_unit_test(refused_without_scan),
	    cmocka_unit_test(empty_redis_left_empty),
	    cmocka_unit_test(worker_first_start_stays_fresh),
	    cmocka_unit_test(stop_between_pages),
	    cmocka_unit_test(redis_lost_mid_sweep),
	    cmocka_unit_test(worker_repairs_at_start),
	    cmocka_unit_test(cluster_every_master),
	    cmocka_unit_test(cluster_layout_asks_every_master),
	    cmocka_unit_test(cluster_slot_moved_mid_sweep),
	    cmocka_unit_test(cluster_slot_open_at_sweep_end),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
