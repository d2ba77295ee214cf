/*
 * test_msgauth_dkim_interop.c: cross-checks with dkimpy (Debian's
 * python3-dkim, an independent implementation), offline: its dnsfunc
 * answers from a file this test writes, never from DNS.
 *   - A corpus (folded headers, empty body, trailing white space, 8-bit
 *     body, 900-octet lines, duplicate headers, no final CRLF, WSP runs,
 *     empty lines at the end, MIME) is signed here with RSA and Ed25519
 *     in all four canonicalizations; dkimpy verifies every message, and
 *     rejects a tampered copy of each (so the harness can fail).
 *   - Mail::DKIM (Perl) verifies the same (Ed25519 only when that
 *     Mail::DKIM has ed25519-sha256: not Debian 12's); it differs from RFC 6376 3.4.3 on
 *     a body without a final CRLF under simple, which is let through;
 *   - dkimpy signs the same corpus (RSA and Ed25519; simple, relaxed and
 *     mixed), and every message verifies here; tampered copies fail.
 * Skipped (not failed) when /usr/bin/python3 cannot import dkim.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "msgauth/dkim.h"

#include "testutil.h"
#include "test_msgauth_dkim_util.h"

#define PYTHON	"/usr/bin/python3"
#define PERL	"/usr/bin/perl"

#define P1024	"MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5" \
	"V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC" \
	"DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBf" \
	"O2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB"
#define PED "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

static const char dns_text[] =
    "rsa._domainkey.example.com v=DKIM1; k=rsa; p=" P1024 "\n"
    "ed._domainkey.example.com v=DKIM1; k=ed25519; p=" PED "\n";

/*
 * The dkimpy side. argv: dir mode [rsakey edkey]. "verify" prints PASS or
 * FAIL per *.eml; "sign" writes *.signed for every *.in and prints SIGNED.
 */
static const char py_script[] =
    "import os, sys\n"
    "import dkim\n"
    "d, mode = sys.argv[1], sys.argv[2]\n"
    "dns = {}\n"
    "for line in open(os.path.join(d, 'dns.txt')):\n"
    "    line = line.rstrip('\\r\\n')\n"
    "    if line:\n"
    "        n, r = line.split(' ', 1)\n"
    "        dns[n + '.'] = r\n"
    "def dnsfunc(name, timeout=5):\n"
    "    return dns.get(name.decode('ascii'))\n"
    "if mode == 'verify':\n"
    "    for f in sorted(os.listdir(d)):\n"
    "        if f.endswith('.eml'):\n"
    "            msg = open(os.path.join(d, f), 'rb').read()\n"
    "            ok = dkim.verify(msg, dnsfunc=dnsfunc)\n"
    "            print(('PASS ' if ok else 'FAIL ') + f)\n"
    "else:\n"
    "    rsa = open(sys.argv[3], 'rb').read()\n"
    "    ed = open(sys.argv[4], 'rb').read().strip()\n"
    "    for f in sorted(os.listdir(d)):\n"
    "        if not f.endswith('.in'):\n"
    "            continue\n"
    "        msg = open(os.path.join(d, f), 'rb').read()\n"
    "        for alg, key, sel in ((b'rsa-sha256', rsa, b'rsa'),\n"
    "                              (b'ed25519-sha256', ed, b'ed')):\n"
    "            for c in ((b'simple', b'simple'), (b'relaxed', b'relaxed'),\n"
    "                      (b'relaxed', b'simple'), (b'simple', b'relaxed')):\n"
    "                sig = dkim.sign(msg, sel, b'example.com', key,\n"
    "                    canonicalize=c, signature_algorithm=alg)\n"
    "                out = '%s.%s.%s-%s.signed' % (f[:-3], sel.decode(),\n"
    "                    c[0].decode(), c[1].decode())\n"
    "                open(os.path.join(d, out), 'wb').write(sig + msg)\n"
    "                print('SIGNED ' + out)\n";

