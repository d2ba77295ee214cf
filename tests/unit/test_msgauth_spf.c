/*
 * test_msgauth_spf.c: SPF (RFC 7208) without the openspf suite (that is
 * test_msgauth_spf_suite.c): the record parser on valid records and on
 * one invalid record per error class, every prefix of each (read past the
 * end shows under ASan), macro expansion with the RFC 7208 7.4 examples
 * exactly, the 253-octet truncation and URL escapes; check_host() over
 * the fake resolver: the processing limits at and over each bound, the
 * include table, redirect, exp and the default explanation, the HELO
 * identity, the timer, and cancellation (no callback, nothing leaked);
 * then a mutation test of the parser and expansion with a fixed seed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/event.h>

#include "testutil.h"

#include "dns/dns.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "msgauth/spf.h"

#include "dns_fake_fixture.h"

/*
 * The parser.
 */

static struct spf_record *
parse(const char *txt, char *err, size_t errlen)
{
	return spf_record_parse(txt, strlen(txt), err, errlen);
}

static void
test_spf_is_spf1(void **state)
{
	static const struct {
		const char *txt;
		bool want;
	} cases[] = {
		{ "v=spf1", true },
		{ "v=spf1 -all", true },
		{ "V=SpF1 ~all", true },
		{ "v=spf1  ", true },
		{ "v=spf10", false },
		{ "v=spf1-all", false },
		{ "v=spf", false },
		{ " v=spf1", false },
		{ "v=spf2.0/pra", false },
		{ "", false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++)
		if (spf_record_is_spf1(cases[i].txt, strlen(cases[i].txt)) !=
		    cases[i].want)
			fail_msg("\"%s\": got %d, want %d", cases[i].txt,
			    !cases[i].want, cases[i].want);
}

static void
test_spf_parse_valid(void **state)
{
	char err[256];
	struct spf_record *r;
	const struct spf_term *t;

	(void)state;
	r = parse("v=spf1 +a -mx:mx.example.com/24//64 ~ptr ?ip4:192.0.2.0/24 "
	    "ip6:2001:db8::/32 include:_spf.example.net exists:%{i}.x.example "
	    "all redirect=r.example.org exp=e.%{d} foo-bar.baz=%{l}x  ", err,
	    sizeof(err));
	if (r == NULL)
		fail_msg("got error \"%s\"", err);
	assert_int_equal(r->nterms, 11);
	assert_int_equal(r->dns_terms, 6);
	t = &r->terms[0];
	assert_int_equal(t->type, SPF_MECH_A);
	assert_int_equal(t->qual, SPF_PASS);
	assert_null(t->spec);
	assert_int_equal(t->cidr4, 32);
	assert_int_equal(t->cidr6, 128);
	t = &r->terms[1];
	assert_int_equal(t->type, SPF_MECH_MX);
	assert_int_equal(t->qual, SPF_FAIL);
	assert_string_equal(t->spec, "mx.example.com");
	assert_int_equal(t->cidr4, 24);
	assert_int_equal(t->cidr6, 64);
	assert_string_equal(t->text, "-mx:mx.example.com/24//64");
	t = &r->terms[2];
	assert_int_equal(t->type, SPF_MECH_PTR);
	assert_int_equal(t->qual, SPF_SOFTFAIL);
	t = &r->terms[3];
	assert_int_equal(t->type, SPF_MECH_IP4);
	assert_int_equal(t->qual, SPF_NEUTRAL);
	assert_int_equal(t->net.family, AF_INET);
	assert_int_equal(t->net.addr[0], 192);
	assert_int_equal(t->cidr4, 24);
	t = &r->terms[4];
	assert_int_equal(t->type, SPF_MECH_IP6);
	assert_int_equal(t->cidr6, 32);
	assert_int_equal(r->terms[5].type, SPF_MECH_INCLUDE);
	assert_string_equal(r->terms[5].spec, "_spf.example.net");
	assert_int_equal(r->terms[6].type, SPF_MECH_EXISTS);
	assert_int_equal(r->terms[7].type, SPF_MECH_ALL);
	assert_ptr_equal(r->redirect, &r->terms[8]);
	assert_string_equal(r->redirect->spec, "r.example.org");
	assert_ptr_equal(r->exp, &r->terms[9]);
	t = &r->terms[10];
	assert_int_equal(t->type, SPF_MOD_UNKNOWN);
	assert_string_equal(t->name, "foo-bar.baz");
	assert_string_equal(t->spec, "%{l}x");
	spf_record_free(r);

	/* Empty record, case, dual cidr without domain, macro-ended specs. */
	r = parse("v=spf1", err, sizeof(err));
	assert_non_null(r);
	assert_int_equal(r->nterms, 0);
	spf_record_free(r);
	r = parse("v=spf1 A//0 MX/0 PTR:%{d} Exists:%{p} a:foo%- "
	    "a:x.xn--zckzah. ip6:::ffff:1.2.3.4 ip4:0.0.0.0/0", err,
	    sizeof(err));
	if (r == NULL)
		fail_msg("got error \"%s\"", err);
	assert_int_equal(r->nterms, 8);
	assert_int_equal(r->terms[0].cidr6, 0);
	assert_int_equal(r->terms[1].cidr4, 0);
	assert_true(r->terms[3].uses_p);
	assert_false(r->terms[2].uses_p);
	spf_record_free(r);
	spf_record_free(NULL);
}

static void
test_spf_parse_invalid(void **state)
{
	static const struct {
		const char *txt;
		const char *err;	/* a part of the reason */
	} cases[] = {
		{ "v=spf10 -all", "not a v=spf1" },
		{ "spf1", "not a v=spf1" },
		{ "v=spf1 a:foo\rptr", "invalid character" },
		{ "v=spf1 \x80" "a", "invalid character" },
		{ "v=spf1\t-all", "not a v=spf1" },
		{ "v=spf1 -all moo", "unknown mechanism" },
		{ "v=spf1 -all.", "unknown mechanism" },
		{ "v=spf1 redirect:x.example.com", "unknown mechanism" },
		{ "v=spf1 moo.cow/x=y", "unknown mechanism" },
		{ "v=spf1 =all", "invalid term" },
		{ "v=spf1 1up=foo", "invalid term" },
		{ "v=spf1 -", "invalid term" },
		{ "v=spf1 -foo=bar", "unknown mechanism" },
		{ "v=spf1 -all:foo", "all takes no argument" },
		{ "v=spf1 all/8", "all takes no argument" },
		{ "v=spf1 include", "domain-spec is required" },
		{ "v=spf1 include:", "empty domain-spec" },
		{ "v=spf1 exists", "domain-spec is required" },
		{ "v=spf1 ptr/0", "domain-spec is required" },
		{ "v=spf1 ptr:", "empty domain-spec" },
		{ "v=spf1 a:", "empty domain-spec" },
		{ "v=spf1 a/33", "bad ip4 cidr" },
		{ "v=spf1 a//129", "bad ip6 cidr" },
		{ "v=spf1 a/24/64", "bad ip4 cidr" },
		{ "v=spf1 mx/032", "bad ip4 cidr" },
		{ "v=spf1 a:museum", "top label" },
		{ "v=spf1 a:museum.", "top label" },
		{ "v=spf1 a:abc.123", "top label" },
		{ "v=spf1 a:example.-com", "top label" },
		{ "v=spf1 a:example.com:8080", "top label" },
		{ "v=spf1 include:x.example.com/24", "top label" },
		{ "v=spf1 ip4", "address is required" },
		{ "v=spf1 ip4:1.2.3", "bad ip4 address" },
		{ "v=spf1 ip4:1.2.3.04", "bad ip4 address" },
		{ "v=spf1 ip4:1.2.3.256", "bad ip4 address" },
		{ "v=spf1 ip4:1.2.3.4:8080", "bad ip4 address" },
		{ "v=spf1 ip4:1.2.3.4/33", "bad cidr" },
		{ "v=spf1 ip4:1.2.3.4//32", "bad cidr" },
		{ "v=spf1 ip6::CAFE::BABE", "bad ip6 address" },
		{ "v=spf1 ip6:::1/129", "bad cidr" },
		{ "v=spf1 ip6:::1//33", "bad cidr" },
		{ "v=spf1 exp=", "empty domain-spec" },
		{ "v=spf1 redirect=-all", "top label" },
		{ "v=spf1 redirect=a.example redirect=b.example", "twice" },
		{ "v=spf1 exp=a.example exp=b.example", "twice" },
		{ "v=spf1 foo=%abc", "'%' not followed" },
		{ "v=spf1 foo=50%", "'%' at the end" },
		{ "v=spf1 a:%{a}.example.com", "unknown macro letter" },
		{ "v=spf1 exists:%(ir).sbl.example.com", "'%' not followed" },
		{ "v=spf1 exp=%{r}.example.com", "exp text only" },
		{ "v=spf1 foo=%{t}", "exp text only" },
		{ "v=spf1 a:%{d0}.example.com", "digit transformer of 0" },
		{ "v=spf1 a:%{d2x}.example.com", "bad macro syntax" },
		{ "v=spf1 a:%{", "unterminated macro" },
		{ "v=spf1 a:%{d", "bad macro syntax" },
	};
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		struct spf_record *r = parse(cases[i].txt, err, sizeof(err));

		if (r != NULL)
			fail_msg("\"%s\": parsed, want error \"%s\"",
			    test_escn(cases[i].txt, strlen(cases[i].txt)),
			    cases[i].err);
		if (strstr(err, cases[i].err) == NULL)
			fail_msg("\"%s\": got error \"%s\", want \"%s\"",
			    test_escn(cases[i].txt, strlen(cases[i].txt)),
			    err, cases[i].err);
	}
	/* A NUL is a byte like any other: refused, not an end. */
	assert_null(spf_record_parse("v=spf1 a:foo.example.com\0", 25, err,
	    sizeof(err)));
	assert_non_null(strstr(err, "invalid character 0x00"));
}

