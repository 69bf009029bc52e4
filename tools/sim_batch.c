/*
 * sim_batch.c: a push's workOrders as texts and facts (see sim_batch.h).
 *
 * Two readers fill the same pb_sim_batch_t. The scan (sc_*) accepts only
 * plain JSON that json_loadb surely accepts and reads the same way: strings
 * of printable ASCII whose escapes are not \u, integers and fractions of at
 * most 15 digits without an exponent, nesting up to SC_MAX_DEPTH, and keys
 * of the orders without escapes. It gives up (returns false) on anything
 * else, valid or not, and jansson then reads the text: its verdict and its
 * error message stay the simulator's. The facts taken from strings (the
 * workOrderNumber, the status, state and zip checks) are taken only from
 * strings without escapes; the scan gives up on the others too.
 */
#include "sim_batch.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jtext.h"

#define SC_MAX_DEPTH  32
#define SC_MAX_DIGITS 15

typedef struct {
	const char *p, *e;
} sc_t;

/* A value of interest in an order: its text, and where it was. */
typedef struct {
	const char *v;
	size_t n;
} sc_span_t;

static void sc_ws(sc_t *s)
{
	while (s->p < s->e && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' ||
			       *s->p == '\t'))
		s->p++;
}

static bool sc_at(sc_t *s, char c)
{
	return s->p < s->e && *s->p == c;
}

/* s->p at '"': past the string; [*str, *str + *n) its raw content. */
static bool sc_string(sc_t *s, const char **str, size_t *n, bool *esc)
{
	const char *p = s->p + 1;
	*esc = false;
	for (; p < s->e; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"') {
			*str = s->p + 1;
			*n = (size_t)(p - *str);
			s->p = p + 1;
			return true;
		}
		if (c < 0x20 || c >= 0x80)
			return false;
		if (c == '\\') {
			if (++p >= s->e || *p == '\0' ||
			    !strchr("\"\\/bfnrt", *p))
				return false;
			*esc = true;
		}
	}
	return false;
}

static const char *sc_digits(const char *p, const char *e)
{
	while (p < e && *p >= '0' && *p <= '9')
		p++;
	return p;
}

static bool sc_number(sc_t *s)
{
	const char *p = s->p, *q;
	if (p < s->e && *p == '-')
		p++;
	q = p;
	if (p < s->e && *p == '0')
		p++;
	else if (p < s->e && *p >= '1' && *p <= '9')
		p = sc_digits(p, s->e);
	else
		return false;
	if (p - q > SC_MAX_DIGITS)
		return false;
	if (p < s->e && *p == '.') {
		q = ++p;
		p = sc_digits(p, s->e);
		if (p == q || p - q > SC_MAX_DIGITS)
			return false;
	}
	if (p < s->e && (*p == 'e' || *p == 'E'))
		return false;
	s->p = p;
	return true;
}

static bool sc_word(sc_t *s, const char *w, size_t n)
{
	if ((size_t)(s->e - s->p) < n || memcmp(s->p, w, n) != 0)
		return false;
	s->p += n;
	return true;
}

static bool sc_value(sc_t *s, int depth);

/* s->p at '{' or '['. */
static bool sc_container(sc_t *s, int depth)
{
	char close = *s->p == '{' ? '}' : ']';
	const char *str;
	size_t n;
	bool esc;
	if (depth > SC_MAX_DEPTH)
		return false;
	s->p++;
	sc_ws(s);
	if (sc_at(s, close)) {
		s->p++;
		return true;
	}
	for (;;) {
		if (close == '}') {
			if (!sc_at(s, '"') || !sc_string(s, &str, &n, &esc))
				return false;
			sc_ws(s);
			if (!sc_at(s, ':'))
				return false;
			s->p++;
			sc_ws(s);
		}
		if (!sc_value(s, depth + 1))
			return false;
		sc_ws(s);
		if (sc_at(s, ',')) {
			s->p++;
			sc_ws(s);
			continue;
		}
		if (!sc_at(s, close))
			return false;
		s->p++;
		return true;
	}
}

static bool sc_value(sc_t *s, int depth)
{
	const char *str;
	size_t n;
	bool esc;
	if (s->p >= s->e)
		return false;
	switch (*s->p) {
	case '"':
		return sc_string(s, &str, &n, &esc);
	case '{':
	case '[':
		return sc_container(s, depth);
	case 't':
		return sc_word(s, "true", 4);
	case 'f':
		return sc_word(s, "false", 5);
	case 'n':
		return sc_word(s, "null", 4);
	default:
		return sc_number(s);
	}
}

