/*
 * harness.c: see harness.h. One harness per test process; every service it
 * starts is recorded here so that h_teardown() can stop it whatever state
 * a failed test left behind.
 *
 * Child processes are started with fork + execv; between the two the child
 * only calls async-signal-safe functions (open, dup2, execv, _exit) because
 * the parent runs librdkafka threads (the mock cluster).
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define H_MAX_WORKERS 32 /* a suite's workers and commands, all of them */

struct h_worker {
	pid_t pid;
	bool reaped;
	int status;
	char label[64];
	char log[512];
	char out[512];
};

static struct {
	char dir[256];
	char test[128];
	bool in_test; /* between h_begin and h_end */
	bool failed;  /* some test did not reach h_end */
	int seq;

	pid_t redis_pid;
	int redis_port;

	rd_kafka_t *mock_rk;
	rd_kafka_mock_cluster_t *mc;
	rd_kafka_t *producer;
	char bootstraps[512];
	int partitions;
	int nbrokers;
	volatile int delivery_errors;

	pid_t sim_pid;
	int sim_port;
	CURL *curl;

	h_worker_t *workers[H_MAX_WORKERS];
	int nworkers;
} H;

/* ---- small things ------------------------------------------------------- */

void h_nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int64_t h_time_ms(const char *s)
{
	if (!s)
		return -1;
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	int n = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	int64_t ms = 0;
	const char *p = s + n;
	if (*p == '.') {
		int digits = 0;
		p++;
		while (*p >= '0' && *p <= '9') {
			if (digits < 3) {
				ms = ms * 10 + (*p - '0');
				digits++;
			}
			p++;
		}
		while (digits++ < 3)
			ms *= 10;
	}
	int64_t off = 0;
	if (*p == '+' || *p == '-') {
		int hh = 0, mm = 0;
		if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
			return -1;
		off = (hh * 60 + mm) * 60000LL * (*p == '-' ? -1 : 1);
	} else if (*p != 'Z' && *p != 'z') {
		return -1;
	}
	return (int64_t)timegm(&tm) * 1000 + ms - off;
}

char *h_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
		if (cap - n - 1 == 0) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	fclose(f);
	if (!buf)
		return NULL;
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

const char *h_dir(void)
{
	return H.dir;
}

char *h_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", H.dir, name);
	return buf;
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	int port = -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* fork + exec argv with stdout/stderr to files (NULL: /dev/null). */
static pid_t spawn(const char *const *argv, const char *out, const char *err)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	int in = open("/dev/null", O_RDONLY);
	int o =
	    open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
	int e =
	    open(err ? err : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (in < 0 || o < 0 || e < 0)
		_exit(126);
	dup2(in, 0);
	dup2(o, 1);
	dup2(e, 2);
	execv(argv[0], (char *const *)argv);
	_exit(127);
}

/* Wait for pid up to timeout_ms; true if reaped (status in *status). */
static bool reap(pid_t pid, int timeout_ms, int *status)
{
	int64_t deadline = pb_mono_ms() + timeout_ms;
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD))
			return true;
		if (pb_mono_ms() >= deadline)
			return false;
		h_nap_ms(5);
	}
}

static void stop_pid(pid_t *pid, int sig, int grace_ms)
{
	if (*pid <= 0)
		return;
	int st;
	kill(*pid, sig);
	if (!reap(*pid, grace_ms, &st)) {
		kill(*pid, SIGKILL);
		waitpid(*pid, &st, 0);
	}
	*pid = 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* ---- lifecycle ---------------------------------------------------------- */

int h_group_teardown(void **state)
{
	(void)state;
	h_teardown();
	return 0;
}

int h_start_all(const char *name, int partitions)
{
	return h_setup(name) || h_redis_start() ||
		       h_kafka_start(1, partitions) || h_sim_start(0)
		   ? -1
		   : 0;
}

int h_setup(const char *name)
{
	memset(&H, 0, sizeof(H));
	snprintf(H.dir, sizeof(H.dir), "/tmp/pb-it-%s.XXXXXX", name);
	if (!mkdtemp(H.dir))
		return -1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	signal(SIGPIPE, SIG_IGN);
	if (!getenv("PB_BRIDGE") || !getenv("PB_SIM")) {
		fprintf(stderr, "harness: PB_BRIDGE and PB_SIM must be set "
				"(run the test through ctest)\n");
		return -1;
	}
	return 0;
}

void h_begin(const char *test)
{
	if (H.in_test)
		H.failed = true;
	snprintf(H.test, sizeof(H.test), "%s", test);
	H.in_test = true;
	fprintf(stderr, "[harness] %s: begin (dir %s)\n", test, H.dir);
}

void h_end(void)
{
	H.in_test = false;
	fprintf(stderr, "[harness] %s: end\n", H.test);
}

void h_teardown(void)
{
	bool failed = H.failed || H.in_test;
	for (int i = 0; i < H.nworkers; i++) {
		h_worker_t *w = H.workers[i];
		if (failed)
			h_worker_dump(w, 40);
		if (!w->reaped && w->pid > 0) {
			kill(w->pid, SIGKILL);
			waitpid(w->pid, &w->status, 0);
			w->reaped = true;
		}
		free(w);
	}
	H.nworkers = 0;
	h_sim_stop();
	h_redis_stop();
	h_kafka_stop();
	if (H.curl) {
		curl_easy_cleanup(H.curl);
		H.curl = NULL;
	}
	if (H.dir[0]) {
		if (failed || getenv("PB_IT_KEEP"))
			fprintf(stderr, "[harness] kept %s\n", H.dir);
		else
			nftw(H.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	curl_global_cleanup();
}

/* ---- Redis -------------------------------------------------------------- */

bool h_redis_ping(void)
{
	if (H.redis_port <= 0)
		return false;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return false;
	struct timeval tv = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)H.redis_port);
	bool ok = false;
	char buf[16] = {0};
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    write(fd, "PING\r\n", 6) == 6 && read(fd, buf, sizeof(buf) - 1) > 0)
		ok = strncmp(buf, "+PONG", 5) == 0;
	close(fd);
	return ok;
}

