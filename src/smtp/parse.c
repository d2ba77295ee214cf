/*
 * parse.c: pure parsers for SMTP command lines, paths (RFC 5321 4.1.2),
 * ESMTP parameters and the HELO/EHLO argument.
 *
 * Entry points: smtp_parse_command(), smtp_command_line_max(),
 * smtp_parse_path(), smtp_parse_mail_params(), smtp_parse_rcpt_params(),
 * smtp_parse_bdat(), smtp_parse_helo(), smtp_localpart_unquote(),
 * smtp_is_xtext().
 *
 * The mailbox grammar itself (Dot-string, Quoted-string, Domain, address
 * literals) is src/mailaddr's, shared with the aliases loader; this file
 * applies it to paths and adds the SMTP rules around it.
 *
 * SECURITY: every input is untrusted network text, already capped in
 * length by the session's line reader. The scanners only read up to the
 * terminating NUL (every multi-byte look-ahead stops at a NUL because NUL
 * never matches), validate completely before anything is copied, and
 * check every length against the fixed arrays of struct smtp_address and
 * the parameter structs before copying. No allocation, no global state:
 * safe to call from any thread.
 * STANDARDS: RFC 5321 4.1.1, 4.1.2, 4.1.3, 4.5.3.1; RFC 5322 3.2.3 (atext);
 * RFC 3629 (UTF-8); RFC 6531 3.3 (UTF-8 in atext, qtext and U-labels);
 * RFC 1870 (SIZE); RFC 6152 (8BITMIME); RFC 3461 4 (xtext, RET, ENVID,
 * NOTIFY, ORCPT); RFC 6533 3 (utf-8 addr-type); RFC 4954 5 (AUTH=);
 * RFC 3030 2, 3 (BDAT, BODY=BINARYMIME).
 * OWNERSHIP: results are written into caller-owned structs and buffers;
 * struct smtp_command points into the caller's line.
 */
#include "smtp/parse.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "lib/utf8.h"
#include "lib/util.h"
#include "mailaddr/mailaddr.h"

#define ENVID_MAX		100	/* RFC 3461 4.4 */
#define SIZE_DIGITS_MAX		20	/* RFC 1870: size-value 1*20DIGIT */
#define UNICODE_MAX		0x10ffff

static const struct {
	const char *verb;
	size_t len;
	enum smtp_cmd_id id;
} commands[] = {
	{ "HELO", 4, SMTP_CMD_HELO },
	{ "EHLO", 4, SMTP_CMD_EHLO },
	{ "MAIL", 4, SMTP_CMD_MAIL },
	{ "RCPT", 4, SMTP_CMD_RCPT },
	{ "DATA", 4, SMTP_CMD_DATA },
	{ "RSET", 4, SMTP_CMD_RSET },
	{ "NOOP", 4, SMTP_CMD_NOOP },
	{ "QUIT", 4, SMTP_CMD_QUIT },
	{ "VRFY", 4, SMTP_CMD_VRFY },
	{ "HELP", 4, SMTP_CMD_HELP },
	{ "EXPN", 4, SMTP_CMD_EXPN },
	{ "STARTTLS", 8, SMTP_CMD_STARTTLS },
	{ "AUTH", 4, SMTP_CMD_AUTH },
	{ "BDAT", 4, SMTP_CMD_BDAT },
};

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_hexdig_upper(unsigned char c)
{
	return is_digit(c) || (c >= 'A' && c <= 'F');
}

static bool
is_hexdig(unsigned char c)
{
	return is_hexdig_upper(c) || (c >= 'a' && c <= 'f');
}

/* RFC 3461 4: xchar, printable ASCII except "+" and "=". */
static bool
is_xchar(unsigned char c)
{
	return c >= 33 && c <= 126 && c != '+' && c != '=';
}

static unsigned char
lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

void
smtp_parse_command(const char *line, struct smtp_command *cmd)
{
	size_t i, n;

	cmd->id = SMTP_CMD_UNKNOWN;
	cmd->verb = "";
	cmd->args = "";
	for (i = 0; i < nitems(commands); i++) {
		n = commands[i].len;
		if (ascii_strncasecmp(line, commands[i].verb, n) != 0)
			continue;
		/* "NOOPX", "NOOP\tx": not NOOP. */
		if (line[n] != '\0' && line[n] != ' ')
			continue;
		cmd->id = commands[i].id;
		cmd->verb = commands[i].verb;
		cmd->args = line[n] == ' ' ? line + n + 1 : "";
		return;
	}
}

