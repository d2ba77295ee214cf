/*
 * metrics.c: SPF, DKIM and DMARC verdict counters (metrics.h).
 *
 * Entry points: msgauth_metrics_count, msgauth_metrics_list.
 *
 * SECURITY: label values are the fixed result names below, chosen by
 * enum; nothing from a message or DNS becomes a label.
 * STANDARDS: RFC 7208 2.6 (SPF results), RFC 8601 2.7.1 (DKIM results),
 * RFC 7489 11.2 (DMARC results).
 * OWNERSHIP: the metrics are static; updates are atomic (lib/metrics.h).
 */
#include "msgauth/metrics.h"

#include "lib/metrics.h"
#include "lib/util.h"
#include "msgauth/check.h"
#include "msgauth/dkim.h"
#include "msgauth/dmarc.h"
#include "msgauth/spf.h"

/* In the order of the enums (spf.h, dkim.h, dmarc.h). */
const char *const msgauth_metrics_spf_values[] = {
	"none", "neutral", "pass", "fail", "softfail", "temperror",
	"permerror",
};
const char *const msgauth_metrics_dkim_values[] = {
	"none", "pass", "fail", "neutral", "policy", "temperror", "permerror",
};
const char *const msgauth_metrics_dmarc_values[] = {
	"none", "pass", "fail", "temperror", "permerror",
};

_Static_assert(SPF_PERMERROR == 6 && DKIM_RESULT_PERMERROR == 6 &&
    DMARC_RESULT_PERMERROR == 4, "a result enum changed: update the "
    "label values");

static struct metric msgauth_metric_spf = {
	.name = "petrel_spf_results_total",
	.help = "SPF results of checked messages (MAIL FROM, or HELO for "
	    "the null sender).",
	.type = METRIC_COUNTER,
	.label = "result",
	.values = msgauth_metrics_spf_values,
	.nvalues = 7,
};

static struct metric msgauth_metric_dkim = {
	.name = "petrel_dkim_results_total",
	.help = "DKIM results of checked messages, one per signature "
	    "(none: a message without any).",
	.type = METRIC_COUNTER,
	.label = "result",
	.values = msgauth_metrics_dkim_values,
	.nvalues = 7,
};

static struct metric msgauth_metric_dmarc = {
	.name = "petrel_dmarc_results_total",
	.help = "DMARC results of checked messages.",
	.type = METRIC_COUNTER,
	.label = "result",
	.values = msgauth_metrics_dmarc_values,
	.nvalues = 5,
};

static struct metric *const msgauth_metrics_all[] = {
	&msgauth_metric_spf,
	&msgauth_metric_dkim,
	&msgauth_metric_dmarc,
};

void
msgauth_metrics_count(const struct msgauth_result *r)
{
	size_t i;

	if (r->spf != NULL)
		metrics_inc(&msgauth_metric_spf, (size_t)r->spf->result);
	if (r->ndkim == 0)
		metrics_inc(&msgauth_metric_dkim, DKIM_RESULT_NONE);
	for (i = 0; i < r->ndkim; i++)
		metrics_inc(&msgauth_metric_dkim, (size_t)r->dkim[i].result);
	if (r->dmarc != NULL)
		metrics_inc(&msgauth_metric_dmarc, (size_t)r->dmarc->result);
}

struct metric *const *
msgauth_metrics_list(size_t *n_r)
{
	*n_r = nitems(msgauth_metrics_all);
	return msgauth_metrics_all;
}
