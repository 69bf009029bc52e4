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

/* A prune reads a hash mark's exact expiry; anything else is left alone. */
static void test_mark_expiry(void **state)
{
	(void)state;
	char *v = pb_smark_value('D', "pushed", "", 200, 1, 1700000000);
	assert_non_null(v);
	assert_int_equal(pb_smark_expiry(v, strlen(v)), 1700000000);
	free(v);
	v = pb_smark_value('P', "failed", "http_error", 500, 3, 42);
	assert_int_equal(pb_smark_expiry(v, strlen(v)), 42);
	free(v);
	/* the string key's form has no expiry */
	v = pb_smark_value('D', "pushed", "", 200, 1, 0);
	assert_int_equal(pb_smark_expiry(v, strlen(v)), -1);
	free(v);
	assert_int_equal(pb_smark_expiry("X|1|2|3|4|5", 11), -1);
	assert_int_equal(pb_smark_expiry("D|1|2|3|4|", 10), -1);
	assert_int_equal(pb_smark_expiry("D|1|2|3|4|5|6", 13), -1);
	assert_int_equal(pb_smark_expiry("", 0), -1);
}

/* ---- memo -------------------------------------------------------------- */

static void test_memo_lru_eviction(void **state)
{
	(void)state;
	pb_omemo_t *m = pb_omemo_new(3);
	assert_non_null(m);
	pb_omemo_put(m, "a", 11, true);
	pb_omemo_put(m, "b", 0, false);
	pb_omemo_put(m, "c", 0, true);
	assert_non_null(pb_omemo_get(m, "a")); /* a is now the newest */
	pb_omemo_put(m, "d", 0, true);	       /* b, the oldest, goes */
	assert_int_equal(pb_omemo_count(m), 3);
	assert_null(pb_omemo_get(m, "b"));
	const pb_omemo_entry_t *a = pb_omemo_get(m, "a");
	assert_non_null(a);
	assert_int_equal(a->mx, 11);
	assert_true(a->has_order);
	pb_omemo_put(m, "c", 22, false); /* replaced */
	assert_int_equal(pb_omemo_get(m, "c")->mx, 22);
	pb_omemo_set_order(m, "c");
	assert_true(pb_omemo_get(m, "c")->has_order);
	pb_omemo_set_order(m, "zz"); /* not in: no-op */
	assert_int_equal(pb_omemo_count(m), 3);
	pb_omemo_destroy(m);
}

/* A prune's result waits for the order's next write, across the fetch
 * that refreshes the entry, and is taken once. */
static void test_memo_prune_result(void **state)
{
	(void)state;
	pb_omemo_t *m = pb_omemo_new(2);
	char *d = NULL;
	size_t nd = 9;
	int64_t mx = 0;
	assert_false(pb_omemo_prune_take(m, "a", &d, &nd, &mx));
	pb_omemo_prune_set(m, "a", strdup("m:x"), 1, 5); /* not in: freed */
	pb_omemo_put(m, "a", 3, true);
	char f[] = "m:x\0m:y";
	char *drops = malloc(sizeof(f));
	memcpy(drops, f, sizeof(f));
	pb_omemo_prune_set(m, "a", drops, 2, 77);
	assert_true(pb_omemo_get(m, "a")->has_prune);
	pb_omemo_put(m, "a", 3, true); /* the next fetch */
	assert_true(pb_omemo_prune_take(m, "a", &d, &nd, &mx));
	assert_int_equal(nd, 2);
	assert_int_equal(mx, 77);
	assert_string_equal(d, "m:x");
	assert_string_equal(d + 4, "m:y");
	free(d);
	assert_false(pb_omemo_get(m, "a")->has_prune);
	assert_false(pb_omemo_prune_take(m, "a", &d, &nd, &mx));
	/* evicted with a result waiting: freed */
	pb_omemo_prune_set(m, "a", strdup("m:z"), 1, 1);
	pb_omemo_put(m, "b", 0, true);
	pb_omemo_put(m, "c", 0, true);
	assert_null(pb_omemo_get(m, "a"));
	pb_omemo_put(m, "c", 0, true);
	pb_omemo_prune_set(m, "c", strdup("m:w"), 1, 1);
	pb_omemo_destroy(m); /* frees c's */
}

static void test_memo_many(void **state)
{
	(void)state;
	pb_omemo_t *m = pb_omemo_new(PB_OMEMO_CAP);
	char k[32];
	for (int i = 0; i < PB_OMEMO_CAP * 3; i++) {
		snprintf(k, sizeof(k), "o%d", i);
		pb_omemo_put(m, k, 1, true);
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
	    cmocka_unit_test(test_mark_expiry),
	    cmocka_unit_test(test_memo_lru_eviction),
	    cmocka_unit_test(test_memo_prune_result),
	    cmocka_unit_test(test_memo_many),
	    cmocka_unit_test(test_pubq_fold_and_find),
	    cmocka_unit_test(test_pubq_fold_frees_anywhere),
	    cmocka_unit_test(test_pubq_flush_all_and_bound),
	    cmocka_unit_test(test_layout_window),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
