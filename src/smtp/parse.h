/*
 * parse.h: pure parsers for SMTP command lines, paths and ESMTP parameters.
 * No I/O, no session: unit-tested byte by byte and fuzzed on their own.
 *
 * SECURITY: every function here reads untrusted network input. Inputs are
 * NUL-terminated strings whose length the caller has already capped; the
 * parsers never write past the fixed arrays below and turn anything too
 * long into an error reply.
 * STANDARDS: RFC 5321 4.1.1, 4.1.2, 4.5.3.1; RFC 1870 (SIZE); RFC 6152
 * (8BITMIME); RFC 6531 (SMTPUTF8); RFC 3461 (DSN: RET, ENVID, NOTIFY,
 * ORCPT); RFC 4954 (AUTH=); RFC 3030 (BDAT, BODY=BINARYMIME).
 */
#ifndef PETREL_SMTP_PARSE_H
#define PETREL_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailaddr/mailaddr.h"
#include "smtp/reply.h"

/* RFC 5321 4.5.3.1 limits. */
#define SMTP_LOCALPART_MAX	MAILADDR_LOCALPART_MAX	/* 64 */
#define SMTP_DOMAIN_MAX		MAILADDR_DOMAIN_MAX	/* 255 */
#define SMTP_PATH_MAX		MAILADDR_PATH_MAX	/* 256 */
#define SMTP_LINE_MAX		512	/* command line incl. CRLF */
#define SMTP_LINE_MAX_PARAMS	2048	/* MAIL/RCPT with parameters */
#define SMTP_LINE_MAX_AUTH	12316	/* RFC 4954 4: "AUTH " mechanism (20) SP
					 * and 12288 octets of response, CRLF */
#define SMTP_XTEXT_MAX		500	/* ENVID, ORCPT, AUTH= (RFC 3461) */

enum smtp_cmd_id {
	SMTP_CMD_UNKNOWN = 0,
	SMTP_CMD_HELO,
	SMTP_CMD_EHLO,
	SMTP_CMD_MAIL,
	SMTP_CMD_RCPT,
	SMTP_CMD_DATA,
	SMTP_CMD_RSET,
	SMTP_CMD_NOOP,
	SMTP_CMD_QUIT,
	SMTP_CMD_VRFY,
	SMTP_CMD_HELP,
	SMTP_CMD_EXPN,
	SMTP_CMD_STARTTLS,
	SMTP_CMD_AUTH,
	SMTP_CMD_BDAT,
	SMTP_CMD_MAX
};

struct smtp_command {
	enum smtp_cmd_id id;
	const char *verb;	/* canonical upper-case name, "" if unknown */
	const char *args;	/* after the verb and one space; "" if none */
};

/*
 * Split a command line (without CRLF) into verb and arguments. The verb
 * is matched case-insensitively; "MAIL FROM:" and "RCPT TO:" keep the
 * "FROM:"/"TO:" in args. Unknown verbs give id SMTP_CMD_UNKNOWN.
 * Never fails: validation of args is the command's business.
 */
void smtp_parse_command(const char *line, struct smtp_command *cmd);

/*
 * The longest command line allowed for the verb that starts line[0..len)
 * (line need not be NUL-terminated, and may be incomplete), CRLF
 * included: SMTP_LINE_MAX_PARAMS for MAIL/RCPT, SMTP_LINE_MAX_AUTH for
 * AUTH, else SMTP_LINE_MAX. The session applies SMTP_LINE_MAX_AUTH to
 * AUTH continuation lines itself.
 */
size_t smtp_command_line_max(const char *line, size_t len);

/*
 * A mailbox from a path. localpart is as written (dot-atom, or the quoted
 * string with its quotes); domain is a domain or an address literal
 * ("[127.0.0.1]", "[IPv6:::1]"). null is set for <>; for "postmaster"
 * without a domain, domain is "".
 */
struct smtp_address {
	bool null;
	bool utf8;				/* a non-ASCII octet appears */
	char localpart[SMTP_LOCALPART_MAX + 3];	/* room for quotes */
	char domain[SMTP_DOMAIN_MAX + 1];
	char text[SMTP_PATH_MAX + 1];		/* "local@domain", "" for <> */
};

/*
 * Parse "<path>" at the start of s: s[0] must be '<' (leading spaces are
 * not allowed; the caller strips "FROM:"/"TO:" and the one optional space
 * that Postfix accepts in "MAIL FROM: <a@b>"). Source routes
 * "<@a,@b:u@d>" are accepted and ignored (RFC 5321 4.1.2, C).
 * allow_null permits "<>" (MAIL). is_rcpt permits "<postmaster>" in any
 * case, which gives localpart as written, domain "" and text equal to
 * localpart. UTF-8 (RFC 6531) is accepted only when utf8_ok. Address
 * literals are IPv4 and IPv6 only (general literals are refused). Limits:
 * local part 64 octets (not counting the quotes of a quoted string),
 * domain 255, the whole path from '<' to '>' 256. The byte after '>' must
 * be a space or the end of s.
 * On success returns 0 and *rest_r points just past '>' (parameters
 * follow after a space). On failure returns -1 and *reply_r is the reply:
 * REPLY_BAD_SENDER (is_rcpt false) or REPLY_BAD_RCPT for syntax and
 * length errors, REPLY_NEED_SMTPUTF8 for a well-formed UTF-8 path without
 * utf8_ok (malformed UTF-8 is a syntax error).
 */
