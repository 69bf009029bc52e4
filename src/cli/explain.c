/*
 * explain.c: `pruvan-bridge explain` (the contract is explain.h).
 *
 * Per input line: pb_event_parse, the order's state (from the events
 * explained before it, else from Redis with --with-state, else none),
 * pb_rules_decide exactly as the pipeline calls it, then the decision
 * described as JSON and printed. The in-memory state mirrors what the
 * pipeline records after a successful push (created, deleted, version,
 * occurredAt, the fields pushed) and after an unchanged update (version,
 * occurredAt), so a sequence of events explains as the worker would
 * apply it, Pruvan accepting every push.
 *
 * Never: push, produce, write to Redis (only pb_state_fetch_* and
 * pb_state_get_auto_admin, which read), print a secret (a work order
 * carries none: PushKeys live in the URL, which is never shown).
 */
#include "explain.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jtext.h"
#include "state.h"
#include "util.h"

/* ---- describing one decision ------------------------------------------ */

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static const char *expected_outcome(const pb_decision_t *d)
{
	switch (d->verdict) {
	case PB_VERDICT_PUSH:
		return d->push_action == PB_ACTION_CREATE   ? "created"
		       : d->push_action == PB_ACTION_DELETE ? "deleted"
							    : "updated";
	case PB_VERDICT_UNCHANGED:
		return "unchanged";
	case PB_VERDICT_STALE:
		return "stale";
	case PB_VERDICT_REJECTED:
		return "rejected";
	}
	return "rejected";
}

json_t *pb_explain_describe(long line, const pb_event_t *ev,
			    const pb_rejection_t *rej, const pb_decision_t *d,
			    bool auto_admin, const char *state)
{
	json_t *x = json_object();
	if (!x)
		return NULL;
	json_object_set_new(x, "line", json_integer(line));
	if (!ev) {
		json_object_set_new(x, "eventId", str_or_null(rej->event_id));
		json_object_set_new(x, "account", str_or_null(rej->account));
		json_object_set_new(x, "workOrderNumber",
				    str_or_null(rej->work_order_number));
		json_object_set_new(x, "action", json_null());
		json_object_set_new(x, "outcome", json_string("rejected"));
		json_object_set_new(x, "reason", str_or_null(rej->reason));
		json_object_set_new(x, "message", json_string(rej->message));
		json_object_set_new(x, "warnings", json_array());
		json_object_set_new(x, "withheld", json_array());
		return x;
	}
	json_object_set_new(x, "eventId", json_string(ev->event_id));
	json_object_set_new(x, "account", json_string(ev->account));
	json_object_set_new(x, "workOrderNumber",
			    json_string(ev->work_order_number));
	json_object_set_new(x, "action",
			    json_string(pb_action_name(ev->action)));
	if (!d) { /* a duplicate: decided before */
		json_object_set_new(x, "outcome", json_string("duplicate"));
		json_object_set_new(x, "reason", json_null());
		json_object_set_new(x, "message",
				    json_string("this event id was processed "
						"before: not pushed again"));
		json_object_set_new(x, "warnings", json_array());
		json_object_set_new(x, "withheld", json_array());
		json_object_set_new(x, "state", json_string(state));
		return x;
	}
	bool push = d->verdict == PB_VERDICT_PUSH;
	json_object_set_new(x, "outcome", json_string(expected_outcome(d)));
	json_object_set_new(x, "reason", str_or_null(push ? NULL : d->reason));
	json_object_set_new(x, "message",
			    d->message[0] ? json_string(d->message)
					  : json_null());
	json_object_set_new(x, "pushAction",
			    push ? json_string(pb_action_name(d->push_action))
				 : json_null());
	json_object_set_new(x, "request",
			    push && d->work_order
				? json_deep_copy(d->work_order)
				: json_null());
	if (push && d->unknown_order)
		json_object_set_new(x, "unknownOrder", json_true());
	json_object_set_new(x, "withheld",
			    d->withheld ? json_deep_copy(d->withheld)
					: json_array());
	json_object_set_new(x, "warnings",
			    d->warnings ? json_deep_copy(d->warnings)
					: json_array());
	json_object_set_new(x, "autoAdmin", json_boolean(auto_admin));
	json_object_set_new(x, "state", json_string(state));
	return x;
}

static const char *jstr(const json_t *x, const char *k)
{
	const char *s = json_string_value(json_object_get(x, k));
	return s ? s : "-";
}

