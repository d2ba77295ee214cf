/*
 * remote.h (private to src/delivery): outbound delivery of a message's
 * remote recipients. The scheduler hands over a batch (one message, the
 * recipients due now); remote.c groups them by next hop (transport line,
 * relayhost, or the domain's MX), queues each group on its destination,
 * opens connections within the concurrency limits, drives src/client and
 * fills one result per recipient. Everything runs on the event loop.
 * Local recipients in a batch (the scheduler sends them only with
 * `deliver lmtp`, lmtp.h) go to the LMTP destination conf->deliver_lmtp
 * names, the same one as a transport line to that server would use.
 * Connections to the relayhost log in with relayhost_auth's credentials
 * (conf->relayhost_auth_user and _password), only over TLS; a refused
 * login defers (REMOTE_TEMP), never bounces.
 */
#ifndef PETREL_DELIVERY_REMOTE_H
#define PETREL_DELIVERY_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/envelope.h"

struct event_base;
struct spool;
struct conf;
struct dns;
struct remote;

enum remote_status {
	REMOTE_OK,
	REMOTE_TEMP,
	REMOTE_PERM,
};

struct remote_result {
	enum remote_status status;
	bool relayed;		/* accepted by a peer without DSN */
	char reply[1024];	/* the peer's reply, or ours */
	char remote_mta[256];	/* peer host name, "" if none reached */
	char relay[400];	/* "host[addr]:port" for the log, or "" */
	uint64_t retry_at;	/* TEMP without an attempt (the
				 * destination backs off): retry then,
				 * and do not count it as an attempt */
	bool taken;		/* the caller's: seen in part_done */
};

struct remote_batch {
	/* in: stable until done runs */
	char id[QUEUE_ID_MAX];
	const struct envelope *env;
	size_t *idx;		/* recipients of env to deliver */
	size_t n;
	bool eight_bit;		/* content has bytes >= 0x80 */
	size_t longest_line;	/* octets, CRLF excluded */
	/* out */
	struct remote_result *res;	/* n entries, filled by remote.c */
	bool corrupt;		/* reading the queue file gave EBADMSG */
	/* runs once on the loop when every result is in */
	void (*done)(struct remote_batch *b, void *arg);
	/*
	 * Optional: runs on the loop when the results of part of the batch
	 * (one destination's recipients: k[0..n) index idx and res) are in
	 * while other parts go on; never for the part that ends the batch.
	 */
	void (*part_done)(struct remote_batch *b, const size_t *k, size_t n,
	    void *arg);
	void *arg;
	/* private to remote.c */
	unsigned int pending;	/* groups not finished */
	const struct spool *rd_spool;
};

/*
 * dns may be NULL (remote recipients are then deferred). The conf may be
 * swapped with remote_set_conf() (read on the loop only).
 */
struct remote *remote_new(struct event_base *base, struct spool *sp,
    const struct conf *c, struct dns *dns);
void remote_set_conf(struct remote *r, const struct conf *c);

/*
 * r goes to a `discard:` next hop of the transport file: it is done in
 * remote_submit() without a connection, and needs no content scan.
 */
bool remote_discards(const struct conf *c, const struct envelope_rcpt *r);

/* Deliver b (filled in by the caller, res allocated with n entries). */
void remote_submit(struct remote *r, struct remote_batch *b);

/* Forget every destination's back-off (SIGUSR1: retry now). */
void remote_flush(struct remote *r);

/* Destinations remembered now (for tests). */
size_t remote_ndests(const struct remote *r);

/*
 * Close every connection; batches in flight complete with TEMP results
 * ("delivery interrupted") before this returns, so their done callbacks
 * run from here.
 */
void remote_free(struct remote *r);

#endif
