/*
 * faultshim.c: an LD_PRELOAD shim for tests/e2e/test_faults.py that makes
 * chosen file-system calls fail with a chosen errno, only on paths that
 * contain a chosen string (libfiu's posix preload cannot tell the spool's
 * fdatasync from the Maildir's, does not wrap renameat/renameat2 and would
 * break the daemon's internal pipes with a write fault).
 *
 * Entry points (what it wraps): write, pwrite, pwrite64, writev, fsync,
 * fdatasync, ftruncate, renameat, renameat2, link.
 *
 * Control: FAULTSHIM_CTL names a file of FAULTSHIM_CTL_SIZE bytes that the
 * shim maps shared at load (before the daemon drops privileges); the test
 * rewrites it at any time. Each line is one rule:
 *
 *     CALL SUBSTRING ERRNO
 *
 * CALL is one of the wrapped names (pwrite64 counts as pwrite, renameat2
 * as renameat), SUBSTRING must occur in the path of the fd (for renameat
 * and link: in the old or the new path, resolved against the dir fd), and
 * ERRNO is EIO, ENOSPC, EDQUOT, EROFS or a number. A NUL ends the rules.
 * FAULTSHIM_LOG names a file to which one line "CALL ERRNO PATH" is
 * appended for every injected fault (so a test can see that it hit).
 *
 * Test-only code: never linked into Petrel. It reads paths with readlink
 * of /proc/self/fd/N, which a process may always do on itself.
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAULTSHIM_CTL_SIZE 4096

static const char *faultshim_rules;	/* the shared map, or NULL */
static int faultshim_logfd = -1;

__attribute__((constructor)) static void
faultshim_init(void)
{
	const char *ctl = getenv("FAULTSHIM_CTL");
	const char *log = getenv("FAULTSHIM_LOG");
	void *map;
	int fd;

	if (ctl != NULL && (fd = open(ctl, O_RDONLY | O_CLOEXEC)) != -1) {
		map = mmap(NULL, FAULTSHIM_CTL_SIZE, PROT_READ, MAP_SHARED,
		    fd, 0);
		if (map != MAP_FAILED)
			faultshim_rules = map;
		close(fd);
	}
	if (log != NULL)
		faultshim_logfd = open(log, O_WRONLY | O_APPEND | O_CREAT |
		    O_CLOEXEC, 0666);
}

static int
faultshim_errno(const char *s, size_t n)
{
	static const struct {
		const char *name;
		int value;
	} names[] = {
		{ "EIO", EIO }, { "ENOSPC", ENOSPC }, { "EDQUOT", EDQUOT },
		{ "EROFS", EROFS }, { "EFBIG", EFBIG }, { "EINVAL", EINVAL },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].name) == n &&
		    memcmp(names[i].name, s, n) == 0)
			return names[i].value;
	return n > 0 && n < 5 ? (int)strtol(s, NULL, 10) : 0;
}

/* The errno of the first rule for call that matches one of the paths. */
static int
faultshim_match(const char *call, const char *p1, const char *p2)
{
	char rules[FAULTSHIM_CTL_SIZE + 1], sub[PATH_MAX];
	const char *line, *end, *f[3];
	size_t flen[3], i;
	int e;

	if (faultshim_rules == NULL || faultshim_rules[0] == '\0')
		return 0;
	memcpy(rules, faultshim_rules, FAULTSHIM_CTL_SIZE);
	rules[FAULTSHIM_CTL_SIZE] = '\0';
	for (line = rules; *line != '\0'; line = *end ? end + 1 : end) {
		end = line + strcspn(line, "\n");
		const char *q = line;
		for (i = 0; i < 3; i++) {
			while (q < end && *q == ' ')
				q++;
			f[i] = q;
			while (q < end && *q != ' ')
				q++;
			flen[i] = (size_t)(q - f[i]);
		}
		if (flen[0] != strlen(call) || memcmp(f[0], call, flen[0]) != 0 ||
		    flen[1] == 0 || flen[1] >= sizeof(sub))
			continue;
		memcpy(sub, f[1], flen[1]);
		sub[flen[1]] = '\0';
		if ((p1 == NULL || strstr(p1, sub) == NULL) &&
		    (p2 == NULL || strstr(p2, sub) == NULL))
			continue;
		if ((e = faultshim_errno(f[2], flen[2])) != 0)
			return e;
	}
	return 0;
}

static void
faultshim_fdpath(int fd, char *path, size_t size)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, size - 1);
	path[n > 0 ? (size_t)n : 0] = '\0';
}

/* dirfd + name as an absolute path (for renameat and linkat). */
static void
faultshim_atpath(int dfd, const char *name, char *path, size_t size)
{
	char dir[PATH_MAX];

	if (name[0] == '/' || dfd == AT_FDCWD) {
		snprintf(path, size, "%s", name);
		return;
	}
	faultshim_fdpath(dfd, dir, sizeof(dir));
	snprintf(path, size, "%s/%s", dir, name);
}

