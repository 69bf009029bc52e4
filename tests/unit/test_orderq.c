/*
 * test_orderq.c: per-order queues (orderq.h).
 *
 * The cases pin each rule of the header; the last one drives random
 * admits, releases and unpublishes (fixed seed) against a plain model of
 * what each order should hold, so that an order's items are proven to go
 * one at a time and in arrival order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orderq.h"

typedef struct {
	pb_orderq_link_t link; /* first: a link is its item */
	int id;
	int freed;
} item_t;

static item_t *item_of(pb_orderq_link_t *l)
{
	return (item_t *)l;
}

static bool admit(pb_orderq_t *q, const char *a, const char *w, item_t *it)
{
	bool go = false;
	assert_int_equal(pb_orderq_admit(q, a, w, &it->link, &go), PB_OK);
	return go;
}

static void test_one_at_a_time_in_arrival_order(void **state)
{
	(void)state;
	pb_orderq_t *q = NULL;
	assert_int_equal(pb_orderq_new(&q), PB_OK);
	item_t it[4] = {{.id = 0}, {.id = 1}, {.id = 2}, {.id = 3}};
	assert_true(admit(q, "acme", "WO-1", &it[0]));
	assert_false(admit(q, "acme", "WO-1", &it[1]));
	assert_false(admit(q, "acme", "WO-1", &it[2]));
	assert_true(admit(q, "acme", "WO-2", &it[3])); /* another order */
	assert_int_equal(pb_orderq_orders(q), 2);
	assert_ptr_equal(pb_orderq_release(q, &it[0].link, false), &it[1].link);
	assert_ptr_equal(pb_orderq_release(q, &it[1].link, false), &it[2].link);
	assert_null(pb_orderq_release(q, &it[2].link, false));
	assert_int_equal(pb_orderq_orders(q), 1); /* WO-1 is idle: freed */
	assert_null(pb_orderq_release(q, &it[3].link, false));
	assert_int_equal(pb_orderq_orders(q), 0);
	/* a link that holds nothing releases nothing */
	assert_null(pb_orderq_release(q, &it[3].link, false));
	pb_orderq_destroy(q, NULL, NULL);
}

static void test_orders_are_pairs_not_joined_text(void **state)
{
	(void)state;
	pb_orderq_t *q = NULL;
	assert_int_equal(pb_orderq_new(&q), PB_OK);
	item_t a = {0}, b = {0}, c = {0};
	assert_true(admit(q, "a/b", "c", &a));
	assert_true(admit(q, "a", "b/c", &b)); /* not the same order */
	assert_true(admit(q, "", "a/bc", &c));
	assert_int_equal(pb_orderq_orders(q), 3);
	pb_orderq_release(q, &a.link, false);
	pb_orderq_release(q, &b.link, false);
	pb_orderq_release(q, &c.link, false);
	assert_int_equal(pb_orderq_orders(q), 0);
	pb_orderq_destroy(q, NULL, NULL);
}

static void test_publishing_keeps_the_order_listed(void **state)
{
	(void)state;
	pb_orderq_t *q = NULL;
	assert_int_equal(pb_orderq_new(&q), PB_OK);
	item_t first = {.id = 1}, copy = {.id = 2};
	assert_true(admit(q, "acme", "WO-1", &first));
	assert_null(pb_orderq_release(q, &first.link, true));
	assert_int_equal(pb_orderq_orders(q), 1); /* still publishing */
	/* a second copy of the event sees the first one publishing */
	assert_true(admit(q, "acme", "WO-1", &copy));
	pb_orderq_link_t *p = pb_orderq_publishing(&copy.link);
	assert_ptr_equal(p, &first.link);
	assert_null(p->next_pub);
	/* listed once, however often it is released */
	assert_null(pb_orderq_release(q, &first.link, true));
	assert_ptr_equal(pb_orderq_publishing(&copy.link), &first.link);
	assert_null(pb_orderq_publishing(&copy.link)->next_pub);
	pb_orderq_unpublish(q, &first.link);
	assert_null(pb_orderq_publishing(&copy.link));
	assert_int_equal(pb_orderq_orders(q), 1); /* copy holds it */
	pb_orderq_unpublish(q, &first.link);	  /* twice: no-op */
	assert_null(pb_orderq_release(q, &copy.link, false));
	assert_int_equal(pb_orderq_orders(q), 0);
	pb_orderq_destroy(q, NULL, NULL);
}

static void count_waiting(pb_orderq_link_t *l, void *opaque)
{
	(void)l;
	(*(int *)opaque)++;
}

static void free_waiting(pb_orderq_link_t *l, void *opaque)
{
	item_of(l)->freed++;
	(*(int *)opaque)++;
}

