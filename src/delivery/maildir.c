/*
 * maildir.c: deliver one queued message into one Maildir.
 *
 * Entry point: maildir_deliver(), called on a scheduler worker thread.
 *
 * The sequence (Maildir as D. J. Bernstein describes it, with the fsyncs
 * POSIX needs): create D/{tmp,new,cur} if absent; open tmp/NAME with
 * O_EXCL; write "Return-Path: <sender>" and the content with CRLF turned
 * into LF; fsync; checked close; link() tmp/NAME to new/NAME,S=SIZE
 * (link() fails with EEXIST where rename() would silently overwrite a
 * message); fsync new/; the first time in this process (or when this
 * call created directories) fsync D and every ancestor; unlink tmp/NAME.
 * A message is in new/ complete and durable, or not at all.
 *
 * SECURITY: runs with the daemon's unprivileged user. The path comes from
 * policy_mailbox_path(), which already refused anything that could leave
 * the Maildir root; tmp/ files are opened O_EXCL|O_NOFOLLOW. The content
 * is copied byte for byte (no header parsing).
 * STANDARDS: Maildir(5) (cr.yp.to/proto/maildir.html); Dovecot's naming
 * "time.M<usec>P<pid>Q<n>.<host>,S=<size>" and its escaping of '/' and
 * ':' in the host name (\057, \072); RFC 3463 status codes in replies.
 * THREADS: thread-safe: an atomic counter and a mutex-protected set of
 * the Maildirs whose ancestors this process has fsync'd.
 */
#include "delivery/delivery.h"

#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/dirsync.h"
#include "lib/log.h"
#include "lib/strset.h"
#include "lib/util.h"
#include "queue/spool.h"

#define MAILDIR_HOST_MAX	128	/* escaped host name in file names */
#define MAILDIR_NAME_TRIES	100	/* EEXIST retries, then fail */
#define MAILDIR_BUFSIZE		65536

/* Q<n>: unique within the process even when the clock stands still. */
static atomic_uint_fast64_t maildir_seq;

/*
 * Maildirs whose directory and ancestors this process has fsync'd. That a
 * Maildir exists does not make it durable: another thread may have just
 * created it and not yet fsync'd the parents, or an earlier run may have
 * crashed between a mkdir and the parent's fsync. So the first delivery
 * to each Maildir in a process fsyncs them, whoever created them. One
 * entry per Maildir ever delivered to: bounded by the number of users.
 */
static pthread_mutex_t maildir_synced_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct strset maildir_synced;	/* all-zero is strset_init() */

struct maildir_out {
	int fd;
	char buf[MAILDIR_BUFSIZE];
	size_t len;
	bool cr;		/* the previous chunk ended in CR */
	uint64_t size;		/* bytes written to the file */
	int error;		/* errno of a failed write, or 0 */
};

static int
maildir_out_flush(struct maildir_out *o)
{
	if (o->len == 0)
		return 0;
	if (write_all(o->fd, o->buf, o->len) == -1) {
		o->error = errno != 0 ? errno : EIO;
		return -1;
	}
	o->size += o->len;
	o->len = 0;
	return 0;
}

static int
maildir_out_put(struct maildir_out *o, char c)
{
	if (o->len == sizeof(o->buf) && maildir_out_flush(o) == -1)
		return -1;
	o->buf[o->len++] = c;
	return 0;
}

/*
 * Spool content callback: copy bytes, turning each CR LF into LF. A CR at
 * the end of a chunk waits for the next chunk to know what follows it.
 */
static int
maildir_content_cb(void *arg, const char *data, size_t len)
{
	struct maildir_out *o = arg;
	size_t i;

	for (i = 0; i < len; i++) {
		if (o->cr) {
			o->cr = false;
			if (data[i] == '\n') {
				if (maildir_out_put(o, '\n') == -1)
					return -1;
				continue;
			}
			if (maildir_out_put(o, '\r') == -1)
				return -1;
		}
		if (data[i] == '\r') {
			o->cr = true;
			continue;
		}
		if (maildir_out_put(o, data[i]) == -1)
			return -1;
	}
	return 0;
}

/* Dovecot's escaping: '/' and ':' cannot appear in a Maildir file name. */
static void
maildir_escape_host(char *out, size_t size, const char *host)
{
	char name[256];
	size_t o = 0;

	if (host == NULL || *host == '\0') {
		if (gethostname(name, sizeof(name)) == -1)
			strlcpy(name, "localhost", sizeof(name));
		name[sizeof(name) - 1] = '\0';
		host = name;
	}
	for (; *host != '\0' && o + 5 < size; host++) {
		if (*host == '/' || *host == ':') {
			snprintf(out + o, size - o, "\\%03o",
			    (unsigned char)*host);
			o += 4;
		} else if ((unsigned char)*host > 0x20 &&
		    (unsigned char)*host < 0x7f)
			out[o++] = *host;
	}
	out[o] = '\0';
}