static bool
line_has_verb(const char *line, size_t len, const char *verb)
{
	size_t n = strlen(verb), i;

	if (len < n)
		return false;
	for (i = 0; i < n; i++)
		if (lower(line[i]) != lower(verb[i]))
			return false;
	return len == n || line[n] == ' ';
}

size_t
smtp_command_line_max(const char *line, size_t len)
{
	if (line_has_verb(line, len, "MAIL") ||
	    line_has_verb(line, len, "RCPT"))
		return SMTP_LINE_MAX_PARAMS;
	if (line_has_verb(line, len, "AUTH"))
		return SMTP_LINE_MAX_AUTH;
	return SMTP_LINE_MAX;
}

/* RFC 5321 A-d-l = At-domain *( "," At-domain ) ":"; returns past ':'. */
static const char *
scan_source_route(const char *p, bool *utf8)
{
	for (;;) {
		if (*p != '@')
			return NULL;
		if ((p = mailaddr_scan_domain(p + 1, MAILADDR_UTF8,
		    utf8)) == NULL)
			return NULL;
		if (*p == ':')
			return p + 1;
		if (*p != ',')
			return NULL;
		p++;
	}
}

int
smtp_parse_path(const char *s, bool is_rcpt, bool allow_null,
    bool utf8_ok, struct smtp_address *addr, const char **rest_r,
    enum reply_id *reply_r)
{
	const char *p, *lp, *lp_end, *dom, *dom_end, *end;
	size_t lp_len, dom_len, content_len;
	bool utf8 = false;
	int n;

	memset(addr, 0, sizeof(*addr));
	*rest_r = s;
	*reply_r = REPLY_NONE;
	if (s[0] != '<')
		goto bad;
	p = s + 1;

	if (*p == '>') {
		if (!allow_null)
			goto bad;
		addr->null = true;
		end = p + 1;
		goto done;
	}

	/* RFC 5321 4.1.1.3: "<Postmaster>" without a domain, RCPT only. */
	if (is_rcpt && ascii_strncasecmp(p, "postmaster>", 11) == 0) {
		memcpy(addr->localpart, p, 10);
		addr->localpart[10] = '\0';
		memcpy(addr->text, p, 10);
		addr->text[10] = '\0';
		end = p + 11;
		goto done;
	}

	/* RFC 5321 4.1.2, C: a source route MUST be accepted, and ignored. */
	if (*p == '@' && (p = scan_source_route(p, &utf8)) == NULL)
		goto bad;

	lp = p;
	if (*p == '"')
		p = mailaddr_scan_quoted_string(p, MAILADDR_UTF8, &utf8, NULL);
	else
		p = mailaddr_scan_dot_string(p, MAILADDR_UTF8, &utf8, NULL);
	if (p == NULL || *p != '@')
		goto bad;
	lp_end = p;
	dom = p + 1;
	p = mailaddr_scan_domain_or_literal(dom, MAILADDR_UTF8, &utf8);
	if (p == NULL || *p != '>')
		goto bad;
	dom_end = p;
	end = p + 1;

	/* RFC 5321 4.5.3.1.1-3: 501 for a path over the limits. */
	if ((size_t)(end - s) > SMTP_PATH_MAX)
		goto bad;
	lp_len = lp_end - lp;
	content_len = *lp == '"' ? lp_len - 2 : lp_len;
	if (content_len > SMTP_LOCALPART_MAX)
		goto bad;
	dom_len = dom_end - dom;
	if (dom_len > SMTP_DOMAIN_MAX)
		goto bad;

	/* RFC 6531 3.5: 553 5.6.7 for UTF-8 without SMTPUTF8. */
	if (utf8 && !utf8_ok) {
		*reply_r = REPLY_NEED_SMTPUTF8;
		return -1;
	}

	memcpy(addr->localpart, lp, lp_len);
	addr->localpart[lp_len] = '\0';
	memcpy(addr->domain, dom, dom_len);
	addr->domain[dom_len] = '\0';
	n = snprintf(addr->text, sizeof(addr->text), "%s@%s",
	    addr->localpart, addr->domain);
	if (n < 0 || (size_t)n >= sizeof(addr->text))
		goto bad;	/* cannot happen: the path is <= 256 */
	addr->utf8 = utf8;

done:
	if (*end != '\0' && *end != ' ')
		goto bad;
	*rest_r = end;
	return 0;

bad:
	memset(addr, 0, sizeof(*addr));
	*reply_r = is_rcpt ? REPLY_BAD_RCPT : REPLY_BAD_SENDER;
	return -1;
}

