/*
 * push_body.h: the body of a push as Pruvan documents it (contract
 * section 8), for the pusher's hot path.
 *
 * Pruvan's documented form is application/x-www-form-urlencoded with one
 * field, workOrders, whose value is the whole JSON object
 * {"workOrders":[...]}. The value is percent-encoded byte by byte: the
 * unreserved characters of RFC 3986 (A-Z a-z 0-9 - . _ ~) stay as they
 * are, every other byte becomes %XX (upper-case hex), so any decoder of
 * urlencoded forms (including one that reads '+' as a space) gets the
 * JSON back exactly.
 *
 * Pure functions: no I/O, no globals.
 */
#ifndef PB_PUSH_BODY_H
#define PB_PUSH_BODY_H

#include <stddef.h>

/* The name of the one form field (urlencoded and multipart). */
#define PB_PUSH_FORM_FIELD "workOrders"

/* Bytes of "workOrders=" plus json[0..len) percent-encoded. */
size_t pb_push_form_len(const char *json, size_t len);

/* Writes "workOrders=<encoded json>" and a NUL into out, which holds at
 * least pb_push_form_len(json, len) + 1 bytes; returns the length. */
size_t pb_push_form_write(const char *json, size_t len, char *out);

#endif