/* ---- the facts of an order --------------------------------------------- */

static bool span_is(const char *k, size_t n, const char *name)
{
	size_t m = strlen(name);
	return n == m && memcmp(k, name, m) == 0;
}

static bool str_nonempty(sc_span_t v)
{
	return v.v && v.n > 2 && v.v[0] == '"';
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* A state's or zip's string content (no escapes: checked by the caller). */
static bool state_ok(const char *s, size_t n)
{
	return n == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' &&
	       s[1] <= 'Z';
}

static bool zip_ok(const char *s, size_t n)
{
	if (n == 5)
		return all_digits(s, 5);
	return n == 10 && all_digits(s, 5) && s[5] == '-' &&
	       all_digits(s + 6, 4);
}

/* The services value (already scanned): missing / unnamed bits. */
static unsigned services_problems(sc_span_t v)
{
	sc_t s = {v.v, v.v + v.n};
	bool named = false;
	size_t count = 0;
	if (!v.v || v.v[0] != '[')
		return PB_SIM_P_SERVICES;
	s.p++;
	sc_ws(&s);
	while (s.p < s.e && *s.p != ']') {
		count++;
		if (*s.p != '{') {
			sc_value(&s, 2);
		} else {
			/* of repeated serviceName keys the last one counts */
			bool this_named = false;
			s.p++;
			sc_ws(&s);
			while (sc_at(&s, '"')) {
				const char *k = NULL;
				size_t kn = 0;
				bool esc = true;
				if (!sc_string(&s, &k, &kn, &esc))
					break; /* not after a scan that passed
						*/
				sc_ws(&s);
				s.p++; /* ':' */
				sc_ws(&s);
				sc_span_t sv = {s.p, 0};
				sc_value(&s, 3);
				sv.n = (size_t)(s.p - sv.v);
				if (!esc && span_is(k, kn, "serviceName"))
					this_named = str_nonempty(sv);
				sc_ws(&s);
				if (sc_at(&s, ','))
					s.p++;
				sc_ws(&s);
			}
			s.p++; /* '}' */
			named = named || this_named;
		}
		sc_ws(&s);
		if (sc_at(&s, ','))
			s.p++;
		sc_ws(&s);
	}
	if (count == 0)
		return PB_SIM_P_SERVICES;
	return named ? 0 : PB_SIM_P_UNNAMED;
}

enum { F_WON, F_STATUS, F_ADDRESS1, F_CITY, F_STATE, F_ZIP, F_SERVICES, F_N };
static const char *const field_names[F_N] = {
    "workOrderNumber", "status", "address1", "city",
    "state",	       "zip",	 "services"};

/* The facts of the fields found; false when the scan must give up. */
static bool order_facts(pb_sim_order_t *o, const sc_span_t *f)
{
	/* strings whose content is compared must be plain */
	static const int compared[] = {F_WON, F_STATUS, F_STATE, F_ZIP};
	for (size_t i = 0; i < sizeof(compared) / sizeof(compared[0]); i++) {
		sc_span_t v = f[compared[i]];
		if (v.v && v.v[0] == '"' && memchr(v.v, '\\', v.n))
			return false;
	}
	if (str_nonempty(f[F_WON])) {
		o->won = f[F_WON].v + 1;
		o->won_len = f[F_WON].n - 2;
	}
	o->is_delete = f[F_STATUS].v && f[F_STATUS].n == 9 &&
		       f[F_STATUS].v[0] == '"' &&
		       strncasecmp(f[F_STATUS].v + 1, "deleted", 7) == 0;
	static const struct {
		int field;
		unsigned bit;
	} req[] = {{F_ADDRESS1, PB_SIM_P_ADDRESS1},
		   {F_CITY, PB_SIM_P_CITY},
		   {F_STATE, PB_SIM_P_STATE},
		   {F_ZIP, PB_SIM_P_ZIP}};
	for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++)
		if (!str_nonempty(f[req[i].field]))
			o->problems |= req[i].bit;
	if (str_nonempty(f[F_STATE]) &&
	    !state_ok(f[F_STATE].v + 1, f[F_STATE].n - 2))
		o->problems |= PB_SIM_P_BAD_STATE;
	if (str_nonempty(f[F_ZIP]) && !zip_ok(f[F_ZIP].v + 1, f[F_ZIP].n - 2))
		o->problems |= PB_SIM_P_BAD_ZIP;
	o->problems |= services_problems(f[F_SERVICES]);
	return true;
}

