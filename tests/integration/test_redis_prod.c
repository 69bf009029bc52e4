/*
 * Redis as production runs it, against real servers:
 *   - TLS only (a test CA made now, client certificates required) with an
 *     ACL user allowed only the commands the worker needs (the list in
 *     docs/operations.md) and the default user off: the e2e flow keeps
 *     its guarantees; a CA that does not sign the server's certificate is
 *     fatal at start (exit 1, the TLS reason); a wrong password is named
 *     as an AUTH failure;
 *   - Sentinel (three of them, a master and a replica, redis.minReplicas
 *     1): the master is killed mid-run, the worker follows the failover;
 *     then a planned failover (SENTINEL FAILOVER) while it is idle;
 *   - a 3-master Cluster with a replica each (redis-cli --cluster create):
 *     mid-run half the slots of one master are resharded to another (MOVED and
 *     ASK), one order's slot is moved under the worker (MOVED asserted),
 *     then a master is killed and its replica takes over.
 *   - redis.minReplicas: a commit no replica has is refused as retriable,
 *     and goes through once a replica is there.
 * Every event gets exactly one outcome that is not a duplicate, and is
 * pushed once.
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
#include "harness_redis.h"
#include "state.h"

#define WAIT_MS	  90000
#define ORDERS	  6
#define PER_ORDER 3

/* The worker's commands (docs/operations.md) and nothing else. */
#define ACL_COMMANDS                                                           \
	"-@all", "+get", "+set", "+hmget", "+hset", "+hsetnx", "+hdel",        \
	    "+hgetall", "+expire", "+persist", "+dbsize", "+sismember",        \
	    "+sadd", "+zadd", "+zrem", "+zrangebyscore", "+multi", "+exec",    \
	    "+ping", "+wait", "+role", "+scan", "+pttl"

static int setup(void **state)
{
	(void)state;
	return h_setup("redisprod") || h_kafka_start(1, 3) || h_sim_start(0)
		   ? -1
		   : 0;
}

static int teardown(void **state)
{
	hr_stop_all();
	return h_group_teardown(state);
}

/* Every event of prefix: exactly one outcome besides duplicates, created
 * or updated, pushed exactly once. */
static void check_exactly_once(const json_t *recs, const char *prefix)
{
	json_t *by = h_by_event(recs);
	for (int o = 0; o < ORDERS; o++) {
		char won[64];
		snprintf(won, sizeof(won), "WO-%s-%02d", prefix, o);
		json_t *pushes = h_sim_pushes_of("acme", won);
		for (int k = 0; k < PER_ORDER; k++) {
			char id[64];
			snprintf(id, sizeof(id), "%s-%02d-%d", prefix, o, k);
			int real = 0;
			size_t i;
			json_t *x;
			json_array_foreach(json_object_get(by, id), i, x)
			{
				const char *oc = h_str(x, "outcome");
				if (!strcmp(oc, "duplicate"))
					continue;
				real++;
				if (strcmp(oc, k ? "updated" : "created"))
					fail_msg("%s: %s (%s)", id, oc,
						 h_str(x, "message"));
			}
			if (real != 1)
				fail_msg("%s: %d outcomes", id, real);
			size_t n = 0;
			json_t *p;
			json_array_foreach(pushes, i, p)
			{
				const char *info =
				    h_str(json_object_get(p, "workOrder"),
					  "workOrderInfo");
				n += info && !strcmp(info, id);
			}
			if (n != 1)
				fail_msg("%s: pushed %zu times", id, n);
		}
		json_decref(pushes);
	}
	json_decref(by);
}

/* Wait until every event of prefix has an outcome that is not a
 * duplicate; the records seen. */
