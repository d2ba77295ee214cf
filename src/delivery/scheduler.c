/*
 * scheduler.c: the queue manager. Keeps every queued message in memory,
 * runs delivery rounds, writes each result back to the queue file before
 * trusting it, retries temporary failures with exponential backoff, and
 * sends delivery status notifications (bounces, delay warnings, success
 * and "relayed" notices).
 *
 * Entry points: scheduler_new, scheduler_set_conf, scheduler_add,
 * scheduler_flush, scheduler_get_stats, scheduler_free; for the queue
 * commands scheduler_admin, scheduler_snapshot, scheduler_entries_free.
 *
 * Queue commands (control socket): a command waits for a message's round
 * to end before it touches it (PHASE_ADMIN while its file update runs on
 * a worker), so a deletion never races a delivery. A hold is the
 * RCPT_FLAG_HELD bit on every recipient's STATE record (queue format
 * v4): no round starts for a held message, now or after a restart. A
 * bounce fails the pending recipients and finishes the round as a
 * delivery round would (states, failure report, removal).
 *
 * A message lives on the loop thread; at most one round runs for it at a
 * time. A round moves through phases, each finished by a worker job or a
 * callback on the loop:
 *
 *   SCAN     (worker, once per message with remote recipients) read the
 *            content: 8-bit bytes, longest line, Received: count
 *   DELIVER  local recipients on a worker (maildir_deliver), remote ones
 *            through remote.c (MX, SMTP client) on the loop, in parallel;
 *            with `deliver lmtp` the local ones go through remote.c too,
 *            to the LMTP server (lmtp.h), and SCAN runs for them;
 *            a destination that finishes while others go on has its
 *            results written at once (worker, from a copy of the states)
 *   WRITE    (worker) the new states into the queue file (fdatasync)
 *   NOTIFY   (worker) compose the DSNs the new states call for, then
 *            commit each as a new queued message (spool writer, group
 *            commit) and mark the recipients notified
 *   FINAL    (worker) write the notified flags, or unlink the queue file
 *            once no recipient is pending and every notice is queued
 *
 * Order matters for the promises: states are durable before a notice is
 * queued, and a notice is durable before the flag that says it was sent,
 * so a crash anywhere gives at worst a second notice, never none; the
 * queue file goes only once everything it still owed is queued elsewhere.
 *
 * Workers get self-contained jobs. While a job runs the loop does not
 * touch the message's envelope (the round is busy; scheduler_flush only
 * sets a flag), so job and loop never share state.
 *
 * SECURITY: addresses and replies in log lines are escaped (they hold
 * remote text). Workers never read the conf (it may be swapped and freed
 * on reload): a job carries copies of what it needs.
 * STANDARDS: RFC 5321 4.5.4.1 (retry strategy; give up after 4-5 days:
 * queue_lifetime), 6.1 and 6.2 (a non-delivery report for every accepted
 * message that cannot be delivered, never a report about a report: null
 * sender), 6.3 (loop detection by Received: count); RFC 3461 (NOTIFY,
 * RET, ENVID, ORCPT; "relayed" notices), RFC 3464 (the report format, in
 * src/queue/dsn.c).
 * OWNERSHIP: the scheduler owns its messages (envelope copies) and jobs.
 */
#include "delivery/delivery.h"
#include "delivery/scan.h"

#include <sys/queue.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "delivery/lmtp.h"
#include "delivery/metrics.h"
#include "delivery/remote.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "queue/dsn.h"
#include "queue/spool.h"
#include "smtp/parse.h"

#ifndef TAILQ_FOREACH_SAFE	/* BSD; glibc's sys/queue.h lacks it */
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

#define SCHED_DSN_MAX_EXTRA	(256 * 1024)	/* report beyond the quote */
/* A just-received message this small is scanned on the loop. */
#define SCHED_SCAN_INLINE_MAX	(256 * 1024)

enum sched_phase {
	PHASE_IDLE,
	PHASE_SCAN,
	PHASE_DELIVER,
	PHASE_WRITE,
	PHASE_NOTIFY,
	PHASE_INJECT,
	PHASE_FINAL,
	PHASE_ADMIN,	/* a queue command's file update (hold, delete) */
};

/*
 * What a DSN round must send, per recipient. In memory only: a success
 * notice not owed (a DSN-capable peer reports itself) sets
 * RCPT_FLAG_NOTIFIED at once, so that a DELIVERED recipient without it
 * found at start-up is owed one still.
 */
enum sched_note {
	NOTE_NONE,
	NOTE_DELIVERED,		/* NOTIFY=SUCCESS, delivered here */
	NOTE_RELAYED,		/* NOTIFY=SUCCESS, peer without DSN */
};

struct sched_msg {
	TAILQ_ENTRY(sched_msg) entry;
	struct scheduler *s;
	char id[QUEUE_ID_MAX];
	struct envelope env;
	uint64_t added;		/* unix seconds, if env has no arrival */
	struct event *timer;
	enum sched_phase phase;
	unsigned int inflight;	/* DELIVER parts not finished */
	bool flush;		/* scheduler_flush during a round */
	bool dirty;		/* states not yet in the queue file */
	bool corrupt;		/* the content read as corrupt */
	bool removed;		/* queue file gone: forget the message */
	bool interim;		/* an interim state write is running */
	bool interim_again;	/* and another is wanted after it */
	/* SCAN results */
	bool fresh;		/* just received: its file is in the page
				 * cache (until the first round) */
	bool scanned;
	bool eight_bit;
	size_t longest_line;
	unsigned int hops;	/* Received: header fields */
	uint8_t *note;		/* enum sched_note per recipient */
	/* NOTIFY results: composed reports, committed one by one */
	struct sched_report *reports;
	size_t nreports;
	size_t reports_done;
	struct remote_batch batch;
	/* Queue commands (scheduler_admin) */
	bool held;		/* on hold: no round starts */
	struct sched_admin *admin;	/* a command waiting or running */
	bool admin_running;	/* its bounce round runs now */
};

/* One scheduler_admin() call: its messages, and the answer owed. */
struct sched_admin {
	enum scheduler_admin_op op;
	scheduler_admin_cb cb;
	void *arg;
	uint64_t cookie;
	size_t outstanding;	/* messages not finished, +1 while starting */
	struct scheduler_admin_result res;
};

/* One composed DSN waiting to be queued. */
struct sched_report {
	enum dsn_action action;
	struct buf text;
	bool eight_bit;
	bool smtputf8;
	char *rcpt;		/* where it goes ("" : nowhere) */
	size_t *idx;		/* the recipients it reports on */
	size_t n;
	uint32_t flag;		/* RCPT_FLAG_* to set once queued */
	struct envelope env;	/* the report's envelope while queuing */
	bool queued;
};

struct sched_job;
typedef void (*sched_job_fn)(struct sched_job *);

struct sched_job {
	TAILQ_ENTRY(sched_job) entry;
	struct sched_msg *msg;
	sched_job_fn run;	/* on a worker */
	sched_job_fn done;	/* back on the loop */
	/* copies of what the worker needs (never the conf) */
	char *hostname;
	uint64_t bounce_size_limit;
	uint64_t lifetime;
	uint64_t now;
	size_t *idx;		/* DELIVER: local recipients */
	size_t n;
	struct remote_result *res;	/* DELIVER: one per idx */
	struct envelope *env;	/* interim WRITE: the states to write */
	int error;		/* errno of the job, 0 if fine */
	bool remove;		/* FINAL: unlink instead of update */
	bool check_held;	/* ADMIN: read the hold back */
};

TAILQ_HEAD(sched_jobs, sched_job);

struct scheduler {
	struct event_base *base;
	struct spool *sp;
	const struct conf *conf;
	struct remote *remote;
	struct scheduler_hooks hooks;

	pthread_t *threads;
	unsigned int nthreads;
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	struct sched_jobs jobs;		/* waiting for a worker */
	struct sched_jobs done;		/* finished, for the loop */
	bool stopping;		/* workers: exit */
	bool closing;		/* loop: start nothing new */
	struct event *done_ev;

	TAILQ_HEAD(, sched_msg) msgs;
	struct scheduler_stats stats;
};

static void sched_round(struct sched_msg *msg);
static void sched_advance(struct sched_msg *msg);
static void sched_admin_start(struct sched_msg *msg);
static void sched_admin_finish(struct sched_msg *msg, int error,
    const char *why);

/* ---- helpers ---- */

static uint64_t
sched_now(void)
{
	return (uint64_t)time(NULL);
}

/* retry_initial, doubled per attempt after the first, at most retry_max. */
uint64_t
scheduler_backoff(uint64_t initial, uint64_t max, uint32_t attempts)
{
	uint64_t d = initial;
	uint32_t i;

	for (i = 1; i < attempts && d < max; i++)
		d *= 2;
	return d > max ? max : d;
}

static uint64_t
sched_arrival(const struct sched_msg *msg)
{
	return msg->env.arrival != 0 ? msg->env.arrival : msg->added;
}