/* ESMTP parameters. */

struct param {
	const char *kw;		/* keyword as written */
	size_t kw_len;
	const char *val;	/* NULL when there is no "=" */
	size_t val_len;
};

/*
 * Next space-separated parameter of *sp. Returns 1 and fills prm, or 0
 * at the end. Runs of spaces are tolerated (aiosmtpd and Postfix accept
 * "MAIL FROM:<a@b>  SIZE=1 "); RFC 5321 has exactly one SP.
 */
static int
param_next(const char **sp, struct param *prm)
{
	const char *p = *sp, *eq;

	while (*p == ' ')
		p++;
	if (*p == '\0') {
		*sp = p;
		return 0;
	}
	prm->kw = p;
	while (*p != '\0' && *p != ' ')
		p++;
	eq = memchr(prm->kw, '=', p - prm->kw);
	if (eq == NULL) {
		prm->kw_len = p - prm->kw;
		prm->val = NULL;
		prm->val_len = 0;
	} else {
		prm->kw_len = eq - prm->kw;
		prm->val = eq + 1;
		prm->val_len = p - prm->val;
	}
	*sp = p;
	return 1;
}

/* RFC 5321 esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"). */
static bool
param_keyword_ok(const struct param *prm)
{
	size_t i;

	if (prm->kw_len == 0 || !mailaddr_is_letdig(prm->kw[0]))
		return false;
	for (i = 1; i < prm->kw_len; i++)
		if (!mailaddr_is_letdig(prm->kw[i]) && prm->kw[i] != '-')
			return false;
	return true;
}

/*
 * RFC 5321 esmtp-value = 1*(%d33-60 / %d62-126), =/ UTF8-non-ascii
 * (RFC 6531 3.3). Checked for every parameter, known or not, so that a
 * malformed value is a syntax error whatever the keyword.
 */
static bool
param_value_ok(const struct param *prm)
{
	size_t i, n;
	unsigned char c;

	if (prm->val == NULL)
		return true;
	if (prm->val_len == 0)
		return false;
	for (i = 0; i < prm->val_len; i += n) {
		c = prm->val[i];
		n = 1;
		if (c >= 33 && c <= 126 && c != '=')
			continue;
		n = utf8_seq_len(prm->val + i);
		if (n == 0 || i + n > prm->val_len)
			return false;
	}
	return true;
}

static bool
param_is(const struct param *prm, const char *name)
{
	return strlen(name) == prm->kw_len &&
	    ascii_strncasecmp(prm->kw, name, prm->kw_len) == 0;
}

static bool
value_is(const struct param *prm, const char *word)
{
	return prm->val != NULL && strlen(word) == prm->val_len &&
	    ascii_strncasecmp(prm->val, word, prm->val_len) == 0;
}

/* Copy a keyword for a reply: truncated, only esmtp-keyword octets. */
static void
param_set_bad(char *bad, size_t badsize, const char *kw, size_t kw_len)
{
	size_t i;

	if (badsize == 0)
		return;
	for (i = 0; i < kw_len && i < badsize - 1; i++)
		bad[i] = (mailaddr_is_letdig(kw[i]) || kw[i] == '-') ?
		    kw[i] : '?';
	bad[i] = '\0';
}

static unsigned int
hexval(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	return lower(c) - 'a' + 10;
}

/*
 * RFC 3461 4.2, 4.4: the decoded ENVID and ORCPT address "MUST consist
 * entirely of printable (graphic and white space) characters from the
 * US-ASCII repertoire". Both end up in bounce headers (RFC 3464
 * Original-Envelope-Id, Original-Recipient), so a CR or LF there would
 * inject a line: refused.
 */
static bool
is_printable_ascii(unsigned long c)
{
	return c == '\t' || (c >= 0x20 && c <= 0x7e);
}

/*
 * xtext of an exact length (RFC 3461 4): xchar / "+" 2HEXDIG (upper).
 * With printable, a "+XX" must also decode to printable US-ASCII.
 */
