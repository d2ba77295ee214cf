/*
 * remote.c: outbound delivery. Groups a message's remote recipients by
 * next hop, queues each group on its destination, and drives src/client
 * connections within the limits: destination_concurrency per
 * destination, max_outbound_connections in all, max_messages_per_
 * connection per connection (RSET between messages).
 *
 * Entry points: remote_new, remote_set_conf, remote_submit, remote_flush,
 * remote_free.
 *
 * A destination is a next hop: a domain whose MX records decide
 * ("mx:example.org"), a host from `relayhost` or the transport file
 * ("smtp:[10.0.0.1]:25", "smtp:relay.example.net" with MX), or an LMTP
 * server. A connection first finds its targets (dns_route_lookup: MX by
 * preference, equal ones shuffled, addresses in order; RFC 5321 5.1),
 * then tries them in order, at most REMOTE_MAX_TRIES addresses, until
 * one greets it; it then carries groups from the destination's queue
 * one after the other, and waits REMOTE_IDLE_SECONDS for more before it
 * says QUIT (at once when max_outbound_connections is reached and
 * another destination waits for a slot). When every address failed, or
 * a server answered 421 or dropped the connection, the destination
 * backs off (retry_initial, doubling, at most retry_max): the groups
 * waiting for it are deferred at once ("delivery temporarily
 * suspended"), without counting as an attempt, instead of each timing
 * out on its own. A connection that fails while others to the same
 * destination are under way or carrying mail only closes, and the
 * destination keeps to the connections left (a server limiting
 * connections per client greets the extra ones with 421); one more is
 * tried with each connection that succeeds. A destination with nothing
 * queued, no connection and no back-off or plaintext memory left is
 * forgotten by a sweep from the loop (never from inside a pump: a done
 * callback may outlast a back-off).
 *
 * `deliver lmtp` (lmtp.h): a local recipient's next hop is
 * conf->deliver_lmtp, whatever its domain; its address goes quoted where
 * it is not a Dot-string (local addresses are kept unquoted), and a group
 * of local recipients only is not refused for lines over 998 octets
 * (final delivery, as Maildir; the server stores, it does not relay).
 *
 * STARTTLS is opportunistic (RFC 7435): used when offered, certificate
 * not checked; when the handshake itself fails, the same address is
 * tried again in plaintext and the destination remembers it for a while.
 *
 * relayhost_auth: connections to the relayhost (only that route, not the
 * MX of a domain nor a transport line) log in with SMTP AUTH; such a
 * destination has a key of its own ("smtp+auth:[host]:port"), so a
 * transport line to the same host never shares its authenticated
 * connections. TLS is then required (src/client never sends credentials
 * in plaintext): a failed handshake is not retried in plaintext, and
 * nothing is remembered as "plaintext only". A refused login (5xx) is
 * not tried at the relay's other addresses: the destination backs off
 * and its messages are deferred with the server's reply in the text
 * (TEMP, never a bounce, as Postfix's smtp_sasl_auth_soft_bounce). An
 * open connection is authenticated once, for every message it carries.
 *
 * SECURITY: every peer text is logged escaped. The relayhost password
 * is passed to src/client, which copies it and wipes its copy; it is
 * never logged. The content is streamed
 * from the queue file (spool_reader) with back-pressure: memory per
 * connection is bounded by the client's output buffer, not the message.
 * The queue file is read with pread() on the loop thread: it was written
 * moments ago, so it comes from the page cache (docs/architecture.md,
 * "Departures").
 * STANDARDS: RFC 5321 5.1 (MX, implicit MX, self in the MX list), 4.5.4.1
 * (retry), RFC 7505 (null MX), RFC 2033 (LMTP), RFC 3461 (relayed
 * notices for peers without DSN), RFC 7435 (opportunistic TLS), RFC 4954
 * (SMTP AUTH).
 * OWNERSHIP: remote owns destinations, groups and connections; batches
 * belong to the scheduler and are only borrowed until their done runs.
 */
#include "delivery/remote.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "client/client.h"
#include "conf/conf.h"
#include "delivery/lmtp.h"
#include "dns/dns.h"
#include "lib/log.h"
#include "lib/util.h"
#include "queue/spool.h"
#include "smtp/parse.h"

#ifndef TAILQ_FOREACH_SAFE	/* BSD; glibc's sys/queue.h lacks it */
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

#define REMOTE_MAX_TRIES	5	/* addresses per connection attempt */
#define REMOTE_IDLE_SECONDS	2	/* keep a connection for more mail */
#define REMOTE_NOTLS_SECONDS	3600	/* plaintext after a TLS failure */

enum rdest_kind {
	RDEST_MX,		/* the domain's MX (or relayhost host, MX) */
	RDEST_HOST,		/* one host: its A/AAAA, no MX */
	RDEST_LMTP_UNIX,
	RDEST_LMTP_INET,
};

struct rgroup;
struct rconn;

struct rdest {
	TAILQ_ENTRY(rdest) entry;
	struct remote *r;
	char key[600];
	enum rdest_kind kind;
	char host[256];		/* domain or host name/address */
	unsigned int port;
	char path[108];		/* LMTP socket */
	TAILQ_HEAD(, rgroup) queue;	/* waiting for a connection */
	TAILQ_HEAD(, rconn) conns;
	unsigned int nconns;
	unsigned int nstarting;	/* connections not ready yet */
	uint64_t backoff_until;
	unsigned int failures;	/* consecutive, for the back-off */
	unsigned int cap;	/* connections allowed now (a connection
				 * failed while others went on), 0: none */
	char last_error[1024];
	uint64_t notls_until;
	bool auth;		/* the relayhost with relayhost_auth */
};

