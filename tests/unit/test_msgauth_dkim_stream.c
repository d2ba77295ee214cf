/*
 * test_msgauth_dkim_stream.c: the streaming DKIM verifier and signer
 * (dkim_stream_*) against the whole-message core (dkim_msg_parse() +
 * dkim_verify(), dkim_sign()):
 *   - every signed message of the shared conformance set (RFC 8463,
 *     go-msgauth, dkimpy, mail-auth) and messages signed here (RSA and
 *     Ed25519, four canonicalizations, with and without l=), as they are,
 *     with the body tampered with and with From: tampered with, fed whole,
 *     one octet at a time and in random chunks (fixed seed): the same
 *     verdicts (result, reason, d=, s=, a=, partial body) as dkim_verify()
 *     on the whole message, and the expected number of passes;
 *   - l= variants (body extended: pass with partial body; body cut: body
 *     shorter than l=), a wrong key, a key of the other type;
 *   - one message split in two at every position;
 *   - more DKIM-Signature fields than max_sigs; a header section over
 *     header_max (and exactly at it); more than DKIM_MSG_FIELDS_MAX
 *     fields; a message without body, without the empty line, ending
 *     within a line;
 *   - the From: values;
 *   - dkim_stream_sign() equal byte for byte to dkim_sign() (t= fixed),
 *     and its errors;
 *   - a 4 MiB body in 64 KiB chunks; verifications of one finished stream
 *     on several threads at once (run under TSan too).
 */
#include <pthread.h>
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
#define HEADER_MAX	(1024 * 1024)
#define NOFROM_SIG	"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; " \
	"s=sel; h=from; bh=; b=\r\n"

enum feed_mode {
	FEED_WHOLE,
	FEED_BYTES,
	FEED_RANDOM,
	FEED_MODES
};

static const char *const feed_names[] = { "whole", "bytes", "random" };

/* A fixed-seed generator, so that failures reproduce. */
static uint64_t rng_state = 0x5eed5eed12345678ULL;

static uint32_t
rng_next(void)
{
	rng_state = rng_state * 6364136223846793005ULL +
	    1442695040888963407ULL;
	return (uint32_t)(rng_state >> 33);
}

static void
feed(struct dkim_stream *s, const char *msg, size_t len, enum feed_mode mode)
{
	size_t pos = 0, n;

	switch (mode) {
	case FEED_WHOLE:
		dkim_stream_feed(s, msg, len);
		break;
	case FEED_BYTES:
		for (pos = 0; pos < len; pos++)
			dkim_stream_feed(s, msg + pos, 1);
		break;
	default:
		while (pos < len) {
			/* Mostly small chunks, sometimes empty or large. */
			switch (rng_next() % 4) {
			case 0:
				n = rng_next() % 3;
				break;
			case 1:
				n = 1 + rng_next() % 16;
				break;
			case 2:
				n = 1 + rng_next() % 200;
				break;
			default:
				n = 1 + rng_next() % 5000;
				break;
			}
			if (n > len - pos)
				n = len - pos;
			dkim_stream_feed(s, msg + pos, n);
			pos += n;
		}
		break;
	}
	dkim_stream_finish(s);
}

/* dt_verify_all() over a stream, with the same key look-ups. */
static size_t
stream_verify_all(struct dkim_stream *s, const char *dns,
    const struct dkim_verify_opts *opts, struct dt_sigresult *res)
{
	size_t i, n = dkim_stream_nsigs(s);

	assert_true(n <= DT_MAX_SIGS);
	for (i = 0; i < n; i++) {
		struct dt_sigresult *sr = &res[i];
		const struct dkim_sig *sig;
		struct dkim_key *key;
		struct dkim_verdict v;
		enum dkim_reason r;
		const char *qname;
		char want[512], *txt;

		memset(sr, 0, sizeof(*sr));
		sig = dkim_stream_sig(s, i, &r);
		if (r != DKIM_OK) {
			/* Not verifiable: dkim_stream_verify() says so too. */
			assert_int_equal(dkim_stream_verify(s, i, NULL, opts,
			    &v), -1);
			assert_int_equal(v.reason, r);
			assert_int_equal(v.result, dkim_reason_result(r));
			assert_null(dkim_stream_key_name(s, i));
			sr->result = dkim_reason_result(r);
			sr->reason = r;
			continue;
		}
		assert_non_null(sig);
		snprintf(sr->domain, sizeof(sr->domain), "%s", sig->domain);
		snprintf(sr->selector, sizeof(sr->selector), "%s",
		    sig->selector);
		sr->alg = sig->alg;
		qname = dkim_stream_key_name(s, i);
		assert_non_null(qname);
		assert_int_equal(dkim_key_query_name(sig, want, sizeof(want)),
		    0);
		assert_string_equal(qname, want);
		if ((txt = dt_dns_lookup(dns, qname)) == NULL) {
			sr->reason = DKIM_KEY_NOT_FOUND;
			sr->result = dkim_reason_result(sr->reason);
			continue;
		}
		if (dkim_key_parse(txt, strlen(txt), &key, &r) == -1) {
			sr->result = dkim_reason_result(r);
			sr->reason = r;
		} else {
			int rc = dkim_stream_verify(s, i, key, opts, &v);

			assert_int_equal(rc, v.reason == DKIM_OK ? 0 : -1);
			assert_int_equal(v.alg, sig->alg);
			sr->result = v.result;
			sr->reason = v.reason;
			sr->partial_body = v.partial_body;
			dkim_key_free(key);
		}
		free(txt);
	}
	return n;
}

