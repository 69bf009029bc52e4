/*
 * The Redis state against a real redis-server: an order recorded and read
 * back, the published mark, and the split calls the loop overlaps with its
 * own work (send, flush, recv in order; a whole call refused while replies
 * are outstanding; a connection lost between send and recv fails every
 * outstanding recv and the next call reconnects), and replies read ahead
 * without blocking (pump, ready) for a loop that keeps several calls out.
 * The marks in the order's hash: kept for their TTL however busy the
 * order, pruned once expired, a hash of marks only expiring; "published"
 * marks waiting for the order's next write (another handle, as after a
 * crash, reads "done"; a ping and the handle's end write them); and the
 * upgrade from string marks: read as duplicates, written too during the
 * upgrade window (what an earlier replica reads), no longer after it.
 * What a commit leaves out: order fields its event's fetch read with the
 * value written (never on doubt), and the learned Key1 read only for an
 * event that may use it; a learned Key1 alone is no order.
 */
#include <setjmp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <hiredis/hiredis.h>

#include "harness.h"
#include "outcome.h"
#include "state.h"
#include "state_marks.h"

static pb_state_t *st;

static int setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN); /* as the worker: a dead peer is an error */
	if (h_setup("state") || h_redis_start())
		return -1;
	char url[64], err[256];
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", h_redis_port());
	return pb_state_new(url, "t:", 3600, 2000, &st, err, sizeof(err)) ? -1
									  : 0;
}

static int teardown(void **state)
{
	pb_state_destroy(st);
	return h_group_teardown(state);
}

/* An integer reply of a command sent straight to Redis; -100 on error. */
static long long redis_int(const char *cmd)
{
	redisContext *c = redisConnect("127.0.0.1", h_redis_port());
	long long v = -100;
	if (c && !c->err) {
		redisReply *r = redisCommand(c, cmd);
		if (r && r->type == REDIS_REPLY_INTEGER)
			v = r->integer;
		freeReplyObject(r);
	}
	redisFree(c);
	return v;
}

/* A string or status reply of a command sent straight to Redis (owned);
 * NULL on error or another type. */
static char *redis_str(const char *cmd)
{
	redisContext *c = redisConnect("127.0.0.1", h_redis_port());
	char *v = NULL;
	if (c && !c->err) {
		redisReply *r = redisCommand(c, cmd);
		if (r && (r->type == REDIS_REPLY_STRING ||
			  r->type == REDIS_REPLY_STATUS))
			v = strdup(r->str);
		freeReplyObject(r);
	}
	redisFree(c);
	return v;
}

/* A hash field's integer (-100: none). */
static long long hash_i64(const char *key, const char *field)
{
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "HGET %s %s", key, field);
	char *v = redis_str(cmd);
	long long x = v ? strtoll(v, NULL, 10) : -100;
	free(v);
	return x;
}

/* The mark a view read. */
static void assert_mark(const pb_state_view_t *v, pb_mark_t mark,
			const char *outcome, const char *reason, int http,
			int attempts)
{
	assert_int_equal(v->mark, mark);
	assert_string_equal(v->mark_outcome, outcome);
	assert_string_equal(v->mark_reason, reason);
	assert_int_equal(v->mark_http, http);
	assert_int_equal(v->mark_attempts, attempts);
}

/* One operation as the loop runs it: send, flush, receive. */
static pb_err_t fetch1(pb_state_view_t *v, char *err, size_t size)
{
	pb_state_call_t c;
	pb_err_t e = pb_state_fetch_send(st, v, 1, &c, err, size);
	if (!e)
		e = pb_state_flush(st, err, size);
	return e ? e : pb_state_fetch_recv(st, &c, v, 1, err, size);
}

static pb_err_t commit1(const pb_state_write_t *w, char *err, size_t size)
{
	pb_state_call_t c;
	pb_err_t e = pb_state_commit_send(st, w, 1, &c, err, size);
	if (!e)
		e = pb_state_flush(st, err, size);
	return e ? e : pb_state_write_recv(st, &c, err, size);
}

static pb_state_write_t write_of(const char *won, const char *id,
				 const char *pushed)
{
	pb_state_write_t w = {0};
	w.account = "acme";
	w.won = won;
	w.event_id = id;
	w.outcome = "created";
	w.http_status = 200;
	w.attempts = 1;
	w.write_order = true;
	w.set_created = true;
	w.has_version = true;
	w.version = 3;
	w.occurred_ms = 1795881600123LL;
	w.pushed = pushed;
	return w;
}

static void recorded_order_reads_back(void **state)
{
	(void)state;
	h_begin("recorded_order_reads_back");
	char err[256];
	const char *pushed = "{\"services\":[{\"serviceName\":\"Mow\"}],"
			     "\"workOrderInfo\":\"gate \\\"7\\\"\\n\","
			     "\"workOrderNumber\":\"WO-1\"}";
	pb_state_write_t w = write_of("WO-1", "e-1", pushed);
	assert_int_equal(commit1(&w, err, sizeof(err)), PB_OK);
	pb_state_view_t v = {
	    .account = "acme", .won = "WO-1", .event_id = "e-1"};
	assert_int_equal(fetch1(&v, err, sizeof(err)), PB_OK);
	assert_true(v.exists);
	assert_true(v.order.created);
	assert_int_equal(v.order.version, 3);
	assert_int_equal(v.order.occurred_ms, 1795881600123LL);
	/* the last pushed fields come back as the text written */
	assert_int_equal(v.order.pushed_len, strlen(pushed));
	assert_string_equal(v.order.pushed, pushed);
	assert_int_equal(v.mark, PB_MARK_DONE);
	assert_string_equal(v.mark_outcome, "created");
	pb_state_view_clear(&v);
	pb_state_ref_t ref = {"acme", "WO-1", "e-1", "created", NULL, 200, 1};
	assert_int_equal(pb_state_mark_published(st, &ref, 1, err, sizeof(err)),
			 PB_OK);
	assert_int_equal(fetch1(&v, err, sizeof(err)), PB_OK);
	assert_mark(&v, PB_MARK_PUBLISHED, "created", "", 200, 1);
	pb_state_view_clear(&v);

	/* a mark with a reason and other counts reads back as written */
	pb_state_write_t w2 = {.account = "acme",
			       .won = "WO-1",
			       .event_id = "e-1b",
			       .outcome = "rejected",
			       .reason = "order_deleted",
			       .http_status = 0,
			       .attempts = 0};
	assert_int_equal(commit1(&w2, err, sizeof(err)), PB_OK);
	pb_state_view_t v2 = {
	    .account = "acme", .won = "WO-1", .event_id = "e-1b"};
	assert_int_equal(fetch1(&v2, err, sizeof(err)), PB_OK);
	assert_mark(&v2, PB_MARK_DONE, "rejected", "order_deleted", 0, 0);
	pb_state_view_clear(&v2);
	pb_state_ref_t ref2 = {"acme",		"WO-1", "e-1b", "rejected",
			       "order_deleted", 422,	3};
	assert_int_equal(
	    pb_state_mark_published(st, &ref2, 1, err, sizeof(err)), PB_OK);
	assert_int_equal(fetch1(&v2, err, sizeof(err)), PB_OK);
	assert_mark(&v2, PB_MARK_PUBLISHED, "rejected", "order_deleted", 422,
		    3);
	pb_state_view_clear(&v2);
	/* the marks are fields of the order's hash, holding codes, not
	 * names, and their expiry; no keys of their own (Redis was empty
	 * at the first start: no string marks beside them) */
	assert_int_equal(redis_int("EXISTS t:{acme/WO-1}:m:e-1b"), 0);
	assert_int_equal(redis_int("TTL t:{acme/WO-1}:o"), -1);
	char *raw = redis_str("HGET t:{acme/WO-1}:o m:e-1b");
	assert_non_null(raw);
	char want[64];
	snprintf(want, sizeof(want), "P|%d|%d|422|3|", (int)PB_OUTCOME_REJECTED,
		 (int)PB_REASON_ORDER_DELETED);
	assert_memory_equal(raw, want, strlen(want));
	free(raw);
	raw = redis_str("GET t:layout");
	assert_non_null(raw);
	assert_string_equal(raw, "0");
	free(raw);
	/* a mark in the names of an earlier build reads back alike */
	assert_int_equal(redis_int("HSET t:{acme/WO-1}:o m:e-old "
				   "P|created|stale|200|2|99999999999"),
			 1);
	pb_state_view_t v3 = {
	    .account = "acme", .won = "WO-1", .event_id = "e-old"};
	assert_int_equal(fetch1(&v3, err, sizeof(err)), PB_OK);
	assert_mark(&v3, PB_MARK_PUBLISHED, "created", "stale", 200, 2);
	pb_state_view_clear(&v3);
	h_end();
}

