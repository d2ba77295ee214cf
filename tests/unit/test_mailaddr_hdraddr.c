/*
 * test_mailaddr_hdraddr.c: the RFC 5322 address-list parser of header
 * values (src/mailaddr/hdraddr.c): the RFC 5322 Appendix A examples
 * (A.1.1-A.6.3), more accepted forms (quoted local parts, folds with CRLF
 * or bare LF, domain literals, routes, empty elements, UTF-8), every class
 * of refusal with its error text, the limits at and past their values,
 * MAILADDR_HDR_STRICT, 64 KiB inputs, the callback contract (stop, NULL
 * callback, never called for a refused value), mailaddr_addr_split(), and
 * a mutation test with a fixed seed checking what every reported address
 * looks like.
 *
 * Every input is copied into a heap buffer of its exact size with no NUL
 * after it (ASan sees any read past the end), and every prefix of every
 * accepted input is parsed too (the "byte at a time" of the house style).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mailaddr/hdraddr.h"
#include "mailaddr/mailaddr.h"

#include "lib/util.h"

#include "testutil.h"

#define N(a)		(sizeof(a) / sizeof((a)[0]))
#define S(s)		s, sizeof(s) - 1	/* a literal, NULs too */

/* What a parse reported, addresses joined by "\n" (no address has LF). */
struct got {
	char addrs[1 << 17];
	size_t alen;
	int calls;
	int stop_after;		/* return 1 from this call on (0: never) */
	bool bad_addr;		/* an address broke the invariants */
	char why[256];
};

/* A copy of s[0..n) in a buffer of exactly n octets, not NUL-terminated. */
static char *
dup_exact(const char *s, size_t n)
{
	char *p = malloc(n > 0 ? n : 1);

	assert_non_null(p);
	memcpy(p, s, n);
	return p;
}

/*
 * What every reported address must be, whatever the input: NUL-terminated
 * at len, at most MAILADDR_HDR_ADDR_MAX, no NUL, CR, LF or control
 * character, an '@' that splits it into a non-empty local part and
 * domain, WSP only inside a quoted local part, and itself a one-address
 * value that parses back to the same text.
 */
/* Re-parse check: the one address reported must equal want. */
struct same {
	const char *want;
	size_t len;
	bool same;
};

static int
same_cb(void *arg, const char *addr, size_t len)
{
	struct same *sm = arg;

	sm->same = len == sm->len && memcmp(addr, sm->want, len) == 0;
	return 0;
}

static bool
addr_ok(const char *addr, size_t len, char *why, size_t whysize)
{
	struct same sm = { addr, len, false };
	size_t i, local_len;
	bool quoted;
	int n;

	if (addr[len] != '\0' || len > MAILADDR_HDR_ADDR_MAX) {
		snprintf(why, whysize, "not NUL-terminated or too long");
		return false;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)addr[i];

		if (c < 0x20 && c != '\t') {
			snprintf(why, whysize, "octet 0x%02x", c);
			return false;
		}
		if (c == 0x7f) {
			snprintf(why, whysize, "DEL");
			return false;
		}
	}
	if (!mailaddr_addr_split(addr, len, &local_len, &quoted)) {
		snprintf(why, whysize, "no '@' splitting it");
		return false;
	}
	for (i = quoted ? local_len : 0; i < len; i++)
		if (addr[i] == ' ' || addr[i] == '\t') {
			snprintf(why, whysize, "white space outside quotes");
			return false;
		}
	/* Parse it again: one address, the same text. */
	n = mailaddr_header_addresses(addr, len, same_cb, &sm);
	if (n != 1 || !sm.same) {
		snprintf(why, whysize, "re-parse gave %d addresses%s", n,
		    n == 1 ? ", another text" : "");
		return false;
	}
	return true;
}

static int
collect(void *arg, const char *addr, size_t len)
{
	struct got *g = arg;

	g->calls++;
	if (!g->bad_addr && !addr_ok(addr, len, g->why, sizeof(g->why))) {
		g->bad_addr = true;
		snprintf(g->why + strlen(g->why),
		    sizeof(g->why) - strlen(g->why), ": \"%s\"",
		    test_escn(addr, len < 200 ? len : 200));
	}
	if (g->alen > 0 && g->alen < sizeof(g->addrs) - 1)
		g->addrs[g->alen++] = '\n';
	if (g->alen + len < sizeof(g->addrs)) {
		memcpy(g->addrs + g->alen, addr, len);
		g->alen += len;
	}
	g->addrs[g->alen] = '\0';
	if (g->stop_after > 0 && g->calls >= g->stop_after)
		return 1;
	return 0;
}

/* Parse in[0..len) from an exact-size copy into a fresh got. */
static int
parse_flags(const char *in, size_t len, unsigned int flags, struct got *g,
    const char **error_r)
{
	char *copy = dup_exact(in, len);
	int stop_after = g->stop_after;
	int r;

	memset(g, 0, sizeof(*g));
	g->stop_after = stop_after;
	*error_r = NULL;
	r = mailaddr_header_parse(copy, len, flags, collect, g, error_r);
	free(copy);
	return r;
}

static int
parse(const char *in, size_t len, struct got *g, const char **error_r)
{
	return parse_flags(in, len, 0, g, error_r);
}

static struct got *
got_new(void)
{
	struct got *g = calloc(1, sizeof(*g));

	assert_non_null(g);
	return g;
}

struct ok_case {
	const char *name;
	const char *in;
	size_t len;
	int count;
	const char *want;	/* addresses joined by "\n" */
};

