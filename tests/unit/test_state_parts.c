/*
 * test_state_parts.c: the state's parts that need no Redis: marks in the
 * order's hash and their pruned index (state_marks.h), the order memo's
 * eviction (state_memo.h) and the waiting "published" marks
 * (state_pubq.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_layout.h"
#include "state_marks.h"
#include "state_memo.h"
#include "state_pubq.h"

/* ---- marks ------------------------------------------------------------- */

static void test_mark_value_round_trip(void **state)
{
	(void)state;
	char *v = pb_smark_value('D', "pushed", NULL, 200, 2, 1000);
	assert_non_null(v);
	pb_state_view_t view = {0};
	pb_smark_parse(v, strlen(v), 999, &view);
	assert_int_equal(view.mark, PB_MARK_DONE);
	assert_string_equal(view.mark_outcome, "pushed");
	assert_int_equal(view.mark_http, 200);
	assert_int_equal(view.mark_attempts, 2);
	/* past its expiry it reads as none */
	pb_state_view_t late = {0};
	pb_smark_parse(v, strlen(v), 1000, &late);
	assert_int_equal(late.mark, PB_MARK_NONE);
	free(v);
	/* the string form has no expiry and never expires here */
	v = pb_smark_value('P', "pushed", NULL, 200, 1, 0);
	pb_state_view_t s = {0};
	pb_smark_parse(v, strlen(v), INT64_MAX - 1, &s);
	assert_int_equal(s.mark, PB_MARK_PUBLISHED);
	free(v);
}

static void test_mark_earlier_names(void **state)
{
	(void)state;
	const char *old = "P|pushed||200|1";
	pb_state_view_t v = {0};
	pb_smark_parse(old, strlen(old), 0, &v);
	assert_int_equal(v.mark, PB_MARK_PUBLISHED);
	assert_string_equal(v.mark_outcome, "pushed");
	const char *bad = "X|pushed||200|1";
	pb_state_view_t b = {0};
	pb_smark_parse(bad, strlen(bad), 0, &b);
	assert_int_equal(b.mark, PB_MARK_NONE);
}

typedef struct {
	char dropped[200][48];
	size_t n;
} drops_t;

static void on_drop(void *ctx, const char *f, size_t len)
{
	drops_t *d = ctx;
	assert_true(len < 48);
	memcpy(d->dropped[d->n], f, len);
	d->dropped[d->n++][len] = '\0';
}

/* Add ids "e0".."e<n-1>" with expiry exp(i); the index after. */
static char *index_of(size_t n, int64_t (*exp)(size_t), int64_t now, drops_t *d)
{
	char *mi = NULL;
	for (size_t i = 0; i < n; i++) {
		char id[32], *out = NULL;
		snprintf(id, sizeof(id), "e%zu", i);
		assert_true(
		    pb_smark_index_add(mi, id, exp(i), now, on_drop, d, &out));
		free(mi);
		mi = out;
	}
	return mi;
}

#define H PB_SMARK_INDEX_STEP_S

static int64_t far(size_t i)
{
	return 10 * H + (int64_t)i;
}

/* A busy order keeps every mark within its TTL: a dropped one would let
 * a replay of its event be pushed again. */
static void test_index_keeps_live_marks(void **state)
{
	(void)state;
	drops_t d = {0};
	char *mi = index_of(300, far, 100, &d);
	assert_int_equal(pb_smark_index_len(mi), 300);
	assert_int_equal(d.n, 0);
	char *out = NULL;
	assert_true(
	    pb_smark_index_add(mi, "new", 20 * H, 100, on_drop, &d, &out));
	assert_int_equal(pb_smark_index_len(out), 301);
	assert_int_equal(d.n, 0);
	assert_non_null(strstr(out, "\n72000 new\n"));
	/* the expiry rounded up to the hour: e1.. share one line */
	assert_int_equal(strncmp(out, "36000 e0\n39600 e1 e2 e3 ", 24), 0);
	free(mi);
	free(out);
}

static int64_t early_expired(size_t i)
{
	return i < PB_SMARK_EXPIRED_PRUNE ? H : 10 * H;
}

static void test_index_prunes_expired(void **state)
{
	(void)state;
	drops_t d = {0};
	/* written at now 10: nothing expired yet, nothing dropped */
	char *mi = index_of(PB_SMARK_EXPIRED_PRUNE + 2, early_expired, 10, &d);
	assert_int_equal(d.n, 0);
	/* at now H the first PB_SMARK_EXPIRED_PRUNE have expired */
	char *out = NULL;
	assert_true(pb_smark_index_add(mi, "x", 20 * H, H, on_drop, &d, &out));
	assert_int_equal(d.n, PB_SMARK_EXPIRED_PRUNE);
	assert_int_equal(pb_smark_index_len(out), 3);
	free(mi);
	free(out);
}

