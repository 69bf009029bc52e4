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
char *pb_metrics_labels(char *buf, size_t size, ...)
	__attribute__((sentinel));

/* The whole registry in Prometheus text format 0.0.4; caller frees. */
char *pb_metrics_render(pb_metrics_t *m);

#endif
