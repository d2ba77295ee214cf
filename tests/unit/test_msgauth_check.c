/*
 * test_msgauth_check.c: the per-message check (msgauth/check.h) end to
 * end over the fake resolver: SPF, DKIM (messages signed here with the
 * RFC 8463 Ed25519 key of the conformance set, its record published in
 * the fake DNS under the names each test needs), DMARC and the
 * Authentication-Results field. Most tests run the verification at once
 * (offload NULL); some through an offload that defers to the loop, and
 * one that holds the work to free the check meanwhile.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "testutil.h"

#include "dns/dns.h"
#include "lib/util.h"
#include "msgauth/check.h"
#include "msgauth/dkim.h"
#include "msgauth/dmarc.h"
#include "msgauth/spf.h"

#include "dns_fake_fixture.h"

#define KEY_FILE	"dkim/rfc8463/ed25519-brisbane.private.pem"
/* Its public half (conformance/dkim/rfc8463/dns.txt). */
#define KEY_RECORD	"v=DKIM1; k=ed25519; " \
			"p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

#define CLIENT_OK	"192.0.2.1"
#define CLIENT_BAD	"192.0.2.99"

/* What a test keeps: the fixture, its key, the check and its result. */
struct t {
	struct dns_fixture *f;
	struct dkim_privkey *key;
	struct msgauth_params p;
	struct msgauth_check *c;
	const struct msgauth_result *r;
	int done_calls;
	/* The offloads. */
	struct event *ev;
	void (*work)(void *);
	void (*wdone)(void *);
	void *warg;
	int offloads;
	bool hold;		/* keep the work for the test to run */
};

static char *
read_key(size_t *len_r)
{
	char path[1024];
	char *p;
	FILE *fp;
	size_t n;

	fp = fopen(test_conformance_path(path, sizeof(path), KEY_FILE), "r");
	if (fp == NULL)
		fail_msg("cannot open %s", path);
	p = xmalloc(8192);
	n = fread(p, 1, 8191, fp);
	fclose(fp);
	p[n] = '\0';
	*len_r = n;
	return p;
}

static int
setup(void **state)
{
	struct t *t = xcalloc(1, sizeof(*t));
	const char *err = NULL;
	char *text;
	size_t len;

	dns_fixture_setup((void **)&t->f);
	text = read_key(&len);
	t->key = dkim_privkey_load(text, len, &err);
	free(text);
	assert_non_null(t->key);
	t->p.dns = t->f->d;
	t->p.authserv_id = "mx.example.net";
	t->p.client_ip = CLIENT_OK;
	t->p.helo = "mail.example.org";
	t->p.mail_from = "user@example.org";
	t->p.dkim_max_signatures = 5;
	t->p.dmarc_from_flags = DMARC_FROM_DEFAULT;
	t->p.now = 1700000000;
	t->p.pct_roll = 0;
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct t *t = *state;

	msgauth_free(t->c);
	assert_int_equal(spf_running(), 0);
	assert_int_equal(dmarc_lookup_pending(t->f->d), 0);
	if (t->ev != NULL)
		event_free(t->ev);
	dkim_privkey_free(t->key);
	dns_fixture_teardown((void **)&t->f);
	free(t);
	return 0;
}

static void
txt(struct t *t, const char *name, const char *value)
{
	dns_fake_set(t->f->d, name, DNS_TYPE_TXT, DNS_OK, &value, 1);
}

static void
txt_status(struct t *t, const char *name, enum dns_status st)
{
	dns_fake_set(t->f->d, name, DNS_TYPE_TXT, st, NULL, 0);
}

/* A message with the given header lines (CRLF each) before the rest. */
static char *
msg_make(const char *from_lines)
{
	return xasprintf("%s"
	    "To: rcpt@example.net\r\n"
	    "Subject: a test\r\n"
	    "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
	    "Message-ID: <1@example.org>\r\n"
	    "\r\n"
	    "Hello,\r\n"
	    "\r\n"
	    "this is a test.\r\n", from_lines);
}

/* msg signed with d=domain s=selector (Ed25519, no t=), msg freed. */
static char *
sign(struct t *t, char *msg, const char *domain, const char *selector)
{
	struct dkim_sign_opts o;
	const char *err = NULL;
	char *field, *out;

	dkim_sign_opts_init(&o, domain, selector);
	o.timestamp = DKIM_SIGN_TIME_NONE;
	field = dkim_sign(msg, strlen(msg), t->key, &o, &err);
	if (field == NULL)
		fail_msg("dkim_sign: %s", err);
	out = xasprintf("%s%s", field, msg);
	free(field);
	free(msg);
	return out;
}

static void
on_done(void *arg, const struct msgauth_result *r)
{
	struct t *t = arg;

	t->done_calls++;
	t->r = r;
}

/* Start a check with t->p, feed msg in 7-octet chunks, end, run. */
static const struct msgauth_result *
run(struct t *t, const char *msg)
{
	size_t len = strlen(msg), off, n;

	t->c = msgauth_start(&t->p);
	for (off = 0; off < len; off += n) {
		n = len - off < 7 ? len - off : 7;
		msgauth_feed(t->c, msg + off, n);
	}
	msgauth_end(t->c, on_done, t);
	assert_int_equal(t->done_calls, 0);	/* never during the call */
	event_base_dispatch(t->f->base);
	assert_int_equal(t->done_calls, 1);
	assert_non_null(t->r);
	return t->r;
}

