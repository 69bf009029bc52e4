/*
 * test_watch.c: `pruvan-bridge watch`.
 *
 * The view is fed the outcome records of the .jsonl files of
 * tests/fixtures/watch (one Kafka value per line) and its counts, reasons,
 * problems ring, rate and rendering are checked; rendering is checked for
 * column alignment and for the absence of escape codes off a terminal,
 * including when records carry escape sequences in their strings. Then
 * pb_watch_run(once) runs end to end against librdkafka's mock cluster, created
 * here, with stdout redirected to a temporary file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "watch.h"
#include "watch_view.h"

/* 2026-11-28T16:00:00Z: the fixtures' records are processed just after */
#define T0_MS 1795881600000LL

static const char *fixtures_dir(void)
{
	const char *f = getenv("PB_FIXTURES");
#ifdef PB_SOURCE_DIR
	if (!f)
		f = PB_SOURCE_DIR "/tests/fixtures";
#endif
	return f ? f : "tests/fixtures";
}

/* Feed every non-empty line of fixtures/watch/name; returns lines fed. */
static int feed(pb_watch_view_t *v, const char *name, int64_t arrival_ms)
{
	char path[1024], *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int fed = 0;
	snprintf(path, sizeof(path), "%s/watch/%s", fixtures_dir(), name);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	while ((n = getline(&line, &cap, f)) > 0) {
		while (n > 0 && line[n - 1] == '\n')
			n--;
		if (n == 0)
			continue;
		pb_watch_view_add_at(v, line, (size_t)n, arrival_ms);
		fed++;
	}
	free(line);
	fclose(f);
	return fed;
}

/* Number of code points before byte offset off of s. */
static size_t cols(const char *s, size_t off)
{
	size_t c = 0;
	for (size_t i = 0; i < off; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			c++;
	return c;
}

/* Byte offset of display column col in line (or its length). */
static size_t byte_at_col(const char *line, size_t len, size_t col)
{
	size_t c = 0, i = 0;
	for (; i < len; i++) {
		if (((unsigned char)line[i] & 0xC0) != 0x80) {
			if (c == col)
				return i;
			c++;
		}
	}
	return len;
}

/*
 * The table starting at the line that begins with "ACCOUNT": every row
 * has, for every header word, a number whose last digit sits in the same
 * column as the header word's last letter. Returns the rows checked.
 */
static int assert_table_aligned(const char *text)
{
	const char *h = strstr(text, "ACCOUNT ");
	assert_non_null(h);
	const char *hend = strchr(h, '\n');
	assert_non_null(hend);
	size_t hlen = (size_t)(hend - h);
	int rows = 0;
	const char *r = hend + 1;
	while (*r && strncmp(r, "Reasons", 7) != 0 &&
	       strncmp(r, "Latest", 6) != 0 && strncmp(r, "\n", 1) != 0 &&
	       strncmp(r, "(Ctrl", 5) != 0) {
		const char *rend = strchr(r, '\n');
		assert_non_null(rend);
		size_t rlen = (size_t)(rend - r);
		/* each header word's end column, after ACCOUNT */
		for (size_t i = 7; i < hlen; i++) {
			if (h[i] == ' ' || (i + 1 < hlen && h[i + 1] != ' '))
				continue;
			size_t col = cols(h, i);
			size_t b = byte_at_col(r, rlen, col);
			assert_true(b < rlen);
			assert_true(r[b] >= '0' && r[b] <= '9');
			assert_true(b + 1 == rlen || r[b + 1] == ' ');
		}
		/* same display width as the header */
		assert_int_equal(cols(r, rlen), cols(h, hlen));
		rows++;
		r = rend + 1;
	}
	return rows;
}

static void assert_no_escapes(const char *text)
{
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		assert_false(*p == 0x1B);
		assert_false(*p == 0x07);
		assert_false(*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F);
		assert_true(*p >= 0x20 || *p == '\n');
	}
}

