/*
 * fuzz_smtp_command.c: libFuzzer target for the SMTP command line parsers
 * of src/smtp/parse.c: smtp_command_line_max(), smtp_parse_command(),
 * smtp_parse_path(), smtp_parse_mail_params(), smtp_parse_rcpt_params(),
 * smtp_parse_bdat(), smtp_parse_helo(), smtp_is_xtext() and
 * smtp_localpart_unquote().
 *
 * Input: byte 0 holds the flags of smtp_parse_path() (is_rcpt, allow_null,
 * utf8_ok); the rest is one command line without CRLF, cut at its first
 * NUL as the session's line reader does, and capped at SMTP_LINE_MAX_AUTH.
 *
 * Invariants checked (a failure aborts, which libFuzzer reports):
 *   - smtp_command_line_max() reads only the len octets it is given (the
 *     copy it sees has no NUL after it) and answers one of the three
 *     limits;
 *   - smtp_parse_command() gives non-NULL verb and args; args is "" or a
 *     suffix of the line;
 *   - a path that parses is within the RFC 5321 limits, its text is
 *     "local@domain" (or the bare local part of <postmaster>, "" for <>),
 *     *rest_r is a space or the end, and the local part unquotes without
 *     overflowing;
 *   - failed parameter parsing names a NUL-terminated keyword of at most
 *     SMTP_PARAM_BAD_SIZE - 1 octets with no control character; success
 *     leaves bad as "" and ENVID/AUTH/ORCPT within SMTP_XTEXT_MAX.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "smtp/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

static void
check_bad(const char *bad, int rc)
{
	size_t i, n;

	n = strnlen(bad, SMTP_PARAM_BAD_SIZE);
	CHECK(n < SMTP_PARAM_BAD_SIZE);
	if (rc == 0)
		CHECK(n == 0);
	for (i = 0; i < n; i++)
		CHECK((unsigned char)bad[i] >= 0x20 &&
		    (unsigned char)bad[i] != 0x7f);
}

static void
check_params(const char *s)
{
	struct smtp_mail_params mp;
	struct smtp_rcpt_params rp;
	enum reply_id reply;
	char bad[SMTP_PARAM_BAD_SIZE];
	int rc;

	memset(bad, 'x', sizeof(bad));
	rc = smtp_parse_mail_params(s, &mp, &reply, bad, sizeof(bad));
	check_bad(bad, rc);
	if (rc == 0) {
		CHECK(strnlen(mp.envid, sizeof(mp.envid)) < sizeof(mp.envid));
		CHECK(strnlen(mp.auth, sizeof(mp.auth)) < sizeof(mp.auth));
	} else
		CHECK(reply != REPLY_NONE);

	memset(bad, 'x', sizeof(bad));
	rc = smtp_parse_rcpt_params(s, &rp, &reply, bad, sizeof(bad));
	check_bad(bad, rc);
	if (rc == 0)
		CHECK(strnlen(rp.orcpt, sizeof(rp.orcpt)) < sizeof(rp.orcpt));
	else
		CHECK(reply != REPLY_NONE);
}

static void
check_path(const char *s, unsigned int flags)
{
	struct smtp_address a;
	enum reply_id reply;
	const char *rest;
	char want[SMTP_PATH_MAX + 8], box[SMTP_LOCALPART_MAX + 1];
	bool is_rcpt = flags & 1, allow_null = flags & 2, utf8_ok = flags & 4;
	size_t slen = strlen(s);

	if (smtp_parse_path(s, is_rcpt, allow_null, utf8_ok, &a, &rest,
	    &reply) != 0) {
		CHECK(reply != REPLY_NONE);
		return;
	}
	CHECK(rest > s && rest <= s + slen);
	CHECK(*rest == '\0' || *rest == ' ');
	CHECK((size_t)(rest - s) <= SMTP_PATH_MAX);
	CHECK(strlen(a.text) <= SMTP_PATH_MAX);
	CHECK(strlen(a.domain) <= SMTP_DOMAIN_MAX);
	if (a.null) {
		CHECK(allow_null && a.text[0] == '\0');
		return;
	}
	if (a.utf8)
		CHECK(utf8_ok);
	if (a.domain[0] == '\0') {
		CHECK(is_rcpt && strcmp(a.text, a.localpart) == 0);
		CHECK(ascii_strcasecmp(a.text, "postmaster") == 0);
	} else {
		(void)snprintf(want, sizeof(want), "%s@%s", a.localpart,
		    a.domain);
		CHECK(strcmp(want, a.text) == 0);
	}
	/* Unquoted, a local part of at most 64 octets fits in 65. */
	CHECK(smtp_localpart_unquote(a.localpart, box, sizeof(box)) == 0);
	CHECK(strlen(box) <= SMTP_LOCALPART_MAX);
	check_params(*rest == ' ' ? rest + 1 : rest);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_command cmd;
	char *raw, *line;
	const char *p;
	size_t len, max, n;
	uint64_t chunk;
	bool last;
	unsigned int flags;

	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	if (size > SMTP_LINE_MAX_AUTH)
		size = SMTP_LINE_MAX_AUTH;

	/* Exactly size octets, no NUL: ASan sees any read past them. */
	if ((raw = malloc(size > 0 ? size : 1)) == NULL)
		return 0;
	memcpy(raw, data, size);
	max = smtp_command_line_max(raw, size);
	CHECK(max == SMTP_LINE_MAX || max == SMTP_LINE_MAX_PARAMS ||
	    max == SMTP_LINE_MAX_AUTH);
	free(raw);

	len = strnlen((const char *)data, size);
	if ((line = malloc(len + 1)) == NULL)
		return 0;
	memcpy(line, data, len);
	line[len] = '\0';

	smtp_parse_command(line, &cmd);
	CHECK(cmd.verb != NULL && cmd.args != NULL);
	CHECK(cmd.args[0] == '\0' ||
	    (cmd.args > line && cmd.args <= line + len));
	CHECK((cmd.id == SMTP_CMD_UNKNOWN) == (cmd.verb[0] == '\0'));

	p = cmd.args;
	if (cmd.id == SMTP_CMD_MAIL || cmd.id == SMTP_CMD_RCPT) {
		n = cmd.id == SMTP_CMD_MAIL ? 5 : 3;
		if (ascii_strncasecmp(p, cmd.id == SMTP_CMD_MAIL ? "FROM:" :
		    "TO:", n) == 0) {
			p += n;
			if (*p == ' ')
				p++;
		}
	}
	check_path(p, flags);
	/* The whole line too: paths and parameters without a verb. */
	check_path(line, flags);
	check_params(p);
	(void)smtp_parse_bdat(p, &chunk, &last);
	(void)smtp_parse_helo(p);
	(void)smtp_is_xtext(p);

	free(line);
	return 0;
}