static json_t *await_all(const char *prefix, long before)
{
	json_t *all = NULL;
	int64_t deadline = pb_mono_ms() + WAIT_MS;
	for (;;) {
		json_decref(all);
		all = h_consume(H_TOPIC_RESULTS, before + ORDERS * PER_ORDER,
				5000);
		json_t *by = h_by_event(all);
		int missing = 0;
		for (int o = 0; o < ORDERS; o++)
			for (int k = 0; k < PER_ORDER; k++) {
				char id[64];
				snprintf(id, sizeof(id), "%s-%02d-%d", prefix,
					 o, k);
				bool real = false;
				size_t i;
				json_t *x;
				json_array_foreach(json_object_get(by, id), i,
						   x) real =
				    real ||
				    strcmp(h_str(x, "outcome"), "duplicate");
				missing += !real;
			}
		json_decref(by);
		if (!missing || pb_mono_ms() > deadline)
			return all;
	}
}

static char tls_port_s[16];

static void file_in_dir(char *buf, size_t n, const char *name)
{
	h_path(buf, n, name);
}

static int start_tls_redis(void)
{
	if (hr_make_ca("t"))
		return -1;
	char crt[512], key[512], ca[512];
	file_in_dir(crt, sizeof(crt), "t-server.pem");
	file_in_dir(key, sizeof(key), "t-server.key");
	file_in_dir(ca, sizeof(ca), "t-ca.pem");
	int port = hr_free_port();
	snprintf(tls_port_s, sizeof(tls_port_s), "%d", port);
	const char *args[] = {"--port",
			      "0",
			      "--tls-port",
			      tls_port_s,
			      "--tls-cert-file",
			      crt,
			      "--tls-key-file",
			      key,
			      "--tls-ca-cert-file",
			      ca,
			      "--tls-auth-clients",
			      "yes",
			      "--user",
			      "default",
			      "off",
			      "--user",
			      "pbuser",
			      "on",
			      ">p@ss:w/rd",
			      "~pb:*",
			      ACL_COMMANDS,
			      NULL};
	return hr_start(0, port, args);
}

/* The configuration for the TLS server: ca the CA file's prefix. */
static void write_tls_config(const char *name, const char *ca_prefix,
			     const char *password_enc, char *cfg, size_t n)
{
	char url[256], ca[512], crt[512], key[512], caname[64];
	snprintf(url, sizeof(url), "rediss://pbuser:%s@localhost:%s/0",
		 password_enc, tls_port_s);
	snprintf(caname, sizeof(caname), "%s-ca.pem", ca_prefix);
	file_in_dir(ca, sizeof(ca), caname);
	file_in_dir(crt, sizeof(crt), "t-client.pem");
	file_in_dir(key, sizeof(key), "t-client.key");
	json_t *ov = json_pack("{s:{s:s, s:{s:s, s:s, s:s}}, s:{s:i, s:i}}",
			       "redis", "url", url, "tls", "caFile", ca,
			       "certFile", crt, "keyFile", key, "pruvan",
			       "batchMaxOrders", 1, "maxInFlight", 1);
	assert_int_equal(h_write_config(name, ov, cfg, n), 0);
	json_decref(ov);
}

static void tls_acl_e2e(void **state)
{
	(void)state;
	h_begin("tls_acl_e2e");
	assert_int_equal(start_tls_redis(), 0);
	char cfg[512];
	write_tls_config("tls.json", "t", "p%40ss%3Aw%2Frd", cfg, sizeof(cfg));
	long before = h_topic_count(H_TOPIC_RESULTS);
	assert_int_equal(h_produce_series("t", "acme", ORDERS, PER_ORDER), 0);
	h_worker_t *w = h_worker_run("worker-tls", cfg, true);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, WAIT_MS), 0);
	/* the order-expiry repair runs as the same user (SCAN, PTTL) */
	assert_int_equal(h_worker_log_count(w, "order-expiry repair failed"),
			 0);
	json_t *all = await_all("t", before);
	check_exactly_once(all, "t");
	json_decref(all);
	/* auto-admin goes through the same ACL user and TLS */
	const char *aa[] = {"auto-admin", "-c", cfg, "acme", "off", NULL};
	char *out = NULL;
	assert_int_equal(h_bridge_cmd(aa, 20000, &out), 0);
	free(out);
	h_end();
}

