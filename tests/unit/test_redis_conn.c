/*
 * test_redis_conn.c: redis.url as the connection layer reads it (ACL users
 * with percent-decoded credentials, IPv6 hosts, rediss://, databases) and
 * the connect failure that names its step, and a long pipelined stream of
 * replies read back whole and in order, waiting and not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <hiredis/read.h>
#include <stdbool.h>

#include "config.h"
#include "redis_cluster.h"
#include "redis_conn.h"

static void test_acl_user_decoded(void **state)
{
	(void)state;
	pb_redis_url_t u;
	assert_int_equal(
	    pb_redis_url_parse("redis://pb%40user:p%3Ass%2Fw@h:6380/3", &u,
			       NULL, 0),
	    PB_OK);
	assert_string_equal(u.user, "pb@user");
	assert_string_equal(u.password, "p:ss/w");
	assert_string_equal(u.host, "h");
	assert_int_equal(u.port, 6380);
	assert_int_equal(u.db, 3);
	assert_false(u.tls);
	pb_redis_url_clear(&u);
}

static void test_password_only_and_tls(void **state)
{
	(void)state;
	pb_redis_url_t u;
	assert_int_equal(
	    pb_redis_url_parse("rediss://:secret@cache.example", &u, NULL, 0),
	    PB_OK);
	assert_null(u.user);
	assert_string_equal(u.password, "secret");
	assert_true(u.tls);
	assert_int_equal(u.port, 6379);
	assert_int_equal(u.db, 0);
	pb_redis_url_clear(&u);
}

static void test_ipv6(void **state)
{
	(void)state;
	pb_redis_url_t u;
	assert_int_equal(
	    pb_redis_url_parse("redis://[::1]:7000/1", &u, NULL, 0), PB_OK);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 7000);
	assert_int_equal(u.db, 1);
	pb_redis_url_clear(&u);
}

static void test_unix(void **state)
{
	(void)state;
	pb_redis_url_t u;
	assert_int_equal(
	    pb_redis_url_parse("unix:///run/redis.sock", &u, NULL, 0), PB_OK);
	assert_string_equal(u.unix_path, "/run/redis.sock");
	pb_redis_url_clear(&u);
}

static void test_refused_without_echo(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "http://:hunter2@h",     "redis://:hunter2@h:0",
	    "redis://:hunter2@h/16", "redis://:hunter2@h/x",
	    "redis://:hunter2@",     "redis://h?db=1",
	    "redis://h x",	     "unix://",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pb_redis_url_t u;
		char e[512];
		assert_int_equal(pb_redis_url_parse(bad[i], &u, e, sizeof(e)),
				 PB_ERR_CONFIG);
		assert_non_null(strstr(e, "not a Redis URL"));
		assert_null(strstr(e, "hunter2"));
	}
}

/* Each failed step says which it was. */
static void test_failure_names_step(void **state)
{
	(void)state;
	struct {
		const char *url;
		pb_rc_fail_t step;
		const char *prefix;
	} cases[] = {
	    {"redis://no-such-host.invalid:6379", PB_RC_DNS, "Redis DNS: "},
	    /* port 1 on loopback: nothing listens there */
	    {"redis://127.0.0.1:1", PB_RC_TCP, "Redis TCP: "},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pb_redis_opts_t o = {.url = cases[i].url, .timeout_ms = 2000};
		pb_redis_t *r = NULL;
		assert_int_equal(pb_redis_new(&o, &r, NULL, 0), PB_OK);
		pb_rconn_t *c = NULL;
		pb_rc_fail_t f;
		char e[512];
		assert_int_equal(pb_redis_dial(r, &c, &f, e, sizeof(e)),
				 PB_ERR_REDIS);
		assert_int_equal(f, cases[i].step);
		assert_memory_equal(e, cases[i].prefix,
				    strlen(cases[i].prefix));
		pb_redis_destroy(r);
	}
}

