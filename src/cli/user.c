/*
 * user.c: `petrel user`, the users file editor.
 *
 *   petrel user add [-c FILE] ADDRESS [--stdin]     new user, new password
 *   petrel user passwd [-c FILE] ADDRESS [--stdin]  replace the password
 *   petrel user del [-c FILE] ADDRESS               remove the user
 *
 * The users file is the configuration's `users` (found like every other
 * command finds its configuration: -c, $PETREL_CONFIG, then
 * /etc/petrel/petrel.conf). The password is asked twice on the terminal
 * with echo off, or read as one line from standard input with --stdin
 * (a final CR LF or LF is not part of it). It is stored as a yescrypt
 * hash from libcrypt's defaults: "address:$y$...".
 *
 * The file is rewritten, never edited in place: every other line (other
 * users, comments, blank lines) is copied byte for byte into a temporary
 * file in the same directory, which is fsync'd, given the old file's mode
 * and owner, loaded exactly as the daemon loads it (a file the daemon
 * would refuse is never installed), renamed over the old one, and the
 * directory is fsync'd. A crash leaves either the old or the new file,
 * never a partial one. A symbolic link is followed: its target is
 * replaced. Two `petrel user` commands at once take turns (flock on the
 * directory). A new file is created 0640, group the daemon's `user` when
 * run as root, so that the daemon can read it after dropping privileges.
 *
 * Exit status: 0 done; 1 refused (user exists, no such user, bad
 * address, empty or mismatched password, I/O error, no users file
 * configured); 2 usage or configuration error.
 *
 * Entry point: cmd_user().
 * SECURITY: runs as the administrator. The password lives in one buffer
 * that is wiped (OPENSSL_cleanse) after hashing, as are crypt_r's work
 * area and output; it is read with read(2), never through stdio buffers;
 * the terminal's echo is restored on every exit path, signals included.
 * OWNERSHIP: everything is freed before return.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "conf/conf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mailaddr/mailaddr.h"
#include "policy/policy.h"

#define USER_PASSWORD_MAX	4096	/* octets, without the newline */
#define USER_FILE_MAX		(256 * 1024 * 1024)	/* users file */
#define USER_NEW_FILE_MODE	0640

int cmd_user(int argc, char **argv);

enum user_op {
	USER_ADD,
	USER_DEL,
	USER_PASSWD,
};

/* The users file, read whole, and where it lives. */
struct user_file {
	char *path;		/* the file (symbolic links followed) */
	char *dir;		/* its directory */
	bool exists;
	struct stat st;		/* when it exists */
	char *data;
	size_t len;
};

/* Set by the signal handler while the password is being typed. */
static volatile sig_atomic_t user_signal;

static void
user_usage(void)
{
	fprintf(stderr,
	    "usage: petrel user add [-c FILE] ADDRESS [--stdin]\n"
	    "       petrel user passwd [-c FILE] ADDRESS [--stdin]\n"
	    "       petrel user del [-c FILE] ADDRESS\n");
}

static void
user_conf_error(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "petrel: %s\n", msg);
}

/* ---- the address ---- */

static bool
user_is_safe_part(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || s[0] == '.')
		return false;
	for (i = 0; i < n; i++)
		if (s[i] == '/')
			return false;
	return true;
}

/*
 * Would the daemon's users loader take this address, and can it be
 * written as a line of the file? Returns NULL or why not.
 */
static const char *
user_check_address(const char *addr)
{
	const char *at = strchr(addr, '@'), *p;

	if (*addr == '\0')
		return "empty address";
	for (p = addr; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch < 0x20 || ch == 0x7f || ch == ' ')
			return "control characters and spaces are not allowed";
		if (ch == '"' || ch == '\\')
			return "quotes and backslashes are not allowed (write "
			    "the local part unquoted)";
		if (ch == ':')
			return "':' is not allowed (it ends the address in "
			    "the users file)";
	}
	if (addr[0] == '#')
		return "an address cannot start with '#' (a comment)";
	if (at == NULL || at == addr || at[1] == '\0' ||
	    strchr(at + 1, '@') != NULL)
		return "want local-part@domain with exactly one '@'";
	if ((size_t)(at - addr) > MAILADDR_LOCALPART_MAX)
		return "local part longer than 64 octets";
	if (strlen(at + 1) > MAILADDR_DOMAIN_MAX)
		return "domain longer than 255 octets";
	if (!user_is_safe_part(addr, (size_t)(at - addr)) ||
	    !user_is_safe_part(at + 1, strlen(at + 1)))
		return "a local part or domain cannot start with '.' or "
		    "contain '/' (it becomes a Maildir name)";
	return NULL;
}

