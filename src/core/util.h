/*
 * util.h: small helpers shared by every module: clocks, time formatting,
 * bounded string handling, secret redaction.
 */
#ifndef PB_UTIL_H
#define PB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdarg.h>
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
 * "https://direct.pruvan.com/api/?apiKey=…" ->
 * "https://direct.pruvan.com/api/?<redacted>". Always NUL-terminates; never
 * copies the secret.
 */
void pb_redact_url(const char *url, char *buf, size_t size);

/* Where an http:// or https:// URL's authority (host, port) starts, the
 * scheme's case aside; NULL for any other text. */
const char *pb_url_authority(const char *url);

/*
 * Whether url is an http:// or https:// URL on base's origin: the same
 * scheme, host (case aside) and port (80 / 443 when none is given). A URL
 * with user information ("user@") never is.
 */
bool pb_url_same_origin(const char *url, const char *base);

/* strdup that returns NULL for NULL. */
char *pb_strdup(const char *s);

/* Bounded copy that always NUL-terminates (size > 0); returns strlen(src). */
size_t pb_strlcpy(char *dst, const char *src, size_t size);

/* Parse a whole decimal int64; false on junk, overflow or empty input. */
bool pb_parse_i64(const char *s, int64_t *out);

/* Length (1..4) of the valid UTF-8 sequence at s[0..n), as jansson accepts
 * them (no overlong forms, surrogates or values above U+10FFFF); 0 when
 * s does not start one. */
size_t pb_utf8_seq(const unsigned char *s, size_t n);

/* vsnprintf for text that people read and JSON carries: a %.32s that cut
 * a multi-byte character in two leaves no stray bytes behind (they are
 * dropped), so the result is always valid UTF-8 when the arguments were. */
void pb_format_text(char *buf, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
