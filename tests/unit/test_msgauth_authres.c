/*
 * test_msgauth_authres.c: Authentication-Results (RFC 8601).
 *
 * - the builder: the issue's example field exactly (after unfolding),
 *   "none", quoting of non-token values, comments, folding within 78
 *   octets, refusals; random inputs always give a field that our reader
 *   accepts with the right number of results;
 * - the reader: go-msgauth's samples (conformance/dmarc/authres/, with
 *   their authserv-ids), RFC 8601 Appendix B examples, malformed fields,
 *   every prefix and random mutations in exact-size copies;
 * - authres_claims_host(): our hostname in any case, with a version,
 *   comments, quotes and folding; other hosts; unreadable fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "lib/buf.h"
#include "lib/util.h"
#include "msgauth/authres.h"

#define HOST	"mx.example.net"

static int
parse_exact(const char *v, size_t len, char *id, size_t idsize,
    const char **err)
{
	char *copy = test_dup_exact(v, len);
	int r = authres_parse(copy, len, id, idsize, err);

	free(copy);
	return r;
}

static bool
claims_exact(const char *v, size_t len, const char *host)
{
	char *copy = test_dup_exact(v, len);
	bool r = authres_claims_hostn(copy, len, host);

	free(copy);
	return r;
}

/* The field's text unfolded (CRLF removed) without its final CRLF. */
static void
unfold(const char *in, char *out, size_t size)
{
	size_t o = 0;

	for (; *in != '\0' && o + 1 < size; in++) {
		if (in[0] == '\r' && in[1] == '\n') {
			in++;
			continue;
		}
		out[o++] = *in;
	}
	out[o] = '\0';
}

/* Lines within 78 octets (unless one piece is longer), continuation
 * lines start with WSP, CRLF at the end only after the last line. */
static void
check_folding(const char *field, size_t maxline)
{
	const char *p = field, *eol;
	bool first = true;

	while (*p != '\0') {
		eol = strstr(p, "\r\n");
		assert_non_null(eol);
		if ((size_t)(eol - p) > maxline)
			fail_msg("line of %zu octets: %s", (size_t)(eol - p),
			    test_escn(p, (size_t)(eol - p)));
		if (!first)
			assert_true(*p == ' ' || *p == '\t');
		assert_null(memchr(p, '\r', (size_t)(eol - p)));
		assert_null(memchr(p, '\n', (size_t)(eol - p)));
		first = false;
		p = eol + 2;
	}
}

/* The value after "Authentication-Results:". */
static const char *
field_value(const char *field)
{
	const char *name = "Authentication-Results:";

	assert_true(strncmp(field, name, strlen(name)) == 0);
	return field + strlen(name);
}

/* ------------------------------------------------------------------ */
/* The builder. */

static void
test_build_issue_example(void **state)
{
	struct authres *ar = authres_new(HOST);
	struct buf b;
	char flat[1024], id[256];
	const char *err;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(authres_add(ar, "spf", "pass", NULL), 0);
	assert_int_equal(authres_prop(ar, "smtp", "mailfrom", "example.org"),
	    0);
	assert_int_equal(authres_add(ar, "dkim", "pass", NULL), 0);
	assert_int_equal(authres_prop(ar, "header", "d", "example.org"), 0);
	assert_int_equal(authres_prop(ar, "header", "s", "sel"), 0);
	assert_int_equal(authres_prop(ar, "header", "b", "abcd1234"), 0);
	assert_int_equal(authres_add(ar, "dmarc", "pass", "p=reject"), 0);
	assert_int_equal(authres_prop(ar, "header", "from", "example.org"), 0);
	assert_int_equal(authres_count(ar), 3);
	assert_int_equal(authres_format(ar, &b), 0);
	unfold(buf_str(&b), flat, sizeof(flat));
	assert_string_equal(flat, "Authentication-Results: " HOST "; "
	    "spf=pass smtp.mailfrom=example.org; dkim=pass header.d=example.org"
	    " header.s=sel header.b=abcd1234; dmarc=pass (p=reject) "
	    "header.from=example.org");
	check_folding(buf_str(&b), 78);
	/* It was long enough to need folding. */
	assert_non_null(strstr(buf_str(&b), "\r\n "));
	assert_int_equal(authres_parse(field_value(buf_str(&b)),
	    strlen(field_value(buf_str(&b))), id, sizeof(id), &err), 3);
	assert_string_equal(id, HOST);
	buf_free(&b);
	authres_free(ar);
	authres_free(NULL);
}

