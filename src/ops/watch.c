/*
 * watch.c: `pruvan-bridge watch` (see watch.h): the Kafka half. The
 * counting and the text live in watch_view.c, which is pure.
 *
 * It reads the results topic by assignment, every partition from its
 * beginning, with a group.id of its own ("pruvan-bridge-watch-<pid>") and
 * no commits: a watcher must never move, or even appear in, the worker's
 * group, and two watchers must not share positions. The configured
 * librdkafka properties are applied except group.id.
 *
 * --once reads each partition up to its high watermark as it was at the
 * start (end-of-partition events cover offsets that never arrive as
 * messages: transaction markers, compaction gaps), prints one summary and
 * returns. Without --once the view is redrawn every second on a terminal
 * and printed as a plain block every 5 s when piped; the partition list
 * is refreshed now and then so a topic created (or grown) later is picked
 * up. The DLQ count is the sum of high - low watermarks over the DLQ's
 * partitions.
 *
 * Metadata and watermark queries go through a second handle that never
 * fetches: a broker answers one connection's requests in order, so on the
 * fetching handle every ListOffsets waits behind a Fetch long poll
 * (fetch.wait.max.ms) and a DLQ count every second would not keep up.
 * Every blocking Kafka call has a short timeout so a stop request is
 * honoured within about two seconds even while the cluster is down.
 */
#include "watch.h"
#include "kafka_client.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "watch_view.h"

#define META_TIMEOUT_MS	     5000
#define ONCE_IDLE_TIMEOUT_MS 15000 /* --once gives up without progress */
#define LIVE_TIMEOUT_MS	     2000
#define TTY_REFRESH_MS	     1000
#define PIPE_REFRESH_MS	     5000
#define META_REFRESH_MS	     10000
#define MAX_PARTITIONS	     4096

/* One assigned partition of the results topic. */
typedef struct part {
	int32_t id;
	int64_t end; /* --once: stop before this offset */
	bool done;   /* --once: reached end */
} part_t;

static pb_err_t consumer_new(const pb_config_t *cfg, const char *role,
			     rd_kafka_t **out, char *errstr, size_t errstr_size)
{
	char gid[64];
	snprintf(gid, sizeof(gid), "pruvan-bridge-watch%s-%ld", role,
		 (long)getpid());
	/* a watcher never commits and reads every partition from its start */
	const pb_kafka_prop_t fixed[] = {
	    {"group.id", gid, false},
	    {"enable.auto.commit", "false", false},
	    {"enable.auto.offset.store", "false", false},
	    {"enable.partition.eof", "true", false},
	    {"auto.offset.reset", "earliest", false},
	};
	const pb_kafka_client_spec_t spec = {
	    .role = PB_KAFKA_READER,
	    .name = "watch reader",
	    .fixed = fixed,
	    .n_fixed = sizeof(fixed) / sizeof(fixed[0]),
	};
	return pb_kafka_client_new(cfg, &spec, out, errstr, errstr_size);
}

/*
 * The partition ids of topic into ids (at most MAX_PARTITIONS); *n = 0
 * when the topic does not exist (yet). PB_ERR_KAFKA when the cluster
 * cannot be asked.
 *
 * Asks for all topics rather than for this one: a metadata request that
 * names a topic makes a broker with auto.create.topics.enable create it,
 * and a watcher must not create the worker's topics as a side effect.
 */