/* "5.1.1" from a reply "550 5.1.1 text", else a default by class. */
static void
sched_status_code(const char *reply, char *out, size_t outsize)
{
	const char *p = reply;
	size_t n = 0;

	if (strlen(p) > 4 && p[3] == ' ' && (p[4] == '2' || p[4] == '4' ||
	    p[4] == '5') && p[5] == '.') {
		p += 4;
		while (p[n] != '\0' && p[n] != ' ' && n < outsize - 1 &&
		    ((p[n] >= '0' && p[n] <= '9') || p[n] == '.'))
			n++;
		if (n >= 5) {
			memcpy(out, p, n);
			out[n] = '\0';
			return;
		}
	}
	strlcpy(out, reply[0] == '2' ? "2.0.0" : reply[0] == '4' ? "4.0.0" :
	    "5.0.0", outsize);
}

static void
sched_log(const struct sched_msg *msg, const struct envelope_rcpt *r,
    const char *relay_addr, const char *status)
{
	const struct conf_route *lmtp = msg->s->conf->deliver_lmtp;
	char addr[512], mbox[1024], reply[2048], relay[500], dsn[16];

	/* issue 6: docs/logging.md, "delivery: rcpt"; no space in values. */
	log_escape_word(addr, sizeof(addr), r->addr, strlen(r->addr));
	if (r->mailbox != NULL && lmtp == NULL)
		log_escape_word(mbox, sizeof(mbox), r->mailbox,
		    strlen(r->mailbox));
	else
		strlcpy(mbox, "-", sizeof(mbox));
	if (r->kind == RCPT_KIND_LOCAL && lmtp == NULL)
		strlcpy(relay, "local", sizeof(relay));
	else if (r->kind == RCPT_KIND_LOCAL && (relay_addr == NULL ||
	    relay_addr[0] == '\0'))
		/* deliver lmtp, server not reached: name the target. */
		log_escape_word(relay, sizeof(relay), lmtp->text,
		    strlen(lmtp->text));
	else if (relay_addr != NULL && relay_addr[0] != '\0')
		log_escape_word(relay, sizeof(relay), relay_addr,
		    strlen(relay_addr));
	else if (r->remote_mta[0] != '\0')
		log_escape_word(relay, sizeof(relay), r->remote_mta,
		    strlen(r->remote_mta));
	else
		strlcpy(relay, "none", sizeof(relay));
	log_escape(reply, sizeof(reply), r->last_reply,
	    strlen(r->last_reply));
	sched_status_code(r->last_reply, dsn, sizeof(dsn));
	log_info("delivery: rcpt queue=%s to=<%s> relay=%s mailbox=%s "
	    "delay=%llu attempts=%u dsn=%s status=%s (%s)", msg->id, addr,
	    relay, mbox, (unsigned long long)(sched_now() - sched_arrival(msg)),
	    r->attempts, dsn, status, reply);
}

/*
 * Apply one attempt's result to recipient i: delivered, failed for good
 * (permanent, or past queue_lifetime), or deferred with backoff.
 */
static void
sched_apply(struct sched_msg *msg, size_t i, const struct remote_result *res)
{
	struct scheduler *s = msg->s;
	const struct conf *c = s->conf;
	struct envelope_rcpt *r = &msg->env.rcpts[i];
	uint64_t now = sched_now();

	if (res->status == REMOTE_TEMP && res->retry_at != 0 &&
	    now < sched_arrival(msg) + c->queue_lifetime) {
		/* Not tried: its destination backs off. */
		strlcpy(r->last_reply, res->reply, sizeof(r->last_reply));
		r->next_attempt = res->retry_at;
		msg->dirty = true;
		sched_log(msg, r, res->relay, "deferred");
		return;
	}
	r->attempts++;
	r->last_attempt = now;
	strlcpy(r->last_reply, res->reply, sizeof(r->last_reply));
	strlcpy(r->remote_mta, res->remote_mta, sizeof(r->remote_mta));
	msg->dirty = true;
	if (res->status == REMOTE_OK) {
		r->status = RCPT_STATUS_DELIVERED;
		/* RFC 3461 5.2: a DSN-capable next hop got NOTIFY and
		 * reports itself; otherwise we say "relayed" (remote) or
		 * "delivered" (here). */
		if ((r->notify & SMTP_NOTIFY_SUCCESS) != 0 &&
		    r->kind == RCPT_KIND_LOCAL)
			msg->note[i] = NOTE_DELIVERED;
		else if ((r->notify & SMTP_NOTIFY_SUCCESS) != 0 &&
		    res->relayed)
			msg->note[i] = NOTE_RELAYED;
		else if ((r->notify & SMTP_NOTIFY_SUCCESS) != 0)
			/* Nothing from us: the file must say so, or a
			 * restart takes the notice as owed (scheduler_add). */
			r->flags |= RCPT_FLAG_NOTIFIED;
		/* issue 6: metrics */
		delivery_metrics_delivered(r->kind == RCPT_KIND_LOCAL,
		    now > sched_arrival(msg) ? now - sched_arrival(msg) : 0);
		s->stats.delivered++;
		sched_log(msg, r, res->relay, "sent");
		return;
	}
	if (res->status == REMOTE_PERM ||
	    now >= sched_arrival(msg) + c->queue_lifetime) {
		if (res->status != REMOTE_PERM) {
			char why[1200];

			/* Say why we gave up, keeping the last reply. */
			snprintf(why, sizeof(why), "%s (gave up after %u "
			    "attempts: queue_lifetime)", res->reply,
			    r->attempts);
			strlcpy(r->last_reply, why, sizeof(r->last_reply));
		}
		r->status = RCPT_STATUS_FAILED;
		s->stats.failed++;
		sched_log(msg, r, res->relay, "bounced");
		return;
	}
	r->next_attempt = now + scheduler_backoff(c->retry_initial,
	    c->retry_max, r->attempts);
	s->stats.deferred++;
	sched_log(msg, r, res->relay, "deferred");
}

/* ---- worker side ---- */

static void *
sched_worker(void *arg)
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

		job->run(job);

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

static void
sched_job_free(struct sched_job *job)
{
	if (job->env != NULL) {
		envelope_free(job->env);
		free(job->env);
	}
	free(job->hostname);
	free(job->idx);
	free(job->res);
	free(job);
}

static struct sched_job *
sched_job_new(struct sched_msg *msg, sched_job_fn run, sched_job_fn done)
{
	struct sched_job *job = xcalloc(1, sizeof(*job));
	const struct conf *c = msg->s->conf;

	job->msg = msg;
	job->run = run;
	job->done = done;
	job->hostname = xstrdup(c->hostname);
	job->bounce_size_limit = c->bounce_size_limit;
	job->lifetime = c->queue_lifetime;
	job->now = sched_now();
	return job;
}

static void
sched_job_submit(struct scheduler *s, struct sched_job *job)
{
	pthread_mutex_lock(&s->mtx);
	TAILQ_INSERT_TAIL(&s->jobs, job, entry);
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mtx);
}

static void
sched_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	struct sched_jobs done;
	struct sched_job *job;

	(void)fd;
	(void)what;
	TAILQ_INIT(&done);
	pthread_mutex_lock(&s->mtx);
	TAILQ_CONCAT(&done, &s->done, entry);
	pthread_mutex_unlock(&s->mtx);
	while ((job = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, job, entry);
		job->done(job);
		sched_job_free(job);
	}
}

/* ---- SCAN: facts about the content that outbound delivery needs ---- */

/*
 * Scan msg's content if it is at most max octets. Returns 1 when scanned
 * (or failed: *error_r set), 0 when larger than max (nothing done).
 */
static int
sched_scan_file(struct sched_msg *msg, uint64_t max, int *error_r)
{
	struct content_scan sc;
	struct spool_reader *rd;
	const char *error, *data;
	size_t len;
	int r;

	*error_r = 0;
	content_scan_init(&sc);
	if ((rd = spool_reader_open(msg->s->sp, msg->id, &error)) == NULL) {
		*error_r = errno;
		return 1;
	}
	if (spool_reader_size(rd) > max) {
		spool_reader_close(rd);
		return 0;
	}
	while ((r = spool_reader_next(rd, &data, &len)) == 1)
		content_scan_feed(&sc, data, len);
	if (r == -1)
		*error_r = errno;
	content_scan_finish(&sc);
	spool_reader_close(rd);
	msg->eight_bit = sc.eight_bit;
	msg->longest_line = sc.longest;
	msg->hops = sc.hops;
	return 1;
}

static void
sched_scan_run(struct sched_job *job)
{
	(void)sched_scan_file(job->msg, UINT64_MAX, &job->error);
}

/*
 * Recipients due now that this round cannot try (the queue file cannot
 * be read, or is corrupt and cannot be moved away) are deferred like a
 * failed attempt (back-off, lifetime): else the round would end with
 * them still due, and the timer would start it again at once, for ever.
 */
