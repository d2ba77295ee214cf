/*
 * metrics.h: a small registry of counters, gauges and histograms, and the
 * Prometheus text exposition format (version 0.0.4) they are served in.
 *
 * A metric is a statically allocated struct metric: its name, help text,
 * type, at most one label with a fixed list of values (one series per
 * value; no label: one series), and for a histogram its bucket upper
 * bounds. Storage is C11 atomics inside the struct, zero at start, so any
 * thread may update it without a lock (relaxed ordering: each value is
 * exact, a scrape is not a consistent snapshot across values).
 *
 * Label values are the fixed strings of the metric's definition, never
 * text from the network: a series is chosen by index.
 *
 * STANDARDS: Prometheus "Exposition formats" (text format 0.0.4) and
 * "Metric and label naming".
 */
#ifndef PETREL_LIB_METRICS_H
#define PETREL_LIB_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

#define METRICS_SERIES_MAX	24	/* label values of one metric */
#define METRICS_BOUNDS_MAX	16	/* histogram bounds, +Inf aside */

enum metric_type {
	METRIC_COUNTER,		/* only goes up (name ends in _total) */
	METRIC_GAUGE,		/* a signed value set now */
	METRIC_HISTOGRAM,	/* observations into fixed buckets */
};

struct metric {
	const char *name;		/* petrel_smtp_connections_total */
	const char *help;		/* one line; escaped on output */
	enum metric_type type;
	const char *label;		/* label name, or NULL: one series */
	const char *const *values;	/* nvalues label values */
	size_t nvalues;
	const double *bounds;		/* histogram: ascending, finite */
	size_t nbounds;
	/* Storage: counters and gauges in value[] (a gauge's int64_t as
	 * its two's complement); a histogram's per-bucket (not cumulative)
	 * counts in bucket[][], the last one past every bound (+Inf), and
	 * its sum in sum[] (the bits of a double). */
	_Atomic uint64_t value[METRICS_SERIES_MAX];
	_Atomic uint64_t bucket[METRICS_SERIES_MAX][METRICS_BOUNDS_MAX + 1];
	_Atomic uint64_t sum[METRICS_SERIES_MAX];
};

/*
 * Updates. series is the index of the label value (0 without a label);
 * an index out of range, or the wrong type, changes nothing (a metrics
 * bug must not take the mail server down).
 */
void metrics_add(struct metric *m, size_t series, uint64_t n);
void metrics_inc(struct metric *m, size_t series);
/* A gauge; or a counter mirrored from a count kept elsewhere. */
void metrics_set(struct metric *m, size_t series, int64_t v);
void metrics_observe(struct metric *m, size_t series, double v);

/* Reads, for tests: a counter or gauge value; a histogram's count. */
int64_t metrics_get(const struct metric *m, size_t series);
double metrics_get_sum(const struct metric *m, size_t series);

/*
 * Is m well defined: a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), a
 * counter's ending in _total, a valid label name (not reserved: "__*",
 * and "le" on a histogram), at most METRICS_SERIES_MAX distinct values
 * that are valid UTF-8 without control characters other than newline,
 * ascending finite bounds? Returns true, or false with *error_r set
 * (static text). metrics_format() leaves out a metric that fails.
 */
bool metrics_check(const struct metric *m, const char **error_r);

/*
 * Append the text exposition of the n metrics in list to out: per metric
 * "# HELP", "# TYPE", then one sample line per series (histograms: the
 * cumulative _bucket lines with le="+Inf" last, _sum and _count). Help
 * text escapes '\' and newline; label values '\', '"' and newline.
 * Returns 0, or -1 (EMSGSIZE) when out's maximum is reached: out then
 * holds a cut exposition that must not be served.
 */
int metrics_format(struct buf *out, struct metric *const *list, size_t n);

/*
 * A double as the format writes it: a whole number under 1e15 in full
 * ("10", "432000"), anything else as the shortest text that reads back
 * as the same value ("0.5", "0.1", "1e+20"); "+Inf", "-Inf" or "NaN".
 */
void metrics_format_double(char *dst, size_t size, double v);

#endif
