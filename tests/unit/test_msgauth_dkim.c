/*
 * test_msgauth_dkim.c: the DKIM core piece by piece (src/msgauth/dkim*.c):
 *   - tag lists (RFC 6376 3.2): FWS, trailing ';', duplicates, names,
 *     values, offsets;
 *   - DKIM-Signature fields (3.5): every permerror class, defaults,
 *     accepted forms;
 *   - key records (3.6.1): every class, v= first, h=, s=, t=, k=, p= forms;
 *   - canonicalization (3.4): the RFC 6376 3.4.6 example, header and body
 *     tables (simple and relaxed: empty body, trailing empty lines, no
 *     final CRLF, WSP), the body fed in every chunking (one byte at a
 *     time, random splits) with the same output, the l= limit;
 *   - header selection: bottom up, oversigning, added fields;
 *   - verification outcomes: pass, body hash, signature, key mismatch,
 *     hash not allowed, t=s, expired, rsa-sha1 (and the flag that allows
 *     it), l= shorter body and partial body, revoked and small keys,
 *     testing flag;
 *   - the default signed header set and the signer's layout.
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

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "msgauth/b64.h"
#include "msgauth/dkim.h"

#include "testutil.h"
#include "test_msgauth_dkim_util.h"

#define S(s)	s, sizeof(s) - 1

/*
 * Tag lists
 */

static void
test_taglist_ok(void **state)
{
	static const struct {
		const char *in;
		const char *want;	/* "name=value|..." */
	} cases[] = {
		{ "", "" },
		{ " \t", "" },
		{ "a=1", "a=1|" },
		{ "a=1;", "a=1|" },
		{ "a=1; ", "a=1|" },
		{ " a = 1 ; b=2;", "a=1|b=2|" },
		{ "a=", "a=|" },
		{ "a=;b=x", "a=|b=x|" },
		{ "a=1 2\r\n\t3;b=x", "a=1 2\r\n\t3|b=x|" },
		{ "a\r\n =\r\n 1\r\n ;\r\n b=2", "a=1|b=2|" },
		{ "A=1;a=2", "A=1|a=2|" },		/* case-sensitive */
		{ "x_1=y=z", "x_1=y=z|" },
		{ "n=caf\xc3\xa9", "n=caf\xc3\xa9|" },	/* 8-bit notes */
	};
	size_t i, k;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		struct dkim_taglist l;
		enum dkim_reason r = DKIM_OK;
		char got[256] = "";
		char *in = test_dup_exact(cases[i].in, strlen(cases[i].in));

		if (dkim_taglist_parse(in, strlen(cases[i].in), &l, &r) != 0)
			fail_msg("%s: %s", test_esc(cases[i].in),
			    dkim_reason_str(r));
		for (k = 0; k < l.ntags; k++) {
			size_t n = strlen(got);

			snprintf(got + n, sizeof(got) - n, "%.*s=%.*s|",
			    (int)l.tags[k].namelen, l.tags[k].name,
			    (int)l.tags[k].valuelen, l.tags[k].value);
		}
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("%s: got %s, want %s", test_esc(cases[i].in),
			    test_esc(got), test_esc(cases[i].want));
		free(in);
	}
}

static void
test_taglist_bad(void **state)
{
	static const struct {
		const char *in;
		enum dkim_reason want;
	} cases[] = {
		{ ";", DKIM_SIG_SYNTAX },
		{ "a=1;;", DKIM_SIG_SYNTAX },
		{ "a=1;;b=2", DKIM_SIG_SYNTAX },
		{ "=1", DKIM_SIG_SYNTAX },
		{ "a", DKIM_SIG_SYNTAX },
		{ "a 1=2", DKIM_SIG_SYNTAX },
		{ "1a=2", DKIM_SIG_SYNTAX },
		{ "_a=2", DKIM_SIG_SYNTAX },
		{ "a-b=2", DKIM_SIG_SYNTAX },
		{ "a=1\r\nb=2", DKIM_SIG_SYNTAX },	/* CRLF without WSP */
		{ "a=1\nb", DKIM_SIG_SYNTAX },	/* bare LF */
		{ "a=1\r", DKIM_SIG_SYNTAX },
		{ "a=\x01", DKIM_SIG_SYNTAX },
		{ "a=1\r\n", DKIM_SIG_SYNTAX },	/* CRLF must be FWS */
		{ "a=1; a=2", DKIM_SIG_DUPLICATE_TAG },
		{ "bh=1; b=2; bh=3", DKIM_SIG_DUPLICATE_TAG },
	};
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		struct dkim_taglist l;
		enum dkim_reason r = DKIM_OK;
		char *in = test_dup_exact(cases[i].in, strlen(cases[i].in));

		if (dkim_taglist_parse(in, strlen(cases[i].in), &l, &r) != -1)
			fail_msg("%s: accepted", test_esc(cases[i].in));
		if (r != cases[i].want)
			fail_msg("%s: got %s, want %s", test_esc(cases[i].in),
			    dkim_reason_str(r), dkim_reason_str(cases[i].want));
		free(in);
	}
}

static void
test_taglist_limits_and_spans(void **state)
{
	struct dkim_taglist l;
	enum dkim_reason r;
	struct buf b;
	size_t i;
	const char *txt = "a=1; b= x\r\n y ;c=2";

	(void)state;
	buf_init(&b, 1 << 16);
	for (i = 0; i < DKIM_TAGS_MAX; i++)
		assert_int_equal(buf_printf(&b, "t%zu=%zu;", i, i), 0);
	assert_int_equal(dkim_taglist_parse(b.data, b.len, &l, &r), 0);
	assert_int_equal(l.ntags, DKIM_TAGS_MAX);
	assert_int_equal(buf_append_str(&b, "z=1"), 0);
	assert_int_equal(dkim_taglist_parse(b.data, b.len, &l, &r), -1);
	assert_int_equal(r, DKIM_SIG_TOO_MANY_TAGS);
	buf_free(&b);

	/* The b= span covers the value and the white space around it. */
	assert_int_equal(dkim_taglist_parse(txt, strlen(txt), &l, &r), 0);
	assert_int_equal(l.ntags, 3);
	assert_string_equal(txt + l.tags[1].span_start, " x\r\n y ;c=2");
	assert_int_equal(l.tags[1].span_end, strlen("a=1; b= x\r\n y "));
	assert_int_equal(l.tags[1].valuelen, strlen("x\r\n y"));
	assert_null(dkim_taglist_get(&l, "B"));
	assert_non_null(dkim_taglist_get(&l, "c"));
}

/*
 * Signatures
 */

#define SIG_BH	"2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="

static enum dkim_reason
sig_reason(const char *value, struct dkim_sig **sig_r)
{
	struct dkim_sig *sig = NULL;
	enum dkim_reason r = DKIM_REASON_COUNT;
	char *field;
	size_t n;
	int rc;

	n = strlen("DKIM-Signature:") + strlen(value) + 2;
	field = malloc(n + 1);
	assert_non_null(field);
	snprintf(field, n + 1, "DKIM-Signature:%s\r\n", value);
	rc = dkim_sig_parse(field, n, &sig, &r);
	assert_int_equal(rc, r == DKIM_OK ? 0 : -1);
	if (rc == 0)
		assert_non_null(sig);
	else
		assert_null(sig);
	free(field);
	if (sig_r != NULL)
		*sig_r = sig;
	else
		dkim_sig_free(sig);
	return r;
}

