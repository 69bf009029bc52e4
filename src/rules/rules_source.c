/*
 * rules_source.c: the remote system's correlation fields (source_wo_id,
 * source_wo_number) as the text that identifies an order in relayed data
 * (contract section 5: "when the item carries the order's source_wo_id or
 * source_wo_number as pushed, they identify the order too").
 *
 * A value pushed as a number and relayed back as a string (or the reverse)
 * is the same identifier, so both sides are reduced to one text: a
 * non-empty string as it is, an integer in decimal; anything else
 * identifies nothing. Pure: no I/O, no logging.
 */
#include "rules_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "jtext.h"
#include "util.h"

/* Longer identifiers are no back office's keys: they identify nothing. */
#define PB_SOURCE_ID_MAX 256

char *pb_rules_source_id_text(const json_t *v)
{
	if (json_is_string(v)) {
		size_t n = json_string_length(v);
		const char *s = json_string_value(v);
		if (n == 0 || n > PB_SOURCE_ID_MAX || strlen(s) != n)
			return NULL;
		return pb_strdup(s);
	}
	if (json_is_integer(v)) {
		char buf[32];
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		return pb_strdup(buf);
	}
	return NULL;
}

char *pb_rules_pushed_source_id(const char *pushed, size_t len,
				const char *name)
{
	pb_jt_members_t ms;
	if (!pushed)
		return NULL;
	bool split = pb_jt_members_split(pushed, len, &ms);
	const pb_jt_member_t *m = split ? pb_jt_members_find(&ms, name) : NULL;
	json_t *v =
	    m ? json_loadb(m->val, m->vlen, JSON_DECODE_ANY, NULL) : NULL;
	pb_jt_members_free(&ms);
	char *text = pb_rules_source_id_text(v);
	json_decref(v);
	return text;
}