static const struct ok_case ok_cases[] = {
	/* RFC 5322 A.1.1 */
	{ "A.1.1 From", S(" John Doe <jdoe@machine.example>"), 1,
	    "jdoe@machine.example" },
	{ "A.1.1 Sender", S(" Michael Jones <mjones@machine.example>"), 1,
	    "mjones@machine.example" },
	{ "A.1.1 To", S(" Mary Smith <mary@example.net>"), 1,
	    "mary@example.net" },
	/* A.1.2 */
	{ "A.1.2 From", S(" \"Joe Q. Public\" <john.q.public@example.com>"),
	    1, "john.q.public@example.com" },
	{ "A.1.2 To",
	    S(" Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>"),
	    3, "mary@x.test\njdoe@example.org\none@y.test" },
	{ "A.1.2 Cc", S(" <boss@nil.test>, \"Giant; \\\"Big\\\" Box\" "
	    "<sysservices@example.net>"), 2,
	    "boss@nil.test\nsysservices@example.net" },
	/* A.1.3 */
	{ "A.1.3 From", S(" Pete <pete@silly.example>"), 1,
	    "pete@silly.example" },
	{ "A.1.3 To", S(" A Group:Ed Jones <c@a.test>,joe@where.test,"
	    "John <jdoe@one.test>;"), 3,
	    "c@a.test\njoe@where.test\njdoe@one.test" },
	{ "A.1.3 Cc", S(" Undisclosed recipients:;"), 0, "" },
	/* A.2 */
	{ "A.2 Reply-To", S(" \"Mary Smith: Personal Account\" "
	    "<smith@home.example>"), 1, "smith@home.example" },
	/* A.3 */
	{ "A.3 Resent-From", S(" Mary Smith <mary@example.net>"), 1,
	    "mary@example.net" },
	{ "A.3 Resent-To", S(" Jane Brown <j-brown@other.example>"), 1,
	    "j-brown@other.example" },
	/* A.4 */
	{ "A.4 From", S(" John Doe <jdoe@node.example>"), 1,
	    "jdoe@node.example" },
	/* A.5 */
	{ "A.5 From", S(" Pete(A nice \\) chap) <pete(his account)@silly.test"
	    "(his host)>"), 1, "pete@silly.test" },
	{ "A.5 To", S("A Group(Some people)\r\n"
	    "     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
	    "         joe@example.org,\r\n"
	    "  John <jdoe@one.test> (my dear friend); (the end of the group)"),
	    3, "c@public.example\njoe@example.org\njdoe@one.test" },
	{ "A.5 Cc", S("(Empty list)(start)Hidden recipients  :(nobody(that I "
	    "know))  ;"), 0, "" },
	/* A.6.1 */
	{ "A.6.1 From", S(" Joe Q. Public <john.q.public@example.com>"), 1,
	    "john.q.public@example.com" },
	{ "A.6.1 To", S(" Mary Smith <@node.test:mary@example.net>, , "
	    "jdoe@test  . example"), 2, "mary@example.net\njdoe@test.example" },
	/* A.6.2 */
	{ "A.6.2 From", S(" John Doe <jdoe@machine.example>"), 1,
	    "jdoe@machine.example" },
	/* A.6.3 (the second line holds only WSP: obs-FWS) */
	{ "A.6.3 From", S(" John Doe <jdoe@machine(comment).  example>"), 1,
	    "jdoe@machine.example" },
	{ "A.6.3 To", S(" Mary Smith\r\n  \r\n          <mary@example.net>"), 1,
	    "mary@example.net" },

	/* Quoted local parts: quotes kept, not normalised, folds unfolded. */
	{ "quoted", S("\"john doe\"@x.test"), 1, "\"john doe\"@x.test" },
	{ "quoted dot-atom", S("\"jdoe\"@x.test"), 1, "\"jdoe\"@x.test" },
	{ "quoted CFWS", S("John <(c) \"j d\" (c)@(c) x.test (c)>"), 1,
	    "\"j d\"@x.test" },
	{ "quoted pair", S("\"a\\\"b\\\\c\\ d\"@x.test"), 1,
	    "\"a\\\"b\\\\c\\ d\"@x.test" },
	{ "quoted specials", S("\"a@b,<c>;d:\"@x.test"), 1,
	    "\"a@b,<c>;d:\"@x.test" },
	{ "quoted empty", S("\"\"@x.test"), 1, "\"\"@x.test" },
	{ "quoted CRLF fold", S("\"john\r\n doe\"@x.test"), 1,
	    "\"john doe\"@x.test" },
	{ "quoted LF fold", S("\"john\n\tdoe\"@x.test"), 1,
	    "\"john\tdoe\"@x.test" },
	{ "quoted '@' in display name", S("\"a@b.test\" <c@d.test>"), 1,
	    "c@d.test" },

	/* Folding and line ends. */
	{ "LF folds", S("Mary Smith\n <mary@x.test>,\n\tjdoe@y.test"), 2,
	    "mary@x.test\njdoe@y.test" },
	{ "CRLF folds", S("Mary\r\n Smith\r\n <mary@x.test>"), 1,
	    "mary@x.test" },
	{ "fold in comment", S("(a\r\n b)a@x.test"), 1, "a@x.test" },
	{ "trailing CRLF", S("a@x.test\r\n"), 1, "a@x.test" },
	{ "trailing LF", S("a@x.test\n"), 1, "a@x.test" },
	{ "fold then end", S("a@x.test\r\n "), 1, "a@x.test" },
	{ "tabs", S("\tA\tB\t<\ta@x.test\t>\t"), 1, "a@x.test" },

	/* Domains. */
	{ "literal", S("jdoe@[192.0.2.1]"), 1, "jdoe@[192.0.2.1]" },
	{ "literal WSP at brackets", S("x <jdoe@[ IPv6:2001:db8::1\r\n ]>"),
	    1, "jdoe@[IPv6:2001:db8::1]" },
	{ "literal '@'", S("a@[x@y]"), 1, "a@[x@y]" },
	{ "obs-domain", S("a@ x (c) . y\r\n . test"), 1, "a@x.y.test" },
	{ "obs-local-part", S("john . (c) doe@x.test"), 1, "john.doe@x.test" },
	{ "case kept", S("JDoe@Example.TEST"), 1, "JDoe@Example.TEST" },
	{ "atext", S("!#$%&'*+-/=?^_`{|}~@x.test"), 1,
	    "!#$%&'*+-/=?^_`{|}~@x.test" },

	/* obs-route */
	{ "route", S("<@a.test,@b.test:user@c.test>"), 1, "user@c.test" },
	{ "route commas", S("<,@a.test,,@b.test,:u@c.test>"), 1, "u@c.test" },
	{ "route CFWS", S("<(c) @ a.test , @[192.0.2.1] : u@c.test>"), 1,
	    "u@c.test" },

	/* Empty elements and empty values. */
	{ "empty elements", S(", a@x.test, , b@y.test ,"), 2,
	    "a@x.test\nb@y.test" },
	{ "commas only", S(" , ,, "), 0, "" },
	{ "empty", S(""), 0, "" },
	{ "WSP only", S("  \t "), 0, "" },
	{ "comment only", S(" (nobody) "), 0, "" },
	{ "group empty elements", S("G: , a@x.test ,, ;"), 1, "a@x.test" },
	{ "two groups", S("G1: a@x.test; , G2: b@y.test, c@z.test;"), 3,
	    "a@x.test\nb@y.test\nc@z.test" },
	{ "group then mailbox", S("G:;, a@x.test"), 1, "a@x.test" },

	/* Display names. */
	{ "name with dots", S("J. R. R. Tolkien. <t@x.test>"), 1, "t@x.test" },
	{ "quoted name", S("\"Doe, John\" <j@x.test>"), 1, "j@x.test" },
	{ "no name", S("<j@x.test>"), 1, "j@x.test" },

	/* RFC 6532 UTF-8 */
	{ "UTF-8", S("J\xc3\xb6ran <j\xc3\xb6ran@ex\xc3\xa4mple.test>"), 1,
	    "j\xc3\xb6ran@ex\xc3\xa4mple.test" },
	{ "UTF-8 quoted", S("\"j\xc3\xb6 ran\"@x.test"), 1,
	    "\"j\xc3\xb6 ran\"@x.test" },
	{ "UTF-8 quoted pair", S("\"a\\\xc3\xb6\"@x.test"), 1,
	    "\"a\\\xc3\xb6\"@x.test" },
	{ "UTF-8 comment", S("(\xe2\x82\xac \xf0\x9f\x90\xa6)a@x.test"), 1,
	    "a@x.test" },
	{ "UTF-8 4-octet", S("\xf0\x9f\x90\xa6@x.test"), 1,
	    "\xf0\x9f\x90\xa6@x.test" },
	{ "UTF-8 literal", S("a@[\xc3\xa4]"), 1, "a@[\xc3\xa4]" },
};

