/*
 * metrics.c - Prometheus counters, gauges and histograms and their text
 * exposition, version 0.0.4 (see metrics.h).
 *
 * Every metric holds its series (one per label-value set) in a small hash
 * table protected by the metric's mutex; the lock is taken only to find or
 * create a series. Updates to a series are relaxed atomics, so a caller
 * that keeps the series pointer (metric_series_get) updates it without
 * locking. A histogram keeps one non-cumulative counter per bucket and
 * derives the cumulative buckets and _count when rendering, so that _count
 * always equals the +Inf bucket; its sum is a double whose bits live in an
 * atomic uint64 updated by compare-and-swap.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define METRIC_SERIES_MAX 256	/* label sets per metric before "other" */
#define METRIC_HASH_SIZE 64	/* hash chains per metric */

enum metric_kind { MK_COUNTER, MK_GAUGE, MK_HISTOGRAM, MK_GAUGE_FN };

struct metric_series {
	struct metric *m;		/* owner */
	char *key;			/* label values, each followed by NUL */
	size_t keylen;
	_Atomic uint64_t value;		/* counter; gauge as int64 bits */
	_Atomic uint64_t *buckets;	/* histogram: nbounds + 1 counts */
	_Atomic uint64_t sum_bits;	/* histogram: double bits */
	struct metric_series *hnext;	/* hash chain */
	struct metric_series *next;	/* creation order */
};

struct metric {
	enum metric_kind kind;
	char *name, *help;
	char **label_names;		/* nlabels of them */
	size_t nlabels;
	double *bounds;			/* histogram */
	size_t nbounds;
	int64_t (*fn)(void *);		/* MK_GAUGE_FN */
	void *arg;
	pthread_mutex_t lock;		/* guards the table and the list */
	struct metric_series *table[METRIC_HASH_SIZE];
	struct metric_series *first, *last;
	size_t nseries;			/* excluding "other" */
	struct metric_series *other;	/* labelled metrics: the overflow */
	atomic_bool other_used;		/* "other" has been handed out */
	struct metric_series *only;	/* unlabelled metrics: the one series */
	struct metric *next;
};

struct metrics {
	struct metric *first, *last;
};

static const double default_bounds[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};

int
metrics_new(struct metrics **out)
{
	*out = calloc(1, sizeof(**out));
	return *out != NULL ? 0 : MOAT_ERR_NOMEM;
}

static void
series_free(struct metric_series *s)
{
	if (s == NULL)
		return;
	free(s->key);
	free(s->buckets);
	free(s);
}

static void
metric_free(struct metric *m)
{
	struct metric_series *s, *next;

	if (m == NULL)
		return;
	for (s = m->first; s != NULL; s = next) {
		next = s->next;
		series_free(s);
	}
	series_free(m->other);
	for (size_t i = 0; i < m->nlabels; i++)
		free(m->label_names[i]);
	free(m->label_names);
	free(m->bounds);
	free(m->name);
	free(m->help);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void
metrics_free(struct metrics *ms)
{
	struct metric *m, *next;

	if (ms == NULL)
		return;
	for (m = ms->first; m != NULL; m = next) {
		next = m->next;
		metric_free(m);
	}
	free(ms);
}

static bool
name_ok(const char *s, bool colon)
{
	if (s == NULL || s[0] == '\0' || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (; *s != '\0'; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || (colon && c == ':')))
			return false;
	}
	return true;
}

/* A new series for key (copied); NULL on allocation failure. */
static struct metric_series *
series_new(struct metric *m, const char *key, size_t keylen)
{
	struct metric_series *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->m = m;
	if ((s->key = malloc(keylen + 1)) == NULL)
		goto fail;
	if (keylen > 0)
		memcpy(s->key, key, keylen);
	s->key[keylen] = '\0';
	s->keylen = keylen;
	if (m->kind == MK_HISTOGRAM &&
	    (s->buckets = calloc(m->nbounds + 1, sizeof(*s->buckets))) == NULL)
		goto fail;
	return s;
fail:
	series_free(s);
	return NULL;
}

/* "other\0other\0..." for nlabels labels. Caller frees. */
static char *
other_key(size_t nlabels, size_t *len)
{
	char *k = malloc(nlabels * 6 + 1);

	if (k == NULL)
		return NULL;
	for (size_t i = 0; i < nlabels; i++)
		memcpy(k + i * 6, "other", 6);
	*len = nlabels * 6;
	return k;
}