static void
test_sig_errors(void **state)
{
#define BASE_A	" v=1; a=rsa-sha256; d=example.com; s=sel; h=From:To; "
#define BASE_B	" bh=" SIG_BH "; b=dGVzdA=="
	static const struct {
		const char *value;
		enum dkim_reason want;
	} cases[] = {
		{ BASE_A BASE_B, DKIM_OK },
		{ BASE_A BASE_B "; z=From:foo@example.com|To:bar; foo=bar",
		    DKIM_OK },
		{ " a=rsa-sha256; d=example.com; s=sel; h=From; " BASE_B,
		    DKIM_SIG_MISSING_V },
		{ " v=1; d=example.com; s=sel; h=From; " BASE_B,
		    DKIM_SIG_MISSING_A },
		{ BASE_A " bh=" SIG_BH, DKIM_SIG_MISSING_B },
		{ BASE_A " bh=" SIG_BH "; b=", DKIM_SIG_MISSING_B },
		{ BASE_A " b=dGVzdA==", DKIM_SIG_MISSING_BH },
		{ " v=1; a=rsa-sha256; s=sel; h=From; " BASE_B,
		    DKIM_SIG_MISSING_D },
		{ " v=1; a=rsa-sha256; d=example.com; s=sel; " BASE_B,
		    DKIM_SIG_MISSING_H },
		{ " v=1; a=rsa-sha256; d=example.com; h=From; " BASE_B,
		    DKIM_SIG_MISSING_S },
		{ " v=2; a=rsa-sha256; d=example.com; s=sel; h=From; " BASE_B,
		    DKIM_SIG_VERSION },
		{ " v=1.0; a=rsa-sha256; d=example.com; s=sel; h=From; " BASE_B,
		    DKIM_SIG_VERSION },
		{ " v=1; a=rsa-sha512; d=example.com; s=sel; h=From; " BASE_B,
		    DKIM_SIG_ALGORITHM },
		{ " v=1; a=ed448-sha256; d=example.com; s=sel; h=From; " BASE_B,
		    DKIM_SIG_ALGORITHM },
		{ BASE_A " bh=" SIG_BH "; b=dGVzdA=", DKIM_SIG_BAD_B },
		{ BASE_A " bh=" SIG_BH "; b=d!GVzdA==", DKIM_SIG_BAD_B },
		{ BASE_A " bh=2jUSOH9; b=dGVzdA==", DKIM_SIG_BAD_BH },
		{ BASE_A " bh=; b=dGVzdA==", DKIM_SIG_BAD_BH },
		{ BASE_A BASE_B "; c=fancy", DKIM_SIG_CANON },
		{ BASE_A BASE_B "; c=simple/fancy", DKIM_SIG_CANON },
		{ BASE_A BASE_B "; c=relaxed/simple/relaxed", DKIM_SIG_CANON },
		{ BASE_A BASE_B "; c=/relaxed", DKIM_SIG_CANON },
		{ " v=1; a=rsa-sha256; d=example; s=sel; h=From; " BASE_B,
		    DKIM_SIG_DOMAIN },
		{ " v=1; a=rsa-sha256; d=legitimate.com(.attacker.com; s=sel; "
		    "h=From; " BASE_B, DKIM_SIG_DOMAIN },
		{ " v=1; a=rsa-sha256; d=-a.example; s=sel; h=From; " BASE_B,
		    DKIM_SIG_DOMAIN },
		{ " v=1; a=rsa-sha256; d=example.com.; s=sel; h=From; " BASE_B,
		    DKIM_SIG_DOMAIN },
		{ " v=1; a=rsa-sha256; d=a..example; s=sel; h=From; " BASE_B,
		    DKIM_SIG_DOMAIN },
		{ " v=1; a=rsa-sha256; d=example.com; s=a/b; h=From; " BASE_B,
		    DKIM_SIG_SELECTOR },
		{ " v=1; a=rsa-sha256; d=example.com; s=; h=From; " BASE_B,
		    DKIM_SIG_SELECTOR },
		{ " v=1; a=rsa-sha256; d=example.com; s=sel; h=To:Subject; "
		    BASE_B, DKIM_SIG_FROM_NOT_SIGNED },
		{ " v=1; a=rsa-sha256; d=example.com; s=sel; h=From::To; "
		    BASE_B, DKIM_SIG_HEADERS },
		{ " v=1; a=rsa-sha256; d=example.com; s=sel; h=From:; "
		    BASE_B, DKIM_SIG_HEADERS },
		{ " v=1; a=rsa-sha256; d=example.com; s=sel; h=Fr om; "
		    BASE_B, DKIM_SIG_HEADERS },
		{ " v=1; a=rsa-sha256; d=example.com; s=sel; h=; "
		    BASE_B, DKIM_SIG_HEADERS },
		{ BASE_A BASE_B "; i=user.example.com", DKIM_SIG_IDENTITY },
		{ BASE_A BASE_B "; i=user@", DKIM_SIG_IDENTITY },
		{ BASE_A BASE_B "; i=user@example.org",
		    DKIM_SIG_IDENTITY_DOMAIN },
		{ BASE_A BASE_B "; i=@badexample.com",
		    DKIM_SIG_IDENTITY_DOMAIN },
		{ BASE_A BASE_B "; i=@com", DKIM_SIG_IDENTITY_DOMAIN },
		{ BASE_A BASE_B "; l=12a", DKIM_SIG_LENGTH },
		{ BASE_A BASE_B "; l=-1", DKIM_SIG_LENGTH },
		{ BASE_A BASE_B "; l=", DKIM_SIG_LENGTH },
		{ BASE_A BASE_B "; q=dns", DKIM_SIG_QUERY },
		{ BASE_A BASE_B "; q=http/well-known", DKIM_SIG_QUERY },
		{ BASE_A BASE_B "; t=now", DKIM_SIG_TIMESTAMP },
		{ BASE_A BASE_B "; t=1234567890123456789", DKIM_SIG_TIMESTAMP },
		{ BASE_A BASE_B "; x=soon", DKIM_SIG_EXPIRATION },
		{ BASE_A BASE_B "; t=1000; x=999",
		    DKIM_SIG_EXPIRES_BEFORE_SIGNED },
		{ BASE_A BASE_B "; v=1", DKIM_SIG_DUPLICATE_TAG },
		{ BASE_A BASE_B ";; s=x", DKIM_SIG_SYNTAX },
	};
	size_t i;
	enum dkim_reason r;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		r = sig_reason(cases[i].value, NULL);
		if (r != cases[i].want)
			fail_msg("%s:\ngot %s, want %s", cases[i].value,
			    dkim_reason_str(r), dkim_reason_str(cases[i].want));
		/* Every reason is a permerror with its own text. */
		if (r != DKIM_OK)
			assert_int_equal(dkim_reason_result(r),
			    DKIM_RESULT_PERMERROR);
	}
}

static void
test_sig_values(void **state)
{
	struct dkim_sig *sig;
	char q[300];

	(void)state;
	/* Defaults: simple/simple, i= "@" d=, no l= t= x=. */
	assert_int_equal(sig_reason(BASE_A BASE_B, &sig), DKIM_OK);
	assert_int_equal(sig->alg, DKIM_ALG_RSA_SHA256);
	assert_int_equal(sig->hcanon, DKIM_CANON_SIMPLE);
	assert_int_equal(sig->bcanon, DKIM_CANON_SIMPLE);
	assert_string_equal(sig->identity, "@example.com");
	assert_string_equal(sig->identity_domain, "example.com");
	assert_int_equal(sig->length, -1);
	assert_int_equal(sig->timestamp, -1);
	assert_int_equal(sig->expiration, -1);
	assert_int_equal(sig->nhdrs, 2);
	assert_string_equal(sig->hdrs[0], "From");
	assert_string_equal(sig->hdrs[1], "To");
	assert_int_equal(sig->blen, 4);
	assert_memory_equal(sig->b, "test", 4);
	assert_int_equal(sig->bhlen, 32);
	assert_int_equal(dkim_key_query_name(sig, q, sizeof(q)), 0);
	assert_string_equal(q, "sel._domainkey.example.com");
	assert_int_equal(dkim_key_query_name(sig, q, 10), -1);
	dkim_sig_free(sig);

	/* c=relaxed alone is relaxed/simple; names are case-insensitive. */
	assert_int_equal(sig_reason(" v=1; a=RSA-SHA1; c=relaxed;\r\n"
	    "\td=Mail.Example.COM; s=s_1.x; h=to\r\n :\r\n FROM : from;"
	    " i=\"a b\"@sub.mail.example.com; l=0; q=foo:dns/txt; t=1;"
	    " x=1;" BASE_B, &sig), DKIM_OK);
	assert_int_equal(sig->alg, DKIM_ALG_RSA_SHA1);
	assert_string_equal(dkim_alg_str(sig->alg), "rsa-sha1");
	assert_int_equal(sig->hcanon, DKIM_CANON_RELAXED);
	assert_int_equal(sig->bcanon, DKIM_CANON_SIMPLE);
	assert_string_equal(sig->domain, "Mail.Example.COM");
	assert_string_equal(sig->identity_domain, "sub.mail.example.com");
	assert_int_equal(sig->nhdrs, 3);
	assert_string_equal(sig->hdrs[1], "FROM");
	assert_int_equal(sig->length, 0);
	assert_int_equal(sig->timestamp, 1);
	assert_int_equal(sig->expiration, 1);
	dkim_sig_free(sig);

	assert_int_equal(sig_reason(BASE_A BASE_B "; c=simple/relaxed; "
	    "a=ed25519-sha256", NULL), DKIM_SIG_DUPLICATE_TAG);
	assert_int_equal(sig_reason(" v=1; a=ed25519-sha256; d=example.com;"
	    " s=sel; h=from; c=relaxed/relaxed;" BASE_B, &sig), DKIM_OK);
	assert_int_equal(sig->alg, DKIM_ALG_ED25519_SHA256);
	assert_int_equal(sig->bcanon, DKIM_CANON_RELAXED);
	dkim_sig_free(sig);

	/* A huge l= saturates rather than wraps. */
	assert_int_equal(sig_reason(BASE_A BASE_B "; l="
	    "99999999999999999999999999999999999", &sig), DKIM_OK);
	assert_int_equal(sig->length, INT64_MAX);
	dkim_sig_free(sig);
}

