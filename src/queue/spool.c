/*
 * spool.c: the durable spool: queue IDs, the writer that streams a message
 * into incoming/, the group-commit pipeline that makes it durable in
 * queue/, start-up recovery, and the readers used by delivery.
 *
 * Entry points: spool_open(), spool_drain(), spool_close(), spool_new_id(),
 * spool_writer_new/write/commit/abort(), spool_recover(),
 * spool_read_envelope(), spool_read_content(), spool_update_rcpts(),
 * spool_remove(), spool_move_failed(), spool_quarantine().
 *
 * The event loop never writes to a file (write(2) can block for seconds
 * on a stalled disk and would freeze every session): it fills the CONTENT
 * record in memory, seals it when full and hands it to the threads.
 *
 * The write and commit pipeline (off the event loop):
 *   loop thread   spool_writer_write(): seal full CONTENT records onto the
 *                 writer's list and queue its write job on sync_q (one job
 *                 per writer at a time, so records go out in order);
 *                 spool_writer_commit(): seal the last record, encode the
 *                 envelope tail and END onto the list, mark the writer
 *                 committed;
 *   sync threads  a write job write(2)s the writer's records; once the
 *                 list is empty and commit was asked, fdatasync(fd) and a
 *                 checked close(), in parallel;
 *   commit thread take every file-synced job as one batch, rename each
 *                 incoming/ID -> queue/ID, fsync(queue/) once for the batch;
 *   loop thread   the done event runs each job's callback, and the drain
 *                 callbacks (spool_writer_notify()) of writers whose
 *                 pending bytes went down.
 * A job fails with the errno of the first step that failed; its file is
 * unlinked wherever it is, so a failed commit can never be delivered.
 *
 * Spare files (struct spool_spares): spool_remove() renames a finished
 * message's file to spare/ instead of unlinking it, and the next writer
 * renames a spare to incoming/ID and writes over it (cut to length before
 * its fsync): no inode is created or freed per message. A spare becomes
 * usable only after a fsync of queue/ began after its removal.
 *
 * Write jobs share sync_q with open jobs (at the head: a client waits for
 * its 354) and go at its tail; a job that has written SPOOL_WRITE_TURN
 * bytes while others wait goes back to the tail, so one large message
 * cannot hold a thread while a small one waits for its commit.
 *
 * SECURITY: queue files are created 0600 in 0700 directories owned by the
 * daemon's (unprivileged) user. Queue IDs from callers are checked to be
 * plain file names before they are used in a path. The file parser
 * (qfile.c) treats file contents as untrusted.
 * STANDARDS: POSIX fdatasync(2), fsync(2), rename(2): the directory fsync after rename
 * is what makes the new name durable.
 * OWNERSHIP: the spool owns its threads and jobs. A writer owns its fd
 * and its sealed records; after commit or abort (the caller lets go) the
 * write job finishes with it and frees it, or the loop does at once when
 * no job runs. After commit the commit job owns the fd.
 */
#include "queue/spool.h"

#include <sys/queue.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "queue/qfile.h"

#define SPOOL_NSYNC_DEFAULT	4
#define SPOOL_NSYNC_MAX		64
/*
 * How long the commit thread holds a batch open while other files are
 * still being fsync'd: those finish within about one fsync, and waiting
 * for them saves a directory fsync each. Idle spools never wait (nothing
 * else is in flight).
 */
#define SPOOL_BATCH_WAIT_USEC	2000
#define SPOOL_ID_TIME_CHARS	11	/* 55 bits of microseconds */
#define SPOOL_ID_TAG_CHARS	5	/* 25 bits per process */
#define SPOOL_ID_LEN		(SPOOL_ID_TIME_CHARS + SPOOL_ID_TAG_CHARS)
#define SPOOL_ID_TRIES		16
#define SPOOL_WRITER_BUF_MIN	4096
#define SPOOL_REC_MAX		(QFILE_REC_OVERHEAD + QFILE_CONTENT_MAX)
/* A write job takes turns after this many bytes if other jobs wait. */
#define SPOOL_WRITE_TURN	(1024 * 1024)
#define SPOOL_TAIL_MAX		(256 * 1024 * 1024)
#define SPOOL_CORRUPT_TRIES	100
/* Emptied queue files kept in spare/ for reuse (spool_spare_put()). */
#define SPOOL_SPARES_MAX	1024

enum spool_job_kind {
	SPOOL_JOB_COMMIT,	/* fsync, rename into queue/, fsync queue/ */
	SPOOL_JOB_OPEN,		/* create incoming/ID (spool_writer_open) */
	SPOOL_JOB_WRITE,	/* write a writer's records (then commit) */
};

struct spool_writer;

struct spool_job {
	TAILQ_ENTRY(spool_job) entry;
	enum spool_job_kind kind;
	char id[QUEUE_ID_MAX];
	int fd;
	bool reused;		/* fd is a spare: cut its old tail */
	uint64_t size;		/* COMMIT: the file's final length */
	uint64_t old_size;	/* COMMIT: a spare's length before */
	int error;
	spool_commit_cb cb;
	spool_open_cb open_cb;
	struct spool_writer *w;	/* OPEN: the result; WRITE: whose */
	void *arg;
	uint64_t cookie;
};
TAILQ_HEAD(spool_jobq, spool_job);

/* A record to write: a sealed CONTENT record or the envelope tail. */
struct spool_rec {
	STAILQ_ENTRY(spool_rec) entry;
	size_t len;		/* bytes of data to write */
	size_t content;		/* content bytes in them (pending) */
	size_t cap;		/* bytes allocated for data */
	unsigned char data[];
};
STAILQ_HEAD(spool_recq, spool_rec);

enum spool_notify_state {
	SPOOL_NOTIFY_NONE,
	SPOOL_NOTIFY_ARMED,	/* waiting for pending <= low */
	SPOOL_NOTIFY_FIRED,	/* on notify_q for the loop */
};

struct spool_writer {
	struct spool *sp;
	char id[QUEUE_ID_MAX];
	int fd;			/* written by the write job only */
	bool reused;		/* a spare file, not a new one */
	uint64_t old_size;	/* its length when taken */
	struct spool_job wjob;	/* SPOOL_JOB_WRITE, on sync_q when queued */

	/* Loop thread only. */
	int lerror;		/* the loop has seen this error */
	uint64_t size;		/* content bytes accepted */
	uint64_t offset;	/* file size once the sealed records are out */
	struct spool_rec *rec;	/* the CONTENT record being filled */
	size_t reclen;		/* payload bytes in rec */

	/* Under sp->lock. */
	struct spool_recq sealed;	/* waiting for the write job */
	size_t pending;		/* reclen + sealed + the one being written */
	int error;		/* first write error, sticky */
	bool busy;		/* wjob queued or running */
	bool aborted;		/* the job closes, unlinks and frees */
	struct spool_job *commit_job;	/* commit asked: fsync when drained */
	enum spool_notify_state nstate;
	size_t nlow;
	spool_drain_cb ncb;
	void *narg;
	uint64_t ncookie;
	uint64_t nseq;		/* order on notify_q */
	TAILQ_ENTRY(spool_writer) nentry;
};
TAILQ_HEAD(spool_writerq, spool_writer);

/*
 * Spare files: instead of unlinking a delivered message's file, its name
 * moves from queue/ID to spare/NUMBER, and a new message renames a spare
 * into incoming/ID and writes over it. Creating and deleting a file per
 * message is what bounds a spool on ext4 (its inode allocator scans every
 * recently freed inode while holding the directory lock); a rename is
 * cheap. A spare may be reused only once a fsync of queue/ has STARTED
 * after its rename out of queue/ (its ticket): before that, a crash could
 * bring the old name back pointing at the new content. Any thread.
 */
struct spool_spare {
	uint64_t num;
	uint64_t ticket;	/* usable when qsync_done >= ticket */
};

