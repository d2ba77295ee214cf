/*
 * access.c: would another user be able to read a file? For the start-up
 * check that the daemon's user can read its certificate and key, which it
 * needs on every SIGHUP reload after the privilege drop.
 *
 * Entry point: tls_file_readable_by().
 *
 * access(2) answers only for the calling process, and switching
 * credentials to ask the kernel would need a fork in a daemon that may
 * already run threads. So the rules are evaluated here: the search bit
 * of every directory on the way, then the read bit of the file, each by
 * POSIX ACL (system.posix_acl_access, as Linux's posix_acl_permission()
 * does) or else by the mode's owner/group/other class.
 *
 * SECURITY: reads metadata only, never the file. The verdict is advice
 * for an error message; the real test is the open() at reload.
 * STANDARDS: POSIX.1-2017 4.5 (file access permissions), the withdrawn
 * POSIX.1e draft 17 23.1.5 (ACL access check algorithm), Linux
 * include/uapi/linux/posix_acl_xattr.h (the xattr layout).
 * OWNERSHIP: nothing is kept.
 */
#include "tls/tls.h"

#include <sys/stat.h>
#include <sys/xattr.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"

/* linux/posix_acl.h and posix_acl_xattr.h, little-endian on the wire. */
#define TLS_ACL_XATTR		"system.posix_acl_access"
#define TLS_ACL_VERSION		2
#define TLS_ACL_USER_OBJ	0x01
#define TLS_ACL_USER		0x02
#define TLS_ACL_GROUP_OBJ	0x04
#define TLS_ACL_GROUP		0x08
#define TLS_ACL_MASK		0x10
#define TLS_ACL_OTHER		0x20
#define TLS_ACL_HEADER		4
#define TLS_ACL_ENTRY		8
#define TLS_ACL_MAX		64	/* entries; a longer ACL (ERANGE)
					   falls back to the mode bits */

#define TLS_WANT_READ		4
#define TLS_WANT_SEARCH		1

struct tls_who {
	uid_t uid;
	gid_t gid;
	const gid_t *groups;
	size_t ngroups;
};

static bool
tls_who_in_group(const struct tls_who *who, gid_t g)
{
	size_t i;

	if (g == who->gid)
		return true;
	for (i = 0; i < who->ngroups; i++)
		if (who->groups[i] == g)
			return true;
	return false;
}

static unsigned int
tls_le16(const unsigned char *p)
{
	return (unsigned int)p[0] | (unsigned int)p[1] << 8;
}

static uint32_t
tls_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

/*
 * The ACL verdict: 1 allowed, 0 denied, -1 no usable ACL (use the mode).
 * Entries are sorted by tag in a valid ACL (the kernel refuses others).
 */