/*
 * Key records
 */

#define P1024	"MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5" \
	"V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC" \
	"DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBf" \
	"O2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB"
/* dkimpy's test key of 512 bits. */
#define P512	"MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBANmBe10IgY+u7h3enWTukkqt" \
	"UD5PR52Tb/mPfjC0QJTocVBq6Za/PlzfV+Py92VaCak19F4WrbVTK5Gg5tW220M" \
	"CAwEAAQ=="
#define PED "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
/* The same key as P1024, as a bare PKCS#1 RSAPublicKey. */
#define RAW1024	"p=MIGJAoGBAOQeU5CgFPNZGIazlXo2k/eJ1jpaTTxrmqF1HrDLlt" \
	"04pvaMtCJj8nXoliLRC/H9vJjMI1vdb3XLcW60AIN/PBD8EL97/y4GwJH7LPU" \
	"vGP48vqUe+owqszesbiGy1PlCO8c70/OjFnJVgvMF87YR4Lcincb7aSvI5MgpP6" \
	"X8rjDdAgMBAAE="

static void
test_key_records(void **state)
{
	static const struct {
		const char *rec;
		enum dkim_reason want;
	} cases[] = {
		{ "v=DKIM1; k=rsa; p=" P1024, DKIM_OK },
		{ "p=" P1024, DKIM_OK },
		{ "p=" P1024 "; n=hello world; g=*; zz=top", DKIM_OK },
		{ "v=DKIM1; p=" P1024 "; s=email:*", DKIM_OK },
		{ "v=DKIM1; p=" P1024 "; s=tlsrpt : email", DKIM_OK },
		{ "v=DKIM1; k=ed25519; p=" PED, DKIM_OK },
		{ "v=DKIM1;k=rsa;p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQ KBgQD"
		    "kHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi"
		    "0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM"
		    "KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w"
		    "3QIDAQAB", DKIM_OK },
		{ "k=rsa; v=DKIM1; p=" P1024, DKIM_KEY_VERSION },
		{ "v=DKIM2; p=" P1024, DKIM_KEY_VERSION },
		{ "v=dkim1; p=" P1024, DKIM_KEY_VERSION },
		{ "v=DKIM1; k=rsa", DKIM_KEY_MISSING_P },
		{ "", DKIM_KEY_MISSING_P },
		{ "v=DKIM1; p=" P1024 "; p=" P1024, DKIM_KEY_DUPLICATE_TAG },
		{ "v=DKIM1; p=" P1024 ";;", DKIM_KEY_SYNTAX },
		{ "v=DKIM1 p=" P1024, DKIM_KEY_VERSION },
		{ "v=DKIM1; k=dsa; p=" P1024, DKIM_FAIL_KEY_TYPE },
		{ "v=DKIM1; s=tlsrpt; p=" P1024, DKIM_FAIL_KEY_SERVICE },
		{ "v=DKIM1; p=", DKIM_FAIL_KEY_REVOKED },
		{ "v=DKIM1; k=ed25519; p=", DKIM_FAIL_KEY_REVOKED },
		{ "v=DKIM1; p=" P512, DKIM_FAIL_KEY_TOO_SMALL },
		{ "v=DKIM1; p=dGVzdA==", DKIM_KEY_BAD_P },
		{ "v=DKIM1; p=!!!!", DKIM_KEY_BAD_P },
		{ "v=DKIM1; p=" P1024 "AA==", DKIM_KEY_BAD_P },
		{ "v=DKIM1; k=ed25519; p=" P1024, DKIM_KEY_BAD_P },
		{ "v=DKIM1; k=rsa; p=" PED, DKIM_KEY_BAD_P },
		{ "v=DKIM1; k=ed25519; p=dGVzdA==", DKIM_KEY_BAD_P },
	};
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		struct dkim_key *key = NULL;
		enum dkim_reason r = DKIM_REASON_COUNT;
		size_t n = strlen(cases[i].rec);
		char *in = test_dup_exact(cases[i].rec, n);
		int rc = dkim_key_parse(in, n, &key, &r);

		if (r != cases[i].want)
			fail_msg("%s:\ngot %s, want %s", cases[i].rec,
			    dkim_reason_str(r), dkim_reason_str(cases[i].want));
		assert_int_equal(rc, r == DKIM_OK ? 0 : -1);
		if (rc == 0)
			assert_non_null(key);
		else
			assert_null(key);
		dkim_key_free(key);
		free(in);
	}
}

/* An RSA SPKI record with an n of bits bits (not a real key: no primes). */
static char *
rsa_record_of_size(int bits)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *pkey = NULL;
	OSSL_PARAM *params;
	BIGNUM *n = BN_new(), *e = BN_new();
	unsigned char *der = NULL;
	char *b64, *rec;
	int len;

	assert_non_null(bld);
	assert_non_null(ctx);
	assert_int_equal(BN_rand(n, bits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ODD),
	    1);
	assert_int_equal(BN_set_word(e, 65537), 1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, "n", n), 1);
	assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, "e", e), 1);
	params = OSSL_PARAM_BLD_to_param(bld);
	assert_non_null(params);
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY,
	    params), 1);
	len = i2d_PUBKEY(pkey, &der);
	assert_true(len > 0);
	b64 = b64_encode(der, (size_t)len);
	rec = xasprintf("v=DKIM1; p=%s", b64);
	free(b64);
	OPENSSL_free(der);
	EVP_PKEY_free(pkey);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(n);
	BN_free(e);
	return rec;
}

static void
test_key_sizes_and_limits(void **state)
{
	static const struct {
		int bits;
		enum dkim_reason want;
	} sizes[] = {
		{ 1023, DKIM_FAIL_KEY_TOO_SMALL }, { 1024, DKIM_OK },
		{ 4096, DKIM_OK }, { 8192, DKIM_OK },
		{ 8193, DKIM_FAIL_KEY_TOO_LARGE },
	};
	struct dkim_key *key;
	enum dkim_reason r;
	struct buf b;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(sizes); i++) {
		char *rec = rsa_record_of_size(sizes[i].bits);

		r = DKIM_REASON_COUNT;
		key = NULL;
		dkim_key_parse(rec, strlen(rec), &key, &r);
		if (r != sizes[i].want)
			fail_msg("%d bits: got %s, want %s", sizes[i].bits,
			    dkim_reason_str(r), dkim_reason_str(sizes[i].want));
		if (key != NULL)
			assert_int_equal(key->bits, sizes[i].bits);
		dkim_key_free(key);
		free(rec);
	}
	buf_init(&b, 1 << 16);
	assert_int_equal(buf_append_str(&b, "v=DKIM1; p=" P1024), 0);
	for (i = 2; i < DKIM_TAGS_MAX; i++)
		assert_int_equal(buf_printf(&b, "; n%zu=x", i), 0);
	assert_int_equal(dkim_key_parse(b.data, b.len, &key, &r), 0);
	dkim_key_free(key);
	assert_int_equal(buf_append_str(&b, "; z=1"), 0);
	assert_int_equal(dkim_key_parse(b.data, b.len, &key, &r), -1);
	assert_int_equal(r, DKIM_KEY_TOO_MANY_TAGS);
	buf_free(&b);
}