static pb_err_t topic_partitions(rd_kafka_t *rk, const char *topic,
				 int timeout_ms, int32_t *ids, int *n,
				 char *errstr, size_t errstr_size)
{
	pb_err_t err = PB_OK;
	const rd_kafka_metadata_t *md = NULL;
	*n = 0;
	rd_kafka_resp_err_t kerr =
	    rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
	if (kerr) {
		err = pb_errf(errstr, errstr_size, PB_ERR_KAFKA,
			      "metadata of %s: %s", topic,
			      rd_kafka_err2str(kerr));
		goto out;
	}
	const rd_kafka_metadata_topic_t *t = NULL;
	for (int i = 0; i < md->topic_cnt && !t; i++)
		if (strcmp(md->topics[i].topic, topic) == 0)
			t = &md->topics[i];
	if (!t || t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
		goto out; /* not created yet: nothing to read */
	if (t->err) {
		err = pb_errf(errstr, errstr_size, PB_ERR_KAFKA,
			      "metadata of %s: %s", topic,
			      rd_kafka_err2str(t->err));
		goto out;
	}
	for (int i = 0; i < t->partition_cnt && i < MAX_PARTITIONS; i++)
		ids[(*n)++] = t->partitions[i].id;
out:
	if (md)
		rd_kafka_metadata_destroy(md);
	return err;
}

/* Records on the DLQ: sum of high - low; -1 when it cannot be told. */
static long dlq_count(rd_kafka_t *rk, const char *topic, int timeout_ms,
		      int32_t *ids)
{
	int n = 0;
	long total = 0;
	if (!topic || topic_partitions(rk, topic, timeout_ms, ids, &n, NULL, 0))
		return -1;
	for (int i = 0; i < n; i++) {
		int64_t lo, hi;
		if (rd_kafka_query_watermark_offsets(rk, topic, ids[i], &lo,
						     &hi, timeout_ms))
			return -1;
		total += (long)(hi - lo);
	}
	return total;
}

static pb_err_t print_view(FILE *out, const pb_watch_view_t *v, bool tty,
			   const char *topic, long dlq, const char *footer)
{
	char *text = pb_watch_view_render(v, tty, topic, dlq);
	if (!text)
		return PB_ERR_NOMEM;
	fputs(text, out);
	if (footer)
		fputs(footer, out);
	free(text);
	fflush(out);
	return ferror(out) ? PB_ERR_IO : PB_OK;
}

static part_t *part_find(part_t *parts, int n, int32_t id)
{
	for (int i = 0; i < n; i++)
		if (parts[i].id == id)
			return &parts[i];
	return NULL;
}

/* ---- --once ----------------------------------------------------------- */

static pb_err_t run_once(rd_kafka_t *rk, rd_kafka_t *mk, const pb_config_t *cfg,
			 FILE *out, volatile sig_atomic_t *stop_flag,
			 int32_t *ids, part_t *parts, char *errstr,
			 size_t errstr_size)
{
	pb_err_t err;
	rd_kafka_topic_partition_list_t *assign = NULL;
	pb_watch_view_t *v = pb_watch_view_new();
	int n = 0, np = 0, remaining = 0;
	if (!v)
		return PB_ERR_NOMEM;
	long dlq = dlq_count(mk, cfg->topic_dlq, META_TIMEOUT_MS, ids);
	if ((err = topic_partitions(mk, cfg->topic_results, META_TIMEOUT_MS,
				    ids, &n, errstr, errstr_size)))
		goto out;
	assign = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
	for (int i = 0; i < n; i++) {
		int64_t lo, hi;
		rd_kafka_resp_err_t kerr = rd_kafka_query_watermark_offsets(
		    mk, cfg->topic_results, ids[i], &lo, &hi, META_TIMEOUT_MS);
		if (kerr) {
			err = pb_errf(errstr, errstr_size, PB_ERR_KAFKA,
				      "watermarks of %s [%" PRId32 "]: %s",
				      cfg->topic_results, ids[i],
				      rd_kafka_err2str(kerr));
			goto out;
		}
		if (lo >= hi)
			continue; /* empty partition */
		rd_kafka_topic_partition_list_add(assign, cfg->topic_results,
						  ids[i])
		    ->offset = lo;
		parts[np++] = (part_t){.id = ids[i], .end = hi};
	}
	remaining = np;
	if (remaining > 0) {
		rd_kafka_resp_err_t kerr = rd_kafka_assign(rk, assign);
		if (kerr) {
			err = pb_errf(errstr, errstr_size, PB_ERR_KAFKA,
				      "assign: %s", rd_kafka_err2str(kerr));
			goto out;
		}
	}
	int64_t last_progress = pb_mono_ms();
	while (remaining > 0 && !*stop_flag) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
		if (!m) {
			if (pb_mono_ms() - last_progress >
			    ONCE_IDLE_TIMEOUT_MS) {
				err =
				    pb_errf(errstr, errstr_size, PB_ERR_TIMEOUT,
					    "no progress on %s within %d s; "
					    "is Kafka reachable?",
					    cfg->topic_results,
					    ONCE_IDLE_TIMEOUT_MS / 1000);
				goto out;
			}
			continue;
		}
		part_t *p = part_find(parts, np, m->partition);
		bool eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
		if (m->err && !eof) {
			/* Transient fetch errors are retried by librdkafka;
			 * the idle timeout bounds the wait. */
			rd_kafka_message_destroy(m);
			continue;
		}
		last_progress = pb_mono_ms();
		if (p && !p->done && !eof && m->offset < p->end)
			pb_watch_view_add(v, m->payload, m->len);
		if (p && !p->done && m->offset + (eof ? 0 : 1) >= p->end) {
			p->done = true;
			remaining--;
		}
		rd_kafka_message_destroy(m);
	}
	err = print_view(out, v, false, cfg->topic_results, dlq, NULL);
out:
	if (assign)
		rd_kafka_topic_partition_list_destroy(assign);
	pb_watch_view_destroy(v);
	return err;
}

/* ---- live ------------------------------------------------------------- */

/*
 * Assign the results partitions not yet assigned, from their beginning,
 * keeping the positions of those already read (rd_kafka_assign replaces
 * the whole assignment).
 */