/* Every prefix of a record, in a buffer of exactly that size. */
static void
test_spf_parse_prefixes(void **state)
{
	static const char *const recs[] = {
		"v=spf1 +a -mx:mx.example.com/24//64 ~ptr ?ip4:192.0.2.0/24 "
		    "ip6:2001:db8::/32 include:_spf.example.net "
		    "exists:%{ir}.%{l1r-}.x.example all redirect=r.example.org "
		    "exp=e.%{d} foo=%{L}%%%_%-",
		"v=spf1 a:%{d2}.x.example/0//0 ip6:::ffff:1.2.3.4/128",
	};
	struct spf_record *r;
	char err[256];
	size_t i, n;

	(void)state;
	for (i = 0; i < nitems(recs); i++) {
		size_t len = strlen(recs[i]);

		for (n = 0; n <= len; n++) {
			char *p = xmalloc(n > 0 ? n : 1);

			memcpy(p, recs[i], n);
			spf_record_free(spf_record_parse(p, n, err,
			    sizeof(err)));
			free(p);
		}
		r = spf_record_parse(recs[i], len, err, sizeof(err));
		if (r == NULL)
			fail_msg("%s: %s", recs[i], err);
		spf_record_free(r);
	}
}

/*
 * Macros.
 */

static void
env_rfc(struct spf_macro_env *env, bool v6)
{
	memset(env, 0, sizeof(*env));
	env->sender = "strong-bad@email.example.com";
	env->local = "strong-bad";
	env->sender_domain = "email.example.com";
	env->domain = "email.example.com";
	env->helo = "mx.example.org";
	if (v6) {
		env->ip.family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, "2001:db8::cb01",
		    env->ip.addr), 1);
	} else {
		env->ip.family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, "192.0.2.3",
		    env->ip.addr), 1);
	}
	env->timestamp = 1234567890;
}