static void
test_key_flags(void **state)
{
	struct dkim_key *key;
	enum dkim_reason r;
	const char *rec;

	(void)state;
	rec = "v=DKIM1; h=sha256; t=y:s:x; p=" P1024;
	assert_int_equal(dkim_key_parse(rec, strlen(rec), &key, &r), 0);
	assert_int_equal(key->hashes, DKIM_HASH_SHA256);
	assert_true(key->testing);
	assert_true(key->strict);
	assert_int_equal(key->type, DKIM_KEY_RSA);
	assert_int_equal(key->bits, 1024);
	dkim_key_free(key);

	rec = "h=sha1 : md5; p=" P1024;
	assert_int_equal(dkim_key_parse(rec, strlen(rec), &key, &r), 0);
	assert_int_equal(key->hashes, DKIM_HASH_SHA1);
	assert_false(key->testing);
	assert_false(key->strict);
	dkim_key_free(key);

	rec = "p=" P1024;
	assert_int_equal(dkim_key_parse(rec, strlen(rec), &key, &r), 0);
	assert_int_equal(key->hashes, DKIM_HASH_SHA1 | DKIM_HASH_SHA256);
	dkim_key_free(key);

	/* A bare RSAPublicKey: the failed SPKI try leaves no error. */
	ERR_clear_error();
	rec = RAW1024;
	assert_int_equal(dkim_key_parse(rec, strlen(rec), &key, &r), 0);
	assert_int_equal(key->bits, 1024);
	assert_int_equal(ERR_peek_error(), 0);
	dkim_key_free(key);
	rec = "p=" P1024 "AA==";
	assert_int_equal(dkim_key_parse(rec, strlen(rec), &key, &r), -1);
	assert_int_equal(ERR_peek_error(), 0);

	dkim_key_free(NULL);
	dkim_sig_free(NULL);
	dkim_privkey_free(NULL);
}

/*
 * Canonicalization
 */

static void
sink_buf(void *arg, const char *data, size_t len)
{
	assert_int_equal(buf_append(arg, data, len), 0);
}

/* The canonical body, fed in chunks of chunk octets (0: all at once). */
static char *
canon_body(enum dkim_canon c, int64_t limit, const char *in, size_t len,
    size_t chunk, size_t *outlen, uint64_t *total)
{
	struct dkim_bodycanon bc;
	struct buf b;
	size_t i, n;
	char *ret;

	buf_init(&b, 1 << 24);
	dkim_bodycanon_init(&bc, c, limit, sink_buf, &b);
	if (chunk == 0)
		chunk = len > 0 ? len : 1;
	for (i = 0; i < len; i += n) {
		n = len - i < chunk ? len - i : chunk;
		dkim_bodycanon_update(&bc, in + i, n);
	}
	*total = dkim_bodycanon_final(&bc);
	*outlen = b.len;
	ret = test_dup_exact(buf_str(&b), b.len);
	buf_free(&b);
	return ret;
}

static void
check_body(enum dkim_canon c, const char *in, size_t len, const char *want,
    size_t wantlen)
{
	static const size_t chunks[] = { 0, 1, 2, 3, 7, 4096, 5000 };
	size_t i, outlen;
	uint64_t total;

	for (i = 0; i < nitems(chunks); i++) {
		char *got = canon_body(c, -1, in, len, chunks[i], &outlen,
		    &total);

		if (outlen != wantlen || memcmp(got, want, wantlen) != 0)
			fail_msg("%s body %s (chunks of %zu): got %s, want %s",
			    c == DKIM_CANON_SIMPLE ? "simple" : "relaxed",
			    test_escn(in, len), chunks[i],
			    test_escn(got, outlen), test_escn(want, wantlen));
		assert_int_equal(total, wantlen);
		free(got);
	}
}

