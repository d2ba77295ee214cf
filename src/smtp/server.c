/*
 * server.c: listeners, the session table and connection limits.
 *
 * Entry points: smtp_server_new, smtp_server_listen, smtp_server_shutdown.
 * SECURITY: counts connections per client address before a session reads
 * a byte; over a limit the client gets 421 4.7.0 and is closed. When
 * descriptors run low (or out: EMFILE), a listener stops accepting for a
 * second at a time, so that the sessions it has can still open their spool
 * files; new clients wait in the listen backlog meanwhile.
 * OWNERSHIP: the server owns its listeners and every session; a session
 * unregisters itself when it ends.
 */
#include "smtp/smtp.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "lib/log.h"
#include "lib/util.h"
#include "policy/policy.h"
#include "sasl/dovecot.h"
#include "sasl/sasl.h"
#include "tls/tls.h"
#include "msgauth/dkim.h"
#include "smtp/smtp_private.h"

struct smtp_runtime *
smtp_runtime_new(struct conf *conf, struct policy_tables *tables)
{
	struct smtp_runtime *rt = xcalloc(1, sizeof(*rt));

	rt->conf = conf;
	rt->tables = tables;
	rt->refs = 1;
	return rt;
}

struct smtp_runtime *
smtp_runtime_ref(struct smtp_runtime *rt)
{
	rt->refs++;
	return rt;
}

void
smtp_runtime_unref(struct smtp_runtime *rt)
{
	if (rt == NULL || --rt->refs > 0)
		return;
	if (rt->dkim_keys != NULL) {
		size_t i;

		for (i = 0; i < rt->conf->ndkim_keys; i++)
			dkim_privkey_free(rt->dkim_keys[i]);
		free(rt->dkim_keys);
	}
	conf_free(rt->conf);
	policy_tables_free(rt->tables);
	tls_server_unref(rt->tls);
	free(rt);
}

void
smtp_runtime_set_tls(struct smtp_runtime *rt, struct tls_server *tls)
{
	tls_server_unref(rt->tls);
	rt->tls = tls;
}

/* Threads that run crypt_r: a login costs tens of milliseconds. */
#define SMTP_AUTH_THREADS	2
#define SMTP_AUTH_DELAY_MAX_MS	10000	/* auth_fail_delay doubles to this */
#define SMTP_DOVECOT_TIMEOUT	30	/* seconds per request */

static void
smtp_server_retire_dovecot(struct smtp_server *srv)
{
	srv->retired = xrealloc(srv->retired,
	    (srv->nretired + 1) * sizeof(*srv->retired));
	srv->retired[srv->nretired++] = srv->dovecot;
	srv->dovecot = NULL;
	free(srv->dovecot_path);
	srv->dovecot_path = NULL;
}

/* Make the AUTH helpers match the runtime's configuration. */
static void
smtp_server_auth_setup(struct smtp_server *srv)
{
	const struct conf *c = srv->rt->conf;
	uint64_t delay = c->auth_fail_delay * 1000;

	if (srv->throttle == NULL || srv->throttle_delay != delay) {
		sasl_throttle_free(srv->throttle);
		srv->throttle = sasl_throttle_new(0, delay,
		    delay > SMTP_AUTH_DELAY_MAX_MS ? delay :
		    SMTP_AUTH_DELAY_MAX_MS, SASL_THROTTLE_FORGET_DEFAULT);
		srv->throttle_delay = delay;
	}
	if (c->auth_backend == CONF_AUTH_DOVECOT) {
		if (srv->dovecot != NULL &&
		    strcmp(srv->dovecot_path, c->auth_socket) == 0)
			return;
		/* Requests in flight belong to sessions that cancel them
		 * by id on the old client: keep it until the server ends. */
		if (srv->dovecot != NULL)
			smtp_server_retire_dovecot(srv);
		srv->dovecot = sasl_dovecot_new(srv->base, c->auth_socket,
		    SMTP_DOVECOT_TIMEOUT);
		srv->dovecot_path = xstrdup(c->auth_socket);
	}
}

/*
 * Descriptors kept back from accept(2): an eighth of the limit, at least
 * 16 (at most half). A session needs one for its connection and, for a
 * message, one or two more (the spool file, the directory it syncs), and
 * deliveries need their own; taking every last descriptor for connections
 * leaves the sessions that have one unable to take their messages.
 */
