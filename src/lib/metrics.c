/*
 * metrics.c: counters, gauges and histograms on C11 atomics, and their
 * Prometheus text exposition (metrics.h).
 *
 * Entry points: metrics_add, metrics_inc, metrics_set, metrics_observe,
 * metrics_get, metrics_get_sum, metrics_check, metrics_format,
 * metrics_format_double.
 *
 * SECURITY: no input from outside; every string written comes from the
 * metric definitions, escaped as the format requires all the same.
 * STANDARDS: Prometheus exposition formats, text format 0.0.4 (HELP and
 * TYPE lines, label value and help escaping, histogram _bucket/_sum/
 * _count with a cumulative le="+Inf" bucket).
 * OWNERSHIP: metrics are the caller's (static) objects; nothing here
 * allocates except through the caller's buf.
 */
#include "lib/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/utf8.h"
#include "lib/util.h"

static size_t
metrics_nseries(const struct metric *m)
{
	return m->label != NULL ? m->nvalues : 1;
}

void
metrics_add(struct metric *m, size_t series, uint64_t n)
{
	if (m->type != METRIC_COUNTER || series >= metrics_nseries(m) ||
	    series >= METRICS_SERIES_MAX)
		return;
	atomic_fetch_add_explicit(&m->value[series], n, memory_order_relaxed);
}

void
metrics_inc(struct metric *m, size_t series)
{
	metrics_add(m, series, 1);
}

void
metrics_set(struct metric *m, size_t series, int64_t v)
{
	if (m->type == METRIC_HISTOGRAM || series >= metrics_nseries(m) ||
	    series >= METRICS_SERIES_MAX)
		return;
	atomic_store_explicit(&m->value[series], (uint64_t)v,
	    memory_order_relaxed);
}

static uint64_t
metrics_double_bits(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	return u;
}

