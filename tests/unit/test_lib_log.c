/*
 * test_lib_log.c: log_escape() and log_escape_word(), which make client
 * text safe for a log line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/log.h"

static void
test_escape(void **state)
{
	char out[64];
	const char in[] = "a b\"c\\d\r\n\x01\x7f\xc3\xa9";

	(void)state;
	assert_string_equal(log_escape(out, sizeof(out), in, sizeof(in) - 1),
	    "a b\\x22c\\x5cd\\x0d\\x0a\\x01\\x7f\\xc3\\xa9");
	assert_string_equal(log_escape_word(out, sizeof(out), in,
	    sizeof(in) - 1),
	    "a\\x20b\\x22c\\x5cd\\x0d\\x0a\\x01\\x7f\\xc3\\xa9");
	/* A NUL inside is escaped, not an end. */
	assert_string_equal(log_escape_word(out, sizeof(out), "x\0y", 3),
	    "x\\x00y");
}

/* A login name cannot make the line look like more key=value fields. */
static void
test_word_has_no_space(void **state)
{
	const char in[] = "x session=1 smtp: auth failed client=192.0.2.9";
	char out[128];

	(void)state;
	log_escape_word(out, sizeof(out), in, strlen(in));
	assert_null(strchr(out, ' '));
	assert_string_equal(out, "x\\x20session=1\\x20smtp:\\x20auth\\x20"
	    "failed\\x20client=192.0.2.9");
}

/* Too long: cut with "...", never past the buffer, always terminated. */
static void
test_truncation(void **state)
{
	char out[12], big[100];
	size_t size;

	(void)state;
	memset(big, ' ', sizeof(big));
	for (size = 4; size <= sizeof(out); size++) {
		memset(out, 'Z', sizeof(out));
		log_escape_word(out, size, big, sizeof(big));
		assert_true(strlen(out) < size);
		assert_non_null(strstr(out, "..."));
	}
	assert_string_equal(log_escape(out, sizeof(out), "abc", 3), "abc");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_word_has_no_space),
		cmocka_unit_test(test_truncation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
