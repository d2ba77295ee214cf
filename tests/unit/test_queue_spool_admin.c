/*
 * test_queue_spool_admin.c: the spool lock (who holds it, a daemon's is
 * not waited for, released on close) and the spool read and changed
 * directly by `petrel queue` (scan order, sizes, bad files skipped, the
 * hold flag read back, durable removal, queue IDs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "queue/envelope.h"
#include "queue/qfile.h"
#include "queue/spool_admin.h"
#include "qfile_raw.h"

static char dir[] = "/tmp/petrel-spool-admin-XXXXXX";

static void
write_file(const char *name, const void *data, size_t len)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/queue/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void
write_message(const char *id, const char *sender, const char *content,
    uint32_t flags)
{
	struct envelope env;
	struct buf b;
	size_t i;

	envelope_init(&env);
	env.sender = xstrdup(sender);
	env.client_addr = xstrdup("127.0.0.1");
	env.helo = xstrdup("client.test");
	env.proto = xstrdup("ESMTP");
	env.arrival = 1795946677;
	i = envelope_rcpt_add(&env, "bob@remote.test", "bob@remote.test",
	    NULL, RCPT_KIND_REMOTE, 0, NULL);
	env.rcpts[i].flags = flags;
	raw_file(&b, id, &env, content);
	write_file(id, b.data, b.len);
	buf_free(&b);
	envelope_free(&env);
}

struct seen {
	char ids[8][QUEUE_ID_MAX];
	uint64_t sizes[8];
	uint32_t flags[8];
	size_t n;
};

static int
scan_cb(void *arg, const char *id, const struct envelope *env, uint64_t size)
{
	struct seen *s = arg;

	assert_true(s->n < 8);
	strlcpy(s->ids[s->n], id, sizeof(s->ids[s->n]));
	s->sizes[s->n] = size;
	s->flags[s->n] = env->nrcpts > 0 ? env->rcpts[0].flags : 0;
	s->n++;
	return 0;
}

static int
setup(void **state)
{
	char path[512];

	(void)state;
	strlcpy(dir, "/tmp/petrel-spool-admin-XXXXXX", sizeof(dir));
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/queue", dir);
	return mkdir(path, 0700);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
teardown(void **state)
{
	(void)state;
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
test_lock(void **state)
{
	char role[32];
	pid_t pid;
	int fd, fd2;

	(void)state;
	fd = spool_admin_lock(dir, SPOOL_LOCK_SERVE, 0, (uid_t)-1, (gid_t)-1,
	    &pid, role, sizeof(role));
	assert_true(fd >= 0);
	/* A daemon's lock fails at once, naming it, however long we wait. */
	fd2 = spool_admin_lock(dir, SPOOL_LOCK_QUEUE, 60000, (uid_t)-1,
	    (gid_t)-1, &pid, role, sizeof(role));
	assert_int_equal(fd2, -1);
	assert_int_equal(errno, EWOULDBLOCK);
	assert_int_equal(pid, getpid());
	assert_string_equal(role, SPOOL_LOCK_SERVE);
	close(fd);
	/* Released with its descriptor; a queue command's is waited for,
	 * up to the limit. */
	fd = spool_admin_lock(dir, SPOOL_LOCK_QUEUE, 0, (uid_t)-1, (gid_t)-1,
	    &pid, role, sizeof(role));
	assert_true(fd >= 0);
	fd2 = spool_admin_lock(dir, SPOOL_LOCK_SERVE, 100, (uid_t)-1,
	    (gid_t)-1, &pid, role, sizeof(role));
	assert_int_equal(fd2, -1);
	assert_string_equal(role, SPOOL_LOCK_QUEUE);
	close(fd);
}

static void
test_scan_and_remove(void **state)
{
	struct seen s;
	const char *error;
	size_t skipped;
	char path[512];

	(void)state;
	memset(&s, 0, sizeof(s));
	write_message("0000000000000002", "a@example.test", "Subject: b\r\n\r\n"
	    "two\r\n", 0);
	write_message("0000000000000001", "", "x", RCPT_FLAG_HELD);
	write_file("0000000000000003", "not a queue file", 16);
	/* A flag this version does not know: corrupt, as for the daemon. */
	write_message("0000000000000004", "", "x", 0x10);
	write_file(".hidden", "x", 1);
	assert_int_equal(spool_admin_scan(dir, scan_cb, &s, &skipped, &error),
	    0);
	assert_int_equal(s.n, 2);
	assert_int_equal(skipped, 2);
	assert_string_equal(s.ids[0], "0000000000000001");
	assert_string_equal(s.ids[1], "0000000000000002");
	assert_int_equal(s.sizes[0], 1);
	assert_int_equal(s.sizes[1], 19);
	assert_int_equal(s.flags[0], RCPT_FLAG_HELD);
	assert_int_equal(s.flags[1], 0);

	assert_int_equal(spool_admin_remove(dir, "0000000000000001"), 0);
	snprintf(path, sizeof(path), "%s/queue/0000000000000001", dir);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(spool_admin_remove(dir, "0000000000000001"), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_admin_remove(dir, "../lock"), -1);
	assert_int_equal(errno, EINVAL);
}

static void
test_valid_id(void **state)
{
	(void)state;
	assert_true(spool_admin_valid_id("1K1CY6DVV7B32816"));
	assert_true(spool_admin_valid_id("a.b_c-d"));
	assert_false(spool_admin_valid_id(""));
	assert_false(spool_admin_valid_id(".x"));
	assert_false(spool_admin_valid_id("a/b"));
	assert_false(spool_admin_valid_id("a b"));
	assert_false(spool_admin_valid_id(
	    "0123456789012345678901234567890123"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_and_remove, setup,
		    teardown),
		cmocka_unit_test(test_valid_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
