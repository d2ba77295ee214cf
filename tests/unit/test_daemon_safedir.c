/*
 * test_daemon_safedir.c: the spool safety rules of `petrel serve`
 * (src/daemon/safedir.c): world-writable directories above the spool are
 * refused unless sticky, strangers may not own them, the spool itself
 * must be the daemon user's and not world-writable; symbolic links are
 * followed to where they lead. Runs as root (chown to other uids); as
 * another user the ownership cases are skipped.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#include "daemon/safedir.h"

#define OWNER		4343	/* the daemon's user in these cases */
#define STRANGER	4242

struct safedir_case {
	const char *name;
	unsigned int parent_mode;
	uid_t parent_uid;	/* (uid_t)-1: leave it root's */
	unsigned int spool_mode;	/* 0: no spool; 1: a file */
	uid_t spool_uid;
	int how;		/* see path_for() */
	int want_parents;	/* safedir_check_parents() */
	int want_check;		/* safedir_check() */
	const char *want_text;	/* in err of the first -1 */
};

enum { PLAIN, TRAILING_SLASH, RELATIVE, VIA_LINK };

static const struct safedir_case cases[] = {
	{ "good tree", 0755, (uid_t)-1, 0700, OWNER, PLAIN, 0, 0, NULL },
	{ "trailing slash", 0755, (uid_t)-1, 0700, OWNER, TRAILING_SLASH,
	    0, 0, NULL },
	{ "parent world-writable", 0777, (uid_t)-1, 0700, OWNER, PLAIN,
	    -1, -1, "is writable by every user (mode 0777)" },
	{ "parent world-writable, relative path", 0777, (uid_t)-1, 0700,
	    OWNER, RELATIVE, -1, -1, "is writable by every user" },
	{ "parent sticky and world-writable (/tmp)", 01777, (uid_t)-1, 0700,
	    OWNER, PLAIN, 0, 0, NULL },
	{ "parent group-writable by root's group", 0775, (uid_t)-1, 0700,
	    OWNER, PLAIN, 0, 0, NULL },
	{ "parent owned by a stranger", 0755, STRANGER, 0700, OWNER, PLAIN,
	    -1, -1, "belongs to uid 4242, who could replace the spool" },
	{ "parent owned by the daemon's user", 0755, OWNER, 0700, OWNER,
	    PLAIN, 0, 0, NULL },
	{ "spool world-writable", 0755, (uid_t)-1, 0777, OWNER, PLAIN,
	    0, -1, "is writable by every user (mode 0777): chmod 0700" },
	{ "spool sticky and world-writable", 0755, (uid_t)-1, 01777, OWNER,
	    PLAIN, 0, -1, "is writable by every user (mode 1777)" },
	{ "spool owned by a stranger", 0755, (uid_t)-1, 0700, STRANGER,
	    PLAIN, 0, -1, "belongs to uid 4242, not to the daemon's user" },
	{ "spool is a file", 0755, (uid_t)-1, 1, OWNER, PLAIN, 0, -1,
	    "is not a directory" },
	{ "no spool yet", 0755, (uid_t)-1, 0, OWNER, PLAIN, 0, -1,
	    "No such file or directory" },
	{ "no spool yet, below a world-writable parent", 0777, (uid_t)-1, 0,
	    OWNER, PLAIN, -1, -1, "is writable by every user" },
	{ "a link from a safe place into a world-writable one", 0777,
	    (uid_t)-1, 0700, OWNER, VIA_LINK, -1, -1,
	    "is writable by every user" },
	{ "a link to a safe place", 0755, (uid_t)-1, 0700, OWNER, VIA_LINK,
	    0, 0, NULL },
};

/*
 * base/p (parent_mode, parent_uid) and base/p/spool; VIA_LINK puts the
 * spool in base/p/q/spool instead and names it base/safe/link/spool,
 * with link -> base/p/q: only the resolved path passes through p.
 */
