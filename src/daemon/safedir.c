/*
 * safedir.c: the spool's safety check at start-up (`petrel serve`).
 *
 * Entry points: safedir_check_parents(), safedir_check(); daemon.c calls
 * them from `petrel serve` and `petrel check-config`.
 *
 * Whoever can write to a directory above the spool can rename the spool
 * away and put a directory, or a symbolic link, of their own in its
 * place; `petrel serve` started as root then chowns what it finds to the
 * daemon's user (a link to /etc would give /etc away), and the daemon
 * writes mail where that user says. So every directory on the way must be
 * owned by a user we trust (root, the daemon's user, the user starting
 * serve) and be writable by no one else: not by every user, except with
 * the sticky bit (/tmp: there only an entry's owner may rename it, and
 * the entry below /tmp is checked in its turn). The spool itself must
 * belong to the daemon's user and not be writable by every user. These
 * are the rules OpenSSH's StrictModes applies to authorized_keys, without
 * its refusal of group-writable directories: Debian has some (/var/local,
 * 2775 root:staff), so those are only logged.
 *
 * SECURITY: runs as root, before the privilege drop and before the spool
 * is created or chowned. Reads metadata only (stat, realpath). A check
 * followed by a use is a race in principle; it catches a tree that is
 * already unsafe, which is what an administrator's mistake looks like.
 * STANDARDS: POSIX.1-2017 4.5 (file access permissions), the sticky bit
 * (S_ISVTX) on directories as XBD 4.5 and Linux give it.
 * OWNERSHIP: nothing is kept.
 */
#include "daemon/safedir.h"

#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

/* One directory above the spool (dir is one of its ancestors). */
static int
safedir_check_ancestor(const char *dir, uid_t owner, char *err, size_t errlen)
{
	struct stat st;

	if (stat(dir, &st) == -1) {
		if (errno == ENOENT)
			return 0;	/* made later by serve, as root */
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory", dir);
		return -1;
	}
	if (st.st_uid != 0 && st.st_uid != owner && st.st_uid != geteuid()) {
		snprintf(err, errlen, "%s belongs to uid %u, who could "
		    "replace the spool below it: make root own it (chown "
		    "root %s) or move the spool", dir,
		    (unsigned int)st.st_uid, dir);
		return -1;
	}
	if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX)) {
		snprintf(err, errlen, "%s is writable by every user (mode "
		    "%04o), who could replace the spool below it: chmod o-w "
		    "%s (or +t, as /tmp has)", dir,
		    (unsigned int)(st.st_mode & 07777), dir);
		return -1;
	}
	if ((st.st_mode & S_IWGRP) && !(st.st_mode & S_ISVTX) &&
	    st.st_gid != 0)
		log_warn("daemon: %s is writable by group %u (mode %04o): its "
		    "members could replace the spool below it", dir,
		    (unsigned int)st.st_gid,
		    (unsigned int)(st.st_mode & 07777));
	return 0;
}

/*
 * Every ancestor of the absolute path abs, from / down; abs itself too
 * when with_self.
 */
static int
safedir_walk(const char *abs, bool with_self, uid_t owner, char *err,
    size_t errlen)
{
	char buf[PATH_MAX];
	size_t len, i;

	if (strlcpy(buf, abs, sizeof(buf)) >= sizeof(buf)) {
		snprintf(err, errlen, "%s: path too long", abs);
		return -1;
	}
	len = strlen(buf);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	if (safedir_check_ancestor("/", owner, err, errlen) == -1)
		return -1;
	for (i = 1; i < len; i++) {
		if (buf[i] != '/' || buf[i - 1] == '/')
			continue;
		buf[i] = '\0';
		if (safedir_check_ancestor(buf, owner, err, errlen) == -1)
			return -1;
		buf[i] = '/';
	}
	if (with_self && len > 1)
		return safedir_check_ancestor(buf, owner, err, errlen);
	return 0;
}

int
safedir_check_parents(const char *path, uid_t owner, char *err,
    size_t errlen)
{
	char abs[PATH_MAX], cwd[PATH_MAX], real[PATH_MAX];
	char *slash;
	int n;

	if (path[0] == '/')
		n = snprintf(abs, sizeof(abs), "%s", path);
	else if (getcwd(cwd, sizeof(cwd)) == NULL) {
		snprintf(err, errlen, "%s: cannot find the working "
		    "directory: %s", path, strerror(errno));
		return -1;
	} else
		n = snprintf(abs, sizeof(abs), "%s/%s", cwd, path);
	if (n < 0 || (size_t)n >= sizeof(abs)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	/* As written: the links on the way are entries of these. */
	if (safedir_walk(abs, false, owner, err, errlen) == -1)
		return -1;
	/* As resolved: where the links lead. */
	if (realpath(abs, real) != NULL)
		return safedir_walk(real, false, owner, err, errlen);
	/* No spool yet: its deepest existing ancestor, resolved. */
	while ((slash = strrchr(abs, '/')) != NULL && slash != abs) {
		*slash = '\0';
		if (realpath(abs, real) != NULL)
			return safedir_walk(real, true, owner, err, errlen);
	}
	return 0;
}

int
safedir_check(const char *path, uid_t owner, bool check_owner, char *err,
    size_t errlen)
{
	struct stat st;

	if (safedir_check_parents(path, owner, err, errlen) == -1)
		return -1;
	if (stat(path, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory", path);
		return -1;
	}
	if (check_owner && st.st_uid != owner) {
		snprintf(err, errlen, "%s belongs to uid %u, not to the "
		    "daemon's user (uid %u)", path, (unsigned int)st.st_uid,
		    (unsigned int)owner);
		return -1;
	}
	if (st.st_mode & S_IWOTH) {
		snprintf(err, errlen, "%s is writable by every user (mode "
		    "%04o): chmod 0700 %s", path,
		    (unsigned int)(st.st_mode & 07777), path);
		return -1;
	}
	return 0;
}