static void test_user_needs_password(void **state)
{
	(void)state;
	pb_redis_opts_t o = {.url = "redis://pbuser@h"};
	pb_redis_t *r = NULL;
	char e[512];
	assert_int_equal(pb_redis_new(&o, &r, e, sizeof(e)), PB_ERR_CONFIG);
	assert_non_null(strstr(e, "pbuser"));
	o.password = "pw";
	assert_int_equal(pb_redis_new(&o, &r, e, sizeof(e)), PB_OK);
	pb_redis_destroy(r);
}

static void test_tls_files_checked(void **state)
{
	(void)state;
	pb_redis_opts_t o = {.url = "rediss://h",
			     .tls = true,
			     .tls_verify = true,
			     .ca_file = "/nonexistent/ca.pem"};
	pb_redis_t *r = NULL;
	char e[512];
	assert_int_equal(pb_redis_new(&o, &r, e, sizeof(e)), PB_ERR_CONFIG);
	assert_non_null(strstr(e, "redis.tls.caFile"));
}

/* config/redis-production.example.json loads, and says what it shows. */
static void test_production_example(void **state)
{
	(void)state;
	setenv("REDIS_PASSWORD", "hunter2", 1);
	setenv("REDIS_SENTINEL_PASSWORD", "hunter3", 1);
	setenv("ACME_PUSHKEY_URL", "https://direct.pruvan.com/api/?apiKey=K",
	       1);
	pb_config_t *cfg = NULL;
	char e[4096];
	assert_int_equal(pb_config_load(PB_SOURCE_DIR
					"/config/redis-production.example.json",
					&cfg, e, sizeof(e)),
			 PB_OK);
	assert_string_equal(cfg->redis_password, "hunter2");
	assert_true(cfg->redis_tls && cfg->redis_tls_verify);
	assert_string_equal(cfg->redis_sentinel_master, "mymaster");
	assert_int_equal(cfg->redis_sentinel_nodes_len, 3);
	assert_int_equal(cfg->redis_min_replicas, 1);
	assert_non_null(cfg->pruvan_proxy);
	char *d = pb_config_describe(cfg);
	assert_non_null(d);
	assert_null(strstr(d, "hunter"));
	free(d);
	pb_config_destroy(cfg);
}

/* Redis Cluster's key slots (values from the Cluster specification). */
static void test_cluster_slots(void **state)
{
	(void)state;
	assert_int_equal(pb_cluster_slot("123456789", 9), 0x31C3 % 16384);
	assert_int_equal(pb_cluster_slot("foo", 3), 12182);
	/* a hash tag routes by its content: one order, one slot */
	assert_int_equal(pb_cluster_slot("pb:{acme/WO-1}:o", 16),
			 pb_cluster_slot("acme/WO-1", 9));
	assert_int_equal(pb_cluster_slot("pb:{acme/WO-1}:m:e1", 19),
			 pb_cluster_slot("pb:{acme/WO-1}:o", 16));
}

/* The node addresses Sentinel and Cluster answer with. */
static void test_split_hostport(void **state)
{
	(void)state;
	char host[16] = "untouched";
	int port = 7;
	assert_true(pb_redis_split_hostport("10.0.0.5:6380", host, sizeof(host),
					    &port));
	assert_string_equal(host, "10.0.0.5");
	assert_int_equal(port, 6380);
	assert_true(
	    pb_redis_split_hostport("[::1]:26379", host, sizeof(host), &port));
	assert_string_equal(host, "::1");
	assert_int_equal(port, 26379);
	/* an address without brackets is split at its last colon */
	assert_true(
	    pb_redis_split_hostport("fe80::2:7000", host, sizeof(host), &port));
	assert_string_equal(host, "fe80::2");
	assert_int_equal(port, 7000);
	memcpy(host, "untouched", sizeof("untouched"));
	port = 7;
	assert_false(
	    pb_redis_split_hostport("[::1:6379", host, sizeof(host), &port));
	assert_false(
	    pb_redis_split_hostport(":6379", host, sizeof(host), &port));
	assert_false(
	    pb_redis_split_hostport("host:0", host, sizeof(host), &port));
	assert_false(
	    pb_redis_split_hostport("host:65536", host, sizeof(host), &port));
	assert_false(
	    pb_redis_split_hostport("host", host, sizeof(host), &port));
	assert_false(pb_redis_split_hostport("a-host-name-too-long:1", host,
					     sizeof(host), &port));
	assert_string_equal(host, "untouched");
	assert_int_equal(port, 7);
}

