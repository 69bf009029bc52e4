/*
 * err.h: the one error type of pruvan-bridge.
 *
 * Every fallible function returns pb_err_t; the human detail goes into a
 * buffer the caller supplies (char *errstr, size_t errstr_size), as
 * librdkafka does. Library code never prints and never exits: the pipeline
 * and main decide what to log and which exit code to use.
 *
 * Errors are also classified the way rd_kafka_error_is_retriable() does:
 * a retriable error may succeed if tried again later (network, Redis down,
 * Pruvan 5xx); anything else is permanent for the input at hand.
 */
#ifndef PB_ERR_H
#define PB_ERR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum pb_err {
	PB_OK = 0,
	PB_ERR_NOMEM,	  /* allocation failed */
	PB_ERR_INVALID,	  /* bad input: the caller's data is wrong */
	PB_ERR_CONFIG,	  /* configuration is invalid */
	PB_ERR_IO,	  /* file or socket I/O failed */
	PB_ERR_REDIS,	  /* Redis unreachable or answered an error */
	PB_ERR_KAFKA,	  /* Kafka client error */
	PB_ERR_HTTP,	  /* HTTP transport or protocol error */
	PB_ERR_TIMEOUT,	  /* an operation timed out */
	PB_ERR_NOT_FOUND, /* the thing asked for does not exist */
	PB_ERR_STATE,	  /* operation not valid in the current state */
} pb_err_t;

/* Stable name of an error, e.g. "invalid". Never NULL. */
const char *pb_err_name(pb_err_t err);

/* True for errors worth retrying later (I/O, Redis, Kafka, HTTP, timeout). */
bool pb_err_is_retriable(pb_err_t err);

/*
 * Write a formatted message into errstr (may be NULL / size 0) and return
 * err, so that a failing path reads: return pb_errf(errstr, size, PB_ERR_X,
 * "what went wrong: %s", detail);
 */
pb_err_t pb_errf(char *errstr, size_t errstr_size, pb_err_t err,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