/* ---- the file ---- */

static bool
user_is_space(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Is line[0..len) the users line of addr (any case)? Mirrors the
 * daemon's loader: blanks and '#' comments are skipped, the address is
 * what precedes the first ':', trimmed.
 */
static bool
user_line_is(const char *line, size_t len, const char *addr)
{
	const char *end = line + len, *colon;
	size_t alen = strlen(addr);

	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		end = line + --len;
	while (line < end && user_is_space(*line))
		line++;
	if (line == end || *line == '#')
		return false;
	colon = memchr(line, ':', (size_t)(end - line));
	if (colon == NULL)
		return false;
	while (colon > line && user_is_space(colon[-1]))
		colon--;
	return (size_t)(colon - line) == alen &&
	    ascii_strncasecmp(line, addr, alen) == 0;
}

/* Offset and length (newline included) of addr's line, or -1. */
static int
user_find(const struct user_file *f, const char *addr, size_t *off_r,
    size_t *len_r)
{
	size_t off = 0, n;
	const char *nl;

	while (off < f->len) {
		nl = memchr(f->data + off, '\n', f->len - off);
		n = nl != NULL ? (size_t)(nl - (f->data + off)) + 1 :
		    f->len - off;
		if (user_line_is(f->data + off, n, addr)) {
			*off_r = off;
			*len_r = n;
			return 0;
		}
		off += n;
	}
	return -1;
}

static void
user_file_clear(struct user_file *f)
{
	free(f->path);
	free(f->dir);
	free(f->data);
	memset(f, 0, sizeof(*f));
}

/* Where the file is: follow symbolic links so that rename replaces the
 * target, not the link. */
static int
user_file_locate(struct user_file *f, const char *users)
{
	char *real, *slash;

	memset(f, 0, sizeof(*f));
	real = realpath(users, NULL);
	if (real == NULL && errno != ENOENT) {
		fprintf(stderr, "petrel: %s: %s\n", users, strerror(errno));
		return -1;
	}
	f->path = real != NULL ? real : xstrdup(users);
	slash = strrchr(f->path, '/');
	if (slash == NULL)
		f->dir = xstrdup(".");
	else if (slash == f->path)
		f->dir = xstrdup("/");
	else
		f->dir = xstrndup(f->path, (size_t)(slash - f->path));
	return 0;
}

/* Read the whole file (or note that it does not exist). */
static int
user_file_read(struct user_file *f)
{
	size_t cap;
	ssize_t n;
	int fd;

	free(f->data);
	f->data = NULL;
	f->len = 0;
	f->exists = false;
	fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		fprintf(stderr, "petrel: %s: %s\n", f->path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &f->st) == -1) {
		fprintf(stderr, "petrel: %s: %s\n", f->path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(f->st.st_mode)) {
		fprintf(stderr, "petrel: %s: not a regular file\n", f->path);
		goto fail;
	}
	cap = (size_t)f->st.st_size + 4096;
	f->data = xmalloc(cap);
	for (;;) {
		if (f->len == cap) {
			if (cap > USER_FILE_MAX) {
				fprintf(stderr, "petrel: %s: larger than %d "
				    "bytes\n", f->path, USER_FILE_MAX);
				goto fail;
			}
			cap *= 2;
			f->data = xrealloc(f->data, cap);
		}
		n = read(fd, f->data + f->len, cap - f->len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			fprintf(stderr, "petrel: %s: %s\n", f->path,
			    strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		f->len += (size_t)n;
	}
	close(fd);
	f->exists = true;
	return 0;
fail:
	close(fd);
	return -1;
}

/* Print the loader's "FILE:LINE: message" under the real name. */
struct user_check {
	const char *tmp;
	const char *path;
};

static void
user_check_error(void *arg, const char *msg)
{
	struct user_check *uc = arg;
	size_t n = strlen(uc->tmp);

	if (strncmp(msg, uc->tmp, n) == 0)
		fprintf(stderr, "petrel: %s%s\n", uc->path, msg + n);
	else
		fprintf(stderr, "petrel: %s\n", msg);
}

/* Does the daemon's loader accept the file at tmp? */
static bool
user_file_loads(const struct conf *c, const char *tmp, const char *path)
{
	struct user_check uc = { tmp, path };
	struct policy_tables *t;
	struct conf copy = *c;

	copy.users = (char *)tmp;
	copy.aliases = NULL;
	/* Its warnings would name the temporary file; ours say it. */
	log_set_level(LOG_LEVEL_ERR);
	t = policy_tables_load(&copy, user_check_error, &uc);
	log_set_level(LOG_LEVEL_INFO);
	if (t == NULL)
		return false;
	policy_tables_free(t);
	return true;
}

/* Owner and mode for a file that does not exist yet. */
static void
user_new_owner(const struct conf *c, uid_t *uid, gid_t *gid, mode_t *mode)
{
	struct passwd *pw;

	*uid = geteuid();
	*gid = getegid();
	*mode = USER_NEW_FILE_MODE;
	if (*uid == 0 && c->user != NULL && (pw = getpwnam(c->user)) != NULL)
		*gid = pw->pw_gid;
}

/*
 * Replace the file with data[0..len): temporary file, fsync, mode and
 * owner, the loader's check, rename, directory fsync. Signals that would
 * kill us wait until the temporary file is renamed or removed.
 */
static int
user_file_replace(const struct conf *c, struct user_file *f,
    const char *data, size_t len)
{
	sigset_t block, old;
	char *tmp, *slash;
	uid_t uid;
	gid_t gid;
	mode_t mode;
	int fd, rc = -1;

	if (f->exists) {
		uid = f->st.st_uid;
		gid = f->st.st_gid;
		mode = f->st.st_mode & 07777;
	} else
		user_new_owner(c, &uid, &gid, &mode);
	slash = strrchr(f->path, '/');
	tmp = xasprintf("%s/.%s.XXXXXX", f->dir, slash != NULL ? slash + 1 :
	    f->path);

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGTSTP);
	sigprocmask(SIG_BLOCK, &block, &old);

	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd == -1) {
		fprintf(stderr, "petrel: cannot create a file in %s: %s\n",
		    f->dir, strerror(errno));
		goto out;
	}
	if (write_all(fd, data, len) == -1) {
		fprintf(stderr, "petrel: %s: write: %s\n", tmp,
		    strerror(errno));
		goto fail;
	}
	if (fchown(fd, uid, gid) == -1) {
		fprintf(stderr, "petrel: cannot keep the owner of %s "
		    "(uid %lu, gid %lu): %s\n", f->path, (unsigned long)uid,
		    (unsigned long)gid, strerror(errno));
		goto fail;
	}
	if (fchmod(fd, mode) == -1) {
		fprintf(stderr, "petrel: %s: chmod: %s\n", tmp,
		    strerror(errno));
		goto fail;
	}
	if (fsync(fd) == -1) {
		fprintf(stderr, "petrel: %s: fsync: %s\n", tmp,
		    strerror(errno));
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		fprintf(stderr, "petrel: %s: close: %s\n", tmp,
		    strerror(errno));
		goto fail;
	}
	fd = -1;
	if (!user_file_loads(c, tmp, f->path)) {
		fprintf(stderr, "petrel: %s left unchanged: the daemon would "
		    "refuse the result\n", f->path);
		goto fail;
	}
	if (rename(tmp, f->path) == -1) {
		fprintf(stderr, "petrel: rename %s to %s: %s\n", tmp, f->path,
		    strerror(errno));
		goto fail;
	}
	if (fsync_dir(f->dir) == -1) {
		/* Renamed: the change is made, only not yet durable. */
		fprintf(stderr, "petrel: %s: fsync: %s\n", f->dir,
		    strerror(errno));
		goto out;
	}
	rc = 0;
	goto out;
fail:
	if (fd != -1)
		close(fd);
	unlink(tmp);
out:
	sigprocmask(SIG_SETMASK, &old, NULL);
	free(tmp);
	return rc;
}

/* ---- the password ---- */

static void
user_signal_handler(int sig)
{
	user_signal = sig;
}

/*
 * Read one line from fd into buf (size USER_PASSWORD_MAX + 1) with
 * read(2), one byte at a time so that nothing after the newline is
 * consumed and no stdio buffer keeps a copy. Returns the length, or -1
 * (reported) on error, EOF before anything, an overlong line, a NUL
 * byte, or a signal.
 */
static ssize_t
user_read_line(int fd, char *buf, size_t size)
{
	size_t n = 0;
	ssize_t r;
	char ch;

	for (;;) {
		r = read(fd, &ch, 1);
		if (r == -1 && errno == EINTR && user_signal == 0)
			continue;
		if (r == -1) {
			if (user_signal == 0)
				fprintf(stderr, "petrel: reading the "
				    "password: %s\n", strerror(errno));
			return -1;
		}
		if (r == 0 || ch == '\n')
			break;
		if (ch == '\0') {
			fprintf(stderr, "petrel: the password contains a NUL "
			    "byte\n");
			OPENSSL_cleanse(&ch, 1);
			return -1;
		}
		if (n + 1 >= size) {
			fprintf(stderr, "petrel: password longer than %d "
			    "octets\n", USER_PASSWORD_MAX);
			OPENSSL_cleanse(&ch, 1);
			return -1;
		}
		buf[n++] = ch;
	}
	OPENSSL_cleanse(&ch, 1);
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return (ssize_t)n;
}

/* One prompt on the terminal with echo off; restored before return. */
static ssize_t
user_prompt(int fd, const char *prompt, char *buf, size_t size)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT,
	    SIGTSTP };
	struct sigaction sa, oldsa[5];
	struct termios old, noecho;
	ssize_t n;
	size_t i;

	if (tcgetattr(fd, &old) == -1) {
		fprintf(stderr, "petrel: terminal: %s\n", strerror(errno));
		return -1;
	}
	/* No SA_RESTART: a signal interrupts read() so that the echo is
	 * turned back on before we die of it. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = user_signal_handler;
	sigemptyset(&sa.sa_mask);
	user_signal = 0;
	for (i = 0; i < nitems(sigs); i++)
		sigaction(sigs[i], &sa, &oldsa[i]);
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
	noecho.c_lflag |= ECHONL;
	fputs(prompt, stderr);
	fflush(stderr);
	if (tcsetattr(fd, TCSAFLUSH, &noecho) == -1) {
		fprintf(stderr, "petrel: terminal: %s\n", strerror(errno));
		n = -1;
	} else {
		n = user_read_line(fd, buf, size);
		tcsetattr(fd, TCSAFLUSH, &old);
	}
	for (i = 0; i < nitems(sigs); i++)
		sigaction(sigs[i], &oldsa[i], NULL);
	if (user_signal != 0) {
		OPENSSL_cleanse(buf, size);
		fputc('\n', stderr);
		/* Die of it as we would have without the handler. */
		raise(user_signal);
		return -1;
	}
	return n;
}

