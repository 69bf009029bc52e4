/*
 * A mix of hostile records among good ones (contract sections 6 and 7),
 * against real Redis, the mock cluster and the simulator: random bytes,
 * invalid UTF-8, JSON nested 100,000 deep, a 5 MB string, 1e400 and -0,
 * service lists of 100,000 entries, NUL bytes (raw and escaped), a wrong
 * type for every field, duplicate keys, empty and NULL values, records
 * without keys. Every record gets exactly one outcome, every good event is
 * created and pushed once, the worker's peak resident size stays bounded
 * and it exits 0 at the end of its input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "test_rel_common.h"

#define WAIT_MS 180000
#define GOOD	30

/* The worker's peak RSS bound (KiB): its steady state is a few tens of
 * MB; the sanitizers' shadow memory multiplies that. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_MAX_KB (1536L * 1024)
#else
#define RSS_MAX_KB (320L * 1024)
#endif

static char cfg[512];
static long produced;

static int setup(void **state)
{
	(void)state;
	if (h_start_all("rel-hostile", 3))
		return -1;
	return h_write_config("config.json", NULL, cfg, sizeof(cfg));
}

/* Partition 2 holds only the 5 MB record: the mock cluster keeps at most
 * 5 MiB per partition. The others alternate over partitions 0 and 1. */
static void raw(int partition, const char *key, const void *v, size_t n)
{
	if (partition < 0)
		partition = (int)(produced % 2);
	assert_int_equal(h_produce_raw(H_TOPIC_ORDERS, partition, key,
				       key ? strlen(key) : 0, v, n),
			 0);
	produced++;
}

static void text(const char *key, const char *t)
{
	raw(-1, key, t, strlen(t));
}

static void good(int i)
{
	char id[32], won[32], key[64];
	snprintf(id, sizeof(id), "good-%d", i);
	snprintf(won, sizeof(won), "WO-GOOD-%d", i);
	snprintf(key, sizeof(key), "acme/%s", won);
	json_t *ev = h_event_create(id, "acme", won, 1);
	char *t = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	text(i % 5 == 0 ? NULL : key, t); /* some without a key */
	free(t);
}

/* A valid create with one field (in the event, or in its order when
 * in_order) replaced by the JSON text value, written as it is. */
static void with_field(const char *id, bool in_order, const char *field,
		       const char *value)
{
	json_t *ev = h_event_create(id, "acme", "WO-HOSTILE", 1);
	json_object_set_new(in_order ? json_object_get(ev, "order") : ev, field,
			    json_string("@@V@@"));
	char *t = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	char *at = strstr(t, "\"@@V@@\"");
	assert_non_null(at);
	size_t head = (size_t)(at - t), vl = strlen(value);
	const char *tail = at + 7;
	char *out = malloc(head + vl + strlen(tail) + 1);
	memcpy(out, t, head);
	memcpy(out + head, value, vl);
	memcpy(out + head + vl, tail, strlen(tail) + 1);
	text("acme/WO-HOSTILE", out);
	free(out);
	free(t);
}

/* A JSON array of n copies of item. */
static char *repeat_array(const char *item, size_t n)
{
	size_t k = strlen(item);
	char *s = malloc(n * (k + 1) + 2);
	size_t at = 0;
	s[at++] = '[';
	for (size_t i = 0; i < n; i++) {
		if (i)
			s[at++] = ',';
		memcpy(s + at, item, k);
		at += k;
	}
	s[at++] = ']';
	s[at] = '\0';
	return s;
}

