/*
 * test_msgauth_dkim_vectors.c: the DKIM core against the shared
 * conformance set (../shared/conformance/dkim/, see its README):
 *   - RFC 8463 Appendix A: both signatures verify, and their b= values
 *     are reproduced from the keys (Ed25519 and RSA are deterministic);
 *   - go-msgauth: the sign-expected files reproduced byte for byte from
 *     sign-input.eml with their t= and h=, the verified-* files pass
 *     (one with a bare PKCS#1 RSAPublicKey), unsigned.eml has none;
 *   - dkimpy's test data: signed messages verify (RFC 8463 both ways,
 *     Exim's Ed25519, gmail's degenerate folding), the bad-domain message
 *     is a permerror, every key record gives its documented result, and
 *     messages signed here with each of its private keys (PKCS#1, PKCS#8,
 *     1024 and 2048 bits, Ed25519 seeds) in all four canonicalizations
 *     verify against its public records; a message without From is
 *     refused;
 *   - stalwart mail-auth's real-world messages pass at their time.
 * Every verification outcome is also checked to fail once the message is
 * tampered with (header and body).
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

#include "msgauth/dkim.h"

#include "lib/util.h"

#include "testutil.h"
#include "test_msgauth_dkim_util.h"

#define MAILAUTH_NOW	1667843664

/* Expect n signatures, all with result want. */
static void
expect_some(const char *what, const char *msg, size_t len, const char *dns,
    int64_t now, size_t n, size_t ncheck, enum dkim_result want)
{
	struct dt_sigresult res[DT_MAX_SIGS];
	struct dkim_verify_opts opts = { .now = now };
	size_t got, i;

	got = dt_verify_all(msg, len, dns, &opts, res);
	if (got != n)
		fail_msg("%s: got %zu signatures, want %zu", what, got, n);
	for (i = 0; i < ncheck; i++)
		if (res[i].result != want)
			fail_msg("%s: signature %zu (d=%s s=%s): got %s (%s), "
			    "want %s", what, i, res[i].domain,
			    res[i].selector, dkim_result_str(res[i].result),
			    dkim_reason_str(res[i].reason),
			    dkim_result_str(want));
}

static void
expect_all(const char *what, const char *msg, size_t len, const char *dns,
    int64_t now, size_t n, enum dkim_result want)
{
	expect_some(what, msg, len, dns, now, n, n, want);
}

/*
 * msg passes (its first ncheck signatures of n); with a signed header
 * changed, or the body changed, each of those fails (signature / body
 * hash).
 */
static void
expect_pass_and_tamper_some(const char *what, const char *msg, size_t len,
    const char *dns, int64_t now, size_t n, size_t ncheck)
{
	struct dt_sigresult res[DT_MAX_SIGS];
	struct dkim_verify_opts opts = { .now = now };
	char *t, *p;
	size_t i, got;

	expect_some(what, msg, len, dns, now, n, ncheck, DKIM_RESULT_PASS);

	/* Body: change the last letter or digit of the message. */
	t = test_dup_exact(msg, len);
	for (p = t + len; p-- > t;)
		if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))
			break;
	assert_true(p > t);
	*p = *p == 'x' ? 'y' : 'x';
	got = dt_verify_all(t, len, dns, &opts, res);
	assert_int_equal(got, n);
	for (i = 0; i < ncheck; i++)
		if (res[i].result != DKIM_RESULT_FAIL ||
		    res[i].reason != DKIM_FAIL_BODY_HASH)
			fail_msg("%s tampered body: signature %zu: got %s",
			    what, i, dkim_reason_str(res[i].reason));
	free(t);

	/* Header: one letter of the From: value. */
	t = test_dup_exact(msg, len);
	p = strstr(t, "\nFrom:");
	if (p == NULL)
		p = strstr(t, "\nfrom:");
	assert_non_null(p);
	p += 6;
	while (*p == ' ')
		p++;
	*p = *p == 'Q' ? 'R' : 'Q';
	got = dt_verify_all(t, len, dns, &opts, res);
	assert_int_equal(got, n);
	for (i = 0; i < ncheck; i++)
		if (res[i].result != DKIM_RESULT_FAIL ||
		    res[i].reason != DKIM_FAIL_SIGNATURE)
			fail_msg("%s tampered From: signature %zu: got %s",
			    what, i, dkim_reason_str(res[i].reason));
	free(t);
}

