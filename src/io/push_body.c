/*
 * push_body.c: the urlencoded push body (see push_body.h).
 *
 * One table lookup per byte in each of two passes (length, then write),
 * so the body is allocated once at its exact size: a batch of 50 orders is
 * tens of kilobytes and the pusher writes one per request.
 */
#include "push_body.h"

#include <string.h>

/* Bytes each byte takes in the form: 1 for the unreserved characters of
 * RFC 3986 (A-Z a-z 0-9 - . _ ~), which stay as they are, else 3 (%XX). */
static const unsigned char enc_len[256] = {
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* 00 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* 10 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 3, /* 20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, /* 30 */
    3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 1, /* 50 */
    3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 1, 3, /* 70 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* 80 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* 90 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* A0 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* B0 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* C0 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* D0 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* E0 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* F0 */
};

size_t pb_push_form_len(const char *json, size_t len)
{
	size_t n = sizeof(PB_PUSH_FORM_FIELD "=") - 1;
	for (size_t i = 0; i < len; i++)
		n += enc_len[(unsigned char)json[i]];
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
		if (enc_len[c] == 1) {
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
