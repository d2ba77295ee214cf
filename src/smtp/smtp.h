/*
 * smtp.h: the SMTP server: listeners, connection limits and sessions.
 *
 * The daemon creates one smtp_server over an event loop, hands it the
 * listening sockets it bound (before dropping privileges), and swaps the
 * runtime configuration on reload. Each accepted connection gets a session
 * (session.c) that holds a reference to the runtime it started with, so a
 * reload never pulls the configuration from under an open transaction.
 */
#ifndef PETREL_SMTP_SMTP_H
#define PETREL_SMTP_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "queue/envelope.h"

struct event_base;
struct spool;
struct policy_tables;
struct smtp_server;
struct tls_server;
struct dns;
struct workq;
struct dkim_privkey;

/* Configuration and tables shared by sessions; reference-counted. */
struct smtp_runtime {
	struct conf *conf;
	struct policy_tables *tables;
	struct tls_server *tls;		/* STARTTLS and port 465, or NULL */
	/* The dkim_sign keys, loaded: dkim_keys[i] is conf->dkim_keys[i]'s. */
	struct dkim_privkey **dkim_keys;
	unsigned int refs;
};

/* Takes ownership of conf and tables. refs starts at 1. */
struct smtp_runtime *smtp_runtime_new(struct conf *conf,
    struct policy_tables *tables);
struct smtp_runtime *smtp_runtime_ref(struct smtp_runtime *rt);

/*
 * Give rt the TLS server its sessions use (takes over one reference of
 * tls; NULL: no TLS, STARTTLS is not offered and port 465 sessions are
 * closed). Sessions that started before keep the runtime, so the server
 * they began with, until they end: a reload never cuts a TLS session.
 */
void smtp_runtime_set_tls(struct smtp_runtime *rt, struct tls_server *tls);
void smtp_runtime_unref(struct smtp_runtime *rt);

/* Called on the loop for every message the spool made durable. */
typedef void (*smtp_queued_cb)(void *arg, const char *id,
    const struct envelope *env);

struct smtp_server *smtp_server_new(struct event_base *base,
    struct spool *sp, struct smtp_runtime *rt, smtp_queued_cb queued,
    void *arg);

/*
 * What message authentication (SPF, DKIM, DMARC) needs: the resolver and
 * a worker pool for the DKIM crypto (lib/workq.h). Without a resolver,
 * incoming mail is not checked (and gets no Authentication-Results).
 */
void smtp_server_set_msgauth(struct smtp_server *srv, struct dns *dns,
    struct workq *workq);

/* Install a new runtime for sessions that start from now on. */
void smtp_server_set_runtime(struct smtp_server *srv,
    struct smtp_runtime *rt);

/* Start accepting on a bound, listening socket. */
int smtp_server_listen(struct smtp_server *srv, int fd,
    const struct conf_listen *l);

/*
 * Begin shutdown: close listeners; idle sessions get 421 4.3.2 and are
 * closed; sessions in DATA (or waiting for the spool) may finish their
 * message, then get 421. done() is called once no session remains.
 */
void smtp_server_shutdown(struct smtp_server *srv, void (*done)(void *),
    void *arg);

/*
 * Local injection (local.c, issue 6). smtp_server_listen_local: accept on
 * the bound, listening RUN_DIR/sendmail Unix socket; each caller's uid
 * comes from SO_PEERCRED and its login name from a lookup on the msgauth
 * worker pool (smtp_server_set_msgauth), so the loop never reads
 * /etc/passwd. smtp_server_local_session: a session (role local) on fd,
 * one end of a socketpair, for uid whose login name is user (NULL: none),
 * as maildrop pickup gives it; the server owns fd from the call on
 * (closed at once when the server is shutting down). Both sessions relay
 * like trusted clients, offer no TLS or AUTH, add Date, Message-ID and
 * the X-Authentication-Warning of a foreign -f sender.
 */
int smtp_server_listen_local(struct smtp_server *srv, int fd);
void smtp_server_local_session(struct smtp_server *srv, int fd,
    unsigned int uid, const char *user);

size_t smtp_server_sessions(const struct smtp_server *srv);

/* Close every remaining session at once (after the shutdown deadline). */
void smtp_server_close_all(struct smtp_server *srv);

void smtp_server_free(struct smtp_server *srv);

#endif