static void split_calls_in_one_round_trip(void **state)
{
	(void)state;
	h_begin("split_calls_in_one_round_trip");
	char err[256];
	const char *pushed = "{\"workOrderNumber\":\"WO-2\"}";
	pb_state_write_t w = write_of("WO-2", "e-2", pushed);
	pb_state_ref_t ref = {"acme", "WO-2", "e-2", "created", NULL, 200, 1};
	pb_state_view_t v = {
	    .account = "acme", .won = "WO-2", .event_id = "e-2"};
	pb_state_call_t cw, cm, cf;
	uint64_t rt = pb_state_round_trips(st);
	assert_int_equal(pb_state_commit_send(st, &w, 1, &cw, err, sizeof(err)),
			 PB_OK);
	assert_int_equal(
	    pb_state_mark_published_send(st, &ref, 1, &cm, err, sizeof(err)),
	    PB_OK);
	assert_int_equal(pb_state_fetch_send(st, &v, 1, &cf, err, sizeof(err)),
			 PB_OK);
	/* a whole call now would read the queued replies as its own */
	assert_int_equal(pb_state_ping(st, err, sizeof(err)), PB_ERR_REDIS);
	assert_non_null(strstr(err, "between queued commands"));
	assert_int_equal(pb_state_flush(st, err, sizeof(err)), PB_OK);
	assert_int_equal(pb_state_write_recv(st, &cw, err, sizeof(err)), PB_OK);
	assert_int_equal(pb_state_write_recv(st, &cm, err, sizeof(err)), PB_OK);
	assert_int_equal(pb_state_fetch_recv(st, &cf, &v, 1, err, sizeof(err)),
			 PB_OK);
	assert_int_equal(pb_state_round_trips(st) - rt, 1);
	/* the fetch ran after the commit and the mark, in one write */
	assert_true(v.order.created);
	assert_int_equal(v.mark, PB_MARK_PUBLISHED);
	pb_state_view_clear(&v);
	assert_int_equal(pb_state_ping(st, err, sizeof(err)), PB_OK);
	/* nothing to send: the recv succeeds at once */
	assert_int_equal(pb_state_fetch_send(st, &v, 0, &cf, err, sizeof(err)),
			 PB_OK);
	assert_int_equal(cf.replies, 0);
	assert_int_equal(pb_state_fetch_recv(st, &cf, &v, 0, err, sizeof(err)),
			 PB_OK);
	h_end();
}

static void connection_lost_between_send_and_recv(void **state)
{
	(void)state;
	h_begin("connection_lost_between_send_and_recv");
	char err[256];
	pb_state_view_t v = {
	    .account = "acme", .won = "WO-1", .event_id = "e-1"};
	pb_state_write_t w = write_of("WO-3", "e-3", "{}");
	pb_state_call_t cm, cf;
	assert_int_equal(pb_state_commit_send(st, &w, 1, &cm, err, sizeof(err)),
			 PB_OK);
	assert_int_equal(pb_state_fetch_send(st, &v, 1, &cf, err, sizeof(err)),
			 PB_OK);
	h_redis_kill();
	pb_err_t e = pb_state_flush(st, err, sizeof(err));
	if (!e)
		e = pb_state_write_recv(st, &cm, err, sizeof(err));
	assert_int_equal(e, PB_ERR_REDIS);
	/* the fetch's replies can never come: it fails too, at once */
	assert_int_equal(pb_state_fetch_recv(st, &cf, &v, 1, err, sizeof(err)),
			 PB_ERR_REDIS);
	assert_false(v.exists);
	assert_int_equal(h_redis_restart(), 0);
	/* the next call reconnects (the restarted Redis is empty) */
	assert_int_equal(fetch1(&v, err, sizeof(err)), PB_OK);
	assert_false(v.exists);
	assert_int_equal(v.mark, PB_MARK_NONE);
	pb_state_view_clear(&v);
	h_end();
}

/* Pump until calls are ready, waiting on the socket as the loop does. */
static void await_ready(const pb_state_call_t *calls, size_t n)
{
	for (int i = 0; i < 500; i++) {
		pb_state_pump(st);
		if (pb_state_ready(st, calls, n))
			return;
		int fd = pb_state_fd(st);
		assert_true(fd >= 0);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		poll(&p, 1, 20);
	}
	fail_msg("replies never arrived");
}

static void replies_read_ahead(void **state)
{
	(void)state;
	h_begin("replies_read_ahead");
	char err[256];
	const char *pushed = "{\"workOrderNumber\":\"WO-4\"}";
	pb_state_write_t w = write_of("WO-4", "e-4", pushed);
	pb_state_view_t v = {
	    .account = "acme", .won = "WO-4", .event_id = "e-4"};
	pb_state_call_t cw, cf, cf2;
	assert_int_equal(pb_state_commit_send(st, &w, 1, &cw, err, sizeof(err)),
			 PB_OK);
	assert_int_equal(pb_state_fetch_send(st, &v, 1, &cf, err, sizeof(err)),
			 PB_OK);
	/* nothing is read without a pump */
	assert_false(pb_state_ready(st, &cw, 1));
	assert_int_equal(pb_state_flush(st, err, sizeof(err)), PB_OK);
	pb_state_call_t both[2] = {cw, cf};
	await_ready(both, 2);
	/* everything awaited is in: nothing to poll for */
	assert_int_equal(pb_state_fd(st), -1);
	assert_int_equal(pb_state_write_recv(st, &cw, err, sizeof(err)), PB_OK);
	assert_int_equal(pb_state_fetch_recv(st, &cf, &v, 1, err, sizeof(err)),
			 PB_OK);
	assert_true(v.order.created);
	assert_int_equal(v.mark, PB_MARK_DONE);
	pb_state_view_clear(&v);

	/* A blocking recv reads what the socket holds, the replies of later
	 * calls too (both answers come in one write here); a pump then
	 * finds them in hiredis' buffer with nothing left on the socket. */
	assert_int_equal(pb_state_fetch_send(st, &v, 1, &cf, err, sizeof(err)),
			 PB_OK);
	assert_int_equal(pb_state_fetch_send(st, &v, 1, &cf2, err, sizeof(err)),
			 PB_OK);
	assert_int_equal(pb_state_flush(st, err, sizeof(err)), PB_OK);
	assert_int_equal(pb_state_fetch_recv(st, &cf, &v, 1, err, sizeof(err)),
			 PB_OK);
	pb_state_view_clear(&v);
	pb_state_pump(st);
	assert_true(pb_state_ready(st, &cf2, 1));
	assert_int_equal(pb_state_fetch_recv(st, &cf2, &v, 1, err, sizeof(err)),
			 PB_OK);
	assert_true(v.order.created);
	pb_state_view_clear(&v);

	/* a lost connection: ready at once, and the recv fails */
	assert_int_equal(pb_state_fetch_send(st, &v, 1, &cf, err, sizeof(err)),
			 PB_OK);
	assert_int_equal(pb_state_flush(st, err, sizeof(err)), PB_OK);
	pb_state_disconnect(st);
	assert_true(pb_state_ready(st, &cf, 1));
	assert_int_equal(pb_state_fd(st), -1);
	assert_int_equal(pb_state_fetch_recv(st, &cf, &v, 1, err, sizeof(err)),
			 PB_ERR_REDIS);
	assert_int_equal(pb_state_ping(st, err, sizeof(err)), PB_OK);
	h_end();
}

