/*
 * test_msgauth_b64.c: base64 over OpenSSL (src/msgauth/b64.c): RFC 4648 10
 * test vectors both ways, folding white space anywhere, every refusal
 * (alphabet, padding in the middle, too much padding, truncation), and a
 * round trip of random data with random white space, fixed seed.
 * Inputs are exact-size heap copies (ASan sees any read past the end).
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

#include "msgauth/b64.h"

#include "testutil.h"

#define N(a)	(sizeof(a) / sizeof((a)[0]))
#define S(s)	s, sizeof(s) - 1

static void
test_rfc4648_vectors(void **state)
{
	static const struct {
		const char *plain, *b64;
	} v[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	size_t i, outlen;

	(void)state;
	for (i = 0; i < N(v); i++) {
		unsigned char *out;
		const char *err = NULL;
		char *in = test_dup_exact(v[i].b64, strlen(v[i].b64));
		char *enc;

		if (b64_decode(in, strlen(v[i].b64), &out, &outlen, &err) != 0)
			fail_msg("decode %s: %s", v[i].b64, err);
		assert_non_null(out);
		if (outlen != strlen(v[i].plain) ||
		    memcmp(out, v[i].plain, outlen) != 0)
			fail_msg("decode %s: got %s, want %s", v[i].b64,
			    test_escn((char *)out, outlen), v[i].plain);
		free(out);
		free(in);
		enc = b64_encode((const unsigned char *)v[i].plain,
		    strlen(v[i].plain));
		assert_string_equal(enc, v[i].b64);
		free(enc);
	}
}

static void
test_whitespace(void **state)
{
	static const char *const ok[] = {
		" Zm9v YmFy ", "Zm9v\r\n YmFy", "Z\tm 9\rv\nYmFy",
		"Zm9vYg=\r\n =",
		"\r\n\t ", "Zm9vYg= =",
	};
	static const char *const want[] = {
		"foobar", "foobar", "foobar", "foob", "", "foob",
	};
	size_t i, outlen;

	(void)state;
	for (i = 0; i < N(ok); i++) {
		unsigned char *out;
		const char *err = NULL;

		if (b64_decode(ok[i], strlen(ok[i]), &out, &outlen, &err) != 0)
			fail_msg("decode %s: %s", test_esc(ok[i]), err);
		if (outlen != strlen(want[i]) ||
		    memcmp(out, want[i], outlen) != 0)
			fail_msg("decode %s: got %s, want %s", test_esc(ok[i]),
			    test_escn((char *)out, outlen), want[i]);
		free(out);
	}
}

static void
test_refusals(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *err;
	} bad[] = {
		{ S("Zm9"), "truncated" },
		{ S("Z"), "truncated" },
		{ S("Zm9vY"), "truncated" },
		{ S("Zg="), "bad padding" },
		{ S("Zg"), "truncated" },
		{ S("Z==="), "bad padding" },
		{ S("===="), "bad padding" },
		{ S("Zg==Zg=="), "bad padding" },
		{ S("Zm=v"), "bad padding" },
		{ S("Zm9v!"), "invalid character" },
		{ S("Zm9v-_"), "invalid character" },	/* base64url */
		{ S("Zm9v\x80YmFy"), "invalid character" },
		{ S("Zm9v;"), "invalid character" },
		{ S("Zm\0v"), "invalid character" },
		{ S("Zm9v\vYmFy"), "invalid character" }, /* VT is no FWS */
	};
	size_t i, outlen, n;

	(void)state;
	for (i = 0; i < N(bad); i++) {
		unsigned char *out = (unsigned char *)"x";
		const char *err = NULL;
		char *in;

		n = bad[i].len;
		in = test_dup_exact(bad[i].in, n);
		if (b64_decode(in, n, &out, &outlen, &err) != -1)
			fail_msg("decode %s: accepted", test_escn(in, n));
		assert_null(out);
		assert_int_equal(outlen, 0);
		if (strcmp(err, bad[i].err) != 0)
			fail_msg("decode %s: got \"%s\", want \"%s\"",
			    test_escn(in, n), err, bad[i].err);
		free(in);
	}
}

/* Random data, encoded, sprinkled with FWS, decodes back; fixed seed. */
static void
test_roundtrip(void **state)
{
	static const char ws[] = { ' ', '\t', '\r', '\n' };
	unsigned int seed = 20261129;
	unsigned char data[300], *out;
	size_t round, len, i, k, outlen;

	(void)state;
	for (round = 0; round < 2000; round++) {
		const char *err = NULL;
		char *enc, *spaced;

		len = (size_t)rand_r(&seed) % sizeof(data);
		for (i = 0; i < len; i++)
			data[i] = (unsigned char)rand_r(&seed);
		enc = b64_encode(data, len);
		assert_int_equal(strlen(enc), (len + 2) / 3 * 4);
		spaced = malloc(strlen(enc) * 3 + 1);
		assert_non_null(spaced);
		for (i = 0, k = 0; enc[i] != '\0'; i++) {
			while (rand_r(&seed) % 8 == 0)
				spaced[k++] = ws[rand_r(&seed) % 4];
			spaced[k++] = enc[i];
		}
		if (b64_decode(spaced, k, &out, &outlen, &err) != 0)
			fail_msg("round %zu: %s", round, err);
		assert_int_equal(outlen, len);
		assert_memory_equal(out, data, len);
		assert_true(outlen <= B64_DECODED_MAX(k));
		free(out);
		free(spaced);
		free(enc);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_vectors),
		cmocka_unit_test(test_whitespace),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
