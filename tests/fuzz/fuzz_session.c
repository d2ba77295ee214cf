/*
 * fuzz_session.c: libFuzzer target for the whole SMTP session of
 * src/smtp/session.c (and what it drives: the command parser, the DATA
 * and BDAT machines, the policy look-ups, the SASL exchange and the
 * Dovecot auth client, the spool writer), fed a client byte stream.
 *
 * The seam is the one io.h names: a session runs over a socketpair().
 * LLVMFuzzerInitialize() builds, once, what the daemon builds: two
 * configurations (files in a scratch directory, under /dev/shm when it
 * exists), their policy tables and runtimes, an event loop, the real
 * spool (its directory in the same scratch directory, so tmpfs: commits
 * and fsyncs are cheap) and an smtp_server. AUTH goes to a fake Dovecot
 * auth server served on the same loop (a Unix socket in the scratch
 * directory): the users-file backend would cost a yescrypt run per
 * attempt. The fake answers OK for alice@example.test with the password
 * "secret", FAIL with "temp" for tmp@example.test, FAIL otherwise. No
 * DNS: SPF, DKIM and DMARC are off (they have their own targets).
 *
 * Input: byte 0 picks the session: bit 0 the listener (submission, else
 * mx), bit 1 a trusted client address, bit 2 an IPv6 one, bit 3 the
 * second configuration (bare_lf normalize, smaller limits, mx_auth),
 * bit 4 a local session instead (the sendmail socket's: uid 1000, login
 * alice, or none with bit 5).
 * Bytes 1-4 are the sizes of the pieces the rest is written in, used in
 * turn (0: all that is left; 255: up to the next LF, a client that waits
 * for each reply), so partial lines and split CRLF.CRLF are covered;
 * after each piece the loop runs until nothing moves (spool threads
 * drained, no event active, no reply byte new for three passes).
 * Then the client shuts down its sending side, the loop settles again,
 * and the session must be gone.
 *
 * Invariants (a failure aborts):
 *   - every reply line is well formed: three digits (2xx-5xx), then ' '
 *     or '-', printable ASCII or well-formed UTF-8 (an SMTPUTF8 address
 *     echoed, only if the input says SMTPUTF8), CRLF-terminated, no CR, LF, NUL or other control inside;
 *     the lines of a multi-line reply share the code; the output ends
 *     with a complete reply;
 *   - nothing follows a 221 or a 421 (the session closed);
 *   - a "250 2.0.0 Ok: queued as ID" either directly follows a 354 or
 *     answers a BDAT LAST: those not after a 354 are at most the number
 *     of "LAST" in the input, and the 354s at most the number of "DATA":
 *     one acknowledged transaction per DATA or BDAT LAST at most;
 *   - every acknowledged ID is one the spool made durable (the server's
 *     queued callback, which finds queue/ID on disk), in the same order,
 *     each once: nothing acknowledged is lost, nothing durable unsaid;
 *   - after the client's EOF the session ends by itself, no file is left
 *     in incoming/ (a refused or abandoned message is removed), and the
 *     loop settles within a bound (no busy loop).
 * Each queue/ID is removed once checked: nothing is left between runs.
 * The scratch directory is removed at exit (after a crash, by the next
 * run: its name carries the pid).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "conf/conf.h"
#include "lib/base64.h"
#include "lib/log.h"
#include "lib/utf8.h"
#include "policy/policy.h"
#include "queue/spool.h"
#include "smtp/reply.h"
#include "smtp/smtp.h"
#include "smtp/smtp_private.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

#define FZ_OUT_MAX	(4 * 1024 * 1024)	/* replies kept per run */
#define FZ_PASSES_MAX	100000			/* loop passes per settle */
#define FZ_IDS_MAX	1024
#define FZ_DC_MAX	8			/* fake Dovecot connections */
#define FZ_DC_LINE	20000

#define FZ_QUEUED	"250 2.0.0 Ok: queued as "

