/*
 * test_smtp_parse.c: the pure SMTP parsers (src/smtp/parse.c): command
 * split, line limits, paths (RFC 5321 4.1.2 with strict verdicts; inputs
 * include aiosmtpd's address lists), length limits at the boundaries,
 * UTF-8, ESMTP parameters of MAIL and RCPT (DSN values included: RFC 3461
 * syntax and printable decoded values), BDAT arguments, HELO/EHLO
 * arguments, local part unquoting and xtext. Every input is copied into a buffer of its
 * exact size (valgrind and ASan see any over-read), and every prefix of
 * every input is parsed too (the string parsers' "byte at a time").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/parse.h"

#include "testutil.h"

#define N(a)		(sizeof(a) / sizeof((a)[0]))

static void
check_str(const char *ctx, const char *what, const char *got,
    const char *want)
{
	if (strcmp(got, want) != 0)
		fail_msg("%s: %s: got \"%s\", want \"%s\"", ctx, what,
		    test_esc(got), test_esc(want));
}

static void
check_int(const char *ctx, const char *what, long long got, long long want)
{
	if (got != want)
		fail_msg("%s: %s: got %lld, want %lld", ctx, what, got, want);
}

/* smtp_parse_command */

struct cmd_case {
	const char *line;
	enum smtp_cmd_id id;
	const char *verb;
	const char *args;
};

static const struct cmd_case cmd_cases[] = {
	{ "HELO x.y", SMTP_CMD_HELO, "HELO", "x.y" },
	{ "helo x.y", SMTP_CMD_HELO, "HELO", "x.y" },
	{ "EHLO", SMTP_CMD_EHLO, "EHLO", "" },
	{ "eHlO [1.2.3.4]", SMTP_CMD_EHLO, "EHLO", "[1.2.3.4]" },
	{ "MAIL FROM:<a@b>", SMTP_CMD_MAIL, "MAIL", "FROM:<a@b>" },
	{ "mail from:<a@b> SIZE=1", SMTP_CMD_MAIL, "MAIL",
	    "from:<a@b> SIZE=1" },
	{ "MAIL  FROM:<a@b>", SMTP_CMD_MAIL, "MAIL", " FROM:<a@b>" },
	{ "MAIL", SMTP_CMD_MAIL, "MAIL", "" },
	{ "MAIL ", SMTP_CMD_MAIL, "MAIL", "" },
	{ "RCPT TO:<a@b>", SMTP_CMD_RCPT, "RCPT", "TO:<a@b>" },
	{ "DATA", SMTP_CMD_DATA, "DATA", "" },
	{ "data x", SMTP_CMD_DATA, "DATA", "x" },
	{ "RSET", SMTP_CMD_RSET, "RSET", "" },
	{ "NOOP", SMTP_CMD_NOOP, "NOOP", "" },
	{ "NOOP hello there", SMTP_CMD_NOOP, "NOOP", "hello there" },
	{ "QUIT", SMTP_CMD_QUIT, "QUIT", "" },
	{ "VRFY anne", SMTP_CMD_VRFY, "VRFY", "anne" },
	{ "HELP", SMTP_CMD_HELP, "HELP", "" },
	{ "help MAIL", SMTP_CMD_HELP, "HELP", "MAIL" },
	{ "EXPN list", SMTP_CMD_EXPN, "EXPN", "list" },
	{ "STARTTLS", SMTP_CMD_STARTTLS, "STARTTLS", "" },
	{ "starttls", SMTP_CMD_STARTTLS, "STARTTLS", "" },
	{ "AUTH PLAIN AGFiAGM=", SMTP_CMD_AUTH, "AUTH", "PLAIN AGFiAGM=" },
	{ "BDAT 10 LAST", SMTP_CMD_BDAT, "BDAT", "10 LAST" },
	{ "NOOPX", SMTP_CMD_UNKNOWN, "", "" },
	{ "NOOP\tx", SMTP_CMD_UNKNOWN, "", "" },
	{ "NOO", SMTP_CMD_UNKNOWN, "", "" },
	{ "STARTTLSX", SMTP_CMD_UNKNOWN, "", "" },
	{ "START", SMTP_CMD_UNKNOWN, "", "" },
	{ " NOOP", SMTP_CMD_UNKNOWN, "", "" },
	{ "MAIL:FROM:<a@b>", SMTP_CMD_UNKNOWN, "", "" },
	{ "FOOBAR", SMTP_CMD_UNKNOWN, "", "" },
	{ "", SMTP_CMD_UNKNOWN, "", "" },
	{ "\x80" "FAIL", SMTP_CMD_UNKNOWN, "", "" },
};

static void
test_parse_command(void **state)
{
	struct smtp_command cmd;
	const struct cmd_case *c;
	size_t i, k, len;
	char ctx[256], *line;

	(void)state;
	for (i = 0; i < N(cmd_cases); i++) {
		c = &cmd_cases[i];
		snprintf(ctx, sizeof(ctx), "command \"%s\"", test_esc(c->line));
		len = strlen(c->line);
		line = test_dup_exact(c->line, len);
		memset(&cmd, 0xa5, sizeof(cmd));
		smtp_parse_command(line, &cmd);
		check_int(ctx, "id", cmd.id, c->id);
		check_str(ctx, "verb", cmd.verb, c->verb);
		check_str(ctx, "args", cmd.args, c->args);
		free(line);
		for (k = 0; k < len; k++) {
			line = test_dup_exact(c->line, k);
			smtp_parse_command(line, &cmd);
			free(line);
		}
	}
}

/* smtp_command_line_max */

struct linemax_case {
	const char *line;
	size_t len;
	size_t want;
};

static const struct linemax_case linemax_cases[] = {
	{ "MAIL FROM:<a@b>", 15, SMTP_LINE_MAX_PARAMS },
	{ "mail from:<a@b>", 15, SMTP_LINE_MAX_PARAMS },
	{ "RCPT TO:<a@b> NOTIFY=NEVER", 26, SMTP_LINE_MAX_PARAMS },
	{ "Rcpt TO:", 8, SMTP_LINE_MAX_PARAMS },
	{ "MAIL", 4, SMTP_LINE_MAX_PARAMS },
	{ "RCPTxxxx", 4, SMTP_LINE_MAX_PARAMS },	/* not NUL-terminated */
	{ "AUTH PLAIN", 10, SMTP_LINE_MAX_AUTH },
	{ "auth", 4, SMTP_LINE_MAX_AUTH },
	{ "MAILX", 5, SMTP_LINE_MAX },
	{ "MAI", 3, SMTP_LINE_MAX },
	{ "", 0, SMTP_LINE_MAX },
	{ "NOOP", 4, SMTP_LINE_MAX },
	{ "HELO x", 6, SMTP_LINE_MAX },
	{ "EHLO MAIL", 9, SMTP_LINE_MAX },
	{ "AUTHENTICATE", 12, SMTP_LINE_MAX },
	{ " MAIL FROM:", 11, SMTP_LINE_MAX },
};