static void
build(const struct safedir_case *tc, const char *base, char *path,
    size_t pathsize)
{
	char p[128], spool[256], safe[256];
	int fd;

	snprintf(p, sizeof(p), "%s/p", base);
	assert_int_equal(mkdir(p, 0700), 0);
	if (tc->how == VIA_LINK) {
		snprintf(spool, sizeof(spool), "%s/q", p);
		assert_int_equal(mkdir(spool, 0755), 0);
		snprintf(spool, sizeof(spool), "%s/q/spool", p);
	} else
		snprintf(spool, sizeof(spool), "%s/spool", p);
	if (tc->spool_mode == 1) {
		fd = open(spool, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		close(fd);
	} else if (tc->spool_mode != 0) {
		assert_int_equal(mkdir(spool, 0700), 0);
		assert_int_equal(chmod(spool, tc->spool_mode), 0);
	}
	if (tc->spool_mode != 0)
		assert_int_equal(chown(spool, tc->spool_uid, (gid_t)-1), 0);
	if (tc->parent_uid != (uid_t)-1)
		assert_int_equal(chown(p, tc->parent_uid, (gid_t)-1), 0);
	assert_int_equal(chmod(p, tc->parent_mode), 0);
	switch (tc->how) {
	case TRAILING_SLASH:
		snprintf(path, pathsize, "%s/", spool);
		break;
	case RELATIVE:
		assert_int_equal(chdir(base), 0);
		snprintf(path, pathsize, "p/spool");
		break;
	case VIA_LINK:
		snprintf(safe, sizeof(safe), "%s/safe", base);
		assert_int_equal(mkdir(safe, 0755), 0);
		snprintf(safe, sizeof(safe), "%s/safe/link", base);
		snprintf(p, sizeof(p), "%s/p/q", base);
		assert_int_equal(symlink(p, safe), 0);
		snprintf(path, pathsize, "%s/spool", safe);
		break;
	default:
		snprintf(path, pathsize, "%s", spool);
	}
}

static void
test_cases(void **state)
{
	char base[] = "/tmp/petrel-safedir-XXXXXX", path[PATH_MAX];
	char err[PATH_MAX + 256], cmd[PATH_MAX];
	size_t i;
	int rc, failures = 0;

	(void)state;
	if (geteuid() != 0)
		skip();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct safedir_case *tc = &cases[i];

		assert_non_null(mkdtemp(base));
		build(tc, base, path, sizeof(path));
		err[0] = '\0';
		rc = safedir_check_parents(path, OWNER, err, sizeof(err));
		if (rc != tc->want_parents) {
			print_error("%s: safedir_check_parents: got %d (%s), "
			    "want %d\n", tc->name, rc, err, tc->want_parents);
			failures++;
		}
		if (rc == 0) {
			err[0] = '\0';
			rc = safedir_check(path, OWNER, true, err,
			    sizeof(err));
			if (rc != tc->want_check) {
				print_error("%s: safedir_check: got %d (%s), "
				    "want %d\n", tc->name, rc, err,
				    tc->want_check);
				failures++;
			}
		}
		if (rc == -1 && tc->want_text != NULL &&
		    strstr(err, tc->want_text) == NULL) {
			print_error("%s: got \"%s\", want it to contain "
			    "\"%s\"\n", tc->name, err, tc->want_text);
			failures++;
		}
		assert_int_equal(chdir("/"), 0);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
		assert_int_equal(WEXITSTATUS(pclose(popen(cmd, "r"))), 0);
		memcpy(base + strlen(base) - 6, "XXXXXX", 6);
	}
	if (failures > 0)
		fail_msg("%d of %zu cases failed", failures,
		    sizeof(cases) / sizeof(cases[0]));
}

/* The root directory itself, and a path with no directory above it. */
static void
test_root_and_top_level(void **state)
{
	char err[PATH_MAX + 256];

	(void)state;
	assert_int_equal(safedir_check_parents("/", 0, err, sizeof(err)), 0);
	assert_int_equal(safedir_check_parents("/petrel-no-such-spool", 0,
	    err, sizeof(err)), 0);
	/* /tmp is 1777: fine as a parent, never as the spool itself. */
	assert_int_equal(safedir_check("/tmp", 0, true, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "writable by every user"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_root_and_top_level),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
