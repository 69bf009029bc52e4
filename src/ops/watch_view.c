/*
 * watch_view.c: aggregation and rendering for `pruvan-bridge watch` (see
 * watch_view.h for what is kept and why it is bounded).
 *
 * All memory is one calloc in pb_watch_view_new: fixed tables of accounts,
 * reasons and the problems ring, so adding a record never allocates beyond
 * jansson's parse of it and can never fail for lack of memory. Rendering
 * builds a string in a growable buffer whose size is bounded by those
 * tables.
 *
 * Alignment counts UTF-8 code points, not bytes, so an account name with
 * accents does not push its row out of line; strings from records are
 * cleaned of control characters (C0, DEL and C1, which includes the
 * single-byte CSI) before they are stored, so the plain-text rendering
 * is free of escape codes whatever the records say.
 */
#include "watch_view.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dates.h"
#include "util.h"

#define NONE_ACCOUNT  "(none)"
#define OTHER_ACCOUNT "(other)"
#define LINE_WRAP     100 /* reasons lines wrap here */

typedef struct account {
	char name[64];
	long counts[PB_WATCH_OUTCOMES];
	long total;
	/* rate ring: bucket i holds the records of second bucket_sec[i] */
	int64_t bucket_sec[PB_WATCH_RATE_WINDOW];
	long bucket_n[PB_WATCH_RATE_WINDOW];
} account_t;

typedef struct reason {
	size_t account; /* index into accounts */
	pb_watch_outcome_t outcome;
	char name[48];
	long n;
} reason_t;

struct pb_watch_view {
	account_t accounts[PB_WATCH_MAX_ACCOUNTS];
	size_t n_accounts;
	reason_t reasons[PB_WATCH_MAX_REASONS];
	size_t n_reasons;
	long reasons_untracked; /* reasons seen after the table filled */
	pb_watch_problem_t ring[PB_WATCH_PROBLEMS];
	size_t ring_next; /* slot of the next problem */
	size_t ring_len;
	long total;
	long unreadable;
};

static const char *const outcome_names[PB_WATCH_OUTCOMES] = {
    "created", "updated",  "deleted", "unchanged", "duplicate",
    "stale",   "rejected", "failed",  "relayed",   "discarded",
};

const char *pb_watch_outcome_name(pb_watch_outcome_t o)
{
	if ((int)o < 0 || o >= PB_WATCH_OUTCOMES)
		return NULL;
	return outcome_names[o];
}

bool pb_watch_outcome_parse(const char *name, pb_watch_outcome_t *out)
{
	for (int i = 0; name && i < PB_WATCH_OUTCOMES; i++) {
		if (strcmp(name, outcome_names[i]) == 0) {
			*out = (pb_watch_outcome_t)i;
			return true;
		}
	}
	return false;
}

static bool is_problem(pb_watch_outcome_t o)
{
	return o == PB_WATCH_REJECTED || o == PB_WATCH_FAILED ||
	       o == PB_WATCH_DISCARDED;
}

/* ---- strings ---------------------------------------------------------- */

/*
 * Copy src into dst (size > 0), at most size - 1 bytes, never cutting a
 * UTF-8 sequence in half, with control characters turned into spaces.
 * jansson hands us valid UTF-8, so only lead/continuation bytes matter.
 */
static void clean_copy(char *dst, size_t size, const char *src)
{
	size_t o = 0;
	const unsigned char *s = (const unsigned char *)(src ? src : "");
	while (*s) {
		size_t n = 1;
		if (*s >= 0xF0)
			n = 4;
		else if (*s >= 0xE0)
			n = 3;
		else if (*s >= 0xC0)
			n = 2;
		if (o + n >= size)
			break;
		if (n == 1 && (*s < 0x20 || *s == 0x7F)) {
			dst[o++] = ' ';
		} else if (n == 2 && s[0] == 0xC2 && s[1] >= 0x80 &&
			   s[1] <= 0x9F) {
			dst[o++] = ' '; /* C1 control, e.g. U+009B CSI */
		} else {
			size_t k;
			for (k = 0; k < n && s[k]; k++)
				dst[o++] = (char)s[k];
			if (k < n)
				break; /* truncated sequence: stop */
		}
		s += n;
	}
	dst[o] = '\0';
}

/* Display width: UTF-8 code points. */
static size_t width_of(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			w++;
	return w;
}