static void
test_command_line_max(void **state)
{
	const struct linemax_case *c;
	char ctx[128], *line;
	size_t i;

	(void)state;
	check_int("limits", "SMTP_LINE_MAX", SMTP_LINE_MAX, 512);
	check_int("limits", "SMTP_LINE_MAX_PARAMS", SMTP_LINE_MAX_PARAMS,
	    2048);
	check_int("limits", "SMTP_LINE_MAX_AUTH", SMTP_LINE_MAX_AUTH, 12316);
	for (i = 0; i < N(linemax_cases); i++) {
		c = &linemax_cases[i];
		snprintf(ctx, sizeof(ctx), "line max \"%.*s\"", (int)c->len,
		    c->line);
		/* No NUL after len: exactly len bytes on the heap. */
		line = malloc(c->len + 1);
		assert_non_null(line);
		memcpy(line, c->line, c->len);
		check_int(ctx, "limit",
		    (long long)smtp_command_line_max(line, c->len),
		    (long long)c->want);
		free(line);
	}
}

/* smtp_parse_path */

#define F_RCPT		0x01
#define F_NULL		0x02
#define F_UTF8		0x04

struct path_case {
	const char *in;
	unsigned int flags;
	int ret;
	enum reply_id reply;	/* on failure */
	const char *local;	/* on success */
	const char *domain;
	const char *rest;
	bool utf8;
};

#define OK(in, fl, l, d)	{ in, fl, 0, REPLY_NONE, l, d, "", false }
#define OKR(in, fl, l, d, r)	{ in, fl, 0, REPLY_NONE, l, d, r, false }
#define OKU(in, fl, l, d)	{ in, fl, 0, REPLY_NONE, l, d, "", true }
#define BADS(in, fl)		{ in, fl, -1, REPLY_BAD_SENDER, NULL, NULL, \
				  NULL, false }
#define BADR(in, fl)		{ in, (fl) | F_RCPT, -1, REPLY_BAD_RCPT, \
				  NULL, NULL, NULL, false }
#define NEED(in, fl)		{ in, fl, -1, REPLY_NEED_SMTPUTF8, NULL, \
				  NULL, NULL, false }