struct spool_spares {
	pthread_mutex_t lock;
	uint64_t next;			/* the next spare's number */
	uint64_t qsync_started;		/* queue/ fsyncs begun */
	uint64_t qsync_done;		/* the last one that succeeded */
	struct spool_spare ring[SPOOL_SPARES_MAX];	/* FIFO: tickets */
	size_t head, count;		/* ... grow in this order */
	uint64_t ready[SPOOL_SPARES_MAX];	/* usable now (LIFO) */
	size_t nready;
	uint64_t reused, kept;		/* stats */
};

struct spool {
	char *dir;
	struct event_base *base;
	struct event *done_ev;
	int incoming_fd;
	int queue_fd;
	int corrupt_fd;
	int failed_fd;
	int spare_fd;
	struct spool_spares *spares;	/* mutable through a const spool */

	pthread_mutex_t lock;		/* everything down to stats */
	pthread_cond_t sync_cond;	/* sync_q non-empty, or stopping */
	pthread_cond_t commit_cond;	/* commit_q or nsyncing changed */
	pthread_cond_t drain_cond;	/* inflight reached 0 */
	struct spool_jobq sync_q;	/* open and write jobs */
	struct spool_jobq commit_q;	/* file synced, waiting for rename */
	struct spool_jobq done_q;	/* waiting for the loop callback */
	struct spool_writerq notify_q;	/* drain callbacks due */
	uint64_t notify_seq;		/* next nseq */
	unsigned int nsyncing;		/* committed, not yet fsync'd */
	unsigned int inflight;		/* jobs in sync_q .. commit thread */
	bool closing;			/* no new writers */
	bool stopping;			/* threads exit */
	struct spool_stats stats;

	pthread_t *sync_threads;
	unsigned int nsync;
	unsigned int nsync_started;
	pthread_t commit_thread;
	bool commit_started;

	pthread_mutex_t id_lock;
	uint64_t id_last;		/* usec of the last ID */
	uint32_t id_tag;		/* random, per spool_open() */

	unsigned int nwriters;		/* open writers (loop thread) */
};

static const char spool_crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static void *spool_sync_main(void *);
static struct spool_writer *spool_writer_create(struct spool *, int *);
static void *spool_commit_main(void *);
static void spool_done_cb(int, short, void *);
static void spool_post_locked(struct spool *, struct spool_job *);
static void spool_notify(struct spool *);
static void spool_write_job(struct spool *, struct spool_writer *);
static void spool_writer_destroy(struct spool_writer *);
static void spool_spares_clear(struct spool *);
static int spool_spare_put(const struct spool *, const char *);
static ssize_t spool_list_dir(int, char ***);
static void spool_free_names(char **, ssize_t);
static int spool_spare_take(struct spool *, const char *, uint64_t *);
static void spool_spares_release(struct spool *, int);
static uint64_t spool_qsync_begin(struct spool *);
static void spool_qsync_end(struct spool *, uint64_t);

/* ---- Queue IDs ---- */

static void
spool_encode32(char *dst, uint64_t v, int nchars)
{
	int i;

	for (i = nchars - 1; i >= 0; i--) {
		dst[i] = spool_crockford[v & 31];
		v >>= 5;
	}
}

void
spool_new_id(struct spool *sp, char *id)
{
	uint64_t now;

	/*
	 * Monotonic within the process even if the clock stalls or steps
	 * back: never reuse a microsecond. The tag separates processes
	 * (another petrel, a restart within the same microsecond).
	 */
	now = time_real_usec();
	pthread_mutex_lock(&sp->id_lock);
	if (now <= sp->id_last)
		now = sp->id_last + 1;
	sp->id_last = now;
	pthread_mutex_unlock(&sp->id_lock);
	spool_encode32(id, now, SPOOL_ID_TIME_CHARS);
	spool_encode32(id + SPOOL_ID_TIME_CHARS, sp->id_tag,
	    SPOOL_ID_TAG_CHARS);
	id[SPOOL_ID_LEN] = '\0';
}

/* A plain file name we may put in a path: no '/', no leading '.'. */
static bool
spool_is_valid_id(const char *id)
{
	size_t i, len;

	len = strnlen(id, QUEUE_ID_MAX);
	if (len == 0 || len >= QUEUE_ID_MAX || id[0] == '.')
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];

		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
		    (c >= 'a' && c <= 'z') || c == '.' || c == '_' ||
		    c == '-'))
			return false;
	}
	return true;
}

/* ---- Open and close ---- */

static int
spool_open_subdir(struct spool *sp, const char *name)
{
	int dfd, fd;

	dfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd == -1)
		return -1;
	if (mkdirat(dfd, name, 0700) == -1 && errno != EEXIST) {
		close(dfd);
		return -1;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(dfd);
	return fd;
}

static uint32_t
spool_random_tag(void)
{
	uint32_t tag;

	if (getrandom(&tag, sizeof(tag), GRND_NONBLOCK) != sizeof(tag))
		tag = (uint32_t)getpid() ^ (uint32_t)time_mono_usec();
	return tag & ((1U << (5 * SPOOL_ID_TAG_CHARS)) - 1);
}

