/*
 * test_rules.c: event and inbound parsing, dates, Pruvan's responses and
 * outcomes, the relay rule, and the decision's ownership invariants.
 * Tables of inputs and expectations, one loop per table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "rules_internal.h"

#define ORDER "\"order\":{\"workOrderNumber\":\"W1\"}"
#define HEAD                                                                   \
	"\"eventId\":\"e1\",\"account\":\"a\",\"action\":\"update\","          \
	"\"occurredAt\":\"2026-11-28T16:00:00Z\""

/* ---- event parsing --------------------------------------------------- */

static const struct {
	const char *json, *reason, *in_message;
} parse_failures[] = {
    {"not json", "invalid_json", "not valid JSON"},
    {"[1,2]", "invalid_json", "not an object"},
    {"{\"a\":1,\"a\":2}", "invalid_json", "not valid JSON"},
    {"{\"account\":\"a\",\"action\":\"update\",\"occurredAt\":"
     "\"2026-11-28T16:00:00Z\"," ORDER "}",
     "missing_field", "eventId is missing"},
    {"{\"eventId\":7,\"account\":\"a\"}", "invalid_field",
     "eventId must be a string"},
    {"{\"eventId\":\"\",\"account\":\"a\"}", "invalid_field",
     "eventId is empty"},
    {"{\"eventId\":\"e1\",\"action\":\"update\"}", "missing_field",
     "account is missing"},
    {"{\"eventId\":\"e1\",\"account\":\"a\",\"occurredAt\":"
     "\"2026-11-28T16:00:00Z\"," ORDER "}",
     "missing_field", "action is missing"},
    {"{\"eventId\":\"e1\",\"account\":\"a\",\"action\":1}", "invalid_field",
     "action must be a string"},
    {"{\"eventId\":\"e1\",\"account\":\"a\",\"action\":\"Create\"}",
     "invalid_action", "action \"Create\" is unknown"},
    {"{\"eventId\":\"e1\",\"account\":\"a\",\"action\":\"create\"," ORDER "}",
     "missing_field", "occurredAt is missing"},
    {"{\"eventId\":\"e1\",\"account\":\"a\",\"action\":\"create\","
     "\"occurredAt\":1}",
     "invalid_field", "occurredAt must be a string"},
    {"{\"eventId\":\"e1\",\"account\":\"a\",\"action\":\"create\","
     "\"occurredAt\":\"2026-02-29T00:00:00Z\"}",
     "invalid_date", "2026-02-29"},
    {"{\"eventId\":\"e1\",\"account\":\"a\",\"action\":\"create\","
     "\"occurredAt\":\"2026-11-28 16:00:00Z\"}",
     "invalid_date", "not an RFC 3339"},
    {"{" HEAD ",\"version\":1.5," ORDER "}", "invalid_field",
     "version must be a non-negative integer"},
    {"{" HEAD ",\"version\":\"3\"," ORDER "}", "invalid_field", "version"},
    {"{" HEAD ",\"version\":-1," ORDER "}", "invalid_field", "version"},
    {"{" HEAD "}", "missing_field", "order is missing"},
    {"{" HEAD ",\"order\":[]}", "invalid_field", "order must be an object"},
    {"{" HEAD ",\"order\":{}}", "missing_field",
     "order.workOrderNumber is missing: every order event must name its "
     "work order"},
    {"{" HEAD ",\"order\":{\"workOrderNumber\":12}}", "invalid_field",
     "order.workOrderNumber must be a string"},
    {"{" HEAD ",\"order\":{\"workOrderNumber\":\"\"}}", "invalid_field",
     "order.workOrderNumber is empty"},
};

static void test_event_parse_failures(void **state)
{
	(void)state;
	for (size_t i = 0;
	     i < sizeof(parse_failures) / sizeof(parse_failures[0]); i++) {
		pb_event_t *ev = NULL;
		pb_rejection_t rej;
		const char *j = parse_failures[i].json;
		pb_err_t err = pb_event_parse(j, strlen(j), &ev, &rej);
		if (err != PB_ERR_INVALID || !rej.reason ||
		    strcmp(rej.reason, parse_failures[i].reason) ||
		    !strstr(rej.message, parse_failures[i].in_message))
			fail_msg("case %zu (%s): got %s: %s", i, j,
				 rej.reason ? rej.reason : "(none)",
				 rej.message);
		assert_null(ev);
		pb_rejection_clear(&rej);
	}
}