static int redis_spawn(void)
{
	char port[16], log[512];
	snprintf(port, sizeof(port), "%d", H.redis_port);
	h_path(log, sizeof(log), "redis.log");
	const char *exe = "/usr/bin/redis-server";
	if (access(exe, X_OK) != 0)
		exe = "/usr/local/bin/redis-server";
	const char *argv[] = {exe,	   "--port",	  port, "--bind",
			      "127.0.0.1", "--save",	  "",	"--appendonly",
			      "no",	   "--daemonize", "no", "--dir",
			      H.dir,	   NULL};
	H.redis_pid = spawn(argv, log, log);
	if (H.redis_pid < 0)
		return -1;
	int64_t deadline = pb_mono_ms() + 10000;
	while (pb_mono_ms() < deadline) {
		if (h_redis_ping())
			return 0;
		int st;
		if (waitpid(H.redis_pid, &st, WNOHANG) == H.redis_pid) {
			H.redis_pid = 0;
			return -1;
		}
		h_nap_ms(10);
	}
	return -1;
}

int h_redis_start(void)
{
	for (int tries = 0; tries < 5; tries++) {
		H.redis_port = free_port();
		if (H.redis_port > 0 && redis_spawn() == 0)
			return 0;
		stop_pid(&H.redis_pid, SIGKILL, 1000);
	}
	return -1;
}

void h_redis_stop(void)
{
	stop_pid(&H.redis_pid, SIGTERM, 5000);
}

void h_redis_kill(void)
{
	stop_pid(&H.redis_pid, SIGKILL, 5000);
}

int h_redis_restart(void)
{
	h_redis_stop();
	return redis_spawn();
}

int h_redis_port(void)
{
	return H.redis_port;
}

/* ---- Kafka -------------------------------------------------------------- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
			void *opaque)
{
	(void)rk;
	(void)opaque;
	if (m->err) {
		H.delivery_errors++;
		fprintf(stderr, "[harness] delivery failed: %s\n",
			rd_kafka_err2str(m->err));
	}
}

/* The harness's own producer (also used for watermark queries). */
static int producer_new(void)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", H.bootstraps, err,
			      sizeof(err)) ||
	    rd_kafka_conf_set(conf, "linger.ms", "1", err, sizeof(err)) ||
	    /* records beyond the worker's bounds (too_large tests) */
	    rd_kafka_conf_set(conf, "message.max.bytes", "16000000", err,
			      sizeof(err)) ||
	    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err))) {
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	H.producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!H.producer) {
		fprintf(stderr, "[harness] producer: %s\n", err);
		return -1;
	}
	return 0;
}

int h_kafka_start(int nbrokers, int partitions)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
	H.mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!H.mock_rk) {
		fprintf(stderr, "[harness] mock handle: %s\n", err);
		return -1;
	}
	H.mc = rd_kafka_mock_cluster_new(H.mock_rk, nbrokers);
	if (!H.mc)
		return -1;
	H.nbrokers = nbrokers;
	H.partitions = partitions;
	const char *topics[] = {H_TOPIC_ORDERS, H_TOPIC_INBOUND,
				H_TOPIC_RESULTS, H_TOPIC_DLQ};
	for (size_t i = 0; i < 4; i++)
		if (rd_kafka_mock_topic_create(H.mc, topics[i], partitions,
					       nbrokers < 3 ? nbrokers : 3))
			return -1;
	snprintf(H.bootstraps, sizeof(H.bootstraps), "%s",
		 rd_kafka_mock_cluster_bootstraps(H.mc));
	return producer_new();
}

void h_kafka_stop(void)
{
	if (H.producer) {
		rd_kafka_flush(H.producer, 2000);
		rd_kafka_destroy(H.producer);
		H.producer = NULL;
	}
	if (H.mc) {
		rd_kafka_mock_cluster_destroy(H.mc);
		H.mc = NULL;
	}
	if (H.mock_rk) {
		rd_kafka_destroy(H.mock_rk);
		H.mock_rk = NULL;
	}
}