static void hostile(void)
{
	/* random bytes, with NULs among them */
	unsigned char rb[4096];
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < sizeof(rb); i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		rb[i] = (unsigned char)x;
	}
	raw(-1, "acme/RANDOM", rb, sizeof(rb));
	raw(-1, NULL, rb + 100, 7);
	/* invalid UTF-8, in a value and in a key */
	text("acme/U", "{\"eventId\":\"bad-\xff\xfe\",\"account\":\"acme\"}");
	text("acme/U", "{\"e\xc3\x28\":1}");
	/* nested 100,000 deep, alone and inside an event */
	size_t depth = 100000;
	char *deep = malloc(2 * depth + 64);
	memset(deep, '[', depth);
	memset(deep + depth, ']', depth);
	deep[2 * depth] = '\0';
	text("acme/DEEP", deep);
	char *ev = malloc(2 * depth + 64);
	snprintf(ev, 2 * depth + 64, "{\"eventId\":\"deep-1\",\"order\":%s}",
		 deep);
	text("acme/DEEP", ev);
	free(ev);
	free(deep);
	/* a 5 MB string, alone on its partition */
	size_t big = 5000000;
	char *s = malloc(big + 64);
	int hn = snprintf(s, 64, "{\"eventId\":\"big-5mb\",\"x\":\"");
	memset(s + hn, 'a', big - (size_t)hn - 2);
	memcpy(s + big - 2, "\"}", 3);
	raw(2, "acme/BIG", s, big);
	free(s);
	/* numbers */
	with_field("num-1e400", false, "version", "1e400");
	text("acme/N", "{\"eventId\":\"num-raw\",\"version\":1e400}");
	with_field("num-neg0", false, "version", "-0");
	with_field("num-neg0-zip", true, "zip", "-0.0");
	/* 100,000 services: too large, and small enough to be read */
	char *sv = repeat_array("{\"serviceName\":\"S\"}", 100000);
	with_field("svc-100k", true, "services", sv);
	free(sv);
	sv = repeat_array("\"a\"", 100000);
	with_field("svc-100k-wrong", true, "services", sv);
	free(sv);
	sv = repeat_array("{}", 100000);
	with_field("svc-100k-empty", true, "services", sv);
	free(sv);
	/* NUL bytes: raw inside a string, escaped in a value and a key */
	static const char rawnul[] =
	    "{\"eventId\":\"nul\0x\",\"account\":\"acme\"}";
	raw(-1, "acme/NUL", rawnul, sizeof(rawnul) - 1);
	with_field("nul-esc", true, "workOrderInfo", "\"a\\u0000b\"");
	text("acme/NUL", "{\"eventId\":\"nul-key\",\"a\\u0000\":1}");
	/* a wrong type for every field */
	static const char *wrong[] = {"1",    "[]",    "{}", "true",
				      "null", "\"x\"", "-1", "1.5"};
	static const char *top[] = {"eventId",	  "account", "action",
				    "occurredAt", "version", "order"};
	static const char *order[] = {
	    "workOrderNumber", "address1",     "city",
	    "state",	       "zip",	       "workOrderInfo",
	    "clientDueDate",   "clientStatus", "dueDate",
	    "services",	       "status",       "assignedTo"};
	int k = 0;
	for (size_t f = 0; f < sizeof(top) / sizeof(*top); f++)
		for (size_t w = 0; w < 3; w++) {
			char id[64];
			snprintf(id, sizeof(id), "wrong-%d", k++);
			with_field(id, false, top[f], wrong[(f + w) % 8]);
		}
	for (size_t f = 0; f < sizeof(order) / sizeof(*order); f++)
		for (size_t w = 0; w < 3; w++) {
			char id[64];
			snprintf(id, sizeof(id), "wrong-%d", k++);
			with_field(id, true, order[f], wrong[(f + w + 3) % 8]);
		}
	/* duplicate keys, empty and NULL values */
	text("acme/DUP", "{\"eventId\":\"dup-a\",\"eventId\":\"dup-b\","
			 "\"account\":\"acme\"}");
	raw(-1, "acme/EMPTY", "", 0);
	raw(-1, "acme/NULL", NULL, 0);
	raw(-1, NULL, NULL, 0);
}

static void hostile_mix(void **state)
{
	(void)state;
	h_begin("hostile_mix");
	for (int i = 0; i < GOOD; i++) {
		good(i);
		if (i == GOOD / 2)
			hostile();
	}
	assert_int_equal(h_flush(30000), 0);

	h_worker_t *w = h_worker_run("worker", cfg, true);
	assert_non_null(w);
	int rc = h_worker_wait(w, WAIT_MS);
	if (rc != 0)
		h_worker_dump(w, 40);
	assert_int_equal(rc, 0);
	struct rusage ru;
	assert_int_equal(getrusage(RUSAGE_CHILDREN, &ru), 0);
	fprintf(stderr, "[hostile] %ld records, worker peak RSS %ld KiB\n",
		produced, ru.ru_maxrss);
	assert_true(ru.ru_maxrss < RSS_MAX_KB);

	json_t *recs = h_consume(H_TOPIC_RESULTS, produced, 30000);
	assert_int_equal(json_array_size(recs), produced);
	assert_int_equal(h_check_schema(recs, "outcome.schema.json"), 0);
	json_t *by = rel_by_source(recs);
	assert_int_equal(json_object_size(by), produced); /* one each */
	json_t *ids = h_by_event(recs);
	for (int i = 0; i < GOOD; i++) {
		char id[32], won[32];
		snprintf(id, sizeof(id), "good-%d", i);
		snprintf(won, sizeof(won), "WO-GOOD-%d", i);
		json_t *o = h_one(ids, id);
		assert_non_null(o);
		assert_string_equal(h_str(o, "outcome"), "created");
		json_t *p = h_sim_pushes_of("acme", won);
		assert_int_equal(json_array_size(p), 1);
		json_decref(p);
	}
	json_t *o = h_one(ids, "big-5mb");
	assert_null(o); /* its eventId was never read */
	size_t i;
	json_t *a, *v;
	const char *key;
	size_t too_large = 0, empty = 0;
	json_object_foreach(by, key, a)
	{
		v = json_array_get(a, 0);
		const char *r = h_str(v, "reason");
		too_large += r && strcmp(r, "too_large") == 0;
		empty += r && strcmp(r, "empty_record") == 0;
		(void)i;
	}
	assert_int_equal(too_large, 2); /* 5 MB string, 100,000 services */
	assert_int_equal(empty, 2);
	json_decref(ids);
	json_decref(by);
	json_decref(recs);
	h_end();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(hostile_mix),
	};
	return cmocka_run_group_tests(tests, setup, h_group_teardown);
}
