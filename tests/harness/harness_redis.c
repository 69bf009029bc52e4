/*
 * harness_redis.c: TLS, ACL, replica and Sentinel Redis servers for the
 * integration tests (see harness_redis.h). Readiness is polled (a
 * connect to the port), never slept for.
 */
#include "harness_redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct {
	pid_t pid;
	int port;
	const char *argv[64];
	char store[64][512];
	int argc;
} S[HR_MAX];

int hr_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static pid_t run_bg(const char *const *argv, const char *log)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	int in = open("/dev/null", O_RDONLY);
	int o = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (in < 0 || o < 0)
		_exit(126);
	dup2(in, 0);
	dup2(o, 1);
	dup2(o, 2);
	execvp(argv[0], (char *const *)argv);
	_exit(127);
}

int hr_run(const char *const *argv)
{
	char log[512];
	h_path(log, sizeof(log), "tools.log");
	pid_t pid = run_bg(argv, log);
	int st;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int run_fg(const char *const *argv)
{
	return hr_run(argv) == 0 ? 0 : -1;
}

static const char *in_dir(char *buf, size_t n, const char *prefix,
			  const char *suffix)
{
	char name[128];
	snprintf(name, sizeof(name), "%s%s", prefix, suffix);
	return h_path(buf, n, name);
}

/* A key and a certificate signed by the CA, with subjectAltName san. */
static int make_cert(const char *prefix, const char *who, const char *san)
{
	char key[512], csr[512], crt[512], ca[512], cakey[512], ext[512];
	char suffix[64];
	snprintf(suffix, sizeof(suffix), "-%s.key", who);
	in_dir(key, sizeof(key), prefix, suffix);
	snprintf(suffix, sizeof(suffix), "-%s.csr", who);
	in_dir(csr, sizeof(csr), prefix, suffix);
	snprintf(suffix, sizeof(suffix), "-%s.pem", who);
	in_dir(crt, sizeof(crt), prefix, suffix);
	snprintf(suffix, sizeof(suffix), "-%s.ext", who);
	in_dir(ext, sizeof(ext), prefix, suffix);
	in_dir(ca, sizeof(ca), prefix, "-ca.pem");
	in_dir(cakey, sizeof(cakey), prefix, "-ca.key");
	FILE *f = fopen(ext, "w");
	if (!f)
		return -1;
	fprintf(f, "subjectAltName=%s\n", san);
	fclose(f);
	char subj[128];
	snprintf(subj, sizeof(subj), "/CN=pb-test-%s", who);
	const char *req[] = {"openssl",	 "req",	   "-new",    "-newkey",
			     "rsa:2048", "-nodes", "-keyout", key,
			     "-out",	 csr,	   "-subj",   subj,
			     NULL};
	const char *sign[] = {
	    "openssl",	"x509", "-req",	  "-in", csr,
	    "-CA",	ca,	"-CAkey", cakey, "-CAcreateserial",
	    "-out",	crt,	"-days",  "2",	 "-sha256",
	    "-extfile", ext,	NULL};
	return run_fg(req) || run_fg(sign) ? -1 : 0;
}

int hr_make_ca(const char *prefix)
{
	char ca[512], cakey[512];
	in_dir(ca, sizeof(ca), prefix, "-ca.pem");
	in_dir(cakey, sizeof(cakey), prefix, "-ca.key");
	const char *mk[] = {
	    "openssl", "req",	  "-x509", "-newkey",	     "rsa:2048",
	    "-nodes",  "-keyout", cakey,   "-out",	     ca,
	    "-days",   "2",	  "-subj", "/CN=pb-test-ca", NULL};
	if (run_fg(mk))
		return -1;
	return make_cert(prefix, "server", "DNS:localhost,IP:127.0.0.1") ||
		       make_cert(prefix, "client", "DNS:pb-client")
		   ? -1
		   : 0;
}

static bool listening(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static int spawn_slot(int slot)
{
	char log[512], name[32];
	snprintf(name, sizeof(name), "redis-%d.log", slot);
	h_path(log, sizeof(log), name);
	S[slot].argv[S[slot].argc] = NULL;
	S[slot].pid = run_bg(S[slot].argv, log);
	if (S[slot].pid < 0)
		return -1;
	int64_t deadline = pb_mono_ms() + 15000;
	while (pb_mono_ms() < deadline) {
		if (listening(S[slot].port))
			return 0;
		int st;
		if (waitpid(S[slot].pid, &st, WNOHANG) == S[slot].pid) {
			S[slot].pid = 0;
			fprintf(stderr, "[harness] redis slot %d exited (%s)\n",
				slot, log);
			return -1;
		}
		h_nap_ms(10);
	}
	return -1;
}

static void slot_arg(int slot, const char *a)
{
	if (S[slot].argc < 62) {
		snprintf(S[slot].store[S[slot].argc], 512, "%s", a);
		S[slot].argv[S[slot].argc] = S[slot].store[S[slot].argc];
		S[slot].argc++;
	}
}

int hr_start(int slot, int port, const char *const *args)
{
	if (slot < 0 || slot >= HR_MAX)
		return -1;
	memset(&S[slot], 0, sizeof(S[slot]));
	S[slot].port = port;
	/* a directory per server: a replica's dump.rdb or a Cluster node's
	 * nodes.conf must not be another server's */
	char dir[512], name[32];
	snprintf(name, sizeof(name), "redis-%d.d", slot);
	h_path(dir, sizeof(dir), name);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -1;
	const char *base[] = {"redis-server",
			      "--bind",
			      "127.0.0.1",
			      "--save",
			      "",
			      "--appendonly",
			      "no",
			      "--daemonize",
			      "no",
			      "--dir",
			      dir,
			      NULL};
	for (int i = 0; base[i]; i++)
		slot_arg(slot, base[i]);
	for (int i = 0; args && args[i]; i++)
		slot_arg(slot, args[i]);
	return spawn_slot(slot);
}

int hr_start_sentinel(int slot, int port, const char *conf_text)
{
	char conf[512], name[32];
	snprintf(name, sizeof(name), "sentinel-%d.conf", slot);
	h_path(conf, sizeof(conf), name);
	FILE *f = fopen(conf, "w");
	if (!f)
		return -1;
	fprintf(f, "port %d\nbind 127.0.0.1\ndir %s\n%s\n", port, h_dir(),
		conf_text);
	fclose(f);
	memset(&S[slot], 0, sizeof(S[slot]));
	S[slot].port = port;
	slot_arg(slot, "redis-server");
	slot_arg(slot, conf);
	slot_arg(slot, "--sentinel");
	return spawn_slot(slot);
}

void hr_kill(int slot)
{
	if (S[slot].pid > 0) {
		kill(S[slot].pid, SIGKILL);
		waitpid(S[slot].pid, NULL, 0);
		S[slot].pid = 0;
	}
}

bool hr_running(int slot)
{
	return S[slot].pid > 0;
}

int hr_restart(int slot, const char *const *extra)
{
	hr_kill(slot);
	for (int i = 0; extra && extra[i]; i++)
		slot_arg(slot, extra[i]);
	return spawn_slot(slot);
}

void hr_stop_all(void)
{
	for (int i = 0; i < HR_MAX; i++)
		if (S[i].pid > 0) {
			kill(S[i].pid, SIGTERM);
			int st;
			int64_t deadline = pb_mono_ms() + 5000;
			while (waitpid(S[i].pid, &st, WNOHANG) == 0 &&
			       pb_mono_ms() < deadline)
				h_nap_ms(10);
			hr_kill(i);
		}
}

static void reply_text(const redisReply *r, char **buf, size_t *len)
{
	if (r->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i < r->elements; i++)
			reply_text(r->element[i], buf, len);
		return;
	}
	char num[32];
	const char *s = r->str;
	size_t n = r->len;
	if (r->type == REDIS_REPLY_INTEGER) {
		n = (size_t)snprintf(num, sizeof(num), "%lld", r->integer);
		s = num;
	} else if (r->type == REDIS_REPLY_NIL) {
		s = "";
		n = 0;
	}
	char *b = realloc(*buf, *len + n + 2);
	if (!b)
		return;
	if (*len)
		b[(*len)++] = ' ';
	memcpy(b + *len, s, n);
	*len += n;
	b[*len] = '\0';
	*buf = b;
}

char *hr_cmd(int port, const char *const *argv)
{
	struct timeval tv = {2, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	if (!c || c->err) {
		if (c)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	int argc = 0;
	while (argv[argc])
		argc++;
	redisReply *r = redisCommandArgv(c, argc, (const char **)argv, NULL);
	char *out = NULL;
	size_t len = 0;
	if (r) {
		out = strdup("");
		reply_text(r, &out, &len);
		freeReplyObject(r);
	}
	redisFree(c);
	return out;
}

bool hr_cluster_ok(int slot0, int n, const int *ports)
{
	for (int i = 0; i < n; i++) {
		if (!hr_running(slot0 + i))
			continue;
		const char *q[] = {"CLUSTER", "INFO", NULL};
		char *info = hr_cmd(ports[i], q);
		bool ok = info && strstr(info, "cluster_state:ok");
		free(info);
		if (!ok)
			return false;
	}
	return true;
}

bool hr_await_cluster_ok(int slot0, int n, const int *ports)
{
	int64_t deadline = pb_mono_ms() + 60000;
	while (pb_mono_ms() < deadline) {
		if (hr_cluster_ok(slot0, n, ports))
			return true;
		h_nap_ms(100);
	}
	return false;
}

/* One cluster node in slot, on a free port below 55000 (into *port). */
static int start_cluster_node(int slot, int *port)
{
	do /* the cluster bus listens on port + 10000 */
		*port = hr_free_port();
	while (*port > 55000);
	char port_s[16], conf[64];
	snprintf(port_s, sizeof(port_s), "%d", *port);
	snprintf(conf, sizeof(conf), "nodes-%d.conf", *port);
	const char *a[] = {"--port",
			   port_s,
			   "--cluster-enabled",
			   "yes",
			   "--cluster-config-file",
			   conf,
			   "--cluster-node-timeout",
			   "2000",
			   NULL};
	return hr_start(slot, *port, a);
}

int hr_start_cluster(int slot0, int n, int replicas, int *ports)
{
	if (n > HR_MAX)
		return -1;
	char addr[HR_MAX][32], reps[16];
	const char *argv[HR_MAX + 8];
	int k = 0;
	argv[k++] = "redis-cli";
	argv[k++] = "--cluster";
	argv[k++] = "create";
	for (int i = 0; i < n; i++) {
		if (start_cluster_node(slot0 + i, &ports[i]))
			return -1;
		snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%d", ports[i]);
		argv[k++] = addr[i];
	}
	snprintf(reps, sizeof(reps), "%d", replicas);
	argv[k++] = "--cluster-replicas";
	argv[k++] = reps;
	argv[k++] = "--cluster-yes";
	argv[k] = NULL;
	if (hr_run(argv) != 0)
		return -1;
	return hr_await_cluster_ok(slot0, n, ports) ? 0 : -1;
}
