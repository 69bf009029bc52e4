/*
 * rules_event.c: parse the two kinds of input records (contract sections 3
 * and 5) into structs, or into a rejection that says why.
 *
 * Structure only: whether a field's value is acceptable for an account
 * (status, assignedTo, address, dates inside the order) is decided in
 * rules.c. Here we check what every event needs to be routed and ordered:
 * its identity, action, time and version.
 *
 * Invariants: input is bounded (PB_RULES_MAX_INPUT) before parsing; JSON
 * with duplicate keys is refused (which value would win is ambiguous);
 * identity strings are bounded (PB_RULES_MAX_ID); on failure every owned
 * object is released and *rej holds whatever identity could be read, so
 * the outcome record can still name the event. Never does I/O or logs.
 */
#include "rules_internal.h"

#include "jtext.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define PB_RULES_MAX_INPUT PB_RULES_RECORD_MAX
#define PB_RULES_MAX_ID	   256

void pb_rejection_clear(pb_rejection_t *rej)
{
	if (!rej)
		return;
	free(rej->event_id);
	free(rej->account);
	free(rej->work_order_number);
	rej->event_id = rej->account = rej->work_order_number = NULL;
}

bool pb_rejection_too_large(size_t len, pb_rejection_t *rej)
{
	if (len <= PB_RULES_RECORD_MAX)
		return false;
	rej->reason = "too_large";
	snprintf(rej->message, sizeof(rej->message),
		 "the record is %zu bytes, more than the %d a record may "
		 "have: shorten its longest fields or split the order's "
		 "services over several events",
		 len, PB_RULES_RECORD_MAX);
	return true;
}

static void rej_init(pb_rejection_t *rej)
{
	rej->reason = NULL;
	rej->message[0] = '\0';
	rej->event_id = rej->account = rej->work_order_number = NULL;
}

__attribute__((format(printf, 3, 4))) static pb_err_t
rej_set(pb_rejection_t *rej, const char *reason, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pb_format_text(rej->message, sizeof(rej->message), fmt, ap);
	va_end(ap);
	rej->reason = reason;
	return PB_ERR_INVALID;
}