static double
metrics_bits_double(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

void
metrics_observe(struct metric *m, size_t series, double v)
{
	uint64_t old, new;
	size_t i, nb;

	if (m->type != METRIC_HISTOGRAM || series >= metrics_nseries(m) ||
	    series >= METRICS_SERIES_MAX || isnan(v))
		return;
	nb = m->nbounds < METRICS_BOUNDS_MAX ? m->nbounds : METRICS_BOUNDS_MAX;
	/* The first bucket whose upper bound holds v (le: v <= bound).
	 * cppcheck 2.10 takes nb for 0 (a false "always false"): */
	/* cppcheck-suppress knownConditionTrueFalse */
	for (i = 0; i < nb && v > m->bounds[i]; i++)
		;
	atomic_fetch_add_explicit(&m->bucket[series][i], 1,
	    memory_order_relaxed);
	/* No atomic add for doubles in C17: compare and swap the bits. */
	old = atomic_load_explicit(&m->sum[series], memory_order_relaxed);
	do
		new = metrics_double_bits(metrics_bits_double(old) + v);
	while (!atomic_compare_exchange_weak_explicit(&m->sum[series], &old,
	    new, memory_order_relaxed, memory_order_relaxed));
}

int64_t
metrics_get(const struct metric *m, size_t series)
{
	uint64_t n = 0;
	size_t i;

	if (series >= metrics_nseries(m) || series >= METRICS_SERIES_MAX)
		return 0;
	if (m->type != METRIC_HISTOGRAM)
		return (int64_t)atomic_load_explicit(&m->value[series],
		    memory_order_relaxed);
	for (i = 0; i <= m->nbounds && i <= METRICS_BOUNDS_MAX; i++)
		n += atomic_load_explicit(&m->bucket[series][i],
		    memory_order_relaxed);
	return (int64_t)n;
}

double
metrics_get_sum(const struct metric *m, size_t series)
{
	if (m->type != METRIC_HISTOGRAM || series >= metrics_nseries(m) ||
	    series >= METRICS_SERIES_MAX)
		return 0;
	return metrics_bits_double(atomic_load_explicit(&m->sum[series],
	    memory_order_relaxed));
}

/* ---- definitions ---- */

static bool
metrics_is_name(const char *s, bool colon)
{
	size_t i;

	if (s == NULL || s[0] == '\0')
		return false;
	for (i = 0; s[i] != '\0'; i++) {
		char c = s[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    c == '_' || (colon && c == ':'))
			continue;
		if (i > 0 && c >= '0' && c <= '9')
			continue;
		return false;
	}
	return true;
}

/* UTF-8 without control characters but newline (which is escaped). */
static bool
metrics_is_text(const char *s)
{
	size_t n;

	while (*s != '\0') {
		if ((unsigned char)*s < 0x80) {
			if (((unsigned char)*s < 0x20 && *s != '\n') ||
			    *s == 0x7f)
				return false;
			s++;
		} else if ((n = utf8_seq_len(s)) == 0)
			return false;
		else
			s += n;
	}
	return true;
}

static bool
metrics_has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

bool
metrics_check(const struct metric *m, const char **error_r)
{
	size_t i, j;

	if (!metrics_is_name(m->name, true)) {
		*error_r = "invalid metric name";
		return false;
	}
	if (m->help == NULL || m->help[0] == '\0') {
		*error_r = "no help text";
		return false;
	}
	if (m->type == METRIC_COUNTER && !metrics_has_suffix(m->name,
	    "_total")) {
		*error_r = "a counter's name must end in _total";
		return false;
	}
	if (m->type != METRIC_COUNTER && metrics_has_suffix(m->name,
	    "_total")) {
		*error_r = "only counters end in _total";
		return false;
	}
	if (m->label != NULL) {
		if (!metrics_is_name(m->label, false) ||
		    strncmp(m->label, "__", 2) == 0 ||
		    (m->type == METRIC_HISTOGRAM && strcmp(m->label,
		    "le") == 0)) {
			*error_r = "invalid or reserved label name";
			return false;
		}
		if (m->nvalues == 0 || m->nvalues > METRICS_SERIES_MAX ||
		    m->values == NULL) {
			*error_r = "a label needs 1 to METRICS_SERIES_MAX "
			    "values";
			return false;
		}
		for (i = 0; i < m->nvalues; i++) {
			const char *v = m->values[i];

			if (v == NULL || !metrics_is_text(v)) {
				*error_r = "a label value is not UTF-8 text";
				return false;
			}
			for (j = 0; j < i; j++)
				if (strcmp(v, m->values[j]) == 0) {
					*error_r = "a label value is listed "
					    "twice";
					return false;
				}
		}
	}
	if (m->type == METRIC_HISTOGRAM) {
		if (m->nbounds == 0 || m->nbounds > METRICS_BOUNDS_MAX ||
		    m->bounds == NULL) {
			*error_r = "a histogram needs 1 to METRICS_BOUNDS_MAX "
			    "bounds";
			return false;
		}
		for (i = 0; i < m->nbounds; i++)
			if (!isfinite(m->bounds[i]) ||
			    (i > 0 && m->bounds[i] <= m->bounds[i - 1])) {
				*error_r = "histogram bounds must be finite "
				    "and ascending";
				return false;
			}
	} else if (m->nbounds != 0) {
		*error_r = "only histograms have bounds";
		return false;
	}
	return true;
}

/* ---- the text format ---- */

void
metrics_format_double(char *dst, size_t size, double v)
{
	int prec;

	if (isnan(v)) {
		strlcpy(dst, "NaN", size);
		return;
	}
	if (isinf(v)) {
		strlcpy(dst, v > 0 ? "+Inf" : "-Inf", size);
		return;
	}
	/* Whole numbers in full ("10", not "1e+01"): bucket bounds read
	 * as people write them. */
	if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v) {
		snprintf(dst, size, "%lld", (long long)v);
		return;
	}
	/* The shortest %g that reads back as v ("0.1", not 0.1000...01). */
	for (prec = 1; prec <= 17; prec++) {
		snprintf(dst, size, "%.*g", prec, v);
		if (strtod(dst, NULL) == v)
			return;
	}
}