/*
 * getWorkOrders' change index: written in the order's MULTI/EXEC (a live
 * order scored by its change, a deleted one gone), read in pages that
 * cover every entry once, deleted and never-pushed orders skipped; the
 * since bound cuts older changes. And learned PushKeys read back.
 */
static void change_index_pages(void **state)
{
	(void)state;
	h_begin("change_index_pages");
	char err[256], won[32], id[32], pushed[96];
	for (int i = 0; i < 450; i++) {
		snprintf(won, sizeof(won), "IX-%03d", i);
		snprintf(id, sizeof(id), "ix-%d", i);
		snprintf(pushed, sizeof(pushed),
			 "{\"workOrderNumber\":\"%s\",\"city\":\"Austin\"}",
			 won);
		pb_state_write_t w = write_of(won, id, pushed);
		w.account = "ixacct";
		assert_int_equal(commit1(&w, err, sizeof(err)), PB_OK);
	}
	assert_int_equal(redis_int("ZCARD t:{ixacct}:ix"), 450);
	/* a delete leaves the index in the same transaction */
	pb_state_write_t d = write_of("IX-007", "ix-del", NULL);
	d.account = "ixacct";
	d.set_created = false;
	d.set_deleted = true;
	assert_int_equal(commit1(&d, err, sizeof(err)), PB_OK);
	assert_int_equal(redis_int("ZCARD t:{ixacct}:ix"), 449);
	/* a failed push writes no order: not indexed */
	pb_state_write_t f = write_of("IX-FAIL", "ix-f", NULL);
	f.account = "ixacct";
	f.write_order = false;
	assert_int_equal(commit1(&f, err, sizeof(err)), PB_OK);
	assert_int_equal(redis_int("ZCARD t:{ixacct}:ix"), 449);

	/* pages of 200: 449 entries, each once; after the first page an
	 * order already read and one not yet read change (rescored past the
	 * read's bound), and neither makes the read skip any other */
	int64_t now = pb_wall_ms();
	bool seen[450] = {false};
	size_t total = 0, pages = 0;
	pb_state_cursor_t cur = {0};
	while (!cur.done) {
		pb_state_changed_t *c = NULL;
		size_t n = 0;
		assert_int_equal(pb_state_changed_page(st, "ixacct", -1, now,
						       &cur, 200, &c, &n, err,
						       sizeof(err)),
				 PB_OK);
		for (size_t i = 0; i < n; i++) {
			int k = (int)strtol(c[i].won + 3, NULL, 10);
			assert_false(seen[k]);
			seen[k] = true;
			assert_non_null(strstr(c[i].pushed, c[i].won));
		}
		total += n;
		pb_state_changed_free(c, n);
		if (pages++ == 0) {
			assert_true(seen[0]);
			const char *moved[] = {"IX-000", "IX-300"};
			for (int i = 0; i < 2; i++) {
				pb_state_write_t m =
				    write_of(moved[i], i ? "ix-m1" : "ix-m0",
					     "{\"workOrderNumber\":\"moved\"}");
				m.account = "ixacct";
				/* the index scores whole seconds: the
				 * next one is past the read's bound */
				while (pb_wall_ms() / 1000 <= now / 1000)
					nanosleep(
					    &(struct timespec){.tv_nsec =
								   1000000},
					    NULL);
				assert_int_equal(commit1(&m, err, sizeof(err)),
						 PB_OK);
			}
		}
	}
	pb_state_cursor_clear(&cur);
	/* 449 less IX-300, which moved past the bound before it was read */
	assert_int_equal(total, 448);
	assert_false(seen[7]);
	assert_false(seen[300]);
	for (int i = 0; i < 450; i++)
		if (i != 7 && i != 300 && !seen[i])
			fail_msg("IX-%03d skipped", i);
	/* since after every change: nothing */
	pb_state_changed_t *c = NULL;
	size_t n = 0;
	int64_t after = pb_wall_ms() + 1000;
	assert_int_equal(pb_state_changed_page(st, "ixacct", after, after + 1,
					       &cur, 200, &c, &n, err,
					       sizeof(err)),
			 PB_OK);
	assert_int_equal(n, 0);
	assert_true(cur.done);
	pb_state_changed_free(c, n);
	pb_state_cursor_clear(&cur);
	/* an update rescores: since t1 (a whole second, as Pruvan asks)
	 * finds only it */
	int64_t t1 = (pb_wall_ms() / 1000 + 1) * 1000;
	while (pb_wall_ms() < t1)
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	pb_state_write_t u = write_of("IX-100", "ix-u",
				      "{\"workOrderNumber\":\"IX-100\","
				      "\"city\":\"Round Rock\"}");
	u.account = "ixacct";
	assert_int_equal(commit1(&u, err, sizeof(err)), PB_OK);
	assert_int_equal(pb_state_changed_page(st, "ixacct", t1, pb_wall_ms(),
					       &cur, 200, &c, &n, err,
					       sizeof(err)),
			 PB_OK);
	assert_int_equal(n, 1);
	assert_string_equal(c[0].won, "IX-100");
	assert_non_null(strstr(c[0].pushed, "Round Rock"));
	pb_state_changed_free(c, n);
	pb_state_cursor_clear(&cur);

	/* many orders changed in the same millisecond: ties are ordered by
	 * name and read once each across pages of 3 */
	redisContext *rc = redisConnect("127.0.0.1", h_redis_port());
	for (int i = 0; i < 10; i++) {
		redisReply *rr =
		    redisCommand(rc, "ZADD t:{tie}:ix 5000 T-%02d", i);
		freeReplyObject(rr);
		rr = redisCommand(rc, "HSET t:{tie/T-%02d}:o p {}", i);
		freeReplyObject(rr);
	}
	redisFree(rc);
	total = 0;
	while (!cur.done) {
		assert_int_equal(pb_state_changed_page(st, "tie", -1, 6000,
						       &cur, 3, &c, &n, err,
						       sizeof(err)),
				 PB_OK);
		total += n;
		pb_state_changed_free(c, n);
	}
	pb_state_cursor_clear(&cur);
	assert_int_equal(total, 10);

	/* learned PushKeys */
	const char *accts[] = {"ixacct", "other"};
	char *keys[2];
	int64_t at[2];
	assert_int_equal(pb_state_set_push_key(st, "ixacct", "KEY-1", 1234, err,
					       sizeof(err)),
			 PB_OK);
	assert_int_equal(
	    pb_state_get_push_keys(st, accts, 2, keys, at, err, sizeof(err)),
	    PB_OK);
	assert_string_equal(keys[0], "KEY-1");
	assert_int_equal(at[0], 1234);
	assert_null(keys[1]);
	assert_int_equal(at[1], 0);
	free(keys[0]);
	h_end();
}

