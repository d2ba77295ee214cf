/*
 * test_lib_base64.c: the flags of base64_decode(): folding white space
 * only with BASE64_FWS, non-canonical padding bits only without
 * BASE64_CANONICAL; and the buffer checks. (The alphabet, padding and
 * round trips are covered through their users in test_sasl.c and
 * test_msgauth_b64.c.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/base64.h"

static int
dec(const char *in, unsigned int flags, char *out, size_t *n,
    const char **why)
{
	return base64_decode(in, strlen(in), flags, (unsigned char *)out,
	    BASE64_DECODED_MAX(strlen(in)), n, why);
}

static void
test_flags(void **state)
{
	char out[64];
	const char *why = NULL;
	size_t n;

	(void)state;
	/* White space: an error unless BASE64_FWS. */
	assert_int_equal(dec("Zm9v\r\n YmFy", 0, out, &n, &why), -1);
	assert_string_equal(why, "invalid character");
	assert_int_equal(dec("Zm9v\r\n YmFy", BASE64_FWS, out, &n, &why), 0);
	assert_int_equal(n, 6);
	assert_memory_equal(out, "foobar", 6);
	assert_int_equal(dec(" Z g = = ", BASE64_FWS, out, &n, &why), 0);
	assert_int_equal(n, 1);
	assert_int_equal(out[0], 'f');
	/* "Zh==" has a 1 bit under the padding: the same octet as "Zg==". */
	assert_int_equal(dec("Zh==", 0, out, &n, &why), 0);
	assert_int_equal(n, 1);
	assert_int_equal(out[0], 'f');
	assert_int_equal(dec("Zh==", BASE64_CANONICAL, out, &n, &why), -1);
	assert_string_equal(why, "non-canonical padding bits");
	assert_int_equal(dec("Zm9=", BASE64_CANONICAL | BASE64_FWS, out, &n,
	    &why), -1);
	assert_int_equal(dec("Zm8=", BASE64_CANONICAL | BASE64_FWS, out, &n,
	    &why), 0);
	/* Padding rules hold with FWS too. */
	assert_int_equal(dec("Zg= =Zg==", BASE64_FWS, out, &n, &why), -1);
	assert_string_equal(why, "bad padding");
	assert_int_equal(dec("Zg=", BASE64_FWS, out, &n, &why), -1);
	assert_int_equal(dec("Zm9vY", BASE64_FWS, out, &n, &why), -1);
	assert_string_equal(why, "truncated");
	assert_int_equal(dec("", 0, out, &n, &why), 0);
	assert_int_equal(n, 0);
	assert_int_equal(dec("  \r\n", BASE64_FWS, out, &n, &why), 0);
	assert_int_equal(n, 0);
}

static void
test_buffers(void **state)
{
	unsigned char out[8];
	char text[8];
	const char *why = NULL;
	size_t n;

	(void)state;
	/* The output size is checked before anything is written. */
	memset(out, 0xaa, sizeof(out));
	assert_int_equal(base64_decode("Zm9v", 4, 0, out, 5, &n, &why), -1);
	assert_string_equal(why, "output buffer too small");
	assert_int_equal(out[0], 0xaa);
	assert_int_equal(base64_decode("Zm9v", 4, 0, out, 6, &n, NULL), 0);
	assert_int_equal(base64_encode((const unsigned char *)"foo", 3, text,
	    4), -1);
	assert_int_equal(base64_encode((const unsigned char *)"foo", 3, text,
	    5), 4);
	assert_string_equal(text, "Zm9v");
	assert_int_equal(base64_encode((const unsigned char *)"", 0, text, 1),
	    0);
	assert_string_equal(text, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_buffers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
