/*
 * config.c: load, validate and describe the worker's configuration
 * (contract section 9; the contract for callers is config.h).
 *
 * Design. Loading is one pass over the parsed JSON that never stops at the
 * first mistake: every check that fails appends one line, "PATH: what is
 * wrong", to a growing report, and loading carries on with the default in
 * place of the bad value. Only at the end does the report decide between
 * PB_OK and PB_ERR_CONFIG. An operator running check-config then fixes the
 * whole file in one go instead of one mistake per deploy.
 *
 * Scalar sections (topics, redis, pruvan, dedupe, http, worker) are
 * described by tables of fields (key, type, bounds, struct offset), so a new
 * knob is one table row and automatically gets unknown-key detection with a
 * did-you-mean, type checks and range checks. Accounts and relay carry
 * secrets and enums and are checked by hand.
 *
 * Secrets. A PushKey URL (and an account's relay password and token) is
 * "env:NAME" or "file:/path", resolved here (a PushKey may also be
 * "pruvan:validate": learned at run time); a literal URL in the file is refused
 * because config files end up in Git and ConfigMaps. Other string values that
 * may hold credentials (redis.url, librdkafka properties) accept the same
 * forms. Invariant: no message ever contains a secret value, not even a piece
 * of it; messages name the variable or the file instead. Values that are not
 * secret (a mode, a topic) are quoted back, bounded and escaped.
 *
 * Never: print, log or exit (library code, STYLE.md); read a secret file
 * larger than PB_SECRET_MAX; follow a literal PushKey URL.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jtext.h"
#include "redis_conn.h"
#include "util.h"

#define PB_CONFIG_FILE_MAX (1024 * 1024) /* a config file is small */
#define PB_SECRET_MAX	   (64 * 1024)	 /* a secret file is tiny */
#define PB_PATH_MAX	   320		 /* JSON paths in messages */

/* ------------------------------------------------------------------ */
/* The mistake report                                                  */
/* ------------------------------------------------------------------ */

typedef struct report {
	pb_jtext_t text; /* the lines, '\n' between them */
	size_t count;
	bool nomem;
	/* check-config --no-env: secret references are checked for their
	 * form but not resolved (resolve_secret answers NULL without a
	 * mistake, so the setting keeps its default). */
	bool no_env;
} report_t;

static void report_add(report_t *r, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void report_add(report_t *r, const char *path, const char *fmt, ...)
{
	char line[1024];
	int n = snprintf(line, sizeof(line), "%s: ", path);
	if (n < 0)
		n = 0;
	if ((size_t)n < sizeof(line)) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	r->count++;
	if (r->nomem)
		return;
	if (r->text.len > 0)
		pb_jt_put(&r->text, "\n", 1);
	pb_jt_lit(&r->text, line);
	if (r->text.bad)
		r->nomem = true;
}

/*
 * Copy the report into the caller's buffer. When it does not fit, keep as
 * many whole lines as fit and end with a line saying how many were left
 * out, so a truncated report never shows half a path.
 */
static void report_emit(const report_t *r, char *errstr, size_t size)
{
	if (!errstr || size == 0)
		return;
	if (r->nomem) {
		pb_strlcpy(errstr, "$: out of memory while validating", size);
		return;
	}
	if (!r->text.p) {
		errstr[0] = '\0';
		return;
	}
	if (r->text.len < size) {
		memcpy(errstr, r->text.p, r->text.len + 1);
		return;
	}
	size_t kept = 0, lines = 0;
	const char *p = r->text.p;
	for (;;) {
		const char *nl = strchr(p, '\n');
		size_t end = nl ? (size_t)(nl - r->text.p) : r->text.len;
		char tail[64];
		snprintf(tail, sizeof(tail), "\n... and %zu more",
			 r->count - lines - 1);
		if (end + strlen(tail) + 1 > size)
			break;
		kept = end;
		lines++;
		if (!nl)
			break;
		p = nl + 1;
	}
	if (lines == 0) {
		/* Not even one line fits: cut the first line. */
		pb_strlcpy(errstr, r->text.p, size);
		return;
	}
	memcpy(errstr, r->text.p, kept);
	snprintf(errstr + kept, size - kept, "\n... and %zu more",
		 r->count - lines);
}

/* ------------------------------------------------------------------ */
/* Small helpers: paths, quoting, suggestions                          */
/* ------------------------------------------------------------------ */

static bool is_ident(const char *s)
{
	if (!*s)
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/*
 * Quote a non-secret string for a message: "..." with control characters,
 * quotes and backslashes escaped, cut at 48 characters so a mistaken
 * paste of a whole document cannot flood the report.
 */
static void quote(const char *s, char *buf, size_t size)
{
	size_t o = 0;
	const size_t limit = 48;
	size_t n = 0;
	if (size < 8) {
		if (size)
			buf[0] = '\0';
		return;
	}
	buf[o++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
		char esc[8];
		if (n == limit) {
			if (o + 4 < size) {
				memcpy(buf + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (*p == '"' || *p == '\\')
			snprintf(esc, sizeof(esc), "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
		else
			snprintf(esc, sizeof(esc), "%c", *p);
		size_t el = strlen(esc);
		if (o + el + 2 > size)
			break;
		memcpy(buf + o, esc, el);
		o += el;
	}
	buf[o++] = '"';
	buf[o] = '\0';
}

/* base.key, or base["key"] when key is not a plain identifier. */
static void path_key(char *out, size_t size, const char *base, const char *key)
{
	if (is_ident(key)) {
		snprintf(out, size, "%s.%s", base, key);
	} else {
		char q[160];
		quote(key, q, sizeof(q));
		snprintf(out, size, "%s[%s]", base, q);
	}
}

static void path_index(char *out, size_t size, const char *base, size_t i)
{
	snprintf(out, size, "%s[%zu]", base, i);
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number with a fraction";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "something else";
}

static int lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* Case-insensitive Levenshtein distance, capped: keys are short. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 63 || lb > 63)
		return 64;
	size_t prev[64], cur[64];
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub =
			    prev[j - 1] + (lower(a[i - 1]) != lower(b[j - 1]));
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			size_t m = sub < del ? sub : del;
			cur[j] = m < ins ? m : ins;
		}
		memcpy(prev, cur, (lb + 1) * sizeof(size_t));
	}
	return prev[lb];
}

/*
 * The known key the user probably meant: the same key in another case,
 * or one within a small edit distance (at most 2, and less than a third of
 * its length so that short keys do not match everything).
 */
static const char *suggest(const char *key, const char *const *known, size_t n)
{
	const char *best = NULL;
	size_t best_d = (size_t)-1;
	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(key, known[i]) == 0)
			return known[i];
		size_t d = edit_distance(key, known[i]);
		size_t len = strlen(known[i]);
		if (d <= 2 && d * 3 < len && d < best_d) {
			best = known[i];
			best_d = d;
		}
	}
	return best;
}

static void report_unknown_key(report_t *r, const char *path, const char *key,
			       const char *const *known, size_t n)
{
	const char *s = suggest(key, known, n);
	if (s) {
		report_add(r, path, "unknown key (did you mean \"%s\"?)", s);
		return;
	}
	char list[512];
	size_t o = 0;
	list[0] = '\0';
	for (size_t i = 0; i < n && o < sizeof(list); i++) {
		int w = snprintf(list + o, sizeof(list) - o, "%s%s",
				 i ? ", " : "", known[i]);
		if (w < 0)
			break;
		o += (size_t)w;
	}
	report_add(r, path, "unknown key (expected one of: %s)", list);
}

static bool has_space_or_ctl(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 0x20 || *p == 0x7f)
			return true;
	return false;
}

static void trim_trailing_space(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' ||
			 s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
}

/* ------------------------------------------------------------------ */
/* Value checks shared by the file and the environment overrides       */
/* ------------------------------------------------------------------ */

/*
 * "host:port": host non-empty (a name, an IPv4 address, or [IPv6]), port a
 * decimal 0..65535 (0 asks the kernel for a free port, which tests use).
 */
static bool listen_valid(const char *s)
{
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || has_space_or_ctl(s))
		return false;
	if (s[0] == '[') {
		if (colon[-1] != ']' || colon - s < 3)
			return false;
	} else if (memchr(s, ':', (size_t)(colon - s))) {
		return false; /* a bare IPv6 address needs brackets */
	}
	int64_t port;
	if (!pb_parse_i64(colon + 1, &port) || colon[1] == '+' ||
	    colon[1] == '-' || port < 0 || port > 65535)
		return false;
	return true;
}

static void check_listen(report_t *r, const char *path, const char *v)
{
	if (listen_valid(v))
		return;
	char q[64];
	quote(v, q, sizeof(q));
	report_add(r, path,
		   "expected \"host:port\" with a port 0..65535, e.g. "
		   "\"127.0.0.1:9464\" or \"[::]:9464\" (got %s)",
		   q);
}

/* http.listen: "" turns the operations endpoint off (as documented). */
static void check_listen_or_off(report_t *r, const char *path, const char *v)
{
	if (*v)
		check_listen(r, path, v);
}

/*
 * redis.url: redis://, rediss:// or unix://, parsed by the same function
 * that connects (pb_redis_url_parse). The URL may hold a password, so it
 * is never quoted back: the parser's message says what is expected.
 */
static bool redis_url_valid(const char *s)
{
	pb_redis_url_t u;
	if (pb_redis_url_parse(s, &u, NULL, 0) != PB_OK)
		return false;
	pb_redis_url_clear(&u);
	return true;
}

static void check_redis_url(report_t *r, const char *path, const char *v,
			    const char *origin)
{
	pb_redis_url_t u;
	char e[512];
	pb_err_t err = pb_redis_url_parse(v, &u, e, sizeof(e));
	if (err == PB_OK) {
		pb_redis_url_clear(&u);
		return;
	}
	if (err == PB_ERR_NOMEM) {
		r->nomem = true;
		return;
	}
	report_add(r, path, "%s%s%s%s", origin ? "the URL from " : "",
		   origin ? origin : "", origin ? " is " : "", e);
}