#define SMTP_FD_RESERVE_MIN	16

static int
smtp_server_fd_high(void)
{
	struct rlimit rl;
	rlim_t reserve;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 ||
	    rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT_MAX)
		return INT_MAX;
	reserve = rl.rlim_cur / 8;
	if (reserve < SMTP_FD_RESERVE_MIN)
		reserve = SMTP_FD_RESERVE_MIN;
	if (reserve > rl.rlim_cur / 2)
		reserve = rl.rlim_cur / 2;
	return (int)(rl.rlim_cur - reserve);
}

struct smtp_server *
smtp_server_new(struct event_base *base, struct spool *sp,
    struct smtp_runtime *rt, smtp_queued_cb queued, void *arg)
{
	struct smtp_server *srv = xcalloc(1, sizeof(*srv));

	srv->base = base;
	srv->spool = sp;
	srv->rt = smtp_runtime_ref(rt);
	srv->queued = queued;
	srv->queued_arg = arg;
	srv->next_id = 1;
	srv->fd_high = smtp_server_fd_high();
	LIST_INIT(&srv->sign_jobs);
	srv->verifier = sasl_verifier_new(base, SMTP_AUTH_THREADS);
	smtp_server_auth_setup(srv);
	return srv;
}

void
smtp_server_set_msgauth(struct smtp_server *srv, struct dns *dns,
    struct workq *workq)
{
	srv->dns = dns;
	srv->workq = workq;
}

void
smtp_server_set_runtime(struct smtp_server *srv, struct smtp_runtime *rt)
{
	smtp_runtime_ref(rt);
	smtp_runtime_unref(srv->rt);
	srv->rt = rt;
	smtp_server_auth_setup(srv);
}

static unsigned int
smtp_hash_str(const char *s)
{
	unsigned int h = 5381;

	for (; *s != '\0'; s++)
		h = h * 33 + (unsigned char)*s;
	return h;
}

static struct smtp_ipcount **
smtp_ip_slot(struct smtp_server *srv, const char *addr)
{
	struct smtp_ipcount **pp;

	pp = &srv->ips[smtp_hash_str(addr) % SMTP_IP_BUCKETS];
	for (; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->addr, addr) == 0)
			break;
	return pp;
}

static unsigned int
smtp_ip_count(struct smtp_server *srv, const char *addr)
{
	struct smtp_ipcount **pp = smtp_ip_slot(srv, addr);

	return *pp != NULL ? (*pp)->count : 0;
}

/*
 * A session ended and freed its descriptor: a paused listener looks again
 * at once rather than at its next second. The check runs after this
 * callback returns, when the session's socket is closed.
 */
static void
smtp_server_kick_listeners(struct smtp_server *srv)
{
	size_t i;

	for (i = 0; i < srv->nlisteners; i++)
		if (srv->listeners[i]->paused)
			event_active(srv->listeners[i]->retry_ev, EV_TIMEOUT, 0);
}

void
smtp_server_register(struct smtp_server *srv, struct smtp_session *s)
{
	uint64_t id = smtp_session_id(s);
	struct smtp_session **head = &srv->sessions[id % SMTP_SESSION_BUCKETS];
	struct smtp_ipcount **pp = smtp_ip_slot(srv, smtp_session_addr(s));

	smtp_session_set_next(s, *head);
	*head = s;
	srv->nsessions++;
	if (*pp == NULL) {
		*pp = xcalloc(1, sizeof(**pp));
		strlcpy((*pp)->addr, smtp_session_addr(s), sizeof((*pp)->addr));
	}
	(*pp)->count++;
}

