/*
 * metrics.c: the delivery latency histogram (metrics.h).
 *
 * Entry points: delivery_metrics_delivered, delivery_metrics_list.
 *
 * The latency runs from the message's arrival (the envelope's arrival
 * time, whole seconds) to the attempt that delivered the recipient, so
 * it includes every retry. The buckets go from a second to the default
 * queue_lifetime (5 days).
 *
 * OWNERSHIP: the metric is static; updates are atomic (lib/metrics.h).
 */
#include "delivery/metrics.h"

#include "lib/metrics.h"
#include "lib/util.h"

static const char *const delivery_metrics_kinds[] = { "local", "remote" };

static const double delivery_metrics_bounds[] = {
	1, 5, 10, 30, 60, 300, 900, 1800, 3600, 14400, 86400, 432000,
};

static struct metric delivery_metric_latency = {
	.name = "petrel_delivery_latency_seconds",
	.help = "Time from a message's arrival to the delivery of a "
	    "recipient (whole seconds, retries included), by kind.",
	.type = METRIC_HISTOGRAM,
	.label = "kind",
	.values = delivery_metrics_kinds,
	.nvalues = nitems(delivery_metrics_kinds),
	.bounds = delivery_metrics_bounds,
	.nbounds = nitems(delivery_metrics_bounds),
};

static struct metric *const delivery_metrics_all[] = {
	&delivery_metric_latency,
};

void
delivery_metrics_delivered(bool local, uint64_t seconds)
{
	metrics_observe(&delivery_metric_latency, local ? 0 : 1,
	    (double)seconds);
}

struct metric *const *
delivery_metrics_list(size_t *n_r)
{
	*n_r = nitems(delivery_metrics_all);
	return delivery_metrics_all;
}
