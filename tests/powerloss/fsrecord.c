/*
 * fsrecord.c: an LD_PRELOAD shim that records what a process does to the
 * files under one directory, so that tests/e2e/test_powerloss.py can
 * rebuild that directory as a power loss at any moment would leave it.
 *
 * Entry points: the libc functions it wraps (open, openat, creat, write,
 * pwrite, writev, pwritev, ftruncate, fsync, fdatasync, close, rename,
 * renameat, renameat2, link, linkat, unlink, unlinkat, mkdir, mkdirat,
 * rmdir, their 64-bit aliases and the _FORTIFY_SOURCE __open_2 and
 * __openat_2). Each calls the next definition
 * (dlsym(RTLD_NEXT)), and when the call succeeded on something under
 * $FSRECORD_ROOT it appends one line to $FSRECORD_LOG (opened when the
 * library loads, before the daemon drops privileges):
 *
 *   START END PID TID OP ARGS...
 *
 * START and END are CLOCK_MONOTONIC nanoseconds taken just before and
 * just after the real call, so a client that reads the clock after a
 * reply knows which calls had ended before it. OP and ARGS (paths and
 * data in hex, INO the inode number of an open file):
 *   open FD INO FLAGS PATH    mkdir INO PATH       write INO OFFSET DATA
 *   trunc INO LENGTH          fsync INO            fdatasync INO
 *   rename FLAGS OLD NEW      link OLD NEW         unlink PATH
 *   rmdir PATH                mkdirexist PATH (a mkdir that found it)
 *
 * $FSRECORD_DROP (dirs or fdatasync) skips those syncs, for the test's
 * own negative checks.
 *
 * Only calls that reach this library are recorded: a library loaded
 * before it that does not call on (libeatmydata's fsync) hides them,
 * which is how the test shows that it can see a missing fsync.
 *
 * Each line is one write(2) to a file opened O_APPEND, under one mutex.
 * A closed fd is forgotten before the real close(), so another thread
 * that gets the same number back records the new file.
 *
 * SECURITY: a test tool, never installed; it trusts its environment.
 */
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FSREC_MAXFD	65536

struct fsrec_fd {
	bool tracked;
	ino_t ino;
	char *path;
};

static pthread_mutex_t fsrec_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fsrec_fd fsrec_fds[FSREC_MAXFD];
static char fsrec_root[PATH_MAX];
static size_t fsrec_rootlen;
static int fsrec_logfd = -1;
static enum {
	FSREC_DROP_NONE,
	FSREC_DROP_DIRS,
	FSREC_DROP_FDATASYNC,
} fsrec_drop;

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *,
    unsigned int);
static int (*real_link)(const char *, const char *);
static int (*real_linkat)(int, const char *, int, const char *, int);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_mkdir)(const char *, mode_t);
static int (*real_mkdirat)(int, const char *, mode_t);
static int (*real_rmdir)(const char *);

static void *
fsrec_next(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (p == NULL) {
		static const char msg[] = "fsrecord: a libc symbol is missing\n";

		syscall(SYS_write, 2, msg, sizeof(msg) - 1);
		abort();
	}
	return p;
}