static void test_basic_counts(void **state)
{
	(void)state;
	pb_watch_view_t *v = pb_watch_view_new();
	assert_non_null(v);
	assert_int_equal(feed(v, "basic.jsonl", T0_MS + 60000), 12);
	assert_int_equal(pb_watch_view_total(v), 12);
	assert_int_equal(pb_watch_view_unreadable(v), 0);
	const char *a = "acme-internal";
	assert_int_equal(pb_watch_view_count(v, a, PB_WATCH_CREATED), 3);
	assert_int_equal(pb_watch_view_count(v, a, PB_WATCH_UPDATED), 4);
	assert_int_equal(pb_watch_view_count(v, a, PB_WATCH_DELETED), 0);
	assert_int_equal(pb_watch_view_count(v, a, PB_WATCH_UNCHANGED), 1);
	assert_int_equal(pb_watch_view_count(v, a, PB_WATCH_DUPLICATE), 1);
	assert_int_equal(pb_watch_view_count(v, a, PB_WATCH_REJECTED), 2);
	assert_int_equal(pb_watch_view_count(v, a, PB_WATCH_FAILED), 1);
	assert_int_equal(pb_watch_view_count(v, "nobody", PB_WATCH_CREATED), 0);
	assert_int_equal(pb_watch_view_reason_count(v, a, PB_WATCH_REJECTED,
						    "invalid_address"),
			 1);
	assert_int_equal(pb_watch_view_reason_count(v, NULL, PB_WATCH_REJECTED,
						    "invalid_json"),
			 1);
	assert_int_equal(
	    pb_watch_view_reason_count(v, a, PB_WATCH_FAILED, "pruvan_error"),
	    1);
	assert_int_equal(
	    pb_watch_view_reason_count(v, a, PB_WATCH_FAILED, "invalid_json"),
	    0);

	/* newest first */
	assert_int_equal(pb_watch_view_problems(v), 3);
	const pb_watch_problem_t *p = pb_watch_view_problem(v, 0);
	assert_int_equal(p->outcome, PB_WATCH_FAILED);
	assert_string_equal(p->event_id, "evt-9");
	assert_string_equal(p->work_order, "TESTPOST9");
	assert_string_equal(p->reason, "pruvan_error");
	assert_string_equal(p->message,
			    "Pruvan refused the order: duplicate key");
	p = pb_watch_view_problem(v, 1);
	assert_string_equal(p->event_id, ""); /* null eventId */
	assert_string_equal(p->reason, "invalid_json");
	p = pb_watch_view_problem(v, 2);
	assert_string_equal(p->event_id, "evt-7");
	assert_null(pb_watch_view_problem(v, 3));
	pb_watch_view_destroy(v);
}

static void test_basic_render(void **state)
{
	(void)state;
	pb_watch_view_t *v = pb_watch_view_new();
	feed(v, "basic.jsonl", T0_MS + 60000);
	char *t = pb_watch_view_render_at(v, false, "pruvan.results", 1,
					  T0_MS + 60000);
	assert_non_null(t);
	assert_no_escapes(t);
	assert_true(strncmp(t,
			    "Outcomes on pruvan.results: 12 records, "
			    "DLQ: 1 record\n",
			    54) == 0);
	assert_non_null(strstr(t, "\nACCOUNT          CREATED UPDATED DELETED "
				  "UNCHANGED DUPLICATE STALE REJECTED FAILED "
				  "RELAYED DISCARDED TOTAL RATE/S\n"));
	assert_non_null(strstr(t, "\nacme-internal          3       4       0"
				  "         1         1     0        2      1"
				  "       0         0    12    0.0\n"));
	assert_int_equal(assert_table_aligned(t), 1); /* no (all) row */
	/* by count, then in the table's outcome order, then by name */
	assert_non_null(strstr(t, "\nReasons: rejected/invalid_address 1, "
				  "rejected/invalid_json 1, "
				  "failed/pruvan_error 1\n"));
	assert_non_null(strstr(t, "\nLatest problems:\n"));
	assert_non_null(strstr(t, "  failed   pruvan_error    evt-9        "
				  "TESTPOST9 - Pruvan refused the order: "
				  "duplicate key\n"));
	assert_non_null(strstr(t, "  rejected invalid_json    (no eventId) "
				  "-         - not JSON:"));
	/* no trailing spaces anywhere */
	assert_null(strstr(t, " \n"));
	free(t);
	pb_watch_view_destroy(v);
}

static void test_reasons_order(void **state)
{
	(void)state;
	pb_watch_view_t *v = pb_watch_view_new();
	const char *r1 = "{\"account\":\"a\",\"outcome\":\"rejected\","
			 "\"reason\":\"no_services\"}";
	const char *r2 = "{\"account\":\"a\",\"outcome\":\"failed\","
			 "\"reason\":\"http_4xx\"}";
	pb_watch_view_add_at(v, r2, strlen(r2), T0_MS);
	for (int i = 0; i < 3; i++)
		pb_watch_view_add_at(v, r1, strlen(r1), T0_MS);
	char *t = pb_watch_view_render_at(v, false, "r", 0, T0_MS);
	assert_non_null(t);
	/* most frequent first */
	assert_non_null(strstr(t, "\nReasons: rejected/no_services 3, "
				  "failed/http_4xx 1\n"));
	free(t);
	pb_watch_view_destroy(v);
}