static void
same_results(const char *what, const char *how, size_t n,
    const struct dt_sigresult *want, size_t got_n,
    const struct dt_sigresult *got)
{
	size_t i;

	if (got_n != n)
		fail_msg("%s (%s): %zu signatures, whole message %zu", what,
		    how, got_n, n);
	for (i = 0; i < n; i++) {
		const struct dt_sigresult *a = &want[i], *b = &got[i];

		if (a->result != b->result || a->reason != b->reason ||
		    strcmp(a->domain, b->domain) != 0 ||
		    strcmp(a->selector, b->selector) != 0 ||
		    a->alg != b->alg || a->partial_body != b->partial_body)
			fail_msg("%s (%s): signature %zu: stream %s (%s) "
			    "d=%s s=%s partial=%d, whole message %s (%s) "
			    "d=%s s=%s partial=%d", what, how, i,
			    dkim_result_str(b->result),
			    dkim_reason_str(b->reason), b->domain,
			    b->selector, b->partial_body,
			    dkim_result_str(a->result),
			    dkim_reason_str(a->reason), a->domain,
			    a->selector, a->partial_body);
	}
}

/*
 * msg gives the same verdicts streamed in every mode as whole; returns how
 * many of them pass, *n_r the number of signatures.
 */
static size_t
check_same(const char *what, const char *msg, size_t len, const char *dns,
    int64_t now, size_t *n_r, struct dt_sigresult *res)
{
	struct dt_sigresult got[DT_MAX_SIGS];
	struct dkim_verify_opts opts = { .now = now };
	size_t n, i, npass = 0;
	int mode;

	n = dt_verify_all(msg, len, dns, &opts, res);
	for (mode = 0; mode < FEED_MODES; mode++) {
		struct dkim_stream *s = dkim_stream_new(DT_MAX_SIGS,
		    HEADER_MAX);
		size_t gn;

		feed(s, msg, len, (enum feed_mode)mode);
		assert_false(dkim_stream_header_overflow(s));
		assert_int_equal(dkim_stream_header_error(s), DKIM_OK);
		gn = stream_verify_all(s, dns, &opts, got);
		same_results(what, feed_names[mode], n, res, gn, got);
		dkim_stream_free(s);
	}
	for (i = 0; i < n; i++)
		if (res[i].result == DKIM_RESULT_PASS)
			npass++;
	if (n_r != NULL)
		*n_r = n;
	return npass;
}

/*
 * msg: npass of its signatures pass, and the stream agrees; tampered with
 * in the body or in From:, none passes, each with the same reasons
 * streamed as whole (body hash / signature for the ones that passed).
 */
static void
check_vector(const char *what, const char *msg, size_t len, const char *dns,
    int64_t now, size_t npass)
{
	struct dt_sigresult orig[DT_MAX_SIGS], res[DT_MAX_SIGS];
	char *t, *p, how[256];
	size_t got, n, tn, i;

	got = check_same(what, msg, len, dns, now, &n, orig);
	if (got != npass)
		fail_msg("%s: %zu signatures pass, want %zu", what, got, npass);

	/* Body: the last letter or digit of the message. */
	t = test_dup_exact(msg, len);
	for (p = t + len; p-- > t;)
		if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))
			break;
	assert_true(p > t);
	*p = *p == 'x' ? 'y' : 'x';
	snprintf(how, sizeof(how), "%s, body tampered", what);
	assert_int_equal(check_same(how, t, len, dns, now, &tn, res), 0);
	assert_int_equal(tn, n);
	for (i = 0; i < n; i++)
		if (orig[i].result == DKIM_RESULT_PASS)
			assert_int_equal(res[i].reason, DKIM_FAIL_BODY_HASH);
	free(t);

	/* Header: one letter of the From: value. */
	t = test_dup_exact(msg, len);
	p = strstr(t, "\nFrom:");
	if (p == NULL)
		p = strstr(t, "\nfrom:");
	if (p == NULL)
		p = strncmp(t, "From:", 5) == 0 ? t - 1 : NULL;
	assert_non_null(p);
	p += 6;
	while (*p == ' ')
		p++;
	*p = *p == 'Q' ? 'R' : 'Q';
	snprintf(how, sizeof(how), "%s, From tampered", what);
	assert_int_equal(check_same(how, t, len, dns, now, &tn, res), 0);
	assert_int_equal(tn, n);
	for (i = 0; i < n; i++)
		if (orig[i].result == DKIM_RESULT_PASS)
			assert_int_equal(res[i].reason, DKIM_FAIL_SIGNATURE);
	free(t);
}

/* field + msg, a malloc'd message. */
static char *
prepend(const char *field, const char *msg, size_t len, size_t *len_r)
{
	size_t flen = strlen(field);
	char *p = malloc(flen + len + 1);

	assert_non_null(p);
	memcpy(p, field, flen);
	memcpy(p + flen, msg, len);
	p[flen + len] = '\0';
	*len_r = flen + len;
	return p;
}

static char *
sign_whole(const char *msg, size_t len, const struct dkim_privkey *k,
    const struct dkim_sign_opts *o)
{
	const char *err = NULL;
	char *field = dkim_sign(msg, len, k, o, &err);

	if (field == NULL)
		fail_msg("dkim_sign: %s", err);
	return field;
}

/*
 * The shared conformance set
 */

static void
test_rfc8463(void **state)
{
	size_t len, dlen;
	char *dns = dt_read("rfc8463/dns.txt", &dlen);
	char *msg;

	(void)state;
	msg = dt_read("rfc8463/signed-A3.eml", &len);
	check_vector("rfc8463 A.3", msg, len, dns, -1, 2);
	free(msg);
	msg = dt_read_crlf("dkimpy-data/rfc6376.signed.msg", &len);
	check_vector("dkimpy rfc6376.signed.msg", msg, len, dns, -1, 2);
	free(msg);
	msg = dt_read_crlf("dkimpy-data/rfc6376.signed.rsa.msg", &len);
	check_vector("dkimpy rfc6376.signed.rsa.msg", msg, len, dns, -1, 1);
	free(msg);
	free(dns);
}