static void test_index_rewrite_keeps_mark(void **state)
{
	(void)state;
	drops_t d = {0};
	/* e0..e7 expire at H, e8 and e9 later */
	char *mi = index_of(PB_SMARK_EXPIRED_PRUNE + 2, early_expired, 10, &d);
	char *a = NULL, *b = NULL;
	/* e0 written again, expiring later: two lines until the next prune */
	assert_true(pb_smark_index_add(mi, "e0", 30 * H, 10, on_drop, &d, &a));
	assert_int_equal(pb_smark_index_len(a), PB_SMARK_EXPIRED_PRUNE + 3);
	/* the prune drops the expired lines, but not e0's mark: its later
	 * line stands for it */
	assert_true(pb_smark_index_add(a, "y", 30 * H, H, on_drop, &d, &b));
	assert_int_equal(d.n, PB_SMARK_EXPIRED_PRUNE - 1);
	for (size_t i = 0; i < d.n; i++)
		assert_string_not_equal(d.dropped[i], "m:e0");
	assert_string_equal(b, "36000 e8 e9\n108000 e0 y\n");
	free(mi);
	free(a);
	free(b);
}

static void test_index_newline_id(void **state)
{
	(void)state;
	drops_t d = {0};
	char *out = NULL;
	assert_true(pb_smark_index_add(NULL, "a\nb", 10, 0, on_drop, &d, &out));
	assert_null(out); /* not indexed */
	assert_true(pb_smark_index_add(NULL, "a b", 10, 0, on_drop, &d, &out));
	assert_null(out); /* nor with a space, the index's separator */
}

/* The index rounds expiries up: a mark is pruned after its own expiry,
 * never before; earlier builds' lines (one id each) read the same. */
static void test_index_rounds_up_reads_old_lines(void **state)
{
	(void)state;
	drops_t d = {0};
	char *mi = NULL, *out = NULL;
	for (int i = 0; i < PB_SMARK_EXPIRED_PRUNE; i++) {
		char id[8];
		snprintf(id, sizeof(id), "r%d", i);
		assert_true(
		    pb_smark_index_add(mi, id, H + 1, 0, on_drop, &d, &out));
		free(mi);
		mi = out;
	}
	assert_string_equal(mi, "7200 r0 r1 r2 r3 r4 r5 r6 r7\n");
	assert_true(
	    pb_smark_index_add(mi, "s", 9 * H, H + 1, on_drop, &d, &out));
	assert_int_equal(d.n, 0); /* expired at H + 1, indexed until 2 H */
	free(out);
	assert_true(
	    pb_smark_index_add(mi, "s", 9 * H, 2 * H, on_drop, &d, &out));
	assert_int_equal(d.n, PB_SMARK_EXPIRED_PRUNE);
	assert_string_equal(out, "32400 s\n");
	free(out);
	free(mi);
	/* an earlier build's index: one line a mark, exact expiries */
	const char *old = "5 o0\n6 o1\n7 o2\n8 o3\n9 o4\n10 o5\n11 o6\n"
			  "12 o7\n50000 o8\n";
	assert_int_equal(pb_smark_index_len(old), 9);
	drops_t e = {0};
	assert_true(pb_smark_index_add(old, "n", 9 * H, 12, on_drop, &e, &out));
	assert_int_equal(e.n, PB_SMARK_EXPIRED_PRUNE);
	assert_string_equal(e.dropped[7], "m:o7");
	assert_string_equal(out, "50000 o8\n32400 n\n");
	free(out);
}

/* ---- memo -------------------------------------------------------------- */

static void test_memo_lru_eviction(void **state)
{
	(void)state;
	pb_omemo_t *m = pb_omemo_new(3);
	assert_non_null(m);
	pb_omemo_put(m, "a", strdup("1 a\n"), true);
	pb_omemo_put(m, "b", NULL, false);
	pb_omemo_put(m, "c", NULL, true);
	assert_non_null(pb_omemo_get(m, "a")); /* a is now the newest */
	pb_omemo_put(m, "d", NULL, true);      /* b, the oldest, goes */
	assert_int_equal(pb_omemo_count(m), 3);
	assert_null(pb_omemo_get(m, "b"));
	const pb_omemo_entry_t *a = pb_omemo_get(m, "a");
	assert_non_null(a);
	assert_string_equal(a->mi, "1 a\n");
	assert_true(a->has_order);
	pb_omemo_put(m, "c", strdup("2 c\n"), false); /* replaced */
	assert_string_equal(pb_omemo_get(m, "c")->mi, "2 c\n");
	pb_omemo_set_order(m, "c");
	assert_true(pb_omemo_get(m, "c")->has_order);
	pb_omemo_set_order(m, "zz"); /* not in: no-op */
	assert_int_equal(pb_omemo_count(m), 3);
	pb_omemo_destroy(m);
}