static bool
xtext_check(const char *s, size_t len, bool printable)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] == '+') {
			if (len - i < 3 || !is_hexdig_upper(s[i + 1]) ||
			    !is_hexdig_upper(s[i + 2]))
				return false;
			if (printable && !is_printable_ascii(
			    hexval(s[i + 1]) * 16 + hexval(s[i + 2])))
				return false;
			i += 2;
		} else if (!is_xchar(s[i]))
			return false;
	}
	return true;
}

static bool
xtext_ok(const char *s, size_t len)
{
	return xtext_check(s, len, false);
}

bool
smtp_is_xtext(const char *s)
{
	return xtext_ok(s, strlen(s));
}

/*
 * RFC 6533 3: utf-8-addr-xtext / utf-8-addr-unitext, QCHAR (printable
 * ASCII except "+", "=" and "\"), UTF-8, and EmbeddedUnicodeChar
 * "\x{" HEXPOINT "}". HEXPOINT is checked as 1 to 6 hex digits naming
 * a Unicode scalar value that is not a control character (C0, DEL, C1):
 * like a "+XX" in rfc822 xtext, it must not decode to a CR or LF (RFC
 * 6533's HEXPOINT grammar excludes them too; this is its intent without
 * its exact digit patterns).
 */
static bool
utf8_addr_xtext_ok(const char *s, size_t len)
{
	size_t i, j, n;
	unsigned long cp;
	unsigned char c;

	for (i = 0; i < len; i += n) {
		c = s[i];
		n = 1;
		if (c == '\\') {
			if (len - i < 5 || s[i + 1] != 'x' || s[i + 2] != '{')
				return false;
			cp = 0;
			for (j = i + 3; j < len && is_hexdig(s[j]); j++)
				cp = cp * 16 + hexval(s[j]);
			if (j == i + 3 || j - (i + 3) > 6 || j >= len ||
			    s[j] != '}')
				return false;
			if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ||
			    (cp >= 0xd800 && cp <= 0xdfff) || cp > UNICODE_MAX)
				return false;
			n = j + 1 - i;
		} else if (c >= 33 && c <= 126 && c != '+' && c != '=')
			continue;
		else if ((n = utf8_seq_len(s + i)) == 0 || i + n > len)
			return false;
	}
	return true;
}

static bool
size_value_ok(const struct param *prm, uint64_t *size_r)
{
	char digits[SIZE_DIGITS_MAX + 1];
	const char *err;
	size_t i;

	if (prm->val == NULL || prm->val_len > SIZE_DIGITS_MAX)
		return false;
	for (i = 0; i < prm->val_len; i++)
		if (!is_digit(prm->val[i]))
			return false;
	memcpy(digits, prm->val, prm->val_len);
	digits[prm->val_len] = '\0';
	return parse_u64(digits, 0, UINT64_MAX, size_r, &err) == 0;
}

static bool
copy_value(const struct param *prm, char *dst, size_t dstsize)
{
	if (prm->val == NULL || prm->val_len >= dstsize)
		return false;
	memcpy(dst, prm->val, prm->val_len);
	dst[prm->val_len] = '\0';
	return true;
}

enum mail_kw {
	MAIL_BODY,
	MAIL_SIZE,
	MAIL_SMTPUTF8,
	MAIL_RET,
	MAIL_ENVID,
	MAIL_AUTH,
	MAIL_KW_MAX
};

static const char *const mail_keywords[MAIL_KW_MAX] = {
	[MAIL_BODY] = "BODY",
	[MAIL_SIZE] = "SIZE",
	[MAIL_SMTPUTF8] = "SMTPUTF8",
	[MAIL_RET] = "RET",
	[MAIL_ENVID] = "ENVID",
	[MAIL_AUTH] = "AUTH",
};