const char *h_kafka_bootstraps(void)
{
	return H.bootstraps;
}

int h_kafka_partitions(void)
{
	return H.partitions;
}

int h_kafka_set_down(bool down)
{
	if (!H.mc)
		return -1;
	for (int id = 1; id <= H.nbrokers; id++) {
		rd_kafka_resp_err_t e =
		    down ? rd_kafka_mock_broker_set_down(H.mc, id)
			 : rd_kafka_mock_broker_set_up(H.mc, id);
		if (e)
			return -1;
	}
	/* Brokers back: a fresh producer. The old one sat through the
	 * outage in reconnect backoff, and librdkafka 2.0.2's watermark
	 * query (h_topic_count) on it can block far beyond its timeout. */
	if (!down && H.producer) {
		rd_kafka_flush(H.producer, 10000);
		rd_kafka_destroy(H.producer);
		H.producer = NULL;
		return producer_new();
	}
	return 0;
}

int h_kafka_refuse_commits(int n)
{
	enum { API_OFFSET_COMMIT = 8 }; /* the Kafka protocol's ApiKey */
	if (!H.mc || n <= 0 || n > 64)
		return -1;
	rd_kafka_resp_err_t errs[64];
	for (int i = 0; i < n; i++)
		errs[i] = RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION;
	rd_kafka_mock_push_request_errors_array(H.mc, API_OFFSET_COMMIT,
						(size_t)n, errs);
	return 0;
}

int h_produce_nowait(const char *topic, const char *key, const char *value)
{
	if (!H.producer)
		return -1;
	for (;;) {
		rd_kafka_resp_err_t e = rd_kafka_producev(
		    H.producer, RD_KAFKA_V_TOPIC(topic),
		    RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
		    RD_KAFKA_V_VALUE((void *)value, value ? strlen(value) : 0),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			rd_kafka_poll(H.producer, 10);
			continue;
		}
		rd_kafka_poll(H.producer, 0);
		return e ? -1 : 0;
	}
}

int h_produce_raw(const char *topic, int partition, const void *key,
		  size_t key_len, const void *value, size_t value_len)
{
	if (!H.producer)
		return -1;
	for (;;) {
		rd_kafka_resp_err_t e = rd_kafka_producev(
		    H.producer, RD_KAFKA_V_TOPIC(topic),
		    RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA
						       : partition),
		    RD_KAFKA_V_KEY(key, key ? key_len : 0),
		    RD_KAFKA_V_VALUE((void *)value, value ? value_len : 0),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			rd_kafka_poll(H.producer, 10);
			continue;
		}
		rd_kafka_poll(H.producer, 0);
		return e ? -1 : 0;
	}
}

rd_kafka_mock_cluster_t *h_kafka_mock(void)
{
	return H.mc;
}

int h_flush(int timeout_ms)
{
	if (!H.producer)
		return -1;
	int before = H.delivery_errors;
	if (rd_kafka_flush(H.producer, timeout_ms))
		return -1;
	return H.delivery_errors == before ? 0 : -1;
}

int h_produce(const char *topic, const char *key, const char *value)
{
	if (h_produce_nowait(topic, key, value))
		return -1;
	return h_flush(10000);
}

int h_produce_json(const char *topic, const json_t *value, bool wait)
{
	char key[256] = "";
	const char *acct = json_string_value(json_object_get(value, "account"));
	const char *won = json_string_value(json_object_get(
	    json_object_get(value, "order"), "workOrderNumber"));
	if (!won)
		won = json_string_value(
		    json_object_get(json_object_get(value, "item"), "key1"));
	snprintf(key, sizeof(key), "%s/%s", acct ? acct : "", won ? won : "");
	char *text = json_dumps(value, JSON_COMPACT);
	if (!text)
		return -1;
	int rc = wait ? h_produce(topic, key, text)
		      : h_produce_nowait(topic, key, text);
	free(text);
	return rc;
}

int h_produce_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	int n = 0;
	while (getline(&line, &cap, f) > 0) {
		if (line[0] == '\n' || line[0] == '#')
			continue;
		json_error_t je;
		json_t *rec = json_loads(line, 0, &je);
		if (!rec) {
			fprintf(stderr, "[harness] %s:%d: %s\n", path, je.line,
				je.text);
			n = -1;
			break;
		}
		const char *topic =
		    json_string_value(json_object_get(rec, "topic"));
		const char *key =
		    json_string_value(json_object_get(rec, "key"));
		const char *raw =
		    json_string_value(json_object_get(rec, "raw"));
		char *text = NULL;
		json_t *v = json_object_get(rec, "value");
		if (!raw && v)
			text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		int rc = h_produce_nowait(topic ? topic : H_TOPIC_ORDERS, key,
					  raw ? raw : text);
		free(text);
		json_decref(rec);
		if (rc) {
			n = -1;
			break;
		}
		n++;
	}
	free(line);
	fclose(f);
	if (n >= 0 && h_flush(10000))
		n = -1;
	return n;
}