__attribute__((constructor)) static void
fsrec_init(void)
{
	const char *root = getenv("FSRECORD_ROOT");
	const char *log = getenv("FSRECORD_LOG");
	const char *drop = getenv("FSRECORD_DROP");
	int fd;

	if (drop != NULL && strcmp(drop, "dirs") == 0)
		fsrec_drop = FSREC_DROP_DIRS;
	else if (drop != NULL && strcmp(drop, "fdatasync") == 0)
		fsrec_drop = FSREC_DROP_FDATASYNC;

	real_open = fsrec_next("open");
	real_openat = fsrec_next("openat");
	real_write = fsrec_next("write");
	real_pwrite = fsrec_next("pwrite");
	real_writev = fsrec_next("writev");
	real_pwritev = fsrec_next("pwritev");
	real_ftruncate = fsrec_next("ftruncate");
	real_fsync = fsrec_next("fsync");
	real_fdatasync = fsrec_next("fdatasync");
	real_close = fsrec_next("close");
	real_rename = fsrec_next("rename");
	real_renameat = fsrec_next("renameat");
	real_renameat2 = fsrec_next("renameat2");
	real_link = fsrec_next("link");
	real_linkat = fsrec_next("linkat");
	real_unlink = fsrec_next("unlink");
	real_unlinkat = fsrec_next("unlinkat");
	real_mkdir = fsrec_next("mkdir");
	real_mkdirat = fsrec_next("mkdirat");
	real_rmdir = fsrec_next("rmdir");
	if (root == NULL || log == NULL || realpath(root, fsrec_root) == NULL)
		return;
	fsrec_rootlen = strlen(fsrec_root);
	fd = (int)syscall(SYS_openat, AT_FDCWD, log,
	    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd == -1)
		return;
	/* Out of the way of the numbers the daemon expects to get. */
	fsrec_logfd = fcntl(fd, F_DUPFD_CLOEXEC, 1000);
	syscall(SYS_close, fd);
}

static uint64_t
fsrec_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Lexically clean an absolute path in place: //, /./ and /../. */
static void
fsrec_clean(char *p)
{
	char *out = p, *in = p;

	while (*in != '\0') {
		if (in[0] == '/' && in[1] == '/') {
			in++;
		} else if (in[0] == '/' && in[1] == '.' &&
		    (in[2] == '/' || in[2] == '\0')) {
			in += 2;
		} else if (in[0] == '/' && in[1] == '.' && in[2] == '.' &&
		    (in[3] == '/' || in[3] == '\0')) {
			in += 3;
			while (out > p && *--out != '/')
				;
		} else {
			*out++ = *in++;
		}
	}
	if (out == p)
		*out++ = '/';
	*out = '\0';
}

/* The absolute path of (dirfd, path) into out; false if unknown. */
static bool
fsrec_resolve(int dirfd, const char *path, char *out, size_t size)
{
	char base[PATH_MAX], link[64];
	ssize_t n;

	if (path == NULL)
		return false;
	if (path[0] == '/') {
		base[0] = '\0';
	} else if (dirfd == AT_FDCWD) {
		if (getcwd(base, sizeof(base)) == NULL)
			return false;
	} else {
		pthread_mutex_lock(&fsrec_lock);
		n = -1;
		if (dirfd >= 0 && dirfd < FSREC_MAXFD &&
		    fsrec_fds[dirfd].tracked) {
			snprintf(base, sizeof(base), "%s",
			    fsrec_fds[dirfd].path);
			n = 0;
		}
		pthread_mutex_unlock(&fsrec_lock);
		if (n == -1) {
			snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
			if ((n = readlink(link, base, sizeof(base) - 1)) == -1)
				return false;
			base[n] = '\0';
		}
	}
	if ((size_t)snprintf(out, size, "%s/%s", base, path) >= size)
		return false;
	fsrec_clean(out);
	return true;
}

static bool
fsrec_under_root(const char *path)
{
	return fsrec_rootlen > 0 &&
	    strncmp(path, fsrec_root, fsrec_rootlen) == 0 &&
	    (path[fsrec_rootlen] == '/' || path[fsrec_rootlen] == '\0');
}

/* A growing line; on allocation failure the line is dropped (and the
 * test then finds the log incomplete). */
struct fsrec_line {
	char *s;
	size_t len, cap;
	bool bad;
};

static void
fsrec_put(struct fsrec_line *l, const char *s, size_t n)
{
	char *p;
	size_t cap;

	if (l->bad)
		return;
	if (l->len + n + 1 > l->cap) {
		cap = (l->len + n + 1) * 2;
		if ((p = realloc(l->s, cap)) == NULL) {
			l->bad = true;
			return;
		}
		l->s = p;
		l->cap = cap;
	}
	memcpy(l->s + l->len, s, n);
	l->len += n;
	l->s[l->len] = '\0';
}

