/*
 * record.c: the text of outcome records and the headers of DLQ copies
 * (contract sections 2 and 6).
 *
 * The outcome's text is written directly (no jansson tree of the
 * envelope: dumping one per event was a sixth of the loop's CPU,
 * docs/benchmarks.md) and comes in three forms: whole, with request and
 * item truncated (their size and digest), and minimal (no warnings or
 * withheld fields either), the first that fits the record's budget.
 *
 * Must never: exceed the budget it is given when the minimal form fits, or
 * write a PushKey.
 */
#include "pipeline_internal.h"

/*
 * The outcome record's text (contract section 6), written directly: a
 * jansson tree of the envelope, dumped, with the response body parsed again
 * for every event, was a sixth of the loop's CPU (docs/benchmarks.md).
 * Nested values (warnings, request, item) go through pb_jt_json. Every
 * string is UTF-8: identifiers come from parsed JSON and messages are
 * formatted whole (pb_format_text); NULL only when out of memory, and the
 * record is produced again on the next turn.
 */
static void sb_json(pb_jtext_t *b, const json_t *j, const char *dflt)
{
	if (j)
		pb_jt_json(b, j, false);
	else
		pb_jt_lit(b, dflt);
}

/* A nested part (request, item) whole, or in its truncated form (cut). */
static void jt_part(pb_jtext_t *b, const json_t *j, const char *text, bool cut)
{
	if (!cut) {
		if (text)
			pb_jt_lit(b, text);
		else
			sb_json(b, j, "null");
		return;
	}
	char *own = text ? NULL : pb_jt_dumps(j, false);
	const char *x = text ? text : own;
	pb_jt_truncated(b, x, x ? strlen(x) : 0);
	free(own);
}

/* The outcome's text: every part whole, or request and item in their
 * truncated form (cut), and without warnings and withheld fields too
 * (minimal: what still fits any topic). */
static char *outcome_text_as(pb_pipeline_t *pl, task_t *t, bool cut,
			     bool minimal)
{
	pb_jtext_t b = {0};
	char ts[40];
	pb_now_rfc3339(ts, sizeof(ts));
	pb_jt_lit(&b, "{\"eventId\":");
	pb_jt_str(&b, pl_task_event_id(t));
	pb_jt_lit(&b, ",\"source\":");
	pb_jt_str(&b, pl_src_names[t->src]);
	pb_jt_lit(&b, ",\"account\":");
	pb_jt_str(&b, pl_task_account(t));
	pb_jt_lit(&b, ",\"workOrderNumber\":");
	pb_jt_str(&b, pl_task_won(t));
	pb_jt_lit(&b, ",\"outcome\":");
	pb_jt_str(&b, t->outcome);
	pb_jt_lit(&b, ",\"reason\":");
	pb_jt_str(&b, t->reason);
	pb_jt_lit(&b, ",\"message\":");
	pb_jt_str(&b, t->message[0] ? t->message : NULL);
	pb_jt_lit(&b, ",\"warnings\":");
	sb_json(&b, t->dec_set && !minimal ? t->dec.warnings : NULL, "[]");
	pb_jt_lit(&b, ",\"withheld\":");
	sb_json(&b, t->dec_set && !minimal ? t->dec.withheld : NULL, "[]");
	bool pushed = t->dec_set && t->dec.verdict == PB_VERDICT_PUSH &&
		      t->job.attempts > 0;
	pb_jt_lit(&b, ",\"request\":");
	if (pushed)
		jt_part(&b, t->dec.work_order, t->work_order_text, cut);
	else
		pb_jt_lit(&b, "null");
	pb_jt_lit(&b, ",\"response\":");
	if (pushed) {
		pb_jt_lit(&b, "{\"httpStatus\":");
		pb_jt_i64(&b, (long long)t->job.http_status);
		pb_jt_lit(&b, ",\"body\":");
		pb_jt_lit(&b, t->job.body_start[0]
				  ? pl_body_text(pl, t->job.body_start)
				  : "null");
		pb_jt_lit(&b, "}");
		if (t->job.batch_size > 1) {
			pb_jt_lit(&b, ",\"batchSize\":");
			pb_jt_i64(&b, t->job.batch_size);
		}
	} else {
		pb_jt_lit(&b, "null");
	}
	pb_jt_lit(&b, ",\"attempts\":");
	pb_jt_i64(&b, pushed ? t->job.attempts : 0);
	pb_jt_lit(&b, ",\"partition\":");
	pb_jt_i64(&b, t->part ? t->part->partition : -1);
	pb_jt_lit(&b, ",\"offset\":");
	pb_jt_i64(&b, (long long)t->offset);
	pb_jt_lit(&b, ",\"processedAt\":");
	pb_jt_str(&b, ts);
	if (t->recovered)
		pb_jt_lit(&b, ",\"recovered\":true");
	if (t->schema_id >= 0) {
		pb_jt_lit(&b, ",\"schemaId\":");
		pb_jt_i64(&b, (long long)t->schema_id);
	}
	pb_headers_render(&b, t->headers);
	if (t->in && strcmp(t->outcome, "relayed") == 0) {
		pb_jt_lit(&b, ",\"kind\":");
		pb_jt_str(&b, t->in->kind);
		pb_jt_lit(&b, ",\"item\":");
		jt_part(&b, t->in->item, NULL, cut);
	}
	pb_jt_lit(&b, "}");
	return pb_jt_take(&b);
}

