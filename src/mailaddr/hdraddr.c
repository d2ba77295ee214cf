/*
 * hdraddr.c: the RFC 5322 address-list of a header field value, reduced to
 * the addr-specs it names.
 *
 * Entry points: mailaddr_header_parse(), mailaddr_header_addresses(),
 * mailaddr_addr_split().
 *
 * A lexer turns the value into tokens (atom, quoted-string, domain
 * literal, one of the specials "<>@,;:.") and skips CFWS between them; a
 * recursive-descent parser over one token of look-ahead builds each
 * addr-spec into a fixed buffer. The value is parsed twice: once to check
 * it all, then again to report, so the callback never sees an address of
 * a value that turns out bad (a caller deciding on the first addresses
 * could otherwise be fooled by a header that other software reads
 * differently). Each pass reads every octet a bounded number of times;
 * comments nest by a counter, not by recursion, and the parser recurses
 * at most twice (list -> group -> mailbox). MAILADDR_HDR_STRICT adds a
 * few refusals on top (hdraddr.h), nothing it accepts is read differently
 * without it.
 *
 * SECURITY: parses untrusted client text (a submitted message's headers)
 * for an anti-spoofing check, with the daemon's privilege. Every read is
 * bounded by the value's end (UTF-8 look-ahead goes through a small
 * NUL-padded copy); the only write is to the fixed output buffer, checked
 * before each octet. Forms that readers disagree on are refused: see
 * hdraddr.h.
 * STANDARDS: RFC 5322 3.2.1 (quoted-pair), 3.2.2 (FWS, comments), 3.2.3
 * (atom), 3.2.4 (quoted-string), 3.2.5 (phrase), 3.4 (address-list), 3.4.1
 * (addr-spec), 4.2 (obs-FWS), 4.4 (obs-phrase, obs-route, obs-mbox-list,
 * obs-local-part, obs-domain); RFC 6532 3.2 (UTF-8 in atext, qtext,
 * ctext, dtext, VCHAR); RFC 6854 (groups in From:).
 * OWNERSHIP: nothing is allocated; the address given to the callback lives
 * on this function's stack for the duration of the call.
 */
#include "mailaddr/hdraddr.h"

#include <string.h>

#include "lib/log.h"
#include "lib/utf8.h"
#include "mailaddr/mailaddr.h"

enum hdr_tok_type {
	HDR_TOK_NONE,		/* no look-ahead yet */
	HDR_TOK_END,
	HDR_TOK_ATOM,
	HDR_TOK_QUOTED,		/* quoted-string, quotes included */
	HDR_TOK_LITERAL,	/* domain literal, brackets included */
	HDR_TOK_SPECIAL,	/* one of "<>@,;:." in c */
};

struct hdr_tok {
	enum hdr_tok_type type;
	char c;
	bool cfws_before;	/* CFWS between the previous token and this */
	const char *start, *end;
};

struct hdr_parser {
	const char *p, *end;
	struct hdr_tok tok;
	const char *error;
	unsigned int flags;
	mailaddr_hdr_cb cb;
	void *arg;
	bool stopped;
	int count;
	/* The addr-spec being built. */
	char out[MAILADDR_HDR_ADDR_MAX + 1];
	size_t olen;
	bool overflow;
	bool discard;		/* in an obs-route: drop what is built */
};

/* What parse_words() saw: a local part, a display name, or neither. */
struct hdr_words {
	int nwords;
	int ndots;
	bool quoted;		/* a quoted-string among the words */
	bool adjacent;		/* two words with no '.' between them */
	bool double_dot;	/* two '.' with no word between them */
	bool last_word;		/* the last token was a word */
	bool cfws_dot;		/* CFWS before or after a '.' */
};

static int
hdr_fail(struct hdr_parser *hp, const char *error)
{
	if (hp->error == NULL)
		hp->error = error;
	return -1;
}

/*
 * Length of the well-formed UTF8-non-ascii sequence at p, or 0. The copy
 * keeps utf8_seq_len() from reading past end: it stops at the padding NUL.
 */