static void test_waiting_items_are_visited_and_handed_back(void **state)
{
	(void)state;
	pb_orderq_t *q = NULL;
	assert_int_equal(pb_orderq_new(&q), PB_OK);
	item_t it[6] = {0};
	admit(q, "acme", "WO-1", &it[0]);
	admit(q, "acme", "WO-1", &it[1]);
	admit(q, "acme", "WO-1", &it[2]);
	admit(q, "nw", "WO-9", &it[3]);
	admit(q, "nw", "WO-9", &it[4]);
	admit(q, "nw", "WO-7", &it[5]);
	pb_orderq_release(q, &it[5].link, true); /* publishing only */
	int n = 0;
	pb_orderq_each_waiting(q, count_waiting, &n);
	assert_int_equal(n, 3); /* it[1], it[2], it[4]; holders are not */
	n = 0;
	pb_orderq_destroy(q, free_waiting, &n);
	assert_int_equal(n, 3);
	assert_int_equal(it[1].freed + it[2].freed + it[4].freed, 3);
	assert_int_equal(it[0].freed + it[3].freed + it[5].freed, 0);
	assert_null(it[5].link.pub_key); /* unlinked, left to its owner */
}

static void test_many_orders_grow_the_table(void **state)
{
	(void)state;
	enum { N = 20000 };
	pb_orderq_t *q = NULL;
	assert_int_equal(pb_orderq_new(&q), PB_OK);
	item_t *it = calloc(N, sizeof(*it));
	assert_non_null(it);
	char won[32];
	for (int i = 0; i < N; i++) {
		snprintf(won, sizeof(won), "WO-%d", i);
		assert_true(admit(q, "acme", won, &it[i]));
	}
	assert_int_equal(pb_orderq_orders(q), N);
	for (int i = 0; i < N; i++)
		assert_null(pb_orderq_release(q, &it[i].link, false));
	assert_int_equal(pb_orderq_orders(q), 0);
	free(it);
	pb_orderq_destroy(q, NULL, NULL);
}

/* ---- against a model ---------------------------------------------------- */

enum { ORDERS = 7, ITEMS = 4000 };

typedef struct {
	int fifo[ITEMS]; /* ids admitted to this order, in order */
	int head, tail;	 /* fifo[head] holds, up to tail */
} model_t;

static void test_random_against_a_model(void **state)
{
	(void)state;
	pb_orderq_t *q = NULL;
	assert_int_equal(pb_orderq_new(&q), PB_OK);
	item_t *it = calloc(ITEMS, sizeof(*it));
	model_t *m = calloc(ORDERS, sizeof(*m));
	int *order_of = calloc(ITEMS, sizeof(int));
	assert_true(it && m && order_of);
	srand(20261201); /* fixed: a failure reproduces */
	int next = 0, published = 0;
	for (int step = 0; step < 40000; step++) {
		int o = rand() % ORDERS;
		model_t *mo = &m[o];
		bool do_admit =
		    next < ITEMS && (rand() % 2 || mo->head == mo->tail);
		char won[16];
		snprintf(won, sizeof(won), "WO-%d", o);
		if (do_admit) {
			it[next].id = next;
			order_of[next] = o;
			bool go = admit(q, "acme", won, &it[next]);
			assert_int_equal(go, mo->head == mo->tail);
			mo->fifo[mo->tail++] = next++;
		} else if (mo->head < mo->tail) {
			int holder = mo->fifo[mo->head++];
			bool pub = rand() % 3 == 0;
			pb_orderq_link_t *nx =
			    pb_orderq_release(q, &it[holder].link, pub);
			published += pub;
			if (mo->head < mo->tail)
				assert_ptr_equal(nx,
						 &it[mo->fifo[mo->head]].link);
			else
				assert_null(nx);
		}
		if (rand() % 4 == 0 && next > 0) {
			int victim = rand() % next;
			if (it[victim].link.pub_key)
				published--;
			pb_orderq_unpublish(q, &it[victim].link);
		}
	}
	/* an order has an entry exactly while it is held or published under */
	bool live[ORDERS] = {false};
	for (int o = 0; o < ORDERS; o++)
		live[o] = m[o].head < m[o].tail;
	for (int i = 0; i < next; i++)
		if (it[i].link.pub_key)
			live[order_of[i]] = true;
	size_t expect = 0;
	for (int o = 0; o < ORDERS; o++)
		expect += live[o];
	assert_int_equal(pb_orderq_orders(q), expect);
	assert_true(published >= 0);
	free(order_of);
	free(m);
	pb_orderq_destroy(q, NULL, NULL);
	free(it);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_at_a_time_in_arrival_order),
	    cmocka_unit_test(test_orders_are_pairs_not_joined_text),
	    cmocka_unit_test(test_publishing_keeps_the_order_listed),
	    cmocka_unit_test(test_waiting_items_are_visited_and_handed_back),
	    cmocka_unit_test(test_many_orders_grow_the_table),
	    cmocka_unit_test(test_random_against_a_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