/* s->p at '{': one order; its names go to *names. */
static bool sc_order(sc_t *s, pb_sim_order_t *o, char **names)
{
	sc_span_t f[F_N] = {{0}};
	const char *start = s->p;
	o->is_object = true;
	o->names = *names;
	s->p++;
	sc_ws(s);
	if (sc_at(s, '}'))
		s->p++;
	else
		for (;;) {
			const char *k;
			size_t kn;
			bool esc;
			if (!sc_at(s, '"') || !sc_string(s, &k, &kn, &esc) ||
			    esc)
				return false;
			sc_ws(s);
			if (!sc_at(s, ':'))
				return false;
			s->p++;
			sc_ws(s);
			const char *v = s->p;
			if (!sc_value(s, 2))
				return false;
			for (int i = 0; i < F_N; i++)
				if (span_is(k, kn, field_names[i]))
					f[i] =
					    (sc_span_t){v, (size_t)(s->p - v)};
			if (kn == 0 || k[0] != '_') {
				memcpy(*names, k, kn);
				(*names)[kn] = '\0';
				*names += kn + 1;
			}
			sc_ws(s);
			if (sc_at(s, ',')) {
				s->p++;
				sc_ws(s);
				continue;
			}
			if (!sc_at(s, '}'))
				return false;
			s->p++;
			break;
		}
	o->text = start;
	o->len = (size_t)(s->p - start);
	o->names_len = (size_t)(*names - o->names);
	return order_facts(o, f);
}

static bool batch_grow(pb_sim_batch_t *b, size_t *cap)
{
	if (b->n < *cap)
		return true;
	size_t nc = *cap ? *cap * 2 : 64;
	pb_sim_order_t *no = realloc(b->orders, nc * sizeof(*no));
	if (!no)
		return false;
	b->orders = no;
	*cap = nc;
	return true;
}

/* {"workOrders":[{...},...]} exactly, plain: into b. false: give up. */
static bool scan_batch(const char *text, size_t len, pb_sim_batch_t *b)
{
	sc_t s = {text, text + len};
	const char *k;
	size_t kn, cap = 0;
	bool esc;
	char *names;
	sc_ws(&s);
	if (!sc_at(&s, '{'))
		return false;
	s.p++;
	sc_ws(&s);
	if (!sc_at(&s, '"') || !sc_string(&s, &k, &kn, &esc) || esc ||
	    !span_is(k, kn, "workOrders"))
		return false;
	sc_ws(&s);
	if (!sc_at(&s, ':'))
		return false;
	s.p++;
	sc_ws(&s);
	if (!sc_at(&s, '['))
		return false;
	b->names_buf = names = malloc(len + 1);
	if (!names)
		return false;
	b->wos = s.p++;
	sc_ws(&s);
	while (!sc_at(&s, ']')) {
		if (!sc_at(&s, '{') || !batch_grow(b, &cap))
			return false;
		pb_sim_order_t *o = &b->orders[b->n++];
		memset(o, 0, sizeof(*o));
		if (!sc_order(&s, o, &names))
			return false;
		sc_ws(&s);
		if (sc_at(&s, ',')) {
			s.p++;
			sc_ws(&s);
			if (sc_at(&s, ']'))
				return false; /* a trailing comma */
		} else if (!sc_at(&s, ']')) {
			return false;
		}
	}
	s.p++;
	b->wos_len = (size_t)(s.p - b->wos);
	sc_ws(&s);
	if (!sc_at(&s, '}'))
		return false;
	s.p++;
	sc_ws(&s);
	if (s.p != s.e)
		return false;
	b->present = b->is_array = true;
	return true;
}

/* ---- jansson's reading --------------------------------------------------- */

static bool nonempty_string(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) && json_string_length(v) > 0;
}

static unsigned json_problems(json_t *o)
{
	unsigned p = 0;
	if (!nonempty_string(o, "address1"))
		p |= PB_SIM_P_ADDRESS1;
	if (!nonempty_string(o, "city"))
		p |= PB_SIM_P_CITY;
	if (!nonempty_string(o, "state"))
		p |= PB_SIM_P_STATE;
	if (!nonempty_string(o, "zip"))
		p |= PB_SIM_P_ZIP;
	json_t *st = json_object_get(o, "state"),
	       *zip = json_object_get(o, "zip");
	if (nonempty_string(o, "state") &&
	    !state_ok(json_string_value(st), json_string_length(st)))
		p |= PB_SIM_P_BAD_STATE;
	if (nonempty_string(o, "zip") &&
	    !zip_ok(json_string_value(zip), json_string_length(zip)))
		p |= PB_SIM_P_BAD_ZIP;
	json_t *services = json_object_get(o, "services"), *svc;
	size_t i;
	bool named = false;
	json_array_foreach(services, i, svc)
	{
		if (json_is_object(svc) && nonempty_string(svc, "serviceName"))
			named = true;
	}
	if (!json_is_array(services) || json_array_size(services) == 0)
		p |= PB_SIM_P_SERVICES;
	else if (!named)
		p |= PB_SIM_P_UNNAMED;
	return p;
}

