/*
 * harness.h: integration test harness for pruvan-bridge.
 *
 * Starts real services for one test executable and tears them down again:
 *   - redis-server (from PATH) on a free loopback port, no persistence;
 *   - a librdkafka mock cluster living in the test process, which the
 *     worker reaches over the real Kafka wire protocol;
 *   - the Pruvan simulator binary ($PB_SIM) with its control API;
 *   - pruvan-bridge ($PB_BRIDGE) as subprocesses (stderr to a log file in
 *     the test's temp dir) so tests can SIGTERM / SIGKILL them.
 *
 * Everything lives in one per-process harness (each integration test is its
 * own executable); h_teardown() stops whatever was started, also after a
 * failed assertion. Waiting is always polling a condition with a deadline,
 * never a fixed sleep.
 *
 * Ownership follows jansson: functions returning json_t * return a new
 * reference the caller releases with json_decref().
 */
#ifndef PB_HARNESS_H
#define PB_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

#define H_TOPIC_ORDERS	"pruvan.orders"
#define H_TOPIC_INBOUND "pruvan.inbound"
#define H_TOPIC_RESULTS "pruvan.results"
#define H_TOPIC_DLQ	"pruvan.dlq"

/* ---- lifecycle ----------------------------------------------------------- */

/* Create the temp dir /tmp/pb-it-NAME.XXXXXX; 0 on success. */
int h_setup(const char *name);
/* Stop workers, sim, Redis and Kafka; remove the temp dir unless a test
 * failed (then its path is printed) or $PB_IT_KEEP is set. */
void h_teardown(void);
/* Call at the start and at the very end of a test body: a test that never
 * reached h_end() failed, and teardown dumps the logs of its workers. */
void h_begin(const char *test);
void h_end(void);

/* A suite's services: h_setup(name), Redis, a one-broker mock cluster with
 * that many partitions per topic, an instant simulator. 0 on success. */
int h_start_all(const char *name, int partitions);
/* cmocka group teardown: h_teardown(). */
int h_group_teardown(void **state);
/* cmocka group setup and teardown for a suite using h_start_all:
 *   H_SUITE("name", 3)  ...  cmocka_run_group_tests(t, h_suite_setup,
 *                                                   h_suite_teardown) */
#define H_SUITE(name, partitions)                                              \
	static int h_suite_setup(void **state_)                                \
	{                                                                      \
		(void)state_;                                                  \
		return h_start_all(name, partitions) ? -1 : 0;                 \
	}                                                                      \
	static int h_suite_teardown(void **state_)                             \
	{                                                                      \
		return h_group_teardown(state_);                               \
	}

const char *h_dir(void);
/* dir/name into buf; returns buf. */
char *h_path(char *buf, size_t size, const char *name);

/* ---- time and waiting ---------------------------------------------------- */

/* clocks: pb_mono_ms() and pb_wall_ms() from util.h */
void h_nap_ms(int ms); /* a short nap inside a polling loop */
/* "2026-11-28T16:00:00.123Z" (or +hh:mm) -> epoch ms; -1 on junk. */
int64_t h_time_ms(const char *rfc3339);

/* ---- Redis --------------------------------------------------------------- */

int h_redis_start(void);
void h_redis_stop(void);   /* SIGTERM + reap */
void h_redis_kill(void);   /* SIGKILL + reap: an outage */
int h_redis_restart(void); /* same port, empty (no persistence) */
int h_redis_port(void);
bool h_redis_ping(void);

/* ---- Kafka (mock cluster in this process) -------------------------------- */

/* Creates the four pruvan.* topics with that many partitions each. */
int h_kafka_start(int nbrokers, int partitions);
void h_kafka_stop(void);
const char *h_kafka_bootstraps(void);
int h_kafka_partitions(void);
/* All brokers down (true) or up (false). */
int h_kafka_set_down(bool down);
/* The next n offset commits, from any client, are refused with
 * ILLEGAL_GENERATION: what a member sees when the group went on to a new
 * generation without it. */
int h_kafka_refuse_commits(int n);