long h_topic_count(const char *topic)
{
	if (!H.producer)
		return -1;
	long total = 0;
	for (int p = 0; p < H.partitions; p++) {
		int64_t lo, hi;
		if (rd_kafka_query_watermark_offsets(H.producer, topic, p, &lo,
						     &hi, 5000))
			return -1;
		total += (long)(hi - lo);
	}
	return total;
}

long h_await_count(const char *topic, long n, int timeout_ms)
{
	int64_t deadline = pb_mono_ms() + timeout_ms;
	long c = -1;
	for (;;) {
		c = h_topic_count(topic);
		if (c >= n || pb_mono_ms() >= deadline)
			return c;
		h_nap_ms(50);
	}
}

static int cmp_rec(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	json_int_t px = json_integer_value(json_object_get(x, "partition"));
	json_int_t py = json_integer_value(json_object_get(y, "partition"));
	if (px != py)
		return px < py ? -1 : 1;
	json_int_t ox = json_integer_value(json_object_get(x, "offset"));
	json_int_t oy = json_integer_value(json_object_get(y, "offset"));
	return ox < oy ? -1 : ox > oy;
}

static json_t *record_json(const rd_kafka_message_t *m)
{
	json_t *r = json_object();
	json_object_set_new(r, "topic",
			    json_string(rd_kafka_topic_name(m->rkt)));
	json_object_set_new(
	    r, "key", m->key ? json_stringn(m->key, m->key_len) : json_null());
	json_object_set_new(r, "partition", json_integer(m->partition));
	json_object_set_new(r, "offset", json_integer(m->offset));
	json_t *hs = json_object();
	rd_kafka_headers_t *hdrs = NULL;
	if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		const char *name;
		const void *val;
		size_t size;
		for (size_t i = 0;
		     rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == 0;
		     i++)
			json_object_set_new(hs, name,
					    val ? json_stringn(val, size)
						: json_null());
	}
	json_object_set_new(r, "headers", hs);
	if (m->payload) {
		json_object_set_new(r, "raw", json_stringn(m->payload, m->len));
		json_t *v = json_loadb(m->payload, m->len, 0, NULL);
		json_object_set_new(r, "value", v ? v : json_null());
	} else {
		json_object_set_new(r, "raw", json_null());
		json_object_set_new(r, "value", json_null());
	}
	return r;
}

json_t *h_consume(const char *topic, long min_count, int timeout_ms)
{
	char err[512], group[64];
	snprintf(group, sizeof(group), "pb-it-reader-%d-%d", (int)getpid(),
		 ++H.seq);
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", H.bootstraps, err,
			      sizeof(err)) ||
	    rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)) ||
	    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err,
			      sizeof(err)) ||
	    rd_kafka_conf_set(conf, "enable.partition.eof", "true", err,
			      sizeof(err)) ||
	    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err))) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_t *rk =
	    rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	if (!rk) {
		fprintf(stderr, "[harness] consumer: %s\n", err);
		return NULL;
	}
	rd_kafka_poll_set_consumer(rk);
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(H.partitions);
	for (int p = 0; p < H.partitions; p++)
		rd_kafka_topic_partition_list_add(l, topic, p)->offset =
		    RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_assign(rk, l);
	rd_kafka_topic_partition_list_destroy(l);

	bool eof[256] = {0};
	size_t n = 0, cap = 256;
	json_t **recs = malloc(cap * sizeof(*recs));
	int64_t deadline = pb_mono_ms() + timeout_ms;
	while (recs && pb_mono_ms() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
		if (m) {
			if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
				if (m->partition >= 0 && m->partition < 256)
					eof[m->partition] = true;
			} else if (!m->err) {
				if (m->partition >= 0 && m->partition < 256)
					eof[m->partition] = false;
				if (n == cap) {
					json_t **nr = realloc(
					    recs, 2 * cap * sizeof(*recs));
					if (!nr)
						break;
					recs = nr;
					cap *= 2;
				}
				recs[n++] = record_json(m);
			}
			rd_kafka_message_destroy(m);
		}
		bool all = true;
		for (int p = 0; p < H.partitions && p < 256; p++)
			all = all && eof[p];
		if (all && (long)n >= min_count)
			break;
	}
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	json_t *arr = json_array();
	if (recs) {
		qsort(recs, n, sizeof(*recs), cmp_rec);
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, recs[i]);
		free(recs);
	}
	return arr;
}

/* ---- the simulator ------------------------------------------------------ */

int h_sim_start(int latency_ms)
{
	char pf[512], log[512], lat[16];
	h_path(pf, sizeof(pf), "sim.port");
	h_path(log, sizeof(log), "sim.log");
	snprintf(lat, sizeof(lat), "%d", latency_ms);
	const char *argv[] = {getenv("PB_SIM"), "--port", "0",
			      "--port-file",	pf,	  "--quiet",
			      "--latency-ms",	lat,	  NULL};
	H.sim_pid = spawn(argv, NULL, log);
	if (H.sim_pid < 0)
		return -1;
	int64_t deadline = pb_mono_ms() + 10000;
	while (pb_mono_ms() < deadline) {
		FILE *f = fopen(pf, "r");
		if (f) {
			int port = 0;
			int ok = fscanf(f, "%d", &port) == 1;
			fclose(f);
			if (ok && port > 0) {
				H.sim_port = port;
				return 0;
			}
		}
		int st;
		if (waitpid(H.sim_pid, &st, WNOHANG) == H.sim_pid) {
			H.sim_pid = 0;
			return -1;
		}
		h_nap_ms(10);
	}
	return -1;
}