/* text with '\' and newline escaped, and '"' too when quote is set. */
static int
metrics_escape(struct buf *out, const char *text, bool quote)
{
	const char *p;
	int r = 0;

	for (p = text; *p != '\0' && r == 0; p++) {
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

static const char *
metrics_type_name(enum metric_type t)
{
	switch (t) {
	case METRIC_COUNTER:
		return "counter";
	case METRIC_GAUGE:
		return "gauge";
	case METRIC_HISTOGRAM:
		return "histogram";
	}
	return "untyped";
}

/*
 * "name{label="value",le="x"} " (suffix after name, le when not NULL);
 * the braces only when there is a label.
 */
static int
metrics_series(struct buf *out, const struct metric *m, const char *suffix,
    size_t series, const char *le)
{
	bool labelled = m->label != NULL;

	if (buf_append_str(out, m->name) == -1 ||
	    buf_append_str(out, suffix) == -1)
		return -1;
	if (!labelled && le == NULL)
		return buf_append(out, " ", 1);
	if (buf_append(out, "{", 1) == -1)
		return -1;
	if (labelled && (buf_printf(out, "%s=\"", m->label) == -1 ||
	    metrics_escape(out, m->values[series], true) == -1 ||
	    buf_append(out, "\"", 1) == -1))
		return -1;
	if (le != NULL && buf_printf(out, "%sle=\"%s\"", labelled ? "," : "",
	    le) == -1)
		return -1;
	return buf_append(out, "} ", 2);
}

static int
metrics_format_histogram(struct buf *out, const struct metric *m,
    size_t series)
{
	char num[64];
	uint64_t cum = 0;
	size_t i;

	for (i = 0; i <= m->nbounds; i++) {
		cum += atomic_load_explicit(&m->bucket[series][i],
		    memory_order_relaxed);
		if (i < m->nbounds)
			metrics_format_double(num, sizeof(num), m->bounds[i]);
		else
			strlcpy(num, "+Inf", sizeof(num));
		if (metrics_series(out, m, "_bucket", series, num) == -1 ||
		    buf_printf(out, "%llu\n", (unsigned long long)cum) == -1)
			return -1;
	}
	metrics_format_double(num, sizeof(num), metrics_get_sum(m, series));
	/* _count is the +Inf bucket by construction: the same reads. */
	if (metrics_series(out, m, "_sum", series, NULL) == -1 ||
	    buf_printf(out, "%s\n", num) == -1 ||
	    metrics_series(out, m, "_count", series, NULL) == -1 ||
	    buf_printf(out, "%llu\n", (unsigned long long)cum) == -1)
		return -1;
	return 0;
}

int
metrics_format(struct buf *out, struct metric *const *list, size_t n)
{
	const struct metric *m;
	const char *error;
	size_t i, s;

	for (i = 0; i < n; i++) {
		m = list[i];
		/* A definition bug leaves its metric out, not the rest. */
		if (!metrics_check(m, &error))
			continue;
		if (buf_printf(out, "# HELP %s ", m->name) == -1 ||
		    metrics_escape(out, m->help, false) == -1 ||
		    buf_printf(out, "\n# TYPE %s %s\n", m->name,
		    metrics_type_name(m->type)) == -1)
			return -1;
		for (s = 0; s < metrics_nseries(m); s++) {
			uint64_t v;

			if (m->type == METRIC_HISTOGRAM) {
				if (metrics_format_histogram(out, m, s) == -1)
					return -1;
				continue;
			}
			v = atomic_load_explicit(&m->value[s],
			    memory_order_relaxed);
			if (metrics_series(out, m, "", s, NULL) == -1)
				return -1;
			if (m->type == METRIC_GAUGE ?
			    buf_printf(out, "%lld\n", (long long)(int64_t)v) :
			    buf_printf(out, "%llu\n", (unsigned long long)v))
				return -1;
		}
	}
	return 0;
}
