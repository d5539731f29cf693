/*
 * test_metrics.c - unit tests for metrics.c: the exact exposition text of
 * counters, gauges, histograms and callback gauges, label escaping, the
 * series cap and "other", cached series, registration errors, and updates
 * from several threads at once.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

static char *
render(struct metrics *m)
{
	struct buf b;
	char *s;

	buf_init(&b, 1 << 24);
	assert_int_equal(metrics_render(m, &b), 0);
	s = buf_steal(&b, NULL);
	assert_non_null(s);
	return s;
}

static void
test_counter_gauge_text(void **state)
{
	static const char *const labels[] = { "route", "code", NULL };
	struct metrics *m;
	struct metric *c, *g, *u;
	char *s;

	(void)state;
	assert_int_equal(metrics_new(&m), 0);
	assert_non_null(u = metrics_counter(m, "moat_up_total", "Starts.", NULL));
	assert_non_null(c = metrics_counter(m, "moat_http_requests_total",
	    "Requests by route\\code\nand status.", labels));
	assert_non_null(g = metrics_gauge(m, "moat_workspaces", "Workspaces.",
	    NULL));
	metric_add(u, NULL, 1);
	metric_add(c, (const char *const[]){ "/api/v1/a", "200" }, 2);
	metric_add(c, (const char *const[]){ "/api/v1/a", "200" }, 3);
	metric_add(c, (const char *const[]){ "x\"y\\z\nw", "500" }, 1);
	metric_set(g, NULL, 7);
	metric_gauge_add(g, NULL, -10);
	s = render(m);
	assert_string_equal(s,
	    "# HELP moat_up_total Starts.\n"
	    "# TYPE moat_up_total counter\n"
	    "moat_up_total 1\n"
	    "# HELP moat_http_requests_total Requests by route\\\\code\\nand "
	    "status.\n"
	    "# TYPE moat_http_requests_total counter\n"
	    "moat_http_requests_total{route=\"/api/v1/a\",code=\"200\"} 5\n"
	    "moat_http_requests_total{route=\"x\\\"y\\\\z\\nw\",code=\"500\"} 1\n"
	    "# HELP moat_workspaces Workspaces.\n"
	    "# TYPE moat_workspaces gauge\n"
	    "moat_workspaces -3\n");
	free(s);
	metrics_free(m);
}

static void
test_histogram_text(void **state)
{
	static const char *const labels[] = { "route", NULL };
	static const double bounds[] = { 0.1, 0.5, 1 };
	struct metrics *m;
	struct metric *h, *d;
	char *s;

	(void)state;
	assert_int_equal(metrics_new(&m), 0);
	assert_non_null(h = metrics_histogram(m, "moat_latency_seconds",
	    "Latency.", labels, bounds, 3));
	metric_observe(h, (const char *const[]){ "r" }, 0.05);
	metric_observe(h, (const char *const[]){ "r" }, 0.1);	/* le is <= */
	metric_observe(h, (const char *const[]){ "r" }, 0.7);
	metric_observe(h, (const char *const[]){ "r" }, 3);
	metric_observe(h, (const char *const[]){ "r" }, NAN);	/* dropped */
	s = render(m);
	assert_string_equal(s,
	    "# HELP moat_latency_seconds Latency.\n"
	    "# TYPE moat_latency_seconds histogram\n"
	    "moat_latency_seconds_bucket{route=\"r\",le=\"0.1\"} 2\n"
	    "moat_latency_seconds_bucket{route=\"r\",le=\"0.5\"} 2\n"
	    "moat_latency_seconds_bucket{route=\"r\",le=\"1\"} 3\n"
	    "moat_latency_seconds_bucket{route=\"r\",le=\"+Inf\"} 4\n"
	    "moat_latency_seconds_sum{route=\"r\"} 3.85\n"
	    "moat_latency_seconds_count{route=\"r\"} 4\n");
	free(s);
	/* Default buckets and no labels. */
	assert_non_null(d = metrics_histogram(m, "moat_d_seconds", "D.", NULL,
	    NULL, 0));
	metric_observe(d, NULL, 0.003);
	s = render(m);
	assert_non_null(strstr(s, "moat_d_seconds_bucket{le=\"0.005\"} 1\n"));
	assert_non_null(strstr(s, "moat_d_seconds_bucket{le=\"10\"} 1\n"));
	assert_non_null(strstr(s, "moat_d_seconds_bucket{le=\"+Inf\"} 1\n"));
	assert_non_null(strstr(s, "moat_d_seconds_sum 0.003\n"));
	assert_non_null(strstr(s, "moat_d_seconds_count 1\n"));
	free(s);
	metrics_free(m);
}

