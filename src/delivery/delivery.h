/*
 * delivery.h: local delivery into Maildir, and the scheduler that drives
 * deliveries for every queued message.
 *
 * Maildir delivery (maildir_deliver) runs on a worker thread: it writes
 * "Return-Path: <sender>" and the message (CRLF turned into LF, the Maildir
 * convention Dovecot reads) to tmp/, fsyncs, link()s into new/ under a
 * unique name time.M<usec>P<pid>Q<n>.<host>,S=<size> (never a rename()
 * that could overwrite), fsyncs new/, unlinks the tmp/ name. It creates the
 * Maildir (and its parents) if absent.
 *
 * With `deliver lmtp` (lmtp.h), local recipients go to an LMTP server
 * through remote.c instead of maildir_deliver.
 *
 * The scheduler holds every queued message in memory with its pending
 * recipients and next attempt time, runs deliveries on a pool of worker
 * threads, writes each result back to the queue file before trusting it,
 * retries temporary failures with exponential backoff, and removes the
 * queue file once every recipient is delivered. A message with a failed
 * recipient gets a bounce; one whose content turns out corrupt goes to
 * corrupt/ at once. The queue commands (scheduler_admin) list, flush,
 * hold, release, delete and bounce messages.
 */
#ifndef PETREL_DELIVERY_DELIVERY_H
#define PETREL_DELIVERY_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/envelope.h"

struct event_base;
struct spool;
struct conf;

/*
 * Deliver message id (read from the spool) to the Maildir at path.
 * Thread-safe. Returns 0, or -1 with a reply-like text in err (e.g.
 * "452 4.3.1 No space left on device") and *permanent_r saying whether
 * retrying can help. Only a path too long to exist is permanent (550
 * 5.1.3); disk full is 452 4.3.1, quota 452 4.2.2, anything else (EIO,
 * EACCES, a file where a directory should be, an unreadable queue file,
 * a NULL sender or path) 451 4.3.0. On failure nothing is left in new/ or
 * tmp/, and errno is the cause: EBADMSG means the queue file is corrupt
 * (a CONTENT CRC or the size failed), which no retry can fix. The first
 * delivery to a Maildir in a process fsyncs the Maildir and all its
 * ancestors, even if they existed already.
 */
int maildir_deliver(const struct spool *sp, const char *id,
    const char *sender, const char *path, const char *hostname,
    char *err, size_t errsize, bool *permanent_r);

struct scheduler;
struct dns;

struct scheduler_stats {
	uint64_t delivered;	/* recipients delivered */
	uint64_t deferred;	/* attempts that failed temporarily */
	uint64_t failed;	/* recipients given up (bounced) */
	uint64_t queued;	/* messages in memory now */
};

struct scheduler_hooks {
	/*
	 * Resolve addr (a report's recipient: the original sender, or the
	 * double_bounce address) into final recipients appended to env,
	 * as RCPT TO would (users, aliases; remote domains as remote).
	 * Returns 0, or -1 when nobody can receive it. On the loop.
	 */
	int (*resolve)(void *arg, const char *addr, struct envelope *env);
	void *arg;
};

/*
 * nworkers delivery threads (0 means 1). The conf pointer may be swapped
 * on reload (scheduler_set_conf); workers never read it. dns (may be
 * NULL: remote recipients are then deferred) resolves MX and addresses
 * for outbound delivery. The caller has called evthread_use_pthreads()
 * before creating base: workers hand results back with event_active().
 *
 * Retries: a temporary failure is retried after retry_initial, doubling
 * per attempt, at most retry_max apart; a recipient still failing once
 * queue_lifetime has passed since arrival fails for good. Failed
 * recipients get a bounce (RFC 3464) to the envelope sender (none for
 * <>, unless double_bounce names someone; a double bounce that fails is
 * dropped, logged), pending ones a delay report
 * after delay_warning, NOTIFY=SUCCESS ones a success or "relayed"
 * report. A queue file found corrupt while delivering (EBADMSG) is moved
 * to corrupt/ at once, not retried.
 *
 * Every attempt logs one line:
 *   delivery: id=ID to=<addr> relay=HOST|local|none mailbox=PATH|-
 *   delay=SECONDS attempts=N dsn=X.Y.Z status=sent|deferred|bounced
 *   reply="..."
 * (addr, path and reply escaped).
 */
struct scheduler *scheduler_new(struct event_base *base, struct spool *sp,
    const struct conf *c, unsigned int nworkers, struct dns *dns,
    const struct scheduler_hooks *hooks);
void scheduler_set_conf(struct scheduler *s, const struct conf *c);

/* The delay before retry number attempts+1 (exported for tests). */
uint64_t scheduler_backoff(uint64_t initial, uint64_t max,
    uint32_t attempts);

