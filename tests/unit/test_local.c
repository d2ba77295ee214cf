/*
 * test_local.c: local injection's pure parts (src/local/): the sendmail
 * command line, the header rewrite of -t (recipients, Bcc removed, CRLF),
 * the added From:, maildrop envelope lines, and the client's
 * dot-stuffing and line-end conversion.
 */
#include <sys/socket.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "local/local.h"

/* ---- args ---- */

struct args_case {
	const char *argv[20];
	int rc;				/* 0 or -1 */
	enum sendmail_mode mode;
	bool t, i;
	const char *sender;		/* NULL: no -f */
	const char *notify, *ret, *envid, *fullname, *conf;
	size_t nrcpts;
	const char *err;		/* substring of the error */
};

static const struct args_case args_cases[] = {
	{ { "sendmail", "-t", "-i", NULL }, 0, SENDMAIL_MODE_SEND, true, true,
	    NULL, "", "", "", NULL, NULL, 0, NULL },
	{ { "sendmail", "-ti", "a@b", "c", NULL }, 0, SENDMAIL_MODE_SEND,
	    true, true, NULL, "", "", "", NULL, NULL, 2, NULL },
	{ { "sendmail", "-oi", "-fuser@x", "a", NULL }, 0, SENDMAIL_MODE_SEND,
	    false, true, "user@x", "", "", "", NULL, NULL, 1, NULL },
	{ { "sendmail", "-f", "<u@x>", "a", NULL }, 0, SENDMAIL_MODE_SEND,
	    false, false, "u@x", "", "", "", NULL, NULL, 1, NULL },
	{ { "sendmail", "-f", "<>", "a", NULL }, 0, SENDMAIL_MODE_SEND,
	    false, false, "", "", "", "", NULL, NULL, 1, NULL },
	{ { "sendmail", "-r", "u@x", "a", NULL }, 0, SENDMAIL_MODE_SEND,
	    false, false, "u@x", "", "", "", NULL, NULL, 1, NULL },
	{ { "sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root",
	    NULL }, 0, SENDMAIL_MODE_SEND, false, true, NULL, "", "", "",
	    "CronDaemon", NULL, 1, NULL },
	{ { "sendmail", "-N", "Delay,success", "-R", "hdrs", "-V", "a+b=c",
	    "x", NULL }, 0, SENDMAIL_MODE_SEND, false, false, NULL,
	    "SUCCESS,DELAY", "HDRS", "a+2Bb+3Dc", NULL, NULL, 1, NULL },
	{ { "sendmail", "-Nnever", "x", NULL }, 0, SENDMAIL_MODE_SEND, false,
	    false, NULL, "NEVER", "", "", NULL, NULL, 1, NULL },
	{ { "sendmail", "-C", "/etc/x.conf", "-bs", NULL }, 0,
	    SENDMAIL_MODE_SMTP, false, false, NULL, "", "", "", NULL,
	    "/etc/x.conf", 0, NULL },
	{ { "sendmail", "-bp", NULL }, 0, SENDMAIL_MODE_QUEUE, false, false,
	    NULL, "", "", "", NULL, NULL, 0, NULL },
	{ { "sendmail", "-q", NULL }, 0, SENDMAIL_MODE_FLUSH, false, false,
	    NULL, "", "", "", NULL, NULL, 0, NULL },
	{ { "sendmail", "-q1h", NULL }, 0, SENDMAIL_MODE_SEND, false, false,
	    NULL, "", "", "", NULL, NULL, 0, NULL },
	{ { "sendmail", "-bi", NULL }, 0, SENDMAIL_MODE_NEWALIASES, false,
	    false, NULL, "", "", "", NULL, NULL, 0, NULL },
	{ { "/usr/bin/newaliases", NULL }, 0, SENDMAIL_MODE_NEWALIASES, false,
	    false, NULL, "", "", "", NULL, NULL, 0, NULL },
	{ { "mailq", NULL }, 0, SENDMAIL_MODE_QUEUE, false, false, NULL, "",
	    "", "", NULL, NULL, 0, NULL },
	{ { "sendmail", "-odi", "-odb", "-oee", "-om", "-v", "-U", "-obq",
	    "-Am", "-n", "-G", "-h", "5", "--", "-x", NULL }, 0,
	    SENDMAIL_MODE_SEND, false, false, NULL, "", "", "", NULL, NULL, 1,
	    NULL },
	/* refused */
	{ { "sendmail", "-Z", NULL }, -1, 0, false, false, NULL, NULL, NULL,
	    NULL, NULL, NULL, 0, "unknown option -Z" },
	{ { "sendmail", "-oX", NULL }, -1, 0, false, false, NULL, NULL, NULL,
	    NULL, NULL, NULL, 0, "unknown option -oX" },
	{ { "sendmail", "-bv", NULL }, -1, 0, false, false, NULL, NULL, NULL,
	    NULL, NULL, NULL, 0, "not supported" },
	{ { "sendmail", "-bsx", NULL }, -1, 0, false, false, NULL, NULL, NULL,
	    NULL, NULL, NULL, 0, "unknown option" },
	{ { "sendmail", "-f", NULL }, -1, 0, false, false, NULL, NULL, NULL,
	    NULL, NULL, NULL, 0, "needs a value" },
	{ { "sendmail", "-N", "never,delay", NULL }, -1, 0, false, false,
	    NULL, NULL, NULL, NULL, NULL, NULL, 0, "-N" },
	{ { "sendmail", "-N", "sometimes", NULL }, -1, 0, false, false, NULL,
	    NULL, NULL, NULL, NULL, NULL, 0, "-N" },
	{ { "sendmail", "-R", "body", NULL }, -1, 0, false, false, NULL, NULL,
	    NULL, NULL, NULL, NULL, 0, "-R" },
	{ { "sendmail", "-V", "a\tb", NULL }, -1, 0, false, false, NULL, NULL,
	    NULL, NULL, NULL, NULL, 0, "-V" },
	{ { "sendmail", "-f", "a b@x", NULL }, -1, 0, false, false, NULL,
	    NULL, NULL, NULL, NULL, NULL, 0, "-f" },
	{ { "sendmail", "-f", "a@x\r\nRCPT TO:<v@x>", NULL }, -1, 0, false,
	    false, NULL, NULL, NULL, NULL, NULL, NULL, 0, "-f" },
};