struct rgroup {
	TAILQ_ENTRY(rgroup) entry;
	struct remote_batch *b;
	size_t *k;		/* indexes into b->idx and b->res */
	size_t n;
	struct smtpc_rcpt *rcpts;
	char **quoted;		/* deliver lmtp: RCPT TO forms made, or NULL */
	struct smtpc_msg m;
	struct spool_reader *rd;
};

enum rconn_state {
	RC_DNS,
	RC_CONNECTING,
	RC_BUSY,
	RC_IDLE,
	RC_CLOSING,
};

struct rconn {
	TAILQ_ENTRY(rconn) entry;
	struct rdest *d;
	enum rconn_state state;
	uint64_t dnsq;
	struct dns_target *targets;
	size_t ntargets;
	size_t ti;		/* target being tried */
	unsigned int tries;
	bool all_perm;		/* every failure so far was permanent */
	bool plain;		/* this try without STARTTLS */
	bool auth;		/* this try logs in (relayhost_auth) */
	struct smtpc *c;
	struct rgroup *g;
	unsigned int nmsgs;
	struct event *timer;	/* idle */
	char peer[400];		/* "host[addr]:port" */
	char host[256];
	struct smtpc_reply err;
};

struct remote {
	struct event_base *base;
	struct spool *sp;
	const struct conf *conf;
	struct dns *dns;
	SSL_CTX *ssl;
	TAILQ_HEAD(, rdest) dests;
	unsigned int nconns;
	bool freeing;
	struct event *gc_ev;	/* forget idle destinations */
};

static void rdest_pump(struct rdest *d);
static void rconn_try(struct rconn *rc);
static void rconn_next(struct rconn *rc);
static void remote_pump_all(struct remote *r);

static uint64_t
remote_now(void)
{
	return (uint64_t)time(NULL);
}

/* ---- groups ---- */

static void
rgroup_free(struct rgroup *g)
{
	size_t i;

	spool_reader_close(g->rd);
	if (g->quoted != NULL)
		for (i = 0; i < g->n; i++)
			free(g->quoted[i]);
	free(g->quoted);
	free(g->k);
	free(g->rcpts);
	free(g);
}

/* Every result of g is in: hand the batch back when it is complete. */
static void
rgroup_finish(struct rgroup *g)
{
	struct remote_batch *b = g->b;

	if (b->pending > 1 && b->part_done != NULL)
		b->part_done(b, g->k, g->n, b->arg);
	rgroup_free(g);
	if (--b->pending == 0)
		b->done(b, b->arg);
}

/* The same result for every recipient of g. */
static void
rgroup_fail(struct rgroup *g, enum remote_status st, const char *reply,
    const char *mta, uint64_t retry_at)
{
	size_t i;

	for (i = 0; i < g->n; i++) {
		struct remote_result *res = &g->b->res[g->k[i]];

		res->status = st;
		res->retry_at = retry_at;
		strlcpy(res->reply, reply, sizeof(res->reply));
		strlcpy(res->remote_mta, mta != NULL ? mta : "",
		    sizeof(res->remote_mta));
	}
	rgroup_finish(g);
}

/* Fail every group waiting for d. */
static void
rdest_fail_queue(struct rdest *d, enum remote_status st, const char *reply,
    uint64_t retry_at)
{
	struct rgroup *g;

	while ((g = TAILQ_FIRST(&d->queue)) != NULL) {
		TAILQ_REMOVE(&d->queue, g, entry);
		rgroup_fail(g, st, reply, NULL, retry_at);
	}
}

/* ---- destinations ---- */

static struct rdest *
rdest_get(struct remote *r, const char *key)
{
	struct rdest *d;

	TAILQ_FOREACH(d, &r->dests, entry)
		if (strcmp(d->key, key) == 0)
			return d;
	d = xcalloc(1, sizeof(*d));
	d->r = r;
	strlcpy(d->key, key, sizeof(d->key));
	TAILQ_INIT(&d->queue);
	TAILQ_INIT(&d->conns);
	TAILQ_INSERT_TAIL(&r->dests, d, entry);
	return d;
}

/*
 * A destination with nothing queued and no connection is forgotten
 * unless it remembers a back-off. Only from remote_gc_cb: callers deep in
 * a pump may still hold d.
 */
static void
rdest_gc(struct rdest *d, uint64_t now)
{
	if (!TAILQ_EMPTY(&d->queue) || d->nconns > 0 ||
	    d->backoff_until > now || d->notls_until > now)
		return;
	TAILQ_REMOVE(&d->r->dests, d, entry);
	free(d);
}

static void
remote_gc_cb(evutil_socket_t fd, short what, void *arg)
{
	struct remote *r = arg;
	struct rdest *d, *next;
	uint64_t now = remote_now();

	(void)fd;
	(void)what;
	TAILQ_FOREACH_SAFE(d, &r->dests, entry, next)
		rdest_gc(d, now);
}

/*
 * Sweep the destinations from the loop, outside every pump and callback
 * (a done callback may run long enough for a back-off to end).
 */
static void
remote_gc_later(struct remote *r)
{
	event_active(r->gc_ev, 0, 0);
}