/* Produce and wait for delivery; value NULL is a null value. 0 on success. */
int h_produce(const char *topic, const char *key, const char *value);
/* Queue without waiting; h_flush() waits for every queued one. */
int h_produce_nowait(const char *topic, const char *key, const char *value);
int h_flush(int timeout_ms);
/* Queue raw bytes (key or value NULL: a NULL key or value) to partition
 * (-1: by key) without waiting; h_flush() waits. */
int h_produce_raw(const char *topic, int partition, const void *key,
		  size_t key_len, const void *value, size_t value_len);
/* The mock cluster, for fault injection (rd_kafka_mock_*). */
struct rd_kafka_mock_cluster_s;
struct rd_kafka_mock_cluster_s *h_kafka_mock(void);
/* An order event (or inbound wrapper): key ACCOUNT/WON (from "account" and
 * order.workOrderNumber, or item.uuId's key1 for inbound: ACCOUNT/KEY1). */
int h_produce_json(const char *topic, const json_t *value, bool wait);
/* Each line of a JSON-lines file: {"topic":T,"key":K,"value":V} where V is
 * a JSON value, or "raw":"text" for bytes that are not JSON. Returns the
 * number of records produced, -1 on error. */
int h_produce_file(const char *path);

/* Records on a topic now (sum of high watermarks), -1 on error. */
long h_topic_count(const char *topic);
/* Poll until topic holds >= n records or timeout; returns the count seen. */
long h_await_count(const char *topic, long n, int timeout_ms);
/*
 * Read topic from the beginning (assign, no group commits) until at least
 * min_count records were read and every partition is at its end, or
 * timeout_ms passed. Returns an array of objects:
 *   {"topic","key","partition","offset","headers":{name:value},
 *    "raw": value text or null, "value": value parsed as JSON or null}
 * sorted by (partition, offset).
 */
json_t *h_consume(const char *topic, long min_count, int timeout_ms);

/* ---- the simulator ------------------------------------------------------- */

int h_sim_start(int latency_ms);
void h_sim_stop(void);
int h_sim_port(void);
/* GET / POST (body borrowed, may be NULL) / DELETE on the sim; returns
 * the parsed answer or NULL. */
json_t *h_sim_get(const char *path);
json_t *h_sim_post(const char *path, const json_t *body);
json_t *h_sim_delete(const char *path);
/* POST /_sim/faults with a JSON text; 0 when the sim accepted it. */
int h_sim_faults(const char *json_text);
/* All requests the sim kept for that apiKey (NULL: all): the "requests"
 * array. */
json_t *h_sim_requests(const char *api_key);
/* The sim's orders for apiKey: the "orders" object. */
json_t *h_sim_orders(const char *api_key);
/* GET /_sim/stats. */
json_t *h_sim_stats(void);

/* ---- worker configuration ------------------------------------------------ */

/*
 * Write dir/name: the worker configuration (kafka bootstrap of the mock
 * cluster, group "pb-it", redis url, http.listen 127.0.0.1:0, small
 * backoffs) with overrides deep-merged into it (borrowed; may be NULL).
 * Every account's pushKeyUrl becomes "env:PB_IT_KEY_<N>" and that variable
 * is set (in this process, inherited by workers) to the sim's URL with
 * apiKey=<account name>. Accounts default to:
 *   "acme": internal, allowDeletes false, statusPolicy drop, users [jsmith]
 * when overrides has no "accounts". Writes the path into out.
 */
int h_write_config(const char *name, const json_t *overrides, char *out,
		   size_t out_size);

/* ---- the worker and other pruvan-bridge commands --------------------------
 */

typedef struct h_worker h_worker_t;

/* Start `pruvan-bridge ARGS...` (NULL-terminated) in the background, stderr
 * to dir/<label>.log, stdout to dir/<label>.out. */
h_worker_t *h_worker_start(const char *label, const char *const *args);
/* Convenience: run -c cfg [--exit-on-eof]. */
h_worker_t *h_worker_run(const char *label, const char *cfg, bool exit_on_eof);
/* Wait up to timeout_ms: the exit code; 128+N if killed by signal N; -1
 * if it is still running. */
