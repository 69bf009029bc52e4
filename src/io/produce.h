/*
 * produce.h: what the worker does when a record it writes (an outcome, a
 * DLQ copy) meets a producer error or a size limit.
 *
 * Every librdkafka produce or delivery error falls in one class, per
 * message (contract sections 6 and 7):
 *   - full: the local queue is full; delivery reports free it, so try
 *     again after a short pause;
 *   - retriable: the broker or the network may heal it; produce again
 *     after a backoff that doubles up to a bound;
 *   - permanent: the record as it is cannot be written (too large, the
 *     topic unknown, not authorised, invalid record): never try the same
 *     record again; write a smaller form of it, and when even the
 *     smallest form is refused, drop it with an error log;
 *   - fatal: the producer itself cannot go on (rd_kafka_fatal_error):
 *     the worker stops and exits 1.
 *
 * Sizes: a record must fit the producer's effective message.max.bytes
 * (with room for librdkafka's per-record framing); parts that would make
 * it larger are replaced by {"truncated":true,"bytes":N,"sha256":"..."}.
 * Nothing here logs or keeps state.
 */
#ifndef PB_PRODUCE_H
#define PB_PRODUCE_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "jtext.h"

typedef enum {
	PB_PRODUCE_OK = 0,
	PB_PRODUCE_FULL,      /* local queue full: pause, then again */
	PB_PRODUCE_RETRIABLE, /* back off, then again */
	PB_PRODUCE_PERMANENT, /* this record can never be written as is */
	PB_PRODUCE_FATAL,     /* the producer is unusable: exit 1 */
} pb_produce_class_t;

pb_produce_class_t pb_produce_classify(rd_kafka_resp_err_t err);

/* Stable name of a class, for logs and tests. */
const char *pb_produce_class_name(pb_produce_class_t c);

/* The backoff before retriable try number tries (0 first): 100 ms
 * doubling, at most PB_PRODUCE_BACKOFF_MAX_MS. */
#define PB_PRODUCE_BACKOFF_MAX_MS 5000
int pb_produce_backoff_ms(int tries);

/* Room kept below message.max.bytes for librdkafka's framing of one record
 * (record header, batch header, varints). */
#define PB_PRODUCE_FRAMING 1024

/* The largest key + value + headers one record may carry under a
 * producer's message.max.bytes. */
size_t pb_produce_record_max(int64_t message_max_bytes);

/* Append {"truncated":true,"bytes":n,"sha256":"<hex of text>"}: the form
 * that replaces a part too large for its record. */
void pb_jt_truncated(pb_jtext_t *b, const char *text, size_t n);

/* Size of one Kafka header as librdkafka counts it (name, value, two
 * varints of at most 5 bytes each). */
size_t pb_produce_header_size(const char *name, size_t value_len);

#endif
