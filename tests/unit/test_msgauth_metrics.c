/*
 * test_msgauth_metrics.c: the SPF, DKIM and DMARC counters use the
 * result names the rest of Petrel prints (spf_result_name,
 * dkim_result_str, dmarc_result_name), and one finished check counts
 * its SPF result, each signature ("none" without any) and DMARC.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/metrics.h"
#include "msgauth/check.h"
#include "msgauth/dkim.h"
#include "msgauth/dmarc.h"
#include "msgauth/metrics.h"
#include "msgauth/spf.h"

static void
test_names(void **state)
{
	int i;

	(void)state;
	for (i = SPF_NONE; i <= SPF_PERMERROR; i++)
		assert_string_equal(msgauth_metrics_spf_values[i],
		    spf_result_name((enum spf_result)i));
	for (i = DKIM_RESULT_NONE; i <= DKIM_RESULT_PERMERROR; i++)
		assert_string_equal(msgauth_metrics_dkim_values[i],
		    dkim_result_str((enum dkim_result)i));
	for (i = DMARC_RESULT_NONE; i <= DMARC_RESULT_PERMERROR; i++)
		assert_string_equal(msgauth_metrics_dmarc_values[i],
		    dmarc_result_name((enum dmarc_result)i));
}

static void
test_count(void **state)
{
	struct metric *const *list;
	struct msgauth_result r;
	struct spf_outcome spf;
	struct msgauth_dkim dkim[2];
	struct dmarc_verdict dm;
	const char *error;
	size_t i, n;

	(void)state;
	list = msgauth_metrics_list(&n);
	assert_int_equal(n, 3);
	for (i = 0; i < n; i++)
		if (!metrics_check(list[i], &error))
			fail_msg("%s: %s", list[i]->name, error);
	memset(&r, 0, sizeof(r));
	memset(&spf, 0, sizeof(spf));
	memset(dkim, 0, sizeof(dkim));
	memset(&dm, 0, sizeof(dm));
	spf.result = SPF_SOFTFAIL;
	dm.result = DMARC_RESULT_FAIL;
	r.spf = &spf;
	r.dmarc = &dm;
	msgauth_metrics_count(&r);		/* no signature: dkim none */
	dkim[0].result = DKIM_RESULT_PASS;
	dkim[1].result = DKIM_RESULT_FAIL;
	r.dkim = dkim;
	r.ndkim = 2;
	msgauth_metrics_count(&r);
	assert_int_equal(metrics_get(list[0], SPF_SOFTFAIL), 2);
	assert_int_equal(metrics_get(list[0], SPF_PASS), 0);
	assert_int_equal(metrics_get(list[1], DKIM_RESULT_NONE), 1);
	assert_int_equal(metrics_get(list[1], DKIM_RESULT_PASS), 1);
	assert_int_equal(metrics_get(list[1], DKIM_RESULT_FAIL), 1);
	assert_int_equal(metrics_get(list[2], DMARC_RESULT_FAIL), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