static void
test_build_none(void **state)
{
	struct authres *ar = authres_new(HOST);
	struct buf b;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(authres_format(ar, &b), 0);
	assert_string_equal(buf_str(&b),
	    "Authentication-Results: " HOST "; none\r\n");
	assert_int_equal(authres_parse(field_value(buf_str(&b)),
	    strlen(field_value(buf_str(&b))), NULL, 0, NULL), 0);
	buf_free(&b);
	authres_free(ar);
}

struct quote_case {
	const char *value;
	const char *want;	/* as written after "x.y=" */
};

static const struct quote_case quote_cases[] = {
	{ "example.org", "example.org" },
	{ "192.0.2.200", "192.0.2.200" },
	{ "2001:db8::1", "\"2001:db8::1\"" },
	{ "user@example.org", "user@example.org" },
	{ "first.last+tag@sub.example.org", "first.last+tag@sub.example.org" },
	{ "@example.org", "@example.org" },
	{ "user@localhost", "\"user@localhost\"" },
	{ "a..b@example.org", "\"a..b@example.org\"" },
	{ ".a@example.org", "\".a@example.org\"" },
	{ "a@b@example.org", "\"a@b@example.org\"" },
	{ "a@-x.example.org", "\"a@-x.example.org\"" },
	{ "\"a b\"@example.org", "\"\\\"a b\\\"@example.org\"" },
	{ "ab/cd+e=", "\"ab/cd+e=\"" },
	{ "with space", "\"with space\"" },
	{ "back\\slash", "\"back\\\\slash\"" },
	{ "semi;colon", "\"semi;colon\"" },
	{ "(paren)", "\"(paren)\"" },
	{ "\xc3\xa9t\xc3\xa9.example", "\"\xc3\xa9t\xc3\xa9.example\"" },
};

static void
test_build_quoting(void **state)
{
	struct buf b;
	char flat[2048], want[512];
	size_t i;

	(void)state;
	for (i = 0; i < nitems(quote_cases); i++) {
		struct authres *ar = authres_new(HOST);

		buf_init(&b, 4096);
		assert_int_equal(authres_add(ar, "x", "pass", NULL), 0);
		if (authres_prop(ar, "smtp", "mailfrom", quote_cases[i].value))
			fail_msg("'%s' refused", quote_cases[i].value);
		assert_int_equal(authres_format(ar, &b), 0);
		unfold(buf_str(&b), flat, sizeof(flat));
		snprintf(want, sizeof(want), "Authentication-Results: " HOST
		    "; x=pass smtp.mailfrom=%s", quote_cases[i].want);
		if (strcmp(flat, want) != 0)
			fail_msg("got %s, want %s", test_esc(flat),
			    test_esc(want));
		if (authres_parse(field_value(buf_str(&b)),
		    strlen(field_value(buf_str(&b))), NULL, 0, NULL) != 1)
			fail_msg("our own field does not parse: %s",
			    test_esc(buf_str(&b)));
		buf_free(&b);
		authres_free(ar);
	}
}

static void
test_build_comments_reasons(void **state)
{
	struct authres *ar = authres_new(HOST);
	struct buf b;
	char flat[2048], big[600];

	(void)state;
	buf_init(&b, 8192);
	assert_int_equal(authres_add(ar, "spf", "fail",
	    "a (b) \\ c\r\n\x01 \xc3\xa9 \xff"), 0);
	assert_int_equal(authres_reason(ar, "bad signature"), 0);
	assert_int_equal(authres_reason(ar, "twice"), -1);
	assert_int_equal(authres_prop(ar, "smtp", "mailfrom", "example.net"),
	    0);
	assert_int_equal(authres_format(ar, &b), 0);
	unfold(buf_str(&b), flat, sizeof(flat));
	assert_string_equal(flat, "Authentication-Results: " HOST "; spf=fail "
	    "(a \\(b\\) \\\\ c??? \xc3\xa9 ?) reason=\"bad signature\" "
	    "smtp.mailfrom=example.net");
	assert_int_equal(authres_parse(field_value(buf_str(&b)),
	    strlen(field_value(buf_str(&b))), NULL, 0, NULL), 1);
	buf_reset(&b);
	authres_free(ar);
	/* A long comment is cut; still one piece, still readable. */
	ar = authres_new(HOST);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(authres_add(ar, "dkim", "neutral", big), 0);
	assert_int_equal(authres_format(ar, &b), 0);
	assert_non_null(strstr(buf_str(&b), "(xxx"));
	assert_true(strlen(buf_str(&b)) < 320);
	assert_int_equal(authres_parse(field_value(buf_str(&b)),
	    strlen(field_value(buf_str(&b))), NULL, 0, NULL), 1);
	buf_free(&b);
	authres_free(ar);
}

