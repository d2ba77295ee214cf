/*
 * test_lib_strset.c: the string set finds what was added, only that, and
 * keeps doing so across growth.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "lib/strset.h"

static void
test_add_and_has(void **state)
{
	struct strset s;
	char key[32];
	int i;

	(void)state;
	strset_init(&s);
	assert_false(strset_has(&s, "a"));
	for (i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "user%d@example.test", i);
		if (!strset_add(&s, key))
			fail_msg("add %s: got duplicate, want new", key);
	}
	assert_int_equal(s.len, 10000);
	for (i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "user%d@example.test", i);
		assert_true(strset_has(&s, key));
		if (strset_add(&s, key))
			fail_msg("re-add %s: got new, want duplicate", key);
	}
	/* Case matters: remote local parts are case-sensitive. */
	assert_false(strset_has(&s, "USER1@example.test"));
	assert_false(strset_has(&s, "user10000@example.test"));
	assert_false(strset_has(&s, ""));
	assert_true(strset_add(&s, ""));
	assert_true(strset_has(&s, ""));
	strset_free(&s);
	assert_false(strset_has(&s, "user1@example.test"));
	strset_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_and_has),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