static void
sched_defer_due(struct sched_msg *msg, const char *reply, bool remote_only)
{
	struct remote_result res;
	uint64_t now = sched_now();
	size_t i;

	memset(&res, 0, sizeof(res));
	res.status = REMOTE_TEMP;
	strlcpy(res.reply, reply, sizeof(res.reply));
	for (i = 0; i < msg->env.nrcpts; i++) {
		const struct envelope_rcpt *r = &msg->env.rcpts[i];

		if (r->status == RCPT_STATUS_PENDING &&
		    r->next_attempt <= now &&
		    (!remote_only || lmtp_via_client(msg->s->conf, r)))
			sched_apply(msg, i, &res);
	}
}

static void
sched_scan_done(struct sched_job *job)
{
	struct sched_msg *msg = job->msg;
	const char *why;
	char eb[128], reply[256];

	if (job->error == EBADMSG)
		msg->corrupt = true;
	else if (job->error != 0) {
		why = strerror_r(job->error, eb, sizeof(eb));
		log_err("delivery: error queue=%s cannot read queue file: %s",
		    msg->id, why);
		/* Remote delivery cannot start unscanned. */
		snprintf(reply, sizeof(reply), "451 4.3.0 cannot read queue "
		    "file: %s", why);
		sched_defer_due(msg, reply, true);
	} else
		msg->scanned = true;
	sched_advance(msg);
}

/*
 * Interim WRITE: a part of a remote batch delivered (or failed for good)
 * while the rest goes on, perhaps for minutes: its states go to the
 * queue file now, from a copy, so that a crash meanwhile does not send
 * it again. The round's WRITE phase comes after (inflight holds it).
 */
static void
sched_interim_run(struct sched_job *job)
{
	if (spool_update_rcpts(job->msg->s->sp, job->msg->id, job->env) == -1)
		job->error = errno;
}

static void sched_interim_write(struct sched_msg *msg);

static void
sched_interim_done(struct sched_job *job)
{
	struct sched_msg *msg = job->msg;

	msg->interim = false;
	msg->inflight--;
	if (msg->s->closing)
		return;
	if (msg->interim_again) {
		msg->interim_again = false;
		sched_interim_write(msg);
		return;
	}
	sched_advance(msg);
}

static void
sched_interim_write(struct sched_msg *msg)
{
	struct sched_job *job;

	if (msg->interim) {
		msg->interim_again = true;
		return;
	}
	job = sched_job_new(msg, sched_interim_run, sched_interim_done);
	job->env = xmalloc(sizeof(*job->env));
	envelope_copy(job->env, &msg->env);
	msg->interim = true;
	msg->inflight++;
	sched_job_submit(msg->s, job);
}

/* ---- DELIVER: local recipients on a worker ---- */

static void
sched_local_run(struct sched_job *job)
{
	struct sched_msg *msg = job->msg;
	size_t k;

	for (k = 0; k < job->n; k++) {
		const struct envelope_rcpt *r = &msg->env.rcpts[job->idx[k]];
		struct remote_result *res = &job->res[k];
		bool permanent = false;

		if (r->mailbox == NULL) {
			res->status = REMOTE_PERM;
			strlcpy(res->reply, "554 5.3.5 local recipient "
			    "without a Maildir", sizeof(res->reply));
			continue;
		}
		if (maildir_deliver(msg->s->sp, msg->id, msg->env.sender,
		    r->mailbox, job->hostname, res->reply, sizeof(res->reply),
		    &permanent) == 0) {
			res->status = REMOTE_OK;
			strlcpy(res->reply, "250 2.0.0 delivered to Maildir",
			    sizeof(res->reply));
			continue;
		}
		if (errno == EBADMSG) {
			/* No retry can fix a corrupt queue file. */
			job->error = EBADMSG;
			job->n = k;
			return;
		}
		res->status = permanent ? REMOTE_PERM : REMOTE_TEMP;
	}
}

static void
sched_local_done(struct sched_job *job)
{
	struct sched_msg *msg = job->msg;
	bool final = false;
	size_t k;

	for (k = 0; k < job->n; k++) {
		sched_apply(msg, job->idx[k], &job->res[k]);
		if (job->res[k].status != REMOTE_TEMP)
			final = true;
	}
	if (job->error == EBADMSG)
		msg->corrupt = true;
	msg->inflight--;
	/* Remote delivery goes on: record these now (interim WRITE). */
	if (final && msg->inflight > 0 && !msg->s->closing)
		sched_interim_write(msg);
	if (msg->s->closing) {
		/*
		 * Shutting down: no more rounds, but what was delivered must
		 * be on record, or the next start delivers it again. On the
		 * loop thread, which only tears down now.
		 */
		if (msg->dirty && spool_update_rcpts(msg->s->sp, msg->id,
		    &msg->env) == 0)
			msg->dirty = false;
		return;
	}
	sched_advance(msg);
}

static void
sched_remote_part(struct remote_batch *b, const size_t *k, size_t n,
    void *arg)
{
	struct sched_msg *msg = arg;
	bool final = false;
	size_t j;

	if (msg->s->closing)
		return;
	for (j = 0; j < n; j++) {
		struct remote_result *res = &b->res[k[j]];

		sched_apply(msg, b->idx[k[j]], res);
		res->taken = true;
		if (res->status != REMOTE_TEMP)
			final = true;
	}
	/* A deferral lost in a crash costs nothing; a delivery would be
	 * repeated. */
	if (final)
		sched_interim_write(msg);
}

static void
sched_remote_done(struct remote_batch *b, void *arg)
{
	struct sched_msg *msg = arg;
	size_t k;

	if (msg->s->closing) {
		/*
		 * Shutting down: the groups interrupted come back TEMP and
		 * are tried again at the next start, but what a finished
		 * group delivered (or that failed for good) goes on record
		 * (scheduler_free writes it), or it is sent again.
		 */
		for (k = 0; k < b->n; k++)
			if (b->res[k].status != REMOTE_TEMP &&
			    !b->res[k].taken)
				sched_apply(msg, b->idx[k], &b->res[k]);
		free(b->idx);
		free(b->res);
		b->idx = NULL;
		b->res = NULL;
		msg->inflight--;
		return;
	}
	for (k = 0; k < b->n; k++)
		if (!b->res[k].taken)
			sched_apply(msg, b->idx[k], &b->res[k]);
	if (b->corrupt)
		msg->corrupt = true;
	free(b->idx);
	free(b->res);
	b->idx = NULL;
	b->res = NULL;
	msg->inflight--;
	sched_advance(msg);
}

/* ---- WRITE and FINAL: the queue file ---- */

static void
sched_write_run(struct sched_job *job)
{
	struct sched_msg *msg = job->msg;
	const struct spool *sp = msg->s->sp;

	if (job->remove) {
		if (spool_remove(sp, msg->id) == -1)
			job->error = errno;
		return;
	}
	if (spool_update_rcpts(sp, msg->id, &msg->env) == -1)
		job->error = errno;
}

static void
sched_write_done(struct sched_job *job)
{
	struct sched_msg *msg = job->msg;
	char eb[128];

	if (job->error == 0) {
		msg->dirty = false;
		if (job->remove) {
			msg->removed = true;
			log_info("delivery: removed queue=%s (every "
			    "recipient done)", msg->id);
		}
	} else if (job->error == EBADMSG)
		msg->corrupt = true;
	else
		log_err("delivery: error queue=%s cannot %s queue file: %s",
		    msg->id, job->remove ? "remove" : "update",
		    strerror_r(job->error, eb, sizeof(eb)));
	sched_advance(msg);
}

/* ---- NOTIFY: which reports, composed on a worker ---- */

static bool
sched_report_wanted(const struct envelope_rcpt *r, unsigned int bit)
{
	if ((r->notify & SMTP_NOTIFY_NEVER) != 0)
		return false;
	/* RFC 3461 4.1: without NOTIFY, FAILURE (and DELAY at our
	 * discretion) are the default. */
	if (r->notify == 0)
		return bit != SMTP_NOTIFY_SUCCESS;
	return (r->notify & bit) != 0;
}

/* Where reports about msg go: its sender, or double_bounce for <>. */
static char *
sched_report_rcpt(const struct sched_msg *msg)
{
	const struct conf *c = msg->s->conf;

	if (msg->env.sender != NULL && msg->env.sender[0] != '\0')
		return xstrdup(msg->env.sender);
	if (strchr(c->double_bounce, '@') != NULL)
		return xstrdup(c->double_bounce);
	return xasprintf("%s@%s", c->double_bounce, c->hostname);
}

static void
sched_report_add(struct sched_msg *msg, enum dsn_action action,
    uint32_t flag, size_t i)
{
	struct sched_report *rep = NULL;
	size_t k;

	for (k = 0; k < msg->nreports; k++)
		if (msg->reports[k].action == action)
			rep = &msg->reports[k];
	if (rep == NULL) {
		msg->reports = xrealloc(msg->reports, (msg->nreports + 1) *
		    sizeof(*msg->reports));
		rep = &msg->reports[msg->nreports++];
		memset(rep, 0, sizeof(*rep));
		rep->action = action;
		rep->flag = flag;
		rep->rcpt = sched_report_rcpt(msg);
	}
	rep->idx = xrealloc(rep->idx, (rep->n + 1) * sizeof(*rep->idx));
	rep->idx[rep->n++] = i;
}