static void
test_gomsgauth(void **state)
{
	static const char *const files[] = {
		"go-msgauth/verified-rfc6376-A2-resigned.eml",
		"go-msgauth/verified-rawrsa-newengland.eml",
		"go-msgauth/sign-expected-rsa-example.org-brisbane.eml",
		("go-msgauth/sign-expected-ed25519-football.example.com-"
		    "brisbane.eml"),
	};
	struct dt_sigresult res[DT_MAX_SIGS];
	size_t len, dlen, i, n;
	char *dns = dt_read("go-msgauth/dns.txt", &dlen);
	char *msg;

	(void)state;
	for (i = 0; i < nitems(files); i++) {
		msg = dt_read(files[i], &len);
		check_vector(files[i], msg, len, dns, -1, 1);
		free(msg);
	}
	msg = dt_read("go-msgauth/unsigned.eml", &len);
	assert_int_equal(check_same("unsigned", msg, len, dns, -1, &n, res),
	    0);
	assert_int_equal(n, 0);
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
	size_t len, n;
	char *msg, *dns;

	(void)state;
	msg = dt_read("dkimpy-data/ed25519test2.msg", &len);
	dns = dt_dns1_file("sed._domainkey.test.ex", "dkimpy-data/eximtest.dns");
	check_vector("exim ed25519test2.msg", msg, len, dns, -1, 1);
	free(msg);
	free(dns);

	msg = dt_read_crlf("dkimpy-data/test2.message", &len);
	dns = dt_dns1("20120113._domainkey.gmail.com", gmail);
	check_vector("test2.message", msg, len, dns, -1, 1);
	free(msg);
	free(dns);

	msg = dt_read_crlf("dkimpy-data/test.message.baddomain", &len);
	dns = dt_dns1_file("test._domainkey.legitimate.com(.attacker.com",
	    "dkimpy-data/test.txt");
	assert_int_equal(check_same("baddomain", msg, len, dns, -1, &n, res),
	    0);
	assert_int_equal(n, 1);
	assert_int_equal(res[0].reason, DKIM_SIG_DOMAIN);
	free(msg);
	free(dns);
}

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
		check_vector(cases[i].file, msg, mlen, txt, MAILAUTH_NOW,
		    cases[i].nsig);
		/* Ten years later: 005.txt's x= has passed. */
		{
			struct dt_sigresult res[DT_MAX_SIGS];
			bool x = strcmp(cases[i].file, "005.txt") == 0;
			size_t n;

			assert_int_equal(check_same(cases[i].file, msg, mlen,
			    txt, MAILAUTH_NOW + 315360000, &n, res),
			    x ? 0 : cases[i].nsig);
			if (x)
				assert_int_equal(res[0].reason,
				    DKIM_FAIL_EXPIRED);
		}
		free(msg);
		free(txt);
	}
}

/*
 * Messages signed here: every dkimpy message with an RSA and an Ed25519
 * key, in the four canonicalizations, with and without l=.
 */
static void
test_signed_here(void **state)
{
	static const struct {
		const char *key, *pub;
	} keys[] = {
		{ "test.private", "test.txt" },
		{ "ed25519test.key", "ed25519test.dns" },
	};
	static const char *const msgs[] = {
		"test.message", "message.mbox", "rfc6376.msg",
		"rfc6376.w1258.msg", "test_extra.message", "ed25519test.msg",
		"test2.message",
	};
	size_t i, j, c, len, slen, nchecked = 0;

	(void)state;
	for (i = 0; i < nitems(keys); i++) {
		char rel[256], *dns;
		struct dkim_privkey *k;

		snprintf(rel, sizeof(rel), "dkimpy-data/%s", keys[i].key);
		k = dt_load_key(rel);
		snprintf(rel, sizeof(rel), "dkimpy-data/%s", keys[i].pub);
		dns = dt_dns1_file("sel._domainkey.example.com", rel);
		for (j = 0; j < nitems(msgs); j++) {
			char *msg;

			snprintf(rel, sizeof(rel), "dkimpy-data/%s", msgs[j]);
			msg = dt_read_crlf(rel, &len);
			for (c = 0; c < 8; c++) {
				struct dkim_sign_opts o;
				char *field, *sm, what[512];

				dkim_sign_opts_init(&o, "example.com", "sel");
				o.hcanon = c & 1 ? DKIM_CANON_RELAXED :
				    DKIM_CANON_SIMPLE;
				o.bcanon = c & 2 ? DKIM_CANON_RELAXED :
				    DKIM_CANON_SIMPLE;
				o.body_length = (c & 4) != 0;
				o.timestamp = 1700000000;
				field = sign_whole(msg, len, k, &o);
				sm = prepend(field, msg, len, &slen);
				snprintf(what, sizeof(what), "%s/%s c=%zu",
				    keys[i].key, msgs[j], c);
				check_vector(what, sm, slen, dns, -1, 1);
				free(sm);
				free(field);
				nchecked++;
			}
			free(msg);
		}
		free(dns);
		dkim_privkey_free(k);
	}
	assert_int_equal(nchecked, nitems(keys) * nitems(msgs) * 8);
}

/* l= with the body extended (partial body) and cut (too short). */
static void
test_length(void **state)
{
	static const char body_more[] = "An unsigned tail.\r\n";
	struct dkim_privkey *k = dt_load_key("dkimpy-data/test.private");
	char *dns = dt_dns1_file("sel._domainkey.example.com",
	    "dkimpy-data/test.txt");
	struct dt_sigresult res[DT_MAX_SIGS];
	size_t len, slen, n, c;
	char *msg = dt_read_crlf("dkimpy-data/test.message", &len);

	(void)state;
	for (c = 0; c < 2; c++) {
		struct dkim_sign_opts o;
		char *field, *sm, *longer, *shorter;

		dkim_sign_opts_init(&o, "example.com", "sel");
		o.bcanon = c ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
		o.body_length = true;
		o.timestamp = 1700000000;
		field = sign_whole(msg, len, k, &o);
		sm = prepend(field, msg, len, &slen);
		assert_int_equal(check_same("l=", sm, slen, dns, -1, &n, res),
		    1);
		assert_false(res[0].partial_body);

		longer = malloc(slen + sizeof(body_more));
		assert_non_null(longer);
		memcpy(longer, sm, slen);
		memcpy(longer + slen, body_more, sizeof(body_more));
		assert_int_equal(check_same("l= longer", longer,
		    slen + strlen(body_more), dns, -1, &n, res), 1);
		assert_true(res[0].partial_body);

		/* The last line (and its CRLF) gone. */
		shorter = test_dup_exact(sm, slen);
		assert_true(slen > 4);
		{
			size_t cut = slen - 2;

			while (cut > 0 && shorter[cut - 1] != '\n')
				cut--;
			assert_int_equal(check_same("l= shorter", shorter, cut,
			    dns, -1, &n, res), 0);
			assert_int_equal(res[0].reason,
			    DKIM_FAIL_BODY_TOO_SHORT);
		}
		free(shorter);
		free(longer);
		free(sm);
		free(field);
	}
	free(msg);
	free(dns);
	dkim_privkey_free(k);
}

