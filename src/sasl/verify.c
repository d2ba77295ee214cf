/*
 * verify.c: password checks with libcrypt's crypt_r on worker threads,
 * results handed back to the event loop.
 *
 * Entry points: sasl_verifier_new/free(), sasl_verify(),
 * sasl_verify_cancel(), sasl_verifier_crypt_count(),
 * sasl_hash_is_supported().
 *
 *   loop thread   sasl_verify(): copy hash and password into a job, queue
 *                 it, wake a worker;
 *   worker        crypt_r (tens of milliseconds for yescrypt: far too long
 *                 for the loop), compare, wipe the password, move the job
 *                 to the done list, event_active(done_ev);
 *   loop thread   the done event pops jobs one at a time and calls each
 *                 callback unless the job was cancelled.
 *
 * Jobs are on exactly one of three lists (queued, running, done) under
 * the mutex, so a cancel finds them wherever they are: a queued job is
 * freed at once, a running or done one is only marked.
 *
 * SECURITY: the password never leaves this file except through crypt_r;
 * its copy and crypt_r's output are wiped (OPENSSL_cleanse). The result is
 * compared with CRYPTO_memcmp. Unknown users, receive-only users (empty
 * hash), old or unknown methods (DES, MD5, "!" locked hashes) and strings
 * crypt_r refuses all cost one yescrypt run against a fixed dummy hash,
 * so the time to a 535 does not say whether the user exists.
 * STANDARDS: crypt(5) of libxcrypt (hash prefixes).
 * OWNERSHIP: the verifier owns its threads and every job; a job owns its
 * copies of the hash and the password.
 */
#include "sasl/sasl.h"

#include <sys/queue.h>

#include <crypt.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#include "lib/log.h"
#include "lib/util.h"

#define SASL_VERIFY_THREADS_MAX	64

/*
 * yescrypt with libxcrypt's default cost (what `petrel user add` writes),
 * of a password nobody uses: the work done for a hash that cannot match.
 */
#define SASL_DUMMY_HASH	"$y$j9T$PfWWkEGmPUIArnUlHntfu0$" \
			"bVePfDDyscJRw7T7Ld.e0Kr7nzFUjiVfbxlVvJC3mn2"

/* The methods we verify: slow, salted hashes only. */
static const char *const sasl_hash_prefixes[] = {
	"$y$",		/* yescrypt */
	"$gy$",		/* gost-yescrypt */
	"$7$",		/* scrypt */
	"$2b$",		/* bcrypt */
	"$2y$",		/* bcrypt (PHP's and Dovecot's name) */
	"$2a$",		/* bcrypt (older name) */
	"$6$",		/* SHA-512 crypt */
	"$5$",		/* SHA-256 crypt */
};

struct sasl_job {
	TAILQ_ENTRY(sasl_job) entry;
	uint64_t id;
	char *hash;		/* NULL: cannot match */
	char *password;
	size_t password_len;
	bool ok;
	bool cancelled;
	sasl_verify_cb cb;
	void *arg;
};

TAILQ_HEAD(sasl_jobs, sasl_job);

struct sasl_verifier {
	struct event_base *base;
	struct event *done_ev;
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	struct sasl_jobs queued;
	struct sasl_jobs running;
	struct sasl_jobs done;
	pthread_t *threads;
	unsigned int nthreads;
	bool stopping;
	uint64_t next_id;
	uint64_t crypts;	/* under mtx */
};

static void
sasl_job_free(struct sasl_job *job)
{
	if (job == NULL)
		return;
	if (job->password != NULL) {
		OPENSSL_cleanse(job->password, job->password_len);
		free(job->password);
	}
	free(job->hash);
	free(job);
}

bool
sasl_hash_is_supported(const char *hash)
{
	size_t i;

	if (hash == NULL || strlen(hash) >= CRYPT_OUTPUT_SIZE)
		return false;
	for (i = 0; i < nitems(sasl_hash_prefixes); i++)
		if (strncmp(hash, sasl_hash_prefixes[i],
		    strlen(sasl_hash_prefixes[i])) == 0)
			return true;
	return false;
}