static void
assert_authres(const struct msgauth_result *r, const char *want)
{
	const char *l, *e;

	/* Folded within 78 octets, CRLF then white space. */
	for (l = r->authres; (e = strstr(l, "\r\n")) != NULL; l = e + 2) {
		assert_true(e - l <= 78);
		assert_true(e[2] == '\0' || e[2] == ' ');
	}
	assert_string_equal(l, "");
	if (strcmp(r->authres, want) != 0)
		fail_msg("Authentication-Results:\n got: %s\nwant: %s",
		    test_escn(r->authres, strlen(r->authres)),
		    test_escn(want, strlen(want)));
}

/* SPF pass for example.org from CLIENT_OK, DMARC p=reject there. */
static void
zone_example_org(struct t *t)
{
	txt(t, "example.org", "v=spf1 ip4:" CLIENT_OK " -all");
	txt(t, "_dmarc.example.org", "v=DMARC1; p=reject");
}

/* ------------------------------------------------------------------ */

static void
test_spf_aligned_only(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m = msg_make("From: A <user@example.org>\r\n");

	zone_example_org(t);
	r = run(t, m);
	free(m);
	assert_int_equal(r->spf->result, SPF_PASS);
	assert_null(r->spf_helo);
	assert_int_equal(r->ndkim, 0);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_PASS);
	assert_true(r->dmarc->spf_aligned);
	assert_false(r->dmarc->dkim_aligned);
	assert_int_equal(r->dmarc->policy, DMARC_REQ_REJECT);
	assert_string_equal(r->dmarc_from, "example.org");
	assert_int_equal(r->disposition, MSGAUTH_ACCEPT);
	assert_authres(r,
	    "Authentication-Results: mx.example.net; spf=pass\r\n"
	    " smtp.mailfrom=user@example.org; dkim=none; dmarc=pass "
	    "(p=reject)\r\n"
	    " header.from=example.org\r\n");
}

static void
test_dkim_aligned_only(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m = sign(t, msg_make("From: A <user@example.org>\r\n"),
	    "example.org", "brisbane");

	/* MAIL FROM in another domain without SPF: spf=none. */
	t->p.mail_from = "bounce@other.example";
	txt(t, "_dmarc.example.org", "v=DMARC1; p=reject");
	txt(t, "brisbane._domainkey.example.org", KEY_RECORD);
	r = run(t, m);
	free(m);
	assert_int_equal(r->spf->result, SPF_NONE);
	assert_int_equal(r->ndkim, 1);
	assert_int_equal(r->dkim[0].result, DKIM_RESULT_PASS);
	assert_null(r->dkim[0].reason_str);
	assert_string_equal(r->dkim[0].domain, "example.org");
	assert_string_equal(r->dkim[0].selector, "brisbane");
	assert_string_equal(r->dkim[0].alg, "ed25519-sha256");
	assert_int_equal(strlen(r->dkim[0].b), MSGAUTH_B_PREFIX);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_PASS);
	assert_false(r->dmarc->spf_aligned);
	assert_true(r->dmarc->dkim_aligned);
	assert_int_equal(r->disposition, MSGAUTH_ACCEPT);
	assert_int_equal(dns_fake_count(t->f->d,
	    "brisbane._domainkey.example.org", DNS_TYPE_TXT), 1);
}

/*
 * The same signature with a key in testing mode (t=y): reported as a pass
 * with a reason, but the mail is judged as unsigned (RFC 6376 3.6.1), so
 * DMARC fails under p=reject; t=s alone changes nothing.
 */
static void
test_dkim_testing_key(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m = sign(t, msg_make("From: A <user@example.org>\r\n"),
	    "example.org", "brisbane");
	char want[1024];

	t->p.mail_from = "bounce@other.example";
	txt(t, "_dmarc.example.org", "v=DMARC1; p=reject");
	txt(t, "brisbane._domainkey.example.org", KEY_RECORD "; t=y:s");
	r = run(t, m);
	assert_int_equal(r->ndkim, 1);
	assert_int_equal(r->dkim[0].result, DKIM_RESULT_PASS);
	assert_true(r->dkim[0].testing);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_FAIL);
	assert_false(r->dmarc->dkim_aligned);
	assert_int_equal(r->disposition, MSGAUTH_REJECT);
	snprintf(want, sizeof(want),
	    "Authentication-Results: mx.example.net; spf=none\r\n"
	    " smtp.mailfrom=bounce@other.example; dkim=pass\r\n"
	    " reason=\"key in testing mode (t=y)\" header.d=example.org "
	    "header.s=brisbane\r\n"
	    " header.a=ed25519-sha256 header.b=%s; dmarc=fail "
	    "(p=reject dis=reject)\r\n"
	    " header.from=example.org\r\n",
	    r->dkim[0].b);
	assert_authres(r, want);
	assert_non_null(strstr(r->log, " dkim=pass(testing) "));

	/* Control: t=s only, the same message passes DMARC. */
	msgauth_free(t->c);
	t->c = NULL;
	t->r = NULL;
	t->done_calls = 0;
	txt(t, "brisbane._domainkey.example.org", KEY_RECORD "; t=s");
	r = run(t, m);
	free(m);
	assert_int_equal(r->dkim[0].result, DKIM_RESULT_PASS);
	assert_false(r->dkim[0].testing);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_PASS);
	assert_int_equal(r->disposition, MSGAUTH_ACCEPT);
}

/*
 * l=: a signature covering the body as signed still passes after text is
 * appended (RFC 6376 3.5), and Authentication-Results says the body is
 * only partly signed; the appended text must not count as covered.
 */
