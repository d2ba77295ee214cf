/*
 * scheduler.c: keeps every queued message in memory and drives its
 * deliveries on a pool of worker threads.
 *
 * Entry points: scheduler_new, scheduler_set_conf, scheduler_add,
 * scheduler_get_stats, scheduler_free.
 *
 * A message is submitted as one job when it arrives (scheduler_add) and
 * whenever its retry timer fires; at most one job per message is in
 * flight, and while it is the job owns the message's envelope. A worker
 * delivers every due local recipient in turn (maildir_deliver), computes
 * the new states (attempts, next attempt with exponential backoff,
 * FAILED past queue_lifetime), writes them to the queue file with
 * spool_update_rcpts() and, once no recipient is PENDING, removes the
 * queue file if every one was DELIVERED or moves it to failed/ if one
 * FAILED (no bounces yet: never delete the only copy). A queue file that
 * reads as corrupt (EBADMSG) goes to corrupt/ at once: retrying cannot
 * fix it. Only then does the result go back to the event
 * loop, through a mutex-protected list and event_active() (the caller has
 * run evthread_use_pthreads() before creating the base). The loop frees
 * finished messages and arms the retry timers.
 *
 * Remote recipients wait for outbound delivery (a later issue): they stay
 * PENDING with "451 4.4.0" and are retried like temporary failures.
 * Recipients that fail are logged status=bounced; bounce messages (DSN)
 * come in a later issue, until then their messages wait in failed/.
 *
 * SECURITY: addresses and paths in log lines are escaped (they hold
 * client text). Workers never read the conf (it may be swapped and freed
 * on reload): a job carries copies of what it needs.
 * STANDARDS: RFC 5321 4.5.4.1 (retry strategy: at least 30 minutes
 * between attempts in general; we start lower for local delivery, where a
 * fixed disk is the usual cause, and cap at one hour), 4.5.4.1 again for
 * giving up (4-5 days: queue_lifetime).
 * OWNERSHIP: the scheduler owns its messages (envelope copies) and jobs.
 */
#include "delivery/delivery.h"

#include <sys/queue.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "queue/spool.h"

#define SCHED_RETRY_BASE_DEFAULT	60	/* seconds, doubled per try */
#define SCHED_RETRY_MAX			3600	/* longest wait */
#define SCHED_REPLY_REMOTE \
	"451 4.4.0 outbound delivery not yet available"

struct sched_msg {
	TAILQ_ENTRY(sched_msg) entry;
	struct scheduler *s;
	char id[QUEUE_ID_MAX];
	struct envelope env;	/* owned by the job while busy */
	uint64_t added;		/* unix seconds, if env has no arrival */
	struct event *timer;
	bool busy;		/* a job is in flight */
	bool dirty;		/* states not yet in the queue file */
};

struct sched_job {
	TAILQ_ENTRY(sched_job) entry;
	struct sched_msg *msg;
	char *hostname;		/* copied from the conf at submit time */
	uint64_t lifetime;
	uint64_t retry_base;
	bool removed;		/* queue file gone from queue/: forget it */
	bool corrupt;		/* reading it gave EBADMSG: quarantine */
	uint64_t delivered, deferred, failed;
};

TAILQ_HEAD(sched_jobs, sched_job);

struct scheduler {
	struct event_base *base;
	struct spool *sp;
	const struct conf *conf;
	uint64_t retry_base;

	pthread_t *threads;
	unsigned int nthreads;
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	struct sched_jobs jobs;		/* waiting for a worker */
	struct sched_jobs done;		/* finished, for the loop */
	bool stopping;
	struct event *done_ev;

	TAILQ_HEAD(, sched_msg) msgs;
	struct scheduler_stats stats;
};

/* ---- worker side ---- */

static uint64_t
scheduler_backoff(uint64_t base, uint32_t attempts)
{
	uint64_t d = base;
	uint32_t i;

	for (i = 1; i < attempts && d < SCHED_RETRY_MAX; i++)
		d *= 2;
	return d > SCHED_RETRY_MAX ? SCHED_RETRY_MAX : d;
}

static void
scheduler_log(const char *id, const struct envelope_rcpt *r,
    const char *status)
{
	char addr[512], mbox[1024], reply[512];

	/* addr is never NULL in a parsed file; be safe anyway. */
	if (r->addr != NULL)
		log_escape(addr, sizeof(addr), r->addr, strlen(r->addr));
	else
		addr[0] = '\0';
	if (r->mailbox != NULL)
		log_escape(mbox, sizeof(mbox), r->mailbox,
		    strlen(r->mailbox));
	else
		strlcpy(mbox, "-", sizeof(mbox));
	log_escape(reply, sizeof(reply), r->last_reply,
	    strlen(r->last_reply));
	log_info("delivery: id=%s to=<%s> mailbox=%s status=%s reply=\"%s\"%s",
	    id, addr, mbox, status, reply,
	    strcmp(status, "bounced") == 0 ?
	    " dsn=none note=\"bounce messages are not implemented yet\"" :
	    "");
}