static const char *json_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* ---- time ------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* ---- aggregation ------------------------------------------------------ */

pb_watch_view_t *pb_watch_view_new(void)
{
	return calloc(1, sizeof(pb_watch_view_t));
}

void pb_watch_view_destroy(pb_watch_view_t *v)
{
	free(v);
}

static account_t *account_init(pb_watch_view_t *v, const char *name)
{
	account_t *a = &v->accounts[v->n_accounts++];
	clean_copy(a->name, sizeof(a->name), name);
	for (int i = 0; i < PB_WATCH_RATE_WINDOW; i++)
		a->bucket_sec[i] = INT64_MIN;
	return a;
}

static long account_find(const pb_watch_view_t *v, const char *name)
{
	for (size_t i = 0; i < v->n_accounts; i++)
		if (strcmp(v->accounts[i].name, name) == 0)
			return (long)i;
	return -1;
}

/* The account's index, adding it while there is room; the last slot is
 * kept for "(other)" so an unbounded set of names stays one row. */
static size_t account_slot(pb_watch_view_t *v, const char *raw)
{
	char name[sizeof(v->accounts[0].name)];
	clean_copy(name, sizeof(name), raw && *raw ? raw : NONE_ACCOUNT);
	long i = account_find(v, name);
	if (i >= 0)
		return (size_t)i;
	if (v->n_accounts >= PB_WATCH_MAX_ACCOUNTS - 1) {
		i = account_find(v, OTHER_ACCOUNT);
		if (i >= 0)
			return (size_t)i;
		account_init(v, OTHER_ACCOUNT);
		return v->n_accounts - 1;
	}
	account_init(v, name);
	return v->n_accounts - 1;
}

static void rate_add(account_t *a, int64_t t_ms)
{
	int64_t sec = floor_div(t_ms, 1000);
	size_t slot = (size_t)(sec - floor_div(sec, PB_WATCH_RATE_WINDOW) *
					 PB_WATCH_RATE_WINDOW);
	if (a->bucket_sec[slot] == sec) {
		a->bucket_n[slot]++;
	} else if (a->bucket_sec[slot] < sec) {
		a->bucket_sec[slot] = sec;
		a->bucket_n[slot] = 1;
	}
	/* else: older than what the slot holds, outside any window to come */
}

static void reason_add(pb_watch_view_t *v, size_t acct, pb_watch_outcome_t o,
		       const char *raw)
{
	char name[sizeof(v->reasons[0].name)];
	clean_copy(name, sizeof(name), raw);
	for (size_t i = 0; i < v->n_reasons; i++) {
		reason_t *r = &v->reasons[i];
		if (r->account == acct && r->outcome == o &&
		    strcmp(r->name, name) == 0) {
			r->n++;
			return;
		}
	}
	if (v->n_reasons >= PB_WATCH_MAX_REASONS) {
		v->reasons_untracked++;
		return;
	}
	reason_t *r = &v->reasons[v->n_reasons++];
	r->account = acct;
	r->outcome = o;
	memcpy(r->name, name, sizeof(name));
	r->n = 1;
}

static void problem_add(pb_watch_view_t *v, const json_t *rec,
			pb_watch_outcome_t o, const char *account)
{
	pb_watch_problem_t *p = &v->ring[v->ring_next];
	memset(p, 0, sizeof(*p));
	p->outcome = o;
	clean_copy(p->account, sizeof(p->account), account);
	clean_copy(p->event_id, sizeof(p->event_id), json_str(rec, "eventId"));
	clean_copy(p->work_order, sizeof(p->work_order),
		   json_str(rec, "workOrderNumber"));
	clean_copy(p->reason, sizeof(p->reason), json_str(rec, "reason"));
	clean_copy(p->message, sizeof(p->message), json_str(rec, "message"));
	v->ring_next = (v->ring_next + 1) % PB_WATCH_PROBLEMS;
	if (v->ring_len < PB_WATCH_PROBLEMS)
		v->ring_len++;
}