static void test_mixed_unreadable_and_hostile(void **state)
{
	(void)state;
	pb_watch_view_t *v = pb_watch_view_new();
	assert_int_equal(feed(v, "mixed.jsonl", T0_MS), 11);
	/* not JSON, truncated, an array, an unknown outcome */
	assert_int_equal(pb_watch_view_unreadable(v), 4);
	assert_int_equal(pb_watch_view_total(v), 7);
	assert_int_equal(pb_watch_view_count(v, NULL, PB_WATCH_CREATED), 2);
	assert_int_equal(
	    pb_watch_view_count(v, "beta-external", PB_WATCH_RELAYED), 1);
	assert_int_equal(pb_watch_view_count(v, "(none)", PB_WATCH_REJECTED),
			 1);
	assert_int_equal(
	    pb_watch_view_count(v, "Ünïcødé-àccount", PB_WATCH_STALE), 1);
	assert_int_equal(pb_watch_view_reason_count(v, "beta-external",
						    PB_WATCH_DISCARDED,
						    "recreated_after_delete"),
			 1);

	const pb_watch_problem_t *p = pb_watch_view_problem(v, 1);
	assert_int_equal(p->outcome, PB_WATCH_FAILED);
	assert_null(strchr(p->event_id, 0x1B));
	assert_null(strchr(p->message, 0x1B));
	assert_null(strchr(p->message, '\n'));
	assert_null(strstr(p->work_order, "\xC2\x9B"));

	char *t = pb_watch_view_render_at(v, false, "pruvan.results", 0, T0_MS);
	assert_non_null(t);
	assert_no_escapes(t);
	assert_non_null(
	    strstr(t, ": 11 records (4 unreadable), DLQ: 0 records\n"));
	/* four accounts and the (all) row, aligned despite the UTF-8 name */
	assert_int_equal(assert_table_aligned(t), 5);
	assert_non_null(strstr(t, "\n(all) "));
	/* several accounts: reasons per account, problems name theirs */
	assert_non_null(strstr(t, "\nReasons:\n  acme-internal: "
				  "failed/http_4xx 1\n"));
	assert_non_null(strstr(t, "\n  beta-external: "
				  "discarded/recreated_after_delete 1\n"));
	assert_non_null(strstr(t, "\n  (none): rejected/invalid_json 1\n"));
	assert_non_null(strstr(t,
			       "\n  beta-external discarded "
			       "recreated_after_delete e4      W4    - Key1"));
	free(t);
	pb_watch_view_destroy(v);
}

static void test_tty_and_empty(void **state)
{
	(void)state;
	pb_watch_view_t *v = pb_watch_view_new();
	char *t = pb_watch_view_render_at(v, false, "pruvan.results", 0, T0_MS);
	assert_string_equal(t, "Outcomes on pruvan.results: no outcomes yet, "
			       "DLQ: 0 records\n");
	free(t);
	feed(v, "basic.jsonl", T0_MS);
	t = pb_watch_view_render_at(v, true, "pruvan.results", -1, T0_MS);
	assert_non_null(t);
	assert_true(strncmp(t, "\033[H\033[2J", 7) == 0);
	assert_non_null(strstr(t, "DLQ: unknown\n"));
	assert_int_equal(assert_table_aligned(t), 1);
	free(t);
	pb_watch_view_destroy(v);
}