static void
expect_pass_and_tamper(const char *what, const char *msg, size_t len,
    const char *dns, int64_t now, size_t n)
{
	expect_pass_and_tamper_some(what, msg, len, dns, now, n, n);
}

/* RFC 8463 A.3: both verify; their b= come out of our signer exactly. */
static void
test_rfc8463(void **state)
{
	size_t len, ulen, dlen;
	char *msg = dt_read("rfc8463/signed-A3.eml", &len);
	char *unsigned_msg = dt_read("rfc8463/unsigned-A3-body.eml", &ulen);
	char *dns = dt_read("rfc8463/dns.txt", &dlen);
	struct dkim_privkey *ed =
	    dt_load_key("rfc8463/ed25519-brisbane.private.pem");
	struct dkim_privkey *rsa = dt_load_key("rfc8463/rsa-test.private.pem");
	struct dkim_msg m;
	enum dkim_reason r;
	size_t i, nsig = 0;

	(void)state;
	expect_pass_and_tamper("rfc8463 A.3", msg, len, dns, -1, 2);

	assert_int_equal(dkim_msg_parse(msg, len, &m, &r), 0);
	for (i = 0; i < m.nhdrs; i++) {
		const struct dkim_hdr *h = &m.hdrs[i];
		struct dkim_privkey *k;
		const char *err = NULL;
		char *want, *got;

		if (!dkim_hdr_is(h, "DKIM-Signature"))
			continue;
		k = memmem(h->raw, h->rawlen, "ed25519", 7) ? ed : rsa;
		want = dt_b_value(h->raw, h->rawlen);
		/* From the unsigned message: nothing of the answer is in it. */
		got = dkim_sign_field(unsigned_msg, ulen, k, h->raw, h->rawlen,
		    &err);
		if (got == NULL)
			fail_msg("sign_field: %s", err);
		if (strcmp(got, want) != 0)
			fail_msg("b= of signature %zu: got %s, want %s", nsig,
			    got, want);
		free(got);
		free(want);
		nsig++;
	}
	assert_int_equal(nsig, 2);
	dkim_msg_free(&m);

	/* The same message in dkimpy's copy (LF endings). */
	free(msg);
	{
		char *lf = dt_read("dkimpy-data/rfc6376.signed.msg", &len);

		msg = dt_crlf(lf, len, &len);
		free(lf);
	}
	expect_pass_and_tamper("dkimpy rfc6376.signed.msg", msg, len, dns, -1,
	    2);
	free(msg);
	msg = dt_read("dkimpy-data/rfc6376.signed.rsa.msg", &len);
	{
		char *c = dt_crlf(msg, len, &len);

		free(msg);
		msg = c;
	}
	expect_pass_and_tamper("dkimpy rfc6376.signed.rsa.msg", msg, len, dns,
	    -1, 1);

	dkim_privkey_free(ed);
	dkim_privkey_free(rsa);
	free(msg);
	free(unsigned_msg);
	free(dns);
}