/* Kafka's own rule for topic names: [A-Za-z0-9._-], 1..249 characters. */
static void check_topic(report_t *r, const char *path, const char *v)
{
	size_t n = strlen(v);
	if (n == 0) {
		report_add(r, path, "topic name must be non-empty");
		return;
	}
	bool ok = n <= 249;
	for (const char *p = v; ok && *p; p++)
		ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		     (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
		     *p == '-';
	if (!ok) {
		char q[64];
		quote(v, q, sizeof(q));
		report_add(r, path,
			   "invalid topic name %s (1..249 characters of "
			   "A-Z a-z 0-9 . _ -)",
			   q);
	}
}

static void check_key_prefix(report_t *r, const char *path, const char *v)
{
	if (strlen(v) >= 1 && strlen(v) <= 64 && !has_space_or_ctl(v))
		return;
	report_add(r, path,
		   "key prefix must be 1..64 characters without spaces or "
		   "control characters");
}

/* ------------------------------------------------------------------ */
/* Secrets                                                             */
/* ------------------------------------------------------------------ */

static bool is_secret_ref(const char *v)
{
	return strncmp(v, "env:", 4) == 0 || strncmp(v, "file:", 5) == 0;
}

/* Read up to size bytes of fd into buf (size + 1 bytes), NUL-terminated:
 * the count read (less when the file ends early), or -1 with errno set. */
static ssize_t read_all(int fd, char *buf, size_t size)
{
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return (ssize_t)got;
}

/*
 * Read a mounted secret file: bounded, trailing whitespace trimmed (the
 * newline that `echo` and most editors add). Reports name the file and the
 * system error, never any of its content.
 */
static char *read_secret_file(report_t *r, const char *path, const char *file)
{
	char *buf = NULL;
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		report_add(r, path, "cannot read secret file %s: %s", file,
			   strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		report_add(r, path, "cannot read secret file %s: %s", file,
			   strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		report_add(r, path, "secret file %s is not a regular file",
			   file);
		goto out;
	}
	if (st.st_size > PB_SECRET_MAX) {
		report_add(r, path, "secret file %s is larger than %d bytes",
			   file, PB_SECRET_MAX);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		r->nomem = true;
		goto out;
	}
	ssize_t got = read_all(fd, buf, (size_t)st.st_size);
	if (got < 0) {
		report_add(r, path, "cannot read secret file %s: %s", file,
			   strerror(errno));
		free(buf);
		buf = NULL;
		goto out;
	}
	if (strlen(buf) != (size_t)got) {
		report_add(r, path, "secret file %s contains a NUL byte", file);
		free(buf);
		buf = NULL;
		goto out;
	}
	trim_trailing_space(buf);
	if (!*buf) {
		report_add(r, path, "secret file %s is empty", file);
		free(buf);
		buf = NULL;
	}
out:
	close(fd);
	return buf;
}

static bool env_name_valid(const char *s)
{
	if (!*s || (*s >= '0' && *s <= '9'))
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

/*
 * Resolve "env:NAME" / "file:/path" (ref must be one of them). Returns the
 * owned value, or NULL with a line in the report. *origin_out (if given)
 * receives "environment variable NAME" / "secret file /path", which is what
 * later messages about the value say instead of quoting it.
 */
static char *resolve_secret(report_t *r, const char *path, const char *ref,
			    char *origin, size_t origin_size)
{
	if (strncmp(ref, "env:", 4) == 0) {
		const char *name = ref + 4;
		if (!env_name_valid(name)) {
			char q[80];
			quote(name, q, sizeof(q));
			report_add(r, path,
				   "invalid environment variable name %s in "
				   "\"env:NAME\" (letters, digits, _)",
				   q);
			return NULL;
		}
		if (origin)
			snprintf(origin, origin_size, "environment variable %s",
				 name);
		if (r->no_env)
			return NULL;
		const char *v = getenv(name);
		if (!v) {
			report_add(r, path,
				   "environment variable %s is not set", name);
			return NULL;
		}
		char *dup = strdup(v);
		if (!dup) {
			r->nomem = true;
			return NULL;
		}
		trim_trailing_space(dup);
		if (!*dup) {
			report_add(r, path, "environment variable %s is empty",
				   name);
			free(dup);
			return NULL;
		}
		return dup;
	}
	const char *file = ref + 5;
	if (!*file) {
		report_add(r, path,
			   "\"file:\" needs a path, e.g. "
			   "\"file:/run/secrets/pushkey\"");
		return NULL;
	}
	if (origin)
		snprintf(origin, origin_size, "secret file %s", file);
	if (r->no_env)
		return NULL;
	return read_secret_file(r, path, file);
}

/* An http(s) URL with a host; checked without ever quoting it. */
static bool http_url_valid(const char *s)
{
	const char *host = pb_url_authority(s);
	if (!host || has_space_or_ctl(s))
		return false;
	return *host && *host != '/' && *host != '?' && *host != ':';
}

/* ------------------------------------------------------------------ */
/* Egress and TLS settings                                             */
/* ------------------------------------------------------------------ */

static void check_file_path(report_t *r, const char *path, const char *v)
{
	if (!*v || has_space_or_ctl(v) || v[0] != '/')
		report_add(r, path,
			   "expected an absolute file path, e.g. "
			   "\"/etc/pruvan-bridge/ca.pem\"");
}

/* http://, https://, socks5://... with a host. Never quoted back: a proxy
 * URL may carry credentials. */
static void check_proxy_url(report_t *r, const char *path, const char *v)
{
	static const char *const schemes[] = {"http://",   "https://",
					      "socks4://", "socks4a://",
					      "socks5://", "socks5h://"};
	const char *host = NULL;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncasecmp(v, schemes[i], strlen(schemes[i])) == 0)
			host = v + strlen(schemes[i]);
	if (host && *host && *host != '/' && *host != ':' &&
	    !has_space_or_ctl(v))
		return;
	report_add(r, path,
		   "not a proxy URL: expected "
		   "\"http://HOST:PORT\" (or https://, socks5://); "
		   "leave it out to use https_proxy from the "
		   "environment");
}

/* ------------------------------------------------------------------ */
/* The loader                                                          */
/* ------------------------------------------------------------------ */

typedef struct loader {
	report_t rep;
	pb_config_t *cfg;
	bool kafka_only; /* pb_config_load_kafka: the "kafka" section alone */
	/* pb_config_load_tool: the accounts' PushKeys and relay credentials
	 * are checked for their form but not resolved */
	bool no_account_secrets;
} loader_t;

static bool set_str(loader_t *L, char **slot, const char *v)
{
	char *dup = strdup(v);
	if (!dup) {
		L->rep.nomem = true;
		return false;
	}
	free(*slot);
	*slot = dup;
	return true;
}

/* pruvan.apiUrl: where a learned PushKey is pushed (not a secret). */
static void check_api_url(report_t *r, const char *path, const char *v)
{
	if (!http_url_valid(v) || strchr(v, '?'))
		report_add(r, path,
			   "expected an http:// or https:// URL without a "
			   "query, e.g. \"https://direct.pruvan.com/api/\"");
}

/* Table-driven scalar sections. */
typedef enum { F_STRING, F_INT, F_INT64, F_HOOK } field_type_t;
typedef void (*str_check_fn)(report_t *r, const char *path, const char *v);

typedef struct field {
	const char *key;
	field_type_t type;
	size_t offset;	    /* into pb_config_t */
	int64_t min, max;   /* numbers */
	str_check_fn check; /* strings, may be NULL */
	const char *unit;   /* for range messages, e.g. "ms" */
} field_t;

#define OFF(f) offsetof(pb_config_t, f)

static const field_t topics_fields[] = {
    {"orders", F_STRING, OFF(topic_orders), 0, 0, check_topic, NULL},
    {"inbound", F_STRING, OFF(topic_inbound), 0, 0, check_topic, NULL},
    {"results", F_STRING, OFF(topic_results), 0, 0, check_topic, NULL},
    {"dlq", F_STRING, OFF(topic_dlq), 0, 0, check_topic, NULL},
};

/* redis.url, redis.password, tls, sentinel and cluster are handled by
 * hand (redis_special: secrets and objects). */
static const field_t redis_fields[] = {
    {"url", F_STRING, OFF(redis_url), 0, 0, NULL, NULL},
    {"keyPrefix", F_STRING, OFF(redis_key_prefix), 0, 0, check_key_prefix,
     NULL},
    {"password", F_STRING, OFF(redis_password), 0, 0, NULL, NULL},
    {"tls", F_HOOK, 0, 0, 0, NULL, NULL},
    {"sentinel", F_HOOK, 0, 0, 0, NULL, NULL},
    {"cluster", F_HOOK, 0, 0, 0, NULL, NULL},
    /* WAIT: more replicas than any deployment has is a typo */
    {"minReplicas", F_INT, OFF(redis_min_replicas), 0, 16, NULL, NULL},
    {"waitTimeoutMs", F_INT, OFF(redis_wait_timeout_ms), 1, 60000, NULL, "ms"},
    /* up to 30 days: a rollout longer than that is not a rollout */
    {"upgradeWindowSeconds", F_INT64, OFF(redis_upgrade_window_seconds), 0,
     2592000, NULL, "s"},
};

/*
 * Bounds: wide enough for any sane deployment, narrow enough that a typo
 * (seconds for milliseconds, an extra zero) is caught before it hurts.
 * batchMaxWaitMs may be 0: push at once, no batching delay.
 */
static const field_t pruvan_fields[] = {
    {"timeoutMs", F_INT, OFF(pruvan_timeout_ms), 100, 600000, NULL, "ms"},
    {"maxAttempts", F_INT, OFF(pruvan_max_attempts), 1, 100, NULL, NULL},
    {"backoffBaseMs", F_INT, OFF(pruvan_backoff_base_ms), 1, 600000, NULL,
     "ms"},
    {"backoffMaxMs", F_INT, OFF(pruvan_backoff_max_ms), 1, 3600000, NULL, "ms"},
    {"batchMaxOrders", F_INT, OFF(pruvan_batch_max_orders), 1, 1000, NULL,
     NULL},
    {"batchMaxWaitMs", F_INT, OFF(pruvan_batch_max_wait_ms), 0, 60000, NULL,
     "ms"},
    {"maxInFlight", F_INT, OFF(pruvan_max_in_flight), 1, 1024, NULL, NULL},
    {"circuitFailures", F_INT, OFF(pruvan_circuit_failures), 1, 10000, NULL,
     NULL},
    {"circuitOpenMs", F_INT, OFF(pruvan_circuit_open_ms), 100, 3600000, NULL,
     "ms"},
    {"apiUrl", F_STRING, OFF(pruvan_api_url), 0, 0, check_api_url, NULL},
    {"caFile", F_STRING, OFF(pruvan_ca_file), 0, 0, check_file_path, NULL},
    {"proxy", F_STRING, OFF(pruvan_proxy), 0, 0, check_proxy_url, NULL},
};

static const field_t dedupe_fields[] = {
    /* up to 400 days: Redis keeps what it is told to. */
    {"ttlSeconds", F_INT64, OFF(dedupe_ttl_seconds), 1, 34560000, NULL, "s"},
};

static const field_t http_fields[] = {
    {"listen", F_STRING, OFF(http_listen), 0, 0, check_listen_or_off, NULL},
};

static const field_t worker_fields[] = {
    {"maxPending", F_INT, OFF(worker_max_pending), 1, 10000000, NULL, NULL},
    {"shutdownGraceMs", F_INT, OFF(worker_shutdown_grace_ms), 100, 3600000,
     NULL, "ms"},
};

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

static void check_field(loader_t *L, const char *path, const field_t *f,
			json_t *v)
{
	char *base = (char *)L->cfg;
	if (f->type == F_STRING) {
		if (!json_is_string(v)) {
			report_add(&L->rep, path, "expected a string, got %s",
				   type_name(v));
			return;
		}
		const char *s = json_string_value(v);
		if (strlen(s) != json_string_length(v)) {
			report_add(&L->rep, path,
				   "string contains a NUL character");
			return;
		}
		size_t before = L->rep.count;
		if (f->check)
			f->check(&L->rep, path, s);
		if (L->rep.count == before)
			set_str(L, (char **)(base + f->offset), s);
		return;
	}
	if (!json_is_integer(v)) {
		report_add(&L->rep, path, "expected an integer, got %s",
			   type_name(v));
		return;
	}
	json_int_t n = json_integer_value(v);
	if (n < f->min || n > f->max) {
		report_add(&L->rep, path,
			   "must be between %" PRId64 " and %" PRId64 "%s%s "
			   "(got %" JSON_INTEGER_FORMAT ")",
			   f->min, f->max, f->unit ? " " : "",
			   f->unit ? f->unit : "", n);
		return;
	}
	if (f->type == F_INT)
		*(int *)(base + f->offset) = (int)n;
	else
		*(int64_t *)(base + f->offset) = (int64_t)n;
}

/* Whether v is an object; reported at path when it is not. */
static bool want_object(loader_t *L, const char *path, const json_t *v)
{
	if (json_is_object(v))
		return true;
	report_add(&L->rep, path, "expected an object, got %s", type_name(v));
	return false;
}

/* Walk an object whose keys are all in the table. */
static void load_section(loader_t *L, json_t *obj, const char *path,
			 const field_t *fields, size_t n,
			 void (*special)(loader_t *, const char *, json_t *,
					 const char *))
{
	if (!want_object(L, path, obj))
		return;
	const char *known[16];
	for (size_t i = 0; i < n && i < 16; i++)
		known[i] = fields[i].key;
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		char p[PB_PATH_MAX];
		path_key(p, sizeof(p), path, key);
		const field_t *f = NULL;
		for (size_t i = 0; i < n; i++)
			if (strcmp(fields[i].key, key) == 0)
				f = &fields[i];
		if (!f) {
			report_unknown_key(&L->rep, p, key, known, n);
			continue;
		}
		/* A field without a string check but with a section hook
		 * is checked by the hook (redis.url: maybe a secret). */
		if (special && f->check == NULL &&
		    (f->type == F_STRING || f->type == F_HOOK)) {
			special(L, p, v, key);
			continue;
		}
		check_field(L, p, f, v);
	}
}

static void redis_url_field(loader_t *L, const char *path, json_t *v);
static void redis_tls_field(loader_t *L, const char *path, json_t *v);
static void redis_sentinel_field(loader_t *L, const char *path, json_t *v);
static void redis_cluster_field(loader_t *L, const char *path, json_t *v);
static char *secret_field(loader_t *L, const char *path, json_t *v,
			  char **source);
static void load_string_list(loader_t *L, const char *path, json_t *v,
			     bool extra, char ***out, size_t *out_len);

static void redis_special(loader_t *L, const char *path, json_t *v,
			  const char *key)
{
	if (strcmp(key, "url") == 0) {
		redis_url_field(L, path, v);
	} else if (strcmp(key, "password") == 0) {
		char *src = NULL;
		char *pw = secret_field(L, path, v, &src);
		/* the source is kept under --no-env too, where the secret
		 * itself is not read: the URL's user then still has one */
		if (pw || src) {
			free(L->cfg->redis_password);
			L->cfg->redis_password = pw;
			free(L->cfg->redis_password_source);
			L->cfg->redis_password_source = src;
		}
	} else if (strcmp(key, "tls") == 0) {
		redis_tls_field(L, path, v);
	} else if (strcmp(key, "sentinel") == 0) {
		redis_sentinel_field(L, path, v);
	} else if (strcmp(key, "cluster") == 0) {
		redis_cluster_field(L, path, v);
	}
}

/* redis.url: a plain URL or a secret reference (it may carry a password). */
static void redis_url_field(loader_t *L, const char *path, json_t *v)
{
	if (!json_is_string(v)) {
		report_add(&L->rep, path, "expected a string, got %s",
			   type_name(v));
		return;
	}
	const char *s = json_string_value(v);
	if (!is_secret_ref(s)) {
		if (redis_url_valid(s))
			set_str(L, &L->cfg->redis_url, s);
		else
			check_redis_url(&L->rep, path, s, NULL);
		return;
	}
	char origin[PB_PATH_MAX];
	char *val = resolve_secret(&L->rep, path, s, origin, sizeof(origin));
	if (!val)
		return;
	if (!redis_url_valid(val)) {
		check_redis_url(&L->rep, path, val, origin);
		free(val);
		return;
	}
	free(L->cfg->redis_url);
	L->cfg->redis_url = val;
}

/* A secret that must be a reference ("env:NAME" / "file:/path"): its
 * value (owned), *source the reference; NULL after a reported mistake. */
static char *secret_field(loader_t *L, const char *path, json_t *v,
			  char **source)
{
	*source = NULL;
	if (!json_is_string(v)) {
		report_add(&L->rep, path, "expected a string, got %s",
			   type_name(v));
		return NULL;
	}
	const char *s = json_string_value(v);
	if (!is_secret_ref(s)) {
		report_add(&L->rep, path,
			   "secrets come only from the environment or a "
			   "mounted secret file: use \"env:NAME\" or "
			   "\"file:/path\"");
		return NULL;
	}
	char *val = resolve_secret(&L->rep, path, s, NULL, 0);
	/* under --no-env the secret is not read, but where it comes from is
	 * still known (and checked for form) */
	if (!val && !L->rep.no_env)
		return NULL;
	if (!(*source = strdup(s))) {
		L->rep.nomem = true;
		free(val);
		return NULL;
	}
	return val;
}

/* The members of a settings object, each checked by the caller: false
 * (reported) when v is not an object or has a key outside known. */
static bool object_keys_known(loader_t *L, const char *path, json_t *v,
			      const char *const *known, size_t n)
{
	if (!want_object(L, path, v))
		return false;
	bool ok = true;
	const char *key;
	json_t *m;
	json_object_foreach(v, key, m)
	{
		bool found = false;
		for (size_t i = 0; i < n; i++)
			found = found || strcmp(key, known[i]) == 0;
		if (!found) {
			char p[PB_PATH_MAX];
			path_key(p, sizeof(p), path, key);
			report_unknown_key(&L->rep, p, key, known, n);
			ok = false;
		}
	}
	return ok;
}

/* A string member that must be an absolute file path, into *slot. */
static void file_member(loader_t *L, const char *path, json_t *obj,
			const char *key, char **slot)
{
	json_t *m = json_object_get(obj, key);
	if (!m)
		return;
	char p[PB_PATH_MAX];
	path_key(p, sizeof(p), path, key);
	if (!json_is_string(m)) {
		report_add(&L->rep, p, "expected a string, got %s",
			   type_name(m));
		return;
	}
	size_t before = L->rep.count;
	check_file_path(&L->rep, p, json_string_value(m));
	if (L->rep.count == before)
		set_str(L, slot, json_string_value(m));
}

static void redis_tls_field(loader_t *L, const char *path, json_t *v)
{
	static const char *const known[] = {"caFile", "certFile", "keyFile",
					    "serverName", "verify"};
	if (!object_keys_known(L, path, v, known, NFIELDS(known)))
		return;
	pb_config_t *c = L->cfg;
	c->redis_tls = true;
	file_member(L, path, v, "caFile", &c->redis_tls_ca_file);
	file_member(L, path, v, "certFile", &c->redis_tls_cert_file);
	file_member(L, path, v, "keyFile", &c->redis_tls_key_file);
	if (!c->redis_tls_cert_file != !c->redis_tls_key_file)
		report_add(&L->rep, path,
			   "certFile and keyFile go together (the client "
			   "certificate and its private key)");
	json_t *m = json_object_get(v, "serverName");
	char p[PB_PATH_MAX];
	if (m) {
		path_key(p, sizeof(p), path, "serverName");
		if (!json_is_string(m) || !json_string_value(m)[0] ||
		    has_space_or_ctl(json_string_value(m)))
			report_add(&L->rep, p,
				   "expected the host name the "
				   "server's certificate names");
		else
			set_str(L, &c->redis_tls_server_name,
				json_string_value(m));
	}
	m = json_object_get(v, "verify");
	if (m) {
		path_key(p, sizeof(p), path, "verify");
		if (!json_is_boolean(m))
			report_add(&L->rep, p,
				   "expected true or false, got "
				   "%s",
				   type_name(m));
		else
			c->redis_tls_verify = json_is_true(m);
	}
}

/* nodes: a non-empty array of distinct "HOST:PORT" (port 1..65535). */
static void node_list(loader_t *L, const char *path, json_t *obj, char ***out,
		      size_t *out_len)
{
	char p[PB_PATH_MAX];
	path_key(p, sizeof(p), path, "nodes");
	json_t *v = json_object_get(obj, "nodes");
	if (!v || !json_is_array(v) || json_array_size(v) == 0) {
		report_add(&L->rep, p,
			   "expected a non-empty array of "
			   "\"HOST:PORT\", e.g. [\"redis-0:6379\"]");
		return;
	}
	size_t before = L->rep.count;
	load_string_list(L, p, v, false, out, out_len);
	for (size_t i = 0; L->rep.count == before && i < *out_len; i++) {
		const char *n = (*out)[i];
		const char *colon = strrchr(n, ':');
		char ip[PB_PATH_MAX + 32];
		path_index(ip, sizeof(ip), p, i);
		if (!listen_valid(n) || strcmp(colon, ":0") == 0)
			report_add(&L->rep, ip,
				   "expected \"HOST:PORT\" with "
				   "a port 1..65535 ([IPv6]:PORT "
				   "for IPv6)");
	}
}

static void redis_sentinel_field(loader_t *L, const char *path, json_t *v)
{
	static const char *const known[] = {"masterName", "nodes", "password"};
	if (!object_keys_known(L, path, v, known, NFIELDS(known)))
		return;
	pb_config_t *c = L->cfg;
	json_t *m = json_object_get(v, "masterName");
	char p[PB_PATH_MAX];
	path_key(p, sizeof(p), path, "masterName");
	if (!m || !json_is_string(m) || !json_string_value(m)[0] ||
	    has_space_or_ctl(json_string_value(m)))
		report_add(&L->rep, p,
			   "expected the name the Sentinels "
			   "monitor the master under, e.g. "
			   "\"mymaster\"");
	else
		set_str(L, &c->redis_sentinel_master, json_string_value(m));
	node_list(L, path, v, &c->redis_sentinel_nodes,
		  &c->redis_sentinel_nodes_len);
	m = json_object_get(v, "password");
	if (m) {
		path_key(p, sizeof(p), path, "password");
		char *src = NULL;
		char *pw = secret_field(L, p, m, &src);
		free(src);
		if (pw) {
			free(c->redis_sentinel_password);
			c->redis_sentinel_password = pw;
		}
	}
}

static void redis_cluster_field(loader_t *L, const char *path, json_t *v)
{
	static const char *const known[] = {"nodes"};
	if (!object_keys_known(L, path, v, known, NFIELDS(known)))
		return;
	node_list(L, path, v, &L->cfg->redis_cluster_nodes,
		  &L->cfg->redis_cluster_nodes_len);
}

/* The redis section as a whole: what one setting alone cannot say. */
static void check_redis_cross(loader_t *L)
{
	pb_config_t *c = L->cfg;
	if (c->redis_sentinel_master && c->redis_cluster_nodes)
		report_add(&L->rep, "$.redis",
			   "sentinel and cluster exclude each other: a "
			   "Cluster fails over by itself");
	pb_redis_url_t u;
	if (pb_redis_url_parse(c->redis_url, &u, NULL, 0) != PB_OK)
		return;
	if (u.user && !u.password && !c->redis_password &&
	    !c->redis_password_source) /* --no-env: named, not read */
		report_add(&L->rep, "$.redis.url",
			   "names the user \"%s\" but no password: add "
			   ":PASSWORD to the URL or set $.redis.password",
			   u.user);
	if (c->redis_cluster_nodes && u.db != 0)
		report_add(&L->rep, "$.redis.url",
			   "Redis Cluster has only database 0 (the URL "
			   "names database %d)",
			   u.db);
	if (u.unix_path && (c->redis_tls || u.tls))
		report_add(&L->rep, "$.redis.tls",
			   "TLS over a unix socket is not supported: use "
			   "rediss://HOST or leave redis.tls out");
	pb_redis_url_clear(&u);
}

/* ---- kafka ---- */

/*
 * Property names that carry credentials in librdkafka (sasl.password,
 * ssl.key.password, ssl.keystore.password, ssl.key.pem,
 * sasl.oauthbearer.client.secret, sasl.oauthbearer.config...).
 */
static bool kafka_key_sensitive(const char *key)
{
	static const char *const words[] = {"password", "secret", "key.pem",
					    "oauthbearer.config", "sasl.jaas"};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strstr(key, words[i]))
			return true;
	return false;
}

