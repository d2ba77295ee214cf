/*
 * metrics.h: SPF, DKIM and DMARC verdict counters (issue 6, metrics).
 * docs/metrics.md lists them.
 */
#ifndef PETREL_MSGAUTH_METRICS_H
#define PETREL_MSGAUTH_METRICS_H

#include <stddef.h>

struct metric;
struct msgauth_result;

/*
 * Count the verdicts of one finished check (check.c calls it once per
 * message): the SPF result (MAIL FROM, or HELO for <>), each DKIM
 * signature's result ("none" once for a message without any), and the
 * DMARC result. Thread-safe.
 */
void msgauth_metrics_count(const struct msgauth_result *r);

/* Every msgauth metric, for the exposition; *n_r set. */
struct metric *const *msgauth_metrics_list(size_t *n_r);

/* The label values, indexed by enum spf_result, dkim_result and
 * dmarc_result (the unit test checks them against the *_name()s). */
extern const char *const msgauth_metrics_spf_values[];
extern const char *const msgauth_metrics_dkim_values[];
extern const char *const msgauth_metrics_dmarc_values[];

#endif