static void
rdest_backoff(struct rdest *d, const char *why)
{
	const struct conf *c = d->r->conf;
	uint64_t delay = c->retry_initial;
	char esc[1200];
	unsigned int i;

	/* Connections under way when the back-off began fail as well:
	 * one outage is one step, not one per connection. */
	if (d->backoff_until > remote_now())
		return;
	d->failures++;
	for (i = 1; i < d->failures && delay < c->retry_max; i++)
		delay *= 2;
	if (delay > c->retry_max)
		delay = c->retry_max;
	d->backoff_until = remote_now() + delay;
	strlcpy(d->last_error, why, sizeof(d->last_error));
	log_info("remote: destination=%s backs off for %llus after %u "
	    "failures: %s", d->key, (unsigned long long)delay, d->failures,
	    log_escape(esc, sizeof(esc), why, strlen(why)));
}

/* Connections d may have now: destination_concurrency, or less. */
static unsigned int
rdest_limit(const struct rdest *d)
{
	uint64_t c = d->r->conf->destination_concurrency;

	return d->cap != 0 && d->cap < c ? d->cap : (unsigned int)c;
}

/* Defer what waits while d backs off. */
static void
rdest_suspend_queue(struct rdest *d)
{
	char reply[1200];

	snprintf(reply, sizeof(reply), "451 4.4.1 delivery temporarily "
	    "suspended: %s", d->last_error);
	rdest_fail_queue(d, REMOTE_TEMP, reply, d->backoff_until);
}

/* ---- connections ---- */

static void
rconn_free(struct rconn *rc)
{
	struct rdest *d = rc->d;
	struct remote *r = d->r;

	if (rc->dnsq != 0)
		dns_route_cancel(r->dns, rc->dnsq);
	if (rc->c != NULL)
		smtpc_free(rc->c);
	if (rc->timer != NULL)
		event_free(rc->timer);
	if (rc->g != NULL)
		rgroup_fail(rc->g, REMOTE_TEMP, "451 4.4.2 delivery "
		    "interrupted", rc->host, 0);
	if (rc->state == RC_DNS || rc->state == RC_CONNECTING)
		d->nstarting--;
	free(rc->targets);
	TAILQ_REMOVE(&d->conns, rc, entry);
	d->nconns--;
	r->nconns--;
	free(rc);
}

/* Close rc and let waiting groups have its slot. */
static void
rconn_close(struct rconn *rc)
{
	struct remote *r = rc->d->r;

	rconn_free(rc);
	if (r->freeing)
		return;
	remote_pump_all(r);
	remote_gc_later(r);
}

/*
 * Every address failed (or DNS did): back off, defer what waits. Unless
 * other connections to d are still under way or carrying mail: then d
 * is not down (a server that limits connections per client answers the
 * extra ones 421), so only this one goes, d keeps to as many as are
 * left, and the waiting groups wait for them. The last one to fail
 * decides for the destination.
 */
static void
rconn_give_up(struct rconn *rc, enum remote_status st, const char *reply)
{
	struct rdest *d = rc->d;
	char esc[1200];

	if (d->nconns > 1) {
		d->cap = d->nconns - 1;
		log_info("remote: destination=%s keeps to %u connections: %s",
		    d->key, d->cap, log_escape(esc, sizeof(esc), reply,
		    strlen(reply)));
		rconn_close(rc);
		return;
	}
	d->cap = 0;
	if (st == REMOTE_PERM) {
		/* The destination refuses for good (null MX, NXDOMAIN,
		 * 5xx greetings everywhere): everything for it bounces. */
		rdest_fail_queue(d, REMOTE_PERM, reply, 0);
	} else {
		rdest_backoff(d, reply);
		rdest_fail_queue(d, REMOTE_TEMP, reply, 0);
	}
	rconn_close(rc);
}

static void
rconn_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *rc = arg;

	(void)fd;
	(void)what;
	if (rc->state != RC_IDLE)
		return;
	rc->state = RC_CLOSING;
	smtpc_quit(rc->c);
}

static int
rgroup_source_next(void *arg, const char **data, size_t *len)
{
	struct rgroup *g = arg;
	int r;

	if ((r = spool_reader_next(g->rd, data, len)) == -1 &&
	    errno == EBADMSG)
		g->b->corrupt = true;
	return r;
}

/* Build the client's view of g's message. Returns 0 or -1 (reply set). */
static int
rgroup_prepare(struct rgroup *g, char *reply, size_t replysize)
{
	const struct envelope *env = g->b->env;
	const char *error;
	bool all_local = true;
	size_t i;

	if (env->sender == NULL) {
		snprintf(reply, replysize, "451 4.3.0 incomplete envelope");
		return -1;
	}
	if (g->rd == NULL &&
	    (g->rd = spool_reader_open(g->b->rd_spool, g->b->id,
	    &error)) == NULL) {
		if (errno == EBADMSG)
			g->b->corrupt = true;
		snprintf(reply, replysize, "451 4.3.0 cannot read queue "
		    "file: %s", error);
		return -1;
	}
	g->rcpts = xcalloc(g->n, sizeof(*g->rcpts));
	for (i = 0; i < g->n; i++) {
		const struct envelope_rcpt *er = &env->rcpts[g->b->idx[g->k[i]]];

		g->rcpts[i].addr = er->addr;
		g->rcpts[i].notify = er->notify;
		g->rcpts[i].orcpt = er->orcpt;
		if (er->kind != RCPT_KIND_LOCAL) {
			all_local = false;
			continue;
		}
		/* Local addresses are kept unquoted (lmtp.h). */
		if (g->quoted == NULL)
			g->quoted = xcalloc(g->n, sizeof(*g->quoted));
		if ((g->quoted[i] = lmtp_rcpt_addr(er->addr)) != NULL)
			g->rcpts[i].addr = g->quoted[i];
	}
	memset(&g->m, 0, sizeof(g->m));
	g->m.sender = env->sender;
	g->m.body = env->body;
	g->m.smtputf8 = env->smtputf8;
	g->m.size = spool_reader_size(g->rd);
	g->m.ret = env->ret;
	g->m.envid = env->envid;
	g->m.dsn = true;
	g->m.eight_bit = g->b->eight_bit;
	/*
	 * deliver lmtp: the server stores the message, it does not relay
	 * it, and Maildir delivery takes lines of any length: so does this
	 * (no 554 5.6.0 for a line over 998 octets).
	 */
	g->m.longest_line = all_local ? 0 : g->b->longest_line;
	g->m.rcpts = g->rcpts;
	g->m.nrcpts = g->n;
	g->m.src.next = rgroup_source_next;
	g->m.src.arg = g;
	return 0;
}

