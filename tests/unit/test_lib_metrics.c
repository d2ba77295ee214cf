/*
 * test_lib_metrics.c: the metric registry (lib/metrics.h) and the
 * Prometheus text format it writes: exact lines for counters, gauges and
 * histograms (buckets cumulative, le="+Inf" last and equal to _count),
 * escaping of help text and label values, the definition checks, number
 * formatting, the size cap, and exact counts from several threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <pthread.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/metrics.h"
#include "lib/util.h"

#include "testutil.h"

static void
expect_text(struct metric *const *list, size_t n, const char *want)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	assert_int_equal(metrics_format(&b, list, n), 0);
	if (strcmp(buf_str(&b), want) != 0)
		fail_msg("got\n%s\nwant\n%s", buf_str(&b), want);
	buf_free(&b);
}

static void
test_counter_plain(void **state)
{
	static struct metric m = {
		.name = "t_events_total",
		.help = "Events.",
		.type = METRIC_COUNTER,
	};
	struct metric *list[] = { &m };

	(void)state;
	expect_text(list, 1, "# HELP t_events_total Events.\n"
	    "# TYPE t_events_total counter\n"
	    "t_events_total 0\n");
	metrics_inc(&m, 0);
	metrics_add(&m, 0, 41);
	metrics_inc(&m, 1);		/* no such series: ignored */
	metrics_observe(&m, 0, 1.0);	/* not a histogram: ignored */
	assert_int_equal(metrics_get(&m, 0), 42);
	expect_text(list, 1, "# HELP t_events_total Events.\n"
	    "# TYPE t_events_total counter\n"
	    "t_events_total 42\n");
}

static void
test_counter_labelled_and_gauge(void **state)
{
	static const char *const roles[] = { "mx", "submission" };
	static struct metric c = {
		.name = "t_conn_total",
		.help = "Connections.",
		.type = METRIC_COUNTER,
		.label = "role",
		.values = roles,
		.nvalues = 2,
	};
	static struct metric g = {
		.name = "t_level",
		.help = "A level.",
		.type = METRIC_GAUGE,
	};
	struct metric *list[] = { &c, &g };

	(void)state;
	metrics_inc(&c, 1);
	metrics_inc(&c, 1);
	metrics_inc(&c, 2);		/* out of range: ignored */
	metrics_add(&g, 0, 5);		/* not a counter: ignored */
	metrics_set(&g, 0, -7);
	expect_text(list, 2, "# HELP t_conn_total Connections.\n"
	    "# TYPE t_conn_total counter\n"
	    "t_conn_total{role=\"mx\"} 0\n"
	    "t_conn_total{role=\"submission\"} 2\n"
	    "# HELP t_level A level.\n"
	    "# TYPE t_level gauge\n"
	    "t_level -7\n");
}

static void
test_histogram(void **state)
{
	static const double bounds[] = { 0.5, 1, 10 };
	static struct metric h = {
		.name = "t_latency_seconds",
		.help = "Latency.",
		.type = METRIC_HISTOGRAM,
		.bounds = bounds,
		.nbounds = 3,
	};
	struct metric *list[] = { &h };

	(void)state;
	/* le is "less than or equal": 1 goes into le="1". */
	metrics_observe(&h, 0, 0.25);
	metrics_observe(&h, 0, 1);
	metrics_observe(&h, 0, 1);
	metrics_observe(&h, 0, 7);
	metrics_observe(&h, 0, 1000);	/* past every bound: +Inf only */
	assert_int_equal(metrics_get(&h, 0), 5);
	assert_true(metrics_get_sum(&h, 0) == 1009.25);
	expect_text(list, 1, "# HELP t_latency_seconds Latency.\n"
	    "# TYPE t_latency_seconds histogram\n"
	    "t_latency_seconds_bucket{le=\"0.5\"} 1\n"
	    "t_latency_seconds_bucket{le=\"1\"} 3\n"
	    "t_latency_seconds_bucket{le=\"10\"} 4\n"
	    "t_latency_seconds_bucket{le=\"+Inf\"} 5\n"
	    "t_latency_seconds_sum 1009.25\n"
	    "t_latency_seconds_count 5\n");
}

