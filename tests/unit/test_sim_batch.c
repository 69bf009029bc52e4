/*
 * test_sim_batch.c: the simulator's two readers of a push body agree.
 *
 * pb_sim_batch_read scans plain bodies itself and hands the rest to
 * jansson (pb_sim_batch_read_json). Generated bodies (orders with missing,
 * empty, wrongly typed and repeated fields, nested values, numbers) must
 * be scanned and give the same facts and texts as jansson's reading; and
 * mutated ones (a byte dropped, changed or added, the text cut short) may
 * be scanned only if jansson accepts them, with the same facts again.
 * Deterministic (a fixed xorshift seed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_batch.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static unsigned pick(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

typedef struct {
	char *p;
	size_t len, cap;
} buf_t;

static void put(buf_t *b, const char *s)
{
	size_t n = strlen(s);
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, s, n + 1);
	b->len += n;
}

static void ws(buf_t *b)
{
	static const char *const w[] = {"", "", "", " ", "\n  ", "\t"};
	put(b, w[pick(6)]);
}

/* One member "name": value, the value one of vals. */
static void member(buf_t *b, bool *first, const char *name,
		   const char *const *vals, unsigned nvals)
{
	if (!*first)
		put(b, ",");
	*first = false;
	ws(b);
	put(b, "\"");
	put(b, name);
	put(b, "\"");
	ws(b);
	put(b, ":");
	ws(b);
	put(b, vals[pick(nvals)]);
	ws(b);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void gen_order(buf_t *b)
{
	static const char *const won[] = {"\"WO-1\"", "\"WO-2\"", "\"WO-1\"",
					  "\"\"",     "7",	  "null"};
	static const char *const status[] = {
	    "\"deleted\"", "\"DeLeTeD\"", "\"open\"",	  "\"deleted \"",
	    "\"deletes\"", "5",		  "[\"deleted\"]"};
	static const char *const str[] = {"\"1 Main\"", "\"\"", "3", "\"x y\"",
					  "{\"a\":\"b\"}"};
	static const char *const state[] = {"\"TX\"", "\"tx\"", "\"TEX\"",
					    "\"\"",   "\"T\"",	"12"};
	static const char *const zip[] = {"\"78701\"", "\"78701-1234\"",
					  "\"7870\"",  "\"78701-12a4\"",
					  "78701",     "\"787011234\""};
	static const char *const services[] = {
	    "[]",
	    "[{\"serviceName\":\"Mow\"}]",
	    "[{\"serviceName\":\"\"}]",
	    "[1,{\"x\":1},{\"serviceName\":\"Snow\",\"n\":[1,2]}]",
	    "{\"serviceName\":\"Mow\"}",
	    "[{\"serviceName\":\"a\",\"serviceName\":\"\"}]",
	    "[{\"serviceName\":7}]",
	    "\"Mow\""};
	static const char *const other[] = {"12.5",
					    "-0",
					    "0.125",
					    "true",
					    "false",
					    "null",
					    "[]",
					    "{}",
					    "[true,[null,{\"a\":[1,-2.5]}]]",
					    "\"a \\\"q\\\" \\/ \\n\"",
					    "123456789012345"};
	static const char *const names[] = {
	    "workOrderNumber", "status", "address1", "city", "state", "zip",
	    "services",	       "notes",	 "_created", "n"};
	bool first = true;
	put(b, "{");
	unsigned k = pick(12);
	for (unsigned i = 0; i < k; i++) {
		unsigned f = pick(N(names));
		const char *const *vals = other;
		unsigned nv = N(other);
		switch (f) {
		case 0:
			vals = won, nv = N(won);
			break;
		case 1:
			vals = status, nv = N(status);
			break;
		case 2:
		case 3:
			vals = str, nv = N(str);
			break;
		case 4:
			vals = state, nv = N(state);
			break;
		case 5:
			vals = zip, nv = N(zip);
			break;
		case 6:
			vals = services, nv = N(services);
			break;
		default:
			break;
		}
		member(b, &first, names[f], vals, nv);
	}
	put(b, "}");
}

static char *gen_body(size_t *len)
{
	buf_t b = {0};
	ws(&b);
	put(&b, "{");
	ws(&b);
	put(&b, "\"workOrders\"");
	ws(&b);
	put(&b, ":");
	ws(&b);
	put(&b, "[");
	unsigned n = pick(6);
	for (unsigned i = 0; i < n; i++) {
		if (i)
			put(&b, ",");
		ws(&b);
		gen_order(&b);
		ws(&b);
	}
	put(&b, "]");
	ws(&b);
	put(&b, "}");
	ws(&b);
	*len = b.len;
	return b.p;
}

/* The set of names of one order, as a JSON object (new reference). */
static json_t *name_set(const pb_sim_order_t *o)
{
	json_t *set = json_object();
	for (const char *p = o->names; p < o->names + o->names_len;
	     p += strlen(p) + 1)
		json_object_set_new(set, p, json_true());
	return set;
}

static void assert_same_json(const char *a, size_t an, const char *b, size_t bn)
{
	json_t *x = json_loadb(a, an, JSON_DECODE_ANY, NULL);
	json_t *y = json_loadb(b, bn, JSON_DECODE_ANY, NULL);
	assert_non_null(x);
	assert_non_null(y);
	assert_true(json_equal(x, y));
	json_decref(x);
	json_decref(y);
}

/* A scanned batch equals jansson's reading of the same text. */
static void assert_agrees(const pb_sim_batch_t *s, const char *text, size_t len)
{
	pb_sim_batch_t j;
	char err[256];
	assert_int_equal(
	    pb_sim_batch_read_json(text, len, &j, err, sizeof(err)), 0);
	assert_true(j.present && j.is_array && s->present && s->is_array);
	assert_int_equal(s->n, j.n);
	assert_same_json(s->wos, s->wos_len, j.wos, j.wos_len);
	for (size_t i = 0; i < s->n; i++) {
		const pb_sim_order_t *a = &s->orders[i], *b = &j.orders[i];
		assert_int_equal(a->is_object, b->is_object);
		assert_int_equal(a->won != NULL, b->won != NULL);
		if (a->won) {
			assert_int_equal(a->won_len, b->won_len);
			assert_memory_equal(a->won, b->won, a->won_len);
		}
		assert_int_equal(a->is_delete, b->is_delete);
		assert_int_equal(a->problems, b->problems);
		assert_same_json(a->text, a->len, b->text, b->len);
		json_t *x = name_set(a), *y = name_set(b);
		assert_true(json_equal(x, y));
		json_decref(x);
		json_decref(y);
	}
	pb_sim_batch_free(&j);
}

static void test_generated_bodies_scanned_alike(void **state)
{
	(void)state;
	for (int i = 0; i < 5000; i++) {
		size_t len;
		char *text = gen_body(&len);
		pb_sim_batch_t s;
		char err[256];
		assert_int_equal(
		    pb_sim_batch_read(text, len, &s, err, sizeof(err)), 0);
		assert_null(s.doc); /* plain: the scan read it */
		assert_agrees(&s, text, len);
		pb_sim_batch_free(&s);
		free(text);
	}
}

static void test_mutated_bodies_scanned_only_when_valid(void **state)
{
	(void)state;
	static const char bytes[] = "{}[],:\"\\u0 e.-+9x\x01\xc3\xa9";
	int scanned = 0, refused = 0;
	for (int i = 0; i < 20000; i++) {
		size_t len;
		char *text = gen_body(&len);
		text = realloc(text, len + 2); /* room for one more byte */
		assert_non_null(text);
		size_t at = pick((unsigned)len + 1);
		switch (pick(4)) {
		case 0: /* drop a byte */
			if (at < len) {
				memmove(text + at, text + at + 1, len - at);
				len--;
			}
			break;
		case 1: /* change one */
			if (at < len)
				text[at] = bytes[pick(sizeof(bytes) - 1)];
			break;
		case 2: /* add one */
			memmove(text + at + 1, text + at, len - at + 1);
			text[at] = bytes[pick(sizeof(bytes) - 1)];
			len++;
			break;
		default: /* cut short */
			len = at;
			break;
		}
		pb_sim_batch_t s;
		char err[256];
		json_t *j = json_loadb(text, len, 0, NULL);
		int rc = pb_sim_batch_read(text, len, &s, err, sizeof(err));
		/* accepted exactly when jansson accepts */
		assert_int_equal(rc == 0, j != NULL);
		if (rc == 0 && !s.doc) {
			scanned++;
			assert_agrees(&s, text, len);
		} else if (rc != 0) {
			refused++;
			assert_non_null(strstr(err, "invalid JSON"));
		}
		json_decref(j);
		pb_sim_batch_free(&s);
		free(text);
	}
	/* both sides of the line were exercised */
	assert_true(scanned > 1000);
	assert_true(refused > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_generated_bodies_scanned_alike),
	    cmocka_unit_test(test_mutated_bodies_scanned_only_when_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
