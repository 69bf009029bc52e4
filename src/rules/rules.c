/*
 * rules.c: Pruvan's integration rules (spec/pruvan-remote-fields.txt,
 * contract sections 3-5) as one pure decision function.
 *
 * pb_rules_decide() turns (event, account, Auto-Admin switch, order state)
 * into a decision: push this work order, push nothing (unchanged), stale,
 * or rejected with a reason. The steps, in order, each a rule of the spec:
 *   1. unknown account; 2. tombstone (deleted orders stay deleted);
 *   3. staleness (version when both sides have one, else occurredAt);
 *   4. delete (only where allowDeletes);
 *   5. create vs update against the state (already_created, unknown_order);
 *   6. field classes (the field_specs table): every order field is
 *      remote-owned, shared, identity/address or assignedTo; the names no
 *      Pruvan source knows (projectOptions, projectInstructions) are taken
 *      under their Pruvan names with a warning; anything else is dropped
 *      with a warning unless the account lists it in extraFields (then
 *      shared); values are type-checked and normalised (dates to
 *      Pruvan's form, state to upper case, status to the table's
 *      lower-case name);
 *   7. status against the compiled status table, by statusPolicy;
 *   8. assignedTo (internal accounts only, configured users or ~all~);
 *   9. Client Status suggestion from the table;
 *  10. create minimum (address, one service);
 *  11. update: changed fields only, shared fields withheld while
 *      Auto-Admin is OFF (identity and address fields are sent whatever
 *      Auto-Admin says).
 *
 * Invariants: never does I/O, logs, reads the clock or mutates a global;
 * borrowed inputs are never modified (state and event JSON are copied
 * before anything is merged into them); every json_t created here is
 * either released or handed to the caller in *out exactly once; warnings
 * are capped (PB_MAX_WARNINGS) so a hostile event cannot grow the outcome
 * record without bound.
 */
#include "rules_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jtext.h"
#include "util.h"

#define PB_MAX_WARNINGS 32
#define PB_MAX_RESPONSE (1024 * 1024)

/* ---- status table ---------------------------------------------------- */

const pb_status_rule_t *pb_status_rule_find(pb_action_t action,
					    const char *status)
{
	for (size_t i = 0; i < pb_status_table_len; i++)
		if (pb_status_table[i].action == action &&
		    !strcmp(pb_status_table[i].status, status))
			return &pb_status_table[i];
	return NULL;
}

static bool status_allowed(const pb_status_rule_t *row,
			   const pb_account_t *acct)
{
	switch (row->allowed) {
	case PB_STATUS_ALLOW_BOTH:
		return true;
	case PB_STATUS_ALLOW_INTERNAL:
		return acct->mode == PB_MODE_INTERNAL;
	case PB_STATUS_ALLOW_CAUTION:
		return acct->allow_deletes;
	case PB_STATUS_ALLOW_NO:
		break;
	}
	return false;
}

/* ---- field classes --------------------------------------------------- */

typedef enum {
	CLS_IDENTITY, /* workOrderNumber: always sent */
	CLS_REMOTE,   /* remote-owned: always sent when changed */
	CLS_SHARED,   /* withheld on update while Auto-Admin is OFF */
	CLS_ADDRESS,  /* identity and address: sent when changed, whatever
			 Auto-Admin says (Pruvan lets integrations update
			 them and keeps them out of Auto-Admin) */
	CLS_ASSIGNED, /* internal remote system's to make: always sent */
} field_class_t;

typedef enum {
	T_TEXT,	    /* string */
	T_NONEMPTY, /* non-empty string (address1, city) */
	T_DATE,	    /* RFC 3339 or Pruvan form -> Pruvan form */
	T_ANY,	    /* any JSON value, passed as given */
	T_SCALAR,   /* string or number, passed as given (correlation ids) */
	T_COORD,    /* number or numeric string within +-limit (GPS) */
	T_SERVICES, /* array of objects with serviceName */
	T_STATE,    /* US state code -> upper case */
	T_ZIP,	    /* 12345 or 12345-6789 */
	T_SPECIAL,  /* status, assignedTo: handled by their own rules */
} field_type_t;

/*
 * One row per field name Pruvan's API knows (contract section 4). A row
 * with last > 0 is a family: the name is a prefix followed by a number in
 * [first, last] (attribute7..attribute30). A row with renamed_to names a
 * field no Pruvan source knows that is accepted under its Pruvan name
 * with a warning (renamed_field).
 */
typedef struct {
	const char *name;
	field_class_t cls;
	field_type_t type;
	int first, last;	/* family range, when last > 0 */
	double limit;		/* T_COORD: largest absolute value */
	const char *renamed_to; /* accepted as this field, with a warning */
} field_spec_t;

