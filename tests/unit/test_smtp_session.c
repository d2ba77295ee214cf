/*
 * test_smtp_session.c: whole SMTP sessions (src/smtp/session.c) over a
 * socketpair(), with the real spool in a temporary directory, for the
 * cases tests/fuzz/fuzz_session.c found (issue 8). Each case writes its
 * pieces one after the other, letting the loop and the spool settle in
 * between, then shuts down the client's sending side; it checks the
 * replies and that the session ended by itself.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "conf/conf.h"
#include "lib/log.h"
#include "policy/policy.h"
#include "queue/spool.h"
#include "smtp/reply.h"
#include "smtp/smtp.h"
#include "smtp/smtp_private.h"

#include "testutil.h"

#define OUT_MAX		65536

struct fixture {
	char dir[64];
	char spool[96];
	struct event_base *base;
	struct spool *sp;
	struct smtp_server *srv;
	struct smtp_runtime *rt;
	struct conf_listen listen[2];	/* mx, submission */
	unsigned int queued;
	int fd;
	bool eof;
	char out[OUT_MAX];
	size_t outlen;
};

static void
write_file(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void
conf_error(void *arg, const char *msg)
{
	(void)arg;
	fail_msg("config: %s", msg);
}

static void
queued_cb(void *arg, const char *id, const struct envelope *env)
{
	struct fixture *fx = arg;

	(void)id;
	(void)env;
	fx->queued++;
}

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct conf *c;
	struct policy_tables *t;
	char text[1024], path[128];
	const char *error;
	size_t i;

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/petrel-test-session.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->spool, sizeof(fx->spool), "%s/spool", fx->dir);
	write_file(fx->dir, "users", "bob@example.test:\n");
	snprintf(text, sizeof(text),
	    "hostname mx.example.test\n"
	    "spool %s\n"
	    "run_dir %s\n"
	    "listen 127.0.0.1:2525 mx\n"
	    "listen 127.0.0.1:2587 submission\n"
	    "domain example.test\n"
	    "users %s/users\n"
	    "greeting_delay 0\n"
	    "auth_plaintext on\n"
	    "msgauth no\n", fx->spool, fx->dir, fx->dir);
	write_file(fx->dir, "petrel.conf", text);
	snprintf(path, sizeof(path), "%s/petrel.conf", fx->dir);
	c = conf_load(path, conf_error, NULL);
	assert_non_null(c);
	t = policy_tables_load(c, conf_error, NULL);
	assert_non_null(t);
	for (i = 0; i < c->nlisten && i < 2; i++)
		fx->listen[c->listen[i].role == CONF_ROLE_SUBMISSION] =
		    c->listen[i];
	fx->rt = smtp_runtime_new(c, t);
	fx->base = event_base_new();
	assert_non_null(fx->base);
	fx->sp = spool_open(fx->spool, fx->base, 1, &error);
	assert_non_null(fx->sp);
	fx->srv = smtp_server_new(fx->base, fx->sp, fx->rt, queued_cb, fx);
	*state = fx;
	return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	smtp_server_close_all(fx->srv);
	spool_drain(fx->sp);
	smtp_server_free(fx->srv);
	smtp_runtime_unref(fx->rt);
	spool_close(fx->sp);
	event_base_free(fx->base);
	assert_int_equal(nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
	free(fx);
	return 0;
}

/* Read the replies written so far. True if anything came. */
static bool
read_replies(struct fixture *fx)
{
	bool got = false;
	ssize_t n;

	while (!fx->eof) {
		n = recv(fx->fd, fx->out + fx->outlen,
		    sizeof(fx->out) - 1 - fx->outlen, 0);
		if (n == 0 || (n < 0 && errno == ECONNRESET)) {
			fx->eof = true;
			return true;
		}
		if (n < 0) {
			assert_true(errno == EAGAIN || errno == EINTR);
			break;
		}
		fx->outlen += (size_t)n;
		fx->out[fx->outlen] = '\0';
		assert_true(fx->outlen < sizeof(fx->out) - 1);
		got = true;
	}
	return got;
}

/* Run the loop and the spool until nothing moves for three passes. */
static void
settle(struct fixture *fx)
{
	unsigned int idle = 0, passes = 0;
	bool moved;

	while (idle < 3) {
		assert_true(++passes < 100000);
		spool_drain(fx->sp);
		event_base_loop(fx->base, EVLOOP_NONBLOCK);
		moved = read_replies(fx);
		if (event_base_get_num_events(fx->base,
		    EVENT_BASE_COUNT_ACTIVE) > 0)
			moved = true;
		idle = moved ? 0 : idle + 1;
	}
}

/*
 * One session from a trusted-nowhere client on listener role: the pieces
 * (NULL-terminated) written one at a time, then the client's EOF.
 */
