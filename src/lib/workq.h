/*
 * workq.h: a pool of worker threads for CPU work that must not run on the
 * event loop (DKIM signing and verification), with the completion handed
 * back to the loop.
 *
 *   q = workq_new(base, 2);
 *   workq_run(q, work, done, arg);   work(arg) on a worker, then
 *                                    done(arg) on the loop, exactly once
 *   workq_free(q);                   finishes every job first
 *
 * The signature matches msgauth's offload hook (msgauth/check.h): pass
 * workq_offload and the queue as its context.
 */
#ifndef PETREL_LIB_WORKQ_H
#define PETREL_LIB_WORKQ_H

#include <stddef.h>

struct event_base;
struct workq;

/*
 * nthreads workers (0 means 1, at most 64), started with every signal
 * blocked. The caller has called evthread_use_pthreads() before creating
 * base. Aborts (fatalx) if a thread, lock or event cannot be made.
 */
struct workq *workq_new(struct event_base *base, unsigned int nthreads);

/*
 * Queue a job: work(arg) runs on a worker thread, then done(arg) on the
 * loop thread, in a later loop turn, never during this call. Jobs start in
 * the order queued; done callbacks come in the order jobs finish. There is
 * no cancellation: an owner that goes away meanwhile leaves a flag in arg
 * for done to see (done is always called). Only from the loop thread.
 */
void workq_run(struct workq *q, void (*work)(void *), void (*done)(void *),
    void *arg);

/* workq_run() as a msgauth offload hook: ctx is the struct workq. */
void workq_offload(void *ctx, void (*work)(void *), void (*done)(void *),
    void *arg);

/* Jobs queued or running, and finished jobs whose done has not run. */
size_t workq_pending(struct workq *q);

/*
 * Let the workers finish every queued job, stop them, and run the done
 * callbacks still owed, here (on the loop thread), so that every job's
 * done has run once when this returns. NULL is a no-op. Not from inside
 * a done callback.
 */
void workq_free(struct workq *q);

#endif