static void test_event_parse_keeps_identity_on_failure(void **state)
{
	(void)state;
	const char *j =
	    "{\"eventId\":\"e9\",\"account\":\"acme\","
	    "\"action\":\"zap\",\"order\":{\"workOrderNumber\":\"W9\"}}";
	pb_event_t *ev = NULL;
	pb_rejection_t rej;
	assert_int_equal(pb_event_parse(j, strlen(j), &ev, &rej),
			 PB_ERR_INVALID);
	assert_string_equal(rej.reason, "invalid_action");
	assert_string_equal(rej.event_id, "e9");
	assert_string_equal(rej.account, "acme");
	assert_string_equal(rej.work_order_number, "W9");
	pb_rejection_clear(&rej);
	assert_null(rej.event_id);
	pb_rejection_clear(&rej); /* idempotent */
}

static void test_event_parse_success_and_not_nul_terminated(void **state)
{
	(void)state;
	const char *j =
	    "{" HEAD ",\"version\":7,\"order\":{\"workOrderNumber\":"
	    "\"W1\",\"city\":\"Austin\"}}GARBAGE";
	size_t len = strlen(j) - strlen("GARBAGE");
	pb_event_t *ev = NULL;
	pb_rejection_t rej;
	assert_int_equal(pb_event_parse(j, len, &ev, &rej), PB_OK);
	assert_string_equal(ev->event_id, "e1");
	assert_string_equal(ev->account, "a");
	assert_int_equal(ev->action, PB_ACTION_UPDATE);
	assert_true(ev->has_version);
	assert_int_equal(ev->version, 7);
	assert_int_equal(ev->occurred_ms, 1795881600000LL);
	assert_string_equal(ev->work_order_number, "W1");
	assert_string_equal(
	    json_string_value(json_object_get(ev->order, "city")), "Austin");
	pb_event_destroy(ev);
	pb_event_destroy(NULL);
}

static void test_event_parse_size_cap(void **state)
{
	(void)state;
	size_t n = 1024 * 1024 + 1;
	char *big = malloc(n);
	assert_non_null(big);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	pb_event_t *ev = NULL;
	pb_rejection_t rej;
	assert_int_equal(pb_event_parse(big, n, &ev, &rej), PB_ERR_INVALID);
	assert_string_equal(rej.reason, "invalid_json");
	assert_non_null(strstr(rej.message, "1 MiB"));
	pb_rejection_clear(&rej);
	free(big);
}

/* ---- dates ----------------------------------------------------------- */

