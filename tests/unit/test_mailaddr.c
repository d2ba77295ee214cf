/*
 * test_mailaddr.c: the shared mailbox grammar (src/mailaddr): character
 * classes over all 256 octets, the Dot-string, Quoted-string, Domain and
 * address-literal scanners with and without UTF-8 (end, UTF-8 flag and
 * error position), label and literal lengths at their limits, and local
 * part unquoting. Every input is copied into a buffer of its exact size
 * (ASan sees any over-read), and every prefix of every scanner input is
 * scanned too (the "byte at a time" of the string parsers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mailaddr/mailaddr.h"

#include "testutil.h"

#define N(a)		(sizeof(a) / sizeof((a)[0]))
#define U		MAILADDR_UTF8
#define US		MAILADDR_UNDERSCORE
#define NONE		(-1)	/* scanner returns NULL / no position */

static void
check_int(const char *ctx, const char *what, long long got, long long want)
{
	if (got != want)
		fail_msg("%s: %s: got %lld, want %lld", ctx, what, got, want);
}

static void
check_str(const char *ctx, const char *what, const char *got,
    const char *want)
{
	if (strcmp(got, want) != 0)
		fail_msg("%s: %s: got \"%s\", want \"%s\"", ctx, what,
		    test_esc(got), test_esc(want));
}

/* Character classes: every octet against the RFC's own lists. */

static void
test_char_classes(void **state)
{
	/* RFC 5322 3.2.3 atext besides ALPHA / DIGIT, as code points. */
	static const unsigned char specials[] = { 33, 35, 36, 37, 38, 39, 42,
		43, 45, 47, 61, 63, 94, 95, 96, 123, 124, 125, 126 };
	char ctx[64];
	bool letdig, atext;
	size_t i;
	int c;

	(void)state;
	for (c = 0; c < 256; c++) {
		letdig = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
		    (c >= 'a' && c <= 'z');
		atext = letdig;
		for (i = 0; i < N(specials); i++)
			if (c == specials[i])
				atext = true;
		snprintf(ctx, sizeof(ctx), "octet 0x%02x", c);
		check_int(ctx, "is_letdig", mailaddr_is_letdig(c), letdig);
		check_int(ctx, "is_atext", mailaddr_is_atext(c), atext);
	}
}

/* The scanners, one table. */

enum scan_kind {
	DOT,		/* mailaddr_scan_dot_string */
	QUOTED,		/* mailaddr_scan_quoted_string */
	DOMAIN,		/* mailaddr_scan_domain */
	LITERAL,	/* mailaddr_scan_address_literal */
	HOST,		/* mailaddr_scan_domain_or_literal */
};

static const char *const kind_names[] = {
	[DOT] = "dot_string",
	[QUOTED] = "quoted_string",
	[DOMAIN] = "domain",
	[LITERAL] = "address_literal",
	[HOST] = "domain_or_literal",
};

struct scan_case {
	enum scan_kind kind;
	const char *in;
	unsigned int flags;
	int end;	/* offset of the result, NONE for NULL */
	bool utf8;	/* *utf8_r after success */
	int bad;	/* DOT, QUOTED: offset of *bad_r after NULL */
};