static int64_t
conns(void *arg)
{
	return *(int64_t *)arg;
}

static void
test_gauge_fn(void **state)
{
	struct metrics *m;
	int64_t n = 3;
	char *s;

	(void)state;
	assert_int_equal(metrics_new(&m), 0);
	assert_int_equal(metrics_gauge_fn(m, "moat_open_connections",
	    "Open connections.", conns, &n), 0);
	assert_int_equal(metrics_gauge_fn(m, "moat_open_connections", "x",
	    conns, &n), MOAT_ERR_INVAL);
	s = render(m);
	assert_non_null(strstr(s, "moat_open_connections 3\n"));
	free(s);
	n = 42;
	s = render(m);
	assert_non_null(strstr(s, "# TYPE moat_open_connections gauge\n"
	    "moat_open_connections 42\n"));
	free(s);
	metrics_free(m);
}

static void
test_registration_errors(void **state)
{
	static const char *const dup[] = { "a", "a", NULL };
	static const char *const le[] = { "le", NULL };
	static const char *const bad[] = { "1x", NULL };
	static const char *const reserved[] = { "__x", NULL };
	static const double unsorted[] = { 1, 0.5 };
	static const double inf[] = { 1, INFINITY };
	struct metrics *m;

	(void)state;
	assert_int_equal(metrics_new(&m), 0);
	assert_non_null(metrics_counter(m, "a_total", "", NULL));
	assert_null(metrics_counter(m, "a_total", "", NULL));
	assert_null(metrics_gauge(m, "a_total", "", NULL));
	assert_null(metrics_counter(m, "bad name", "", NULL));
	assert_null(metrics_counter(m, "9lives", "", NULL));
	assert_null(metrics_counter(m, "", "", NULL));
	assert_null(metrics_counter(m, "b", "", dup));
	assert_null(metrics_counter(m, "c", "", bad));
	assert_null(metrics_counter(m, "c", "", reserved));
	assert_null(metrics_histogram(m, "h", "", le, NULL, 0));
	assert_non_null(metrics_gauge(m, "ns:le", "", le));
	assert_null(metrics_histogram(m, "h", "", NULL, unsorted, 2));
	assert_null(metrics_histogram(m, "h", "", NULL, inf, 2));
	assert_non_null(metrics_histogram(m, "h", "", NULL, unsorted, 1));
	/* Updates through a failed registration do nothing. */
	metric_add(NULL, NULL, 1);
	metric_set(NULL, NULL, 1);
	metric_observe(NULL, NULL, 1);
	metric_series_add(NULL, 1);
	metric_series_observe(NULL, 1);
	assert_null(metric_series_get(NULL, NULL));
	metrics_free(m);
	metrics_free(NULL);
}

static void
test_cap_and_other(void **state)
{
	static const char *const labels[] = { "user", NULL };
	struct metrics *m;
	struct metric *c;
	struct metric_series *first, *s300, *s301;
	char v[32], *s, *p;
	size_t lines = 0;

	(void)state;
	assert_int_equal(metrics_new(&m), 0);
	assert_non_null(c = metrics_counter(m, "moat_logins_total", "Logins.",
	    labels));
	first = metric_series_get(c, (const char *const[]){ "u0" });
	for (int i = 0; i < 300; i++) {
		snprintf(v, sizeof(v), "u%d", i);
		metric_add(c, (const char *const[]){ v }, 1);
	}
	snprintf(v, sizeof(v), "u%d", 0);
	assert_ptr_equal(metric_series_get(c, (const char *const[]){ v }),
	    first);
	s300 = metric_series_get(c, (const char *const[]){ "u300" });
	s301 = metric_series_get(c, (const char *const[]){ "u301" });
	assert_ptr_equal(s300, s301);	/* both "other" */
	assert_ptr_equal(metric_series_get(c, (const char *const[]){ "other" }),
	    s300);
	s = render(m);
	for (p = s; (p = strstr(p, "moat_logins_total{")) != NULL; p++)
		lines++;
	assert_int_equal(lines, 257);
	assert_non_null(strstr(s, "moat_logins_total{user=\"u255\"} 1\n"));
	assert_null(strstr(s, "user=\"u256\""));
	assert_non_null(strstr(s, "moat_logins_total{user=\"other\"} 44\n"));
	free(s);
	metrics_free(m);
}