static void table_value(pb_jtext_t *b, const json_t *v)
{
	if (json_is_string(v))
		pb_jt_lit(b, json_string_value(v));
	else
		pb_jt_json(b, v, false);
}

static void table_work_order(pb_jtext_t *b, const json_t *wo)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)wo, k, v)
	{
		pb_jt_lit(b, "      ");
		pb_jt_lit(b, k);
		pb_jt_lit(b, " = ");
		table_value(b, v);
		pb_jt_lit(b, "\n");
	}
}

char *pb_explain_table(const json_t *x)
{
	pb_jtext_t b = {0};
	pb_jt_lit(&b, "line ");
	pb_jt_i64(&b, json_integer_value(json_object_get(x, "line")));
	pb_jt_lit(&b, "  event ");
	pb_jt_lit(&b, jstr(x, "eventId"));
	pb_jt_lit(&b, "  ");
	pb_jt_lit(&b, jstr(x, "account"));
	pb_jt_lit(&b, "/");
	pb_jt_lit(&b, jstr(x, "workOrderNumber"));
	pb_jt_lit(&b, "  ");
	pb_jt_lit(&b, jstr(x, "action"));
	pb_jt_lit(&b, " -> ");
	pb_jt_lit(&b, jstr(x, "outcome"));
	if (json_is_string(json_object_get(x, "reason"))) {
		pb_jt_lit(&b, " (");
		pb_jt_lit(&b, jstr(x, "reason"));
		pb_jt_lit(&b, ")");
	}
	pb_jt_lit(&b, "\n");
	if (json_is_string(json_object_get(x, "message"))) {
		pb_jt_lit(&b, "    ");
		pb_jt_lit(&b, jstr(x, "message"));
		pb_jt_lit(&b, "\n");
	}
	const json_t *wo = json_object_get(x, "request");
	if (json_is_object(wo)) {
		pb_jt_lit(&b, "    would push (");
		pb_jt_lit(&b, jstr(x, "pushAction"));
		if (json_is_true(json_object_get(x, "unknownOrder")))
			pb_jt_lit(&b, ", order unknown: outcome by Pruvan's "
				      "counts");
		pb_jt_lit(&b, "):\n");
		table_work_order(&b, wo);
	}
	const json_t *wh = json_object_get(x, "withheld");
	if (json_array_size(wh)) {
		pb_jt_lit(&b, "    withheld (Auto-Admin is off): ");
		for (size_t i = 0; i < json_array_size(wh); i++) {
			if (i)
				pb_jt_lit(&b, ", ");
			table_value(&b, json_array_get(wh, i));
		}
		pb_jt_lit(&b, "\n");
	}
	const json_t *ws = json_object_get(x, "warnings");
	for (size_t i = 0; i < json_array_size(ws); i++) {
		const json_t *w = json_array_get(ws, i);
		pb_jt_lit(&b, "    warning ");
		pb_jt_lit(&b, jstr(w, "code"));
		pb_jt_lit(&b, ": ");
		pb_jt_lit(&b, jstr(w, "message"));
		pb_jt_lit(&b, "\n");
	}
	return pb_jt_take(&b);
}

/* ---- the orders seen so far -------------------------------------------- */

typedef struct seen_order {
	struct seen_order *next;
	char *account, *won;
	bool created, deleted, has_version;
	int64_t version, occurred_ms;
	char *pushed;	  /* owned, may be NULL */
	char **event_ids; /* events explained for it */
	size_t n_ids;
	bool exists;	 /* what the pipeline reads as the order's hash */
	bool from_redis; /* the state was read from Redis */
} seen_order_t;

typedef struct session {
	const pb_config_t *cfg;
	const pb_explain_opts_t *o;
	pb_state_t *st;	 /* with_state only */
	int *auto_admin; /* per account: 1, 0 or -1 (configured) */
	seen_order_t *orders;
	FILE *out;
	long counts[3]; /* pushed, not pushed, rejected */
} session_t;

static seen_order_t *order_find(session_t *s, const char *acct, const char *won)
{
	for (seen_order_t *o = s->orders; o; o = o->next)
		if (!strcmp(o->account, acct) && !strcmp(o->won, won))
			return o;
	return NULL;
}

static seen_order_t *order_add(session_t *s, const char *acct, const char *won)
{
	seen_order_t *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->account = strdup(acct);
	o->won = strdup(won);
	if (!o->account || !o->won) {
		free(o->account);
		free(o->won);
		free(o);
		return NULL;
	}
	o->next = s->orders;
	s->orders = o;
	return o;
}

