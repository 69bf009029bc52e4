/*
 * metrics.c: see metrics.h.
 *
 * Design. One mutex guards the whole registry: updates are a hash lookup
 * and an add, so contention between the pipeline thread and a scrape is
 * negligible, and a single lock keeps rendering consistent (a histogram's
 * buckets, _sum and _count are read at one instant).
 *
 * Two chained hash tables: metrics by name, and series by (name, labels).
 * Each metric also keeps its series in a singly linked list so rendering
 * can walk one metric at a time; the render sorts metrics by name and
 * series by label text, so the output is deterministic (diffable, testable).
 *
 * Bounds: at most PB_METRICS_MAX_SERIES series. A new series past that is
 * not created; the update is counted in PB_M_SERIES_DROPPED instead. That
 * counter is created with the registry and is not subject to the bound.
 *
 * Histograms keep per-bucket (non-cumulative) counts and cumulate at render
 * time; the +Inf bucket equals _count.
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jtext.h"
#include "util.h"

#define METRIC_BUCKETS 64   /* metric-name hash table size */
#define SERIES_BUCKETS 4096 /* series hash table size */

struct series {
	struct metric *metric;
	char *labels;
	uint32_t hash;
	double value;	      /* counter / gauge */
	uint64_t *counts;     /* histogram: per-bucket, non-cumulative */
	uint64_t count;	      /* histogram: observations */
	double sum;	      /* histogram */
	struct series *hnext; /* hash chain */
	struct series *mnext; /* metric's list */
};

struct metric {
	char *name;
	char *help;
	pb_metric_type_t type;
	double *buckets;
	size_t n_buckets;
	struct series *series;
	size_t n_series;
	struct metric *hnext;
};

struct pb_metrics {
	pthread_mutex_t lock;
	struct metric *metrics[METRIC_BUCKETS];
	size_t n_metrics;
	struct series *series[SERIES_BUCKETS];
	size_t n_series;
	struct series *dropped; /* PB_M_SERIES_DROPPED, always present */
	/* called by pb_metrics_render before it renders (outside the lock) */
	pb_metrics_collect_fn collect;
	void *collect_opaque;
};

/* FNV-1a; name and labels are separated by a byte neither contains. */
static uint32_t hash_str(uint32_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

static uint32_t hash_key(const char *name, const char *labels)
{
	uint32_t h = hash_str(2166136261u, name);
	h ^= 0xffu;
	h *= 16777619u;
	return hash_str(h, labels);
}

static struct metric *find_metric(pb_metrics_t *m, const char *name)
{
	uint32_t h = hash_str(2166136261u, name) % METRIC_BUCKETS;
	for (struct metric *x = m->metrics[h]; x; x = x->hnext)
		if (strcmp(x->name, name) == 0)
			return x;
	return NULL;
}

static void metric_free(struct metric *x)
{
	if (!x)
		return;
	struct series *s = x->series;
	while (s) {
		struct series *next = s->mnext;
		free(s->labels);
		free(s->counts);
		free(s);
		s = next;
	}
	free(x->name);
	free(x->help);
	free(x->buckets);
	free(x);
}

/* Create a metric (lock held); NULL on allocation failure. */
static struct metric *add_metric(pb_metrics_t *m, const char *name,
				 pb_metric_type_t type, const char *help,
				 const double *buckets, size_t n_buckets)
{
	struct metric *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->name = strdup(name);
	x->help = strdup(help ? help : "");
	x->type = type;
	if (!x->name || !x->help)
		goto fail;
	if (type == PB_METRIC_HISTOGRAM && n_buckets > 0) {
		x->buckets = malloc(n_buckets * sizeof(*x->buckets));
		if (!x->buckets)
			goto fail;
		memcpy(x->buckets, buckets, n_buckets * sizeof(*x->buckets));
		x->n_buckets = n_buckets;
	}
	uint32_t h = hash_str(2166136261u, name) % METRIC_BUCKETS;
	x->hnext = m->metrics[h];
	m->metrics[h] = x;
	m->n_metrics++;
	return x;
fail:
	metric_free(x);
	return NULL;
}

static struct series *find_series(pb_metrics_t *m, struct metric *x,
				  const char *labels, uint32_t h)
{
	for (struct series *s = m->series[h % SERIES_BUCKETS]; s; s = s->hnext)
		if (s->hash == h && s->metric == x &&
		    strcmp(s->labels, labels) == 0)
			return s;
	return NULL;
}

/* Create a series without checking the bound (lock held). */
static struct series *new_series(pb_metrics_t *m, struct metric *x,
				 const char *labels, uint32_t h)
{
	struct series *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->labels = strdup(labels);
	if (!s->labels)
		goto fail;
	if (x->type == PB_METRIC_HISTOGRAM && x->n_buckets > 0) {
		s->counts = calloc(x->n_buckets, sizeof(*s->counts));
		if (!s->counts)
			goto fail;
	}
	s->metric = x;
	s->hash = h;
	s->hnext = m->series[h % SERIES_BUCKETS];
	m->series[h % SERIES_BUCKETS] = s;
	s->mnext = x->series;
	x->series = s;
	x->n_series++;
	m->n_series++;
	return s;
fail:
	free(s->labels);
	free(s);
	return NULL;
}

/*
 * The series to update, created on first use, or NULL when the metric is
 * undeclared, has another type, or the series cannot be created (bound,
 * oversized or overflowed labels, memory): those last are counted. Lock
 * held.
 */
static struct series *lookup(pb_metrics_t *m, const char *name,
			     const char *labels, pb_metric_type_t type)
{
	if (!name)
		return NULL;
	if (!labels)
		labels = "";
	struct metric *x = find_metric(m, name);
	if (!x || x->type != type)
		return NULL;
	uint32_t h = hash_key(name, labels);
	struct series *s = find_series(m, x, labels, h);
	if (s)
		return s;
	if (m->n_series >= PB_METRICS_MAX_SERIES || labels[0] == '!' ||
	    strlen(labels) > PB_METRICS_MAX_LABELS ||
	    !(s = new_series(m, x, labels, h))) {
		m->dropped->value += 1;
		return NULL;
	}
	return s;
}

pb_metrics_t *pb_metrics_new(void)
{
	pb_metrics_t *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		free(m);
		return NULL;
	}
	struct metric *x = add_metric(
	    m, PB_M_SERIES_DROPPED, PB_METRIC_COUNTER,
	    "Metric updates dropped because the registry reached its "
	    "series bound or the label set was invalid.",
	    NULL, 0);
	if (!x || !(m->dropped = new_series(m, x, "", hash_key(x->name, "")))) {
		pb_metrics_destroy(m);
		return NULL;
	}
	/* The dropped counter itself does not count against the bound. */
	m->n_series--;
	return m;
}