/*
 * The new password into buf (size USER_PASSWORD_MAX + 1): twice from the
 * terminal, or one line of standard input. Returns 0 or -1 (reported).
 */
static int
user_get_password(bool from_stdin, const char *addr, char *buf,
    size_t size)
{
	char again[USER_PASSWORD_MAX + 1];
	char prompt[512];
	ssize_t n, m;
	int rc = -1;

	if (from_stdin) {
		n = user_read_line(STDIN_FILENO, buf, size);
		if (n == -1)
			return -1;
	} else {
		if (!isatty(STDIN_FILENO)) {
			fprintf(stderr, "petrel: standard input is not a "
			    "terminal: use --stdin to read the password from "
			    "it\n");
			return -1;
		}
		snprintf(prompt, sizeof(prompt), "New password for %s: ",
		    addr);
		if ((n = user_prompt(STDIN_FILENO, prompt, buf, size)) == -1)
			return -1;
		if (n > 0) {
			m = user_prompt(STDIN_FILENO, "Retype new password: ",
			    again, sizeof(again));
			if (m == -1)
				goto out;
			if (m != n || CRYPTO_memcmp(again, buf,
			    (size_t)n) != 0) {
				fprintf(stderr, "petrel: the passwords do not "
				    "match\n");
				goto out;
			}
		}
	}
	if (n == 0) {
		fprintf(stderr, "petrel: empty password refused\n");
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(again, sizeof(again));
	if (rc == -1)
		OPENSSL_cleanse(buf, size);
	return rc;
}

/* A yescrypt hash of password with libcrypt's default cost, or NULL. */
static char *
user_hash(const char *password)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	const char *h;
	char *hash = NULL;

	if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) == NULL) {
		fprintf(stderr, "petrel: crypt_gensalt: %s\n",
		    strerror(errno));
		return NULL;
	}
	cd = xcalloc(1, sizeof(*cd));
	h = crypt_r(password, salt, cd);
	if (h == NULL || h[0] == '*')
		fprintf(stderr, "petrel: crypt: %s\n", strerror(errno));
	else
		hash = xstrdup(h);
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return hash;
}