static void
test_series_cache_and_kinds(void **state)
{
	static const char *const labels[] = { "a", "b", NULL };
	struct metrics *m;
	struct metric *c, *g, *h;
	struct metric_series *sc, *sg, *sh;
	char *s;

	(void)state;
	assert_int_equal(metrics_new(&m), 0);
	c = metrics_counter(m, "c_total", "C.", labels);
	g = metrics_gauge(m, "g", "G.", labels);
	h = metrics_histogram(m, "h_seconds", "H.", NULL, (const double[]){ 1 },
	    1);
	/* "ab"+"" and "a"+"b" are different series. */
	sc = metric_series_get(c, (const char *const[]){ "ab", "" });
	assert_ptr_not_equal(sc, metric_series_get(c,
	    (const char *const[]){ "a", "b" }));
	assert_ptr_equal(sc, metric_series_get(c,
	    (const char *const[]){ "ab", "" }));
	metric_series_add(sc, 5);
	metric_series_set(sc, 100);		/* ignored on a counter */
	metric_series_observe(sc, 1);		/* ignored */
	sg = metric_series_get(g, NULL);	/* missing values: "" */
	metric_series_set(sg, -4);
	metric_series_gauge_add(sg, 10);
	sh = metric_series_get(h, NULL);
	metric_series_observe(sh, 0.5);
	metric_series_add(sh, 3);		/* ignored on a histogram */
	s = render(m);
	assert_non_null(strstr(s, "c_total{a=\"ab\",b=\"\"} 5\n"));
	assert_non_null(strstr(s, "c_total{a=\"a\",b=\"b\"} 0\n"));
	assert_non_null(strstr(s, "g{a=\"\",b=\"\"} 6\n"));
	assert_non_null(strstr(s, "h_seconds_bucket{le=\"1\"} 1\n"));
	assert_non_null(strstr(s, "h_seconds_count 1\n"));
	assert_null(strstr(s, "other"));
	free(s);
	metrics_free(m);
}

static void
test_render_toobig(void **state)
{
	struct metrics *m;
	struct buf b;

	(void)state;
	assert_int_equal(metrics_new(&m), 0);
	assert_non_null(metrics_counter(m, "x_total", "A help text.", NULL));
	buf_init(&b, 10);
	assert_int_equal(metrics_render(m, &b), MOAT_ERR_TOOBIG);
	buf_free(&b);
	metrics_free(m);
}

struct worker {
	struct metric *c, *h;
	struct metric_series *cached;
	int id;
};

static void *
work(void *arg)
{
	struct worker *w = arg;
	char v[16];

	snprintf(v, sizeof(v), "t%d", w->id % 2);
	for (int i = 0; i < 20000; i++) {
		metric_add(w->c, (const char *const[]){ v }, 1);
		metric_series_add(w->cached, 1);
		metric_observe(w->h, NULL, 0.25);
	}
	return NULL;
}

static void
test_threads(void **state)
{
	static const char *const labels[] = { "t", NULL };
	struct metrics *m;
	struct worker w[4];
	pthread_t th[4];
	struct metric *c, *h;
	char *s;

	(void)state;
	assert_int_equal(metrics_new(&m), 0);
	c = metrics_counter(m, "c_total", "C.", labels);
	h = metrics_histogram(m, "h_seconds", "H.", NULL, NULL, 0);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ c, h,
		    metric_series_get(c, (const char *const[]){ "cached" }), i };
		assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	s = render(m);
	assert_non_null(strstr(s, "c_total{t=\"t0\"} 40000\n"));
	assert_non_null(strstr(s, "c_total{t=\"t1\"} 40000\n"));
	assert_non_null(strstr(s, "c_total{t=\"cached\"} 80000\n"));
	assert_non_null(strstr(s, "h_seconds_count 80000\n"));
	assert_non_null(strstr(s, "h_seconds_sum 20000\n"));
	free(s);
	metrics_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_gauge_text),
		cmocka_unit_test(test_histogram_text),
		cmocka_unit_test(test_gauge_fn),
		cmocka_unit_test(test_registration_errors),
		cmocka_unit_test(test_cap_and_other),
		cmocka_unit_test(test_series_cache_and_kinds),
		cmocka_unit_test(test_render_toobig),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