static void
test_build_refusals(void **state)
{
	struct authres *ar = authres_new(HOST);
	struct buf b;
	char big[AUTHRES_TEXT_MAX + 2];
	int i;

	(void)state;
	/* Nothing to attach to yet. */
	assert_int_equal(authres_prop(ar, "smtp", "mailfrom", "x.example"),
	    -1);
	assert_int_equal(authres_reason(ar, "x"), -1);
	/* Keywords. */
	assert_int_equal(authres_add(ar, "", "pass", NULL), -1);
	assert_int_equal(authres_add(ar, "spf", "", NULL), -1);
	assert_int_equal(authres_add(ar, "sp f", "pass", NULL), -1);
	assert_int_equal(authres_add(ar, "spf", "pass;", NULL), -1);
	assert_int_equal(authres_add(ar, "-spf", "pass", NULL), -1);
	assert_int_equal(authres_add(ar, "spf", "pass-", NULL), -1);
	assert_int_equal(authres_add(ar, "spf", "pass", NULL), 0);
	assert_int_equal(authres_prop(ar, "smtp.", "mailfrom", "x"), -1);
	assert_int_equal(authres_prop(ar, "smtp", "mail from", "x"), -1);
	/* Values. */
	assert_int_equal(authres_prop(ar, "smtp", "mailfrom", ""), -1);
	assert_int_equal(authres_prop(ar, "smtp", "mailfrom", "a\r\nb"), -1);
	assert_int_equal(authres_prop(ar, "smtp", "mailfrom", "a\x01"), -1);
	assert_int_equal(authres_prop(ar, "smtp", "mailfrom", "\xff"), -1);
	assert_int_equal(authres_prop(ar, "smtp", "mailfrom", NULL), -1);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(authres_prop(ar, "smtp", "mailfrom", big), -1);
	big[AUTHRES_TEXT_MAX] = '\0';
	assert_int_equal(authres_prop(ar, "smtp", "mailfrom", big), 0);
	for (i = 1; i < AUTHRES_PROPS_MAX; i++)
		assert_int_equal(authres_prop(ar, "header", "d", "x"), 0);
	assert_int_equal(authres_prop(ar, "header", "d", "x"), -1);
	for (i = 1; i < AUTHRES_RESULTS_MAX; i++)
		assert_int_equal(authres_add(ar, "dkim", "pass", NULL), 0);
	assert_int_equal(authres_add(ar, "dkim", "pass", NULL), -1);
	assert_int_equal(authres_count(ar), AUTHRES_RESULTS_MAX);
	/* A full buffer leaves it unchanged. */
	buf_init(&b, 100);
	assert_int_equal(buf_append_str(&b, "keep"), 0);
	assert_int_equal(authres_format(ar, &b), -1);
	assert_string_equal(buf_str(&b), "keep");
	buf_free(&b);
	/* It fits a large one, folded, and parses. */
	buf_init(&b, 65536);
	assert_int_equal(authres_format(ar, &b), 0);
	check_folding(buf_str(&b), 300);
	assert_int_equal(authres_parse(field_value(buf_str(&b)),
	    strlen(field_value(buf_str(&b))), NULL, 0, NULL),
	    AUTHRES_RESULTS_MAX);
	buf_free(&b);
	authres_free(ar);
	/* A hostname that is not a token is quoted; controls are made safe. */
	ar = authres_new("odd host\r\n");
	buf_init(&b, 1024);
	assert_int_equal(authres_format(ar, &b), 0);
	assert_string_equal(buf_str(&b),
	    "Authentication-Results: \"odd host??\"; none\r\n");
	buf_free(&b);
	authres_free(ar);
}