static void
test_dkim_partial_body(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	struct dkim_sign_opts o;
	const char *err = NULL;
	char *m = msg_make("From: A <user@example.org>\r\n"), *field, *full;

	dkim_sign_opts_init(&o, "example.org", "brisbane");
	o.timestamp = DKIM_SIGN_TIME_NONE;
	o.body_length = true;
	field = dkim_sign(m, strlen(m), t->key, &o, &err);
	if (field == NULL)
		fail_msg("dkim_sign: %s", err);
	assert_non_null(strstr(field, "l="));
	full = xasprintf("%s%sAppended after signing.\r\n", field, m);
	free(field);
	free(m);
	t->p.mail_from = "bounce@other.example";
	txt(t, "_dmarc.example.org", "v=DMARC1; p=reject");
	txt(t, "brisbane._domainkey.example.org", KEY_RECORD);
	r = run(t, full);
	free(full);
	assert_int_equal(r->dkim[0].result, DKIM_RESULT_PASS);
	assert_true(r->dkim[0].partial_body);
	assert_non_null(strstr(r->authres,
	    "dkim=pass\r\n reason=\"body partly signed (l=)\""));
	assert_int_equal(r->dmarc->result, DMARC_RESULT_PASS);
}

/* SPF fails outright, the aligned signature passes: DMARC passes. */
static void
test_spf_fail_dkim_pass(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m = sign(t, msg_make("From: A <user@example.org>\r\n"),
	    "example.org", "brisbane");
	char want[1024], flat[2048], *p;
	size_t i, j;

	t->p.client_ip = CLIENT_BAD;
	zone_example_org(t);
	txt(t, "brisbane._domainkey.example.org", KEY_RECORD);
	r = run(t, m);
	/* header.b is the start of b= in the field, white space aside. */
	for (i = j = 0; m[i] != '\0' && j < sizeof(flat) - 1; i++)
		if (m[i] != ' ' && m[i] != '\t' && m[i] != '\r' &&
		    m[i] != '\n')
			flat[j++] = m[i];
	flat[j] = '\0';
	assert_non_null(p = strstr(flat, ";b="));
	assert_memory_equal(p + 3, r->dkim[0].b, MSGAUTH_B_PREFIX);
	free(m);
	assert_int_equal(r->spf->result, SPF_FAIL);
	assert_int_equal(r->dkim[0].result, DKIM_RESULT_PASS);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_PASS);
	assert_true(r->dmarc->dkim_aligned);
	assert_int_equal(r->disposition, MSGAUTH_ACCEPT);
	snprintf(want, sizeof(want),
	    "Authentication-Results: mx.example.net; spf=fail\r\n"
	    " smtp.mailfrom=user@example.org; dkim=pass "
	    "header.d=example.org\r\n"
	    " header.s=brisbane header.a=ed25519-sha256 header.b=%s; "
	    "dmarc=pass\r\n"
	    " (p=reject) header.from=example.org\r\n",
	    r->dkim[0].b);
	assert_authres(r, want);
}

/* Neither passes: the disposition follows p=. */
static void
test_both_fail_policies(void **state)
{
	struct t *t = *state;
	static const struct {
		const char *rec;
		enum dmarc_request pol;
		enum msgauth_disposition disp;
	} cases[] = {
		{ "v=DMARC1; p=none", DMARC_REQ_NONE, MSGAUTH_ACCEPT },
		{ "v=DMARC1; p=quarantine", DMARC_REQ_QUARANTINE,
		    MSGAUTH_QUARANTINE },
		{ "v=DMARC1; p=reject", DMARC_REQ_REJECT, MSGAUTH_REJECT },
	};
	const struct msgauth_result *r;
	size_t i;
	char *m;

	t->p.client_ip = CLIENT_BAD;
	txt(t, "example.org", "v=spf1 ip4:" CLIENT_OK " -all");
	/* Signed by an unaligned domain: passes, does not count. */
	txt(t, "brisbane._domainkey.example.com", KEY_RECORD);
	m = sign(t, msg_make("From: A <user@example.org>\r\n"),
	    "example.com", "brisbane");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		txt(t, "_dmarc.example.org", cases[i].rec);
		t->done_calls = 0;
		r = run(t, m);
		assert_int_equal(r->spf->result, SPF_FAIL);
		assert_int_equal(r->dkim[0].result, DKIM_RESULT_PASS);
		assert_int_equal(r->dmarc->result, DMARC_RESULT_FAIL);
		assert_int_equal(r->dmarc->policy, cases[i].pol);
		assert_int_equal(r->disposition, cases[i].disp);
		msgauth_free(t->c);
		t->c = NULL;
	}
	free(m);
}

/* The record of the Organizational Domain: sp= for a subdomain From. */
static void
test_subdomain_policy(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m;

	t->p.client_ip = CLIENT_BAD;
	txt(t, "example.org", "v=spf1 ip4:" CLIENT_OK " -all");
	txt(t, "_dmarc.example.org", "v=DMARC1; p=reject; sp=quarantine");

	m = msg_make("From: <user@sub.example.org>\r\n");
	r = run(t, m);
	free(m);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_FAIL);
	assert_int_equal(r->dmarc->policy, DMARC_REQ_QUARANTINE);
	assert_int_equal(r->disposition, MSGAUTH_QUARANTINE);
	assert_int_equal(dns_fake_count(t->f->d, "_dmarc.sub.example.org",
	    DNS_TYPE_TXT), 1);
	msgauth_free(t->c);
	t->c = NULL;

	/* The organizational domain itself: p=. */
	t->done_calls = 0;
	m = msg_make("From: <user@example.org>\r\n");
	r = run(t, m);
	free(m);
	assert_int_equal(r->dmarc->policy, DMARC_REQ_REJECT);
	assert_int_equal(r->disposition, MSGAUTH_REJECT);
}