/* A command sent straight to Redis, its reply ignored. */
static void redis_do(const char *fmt, ...)
{
	redisContext *c = redisConnect("127.0.0.1", h_redis_port());
	assert_true(c && !c->err);
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
	freeReplyObject(r);
	redisFree(c);
}

/* A busy order keeps every mark within its TTL (a replay of its first
 * event is still a duplicate after 100 more) and no index: "mx" alone
 * says when to prune. An earlier build's hash ("mi", no "mx") is pruned
 * by one HGETALL, its HDEL going with the order's next write: only marks
 * expired more than the grace ago go, and an event replayed in between
 * keeps its new mark (its HSET follows the HDEL). */
static void marks_kept_for_ttl_pruned_by_expiry(void **state)
{
	(void)state;
	h_begin("marks_kept_for_ttl_pruned_by_expiry");
	char err[256], id[32];
	for (int i = 0; i < 101; i++) {
		snprintf(id, sizeof(id), "p-%d", i);
		pb_state_view_t v = {
		    .account = "acme", .won = "WO-P", .event_id = id};
		assert_int_equal(fetch1(&v, err, sizeof(err)), PB_OK);
		assert_int_equal(v.mark, PB_MARK_NONE);
		pb_state_view_clear(&v);
		pb_state_write_t w = write_of("WO-P", id, "{}");
		assert_int_equal(commit1(&w, err, sizeof(err)), PB_OK);
	}
	long long fields = redis_int("HLEN t:{acme/WO-P}:o");
	assert_int_equal(fields - 6 /* c hv v t p mx */, 101);
	assert_true(hash_i64("t:{acme/WO-P}:o", "mx") >
		    (long long)time(NULL) + PB_SMARK_PRUNE_GRACE_S);
	const char *ids[] = {"p-0", "p-100"};
	for (int i = 0; i < 2; i++) {
		pb_state_view_t v = {
		    .account = "acme", .won = "WO-P", .event_id = ids[i]};
		assert_int_equal(fetch1(&v, err, sizeof(err)), PB_OK);
		assert_mark(&v, PB_MARK_DONE, "created", "", 200, 1);
		pb_state_view_clear(&v);
	}

	/* expired marks (as a week-old write leaves them), one expired
	 * within the grace, one live, and an earlier build's index */
	long long now = (long long)time(NULL);
	redis_do("HSET t:{acme/WO-X}:o c 1 m:x-0 D|created||200|1|1000 "
		 "m:x-1 D|created||200|1|1000 m:x-2 D|created||200|1|1000 "
		 "m:x-3 D|created||200|1|1000 m:x-4 D|created||200|1|1000 "
		 "m:x-5 D|created||200|1|1000 m:x-6 D|created||200|1|1000 "
		 "m:x-7 D|created||200|1|1000");
	redis_do("HSET t:{acme/WO-X}:o m:g D|created||200|1|%lld m:l "
		 "D|created||200|1|%lld",
		 now - 60, now + 600);
	redis_do("HSET t:{acme/WO-X}:o mi %s",
		 "1000 x-0\n1000 x-1\n1000 x-2\n1000 x-3\n1000 x-4\n"
		 "1000 x-5\n1000 x-6\n1000 x-7\n");
	pb_state_view_t x = {
	    .account = "acme", .won = "WO-X", .event_id = "x-3"};
	assert_int_equal(fetch1(&x, err, sizeof(err)), PB_OK);
	assert_int_equal(x.mark, PB_MARK_NONE); /* past its expiry */
	assert_true(x.exists);
	pb_state_view_clear(&x);
	pb_state_write_t w = write_of("WO-X", "x-3", "{}");
	assert_int_equal(commit1(&w, err, sizeof(err)), PB_OK);
	/* the commit read the hash; the next write drops what expired */
	assert_int_equal(redis_int("HEXISTS t:{acme/WO-X}:o m:x-0"), 1);
	pb_state_view_t y = {
	    .account = "acme", .won = "WO-X", .event_id = "x-5"};
	assert_int_equal(fetch1(&y, err, sizeof(err)), PB_OK);
	assert_int_equal(y.mark, PB_MARK_NONE); /* replayed after expiry */
	pb_state_view_clear(&y);
	pb_state_write_t w5 = write_of("WO-X", "x-5", "{}");
	assert_int_equal(commit1(&w5, err, sizeof(err)), PB_OK);
	for (int i = 0; i < 8; i++) {
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "HEXISTS t:{acme/WO-X}:o m:x-%d", i);
		assert_int_equal(redis_int(cmd), i == 3 || i == 5 ? 1 : 0);
	}
	assert_int_equal(redis_int("HEXISTS t:{acme/WO-X}:o mi"), 0);
	assert_int_equal(redis_int("HEXISTS t:{acme/WO-X}:o m:g"), 1);
	assert_int_equal(redis_int("HEXISTS t:{acme/WO-X}:o m:l"), 1);
	/* next due with the earliest mark left (m:g), plus the grace */
	assert_int_equal(hash_i64("t:{acme/WO-X}:o", "mx"),
			 now - 60 + PB_SMARK_PRUNE_GRACE_S);
	assert_int_equal(fetch1(&x, err, sizeof(err)), PB_OK);
	assert_mark(&x, PB_MARK_DONE, "created", "", 200, 1);
	pb_state_view_clear(&x);
	assert_int_equal(fetch1(&y, err, sizeof(err)), PB_OK);
	assert_mark(&y, PB_MARK_DONE, "created", "", 200, 1);
	pb_state_view_clear(&y);

	/* an earlier build's hash of marks only (its index, an expiry):
	 * the order's first write keeps it; a new order's hash needs no
	 * PERSIST (none exists) and gets its "mx" */
	redis_do("HSET t:{acme/WO-Y}:o m:y-0 D|rejected|order_unknown|0|0|%lld "
		 "mi %s",
		 now + 600, "99999 y-0\n");
	redis_do("EXPIRE t:{acme/WO-Y}:o 600");
	pb_state_view_t z = {
	    .account = "acme", .won = "WO-Y", .event_id = "y-1"};
	assert_int_equal(fetch1(&z, err, sizeof(err)), PB_OK);
	assert_false(z.exists);
	pb_state_view_clear(&z);
	pb_state_write_t wy = write_of("WO-Y", "y-1", "{}");
	assert_int_equal(commit1(&wy, err, sizeof(err)), PB_OK);
	assert_int_equal(redis_int("TTL t:{acme/WO-Y}:o"), -1);
	assert_int_equal(redis_int("HEXISTS t:{acme/WO-Y}:o m:y-0"), 1);
	h_end();
}

