/*
 * test_sasl.c: the PLAIN and LOGIN exchanges (every reply they can end
 * in, challenges in order, NUL and empty fields, the 12288-octet limit of
 * RFC 4954 4) and strict base64 (RFC 4648 vectors, odd and non-canonical
 * encodings).
 *
 * The base64 the cases send is made by an encoder in this file, not by
 * the module under test.
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

#include "testutil.h"

#include "lib/base64.h"
#include "sasl/sasl.h"

#define USERNAME	"VXNlcm5hbWU6"
#define PASSWORD	"UGFzc3dvcmQ6"

/* RFC 4648 4, independently of the code under test. */
static char *
b64(const char *s, size_t n)
{
	static const char al[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *o = malloc((n + 2) / 3 * 4 + 1), *p = o;
	const unsigned char *u = (const unsigned char *)s;
	size_t i;

	assert_non_null(o);
	for (i = 0; i + 2 < n; i += 3) {
		*p++ = al[u[i] >> 2];
		*p++ = al[((u[i] & 3) << 4) | (u[i + 1] >> 4)];
		*p++ = al[((u[i + 1] & 15) << 2) | (u[i + 2] >> 6)];
		*p++ = al[u[i + 2] & 63];
	}
	if (n - i == 1) {
		*p++ = al[u[i] >> 2];
		*p++ = al[(u[i] & 3) << 4];
		*p++ = '=';
		*p++ = '=';
	} else if (n - i == 2) {
		*p++ = al[u[i] >> 2];
		*p++ = al[((u[i] & 3) << 4) | (u[i + 1] >> 4)];
		*p++ = al[(u[i + 1] & 15) << 2];
		*p++ = '=';
	}
	*p = '\0';
	return o;
}

/* One client response: raw bytes to encode, or a literal line. */
struct resp {
	const char *s;
	size_t len;
	bool encode;
	bool present;
};

#define ENC(lit)	{ lit, sizeof(lit) - 1, true, true }
#define LIT(lit)	{ lit, sizeof(lit) - 1, false, true }

enum final {
	F_DONE,
	F_ERROR,
};

struct xcase {
	const char *name;
	const char *mech;	/* AUTH argument before the initial response */
	struct resp initial;	/* .present false: no initial response */
	struct resp lines[3];	/* continuation lines in order */
	const char *challenges[3];	/* want after start, then each line */
	enum final final;
	int code;		/* F_ERROR: the reply */
	const char *enhanced;
	bool failure;		/* sasl_error_is_failure() */
	const char *authcid;	/* want, or NULL */
	const char *authzid;
	const char *password;
};

static const struct xcase xcases[] = {
	/* PLAIN with an initial response (RFC 4616 2). */
	{ "plain initial", "PLAIN", ENC("\0alice@example.test\0s3cret"), {},
	    {}, F_DONE, 0, NULL, false, "alice@example.test", "", "s3cret" },
	{ "plain authzid equal", "PLAIN",
	    ENC("alice@example.test\0alice@example.test\0pw"), {}, {},
	    F_DONE, 0, NULL, false, "alice@example.test",
	    "alice@example.test", "pw" },
	{ "plain authzid equal ignoring case", "plain",
	    ENC("Alice@Example.TEST\0alice@example.test\0pw"), {}, {},
	    F_DONE, 0, NULL, false, "alice@example.test",
	    "Alice@Example.TEST", "pw" },
	{ "plain authzid other user", "PLAIN",
	    ENC("bob@example.test\0alice@example.test\0pw"), {}, {},
	    F_ERROR, 535, "5.7.8", true, "alice@example.test", NULL, NULL },
	{ "plain password with spaces and utf-8", "PLAIN",
	    ENC("\0alice\0p \xc3\xa4 ss:word"), {}, {}, F_DONE, 0, NULL,
	    false, "alice", "", "p \xc3\xa4 ss:word" },
	/* PLAIN with the empty challenge. */
	{ "plain challenge", "PLAIN", {},
	    { ENC("\0alice@example.test\0pw") }, { "" }, F_DONE, 0, NULL,
	    false, "alice@example.test", "", "pw" },
	{ "plain empty response line", "PLAIN", {}, { LIT("") }, { "" },
	    F_ERROR, 535, "5.7.8", true, NULL, NULL, NULL },
	{ "plain cancel", "PLAIN", {}, { LIT("*") }, { "" }, F_ERROR, 501,
	    "5.0.0", false, NULL, NULL, NULL },
	{ "plain bad base64 line", "PLAIN", {}, { LIT("AGFsaWNlAHB3!") },
	    { "" }, F_ERROR, 501, "5.5.2", false, NULL, NULL, NULL },
	/* Malformed PLAIN messages: 535, counted as failures. */
	{ "plain = initial (empty message)", "PLAIN", LIT("="), {}, {},
	    F_ERROR, 535, "5.7.8", true, NULL, NULL, NULL },
	{ "plain no NUL", "PLAIN", ENC("alice"), {}, {}, F_ERROR, 535,
	    "5.7.8", true, NULL, NULL, NULL },
	{ "plain one NUL", "PLAIN", ENC("\0alice"), {}, {}, F_ERROR, 535,
	    "5.7.8", true, NULL, NULL, NULL },
	{ "plain NUL in password", "PLAIN", ENC("\0alice\0pw\0x"), {}, {},
	    F_ERROR, 535, "5.7.8", true, "alice", NULL, NULL },
	{ "plain empty authcid", "PLAIN", ENC("\0\0pw"), {}, {}, F_ERROR,
	    535, "5.7.8", true, "", NULL, NULL },
	{ "plain empty password", "PLAIN", ENC("\0alice\0"), {}, {},
	    F_ERROR, 535, "5.7.8", true, "alice", NULL, NULL },
	{ "plain only NULs", "PLAIN", ENC("\0\0"), {}, {}, F_ERROR, 535,
	    "5.7.8", true, "", NULL, NULL },
	/* Bad base64 in the initial response: 501 5.5.2. */
	{ "plain * initial is not a cancel", "PLAIN", LIT("*"), {}, {},
	    F_ERROR, 501, "5.5.2", false, NULL, NULL, NULL },
	{ "plain initial not multiple of 4", "PLAIN", LIT("AGFsaWNlAHB"), {},
	    {}, F_ERROR, 501, "5.5.2", false, NULL, NULL, NULL },
	{ "plain initial base64url", "PLAIN", LIT("AGFs-_Nl"), {}, {},
	    F_ERROR, 501, "5.5.2", false, NULL, NULL, NULL },
	/* LOGIN. */
	{ "login", "LOGIN", {},
	    { ENC("alice@example.test"), ENC("s3cret") },
	    { USERNAME, PASSWORD }, F_DONE, 0, NULL, false,
	    "alice@example.test", "", "s3cret" },
	{ "login lower case", "login", {}, { ENC("alice"), ENC("pw") },
	    { USERNAME, PASSWORD }, F_DONE, 0, NULL, false, "alice", "",
	    "pw" },
	{ "login initial user", "LOGIN", ENC("alice@example.test"),
	    { ENC("s3cret") }, { PASSWORD }, F_DONE, 0, NULL, false,
	    "alice@example.test", "", "s3cret" },
	{ "login empty initial user", "LOGIN", LIT("="), { ENC("pw") },
	    { PASSWORD }, F_ERROR, 535, "5.7.8", true, "", NULL, NULL },
	{ "login empty user line", "LOGIN", {}, { LIT(""), ENC("pw") },
	    { USERNAME, PASSWORD }, F_ERROR, 535, "5.7.8", true, "", NULL,
	    NULL },
	{ "login NUL in user", "LOGIN", {},
	    { ENC("alice\0bob"), ENC("pw") }, { USERNAME, PASSWORD },
	    F_ERROR, 535, "5.7.8", true, "alice", NULL, NULL },
	{ "login NUL in password", "LOGIN", {},
	    { ENC("alice"), ENC("p\0w") }, { USERNAME, PASSWORD }, F_ERROR,
	    535, "5.7.8", true, "alice", NULL, NULL },
	{ "login empty password", "LOGIN", {}, { ENC("alice"), LIT("") },
	    { USERNAME, PASSWORD }, F_ERROR, 535, "5.7.8", true, "alice",
	    NULL, NULL },
	{ "login cancel at user", "LOGIN", {}, { LIT("*") }, { USERNAME },
	    F_ERROR, 501, "5.0.0", false, NULL, NULL, NULL },
	{ "login cancel at password", "LOGIN", {}, { ENC("alice"),
	    LIT("*") }, { USERNAME, PASSWORD }, F_ERROR, 501, "5.0.0", false,
	    "alice", NULL, NULL },
	{ "login bad base64 user", "LOGIN", {}, { LIT("YWxpY2U") },
	    { USERNAME }, F_ERROR, 501, "5.5.2", false, NULL, NULL, NULL },
	{ "login bad base64 password", "LOGIN", {},
	    { ENC("alice"), LIT("cHc=cHc=") }, { USERNAME, PASSWORD },
	    F_ERROR, 501, "5.5.2", false, "alice", NULL, NULL },
	{ "login ** is bad base64, not a cancel", "LOGIN", {}, { LIT("**") },
	    { USERNAME }, F_ERROR, 501, "5.5.2", false, NULL, NULL, NULL },
	/* Odd base64 as continuation lines. */
	{ "line with trailing CR", "PLAIN", {}, { LIT("AGEAYg==\r") },
	    { "" }, F_ERROR, 501, "5.5.2", false, NULL, NULL, NULL },
	{ "line with leading space", "PLAIN", {}, { LIT(" AGEAYg==") },
	    { "" }, F_ERROR, 501, "5.5.2", false, NULL, NULL, NULL },
	{ "line split by a space", "PLAIN", {}, { LIT("AGEA Yg==") },
	    { "" }, F_ERROR, 501, "5.5.2", false, NULL, NULL, NULL },
	{ "line with NUL byte", "PLAIN", {}, { LIT("AGEA\0Yg==") },
	    { "" }, F_ERROR, 501, "5.5.2", false, NULL, NULL, NULL },
	{ "line non-zero pad bits", "PLAIN", {}, { LIT("AGEAYh==") },
	    { "" }, F_ERROR, 501, "5.5.2", false, NULL, NULL, NULL },
	{ "line canonical twin", "PLAIN", {}, { LIT("AGEAYg==") }, { "" },
	    F_DONE, 0, NULL, false, "a", "", "b" },
	{ "line = in continuation", "PLAIN", {}, { LIT("=") }, { "" },
	    F_ERROR, 501, "5.5.2", false, NULL, NULL, NULL },
	/* Mechanisms. */
	{ "unknown mechanism", "CRAM-MD5", {}, {}, {}, F_ERROR, 504,
	    "5.5.4", false, NULL, NULL, NULL },
	{ "unknown mechanism with initial", "XOAUTH2", LIT("dGVzdA=="), {},
	    {}, F_ERROR, 504, "5.5.4", false, NULL, NULL, NULL },
	{ "mechanism of 21 characters", "PLAINPLAINPLAINPLAINP", {}, {}, {},
	    F_ERROR, 504, "5.5.4", false, NULL, NULL, NULL },
	{ "mechanism with bad character", "PL@IN", {}, {}, {}, F_ERROR, 504,
	    "5.5.4", false, NULL, NULL, NULL },
	{ "mechanism prefix", "PLAI", {}, {}, {}, F_ERROR, 504, "5.5.4",
	    false, NULL, NULL, NULL },
};

/* Build "MECH" or "MECH b64" as the session would hand it over. */
static char *
xcase_args(const struct xcase *c)
{
	char *enc = NULL, *args;
	size_t n;

	if (!c->initial.present)
		return strdup(c->mech);
	if (c->initial.encode)
		enc = b64(c->initial.s, c->initial.len);
	n = strlen(c->mech) + 2 + (enc != NULL ? strlen(enc) :
	    c->initial.len);
	args = malloc(n);
	assert_non_null(args);
	snprintf(args, n, "%s %s", c->mech, enc != NULL ? enc :
	    c->initial.s);
	free(enc);
	return args;
}

static void
check_final(const struct xcase *c, struct sasl_exchange *x,
    enum sasl_status st)
{
	const struct sasl_reply *r;

	if (c->final == F_DONE) {
		if (st != SASL_STATUS_DONE)
			fail_msg("%s: got status %d (error %d), want DONE",
			    c->name, (int)st, (int)sasl_exchange_error(x));
		assert_int_equal(sasl_exchange_error(x), SASL_ERR_NONE);
		test_assert_str_or_null(sasl_exchange_authcid(x), c->authcid);
		test_assert_str_or_null(sasl_exchange_authzid(x), c->authzid);
		test_assert_str_or_null(sasl_exchange_password(x),
		    c->password);
		return;
	}
	if (st != SASL_STATUS_ERROR)
		fail_msg("%s: got status %d, want ERROR %d %s", c->name,
		    (int)st, c->code, c->enhanced);
	r = sasl_error_reply(sasl_exchange_error(x));
	if (r->code != c->code || strcmp(r->enhanced, c->enhanced) != 0)
		fail_msg("%s: got %d %s, want %d %s", c->name, r->code,
		    r->enhanced, c->code, c->enhanced);
	if (sasl_error_is_failure(sasl_exchange_error(x)) != c->failure)
		fail_msg("%s: got is_failure %d, want %d", c->name,
		    !c->failure, c->failure);
	test_assert_str_or_null(sasl_exchange_authcid(x), c->authcid);
	/* A failed exchange never hands out a password. */
	assert_null(sasl_exchange_password(x));
}

static void
test_exchange_table(void **state)
{
	size_t i, k;

	(void)state;
	for (i = 0; i < sizeof(xcases) / sizeof(xcases[0]); i++) {
		const struct xcase *c = &xcases[i];
		struct sasl_exchange *x = sasl_exchange_new();
		enum sasl_status st;
		char *args = xcase_args(c);

		st = sasl_exchange_start_args(x, args);
		for (k = 0; k < 3 && c->lines[k].present; k++) {
			const struct resp *l = &c->lines[k];
			char *enc = l->encode ? b64(l->s, l->len) : NULL;

			if (st != SASL_STATUS_CHALLENGE)
				fail_msg("%s: step %zu: got status %d, want "
				    "CHALLENGE %s", c->name, k, (int)st,
				    c->challenges[k]);
			if (strcmp(sasl_exchange_challenge(x),
			    c->challenges[k]) != 0)
				fail_msg("%s: step %zu: got challenge \"%s\", "
				    "want \"%s\"", c->name, k,
				    sasl_exchange_challenge(x),
				    c->challenges[k]);
			if (enc != NULL)
				st = sasl_exchange_step(x, enc, strlen(enc));
			else
				st = sasl_exchange_step(x, l->s, l->len);
			free(enc);
		}
		check_final(c, x, st);
		sasl_exchange_free(x);
		free(args);
	}
}

/* The AUTH argument string: one space, two words at most. */
static void
test_start_args_syntax(void **state)
{
	static const struct {
		const char *args;
		int code;
		const char *enhanced;
	} cases[] = {
		{ "", 501, "5.5.4" },
		{ " PLAIN", 501, "5.5.4" },
		{ "PLAIN ", 501, "5.5.4" },
		{ "PLAIN  AGEAYg==", 501, "5.5.4" },
		{ "PLAIN AGEA Yg==", 501, "5.5.4" },
		{ "PLAIN AGEAYg== x", 501, "5.5.4" },
		{ "PLAIN\tAGEAYg==", 504, "5.5.4" },
		{ "PLAINPLAINPLAINPLAINPLAIN AGEAYg==", 504, "5.5.4" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sasl_exchange *x = sasl_exchange_new();
		const struct sasl_reply *r;

		if (sasl_exchange_start_args(x, cases[i].args) !=
		    SASL_STATUS_ERROR)
			fail_msg("\"%s\": not refused", cases[i].args);
		r = sasl_error_reply(sasl_exchange_error(x));
		if (r->code != cases[i].code ||
		    strcmp(r->enhanced, cases[i].enhanced) != 0)
			fail_msg("\"%s\": got %d %s, want %d %s",
			    test_esc(cases[i].args), r->code, r->enhanced,
			    cases[i].code, cases[i].enhanced);
		assert_null(sasl_exchange_mech(x));
		sasl_exchange_free(x);
	}
}

static void
test_start_without_args_helper(void **state)
{
	struct sasl_exchange *x = sasl_exchange_new();

	(void)state;
	assert_int_equal(sasl_exchange_start(x, "login", NULL),
	    SASL_STATUS_CHALLENGE);
	assert_string_equal(sasl_exchange_mech(x), "LOGIN");
	assert_string_equal(sasl_exchange_challenge(x), USERNAME);
	assert_null(sasl_exchange_authcid(x));
	sasl_exchange_free(x);
	sasl_exchange_free(NULL);
}

/*
 * A PLAIN message whose base64 is exactly n characters (n a multiple of
 * 4): "\0" user "\0" password, the password filling up the rest.
 */
static char *
plain_of_b64_len(size_t n)
{
	size_t raw = n / 4 * 3, i;
	char *m = malloc(raw), *enc;

	assert_non_null(m);
	memcpy(m, "\0u@example.test\0", 16);
	for (i = 16; i < raw; i++)
		m[i] = (char)('a' + i % 26);
	enc = b64(m, raw);
	free(m);
	assert_int_equal(strlen(enc), n);
	return enc;
}

/* RFC 4954 4: 12288 octets of response accepted, one more refused. */
static void
test_12288_boundary(void **state)
{
	struct sasl_exchange *x;
	char *enc, *args, *big;
	size_t n;

	(void)state;
	enc = plain_of_b64_len(SASL_RESPONSE_MAX);

	/* Initial response of exactly 12288 octets. */
	n = strlen(enc) + 7;
	args = malloc(n);
	assert_non_null(args);
	snprintf(args, n, "PLAIN %s", enc);
	x = sasl_exchange_new();
	assert_int_equal(sasl_exchange_start_args(x, args), SASL_STATUS_DONE);
	assert_int_equal(strlen(sasl_exchange_password(x)),
	    SASL_RESPONSE_MAX / 4 * 3 - 16);
	sasl_exchange_free(x);
	free(args);

	/* The same as a continuation line. */
	x = sasl_exchange_new();
	assert_int_equal(sasl_exchange_start(x, "PLAIN", NULL),
	    SASL_STATUS_CHALLENGE);
	assert_int_equal(sasl_exchange_step(x, enc, strlen(enc)),
	    SASL_STATUS_DONE);
	sasl_exchange_free(x);

	/* 12289 octets: refused on length before it is decoded. */
	big = malloc(SASL_RESPONSE_MAX + 2);
	assert_non_null(big);
	memcpy(big, enc, SASL_RESPONSE_MAX);
	big[SASL_RESPONSE_MAX] = 'A';
	big[SASL_RESPONSE_MAX + 1] = '\0';
	x = sasl_exchange_new();
	assert_int_equal(sasl_exchange_start(x, "PLAIN", big),
	    SASL_STATUS_ERROR);
	assert_int_equal(sasl_error_reply(sasl_exchange_error(x))->code, 500);
	assert_string_equal(sasl_error_reply(sasl_exchange_error(x))->enhanced,
	    "5.5.6");
	sasl_exchange_free(x);

	x = sasl_exchange_new();
	assert_int_equal(sasl_exchange_start(x, "LOGIN", NULL),
	    SASL_STATUS_CHALLENGE);
	assert_int_equal(sasl_exchange_step(x, big, SASL_RESPONSE_MAX + 1),
	    SASL_STATUS_ERROR);
	assert_int_equal(sasl_exchange_error(x), SASL_ERR_TOO_LONG);
	assert_false(sasl_error_is_failure(SASL_ERR_TOO_LONG));
	sasl_exchange_free(x);
	free(big);
	free(enc);

	/* Valid base64 of 12292 octets: still too long. */
	enc = plain_of_b64_len(SASL_RESPONSE_MAX + 4);
	x = sasl_exchange_new();
	assert_int_equal(sasl_exchange_start(x, "PLAIN", NULL),
	    SASL_STATUS_CHALLENGE);
	assert_int_equal(sasl_exchange_step(x, enc, strlen(enc)),
	    SASL_STATUS_ERROR);
	assert_int_equal(sasl_exchange_error(x), SASL_ERR_TOO_LONG);
	sasl_exchange_free(x);
	free(enc);
}

/* Every error has a reply whose class matches (RFC 3463 2). */
static void
test_reply_table(void **state)
{
	static const struct {
		enum sasl_error err;
		const char *line;
	} want[] = {
		{ SASL_ERR_SYNTAX, "501 5.5.4" },
		{ SASL_ERR_UNKNOWN_MECH, "504 5.5.4" },
		{ SASL_ERR_BAD_BASE64, "501 5.5.2" },
		{ SASL_ERR_CANCELLED, "501 5.0.0" },
		{ SASL_ERR_TOO_LONG, "500 5.5.6" },
		{ SASL_ERR_BAD_CREDENTIALS, "535 5.7.8" },
	};
	char got[32];
	size_t i;

	(void)state;
	assert_int_equal(sizeof(want) / sizeof(want[0]), SASL_ERR_MAX - 1);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct sasl_reply *r = sasl_error_reply(want[i].err);

		snprintf(got, sizeof(got), "%d %s", r->code, r->enhanced);
		if (strcmp(got, want[i].line) != 0)
			fail_msg("error %d: got %s, want %s",
			    (int)want[i].err, got, want[i].line);
		assert_true(r->text != NULL && r->text[0] != '\0');
		assert_int_equal(r->enhanced[0] - '0', r->code / 100);
	}
	assert_string_equal(sasl_mechanisms(), "PLAIN LOGIN");
}

/* ---- base64 ---- */

static void
test_base64_rfc4648_vectors(void **state)
{
	static const struct {
		const char *raw;
		const char *enc;
	} v[] = {
		{ "", "" },
		{ "f", "Zg==" },
		{ "fo", "Zm8=" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	unsigned char out[16];
	char enc[16];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		size_t len = strlen(v[i].enc);

		if (base64_decode(v[i].enc, len, BASE64_CANONICAL,
		    out, BASE64_DECODED_MAX(len), &n, NULL) != 0)
			fail_msg("decode \"%s\": refused", v[i].enc);
		if (n != strlen(v[i].raw) || memcmp(out, v[i].raw, n) != 0)
			fail_msg("decode \"%s\": got \"%s\", want \"%s\"",
			    v[i].enc, test_escn((char *)out, n), v[i].raw);
		assert_int_equal(base64_encode(
		    (const unsigned char *)v[i].raw, strlen(v[i].raw), enc,
		    sizeof(enc)), (int)len);
		assert_string_equal(enc, v[i].enc);
	}
	/* All 256 byte values survive a round trip. */
	{
		unsigned char all[256], back[BASE64_DECODED_MAX(344)];
		char text[BASE64_ENCODED_SIZE(256)];
		char *mine;

		for (i = 0; i < 256; i++)
			all[i] = (unsigned char)i;
		assert_int_equal(base64_encode(all, 256, text,
		    sizeof(text)), 344);
		mine = b64((const char *)all, 256);
		assert_string_equal(text, mine);
		free(mine);
		assert_int_equal(base64_decode(text, 344, BASE64_CANONICAL,
		    back, sizeof(back), &n, NULL), 0);
		assert_int_equal(n, 256);
		assert_memory_equal(all, back, 256);
	}
}

static void
test_base64_rejects(void **state)
{
	static const struct {
		const char *in;
		size_t len;
	} bad[] = {
#define B(s) { s, sizeof(s) - 1 }
		B("Zg="), B("Zg"), B("Z"), B("Zm9vY"),
		B("Zh=="),		/* pad bits 0001 */
		B("Zm9="),		/* pad bits 01 */
		B("Z==="), B("===="), B("=Zg="),
		B("Zg==Zg=="),		/* padding in the middle */
		B(" Zg="), B("Zg==\n"), B("Zg== "), B("Zm9v\r\n"),
		B("Zm9\0"), B("Zm-_"), B("Zm.v"), B("Zm9v\xc3\xa4Zm"),
#undef B
	};
	unsigned char out[64];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (base64_decode(bad[i].in, bad[i].len,
		    BASE64_CANONICAL, out, sizeof(out), &n, NULL) != -1)
			fail_msg("\"%s\": accepted, want refused",
			    test_escn(bad[i].in, bad[i].len));
	/* An output buffer one byte short is refused, not overrun. */
	assert_int_equal(base64_decode("Zm9v", 4, BASE64_CANONICAL, out, 2,
	    &n, NULL), -1);
	assert_int_equal(base64_encode((const unsigned char *)"foo", 3,
	    (char *)out, 4), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exchange_table),
		cmocka_unit_test(test_start_args_syntax),
		cmocka_unit_test(test_start_without_args_helper),
		cmocka_unit_test(test_12288_boundary),
		cmocka_unit_test(test_reply_table),
		cmocka_unit_test(test_base64_rfc4648_vectors),
		cmocka_unit_test(test_base64_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
