/*
 * Helpers shared by the reliability suites (test_rel_*.c): outcome records
 * indexed by the source record they answer, so a suite can assert that
 * every consumed record got exactly one outcome.
 */
#ifndef PB_TEST_REL_COMMON_H
#define PB_TEST_REL_COMMON_H

#include <stdio.h>
#include <string.h>

#include "harness.h"

/* The outcomes of recs (from h_consume) by "PARTITION/OFFSET" of the
 * record they answer: object -> array of outcome values. New ref. */
static inline json_t *rel_by_source(const json_t *recs)
{
	json_t *by = json_object();
	size_t i;
	json_t *r;
	json_array_foreach(recs, i, r)
	{
		json_t *v = json_object_get(r, "value");
		char k[64];
		snprintf(k, sizeof(k), "%lld/%lld",
			 (long long)json_integer_value(
			     json_object_get(v, "partition")),
			 (long long)json_integer_value(
			     json_object_get(v, "offset")));
		json_t *a = json_object_get(by, k);
		if (!a) {
			a = json_array();
			json_object_set_new(by, k, a);
		}
		json_array_append(a, v);
	}
	return by;
}

/* The single outcome of the record at partition/offset, NULL when there
 * is not exactly one. Borrowed from by. */
static inline json_t *rel_one(const json_t *by, int partition, long long offset)
{
	char k[64];
	snprintf(k, sizeof(k), "%d/%lld", partition, offset);
	json_t *a = json_object_get(by, k);
	if (json_array_size(a) != 1) {
		fprintf(stderr, "record %s: %zu outcomes\n", k,
			json_array_size(a));
		return NULL;
	}
	return json_array_get(a, 0);
}

/* The DLQ record copied from the record at partition/offset, NULL when
 * there is not exactly one. Borrowed from dlq (h_consume). */
static inline json_t *rel_dlq_of(const json_t *dlq, int partition,
				 long long offset)
{
	char p[32], o[32];
	snprintf(p, sizeof(p), "%d", partition);
	snprintf(o, sizeof(o), "%lld", offset);
	json_t *found = NULL;
	size_t i, n = 0;
	json_t *r;
	json_array_foreach(dlq, i, r)
	{
		json_t *h = json_object_get(r, "headers");
		if (strcmp(h_str(h, "x-source-partition")
			       ? h_str(h, "x-source-partition")
			       : "",
			   p) == 0 &&
		    strcmp(h_str(h, "x-source-offset")
			       ? h_str(h, "x-source-offset")
			       : "",
			   o) == 0) {
			found = r;
			n++;
		}
	}
	return n == 1 ? found : NULL;
}

#endif
