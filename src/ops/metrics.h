/*
 * metrics.h: a small thread-safe Prometheus metrics registry.
 *
 * The pipeline thread updates metrics; the ops HTTP thread renders them.
 * Every metric is declared once with its type and help text, then updated
 * by (name, labels). labels is a pre-rendered Prometheus label set without
 * braces, e.g. `account="acme",outcome="created"` (build it with
 * pb_metrics_labels, which escapes values), or "" for none. Label values
 * are low-cardinality by design: never a work order number or event id.
 *
 * Names follow Prometheus conventions with the pruvan_bridge_ prefix:
 * counters end in _total, durations are in seconds (_seconds).
 */
#ifndef PB_METRICS_H
#define PB_METRICS_H

#include <stddef.h>

#include "err.h"

typedef struct pb_metrics pb_metrics_t;

typedef enum {
	PB_METRIC_COUNTER = 0,
	PB_METRIC_GAUGE,
	PB_METRIC_HISTOGRAM,
} pb_metric_type_t;

pb_metrics_t *pb_metrics_new(void);
void pb_metrics_destroy(pb_metrics_t *m);

/*
 * Declare a metric. For histograms, buckets (ascending upper bounds,
 * +Inf implied) are copied; ignored otherwise. Declaring twice is a no-op.
 */
pb_err_t pb_metrics_declare(pb_metrics_t *m, const char *name,
			    pb_metric_type_t type, const char *help,
			    const double *buckets, size_t n_buckets);

/* Counter += v (v >= 0). Undeclared names are ignored. */
void pb_metrics_add(pb_metrics_t *m, const char *name, const char *labels,
		    double v);
/*
 * A counter series resolved once, for updates on a hot path without the
 * lookup by (name, labels) and the label text. pb_metrics_add_series does
 * what pb_metrics_add does and returns the series it added to, NULL when
 * the update was ignored or dropped (then keep using pb_metrics_add, so
 * drops are still counted); the series lives as long as the registry.
 */
typedef struct series pb_metrics_series_t;
pb_metrics_series_t *pb_metrics_add_series(pb_metrics_t *m, const char *name,
					   const char *labels, double v);
void pb_metrics_series_add(pb_metrics_t *m, pb_metrics_series_t *s, double v);
/* Gauge = v. */
void pb_metrics_set(pb_metrics_t *m, const char *name, const char *labels,
		    double v);
/* Histogram observation. */
void pb_metrics_observe(pb_metrics_t *m, const char *name, const char *labels,
			double v);

/*
 * Render a label set from (key, value) pairs ending with NULL into buf,
 * escaping values per the exposition format. Returns buf.
 *   pb_metrics_labels(buf, sizeof buf, "account", a, "outcome", o, NULL);
 */
char *pb_metrics_labels(char *buf, size_t size, ...) __attribute__((sentinel));

/* The whole registry in Prometheus text format 0.0.4; caller frees. */
char *pb_metrics_render(pb_metrics_t *m);

/* ---- additions (ops module) ---- */

/*
 * The registry holds at most this many series (name + label set) in all.
 * Updates that would create more are dropped and counted in
 * PB_M_SERIES_DROPPED, so a cardinality bug cannot eat the pod's memory.
 * A label set longer than PB_METRICS_MAX_LABELS bytes is dropped likewise.
 */
#define PB_METRICS_MAX_SERIES 10000
#define PB_METRICS_MAX_LABELS 1024

/*
 * What pb_metrics_labels writes when buf is too small: updates with this
 * label set are dropped and counted (a truncated label set would silently
 * merge unrelated series).
 */
#define PB_METRICS_LABELS_OVERFLOW "!overflow"

/* Gauge += delta (delta may be negative), e.g. in-flight events. */
void pb_metrics_gauge_add(pb_metrics_t *m, const char *name, const char *labels,
			  double delta);

/*
 * Current value of a counter or gauge series, or a histogram's _count.
 * PB_ERR_NOT_FOUND when the metric or series does not exist. For tests and
 * for the `watch` view.
 */
pb_err_t pb_metrics_get(pb_metrics_t *m, const char *name, const char *labels,
			double *value_out);

/*
 * A sample value as the exposition format wants it: "+Inf", "-Inf", "NaN",
 * integers without exponent ("3", "1024"), else the shortest round-trip
 * form ("0.005", "2.5"). buf needs 32 bytes.
 */
void pb_metrics_format_value(double v, char *buf, size_t size);

/* Number of series held (not counting dropped ones). */
size_t pb_metrics_series_count(pb_metrics_t *m);

/*
 * The project's metric set. Names live here only; callers use these
 * constants. Label keys are listed after each name; values must stay
 * low-cardinality (accounts, reasons, status classes: never ids).
 */