static bool kafka_put(loader_t *L, const char *key, char *value_take,
		      bool sensitive)
{
	pb_config_t *c = L->cfg;
	for (size_t i = 0; i < c->kafka_len; i++) {
		if (strcmp(c->kafka_keys[i], key) == 0) {
			free(c->kafka_values[i]);
			c->kafka_values[i] = value_take;
			c->kafka_sensitive[i] = sensitive;
			return true;
		}
	}
	char *k = strdup(key);
	char **nk = realloc(c->kafka_keys, (c->kafka_len + 1) * sizeof(*nk));
	if (nk)
		c->kafka_keys = nk;
	char **nv = realloc(c->kafka_values, (c->kafka_len + 1) * sizeof(*nv));
	if (nv)
		c->kafka_values = nv;
	bool *ns =
	    realloc(c->kafka_sensitive, (c->kafka_len + 1) * sizeof(*ns));
	if (ns)
		c->kafka_sensitive = ns;
	if (!k || !nk || !nv || !ns) {
		free(k);
		free(value_take);
		L->rep.nomem = true;
		return false;
	}
	c->kafka_keys[c->kafka_len] = k;
	c->kafka_values[c->kafka_len] = value_take;
	c->kafka_sensitive[c->kafka_len] = sensitive;
	c->kafka_len++;
	return true;
}

