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
 * The scheduler holds every queued message in memory with its pending
 * recipients and next attempt time, runs deliveries on a pool of worker
 * threads, writes each result back to the queue file before trusting it,
 * retries temporary failures with exponential backoff, and removes the
 * queue file once every recipient is delivered or failed.
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
 * retrying can help.
 */
int maildir_deliver(const struct spool *sp, const char *id,
    const char *sender, const char *path, const char *hostname,
    char *err, size_t errsize, bool *permanent_r);

struct scheduler;

struct scheduler_stats {
	uint64_t delivered;
	uint64_t deferred;
	uint64_t failed;
	uint64_t queued;	/* messages in memory now */
};

/* nworkers delivery threads. The conf pointer may be swapped on reload. */
struct scheduler *scheduler_new(struct event_base *base, struct spool *sp,
    const struct conf *c, unsigned int nworkers);
void scheduler_set_conf(struct scheduler *s, const struct conf *c);

/* Take a committed message (env copied) and deliver it as soon as it can. */
void scheduler_add(struct scheduler *s, const char *id,
    const struct envelope *env);

/* Wait for running deliveries to end, stop the threads, free. */
void scheduler_free(struct scheduler *s);

void scheduler_get_stats(const struct scheduler *s,
    struct scheduler_stats *st);

#endif