static const struct path_case path_cases[] = {
	/* basics */
	OK("<a@b>", 0, "a", "b"),
	OK("<anne@example.com>", 0, "anne", "example.com"),
	OK("<Anne.Arthur@Example.COM>", 0, "Anne.Arthur", "Example.COM"),
	OK("<a@b>", F_RCPT, "a", "b"),
	OKR("<a@b> SIZE=10", 0, "a", "b", " SIZE=10"),
	OKR("<a@b> ", 0, "a", "b", " "),
	BADS("<a@b>SIZE=10", 0),
	BADS("<a@b>>", 0),
	BADS("", 0),
	BADS("<", 0),
	BADS("<a@b", 0),
	BADS("a@b>", 0),
	BADS(" <a@b>", 0),
	BADS("<a@b >", 0),
	BADS("< a@b>", 0),
	BADS("<a @b>", 0),
	BADS("<a@ b>", 0),
	BADS("<a@b\t>", 0),
	BADS("<a>", 0),
	BADS("<@b>", 0),
	BADS("<a@>", 0),
	BADS("<a@b@c>", 0),
	BADS("<<a@b>>", 0),
	BADR("<a@b", 0),
	/* null path and postmaster */
	OK("<>", F_NULL, "", ""),
	OKR("<> BODY=8BITMIME", F_NULL, "", "", " BODY=8BITMIME"),
	BADS("<>", 0),
	BADR("<>", 0),
	BADS("<>x", F_NULL),
	BADS("< >", F_NULL),
	OK("<postmaster>", F_RCPT, "postmaster", ""),
	OK("<Postmaster>", F_RCPT, "Postmaster", ""),
	OK("<POSTMASTER>", F_RCPT, "POSTMASTER", ""),
	OKR("<postmaster> NOTIFY=NEVER", F_RCPT, "postmaster", "",
	    " NOTIFY=NEVER"),
	OK("<postmaster@example.com>", F_RCPT, "postmaster", "example.com"),
	BADS("<postmaster>", 0),
	BADS("<postmaster>", F_NULL),
	BADR("<postmasterx>", 0),
	BADR("<\"postmaster\">", 0),
	BADR("<@a:postmaster>", 0),
	/* dot-atom local parts: every atext character */
	OK("<!#$%&'*+-/=?^_`{|}~@x>", 0, "!#$%&'*+-/=?^_`{|}~", "x"),
	OK("<a.b.c@x>", 0, "a.b.c", "x"),
	BADS("<.a@x>", 0),
	BADS("<a.@x>", 0),
	BADS("<a..b@x>", 0),
	BADS("<a(b)@x>", 0),
	BADS("<a,b@x>", 0),
	BADS("<a:b@x>", 0),
	BADS("<a;b@x>", 0),
	BADS("<a[b@x>", 0),
	BADS("<a\\b@x>", 0),
	BADS("<a\x01@x>", 0),
	BADS("<a\x7f@x>", 0),
	/* quoted local parts */
	OK("<\"a b\"@x>", 0, "\"a b\"", "x"),
	OK("<\"\"@x>", 0, "\"\"", "x"),
	OK("<\"a\\\"b\"@x>", 0, "\"a\\\"b\"", "x"),
	OK("<\"a\\\\b\"@x>", 0, "\"a\\\\b\"", "x"),
	OK("<\"a\\ b\"@x>", 0, "\"a\\ b\"", "x"),
	OK("<\"(),:;<>[]@\"@x>", 0, "\"(),:;<>[]@\"", "x"),
	BADS("<\"a@x>", 0),
	BADS("<\"a\"b@x>", 0),
	BADS("<a\"b\"@x>", 0),
	BADS("<\"a\".b@x>", 0),
	BADS("<\"a\\\x01\"@x>", 0),
	BADS("<\"a\x01\"@x>", 0),
	BADS("<\"a\tb\"@x>", 0),
	BADS("<\"a\\\"@x>", 0),
	/* domains */
	OK("<a@b-c.d>", 0, "a", "b-c.d"),
	OK("<a@1.2.3.4>", 0, "a", "1.2.3.4"),
	OK("<a@xn--bcher-kva.example>", 0, "a", "xn--bcher-kva.example"),
	OK("<a@a--b>", 0, "a", "a--b"),
	BADS("<a@-b>", 0),
	BADS("<a@b->", 0),
	BADS("<a@b.-c>", 0),
	BADS("<a@b..c>", 0),
	BADS("<a@.b>", 0),
	BADS("<a@b.>", 0),
	BADS("<a@b_c>", 0),
	BADS("<a@b,c>", 0),
	BADS("<a@b:c>", 0),
	/* address literals */
	OK("<a@[127.0.0.1]>", 0, "a", "[127.0.0.1]"),
	OK("<a@[IPv6:::1]>", 0, "a", "[IPv6:::1]"),
	OK("<a@[ipv6:2001:DB8::1]>", 0, "a", "[ipv6:2001:DB8::1]"),
	OK("<a@[IPv6:::ffff:192.0.2.1]>", 0, "a",
	    "[IPv6:::ffff:192.0.2.1]"),
	OK("<a@[IPv6:2001:db8:0:0:0:0:0:1]>", 0, "a",
	    "[IPv6:2001:db8:0:0:0:0:0:1]"),
	BADS("<a@[1.2.3]>", 0),
	BADS("<a@[256.1.1.1]>", 0),
	BADS("<a@[1.2.3.4.5]>", 0),
	BADS("<a@[01.2.3.4]>", 0),
	BADS("<a@[ 1.2.3.4]>", 0),
	BADS("<a@[]>", 0),
	BADS("<a@[1.2.3.4>", 0),
	BADS("<a@[IPv6:1.2.3.4]>", 0),
	BADS("<a@[IPv6:::g]>", 0),
	BADS("<a@[IPv6:1:2:3:4:5:6:7:8:9]>", 0),
	BADS("<a@[IPv6:fe80::1%eth0]>", 0),
	BADS("<a@[::1]>", 0),
	BADS("<a@[x-tag:content]>", 0),
	BADS("<a@[1.2.3.4]x>", 0),
	BADS("<a@x.[1.2.3.4]>", 0),
	BADS("<a@[IPv6:2001:db8::1:2:3:4:5:6:7:8:9:0:1:2:3:4:5:6:7:8:9:0]>",
	    0),
	/* source routes: accepted (RFC 5321 4.1.2, C) and ignored */
	OK("<@example.org:anne@example.com>", 0, "anne", "example.com"),
	OK("<@example.net,@example.org:anne@example.com>", 0, "anne",
	    "example.com"),
	OK("<@a:b@c>", F_RCPT, "b", "c"),
	BADS("<@a>", 0),
	BADS("<@a:>", 0),
	BADS("<@a:b>", 0),
	BADS("<@:b@c>", 0),
	BADS("<@a,b@c>", 0),
	BADS("<@a,:b@c>", 0),
	BADS("<@a,@:b@c>", 0),
	BADS("<@a;b@c>", 0),
	BADS("<@a..b:c@d>", 0),
	BADS("<@[1.2.3.4]:c@d>", 0),
	BADS("<@a:@b:c@d>", 0),
	BADS("<a@b:c@d>", 0),
	/*
	 * aiosmtpd's valid_mailfrom_addresses with strict RFC 5321 verdicts
	 * (the session strips "FROM:" and one space before calling us).
	 */
	BADS("anne@example.com", 0),
	OK("<anne@example.com>", 0, "anne", "example.com"),
	BADS(" anne@example.com", 0),
	BADS(" <anne@example.com>", 0),
	BADS("  <anne@example.com>", 0),
	OK("<anne.arthur@example.com>", 0, "anne.arthur", "example.com"),
	OK("<anne+promo@example.com>", 0, "anne+promo", "example.com"),
	OK("<anne-arthur@example.com>", 0, "anne-arthur", "example.com"),
	OK("<anne_arthur@example.com>", 0, "anne_arthur", "example.com"),
	OK("<_@example.com>", 0, "_", "example.com"),
	OK("<anne@127.0.0.1>", 0, "anne", "127.0.0.1"),
	OK("<anne@[127.0.0.1]>", 0, "anne", "[127.0.0.1]"),
	OK("<anne@[IPv6:2001:db8::1]>", 0, "anne", "[IPv6:2001:db8::1]"),
	BADS("<anne@[IPv6::1]>", 0),
	BADS("<anne(comment)@example.com>", 0),
	BADS("<(comment)anne@example.com>", 0),
	BADS("<anne@example.com(comment)>", 0),
	BADS("<anne@machine(comment).  example>", 0),
	OK("<anne@mail>", 0, "anne", "mail"),
	OK("<\"\"@example.com>", 0, "\"\"", "example.com"),
	OK("<\" \"@example.com>", 0, "\" \"", "example.com"),
	OK("<\"anne..arthur\"@example.com>", 0, "\"anne..arthur\"",
	    "example.com"),
	OK("<mailhost!anne@example.com>", 0, "mailhost!anne", "example.com"),
	OK("<anne%example.org@example.com>", 0, "anne%example.org",
	    "example.com"),
	BADS("<much.\"more\\ unusual\"@example.com>", 0),
	BADS("<very.\"(),:;<>[]\".VERY.\"very@\\ \"very.unusual@"
	    "strange.example.com>", 0),
	BADS("<Fred\\ Bloggs@example.com>", 0),
	BADS("<Joe.\\\\Blow@example.com>", 0),
	OK("<\"Abc@def\"@example.com>", 0, "\"Abc@def\"", "example.com"),
	OK("<\"Fred Bloggs\"@example.com>", 0, "\"Fred Bloggs\"",
	    "example.com"),
	OK("<customer/department=shipping@example.com>", 0,
	    "customer/department=shipping", "example.com"),
	OK("<$A12345@example.com>", 0, "$A12345", "example.com"),
	OK("<!def!xyz%abc@example.com>", 0, "!def!xyz%abc", "example.com"),
	BADS("Anne <anne@example.com>", 0),
	BADR("bart <bart@example.com>", 0),
	/* aiosmtpd's invalid_email_addresses */
	BADS("<@example.com>", 0),
	BADS("<johnathon@>", 0),
	BADR("<@example.com>", 0),
	BADR("<johnathon@>", 0),
	/* UTF-8 (RFC 6531) */
	OKU("<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90."
	    "\xe5\xb9\xbf\xe5\x91\x8a>", F_UTF8,
	    "\xe7\x94\xa8\xe6\x88\xb7",
	    "\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a"),
	NEED("<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90."
	    "\xe5\xb9\xbf\xe5\x91\x8a>", 0),
	NEED("<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90."
	    "\xe5\xb9\xbf\xe5\x91\x8a>", F_RCPT),
	OKU("<j\xc3\xb6rg@example.com>", F_UTF8, "j\xc3\xb6rg",
	    "example.com"),
	NEED("<j\xc3\xb6rg@example.com>", 0),
	OKU("<a@b\xc3\xbc" "cher.example>", F_UTF8, "a",
	    "b\xc3\xbc" "cher.example"),
	NEED("<a@b\xc3\xbc" "cher.example>", F_RCPT),
	OKU("<\"\xc3\xbc x\"@x>", F_UTF8, "\"\xc3\xbc x\"", "x"),
	NEED("<\"\xc3\xbc x\"@x>", 0),
	OKU("<@\xc3\xbc:a@b>", F_UTF8, "a", "b"),
	NEED("<@\xc3\xbc:a@b>", 0),
	OKU("<a\xf0\x9f\x98\x80@x>", F_UTF8, "a\xf0\x9f\x98\x80", "x"),
	OKU("<\xf4\x8f\xbf\xbf@x>", F_UTF8, "\xf4\x8f\xbf\xbf", "x"),
	/* malformed UTF-8 is a syntax error, with or without SMTPUTF8 */
	BADS("<a\xff@x>", F_UTF8),
	BADS("<a\xff@x>", 0),
	BADR("<a\x80@x>", F_UTF8),
	BADS("<\xc0\xaf@x>", F_UTF8),		/* overlong "/" */
	BADS("<\xe0\x80\xaf@x>", F_UTF8),	/* overlong */
	BADS("<\xed\xa0\x80@x>", F_UTF8),	/* surrogate */
	BADS("<\xf4\x90\x80\x80@x>", F_UTF8),	/* > U+10FFFF */
	BADS("<\xf8\x88\x80\x80\x80@x>", F_UTF8),
	BADS("<\xe4\xb8@x>", F_UTF8),		/* truncated */
	BADS("<a@\xe4\xb8>", F_UTF8),
	BADS("<a@x\xc3>", F_UTF8),
	BADS("<\"\xc3\"@x>", F_UTF8),
	BADS("<a@[\xc3\xbc]>", F_UTF8),
	BADS("<a@b\xc3\xbc-.x>", F_UTF8),
};