/* a.b.example.co.uk: no record there, the one of example.co.uk. */
static void
test_orgdomain_fallback(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m = msg_make("From: <user@a.b.example.co.uk>\r\n");

	t->p.mail_from = "user@example.co.uk";
	txt(t, "example.co.uk", "v=spf1 ip4:" CLIENT_OK " -all");
	txt(t, "_dmarc.example.co.uk", "v=DMARC1; p=quarantine");
	r = run(t, m);
	/* Relaxed: SPF's example.co.uk aligns with a.b.example.co.uk. */
	assert_int_equal(r->spf->result, SPF_PASS);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_PASS);
	assert_true(r->dmarc->spf_aligned);
	assert_int_equal(r->dmarc->policy, DMARC_REQ_QUARANTINE);
	assert_string_equal(r->dmarc_from, "a.b.example.co.uk");
	assert_int_equal(dns_fake_count(t->f->d, "_dmarc.a.b.example.co.uk",
	    DNS_TYPE_TXT), 1);
	assert_int_equal(dns_fake_count(t->f->d, "_dmarc.example.co.uk",
	    DNS_TYPE_TXT), 1);
	assert_int_equal(dns_fake_count(t->f->d, "_dmarc.b.example.co.uk",
	    DNS_TYPE_TXT), 0);
	msgauth_free(t->c);
	t->c = NULL;

	/* The same from a client SPF refuses: p= (no sp=) applies. */
	t->done_calls = 0;
	t->p.client_ip = CLIENT_BAD;
	r = run(t, m);
	free(m);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_FAIL);
	assert_int_equal(r->dmarc->policy, DMARC_REQ_QUARANTINE);
	assert_int_equal(r->disposition, MSGAUTH_QUARANTINE);
}

/* aspf=s and adkim=s against a subdomain identity. */
static void
test_strict_relaxed(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m = msg_make("From: <user@example.org>\r\n");
	char *sm;

	/* SPF passes for bounce.example.org. */
	t->p.mail_from = "user@bounce.example.org";
	txt(t, "bounce.example.org", "v=spf1 ip4:" CLIENT_OK " -all");
	txt(t, "_dmarc.example.org", "v=DMARC1; p=reject");
	r = run(t, m);
	assert_int_equal(r->spf->result, SPF_PASS);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_PASS);
	msgauth_free(t->c);
	t->c = NULL;
	t->done_calls = 0;
	txt(t, "_dmarc.example.org", "v=DMARC1; p=reject; aspf=s");
	r = run(t, m);
	assert_int_equal(r->spf->result, SPF_PASS);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_FAIL);
	assert_false(r->dmarc->spf_aligned);
	assert_int_equal(r->disposition, MSGAUTH_REJECT);
	msgauth_free(t->c);
	t->c = NULL;

	/* DKIM d=mail.example.org passes; SPF fails. */
	t->p.client_ip = CLIENT_BAD;
	txt(t, "brisbane._domainkey.mail.example.org", KEY_RECORD);
	sm = sign(t, m, "mail.example.org", "brisbane");
	txt(t, "_dmarc.example.org", "v=DMARC1; p=reject; aspf=s");
	t->done_calls = 0;
	r = run(t, sm);
	assert_int_equal(r->spf->result, SPF_FAIL);
	assert_int_equal(r->dkim[0].result, DKIM_RESULT_PASS);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_PASS);
	assert_true(r->dmarc->dkim_aligned);
	msgauth_free(t->c);
	t->c = NULL;
	t->done_calls = 0;
	txt(t, "_dmarc.example.org", "v=DMARC1; p=reject; adkim=s");
	r = run(t, sm);
	free(sm);
	assert_int_equal(r->dkim[0].result, DKIM_RESULT_PASS);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_FAIL);
	assert_false(r->dmarc->dkim_aligned);
	assert_int_equal(r->disposition, MSGAUTH_REJECT);
}

/* pct= against the fixed roll. */
static void
test_pct(void **state)
{
	struct t *t = *state;
	static const struct {
		const char *rec;
		unsigned int roll;
		enum msgauth_disposition disp;
		bool sampled_out;
	} cases[] = {
		{ "v=DMARC1; p=reject; pct=0", 0, MSGAUTH_QUARANTINE, true },
		{ "v=DMARC1; p=quarantine; pct=0", 0, MSGAUTH_ACCEPT, true },
		{ "v=DMARC1; p=reject; pct=50", 49, MSGAUTH_REJECT, false },
		{ "v=DMARC1; p=reject; pct=50", 50, MSGAUTH_QUARANTINE, true },
		{ "v=DMARC1; p=reject; pct=100", 99, MSGAUTH_REJECT, false },
	};
	const struct msgauth_result *r;
	char *m = msg_make("From: <user@example.org>\r\n");
	unsigned int seen[2] = { 0, 0 };
	size_t i;

	t->p.client_ip = CLIENT_BAD;
	txt(t, "example.org", "v=spf1 ip4:" CLIENT_OK " -all");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		txt(t, "_dmarc.example.org", cases[i].rec);
		t->p.pct_roll = cases[i].roll;
		t->done_calls = 0;
		r = run(t, m);
		assert_int_equal(r->dmarc->result, DMARC_RESULT_FAIL);
		assert_int_equal(r->disposition, cases[i].disp);
		assert_int_equal(r->dmarc->sampled_out, cases[i].sampled_out);
		msgauth_free(t->c);
		t->c = NULL;
	}

	/* Drawn: pct=50 gives both (each miss has odds 2^-64). */
	txt(t, "_dmarc.example.org", "v=DMARC1; p=reject; pct=50");
	t->p.pct_roll = MSGAUTH_ROLL_DRAW;
	for (i = 0; i < 64; i++) {
		t->done_calls = 0;
		r = run(t, m);
		seen[r->disposition == MSGAUTH_REJECT]++;
		msgauth_free(t->c);
		t->c = NULL;
	}
	assert_true(seen[0] > 0 && seen[1] > 0);
	free(m);
}