void pb_metrics_destroy(pb_metrics_t *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < METRIC_BUCKETS; i++) {
		struct metric *x = m->metrics[i];
		while (x) {
			struct metric *next = x->hnext;
			metric_free(x);
			x = next;
		}
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static bool valid_name(const char *name)
{
	if (!name || !*name)
		return false;
	for (const char *p = name; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  c == '_' || c == ':' ||
			  (p != name && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

pb_err_t pb_metrics_declare(pb_metrics_t *m, const char *name,
			    pb_metric_type_t type, const char *help,
			    const double *buckets, size_t n_buckets)
{
	if (!m || !valid_name(name))
		return PB_ERR_INVALID;
	if (type != PB_METRIC_COUNTER && type != PB_METRIC_GAUGE &&
	    type != PB_METRIC_HISTOGRAM)
		return PB_ERR_INVALID;
	if (type == PB_METRIC_HISTOGRAM) {
		if (n_buckets > 0 && !buckets)
			return PB_ERR_INVALID;
		/* Strictly ascending and finite: +Inf is implied. */
		for (size_t i = 0; i < n_buckets; i++) {
			if (!isfinite(buckets[i]))
				return PB_ERR_INVALID;
			if (i > 0 && !(buckets[i] > buckets[i - 1]))
				return PB_ERR_INVALID;
		}
	}
	pb_err_t err = PB_OK;
	pthread_mutex_lock(&m->lock);
	struct metric *x = find_metric(m, name);
	if (x) {
		/* Same name, other type: a programming error worth reporting.
		 */
		if (x->type != type)
			err = PB_ERR_STATE;
	} else if (!add_metric(m, name, type, help, buckets, n_buckets)) {
		err = PB_ERR_NOMEM;
	}
	pthread_mutex_unlock(&m->lock);
	return err;
}

/* The one way a counter or gauge changes: under the lock, v added to (add)
 * or set as the value of the series of name and labels, made when missing
 * (lookup). */
static void series_update(pb_metrics_t *m, const char *name, const char *labels,
			  pb_metric_type_t type, double v, bool add)
{
	pthread_mutex_lock(&m->lock);
	struct series *s = lookup(m, name, labels, type);
	if (s)
		s->value = add ? s->value + v : v;
	pthread_mutex_unlock(&m->lock);
}

void pb_metrics_add(pb_metrics_t *m, const char *name, const char *labels,
		    double v)
{
	/* Counters only go up; NaN would poison the series for good. */
	if (!m || !(v >= 0) || isinf(v))
		return;
	series_update(m, name, labels, PB_METRIC_COUNTER, v, true);
}

pb_metrics_series_t *pb_metrics_add_series(pb_metrics_t *m, const char *name,
					   const char *labels, double v)
{
	if (!m || !(v >= 0) || isinf(v))
		return NULL;
	pthread_mutex_lock(&m->lock);
	struct series *s = lookup(m, name, labels, PB_METRIC_COUNTER);
	if (s)
		s->value += v;
	pthread_mutex_unlock(&m->lock);
	return s;
}

void pb_metrics_series_add(pb_metrics_t *m, pb_metrics_series_t *s, double v)
{
	if (!m || !s || !(v >= 0) || isinf(v))
		return;
	pthread_mutex_lock(&m->lock);
	s->value += v;
	pthread_mutex_unlock(&m->lock);
}

void pb_metrics_set(pb_metrics_t *m, const char *name, const char *labels,
		    double v)
{
	if (m)
		series_update(m, name, labels, PB_METRIC_GAUGE, v, false);
}

void pb_metrics_gauge_add(pb_metrics_t *m, const char *name, const char *labels,
			  double delta)
{
	if (m)
		series_update(m, name, labels, PB_METRIC_GAUGE, delta, true);
}

void pb_metrics_observe(pb_metrics_t *m, const char *name, const char *labels,
			double v)
{
	if (!m || isnan(v))
		return;
	pthread_mutex_lock(&m->lock);
	struct series *s = lookup(m, name, labels, PB_METRIC_HISTOGRAM);
	if (s) {
		const struct metric *x = s->metric;
		/* First bucket whose upper bound holds v (le is inclusive). */
		size_t lo = 0, hi = x->n_buckets;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (v <= x->buckets[mid])
				hi = mid;
			else
				lo = mid + 1;
		}
		if (lo < x->n_buckets)
			s->counts[lo]++;
		s->count++;
		s->sum += v;
	}
	pthread_mutex_unlock(&m->lock);
}

pb_err_t pb_metrics_get(pb_metrics_t *m, const char *name, const char *labels,
			double *value_out)
{
	if (!m || !name || !value_out)
		return PB_ERR_INVALID;
	if (!labels)
		labels = "";
	pb_err_t err = PB_ERR_NOT_FOUND;
	pthread_mutex_lock(&m->lock);
	struct metric *x = find_metric(m, name);
	struct series *s =
	    x ? find_series(m, x, labels, hash_key(name, labels)) : NULL;
	if (s) {
		*value_out = x->type == PB_METRIC_HISTOGRAM ? (double)s->count
							    : s->value;
		err = PB_OK;
	}
	pthread_mutex_unlock(&m->lock);
	return err;
}

size_t pb_metrics_series_count(pb_metrics_t *m)
{
	if (!m)
		return 0;
	pthread_mutex_lock(&m->lock);
	size_t n = m->n_series;
	pthread_mutex_unlock(&m->lock);
	return n;
}

/* ---- label sets ---- */

/* Append s to buf at *off, escaping if asked; false when it does not fit.
 * Runs of plain bytes go in one copy: labels are built for every event. */
static bool put(char *buf, size_t size, size_t *off, const char *s, bool escape)
{
	while (*s) {
		size_t n = escape ? strcspn(s, "\\\"\n") : strlen(s);
		const char *from = s;
		if (n == 0) { /* one byte to escape */
			from = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : "\\n";
			n = 2;
		}
		if (*off + n >= size)
			return false;
		memcpy(buf + *off, from, n);
		*off += n;
		s += from == s ? n : 1;
	}
	buf[*off] = '\0';
	return true;
}

char *pb_metrics_labels(char *buf, size_t size, ...)
{
	if (!buf || size == 0)
		return buf;
	buf[0] = '\0';
	size_t off = 0;
	bool ok = true;
	va_list ap;
	va_start(ap, size);
	for (const char *key; ok && (key = va_arg(ap, const char *));) {
		const char *val = va_arg(ap, const char *);
		ok = (off == 0 || put(buf, size, &off, ",", false)) &&
		     put(buf, size, &off, key, false) &&
		     put(buf, size, &off, "=\"", false) &&
		     put(buf, size, &off, val ? val : "", true) &&
		     put(buf, size, &off, "\"", false);
	}
	va_end(ap);
	if (!ok)
		pb_strlcpy(buf, PB_METRICS_LABELS_OVERFLOW, size);
	return buf;
}

/* ---- rendering ---- */

/*
 * A sample value as Prometheus clients write it: +Inf/-Inf/NaN, integers
 * without exponent or fraction (below 2^53, where they are exact), else the
 * shortest %g form that reads back to the same double.
 */
void pb_metrics_format_value(double v, char *buf, size_t size)
{
	if (isnan(v)) {
		pb_strlcpy(buf, "NaN", size);
	} else if (isinf(v)) {
		pb_strlcpy(buf, v > 0 ? "+Inf" : "-Inf", size);
	} else if (v == 0) {
		pb_strlcpy(buf, "0", size); /* also -0 */
	} else if (fabs(v) < 9007199254740992.0 && v == trunc(v)) {
		snprintf(buf, size, "%.0f", v);
	} else {
		snprintf(buf, size, "%.15g", v);
		if (strtod(buf, NULL) != v)
			snprintf(buf, size, "%.17g", v);
	}
}

/* HELP text escapes backslash and newline only (exposition format 0.0.4). */
static void sb_help(pb_jtext_t *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			pb_jt_lit(b, "\\\\");
		else if (*s == '\n')
			pb_jt_lit(b, "\\n");
		else
			pb_jt_put(b, s, 1);
	}
}

/* name{labels[,extra]} value\n */
static void sb_sample(pb_jtext_t *b, const char *name, const char *suffix,
		      const char *labels, const char *extra, double v)
{
	char num[64];
	pb_jt_lit(b, name);
	pb_jt_lit(b, suffix);
	if (labels[0] || extra) {
		pb_jt_lit(b, "{");
		pb_jt_lit(b, labels);
		if (extra) {
			if (labels[0])
				pb_jt_lit(b, ",");
			pb_jt_lit(b, extra);
		}
		pb_jt_lit(b, "}");
	}
	pb_metrics_format_value(v, num, sizeof(num));
	pb_jt_lit(b, " ");
	pb_jt_lit(b, num);
	pb_jt_lit(b, "\n");
}

static int cmp_metric(const void *a, const void *b)
{
	const struct metric *x = *(const struct metric *const *)a;
	const struct metric *y = *(const struct metric *const *)b;
	return strcmp(x->name, y->name);
}

static int cmp_series(const void *a, const void *b)
{
	const struct series *x = *(const struct series *const *)a;
	const struct series *y = *(const struct series *const *)b;
	return strcmp(x->labels, y->labels);
}

static const char *type_name(pb_metric_type_t t)
{
	switch (t) {
	case PB_METRIC_COUNTER:
		return "counter";
	case PB_METRIC_GAUGE:
		return "gauge";
	case PB_METRIC_HISTOGRAM:
		return "histogram";
	}
	return "untyped";
}

static void render_series(pb_jtext_t *b, const struct metric *x,
			  const struct series *s)
{
	if (x->type != PB_METRIC_HISTOGRAM) {
		sb_sample(b, x->name, "", s->labels, NULL, s->value);
		return;
	}
	char le[96], num[64];
	uint64_t cum = 0;
	for (size_t i = 0; i < x->n_buckets; i++) {
		cum += s->counts[i];
		pb_metrics_format_value(x->buckets[i], num, sizeof(num));
		snprintf(le, sizeof(le), "le=\"%s\"", num);
		sb_sample(b, x->name, "_bucket", s->labels, le, (double)cum);
	}
	sb_sample(b, x->name, "_bucket", s->labels, "le=\"+Inf\"",
		  (double)s->count);
	sb_sample(b, x->name, "_sum", s->labels, NULL, s->sum);
	sb_sample(b, x->name, "_count", s->labels, NULL, (double)s->count);
}

/*
 * Metrics without any series are left out, as the Go client does for
 * vectors with no children: HELP/TYPE with no sample would only be noise.
 */
static void render_metric(pb_jtext_t *b, const struct metric *x,
			  struct series **tmp)
{
	if (x->n_series == 0)
		return;
	size_t n = 0;
	for (struct series *s = x->series; s; s = s->mnext)
		tmp[n++] = s;
	qsort(tmp, n, sizeof(*tmp), cmp_series);
	pb_jt_lit(b, "# HELP ");
	pb_jt_lit(b, x->name);
	pb_jt_lit(b, " ");
	sb_help(b, x->help);
	pb_jt_lit(b, "\n# TYPE ");
	pb_jt_lit(b, x->name);
	pb_jt_lit(b, " ");
	pb_jt_lit(b, type_name(x->type));
	pb_jt_lit(b, "\n");
	for (size_t i = 0; i < n; i++)
		render_series(b, x, tmp[i]);
}

void pb_metrics_set_collector(pb_metrics_t *m, pb_metrics_collect_fn fn,
			      void *opaque)
{
	pthread_mutex_lock(&m->lock);
	m->collect = fn;
	m->collect_opaque = opaque;
	pthread_mutex_unlock(&m->lock);
}

char *pb_metrics_render(pb_metrics_t *m)
{
	if (!m)
		return NULL;
	pthread_mutex_lock(&m->lock);
	pb_metrics_collect_fn collect = m->collect;
	void *opaque = m->collect_opaque;
	pthread_mutex_unlock(&m->lock);
	if (collect)
		collect(m, opaque);
	pb_jtext_t b = {0};
	struct metric **ms = NULL;
	struct series **tmp = NULL;
	pthread_mutex_lock(&m->lock);
	ms = malloc((m->n_metrics + 1) * sizeof(*ms));
	/* +1: the dropped counter's series is not in n_series. */
	tmp = malloc((m->n_series + 1) * sizeof(*tmp));
	if (!ms || !tmp) {
		b.bad = true;
		goto out;
	}
	size_t n = 0;
	for (size_t i = 0; i < METRIC_BUCKETS; i++)
		for (struct metric *x = m->metrics[i]; x; x = x->hnext)
			ms[n++] = x;
	qsort(ms, n, sizeof(*ms), cmp_metric);
	pb_jt_lit(&b, ""); /* an empty registry still renders "" */
	for (size_t i = 0; i < n; i++)
		render_metric(&b, ms[i], tmp);
out:
	pthread_mutex_unlock(&m->lock);
	free(ms);
	free(tmp);
	return pb_jt_take(&b);
}

/* ---- the project's metric set ---- */

static const double push_buckets[] = {.005, .01, .025, .05, .1, .25,
				      .5,   1,	 2.5,  5,   10, 30};
static const double batch_buckets[] = {1, 2, 5, 10, 20, 50, 100, 200};
static const double redis_buckets[] = {.0001, .00025, .0005, .001, .0025, .005,
				       .01,   .025,   .05,   .1,   .25};

#define NB(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
	const char *name;
	pb_metric_type_t type;
	const char *help;
	const double *buckets;
	size_t n_buckets;
	bool zero; /* label-less: start at 0 so it is scraped at once */
} standard[] = {
    {PB_M_EVENTS_CONSUMED, PB_METRIC_COUNTER,
     "Records consumed, by source topic (orders|inbound) and account.", NULL, 0,
     false},
    {PB_M_OUTCOMES, PB_METRIC_COUNTER,
     "Outcome records published, by source, account, outcome and reason.", NULL,
     0, false},
    {PB_M_PUSHES, PB_METRIC_COUNTER,
     "HTTP pushes to Pruvan, by account and status class "
     "(2xx|4xx|5xx|error).",
     NULL, 0, false},
    {PB_M_PUSH_DURATION, PB_METRIC_HISTOGRAM,
     "Duration of one HTTP push to Pruvan, by account.", push_buckets,
     NB(push_buckets), false},
    {PB_M_BATCH_SIZE, PB_METRIC_HISTOGRAM,
     "Work orders per push to Pruvan, by account.", batch_buckets,
     NB(batch_buckets), false},
    {PB_M_RETRIES, PB_METRIC_COUNTER,
     "Push retries scheduled, by account and reason.", NULL, 0, false},
    {PB_M_DLQ_RECORDS, PB_METRIC_COUNTER,
     "Records written to the dead-letter topic, by source and reason.", NULL, 0,
     false},
    {PB_M_CONSUMER_LAG, PB_METRIC_GAUGE,
     "Consumer lag in records, by topic and partition.", NULL, 0, false},
    {PB_M_IN_FLIGHT, PB_METRIC_GAUGE,
     "Events consumed whose outcome is not yet committed.", NULL, 0, true},
    {PB_M_REDIS_ERRORS, PB_METRIC_COUNTER,
     "Redis commands that failed (connection or error reply).", NULL, 0, true},
    {PB_M_REDIS_RTT, PB_METRIC_HISTOGRAM,
     "Time the loop spends on one Redis round trip (its overlapping work "
     "excluded).",
     redis_buckets, NB(redis_buckets), false},
    {PB_M_CIRCUIT_OPEN, PB_METRIC_GAUGE,
     "1 while the account's circuit breaker to Pruvan is open.", NULL, 0,
     false},
    {PB_M_AUTO_ADMIN, PB_METRIC_GAUGE,
     "1 while the account's Auto-Admin switch is ON.", NULL, 0, false},
    {PB_M_INBOUND_DISCARDED, PB_METRIC_COUNTER,
     "Relayed inbound items discarded, by account and reason.", NULL, 0, false},
    {PB_M_BUILD_INFO, PB_METRIC_GAUGE,
     "Always 1; the version label names the running build.", NULL, 0, false},
    {PB_M_READY, PB_METRIC_GAUGE,
     "1 while the worker is ready (consuming; Kafka and Redis reachable).",
     NULL, 0, true},
    {PB_M_PARTITIONS_ASSIGNED, PB_METRIC_GAUGE,
     "Partitions currently assigned to this replica.", NULL, 0, true},
    {PB_M_PAUSED, PB_METRIC_GAUGE,
     "1 while consumption is paused (too many pending events).", NULL, 0, true},
    {PB_M_RELAY_REQUESTS, PB_METRIC_COUNTER,
     "Calls answered by the relay receiver, by method (status|"
     "uploadPictures|validate|other) and HTTP status.",
     NULL, 0, false},
    {PB_M_RELAY_ITEMS, PB_METRIC_COUNTER,
     "Relayed items the relay receiver wrote to the inbound topic "
     "(acknowledged by Kafka), by account and kind.",
     NULL, 0, false},
    {PB_M_KAFKA_PARTITION_LAG, PB_METRIC_GAUGE,
     "librdkafka's consumer lag (high watermark minus the committed "
     "offset) by topic and partition, from its statistics.",
     NULL, 0, false},
    {PB_M_KAFKA_BROKER_RTT_AVG, PB_METRIC_GAUGE,
     "Mean request round trip to a broker over librdkafka's last "
     "statistics window, by client (consumer|producer) and broker.",
     NULL, 0, false},
    {PB_M_KAFKA_BROKER_RTT_P99, PB_METRIC_GAUGE,
     "99th percentile of the request round trip to a broker over "
     "librdkafka's last statistics window.",
     NULL, 0, false},
    {PB_M_KAFKA_BROKER_UP, PB_METRIC_GAUGE,
     "1 while librdkafka's connection to the broker is up.", NULL, 0, false},
    {PB_M_KAFKA_PRODUCER_QUEUE_MSGS, PB_METRIC_GAUGE,
     "Outcome and DLQ records in the producer's queue, not yet "
     "acknowledged.",
     NULL, 0, true},
    {PB_M_KAFKA_PRODUCER_QUEUE_BYTES, PB_METRIC_GAUGE,
     "Bytes of those records.", NULL, 0, true},
    {PB_M_PUSH_KEY_LEARNED, PB_METRIC_GAUGE,
     "When the account's PushKey was learned from Pruvan's validate call "
     "(Unix seconds), by account; absent until one is.",
     NULL, 0, false},
    {PB_M_ORDER_EXPIRY_REPAIRED, PB_METRIC_COUNTER,
     "Order hashes an earlier build left with an expiry that the "
     "order-expiry repair made stay (state_repair.h).",
     NULL, 0, true},
};

pb_err_t pb_metrics_declare_standard(pb_metrics_t *m)
{
	if (!m)
		return PB_ERR_INVALID;
	for (size_t i = 0; i < NB(standard); i++) {
		pb_err_t err = pb_metrics_declare(
		    m, standard[i].name, standard[i].type, standard[i].help,
		    standard[i].buckets, standard[i].n_buckets);
		if (err != PB_OK)
			return err;
		if (!standard[i].zero)
			continue;
		/* Adding 0 creates the series without changing a value a
		 * second call would otherwise reset. */
		if (standard[i].type == PB_METRIC_COUNTER)
			pb_metrics_add(m, standard[i].name, "", 0);
		else
			pb_metrics_gauge_add(m, standard[i].name, "", 0);
	}
	return PB_OK;
}

void pb_metrics_set_build_info(pb_metrics_t *m, const char *version)
{
	char labels[256];
	pb_metrics_labels(labels, sizeof(labels), "version",
			  version ? version : "unknown", NULL);
	pb_metrics_set(m, PB_M_BUILD_INFO, labels, 1);
}