static char *own(pb_sim_batch_t *b, char *text)
{
	if (text)
		b->owned[b->nowned++] = text;
	return text;
}

/* One element of workOrders, read from jansson's tree. */
static int json_order(pb_sim_batch_t *b, json_t *o, pb_sim_order_t *out,
		      char **names)
{
	const char *key;
	json_t *v;
	memset(out, 0, sizeof(*out));
	if (!json_is_object(o))
		return 0;
	out->is_object = true;
	if (nonempty_string(o, "workOrderNumber")) {
		json_t *won = json_object_get(o, "workOrderNumber");
		out->won = json_string_value(won);
		out->won_len = json_string_length(won);
	}
	json_t *status = json_object_get(o, "status");
	out->is_delete = json_is_string(status) &&
			 strcasecmp(json_string_value(status), "deleted") == 0;
	out->problems = json_problems(o);
	out->text = own(b, json_dumps(o, JSON_COMPACT));
	if (!out->text)
		return -1;
	out->len = strlen(out->text);
	out->names = *names;
	json_object_foreach(o, key, v)
	{
		size_t kn = strlen(key);
		if (key[0] == '_')
			continue;
		memcpy(*names, key, kn + 1);
		*names += kn + 1;
	}
	out->names_len = (size_t)(*names - out->names);
	return 0;
}

static int read_json(const char *text, size_t len, pb_sim_batch_t *b, char *err,
		     size_t err_size)
{
	json_error_t jerr;
	b->doc = pb_json_load(text, len, 0, &jerr); /* json_loadb, faster */
	if (!b->doc) {
		snprintf(err, err_size, "invalid JSON: %s (line %d)", jerr.text,
			 jerr.line);
		return -1;
	}
	json_t *wos = json_object_get(b->doc, "workOrders");
	if (!json_is_object(b->doc) || !wos)
		return 0;
	b->present = true;
	b->is_array = json_is_array(wos);
	b->n = b->is_array ? json_array_size(wos) : 0;
	/* the decoded names are no longer than the text they came from */
	b->owned = calloc(b->n + 1, sizeof(*b->owned));
	b->orders = calloc(b->n ? b->n : 1, sizeof(*b->orders));
	char *names = b->names_buf = malloc(len + 1);
	if (!b->owned || !b->orders || !names)
		goto nomem;
	b->wos = own(b, json_dumps(wos, JSON_COMPACT | JSON_ENCODE_ANY));
	if (!b->wos)
		goto nomem;
	b->wos_len = strlen(b->wos);
	for (size_t i = 0; i < b->n; i++)
		if (json_order(b, json_array_get(wos, i), &b->orders[i],
			       &names) != 0)
			goto nomem;
	return 0;
nomem:
	snprintf(err, err_size, "simulator out of memory");
	return -1;
}

int pb_sim_batch_read(const char *text, size_t len, pb_sim_batch_t *b,
		      char *err, size_t err_size)
{
	memset(b, 0, sizeof(*b));
	if (scan_batch(text, len, b))
		return 0;
	pb_sim_batch_free(b);
	return read_json(text, len, b, err, err_size);
}

int pb_sim_batch_read_json(const char *text, size_t len, pb_sim_batch_t *b,
			   char *err, size_t err_size)
{
	memset(b, 0, sizeof(*b));
	return read_json(text, len, b, err, err_size);
}

void pb_sim_batch_free(pb_sim_batch_t *b)
{
	for (size_t i = 0; i < b->nowned; i++)
		free(b->owned[i]);
	free(b->owned);
	free(b->orders);
	free(b->names_buf);
	json_decref(b->doc);
	memset(b, 0, sizeof(*b));
}

void pb_sim_problems_text(unsigned problems, char *buf, size_t size)
{
	static const char *const what[] = {
	    "missing address1", "missing city",
	    "missing state",	"missing zip",
	    "invalid state",	"invalid zip",
	    "missing services", "no service with a serviceName"};
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(what) / sizeof(what[0]); i++) {
		if (!(problems & (1u << i)) || used >= size)
			continue;
		int w = snprintf(buf + used, size - used, "%s%s",
				 used ? ", " : "", what[i]);
		if (w > 0)
			used += (size_t)w;
	}
}
