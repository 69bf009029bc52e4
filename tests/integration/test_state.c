/*
 * The Redis state against a real redis-server: an order recorded and read
 * back, the published mark, and the split calls the loop overlaps with its
 * own work (send, flush, recv in order; a whole call refused while replies
 * are outstanding; a connection lost between send and recv fails every
 * outstanding recv and the next call reconnects), and replies read ahead
 * without blocking (pump, ready) for a loop that keeps several calls out.
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

#include <cmocka.h>

#include <hiredis/hiredis.h>

#include "harness.h"
#include "outcome.h"
#include "state.h"

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
	/* one string key per mark, expiring, holding codes, not names */
	assert_true(redis_int("TTL t:{acme/WO-1}:m:e-1b") > 0);
	char *raw = redis_str("GET t:{acme/WO-1}:m:e-1b");
	assert_non_null(raw);
	char want[64];
	snprintf(want, sizeof(want), "P|%d|%d|422|3", (int)PB_OUTCOME_REJECTED,
		 (int)PB_REASON_ORDER_DELETED);
	assert_string_equal(raw, want);
	free(raw);
	/* a mark written by an earlier build (names) reads back alike */
	raw =
	    redis_str("SET t:{acme/WO-1}:m:e-old P|created|stale|200|2 EX 60");
	assert_non_null(raw);
	assert_string_equal(raw, "OK");
	free(raw);
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
	pb_state_ref_t ref = {"acme", "WO-3", "e-3", "created", NULL, 200, 1};
	pb_state_call_t cm, cf;
	assert_int_equal(
	    pb_state_mark_published_send(st, &ref, 1, &cm, err, sizeof(err)),
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
				while (pb_wall_ms() <= now)
					;
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
	/* an update rescores: since t1 finds only it */
	int64_t t1 = pb_wall_ms() + 1;
	while (pb_wall_ms() < t1)
		;
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(recorded_order_reads_back),
	    cmocka_unit_test(split_calls_in_one_round_trip),
	    cmocka_unit_test(connection_lost_between_send_and_recv),
	    cmocka_unit_test(replies_read_ahead),
	    cmocka_unit_test(change_index_pages),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
