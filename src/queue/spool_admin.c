/*
 * spool_admin.c: the spool lock (SPOOL/lock) and direct access to the
 * spool for `petrel queue list` and `petrel queue delete` on a stopped
 * daemon.
 *
 * Entry points: spool_admin_lock, spool_admin_scan, spool_admin_remove,
 * spool_admin_valid_id.
 *
 * SECURITY: run by root (or the daemon's user) on a spool the daemon's
 * user owns; files are opened with O_NOFOLLOW, names are checked before
 * use, and the queue files are parsed by the same checked parser as
 * start-up recovery (qfile_parse), so a hostile file is skipped, never
 * trusted.
 * OWNERSHIP: the lock's file descriptor belongs to the caller.
 */
#include "queue/spool_admin.h"

#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/util.h"
#include "queue/qfile.h"

#define SPOOL_ADMIN_POLL_MS	50

bool
spool_admin_valid_id(const char *id)
{
	size_t i, n = strlen(id);

	if (n == 0 || n >= QUEUE_ID_MAX || id[0] == '.')
		return false;
	for (i = 0; i < n; i++) {
		char ch = id[i];

		if (!((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= 'a' && ch <= 'z') || ch == '.' || ch == '_' ||
		    ch == '-'))
			return false;
	}
	return true;
}

/* "PID ROLE" from the lock file; pid 0 and role "" when unreadable. */
static void
spool_admin_holder(int fd, pid_t *pid_r, char *role, size_t rolesize)
{
	char text[64], *sp;
	ssize_t n;
	uint64_t pid;
	const char *error;

	*pid_r = 0;
	if (rolesize > 0)
		role[0] = '\0';
	n = pread(fd, text, sizeof(text) - 1, 0);
	if (n <= 0)
		return;
	text[n] = '\0';
	text[strcspn(text, "\n")] = '\0';
	if ((sp = strchr(text, ' ')) == NULL)
		return;
	*sp++ = '\0';
	if (parse_u64(text, 1, INT_MAX, &pid, &error) == -1)
		return;
	*pid_r = (pid_t)pid;
	if (rolesize > 0)
		strlcpy(role, sp, rolesize);
}

int
spool_admin_lock(const char *spooldir, const char *role,
    unsigned int wait_ms, uid_t uid, gid_t gid, pid_t *holder_pid_r,
    char *holder_role, size_t rolesize)
{
	char path[PATH_MAX], text[64], hrole[32];
	uint64_t deadline = time_mono_usec() + (uint64_t)wait_ms * 1000;
	struct timespec ts = { 0, SPOOL_ADMIN_POLL_MS * 1000000L };
	pid_t hpid = 0;
	int fd, wfd = -1, n, saved;

	*holder_pid_r = 0;
	if (rolesize > 0)
		holder_role[0] = '\0';
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", spooldir,
	    SPOOL_LOCK_FILE) >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/*
	 * Read-only: a daemon holds this fd for its whole life, and a file
	 * open for writing would keep an administrator from remounting the
	 * spool read-only (EBUSY). The text is written through a second fd.
	 */
	fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1)
		return -1;
	if (uid != (uid_t)-1 && fchown(fd, uid, gid) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		spool_admin_holder(fd, &hpid, hrole, sizeof(hrole));
		/* A daemon holds it for its whole life: no use waiting. */
		if (strcmp(hrole, SPOOL_LOCK_SERVE) == 0 ||
		    time_mono_usec() >= deadline) {
			close(fd);
			*holder_pid_r = hpid;
			if (rolesize > 0)
				strlcpy(holder_role, hrole, rolesize);
			errno = EWOULDBLOCK;
			return -1;
		}
		nanosleep(&ts, NULL);
	}
	/* Ours: say who holds it (for the error of whoever comes next). */
	n = snprintf(text, sizeof(text), "%ld %s\n", (long)getpid(), role);
	if ((wfd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) == -1 ||
	    ftruncate(wfd, 0) == -1 || pwrite(wfd, text, (size_t)n, 0) != n) {
		saved = errno;
		if (wfd != -1)
			close(wfd);
		close(fd);
		errno = saved;
		return -1;
	}
	if (close(wfd) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static int
spool_admin_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
spool_admin_scan(const char *spooldir, spool_admin_scan_cb cb, void *arg,
    size_t *skipped_r, const char **error_r)
{
	char path[PATH_MAX];
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	DIR *dir;
	int dfd, rc = 0, saved;

	*skipped_r = 0;
	if ((size_t)snprintf(path, sizeof(path), "%s/queue", spooldir) >=
	    sizeof(path)) {
		errno = ENAMETOOLONG;
		*error_r = "spool path too long";
		return -1;
	}
	if ((dir = opendir(path)) == NULL) {
		*error_r = "cannot open the queue directory";
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (!spool_admin_valid_id(de->d_name))
			continue;
		if (n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = xstrdup(de->d_name);
	}
	if (n > 1)	/* qsort(NULL, 0, ...) is undefined */
		qsort(names, n, sizeof(*names), spool_admin_cmp);
	dfd = dirfd(dir);
	for (i = 0; i < n && rc == 0; i++) {
		struct envelope env;
		struct qfile_info info;
		const char *perr;
		int fd;

		fd = openat(dfd, names[i], O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd == -1) {
			if (errno != ENOENT)	/* delivered meanwhile */
				(*skipped_r)++;
			continue;
		}
		envelope_init(&env);
		if (qfile_parse(fd, 0, &env, &info, &perr) == -1) {
			(*skipped_r)++;
			close(fd);
			continue;
		}
		close(fd);
		rc = cb(arg, names[i], &env, info.content_size +
		    info.prepend_size);
		envelope_free(&env);
	}
	saved = errno;
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(dir);
	errno = saved;
	return rc;
}

int
spool_admin_remove(const char *spooldir, const char *id)
{
	char path[PATH_MAX];

	if (!spool_admin_valid_id(id)) {
		errno = EINVAL;
		return -1;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/queue/%s", spooldir,
	    id) >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (unlink(path) == -1)
		return -1;
	path[strlen(path) - strlen(id) - 1] = '\0';
	return fsync_dir(path);
}