/* crypt_r's result, or NULL if it refused the setting. */
static const char *
sasl_crypt(const char *password, const char *setting, struct crypt_data *cd)
{
	const char *out;

	out = crypt_r(password, setting, cd);
	/* libxcrypt returns a "*0"/"*1" failure token, or NULL. */
	if (out == NULL || out[0] == '*')
		return NULL;
	return out;
}

/* On a worker: does job->password match job->hash? Returns crypt runs. */
static unsigned int
sasl_job_run(struct sasl_job *job, struct crypt_data *cd)
{
	const char *out = NULL;
	unsigned int runs = 0;
	size_t len;

	job->ok = false;
	if (sasl_hash_is_supported(job->hash)) {
		out = sasl_crypt(job->password, job->hash, cd);
		runs++;
	}
	if (out == NULL) {
		/* Same cost as a real user; the result is ignored. */
		(void)sasl_crypt(job->password, SASL_DUMMY_HASH, cd);
		runs++;
	} else {
		len = strlen(out);
		job->ok = len == strlen(job->hash) &&
		    CRYPTO_memcmp(out, job->hash, len) == 0;
	}
	OPENSSL_cleanse(cd->output, sizeof(cd->output));
	OPENSSL_cleanse(job->password, job->password_len);
	return runs;
}

static void *
sasl_verify_worker(void *arg)
{
	struct sasl_verifier *v = arg;
	struct crypt_data *cd;
	struct sasl_job *job;
	unsigned int runs;

	/* Large (about 32 KiB): on the heap, not the thread's stack. */
	cd = xcalloc(1, sizeof(*cd));
	pthread_mutex_lock(&v->mtx);
	for (;;) {
		while (!v->stopping && TAILQ_EMPTY(&v->queued))
			pthread_cond_wait(&v->cv, &v->mtx);
		if (v->stopping)
			break;
		job = TAILQ_FIRST(&v->queued);
		TAILQ_REMOVE(&v->queued, job, entry);
		TAILQ_INSERT_TAIL(&v->running, job, entry);
		pthread_mutex_unlock(&v->mtx);

		runs = sasl_job_run(job, cd);

		pthread_mutex_lock(&v->mtx);
		v->crypts += runs;
		TAILQ_REMOVE(&v->running, job, entry);
		TAILQ_INSERT_TAIL(&v->done, job, entry);
		pthread_mutex_unlock(&v->mtx);
		/* Thread-safe with evthread_use_pthreads(); outside our
		 * mutex so that it never nests with libevent's lock. */
		event_active(v->done_ev, EV_READ, 0);
		pthread_mutex_lock(&v->mtx);
	}
	pthread_mutex_unlock(&v->mtx);
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return NULL;
}

/* On the loop: run the callbacks of finished jobs, one at a time so that
 * a callback may cancel or start other jobs. */
static void
sasl_verify_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sasl_verifier *v = arg;
	struct sasl_job *job;

	(void)fd;
	(void)what;
	for (;;) {
		pthread_mutex_lock(&v->mtx);
		job = TAILQ_FIRST(&v->done);
		if (job != NULL)
			TAILQ_REMOVE(&v->done, job, entry);
		pthread_mutex_unlock(&v->mtx);
		if (job == NULL)
			break;
		if (!job->cancelled)
			job->cb(job->arg, job->ok);
		sasl_job_free(job);
	}
}

