/*
 * smtp_private.h: what server.c and session.c share. Not for other
 * subsystems.
 */
#ifndef PETREL_SMTP_PRIVATE_H
#define PETREL_SMTP_PRIVATE_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <stdbool.h>
#include <stdint.h>

#include "smtp/reply.h"
#include "smtp/smtp.h"

struct event_base;
struct event;
struct evconnlistener;
struct smtp_session;
struct sasl_verifier;
struct sasl_throttle;
struct sasl_dovecot;

struct smtp_listener {
	struct smtp_server *srv;
	struct evconnlistener *evl;
	struct event *retry_ev;		/* re-enable after EMFILE */
	struct conf_listen conf;
	bool paused;			/* descriptors ran low or out */
	uint64_t low_logged;		/* time_mono_usec of that log line */
};

struct smtp_ipcount {
	struct smtp_ipcount *next;
	char addr[64];
	unsigned int count;
};

#define SMTP_SESSION_BUCKETS	4096
#define SMTP_IP_BUCKETS		1024

struct smtp_server {
	struct event_base *base;
	struct spool *spool;
	struct smtp_runtime *rt;
	smtp_queued_cb queued;
	void *queued_arg;

	struct smtp_listener **listeners;
	size_t nlisteners;
	/* Accepting stops when accept(2) returns a descriptor this high: the
	 * rest are kept for the sessions' spool files and deliveries. */
	int fd_high;

	struct smtp_session *sessions[SMTP_SESSION_BUCKETS];
	size_t nsessions;
	uint64_t next_id;
	struct smtp_ipcount *ips[SMTP_IP_BUCKETS];

	/* SMTP AUTH: shared by every session, rebuilt when the runtime's
	 * settings for them change. */
	struct sasl_verifier *verifier;	/* crypt_r on worker threads */
	struct sasl_throttle *throttle;	/* failures per client address */
	uint64_t throttle_delay;	/* the auth_fail_delay it was made for */
	struct sasl_dovecot *dovecot;	/* `auth dovecot`, else NULL */
	char *dovecot_path;
	struct sasl_dovecot **retired;	/* replaced by a reload; kept for
					 * the requests still in flight */
	size_t nretired;

	/* SPF/DKIM/DMARC on incoming mail; NULL: not checked. */
	struct dns *dns;
	struct workq *workq;
	/* DKIM signing jobs on workq whose done has not run: orphaned by
	 * smtp_server_free(), since workq_free() runs them afterwards. */
	LIST_HEAD(, smtp_sign_job) sign_jobs;

	bool shutting_down;
	void (*shutdown_done)(void *);
	void *shutdown_arg;
	struct event *shutdown_ev;

	/* issue 6: the sendmail socket's identity lookups (local.c). */
	struct smtp_local_ctl *local;
};

/* session.c */
void smtp_session_start(struct smtp_server *srv, int fd,
    const struct sockaddr *sa, socklen_t salen,
    const struct conf_listen *l, enum reply_id refuse);
void smtp_session_start_local(struct smtp_server *srv, int fd, uid_t uid,
    const char *user, const char *via, enum reply_id refuse);
void smtp_session_shutdown(struct smtp_session *s);
void smtp_sign_orphan_all(struct smtp_server *srv);
void smtp_session_destroy(struct smtp_session *s);
uint64_t smtp_session_id(const struct smtp_session *s);
struct smtp_session *smtp_session_next(struct smtp_session *s);
void smtp_session_set_next(struct smtp_session *s, struct smtp_session *n);
const char *smtp_session_addr(const struct smtp_session *s);

/* server.c */
void smtp_server_register(struct smtp_server *srv, struct smtp_session *s);
void smtp_server_unregister(struct smtp_server *srv, struct smtp_session *s);
struct smtp_session *smtp_server_find(struct smtp_server *srv, uint64_t id);

/* local.c: the accept callback of the sendmail socket's listener. */
/* Called by an accept callback with the descriptor accepted: when it is
 * one of the last, the listener stops accepting until some are free. */
void smtp_server_accepted(struct smtp_listener *l, int fd);
void smtp_local_acceptcb(struct evconnlistener *evl, int fd,
    struct sockaddr *sa, int salen, void *arg);
/* local.c: forget the server (jobs still running close their socket). */
void smtp_local_detach(struct smtp_server *srv);

#endif