void h_sim_stop(void)
{
	stop_pid(&H.sim_pid, SIGTERM, 5000);
}

int h_sim_port(void)
{
	return H.sim_port;
}

size_t h_curl_collect(char *ptr, size_t size, size_t nmemb, void *ud)
{
	h_body_t *b = ud;
	size_t n = size * nmemb;
	char *nd = realloc(b->data, b->len + n + 1);
	if (!nd)
		return 0;
	memcpy(nd + b->len, ptr, n);
	b->data = nd;
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/* One HTTP call; returns the status (0 on failure) and the parsed body. */
static long http_call(const char *method, const char *url, const char *body,
		      json_t **answer)
{
	if (!H.curl)
		H.curl = curl_easy_init();
	CURL *c = H.curl;
	if (!c)
		return 0;
	h_body_t b = {0};
	struct curl_slist *hdrs =
	    curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_curl_collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	}
	long status = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdrs);
	if (answer)
		*answer = b.data ? json_loads(b.data, 0, NULL) : NULL;
	free(b.data);
	return status;
}

static json_t *sim_call(const char *method, const char *path,
			const json_t *body)
{
	char url[1024];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", H.sim_port, path);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_t *ans = NULL;
	long st =
	    http_call(method, url,
		      text ? text : (strcmp(method, "POST") ? NULL : ""), &ans);
	free(text);
	if (st == 0)
		fprintf(stderr, "[harness] sim %s %s: no answer\n", method,
			path);
	return ans;
}

json_t *h_sim_get(const char *path)
{
	return sim_call("GET", path, NULL);
}

json_t *h_sim_post(const char *path, const json_t *body)
{
	return sim_call("POST", path, body);
}

json_t *h_sim_delete(const char *path)
{
	return sim_call("DELETE", path, NULL);
}

int h_sim_faults(const char *json_text)
{
	char url[256];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_sim/faults",
		 H.sim_port);
	json_t *ans = NULL;
	long st = http_call("POST", url, json_text, &ans);
	if (st != 200) {
		char *t = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
		fprintf(stderr, "[harness] faults %s -> %ld %s\n", json_text,
			st, t ? t : "");
		free(t);
	}
	json_decref(ans);
	return st == 200 ? 0 : -1;
}

json_t *h_sim_requests(const char *api_key)
{
	char path[512];
	if (api_key)
		snprintf(path, sizeof(path), "/_sim/requests?apiKey=%s",
			 api_key);
	else
		snprintf(path, sizeof(path), "/_sim/requests");
	json_t *a = h_sim_get(path);
	json_t *r = json_incref(json_object_get(a, "requests"));
	json_decref(a);
	return r ? r : json_array();
}

json_t *h_sim_orders(const char *api_key)
{
	char path[512];
	snprintf(path, sizeof(path), "/_sim/orders?apiKey=%s", api_key);
	json_t *a = h_sim_get(path);
	json_t *r = json_incref(json_object_get(a, "orders"));
	json_decref(a);
	return r ? r : json_object();
}

json_t *h_sim_stats(void)
{
	return h_sim_get("/_sim/stats");
}

long h_http_status(int port, const char *path)
{
	char url[512];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	return http_call("GET", url, NULL, NULL);
}

long h_http_get(int port, const char *path, char **body)
{
	char url[512];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	CURL *c = curl_easy_init();
	h_body_t b = {0};
	long status = 0;
	if (c) {
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_curl_collect);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		if (curl_easy_perform(c) == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_cleanup(c);
	}
	*body = b.data ? b.data : strdup("");
	return status;
}

long h_await_http_status(int port, const char *path, long want, int timeout_ms)
{
	int64_t end = pb_mono_ms() + timeout_ms;
	long st;
	for (;;) {
		st = h_http_status(port, path);
		if (st == want || pb_mono_ms() >= end)
			return st;
		h_nap_ms(50);
	}
}

double h_await_metric(int port, const char *name, double min, int timeout_ms)
{
	char needle[160];
	snprintf(needle, sizeof(needle), "\n%s ", name);
	int64_t end = pb_mono_ms() + timeout_ms;
	double v = -1;
	for (;;) {
		char *m = NULL;
		if (h_http_get(port, "/metrics", &m) == 200) {
			const char *at = strstr(m, needle);
			if (at)
				v = atof(at + strlen(needle));
		}
		free(m);
		if (v >= min || pb_mono_ms() >= end)
			return v;
		h_nap_ms(50);
	}
}

/* ---- configuration ------------------------------------------------------ */

static void deep_merge(json_t *dst, const json_t *src)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)src, k, v)
	{
		json_t *d = json_object_get(dst, k);
		if (json_is_object(d) && json_is_object(v))
			deep_merge(d, v);
		else
			json_object_set_new(dst, k, json_deep_copy(v));
	}
}