static const struct scan_case scan_cases[] = {
	/* Dot-string */
	{ DOT, "abc", 0, 3, false, NONE },
	{ DOT, "abc@x", 0, 3, false, NONE },
	{ DOT, "a.b.c@x", U, 5, false, NONE },
	{ DOT, "!#$%&'*+-/=?^_`{|}~", 0, 19, false, NONE },
	{ DOT, "a b", 0, 1, false, NONE },
	{ DOT, "a\"b", 0, 1, false, NONE },
	{ DOT, "a(b", 0, 1, false, NONE },
	{ DOT, "", 0, NONE, false, 0 },
	{ DOT, "@x", 0, NONE, false, 0 },
	{ DOT, ".a", 0, NONE, false, 0 },
	{ DOT, "a.", 0, NONE, false, 2 },
	{ DOT, "a..b", 0, NONE, false, 2 },
	{ DOT, "ab.c.@x", 0, NONE, false, 5 },
	{ DOT, "J\xc3\xb6rg@x", U, 5, true, NONE },
	{ DOT, "J\xc3\xb6rg@x", 0, 1, false, NONE },
	{ DOT, "\xc3\xb6", 0, NONE, false, 0 },
	{ DOT, "\xc3\xb6", U, 2, true, NONE },
	{ DOT, "a.\xc3\xa9", U, 4, true, NONE },
	{ DOT, "a.\xc3\xa9", 0, NONE, false, 2 },
	{ DOT, "a\xc3", U, 1, false, NONE },		/* truncated */
	{ DOT, "a\xc0\xaf", U, 1, false, NONE },	/* overlong */
	{ DOT, "a\xed\xa0\x80", U, 1, false, NONE },	/* surrogate */
	{ DOT, "\xf0\x9f\x90\xa6.x", U, 6, true, NONE },

	/* Quoted-string */
	{ QUOTED, "\"\"", 0, 2, false, NONE },
	{ QUOTED, "\"a b\"@x", 0, 5, false, NONE },
	{ QUOTED, "\"a\"b", 0, 3, false, NONE },
	{ QUOTED, "\"a\\\"b\"", 0, 6, false, NONE },
	{ QUOTED, "\"a\\\\\"", 0, 5, false, NONE },
	{ QUOTED, "\"\\ \\~\"", 0, 6, false, NONE },
	{ QUOTED, "\"@,<>[]:;.\"", 0, 11, false, NONE },
	{ QUOTED, "\" !#~\"", 0, 6, false, NONE },
	{ QUOTED, "a\"", 0, NONE, false, 0 },
	{ QUOTED, "", 0, NONE, false, 0 },
	{ QUOTED, "\"", 0, NONE, false, 1 },
	{ QUOTED, "\"a", 0, NONE, false, 2 },
	{ QUOTED, "\"a\\", 0, NONE, false, 2 },
	{ QUOTED, "\"a\\\x01\"", 0, NONE, false, 2 },
	{ QUOTED, "\"a\\\x7f\"", 0, NONE, false, 2 },
	{ QUOTED, "\"a\x01\"", 0, NONE, false, 2 },
	{ QUOTED, "\"a\x7f\"", 0, NONE, false, 2 },
	{ QUOTED, "\"a\tb\"", 0, NONE, false, 2 },
	{ QUOTED, "\"\xc3\xa9\"", U, 4, true, NONE },
	{ QUOTED, "\"\xc3\xa9\"", 0, NONE, false, 1 },
	{ QUOTED, "\"\xc3\"", U, NONE, false, 1 },
	{ QUOTED, "\"\\\xc3\xa9\"", U, NONE, false, 1 },

	/* Domain */
	{ DOMAIN, "example.com", 0, 11, false, NONE },
	{ DOMAIN, "example.com>", 0, 11, false, NONE },
	{ DOMAIN, "a", 0, 1, false, NONE },
	{ DOMAIN, "a-b.c", 0, 5, false, NONE },
	{ DOMAIN, "a--b", 0, 4, false, NONE },
	{ DOMAIN, "xn--caf-dma.example", 0, 19, false, NONE },
	{ DOMAIN, "1.2.3.4", 0, 7, false, NONE },
	{ DOMAIN, "EXAMPLE.Com", 0, 11, false, NONE },
	{ DOMAIN, "-a", 0, NONE, false, NONE },
	{ DOMAIN, "a-", 0, NONE, false, NONE },
	{ DOMAIN, "a-.b", 0, NONE, false, NONE },
	{ DOMAIN, "a.-b", 0, NONE, false, NONE },
	{ DOMAIN, "a..b", 0, NONE, false, NONE },
	{ DOMAIN, "a.", 0, NONE, false, NONE },
	{ DOMAIN, ".a", 0, NONE, false, NONE },
	{ DOMAIN, "", 0, NONE, false, NONE },
	{ DOMAIN, "[1.2.3.4]", U, NONE, false, NONE },
	{ DOMAIN, "a_b", 0, 1, false, NONE },
	{ DOMAIN, "a_b", US, 3, false, NONE },
	{ DOMAIN, "_a.b", US, 4, false, NONE },
	{ DOMAIN, "_a.b", 0, NONE, false, NONE },
	{ DOMAIN, "a_.b", US, 4, false, NONE },
	{ DOMAIN, "caf\xc3\xa9.example", U, 13, true, NONE },
	{ DOMAIN, "caf\xc3\xa9.example", 0, 3, false, NONE },
	{ DOMAIN, "\xc3\xa9", 0, NONE, false, NONE },
	{ DOMAIN, "\xc3\xa9-", U, NONE, false, NONE },
	{ DOMAIN, "-\xc3\xa9", U, NONE, false, NONE },
	{ DOMAIN, "a\xc3", U, 1, false, NONE },
	{ DOMAIN, "a.b\xff", U, 3, false, NONE },

	/* address literal */
	{ LITERAL, "[1.2.3.4]", 0, 9, false, NONE },
	{ LITERAL, "[1.2.3.4]>", 0, 9, false, NONE },
	{ LITERAL, "[IPv6:::1]", 0, 10, false, NONE },
	{ LITERAL, "[ipv6:2001:db8::1]", 0, 18, false, NONE },
	{ LITERAL, "[IPV6:::1]", 0, 10, false, NONE },
	{ LITERAL, "[IPv6:::ffff:1.2.3.4]", 0, 21, false, NONE },
	{ LITERAL, "[IPv6:ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]", 0,
	    52, false, NONE },
	{ LITERAL, "[01.2.3.4]", 0, NONE, false, NONE },
	{ LITERAL, "[256.1.1.1]", 0, NONE, false, NONE },
	{ LITERAL, "[1.2.3]", 0, NONE, false, NONE },
	{ LITERAL, "[::1]", 0, NONE, false, NONE },
	{ LITERAL, "[IPv6:1.2.3.4]", 0, NONE, false, NONE },
	{ LITERAL, "[IPv6:]", 0, NONE, false, NONE },
	{ LITERAL, "[tag:x]", 0, NONE, false, NONE },
	{ LITERAL, "[]", 0, NONE, false, NONE },
	{ LITERAL, "[", 0, NONE, false, NONE },
	{ LITERAL, "[1.2.3.4", 0, NONE, false, NONE },
	{ LITERAL, "[ 1.2.3.4]", 0, NONE, false, NONE },
	{ LITERAL, "[1.2.3.4\\]", 0, NONE, false, NONE },
	{ LITERAL, "[[1.2.3.4]", 0, NONE, false, NONE },
	{ LITERAL, "1.2.3.4", 0, NONE, false, NONE },
	{ LITERAL, "[\xc3\xa9]", U, NONE, false, NONE },

	/* domain or literal */
	{ HOST, "[1.2.3.4]", 0, 9, false, NONE },
	{ HOST, "[IPv6:::1]>", U, 10, false, NONE },
	{ HOST, "example.com", 0, 11, false, NONE },
	{ HOST, "[x]", U, NONE, false, NONE },
	{ HOST, "a_b", 0, 1, false, NONE },
	{ HOST, "a_b", U | US, 3, false, NONE },
	{ HOST, "caf\xc3\xa9", U, 5, true, NONE },
	{ HOST, "caf\xc3\xa9", 0, 3, false, NONE },
	{ HOST, "", U, NONE, false, NONE },
};