struct bad_case {
	const char *name;
	const char *in;
	size_t len;
	const char *error;
};

static const struct bad_case bad_cases[] = {
	/* Unbalanced quotes, brackets, parentheses. */
	{ "quote", S("\"John <a@x.test>"), "unbalanced quote" },
	{ "quote local", S("\"a@x.test"), "unbalanced quote" },
	{ "quote at end", S("a@x.test, \""), "unbalanced quote" },
	{ "quoted pair at end", S("\"a\\"), "bad quoted pair" },
	{ "bracket", S("a@[1.2.3.4"), "unbalanced bracket" },
	{ "bracket close", S("a@1.2.3.4]"), "unbalanced bracket" },
	{ "bracket in literal", S("a@[1[2]"), "'[' inside a domain literal" },
	{ "paren", S("(John <a@x.test>"), "unbalanced parenthesis" },
	{ "paren close", S("John) <a@x.test>"), "unbalanced parenthesis" },
	{ "paren nested", S("a@x.test (a (b)"), "unbalanced parenthesis" },
	{ "angle", S("<a@x.test"), "unbalanced '<'" },
	{ "angle close", S("a@x.test>"), "'>' without '<'" },
	{ "angle close alone", S(">"), "'>' without '<'" },

	/* Missing '@', '@' in a display name. */
	{ "no @", S("jdoe"), "missing '@'" },
	{ "no @ name", S("John Doe"), "missing '@'" },
	{ "no @ angle", S("John <jdoe>"), "missing '@'" },
	{ "no @ angle dots", S("John <jdoe.x.test>"), "missing '@'" },
	{ "no @ list", S("a@x.test, jdoe"), "missing '@'" },
	{ "@ in name", S("John Doe@x.test"), "words before '@' that are not a "
	    "local part (unquoted '@' in a display name?)" },
	{ "@ in name before angle", S("john@x.test <a@y.test>"),
	    "'<' after an address (unquoted '@' in a display name?)" },
	{ "@ @", S("a@b@x.test"), "'@' after an address" },
	{ "@ first", S("@x.test"), "missing local part" },
	{ "empty local in angle", S("<@x.test>"),
	    "bad route in angle address" },

	/* Text after an address. */
	{ "after angle", S("John <a@x.test> Smith"), "text after an address" },
	{ "after angle addr", S("<a@x.test> b@y.test"),
	    "text after an address" },
	{ "after angle angle", S("<a@x.test> <b@y.test>"),
	    "'<' after an address (unquoted '@' in a display name?)" },
	{ "after angle quoted", S("<a@x.test> \"x\""),
	    "text after an address" },
	{ "after angle literal", S("<a@x.test> [1.2.3.4]"),
	    "domain literal outside an address" },
	{ "after angle >", S("<a@x.test>>"), "'>' without '<'" },
	{ "after angle ;", S("<a@x.test>;"), "';' outside a group" },
	{ "after angle :", S("<a@x.test>:"), "':' without a group name" },
	{ "after addr-spec", S("a@x.test b@y.test"), "text after an address" },
	{ "in angle after domain", S("<a@x.test b>"),
	    "text after the domain in angle address" },
	{ "after group", S("G: a@x.test; b@y.test"), "text after an address" },

	/* NUL, CR, LF, control characters. */
	{ "NUL", S("a@x\0.test"), "NUL octet" },
	{ "NUL in name", S("John\0 <a@x.test>"), "NUL octet" },
	{ "NUL in quotes", S("\"a\0\"@x.test"), "NUL octet" },
	{ "NUL in comment", S("(\0)a@x.test"), "NUL octet" },
	{ "NUL in literal", S("a@[1\0]"), "NUL octet" },
	{ "NUL at end", S("a@x.test\0"), "NUL octet" },
	{ "bare CR", S("a@x.test\rb@y.test"),
	    "CR or LF not followed by white space" },
	{ "CR then WSP", S("a@x.test,\r b@y.test"),
	    "CR or LF not followed by white space" },
	{ "CR at end", S("a@x.test\r"),
	    "CR or LF not followed by white space" },
	{ "CRLF header", S("a@x.test\r\nBcc: b@y.test"),
	    "CR or LF not followed by white space" },
	{ "LF header", S("a@x.test\nBcc: b@y.test"),
	    "CR or LF not followed by white space" },
	{ "CRLF CRLF", S("a@x.test\r\n\r\n"),
	    "CR or LF not followed by white space" },
	{ "LF LF", S("a@x.test\n\n"), "CR or LF not followed by white space" },
	{ "CRLF in quotes", S("\"a\r\nb\"@x.test"),
	    "CR or LF not followed by white space" },
	{ "CR in comment", S("(a\rb)a@x.test"),
	    "CR or LF not followed by white space" },
	{ "control", S("a\x01@x.test"), "control character" },
	{ "DEL", S("a\x7f@x.test"), "control character" },
	{ "control in quotes", S("\"a\x1b\"@x.test"), "control character" },
	{ "control in comment", S("(\x1b)a@x.test"), "control character" },
	{ "control in literal", S("a@[1\x02]"), "control character" },
	{ "quoted control", S("\"a\\\x01\"@x.test"), "bad quoted pair" },
	{ "quoted CR", S("\"a\\\r\n b\"@x.test"), "bad quoted pair" },
	{ "comment quoted NUL", S("(\\\0)a@x.test"), "bad quoted pair" },
	{ "backslash outside", S("a\\b@x.test"),
	    "quoted pair outside quotes and comments" },

	/* UTF-8 */
	{ "truncated", S("\xc3@x.test"), "ill-formed UTF-8" },
	{ "truncated at end", S("a@x.test\xe2\x82"), "ill-formed UTF-8" },
	{ "overlong", S("\xc0\xaf@x.test"), "ill-formed UTF-8" },
	{ "surrogate in comment", S("(\xed\xa0\x80)a@x.test"),
	    "ill-formed UTF-8" },
	{ "latin-1 in quotes", S("\"J\xf6ran\"@x.test"), "ill-formed UTF-8" },
	{ "above U+10FFFF", S("a@x\xf4\x90\x80\x80"), "ill-formed UTF-8" },
	{ "continuation", S("a@x.test\x80"), "ill-formed UTF-8" },
	{ "0xff in literal", S("a@[\xff]"), "ill-formed UTF-8" },

	/* Local parts and domains. */
	{ "leading dot", S(".a@x.test"), "'.' before the first word" },
	{ "trailing dot", S("a.@x.test"), "local part ends with '.'" },
	{ "double dot", S("a..b@x.test"), "empty atom in a local part" },
	{ "mixed quoted", S("\"a\".b@x.test"),
	    "local part mixes quoted strings and dots" },
	{ "two quoted", S("\"a\" \"b\"@x.test"), "words before '@' that are "
	    "not a local part (unquoted '@' in a display name?)" },
	{ "no domain", S("a@"), "missing domain after '@'" },
	{ "no domain angle", S("<a@>"), "missing domain after '@'" },
	{ "domain trailing dot", S("a@x.test."), "empty label in a domain" },
	{ "domain leading dot", S("a@.x.test"), "missing domain after '@'" },
	{ "domain double dot", S("a@x..test"), "empty label in a domain" },
	{ "domain dot literal", S("a@x.[1.2.3.4]"), "empty label in a domain" },
	{ "empty literal", S("a@[]"), "empty domain literal" },
	{ "WSP literal", S("a@[ ]"), "empty domain literal" },
	{ "WSP inside literal", S("a@[1.2 3.4]"),
	    "white space inside a domain literal" },
	{ "quoted pair literal", S("a@[a\\]b]"),
	    "quoted pair in a domain literal" },
	{ "literal in local part", S("[a]@x.test"),
	    "domain literal outside an address" },
	{ "empty angle", S("<>"), "empty angle address" },
	{ "empty angle name", S("John <>"), "empty angle address" },
	{ "angle in angle", S("<<a@x.test>>"), "missing local part" },

	/* Routes. */
	{ "route no colon", S("<@a.test mary@x.test>"),
	    "bad route in angle address" },
	{ "route no domain", S("<@:a@x.test>"), "missing domain after '@'" },
	{ "route no mailbox", S("<@a.test:>"), "missing local part" },
	{ "route only commas", S("<,:a@x.test>"),
	    "bad route in angle address" },

	/* Groups. */
	{ "nested group", S("A: B: a@x.test;;"), "group inside a group" },
	{ "group no ;", S("A: a@x.test"), "group without ';'" },
	{ "group no ; empty", S("A:"), "group without ';'" },
	{ "group no name", S(": a@x.test;"), "':' without a group name" },
	{ "; outside", S("a@x.test;"), "';' outside a group" },
	{ "; alone", S(";"), "';' outside a group" },
	{ "group after addr", S("a@x.test: b@y.test;"),
	    "':' without a group name" },
};