static void
faultshim_log(const char *call, int e, const char *path)
{
	char line[PATH_MAX + 64];
	int n;

	if (faultshim_logfd == -1)
		return;
	n = snprintf(line, sizeof(line), "%s %d %s\n", call, e, path);
	if (n > 0)
		(void)syscall(SYS_write, faultshim_logfd, line,
		    (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* 0, or the errno to fail this call on fd with (logged). */
static int
faultshim_fd(const char *call, int fd)
{
	char path[PATH_MAX];
	int e;

	if (faultshim_rules == NULL || faultshim_rules[0] == '\0' ||
	    fd == faultshim_logfd)
		return 0;
	faultshim_fdpath(fd, path, sizeof(path));
	if ((e = faultshim_match(call, path, NULL)) != 0)
		faultshim_log(call, e, path);
	return e;
}

#define FAULTSHIM_REAL(ret, name, ...)					\
	static ret (*real)(__VA_ARGS__);				\
	if (real == NULL)						\
		real = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, name)

ssize_t
write(int fd, const void *buf, size_t n)
{
	FAULTSHIM_REAL(ssize_t, "write", int, const void *, size_t);
	int e;

	if ((e = faultshim_fd("write", fd)) != 0) {
		errno = e;
		return -1;
	}
	return real(fd, buf, n);
}

ssize_t
writev(int fd, const struct iovec *iov, int cnt)
{
	FAULTSHIM_REAL(ssize_t, "writev", int, const struct iovec *, int);
	int e;

	if ((e = faultshim_fd("write", fd)) != 0) {
		errno = e;
		return -1;
	}
	return real(fd, iov, cnt);
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
	FAULTSHIM_REAL(ssize_t, "pwrite", int, const void *, size_t, off_t);
	int e;

	if ((e = faultshim_fd("pwrite", fd)) != 0) {
		errno = e;
		return -1;
	}
	return real(fd, buf, n, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	FAULTSHIM_REAL(ssize_t, "pwrite64", int, const void *, size_t, off_t);
	int e;

	if ((e = faultshim_fd("pwrite", fd)) != 0) {
		errno = e;
		return -1;
	}
	return real(fd, buf, n, off);
}

int
fsync(int fd)
{
	FAULTSHIM_REAL(int, "fsync", int);
	int e;

	if ((e = faultshim_fd("fsync", fd)) != 0) {
		errno = e;
		return -1;
	}
	return real(fd);
}

int
fdatasync(int fd)
{
	FAULTSHIM_REAL(int, "fdatasync", int);
	int e;

	if ((e = faultshim_fd("fdatasync", fd)) != 0) {
		errno = e;
		return -1;
	}
	return real(fd);
}

int
ftruncate(int fd, off_t len)
{
	FAULTSHIM_REAL(int, "ftruncate", int, off_t);
	int e;

	if ((e = faultshim_fd("ftruncate", fd)) != 0) {
		errno = e;
		return -1;
	}
	return real(fd, len);
}

/* 0, or the errno to fail a rename/link from (od, o) to (nd, n) with. */
static int
faultshim_two(const char *call, int od, const char *o, int nd, const char *n)
{
	char p1[PATH_MAX], p2[PATH_MAX];
	int e;

	if (faultshim_rules == NULL || faultshim_rules[0] == '\0')
		return 0;
	faultshim_atpath(od, o, p1, sizeof(p1));
	faultshim_atpath(nd, n, p2, sizeof(p2));
	if ((e = faultshim_match(call, p1, p2)) != 0)
		faultshim_log(call, e, p2);
	return e;
}

int
renameat(int od, const char *o, int nd, const char *n)
{
	FAULTSHIM_REAL(int, "renameat", int, const char *, int, const char *);
	int e;

	if ((e = faultshim_two("renameat", od, o, nd, n)) != 0) {
		errno = e;
		return -1;
	}
	return real(od, o, nd, n);
}

int
renameat2(int od, const char *o, int nd, const char *n, unsigned int flags)
{
	FAULTSHIM_REAL(int, "renameat2", int, const char *, int, const char *,
	    unsigned int);
	int e;

	if ((e = faultshim_two("renameat", od, o, nd, n)) != 0) {
		errno = e;
		return -1;
	}
	return real(od, o, nd, n, flags);
}

int
link(const char *o, const char *n)
{
	FAULTSHIM_REAL(int, "link", const char *, const char *);
	int e;

	if ((e = faultshim_two("link", AT_FDCWD, o, AT_FDCWD, n)) != 0) {
		errno = e;
		return -1;
	}
	return real(o, n);
}