static const char *
scan(const struct scan_case *c, const char *p, bool *utf8_r,
    const char **bad_r)
{
	switch (c->kind) {
	case DOT:
		return mailaddr_scan_dot_string(p, c->flags, utf8_r, bad_r);
	case QUOTED:
		return mailaddr_scan_quoted_string(p, c->flags, utf8_r,
		    bad_r);
	case DOMAIN:
		return mailaddr_scan_domain(p, c->flags, utf8_r);
	case LITERAL:
		return mailaddr_scan_address_literal(p);
	case HOST:
		return mailaddr_scan_domain_or_literal(p, c->flags, utf8_r);
	}
	fail_msg("unknown kind %d", (int)c->kind);
	return NULL;
}

static long long
offset(const char *got, const char *base)
{
	return got == NULL ? NONE : (long long)(got - base);
}

static void
test_scanners(void **state)
{
	const struct scan_case *c;
	const char *got, *bad;
	char ctx[1200], *p;
	size_t i, n, len;
	bool utf8;

	(void)state;
	for (i = 0; i < N(scan_cases); i++) {
		c = &scan_cases[i];
		len = strlen(c->in);
		snprintf(ctx, sizeof(ctx), "%s(\"%s\", flags %u)",
		    kind_names[c->kind], test_esc(c->in), c->flags);
		p = test_dup_exact(c->in, len);

		utf8 = false;
		bad = NULL;
		got = scan(c, p, &utf8, &bad);
		check_int(ctx, "end", offset(got, p), c->end);
		if (got != NULL)
			check_int(ctx, "utf8", utf8, c->utf8);
		if (got == NULL && (c->kind == DOT || c->kind == QUOTED))
			check_int(ctx, "bad", offset(bad, p), c->bad);
		if (got != NULL || (c->kind != DOT && c->kind != QUOTED))
			check_int(ctx, "bad untouched", bad == NULL, true);

		/* The flag collects: never set back to false. */
		utf8 = true;
		(void)scan(c, p, &utf8, NULL);
		check_int(ctx, "utf8 stays true", utf8, true);

		/* NULL out-parameters give the same end. */
		check_int(ctx, "end without out-parameters",
		    offset(scan(c, p, NULL, NULL), p), c->end);
		free(p);

		/* Every prefix: no over-read, the end within the input. */
		for (n = 0; n < len; n++) {
			p = test_dup_exact(c->in, n);
			got = scan(c, p, NULL, NULL);
			if (got != NULL && (got <= p || got > p + n))
				fail_msg("%s: prefix of %zu: end %lld out of "
				    "range", ctx, n, offset(got, p));
			free(p);
		}
	}
}

