/*
 * harness_redis.h: Redis as production runs it, for integration tests.
 *
 * Real redis-server processes (from PATH, no persistence) in the test's
 * temp dir: a TLS-only server with a test CA made at test time with the
 * openssl tool (client certificates required), ACL users, a master with a
 * replica, and Sentinels. Every process started here is stopped by
 * hr_stop_all() (call it before h_teardown()).
 */
#ifndef PB_HARNESS_REDIS_H
#define PB_HARNESS_REDIS_H

#include <stdbool.h>
#include <sys/types.h>

#define HR_MAX 16

/* Make, in h_dir(), a CA (prefix-ca.pem), a server certificate for
 * localhost / 127.0.0.1 (prefix-server.pem/.key) and a client certificate
 * (prefix-client.pem/.key), all signed by that CA. 0 on success. */
int hr_make_ca(const char *prefix);

/* Start redis-server with the extra arguments (NULL-terminated) and wait
 * until it listens on port (plain or TLS). The slot (0..HR_MAX) names it
 * for hr_kill / hr_restart. 0 on success. */
int hr_start(int slot, int port, const char *const *args);
/* Start a Sentinel with the configuration text (written to a file of its
 * own, which Sentinel rewrites). */
int hr_start_sentinel(int slot, int port, const char *conf_text);
void hr_kill(int slot); /* SIGKILL + reap */
/* Start slot again with the arguments it had, plus extra (may be NULL). */
int hr_restart(int slot, const char *const *extra);
void hr_stop_all(void);
bool hr_running(int slot);

/* Run a tool (redis-cli, openssl) to completion, its output to
 * h_dir()/tools.log; its exit code, -1 when it could not run. */
int hr_run(const char *const *argv);

/* A free loopback port. */
int hr_free_port(void);

/* One command on a plain connection to 127.0.0.1:port (argv, NULL
 * terminated); the reply as text ("" for nil, elements joined by ' '),
 * malloc'd, NULL when unreachable. */
char *hr_cmd(int port, const char *const *argv);

/* A Redis Cluster of n nodes in slots slot0..slot0+n-1, their ports into
 * ports[] (below 55000: the cluster bus listens on port + 10000), made
 * with redis-cli --cluster create with replicas replicas per master, and
 * awaited until every node says cluster_state:ok (60 s at most). 0 on
 * success. */
int hr_start_cluster(int slot0, int n, int replicas, int *ports);
/* Every running node of such a cluster says cluster_state:ok. */
bool hr_cluster_ok(int slot0, int n, const int *ports);
/* hr_cluster_ok within 60 s. */
bool hr_await_cluster_ok(int slot0, int n, const int *ports);

#endif