static void
test_args(void **state)
{
	struct sendmail_args a;
	char err[256];
	size_t k;
	int argc, rc;

	(void)state;
	for (k = 0; k < sizeof(args_cases) / sizeof(args_cases[0]); k++) {
		const struct args_case *c = &args_cases[k];

		for (argc = 0; c->argv[argc] != NULL; argc++)
			;
		rc = sendmail_args_parse(argc, (char *const *)c->argv, &a, err,
		    sizeof(err));
		if (rc != c->rc)
			fail_msg("case %zu (%s %s): got %d (%s), want %d", k,
			    c->argv[0], c->argv[1] ? c->argv[1] : "", rc, err,
			    c->rc);
		if (rc == -1) {
			if (strstr(err, c->err) == NULL)
				fail_msg("case %zu: error \"%s\", want \"%s\"",
				    k, err, c->err);
			continue;
		}
		if (a.mode != c->mode || a.t != c->t || a.i != c->i ||
		    a.nrcpts != c->nrcpts)
			fail_msg("case %zu: got mode %d t %d i %d nrcpts %zu, "
			    "want %d %d %d %zu", k, a.mode, a.t, a.i,
			    a.nrcpts, c->mode, c->t, c->i, c->nrcpts);
		if ((c->sender == NULL) != !a.has_sender ||
		    (c->sender != NULL && strcmp(a.sender, c->sender) != 0))
			fail_msg("case %zu: sender \"%s\", want \"%s\"", k,
			    a.sender, c->sender ? c->sender : "(none)");
		if (strcmp(a.notify, c->notify) != 0 ||
		    strcmp(a.ret, c->ret) != 0 ||
		    strcmp(a.envid, c->envid) != 0)
			fail_msg("case %zu: got notify %s ret %s envid %s, "
			    "want %s %s %s", k, a.notify, a.ret, a.envid,
			    c->notify, c->ret, c->envid);
		if ((c->fullname == NULL) != (a.fullname == NULL) ||
		    (c->fullname && strcmp(a.fullname, c->fullname) != 0))
			fail_msg("case %zu: fullname", k);
		if ((c->conf == NULL) != (a.conf == NULL) ||
		    (c->conf && strcmp(a.conf, c->conf) != 0))
			fail_msg("case %zu: conf", k);
	}
}

/* ---- header rewrite ---- */

static int
collect(void *arg, const char *addr, size_t len)
{
	struct buf *b = arg;

	(void)buf_append(b, addr, len);
	(void)buf_append(b, ";", 1);
	return 0;
}

struct hdr_case {
	const char *in;
	bool want;
	int rc;
	const char *out;
	const char *rcpts;
	bool has_from;
};