/* A wrong key of the right type, a key of the other type. */
static void
test_wrong_key(void **state)
{
	struct dkim_privkey *k = dt_load_key("dkimpy-data/test.private");
	char *wrong = dt_dns1_file("sel._domainkey.example.com",
	    "dkimpy-data/2048_testkey_wo_markers.pub.txt");
	char *other = dt_dns1_file("sel._domainkey.example.com",
	    "dkimpy-data/ed25519test.dns");
	struct dt_sigresult res[DT_MAX_SIGS];
	struct dkim_sign_opts o;
	size_t len, slen, n;
	char *msg = dt_read_crlf("dkimpy-data/test.message", &len);
	char *field, *sm;

	(void)state;
	dkim_sign_opts_init(&o, "example.com", "sel");
	field = sign_whole(msg, len, k, &o);
	sm = prepend(field, msg, len, &slen);
	assert_int_equal(check_same("wrong key", sm, slen, wrong, -1, &n, res),
	    0);
	assert_int_equal(res[0].reason, DKIM_FAIL_SIGNATURE);
	assert_int_equal(check_same("other type", sm, slen, other, -1, &n,
	    res), 0);
	assert_int_equal(res[0].reason, DKIM_FAIL_KEY_MISMATCH);
	assert_int_equal(check_same("no key", sm, slen, "", -1, &n, res), 0);
	assert_int_equal(res[0].reason, DKIM_KEY_NOT_FOUND);
	free(sm);
	free(field);
	free(msg);
	free(wrong);
	free(other);
	dkim_privkey_free(k);
}

/* Two chunks, split at every position (CRLFs split, the empty line...). */
static void
test_every_split(void **state)
{
	size_t len, dlen, cut, i, n;
	char *msg = dt_read("rfc8463/signed-A3.eml", &len);
	char *dns = dt_read("rfc8463/dns.txt", &dlen);
	struct dt_sigresult want[DT_MAX_SIGS], got[DT_MAX_SIGS];

	(void)state;
	n = dt_verify_all(msg, len, dns, NULL, want);
	assert_int_equal(n, 2);
	for (i = 0; i < n; i++)
		assert_int_equal(want[i].result, DKIM_RESULT_PASS);
	for (cut = 0; cut <= len; cut++) {
		struct dkim_stream *s = dkim_stream_new(DT_MAX_SIGS,
		    HEADER_MAX);
		char how[64];

		dkim_stream_feed(s, msg, cut);
		dkim_stream_feed(s, msg + cut, len - cut);
		dkim_stream_finish(s);
		snprintf(how, sizeof(how), "cut at %zu", cut);
		same_results("rfc8463 A.3", how, n, want,
		    stream_verify_all(s, dns, NULL, got), got);
		dkim_stream_free(s);
	}
	free(msg);
	free(dns);
}

/*
 * Limits
 */

/* A message with three signatures (two RSA canonicalizations, Ed25519). */
static char *
three_sigs(size_t *len_r, char **dns_r)
{
	struct dkim_privkey *rsa = dt_load_key("dkimpy-data/test.private");
	struct dkim_privkey *ed = dt_load_key("dkimpy-data/ed25519test.key");
	struct dkim_sign_opts o;
	size_t len, l2;
	char *msg = dt_read_crlf("dkimpy-data/test.message", &len);
	char *f, *m2, *dns, *a, *b;

	dkim_sign_opts_init(&o, "example.com", "rsa");
	o.timestamp = 1700000000;
	f = sign_whole(msg, len, rsa, &o);
	m2 = prepend(f, msg, len, &l2);
	free(f);
	free(msg);
	o.hcanon = o.bcanon = DKIM_CANON_SIMPLE;
	f = sign_whole(m2, l2, rsa, &o);
	msg = prepend(f, m2, l2, &len);
	free(f);
	free(m2);
	dkim_sign_opts_init(&o, "example.com", "ed");
	f = sign_whole(msg, len, ed, &o);
	m2 = prepend(f, msg, len, &l2);
	free(f);
	free(msg);
	a = dt_dns1_file("rsa._domainkey.example.com", "dkimpy-data/test.txt");
	b = dt_dns1_file("ed._domainkey.example.com",
	    "dkimpy-data/ed25519test.dns");
	dns = malloc(strlen(a) + strlen(b) + 1);
	assert_non_null(dns);
	snprintf(dns, strlen(a) + strlen(b) + 1, "%s%s", a, b);
	free(a);
	free(b);
	dkim_privkey_free(rsa);
	dkim_privkey_free(ed);
	*dns_r = dns;
	*len_r = l2;
	return m2;
}