static void test_memo_many(void **state)
{
	(void)state;
	pb_omemo_t *m = pb_omemo_new(PB_OMEMO_CAP);
	char k[32];
	for (int i = 0; i < PB_OMEMO_CAP * 3; i++) {
		snprintf(k, sizeof(k), "o%d", i);
		pb_omemo_put(m, k, strdup("x"), true);
	}
	assert_int_equal(pb_omemo_count(m), PB_OMEMO_CAP);
	snprintf(k, sizeof(k), "o%d", PB_OMEMO_CAP * 2 - 1);
	assert_null(pb_omemo_get(m, k));
	snprintf(k, sizeof(k), "o%d", PB_OMEMO_CAP * 2);
	assert_non_null(pb_omemo_get(m, k));
	pb_omemo_destroy(m);
	/* sized for the events a worker holds between fetch and commit */
	assert_int_equal(pb_omemo_cap_for(2000), 3000);
	assert_int_equal(pb_omemo_cap_for(0), 3000);
	assert_int_equal(pb_omemo_cap_for(10), 256);
}

/* ---- waiting published marks ------------------------------------------ */

typedef struct {
	char out[4096];
	int orders, fields;
} sink_t;

static void sink_begin(void *ctx, const char *okey)
{
	sink_t *s = ctx;
	s->orders++;
	strncat(s->out, "|", sizeof(s->out) - strlen(s->out) - 1);
	strncat(s->out, okey, sizeof(s->out) - strlen(s->out) - 1);
}

static void sink_emit(void *ctx, const char *f, const char *v)
{
	sink_t *s = ctx;
	s->fields++;
	strncat(s->out, " ", sizeof(s->out) - strlen(s->out) - 1);
	strncat(s->out, f, sizeof(s->out) - strlen(s->out) - 1);
	strncat(s->out, "=", sizeof(s->out) - strlen(s->out) - 1);
	strncat(s->out, v, sizeof(s->out) - strlen(s->out) - 1);
}

static void test_pubq_fold_and_find(void **state)
{
	(void)state;
	pb_pubq_t *q = pb_pubq_new();
	assert_true(pb_pubq_add(q, "o1", "m:a", "P1", 0));
	assert_true(pb_pubq_add(q, "o2", "m:b", "P2", 0));
	assert_true(pb_pubq_add(q, "o1", "m:c", "P3", 0));
	assert_string_equal(pb_pubq_find(q, "o1", "m:c"), "P3");
	assert_null(pb_pubq_find(q, "o1", "m:b"));
	sink_t s = {0};
	pb_pubq_fold(q, "o1", sink_emit, &s); /* with o1's next write */
	assert_string_equal(s.out, " m:a=P1 m:c=P3");
	assert_int_equal(pb_pubq_count(q), 1);
	assert_null(pb_pubq_find(q, "o1", "m:a"));
	/* not due yet: nothing flushed */
	sink_t f = {0};
	pb_pubq_flush(q, PB_PUBQ_DEFER_MS - 1, false, sink_begin, sink_emit,
		      &f);
	assert_int_equal(f.orders, 0);
	pb_pubq_flush(q, PB_PUBQ_DEFER_MS, false, sink_begin, sink_emit, &f);
	assert_string_equal(f.out, "|o2 m:b=P2");
	assert_int_equal(pb_pubq_count(q), 0);
	pb_pubq_destroy(q);
}

/* A folded entry leaves the queue at once wherever it stands (the head,
 * the middle, the tail): the flush that follows sees the others only, in
 * the order they were added, and the count is the live entries. */