static void tls_wrong_ca_is_fatal(void **state)
{
	(void)state;
	h_begin("tls_wrong_ca_is_fatal");
	assert_int_equal(hr_make_ca("u"), 0); /* a CA that signed nothing */
	char cfg[512];
	write_tls_config("tls-bad-ca.json", "u", "p%40ss%3Aw%2Frd", cfg,
			 sizeof(cfg));
	h_worker_t *w = h_worker_run("worker-bad-ca", cfg, false);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, 30000), 1);
	assert_true(h_worker_log_has(w, "Redis TLS", 1000));
	assert_true(h_worker_log_has(w, "certificate", 1000));

	/* the right CA, but a name the certificate does not have */
	char ca[512], crt[512], key[512], url[256];
	file_in_dir(ca, sizeof(ca), "t-ca.pem");
	file_in_dir(crt, sizeof(crt), "t-client.pem");
	file_in_dir(key, sizeof(key), "t-client.key");
	snprintf(url, sizeof(url),
		 "rediss://pbuser:p%%40ss%%3Aw%%2Frd@localhost:%s/0",
		 tls_port_s);
	json_t *ov = json_pack("{s:{s:s, s:{s:s, s:s, s:s, s:s}}}", "redis",
			       "url", url, "tls", "caFile", ca, "certFile", crt,
			       "keyFile", key, "serverName", "other.example");
	assert_int_equal(
	    h_write_config("tls-bad-name.json", ov, cfg, sizeof(cfg)), 0);
	json_decref(ov);
	w = h_worker_run("worker-bad-name", cfg, false);
	assert_non_null(w);
	assert_int_equal(h_worker_wait(w, 30000), 1);
	assert_true(h_worker_log_has(w, "hostname mismatch", 1000));
	h_end();
}

static void acl_wrong_password_named(void **state)
{
	(void)state;
	h_begin("acl_wrong_password_named");
	char cfg[512];
	write_tls_config("tls-bad-pw.json", "t", "nope", cfg, sizeof(cfg));
	h_worker_t *w = h_worker_run("worker-bad-pw", cfg, false);
	assert_non_null(w);
	assert_true(h_worker_log_has(w, "Redis AUTH", 30000));
	/* the order-expiry repair's own connection fails the same way */
	assert_true(h_worker_log_has(w, "order-expiry repair failed", 30000));
	assert_false(h_worker_log_has(w, "nope", 100));
	assert_int_equal(h_worker_signal(w, SIGTERM), 0);
	assert_true(h_worker_wait(w, 30000) >= 0);
	h_end();
}

/* ---- Sentinel ---------------------------------------------------------- */

static char master_s[16], replica_s[16];
static int sentinel_ports[3];

static char *master_addr(void)
{
	char port[16];
	for (int i = 0; i < 3; i++) {
		snprintf(port, sizeof(port), "%d", sentinel_ports[i]);
		const char *q[] = {"SENTINEL", "get-master-addr-by-name",
				   "mymaster", NULL};
		char *a = hr_cmd(sentinel_ports[i], q);
		if (a)
			return a;
	}
	return NULL;
}

static int start_sentinel_group(void)
{
	int m = hr_free_port(), r = hr_free_port();
	snprintf(master_s, sizeof(master_s), "%d", m);
	snprintf(replica_s, sizeof(replica_s), "%d", r);
	const char *ma[] = {"--port", master_s, NULL};
	const char *ra[] = {"--port",	 replica_s, "--replicaof",
			    "127.0.0.1", master_s,  NULL};
	if (hr_start(1, m, ma) || hr_start(2, r, ra))
		return -1;
	char conf[512];
	snprintf(conf, sizeof(conf),
		 "sentinel monitor mymaster 127.0.0.1 %d 2\n"
		 "sentinel down-after-milliseconds mymaster 1000\n"
		 "sentinel failover-timeout mymaster 5000\n",
		 m);
	for (int i = 0; i < 3; i++) {
		sentinel_ports[i] = hr_free_port();
		if (hr_start_sentinel(3 + i, sentinel_ports[i], conf))
			return -1;
	}
	/* ready once the Sentinels know each other and the replica */
	int64_t deadline = pb_mono_ms() + 60000;
	while (pb_mono_ms() < deadline) {
		const char *q[] = {"SENTINEL", "replicas", "mymaster", NULL};
		const char *k[] = {"SENTINEL", "ckquorum", "mymaster", NULL};
		char *rep = hr_cmd(sentinel_ports[0], q);
		char *ok = hr_cmd(sentinel_ports[0], k);
		bool ready = rep && strstr(rep, replica_s) && ok &&
			     strstr(ok, "3 usable");
		free(rep);
		free(ok);
		if (ready)
			return 0;
		h_nap_ms(100);
	}
	return -1;
}