/* The fake Dovecot auth server's connections. */
struct fz_dc {
	int fd;
	struct event *ev;
	char buf[FZ_DC_LINE];
	size_t len;
};

static struct {
	char dir[128];
	char spool[160];
	struct event_base *base;
	struct spool *sp;
	struct smtp_server *srv;
	struct smtp_runtime *rt[2];
	struct conf_listen listen[2][2];	/* [conf][mx, submission] */

	int dc_lfd;
	struct event *dc_lev;
	struct fz_dc dc[FZ_DC_MAX];
	char resp_ok[128], resp_temp[128];

	/* this run */
	int fd;				/* the client's end */
	bool eof;
	char *out;
	size_t outlen;
	bool out_full;
	char *ids[FZ_IDS_MAX];		/* made durable, in order */
	size_t nids;
} fz;

/* ---- set-up ---- */

static void
fz_die(const char *what)
{
	perror(what);
	exit(1);
}

static void
fz_write_file(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", fz.dir, name);
	if ((f = fopen(path, "w")) == NULL)
		fz_die(path);
	fputs(text, f);
	if (fclose(f) != 0)
		fz_die(path);
}

static void
fz_conf_error(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "fuzz_session: %s\n", msg);
	exit(1);
}

static struct smtp_runtime *
fz_runtime(int n, const char *extra)
{
	char name[32], text[2048], path[256];
	struct conf *c;
	struct policy_tables *t;
	size_t i;

	snprintf(text, sizeof(text),
	    "hostname mx.example.test\n"
	    "spool %s\n"
	    "run_dir %s\n"
	    "listen 127.0.0.1:2525 mx\n"
	    "listen 127.0.0.1:2587 submission\n"
	    "domain example.test\n"
	    "domain other.test\n"
	    "users %s/users\n"
	    "aliases %s/aliases\n"
	    "trusted 192.0.2.0/24\n"
	    "trusted 2001:db8::/32\n"
	    "greeting_delay 0\n"
	    "auth dovecot unix:%s/auth\n"
	    "auth_plaintext on\n"
	    "auth_fail_delay 0\n"
	    "msgauth no\n"
	    "%s",
	    fz.spool, fz.dir, fz.dir, fz.dir, fz.dir, extra);
	snprintf(name, sizeof(name), "petrel%d.conf", n);
	fz_write_file(name, text);
	snprintf(path, sizeof(path), "%s/%s", fz.dir, name);
	if ((c = conf_load(path, fz_conf_error, NULL)) == NULL)
		exit(1);
	if ((t = policy_tables_load(c, fz_conf_error, NULL)) == NULL)
		exit(1);
	for (i = 0; i < c->nlisten && i < 2; i++)
		fz.listen[n][c->listen[i].role == CONF_ROLE_SUBMISSION] =
		    c->listen[i];
	return smtp_runtime_new(c, t);
}

static int
fz_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	(void)remove(path);
	return 0;
}