static size_t
hdr_utf8_at(const char *p, const char *end)
{
	char tmp[5] = { 0 };
	size_t n = (size_t)(end - p);

	memcpy(tmp, p, n < 4 ? n : 4);
	return utf8_seq_len(tmp);
}

/*
 * Length of the line break of a fold at p: CRLF or a bare LF (a value
 * whose CRs were removed) followed by WSP, or at the very end of the value
 * (the caller kept the header line's own CRLF). 0 otherwise: a CR without
 * LF, or a line break followed by anything else, would let other readers
 * see a new header line.
 */
static size_t
hdr_break_at(const char *p, const char *end)
{
	const char *q = p;

	if (*q == '\r') {
		if (end - q < 2 || q[1] != '\n')
			return 0;
		q += 2;
	} else if (*q == '\n')
		q++;
	else
		return 0;
	if (q == end || *q == ' ' || *q == '\t')
		return (size_t)(q - p);
	return 0;
}

/* Length of the FWS piece at p (one WSP, or a fold's line break), or 0. */
static size_t
hdr_fws_at(const char *p, const char *end)
{
	if (*p == ' ' || *p == '\t')
		return 1;
	return hdr_break_at(p, end);
}

/*
 * RFC 5322 3.2.1 quoted-pair = "\" (VCHAR / WSP), VCHAR with UTF-8 by RFC
 * 6532 3.2. Length at p (which is '\'), or 0: obs-qp (a quoted NUL,
 * control, CR or LF) is refused.
 */
static size_t
hdr_qpair_at(const char *p, const char *end)
{
	unsigned char c;
	size_t n;

	if (end - p < 2)
		return 0;
	c = (unsigned char)p[1];
	if ((c >= 0x21 && c <= 0x7e) || c == ' ' || c == '\t')
		return 2;
	if (c >= 0x80 && (n = hdr_utf8_at(p + 1, end)) > 0)
		return n + 1;
	return 0;
}

/* The error for an octet at p that no rule takes. */
static int
hdr_fail_octet(struct hdr_parser *hp, const char *p)
{
	unsigned char c = (unsigned char)*p;

	if (c == '\0')
		return hdr_fail(hp, "NUL octet");
	if (c == '\r' || c == '\n')
		return hdr_fail(hp, "CR or LF not followed by white space");
	if (c < 0x20 || c == 0x7f)
		return hdr_fail(hp, "control character");
	if (c >= 0x80)
		return hdr_fail(hp, "ill-formed UTF-8");
	return hdr_fail(hp, "unexpected character");
}

/* What a naive reader takes for an address, even inside a comment. */
static bool
hdr_is_addr_char(char c)
{
	return c == '@' || c == '<' || c == '>';
}

/*
 * RFC 5322 3.2.2 comment, hp->p at its '('. Nesting is a counter, so a
 * deep comment costs no stack.
 */
static int
hdr_skip_comment(struct hdr_parser *hp)
{
	int depth = 0;
	unsigned char c;
	size_t n;

	while (hp->p < hp->end) {
		c = (unsigned char)*hp->p;
		if ((hp->flags & MAILADDR_HDR_STRICT) != 0 &&
		    (hdr_is_addr_char(c) || (c == '\\' &&
		    hp->end - hp->p >= 2 && hdr_is_addr_char(hp->p[1]))))
			return hdr_fail(hp, "'@', '<' or '>' in a comment");
		if (c == '(') {
			if (++depth > MAILADDR_HDR_COMMENT_DEPTH)
				return hdr_fail(hp, "comments nested too deep");
			hp->p++;
		} else if (c == ')') {
			hp->p++;
			if (--depth == 0)
				return 0;
		} else if (c == '\\') {
			if ((n = hdr_qpair_at(hp->p, hp->end)) == 0)
				return hdr_fail(hp, "bad quoted pair");
			hp->p += n;
		} else if (c >= 0x21 && c <= 0x7e)	/* ctext */
			hp->p++;
		else if ((n = hdr_fws_at(hp->p, hp->end)) > 0)
			hp->p += n;
		else if (c >= 0x80 && (n = hdr_utf8_at(hp->p, hp->end)) > 0)
			hp->p += n;
		else
			return hdr_fail_octet(hp, hp->p);
	}
	return hdr_fail(hp, "unbalanced parenthesis");
}