static void
test_histogram_labelled(void **state)
{
	static const char *const kinds[] = { "local", "remote" };
	static const double bounds[] = { 1 };
	static struct metric h = {
		.name = "t_h_seconds",
		.help = "H.",
		.type = METRIC_HISTOGRAM,
		.label = "kind",
		.values = kinds,
		.nvalues = 2,
		.bounds = bounds,
		.nbounds = 1,
	};
	struct metric *list[] = { &h };

	(void)state;
	metrics_observe(&h, 1, 3);
	expect_text(list, 1, "# HELP t_h_seconds H.\n"
	    "# TYPE t_h_seconds histogram\n"
	    "t_h_seconds_bucket{kind=\"local\",le=\"1\"} 0\n"
	    "t_h_seconds_bucket{kind=\"local\",le=\"+Inf\"} 0\n"
	    "t_h_seconds_sum{kind=\"local\"} 0\n"
	    "t_h_seconds_count{kind=\"local\"} 0\n"
	    "t_h_seconds_bucket{kind=\"remote\",le=\"1\"} 0\n"
	    "t_h_seconds_bucket{kind=\"remote\",le=\"+Inf\"} 1\n"
	    "t_h_seconds_sum{kind=\"remote\"} 3\n"
	    "t_h_seconds_count{kind=\"remote\"} 1\n");
}

static void
test_escaping(void **state)
{
	static const char *const values[] = { "a\"b\\c\nd", "\xc3\xa9" };
	static struct metric m = {
		.name = "t_esc_total",
		.help = "Back\\slash \"quotes\" stay,\nnewline escaped.",
		.type = METRIC_COUNTER,
		.label = "v",
		.values = values,
		.nvalues = 2,
	};
	static const char *const cr[] = { "a\rb" };
	static struct metric bad = {
		.name = "t_bad_total",
		.help = "h",
		.type = METRIC_COUNTER,
		.label = "v",
		.values = cr,
		.nvalues = 1,
	};
	struct metric *list[] = { &bad, &m };
	const char *error;

	(void)state;
	/* Help: backslash and newline escaped; label values: backslash,
	 * double quote and newline. A value with another control character
	 * is refused, and a refused metric is left out, not the others. */
	assert_true(metrics_check(&m, &error));
	assert_false(metrics_check(&bad, &error));
	expect_text(list, 2, "# HELP t_esc_total Back\\\\slash "
	    "\"quotes\" stay,\\nnewline escaped.\n"
	    "# TYPE t_esc_total counter\n"
	    "t_esc_total{v=\"a\\\"b\\\\c\\nd\"} 0\n"
	    "t_esc_total{v=\"\xc3\xa9\"} 0\n");
}

