/*
 * state_marks.c: marks in the order's hash and their index (see
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

char *pb_smark_value(char s, const char *outcome, const char *reason,
		     int http_status, int attempts, int64_t expires)
{
	char oc[24], rc[24];
	pb_jtext_t b = {0};
	pb_jt_lit(&b, s == 'P' ? "P|" : "D|");
	pb_jt_lit(&b, mark_code(outcome, true, oc));
	pb_jt_lit(&b, "|");
	pb_jt_lit(&b, mark_code(reason, false, rc));
	pb_jt_lit(&b, "|");
	pb_jt_i64(&b, http_status);
	pb_jt_lit(&b, "|");
	pb_jt_i64(&b, attempts);
	if (expires > 0) {
		pb_jt_lit(&b, "|");
		pb_jt_i64(&b, expires);
	}
	return pb_jt_take(&b);
}

char *pb_smark_field(const char *id)
{
	pb_jtext_t b = {0};
	pb_jt_lit(&b, "m:");
	pb_jt_lit(&b, id ? id : "");
	return pb_jt_take(&b);
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

/* ---- the index ---------------------------------------------------------- */

/* One id of an index, with its line's expiry. */
typedef struct {
	int64_t exp;
	const char *id;
	size_t len;
} mi_entry_t;

/* An expiry as the index keeps it: rounded up to its step, so the marks
 * of one stretch of time share a line (a mark is pruned a little later,
 * never earlier; its own value carries the exact expiry). */
static int64_t index_exp(int64_t exp)
{
	int64_t r = exp % PB_SMARK_INDEX_STEP_S;
	return r ? exp + (PB_SMARK_INDEX_STEP_S - r) : exp;
}

/* The ids of one line "EXP ID ID..." (without its newline) into e. */
static size_t line_split(const char *s, const char *nl, mi_entry_t *e,
			 size_t cap)
{
	const char *sp = memchr(s, ' ', (size_t)(nl - s));
	if (!sp)
		return 0;
	int64_t exp = span_i64(s, (size_t)(sp - s), -1);
	if (exp < 0)
		return 0;
	size_t n = 0;
	for (const char *id = sp + 1; id <= nl && n < cap;) {
		const char *end = memchr(id, ' ', (size_t)(nl - id));
		if (!end)
			end = nl;
		if (end > id)
			e[n++] = (mi_entry_t){exp, id, (size_t)(end - id)};
		id = end + 1;
	}
	return n;
}

/* Split index text into entries (at most cap); malformed lines skipped. */
static size_t mi_split(const char *s, mi_entry_t *e, size_t cap)
{
	size_t n = 0;
	while (s && *s && n < cap) {
		const char *nl = strchr(s, '\n');
		if (!nl)
			break;
		n += line_split(s, nl, e + n, cap - n);
		s = nl + 1;
	}
	return n;
}

/* Every id follows one space (ids hold none). */
size_t pb_smark_index_len(const char *mi)
{
	size_t n = 0;
	for (const char *p = mi; p && (p = strchr(p, ' ')); p++)
		n++;
	return n;
}

/* Whether an index needs pruning: its PB_SMARK_EXPIRED_PRUNE-th id
 * (oldest first) expired. */
static bool prune_due(const char *s, int64_t now)
{
	size_t seen = 0;
	while (s && *s) {
		const char *nl = strchr(s, '\n');
		if (!nl)
			return false;
		const char *sp = memchr(s, ' ', (size_t)(nl - s));
		if (sp) {
			for (const char *p = sp; p < nl; p++)
				seen += *p == ' ';
			if (seen >= PB_SMARK_EXPIRED_PRUNE)
				return span_i64(s, (size_t)(sp - s),
						INT64_MAX) <= now;
		}
		s = nl + 1;
	}
	return false;
}

/* Append id to the text in b: to its last line when that line has the
 * same expiry, else on a line of its own. last_exp: the last line's
 * expiry (-1: none). */
static void id_put(pb_jtext_t *b, int64_t *last_exp, int64_t exp,
		   const char *id, size_t len)
{
	if (*last_exp == exp && b->len && b->p[b->len - 1] == '\n') {
		b->len--; /* reopen the line */
	} else {
		pb_jt_i64(b, exp);
		*last_exp = exp;
	}
	pb_jt_put(b, " ", 1);
	pb_jt_put(b, id, len);
	pb_jt_put(b, "\n", 1);
}

/* The expiry of the last line of s (-1: none, or malformed). */
static int64_t last_line_exp(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n < 2 || s[n - 1] != '\n')
		return -1;
	size_t i = n - 1;
	while (i > 0 && s[i - 1] != '\n')
		i--;
	const char *sp = memchr(s + i, ' ', n - 1 - i);
	return sp ? span_i64(s + i, (size_t)(sp - (s + i)), -1) : -1;
}

/* Whether e[i]'s id has a later entry (written again since). */
static bool superseded(const mi_entry_t *e, size_t n, size_t i)
{
	for (size_t j = i + 1; j < n; j++)
		if (e[j].len == e[i].len &&
		    memcmp(e[j].id, e[i].id, e[i].len) == 0)
			return true;
	return false;
}

static void drop_one(const mi_entry_t *e, pb_smark_drop_fn drop, void *ctx,
		     pb_jtext_t *out)
{
	pb_jtext_t f = {0};
	pb_jt_put(&f, "m:", 2);
	pb_jt_put(&f, e->id, e->len);
	if (!f.bad)
		drop(ctx, f.p, f.len);
	out->bad |= f.bad;
	free(f.p);
}

/* The index rebuilt: expired ids dropped (handed to drop); id's own
 * earlier entries, and any entry whose id has a later one, left out
 * without dropping the mark. *last_exp: the last line's expiry. */
static void index_rebuild(const char *old, const char *id, int64_t now,
			  pb_smark_drop_fn drop, void *ctx, pb_jtext_t *out,
			  int64_t *last_exp)
{
	size_t cap = pb_smark_index_len(old) + 1;
	mi_entry_t *e = malloc(cap * sizeof(*e));
	if (!e) {
		out->bad = true;
		return;
	}
	size_t n = mi_split(old, e, cap);
	size_t idlen = strlen(id);
	for (size_t i = 0; i < n; i++) {
		bool same =
		    e[i].len == idlen && memcmp(e[i].id, id, idlen) == 0;
		if (same || superseded(e, n, i))
			continue; /* its last entry stands for it */
		if (e[i].exp <= now)
			drop_one(&e[i], drop, ctx, out);
		else
			id_put(out, last_exp, e[i].exp, e[i].id, e[i].len);
	}
	free(e);
}

bool pb_smark_index_add(const char *old, const char *id, int64_t exp,
			int64_t now_s, pb_smark_drop_fn drop, void *ctx,
			char **out)
{
	pb_jtext_t b = {0};
	int64_t last = -1;
	*out = NULL;
	if (prune_due(old, now_s)) {
		index_rebuild(old, id, now_s, drop, ctx, &b, &last);
	} else if (old) { /* the common case: appended, nothing parsed */
		pb_jt_put(&b, old, strlen(old));
		last = last_line_exp(old);
	}
	if (!strpbrk(id, "\n ") && *id)
		id_put(&b, &last, index_exp(exp), id, strlen(id));
	if (b.bad) {
		free(b.p);
		return false;
	}
	*out = b.p;
	return true;
}