static int
hdr_skip_cfws(struct hdr_parser *hp)
{
	size_t n;

	while (hp->p < hp->end) {
		if ((n = hdr_fws_at(hp->p, hp->end)) > 0)
			hp->p += n;
		else if (*hp->p == '(') {
			if (hdr_skip_comment(hp) == -1)
				return -1;
		} else
			break;
	}
	return 0;
}

/*
 * RFC 5322 3.2.4 quoted-string, hp->p at its '"'. Folds inside are
 * allowed (their WSP is content); obs-qtext (controls) is not.
 */
static int
hdr_lex_quoted(struct hdr_parser *hp)
{
	unsigned char c;
	size_t n;

	hp->p++;
	while (hp->p < hp->end) {
		c = (unsigned char)*hp->p;
		if (c == '"') {
			hp->p++;
			hp->tok.type = HDR_TOK_QUOTED;
			return 0;
		}
		if (c == '\\') {
			if ((n = hdr_qpair_at(hp->p, hp->end)) == 0)
				return hdr_fail(hp, "bad quoted pair");
			hp->p += n;
		} else if (c == 33 || (c >= 35 && c <= 91) ||
		    (c >= 93 && c <= 126))	/* qtext */
			hp->p++;
		else if ((n = hdr_fws_at(hp->p, hp->end)) > 0)
			hp->p += n;
		else if (c >= 0x80 && (n = hdr_utf8_at(hp->p, hp->end)) > 0)
			hp->p += n;
		else
			return hdr_fail_octet(hp, hp->p);
	}
	return hdr_fail(hp, "unbalanced quote");
}

/*
 * RFC 5322 3.4.1 domain-literal, hp->p at its '['. White space is allowed
 * only next to the brackets: RFC 5322 would take "[1.2 3.4]" and drop the
 * space, making it "[1.23.4]", which is not what the sender showed.
 * obs-dtext (quoted pairs, controls) is refused.
 */
static int
hdr_lex_literal(struct hdr_parser *hp)
{
	bool content = false;
	unsigned char c;
	size_t n;

	hp->p++;
	while (hp->p < hp->end) {
		c = (unsigned char)*hp->p;
		if (c == ']') {
			if (!content)
				return hdr_fail(hp, "empty domain literal");
			hp->p++;
			hp->tok.type = HDR_TOK_LITERAL;
			return 0;
		}
		if (hdr_fws_at(hp->p, hp->end) > 0) {
			while (hp->p < hp->end &&
			    (n = hdr_fws_at(hp->p, hp->end)) > 0)
				hp->p += n;
			if (content && hp->p < hp->end && *hp->p != ']')
				return hdr_fail(hp,
				    "white space inside a domain literal");
		} else if ((c >= 33 && c <= 90) || (c >= 94 && c <= 126)) {
			content = true;		/* dtext */
			hp->p++;
		} else if (c == '\\')
			return hdr_fail(hp, "quoted pair in a domain literal");
		else if (c == '[')
			return hdr_fail(hp, "'[' inside a domain literal");
		else if (c >= 0x80 && (n = hdr_utf8_at(hp->p, hp->end)) > 0) {
			content = true;
			hp->p += n;
		} else
			return hdr_fail_octet(hp, hp->p);
	}
	return hdr_fail(hp, "unbalanced bracket");
}

/* RFC 5322 3.2.3 atom (its atext, with UTF-8), hp->p at its first octet. */
static int
hdr_lex_atom(struct hdr_parser *hp)
{
	const char *start = hp->p;
	size_t n;

	while (hp->p < hp->end) {
		if (mailaddr_is_atext((unsigned char)*hp->p))
			hp->p++;
		else if ((unsigned char)*hp->p >= 0x80 &&
		    (n = hdr_utf8_at(hp->p, hp->end)) > 0)
			hp->p += n;
		else
			break;
	}
	if (hp->p == start)
		return hdr_fail_octet(hp, hp->p);
	hp->tok.type = HDR_TOK_ATOM;
	return 0;
}