static const struct {
	const char *in, *out; /* out NULL: invalid */
} dates[] = {
    {"2020-05-28T12:00:00Z", "2020-05-28 1200 +0"},
    {"2020-05-28T12:00:00z", "2020-05-28 1200 +0"},
    {"2020-05-28t12:00:00+00:00", "2020-05-28 1200 +0"},
    {"2020-05-28T12:00:00-05:00", "2020-05-28 1200 -5"},
    {"2020-05-28T12:00:00.123456+10:00", "2020-05-28 1200 +10"},
    {"2020-05-28T12:00:00+05:30", "2020-05-28 0630 +0"},
    {"2020-01-01T02:00:00+05:45", "2019-12-31 2015 +0"},
    {"2020-12-31T22:00:00-03:30", "2021-01-01 0130 +0"},
    {"2020-05-28T12:00:00-16:00", "2020-05-29 0400 +0"},
    {"2020-02-29T00:00:00Z", "2020-02-29 0000 +0"},
    {"2000-02-29T23:59:59Z", "2000-02-29 2359 +0"},
    {"2020-05-25 1200 +0", "2020-05-25 1200 +0"},
    {"2020-05-25 1200 -5", "2020-05-25 1200 -5"},
    {"2020-05-25 0001 +14", "2020-05-25 0001 +14"},
    {"2020-05-25 2359 -07", "2020-05-25 2359 -7"},
    {"1900-02-29T00:00:00Z", NULL},
    {"2021-02-29T00:00:00Z", NULL},
    {"2021-02-30T12:00:00Z", NULL},
    {"2021-04-31T12:00:00Z", NULL},
    {"2021-13-01T12:00:00Z", NULL},
    {"2021-00-10T12:00:00Z", NULL},
    {"2021-01-00T12:00:00Z", NULL},
    {"2021-01-01T24:00:00Z", NULL},
    {"2021-01-01T12:60:00Z", NULL},
    {"2021-01-01T12:00:60Z", NULL},
    {"2021-01-01T12:00:00", NULL},
    {"2021-01-01T12:00:00.Z", NULL},
    {"2021-01-01T12:00:00+5:00", NULL},
    {"2021-01-01T12:00:00+24:00", NULL},
    {"2021-01-01T12:00Z", NULL},
    {"2021-01-01", NULL},
    {"2021-1-01T12:00:00Z", NULL},
    {"2021-01-01T12:00:00Z ", NULL},
    {"2020-05-25 1200", NULL},
    {"2020-05-25 1200 5", NULL},
    {"2020-05-25 1200 +15", NULL},
    {"2020-05-25 1200 +123", NULL},
    {"2020-05-25 2400 +0", NULL},
    {"2020-05-25 1260 +0", NULL},
    {"2020-02-30 1200 +0", NULL},
    {"0000-01-01T00:30:00+01:30", NULL}, /* UTC falls before year 0 */
    {"", NULL},
};

static void test_dates_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
		char out[32] = "untouched";
		bool ok = pb_date_to_pruvan(dates[i].in, out, sizeof(out));
		if (dates[i].out) {
			if (!ok || strcmp(out, dates[i].out))
				fail_msg("%s: got %s, want %s", dates[i].in,
					 ok ? out : "(invalid)", dates[i].out);
		} else if (ok) {
			fail_msg("%s: accepted as %s", dates[i].in, out);
		} else {
			assert_string_equal(out, "untouched");
		}
	}
}

static void test_rfc3339_to_ms(void **state)
{
	(void)state;
	int64_t ms;
	assert_true(pb_rfc3339_to_ms("1970-01-01T00:00:00Z", &ms));
	assert_int_equal(ms, 0);
	assert_true(pb_rfc3339_to_ms("2026-11-28T16:00:00.123Z", &ms));
	assert_int_equal(ms, 1795881600123LL);
	assert_true(pb_rfc3339_to_ms("2026-11-28T11:00:00.1-05:00", &ms));
	assert_int_equal(ms, 1795881600100LL);
	assert_true(pb_rfc3339_to_ms("1969-12-31T23:59:59Z", &ms));
	assert_int_equal(ms, -1000);
	assert_false(pb_rfc3339_to_ms("2020-05-25 1200 +0", &ms));
	assert_false(pb_rfc3339_to_ms(NULL, &ms));
}

/* ---- Pruvan responses ------------------------------------------------ */

static const struct {
	const char *body;
	bool ok;
	int created, updated, deleted;
	bool has_error;
	const char *error;
} responses[] = {
    {"{\"response\":{\"created\":1,\"updated\":0,\"deleted\":0},"
     "\"error\":null}",
     true, 1, 0, 0, false, ""},
    {"{\"response\":{\"updated\":2},\"error\":\"\"}", true, 0, 2, 0, false, ""},
    {"{\"response\":{},\"error\":null}", true, 0, 0, 0, false, ""},
    {"{\"response\":null,\"error\":\"invalid api key\"}", true, 0, 0, 0, true,
     "invalid api key"},
    {"{\"response\":{\"created\":0},\"error\":\"bad address\"}", true, 0, 0, 0,
     true, "bad address"},
    {"{\"response\":null,\"error\":null}", false, 0, 0, 0, false, NULL},
    {"{\"response\":null,\"error\":\"\"}", false, 0, 0, 0, false, NULL},
    {"{\"response\":{\"created\":\"1\"},\"error\":null}", false, 0, 0, 0, false,
     NULL},
    {"{\"response\":{\"created\":-1},\"error\":null}", false, 0, 0, 0, false,
     NULL},
    {"{\"response\":{\"created\":1.0},\"error\":null}", false, 0, 0, 0, false,
     NULL},
    {"{\"response\":{\"created\":1}}", false, 0, 0, 0, false, NULL},
    {"{\"error\":null}", false, 0, 0, 0, false, NULL},
    {"{\"response\":{},\"error\":5}", false, 0, 0, 0, false, NULL},
    {"{\"response\":[],\"error\":null}", false, 0, 0, 0, false, NULL},
    {"[]", false, 0, 0, 0, false, NULL},
    {"<html>502</html>", false, 0, 0, 0, false, NULL},
    {"", false, 0, 0, 0, false, NULL},
};