static void orders_free(seen_order_t *o)
{
	while (o) {
		seen_order_t *n = o->next;
		for (size_t i = 0; i < o->n_ids; i++)
			free(o->event_ids[i]);
		free(o->event_ids);
		free(o->account);
		free(o->won);
		free(o->pushed);
		free(o);
		o = n;
	}
}

static bool order_has_event(const seen_order_t *o, const char *id)
{
	for (size_t i = 0; i < o->n_ids; i++)
		if (!strcmp(o->event_ids[i], id))
			return true;
	return false;
}

static void order_note_event(seen_order_t *o, const char *id)
{
	char **n = realloc(o->event_ids, (o->n_ids + 1) * sizeof(*n));
	if (!n)
		return;
	o->event_ids = n;
	if ((n[o->n_ids] = strdup(id)))
		o->n_ids++;
}

/* What the pipeline records once the decision's push succeeded. */
static void order_apply(seen_order_t *o, const pb_event_t *ev,
			const pb_decision_t *d)
{
	if (d->verdict != PB_VERDICT_PUSH && d->verdict != PB_VERDICT_UNCHANGED)
		return;
	o->exists = true;
	o->has_version = ev->has_version;
	o->version = ev->version;
	o->occurred_ms = ev->occurred_ms;
	if (d->verdict == PB_VERDICT_UNCHANGED)
		return;
	if (d->push_action == PB_ACTION_CREATE)
		o->created = true;
	if (d->push_action == PB_ACTION_DELETE)
		o->deleted = true;
	if (d->pushed_after) {
		char *p = strdup(d->pushed_after);
		if (p) {
			free(o->pushed);
			o->pushed = p;
		}
	}
}

/* ---- Redis, read only --------------------------------------------------- */

/* Read whether event_id was processed (its mark), and when fresh (the
 * order's first event in the input) the order's stored state into o. */
static pb_err_t order_fetch(session_t *s, seen_order_t *o, const char *event_id,
			    bool fresh, bool *dup, char *err, size_t size)
{
	pb_state_view_t v = {
	    .account = o->account, .won = o->won, .event_id = event_id};
	pb_state_call_t call;
	pb_err_t e = pb_state_fetch_send(s->st, &v, 1, &call, err, size);
	if (!e)
		e = pb_state_flush(s->st, err, size);
	if (!e)
		e = pb_state_fetch_recv(s->st, &call, &v, 1, err, size);
	if (e)
		return e;
	*dup = v.mark != PB_MARK_NONE;
	if (fresh && v.exists) {
		o->created = v.order.created;
		o->deleted = v.order.deleted;
		o->has_version = v.order.has_version;
		o->version = v.order.version;
		o->occurred_ms = v.order.occurred_ms;
		o->pushed = v.pushed_text;
		v.pushed_text = NULL;
		o->from_redis = o->exists = true;
	}
	pb_state_view_clear(&v);
	return PB_OK;
}