/* Deliver one recipient now and set its new state. */
static void
scheduler_attempt(struct sched_job *job, struct envelope_rcpt *r,
    uint64_t now)
{
	struct sched_msg *msg = job->msg;
	struct scheduler *s = msg->s;
	uint64_t arrival;
	bool permanent = false;
	int ok, e = 0;

	r->attempts++;
	if (r->kind == RCPT_KIND_REMOTE) {
		/* Outbound SMTP is a later issue: keep it queued. */
		strlcpy(r->last_reply, SCHED_REPLY_REMOTE,
		    sizeof(r->last_reply));
		ok = -1;
	} else if (r->mailbox == NULL) {
		strlcpy(r->last_reply, "554 5.3.5 local recipient without "
		    "a Maildir", sizeof(r->last_reply));
		ok = -1;
		permanent = true;
	} else {
		ok = maildir_deliver(s->sp, msg->id, msg->env.sender,
		    r->mailbox, job->hostname, r->last_reply,
		    sizeof(r->last_reply), &permanent);
		e = ok == -1 ? errno : 0;
	}

	if (ok == 0) {
		r->status = RCPT_STATUS_DELIVERED;
		strlcpy(r->last_reply, "250 2.0.0 delivered to Maildir",
		    sizeof(r->last_reply));
		job->delivered++;
		scheduler_log(msg->id, r, "sent");
		return;
	}
	if (e == EBADMSG) {
		/*
		 * The queue file itself is bad (it passed recovery, so it
		 * went bad since): no retry can fix it and no recipient can
		 * get it. The job moves it to corrupt/ for a human.
		 */
		job->corrupt = true;
	}
	arrival = msg->env.arrival != 0 ? msg->env.arrival : msg->added;
	if (!job->corrupt && (permanent || now >= arrival + job->lifetime)) {
		r->status = RCPT_STATUS_FAILED;
		job->failed++;
		scheduler_log(msg->id, r, "bounced");
		return;
	}
	r->next_attempt = now + scheduler_backoff(job->retry_base,
	    r->attempts);
	job->deferred++;
	scheduler_log(msg->id, r, "deferred");
}

/* The queue file is corrupt: out of queue/ into corrupt/, at once. */
static void
scheduler_quarantine(struct sched_job *job, const char *reason)
{
	struct sched_msg *msg = job->msg;
	struct scheduler *s = msg->s;
	char eb[128];

	/* Best effort: the states tell a human who already has it. */
	if (msg->dirty && spool_update_rcpts(s->sp, msg->id, &msg->env) == 0)
		msg->dirty = false;
	if (spool_quarantine(s->sp, msg->id, reason) == -1) {
		log_err("delivery: id=%s queue file is corrupt (%s) and stays "
		    "in queue/: %s", msg->id, reason,
		    strerror_r(errno, eb, sizeof(eb)));
		return;
	}
	job->removed = true;
	log_warn("delivery: id=%s status=corrupt queue file moved to "
	    "corrupt/, pending recipients not delivered (%s)", msg->id,
	    reason);
}