static void test_response_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(responses) / sizeof(responses[0]); i++) {
		pb_pruvan_result_t r;
		memset(&r, 0x5a, sizeof(r));
		char errstr[128] = "";
		const char *b = responses[i].body;
		pb_err_t err = pb_pruvan_response_parse(b, strlen(b), &r,
							errstr, sizeof(errstr));
		if (!responses[i].ok) {
			if (err != PB_ERR_INVALID || !errstr[0])
				fail_msg("%s: accepted", b);
			/* a failing call leaves its output untouched */
			assert_int_equal(r.created, 0x5a5a5a5a);
			continue;
		}
		if (err != PB_OK)
			fail_msg("%s: refused: %s", b, errstr);
		assert_int_equal(r.created, responses[i].created);
		assert_int_equal(r.updated, responses[i].updated);
		assert_int_equal(r.deleted, responses[i].deleted);
		assert_int_equal(r.has_error, responses[i].has_error);
		assert_string_equal(r.error, responses[i].error);
	}
}

static void test_response_error_truncated(void **state)
{
	(void)state;
	char body[1024];
	char msg[600];
	memset(msg, 'x', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	snprintf(body, sizeof(body), "{\"response\":null,\"error\":\"%s\"}",
		 msg);
	pb_pruvan_result_t r;
	assert_int_equal(
	    pb_pruvan_response_parse(body, strlen(body), &r, NULL, 0), PB_OK);
	assert_true(r.has_error);
	assert_int_equal(strlen(r.error), sizeof(r.error) - 1);
}

static const struct {
	pb_action_t action;
	int created, updated, deleted;
	bool has_error;
	const char *outcome;
} outcomes[] = {
    {PB_ACTION_CREATE, 1, 0, 0, false, "created"},
    {PB_ACTION_CREATE, 0, 1, 0, false, "updated"},
    {PB_ACTION_CREATE, 0, 0, 0, false, NULL},
    {PB_ACTION_CREATE, 0, 0, 1, false, NULL},
    {PB_ACTION_CREATE, 1, 0, 0, true, NULL},
    {PB_ACTION_UPDATE, 0, 1, 0, false, "updated"},
    {PB_ACTION_UPDATE, 1, 0, 0, false, "created"},
    {PB_ACTION_UPDATE, 1, 1, 0, false, "updated"},
    {PB_ACTION_UPDATE, 0, 0, 0, false, NULL},
    {PB_ACTION_UPDATE, 0, 1, 0, true, NULL},
    {PB_ACTION_DELETE, 0, 0, 1, false, "deleted"},
    {PB_ACTION_DELETE, 0, 1, 0, false, NULL},
    {PB_ACTION_DELETE, 0, 0, 1, true, NULL},
};

static void test_outcome_for_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
		pb_decision_t d = {.push_action = outcomes[i].action};
		pb_pruvan_result_t r = {.created = outcomes[i].created,
					.updated = outcomes[i].updated,
					.deleted = outcomes[i].deleted,
					.has_error = outcomes[i].has_error};
		const char *o = pb_rules_outcome_for(&d, &r);
		if (outcomes[i].outcome) {
			if (!o || strcmp(o, outcomes[i].outcome))
				fail_msg("row %zu: got %s", i, o ? o : "NULL");
		} else if (o) {
			fail_msg("row %zu: got %s, want NULL", i, o);
		}
	}
	assert_null(pb_rules_outcome_for(NULL, NULL));
}