/* Validate and store one known MAIL parameter; false if the value is bad. */
static bool
mail_param_set(enum mail_kw kw, const struct param *prm,
    struct smtp_mail_params *p)
{
	switch (kw) {
	case MAIL_BODY:
		/* RFC 3030 3: BINARYMIME goes with CHUNKING, which is
		 * offered; the session refuses DATA for it. */
		if (value_is(prm, "7BIT"))
			p->body = SMTP_BODY_7BIT;
		else if (value_is(prm, "8BITMIME"))
			p->body = SMTP_BODY_8BITMIME;
		else if (value_is(prm, "BINARYMIME"))
			p->body = SMTP_BODY_BINARYMIME;
		else
			return false;
		return true;
	case MAIL_SIZE:
		p->has_size = true;
		return size_value_ok(prm, &p->size);
	case MAIL_SMTPUTF8:
		p->smtputf8 = true;
		return prm->val == NULL;
	case MAIL_RET:
		if (value_is(prm, "FULL"))
			p->ret = SMTP_RET_FULL;
		else if (value_is(prm, "HDRS"))
			p->ret = SMTP_RET_HDRS;
		else
			return false;
		return true;
	case MAIL_ENVID:
		return prm->val != NULL && prm->val_len <= ENVID_MAX &&
		    xtext_check(prm->val, prm->val_len, true) &&
		    copy_value(prm, p->envid, sizeof(p->envid));
	case MAIL_AUTH:
		/* RFC 4954 5: "AUTH=" (xtext / "<>"). */
		if (prm->val != NULL && prm->val_len == 2 &&
		    memcmp(prm->val, "<>", 2) == 0)
			return copy_value(prm, p->auth, sizeof(p->auth));
		return prm->val != NULL && xtext_ok(prm->val, prm->val_len) &&
		    copy_value(prm, p->auth, sizeof(p->auth));
	case MAIL_KW_MAX:
		break;
	}
	return false;
}

enum rcpt_kw {
	RCPT_NOTIFY,
	RCPT_ORCPT,
	RCPT_KW_MAX
};

static const char *const rcpt_keywords[RCPT_KW_MAX] = {
	[RCPT_NOTIFY] = "NOTIFY",
	[RCPT_ORCPT] = "ORCPT",
};

