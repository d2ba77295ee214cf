/*
 * postdrop.c: petrel-postdrop, the tiny setgid helper that leaves a
 * message in the maildrop directory when the daemon is down (Postfix's
 * postdrop model). `petrel sendmail` runs it with the envelope and the
 * message on its stdin:
 *
 *   sender <alice@host.example>
 *   [ret FULL|HDRS] [envid XTEXT] [notify NEVER|SUCCESS,FAILURE,DELAY]
 *   rcpt <bob@example.org>        (one or more)
 *   data
 *   <the message, CRLF line ends, until EOF>
 *
 * and it writes a maildrop file (local/maildrop.c, docs/queue-format.md)
 * that records the caller's real uid. Exit 0 once the file is in place
 * and fsync'd (the file and the directory); 64 usage, 65 a bad envelope
 * or a message over max_message_size or max_recipients, 75 the maildrop
 * cannot be written (try again), 78 configuration error.
 *
 * Entry point: main.
 *
 * SECURITY: installed setgid petreldrop (mode 2755): the maildrop is mode
 * 1730, owner the daemon's user, group petreldrop, so only this program
 * (and root) can create files there, nobody but the owner can list it,
 * and the sticky bit keeps users from removing each other's files. It
 * trusts nothing from its caller: the uid it records is getuid(), and the
 * file it writes is owned by that uid (the daemon takes the identity from
 * the file's owner and checks the recorded uid against it); the
 * environment is ignored when it runs with privilege (PETREL_CONFIG, -c
 * from a caller other than root unless the file is root's own); it reads
 * the configuration only for maildrop, max_message_size and
 * max_recipients and never writes it; every envelope line is bounded and
 * the message is cut off (and refused) at max_message_size. The file is
 * written under a temporary name ("t" + 16 hex digits), O_EXCL and
 * O_NOFOLLOW, mode 0600 until complete, then made 0644 and renamed to
 * "m" + the same digits: the pickup never sees half a file.
 * OWNERSHIP: one process, one file.
 */
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "lib/util.h"
#include "local/local.h"

/*
 * Sanitizer builds only: LeakSanitizer cannot run in a setgid process
 * (not dumpable, so it cannot stop the threads it inspects) and would
 * fail every drop; AddressSanitizer itself stays on.
 */
#if defined(__SANITIZE_ADDRESS__)
#define POSTDROP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POSTDROP_ASAN 1
#endif
#endif
#ifdef POSTDROP_ASAN
const char *__asan_default_options(void);

const char *
__asan_default_options(void)
{
	return "detect_leaks=0";
}
#endif

static void
postdrop_conf_error(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "petrel-postdrop: %s\n", msg);
}

/*
 * With privilege, a configuration the caller names is read only when the
 * caller is root or root owns the file: otherwise the caller could point
 * the setgid program's maildrop elsewhere.
 */
static struct conf *
postdrop_conf(const char *cli_path)
{
	bool privileged = getegid() != getgid() || geteuid() != getuid();
	const char *path, *source;
	struct stat st;

	if (privileged && getuid() != 0) {
		if (cli_path != NULL && (stat(cli_path, &st) == -1 ||
		    st.st_uid != 0 || (st.st_mode & 022) != 0)) {
			fprintf(stderr, "petrel-postdrop: -c %s: not a file "
			    "owned by root and writable only by root; "
			    "refused\n", cli_path);
			return NULL;
		}
		path = conf_locate_from(cli_path, CONF_SYSTEM_PATH, &source);
		if (cli_path == NULL && path != NULL &&
		    strcmp(source, "PETREL_CONFIG") == 0)
			path = access(CONF_SYSTEM_PATH, F_OK) == 0 ?
			    CONF_SYSTEM_PATH : NULL;
	} else
		path = conf_locate(cli_path, &source);
	if (path == NULL)
		return conf_default();
	return conf_load(path, postdrop_conf_error, NULL);
}

static int
postdrop_syncfs(const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), r;

	if (fd == -1)
		return -1;
	r = syncfs(fd);
	close(fd);
	return r;
}