void
smtp_server_unregister(struct smtp_server *srv, struct smtp_session *s)
{
	uint64_t id = smtp_session_id(s);
	struct smtp_session **head = &srv->sessions[id % SMTP_SESSION_BUCKETS];
	struct smtp_session *prev = NULL, *cur = *head;
	struct smtp_ipcount **ip = smtp_ip_slot(srv, smtp_session_addr(s));

	while (cur != NULL && cur != s) {
		prev = cur;
		cur = smtp_session_next(cur);
	}
	if (cur == NULL)
		fatalx("smtp_server_unregister: unknown session");
	if (prev == NULL)
		*head = smtp_session_next(cur);
	else
		smtp_session_set_next(prev, smtp_session_next(cur));
	srv->nsessions--;
	if (*ip != NULL && --(*ip)->count == 0) {
		struct smtp_ipcount *dead = *ip;

		*ip = dead->next;
		free(dead);
	}
	if (srv->shutting_down && srv->nsessions == 0 &&
	    srv->shutdown_ev != NULL)
		event_active(srv->shutdown_ev, 0, 0);
	smtp_server_kick_listeners(srv);
}

struct smtp_session *
smtp_server_find(struct smtp_server *srv, uint64_t id)
{
	struct smtp_session *s = srv->sessions[id % SMTP_SESSION_BUCKETS];

	for (; s != NULL; s = smtp_session_next(s))
		if (smtp_session_id(s) == id)
			return s;
	return NULL;
}

static void
smtp_sockaddr_host(const struct sockaddr *sa, char *out, size_t outsize)
{
	const void *src;
	int family = sa->sa_family;

	if (family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			src = &s6->sin6_addr.s6_addr[12];
			family = AF_INET;
		} else
			src = &s6->sin6_addr;
	} else if (family == AF_INET)
		src = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else {
		strlcpy(out, "unknown", outsize);
		return;
	}
	if (inet_ntop(family, src, out, (socklen_t)outsize) == NULL)
		strlcpy(out, "unknown", outsize);
}

/* Stop accepting on l; smtp_accept_retrycb looks again in a second. */
static void
smtp_listener_pause(struct smtp_listener *l)
{
	struct timeval tv = { .tv_sec = 1, .tv_usec = 0 };

	evconnlistener_disable(l->evl);
	l->paused = true;
	evtimer_add(l->retry_ev, &tv);
}

void
smtp_server_accepted(struct smtp_listener *l, int fd)
{
	uint64_t now;

	if (fd < l->srv->fd_high || l->paused)
		return;
	/* Once a minute: at the limit, every session that ends lets one
	 * more client in and pauses the listener again. */
	now = time_mono_usec();
	if (l->low_logged == 0 || now - l->low_logged >= 60000000) {
		log_warn("smtp: descriptors low, not accepting listener=%s "
		    "fd=%d", l->conf.text, fd);
		l->low_logged = now;
	}
	smtp_listener_pause(l);
}

static void
smtp_acceptcb(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct smtp_listener *l = arg;
	struct smtp_server *srv = l->srv;
	const struct conf *c = srv->rt->conf;
	enum reply_id refuse = REPLY_NONE;
	char host[64];

	(void)evl;
	smtp_sockaddr_host(sa, host, sizeof(host));
	if (srv->nsessions >= c->max_connections)
		refuse = REPLY_TOO_MANY_CONN;
	else if (smtp_ip_count(srv, host) >= c->max_connections_per_ip)
		refuse = REPLY_TOO_MANY_CONN_IP;
	smtp_session_start(srv, fd, sa, (socklen_t)salen, &l->conf, refuse);
	smtp_server_accepted(l, fd);
}

static void
smtp_accept_retrycb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_listener *l = arg;
	struct timeval tv = { .tv_sec = 1, .tv_usec = 0 };
	int lowest;

	(void)fd;
	(void)what;
	if (!l->paused)
		return;
	/* The lowest free descriptor is the one accept(2) would return. */
	lowest = fcntl(evconnlistener_get_fd(l->evl), F_DUPFD_CLOEXEC, 0);
	if (lowest != -1)
		close(lowest);
	/* Without a session there is nothing to wait for (a limit so low
	 * that the daemon's own descriptors reach into the reserve). */
	if ((lowest == -1 || lowest >= l->srv->fd_high) &&
	    l->srv->nsessions > 0) {
		evtimer_add(l->retry_ev, &tv);
		return;
	}
	l->paused = false;
	evconnlistener_enable(l->evl);
}