/* An event rejected before its order exists leaves a hash of marks only,
 * which expires; the order's first write makes it permanent. Records
 * rejected as read keep string marks. */
static void marks_only_hash_expires(void **state)
{
	(void)state;
	h_begin("marks_only_hash_expires");
	char err[256];
	pb_state_view_t v = {
	    .account = "acme", .won = "WO-R", .event_id = "r-1"};
	assert_int_equal(fetch1(&v, err, sizeof(err)), PB_OK);
	assert_false(v.exists);
	pb_state_view_clear(&v);
	pb_state_write_t w = {.account = "acme",
			      .won = "WO-R",
			      .event_id = "r-1",
			      .outcome = "rejected",
			      .reason = "order_unknown"};
	assert_int_equal(commit1(&w, err, sizeof(err)), PB_OK);
	assert_true(redis_int("TTL t:{acme/WO-R}:o") > 0);
	pb_state_ref_t ref = {"acme",	       "WO-R", "r-1", "rejected",
			      "order_unknown", 0,      0};
	assert_int_equal(pb_state_mark_published(st, &ref, 1, err, sizeof(err)),
			 PB_OK);
	assert_true(redis_int("TTL t:{acme/WO-R}:o") > 0);
	pb_state_view_t v2 = {
	    .account = "acme", .won = "WO-R", .event_id = "r-2"};
	assert_int_equal(fetch1(&v2, err, sizeof(err)), PB_OK);
	assert_false(v2.exists); /* marks are no order */
	pb_state_view_clear(&v2);
	pb_state_write_t w2 = write_of("WO-R", "r-2", "{}");
	assert_int_equal(commit1(&w2, err, sizeof(err)), PB_OK);
	assert_int_equal(redis_int("TTL t:{acme/WO-R}:o"), -1);
	assert_int_equal(fetch1(&v, err, sizeof(err)), PB_OK);
	assert_mark(&v, PB_MARK_PUBLISHED, "rejected", "order_unknown", 0, 0);
	pb_state_view_clear(&v);

	/* a record's mark */
	pb_state_view_t rv = {.account = PB_STATE_RECORD_ACCOUNT,
			      .won = "orders/3/17",
			      .event_id = "record"};
	assert_int_equal(fetch1(&rv, err, sizeof(err)), PB_OK);
	assert_int_equal(rv.mark, PB_MARK_NONE);
	pb_state_ref_t rr = {PB_STATE_RECORD_ACCOUNT,
			     "orders/3/17",
			     "record",
			     "rejected",
			     "invalid_json",
			     0,
			     0};
	assert_int_equal(pb_state_mark_published(st, &rr, 1, err, sizeof(err)),
			 PB_OK);
	assert_true(redis_int("TTL t:{~/orders/3/17}:m:record") > 0);
	assert_int_equal(redis_int("EXISTS t:{~/orders/3/17}:o"), 0);
	assert_int_equal(fetch1(&rv, err, sizeof(err)), PB_OK);
	assert_mark(&rv, PB_MARK_PUBLISHED, "rejected", "invalid_json", 0, 0);
	pb_state_view_clear(&rv);
	h_end();
}

/* Marks an earlier build wrote (string keys) are read while they may
 * exist: a "done" one is recovered, a "published" one a duplicate, and the
 * outcome published now lands in the hash. A Redis that was empty at this
 * build's first start never reads them. */
static void marks_of_earlier_builds_read(void **state)
{
	(void)state;
	h_begin("marks_of_earlier_builds_read");
	char err[256], url[64];
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", h_redis_port());
	redis_do("SET u:{acme/WO-U}:m:u-1 D|created||200|1 EX 3600");
	redis_do("SET u:{acme/WO-U}:m:u-2 P|updated||200|2 EX 3600");
	redis_do("HSET u:{acme/WO-U}:o c 1 hv 1 v 2");
	pb_state_t *old_st = st, *up = NULL;
	assert_int_equal(
	    pb_state_new(url, "u:", 3600, 2000, &up, err, sizeof(err)), PB_OK);
	st = up;
	pb_state_view_t v = {
	    .account = "acme", .won = "WO-U", .event_id = "u-1"};
	assert_int_equal(fetch1(&v, err, sizeof(err)), PB_OK);
	assert_mark(&v, PB_MARK_DONE, "created", "", 200, 1);
	pb_state_view_clear(&v);
	pb_state_view_t v2 = {
	    .account = "acme", .won = "WO-U", .event_id = "u-2"};
	assert_int_equal(fetch1(&v2, err, sizeof(err)), PB_OK);
	assert_mark(&v2, PB_MARK_PUBLISHED, "updated", "", 200, 2);
	pb_state_view_clear(&v2);
	pb_state_ref_t ref = {"acme", "WO-U", "u-1", "created", NULL, 200, 1};
	assert_int_equal(pb_state_mark_published(st, &ref, 1, err, sizeof(err)),
			 PB_OK);
	assert_int_equal(fetch1(&v, err, sizeof(err)), PB_OK);
	assert_mark(&v, PB_MARK_PUBLISHED, "created", "", 200, 1);
	pb_state_view_clear(&v);
	/* the first commit records until when they are read */
	pb_state_write_t w = write_of("WO-U", "u-3", "{}");
	assert_int_equal(commit1(&w, err, sizeof(err)), PB_OK);
	assert_true(redis_int("STRLEN u:layout") >= 10);
	pb_state_destroy(up);

	/* empty at the first start: string marks are not looked for */
	redis_do("FLUSHALL");
	assert_int_equal(
	    pb_state_new(url, "u:", 3600, 2000, &up, err, sizeof(err)), PB_OK);
	st = up;
	pb_state_view_t e = {
	    .account = "acme", .won = "WO-E", .event_id = "e-1"};
	assert_int_equal(fetch1(&e, err, sizeof(err)), PB_OK);
	assert_int_equal(e.mark, PB_MARK_NONE);
	pb_state_view_clear(&e);
	pb_state_write_t we = write_of("WO-E", "e-1", "{}");
	assert_int_equal(commit1(&we, err, sizeof(err)), PB_OK);
	assert_int_equal(redis_int("STRLEN u:layout"), 1); /* "0" */
	pb_state_destroy(up);
	redis_do("SET u:{acme/WO-E}:m:e-2 P|created||200|1 EX 3600");
	assert_int_equal(
	    pb_state_new(url, "u:", 3600, 2000, &up, err, sizeof(err)), PB_OK);
	st = up;
	pb_state_view_t e2 = {
	    .account = "acme", .won = "WO-E", .event_id = "e-2"};
	assert_int_equal(fetch1(&e2, err, sizeof(err)), PB_OK);
	assert_int_equal(e2.mark, PB_MARK_NONE);
	pb_state_view_clear(&e2);
	pb_state_destroy(up);
	st = old_st;
	h_end();
}

/* A mark one handle reads. */
static pb_mark_t mark_seen_by(pb_state_t *h, const char *won, const char *id)
{
	char err[256];
	pb_state_view_t v = {.account = "acme", .won = won, .event_id = id};
	pb_state_call_t c;
	pb_err_t e = pb_state_fetch_send(h, &v, 1, &c, err, sizeof(err));
	if (!e)
		e = pb_state_flush(h, err, sizeof(err));
	if (!e)
		e = pb_state_fetch_recv(h, &c, &v, 1, err, sizeof(err));
	assert_int_equal(e, PB_OK);
	pb_state_view_clear(&v);
	return v.mark;
}