/* ---- a stream of replies ------------------------------------------------
 * A fake server on a unix socket writes N replies at once (integers, bulks
 * of 0..699 bytes, arrays, one bulk of BIG bytes in the middle), more than
 * the socket buffer and many of the reader's slices, so replies straddle
 * every boundary; each must come back whole and in order. */
enum { N_REPLIES = 20000, BIG = 300000 };

static size_t reply_len(int i)
{
	return i == N_REPLIES / 2 ? BIG : (size_t)(i % 700);
}

static size_t put_reply(char *p, int i)
{
	if (i % 7 == 3)
		return (size_t)snprintf(p, 64, "*2\r\n:%d\r\n$1\r\nx\r\n", i);
	if (i % 2)
		return (size_t)snprintf(p, 32, ":%d\r\n", i);
	size_t len = reply_len(i);
	size_t h = (size_t)snprintf(p, 32, "$%zu\r\n", len);
	memset(p + h, 'a' + i % 26, len);
	memcpy(p + h + len, "\r\n", 2);
	return h + len + 2;
}

struct fake {
	int lfd;
	char *blob;
	size_t len;
};

static void *fake_serve(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	for (size_t off = 0; off < f->len;) {
		ssize_t n = write(fd, f->blob + off, f->len - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	char b[16];
	while (read(fd, b, sizeof(b)) > 0) /* until the client closes */
		;
	close(fd);
	return NULL;
}

static void check_reply(const redisReply *r, int i)
{
	assert_non_null(r);
	if (i % 7 == 3) {
		assert_int_equal(r->type, REDIS_REPLY_ARRAY);
		assert_int_equal(r->elements, 2);
		assert_int_equal(r->element[0]->integer, i);
		assert_string_equal(r->element[1]->str, "x");
	} else if (i % 2) {
		assert_int_equal(r->type, REDIS_REPLY_INTEGER);
		assert_int_equal(r->integer, i);
	} else {
		assert_int_equal(r->type, REDIS_REPLY_STRING);
		size_t len = reply_len(i);
		assert_int_equal(r->len, len);
		for (size_t k = 0; k < len; k++)
			assert_int_equal(r->str[k], 'a' + i % 26);
	}
}

static void test_reply_stream(void **state)
{
	(void)state;
	char dir[] = "/tmp/pb-rconn-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", dir);
	struct fake f = {.lfd = socket(AF_UNIX, SOCK_STREAM, 0)};
	assert_true(f.lfd >= 0);
	assert_int_equal(bind(f.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f.lfd, 1), 0);
	f.blob = malloc((size_t)N_REPLIES * 800 + BIG);
	assert_non_null(f.blob);
	for (int i = 0; i < N_REPLIES; i++)
		f.len += put_reply(f.blob + f.len, i);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, fake_serve, &f), 0);

	char url[200];
	snprintf(url, sizeof(url), "unix://%s", sa.sun_path);
	pb_redis_opts_t o = {.url = url, .timeout_ms = 10000};
	pb_redis_t *r = NULL;
	assert_int_equal(pb_redis_new(&o, &r, NULL, 0), PB_OK);
	pb_rconn_t *c = NULL;
	char e[512];
	assert_int_equal(pb_redis_dial(r, &c, NULL, e, sizeof(e)), PB_OK);
	int i = 0;
	for (; i < N_REPLIES / 3; i++) { /* waiting for each */
		redisReply *rep = NULL;
		assert_int_equal(pb_rconn_reply(c, true, &rep, e, sizeof(e)),
				 PB_OK);
		check_reply(rep, i);
		pb_reply_free(rep);
	}
	while (i < N_REPLIES) { /* as the worker pumps: poll, take all */
		struct pollfd p = {.fd = pb_rconn_fd(c), .events = POLLIN};
		assert_true(poll(&p, 1, 10000) >= 0);
		redisReply *rep = NULL;
		while (i < N_REPLIES &&
		       pb_rconn_reply(c, false, &rep, e, sizeof(e)) == PB_OK &&
		       rep) {
			check_reply(rep, i++);
			pb_reply_free(rep);
		}
	}
	pb_rconn_close(c);
	pthread_join(th, NULL);
	pb_redis_destroy(r);
	close(f.lfd);
	free(f.blob);
	unlink(sa.sun_path);
	rmdir(dir);
}