/*
 * Mail::DKIM (Perl), a third implementation: verifies every *.eml of the
 * directory, keys from dns.txt through a stand-in for its DNS query.
 */
static const char perl_script[] =
    "use strict; use warnings;\n"
    "use Mail::DKIM::Verifier; use Net::DNS;\n"
    "my ($dir) = @ARGV; my %dns;\n"
    "open(my $fh, '<', \"$dir/dns.txt\") or die;\n"
    "while (<$fh>) { s/\\r?\\n$//; next unless length;\n"
    "    my ($n, $r) = split(/ /, $_, 2); $dns{lc $n} = $r; }\n"
    "{ no warnings 'redefine';\n"
    "  *Mail::DKIM::DNS::query = sub {\n"
    "    my ($d, $t) = @_; my $r = $dns{lc $d};\n"
    "    if (!defined $r) { $@ = 'NXDOMAIN'; return; }\n"
    "    my @c; for (my $i = 0; $i < length $r; $i += 255) {\n"
    "        push @c, substr($r, $i, 255); }\n"
    "    $@ = 'NOERROR';\n"
    "    return (Net::DNS::RR->new(name => $d, type => 'TXT',\n"
    "        txtdata => [@c]));\n"
    "  }; }\n"
    "opendir(my $dh, $dir) or die;\n"
    "for my $f (sort grep { /\\.eml$/ } readdir $dh) {\n"
    "    open(my $m, '<:raw', \"$dir/$f\") or die;\n"
    "    my $msg = do { local $/; <$m> };\n"
    "    my $v = Mail::DKIM::Verifier->new();\n"
    "    $v->PRINT($msg); $v->CLOSE();\n"
    "    print(($v->result eq 'pass' ? 'PASS ' : 'FAIL ') . $f . ' '\n"
    "        . $v->result_detail . \"\\n\");\n"
    "}\n";

struct corpus {
	const char *name;
	const char *text;
	size_t len;
};

#define C(name, s)	{ name, s, sizeof(s) - 1 }

static char long_lines[4096];

static struct corpus corpus[] = {
	C("folded", "From: Joe\r\n <joe@example.com>\r\n"
	    "Subject: a\r\n\tfolded\r\n   subject\r\n"
	    "To: x@example.net,\r\n\ty@example.net\r\n\r\nbody\r\n"),
	C("emptybody", "From: a@example.com\r\nSubject: empty\r\n\r\n"),
	C("trailingws", "From: a@example.com \r\nSubject: trailing \t\r\n"
	    "\r\nline with trailing space \r\nand tab\t\r\n \t\r\n\r\n\r\n"),
	C("8bit", "From: a@example.com\r\nSubject: 8bit\r\n"
	    "Content-Type: text/plain; charset=iso-8859-1\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n"
	    "d\xe9j\xe0 vu \xff\xfe\r\nna\xefve\r\n"),
	{ "longlines", long_lines, 0 },
	C("duplicates",
	    "Received: from a by b; Sun, 29 Nov 2026 01:00:00 +0000\r\n"
	    "Received: from c by d; Sun, 29 Nov 2026 01:00:01 +0000\r\n"
	    "From: a@example.com\r\nTo: one@example.net\r\n"
	    "To: two@example.net\r\nSubject: first\r\nSubject: second\r\n"
	    "Cc: c@example.org\r\n\r\nbody\r\n"),
	C("nofinalcrlf", "From: a@example.com\r\nSubject: x\r\n\r\n"
	    "no newline at the end"),
	/* No WSP before a colon: dkimpy refuses that obsolete form. */
	C("wsp", "From:  a@example.com\r\nSubject:\t spaced   out \r\n"
	    "Date: Sun, 29 Nov 2026 08:00:00 +0000\r\n\r\n"
	    "  leading\r\ninner    spaces\t\there\r\n"),
	C("emptylines", "From: a@example.com\r\n\r\n\r\n\r\ntext\r\n\r\n\r\n"
	    "\r\n"),
	C("mime", "From: a@example.com\r\nTo: b@example.net\r\n"
	    "Subject: mime\r\nMIME-Version: 1.0\r\nContent-Type: multipart/"
	    "mixed;\r\n boundary=\"xx\"\r\n\r\n--xx\r\nContent-Type: text/"
	    "plain\r\n\r\npart\r\n--xx--\r\n"),
};

