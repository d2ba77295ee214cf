/*
 * test_smtp_metrics.c: every SMTP reply of 400 and up counts under a
 * reason of petrel_smtp_rejections_total (a new reply must be sorted in
 * src/smtp/metrics.c), no success counts as a refusal, and the hooks
 * move exactly the series they name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/metrics.h"
#include "smtp/metrics.h"
#include "smtp/reply.h"

static struct metric *
find(const char *name)
{
	struct metric *const *list;
	size_t i, n;

	list = smtp_metrics_list(&n);
	for (i = 0; i < n; i++)
		if (strcmp(list[i]->name, name) == 0)
			return list[i];
	fail_msg("no metric %s", name);
	return NULL;
}

static void
test_every_refusal_has_a_reason(void **state)
{
	int id;

	(void)state;
	for (id = REPLY_NONE + 1; id < REPLY_MAX; id++) {
		const struct reply *r = reply_get((enum reply_id)id);
		enum smtp_metrics_reason why =
		    smtp_metrics_reason((enum reply_id)id);

		if (r->code >= 400 && why == SMTP_REASON_NONE)
			fail_msg("reply %d (%d %s, %s): no reason: sort it in "
			    "src/smtp/metrics.c", id, r->code,
			    r->enhanced != NULL ? r->enhanced : "",
			    r->when != NULL ? r->when : "");
		if (r->code < 400 && why != SMTP_REASON_NONE)
			fail_msg("reply %d (%d): a success counted as a "
			    "refusal (%s)", id, r->code,
			    smtp_metrics_reason_name(why));
	}
	assert_int_equal(smtp_metrics_reason(REPLY_RELAY_DENIED),
	    SMTP_REASON_RELAY_DENIED);
	assert_string_equal(smtp_metrics_reason_name(SMTP_REASON_RELAY_DENIED),
	    "relay_denied");
	assert_null(smtp_metrics_reason_name(SMTP_REASON_NONE));
	assert_null(smtp_metrics_reason_name(SMTP_REASON_MAX));
}

static void
test_definitions(void **state)
{
	struct metric *const *list;
	const char *error;
	size_t i, n;

	(void)state;
	list = smtp_metrics_list(&n);
	assert_true(n > 0);
	for (i = 0; i < n; i++)
		if (!metrics_check(list[i], &error))
			fail_msg("%s: %s", list[i]->name, error);
}

static void
test_hooks(void **state)
{
	struct metric *conn = find("petrel_smtp_connections_total");
	struct metric *msgs = find("petrel_smtp_messages_received_total");
	struct metric *rej = find("petrel_smtp_rejections_total");
	struct metric *auth = find("petrel_smtp_auth_total");
	struct metric *tls = find("petrel_smtp_tls_handshakes_total");

	(void)state;
	smtp_metrics_connection(CONF_ROLE_SUBMISSION);
	smtp_metrics_connection(CONF_ROLE_LOCAL);
	assert_int_equal(metrics_get(conn, CONF_ROLE_MX), 0);
	assert_int_equal(metrics_get(conn, CONF_ROLE_SUBMISSION), 1);
	assert_int_equal(metrics_get(conn, CONF_ROLE_LOCAL), 1);
	smtp_metrics_reply(CONF_ROLE_MX, REPLY_QUEUED);
	smtp_metrics_reply(CONF_ROLE_MX, REPLY_QUEUED);
	smtp_metrics_reply(CONF_ROLE_MX, REPLY_OK);
	assert_int_equal(metrics_get(msgs, CONF_ROLE_MX), 2);
	smtp_metrics_reply(CONF_ROLE_MX, REPLY_RELAY_DENIED);
	smtp_metrics_reply(CONF_ROLE_MX, REPLY_DMARC_REJECT);
	assert_int_equal(metrics_get(rej, SMTP_REASON_RELAY_DENIED - 1), 1);
	assert_int_equal(metrics_get(rej, SMTP_REASON_DMARC_REJECT - 1), 1);
	assert_int_equal(metrics_get(rej, SMTP_REASON_SIZE - 1), 0);
	smtp_metrics_reply(CONF_ROLE_SUBMISSION, REPLY_AUTH_OK);
	smtp_metrics_auth_failed();
	smtp_metrics_auth_failed();
	assert_int_equal(metrics_get(auth, 0), 1);
	assert_int_equal(metrics_get(auth, 1), 2);
	smtp_metrics_tls(true);
	smtp_metrics_tls(false);
	assert_int_equal(metrics_get(tls, 0), 1);
	assert_int_equal(metrics_get(tls, 1), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_refusal_has_a_reason),
		cmocka_unit_test(test_definitions),
		cmocka_unit_test(test_hooks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