int h_write_config(const char *name, const json_t *overrides, char *out,
		   size_t out_size)
{
	char redis[128];
	snprintf(redis, sizeof(redis), "redis://127.0.0.1:%d/0", H.redis_port);
	json_t *c = json_pack(
	    "{s:{s:s, s:s, s:s, s:s, s:s, s:s}, s:{s:s, s:s, s:s, s:s},"
	    " s:{s:s, s:s}, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i},"
	    " s:{s:s}, s:{s:i}}",
	    "kafka", "bootstrap.servers", H.bootstraps, "group.id", "pb-it",
	    "log_level", "4", "session.timeout.ms", "6000",
	    "heartbeat.interval.ms", "500",
	    "topic.metadata.refresh.interval.ms", "2000", "topics", "orders",
	    H_TOPIC_ORDERS, "inbound", H_TOPIC_INBOUND, "results",
	    H_TOPIC_RESULTS, "dlq", H_TOPIC_DLQ, "redis", "url", redis,
	    "keyPrefix", "pb:", "pruvan", "timeoutMs", 2000, "maxAttempts", 5,
	    "backoffBaseMs", 20, "backoffMaxMs", 200, "batchMaxOrders", 50,
	    "batchMaxWaitMs", 10, "maxInFlight", 8, "circuitFailures", 1000,
	    "circuitOpenMs", 200, "http", "listen", "127.0.0.1:0", "worker",
	    "shutdownGraceMs", 10000);
	if (!c)
		return -1;
	if (overrides)
		deep_merge(c, overrides);
	if (!json_object_get(c, "accounts"))
		json_object_set_new(c, "accounts",
				    json_pack("{s:{s:s, s:[s]}}", "acme",
					      "mode", "internal", "users",
					      "jsmith"));
	const char *acct;
	json_t *a;
	json_object_foreach(json_object_get(c, "accounts"), acct, a)
	{
		if (json_object_get(a, "pushKeyUrl"))
			continue;
		char env[128] = "PB_IT_KEY_", url[512];
		size_t n = strlen(env);
		for (const char *p = acct; *p && n < sizeof(env) - 1; p++)
			env[n++] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 32)
				   : (*p >= 'A' && *p <= 'Z') ||
					   (*p >= '0' && *p <= '9')
				       ? *p
				       : '_';
		env[n] = '\0';
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/?apiKey=%s",
			 H.sim_port, acct);
		setenv(env, url, 1);
		char src[160];
		snprintf(src, sizeof(src), "env:%s", env);
		json_object_set_new(a, "pushKeyUrl", json_string(src));
	}
	h_path(out, out_size, name);
	int rc = json_dump_file(c, out, JSON_INDENT(2));
	json_decref(c);
	return rc;
}

/* ---- workers ------------------------------------------------------------ */

h_worker_t *h_worker_start(const char *label, const char *const *args)
{
	if (H.nworkers >= H_MAX_WORKERS)
		return NULL;
	h_worker_t *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	snprintf(w->label, sizeof(w->label), "%s", label);
	char name[96];
	snprintf(name, sizeof(name), "%s.log", label);
	h_path(w->log, sizeof(w->log), name);
	snprintf(name, sizeof(name), "%s.out", label);
	h_path(w->out, sizeof(w->out), name);
	const char *argv[32];
	int n = 0;
	argv[n++] = getenv("PB_BRIDGE");
	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	/* truncate the logs so that a restarted label starts fresh */
	FILE *f = fopen(w->log, "a");
	if (f)
		fclose(f);
	w->pid = spawn(argv, w->out, w->log);
	if (w->pid < 0) {
		free(w);
		return NULL;
	}
	H.workers[H.nworkers++] = w;
	return w;
}

h_worker_t *h_worker_run(const char *label, const char *cfg, bool exit_on_eof)
{
	const char *args[] = {"run", "-c", cfg,
			      exit_on_eof ? "--exit-on-eof" : NULL, NULL};
	return h_worker_start(label, args);
}

int h_worker_wait(h_worker_t *w, int timeout_ms)
{
	if (!w)
		return -1;
	if (!w->reaped) {
		if (!reap(w->pid, timeout_ms, &w->status))
			return -1;
		w->reaped = true;
	}
	if (WIFEXITED(w->status))
		return WEXITSTATUS(w->status);
	if (WIFSIGNALED(w->status))
		return 128 + WTERMSIG(w->status);
	return -1;
}

int h_worker_signal(h_worker_t *w, int sig)
{
	if (!w || w->reaped)
		return -1;
	return kill(w->pid, sig);
}

bool h_worker_running(h_worker_t *w)
{
	if (!w || w->reaped)
		return false;
	if (waitpid(w->pid, &w->status, WNOHANG) == w->pid) {
		w->reaped = true;
		return false;
	}
	return true;
}

pid_t h_worker_pid(const h_worker_t *w)
{
	return w ? w->pid : -1;
}

const char *h_worker_log(const h_worker_t *w)
{
	return w->log;
}

