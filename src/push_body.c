/*
 * push_body.c: the urlencoded push body (see push_body.h).
 *
 * A few comparisons per byte in each of two passes (length, then write),
 * so the body is allocated once at its exact size: a batch of 50 orders is
 * tens of kilobytes and the pusher writes one per request.
 */
#include "push_body.h"

#include <stdbool.h>
#include <string.h>

/* Whether byte c stays as it is (RFC 3986 unreserved). */
static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~';
}

size_t pb_push_form_len(const char *json, size_t len)
{
	size_t n = sizeof(PB_PUSH_FORM_FIELD "=") - 1;
	for (size_t i = 0; i < len; i++)
		n += unreserved((unsigned char)json[i]) ? 1 : 3;
	return n;
}

size_t pb_push_form_write(const char *json, size_t len, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	static const char field[] = PB_PUSH_FORM_FIELD "=";
	size_t o = sizeof(field) - 1;
	memcpy(out, field, o);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)json[i];
		if (unreserved(c)) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return o;
}