/* Was r addressed to addr (as given, or after aliases)? */
static bool
sched_is_addr(const struct envelope_rcpt *r, const char *addr)
{
	return (r->orig != NULL && strcasecmp(r->orig, addr) == 0) ||
	    (r->addr != NULL && strcasecmp(r->addr, addr) == 0);
}

/*
 * Decide the reports this round owes. Recipients for which no report is
 * wanted get their flag at once (nothing to wait for).
 */
static void
sched_reports_plan(struct sched_msg *msg)
{
	const struct conf *c = msg->s->conf;
	uint64_t now = sched_now();
	bool null_sender = msg->env.sender == NULL ||
	    msg->env.sender[0] == '\0';
	char *dbl = NULL;	/* where a double bounce goes */
	size_t i;

	if (null_sender && c->double_bounce != NULL)
		dbl = sched_report_rcpt(msg);
	for (i = 0; i < msg->env.nrcpts; i++) {
		struct envelope_rcpt *r = &msg->env.rcpts[i];

		if (r->status == RCPT_STATUS_FAILED &&
		    (r->flags & RCPT_FLAG_BOUNCED) == 0) {
			if (null_sender && (dbl == NULL ||
			    sched_is_addr(r, dbl))) {
				char addr[512];

				/* RFC 5321 6.2: never a report about a
				 * report; and a double bounce that fails
				 * is not reported to the address that just
				 * refused it (it would loop). */
				log_info("delivery: rcpt queue=%s to=<%s> "
				    "status=dropped (undeliverable mail from "
				    "<>: %s)", msg->id,
				    log_escape_word(addr, sizeof(addr),
				    r->addr, strlen(r->addr)), dbl == NULL ?
				    "no double_bounce address" :
				    "a failed double bounce");
				r->flags |= RCPT_FLAG_BOUNCED;
				msg->dirty = true;
			} else if (!null_sender && !sched_report_wanted(r,
			    SMTP_NOTIFY_FAILURE)) {
				r->flags |= RCPT_FLAG_BOUNCED;
				msg->dirty = true;
			} else
				sched_report_add(msg, DSN_FAILED,
				    RCPT_FLAG_BOUNCED, i);
		} else if (r->status == RCPT_STATUS_PENDING &&
		    (r->flags & RCPT_FLAG_DELAYED) == 0 &&
		    c->delay_warning > 0 && r->attempts > 0 &&
		    now >= sched_arrival(msg) + c->delay_warning &&
		    !null_sender && sched_report_wanted(r, SMTP_NOTIFY_DELAY))
			sched_report_add(msg, DSN_DELAYED, RCPT_FLAG_DELAYED,
			    i);
		else if (r->status == RCPT_STATUS_DELIVERED &&
		    msg->note[i] != NOTE_NONE &&
		    (r->flags & RCPT_FLAG_NOTIFIED) == 0 && !null_sender)
			sched_report_add(msg, msg->note[i] == NOTE_RELAYED ?
			    DSN_RELAYED : DSN_DELIVERED, RCPT_FLAG_NOTIFIED,
			    i);
	}
	free(dbl);
}

static int
sched_source_next(void *arg, const char **data, size_t *len)
{
	return spool_reader_next(arg, data, len);
}

static void
sched_compose_run(struct sched_job *job)
{
	struct sched_msg *msg = job->msg;
	const struct envelope *env = &msg->env;
	size_t k, i;

	for (k = 0; k < msg->nreports; k++) {
		struct sched_report *rep = &msg->reports[k];
		struct dsn_rcpt *dr;
		struct dsn_report dreport;
		struct dsn_source src;
		struct spool_reader *rd;
		const char *error;
		char (*status)[16];
		int r;

		dr = xcalloc(rep->n, sizeof(*dr));
		status = xcalloc(rep->n, sizeof(*status));
		for (i = 0; i < rep->n; i++) {
			const struct envelope_rcpt *er = &env->rcpts[rep->idx[i]];

			sched_status_code(er->last_reply, status[i],
			    sizeof(status[i]));
			dr[i].addr = er->addr;
			dr[i].orcpt = er->orcpt;
			dr[i].action = rep->action;
			dr[i].status = status[i];
			dr[i].remote_mta = er->kind == RCPT_KIND_REMOTE &&
			    er->remote_mta[0] != '\0' ? er->remote_mta : NULL;
			dr[i].diagnostic = er->last_reply[0] != '\0' &&
			    (rep->action == DSN_FAILED ||
			    rep->action == DSN_DELAYED ||
			    er->kind == RCPT_KIND_REMOTE) ?
			    er->last_reply : NULL;
			dr[i].last_attempt = er->last_attempt;
			dr[i].will_retry_until = rep->action == DSN_DELAYED ?
			    (env->arrival != 0 ? env->arrival : msg->added) +
			    job->lifetime : 0;
		}
		memset(&dreport, 0, sizeof(dreport));
		dreport.hostname = job->hostname;
		dreport.sender = env->sender != NULL ? env->sender : "";
		dreport.queue_id = msg->id;
		dreport.envid = env->envid;
		dreport.arrival = env->arrival != 0 ? env->arrival :
		    msg->added;
		dreport.now = job->now;
		dreport.ret_full = env->ret == SMTP_RET_FULL;
		dreport.size_limit = job->bounce_size_limit;
		dreport.smtputf8 = env->smtputf8;
		dreport.rcpts = dr;
		dreport.nrcpts = rep->n;
		dreport.to = rep->rcpt;		/* the sender, or double_bounce */
		buf_init(&rep->text, dsn_size_hint(&dreport) +
		    SCHED_DSN_MAX_EXTRA);
		if ((rd = spool_reader_open(msg->s->sp, msg->id, &error)) ==
		    NULL)
			r = -1;
		else {
			src.next = sched_source_next;
			src.arg = rd;
			r = dsn_compose(&dreport, &src, &rep->text,
			    &rep->eight_bit);
		}
		if (r == -1 && job->error == 0)
			job->error = errno != 0 ? errno : EIO;
		spool_reader_close(rd);
		rep->smtputf8 = env->smtputf8;
		free(dr);
		free(status);
	}
}

static void
sched_reports_free(struct sched_msg *msg)
{
	size_t k;

	for (k = 0; k < msg->nreports; k++) {
		buf_free(&msg->reports[k].text);
		free(msg->reports[k].idx);
		free(msg->reports[k].rcpt);
	}
	free(msg->reports);
	msg->reports = NULL;
	msg->nreports = 0;
	msg->reports_done = 0;
}

static void
sched_compose_done(struct sched_job *job)
{
	struct sched_msg *msg = job->msg;
	char eb[128];

	if (job->error != 0) {
		if (job->error == EBADMSG)
			msg->corrupt = true;
		else
			log_err("delivery: error queue=%s cannot compose delivery "
			    "report: %s (retried later)", msg->id,
			    strerror_r(job->error, eb, sizeof(eb)));
		sched_reports_free(msg);
	}
	sched_advance(msg);
}

/* ---- INJECT: each report becomes a queued message ---- */

static void sched_inject_next(struct sched_msg *msg);

static void
sched_inject_committed(void *arg, uint64_t cookie, const char *id, int error)
{
	struct sched_msg *msg = arg;
	struct sched_report *rep = &msg->reports[cookie];
	static const char *const names[] = {
		[DSN_FAILED] = "failure", [DSN_DELAYED] = "delay",
		[DSN_DELIVERED] = "success", [DSN_RELAYED] = "relayed",
		[DSN_EXPANDED] = "expanded",
	};
	char eb[128], to[512];
	size_t i;

	log_escape(to, sizeof(to), rep->rcpt, strlen(rep->rcpt));
	if (error == 0) {
		char mid[256], esc[300];

		/* issue 6: docs/logging.md, "delivery: report" and the
		 * report's own "delivery: queued". */
		dsn_find_msgid(rep->text.data, rep->text.len, mid,
		    sizeof(mid));
		log_escape_word(to, sizeof(to), rep->rcpt, strlen(rep->rcpt));
		log_info("delivery: report queue=%s report_queue=%s report=%s "
		    "to=<%s>", msg->id, id, names[rep->action], to);
		log_info("delivery: queued queue=%s report_of=%s from=<> "
		    "size=%zu nrcpt=%zu%s%s", id, msg->id, rep->text.len,
		    rep->env.nrcpts, mid[0] != '\0' ? " message-id=" : "",
		    log_escape_word(esc, sizeof(esc), mid, strlen(mid)));
	}
	if (msg->s->closing) {
		/* Durable or not, start-up recovery takes it from here: a
		 * queued report is found in queue/, and the flag not
		 * written means at worst a second report. */
		envelope_free(&rep->env);
		return;
	}
	if (error != 0) {
		log_err("delivery: error queue=%s cannot queue %s report to "
		    "<%s>: %s (retried later)", msg->id, names[rep->action], to,
		    strerror_r(error, eb, sizeof(eb)));
	} else {
		rep->queued = true;
		for (i = 0; i < rep->n; i++)
			msg->env.rcpts[rep->idx[i]].flags |= rep->flag;
		msg->dirty = true;
		/* Durable: deliver it like any queued message. */
		scheduler_add(msg->s, id, &rep->env);
	}
	envelope_free(&rep->env);
	msg->reports_done++;
	sched_inject_next(msg);
}

