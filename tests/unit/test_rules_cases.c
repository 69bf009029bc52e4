/*
 * test_rules_cases.c: the event fixtures runner.
 *
 * Every file tests/fixtures/rules/cases/NNN-name.json is one case:
 *   {"name": "...",
 *    "account": {"name", "mode", "autoAdmin", "allowDeletes",
 *                "statusPolicy", "users", "extraFields"} or null,
 *    "autoAdmin": bool (defaults to account.autoAdmin, then true),
 *    "state": {"created", "deleted", "version", "occurredAt", "pushed"}
 *             or null,
 *    "event": {...} (or "eventRaw": "bytes as a string"),
 *    "expect": {"verdict": "push|unchanged|stale|rejected|parse_error",
 *               "reason": ..., "workOrder": {...exact},
 *               "warnings": [codes, in order; default none],
 *               "withheld": [...; default none], "pushAction": ...,
 *               "unknownOrder": bool, "pushedAfter": {...},
 *               "messageContains": "..."}}
 * One runner walks them all (as jansson's test suites do), reports every
 * mismatch with the case's file name, and fails if any case failed or if
 * there are suspiciously few cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jtext.h"
#include "rules.h"
#include "rules_internal.h"

#define MAX_LIST 16

typedef struct {
	pb_account_t acct;
	char *users[MAX_LIST];
	char *extras[MAX_LIST];
} fixture_account_t;

static int failures;

static void fail_case(const char *file, const char *what, const json_t *got,
		      const json_t *want)
{
	char *g =
	    got ? json_dumps(got, JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
	char *w =
	    want ? json_dumps(want, JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
	fprintf(stderr, "FAIL %s: %s\n  got:  %s\n  want: %s\n", file, what,
		g ? g : "(none)", w ? w : "(none)");
	free(g);
	free(w);
	failures++;
}

static void load_list(const json_t *arr, char **out, size_t *len)
{
	size_t i;
	const json_t *v;
	*len = 0;
	json_array_foreach(arr, i, v)
	{
		if (i < MAX_LIST && json_is_string(v))
			out[(*len)++] = (char *)json_string_value(v);
	}
}

static const pb_account_t *make_account(const json_t *a, fixture_account_t *fa)
{
	if (!json_is_object(a))
		return NULL;
	memset(fa, 0, sizeof(*fa));
	const char *name = json_string_value(json_object_get(a, "name"));
	fa->acct.name = (char *)(name ? name : "acme");
	const char *mode = json_string_value(json_object_get(a, "mode"));
	fa->acct.mode = mode && !strcmp(mode, "external") ? PB_MODE_EXTERNAL
							  : PB_MODE_INTERNAL;
	const json_t *aa = json_object_get(a, "autoAdmin");
	fa->acct.auto_admin = aa ? json_is_true(aa) : true;
	fa->acct.allow_deletes =
	    json_is_true(json_object_get(a, "allowDeletes"));
	const char *pol = json_string_value(json_object_get(a, "statusPolicy"));
	fa->acct.status_policy = pol && !strcmp(pol, "reject")
				     ? PB_STATUS_POLICY_REJECT
				     : PB_STATUS_POLICY_DROP;
	load_list(json_object_get(a, "users"), fa->users, &fa->acct.users_len);
	load_list(json_object_get(a, "extraFields"), fa->extras,
		  &fa->acct.extra_fields_len);
	fa->acct.users = fa->users;
	fa->acct.extra_fields = fa->extras;
	return &fa->acct;
}

static const char *verdict_name(pb_verdict_t v)
{
	switch (v) {
	case PB_VERDICT_PUSH:
		return "push";
	case PB_VERDICT_UNCHANGED:
		return "unchanged";
	case PB_VERDICT_STALE:
		return "stale";
	case PB_VERDICT_REJECTED:
		return "rejected";
	}
	return "?";
}

static json_t *warning_codes(const json_t *warnings)
{
	json_t *codes = json_array();
	size_t i;
	const json_t *w;
	json_array_foreach(warnings, i, w)
	    json_array_append(codes, json_object_get(w, "code"));
	return codes;
}

static void expect_str(const char *file, const char *what, const char *got,
		       const char *want)
{
	if (!want)
		return;
	if (!got || strcmp(got, want)) {
		json_t *g = got ? json_string(got) : NULL;
		json_t *w = json_string(want);
		fail_case(file, what, g, w);
		json_decref(g);
		json_decref(w);
	}
}

static void run_case(const char *file, const json_t *c)
{
	const json_t *expect = json_object_get(c, "expect");
	const char *want_verdict =
	    json_string_value(json_object_get(expect, "verdict"));
	const char *want_reason =
	    json_string_value(json_object_get(expect, "reason"));
	if (!want_verdict) {
		fail_case(file, "fixture has no expect.verdict", NULL, NULL);
		return;
	}

	char *raw = NULL;
	size_t raw_len;
	const json_t *evj = json_object_get(c, "event");
	if (evj) {
		raw = json_dumps(evj, JSON_ENCODE_ANY);
		raw_len = strlen(raw);
	} else {
		const json_t *r = json_object_get(c, "eventRaw");
		raw_len = json_string_length(r);
		raw = malloc(raw_len + 1);
		memcpy(raw, json_string_value(r), raw_len + 1);
	}
	pb_event_t *ev = NULL;
	pb_rejection_t rej;
	pb_err_t perr = pb_event_parse(raw, raw_len, &ev, &rej);
	free(raw);
	if (!strcmp(want_verdict, "parse_error")) {
		if (perr != PB_ERR_INVALID) {
			fail_case(file, "expected a parse error", NULL, NULL);
			pb_event_destroy(ev);
			return;
		}
		expect_str(file, "parse reason", rej.reason, want_reason);
		const char *mc = json_string_value(
		    json_object_get(expect, "messageContains"));
		if (mc && !strstr(rej.message, mc))
			expect_str(file, "message", rej.message, mc);
		expect_str(
		    file, "rej.event_id", rej.event_id,
		    json_string_value(json_object_get(expect, "eventId")));
		pb_rejection_clear(&rej);
		return;
	}
	if (perr != PB_OK) {
		expect_str(file, "event parse", rej.reason, "(parsed)");
		fprintf(stderr, "  message: %s\n", rej.message);
		pb_rejection_clear(&rej);
		return;
	}

	fixture_account_t fa;
	const pb_account_t *acct =
	    make_account(json_object_get(c, "account"), &fa);
	const json_t *aa = json_object_get(c, "autoAdmin");
	bool auto_admin =
	    aa ? json_is_true(aa) : (acct ? acct->auto_admin : true);

	pb_order_state_t st = {0};
	const pb_order_state_t *stp = NULL;
	char *pushed_text = NULL;
	const json_t *sj = json_object_get(c, "state");
	if (json_is_object(sj)) {
		stp = &st;
		st.created = json_is_true(json_object_get(sj, "created"));
		st.deleted = json_is_true(json_object_get(sj, "deleted"));
		const json_t *v = json_object_get(sj, "version");
		st.has_version = v != NULL;
		st.version = json_integer_value(v);
		const char *occ =
		    json_string_value(json_object_get(sj, "occurredAt"));
		if (occ && !pb_rfc3339_to_ms(occ, &st.occurred_ms))
			fail_case(file, "bad state.occurredAt", NULL, NULL);
		const json_t *pj = json_object_get(sj, "pushed");
		if (pj) {
			/* stored as the worker writes it */
			pushed_text = pb_jt_dumps(pj, true);
			st.pushed = pushed_text;
			st.pushed_len = strlen(pushed_text);
		}
	}

	pb_decision_t d;
	pb_rules_decide(ev, acct, auto_admin, stp, &d);
	/* a delete comes only of what pb_rules_may_push_delete foresees (a
	 * fetch leaves the learned Key1 unread otherwise) */
	if (d.verdict == PB_VERDICT_PUSH && d.push_action == PB_ACTION_DELETE &&
	    !pb_rules_may_push_delete(ev, acct))
		fail_msg(
		    "%s: a delete pb_rules_may_push_delete did not foresee",
		    file);

	expect_str(file, "verdict", verdict_name(d.verdict), want_verdict);
	if (want_reason)
		expect_str(file, "reason", d.reason, want_reason);
	else if (d.verdict == PB_VERDICT_PUSH && d.reason)
		expect_str(file, "reason (none expected)", d.reason, "(null)");

	const json_t *wo = json_object_get(expect, "workOrder");
	if (wo && !json_equal(d.work_order, wo))
		fail_case(file, "workOrder", d.work_order, wo);
	if (d.verdict != PB_VERDICT_PUSH && d.work_order)
		fail_case(file, "work_order set on a non-push", d.work_order,
			  NULL);
	if (d.verdict == PB_VERDICT_PUSH && !wo)
		fail_case(file, "push fixture must give expect.workOrder",
			  d.work_order, NULL);

	json_t *codes = warning_codes(d.warnings);
	json_t *none = json_array();
	const json_t *ww = json_object_get(expect, "warnings");
	if (!json_equal(codes, ww ? ww : none))
		fail_case(file, "warnings", codes, ww ? ww : none);
	const json_t *wh = json_object_get(expect, "withheld");
	if (!json_equal(d.withheld ? d.withheld : none, wh ? wh : none))
		fail_case(file, "withheld", d.withheld, wh ? wh : none);
	json_decref(codes);
	json_decref(none);

	const char *pa =
	    json_string_value(json_object_get(expect, "pushAction"));
	if (pa)
		expect_str(file, "pushAction", pb_action_name(d.push_action),
			   pa);
	const json_t *uo = json_object_get(expect, "unknownOrder");
	if (uo && json_is_true(uo) != d.unknown_order)
		fail_case(file, "unknownOrder", NULL, uo);
	/* pushed_after: an object's text, written as the worker writes it */
	json_t *after =
	    d.pushed_after ? json_loads(d.pushed_after, 0, NULL) : NULL;
	char *canon = after ? pb_jt_dumps(after, true) : NULL;
	if (after && strcmp(canon, d.pushed_after))
		expect_str(file, "pushedAfter's form", d.pushed_after, canon);
	free(canon);
	const json_t *pa2 = json_object_get(expect, "pushedAfter");
	if (pa2 && !json_equal(after, pa2))
		fail_case(file, "pushedAfter", after, pa2);
	if (d.verdict == PB_VERDICT_PUSH && !json_is_object(after))
		fail_case(file, "push without pushed_after", NULL, NULL);
	json_decref(after);
	free(pushed_text);
	const char *mc =
	    json_string_value(json_object_get(expect, "messageContains"));
	if (mc && !strstr(d.message, mc))
		expect_str(file, "message", d.message, mc);

	pb_decision_clear(&d);
	pb_event_destroy(ev);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_fixture_cases(void **state)
{
	(void)state;
	const char *root = getenv("PB_FIXTURES");
	assert_non_null(root);
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/rules/cases", root);
	DIR *d = opendir(dir);
	assert_non_null(d);
	char *names[512];
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 512) {
		size_t l = strlen(e->d_name);
		if (l > 5 && !strcmp(e->d_name + l - 5, ".json"))
			names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_str);
	for (size_t i = 0; i < n; i++) {
		char path[2048];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		json_error_t jerr;
		json_t *c = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
		if (!c) {
			fprintf(stderr, "FAIL %s: %s (line %d)\n", names[i],
				jerr.text, jerr.line);
			failures++;
		} else {
			run_case(names[i], c);
			json_decref(c);
		}
		free(names[i]);
	}
	fprintf(stderr, "%zu fixture cases, %d failures\n", n, failures);
	assert_true(n >= 40);
	assert_int_equal(failures, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fixture_cases),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