int
main(int argc, char **argv)
{
	struct maildrop_env e;
	struct conf *c;
	const char *cli_path = NULL, *err = NULL;
	char line[MAILDROP_LINE_MAX + 2], buf[65536];
	char tmp[4096], final[4096];
	unsigned char rnd[8];
	uint64_t size = 0;
	size_t n;
	int fd = -1, ch, r, rc = LOCAL_EX_TEMPFAIL;

	umask(077);
	while ((ch = getopt(argc, argv, "c:")) != -1) {
		switch (ch) {
		case 'c':
			cli_path = optarg;
			break;
		default:
			fprintf(stderr, "usage: petrel-postdrop [-c FILE] "
			    "< envelope-and-message\n");
			return LOCAL_EX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: petrel-postdrop [-c FILE] "
		    "< envelope-and-message\n");
		return LOCAL_EX_USAGE;
	}
	if ((c = postdrop_conf(cli_path)) == NULL)
		return LOCAL_EX_CONFIG;

	maildrop_env_init(&e);
	for (;;) {
		if (fgets(line, sizeof(line), stdin) == NULL) {
			fprintf(stderr, "petrel-postdrop: the envelope ends "
			    "before its data line\n");
			rc = LOCAL_EX_DATAERR;
			goto done;
		}
		n = strlen(line);
		if (n == 0 || line[n - 1] != '\n') {
			fprintf(stderr, "petrel-postdrop: envelope line too "
			    "long\n");
			rc = LOCAL_EX_DATAERR;
			goto done;
		}
		line[n - 1] = '\0';
		if ((r = maildrop_parse_line(&e, line, true, &err)) == -1) {
			fprintf(stderr, "petrel-postdrop: %s\n", err);
			rc = LOCAL_EX_DATAERR;
			goto done;
		}
		if (r == 1)
			break;
	}
	if (e.nrcpts > c->max_recipients) {
		fprintf(stderr, "petrel-postdrop: %zu recipients: more than "
		    "max_recipients (%llu)\n", e.nrcpts,
		    (unsigned long long)c->max_recipients);
		rc = LOCAL_EX_DATAERR;
		goto done;
	}
	e.uid = (unsigned int)getuid();
	e.has_uid = true;

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		fprintf(stderr, "petrel-postdrop: getrandom: %s\n",
		    strerror(errno));
		goto done;
	}
	snprintf(buf, sizeof(buf), "%02x%02x%02x%02x%02x%02x%02x%02x",
	    rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/t%s", c->maildrop, buf) >=
	    sizeof(tmp) || (size_t)snprintf(final, sizeof(final), "%s/m%s",
	    c->maildrop, buf) >= sizeof(final)) {
		fprintf(stderr, "petrel-postdrop: maildrop path too long\n");
		rc = LOCAL_EX_CONFIG;
		goto done;
	}
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1) {
		fprintf(stderr, "petrel-postdrop: cannot create a file in the "
		    "maildrop %s: %s%s\n", c->maildrop, strerror(errno),
		    errno == EACCES ? " (petrel-postdrop must be installed "
		    "setgid petreldrop, and `petrel serve` creates the "
		    "maildrop 1730 petrel:petreldrop)" : errno == ENOENT ?
		    " (`petrel serve` creates it at start)" : "");
		goto done;
	}
	if (maildrop_write_env(fd, &e) == -1)
		goto writefail;
	for (;;) {
		n = fread(buf, 1, sizeof(buf), stdin);
		if (n == 0)
			break;
		size += n;
		if (size > c->max_message_size) {
			fprintf(stderr, "petrel-postdrop: message too large "
			    "(max_message_size %llu octets); nothing was "
			    "sent\n", (unsigned long long)c->max_message_size);
			rc = LOCAL_EX_DATAERR;
			goto unlink;
		}
		if (write_all(fd, buf, n) == -1)
			goto writefail;
	}
	if (ferror(stdin)) {
		fprintf(stderr, "petrel-postdrop: reading the message: %s\n",
		    strerror(errno));
		rc = LOCAL_EX_IOERR;
		goto unlink;
	}
	if (maildrop_set_size(fd, size) == -1 || fsync(fd) == -1 ||
	    fchmod(fd, 0644) == -1)
		goto writefail;
	if (close(fd) == -1) {
		fd = -1;
		goto writefail;
	}
	fd = -1;
	if (rename(tmp, final) == -1)
		goto writefail;
	/*
	 * The new name must be durable too. The caller's group gives no read
	 * permission on the maildrop (1730), so it cannot be opened to fsync
	 * it: then syncfs() through the file, which commits the directory
	 * with everything else on that file system (the fallback is rare:
	 * the daemon is down).
	 */
	if (fsync_dir(c->maildrop) == -1 && (errno != EACCES ||
	    postdrop_syncfs(final) == -1)) {
		/* In place but maybe not durable: report, keep the file. */
		fprintf(stderr, "petrel-postdrop: fsync %s: %s\n", c->maildrop,
		    strerror(errno));
		goto done;
	}
	rc = LOCAL_EX_OK;
	goto done;
writefail:
	fprintf(stderr, "petrel-postdrop: writing %s: %s; nothing was sent\n",
	    tmp, strerror(errno));
	rc = LOCAL_EX_TEMPFAIL;
unlink:
	(void)unlink(tmp);
done:
	if (fd != -1)
		close(fd);
	maildrop_env_free(&e);
	conf_free(c);
	return rc;
}