static void load_kafka(loader_t *L, json_t *obj)
{
	if (!want_object(L, "$.kafka", obj))
		return;
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		char p[PB_PATH_MAX];
		path_key(p, sizeof(p), "$.kafka", key);
		if (!*key || has_space_or_ctl(key)) {
			report_add(&L->rep, p,
				   "invalid librdkafka property name");
			continue;
		}
		bool sensitive = kafka_key_sensitive(key);
		char num[64];
		char *val = NULL;
		switch (json_typeof(v)) {
		case JSON_STRING: {
			const char *s = json_string_value(v);
			if (strlen(s) != json_string_length(v)) {
				report_add(&L->rep, p,
					   "string contains a NUL character");
				continue;
			}
			if (is_secret_ref(s)) {
				val = resolve_secret(&L->rep, p, s, NULL, 0);
				if (!val)
					continue;
				sensitive = true;
			} else {
				val = strdup(s);
			}
			break;
		}
		case JSON_INTEGER:
			snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
				 json_integer_value(v));
			val = strdup(num);
			break;
		case JSON_REAL:
			snprintf(num, sizeof(num), "%.15g", json_real_value(v));
			val = strdup(num);
			break;
		case JSON_TRUE:
		case JSON_FALSE:
			val = strdup(json_is_true(v) ? "true" : "false");
			break;
		default:
			report_add(&L->rep, p,
				   "expected a string, number or boolean "
				   "(librdkafka property), got %s",
				   type_name(v));
			continue;
		}
		if (!val) {
			L->rep.nomem = true;
			return;
		}
		kafka_put(L, key, val, sensitive);
	}
}

/* ---- accounts ---- */

/* Every field the rules know (contract section 4): not "extra". The
 * rules' table (rules.c) is the reference; attribute7..attribute30 are
 * checked by pruvan_attribute_field. */
static const char *const pruvan_known_fields[] = {
    "clientDueDate",
    "clientStatus",
    "clientInstructions",
    "source_wo_id",
    "source_wo_number",
    "source_wo_provider",
    "description",
    "reference",
    "workOrderInfo",
    "options",
    "instructions",
    "projectOptions",
    "projectInstructions",
    "status",
    "dueDate",
    "startDate",
    "services",
    "workOrderNumber",
    "address1",
    "address2",
    "city",
    "state",
    "zip",
    "country",
    "gpsLatitude",
    "gpsLongitude",
    "assignedTo",
};

/* attribute7 .. attribute30: the remote system's correlation fields. */
static bool pruvan_attribute_field(const char *s)
{
	if (strncmp(s, "attribute", 9) != 0 || !s[9] || s[9] == '0' ||
	    strlen(s + 9) > 2 || strspn(s + 9, "0123456789") != strlen(s + 9))
		return false;
	long n = strtol(s + 9, NULL, 10);
	return n >= 7 && n <= 30;
}

static const char *const account_keys[] = {
    "pushKeyUrl", "mode",	 "autoAdmin",	 "allowDeletes", "statusPolicy",
    "users",	  "extraFields", "bodyEncoding", "relay",
};

static void account_destroy_fields(pb_account_t *a)
{
	if (!a)
		return;
	free(a->name);
	free(a->push_key_url);
	free(a->push_key_source);
	free(a->relay_username);
	free(a->relay_password);
	free(a->relay_token);
	free(a->relay_password_source);
	free(a->relay_token_source);
	for (size_t i = 0; i < a->users_len; i++)
		free(a->users[i]);
	free(a->users);
	for (size_t i = 0; i < a->extra_fields_len; i++)
		free(a->extra_fields[i]);
	free(a->extra_fields);
}

/* users / extraFields: an array of distinct non-empty strings. */
static void load_string_list(loader_t *L, const char *path, json_t *v,
			     bool extra, char ***out, size_t *out_len)
{
	if (!json_is_array(v)) {
		report_add(&L->rep, path,
			   "expected an array of strings, got %s",
			   type_name(v));
		return;
	}
	size_t n = json_array_size(v);
	char **list = calloc(n ? n : 1, sizeof(*list));
	if (!list) {
		L->rep.nomem = true;
		return;
	}
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *it = json_array_get(v, i);
		char p[PB_PATH_MAX];
		path_index(p, sizeof(p), path, i);
		if (!json_is_string(it)) {
			report_add(&L->rep, p, "expected a string, got %s",
				   type_name(it));
			continue;
		}
		const char *s = json_string_value(it);
		char q[64];
		quote(s, q, sizeof(q));
		if (!*s || strlen(s) != json_string_length(it)) {
			report_add(&L->rep, p, "must be a non-empty string");
			continue;
		}
		bool dup = false;
		for (size_t j = 0; j < len; j++)
			dup = dup || strcmp(list[j], s) == 0;
		if (dup) {
			report_add(&L->rep, p, "duplicate entry %s", q);
			continue;
		}
		if (extra) {
			bool known = pruvan_attribute_field(s);
			for (size_t j = 0; j < NFIELDS(pruvan_known_fields);
			     j++)
				known = known ||
					strcmp(s, pruvan_known_fields[j]) == 0;
			if (known) {
				report_add(&L->rep, p,
					   "%s is one of Pruvan's known "
					   "fields; extraFields is only for "
					   "fields outside them",
					   q);
				continue;
			}
		}
		list[len] = strdup(s);
		if (!list[len]) {
			L->rep.nomem = true;
			break;
		}
		len++;
	}
	for (size_t i = 0; i < *out_len; i++)
		free((*out)[i]);
	free(*out);
	*out = list;
	*out_len = len;
}

/* mode / statusPolicy: one of two names. */
static bool load_enum(loader_t *L, const char *path, json_t *v,
		      const char *what, const char *a, const char *b, int *out)
{
	if (!json_is_string(v)) {
		report_add(&L->rep, path, "expected a string, got %s",
			   type_name(v));
		return false;
	}
	const char *s = json_string_value(v);
	if (strcmp(s, a) == 0) {
		*out = 0;
		return true;
	}
	if (strcmp(s, b) == 0) {
		*out = 1;
		return true;
	}
	char q[64];
	quote(s, q, sizeof(q));
	report_add(&L->rep, path, "unknown %s %s (expected \"%s\" or \"%s\")",
		   what, q, a, b);
	return false;
}

const char *pb_body_encoding_name(pb_body_encoding_t e)
{
	switch (e) {
	case PB_BODY_MULTIPART:
		return "multipart";
	case PB_BODY_JSON:
		return "json";
	case PB_BODY_FORM:
		break;
	}
	return "form";
}

/* bodyEncoding: form (default), multipart or json. */
static void load_body_encoding(loader_t *L, const char *path, json_t *v,
			       pb_body_encoding_t *out)
{
	static const pb_body_encoding_t all[] = {
	    PB_BODY_FORM, PB_BODY_MULTIPART, PB_BODY_JSON};
	if (!json_is_string(v)) {
		report_add(&L->rep, path, "expected a string, got %s",
			   type_name(v));
		return;
	}
	for (size_t i = 0; i < NFIELDS(all); i++) {
		if (strcmp(json_string_value(v),
			   pb_body_encoding_name(all[i])) == 0) {
			*out = all[i];
			return;
		}
	}
	char q[64];
	quote(json_string_value(v), q, sizeof(q));
	report_add(&L->rep, path,
		   "unknown bodyEncoding %s (expected \"form\", what Pruvan "
		   "documents, \"multipart\" or \"json\")",
		   q);
}

static void load_bool(loader_t *L, const char *path, json_t *v, bool *out)
{
	if (!json_is_boolean(v)) {
		report_add(&L->rep, path, "expected a boolean, got %s",
			   type_name(v));
		return;
	}
	*out = json_is_true(v);
}

/* resolve_secret for an account's PushKey or relay credential: not
 * resolved (NULL, no mistake) for the operator commands, which use
 * neither. */
static char *resolve_account_secret(loader_t *L, const char *path,
				    const char *ref, char *origin,
				    size_t origin_size)
{
	bool no_env = L->rep.no_env;
	if (L->no_account_secrets)
		L->rep.no_env = true;
	char *val = resolve_secret(&L->rep, path, ref, origin, origin_size);
	L->rep.no_env = no_env;
	return val;
}

static void load_push_key(loader_t *L, const char *path, json_t *v,
			  pb_account_t *a)
{
	if (!json_is_string(v)) {
		report_add(&L->rep, path, "expected a string, got %s",
			   type_name(v));
		return;
	}
	const char *s = json_string_value(v);
	if (strcmp(s, PB_PUSH_KEY_LEARNED) == 0) {
		a->push_key_learned = true;
		set_str(L, &a->push_key_source, s);
		return;
	}
	if (!is_secret_ref(s)) {
		/* Never quote it: it is most likely the PushKey itself. */
		report_add(&L->rep, path,
			   "PushKeys come only from the environment, a "
			   "mounted secret file or Pruvan's validate call: "
			   "use \"env:NAME\", \"file:/path\" or "
			   "\"pruvan:validate\"");
		return;
	}
	char origin[PB_PATH_MAX];
	char *url = resolve_account_secret(L, path, s, origin, sizeof(origin));
	if (!url) {
		/* not resolved on purpose (--no-env, the operator commands):
		 * the effective configuration still says where from */
		if (L->rep.no_env || L->no_account_secrets)
			set_str(L, &a->push_key_source, s);
		return;
	}
	if (!http_url_valid(url)) {
		report_add(&L->rep, path,
			   "the PushKey URL from %s is not an http:// or "
			   "https:// URL (expected e.g. "
			   "https://direct.pruvan.com/api/?apiKey=KEY)",
			   origin);
		free(url);
		return;
	}
	char *src = strdup(s);
	if (!src) {
		free(url);
		L->rep.nomem = true;
		return;
	}
	a->push_key_url = url;
	a->push_key_source = src;
}

/*
 * One credential of an account's "relay" object: a string, which must be a
 * secret reference when secret is true. Resolved only when the relay is
 * on (an unused secret need not exist); *source_out keeps the reference.
 */
static void load_relay_credential(loader_t *L, const char *path, json_t *v,
				  bool secret, char **value_out,
				  char **source_out)
{
	if (!json_is_string(v) || !json_string_length(v) ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		report_add(&L->rep, path, "expected a non-empty string, got %s",
			   type_name(v));
		return;
	}
	const char *s = json_string_value(v);
	bool ref = is_secret_ref(s);
	if (secret && !ref) {
		/* Never quote it: it is most likely the secret itself. */
		report_add(&L->rep, path,
			   "relay passwords and tokens come only from the "
			   "environment or a mounted secret file: use "
			   "\"env:NAME\" or \"file:/path\"");
		return;
	}
	if (source_out && ref)
		set_str(L, source_out, s);
	if (!L->cfg->relay_listen)
		return;
	char *val =
	    ref ? resolve_account_secret(L, path, s, NULL, 0) : strdup(s);
	if (!ref && !val)
		L->rep.nomem = true;
	free(*value_out);
	*value_out = val;
}