__attribute__((format(printf, 2, 3))) static void
fsrec_printf(struct fsrec_line *l, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		l->bad = true;
		return;
	}
	fsrec_put(l, tmp, (size_t)n);
}

static void
fsrec_hex(struct fsrec_line *l, const void *data, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = data;
	char chunk[512];
	size_t i, k = 0;

	fsrec_put(l, " ", 1);
	if (n == 0)
		fsrec_put(l, "-", 1);
	for (i = 0; i < n; i++) {
		chunk[k++] = digits[p[i] >> 4];
		chunk[k++] = digits[p[i] & 15];
		if (k == sizeof(chunk)) {
			fsrec_put(l, chunk, k);
			k = 0;
		}
	}
	fsrec_put(l, chunk, k);
}

static void
fsrec_hexstr(struct fsrec_line *l, const char *s)
{
	fsrec_hex(l, s, strlen(s));
}

static void
fsrec_begin(struct fsrec_line *l, uint64_t t0, uint64_t t1, const char *op)
{
	memset(l, 0, sizeof(*l));
	fsrec_printf(l, "%llu %llu %ld %ld %s", (unsigned long long)t0,
	    (unsigned long long)t1, (long)getpid(), (long)syscall(SYS_gettid),
	    op);
}

static void
fsrec_emit(struct fsrec_line *l)
{
	size_t off = 0;
	ssize_t n;

	fsrec_put(l, "\n", 1);
	if (!l->bad) {
		pthread_mutex_lock(&fsrec_lock);
		while (off < l->len) {
			n = syscall(SYS_write, fsrec_logfd, l->s + off,
			    l->len - off);
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		pthread_mutex_unlock(&fsrec_lock);
	}
	free(l->s);
}

/* The inode of a tracked fd, or false. */
static bool
fsrec_fd_ino(int fd, ino_t *ino_r)
{
	bool t = false;

	if (fsrec_logfd == -1 || fd < 0 || fd >= FSREC_MAXFD)
		return false;
	pthread_mutex_lock(&fsrec_lock);
	if (fsrec_fds[fd].tracked) {
		*ino_r = fsrec_fds[fd].ino;
		t = true;
	}
	pthread_mutex_unlock(&fsrec_lock);
	return t;
}

static void
fsrec_opened(uint64_t t0, int fd, int flags, const char *path)
{
	struct fsrec_line l;
	struct stat st;
	char *copy;

	if (fd < 0 || fd >= FSREC_MAXFD || fstat(fd, &st) == -1 ||
	    (copy = strdup(path)) == NULL)
		return;
	pthread_mutex_lock(&fsrec_lock);
	free(fsrec_fds[fd].path);
	fsrec_fds[fd].path = copy;
	fsrec_fds[fd].ino = st.st_ino;
	fsrec_fds[fd].tracked = true;
	pthread_mutex_unlock(&fsrec_lock);
	fsrec_begin(&l, t0, fsrec_now(), "open");
	fsrec_printf(&l, " %d %llu %x", fd, (unsigned long long)st.st_ino,
	    (unsigned int)flags);
	fsrec_hexstr(&l, path);
	fsrec_emit(&l);
}

static int
fsrec_do_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	char abs[PATH_MAX];
	uint64_t t0 = fsrec_now();
	int fd;

	fd = real_openat(dirfd, path, flags, mode);
	if (fd >= 0 && fsrec_logfd != -1 &&
	    fsrec_resolve(dirfd, path, abs, sizeof(abs)) &&
	    fsrec_under_root(abs))
		fsrec_opened(t0, fd, flags, abs);
	return fd;
}

static mode_t
fsrec_mode(int flags, va_list ap)
{
	if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE)
		return (mode_t)va_arg(ap, int);
	return 0;
}

int
open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = fsrec_mode(flags, ap);
	va_end(ap);
	return fsrec_do_openat(AT_FDCWD, path, flags, mode);
}

int open64(const char *, int, ...) __attribute__((alias("open")));

int
openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = fsrec_mode(flags, ap);
	va_end(ap);
	return fsrec_do_openat(dirfd, path, flags, mode);
}