static const struct hdr_case hdr_cases[] = {
	{ "To: A <a@x.test>\nCc: b@x.test,\n c@x.test\nBcc: d@x.test\n"
	    "Subject: s\n", true, 0,
	    "To: A <a@x.test>\r\nCc: b@x.test,\r\n c@x.test\r\nSubject: s\r\n",
	    "a@x.test;b@x.test;c@x.test;d@x.test;", false },
	/* Bcc goes without -t too; CRLF input stays CRLF. */
	{ "From: me@x.test\r\nBCC : d@x.test\r\nX: y\r\n", false, 0,
	    "From: me@x.test\r\nX: y\r\n", "", true },
	/* bare logins in a list */
	{ "To: root, bob@x.test\n", true, 0, "To: root, bob@x.test\r\n",
	    "root;bob@x.test;", false },
	{ "To: \"unbalanced <a@x.test>\n", true, -1, "", "", false },
	/* a field named like To is not To */
	{ "To-Do: a@x.test\nResent-To: b@x.test\n", true, 0,
	    "To-Do: a@x.test\r\nResent-To: b@x.test\r\n", "", false },
	{ "", true, 0, "", "", false },
};

static void
test_header_rewrite(void **state)
{
	struct buf out, rc;
	const char *err = NULL;
	bool has_from;
	size_t k;
	int r;

	(void)state;
	for (k = 0; k < sizeof(hdr_cases) / sizeof(hdr_cases[0]); k++) {
		const struct hdr_case *c = &hdr_cases[k];

		buf_init(&out, 65536);
		buf_init(&rc, 65536);
		r = sendmail_header_rewrite(c->in, strlen(c->in), c->want,
		    collect, &rc, &out, &has_from, &err);
		if (r != c->rc)
			fail_msg("case %zu: got %d (%s), want %d", k, r,
			    err ? err : "", c->rc);
		if (r == 0 && (strcmp(buf_str(&out), c->out) != 0 ||
		    strcmp(buf_str(&rc), c->rcpts) != 0 ||
		    has_from != c->has_from))
			fail_msg("case %zu: got \"%s\" rcpts \"%s\" from %d, "
			    "want \"%s\" \"%s\" %d", k,
			    test_escn(out.data ? out.data : "", out.len),
			    buf_str(&rc), has_from,
			    test_escn(c->out, strlen(c->out)), c->rcpts,
			    c->has_from);
		buf_free(&out);
		buf_free(&rc);
	}
}

static void
test_from_field(void **state)
{
	static const struct {
		const char *name, *want;
	} cases[] = {
		{ NULL, "From: u@h.test\r\n" },
		{ "", "From: u@h.test\r\n" },
		{ "Cron Daemon", "From: Cron Daemon <u@h.test>\r\n" },
		{ "Doe, John", "From: \"Doe, John\" <u@h.test>\r\n" },
		{ "a\"b\\c\r\nBcc: x", "From: \"a\\\"b\\\\cBcc: x\" "
		    "<u@h.test>\r\n" },
	};
	size_t k;
	char *f;

	(void)state;
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		f = sendmail_from_field(cases[k].name, "u@h.test");
		if (strcmp(f, cases[k].want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", k,
			    test_escn(f, strlen(f)),
			    test_escn(cases[k].want, strlen(cases[k].want)));
		free(f);
	}
}

/* ---- maildrop ---- */

static void
test_maildrop_lines(void **state)
{
	static const struct {
		const char *line;
		bool user;
		int rc;
	} cases[] = {
		{ "sender <a@x.test>", true, 0 },
		{ "sender <b@x.test>", true, -1 },	/* a second */
		{ "rcpt <>", true, -1 },
		{ "rcpt <c@x.test> NOTIFY=NEVER", true, -1 },
		{ "rcpt <c@x.test>", true, 0 },
		{ "rcpt <c@x.test\r>", true, -1 },
		{ "ret FULL", true, 0 },
		{ "ret ALL", true, -1 },
		{ "envid a+2Bb", true, 0 },
		{ "envid a=b", true, -1 },
		{ "notify SUCCESS,DELAY", true, 0 },
		{ "notify SUCCESS SIZE=1", true, -1 },
		{ "uid 0", true, -1 },		/* only postdrop writes it */
		{ "size 00000000000000000001", true, -1 },
		{ "uid 1000", false, 0 },
		{ "size 00000000000000000012", false, 0 },
		{ "size 12", false, -1 },
		{ "bogus x", true, -1 },
		{ "data", true, 1 },
	};
	struct maildrop_env e;
	const char *err;
	size_t k;
	int r;

	(void)state;
	maildrop_env_init(&e);
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		err = NULL;
		r = maildrop_parse_line(&e, cases[k].line, cases[k].user, &err);
		if (r != cases[k].rc)
			fail_msg("line \"%s\": got %d (%s), want %d",
			    test_escn(cases[k].line, strlen(cases[k].line)), r,
			    err ? err : "", cases[k].rc);
	}
	assert_string_equal(e.sender, "a@x.test");
	assert_int_equal(e.nrcpts, 1);
	assert_int_equal(e.uid, 1000);
	assert_int_equal(e.size, 12);
	maildrop_env_free(&e);

	/* "data" before a recipient is an error. */
	maildrop_env_init(&e);
	assert_int_equal(maildrop_parse_line(&e, "sender <>", true, &err), 0);
	assert_int_equal(maildrop_parse_line(&e, "data", true, &err), -1);
	maildrop_env_free(&e);
}

