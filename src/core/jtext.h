/*
 * jtext.h: text written straight into a growing buffer, JSON above all
 * (also the /metrics page and the configuration's mistake report).
 *
 * The worker writes JSON for every event several times (the outcome record,
 * the order state kept in Redis, the Pruvan request body). jansson's
 * json_dumps goes through a callback per token and snprintf per number and
 * was a fifth of the loop's CPU (docs/benchmarks.md). pb_jt_json writes the
 * same bytes as json_dumps(JSON_COMPACT | JSON_ENCODE_ANY [| JSON_SORT_KEYS])
 * for any jansson value; tests/unit/test_base.c checks that on generated
 * trees. pb_json_load reads the plain JSON of events and stored order
 * states back, with json_loadb's values and errors (checked the same way).
 */
#ifndef PB_JTEXT_H
#define PB_JTEXT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef struct {
	char *p; /* NUL-terminated text, malloc'd; NULL while empty */
	size_t len, cap;
	bool bad; /* out of memory, or a string that is not UTF-8 */
} pb_jtext_t;

/* Raw bytes / a literal / a decimal integer, appended as they are.
 * pb_jt_put and pb_jt_lit are inline: they run for every token of every
 * record the worker writes, and a literal's length is then known at
 * compile time; pb_jt_put_grow is their path when the buffer must grow. */
void pb_jt_put_grow(pb_jtext_t *b, const char *s, size_t n);
/* Room for more bytes and the NUL after len, for a caller that writes at
 * b->p + b->len itself (then sets len and the NUL); false when b is bad. */
bool pb_jt_reserve(pb_jtext_t *b, size_t more);

static inline void pb_jt_put(pb_jtext_t *b, const char *s, size_t n)
{
	if (b->bad || b->len + n + 1 > b->cap) {
		pb_jt_put_grow(b, s, n);
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}
static inline void pb_jt_lit(pb_jtext_t *b, const char *s)
{
	pb_jt_put(b, s, strlen(s));
}
void pb_jt_i64(pb_jtext_t *b, long long v);

/* A JSON string (escaped as jansson does), or null for NULL. A string that
 * is not valid UTF-8 sets bad: jansson would refuse it. */
void pb_jt_str(pb_jtext_t *b, const char *s);

/* Any jansson value; JSON_COMPACT, object keys in insertion order or
 * sorted (strcmp) when sort_keys. NULL writes nothing and sets bad. */
void pb_jt_json(pb_jtext_t *b, const json_t *j, bool sort_keys);

/* json_loadb(text, n, flags, err), the same values and errors, faster for
 * the JSON this worker reads for every event (the event, the order state
 * it wrote itself). It builds the tree itself when the text is plain (ASCII,
 * no \u escape, no control byte, integers of at most 18 digits, nesting up
 * to 64) and hands anything else to jansson. flags: 0 or
 * JSON_REJECT_DUPLICATES (others go to jansson as they are). */
json_t *pb_json_load(const char *text, size_t n, size_t flags,
		     json_error_t *err);

/* The text, handed over to the caller (NULL when bad); b is emptied. */
char *pb_jt_take(pb_jtext_t *b);

/* pb_jt_json into a new string (free()); NULL on failure. */
char *pb_jt_dumps(const json_t *j, bool sort_keys);

/* Decimal text of v into buf (>= 21 / 22 bytes, NUL-terminated); returns
 * its length. */
size_t pb_u64_text(char *buf, unsigned long long v);
size_t pb_i64_text(char *buf, long long v);

/*
 * The members of a JSON object's text, as spans into it (no tree built):
 * how the worker reads the last pushed fields it keeps per order. Each raw
 * key (with its quotes) and value is exactly as written in the text; key is
 * the decoded name (the raw key itself unless it has an escape). Members are
 * sorted as pb_jt_json sorts keys; of repeated keys the last one stays, as
 * json_loadb keeps it. The split accepts exactly the texts json_loadb
 * accepts: the scan checks JSON's grammar itself and has jansson read the
 * text when it holds what only jansson decides (bytes beyond ASCII, \u
 * escapes, very long or exponent numbers, deep nesting).
 */
typedef struct {
	const char *key; /* decoded name (not NUL-terminated) */
	size_t klen;
	const char *raw_key; /* "..." as in the text */
	size_t raw_klen;
	const char *val;
	size_t vlen;
	char *owned; /* the decoded name when the raw one has an escape */
	size_t pos;  /* order in the text */
} pb_jt_member_t;

typedef struct {
	pb_jt_member_t *m;
	size_t n;
	pb_jt_member_t local[32];
} pb_jt_members_t;

/* Split text[0..n) (a JSON object) into *out; false (and *out empty) when
 * it is not one. Call pb_jt_members_free after either. */
bool pb_jt_members_split(const char *text, size_t n, pb_jt_members_t *out);
void pb_jt_members_free(pb_jt_members_t *ms);
const pb_jt_member_t *pb_jt_members_find(const pb_jt_members_t *ms,
					 const char *key);

/* The string that the JSON text[0..n) holds (malloc'd, NUL-terminated;
 * its length in *len when len is not NULL), or NULL when the text is not
 * one JSON string, or holds a NUL. Text without escapes is copied as it
 * is; jansson reads the rest. */
char *pb_jt_string_text(const char *text, size_t n, size_t *len);

/*
 * An object's members written once: *text_out gets the text pb_jt_json(j,
 * false) writes (owned), and *out the members that pb_jt_members_split
 * reads from pb_jt_json(j, true)'s text, as spans into *text_out or, for a
 * nested value whose sorted text differs, into *aux (keep both until *out
 * is freed). False (nothing to free but *aux) when j is not an object or a
 * value cannot be written (pb_jt_json's bad). How the rules get a work
 * order's request text and its members for the merge without writing it
 * twice and reading it back.
 */
bool pb_jt_members_of(const json_t *j, char **text_out, pb_jt_members_t *out,
		      pb_jtext_t *aux);

/* The text of an object with a's members overlaid by b's (b's win), keys
 * sorted: pb_jt_json(sorted) of the merged tree. a may be NULL. NULL when
 * out of memory. */
char *pb_jt_members_merge(const pb_jt_members_t *a, const pb_jt_members_t *b);

#endif