/* <sec>.M<usec>P<pid>Q<n>.<host> */
static void
maildir_unique(char *out, size_t size, const char *host)
{
	struct timeval tv;
	uint64_t n;

	gettimeofday(&tv, NULL);
	n = (uint64_t)atomic_fetch_add(&maildir_seq, 1);
	snprintf(out, size, "%lld.M%06ldP%ldQ%llu.%s", (long long)tv.tv_sec,
	    (long)tv.tv_usec, (long)getpid(), (unsigned long long)n, host);
}

static bool
maildir_is_synced(const char *path)
{
	bool r;

	pthread_mutex_lock(&maildir_synced_mtx);
	r = strset_has(&maildir_synced, path);
	pthread_mutex_unlock(&maildir_synced_mtx);
	return r;
}

static void
maildir_set_synced(const char *path)
{
	pthread_mutex_lock(&maildir_synced_mtx);
	strset_add(&maildir_synced, path);
	pthread_mutex_unlock(&maildir_synced_mtx);
}

/*
 * An ancestor above the Maildir we may search but not read (mode 0711,
 * as home directories often are) cannot be opened to fsync: we did not
 * create anything in it either, so skip it rather than never deliver.
 */
static int
maildir_sync_parent(const char *dir)
{
	if (dirsync(dir) == -1 && errno != EACCES && errno != EPERM)
		return -1;
	return 0;
}

/*
 * fsync path and every ancestor, through dirsync() so that deliveries
 * into neighbouring Maildirs at the same moment share the fsyncs.
 */