static void
fz_cleanup(void)
{
	if (fz.dir[0] == '/')
		(void)nftw(fz.dir, fz_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * A crash ends the process without atexit(): remove the scratch
 * directories of fuzz_session processes that no longer exist (the name
 * carries the pid).
 */
static void
fz_cleanup_stale(const char *base)
{
	static const char prefix[] = "petrel-fuzz-session.";
	char path[256], *end;
	struct dirent *de;
	unsigned long pid;
	DIR *d;

	if ((d = opendir(base)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, sizeof(prefix) - 1) != 0)
			continue;
		errno = 0;
		pid = strtoul(de->d_name + sizeof(prefix) - 1, &end, 10);
		if (errno != 0 || *end != '.' || pid == 0 || pid > INT32_MAX ||
		    kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", base, de->d_name);
		(void)nftw(path, fz_rm, 16, FTW_DEPTH | FTW_PHYS);
	}
	closedir(d);
}

/* ---- the fake Dovecot auth server ---- */

static void
fz_dc_send(struct fz_dc *c, const char *s)
{
	size_t len = strlen(s), off = 0;
	ssize_t n;

	/* Lines are short and the peer reads on the same loop: a full
	 * socket buffer would be a fake that lies, so give up on it. */
	while (off < len) {
		n = send(c->fd, s + off, len - off, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		off += (size_t)n;
	}
}

static void
fz_dc_close(struct fz_dc *c)
{
	event_free(c->ev);
	close(c->fd);
	c->fd = -1;
	c->ev = NULL;
	c->len = 0;
}

static void
fz_dc_line(struct fz_dc *c, char *line)
{
	char *f[16], *p, reply[256];
	size_t n = 0, i;
	const char *resp = NULL;

	for (p = line; n < 16; ) {
		f[n++] = p;
		if ((p = strchr(p, '\t')) == NULL)
			break;
		*p++ = '\0';
	}
	if (strcmp(f[0], "AUTH") != 0 || n < 3)
		return;		/* VERSION, CPID */
	for (i = 3; i < n; i++)
		if (strncmp(f[i], "resp=", 5) == 0)
			resp = f[i] + 5;
	if (resp != NULL && strcmp(resp, fz.resp_ok) == 0)
		snprintf(reply, sizeof(reply),
		    "OK\t%s\tuser=alice@example.test\n", f[1]);
	else if (resp != NULL && strcmp(resp, fz.resp_temp) == 0)
		snprintf(reply, sizeof(reply), "FAIL\t%s\ttemp\n", f[1]);
	else
		snprintf(reply, sizeof(reply), "FAIL\t%s\tuser=x\n", f[1]);
	fz_dc_send(c, reply);
}

static void
fz_dc_readcb(evutil_socket_t fd, short what, void *arg)
{
	struct fz_dc *c = arg;
	char *lf;
	ssize_t n;

	(void)fd;
	(void)what;
	n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			fz_dc_close(c);
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	while ((lf = memchr(c->buf, '\n', c->len)) != NULL) {
		*lf = '\0';
		fz_dc_line(c, c->buf);
		c->len -= (size_t)(lf + 1 - c->buf);
		memmove(c->buf, lf + 1, c->len);
	}
	if (c->len == sizeof(c->buf) - 1)
		fz_dc_close(c);		/* the client's lines are bounded */
}

static void
fz_dc_acceptcb(evutil_socket_t fd, short what, void *arg)
{
	struct fz_dc *c = NULL;
	size_t i;
	int cfd;

	(void)what;
	(void)arg;
	if ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) ==
	    -1)
		return;
	for (i = 0; i < FZ_DC_MAX; i++)
		if (fz.dc[i].fd == -1) {
			c = &fz.dc[i];
			break;
		}
	if (c == NULL) {
		close(cfd);
		return;
	}
	c->fd = cfd;
	c->len = 0;
	c->ev = event_new(fz.base, cfd, EV_READ | EV_PERSIST, fz_dc_readcb, c);
	if (c->ev == NULL || event_add(c->ev, NULL) == -1)
		fz_die("event_new");
	fz_dc_send(c, "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\n"
	    "MECH\tLOGIN\tplaintext\nSPID\t1\nCUID\t1\nCOOKIE\t00\nDONE\n");
}

static void
fz_dc_listen(void)
{
	struct sockaddr_un sun;
	unsigned char plain[64];
	size_t i, len;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/auth",
	    fz.dir) >= sizeof(sun.sun_path))
		fz_die("socket path");
	fz.dc_lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fz.dc_lfd == -1 ||
	    bind(fz.dc_lfd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(fz.dc_lfd, 16) == -1)
		fz_die("fake dovecot socket");
	fz.dc_lev = event_new(fz.base, fz.dc_lfd, EV_READ | EV_PERSIST,
	    fz_dc_acceptcb, NULL);
	if (fz.dc_lev == NULL || event_add(fz.dc_lev, NULL) == -1)
		fz_die("event_new");
	for (i = 0; i < FZ_DC_MAX; i++)
		fz.dc[i].fd = -1;
	/* PLAIN's message as the client sends it: authzid NUL authcid
	 * NUL password, authzid empty. */
	len = 1 + strlen("alice@example.test") + 1 + strlen("secret");
	memcpy(plain, "\0alice@example.test\0secret", len);
	if (base64_encode(plain, len, fz.resp_ok, sizeof(fz.resp_ok)) == -1)
		fz_die("base64");
	len = 1 + strlen("tmp@example.test") + 1 + strlen("secret");
	memcpy(plain, "\0tmp@example.test\0secret", len);
	if (base64_encode(plain, len, fz.resp_temp, sizeof(fz.resp_temp)) ==
	    -1)
		fz_die("base64");
}