/* SENTINEL FAILOVER, and wait until the Sentinels name the other server
 * and it answers ROLE master. */
static bool sentinel_switch(void)
{
	char *was = master_addr();
	if (!was)
		return false;
	char port[16];
	snprintf(port, sizeof(port), "%d", sentinel_ports[0]);
	const char *q[] = {"SENTINEL", "FAILOVER", "mymaster", NULL};
	int64_t deadline = pb_mono_ms() + 60000;
	bool asked = false, moved = false;
	while (!moved && pb_mono_ms() < deadline) {
		if (!asked) {
			char *r = hr_cmd(sentinel_ports[0], q);
			asked = r && !strcmp(r, "OK");
			free(r);
		}
		char *now = master_addr();
		moved = now && strcmp(now, was);
		if (moved) {
			const char *role[] = {"ROLE", NULL};
			int p = (int)strtol(strchr(now, ' ') + 1, NULL, 10);
			char *r = hr_cmd(p, role);
			moved = r && !strncmp(r, "master", 6);
			free(r);
		}
		free(now);
		if (!moved)
			h_nap_ms(200);
	}
	free(was);
	return moved;
}

static void sentinel_failover_e2e(void **state)
{
	(void)state;
	h_begin("sentinel_failover_e2e");
	assert_int_equal(start_sentinel_group(), 0);
	char nodes[3][32];
	for (int i = 0; i < 3; i++)
		snprintf(nodes[i], sizeof(nodes[i]), "127.0.0.1:%d",
			 sentinel_ports[i]);
	json_t *ov =
	    json_pack("{s:{s:s, s:{s:s, s:[s,s,s]}, s:i, s:i}, s:{s:i, s:i}}",
		      "redis", "url", "redis://ignored-host/0", "sentinel",
		      "masterName", "mymaster", "nodes", nodes[0], nodes[1],
		      nodes[2], "minReplicas", 1, "waitTimeoutMs", 500,
		      "pruvan", "batchMaxOrders", 1, "maxInFlight", 1);
	char cfg[512];
	assert_int_equal(h_write_config("sentinel.json", ov, cfg, sizeof(cfg)),
			 0);
	json_decref(ov);
	assert_int_equal(h_sim_faults("{\"latencyMs\":150}"), 0);
	long before = h_topic_count(H_TOPIC_RESULTS);
	assert_int_equal(h_produce_series("s", "acme", ORDERS, PER_ORDER), 0);
	h_worker_t *w = h_worker_run("worker-sentinel", cfg, false);
	assert_non_null(w);
	assert_true(h_await_count(H_TOPIC_RESULTS, before + 3, WAIT_MS) >=
		    before + 3);

	hr_kill(1); /* the master, mid-run */
	int64_t deadline = pb_mono_ms() + 60000;
	bool moved = false;
	while (!moved && pb_mono_ms() < deadline) {
		char *a = master_addr();
		moved = a && strstr(a, replica_s);
		free(a);
		if (!moved)
			h_nap_ms(100);
	}
	assert_true(moved);
	/* the old master comes back as the new one's replica, so WAIT has
	 * a replica to count again */
	const char *back[] = {"--replicaof", "127.0.0.1", replica_s, NULL};
	assert_int_equal(hr_restart(1, back), 0);

	json_t *all = await_all("s", before);
	/* a planned failover while the worker is idle (the demoted master
	 * closes its clients): the next events go to the new master */
	assert_true(sentinel_switch());
	long before2 = h_topic_count(H_TOPIC_RESULTS);
	assert_int_equal(h_produce_series("s2", "acme", ORDERS, PER_ORDER), 0);
	json_decref(all);
	all = await_all("s2", before2);
	assert_int_equal(h_worker_signal(w, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w, 30000), 0);
	json_decref(all);
	all = h_consume(H_TOPIC_RESULTS, before + ORDERS * PER_ORDER, 15000);
	check_exactly_once(all, "s");
	check_exactly_once(all, "s2");
	json_decref(all);
	json_decref(h_sim_delete("/_sim/faults"));
	h_end();
}

