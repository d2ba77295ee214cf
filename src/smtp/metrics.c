/*
 * metrics.c: the SMTP server's metrics (metrics.h) and the table that
 * sorts every refusing reply into a fixed reason.
 *
 * Entry points: smtp_metrics_connection, smtp_metrics_reply,
 * smtp_metrics_tls, smtp_metrics_auth_failed, smtp_metrics_reason,
 * smtp_metrics_reason_name, smtp_metrics_list.
 *
 * SECURITY: label values are the fixed strings below, chosen by enum;
 * nothing a client sends becomes a label.
 * OWNERSHIP: the metrics are static; updates are atomic (lib/metrics.h).
 */
#include "smtp/metrics.h"

#include "lib/metrics.h"
#include "lib/util.h"

/* Indexed by enum conf_role. */
static const char *const smtp_metrics_roles[] = {
	[CONF_ROLE_MX] = "mx",
	[CONF_ROLE_SUBMISSION] = "submission",
	[CONF_ROLE_SUBMISSIONS] = "submissions",
	[CONF_ROLE_LOCAL] = "local",
};

/* Indexed by enum smtp_metrics_reason minus one (NONE is not a value). */
static const char *const smtp_metrics_reasons[] = {
	"relay_denied", "unknown_user", "bad_recipient", "size", "limits",
	"dmarc_reject", "spf_reject", "spf_temperror", "syntax", "sequence",
	"bad_bytes", "protocol", "auth_required", "sender_not_owned",
	"local_error", "shutdown",
};

/*
 * Every reply of 400 and up has a reason here; tests/unit/
 * test_smtp_metrics.c fails for one that has none, so a new reply gets
 * sorted when it is added. 535 (bad credentials) is not a table reply:
 * it counts as an AUTH failure.
 */