static void
smtp_accepterrcb(struct evconnlistener *evl, void *arg)
{
	struct smtp_listener *l = arg;
	int e = EVUTIL_SOCKET_ERROR();

	(void)evl;
	log_err("smtp: accept failed listener=%s error=\"%s\"", l->conf.text,
	    strerror(e));
	/*
	 * EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connection stays in
	 * the backlog and the socket stays readable, so retrying at once
	 * spins the loop. Stop accepting for a second.
	 */
	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
		smtp_listener_pause(l);
}

int
smtp_server_listen(struct smtp_server *srv, int fd,
    const struct conf_listen *cl)
{
	struct smtp_listener *l = xcalloc(1, sizeof(*l));

	l->srv = srv;
	l->conf = *cl;
	evutil_make_socket_nonblocking(fd);
	l->evl = evconnlistener_new(srv->base,
	    cl->role == CONF_ROLE_LOCAL ? smtp_local_acceptcb : smtp_acceptcb, l,
	    LEV_OPT_CLOSE_ON_FREE, 0, fd);	/* 0: already listening */
	if (l->evl == NULL) {
		free(l);
		return -1;
	}
	evconnlistener_set_error_cb(l->evl, smtp_accepterrcb);
	l->retry_ev = evtimer_new(srv->base, smtp_accept_retrycb, l);
	srv->listeners = xrealloc(srv->listeners,
	    (srv->nlisteners + 1) * sizeof(*srv->listeners));
	srv->listeners[srv->nlisteners++] = l;
	return 0;
}

size_t
smtp_server_sessions(const struct smtp_server *srv)
{
	return srv->nsessions;
}

static void
smtp_server_close_listeners(struct smtp_server *srv)
{
	size_t i;

	for (i = 0; i < srv->nlisteners; i++) {
		evconnlistener_free(srv->listeners[i]->evl);
		event_free(srv->listeners[i]->retry_ev);
		free(srv->listeners[i]);
	}
	free(srv->listeners);
	srv->listeners = NULL;
	srv->nlisteners = 0;
}

static void
smtp_server_donecb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_server *srv = arg;

	(void)fd;
	(void)what;
	if (srv->nsessions == 0 && srv->shutdown_done != NULL) {
		void (*done)(void *) = srv->shutdown_done;

		srv->shutdown_done = NULL;
		done(srv->shutdown_arg);
	}
}

/* Apply fn to every session; fn may destroy the session it is given. */
static void
smtp_server_foreach(struct smtp_server *srv,
    void (*fn)(struct smtp_session *))
{
	size_t b;

	for (b = 0; b < SMTP_SESSION_BUCKETS; b++) {
		struct smtp_session *s = srv->sessions[b], *next;

		for (; s != NULL; s = next) {
			next = smtp_session_next(s);
			fn(s);
		}
	}
}

void
smtp_server_shutdown(struct smtp_server *srv, void (*done)(void *),
    void *arg)
{
	srv->shutting_down = true;
	srv->shutdown_done = done;
	srv->shutdown_arg = arg;
	srv->shutdown_ev = event_new(srv->base, -1, 0, smtp_server_donecb,
	    srv);
	smtp_server_close_listeners(srv);
	smtp_server_foreach(srv, smtp_session_shutdown);
	event_active(srv->shutdown_ev, 0, 0);
}

void
smtp_server_close_all(struct smtp_server *srv)
{
	smtp_server_foreach(srv, smtp_session_destroy);
}

void
smtp_server_free(struct smtp_server *srv)
{
	size_t b;

	if (srv == NULL)
		return;
	smtp_local_detach(srv);
	smtp_server_close_listeners(srv);
	smtp_server_close_all(srv);
	smtp_sign_orphan_all(srv);
	for (b = 0; b < SMTP_IP_BUCKETS; b++) {
		while (srv->ips[b] != NULL) {
			struct smtp_ipcount *n = srv->ips[b]->next;

			free(srv->ips[b]);
			srv->ips[b] = n;
		}
	}
	if (srv->shutdown_ev != NULL)
		event_free(srv->shutdown_ev);
	sasl_verifier_free(srv->verifier);
	sasl_throttle_free(srv->throttle);
	sasl_dovecot_free(srv->dovecot);
	for (b = 0; b < srv->nretired; b++)
		sasl_dovecot_free(srv->retired[b]);
	free(srv->retired);
	free(srv->dovecot_path);
	smtp_runtime_unref(srv->rt);
	free(srv);
}