const char *h_worker_out(const h_worker_t *w)
{
	return w->out;
}

void h_worker_dump(const h_worker_t *w, int lines)
{
	if (!w)
		return;
	size_t len = 0;
	char *text = h_read_file(w->log, &len);
	if (!text)
		return;
	const char *p = text + len;
	int seen = 0;
	while (p > text && seen <= lines) {
		p--;
		if (*p == '\n')
			seen++;
	}
	fprintf(stderr, "---- last %d lines of %s (%s) ----\n%s\n----\n", lines,
		w->label, w->log, p);
	free(text);
}

int h_worker_log_count(const h_worker_t *w, const char *needle)
{
	char *text = h_read_file(w->log, NULL);
	if (!text)
		return 0;
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	free(text);
	return n;
}

bool h_worker_log_has(const h_worker_t *w, const char *needle, int timeout_ms)
{
	int64_t deadline = pb_mono_ms() + timeout_ms;
	for (;;) {
		if (h_worker_log_count(w, needle) > 0)
			return true;
		if (pb_mono_ms() >= deadline)
			return false;
		h_nap_ms(20);
	}
}

int h_worker_ops_port(const h_worker_t *w, int timeout_ms)
{
	int64_t deadline = pb_mono_ms() + timeout_ms;
	for (;;) {
		char *text = h_read_file(w->log, NULL);
		char *line =
		    text ? strstr(text, "operations endpoint listening") : NULL;
		int port = 0;
		if (line) {
			while (line > text && line[-1] != '\n')
				line--;
			char *end = strchr(line, '\n');
			json_t *j = json_loadb(
			    line, end ? (size_t)(end - line) : strlen(line), 0,
			    NULL);
			json_t *pv = json_object_get(j, "port");
			if (json_is_string(pv))
				port = (int)strtol(json_string_value(pv), NULL,
						   10);
			else if (json_is_integer(pv))
				port = (int)json_integer_value(pv);
			json_decref(j);
		}
		free(text);
		if (port > 0)
			return port;
		if (pb_mono_ms() >= deadline)
			return -1;
		h_nap_ms(20);
	}
}

int h_bridge_cmd(const char *const *args, int timeout_ms, char **out)
{
	char label[32];
	snprintf(label, sizeof(label), "cmd-%d", ++H.seq);
	h_worker_t *w = h_worker_start(label, args);
	if (!w)
		return -1;
	int rc = h_worker_wait(w, timeout_ms);
	if (rc < 0) {
		kill(w->pid, SIGKILL);
		h_worker_wait(w, 5000);
	}
	if (out)
		*out = h_read_file(w->out, NULL);
	if (rc != 0)
		h_worker_dump(w, 20);
	return rc;
}

/* ---- events ------------------------------------------------------------- */

static json_t *occurred(int64_t version)
{
	char buf[40];
	time_t t = (time_t)(1767225600 + version); /* 2026-01-01 + v s */
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

json_t *h_event(const char *event_id, const char *account, const char *action,
		const char *won, int64_t version, const json_t *fields)
{
	json_t *order = json_pack("{s:s}", "workOrderNumber", won);
	if (fields)
		json_object_update(order, (json_t *)fields);
	json_t *e = json_pack("{s:s, s:s, s:s, s:o, s:I, s:o}", "eventId",
			      event_id, "account", account, "action", action,
			      "occurredAt", occurred(version), "version",
			      (json_int_t)version, "order", order);
	return e;
}

json_t *h_event_update(const char *event_id, const char *account,
		       const char *won, int64_t version, const char *info)
{
	json_t *f = json_pack("{s:s}", "workOrderInfo", info);
	json_t *e = h_event(event_id, account, "update", won, version, f);
	json_decref(f);
	return e;
}

json_t *h_event_create(const char *event_id, const char *account,
		       const char *won, int64_t version)
{
	json_t *f =
	    json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[{s:s}]}",
		      "address1", "111 East Main", "city", "Round Rock",
		      "state", "TX", "zip", "78664", "workOrderInfo",
		      "Call Office 555-111-2222", "clientDueDate",
		      "2020-05-28T12:00:00Z", "dueDate", "2020-05-25 1200 +0",
		      "services", "serviceName", "Task-01 Mow Grass");
	json_t *e = h_event(event_id, account, "create", won, version, f);
	json_decref(f);
	return e;
}

/* ---- outcomes ----------------------------------------------------------- */

json_t *h_by_event(const json_t *records)
{
	json_t *idx = json_object();
	size_t i;
	json_t *r;
	json_array_foreach(records, i, r)
	{
		json_t *v = json_object_get(r, "value");
		const char *id =
		    json_string_value(json_object_get(v, "eventId"));
		if (!id)
			id = "(null)";
		json_t *list = json_object_get(idx, id);
		if (!list) {
			list = json_array();
			json_object_set_new(idx, id, list);
		}
		json_array_append(list, v);
	}
	return idx;
}