static void
test_ok_cases(void **state)
{
	struct got *g = got_new();
	const char *error;
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < N(ok_cases); i++) {
		const struct ok_case *c = &ok_cases[i];

		r = parse(c->in, c->len, g, &error);
		if (r != c->count)
			fail_msg("%s: \"%s\": got %d (%s), want %d", c->name,
			    test_escn(c->in, c->len), r,
			    error ? error : "no error", c->count);
		if (g->calls != c->count)
			fail_msg("%s: %d calls, want %d", c->name, g->calls,
			    c->count);
		if (strcmp(g->addrs, c->want) != 0)
			fail_msg("%s: got \"%s\", want \"%s\"", c->name,
			    test_esc(g->addrs), test_esc(c->want));
		if (g->bad_addr)
			fail_msg("%s: %s", c->name, g->why);
		/* NULL callback: the same count. */
		r = mailaddr_header_addresses(c->in, c->len, NULL, NULL);
		if (r != c->count)
			fail_msg("%s: without callback got %d, want %d",
			    c->name, r, c->count);
	}
	free(g);
}

static void
test_bad_cases(void **state)
{
	struct got *g = got_new();
	const char *error;
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < N(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];

		r = parse(c->in, c->len, g, &error);
		if (r != -1)
			fail_msg("%s: \"%s\": got %d (\"%s\"), want -1",
			    c->name, test_escn(c->in, c->len), r,
			    test_esc(g->addrs));
		if (g->calls != 0)
			fail_msg("%s: callback called %d times on a refused "
			    "value", c->name, g->calls);
		if (error == NULL || strcmp(error, c->error) != 0)
			fail_msg("%s: \"%s\": error \"%s\", want \"%s\"",
			    c->name, test_escn(c->in, c->len),
			    error ? error : "(null)", c->error);
	}
	free(g);
}

