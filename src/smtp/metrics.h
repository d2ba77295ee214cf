/*
 * metrics.h: the SMTP server's counters (issue 6, metrics): connections
 * by listener role, messages and recipients accepted, refusals by reason,
 * TLS handshakes and AUTH results. docs/metrics.md lists them.
 *
 * The hooks are called on the event loop by session.c, one line each;
 * the daemon serves smtp_metrics_list() (src/daemon/metrics_http.c).
 */
#ifndef PETREL_SMTP_METRICS_H
#define PETREL_SMTP_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"
#include "smtp/reply.h"

struct metric;

/* Why a reply refused something: the label values of
 * petrel_smtp_rejections_total, in this order. */
enum smtp_metrics_reason {
	SMTP_REASON_NONE,		/* not a refusal: not counted */
	SMTP_REASON_RELAY_DENIED,
	SMTP_REASON_UNKNOWN_USER,
	SMTP_REASON_BAD_RECIPIENT,	/* mailbox path, alias target/loop */
	SMTP_REASON_SIZE,
	SMTP_REASON_LIMITS,		/* recipients, connections, errors,
					 * hops, timeouts, alias expansion */
	SMTP_REASON_DMARC_REJECT,
	SMTP_REASON_SPF_REJECT,
	SMTP_REASON_SPF_TEMPERROR,
	SMTP_REASON_SYNTAX,
	SMTP_REASON_SEQUENCE,		/* a command out of order */
	SMTP_REASON_BAD_BYTES,		/* bare LF or CR, NUL */
	SMTP_REASON_PROTOCOL,		/* early talker, pipelining first */
	SMTP_REASON_AUTH_REQUIRED,
	SMTP_REASON_SENDER_NOT_OWNED,	/* MAIL FROM or From: not the login's */
	SMTP_REASON_LOCAL_ERROR,	/* spool, TLS unavailable, auth backend */
	SMTP_REASON_SHUTDOWN,
	SMTP_REASON_MAX
};

/* The reason a reply counts under (SMTP_REASON_NONE: not a refusal). */
enum smtp_metrics_reason smtp_metrics_reason(enum reply_id id);
/* Its label value ("relay_denied"...), or NULL for NONE. */
const char *smtp_metrics_reason_name(enum smtp_metrics_reason r);

/* A session began (accepted, local ones too). */
void smtp_metrics_connection(enum conf_role role);
/* A reply was sent on a session of this role: counts acceptances
 * (message queued, recipient accepted, AUTH success) and refusals. */
void smtp_metrics_reply(enum conf_role role, enum reply_id id);
/* An inbound TLS handshake finished (ok) or failed. */
void smtp_metrics_tls(bool ok);
/* AUTH with bad credentials (successes come from smtp_metrics_reply). */
void smtp_metrics_auth_failed(void);

/* Every SMTP metric, for the exposition; *n_r set. */
struct metric *const *smtp_metrics_list(size_t *n_r);

#endif