pb_err_t pb_watch_view_add_at(pb_watch_view_t *v, const char *json, size_t len,
			      int64_t arrival_ms)
{
	pb_err_t err = PB_OK;
	json_error_t jerr;
	pb_watch_outcome_t o;
	json_t *rec = json ? json_loadb(json, len, 0, &jerr) : NULL;
	if (!json_is_object(rec) ||
	    !pb_watch_outcome_parse(json_str(rec, "outcome"), &o)) {
		v->unreadable++;
		err = PB_ERR_INVALID;
		goto out;
	}
	size_t ai = account_slot(v, json_str(rec, "account"));
	account_t *a = &v->accounts[ai];
	a->counts[o]++;
	a->total++;
	v->total++;

	int64_t t = arrival_ms;
	int64_t processed;
	if (pb_rfc3339_to_ms(json_str(rec, "processedAt"), &processed) &&
	    processed < arrival_ms)
		t = processed;
	rate_add(a, t);

	const char *reason = json_str(rec, "reason");
	if (reason && *reason)
		reason_add(v, ai, o, reason);
	if (is_problem(o))
		problem_add(v, rec, o, a->name);
out:
	json_decref(rec);
	return err;
}

pb_err_t pb_watch_view_add(pb_watch_view_t *v, const char *json, size_t len)
{
	return pb_watch_view_add_at(v, json, len, pb_wall_ms());
}

/* ---- queries ---------------------------------------------------------- */

long pb_watch_view_total(const pb_watch_view_t *v)
{
	return v->total;
}

long pb_watch_view_unreadable(const pb_watch_view_t *v)
{
	return v->unreadable;
}

static bool account_matches(const pb_watch_view_t *v, size_t i,
			    const char *account)
{
	return !account || strcmp(v->accounts[i].name, account) == 0;
}

long pb_watch_view_count(const pb_watch_view_t *v, const char *account,
			 pb_watch_outcome_t o)
{
	long n = 0;
	if ((int)o < 0 || o >= PB_WATCH_OUTCOMES)
		return 0;
	for (size_t i = 0; i < v->n_accounts; i++)
		if (account_matches(v, i, account))
			n += v->accounts[i].counts[o];
	return n;
}

long pb_watch_view_reason_count(const pb_watch_view_t *v, const char *account,
				pb_watch_outcome_t o, const char *reason)
{
	long n = 0;
	for (size_t i = 0; i < v->n_reasons; i++) {
		const reason_t *r = &v->reasons[i];
		if (r->outcome == o && strcmp(r->name, reason) == 0 &&
		    account_matches(v, r->account, account))
			n += r->n;
	}
	return n;
}

static long account_recent(const account_t *a, int64_t now_ms)
{
	int64_t now_sec = floor_div(now_ms, 1000);
	long n = 0;
	for (int i = 0; i < PB_WATCH_RATE_WINDOW; i++)
		if (a->bucket_sec[i] > now_sec - PB_WATCH_RATE_WINDOW &&
		    a->bucket_sec[i] <= now_sec)
			n += a->bucket_n[i];
	return n;
}

double pb_watch_view_rate(const pb_watch_view_t *v, const char *account,
			  int64_t now_ms)
{
	long n = 0;
	for (size_t i = 0; i < v->n_accounts; i++)
		if (account_matches(v, i, account))
			n += account_recent(&v->accounts[i], now_ms);
	return (double)n / PB_WATCH_RATE_WINDOW;
}

size_t pb_watch_view_problems(const pb_watch_view_t *v)
{
	return v->ring_len;
}

const pb_watch_problem_t *pb_watch_view_problem(const pb_watch_view_t *v,
						size_t i)
{
	if (i >= v->ring_len)
		return NULL;
	size_t slot =
	    (v->ring_next + PB_WATCH_PROBLEMS - 1 - i) % PB_WATCH_PROBLEMS;
	return &v->ring[slot];
}

/* ---- rendering -------------------------------------------------------- */

typedef struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
} sbuf_t;