static void
sched_inject_opened(void *arg, uint64_t cookie, struct spool_writer *w,
    int error)
{
	struct sched_msg *msg = arg;
	struct sched_report *rep = &msg->reports[cookie];
	struct scheduler *s = msg->s;
	struct envelope *benv = &rep->env;
	char eb[128];

	if (s->closing) {
		spool_writer_abort(w);
		return;
	}
	if (error != 0) {
		log_err("delivery: error queue=%s cannot create a report: %s "
		    "(retried later)", msg->id,
		    strerror_r(error, eb, sizeof(eb)));
		msg->reports_done++;
		sched_inject_next(msg);
		return;
	}
	envelope_init(benv);
	benv->sender = xstrdup("");
	benv->body = rep->eight_bit ? SMTP_BODY_8BITMIME : SMTP_BODY_UNSPEC;
	benv->smtputf8 = rep->smtputf8;
	benv->client_addr = xstrdup("127.0.0.1");
	benv->helo = xstrdup(s->conf->hostname);
	benv->proto = xstrdup("LOCAL");
	benv->arrival = sched_now();
	if (s->hooks.resolve == NULL ||
	    s->hooks.resolve(s->hooks.arg, rep->rcpt, benv) == -1 ||
	    benv->nrcpts == 0) {
		char to[512];

		log_warn("delivery: report dropped queue=%s to=<%s> (the "
		    "address cannot receive mail)", msg->id,
		    log_escape_word(to, sizeof(to),
		    rep->rcpt, strlen(rep->rcpt)));
		spool_writer_abort(w);
		envelope_free(benv);
		/* Nobody to tell: the report is done with. */
		rep->queued = true;
		for (size_t i = 0; i < rep->n; i++)
			msg->env.rcpts[rep->idx[i]].flags |= rep->flag;
		msg->dirty = true;
		msg->reports_done++;
		sched_inject_next(msg);
		return;
	}
	if (spool_writer_write(w, rep->text.data, rep->text.len) == -1) {
		log_err("delivery: error queue=%s cannot write a report: %s",
		    msg->id, strerror_r(errno, eb, sizeof(eb)));
		spool_writer_abort(w);
		envelope_free(benv);
		msg->reports_done++;
		sched_inject_next(msg);
		return;
	}
	spool_writer_commit(w, benv, sched_inject_committed, msg, cookie);
}

static void
sched_inject_next(struct sched_msg *msg)
{
	struct scheduler *s = msg->s;
	size_t k = msg->reports_done;

	if (k == msg->nreports) {
		sched_reports_free(msg);
		sched_advance(msg);
		return;
	}
	spool_writer_open(s->sp, sched_inject_opened, msg, k);
}

/* ---- the round ---- */

static void
sched_quarantine(struct sched_msg *msg)
{
	char eb[128];

	/*
	 * The queue file itself is bad (it passed recovery, so it went bad
	 * since): no retry can fix it and no recipient can get it. Into
	 * corrupt/ for a human. Best effort for the states: they tell who
	 * already has it. On the loop: this is rare, and the file is small
	 * or broken.
	 */
	if (msg->dirty)
		(void)spool_update_rcpts(msg->s->sp, msg->id, &msg->env);
	if (spool_quarantine(msg->s->sp, msg->id,
	    "content unreadable at delivery") == -1) {
		log_err("delivery: error queue=%s queue file is corrupt and "
		    "stays in queue/: %s", msg->id,
		    strerror_r(errno, eb, sizeof(eb)));
		return;
	}
	msg->removed = true;
	log_warn("delivery: corrupt queue=%s status=corrupt (queue file "
	    "moved to corrupt/, pending recipients not delivered: content "
	    "unreadable at delivery)", msg->id);
}

static void
sched_msg_free(struct sched_msg *msg)
{
	if (msg->timer != NULL)
		event_free(msg->timer);
	sched_reports_free(msg);
	envelope_free(&msg->env);
	free(msg->note);
	free(msg);
}

/* Arm the timer for the earliest pending recipient. */
static void
sched_arm(struct sched_msg *msg)
{
	struct scheduler *s = msg->s;
	struct timeval tv = { 0, 0 };
	uint64_t now = sched_now(), next = UINT64_MAX, retry;
	size_t i;

	for (i = 0; i < msg->env.nrcpts; i++) {
		const struct envelope_rcpt *r = &msg->env.rcpts[i];

		if (r->status == RCPT_STATUS_PENDING && r->next_attempt < next)
			next = r->next_attempt;
	}
	/* Nothing pending but still here (the queue file could not be
	 * updated or removed, or a report could not be queued): try again
	 * after the first retry delay. */
	retry = now + s->conf->retry_initial;
	if (next == UINT64_MAX || (msg->dirty && next > retry))
		next = retry;
	for (i = 0; i < msg->nreports; i++)
		if (next > retry)
			next = retry;
	if (next > now)
		tv.tv_sec = (time_t)(next - now);
	evtimer_add(msg->timer, &tv);
}

/* Does the message still owe anything? */
static bool
sched_msg_finished(const struct sched_msg *msg)
{
	size_t i;

	for (i = 0; i < msg->env.nrcpts; i++) {
		const struct envelope_rcpt *r = &msg->env.rcpts[i];

		if (r->status == RCPT_STATUS_PENDING)
			return false;
		if (r->status == RCPT_STATUS_FAILED &&
		    (r->flags & RCPT_FLAG_BOUNCED) == 0)
			return false;
		if (r->status == RCPT_STATUS_DELIVERED &&
		    msg->note[i] != NOTE_NONE &&
		    (r->flags & RCPT_FLAG_NOTIFIED) == 0 &&
		    msg->env.sender != NULL && msg->env.sender[0] != '\0')
			return false;
	}
	return true;
}

static void
sched_round_end(struct sched_msg *msg)
{
	struct scheduler *s = msg->s;

	msg->phase = PHASE_IDLE;
	if (msg->admin != NULL && msg->admin_running) {
		/* A bounce's round: the states are written (or not). */
		msg->admin_running = false;
		sched_admin_finish(msg, msg->dirty && !msg->removed ? EIO : 0,
		    "the new states could not be written (retried)");
	}
	if (msg->removed) {
		/* A command that waited for this round finds it gone. */
		if (msg->admin != NULL)
			sched_admin_finish(msg, ENOENT, "left the queue "
			    "meanwhile (delivered, bounced or corrupt)");
		TAILQ_REMOVE(&s->msgs, msg, entry);
		s->stats.queued--;
		sched_msg_free(msg);
		return;
	}
	if (msg->admin != NULL) {
		/* A queue command waited for this round to end. */
		sched_admin_start(msg);
		return;
	}
	if (msg->held) {
		msg->flush = false;
		return;
	}
	if (msg->flush) {
		size_t i;

		/* scheduler_flush() came during the round: retry now. */
		msg->flush = false;
		for (i = 0; i < msg->env.nrcpts; i++)
			if (msg->env.rcpts[i].status == RCPT_STATUS_PENDING)
				msg->env.rcpts[i].next_attempt = 0;
		sched_round(msg);
		return;
	}
	sched_arm(msg);
}

/* Start the DELIVER phase: local job, remote batch, or nothing. */
static void
sched_deliver(struct sched_msg *msg)
{
	struct scheduler *s = msg->s;
	const struct conf *c = s->conf;
	struct sched_job *job = NULL;
	struct remote_batch *b = &msg->batch;
	uint64_t now = sched_now();
	size_t i, nremote = 0;

	msg->phase = PHASE_DELIVER;
	/* Held while dispatching: a part may finish inside remote_submit
	 * (a destination that backs off defers at once). */
	msg->inflight++;
	memset(b, 0, sizeof(*b));
	for (i = 0; i < msg->env.nrcpts; i++) {
		struct envelope_rcpt *r = &msg->env.rcpts[i];

		if (r->status != RCPT_STATUS_PENDING || r->next_attempt > now)
			continue;
		/* Remote, or local with `deliver lmtp` (lmtp.h). */
		if (lmtp_via_client(c, r)) {
			if (r->kind == RCPT_KIND_REMOTE &&
			    msg->hops > c->max_hops) {
				struct remote_result res;

				/* RFC 5321 6.3: a loop; never send it on. */
				memset(&res, 0, sizeof(res));
				res.status = REMOTE_PERM;
				snprintf(res.reply, sizeof(res.reply), "554 "
				    "5.4.6 too many hops: %u Received: header "
				    "fields, at most %llu (mail loop?)",
				    msg->hops,
				    (unsigned long long)c->max_hops);
				sched_apply(msg, i, &res);
				continue;
			}
			b->idx = xrealloc(b->idx, (nremote + 1) *
			    sizeof(*b->idx));
			b->idx[nremote++] = i;
			continue;
		}
		if (job == NULL)
			job = sched_job_new(msg, sched_local_run,
			    sched_local_done);
		job->idx = xrealloc(job->idx, (job->n + 1) *
		    sizeof(*job->idx));
		job->idx[job->n++] = i;
	}
	if (job != NULL) {
		job->res = xcalloc(job->n, sizeof(*job->res));
		msg->inflight++;
		sched_job_submit(s, job);
	}
	if (nremote > 0) {
		strlcpy(b->id, msg->id, sizeof(b->id));
		b->env = &msg->env;
		b->n = nremote;
		b->res = xcalloc(nremote, sizeof(*b->res));
		b->eight_bit = msg->eight_bit;
		b->longest_line = msg->longest_line;
		b->done = sched_remote_done;
		b->part_done = sched_remote_part;
		b->arg = msg;
		msg->inflight++;
		remote_submit(s->remote, b);
	}
	if (--msg->inflight == 0)
		sched_advance(msg);
}

