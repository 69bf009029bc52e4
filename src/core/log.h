/*
 * log.h: structured logging, one JSON object per line on stderr.
 *
 * Each line carries "time" (RFC 3339, UTC, milliseconds), "level", "msg"
 * and any context fields the caller adds as key/value pairs. Only the
 * pipeline, the tools and main log; library modules return errors instead.
 *
 * Secrets never go through here: callers pass redacted values (see
 * pb_redact_url in util.h). Logging is thread-safe (one write(2) per line).
 */
#ifndef PB_LOG_H
#define PB_LOG_H

#include <stdbool.h>

typedef enum pb_log_level {
	PB_LOG_DEBUG = 0,
	PB_LOG_INFO,
	PB_LOG_WARN,
	PB_LOG_ERROR,
} pb_log_level_t;

/* Set the minimum level that is written (default info). */
void pb_log_set_level(pb_log_level_t level);
pb_log_level_t pb_log_get_level(void);

/* Parse "debug", "info", "warn"/"warning", "error"; false if unknown. */
bool pb_log_level_parse(const char *name, pb_log_level_t *level_out);

/* Redirect output to fd (default 2); for tests. */
void pb_log_set_fd(int fd);

/*
 * Write one line. The variadic part is pairs of (const char *key,
 * const char *value) ending with NULL; a NULL value is written as null.
 *   pb_log(PB_LOG_INFO, "consumer started", "group", gid, NULL);
 */
void pb_log(pb_log_level_t level, const char *msg, ...)
    __attribute__((sentinel));

/* Same, with printf-formatted message and no context fields. */
void pb_logf(pb_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
