/*
 * test_rules_matrix.c: the status table, read at run time, against the
 * decisions the compiled rules make.
 *
 * spec/status-matrix.csv (found through PB_SPEC) is parsed here, by code
 * independent of tools/gen_status_table.c, and for every row, both modes,
 * both status policies and with deletes allowed or not, an event is built
 * and pb_rules_decide() must agree with the row: allowed (status sent, the
 * row's Client Status suggestion filled in), dropped (status_dropped
 * warning, rest still sent) or rejected (status_not_allowed, the row's
 * notes in the message). If someone edits the CSV without rebuilding, or
 * the code without the CSV, this fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jtext.h"
#include "rules.h"
#include "rules_internal.h"

typedef struct {
	char action[256], status[256], allowed[256], suggestion[256],
	    notes[256];
} csv_row_t;

#define MAX_ROWS 64

/* Minimal CSV field reader: quoted fields with "" escapes. */
static size_t csv_split(const char *line, char fields[][256], size_t max)
{
	size_t n = 0;
	const char *p = line;
	while (n < max) {
		size_t o = 0;
		if (*p == '"') {
			p++;
			while (*p && !(*p == '"' && p[1] != '"')) {
				if (*p == '"')
					p++;
				if (o < 255)
					fields[n][o++] = *p;
				p++;
			}
			if (*p == '"')
				p++;
		} else {
			while (*p && *p != ',' && *p != '\n' && *p != '\r') {
				if (o < 255)
					fields[n][o++] = *p;
				p++;
			}
		}
		fields[n++][o] = '\0';
		if (*p != ',')
			break;
		p++;
	}
	return n;
}

static size_t load_rows(csv_row_t *rows)
{
	const char *spec = getenv("PB_SPEC");
	assert_non_null(spec);
	char path[1024];
	snprintf(path, sizeof(path), "%s/status-matrix.csv", spec);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char line[1024];
	size_t n = 0;
	bool header = true;
	while (fgets(line, sizeof(line), f)) {
		char fl[5][256];
		if (line[0] == '\n' || line[0] == '\r' || line[0] == '\0')
			continue;
		size_t nf = csv_split(line, fl, 5);
		assert_int_equal(nf, 5);
		if (header) {
			assert_string_equal(fl[0], "action");
			header = false;
			continue;
		}
		assert_true(n < MAX_ROWS);
		snprintf(rows[n].action, sizeof(rows[n].action), "%s", fl[0]);
		snprintf(rows[n].status, sizeof(rows[n].status), "%s", fl[1]);
		snprintf(rows[n].allowed, sizeof(rows[n].allowed), "%s", fl[2]);
		snprintf(rows[n].suggestion, sizeof(rows[n].suggestion), "%s",
			 fl[3]);
		snprintf(rows[n].notes, sizeof(rows[n].notes), "%s", fl[4]);
		n++;
	}
	fclose(f);
	return n;
}

static char *users[] = {"jsmith", "mjones"};

static json_t *base_order(void)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:[{s:s}]}",
			 "workOrderNumber", "M-1", "address1", "1 Main St",
			 "city", "Austin", "state", "TX", "zip", "78701",
			 "services", "serviceName", "Mow");
}

/* Replace <old>/<new> the way the rules must. */
static void expected_suggestion(const char *tmpl, char *out, size_t size)
{
	char tmp[256];
	const char *p = tmpl;
	size_t o = 0;
	while (*p && o + 1 < sizeof(tmp)) {
		if (!strncmp(p, "<old>", 5)) {
			o += (size_t)snprintf(tmp + o, sizeof(tmp) - o,
					      "jsmith");
			p += 5;
		} else if (!strncmp(p, "<new>", 5)) {
			o += (size_t)snprintf(tmp + o, sizeof(tmp) - o,
					      "mjones");
			p += 5;
		} else {
			tmp[o++] = *p++;
		}
	}
	tmp[o] = '\0';
	snprintf(out, size, "%s", tmp);
}