static void
run_session(struct fixture *fx, int submission, const char *const *pieces)
{
	struct sockaddr_in sin;
	int sv[2];
	size_t i;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "198.51.100.7", &sin.sin_addr);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0, sv), 0);
	fx->fd = sv[1];
	fx->eof = false;
	fx->outlen = 0;
	fx->out[0] = '\0';
	fx->queued = 0;
	smtp_session_start(fx->srv, sv[0], (struct sockaddr *)&sin,
	    sizeof(sin), &fx->listen[submission], REPLY_NONE);
	settle(fx);
	for (i = 0; pieces[i] != NULL; i++) {
		assert_int_equal(send(fx->fd, pieces[i], strlen(pieces[i]),
		    MSG_NOSIGNAL), (ssize_t)strlen(pieces[i]));
		settle(fx);
	}
	shutdown(fx->fd, SHUT_WR);
	settle(fx);
}

static void
end_session(struct fixture *fx)
{
	close(fx->fd);
	fx->fd = -1;
}

/*
 * BDAT 0 LAST as the whole message: an empty header section, which
 * smtp_headers_flush() once walked from a NULL buffer (UBSan: "applying
 * zero offset to null pointer"; fuzz regression session/bdat0_empty_header).
 * The message is queued and acknowledged once.
 */
static void
test_bdat_empty_message(void **state)
{
	struct fixture *fx = *state;
	static const char *const pieces[] = {
		"EHLO client.example\r\n",
		"MAIL FROM:<s@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
		    "BDAT 0 LAST\r\nQUIT\r\n",
		NULL,
	};

	run_session(fx, 0, pieces);
	if (strstr(fx->out, "\r\n250 2.0.0 Ok: queued as ") == NULL ||
	    strstr(fx->out, "\r\n221 2.0.0 Bye\r\n") == NULL)
		fail_msg("got \"%s\", want a queued reply and 221",
		    test_esc(fx->out));
	assert_int_equal(fx->queued, 1);
	assert_true(fx->eof);
	assert_int_equal(smtp_server_sessions(fx->srv), 0);
	end_session(fx);
}

/*
 * A client that half-closes after a command line without its LF: the
 * line can never end, so the session closes at once instead of holding
 * the connection until timeout_command (fuzz regression
 * session/eof_partial_line), in every state that reads commands.
 */
struct partial_case {
	const char *name;
	int submission;
	/* whole lines answered first (EHLO alone: lock-step), then the
	 * line without its LF */
	const char *pieces[4];
	const char *want;	/* the last complete reply line */
};

static const struct partial_case partial_cases[] = {
	{ "INIT", 0, { "EHLO client.example", NULL }, "220 " },
	{ "HELO", 0, { "EHLO c\r\n", "NOOP\r", NULL }, "250 SMTPUTF8" },
	{ "MAIL", 0, { "EHLO c\r\n", "MAIL FROM:<s@remote.test>\r\n",
	    "RCPT TO:<bob@example.test>", NULL }, "250 2.1.0" },
	{ "RCPT", 0, { "EHLO c\r\n", "MAIL FROM:<s@remote.test>\r\n"
	    "RCPT TO:<bob@example.test>\r\n", "DA", NULL }, "250 2.1.5" },
	{ "CHUNKING", 0, { "EHLO c\r\n", "MAIL FROM:<s@remote.test>\r\n"
	    "RCPT TO:<bob@example.test>\r\nBDAT 5\r\nHello", "BDAT 2 LA",
	    NULL }, "250 2.0.0 5 octets" },
	{ "AUTH", 1, { "EHLO c\r\n", "AUTH LOGIN\r\n", "Ym9i", NULL },
	    "334 " },
};

static void
test_eof_partial_line(void **state)
{
	struct fixture *fx = *state;
	const struct partial_case *c;
	const char *last;
	size_t i;

	for (i = 0; i < sizeof(partial_cases) / sizeof(partial_cases[0]);
	    i++) {
		c = &partial_cases[i];
		run_session(fx, c->submission, c->pieces);
		if (smtp_server_sessions(fx->srv) != 0 || !fx->eof)
			fail_msg("%s: got a session still open after the "
			    "client's EOF (replies \"%s\"), want it closed",
			    c->name, test_esc(fx->out));
		/* The reply before the partial line is the last one. */
		last = fx->outlen >= 2 ? fx->out + fx->outlen - 2 : fx->out;
		while (last > fx->out && last[-1] != '\n')
			last--;
		if (strncmp(last, c->want, strlen(c->want)) != 0)
			fail_msg("%s: got last reply \"%s\", want \"%s...\"",
			    c->name, test_esc(last), c->want);
		assert_int_equal(fx->queued, 0);
		end_session(fx);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bdat_empty_message,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_eof_partial_line,
		    setup, teardown),
	};

	log_init("test_smtp_session", LOG_LEVEL_ERR);
	if (evthread_use_pthreads() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