/* go-msgauth's exact signer outputs. */
static void
test_gomsgauth_sign(void **state)
{
	static const char *const hdrs[] = {
		"From", "To", "Subject", "Date", "Message-ID",
	};
	static const struct {
		const char *key, *domain, *expected;
	} cases[] = {
		{ "rfc6376/rfc6376-appendixC-brisbane.private.pem",
		    "example.org",
		    "go-msgauth/sign-expected-rsa-example.org-brisbane.eml" },
		{ "rfc8463/ed25519-brisbane.private.pem",
		    "football.example.com",
		    "go-msgauth/sign-expected-ed25519-football.example.com-"
		    "brisbane.eml" },
	};
	size_t len, elen, dlen, i;
	char *in = dt_read("go-msgauth/sign-input.eml", &len);
	char *dns = dt_read("go-msgauth/dns.txt", &dlen);

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		struct dkim_privkey *k = dt_load_key(cases[i].key);
		char *want = dt_read(cases[i].expected, &elen);
		struct dkim_sign_opts o;
		const char *err = NULL;
		char *field, *got;
		size_t flen;

		dkim_sign_opts_init(&o, cases[i].domain, "brisbane");
		o.headers = hdrs;
		o.nheaders = nitems(hdrs);
		o.hcanon = o.bcanon = DKIM_CANON_SIMPLE;
		o.timestamp = 424242;
		field = dkim_sign(in, len, k, &o, &err);
		if (field == NULL)
			fail_msg("%s: %s", cases[i].expected, err);
		flen = strlen(field);
		got = malloc(flen + len + 1);
		assert_non_null(got);
		memcpy(got, field, flen);
		memcpy(got + flen, in, len);
		got[flen + len] = '\0';
		if (flen + len != elen || memcmp(got, want, elen) != 0)
			fail_msg("%s:\ngot  %s\nwant %s", cases[i].expected,
			    test_escn(got, flen), test_escn(want,
			    elen > len ? elen - len : elen));
		/* And it verifies (go-msgauth's DNS has both keys). */
		expect_pass_and_tamper(cases[i].expected, got, flen + len, dns,
		    -1, 1);
		free(got);
		free(field);
		free(want);
		dkim_privkey_free(k);
	}
	free(in);
	free(dns);
}

static void
test_gomsgauth_verify(void **state)
{
	size_t len, dlen;
	char *dns = dt_read("go-msgauth/dns.txt", &dlen);
	char *msg;

	(void)state;
	msg = dt_read("go-msgauth/verified-rfc6376-A2-resigned.eml", &len);
	expect_pass_and_tamper("A2-resigned", msg, len, dns, -1, 1);
	free(msg);
	msg = dt_read("go-msgauth/verified-rawrsa-newengland.eml", &len);
	expect_pass_and_tamper("rawrsa-newengland", msg, len, dns, -1, 1);
	free(msg);
	msg = dt_read("go-msgauth/unsigned.eml", &len);
	expect_all("unsigned", msg, len, dns, -1, 0, DKIM_RESULT_NONE);
	free(msg);
	free(dns);
}

static void
test_dkimpy_signed(void **state)
{
	/* dkimpy's test_dkim.py dnsfunc: gmail's 2012 key. */
	static const char gmail[] = "k=rsa; "
	    "p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1Kd87/UeJjenpabgbFwh"
	    "+eBCsSTrqmwIYYvywlbhbqoo2DymndFkbjOVIPIldNs/m40KF+yzMn1skyoxcTUGCQ"
	    "s8g3FgD2Ap3ZB5DekAo5wMmk4wimDO+U8QzI3SD07y2+07wlNWwIt8svnxgdxGkVbb"
	    "hzY8i+RQ9DpSVpPbF7ykQxtKXkv/ahW3KjViiAH+ghvvIhkx4xYSIc9oSwVmAl5Oct"
	    "MEeWUwg8Istjqz8BZeTWbf41fbNhte7Y+YqZOwq1Sd0DbvYAD9NOZK9vlfuac0598H"
	    "Y+vtSBczUiKERHv1yRbcaQtZFh5wtiRrN04BLUTD21MycBX5jYchHjPY/wIDAQAB";
	struct dt_sigresult res[DT_MAX_SIGS];
	size_t len;
	char *msg, *dns;

	(void)state;
	/* Exim's Ed25519 signature (an independent implementation). */
	msg = dt_read("dkimpy-data/ed25519test2.msg", &len);
	dns = dt_dns1_file("sed._domainkey.test.ex", "dkimpy-data/eximtest.dns");
	expect_pass_and_tamper("exim ed25519test2.msg", msg, len, dns, -1, 1);
	free(msg);
	free(dns);

	/* Degenerate folding (Debian bug #711751), relaxed/relaxed. */
	msg = dt_read_crlf("dkimpy-data/test2.message", &len);
	dns = dt_dns1("20120113._domainkey.gmail.com", gmail);
	expect_pass_and_tamper("test2.message", msg, len, dns, -1, 1);
	free(msg);
	free(dns);

	/* d=legitimate.com(.attacker.com is no domain name. */
	msg = dt_read_crlf("dkimpy-data/test.message.baddomain", &len);
	dns = dt_dns1_file("test._domainkey.legitimate.com(.attacker.com",
	    "dkimpy-data/test.txt");
	assert_int_equal(dt_verify_all(msg, len, dns, NULL, res), 1);
	assert_int_equal(res[0].result, DKIM_RESULT_PERMERROR);
	assert_int_equal(res[0].reason, DKIM_SIG_DOMAIN);
	free(msg);
	free(dns);
}