static struct metric *
metric_register(struct metrics *ms, enum metric_kind kind, const char *name,
    const char *help, const char *const *label_names)
{
	struct metric *m = NULL;
	size_t n = 0;

	if (ms == NULL || !name_ok(name, true))
		return NULL;
	for (struct metric *o = ms->first; o != NULL; o = o->next)
		if (strcmp(o->name, name) == 0)
			return NULL;
	for (; label_names != NULL && label_names[n] != NULL; n++) {
		if (!name_ok(label_names[n], false) ||
		    strncmp(label_names[n], "__", 2) == 0 ||
		    (kind == MK_HISTOGRAM && strcmp(label_names[n], "le") == 0))
			return NULL;
		for (size_t j = 0; j < n; j++)
			if (strcmp(label_names[j], label_names[n]) == 0)
				return NULL;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		free(m);
		return NULL;
	}
	m->kind = kind;
	if ((m->name = strdup(name)) == NULL ||
	    (m->help = strdup(help != NULL ? help : "")) == NULL)
		goto fail;
	if (n > 0 && (m->label_names = calloc(n, sizeof(char *))) == NULL)
		goto fail;
	m->nlabels = n;
	for (size_t i = 0; i < n; i++)
		if ((m->label_names[i] = strdup(label_names[i])) == NULL)
			goto fail;
	return m;
fail:
	metric_free(m);
	return NULL;
}

/* Creates the fixed series and links m into ms. */
static struct metric *
metric_finish(struct metrics *ms, struct metric *m)
{
	if (m == NULL)
		return NULL;
	if (m->kind != MK_GAUGE_FN) {
		if (m->nlabels == 0) {
			if ((m->only = series_new(m, "", 0)) == NULL)
				goto fail;
			m->first = m->last = m->only;
		} else {
			size_t len;
			char *k = other_key(m->nlabels, &len);
			if (k == NULL)
				goto fail;
			m->other = series_new(m, k, len);
			free(k);
			if (m->other == NULL)
				goto fail;
		}
	}
	if (ms->last != NULL)
		ms->last->next = m;
	else
		ms->first = m;
	ms->last = m;
	return m;
fail:
	metric_free(m);
	return NULL;
}

struct metric *
metrics_counter(struct metrics *ms, const char *name, const char *help,
    const char *const *label_names)
{
	return metric_finish(ms, metric_register(ms, MK_COUNTER, name, help,
	    label_names));
}

struct metric *
metrics_gauge(struct metrics *ms, const char *name, const char *help,
    const char *const *label_names)
{
	return metric_finish(ms, metric_register(ms, MK_GAUGE, name, help,
	    label_names));
}

struct metric *
metrics_histogram(struct metrics *ms, const char *name, const char *help,
    const char *const *label_names, const double *bounds, size_t nbounds)
{
	struct metric *m;

	if (bounds == NULL) {
		bounds = default_bounds;
		nbounds = sizeof(default_bounds) / sizeof(default_bounds[0]);
	}
	for (size_t i = 0; i < nbounds; i++)
		if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
			return NULL;
	if ((m = metric_register(ms, MK_HISTOGRAM, name, help,
	    label_names)) == NULL)
		return NULL;
	if (nbounds > 0 &&
	    (m->bounds = malloc(nbounds * sizeof(double))) == NULL) {
		metric_free(m);
		return NULL;
	}
	if (nbounds > 0)
		memcpy(m->bounds, bounds, nbounds * sizeof(double));
	m->nbounds = nbounds;
	return metric_finish(ms, m);
}

int
metrics_gauge_fn(struct metrics *ms, const char *name, const char *help,
    int64_t (*fn)(void *arg), void *arg)
{
	struct metric *m;

	if (fn == NULL)
		return MOAT_ERR_INVAL;
	if ((m = metric_register(ms, MK_GAUGE_FN, name, help, NULL)) == NULL)
		return MOAT_ERR_INVAL;
	m->fn = fn;
	m->arg = arg;
	return metric_finish(ms, m) != NULL ? 0 : MOAT_ERR_NOMEM;
}

/* FNV-1a. */
static size_t
key_hash(const char *k, size_t len)
{
	uint64_t h = 14695981039346656037ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)k[i];
		h *= 1099511628211ULL;
	}
	return (size_t)(h % METRIC_HASH_SIZE);
}