/* The next token into hp->tok, CFWS before it skipped. */
static int
hdr_lex(struct hdr_parser *hp)
{
	const char *before = hp->p;
	unsigned char c;
	int r;

	if (hdr_skip_cfws(hp) == -1)
		return -1;
	hp->tok.cfws_before = hp->p != before;
	hp->tok.start = hp->p;
	if (hp->p == hp->end) {
		hp->tok.type = HDR_TOK_END;
		hp->tok.end = hp->p;
		return 0;
	}
	c = (unsigned char)*hp->p;
	if (c == '"')
		r = hdr_lex_quoted(hp);
	else if (c == '[')
		r = hdr_lex_literal(hp);
	else if (c != '\0' && strchr("<>@,;:.", c) != NULL) {
		hp->tok.type = HDR_TOK_SPECIAL;
		hp->tok.c = (char)c;
		hp->p++;
		r = 0;
	} else if (c == ')')
		r = hdr_fail(hp, "unbalanced parenthesis");
	else if (c == ']')
		r = hdr_fail(hp, "unbalanced bracket");
	else if (c == '\\')
		r = hdr_fail(hp, "quoted pair outside quotes and comments");
	else
		r = hdr_lex_atom(hp);
	hp->tok.end = hp->p;
	return r;
}

/* The look-ahead token, read if needed; NULL on a lexical error. */
static const struct hdr_tok *
hdr_peek(struct hdr_parser *hp)
{
	if (hp->tok.type == HDR_TOK_NONE && hdr_lex(hp) == -1)
		return NULL;
	return &hp->tok;
}

static void
hdr_consume(struct hdr_parser *hp)
{
	hp->tok.type = HDR_TOK_NONE;
}

static bool
hdr_is(const struct hdr_tok *t, char c)
{
	return t->type == HDR_TOK_SPECIAL && t->c == c;
}

static void
hdr_out_reset(struct hdr_parser *hp)
{
	hp->olen = 0;
	hp->overflow = false;
}

static void
hdr_out_char(struct hdr_parser *hp, char c)
{
	if (hp->discard)
		return;
	if (hp->olen >= MAILADDR_HDR_ADDR_MAX) {
		hp->overflow = true;
		return;
	}
	hp->out[hp->olen++] = c;
}

/*
 * Append a token as the addr-spec shows it: without the CR and LF of
 * folds (inside a quoted string their WSP stays, RFC 5322 3.2.4), and for
 * a domain literal without its white space too (only next to the brackets,
 * which are kept).
 */
static void
hdr_out_token(struct hdr_parser *hp, const struct hdr_tok *t)
{
	const char *s;

	for (s = t->start; s < t->end; s++) {
		if (*s == '\r' || *s == '\n')
			continue;
		if (t->type == HDR_TOK_LITERAL && (*s == ' ' || *s == '\t'))
			continue;
		hdr_out_char(hp, *s);
	}
}

/*
 * A run of words and dots: a local part (RFC 5322 3.4.1, obs-local-part
 * 4.4) or a display name (3.2.5 phrase, obs-phrase 4.4). Which one it is
 * depends on the token after it, so the words are appended to the
 * addr-spec as if a local part, and w says whether they can be one.
 */
static int
hdr_parse_words(struct hdr_parser *hp, struct hdr_words *w)
{
	const struct hdr_tok *t;

	memset(w, 0, sizeof(*w));
	for (;;) {
		if ((t = hdr_peek(hp)) == NULL)
			return -1;
		if (t->type == HDR_TOK_ATOM || t->type == HDR_TOK_QUOTED) {
			if (w->last_word)
				w->adjacent = true;
			else if (w->nwords > 0 && t->cfws_before)
				w->cfws_dot = true;
			if (t->type == HDR_TOK_QUOTED)
				w->quoted = true;
			w->nwords++;
			w->last_word = true;
			hdr_out_token(hp, t);
		} else if (hdr_is(t, '.')) {
			/* obs-phrase = word *(word / "." / CFWS) */
			if (w->nwords == 0)
				return hdr_fail(hp,
				    "'.' before the first word");
			if (!w->last_word)
				w->double_dot = true;
			if (t->cfws_before)
				w->cfws_dot = true;
			w->ndots++;
			w->last_word = false;
			hdr_out_char(hp, '.');
		} else
			return 0;
		hdr_consume(hp);
	}
}