/* Label and literal lengths at the limits, built at run time. */

static void
check_domain(const char *s, unsigned int flags, long long want,
    bool want_utf8)
{
	char ctx[64];
	const char *got;
	bool utf8 = false;
	char *p;

	p = test_dup_exact(s, strlen(s));
	snprintf(ctx, sizeof(ctx), "domain of %zu octets, flags %u",
	    strlen(s), flags);
	got = mailaddr_scan_domain(p, flags, &utf8);
	check_int(ctx, "end", offset(got, p), want);
	if (got != NULL)
		check_int(ctx, "utf8", utf8, want_utf8);
	free(p);
}

static void
test_limits(void **state)
{
	char s[300];
	size_t i;

	(void)state;
	check_int("limits", "MAILADDR_LOCALPART_MAX", MAILADDR_LOCALPART_MAX,
	    64);
	check_int("limits", "MAILADDR_DOMAIN_MAX", MAILADDR_DOMAIN_MAX, 255);
	check_int("limits", "MAILADDR_PATH_MAX", MAILADDR_PATH_MAX, 256);
	check_int("limits", "MAILADDR_LABEL_MAX", MAILADDR_LABEL_MAX, 63);

	memset(s, 'a', 63);
	s[63] = '\0';
	check_domain(s, 0, 63, false);
	memset(s, 'a', 64);
	s[64] = '\0';
	check_domain(s, 0, NONE, false);
	/* The limit is per label, not per domain. */
	memcpy(s, "b.", 2);
	memset(s + 2, 'a', 63);
	s[65] = '\0';
	check_domain(s, 0, 65, false);
	memset(s, '_', 64);
	s[64] = '\0';
	check_domain(s, MAILADDR_UNDERSCORE, NONE, false);
	/* A U-label is not length-checked (its A-label would be). */
	for (i = 0; i < 40; i++)
		memcpy(s + 2 * i, "\xc3\xa9", 2);
	s[80] = '\0';
	check_domain(s, MAILADDR_UTF8, 80, true);
	check_domain(s, 0, NONE, false);

	/*
	 * No valid literal is longer than "IPv6:" + INET6_ADDRSTRLEN; a
	 * longer one is refused before it is copied (ASan would see an
	 * overflow of the copy).
	 */
	memcpy(s, "[IPv6:", 6);
	memset(s + 6, ':', 47);
	memcpy(s + 53, "]", 2);
	if (mailaddr_scan_address_literal(s) != NULL)
		fail_msg("literal of 52 octets of content: got accepted, "
		    "want refused");
}