/* Each key record of dkimpy's data gives its documented result. */
static void
test_dkimpy_keys(void **state)
{
	static const struct {
		const char *file;
		enum dkim_reason want;
		enum dkim_keytype type;
		unsigned int bits;
	} cases[] = {
		{ "test.txt", DKIM_OK, DKIM_KEY_RSA, 1024 },
		{ "test2.txt", DKIM_OK, DKIM_KEY_RSA, 1024 },
		{ "1024_testkey_wo_markers.pub.txt", DKIM_OK, DKIM_KEY_RSA,
		    1024 },
		{ "1024_testkey_wo_markers.pub.rsa.txt", DKIM_OK, DKIM_KEY_RSA,
		    1024 },
		{ "2048_testkey_wo_markers.pub.txt", DKIM_OK, DKIM_KEY_RSA,
		    2048 },
		{ "2048_testkey_wo_markers.pub.rsa.txt", DKIM_OK, DKIM_KEY_RSA,
		    2048 },
		{ "2048_testkey_PKCS8.key.pub.txt", DKIM_OK, DKIM_KEY_RSA,
		    2048 },
		{ "ed25519test.dns", DKIM_OK, DKIM_KEY_ED25519, 256 },
		{ "eximtest.dns", DKIM_OK, DKIM_KEY_ED25519, 256 },
		{ "badk.txt", DKIM_FAIL_KEY_TYPE, 0, 0 },
		{ "badversion.txt", DKIM_KEY_VERSION, 0, 0 },
		{ "test_bad.txt", DKIM_KEY_BAD_P, 0, 0 },
		{ "test_tlsrpt.txt", DKIM_FAIL_KEY_SERVICE, 0, 0 },
	};
	size_t i, len;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		char rel[256], *txt;
		struct dkim_key *key = NULL;
		enum dkim_reason r;
		int rc;

		snprintf(rel, sizeof(rel), "dkimpy-data/%s", cases[i].file);
		txt = dt_read(rel, &len);
		while (len > 0 && (txt[len - 1] == '\n' ||
		    txt[len - 1] == '\r'))
			len--;
		rc = dkim_key_parse(txt, len, &key, &r);
		if (r != cases[i].want)
			fail_msg("%s: got %s, want %s", cases[i].file,
			    dkim_reason_str(r), dkim_reason_str(cases[i].want));
		if (cases[i].want == DKIM_OK) {
			assert_int_equal(rc, 0);
			assert_int_equal(key->type, cases[i].type);
			assert_int_equal(key->bits, cases[i].bits);
		} else {
			assert_int_equal(rc, -1);
			assert_null(key);
		}
		dkim_key_free(key);
		free(txt);
	}
}