static void mark_published_split(const pb_state_ref_t *ref)
{
	char err[256];
	pb_state_call_t c;
	assert_int_equal(
	    pb_state_mark_published_send(st, ref, 1, &c, err, sizeof(err)),
	    PB_OK);
	assert_int_equal(pb_state_flush(st, err, sizeof(err)), PB_OK);
	assert_int_equal(pb_state_write_recv(st, &c, err, sizeof(err)), PB_OK);
}

/* "Published" marks wait to go with the order's next write: this handle
 * reads them published at once; another (a crash: the waiting marks are
 * gone) reads "done", so a replay publishes the outcome again, recovered,
 * and never pushes. The next write of the order, an idle ping and the end
 * of the handle write them. */
static void published_marks_written_lazily(void **state)
{
	(void)state;
	h_begin("published_marks_written_lazily");
	char err[256], url[64];
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", h_redis_port());
	pb_state_t *other = NULL;
	assert_int_equal(
	    pb_state_new(url, "t:", 3600, 2000, &other, err, sizeof(err)),
	    PB_OK);
	const char *won[] = {"WO-L1", "WO-L2", "WO-L3"};
	for (int i = 0; i < 3; i++) {
		pb_state_write_t w = write_of(won[i], "l-1", "{}");
		assert_int_equal(commit1(&w, err, sizeof(err)), PB_OK);
		pb_state_ref_t ref = {"acme", won[i], "l-1", "created",
				      NULL,   200,    1};
		mark_published_split(&ref);
		assert_int_equal(mark_seen_by(st, won[i], "l-1"),
				 PB_MARK_PUBLISHED);
		assert_int_equal(mark_seen_by(other, won[i], "l-1"),
				 PB_MARK_DONE);
	}
	/* the order's next event's write carries it */
	assert_int_equal(mark_seen_by(st, "WO-L1", "l-2"), PB_MARK_NONE);
	pb_state_write_t w2 = write_of("WO-L1", "l-2", "{}");
	assert_int_equal(commit1(&w2, err, sizeof(err)), PB_OK);
	assert_int_equal(mark_seen_by(other, "WO-L1", "l-1"),
			 PB_MARK_PUBLISHED);
	assert_int_equal(mark_seen_by(other, "WO-L1", "l-2"), PB_MARK_DONE);
	/* an idle ping writes what waits */
	assert_int_equal(pb_state_ping(st, err, sizeof(err)), PB_OK);
	assert_int_equal(mark_seen_by(other, "WO-L2", "l-1"),
			 PB_MARK_PUBLISHED);
	/* and so does the end of the handle */
	pb_state_ref_t ref3 = {"acme", "WO-L3", "l-2", "updated", NULL, 200, 2};
	pb_state_write_t w3 = write_of("WO-L3", "l-2", "{}");
	assert_int_equal(commit1(&w3, err, sizeof(err)), PB_OK);
	mark_published_split(&ref3);
	assert_int_equal(mark_seen_by(other, "WO-L3", "l-2"), PB_MARK_DONE);
	pb_state_destroy(st);
	assert_int_equal(mark_seen_by(other, "WO-L3", "l-2"),
			 PB_MARK_PUBLISHED);
	st = other;
	h_end();
}

/* A handle on prefix for this Redis (the layout is read at its first
 * call). */
static pb_state_t *handle_on(const char *prefix, int64_t window_s)
{
	char err[256], url[64];
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", h_redis_port());
	pb_state_t *h = NULL;
	assert_int_equal(
	    pb_state_new(url, prefix, 3600, 2000, &h, err, sizeof(err)), PB_OK);
	pb_state_set_upgrade_window(h, window_s);
	return h;
}

/*
 * A rolling update: replicas of an earlier build (string marks only) and
 * of this one share the consumer group, and events are replayed across
 * them. On a Redis that held data, this build reads the earlier marks (a
 * replayed event is a duplicate) and, for the upgrade window, writes
 * every mark as the string key too, so an earlier replica sees this
 * build's marks (a GET, as it reads them) and never pushes again.
 */
static void rolling_upgrade_dual_writes(void **state)
{
	(void)state;
	h_begin("rolling_upgrade_dual_writes");
	char err[256], want[64];
	/* what an earlier build left: a done and a published mark */
	snprintf(want, sizeof(want),
		 "SET v:{acme/WO-V}:m:v-1 D|%d||200|1 EX 3600",
		 (int)PB_OUTCOME_CREATED);
	redis_do(want);
	redis_do("SET v:{acme/WO-V}:m:v-0 P|updated||200|2 EX 3600");
	redis_do("HSET v:{acme/WO-V}:o c 1 hv 1 v 2");
	pb_state_t *old_st = st;
	st = handle_on("v:", 3600);
	pb_state_view_t v = {
	    .account = "acme", .won = "WO-V", .event_id = "v-1"};
	assert_int_equal(fetch1(&v, err, sizeof(err)), PB_OK);
	assert_mark(&v, PB_MARK_DONE, "created", "", 200, 1); /* a replay */
	pb_state_view_clear(&v);
	pb_state_view_t v0 = {
	    .account = "acme", .won = "WO-V", .event_id = "v-0"};
	assert_int_equal(fetch1(&v0, err, sizeof(err)), PB_OK);
	assert_mark(&v0, PB_MARK_PUBLISHED, "updated", "", 200, 2);
	pb_state_view_clear(&v0);

	/* this build's event: hash mark and string mark, one MULTI/EXEC */
	pb_state_view_t v2 = {
	    .account = "acme", .won = "WO-V", .event_id = "v-2"};
	assert_int_equal(fetch1(&v2, err, sizeof(err)), PB_OK);
	assert_int_equal(v2.mark, PB_MARK_NONE);
	pb_state_view_clear(&v2);
	pb_state_write_t w = write_of("WO-V", "v-2", "{}");
	assert_int_equal(commit1(&w, err, sizeof(err)), PB_OK);
	assert_int_equal(redis_int("HEXISTS v:{acme/WO-V}:o m:v-2"), 1);
	assert_true(redis_int("TTL v:{acme/WO-V}:m:v-2") > 0);
	char *raw = redis_str("GET v:{acme/WO-V}:m:v-2");
	assert_non_null(raw);
	snprintf(want, sizeof(want), "D|%d||200|1", (int)PB_OUTCOME_CREATED);
	assert_string_equal(raw, want); /* an earlier build reads this */
	free(raw);
	/* the layout key holds when this layout first started (Unix s) */
	raw = redis_str("GET v:layout");
	assert_non_null(raw);
	assert_true(strlen(raw) >= 10);
	free(raw);
	/* published: the string mark at once (earlier replicas read it) */
	pb_state_ref_t ref = {"acme", "WO-V", "v-2", "created", NULL, 200, 1};
	pb_state_call_t c;
	assert_int_equal(
	    pb_state_mark_published_send(st, &ref, 1, &c, err, sizeof(err)),
	    PB_OK);
	assert_int_equal(pb_state_flush(st, err, sizeof(err)), PB_OK);
	assert_int_equal(pb_state_write_recv(st, &c, err, sizeof(err)), PB_OK);
	raw = redis_str("GET v:{acme/WO-V}:m:v-2");
	assert_non_null(raw);
	assert_int_equal(raw[0], 'P');
	free(raw);
	assert_int_equal(mark_seen_by(st, "WO-V", "v-2"), PB_MARK_PUBLISHED);
	/* an event that leaves its order alone: its string mark only, no
	 * hash an earlier replica could later fill without knowing it
	 * expires */
	pb_state_write_t r = {.account = "acme",
			      .won = "WO-V9",
			      .event_id = "r-1",
			      .outcome = "rejected",
			      .reason = "order_unknown"};
	assert_int_equal(commit1(&r, err, sizeof(err)), PB_OK);
	assert_int_equal(redis_int("EXISTS v:{acme/WO-V9}:o"), 0);
	assert_true(redis_int("TTL v:{acme/WO-V9}:m:r-1") > 0);
	assert_int_equal(mark_seen_by(st, "WO-V9", "r-1"), PB_MARK_DONE);
	pb_state_destroy(st);

	/* a second replica of this build keeps the first one's layout */
	st = handle_on("v:", 3600);
	assert_int_equal(mark_seen_by(st, "WO-V", "v-1"), PB_MARK_DONE);
	pb_state_destroy(st);
	st = old_st;
	h_end();
}