/* ---- the server's side ---- */

static void
fz_queued(void *arg, const char *id, const struct envelope *env)
{
	char path[256];
	struct stat st;
	size_t i;

	(void)arg;
	CHECK(env != NULL && env->nrcpts > 0);
	CHECK(fz.nids < FZ_IDS_MAX);
	snprintf(path, sizeof(path), "%s/queue/%s", fz.spool, id);
	/* Durable means on disk, in queue/. */
	CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode));
	CHECK(unlink(path) == 0);
	for (i = 0; i < fz.nids; i++)
		CHECK(strcmp(fz.ids[i], id) != 0);	/* IDs are unique */
	if ((fz.ids[fz.nids] = strdup(id)) == NULL)
		fz_die("strdup");
	fz.nids++;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" :
	    "/tmp";
	const char *error;

	(void)argc;
	(void)argv;
	log_init("fuzz_session", getenv("FUZZ_SESSION_SHOW") != NULL ?
	    LOG_LEVEL_DEBUG : LOG_LEVEL_ERR);
	if (evthread_use_pthreads() == -1)
		fz_die("evthread_use_pthreads");
	fz_cleanup_stale(base);
	snprintf(fz.dir, sizeof(fz.dir), "%s/petrel-fuzz-session.%ld.XXXXXX",
	    base, (long)getpid());
	if (mkdtemp(fz.dir) == NULL)
		fz_die("mkdtemp");
	atexit(fz_cleanup);
	snprintf(fz.spool, sizeof(fz.spool), "%s/spool", fz.dir);
	fz_write_file("users",
	    "alice@example.test:\n"
	    "bob@example.test:\n"
	    "carol@other.test:\n");
	fz_write_file("aliases",
	    "postmaster: alice\n"
	    "team: alice, bob@example.test, someone@remote.test\n"
	    "loop1: loop2\n"
	    "loop2: loop1\n"
	    "info@other.test: carol@other.test\n");
	fz.rt[0] = fz_runtime(0, "max_message_size 100000\n");
	fz.rt[1] = fz_runtime(1,
	    "bare_lf normalize\n"
	    "max_message_size 600\n"
	    "max_recipients 3\n"
	    "max_errors 5\n"
	    "max_hops 3\n"
	    "max_header_size 300\n"
	    "max_line_length 1000\n"
	    "mx_auth on\n"
	    "sender_login off\n"
	    "auth_max_failures 2\n");
	if ((fz.base = event_base_new()) == NULL)
		fz_die("event_base_new");
	if ((fz.sp = spool_open(fz.spool, fz.base, 1, &error)) == NULL) {
		fprintf(stderr, "fuzz_session: spool: %s\n", error);
		exit(1);
	}
	fz_dc_listen();
	fz.srv = smtp_server_new(fz.base, fz.sp, fz.rt[0], fz_queued, NULL);
	fz.out = malloc(FZ_OUT_MAX);
	if (fz.out == NULL)
		fz_die("malloc");
	return 0;
}

/* ---- one run ---- */