static void
test_multiple_from(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m = msg_make("From: <a@example.org>, <b@example.com>\r\n");

	zone_example_org(t);
	txt(t, "_dmarc.example.com", "v=DMARC1; p=reject");
	r = run(t, m);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_PERMERROR);
	assert_int_equal(r->disposition, MSGAUTH_REJECT);
	assert_null(r->dmarc_from);
	/* Refused before any policy lookup. */
	assert_int_equal(dns_fake_count(t->f->d, "_dmarc.example.org", 0), 0);
	assert_non_null(strstr(r->authres, "dmarc=permerror"));
	assert_null(strstr(r->authres, "header.from"));
	assert_string_equal(r->log, "spf=pass dkim=none dmarc "
	    "from_status=multiple result=permerror disposition=reject");
	msgauth_free(t->c);
	t->c = NULL;

	/* Without the flag, each domain is judged: example.com fails. */
	t->p.dmarc_from_flags = DMARC_FROM_REJECT_INVALID;
	t->done_calls = 0;
	r = run(t, m);
	free(m);
	assert_int_equal(dns_fake_count(t->f->d, "_dmarc.example.org", 0), 1);
	assert_int_equal(dns_fake_count(t->f->d, "_dmarc.example.com", 0), 1);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_FAIL);
	assert_int_equal(r->disposition, MSGAUTH_REJECT);
	assert_non_null(strstr(r->authres, "dmarc=pass (p=reject)"));
	assert_non_null(strstr(r->authres, "header.from=example.org"));
	assert_non_null(strstr(r->authres, "dmarc=fail"));
	assert_non_null(strstr(r->authres, "header.from=example.com"));
}

static void
test_no_from(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m = msg_make("");

	zone_example_org(t);
	r = run(t, m);
	free(m);
	assert_int_equal(r->spf->result, SPF_PASS);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_NONE);
	assert_int_equal(r->disposition, MSGAUTH_ACCEPT);
	assert_null(r->dmarc_from);
	assert_int_equal(dns_fake_count(t->f->d, "_dmarc.example.org", 0), 0);
	assert_non_null(strstr(r->authres, "dmarc=none"));
}

/* A DNS failure at the policy lookup: temperror, never a rejection. */
static void
test_dmarc_tempfail(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m = msg_make("From: <user@example.org>\r\n");

	t->p.client_ip = CLIENT_BAD;
	txt(t, "example.org", "v=spf1 ip4:" CLIENT_OK " -all");
	txt_status(t, "_dmarc.example.org", DNS_TEMPFAIL);
	r = run(t, m);
	free(m);
	assert_int_equal(r->spf->result, SPF_FAIL);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_TEMPERROR);
	assert_int_equal(r->dmarc->disposition, DMARC_DISP_NONE);
	assert_int_equal(r->disposition, MSGAUTH_ACCEPT);
	assert_non_null(strstr(r->authres, "dmarc=temperror"));
}

/* Key lookups: none, two records, TEMPFAIL, a good one, a bad body. */
static void
test_dkim_keys(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	const char *two[] = { KEY_RECORD, KEY_RECORD };
	char *m = msg_make("From: <user@example.org>\r\n"), *p;

	m = sign(t, m, "example.org", "brisbane");
	m = sign(t, m, "example.org", "tmp");
	m = sign(t, m, "example.org", "twice");
	m = sign(t, m, "example.org", "missing");
	zone_example_org(t);
	txt(t, "brisbane._domainkey.example.org", KEY_RECORD);
	dns_fake_set(t->f->d, "twice._domainkey.example.org", DNS_TYPE_TXT,
	    DNS_OK, two, 2);
	txt_status(t, "tmp._domainkey.example.org", DNS_TEMPFAIL);
	r = run(t, m);
	assert_int_equal(r->ndkim, 4);
	/* Header order: the last signature added comes first. */
	assert_string_equal(r->dkim[0].selector, "missing");
	assert_int_equal(r->dkim[0].result, DKIM_RESULT_PERMERROR);
	assert_int_equal(r->dkim[0].reason, DKIM_KEY_NOT_FOUND);
	assert_string_equal(r->dkim[0].reason_str, "no key for signature");
	assert_string_equal(r->dkim[1].selector, "twice");
	assert_int_equal(r->dkim[1].result, DKIM_RESULT_PERMERROR);
	assert_string_equal(r->dkim[1].reason_str, "several key records");
	assert_string_equal(r->dkim[2].selector, "tmp");
	assert_int_equal(r->dkim[2].result, DKIM_RESULT_TEMPERROR);
	assert_int_equal(r->dkim[2].reason, DKIM_KEY_TEMPFAIL);
	assert_string_equal(r->dkim[3].selector, "brisbane");
	assert_int_equal(r->dkim[3].result, DKIM_RESULT_PASS);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_PASS);
	assert_non_null(strstr(r->authres,
	    "dkim=permerror reason=\"no key for signature\""));
	assert_non_null(strstr(r->authres, "dkim=temperror"));
	assert_non_null(strstr(r->log, " dkim=permerror,permerror,temperror,"
	    "pass dmarc from=example.org "));
	assert_non_null(strstr(r->log, " dkim=example.org/fail/unaligned,"
	    "example.org/fail/unaligned,example.org/fail/unaligned,"
	    "example.org/pass/aligned"));
	msgauth_free(t->c);
	t->c = NULL;

	/* The body changed after signing: fail, body hash. */
	p = strstr(m, "this is a test.");
	assert_non_null(p);
	p[0] = 'T';
	t->done_calls = 0;
	r = run(t, m);
	free(m);
	assert_int_equal(r->dkim[3].result, DKIM_RESULT_FAIL);
	assert_int_equal(r->dkim[3].reason, DKIM_FAIL_BODY_HASH);
	/* SPF still passes and aligns. */
	assert_int_equal(r->dmarc->result, DMARC_RESULT_PASS);
}