static uint64_t
rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static size_t
rng_below(uint64_t *s, size_t n)
{
	return n > 0 ? (size_t)(rng_next(s) % n) : 0;
}

/* Random printable-ish text, sometimes with specials and UTF-8. */
static void
rand_text(uint64_t *s, char *out, size_t maxlen)
{
	static const char alpha[] = "abcXYZ019.-@_+/=;:,()<>[]\"\\ \t?!%";
	size_t n = 1 + rng_below(s, maxlen), i;

	for (i = 0; i < n; i++) {
		if (rng_below(s, 20) == 0 && i + 2 < n) {
			out[i++] = (char)0xc3;
			out[i] = (char)0xa9;
			continue;
		}
		out[i] = alpha[rng_below(s, sizeof(alpha) - 1)];
	}
	out[n] = '\0';
}

/* Whatever the builder accepts, the reader accepts. */
static void
test_build_random(void **state)
{
	static const char *const kw[] = { "spf", "dkim", "dmarc", "x-foo",
	    "iprev", "auth" };
	uint64_t seed = 0xa17e5a17c0ffee11ULL;
	char text[80], flat[8192];
	struct buf b;
	int round, nres, k, nprops, added;

	(void)state;
	for (round = 0; round < 3000; round++) {
		struct authres *ar = authres_new(HOST);

		nres = (int)rng_below(&seed, 5);
		added = 0;
		for (k = 0; k < nres; k++) {
			rand_text(&seed, text, 40);
			if (authres_add(ar, kw[rng_below(&seed, nitems(kw))],
			    "pass", rng_below(&seed, 2) ? text : NULL) == -1)
				fail_msg("add refused");
			added++;
			if (rng_below(&seed, 3) == 0) {
				rand_text(&seed, text, 30);
				assert_int_equal(authres_reason(ar, text), 0);
			}
			nprops = (int)rng_below(&seed, 4);
			while (nprops-- > 0) {
				rand_text(&seed, text, 60);
				assert_int_equal(authres_prop(ar, "header",
				    "d", text), 0);
			}
		}
		buf_init(&b, 65536);
		assert_int_equal(authres_format(ar, &b), 0);
		check_folding(buf_str(&b), 998);
		if (authres_parse(field_value(buf_str(&b)),
		    strlen(field_value(buf_str(&b))), NULL, 0, NULL) != added)
			fail_msg("does not parse: %s", test_esc(buf_str(&b)));
		unfold(buf_str(&b), flat, sizeof(flat));
		assert_true(authres_claims_host(field_value(flat), HOST));
		assert_false(authres_claims_host(field_value(flat),
		    "other.example"));
		buf_free(&b);
		authres_free(ar);
	}
}

/* ------------------------------------------------------------------ */
/* The reader. */

/* A JSON string at p (after its quote) decoded into out; returns the
 * position after the closing quote. Handles \" \\ \/ \r \n \t. */
static const char *
json_string(const char *p, char *out, size_t size)
{
	size_t o = 0;
	char c;

	while (*p != '"') {
		assert_true(*p != '\0' && o + 1 < size);
		c = *p++;
		if (c == '\\') {
			c = *p++;
			c = c == 'r' ? '\r' : c == 'n' ? '\n' : c == 't' ? '\t' :
			    c;
		}
		out[o++] = c;
	}
	out[o] = '\0';
	return p + 1;
}

static void
test_samples(void **state)
{
	char path[1024], text[8192], value[1024], id[256], got[256];
	const char *p, *err;
	size_t len;
	int n = 0, r;
	FILE *fp = NULL;

	(void)state;
	fp = fopen(test_conformance_path(path, sizeof(path),
	    "dmarc/authres/go-msgauth-authres-samples.json"), "r");
	if (fp == NULL)
		fail_msg("cannot open %s", path);
	len = fread(text, 1, sizeof(text) - 1, fp);
	text[len] = '\0';
	fclose(fp);
	for (p = text; (p = strstr(p, "\"value\": \"")) != NULL;) {
		p = json_string(p + 10, value, sizeof(value));
		p = strstr(p, "\"authserv_id\": \"");
		assert_non_null(p);
		p = json_string(p + 16, id, sizeof(id));
		n++;
		r = parse_exact(value, strlen(value), got, sizeof(got), &err);
		if (value[0] == '\0') {
			/* go-msgauth reads "" as an empty field; RFC 8601
			 * needs an authserv-id: an error for us, and an
			 * unreadable field is one to remove. */
			assert_int_equal(r, -1);
			assert_true(authres_claims_host(value, HOST));
			continue;
		}
		if (r < 0)
			fail_msg("'%s' refused: %s", test_esc(value), err);
		assert_string_equal(got, id);
		assert_true(claims_exact(value, strlen(value), id));
		assert_false(claims_exact(value, strlen(value), "other." HOST));
	}
	print_message("go-msgauth samples: %d read\n", n);
	assert_int_equal(n, 13);
}