static void test_problem_ring_bounded(void **state)
{
	(void)state;
	pb_watch_view_t *v = pb_watch_view_new();
	char rec[256];
	for (int i = 0; i < 25; i++) {
		int n = snprintf(rec, sizeof(rec),
				 "{\"eventId\":\"p%d\",\"account\":\"a\","
				 "\"outcome\":\"%s\",\"reason\":\"r\"}",
				 i, i % 2 ? "rejected" : "discarded");
		pb_watch_view_add_at(v, rec, (size_t)n, T0_MS);
		/* successes do not enter the ring */
		n = snprintf(rec, sizeof(rec),
			     "{\"eventId\":\"ok%d\",\"account\":\"a\","
			     "\"outcome\":\"created\"}",
			     i);
		pb_watch_view_add_at(v, rec, (size_t)n, T0_MS);
	}
	assert_int_equal(pb_watch_view_problems(v), PB_WATCH_PROBLEMS);
	for (size_t i = 0; i < PB_WATCH_PROBLEMS; i++) {
		char want[16];
		snprintf(want, sizeof(want), "p%zu", 24 - i);
		assert_string_equal(pb_watch_view_problem(v, i)->event_id,
				    want);
	}
	/* a long message is cut, on a UTF-8 boundary */
	char big[2048];
	int n = snprintf(big, sizeof(big),
			 "{\"account\":\"a\",\"outcome\":\"failed\","
			 "\"message\":\"");
	for (int i = 0; i < 400; i++)
		n += snprintf(big + n, sizeof(big) - (size_t)n, "é");
	n += snprintf(big + n, sizeof(big) - (size_t)n, "\"}");
	assert_int_equal(pb_watch_view_add_at(v, big, (size_t)n, T0_MS), PB_OK);
	const char *m = pb_watch_view_problem(v, 0)->message;
	assert_true(strlen(m) < sizeof(((pb_watch_problem_t *)0)->message));
	assert_int_equal(strlen(m) % 2, 0); /* whole two-byte characters */
	pb_watch_view_destroy(v);
}

static void test_tables_bounded(void **state)
{
	(void)state;
	pb_watch_view_t *v = pb_watch_view_new();
	char rec[256];
	for (int i = 0; i < 200; i++) {
		int n = snprintf(rec, sizeof(rec),
				 "{\"account\":\"acct-%d\",\"outcome\":"
				 "\"rejected\",\"reason\":\"reason_%d\"}",
				 i, i);
		assert_int_equal(pb_watch_view_add_at(v, rec, (size_t)n, T0_MS),
				 PB_OK);
	}
	for (int i = 0; i < 400; i++) {
		int n = snprintf(rec, sizeof(rec),
				 "{\"account\":\"acct-0\",\"outcome\":"
				 "\"failed\",\"reason\":\"f_%d\"}",
				 i);
		pb_watch_view_add_at(v, rec, (size_t)n, T0_MS);
	}
	assert_int_equal(pb_watch_view_total(v), 600);
	/* nothing is lost: the overflow is one "(other)" row */
	assert_int_equal(pb_watch_view_count(v, "acct-62", PB_WATCH_REJECTED),
			 1);
	assert_int_equal(pb_watch_view_count(v, "acct-63", PB_WATCH_REJECTED),
			 0);
	assert_int_equal(pb_watch_view_count(v, "(other)", PB_WATCH_REJECTED),
			 200 - (PB_WATCH_MAX_ACCOUNTS - 1));
	assert_int_equal(pb_watch_view_count(v, NULL, PB_WATCH_REJECTED), 200);
	char *t = pb_watch_view_render_at(v, false, "r", 0, T0_MS);
	assert_non_null(t);
	assert_int_equal(assert_table_aligned(t), PB_WATCH_MAX_ACCOUNTS + 1);
	assert_non_null(strstr(t, "reasons not tracked (table full)"));
	free(t);
	pb_watch_view_destroy(v);
}

static void test_rate(void **state)
{
	(void)state;
	pb_watch_view_t *v = pb_watch_view_new();
	/* basic.jsonl: record i (1..12) processed at T0 + i s + 7i ms */
	feed(v, "basic.jsonl", T0_MS + 12500);
	/* window (2 s, 12 s]: records 3..12 */
	double r = pb_watch_view_rate(v, NULL, T0_MS + 12500);
	assert_true(r > 0.99 && r < 1.01);
	r = pb_watch_view_rate(v, "acme-internal", T0_MS + 12500);
	assert_true(r > 0.99 && r < 1.01);
	r = pb_watch_view_rate(v, NULL, T0_MS + 60000);
	assert_true(r == 0.0);

	/* processedAt after arrival (clock skew) counts at arrival; no
	 * processedAt counts at arrival too */
	pb_watch_view_t *w = pb_watch_view_new();
	const char *fut = "{\"account\":\"a\",\"outcome\":\"created\","
			  "\"processedAt\":\"2030-01-01T00:00:00Z\"}";
	const char *none = "{\"account\":\"a\",\"outcome\":\"created\"}";
	pb_watch_view_add_at(w, fut, strlen(fut), T0_MS);
	pb_watch_view_add_at(w, none, strlen(none), T0_MS);
	r = pb_watch_view_rate(w, NULL, T0_MS);
	assert_true(r > 0.19 && r < 0.21);
	pb_watch_view_destroy(w);
	pb_watch_view_destroy(v);
}