/*
 * The phase machine: called when the current phase has finished; starts
 * the next one, or ends the round.
 */
static void
sched_advance(struct sched_msg *msg)
{
	struct scheduler *s = msg->s;
	struct sched_job *job;

	if (s->closing)
		return;

	if (msg->corrupt && msg->inflight == 0 && !msg->removed) {
		sched_quarantine(msg);
		if (!msg->removed) {
			msg->corrupt = false;	/* retried next round */
			sched_defer_due(msg, "451 4.3.0 queue file is corrupt "
			    "and cannot be moved to corrupt/", false);
		}
		sched_round_end(msg);
		return;
	}
	switch (msg->phase) {
	case PHASE_SCAN:
		/* Unscanned (unreadable, logged): the remote recipients were
		 * deferred, the local ones go on. */
		sched_deliver(msg);
		return;
	case PHASE_DELIVER:
		if (msg->inflight > 0)
			return;
		/* Everything delivered and nothing to report: the unlink
		 * is the whole update (a crash that loses it delivers
		 * again: twice, never zero times). */
		sched_reports_plan(msg);
		if (msg->nreports == 0 && sched_msg_finished(msg)) {
			msg->phase = PHASE_FINAL;
			job = sched_job_new(msg, sched_write_run,
			    sched_write_done);
			job->remove = true;
			sched_job_submit(s, job);
			return;
		}
		if (msg->dirty) {
			msg->phase = PHASE_WRITE;
			sched_job_submit(s, sched_job_new(msg, sched_write_run,
			    sched_write_done));
			return;
		}
		/* FALLTHROUGH */
	case PHASE_WRITE:
		if (msg->dirty) {
			/* The states are not durable: no report may go
			 * out on their word. Retry later. */
			sched_reports_free(msg);
			sched_round_end(msg);
			return;
		}
		if (msg->nreports > 0) {
			msg->phase = PHASE_NOTIFY;
			sched_job_submit(s, sched_job_new(msg,
			    sched_compose_run, sched_compose_done));
			return;
		}
		sched_round_end(msg);
		return;
	case PHASE_NOTIFY:
		if (msg->nreports == 0) {	/* composing failed */
			sched_round_end(msg);
			return;
		}
		msg->phase = PHASE_INJECT;
		msg->reports_done = 0;
		sched_inject_next(msg);
		return;
	case PHASE_INJECT:
		msg->phase = PHASE_FINAL;
		job = sched_job_new(msg, sched_write_run, sched_write_done);
		job->remove = sched_msg_finished(msg);
		if (!job->remove && !msg->dirty) {
			sched_job_free(job);
			sched_round_end(msg);
			return;
		}
		sched_job_submit(s, job);
		return;
	case PHASE_FINAL:
	case PHASE_IDLE:
		sched_round_end(msg);
		return;
	case PHASE_ADMIN:
		/* Only sched_admin_done() ends this phase. */
		return;
	}
}

/* Start a round now (or after the one running). */
static void
sched_round(struct sched_msg *msg)
{
	uint64_t now = sched_now();
	bool remote_due = false;
	size_t i;

	if (msg->s->closing || msg->held)
		return;
	if (msg->phase != PHASE_IDLE) {
		msg->flush = true;
		return;
	}
	evtimer_del(msg->timer);
	for (i = 0; i < msg->env.nrcpts; i++) {
		const struct envelope_rcpt *r = &msg->env.rcpts[i];

		/* A discarded recipient needs no facts about the content. */
		if (r->status == RCPT_STATUS_PENDING &&
		    r->next_attempt <= now &&
		    lmtp_via_client(msg->s->conf, r) &&
		    !remote_discards(msg->s->conf, r))
			remote_due = true;
	}
	if (remote_due && !msg->scanned) {
		struct sched_job *job;
		bool fresh = msg->fresh;

		msg->fresh = false;
		msg->phase = PHASE_SCAN;
		job = sched_job_new(msg, sched_scan_run, sched_scan_done);
		/*
		 * Just received and small: scanned here, as remote.c reads
		 * such a file on the loop (it was written moments ago and
		 * comes from the page cache); a worker costs two thread
		 * switches per message. Recovered or large ones go to a
		 * worker.
		 */
		if (fresh && sched_scan_file(msg, SCHED_SCAN_INLINE_MAX,
		    &job->error) == 1) {
			job->done(job);
			sched_job_free(job);
			return;
		}
		sched_job_submit(msg->s, job);
		return;
	}
	sched_deliver(msg);
}

static void
sched_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sched_round(arg);
}

/* ---- API ---- */

struct scheduler *
scheduler_new(struct event_base *base, struct spool *sp,
    const struct conf *c, unsigned int nworkers, struct dns *dns,
    const struct scheduler_hooks *hooks)
{
	struct scheduler *s;
	unsigned int i;
	int r;

	s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->sp = sp;
	s->conf = c;
	if (hooks != NULL)
		s->hooks = *hooks;
	TAILQ_INIT(&s->jobs);
	TAILQ_INIT(&s->done);
	TAILQ_INIT(&s->msgs);
	if (pthread_mutex_init(&s->mtx, NULL) != 0 ||
	    pthread_cond_init(&s->cv, NULL) != 0)
		fatalx("scheduler: cannot create a mutex");
	s->done_ev = event_new(base, -1, 0, sched_done_cb, s);
	if (s->done_ev == NULL)
		fatalx("scheduler: event_new failed");
	s->remote = remote_new(base, sp, c, dns);

	s->nthreads = nworkers > 0 ? nworkers : 1;
	s->threads = xcalloc(s->nthreads, sizeof(*s->threads));
	for (i = 0; i < s->nthreads; i++)
		if ((r = pthread_create(&s->threads[i], NULL,
		    sched_worker, s)) != 0)
			fatalx("scheduler: pthread_create: %s", strerror(r));
	return s;
}

void
scheduler_set_conf(struct scheduler *s, const struct conf *c)
{
	s->conf = c;
	if (s->remote != NULL)
		remote_set_conf(s->remote, c);
}

static void sched_add(struct scheduler *, const char *,
    const struct envelope *, bool);

void
scheduler_add(struct scheduler *s, const char *id,
    const struct envelope *env)
{
	sched_add(s, id, env, false);
}

void
scheduler_add_new(struct scheduler *s, const char *id,
    const struct envelope *env)
{
	sched_add(s, id, env, true);
}

static void
sched_add(struct scheduler *s, const char *id, const struct envelope *env,
    bool fresh)
{
	struct sched_msg *msg;
	size_t i;

	msg = xcalloc(1, sizeof(*msg));
	msg->s = s;
	msg->fresh = fresh;
	if (strlcpy(msg->id, id, sizeof(msg->id)) >= sizeof(msg->id))
		fatalx("scheduler: queue id too long: %s", id);
	envelope_init(&msg->env);
	envelope_copy(&msg->env, env);
	/* Parsed and received envelopes always have these; be safe (a
	 * NULL sender is refused by every delivery as a 451). */
	for (i = 0; i < msg->env.nrcpts; i++)
		if (msg->env.rcpts[i].addr == NULL)
			msg->env.rcpts[i].addr = xstrdup("");
	msg->note = xcalloc(msg->env.nrcpts > 0 ? msg->env.nrcpts : 1, 1);
	msg->added = sched_now();
	/* A new or recovered message is tried now, whatever its recorded
	 * next attempt: a restart is a natural moment to flush. */
	for (i = 0; i < msg->env.nrcpts; i++) {
		const struct envelope_rcpt *r = &msg->env.rcpts[i];

		if (r->status == RCPT_STATUS_PENDING)
			msg->env.rcpts[i].next_attempt = 0;
		/* Delivered with a success notice owed and not queued (a
		 * crash between the state write and the notice; a peer
		 * with DSN gets the flag at once): owed still. */
		if (r->status == RCPT_STATUS_DELIVERED &&
		    (r->notify & SMTP_NOTIFY_SUCCESS) != 0 &&
		    (r->flags & RCPT_FLAG_NOTIFIED) == 0)
			msg->note[i] = r->kind == RCPT_KIND_LOCAL ?
			    NOTE_DELIVERED : NOTE_RELAYED;
	}
	msg->timer = evtimer_new(s->base, sched_timer_cb, msg);
	if (msg->timer == NULL)
		fatalx("scheduler: evtimer_new failed");
	TAILQ_INSERT_TAIL(&s->msgs, msg, entry);
	s->stats.queued++;
	/* On hold (`petrel queue hold`, recorded in the queue file): kept,
	 * never tried until released. */
	for (i = 0; i < msg->env.nrcpts; i++)
		if ((msg->env.rcpts[i].flags & RCPT_FLAG_HELD) != 0)
			msg->held = true;
	if (msg->held) {
		log_info("queue: held queue=%s (on hold since before the "
		    "start)", msg->id);
		return;
	}
	sched_round(msg);
}