/* The client finished g on rc: copy the results out. */
static void
rconn_group_done(struct rconn *rc)
{
	struct rgroup *g = rc->g;
	bool dsn = (smtpc_caps(rc->c) & SMTPC_CAP_DSN) != 0;
	const char *tls = smtpc_tls_info(rc->c);
	char esc[1200];
	size_t i, ok = 0;

	rc->g = NULL;
	rc->nmsgs++;
	for (i = 0; i < g->n; i++) {
		const struct smtpc_rcpt *sr = &g->rcpts[i];
		struct remote_result *res = &g->b->res[g->k[i]];

		res->status = sr->status == SMTPC_OK ? REMOTE_OK :
		    sr->status == SMTPC_PERM ? REMOTE_PERM : REMOTE_TEMP;
		strlcpy(res->reply, sr->reply.text[0] != '\0' ?
		    sr->reply.text : g->m.reply.text, sizeof(res->reply));
		if (res->reply[0] == '\0')
			strlcpy(res->reply, "451 4.4.2 no reply from server",
			    sizeof(res->reply));
		strlcpy(res->remote_mta, rc->host, sizeof(res->remote_mta));
		strlcpy(res->relay, rc->peer, sizeof(res->relay));
		res->relayed = res->status == REMOTE_OK && !dsn;
		if (res->status == REMOTE_OK)
			ok++;
	}
	log_info("remote: transaction queue=%s relay=%s tls=\"%s\" "
	    "accepted=%zu/%zu conn_msgs=%u reply=\"%s\"", g->b->id, rc->peer,
	    tls != NULL ? tls : "none", ok, g->n, rc->nmsgs,
	    log_escape(esc, sizeof(esc), g->m.reply.text,
	    strlen(g->m.reply.text)));
	rgroup_finish(g);
}

/* Groups of d that no connection of d is on its way to take. */
static size_t
rdest_unserved(const struct rdest *d)
{
	const struct rgroup *g;
	size_t waiting = 0;

	TAILQ_FOREACH(g, &d->queue, entry)
		waiting++;
	return waiting > d->nstarting ? waiting - d->nstarting : 0;
}

/* Every slot is taken and a destination other than d waits for one. */
static bool
remote_slot_wanted(const struct remote *r, const struct rdest *d)
{
	const struct conf *c = r->conf;
	const struct rdest *o;

	if (r->nconns < c->max_outbound_connections)
		return false;
	TAILQ_FOREACH(o, &r->dests, entry)
		if (o != d && o->nconns < rdest_limit(o) &&
		    rdest_unserved(o) > 0)
			return true;
	return false;
}

/* rc is ready: take the next group, or wait idle, or quit. */
static void
rconn_next(struct rconn *rc)
{
	struct rdest *d = rc->d;
	const struct conf *c = d->r->conf;
	struct rgroup *g;
	char reply[1024];

	for (;;) {
		if (!smtpc_reusable(rc->c) ||
		    rc->nmsgs >= c->max_messages_per_connection ||
		    d->r->freeing) {
			rc->state = RC_CLOSING;
			smtpc_quit(rc->c);
			return;
		}
		if ((g = TAILQ_FIRST(&d->queue)) == NULL &&
		    remote_slot_wanted(d->r, d)) {
			/* Another destination waits for this slot. */
			rc->state = RC_CLOSING;
			smtpc_quit(rc->c);
			return;
		}
		if (g == NULL) {
			struct timeval tv = { REMOTE_IDLE_SECONDS, 0 };

			rc->state = RC_IDLE;
			evtimer_add(rc->timer, &tv);
			return;
		}
		TAILQ_REMOVE(&d->queue, g, entry);
		if (rgroup_prepare(g, reply, sizeof(reply)) == -1) {
			rgroup_fail(g, REMOTE_TEMP, reply, NULL, 0);
			continue;
		}
		evtimer_del(rc->timer);
		rc->g = g;
		rc->state = RC_BUSY;
		if (smtpc_send(rc->c, &g->m) == -1) {
			rc->g = NULL;
			TAILQ_INSERT_HEAD(&d->queue, g, entry);
			rc->state = RC_CLOSING;
			smtpc_quit(rc->c);
			return;
		}
		return;
	}
}