static const unsigned char smtp_metrics_reason_of[REPLY_MAX] = {
	[REPLY_NEED_HELO] = SMTP_REASON_SEQUENCE,
	[REPLY_NEED_MAIL] = SMTP_REASON_SEQUENCE,
	[REPLY_NEED_RCPT] = SMTP_REASON_SEQUENCE,
	[REPLY_NESTED_MAIL] = SMTP_REASON_SEQUENCE,
	[REPLY_NO_VALID_RCPTS] = SMTP_REASON_SEQUENCE,
	[REPLY_DATA_AFTER_BDAT] = SMTP_REASON_SEQUENCE,
	[REPLY_RCPT_AFTER_BDAT] = SMTP_REASON_SEQUENCE,
	[REPLY_BINARYMIME_DATA] = SMTP_REASON_SEQUENCE,
	[REPLY_BDAT_DISCARDED] = SMTP_REASON_SEQUENCE,
	[REPLY_TLS_ACTIVE] = SMTP_REASON_SEQUENCE,
	[REPLY_IN_TXN] = SMTP_REASON_SEQUENCE,
	[REPLY_AUTH_ALREADY] = SMTP_REASON_SEQUENCE,
	[REPLY_AUTH_DISABLED] = SMTP_REASON_SEQUENCE,
	[REPLY_SYNTAX] = SMTP_REASON_SYNTAX,
	[REPLY_HELO_SYNTAX] = SMTP_REASON_SYNTAX,
	[REPLY_NO_ARGS] = SMTP_REASON_SYNTAX,
	[REPLY_BDAT_SYNTAX] = SMTP_REASON_SYNTAX,
	[REPLY_UNKNOWN_CMD] = SMTP_REASON_SYNTAX,
	[REPLY_LINE_TOO_LONG] = SMTP_REASON_SYNTAX,
	[REPLY_NOT_IMPLEMENTED] = SMTP_REASON_SYNTAX,
	[REPLY_BAD_SENDER] = SMTP_REASON_SYNTAX,
	[REPLY_BAD_RCPT] = SMTP_REASON_SYNTAX,
	[REPLY_PARAM_UNKNOWN] = SMTP_REASON_SYNTAX,
	[REPLY_PARAM_SYNTAX] = SMTP_REASON_SYNTAX,
	[REPLY_NEED_SMTPUTF8] = SMTP_REASON_SYNTAX,
	[REPLY_AUTH_TOO_LONG] = SMTP_REASON_SYNTAX,
	[REPLY_BAD_LINE] = SMTP_REASON_BAD_BYTES,
	[REPLY_BARE_LF] = SMTP_REASON_BAD_BYTES,
	[REPLY_NUL] = SMTP_REASON_BAD_BYTES,
	[REPLY_UNKNOWN_USER] = SMTP_REASON_UNKNOWN_USER,
	[REPLY_BAD_MAILBOX] = SMTP_REASON_BAD_RECIPIENT,
	[REPLY_ALIAS_REFUSED] = SMTP_REASON_BAD_RECIPIENT,
	[REPLY_ALIAS_LOOP] = SMTP_REASON_BAD_RECIPIENT,
	[REPLY_ALIAS_EXPANSION] = SMTP_REASON_LIMITS,
	[REPLY_RELAY_DENIED] = SMTP_REASON_RELAY_DENIED,
	[REPLY_TOO_MANY_RCPTS] = SMTP_REASON_LIMITS,
	[REPLY_SIZE_EXCEEDED] = SMTP_REASON_SIZE,
	[REPLY_DATA_LINE_LONG] = SMTP_REASON_SIZE,
	[REPLY_HEADER_TOO_BIG] = SMTP_REASON_SIZE,
	[REPLY_TOO_MANY_HOPS] = SMTP_REASON_LIMITS,
	[REPLY_SPOOL_ERROR] = SMTP_REASON_LOCAL_ERROR,
	[REPLY_LOCAL_ERROR] = SMTP_REASON_LOCAL_ERROR,
	[REPLY_TOO_MANY_CONN] = SMTP_REASON_LIMITS,
	[REPLY_TOO_MANY_CONN_IP] = SMTP_REASON_LIMITS,
	[REPLY_TOO_MANY_ERRORS] = SMTP_REASON_LIMITS,
	[REPLY_SHUTDOWN] = SMTP_REASON_SHUTDOWN,
	[REPLY_TIMEOUT] = SMTP_REASON_LIMITS,
	[REPLY_EARLY_TALKER] = SMTP_REASON_PROTOCOL,
	[REPLY_UNAUTH_PIPELINING] = SMTP_REASON_PROTOCOL,
	[REPLY_TLS_UNAVAILABLE] = SMTP_REASON_LOCAL_ERROR,
	[REPLY_AUTH_NEED_TLS] = SMTP_REASON_AUTH_REQUIRED,
	[REPLY_AUTH_REQUIRED] = SMTP_REASON_AUTH_REQUIRED,
	[REPLY_AUTH_TEMPFAIL] = SMTP_REASON_LOCAL_ERROR,
	[REPLY_AUTH_TOO_MANY] = SMTP_REASON_LIMITS,
	[REPLY_SENDER_NOT_OWNED] = SMTP_REASON_SENDER_NOT_OWNED,
	[REPLY_FROM_NOT_OWNED] = SMTP_REASON_SENDER_NOT_OWNED,
	[REPLY_FROM_BAD] = SMTP_REASON_SENDER_NOT_OWNED,
	[REPLY_DMARC_REJECT] = SMTP_REASON_DMARC_REJECT,
	[REPLY_SPF_FAIL] = SMTP_REASON_SPF_REJECT,
	[REPLY_SPF_TEMPERROR] = SMTP_REASON_SPF_TEMPERROR,
};

static const char *const smtp_metrics_tls_results[] = { "ok", "failed" };
static const char *const smtp_metrics_auth_results[] = {
	"success", "failure",
};

static struct metric smtp_metric_connections = {
	.name = "petrel_smtp_connections_total",
	.help = "SMTP sessions started, by listener role (local: the "
	    "sendmail socket and maildrop pickup).",
	.type = METRIC_COUNTER,
	.label = "role",
	.values = smtp_metrics_roles,
	.nvalues = nitems(smtp_metrics_roles),
};