int openat64(int, const char *, int, ...) __attribute__((alias("openat")));

/* What _FORTIFY_SOURCE calls when the flags are not a constant. */
int __open_2(const char *, int);
int __openat_2(int, const char *, int);

int
__open_2(const char *path, int flags)
{
	return fsrec_do_openat(AT_FDCWD, path, flags, 0);
}

int
__openat_2(int dirfd, const char *path, int flags)
{
	return fsrec_do_openat(dirfd, path, flags, 0);
}

int
creat(const char *path, mode_t mode)
{
	return fsrec_do_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC,
	    mode);
}

int creat64(const char *, mode_t) __attribute__((alias("creat")));

static void
fsrec_wrote(uint64_t t0, int fd, off_t off, const struct iovec *iov,
    int iovcnt, size_t n)
{
	struct fsrec_line l;
	ino_t ino;
	size_t left = n, k;
	int i;

	if (!fsrec_fd_ino(fd, &ino))
		return;
	if (off == (off_t)-1) {
		/* write(2): where it went is where the offset is now, less n. */
		off = lseek(fd, 0, SEEK_CUR);
		if (off == (off_t)-1)
			return;
		off -= (off_t)n;
	}
	fsrec_begin(&l, t0, fsrec_now(), "write");
	fsrec_printf(&l, " %llu %lld", (unsigned long long)ino,
	    (long long)off);
	fsrec_put(&l, " ", 1);
	if (n == 0)
		fsrec_put(&l, "-", 1);
	for (i = 0; i < iovcnt && left > 0; i++) {
		k = iov[i].iov_len < left ? iov[i].iov_len : left;
		/* fsrec_hex adds a space: write the digits directly. */
		{
			static const char digits[] = "0123456789abcdef";
			const unsigned char *p = iov[i].iov_base;
			char chunk[512];
			size_t j, c = 0;

			for (j = 0; j < k; j++) {
				chunk[c++] = digits[p[j] >> 4];
				chunk[c++] = digits[p[j] & 15];
				if (c == sizeof(chunk)) {
					fsrec_put(&l, chunk, c);
					c = 0;
				}
			}
			fsrec_put(&l, chunk, c);
		}
		left -= k;
	}
	fsrec_emit(&l);
}

ssize_t
write(int fd, const void *buf, size_t count)
{
	uint64_t t0 = fsrec_now();
	struct iovec iov = { (void *)buf, count };
	ssize_t n = real_write(fd, buf, count);

	if (n > 0)
		fsrec_wrote(t0, fd, (off_t)-1, &iov, 1, (size_t)n);
	return n;
}

ssize_t
pwrite(int fd, const void *buf, size_t count, off_t off)
{
	uint64_t t0 = fsrec_now();
	struct iovec iov = { (void *)buf, count };
	ssize_t n = real_pwrite(fd, buf, count, off);

	if (n > 0)
		fsrec_wrote(t0, fd, off, &iov, 1, (size_t)n);
	return n;
}

ssize_t pwrite64(int, const void *, size_t, off_t)
    __attribute__((alias("pwrite")));

ssize_t
writev(int fd, const struct iovec *iov, int iovcnt)
{
	uint64_t t0 = fsrec_now();
	ssize_t n = real_writev(fd, iov, iovcnt);

	if (n > 0)
		fsrec_wrote(t0, fd, (off_t)-1, iov, iovcnt, (size_t)n);
	return n;
}

ssize_t
pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
	uint64_t t0 = fsrec_now();
	ssize_t n = real_pwritev(fd, iov, iovcnt, off);

	if (n > 0)
		fsrec_wrote(t0, fd, off, iov, iovcnt, (size_t)n);
	return n;
}

ssize_t pwritev64(int, const struct iovec *, int, off_t)
    __attribute__((alias("pwritev")));

int
ftruncate(int fd, off_t length)
{
	struct fsrec_line l;
	uint64_t t0 = fsrec_now();
	ino_t ino;
	int r = real_ftruncate(fd, length);

	if (r == 0 && fsrec_fd_ino(fd, &ino)) {
		fsrec_begin(&l, t0, fsrec_now(), "trunc");
		fsrec_printf(&l, " %llu %lld", (unsigned long long)ino,
		    (long long)length);
		fsrec_emit(&l);
	}
	return r;
}