struct metric_series *
metric_series_get(struct metric *m, const char *const *label_values)
{
	struct metric_series *s = NULL;
	char stackkey[512], *key = stackkey;
	size_t len = 0, h;

	if (m == NULL || m->kind == MK_GAUGE_FN)
		return NULL;
	if (m->nlabels == 0)
		return m->only;
	/* The key: each value followed by NUL (values hold no NUL, so this
	 * is unambiguous). A missing array counts as empty values. */
	for (size_t i = 0; i < m->nlabels; i++)
		len += (label_values != NULL && label_values[i] != NULL ?
		    strlen(label_values[i]) : 0) + 1;
	if (len > sizeof(stackkey) && (key = malloc(len)) == NULL) {
		atomic_store(&m->other_used, true);
		return m->other;
	}
	len = 0;
	for (size_t i = 0; i < m->nlabels; i++) {
		const char *v = label_values != NULL && label_values[i] != NULL ?
		    label_values[i] : "";
		size_t l = strlen(v);
		memcpy(key + len, v, l + 1);
		len += l + 1;
	}
	if (len == m->other->keylen && memcmp(key, m->other->key, len) == 0) {
		s = m->other;
		goto out;
	}
	h = key_hash(key, len);
	pthread_mutex_lock(&m->lock);
	for (s = m->table[h]; s != NULL; s = s->hnext)
		if (s->keylen == len && memcmp(s->key, key, len) == 0)
			break;
	if (s == NULL && m->nseries < METRIC_SERIES_MAX &&
	    (s = series_new(m, key, len)) != NULL) {
		s->hnext = m->table[h];
		m->table[h] = s;
		if (m->last != NULL)
			m->last->next = s;
		else
			m->first = s;
		m->last = s;
		m->nseries++;
	}
	pthread_mutex_unlock(&m->lock);
	if (s == NULL)
		s = m->other;
out:
	if (s == m->other)
		atomic_store(&m->other_used, true);
	if (key != stackkey)
		free(key);
	return s;
}

void
metric_series_add(struct metric_series *s, uint64_t v)
{
	if (s == NULL || (s->m->kind != MK_COUNTER && s->m->kind != MK_GAUGE))
		return;
	atomic_fetch_add_explicit(&s->value, v, memory_order_relaxed);
}

void
metric_series_set(struct metric_series *s, int64_t v)
{
	if (s == NULL || s->m->kind != MK_GAUGE)
		return;
	atomic_store_explicit(&s->value, (uint64_t)v, memory_order_relaxed);
}

void
metric_series_gauge_add(struct metric_series *s, int64_t delta)
{
	if (s == NULL || s->m->kind != MK_GAUGE)
		return;
	/* Two's complement wrap-around adds a negative delta. */
	atomic_fetch_add_explicit(&s->value, (uint64_t)delta,
	    memory_order_relaxed);
}

void
metric_series_observe(struct metric_series *s, double value)
{
	const struct metric *m;
	size_t i;
	uint64_t old, nw;
	double sum;

	if (s == NULL || s->m->kind != MK_HISTOGRAM || isnan(value))
		return;
	m = s->m;
	for (i = 0; i < m->nbounds; i++)
		if (value <= m->bounds[i])
			break;
	atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
	old = atomic_load_explicit(&s->sum_bits, memory_order_relaxed);
	do {
		memcpy(&sum, &old, sizeof(sum));
		sum += value;
		memcpy(&nw, &sum, sizeof(nw));
	} while (!atomic_compare_exchange_weak_explicit(&s->sum_bits, &old, nw,
	    memory_order_relaxed, memory_order_relaxed));
}

void
metric_add(struct metric *c, const char *const *label_values, uint64_t v)
{
	if (c != NULL && (c->kind == MK_COUNTER || c->kind == MK_GAUGE))
		metric_series_add(metric_series_get(c, label_values), v);
}

void
metric_set(struct metric *g, const char *const *label_values, int64_t v)
{
	if (g != NULL && g->kind == MK_GAUGE)
		metric_series_set(metric_series_get(g, label_values), v);
}

void
metric_gauge_add(struct metric *g, const char *const *label_values,
    int64_t delta)
{
	if (g != NULL && g->kind == MK_GAUGE)
		metric_series_gauge_add(metric_series_get(g, label_values),
		    delta);
}

void
metric_observe(struct metric *h, const char *const *label_values,
    double value)
{
	if (h != NULL && h->kind == MK_HISTOGRAM)
		metric_series_observe(metric_series_get(h, label_values), value);
}

/* ---- exposition ---- */

/* Appends s escaped: backslash and newline, and the quote in label values. */
static int
append_escaped(struct buf *out, const char *s, bool quote)
{
	int r = 0;

	for (const char *p = s; *p != '\0' && r == 0; p++) {
		if (*p == '\\')
			r = buf_append(out, "\\\\", 2);
		else if (*p == '\n')
			r = buf_append(out, "\\n", 2);
		else if (quote && *p == '"')
			r = buf_append(out, "\\\"", 2);
		else
			r = buf_append(out, p, 1);
	}
	return r;
}

/* The shortest text that reads back as d; NaN and infinities as Prometheus
 * spells them. */
