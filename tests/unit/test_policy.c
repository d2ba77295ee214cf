/*
 * test_policy.c: users and aliases files (syntax, exact error text and
 * warnings), recipient resolution (lookup order, catch-all, recursion,
 * loops, depth, duplicates, remote targets, \user and quoted targets,
 * refused targets, result codes), the cost of de-duplication, and Maildir
 * path safety.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "lib/util.h"
#include "policy/policy.h"

static char tmpdir[] = "/tmp/petrel-test-policy-XXXXXX";

/* Errors reported by a load, one per line. */
struct errs {
	char text[16384];
	int n;
};

static void
errs_cb(void *arg, const char *msg)
{
	struct errs *e = arg;

	strlcat(e->text, msg, sizeof(e->text));
	strlcat(e->text, "\n", sizeof(e->text));
	e->n++;
}

static char *
write_file(const char *name, const char *text)
{
	char *path;
	FILE *fp;

	path = xasprintf("%s/%s", tmpdir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	return path;
}

/*
 * Warnings go to the log (stderr). capture_start() sends fd 2 to a file,
 * capture_end() restores it and returns what was written (free it).
 */
struct capture {
	int saved;
	char *path;
};

static void
capture_start(struct capture *cap)
{
	int fd;

	cap->path = xasprintf("%s/stderr", tmpdir);
	fd = open(cap->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_int_not_equal(fd, -1);
	fflush(stderr);
	cap->saved = dup(STDERR_FILENO);
	assert_int_not_equal(cap->saved, -1);
	assert_int_not_equal(dup2(fd, STDERR_FILENO), -1);
	close(fd);
}

static char *
capture_end(struct capture *cap)
{
	char *text;
	FILE *fp;
	long n;

	fflush(stderr);
	assert_int_not_equal(dup2(cap->saved, STDERR_FILENO), -1);
	close(cap->saved);
	fp = fopen(cap->path, "r");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	assert_true(n >= 0);
	rewind(fp);
	text = xmalloc((size_t)n + 1);
	assert_int_equal(fread(text, 1, (size_t)n, fp), (size_t)n);
	text[n] = '\0';
	fclose(fp);
	unlink(cap->path);
	free(cap->path);
	return text;
}

/* How many log lines contain want. */
static int
count_lines(const char *log, const char *want)
{
	const char *p = log, *nl;
	char *line;
	int n = 0;

	while (*p != '\0') {
		nl = strchr(p, '\n');
		line = xstrndup(p, nl != NULL ? (size_t)(nl - p) : strlen(p));
		if (strstr(line, want) != NULL)
			n++;
		free(line);
		p = nl != NULL ? nl + 1 : p + strlen(p);
	}
	return n;
}

static void
expect_line(const char *log, const char *want)
{
	if (count_lines(log, want) != 1)
		fail_msg("log:\n%s\nwant exactly one line with: %s", log,
		    want);
}

static struct conf *
test_conf(const char *users, const char *aliases)
{
	static const char *domains[] = { "example.test", "other.test",
	    "third.test", "fourth.test" };
	struct conf *c;
	size_t i;

	c = xcalloc(1, sizeof(*c));
	c->maildir = xstrdup("/srv/mail/%d/%u");
	c->users = users != NULL ? write_file("users", users) : NULL;
	c->aliases = aliases != NULL ? write_file("aliases", aliases) : NULL;
	c->ndomains = nitems(domains);
	c->domains = xcalloc(c->ndomains, sizeof(*c->domains));
	for (i = 0; i < c->ndomains; i++)
		c->domains[i] = xstrdup(domains[i]);
	return c;
}

static void
test_conf_free(struct conf *c)
{
	size_t i;

	if (c->users != NULL)
		unlink(c->users);
	if (c->aliases != NULL)
		unlink(c->aliases);
	for (i = 0; i < c->ndomains; i++)
		free(c->domains[i]);
	free(c->domains);
	free(c->users);
	free(c->aliases);
	free(c->maildir);
	free(c);
}

/* ---- users file ---- */

static void
test_users_ok(void **state)
{
	struct policy_tables *t;
	struct errs e = { "", 0 };
	struct conf *c;

	(void)state;
	c = test_conf("# comment\n"
		      "\n"
		      "alice@example.test:$6$salt$hash\n"
		      "  Bob@Example.TEST : $2b$05$xyz \r\n"
		      "receive@example.test:\n"
		      "   \n"
		      "carol@other.test:x:y\n",
	    NULL);
	t = policy_tables_load(c, errs_cb, &e);
	assert_string_equal(e.text, "");
	assert_non_null(t);
	assert_string_equal(policy_user_hash(t, "alice@example.test"),
	    "$6$salt$hash");
	assert_string_equal(policy_user_hash(t, "ALICE@EXAMPLE.test"),
	    "$6$salt$hash");
	assert_string_equal(policy_user_hash(t, "bob@example.test"),
	    "$2b$05$xyz");
	assert_string_equal(policy_user_hash(t, "receive@example.test"), "");
	/* Split at the first ':' only. */
	assert_string_equal(policy_user_hash(t, "carol@other.test"), "x:y");
	assert_null(policy_user_hash(t, "nobody@example.test"));
	assert_null(policy_user_hash(t, "alice"));
	assert_null(policy_user_hash(NULL, "alice@example.test"));
	policy_tables_free(t);
	test_conf_free(c);
}

static void
test_users_errors(void **state)
{
	struct policy_tables *t;
	struct errs e = { "", 0 };
	struct conf *c;
	char *want;

	(void)state;
	c = test_conf("ok@example.test:h\n"
		      "no colon here\n"
		      ":hash\n"
		      "alice:hash\n"
		      "# fine\n"
		      "OK@example.test:other\n"
		      "@example.test:h\n"
		      "a@b@c:h\n"
		      "good@example.test:h\n",
	    NULL);
	t = policy_tables_load(c, errs_cb, &e);
	assert_null(t);
	want = xasprintf("%s:2: missing ':'\n"
			 "%s:3: empty address\n"
			 "%s:4: address without @: alice\n"
			 "%s:6: duplicate user ok@example.test\n"
			 "%s:7: invalid address: @example.test\n"
			 "%s:8: invalid address: a@b@c\n",
	    c->users, c->users, c->users, c->users, c->users, c->users);
	assert_string_equal(e.text, want);
	free(want);
	test_conf_free(c);
}

/*
 * Entries that could never receive mail: a local part the Maildir path
 * would refuse, quotes or backslashes (keys are unquoted addresses), and
 * parts beyond the RFC 5321 4.5.3.1 limits.
 */
static void
test_users_unusable(void **state)
{
	struct policy_tables *t;
	struct errs e = { "", 0 };
	struct conf *c;
	char *users, *want, lp65[66], dom256[257];

	(void)state;
	memset(lp65, 'a', 65);
	lp65[65] = '\0';
	memset(dom256, 'd', 256);
	dom256[252] = '.';
	dom256[256] = '\0';
	users = xasprintf("ok@example.test:h\n"		/* 1 */
			  ".hidden@example.test:h\n"		/* 2 */
			  "a/b@example.test:h\n"		/* 3 */
			  "/etc@example.test:h\n"		/* 4 */
			  "a\x01@example.test:h\n"		/* 5 */
			  "\"ab\"@example.test:h\n"		/* 6 */
			  "a\\b@example.test:h\n"		/* 7 */
			  "%s@example.test:h\n"		/* 8 */
			  "%.64s@example.test:h\n"		/* 9: 64 is fine */
			  "x@%s:h\n"				/* 10 */
			  "x@.example.test:h\n"		/* 11 */
			  "x@a/b:h\n",				/* 12 */
	    lp65, lp65, dom256);
	c = test_conf(users, NULL);
	free(users);
	t = policy_tables_load(c, errs_cb, &e);
	assert_null(t);
	want = xasprintf(
	    "%s:2: local part .hidden cannot be a Maildir name (a "
	    "leading '.' or a '/')\n"
	    "%s:3: local part a/b cannot be a Maildir name (a "
	    "leading '.' or a '/')\n"
	    "%s:4: local part /etc cannot be a Maildir name (a "
	    "leading '.' or a '/')\n"
	    "%s:5: invalid address: a\\x01@example.test\n"
	    "%s:6: quotes and backslashes are not allowed (write the local "
	    "part unquoted): \\x22ab\\x22@example.test\n"
	    "%s:7: quotes and backslashes are not allowed (write the local "
	    "part unquoted): a\\x5cb@example.test\n"
	    "%s:8: local part longer than 64 octets\n"
	    "%s:10: domain longer than 255 octets\n"
	    "%s:11: domain .example.test cannot be a Maildir name (a "
	    "leading '.' or a '/')\n"
	    "%s:12: domain a/b cannot be a Maildir name (a "
	    "leading '.' or a '/')\n",
	    c->users, c->users, c->users, c->users, c->users, c->users,
	    c->users, c->users, c->users, c->users);
	assert_string_equal(e.text, want);
	free(want);
	test_conf_free(c);
}

/* A user outside our domains can log in but never receive: a warning. */
static void
test_users_warnings(void **state)
{
	struct policy_tables *t;
	struct errs e = { "", 0 };
	struct capture cap;
	struct conf *c;
	char *log, *want;

	(void)state;
	c = test_conf("alice@example.test:h\n"
		      "Bob@Elsewhere.TEST:h\n"
		      "carol@other.test:h\n",
	    NULL);
	capture_start(&cap);
	t = policy_tables_load(c, errs_cb, &e);
	log = capture_end(&cap);
	assert_string_equal(e.text, "");
	assert_non_null(t);
	want = xasprintf("%s:2: user bob@elsewhere.test: elsewhere.test is "
			 "not a local domain, so this address never receives "
			 "mail", c->users);
	expect_line(log, want);
	assert_int_equal(count_lines(log, c->users), 1);
	assert_non_null(policy_user_hash(t, "bob@elsewhere.test"));
	free(want);
	free(log);
	policy_tables_free(t);
	test_conf_free(c);
}

static void
test_missing_files(void **state)
{
	struct policy_tables *t;
	struct errs e = { "", 0 };
	struct conf *c;
	char *want;

	(void)state;
	c = test_conf(NULL, NULL);
	c->users = xasprintf("%s/no-such-users", tmpdir);
	c->aliases = xasprintf("%s/no-such-aliases", tmpdir);
	t = policy_tables_load(c, errs_cb, &e);
	assert_null(t);
	want = xasprintf("%s: cannot open: No such file or directory\n"
			 "%s: cannot open: No such file or directory\n",
	    c->users, c->aliases);
	assert_string_equal(e.text, want);
	free(want);
	test_conf_free(c);

	/* Neither file configured: empty tables, postmaster still works. */
	c = test_conf(NULL, NULL);
	e.text[0] = '\0';
	t = policy_tables_load(c, errs_cb, &e);
	assert_non_null(t);
	assert_string_equal(e.text, "");
	policy_tables_free(t);
	test_conf_free(c);
}

/* ---- aliases file ---- */

static void
test_aliases_errors(void **state)
{
	struct policy_tables *t;
	struct errs e = { "", 0 };
	struct conf *c;
	char *want;
	const char *f;

	(void)state;
	c = test_conf(NULL,
	    "  orphan@example.test\n"			/* 1 */
	    "ok: alice\n"				/* 2 */
	    "pipe: alice, |/usr/bin/evil\n"		/* 3 */
	    "quoted: \"|/bin/sh -c x\"\n"		/* 4 */
	    "file: /tmp/mbox\n"				/* 5 */
	    "multi: alice,\n"				/* 6 */
	    "\tbob,\n"					/* 7 */
	    "\t/var/mail/x\n"				/* 8 */
	    "inc: :include:/etc/list\n"			/* 9 */
	    "inc2: include:/etc/list\n"			/* 10 */
	    "no colon\n"				/* 11 */
	    "  swallowed, by the bad line\n"		/* 12 */
	    ": alice\n"					/* 13 */
	    "OK: bob\n"					/* 14 */
	    "empty:\n"					/* 15 */
	    "# comment\n"				/* 16 */
	    "bad target: x@\n"				/* 17 */
	    "bad2: @x, \"unterminated\n"		/* 18 */
	    "a@: b\n"					/* 19 */
	    "last:\n");					/* 20 */
	t = policy_tables_load(c, errs_cb, &e);
	assert_null(t);
	f = c->aliases;
	want = xasprintf(
	    "%s:1: continuation line without an alias\n"
	    "%s:3: |command targets are not supported: Petrel never runs "
	    "a shell\n"
	    "%s:4: |command targets are not supported: Petrel never runs "
	    "a shell\n"
	    "%s:5: /file targets are not supported: Petrel delivers only to "
	    "Maildirs\n"
	    "%s:8: /file targets are not supported: Petrel delivers only to "
	    "Maildirs\n"
	    "%s:9: :include: targets are not supported: list every target "
	    "in the aliases file\n"
	    "%s:10: :include: targets are not supported: list every target "
	    "in the aliases file\n"
	    "%s:11: missing ':'\n"
	    "%s:13: empty alias name\n"
	    "%s:14: duplicate alias ok\n"
	    "%s:15: alias empty has no targets\n"
	    "%s:17: invalid alias name: bad target\n"
	    "%s:18: invalid target: @x (empty local part)\n"
	    "%s:18: unterminated quote\n"
	    "%s:19: invalid alias name: a@\n"
	    "%s:20: alias last has no targets\n",
	    f, f, f, f, f, f, f, f, f, f, f, f, f, f, f, f);
	assert_string_equal(e.text, want);
	free(want);
	test_conf_free(c);
}

/*
 * Targets that are not a mailbox: a missing comma, spaces, '<' and '>'
 * (parameter injection), control characters, empty parts, bad domains.
 */
static void
test_aliases_syntax(void **state)
{
	struct policy_tables *t;
	struct errs e = { "", 0 };
	struct conf *c;
	char *aliases, *want, lp65[66];
	const char *f;

	(void)state;
	memset(lp65, 'a', 65);
	lp65[65] = '\0';
	aliases = xasprintf(
	    "sp: bob smith@remote.test\n"			/* 1 */
	    "team: alice bob\n"				/* 2 */
	    "inj: bob> NOTIFY=NEVER@remote.test\n"		/* 3 */
	    "lt: <bob@remote.test\n"				/* 4 */
	    "ctl: bo\x01" "b@remote.test\n"			/* 5 */
	    "nolp: @remote.test\n"				/* 6 */
	    "nodom: bob@\n"					/* 7 */
	    "brack: <>\n"					/* 8 */
	    "dots: .bob@remote.test, bob.@remote.test\n"	/* 9 */
	    "dom: bob@-x.test, bob@x..test\n"			/* 10 */
	    "long: %s@remote.test\n"				/* 11 */
	    "cont: alice\n"					/* 12 */
	    "  bob\n"						/* 13 */
	    "bs: \\\n"					/* 14 */
	    "ok: alice, \\bob, \"Alice\"@example.test,\n"	/* 15 */
	    "  <carol@other.test>, \"x y\"@remote.test,\n"	/* 16 */
	    "  bob@[127.0.0.1], bob@[IPv6:::1]\n"		/* 17 */
	    "lit: bob@[300.1.1.1]\n"				/* 18 */
	    "q: \"bob\n"					/* 19 */
	    "qc: \"a\x01\"@remote.test\n"			/* 20 */
	    "amp: bob@remote.test>\n"				/* 21 */
	    "tab: alice\tbob\n"				/* 22 */
	    "utf: j\xc3\xbcrgen@b\xc3\xbc" "cher.test,\n"	/* 23 */
	    "  \"J\xc3\xbcrgen M\"@remote.test\n"		/* 24 */
	    "badutf: j\xc3(@remote.test\n"			/* 25 */
	    "badpair: \"a\\\x01\"@remote.test\n",		/* 26 */
	    lp65);
	c = test_conf(NULL, aliases);
	free(aliases);
	t = policy_tables_load(c, errs_cb, &e);
	assert_null(t);
	f = c->aliases;
	want = xasprintf(
	    "%s:1: missing ',' between targets: bob smith@remote.test\n"
	    "%s:2: missing ',' between targets: alice bob\n"
	    "%s:3: invalid target: bob> NOTIFY=NEVER@remote.test "
	    "(unexpected '>')\n"
	    "%s:4: invalid target: <bob@remote.test (unexpected '<')\n"
	    "%s:5: invalid target: bo\\x01b@remote.test (control "
	    "character)\n"
	    "%s:6: invalid target: @remote.test (empty local part)\n"
	    "%s:7: invalid target: bob@ (empty domain)\n"
	    "%s:8: invalid target: <> (empty address)\n"
	    "%s:9: invalid target: .bob@remote.test (unexpected '.')\n"
	    "%s:9: invalid target: bob.@remote.test (unexpected '.')\n"
	    "%s:10: invalid target: bob@-x.test (invalid domain)\n"
	    "%s:10: invalid target: bob@x..test (invalid domain)\n"
	    "%s:11: invalid target: %s@remote.test (local part longer "
	    "than 64 octets)\n"
	    "%s:13: missing ',' at the end of the previous line\n"
	    "%s:14: invalid target: \\x5c (empty address)\n"
	    "%s:18: invalid target: bob@[300.1.1.1] (invalid domain)\n"
	    "%s:19: unterminated quote\n"
	    "%s:20: invalid target: \\x22a\\x01\\x22@remote.test "
	    "(control character)\n"
	    "%s:21: invalid target: bob@remote.test> (invalid domain)\n"
	    "%s:22: missing ',' between targets: alice\\x09bob\n"
	    "%s:25: invalid target: j\\xc3(@remote.test (invalid UTF-8)\n"
	    "%s:26: invalid target: \\x22a\\x5c\\x01\\x22@remote.test "
	    "(invalid quoted pair)\n",
	    f, f, f, f, f, f, f, f, f, f, f, f, f, lp65, f, f, f, f, f, f, f,
	    f, f);
	assert_string_equal(e.text, want);
	free(want);
	test_conf_free(c);
}

/* ---- resolution ---- */

static const char *res_users =
    "alice@example.test:h\n"
    "bob@example.test:h\n"
    "Dave@Example.test:h\n"
    "eve@example.test:h\n"
    "carol@other.test:h\n";

struct res_case {
	const char *lp, *dom;
	enum policy_rcpt want;
	/* "addr=mailbox" for local, "addr" for remote, comma-separated */
	const char *targets;
};

static const struct res_case res_cases[] = {
	/* Plain users, any case. */
	{ "alice", "example.test", POLICY_RCPT_OK,
	    "alice@example.test=/srv/mail/example.test/alice" },
	{ "ALICE", "example.test", POLICY_RCPT_OK,
	    "alice@example.test=/srv/mail/example.test/alice" },
	{ "dave", "example.test", POLICY_RCPT_OK,
	    "dave@example.test=/srv/mail/example.test/dave,"
	    "alice@example.test=/srv/mail/example.test/alice" },
	{ "nobody", "example.test", POLICY_RCPT_UNKNOWN, NULL },
	{ "alice", "other.test", POLICY_RCPT_OK,
	    "bob@example.test=/srv/mail/example.test/bob" },
	/* Lookup order: alias a@d before alias a before user. */
	{ "sales", "example.test", POLICY_RCPT_OK,
	    "bob@example.test=/srv/mail/example.test/bob" },
	{ "sales", "third.test", POLICY_RCPT_OK,
	    "carol@other.test=/srv/mail/other.test/carol" },
	{ "eve", "example.test", POLICY_RCPT_OK,
	    "alice@example.test=/srv/mail/example.test/alice" },
	/* "local" alias: any local domain, "user" target in that domain. */
	{ "info", "fourth.test", POLICY_RCPT_OK,
	    "alice@example.test=/srv/mail/example.test/alice" },
	{ "team", "example.test", POLICY_RCPT_OK,
	    "alice@example.test=/srv/mail/example.test/alice,"
	    "bob@example.test=/srv/mail/example.test/bob" },
	{ "team", "other.test", POLICY_RCPT_OK,
	    "carol@other.test=/srv/mail/other.test/carol" },
	/* User before catch-all; catch-all for unknown ones. */
	{ "carol", "other.test", POLICY_RCPT_OK,
	    "carol@other.test=/srv/mail/other.test/carol" },
	{ "whoever", "other.test", POLICY_RCPT_OK,
	    "bob@example.test=/srv/mail/example.test/bob" },
	/* Postmaster: aliased, or its own Maildir, before catch-all. */
	{ "postmaster", "other.test", POLICY_RCPT_OK,
	    "alice@example.test=/srv/mail/example.test/alice" },
	{ "PostMaster", "example.test", POLICY_RCPT_OK,
	    "postmaster@example.test=/srv/mail/example.test/postmaster" },
	{ "postmaster", "fourth.test", POLICY_RCPT_OK,
	    "postmaster@fourth.test=/srv/mail/fourth.test/postmaster" },
	{ "random", "fourth.test", POLICY_RCPT_OK,
	    "alice@example.test=/srv/mail/example.test/alice" },
	/* Catch-all that points back into itself: nothing to deliver. */
	{ "x", "third.test", POLICY_RCPT_LOOP, NULL },
	/* Duplicates delivered once, whatever the spelling. */
	{ "dupes", "example.test", POLICY_RCPT_OK,
	    "alice@example.test=/srv/mail/example.test/alice" },
	/* Continuation lines, quotes, <>. */
	{ "multi", "example.test", POLICY_RCPT_OK,
	    "alice@example.test=/srv/mail/example.test/alice,"
	    "bob@example.test=/srv/mail/example.test/bob,"
	    "carol@other.test=/srv/mail/other.test/carol,"
	    "dave@example.test=/srv/mail/example.test/dave" },
	/* Loops. */
	{ "loop1", "example.test", POLICY_RCPT_LOOP, NULL },
	{ "self", "example.test", POLICY_RCPT_LOOP, NULL },
	{ "loopuser", "example.test", POLICY_RCPT_OK,
	    "bob@example.test=/srv/mail/example.test/bob" },
	/* Remote targets keep the local part's case. */
	{ "fwd", "example.test", POLICY_RCPT_OK,
	    "someone@remote.test,Mixed.Case@remote.test,"
	    "alice@example.test=/srv/mail/example.test/alice" },
	/* RFC 5321 2.4: remote local parts are case-sensitive, so these
	 * are two mailboxes; the domain is not. */
	{ "ext", "example.test", POLICY_RCPT_OK,
	    "Bob@remote.test,bob@remote.test" },
	/* An unknown target is skipped; none left is UNKNOWN. */
	{ "partial", "example.test", POLICY_RCPT_OK,
	    "alice@example.test=/srv/mail/example.test/alice" },
	{ "ghost", "example.test", POLICY_RCPT_UNKNOWN, NULL },
	/* Depth: 10 expansions are fine, 11 are too many. */
	{ "d0", "example.test", POLICY_RCPT_OK,
	    "alice@example.test=/srv/mail/example.test/alice" },
	{ "e0", "example.test", POLICY_RCPT_TOO_MANY, NULL },
	/* "\\user": the user, never aliased again. */
	{ "root", "example.test", POLICY_RCPT_OK,
	    "alice@example.test=/srv/mail/example.test/alice" },
	{ "noexp", "example.test", POLICY_RCPT_OK,
	    "eve@example.test=/srv/mail/example.test/eve,"
	    "dave@example.test=/srv/mail/example.test/dave,"
	    "bob@example.test=/srv/mail/example.test/bob,"
	    "postmaster@example.test=/srv/mail/example.test/postmaster,"
	    "x@remote.test" },
	{ "nx", "example.test", POLICY_RCPT_UNKNOWN, NULL },
	/* Quoted local parts are unquoted; remote ones re-quoted only
	 * where RFC 5321 needs it. */
	{ "qt", "example.test", POLICY_RCPT_OK,
	    "alice@example.test=/srv/mail/example.test/alice,"
	    "bob@example.test=/srv/mail/example.test/bob" },
	{ "qr", "example.test", POLICY_RCPT_OK,
	    "\"john doe\"@remote.test,plain@remote.test,"
	    "\"a\\\"b\"@remote.test,Case@remote.test" },
	/* A quoted ".hidden" is a mailbox name, but no user. */
	{ ".hidden", "example.test", POLICY_RCPT_UNKNOWN, NULL },
	{ "hid", "example.test", POLICY_RCPT_UNKNOWN, NULL },
	{ "../x", "example.test", POLICY_RCPT_UNKNOWN, NULL },
	/* A quoted local part with '@' is no key for another domain. */
	{ "alice@other.test", "example.test", POLICY_RCPT_UNKNOWN, NULL },
	{ "alice@other.test", "other.test", POLICY_RCPT_OK,
	    "bob@example.test=/srv/mail/example.test/bob" },
	{ "", "example.test", POLICY_RCPT_UNKNOWN, NULL },
};

static const char *res_aliases =
    "# lookup order\n"
    "sales@example.test: bob\n"
    "sales: carol@other.test\n"
    "eve: alice\n"
    "alice@other.test: bob@example.test\n"
    "info: alice@example.test\n"
    "team@example.test: alice, bob\n"
    "team: carol\n"
    "team@third.test: nobody\n"
    "@other.test: bob@example.test\n"
    "postmaster@other.test: alice@example.test\n"
    "@fourth.test: alice@example.test\n"
    "@third.test: x\n"
    "dupes: alice, ALICE@example.test, alice@EXAMPLE.test, info, eve\n"
    "multi: alice,\n"
    "   bob ,\n"
    "\t\"carol@other.test\", <dave@example.test>\n"
    "loop1: loop2\n"
    "loop2: loop1\n"
    "self: self\n"
    "dave: dave, alice\n"
    "loopuser: l2\n"
    "l2: loopuser, bob\n"
    "fwd: someone@remote.test, Mixed.Case@REMOTE.test,\n"
    "  someone@Remote.Test, alice\n"
    "ext: Bob@remote.test, bob@remote.test, Bob@REMOTE.test\n"
    "partial: nosuchuser, alice\n"
    "ghost: nosuchuser\n"
    "d0: d1\nd1: d2\nd2: d3\nd3: d4\nd4: d5\nd5: d6\nd6: d7\nd7: d8\n"
    "d8: d9\nd9: alice\n"
    "e0: e1\ne1: e2\ne2: e3\ne3: e4\ne4: e5\ne5: e6\ne6: e7\ne7: e8\n"
    "e8: e9\ne9: e10\ne10: alice\n"
    "hid: \".hidden\"\n"
    "root: \\alice\n"
    "noexp: \\eve, \\dave@example.test, \\bob, \\postmaster,\n"
    "  \\x@remote.test, \\EVE\n"
    "nx: \\nosuchuser, \\sales\n"
    "qt: \"Alice\"@example.test, \"b\\ob\"\n"
    "qr: \"john doe\"@remote.test, \"plain\"@remote.test,\n"
    "  \"a\\\"b\"@remote.test, \"Case\"@Remote.Test, Case@remote.test\n";

static void
targets_format(char *out, size_t size, const struct policy_target *t,
    size_t n)
{
	size_t i;

	out[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			strlcat(out, ",", size);
		strlcat(out, t[i].addr, size);
		assert_int_equal(t[i].local, t[i].mailbox != NULL);
		if (t[i].local) {
			strlcat(out, "=", size);
			strlcat(out, t[i].mailbox, size);
		}
	}
}

static void
test_resolve_table(void **state)
{
	struct policy_tables *t;
	struct policy_target *tg;
	struct errs e = { "", 0 };
	struct conf *c;
	char got[4096];
	enum policy_rcpt r;
	size_t i, n;

	(void)state;
	c = test_conf(res_users, res_aliases);
	t = policy_tables_load(c, errs_cb, &e);
	assert_string_equal(e.text, "");
	assert_non_null(t);
	for (i = 0; i < nitems(res_cases); i++) {
		const struct res_case *rc = &res_cases[i];

		r = policy_rcpt_resolve(t, c, rc->lp, rc->dom, &tg, &n);
		if (r != rc->want) {
			fail_msg("%s@%s: got result %d, want %d", rc->lp,
			    rc->dom, r, rc->want);
		}
		if (r != POLICY_RCPT_OK) {
			assert_null(tg);
			assert_int_equal(n, 0);
			continue;
		}
		targets_format(got, sizeof(got), tg, n);
		if (strcmp(got, rc->targets) != 0)
			fail_msg("%s@%s: got %s, want %s", rc->lp, rc->dom,
			    got, rc->targets);
		policy_targets_free(tg, n);
	}
	policy_tables_free(t);
	test_conf_free(c);
}

/* POLICY_MAX_TARGETS: exactly the limit works, one more is refused. */
static void
test_resolve_max_targets(void **state)
{
	struct policy_tables *t;
	struct policy_target *tg;
	struct errs e = { "", 0 };
	struct conf *c;
	char *al;
	size_t len = 0, cap = 1 << 20, n;
	int i;

	(void)state;
	al = xmalloc(cap);
	al[0] = '\0';
	/* half: 500 remote targets; other: 500 more; one: 1 more. */
	for (i = 0; i < 3; i++) {
		int j, count = i < 2 ? POLICY_MAX_TARGETS / 2 : 1;

		len += (size_t)snprintf(al + len, cap - len, "%s:",
		    i == 0 ? "half" : i == 1 ? "other" : "one");
		for (j = 0; j < count; j++)
			len += (size_t)snprintf(al + len, cap - len,
			    "%s\n  r%d-%d@remote.test", j ? "," : "", i, j);
		len += (size_t)snprintf(al + len, cap - len, "\n");
	}
	len += (size_t)snprintf(al + len, cap - len,
	    "full: half, other\nover: half, other, one\n");
	c = test_conf(NULL, al);
	free(al);
	t = policy_tables_load(c, errs_cb, &e);
	assert_string_equal(e.text, "");
	assert_non_null(t);
	assert_int_equal(policy_rcpt_resolve(t, c, "full", "example.test",
	    &tg, &n), POLICY_RCPT_OK);
	assert_int_equal(n, POLICY_MAX_TARGETS);
	assert_string_equal(tg[0].addr, "r0-0@remote.test");
	assert_false(tg[0].local);
	assert_null(tg[0].mailbox);
	policy_targets_free(tg, n);
	assert_int_equal(policy_rcpt_resolve(t, c, "over", "example.test",
	    &tg, &n), POLICY_RCPT_TOO_MANY);
	assert_null(tg);
	policy_tables_free(t);
	test_conf_free(c);
}

/* An unknown member is logged with its alias; the rest is delivered. */
static void
test_resolve_unknown_member_logged(void **state)
{
	struct policy_tables *t;
	struct policy_target *tg;
	struct errs e = { "", 0 };
	struct capture cap;
	struct conf *c;
	char *log;
	size_t n;

	(void)state;
	c = test_conf("alice@example.test:h\n",
	    "team@example.test: nosuchuser, alice, \\ghost\n");
	t = policy_tables_load(c, errs_cb, &e);
	assert_string_equal(e.text, "");
	assert_non_null(t);
	capture_start(&cap);
	assert_int_equal(policy_rcpt_resolve(t, c, "team", "example.test",
	    &tg, &n), POLICY_RCPT_OK);
	log = capture_end(&cap);
	assert_int_equal(n, 1);
	assert_string_equal(tg[0].addr, "alice@example.test");
	policy_targets_free(tg, n);
	expect_line(log, "policy: alias team@example.test: member "
			 "nosuchuser@example.test does not exist; skipped");
	expect_line(log, "policy: alias team@example.test: member "
			 "\\ghost@example.test is not a user; skipped");
	free(log);
	policy_tables_free(t);
	test_conf_free(c);
}

/* A "local" alias hides users of that name in every local domain. */
static void
test_aliases_shadow_users(void **state)
{
	struct policy_tables *t;
	struct errs e = { "", 0 };
	struct capture cap;
	struct conf *c;
	char *log, *want;

	(void)state;
	c = test_conf("alice@example.test:h\n"
		      "x@example.test:h\n"
		      "X@other.test:h\n"
		      "x@elsewhere.test:h\n"
		      "y@example.test:h\n"
		      "z@example.test:h\n"
		      "z@other.test:h\n"
		      "w@example.test:h\n"
		      "v@example.test:h\n"
		      "v@other.test:h\n",
	    "x: alice\n"			/* 1: shadows two users */
	    "y: y, alice\n"			/* 2: delivers to y too */
	    "z: \\z\n"			/* 3: to z in each domain */
	    "w@example.test: alice\n"		/* 4: explicit: no warning */
	    "v: v@example.test\n");		/* 5: v@other.test lost */
	capture_start(&cap);
	t = policy_tables_load(c, errs_cb, &e);
	log = capture_end(&cap);
	assert_string_equal(e.text, "");
	assert_non_null(t);
	want = xasprintf("%s:1: alias x shadows user x@example.test (its "
			 "mail goes to the alias)", c->aliases);
	expect_line(log, want);
	free(want);
	want = xasprintf("%s:1: alias x shadows user x@other.test (its "
			 "mail goes to the alias)", c->aliases);
	expect_line(log, want);
	free(want);
	want = xasprintf("%s:5: alias v shadows user v@other.test (its "
			 "mail goes to the alias)", c->aliases);
	expect_line(log, want);
	free(want);
	assert_int_equal(count_lines(log, "shadows"), 3);
	free(log);
	policy_tables_free(t);
	test_conf_free(c);
}

/* A Maildir path that cannot be built refuses the recipient. */
static void
test_resolve_unsafe(void **state)
{
	struct policy_tables *t;
	struct policy_target *tg;
	struct errs e = { "", 0 };
	struct conf *c;
	size_t n;

	(void)state;
	c = test_conf("alice@example.test:h\n", "a: alice, bob@remote.test\n");
	t = policy_tables_load(c, errs_cb, &e);
	assert_non_null(t);
	assert_int_equal(policy_rcpt_resolve(t, c, "a", "example.test", &tg,
	    &n), POLICY_RCPT_OK);
	policy_targets_free(tg, n);
	/* A template too long for any path. */
	free(c->maildir);
	c->maildir = xmalloc(5000);
	memset(c->maildir, 'm', 4990);
	strlcpy(c->maildir + 4990, "/%d/%u", 10);
	assert_int_equal(policy_rcpt_resolve(t, c, "a", "example.test", &tg,
	    &n), POLICY_RCPT_UNSAFE);
	assert_null(tg);
	assert_int_equal(policy_rcpt_resolve(t, c, "postmaster",
	    "example.test", &tg, &n), POLICY_RCPT_UNSAFE);
	policy_tables_free(t);
	test_conf_free(c);
}

/* sender_login: a user's own address and its aliases, nothing else. */
static void
test_sender_owned(void **state)
{
	static const struct {
		const char *user, *local, *domain;
		bool owned;
	} cases[] = {
		{ "alice@example.test", "alice", "example.test", true },
		{ "alice@example.test", "ALICE", "example.test", true },
		{ "ALICE@Example.Test", "alice", "example.test", true },
		{ "alice@example.test", "bob", "example.test", false },
		/* the same local part in another local domain */
		{ "alice@example.test", "alice", "other.test", false },
		/* full-address and local-part aliases that reach alice */
		{ "alice@example.test", "sales", "example.test", true },
		{ "alice@example.test", "team", "other.test", true },
		{ "alice@example.test", "info", "example.test", true },
		{ "alice@example.test", "info", "other.test", true },
		/* an alias that reaches bob only */
		{ "alice@example.test", "billing", "example.test", false },
		{ "bob@example.test", "billing", "example.test", true },
		/* two levels of aliases */
		{ "alice@example.test", "all", "example.test", true },
		/* the catch-all reaches alice but makes nothing hers */
		{ "alice@example.test", "anything", "third.test", false },
		{ "alice@example.test", "alice", "third.test", false },
		/* an alias that forwards out */
		{ "alice@example.test", "out", "example.test", false },
		/* not ours */
		{ "alice@example.test", "alice", "remote.test", false },
		{ "alice@example.test", "sales", "remote.test", false },
		/* a login without a domain (Dovecot): its local part in
		 * each local domain, and aliases to those */
		{ "alice", "alice", "example.test", true },
		{ "alice", "alice", "other.test", true },
		{ "alice", "alice", "remote.test", false },
		{ "alice", "bob", "example.test", false },
		{ "", "alice", "example.test", false },
		{ "alice@example.test", "", "example.test", false },
		{ "alice@example.test", "alice", "", false },
	};
	struct policy_tables *t;
	struct errs e = { "", 0 };
	struct conf *c;
	size_t i;

	(void)state;
	c = test_conf("alice@example.test:h\nbob@example.test:h\n"
	    "alice@other.test:h\n",
	    "sales@example.test: alice@example.test\n"
	    "team@other.test: alice@example.test, bob@example.test\n"
	    "info: alice@example.test\n"
	    "billing@example.test: bob\n"
	    "all@example.test: team@other.test\n"
	    "@third.test: alice@example.test\n"
	    "out@example.test: someone@remote.test\n");
	t = policy_tables_load(c, errs_cb, &e);
	assert_non_null(t);
	for (i = 0; i < nitems(cases); i++)
		if (policy_sender_owned(t, c, cases[i].user, cases[i].local,
		    cases[i].domain) != cases[i].owned)
			fail_msg("case %zu: %s as %s@%s: want %s", i,
			    cases[i].user, cases[i].local, cases[i].domain,
			    cases[i].owned ? "owned" : "not owned");
	assert_false(policy_sender_owned(t, c, NULL, "alice",
	    "example.test"));
	policy_tables_free(t);
	test_conf_free(c);
}

/* A large users table loads and answers quickly (hash lookups). */
static void
test_users_large(void **state)
{
	struct policy_tables *t;
	struct errs e = { "", 0 };
	struct conf *c;
	uint64_t start;
	char *users, addr[64];
	size_t len = 0, cap = 100000 * 40;
	int i;

	(void)state;
	users = xmalloc(cap);
	for (i = 0; i < 100000; i++)
		len += (size_t)snprintf(users + len, cap - len,
		    "user%d@example.test:$6$x\n", i);
	c = test_conf(users, NULL);
	free(users);
	start = time_mono_usec();
	t = policy_tables_load(c, errs_cb, &e);
	assert_non_null(t);
	for (i = 0; i < 100000; i++) {
		snprintf(addr, sizeof(addr), "USER%d@example.test", i);
		assert_non_null(policy_user_hash(t, addr));
	}
	assert_null(policy_user_hash(t, "user100000@example.test"));
	/* Generous bound: a linear scan would take minutes. */
	assert_true(time_mono_usec() - start < 10 * 1000000);
	policy_tables_free(t);
	test_conf_free(c);
}

/* ---- Maildir paths ---- */

struct path_case {
	const char *tmpl, *lp, *dom;
	const char *want;	/* NULL: refused */
};

static const struct path_case path_cases[] = {
	{ "/srv/mail/%d/%u", "alice", "example.test",
	    "/srv/mail/example.test/alice" },
	{ "/srv/mail/%d/%u", "Alice", "EXAMPLE.Test",
	    "/srv/mail/example.test/alice" },
	{ "/srv/mail/%d/%u", "a.b+tag", "example.test",
	    "/srv/mail/example.test/a.b+tag" },
	{ "/srv/mail/%d/%u", "a..b", "example.test",
	    "/srv/mail/example.test/a..b" },
	{ "/srv/mail/%d/%u", "trailing.", "example.test",
	    "/srv/mail/example.test/trailing." },
	{ "/srv/mail/%d/%u", "x", "[127.0.0.1]",
	    "/srv/mail/[127.0.0.1]/x" },
	{ "/srv/mail/%d/%u", "x", "[IPv6:::1]", "/srv/mail/[ipv6:::1]/x" },
	/* UTF-8: only ASCII is lower-cased. */
	{ "/srv/mail/%d/%u", "J\xc3\x9crgen", "b\xc3\xbc" "cher.test",
	    "/srv/mail/b\xc3\xbc" "cher.test/j\xc3\x9crgen" },
	{ "/srv/mail/%d/%u", "john doe", "example.test",
	    "/srv/mail/example.test/john doe" },
	/* The API sees a C string: an embedded NUL ends the part. */
	{ "/srv/mail/%d/%u", "x\0y", "example.test",
	    "/srv/mail/example.test/x" },
	{ "%u-%%-%d", "a", "b", "a-%-b" },
	{ "/srv/mail/%d/%u", "../x", "example.test", NULL },
	{ "/srv/mail/%d/%u", "a/../../b", "example.test", NULL },
	{ "/srv/mail/%d/%u", "a/b", "example.test", NULL },
	{ "/srv/mail/%d/%u", "/etc", "example.test", NULL },
	{ "/srv/mail/%d/%u", ".hidden", "example.test", NULL },
	{ "/srv/mail/%d/%u", ".", "example.test", NULL },
	{ "/srv/mail/%d/%u", "..", "example.test", NULL },
	{ "/srv/mail/%d/%u", "", "example.test", NULL },
	{ "/srv/mail/%d/%u", "x", "", NULL },
	{ "/srv/mail/%d/%u", "x", "..", NULL },
	{ "/srv/mail/%d/%u", "x", ".", NULL },
	{ "/srv/mail/%d/%u", "x", "a/b", NULL },
	{ "/srv/mail/%d/%u", "x", "../../etc", NULL },
	{ "/srv/mail/%d/%u", "a\nb", "example.test", NULL },
	{ "/srv/mail/%d/%u", "a\x01", "example.test", NULL },
	{ "/srv/mail/%d/%u", "a\x7f", "example.test", NULL },
	{ "/srv/mail/%d/%u", "a\tb", "example.test", NULL },
	{ "/srv/mail/%d/%u", "x", "ex\x1b" "ample", NULL },
	{ "/srv/mail/%d/%x", "x", "y", NULL },
};

static void
test_mailbox_path_table(void **state)
{
	struct conf c;
	char out[512];
	size_t i;
	int r;

	(void)state;
	memset(&c, 0, sizeof(c));
	for (i = 0; i < nitems(path_cases); i++) {
		const struct path_case *pc = &path_cases[i];

		c.maildir = (char *)pc->tmpl;
		r = policy_mailbox_path(&c, pc->lp, pc->dom, out,
		    sizeof(out));
		if (pc->want == NULL) {
			if (r != -1)
				fail_msg("case %zu (%s, %s): got %s, want "
				    "refusal", i, pc->lp, pc->dom, out);
			continue;
		}
		if (r != 0)
			fail_msg("case %zu (%s, %s): refused, want %s", i,
			    pc->lp, pc->dom, pc->want);
		assert_string_equal(out, pc->want);
	}
}

static void
test_mailbox_path_limits(void **state)
{
	struct conf c;
	char out[64], big[300];

	(void)state;
	memset(&c, 0, sizeof(c));
	c.maildir = (char *)"/srv/mail/%d/%u";
	/* "/srv/mail/example.test/alice" is 28 bytes plus NUL. */
	assert_int_equal(policy_mailbox_path(&c, "alice", "example.test",
	    out, 29), 0);
	assert_string_equal(out, "/srv/mail/example.test/alice");
	assert_int_equal(policy_mailbox_path(&c, "alice", "example.test",
	    out, 28), -1);
	assert_string_equal(out, "");
	assert_int_equal(policy_mailbox_path(&c, "alice", "example.test",
	    out, 0), -1);
	/* A part longer than a file name can be. */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(policy_mailbox_path(&c, big, "x", out,
	    sizeof(out)), -1);
	big[255] = '\0';
	assert_int_equal(policy_mailbox_path(&c, big, "x", out,
	    sizeof(out)), -1);	/* fits NAME_MAX, not out */
	c.maildir = NULL;
	assert_int_equal(policy_mailbox_path(&c, "a", "b", out,
	    sizeof(out)), -1);
}

/* Every result of the path function stays below the root. */
static void
test_mailbox_path_never_escapes(void **state)
{
	static const char alphabet[] = { 'a', '.', '/', '\\', '%', 'u', 0x01,
		(char)0xc3, (char)0xa9 };
	struct conf c;
	char lp[5], out[256];
	unsigned int i, j, k;
	size_t len;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.maildir = (char *)"/root/%d/%u";
	/* Every string of length 1..4 over the alphabet. */
	for (len = 1; len <= 4; len++) {
		unsigned int total = 1;

		for (k = 0; k < len; k++)
			total *= nitems(alphabet);
		for (i = 0; i < total; i++) {
			unsigned int v = i;

			for (j = 0; j < len; j++) {
				lp[j] = alphabet[v % nitems(alphabet)];
				v /= nitems(alphabet);
			}
			lp[len] = '\0';
			if (policy_mailbox_path(&c, lp, "d", out,
			    sizeof(out)) == -1)
				continue;
			assert_memory_equal(out, "/root/d/", 8);
			assert_null(strchr(out + 8, '/'));
			assert_true(out[8] != '.');
		}
	}
}

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	return rmdir(tmpdir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_users_ok),
		cmocka_unit_test(test_users_errors),
		cmocka_unit_test(test_users_unusable),
		cmocka_unit_test(test_users_warnings),
		cmocka_unit_test(test_missing_files),
		cmocka_unit_test(test_aliases_errors),
		cmocka_unit_test(test_aliases_syntax),
		cmocka_unit_test(test_aliases_shadow_users),
		cmocka_unit_test(test_resolve_table),
		cmocka_unit_test(test_resolve_max_targets),
		cmocka_unit_test(test_resolve_unknown_member_logged),
		cmocka_unit_test(test_resolve_unsafe),
		cmocka_unit_test(test_users_large),
		cmocka_unit_test(test_sender_owned),
		cmocka_unit_test(test_mailbox_path_table),
		cmocka_unit_test(test_mailbox_path_limits),
		cmocka_unit_test(test_mailbox_path_never_escapes),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