int ftruncate64(int, off_t) __attribute__((alias("ftruncate")));

/*
 * $FSRECORD_DROP=dirs: fsyncs of directories are not done (nor recorded)
 * but succeed, like eatmydata for them alone; =fdatasync: the same for
 * fdatasync (the spool's queue files). The test shows that it finds what
 * each of them protects.
 */
static bool
fsrec_dropped(int fd, const char *op)
{
	struct stat st;

	if (fsrec_drop == FSREC_DROP_FDATASYNC)
		return strcmp(op, "fdatasync") == 0;
	if (fsrec_drop == FSREC_DROP_DIRS)
		return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
	return false;
}

static int
fsrec_sync(int fd, int (*fn)(int), const char *op)
{
	struct fsrec_line l;
	uint64_t t0 = fsrec_now();
	ino_t ino;
	int r;

	if (fsrec_dropped(fd, op))
		return 0;
	r = fn(fd);

	if (r == 0 && fsrec_fd_ino(fd, &ino)) {
		fsrec_begin(&l, t0, fsrec_now(), op);
		fsrec_printf(&l, " %llu", (unsigned long long)ino);
		fsrec_emit(&l);
	}
	return r;
}

int
fsync(int fd)
{
	return fsrec_sync(fd, real_fsync, "fsync");
}

int
fdatasync(int fd)
{
	return fsrec_sync(fd, real_fdatasync, "fdatasync");
}

int
close(int fd)
{
	if (fd >= 0 && fd < FSREC_MAXFD && fd != fsrec_logfd) {
		pthread_mutex_lock(&fsrec_lock);
		if (fsrec_fds[fd].tracked) {
			fsrec_fds[fd].tracked = false;
			free(fsrec_fds[fd].path);
			fsrec_fds[fd].path = NULL;
		}
		pthread_mutex_unlock(&fsrec_lock);
	}
	return real_close(fd);
}

/* Log a call on one or two paths (already resolved) if any is ours. */
static void
fsrec_paths(uint64_t t0, const char *op, const char *flags, const char *a,
    const char *b)
{
	struct fsrec_line l;

	if (fsrec_logfd == -1 || !(fsrec_under_root(a) ||
	    (b != NULL && fsrec_under_root(b))))
		return;
	fsrec_begin(&l, t0, fsrec_now(), op);
	if (flags != NULL)
		fsrec_printf(&l, " %s", flags);
	fsrec_hexstr(&l, a);
	if (b != NULL)
		fsrec_hexstr(&l, b);
	fsrec_emit(&l);
}

static int
fsrec_do_rename(int ofd, const char *old, int nfd, const char *new,
    unsigned int flags, bool two)
{
	char a[PATH_MAX], b[PATH_MAX], fl[16];
	bool ok;
	uint64_t t0;
	int r;

	/* Resolved before: the old name is gone after. */
	ok = fsrec_resolve(ofd, old, a, sizeof(a)) &&
	    fsrec_resolve(nfd, new, b, sizeof(b));
	t0 = fsrec_now();
	r = two ? real_renameat2(ofd, old, nfd, new, flags) :
	    real_renameat(ofd, old, nfd, new);
	if (r == 0 && ok) {
		snprintf(fl, sizeof(fl), "%x", flags);
		fsrec_paths(t0, "rename", fl, a, b);
	}
	return r;
}

int
rename(const char *old, const char *new)
{
	return fsrec_do_rename(AT_FDCWD, old, AT_FDCWD, new, 0, false);
}

int
renameat(int ofd, const char *old, int nfd, const char *new)
{
	return fsrec_do_rename(ofd, old, nfd, new, 0, false);
}

int
renameat2(int ofd, const char *old, int nfd, const char *new,
    unsigned int flags)
{
	return fsrec_do_rename(ofd, old, nfd, new, flags, true);
}