static void
check_path_case(const struct path_case *c, const char *in)
{
	struct smtp_address addr;
	enum reply_id reply;
	const char *rest = NULL;
	char ctx[600], text[600];
	int ret;

	snprintf(ctx, sizeof(ctx), "path \"%s\" rcpt=%d null=%d utf8=%d",
	    test_esc(in), !!(c->flags & F_RCPT), !!(c->flags & F_NULL),
	    !!(c->flags & F_UTF8));
	memset(&addr, 0xa5, sizeof(addr));
	reply = (enum reply_id)-1;
	ret = smtp_parse_path(in, c->flags & F_RCPT, c->flags & F_NULL,
	    c->flags & F_UTF8, &addr, &rest, &reply);
	check_int(ctx, "return", ret, c->ret);
	if (ret != 0) {
		check_int(ctx, "reply", reply, c->reply);
		return;
	}
	check_str(ctx, "localpart", addr.localpart, c->local);
	check_str(ctx, "domain", addr.domain, c->domain);
	check_str(ctx, "rest", rest, c->rest);
	check_int(ctx, "rest offset", rest - in,
	    (long long)(strlen(in) - strlen(c->rest)));
	check_int(ctx, "null", addr.null, *c->local == '\0');
	check_int(ctx, "utf8", addr.utf8, c->utf8);
	if (*c->local == '\0')
		snprintf(text, sizeof(text), "%s", "");
	else if (*c->domain == '\0')
		snprintf(text, sizeof(text), "%s", c->local);
	else
		snprintf(text, sizeof(text), "%s@%s", c->local, c->domain);
	check_str(ctx, "text", addr.text, text);
}

static void
test_parse_path(void **state)
{
	struct smtp_address addr;
	const struct path_case *c;
	enum reply_id reply;
	const char *rest;
	size_t i, k, len;
	char *in;

	(void)state;
	for (i = 0; i < N(path_cases); i++) {
		c = &path_cases[i];
		len = strlen(c->in);
		in = test_dup_exact(c->in, len);
		check_path_case(c, in);
		free(in);
		/*
		 * Every proper prefix of a path that ends at '>' must fail
		 * (the string parser's "one byte at a time"): no partial
		 * path is ever taken for a complete one.
		 */
		for (k = 0; k < len; k++) {
			in = test_dup_exact(c->in, k);
			if (smtp_parse_path(in, c->flags & F_RCPT,
			    c->flags & F_NULL, c->flags & F_UTF8, &addr,
			    &rest, &reply) == 0 && c->ret == 0 &&
			    *c->rest == '\0')
				fail_msg("path prefix \"%s\" of \"%s\": "
				    "got success, want failure", test_esc(in),
				    test_esc(c->in));
			free(in);
		}
	}
}

/* A domain of exactly len octets in labels of at most label octets. */
static void
make_domain(char *out, size_t len, size_t label)
{
	size_t i, run = 0;

	for (i = 0; i < len; i++) {
		/* never end with '.' or have a 0-length label */
		if (run == label && i + 1 < len) {
			out[i] = '.';
			run = 0;
		} else {
			out[i] = 'a' + (i % 26);
			run++;
		}
	}
	out[len] = '\0';
	/* The last label must not have grown past label octets. */
	if (run > label)
		fail_msg("make_domain(%zu, %zu): last label %zu octets", len,
		    label, run);
}

/* route: octets of source route after '<' that text does not keep. */
static void
path_len_case_route(const char *name, const char *path, size_t route,
    bool rcpt, int want)
{
	struct smtp_address addr;
	enum reply_id reply = REPLY_NONE;
	const char *rest;
	char ctx[128], *in;
	int ret;

	snprintf(ctx, sizeof(ctx), "%s (%zu octets)", name, strlen(path));
	in = test_dup_exact(path, strlen(path));
	ret = smtp_parse_path(in, rcpt, false, false, &addr, &rest, &reply);
	check_int(ctx, "return", ret, want);
	if (ret == 0) {
		check_int(ctx, "localpart fits",
		    strlen(addr.localpart) < sizeof(addr.localpart), 1);
		check_int(ctx, "text length",
		    (long long)strlen(addr.text),
		    (long long)(strlen(path) - 2 - route));
	} else
		check_int(ctx, "reply", reply,
		    rcpt ? REPLY_BAD_RCPT : REPLY_BAD_SENDER);
	free(in);
}

static void
path_len_case(const char *name, const char *path, bool rcpt, int want)
{
	path_len_case_route(name, path, 0, rcpt, want);
}

static void
test_parse_path_limits(void **state)
{
	char local[100], dom[300], path[600];

	(void)state;
	/* local part: 64 octets (RFC 5321 4.5.3.1.1) */
	memset(local, 'l', 64);
	local[64] = '\0';
	snprintf(path, sizeof(path), "<%s@x.y>", local);
	path_len_case("local part 64", path, false, 0);
	local[64] = 'l';
	local[65] = '\0';
	snprintf(path, sizeof(path), "<%s@x.y>", local);
	path_len_case("local part 65", path, true, -1);
	/* quoted: the quotes do not count */
	memset(local, 'q', 64);
	local[64] = '\0';
	snprintf(path, sizeof(path), "<\"%s\"@x.y>", local);
	path_len_case("quoted local part 64", path, false, 0);
	local[64] = 'q';
	local[65] = '\0';
	snprintf(path, sizeof(path), "<\"%s\"@x.y>", local);
	path_len_case("quoted local part 65", path, false, -1);
	/* the 64 octets are counted as written, escapes included */
	memset(local, 'q', 62);
	memcpy(local + 62, "\\\"", 3);
	snprintf(path, sizeof(path), "<\"%s\"@x.y>", local);
	path_len_case("quoted local part 64 with quoted-pair", path, false,
	    0);
	memset(local, 'q', 63);
	memcpy(local + 63, "\\\"", 3);
	snprintf(path, sizeof(path), "<\"%s\"@x.y>", local);
	path_len_case("quoted local part 65 with quoted-pair", path, false,
	    -1);
	/* whole path: 256 octets with the brackets (4.5.3.1.3) */
	make_domain(dom, 252, 63);
	snprintf(path, sizeof(path), "<a@%s>", dom);
	path_len_case("path 256", path, false, 0);
	make_domain(dom, 253, 63);
	snprintf(path, sizeof(path), "<a@%s>", dom);
	path_len_case("path 257", path, false, -1);
	memset(local, 'l', 64);
	local[64] = '\0';
	make_domain(dom, 189, 63);
	snprintf(path, sizeof(path), "<%s@%s>", local, dom);
	path_len_case("path 256, local 64", path, true, 0);
	make_domain(dom, 190, 63);
	snprintf(path, sizeof(path), "<%s@%s>", local, dom);
	path_len_case("path 257, local 64", path, true, -1);
	/* the source route counts towards the path */
	make_domain(dom, 249, 63);
	snprintf(path, sizeof(path), "<@r:a@%s>", dom);
	path_len_case_route("path 256 with source route", path, 3, false,
	    0);
	make_domain(dom, 250, 63);
	snprintf(path, sizeof(path), "<@r:a@%s>", dom);
	path_len_case_route("path 257 with source route", path, 3, false,
	    -1);
	/* a 255-octet domain never fits in a path; 255/256 via HELO */
	make_domain(dom, 255, 63);
	snprintf(path, sizeof(path), "<a@%s>", dom);
	path_len_case("domain 255 in a path", path, false, -1);
	/* DNS labels: 63 octets */
	make_domain(dom, 63, 63);
	snprintf(path, sizeof(path), "<a@%s.x>", dom);
	path_len_case("label 63", path, false, 0);
	make_domain(dom, 64, 64);
	snprintf(path, sizeof(path), "<a@%s.x>", dom);
	path_len_case("label 64", path, false, -1);
	/* aiosmtpd's "practical longest" inputs */
	memset(local, 'a', 65);
	local[65] = '\0';
	snprintf(path, sizeof(path), "<%s@example.com>", local);
	path_len_case("aiosmtpd a*65", path, false, -1);
	memset(path, 'b', 490);
	memcpy(path, "<", 1);
	snprintf(path + 489, sizeof(path) - 489, "%s", "@example.com>");
	path_len_case("aiosmtpd b*488", path, false, -1);
	memset(path, 'c', 501);
	path[0] = '<';
	path[501] = '>';
	path[502] = '\0';
	path_len_case("aiosmtpd c*500", path, true, -1);
}