static void
write_file(const char *dir, const char *name, const char *data, size_t len)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
remove_dir(const char *dir)
{
	char path[1024];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/*
 * Run prog -e|-c script args...; its stdout into out. Returns the exit
 * code.
 */
static int
run_prog(const char *prog, const char *flag, const char *script,
    const char *const *args, size_t nargs, struct buf *out)
{
	const char *argv[16];
	int fds[2], status;
	size_t i, n = 0;
	ssize_t r;
	char tmp[4096];
	pid_t pid;

	argv[n++] = prog;
	argv[n++] = flag;
	argv[n++] = script;
	for (i = 0; i < nargs && n < nitems(argv) - 1; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execv(prog, (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	while ((r = read(fds[0], tmp, sizeof(tmp))) > 0)
		assert_int_equal(buf_append(out, tmp, (size_t)r), 0);
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int
run_python(const char *const *args, size_t nargs, struct buf *out)
{
	return run_prog(PYTHON, "-c", py_script, args, nargs, out);
}

/* Whether prog flag code exits 0 (a module is there). */
static bool
have(const char *prog, const char *flag, const char *code)
{
	const char *argv[] = { prog, flag, code, NULL };
	int status;
	pid_t pid;

	if (access(prog, X_OK) != 0)
		return false;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, 2);
		execv(prog, (char *const *)argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static char *
make_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *dir = xasprintf("%s/petrel-dkim-XXXXXX",
	    base != NULL ? base : "/tmp");

	assert_non_null(mkdtemp(dir));
	return dir;
}

static void
fill_long_lines(void)
{
	struct buf b;
	int i;

	buf_init(&b, sizeof(long_lines) - 1);
	assert_int_equal(buf_append_str(&b, "From: a@example.com\r\n"
	    "Subject: 900-octet lines\r\n\r\n"), 0);
	for (i = 0; i < 900; i++)
		assert_int_equal(buf_append(&b, i % 10 == 9 ? " " : "x", 1), 0);
	assert_int_equal(buf_append_str(&b, "\r\n"), 0);
	for (i = 0; i < 900; i++)
		assert_int_equal(buf_append(&b, i % 7 == 0 ? "\t" : "y", 1), 0);
	assert_int_equal(buf_append_str(&b, "  \r\n"), 0);
	memcpy(long_lines, b.data, b.len);
	corpus[4].len = b.len;
	buf_free(&b);
}

/*
 * Sign the corpus into dir (RSA, and Ed25519 when with_ed), a tampered
 * copy of each beside it; returns the number of signed messages.
 */
static size_t
write_signed_corpus(const char *dir, bool with_ed)
{
	struct dkim_privkey *rsa = dt_load_key("dkimpy-data/test.private");
	struct dkim_privkey *ed =
	    dt_load_key("rfc8463/ed25519-brisbane.private.pem");
	size_t i, nfiles = 0;
	int k, c;

	write_file(dir, "dns.txt", dns_text, sizeof(dns_text) - 1);
	for (i = 0; i < nitems(corpus); i++) {
		for (k = 0; k < (with_ed ? 2 : 1); k++) {
			for (c = 0; c < 4; c++) {
				struct dkim_sign_opts o;
				const char *err = NULL;
				char *field, *msg, name[128];
				size_t flen;

				dkim_sign_opts_init(&o, "example.com",
				    k ? "ed" : "rsa");
				o.hcanon = c & 1 ? DKIM_CANON_RELAXED :
				    DKIM_CANON_SIMPLE;
				o.bcanon = c & 2 ? DKIM_CANON_RELAXED :
				    DKIM_CANON_SIMPLE;
				field = dkim_sign(corpus[i].text, corpus[i].len,
				    k ? ed : rsa, &o, &err);
				if (field == NULL)
					fail_msg("%s: %s", corpus[i].name, err);
				flen = strlen(field);
				msg = malloc(flen + corpus[i].len + 1);
				assert_non_null(msg);
				memcpy(msg, field, flen);
				memcpy(msg + flen, corpus[i].text,
				    corpus[i].len);
				snprintf(name, sizeof(name), "%s.%s.%d.eml",
				    corpus[i].name, k ? "ed" : "rsa", c);
				write_file(dir, name, msg,
				    flen + corpus[i].len);
				/* A tampered copy: one body octet more. */
				msg[flen + corpus[i].len] = 'Z';
				snprintf(name, sizeof(name),
				    "tampered-%s.%s.%d.eml", corpus[i].name,
				    k ? "ed" : "rsa", c);
				write_file(dir, name, msg,
				    flen + corpus[i].len + 1);
				nfiles++;
				free(msg);
				free(field);
			}
		}
	}
	dkim_privkey_free(rsa);
	dkim_privkey_free(ed);
	return nfiles;
}

/*
 * Every PASS line is a signed file, every FAIL a tampered one; except that
 * a signed file whose name starts with lenient (NULL: none) may fail: a
 * known disagreement, printed.
 */
static void
check_verdicts(const char *who, const char *out, size_t nfiles,
    const char *lenient)
{
	size_t npass = 0, nfail = 0, nknown = 0;
	const char *p;

	for (p = out; *p != '\0'; p = strchr(p, '\n') + 1) {
		bool tampered = strncmp(p + 5, "tampered-", 9) == 0;

		if (strncmp(p, "PASS ", 5) == 0 && !tampered)
			npass++;
		else if (strncmp(p, "FAIL ", 5) == 0 && tampered)
			nfail++;
		else if (lenient != NULL && strncmp(p, "FAIL ", 5) == 0 &&
		    strncmp(p + 5, lenient, strlen(lenient)) == 0) {
			print_message("%s (known): %.*s\n", who,
			    (int)strcspn(p, "\n"), p);
			nknown++;
		} else
			fail_msg("%s: %.*s", who, (int)strcspn(p, "\n"), p);
	}
	print_message("%s verified %zu Petrel signatures (%zu known "
	    "disagreements), refused %zu tampered copies\n", who, npass,
	    nknown, nfail);
	assert_int_equal(npass + nknown, nfiles);
	assert_true(nknown <= 4);
	assert_int_equal(nfail, nfiles);
}

/* Petrel signs, dkimpy verifies. */
static void
test_petrel_to_dkimpy(void **state)
{
	const char *args[2];
	char *dir = make_tmpdir();
	struct buf out;
	size_t nfiles;

	(void)state;
	nfiles = write_signed_corpus(dir, true);
	buf_init(&out, 1 << 20);
	args[0] = dir;
	args[1] = "verify";
	assert_int_equal(run_python(args, 2, &out), 0);
	check_verdicts("dkimpy", buf_str(&out), nfiles, NULL);
	buf_free(&out);
	remove_dir(dir);
	free(dir);
}

/*
 * Petrel signs, Mail::DKIM verifies: RSA always, Ed25519 when this
 * Mail::DKIM has the algorithm (1.20230630 and later, with
 * Crypt::PK::Ed25519 from libcryptx-perl; Debian 12's 1.20230212 has
 * not).
 */
static void
test_petrel_to_maildkim(void **state)
{
	const char *args[1];
	char *dir;
	struct buf out;
	size_t nfiles;
	bool ed = have(PERL, "-e", "use Crypt::PK::Ed25519; "
	    "use Mail::DKIM::Algorithm::ed25519_sha256;");

	(void)state;
	if (!have(PERL, "-e", "use Mail::DKIM::Verifier; use Net::DNS;")) {
		print_message("skipped: no Mail::DKIM\n");
		skip();
	}
	if (!ed)
		print_message("Ed25519 not checked: this Mail::DKIM has no "
		    "ed25519-sha256 (or no Crypt::PK::Ed25519)\n");
	dir = make_tmpdir();
	nfiles = write_signed_corpus(dir, ed);
	buf_init(&out, 1 << 20);
	args[0] = dir;
	assert_int_equal(run_prog(PERL, "-e", perl_script, args, 1, &out), 0);
	/*
	 * Mail::DKIM 1.20230212 adds no CRLF to a body without one under
	 * simple body canonicalization, against RFC 6376 3.4.3 (dkimpy and
	 * go-msgauth's "Joe." vector add it). Only SMTP-less mail can lack
	 * it.
	 */
	check_verdicts("Mail::DKIM", buf_str(&out), nfiles, "nofinalcrlf.");
	buf_free(&out);
	remove_dir(dir);
	free(dir);
}

/* dkimpy signs, Petrel verifies. */
static void
test_dkimpy_to_petrel(void **state)
{
	char *dir = make_tmpdir();
	char rsakey[1024], edkey[1024];
	const char *args[4];
	struct buf out;
	size_t i, n = 0;
	const char *p;

	(void)state;
	/* dkimpy reads the keys itself: the shared files by path. */
	test_conformance_path(rsakey, sizeof(rsakey),
	    "dkim/dkimpy-data/test.private");
	test_conformance_path(edkey, sizeof(edkey),
	    "dkim/dkimpy-data/rfc8032_7_1.key");
	write_file(dir, "dns.txt", dns_text, sizeof(dns_text) - 1);
	for (i = 0; i < nitems(corpus); i++) {
		char name[128];

		snprintf(name, sizeof(name), "%s.in", corpus[i].name);
		write_file(dir, name, corpus[i].text, corpus[i].len);
	}
	buf_init(&out, 1 << 20);
	args[0] = dir;
	args[1] = "sign";
	args[2] = rsakey;
	args[3] = edkey;
	assert_int_equal(run_python(args, 4, &out), 0);
	for (p = buf_str(&out); *p != '\0'; p = strchr(p, '\n') + 1) {
		struct dt_sigresult res[DT_MAX_SIGS];
		char name[256], path[1024], *msg;
		size_t len = 0, nsig;

		assert_true(strncmp(p, "SIGNED ", 7) == 0);
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(p + 7, "\n"),
		    p + 7);
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		msg = dt_read_path(path, &len);
		assert_non_null(msg);
		nsig = dt_verify_all(msg, len, dns_text, NULL, res);
		assert_int_equal(nsig, 1);
		if (res[0].result != DKIM_RESULT_PASS)
			fail_msg("%s: got %s (%s)", name,
			    dkim_result_str(res[0].result),
			    dkim_reason_str(res[0].reason));
		/* Tampered: one octet more in the body. */
		msg = realloc(msg, len + 2);
		assert_non_null(msg);
		msg[len] = 'Z';
		nsig = dt_verify_all(msg, len + 1, dns_text, NULL, res);
		assert_int_equal(nsig, 1);
		if (res[0].result != DKIM_RESULT_FAIL)
			fail_msg("tampered %s: got %s", name,
			    dkim_result_str(res[0].result));
		free(msg);
		n++;
	}
	print_message("Petrel verified %zu dkimpy signatures\n", n);
	assert_int_equal(n, nitems(corpus) * 8);
	buf_free(&out);
	remove_dir(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_petrel_to_dkimpy),
		cmocka_unit_test(test_petrel_to_maildkim),
		cmocka_unit_test(test_dkimpy_to_petrel),
	};

	if (!have(PYTHON, "-c", "import dkim")) {
		printf("# skipped: %s cannot import dkim (python3-dkim)\n",
		    PYTHON);
		return 0;
	}
	fill_long_lines();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
