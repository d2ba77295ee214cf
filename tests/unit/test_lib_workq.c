/*
 * test_lib_workq.c: work runs on the worker threads, done on the loop
 * thread, exactly once per job, never during workq_run(); done may queue
 * more work; workq_free() runs every done still owed.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "lib/workq.h"

#define NJOBS	2000

struct job {
	struct ctx *ctx;
	unsigned int n;
	bool worked;
	bool on_loop;		/* work ran on the loop thread (wrong) */
	int done;
	bool chain;		/* done queues one more job */
};

struct ctx {
	struct event_base *base;
	struct workq *q;
	pthread_t loop;
	atomic_uint worked;
	unsigned int done;
	unsigned int want;
	struct job *jobs;
	struct job extra;
};

static void
work(void *arg)
{
	struct job *j = arg;

	j->on_loop = pthread_equal(pthread_self(), j->ctx->loop);
	/* Some CPU, different per job. */
	for (unsigned int i = 0; i < (j->n % 97) * 100; i++)
		__asm__ volatile("" ::: "memory");
	j->worked = true;
	atomic_fetch_add(&j->ctx->worked, 1);
}

static void
done(void *arg)
{
	struct job *j = arg;
	struct ctx *c = j->ctx;

	assert_true(pthread_equal(pthread_self(), c->loop));
	assert_true(j->worked);
	assert_false(j->on_loop);
	j->done++;
	c->done++;
	if (j->chain) {
		c->extra.ctx = c;
		c->want++;
		workq_run(c->q, work, done, &c->extra);
	}
	if (c->done == c->want)
		event_base_loopbreak(c->base);
}

static void
test_jobs(void **state)
{
	struct ctx c = { 0 };
	unsigned int i;

	(void)state;
	assert_int_equal(evthread_use_pthreads(), 0);
	c.base = event_base_new();
	c.loop = pthread_self();
	c.q = workq_new(c.base, 3);
	c.jobs = calloc(NJOBS, sizeof(*c.jobs));
	assert_non_null(c.jobs);
	c.want = NJOBS;
	for (i = 0; i < NJOBS; i++) {
		c.jobs[i].ctx = &c;
		c.jobs[i].n = i;
		c.jobs[i].chain = i == NJOBS / 2;
		workq_run(c.q, work, done, &c.jobs[i]);
	}
	/* Never during workq_run(). */
	assert_int_equal(c.done, 0);
	/* Activated from workers only: keep the loop alive meanwhile. */
	event_base_loop(c.base, EVLOOP_NO_EXIT_ON_EMPTY);
	assert_int_equal(c.done, NJOBS + 1);
	for (i = 0; i < NJOBS; i++)
		assert_int_equal(c.jobs[i].done, 1);
	assert_int_equal(c.extra.done, 1);
	assert_int_equal(atomic_load(&c.worked), NJOBS + 1);
	assert_int_equal(workq_pending(c.q), 0);
	workq_free(c.q);
	free(c.jobs);
	event_base_free(c.base);
}

/* workq_free() with jobs queued: every work and every done has run. */
static void
test_free_runs_what_is_owed(void **state)
{
	struct ctx c = { 0 };
	unsigned int i;

	(void)state;
	c.base = event_base_new();
	c.loop = pthread_self();
	c.q = workq_new(c.base, 1);
	c.jobs = calloc(100, sizeof(*c.jobs));
	assert_non_null(c.jobs);
	c.want = 1000;		/* never reached: no loopbreak */
	for (i = 0; i < 100; i++) {
		c.jobs[i].ctx = &c;
		c.jobs[i].n = i;
		workq_run(c.q, work, done, &c.jobs[i]);
	}
	assert_true(workq_pending(c.q) > 0);
	workq_free(c.q);	/* no loop turn at all */
	for (i = 0; i < 100; i++)
		assert_int_equal(c.jobs[i].done, 1);
	assert_int_equal(c.done, 100);
	free(c.jobs);
	event_base_free(c.base);
	workq_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jobs),
		cmocka_unit_test(test_free_runs_what_is_owed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