/* Read what the session wrote. Returns true if anything came. */
static bool
fz_read(void)
{
	char tmp[65536];
	bool got = false;
	ssize_t n;

	if (fz.eof)
		return false;
	for (;;) {
		n = recv(fz.fd, tmp, sizeof(tmp), 0);
		if (n == 0) {
			fz.eof = true;
			return true;
		}
		if (n < 0) {
			CHECK(errno == EAGAIN || errno == EINTR ||
			    errno == ECONNRESET);
			if (errno == ECONNRESET) {
				fz.eof = true;
				return true;
			}
			return got;
		}
		got = true;
		if (fz.outlen + (size_t)n > FZ_OUT_MAX) {
			fz.out_full = true;
			continue;
		}
		memcpy(fz.out + fz.outlen, tmp, (size_t)n);
		fz.outlen += (size_t)n;
	}
}

/* Run the loop and the spool until nothing moves. */
static void
fz_settle(void)
{
	unsigned int idle = 0, passes = 0;
	bool moved;

	while (idle < 3) {
		CHECK(++passes < FZ_PASSES_MAX);	/* a busy loop */
		spool_drain(fz.sp);
		event_base_loop(fz.base, EVLOOP_NONBLOCK);
		moved = fz_read();
		if (event_base_get_num_events(fz.base,
		    EVENT_BASE_COUNT_ACTIVE) > 0)
			moved = true;
		idle = moved ? 0 : idle + 1;
	}
}