/*
 * The callback never sees the addresses before a refused part: the value
 * is checked whole first.
 */
static void
test_no_partial_report(void **state)
{
	static const char in[] = "a@x.test, b@y.test, c@z.test d";
	struct got *g = got_new();
	const char *error;

	(void)state;
	assert_int_equal(parse(in, sizeof(in) - 1, g, &error), -1);
	assert_int_equal(g->calls, 0);
	assert_string_equal(error, "text after an address");
	free(g);
}

static void
test_stop(void **state)
{
	static const char in[] = "a@x.test, b@y.test, c@z.test";
	struct got *g = got_new();
	const char *error;
	int r;

	(void)state;
	g->stop_after = 2;
	r = parse(in, sizeof(in) - 1, g, &error);
	assert_int_equal(r, MAILADDR_HDR_STOPPED);
	assert_int_equal(g->calls, 2);
	assert_string_equal(g->addrs, "a@x.test\nb@y.test");
	g->stop_after = 1;
	r = parse(in, sizeof(in) - 1, g, &error);
	assert_int_equal(r, MAILADDR_HDR_STOPPED);
	assert_int_equal(g->calls, 1);
	g->stop_after = 0;
	assert_int_equal(parse(in, sizeof(in) - 1, g, &error), 3);
	free(g);
}

/*
 * MAILADDR_HDR_STRICT: each refused value is accepted without it, and
 * what it accepts gives the same addresses without it.
 */
static void
test_strict(void **state)
{
	static const struct {
		const char *in;
		const char *error;	/* NULL: accepted */
		const char *want;
	} cases[] = {
		{ "<@bank.test:me@mine.test>", "route in angle address", NULL },
		{ "M <,@a.test:me@mine.test>", "route in angle address", NULL },
		{ "me@mine (x) . test",
		    "white space or comment around '.' in a domain", NULL },
		{ "me@mine.\r\n test",
		    "white space or comment around '.' in a domain", NULL },
		{ "me@mine .test",
		    "white space or comment around '.' in a domain", NULL },
		{ "me . you@mine.test",
		    "white space or comment around '.' in a local part", NULL },
		{ "<me.(c)you@mine.test>",
		    "white space or comment around '.' in a local part", NULL },
		{ "me@mine.test (ceo@bank.test)",
		    "'@', '<' or '>' in a comment", NULL },
		{ "Me (<ceo>) <me@mine.test>", "'@', '<' or '>' in a comment",
		    NULL },
		{ "(\\@)me@mine.test", "'@', '<' or '>' in a comment", NULL },
		{ "(a(b>c))me@x.test", "'@', '<' or '>' in a comment", NULL },
		{ "Me <me@mine.test>", NULL, "me@mine.test" },
		{ " < me@mine.test > ", NULL, "me@mine.test" },
		{ "me@mine.test (Sent from my phone)", NULL, "me@mine.test" },
		{ "Pete(A nice \\) chap) <pete(his account)@silly.test(his "
		    "host)>", NULL, "pete@silly.test" },
		{ "Joe Q. Public <j@x.test>", NULL, "j@x.test" },
		{ "\"ceo@bank.test\" <me@mine.test>", NULL, "me@mine.test" },
		{ "G:a@x.test,,b@y.test;", NULL, "a@x.test\nb@y.test" },
		{ "\"a b\"@[192.0.2.1]", NULL, "\"a b\"@[192.0.2.1]" },
	};
	struct got *g = got_new();
	char want[256];
	const char *error;
	size_t i, len;
	int r;

	(void)state;
	for (i = 0; i < N(cases); i++) {
		len = strlen(cases[i].in);
		r = parse_flags(cases[i].in, len, MAILADDR_HDR_STRICT, g,
		    &error);
		if (cases[i].error != NULL) {
			if (r != -1 || g->calls != 0 ||
			    strcmp(error, cases[i].error) != 0)
				fail_msg("strict \"%s\": got %d (%s), want "
				    "-1 (%s)", test_esc(cases[i].in), r,
				    error ? error : "no error",
				    cases[i].error);
			r = parse(cases[i].in, len, g, &error);
			if (r < 1)
				fail_msg("\"%s\": refused without "
				    "MAILADDR_HDR_STRICT: %s",
				    test_esc(cases[i].in), error);
			continue;
		}
		if (r < 0 || strcmp(g->addrs, cases[i].want) != 0)
			fail_msg("strict \"%s\": got %d \"%s\" (%s), want "
			    "\"%s\"", test_esc(cases[i].in), r,
			    test_esc(g->addrs), error ? error : "no error",
			    test_esc(cases[i].want));
		strlcpy(want, g->addrs, sizeof(want));
		assert_int_equal(parse(cases[i].in, len, g, &error), r);
		assert_string_equal(g->addrs, want);
	}
	free(g);
}