static void
rconn_cb(struct smtpc *c, enum smtpc_event ev, void *arg)
{
	struct rconn *rc = arg;
	struct rdest *d = rc->d;
	const struct smtpc_reply *err;
	char esc[1200];

	(void)c;
	switch (ev) {
	case SMTPC_READY:
		d->nstarting--;
		rc->state = RC_BUSY;
		d->failures = 0;
		d->backoff_until = 0;
		/* Working again: try one connection more than before. */
		if (d->cap != 0 &&
		    ++d->cap >= d->r->conf->destination_concurrency)
			d->cap = 0;
		log_info("remote: connected destination=%s relay=%s tls=\"%s\""
		    "%s", d->key, rc->peer, smtpc_tls_info(rc->c) != NULL ?
		    smtpc_tls_info(rc->c) : "none",
		    smtpc_authenticated(rc->c) ? " auth=yes" : "");
		rconn_next(rc);
		return;
	case SMTPC_FAILED:
		err = smtpc_last_error(rc->c);
		rc->err = *err;
		if (smtpc_tls_failed(rc->c) && rc->auth) {
			/* Never plaintext with credentials: as any failure,
			 * the next address, then defer. */
			log_info("remote: relay=%s TLS handshake failed, not "
			    "retrying without TLS (relayhost_auth): %s",
			    rc->peer, log_escape(esc, sizeof(esc), err->text,
			    strlen(err->text)));
		} else if (smtpc_tls_failed(rc->c) && !rc->plain) {
			/* RFC 7435: opportunistic, so plaintext next. */
			log_info("remote: relay=%s TLS handshake failed, "
			    "retrying without TLS: %s", rc->peer,
			    log_escape(esc, sizeof(esc), err->text,
			    strlen(err->text)));
			d->notls_until = remote_now() + REMOTE_NOTLS_SECONDS;
			smtpc_free(rc->c);
			rc->c = NULL;
			rc->plain = true;
			rconn_try(rc);
			return;
		}
		log_info("remote: destination=%s relay=%s failed: %s", d->key,
		    rc->peer, log_escape(esc, sizeof(esc), err->text,
		    strlen(err->text)));
		if (smtpc_failure_status(rc->c) != SMTPC_PERM)
			rc->all_perm = false;
		if (smtpc_auth_refused(rc->c)) {
			char reply[sizeof(rc->err.text)];

			/* The relay's other addresses share its accounts:
			 * more tries would only add failed logins. */
			strlcpy(reply, rc->err.text, sizeof(reply));
			smtpc_free(rc->c);
			rc->c = NULL;
			rconn_give_up(rc, REMOTE_TEMP, reply);
			return;
		}
		/* FAILED only ever comes before READY (client.h): no group
		 * is in flight; try the next address. */
		smtpc_free(rc->c);
		rc->c = NULL;
		rc->ti++;
		rc->plain = false;
		rconn_try(rc);
		return;
	case SMTPC_DONE:
		rconn_group_done(rc);
		if (!smtpc_reusable(rc->c)) {
			err = smtpc_last_error(rc->c);
			if (err != NULL && err->code == 421)
				rdest_backoff(d, err->text);
		}
		rconn_next(rc);
		return;
	case SMTPC_CLOSED:
		if (rc->g != NULL)
			rconn_group_done(rc);
		rconn_close(rc);
		return;
	}
}

/* Format "host[addr]:port" for logs. */
static void
rconn_peer_name(struct rconn *rc, const struct dns_target *t)
{
	char a[INET6_ADDRSTRLEN] = "?";
	unsigned int port = 0;

	if (t->addr.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)&t->addr;

		inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
		port = ntohs(sin->sin_port);
	} else if (t->addr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)&t->addr;

		inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a));
		port = ntohs(sin6->sin6_port);
	} else if (t->addr.ss_family == AF_UNIX) {
		snprintf(rc->peer, sizeof(rc->peer), "%s", t->host);
		return;
	}
	snprintf(rc->peer, sizeof(rc->peer), "%s[%s]:%u", t->host, a, port);
}

/* Source address for family, from smtp_bind_address(6). */
static socklen_t
rconn_bind_addr(const struct conf *c, int family,
    struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET && c->smtp_bind_address != NULL) {
		struct sockaddr_in *sin = (void *)ss;

		sin->sin_family = AF_INET;
		if (inet_pton(AF_INET, c->smtp_bind_address,
		    &sin->sin_addr) == 1)
			return sizeof(*sin);
	}
	if (family == AF_INET6 && c->smtp_bind_address6 != NULL) {
		struct sockaddr_in6 *sin6 = (void *)ss;

		sin6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, c->smtp_bind_address6,
		    &sin6->sin6_addr) == 1)
			return sizeof(*sin6);
	}
	return 0;
}