static int
tls_acl_check(const char *path, const struct stat *st,
    const struct tls_who *who, unsigned int want)
{
	unsigned char acl[TLS_ACL_HEADER + TLS_ACL_ENTRY * TLS_ACL_MAX];
	unsigned int tag, perm, mask = 7, matched = 0;
	bool found = false, have_mask = false, use_mask = false;
	ssize_t len;
	size_t n, i;
	uint32_t id;

	len = getxattr(path, TLS_ACL_XATTR, acl, sizeof(acl));
	if (len < TLS_ACL_HEADER ||
	    (len - TLS_ACL_HEADER) % TLS_ACL_ENTRY != 0 ||
	    tls_le32(acl) != TLS_ACL_VERSION)
		return -1;
	n = (size_t)(len - TLS_ACL_HEADER) / TLS_ACL_ENTRY;
	for (i = 0; i < n; i++) {
		if (tls_le16(acl + TLS_ACL_HEADER + i * TLS_ACL_ENTRY) ==
		    TLS_ACL_MASK) {
			mask = tls_le16(acl + TLS_ACL_HEADER +
			    i * TLS_ACL_ENTRY + 2);
			have_mask = true;
		}
	}
	for (i = 0; i < n; i++) {
		const unsigned char *e = acl + TLS_ACL_HEADER +
		    i * TLS_ACL_ENTRY;

		tag = tls_le16(e);
		perm = tls_le16(e + 2);
		id = tls_le32(e + 4);
		switch (tag) {
		case TLS_ACL_USER_OBJ:
			if (who->uid == st->st_uid)
				return (perm & want) == want;
			break;
		case TLS_ACL_USER:
			if (who->uid == (uid_t)id) {
				matched = perm;
				use_mask = true;
				goto verdict;
			}
			break;
		case TLS_ACL_GROUP_OBJ:
		case TLS_ACL_GROUP:
			if (tls_who_in_group(who, tag == TLS_ACL_GROUP_OBJ ?
			    st->st_gid : (gid_t)id)) {
				found = true;
				if ((perm & want) == want) {
					matched = perm;
					use_mask = true;
					goto verdict;
				}
			}
			break;
		case TLS_ACL_MASK:
			break;
		case TLS_ACL_OTHER:
			if (found)
				return 0;
			return (perm & want) == want;
		default:
			return -1;
		}
	}
	return -1;		/* no OTHER entry: not an ACL we understand */
verdict:
	if (use_mask && have_mask)
		matched &= mask;
	return (matched & want) == want;
}

static bool
tls_may(const char *path, const struct tls_who *who, unsigned int want)
{
	struct stat st;
	unsigned int bits;
	int acl;

	if (stat(path, &st) == -1)
		return false;
	if (want == TLS_WANT_SEARCH && !S_ISDIR(st.st_mode))
		return false;
	if ((acl = tls_acl_check(path, &st, who, want)) != -1)
		return acl == 1;
	if (who->uid == st.st_uid)
		bits = (st.st_mode >> 6) & 7;
	else if (tls_who_in_group(who, st.st_gid))
		bits = (st.st_mode >> 3) & 7;
	else
		bits = st.st_mode & 7;
	return (bits & want) == want;
}

/* Search permission on every directory that leads to abs (absolute). */
static bool
tls_may_reach(const char *abs, const struct tls_who *who)
{
	char dir[PATH_MAX];
	const char *p;
	size_t len;

	if (!tls_may("/", who, TLS_WANT_SEARCH))
		return false;
	for (p = abs + 1; (p = strchr(p, '/')) != NULL; p++) {
		len = (size_t)(p - abs);
		if (len >= sizeof(dir))
			return false;
		memcpy(dir, abs, len);
		dir[len] = '\0';
		if (!tls_may(dir, who, TLS_WANT_SEARCH))
			return false;
	}
	return true;
}

bool
tls_file_readable_by(const char *path, uid_t uid, gid_t gid,
    const gid_t *groups, size_t ngroups)
{
	struct tls_who who = { uid, gid, groups, ngroups };
	char abs[PATH_MAX], real[PATH_MAX], cwd[PATH_MAX];
	struct stat st;

	if (path == NULL || path[0] == '\0' || stat(path, &st) == -1)
		return false;
	if (uid == 0)
		return true;	/* CAP_DAC_OVERRIDE */
	if (path[0] == '/') {
		if (strlcpy(abs, path, sizeof(abs)) >= sizeof(abs))
			return false;
	} else {
		if (getcwd(cwd, sizeof(cwd)) == NULL ||
		    strlcpy(abs, cwd, sizeof(abs)) >= sizeof(abs) ||
		    strlcat(abs, "/", sizeof(abs)) >= sizeof(abs) ||
		    strlcat(abs, path, sizeof(abs)) >= sizeof(abs))
			return false;
	}
	/* The path as written, then where its symlinks lead. */
	if (!tls_may_reach(abs, &who))
		return false;
	if (realpath(abs, real) == NULL || !tls_may_reach(real, &who))
		return false;
	return tls_may(real, &who, TLS_WANT_READ);
}