/* Comments nested to the limit and one past it. */
static void
test_comment_depth(void **state)
{
	char in[4 * MAILADDR_HDR_COMMENT_DEPTH + 64];
	struct got *g = got_new();
	const char *error;
	int depth, k;
	size_t n;

	(void)state;
	for (depth = MAILADDR_HDR_COMMENT_DEPTH;
	    depth <= MAILADDR_HDR_COMMENT_DEPTH + 1; depth++) {
		n = 0;
		n += (size_t)snprintf(in + n, sizeof(in) - n, "a@x.test ");
		for (k = 0; k < depth; k++)
			in[n++] = '(';
		for (k = 0; k < depth; k++)
			in[n++] = ')';
		if (depth == MAILADDR_HDR_COMMENT_DEPTH) {
			assert_int_equal(parse(in, n, g, &error), 1);
			assert_string_equal(g->addrs, "a@x.test");
		} else {
			assert_int_equal(parse(in, n, g, &error), -1);
			assert_string_equal(error, "comments nested too deep");
		}
	}
	/* Many comments at depth 1: no limit on their number. */
	n = 0;
	for (k = 0; k < 60; k++) {
		in[n++] = '(';
		in[n++] = ')';
	}
	memcpy(in + n, "a@x.test", 8);
	assert_int_equal(parse(in, n + 8, g, &error), 1);
	free(g);
}

/* Exactly MAILADDR_HDR_ADDRS_MAX addresses, then one more. */
static void
test_address_count(void **state)
{
	size_t cap = 16 * (MAILADDR_HDR_ADDRS_MAX + 1), n = 0;
	char *in = malloc(cap);
	struct got *g = got_new();
	const char *error;
	int i;

	(void)state;
	assert_non_null(in);
	for (i = 0; i < MAILADDR_HDR_ADDRS_MAX; i++)
		n += (size_t)snprintf(in + n, cap - n, "%sa%d@x.test",
		    i > 0 ? "," : "", i);
	assert_int_equal(parse(in, n, g, &error), MAILADDR_HDR_ADDRS_MAX);
	assert_int_equal(g->calls, MAILADDR_HDR_ADDRS_MAX);
	n += (size_t)snprintf(in + n, cap - n, ",one@more.test");
	assert_int_equal(parse(in, n, g, &error), -1);
	assert_int_equal(g->calls, 0);
	assert_string_equal(error, "too many addresses");
	/* Groups count too. */
	n = (size_t)snprintf(in, cap, "G:");
	for (i = 0; i <= MAILADDR_HDR_ADDRS_MAX; i++)
		n += (size_t)snprintf(in + n, cap - n, "a@x,");
	in[n++] = ';';
	assert_int_equal(parse(in, n, g, &error), -1);
	assert_string_equal(error, "too many addresses");
	free(in);
	free(g);
}

/* An addr-spec of MAILADDR_HDR_ADDR_MAX octets, then one more. */
static void
test_address_length(void **state)
{
	char in[MAILADDR_HDR_ADDR_MAX + 64];
	struct got *g = got_new();
	const char *error;
	size_t local = MAILADDR_HDR_ADDR_MAX - strlen("@x.test"), n;

	(void)state;
	memset(in, 'a', local);
	memcpy(in + local, "@x.test", 7);
	n = local + 7;
	assert_int_equal(parse(in, n, g, &error), 1);
	assert_int_equal(g->alen, MAILADDR_HDR_ADDR_MAX);
	/* The same in angle brackets. */
	memmove(in + 1, in, n);
	in[0] = '<';
	in[n + 1] = '>';
	assert_int_equal(parse(in, n + 2, g, &error), 1);
	assert_int_equal(g->alen, MAILADDR_HDR_ADDR_MAX);
	/* One more octet. */
	memset(in, 'a', local + 1);
	memcpy(in + local + 1, "@x.test", 7);
	assert_int_equal(parse(in, local + 8, g, &error), -1);
	assert_string_equal(error, "address too long");
	/* A long route is dropped, so it does not count. */
	n = (size_t)snprintf(in, sizeof(in), "<@");
	memset(in + n, 'r', MAILADDR_HDR_ADDR_MAX);
	n += MAILADDR_HDR_ADDR_MAX;
	n += (size_t)snprintf(in + n, sizeof(in) - n, ":a@x.test>");
	assert_int_equal(parse(in, n, g, &error), 1);
	assert_string_equal(g->addrs, "a@x.test");
	free(g);
}