static void
test_max_sigs(void **state)
{
	struct dt_sigresult want[DT_MAX_SIGS], got[DT_MAX_SIGS];
	unsigned int max;
	size_t len, n;
	char *dns, *msg = three_sigs(&len, &dns);

	(void)state;
	assert_int_equal(check_same("three", msg, len, dns, -1, &n, want), 3);
	for (max = 0; max <= 4; max++) {
		struct dkim_stream *s = dkim_stream_new(max, HEADER_MAX);
		size_t gn, wn = max < 3 ? max : 3;

		feed(s, msg, len, FEED_RANDOM);
		assert_int_equal(dkim_stream_nsigs(s), wn);
		assert_int_equal(dkim_stream_nextra(s), 3 - wn);
		gn = stream_verify_all(s, dns, NULL, got);
		/* The first max of them, in header order. */
		same_results("max_sigs", "random", wn, want, gn, got);
		dkim_stream_free(s);
	}
	free(msg);
	free(dns);
}

/* Header section over header_max: every signature a permerror. */
static void
test_header_max(void **state)
{
	struct dt_sigresult got[DT_MAX_SIGS];
	struct dkim_privkey *k = dt_load_key("dkimpy-data/test.private");
	struct dkim_sign_opts o;
	size_t len, hlen, i, n;
	char *dns, *msg = three_sigs(&len, &dns);
	const char *err, *end;
	int mode;

	(void)state;
	end = strstr(msg, "\r\n\r\n");
	assert_non_null(end);
	hlen = (size_t)(end - msg) + 4;	/* the empty line included */
	dkim_sign_opts_init(&o, "example.com", "sel");
	o.timestamp = 1;
	for (mode = 0; mode < FEED_MODES; mode++) {
		struct dkim_stream *s;
		const char *const *vals;
		const size_t *lens;
		char *f;

		/* Exactly at the limit: all pass. */
		s = dkim_stream_new(DT_MAX_SIGS, hlen);
		assert_int_equal(dkim_stream_want_body(s, DKIM_CANON_RELAXED,
		    DKIM_ALG_RSA_SHA256), 0);
		feed(s, msg, len, (enum feed_mode)mode);
		assert_false(dkim_stream_header_overflow(s));
		assert_int_equal(stream_verify_all(s, dns, NULL, got), 3);
		for (i = 0; i < 3; i++)
			assert_int_equal(got[i].reason, DKIM_OK);
		f = dkim_stream_sign(s, k, &o, &err);
		assert_non_null(f);
		free(f);
		dkim_stream_free(s);

		/* One octet less: the empty line's LF does not fit. */
		s = dkim_stream_new(DT_MAX_SIGS, hlen - 1);
		assert_int_equal(dkim_stream_want_body(s, DKIM_CANON_RELAXED,
		    DKIM_ALG_RSA_SHA256), 0);
		feed(s, msg, len, (enum feed_mode)mode);
		assert_true(dkim_stream_header_overflow(s));
		assert_int_equal(dkim_stream_header_error(s),
		    DKIM_MSG_MALFORMED);
		n = stream_verify_all(s, dns, NULL, got);
		/* The three signatures are first; the last field is not. */
		assert_int_equal(n, 3);
		for (i = 0; i < n; i++) {
			enum dkim_reason r;

			assert_int_equal(got[i].reason, DKIM_MSG_MALFORMED);
			assert_int_equal(got[i].result,
			    DKIM_RESULT_PERMERROR);
			/* Still parsed, for d= in Authentication-Results. */
			assert_non_null(dkim_stream_sig(s, i, &r));
			assert_int_equal(r, DKIM_MSG_MALFORMED);
		}
		/* From: is not the last field of test.message. */
		assert_int_equal(dkim_stream_from(s, &vals, &lens), 1);
		err = NULL;
		assert_null(dkim_stream_sign(s, k, &o, &err));
		assert_string_equal(err, "header section too large");
		dkim_stream_free(s);

		/* Cut within the first signature: nothing found. */
		s = dkim_stream_new(DT_MAX_SIGS, 40);
		feed(s, msg, len, (enum feed_mode)mode);
		assert_true(dkim_stream_header_overflow(s));
		assert_int_equal(dkim_stream_nsigs(s), 0);
		assert_int_equal(dkim_stream_from(s, &vals, &lens), 0);
		dkim_stream_free(s);

		/* header_max 0. */
		s = dkim_stream_new(DT_MAX_SIGS, 0);
		feed(s, msg, len, (enum feed_mode)mode);
		assert_true(dkim_stream_header_overflow(s));
		assert_int_equal(dkim_stream_nsigs(s), 0);
		dkim_stream_free(s);
	}
	free(msg);
	free(dns);
	dkim_privkey_free(k);
}

/* More than DKIM_MSG_FIELDS_MAX fields: as dkim_msg_parse() refuses. */
static void
test_too_many_fields(void **state)
{
	struct dkim_msg m;
	enum dkim_reason r;
	size_t i, len = 0, cap = (DKIM_MSG_FIELDS_MAX + 10) * 8 + 64;
	char *msg = malloc(cap);
	struct dkim_stream *s;

	(void)state;
	assert_non_null(msg);
	for (i = 0; i < DKIM_MSG_FIELDS_MAX + 1; i++) {
		memcpy(msg + len, "X: y\r\n", 6);
		len += 6;
	}
	memcpy(msg + len, "\r\nbody\r\n", 8);
	len += 8;
	assert_int_equal(dkim_msg_parse(msg, len, &m, &r), -1);
	assert_int_equal(r, DKIM_MSG_MALFORMED);
	s = dkim_stream_new(DT_MAX_SIGS, HEADER_MAX);
	feed(s, msg, len, FEED_RANDOM);
	assert_false(dkim_stream_header_overflow(s));
	assert_int_equal(dkim_stream_header_error(s), DKIM_MSG_MALFORMED);
	assert_int_equal(dkim_stream_nsigs(s), 0);
	dkim_stream_free(s);
	free(msg);
}

/*
 * Messages without a body, without the empty line, ending within a line,
 * with bare CR and LF: signed whole, verified both ways.
 */