/* accounts.X.relay: {username, password, token} (contract 9). */
static void load_account_relay(loader_t *L, const char *path, json_t *obj,
			       pb_account_t *a)
{
	static const char *const keys[] = {"username", "password", "token"};
	if (!want_object(L, path, obj))
		return;
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		char p[PB_PATH_MAX];
		path_key(p, sizeof(p), path, key);
		if (strcmp(key, "username") == 0)
			load_relay_credential(L, p, v, false,
					      &a->relay_username, NULL);
		else if (strcmp(key, "password") == 0)
			load_relay_credential(L, p, v, true, &a->relay_password,
					      &a->relay_password_source);
		else if (strcmp(key, "token") == 0)
			load_relay_credential(L, p, v, true, &a->relay_token,
					      &a->relay_token_source);
		else
			report_unknown_key(&L->rep, p, key, keys,
					   NFIELDS(keys));
	}
	char p[PB_PATH_MAX];
	path_key(p, sizeof(p), path, "username");
	if (!json_object_get(obj, "username"))
		report_add(&L->rep, p,
			   "missing (the username of the integration in "
			   "Pruvan's setup screen)");
	if (!json_object_get(obj, "password") && !json_object_get(obj, "token"))
		report_add(&L->rep, path,
			   "needs a password or a token (or both), as "
			   "entered in Pruvan's setup screen");
}

/* A learned PushKey arrives only through the relay's validate call. */
static void check_learned_key(loader_t *L, const char *path,
			      const pb_account_t *a)
{
	if (!a->push_key_learned)
		return;
	char p[PB_PATH_MAX];
	path_key(p, sizeof(p), path, "pushKeyUrl");
	if (!L->cfg->relay_listen)
		report_add(&L->rep, p,
			   "\"pruvan:validate\" needs the relay web service "
			   "($.relay.listen): Pruvan delivers the key in its "
			   "validate call");
	else if (!a->relay_username && !a->relay_password_source &&
		 !a->relay_token_source)
		report_add(&L->rep, p,
			   "\"pruvan:validate\" needs the account's relay "
			   "credentials ($.accounts.%s.relay) to check the "
			   "validate call",
			   a->name ? a->name : "");
}

static void load_account(loader_t *L, const char *path, const char *name,
			 json_t *obj, pb_account_t *a)
{
	a->auto_admin = true;
	a->name = strdup(name);
	if (!a->name)
		L->rep.nomem = true;
	if (!*name) {
		report_add(&L->rep, path, "account name must be non-empty");
	} else if (strchr(name, '/')) {
		report_add(&L->rep, path,
			   "account name may not contain '/' (names form "
			   "Kafka keys ACCOUNT/WORKORDERNUMBER)");
	} else if (has_space_or_ctl(name) || strlen(name) > 128) {
		report_add(&L->rep, path,
			   "account name must be 1..128 characters without "
			   "spaces or control characters");
	}
	if (!want_object(L, path, obj))
		return;
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		char p[PB_PATH_MAX];
		int tmp;
		path_key(p, sizeof(p), path, key);
		if (strcmp(key, "pushKeyUrl") == 0) {
			load_push_key(L, p, v, a);
		} else if (strcmp(key, "mode") == 0) {
			if (load_enum(L, p, v, "mode", "internal", "external",
				      &tmp))
				a->mode =
				    tmp ? PB_MODE_EXTERNAL : PB_MODE_INTERNAL;
		} else if (strcmp(key, "statusPolicy") == 0) {
			if (load_enum(L, p, v, "statusPolicy", "drop", "reject",
				      &tmp))
				a->status_policy = tmp ? PB_STATUS_POLICY_REJECT
						       : PB_STATUS_POLICY_DROP;
		} else if (strcmp(key, "bodyEncoding") == 0) {
			load_body_encoding(L, p, v, &a->body_encoding);
		} else if (strcmp(key, "autoAdmin") == 0) {
			load_bool(L, p, v, &a->auto_admin);
		} else if (strcmp(key, "allowDeletes") == 0) {
			load_bool(L, p, v, &a->allow_deletes);
		} else if (strcmp(key, "users") == 0) {
			load_string_list(L, p, v, false, &a->users,
					 &a->users_len);
		} else if (strcmp(key, "extraFields") == 0) {
			load_string_list(L, p, v, true, &a->extra_fields,
					 &a->extra_fields_len);
		} else if (strcmp(key, "relay") == 0) {
			load_account_relay(L, p, v, a);
		} else {
			report_unknown_key(&L->rep, p, key, account_keys,
					   NFIELDS(account_keys));
		}
	}
	if (!json_object_get(obj, "pushKeyUrl")) {
		char p[PB_PATH_MAX];
		path_key(p, sizeof(p), path, "pushKeyUrl");
		report_add(&L->rep, p,
			   "missing (every account needs its PushKey URL as "
			   "\"env:NAME\", \"file:/path\" or "
			   "\"pruvan:validate\")");
	}
	check_learned_key(L, path, a);
}

static void load_accounts(loader_t *L, json_t *obj)
{
	if (!obj) {
		report_add(&L->rep, "$.accounts",
			   "missing (at least one account is required)");
		return;
	}
	if (!want_object(L, "$.accounts", obj))
		return;
	size_t n = json_object_size(obj);
	if (n == 0) {
		report_add(&L->rep, "$.accounts",
			   "no accounts (at least one is required)");
		return;
	}
	L->cfg->accounts = calloc(n, sizeof(pb_account_t));
	if (!L->cfg->accounts) {
		L->rep.nomem = true;
		return;
	}
	const char *name;
	json_t *v;
	json_object_foreach(obj, name, v)
	{
		char p[PB_PATH_MAX];
		path_key(p, sizeof(p), "$.accounts", name);
		pb_account_t *a = &L->cfg->accounts[L->cfg->accounts_len++];
		load_account(L, p, name, v, a);
	}
}

/* ---- relay ---- */

/* relay.basePath: "/" followed by URL path segments, no trailing '/'. */
static void check_base_path(report_t *r, const char *path, const char *v)
{
	size_t n = strlen(v);
	bool ok = n >= 2 && n <= 128 && v[0] == '/' && v[n - 1] != '/' &&
		  !strstr(v, "//");
	for (const char *p = v; ok && *p; p++)
		ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		     (*p >= '0' && *p <= '9') || strchr("/._-~", *p);
	if (!ok)
		report_add(r, path,
			   "expected a URL path such as \"/pruvan\" (starts "
			   "with '/', no trailing '/', letters, digits and "
			   "/._-~ only)");
}

static void check_media_dir(report_t *r, const char *path, const char *v)
{
	if (v[0] != '/' || strlen(v) > 200 || has_space_or_ctl(v))
		report_add(r, path,
			   "expected an absolute directory path without "
			   "spaces, e.g. \"/var/lib/pruvan-bridge/media\"");
}

static const field_t relay_fields[] = {
    /* how long a relay call waits for Kafka's acknowledgement */
    {"ackTimeoutMs", F_INT, OFF(relay_ack_timeout_ms), 100, 120000, NULL, "ms"},
    {"basePath", F_STRING, OFF(relay_base_path), 0, 0, check_base_path, NULL},
    {"mediaDir", F_STRING, OFF(relay_media_dir), 0, 0, check_media_dir, NULL},
    {"maxBodyBytes", F_INT64, OFF(relay_max_body_bytes), 1024, 1073741824, NULL,
     "bytes"},
    {"maxPayloadBytes", F_INT64, OFF(relay_max_payload_bytes), 256, 67108864,
     NULL, "bytes"},
    {"maxFileBytes", F_INT64, OFF(relay_max_file_bytes), 1, 1073741824, NULL,
     "bytes"},
    {"maxItems", F_INT, OFF(relay_max_items), 1, 100000, NULL, NULL},
    {"listen", F_STRING, 0, 0, 0, NULL, NULL}, /* by hand: may be null */
};

static void relay_special(loader_t *L, const char *path, json_t *v,
			  const char *key)
{
	(void)key;
	if (json_is_null(v))
		return;
	if (!json_is_string(v)) {
		report_add(&L->rep, path,
			   "expected a string (or null for off), got %s",
			   type_name(v));
		return;
	}
	if (!json_string_length(v))
		return; /* "" is off, as in the contract's example */
	size_t before = L->rep.count;
	check_listen(&L->rep, path, json_string_value(v));
	if (L->rep.count == before)
		set_str(L, &L->cfg->relay_listen, json_string_value(v));
}

static void load_relay(loader_t *L, json_t *obj)
{
	if (json_is_object(obj) && json_object_get(obj, "secret"))
		report_add(&L->rep, "$.relay.secret",
			   "the shared relay secret is gone: Pruvan sends "
			   "each integration's own credentials, so set "
			   "$.accounts.NAME.relay {username, password, token} "
			   "instead");
	json_t *copy = json_is_object(obj) ? json_copy(obj) : NULL;
	if (copy)
		json_object_del(copy, "secret");
	load_section(L, copy ? copy : obj, "$.relay", relay_fields,
		     NFIELDS(relay_fields), relay_special);
	json_decref(copy);
	if (L->cfg->relay_max_payload_bytes > L->cfg->relay_max_body_bytes)
		report_add(&L->rep, "$.relay.maxPayloadBytes",
			   "must be at most $.relay.maxBodyBytes (%" PRId64
			   " bytes)",
			   L->cfg->relay_max_body_bytes);
	if (L->cfg->relay_max_file_bytes > L->cfg->relay_max_body_bytes)
		report_add(&L->rep, "$.relay.maxFileBytes",
			   "must be at most $.relay.maxBodyBytes (%" PRId64
			   " bytes)",
			   L->cfg->relay_max_body_bytes);
}

/* ---- environment overrides ---- */

static void apply_env(loader_t *L)
{
	const char *v = getenv("KAFKA_BOOTSTRAP_SERVERS");
	if (v) {
		if (!*v || has_space_or_ctl(v)) {
			report_add(&L->rep, "env KAFKA_BOOTSTRAP_SERVERS",
				   "expected a comma-separated list of "
				   "host:port without spaces (unset it to use "
				   "the file's value)");
		} else {
			char *dup = strdup(v);
			if (!dup)
				L->rep.nomem = true;
			else
				kafka_put(L, "bootstrap.servers", dup, false);
		}
	}
	v = getenv("REDIS_URL");
	if (v) {
		if (!redis_url_valid(v))
			check_redis_url(&L->rep, "env REDIS_URL", v, NULL);
		else
			set_str(L, &L->cfg->redis_url, v);
	}
	v = getenv("PRUVAN_BRIDGE_HTTP_LISTEN");
	if (v) {
		size_t before = L->rep.count;
		check_listen_or_off(&L->rep, "env PRUVAN_BRIDGE_HTTP_LISTEN",
				    v);
		if (L->rep.count == before)
			set_str(L, &L->cfg->http_listen, v);
	}
}

/* ---- cross-field checks ---- */

static void check_cross(loader_t *L)
{
	pb_config_t *c = L->cfg;
	const char *names[] = {"orders", "inbound", "results", "dlq"};
	const char *vals[] = {c->topic_orders, c->topic_inbound,
			      c->topic_results, c->topic_dlq};
	for (size_t i = 1; i < 4; i++) {
		for (size_t j = 0; j < i; j++) {
			if (vals[i] && vals[j] &&
			    strcmp(vals[i], vals[j]) == 0) {
				char p[64];
				snprintf(p, sizeof(p), "$.topics.%s", names[i]);
				report_add(&L->rep, p,
					   "same topic as $.topics.%s; the "
					   "four topics must be distinct",
					   names[j]);
				break;
			}
		}
	}
	if (c->pruvan_backoff_max_ms < c->pruvan_backoff_base_ms)
		report_add(&L->rep, "$.pruvan.backoffMaxMs",
			   "must be at least $.pruvan.backoffBaseMs (%d ms)",
			   c->pruvan_backoff_base_ms);
	/* port 0 on both is fine: each listener gets its own free port */
	size_t rl = c->relay_listen ? strlen(c->relay_listen) : 0;
	if (c->relay_listen && c->http_listen &&
	    strcmp(c->relay_listen, c->http_listen) == 0 &&
	    !(rl >= 2 && strcmp(c->relay_listen + rl - 2, ":0") == 0))
		report_add(&L->rep, "$.relay.listen",
			   "same address as $.http.listen; the relay "
			   "receiver needs its own port");
}

