/*
 * test_lib_log.c: log_escape() and log_escape_word(), which make client
 * text safe for a log line; log_file: created 0640, appended, reopened
 * after a rename (logrotate), the old file kept when reopening fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/log.h"

static void
test_escape(void **state)
{
	char out[64];
	const char in[] = "a b\"c\\d\r\n\x01\x7f\xc3\xa9";

	(void)state;
	assert_string_equal(log_escape(out, sizeof(out), in, sizeof(in) - 1),
	    "a b\\x22c\\x5cd\\x0d\\x0a\\x01\\x7f\\xc3\\xa9");
	assert_string_equal(log_escape_word(out, sizeof(out), in,
	    sizeof(in) - 1),
	    "a\\x20b\\x22c\\x5cd\\x0d\\x0a\\x01\\x7f\\xc3\\xa9");
	/* A NUL inside is escaped, not an end. */
	assert_string_equal(log_escape_word(out, sizeof(out), "x\0y", 3),
	    "x\\x00y");
}

/* A login name cannot make the line look like more key=value fields. */
static void
test_word_has_no_space(void **state)
{
	const char in[] = "x session=1 smtp: auth failed client=192.0.2.9";
	char out[128];

	(void)state;
	log_escape_word(out, sizeof(out), in, strlen(in));
	assert_null(strchr(out, ' '));
	assert_string_equal(out, "x\\x20session=1\\x20smtp:\\x20auth\\x20"
	    "failed\\x20client=192.0.2.9");
}

/* Too long: cut with "...", never past the buffer, always terminated. */
static void
test_truncation(void **state)
{
	char out[12], big[100];
	size_t size;

	(void)state;
	memset(big, ' ', sizeof(big));
	for (size = 4; size <= sizeof(out); size++) {
		memset(out, 'Z', sizeof(out));
		log_escape_word(out, size, big, sizeof(big));
		assert_true(strlen(out) < size);
		assert_non_null(strstr(out, "..."));
	}
	assert_string_equal(log_escape(out, sizeof(out), "abc", 3), "abc");
}

static char *
slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *text = calloc(1, 1 << 16);
	size_t n;

	if (fp == NULL) {
		free(text);
		return NULL;
	}
	n = fread(text, 1, (1 << 16) - 1, fp);
	text[n] = '\0';
	fclose(fp);
	return text;
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay++;
	}
	return n;
}

static void
test_log_file(void **state)
{
	char dir[] = "/tmp/test_lib_log.XXXXXX", path[128], moved[128];
	char sub[128], subpath[160];
	struct stat st;
	char *text;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/petrel.log", dir);
	snprintf(moved, sizeof(moved), "%s/petrel.log.1", dir);
	umask(077);		/* the file is 0640 all the same */
	assert_int_equal(log_file_open(path, (uid_t)-1, (gid_t)-1), 0);
	umask(022);
	log_info("first queue=Q1");
	log_debug("below the level");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	text = slurp(path);
	assert_non_null(strstr(text, "]: info: first queue=Q1\n"));
	assert_null(strstr(text, "below the level"));
	free(text);

	/* logrotate: rename, then SIGHUP reopens the path. */
	assert_int_equal(rename(path, moved), 0);
	log_info("second");
	assert_int_equal(log_file_reopen(), 0);
	log_info("third");
	text = slurp(moved);
	assert_int_equal(count(text, "first"), 1);
	assert_int_equal(count(text, "second"), 1);
	assert_int_equal(count(text, "third"), 0);
	free(text);
	text = slurp(path);
	assert_int_equal(count(text, "third"), 1);
	assert_int_equal(count(text, "second"), 0);
	free(text);

	/* Reopening fails (directory gone): the old file stays in use. */
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	snprintf(subpath, sizeof(subpath), "%s/petrel.log", sub);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(log_file_open(subpath, (uid_t)-1, (gid_t)-1), 0);
	log_info("fourth");
	assert_int_equal(rename(subpath, path), 0);	/* replaces it */
	assert_int_equal(rmdir(sub), 0);
	assert_int_equal(log_file_reopen(), -1);
	log_info("fifth");
	text = slurp(path);
	assert_int_equal(count(text, "fourth"), 1);
	assert_int_equal(count(text, "fifth"), 1);
	free(text);

	/* An existing file is appended to, not truncated. */
	assert_int_equal(log_file_open(path, (uid_t)-1, (gid_t)-1), 0);
	log_info("sixth");
	log_file_close();
	log_info("seventh");
	text = slurp(path);
	assert_int_equal(count(text, "fourth"), 1);
	assert_int_equal(count(text, "sixth"), 1);
	assert_int_equal(count(text, "seventh"), 0);
	free(text);
	/* No log file: reopening is nothing to do. */
	assert_int_equal(log_file_reopen(), 0);

	unlink(path);
	unlink(moved);
	rmdir(dir);
}

/* A symbolic link planted at the path is not followed. */
static void
test_log_file_no_symlink(void **state)
{
	char dir[] = "/tmp/test_lib_log.XXXXXX", path[128], target[128];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/petrel.log", dir);
	snprintf(target, sizeof(target), "%s/elsewhere", dir);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(log_file_open(path, (uid_t)-1, (gid_t)-1), -1);
	assert_int_equal(access(target, F_OK), -1);
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_word_has_no_space),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_log_file),
		cmocka_unit_test(test_log_file_no_symlink),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