/* MAIL FROM:<>: the HELO identity, recorded as smtp.helo. */
static void
test_null_sender_helo(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m = msg_make("From: <user@example.org>\r\n");

	t->p.mail_from = "";
	txt(t, "mail.example.org", "v=spf1 ip4:" CLIENT_OK " -all");
	txt(t, "_dmarc.example.org", "v=DMARC1; p=reject");
	r = run(t, m);
	free(m);
	assert_int_equal(r->spf->result, SPF_PASS);
	assert_string_equal(r->spf->identity, "helo");
	assert_string_equal(r->spf->domain, "mail.example.org");
	assert_null(r->spf_helo);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_PASS);
	assert_authres(r,
	    "Authentication-Results: mx.example.net; spf=pass "
	    "smtp.helo=mail.example.org;\r\n"
	    " dkim=none; dmarc=pass (p=reject) header.from=example.org\r\n");
}

/* spf_helo: a second result, recorded; DMARC keeps to MAIL FROM. */
static void
test_spf_helo_too(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m = msg_make("From: <user@example.org>\r\n");

	t->p.spf_helo = true;
	t->p.client_ip = CLIENT_BAD;
	zone_example_org(t);
	txt(t, "mail.example.org", "v=spf1 ip4:" CLIENT_BAD " -all");
	r = run(t, m);
	free(m);
	assert_int_equal(r->spf->result, SPF_FAIL);
	assert_non_null(r->spf_helo);
	assert_int_equal(r->spf_helo->result, SPF_PASS);
	assert_string_equal(r->spf_helo->identity, "helo");
	assert_int_equal(r->dmarc->result, DMARC_RESULT_FAIL);
	assert_int_equal(r->disposition, MSGAUTH_REJECT);
	assert_authres(r,
	    "Authentication-Results: mx.example.net; spf=fail\r\n"
	    " smtp.mailfrom=user@example.org; spf=pass "
	    "smtp.helo=mail.example.org;\r\n"
	    " dkim=none; dmarc=fail (p=reject dis=reject) "
	    "header.from=example.org\r\n");
	assert_string_equal(r->log, "spf=fail spf_helo=pass dkim=none "
	    "dmarc from=example.org policy_domain=example.org p=reject sp=- "
	    "pct=100 adkim=r aspf=r result=fail disposition=reject "
	    "sampled_out=0 spf=example.org/fail/unaligned");
}

/* SPF temperror: the cause as a comment; DMARC still judged by DKIM. */
static void
test_spf_temperror(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m = msg_make("From: <user@example.org>\r\n");

	txt_status(t, "example.org", DNS_TEMPFAIL);
	txt(t, "_dmarc.example.org", "v=DMARC1; p=reject");
	r = run(t, m);
	free(m);
	assert_int_equal(r->spf->result, SPF_TEMPERROR);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_FAIL);
	assert_false(r->dmarc->spf_aligned);
	assert_authres(r,
	    "Authentication-Results: mx.example.net; spf=temperror\r\n"
	    " (DNS error for TXT example.org: SERVFAIL) "
	    "smtp.mailfrom=user@example.org;\r\n"
	    " dkim=none; dmarc=fail (p=reject dis=reject) "
	    "header.from=example.org\r\n");
}

/* A From: domain that is no name: permerror, rejected by default. */
static void
test_invalid_from(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m = msg_make("From: <user@[192.0.2.1]>\r\n");

	zone_example_org(t);
	r = run(t, m);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_PERMERROR);
	assert_int_equal(r->disposition, MSGAUTH_REJECT);
	msgauth_free(t->c);
	t->c = NULL;
	t->p.dmarc_from_flags = 0;
	t->done_calls = 0;
	r = run(t, m);
	free(m);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_PERMERROR);
	assert_int_equal(r->disposition, MSGAUTH_ACCEPT);
}

/* A signature that does not parse, and one over the limit. */
static void
test_dkim_bad_signature(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m = sign(t, msg_make("From: <user@example.org>\r\n"),
	    "example.org", "brisbane");
	char *m2 = xasprintf("DKIM-Signature: v=1; a=rsa-sha256; d=x\r\n%s",
	    m);

	free(m);
	zone_example_org(t);
	txt(t, "brisbane._domainkey.example.org", KEY_RECORD);
	t->p.dkim_max_signatures = 1;
	r = run(t, m2);
	assert_int_equal(r->ndkim, 1);
	assert_int_equal(r->dkim_extra, 1);
	assert_false(r->dkim[0].parsed);
	assert_int_equal(r->dkim[0].result, DKIM_RESULT_PERMERROR);
	assert_non_null(r->dkim[0].reason_str);
	assert_null(strstr(r->authres, "header.d="));
	assert_int_equal(dns_fake_count(t->f->d,
	    "brisbane._domainkey.example.org", 0), 0);
	msgauth_free(t->c);
	t->c = NULL;

	t->p.dkim_max_signatures = 5;
	t->done_calls = 0;
	r = run(t, m2);
	free(m2);
	assert_int_equal(r->ndkim, 2);
	assert_int_equal(r->dkim_extra, 0);
	assert_int_equal(r->dkim[1].result, DKIM_RESULT_PASS);
}