/* ---- end to end against the mock cluster ----------------------------- */

typedef struct mock {
	rd_kafka_t *owner; /* the mock cluster lives on this handle */
	rd_kafka_mock_cluster_t *mc;
	char bootstraps[256];
} mock_t;

static void mock_start(mock_t *m)
{
	char e[512];
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	rd_kafka_conf_set(c, "log_level", "3", e, sizeof(e));
	m->owner = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof(e));
	assert_non_null(m->owner);
	m->mc = rd_kafka_mock_cluster_new(m->owner, 1);
	assert_non_null(m->mc);
	snprintf(m->bootstraps, sizeof(m->bootstraps), "%s",
		 rd_kafka_mock_cluster_bootstraps(m->mc));
}

static void mock_stop(mock_t *m)
{
	rd_kafka_mock_cluster_destroy(m->mc);
	rd_kafka_destroy(m->owner);
}

/* Produce the fixture's lines round-robin to partitions [0, nparts). */
static int produce_fixture(const char *bootstraps, const char *topic,
			   const char *name, int nparts)
{
	char e[512], path[1024], *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int i = 0;
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	assert_int_equal(
	    rd_kafka_conf_set(c, "bootstrap.servers", bootstraps, e, sizeof(e)),
	    RD_KAFKA_CONF_OK);
	rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, c, e, sizeof(e));
	assert_non_null(p);
	snprintf(path, sizeof(path), "%s/watch/%s", fixtures_dir(), name);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	while ((n = getline(&line, &cap, f)) > 0) {
		while (n > 0 && line[n - 1] == '\n')
			n--;
		if (n == 0)
			continue;
		assert_int_equal(
		    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic),
				      RD_KAFKA_V_PARTITION(i % nparts),
				      RD_KAFKA_V_VALUE(line, (size_t)n),
				      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				      RD_KAFKA_V_END),
		    RD_KAFKA_RESP_ERR_NO_ERROR);
		i++;
	}
	free(line);
	fclose(f);
	assert_int_equal(rd_kafka_flush(p, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
	rd_kafka_destroy(p);
	return i;
}

/* Run pb_watch_run(once) with stdout going to a file; its text. */
static char *run_once_captured(pb_config_t *cfg, pb_err_t *err)
{
	volatile sig_atomic_t stop = 0;
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);
	*err = pb_watch_run(cfg, true, &stop);
	fflush(stdout);
	assert_true(dup2(saved, STDOUT_FILENO) >= 0);
	close(saved);

	assert_int_equal(fseek(tmp, 0, SEEK_END), 0);
	long len = ftell(tmp);
	assert_true(len >= 0);
	rewind(tmp);
	char *text = calloc(1, (size_t)len + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)len, tmp), (size_t)len);
	fclose(tmp);
	return text;
}

static void mock_config(pb_config_t *cfg, char **keys, char **values,
			char *bootstraps, char *results, char *dlq)
{
	memset(cfg, 0, sizeof(*cfg));
	keys[0] = "bootstrap.servers";
	values[0] = bootstraps;
	/* the worker's group must be ignored, not joined */
	keys[1] = "group.id";
	values[1] = "pruvan-bridge";
	cfg->kafka_keys = keys;
	cfg->kafka_values = values;
	cfg->kafka_len = 2;
	cfg->topic_results = results;
	cfg->topic_dlq = dlq;
}