/* Sign with every dkimpy private key, verify with its public record. */
static void
test_dkimpy_sign_verify(void **state)
{
	static const struct {
		const char *key, *pub;
	} cases[] = {
		{ "test.private", "test.txt" },
		{ "test2.private", "test2.txt" },
		{ "1024_testkey.key", "1024_testkey_wo_markers.pub.txt" },
		{ "1024_testkey.key", "1024_testkey_wo_markers.pub.rsa.txt" },
		{ "2048_testkey.key", "2048_testkey_wo_markers.pub.txt" },
		{ "2048_testkey.key", "2048_testkey_wo_markers.pub.rsa.txt" },
		{ "2048_testkey_PKCS8.key", "2048_testkey_PKCS8.key.pub.txt" },
		{ "ed25519test.key", "ed25519test.dns" },
	};
	static const char *const msgs[] = {
		"test.message", "message.mbox", "rfc6376.msg",
		"rfc6376.w1258.msg", "test_extra.message", "ed25519test.msg",
		"test2.message",
	};
	size_t i, j, c, len, flen, nsigned = 0;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		char rel[256], *dns;
		struct dkim_privkey *k;

		snprintf(rel, sizeof(rel), "dkimpy-data/%s", cases[i].key);
		k = dt_load_key(rel);
		snprintf(rel, sizeof(rel), "dkimpy-data/%s", cases[i].pub);
		dns = dt_dns1_file("sel._domainkey.example.com", rel);
		for (j = 0; j < nitems(msgs); j++) {
			char *msg;

			snprintf(rel, sizeof(rel), "dkimpy-data/%s", msgs[j]);
			msg = dt_read_crlf(rel, &len);
			for (c = 0; c < 4; c++) {
				struct dkim_sign_opts o;
				const char *err = NULL;
				char *field, *signed_msg, what[512];

				dkim_sign_opts_init(&o, "example.com", "sel");
				o.hcanon = c & 1 ? DKIM_CANON_RELAXED :
				    DKIM_CANON_SIMPLE;
				o.bcanon = c & 2 ? DKIM_CANON_RELAXED :
				    DKIM_CANON_SIMPLE;
				field = dkim_sign(msg, len, k, &o, &err);
				if (field == NULL)
					fail_msg("%s: %s", msgs[j], err);
				flen = strlen(field);
				signed_msg = malloc(flen + len + 1);
				assert_non_null(signed_msg);
				memcpy(signed_msg, field, flen);
				memcpy(signed_msg + flen, msg, len);
				snprintf(what, sizeof(what), "%s/%s c=%zu",
				    cases[i].key, msgs[j], c);
				/* These carry one of their own. */
				expect_pass_and_tamper_some(what, signed_msg,
				    flen + len, dns, -1,
				    strcmp(msgs[j], "message.mbox") == 0 ||
				    strcmp(msgs[j], "test2.message") == 0 ?
				    2 : 1, 1);
				free(signed_msg);
				free(field);
				nsigned++;
			}
			free(msg);
		}
		free(dns);
		dkim_privkey_free(k);
	}
	print_message("signed and verified %zu messages\n", nsigned);
	assert_int_equal(nsigned, nitems(cases) * nitems(msgs) * 4);
}

static void
test_dkimpy_nofrom(void **state)
{
	struct dkim_privkey *k = dt_load_key("dkimpy-data/test.private");
	struct dkim_sign_opts o;
	const char *err = NULL;
	size_t len;
	char *msg = dt_read_crlf("dkimpy-data/test_nofrom.message", &len);

	(void)state;
	dkim_sign_opts_init(&o, "example.com", "test");
	assert_null(dkim_sign(msg, len, k, &o, &err));
	assert_string_equal(err, "message has no From field");
	free(msg);
	dkim_privkey_free(k);
}