/* A header section over header_max: every signature permerror. */
static void
test_header_overflow(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m = sign(t, msg_make("From: <user@example.org>\r\n"),
	    "example.org", "brisbane");

	zone_example_org(t);
	txt(t, "brisbane._domainkey.example.org", KEY_RECORD);
	/* The signature (first) is kept whole, the section is not. */
	assert_non_null(strstr(m, "\r\n\r\n"));
	t->p.header_max = (size_t)(strstr(m, "\r\n\r\n") - m) - 10;
	r = run(t, m);
	free(m);
	assert_int_equal(r->ndkim, 1);
	assert_int_equal(r->dkim[0].result, DKIM_RESULT_PERMERROR);
	assert_int_equal(r->dkim[0].reason, DKIM_MSG_MALFORMED);
}

/* msgauth_spf_wait(): later, from the loop, whether known or not. */
static int spf_calls;
static enum spf_result spf_seen;

static void
on_spf(void *arg, const struct spf_outcome *o)
{
	(void)arg;
	spf_calls++;
	spf_seen = o->result;
}

static void
test_spf_wait(void **state)
{
	struct t *t = *state;

	t->p.client_ip = CLIENT_BAD;
	zone_example_org(t);
	spf_calls = 0;
	t->c = msgauth_start(&t->p);
	msgauth_spf_wait(t->c, on_spf, NULL);
	assert_int_equal(spf_calls, 0);
	event_base_dispatch(t->f->base);
	assert_int_equal(spf_calls, 1);
	assert_int_equal(spf_seen, SPF_FAIL);

	/* Already known: still not during the call. */
	msgauth_spf_wait(t->c, on_spf, NULL);
	assert_int_equal(spf_calls, 1);
	event_base_dispatch(t->f->base);
	assert_int_equal(spf_calls, 2);
}

/* ------------------------------------------------------------------ */
/* Offloads and freeing. */

static void
offload_ev(evutil_socket_t fd, short what, void *arg)
{
	struct t *t = arg;

	(void)fd;
	(void)what;
	t->work(t->warg);
	t->wdone(t->warg);
}

/* Defers through the loop, as a worker's completion would. */
static void
offload_defer(void *ctx, void (*work)(void *), void (*done)(void *),
    void *arg)
{
	struct t *t = ctx;

	t->offloads++;
	t->work = work;
	t->wdone = done;
	t->warg = arg;
	if (t->hold)
		return;
	if (t->ev == NULL)
		t->ev = event_new(t->f->base, -1, 0, offload_ev, t);
	event_active(t->ev, EV_TIMEOUT, 0);
}

static void
test_offload_async(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m = sign(t, msg_make("From: <user@example.org>\r\n"),
	    "example.org", "brisbane");

	t->p.client_ip = CLIENT_BAD;
	t->p.offload = offload_defer;
	t->p.offload_ctx = t;
	zone_example_org(t);
	txt(t, "brisbane._domainkey.example.org", KEY_RECORD);
	r = run(t, m);
	free(m);
	assert_int_equal(t->offloads, 1);
	assert_int_equal(r->dkim[0].result, DKIM_RESULT_PASS);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_PASS);
}

/* A real worker thread; its completion wakes the loop through a pipe. */
struct thr {
	struct t *t;
	int fds[2];
	struct event *ev;
	pthread_t th;
	void (*work)(void *);
	void (*done)(void *);
	void *arg;
};

static void *
thr_main(void *p)
{
	struct thr *w = p;

	w->work(w->arg);
	if (write(w->fds[1], "x", 1) != 1)
		abort();
	return NULL;
}

static void
thr_ready(evutil_socket_t fd, short what, void *p)
{
	struct thr *w = p;
	char ch;

	(void)what;
	assert_int_equal(read(fd, &ch, 1), 1);
	assert_int_equal(pthread_join(w->th, NULL), 0);
	w->done(w->arg);
}

static void
offload_thread(void *ctx, void (*work)(void *), void (*done)(void *),
    void *arg)
{
	struct thr *w = ctx;

	w->t->offloads++;
	w->work = work;
	w->done = done;
	w->arg = arg;
	assert_int_equal(event_add(w->ev, NULL), 0);
	assert_int_equal(pthread_create(&w->th, NULL, thr_main, w), 0);
}

static void
test_offload_thread(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	struct thr w;
	char *m = msg_make("From: <user@example.org>\r\n");

	memset(&w, 0, sizeof(w));
	w.t = t;
	assert_int_equal(pipe(w.fds), 0);
	w.ev = event_new(t->f->base, w.fds[0], EV_READ, thr_ready, &w);
	m = sign(t, m, "example.org", "brisbane");
	m = sign(t, m, "example.com", "brisbane");
	t->p.offload = offload_thread;
	t->p.offload_ctx = &w;
	t->p.client_ip = CLIENT_BAD;
	zone_example_org(t);
	txt(t, "brisbane._domainkey.example.org", KEY_RECORD);
	txt(t, "brisbane._domainkey.example.com", KEY_RECORD);
	r = run(t, m);
	free(m);
	assert_int_equal(t->offloads, 1);
	assert_int_equal(r->ndkim, 2);
	assert_int_equal(r->dkim[0].result, DKIM_RESULT_PASS);
	assert_int_equal(r->dkim[1].result, DKIM_RESULT_PASS);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_PASS);
	assert_true(r->dmarc->dkim_aligned);
	assert_int_equal(r->dmarc->dkim_index, 1);
	event_free(w.ev);
	close(w.fds[0]);
	close(w.fds[1]);
}