static void test_pubq_fold_frees_anywhere(void **state)
{
	(void)state;
	pb_pubq_t *q = pb_pubq_new();
	const char *o[] = {"o1", "o2", "o3", "o4", "o5"};
	for (int i = 0; i < 5; i++)
		assert_true(pb_pubq_add(q, o[i], "m:x", o[i], i));
	sink_t s = {0};
	pb_pubq_fold(q, "o3", sink_emit, &s); /* the middle */
	pb_pubq_fold(q, "o1", sink_emit, &s); /* the head */
	pb_pubq_fold(q, "o5", sink_emit, &s); /* the tail */
	assert_string_equal(s.out, " m:x=o3 m:x=o1 m:x=o5");
	assert_int_equal(pb_pubq_count(q), 2);
	assert_null(pb_pubq_find(q, "o1", "m:x"));
	assert_true(pb_pubq_add(q, "o6", "m:y", "o6", 10));
	sink_t f = {0};
	pb_pubq_flush(q, PB_PUBQ_DEFER_MS + 4, false, sink_begin, sink_emit,
		      &f); /* o2 and o4 are due, o6 is not */
	assert_string_equal(f.out, "|o2 m:x=o2|o4 m:x=o4");
	assert_int_equal(pb_pubq_count(q), 1);
	assert_string_equal(pb_pubq_find(q, "o6", "m:y"), "o6");
	pb_pubq_destroy(q);
}

/* Shutdown writes every waiting mark, one HSET per order; a crash (the
 * queue freed unwritten) loses them, which the state then reads as "D". */
static void test_pubq_flush_all_and_bound(void **state)
{
	(void)state;
	pb_pubq_t *q = pb_pubq_new();
	assert_true(pb_pubq_add(q, "o1", "m:a", "P", 100));
	assert_true(pb_pubq_add(q, "o2", "m:b", "P", 100));
	assert_true(pb_pubq_add(q, "o1", "m:c", "P", 100));
	sink_t s = {0};
	pb_pubq_flush(q, 100, true, sink_begin, sink_emit, &s);
	assert_int_equal(s.orders, 2);
	assert_int_equal(s.fields, 3);
	assert_int_equal(pb_pubq_count(q), 0);
	/* past the bound the oldest go at once, however young */
	char f[32];
	for (int i = 0; i < PB_PUBQ_MAX + 5; i++) {
		snprintf(f, sizeof(f), "m:%d", i);
		assert_true(pb_pubq_add(q, "o", f, "P", 0));
	}
	sink_t b = {0};
	pb_pubq_flush(q, 0, false, sink_begin, sink_emit, &b);
	assert_true(b.fields >= 5);
	assert_true(pb_pubq_count(q) <= PB_PUBQ_MAX);
	pb_pubq_destroy(q); /* the crash case: freed, nothing written */
}

/* ---- the upgrade window ----------------------------------------------- */

static void test_layout_window(void **state)
{
	(void)state;
	int64_t at = -1;
	assert_false(pb_slayout_parse(NULL, &at));
	assert_false(pb_slayout_parse("x", &at));
	assert_true(pb_slayout_parse("0", &at));
	assert_int_equal(at, 0);
	assert_true(pb_slayout_parse("1700000000", &at));
	assert_int_equal(at, 1700000000);
	/* a fresh Redis: never string marks */
	assert_int_equal(pb_slayout_first(true, 5000), 0);
	assert_false(pb_slayout_read_legacy(0, 3600, 600, 1));
	assert_false(pb_slayout_write_legacy(0, 3600, 1));
	/* an upgrade at 5000, window 3600, TTL 600 */
	assert_int_equal(pb_slayout_first(false, 5000), 5000);
	assert_true(pb_slayout_write_legacy(5000, 3600, 8599));
	assert_false(pb_slayout_write_legacy(5000, 3600, 8600));
	assert_true(pb_slayout_read_legacy(5000, 3600, 600, 9199));
	assert_false(pb_slayout_read_legacy(5000, 3600, 600, 9200));
	/* window 0: read for one TTL, never written */
	assert_false(pb_slayout_write_legacy(5000, 0, 5000));
	assert_true(pb_slayout_read_legacy(5000, 0, 600, 5599));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mark_value_round_trip),
	    cmocka_unit_test(test_mark_earlier_names),
	    cmocka_unit_test(test_index_keeps_live_marks),
	    cmocka_unit_test(test_index_prunes_expired),
	    cmocka_unit_test(test_index_rewrite_keeps_mark),
	    cmocka_unit_test(test_index_newline_id),
	    cmocka_unit_test(test_index_rounds_up_reads_old_lines),
	    cmocka_unit_test(test_memo_lru_eviction),
	    cmocka_unit_test(test_memo_many),
	    cmocka_unit_test(test_pubq_fold_and_find),
	    cmocka_unit_test(test_pubq_fold_frees_anywhere),
	    cmocka_unit_test(test_pubq_flush_all_and_bound),
	    cmocka_unit_test(test_layout_window),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