static void
expect(const struct spf_macro_env *env, enum spf_macro_mode mode,
    const char *in, const char *want)
{
	struct buf b;
	const char *why = NULL;

	buf_init(&b, SPF_MACRO_MAX);
	if (spf_macro_expand(in, strlen(in), mode, env, &b, &why) == -1)
		fail_msg("%s: error \"%s\", want \"%s\"", in, why, want);
	if (strcmp(buf_str(&b), want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", in, buf_str(&b),
		    want);
	buf_free(&b);
}

/* RFC 7208 7.4, every example exactly. */
static void
test_spf_macro_rfc_examples(void **state)
{
	static const struct {
		const char *in, *want;
	} v4[] = {
		{ "%{s}", "strong-bad@email.example.com" },
		{ "%{o}", "email.example.com" },
		{ "%{d}", "email.example.com" },
		{ "%{d4}", "email.example.com" },
		{ "%{d3}", "email.example.com" },
		{ "%{d2}", "example.com" },
		{ "%{d1}", "com" },
		{ "%{dr}", "com.example.email" },
		{ "%{d2r}", "example.email" },
		{ "%{l}", "strong-bad" },
		{ "%{l-}", "strong.bad" },
		{ "%{lr}", "strong-bad" },
		{ "%{lr-}", "bad.strong" },
		{ "%{l1r-}", "strong" },
		{ "%{ir}.%{v}._spf.%{d2}",
		    "3.2.0.192.in-addr._spf.example.com" },
		{ "%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com" },
		{ "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
		    "bad.strong.lp.3.2.0.192.in-addr._spf.example.com" },
		{ "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
		    "3.2.0.192.in-addr.strong.lp._spf.example.com" },
		{ "%{d2}.trusted-domains.example.net",
		    "example.com.trusted-domains.example.net" },
	};
	struct spf_macro_env env;
	size_t i;

	(void)state;
	env_rfc(&env, false);
	for (i = 0; i < nitems(v4); i++)
		expect(&env, SPF_MACRO_DOMAIN, v4[i].in, v4[i].want);
	env_rfc(&env, true);
	expect(&env, SPF_MACRO_DOMAIN, "%{ir}.%{v}._spf.%{d2}",
	    "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
	    ".ip6._spf.example.com");
}

static void
test_spf_macro_more(void **state)
{
	struct spf_macro_env env;
	struct buf b;
	const char *why;
	char big[600];
	size_t i;

	(void)state;
	env_rfc(&env, false);
	/* Escapes, exp-only letters, URL escaping of upper-case letters. */
	expect(&env, SPF_MACRO_DOMAIN, "a%%b%_c%-d.example",
	    "a%b c%20d.example");
	expect(&env, SPF_MACRO_EXP, "%{c} %{r} %{t} %{p} %{v} %{h}",
	    "192.0.2.3 unknown 1234567890 unknown in-addr mx.example.org");
	env.receiver = "mx.receiver.example";
	env.ptr = "host.example.com";
	expect(&env, SPF_MACRO_EXP, "%{r} %{p}",
	    "mx.receiver.example host.example.com");
	env.local = "~jack&jill=up-a_b3.c";
	expect(&env, SPF_MACRO_EXP, "l=%{L}", "l=~jack%26jill%3Dup-a_b3.c");
	expect(&env, SPF_MACRO_EXP, "%{l2r+-=}", "up.~jack&jill");
	expect(&env, SPF_MACRO_DOMAIN, "%{D2R}", "example.email");
	expect(&env, SPF_MACRO_DOMAIN, "%{d128}", "email.example.com");
	expect(&env, SPF_MACRO_DOMAIN, "%{d}.", "email.example.com");
	/* IPv6: %{c} is the RFC 5952 form; %{i} nibbles, case as asked. */
	env_rfc(&env, true);
	expect(&env, SPF_MACRO_EXP, "%{c} %{v}", "2001:db8::cb01 ip6");
	env.ip_upper = true;
	expect(&env, SPF_MACRO_DOMAIN, "%{i}",
	    "2.0.0.1.0.D.B.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.C.B.0.1");

	/* RFC 7208 7.3: over 253 octets, whole labels go from the left. */
	env_rfc(&env, false);
	env.domain = "somewhat.long.exp.example.com";
	expect(&env, SPF_MACRO_DOMAIN,
	    "foobar.%{d}.%{d}.%{d}.%{d}.%{d}.%{d}.%{d}.%{d}.example.com",
	    "somewhat.long.exp.example.com.somewhat.long.exp.example.com."
	    "somewhat.long.exp.example.com.somewhat.long.exp.example.com."
	    "somewhat.long.exp.example.com.somewhat.long.exp.example.com."
	    "somewhat.long.exp.example.com.somewhat.long.exp.example.com."
	    "example.com");
	/* Exactly 253 stays; the explanation is never cut. */
	memset(big, 'a', 249);
	memcpy(big + 249, ".com", 5);
	expect(&env, SPF_MACRO_DOMAIN, big, big);
	big[0] = 'b';
	memcpy(big + 249, ".xcom", 6);
	buf_init(&b, SPF_MACRO_MAX);
	assert_int_equal(spf_macro_expand(big, strlen(big), SPF_MACRO_EXP,
	    &env, &b, &why), 0);
	assert_int_equal(b.len, 254);
	/* One label over 253: nothing to cut at (the query refuses it). */
	assert_int_equal(spf_macro_expand(big, strlen(big), SPF_MACRO_DOMAIN,
	    &env, &b, &why), 0);
	assert_int_equal(b.len, 4);
	assert_string_equal(buf_str(&b), "xcom");

	/* Refusals. */
	assert_int_equal(spf_macro_expand("%{c}", 4, SPF_MACRO_DOMAIN, &env,
	    &b, &why), -1);
	assert_int_equal(spf_macro_expand("a b", 3, SPF_MACRO_DOMAIN, &env,
	    &b, &why), -1);
	assert_int_equal(spf_macro_expand("a b", 3, SPF_MACRO_EXP, &env, &b,
	    &why), 0);
	assert_int_equal(spf_macro_expand("%", 1, SPF_MACRO_EXP, &env, &b,
	    &why), -1);
	assert_int_equal(spf_macro_expand("%{x}", 4, SPF_MACRO_EXP, &env, &b,
	    &why), -1);
	assert_int_equal(spf_macro_expand("\x96", 1, SPF_MACRO_EXP, &env,
	    &b, &why), -1);
	/* The cap on an expansion's size. */
	{
		struct buf spec;

		buf_init(&spec, 8192);
		for (i = 0; i < 200; i++)
			assert_int_equal(buf_append_str(&spec, "%{s}"), 0);
		assert_int_equal(spf_macro_expand(spec.data, spec.len,
		    SPF_MACRO_EXP, &env, &b, &why), -1);
		assert_non_null(strstr(why, "too long"));
		buf_free(&spec);
	}
	buf_free(&b);

	/* Domain-spec syntax (RFC 7208 7.1). */
	assert_true(spf_domain_spec_valid("a.example.xn--zckzah", 20, &why));
	assert_true(spf_domain_spec_valid("%{d}", 4, &why));
	assert_true(spf_domain_spec_valid("x.123-456", 9, &why));
	assert_true(spf_domain_spec_valid("foo:bar/baz.example.com", 23,
	    &why));
	assert_false(spf_domain_spec_valid("%{d}.", 5, &why));
	assert_false(spf_domain_spec_valid("foo-bar", 7, &why));
	assert_false(spf_domain_spec_valid("x.-ab", 5, &why));
	assert_false(spf_domain_spec_valid("", 0, &why));
}

/*
 * check_host() over the fake resolver.
 */

struct zone {
	const char *name;
	uint16_t type;
	enum dns_status st;
	const char *v[13];
};

struct got {
	int calls;
	enum spf_result result;
	char mech[256];
	char exp[512];
	char reason[300];
	unsigned int dns_terms, queries;
	char identity[16];
	char domain[DNS_NAME_MAX];
};

static void
got_cb(void *arg, const struct spf_outcome *o)
{
	struct got *g = arg;

	g->calls++;
	g->result = o->result;
	strlcpy(g->mech, o->mechanism != NULL ? o->mechanism : "",
	    sizeof(g->mech));
	strlcpy(g->exp, o->explanation != NULL ? o->explanation : "(null)",
	    sizeof(g->exp));
	strlcpy(g->reason, o->reason, sizeof(g->reason));
	strlcpy(g->identity, o->identity, sizeof(g->identity));
	strlcpy(g->domain, o->domain, sizeof(g->domain));
	g->dns_terms = o->dns_terms;
	g->queries = o->queries;
}

static void
load(struct dns *d, const struct zone *z, size_t n)
{
	size_t i, k;

	for (i = 0; i < n; i++) {
		for (k = 0; k < nitems(z[i].v) && z[i].v[k] != NULL; k++)
			;
		dns_fake_set(d, z[i].name, z[i].type, z[i].st, z[i].v, k);
	}
}

static void
run(struct dns_fixture *f, const char *ip, const char *mfrom,
    const char *helo, struct got *g)
{
	struct spf_request req;

	memset(&req, 0, sizeof(req));
	memset(g, 0, sizeof(*g));
	req.ip = ip;
	req.mail_from = mfrom;
	req.helo = helo;
	req.receiver = "mx.receiver.test";
	spf_check(f->d, &req, got_cb, g);
	assert_int_equal(g->calls, 0);	/* never from inside the call */
	dns_fixture_run(f);
	assert_int_equal(g->calls, 1);
	assert_int_equal(spf_running(), 0);
}

static void
want(const struct got *g, enum spf_result r, const char *what)
{
	if (g->result != r)
		fail_msg("%s: got %s (%s), want %s", what,
		    spf_result_name(g->result), g->reason,
		    spf_result_name(r));
}

#define T(n, ty, ...) { n, DNS_TYPE_##ty, DNS_OK, { __VA_ARGS__, NULL } }

static void
test_spf_check_basic(void **state)
{
	struct dns_fixture *f = *state;
	static const struct zone z[] = {
		T("example.test", TXT, "v=spf1 ip4:192.0.2.0/24 "
		    "a:h.example.test "
		    "-all exp=why.example.test", "unrelated text"),
		T("h.example.test", A, "198.51.100.7"),
		T("h.example.test", AAAA, "2001:db8::7"),
		T("why.example.test", TXT, "%{i} may not send for %{d} (%{l})"),
		T("helo.example.test", TXT, "v=spf1 ~all"),
		T("none.example.test", A, "192.0.2.1"),
	};
	struct got g;

	load(f->d, z, nitems(z));
	run(f, "192.0.2.10", "u@example.test", "helo.example.test", &g);
	want(&g, SPF_PASS, "ip4");
	assert_string_equal(g.mech, "ip4:192.0.2.0/24");
	assert_string_equal(g.identity, "mailfrom");
	assert_string_equal(g.domain, "example.test");
	assert_string_equal(g.exp, "(null)");
	run(f, "198.51.100.7", "u@EXAMPLE.test", "x", &g);
	want(&g, SPF_PASS, "a");
	assert_string_equal(g.mech, "a:h.example.test");
	assert_int_equal(g.dns_terms, 1);
	run(f, "2001:db8::7", "u@example.test", "x", &g);
	want(&g, SPF_PASS, "a over AAAA");
	run(f, "::ffff:198.51.100.7", "u@example.test", "x", &g);
	want(&g, SPF_PASS, "IPv4-mapped is IPv4");
	run(f, "203.0.113.1", "Who@example.test", "x", &g);
	want(&g, SPF_FAIL, "-all");
	assert_string_equal(g.mech, "-all");
	assert_string_equal(g.exp,
	    "203.0.113.1 may not send for example.test (Who)");
	/* The HELO identity when MAIL FROM is <>. */
	run(f, "203.0.113.1", "", "helo.example.test", &g);
	want(&g, SPF_SOFTFAIL, "helo");
	assert_string_equal(g.identity, "helo");
	assert_string_equal(g.domain, "helo.example.test");
	run(f, "203.0.113.1", "u@none.example.test", "x", &g);
	want(&g, SPF_NONE, "no record");
	run(f, "203.0.113.1", "u@nxdomain.example.test", "x", &g);
	want(&g, SPF_NONE, "no domain");
	run(f, "203.0.113.1", "u@[192.0.2.1]", "x", &g);
	want(&g, SPF_NONE, "domain literal");
	run(f, "203.0.113.1", NULL, "localhost", &g);
	want(&g, SPF_NONE, "single label HELO");
	run(f, "not-an-ip", "u@example.test", "x", &g);
	want(&g, SPF_PERMERROR, "bad ip");
}

static void
test_spf_check_default_exp(void **state)
{
	struct dns_fixture *f = *state;
	static const struct zone z[] = {
		T("example.test", TXT, "v=spf1 -all exp=two.example.test"),
		T("two.example.test", TXT, "one", "two"),
	};
	struct spf_request req;
	struct got g;

	load(f->d, z, nitems(z));
	run(f, "192.0.2.1", "u@example.test", "x", &g);
	want(&g, SPF_FAIL, "fail");
	assert_string_equal(g.exp,
	    "example.test does not designate 192.0.2.1 as permitted sender");
	memset(&req, 0, sizeof(req));
	req.ip = "192.0.2.1";
	req.mail_from = "u@example.test";
	req.default_exp = "See %{r}/why?s=%{S}";
	req.receiver = "mx.test";
	spf_check(f->d, &req, got_cb, &g);
	dns_fixture_run(f);
	assert_string_equal(g.exp, "See mx.test/why?s=u%40example.test");
}

static void
test_spf_check_include_table(void **state)
{
	struct dns_fixture *f = *state;
	static const struct zone z[] = {
		T("pass.test", TXT, "v=spf1 +all"),
		T("fail.test", TXT, "v=spf1 -all"),
		T("soft.test", TXT, "v=spf1 ~all"),
		T("neutral.test", TXT, "v=spf1 ?all"),
		T("perm.test", TXT, "v=spf1 bogus"),
		T("noner.test", A, "192.0.2.9"),
		{ "temp.test", DNS_TYPE_TXT, DNS_TEMPFAIL, { NULL } },
		T("i1.test", TXT, "v=spf1 -include:pass.test +all"),
		T("i2.test", TXT, "v=spf1 include:fail.test -all"),
		T("i3.test", TXT, "v=spf1 include:soft.test -all"),
		T("i4.test", TXT, "v=spf1 include:neutral.test -all"),
		T("i5.test", TXT, "v=spf1 include:temp.test -all"),
		T("i6.test", TXT, "v=spf1 include:perm.test -all"),
		T("i7.test", TXT, "v=spf1 include:noner.test -all"),
		T("i8.test", TXT, "v=spf1 include:nx.test -all"),
		T("r1.test", TXT, "v=spf1 redirect=noner.test"),
		T("r2.test", TXT, "v=spf1 ip4:10.0.0.1 redirect=fail.test"),
		T("r3.test", TXT, "v=spf1 all redirect=fail.test"),
		T("m1.test", TXT, "v=spf1 include:x.test include:y.test"),
		T("x.test", TXT, "v=spf1 -all"),
		T("y.test", TXT, "v=spf1 ?ip4:192.0.2.1",
		    "v=spf1 ip4:192.0.2.1"),
	};
	struct got g;

	load(f->d, z, nitems(z));
	run(f, "192.0.2.1", "u@i1.test", "x", &g);
	want(&g, SPF_FAIL, "include pass -> match");
	assert_string_equal(g.mech, "-include:pass.test");
	run(f, "192.0.2.1", "u@i2.test", "x", &g);
	want(&g, SPF_FAIL, "include fail -> no match");
	assert_string_equal(g.mech, "-all");
	run(f, "192.0.2.1", "u@i3.test", "x", &g);
	want(&g, SPF_FAIL, "include softfail -> no match");
	run(f, "192.0.2.1", "u@i4.test", "x", &g);
	want(&g, SPF_FAIL, "include neutral -> no match");
	run(f, "192.0.2.1", "u@i5.test", "x", &g);
	want(&g, SPF_TEMPERROR, "include temperror");
	run(f, "192.0.2.1", "u@i6.test", "x", &g);
	want(&g, SPF_PERMERROR, "include permerror");
	run(f, "192.0.2.1", "u@i7.test", "x", &g);
	want(&g, SPF_PERMERROR, "include none");
	run(f, "192.0.2.1", "u@i8.test", "x", &g);
	want(&g, SPF_PERMERROR, "include nxdomain");
	run(f, "192.0.2.1", "u@r1.test", "x", &g);
	want(&g, SPF_PERMERROR, "redirect to no record");
	run(f, "192.0.2.1", "u@r2.test", "x", &g);
	want(&g, SPF_FAIL, "redirect");
	assert_string_equal(g.mech, "-all");
	run(f, "192.0.2.1", "u@r3.test", "x", &g);
	want(&g, SPF_PASS, "redirect after all: never used");
	assert_int_equal(g.dns_terms, 0);
	run(f, "192.0.2.1", "u@m1.test", "x", &g);
	want(&g, SPF_PERMERROR, "two records in an include");
}

static void
test_spf_check_limits(void **state)
{
	struct dns_fixture *f = *state;
	static const struct zone z[] = {
		/* 10 DNS-querying terms, then a match; 11 is too many. */
		T("ten.test", TXT, "v=spf1 a a a a a mx mx "
		    "exists:e.ten.test "
		    "ptr include:inc.test ip4:192.0.2.1 -all"),
		T("eleven.test", TXT, "v=spf1 a a a a a mx mx "
		    "exists:e.ten.test "
		    "ptr include:inc.test a ip4:192.0.2.1 -all"),
		T("ten.test", A, "198.51.100.1"),
		T("ten.test", MX, "10 ten.test"),
		T("e.ten.test", AAAA, "2001:db8::1"),
		T("inc.test", TXT, "v=spf1 ?ip4:10.1.1.1"),
		T("eleven.test", A, "198.51.100.1"),
		T("eleven.test", MX, "10 ten.test"),
		/* Void lookups: two are fine, the third is permerror. */
		T("void2.test", TXT, "v=spf1 a:nx1.test a:nx2.test "
		    "ip4:10.0.0.0/8"),
		T("void3.test", TXT, "v=spf1 a:nx1.test mx:nx2.test "
		    "exists:nx3.test all"),
		T("void3.test", A, "192.0.2.1"),
		/* MX: 10 names looked up, 11 is permerror. */
		T("mx10.test", TXT, "v=spf1 mx -all"),
		T("mx10.test", MX, "1 h1.test", "2 h2.test", "3 h3.test",
		    "4 h4.test", "5 h5.test", "6 h6.test", "7 h7.test",
		    "8 h8.test", "9 h9.test", "10 h10.test"),
		T("h10.test", A, "192.0.2.1"),
		T("mx11.test", TXT, "v=spf1 mx -all"),
		T("mx11.test", MX, "1 h1.test", "2 h2.test", "3 h3.test",
		    "4 h4.test", "5 h5.test", "6 h6.test", "7 h7.test",
		    "8 h8.test", "9 h9.test", "10 h10.test", "11 h11.test"),
		/* PTR: only the first 10 names count, no error. */
		T("ptr.test", TXT, "v=spf1 ptr -all"),
		T("1.2.0.192.in-addr.arpa", PTR, "a1.test", "a2.test",
		    "a3.test", "a4.test", "a5.test", "a6.test", "a7.test",
		    "a8.test", "a9.test", "a10.test", "h.ptr.test"),
		T("h.ptr.test", A, "192.0.2.1"),
		T("ptr2.test", TXT, "v=spf1 ptr:ptr.test -all"),
		T("2.2.0.192.in-addr.arpa", PTR, "h2.ptr.test"),
		T("h2.ptr.test", A, "192.0.2.2"),
		/* Recursion: a loop of includes stops at the term limit. */
		T("loop1.test", TXT, "v=spf1 include:loop2.test"),
		T("loop2.test", TXT, "v=spf1 include:loop1.test"),
		T("self.test", TXT, "v=spf1 redirect=self.test"),
	};
	struct got g;

	load(f->d, z, nitems(z));
	run(f, "192.0.2.1", "u@ten.test", "x", &g);
	want(&g, SPF_PASS, "10 DNS terms");
	assert_int_equal(g.dns_terms, 10);
	run(f, "192.0.2.1", "u@eleven.test", "x", &g);
	want(&g, SPF_PERMERROR, "11 DNS terms");
	assert_non_null(strstr(g.reason, "more than 10"));
	run(f, "192.0.2.1", "u@void2.test", "x", &g);
	want(&g, SPF_NEUTRAL, "2 void lookups");
	run(f, "192.0.2.1", "u@void3.test", "x", &g);
	want(&g, SPF_PERMERROR, "3 void lookups");
	assert_non_null(strstr(g.reason, "void"));
	run(f, "192.0.2.1", "u@mx10.test", "x", &g);
	want(&g, SPF_PASS, "10 MX names");
	assert_int_equal(dns_fake_count(f->d, "h9.test", DNS_TYPE_A), 1);
	run(f, "192.0.2.1", "u@mx11.test", "x", &g);
	want(&g, SPF_PERMERROR, "11 MX names");
	run(f, "192.0.2.1", "u@ptr.test", "x", &g);
	want(&g, SPF_FAIL, "the 11th PTR name is not looked at");
	assert_int_equal(dns_fake_count(f->d, "h.ptr.test", 0), 0);
	run(f, "192.0.2.2", "u@ptr2.test", "x", &g);
	want(&g, SPF_PASS, "ptr");
	run(f, "192.0.2.1", "u@loop1.test", "x", &g);
	want(&g, SPF_PERMERROR, "include loop");
	run(f, "192.0.2.1", "u@self.test", "x", &g);
	want(&g, SPF_PERMERROR, "redirect loop");
	assert_true(g.queries <= 12);
}

static void
test_spf_check_temperror(void **state)
{
	struct dns_fixture *f = *state;
	static const struct zone z[] = {
		T("a.test", TXT, "v=spf1 a:t.test -all"),
		T("mx.test", TXT, "v=spf1 mx:m.test -all"),
		T("m.test", MX, "10 t.test"),
		T("ptr.test", TXT, "v=spf1 ptr -all"),
		{ "t.test", DNS_TYPE_A, DNS_TEMPFAIL, { NULL } },
		{ "top.test", DNS_TYPE_TXT, DNS_TEMPFAIL, { NULL } },
		{ "1.2.0.192.in-addr.arpa", DNS_TYPE_PTR, DNS_TEMPFAIL,
		    { NULL } },
		T("order1.test", TXT, "v=spf1 a:t.test ip4:192.0.2.1"),
		T("order2.test", TXT, "v=spf1 ip4:192.0.2.1 a:t.test"),
	};
	struct got g;

	load(f->d, z, nitems(z));
	run(f, "192.0.2.1", "u@a.test", "x", &g);
	want(&g, SPF_TEMPERROR, "a");
	run(f, "192.0.2.1", "u@mx.test", "x", &g);
	want(&g, SPF_TEMPERROR, "an MX host's address");
	run(f, "192.0.2.1", "u@top.test", "x", &g);
	want(&g, SPF_TEMPERROR, "the record");
	run(f, "192.0.2.1", "u@ptr.test", "x", &g);
	want(&g, SPF_FAIL, "ptr errors do not match (RFC 7208 5.5)");
	/* Left to right: an error before a match wins, one after is never
	 * looked up. */
	run(f, "192.0.2.1", "u@order1.test", "x", &g);
	want(&g, SPF_TEMPERROR, "error first");
	assert_int_equal(dns_fake_count(f->d, "t.test", DNS_TYPE_A), 3);
	run(f, "192.0.2.1", "u@order2.test", "x", &g);
	want(&g, SPF_PASS, "match first");
	assert_int_equal(dns_fake_count(f->d, "t.test", DNS_TYPE_A), 3);
}

/* Client bytes a macro puts into a name reach the resolver escaped. */
static void
test_spf_check_query_names(void **state)
{
	struct dns_fixture *f = *state;
	static const struct zone z[] = {
		T("esc.test", TXT, "v=spf1 exists:%{l}.x.esc.test -all"),
		T("a b.x.esc.test", A, "127.0.0.2"),
	};
	struct got g;

	load(f->d, z, nitems(z));
	run(f, "192.0.2.1", "a\x01\\z@esc.test", "x", &g);
	want(&g, SPF_FAIL, "no such name");
	assert_int_equal(dns_fake_count(f->d, "a\\001\\\\z.x.esc.test",
	    DNS_TYPE_A), 1);
	run(f, "192.0.2.1", "a b@esc.test", "x", &g);
	want(&g, SPF_PASS, "a space is a byte like others");
	/* A label over 63 octets is not asked for: no match. */
	run(f, "192.0.2.1", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@esc.test", "x", &g);
	want(&g, SPF_FAIL, "long label");
	assert_int_equal(g.queries, 1);
}

static void
test_spf_check_timer(void **state)
{
	struct dns_fixture *f = *state;
	static const struct zone z[] = {
		T("example.test", TXT, "v=spf1 -all"),
	};
	struct spf_request req;
	struct got g;

	load(f->d, z, nitems(z));
	memset(&req, 0, sizeof(req));
	memset(&g, 0, sizeof(g));
	req.ip = "192.0.2.1";
	req.mail_from = "u@example.test";
	req.timeout_ms = 1;
	spf_check(f->d, &req, got_cb, &g);
	usleep(20000);
	dns_fixture_run(f);
	assert_int_equal(g.calls, 1);
	want(&g, SPF_TEMPERROR, "overall timer");
	assert_non_null(strstr(g.reason, "timed out"));
	assert_int_equal(dns_running(f->d), 0);
}

/* Cancellation: before the start, in the middle, from a callback. */
struct canceller {
	uint64_t other;
	int calls;
};

static void
cancel_cb(void *arg, const struct spf_outcome *o)
{
	struct canceller *c = arg;

	(void)o;
	c->calls++;
	spf_cancel(c->other);
}

static void
never_cb(void *arg, const struct spf_outcome *o)
{
	(void)arg;
	(void)o;
	fail_msg("a cancelled check called back");
}

struct hopper {
	struct dns *d;
	int left;
	uint64_t victim;
};

static void
hop_cb(void *arg, const struct dns_answer *a)
{
	struct hopper *h = arg;

	(void)a;
	if (--h->left == 0)
		spf_cancel(h->victim);
	else
		dns_query(h->d, "hop.test", DNS_TYPE_A, hop_cb, h);
}

static void
test_spf_cancel(void **state)
{
	struct dns_fixture *f = *state;
	static const struct zone z[] = {
		T("example.test", TXT, "v=spf1 include:a.test include:b.test "
		    "mx -all"),
		T("a.test", TXT, "v=spf1 a -all"),
		T("b.test", TXT, "v=spf1 ptr -all"),
		T("example.test", MX, "1 m1.test", "2 m2.test"),
		T("fast.test", TXT, "v=spf1 -all"),
	};
	struct spf_request req;
	struct canceller c;
	uint64_t id, id2;
	int i;

	load(f->d, z, nitems(z));
	memset(&req, 0, sizeof(req));
	req.ip = "192.0.2.1";
	req.mail_from = "u@example.test";
	/* Before anything ran. */
	id = spf_check(f->d, &req, never_cb, NULL);
	assert_int_not_equal(id, 0);
	assert_int_equal(spf_running(), 1);
	spf_cancel(id);
	spf_cancel(id);		/* unknown ids are ignored */
	assert_int_equal(spf_running(), 0);
	dns_fixture_run(f);
	/*
	 * In the middle: a query of the test's own, answered in FIFO order
	 * between the check's, asks again hops times, then cancels; so the
	 * check is cancelled after each of its steps in turn (it makes 8
	 * queries: 8 hops cancel it while its last one is in flight).
	 */
	for (i = 1; i <= 8; i++) {
		struct hopper h = { f->d, i, 0 };

		h.victim = spf_check(f->d, &req, never_cb, NULL);
		dns_query(f->d, "hop.test", DNS_TYPE_A, hop_cb, &h);
		dns_fixture_run(f);
		assert_int_equal(h.left, 0);
		assert_int_equal(spf_running(), 0);
	}
	/* From another check's callback. */
	req.mail_from = "u@fast.test";
	id = spf_check(f->d, &req, cancel_cb, &c);
	req.mail_from = "u@example.test";
	id2 = spf_check(f->d, &req, never_cb, NULL);
	c.other = id2;
	c.calls = 0;
	assert_int_not_equal(id, id2);
	dns_fixture_run(f);
	assert_int_equal(c.calls, 1);
	assert_int_equal(spf_running(), 0);
}

/* %{p}: validated names, one under <domain> preferred. */
static void
test_spf_check_p_macro(void **state)
{
	struct dns_fixture *f = *state;
	static const struct zone z[] = {
		T("e.test", TXT, "v=spf1 exists:%{p}.ok.test -all "
		    "exp=msg.test"),
		T("msg.test", TXT, "from %{p}"),
		T("1.2.0.192.in-addr.arpa", PTR, "other.test", "bad.e.test",
		    "mx.e.test"),
		T("other.test", A, "192.0.2.1"),
		T("mx.e.test", A, "192.0.2.1"),
		T("bad.e.test", A, "192.0.2.99"),
		T("mx.e.test.ok.test", A, "127.0.0.2"),
	};
	struct got g;

	load(f->d, z, nitems(z));
	run(f, "192.0.2.1", "u@e.test", "x", &g);
	want(&g, SPF_PASS, "p under the domain");
	run(f, "192.0.2.3", "u@e.test", "x", &g);
	want(&g, SPF_FAIL, "p unknown");
	assert_string_equal(g.exp, "from unknown");
}

/*
 * Mutation: records and macro-strings with random edits from a fixed
 * seed must parse or fail cleanly; what parses must parse again from its
 * terms' own text to the same terms.
 */
static void
test_spf_mutation(void **state)
{
	static const char *const seeds[] = {
		"v=spf1 +a -mx:mx.example.com/24//64 ~ptr ?ip4:192.0.2.0/24 "
		    "ip6:2001:db8::/32 include:_spf.example.net all",
		"v=spf1 exists:%{ir}.%{l1r-}.%{d2}.x.example redirect=%{d}.r "
		    "exp=e.%{o} foo=%{L}%%%_%-",
		"v=spf1 a:%{H}.b//0 mx/0 ip4:1.2.3.4/32 ip6:::ffff:1.2.3.4/128",
	};
	static const char alphabet[] = "%{}/:.=-+~?_ 0123456789adilmprsvx"
	    "ADLR\0\x7f\x80\t";
	struct spf_macro_env env;
	struct buf b, again;
	char err[256], rec[512];
	unsigned int seed = 20261129, round;
	size_t parsed = 0;
	const char *why;

	(void)state;
	env_rfc(&env, false);
	buf_init(&b, SPF_MACRO_MAX);
	buf_init(&again, 4096);
	for (round = 0; round < 20000; round++) {
		const char *s = seeds[round % nitems(seeds)];
		size_t len = strlen(s), edits, e;
		struct spf_record *r;
		char *exact;

		memcpy(rec, s, len);
		edits = 1 + (size_t)(rand_r(&seed) % 4);
		for (e = 0; e < edits; e++) {
			size_t pos = (size_t)rand_r(&seed) % (len + 1);
			char c = alphabet[(size_t)rand_r(&seed) %
			    (sizeof(alphabet) - 1)];

			switch (rand_r(&seed) % 3) {
			case 0:	/* replace */
				if (pos < len)
					rec[pos] = c;
				break;
			case 1:	/* insert */
				if (len + 1 < sizeof(rec)) {
					memmove(rec + pos + 1, rec + pos,
					    len - pos);
					rec[pos] = c;
					len++;
				}
				break;
			default: /* delete */
				if (pos < len) {
					memmove(rec + pos, rec + pos + 1,
					    len - pos - 1);
					len--;
				}
				break;
			}
		}
		exact = xmalloc(len > 0 ? len : 1);
		memcpy(exact, rec, len);
		r = spf_record_parse(exact, len, err, sizeof(err));
		(void)spf_macro_expand(exact, len, SPF_MACRO_EXP, &env, &b,
		    &why);
		(void)spf_macro_expand(exact, len, SPF_MACRO_DOMAIN, &env, &b,
		    &why);
		(void)spf_domain_spec_valid(exact, len, &why);
		free(exact);
		if (r == NULL) {
			assert_true(err[0] != '\0');
			continue;
		}
		parsed++;
		buf_reset(&again);
		assert_int_equal(buf_append_str(&again, "v=spf1"), 0);
		for (e = 0; e < r->nterms; e++) {
			assert_null(strchr(r->terms[e].text, ' '));
			assert_int_equal(buf_printf(&again, " %s",
			    r->terms[e].text), 0);
		}
		{
			struct spf_record *r2 = spf_record_parse(again.data,
			    again.len, err, sizeof(err));
			size_t k;

			assert_non_null(r2);
			assert_int_equal(r2->nterms, r->nterms);
			for (k = 0; k < r->nterms; k++) {
				assert_int_equal(r2->terms[k].type,
				    r->terms[k].type);
				assert_int_equal(r2->terms[k].cidr4,
				    r->terms[k].cidr4);
				assert_int_equal(r2->terms[k].cidr6,
				    r->terms[k].cidr6);
			}
			spf_record_free(r2);
		}
		spf_record_free(r);
	}
	/* The edits leave a good share valid: the test sees both paths. */
	assert_true(parsed > 1000);
	assert_true(parsed < 19000);
	buf_free(&b);
	buf_free(&again);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spf_is_spf1),
		cmocka_unit_test(test_spf_parse_valid),
		cmocka_unit_test(test_spf_parse_invalid),
		cmocka_unit_test(test_spf_parse_prefixes),
		cmocka_unit_test(test_spf_macro_rfc_examples),
		cmocka_unit_test(test_spf_macro_more),
		cmocka_unit_test_setup_teardown(test_spf_check_basic,
		    dns_fixture_setup, dns_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_spf_check_default_exp,
		    dns_fixture_setup, dns_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_spf_check_include_table,
		    dns_fixture_setup, dns_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_spf_check_limits,
		    dns_fixture_setup, dns_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_spf_check_temperror,
		    dns_fixture_setup, dns_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_spf_check_query_names,
		    dns_fixture_setup, dns_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_spf_check_timer,
		    dns_fixture_setup, dns_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_spf_cancel,
		    dns_fixture_setup, dns_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_spf_check_p_macro,
		    dns_fixture_setup, dns_fixture_teardown),
		cmocka_unit_test(test_spf_mutation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
