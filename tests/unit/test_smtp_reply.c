/*
 * test_smtp_reply.c: the reply table is complete and self-consistent:
 * every id has a row, codes are valid RFC 5321 codes, the enhanced code's
 * class matches the reply class (RFC 3463 2), texts hold at most one %s.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/reply.h"

static void
test_every_reply_is_consistent(void **state)
{
	int id;

	(void)state;
	for (id = REPLY_NONE + 1; id < REPLY_MAX; id++) {
		const struct reply *r = reply_get((enum reply_id)id);
		const char *p;

		if ((int)r->id != id)
			fail_msg("reply %d: row says id %d", id, (int)r->id);
		if (r->code < 200 || r->code > 599)
			fail_msg("reply %d: got code %d, want 2xx-5xx", id,
			    r->code);
		if (r->enhanced != NULL) {
			if (r->enhanced[0] - '0' != r->code / 100)
				fail_msg("reply %d: got enhanced %s for %d",
				    id, r->enhanced, r->code);
			if (strlen(r->enhanced) < 5 || r->enhanced[1] != '.')
				fail_msg("reply %d: bad enhanced code %s", id,
				    r->enhanced);
		} else if (r->code != 220 && r->code != 250 &&
		    r->code != 354) {
			fail_msg("reply %d: code %d needs an enhanced code",
			    id, r->code);
		}
		p = strstr(r->text, "%");
		if (p != NULL && (p[1] != 's' || strchr(p + 2, '%') != NULL))
			fail_msg("reply %d: text %s: only one %%s allowed", id,
			    r->text);
		if (r->when == NULL || r->when[0] == '\0')
			fail_msg("reply %d: no trigger documented", id);
	}
}

static void
test_closing_replies(void **state)
{
	(void)state;
	assert_true(reply_closes(REPLY_TOO_MANY_ERRORS));
	assert_true(reply_closes(REPLY_SHUTDOWN));
	assert_true(reply_closes(REPLY_TIMEOUT));
	assert_true(reply_closes(REPLY_EARLY_TALKER));
	assert_true(reply_closes(REPLY_UNAUTH_PIPELINING));
	/* RFC 3030: where an unparsable BDAT's octets end is unknown */
	assert_true(reply_closes(REPLY_BDAT_SYNTAX));
	assert_false(reply_closes(REPLY_SYNTAX));
	assert_false(reply_closes(REPLY_BDAT_DISCARDED));
	assert_false(reply_closes(REPLY_BDAT_OK));
	assert_false(reply_closes(REPLY_SPOOL_ERROR));
	assert_false(reply_closes(REPLY_QUEUED));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_reply_is_consistent),
		cmocka_unit_test(test_closing_replies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