static struct metric smtp_metric_messages = {
	.name = "petrel_smtp_messages_received_total",
	.help = "Messages accepted (250 after DATA or BDAT LAST: on disk), "
	    "by listener role.",
	.type = METRIC_COUNTER,
	.label = "role",
	.values = smtp_metrics_roles,
	.nvalues = nitems(smtp_metrics_roles),
};

static struct metric smtp_metric_rcpts = {
	.name = "petrel_smtp_recipients_accepted_total",
	.help = "RCPT TO commands accepted, by listener role.",
	.type = METRIC_COUNTER,
	.label = "role",
	.values = smtp_metrics_roles,
	.nvalues = nitems(smtp_metrics_roles),
};

static struct metric smtp_metric_rejections = {
	.name = "petrel_smtp_rejections_total",
	.help = "Replies that refused a command, a recipient, a message or "
	    "a connection (4xx and 5xx), by reason.",
	.type = METRIC_COUNTER,
	.label = "reason",
	.values = smtp_metrics_reasons,
	.nvalues = nitems(smtp_metrics_reasons),
};

static struct metric smtp_metric_tls = {
	.name = "petrel_smtp_tls_handshakes_total",
	.help = "Inbound TLS handshakes (STARTTLS and port 465), by result.",
	.type = METRIC_COUNTER,
	.label = "result",
	.values = smtp_metrics_tls_results,
	.nvalues = nitems(smtp_metrics_tls_results),
};

static struct metric smtp_metric_auth = {
	.name = "petrel_smtp_auth_total",
	.help = "SMTP AUTH attempts that were decided, by result "
	    "(failure: bad credentials).",
	.type = METRIC_COUNTER,
	.label = "result",
	.values = smtp_metrics_auth_results,
	.nvalues = nitems(smtp_metrics_auth_results),
};

static struct metric *const smtp_metrics_all[] = {
	&smtp_metric_connections,
	&smtp_metric_messages,
	&smtp_metric_rcpts,
	&smtp_metric_rejections,
	&smtp_metric_tls,
	&smtp_metric_auth,
};

/* The names must follow the enum. */
_Static_assert(nitems(smtp_metrics_reasons) == SMTP_REASON_MAX - 1,
    "smtp_metrics_reasons and enum smtp_metrics_reason differ");
_Static_assert(nitems(smtp_metrics_roles) == CONF_ROLE_LOCAL + 1,
    "smtp_metrics_roles and enum conf_role differ");

enum smtp_metrics_reason
smtp_metrics_reason(enum reply_id id)
{
	if ((size_t)id >= nitems(smtp_metrics_reason_of))
		return SMTP_REASON_NONE;
	return (enum smtp_metrics_reason)smtp_metrics_reason_of[id];
}

const char *
smtp_metrics_reason_name(enum smtp_metrics_reason r)
{
	if (r <= SMTP_REASON_NONE || r >= SMTP_REASON_MAX)
		return NULL;
	return smtp_metrics_reasons[r - 1];
}

void
smtp_metrics_connection(enum conf_role role)
{
	metrics_inc(&smtp_metric_connections, (size_t)role);
}

void
smtp_metrics_reply(enum conf_role role, enum reply_id id)
{
	enum smtp_metrics_reason r;

	switch (id) {
	case REPLY_QUEUED:
		metrics_inc(&smtp_metric_messages, (size_t)role);
		return;
	case REPLY_RCPT_OK:
		metrics_inc(&smtp_metric_rcpts, (size_t)role);
		return;
	case REPLY_AUTH_OK:
		metrics_inc(&smtp_metric_auth, 0);
		return;
	default:
		break;
	}
	if ((r = smtp_metrics_reason(id)) != SMTP_REASON_NONE)
		metrics_inc(&smtp_metric_rejections, (size_t)r - 1);
}

void
smtp_metrics_tls(bool ok)
{
	metrics_inc(&smtp_metric_tls, ok ? 0 : 1);
}

void
smtp_metrics_auth_failed(void)
{
	metrics_inc(&smtp_metric_auth, 1);
}

struct metric *const *
smtp_metrics_list(size_t *n_r)
{
	*n_r = nitems(smtp_metrics_all);
	return smtp_metrics_all;
}