/* Whether two reply trees hold the same types, values and shapes. */
static bool same_tree(const redisReply *a, const redisReply *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case REDIS_REPLY_INTEGER:
		return a->integer == b->integer;
	case REDIS_REPLY_ARRAY:
		if (a->elements != b->elements)
			return false;
		for (size_t i = 0; i < a->elements; i++)
			if (!same_tree(a->element[i], b->element[i]))
				return false;
		return true;
	case REDIS_REPLY_NIL:
		return true;
	default: /* string, status, error */
		return a->len == b->len && !memcmp(a->str, b->str, a->len) &&
		       a->str[a->len] == '\0';
	}
}

/* Every reply of text, fed step bytes at a time to both readers. */
static void compare_readers(const char *text, size_t len, size_t step)
{
	redisReader *mine = pb_reply_reader_new(), *ref = redisReaderCreate();
	assert_non_null(mine);
	assert_non_null(ref);
	size_t fed = 0, replies = 0;
	for (;;) {
		void *a = NULL, *b = NULL;
		assert_int_equal(redisReaderGetReply(mine, &a), REDIS_OK);
		assert_int_equal(redisReaderGetReply(ref, &b), REDIS_OK);
		assert_true((a == NULL) == (b == NULL));
		if (a) {
			assert_true(same_tree(a, b));
			pb_reply_free(a);
			freeReplyObject(b);
			replies++;
			continue;
		}
		if (fed == len)
			break;
		size_t n = len - fed < step ? len - fed : step;
		assert_int_equal(redisReaderFeed(mine, text + fed, n),
				 REDIS_OK);
		assert_int_equal(redisReaderFeed(ref, text + fed, n), REDIS_OK);
		fed += n;
	}
	assert_true(replies > 0);
	redisReaderFree(mine);
	redisReaderFree(ref);
}

/* The one-block trees (redis_reply.h) read as hiredis's own: scalars,
 * nils, empty and nested arrays, strings longer than an array's room,
 * whole or a byte at a time; a tree cut off by a protocol error or left
 * half read in the reader is released with it (the sanitizer build sees
 * a leak or a bad free). */
static void test_reply_trees_match_hiredis(void **state)
{
	(void)state;
	char big[6000];
	memset(big, 'x', sizeof(big));
	char *text = malloc(64 * 1024);
	assert_non_null(text);
	int n = snprintf(text, 64 * 1024,
			 "+OK\r\n-ERR wrong\r\n:42\r\n:-7\r\n$-1\r\n*-1\r\n"
			 "*0\r\n$0\r\n\r\n$5\r\nhello\r\n"
			 "*3\r\n$1\r\na\r\n$-1\r\n:1\r\n"
			 "*2\r\n*2\r\n:1\r\n*1\r\n$2\r\nab\r\n*0\r\n"
			 "*2\r\n$%zu\r\n%.*s\r\n$3\r\nend\r\n"
			 "$%zu\r\n%.*s\r\n",
			 sizeof(big), (int)sizeof(big), big, sizeof(big),
			 (int)sizeof(big), big);
	assert_true(n > 0 && n < 64 * 1024);
	compare_readers(text, (size_t)n, (size_t)n);
	compare_readers(text, (size_t)n, 1);
	compare_readers(text, (size_t)n, 7);
	/* 200 elements of 100 bytes: beyond the room an array starts with */
	size_t k = (size_t)snprintf(text, 64 * 1024, "*200\r\n");
	for (int i = 0; i < 200; i++)
		k += (size_t)snprintf(text + k, 64 * 1024 - k,
				      "$100\r\n%.100s\r\n", big);
	compare_readers(text, k, k);
	free(text);

	redisReader *rd = pb_reply_reader_new();
	const char half[] = "*3\r\n$3\r\nabc\r\n:5\r\n"; /* one short */
	assert_int_equal(redisReaderFeed(rd, half, sizeof(half) - 1), REDIS_OK);
	void *rep = NULL;
	assert_int_equal(redisReaderGetReply(rd, &rep), REDIS_OK);
	assert_null(rep);
	redisReaderFree(rd); /* frees the half-built tree */
	rd = pb_reply_reader_new();
	const char bad[] = "*2\r\n$3\r\nabc\r\n?junk\r\n";
	assert_int_equal(redisReaderFeed(rd, bad, sizeof(bad) - 1), REDIS_OK);
	assert_int_equal(redisReaderGetReply(rd, &rep), REDIS_ERR);
	redisReaderFree(rd);
	pb_reply_free(NULL);
}