/* After the upgrade window (here 0) only the hash mark is written, while
 * earlier marks are still read for one dedupe TTL; past that too, no
 * string mark is read or written. */
static void upgrade_window_ends(void **state)
{
	(void)state;
	h_begin("upgrade_window_ends");
	char err[256], cmd[96];
	redis_do("SET w:{acme/WO-W}:m:w-1 P|created||200|1 EX 3600");
	pb_state_t *old_st = st;
	st = handle_on("w:", 0);
	assert_int_equal(mark_seen_by(st, "WO-W", "w-1"), PB_MARK_PUBLISHED);
	pb_state_write_t w = write_of("WO-W", "w-2", "{}");
	assert_int_equal(commit1(&w, err, sizeof(err)), PB_OK);
	assert_int_equal(redis_int("HEXISTS w:{acme/WO-W}:o m:w-2"), 1);
	assert_int_equal(redis_int("EXISTS w:{acme/WO-W}:m:w-2"), 0);
	pb_state_destroy(st);
	/* the layout started longer ago than window + TTL */
	snprintf(cmd, sizeof(cmd), "SET w:layout %lld",
		 (long long)(time(NULL) - 3600 - 3600 - 10));
	redis_do(cmd);
	st = handle_on("w:", 3600);
	assert_int_equal(mark_seen_by(st, "WO-W", "w-1"), PB_MARK_NONE);
	pb_state_write_t w3 = write_of("WO-W", "w-3", "{}");
	assert_int_equal(commit1(&w3, err, sizeof(err)), PB_OK);
	assert_int_equal(redis_int("EXISTS w:{acme/WO-W}:m:w-3"), 0);
	pb_state_destroy(st);
	st = old_st;
	h_end();
}

/* Field f of order WO-U's hash, as stored (owned; NULL: none). */
static char *u_field(const char *f)
{
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "HGET t:{acme/WO-U}:o %s", f);
	return redis_str(cmd);
}