static void
test_odd_shapes(void **state)
{
	static const char *const shapes[] = {
		"From: a@example.com\r\nSubject: no body\r\n\r\n",
		"From: a@example.com\r\nSubject: no empty line\r\n",
		"From: a@example.com\r\nSubject: cut",
		"From: a@example.com\r\nSubject: cr\r\r\n\r\nbody\r",
		"From: a@example.com\r\n\r\n\r\n\r\n",
		("From: a@example.com\r\nX: bare\nlf\r\n\r\n \t\r\nbody \t\r\n"
		    "\r\n"),
		"From: a@example.com\r\n\r\r\n\r\nbody after CR line\r\n",
		"\r\nFrom: in the body\r\n",
	};
	struct dkim_privkey *k = dt_load_key("dkimpy-data/test.private");
	char *dns = dt_dns1_file("sel._domainkey.example.com",
	    "dkimpy-data/test.txt");
	struct dt_sigresult res[DT_MAX_SIGS];
	size_t i, c, len, n;

	(void)state;
	for (i = 0; i < nitems(shapes); i++) {
		for (c = 0; c < 4; c++) {
			struct dkim_sign_opts o;
			const char *err = NULL;
			char *field, *sm, what[64];

			dkim_sign_opts_init(&o, "example.com", "sel");
			o.hcanon = c & 1 ? DKIM_CANON_RELAXED :
			    DKIM_CANON_SIMPLE;
			o.bcanon = c & 2 ? DKIM_CANON_RELAXED :
			    DKIM_CANON_SIMPLE;
			o.timestamp = 1700000000;
			snprintf(what, sizeof(what), "shape %zu c=%zu", i, c);
			field = dkim_sign(shapes[i], strlen(shapes[i]), k, &o,
			    &err);
			if (field == NULL) {
				/* The last shape has no From field. */
				assert_int_equal(i, nitems(shapes) - 1);
				sm = prepend(NOFROM_SIG, shapes[i],
				    strlen(shapes[i]), &len);
				assert_int_equal(check_same(what, sm, len, dns,
				    -1, &n, res), 0);
				assert_int_equal(n, 1);
				free(sm);
				continue;
			}
			sm = prepend(field, shapes[i], strlen(shapes[i]),
			    &len);
			assert_int_equal(check_same(what, sm, len, dns, -1,
			    &n, res), 1);
			free(sm);
			free(field);
		}
	}
	free(dns);
	dkim_privkey_free(k);
}

static void
test_from_values(void **state)
{
	static const char msg[] =
	    "Received: x\r\n"
	    "From: A <a@example.com>\r\n"
	    "To: b@example.org\r\n"
	    "fROM :\r\n\tc@example.net\r\n"
	    "From:\r\n"
	    "\r\n"
	    "From: body@example.com\r\n";
	const char *const *vals;
	const size_t *lens;
	int mode;

	(void)state;
	for (mode = 0; mode < FEED_MODES; mode++) {
		struct dkim_stream *s = dkim_stream_new(1, HEADER_MAX);

		feed(s, msg, sizeof(msg) - 1, (enum feed_mode)mode);
		assert_int_equal(dkim_stream_nsigs(s), 0);
		assert_int_equal(dkim_stream_from(s, &vals, &lens), 3);
		assert_int_equal(lens[0], strlen(" A <a@example.com>"));
		assert_memory_equal(vals[0], " A <a@example.com>", lens[0]);
		assert_int_equal(lens[1], strlen("\r\n\tc@example.net"));
		assert_memory_equal(vals[1], "\r\n\tc@example.net", lens[1]);
		assert_int_equal(lens[2], 0);
		dkim_stream_free(s);
	}
}

/*
 * Signing
 */

static void
sign_compare(const char *what, const char *msg, size_t len,
    const struct dkim_privkey *k, const struct dkim_sign_opts *o)
{
	const char *err = NULL;
	char *want = dkim_sign(msg, len, k, o, &err);
	int mode;

	if (want == NULL)
		fail_msg("%s: dkim_sign: %s", what, err);
	for (mode = 0; mode < FEED_MODES; mode++) {
		struct dkim_stream *s = dkim_stream_new(DT_MAX_SIGS,
		    HEADER_MAX);
		char *got;

		/* Both canonicalizations wanted: any one may be used. */
		assert_int_equal(dkim_stream_want_body(s, DKIM_CANON_SIMPLE,
		    DKIM_ALG_RSA_SHA256), 0);
		assert_int_equal(dkim_stream_want_body(s, o->bcanon,
		    dkim_privkey_type(k) == DKIM_KEY_ED25519 ?
		    DKIM_ALG_ED25519_SHA256 : DKIM_ALG_RSA_SHA256), 0);
		assert_int_equal(dkim_stream_want_body(s, DKIM_CANON_RELAXED,
		    DKIM_ALG_RSA_SHA256), 0);
		feed(s, msg, len, (enum feed_mode)mode);
		got = dkim_stream_sign(s, k, o, &err);
		if (got == NULL)
			fail_msg("%s (%s): %s", what, feed_names[mode], err);
		if (strcmp(got, want) != 0)
			fail_msg("%s (%s):\nstream %s\nwhole  %s", what,
			    feed_names[mode], test_esc(got), test_esc(want));
		free(got);
		dkim_stream_free(s);
	}
	free(want);
}