/* Connect to the current target, or give up when none is left. */
static void
rconn_try(struct rconn *rc)
{
	struct rdest *d = rc->d;
	struct remote *r = d->r;
	const struct conf *c = r->conf;
	struct smtpc_config cfg;
	struct sockaddr_storage bind;
	const struct dns_target *t;

	if (rc->ti >= rc->ntargets || rc->tries >= REMOTE_MAX_TRIES) {
		char reply[1200];

		if (rc->tries == 0)
			snprintf(reply, sizeof(reply), "451 4.4.4 no address "
			    "to connect to for %s", d->host);
		else
			strlcpy(reply, rc->err.text, sizeof(reply));
		rconn_give_up(rc, rc->tries > 0 && rc->all_perm ?
		    REMOTE_PERM : REMOTE_TEMP, reply);
		return;
	}
	t = &rc->targets[rc->ti];
	if (!rc->plain)
		rc->tries++;
	rconn_peer_name(rc, t);
	strlcpy(rc->host, t->host, sizeof(rc->host));
	memset(&cfg, 0, sizeof(cfg));
	cfg.proto = d->kind == RDEST_LMTP_UNIX || d->kind == RDEST_LMTP_INET ?
	    SMTPC_LMTP : SMTPC_SMTP;
	cfg.helo = c->hostname;
	cfg.peer_name = t->host;
	cfg.addr = (const struct sockaddr *)&t->addr;
	cfg.addrlen = t->addrlen;
	if ((cfg.bindlen = rconn_bind_addr(c, t->addr.ss_family, &bind)) > 0)
		cfg.bind = (const struct sockaddr *)&bind;
	cfg.starttls = !rc->plain && d->notls_until <= remote_now() &&
	    cfg.proto == SMTPC_SMTP;
	cfg.ssl_ctx = r->ssl;
	/* The configuration may have changed since d was made (reload). */
	rc->auth = d->auth && cfg.proto == SMTPC_SMTP &&
	    c->relayhost_auth_user != NULL &&
	    c->relayhost_auth_password != NULL;
	if (rc->auth) {
		cfg.auth_user = c->relayhost_auth_user;
		cfg.auth_password = c->relayhost_auth_password;
		cfg.starttls = true;
	}
	cfg.timeout_connect = (unsigned int)c->client_timeout_connect;
	cfg.timeout_command = (unsigned int)c->client_timeout_command;
	cfg.timeout_data = (unsigned int)c->client_timeout_data;
	rc->state = RC_CONNECTING;
	rc->c = smtpc_open(r->base, &cfg, rconn_cb, rc);
	if (rc->c == NULL) {
		snprintf(rc->err.text, sizeof(rc->err.text), "451 4.4.1 "
		    "cannot connect to %s: %s", rc->peer, strerror(errno));
		rc->all_perm = false;
		rc->ti++;
		rconn_try(rc);
	}
}

static void
rconn_route_cb(void *arg, const struct dns_route *route)
{
	struct rconn *rc = arg;
	struct rdest *d = rc->d;
	char esc[600];

	rc->dnsq = 0;
	if (route->kind != DNS_ROUTE_OK) {
		log_info("remote: destination=%s %s: %s", d->key,
		    route->kind == DNS_ROUTE_PERM ? "undeliverable" :
		    "DNS lookup failed", log_escape(esc, sizeof(esc),
		    route->reply, strlen(route->reply)));
		rconn_give_up(rc, route->kind == DNS_ROUTE_PERM ? REMOTE_PERM :
		    REMOTE_TEMP, route->reply);
		return;
	}
	rc->ntargets = route->ntargets;
	rc->targets = xcalloc(rc->ntargets > 0 ? rc->ntargets : 1,
	    sizeof(*rc->targets));
	memcpy(rc->targets, route->targets,
	    rc->ntargets * sizeof(*rc->targets));
	rconn_try(rc);
}

/* Self names and addresses for the MX list (RFC 5321 5.1). */
static void
rconn_lookup(struct rconn *rc)
{
	struct rdest *d = rc->d;
	struct remote *r = d->r;
	const struct conf *c = r->conf;
	struct dns_route_opts opts;
	struct sockaddr_storage *self;
	const char *names[1];
	size_t i;

	self = xcalloc(c->nlisten > 0 ? c->nlisten : 1, sizeof(*self));
	/*
	 * A target is us when it is one of our listeners, address and
	 * port: a relay host on our address but another port (a content
	 * filter, a second MTA) is somebody else.
	 */
	for (i = 0; i < c->nlisten; i++)
		memcpy(&self[i], &c->listen[i].addr, c->listen[i].addrlen);
	names[0] = c->hostname;
	memset(&opts, 0, sizeof(opts));
	opts.use_mx = d->kind == RDEST_MX;
	opts.inet6 = c->inet6;
	opts.port = d->port;
	opts.self_names = names;
	opts.nself_names = 1;
	opts.self_addrs = self;
	opts.nself_addrs = c->nlisten;
	rc->state = RC_DNS;
	rc->dnsq = dns_route_lookup(r->dns, d->host, &opts, rconn_route_cb,
	    rc);
	free(self);
}

static void
rconn_start(struct rdest *d)
{
	struct remote *r = d->r;
	struct rconn *rc;

	rc = xcalloc(1, sizeof(*rc));
	rc->d = d;
	rc->all_perm = true;
	rc->timer = evtimer_new(r->base, rconn_idle_cb, rc);
	if (rc->timer == NULL)
		fatalx("remote: evtimer_new failed");
	TAILQ_INSERT_TAIL(&d->conns, rc, entry);
	d->nconns++;
	d->nstarting++;
	r->nconns++;

	if (d->kind == RDEST_LMTP_UNIX) {
		struct sockaddr_un *sun;

		rc->ntargets = 1;
		rc->targets = xcalloc(1, sizeof(*rc->targets));
		sun = (struct sockaddr_un *)&rc->targets[0].addr;
		sun->sun_family = AF_UNIX;
		strlcpy(sun->sun_path, d->path, sizeof(sun->sun_path));
		rc->targets[0].addrlen = sizeof(*sun);
		strlcpy(rc->targets[0].host, d->path,
		    sizeof(rc->targets[0].host));
		rconn_try(rc);
		return;
	}
	if (r->dns == NULL) {
		rconn_give_up(rc, REMOTE_TEMP, "451 4.4.3 no DNS resolver "
		    "configured");
		return;
	}
	rconn_lookup(rc);
}

/*
 * Every connection slot is taken and want waits for one: an idle
 * connection of another destination says QUIT now instead of holding
 * its slot for REMOTE_IDLE_SECONDS (its SMTPC_CLOSED pumps again). Not
 * while a connection is closing already: that slot comes first.
 */
