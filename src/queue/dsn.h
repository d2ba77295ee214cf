/*
 * dsn.h: delivery status notifications (bounces, delay warnings, success
 * and "relayed" notices) as RFC 3464 multipart/report messages.
 *
 * dsn_compose() writes one complete report message (header fields and
 * body, CRLF line ends, no line over 998 octets) from a description of
 * the original message and its recipients, and the original content read
 * through a callback:
 *
 *   multipart/report; report-type=delivery-status
 *     1. text/plain; charset=utf-8      what happened, per recipient with
 *                                       the remote server's exact reply
 *     2. message/delivery-status        Reporting-MTA, Arrival-Date, and
 *                                       per recipient Final-Recipient,
 *                                       Original-Recipient, Action,
 *                                       Status, Remote-MTA, Diagnostic-Code
 *     3. text/rfc822-headers            the original header block, or
 *        or message/rfc822              the whole message (RET=FULL on a
 *                                       failure report, small enough, no
 *                                       line over 998 octets)
 *
 * When the original used SMTPUTF8 the report uses the RFC 6533 types
 * instead: report-type=global-delivery-status, message/global-delivery-
 * status, message/global-headers, message/global; addresses and replies
 * may then carry UTF-8 (elsewhere any non-ASCII byte from a remote reply
 * is shown as '?').
 *
 * THREADS: pure computation plus the source callback; safe on a worker
 * thread (it may read a whole message: keep it off the event loop).
 */
#ifndef PETREL_QUEUE_DSN_H
#define PETREL_QUEUE_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

/* RFC 3464 2.3.3 action-value. */
enum dsn_action {
	DSN_FAILED,
	DSN_DELAYED,
	DSN_DELIVERED,
	DSN_RELAYED,	/* handed to a next hop without DSN support */
	DSN_EXPANDED,	/* delivered to an alias or list that fans out */
};

/*
 * One recipient. Every string is borrowed for the duration of the call;
 * NULL (or "") means "absent" wherever that is allowed.
 */
struct dsn_rcpt {
	/* The address we tried: Final-Recipient: rfc822; addr. */
	const char *addr;
	/*
	 * ORCPT= as received, "addr-type;xtext" (RFC 3461 4.2), e.g.
	 * "rfc822;bob+2Bx@example.org", or NULL. Becomes Original-Recipient
	 * with the type kept and the xtext decoded ("rfc822; bob+x@...");
	 * a value that decodes to control characters is shown undecoded.
	 */
	const char *orcpt;
	enum dsn_action action;
	/*
	 * Enhanced status code "5.1.1" (the remote one when there is one).
	 * NULL, "" or malformed: taken from the diagnostic's enhanced code
	 * when it has one, else 5.0.0 / 4.0.0 / 2.0.0 by action.
	 */
	const char *status;
	/* Remote host name: Remote-MTA: dns; remote_mta, or NULL. */
	const char *remote_mta;
	/*
	 * The remote server's exact reply, "550 5.1.1 <bob@example.org>:
	 * user unknown" (lines of a multi-line reply separated by CRLF or
	 * LF), or local error text, or NULL. A reply (three digits first)
	 * becomes "Diagnostic-Code: smtp; ..." with its lines joined by a
	 * space; other text "Diagnostic-Code: X-Petrel; ...".
	 */
	const char *diagnostic;
	uint64_t last_attempt;		/* Last-Attempt-Date; 0: omit */
	uint64_t will_retry_until;	/* DELAYED: Will-Retry-Until; 0: omit */
	/*
	 * The SMTP command the reply answered ("RCPT TO", "MAIL FROM",
	 * "end of DATA"), for the text part's "(in reply to RCPT TO
	 * command)"; NULL: not shown.
	 */
	const char *command;
};