/* Write p[0..len) to the session. False once it stopped reading. */
static bool
fz_send(const uint8_t *p, size_t len)
{
	unsigned int stuck = 0;
	ssize_t n;

	while (len > 0) {
		n = send(fz.fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			stuck = 0;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return false;		/* EPIPE: it closed */
		fz_settle();
		/* A session that stops reading must have a reason to:
		 * spool lag or unread replies, both cleared by settling. */
		if (++stuck > 100)
			return false;
	}
	return true;
}

static size_t
fz_count(const uint8_t *data, size_t size, const char *word)
{
	size_t i, n = 0, wl = strlen(word), k;

	for (i = 0; i + wl <= size; i++) {
		for (k = 0; k < wl; k++)
			if ((data[i + k] | 0x20) != (word[k] | 0x20))
				break;
		if (k == wl)
			n++;
	}
	return n;
}

static void
fz_check_output(const uint8_t *in, size_t insize)
{
	const char *p = fz.out, *end = fz.out + fz.outlen, *lf, *q;
	char code[4] = "", prev = ' ';
	bool after_354 = false, closed = false, utf8_ok;
	size_t acks_bdat = 0, n354 = 0, nacks = 0, idlen, u;

	utf8_ok = fz_count(in, insize, "SMTPUTF8") > 0;
	while (p < end) {
		CHECK(!closed);		/* nothing after 221 or 421 */
		lf = memchr(p, '\n', (size_t)(end - p));
		CHECK(lf != NULL);	/* a complete line */
		CHECK(lf - p >= 5 && lf[-1] == '\r');
		CHECK(p[0] >= '2' && p[0] <= '5' && p[1] >= '0' &&
		    p[1] <= '9' && p[2] >= '0' && p[2] <= '9');
		CHECK(p[3] == ' ' || p[3] == '-');
		for (q = p + 4; q < lf - 1; q++) {
			if ((unsigned char)*q < 0x80) {
				CHECK(*q >= 0x20 && *q <= 0x7e);
				continue;
			}
			/* An SMTPUTF8 address echoed (RFC 6531 3.7.4.2):
			 * only to a client that said SMTPUTF8. */
			CHECK(utf8_ok);
			u = utf8_seq_len(q);
			CHECK(u > 0 && q + u <= lf - 1);
			q += u - 1;
		}
		if (prev == '-')	/* a continuation: the same code */
			CHECK(memcmp(code, p, 3) == 0);
		memcpy(code, p, 3);
		prev = p[3];
		if (prev == ' ') {
			if (memcmp(p, "221", 3) == 0 ||
			    memcmp(p, "421", 3) == 0)
				closed = true;
			if ((size_t)(lf - p) > strlen(FZ_QUEUED) &&
			    memcmp(p, FZ_QUEUED, strlen(FZ_QUEUED)) == 0) {
				if (!after_354)
					acks_bdat++;
				q = p + strlen(FZ_QUEUED);
				idlen = (size_t)(lf - 1 - q);
				/* The same ID the spool made durable, in
				 * the same order. */
				CHECK(nacks < fz.nids);
				CHECK(strlen(fz.ids[nacks]) == idlen &&
				    memcmp(fz.ids[nacks], q, idlen) == 0);
				nacks++;
			}
			after_354 = memcmp(p, "354", 3) == 0;
			if (after_354)
				n354++;
		}
		p = lf + 1;
	}
	CHECK(prev == ' ');		/* no reply left half-way */
	CHECK(n354 <= fz_count(in, insize, "DATA"));
	CHECK(acks_bdat <= fz_count(in, insize, "LAST"));
	/* Durable but never acknowledged: the client was still there. */
	CHECK(nacks == fz.nids);
}

/* No message file is left behind in incoming/. */
static void
fz_check_incoming(void)
{
	char path[256];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/incoming", fz.spool);
	if ((d = opendir(path)) == NULL)
		fz_die(path);
	while ((de = readdir(d)) != NULL)
		CHECK(de->d_name[0] == '.');
	closedir(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	const uint8_t *in, *lf;
	size_t len, off, piece, i;
	uint8_t flags, sizes[4];
	int sv[2], cf;
	socklen_t salen;

	if (size < 5)
		return 0;
	flags = data[0];
	memcpy(sizes, data + 1, sizeof(sizes));
	in = data + 5;
	len = size - 5;
	cf = (flags >> 3) & 1;

	memset(&ss, 0, sizeof(ss));
	if (flags & 4) {
		sin6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, flags & 2 ? "2001:db8::25" :
		    "2001:db9::25", &sin6->sin6_addr);
		salen = sizeof(*sin6);
	} else {
		sin->sin_family = AF_INET;
		inet_pton(AF_INET, flags & 2 ? "192.0.2.25" : "198.51.100.25",
		    &sin->sin_addr);
		salen = sizeof(*sin);
	}
	smtp_server_set_runtime(fz.srv, fz.rt[cf]);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) == -1)
		fz_die("socketpair");
	fz.fd = sv[1];
	fz.eof = false;
	fz.outlen = 0;
	fz.out_full = false;
	fz.nids = 0;
	if (flags & 0x10)
		smtp_server_local_session(fz.srv, sv[0], 1000,
		    flags & 0x20 ? NULL : "alice");
	else
		smtp_session_start(fz.srv, sv[0], (struct sockaddr *)&ss,
		    salen, &fz.listen[cf][flags & 1], REPLY_NONE);
	fz_settle();

	for (off = 0, i = 0; off < len; i++) {
		piece = sizes[i % 4];
		if (piece == 255 && (lf = memchr(in + off, '\n',
		    len - off)) != NULL)
			piece = (size_t)(lf - (in + off)) + 1;
		if (piece == 0 || piece > len - off)
			piece = len - off;
		if (!fz_send(in + off, piece))
			break;
		off += piece;
		fz_settle();
	}
	shutdown(fz.fd, SHUT_WR);
	fz_settle();
	if (getenv("FUZZ_SESSION_SHOW") != NULL)
		fprintf(stderr, "%.*s-- %zu durable, %zu session(s) left\n",
		    (int)fz.outlen, fz.out, fz.nids,
		    smtp_server_sessions(fz.srv));
	/* The client is gone: so is the session, by itself. */
	CHECK(smtp_server_sessions(fz.srv) == 0);
	CHECK(fz.eof);
	close(fz.fd);

	if (!fz.out_full)
		fz_check_output(in, len);
	fz_check_incoming();
	for (i = 0; i < fz.nids; i++)
		free(fz.ids[i]);
	return 0;
}