/*
 * Whether w is a local part we accept: dot-atom (with CFWS around the
 * dots, obs-local-part) or one quoted-string. RFC 5322 4.4 also allows
 * words mixing both ("\"a\".b"); we refuse that: the unquoted mailbox
 * name is not what most software would compute from it.
 */
static int
hdr_check_local(struct hdr_parser *hp, const struct hdr_words *w)
{
	if (w->nwords == 0)
		return hdr_fail(hp, "missing local part");
	if (w->adjacent)
		return hdr_fail(hp, "words before '@' that are not a local "
		    "part (unquoted '@' in a display name?)");
	if (w->double_dot)
		return hdr_fail(hp, "empty atom in a local part");
	if (!w->last_word)
		return hdr_fail(hp, "local part ends with '.'");
	if (w->quoted && (w->nwords > 1 || w->ndots > 0))
		return hdr_fail(hp, "local part mixes quoted strings and dots");
	if ((hp->flags & MAILADDR_HDR_STRICT) != 0 && w->cfws_dot)
		return hdr_fail(hp,
		    "white space or comment around '.' in a local part");
	return 0;
}

/*
 * RFC 5322 3.4.1 domain = dot-atom / domain-literal / obs-domain (CFWS
 * around the dots).
 */
static int
hdr_parse_domain(struct hdr_parser *hp)
{
	const struct hdr_tok *t;
	bool cfws;

	if ((t = hdr_peek(hp)) == NULL)
		return -1;
	if (t->type == HDR_TOK_LITERAL) {
		hdr_out_token(hp, t);
		hdr_consume(hp);
		return 0;
	}
	if (t->type != HDR_TOK_ATOM)
		return hdr_fail(hp, "missing domain after '@'");
	for (;;) {
		hdr_out_token(hp, t);
		hdr_consume(hp);
		if ((t = hdr_peek(hp)) == NULL)
			return -1;
		if (!hdr_is(t, '.'))
			return 0;
		cfws = t->cfws_before;
		hdr_consume(hp);
		hdr_out_char(hp, '.');
		if ((t = hdr_peek(hp)) == NULL)
			return -1;
		if (t->type != HDR_TOK_ATOM)
			return hdr_fail(hp, "empty label in a domain");
		if ((hp->flags & MAILADDR_HDR_STRICT) != 0 &&
		    (cfws || t->cfws_before))
			return hdr_fail(hp,
			    "white space or comment around '.' in a domain");
	}
}

/* '@' domain after a checked local part: the rest of an addr-spec. */
static int
hdr_parse_at_domain(struct hdr_parser *hp)
{
	const struct hdr_tok *t;

	if ((t = hdr_peek(hp)) == NULL)
		return -1;
	if (!hdr_is(t, '@'))
		return hdr_fail(hp, "missing '@'");
	hdr_consume(hp);
	hdr_out_char(hp, '@');
	return hdr_parse_domain(hp);
}

/*
 * RFC 5322 4.4 obs-route = obs-domain-list ":", obs-domain-list =
 * *(CFWS / ",") "@" domain *("," [CFWS] ["@" domain]). Checked, then
 * dropped: the mailbox is the addr-spec after it.
 */
static int
hdr_parse_route(struct hdr_parser *hp)
{
	const struct hdr_tok *t;

	if ((hp->flags & MAILADDR_HDR_STRICT) != 0)
		return hdr_fail(hp, "route in angle address");
	hp->discard = true;
	while ((t = hdr_peek(hp)) != NULL && hdr_is(t, ','))
		hdr_consume(hp);
	if (t == NULL)
		return -1;
	if (!hdr_is(t, '@'))
		return hdr_fail(hp, "bad route in angle address");
	hdr_consume(hp);
	if (hdr_parse_domain(hp) == -1)
		return -1;
	for (;;) {
		if ((t = hdr_peek(hp)) == NULL)
			return -1;
		if (hdr_is(t, ':'))
			break;
		if (!hdr_is(t, ','))
			return hdr_fail(hp, "bad route in angle address");
		hdr_consume(hp);
		if ((t = hdr_peek(hp)) == NULL)
			return -1;
		if (hdr_is(t, '@')) {
			hdr_consume(hp);
			if (hdr_parse_domain(hp) == -1)
				return -1;
		}
	}
	hdr_consume(hp);
	hp->discard = false;
	return 0;
}