static void assert_u_field(const char *f, const char *want)
{
	char *got = u_field(f);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

/* Sentinels in place of WO-U's order fields: a commit that writes a field
 * replaces its sentinel, one that leaves it does not. */
static void u_plant(void)
{
	redis_do("HSET t:{acme/WO-U}:o c s-c hv s-hv v s-v t s-t");
}

static void u_fetch(pb_state_view_t *v, const char *id)
{
	char err[256];
	*v =
	    (pb_state_view_t){.account = "acme", .won = "WO-U", .event_id = id};
	assert_int_equal(fetch1(v, err, sizeof(err)), PB_OK);
}

static void u_commit(pb_state_write_t *w, const pb_state_view_t *fetched)
{
	char err[256];
	w->fetched = fetched;
	assert_int_equal(commit1(w, err, sizeof(err)), PB_OK);
}

static void unchanged_order_fields_not_rewritten(void **state)
{
	(void)state;
	h_begin("unchanged_order_fields_not_rewritten");
	const unsigned all = PB_STATE_STORED_CREATED | PB_STATE_STORED_HV |
			     PB_STATE_STORED_V | PB_STATE_STORED_T;
	pb_state_view_t v;
	u_fetch(&v, "u-1");
	assert_false(v.exists);
	assert_int_equal(v.stored, 0); /* nothing stored: all is written */
	pb_state_write_t w = write_of("WO-U", "u-1", "{}");
	u_commit(&w, &v);
	assert_u_field("hv", "1");
	assert_u_field("v", "3");
	pb_state_view_clear(&v);

	/* the same values as fetched: left as they are (the sentinels
	 * planted after the fetch stay), the mark and "p" written */
	u_fetch(&v, "u-2");
	assert_int_equal(v.stored, all);
	u_plant();
	w = write_of("WO-U", "u-2", "{\"a\":1}");
	u_commit(&w, &v);
	assert_u_field("c", "s-c");
	assert_u_field("hv", "s-hv");
	assert_u_field("v", "s-v");
	assert_u_field("t", "s-t");
	assert_u_field("p", "{\"a\":1}");
	assert_int_equal(redis_int("HEXISTS t:{acme/WO-U}:o m:u-2"), 1);
	/* a new version and occurredAt are written, the rest left */
	w = write_of("WO-U", "u-3", NULL);
	w.version = 4;
	w.occurred_ms = 1795881600124LL;
	u_commit(&w, &v);
	assert_u_field("v", "4");
	assert_u_field("t", "1795881600124");
	assert_u_field("hv", "s-hv");
	assert_u_field("c", "s-c");
	/* without a version now: hv and v change */
	w = write_of("WO-U", "u-4", NULL);
	w.has_version = false;
	u_commit(&w, &v);
	assert_u_field("hv", "0");
	assert_u_field("v", "0");
	assert_u_field("c", "s-c");
	/* any doubt writes every field: no fetch, another order's, a write
	 * without a mark, a fetch on an earlier connection */
	u_plant();
	w = write_of("WO-U", "u-5", NULL);
	u_commit(&w, NULL);
	assert_u_field("c", "1");
	assert_u_field("hv", "1");
	assert_u_field("v", "3");
	assert_u_field("t", "1795881600123");
	pb_state_view_clear(&v);
	w = write_of("WO-V", "v-1", NULL);
	u_commit(&w, NULL);
	pb_state_view_t o = {.account = "acme", .won = "WO-V"};
	char err[256];
	assert_int_equal(fetch1(&o, err, sizeof(err)), PB_OK);
	assert_int_equal(o.stored, all);
	u_plant();
	w = write_of("WO-U", "u-6", NULL);
	u_commit(&w, &o);
	assert_u_field("hv", "1");
	pb_state_view_clear(&o);
	u_fetch(&v, "u-7");
	assert_int_equal(v.stored, all);
	u_plant();
	w = write_of("WO-U", NULL, NULL);
	u_commit(&w, &v);
	assert_u_field("hv", "1");
	assert_u_field("t", "1795881600123");
	pb_state_view_clear(&v);
	u_fetch(&v, "u-8");
	pb_state_disconnect(st);
	assert_int_equal(pb_state_ping(st, err, sizeof(err)), PB_OK);
	u_plant();
	w = write_of("WO-U", "u-8", NULL);
	u_commit(&w, &v);
	assert_u_field("hv", "1");
	assert_u_field("v", "3");
	pb_state_view_clear(&v);
	/* a field read in another form than a commit writes ("01" reads as
	 * 1) is written again */
	redis_do("HSET t:{acme/WO-U}:o hv 01 v 03");
	u_fetch(&v, "u-9");
	assert_true(v.order.has_version);
	assert_int_equal(v.order.version, 3);
	assert_int_equal(v.stored, PB_STATE_STORED_CREATED | PB_STATE_STORED_T);
	w = write_of("WO-U", "u-9", NULL);
	u_commit(&w, &v);
	assert_u_field("hv", "1");
	assert_u_field("v", "3");
	pb_state_view_clear(&v);
	h_end();
}

/* A hash of marks only that learned a Key1 (relayed data came before the
 * order's first event) still holds no order: the order's first write makes
 * it stay. */
static void learned_key1_is_no_order(void **state)
{
	(void)state;
	h_begin("learned_key1_is_no_order");
	char err[256];
	pb_state_view_t v = {
	    .account = "acme", .won = "WO-K", .event_id = "k-1"};
	assert_int_equal(fetch1(&v, err, sizeof(err)), PB_OK);
	pb_state_view_clear(&v);
	pb_state_write_t w = {.account = "acme",
			      .won = "WO-K",
			      .event_id = "k-1",
			      .outcome = "relayed",
			      .learn_key1 = "K1-9"};
	assert_int_equal(commit1(&w, err, sizeof(err)), PB_OK);
	assert_true(redis_int("TTL t:{acme/WO-K}:o") > 0);
	pb_state_view_t v2 = {
	    .account = "acme", .won = "WO-K", .event_id = "k-2"};
	assert_int_equal(fetch1(&v2, err, sizeof(err)), PB_OK);
	assert_string_equal(v2.key1_learned, "K1-9");
	pb_state_view_clear(&v2);
	pb_state_write_t w2 = write_of("WO-K", "k-2", "{}");
	assert_int_equal(commit1(&w2, err, sizeof(err)), PB_OK);
	assert_int_equal(redis_int("TTL t:{acme/WO-K}:o"), -1);
	h_end();
}

/* The learned Key1 is read only for an event that may use it: a fetch
 * that skips it reads the rest as before (the mark after the order's
 * fields), and a hash holding only a Key1 and marks is no order. */
static void key1_read_only_when_usable(void **state)
{
	(void)state;
	h_begin("key1_read_only_when_usable");
	char err[256];
	/* a layout without earlier builds: marks in the hash only, so the
	 * mark read is the HMGET's */
	redis_do("SET k:layout 0");
	pb_state_t *old_st = st;
	st = handle_on("k:", 0);
	pb_state_write_t w = write_of("WO-J", "j-1", "{}");
	w.learn_key1 = "K1-J";
	assert_int_equal(commit1(&w, err, sizeof(err)), PB_OK);
	pb_state_view_t v = {.account = "acme",
			     .won = "WO-J",
			     .event_id = "j-1",
			     .skip_key1 = true};
	assert_int_equal(fetch1(&v, err, sizeof(err)), PB_OK);
	assert_true(v.exists);
	assert_true(v.order.created);
	assert_int_equal(v.order.version, 3);
	assert_null(v.key1_learned);
	assert_mark(&v, PB_MARK_DONE, "created", "", 200, 1);
	pb_state_view_clear(&v);
	v.skip_key1 = false;
	assert_int_equal(fetch1(&v, err, sizeof(err)), PB_OK);
	assert_string_equal(v.key1_learned, "K1-J");
	assert_mark(&v, PB_MARK_DONE, "created", "", 200, 1);
	pb_state_view_clear(&v);

	pb_state_write_t r = {.account = "acme",
			      .won = "WO-L",
			      .event_id = "l-1",
			      .outcome = "relayed",
			      .learn_key1 = "K1-L"};
	assert_int_equal(commit1(&r, err, sizeof(err)), PB_OK);
	pb_state_view_t l = {.account = "acme",
			     .won = "WO-L",
			     .event_id = "l-1",
			     .skip_key1 = true};
	assert_int_equal(fetch1(&l, err, sizeof(err)), PB_OK);
	assert_false(l.exists);
	assert_mark(&l, PB_MARK_DONE, "relayed", "", 0, 0);
	pb_state_view_clear(&l);
	pb_state_write_t o = write_of("WO-L", "l-2", "{}");
	assert_int_equal(commit1(&o, err, sizeof(err)), PB_OK);
	assert_int_equal(redis_int("TTL k:{acme/WO-L}:o"), -1);
	assert_int_equal(redis_int("EXISTS k:{acme/WO-J}:m:j-1"), 0);
	pb_state_destroy(st);
	st = old_st;
	h_end();
}

/* An ACL user that may not run DBSIZE cannot tell an empty Redis from one
 * an earlier build wrote to: that counts as data (an upgrade), never as a
 * fresh deployment, even on a Redis that is empty. */
static void layout_dbsize_refused_counts_as_data(void **state)
{
	(void)state;
	h_begin("layout_dbsize_refused_counts_as_data");
	redis_do("FLUSHALL");
	redis_do("ACL SETUSER nodbsize on >pw ~* &* +@all -dbsize");
	char url[96], err[256];
	snprintf(url, sizeof(url), "redis://nodbsize:pw@127.0.0.1:%d/0",
		 h_redis_port());
	pb_state_t *old_st = st, *h = NULL;
	assert_int_equal(
	    pb_state_new(url, "nd:", 3600, 2000, &h, err, sizeof(err)), PB_OK);
	st = h;
	pb_state_view_t v = {
	    .account = "acme", .won = "WO-ND", .event_id = "nd-1"};
	assert_int_equal(fetch1(&v, err, sizeof(err)), PB_OK);
	pb_state_view_clear(&v);
	pb_state_write_t w = write_of("WO-ND", "nd-1", "{}");
	assert_int_equal(commit1(&w, err, sizeof(err)), PB_OK);
	assert_true(redis_int("STRLEN nd:layout") >= 10); /* a Unix second */
	pb_state_destroy(h);
	st = old_st;
	redis_do("ACL DELUSER nodbsize");
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(recorded_order_reads_back),
	    cmocka_unit_test(split_calls_in_one_round_trip),
	    cmocka_unit_test(connection_lost_between_send_and_recv),
	    cmocka_unit_test(replies_read_ahead),
	    cmocka_unit_test(change_index_pages),
	    cmocka_unit_test(marks_kept_for_ttl_pruned_by_expiry),
	    cmocka_unit_test(marks_only_hash_expires),
	    cmocka_unit_test(marks_of_earlier_builds_read),
	    cmocka_unit_test(published_marks_written_lazily),
	    cmocka_unit_test(rolling_upgrade_dual_writes),
	    cmocka_unit_test(upgrade_window_ends),
	    cmocka_unit_test(unchanged_order_fields_not_rewritten),
	    cmocka_unit_test(learned_key1_is_no_order),
	    cmocka_unit_test(key1_read_only_when_usable),
	    cmocka_unit_test(layout_dbsize_refused_counts_as_data),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
