/*
 * test_daemon_metrics.c: the whole exposition the endpoint serves
 * (src/daemon/metrics_http.c): every metric of every module is well
 * defined, appears once with one HELP and one TYPE line, names are
 * unique; and which addresses count as loopback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "daemon/metrics_http.h"
#include "lib/buf.h"

static void
test_all_defined(void **state)
{
	const char *name = NULL, *error = NULL;

	(void)state;
	if (!metrics_http_check_all(&name, &error))
		fail_msg("%s: %s", name, error);
}

static void
test_exposition(void **state)
{
	struct buf b;
	char names[64][128];
	size_t n = 0, i;
	const char *p, *want[] = {
		"petrel_smtp_connections_total",
		"petrel_smtp_messages_received_total",
		"petrel_smtp_rejections_total",
		"petrel_recipients_delivered_total",
		"petrel_recipients_deferred_total",
		"petrel_recipients_bounced_total",
		"petrel_queue_messages",
		"petrel_queue_recipients",
		"petrel_queue_oldest_message_age_seconds",
		"petrel_delivery_latency_seconds",
		"petrel_smtp_tls_handshakes_total",
		"petrel_spf_results_total",
		"petrel_dkim_results_total",
		"petrel_dmarc_results_total",
		"petrel_spool_fsyncs_total",
		"petrel_smtp_auth_total",
	};

	(void)state;
	buf_init(&b, 1 << 20);
	assert_int_equal(metrics_http_format(&b, NULL), 0);
	for (p = buf_str(&b); (p = strstr(p, "# TYPE ")) != NULL; p++) {
		size_t len = strcspn(p + 7, " ");

		assert_true(len < sizeof(names[0]) && n < 64);
		memcpy(names[n], p + 7, len);
		names[n][len] = '\0';
		for (i = 0; i < n; i++)
			if (strcmp(names[i], names[n]) == 0)
				fail_msg("%s: two TYPE lines", names[n]);
		n++;
	}
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		size_t j;

		for (j = 0; j < n && strcmp(names[j], want[i]) != 0; j++)
			;
		if (j == n)
			fail_msg("%s: not in the exposition", want[i]);
	}
	/* The exposition ends with a newline, every line does. */
	assert_true(b.len > 0 && b.data[b.len - 1] == '\n');
	buf_free(&b);
}

static void
test_loopback(void **state)
{
	const struct {
		const char *addr;
		bool loopback;
	} cases[] = {
		{ "127.0.0.1", true }, { "127.1.2.3", true },
		{ "::1", true }, { "::ffff:127.0.0.1", true },
		{ "0.0.0.0", false }, { "10.0.0.1", false },
		{ "192.168.1.1", false }, { "::", false },
		{ "2001:db8::1", false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct conf_listen l;

		memset(&l, 0, sizeof(l));
		if (strchr(cases[i].addr, ':') != NULL) {
			struct sockaddr_in6 *s6 = (void *)&l.addr;

			s6->sin6_family = AF_INET6;
			assert_int_equal(inet_pton(AF_INET6, cases[i].addr,
			    &s6->sin6_addr), 1);
		} else {
			struct sockaddr_in *s4 = (void *)&l.addr;

			s4->sin_family = AF_INET;
			assert_int_equal(inet_pton(AF_INET, cases[i].addr,
			    &s4->sin_addr), 1);
		}
		if (metrics_http_is_loopback(&l) != cases[i].loopback)
			fail_msg("%s: got %s, want %s", cases[i].addr,
			    cases[i].loopback ? "not loopback" : "loopback",
			    cases[i].loopback ? "loopback" : "not loopback");
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_defined),
		cmocka_unit_test(test_exposition),
		cmocka_unit_test(test_loopback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