/* ---- inbound --------------------------------------------------------- */

static const struct {
	const char *json, *reason; /* reason NULL: parses */
	const char *key1;
} inbounds[] = {
    {"{\"account\":\"a\",\"kind\":\"photo\",\"item\":{\"uuId\":\"u1\","
     "\"key1\":\"98765\",\"key2\":\"W1\",\"x\":1}}",
     NULL, "98765"},
    {"{\"account\":\"a\",\"kind\":\"survey\",\"item\":{\"uuId\":\"u1\","
     "\"key1\":98765,\"key2\":\"W1\"}}",
     NULL, "98765"},
    {"{\"account\":\"a\",\"kind\":\"order\",\"item\":{\"uuId\":\"u1\","
     "\"key2\":\"W1\"}}",
     NULL, NULL},
    {"{\"account\":\"a\",\"kind\":\"status\",\"item\":{\"uuId\":\"u1\","
     "\"key1\":null,\"key2\":\"W1\"}}",
     NULL, NULL},
    {"{\"account\":\"a\",\"kind\":\"video\",\"item\":{\"uuId\":\"u1\","
     "\"key2\":\"W1\"}}",
     "invalid_field", NULL},
    {"{\"account\":\"a\",\"item\":{\"uuId\":\"u1\",\"key2\":\"W1\"}}",
     "missing_field", NULL},
    {"{\"kind\":\"photo\",\"item\":{\"uuId\":\"u1\",\"key2\":\"W1\"}}",
     "missing_field", NULL},
    {"{\"account\":\"a\",\"kind\":\"photo\"}", "missing_field", NULL},
    {"{\"account\":\"a\",\"kind\":\"photo\",\"item\":\"x\"}", "invalid_field",
     NULL},
    {"{\"account\":\"a\",\"kind\":\"photo\",\"item\":{\"key2\":\"W1\"}}",
     "missing_field", NULL},
    {"{\"account\":\"a\",\"kind\":\"photo\",\"item\":{\"uuId\":\"\","
     "\"key2\":\"W1\"}}",
     "invalid_field", NULL},
    {"{\"account\":\"a\",\"kind\":\"photo\",\"item\":{\"uuId\":\"u1\"}}",
     "missing_field", NULL},
    {"{\"account\":\"a\",\"kind\":\"photo\",\"item\":{\"uuId\":\"u1\","
     "\"key2\":5}}",
     "invalid_field", NULL},
    {"{\"account\":\"a\",\"kind\":\"photo\",\"item\":{\"uuId\":\"u1\","
     "\"key1\":1.5,\"key2\":\"W1\"}}",
     "invalid_field", NULL},
    {"{\"account\":\"a\",\"kind\":\"photo\",\"item\":{\"uuId\":\"u1\","
     "\"key1\":[],\"key2\":\"W1\"}}",
     "invalid_field", NULL},
    {"nope", "invalid_json", NULL},
};

static void test_inbound_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(inbounds) / sizeof(inbounds[0]); i++) {
		pb_inbound_t *in = NULL;
		pb_rejection_t rej;
		const char *j = inbounds[i].json;
		pb_err_t err = pb_inbound_parse(j, strlen(j), &in, &rej);
		if (inbounds[i].reason) {
			if (err != PB_ERR_INVALID || !rej.reason ||
			    strcmp(rej.reason, inbounds[i].reason))
				fail_msg("%s: got %s", j,
					 err ? rej.reason : "(parsed)");
			assert_null(in);
			pb_rejection_clear(&rej);
			continue;
		}
		if (err != PB_OK)
			fail_msg("%s: %s", j, rej.message);
		assert_string_equal(in->account, "a");
		assert_string_equal(in->uuid, "u1");
		assert_string_equal(in->key2, "W1");
		if (inbounds[i].key1)
			assert_string_equal(in->key1, inbounds[i].key1);
		else
			assert_null(in->key1);
		assert_true(json_is_object(in->item));
		pb_inbound_destroy(in);
	}
}