static void
scheduler_job_run(struct sched_job *job)
{
	struct sched_msg *msg = job->msg;
	struct scheduler *s = msg->s;
	struct envelope *env = &msg->env;
	uint64_t now = (uint64_t)time(NULL);
	bool done = true, failed = false;
	char eb[128];
	size_t i;

	for (i = 0; i < env->nrcpts && !job->corrupt; i++) {
		struct envelope_rcpt *r = &env->rcpts[i];

		if (r->status == RCPT_STATUS_PENDING &&
		    r->next_attempt <= now) {
			scheduler_attempt(job, r, now);
			msg->dirty = true;
		}
	}
	if (job->corrupt) {
		scheduler_quarantine(job, "content unreadable at delivery");
		return;
	}
	for (i = 0; i < env->nrcpts; i++) {
		if (env->rcpts[i].status == RCPT_STATUS_PENDING)
			done = false;
		else if (env->rcpts[i].status == RCPT_STATUS_FAILED)
			failed = true;
	}
	/*
	 * Every recipient delivered: removing the file is the whole update
	 * (if a crash loses the unlink, the message is delivered again:
	 * twice, never zero times), so skip the fdatasync of states nobody
	 * reads.
	 */
	if (done && !failed && spool_remove(s->sp, msg->id) == 0) {
		msg->dirty = false;
		job->removed = true;
		log_info("delivery: id=%s status=done (queue file removed)",
		    msg->id);
		return;
	}
	/* The new states are durable before anyone acts on them. */
	if (msg->dirty) {
		if (spool_update_rcpts(s->sp, msg->id, env) == -1) {
			if (errno == EBADMSG) {
				scheduler_quarantine(job,
				    "envelope unreadable at delivery");
				return;
			}
			log_err("delivery: id=%s cannot update queue file: %s",
			    msg->id, strerror_r(errno, eb, sizeof(eb)));
			return;		/* dirty: the next job writes */
		}
		msg->dirty = false;
	}
	if (!done)
		return;
	if (failed) {
		/*
		 * Until bounces (DSN) exist, the file is the only trace of
		 * mail we acknowledged: keep it, with its final states.
		 */
		if (spool_move_failed(s->sp, msg->id) == 0) {
			job->removed = true;
			log_info("delivery: id=%s status=failed kept in "
			    "failed/ (bounces are not implemented yet)",
			    msg->id);
		} else
			log_err("delivery: id=%s cannot move queue file to "
			    "failed/: %s", msg->id,
			    strerror_r(errno, eb, sizeof(eb)));
		return;
	}
	if (spool_remove(s->sp, msg->id) == 0) {
		job->removed = true;
		log_info("delivery: id=%s status=done (queue file removed)",
		    msg->id);
	} else
		log_err("delivery: id=%s cannot remove queue file: %s",
		    msg->id, strerror_r(errno, eb, sizeof(eb)));
}

static void *
scheduler_worker(void *arg)
{
	struct scheduler *s = arg;
	struct sched_job *job;

	pthread_mutex_lock(&s->mtx);
	for (;;) {
		while (!s->stopping && TAILQ_EMPTY(&s->jobs))
			pthread_cond_wait(&s->cv, &s->mtx);
		if (s->stopping)
			break;
		job = TAILQ_FIRST(&s->jobs);
		TAILQ_REMOVE(&s->jobs, job, entry);
		pthread_mutex_unlock(&s->mtx);

		scheduler_job_run(job);

		pthread_mutex_lock(&s->mtx);
		TAILQ_INSERT_TAIL(&s->done, job, entry);
		pthread_mutex_unlock(&s->mtx);
		/* Thread-safe with evthread_use_pthreads(); outside our
		 * mutex so that it never nests with libevent's lock. Calls
		 * that coalesce are fine: the callback drains the list. */
		event_active(s->done_ev, EV_READ, 0);
		pthread_mutex_lock(&s->mtx);
	}
	pthread_mutex_unlock(&s->mtx);
	return NULL;
}

/* ---- loop side ---- */

static void
scheduler_job_free(struct sched_job *job)
{
	free(job->hostname);
	free(job);
}

static void
scheduler_msg_free(struct sched_msg *msg)
{
	if (msg->timer != NULL)
		event_free(msg->timer);
	envelope_free(&msg->env);
	free(msg);
}

static void
scheduler_submit(struct scheduler *s, struct sched_msg *msg)
{
	struct sched_job *job;

	if (msg->busy)
		return;
	job = xcalloc(1, sizeof(*job));
	job->msg = msg;
	job->hostname = xstrdup(s->conf != NULL && s->conf->hostname != NULL ?
	    s->conf->hostname : "");
	job->lifetime = s->conf != NULL ? s->conf->queue_lifetime :
	    5 * 86400;
	job->retry_base = s->retry_base;
	msg->busy = true;
	pthread_mutex_lock(&s->mtx);
	TAILQ_INSERT_TAIL(&s->jobs, job, entry);
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mtx);
}

static void
scheduler_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sched_msg *msg = arg;

	(void)fd;
	(void)what;
	scheduler_submit(msg->s, msg);
}

/* Arm the timer for the earliest pending recipient. */
static void
scheduler_arm(struct scheduler *s, struct sched_msg *msg)
{
	struct timeval tv = { 0, 0 };
	uint64_t now = (uint64_t)time(NULL), next = UINT64_MAX;
	size_t i;

	for (i = 0; i < msg->env.nrcpts; i++) {
		const struct envelope_rcpt *r = &msg->env.rcpts[i];

		if (r->status == RCPT_STATUS_PENDING && r->next_attempt < next)
			next = r->next_attempt;
	}
	/* Nothing pending but still here (the queue file could not be
	 * updated or removed): try again after the base delay. */
	if (next == UINT64_MAX || (msg->dirty && next > now + s->retry_base))
		next = now + s->retry_base;
	if (next > now)
		tv.tv_sec = (time_t)(next - now);
	evtimer_add(msg->timer, &tv);
}

