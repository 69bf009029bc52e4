/*
 * fuzz_event.c: libFuzzer target for order events.
 *
 * Feeds arbitrary bytes to pb_event_parse and, when they parse, to
 * pb_rules_decide under a fixed set of accounts (internal/external,
 * deletes allowed or not, both status policies), Auto-Admin on and off, and
 * three order states (none, created with pushed values, tombstoned). It
 * checks the decision's invariants, not only the absence of crashes: a push
 * always carries a work order naming the event's order, a rejection always
 * has a reason, and every owned reference is released (ASan's leak check).
 * The same bytes are also read as an order's stored fields (the text the
 * worker keeps in Redis), which the rules split and merge without a JSON
 * library (check_stored).
 * Also linked into fuzz_replay_event (tests/fuzz/replay.c) for ctest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jtext.h"
#include "rules.h"
#include "rules_internal.h"

static char *users[] = {"jsmith", "mjones"};
static char *extras[] = {"lockbox"};

static void check(const pb_event_t *ev, const pb_decision_t *d)
{
	/* the arrays are made on first use: never present but empty */
	if ((d->warnings && !json_array_size(d->warnings)) ||
	    (d->withheld && !json_array_size(d->withheld)))
		abort();
	switch (d->verdict) {
	case PB_VERDICT_PUSH: {
		const char *won = json_string_value(
		    json_object_get(d->work_order, "workOrderNumber"));
		json_t *after = d->pushed_after
				    ? json_loads(d->pushed_after, 0, NULL)
				    : NULL;
		bool after_ok = json_is_object(after);
		json_decref(after);
		if (!won || strcmp(won, ev->work_order_number) || !after_ok)
			abort();
		/* A create always carries the minimum Pruvan needs. */
		if (d->push_action == PB_ACTION_CREATE &&
		    (!json_object_get(d->work_order, "address1") ||
		     !json_object_get(d->work_order, "zip") ||
		     json_array_size(
			 json_object_get(d->work_order, "services")) == 0))
			abort();
		break;
	}
	case PB_VERDICT_REJECTED:
	case PB_VERDICT_STALE:
		if (!d->reason || d->work_order)
			abort();
		break;
	case PB_VERDICT_UNCHANGED:
		if (d->work_order)
			abort();
		break;
	}
}

/*
 * Dates: whatever pb_date_to_pruvan accepts, its output is accepted again
 * and maps to itself (sending a pushed date back never changes it).
 */
static void check_date(const uint8_t *data, size_t size)
{
	char in[PB_DATE_MAX + 1], out[32], again[32];
	if (size > PB_DATE_MAX)
		return;
	memcpy(in, data, size);
	in[size] = '\0';
	if (!pb_date_to_pruvan(in, out, sizeof(out)))
		return;
	if (!pb_date_to_pruvan(out, again, sizeof(again)) || strcmp(out, again))
		abort();
}

/* Members split from t[0..n) lie inside it, named in strictly increasing
 * order; false when the split fails. */
static bool members_sane(const char *t, size_t n, size_t *count)
{
	pb_jt_members_t ms;
	bool ok = pb_jt_members_split(t, n, &ms);
	for (size_t i = 0; ok && i < ms.n; i++) {
		const pb_jt_member_t *x = &ms.m[i];
		if (x->val < t || x->val + x->vlen > t + n || x->raw_key < t ||
		    x->raw_key + x->raw_klen > t + n || x->vlen == 0 ||
		    x->raw_klen < 2 || (!x->owned && x->key != x->raw_key + 1))
			abort();
		if (i) {
			const pb_jt_member_t *p = &ms.m[i - 1];
			size_t k = p->klen < x->klen ? p->klen : x->klen;
			int r = memcmp(p->key, x->key, k);
			if (r > 0 || (r == 0 && p->klen >= x->klen))
				abort();
		}
	}
	if (count)
		*count = ms.n;
	pb_jt_members_free(&ms);
	return ok;
}

/*
 * The bytes as an order's stored fields: split, merged with themselves
 * (the same members again), and decided against by an update; whatever
 * they are, what the worker would store next splits again.
 */
