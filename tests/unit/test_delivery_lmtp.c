/*
 * test_delivery_lmtp.c: `deliver maildir|lmtp TARGET` (src/conf, issue 6)
 * and the pieces of src/delivery/lmtp.c: which recipients go through the
 * client, the RCPT TO form of a local address, and check-config's look
 * at the target (a socket that is there, one that is not, a file that is
 * no socket, a TCP port nobody listens on).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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
#include "delivery/lmtp.h"
#include "lib/util.h"
#include "queue/envelope.h"
#include "testutil.h"

#define A10	"aaaaaaaaaa"
#define A80	A10 A10 A10 A10 A10 A10 A10 A10
#define A100	A80 A10 A10

struct errors {
	char msg[8][512];
	size_t n;
};

static void
collect(void *arg, const char *msg)
{
	struct errors *e = arg;

	if (e->n < 8)
		strlcpy(e->msg[e->n], msg, sizeof(e->msg[0]));
	e->n++;
}

/* Load text as a configuration file; errors (without "FILE:") in e. */
static struct conf *
load(const char *text, struct errors *e)
{
	char path[] = "/tmp/petrel-test-lmtp-XXXXXX";
	struct conf *c;
	size_t i, plen;
	FILE *fp;
	int fd;

	fd = mkstemp(path);
	assert_true(fd != -1);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
	memset(e, 0, sizeof(*e));
	c = conf_load(path, collect, e);
	unlink(path);
	plen = strlen(path);
	for (i = 0; i < e->n && i < 8; i++)
		if (strncmp(e->msg[i], path, plen) == 0)
			memmove(e->msg[i], e->msg[i] + plen + 1,
			    strlen(e->msg[i] + plen + 1) + 1);
	return c;
}