/* smtp_parse_mail_params */

struct mail_case {
	const char *in;
	int ret;
	enum reply_id reply;
	const char *bad;
	enum smtp_body body;
	bool has_size;
	uint64_t size;
	bool smtputf8;
	enum smtp_ret retp;
	const char *envid;
	const char *auth;
};

#define MOK(in, body, hs, size, u8, ret, envid, auth) \
	{ in, 0, REPLY_NONE, "", body, hs, size, u8, ret, envid, auth }
#define MBAD(in, reply, bad) \
	{ in, -1, reply, bad, 0, false, 0, false, 0, "", "" }
#define SYN		REPLY_PARAM_SYNTAX
#define UNK		REPLY_PARAM_UNKNOWN

static const struct mail_case mail_cases[] = {
	MOK("", 0, false, 0, false, 0, "", ""),
	MOK("   ", 0, false, 0, false, 0, "", ""),
	MOK("SIZE=10000", 0, true, 10000, false, 0, "", ""),
	MOK(" SIZE=10000", 0, true, 10000, false, 0, "", ""),
	MOK("SIZE=10000 ", 0, true, 10000, false, 0, "", ""),
	MOK("size=0", 0, true, 0, false, 0, "", ""),
	MOK("SIZE=18446744073709551615", 0, true, UINT64_MAX, false, 0, "",
	    ""),
	MOK("SIZE=00000000000000000001", 0, true, 1, false, 0, "", ""),
	MBAD("SIZE=18446744073709551616", SYN, "SIZE"),
	MBAD("SIZE=99999999999999999999", SYN, "SIZE"),
	MBAD("SIZE=000000000000000000001", SYN, "SIZE"),
	MBAD("SIZE=", SYN, "SIZE"),
	MBAD("SIZE", SYN, "SIZE"),
	MBAD("SIZE 10000", SYN, "SIZE"),
	MBAD("SIZE = 10000", SYN, "SIZE"),
	MBAD("SIZE=-1", SYN, "SIZE"),
	MBAD("SIZE=+1", SYN, "SIZE"),
	MBAD("SIZE=1k", SYN, "SIZE"),
	MBAD("SIZE=1 SIZE=1", SYN, "SIZE"),
	MBAD("SIZE=1 size=2", SYN, "SIZE"),
	MBAD("SIZE=1\t", SYN, "SIZE"),
	MBAD("SIZE==1", SYN, "SIZE"),
	MOK("BODY=7BIT", SMTP_BODY_7BIT, false, 0, false, 0, "", ""),
	MOK("BODY=8BITMIME", SMTP_BODY_8BITMIME, false, 0, false, 0, "", ""),
	MOK("body=8bitmime", SMTP_BODY_8BITMIME, false, 0, false, 0, "", ""),
	/* RFC 3030 3: offered with CHUNKING */
	MOK("BODY=BINARYMIME", SMTP_BODY_BINARYMIME, false, 0, false, 0, "",
	    ""),
	MOK("body=binarymime", SMTP_BODY_BINARYMIME, false, 0, false, 0, "",
	    ""),
	MBAD("BODY=BINARY", SYN, "BODY"),
	MBAD("BODY=BINARYMIME BODY=7BIT", SYN, "BODY"),
	MBAD("BODY=FOOBAR", SYN, "BODY"),
	MBAD("BODY=8BIT", SYN, "BODY"),
	MBAD("BODY", SYN, "BODY"),
	MBAD("BODY=7BIT BODY=7BIT", SYN, "BODY"),
	MOK("SMTPUTF8", 0, false, 0, true, 0, "", ""),
	MOK("smtputf8", 0, false, 0, true, 0, "", ""),
	MBAD("SMTPUTF8=yes", SYN, "SMTPUTF8"),
	MBAD("SMTPUTF8 SMTPUTF8", SYN, "SMTPUTF8"),
	MOK("RET=FULL", 0, false, 0, false, SMTP_RET_FULL, "", ""),
	MOK("ret=hdrs", 0, false, 0, false, SMTP_RET_HDRS, "", ""),
	MBAD("RET=NONE", SYN, "RET"),
	MBAD("RET", SYN, "RET"),
	MOK("ENVID=QQ314159", 0, false, 0, false, 0, "QQ314159", ""),
	MOK("ENVID=a+2Bb+3D", 0, false, 0, false, 0, "a+2Bb+3D", ""),
	MBAD("ENVID=a+2b", SYN, "ENVID"),
	MBAD("ENVID=a+", SYN, "ENVID"),
	MBAD("ENVID=a+2", SYN, "ENVID"),
	MBAD("ENVID=a+ZZ", SYN, "ENVID"),
	MBAD("ENVID=", SYN, "ENVID"),
	MBAD("ENVID", SYN, "ENVID"),
	MBAD("ENVID=\xc3\xbc", SYN, "ENVID"),
	/* RFC 3461 4.4: the decoded ENVID is printable US-ASCII */
	MOK("ENVID=a+20b", 0, false, 0, false, 0, "a+20b", ""),
	MOK("ENVID=a+09b+7E", 0, false, 0, false, 0, "a+09b+7E", ""),
	MBAD("ENVID=a+0D+0Ab", SYN, "ENVID"),
	MBAD("ENVID=+0A", SYN, "ENVID"),
	MBAD("ENVID=a+00", SYN, "ENVID"),
	MBAD("ENVID=a+7F", SYN, "ENVID"),
	MBAD("ENVID=a+80", SYN, "ENVID"),
	MBAD("ENVID=a+FF", SYN, "ENVID"),
	MBAD("ENVID=QQ RET=FULL ENVID=QQ", SYN, "ENVID"),
	MBAD("RET=FULL RET=HDRS", SYN, "RET"),
	MBAD("RET=FULL RET=FULL", SYN, "RET"),
	MBAD("RET=FULL,HDRS", SYN, "RET"),
	MOK("AUTH=<>", 0, false, 0, false, 0, "", "<>"),
	MOK("AUTH=anne+40example.com", 0, false, 0, false, 0, "",
	    "anne+40example.com"),
	MBAD("AUTH=", SYN, "AUTH"),
	MBAD("AUTH", SYN, "AUTH"),
	MBAD("AUTH=a+4", SYN, "AUTH"),
	MBAD("AUTH=a=b", SYN, "AUTH"),
	MBAD("AUTH=<> AUTH=<>", SYN, "AUTH"),
	MOK("BODY=8BITMIME SIZE=123 SMTPUTF8 RET=HDRS ENVID=QQ314159 AUTH=<>",
	    SMTP_BODY_8BITMIME, true, 123, true, SMTP_RET_HDRS, "QQ314159",
	    "<>"),
	MOK("auth=<>  envid=x   ret=full body=7bit size=5 smtputf8",
	    SMTP_BODY_7BIT, true, 5, true, SMTP_RET_FULL, "x", "<>"),
	/* unknown keywords (aiosmtpd: 555) and malformed ones (501) */
	MBAD("FOO=BAR", UNK, "FOO"),
	MBAD("foo", UNK, "foo"),
	MBAD("FOO=\xc3\xbc", UNK, "FOO"),
	MBAD("SIZE=1 FOO=BAR", UNK, "FOO"),
	MBAD("NOTIFY=NEVER", UNK, "NOTIFY"),
	MBAD("ORCPT=rfc822;a@b", UNK, "ORCPT"),
	MBAD("X-VERY-LONG-KEYWORD-THAT-DOES-NOT-FIT-THE-BUFFER=1", UNK,
	    "X-VERY-LONG-KEYWORD-THAT-DOES-N"),
	MBAD("#$%=!@#", SYN, "???"),
	MBAD("-X=1", SYN, "-X"),
	MBAD("=1", SYN, ""),
	MBAD("SI\x01ZE=1", SYN, "SI?ZE"),
	MBAD("FOO=a\x01", SYN, "FOO"),
	MBAD("FOO=\xff", SYN, "FOO"),
};