/* Write an envelope with maildrop_write_env, read it back. */
static void
test_maildrop_roundtrip(void **state)
{
	struct maildrop_env e, r;
	char path[] = "/tmp/petrel-test-maildrop-XXXXXX";
	const char *err = NULL;
	uint64_t off;
	long long n;
	FILE *fp;
	int fd;

	(void)state;
	maildrop_env_init(&e);
	e.uid = 4242;
	e.sender = strdup("s@x.test");
	e.rcpts = calloc(2, sizeof(*e.rcpts));
	e.rcpts[0] = strdup("a@x.test");
	e.rcpts[1] = strdup("b@x.test");
	e.nrcpts = 2;
	strlcpy(e.ret, "HDRS", sizeof(e.ret));
	fd = mkstemp(path);
	assert_true(fd != -1);
	n = maildrop_write_env(fd, &e);
	assert_true(n > 0);
	assert_int_equal(write(fd, "Subject: x\r\n\r\nbody\r\n", 20), 20);
	assert_int_equal(maildrop_set_size(fd, 20), 0);
	fp = fdopen(fd, "r");
	assert_non_null(fp);
	rewind(fp);
	maildrop_env_init(&r);
	if (maildrop_read_env(fp, &r, &off, &err) == -1)
		fail_msg("read back: %s", err);
	assert_int_equal(off, (uint64_t)n);
	assert_int_equal(r.uid, 4242);
	assert_int_equal(r.size, 20);
	assert_string_equal(r.sender, "s@x.test");
	assert_int_equal(r.nrcpts, 2);
	assert_string_equal(r.rcpts[1], "b@x.test");
	assert_string_equal(r.ret, "HDRS");
	fclose(fp);
	unlink(path);
	maildrop_env_free(&e);
	maildrop_env_free(&r);
}

/* ---- client data conversion ---- */

static void
test_client_data(void **state)
{
	static const struct {
		const char *in, *want;
		bool raw;
	} cases[] = {
		{ "a\nb\n", "a\r\nb\r\n.\r\n", false },
		{ "a\r\nb", "a\r\nb\r\n.\r\n", false },
		{ ".x\n..\n.\n", "..x\r\n...\r\n..\r\n.\r\n", false },
		{ "", ".\r\n", false },
		{ ".x\nb\n", ".x\r\nb\r\n", true },
	};
	struct local_client c;
	char got[256];
	size_t k, i;
	ssize_t n;
	int sv[2];

	(void)state;
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		local_client_init(&c, sv[0]);
		c.raw = cases[k].raw;
		/* one byte at a time */
		for (i = 0; cases[k].in[i] != '\0'; i++)
			assert_int_equal(local_client_data(&c,
			    cases[k].in + i, 1), 0);
		if (cases[k].raw)
			assert_int_equal(local_client_flush(&c), 0);
		else {
			/* data_end reads a reply: give it one. */
			assert_int_equal(write(sv[1], "250 ok\r\n", 8), 8);
			assert_int_equal(local_client_data_end(&c), 250);
		}
		close(sv[0]);
		n = read(sv[1], got, sizeof(got) - 1);
		got[n > 0 ? n : 0] = '\0';
		if (strcmp(got, cases[k].want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", k,
			    test_escn(got, strlen(got)),
			    test_escn(cases[k].want, strlen(cases[k].want)));
		close(sv[1]);
	}
}

static void
test_client_reply(void **state)
{
	struct local_client c;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	local_client_init(&c, sv[0]);
	assert_int_equal(write(sv[1], "250-a\r\n250-b\r\n250 c\r\n552 5.3.4 "
	    "too big\r\nxyz\r\n", 45), 45);
	assert_int_equal(local_client_reply(&c), 250);
	assert_string_equal(c.reply, "250-a / 250-b / 250 c");
	assert_int_equal(local_client_reply(&c), 552);
	assert_string_equal(c.reply, "552 5.3.4 too big");
	assert_int_equal(local_client_reply(&c), -1);
	close(sv[1]);
	assert_int_equal(local_client_reply(&c), -1);
	close(sv[0]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_header_rewrite),
		cmocka_unit_test(test_from_field),
		cmocka_unit_test(test_maildrop_lines),
		cmocka_unit_test(test_maildrop_roundtrip),
		cmocka_unit_test(test_client_data),
		cmocka_unit_test(test_client_reply),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
