/*
 * procstat.h: the standard process_* metrics of Prometheus' client
 * libraries, read from /proc when /metrics is rendered:
 * process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds,
 * process_start_time_seconds. Linux only (the worker's platform); on a
 * read failure the metric keeps its last value.
 */
#ifndef PB_PROCSTAT_H
#define PB_PROCSTAT_H

#include "err.h"
#include "metrics.h"

typedef struct pb_procstat {
	double cpu_seconds; /* the counter's value so far */
} pb_procstat_t;

/* Declare the metrics and register pb_procstat_collect as m's collector
 * with ps (borrowed; must outlive m's rendering). */
pb_err_t pb_procstat_attach(pb_metrics_t *m, pb_procstat_t *ps);

/* Read /proc/self and update the metrics (the collector). */
void pb_procstat_collect(pb_metrics_t *m, void *ps);

#endif
