/*
 * reply.h: every reply the SMTP server can send, as named constants.
 * Handlers never write reply text themselves; docs/replies.md is this
 * table in prose, and tests/e2e/test_replies.py walks it.
 *
 * STANDARDS: RFC 5321 4.2 (reply codes), RFC 3463 and RFC 5248 (enhanced
 * status codes), RFC 2034 (ENHANCEDSTATUSCODES), RFC 3030 (BDAT).
 */
#ifndef PETREL_SMTP_REPLY_H
#define PETREL_SMTP_REPLY_H

enum reply_id {
	REPLY_NONE = 0,
	REPLY_GREETING,		/* 220 <host> ESMTP Petrel */
	REPLY_HELO,		/* 250 <host> */
	REPLY_OK,		/* 250 2.0.0 Ok (RSET, NOOP) */
	REPLY_MAIL_OK,		/* 250 2.1.0 Ok */
	REPLY_RCPT_OK,		/* 250 2.1.5 Ok */
	REPLY_DATA_GO,		/* 354 */
	REPLY_QUEUED,		/* 250 2.0.0 Ok: queued as %s */
	REPLY_BDAT_OK,		/* 250 2.0.0 %s octets received */
	REPLY_BYE,		/* 221 2.0.0 Bye */
	REPLY_VRFY,		/* 252 2.0.0 */
	REPLY_HELP,		/* 214 2.0.0 */
	REPLY_NEED_HELO,	/* 503 5.5.1 */
	REPLY_NEED_MAIL,	/* 503 5.5.1 */
	REPLY_NEED_RCPT,	/* 503 5.5.1 */
	REPLY_NESTED_MAIL,	/* 503 5.5.1 */
	REPLY_NO_VALID_RCPTS,	/* 554 5.5.1 */
	REPLY_DATA_AFTER_BDAT,	/* 503 5.5.1 */
	REPLY_RCPT_AFTER_BDAT,	/* 503 5.5.1 */
	REPLY_BINARYMIME_DATA,	/* 503 5.5.1: BODY=BINARYMIME needs BDAT */
	REPLY_BDAT_DISCARDED,	/* 503 5.5.1: BDAT after a refused BDAT */
	REPLY_SYNTAX,		/* 501 5.5.4 */
	REPLY_HELO_SYNTAX,	/* 501 5.5.4 */
	REPLY_NO_ARGS,		/* 501 5.5.4 */
	REPLY_BDAT_SYNTAX,	/* 501 5.5.4, closes: chunk end unknown */
	REPLY_UNKNOWN_CMD,	/* 500 5.5.2 */
	REPLY_LINE_TOO_LONG,	/* 500 5.5.2 */
	REPLY_BAD_LINE,		/* 500 5.5.2: NUL or bare CR/LF in a command */
	REPLY_NOT_IMPLEMENTED,	/* 502 5.5.1 */
	REPLY_BAD_SENDER,	/* 501 5.1.7 */
	REPLY_BAD_RCPT,		/* 501 5.1.3 */
	REPLY_PARAM_UNKNOWN,	/* 555 5.5.4 */
	REPLY_PARAM_SYNTAX,	/* 501 5.5.4 */
	REPLY_NEED_SMTPUTF8,	/* 553 5.6.7 */
	REPLY_UNKNOWN_USER,	/* 550 5.1.1 */
	REPLY_BAD_MAILBOX,	/* 550 5.1.3: would escape the Maildir root */
	REPLY_ALIAS_REFUSED,	/* 550 5.3.5: |command or /file target */
	REPLY_ALIAS_LOOP,	/* 550 5.4.6: aliases loop, no target */
	REPLY_ALIAS_EXPANSION,	/* 451 4.3.0: expansion past the limits */
	REPLY_RELAY_DENIED,	/* 550 5.7.1 */
	REPLY_TOO_MANY_RCPTS,	/* 452 4.5.3 */
	REPLY_SIZE_EXCEEDED,	/* 552 5.3.4 (MAIL SIZE= or while receiving) */
	REPLY_DATA_LINE_LONG,	/* 552 5.3.4 */
	REPLY_HEADER_TOO_BIG,	/* 552 5.3.4 */
	REPLY_BARE_LF,		/* 550 5.6.0 */
	REPLY_NUL,		/* 550 5.6.0 */
	REPLY_TOO_MANY_HOPS,	/* 554 5.4.6 */
	REPLY_SPOOL_ERROR,	/* 452 4.3.1 */
	REPLY_LOCAL_ERROR,	/* 451 4.3.0 */
	REPLY_TOO_MANY_CONN,	/* 421 4.7.0 */
	REPLY_TOO_MANY_CONN_IP,	/* 421 4.7.0 */
	REPLY_TOO_MANY_ERRORS,	/* 421 4.7.0 */
	REPLY_SHUTDOWN,		/* 421 4.3.2 */
	REPLY_TIMEOUT,		/* 421 4.4.2 */
	REPLY_EARLY_TALKER,	/* 554 5.5.0: talked before the greeting */
	REPLY_UNAUTH_PIPELINING,/* 554 5.5.0: pipelined without EHLO */
	REPLY_STARTTLS_GO,	/* 220 2.0.0 Ready to start TLS */
	REPLY_TLS_ACTIVE,	/* 503 5.5.1: STARTTLS under TLS */
	REPLY_TLS_UNAVAILABLE,	/* 454 4.7.0 */
	REPLY_IN_TXN,		/* 503 5.5.1: STARTTLS/AUTH after MAIL */
	REPLY_AUTH_OK,		/* 235 2.7.0 */
	REPLY_AUTH_NEED_TLS,	/* 538 5.7.11 */
	REPLY_AUTH_ALREADY,	/* 503 5.5.1 */
	REPLY_AUTH_DISABLED,	/* 503 5.5.1 */
	REPLY_AUTH_REQUIRED,	/* 530 5.7.0 */
	REPLY_AUTH_TEMPFAIL,	/* 454 4.7.0 */
	REPLY_AUTH_TOO_MANY,	/* 421 4.7.0, closes */
	REPLY_AUTH_TOO_LONG,	/* 500 5.5.6 */
	REPLY_SENDER_NOT_OWNED,	/* 553 5.7.1 */
	REPLY_FROM_NOT_OWNED,	/* 550 5.7.1 */
	REPLY_FROM_BAD,		/* 550 5.7.1 */
	REPLY_DMARC_REJECT,	/* 550 5.7.1: DMARC p=reject, failed */
	REPLY_SPF_FAIL,		/* 550 5.7.23: spf_reject */
	REPLY_SPF_TEMPERROR,	/* 451 4.7.24: spf_temperror_defer */
	REPLY_MAX
};

struct reply {
	enum reply_id id;
	int code;		/* 250 */
	const char *enhanced;	/* "2.0.0", or NULL (greeting, HELO) */
	const char *text;	/* may hold one %s */
	const char *when;	/* what triggers it (docs and tests) */
};

const struct reply *reply_get(enum reply_id id);

/*
 * Is this reply fatal to the session (421, the 554 defenses, and a BDAT
 * whose chunk size cannot be read)?
 */
int reply_closes(enum reply_id id);

#endif
