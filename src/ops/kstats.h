/*
 * kstats.h: librdkafka's statistics as metrics.
 *
 * With statistics.interval.ms set (the worker sets 15000 unless the
 * configuration says otherwise; 0 turns them off), librdkafka hands its
 * clients' statistics as JSON to a callback on the thread that polls the
 * client. pb_kstats_update reads what operators look at from it: each
 * partition's consumer lag, each broker's round-trip time (mean and p99)
 * and connection state, the producer's queue depth, into the PB_M_KAFKA_*
 * gauges (metrics.h). Label values are topic names, partition numbers and
 * broker names: bounded by the cluster, never by the data.
 */
#ifndef PB_KSTATS_H
#define PB_KSTATS_H

#include <stddef.h>

#include "err.h"
#include "metrics.h"

#define PB_KSTATS_DEFAULT_INTERVAL_MS "15000"

/* Update the gauges from one statistics document (json[0..len)).
 * PB_ERR_INVALID when it is not librdkafka's statistics JSON. */
pb_err_t pb_kstats_update(pb_metrics_t *m, const char *json, size_t len);

#endif