/* mailaddr_localpart_unquote */

struct unquote_case {
	const char *in;
	int len;		/* NONE: strlen(in) */
	size_t outsize;
	int ret;
	const char *out;
};

static const struct unquote_case unquote_cases[] = {
	{ "abc", NONE, 65, 0, "abc" },
	{ "AbC.d", NONE, 65, 0, "AbC.d" },		/* case kept */
	{ "\"A b\"", NONE, 65, 0, "A b" },
	{ "\"a\\\"b\"", NONE, 65, 0, "a\"b" },
	{ "\"a\\\\b\"", NONE, 65, 0, "a\\b" },
	{ "\"a\\Bc\"", NONE, 65, 0, "aBc" },
	{ "\"\"", NONE, 65, 0, "" },
	{ "", NONE, 65, 0, "" },
	{ "\"..\"", NONE, 65, 0, ".." },
	{ "J\xc3\x96rg", NONE, 65, 0, "J\xc3\x96rg" },
	{ "\"J\xc3\x96rg\"", NONE, 65, 0, "J\xc3\x96rg" },
	{ "\"a\"@x", NONE, 65, 0, "a" },		/* ends at the quote */
	{ "abc@x", 3, 65, 0, "abc" },			/* ends at len */
	{ "abc", 0, 65, 0, "" },
	{ "\"abc\"", 3, 65, 0, "ab" },			/* a prefix */
	{ "\"a\\", NONE, 65, 0, "a\\" },		/* a lone '\' */
	{ "\"a\\\"b\"", 3, 65, 0, "a\\" },		/* pair cut by len */
	{ "abcde", NONE, 6, 0, "abcde" },
	{ "abcdef", NONE, 6, -1, "" },
	{ "\"abcde\"", NONE, 6, 0, "abcde" },
	{ "\"abcdef\"", NONE, 6, -1, "" },
	{ "\"a\\bcde\"", NONE, 6, 0, "abcde" },
	{ "a", NONE, 1, -1, "" },
	{ "", NONE, 1, 0, "" },
};

static void
test_localpart_unquote(void **state)
{
	const struct unquote_case *c;
	char ctx[128], out[80], *p;
	size_t i, len;
	int ret;

	(void)state;
	for (i = 0; i < N(unquote_cases); i++) {
		c = &unquote_cases[i];
		len = c->len == NONE ? strlen(c->in) : (size_t)c->len;
		snprintf(ctx, sizeof(ctx), "unquote \"%s\" len %zu into %zu",
		    test_esc(c->in), len, c->outsize);
		p = test_dup_exact(c->in, strlen(c->in));
		memset(out, 'Z', sizeof(out));
		ret = mailaddr_localpart_unquote(p, len, out, c->outsize);
		check_int(ctx, "return", ret, c->ret);
		check_str(ctx, "out", out, c->out);
		check_int(ctx, "no write past outsize", out[c->outsize], 'Z');
		free(p);
	}
	memset(out, 'Z', sizeof(out));
	check_int("unquote into 0", "return",
	    mailaddr_localpart_unquote("a", 1, out, 0), -1);
	check_int("unquote into 0", "untouched", out[0], 'Z');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_char_classes),
		cmocka_unit_test(test_scanners),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_localpart_unquote),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