/* ---- Cluster ----------------------------------------------------------- */

#define CL_NODES 6
#define CL_SLOT0 6
static int cl_ports[CL_NODES];
static char cl_port_s[CL_NODES][16];

static bool await_cluster_ok(void)
{
	return hr_await_cluster_ok(CL_SLOT0, CL_NODES, cl_ports);
}

/* a replica each: the failover test promotes one */
static int start_cluster(void)
{
	if (hr_start_cluster(CL_SLOT0, CL_NODES, 1, cl_ports))
		return -1;
	for (int i = 0; i < CL_NODES; i++)
		snprintf(cl_port_s[i], sizeof(cl_port_s[i]), "%d", cl_ports[i]);
	return 0;
}

/* Index of a master (the first after skip), -1 when none. */
static int cluster_master(int skip)
{
	for (int i = 0; i < CL_NODES; i++) {
		const char *q[] = {"ROLE", NULL};
		char *r = hr_cmd(cl_ports[i], q);
		bool m = r && !strncmp(r, "master", 6);
		free(r);
		if (m && i != skip)
			return i;
	}
	return -1;
}

static char *node_id(int i)
{
	const char *q[] = {"CLUSTER", "MYID", NULL};
	return hr_cmd(cl_ports[i], q);
}

/* Move half the slots of master from to master to (MOVED and ASK
 * mid-way); from keeps the rest, so three masters still vote in a
 * failover. */
static int reshard_half(int from, int to)
{
	char *a = node_id(from), *b = node_id(to);
	char addr[32];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", cl_ports[from]);
	const char *argv[] = {
	    "redis-cli",       "--cluster", "reshard",	     addr,
	    "--cluster-from",  a ? a : "",  "--cluster-to",  b ? b : "",
	    "--cluster-slots", "2730",	    "--cluster-yes", NULL};
	int rc = a && b ? hr_run(argv) : -1;
	free(a);
	free(b);
	return rc;
}

/* Give the (empty) slot of key from its master to another one, under a
 * running worker whose slot map then is stale. The old master's index. */
static int move_key_slot(const char *key)
{
	int owner = -1, other = -1;
	for (int i = 0; i < CL_NODES; i++) {
		const char *q[] = {"ROLE", NULL};
		char *r = hr_cmd(cl_ports[i], q);
		bool m = r && !strncmp(r, "master", 6);
		free(r);
		if (!m)
			continue;
		const char *g[] = {"GET", key, NULL};
		char *a = hr_cmd(cl_ports[i], g);
		bool moved = a && !strncmp(a, "MOVED", 5);
		free(a);
		if (!moved && owner < 0)
			owner = i;
		else if (moved && other < 0)
			other = i;
	}
	if (owner < 0 || other < 0)
		return -1;
	const char *ks[] = {"CLUSTER", "KEYSLOT", key, NULL};
	char *slot = hr_cmd(cl_ports[0], ks);
	char *id = node_id(other);
	int rc = slot && id ? 0 : -1;
	/* the new owner first, then the old one, then the rest */
	int order[CL_NODES], n = 0;
	order[n++] = other;
	order[n++] = owner;
	for (int i = 0; i < CL_NODES; i++)
		if (i != other && i != owner)
			order[n++] = i;
	for (int k = 0; k < n && !rc; k++) {
		const char *q[] = {"CLUSTER", "SETSLOT", slot,
				   "NODE",    id,	 NULL};
		char *r = hr_cmd(cl_ports[order[k]], q);
		if (k < 2 && (!r || strcmp(r, "OK")))
			rc = -1;
		free(r);
	}
	free(slot);
	free(id);
	return rc ? -1 : owner;
}