static void sb_addf(sbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_addf(sbuf_t *b, const char *fmt, ...)
{
	va_list ap;
	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 1024;
		while (cap - b->len <= (size_t)n)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q) {
			b->oom = true;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
}

/* s, then spaces up to width display columns. */
static void sb_pad(sbuf_t *b, const char *s, size_t width)
{
	size_t w = width_of(s);
	sb_addf(b, "%s%*s", s, (int)(width > w ? width - w : 0), "");
}

static const char *plural(long n)
{
	return n == 1 ? "" : "s";
}

static int digits_of(long n)
{
	char tmp[32];
	return snprintf(tmp, sizeof(tmp), "%ld", n);
}

static void render_heading(sbuf_t *b, const pb_watch_view_t *v,
			   const char *topic, long dlq_count)
{
	long all = v->total + v->unreadable;
	sb_addf(b, "Outcomes on %s: ", topic ? topic : "(results)");
	if (all == 0)
		sb_addf(b, "no outcomes yet");
	else if (v->unreadable > 0)
		sb_addf(b, "%ld record%s (%ld unreadable)", all, plural(all),
			v->unreadable);
	else
		sb_addf(b, "%ld record%s", all, plural(all));
	if (dlq_count >= 0)
		sb_addf(b, ", DLQ: %ld record%s\n", dlq_count,
			plural(dlq_count));
	else
		sb_addf(b, ", DLQ: unknown\n");
}

static void render_table(sbuf_t *b, const pb_watch_view_t *v, int64_t now_ms)
{
	static const char *const heads[PB_WATCH_OUTCOMES] = {
	    "CREATED", "UPDATED",  "DELETED", "UNCHANGED", "DUPLICATE",
	    "STALE",   "REJECTED", "FAILED",  "RELAYED",   "DISCARDED",
	};
	bool sum_row = v->n_accounts > 1;
	size_t aw = strlen("ACCOUNT");
	int cw[PB_WATCH_OUTCOMES], tw = (int)strlen("TOTAL"),
				   rw = (int)strlen("RATE/S");
	if (aw < 16)
		aw = 16;
	for (size_t i = 0; i < v->n_accounts; i++)
		if (width_of(v->accounts[i].name) > aw)
			aw = width_of(v->accounts[i].name);
	/* the (all) row holds the largest numbers of every column */
	for (int o = 0; o < PB_WATCH_OUTCOMES; o++) {
		cw[o] = (int)strlen(heads[o]);
		int d = digits_of(
		    pb_watch_view_count(v, NULL, (pb_watch_outcome_t)o));
		if (d > cw[o])
			cw[o] = d;
	}
	if (digits_of(v->total) > tw)
		tw = digits_of(v->total);
	char rate[32];
	snprintf(rate, sizeof(rate), "%.1f",
		 pb_watch_view_rate(v, NULL, now_ms));
	if ((int)strlen(rate) > rw)
		rw = (int)strlen(rate);

	sb_pad(b, "ACCOUNT", aw);
	for (int o = 0; o < PB_WATCH_OUTCOMES; o++)
		sb_addf(b, " %*s", cw[o], heads[o]);
	sb_addf(b, " %*s %*s\n", tw, "TOTAL", rw, "RATE/S");

	for (size_t i = 0; i <= v->n_accounts; i++) {
		const char *name;
		long total;
		if (i == v->n_accounts) {
			if (!sum_row)
				break;
			name = "(all)";
			total = v->total;
		} else {
			name = v->accounts[i].name;
			total = v->accounts[i].total;
		}
		const char *filter = i == v->n_accounts ? NULL : name;
		sb_pad(b, name, aw);
		for (int o = 0; o < PB_WATCH_OUTCOMES; o++)
			sb_addf(b, " %*ld", cw[o],
				pb_watch_view_count(v, filter,
						    (pb_watch_outcome_t)o));
		sb_addf(b, " %*ld %*.1f\n", tw, total, rw,
			pb_watch_view_rate(v, filter, now_ms));
	}
}

static int reason_cmp(const void *x, const void *y)
{
	const reason_t *a = x, *b = y;
	if (a->n != b->n)
		return a->n > b->n ? -1 : 1;
	if (a->outcome != b->outcome)
		return a->outcome < b->outcome ? -1 : 1;
	return strcmp(a->name, b->name);
}

static void render_reasons(sbuf_t *b, const pb_watch_view_t *v)
{
	if (v->n_reasons == 0 && v->reasons_untracked == 0)
		return;
	reason_t *sorted = malloc(sizeof(reason_t) * (v->n_reasons + 1));
	if (!sorted) {
		b->oom = true;
		return;
	}
	/* One line per account that has reasons; with a single account the
	 * label is just "Reasons:" as there is nothing to tell apart. */
	size_t with = 0;
	for (size_t a = 0; a < v->n_accounts; a++)
		for (size_t i = 0; i < v->n_reasons; i++)
			if (v->reasons[i].account == a) {
				with++;
				break;
			}
	if (with > 1)
		sb_addf(b, "Reasons:\n");
	for (size_t a = 0; a < v->n_accounts; a++) {
		size_t n = 0;
		for (size_t i = 0; i < v->n_reasons; i++)
			if (v->reasons[i].account == a)
				sorted[n++] = v->reasons[i];
		if (n == 0)
			continue;
		qsort(sorted, n, sizeof(*sorted), reason_cmp);
		size_t col;
		if (with > 1) {
			sb_addf(b, "  %s:", v->accounts[a].name);
			col = 3 + width_of(v->accounts[a].name);
		} else {
			sb_addf(b, "Reasons:");
			col = strlen("Reasons:");
		}
		for (size_t i = 0; i < n; i++) {
			char item[128];
			int len =
			    snprintf(item, sizeof(item), "%s/%s %ld",
				     pb_watch_outcome_name(sorted[i].outcome),
				     sorted[i].name, sorted[i].n);
			size_t w = len > 0 ? (size_t)len : 0;
			if (i > 0 && col + 2 + w > LINE_WRAP) {
				sb_addf(b, ",\n    %s", item);
				col = 4 + w;
			} else {
				sb_addf(b, "%s %s", i > 0 ? "," : "", item);
				col += (i > 0 ? 2 : 1) + w;
			}
		}
		sb_addf(b, "\n");
	}
	if (v->reasons_untracked > 0)
		sb_addf(
		    b, "  and %ld more with reasons not tracked (table full)\n",
		    v->reasons_untracked);
	free(sorted);
}

static void render_problems(sbuf_t *b, const pb_watch_view_t *v)
{
	if (v->ring_len == 0)
		return;
	bool show_account = v->n_accounts > 1;
	size_t ow = 0, rw = 0, ew = 0, ww = 0, aw = 0;
	for (size_t i = 0; i < v->ring_len; i++) {
		const pb_watch_problem_t *p = pb_watch_view_problem(v, i);
		size_t w = strlen(pb_watch_outcome_name(p->outcome));
		ow = w > ow ? w : ow;
		w = *p->reason ? width_of(p->reason) : 1;
		rw = w > rw ? w : rw;
		w = *p->event_id ? width_of(p->event_id)
				 : strlen("(no eventId)");
		ew = w > ew ? w : ew;
		w = *p->work_order ? width_of(p->work_order) : 1;
		ww = w > ww ? w : ww;
		w = width_of(p->account);
		aw = w > aw ? w : aw;
	}
	sb_addf(b, "Latest problems:\n");
	for (size_t i = 0; i < v->ring_len; i++) {
		const pb_watch_problem_t *p = pb_watch_view_problem(v, i);
		sb_addf(b, "  ");
		if (show_account) {
			sb_pad(b, p->account, aw);
			sb_addf(b, " ");
		}
		sb_pad(b, pb_watch_outcome_name(p->outcome), ow);
		sb_addf(b, " ");
		sb_pad(b, *p->reason ? p->reason : "-", rw);
		sb_addf(b, " ");
		sb_pad(b, *p->event_id ? p->event_id : "(no eventId)", ew);
		sb_addf(b, " ");
		if (*p->message) {
			sb_pad(b, *p->work_order ? p->work_order : "-", ww);
			sb_addf(b, " - %s\n", p->message);
		} else {
			sb_addf(b, "%s\n",
				*p->work_order ? p->work_order : "-");
		}
	}
}

char *pb_watch_view_render_at(const pb_watch_view_t *v, bool tty,
			      const char *topic, long dlq_count, int64_t now_ms)
{
	sbuf_t b = {0};
	if (tty)
		sb_addf(&b, "\033[H\033[2J"); /* home, clear screen */
	render_heading(&b, v, topic, dlq_count);
	if (v->n_accounts > 0) {
		render_table(&b, v, now_ms);
		render_reasons(&b, v);
		render_problems(&b, v);
	}
	if (b.oom || !b.p) {
		free(b.p);
		return NULL;
	}
	/* Trailing spaces from padding would be invisible noise in logs. */
	size_t o = 0;
	for (size_t i = 0; i < b.len; i++) {
		if (b.p[i] == ' ') {
			size_t j = i;
			while (j < b.len && b.p[j] == ' ')
				j++;
			if (j == b.len || b.p[j] == '\n') {
				i = j - 1;
				continue;
			}
		}
		b.p[o++] = b.p[i];
	}
	b.p[o] = '\0';
	return b.p;
}

char *pb_watch_view_render(const pb_watch_view_t *v, bool tty,
			   const char *topic, long dlq_count)
{
	return pb_watch_view_render_at(v, tty, topic, dlq_count, pb_wall_ms());
}