/* A pseudo-random RESP value (xorshift state *x) appended to b at *n;
 * arrays nest at most depth deep. */
static unsigned rnd(unsigned *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static void resp_random(char *b, size_t *n, size_t cap, unsigned *x, int depth)
{
	static const char fill[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned kind = rnd(x) % (depth > 0 ? 7 : 6);
	size_t room = cap - *n;
	if (room < 64 * 1024) {
		*n += (size_t)snprintf(b + *n, room, ":1\r\n");
		return;
	}
	switch (kind) {
	case 0:
		*n += (size_t)snprintf(b + *n, room, ":%d\r\n",
				       (int)(rnd(x) % 2000001) - 1000000);
		break;
	case 1:
		*n += (size_t)snprintf(b + *n, room, "$-1\r\n");
		break;
	case 2:
		*n += (size_t)snprintf(b + *n, room, "+OK%u\r\n", rnd(x) % 100);
		break;
	case 3:
		*n += (size_t)snprintf(b + *n, room, "-ERR e%u\r\n",
				       rnd(x) % 100);
		break;
	case 4:
	case 5: { /* mostly short, now and then long (past a tree's room) */
		size_t len = rnd(x) % 8 == 0 ? rnd(x) % 20000 : rnd(x) % 40;
		*n += (size_t)snprintf(b + *n, room, "$%zu\r\n", len);
		for (size_t i = 0; i < len; i++)
			b[(*n)++] = fill[rnd(x) % (sizeof(fill) - 1)];
		b[(*n)++] = '\r';
		b[(*n)++] = '\n';
		break;
	}
	default: {
		int elements = (int)(rnd(x) % 12) - 1; /* -1: a nil array */
		*n += (size_t)snprintf(b + *n, room, "*%d\r\n", elements);
		for (int i = 0; i < elements; i++)
			resp_random(b, n, cap, x, depth - 1);
	}
	}
}

/* 10,000 pseudo-random replies (fixed seed) of every kind, nested up to 4
 * deep, fed to both readers in random slices: the same trees. */
static void test_reply_trees_match_hiredis_random(void **state)
{
	(void)state;
	size_t cap = 8 * 1024 * 1024;
	char *b = malloc(cap);
	assert_non_null(b);
	unsigned x = 2463534242u;
	for (int round = 0; round < 50; round++) {
		size_t n = 0;
		for (int i = 0; i < 200; i++)
			resp_random(b, &n, cap, &x, 4);
		compare_readers(b, n, 1 + rnd(&x) % 5000);
	}
	free(b);
}

int main(void)
{
	const struct CMUnitTest t[] = {
	    cmocka_unit_test(test_acl_user_decoded),
	    cmocka_unit_test(test_password_only_and_tls),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_unix),
	    cmocka_unit_test(test_refused_without_echo),
	    cmocka_unit_test(test_failure_names_step),
	    cmocka_unit_test(test_user_needs_password),
	    cmocka_unit_test(test_tls_files_checked),
	    cmocka_unit_test(test_production_example),
	    cmocka_unit_test(test_cluster_slots),
	    cmocka_unit_test(test_split_hostport),
	    cmocka_unit_test(test_reply_stream),
	    cmocka_unit_test(test_reply_trees_match_hiredis),
	    cmocka_unit_test(test_reply_trees_match_hiredis_random),
	};
	return cmocka_run_group_tests(t, NULL, NULL);
}
