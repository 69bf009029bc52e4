/*
 * relay_mpend.h: where a multipart body ends (internal to the relay).
 *
 * A multipart body ends with its close delimiter, CRLF "--" BOUNDARY "--";
 * RFC 2046 lets an epilogue (any text, often one more CRLF) follow, which
 * libmicrohttpd's post processor counts as malformed: a body with an
 * epilogue would be refused although it came whole. So the relay hands
 * the post processor the body up to the close delimiter only, and a body
 * that never reaches one (cut short) is still malformed to it.
 *
 * The matcher reads the body chunk by chunk (a delimiter may straddle two
 * reads) and says how much of each chunk belongs before the end. Pure:
 * no I/O, no allocation.
 */
#ifndef PB_RELAY_MPEND_H
#define PB_RELAY_MPEND_H

#include <stdbool.h>
#include <stddef.h>

#define PB_MPEND_MAX_BOUNDARY 70 /* RFC 2046 */

typedef struct pb_mpend {
	char delim[PB_MPEND_MAX_BOUNDARY + 7]; /* CRLF "--" B "--" */
	size_t len;			       /* 0: no boundary known */
	unsigned char fail[PB_MPEND_MAX_BOUNDARY + 7]; /* KMP prefix table */
	size_t matched; /* delimiter bytes matched so far */
	bool ended;	/* the close delimiter was read */
} pb_mpend_t;

/* From a Content-Type's boundary parameter (quoted or not); false when
 * it has none usable, and then every chunk belongs whole. */
bool pb_mpend_init(pb_mpend_t *m, const char *content_type);

/* How many of chunk's n bytes come before the body's end: n until the
 * close delimiter, then up to its last byte, then 0. */
size_t pb_mpend_take(pb_mpend_t *m, const char *chunk, size_t n);

#endif