/* No signature with a key: nothing to offload. */
static void
test_offload_unused(void **state)
{
	struct t *t = *state;
	const struct msgauth_result *r;
	char *m = msg_make("From: <user@example.org>\r\n");

	t->p.offload = offload_defer;
	t->p.offload_ctx = t;
	zone_example_org(t);
	r = run(t, m);
	free(m);
	assert_int_equal(t->offloads, 0);
	assert_int_equal(r->dmarc->result, DMARC_RESULT_PASS);
}

/* Freed while the verification is on the offload: its done frees. */
static void
test_free_during_offload(void **state)
{
	struct t *t = *state;
	char *m = sign(t, msg_make("From: <user@example.org>\r\n"),
	    "example.org", "brisbane");

	t->p.offload = offload_defer;
	t->p.offload_ctx = t;
	t->hold = true;
	zone_example_org(t);
	txt(t, "brisbane._domainkey.example.org", KEY_RECORD);
	t->c = msgauth_start(&t->p);
	msgauth_feed(t->c, m, strlen(m));
	free(m);
	msgauth_end(t->c, on_done, t);
	event_base_dispatch(t->f->base);
	assert_int_equal(t->offloads, 1);
	assert_int_equal(t->done_calls, 0);
	msgauth_free(t->c);
	t->c = NULL;
	/* The worker finishes later; then its done on the loop. */
	t->work(t->warg);
	t->wdone(t->warg);
	event_base_dispatch(t->f->base);
	assert_int_equal(t->done_calls, 0);
}

/* Freed after msgauth_end, before anything answered. */
static void
test_free_in_flight(void **state)
{
	struct t *t = *state;
	char *m = sign(t, msg_make("From: <user@example.org>\r\n"),
	    "example.org", "brisbane");

	zone_example_org(t);
	txt(t, "brisbane._domainkey.example.org", KEY_RECORD);
	t->c = msgauth_start(&t->p);
	msgauth_spf_wait(t->c, on_spf, NULL);
	msgauth_feed(t->c, m, strlen(m));
	free(m);
	msgauth_end(t->c, on_done, t);
	assert_true(spf_running() > 0);
	assert_true(dmarc_lookup_pending(t->f->d) > 0);
	spf_calls = 0;
	msgauth_free(t->c);
	t->c = NULL;
	assert_int_equal(spf_running(), 0);
	assert_int_equal(dmarc_lookup_pending(t->f->d), 0);
	event_base_dispatch(t->f->base);
	assert_int_equal(t->done_calls, 0);
	assert_int_equal(spf_calls, 0);
}

/* Freed from the SPF callback, with the end pending. */
static void
on_spf_free(void *arg, const struct spf_outcome *o)
{
	struct t *t = arg;

	(void)o;
	spf_calls++;
	msgauth_free(t->c);
	t->c = NULL;
}

static void
test_free_from_callback(void **state)
{
	struct t *t = *state;
	char *m = msg_make("From: <user@example.org>\r\n");

	zone_example_org(t);
	/* A slow DMARC answer is still pending when SPF reports. */
	t->c = msgauth_start(&t->p);
	msgauth_spf_wait(t->c, on_spf_free, t);
	msgauth_feed(t->c, m, strlen(m));
	free(m);
	msgauth_end(t->c, on_done, t);
	spf_calls = 0;
	event_base_dispatch(t->f->base);
	assert_int_equal(spf_calls, 1);
	assert_int_equal(t->done_calls, 0);
	assert_null(t->c);
}

/* Freed from the done callback. */
static void
on_done_free(void *arg, const struct msgauth_result *r)
{
	struct t *t = arg;

	assert_int_equal(r->dmarc->result, DMARC_RESULT_PASS);
	t->done_calls++;
	msgauth_free(t->c);
	t->c = NULL;
}

static void
test_free_from_done(void **state)
{
	struct t *t = *state;
	char *m = msg_make("From: <user@example.org>\r\n");

	zone_example_org(t);
	t->c = msgauth_start(&t->p);
	msgauth_feed(t->c, m, strlen(m));
	free(m);
	msgauth_end(t->c, on_done_free, t);
	event_base_dispatch(t->f->base);
	assert_int_equal(t->done_calls, 1);
	assert_null(t->c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
		T(test_spf_aligned_only),
		T(test_dkim_aligned_only),
		T(test_dkim_testing_key),
		T(test_dkim_partial_body),
		T(test_spf_fail_dkim_pass),
		T(test_both_fail_policies),
		T(test_subdomain_policy),
		T(test_orgdomain_fallback),
		T(test_strict_relaxed),
		T(test_pct),
		T(test_multiple_from),
		T(test_no_from),
		T(test_dmarc_tempfail),
		T(test_dkim_keys),
		T(test_null_sender_helo),
		T(test_spf_helo_too),
		T(test_spf_temperror),
		T(test_invalid_from),
		T(test_dkim_bad_signature),
		T(test_header_overflow),
		T(test_spf_wait),
		T(test_offload_async),
		T(test_offload_thread),
		T(test_offload_unused),
		T(test_free_during_offload),
		T(test_free_in_flight),
		T(test_free_from_callback),
		T(test_free_from_done),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