static void
test_check(void **state)
{
	static const char *const two[] = { "x", "x" };
	static const char *const one[] = { "x" };
	static const char *const bad_utf8[] = { "\xc3" };
	static const double up[] = { 1, 2 }, down[] = { 2, 1 };
	static const double inf[] = { 1, 1.0 / 0.0 };
	const struct {
		struct metric m;
		bool ok;
	} cases[] = {
		{ { .name = "ok_total", .help = "h" }, true },
		{ { .name = "ok:sub_total", .help = "h" }, true },
		{ { .name = "1bad_total", .help = "h" }, false },
		{ { .name = "bad-name_total", .help = "h" }, false },
		{ { .name = "", .help = "h" }, false },
		{ { .name = "no_suffix", .help = "h" }, false },
		{ { .name = "ok_total", .help = "" }, false },
		{ { .name = "g_total", .help = "h", .type = METRIC_GAUGE },
		    false },
		{ { .name = "g", .help = "h", .type = METRIC_GAUGE }, true },
		{ { .name = "ok_total", .help = "h", .label = "__x",
		    .values = one, .nvalues = 1 }, false },
		{ { .name = "ok_total", .help = "h", .label = "a:b",
		    .values = one, .nvalues = 1 }, false },
		{ { .name = "ok_total", .help = "h", .label = "l",
		    .values = two, .nvalues = 2 }, false },
		{ { .name = "ok_total", .help = "h", .label = "l",
		    .values = bad_utf8, .nvalues = 1 }, false },
		{ { .name = "ok_total", .help = "h", .label = "l",
		    .values = one, .nvalues = 0 }, false },
		{ { .name = "ok_total", .help = "h", .label = "l",
		    .values = one, .nvalues = METRICS_SERIES_MAX + 1 },
		    false },
		{ { .name = "h", .help = "h", .type = METRIC_HISTOGRAM,
		    .bounds = up, .nbounds = 2 }, true },
		{ { .name = "h", .help = "h", .type = METRIC_HISTOGRAM,
		    .bounds = down, .nbounds = 2 }, false },
		{ { .name = "h", .help = "h", .type = METRIC_HISTOGRAM,
		    .bounds = inf, .nbounds = 2 }, false },
		{ { .name = "h", .help = "h", .type = METRIC_HISTOGRAM },
		    false },
		{ { .name = "h", .help = "h", .type = METRIC_HISTOGRAM,
		    .label = "le", .values = one, .nvalues = 1,
		    .bounds = up, .nbounds = 2 }, false },
		{ { .name = "ok_total", .help = "h", .bounds = up,
		    .nbounds = 2 }, false },
	};
	const char *error;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		bool got;

		error = NULL;
		got = metrics_check(&cases[i].m, &error);
		if (got != cases[i].ok)
			fail_msg("case %zu (%s): got %s, want %s (%s)", i,
			    cases[i].m.name, got ? "valid" : "invalid",
			    cases[i].ok ? "valid" : "invalid",
			    error != NULL ? error : "");
	}
}

static void
test_format_double(void **state)
{
	const struct {
		double v;
		const char *want;
	} cases[] = {
		{ 0, "0" }, { 1, "1" }, { 10, "10" }, { 432000, "432000" },
		{ 0.5, "0.5" }, { 0.1, "0.1" }, { 0.005, "0.005" },
		{ -2.5, "-2.5" }, { 1e20, "1e+20" }, { 1.0 / 0.0, "+Inf" },
		{ -1.0 / 0.0, "-Inf" }, { 0.0 / 0.0, "NaN" },
		{ 1009.25, "1009.25" },
	};
	char out[64];
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		metrics_format_double(out, sizeof(out), cases[i].v);
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("%.17g: got %s, want %s", cases[i].v, out,
			    cases[i].want);
	}
}

static void
test_cap(void **state)
{
	static struct metric m = {
		.name = "t_cap_total",
		.help = "A help text longer than the buffer.",
		.type = METRIC_COUNTER,
	};
	struct metric *list[] = { &m };
	struct buf b;

	(void)state;
	buf_init(&b, 20);
	assert_int_equal(metrics_format(&b, list, 1), -1);
	buf_free(&b);
}

/* Four threads, 200000 increments and observations each: exact. */
#define T_THREADS	4
#define T_ROUNDS	200000

static const double t_bounds[] = { 1 };
static struct metric t_conc_c = {
	.name = "t_conc_total", .help = "c", .type = METRIC_COUNTER,
};
static struct metric t_conc_h = {
	.name = "t_conc_seconds", .help = "h", .type = METRIC_HISTOGRAM,
	.bounds = t_bounds, .nbounds = 1,
};

static void *
t_worker(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < T_ROUNDS; i++) {
		metrics_inc(&t_conc_c, 0);
		metrics_observe(&t_conc_h, 0, 2);
	}
	return NULL;
}

static void
test_threads(void **state)
{
	pthread_t t[T_THREADS];
	int i;

	(void)state;
	for (i = 0; i < T_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, t_worker, NULL),
		    0);
	for (i = 0; i < T_THREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(metrics_get(&t_conc_c, 0), T_THREADS * T_ROUNDS);
	assert_int_equal(metrics_get(&t_conc_h, 0), T_THREADS * T_ROUNDS);
	assert_true(metrics_get_sum(&t_conc_h, 0) ==
	    2.0 * T_THREADS * T_ROUNDS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_plain),
		cmocka_unit_test(test_counter_labelled_and_gauge),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_histogram_labelled),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_format_double),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
