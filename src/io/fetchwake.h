/*
 * fetchwake.h: wakes librdkafka's fetcher when the consumer's prefetch
 * queue has drained.
 *
 * librdkafka stops fetching while the consumer queue holds more than
 * queued.max.messages.kbytes (or queued.min.messages), and looks at it
 * again only when the broker thread next wakes: up to a second later
 * (before 2.2 its idle wait; from 2.2 fetch.queue.backoff.ms, default
 * 1000). A worker that drains the queue faster than that sits idle until
 * the refill: with a backlog, the benchmark measured exactly one fetch a
 * second and the worker's throughput capped at what one fetch brought.
 * Any request to a partition's leader wakes that broker's thread, which
 * then fetches every partition whose queue has room; a ListOffsets
 * request (rd_kafka_offsets_for_times) is the lightest one there is, and
 * librdkafka sends one per leader.
 *
 * The request is synchronous, so it runs on a thread of its own: the
 * pipeline asks (pb_fetchwake_request, never blocking) and goes on.
 *
 * From librdkafka 2.2 a wake-up no longer shortens the wait: a partition
 * stays unfetchable until fetch.queue.backoff.ms has passed. The worker
 * sets that to 20 ms where the library knows it (pb_pipeline_new); the
 * waker then only costs its few requests.
 */
#ifndef PB_FETCHWAKE_H
#define PB_FETCHWAKE_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "err.h"

typedef struct pb_fetchwake pb_fetchwake_t;

/* consumer is borrowed and must outlive the waker. */
pb_err_t pb_fetchwake_new(rd_kafka_t *consumer, pb_fetchwake_t **out,
			  char *errstr, size_t errstr_size);
/* Wake the leaders of parts (copied). Ignored while a wake is under way:
 * the one under way wakes the same brokers. */
void pb_fetchwake_request(pb_fetchwake_t *w,
			  const rd_kafka_topic_partition_list_t *parts);
/* Wakes sent so far. */
uint64_t pb_fetchwake_count(pb_fetchwake_t *w);
/* Waits for a wake under way (bounded by its timeout), then frees. */
void pb_fetchwake_destroy(pb_fetchwake_t *w);

#endif