/* MOVED answers node i gave since it started (INFO errorstats). */
static long moved_count(int i)
{
	const char *q[] = {"INFO", "errorstats", NULL};
	char *r = hr_cmd(cl_ports[i], q);
	const char *m = r ? strstr(r, "errorstat_MOVED:count=") : NULL;
	long n = m ? strtol(m + strlen("errorstat_MOVED:count="), NULL, 10) : 0;
	free(r);
	return n;
}

/* Kill master to, produce prefix's events while its replica is elected,
 * and wait until the election is won and the Cluster is whole again. */
static bool kill_and_await_failover(int to, const char *prefix)
{
	const char *role[] = {"ROLE", NULL};
	char *replicas = hr_cmd(cl_ports[to], role);
	if (!replicas)
		return false;
	hr_kill(CL_SLOT0 + to);
	bool produced =
	    h_produce_series(prefix, "acme", ORDERS, PER_ORDER) == 0;
	int64_t deadline = pb_mono_ms() + 60000;
	bool promoted = false;
	while (!promoted && pb_mono_ms() < deadline) {
		for (int i = 0; i < CL_NODES && !promoted; i++) {
			if (i == to || !strstr(replicas, cl_port_s[i]))
				continue;
			char *r = hr_cmd(cl_ports[i], role);
			promoted = r && !strncmp(r, "master", 6);
			free(r);
		}
		if (!promoted)
			h_nap_ms(100);
	}
	free(replicas);
	return produced && promoted && await_cluster_ok();
}

static void cluster_reshard_failover_e2e(void **state)
{
	(void)state;
	h_begin("cluster_reshard_failover_e2e");
	assert_int_equal(start_cluster(), 0);
	char nodes[3][32];
	for (int i = 0; i < 3; i++)
		snprintf(nodes[i], sizeof(nodes[i]), "127.0.0.1:%d",
			 cl_ports[i]);
	json_t *ov = json_pack(
	    "{s:{s:s, s:{s:[s,s,s]}, s:i, s:i}, s:{s:i, s:i}}", "redis", "url",
	    "redis://ignored-host/0", "cluster", "nodes", nodes[0], nodes[1],
	    nodes[2], "minReplicas", 1, "waitTimeoutMs", 500, "pruvan",
	    "batchMaxOrders", 1, "maxInFlight", 1);
	char cfg[512];
	assert_int_equal(h_write_config("cluster.json", ov, cfg, sizeof(cfg)),
			 0);
	json_decref(ov);
	/* auto-admin writes an account key through the Cluster client */
	const char *aa[] = {"auto-admin", "-c", cfg, "acme", "on", NULL};
	char *out = NULL;
	assert_int_equal(h_bridge_cmd(aa, 20000, &out), 0);
	free(out);

	assert_int_equal(h_sim_faults("{\"latencyMs\":150}"), 0);
	long before = h_topic_count(H_TOPIC_RESULTS);
	assert_int_equal(h_produce_series("c", "acme", ORDERS, PER_ORDER), 0);
	h_worker_t *w = h_worker_run("worker-cluster", cfg, false);
	assert_non_null(w);
	assert_true(h_await_count(H_TOPIC_RESULTS, before + 3, WAIT_MS) >=
		    before + 3);

	int from = cluster_master(-1), to = cluster_master(from);
	assert_true(from >= 0 && to >= 0);
	assert_int_equal(reshard_half(from, to), 0);
	assert_true(await_cluster_ok());
	json_t *all = await_all("c", before);
	/* the slot of order WO-m-00 moves under the worker: its events are
	 * answered MOVED, followed to the new master */
	int old_owner = move_key_slot("pb:{acme/WO-m-00}:o");
	assert_true(old_owner >= 0);
	long moved0 = moved_count(old_owner);
	long before_m = h_topic_count(H_TOPIC_RESULTS);
	assert_int_equal(h_produce_series("m", "acme", ORDERS, PER_ORDER), 0);
	json_decref(all);
	all = await_all("m", before_m);
	assert_true(moved_count(old_owner) > moved0);
	/* kill the master that now has two thirds of the slots, with events
	 * still to come; one of its replicas takes over */
	long before2 = h_topic_count(H_TOPIC_RESULTS);
	assert_true(kill_and_await_failover(to, "d"));
	/* back as a replica (its nodes.conf is kept), so WAIT has a replica
	 * to count again */
	assert_int_equal(hr_restart(CL_SLOT0 + to, NULL), 0);

	json_decref(all);
	all = await_all("d", before2);
	assert_int_equal(h_worker_signal(w, SIGTERM), 0);
	assert_int_equal(h_worker_wait(w, 30000), 0);
	json_decref(all);
	all = h_consume(H_TOPIC_RESULTS, before2 + ORDERS * PER_ORDER, 15000);
	check_exactly_once(all, "c");
	check_exactly_once(all, "m");
	check_exactly_once(all, "d");
	json_decref(all);
	json_decref(h_sim_delete("/_sim/faults"));
	h_end();
}