/* A string member, or NULL when absent or not a string. */
static const char *str_member(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/*
 * Check a required non-empty, bounded string member; fills rej and returns
 * false on failure. what is the dotted name used in messages.
 */
static bool need_string(const json_t *obj, const char *key, const char *what,
			const char *why, pb_rejection_t *rej)
{
	const json_t *v = json_object_get(obj, key);
	if (!v) {
		rej_set(rej, "missing_field", "%s is missing: %s", what, why);
		return false;
	}
	if (!json_is_string(v)) {
		rej_set(rej, "invalid_field", "%s must be a string: %s", what,
			why);
		return false;
	}
	size_t len = json_string_length(v);
	if (len == 0) {
		rej_set(rej, "invalid_field", "%s is empty: %s", what, why);
		return false;
	}
	if (len > PB_RULES_MAX_ID) {
		rej_set(rej, "invalid_field",
			"%s is longer than %d characters: shorten it", what,
			PB_RULES_MAX_ID);
		return false;
	}
	return true;
}

void pb_event_destroy(pb_event_t *ev)
{
	if (!ev)
		return;
	/* event_id, account and work_order_number live in ev's block */
	json_decref(ev->order);
	free(ev);
}

const char *pb_action_name(pb_action_t a)
{
	switch (a) {
	case PB_ACTION_CREATE:
		return "create";
	case PB_ACTION_UPDATE:
		return "update";
	case PB_ACTION_DELETE:
		return "delete";
	}
	return "unknown";
}

/* The start of every parse: rej initialised, buf loaded as an object (owned
 * by the caller), and the record's identity as far as readable copied into
 * rej for the outcome record: the id member id_key of id_of, the account,
 * and the work order number won_key of won_of. id_of and won_of name a
 * member object of the record, or NULL for the record itself. NULL with
 * rej set when buf is not a JSON object. */
static json_t *load_object(const char *buf, size_t len, const char *id_of,
			   const char *id_key, const char *won_of,
			   const char *won_key, pb_rejection_t *rej)
{
	rej_init(rej);
	if (!buf || len > PB_RULES_MAX_INPUT) {
		rej_set(rej, "invalid_json",
			"the record is larger than %d bytes: records must be "
			"at most 1 MiB",
			PB_RULES_MAX_INPUT);
		return NULL;
	}
	json_error_t jerr;
	json_t *root = pb_json_load(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		rej_set(rej, "invalid_json",
			"the record is not valid JSON (line %d, column %d: "
			"%.200s): send a JSON object",
			jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		rej_set(rej, "invalid_json",
			"the record is JSON but not an object: send a JSON "
			"object");
		return NULL;
	}
	const json_t *ido = id_of ? json_object_get(root, id_of) : root;
	const json_t *wono = won_of ? json_object_get(root, won_of) : root;
	rej->event_id = pb_strdup(str_member(ido, id_key));
	rej->account = pb_strdup(str_member(root, "account"));
	rej->work_order_number = pb_strdup(str_member(wono, won_key));
	return root;
}

/* The end of every parse that passed its checks: PB_OK with rej cleared
 * when the result was made, else PB_ERR_NOMEM with rej saying so. */
static pb_err_t parse_end(bool made, pb_rejection_t *rej)
{
	if (!made) {
		rej_set(rej, "internal", "out of memory");
		return PB_ERR_NOMEM;
	}
	pb_rejection_clear(rej);
	return PB_OK;
}

/* The action member: create, update or delete. False when rej was set. */
static bool parse_action(const json_t *root, pb_action_t *act,
			 pb_rejection_t *rej)
{
	const json_t *action = json_object_get(root, "action");
	if (!action) {
		rej_set(rej, "missing_field",
			"action is missing: use create, update or delete");
		return false;
	}
	if (!json_is_string(action)) {
		rej_set(rej, "invalid_field",
			"action must be a string: use create, update or "
			"delete");
		return false;
	}
	const char *as = json_string_value(action);
	if (strcmp(as, "create") == 0) {
		*act = PB_ACTION_CREATE;
	} else if (strcmp(as, "update") == 0) {
		*act = PB_ACTION_UPDATE;
	} else if (strcmp(as, "delete") == 0) {
		*act = PB_ACTION_DELETE;
	} else {
		rej_set(rej, "invalid_action",
			"action \"%.64s\" is unknown: use create, update or "
			"delete",
			as);
		return false;
	}
	return true;
}

/* The occurredAt member, an RFC 3339 date-time, in Unix milliseconds.
 * False when rej was set. */
static bool parse_occurred(const json_t *root, int64_t *ms, pb_rejection_t *rej)
{
	const json_t *occ = json_object_get(root, "occurredAt");
	if (!occ) {
		rej_set(rej, "missing_field",
			"occurredAt is missing: every event needs its RFC 3339 "
			"time, e.g. 2026-11-28T16:00:00Z");
		return false;
	}
	if (!json_is_string(occ)) {
		rej_set(rej, "invalid_field",
			"occurredAt must be a string: use RFC 3339, e.g. "
			"2026-11-28T16:00:00Z");
		return false;
	}
	if (!pb_rfc3339_to_ms(json_string_value(occ), ms)) {
		rej_set(rej, "invalid_date",
			"occurredAt \"%.64s\" is not an RFC 3339 date-time: "
			"use e.g. 2026-11-28T16:00:00Z",
			json_string_value(occ));
		return false;
	}
	return true;
}

/* The optional version and the order object with its workOrderNumber.
 * False when rej was set. */
static bool check_version_and_order(const json_t *root, const json_t *order,
				    pb_rejection_t *rej)
{
	const json_t *ver = json_object_get(root, "version");
	if (ver && (!json_is_integer(ver) || json_integer_value(ver) < 0)) {
		rej_set(rej, "invalid_field",
			"version must be a non-negative integer: send the "
			"order's event counter or leave version out");
		return false;
	}
	if (!order) {
		rej_set(rej, "missing_field",
			"order is missing: every event carries the order "
			"object");
		return false;
	}
	if (!json_is_object(order)) {
		rej_set(rej, "invalid_field",
			"order must be an object of Pruvan work-order fields");
		return false;
	}
	return need_string(order, "workOrderNumber", "order.workOrderNumber",
			   "every order event must name its work order", rej);
}

/* s copied to *at (advanced past its NUL). */
static char *event_str(char **at, const char *s, size_t n)
{
	char *d = memcpy(*at, s, n + 1);
	*at += n + 1;
	return d;
}

/* The event of a checked root (borrowed; order is its member), or NULL
 * when out of memory. One allocation holds the event and its three
 * identifiers: made and freed for every event consumed. */
static pb_event_t *event_new(const json_t *root, const json_t *order,
			     pb_action_t act, int64_t occurred_ms)
{
	const char *id = str_member(root, "eventId");
	const char *acct = str_member(root, "account");
	const char *won = str_member(order, "workOrderNumber");
	if (!id || !acct || !won)
		return NULL; /* checked before: never */
	size_t li = strlen(id), la = strlen(acct), lw = strlen(won);
	pb_event_t *ev = calloc(1, sizeof(*ev) + li + la + lw + 3);
	if (!ev)
		return NULL;
	char *at = (char *)(ev + 1);
	const json_t *ver = json_object_get(root, "version");
	ev->event_id = event_str(&at, id, li);
	ev->account = event_str(&at, acct, la);
	ev->work_order_number = event_str(&at, won, lw);
	ev->action = act;
	ev->occurred_ms = occurred_ms;
	ev->has_version = ver != NULL;
	ev->version = ver ? (int64_t)json_integer_value(ver) : 0;
	ev->order = json_incref((json_t *)order);
	return ev;
}

pb_err_t pb_event_parse(const char *buf, size_t len, pb_event_t **ev_out,
			pb_rejection_t *rej)
{
	json_t *root = load_object(buf, len, NULL, "eventId", "order",
				   "workOrderNumber", rej);
	if (!root)
		return PB_ERR_INVALID;
	const json_t *order = json_object_get(root, "order");
	pb_err_t err = PB_ERR_INVALID;
	pb_action_t act;
	int64_t occurred_ms;
	if (!need_string(root, "eventId", "eventId",
			 "every event needs a unique eventId", rej) ||
	    !need_string(root, "account", "account",
			 "every event must name its account", rej) ||
	    !parse_action(root, &act, rej) ||
	    !parse_occurred(root, &occurred_ms, rej) ||
	    !check_version_and_order(root, order, rej))
		goto out;

	pb_event_t *ev = event_new(root, order, act, occurred_ms);
	err = parse_end(ev != NULL, rej);
	if (!err)
		*ev_out = ev;
out:
	json_decref(root);
	return err;
}

void pb_inbound_destroy(pb_inbound_t *in)
{
	if (!in)
		return;
	free(in->account);
	free(in->kind);
	free(in->uuid);
	free(in->key1);
	free(in->key2);
	free(in->source_wo_id);
	free(in->source_wo_number);
	json_decref(in->item);
	free(in);
}

/* key1 as a string: Pruvan sends it as a number or a string. */
static bool key1_string(const json_t *v, char *buf, size_t size)
{
	if (json_is_string(v)) {
		if (json_string_length(v) == 0 ||
		    json_string_length(v) > PB_RULES_MAX_ID)
			return false;
		pb_strlcpy(buf, json_string_value(v), size);
		return true;
	}
	if (json_is_integer(v)) {
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		return true;
	}
	return false; /* reals would print ambiguously: refuse */
}

/* The account and kind members of a relayed item. False when rej was set. */
static bool check_account_kind(const json_t *root, pb_rejection_t *rej)
{
	if (!need_string(root, "account", "account",
			 "every relayed item must name its account", rej) ||
	    !need_string(root, "kind", "kind",
			 "use photo, survey, status or order", rej))
		return false;
	const char *kind = str_member(root, "kind");
	if (strcmp(kind, "photo") != 0 && strcmp(kind, "survey") != 0 &&
	    strcmp(kind, "status") != 0 && strcmp(kind, "order") != 0) {
		rej_set(rej, "invalid_field",
			"kind \"%.64s\" is unknown: use photo, survey, status "
			"or order",
			kind);
		return false;
	}
	return true;
}

/* The item's uuId and keys: key1 (when given, as text into key1) or key2,
 * at least one. False when rej was set. */
static bool check_item(const json_t *item, char *key1, size_t key1_size,
		       pb_rejection_t *rej)
{
	if (!item) {
		rej_set(rej, "missing_field",
			"item is missing: wrap the relayed item as \"item\"");
		return false;
	}
	if (!json_is_object(item)) {
		rej_set(rej, "invalid_field", "item must be an object");
		return false;
	}
	const json_t *k1 = json_object_get(item, "key1");
	/* at least one of key1 and key2 (contract 5): the discard rule works
	 * from either */
	if (!need_string(item, "uuId", "item.uuId",
			 "every relayed item has Pruvan's uuId", rej) ||
	    ((!k1 || json_is_null(k1) || json_object_get(item, "key2")) &&
	     !need_string(item, "key2", "item.key2",
			  "key2 is the work order number of the item (or "
			  "give key1, Pruvan's key of the order)",
			  rej)))
		return false;
	if (k1 && !json_is_null(k1) && !key1_string(k1, key1, key1_size)) {
		rej_set(rej, "invalid_field",
			"item.key1 must be a non-empty string or an integer "
			"(Pruvan's key of the order)");
		return false;
	}
	return true;
}

/* The inbound item of a checked root (borrowed), or NULL when out of
 * memory. key1 is the item's key1 as text, when it has one. */
static pb_inbound_t *inbound_new(const json_t *root, const json_t *item,
				 const char *key1)
{
	pb_inbound_t *in = calloc(1, sizeof(*in));
	if (!in)
		return NULL;
	const json_t *k1 = json_object_get(item, "key1");
	bool has_key1 = k1 && !json_is_null(k1);
	in->account = pb_strdup(str_member(root, "account"));
	in->kind = pb_strdup(str_member(root, "kind"));
	in->uuid = pb_strdup(str_member(item, "uuId"));
	in->key2 = pb_strdup(str_member(item, "key2"));
	in->key1 = has_key1 ? pb_strdup(key1) : NULL;
	in->item = json_incref((json_t *)item);
	in->source_wo_id =
	    pb_rules_source_id_text(json_object_get(item, "source_wo_id"));
	in->source_wo_number =
	    pb_rules_source_id_text(json_object_get(item, "source_wo_number"));
	if (!in->account || !in->kind || !in->uuid ||
	    (!in->key2 && str_member(item, "key2")) ||
	    (has_key1 && !in->key1)) {
		pb_inbound_destroy(in);
		return NULL;
	}
	return in;
}

pb_err_t pb_inbound_parse(const char *buf, size_t len, pb_inbound_t **in_out,
			  pb_rejection_t *rej)
{
	json_t *root =
	    load_object(buf, len, "item", "uuId", "item", "key2", rej);
	if (!root)
		return PB_ERR_INVALID;
	const json_t *item = json_object_get(root, "item");

	pb_err_t err = PB_ERR_INVALID;
	char key1[PB_RULES_MAX_ID + 1];
	if (!check_account_kind(root, rej) ||
	    !check_item(item, key1, sizeof(key1), rej))
		goto out;
	pb_inbound_t *in = inbound_new(root, item, key1);
	err = parse_end(in != NULL, rej);
	if (!err)
		*in_out = in;
out:
	json_decref(root);
	return err;
}