struct parse_case {
	const char *value;
	int n;			/* results, 0 for none, -1 an error */
	const char *id;
};

static const struct parse_case parse_cases[] = {
	/*
	 * The examples of RFC 8601 Appendix B (the same as RFC 5451 and RFC
	 * 7601 B.2-B.6; B.4 and B.6 written folded, B.6 with reason=), of
	 * RFC 6008 A.1 (header.b), RFC 6212 A.1 (vbr) and the comment-heavy
	 * one of RFC 7601 B.8.
	 */
	{ "example.org 1; none", 0, "example.org" },
	{ "example.com; spf=pass smtp.mailfrom=example.net", 1,
	    "example.com" },
	{ "example.com;\r\n   auth=pass (cram-md5) smtp.auth=sender@example.net;"
	    "\r\n   spf=pass smtp.mailfrom=example.net", 2, "example.com" },
	{ "example.com; iprev=pass\r\n   policy.iprev=192.0.2.200", 1,
	    "example.com" },
	{ "example.com;\r\n   sender-id=fail header.from=example.com;\r\n"
	    "   dkim=pass (good signature) header.d=example.com", 2,
	    "example.com" },
	{ "example.com;\r\n   dkim=pass reason=\"good signature\"\r\n"
	    "     header.i=@mail-router.example.net;\r\n   dkim=fail "
	    "reason=\"bad signature\"\r\n     header.i=@newyork.example.com", 2,
	    "example.com" },
	{ "example.net;\r\n   dkim=pass (good signature) "
	    "header.i=@newyork.example.com", 1, "example.net" },
	{ "mail-router.example.net;\r\n   dkim=pass (good signature)\r\n"
	    "     header.d=newyork.example.com header.b=oINEO8hg;\r\n"
	    "   dkim=fail (bad signature) header.d=newyork.example.com\r\n"
	    "     header.b=EToRSuvU", 2, "mail-router.example.net" },
	{ "mail-router.example.net; dkim=pass (good signature) "
	    "header.d=newyork.example.com header.b=oINEO8hg; vbr=pass "
	    "(voucher.example.net) header.md=newyork.example.com "
	    "header.mv=voucher.example.org", 2, "mail-router.example.net" },
	{ "example.com; sender-id=fail header.from=example.com; dkim=pass "
	    "(good signature) header.i=sender@example.com", 2, "example.com" },
	{ "foo.example.net (foobar) 1 (baz);\r\n    dkim (Because I like it) "
	    "/ 1 (One yay) = (wait for it) fail\r\n      policy (A dot can go "
	    "here) . (like that) expired\r\n      (this surprised me) = "
	    "(as I wasn't expecting it) 1362471462", 1, "foo.example.net" },
	/* Ours. */
	{ "\"quoted id\"; none", 0, "quoted id" },
	{ "example.com; none\r\n", 0, "example.com" },
	{ "example.com;none", 0, "example.com" },
	{ "example.com; dkim=pass header.b=\"ab/cd+e=\"", 1, "example.com" },
	{ "example.com; x=y (a (nested) comment) a.b=c d.e=f", 1,
	    "example.com" },
	{ "example.com; spf=pass;", 1, "example.com" },
	{ "", -1, NULL },
	{ "   ", -1, NULL },
	{ "; spf=pass", -1, NULL },
	{ "example.com", -1, NULL },
	{ "example.com;", -1, NULL },
	{ "example.com; ", -1, NULL },
	{ "example.com spf=pass", -1, NULL },
	{ "example.com; spf", -1, NULL },
	{ "example.com; spf=", -1, NULL },
	{ "example.com; spf=pass smtp", -1, NULL },
	{ "example.com; spf=pass smtp.mailfrom", -1, NULL },
	{ "example.com; spf=pass smtp.mailfrom=", -1, NULL },
	{ "example.com; spf=pass smtp.mailfrom=a/b", -1, NULL },
	{ "example.com; spf=pass smtp.mailfrom=a@", -1, NULL },
	{ "example.com; spf=pass (unclosed", -1, NULL },
	{ "example.com; spf=pass )", -1, NULL },
	{ "example.com; spf=pass \"x\"", -1, NULL },
	{ "example.com; spf=pass a.b=\"unclosed", -1, NULL },
	{ "example.com; spf=pass\r\nX-Other: 1", -1, NULL },
	{ "example.com; spf=pass\rx", -1, NULL },
	{ "example.com; spf=pass\x01", -1, NULL },
	{ "example.com; spf=pass;;", -1, NULL },
	{ "example.com; none; spf=pass", -1, NULL },
	{ "example.com; dkim/=pass", -1, NULL },
	{ "example.com 1 2; none", -1, NULL },
	{ "example.com; spf=pass reason=a reason=b", -1, NULL },
	{ "example.com; spf=pass ((((((((((((((((((deep))))))))))))))))))", -1,
	    NULL },
};