int
linkat(int ofd, const char *old, int nfd, const char *new, int flags)
{
	char a[PATH_MAX], b[PATH_MAX];
	bool ok;
	uint64_t t0;
	int r;

	ok = fsrec_resolve(ofd, old, a, sizeof(a)) &&
	    fsrec_resolve(nfd, new, b, sizeof(b));
	t0 = fsrec_now();
	r = real_linkat(ofd, old, nfd, new, flags);
	if (r == 0 && ok)
		fsrec_paths(t0, "link", NULL, a, b);
	return r;
}

int
link(const char *old, const char *new)
{
	char a[PATH_MAX], b[PATH_MAX];
	bool ok;
	uint64_t t0;
	int r;

	ok = fsrec_resolve(AT_FDCWD, old, a, sizeof(a)) &&
	    fsrec_resolve(AT_FDCWD, new, b, sizeof(b));
	t0 = fsrec_now();
	r = real_link(old, new);
	if (r == 0 && ok)
		fsrec_paths(t0, "link", NULL, a, b);
	return r;
}

int
unlinkat(int dirfd, const char *path, int flags)
{
	char a[PATH_MAX];
	bool ok = fsrec_resolve(dirfd, path, a, sizeof(a));
	uint64_t t0 = fsrec_now();
	int r = real_unlinkat(dirfd, path, flags);

	if (r == 0 && ok)
		fsrec_paths(t0, (flags & AT_REMOVEDIR) ? "rmdir" : "unlink",
		    NULL, a, NULL);
	return r;
}

int
unlink(const char *path)
{
	char a[PATH_MAX];
	bool ok = fsrec_resolve(AT_FDCWD, path, a, sizeof(a));
	uint64_t t0 = fsrec_now();
	int r = real_unlink(path);

	if (r == 0 && ok)
		fsrec_paths(t0, "unlink", NULL, a, NULL);
	return r;
}

int
rmdir(const char *path)
{
	char a[PATH_MAX];
	bool ok = fsrec_resolve(AT_FDCWD, path, a, sizeof(a));
	uint64_t t0 = fsrec_now();
	int r = real_rmdir(path);

	if (r == 0 && ok)
		fsrec_paths(t0, "rmdir", NULL, a, NULL);
	return r;
}

static void
fsrec_made_dir(uint64_t t0, const char *abs)
{
	struct fsrec_line l;
	struct stat st;

	if (fsrec_logfd == -1 || !fsrec_under_root(abs) ||
	    lstat(abs, &st) == -1)
		return;
	fsrec_begin(&l, t0, fsrec_now(), "mkdir");
	fsrec_printf(&l, " %llu", (unsigned long long)st.st_ino);
	fsrec_hexstr(&l, abs);
	fsrec_emit(&l);
}

/*
 * EEXIST is recorded too ("mkdirexist PATH"): it proves that the
 * directory existed by then, maybe well before the thread that made it
 * read the clock after its own mkdir.
 */
static void
fsrec_mkdir_done(uint64_t t0, int r, bool ok, const char *abs)
{
	int saved = errno;

	if (r == 0 && ok)
		fsrec_made_dir(t0, abs);
	else if (r == -1 && saved == EEXIST && ok)
		fsrec_paths(t0, "mkdirexist", NULL, abs, NULL);
	errno = saved;
}

int
mkdirat(int dirfd, const char *path, mode_t mode)
{
	char a[PATH_MAX];
	bool ok = fsrec_resolve(dirfd, path, a, sizeof(a));
	uint64_t t0 = fsrec_now();
	int r = real_mkdirat(dirfd, path, mode);

	fsrec_mkdir_done(t0, r, ok, a);
	return r;
}

int
mkdir(const char *path, mode_t mode)
{
	char a[PATH_MAX];
	bool ok = fsrec_resolve(AT_FDCWD, path, a, sizeof(a));
	uint64_t t0 = fsrec_now();
	int r = real_mkdir(path, mode);

	fsrec_mkdir_done(t0, r, ok, a);
	return r;
}
