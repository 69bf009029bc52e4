/*
 * util.h: small helpers shared by every module: clocks, time formatting,
 * bounded string handling, secret redaction.
 */
#ifndef PB_UTIL_H
#define PB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Milliseconds on the monotonic clock (for timeouts and latencies). */
int64_t pb_mono_ms(void);

/* Milliseconds since the Unix epoch (wall clock). */
int64_t pb_wall_ms(void);

/* Current UTC time as "2026-11-28T16:00:00.123Z" (needs >= 25 bytes). */
void pb_now_rfc3339(char *buf, size_t size);

/* Epoch milliseconds as "2026-11-28T16:00:00.123Z" (needs >= 25 bytes). */
void pb_ms_to_rfc3339(int64_t ms, char *buf, size_t size);

/*
 * Write url with its secret parts hidden into buf: the query string and
 * any user:password are replaced, e.g.
 * "https://direct.pruvan.com/api/?apiKey=…" -> "https://direct.pruvan.com/api/?<redacted>".
 * Always NUL-terminates; never copies the secret.
 */
void pb_redact_url(const char *url, char *buf, size_t size);

/* strdup that returns NULL for NULL. */
char *pb_strdup(const char *s);

/* Bounded copy that always NUL-terminates (size > 0); returns strlen(src). */
size_t pb_strlcpy(char *dst, const char *src, size_t size);

/* Parse a whole decimal int64; false on junk, overflow or empty input. */
bool pb_parse_i64(const char *s, int64_t *out);

#endif