static const field_spec_t field_specs[] = {
    {"workOrderNumber", CLS_IDENTITY, T_TEXT, 0, 0, 0, NULL},
    {"clientDueDate", CLS_REMOTE, T_DATE, 0, 0, 0, NULL},
    {"clientStatus", CLS_REMOTE, T_TEXT, 0, 0, 0, NULL},
    {"clientInstructions", CLS_REMOTE, T_TEXT, 0, 0, 0, NULL},
    {"source_wo_id", CLS_REMOTE, T_SCALAR, 0, 0, 0, NULL},
    {"source_wo_number", CLS_REMOTE, T_SCALAR, 0, 0, 0, NULL},
    {"source_wo_provider", CLS_REMOTE, T_SCALAR, 0, 0, 0, NULL},
    {"attribute", CLS_REMOTE, T_SCALAR, 7, 30, 0, NULL},
    {"description", CLS_SHARED, T_TEXT, 0, 0, 0, NULL},
    {"reference", CLS_SHARED, T_TEXT, 0, 0, 0, NULL},
    {"workOrderInfo", CLS_SHARED, T_TEXT, 0, 0, 0, NULL},
    {"options", CLS_SHARED, T_ANY, 0, 0, 0, NULL},
    {"instructions", CLS_SHARED, T_ANY, 0, 0, 0, NULL},
    {"status", CLS_SHARED, T_SPECIAL, 0, 0, 0, NULL},
    {"dueDate", CLS_SHARED, T_DATE, 0, 0, 0, NULL},
    {"startDate", CLS_SHARED, T_DATE, 0, 0, 0, NULL},
    {"services", CLS_SHARED, T_SERVICES, 0, 0, 0, NULL},
    {"projectOptions", CLS_SHARED, T_ANY, 0, 0, 0, "options"},
    {"projectInstructions", CLS_SHARED, T_ANY, 0, 0, 0, "instructions"},
    {"address1", CLS_ADDRESS, T_NONEMPTY, 0, 0, 0, NULL},
    {"address2", CLS_ADDRESS, T_TEXT, 0, 0, 0, NULL},
    {"city", CLS_ADDRESS, T_NONEMPTY, 0, 0, 0, NULL},
    {"state", CLS_ADDRESS, T_STATE, 0, 0, 0, NULL},
    {"zip", CLS_ADDRESS, T_ZIP, 0, 0, 0, NULL},
    {"country", CLS_ADDRESS, T_TEXT, 0, 0, 0, NULL},
    {"gpsLatitude", CLS_ADDRESS, T_COORD, 0, 0, 90.0, NULL},
    {"gpsLongitude", CLS_ADDRESS, T_COORD, 0, 0, 180.0, NULL},
    {"assignedTo", CLS_ASSIGNED, T_SPECIAL, 0, 0, 0, NULL},
};

/* Whether name is prefix followed by a decimal number in [first, last]
 * without leading zeros. */
static bool family_member(const field_spec_t *fs, const char *name)
{
	size_t pl = strlen(fs->name);
	if (strncmp(name, fs->name, pl) != 0)
		return false;
	const char *d = name + pl;
	if (!*d || *d == '0' || strlen(d) > 3)
		return false;
	int n = 0;
	for (; *d; d++) {
		if (*d < '0' || *d > '9')
			return false;
		n = n * 10 + (*d - '0');
	}
	return n >= fs->first && n <= fs->last;
}

/* The spec of field name, NULL for none. Looked up for every field of
 * every event: a row whose first letter differs is passed over without a
 * call. */
static const field_spec_t *field_spec(const char *name)
{
	for (size_t i = 0; i < sizeof(field_specs) / sizeof(field_specs[0]);
	     i++) {
		const field_spec_t *fs = &field_specs[i];
		if (fs->name[0] != name[0])
			continue;
		if (fs->last > 0 ? family_member(fs, name)
				 : !strcmp(fs->name, name))
			return fs;
	}
	return NULL;
}

static bool is_extra_field(const pb_account_t *acct, const char *name)
{
	for (size_t i = 0; i < acct->extra_fields_len; i++)
		if (acct->extra_fields[i] &&
		    !strcmp(acct->extra_fields[i], name))
			return true;
	return false;
}

static bool is_user(const pb_account_t *acct, const char *name)
{
	for (size_t i = 0; name && i < acct->users_len; i++)
		if (acct->users[i] && !strcmp(acct->users[i], name))
			return true;
	return false;
}

/* Pruvan's assignee for "every sub-user of the account". */
#define PB_ASSIGN_ALL "~all~"

/* Whether an internal account may assign an order to name. */
static bool assignable(const pb_account_t *acct, const char *name)
{
	return name && (!strcmp(name, PB_ASSIGN_ALL) || is_user(acct, name));
}

/* The 50 states, DC, the territories and the military "states". */
static const char *const us_states[] = {
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID",
    "IL", "IN", "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS",
    "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK",
    "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV",
    "WI", "WY", "DC", "AS", "GU", "MP", "PR", "VI", "UM", "AA", "AE", "AP",
};

/* Upper-cased state code into out[3], or false when not a US code. */
static bool us_state(const char *s, char out[3])
{
	if (strlen(s) != 2)
		return false;
	out[0] = (char)toupper((unsigned char)s[0]);
	out[1] = (char)toupper((unsigned char)s[1]);
	out[2] = '\0';
	for (size_t i = 0; i < sizeof(us_states) / sizeof(us_states[0]); i++)
		if (!strcmp(us_states[i], out))
			return true;
	return false;
}

static bool us_zip(const char *s)
{
	size_t n = strlen(s);
	if (n != 5 && n != 10)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (i == 5) {
			if (s[i] != '-')
				return false;
		} else if (s[i] < '0' || s[i] > '9') {
			return false;
		}
	}
	return true;
}

/* ---- decision helpers ------------------------------------------------ */