/* RFC 3461 4.1: "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ). */
static bool
notify_value_ok(const struct param *prm, unsigned int *notify_r)
{
	static const struct {
		const char *name;
		unsigned int bit;
	} words[] = {
		{ "NEVER", SMTP_NOTIFY_NEVER },
		{ "SUCCESS", SMTP_NOTIFY_SUCCESS },
		{ "FAILURE", SMTP_NOTIFY_FAILURE },
		{ "DELAY", SMTP_NOTIFY_DELAY },
	};
	const char *p, *end, *comma;
	unsigned int bits = 0;
	size_t i, n;

	if (prm->val == NULL)
		return false;
	p = prm->val;
	end = prm->val + prm->val_len;
	for (;;) {
		comma = memchr(p, ',', end - p);
		n = (comma != NULL ? comma : end) - p;
		for (i = 0; i < nitems(words); i++)
			if (strlen(words[i].name) == n &&
			    ascii_strncasecmp(p, words[i].name, n) == 0)
				break;
		if (i == nitems(words) || (bits & words[i].bit) != 0)
			return false;
		bits |= words[i].bit;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	/* NEVER stands alone. */
	if ((bits & SMTP_NOTIFY_NEVER) != 0 && bits != SMTP_NOTIFY_NEVER)
		return false;
	*notify_r = bits;
	return true;
}

/* RFC 3461 4.2: "ORCPT=" addr-type ";" xtext, addr-type an atom. */
static bool
orcpt_value_ok(const struct param *prm)
{
	const char *semi;
	size_t type_len, i;

	if (prm->val == NULL)
		return false;
	semi = memchr(prm->val, ';', prm->val_len);
	if (semi == NULL || semi == prm->val)
		return false;
	type_len = semi - prm->val;
	for (i = 0; i < type_len; i++)
		if (!mailaddr_is_atext(prm->val[i]))
			return false;
	/* An empty original address is useless; refuse it. */
	if (prm->val_len - type_len - 1 == 0)
		return false;
	if (type_len == 5 && ascii_strncasecmp(prm->val, "utf-8", 5) == 0)
		return utf8_addr_xtext_ok(semi + 1,
		    prm->val_len - type_len - 1);
	return xtext_check(semi + 1, prm->val_len - type_len - 1, true);
}

static bool
rcpt_param_set(enum rcpt_kw kw, const struct param *prm,
    struct smtp_rcpt_params *p)
{
	switch (kw) {
	case RCPT_NOTIFY:
		return notify_value_ok(prm, &p->notify);
	case RCPT_ORCPT:
		return orcpt_value_ok(prm) &&
		    copy_value(prm, p->orcpt, sizeof(p->orcpt));
	case RCPT_KW_MAX:
		break;
	}
	return false;
}

/*
 * The loop both parameter parsers share: split, check the keyword syntax,
 * find it in keywords[], refuse repeats, and hand the value to set().
 */
static int
params_parse(const char *s, const char *const *keywords, size_t nkeywords,
    bool (*set)(size_t, const struct param *, void *), void *ctx,
    enum reply_id *reply_r, char *bad, size_t badsize)
{
	struct param prm;
	unsigned int seen = 0;
	size_t i;

	*reply_r = REPLY_NONE;
	if (badsize > 0)
		bad[0] = '\0';
	while (param_next(&s, &prm) == 1) {
		if (!param_keyword_ok(&prm) || !param_value_ok(&prm)) {
			param_set_bad(bad, badsize, prm.kw, prm.kw_len);
			*reply_r = REPLY_PARAM_SYNTAX;
			return -1;
		}
		for (i = 0; i < nkeywords; i++)
			if (param_is(&prm, keywords[i]))
				break;
		if (i == nkeywords) {
			param_set_bad(bad, badsize, prm.kw, prm.kw_len);
			*reply_r = REPLY_PARAM_UNKNOWN;
			return -1;
		}
		if ((seen & (1u << i)) != 0 || !set(i, &prm, ctx)) {
			param_set_bad(bad, badsize, keywords[i],
			    strlen(keywords[i]));
			*reply_r = REPLY_PARAM_SYNTAX;
			return -1;
		}
		seen |= 1u << i;
	}
	return 0;
}

static bool
mail_param_cb(size_t kw, const struct param *prm, void *ctx)
{
	return mail_param_set((enum mail_kw)kw, prm, ctx);
}

static bool
rcpt_param_cb(size_t kw, const struct param *prm, void *ctx)
{
	return rcpt_param_set((enum rcpt_kw)kw, prm, ctx);
}

int
smtp_parse_mail_params(const char *s, struct smtp_mail_params *p,
    enum reply_id *reply_r, char *bad, size_t badsize)
{
	memset(p, 0, sizeof(*p));
	return params_parse(s, mail_keywords, MAIL_KW_MAX, mail_param_cb, p,
	    reply_r, bad, badsize);
}

int
smtp_parse_rcpt_params(const char *s, struct smtp_rcpt_params *p,
    enum reply_id *reply_r, char *bad, size_t badsize)
{
	memset(p, 0, sizeof(*p));
	return params_parse(s, rcpt_keywords, RCPT_KW_MAX, rcpt_param_cb, p,
	    reply_r, bad, badsize);
}

int
smtp_parse_bdat(const char *s, uint64_t *size_r, bool *last_r)
{
	char digits[SIZE_DIGITS_MAX + 1];
	const char *p = s, *err;
	uint64_t size;
	bool last = false;
	size_t n;

	*size_r = 0;
	*last_r = false;
	while (*p == ' ')
		p++;
	for (n = 0; is_digit(p[n]); n++)
		if (n == SIZE_DIGITS_MAX)
			return -1;
	if (n == 0)
		return -1;
	memcpy(digits, p, n);
	digits[n] = '\0';
	p += n;
	if (*p != '\0' && *p != ' ')
		return -1;
	while (*p == ' ')
		p++;
	if (ascii_strncasecmp(p, "LAST", 4) == 0 &&
	    (p[4] == '\0' || p[4] == ' ')) {
		last = true;
		p += 4;
		while (*p == ' ')
			p++;
	}
	if (*p != '\0' ||
	    parse_u64(digits, 0, UINT64_MAX, &size, &err) == -1)
		return -1;
	*size_r = size;
	*last_r = last;
	return 0;
}

bool
smtp_parse_helo(const char *s)
{
	char tmp[INET6_ADDRSTRLEN];
	struct in6_addr a6;
	const char *end;
	size_t len;

	len = strlen(s);
	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return false;
	end = mailaddr_scan_domain_or_literal(s,
	    MAILADDR_UTF8 | MAILADDR_UNDERSCORE, NULL);
	if (end != NULL && *end == '\0')
		return true;
	/*
	 * A bare IPv6 address, as some clients send (a bare IPv4 address
	 * already is a syntactically valid domain). Postfix accepts both.
	 */
	if (len >= sizeof(tmp) || strchr(s, ':') == NULL)
		return false;
	memcpy(tmp, s, len + 1);
	return inet_pton(AF_INET6, tmp, &a6) == 1;
}

int
smtp_localpart_unquote(const char *localpart, char *out, size_t outsize)
{
	if (mailaddr_localpart_unquote(localpart, strlen(localpart), out,
	    outsize) == -1)
		return -1;
	ascii_lowercase(out);
	return 0;
}