static int
spool_start_threads(struct spool *sp)
{
	sigset_t all, old;
	unsigned int i;
	int r = 0;

	/* Signals are the main thread's business. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < sp->nsync; i++) {
		if ((r = pthread_create(&sp->sync_threads[i], NULL,
		    spool_sync_main, sp)) != 0)
			goto out;
		sp->nsync_started++;
	}
	if ((r = pthread_create(&sp->commit_thread, NULL, spool_commit_main,
	    sp)) != 0)
		goto out;
	sp->commit_started = true;
out:
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = r;
	return r == 0 ? 0 : -1;
}

static void
spool_free(struct spool *sp)
{
	if (sp->done_ev != NULL)
		event_free(sp->done_ev);
	if (sp->incoming_fd != -1)
		close(sp->incoming_fd);
	if (sp->queue_fd != -1)
		close(sp->queue_fd);
	if (sp->corrupt_fd != -1)
		close(sp->corrupt_fd);
	if (sp->failed_fd != -1)
		close(sp->failed_fd);
	if (sp->spare_fd != -1)
		close(sp->spare_fd);
	if (sp->spares != NULL) {
		pthread_mutex_destroy(&sp->spares->lock);
		free(sp->spares);
	}
	pthread_cond_destroy(&sp->sync_cond);
	pthread_cond_destroy(&sp->commit_cond);
	pthread_cond_destroy(&sp->drain_cond);
	pthread_mutex_destroy(&sp->lock);
	pthread_mutex_destroy(&sp->id_lock);
	free(sp->sync_threads);
	free(sp->dir);
	free(sp);
}

/* Stop the threads (the pipeline must be empty) and join them. */
static void
spool_stop_threads(struct spool *sp)
{
	unsigned int i;

	pthread_mutex_lock(&sp->lock);
	sp->stopping = true;
	pthread_cond_broadcast(&sp->sync_cond);
	pthread_cond_broadcast(&sp->commit_cond);
	pthread_mutex_unlock(&sp->lock);
	for (i = 0; i < sp->nsync_started; i++)
		pthread_join(sp->sync_threads[i], NULL);
	sp->nsync_started = 0;
	if (sp->commit_started)
		pthread_join(sp->commit_thread, NULL);
	sp->commit_started = false;
}

struct spool *
spool_open(const char *dir, struct event_base *base, unsigned int nsync,
    const char **error_r)
{
	struct spool *sp;
	pthread_condattr_t ca;

	sp = xcalloc(1, sizeof(*sp));
	sp->dir = xstrdup(dir);
	sp->base = base;
	sp->incoming_fd = sp->queue_fd = sp->corrupt_fd = sp->failed_fd = -1;
	sp->spare_fd = -1;
	sp->spares = xcalloc(1, sizeof(*sp->spares));
	pthread_mutex_init(&sp->spares->lock, NULL);
	sp->nsync = nsync == 0 ? SPOOL_NSYNC_DEFAULT : nsync;
	if (sp->nsync > SPOOL_NSYNC_MAX)
		sp->nsync = SPOOL_NSYNC_MAX;
	sp->sync_threads = xcalloc(sp->nsync, sizeof(*sp->sync_threads));
	TAILQ_INIT(&sp->sync_q);
	TAILQ_INIT(&sp->commit_q);
	TAILQ_INIT(&sp->done_q);
	TAILQ_INIT(&sp->notify_q);
	pthread_mutex_init(&sp->lock, NULL);
	pthread_mutex_init(&sp->id_lock, NULL);
	pthread_cond_init(&sp->sync_cond, NULL);
	pthread_cond_init(&sp->drain_cond, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sp->commit_cond, &ca);
	pthread_condattr_destroy(&ca);
	sp->id_tag = spool_random_tag();

	if (mkdir_p(dir, 0700) == -1 ||
	    (sp->incoming_fd = spool_open_subdir(sp, "incoming")) == -1 ||
	    (sp->queue_fd = spool_open_subdir(sp, "queue")) == -1 ||
	    (sp->corrupt_fd = spool_open_subdir(sp, "corrupt")) == -1 ||
	    (sp->failed_fd = spool_open_subdir(sp, "failed")) == -1 ||
	    (sp->spare_fd = spool_open_subdir(sp, "spare")) == -1 ||
	    fsync_dir(dir) == -1) {
		*error_r = strerror(errno);
		goto fail;
	}
	spool_spares_clear(sp);
	sp->done_ev = event_new(base, -1, 0, spool_done_cb, sp);
	if (sp->done_ev == NULL) {
		*error_r = "event_new failed";
		goto fail;
	}
	if (spool_start_threads(sp) == -1) {
		*error_r = strerror(errno);
		spool_stop_threads(sp);
		goto fail;
	}
	return sp;
fail:
	spool_free(sp);
	return NULL;
}

void
spool_get_stats(const struct spool *sp, struct spool_stats *st)
{
	struct spool *msp = (struct spool *)sp;	/* the lock only */

	pthread_mutex_lock(&msp->lock);
	*st = sp->stats;
	pthread_mutex_unlock(&msp->lock);
	pthread_mutex_lock(&sp->spares->lock);
	st->files_reused = sp->spares->reused;
	pthread_mutex_unlock(&sp->spares->lock);
}

/* Run the callbacks of finished jobs. Loop thread. */
static void
spool_run_done(struct spool *sp)
{
	struct spool_jobq q;
	struct spool_job *job;
	struct spool_writer *w;
	spool_drain_cb ncb;
	void *narg;
	uint64_t ncookie, limit;
	bool closing;

	TAILQ_INIT(&q);
	pthread_mutex_lock(&sp->lock);
	TAILQ_CONCAT(&q, &sp->done_q, entry);
	closing = sp->closing;
	limit = sp->notify_seq;
	pthread_mutex_unlock(&sp->lock);

	/*
	 * Drain callbacks, one at a time: a callback may commit or abort
	 * any writer (which takes it off notify_q) or ask again (queued
	 * after limit: it runs next time, never from spool_writer_notify()).
	 */
	for (;;) {
		pthread_mutex_lock(&sp->lock);
		w = TAILQ_FIRST(&sp->notify_q);
		if (w == NULL || w->nseq >= limit) {
			pthread_mutex_unlock(&sp->lock);
			break;
		}
		TAILQ_REMOVE(&sp->notify_q, w, nentry);
		w->nstate = SPOOL_NOTIFY_NONE;
		ncb = w->ncb;
		narg = w->narg;
		ncookie = w->ncookie;
		pthread_mutex_unlock(&sp->lock);
		ncb(narg, ncookie);
	}

	while ((job = TAILQ_FIRST(&q)) != NULL) {
		TAILQ_REMOVE(&q, job, entry);
		if (job->kind == SPOOL_JOB_OPEN) {
			if (job->w != NULL)
				sp->nwriters++;
			/*
			 * An open that finished during spool_close(): the
			 * spool is freed as soon as we return, so a writer
			 * handed out now would outlive it.
			 */
			if (closing && job->w != NULL) {
				spool_writer_abort(job->w);
				job->w = NULL;
				job->error = ESHUTDOWN;
			}
			job->open_cb(job->arg, job->cookie, job->w,
			    job->error);
		} else
			job->cb(job->arg, job->cookie, job->id, job->error);
		free(job);
	}
}

static void
spool_done_cb(int fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	spool_run_done(arg);
}

/* Wait for the pipeline to empty. */
static void
spool_wait_idle(struct spool *sp)
{
	pthread_mutex_lock(&sp->lock);
	while (sp->inflight > 0)
		pthread_cond_wait(&sp->drain_cond, &sp->lock);
	pthread_mutex_unlock(&sp->lock);
}

void
spool_drain(struct spool *sp)
{
	/*
	 * The loop is blocked here, so the callbacks cannot run from the
	 * loop: they run below, from this call.
	 */
	spool_wait_idle(sp);
	spool_run_done(sp);
}

void
spool_close(struct spool *sp)
{
	struct spool_stats st;
	bool empty;

	if (sp == NULL)
		return;
	if (sp->nwriters != 0)
		fatalx("spool_close: %u writers still open", sp->nwriters);

	/* Every committed message goes through to durable (or failed). */
	pthread_mutex_lock(&sp->lock);
	sp->closing = true;
	pthread_mutex_unlock(&sp->lock);
	spool_wait_idle(sp);
	spool_stop_threads(sp);
	/* Until empty: a callback may call spool_writer_open(), whose
	 * ESHUTDOWN answer goes through done_q too. */
	for (;;) {
		pthread_mutex_lock(&sp->lock);
		empty = TAILQ_EMPTY(&sp->done_q);
		pthread_mutex_unlock(&sp->lock);
		if (empty)
			break;
		spool_run_done(sp);
	}

	spool_get_stats(sp, &st);
	log_info("spool: stats file_fsyncs=%llu dir_fsyncs=%llu commits=%llu "
	    "errors=%llu batches=%llu files_reused=%llu",
	    (unsigned long long)st.file_fsyncs,
	    (unsigned long long)st.dir_fsyncs, (unsigned long long)st.commits,
	    (unsigned long long)st.commit_errors,
	    (unsigned long long)st.batches,
	    (unsigned long long)st.files_reused);
	spool_free(sp);
}

/* ---- The commit pipeline ---- */

/* Hand a finished job to the loop. Called with the lock held. */
static void
spool_post_locked(struct spool *sp, struct spool_job *job)
{
	if (job->error == 0)
		sp->stats.commits++;
	else
		sp->stats.commit_errors++;
	TAILQ_INSERT_TAIL(&sp->done_q, job, entry);
}

static void
spool_notify(struct spool *sp)
{
	/* Thread-safe: the daemon and the tests use evthread pthreads. */
	event_active(sp->done_ev, EV_READ, 0);
}

/*
 * A committed file whose records are all written (or failed): fsync and
 * close it, then on to the commit thread. Sync thread, lock not held.
 */
static void
spool_sync_file(struct spool *sp, struct spool_job *job)
{
	int error = job->error;

	/* A spare's old bytes beyond ours must not reach queue/ (a
	 * steady load's files keep their length: no call at all). */
	if (error == 0 && job->reused && job->size != job->old_size &&
	    ftruncate(job->fd, (off_t)job->size) == -1) {
		error = errno;
		log_err("spool: error queue=%s truncating a reused file "
		    "failed: %s", job->id, strerror(error));
	}
	/*
	 * fdatasync: the data and what reading it back needs (size, block
	 * map), not the timestamps. A spare of the same length (a steady
	 * load) then costs no inode write.
	 */
	if (error == 0 && fdatasync(job->fd) == -1) {
		error = errno;
		log_err("spool: error queue=%s fsync failed: %s", job->id,
		    strerror(error));
	}
	/* close() can report a write-back error (NFS): check it. */
	if (close(job->fd) == -1 && error == 0) {
		error = errno;
		log_err("spool: error queue=%s close failed: %s", job->id,
		    strerror(error));
	}
	job->fd = -1;
	if (error != 0) {
		unlinkat(sp->incoming_fd, job->id, 0);
		if (job->error == 0)	/* a write error released already */
			spool_spares_release(sp, error);
	}

	pthread_mutex_lock(&sp->lock);
	if (job->error == 0)
		sp->stats.file_fsyncs++;
	sp->nsyncing--;
	if (error != 0) {
		job->error = error;
		spool_post_locked(sp, job);
		if (--sp->inflight == 0)
			pthread_cond_broadcast(&sp->drain_cond);
		pthread_cond_signal(&sp->commit_cond);
		pthread_mutex_unlock(&sp->lock);
		spool_notify(sp);
		return;
	}
	TAILQ_INSERT_TAIL(&sp->commit_q, job, entry);
	pthread_cond_signal(&sp->commit_cond);
	pthread_mutex_unlock(&sp->lock);
}

static void *
spool_sync_main(void *arg)
{
	struct spool *sp = arg;
	struct spool_job *job;

	pthread_mutex_lock(&sp->lock);
	for (;;) {
		while (TAILQ_EMPTY(&sp->sync_q) && !sp->stopping)
			pthread_cond_wait(&sp->sync_cond, &sp->lock);
		if ((job = TAILQ_FIRST(&sp->sync_q)) == NULL)
			break;
		TAILQ_REMOVE(&sp->sync_q, job, entry);
		if (job->kind == SPOOL_JOB_WRITE) {
			spool_write_job(sp, job->w);
			continue;
		}
		/* SPOOL_JOB_OPEN */
		pthread_mutex_unlock(&sp->lock);
		job->w = spool_writer_create(sp, &job->error);
		pthread_mutex_lock(&sp->lock);
		TAILQ_INSERT_TAIL(&sp->done_q, job, entry);
		if (--sp->inflight == 0)
			pthread_cond_broadcast(&sp->drain_cond);
		pthread_mutex_unlock(&sp->lock);
		spool_notify(sp);
		pthread_mutex_lock(&sp->lock);
	}
	pthread_mutex_unlock(&sp->lock);
	return NULL;
}

/*
 * Rename a batch into queue/ and fsync queue/ once. Sets each job's error.
 * Returns the number of directory fsyncs done (0 or 1).
 */
static unsigned int
spool_commit_batch(struct spool *sp, struct spool_jobq *batch)
{
	struct spool_job *job;
	unsigned int renamed = 0;
	uint64_t ticket;
	int error;

	TAILQ_FOREACH(job, batch, entry) {
		if (renameat(sp->incoming_fd, job->id, sp->queue_fd,
		    job->id) == -1) {
			job->error = errno;
			log_err("spool: error queue=%s rename into queue/ "
			    "failed: %s", job->id, strerror(job->error));
			unlinkat(sp->incoming_fd, job->id, 0);
			spool_spares_release(sp, job->error);
			continue;
		}
		renamed++;
	}
	if (renamed == 0)
		return 0;
	ticket = spool_qsync_begin(sp);
	if (fsync(sp->queue_fd) == 0) {
		spool_qsync_end(sp, ticket);
		return 1;
	}
	/*
	 * The names may or may not be on disk. We answer 4xx, so remove
	 * them: should one survive a crash anyway, it is delivered once
	 * more than acknowledged (a duplicate), never lost.
	 */
	error = errno;
	log_err("spool: fsync of queue/ failed: %s", strerror(error));
	spool_spares_release(sp, error);
	TAILQ_FOREACH(job, batch, entry) {
		if (job->error != 0)
			continue;
		job->error = error;
		unlinkat(sp->queue_fd, job->id, 0);
	}
	return 1;
}

static void
spool_batch_deadline(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_nsec += SPOOL_BATCH_WAIT_USEC * 1000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *
spool_commit_main(void *arg)
{
	struct spool *sp = arg;
	struct spool_jobq batch;
	struct spool_job *job;
	struct timespec deadline;
	unsigned int n, ndir;

	pthread_mutex_lock(&sp->lock);
	for (;;) {
		while (TAILQ_EMPTY(&sp->commit_q) && !sp->stopping)
			pthread_cond_wait(&sp->commit_cond, &sp->lock);
		if (TAILQ_EMPTY(&sp->commit_q))
			break;
		/* Group commit: let the files still in fsync join. */
		spool_batch_deadline(&deadline);
		while (sp->nsyncing > 0 && !sp->stopping) {
			if (pthread_cond_timedwait(&sp->commit_cond, &sp->lock,
			    &deadline) == ETIMEDOUT)
				break;
		}
		TAILQ_INIT(&batch);
		TAILQ_CONCAT(&batch, &sp->commit_q, entry);
		pthread_mutex_unlock(&sp->lock);

		ndir = spool_commit_batch(sp, &batch);

		pthread_mutex_lock(&sp->lock);
		sp->stats.dir_fsyncs += ndir;
		sp->stats.batches++;
		n = 0;
		while ((job = TAILQ_FIRST(&batch)) != NULL) {
			TAILQ_REMOVE(&batch, job, entry);
			spool_post_locked(sp, job);
			n++;
		}
		sp->inflight -= n;
		if (sp->inflight == 0)
			pthread_cond_broadcast(&sp->drain_cond);
		pthread_mutex_unlock(&sp->lock);
		spool_notify(sp);
		pthread_mutex_lock(&sp->lock);
	}
	pthread_mutex_unlock(&sp->lock);
	return NULL;
}

/* ---- Writer ---- */

/*
 * Create incoming/ID and write its header. Thread-safe (any thread): the
 * loop-thread bookkeeping (nwriters) is the caller's. Returns the writer,
 * or NULL with *error_r an errno value.
 */
static struct spool_writer *
spool_writer_create(struct spool *sp, int *error_r)
{
	struct spool_writer *w;
	struct buf hdr;
	int fd = -1, tries, saved;

	w = xcalloc(1, sizeof(*w));
	w->sp = sp;
	w->wjob.kind = SPOOL_JOB_WRITE;
	w->wjob.fd = -1;
	w->wjob.w = w;
	STAILQ_INIT(&w->sealed);
	for (tries = 0; tries < SPOOL_ID_TRIES; tries++) {
		spool_new_id(sp, w->id);
		/* Another process may have used this ID: never clobber. */
		if (faccessat(sp->queue_fd, w->id, F_OK, 0) == 0) {
			errno = EEXIST;
			continue;
		}
		if ((fd = spool_spare_take(sp, w->id, &w->old_size)) != -1) {
			w->reused = true;
			break;
		}
		fd = openat(sp->incoming_fd, w->id,
		    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd != -1 || errno != EEXIST)
			break;
	}
	if (fd == -1) {
		*error_r = errno;
		free(w);
		spool_spares_release(sp, *error_r);
		return NULL;
	}
	w->fd = fd;

	buf_init(&hdr, QFILE_RECORD_MAX);
	if (qfile_encode_header(&hdr, w->id, time_real_usec()) == -1 ||
	    write_all(fd, hdr.data, hdr.len) == -1) {
		saved = errno;
		buf_free(&hdr);
		close(fd);
		unlinkat(sp->incoming_fd, w->id, 0);
		free(w);
		*error_r = saved;
		spool_spares_release(sp, saved);
		return NULL;
	}
	w->offset = hdr.len;
	buf_free(&hdr);
	return w;
}

struct spool_writer *
spool_writer_new(struct spool *sp, char *id_r)
{
	struct spool_writer *w;
	int error;

	if (sp->closing) {
		errno = ESHUTDOWN;
		return NULL;
	}
	if ((w = spool_writer_create(sp, &error)) == NULL) {
		errno = error;
		return NULL;
	}
	sp->nwriters++;
	strlcpy(id_r, w->id, QUEUE_ID_MAX);
	return w;
}

void
spool_writer_open(struct spool *sp, spool_open_cb cb, void *arg,
    uint64_t cookie)
{
	struct spool_job *job = xcalloc(1, sizeof(*job));

	job->kind = SPOOL_JOB_OPEN;
	job->fd = -1;
	job->open_cb = cb;
	job->arg = arg;
	job->cookie = cookie;
	pthread_mutex_lock(&sp->lock);
	if (sp->closing) {
		/* Still through the loop: never a callback during the call. */
		job->error = ESHUTDOWN;
		TAILQ_INSERT_TAIL(&sp->done_q, job, entry);
		pthread_mutex_unlock(&sp->lock);
		spool_notify(sp);
		return;
	}
	sp->inflight++;
	/* Ahead of fsyncs: a client is waiting for its 354. */
	TAILQ_INSERT_HEAD(&sp->sync_q, job, entry);
	pthread_cond_signal(&sp->sync_cond);
	pthread_mutex_unlock(&sp->lock);
}

const char *
spool_writer_id(const struct spool_writer *w)
{
	return w->id;
}

static void
spool_recq_free(struct spool_recq *q)
{
	struct spool_rec *rec;

	while ((rec = STAILQ_FIRST(q)) != NULL) {
		STAILQ_REMOVE_HEAD(q, entry);
		free(rec);
	}
}

/* Free a writer nobody uses any more (its fd is closed or handed on). */
static void
spool_writer_destroy(struct spool_writer *w)
{
	spool_recq_free(&w->sealed);
	free(w->rec);
	free(w);
}

/* Queue the write job unless it is queued or running. Lock held. */
static void
spool_writer_kick_locked(struct spool_writer *w)
{
	struct spool *sp = w->sp;

	if (w->busy ||
	    (STAILQ_EMPTY(&w->sealed) && w->commit_job == NULL))
		return;
	w->busy = true;
	sp->inflight++;
	TAILQ_INSERT_TAIL(&sp->sync_q, &w->wjob, entry);
	pthread_cond_signal(&sp->sync_cond);
}

/* Due when pending is down to low, or on failure. Lock held. */
static bool
spool_writer_check_notify_locked(struct spool_writer *w)
{
	struct spool *sp = w->sp;

	if (w->nstate != SPOOL_NOTIFY_ARMED ||
	    (w->pending > w->nlow && w->error == 0))
		return false;
	w->nstate = SPOOL_NOTIFY_FIRED;
	w->nseq = sp->notify_seq++;
	TAILQ_INSERT_TAIL(&sp->notify_q, w, nentry);
	return true;
}

static void
spool_writer_cancel_notify_locked(struct spool_writer *w)
{
	if (w->nstate == SPOOL_NOTIFY_FIRED)
		TAILQ_REMOVE(&w->sp->notify_q, w, nentry);
	w->nstate = SPOOL_NOTIFY_NONE;
}

/*
 * The write job: write the writer's sealed records in order, then, if it
 * was committed, fsync it (spool_sync_file()); if it was aborted, close,
 * unlink and free it. Sync thread; called and returns with the lock held.
 */
static void
spool_write_job(struct spool *sp, struct spool_writer *w)
{
	struct spool_recq dropped;
	struct spool_rec *rec;
	struct spool_job *job;
	size_t turn = 0;
	int error;
	bool fire;

	for (;;) {
		if (w->aborted) {
			/* spool_writer_abort() took the records. */
			pthread_mutex_unlock(&sp->lock);
			close(w->fd);
			unlinkat(sp->incoming_fd, w->id, 0);
			spool_writer_destroy(w);
			pthread_mutex_lock(&sp->lock);
			if (--sp->inflight == 0)
				pthread_cond_broadcast(&sp->drain_cond);
			return;
		}
		if ((rec = STAILQ_FIRST(&w->sealed)) == NULL)
			break;
		if (turn >= SPOOL_WRITE_TURN && !TAILQ_EMPTY(&sp->sync_q)) {
			/* Others are waiting: back in line. */
			TAILQ_INSERT_TAIL(&sp->sync_q, &w->wjob, entry);
			return;
		}
		STAILQ_REMOVE_HEAD(&w->sealed, entry);
		pthread_mutex_unlock(&sp->lock);

		error = 0;
		if (write_all(w->fd, rec->data, rec->len) == -1)
			error = errno;
		turn += rec->len;

		STAILQ_INIT(&dropped);
		pthread_mutex_lock(&sp->lock);
		w->pending -= rec->content;
		if (error != 0 && w->error == 0) {
			/* Nothing more goes to this file. */
			w->error = error;
			STAILQ_CONCAT(&dropped, &w->sealed);
		}
		free(rec);
		STAILQ_FOREACH(rec, &dropped, entry)
			w->pending -= rec->content;
		fire = spool_writer_check_notify_locked(w);
		pthread_mutex_unlock(&sp->lock);

		spool_recq_free(&dropped);
		if (error != 0) {
			log_err("spool: error queue=%s write failed: %s", w->id,
			    strerror(error));
			spool_spares_release(sp, error);
		}
		if (fire)
			spool_notify(sp);
		pthread_mutex_lock(&sp->lock);
	}
	if ((job = w->commit_job) == NULL) {
		w->busy = false;
		if (--sp->inflight == 0)
			pthread_cond_broadcast(&sp->drain_cond);
		return;
	}
	/* Committed and drained: the job takes the fd, the writer goes. */
	job->fd = w->fd;
	job->reused = w->reused;
	job->old_size = w->old_size;
	if (job->error == 0)
		job->error = w->error;
	pthread_mutex_unlock(&sp->lock);
	spool_writer_destroy(w);
	spool_sync_file(sp, job);
	pthread_mutex_lock(&sp->lock);
}

/* Seal the record being filled onto q. Loop thread. */
static void
spool_writer_seal(struct spool_writer *w, struct spool_recq *q)
{
	struct spool_rec *rec = w->rec;

	qfile_record_seal(rec->data, QFILE_REC_CONTENT, w->reclen);
	rec->len = QFILE_REC_OVERHEAD + w->reclen;
	rec->content = w->reclen;
	STAILQ_INSERT_TAIL(q, rec, entry);
	w->offset += rec->len;
	w->rec = NULL;
	w->reclen = 0;
}

/* Room for need bytes of record in w->rec. Loop thread. */
static void
spool_writer_grow(struct spool_writer *w, size_t need)
{
	size_t cap = w->rec != NULL ? w->rec->cap : 0;

	if (need <= cap)
		return;
	/*
	 * Grow toward one full record: small messages (most of them, and
	 * thousands of sessions at once) stay small. Past the first full
	 * record the message is large: take a whole record at once.
	 */
	if (cap == 0)
		cap = w->size >= QFILE_CONTENT_MAX ? SPOOL_REC_MAX :
		    SPOOL_WRITER_BUF_MIN;
	while (cap < need)
		cap *= 2;
	if (cap > SPOOL_REC_MAX)
		cap = SPOOL_REC_MAX;
	w->rec = xrealloc(w->rec, sizeof(*w->rec) + cap);
	w->rec->cap = cap;
}

int
spool_writer_write(struct spool_writer *w, const void *data, size_t len)
{
	struct spool *sp = w->sp;
	struct spool_recq full;
	const unsigned char *p = data;
	size_t n, total = len, old = w->reclen;
	int error;

	if (w->lerror != 0) {
		errno = w->lerror;
		return -1;
	}
	STAILQ_INIT(&full);
	while (len > 0) {
		n = QFILE_CONTENT_MAX - w->reclen;
		if (n > len)
			n = len;
		spool_writer_grow(w, QFILE_REC_OVERHEAD + w->reclen + n);
		/* spool_writer_grow() made w->rec:
		 * NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
		memcpy(w->rec->data + QFILE_REC_HDRLEN + w->reclen, p, n);
		w->reclen += n;
		w->size += n;
		p += n;
		len -= n;
		if (w->reclen == QFILE_CONTENT_MAX)
			spool_writer_seal(w, &full);
	}

	pthread_mutex_lock(&sp->lock);
	if ((error = w->error) != 0) {
		/* The thread dropped the sealed records; drop the rest. */
		w->pending -= old;
	} else {
		w->pending += total;
		STAILQ_CONCAT(&w->sealed, &full);
		spool_writer_kick_locked(w);
	}
	pthread_mutex_unlock(&sp->lock);

	if (error != 0) {
		w->lerror = error;
		spool_recq_free(&full);
		free(w->rec);
		w->rec = NULL;
		w->reclen = 0;
		errno = error;
		return -1;
	}
	return 0;
}

uint64_t
spool_writer_size(const struct spool_writer *w)
{
	return w->size;
}

size_t
spool_writer_pending(const struct spool_writer *w)
{
	struct spool *sp = w->sp;
	size_t pending;

	pthread_mutex_lock(&sp->lock);
	pending = w->pending;
	pthread_mutex_unlock(&sp->lock);
	return pending;
}

void
spool_writer_notify(struct spool_writer *w, size_t low, spool_drain_cb cb,
    void *arg, uint64_t cookie)
{
	struct spool *sp = w->sp;
	bool due;

	pthread_mutex_lock(&sp->lock);
	w->nlow = low;
	w->ncb = cb;
	w->narg = arg;
	w->ncookie = cookie;
	due = w->pending <= low || w->error != 0;
	if (!due)
		spool_writer_cancel_notify_locked(w);
	if (w->nstate != SPOOL_NOTIFY_FIRED) {
		/* Due now: still from the loop, never during this call. */
		w->nstate = SPOOL_NOTIFY_ARMED;
		due = spool_writer_check_notify_locked(w);
	}
	pthread_mutex_unlock(&sp->lock);
	if (due)
		spool_notify(sp);
}

void
spool_writer_commit(struct spool_writer *w, const struct envelope *env,
    spool_commit_cb cb, void *arg, uint64_t cookie)
{
	struct spool *sp = w->sp;
	struct spool_job *job;
	struct spool_recq last;
	struct spool_rec *rec;
	struct buf tail;
	int error = w->lerror;

	job = xcalloc(1, sizeof(*job));
	job->kind = SPOOL_JOB_COMMIT;
	strlcpy(job->id, w->id, sizeof(job->id));
	job->fd = -1;
	job->cb = cb;
	job->arg = arg;
	job->cookie = cookie;

	STAILQ_INIT(&last);
	if (w->reclen > 0)
		spool_writer_seal(w, &last);
	if (error == 0) {
		buf_init(&tail, SPOOL_TAIL_MAX);
		if (qfile_encode_tail(&tail, env, w->offset, w->size) == -1) {
			error = errno;
			if (error == EINVAL)
				log_err("spool: error queue=%s not queued: the "
				    "envelope lacks a mandatory field (a bug)",
				    w->id);
			else
				log_err("spool: error queue=%s not queued: %s",
				    w->id, strerror(error));
		} else {
			rec = xmalloc(sizeof(*rec) + tail.len);
			memcpy(rec->data, tail.data, tail.len);
			rec->len = rec->cap = tail.len;
			rec->content = 0;
			STAILQ_INSERT_TAIL(&last, rec, entry);
			job->size = w->offset + tail.len;
		}
		buf_free(&tail);
	}
	sp->nwriters--;

	/*
	 * The write job writes what is left and the tail, then fsyncs; on
	 * an error it only closes, unlinks and reports: either way the
	 * callback comes from the loop, never from here.
	 */
	pthread_mutex_lock(&sp->lock);
	spool_writer_cancel_notify_locked(w);
	if (w->error == 0 && error != 0)
		w->error = error;
	if (w->error == 0)
		STAILQ_CONCAT(&w->sealed, &last);
	w->commit_job = job;
	sp->nsyncing++;
	spool_writer_kick_locked(w);
	pthread_mutex_unlock(&sp->lock);
	spool_recq_free(&last);
}

void
spool_writer_abort(struct spool_writer *w)
{
	struct spool *sp;
	struct spool_recq drop;
	bool busy;

	if (w == NULL)
		return;
	sp = w->sp;
	sp->nwriters--;
	free(w->rec);
	w->rec = NULL;
	STAILQ_INIT(&drop);
	pthread_mutex_lock(&sp->lock);
	spool_writer_cancel_notify_locked(w);
	STAILQ_CONCAT(&drop, &w->sealed);
	busy = w->busy;
	if (busy)
		w->aborted = true;	/* the job finishes with w */
	pthread_mutex_unlock(&sp->lock);
	spool_recq_free(&drop);
	if (busy)
		return;
	close(w->fd);
	unlinkat(sp->incoming_fd, w->id, 0);
	spool_writer_destroy(w);
}

/* ---- Spare files (struct spool_spares) ---- */

static void
spool_spare_name(char *name, size_t size, uint64_t num)
{
	snprintf(name, size, "s%016llx", (unsigned long long)num);
}

/*
 * At open: a spare left by a previous run is deleted, not reused. After a
 * crash on a file system without a journal, fsck may leave a file linked
 * both in queue/ and in spare/; reusing it would overwrite a message.
 */
static void
spool_spares_clear(struct spool *sp)
{
	char **names = NULL;
	ssize_t n, i;

	if ((n = spool_list_dir(sp->spare_fd, &names)) == -1) {
		log_err("spool: cannot read spare/: %s", strerror(errno));
		return;
	}
	for (i = 0; i < n; i++)
		if (unlinkat(sp->spare_fd, names[i], 0) == -1)
			log_err("spool: cannot remove spare/%s: %s", names[i],
			    strerror(errno));
	spool_free_names(names, n);
}

/*
 * The spool ran out of space or inodes (ENOSPC, EDQUOT): unlink every
 * spare, usable or not yet, so the blocks and inodes they hold go back
 * to the file system and the next message can have them (spares must
 * never make a full disk permanent). Other errors: nothing. Unlinking a
 * name in spare/ is always safe: no message is reachable through it.
 * Any thread, no lock held.
 */
static void
spool_spares_release(struct spool *sp, int error)
{
	struct spool_spares *ss = sp->spares;
	uint64_t *nums;
	size_t n = 0, i, freed = 0;
	char name[32];

	if (error != ENOSPC && error != EDQUOT)
		return;
	nums = xcalloc(SPOOL_SPARES_MAX, sizeof(*nums));
	pthread_mutex_lock(&ss->lock);
	for (i = 0; i < ss->nready; i++)
		nums[n++] = ss->ready[i];
	for (i = 0; i < ss->count; i++)
		nums[n++] = ss->ring[(ss->head + i) % SPOOL_SPARES_MAX].num;
	ss->nready = 0;
	ss->count = 0;
	ss->head = 0;
	pthread_mutex_unlock(&ss->lock);
	for (i = 0; i < n; i++) {
		spool_spare_name(name, sizeof(name), nums[i]);
		if (unlinkat(sp->spare_fd, name, 0) == 0)
			freed++;
	}
	free(nums);
	if (n > 0)
		log_warn("spool: %s: released %zu spare files of %zu",
		    strerror(error), freed, n);
}

/* The commit thread starts a fsync of queue/: returns its ticket. */
static uint64_t
spool_qsync_begin(struct spool *sp)
{
	uint64_t t;

	pthread_mutex_lock(&sp->spares->lock);
	t = ++sp->spares->qsync_started;
	pthread_mutex_unlock(&sp->spares->lock);
	return t;
}

/* That fsync succeeded: the spares it covers become usable. */
static void
spool_qsync_end(struct spool *sp, uint64_t ticket)
{
	struct spool_spares *ss = sp->spares;

	pthread_mutex_lock(&ss->lock);
	if (ticket > ss->qsync_done)
		ss->qsync_done = ticket;
	while (ss->count > 0 && ss->ring[ss->head].ticket <= ss->qsync_done) {
		ss->ready[ss->nready++] = ss->ring[ss->head].num;
		ss->head = (ss->head + 1) % SPOOL_SPARES_MAX;
		ss->count--;
	}
	pthread_mutex_unlock(&ss->lock);
}

/*
 * Move queue/id to spare/ instead of unlinking it. Returns 0, or -1 when
 * the pool is full or the rename failed (the caller unlinks).
 */
static int
spool_spare_put(const struct spool *sp, const char *id)
{
	struct spool_spares *ss = sp->spares;
	char name[32];
	uint64_t num;
	size_t slot;

	pthread_mutex_lock(&ss->lock);
	if (ss->count + ss->nready >= SPOOL_SPARES_MAX) {
		pthread_mutex_unlock(&ss->lock);
		errno = ENOSPC;
		return -1;
	}
	num = ss->next++;
	pthread_mutex_unlock(&ss->lock);
	spool_spare_name(name, sizeof(name), num);
	if (renameat2(sp->queue_fd, id, sp->spare_fd, name,
	    RENAME_NOREPLACE) == -1)
		return -1;
	pthread_mutex_lock(&ss->lock);
	if (ss->count + ss->nready >= SPOOL_SPARES_MAX) {
		/* Others filled the pool meanwhile. */
		pthread_mutex_unlock(&ss->lock);
		unlinkat(sp->spare_fd, name, 0);
		return 0;
	}
	/* Only a fsync of queue/ that starts after the rename covers it. */
	slot = (ss->head + ss->count) % SPOOL_SPARES_MAX;
	ss->ring[slot].num = num;
	ss->ring[slot].ticket = ss->qsync_started + 1;
	ss->count++;
	ss->kept++;
	pthread_mutex_unlock(&ss->lock);
	return 0;
}

/*
 * Rename a usable spare to incoming/id and open it for writing (at offset
 * 0; spool_sync_file() cuts what is left of the old content). Returns the
 * fd, or -1 when there is none or it failed (the caller creates a file).
 */
static int
spool_spare_take(struct spool *sp, const char *id, uint64_t *size_r)
{
	struct spool_spares *ss = sp->spares;
	struct stat st;
	char name[32];
	uint64_t num;
	int fd;

	pthread_mutex_lock(&ss->lock);
	if (ss->nready == 0) {
		pthread_mutex_unlock(&ss->lock);
		return -1;
	}
	num = ss->ready[--ss->nready];
	pthread_mutex_unlock(&ss->lock);
	spool_spare_name(name, sizeof(name), num);
	if (renameat2(sp->spare_fd, name, sp->incoming_fd, id,
	    RENAME_NOREPLACE) == -1) {
		if (errno == EEXIST)
			unlinkat(sp->spare_fd, name, 0);
		return -1;
	}
	fd = openat(sp->incoming_fd, id, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1 || fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_nlink != 1) {
		if (fd != -1)
			close(fd);
		unlinkat(sp->incoming_fd, id, 0);
		return -1;
	}
	pthread_mutex_lock(&ss->lock);
	ss->reused++;
	pthread_mutex_unlock(&ss->lock);
	*size_r = (uint64_t)st.st_size;
	return fd;
}

/* ---- Recovery ---- */

static int
spool_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in a directory (without . and ..), sorted. Returns count or -1. */
static ssize_t
spool_list_dir(int dfd, char ***names_r)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int fd;

	if ((fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = xstrdup(de->d_name);
		errno = 0;
	}
	if (errno != 0) {
		int saved = errno;

		closedir(d);
		while (n > 0)
			free(names[--n]);
		free(names);
		errno = saved;
		return -1;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), spool_cmp_names);
	*names_r = names;
	return (ssize_t)n;
}

static void
spool_free_names(char **names, ssize_t n)
{
	while (n > 0)
		free(names[--n]);
	free(names);
}

/*
 * Rename queue/name into the directory dfd under the same name, or
 * name.1, name.2... when taken: never over an older file. The name used
 * goes to target. Returns 0, or -1 with errno (EEXIST: no free name).
 */
static int
spool_move_out(const struct spool *sp, const char *name, int dfd,
    char *target, size_t tsize)
{
	int i;

	for (i = 0; i < SPOOL_CORRUPT_TRIES; i++) {
		if (i == 0)
			strlcpy(target, name, tsize);
		else
			snprintf(target, tsize, "%.200s.%d", name, i);
		if (faccessat(dfd, target, F_OK, AT_SYMLINK_NOFOLLOW) == -1 &&
		    errno == ENOENT)
			break;
	}
	if (i == SPOOL_CORRUPT_TRIES) {
		errno = EEXIST;
		return -1;
	}
	return renameat(sp->queue_fd, name, dfd, target);
}

/* Move queue/name to corrupt/ with a log line. Returns 0 or -1 (errno). */
static int
spool_move_corrupt(const struct spool *sp, const char *name,
    const char *reason)
{
	char esc[128], target[NAME_MAX + 1];
	int saved;

	log_escape(esc, sizeof(esc), name, strlen(name));
	if (spool_move_out(sp, name, sp->corrupt_fd, target,
	    sizeof(target)) == -1) {
		saved = errno;
		if (saved == EEXIST)
			log_err("spool: error queue=%s corrupt queue file left "
			    "in queue/: no free name in corrupt/ (%s)", esc,
			    reason);
		else
			log_err("spool: error queue=%s corrupt queue file could "
			    "not be moved to corrupt/: %s (%s)", esc,
			    strerror(saved), reason);
		errno = saved;
		return -1;
	}
	log_warn("spool: corrupt queue=%s moved to corrupt/: %s", esc,
	    reason);
	if (strcmp(target, name) != 0) {
		log_escape(esc, sizeof(esc), target, strlen(target));
		log_warn("spool: corrupt file stored as corrupt/%s", esc);
	}
	return 0;
}

static void
spool_recover_incoming(struct spool *sp)
{
	char **names = NULL;
	char esc[128];
	ssize_t n, i;

	if ((n = spool_list_dir(sp->incoming_fd, &names)) == -1) {
		log_err("spool: cannot read incoming/: %s", strerror(errno));
		return;
	}
	/* No incoming/ file was ever acknowledged: it never had a 250. */
	for (i = 0; i < n; i++) {
		log_escape(esc, sizeof(esc), names[i], strlen(names[i]));
		if (unlinkat(sp->incoming_fd, names[i], 0) == -1)
			log_err("spool: cannot remove incoming/%s: %s", esc,
			    strerror(errno));
		else
			log_info("spool: removed queue=%s (an unfinished "
			    "incoming file, never acknowledged)", esc);
	}
	spool_free_names(names, n);
}

int
spool_recover(struct spool *sp, spool_recover_cb cb, void *arg)
{
	struct envelope env;
	struct qfile_info info;
	struct stat st;
	const char *error;
	char **names = NULL;
	char esc[128];
	ssize_t n, i;
	int fd, found = 0, moved = 0;

	spool_recover_incoming(sp);

	if ((n = spool_list_dir(sp->queue_fd, &names)) == -1) {
		log_err("spool: cannot read queue/: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		const char *name = names[i];

		log_escape(esc, sizeof(esc), name, strlen(name));
		if (!spool_is_valid_id(name)) {
			moved += spool_move_corrupt(sp, name,
			    "bad file name") == 0;
			continue;
		}
		fd = openat(sp->queue_fd, name,
		    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd == -1) {
			if (errno == ELOOP)
				moved += spool_move_corrupt(sp, name,
				    "symbolic link") == 0;
			else
				log_err("spool: error queue=%s cannot open "
				    "queue file: %s", esc, strerror(errno));
			continue;
		}
		if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
			close(fd);
			moved += spool_move_corrupt(sp, name,
			    "not a regular file") == 0;
			continue;
		}
		envelope_init(&env);
		if (qfile_parse(fd, QFILE_VERIFY_CONTENT, &env, &info,
		    &error) == -1) {
			int saved = errno;

			close(fd);
			if (saved == EBADMSG)
				moved += spool_move_corrupt(sp, name,
				    error) == 0;
			else
				log_err("spool: error queue=%s cannot read "
				    "queue file: %s", esc, strerror(saved));
			continue;
		}
		close(fd);
		if (info.torn_states > 0)
			log_warn("spool: torn queue=%s rcpts=%u (recipient "
			    "state torn: delivering again)", esc,
			    info.torn_states);
		found++;
		cb(arg, name, &env);
		envelope_free(&env);
	}
	spool_free_names(names, n);
	if (moved > 0 && (fsync(sp->corrupt_fd) == -1 ||
	    fsync(sp->queue_fd) == -1))
		log_err("spool: fsync after moving to corrupt/: %s",
		    strerror(errno));
	return found;
}

/* ---- Readers (any thread) ---- */

static int
spool_open_queued(const struct spool *sp, const char *id, int flags)
{
	if (!spool_is_valid_id(id)) {
		errno = EINVAL;
		return -1;
	}
	return openat(sp->queue_fd, id, flags | O_CLOEXEC | O_NOFOLLOW);
}

int
spool_read_envelope(const struct spool *sp, const char *id,
    struct envelope *env, const char **error_r)
{
	struct qfile_info info;
	int fd, r, saved;

	envelope_init(env);
	if ((fd = spool_open_queued(sp, id, O_RDONLY)) == -1) {
		*error_r = errno == ENOENT ? "no such queue file" :
		    errno == EINVAL ? "bad queue id" : "cannot open queue file";
		return -1;
	}
	r = qfile_parse(fd, 0, env, &info, error_r);
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

int
spool_read_content(const struct spool *sp, const char *id,
    spool_content_cb cb, void *arg)
{
	struct envelope env;
	struct qfile_info info;
	const char *error;
	int fd, r, saved;

	if ((fd = spool_open_queued(sp, id, O_RDONLY)) == -1)
		return -1;
	envelope_init(&env);
	r = qfile_parse(fd, 0, &env, &info, &error);
	/* The PREPEND header fields come first (queue format v3). */
	if (r == 0 && env.prepend != NULL && env.prepend[0] != '\0')
		r = cb(arg, env.prepend, strlen(env.prepend));
	envelope_free(&env);
	if (r == 0)
		r = qfile_read_content(fd, &info, cb, arg);
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

struct spool_reader {
	int fd;
	struct qfile_info info;
	struct qfile_content *it;
	char *prepend;		/* returned first, then the content */
	bool prepend_done;
};

struct spool_reader *
spool_reader_open(const struct spool *sp, const char *id,
    const char **error_r)
{
	struct spool_reader *r;
	struct envelope env;
	int fd, saved;

	if ((fd = spool_open_queued(sp, id, O_RDONLY)) == -1) {
		*error_r = errno == ENOENT ? "no such queue file" :
		    errno == EINVAL ? "bad queue id" : "cannot open queue file";
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	r->fd = fd;
	envelope_init(&env);
	if (qfile_parse(fd, 0, &env, &r->info, error_r) == -1) {
		saved = errno;
		close(fd);
		free(r);
		errno = saved;
		return NULL;
	}
	r->prepend = env.prepend;	/* ours now */
	env.prepend = NULL;
	envelope_free(&env);
	r->it = qfile_content_open(fd, &r->info);
	return r;
}

int
spool_reader_next(struct spool_reader *r, const char **data, size_t *len)
{
	if (r->prepend != NULL && !r->prepend_done) {
		r->prepend_done = true;
		if (r->prepend[0] != '\0') {
			*data = r->prepend;
			*len = strlen(r->prepend);
			return 1;
		}
	}
	return qfile_content_next(r->it, data, len);
}

uint64_t
spool_reader_size(const struct spool_reader *r)
{
	return r->info.prepend_size + r->info.content_size;
}

void
spool_reader_close(struct spool_reader *r)
{
	if (r == NULL)
		return;
	qfile_content_close(r->it);
	close(r->fd);
	free(r->prepend);
	free(r);
}

int
spool_update_rcpts(const struct spool *sp, const char *id,
    const struct envelope *env)
{
	struct envelope disk;
	struct qfile_info info;
	const char *error;
	unsigned char *table = NULL;
	size_t i, len, reclen;
	int fd, saved;

	if ((fd = spool_open_queued(sp, id, O_RDWR)) == -1)
		return -1;
	envelope_init(&disk);
	if (qfile_parse(fd, 0, &disk, &info, &error) == -1)
		goto fail;
	envelope_free(&disk);
	if (info.nrcpts != env->nrcpts) {
		errno = EINVAL;
		goto fail;
	}
	if (env->nrcpts == 0)
		return close(fd);

	/*
	 * Rewrite the whole table in one pwrite. Records that did not
	 * change get their own bytes back, so a torn write can only tear
	 * a record that changed, and that one then reads as PENDING.
	 */
	reclen = qfile_state_reclen(info.version);
	len = env->nrcpts * reclen;
	table = xmalloc(len);
	for (i = 0; i < env->nrcpts; i++)
		qfile_encode_state_version(table + i * reclen, info.version,
		    (uint32_t)i, &env->rcpts[i]);
	for (i = 0; i < len;) {
		ssize_t n = pwrite(fd, table + i, len - i,
		    (off_t)(info.state_offset + i));

		if (n == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		i += (size_t)n;
	}
	if (fdatasync(fd) == -1)
		goto fail;
	free(table);
	return close(fd);
fail:
	saved = errno;
	free(table);
	close(fd);
	errno = saved;
	return -1;
}

int
spool_remove(const struct spool *sp, const char *id)
{
	if (!spool_is_valid_id(id)) {
		errno = EINVAL;
		return -1;
	}
	/*
	 * No directory fsync: should the name come back after a crash,
	 * the message is delivered again where its states were not
	 * written (a message all delivered with nothing to report skips
	 * that write): a duplicate, never a loss (test_powerloss.py counts
	 * them). The file is kept as a spare when there is room.
	 */
	if (spool_spare_put(sp, id) == 0)
		return 0;
	return unlinkat(sp->queue_fd, id, 0);
}

int
spool_remove_sync(const struct spool *sp, const char *id)
{
	if (!spool_is_valid_id(id)) {
		errno = EINVAL;
		return -1;
	}
	/* Unlinked, never kept as a spare: an administrator who deletes a
	 * message expects its bytes gone from the spool. */
	if (unlinkat(sp->queue_fd, id, 0) == -1 && errno != ENOENT)
		return -1;
	return fsync(sp->queue_fd);
}

/* The new name in dfd durable first, then the old one gone from queue/. */
static int
spool_sync_move(const struct spool *sp, int dfd)
{
	if (fsync(dfd) == -1 || fsync(sp->queue_fd) == -1)
		return -1;
	return 0;
}

int
spool_quarantine(const struct spool *sp, const char *id, const char *reason)
{
	int saved;

	if (!spool_is_valid_id(id)) {
		errno = EINVAL;
		return -1;
	}
	if (spool_move_corrupt(sp, id, reason) == -1)
		return -1;
	if (spool_sync_move(sp, sp->corrupt_fd) == -1) {
		/* Moved; only its durability is in doubt (see below). */
		saved = errno;
		log_err("spool: error queue=%s fsync after moving to "
		    "corrupt/: %s", id, strerror(saved));
	}
	return 0;
}

int
spool_move_failed(const struct spool *sp, const char *id)
{
	char target[NAME_MAX + 1];
	int saved;

	if (!spool_is_valid_id(id)) {
		errno = EINVAL;
		return -1;
	}
	if (spool_move_out(sp, id, sp->failed_fd, target,
	    sizeof(target)) == -1)
		return -1;
	if (strcmp(target, id) != 0)
		log_warn("spool: failed queue=%s file=failed/%s", id, target);
	/*
	 * Should the rename be lost in a crash, the file is back in queue/
	 * with every state final and the scheduler moves it again: kept
	 * either way, so an fsync error is logged, not returned.
	 */
	if (spool_sync_move(sp, sp->failed_fd) == -1) {
		saved = errno;
		log_err("spool: error queue=%s fsync after moving to "
		    "failed/: %s", id, strerror(saved));
	}
	return 0;
}