int smtp_parse_path(const char *s, bool is_rcpt, bool allow_null,
    bool utf8_ok, struct smtp_address *addr, const char **rest_r,
    enum reply_id *reply_r);

enum smtp_body {
	SMTP_BODY_UNSPEC = 0,
	SMTP_BODY_7BIT,
	SMTP_BODY_8BITMIME,
	SMTP_BODY_BINARYMIME,
};

enum smtp_ret {
	SMTP_RET_UNSPEC = 0,
	SMTP_RET_FULL,
	SMTP_RET_HDRS,
};

/* NOTIFY bits (RFC 3461 4.1); 0 means not given. */
#define SMTP_NOTIFY_NEVER	0x01
#define SMTP_NOTIFY_SUCCESS	0x02
#define SMTP_NOTIFY_FAILURE	0x04
#define SMTP_NOTIFY_DELAY	0x08

struct smtp_mail_params {
	enum smtp_body body;
	bool has_size;
	uint64_t size;
	bool smtputf8;
	enum smtp_ret ret;
	char envid[SMTP_XTEXT_MAX + 1];		/* xtext as received */
	char auth[SMTP_XTEXT_MAX + 1];		/* AUTH= xtext, or "<>" */
};

struct smtp_rcpt_params {
	unsigned int notify;
	char orcpt[SMTP_XTEXT_MAX + 1];		/* "rfc822;xtext" */
};

/* Size of a buffer that holds any keyword the parsers name in bad. */
#define SMTP_PARAM_BAD_SIZE	32

/*
 * Parse the parameters after a MAIL path: space-separated KEYWORD[=VALUE]
 * (RFC 5321 4.1.2 esmtp-param), keywords case-insensitive, each at most
 * once. Extra spaces before, between or after parameters are tolerated.
 * MAIL knows BODY=7BIT|8BITMIME|BINARYMIME (RFC 3030 3: BINARYMIME
 * content can only come by BDAT; the session enforces that),
 * SIZE=digits, SMTPUTF8, RET=FULL|HDRS, ENVID=xtext (at most 100
 * octets) and AUTH=xtext|<>; RCPT knows NOTIFY=NEVER or a list of
 * SUCCESS, FAILURE, DELAY (each at most once, NEVER alone) and
 * ORCPT=addr-type;xtext (RFC 3461 4.1, 4.2). RFC 3461 4.2 and 4.4 require
 * the decoded ENVID and ORCPT address to be printable US-ASCII: an xtext
 * "+XX" that decodes to a control character (CR, LF, NUL...) is a bad
 * value, so that neither can inject a line into a bounce; for the utf-8
 * addr-type (RFC 6533 3) the same holds for "\x{HEXPOINT}".
 * *p is cleared first. Returns 0, or -1 with *reply_r set:
 * REPLY_PARAM_UNKNOWN for an unknown keyword, REPLY_PARAM_SYNTAX for a
 * malformed parameter, a bad value or a repeated keyword. On failure
 * bad (badsize octets, SMTP_PARAM_BAD_SIZE is enough for every known
 * keyword) receives the offending keyword, upper-case for known ones, as
 * written (truncated, characters outside esmtp-keyword replaced by '?')
 * otherwise, so it is safe to put into a reply. On success bad is "".
 */
int smtp_parse_mail_params(const char *s, struct smtp_mail_params *p,
    enum reply_id *reply_r, char *bad, size_t badsize);
int smtp_parse_rcpt_params(const char *s, struct smtp_rcpt_params *p,
    enum reply_id *reply_r, char *bad, size_t badsize);

/*
 * The arguments of BDAT (RFC 3030 2): chunk-size (1*DIGIT, at most 20
 * digits and no more than UINT64_MAX) and an optional end-marker LAST
 * (any case), separated by spaces (runs of spaces tolerated, as for
 * parameters). Returns 0 with *size_r and *last_r set, or -1: then the
 * end of the chunk cannot be known.
 */
int smtp_parse_bdat(const char *s, uint64_t *size_r, bool *last_r);

/*
 * The argument of HELO/EHLO: a domain (letters, digits, hyphens, dots;
 * UTF-8 labels allowed; underscores tolerated as Postfix does, for
 * Windows host names), an IPv4/IPv6 address literal, or a bare IPv4 or
 * IPv6 address. At most 255 octets. Returns true if valid.
 */
bool smtp_parse_helo(const char *s);

/*
 * The local part as a mailbox name: quotes and quoted-pair backslashes
 * removed (mailaddr_localpart_unquote()), lower-cased (ASCII). Returns 0,
 * or -1 when the result would be too long for out.
 */
int smtp_localpart_unquote(const char *localpart, char *out, size_t outsize);

/* Is s valid xtext (RFC 3461 4)? The empty string is (xtext is *()). */
bool smtp_is_xtext(const char *s);

#endif