/*
 * 64 KiB values of the shapes that would cost a quadratic parser most:
 * long comments, long display names, long runs of separators and folds,
 * deep comments repeated. The time bound is far above what a linear pass
 * needs even under ASan (milliseconds), and far below a quadratic one.
 */
static void
test_large(void **state)
{
	const size_t size = 64 * 1024;
	char *in = malloc(size + 64);
	struct got *g = got_new();
	const char *error;
	struct timespec t0, t1;
	size_t n, k;
	double secs;
	int shape;

	(void)state;
	assert_non_null(in);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (shape = 0; shape < 8; shape++) {
		n = 0;
		switch (shape) {
		case 0:		/* one long comment */
			in[n++] = '(';
			while (n < size - 1)
				in[n++] = 'c';
			in[n++] = ')';
			n += (size_t)snprintf(in + n, 64, "a@x.test");
			break;
		case 1:		/* a long display name of words */
			while (n < size)
				n += (size_t)snprintf(in + n, 64, "w. ");
			n += (size_t)snprintf(in + n, 64, "<a@x.test>");
			break;
		case 2:		/* separators */
			while (n < size)
				in[n++] = ',';
			n += (size_t)snprintf(in + n, 64, "a@x.test");
			break;
		case 3:		/* folds */
			while (n < size)
				n += (size_t)snprintf(in + n, 64, "\r\n ");
			n += (size_t)snprintf(in + n, 64, "a@x.test");
			break;
		case 4:		/* deep comments, repeated */
			while (n < size - 2 * MAILADDR_HDR_COMMENT_DEPTH) {
				for (k = 0; k < MAILADDR_HDR_COMMENT_DEPTH; k++)
					in[n++] = '(';
				for (k = 0; k < MAILADDR_HDR_COMMENT_DEPTH; k++)
					in[n++] = ')';
			}
			n += (size_t)snprintf(in + n, 64, "a@x.test");
			break;
		case 5:		/* a long quoted display name */
			in[n++] = '"';
			while (n < size - 1)
				in[n++] = 'q';
			in[n++] = '"';
			n += (size_t)snprintf(in + n, 64, "<a@x.test>");
			break;
		case 6:		/* a long obs-domain: too long */
			n += (size_t)snprintf(in + n, 64, "a@x");
			while (n < size)
				n += (size_t)snprintf(in + n, 64, " . x");
			break;
		case 7:		/* unbalanced: the error is at the end */
			while (n < size)
				in[n++] = '(';
			break;
		}
		if (shape == 6) {
			assert_int_equal(parse(in, n, g, &error), -1);
			assert_string_equal(error, "address too long");
		} else if (shape == 7) {
			assert_int_equal(parse(in, n, g, &error), -1);
			assert_string_equal(error, "comments nested too deep");
		} else {
			if (parse(in, n, g, &error) != 1)
				fail_msg("shape %d: %s", shape,
				    error ? error : "?");
			assert_string_equal(g->addrs, "a@x.test");
		}
	}
	/* 1000 addresses of about 40 octets: a 40 KiB To: header. */
	n = 0;
	for (k = 0; k < MAILADDR_HDR_ADDRS_MAX; k++)
		n += (size_t)snprintf(in + n, size + 64 - n,
		    "\"N %04zu\" <user%04zu@example.test> (c),\r\n ", k, k);
	assert_true(n <= size + 64);
	assert_int_equal(parse(in, n, g, &error), MAILADDR_HDR_ADDRS_MAX);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (secs > 5.0)
		fail_msg("64 KiB inputs took %.2f s", secs);
	free(in);
	free(g);
}

static void
test_split(void **state)
{
	static const struct {
		const char *addr;
		bool ok;
		size_t local_len;
		bool quoted;
	} cases[] = {
		{ "a@x.test", true, 1, false },
		{ "john.doe@x.test", true, 8, false },
		{ "\"john doe\"@x.test", true, 10, true },
		{ "\"a@b\"@x.test", true, 5, true },
		{ "\"a\\\"@b\"@x.test", true, 7, true },
		{ "\"\"@x.test", true, 2, true },
		{ "a@[x@y]", true, 1, false },
		{ "a@", false, 0, false },
		{ "@x", false, 0, false },
		{ "ax", false, 0, false },
		{ "", false, 0, false },
		{ "\"a@b\"", false, 0, false },
		{ "\"a\"b@x", false, 0, false },
		{ "\"a@x", false, 0, false },
		{ "\"a\\", false, 0, false },
		{ "\"a\"@", false, 0, false },
	};
	size_t i, local_len;
	bool quoted, ok;
	char *copy;

	(void)state;
	for (i = 0; i < N(cases); i++) {
		size_t len = strlen(cases[i].addr);

		copy = dup_exact(cases[i].addr, len);
		local_len = 99;
		quoted = false;
		ok = mailaddr_addr_split(copy, len, &local_len, &quoted);
		free(copy);
		if (ok != cases[i].ok)
			fail_msg("split \"%s\": got %d, want %d",
			    test_esc(cases[i].addr), ok, cases[i].ok);
		if (!ok) {
			assert_int_equal(local_len, 99);
			continue;
		}
		if (local_len != cases[i].local_len ||
		    quoted != cases[i].quoted)
			fail_msg("split \"%s\": got %zu/%d, want %zu/%d",
			    test_esc(cases[i].addr), local_len, quoted,
			    cases[i].local_len, cases[i].quoted);
	}
}

/* The unquoted mailbox name of a reported quoted local part. */
static void
test_unquote_reported(void **state)
{
	static const char in[] = "X <\"j\\\"o\r\n e\"@x.test>";
	struct got *g = got_new();
	const char *error;
	char name[64];
	size_t local_len;
	bool quoted;

	(void)state;
	assert_int_equal(parse(in, sizeof(in) - 1, g, &error), 1);
	assert_string_equal(g->addrs, "\"j\\\"o e\"@x.test");
	assert_true(mailaddr_addr_split(g->addrs, g->alen, &local_len,
	    &quoted));
	assert_true(quoted);
	assert_int_equal(mailaddr_localpart_unquote(g->addrs, local_len, name,
	    sizeof(name)), 0);
	assert_string_equal(name, "j\"o e");
	free(g);
}