static void
test_canon_body(void **state)
{
	static const struct {
		const char *in, *simple, *relaxed;
	} cases[] = {
		/* RFC 6376 3.4.6 */
		{ " C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n",
		    " C\r\nD E\r\n" },
		{ "", "\r\n", "" },
		{ "\r\n", "\r\n", "" },
		{ "\r\n\r\n\r\n", "\r\n", "" },
		{ "Hey\r\n\r\n", "Hey\r\n", "Hey\r\n" },
		{ "Joe.", "Joe.\r\n", "Joe.\r\n" },	/* no final CRLF */
		{ "a\r\n\r\nb", "a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n" },
		{ "a  \t b\t\r\n", "a  \t b\t\r\n", "a b\r\n" },
		{ "a\r\n \t \r\nb\r\n", "a\r\n \t \r\nb\r\n",
		    "a\r\n\r\nb\r\n" },
		{ "a\r\n  \r\n\t\r\n", "a\r\n  \r\n\t\r\n", "a\r\n" },
		{ "  \r\n", "  \r\n", "" },
		{ "  ", "  \r\n", " \r\n" },		/* as dkimpy */
		{ "abc  ", "abc  \r\n", "abc \r\n" },	/* as dkimpy */
		{ "a\rb\nc\r\n", "a\rb\nc\r\n", "a\rb\nc\r\n" },
		{ "a\r", "a\r\r\n", "a\r\r\n" },
		{ "a\r\r\n", "a\r\r\n", "a\r\r\n" },
		{ "a \r \r\n", "a \r \r\n", "a \r\r\n" },
		{ "\r\n\r\nx", "\r\n\r\nx\r\n", "\r\n\r\nx\r\n" },
		{ "\t\r\nx", "\t\r\nx\r\n", "\r\nx\r\n" },
		{ "8bit \xe9\xff\r\n", "8bit \xe9\xff\r\n",
		    "8bit \xe9\xff\r\n" },
		/* go-msgauth's dkim/canonical_test.go cases */
		{ "Hey\r\nHow r u?\r\n\r\n\r\n", "Hey\r\nHow r u?\r\n",
		    "Hey\r\nHow r u?\r\n" },
		{ "Hey\r\n\r\nHow r u?", "Hey\r\n\r\nHow r u?\r\n",
		    "Hey\r\n\r\nHow r u?\r\n" },
		{ "Hey \t you!", "Hey \t you!\r\n", "Hey you!\r\n" },
		{ "Hey \t \r\nyou!", "Hey \t \r\nyou!\r\n", "Hey\r\nyou!\r\n" },
		{ "Hey\r\n \t you!\r\n", "Hey\r\n \t you!\r\n",
		    "Hey\r\n you!\r\n" },
		{ "Hey\r\n \t \r\n \r\n", "Hey\r\n \t \r\n \r\n", "Hey\r\n" },
		{ "\r\n\r\n", "\r\n", "" },	/* "\r\n", "\r", "\n" */
		{ "\r\n\r", "\r\n\r\r\n", "\r\n\r\r\n" },
		{ "line 1\r\nline 2", "line 1\r\nline 2\r\n",
		    "line 1\r\nline 2\r\n" },
		/*
		 * A bare LF is content here (go-msgauth turns it into CRLF):
		 * Petrel's spool holds the CRLF wire form.
		 */
		{ "a\nb\n\n", "a\nb\n\n\r\n", "a\nb\n\n\r\n" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		check_body(DKIM_CANON_SIMPLE, cases[i].in, strlen(cases[i].in),
		    cases[i].simple, strlen(cases[i].simple));
		check_body(DKIM_CANON_RELAXED, cases[i].in,
		    strlen(cases[i].in), cases[i].relaxed,
		    strlen(cases[i].relaxed));
	}
}

/* Random bodies: every chunking gives the same output; l= is a prefix. */
static void
test_canon_body_chunking(void **state)
{
	static const char alphabet[] = "ab \t\r\n\r\n";
	unsigned int seed = 5;
	char body[600];
	size_t round, len, i, outlen, olen2;
	uint64_t total, total2;
	int c;

	(void)state;
	for (round = 0; round < 3000; round++) {
		len = (size_t)rand_r(&seed) % sizeof(body);
		for (i = 0; i < len; i++)
			body[i] = alphabet[rand_r(&seed) %
			    (sizeof(alphabet) - 1)];
		for (c = 0; c < 2; c++) {
			enum dkim_canon cn = c ? DKIM_CANON_RELAXED :
			    DKIM_CANON_SIMPLE;
			char *whole = canon_body(cn, -1, body, len, 0, &outlen,
			    &total);
			size_t chunk = 1 + (size_t)rand_r(&seed) % 13;
			char *parts = canon_body(cn, -1, body, len, chunk,
			    &olen2, &total2);
			int64_t limit = (int64_t)(rand_r(&seed) %
			    (int)(outlen + 3));
			char *lim;

			assert_int_equal(outlen, olen2);
			assert_int_equal(total, total2);
			assert_memory_equal(whole, parts, outlen);
			/* Invariants of the output. */
			if (outlen > 0) {
				assert_true(outlen >= 2);
				assert_memory_equal(whole + outlen - 2,
				    "\r\n", 2);
			}
			if (outlen >= 4)
				assert_false(memcmp(whole + outlen - 4,
				    "\r\n\r\n", 4) == 0);
			lim = canon_body(cn, limit, body, len, chunk, &olen2,
			    &total2);
			assert_int_equal(total2, total);
			assert_int_equal(olen2, (size_t)limit < outlen ?
			    (size_t)limit : outlen);
			assert_memory_equal(lim, whole, olen2);
			free(lim);
			free(whole);
			free(parts);
		}
	}
}

static void
test_canon_header(void **state)
{
	static const struct {
		const char *in, *simple, *relaxed;
	} cases[] = {
		/* RFC 6376 3.4.6 */
		{ "A: X\r\n", "A: X\r\n", "a:X\r\n" },
		{ "B : Y\t\r\n\tZ  \r\n", "B : Y\t\r\n\tZ  \r\n",
		    "b:Y Z\r\n" },
		{ "SUBJect: AbC\r\n", "SUBJect: AbC\r\n", "subject:AbC\r\n" },
		{ "Subject \t:\t Your Name\t \r\n",
		    "Subject \t:\t Your Name\t \r\n", "subject:Your Name\r\n" },
		{ "Subject \t:\t Kimi \t \r\n No \t\r\n Your Name\t \r\n",
		    "Subject \t:\t Kimi \t \r\n No \t\r\n Your Name\t \r\n",
		    "subject:Kimi No Your Name\r\n" },
		{ "X:\r\n", "X:\r\n", "x:\r\n" },
		{ "X: \r\n \r\n", "X: \r\n \r\n", "x:\r\n" },
		{ "No-CRLF: v", "No-CRLF: v\r\n", "no-crlf:v\r\n" },
		{ "Bare: a\nb\rc\r\n", "Bare: a\nb\rc\r\n",
		    "bare:a\nb\rc\r\n" },
		{ "8: caf\xc3\xa9\r\n", "8: caf\xc3\xa9\r\n",
		    "8:caf\xc3\xa9\r\n" },
		/* go-msgauth's */
		{ "Subject \t:\t Ki \tmi \t \r\n No \t\r\n Na Wa\r\n",
		    "Subject \t:\t Ki \tmi \t \r\n No \t\r\n Na Wa\r\n",
		    "subject:Ki mi No Na Wa\r\n" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		struct buf b;
		size_t n = strlen(cases[i].in);
		char *in = test_dup_exact(cases[i].in, n);

		buf_init(&b, 4096);
		assert_int_equal(dkim_canon_header(DKIM_CANON_SIMPLE, in, n,
		    &b), 0);
		if (strcmp(buf_str(&b), cases[i].simple) != 0)
			fail_msg("simple %s: got %s, want %s", test_esc(in),
			    test_esc(buf_str(&b)), test_esc(cases[i].simple));
		buf_reset(&b);
		assert_int_equal(dkim_canon_header(DKIM_CANON_RELAXED, in, n,
		    &b), 0);
		if (strcmp(buf_str(&b), cases[i].relaxed) != 0)
			fail_msg("relaxed %s: got %s, want %s", test_esc(in),
			    test_esc(buf_str(&b)), test_esc(cases[i].relaxed));
		buf_free(&b);
		free(in);
	}
}

static void
test_msg_parse(void **state)
{
	static const char msg[] =
	    "From: a@example.com\r\n"
	    "Subject: one\r\n two\r\n"
	    "\tthree\r\n"
	    "From nobody Mon Jan 1\r\n"	/* no colon: skipped */
	    " orphan continuation\r\n"
	    "X-Bare: a\nb\r\n"
	    "To : b@example.com\r\n"
	    "\r\n"
	    "body\r\n";
	struct dkim_msg m;
	enum dkim_reason r;
	struct buf b;
	size_t i;
	char *in = test_dup_exact(msg, sizeof(msg) - 1);

	(void)state;
	assert_int_equal(dkim_msg_parse(in, sizeof(msg) - 1, &m, &r), 0);
	assert_int_equal(m.nhdrs, 4);
	assert_true(dkim_hdr_is(&m.hdrs[0], "from"));
	assert_true(dkim_hdr_is(&m.hdrs[1], "SUBJECT"));
	assert_int_equal(m.hdrs[1].rawlen, strlen("Subject: one\r\n two\r\n"
	    "\tthree\r\n"));
	assert_true(dkim_hdr_is(&m.hdrs[2], "X-Bare"));
	assert_int_equal(m.hdrs[2].rawlen, strlen("X-Bare: a\nb\r\n"));
	assert_true(dkim_hdr_is(&m.hdrs[3], "To"));
	assert_int_equal(m.bodylen, 6);
	assert_memory_equal(m.body, "body\r\n", 6);
	dkim_msg_free(&m);

	/* Headers only, no empty line, no final CRLF: an empty body. */
	assert_int_equal(dkim_msg_parse(in, strlen("From: a@example.com\r\n"
	    "Subject: one"), &m, &r), 0);
	assert_int_equal(m.nhdrs, 2);
	assert_int_equal(m.bodylen, 0);
	dkim_msg_free(&m);

	/* An empty message; a message that starts with its body. */
	assert_int_equal(dkim_msg_parse(in, 0, &m, &r), 0);
	assert_int_equal(m.nhdrs, 0);
	assert_int_equal(m.bodylen, 0);
	dkim_msg_free(&m);
	assert_int_equal(dkim_msg_parse("\r\nbody", 6, &m, &r), 0);
	assert_int_equal(m.nhdrs, 0);
	assert_int_equal(m.bodylen, 4);
	dkim_msg_free(&m);
	free(in);

	/* The field cap. */
	buf_init(&b, 1 << 20);
	for (i = 0; i <= DKIM_MSG_FIELDS_MAX; i++)
		assert_int_equal(buf_append_str(&b, "X: y\r\n"), 0);
	assert_int_equal(dkim_msg_parse(b.data, b.len, &m, &r), -1);
	assert_int_equal(r, DKIM_MSG_MALFORMED);
	assert_null(m.hdrs);
	assert_int_equal(dkim_msg_parse(b.data, b.len - 6, &m, &r), 0);
	assert_int_equal(m.nhdrs, DKIM_MSG_FIELDS_MAX);
	dkim_msg_free(&m);
	buf_free(&b);
}

/*
 * Signing and verification
 */

static const char base_msg[] =
    "Received: from a by b; Sun, 29 Nov 2026 08:00:00 +0000\r\n"
    "From: Joe <joe@example.com>\r\n"
    "To: Suzie <suzie@example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Sun, 29 Nov 2026 08:00:00 +0000\r\n"
    "Message-ID: <1@example.com>\r\n"
    "\r\n"
    "Hi.\r\n"
    "\r\n"
    "We lost the game.  Are you hungry yet?\r\n";

struct fixture {
	struct dkim_privkey *rsa, *ed;
	char *rsa_rec, *ed_rec;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *err;
	size_t len;
	char *t;

	assert_non_null(f);
	t = dt_read("dkimpy-data/test.private", &len);
	f->rsa = dkim_privkey_load(t, len, &err);
	assert_non_null(f->rsa);
	free(t);
	t = dt_read("rfc8463/ed25519-brisbane.private.pem", &len);
	f->ed = dkim_privkey_load(t, len, &err);
	assert_non_null(f->ed);
	free(t);
	f->rsa_rec = strdup("v=DKIM1; k=rsa; p=" P1024);
	f->ed_rec = strdup("v=DKIM1; k=ed25519; p=" PED);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	dkim_privkey_free(f->rsa);
	dkim_privkey_free(f->ed);
	free(f->rsa_rec);
	free(f->ed_rec);
	free(f);
	return 0;
}

/* field + msg, as one heap string. */
static char *
prepend(const char *field, const char *msg, size_t *len_r)
{
	size_t a = strlen(field), b = strlen(msg);
	char *p = malloc(a + b + 1);

	assert_non_null(p);
	memcpy(p, field, a);
	memcpy(p + a, msg, b + 1);
	*len_r = a + b;
	return p;
}

/*
 * Verify the first DKIM-Signature of msg with the key record rec.
 * Returns the verdict's reason (or the parse reason).
 */
static enum dkim_reason
verify_with(const char *msg, size_t len, const char *rec,
    const struct dkim_verify_opts *opts, struct dkim_verdict *v_r)
{
	struct dkim_verdict v;
	struct dkim_msg m;
	struct dkim_sig *sig;
	struct dkim_key *key;
	enum dkim_reason r;
	size_t i;
	int rc;

	memset(&v, 0, sizeof(v));
	assert_int_equal(dkim_msg_parse(msg, len, &m, &r), 0);
	for (i = 0; i < m.nhdrs; i++)
		if (dkim_hdr_is(&m.hdrs[i], "DKIM-Signature"))
			break;
	assert_true(i < m.nhdrs);
	if (dkim_sig_parse(m.hdrs[i].raw, m.hdrs[i].rawlen, &sig, &r) == -1)
		goto out;
	if (dkim_key_parse(rec, strlen(rec), &key, &r) == -1) {
		dkim_sig_free(sig);
		goto out;
	}
	rc = dkim_verify(&m, sig, key, opts, &v);
	assert_int_equal(rc, v.reason == DKIM_OK ? 0 : -1);
	r = v.reason;
	assert_int_equal(v.result, dkim_reason_result(r));
	dkim_key_free(key);
	dkim_sig_free(sig);
out:
	dkim_msg_free(&m);
	if (v_r != NULL)
		*v_r = v;
	return r;
}

static char *
sign_with(const struct dkim_privkey *k, const struct dkim_sign_opts *o,
    const char *msg)
{
	const char *err = NULL;
	char *field = dkim_sign(msg, strlen(msg), k, o, &err);

	if (field == NULL)
		fail_msg("dkim_sign: %s", err);
	return field;
}

static void
expect_reason(const char *what, enum dkim_reason got, enum dkim_reason want)
{
	if (got != want)
		fail_msg("%s: got \"%s\", want \"%s\"", what,
		    dkim_reason_str(got), dkim_reason_str(want));
}

static void
test_sign_verify_basic(void **state)
{
	struct fixture *f = *state;
	struct dkim_sign_opts o;
	struct dkim_verdict v;
	size_t len;
	char *field, *msg;
	int c, k;

	for (k = 0; k < 2; k++) {
		for (c = 0; c < 4; c++) {
			dkim_sign_opts_init(&o, "example.com", "sel");
			o.hcanon = c & 1 ? DKIM_CANON_SIMPLE :
			    DKIM_CANON_RELAXED;
			o.bcanon = c & 2 ? DKIM_CANON_SIMPLE :
			    DKIM_CANON_RELAXED;
			field = sign_with(k ? f->ed : f->rsa, &o, base_msg);
			msg = prepend(field, base_msg, &len);
			expect_reason("basic", verify_with(msg, len,
			    k ? f->ed_rec : f->rsa_rec, NULL, &v), DKIM_OK);
			assert_int_equal(v.result, DKIM_RESULT_PASS);
			assert_int_equal(v.alg, k ? DKIM_ALG_ED25519_SHA256 :
			    DKIM_ALG_RSA_SHA256);
			assert_false(v.testing);
			assert_false(v.partial_body);
			/* The wrong key type for a=. */
			expect_reason("mismatch", verify_with(msg, len,
			    k ? f->rsa_rec : f->ed_rec, NULL, NULL),
			    DKIM_FAIL_KEY_MISMATCH);
			free(msg);
			free(field);
		}
	}
}

/* Header selection: oversigning, added fields, unsigned fields. */
static void
test_header_selection(void **state)
{
	struct fixture *f = *state;
	struct dkim_sign_opts o;
	size_t len;
	char *field, *msg, *t;
	const char *p;

	dkim_sign_opts_init(&o, "example.com", "sel");
	field = sign_with(f->rsa, &o, base_msg);
	/* From is oversigned, Received is not signed. */
	assert_non_null(strstr(field, "From:From"));
	assert_null(strstr(field, "Received"));

	/* An unsigned field added anywhere: still passes. */
	t = malloc(strlen(base_msg) + 64);
	assert_non_null(t);
	snprintf(t, strlen(base_msg) + 64, "X-Added: yes\r\n%s", base_msg);
	msg = prepend(field, t, &len);
	expect_reason("x-added", verify_with(msg, len, f->rsa_rec, NULL,
	    NULL), DKIM_OK);
	free(msg);

	/* A second From above or below the signed one: fails. */
	snprintf(t, strlen(base_msg) + 64, "From: Evil <e@evil.example>\r\n%s",
	    base_msg);
	msg = prepend(field, t, &len);
	expect_reason("from above", verify_with(msg, len, f->rsa_rec, NULL,
	    NULL), DKIM_FAIL_SIGNATURE);
	free(msg);
	p = strstr(base_msg, "\r\n\r\n");
	snprintf(t, strlen(base_msg) + 64, "%.*s\r\nFrom: Evil "
	    "<e@evil.example>%s", (int)(p - base_msg), base_msg, p);
	msg = prepend(field, t, &len);
	expect_reason("from below", verify_with(msg, len, f->rsa_rec, NULL,
	    NULL), DKIM_FAIL_SIGNATURE);
	free(msg);
	/* Cc was absent and is oversigned: adding one fails. */
	snprintf(t, strlen(base_msg) + 64, "Cc: x@example.org\r\n%s",
	    base_msg);
	msg = prepend(field, t, &len);
	expect_reason("cc added", verify_with(msg, len, f->rsa_rec, NULL,
	    NULL), DKIM_FAIL_SIGNATURE);
	free(msg);
	free(t);
	free(field);
}

/* Repeated fields signed from the bottom up. */
static void
test_header_bottom_up(void **state)
{
	static const char *const h2[] = { "From", "X-Seq", "X-Seq" };
	static const char m2[] =
	    "X-Seq: 1\r\nFrom: a@example.com\r\nX-Seq: 2\r\nX-Seq: 3\r\n"
	    "\r\nbody\r\n";
	static const char m2_swapped[] =
	    "X-Seq: 1\r\nFrom: a@example.com\r\nX-Seq: 3\r\nX-Seq: 2\r\n"
	    "\r\nbody\r\n";
	static const char m2_first_changed[] =
	    "X-Seq: 9\r\nFrom: a@example.com\r\nX-Seq: 2\r\nX-Seq: 3\r\n"
	    "\r\nbody\r\n";
	struct fixture *f = *state;
	struct dkim_sign_opts o;
	size_t len;
	char *field, *msg;

	dkim_sign_opts_init(&o, "example.com", "sel");
	o.headers = h2;
	o.nheaders = nitems(h2);
	field = sign_with(f->ed, &o, m2);
	assert_non_null(strstr(field, "h=From:X-Seq:X-Seq;"));
	msg = prepend(field, m2, &len);
	expect_reason("bottom-up", verify_with(msg, len, f->ed_rec, NULL,
	    NULL), DKIM_OK);
	free(msg);
	/* The top X-Seq is not signed (only the last two are). */
	msg = prepend(field, m2_first_changed, &len);
	expect_reason("unsigned top", verify_with(msg, len, f->ed_rec, NULL,
	    NULL), DKIM_OK);
	free(msg);
	/* Order of the signed instances matters. */
	msg = prepend(field, m2_swapped, &len);
	expect_reason("swapped", verify_with(msg, len, f->ed_rec, NULL,
	    NULL), DKIM_FAIL_SIGNATURE);
	free(msg);
	free(field);
}

static void
test_verify_key_policy(void **state)
{
	struct fixture *f = *state;
	struct dkim_sign_opts o;
	struct dkim_verdict v;
	size_t len;
	char *field, *msg, rec[600];

	dkim_sign_opts_init(&o, "example.com", "sel");
	o.identity = "joe@mail.example.com";
	field = sign_with(f->rsa, &o, base_msg);
	msg = prepend(field, base_msg, &len);
	expect_reason("i=sub", verify_with(msg, len, f->rsa_rec, NULL, NULL),
	    DKIM_OK);
	snprintf(rec, sizeof(rec), "v=DKIM1; t=s; p=%s", P1024);
	expect_reason("t=s", verify_with(msg, len, rec, NULL, NULL),
	    DKIM_FAIL_STRICT_IDENTITY);
	snprintf(rec, sizeof(rec), "v=DKIM1; h=sha1; p=%s", P1024);
	expect_reason("h=sha1", verify_with(msg, len, rec, NULL, NULL),
	    DKIM_FAIL_HASH_NOT_ALLOWED);
	snprintf(rec, sizeof(rec), "v=DKIM1; h=sha1:sha256; t=y; p=%s", P1024);
	expect_reason("t=y", verify_with(msg, len, rec, NULL, &v), DKIM_OK);
	assert_true(v.testing);
	expect_reason("revoked", verify_with(msg, len, "v=DKIM1; p=", NULL,
	    NULL), DKIM_FAIL_KEY_REVOKED);
	expect_reason("512", verify_with(msg, len, "p=" P512, NULL, NULL),
	    DKIM_FAIL_KEY_TOO_SMALL);
	/* Another 1024-bit key: the signature does not verify. */
	{
		size_t kl;
		char *k2 = dt_read(
		    "dkimpy-data/1024_testkey_wo_markers.pub.txt", &kl);

		while (kl > 0 && (k2[kl - 1] == '\n' || k2[kl - 1] == '\r'))
			k2[--kl] = '\0';
		ERR_clear_error();
		expect_reason("other key", verify_with(msg, len, k2, NULL,
		    NULL), DKIM_FAIL_SIGNATURE);
		/* Nothing left in OpenSSL's error queue of this thread. */
		assert_int_equal(ERR_peek_error(), 0);
		expect_reason("raw rsa", verify_with(msg, len,
		    RAW1024, NULL, NULL), DKIM_OK);
		assert_int_equal(ERR_peek_error(), 0);
		free(k2);
	}

	/* A bh= of 20 octets under rsa-sha256: the body hash fails. */
	{
		char *t = strdup(msg), *bh = strstr(t, " bh=");

		assert_non_null(bh);
		/* 44 characters become 28 (20 octets) and 16 spaces of FWS. */
		memcpy(bh + 4, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
		    "                ", 44);
		expect_reason("short bh", verify_with(t, len, f->rsa_rec, NULL,
		    NULL), DKIM_FAIL_BODY_HASH);
		free(t);
	}
	free(msg);
	free(field);

	/* t=s with i= exactly d=: passes. */
	o.identity = "joe@example.com";
	field = sign_with(f->rsa, &o, base_msg);
	msg = prepend(field, base_msg, &len);
	snprintf(rec, sizeof(rec), "v=DKIM1; t=s; p=%s", P1024);
	expect_reason("t=s ok", verify_with(msg, len, rec, NULL, NULL),
	    DKIM_OK);
	free(msg);
	free(field);
}

static void
test_verify_expiry(void **state)
{
	struct fixture *f = *state;
	struct dkim_sign_opts o;
	struct dkim_verify_opts vo = { .now = 1000 };
	size_t len;
	char *field, *msg;

	dkim_sign_opts_init(&o, "example.com", "sel");
	o.timestamp = 1000;
	o.expire_after = 3600;
	field = sign_with(f->ed, &o, base_msg);
	assert_non_null(strstr(field, " t=1000;"));
	assert_non_null(strstr(field, " x=4600;"));
	msg = prepend(field, base_msg, &len);
	expect_reason("before x", verify_with(msg, len, f->ed_rec, &vo, NULL),
	    DKIM_OK);
	vo.now = 4600;
	expect_reason("at x", verify_with(msg, len, f->ed_rec, &vo, NULL),
	    DKIM_OK);
	vo.now = 4601;
	expect_reason("after x", verify_with(msg, len, f->ed_rec, &vo, NULL),
	    DKIM_FAIL_EXPIRED);
	assert_int_equal(dkim_reason_result(DKIM_FAIL_EXPIRED),
	    DKIM_RESULT_FAIL);
	vo.now = -1;
	expect_reason("no clock", verify_with(msg, len, f->ed_rec, &vo, NULL),
	    DKIM_OK);
	free(msg);
	free(field);

	/* No t=: none written; "now" is the clock. */
	o.timestamp = DKIM_SIGN_TIME_NONE;
	o.expire_after = 0;
	field = sign_with(f->ed, &o, base_msg);
	assert_null(strstr(field, " t="));
	assert_null(strstr(field, " x="));
	free(field);
	o.timestamp = DKIM_SIGN_TIME_NOW;
	field = sign_with(f->ed, &o, base_msg);
	assert_non_null(strstr(field, " t=1"));
	free(field);
}

static void
test_verify_length(void **state)
{
	struct fixture *f = *state;
	struct dkim_sign_opts o;
	struct dkim_verdict v;
	size_t len;
	char *field, *msg, *longer;

	dkim_sign_opts_init(&o, "example.com", "sel");
	o.body_length = true;
	o.bcanon = DKIM_CANON_SIMPLE;
	field = sign_with(f->rsa, &o, base_msg);
	assert_non_null(strstr(field, " l=47;"));
	msg = prepend(field, base_msg, &len);
	expect_reason("l=", verify_with(msg, len, f->rsa_rec, NULL, &v),
	    DKIM_OK);
	assert_false(v.partial_body);
	free(msg);

	/* Text appended after l=: passes, noted as partial. */
	longer = malloc(strlen(base_msg) + 32);
	assert_non_null(longer);
	snprintf(longer, strlen(base_msg) + 32, "%sAppended.\r\n", base_msg);
	msg = prepend(field, longer, &len);
	expect_reason("appended", verify_with(msg, len, f->rsa_rec, NULL,
	    &v), DKIM_OK);
	assert_true(v.partial_body);
	free(msg);
	free(longer);

	/* A body shorter than l=. */
	msg = prepend(field, base_msg, &len);
	len -= strlen("hungry yet?\r\n");
	expect_reason("shorter", verify_with(msg, len, f->rsa_rec, NULL,
	    NULL), DKIM_FAIL_BODY_TOO_SHORT);
	free(msg);
	free(field);
}

/* rsa-sha1: verified, refused unless allowed (RFC 8301). */
static void
test_verify_rsa_sha1(void **state)
{
	struct fixture *f = *state;
	struct dkim_verify_opts vo = { .now = -1, .allow_rsa_sha1 = false };
	struct dkim_verdict v;
	struct dkim_msg m;
	enum dkim_reason r;
	unsigned char md[64];
	const char *err = NULL;
	char tmpl[600], *bh, *b, *field, *msg;
	size_t mdlen, len;

	assert_int_equal(dkim_msg_parse(base_msg, strlen(base_msg), &m, &r), 0);
	mdlen = dkim_body_hash(DKIM_CANON_RELAXED, DKIM_HASH_SHA1, -1, m.body,
	    m.bodylen, md, NULL);
	assert_int_equal(mdlen, 20);
	dkim_msg_free(&m);
	bh = b64_encode(md, mdlen);
	snprintf(tmpl, sizeof(tmpl), "DKIM-Signature: v=1; a=rsa-sha1; "
	    "c=relaxed/relaxed; d=example.com; s=sel; h=from:to:subject;\r\n"
	    "\tbh=%s; b=\r\n", bh);
	b = dkim_sign_field(base_msg, strlen(base_msg), f->rsa, tmpl,
	    strlen(tmpl), &err);
	if (b == NULL)
		fail_msg("sign_field: %s", err);
	field = xasprintf("DKIM-Signature: v=1; a=rsa-sha1; "
	    "c=relaxed/relaxed; d=example.com; s=sel; h=from:to:subject;\r\n"
	    "\tbh=%s; b=%s\r\n", bh, b);
	msg = prepend(field, base_msg, &len);
	expect_reason("sha1", verify_with(msg, len, f->rsa_rec, &vo, &v),
	    DKIM_FAIL_RSA_SHA1);
	assert_int_equal(v.alg, DKIM_ALG_RSA_SHA1);
	assert_int_equal(v.result, DKIM_RESULT_FAIL);
	vo.allow_rsa_sha1 = true;
	expect_reason("sha1 allowed", verify_with(msg, len, f->rsa_rec, &vo,
	    &v), DKIM_OK);
	/* Allowed, but the key says sha256 only. */
	expect_reason("sha1 vs h=sha256", verify_with(msg, len,
	    "h=sha256; p=" P1024, &vo, NULL), DKIM_FAIL_HASH_NOT_ALLOWED);
	/* A tampered sha1 signature is a plain signature failure. */
	msg[len - 3] ^= 1;
	expect_reason("sha1 body", verify_with(msg, len, f->rsa_rec, &vo,
	    NULL), DKIM_FAIL_BODY_HASH);
	free(msg);
	free(field);
	free(b);
	free(bh);

	/* The template's bh= must be the body hash. */
	snprintf(tmpl, sizeof(tmpl), "DKIM-Signature: v=1; a=rsa-sha256; "
	    "d=example.com; s=sel; h=from; bh=%s; b=\r\n", SIG_BH);
	assert_null(dkim_sign_field(base_msg, strlen(base_msg), f->rsa, tmpl,
	    strlen(tmpl), &err));
	assert_string_equal(err, "bh= is not the body hash");
}

/* The signer's layout: lines under 76 columns but the first, b= last. */
static void
test_sign_layout(void **state)
{
	static const char many[] =
	    "From: a@example.com\r\nTo: b@example.com\r\nCc: c@example.com\r\n"
	    "Subject: s\r\nDate: d\r\nReply-To: r@example.com\r\n"
	    "References: <x@y>\r\nIn-Reply-To: <x@y>\r\n"
	    "List-Id: <l.example>\r\n"
	    "List-Unsubscribe: <mailto:u@example.com>\r\nMessage-ID: <m@x>\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
	    "Content-Transfer-Encoding: 7bit\r\nX-Other: no\r\n\r\nbody\r\n";
	struct fixture *f = *state;
	struct dkim_sign_opts o;
	struct dkim_msg m;
	enum dkim_reason r;
	struct buf names;
	const char *line, *eol;
	size_t len, n;
	char *field, *msg;

	assert_int_equal(dkim_msg_parse(many, strlen(many), &m, &r), 0);
	buf_init(&names, 4096);
	assert_int_equal(dkim_sign_default_headers(&m, &names), 0);
	assert_string_equal(buf_str(&names), "From:From:Reply-To:Subject:"
	    "Subject:Date:Date:To:To:Cc:Cc:In-Reply-To:References:List-Id:"
	    "List-Unsubscribe:Message-ID:MIME-Version:Content-Type:"
	    "Content-Transfer-Encoding");
	buf_free(&names);
	dkim_msg_free(&m);

	dkim_sign_opts_init(&o, "example.com", "sel");
	o.timestamp = 1;
	field = sign_with(f->rsa, &o, many);
	assert_true(strncmp(field, "DKIM-Signature: a=rsa-sha256; bh=",
	    strlen("DKIM-Signature: a=rsa-sha256; bh=")) == 0);
	for (line = field, n = 0; *line != '\0'; line = eol + 2, n++) {
		eol = strstr(line, "\r\n");
		assert_non_null(eol);
		if (n > 0) {
			assert_true(line[0] == ' ');
			if ((size_t)(eol - line) > 76)
				fail_msg("line %zu is %zu long: %s", n,
				    (size_t)(eol - line), field);
		}
	}
	assert_non_null(strstr(field, "\r\n b="));
	assert_non_null(strstr(field, " c=relaxed/relaxed;"));
	msg = prepend(field, many, &len);
	expect_reason("many", verify_with(msg, len, f->rsa_rec, NULL, NULL),
	    DKIM_OK);
	free(msg);
	free(field);
}

static void
test_sign_refusals(void **state)
{
	struct fixture *f = *state;
	struct dkim_sign_opts o;
	const char *err = NULL;
	const char *pem = "-----BEGIN PRIVATE KEY-----\nnope\n"
	    "-----END PRIVATE KEY-----\n";

	dkim_sign_opts_init(&o, "example", "sel");
	assert_null(dkim_sign(base_msg, strlen(base_msg), f->rsa, &o, &err));
	assert_string_equal(err, "invalid signing domain");
	dkim_sign_opts_init(&o, "example.com", "s/1");
	assert_null(dkim_sign(base_msg, strlen(base_msg), f->rsa, &o, &err));
	assert_string_equal(err, "invalid selector");
	dkim_sign_opts_init(&o, "example.com", "sel");
	assert_null(dkim_sign("To: x\r\n\r\nbody\r\n", 15, f->rsa, &o, &err));
	assert_string_equal(err, "message has no From field");

	assert_null(dkim_privkey_load(pem, strlen(pem), &err));
	assert_null(dkim_privkey_load("AAAA", 4, &err));
	assert_null(dkim_privkey_load("not base64!", 11, &err));
	/* A 512-bit RSA key is refused for signing (RFC 8301). */
	{
		EVP_PKEY *k = EVP_RSA_gen(512);
		BIO *bio = BIO_new(BIO_s_mem());
		char *data;
		long n;

		assert_non_null(k);
		assert_non_null(bio);
		assert_int_equal(PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0,
		    NULL, NULL), 1);
		n = BIO_get_mem_data(bio, &data);
		assert_null(dkim_privkey_load(data, (size_t)n, &err));
		assert_string_equal(err, "RSA key under 1024 bits");
		BIO_free(bio);
		EVP_PKEY_free(k);
	}
	/* An encrypted key is refused, never a pass phrase prompt. */
	{
		EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		BIO *bio = BIO_new(BIO_s_mem());
		char *data;
		long n;

		assert_non_null(k);
		assert_non_null(bio);
		assert_int_equal(PEM_write_bio_PrivateKey(bio, k,
		    EVP_aes_128_cbc(), (unsigned char *)"secret", 6, NULL,
		    NULL), 1);
		n = BIO_get_mem_data(bio, &data);
		assert_null(dkim_privkey_load(data, (size_t)n, &err));
		assert_string_equal(err,
		    "not a PEM private key (or encrypted)");
		assert_int_equal(ERR_peek_error(), 0);
		BIO_free(bio);
		EVP_PKEY_free(k);
	}
}

static void
test_reason_table(void **state)
{
	int r;

	(void)state;
	for (r = 0; r < DKIM_REASON_COUNT; r++) {
		const char *s = dkim_reason_str((enum dkim_reason)r);
		int k;

		assert_non_null(s);
		assert_true(strlen(s) > 1);
		for (k = 0; k < r; k++)
			if (strcmp(s,
			    dkim_reason_str((enum dkim_reason)k)) == 0)
				fail_msg("reasons %d and %d share \"%s\"", k, r,
				    s);
	}
	assert_int_equal(dkim_reason_result(DKIM_OK), DKIM_RESULT_PASS);
	assert_int_equal(dkim_reason_result(DKIM_FAIL_SIGNATURE),
	    DKIM_RESULT_FAIL);
	assert_int_equal(dkim_reason_result(DKIM_KEY_SYNTAX),
	    DKIM_RESULT_PERMERROR);
	assert_int_equal(dkim_reason_result(DKIM_KEY_NOT_FOUND),
	    DKIM_RESULT_PERMERROR);
	assert_int_equal(dkim_reason_result(DKIM_KEY_TEMPFAIL),
	    DKIM_RESULT_TEMPERROR);
	assert_string_equal(dkim_result_str(DKIM_RESULT_PERMERROR),
	    "permerror");
	assert_string_equal(dkim_reason_str(DKIM_FAIL_BODY_HASH),
	    "body hash did not verify");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_taglist_ok),
		cmocka_unit_test(test_taglist_bad),
		cmocka_unit_test(test_taglist_limits_and_spans),
		cmocka_unit_test(test_sig_errors),
		cmocka_unit_test(test_sig_values),
		cmocka_unit_test(test_key_records),
		cmocka_unit_test(test_key_flags),
		cmocka_unit_test(test_key_sizes_and_limits),
		cmocka_unit_test(test_canon_body),
		cmocka_unit_test(test_canon_body_chunking),
		cmocka_unit_test(test_canon_header),
		cmocka_unit_test(test_msg_parse),
		cmocka_unit_test_setup_teardown(test_sign_verify_basic, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_header_selection, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_header_bottom_up, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_verify_key_policy, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_verify_expiry, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_verify_length, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_verify_rsa_sha1, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sign_layout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sign_refusals, setup,
		    teardown),
		cmocka_unit_test(test_reason_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