static void
remote_release_idle(struct remote *r, const struct rdest *want)
{
	struct rconn *rc, *idle = NULL;
	struct rdest *d;

	TAILQ_FOREACH(d, &r->dests, entry) {
		TAILQ_FOREACH(rc, &d->conns, entry) {
			if (rc->state == RC_CLOSING)
				return;
			if (rc->state == RC_IDLE && d != want && idle == NULL)
				idle = rc;
		}
	}
	if (idle == NULL)
		return;
	log_debug("remote: destination=%s relay=%s closes idle for "
	    "destination=%s", idle->d->key, idle->peer, want->key);
	idle->state = RC_CLOSING;
	evtimer_del(idle->timer);
	smtpc_quit(idle->c);
}

/* Give waiting groups connections, within the limits. */
static void
rdest_pump(struct rdest *d)
{
	struct remote *r = d->r;
	const struct conf *c = r->conf;
	struct rconn *rc;
	size_t waiting = 0;
	struct rgroup *g;

	if (TAILQ_EMPTY(&d->queue))
		return;
	if (d->backoff_until > remote_now()) {
		rdest_suspend_queue(d);
		return;
	}
	/* Idle connections first. */
	TAILQ_FOREACH(rc, &d->conns, entry) {
		if (rc->state == RC_IDLE) {
			rconn_next(rc);
			if (TAILQ_EMPTY(&d->queue))
				return;
		}
	}
	TAILQ_FOREACH(g, &d->queue, entry)
		waiting++;
	while (waiting > d->nstarting && d->nconns < rdest_limit(d)) {
		if (r->nconns >= c->max_outbound_connections) {
			remote_release_idle(r, d);
			return;
		}
		rconn_start(d);
		if (TAILQ_EMPTY(&d->queue))
			return;
	}
}

static void
remote_pump_all(struct remote *r)
{
	struct rdest *d, *next;

	TAILQ_FOREACH_SAFE(d, &r->dests, entry, next)
		if (!TAILQ_EMPTY(&d->queue))
			rdest_pump(d);
}

/* ---- routing: which destination a recipient goes to ---- */

static void remote_dest_route(const struct conf_route *route,
    const char *scheme, char *key, size_t keysize, enum rdest_kind *kind,
    char *host, size_t hostsize, unsigned int *port, char *path,
    size_t pathsize);

static void
remote_dest_for(struct remote *r, const char *addr, char *key,
    size_t keysize, enum rdest_kind *kind, char *host, size_t hostsize,
    unsigned int *port, char *path, size_t pathsize, bool *auth)
{
	const struct conf *c = r->conf;
	const struct conf_route *route = NULL;
	const char *at = strrchr(addr, '@');
	char domain[256];
	const char *scheme = "smtp";

	*auth = false;
	strlcpy(domain, at != NULL ? at + 1 : "", sizeof(domain));
	ascii_lowercase(domain);
	/* An address literal [1.2.3.4] is a host, not a domain. */
	if (domain[0] == '[') {
		char *end = strchr(domain, ']');
		const char *lit = domain + 1;

		if (end != NULL)
			*end = '\0';
		if (strncasecmp(lit, "ipv6:", 5) == 0)
			lit += 5;
		*kind = RDEST_HOST;
		strlcpy(host, lit, hostsize);
		*port = 25;
		snprintf(key, keysize, "smtp:[%s]:25", host);
		return;
	}
	if ((route = conf_route_find(c, domain)) == NULL) {
		route = c->relayhost;
		/* relayhost_auth is for the relayhost only (not the MX of
		 * a domain, not a transport line). */
		if (route != NULL && route->kind == CONF_ROUTE_SMTP &&
		    c->relayhost_auth_user != NULL &&
		    c->relayhost_auth_password != NULL) {
			*auth = true;
			scheme = "smtp+auth";
		}
	}
	if (route == NULL) {
		*kind = RDEST_MX;
		strlcpy(host, domain, hostsize);
		*port = 25;
		snprintf(key, keysize, "mx:%s", domain);
		return;
	}
	remote_dest_route(route, scheme, key, keysize, kind, host, hostsize,
	    port, path, pathsize);
}

/* The destination of a next hop (a relayhost, transport or deliver line). */
static void
remote_dest_route(const struct conf_route *route, const char *scheme,
    char *key, size_t keysize, enum rdest_kind *kind, char *host,
    size_t hostsize, unsigned int *port, char *path, size_t pathsize)
{
	*port = route->port;
	if (route->kind == CONF_ROUTE_LMTP_UNIX) {
		*kind = RDEST_LMTP_UNIX;
		strlcpy(path, route->path, pathsize);
		snprintf(key, keysize, "lmtp:unix:%s", route->path);
		return;
	}
	strlcpy(host, route->host, hostsize);
	if (route->kind == CONF_ROUTE_LMTP_INET) {
		*kind = RDEST_LMTP_INET;
		snprintf(key, keysize, "lmtp:inet:[%s]:%u", host, *port);
		return;
	}
	*kind = route->mx ? RDEST_MX : RDEST_HOST;
	snprintf(key, keysize, route->mx ? "%s:%s:%u" : "%s:[%s]:%u", scheme,
	    host, *port);
}

/*
 * The transport's discard: next hop for addr's domain, or NULL. An address
 * literal never matches (it names a host).
 */