/* ---- defaults and top level ---- */

static pb_err_t set_defaults(pb_config_t *c)
{
	c->topic_orders = strdup("pruvan.orders");
	c->topic_inbound = strdup("pruvan.inbound");
	c->topic_results = strdup("pruvan.results");
	c->topic_dlq = strdup("pruvan.dlq");
	c->redis_url = strdup("redis://127.0.0.1:6379/0");
	c->redis_key_prefix = strdup("pb:");
	c->http_listen = strdup("127.0.0.1:9464");
	c->pruvan_timeout_ms = 10000;
	c->pruvan_max_attempts = 8;
	c->pruvan_backoff_base_ms = 200;
	c->pruvan_backoff_max_ms = 30000;
	c->pruvan_batch_max_orders = 50;
	c->pruvan_batch_max_wait_ms = 20;
	c->pruvan_max_in_flight = 16;
	c->pruvan_circuit_failures = 5;
	c->pruvan_circuit_open_ms = 30000;
	c->dedupe_ttl_seconds = 604800;
	c->worker_max_pending =
	    2000; /* docs/benchmarks.md: memory vs throughput */
	c->worker_shutdown_grace_ms = 25000;
	c->relay_ack_timeout_ms = 10000;
	c->relay_base_path = strdup("/pruvan");
	c->relay_media_dir = strdup("/var/lib/pruvan-bridge/media");
	c->relay_max_body_bytes = 32 * 1024 * 1024;
	c->relay_max_payload_bytes = 1024 * 1024;
	c->relay_max_file_bytes = 25 * 1024 * 1024;
	c->relay_max_items = 1000;
	c->pruvan_api_url = strdup("https://direct.pruvan.com/api/");
	if (!c->relay_base_path || !c->relay_media_dir || !c->pruvan_api_url)
		return PB_ERR_NOMEM;
	c->redis_tls_verify = true;
	c->redis_wait_timeout_ms = 1000;
	c->redis_upgrade_window_seconds = 3600;
	if (!c->topic_orders || !c->topic_inbound || !c->topic_results ||
	    !c->topic_dlq || !c->redis_url || !c->redis_key_prefix ||
	    !c->http_listen)
		return PB_ERR_NOMEM;
	return PB_OK;
}

/* Sections read after all the others, whatever their place in the file. */
static void load_later(loader_t *L, json_t *obj)
{
	(void)L, (void)obj;
}

/*
 * The top-level sections: each is either a table of fields walked by
 * load_section (with an optional special for the keys the table cannot
 * say) or a loader of its own. "accounts" is read last (load_accounts),
 * after the sections the accounts are checked against.
 */
typedef struct {
	const char *name;
	void (*load)(loader_t *L, json_t *obj); /* NULL: the table below */
	const field_t *fields;
	size_t n_fields;
	void (*special)(loader_t *, const char *, json_t *, const char *);
} section_t;

static const section_t sections[] = {
    {"kafka", load_kafka, NULL, 0, NULL},
    {"topics", NULL, topics_fields, NFIELDS(topics_fields), NULL},
    {"redis", NULL, redis_fields, NFIELDS(redis_fields), redis_special},
    {"pruvan", NULL, pruvan_fields, NFIELDS(pruvan_fields), NULL},
    {"dedupe", NULL, dedupe_fields, NFIELDS(dedupe_fields), NULL},
    {"http", NULL, http_fields, NFIELDS(http_fields), NULL},
    {"worker", NULL, worker_fields, NFIELDS(worker_fields), NULL},
    {"relay", load_relay, NULL, 0, NULL},
    {"accounts", load_later, NULL, 0, NULL},
};

/* One top-level member: its section's loader, or an unknown key reported
 * with the nearest section name. */
static void load_top_member(loader_t *L, const char *key, json_t *v)
{
	char p[PB_PATH_MAX];
	path_key(p, sizeof(p), "$", key);
	const char *names[NFIELDS(sections)];
	for (size_t i = 0; i < NFIELDS(sections); i++) {
		const section_t *s = &sections[i];
		if (strcmp(key, s->name) != 0) {
			names[i] = s->name;
			continue;
		}
		if (s->load)
			s->load(L, v);
		else
			load_section(L, v, p, s->fields, s->n_fields,
				     s->special);
		return;
	}
	report_unknown_key(&L->rep, p, key, names, NFIELDS(sections));
}

/* A librdkafka property the worker relies on, when the file left it out. */
static void kafka_default(loader_t *L, const char *key, const char *value)
{
	if (pb_config_kafka_get(L->cfg, key))
		return;
	char *d = strdup(value);
	if (d)
		kafka_put(L, key, d, false);
	else
		L->rep.nomem = true;
}

/* The end of a load: the configuration into *cfg_out when nothing was
 * reported, else every problem in errstr. */
static pb_err_t load_report(loader_t *L, pb_config_t **cfg_out, char *errstr,
			    size_t errstr_size)
{
	if (L->rep.nomem)
		return pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			       "$: out of memory while loading the "
			       "configuration");
	if (L->rep.count > 0) {
		report_emit(&L->rep, errstr, errstr_size);
		return PB_ERR_CONFIG;
	}
	*cfg_out = L->cfg;
	L->cfg = NULL;
	if (errstr && errstr_size)
		errstr[0] = '\0';
	return PB_OK;
}

/* The sections of root, then the defaults and environment over them and
 * the checks across sections. */
static void load_root(loader_t *L, json_t *root, bool no_env)
{
	const char *key;
	json_t *v;
	if (L->kafka_only) {
		json_t *k = json_object_get(root, "kafka");
		if (k)
			load_kafka(L, k);
		return;
	}
	json_object_foreach(root, key, v)
	{
		load_top_member(L, key, v);
	}
	load_accounts(L, json_object_get(root, "accounts"));

	/* librdkafka defaults the worker relies on, after the file's own. */
	kafka_default(L, "bootstrap.servers", "127.0.0.1:9092");
	kafka_default(L, "group.id", "pruvan-bridge");
	if (!no_env)
		apply_env(L);
	check_cross(L);
	check_redis_cross(L);
}

/* How load_json and load_file load: LOAD_NO_ENV, secrets not resolved
 * (check-config --no-env); LOAD_KAFKA_ONLY, the "kafka" section alone;
 * LOAD_TOOL, the accounts' secrets not resolved (the operator commands). */
#define LOAD_NO_ENV	1u
#define LOAD_KAFKA_ONLY 2u
#define LOAD_TOOL	4u

static pb_err_t load_json(const char *text, size_t len, const char *source,
			  unsigned mode, pb_config_t **cfg_out, char *errstr,
			  size_t errstr_size)
{
	bool no_env = mode & LOAD_NO_ENV;
	loader_t L = {.kafka_only = mode & LOAD_KAFKA_ONLY,
		      .no_account_secrets = mode & LOAD_TOOL};
	L.rep.no_env = no_env;
	pb_err_t err = PB_OK;
	json_error_t jerr;
	json_t *root = NULL;

	L.cfg = calloc(1, sizeof(*L.cfg));
	if (!L.cfg || set_defaults(L.cfg) != PB_OK) {
		err = pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			      "$: out of memory");
		goto out;
	}
	/* Duplicate keys are a mistake in a config file: the second would
	 * silently win. */
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		report_add(&L.rep, "$",
			   "invalid JSON%s%s at line %d, column %d: %s",
			   source ? " in " : "", source ? source : "",
			   jerr.line, jerr.column, jerr.text);
	else if (want_object(&L, "$", root))
		load_root(&L, root, no_env);
	err = load_report(&L, cfg_out, errstr, errstr_size);
out:
	json_decref(root);
	free(L.rep.text.p);
	pb_config_destroy(L.cfg);
	return err;
}

pb_err_t pb_config_load_string(const char *json_text, pb_config_t **cfg_out,
			       char *errstr, size_t errstr_size)
{
	if (!json_text || !cfg_out)
		return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			       "$: no configuration text");
	return load_json(json_text, strlen(json_text), NULL, false, cfg_out,
			 errstr, errstr_size);
}

static pb_err_t load_file(const char *path, unsigned mode,
			  pb_config_t **cfg_out, char *errstr,
			  size_t errstr_size);

pb_err_t pb_config_load(const char *path, pb_config_t **cfg_out, char *errstr,
			size_t errstr_size)
{
	return load_file(path, 0, cfg_out, errstr, errstr_size);
}

pb_err_t pb_config_load_no_env(const char *path, pb_config_t **cfg_out,
			       char *errstr, size_t errstr_size)
{
	return load_file(path, LOAD_NO_ENV, cfg_out, errstr, errstr_size);
}

pb_err_t pb_config_load_tool(const char *path, pb_config_t **cfg_out,
			     char *errstr, size_t errstr_size)
{
	return load_file(path, LOAD_TOOL, cfg_out, errstr, errstr_size);
}

pb_err_t pb_config_load_kafka(const char *path, pb_config_t **cfg_out,
			      char *errstr, size_t errstr_size)
{
	return load_file(path, LOAD_NO_ENV | LOAD_KAFKA_ONLY, cfg_out, errstr,
			 errstr_size);
}

static pb_err_t load_file(const char *path, unsigned mode,
			  pb_config_t **cfg_out, char *errstr,
			  size_t errstr_size)
{
	pb_err_t err = PB_OK;
	char *buf = NULL;
	int fd = -1;

	if (!path || !cfg_out)
		return pb_errf(errstr, errstr_size, PB_ERR_INVALID,
			       "$: no configuration file given");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		err = pb_errf(errstr, errstr_size, PB_ERR_IO,
			      "$: cannot read configuration file %s: %s", path,
			      strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > PB_CONFIG_FILE_MAX) {
		err = pb_errf(errstr, errstr_size, PB_ERR_IO,
			      "$: configuration file %s is not a regular "
			      "file of at most %d bytes",
			      path, PB_CONFIG_FILE_MAX);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		err = pb_errf(errstr, errstr_size, PB_ERR_NOMEM,
			      "$: out of memory");
		goto out;
	}
	ssize_t got = read_all(fd, buf, (size_t)st.st_size);
	if (got < 0) {
		err = pb_errf(errstr, errstr_size, PB_ERR_IO,
			      "$: cannot read configuration file %s: %s", path,
			      strerror(errno));
		goto out;
	}
	err = load_json(buf, (size_t)got, path, mode, cfg_out, errstr,
			errstr_size);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return err;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void free_secret(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}

/* The fields added for production Redis and Pruvan egress. */
static void pb_config_free_redis(pb_config_t *c)
{
	free_secret(c->redis_password);
	free(c->redis_password_source);
	free(c->redis_tls_ca_file);
	free(c->redis_tls_cert_file);
	free(c->redis_tls_key_file);
	free(c->redis_tls_server_name);
	free(c->redis_sentinel_master);
	free_list(c->redis_sentinel_nodes, c->redis_sentinel_nodes_len);
	free_secret(c->redis_sentinel_password);
	free_list(c->redis_cluster_nodes, c->redis_cluster_nodes_len);
	free(c->pruvan_ca_file);
	free(c->pruvan_proxy);
}

void pb_config_destroy(pb_config_t *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->kafka_len; i++) {
		free(cfg->kafka_keys[i]);
		free(cfg->kafka_values[i]);
	}
	free(cfg->kafka_keys);
	free(cfg->kafka_values);
	free(cfg->kafka_sensitive);
	free(cfg->topic_orders);
	free(cfg->topic_inbound);
	free(cfg->topic_results);
	free(cfg->topic_dlq);
	free(cfg->redis_url);
	free(cfg->redis_key_prefix);
	pb_config_free_redis(cfg);
	free(cfg->http_listen);
	free(cfg->relay_listen);
	free(cfg->relay_base_path);
	free(cfg->relay_media_dir);
	free(cfg->pruvan_api_url);
	for (size_t i = 0; i < cfg->accounts_len; i++)
		account_destroy_fields(&cfg->accounts[i]);
	free(cfg->accounts);
	free(cfg);
}