static void test_inbound_rejection_identity(void **state)
{
	(void)state;
	const char *j = "{\"account\":\"a\",\"kind\":\"fax\",\"item\":"
			"{\"uuId\":\"u7\",\"key2\":\"W7\"}}";
	pb_inbound_t *in = NULL;
	pb_rejection_t rej;
	assert_int_equal(pb_inbound_parse(j, strlen(j), &in, &rej),
			 PB_ERR_INVALID);
	assert_string_equal(rej.event_id, "u7");
	assert_string_equal(rej.account, "a");
	assert_string_equal(rej.work_order_number, "W7");
	assert_non_null(strstr(rej.message, "fax"));
	pb_rejection_clear(&rej);
}

static const struct {
	bool deleted;
	const char *learned, *item;
	bool key1_deleted;
	const char *reason;
} discards[] = {
    {false, "1", "1", false, NULL},
    {false, NULL, NULL, false, NULL},
    {false, "1", "2", false, NULL},
    {false, "1", "9", true, "order_deleted"},
    {true, "1", "1", false, "order_deleted"},
    {true, NULL, "1", false, "order_deleted"},
    {true, "1", NULL, false, "order_deleted"},
    {true, "1", "2", false, "recreated_after_delete"},
    {true, "1", "2", true, "order_deleted"},
};

static void test_inbound_discard_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(discards) / sizeof(discards[0]); i++) {
		const char *r = pb_rules_inbound_discard_reason(
		    discards[i].deleted, discards[i].learned, discards[i].item,
		    discards[i].key1_deleted);
		if (discards[i].reason)
			assert_string_equal(r, discards[i].reason);
		else
			assert_null(r);
	}
}

/* The source ids that identify an order in relayed data (contract 5): a
 * number pushed and a string relayed back are one id; other values are
 * none. */
static void test_inbound_source_ids(void **state)
{
	(void)state;
	const char *j = "{\"account\":\"a\",\"kind\":\"photo\",\"item\":{"
			"\"uuId\":\"u1\",\"key2\":\"W1\",\"source_wo_id\":"
			"\"S-1\",\"source_wo_number\":4711}}";
	pb_inbound_t *in = NULL;
	pb_rejection_t rej;
	assert_int_equal(pb_inbound_parse(j, strlen(j), &in, &rej), PB_OK);
	assert_string_equal(in->source_wo_id, "S-1");
	assert_string_equal(in->source_wo_number, "4711");
	pb_inbound_destroy(in);
	j = "{\"account\":\"a\",\"kind\":\"photo\",\"item\":{\"uuId\":"
	    "\"u2\",\"key2\":\"W1\",\"source_wo_id\":{\"x\":1},"
	    "\"source_wo_number\":\"\"}}";
	assert_int_equal(pb_inbound_parse(j, strlen(j), &in, &rej), PB_OK);
	assert_null(in->source_wo_id);
	assert_null(in->source_wo_number);
	pb_inbound_destroy(in);

	const char *pushed = "{\"source_wo_id\":77,\"source_wo_number\":"
			     "\"N-9\",\"zip\":\"78664\"}";
	char *t =
	    pb_rules_pushed_source_id(pushed, strlen(pushed), "source_wo_id");
	assert_string_equal(t, "77");
	free(t);
	t = pb_rules_pushed_source_id(pushed, strlen(pushed),
				      "source_wo_number");
	assert_string_equal(t, "N-9");
	free(t);
	assert_null(
	    pb_rules_pushed_source_id("{\"zip\":1}", 9, "source_wo_id"));
	assert_null(pb_rules_pushed_source_id("not json", 8, "source_wo_id"));
	assert_null(pb_rules_pushed_source_id(NULL, 0, "source_wo_id"));
}

/* ---- decision invariants --------------------------------------------- */

static pb_event_t *parse_ok(const char *j)
{
	pb_event_t *ev = NULL;
	pb_rejection_t rej;
	if (pb_event_parse(j, strlen(j), &ev, &rej) != PB_OK)
		fail_msg("%s: %s", j, rej.message);
	return ev;
}