static pb_err_t read_auto_admin(session_t *s, char *err, size_t size)
{
	const pb_config_t *c = s->cfg;
	s->auto_admin = calloc(c->accounts_len + 1, sizeof(int));
	const char **names = calloc(c->accounts_len + 1, sizeof(*names));
	pb_err_t e = PB_OK;
	if (!s->auto_admin || !names) {
		e = pb_errf(err, size, PB_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < c->accounts_len; i++)
		names[i] = c->accounts[i].name;
	if (c->accounts_len)
		e = pb_state_get_auto_admin(s->st, names, c->accounts_len,
					    s->auto_admin, err, size);
out:
	free(names);
	return e;
}

static bool auto_admin_of(const session_t *s, const pb_account_t *a)
{
	if (s->auto_admin) {
		size_t i = (size_t)(a - s->cfg->accounts);
		if (s->auto_admin[i] >= 0)
			return s->auto_admin[i] == 1;
	}
	return a->auto_admin;
}

/* ---- one line ------------------------------------------------------------ */

static void emit(session_t *s, json_t *x)
{
	if (!x)
		return;
	const char *outcome = jstr(x, "outcome");
	if (!strcmp(outcome, "rejected"))
		s->counts[2]++;
	else if (json_is_object(json_object_get(x, "request")))
		s->counts[0]++;
	else
		s->counts[1]++;
	char *text = s->o->json ? pb_jt_dumps(x, false) : pb_explain_table(x);
	if (text)
		fprintf(s->out, "%s\n", text);
	free(text);
	json_decref(x);
}

static pb_err_t explain_line(session_t *s, long lineno, const char *buf,
			     size_t len, char *err, size_t size)
{
	pb_event_t *ev = NULL;
	pb_rejection_t rej = {0};
	/* as the worker reads it (consume.c): too large before parsed */
	if (pb_rejection_too_large(len, &rej) ||
	    pb_event_parse(buf, len, &ev, &rej) != PB_OK) {
		emit(s, pb_explain_describe(lineno, NULL, &rej, NULL, false,
					    NULL));
		pb_rejection_clear(&rej);
		return PB_OK;
	}
	pb_err_t e = PB_OK;
	const pb_account_t *acct = pb_config_account(s->cfg, ev->account);
	seen_order_t *o = order_find(s, ev->account, ev->work_order_number);
	bool dup = o && order_has_event(o, ev->event_id), fresh = !o;
	if (!o && !(o = order_add(s, ev->account, ev->work_order_number))) {
		e = pb_errf(err, size, PB_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (!dup && s->st && acct &&
	    (e = order_fetch(s, o, ev->event_id, fresh, &dup, err, size)))
		goto out;
	const char *state = o->from_redis ? "stored in Redis"
			    : !fresh	  ? "from earlier events of this input"
			    : s->st	  ? "none in Redis"
					  : "none (without --with-state)";
	bool aa = acct ? auto_admin_of(s, acct) : true;
	if (dup) {
		emit(s, pb_explain_describe(lineno, ev, NULL, NULL, aa, state));
		goto out;
	}
	pb_order_state_t st = {.created = o->created,
			       .deleted = o->deleted,
			       .has_version = o->has_version,
			       .version = o->version,
			       .occurred_ms = o->occurred_ms,
			       .pushed = o->pushed,
			       .pushed_len = o->pushed ? strlen(o->pushed) : 0};
	pb_decision_t d;
	pb_rules_decide(ev, acct, aa, o->exists ? &st : NULL, &d);
	emit(s, pb_explain_describe(lineno, ev, NULL, &d, aa, state));
	order_apply(o, ev, &d);
	order_note_event(o, ev->event_id);
	pb_decision_clear(&d);
out:
	pb_event_destroy(ev);
	return e;
}

static int explain_stream(session_t *s, FILE *in, char *err, size_t size)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	int rc = 0;
	while ((n = getline(&line, &cap, in)) >= 0) {
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		size_t k = 0;
		while (k < (size_t)n && (line[k] == ' ' || line[k] == '\t'))
			k++;
		if (k == (size_t)n)
			continue; /* blank line */
		if (explain_line(s, lineno, line, (size_t)n, err, size)) {
			rc = 1;
			break;
		}
	}
	if (!rc && ferror(in)) {
		snprintf(err, size, "reading the events failed: %s",
			 strerror(errno));
		rc = 1;
	}
	free(line);
	return rc;
}

int pb_explain_run(const pb_config_t *cfg, const pb_explain_opts_t *o,
		   const char *input, FILE *out, char *err, size_t size)
{
	session_t s = {.cfg = cfg, .o = o, .out = out};
	int rc = 1;
	FILE *in = stdin;
	if (input && strcmp(input, "-") != 0 && !(in = fopen(input, "r"))) {
		snprintf(err, size,
			 "cannot open %s: %s (give a file of JSON "
			 "lines, or - for stdin)",
			 input, strerror(errno));
		return 1;
	}
	if (o->with_state) {
		char e[512];
		if (pb_state_new_config(cfg, 2000, &s.st, e, sizeof(e)) ||
		    read_auto_admin(&s, e, sizeof(e))) {
			snprintf(err, size,
				 "cannot read the stored state: %s "
				 "(is Redis reachable at the configured url? "
				 "without --with-state nothing is read)",
				 e);
			goto out;
		}
	}
	char e[512];
	if (explain_stream(&s, in, e, sizeof(e))) {
		snprintf(err, size, "%s", e);
		goto out;
	}
	if (!o->json)
		fprintf(out,
			"%ld to push, %ld not pushed, %ld rejected; "
			"nothing was sent or stored.\n",
			s.counts[0], s.counts[1], s.counts[2]);
	rc = 0;
out:
	fflush(out);
	if (in != stdin)
		fclose(in);
	orders_free(s.orders);
	free(s.auto_admin);
	pb_state_destroy(s.st);
	return rc;
}
