/*
 * test_lib_dirsync.c: dirsync() shares fsyncs between threads but never
 * lets a caller return on an fsync that started before it arrived.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/dirsync.h"

#define THREADS	16
#define ROUNDS	50

static char dir[] = "/tmp/petrel-dirsync-XXXXXX";

static void *
worker(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < ROUNDS; i++)
		if (dirsync(dir) != 0)
			return (void *)1;
	return NULL;
}

static void
test_sequential_calls_each_sync(void **state)
{
	uint64_t before = dirsync_count();
	int i;

	(void)state;
	for (i = 0; i < 5; i++)
		assert_int_equal(dirsync(dir), 0);
	/* Nobody to share with: every call issues its own fsync. */
	if (dirsync_count() - before != 5)
		fail_msg("got %llu fsyncs for 5 calls, want 5",
		    (unsigned long long)(dirsync_count() - before));
}

static void
test_concurrent_calls_share(void **state)
{
	pthread_t t[THREADS];
	uint64_t before = dirsync_count(), n;
	void *r;
	int i;

	(void)state;
	for (i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	for (i = 0; i < THREADS; i++) {
		pthread_join(t[i], &r);
		assert_null(r);
	}
	n = dirsync_count() - before;
	print_message("dirsync: %d calls, %llu fsyncs\n", THREADS * ROUNDS,
	    (unsigned long long)n);
	assert_true(n >= ROUNDS);	/* each thread's calls are ordered */
	assert_true(n < THREADS * ROUNDS);
}

static void
test_missing_directory(void **state)
{
	(void)state;
	errno = 0;
	assert_int_equal(dirsync("/nonexistent/petrel/dir"), -1);
	assert_int_equal(errno, ENOENT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sequential_calls_each_sync),
		cmocka_unit_test(test_concurrent_calls_share),
		cmocka_unit_test(test_missing_directory),
	};
	int r;

	if (mkdtemp(dir) == NULL)
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(dir);
	return r;
}
