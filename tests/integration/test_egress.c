/*
 * Egress to Pruvan through a forward proxy, as a corporate network has it:
 *   - pruvan.proxy: every push goes through the proxy;
 *   - no pruvan.proxy, http_proxy in the environment: the same;
 *   - no_proxy naming the host: the proxy is bypassed.
 * The proxy here is a small one in the test process (a thread): it reads
 * each request, turns its absolute URI into a path, forwards it to the
 * simulator and copies the answer back, counting requests. Every event
 * still gets exactly one outcome.
 */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define WAIT_MS	  60000
#define ORDERS	  3
#define PER_ORDER 2

H_SUITE("egress", 1)

static int proxy_fd = -1, proxy_port;
static atomic_int proxied;
static atomic_bool proxy_stop;

static int connect_sim(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)h_sim_port()),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Forward one request head from buf[0..*len) when complete: the request
 * line's absolute URI made a path. The body bytes still owed go to
 * *body_left. False on a malformed head. */
static bool forward_head(int up, char *buf, size_t *len, size_t *body_left)
{
	char *end = memmem(buf, *len, "\r\n\r\n", 4);
	if (!end)
		return true;
	size_t head = (size_t)(end - buf) + 4;
	char *sp = memchr(buf, ' ', head);
	char *scheme = sp ? memmem(sp, (size_t)(end - sp), "http://", 7) : NULL;
	char *path =
	    scheme ? memchr(scheme + 7, '/', (size_t)(end - scheme - 7)) : NULL;
	if (!sp || !scheme || !path || path > end)
		return false;
	if (write(up, buf, (size_t)(sp + 1 - buf)) < 0 ||
	    write(up, path, head - (size_t)(path - buf)) < 0)
		return false;
	char save = *end;
	*end = '\0'; /* the head as a string, for the search */
	char *cl = strcasestr(buf, "\r\ncontent-length:");
	*body_left = cl ? strtoul(cl + 17, NULL, 10) : 0;
	*end = save;
	memmove(buf, buf + head, *len - head);
	*len -= head;
	atomic_fetch_add(&proxied, 1);
	return true;
}

/* One client connection: requests rewritten upstream (kept alive, one
 * after another), answers copied back unchanged. */
static void serve(int c)
{
	int up = connect_sim();
	char buf[65536];
	size_t len = 0, body_left = 0;
	while (up >= 0 && !atomic_load(&proxy_stop)) {
		struct pollfd p[2] = {{.fd = c, .events = POLLIN},
				      {.fd = up, .events = POLLIN}};
		if (poll(p, 2, 200) < 0)
			break;
		if (p[1].revents) {
			char b[65536];
			ssize_t n = read(up, b, sizeof(b));
			if (n <= 0 || write(c, b, (size_t)n) != n)
				break;
		}
		if (!p[0].revents)
			continue;
		ssize_t n = read(c, buf + len, sizeof(buf) - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		while (len) {
			if (body_left) {
				size_t k = len < body_left ? len : body_left;
				if (write(up, buf, k) != (ssize_t)k)
					goto out;
				memmove(buf, buf + k, len - k);
				len -= k;
				body_left -= k;
				continue;
			}
			size_t before = len;
			if (!forward_head(up, buf, &len, &body_left))
				goto out;
			if (len == before)
				break; /* head not complete yet */
		}
	}
out:
	if (up >= 0)
		close(up);
	close(c);
}

static void *conn_main(void *arg)
{
	serve((int)(intptr_t)arg);
	return NULL;
}

static void *proxy_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&proxy_stop)) {
		struct pollfd p = {.fd = proxy_fd, .events = POLLIN};
		if (poll(&p, 1, 200) != 1)
			continue;
		int c = accept(proxy_fd, NULL, NULL);
		pthread_t t;
		if (c >= 0 && pthread_create(&t, NULL, conn_main,
					     (void *)(intptr_t)c) == 0)
			pthread_detach(t);
	}
	return NULL;
}

static pthread_t proxy_thread;

static int proxy_start(void)
{
	proxy_fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	if (proxy_fd < 0 || bind(proxy_fd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(proxy_fd, 16) ||
	    getsockname(proxy_fd, (struct sockaddr *)&a, &l))
		return -1;
	proxy_port = ntohs(a.sin_port);
	return pthread_create(&proxy_thread, NULL, proxy_main, NULL);
}

static int setup(void **state)
{
	return h_suite_setup(state) || proxy_start() ? -1 : 0;
}

static int teardown(void **state)
{
	atomic_store(&proxy_stop, true);
	pthread_join(proxy_thread, NULL);
	close(proxy_fd);
	return h_suite_teardown(state);
}

/* Run prefix's events to the end with the configuration overrides ov;
 * every event one outcome (created / updated). */
static void run_series(const char *prefix, json_t *ov)
{
	char cfg[512], name[64];
	snprintf(name, sizeof(name), "%s.json", prefix);
	assert_int_equal(h_write_config(name, ov, cfg, sizeof(cfg)), 0);
	long before = h_topic_count(H_TOPIC_RESULTS);
	assert_int_equal(h_produce_series(prefix, "acme", ORDERS, PER_ORDER),
			 0);
	h_worker_t *w = h_worker_run(prefix, cfg, true);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, WAIT_MS), 0);
	json_t *all =
	    h_consume(H_TOPIC_RESULTS, before + ORDERS * PER_ORDER, 15000);
	json_t *by = h_by_event(all);
	for (int o = 0; o < ORDERS; o++)
		for (int k = 0; k < PER_ORDER; k++) {
			char id[64];
			snprintf(id, sizeof(id), "%s-%02d-%d", prefix, o, k);
			json_t *x = h_one(by, id);
			assert_non_null(x);
			assert_string_equal(h_str(x, "outcome"),
					    k ? "updated" : "created");
		}
	json_decref(by);
	json_decref(all);
}

static void pruvan_proxy_setting(void **state)
{
	(void)state;
	h_begin("pruvan_proxy_setting");
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", proxy_port);
	int before = atomic_load(&proxied);
	json_t *ov = json_pack("{s:{s:s}}", "pruvan", "proxy", url);
	run_series("px", ov);
	json_decref(ov);
	assert_true(atomic_load(&proxied) > before);
	h_end();
}

static void proxy_from_environment(void **state)
{
	(void)state;
	h_begin("proxy_from_environment");
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", proxy_port);
	setenv("http_proxy", url, 1);
	int before = atomic_load(&proxied);
	run_series("pe", NULL);
	assert_true(atomic_load(&proxied) > before);
	/* no_proxy names the simulator's host: straight there */
	setenv("no_proxy", "127.0.0.1", 1);
	before = atomic_load(&proxied);
	run_series("pn", NULL);
	assert_int_equal(atomic_load(&proxied), before);
	unsetenv("no_proxy");
	unsetenv("http_proxy");
	h_end();
}

int main(void)
{
	const struct CMUnitTest t[] = {
	    cmocka_unit_test(pruvan_proxy_setting),
	    cmocka_unit_test(proxy_from_environment),
	};
	return cmocka_run_group_tests(t, setup, teardown);
}