static void
test_parse_mail_params(void **state)
{
	struct smtp_mail_params p;
	const struct mail_case *c;
	enum reply_id reply;
	char ctx[256], bad[SMTP_PARAM_BAD_SIZE], *in;
	size_t i, k, len;
	int ret;

	(void)state;
	for (i = 0; i < N(mail_cases); i++) {
		c = &mail_cases[i];
		snprintf(ctx, sizeof(ctx), "MAIL params \"%s\"", test_esc(c->in));
		len = strlen(c->in);
		in = test_dup_exact(c->in, len);
		memset(&p, 0xa5, sizeof(p));
		memset(bad, 'Z', sizeof(bad));
		reply = (enum reply_id)-1;
		ret = smtp_parse_mail_params(in, &p, &reply, bad, sizeof(bad));
		check_int(ctx, "return", ret, c->ret);
		check_str(ctx, "bad", bad, c->bad);
		if (ret != 0)
			check_int(ctx, "reply", reply, c->reply);
		else {
			check_int(ctx, "body", p.body, c->body);
			check_int(ctx, "has_size", p.has_size, c->has_size);
			check_int(ctx, "size", (long long)p.size,
			    (long long)c->size);
			check_int(ctx, "smtputf8", p.smtputf8, c->smtputf8);
			check_int(ctx, "ret", p.ret, c->retp);
			check_str(ctx, "envid", p.envid, c->envid);
			check_str(ctx, "auth", p.auth, c->auth);
		}
		free(in);
		for (k = 0; k < len; k++) {
			in = test_dup_exact(c->in, k);
			(void)smtp_parse_mail_params(in, &p, &reply, bad,
			    sizeof(bad));
			free(in);
		}
	}
}

static void
test_parse_params_lengths(void **state)
{
	struct smtp_mail_params mp;
	struct smtp_rcpt_params rp;
	enum reply_id reply;
	char in[700], bad[SMTP_PARAM_BAD_SIZE], tiny[4];
	int ret;

	(void)state;
	/* ENVID: 100 octets (RFC 3461 4.4) */
	memcpy(in, "ENVID=", 6);
	memset(in + 6, 'e', 100);
	in[106] = '\0';
	ret = smtp_parse_mail_params(in, &mp, &reply, bad, sizeof(bad));
	check_int("ENVID 100", "return", ret, 0);
	check_int("ENVID 100", "length", (long long)strlen(mp.envid), 100);
	memcpy(in + 106, "e", 2);
	ret = smtp_parse_mail_params(in, &mp, &reply, bad, sizeof(bad));
	check_int("ENVID 101", "return", ret, -1);
	check_int("ENVID 101", "reply", reply, REPLY_PARAM_SYNTAX);
	/* AUTH=: 500 octets */
	memcpy(in, "AUTH=", 5);
	memset(in + 5, 'a', 500);
	in[505] = '\0';
	ret = smtp_parse_mail_params(in, &mp, &reply, bad, sizeof(bad));
	check_int("AUTH 500", "return", ret, 0);
	memcpy(in + 505, "a", 2);
	ret = smtp_parse_mail_params(in, &mp, &reply, bad, sizeof(bad));
	check_int("AUTH 501", "return", ret, -1);
	check_int("AUTH 501", "reply", reply, REPLY_PARAM_SYNTAX);
	/* ORCPT: 500 octets for "type;xtext" */
	memcpy(in, "ORCPT=rfc822;", 13);
	memset(in + 13, 'o', 500 - 7);
	in[506] = '\0';
	ret = smtp_parse_rcpt_params(in, &rp, &reply, bad, sizeof(bad));
	check_int("ORCPT 500", "return", ret, 0);
	check_int("ORCPT 500", "length", (long long)strlen(rp.orcpt), 500);
	memcpy(in + 506, "o", 2);
	ret = smtp_parse_rcpt_params(in, &rp, &reply, bad, sizeof(bad));
	check_int("ORCPT 501", "return", ret, -1);
	check_int("ORCPT 501", "reply", reply, REPLY_PARAM_SYNTAX);
	/* a small bad buffer truncates; size 0 is never written */
	ret = smtp_parse_mail_params("FOOBAR", &mp, &reply, tiny,
	    sizeof(tiny));
	check_int("tiny bad", "return", ret, -1);
	check_str("tiny bad", "bad", tiny, "FOO");
	memset(tiny, 'Z', sizeof(tiny));
	ret = smtp_parse_mail_params("FOOBAR", &mp, &reply, tiny, 0);
	check_int("no bad", "return", ret, -1);
	check_int("no bad", "untouched", tiny[0], 'Z');
}

/* smtp_parse_rcpt_params */

struct rcpt_case {
	const char *in;
	int ret;
	enum reply_id reply;
	const char *bad;
	unsigned int notify;
	const char *orcpt;
};