int h_worker_wait(h_worker_t *w, int timeout_ms);
int h_worker_signal(h_worker_t *w, int sig);
bool h_worker_running(h_worker_t *w);
pid_t h_worker_pid(const h_worker_t *w);
const char *h_worker_log(const h_worker_t *w);
const char *h_worker_out(const h_worker_t *w);
/* Dump the last lines of its log to stderr. */
void h_worker_dump(const h_worker_t *w, int lines);
/* Await a log line containing needle; true if seen within timeout_ms. */
bool h_worker_log_has(const h_worker_t *w, const char *needle, int timeout_ms);
/* Count log lines containing needle. */
int h_worker_log_count(const h_worker_t *w, const char *needle);
/* The ops port from "operations endpoint listening" (await up to timeout). */
int h_worker_ops_port(const h_worker_t *w, int timeout_ms);

/* Run `pruvan-bridge ARGS...` to completion (timeout_ms), stdout into
 * *out (malloc'd, may be NULL). Returns the exit code (or -1). */
int h_bridge_cmd(const char *const *args, int timeout_ms, char **out);

/* A curl CURLOPT_WRITEFUNCTION collecting the body into an h_body_t
 * (CURLOPT_WRITEDATA; data NUL-terminated, malloc'd, NULL while empty). */
typedef struct {
	char *data;
	size_t len;
} h_body_t;
size_t h_curl_collect(char *ptr, size_t size, size_t nmemb, void *ud);

/* HTTP GET http://127.0.0.1:port/path: the status code, 0 on failure. */
long h_http_status(int port, const char *path);
/* The same, with the body text into *body (malloc'd, "" when none). */
long h_http_get(int port, const char *path, char **body);
/* Poll GET path until it answers want or timeout_ms passed: the last
 * status seen. */
/* Polls the worker's /metrics until the unlabelled sample name reaches
 * at least min; returns its last value (-1: never read). */
double h_await_metric(int port, const char *name, double min, int timeout_ms);
long h_await_http_status(int port, const char *path, long want, int timeout_ms);

/* ---- building events ----------------------------------------------------- */

/* A valid create event for account/won; fields may be NULL. New ref. */
json_t *h_event_create(const char *event_id, const char *account,
		       const char *won, int64_t version);
/* An event with action and an order of just workOrderNumber (+fields,
 * borrowed, merged in). New ref. */
json_t *h_event(const char *event_id, const char *account, const char *action,
		const char *won, int64_t version, const json_t *fields);
/* An update of won that sets workOrderInfo to info. New ref. */
json_t *h_event_update(const char *event_id, const char *account,
		       const char *won, int64_t version, const char *info);

/* Produce, for order o < orders and k < per_order, event "PREFIX-oo-k" of
 * order "WO-PREFIX-oo" (account's create at k 0, updates after, version
 * k+1) with workOrderInfo set to the event id, round-robin over orders so
 * that each order's events interleave with others'; waits for delivery.
 * 0 when every record was delivered. */
int h_produce_series(const char *prefix, const char *account, int orders,
		     int per_order);

/* ---- outcome helpers ----------------------------------------------------- */

/* The string value of key in o, NULL when absent or not a string. */
const char *h_str(const json_t *o, const char *key);

/* Index the values of records (from h_consume) by eventId: object
 * eventId -> array of outcome values (in topic order). */
json_t *h_by_event(const json_t *records);
/* The single outcome of eventId (asserting there is exactly one), or NULL
 * with a message on stderr. Borrowed from by_event. */
json_t *h_one(const json_t *by_event, const char *event_id);
/* Write the values of records, one per line, to path. */
int h_write_values(const json_t *records, const char *path);

/*
 * Validate the values of records (from h_consume) against
 * $PB_SCHEMAS/<schema> (e.g. "outcome.schema.json") with $PB_PYTHON3's
 * jsonschema module, in one python run; also fails when any raw value
 * contains "apiKey=" (a PushKey must never leave the worker). 0 when all
 * are valid; otherwise the problems are printed to stderr.
 */
int h_check_schema(const json_t *records, const char *schema);

/* The sim's kept requests (apiKey api_key, NULL: all) that name won, in
 * arrival order: {"seq","status","fault","receivedAt","batch": orders in
 * the request, "workOrder": the entry for won}. New ref. */
json_t *h_sim_pushes_of(const char *api_key, const char *won);

/* Read a whole file (malloc'd, NUL-terminated); NULL on error. */
char *h_read_file(const char *path, size_t *len);

#endif
