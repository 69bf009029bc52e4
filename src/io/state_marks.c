/*
 * state_marks.c: marks in the order's hash and their prune (see
 * state_marks.h).
 */
#include "state_marks.h"

#include <stdlib.h>
#include <string.h>

#include "jtext.h"
#include "outcome.h"
#include "util.h"

/* The stored form of an outcome or a reason: its code (outcome.h) when it
 * has one, else the name as it is (a reason the table does not know). */
static const char *mark_code(const char *name, bool outcome, char *buf)
{
	pb_outcome_t o;
	pb_reason_t r;
	size_t n = name ? strlen(name) : 0;
	if (!n)
		return "";
	if (outcome ? pb_outcome_parse(name, n, &o)
		    : pb_reason_parse(name, n, &r)) {
		pb_i64_text(buf, outcome ? (int64_t)o : (int64_t)r);
		return buf;
	}
	return name;
}

static char *put(char *d, const char *s, size_t n)
{
	memcpy(d, s, n);
	return d + n;
}

/* Both texts are made for every event's write: allocated at their size
 * and written in place (through a growing text buffer they were 1% of
 * the worker's instructions). */
char *pb_smark_value(char s, const char *outcome, const char *reason,
		     int http_status, int attempts, int64_t expires)
{
	char oc[24], rc[24], hs[24], at[24], ex[24];
	const char *o = mark_code(outcome, true, oc);
	const char *r = mark_code(reason, false, rc);
	size_t lo = strlen(o), lr = strlen(r);
	size_t lh = pb_i64_text(hs, http_status),
	       la = pb_i64_text(at, attempts);
	size_t le = expires > 0 ? pb_i64_text(ex, expires) : 0;
	char *v = malloc(2 + lo + 1 + lr + 1 + lh + 1 + la + 1 + le + 1);
	if (!v)
		return NULL;
	char *d = put(v, s == 'P' ? "P|" : "D|", 2);
	d = put(d, o, lo);
	d = put(d, "|", 1);
	d = put(d, r, lr);
	d = put(d, "|", 1);
	d = put(d, hs, lh);
	d = put(d, "|", 1);
	d = put(d, at, la);
	if (le) {
		d = put(d, "|", 1);
		d = put(d, ex, le);
	}
	*d = '\0';
	return v;
}

char *pb_smark_field(const char *id)
{
	const char *s = id ? id : "";
	size_t n = strlen(s);
	char *f = malloc(n + 3);
	if (!f)
		return NULL;
	f[0] = 'm';
	f[1] = ':';
	memcpy(f + 2, s, n + 1);
	return f;
}

/* Copy the span f[0..n) into dst (cut to size, NUL-terminated). */
static void span_copy(char *dst, size_t size, const char *f, size_t n)
{
	if (n > size - 1)
		n = size - 1;
	if (n)
		memcpy(dst, f, n);
	dst[n] = '\0';
}

static int64_t span_i64(const char *f, size_t n, int64_t dflt)
{
	char num[24];
	int64_t x;
	span_copy(num, sizeof(num), f ? f : "", f ? n : 0);
	return pb_parse_i64(num, &x) ? x : dflt;
}

/* A mark's outcome or reason field into its name: a code (this build) or
 * a name (earlier builds, and reasons without a code) reads back alike. */
static void mark_name(char *out, size_t size, const char *f, size_t len,
		      bool outcome)
{
	pb_outcome_t o;
	pb_reason_t r;
	if (outcome && pb_outcome_parse(f, len, &o))
		pb_strlcpy(out, pb_outcome_name(o), size);
	else if (!outcome && len && pb_reason_parse(f, len, &r))
		pb_strlcpy(out, pb_reason_name(r), size);
	else
		span_copy(out, size, f, len);
}

void pb_smark_parse(const char *s, size_t n, int64_t now_s, pb_state_view_t *v)
{
	/* the six fields, split at '|' */
	const char *f[6] = {s, NULL, NULL, NULL, NULL, NULL};
	size_t len[6] = {0}, k = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '|') {
			len[k]++;
			continue;
		}
		if (++k == 6)
			break;
		f[k] = s + i + 1;
	}
	if (len[0] != 1 || (s[0] != 'P' && s[0] != 'D'))
		return;
	if (f[5] && span_i64(f[5], len[5], INT64_MAX) <= now_s)
		return; /* expired, not pruned yet */
	v->mark = s[0] == 'P' ? PB_MARK_PUBLISHED : PB_MARK_DONE;
	mark_name(v->mark_outcome, sizeof(v->mark_outcome), f[1], len[1], true);
	mark_name(v->mark_reason, sizeof(v->mark_reason), f[2], len[2], false);
	v->mark_http = (int)span_i64(f[3], len[3], 0);
	v->mark_attempts = (int)span_i64(f[4], len[4], 0);
}

/* ---- the prune ---------------------------------------------------------- */

int64_t pb_smark_expiry(const char *s, size_t n)
{
	size_t bars = 0, last = 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '|') {
			bars++;
			last = i + 1;
		}
	if (bars != 5 || n < 1 || (s[0] != 'P' && s[0] != 'D'))
		return -1;
	return span_i64(s + last, n - last, -1);
}