#define PB_M_SERIES_DROPPED                                                    \
	"pruvan_bridge_metrics_series_dropped_total" /* -                      \
						      */
#define PB_M_EVENTS_CONSUMED                                                   \
	"pruvan_bridge_events_consumed_total" /* source,account */
#define PB_M_OUTCOMES                                                          \
	"pruvan_bridge_outcomes_total" /* source,account,outcome,reason */
#define PB_M_PUSHES                                                            \
	"pruvan_bridge_pushes_total" /* account,status_class:                  \
					2xx|4xx|5xx|error */
#define PB_M_PUSH_DURATION "pruvan_bridge_push_duration_seconds" /* account */
#define PB_M_BATCH_SIZE	   "pruvan_bridge_batch_size"		 /* account */
#define PB_M_RETRIES	   "pruvan_bridge_retries_total" /* account,reason */
#define PB_M_DLQ_RECORDS   "pruvan_bridge_dlq_records_total" /* source,reason */
#define PB_M_CONSUMER_LAG  "pruvan_bridge_consumer_lag" /* topic,partition */
#define PB_M_IN_FLIGHT	   "pruvan_bridge_in_flight_events"	   /* - */
#define PB_M_REDIS_ERRORS  "pruvan_bridge_redis_errors_total"	   /* - */
#define PB_M_REDIS_RTT	   "pruvan_bridge_redis_roundtrip_seconds" /* - */
#define PB_M_CIRCUIT_OPEN  "pruvan_bridge_circuit_open" /* account; 0|1 */
#define PB_M_AUTO_ADMIN	   "pruvan_bridge_auto_admin"	/* account; 0|1 */
#define PB_M_INBOUND_DISCARDED                                                 \
	"pruvan_bridge_inbound_discarded_total"		    /* account,reason */
#define PB_M_BUILD_INFO		 "pruvan_bridge_build_info" /* version; always 1 */
#define PB_M_READY		 "pruvan_bridge_ready"	    /* - ; 0|1 */
#define PB_M_PARTITIONS_ASSIGNED "pruvan_bridge_partitions_assigned" /* - */
#define PB_M_PAUSED		 "pruvan_bridge_paused" /* - ; 0|1 */
#define PB_M_RELAY_REQUESTS                                                    \
	"pruvan_bridge_relay_requests_total"		   /* method,status */
#define PB_M_RELAY_ITEMS "pruvan_bridge_relay_items_total" /* account,kind */
#define PB_M_PUSH_KEY_LEARNED                                                  \
	"pruvan_bridge_push_key_learned_timestamp_seconds" /* account */
#define PB_M_ORDER_EXPIRY_REPAIRED                                             \
	"pruvan_bridge_order_expiry_repaired_total" /* - */

/*
 * Declare every PB_M_* metric with its type, help text and buckets, and
 * start the label-less ones at 0 so they are scraped before the first
 * event. Idempotent.
 */
pb_err_t pb_metrics_declare_standard(pb_metrics_t *m);

/*
 * A collector refreshes metrics that are read rather than counted (the
 * process_* ones): pb_metrics_render calls it first, on the rendering
 * thread, outside the registry's lock (it updates through the usual
 * calls). One per registry; NULL removes it.
 */
typedef void (*pb_metrics_collect_fn)(pb_metrics_t *m, void *opaque);
void pb_metrics_set_collector(pb_metrics_t *m, pb_metrics_collect_fn fn,
			      void *opaque);

/* librdkafka's statistics (statistics.interval.ms), see kstats.h */
#define PB_M_KAFKA_PARTITION_LAG                                               \
	"pruvan_bridge_kafka_partition_lag" /* topic,partition */
#define PB_M_KAFKA_BROKER_RTT_AVG                                              \
	"pruvan_bridge_kafka_broker_rtt_avg_seconds" /* client,broker */
#define PB_M_KAFKA_BROKER_RTT_P99                                              \
	"pruvan_bridge_kafka_broker_rtt_p99_seconds" /* client,broker */
#define PB_M_KAFKA_BROKER_UP                                                   \
	"pruvan_bridge_kafka_broker_up" /* client,broker; 0|1 */
#define PB_M_KAFKA_PRODUCER_QUEUE_MSGS                                         \
	"pruvan_bridge_kafka_producer_queue_messages" /* - */
#define PB_M_KAFKA_PRODUCER_QUEUE_BYTES                                        \
	"pruvan_bridge_kafka_producer_queue_bytes" /* - */

/* Set PB_M_BUILD_INFO{version="..."} to 1. */
void pb_metrics_set_build_info(pb_metrics_t *m, const char *version);

#endif