/* ---- redis.minReplicas -------------------------------------------------- */

static pb_err_t commit_one(pb_state_t *st, char *err, size_t size)
{
	pb_state_write_t w = {.account = "acme",
			      .won = "WO-w",
			      .event_id = "w-1",
			      .outcome = "created",
			      .http_status = 200,
			      .attempts = 1,
			      .write_order = true,
			      .set_created = true};
	pb_state_call_t c;
	pb_err_t e = pb_state_commit_send(st, &w, 1, &c, err, size);
	if (!e)
		e = pb_state_flush(st, err, size);
	return e ? e : pb_state_write_recv(st, &c, err, size);
}

/* A commit short of its replicas fails as retriable (held, retried), and
 * goes through once a replica has it. */
static void min_replicas_wait(void **state)
{
	(void)state;
	h_begin("min_replicas_wait");
	int m = hr_free_port(), r = hr_free_port();
	char ms[16], rs[16], url[64];
	snprintf(ms, sizeof(ms), "%d", m);
	snprintf(rs, sizeof(rs), "%d", r);
	const char *ma[] = {"--port", ms, NULL};
	assert_int_equal(hr_start(12, m, ma), 0);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", m);
	pb_redis_opts_t o = {.url = url, .timeout_ms = 2000};
	pb_state_t *st = NULL;
	char err[512];
	assert_int_equal(
	    pb_state_new_redis(&o, "pb:", 60, 1, 100, &st, err, sizeof(err)),
	    PB_OK);
	assert_int_equal(commit_one(st, err, sizeof(err)), PB_ERR_REDIS);
	assert_non_null(strstr(err, "redis.minReplicas"));
	assert_true(pb_err_is_retriable(PB_ERR_REDIS));

	const char *ra[] = {"--port", rs, "--replicaof", "127.0.0.1", ms, NULL};
	assert_int_equal(hr_start(13, r, ra), 0);
	pb_err_t e = PB_ERR_REDIS;
	int64_t deadline = pb_mono_ms() + 30000;
	while (e && pb_mono_ms() < deadline) { /* until the replica synced */
		e = commit_one(st, err, sizeof(err));
		if (e)
			h_nap_ms(100);
	}
	assert_int_equal(e, PB_OK);
	pb_state_destroy(st);
	h_end();
}

int main(void)
{
	const struct CMUnitTest t[] = {
	    cmocka_unit_test(tls_acl_e2e),
	    cmocka_unit_test(tls_wrong_ca_is_fatal),
	    cmocka_unit_test(acl_wrong_password_named),
	    cmocka_unit_test(sentinel_failover_e2e),
	    cmocka_unit_test(cluster_reshard_failover_e2e),
	    cmocka_unit_test(min_replicas_wait),
	};
	return cmocka_run_group_tests(t, setup, teardown);
}