/* The RFC 8032 7.1 seed file (dkimpy's) is the RFC 8463 key. */
static void
test_dkimpy_seed_is_rfc8463_key(void **state)
{
	struct dkim_privkey *seed = dt_load_key("dkimpy-data/rfc8032_7_1.key");
	struct dkim_privkey *pem = dt_load_key(
	    "rfc8463/ed25519-brisbane.private.pem");
	size_t len, ulen;
	char *msg = dt_read("rfc8463/signed-A3.eml", &len);
	char *um = dt_read("rfc8463/unsigned-A3-body.eml", &ulen);
	struct dkim_msg m;
	enum dkim_reason r;
	const char *err;
	char *a, *b;

	(void)state;
	assert_int_equal(dkim_privkey_type(seed), DKIM_KEY_ED25519);
	assert_int_equal(dkim_msg_parse(msg, len, &m, &r), 0);
	assert_true(dkim_hdr_is(&m.hdrs[0], "DKIM-Signature"));
	a = dkim_sign_field(um, ulen, seed, m.hdrs[0].raw, m.hdrs[0].rawlen,
	    &err);
	b = dkim_sign_field(um, ulen, pem, m.hdrs[0].raw, m.hdrs[0].rawlen,
	    &err);
	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(a, b);
	free(a);
	free(b);
	dkim_msg_free(&m);
	free(msg);
	free(um);
	dkim_privkey_free(seed);
	dkim_privkey_free(pem);
}

/* RFC 6376 A.1 signed with the Appendix C key verifies with its record. */
static void
test_rfc6376_appendix(void **state)
{
	struct dkim_privkey *k = dt_load_key(
	    "rfc6376/rfc6376-appendixC-brisbane.private.pem");
	struct dkim_sign_opts o;
	const char *err = NULL;
	size_t len, dlen, flen;
	char *msg = dt_read("rfc6376/appendixA1-unsigned.eml", &len);
	char *dns = dt_read("rfc6376/dns.txt", &dlen);
	char *field, *signed_msg;
	int c;

	(void)state;
	for (c = 0; c < 4; c++) {
		dkim_sign_opts_init(&o, "example.com", "brisbane");
		o.hcanon = c & 1 ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
		o.bcanon = c & 2 ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
		field = dkim_sign(msg, len, k, &o, &err);
		if (field == NULL)
			fail_msg("A.1: %s", err);
		flen = strlen(field);
		signed_msg = malloc(flen + len + 1);
		assert_non_null(signed_msg);
		memcpy(signed_msg, field, flen);
		memcpy(signed_msg + flen, msg, len);
		expect_pass_and_tamper("rfc6376 A.1", signed_msg, flen + len,
		    dns, -1, 1);
		free(signed_msg);
		free(field);
	}
	free(msg);
	free(dns);
	dkim_privkey_free(k);
}

/* stalwart mail-auth: DNS lines, a blank line, the message (LF). */
static void
test_mailauth(void **state)
{
	static const struct {
		const char *file;
		size_t nsig;
	} cases[] = {
		{ "001.txt", 2 }, { "002.txt", 1 }, { "003.txt", 2 },
		{ "004.txt", 1 }, { "005.txt", 1 }, { "006.txt", 1 },
	};
	size_t i, len, mlen;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		char rel[256], *txt, *sep, *msg;

		snprintf(rel, sizeof(rel), "mail-auth/%s", cases[i].file);
		txt = dt_read(rel, &len);
		sep = strstr(txt, "\n\n");
		assert_non_null(sep);
		sep[1] = '\0';
		msg = dt_crlf(sep + 2, len - (size_t)(sep + 2 - txt), &mlen);
		expect_pass_and_tamper(cases[i].file, msg, mlen, txt,
		    MAILAUTH_NOW, cases[i].nsig);
		free(msg);
		free(txt);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc8463),
		cmocka_unit_test(test_gomsgauth_sign),
		cmocka_unit_test(test_gomsgauth_verify),
		cmocka_unit_test(test_dkimpy_signed),
		cmocka_unit_test(test_dkimpy_keys),
		cmocka_unit_test(test_dkimpy_sign_verify),
		cmocka_unit_test(test_dkimpy_nofrom),
		cmocka_unit_test(test_dkimpy_seed_is_rfc8463_key),
		cmocka_unit_test(test_rfc6376_appendix),
		cmocka_unit_test(test_mailauth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