static void test_decide_never_mutates_state(void **state)
{
	(void)state;
	static char *users[] = {"jsmith"};
	pb_account_t acct = {.name = "a", .users = users, .users_len = 1};
	pb_event_t *ev = parse_ok(
	    "{" HEAD ",\"order\":{\"workOrderNumber\":\"W1\","
	    "\"services\":[{\"serviceName\":\"B\"}],\"clientStatus\":\"x\"}}");
	const char *before = "{\"services\":[{\"serviceName\":\"A\"}],"
			     "\"workOrderNumber\":\"W1\"}";
	char *pushed = strdup(before);
	json_t *order_before = json_deep_copy(ev->order);
	pb_order_state_t st = {
	    .created = true, .pushed = pushed, .pushed_len = strlen(pushed)};
	pb_decision_t d;
	pb_rules_decide(ev, &acct, true, &st, &d);
	assert_int_equal(d.verdict, PB_VERDICT_PUSH);
	/* pushed_after: the stored fields overlaid with what is pushed */
	assert_string_equal(d.pushed_after,
			    "{\"clientStatus\":\"x\",\"services\":"
			    "[{\"serviceName\":\"B\"}],"
			    "\"workOrderNumber\":\"W1\"}");
	/* Changing the outputs must not reach the borrowed inputs. */
	json_object_set_new(
	    json_array_get(json_object_get(d.work_order, "services"), 0),
	    "serviceName", json_string("Y"));
	assert_string_equal(pushed, before);
	assert_true(json_equal(ev->order, order_before));
	pb_decision_clear(&d);
	pb_decision_clear(&d); /* idempotent */
	json_decref(order_before);
	free(pushed);
	pb_event_destroy(ev);
}

/* What a fetch must read the learned Key1 for: a delete event or an
 * update with a status, where the account allows deletes. */