static pb_err_t refresh_assignment(rd_kafka_t *rk, rd_kafka_t *mk,
				   const char *topic, int32_t *ids,
				   part_t *parts, int *np, char *errstr,
				   size_t errstr_size)
{
	int n = 0;
	pb_err_t err = topic_partitions(mk, topic, LIVE_TIMEOUT_MS, ids, &n,
					errstr, errstr_size);
	if (err)
		return err;
	bool grew = false;
	for (int i = 0; i < n; i++)
		if (!part_find(parts, *np, ids[i]))
			grew = true;
	if (!grew)
		return PB_OK;
	rd_kafka_topic_partition_list_t *l =
	    rd_kafka_topic_partition_list_new(n);
	for (int i = 0; i < *np; i++)
		rd_kafka_topic_partition_list_add(l, topic, parts[i].id);
	/* positions of partitions already read: continue there */
	rd_kafka_position(rk, l);
	for (int i = 0; i < l->cnt; i++)
		if (l->elems[i].offset < 0)
			l->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
	for (int i = 0; i < n; i++) {
		if (part_find(parts, *np, ids[i]))
			continue;
		rd_kafka_topic_partition_list_add(l, topic, ids[i])->offset =
		    RD_KAFKA_OFFSET_BEGINNING;
		parts[(*np)++] = (part_t){.id = ids[i]};
	}
	rd_kafka_resp_err_t kerr = rd_kafka_assign(rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (kerr)
		return pb_errf(errstr, errstr_size, PB_ERR_KAFKA, "assign: %s",
			       rd_kafka_err2str(kerr));
	return PB_OK;
}

static pb_err_t run_live(rd_kafka_t *rk, rd_kafka_t *mk, const pb_config_t *cfg,
			 FILE *out, bool tty, volatile sig_atomic_t *stop_flag,
			 int32_t *ids, part_t *parts, char *errstr,
			 size_t errstr_size)
{
	pb_err_t err = PB_OK;
	pb_watch_view_t *v = pb_watch_view_new();
	int np = 0;
	long dlq = -1;
	int64_t next_meta = 0, next_draw = 0;
	const int64_t every = tty ? TTY_REFRESH_MS : PIPE_REFRESH_MS;
	if (!v)
		return PB_ERR_NOMEM;
	/* The first frame waits a second so it shows what is on the topic
	 * rather than "no outcomes yet" before the first fetch. */
	next_draw = pb_mono_ms() + TTY_REFRESH_MS;
	while (!*stop_flag) {
		int64_t now = pb_mono_ms();
		if (now >= next_meta) {
			/* A cluster that is down is shown, not fatal: the
			 * view keeps what it has and tries again. Until the
			 * topic exists, look for it more often. */
			refresh_assignment(rk, mk, cfg->topic_results, ids,
					   parts, &np, errstr, errstr_size);
			next_meta = pb_mono_ms() +
				    (np > 0 ? META_REFRESH_MS : TTY_REFRESH_MS);
		}
		if (now >= next_draw) {
			dlq =
			    dlq_count(mk, cfg->topic_dlq, LIVE_TIMEOUT_MS, ids);
			err = print_view(out, v, tty, cfg->topic_results, dlq,
					 tty ? "\n(Ctrl-C to quit)\n" : "\n");
			if (err)
				goto out;
			next_draw = now + every;
		}
		/* Drain what is there, but come back to redraw on time. */
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
		while (m) {
			if (!m->err)
				pb_watch_view_add(v, m->payload, m->len);
			rd_kafka_message_destroy(m);
			if (pb_mono_ms() >= next_draw || *stop_flag)
				break;
			m = rd_kafka_consumer_poll(rk, 0);
		}
	}
out:
	pb_watch_view_destroy(v);
	return err;
}

pb_err_t pb_watch_run_to(const pb_config_t *cfg, bool once,
			 volatile sig_atomic_t *stop_flag, FILE *out, bool tty,
			 char *errstr, size_t errstr_size)
{
	pb_err_t err;
	rd_kafka_t *rk = NULL, *mk = NULL;
	static volatile sig_atomic_t never = 0;
	int32_t *ids = calloc(MAX_PARTITIONS, sizeof(*ids));
	part_t *parts = calloc(MAX_PARTITIONS, sizeof(*parts));
	if (!stop_flag)
		stop_flag = &never;
	if (!ids || !parts) {
		err =
		    pb_errf(errstr, errstr_size, PB_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (!cfg->topic_results) {
		err = pb_errf(errstr, errstr_size, PB_ERR_CONFIG,
			      "no results topic configured");
		goto out;
	}
	if ((err = consumer_new(cfg, "", &rk, errstr, errstr_size)) ||
	    (err = consumer_new(cfg, "-meta", &mk, errstr, errstr_size)))
		goto out;
	if (once)
		err = run_once(rk, mk, cfg, out, stop_flag, ids, parts, errstr,
			       errstr_size);
	else
		err = run_live(rk, mk, cfg, out, tty, stop_flag, ids, parts,
			       errstr, errstr_size);
out:
	if (rk) {
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
	}
	if (mk) {
		rd_kafka_consumer_close(mk);
		rd_kafka_destroy(mk);
	}
	free(parts);
	free(ids);
	return err;
}

pb_err_t pb_watch_run(const pb_config_t *cfg, bool once,
		      volatile sig_atomic_t *stop_flag)
{
	char errstr[512] = "";
	/* watch is a command of its own and main has no error text to print,
	 * so the failure is logged here, once. */
	pb_err_t err =
	    pb_watch_run_to(cfg, once, stop_flag, stdout, isatty(STDOUT_FILENO),
			    errstr, sizeof(errstr));
	if (err)
		pb_log(PB_LOG_ERROR, "watch failed", "error", pb_err_name(err),
		       "detail", errstr, NULL);
	return err;
}