static void
test_parse_table(void **state)
{
	char id[256];
	const char *err;
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < nitems(parse_cases); i++) {
		const struct parse_case *c = &parse_cases[i];

		err = NULL;
		r = parse_exact(c->value, strlen(c->value), id, sizeof(id),
		    &err);
		if (r != c->n)
			fail_msg("'%s': got %d (%s), want %d",
			    test_esc(c->value), r, err != NULL ? err : "",
			    c->n);
		if (r >= 0)
			assert_string_equal(id, c->id);
		else
			assert_non_null(err);
	}
	/* A NUL inside. */
	assert_int_equal(authres_parse("a.example; no\0ne", 16, NULL, 0, NULL),
	    -1);
}

/*
 * An authserv-id longer than the caller's buffer is refused, quoted or
 * not, never cut short: a cut id would be another name, and
 * authres_claims_hostn() does not read it as that name either (found by
 * tests/fuzz/fuzz_headers.c, tests/fuzz/regressions/headers/).
 */
static void
test_parse_id_too_long(void **state)
{
	char small[8], id[64], *claims;
	const char *err;

	(void)state;
	err = NULL;
	assert_int_equal(parse_exact("\"host.example\"; none", 20, small,
	    sizeof(small), &err), -1);
	assert_non_null(err);
	err = NULL;
	assert_int_equal(parse_exact("host.example; none", 18, small,
	    sizeof(small), &err), -1);
	assert_non_null(err);
	/* Exactly one octet less than the buffer fits. */
	assert_int_equal(parse_exact("abcdefg; none", 13, small,
	    sizeof(small), NULL), 0);
	assert_string_equal(small, "abcdefg");
	assert_int_equal(parse_exact("\"abcdefg\"; none", 15, small,
	    sizeof(small), NULL), 0);
	assert_string_equal(small, "abcdefg");
	assert_int_equal(parse_exact("abcdefgh; none", 14, small,
	    sizeof(small), NULL), -1);
	/* Without a buffer, any length parses. */
	assert_int_equal(parse_exact("host.example; none", 18, NULL, 0, NULL),
	    0);
	/* And what parses names the id that authres_claims_hostn() sees. */
	assert_int_equal(parse_exact("\"mx.example.net\" (c) 3; none", 28, id,
	    sizeof(id), NULL), 0);
	claims = xstrdup(id);
	assert_true(claims_exact("\"mx.example.net\" (c) 3; none", 28,
	    claims));
	free(claims);
}