static void test_may_push_delete(void **state)
{
	(void)state;
	static const struct {
		const char *action, *order;
		bool allow, want;
	} cases[] = {
	    {"update", "", true, false},
	    {"update", ",\"status\":\"rush\"", true, true},
	    {"update", ",\"status\":\"Deleted\"", true, true},
	    {"update", ",\"status\":\"deleted\"", false, false},
	    {"create", ",\"description\":\"d\"", true, false},
	    {"delete", "", true, true},
	    {"delete", "", false, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char j[256];
		snprintf(j, sizeof(j),
			 "{\"eventId\":\"e1\",\"account\":\"a\","
			 "\"action\":\"%s\",\"occurredAt\":"
			 "\"2026-11-28T16:00:00Z\",\"order\":{"
			 "\"workOrderNumber\":\"W1\"%s}}",
			 cases[i].action, cases[i].order);
		pb_event_t *ev = parse_ok(j);
		pb_account_t acct = {.name = "a",
				     .allow_deletes = cases[i].allow};
		if (pb_rules_may_push_delete(ev, &acct) != cases[i].want)
			fail_msg("case %zu (%s)", i, j);
		assert_false(pb_rules_may_push_delete(ev, NULL));
		pb_event_destroy(ev);
	}
}

/* The stored fields are read as text: a user stored with escapes is still
 * that user, and a value stored in another form than the worker writes
 * counts as changed (sent again, never skipped). */
static void test_decide_reads_stored_fields_as_text(void **state)
{
	(void)state;
	static char *users[] = {"jsmith"};
	pb_account_t acct = {.name = "a", .users = users, .users_len = 1};
	pb_event_t *ev =
	    parse_ok("{" HEAD ",\"order\":{\"workOrderNumber\":\"W1\","
		     "\"status\":\"assigned\",\"workOrderInfo\":\"gate 7\","
		     "\"instructions\":\"same\"}}");
	const char *stored =
	    "{ \"assignedTo\" : \"js\\u006dith\", \"instructions\":\"same\","
	    "\"workOrderInfo\":\"gate\\u00207\", "
	    "\"workOrderNumber\":\"W1\" }";
	pb_order_state_t st = {
	    .created = true, .pushed = stored, .pushed_len = strlen(stored)};
	pb_decision_t d;
	pb_rules_decide(ev, &acct, true, &st, &d);
	/* "assigned" needs a user: the stored one, read through its escape */
	assert_int_equal(d.verdict, PB_VERDICT_PUSH);
	assert_string_equal(
	    json_string_value(json_object_get(d.work_order, "status")),
	    "assigned");
	/* the same text: unchanged; another form of the same value: sent */
	assert_null(json_object_get(d.work_order, "instructions"));
	assert_string_equal(
	    json_string_value(json_object_get(d.work_order, "workOrderInfo")),
	    "gate 7");
	/* pushed_after: sorted, the stored values copied as they are */
	assert_non_null(
	    strstr(d.pushed_after, "\"assignedTo\":\"js\\u006dith\""));
	assert_non_null(strstr(d.pushed_after, "\"workOrderInfo\":\"gate 7\""));
	pb_decision_clear(&d);
	pb_event_destroy(ev);
}

static void test_decide_caps_warnings(void **state)
{
	(void)state;
	char buf[8192];
	size_t o = (size_t)snprintf(buf, sizeof(buf),
				    "{" HEAD ",\"order\":{\"workOrderNumber\":"
				    "\"W1\",\"clientStatus\":\"x\"");
	for (int i = 0; i < 200; i++)
		o +=
		    (size_t)snprintf(buf + o, sizeof(buf) - o, ",\"f%d\":1", i);
	snprintf(buf + o, sizeof(buf) - o, "}}");
	pb_event_t *ev = parse_ok(buf);
	pb_account_t acct = {.name = "a"};
	pb_decision_t d;
	pb_rules_decide(ev, &acct, true, NULL, &d);
	assert_int_equal(d.verdict, PB_VERDICT_PUSH);
	assert_true(json_array_size(d.warnings) <= 32);
	assert_true(json_array_size(d.warnings) >= 2);
	pb_decision_clear(&d);
	pb_event_destroy(ev);
}

static void test_warning_shape(void **state)
{
	(void)state;
	pb_event_t *ev = parse_ok(
	    "{" HEAD ",\"order\":{\"workOrderNumber\":\"W1\",\"colour\":1}}");
	pb_account_t acct = {.name = "a"};
	pb_decision_t d;
	pb_rules_decide(ev, &acct, true, NULL, &d);
	/* unknown_order, then unknown_field naming the field */
	assert_int_equal(json_array_size(d.warnings), 2);
	json_t *w = json_array_get(d.warnings, 1);
	assert_string_equal(json_string_value(json_object_get(w, "code")),
			    "unknown_field");
	assert_non_null(
	    strstr(json_string_value(json_object_get(w, "message")), "colour"));
	assert_int_equal(json_object_size(w), 2);
	/* Nothing but workOrderNumber left after the drop. */
	assert_int_equal(d.verdict, PB_VERDICT_UNCHANGED);
	pb_decision_clear(&d);
	pb_event_destroy(ev);
}

static void test_action_names(void **state)
{
	(void)state;
	assert_string_equal(pb_action_name(PB_ACTION_CREATE), "create");
	assert_string_equal(pb_action_name(PB_ACTION_UPDATE), "update");
	assert_string_equal(pb_action_name(PB_ACTION_DELETE), "delete");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_event_parse_failures),
	    cmocka_unit_test(test_event_parse_keeps_identity_on_failure),
	    cmocka_unit_test(test_event_parse_success_and_not_nul_terminated),
	    cmocka_unit_test(test_event_parse_size_cap),
	    cmocka_unit_test(test_dates_table),
	    cmocka_unit_test(test_rfc3339_to_ms),
	    cmocka_unit_test(test_response_parse_table),
	    cmocka_unit_test(test_response_error_truncated),
	    cmocka_unit_test(test_outcome_for_table),
	    cmocka_unit_test(test_inbound_parse_table),
	    cmocka_unit_test(test_inbound_rejection_identity),
	    cmocka_unit_test(test_inbound_discard_table),
	    cmocka_unit_test(test_inbound_source_ids),
	    cmocka_unit_test(test_decide_never_mutates_state),
	    cmocka_unit_test(test_may_push_delete),
	    cmocka_unit_test(test_decide_reads_stored_fields_as_text),
	    cmocka_unit_test(test_decide_caps_warnings),
	    cmocka_unit_test(test_warning_shape),
	    cmocka_unit_test(test_action_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