/* The outcome's text in the task's form, within budget bytes (contract
 * section 6): whole when it fits, else with its request or item in their
 * truncated form, else minimal. NULL when out of memory. */
char *pl_outcome_text(pb_pipeline_t *pl, task_t *t, size_t budget)
{
	bool minimal = t->form[REC_OUTCOME] >= FORM_MINIMAL;
	char *v = outcome_text_as(pl, t, minimal, minimal);
	if (v && strlen(v) > budget) {
		free(v);
		v = outcome_text_as(pl, t, true, false);
	}
	if (v && strlen(v) > budget) {
		free(v);
		v = outcome_text_as(pl, t, true, true);
	}
	return v;
}

/* The size of the input's headers (contract section 6) as the rec record
 * of t carries them: 0 when there are none, in the minimal form, and when
 * they would take more than half the record bound (the record then goes
 * without them rather than not at all). */
size_t pl_input_headers_size(const pb_pipeline_t *pl, const task_t *t, int rec)
{
	if (!t->headers || t->form[rec] >= FORM_MINIMAL)
		return 0;
	size_t n = 0;
	const char *name;
	const void *v;
	size_t vlen;
	for (size_t i = 0;
	     !rd_kafka_header_get_all(t->headers, i, &name, &v, &vlen); i++)
		n += pb_produce_header_size(name, vlen);
	return n <= pl->record_max / 2 ? n : 0;
}

/* Add a header, counting its size into *used. */
void pl_hdr_add(rd_kafka_headers_t *h, const char *name, const char *v,
		size_t *used)
{
	size_t n = v ? strlen(v) : 0;
	rd_kafka_header_add(h, name, -1, v ? v : "", (ssize_t)n);
	*used += pb_produce_header_size(name, n);
}

/* The DLQ copy's headers (contract section 2); the Pruvan request only
 * while it takes at most a quarter of the record (else its truncated
 * form), none of the push details in the minimal form. */
rd_kafka_headers_t *pl_dlq_headers_new(pb_pipeline_t *pl, task_t *t,
				       size_t *used)
{
	char part[16], off[32], att[16];
	snprintf(part, sizeof(part), "%" PRId32, t->part->partition);
	snprintf(off, sizeof(off), "%" PRId64, t->offset);
	snprintf(att, sizeof(att), "%d", t->job.attempts);
	rd_kafka_headers_t *h = rd_kafka_headers_new(10);
	/* the back office's own headers first, then the DLQ's */
	size_t hsz = pl_input_headers_size(pl, t, REC_DLQ);
	if (hsz) {
		pb_headers_add_all(h, t->headers, true);
		*used += hsz;
	}
	pl_hdr_add(h, "x-error-reason", t->reason ? t->reason : "", used);
	pl_hdr_add(h, "x-error-message", t->message, used);
	pl_hdr_add(h, "x-source-topic", t->part->topic, used);
	pl_hdr_add(h, "x-source-partition", part, used);
	pl_hdr_add(h, "x-source-offset", off, used);
	pl_hdr_add(h, "x-attempts", att, used);
	if (t->job.attempts > 0 && t->form[REC_DLQ] == FORM_FULL) {
		char st[16];
		snprintf(st, sizeof(st), "%ld", t->job.http_status);
		pl_hdr_add(h, "x-http-status", st, used);
		pl_hdr_add(h, "x-response-body", t->job.body_start, used);
		const char *req = t->work_order_text;
		if (req && strlen(req) <= pl->record_max / 4) {
			pl_hdr_add(h, "x-request", req, used);
		} else if (req) {
			pb_jtext_t b = {0};
			pb_jt_truncated(&b, req, strlen(req));
			char *cut = pb_jt_take(&b);
			pl_hdr_add(h, "x-request", cut ? cut : "", used);
			free(cut);
		}
	}
	return h;
}