static const struct rcpt_case rcpt_cases[] = {
	{ "", 0, REPLY_NONE, "", 0, "" },
	{ "NOTIFY=NEVER", 0, REPLY_NONE, "", SMTP_NOTIFY_NEVER, "" },
	{ "notify=never", 0, REPLY_NONE, "", SMTP_NOTIFY_NEVER, "" },
	{ "NOTIFY=SUCCESS", 0, REPLY_NONE, "", SMTP_NOTIFY_SUCCESS, "" },
	{ "NOTIFY=SUCCESS,FAILURE,DELAY", 0, REPLY_NONE, "",
	    SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY,
	    "" },
	{ "NOTIFY=delay,Failure", 0, REPLY_NONE, "",
	    SMTP_NOTIFY_DELAY | SMTP_NOTIFY_FAILURE, "" },
	{ "NOTIFY=NEVER,SUCCESS", -1, SYN, "NOTIFY", 0, "" },
	{ "NOTIFY=SUCCESS,NEVER", -1, SYN, "NOTIFY", 0, "" },
	{ "NOTIFY=NEVER,NEVER", -1, SYN, "NOTIFY", 0, "" },
	{ "NOTIFY=SUCCESS,SUCCESS", -1, SYN, "NOTIFY", 0, "" },
	{ "NOTIFY=SUCCESS,,DELAY", -1, SYN, "NOTIFY", 0, "" },
	{ "NOTIFY=SUCCESS,", -1, SYN, "NOTIFY", 0, "" },
	{ "NOTIFY=,SUCCESS", -1, SYN, "NOTIFY", 0, "" },
	{ "NOTIFY=SUCCES", -1, SYN, "NOTIFY", 0, "" },
	{ "NOTIFY=", -1, SYN, "NOTIFY", 0, "" },
	{ "NOTIFY", -1, SYN, "NOTIFY", 0, "" },
	{ "NOTIFY=NEVER NOTIFY=NEVER", -1, SYN, "NOTIFY", 0, "" },
	{ "ORCPT=rfc822;bob@example.com", 0, REPLY_NONE, "", 0,
	    "rfc822;bob@example.com" },
	{ "ORCPT=RFC822;bob+2Bx@example.com", 0, REPLY_NONE, "", 0,
	    "RFC822;bob+2Bx@example.com" },
	{ "ORCPT=utf-8;b\\x{E9}b@example.com", 0, REPLY_NONE, "", 0,
	    "utf-8;b\\x{E9}b@example.com" },
	{ "ORCPT=UTF-8;b\xc3\xa9" "b@example.com", 0, REPLY_NONE, "", 0,
	    "UTF-8;b\xc3\xa9" "b@example.com" },
	{ "ORCPT=utf-8;a\\x{}b", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=utf-8;a\\x{1234567}b", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=utf-8;a\\b", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=utf-8;a+b", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=rfc822;b\xc3\xa9", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=rfc822;a+zz", -1, SYN, "ORCPT", 0, "" },
	/* RFC 3461 4.2: the decoded address is printable US-ASCII */
	{ "ORCPT=rfc822;a+20b@c", 0, REPLY_NONE, "", 0, "rfc822;a+20b@c" },
	{ "ORCPT=rfc822;a+0D+0AX-Evil:+20y@c", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=rfc822;a+0Ab@c", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=rfc822;a+00b@c", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=rfc822;a+C3+A9@c", -1, SYN, "ORCPT", 0, "" },
	/* RFC 6533: no control characters through \x{...} either */
	{ "ORCPT=utf-8;a\\x{20}b@c", 0, REPLY_NONE, "", 0,
	    "utf-8;a\\x{20}b@c" },
	{ "ORCPT=utf-8;a\\x{10FFFF}b@c", 0, REPLY_NONE, "", 0,
	    "utf-8;a\\x{10FFFF}b@c" },
	{ "ORCPT=utf-8;a\\x{D}b@c", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=utf-8;a\\x{0A}b@c", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=utf-8;a\\x{7f}b@c", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=utf-8;a\\x{85}b@c", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=utf-8;a\\x{D800}b@c", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=utf-8;a\\x{110000}b@c", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=rfc822", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=rfc822;", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=;a@b", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=rf(c;a@b", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT", -1, SYN, "ORCPT", 0, "" },
	{ "ORCPT=rfc822;a ORCPT=rfc822;b", -1, SYN, "ORCPT", 0, "" },
	{ "NOTIFY=FAILURE ORCPT=rfc822;a@b", 0, REPLY_NONE, "",
	    SMTP_NOTIFY_FAILURE, "rfc822;a@b" },
	{ " orcpt=rfc822;a@b  notify=never ", 0, REPLY_NONE, "",
	    SMTP_NOTIFY_NEVER, "rfc822;a@b" },
	/* MAIL parameters are unknown on RCPT (aiosmtpd: 555) */
	{ "SIZE=1000", -1, UNK, "SIZE", 0, "" },
	{ "BODY=8BITMIME", -1, UNK, "BODY", 0, "" },
	{ "FOOBAR", -1, UNK, "FOOBAR", 0, "" },
	{ "#$%=!@#", -1, SYN, "???", 0, "" },
};

static void
test_parse_rcpt_params(void **state)
{
	struct smtp_rcpt_params p;
	const struct rcpt_case *c;
	enum reply_id reply;
	char ctx[256], bad[SMTP_PARAM_BAD_SIZE], *in;
	size_t i, k, len;
	int ret;

	(void)state;
	for (i = 0; i < N(rcpt_cases); i++) {
		c = &rcpt_cases[i];
		snprintf(ctx, sizeof(ctx), "RCPT params \"%s\"", test_esc(c->in));
		len = strlen(c->in);
		in = test_dup_exact(c->in, len);
		memset(&p, 0xa5, sizeof(p));
		memset(bad, 'Z', sizeof(bad));
		reply = (enum reply_id)-1;
		ret = smtp_parse_rcpt_params(in, &p, &reply, bad, sizeof(bad));
		check_int(ctx, "return", ret, c->ret);
		check_str(ctx, "bad", bad, c->bad);
		if (ret != 0)
			check_int(ctx, "reply", reply, c->reply);
		else {
			check_int(ctx, "notify", p.notify, c->notify);
			check_str(ctx, "orcpt", p.orcpt, c->orcpt);
		}
		free(in);
		for (k = 0; k < len; k++) {
			in = test_dup_exact(c->in, k);
			(void)smtp_parse_rcpt_params(in, &p, &reply, bad,
			    sizeof(bad));
			free(in);
		}
	}
}

/* smtp_parse_helo */

struct helo_case {
	const char *in;
	bool ok;
};

static const struct helo_case helo_cases[] = {
	{ "example.com", true },
	{ "Mail.Example.COM", true },
	{ "localhost", true },
	{ "mail", true },
	{ "a-b.c", true },
	{ "xn--bcher-kva.example", true },
	{ "192.168.1.1", true },
	{ "[192.168.1.1]", true },
	{ "[IPv6:::1]", true },
	{ "[ipv6:2001:db8::1]", true },
	{ "::1", true },
	{ "2001:db8::1", true },
	{ "my_pc", true },
	{ "DESKTOP-AB_1.local", true },
	{ "\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", true },
	{ "", false },
	{ " ", false },
	{ " example.com", false },
	{ "example.com ", false },
	{ "exa mple.com", false },
	{ "exa\tmple.com", false },
	{ "example\x01.com", false },
	{ "example\x7f.com", false },
	{ "example..com", false },
	{ ".example.com", false },
	{ "example.com.", false },
	{ "-a.com", false },
	{ "a-.com", false },
	{ "a@b", false },
	{ "<example.com>", false },
	{ "[192.168.1.1", false },
	{ "192.168.1.1]", false },
	{ "[1.2.3]", false },
	{ "[x-tag:content]", false },
	{ "[::1]", false },
	{ "::g", false },
	{ ":::1", false },
	{ "1:2", false },
	{ "a\xff", false },
	{ "a\xc0\xaf", false },
	{ "a\xe4\xb8", false },
};

static void
check_helo(const char *in, bool want)
{
	char ctx[400], *p;
	bool got;

	p = test_dup_exact(in, strlen(in));
	got = smtp_parse_helo(p);
	snprintf(ctx, sizeof(ctx), "HELO \"%.300s\"", test_esc(in));
	check_int(ctx, "valid", got, want);
	free(p);
}

static void
test_parse_helo(void **state)
{
	char dom[300], *in;
	size_t i, k, len;

	(void)state;
	for (i = 0; i < N(helo_cases); i++) {
		check_helo(helo_cases[i].in, helo_cases[i].ok);
		len = strlen(helo_cases[i].in);
		for (k = 0; k < len; k++) {
			in = test_dup_exact(helo_cases[i].in, k);
			(void)smtp_parse_helo(in);
			free(in);
		}
	}
	/* domain: 255 octets (RFC 5321 4.5.3.1.2); labels 63 */
	make_domain(dom, 255, 63);
	check_helo(dom, true);
	make_domain(dom, 256, 62);
	check_helo(dom, false);
	make_domain(dom, 255, 62);
	check_helo(dom, true);
	make_domain(dom, 63, 63);
	check_helo(dom, true);
	make_domain(dom, 64, 64);
	check_helo(dom, false);
}

/* smtp_localpart_unquote */

struct unquote_case {
	const char *in;
	size_t outsize;
	int ret;
	const char *out;
};

static const struct unquote_case unquote_cases[] = {
	{ "abc", 65, 0, "abc" },
	{ "Anne.Arthur", 65, 0, "anne.arthur" },
	{ "POSTMASTER", 65, 0, "postmaster" },
	{ "\"A b\"", 65, 0, "a b" },
	{ "\"a\\\"b\"", 65, 0, "a\"b" },
	{ "\"a\\\\b\"", 65, 0, "a\\b" },
	{ "\"a\\Bc\"", 65, 0, "abc" },
	{ "\"\"", 65, 0, "" },
	{ "\"..\"", 65, 0, ".." },
	{ "\"a/b\"", 65, 0, "a/b" },
	{ "J\xc3\x96rg", 65, 0, "j\xc3\x96rg" },
	{ "abcde", 6, 0, "abcde" },
	{ "abcdef", 6, -1, "" },
	{ "\"abcde\"", 6, 0, "abcde" },
	{ "\"abcdef\"", 6, -1, "" },
	{ "\"a\\bcde\"", 6, 0, "abcde" },
};

static void
test_localpart_unquote(void **state)
{
	const struct unquote_case *c;
	char ctx[128], out[80];
	size_t i;
	int ret;

	(void)state;
	for (i = 0; i < N(unquote_cases); i++) {
		c = &unquote_cases[i];
		snprintf(ctx, sizeof(ctx), "unquote \"%s\" into %zu",
		    test_esc(c->in), c->outsize);
		memset(out, 'Z', sizeof(out));
		ret = smtp_localpart_unquote(c->in, out, c->outsize);
		check_int(ctx, "return", ret, c->ret);
		check_str(ctx, "out", out, c->out);
		check_int(ctx, "no write past outsize", out[c->outsize], 'Z');
	}
	memset(out, 'Z', sizeof(out));
	check_int("unquote into 0", "return",
	    smtp_localpart_unquote("a", out, 0), -1);
	check_int("unquote into 0", "untouched", out[0], 'Z');
}

/* smtp_is_xtext */

static const struct {
	const char *in;
	bool ok;
} xtext_cases[] = {
	{ "", true },
	{ "abc", true },
	{ "a+2Bb", true },
	{ "+41+42", true },
	{ "!\"#$%&'()*,-./09:;<>?@AZ[\\]^_`az{|}~", true },
	{ "a+2b", false },
	{ "a+b2", false },
	{ "+e9", false },
	{ "a+", false },
	{ "a+2", false },
	{ "a+G0", false },
	{ "a=b", false },
	{ "a+b", false },
	{ "a b", false },
	{ "a\x7f", false },
	{ "a\x01", false },
	{ "\xc3\xa9", false },
};

static void
test_is_xtext(void **state)
{
	char ctx[128];
	size_t i;

	(void)state;
	for (i = 0; i < N(xtext_cases); i++) {
		snprintf(ctx, sizeof(ctx), "xtext \"%s\"",
		    test_esc(xtext_cases[i].in));
		check_int(ctx, "valid", smtp_is_xtext(xtext_cases[i].in),
		    xtext_cases[i].ok);
	}
}

/* smtp_parse_bdat */

struct bdat_case {
	const char *in;
	int ret;
	uint64_t size;
	bool last;
};

static const struct bdat_case bdat_cases[] = {
	{ "0", 0, 0, false },
	{ "0 LAST", 0, 0, true },
	{ "10", 0, 10, false },
	{ "10 LAST", 0, 10, true },
	{ "10 last", 0, 10, true },
	{ "10 LaSt", 0, 10, true },
	{ "  10   LAST  ", 0, 10, true },
	{ "007", 0, 7, false },
	{ "18446744073709551615 LAST", 0, UINT64_MAX, true },
	{ "00000000000000000001", 0, 1, false },
	{ "", -1, 0, false },
	{ " ", -1, 0, false },
	{ "LAST", -1, 0, false },
	{ "LAST 10", -1, 0, false },
	{ "-1", -1, 0, false },
	{ "+1", -1, 0, false },
	{ "1k", -1, 0, false },
	{ "0x10", -1, 0, false },
	{ "10 LASTX", -1, 0, false },
	{ "10 LAS", -1, 0, false },
	{ "10 LAST LAST", -1, 0, false },
	{ "10 X", -1, 0, false },
	{ "10\tLAST", -1, 0, false },
	{ "10 LAST\t", -1, 0, false },
	{ "1 0", -1, 0, false },
	{ "18446744073709551616", -1, 0, false },
	{ "99999999999999999999 LAST", -1, 0, false },
	{ "000000000000000000001", -1, 0, false },
};

static void
test_parse_bdat(void **state)
{
	const struct bdat_case *c;
	char ctx[128], *in;
	uint64_t size;
	bool last;
	size_t i, k, len;
	int ret;

	(void)state;
	for (i = 0; i < N(bdat_cases); i++) {
		c = &bdat_cases[i];
		snprintf(ctx, sizeof(ctx), "BDAT \"%s\"", test_esc(c->in));
		len = strlen(c->in);
		in = test_dup_exact(c->in, len);
		size = 12345;
		last = true;
		ret = smtp_parse_bdat(in, &size, &last);
		check_int(ctx, "return", ret, c->ret);
		check_int(ctx, "size", (long long)(size == c->size),
		    1);
		check_int(ctx, "last", last, c->last);
		free(in);
		for (k = 0; k < len; k++) {
			in = test_dup_exact(c->in, k);
			(void)smtp_parse_bdat(in, &size, &last);
			free(in);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_command),
		cmocka_unit_test(test_command_line_max),
		cmocka_unit_test(test_parse_path),
		cmocka_unit_test(test_parse_path_limits),
		cmocka_unit_test(test_parse_mail_params),
		cmocka_unit_test(test_parse_params_lengths),
		cmocka_unit_test(test_parse_rcpt_params),
		cmocka_unit_test(test_parse_bdat),
		cmocka_unit_test(test_parse_helo),
		cmocka_unit_test(test_localpart_unquote),
		cmocka_unit_test(test_is_xtext),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
