/*
 * test_conf_metrics.c: the `metrics ADDR:PORT` directive (issue 6): off
 * by default, IPv4 and bracketed IPv6 addresses, and a clear error for
 * host names, a missing port, two addresses or a second line.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "lib/util.h"

static void
errors_cb(void *arg, const char *msg)
{
	char *first = arg;

	if (first[0] == '\0')
		strlcpy(first, msg, 512);
}

/* Load text; NULL with the first error in err (512 bytes). */
static struct conf *
load(const char *text, char *err)
{
	const char *tmp = getenv("TMPDIR");
	char path[256];
	struct conf *c;
	int fd;

	err[0] = '\0';
	snprintf(path, sizeof(path), "%s/test_conf_metrics.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	fd = mkstemp(path);
	assert_int_not_equal(fd, -1);
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
	assert_int_equal(close(fd), 0);
	c = conf_load(path, errors_cb, err);
	unlink(path);
	return c;
}

static void
test_off_by_default(void **state)
{
	char err[512];
	struct conf *c;

	(void)state;
	c = load("domain example.test\n", err);
	assert_non_null(c);
	assert_null(c->metrics);
	conf_free(c);
	c = conf_default();
	assert_null(c->metrics);
	conf_free(c);
}

static void
test_addresses(void **state)
{
	const struct {
		const char *arg;
		int family;
		const char *host;
		unsigned int port;
	} cases[] = {
		{ "127.0.0.1:9587", AF_INET, "127.0.0.1", 9587 },
		{ "0.0.0.0:9100", AF_INET, "0.0.0.0", 9100 },
		{ "[::1]:9587", AF_INET6, "::1", 9587 },
	};
	char err[512], *text;
	struct conf *c;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		const struct conf_listen *l;

		text = xasprintf("metrics %s\n", cases[i].arg);
		c = load(text, err);
		if (c == NULL)
			fail_msg("%s: got error \"%s\", want valid",
			    cases[i].arg, err);
		l = c->metrics;
		assert_non_null(l);
		assert_string_equal(l->text, cases[i].arg);
		assert_string_equal(l->host, cases[i].host);
		assert_int_equal(l->port, cases[i].port);
		assert_int_equal(l->addr.ss_family, cases[i].family);
		if (cases[i].family == AF_INET)
			assert_int_equal(ntohs(((const struct sockaddr_in *)
			    (const void *)&l->addr)->sin_port), cases[i].port);
		else
			assert_int_equal(ntohs(((const struct sockaddr_in6 *)
			    (const void *)&l->addr)->sin6_port),
			    cases[i].port);
		conf_free(c);
		free(text);
	}
}

static void
test_errors(void **state)
{
	const struct {
		const char *text;
		const char *want;
	} cases[] = {
		{ "metrics localhost:9587\n", "1: metrics: bad address" },
		{ "metrics 127.0.0.1\n", "1: metrics: bad address" },
		{ "metrics 127.0.0.1:0\n", "1: metrics: bad address" },
		{ "metrics ::1:9587\n", "1: metrics: bad address" },
		{ "metrics\n", "1: metrics:" },
		{ "metrics 127.0.0.1:1 127.0.0.1:2\n", "1: metrics:" },
		{ "metrics 127.0.0.1:1\nmetrics 127.0.0.1:2\n",
		    "2: duplicate directive \"metrics\"" },
	};
	char err[512];
	struct conf *c;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		c = load(cases[i].text, err);
		if (c != NULL)
			fail_msg("%s: got valid, want an error",
			    cases[i].text);
		if (strstr(err, cases[i].want) == NULL)
			fail_msg("%s: got \"%s\", want \"%s\"", cases[i].text,
			    err, cases[i].want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_off_by_default),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