/* ---- the command ---- */

/* Build the new contents for op; NULL (reported) if op cannot apply. */
static char *
user_edit(enum user_op op, const struct user_file *f, const char *addr,
    const char *hash, size_t *len_r)
{
	size_t off, n, len;
	char *out, *line;

	if (user_find(f, addr, &off, &n) == 0) {
		if (op == USER_ADD) {
			fprintf(stderr, "petrel: %s is already a user in %s "
			    "(use `petrel user passwd` to change the "
			    "password)\n", addr, f->path);
			return NULL;
		}
	} else if (op != USER_ADD) {
		fprintf(stderr, "petrel: %s is not a user in %s\n", addr,
		    f->path);
		return NULL;
	}
	if (op == USER_ADD) {
		/* Appended; a last line without newline gets one. */
		bool nl = f->len > 0 && f->data[f->len - 1] != '\n';

		line = xasprintf("%s%s:%s\n", nl ? "\n" : "", addr, hash);
		len = f->len + strlen(line);
		out = xmalloc(len + 1);
		if (f->len > 0)
			memcpy(out, f->data, f->len);
		memcpy(out + f->len, line, strlen(line));
		free(line);
	} else {
		const char *keep = f->data + off, *colon;
		size_t alen;

		line = NULL;
		if (op == USER_PASSWD) {
			/* The address as it was written, the new hash. */
			while (user_is_space(*keep))
				keep++;
			colon = memchr(keep, ':',
			    n - (size_t)(keep - (f->data + off)));
			alen = (size_t)(colon - keep);
			while (alen > 0 && user_is_space(keep[alen - 1]))
				alen--;
			line = xasprintf("%.*s:%s\n", (int)alen, keep, hash);
		}
		len = f->len - n + (line != NULL ? strlen(line) : 0);
		out = xmalloc(len + 1);
		memcpy(out, f->data, off);
		if (line != NULL)
			memcpy(out + off, line, strlen(line));
		memcpy(out + off + (line != NULL ? strlen(line) : 0),
		    f->data + off + n, f->len - off - n);
		free(line);
	}
	out[len] = '\0';
	*len_r = len;
	return out;
}

