/*
 * mock-kafka.c: a Kafka cluster for the demo, the benchmarks and
 * hand-testing, speaking the real wire protocol: librdkafka's mock cluster
 * (rdkafka_mock.h) hosted in a process of its own.
 *
 *   pb-mock-kafka [--brokers N] [--topic NAME:PARTITIONS]...
 *                 [--bootstrap-file PATH]
 *
 * Prints the bootstrap servers on stdout (and writes them to PATH via
 * rename, so a script can wait for the file), then serves until SIGTERM or
 * SIGINT. Commands on stdin, one per line, inject faults:
 *   down ID | up ID        take broker ID (-1: all) down / bring it back
 *   rtt ID MS              add round-trip latency to broker ID
 * Each command answers "ok" or "error: ..." on stdout.
 *
 * The mock cluster keeps a bounded log per partition (librdkafka's mock
 * trims old segments), which the benchmark checks for.
 */
#include <errno.h>
#include <limits.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static volatile sig_atomic_t stop_flag = 0;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static int write_file_atomic(const char *path, const char *text)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	fputs(text, f);
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, path);
}

/* The next whole number of *p (after blanks) into *out, advancing *p;
 * false when there is none or it does not fit an int. */
static bool next_int(const char **p, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(*p, &end, 10);
	if (end == *p || errno != 0 || v < INT_MIN || v > INT_MAX)
		return false;
	*p = end;
	*out = (int)v;
	return true;
}

/* "CMD [ID [MS]]" into its words; returns how many were read, as sscanf
 * would (0 when there is no command word, or it is longer than cmd). */
static int parse_command(const char *line, char *cmd, size_t size, int *id,
			 int *ms)
{
	const char *p = line + strspn(line, " \t\r\n");
	size_t len = strcspn(p, " \t\r\n");
	if (len == 0 || len >= size)
		return 0;
	memcpy(cmd, p, len);
	cmd[len] = '\0';
	p += len;
	if (!next_int(&p, id))
		return 1;
	return next_int(&p, ms) ? 3 : 2;
}

static void handle_command(rd_kafka_mock_cluster_t *mc, char *line)
{
	char cmd[16];
	int id = 0, ms = 0;
	int n = parse_command(line, cmd, sizeof(cmd), &id, &ms);
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
	if (n >= 2 && strcmp(cmd, "down") == 0)
		err = rd_kafka_mock_broker_set_down(mc, id);
	else if (n >= 2 && strcmp(cmd, "up") == 0)
		err = rd_kafka_mock_broker_set_up(mc, id);
	else if (n == 3 && strcmp(cmd, "rtt") == 0)
		err = rd_kafka_mock_broker_set_rtt(mc, id, ms);
	else {
		printf(
		    "error: unknown command (down ID | up ID | rtt ID MS)\n");
		fflush(stdout);
		return;
	}
	if (err)
		printf("error: %s\n", rd_kafka_err2str(err));
	else
		printf("ok\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int brokers = 1;
	const char *bootstrap_file = NULL;
	const char *topics[64];
	int ntopics = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
			int64_t v;
			if (!pb_parse_i64(argv[++i], &v) || v < 1 || v > 16) {
				fprintf(stderr, "--brokers: 1..16\n");
				return 2;
			}
			brokers = (int)v;
		} else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc &&
			   ntopics < 64) {
			topics[ntopics++] = argv[++i];
		} else if (strcmp(argv[i], "--bootstrap-file") == 0 &&
			   i + 1 < argc) {
			bootstrap_file = argv[++i];
		} else {
			fprintf(stderr, "usage: pb-mock-kafka [--brokers N] "
					"[--topic NAME:PARTITIONS]... "
					"[--bootstrap-file PATH]\n");
			return 2;
		}
	}
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
	rd_kafka_t *rk =
	    rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk) {
		fprintf(stderr, "cannot create the Kafka handle: %s\n", errstr);
		return 1;
	}
	rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
	if (!mc) {
		fprintf(stderr, "cannot create the mock cluster\n");
		rd_kafka_destroy(rk);
		return 1;
	}
	for (int i = 0; i < ntopics; i++) {
		char name[256];
		int parts = 1;
		const char *colon = strrchr(topics[i], ':');
		size_t len =
		    colon ? (size_t)(colon - topics[i]) : strlen(topics[i]);
		if (len >= sizeof(name))
			len = sizeof(name) - 1;
		memcpy(name, topics[i], len);
		name[len] = '\0';
		if (colon) {
			int64_t v;
			if (!pb_parse_i64(colon + 1, &v) || v < 1 || v > 1000) {
				fprintf(
				    stderr,
				    "--topic %s: partitions must be 1..1000\n",
				    topics[i]);
				return 2;
			}
			parts = (int)v;
		}
		rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(
		    mc, name, parts, brokers < 3 ? brokers : 3);
		if (err) {
			fprintf(stderr, "cannot create topic %s: %s\n", name,
				rd_kafka_err2str(err));
			return 1;
		}
	}
	const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
	printf("%s\n", bs);
	fflush(stdout);
	if (bootstrap_file && write_file_atomic(bootstrap_file, bs) != 0) {
		fprintf(stderr, "cannot write %s: %s\n", bootstrap_file,
			strerror(errno));
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	pb_log(PB_LOG_INFO, "mock Kafka cluster up", "bootstrap", bs, NULL);
	char line[256];
	size_t used = 0;
	bool stdin_open = true;
	while (!stop_flag) {
		struct pollfd pfd = {.fd = 0, .events = POLLIN};
		int r = poll(&pfd, stdin_open ? 1 : 0, 500);
		if (r <= 0 || !(pfd.revents & (POLLIN | POLLHUP)))
			continue;
		ssize_t n = read(0, line + used, sizeof(line) - 1 - used);
		if (n <= 0) {
			stdin_open = false; /* keep serving without commands */
			continue;
		}
		used += (size_t)n;
		line[used] = '\0';
		char *nl;
		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			if (line[0])
				handle_command(mc, line);
			size_t rest = used - (size_t)(nl + 1 - line);
			memmove(line, nl + 1, rest);
			used = rest;
			line[used] = '\0';
		}
		if (used == sizeof(line) - 1)
			used = 0; /* overlong line: drop it */
	}
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}