static void
scheduler_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	struct sched_jobs done;
	struct sched_job *job;
	struct sched_msg *msg;

	(void)fd;
	(void)what;
	TAILQ_INIT(&done);
	pthread_mutex_lock(&s->mtx);
	TAILQ_CONCAT(&done, &s->done, entry);
	pthread_mutex_unlock(&s->mtx);

	while ((job = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, job, entry);
		msg = job->msg;
		msg->busy = false;
		s->stats.delivered += job->delivered;
		s->stats.deferred += job->deferred;
		s->stats.failed += job->failed;
		if (job->removed) {
			TAILQ_REMOVE(&s->msgs, msg, entry);
			scheduler_msg_free(msg);
			s->stats.queued--;
		} else
			scheduler_arm(s, msg);
		scheduler_job_free(job);
	}
}

struct scheduler *
scheduler_new(struct event_base *base, struct spool *sp,
    const struct conf *c, unsigned int nworkers)
{
	struct scheduler *s;
	const char *env, *errstr;
	unsigned int i;
	int r;

	s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->sp = sp;
	s->conf = c;
	s->retry_base = SCHED_RETRY_BASE_DEFAULT;
	if ((env = getenv("PETREL_RETRY_BASE_SECONDS")) != NULL) {
		if (parse_u64(env, 1, SCHED_RETRY_MAX, &s->retry_base,
		    &errstr) == -1) {
			log_warn("scheduler: PETREL_RETRY_BASE_SECONDS=%s is "
			    "%s, using %d", env, errstr,
			    SCHED_RETRY_BASE_DEFAULT);
			s->retry_base = SCHED_RETRY_BASE_DEFAULT;
		}
	}
	TAILQ_INIT(&s->jobs);
	TAILQ_INIT(&s->done);
	TAILQ_INIT(&s->msgs);
	if (pthread_mutex_init(&s->mtx, NULL) != 0 ||
	    pthread_cond_init(&s->cv, NULL) != 0)
		fatalx("scheduler: cannot create a mutex");
	s->done_ev = event_new(base, -1, 0, scheduler_done_cb, s);
	if (s->done_ev == NULL)
		fatalx("scheduler: event_new failed");

	s->nthreads = nworkers > 0 ? nworkers : 1;
	s->threads = xcalloc(s->nthreads, sizeof(*s->threads));
	for (i = 0; i < s->nthreads; i++)
		if ((r = pthread_create(&s->threads[i], NULL,
		    scheduler_worker, s)) != 0)
			fatalx("scheduler: pthread_create: %s", strerror(r));
	return s;
}

void
scheduler_set_conf(struct scheduler *s, const struct conf *c)
{
	s->conf = c;
}

void
scheduler_add(struct scheduler *s, const char *id,
    const struct envelope *env)
{
	struct sched_msg *msg;
	size_t i;

	msg = xcalloc(1, sizeof(*msg));
	msg->s = s;
	if (strlcpy(msg->id, id, sizeof(msg->id)) >= sizeof(msg->id))
		fatalx("scheduler: queue id too long: %s", id);
	envelope_init(&msg->env);
	envelope_copy(&msg->env, env);
	msg->added = (uint64_t)time(NULL);
	/* A new or recovered message is tried now, whatever its recorded
	 * next attempt: a restart is a natural moment to flush. */
	for (i = 0; i < msg->env.nrcpts; i++)
		if (msg->env.rcpts[i].status == RCPT_STATUS_PENDING)
			msg->env.rcpts[i].next_attempt = 0;
	msg->timer = evtimer_new(s->base, scheduler_timer_cb, msg);
	if (msg->timer == NULL)
		fatalx("scheduler: evtimer_new failed");
	TAILQ_INSERT_TAIL(&s->msgs, msg, entry);
	s->stats.queued++;
	scheduler_submit(s, msg);
}

void
scheduler_free(struct scheduler *s)
{
	struct sched_job *job;
	struct sched_msg *msg;
	unsigned int i;

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mtx);
	s->stopping = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mtx);
	/* Running jobs finish; waiting ones stay in the queue files. */
	for (i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	free(s->threads);

	while ((job = TAILQ_FIRST(&s->jobs)) != NULL) {
		TAILQ_REMOVE(&s->jobs, job, entry);
		scheduler_job_free(job);
	}
	while ((job = TAILQ_FIRST(&s->done)) != NULL) {
		TAILQ_REMOVE(&s->done, job, entry);
		scheduler_job_free(job);
	}
	while ((msg = TAILQ_FIRST(&s->msgs)) != NULL) {
		TAILQ_REMOVE(&s->msgs, msg, entry);
		scheduler_msg_free(msg);
	}
	event_free(s->done_ev);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mtx);
	free(s);
}

void
scheduler_get_stats(const struct scheduler *s, struct scheduler_stats *st)
{
	*st = s->stats;
}