static int
user_run(enum user_op op, const struct conf *c, const char *addr,
    bool from_stdin)
{
	char password[USER_PASSWORD_MAX + 1];
	struct user_file f;
	char *hash = NULL, *data = NULL;
	size_t len, off, n;
	int lockfd = -1, rc = 1;
	const char *at;

	if (user_file_locate(&f, c->users) == -1)
		return 1;
	/* Refuse early, before a password is typed for nothing. */
	if (user_file_read(&f) == -1)
		goto out;
	if (op == USER_ADD && f.exists && user_find(&f, addr, &off, &n) == 0) {
		fprintf(stderr, "petrel: %s is already a user in %s (use "
		    "`petrel user passwd` to change the password)\n", addr,
		    f.path);
		goto out;
	}
	if (op != USER_ADD && (!f.exists || user_find(&f, addr, &off,
	    &n) == -1)) {
		fprintf(stderr, "petrel: %s is not a user in %s\n", addr,
		    f.path);
		goto out;
	}
	if (op != USER_DEL) {
		if (user_get_password(from_stdin, addr, password,
		    sizeof(password)) == -1)
			goto out;
		hash = user_hash(password);
		OPENSSL_cleanse(password, sizeof(password));
		if (hash == NULL)
			goto out;
	}

	/* Under the lock: read again, edit, replace. */
	lockfd = open(f.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lockfd == -1 || flock(lockfd, LOCK_EX) == -1) {
		fprintf(stderr, "petrel: %s: %s\n", f.dir, strerror(errno));
		goto out;
	}
	if (user_file_read(&f) == -1)
		goto out;
	if ((data = user_edit(op, &f, addr, hash, &len)) == NULL)
		goto out;
	if (user_file_replace(c, &f, data, len) == -1)
		goto out;
	switch (op) {
	case USER_ADD:
		printf("petrel: added %s to %s\n", addr, f.path);
		at = strchr(addr, '@');
		if (!conf_is_local_domain(c, at + 1))
			fprintf(stderr, "petrel: warning: %s is not a local "
			    "domain: %s can log in but never receives mail\n",
			    at + 1, addr);
		break;
	case USER_PASSWD:
		printf("petrel: changed the password of %s in %s\n", addr,
		    f.path);
		break;
	case USER_DEL:
		printf("petrel: deleted %s from %s\n", addr, f.path);
		break;
	}
	rc = 0;
out:
	if (lockfd != -1)
		close(lockfd);
	free(data);
	free(hash);
	user_file_clear(&f);
	return rc;
}