static const struct conf_route *
remote_discard_for(const struct conf *c, const char *addr)
{
	const struct conf_route *route;
	const char *at = strrchr(addr, '@');
	char domain[256];

	if (at == NULL || at[1] == '[' || c->nroutes == 0)
		return NULL;
	strlcpy(domain, at + 1, sizeof(domain));
	ascii_lowercase(domain);
	route = conf_route_find(c, domain);
	return route != NULL && route->kind == CONF_ROUTE_DISCARD ? route :
	    NULL;
}

bool
remote_discards(const struct conf *c, const struct envelope_rcpt *r)
{
	return r->kind != RCPT_KIND_LOCAL && remote_discard_for(c, r->addr) !=
	    NULL;
}

void
remote_submit(struct remote *r, struct remote_batch *b)
{
	struct rgroup **groups;
	struct rdest **dests;
	size_t i, j, ngroups = 0;

	groups = xcalloc(b->n, sizeof(*groups));
	dests = xcalloc(b->n, sizeof(*dests));
	b->pending = 1;		/* held until every group is queued */
	for (i = 0; i < b->n; i++) {
		const struct envelope_rcpt *er = &b->env->rcpts[b->idx[i]];
		char key[600], host[256], path[108];
		enum rdest_kind kind;
		unsigned int port;
		struct rdest *d;
		bool auth;

		const struct conf_route *discard;

		memset(b->res + i, 0, sizeof(b->res[i]));
		host[0] = path[0] = '\0';
		auth = false;
		/* transport discard: (Postfix's discard(8)): done here. */
		if (er->kind != RCPT_KIND_LOCAL &&
		    (discard = remote_discard_for(r->conf, er->addr)) != NULL) {
			b->res[i].status = REMOTE_OK;
			snprintf(b->res[i].reply, sizeof(b->res[i].reply),
			    "250 2.0.0 discarded%s%s", discard->path[0] != '\0'
			    ? ": " : "", discard->path);
			strlcpy(b->res[i].relay, "discard",
			    sizeof(b->res[i].relay));
			continue;
		}
		/* deliver lmtp (lmtp.h): local recipients go to that server. */
		if (er->kind == RCPT_KIND_LOCAL &&
		    r->conf->deliver_lmtp != NULL)
			remote_dest_route(r->conf->deliver_lmtp, "lmtp", key,
			    sizeof(key), &kind, host, sizeof(host), &port, path,
			    sizeof(path));
		else
			remote_dest_for(r, er->addr, key, sizeof(key), &kind,
			    host, sizeof(host), &port, path, sizeof(path),
			    &auth);
		d = rdest_get(r, key);
		d->auth = auth;
		d->kind = kind;
		d->port = port;
		strlcpy(d->host, host, sizeof(d->host));
		strlcpy(d->path, path, sizeof(d->path));
		for (j = 0; j < ngroups; j++)
			if (dests[j] == d)
				break;
		if (j == ngroups) {
			groups[j] = xcalloc(1, sizeof(*groups[j]));
			groups[j]->b = b;
			dests[j] = d;
			ngroups++;
		}
		groups[j]->k = xrealloc(groups[j]->k, (groups[j]->n + 1) *
		    sizeof(*groups[j]->k));
		groups[j]->k[groups[j]->n++] = i;
	}
	b->pending += (unsigned int)ngroups;
	b->rd_spool = r->sp;
	for (j = 0; j < ngroups; j++) {
		TAILQ_INSERT_TAIL(&dests[j]->queue, groups[j], entry);
		rdest_pump(dests[j]);
	}
	free(groups);
	free(dests);
	/* Destinations whose back-off ended since are forgotten. */
	remote_gc_later(r);
	if (--b->pending == 0)
		b->done(b, b->arg);
}

/* ---- lifetime ---- */

struct remote *
remote_new(struct event_base *base, struct spool *sp, const struct conf *c,
    struct dns *dns)
{
	struct remote *r = xcalloc(1, sizeof(*r));
	char err[256];

	r->base = base;
	r->sp = sp;
	r->conf = c;
	r->dns = dns;
	TAILQ_INIT(&r->dests);
	if ((r->gc_ev = event_new(base, -1, 0, remote_gc_cb, r)) == NULL)
		fatalx("remote: event_new failed");
	if ((r->ssl = smtpc_ssl_ctx_new(err, sizeof(err))) == NULL)
		log_warn("remote: no TLS for outbound mail: %s", err);
	return r;
}

void
remote_set_conf(struct remote *r, const struct conf *c)
{
	r->conf = c;
}

void
remote_flush(struct remote *r)
{
	struct rdest *d;

	TAILQ_FOREACH(d, &r->dests, entry) {
		d->backoff_until = 0;
		d->failures = 0;
		d->cap = 0;
	}
	remote_gc_later(r);
}

size_t
remote_ndests(const struct remote *r)
{
	const struct rdest *d;
	size_t n = 0;

	TAILQ_FOREACH(d, &r->dests, entry)
		n++;
	return n;
}

void
remote_free(struct remote *r)
{
	struct rdest *d;
	struct rconn *rc;

	if (r == NULL)
		return;
	r->freeing = true;
	while ((d = TAILQ_FIRST(&r->dests)) != NULL) {
		while ((rc = TAILQ_FIRST(&d->conns)) != NULL)
			/* rconn_free() unlinks rc, TAILQ_FIRST moves on:
			 * NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
			rconn_free(rc);
		rdest_fail_queue(d, REMOTE_TEMP, "451 4.4.2 delivery "
		    "interrupted by shutdown", 0);
		TAILQ_REMOVE(&r->dests, d, entry);
		free(d);
	}
	event_free(r->gc_ev);
	if (r->ssl != NULL)
		SSL_CTX_free(r->ssl);
	free(r);
}