/* Every prefix and random mutations: no crash, no over-read (ASan). */
static void
test_parse_mutations(void **state)
{
	static const char interesting[] = ";=.@()\"\\ \t\r\n/1aZ\x80\xc3\xff";
	uint64_t seed = 0x0dd5eedULL;
	char buf[400], *copy;
	size_t i, k, len, pos, nedits;
	int round, ok = 0, bad = 0;

	(void)state;
	for (i = 0; i < nitems(parse_cases); i++) {
		len = strlen(parse_cases[i].value);
		for (k = 0; k <= len; k++) {
			copy = test_dup_exact(parse_cases[i].value, k);
			(void)authres_parse(copy, k, NULL, 0, NULL);
			(void)authres_claims_hostn(copy, k, HOST);
			free(copy);
		}
	}
	for (round = 0; round < 100000; round++) {
		const char *src = parse_cases[rng_below(&seed,
		    nitems(parse_cases))].value;
		char id[64];

		len = strlen(src);
		memcpy(buf, src, len);
		nedits = 1 + rng_below(&seed, 3);
		for (k = 0; k < nedits; k++) {
			pos = rng_below(&seed, len + 1);
			if (pos < len && rng_below(&seed, 2))
				buf[pos] = interesting[rng_below(&seed,
				    sizeof(interesting) - 1)];
			else if (pos < len)
				buf[pos] = (char)rng_below(&seed, 256);
			else if (len < sizeof(buf))
				buf[len++] = interesting[rng_below(&seed,
				    sizeof(interesting) - 1)];
		}
		copy = test_dup_exact(buf, len);
		/* A small id buffer: truncation, never overflow. */
		if (authres_parse(copy, len, id, sizeof(id), NULL) >= 0)
			ok++;
		else
			bad++;
		(void)authres_claims_hostn(copy, len, HOST);
		free(copy);
	}
	print_message("mutations: %d accepted, %d refused\n", ok, bad);
	assert_true(ok > 1000 && bad > 1000);
}

/* ------------------------------------------------------------------ */
/* Forged fields. */

struct claim_case {
	const char *value;
	bool claims;
};

static const struct claim_case claim_cases[] = {
	{ HOST "; spf=pass smtp.mailfrom=example.org", true },
	{ "MX.Example.NET; spf=pass", true },
	{ HOST ".; spf=pass", true },
	{ HOST " 1; none", true },
	{ HOST "1; none", false },
	{ "  (forged by someone) " HOST " (v) 1 ; none", true },
	{ "\r\n\t" HOST ";\r\n\tdmarc=pass", true },
	{ "\"" HOST "\"; none", true },
	{ "\"" HOST " \"; none", false },
	{ HOST "(comment); none", true },
	{ HOST, true },
	{ HOST "; this is not valid at all (", true },
	{ "evil." HOST "; dmarc=pass", false },
	{ HOST ".evil; dmarc=pass", false },
	{ HOST "x; dmarc=pass", false },
	{ "other.example; spf=pass smtp.mailfrom=" HOST, false },
	{ "other.example; dkim=pass header.d=" HOST "; " HOST "=pass", false },
	{ "other.example (" HOST "); none", false },
	/* Unreadable up to the authserv-id: removed. */
	{ "", true },
	{ "   ", true },
	{ "(unclosed " HOST "; none", true },
	{ "; dmarc=pass", true },
	{ HOST "/x; none", true },
	{ "user@" HOST "; none", true },
	{ "\"" HOST "; none", true },
	{ "\x01" HOST "; none", true },
	{ "\r" HOST "; none", true },
};

static void
test_claims_host(void **state)
{
	size_t i;
	bool r;

	(void)state;
	for (i = 0; i < nitems(claim_cases); i++) {
		const struct claim_case *c = &claim_cases[i];

		r = claims_exact(c->value, strlen(c->value), HOST);
		if (r != c->claims)
			fail_msg("'%s': got %d, want %d", test_esc(c->value), r,
			    c->claims);
		assert_true(authres_claims_host(c->value, HOST) == r);
	}
	/* Our hostname written with a trailing dot. */
	assert_true(authres_claims_host(HOST "; none", HOST "."));
	assert_false(authres_claims_host("x.example; none", NULL));
	assert_true(authres_claims_host(NULL, HOST));
	/* Only len octets are read. */
	assert_false(authres_claims_hostn(HOST "; none", 5, HOST));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_issue_example),
		cmocka_unit_test(test_build_none),
		cmocka_unit_test(test_build_quoting),
		cmocka_unit_test(test_build_comments_reasons),
		cmocka_unit_test(test_build_refusals),
		cmocka_unit_test(test_build_random),
		cmocka_unit_test(test_samples),
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_parse_mutations),
		cmocka_unit_test(test_parse_id_too_long),
		cmocka_unit_test(test_claims_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