void
scheduler_flush(struct scheduler *s)
{
	struct sched_msg *msg, *next;
	size_t i, n = 0;

	if (s->closing)
		return;
	remote_flush(s->remote);
	TAILQ_FOREACH_SAFE(msg, &s->msgs, entry, next) {
		if (msg->held)
			continue;	/* held mail waits for a release */
		n++;
		if (msg->phase != PHASE_IDLE) {
			msg->flush = true;
			continue;
		}
		for (i = 0; i < msg->env.nrcpts; i++)
			if (msg->env.rcpts[i].status == RCPT_STATUS_PENDING)
				msg->env.rcpts[i].next_attempt = 0;
		/* Through the timer: a round may free msg. */
		evtimer_del(msg->timer);
		{
			struct timeval tv = { 0, 0 };

			evtimer_add(msg->timer, &tv);
		}
	}
	log_info("scheduler: flush: %zu messages to retry now", n);
}

void
scheduler_stop(struct scheduler *s)
{
	if (s == NULL || s->closing)
		return;
	s->closing = true;
	/* Connections close; their batches complete unrecorded (the next
	 * start delivers those recipients again). */
	remote_free(s->remote);
	s->remote = NULL;
}

void
scheduler_free(struct scheduler *s)
{
	struct sched_job *job;
	struct sched_msg *msg;
	unsigned int i;

	if (s == NULL)
		return;
	scheduler_stop(s);
	pthread_mutex_lock(&s->mtx);
	s->stopping = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mtx);
	/* Running jobs finish; waiting ones stay in the queue files. */
	for (i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	free(s->threads);
	/* Finished jobs the loop has not seen: record their results (in
	 * closing mode nothing new starts from them). */
	sched_done_cb(-1, 0, s);

	while ((job = TAILQ_FIRST(&s->jobs)) != NULL) {
		TAILQ_REMOVE(&s->jobs, job, entry);
		sched_job_free(job);
	}
	while ((job = TAILQ_FIRST(&s->done)) != NULL) {
		TAILQ_REMOVE(&s->done, job, entry);
		sched_job_free(job);
	}
	while ((msg = TAILQ_FIRST(&s->msgs)) != NULL) {
		TAILQ_REMOVE(&s->msgs, msg, entry);
		if (msg->admin != NULL) {
			msg->admin_running = false;
			sched_admin_finish(msg, ESHUTDOWN,
			    "the daemon is stopping");
		}
		/*
		 * States applied but not written (a WRITE or FINAL job that
		 * never started, a batch cut short): record them now, or
		 * the next start delivers those recipients again. No worker
		 * is left, so the loop thread may touch the file.
		 */
		if (msg->dirty && !msg->removed &&
		    spool_update_rcpts(s->sp, msg->id, &msg->env) == -1 &&
		    errno != ENOENT) {
			char eb[128];

			log_err("delivery: error queue=%s cannot update queue "
			    "file at shutdown: %s", msg->id,
			    strerror_r(errno, eb, sizeof(eb)));
		}
		sched_msg_free(msg);
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

/* issue 6: metrics (the petrel_queue_* gauges). */
void
scheduler_get_queue(const struct scheduler *s, struct scheduler_queue *q)
{
	const struct sched_msg *msg;
	size_t i;

	memset(q, 0, sizeof(*q));
	TAILQ_FOREACH(msg, &s->msgs, entry) {
		if (msg->removed)
			continue;
		q->messages++;
		if (msg->held)
			q->held++;
		if (q->oldest_arrival == 0 ||
		    sched_arrival(msg) < q->oldest_arrival)
			q->oldest_arrival = sched_arrival(msg);
		for (i = 0; i < msg->env.nrcpts; i++)
			if (msg->env.rcpts[i].status == RCPT_STATUS_PENDING)
				q->recipients++;
	}
}

/* ---- queue commands (the control socket) ---- */

#define SCHED_ADMIN_REPLY	"554 5.0.0 delivery cancelled by the " \
				"administrator"

static const char *const sched_admin_names[] = {
	[SCHED_ADMIN_FLUSH] = "flush", [SCHED_ADMIN_DELETE] = "delete",
	[SCHED_ADMIN_HOLD] = "hold", [SCHED_ADMIN_RELEASE] = "release",
	[SCHED_ADMIN_BOUNCE] = "bounce",
};

/* One message fewer to wait for; the answer once none is left. */
static void
sched_admin_put(struct sched_admin *a)
{
	if (--a->outstanding > 0)
		return;
	a->cb(a->arg, a->cookie, &a->res);
	free(a);
}

static void
sched_admin_fail(struct sched_admin *a, const char *id, const char *why)
{
	a->res.failed++;
	if (a->res.error[0] == '\0')
		snprintf(a->res.error, sizeof(a->res.error), "%s: %s", id, why);
}

/* The command is done with msg: count it, detach it. */
static void
sched_admin_finish(struct sched_msg *msg, int error, const char *why)
{
	struct sched_admin *a = msg->admin;

	msg->admin = NULL;
	if (error == 0)
		a->res.done++;
	else
		sched_admin_fail(a, msg->id, why);
	sched_admin_put(a);
}

/* Is addr at domain (the part after the last '@', ASCII case)? */
static bool
sched_addr_in_domain(const char *addr, const char *domain)
{
	const char *at = addr != NULL ? strrchr(addr, '@') : NULL;

	return at != NULL && ascii_strcasecmp(at + 1, domain) == 0;
}

static bool
sched_admin_match(const struct sched_msg *msg,
    const struct scheduler_select *sel)
{
	size_t i;
	bool any;

	if (sel->id != NULL && strcmp(msg->id, sel->id) != 0)
		return false;
	if (sel->sender != NULL && (msg->env.sender == NULL ||
	    ascii_strcasecmp(msg->env.sender, sel->sender) != 0))
		return false;
	if (sel->rcpt != NULL) {
		for (i = 0, any = false; i < msg->env.nrcpts; i++)
			if (msg->env.rcpts[i].status == RCPT_STATUS_PENDING &&
			    sched_is_addr(&msg->env.rcpts[i], sel->rcpt))
				any = true;
		if (!any)
			return false;
	}
	if (sel->domain != NULL) {
		for (i = 0, any = false; i < msg->env.nrcpts; i++)
			if (msg->env.rcpts[i].status == RCPT_STATUS_PENDING &&
			    sched_addr_in_domain(msg->env.rcpts[i].addr,
			    sel->domain))
				any = true;
		if (!any)
			return false;
	}
	return true;
}

/* Retry now: the pending recipients (at domain, if given). */
static void
sched_admin_flush(struct sched_msg *msg, const char *domain)
{
	struct timeval tv = { 0, 0 };
	size_t i;

	if (msg->phase != PHASE_IDLE) {
		/* A worker may be reading the envelope: only the flag (the
		 * round's end then retries every pending recipient). */
		msg->flush = true;
		return;
	}
	for (i = 0; i < msg->env.nrcpts; i++) {
		struct envelope_rcpt *r = &msg->env.rcpts[i];

		if (r->status == RCPT_STATUS_PENDING && (domain == NULL ||
		    sched_addr_in_domain(r->addr, domain)))
			r->next_attempt = 0;
	}
	/* Through the timer: a round may free msg. */
	evtimer_del(msg->timer);
	evtimer_add(msg->timer, &tv);
}

static void
sched_admin_run(struct sched_job *job)
{
	struct sched_msg *msg = job->msg;
	const struct spool *sp = msg->s->sp;
	struct envelope disk;
	const char *error;

	if (job->remove) {
		/* Durably: the name gone from queue/ (spool_remove()
		 * alone leaves that to chance, which suits delivered
		 * mail, not a deletion). */
		if (spool_remove_sync(sp, msg->id) == -1)
			job->error = errno;
		return;
	}
	if (spool_update_rcpts(sp, msg->id, &msg->env) == -1) {
		job->error = errno;
		return;
	}
	if (!job->check_held)
		return;
	/* A version 1 file has no flags field: the hold would not stick. */
	if (spool_read_envelope(sp, msg->id, &disk, &error) == -1) {
		job->error = errno;
		return;
	}
	if (disk.nrcpts > 0 && (disk.rcpts[0].flags & RCPT_FLAG_HELD) == 0)
		job->error = ENOTSUP;
	envelope_free(&disk);
}

static void
sched_admin_set_held(struct sched_msg *msg, bool held)
{
	size_t i;

	for (i = 0; i < msg->env.nrcpts; i++)
		if (held)
			msg->env.rcpts[i].flags |= RCPT_FLAG_HELD;
		else
			msg->env.rcpts[i].flags &= ~(uint32_t)RCPT_FLAG_HELD;
	msg->held = held;
}

static void
sched_admin_done(struct sched_job *job)
{
	struct sched_msg *msg = job->msg;
	struct scheduler *s = msg->s;
	enum scheduler_admin_op op = msg->admin->op;
	char eb[128], why[200];
	size_t i;

	msg->phase = PHASE_IDLE;
	if (job->error == ENOTSUP)
		strlcpy(why, "its queue file (format version 1) cannot record "
		    "a hold", sizeof(why));
	else if (job->error != 0)
		snprintf(why, sizeof(why), "cannot %s the queue file: %s",
		    op == SCHED_ADMIN_DELETE ? "remove" : "update",
		    strerror_r(job->error, eb, sizeof(eb)));
	switch (op) {
	case SCHED_ADMIN_DELETE:
		if (job->error == 0) {
			msg->removed = true;
			log_info("queue: deleted queue=%s (by the "
			    "administrator)", msg->id);
		}
		break;
	case SCHED_ADMIN_HOLD:
		if (job->error == 0)
			log_info("queue: held queue=%s (by the "
			    "administrator)", msg->id);
		else
			sched_admin_set_held(msg, false);
		break;
	case SCHED_ADMIN_RELEASE:
		if (job->error == 0) {
			log_info("queue: released queue=%s (by the "
			    "administrator)", msg->id);
			for (i = 0; i < msg->env.nrcpts; i++)
				if (msg->env.rcpts[i].status ==
				    RCPT_STATUS_PENDING)
					msg->env.rcpts[i].next_attempt = 0;
			msg->flush = true;
		} else
			sched_admin_set_held(msg, true);
		break;
	case SCHED_ADMIN_FLUSH:
	case SCHED_ADMIN_BOUNCE:
		break;
	}
	if (job->error == 0)
		msg->dirty = false;
	else if (job->error != ENOTSUP)
		log_err("queue: %s failed queue=%s (%s)",
		    sched_admin_names[op], msg->id, why);
	sched_admin_finish(msg, job->error, why);
	if (s->closing)
		return;		/* scheduler_free() frees the messages */
	if (msg->removed) {
		TAILQ_REMOVE(&s->msgs, msg, entry);
		s->stats.queued--;
		sched_msg_free(msg);
		return;
	}
	if (msg->held) {
		msg->flush = false;
		return;
	}
	if (msg->flush) {
		msg->flush = false;
		sched_round(msg);
		return;
	}
	sched_arm(msg);
}

static void
sched_admin_job(struct sched_msg *msg, bool remove, bool check_held)
{
	struct sched_job *job;

	msg->phase = PHASE_ADMIN;
	evtimer_del(msg->timer);
	job = sched_job_new(msg, sched_admin_run, sched_admin_done);
	job->remove = remove;
	job->check_held = check_held;
	sched_job_submit(msg->s, job);
}

/* Give up now: every pending recipient fails, and a bounce goes out. */
static void
sched_admin_bounce(struct sched_msg *msg)
{
	struct scheduler *s = msg->s;
	uint64_t now = sched_now();
	size_t i, n = 0;

	for (i = 0; i < msg->env.nrcpts; i++) {
		struct envelope_rcpt *r = &msg->env.rcpts[i];

		if (r->status != RCPT_STATUS_PENDING)
			continue;
		r->status = RCPT_STATUS_FAILED;
		r->last_attempt = now;
		r->remote_mta[0] = '\0';
		strlcpy(r->last_reply, SCHED_ADMIN_REPLY,
		    sizeof(r->last_reply));
		s->stats.failed++;
		sched_log(msg, r, NULL, "bounced");
		n++;
	}
	if (n == 0) {
		sched_admin_finish(msg, EINVAL, "no recipient is pending");
		if (!msg->held)
			sched_arm(msg);
		return;
	}
	log_info("queue: bounced queue=%s recipients=%zu (by the "
	    "administrator)", msg->id, n);
	/* Nothing is pending any more: the hold has nothing left to do. */
	sched_admin_set_held(msg, false);
	msg->dirty = true;
	msg->admin_running = true;
	/* The end of a delivery round: states, report, removal. */
	evtimer_del(msg->timer);
	msg->phase = PHASE_DELIVER;
	msg->inflight = 0;
	sched_advance(msg);
}

/* msg is idle and its command waits: start it. */
static void
sched_admin_start(struct sched_msg *msg)
{
	switch (msg->admin->op) {
	case SCHED_ADMIN_DELETE:
		sched_admin_job(msg, true, false);
		return;
	case SCHED_ADMIN_HOLD:
		if (msg->held) {
			sched_admin_finish(msg, 0, "");
			return;
		}
		sched_admin_set_held(msg, true);
		sched_admin_job(msg, false, true);
		return;
	case SCHED_ADMIN_RELEASE:
		if (!msg->held) {
			sched_admin_finish(msg, EINVAL, "not on hold");
			sched_arm(msg);
			return;
		}
		sched_admin_set_held(msg, false);
		sched_admin_job(msg, false, false);
		return;
	case SCHED_ADMIN_BOUNCE:
		sched_admin_bounce(msg);
		return;
	case SCHED_ADMIN_FLUSH:
		break;
	}
	fatalx("scheduler: admin op %d started on a message", msg->admin->op);
}

void
scheduler_admin(struct scheduler *s, enum scheduler_admin_op op,
    const struct scheduler_select *sel, scheduler_admin_cb cb, void *arg,
    uint64_t cookie)
{
	struct sched_admin *a = xcalloc(1, sizeof(*a));
	struct sched_msg *msg, *next;

	a->op = op;
	a->cb = cb;
	a->arg = arg;
	a->cookie = cookie;
	a->outstanding = 1;	/* ours, while starting */
	if (s->closing) {
		strlcpy(a->res.error, "the daemon is stopping",
		    sizeof(a->res.error));
		a->res.failed++;
		sched_admin_put(a);
		return;
	}
	TAILQ_FOREACH_SAFE(msg, &s->msgs, entry, next) {
		if (msg->removed || !sched_admin_match(msg, sel))
			continue;
		if (op == SCHED_ADMIN_FLUSH) {
			if (msg->held) {
				/* Held mail waits for a release; named, it
				 * is an error, else it is left alone. */
				if (sel->id != NULL) {
					a->res.matched++;
					sched_admin_fail(a, msg->id, "on hold "
					    "(release it first)");
				}
				continue;
			}
			a->res.matched++;
			sched_admin_flush(msg, sel->domain);
			a->res.done++;
			continue;
		}
		a->res.matched++;
		if (msg->admin != NULL) {
			sched_admin_fail(a, msg->id, "another queue command "
			    "is working on it; try again");
			continue;
		}
		msg->admin = a;
		a->outstanding++;
		/* A delivery round runs: the command waits for its end
		 * (sched_round_end), so that a delivery and a deletion
		 * never overlap. */
		if (msg->phase == PHASE_IDLE)
			sched_admin_start(msg);
	}
	if (op == SCHED_ADMIN_FLUSH && a->res.done > 0 && s->remote != NULL)
		remote_flush(s->remote);	/* destinations' back-offs */
	log_info("queue: %s requested matched=%zu", sched_admin_names[op],
	    a->res.matched);
	sched_admin_put(a);
}

size_t
scheduler_snapshot(const struct scheduler *s, const char *id,
    struct scheduler_entry **entries_r)
{
	struct scheduler_entry *e = NULL;
	const struct sched_msg *msg;
	size_t n = 0;

	TAILQ_FOREACH(msg, &s->msgs, entry) {
		if (msg->removed || (id != NULL && strcmp(msg->id, id) != 0))
			continue;
		e = xrealloc(e, (n + 1) * sizeof(*e));
		memset(&e[n], 0, sizeof(e[n]));
		strlcpy(e[n].id, msg->id, sizeof(e[n].id));
		envelope_copy(&e[n].env, &msg->env);
		if (e[n].env.arrival == 0)
			e[n].env.arrival = msg->added;
		e[n].held = msg->held;
		e[n].active = msg->phase != PHASE_IDLE &&
		    msg->phase != PHASE_ADMIN;
		n++;
	}
	*entries_r = e;
	return n;
}

void
scheduler_entries_free(struct scheduler_entry *e, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		envelope_free(&e[i].env);
	free(e);
}