/* SIGUSR1: every pending recipient is tried now, back-offs forgotten. */
void scheduler_flush(struct scheduler *s);

/*
 * At shutdown, before spool_drain(): start nothing new, close outbound
 * connections (their recipients stay pending in the queue files).
 */
void scheduler_stop(struct scheduler *s);

/*
 * Take a committed message (env copied) and deliver it as soon as it can:
 * every PENDING recipient is tried now, whatever next_attempt says (a
 * message recovered at start-up is tried at once). A message with no
 * arrival time counts its lifetime from this call.
 */
void scheduler_add(struct scheduler *s, const char *id,
    const struct envelope *env);

/*
 * The same for a message just received: its file is in the page cache,
 * so a small one's content is scanned on the loop at its first round
 * instead of on a worker.
 */
void scheduler_add_new(struct scheduler *s, const char *id,
    const struct envelope *env);

/*
 * scheduler_stop() if not done, wait for running jobs to end, stop the
 * threads, free. Jobs not yet started are dropped: their queue files
 * stay for the next start, with every result already known (a finished
 * delivery, a remote group that finished before the stop) written into
 * them first, so that the next start does not deliver it again.
 */
void scheduler_free(struct scheduler *s);

void scheduler_get_stats(const struct scheduler *s,
    struct scheduler_stats *st);

/*
 * issue 6 (metrics): the queue now, walked on the loop thread (one pass
 * over the messages in memory; no file is read).
 */
struct scheduler_queue {
	uint64_t messages;	/* queued messages, held ones included */
	uint64_t held;
	uint64_t recipients;	/* pending recipients */
	uint64_t oldest_arrival;	/* unix seconds; 0 when empty */
};
void scheduler_get_queue(const struct scheduler *s,
    struct scheduler_queue *q);

/* ---- Queue commands (src/daemon/control.c), on the loop thread ---- */

enum scheduler_admin_op {
	SCHED_ADMIN_FLUSH,	/* retry now (recipients at domain, if set) */
	SCHED_ADMIN_DELETE,	/* queue file removed durably, forgotten */
	SCHED_ADMIN_HOLD,	/* never attempted until released; durable */
	SCHED_ADMIN_RELEASE,	/* the hold lifted; retried now */
	SCHED_ADMIN_BOUNCE,	/* every pending recipient fails: a DSN */
};

/* Which messages: every field set must match; none set: all of them. */
struct scheduler_select {
	const char *id;		/* this queue ID */
	const char *domain;	/* a pending recipient at this domain */
	const char *sender;	/* this envelope sender ("" for <>) */
	const char *rcpt;	/* this pending recipient (as given or final) */
};

struct scheduler_admin_result {
	size_t matched;		/* messages selected */
	size_t done;		/* the operation succeeded */
	size_t failed;
	char error[256];	/* "ID: why" of the first failure */
};

typedef void (*scheduler_admin_cb)(void *arg, uint64_t cookie,
    const struct scheduler_admin_result *res);

/*
 * Apply op to every message sel matches; cb(arg, cookie, result) runs once
 * every one is done, possibly during this call. A message in a delivery
 * round is not touched until the round ends (the command waits), so a
 * deletion never overlaps a delivery. File updates run on the workers:
 * delete unlinks queue/ID and fsyncs queue/; hold sets RCPT_FLAG_HELD on
 * every recipient in the queue file (a version 1 file cannot hold it:
 * that fails); release clears it and retries now; bounce fails every
 * pending recipient with "554 5.0.0 delivery cancelled by the
 * administrator" and sends the report as queue_lifetime expiry does.
 * Flush skips held messages (one named by id fails). A message another
 * command is working on fails ("try again"). Each command logs
 * "queue: OP requested matched=N" and each change "queue: deleted
 * queue=ID (by the administrator)" (held, released, bounced), a failure
 * "queue: OP failed queue=ID (WHY)" (docs/logging.md).
 */
void scheduler_admin(struct scheduler *s, enum scheduler_admin_op op,
    const struct scheduler_select *sel, scheduler_admin_cb cb, void *arg,
    uint64_t cookie);

/* A queued message as the scheduler holds it now (for listings). */
struct scheduler_entry {
	char id[QUEUE_ID_MAX];
	struct envelope env;	/* a copy; arrival set */
	bool active;		/* a delivery round runs */
	bool held;
};

/*
 * Copies of every queued message (only id, if not NULL), in queue order,
 * into *entries_r; returns the count. Free with scheduler_entries_free().
 */
size_t scheduler_snapshot(const struct scheduler *s, const char *id,
    struct scheduler_entry **entries_r);
void scheduler_entries_free(struct scheduler_entry *e, size_t n);

#endif