static void
test_sign(void **state)
{
	static const char *const hdrs[] = {
		"From", "To", "Subject", "Date", "Message-ID",
	};
	static const char *const keys[] = {
		"dkimpy-data/test.private", "dkimpy-data/2048_testkey.key",
		"dkimpy-data/ed25519test.key",
	};
	static const char *const msgs[] = {
		"dkimpy-data/test.message", "dkimpy-data/message.mbox",
		"dkimpy-data/rfc6376.msg", "dkimpy-data/test2.message",
		"dkimpy-data/test_extra.message",
	};
	size_t i, j, c, len;

	(void)state;
	for (i = 0; i < nitems(keys); i++) {
		struct dkim_privkey *k = dt_load_key(keys[i]);

		for (j = 0; j < nitems(msgs); j++) {
			char *msg = dt_read_crlf(msgs[j], &len);

			for (c = 0; c < 16; c++) {
				struct dkim_sign_opts o;
				char what[256];

				dkim_sign_opts_init(&o, "example.com", "sel");
				o.hcanon = c & 1 ? DKIM_CANON_RELAXED :
				    DKIM_CANON_SIMPLE;
				o.bcanon = c & 2 ? DKIM_CANON_RELAXED :
				    DKIM_CANON_SIMPLE;
				o.body_length = (c & 4) != 0;
				if (c & 8) {
					o.headers = hdrs;
					o.nheaders = nitems(hdrs);
					o.identity = "@mail.example.com";
					o.expire_after = 3600;
				}
				o.timestamp = 1700000000 + (int64_t)c;
				snprintf(what, sizeof(what), "%s %s c=%zu",
				    keys[i], msgs[j], c);
				sign_compare(what, msg, len, k, &o);
			}
			free(msg);
		}
		dkim_privkey_free(k);
	}
}

/* go-msgauth's published outputs, from the stream. */
static void
test_sign_gomsgauth(void **state)
{
	static const char *const hdrs[] = {
		"From", "To", "Subject", "Date", "Message-ID",
	};
	struct dkim_privkey *k = dt_load_key(
	    "rfc6376/rfc6376-appendixC-brisbane.private.pem");
	struct dkim_stream *s = dkim_stream_new(0, HEADER_MAX);
	struct dkim_sign_opts o;
	const char *err = NULL;
	size_t len, elen, flen;
	char *in = dt_read("go-msgauth/sign-input.eml", &len);
	char *want = dt_read(
	    "go-msgauth/sign-expected-rsa-example.org-brisbane.eml", &elen);
	char *got;

	(void)state;
	dkim_sign_opts_init(&o, "example.org", "brisbane");
	o.headers = hdrs;
	o.nheaders = nitems(hdrs);
	o.hcanon = o.bcanon = DKIM_CANON_SIMPLE;
	o.timestamp = 424242;
	assert_int_equal(dkim_stream_want_body(s, DKIM_CANON_SIMPLE,
	    DKIM_ALG_RSA_SHA256), 0);
	feed(s, in, len, FEED_BYTES);
	got = dkim_stream_sign(s, k, &o, &err);
	assert_non_null(got);
	flen = strlen(got);
	assert_int_equal(flen + len, elen);
	assert_memory_equal(got, want, flen);
	free(got);
	dkim_stream_free(s);
	sign_compare("go-msgauth sign-input", in, len, k, &o);
	free(in);
	free(want);
	dkim_privkey_free(k);
}

static void
test_sign_errors(void **state)
{
	struct dkim_privkey *k = dt_load_key("dkimpy-data/test.private");
	struct dkim_sign_opts o;
	struct dkim_stream *s;
	const char *err;
	size_t len;
	char *msg = dt_read_crlf("dkimpy-data/test.message", &len);

	(void)state;
	dkim_sign_opts_init(&o, "example.com", "sel");

	/* Not wanted: refused, even though a hash of it might exist. */
	s = dkim_stream_new(DT_MAX_SIGS, HEADER_MAX);
	assert_int_equal(dkim_stream_want_body(s, DKIM_CANON_SIMPLE,
	    DKIM_ALG_RSA_SHA256), 0);
	feed(s, msg, len, FEED_WHOLE);
	assert_int_equal(dkim_stream_want_body(s, DKIM_CANON_RELAXED,
	    DKIM_ALG_RSA_SHA256), -1);
	err = NULL;
	assert_null(dkim_stream_sign(s, k, &o, &err));
	assert_non_null(err);
	dkim_stream_free(s);

	/* Wanted after the header section: too late. */
	s = dkim_stream_new(DT_MAX_SIGS, HEADER_MAX);
	dkim_stream_feed(s, msg, len);
	assert_int_equal(dkim_stream_want_body(s, DKIM_CANON_RELAXED,
	    DKIM_ALG_RSA_SHA256), -1);
	dkim_stream_finish(s);
	err = NULL;
	assert_null(dkim_stream_sign(s, k, &o, &err));
	assert_non_null(err);
	dkim_stream_free(s);

	/* Bad options and no From: dkim_sign()'s errors. */
	s = dkim_stream_new(DT_MAX_SIGS, HEADER_MAX);
	assert_int_equal(dkim_stream_want_body(s, DKIM_CANON_RELAXED,
	    DKIM_ALG_RSA_SHA256), 0);
	feed(s, msg, len, FEED_WHOLE);
	o.domain = "not a domain";
	err = NULL;
	assert_null(dkim_stream_sign(s, k, &o, &err));
	assert_string_equal(err, "invalid signing domain");
	dkim_stream_free(s);
	free(msg);

	msg = dt_read_crlf("dkimpy-data/test_nofrom.message", &len);
	dkim_sign_opts_init(&o, "example.com", "sel");
	s = dkim_stream_new(DT_MAX_SIGS, HEADER_MAX);
	assert_int_equal(dkim_stream_want_body(s, DKIM_CANON_RELAXED,
	    DKIM_ALG_RSA_SHA256), 0);
	feed(s, msg, len, FEED_BYTES);
	err = NULL;
	assert_null(dkim_stream_sign(s, k, &o, &err));
	assert_string_equal(err, "message has no From field");
	dkim_stream_free(s);
	free(msg);
	dkim_privkey_free(k);
}

static void
test_free_null(void **state)
{
	struct dkim_stream *s;

	(void)state;
	dkim_stream_free(NULL);
	/* Freed without finishing, within the header or the body. */
	s = dkim_stream_new(2, 100);
	dkim_stream_feed(s, "From: a\r\n", 9);
	dkim_stream_free(s);
	s = dkim_stream_new(2, 100);
	assert_int_equal(dkim_stream_want_body(s, DKIM_CANON_RELAXED,
	    DKIM_ALG_RSA_SHA256), 0);
	dkim_stream_feed(s, "From: a\r\n\r\nbody", 15);
	dkim_stream_free(s);
}