static void check_stored(const uint8_t *data, size_t size)
{
	const char *t = (const char *)data;
	size_t n = 0, n2 = 0;
	/* the split takes exactly the objects jansson reads, less any text
	 * with a raw NUL byte, which jansson sometimes skips (jtext.c) */
	json_t *jt = json_loadb(t, size, 0, NULL);
	bool jansson_ok = json_is_object(jt) && !memchr(t, '\0', size);
	json_decref(jt);
	if (members_sane(t, size, NULL) != jansson_ok)
		abort();
	if (members_sane(t, size, &n)) {
		pb_jt_members_t ms;
		if (!pb_jt_members_split(t, size, &ms))
			abort();
		char *m = pb_jt_members_merge(&ms, &ms);
		pb_jt_members_free(&ms);
		if (m && (!members_sane(m, strlen(m), &n2) || n2 != n))
			abort();
		free(m);
	}
	static const char update[] =
	    "{\"eventId\":\"f1\",\"account\":\"fuzz\",\"action\":"
	    "\"update\",\"occurredAt\":\"2026-11-28T16:00:00Z\",\"order\":"
	    "{\"workOrderNumber\":\"W1\",\"status\":\"assigned\","
	    "\"description\":\"d\",\"services\":[{\"serviceName\":\"S\"}]}}";
	pb_event_t *ev = NULL;
	pb_rejection_t rej;
	if (pb_event_parse(update, sizeof(update) - 1, &ev, &rej) != PB_OK)
		abort();
	pb_account_t acct = {.name = "fuzz", .users = users, .users_len = 2};
	pb_order_state_t st = {
	    .created = true, .pushed = t, .pushed_len = size};
	for (int aa = 0; aa < 2; aa++) {
		pb_decision_t d;
		pb_rules_decide(ev, &acct, aa, &st, &d);
		if (d.verdict == PB_VERDICT_PUSH &&
		    (!d.pushed_after ||
		     !members_sane(d.pushed_after, strlen(d.pushed_after),
				   NULL)))
			abort();
		pb_decision_clear(&d);
	}
	pb_event_destroy(ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pb_event_t *ev = NULL;
	check_date(data, size);
	check_stored(data, size);
	pb_rejection_t rej;
	if (pb_event_parse((const char *)data, size, &ev, &rej) != PB_OK) {
		if (!rej.reason)
			abort();
		pb_rejection_clear(&rej);
		return 0;
	}
	json_t *pushed = json_pack(
	    "{s:s, s:s, s:s, s:s, s:s, s:s, s:[{s:s}], s:s}", "workOrderNumber",
	    ev->work_order_number, "address1", "111 East Main", "city",
	    "Round Rock", "state", "TX", "zip", "78664", "clientStatus",
	    "Order Created", "services", "serviceName", "Task-01", "assignedTo",
	    "jsmith");
	/* stored as the worker writes it */
	char *pushed_text = pb_jt_dumps(pushed, true);
	size_t pushed_len = pushed_text ? strlen(pushed_text) : 0;
	pb_order_state_t states[3] = {
	    {0},
	    {.created = true,
	     .has_version = true,
	     .version = 3,
	     .occurred_ms = 1700000000000LL,
	     .pushed = pushed_text,
	     .pushed_len = pushed_len},
	    {.created = true,
	     .deleted = true,
	     .pushed = pushed_text,
	     .pushed_len = pushed_len},
	};
	for (int m = 0; m < 8; m++) {
		pb_account_t acct = {
		    .name = "fuzz",
		    .mode = (m & 1) ? PB_MODE_EXTERNAL : PB_MODE_INTERNAL,
		    .allow_deletes = (m & 2) != 0,
		    .status_policy = (m & 4) ? PB_STATUS_POLICY_REJECT
					     : PB_STATUS_POLICY_DROP,
		    .users = users,
		    .users_len = 2,
		    .extra_fields = extras,
		    .extra_fields_len = 1,
		};
		for (int s = 0; s < 4; s++) {
			pb_decision_t d;
			pb_rules_decide(ev, &acct, (m + s) & 1,
					s == 3 ? NULL : &states[s], &d);
			check(ev, &d);
			pb_decision_clear(&d);
		}
	}
	pb_decision_t d;
	pb_rules_decide(ev, NULL, true, NULL, &d);
	if (d.verdict != PB_VERDICT_REJECTED)
		abort();
	pb_decision_clear(&d);
	json_decref(pushed);
	free(pushed_text);
	pb_event_destroy(ev);
	return 0;
}