static void check_row(const csv_row_t *row, const char *status_as_sent,
		      pb_mode_t mode, pb_status_policy_t policy,
		      bool allow_deletes)
{
	bool update = !strcmp(row->action, "update");
	bool internal = mode == PB_MODE_INTERNAL;
	pb_account_t acct = {.name = "m",
			     .mode = mode,
			     .allow_deletes = allow_deletes,
			     .status_policy = policy,
			     .users = users,
			     .users_len = 2};
	json_t *order;
	if (update)
		order = json_pack("{s:s, s:s}", "workOrderNumber", "M-1",
				  "description", "new");
	else
		order = base_order();
	if (row->status[0])
		json_object_set_new(order, "status",
				    json_string(status_as_sent));
	if (!strcmp(row->status, "assigned") && internal)
		json_object_set_new(order, "assignedTo",
				    json_string(update ? "mjones" : "jsmith"));
	json_t *evj =
	    json_pack("{s:s, s:s, s:s, s:s, s:o}", "eventId", "e", "account",
		      "m", "action", row->action, "occurredAt",
		      "2026-11-28T16:00:00Z", "order", order);
	char *raw = json_dumps(evj, 0);
	json_decref(evj);
	pb_event_t *ev = NULL;
	pb_rejection_t rej;
	assert_int_equal(pb_event_parse(raw, strlen(raw), &ev, &rej), PB_OK);
	free(raw);

	json_t *pushed = base_order();
	json_object_set_new(pushed, "assignedTo", json_string("jsmith"));
	json_object_set_new(pushed, "description", json_string("old"));
	char *pushed_text = pb_jt_dumps(pushed, true);
	pb_order_state_t st = {.created = true,
			       .pushed = pushed_text,
			       .pushed_len = strlen(pushed_text)};

	pb_decision_t d;
	pb_rules_decide(ev, &acct, true, update ? &st : NULL, &d);
	/* a delete only where foreseen (the fetch reads the Key1 for it) */
	if (d.verdict == PB_VERDICT_PUSH && d.push_action == PB_ACTION_DELETE)
		assert_true(pb_rules_may_push_delete(ev, &acct));

	bool allowed;
	if (!strcmp(row->allowed, "internal+external"))
		allowed = true;
	else if (!strcmp(row->allowed, "internal"))
		allowed = internal;
	else if (!strcmp(row->allowed, "caution"))
		allowed = allow_deletes;
	else
		allowed = false;

	char label[640];
	snprintf(label, sizeof(label), "%s/%s mode=%s policy=%s deletes=%d",
		 row->action, status_as_sent,
		 internal ? "internal" : "external",
		 policy == PB_STATUS_POLICY_REJECT ? "reject" : "drop",
		 allow_deletes);
	(void)label; /* kept for debugging: print it when a row fails */

	if (!allowed && policy == PB_STATUS_POLICY_REJECT) {
		assert_int_equal(d.verdict, PB_VERDICT_REJECTED);
		assert_string_equal(d.reason, "status_not_allowed");
		assert_non_null(strstr(d.message, row->notes));
		assert_null(d.work_order);
	} else {
		assert_int_equal(d.verdict, PB_VERDICT_PUSH);
		const char *cs = json_string_value(
		    json_object_get(d.work_order, "clientStatus"));
		const char *sent =
		    json_string_value(json_object_get(d.work_order, "status"));
		if (allowed) {
			assert_int_equal(json_array_size(d.warnings), 0);
			if (row->status[0])
				assert_string_equal(sent, row->status);
			else
				assert_null(sent);
			if (update && !row->status[0]) {
				/* "Remote Order Status is ..." is the remote
				 * system's own text: never filled in. */
				assert_null(cs);
			} else {
				char want[256];
				expected_suggestion(row->suggestion, want,
						    sizeof(want));
				assert_non_null(cs);
				assert_string_equal(cs, want);
			}
			if (!strcmp(row->status, "unassigned"))
				assert_true(json_is_null(json_object_get(
				    d.work_order, "assignedTo")));
			assert_int_equal(d.push_action,
					 !strcmp(row->status, "deleted")
					     ? PB_ACTION_DELETE
					 : update ? PB_ACTION_UPDATE
						  : PB_ACTION_CREATE);
		} else {
			assert_null(sent);
			assert_int_equal(json_array_size(d.warnings), 1);
			assert_string_equal(
			    json_string_value(json_object_get(
				json_array_get(d.warnings, 0), "code")),
			    "status_dropped");
			assert_non_null(strstr(
			    json_string_value(json_object_get(
				json_array_get(d.warnings, 0), "message")),
			    row->notes));
			if (update)
				assert_null(cs);
			else
				assert_string_equal(cs, "Order Created");
		}
	}
	pb_decision_clear(&d);
	pb_event_destroy(ev);
	json_decref(pushed);
	free(pushed_text);
}

static void test_every_row_every_mode_every_policy(void **state)
{
	(void)state;
	csv_row_t rows[MAX_ROWS];
	size_t n = load_rows(rows);
	/* The compiled table is the CSV, row for row. */
	assert_int_equal(n, pb_status_table_len);
	for (size_t i = 0; i < n; i++) {
		const pb_status_rule_t *r = &pb_status_table[i];
		assert_string_equal(pb_action_name(r->action), rows[i].action);
		assert_string_equal(r->status, rows[i].status);
		assert_string_equal(r->suggestion, rows[i].suggestion);
	}
	size_t checks = 0;
	for (size_t i = 0; i < n; i++) {
		/* Statuses arrive in any case; CANCEL/cancelled are canceled.
		 */
		const char *variants[3] = {rows[i].status, NULL, NULL};
		char upper[256];
		snprintf(upper, sizeof(upper), "%s", rows[i].status);
		for (char *p = upper; *p; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
		variants[1] = upper;
		if (!strcmp(rows[i].status, "canceled")) {
			variants[1] = "CANCEL";
			variants[2] = "cancelled";
		}
		for (int v = 0; v < 3; v++) {
			if (!variants[v] || (v > 0 && !rows[i].status[0]))
				continue;
			for (int m = 0; m < 2; m++)
				for (int p = 0; p < 2; p++)
					for (int del = 0; del < 2; del++) {
						check_row(&rows[i], variants[v],
							  (pb_mode_t)m,
							  (pb_status_policy_t)p,
							  del);
						checks++;
					}
		}
	}
	assert_true(checks >= n * 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_row_every_mode_every_policy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