static void
test_deliver_directive(void **state)
{
	static const struct {
		const char *text;
		const char *error;	/* NULL: valid */
		enum conf_route_kind kind;
		const char *path, *host;
		unsigned int port;
	} cases[] = {
		{ "", NULL, 0, NULL, NULL, 0 },
		{ "deliver maildir\n", NULL, 0, NULL, NULL, 0 },
		{ "deliver lmtp unix:/run/dovecot/lmtp\n", NULL,
		    CONF_ROUTE_LMTP_UNIX, "/run/dovecot/lmtp", NULL, 0 },
		{ "deliver lmtp inet:127.0.0.1:24\n", NULL,
		    CONF_ROUTE_LMTP_INET, NULL, "127.0.0.1", 24 },
		{ "deliver lmtp inet:[::1]:2424\n", NULL,
		    CONF_ROUTE_LMTP_INET, NULL, "::1", 2424 },
		{ "deliver lmtp inet:Dovecot.Example.Test:24\n", NULL,
		    CONF_ROUTE_LMTP_INET, NULL, "dovecot.example.test", 24 },
		/* the last line wins, as for every single directive */
		{ "deliver lmtp unix:/x\ndeliver maildir\n",
		    "2: duplicate directive \"deliver\" (first on line 1)",
		    0, NULL, NULL, 0 },
		{ "deliver\n", "1: deliver: missing value",
		    0, NULL, NULL, 0 },
		{ "deliver mbox\n", "1: deliver: expected \"maildir\", \"lmtp "
		    "unix:/PATH\" or \"lmtp inet:HOST:PORT\"", 0, NULL, NULL,
		    0 },
		{ "deliver lmtp\n", "1: deliver: expected \"maildir\", \"lmtp "
		    "unix:/PATH\" or \"lmtp inet:HOST:PORT\"", 0, NULL, NULL,
		    0 },
		{ "deliver maildir /var/mail\n", "1: deliver: expected "
		    "\"maildir\", \"lmtp unix:/PATH\" or \"lmtp "
		    "inet:HOST:PORT\"", 0, NULL, NULL, 0 },
		{ "deliver lmtp tcp:127.0.0.1:24\n", "1: deliver: bad LMTP "
		    "target \"tcp:127.0.0.1:24\": expected unix:/PATH or "
		    "inet:HOST:PORT", 0, NULL, NULL, 0 },
		{ "deliver lmtp lmtp:unix:/run/dovecot/lmtp\n", "1: deliver: "
		    "bad LMTP target \"lmtp:unix:/run/dovecot/lmtp\": expected "
		    "unix:/PATH or inet:HOST:PORT", 0, NULL, NULL, 0 },
		{ "deliver lmtp unix:run/dovecot/lmtp\n", "1: deliver: bad "
		    "LMTP target \"unix:run/dovecot/lmtp\": lmtp:unix: needs "
		    "an absolute socket path", 0, NULL, NULL, 0 },
		{ "deliver lmtp inet:127.0.0.1\n", "1: deliver: bad LMTP "
		    "target \"inet:127.0.0.1\": lmtp:inet: needs a port, as in "
		    "lmtp:inet:127.0.0.1:24", 0, NULL, NULL, 0 },
		{ "deliver lmtp inet:127.0.0.1:0\n", "1: deliver: bad LMTP "
		    "target \"inet:127.0.0.1:0\": invalid port (1-65535)", 0,
		    NULL, NULL, 0 },
		/* 108 octets and more do not fit sun_path; the value is
		 * quoted shortened */
		{ "deliver lmtp unix:/" A100 A10 "\n", "1: deliver: bad LMTP "
		    "target \"unix:/" A80 "aaaaaa...\": socket path too "
		    "long", 0, NULL, NULL, 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct errors e;
		struct conf *c = load(cases[i].text, &e);

		if (cases[i].error != NULL) {
			if (c != NULL || e.n != 1 ||
			    strcmp(e.msg[0], cases[i].error) != 0)
				fail_msg("case %zu %s: got %zu errors, first "
				    "\"%s\", want \"%s\"", i,
				    test_esc(cases[i].text), e.n,
				    e.n > 0 ? e.msg[0] : "", cases[i].error);
			continue;
		}
		if (c == NULL)
			fail_msg("case %zu %s: got error \"%s\", want valid", i,
			    test_esc(cases[i].text), e.msg[0]);
		if (cases[i].path == NULL && cases[i].host == NULL) {
			assert_null(c->deliver_lmtp);
			conf_free(c);
			continue;
		}
		assert_non_null(c->deliver_lmtp);
		assert_int_equal(c->deliver_lmtp->kind, cases[i].kind);
		if (cases[i].path != NULL)
			assert_string_equal(c->deliver_lmtp->path,
			    cases[i].path);
		if (cases[i].host != NULL) {
			assert_string_equal(c->deliver_lmtp->host,
			    cases[i].host);
			assert_int_equal(c->deliver_lmtp->port, cases[i].port);
		}
		conf_free(c);
	}
}

static void
test_via_client(void **state)
{
	struct envelope_rcpt local, remote;
	struct errors e;
	struct conf *mdir, *lmtp;

	(void)state;
	memset(&local, 0, sizeof(local));
	memset(&remote, 0, sizeof(remote));
	local.kind = RCPT_KIND_LOCAL;
	remote.kind = RCPT_KIND_REMOTE;
	mdir = load("deliver maildir\n", &e);
	lmtp = load("deliver lmtp unix:/run/dovecot/lmtp\n", &e);
	assert_non_null(mdir);
	assert_non_null(lmtp);
	assert_false(lmtp_via_client(mdir, &local));
	assert_true(lmtp_via_client(mdir, &remote));
	assert_true(lmtp_via_client(lmtp, &local));
	assert_true(lmtp_via_client(lmtp, &remote));
	conf_free(mdir);
	conf_free(lmtp);
}

static void
test_rcpt_addr(void **state)
{
	static const struct {
		const char *in, *want;	/* want NULL: used as it is */
	} cases[] = {
		{ "alice@example.test", NULL },
		{ "first.last+tag@example.test", NULL },
		{ "j\xc3\xb6rg@example.test", NULL },	/* UTF-8 atext */
		{ "john smith@example.test", "\"john smith\"@example.test" },
		{ ".alice@example.test", "\".alice\"@example.test" },
		{ "a..b@example.test", "\"a..b\"@example.test" },
		{ "say\"hi\\@example.test", "\"say\\\"hi\\\\\"@example.test" },
		{ "a@b@example.test", "\"a@b\"@example.test" },
		{ "postmaster", NULL },		/* no domain: left alone */
		{ "@example.test", NULL },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = lmtp_rcpt_addr(cases[i].in);

		if (cases[i].want == NULL && got != NULL)
			fail_msg("%s: got %s, want unchanged",
			    test_esc(cases[i].in), test_esc(got));
		if (cases[i].want != NULL && (got == NULL ||
		    strcmp(got, cases[i].want) != 0))
			fail_msg("%s: got %s, want %s", test_esc(cases[i].in),
			    got != NULL ? test_esc(got) : "NULL",
			    test_esc(cases[i].want));
		free(got);
	}
}

static enum lmtp_check
check_text(const char *text, char *msg, size_t msgsize)
{
	struct errors e;
	struct conf *c = load(text, &e);
	enum lmtp_check r;

	if (c == NULL)
		fail_msg("%s: %s", test_esc(text), e.msg[0]);
	r = lmtp_check_target(c, msg, msgsize);
	conf_free(c);
	return r;
}

static void
test_check_target(void **state)
{
	char dir[] = "/tmp/petrel-test-lmtp-dir-XXXXXX";
	char sock[128], file[128], text[300], msg[512];
	struct sockaddr_un sun;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	int lfd, tfd;
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/lmtp", dir);
	snprintf(file, sizeof(file), "%s/file", dir);

	/* maildir: nothing to check, nothing said */
	assert_int_equal(check_text("deliver maildir\n", msg, sizeof(msg)),
	    LMTP_CHECK_OK);
	assert_string_equal(msg, "");

	/* no socket yet: a warning (Dovecot may start later) */
	snprintf(text, sizeof(text), "deliver lmtp unix:%s\n", sock);
	assert_int_equal(check_text(text, msg, sizeof(msg)), LMTP_CHECK_WARN);
	{
		char *want = xasprintf("deliver lmtp unix:%s: No such file or "
		    "directory (is the LMTP server running? mail waits in the "
		    "queue until it is)", sock);

		assert_string_equal(msg, want);
		free(want);
	}

	/* a listening socket: fine */
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(lfd != -1);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, sock, sizeof(sun.sun_path));
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(check_text(text, msg, sizeof(msg)), LMTP_CHECK_OK);
	assert_string_equal(msg, "");

	/* a socket nobody listens on any more: a warning */
	close(lfd);
	assert_int_equal(check_text(text, msg, sizeof(msg)), LMTP_CHECK_WARN);
	assert_non_null(strstr(msg, "cannot connect: Connection refused"));
	unlink(sock);

	/* a file that is not a socket: an error */
	fp = fopen(file, "w");
	assert_non_null(fp);
	fclose(fp);
	snprintf(text, sizeof(text), "deliver lmtp unix:%s\n", file);
	assert_int_equal(check_text(text, msg, sizeof(msg)),
	    LMTP_CHECK_ERROR);
	{
		char *want = xasprintf("deliver lmtp unix:%s: not a socket",
		    file);

		assert_string_equal(msg, want);
		free(want);
	}
	unlink(file);

	/* inet: a port that listens, then the same port closed */
	tfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(tfd != -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(tfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(tfd, 4), 0);
	assert_int_equal(getsockname(tfd, (struct sockaddr *)&sin, &slen), 0);
	snprintf(text, sizeof(text), "deliver lmtp inet:127.0.0.1:%u\n",
	    (unsigned int)ntohs(sin.sin_port));
	assert_int_equal(check_text(text, msg, sizeof(msg)), LMTP_CHECK_OK);
	close(tfd);
	assert_int_equal(check_text(text, msg, sizeof(msg)), LMTP_CHECK_WARN);
	{
		char *want = xasprintf("deliver lmtp inet:127.0.0.1:%u: cannot "
		    "connect: Connection refused (mail waits in the queue "
		    "until it can)", (unsigned int)ntohs(sin.sin_port));

		assert_string_equal(msg, want);
		free(want);
	}
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deliver_directive),
		cmocka_unit_test(test_via_client),
		cmocka_unit_test(test_rcpt_addr),
		cmocka_unit_test(test_check_target),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
