/*
 * test_lib_utf8.c: utf8_seq_len() accepts exactly the well-formed
 * sequences of RFC 3629 4 (Table 3-7 of Unicode), byte table by table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lib/utf8.h"

static const struct {
	const char *s;
	size_t want;
} cases[] = {
	{ "a", 0 },			/* ASCII is not a non-ASCII sequence */
	{ "", 0 },
	{ "\xc3\xa9", 2 },		/* é */
	{ "\xc2\x80", 2 },		/* U+0080, the smallest */
	{ "\xc1\xbf", 0 },		/* overlong */
	{ "\xc0\xaf", 0 },		/* overlong '/' */
	{ "\xe2\x82\xac", 3 },		/* € */
	{ "\xe0\xa0\x80", 3 },		/* U+0800 */
	{ "\xe0\x9f\xbf", 0 },		/* overlong */
	{ "\xed\x9f\xbf", 3 },		/* U+D7FF */
	{ "\xed\xa0\x80", 0 },		/* surrogate U+D800 */
	{ "\xef\xbf\xbf", 3 },		/* U+FFFF */
	{ "\xf0\x9f\x90\xa6", 4 },	/* 🐦 */
	{ "\xf0\x8f\xbf\xbf", 0 },	/* overlong */
	{ "\xf4\x8f\xbf\xbf", 4 },	/* U+10FFFF, the largest */
	{ "\xf4\x90\x80\x80", 0 },	/* above U+10FFFF */
	{ "\xf5\x80\x80\x80", 0 },
	{ "\xc3", 0 },			/* truncated at the NUL */
	{ "\xe2\x82", 0 },
	{ "\xf0\x9f\x90", 0 },
	{ "\xe2\x28\xa1", 0 },		/* bad continuation */
	{ "\x80", 0 },			/* a lone continuation byte */
	{ "\xff", 0 },
};

static void
test_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t got = utf8_seq_len(cases[i].s);

		if (got != cases[i].want)
			fail_msg("case %zu: got %zu, want %zu", i, got,
			    cases[i].want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