static void
format_double(char *out, size_t outlen, double d)
{
	if (isnan(d)) {
		snprintf(out, outlen, "NaN");
		return;
	}
	if (isinf(d)) {
		snprintf(out, outlen, d > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (int prec = 6; prec <= 17; prec++) {
		snprintf(out, outlen, "%.*g", prec, d);
		if (strtod(out, NULL) == d)
			return;
	}
}

/* Appends {a="x",b="y"[,le="..."]} (nothing when there are no labels). */
static int
append_labels(struct buf *out, const struct metric *m,
    const struct metric_series *s, const char *le)
{
	const char *v = s->key;
	int r;

	if (m->nlabels == 0 && le == NULL)
		return 0;
	if ((r = buf_append(out, "{", 1)) != 0)
		return r;
	for (size_t i = 0; i < m->nlabels; i++) {
		if ((r = buf_appendf(out, "%s%s=\"", i > 0 ? "," : "",
		    m->label_names[i])) != 0 ||
		    (r = append_escaped(out, v, true)) != 0 ||
		    (r = buf_append(out, "\"", 1)) != 0)
			return r;
		v += strlen(v) + 1;
	}
	if (le != NULL && (r = buf_appendf(out, "%sle=\"%s\"",
	    m->nlabels > 0 ? "," : "", le)) != 0)
		return r;
	return buf_append(out, "}", 1);
}

static int
render_series(struct buf *out, const struct metric *m,
    const struct metric_series *s)
{
	char num[64];
	uint64_t cum = 0, bits;
	double sum;
	int r;

	switch (m->kind) {
	case MK_COUNTER:
		if ((r = buf_append_str(out, m->name)) != 0 ||
		    (r = append_labels(out, m, s, NULL)) != 0)
			return r;
		return buf_appendf(out, " %llu\n", (unsigned long long)
		    atomic_load_explicit(&s->value, memory_order_relaxed));
	case MK_GAUGE:
		if ((r = buf_append_str(out, m->name)) != 0 ||
		    (r = append_labels(out, m, s, NULL)) != 0)
			return r;
		return buf_appendf(out, " %lld\n", (long long)(int64_t)
		    atomic_load_explicit(&s->value, memory_order_relaxed));
	case MK_HISTOGRAM:
		for (size_t i = 0; i <= m->nbounds; i++) {
			cum += atomic_load_explicit(&s->buckets[i],
			    memory_order_relaxed);
			if (i < m->nbounds)
				format_double(num, sizeof(num), m->bounds[i]);
			else
				snprintf(num, sizeof(num), "+Inf");
			if ((r = buf_appendf(out, "%s_bucket", m->name)) != 0 ||
			    (r = append_labels(out, m, s, num)) != 0 ||
			    (r = buf_appendf(out, " %llu\n",
			    (unsigned long long)cum)) != 0)
				return r;
		}
		bits = atomic_load_explicit(&s->sum_bits, memory_order_relaxed);
		memcpy(&sum, &bits, sizeof(sum));
		format_double(num, sizeof(num), sum);
		if ((r = buf_appendf(out, "%s_sum", m->name)) != 0 ||
		    (r = append_labels(out, m, s, NULL)) != 0 ||
		    (r = buf_appendf(out, " %s\n", num)) != 0 ||
		    (r = buf_appendf(out, "%s_count", m->name)) != 0 ||
		    (r = append_labels(out, m, s, NULL)) != 0)
			return r;
		return buf_appendf(out, " %llu\n", (unsigned long long)cum);
	case MK_GAUGE_FN:
		break;
	}
	return 0;
}

static const char *
kind_name(enum metric_kind k)
{
	switch (k) {
	case MK_COUNTER: return "counter";
	case MK_HISTOGRAM: return "histogram";
	default: return "gauge";
	}
}

int
metrics_render(struct metrics *ms, struct buf *out)
{
	int r = 0;

	for (struct metric *m = ms->first; m != NULL && r == 0; m = m->next) {
		if ((r = buf_appendf(out, "# HELP %s ", m->name)) != 0 ||
		    (r = append_escaped(out, m->help, false)) != 0 ||
		    (r = buf_appendf(out, "\n# TYPE %s %s\n", m->name,
		    kind_name(m->kind))) != 0)
			break;
		if (m->kind == MK_GAUGE_FN) {
			r = buf_appendf(out, "%s %lld\n", m->name,
			    (long long)m->fn(m->arg));
			continue;
		}
		pthread_mutex_lock(&m->lock);
		for (const struct metric_series *s = m->first;
		    s != NULL && r == 0; s = s->next)
			r = render_series(out, m, s);
		/* "other" appears once something has gone to it. */
		if (r == 0 && m->other != NULL && atomic_load(&m->other_used))
			r = render_series(out, m, m->other);
		pthread_mutex_unlock(&m->lock);
	}
	return r;
}
