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
/* bounds: ascending upper bounds in seconds, nbounds of them (+Inf added). */
struct metric *metrics_histogram(struct metrics *m, const char *name,
    const char *help, const char *const *label_names, const double *bounds,
    size_t nbounds);

/* label_values: as many as label_names, or NULL for none. */
void metric_add(struct metric *c, const char *const *label_values, uint64_t v);
void metric_set(struct metric *g, const char *const *label_values, int64_t v);
void metric_observe(struct metric *h, const char *const *label_values,
    double value);

/* A gauge read at exposition time from a callback (open connections). */
int metrics_gauge_fn(struct metrics *m, const char *name, const char *help,
    int64_t (*fn)(void *arg), void *arg) MOAT_MUST_CHECK;

/* Appends the exposition text of every metric to out. */
int metrics_render(struct metrics *m, struct buf *out) MOAT_MUST_CHECK;

#endif