int
cmd_user(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "stdin", no_argument, NULL, 'S' },
		{ "config", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf_path = NULL, *source, *path, *why;
	bool from_stdin = false;
	enum user_op op;
	struct conf *c;
	int ch, rc;

	if (argc < 2) {
		user_usage();
		return 2;
	}
	if (strcmp(argv[1], "add") == 0)
		op = USER_ADD;
	else if (strcmp(argv[1], "del") == 0)
		op = USER_DEL;
	else if (strcmp(argv[1], "passwd") == 0)
		op = USER_PASSWD;
	else {
		fprintf(stderr, "petrel: unknown user command \"%s\"\n",
		    argv[1]);
		user_usage();
		return 2;
	}
	argc--;
	argv++;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'S':
			if (op == USER_DEL) {
				user_usage();
				return 2;
			}
			from_stdin = true;
			break;
		default:
			user_usage();
			return 2;
		}
	}
	if (argc - optind != 1) {
		user_usage();
		return 2;
	}
	if ((why = user_check_address(argv[optind])) != NULL) {
		char e[128];

		fprintf(stderr, "petrel: invalid address \"%s\": %s\n",
		    log_escape(e, sizeof(e), argv[optind],
		    strlen(argv[optind])), why);
		return 1;
	}

	path = conf_locate(conf_path, &source);
	c = path != NULL ? conf_load(path, user_conf_error, NULL) :
	    conf_default();
	if (c == NULL)
		return 2;
	if (c->users == NULL) {
		fprintf(stderr, "petrel: %s has no `users FILE` line: there is "
		    "no users file to edit\n", path != NULL ? path :
		    "the built-in default configuration");
		conf_free(c);
		return 1;
	}
	rc = user_run(op, c, argv[optind], from_stdin);
	conf_free(c);
	return rc;
}