/* A large body, as the SMTP session feeds it (64 KiB chunks). */
static void
test_large_body(void **state)
{
	struct dkim_privkey *k = dt_load_key("dkimpy-data/test.private");
	char *dns = dt_dns1_file("sel._domainkey.example.com",
	    "dkimpy-data/test.txt");
	static const char hdr[] = "From: a@example.com\r\nSubject: big\r\n"
	    "\r\n";
	struct dt_sigresult want[DT_MAX_SIGS], got[DT_MAX_SIGS];
	size_t len = 4 * 1024 * 1024, pos, slen, n, c;
	char *msg = malloc(len), *field, *sm;

	(void)state;
	assert_non_null(msg);
	memcpy(msg, hdr, sizeof(hdr) - 1);
	for (pos = sizeof(hdr) - 1; pos < len; pos++) {
		uint32_t r = rng_next() % 80;

		msg[pos] = r == 0 ? '\r' : r == 1 ? '\n' : r < 8 ? ' ' :
		    r < 10 ? '\t' : (char)('a' + r % 26);
		if (r == 0 && pos + 1 < len)
			msg[++pos] = '\n';
	}
	for (c = 0; c < 4; c++) {
		struct dkim_sign_opts o;
		struct dkim_stream *s;
		const char *err = NULL;
		char *f2;

		dkim_sign_opts_init(&o, "example.com", "sel");
		o.hcanon = c & 1 ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
		o.bcanon = c & 2 ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
		o.timestamp = 1700000000;
		field = sign_whole(msg, len, k, &o);
		sm = prepend(field, msg, len, &slen);
		n = dt_verify_all(sm, slen, dns, NULL, want);
		assert_int_equal(n, 1);
		assert_int_equal(want[0].result, DKIM_RESULT_PASS);
		s = dkim_stream_new(DT_MAX_SIGS, HEADER_MAX);
		assert_int_equal(dkim_stream_want_body(s, o.bcanon,
		    DKIM_ALG_RSA_SHA256), 0);
		for (pos = 0; pos < slen; pos += 65536)
			dkim_stream_feed(s, sm + pos,
			    slen - pos < 65536 ? slen - pos : 65536);
		dkim_stream_finish(s);
		same_results("large", "64k", n, want,
		    stream_verify_all(s, dns, NULL, got), got);
		dkim_stream_free(s);

		/* Signing the unsigned message from the stream. */
		s = dkim_stream_new(DT_MAX_SIGS, HEADER_MAX);
		assert_int_equal(dkim_stream_want_body(s, o.bcanon,
		    DKIM_ALG_RSA_SHA256), 0);
		for (pos = 0; pos < len; pos += 65536)
			dkim_stream_feed(s, msg + pos,
			    len - pos < 65536 ? len - pos : 65536);
		dkim_stream_finish(s);
		f2 = dkim_stream_sign(s, k, &o, &err);
		assert_non_null(f2);
		assert_string_equal(f2, field);
		free(f2);
		dkim_stream_free(s);
		free(sm);
		free(field);
	}
	free(msg);
	free(dns);
	dkim_privkey_free(k);
}

struct thread_arg {
	const struct dkim_stream *s;
	struct dkim_key *keys[3];
	size_t passes;
};

static void *
thread_verify(void *p)
{
	struct thread_arg *a = p;
	struct dkim_verdict v;
	size_t round, i;

	for (round = 0; round < 20; round++)
		for (i = 0; i < 3; i++)
			if (dkim_stream_verify(a->s, i, a->keys[i], NULL,
			    &v) == 0)
				a->passes++;
	return NULL;
}

/* One finished stream, its signatures verified on threads at once. */
static void
test_threads(void **state)
{
	struct thread_arg args[4];
	pthread_t tids[4];
	struct dkim_key *keys[3];
	struct dkim_stream *s;
	size_t len, i;
	char *dns, *msg = three_sigs(&len, &dns);

	(void)state;
	s = dkim_stream_new(DT_MAX_SIGS, HEADER_MAX);
	feed(s, msg, len, FEED_RANDOM);
	assert_int_equal(dkim_stream_nsigs(s), 3);
	for (i = 0; i < 3; i++) {
		enum dkim_reason r;
		char *txt = dt_dns_lookup(dns, dkim_stream_key_name(s, i));

		assert_non_null(txt);
		assert_int_equal(dkim_key_parse(txt, strlen(txt), &keys[i],
		    &r), 0);
		free(txt);
	}
	for (i = 0; i < nitems(args); i++) {
		args[i].s = s;
		memcpy(args[i].keys, keys, sizeof(keys));
		args[i].passes = 0;
		assert_int_equal(pthread_create(&tids[i], NULL, thread_verify,
		    &args[i]), 0);
	}
	for (i = 0; i < nitems(args); i++) {
		assert_int_equal(pthread_join(tids[i], NULL), 0);
		assert_int_equal(args[i].passes, 20 * 3);
	}
	for (i = 0; i < 3; i++)
		dkim_key_free(keys[i]);
	dkim_stream_free(s);
	free(msg);
	free(dns);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc8463),
		cmocka_unit_test(test_gomsgauth),
		cmocka_unit_test(test_dkimpy_signed),
		cmocka_unit_test(test_mailauth),
		cmocka_unit_test(test_signed_here),
		cmocka_unit_test(test_length),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_max_sigs),
		cmocka_unit_test(test_header_max),
		cmocka_unit_test(test_too_many_fields),
		cmocka_unit_test(test_odd_shapes),
		cmocka_unit_test(test_from_values),
		cmocka_unit_test(test_sign),
		cmocka_unit_test(test_sign_gomsgauth),
		cmocka_unit_test(test_sign_errors),
		cmocka_unit_test(test_free_null),
		cmocka_unit_test(test_large_body),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
