/*
 * metrics.h: the delivery latency histogram (issue 6, metrics). The
 * delivered, deferred and bounced counts and the queue gauges come from
 * the scheduler (scheduler_get_stats, scheduler_get_queue) when the
 * daemon serves a scrape. docs/metrics.md lists them.
 */
#ifndef PETREL_DELIVERY_METRICS_H
#define PETREL_DELIVERY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct metric;

/*
 * A recipient was delivered seconds after its message arrived (local:
 * Maildir or LMTP; else remote SMTP). On the loop (the scheduler).
 */
void delivery_metrics_delivered(bool local, uint64_t seconds);

/* Every delivery metric, for the exposition; *n_r set. */
struct metric *const *delivery_metrics_list(size_t *n_r);

#endif
