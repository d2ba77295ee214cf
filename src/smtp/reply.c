/*
 * reply.c: the reply table. One row per reply; the session formats them
 * with smtp_session_reply(). Texts follow Postfix where it has one, so
 * administrators recognise them.
 */
#include "smtp/reply.h"

#include <stddef.h>

#include "lib/log.h"

static const struct reply replies[REPLY_MAX] = {
	[REPLY_GREETING] = { REPLY_GREETING, 220, NULL,
	    "%s ESMTP Petrel", "connection accepted" },
	[REPLY_HELO] = { REPLY_HELO, 250, NULL, "%s",
	    "HELO, or EHLO (followed by the extension list)" },
	[REPLY_OK] = { REPLY_OK, 250, "2.0.0", "Ok", "RSET, NOOP" },
	[REPLY_MAIL_OK] = { REPLY_MAIL_OK, 250, "2.1.0", "Ok",
	    "MAIL accepted" },
	[REPLY_RCPT_OK] = { REPLY_RCPT_OK, 250, "2.1.5", "Ok",
	    "RCPT accepted" },
	[REPLY_DATA_GO] = { REPLY_DATA_GO, 354, NULL,
	    "End data with <CR><LF>.<CR><LF>", "DATA with recipients" },
	[REPLY_QUEUED] = { REPLY_QUEUED, 250, "2.0.0", "Ok: queued as %s",
	    "final dot or BDAT LAST, after the message is on stable storage" },
	[REPLY_BDAT_OK] = { REPLY_BDAT_OK, 250, "2.0.0", "%s octets received",
	    "a BDAT chunk without LAST, once its octets are read" },
	[REPLY_BYE] = { REPLY_BYE, 221, "2.0.0", "Bye", "QUIT" },
	[REPLY_VRFY] = { REPLY_VRFY, 252, "2.0.0",
	    "Cannot VRFY user, but will accept message and attempt delivery",
	    "VRFY (never discloses users)" },
	[REPLY_HELP] = { REPLY_HELP, 214, "2.0.0",
	    "Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP "
	    "QUIT VRFY HELP",
	    "HELP" },
	[REPLY_NEED_HELO] = { REPLY_NEED_HELO, 503, "5.5.1",
	    "Error: send HELO/EHLO first",
	    "MAIL or BDAT before HELO/EHLO (a BDAT chunk is read and "
	    "discarded first)" },
	[REPLY_NEED_MAIL] = { REPLY_NEED_MAIL, 503, "5.5.1",
	    "Error: need MAIL command",
	    "RCPT, DATA or BDAT before MAIL (a BDAT chunk is read and "
	    "discarded first)" },
	[REPLY_NEED_RCPT] = { REPLY_NEED_RCPT, 503, "5.5.1",
	    "Error: need RCPT command", "DATA or BDAT before any RCPT" },
	[REPLY_NESTED_MAIL] = { REPLY_NESTED_MAIL, 503, "5.5.1",
	    "Error: nested MAIL command", "MAIL inside a transaction" },
	[REPLY_NO_VALID_RCPTS] = { REPLY_NO_VALID_RCPTS, 554, "5.5.1",
	    "Error: no valid recipients",
	    "DATA or BDAT when every RCPT was refused" },
	[REPLY_DATA_AFTER_BDAT] = { REPLY_DATA_AFTER_BDAT, 503, "5.5.1",
	    "Error: DATA after BDAT",
	    "DATA in a transaction that has BDAT chunks (RFC 3030 2)" },
	[REPLY_RCPT_AFTER_BDAT] = { REPLY_RCPT_AFTER_BDAT, 503, "5.5.1",
	    "Error: RCPT after BDAT",
	    "RCPT in a transaction that has BDAT chunks" },
	[REPLY_BINARYMIME_DATA] = { REPLY_BINARYMIME_DATA, 503, "5.5.1",
	    "Error: BODY=BINARYMIME requires BDAT",
	    "DATA after MAIL with BODY=BINARYMIME (RFC 3030 3)" },
	[REPLY_BDAT_DISCARDED] = { REPLY_BDAT_DISCARDED, 503, "5.5.1",
	    "Error: chunk discarded after a refused BDAT",
	    "BDAT right after a refused or failed BDAT: the chunk is read "
	    "and discarded, and not counted as an error, until another "
	    "command (RSET, MAIL) comes" },
	[REPLY_SYNTAX] = { REPLY_SYNTAX, 501, "5.5.4",
	    "Syntax error in parameters or arguments",
	    "MAIL/RCPT without FROM:/TO: or other malformed arguments" },
	[REPLY_HELO_SYNTAX] = { REPLY_HELO_SYNTAX, 501, "5.5.4",
	    "Syntax: HELO/EHLO hostname",
	    "HELO/EHLO without a valid domain or address literal" },
	[REPLY_NO_ARGS] = { REPLY_NO_ARGS, 501, "5.5.4",
	    "Syntax error: command takes no arguments",
	    "arguments to DATA, RSET or QUIT" },
	[REPLY_BDAT_SYNTAX] = { REPLY_BDAT_SYNTAX, 501, "5.5.4",
	    "Syntax: BDAT count [LAST]",
	    "BDAT without a valid chunk size or with other words than LAST: "
	    "where its octets end is unknown, so the connection is closed" },
	[REPLY_UNKNOWN_CMD] = { REPLY_UNKNOWN_CMD, 500, "5.5.2",
	    "Error: command not recognized", "unknown command" },
	[REPLY_LINE_TOO_LONG] = { REPLY_LINE_TOO_LONG, 500, "5.5.2",
	    "Error: line too long",
	    "command line over 512 octets (2048 for MAIL/RCPT)" },
	[REPLY_BAD_LINE] = { REPLY_BAD_LINE, 500, "5.5.2",
	    "Error: bare CR, bare LF or NUL in command",
	    "a command line containing NUL or a bare CR/LF" },
	[REPLY_NOT_IMPLEMENTED] = { REPLY_NOT_IMPLEMENTED, 502, "5.5.1",
	    "Error: command not implemented", "EXPN (Petrel never expands "
	    "lists), and STARTTLS on a listener without TLS (never in "
	    "practice: there is always at least a self-signed "
	    "certificate)" },
	[REPLY_BAD_SENDER] = { REPLY_BAD_SENDER, 501, "5.1.7",
	    "Bad sender address syntax",
	    "MAIL with a malformed or too long path" },
	[REPLY_BAD_RCPT] = { REPLY_BAD_RCPT, 501, "5.1.3",
	    "Bad recipient address syntax",
	    "RCPT with a malformed or too long path, or <>" },
	[REPLY_PARAM_UNKNOWN] = { REPLY_PARAM_UNKNOWN, 555, "5.5.4",
	    "Unsupported option: %s",
	    "an ESMTP parameter that is not offered" },
	[REPLY_PARAM_SYNTAX] = { REPLY_PARAM_SYNTAX, 501, "5.5.4",
	    "Bad parameter value: %s",
	    "a known ESMTP parameter with an invalid value" },
	[REPLY_NEED_SMTPUTF8] = { REPLY_NEED_SMTPUTF8, 553, "5.6.7",
	    "Non-ASCII address requires SMTPUTF8",
	    "a UTF-8 address in a transaction without SMTPUTF8" },
	[REPLY_UNKNOWN_USER] = { REPLY_UNKNOWN_USER, 550, "5.1.1",
	    "<%s>: Recipient address rejected: User unknown",
	    "local domain, no such user or alias" },
	[REPLY_BAD_MAILBOX] = { REPLY_BAD_MAILBOX, 550, "5.1.3",
	    "<%s>: Recipient address rejected: unsafe mailbox name",
	    "a local part or domain that would leave the Maildir root" },
	[REPLY_ALIAS_REFUSED] = { REPLY_ALIAS_REFUSED, 550, "5.3.5",
	    "<%s>: alias expands to a command or file, which Petrel never "
	    "runs or writes", "an alias with a |command or /file target" },
	[REPLY_ALIAS_LOOP] = { REPLY_ALIAS_LOOP, 550, "5.4.6",
	    "<%s>: alias loop: the expansion reaches no mailbox",
	    "aliases that only lead back to each other" },
	[REPLY_ALIAS_EXPANSION] = { REPLY_ALIAS_EXPANSION, 451, "4.3.0",
	    "<%s>: alias expansion exceeds limits, try again later",
	    "an alias deeper than 10 levels or with more than 1000 "
	    "targets (a configuration error the administrator can fix)" },
	[REPLY_RELAY_DENIED] = { REPLY_RELAY_DENIED, 550, "5.7.1",
	    "<%s>: Relay access denied",
	    "not a local domain and the client is not trusted" },
	[REPLY_TOO_MANY_RCPTS] = { REPLY_TOO_MANY_RCPTS, 452, "4.5.3",
	    "Error: too many recipients", "past max_recipients RCPT "
	    "commands, or past 10000 recipients after alias expansion" },
	[REPLY_SIZE_EXCEEDED] = { REPLY_SIZE_EXCEEDED, 552, "5.3.4",
	    "Message size exceeds fixed limit",
	    "MAIL SIZE=, the message over max_message_size, or a BDAT chunk "
	    "that would take it over (its octets are read and discarded "
	    "first)" },
	[REPLY_DATA_LINE_LONG] = { REPLY_DATA_LINE_LONG, 552, "5.3.4",
	    "Message line exceeds fixed limit",
	    "a DATA or BDAT line longer than max_line_length (not checked "
	    "for BODY=BINARYMIME)" },
	[REPLY_HEADER_TOO_BIG] = { REPLY_HEADER_TOO_BIG, 552, "5.3.4",
	    "Message header exceeds fixed limit",
	    "the header section over max_header_size" },
	[REPLY_BARE_LF] = { REPLY_BARE_LF, 550, "5.6.0",
	    "Message contains bare CR or LF (see RFC 5321 2.3.8)",
	    "bare_lf reject and a bare CR or LF in DATA, or in BDAT content "
	    "that is not BODY=BINARYMIME" },
	[REPLY_NUL] = { REPLY_NUL, 550, "5.6.0",
	    "Message contains NUL characters",
	    "a NUL byte in DATA, or in BDAT content that is not "
	    "BODY=BINARYMIME" },
	[REPLY_TOO_MANY_HOPS] = { REPLY_TOO_MANY_HOPS, 554, "5.4.6",
	    "Too many hops (mail loop)",
	    "more Received: headers than max_hops" },
	[REPLY_SPOOL_ERROR] = { REPLY_SPOOL_ERROR, 452, "4.3.1",
	    "Insufficient system storage",
	    "the spool is full: a spool write, fsync or rename failed with "
	    "ENOSPC or EDQUOT (the message is not queued)" },
	[REPLY_LOCAL_ERROR] = { REPLY_LOCAL_ERROR, 451, "4.3.0",
	    "Local error in processing",
	    "any other spool error (EIO, a failed fsync, a read-only "
	    "spool, EACCES: the message is not queued); users or aliases "
	    "table unreadable" },
	[REPLY_TOO_MANY_CONN] = { REPLY_TOO_MANY_CONN, 421, "4.7.0",
	    "%s Error: too many connections", "past max_connections" },
	[REPLY_TOO_MANY_CONN_IP] = { REPLY_TOO_MANY_CONN_IP, 421, "4.7.0",
	    "%s Error: too many connections from your address",
	    "past max_connections_per_ip" },
	[REPLY_TOO_MANY_ERRORS] = { REPLY_TOO_MANY_ERRORS, 421, "4.7.0",
	    "%s Error: too many errors", "past max_errors bad commands" },
	[REPLY_SHUTDOWN] = { REPLY_SHUTDOWN, 421, "4.3.2",
	    "%s Service shutting down", "SIGTERM/SIGINT, session not in DATA" },
	[REPLY_TIMEOUT] = { REPLY_TIMEOUT, 421, "4.4.2",
	    "%s Error: timeout exceeded",
	    "timeout_command or timeout_data expired (for BDAT, "
	    "timeout_data runs from the first chunk of the message)" },
	[REPLY_EARLY_TALKER] = { REPLY_EARLY_TALKER, 554, "5.5.0",
	    "Error: SMTP protocol synchronization",
	    "client sent data before the 220 greeting" },
	[REPLY_UNAUTH_PIPELINING] = { REPLY_UNAUTH_PIPELINING, 554, "5.5.0",
	    "Error: SMTP protocol synchronization",
	    "pipelined commands without having seen EHLO" },
	[REPLY_STARTTLS_GO] = { REPLY_STARTTLS_GO, 220, "2.0.0",
	    "Ready to start TLS", "STARTTLS (RFC 3207): the handshake follows; "
	    "anything pipelined behind STARTTLS is discarded" },
	[REPLY_TLS_ACTIVE] = { REPLY_TLS_ACTIVE, 503, "5.5.1",
	    "Error: TLS already active", "STARTTLS in a TLS session" },
	[REPLY_TLS_UNAVAILABLE] = { REPLY_TLS_UNAVAILABLE, 454, "4.7.0",
	    "TLS not available due to temporary reason",
	    "STARTTLS when OpenSSL cannot make the connection's TLS object "
	    "(out of memory)" },
	[REPLY_IN_TXN] = { REPLY_IN_TXN, 503, "5.5.1",
	    "Error: MAIL transaction in progress",
	    "STARTTLS or AUTH after MAIL (RFC 4954 4)" },
	[REPLY_AUTH_OK] = { REPLY_AUTH_OK, 235, "2.7.0",
	    "Authentication successful", "AUTH with valid credentials" },
	[REPLY_AUTH_NEED_TLS] = { REPLY_AUTH_NEED_TLS, 538, "5.7.11",
	    "Encryption required for requested authentication mechanism",
	    "AUTH before STARTTLS (unless auth_plaintext yes)" },
	[REPLY_AUTH_ALREADY] = { REPLY_AUTH_ALREADY, 503, "5.5.1",
	    "Error: already authenticated", "a second AUTH (RFC 4954 4)" },
	[REPLY_AUTH_DISABLED] = { REPLY_AUTH_DISABLED, 503, "5.5.1",
	    "Error: authentication not enabled",
	    "AUTH on an mx listener without mx_auth yes" },
	[REPLY_AUTH_REQUIRED] = { REPLY_AUTH_REQUIRED, 530, "5.7.0",
	    "Authentication required",
	    "MAIL on a submission or submissions listener before AUTH" },
	[REPLY_AUTH_TEMPFAIL] = { REPLY_AUTH_TEMPFAIL, 454, "4.7.0",
	    "Temporary authentication failure",
	    "auth dovecot: Dovecot unreachable, silent or undecided" },
	[REPLY_AUTH_TOO_MANY] = { REPLY_AUTH_TOO_MANY, 421, "4.7.0",
	    "%s Error: too many failed authentications",
	    "after the 535 of the auth_max_failures-th failed AUTH of a "
	    "session; the connection is closed" },
	[REPLY_AUTH_TOO_LONG] = { REPLY_AUTH_TOO_LONG, 500, "5.5.6",
	    "Authentication Exchange line is too long",
	    "an AUTH command line or response line longer than 12316 "
	    "octets, too long to read (RFC 4954 4; a shorter one whose "
	    "response is over 12288 octets gets the same reply from the "
	    "SASL exchange)" },
	[REPLY_SENDER_NOT_OWNED] = { REPLY_SENDER_NOT_OWNED, 553, "5.7.1",
	    "<%s>: Sender address rejected: not owned by the authenticated "
	    "user", "sender_login yes: MAIL FROM is neither the user's "
	    "address nor one of its aliases" },
	[REPLY_FROM_NOT_OWNED] = { REPLY_FROM_NOT_OWNED, 550, "5.7.1",
	    "From: header address <%s> not owned by the authenticated user",
	    "sender_login yes: an address in the From: header is neither "
	    "the user's address nor one of its aliases (after DATA)" },
	[REPLY_DMARC_REJECT] = { REPLY_DMARC_REJECT, 550, "5.7.1",
	    "Message rejected by the DMARC policy of %s",
	    "dmarc_enforce yes (the default), an unauthenticated client "
	    "outside trusted, and a message that fails DMARC for a From: "
	    "domain that publishes p=reject (or several From: domains, "
	    "dmarc_multiple_from reject); after the final dot, before "
	    "anything is acknowledged" },
	[REPLY_SPF_FAIL] = { REPLY_SPF_FAIL, 550, "5.7.23",
	    "SPF check failed: %s",
	    "spf_reject yes and SPF fail for the MAIL FROM domain (or the HELO "
	    "name with MAIL FROM:<>), from an unauthenticated client outside "
	    "trusted; the text is the domain's explanation (exp=), printable "
	    "ASCII only (RFC 7208 8.4)" },
	[REPLY_SPF_TEMPERROR] = { REPLY_SPF_TEMPERROR, 451, "4.7.24",
	    "Temporary SPF error, try again later",
	    "spf_temperror_defer yes and an SPF temperror (a DNS failure) "
	    "for the MAIL FROM domain (RFC 7208 8.6)" },
	[REPLY_FROM_BAD] = { REPLY_FROM_BAD, 550, "5.7.1",
	    "Error: malformed From: header",
	    "sender_login yes: a From: header that does not parse as an "
	    "RFC 5322 address list, or more than one From: header" },
};

const struct reply *
reply_get(enum reply_id id)
{
	if (id <= REPLY_NONE || id >= REPLY_MAX || replies[id].code == 0)
		fatalx("reply_get: no reply %d", (int)id);
	return &replies[id];
}

int
reply_closes(enum reply_id id)
{
	const struct reply *r = reply_get(id);

	/*
	 * RFC 3030 2: the chunk's octets follow the BDAT line at once. When
	 * the size cannot be read, neither can the end of the chunk, and
	 * reading on would run message content as commands: close.
	 */
	return r->code == 421 || id == REPLY_EARLY_TALKER ||
	    id == REPLY_UNAUTH_PIPELINING || id == REPLY_BDAT_SYNTAX;
}
