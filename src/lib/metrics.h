/*
 * metrics.h - Prometheus metrics: counters, gauges and histograms with
 * labels, and the text exposition format (version 0.0.4).
 *
 * Metrics are registered once at start-up (not thread-safe), then updated
 * from any thread without locks on the hot path (atomics). A labelled
 * series is created on first use under a short lock, up to a cap per metric
 * so that unbounded label values cannot exhaust memory; past the cap,
 * updates go to one series labelled "other".
 */
#ifndef MOAT_METRICS_H
#define MOAT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "errors.h"

struct metrics;
struct metric;

int metrics_new(struct metrics **out) MOAT_MUST_CHECK;
void metrics_free(struct metrics *m);

/* label_names: NULL-terminated, or NULL for none. Copied. Returns NULL on
 * allocation failure or a duplicate name. */
struct metric *metrics_counter(struct metrics *m, const char *name,
    const char *help, const char *const *label_names);
struct metric *metrics_gauge(struct metrics *m, const char *name,
    const char *help, const char *const *label_names);
/* bounds: ascending upper bounds in seconds, nbounds of them (+Inf added);
 * bounds NULL: the Prometheus defaults (0.005 ... 10 s). NaN observations
 * are dropped. Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
 * [a-zA-Z_][a-zA-Z0-9_]* (not "le" for a histogram); NULL otherwise. */
struct metric *metrics_histogram(struct metrics *m, const char *name,
    const char *help, const char *const *label_names, const double *bounds,
    size_t nbounds);

/* label_values: as many as label_names, or NULL for none. */
void metric_add(struct metric *c, const char *const *label_values, uint64_t v);
void metric_set(struct metric *g, const char *const *label_values, int64_t v);
void metric_observe(struct metric *h, const char *const *label_values,
    double value);

/* Adds delta (may be negative) to a gauge. */
void metric_gauge_add(struct metric *g, const char *const *label_values,
    int64_t delta);

/*
 * Cached series for hot paths: look a label set up once (for instance per
 * route at start-up), then update it in O(1) without locks. Never NULL for
 * a non-NULL metric: past the cap, or when memory runs out, the series
 * labelled "other" is returned. Valid until metrics_free(). The update
 * functions accept NULL and do nothing, as do metric_add & co. on a NULL
 * metric (a registration that failed). An update of the wrong kind (observe
 * on a counter, set on a counter) is ignored.
 */
struct metric_series;
struct metric_series *metric_series_get(struct metric *m,
    const char *const *label_values);
void metric_series_add(struct metric_series *s, uint64_t v);	/* counter, gauge */
void metric_series_set(struct metric_series *s, int64_t v);	/* gauge */
void metric_series_gauge_add(struct metric_series *s, int64_t delta);
void metric_series_observe(struct metric_series *s, double value);

/* A gauge read at exposition time from a callback (open connections). */
int metrics_gauge_fn(struct metrics *m, const char *name, const char *help,
    int64_t (*fn)(void *arg), void *arg) MOAT_MUST_CHECK;

/* Appends the exposition text of every metric to out. */
int metrics_render(struct metrics *m, struct buf *out) MOAT_MUST_CHECK;

/* An http.h route handler serving GET /metrics: renders metrics (a
 * struct metrics *, borrowed) as text/plain; version=0.0.4, or answers 500.
 * Lives in metrics_http.c so that metrics.c does not depend on http.c. */
struct http_request;
void metrics_http_handler(struct http_request *req, void *metrics);

#endif