struct dsn_report {
	/* Reporting-MTA: dns; hostname. From: MAILER-DAEMON@hostname. */
	const char *hostname;
	/* The original envelope sender ("" for <>): To: of the report. */
	const char *sender;
	/* The original's queue ID (text part, X-Petrel-Queue-ID), or NULL. */
	const char *queue_id;
	/* ENVID= xtext or NULL: Original-Envelope-Id (decoded). */
	const char *envid;
	uint64_t arrival;	/* Arrival-Date, unix seconds; 0: omit */
	uint64_t now;		/* Date:, unix seconds; 0: the clock */
	/* RET=FULL: a failure report returns the whole message if it fits. */
	bool ret_full;
	/*
	 * bounce_size_limit: the whole message only if its content (CRLF
	 * line ends) is at most this; the returned header block is capped
	 * at this too (cut before the field that would cross it).
	 */
	uint64_t size_limit;
	/* The original used SMTPUTF8: RFC 6533 types (see above). */
	bool smtputf8;
	/*
	 * The recipients of one report, normally all failed, or all
	 * delayed, or all delivered/relayed/expanded. Subject and wording
	 * follow the most serious action present (failed, then delayed).
	 */
	const struct dsn_rcpt *rcpts;
	size_t nrcpts;
	/*
	 * Who the report goes to when it is not the sender (a report about
	 * mail from <> sent to the double_bounce address), or NULL. With
	 * neither, To: is "undisclosed-recipients:;".
	 */
	const char *to;
};

/*
 * The original content: consecutive chunks of the message as spooled
 * (CRLF lines; a bare CR or LF is read as a line end). next() returns 1
 * with a chunk in *data and *len (valid until the next call), 0 at the end, or
 * -1 with errno on error. dsn_compose() stops calling it once it has all
 * it needs (the header block, or the whole message up to size_limit).
 */
struct dsn_source {
	int (*next)(void *arg, const char **data, size_t *len);
	void *arg;
};

/*
 * Append the report message to out (header fields, empty line, body).
 * *eight_bit_r tells whether it contains 8-bit bytes: queue it with
 * BODY=8BITMIME (and with SMTPUTF8 when r->smtputf8). When out's maximum
 * cannot hold the whole message, the returned content is reduced (whole
 * message -> header block -> none) before giving up; a maximum of
 * dsn_size_hint(r) leaves room for the report and the returned content.
 * Returns 0, or -1 with errno and out as it was: EINVAL (no recipients,
 * no or malformed hostname), EMSGSIZE (out's maximum too small even for
 * the report alone), or the source's errno (EIO if it set none).
 */
int dsn_compose(const struct dsn_report *r, const struct dsn_source *src,
    struct buf *out, bool *eight_bit_r);

/*
 * A maximum for dsn_compose()'s output buffer that fits the report with
 * the returned content: size_limit plus a bound on everything else.
 */
size_t dsn_size_hint(const struct dsn_report *r);

/* "failed", "delayed", "delivered", "relayed", "expanded". */
const char *dsn_action_name(enum dsn_action action);

/*
 * Decode RFC 3461 4 xtext ("+" and two hex digits stand for one octet;
 * lower-case hex is accepted) from in into out (outlen bytes, always
 * NUL-terminated when outlen > 0). Returns the decoded length, or -1 with
 * errno EINVAL (a byte outside "!".."~", a bad "+XX", or "+00") or
 * EMSGSIZE (out too small).
 */
int dsn_xtext_decode(const char *in, char *out, size_t outlen);

/*
 * Tests only: bytes for boundaries and Message-IDs come from fn instead
 * of OpenSSL's RAND_bytes; NULL restores it. Not thread-safe.
 */
typedef void (*dsn_random_fn)(unsigned char *buf, size_t len);
void dsn_set_random(dsn_random_fn fn);

/*
 * The Message-ID ("<...>", printable ASCII without spaces) of the header
 * section h[0..n) (CRLF lines), or "" in dst (size octets) when it has
 * none or a longer or malformed one. Used for reports and the log.
 */
void dsn_find_msgid(const char *h, size_t n, char *dst, size_t size);

#endif