/* One addr-spec found: count it and report it on the second pass. */
static int
hdr_emit(struct hdr_parser *hp)
{
	if (hp->overflow)
		return hdr_fail(hp, "address too long");
	if (++hp->count > MAILADDR_HDR_ADDRS_MAX)
		return hdr_fail(hp, "too many addresses");
	hp->out[hp->olen] = '\0';
	if (hp->cb != NULL && hp->cb(hp->arg, hp->out, hp->olen) != 0) {
		hp->stopped = true;
		return -1;
	}
	return 0;
}

/*
 * RFC 5322 3.4 angle-addr = "<" addr-spec ">" / obs-angle-addr, after the
 * '<'. "<>" is SMTP's null path, not a header address.
 */
static int
hdr_parse_angle(struct hdr_parser *hp)
{
	const struct hdr_tok *t;
	struct hdr_words w;

	hdr_out_reset(hp);	/* drop the display name */
	if ((t = hdr_peek(hp)) == NULL)
		return -1;
	if (hdr_is(t, '>'))
		return hdr_fail(hp, "empty angle address");
	if ((hdr_is(t, '@') || hdr_is(t, ',')) && hdr_parse_route(hp) == -1)
		return -1;
	if (hdr_parse_words(hp, &w) == -1 || hdr_check_local(hp, &w) == -1 ||
	    hdr_parse_at_domain(hp) == -1)
		return -1;
	if ((t = hdr_peek(hp)) == NULL)
		return -1;
	if (t->type == HDR_TOK_END)
		return hdr_fail(hp, "unbalanced '<'");
	if (!hdr_is(t, '>'))
		return hdr_fail(hp, "text after the domain in angle address");
	hdr_consume(hp);
	return hdr_emit(hp);
}

/* The error for token t where an address or a separator should be. */
static int
hdr_fail_unexpected(struct hdr_parser *hp, const struct hdr_tok *t)
{
	if (t->type == HDR_TOK_LITERAL)
		return hdr_fail(hp, "domain literal outside an address");
	if (t->type != HDR_TOK_SPECIAL)
		return hdr_fail(hp, "text after an address");
	switch (t->c) {
	case '>':
		return hdr_fail(hp, "'>' without '<'");
	case ';':
		return hdr_fail(hp, "';' outside a group");
	case '@':
		return hdr_fail(hp, "'@' after an address");
	case '<':
		return hdr_fail(hp,
		    "'<' after an address (unquoted '@' in a display name?)");
	case ':':
		return hdr_fail(hp, "':' without a group name");
	default:
		return hdr_fail(hp, "unexpected special character");
	}
}

static int hdr_parse_group(struct hdr_parser *);

/*
 * RFC 5322 3.4 address = mailbox / group, mailbox = name-addr / addr-spec.
 * The caller has checked that the look-ahead is not a separator.
 */
static int
hdr_parse_address(struct hdr_parser *hp, bool in_group)
{
	const struct hdr_tok *t;
	struct hdr_words w;

	hdr_out_reset(hp);
	if (hdr_parse_words(hp, &w) == -1 || (t = hdr_peek(hp)) == NULL)
		return -1;
	if (hdr_is(t, '@')) {
		if (hdr_check_local(hp, &w) == -1 ||
		    hdr_parse_at_domain(hp) == -1)
			return -1;
		return hdr_emit(hp);
	}
	if (hdr_is(t, '<')) {
		hdr_consume(hp);
		return hdr_parse_angle(hp);
	}
	if (hdr_is(t, ':') && w.nwords > 0) {
		if (in_group)
			return hdr_fail(hp, "group inside a group");
		hdr_consume(hp);
		return hdr_parse_group(hp);
	}
	if (w.nwords > 0)
		return hdr_fail(hp, "missing '@'");
	return hdr_fail_unexpected(hp, t);
}