const pb_account_t *pb_config_account(const pb_config_t *cfg, const char *name)
{
	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->accounts_len; i++)
		if (cfg->accounts[i].name &&
		    strcmp(cfg->accounts[i].name, name) == 0)
			return &cfg->accounts[i];
	return NULL;
}

const char *pb_config_kafka_get(const pb_config_t *cfg, const char *key)
{
	if (!cfg || !key)
		return NULL;
	for (size_t i = 0; i < cfg->kafka_len; i++)
		if (strcmp(cfg->kafka_keys[i], key) == 0)
			return cfg->kafka_values[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* describe                                                            */
/* ------------------------------------------------------------------ */

/* json_object_set_new that remembers a failure instead of returning it. */
static void put(json_t *obj, const char *key, json_t *v, bool *ok)
{
	/* json_object_set_new releases v itself when it fails. */
	if (!obj || !v || json_object_set_new(obj, key, v) != 0)
		*ok = false;
}

static json_t *str_array(char *const *items, size_t n, bool *ok)
{
	json_t *a = json_array();
	if (!a) {
		*ok = false;
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(a, json_string(items[i])) != 0)
			*ok = false;
	return a;
}

static json_t *redacted_url(const char *url)
{
	char buf[512];
	pb_redact_url(url, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *describe_relay(const pb_config_t *c)
{
	return json_pack("{s:s?, s:s, s:s, s:i, s:I, s:I, s:I, s:i}", "listen",
			 c->relay_listen, "basePath", c->relay_base_path,
			 "mediaDir", c->relay_media_dir, "ackTimeoutMs",
			 c->relay_ack_timeout_ms, "maxBodyBytes",
			 (json_int_t)c->relay_max_body_bytes, "maxPayloadBytes",
			 (json_int_t)c->relay_max_payload_bytes, "maxFileBytes",
			 (json_int_t)c->relay_max_file_bytes, "maxItems",
			 c->relay_max_items);
}

/* The username is not a secret; password and token show where from. */
static json_t *describe_account_relay(const pb_account_t *a)
{
	return json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?}", "username",
			 a->relay_username, "password",
			 a->relay_password ? "<redacted>" : NULL,
			 "passwordFrom", a->relay_password_source, "token",
			 a->relay_token ? "<redacted>" : NULL, "tokenFrom",
			 a->relay_token_source);
}

static json_t *describe_redis(const pb_config_t *c, bool *ok)
{
	json_t *r = json_pack(
	    "{s:o, s:s?, s:s?, s:s?, s:i, s:i, s:I}", "url",
	    redacted_url(c->redis_url), "keyPrefix", c->redis_key_prefix,
	    "password", c->redis_password ? "<redacted>" : NULL, "passwordFrom",
	    c->redis_password_source, "minReplicas", c->redis_min_replicas,
	    "waitTimeoutMs", c->redis_wait_timeout_ms, "upgradeWindowSeconds",
	    (json_int_t)c->redis_upgrade_window_seconds);
	if (r && c->redis_tls)
		put(r, "tls",
		    json_pack("{s:s?, s:s?, s:s?, s:s?, s:b}", "caFile",
			      c->redis_tls_ca_file, "certFile",
			      c->redis_tls_cert_file, "keyFile",
			      c->redis_tls_key_file, "serverName",
			      c->redis_tls_server_name, "verify",
			      c->redis_tls_verify),
		    ok);
	if (r && c->redis_sentinel_master)
		put(r, "sentinel",
		    json_pack("{s:s, s:o, s:s?}", "masterName",
			      c->redis_sentinel_master, "nodes",
			      str_array(c->redis_sentinel_nodes,
					c->redis_sentinel_nodes_len, ok),
			      "password",
			      c->redis_sentinel_password ? "<redacted>" : NULL),
		    ok);
	if (r && c->redis_cluster_nodes)
		put(r, "cluster",
		    json_pack("{s:o}", "nodes",
			      str_array(c->redis_cluster_nodes,
					c->redis_cluster_nodes_len, ok)),
		    ok);
	return r;
}

char *pb_config_describe(const pb_config_t *c)
{
	if (!c)
		return NULL;
	bool ok = true;
	char *text = NULL;
	json_t *root = json_object();

	json_t *k = json_object();
	for (size_t i = 0; i < c->kafka_len; i++) {
		bool secret = c->kafka_sensitive && c->kafka_sensitive[i];
		put(k, c->kafka_keys[i],
		    json_string(secret ? "<redacted>" : c->kafka_values[i]),
		    &ok);
	}
	put(root, "kafka", k, &ok);

	put(root, "topics",
	    json_pack("{s:s?, s:s?, s:s?, s:s?}", "orders", c->topic_orders,
		      "inbound", c->topic_inbound, "results", c->topic_results,
		      "dlq", c->topic_dlq),
	    &ok);
	put(root, "redis", describe_redis(c, &ok), &ok);
	put(root, "pruvan",
	    json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}",
		      "timeoutMs", c->pruvan_timeout_ms, "maxAttempts",
		      c->pruvan_max_attempts, "backoffBaseMs",
		      c->pruvan_backoff_base_ms, "backoffMaxMs",
		      c->pruvan_backoff_max_ms, "batchMaxOrders",
		      c->pruvan_batch_max_orders, "batchMaxWaitMs",
		      c->pruvan_batch_max_wait_ms, "maxInFlight",
		      c->pruvan_max_in_flight, "circuitFailures",
		      c->pruvan_circuit_failures, "circuitOpenMs",
		      c->pruvan_circuit_open_ms),
	    &ok);
	if (json_object_set_new(json_object_get(root, "pruvan"), "apiUrl",
				json_string(c->pruvan_api_url)) != 0)
		ok = false;
	json_t *pv = json_object_get(root, "pruvan");
	if (pv && c->pruvan_ca_file)
		put(pv, "caFile", json_string(c->pruvan_ca_file), &ok);
	if (pv && c->pruvan_proxy)
		put(pv, "proxy", redacted_url(c->pruvan_proxy), &ok);
	put(root, "dedupe",
	    json_pack("{s:I}", "ttlSeconds", (json_int_t)c->dedupe_ttl_seconds),
	    &ok);
	put(root, "http", json_pack("{s:s?}", "listen", c->http_listen), &ok);
	put(root, "worker",
	    json_pack("{s:i, s:i}", "maxPending", c->worker_max_pending,
		      "shutdownGraceMs", c->worker_shutdown_grace_ms),
	    &ok);
	put(root, "relay", describe_relay(c), &ok);

	json_t *accts = json_object();
	for (size_t i = 0; i < c->accounts_len; i++) {
		const pb_account_t *a = &c->accounts[i];
		json_t *o = json_pack(
		    "{s:o, s:s?, s:s, s:b, s:b, s:s, s:o, s:o, s:s}",
		    "pushKeyUrl", redacted_url(a->push_key_url),
		    "pushKeyUrlFrom", a->push_key_source, "mode",
		    a->mode == PB_MODE_EXTERNAL ? "external" : "internal",
		    "autoAdmin", a->auto_admin, "allowDeletes",
		    a->allow_deletes, "statusPolicy",
		    a->status_policy == PB_STATUS_POLICY_REJECT ? "reject"
								: "drop",
		    "users", str_array(a->users, a->users_len, &ok),
		    "extraFields",
		    str_array(a->extra_fields, a->extra_fields_len, &ok),
		    "bodyEncoding", pb_body_encoding_name(a->body_encoding));
		if (a->relay_username || a->relay_password_source ||
		    a->relay_token_source)
			put(o, "relay", describe_account_relay(a), &ok);
		put(accts, a->name ? a->name : "", o, &ok);
	}
	put(root, "accounts", accts, &ok);

	if (ok && root)
		text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	return text;
}

/* ------------------------------------------------------------------ */
/* The reference (docs/configuration.md, docs/schemas/config.schema.json) */
/* ------------------------------------------------------------------ */

/*
 * What each key does, for the generated reference. The table-driven
 * sections' keys, types, bounds and defaults come from the tables above
 * and set_defaults; this table adds their description column, keyed by
 * path, and the rows of the keys checked by hand (kafka, relay,
 * accounts). tools/gen_config_doc refuses to write the reference while a
 * table key has no description here or a description names no key, so
 * the reference cannot drift from the code.
 */
typedef struct key_doc {
	const char *path; /* "section.key"; "*" an account's name */
	const char *desc;
	/* hand rows only (type NULL: a table row, described above) */
	const char *type;  /* JSON Schema type, or "secret" */
	const char *dflt;  /* JSON text of the default; NULL: none */
	const char *enums; /* "a|b": the allowed values */
	bool required;
} key_doc_t;