/* Every prefix of every accepted value: no crash, sane addresses. */
static void
test_prefixes(void **state)
{
	struct got *g = got_new();
	const char *error;
	size_t i, k;
	int r;

	(void)state;
	for (i = 0; i < N(ok_cases); i++) {
		for (k = 0; k <= ok_cases[i].len; k++) {
			r = parse(ok_cases[i].in, k, g, &error);
			if (r >= 0 && g->calls != r)
				fail_msg("%s[0..%zu): %d calls, returned %d",
				    ok_cases[i].name, k, g->calls, r);
			if (r == -1 && (g->calls != 0 || error == NULL))
				fail_msg("%s[0..%zu): refused, but %d calls",
				    ok_cases[i].name, k, g->calls);
			if (g->bad_addr)
				fail_msg("%s[0..%zu): %s", ok_cases[i].name, k,
				    g->why);
		}
	}
	free(g);
}

/* xorshift64*: a fixed, portable sequence. */
static uint64_t
rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static size_t
rng_below(uint64_t *s, size_t n)
{
	return n > 0 ? (size_t)(rng_next(s) % n) : 0;
}

/*
 * Mutation test: start from the accepted values, apply 1 to 4 random edits
 * (octets the grammar cares about, random octets, deletion, duplication
 * of a span, truncation), parse, and check the contract: -1 means an
 * error text and no call, otherwise one call per address counted and
 * every address as addr_ok() wants it. A fixed seed, so a failure repeats.
 */
static void
test_mutations(void **state)
{
	static const char interesting[] = "<>@,;:.\"()[]\\ \t\r\n\0\x01\x7f"
	    "\x80\xc3\xb6\xff\xed\xf0" "aZ.";
	enum { ROUNDS = 200000, MAXLEN = 512 };
	struct got *g = got_new();
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	char buf[MAXLEN + 64], strict_addrs[4 * MAXLEN];
	unsigned int flags;
	const char *error;
	size_t len, pos, k, span, nedits;
	int round, r, accepted = 0, refused = 0;

	(void)state;
	for (round = 0; round < ROUNDS; round++) {
		const struct ok_case *c =
		    &ok_cases[rng_below(&seed, N(ok_cases))];

		len = c->len < MAXLEN ? c->len : MAXLEN;
		memcpy(buf, c->in, len);
		nedits = 1 + rng_below(&seed, 4);
		for (k = 0; k < nedits; k++) {
			pos = rng_below(&seed, len + 1);
			switch (rng_below(&seed, 6)) {
			case 0:		/* replace: an interesting octet */
				if (pos < len)
					buf[pos] = interesting[rng_below(&seed,
					    sizeof(interesting) - 1)];
				break;
			case 1:		/* replace with any octet */
				if (pos < len)
					buf[pos] = (char)rng_below(&seed, 256);
				break;
			case 2:		/* insert an interesting octet */
				if (len < MAXLEN) {
					memmove(buf + pos + 1, buf + pos,
					    len - pos);
					buf[pos] = interesting[rng_below(&seed,
					    sizeof(interesting) - 1)];
					len++;
				}
				break;
			case 3:		/* delete a span */
				span = rng_below(&seed, 4) + 1;
				if (pos + span <= len) {
					memmove(buf + pos, buf + pos + span,
					    len - pos - span);
					len -= span;
				}
				break;
			case 4:		/* duplicate a span */
				span = rng_below(&seed, 16) + 1;
				if (pos + span <= len && len + span <= MAXLEN) {
					memmove(buf + pos + span, buf + pos,
					    len - pos);
					len += span;
				}
				break;
			case 5:		/* truncate */
				len = pos;
				break;
			}
		}
		flags = (round & 1) != 0 ? MAILADDR_HDR_STRICT : 0;
		r = parse_flags(buf, len, flags, g, &error);
		if (r == -1) {
			refused++;
			if (g->calls != 0 || error == NULL)
				fail_msg("round %d \"%s\": refused with %d "
				    "calls, error %s", round,
				    test_escn(buf, len), g->calls,
				    error ? error : "(null)");
			continue;
		}
		accepted++;
		if (r < 0 || g->calls != r)
			fail_msg("round %d \"%s\": returned %d, %d calls",
			    round, test_escn(buf, len), r, g->calls);
		if (g->bad_addr)
			fail_msg("round %d \"%s\": %s", round,
			    test_escn(buf, len), g->why);
		if (flags == 0)
			continue;
		/* Strict accepted it: the default reads it the same. */
		memcpy(strict_addrs, g->addrs, g->alen + 1);
		if (parse(buf, len, g, &error) != r ||
		    strcmp(g->addrs, strict_addrs) != 0)
			fail_msg("round %d \"%s\": strict and default differ",
			    round, test_escn(buf, len));
	}
	/* Both outcomes must have been exercised. */
	print_message("mutations: %d accepted, %d refused\n", accepted,
	    refused);
	assert_true(accepted > ROUNDS / 20);
	assert_true(refused > ROUNDS / 20);
	free(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ok_cases),
		cmocka_unit_test(test_bad_cases),
		cmocka_unit_test(test_no_partial_report),
		cmocka_unit_test(test_stop),
		cmocka_unit_test(test_strict),
		cmocka_unit_test(test_comment_depth),
		cmocka_unit_test(test_address_count),
		cmocka_unit_test(test_address_length),
		cmocka_unit_test(test_large),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_unquote_reported),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