/*
 * The rest of a group after its ':': [group-list] ";", group-list =
 * mailbox-list / CFWS / obs-group-list, with obs-mbox-list's empty
 * elements.
 */
static int
hdr_parse_group(struct hdr_parser *hp)
{
	const struct hdr_tok *t;

	for (;;) {
		if ((t = hdr_peek(hp)) == NULL)
			return -1;
		if (hdr_is(t, ';')) {
			hdr_consume(hp);
			return 0;
		}
		if (hdr_is(t, ',')) {
			hdr_consume(hp);
			continue;
		}
		if (t->type == HDR_TOK_END)
			return hdr_fail(hp, "group without ';'");
		if (hdr_parse_address(hp, true) == -1 ||
		    (t = hdr_peek(hp)) == NULL)
			return -1;
		if (hdr_is(t, ';') || hdr_is(t, ','))
			continue;
		if (t->type == HDR_TOK_END)
			return hdr_fail(hp, "group without ';'");
		return hdr_fail_unexpected(hp, t);
	}
}

/*
 * RFC 5322 3.4 address-list, with obs-addr-list's empty elements
 * (4.4): "a@x.test, , b@y.test", and a leading or trailing ','.
 */
static int
hdr_parse_list(struct hdr_parser *hp)
{
	const struct hdr_tok *t;

	for (;;) {
		if ((t = hdr_peek(hp)) == NULL)
			return -1;
		if (t->type == HDR_TOK_END)
			return 0;
		if (hdr_is(t, ',')) {
			hdr_consume(hp);
			continue;
		}
		if (hdr_parse_address(hp, false) == -1 ||
		    (t = hdr_peek(hp)) == NULL)
			return -1;
		if (t->type != HDR_TOK_END && !hdr_is(t, ','))
			return hdr_fail_unexpected(hp, t);
	}
}

static void
hdr_parser_init(struct hdr_parser *hp, const char *value, size_t len,
    unsigned int flags, mailaddr_hdr_cb cb, void *arg)
{
	hp->p = value;
	hp->flags = flags;
	hp->end = value + len;
	hp->tok.type = HDR_TOK_NONE;
	hp->error = NULL;
	hp->cb = cb;
	hp->arg = arg;
	hp->stopped = false;
	hp->count = 0;
	hp->olen = 0;
	hp->overflow = false;
	hp->discard = false;
}

int
mailaddr_header_parse(const char *value, size_t len, unsigned int flags,
    mailaddr_hdr_cb cb, void *arg, const char **error_r)
{
	struct hdr_parser hp;

	hdr_parser_init(&hp, value, len, flags, NULL, NULL);
	if (hdr_parse_list(&hp) == -1) {
		if (error_r != NULL)
			*error_r = hp.error;
		return -1;
	}
	if (cb == NULL)
		return hp.count;
	hdr_parser_init(&hp, value, len, flags, cb, arg);
	if (hdr_parse_list(&hp) == -1) {
		if (hp.stopped)
			return MAILADDR_HDR_STOPPED;
		fatalx("mailaddr_header_parse: second pass failed: %s",
		    hp.error);
	}
	return hp.count;
}

int
mailaddr_header_addresses(const char *value, size_t len, mailaddr_hdr_cb cb,
    void *arg)
{
	return mailaddr_header_parse(value, len, 0, cb, arg, NULL);
}

bool
mailaddr_addr_split(const char *addr, size_t len, size_t *local_len_r,
    bool *quoted_r)
{
	const char *at;
	bool quoted = false;
	size_t i;

	if (len == 0)
		return false;
	if (addr[0] == '"') {
		for (i = 1; i < len && addr[i] != '"'; i++)
			if (addr[i] == '\\')
				i++;
		if (i >= len || i + 1 >= len || addr[i + 1] != '@')
			return false;
		i++;
		quoted = true;
	} else {
		if ((at = memchr(addr, '@', len)) == NULL)
			return false;
		i = (size_t)(at - addr);
	}
	if (i == 0 || i + 1 >= len)
		return false;
	*local_len_r = i;
	*quoted_r = quoted;
	return true;
}
