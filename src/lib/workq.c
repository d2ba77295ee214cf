/*
 * workq.c: worker threads with completions delivered on the event loop.
 *
 * Entry points: workq_new(), workq_run(), workq_offload(), workq_free().
 *
 * Jobs move queued -> (a worker runs work) -> finished; one libevent
 * event, activated from the workers (event_active is thread-safe with
 * evthread_use_pthreads), runs the done callbacks on the loop, one job at
 * a time with the lock released, so that done may queue more jobs.
 *
 * OWNERSHIP: the queue owns its job records; arg belongs to the caller.
 */
#include "lib/workq.h"

#include <sys/queue.h>

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lib/log.h"
#include "lib/util.h"

#define WORKQ_THREADS_MAX	64

struct workq_job {
	TAILQ_ENTRY(workq_job) entry;
	void (*work)(void *);
	void (*done)(void *);
	void *arg;
};
TAILQ_HEAD(workq_jobs, workq_job);

struct workq {
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	struct workq_jobs queued;
	struct workq_jobs finished;
	size_t running;
	size_t pending;		/* queued + running + finished */
	bool stopping;
	struct event *done_ev;
	pthread_t *threads;
	unsigned int nthreads;
};

static void *
workq_main(void *arg)
{
	struct workq *q = arg;
	struct workq_job *job;

	pthread_mutex_lock(&q->mtx);
	for (;;) {
		while (TAILQ_EMPTY(&q->queued) && !q->stopping)
			pthread_cond_wait(&q->cv, &q->mtx);
		if ((job = TAILQ_FIRST(&q->queued)) == NULL)
			break;		/* stopping, and nothing left */
		TAILQ_REMOVE(&q->queued, job, entry);
		q->running++;
		pthread_mutex_unlock(&q->mtx);
		job->work(job->arg);
		pthread_mutex_lock(&q->mtx);
		q->running--;
		TAILQ_INSERT_TAIL(&q->finished, job, entry);
		event_active(q->done_ev, 0, 0);
	}
	pthread_mutex_unlock(&q->mtx);
	return NULL;
}

/* On the loop: the done callbacks of finished jobs. */
static void
workq_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct workq *q = arg;
	struct workq_job *job;

	(void)fd;
	(void)what;
	for (;;) {
		pthread_mutex_lock(&q->mtx);
		if ((job = TAILQ_FIRST(&q->finished)) != NULL) {
			TAILQ_REMOVE(&q->finished, job, entry);
			q->pending--;
		}
		pthread_mutex_unlock(&q->mtx);
		if (job == NULL)
			break;
		job->done(job->arg);
		free(job);
	}
}

struct workq *
workq_new(struct event_base *base, unsigned int nthreads)
{
	struct workq *q = xcalloc(1, sizeof(*q));
	sigset_t all, old;
	unsigned int i;
	int r;

	if (pthread_mutex_init(&q->mtx, NULL) != 0 ||
	    pthread_cond_init(&q->cv, NULL) != 0)
		fatalx("workq_new: cannot create a lock");
	TAILQ_INIT(&q->queued);
	TAILQ_INIT(&q->finished);
	if ((q->done_ev = event_new(base, -1, 0, workq_done_cb, q)) == NULL)
		fatalx("workq_new: event_new failed");
	q->nthreads = nthreads == 0 ? 1 : nthreads;
	if (q->nthreads > WORKQ_THREADS_MAX)
		q->nthreads = WORKQ_THREADS_MAX;
	q->threads = xcalloc(q->nthreads, sizeof(*q->threads));
	/* Signals are the loop thread's business. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < q->nthreads; i++)
		if ((r = pthread_create(&q->threads[i], NULL, workq_main,
		    q)) != 0)
			fatalx("workq_new: pthread_create: %s", strerror(r));
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return q;
}

void
workq_run(struct workq *q, void (*work)(void *), void (*done)(void *),
    void *arg)
{
	struct workq_job *job = xcalloc(1, sizeof(*job));

	job->work = work;
	job->done = done;
	job->arg = arg;
	pthread_mutex_lock(&q->mtx);
	TAILQ_INSERT_TAIL(&q->queued, job, entry);
	q->pending++;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mtx);
}

void
workq_offload(void *ctx, void (*work)(void *), void (*done)(void *),
    void *arg)
{
	workq_run(ctx, work, done, arg);
}

size_t
workq_pending(struct workq *q)
{
	size_t n;

	pthread_mutex_lock(&q->mtx);
	n = q->pending;
	pthread_mutex_unlock(&q->mtx);
	return n;
}

void
workq_free(struct workq *q)
{
	unsigned int i;

	if (q == NULL)
		return;
	/* The workers empty the queue before they see stopping. */
	pthread_mutex_lock(&q->mtx);
	q->stopping = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mtx);
	for (i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	/* Every job has finished: its done is owed, and runs here. */
	workq_done_cb(-1, 0, q);
	event_free(q->done_ev);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mtx);
	free(q->threads);
	free(q);
}
