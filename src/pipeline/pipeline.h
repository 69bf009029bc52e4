/*
 * pipeline.h: the worker: Kafka in, rules, Redis state, Pruvan pushes,
 * outcomes out (contract sections 2-7).
 *
 * One thread runs the loop: consume a batch, parse, serialise per order,
 * fetch the state of ready events, decide, push (batched per account),
 * record effects, publish the outcome (and DLQ record), and store an
 * event's offset only once Kafka acknowledged them and every earlier event
 * of its partition is done. Fetches and records go to Redis in pipelined
 * stages, several in flight while the loop does the rest.
 *
 * Guarantees:
 *  - at least once: an offset is stored for commit only after the event's
 *    outcome (and DLQ record) is acknowledged, or given up because the
 *    topic refuses even its minimal form (logged: the partition goes on);
 *  - bounded records: no outcome or DLQ record exceeds the producer's
 *    message.max.bytes (large parts truncated with their digest);
 *  - per order, in order: an event waits until the previous event of the
 *    same order is recorded, including while that one is being retried;
 *    events of other orders flow past it;
 *  - never twice: an event whose effect was recorded is reported
 *    "duplicate" (or, if its outcome was never acknowledged, its recorded
 *    outcome is published again) and never pushed again;
 *  - bounded: at most worker.maxPending events are held; beyond that, and
 *    while Redis is unreachable, consumption pauses.
 */
#ifndef PB_PIPELINE_H
#define PB_PIPELINE_H

#include <signal.h>
#include <stdbool.h>

#include "config.h"
#include "err.h"
#include "metrics.h"

typedef struct pb_pipeline pb_pipeline_t;

typedef struct pb_pipeline_opts {
	bool exit_on_eof; /* stop once every assigned partition is drained */
	volatile sig_atomic_t *stop_flag; /* set by SIGTERM/SIGINT */
} pb_pipeline_opts_t;

/* cfg and metrics are borrowed and must outlive the pipeline. */
pb_err_t pb_pipeline_new(const pb_config_t *cfg, pb_metrics_t *metrics,
			 const pb_pipeline_opts_t *opts, pb_pipeline_t **out,
			 char *errstr, size_t errstr_size);

/* Run until the stop flag is set (then drain within the grace period) or,
 * with exit_on_eof, until everything is consumed, published and committed.
 * Returns PB_OK on a clean stop. */
pb_err_t pb_pipeline_run(pb_pipeline_t *pl, char *errstr, size_t errstr_size);

void pb_pipeline_destroy(pb_pipeline_t *pl);

/* Probes for the ops server (@locality: any thread). */
bool pb_pipeline_alive(void *pl, char *reason, size_t reason_size);
bool pb_pipeline_ready(void *pl, char *reason, size_t reason_size);

#endif