struct sasl_verifier *
sasl_verifier_new(struct event_base *base, unsigned int nthreads)
{
	struct sasl_verifier *v;
	sigset_t all, old;
	unsigned int i;
	int r;

	v = xcalloc(1, sizeof(*v));
	v->base = base;
	v->next_id = 1;
	TAILQ_INIT(&v->queued);
	TAILQ_INIT(&v->running);
	TAILQ_INIT(&v->done);
	if (pthread_mutex_init(&v->mtx, NULL) != 0 ||
	    pthread_cond_init(&v->cv, NULL) != 0)
		fatalx("sasl_verifier_new: cannot create a mutex");
	v->done_ev = event_new(base, -1, 0, sasl_verify_done_cb, v);
	if (v->done_ev == NULL)
		fatalx("sasl_verifier_new: event_new failed");
	v->nthreads = nthreads == 0 ? 1 : nthreads;
	if (v->nthreads > SASL_VERIFY_THREADS_MAX)
		v->nthreads = SASL_VERIFY_THREADS_MAX;
	v->threads = xcalloc(v->nthreads, sizeof(*v->threads));
	/* Signals are the main thread's business. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < v->nthreads; i++)
		if ((r = pthread_create(&v->threads[i], NULL,
		    sasl_verify_worker, v)) != 0)
			fatalx("sasl_verifier_new: pthread_create: %s",
			    strerror(r));
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return v;
}

static void
sasl_jobs_free(struct sasl_jobs *list)
{
	struct sasl_job *job;

	while ((job = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, job, entry);
		sasl_job_free(job);
	}
}

void
sasl_verifier_free(struct sasl_verifier *v)
{
	unsigned int i;

	if (v == NULL)
		return;
	pthread_mutex_lock(&v->mtx);
	v->stopping = true;
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mtx);
	for (i = 0; i < v->nthreads; i++)
		pthread_join(v->threads[i], NULL);
	/* Every worker is gone: running is empty, nobody else locks. */
	sasl_jobs_free(&v->queued);
	sasl_jobs_free(&v->running);
	sasl_jobs_free(&v->done);
	event_free(v->done_ev);
	pthread_cond_destroy(&v->cv);
	pthread_mutex_destroy(&v->mtx);
	free(v->threads);
	free(v);
}

uint64_t
sasl_verify(struct sasl_verifier *v, const char *hash, const char *password,
    sasl_verify_cb cb, void *arg)
{
	struct sasl_job *job;
	uint64_t id;

	job = xcalloc(1, sizeof(*job));
	job->hash = hash != NULL ? xstrdup(hash) : NULL;
	job->password_len = strlen(password);
	job->password = xmalloc(job->password_len + 1);
	memcpy(job->password, password, job->password_len + 1);
	job->cb = cb;
	job->arg = arg;

	pthread_mutex_lock(&v->mtx);
	id = job->id = v->next_id++;
	TAILQ_INSERT_TAIL(&v->queued, job, entry);
	pthread_cond_signal(&v->cv);
	pthread_mutex_unlock(&v->mtx);
	return id;
}

static struct sasl_job *
sasl_jobs_find(struct sasl_jobs *list, uint64_t id)
{
	struct sasl_job *job;

	TAILQ_FOREACH(job, list, entry)
		if (job->id == id)
			return job;
	return NULL;
}

bool
sasl_verify_cancel(struct sasl_verifier *v, uint64_t id)
{
	struct sasl_job *job;
	bool found = true;

	if (id == 0)
		return false;
	pthread_mutex_lock(&v->mtx);
	if ((job = sasl_jobs_find(&v->queued, id)) != NULL) {
		TAILQ_REMOVE(&v->queued, job, entry);
		pthread_mutex_unlock(&v->mtx);
		sasl_job_free(job);
		return true;
	}
	if ((job = sasl_jobs_find(&v->running, id)) == NULL &&
	    (job = sasl_jobs_find(&v->done, id)) == NULL)
		found = false;
	else if (job->cancelled)
		found = false;	/* cancelled before: nothing pending */
	else
		job->cancelled = true;
	pthread_mutex_unlock(&v->mtx);
	return found;
}

uint64_t
sasl_verifier_crypt_count(struct sasl_verifier *v)
{
	uint64_t n;

	pthread_mutex_lock(&v->mtx);
	n = v->crypts;
	pthread_mutex_unlock(&v->mtx);
	return n;
}