json_t *h_one(const json_t *by_event, const char *event_id)
{
	json_t *list = json_object_get(by_event, event_id);
	if (json_array_size(list) != 1) {
		char *t = list ? json_dumps(list, JSON_COMPACT) : NULL;
		fprintf(stderr,
			"[harness] event %s: expected 1 outcome, got %zu: %s\n",
			event_id, json_array_size(list), t ? t : "");
		free(t);
		return NULL;
	}
	return json_array_get(list, 0);
}

int h_write_values(const json_t *records, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	size_t i;
	json_t *r;
	json_array_foreach(records, i, r)
	{
		char *t = json_dumps(json_object_get(r, "value"),
				     JSON_COMPACT | JSON_ENCODE_ANY);
		if (t)
			fprintf(f, "%s\n", t);
		free(t);
	}
	return fclose(f);
}

/* ---- checks ------------------------------------------------------------- */

static const char schema_py[] =
    "import json, sys\n"
    "import jsonschema\n"
    "schema = json.load(open(sys.argv[1]))\n"
    "v = jsonschema.Draft202012Validator(schema,"
    " format_checker=jsonschema.FormatChecker())\n"
    "bad = 0\n"
    "for n, line in enumerate(open(sys.argv[2]), 1):\n"
    "    if not line.strip():\n"
    "        continue\n"
    "    errs = list(v.iter_errors(json.loads(line)))\n"
    "    for e in errs:\n"
    "        print('record %d: %s at %s' % (n, e.message,"
    " list(e.absolute_path)), file=sys.stderr)\n"
    "    bad += 1 if errs else 0\n"
    "sys.exit(1 if bad else 0)\n";

int h_check_schema(const json_t *records, const char *schema)
{
	const char *py = getenv("PB_PYTHON3");
	const char *dir = getenv("PB_SCHEMAS");
	if (!py || !py[0] || !dir) {
		fprintf(stderr, "[harness] PB_PYTHON3 / PB_SCHEMAS not set\n");
		return -1;
	}
	int bad = 0;
	size_t i;
	json_t *r;
	json_array_foreach(records, i, r)
	{
		const char *raw = json_string_value(json_object_get(r, "raw"));
		if (raw && strstr(raw, "apiKey=")) {
			fprintf(stderr,
				"[harness] record %zu carries a PushKey\n", i);
			bad++;
		}
	}
	char vals[512], spath[512], log[512], name[64];
	snprintf(name, sizeof(name), "schema-%d.jsonl", ++H.seq);
	h_path(vals, sizeof(vals), name);
	snprintf(name, sizeof(name), "schema-%d.log", H.seq);
	h_path(log, sizeof(log), name);
	snprintf(spath, sizeof(spath), "%s/%s", dir, schema);
	if (h_write_values(records, vals))
		return -1;
	const char *argv[] = {py, "-c", schema_py, spath, vals, NULL};
	pid_t pid = spawn(argv, log, log);
	int st = 0;
	if (pid < 0 || !reap(pid, 60000, &st)) {
		if (pid > 0)
			stop_pid(&pid, SIGKILL, 1000);
		return -1;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char *text = h_read_file(log, NULL);
		fprintf(stderr, "[harness] %s: records not valid:\n%s\n",
			schema, text ? text : "");
		free(text);
		bad++;
	}
	return bad ? -1 : 0;
}

json_t *h_sim_pushes_of(const char *api_key, const char *won)
{
	json_t *reqs = h_sim_requests(api_key);
	json_t *out = json_array();
	size_t i, k;
	json_t *q, *wo;
	json_array_foreach(reqs, i, q)
	{
		json_t *wos = json_object_get(q, "workOrders");
		json_array_foreach(wos, k, wo)
		{
			const char *n = json_string_value(
			    json_object_get(wo, "workOrderNumber"));
			if (!n || strcmp(n, won) != 0)
				continue;
			json_t *e = json_pack(
			    "{s:O?,s:O?,s:O?,s:O?,s:I,s:O}", "seq",
			    json_object_get(q, "seq"), "status",
			    json_object_get(q, "status"), "fault",
			    json_object_get(q, "fault"), "receivedAt",
			    json_object_get(q, "receivedAt"), "batch",
			    (json_int_t)json_array_size(wos), "workOrder", wo);
			if (e)
				json_array_append_new(out, e);
			break;
		}
	}
	json_decref(reqs);
	return out;
}

const char *h_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

int h_produce_series(const char *prefix, const char *account, int orders,
		     int per_order)
{
	int rc = 0;
	for (int k = 0; k < per_order; k++) {
		for (int o = 0; o < orders; o++) {
			char id[128], won[128];
			snprintf(id, sizeof(id), "%s-%02d-%d", prefix, o, k);
			snprintf(won, sizeof(won), "WO-%s-%02d", prefix, o);
			json_t *ev =
			    k == 0
				? h_event_create(id, account, won, 1)
				: h_event_update(id, account, won, k + 1, id);
			if (k == 0)
				json_object_set_new(
				    json_object_get(ev, "order"),
				    "workOrderInfo", json_string(id));
			if (h_produce_json(H_TOPIC_ORDERS, ev, false))
				rc = -1;
			json_decref(ev);
		}
	}
	return h_flush(10000) ? -1 : rc;
}