static const key_doc_t key_docs[] = {
    {"kafka",
     "librdkafka properties, passed through to every client "
     "the worker makes (each gets the ones it understands); "
     "check-config applies each to librdkafka. Values may be "
     "\"env:NAME\" or \"file:/path\" secrets.",
     "object",
     "{\"bootstrap.servers\": \"127.0.0.1:9092\", "
     "\"group.id\": \"pruvan-bridge\"}",
     NULL, false},
    {"topics", "Topic names.", "object", NULL, NULL, false},
    {"topics.orders",
     "Order events consumed (the back office "
     "produces them).",
     NULL, NULL, NULL, false},
    {"topics.inbound", "Relayed Pruvan data consumed.", NULL, NULL, NULL,
     false},
    {"topics.results", "One outcome record per consumed record.", NULL, NULL,
     NULL, false},
    {"topics.dlq",
     "Records that failed or could not be read, as they "
     "came, with x-error-* headers.",
     NULL, NULL, NULL, false},
    {"redis", "Where the shared state lives.", "object", NULL, NULL, false},
    {"redis.url",
     "redis://[USER[:PASSWORD]@]HOST[:PORT][/DB], or a "
     "secret reference holding one (it may carry a "
     "password). Environment: REDIS_URL.",
     NULL, NULL, NULL, false},
    {"redis.keyPrefix",
     "Prefix of every key the worker writes; "
     "replicas of one deployment share it.",
     NULL, NULL, NULL, false},
    {"pruvan", "Pushing to Pruvan.", "object", NULL, NULL, false},
    {"redis.password",
     "The Redis password (\"env:NAME\" or "
     "\"file:/path\"), when not in the URL; sent as AUTH "
     "[USER] PASSWORD.",
     NULL, NULL, NULL, false},
    {"redis.tls",
     "TLS to Redis: {caFile, certFile, keyFile, serverName, "
     "verify (true)}; on with a rediss:// URL too. "
     "Certificate and host name are verified unless verify "
     "is false.",
     NULL, NULL, NULL, false},
    {"redis.sentinel",
     "Sentinel: {masterName, nodes [\"HOST:PORT\"], "
     "password}; the master is asked for on every "
     "connect and followed across a failover.",
     NULL, NULL, NULL, false},
    {"redis.cluster",
     "Redis Cluster: {nodes [\"HOST:PORT\"]}; keys "
     "routed by slot, MOVED/ASK followed.",
     NULL, NULL, NULL, false},
    {"redis.minReplicas",
     "A commit counts once WAIT says this many "
     "replicas have it (0: no WAIT).",
     NULL, NULL, NULL, false},
    {"redis.waitTimeoutMs",
     "How long WAIT may take before the commit "
     "is retried like a lost connection.",
     NULL, NULL, NULL, false},
    {"redis.upgradeWindowSeconds",
     "After the first start of a build that keeps event marks "
     "in the order's hash on a Redis that held data: how long "
     "replicas of an earlier build may still run (a rolling "
     "update); marks are also written as the string keys they "
     "read. 0: none (stop earlier replicas first).",
     NULL, NULL, NULL, false},
    {"pruvan.caFile",
     "A CA bundle for TLS to Pruvan, beside the "
     "system's.",
     NULL, NULL, NULL, false},
    {"pruvan.proxy",
     "An HTTP(S) proxy URL toward Pruvan; without it "
     "https_proxy/no_proxy from the environment apply.",
     NULL, NULL, NULL, false},
    {"pruvan.apiUrl",
     "Where a learned PushKey is pushed: "
     "APIURL?apiKey=KEY (a key that is a URL is used as "
     "it is).",
     NULL, NULL, NULL, false},
    {"pruvan.timeoutMs", "How long one push request may take.", NULL, NULL,
     NULL, false},
    {"pruvan.maxAttempts",
     "Attempts per event for retriable failures "
     "(timeouts, 5xx, 429) before it fails "
     "with retries_exhausted.",
     NULL, NULL, NULL, false},
    {"pruvan.backoffBaseMs",
     "First retry delay; doubles per attempt, "
     "with jitter.",
     NULL, NULL, NULL, false},
    {"pruvan.backoffMaxMs",
     "Longest retry delay (at least "
     "backoffBaseMs).",
     NULL, NULL, NULL, false},
    {"pruvan.batchMaxOrders",
     "Most work orders in one POST of an "
     "account.",
     NULL, NULL, NULL, false},
    {"pruvan.batchMaxWaitMs",
     "How long a batch waits to fill; 0 "
     "pushes at once.",
     NULL, NULL, NULL, false},
    {"pruvan.maxInFlight", "Concurrent requests per account.", NULL, NULL, NULL,
     false},
    {"pruvan.circuitFailures",
     "Consecutive failed requests that open "
     "an account's circuit (pushes pause).",
     NULL, NULL, NULL, false},
    {"pruvan.circuitOpenMs",
     "How long an open circuit waits before "
     "one probe request.",
     NULL, NULL, NULL, false},
    {"dedupe", "Deduplication.", "object", NULL, NULL, false},
    {"dedupe.ttlSeconds",
     "How long an event id is remembered: a "
     "replay within it is a duplicate.",
     NULL, NULL, NULL, false},
    {"http", "The operations endpoint.", "object", NULL, NULL, false},
    {"http.listen",
     "HOST:PORT of /metrics, /healthz and /readyz; "
     "empty turns it off. Environment: "
     "PRUVAN_BRIDGE_HTTP_LISTEN.",
     NULL, NULL, NULL, false},
    {"worker", "The worker loop.", "object", NULL, NULL, false},
    {"worker.maxPending",
     "Events held in memory before consumption "
     "pauses (memory against throughput).",
     NULL, NULL, NULL, false},
    {"worker.shutdownGraceMs",
     "Budget to finish in-flight events on "
     "SIGTERM or a revoke; keep it below the "
     "pod's terminationGracePeriodSeconds.",
     NULL, NULL, NULL, false},
    {"relay",
     "The receiver for Pruvan's relay calls (off unless "
     "listen is set).",
     "object", NULL, NULL, false},
    {"relay.listen", "HOST:PORT to serve on; null or absent: off.", "string",
     "null", NULL, false},
    {"relay.basePath",
     "The web service's base path: each account "
     "answers under BASEPATH/ACCOUNT/METHOD[.EXT].",
     "string", "\"/pruvan\"", NULL, false},
    {"relay.mediaDir",
     "Where uploadPictures files are kept (a mounted "
     "volume); a discarded item's file is deleted.",
     "string", "\"/var/lib/pruvan-bridge/media\"", NULL, false},
    {"relay.ackTimeoutMs",
     "How long a relay call waits for Kafka to "
     "acknowledge its items before answering 503 "
     "(100..120000 ms).",
     "integer", "10000", NULL, false},
    {"relay.maxBodyBytes",
     "Largest request body (1024..1073741824); "
     "beyond it 413.",
     "integer", "33554432", NULL, false},
    {"relay.maxPayloadBytes",
     "Largest JSON payload (256..67108864, at "
     "most maxBodyBytes); beyond it 413.",
     "integer", "1048576", NULL, false},
    {"relay.maxFileBytes",
     "Largest uploaded file (1..1073741824, at "
     "most maxBodyBytes); beyond it 413.",
     "integer", "26214400", NULL, false},
    {"relay.maxItems", "Most items per call (1..100000); beyond it 413.",
     "integer", "1000", NULL, false},
    {"accounts",
     "The integrations, by account name (1..128 "
     "characters, no '/' or spaces): the events' account.",
     "object", NULL, NULL, true},
    {"accounts.*.pushKeyUrl",
     "The account's PushKey URL, only as "
     "\"env:NAME\" or \"file:/path\", or "
     "\"pruvan:validate\" to learn it from "
     "Pruvan's validate call; never printed or "
     "logged.",
     "secret", NULL, NULL, true},
    {"accounts.*.mode",
     "internal: the account's own staff (internal "
     "statuses, assignedTo); external: a vendor.",
     "string", "\"internal\"", "internal|external", false},
    {"accounts.*.autoAdmin",
     "Auto-Admin's initial value; switched at "
     "run time with `pruvan-bridge auto-admin`.",
     "boolean", "true", NULL, false},
    {"accounts.*.allowDeletes",
     "Whether delete events are pushed "
     "(else rejected, delete_not_allowed).",
     "boolean", "false", NULL, false},
    {"accounts.*.statusPolicy",
     "A status the table does not allow: "
     "dropped with a warning, or the event "
     "rejected.",
     "string", "\"drop\"", "drop|reject", false},
    {"accounts.*.users",
     "Sub-users an internal account's assignedTo "
     "may name.",
     "array", "[]", NULL, false},
    {"accounts.*.extraFields",
     "Order fields outside Pruvan's classes "
     "passed through as shared fields.",
     "array", "[]", NULL, false},
    {"accounts.*.bodyEncoding",
     "How the push body is encoded: form "
     "(Pruvan's documented field workOrders), "
     "multipart, or a raw json body.",
     "string", "\"form\"", "form|multipart|json", false},
    {"accounts.*.relay",
     "The integration's credentials as entered in "
     "Pruvan's setup screen, checked on every call "
     "of the web service: username, and token or "
     "password (\"env:NAME\" or \"file:/path\").",
     "object", NULL, NULL, false},
};

typedef struct table_ref {
	const char *section;
	const field_t *fields;
	size_t n;
} table_ref_t;

static const table_ref_t table_refs[] = {
    {"topics", topics_fields, NFIELDS(topics_fields)},
    {"redis", redis_fields, NFIELDS(redis_fields)},
    {"pruvan", pruvan_fields, NFIELDS(pruvan_fields)},
    {"dedupe", dedupe_fields, NFIELDS(dedupe_fields)},
    {"http", http_fields, NFIELDS(http_fields)},
    {"worker", worker_fields, NFIELDS(worker_fields)},
};

static const key_doc_t *key_doc_find(const char *path)
{
	for (size_t i = 0; i < NFIELDS(key_docs); i++)
		if (strcmp(key_docs[i].path, path) == 0)
			return &key_docs[i];
	return NULL;
}

static json_t *table_row(const pb_config_t *d, const char *section,
			 const field_t *f)
{
	char path[PB_PATH_MAX];
	snprintf(path, sizeof(path), "%s.%s", section, f->key);
	const key_doc_t *doc = key_doc_find(path);
	const char *base = (const char *)d + f->offset;
	json_t *row = json_pack("{s:s,s:s}", "path", path, "type",
				f->type == F_STRING ? "string"
				: f->type == F_HOOK ? "object"
						    : "integer");
	if (!row)
		return NULL;
	if (f->type == F_HOOK) {
		/* read by its own loader: no value in the struct at offset */
	} else if (f->type == F_STRING) {
		const char *v = *(char *const *)base;
		json_object_set_new(row, "default",
				    v ? json_string(v) : json_null());
	} else {
		json_int_t v = f->type == F_INT
				   ? *(const int *)base
				   : (json_int_t) * (const int64_t *)base;
		json_object_set_new(row, "default", json_integer(v));
		json_object_set_new(row, "minimum", json_integer(f->min));
		json_object_set_new(row, "maximum", json_integer(f->max));
		if (f->unit)
			json_object_set_new(row, "unit", json_string(f->unit));
	}
	if (doc)
		json_object_set_new(row, "description", json_string(doc->desc));
	return row;
}

static json_t *hand_row(const key_doc_t *k)
{
	json_t *row =
	    json_pack("{s:s,s:s,s:s,s:b}", "path", k->path, "type", k->type,
		      "description", k->desc, "required", k->required);
	if (!row)
		return NULL;
	if (k->dflt) {
		json_error_t je;
		json_object_set_new(row, "default",
				    json_loads(k->dflt, JSON_DECODE_ANY, &je));
	}
	if (k->enums) {
		json_t *e = json_array();
		const char *p = k->enums;
		while (e && *p) {
			size_t n = strcspn(p, "|");
			json_array_append_new(e, json_stringn(p, n));
			p += n + (p[n] == '|');
		}
		json_object_set_new(row, "enum", e);
	}
	return row;
}

json_t *pb_config_reference(char *errstr, size_t errstr_size)
{
	pb_config_t d = {0};
	json_t *rows = json_array();
	report_t rep = {0};
	if (!rows || set_defaults(&d) != PB_OK) {
		json_decref(rows);
		rows = NULL;
		pb_errf(errstr, errstr_size, PB_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < NFIELDS(key_docs); i++) {
		const key_doc_t *k = &key_docs[i];
		if (k->type) {
			json_array_append_new(rows, hand_row(k));
			continue;
		}
		const table_ref_t *t = NULL;
		const field_t *f = NULL;
		for (size_t s = 0; s < NFIELDS(table_refs) && !f; s++) {
			size_t n = strlen(table_refs[s].section);
			if (strncmp(k->path, table_refs[s].section, n) != 0 ||
			    k->path[n] != '.')
				continue;
			for (size_t j = 0; j < table_refs[s].n; j++)
				if (!strcmp(table_refs[s].fields[j].key,
					    k->path + n + 1))
					t = &table_refs[s],
					f = &table_refs[s].fields[j];
		}
		if (!f)
			report_add(&rep, k->path,
				   "described, but no table "
				   "row has this key: remove its description");
		else
			json_array_append_new(rows,
					      table_row(&d, t->section, f));
	}
	for (size_t s = 0; s < NFIELDS(table_refs); s++)
		for (size_t j = 0; j < table_refs[s].n; j++) {
			char path[PB_PATH_MAX];
			snprintf(path, sizeof(path), "%s.%s",
				 table_refs[s].section,
				 table_refs[s].fields[j].key);
			if (!key_doc_find(path))
				report_add(&rep, path,
					   "a table row without a "
					   "description: add one to key_docs "
					   "in src/config/config.c");
		}
	if (rep.count || rep.nomem) {
		report_emit(&rep, errstr, errstr_size);
		json_decref(rows);
		rows = NULL;
	}
out:
	free(rep.text.p);
	free(d.topic_orders);
	free(d.topic_inbound);
	free(d.topic_results);
	free(d.topic_dlq);
	free(d.redis_url);
	free(d.redis_key_prefix);
	free(d.http_listen);
	return rows;
}