static int
maildir_fsync_ancestors(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	if (strlcpy(dir, path, sizeof(dir)) >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (dirsync(dir[0] != '\0' ? dir : "/") == -1)
		return -1;
	for (;;) {
		if ((slash = strrchr(dir, '/')) == NULL)
			return maildir_sync_parent(".");
		if (slash == dir)
			return dir[1] != '\0' ? maildir_sync_parent("/") : 0;
		*slash = '\0';
		if (maildir_sync_parent(dir) == -1)
			return -1;
	}
}

/* Create path/{tmp,new,cur} (and path's parents), mode 0700. */
static int
maildir_create(const char *path)
{
	static const char *subdirs[] = { "tmp", "new", "cur" };
	char sub[PATH_MAX];
	size_t i;

	if (mkdir_p(path, 0700) == -1)
		return -1;
	for (i = 0; i < nitems(subdirs); i++) {
		if (snprintf(sub, sizeof(sub), "%s/%s", path, subdirs[i]) >=
		    (int)sizeof(sub)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (mkdir(sub, 0700) == -1 && errno != EEXIST)
			return -1;
	}
	/* Made durable by maildir_deliver() (created_r), before success. */
	return 0;
}

/*
 * Turn errno into a reply. Only a path too long is permanent: the path is
 * fixed in the queue file, so no retry can change it. Everything else
 * (disk full, quota, EIO, EACCES, a file where a directory should be) is
 * something an administrator can fix while the message waits.
 */
static int
maildir_fail(char *err, size_t errsize, bool *permanent_r, int e,
    const char *what)
{
	char eb[128];
	const char *msg;

	msg = strerror_r(e, eb, sizeof(eb));
	*permanent_r = false;
	switch (e) {
	case ENOSPC:
		snprintf(err, errsize, "452 4.3.1 Insufficient system storage "
		    "(Maildir %s: %s)", what, msg);
		break;
	case EDQUOT:
		snprintf(err, errsize, "452 4.2.2 Mailbox full (Maildir %s: "
		    "%s)", what, msg);
		break;
	case ENAMETOOLONG:
		*permanent_r = true;
		snprintf(err, errsize, "550 5.1.3 Maildir path too long");
		break;
	default:
		snprintf(err, errsize, "451 4.3.0 Maildir delivery failed "
		    "(%s: %s)", what, msg);
		break;
	}
	errno = e;	/* EBADMSG tells the caller the queue file is bad */
	return -1;
}

static int
maildir_path(char *out, size_t size, const char *path, const char *sub,
    const char *name)
{
	if (snprintf(out, size, "%s/%s/%s", path, sub, name) >= (int)size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/*
 * Open a new tmp/ file, creating the Maildir once if it is missing
 * (*created_r set: its ancestors need an fsync).
 */
static int
maildir_open_tmp(const char *path, const char *host, char *unique,
    size_t usize, char *tmp, size_t tsize, bool *created_r)
{
	bool created = false;
	int fd, tries;

	for (tries = 0; tries < MAILDIR_NAME_TRIES; tries++) {
		maildir_unique(unique, usize, host);
		if (maildir_path(tmp, tsize, path, "tmp", unique) == -1)
			return -1;
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
		if (fd != -1)
			return fd;
		if (errno == ENOENT && !created) {
			/* Set first: mkdir_p may fail half-way. */
			*created_r = true;
			if (maildir_create(path) == -1)
				return -1;
			created = true;
			tries--;
			continue;
		}
		if (errno != EEXIST)
			return -1;
	}
	errno = EEXIST;
	return -1;
}

int
maildir_deliver(const struct spool *sp, const char *id, const char *sender,
    const char *path, const char *hostname, char *err, size_t errsize,
    bool *permanent_r)
{
	struct maildir_out *o;
	char host[MAILDIR_HOST_MAX], unique[NAME_MAX + 1];
	char tmp[PATH_MAX], new[PATH_MAX], final[NAME_MAX + 1], dir[PATH_MAX];
	const char *what = "tmp";
	bool linked = false, created = false, created_new = false;
	const char *s;
	int fd = -1, r, e, tries;

	*permanent_r = false;
	err[0] = '\0';
	tmp[0] = '\0';
	/* Never from a file that parsed (qfile.c refuses absent ones). */
	if (sender == NULL || path == NULL)
		return maildir_fail(err, errsize, permanent_r, EINVAL,
		    sender == NULL ? "no sender in the envelope" :
		    "no Maildir path");
	maildir_escape_host(host, sizeof(host), hostname);
	o = xcalloc(1, sizeof(*o));

	if ((fd = maildir_open_tmp(path, host, unique, sizeof(unique), tmp,
	    sizeof(tmp), &created)) == -1) {
		e = errno;
		tmp[0] = '\0';
		goto fail;
	}
	o->fd = fd;

	what = "write";
	/* The sender was checked by the SMTP parser; drop control bytes
	 * anyway so that it can never add a header line. */
	if (maildir_out_put(o, 'R') == -1)
		goto fail_out;
	for (s = "eturn-Path: <"; *s != '\0'; s++)
		if (maildir_out_put(o, *s) == -1)
			goto fail_out;
	for (s = sender; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x20 && *s != 0x7f &&
		    maildir_out_put(o, *s) == -1)
			goto fail_out;
	if (maildir_out_put(o, '>') == -1 || maildir_out_put(o, '\n') == -1)
		goto fail_out;

	what = "read queue file";
	errno = 0;
	r = spool_read_content(sp, id, maildir_content_cb, o);
	if (r != 0) {
		if (o->error != 0) {
			what = "write";
			goto fail_out;
		}
		e = errno != 0 ? errno : EIO;
		log_warn("delivery: error queue=%s cannot read queue file: "
		    "%s", id, strerror_r(e, dir, sizeof(dir)));
		goto fail;
	}
	what = "write";
	if (o->cr && maildir_out_put(o, '\r') == -1)
		goto fail_out;
	if (maildir_out_flush(o) == -1)
		goto fail_out;
	what = "fsync";
	if (fsync(fd) == -1) {
		e = errno;
		goto fail;
	}
	what = "close";
	r = close(fd);
	fd = -1;
	if (r == -1) {
		e = errno;
		goto fail;
	}

	/* link(), never rename(): an existing name is EEXIST, not lost. */
	what = "link";
	for (tries = 0;; tries++) {
		if (snprintf(final, sizeof(final), "%s,S=%llu", unique,
		    (unsigned long long)o->size) >= (int)sizeof(final)) {
			e = ENAMETOOLONG;
			goto fail;
		}
		if (maildir_path(new, sizeof(new), path, "new", final) == -1) {
			e = errno;
			goto fail;
		}
		if (link(tmp, new) == 0)
			break;
		e = errno;
		if (e == ENOENT && !created_new) {
			/* new/ removed under us: recreate it once. */
			created = true;
			if (maildir_create(path) == -1) {
				e = errno;
				goto fail;
			}
			created_new = true;
			continue;
		}
		if (e != EEXIST || tries >= MAILDIR_NAME_TRIES)
			goto fail;
		maildir_unique(unique, sizeof(unique), host);
	}
	linked = true;

	what = "fsync new/";
	snprintf(dir, sizeof(dir), "%s/new", path);
	/* Shared with deliveries into the same Maildir at this moment. */
	if (dirsync(dir) == -1) {
		e = errno;
		goto fail;
	}
	/* new/ itself, and the way to it, must survive a crash too. */
	what = "fsync Maildir";
	if (created || !maildir_is_synced(path)) {
		if (maildir_fsync_ancestors(path) == -1) {
			e = errno;
			goto fail;
		}
		maildir_set_synced(path);
	}
	if (unlink(tmp) == -1)
		log_warn("delivery: cannot unlink %s: %s", tmp,
		    strerror_r(errno, dir, sizeof(dir)));
	free(o);
	return 0;

fail_out:
	e = o->error != 0 ? o->error : (errno != 0 ? errno : EIO);
fail:
	if (fd != -1)
		close(fd);
	/* Not durable: take it back out of new/ so that a retry does not
	 * leave two copies (a reader may have seen it: at worst a
	 * duplicate, never a loss). */
	if (linked)
		unlink(new);
	if (tmp[0] != '\0')
		unlink(tmp);
	free(o);
	return maildir_fail(err, errsize, permanent_r, e, what);
}