__attribute__((format(printf, 3, 4))) static void
reject(pb_decision_t *d, const char *reason, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pb_format_text(d->message, sizeof(d->message), fmt, ap);
	va_end(ap);
	d->verdict = PB_VERDICT_REJECTED;
	d->reason = reason;
	json_decref(d->work_order);
	free(d->pushed_after);
	free(d->work_order_text);
	d->work_order = NULL;
	d->pushed_after = NULL;
	d->work_order_text = NULL;
}

__attribute__((format(printf, 3, 4))) static void
warn(pb_decision_t *d, const char *code, const char *fmt, ...)
{
	if (json_array_size(d->warnings) >= PB_MAX_WARNINGS)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	pb_format_text(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pb_decision_warn(d, code, msg);
}

/* Append v (taken) to the array *arr, made on first use. */
static void append_lazy(json_t **arr, json_t *v)
{
	if (!*arr)
		*arr = json_array();
	json_array_append_new(*arr, v); /* v is released if *arr is NULL */
}

void pb_decision_warn(pb_decision_t *d, const char *code, const char *message)
{
	append_lazy(&d->warnings,
		    json_pack("{s:s, s:s}", "code", code, "message", message));
}

static const char *mode_name(const pb_account_t *acct)
{
	return acct->mode == PB_MODE_INTERNAL ? "internal" : "external";
}

/*
 * Replace <old> and <new> in tmpl (the table's suggestion) into out;
 * truncates rather than overflows.
 */
static void fill_suggestion(const char *tmpl, const char *old_s,
			    const char *new_s, char *out, size_t size)
{
	size_t o = 0;
	out[0] = '\0';
	for (const char *p = tmpl; *p && o + 1 < size;) {
		const char *rep = NULL;
		size_t skip = 0;
		if (!strncmp(p, "<old>", 5)) {
			rep = old_s;
			skip = 5;
		} else if (!strncmp(p, "<new>", 5)) {
			rep = new_s;
			skip = 5;
		}
		if (rep) {
			for (; *rep && o + 1 < size; rep++)
				out[o++] = *rep;
			p += skip;
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
}

static int cmp_json_strings(const void *a, const void *b)
{
	return strcmp(json_string_value(*(json_t *const *)a),
		      json_string_value(*(json_t *const *)b));
}

/* Sort the withheld names so outcome records are stable. */
static void sort_withheld(pb_decision_t *d)
{
	size_t n = json_array_size(d->withheld);
	if (n < 2)
		return;
	json_t **v = calloc(n, sizeof(*v));
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(d->withheld, i));
	qsort(v, n, sizeof(*v), cmp_json_strings);
	json_array_clear(d->withheld);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(d->withheld, v[i]);
	free(v);
}

/* The state's last pushed fields, split (pb_jt_members_split); false when
 * there are none (or the stored text is not an object). */
static bool pushed_split(const pb_order_state_t *st, pb_jt_members_t *ms)
{
	ms->m = NULL;
	ms->n = 0;
	return st && st->pushed &&
	       pb_jt_members_split(st->pushed, st->pushed_len, ms);
}

/* pushed_after = the last pushed fields (may be NULL), overlaid with wo: the
 * text of the merged object with sorted keys. Nothing is parsed into a tree
 * or written again but what wo holds: reading, merging and writing the
 * whole state for every event was a fifth of the worker's CPU. */
static char *merge_pushed(const pb_jt_members_t *pushed, const json_t *wo)
{
	char *w = pb_jt_dumps(wo, true);
	if (!w || !pushed)
		return w;
	pb_jt_members_t wm;
	char *out = pb_jt_members_split(w, strlen(w), &wm)
			? pb_jt_members_merge(pushed, &wm)
			: NULL;
	pb_jt_members_free(&wm);
	free(w);
	return out;
}

/* merge_pushed's text, with wo written once: its own text (the request,
 * as pb_jt_dumps(wo, false) writes it) into *wo_text and its members
 * merged from that, not dumped sorted and split again (two writes and a
 * read of every work order were a tenth of the rules' CPU). */
static char *merge_pushed_once(const pb_jt_members_t *pushed, const json_t *wo,
			       char **wo_text)
{
	pb_jt_members_t wm;
	pb_jtext_t aux = {0};
	char *out = NULL;
	if (pb_jt_members_of(wo, wo_text, &wm, &aux)) {
		out = pb_jt_members_merge(pushed, &wm);
		pb_jt_members_free(&wm);
	}
	free(aux.p);
	if (out)
		return out;
	free(*wo_text); /* out of memory: the long way */
	*wo_text = NULL;
	return merge_pushed(pushed, wo);
}

/* Whether a last pushed value (its text) equals v: whether it is the text
 * pb_jt_json writes for v. The stored fields were all written that way
 * (pb_jt_members_merge copies values as they are), so equal values have
 * equal text; a value stored in any other form counts as changed and is
 * sent again, never skipped. */
static bool pushed_equal(const pb_jt_member_t *prev, const json_t *v,
			 pb_jtext_t *scratch)
{
	scratch->len = 0;
	scratch->bad = false;
	pb_jt_json(scratch, v, true);
	return !scratch->bad && scratch->len == prev->vlen &&
	       !memcmp(scratch->p, prev->val, prev->vlen);
}

/* ---- field normalisation --------------------------------------------- */

/* Fields are set under names that are valid UTF-8 without a NUL (the
 * table's, or an event's own, which every JSON reader of the worker
 * checked), so their names are not checked again (json_object_set_new
 * validated every name it was given: a sixth of building a work order). */

/* A GPS coordinate: a number, or a string holding one, within +-limit. */
static bool coord_ok(const json_t *v, double limit)
{
	double x;
	if (json_is_number(v)) {
		x = json_number_value(v);
	} else {
		const char *s = json_string_value(v);
		char *end;
		if (!s || !*s || strlen(s) > 32 ||
		    !strchr("+-.0123456789", s[0]))
			return false; /* no blanks, inf, nan */
		x = strtod(s, &end);
		if (*end)
			return false;
	}
	return x >= -limit && x <= limit; /* false for NaN too */
}

/* The serviceName checks of a services array; counts the services with a
 * name and marks a service without one. False when d was rejected. */
static bool services_ok(pb_decision_t *d, const json_t *v, bool *services_bad,
			size_t *services_good)
{
	if (!json_is_array(v)) {
		reject(d, "invalid_field",
		       "services must be an array of "
		       "{\"serviceName\": ...} objects");
		return false;
	}
	size_t i;
	const json_t *svc;
	json_array_foreach(v, i, svc)
	{
		if (!json_is_object(svc)) {
			reject(d, "invalid_field",
			       "services[%zu] must be an object with a "
			       "serviceName",
			       i);
			return false;
		}
		const json_t *sn = json_object_get(svc, "serviceName");
		if (sn && !json_is_string(sn)) {
			reject(d, "invalid_field",
			       "services[%zu].serviceName must be a string", i);
			return false;
		}
		if (sn && json_string_length(sn) > 0)
			(*services_good)++;
		else
			*services_bad = true;
	}
	return true;
}

/*
 * An event's value as the decision keeps it: an object or array deep
 * copied, so that changing the decision's containers never reaches the
 * borrowed event; a string, number or literal shared (a reference, not a
 * copy: nothing changes one in place, and copying every field was a
 * tenth of the rules' CPU).
 */
static json_t *field_value(const json_t *v)
{
	if (json_is_object(v) || json_is_array(v))
		return json_deep_copy(v);
	return json_incref((json_t *)v);
}

/* The string-valued field types (text, non-empty, date, state, zip): s is
 * the value's string or NULL when it is not one. False when d was
 * rejected. */
static bool normalise_string(pb_decision_t *d, const field_spec_t *fs,
			     const char *name, const json_t *v, const char *s,
			     json_t *fields)
{
	if (!s) {
		reject(d, "invalid_field", "order.%s must be a string", name);
		return false;
	}
	switch (fs->type) {
	case T_NONEMPTY:
		if (!*s) {
			reject(d, "invalid_address",
			       "%s \"\" is empty: a US address needs a street "
			       "address (address1) and a city",
			       name);
			return false;
		}
		break;
	case T_DATE: {
		char buf[32];
		if (!pb_date_to_pruvan(s, buf, sizeof(buf))) {
			reject(d, "invalid_date",
			       "%s \"%.64s\" is not a valid date: use RFC 3339 "
			       "(2020-05-28T12:00:00-05:00) or Pruvan's form "
			       "(2020-05-28 1200 -5)",
			       name, s);
			return false;
		}
		json_object_set_new_nocheck(fields, name, json_string(buf));
		return true;
	}
	case T_STATE: {
		char st[3];
		if (!us_state(s, st)) {
			reject(d, "invalid_address",
			       "state \"%.32s\" is not a US state code: use "
			       "the two-letter code, e.g. TX",
			       s);
			return false;
		}
		json_object_set_new_nocheck(fields, name, json_string(st));
		return true;
	}
	case T_ZIP:
		if (!us_zip(s)) {
			reject(d, "invalid_address",
			       "zip \"%.32s\" is not a US ZIP code: use 5 "
			       "digits or ZIP+4 (12345-6789)",
			       s);
			return false;
		}
		break;
	default:
		break;
	}
	/* the event's own string, shared, unless it holds a NUL that the C
	 * string (and so a copy of it) stops at */
	if (json_string_length(v) == strlen(s))
		json_object_set_new_nocheck(fields, name, field_value(v));
	else
		json_object_set_new_nocheck(fields, name, json_string(s));
	return true;
}

/*
 * Validate and normalise one known, non-special field, under the name
 * name (a family member's or a renamed field's Pruvan name), into fields
 * (field_value: the event is borrowed). False when d was rejected.
 */
static bool normalise_field(pb_decision_t *d, const field_spec_t *fs,
			    const char *name, const json_t *v, json_t *fields,
			    bool *services_bad, size_t *services_good)
{
	const char *s = json_string_value(v);
	switch (fs->type) {
	case T_ANY:
		json_object_set_new_nocheck(fields, name, field_value(v));
		return true;
	case T_SCALAR:
		if (!json_is_string(v) && !json_is_number(v)) {
			reject(d, "invalid_field",
			       "order.%s must be a string or a number", name);
			return false;
		}
		json_object_set_new_nocheck(fields, name, field_value(v));
		return true;
	case T_COORD:
		if (!coord_ok(v, fs->limit)) {
			reject(d, "invalid_field",
			       "order.%s must be a number (or a string "
			       "holding one) between -%g and %g: decimal "
			       "degrees, e.g. 30.5083",
			       name, fs->limit, fs->limit);
			return false;
		}
		json_object_set_new_nocheck(fields, name, field_value(v));
		return true;
	case T_SERVICES:
		if (!services_ok(d, v, services_bad, services_good))
			return false;
		json_object_set_new_nocheck(fields, name, field_value(v));
		return true;
	case T_TEXT:
	case T_NONEMPTY:
	case T_DATE:
	case T_STATE:
	case T_ZIP:
		break;
	case T_SPECIAL:
		return true;
	}
	return normalise_string(d, fs, name, v, s, fields);
}

/* The status as the table names it (lower case, aliases folded). */
static void status_key(const char *s, char *out, size_t size)
{
	size_t n = strlen(s);
	if (n >= size) {
		out[0] = '\0'; /* too long to be any table status */
		return;
	}
	for (size_t i = 0; i <= n; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	if (!strcmp(out, "cancel") || !strcmp(out, "cancelled"))
		pb_strlcpy(out, "canceled", size);
}

/* ---- the decision ---------------------------------------------------- */

static void decide_delete(const pb_event_t *ev, const pb_account_t *acct,
			  const pb_order_state_t *st, pb_decision_t *d)
{
	if (!acct->allow_deletes) {
		reject(d, "delete_not_allowed",
		       "account \"%.64s\" does not allow deletes: set "
		       "allowDeletes to true for it in the configuration, or "
		       "do not send delete events",
		       acct->name ? acct->name : "");
		return;
	}
	const json_t *cs = json_object_get(ev->order, "clientStatus");
	if (cs && (!json_is_string(cs) || json_string_length(cs) == 0)) {
		reject(d, "invalid_field",
		       "order.clientStatus must be a non-empty string");
		return;
	}
	d->push_action = PB_ACTION_DELETE;
	d->work_order = json_pack("{s:s, s:s, s:s}", "workOrderNumber",
				  ev->work_order_number, "status", "deleted",
				  "clientStatus",
				  cs ? json_string_value(cs) : "Order Deleted");
	pb_jt_members_t pm;
	bool have = pushed_split(st, &pm);
	d->pushed_after = merge_pushed(have ? &pm : NULL, d->work_order);
	pb_jt_members_free(&pm);
}

/*
 * Step 6: every order field into fields under its Pruvan name, checked and
 * normalised; unknown fields dropped with a warning unless they are the
 * account's extraFields; renamed fields (projectOptions...) taken under
 * their Pruvan name with a warning, unless the order also carries that
 * name (then the Pruvan name wins). False when d was rejected.
 */
static bool classify_fields(const pb_event_t *ev, const pb_account_t *acct,
			    pb_decision_t *d, json_t *fields,
			    bool *services_bad, size_t *services_good)
{
	const char *key;
	json_t *v;
	json_object_foreach(ev->order, key, v)
	{
		const field_spec_t *fs = field_spec(key);
		const char *name = key;
		if (!fs) {
			if (is_extra_field(acct, key))
				json_object_set_new_nocheck(fields, key,
							    field_value(v));
			else
				warn(
				    d, "unknown_field",
				    "order.%.64s is not a Pruvan field this "
				    "bridge sends: dropped (list it in the "
				    "account's extraFields to pass it through)",
				    key);
			continue;
		}
		if (fs->renamed_to) {
			name = fs->renamed_to;
			if (json_object_get(ev->order, name)) {
				warn(d, "renamed_field",
				     "order.%s is not a Pruvan field: dropped, "
				     "since the order also carries its Pruvan "
				     "name %s",
				     key, name);
				continue;
			}
			warn(d, "renamed_field",
			     "order.%s is not a Pruvan field: sent as %s "
			     "(rename it at the source)",
			     key, name);
		}
		if (!normalise_field(d, fs, name, v, fields, services_bad,
				     services_good))
			return false;
	}
	return true;
}

/*
 * Steps 5 to 11 for a create or an update, as one small function a step.
 * The working set the steps share lives in upsert_t; each step returns
 * false when it rejected d (or, for the last one, decided unchanged),
 * and decide_upsert then releases what the steps built.
 */
typedef struct {
	const pb_event_t *ev;
	const pb_account_t *acct;
	bool auto_admin;
	pb_decision_t *d;
	pb_jt_members_t pm;	       /* the split last pushed fields */
	const pb_jt_members_t *pushed; /* &pm, or NULL when none count */
	char *pushed_user;	       /* last pushed assignedTo, owned */
	pb_jtext_t scratch;	       /* for pushed_equal */
	bool creating;		       /* a create the order has not had */
	bool unknown;		       /* an update of an order not known */
	pb_action_t table_action;      /* the status table's action */
	json_t *fields;		       /* checked, normalised fields */
	bool services_bad;	       /* a service without serviceName */
	size_t services_good;	       /* services with a serviceName */
	const char *status;	       /* table name, when allowed */
	bool has_assigned;	       /* assignedTo is set by this event */
	const char *assigned;	       /* its user; NULL = unassigned */
} upsert_t;

/* Step 5: create or update, against what the state knows of the order. */
static void upsert_kind(upsert_t *u, const pb_order_state_t *st)
{
	const pb_event_t *ev = u->ev;
	u->pushed = pushed_split(st, &u->pm) ? &u->pm : NULL;
	u->creating = ev->action == PB_ACTION_CREATE && (!st || !st->created);
	if (ev->action == PB_ACTION_CREATE && !u->creating)
		warn(u->d, "already_created",
		     "order %.64s was already created: this create is applied "
		     "as an update",
		     ev->work_order_number);
	if (ev->action == PB_ACTION_UPDATE &&
	    (!st || (!st->created && !u->pushed))) {
		u->unknown = true;
		u->pushed = NULL;
		warn(u->d, "unknown_order",
		     "order %.64s has no record here: the update is pushed as "
		     "it is and its outcome follows Pruvan's counts",
		     ev->work_order_number);
	}
	u->table_action = u->creating ? PB_ACTION_CREATE : PB_ACTION_UPDATE;
	u->d->push_action = u->table_action;
	u->d->unknown_order = u->unknown;
}

/* Step 7: the status against the table, by the account's statusPolicy. */
static bool upsert_status(upsert_t *u)
{
	const pb_account_t *acct = u->acct;
	const json_t *sv = json_object_get(u->ev->order, "status");
	if (!sv)
		return true;
	if (!json_is_string(sv) || json_string_length(sv) == 0) {
		reject(u->d, "invalid_field",
		       "order.status must be a non-empty string: a status of "
		       "spec/status-matrix.csv, or leave it out");
		return false;
	}
	char k[32];
	status_key(json_string_value(sv), k, sizeof(k));
	const pb_status_rule_t *row =
	    k[0] ? pb_status_rule_find(u->table_action, k) : NULL;
	if (row && status_allowed(row, acct)) {
		u->status = row->status;
		json_object_set_new_nocheck(u->fields, "status",
					    json_string(u->status));
		return true;
	}
	const char *notes = row ? row->notes
				: "not a Pruvan status (see "
				  "spec/status-matrix.csv)";
	if (acct->status_policy == PB_STATUS_POLICY_REJECT) {
		reject(u->d, "status_not_allowed",
		       "status %.32s is not allowed on %s for %s "
		       "integrations: %s",
		       json_string_value(sv), pb_action_name(u->table_action),
		       mode_name(acct), notes);
		return false;
	}
	warn(u->d, "status_dropped",
	     "status %.32s is not allowed on %s for %s integrations: %s",
	     json_string_value(sv), pb_action_name(u->table_action),
	     mode_name(acct), notes);
	return true;
}

/* Step 8a: the event's own assignedTo (internal accounts only). */
static bool upsert_assigned_to(upsert_t *u)
{
	const pb_account_t *acct = u->acct;
	const json_t *av = json_object_get(u->ev->order, "assignedTo");
	const pb_jt_member_t *pu =
	    u->pushed ? pb_jt_members_find(u->pushed, "assignedTo") : NULL;
	if (pu)
		u->pushed_user = pb_jt_string_text(pu->val, pu->vlen, NULL);
	if (!av)
		return true;
	if (acct->mode == PB_MODE_EXTERNAL) {
		warn(u->d, "assigned_to_dropped",
		     "assignedTo is dropped: external integrations do not "
		     "assign orders (the account's users or workflow do)");
		return true;
	}
	const char *a = json_string_value(av);
	if (json_is_null(av) || (a && strcmp(a, "unassigned") == 0)) {
		u->has_assigned = true;
	} else if (assignable(acct, a)) {
		u->has_assigned = true;
		u->assigned = a;
	} else {
		reject(u->d, "assigned_to_not_allowed",
		       "assignedTo \"%.64s\" is not a user of account "
		       "\"%.64s\": name one of the account's users, "
		       "\"~all~\" (every sub-user) or \"unassigned\"",
		       a ? a : "(not a string)", acct->name ? acct->name : "");
		return false;
	}
	return true;
}

static bool status_is(const upsert_t *u, const char *name)
{
	return u->status && strcmp(u->status, name) == 0;
}

/* Step 8b: the statuses unassigned and assigned against assignedTo. */
static bool upsert_assignment(upsert_t *u)
{
	const pb_account_t *acct = u->acct;
	if (status_is(u, "unassigned")) {
		if (u->has_assigned && u->assigned) {
			reject(u->d, "assigned_to_not_allowed",
			       "status unassigned contradicts assignedTo "
			       "\"%.64s\": send one or the other",
			       u->assigned);
			return false;
		}
		u->has_assigned = true;
	}
	if (status_is(u, "assigned")) {
		const char *who =
		    u->has_assigned ? u->assigned : u->pushed_user;
		if (!assignable(acct, who)) {
			reject(u->d, "assigned_to_not_allowed",
			       "status assigned needs assignedTo naming one of "
			       "the users of account \"%.64s\"",
			       acct->name ? acct->name : "");
			return false;
		}
	}
	if (u->has_assigned)
		json_object_set_new_nocheck(
		    u->fields, "assignedTo",
		    u->assigned ? json_string(u->assigned) : json_null());
	return true;
}

/* Step 9: the table's Client Status suggestion (a remote-owned field). */
static void upsert_client_status(upsert_t *u)
{
	if (json_object_get(u->ev->order, "clientStatus") ||
	    (!u->creating && !u->status))
		return;
	const pb_status_rule_t *row =
	    pb_status_rule_find(u->table_action, u->status ? u->status : "");
	if (!row || !status_allowed(row, u->acct) || !row->suggestion[0])
		return;
	char buf[512];
	const char *old_s = u->pushed_user ? u->pushed_user : "unassigned";
	const char *new_s = old_s;
	if (u->has_assigned)
		new_s = u->assigned ? u->assigned : "unassigned";
	fill_suggestion(row->suggestion, old_s, new_s, buf, sizeof(buf));
	json_object_set_new_nocheck(u->fields, "clientStatus",
				    json_string(buf));
}

/* Step 10: what a create needs (a US address, one named service). */
static bool upsert_minimum(upsert_t *u)
{
	if (u->creating) {
		static const char *const need[] = {"address1", "city", "state",
						   "zip"};
		for (size_t i = 0; i < 4; i++) {
			if (!json_object_get(u->fields, need[i])) {
				reject(u->d, "invalid_address",
				       "%s is missing: a create needs a US "
				       "address (address1, city, state, zip)",
				       need[i]);
				return false;
			}
		}
		if (u->services_good == 0) {
			reject(u->d, "no_services",
			       "the order has no service: a create needs at "
			       "least one service with a serviceName");
			return false;
		}
	}
	if (u->services_bad) {
		reject(u->d, "invalid_field",
		       "every service needs a non-empty serviceName");
		return false;
	}
	return true;
}

/* Whether an update sends field key (value v): changed since the last push,
 * and not a shared field withheld while Auto-Admin is OFF (then it is listed
 * in d->withheld). A create sends every field. */
static bool upsert_sends(upsert_t *u, const char *key, const json_t *v)
{
	if (u->creating)
		return true;
	const pb_jt_member_t *prev =
	    u->pushed ? pb_jt_members_find(u->pushed, key) : NULL;
	if (!u->unknown && prev && pushed_equal(prev, v, &u->scratch))
		return false;
	const field_spec_t *fs = field_spec(key);
	field_class_t cls = fs ? fs->cls : CLS_SHARED;
	/* A permitted delete is the remote system's call (allowDeletes), not
	 * a shared-field edit. */
	bool exempt = strcmp(key, "status") == 0 && status_is(u, "deleted");
	if (cls == CLS_SHARED && !u->auto_admin && !exempt) {
		append_lazy(&u->d->withheld, json_string(key));
		return false;
	}
	return true;
}

/* Step 11: the work order sent, or unchanged when nothing is to be sent. */
static void upsert_work_order(upsert_t *u)
{
	pb_decision_t *d = u->d;
	const char *key;
	json_t *v;
	json_t *wo = json_object();
	json_object_set_new_nocheck(wo, "workOrderNumber",
				    json_string(u->ev->work_order_number));
	json_object_foreach(u->fields, key, v)
	{
		if (strcmp(key, "workOrderNumber") != 0 &&
		    upsert_sends(u, key, v))
			json_object_set_nocheck(wo, key, v);
	}
	sort_withheld(d);
	if (status_is(u, "deleted") && json_object_get(wo, "status"))
		d->push_action = PB_ACTION_DELETE;
	if (!u->creating && json_object_size(wo) <= 1) {
		d->verdict = PB_VERDICT_UNCHANGED;
		snprintf(d->message, sizeof(d->message), "%s",
			 json_array_size(d->withheld) > 0
			     ? "nothing to send: the only changed fields "
			       "are shared fields withheld while "
			       "Auto-Admin is OFF"
			     : "nothing changed since the last push");
		json_decref(wo);
		return;
	}
	d->pushed_after = merge_pushed_once(u->pushed, wo, &d->work_order_text);
	d->work_order = wo;
}

static void decide_upsert(const pb_event_t *ev, const pb_account_t *acct,
			  bool auto_admin, const pb_order_state_t *st,
			  pb_decision_t *d)
{
	upsert_t u = {.ev = ev, .acct = acct, .auto_admin = auto_admin, .d = d};
	upsert_kind(&u, st);
	u.fields = json_object();
	if (classify_fields(ev, acct, d, u.fields, &u.services_bad,
			    &u.services_good) &&
	    upsert_status(&u) && upsert_assigned_to(&u) &&
	    upsert_assignment(&u)) {
		upsert_client_status(&u);
		if (upsert_minimum(&u))
			upsert_work_order(&u);
	}
	json_decref(u.fields);
	free(u.pushed_user);
	free(u.scratch.p);
	pb_jt_members_free(&u.pm);
}

void pb_rules_decide(const pb_event_t *ev, const pb_account_t *acct,
		     bool auto_admin, const pb_order_state_t *st,
		     pb_decision_t *out)
{
	memset(out, 0, sizeof(*out));
	out->verdict = PB_VERDICT_PUSH;
	out->push_action = ev->action;

	if (!acct) {
		reject(out, "unknown_account",
		       "account \"%.64s\" is not configured: add it under "
		       "accounts in the configuration",
		       ev->account ? ev->account : "");
		return;
	}
	if (st && st->deleted) {
		if (ev->action != PB_ACTION_DELETE) {
			reject(out, "order_deleted",
			       "order %.64s was deleted: a deleted order "
			       "cannot be created or updated again",
			       ev->work_order_number);
		} else if (!acct->allow_deletes) {
			reject(out, "delete_not_allowed",
			       "account \"%.64s\" does not allow deletes: set "
			       "allowDeletes to true for it in the "
			       "configuration",
			       acct->name ? acct->name : "");
		} else {
			out->verdict = PB_VERDICT_UNCHANGED;
			snprintf(out->message, sizeof(out->message),
				 "order %.64s is already deleted",
				 ev->work_order_number);
		}
		return;
	}
	if (st && st->has_version && ev->has_version) {
		if (ev->version < st->version) {
			out->verdict = PB_VERDICT_STALE;
			out->reason = "stale";
			snprintf(out->message, sizeof(out->message),
				 "version %lld is older than the last applied "
				 "version %lld of order %.64s",
				 (long long)ev->version, (long long)st->version,
				 ev->work_order_number);
			return;
		}
	} else if (st && st->occurred_ms && ev->occurred_ms < st->occurred_ms) {
		out->verdict = PB_VERDICT_STALE;
		out->reason = "stale";
		snprintf(out->message, sizeof(out->message),
			 "occurredAt is older than that of the last applied "
			 "event of order %.64s",
			 ev->work_order_number);
		return;
	}
	if (ev->action == PB_ACTION_DELETE)
		decide_delete(ev, acct, st, out);
	else
		decide_upsert(ev, acct, auto_admin, st, out);
}

bool pb_rules_may_push_delete(const pb_event_t *ev, const pb_account_t *acct)
{
	/* decide_delete and upsert_work_order are the only deletes; a
	 * status "deleted" is taken only where allowDeletes (its table row
	 * is "caution", status_allowed) */
	if (!ev || !acct || !acct->allow_deletes)
		return false;
	return ev->action == PB_ACTION_DELETE || !ev->order ||
	       json_object_get(ev->order, "status") != NULL;
}

void pb_decision_clear(pb_decision_t *d)
{
	if (!d)
		return;
	json_decref(d->work_order);
	free(d->pushed_after);
	free(d->work_order_text);
	json_decref(d->warnings);
	json_decref(d->withheld);
	d->work_order = d->warnings = d->withheld = NULL;
	d->pushed_after = NULL;
	d->work_order_text = NULL;
}

/* ---- Pruvan's answer ------------------------------------------------- */

static bool count_member(const json_t *resp, const char *key, int *out)
{
	const json_t *v = json_object_get(resp, key);
	if (!v) {
		*out = 0;
		return true;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > 1000000)
		return false;
	*out = (int)json_integer_value(v);
	return true;
}

pb_err_t pb_pruvan_response_parse(const char *body, size_t len,
				  pb_pruvan_result_t *out, char *errstr,
				  size_t errstr_size)
{
	if (!body || len > PB_MAX_RESPONSE)
		return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			       "response body missing or larger than 1 MiB");
	json_error_t jerr;
	json_t *root = json_loadb(body, len, 0, &jerr);
	if (!root)
		return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			       "response is not JSON: %.200s", jerr.text);
	pb_err_t err = PB_ERR_INVALID;
	pb_pruvan_result_t r;
	memset(&r, 0, sizeof(r));
	const json_t *resp = json_object_get(root, "response");
	const json_t *e = json_object_get(root, "error");
	if (!json_is_object(root)) {
		pb_errf(errstr, errstr_size, err, "response is not an object");
		goto out;
	}
	if (!resp || !e) {
		pb_errf(errstr, errstr_size, err, "response lacks \"%s\"",
			!resp ? "response" : "error");
		goto out;
	}
	if (json_is_string(e)) {
		r.has_error = json_string_length(e) > 0;
		pb_strlcpy(r.error, json_string_value(e), sizeof(r.error));
	} else if (!json_is_null(e)) {
		pb_errf(errstr, errstr_size, err,
			"\"error\" is neither null nor a string");
		goto out;
	}
	if (json_is_null(resp) && r.has_error) {
		/* Pruvan's failure shape: no counts, only the error. */
	} else if (!json_is_object(resp)) {
		pb_errf(errstr, errstr_size, err,
			"\"response\" is not an object");
		goto out;
	} else if (!count_member(resp, "created", &r.created) ||
		   !count_member(resp, "updated", &r.updated) ||
		   !count_member(resp, "deleted", &r.deleted)) {
		pb_errf(errstr, errstr_size, err,
			"\"response\" counts must be non-negative integers");
		goto out;
	}
	*out = r;
	err = PB_OK;
out:
	json_decref(root);
	return err;
}

const char *pb_rules_outcome_for(const pb_decision_t *d,
				 const pb_pruvan_result_t *r)
{
	if (!d || !r || r->has_error)
		return NULL;
	if (d->push_action == PB_ACTION_DELETE)
		return r->deleted > 0 ? "deleted" : NULL;
	/* An upsert's outcome is what Pruvan counted (it may apply a create
	 * as an update of an order it knows, and the reverse); when it
	 * counted both, the action sent decides. */
	bool created = r->created > 0, updated = r->updated > 0;
	if (created && (d->push_action == PB_ACTION_CREATE || !updated))
		return "created";
	return updated ? "updated" : NULL;
}

/* ---- relayed data ---------------------------------------------------- */

const char *pb_rules_inbound_discard_reason(bool order_deleted,
					    const char *learned_key1,
					    const char *item_key1,
					    bool key1_of_deleted_order)
{
	if (key1_of_deleted_order)
		return "order_deleted";
	if (!order_deleted)
		return NULL;
	if (!learned_key1 || !item_key1 || !strcmp(learned_key1, item_key1))
		return "order_deleted";
	return "recreated_after_delete";
}