static void test_once_mock_cluster(void **state)
{
	(void)state;
	mock_t m;
	mock_start(&m);
	assert_int_equal(
	    rd_kafka_mock_topic_create(m.mc, "pruvan.results", 3, 1),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_mock_topic_create(m.mc, "pruvan.dlq", 2, 1),
			 RD_KAFKA_RESP_ERR_NO_ERROR);
	/* partition 2 of the results stays empty */
	assert_int_equal(
	    produce_fixture(m.bootstraps, "pruvan.results", "basic.jsonl", 2),
	    12);
	assert_int_equal(
	    produce_fixture(m.bootstraps, "pruvan.dlq", "mixed.jsonl", 1), 11);

	pb_config_t cfg;
	char *keys[2], *values[2];
	mock_config(&cfg, keys, values, m.bootstraps, "pruvan.results",
		    "pruvan.dlq");
	pb_err_t err;
	char *out = run_once_captured(&cfg, &err);
	assert_int_equal(err, PB_OK);
	assert_no_escapes(out);
	assert_true(strncmp(out,
			    "Outcomes on pruvan.results: 12 records, "
			    "DLQ: 11 records\n",
			    56) == 0);
	assert_non_null(strstr(out, "\nacme-internal          3       4       0"
				    "         1         1     0        2      1"
				    "       0         0    12 "));
	assert_non_null(strstr(out, "rejected/invalid_address 1"));
	assert_non_null(strstr(out, "  failed   pruvan_error    evt-9 "));
	free(out);

	/* a topic that does not exist yet */
	mock_config(&cfg, keys, values, m.bootstraps, "not.there",
		    "not.there.dlq");
	out = run_once_captured(&cfg, &err);
	assert_int_equal(err, PB_OK);
	assert_string_equal(out, "Outcomes on not.there: no outcomes yet, "
				 "DLQ: 0 records\n");
	free(out);

	/* an empty topic */
	assert_int_equal(rd_kafka_mock_topic_create(m.mc, "empty", 2, 1),
			 RD_KAFKA_RESP_ERR_NO_ERROR);
	mock_config(&cfg, keys, values, m.bootstraps, "empty", "pruvan.dlq");
	out = run_once_captured(&cfg, &err);
	assert_int_equal(err, PB_OK);
	assert_string_equal(out, "Outcomes on empty: no outcomes yet, "
				 "DLQ: 11 records\n");
	free(out);
	mock_stop(&m);
}

/* Live mode in a thread, drawing for a terminal into a file. */
typedef struct live {
	pb_config_t *cfg;
	FILE *out;
	volatile sig_atomic_t stop;
	pb_err_t err;
	char errstr[256];
} live_t;

static void *live_main(void *arg)
{
	live_t *l = arg;
	l->err = pb_watch_run_to(l->cfg, false, &l->stop, l->out, true,
				 l->errstr, sizeof(l->errstr));
	return NULL;
}

/* The whole file at path (NUL-terminated, caller frees). */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t cap = 4096, len = 0, n;
	char *buf = malloc(cap);
	assert_non_null(buf);
	while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len - 1 == 0) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	buf[len] = '\0';
	fclose(f);
	return buf;
}

static void test_live_tty_mock_cluster(void **state)
{
	(void)state;
	mock_t m;
	mock_start(&m);
	assert_int_equal(
	    rd_kafka_mock_topic_create(m.mc, "pruvan.results", 2, 1),
	    RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(rd_kafka_mock_topic_create(m.mc, "pruvan.dlq", 3, 1),
			 RD_KAFKA_RESP_ERR_NO_ERROR);
	produce_fixture(m.bootstraps, "pruvan.results", "basic.jsonl", 2);
	produce_fixture(m.bootstraps, "pruvan.dlq", "mixed.jsonl", 3);

	pb_config_t cfg;
	char *keys[2], *values[2];
	mock_config(&cfg, keys, values, m.bootstraps, "pruvan.results",
		    "pruvan.dlq");
	char path[] = "/tmp/test_watch_live.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	live_t l = {.cfg = &cfg, .out = fdopen(fd, "w")};
	assert_non_null(l.out);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, live_main, &l), 0);

	/* Wait (bounded) until a redraw shows every record; the view is
	 * redrawn every second, so this is a deadline, not a sleep used to
	 * order events. */
	char *text = NULL;
	int64_t deadline = pb_mono_ms() + 20000;
	const char *want = "Outcomes on pruvan.results: 12 records, "
			   "DLQ: 11 records";
	for (;;) {
		free(text);
		text = slurp(path);
		if (strstr(text, want) || pb_mono_ms() > deadline)
			break;
		nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
	}
	l.stop = 1;
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(l.err, PB_OK);
	if (!strstr(text, want))
		fprintf(stderr, "live output:\n%s\n", text);
	assert_non_null(strstr(text, want));
	/* a terminal gets clear-and-home before every frame */
	assert_true(strncmp(text, "\033[H\033[2J", 7) == 0);
	assert_non_null(strstr(text, "(Ctrl-C to quit)"));
	free(text);
	fclose(l.out);
	unlink(path);
	mock_stop(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_basic_counts),
	    cmocka_unit_test(test_basic_render),
	    cmocka_unit_test(test_reasons_order),
	    cmocka_unit_test(test_mixed_unreadable_and_hostile),
	    cmocka_unit_test(test_tty_and_empty),
	    cmocka_unit_test(test_problem_ring_bounded),
	    cmocka_unit_test(test_tables_bounded),
	    cmocka_unit_test(test_rate),
	    cmocka_unit_test(test_once_mock_cluster),
	    cmocka_unit_test(test_live_tty_mock_cluster),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
