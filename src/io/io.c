/*
 * io.c: io events over libevent bufferevents.
 *
 * Entry points: io_new (a connected socket), io_connect (a non-blocking
 * outbound connection), io_tls_client and io_tls_server (TLS over a
 * connected io), io_free, and the buffer accessors.
 *
 * SECURITY: reads untrusted bytes into a bounded evbuffer; it never
 * interprets them. io_tls_client does no certificate verification of its
 * own: the SSL_CTX decides (opportunistic TLS, RFC 7435).
 * OWNERSHIP: the io owns its socket (and, after io_tls_client, the SSL
 * object); io_free releases everything.
 */
#include "io/io.h"

#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "lib/log.h"
#include "lib/util.h"

/*
 * Bytes the TLS filter may leave encrypted in the socket's output buffer
 * before it stops taking plaintext: without a limit the filter would
 * encrypt everything a writer queues at once, and a sender that waits
 * for IO_LOWAT would never be held back.
 */
#define IO_TLS_OUT_MAX	(128 * 1024)

struct io {
	struct bufferevent *bev;	/* NULL while connecting */
	struct event *deadline;
	struct event *resched;
	io_cb cb;
	void *arg;
	size_t in_max;
	/* io_connect: the socket until connected, and its outcome. */
	int fd;
	bool connecting;
	int conn_error;
	struct event *conn_ev;
	io_done_cb done;
	/* io_tls_client: the handshake runs; its first failure. */
	bool tls;
	bool tls_pending;
	char tls_error[160];
	/*
	 * Under TLS the filter encrypts at once into the socket's
	 * bufferevent (under): output is pending until under's buffer is
	 * empty too, and IO_LOWAT waits for that (lowat_ev, raised from an
	 * evbuffer callback on under's output).
	 */
	struct bufferevent *under;
	struct evbuffer_cb_entry *under_cb;
	struct event *lowat_ev;
	bool finishing;			/* io_finish() called */
	bool shut;			/* close_notify queued */
};

/*
 * io_finish(): once the TLS filter has encrypted every queued byte, queue
 * close_notify (SSL_shutdown writes it through the filter's BIO into the
 * socket's bufferevent).
 */
static void
io_tls_shutdown(struct io *io)
{
	SSL *ssl;

	if (!io->finishing || !io->tls || io->tls_pending || io->shut ||
	    io->bev == NULL ||
	    evbuffer_get_length(bufferevent_get_output(io->bev)) > 0)
		return;
	io->shut = true;
	if ((ssl = bufferevent_openssl_get_ssl(io->bev)) != NULL) {
		(void)SSL_shutdown(ssl);
		ERR_clear_error();
	}
}

static void
io_deliver(struct io *io, enum io_event ev)
{
	io->cb(io, ev, io->arg);
}

static void
io_readcb(struct bufferevent *bev, void *arg)
{
	struct io *io = arg;

	(void)bev;
	if (io->tls_pending)
		return;		/* the handshake's business */
	io_deliver(io, IO_DATAIN);
}

static void
io_writecb(struct bufferevent *bev, void *arg)
{
	struct io *io = arg;

	(void)bev;
	if (io->tls_pending)
		return;
	io_tls_shutdown(io);
	if (io_out_len(io) == 0)
		io_deliver(io, IO_LOWAT);
}

void
io_finish(struct io *io)
{
	io->finishing = true;
	io_tls_shutdown(io);
}

/* TLS: the socket's buffer drained; IO_LOWAT if nothing is left. */
static void
io_lowatcb(evutil_socket_t fd, short what, void *arg)
{
	struct io *io = arg;

	(void)fd;
	(void)what;
	if (!io->tls_pending && io->bev != NULL && io_out_len(io) == 0)
		io_deliver(io, IO_LOWAT);
}

static void
io_under_outcb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct io *io = arg;

	if (info->n_deleted > 0 && evbuffer_get_length(buf) == 0)
		event_active(io->lowat_ev, 0, 0);
}

static void io_tls_done(struct io *, short);
size_t io_out_len(struct io *);
static void io_connect_finish(struct io *, int);

static void
io_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct io *io = arg;

	(void)bev;
	if (io->tls_pending) {
		io_tls_done(io, what);
		return;
	}
	if (what & BEV_EVENT_EOF)
		io_deliver(io, IO_DISCONNECTED);
	else if (what & BEV_EVENT_ERROR)
		io_deliver(io, IO_ERROR);
}

static void
io_deadlinecb(evutil_socket_t fd, short what, void *arg)
{
	struct io *io = arg;

	(void)fd;
	(void)what;
	if (io->connecting) {
		io_connect_finish(io, ETIMEDOUT);
		return;
	}
	io_deliver(io, IO_TIMEOUT);
}

static void
io_reschedcb(evutil_socket_t fd, short what, void *arg)
{
	struct io *io = arg;

	(void)fd;
	(void)what;
	if (io->connecting) {
		/* io_connect finished (or failed) at once. */
		io_connect_finish(io, io->conn_error);
		return;
	}
	if (io->bev != NULL && !io->tls_pending &&
	    evbuffer_get_length(bufferevent_get_input(io->bev)) > 0)
		io_deliver(io, IO_DATAIN);
}

static struct io *
io_alloc(struct event_base *base, size_t in_max, io_cb cb, void *arg)
{
	struct io *io = xcalloc(1, sizeof(*io));

	io->fd = -1;
	io->cb = cb;
	io->arg = arg;
	io->in_max = in_max;
	io->deadline = evtimer_new(base, io_deadlinecb, io);
	io->resched = event_new(base, -1, 0, io_reschedcb, io);
	if (io->deadline == NULL || io->resched == NULL)
		fatalx("io: event_new failed");
	return io;
}

/* Make bev the io's bufferevent and start reading and writing. */
static void
io_attach(struct io *io, struct bufferevent *bev)
{
	io->bev = bev;
	bufferevent_setcb(io->bev, io_readcb, io_writecb, io_eventcb, io);
	bufferevent_setwatermark(io->bev, EV_READ, 0, io->in_max);
	bufferevent_setwatermark(io->bev, EV_WRITE, 0, 0);
	bufferevent_enable(io->bev, EV_READ | EV_WRITE);
}

struct io *
io_new(struct event_base *base, int fd, size_t in_max, io_cb cb, void *arg)
{
	struct io *io = io_alloc(base, in_max, cb, arg);
	struct bufferevent *bev;

	bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		fatalx("bufferevent_socket_new failed");
	io_attach(io, bev);
	return io;
}

void
io_free(struct io *io)
{
	if (io == NULL)
		return;
	event_free(io->deadline);
	event_free(io->resched);
	if (io->lowat_ev != NULL)
		event_free(io->lowat_ev);
	if (io->under_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_output(io->under),
		    io->under_cb);
	if (io->conn_ev != NULL)
		event_free(io->conn_ev);
	if (io->bev != NULL)
		bufferevent_free(io->bev);	/* and the SSL, the socket */
	else if (io->fd != -1)
		close(io->fd);
	free(io);
}

/*
 * Connecting. The socket is ours until connect(2) completes; only then
 * does a bufferevent take it, so the io events start on a connected socket
 * exactly as with io_new().
 */

static void
io_connect_finish(struct io *io, int error)
{
	struct event_base *base;
	struct bufferevent *bev;

	io->connecting = false;
	evtimer_del(io->deadline);
	if (io->conn_ev != NULL) {
		base = event_get_base(io->conn_ev);
		event_free(io->conn_ev);
		io->conn_ev = NULL;
	} else
		base = event_get_base(io->deadline);
	if (error == 0) {
		bev = bufferevent_socket_new(base, io->fd,
		    BEV_OPT_CLOSE_ON_FREE);
		if (bev == NULL)
			fatalx("bufferevent_socket_new failed");
		io->fd = -1;
		io_attach(io, bev);
	}
	io->done(io, error, io->arg);	/* may free io */
}

static void
io_connectcb(evutil_socket_t fd, short what, void *arg)
{
	struct io *io = arg;
	socklen_t len = sizeof(int);
	int error = 0;

	(void)what;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
		error = errno;
	if (error == EINPROGRESS || error == EINTR) {
		event_add(io->conn_ev, NULL);	/* not yet: wait again */
		return;
	}
	io_connect_finish(io, error);
}

struct io *
io_connect(struct event_base *base, const struct sockaddr *addr,
    socklen_t addrlen, const struct sockaddr *bindaddr, socklen_t bindlen,
    unsigned int timeout, size_t in_max, io_cb cb, io_done_cb done,
    void *arg)
{
	struct io *io = io_alloc(base, in_max, cb, arg);
	struct timeval tv = { .tv_sec = timeout, .tv_usec = 0 };

	io->done = done;
	io->connecting = true;
	io->fd = socket(addr->sa_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (io->fd == -1)
		goto now;
	if (bindaddr != NULL) {
#ifdef IP_BIND_ADDRESS_NO_PORT
		int one = 1;

		/*
		 * Bind the address only: the port is chosen at connect(2),
		 * so many connections from one source address to different
		 * peers do not exhaust the ephemeral ports.
		 */
		if (bindaddr->sa_family == AF_INET ||
		    bindaddr->sa_family == AF_INET6)
			(void)setsockopt(io->fd, IPPROTO_IP,
			    IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
		if (bind(io->fd, bindaddr, bindlen) == -1)
			goto now;
	}
	if (connect(io->fd, addr, addrlen) == 0) {
		errno = 0;
		goto now;
	}
	/*
	 * EAGAIN is no connect in progress: a Unix socket's listen queue
	 * is full (nothing is queued), or TCP has no local port left.
	 */
	if (errno != EINPROGRESS && errno != EINTR)
		goto now;
	io->conn_ev = event_new(base, io->fd, EV_WRITE, io_connectcb, io);
	if (io->conn_ev == NULL)
		fatalx("io: event_new failed");
	event_add(io->conn_ev, NULL);
	if (timeout > 0)
		evtimer_add(io->deadline, &tv);
	return io;

now:
	/* Finished already: report from the loop, never from here. */
	io->conn_error = errno;
	event_active(io->resched, 0, 0);
	return io;
}

/*
 * TLS, both sides: libevent's OpenSSL filter over the plain bufferevent.
 * Its callbacks are deferred so that no io event ever runs inside an
 * io_write() (the filter encrypts and could report LOWAT synchronously).
 */

static void
io_tls_done(struct io *io, short what)
{
	unsigned long e;
	int error;

	if (what & BEV_EVENT_CONNECTED) {
		io->tls_pending = false;
		io->done(io, 0, io->arg);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		error = EPROTO;
		e = bufferevent_get_openssl_error(io->bev);
		if (e != 0)
			ERR_error_string_n(e, io->tls_error,
			    sizeof(io->tls_error));
		else if (EVUTIL_SOCKET_ERROR() != 0)
			snprintf(io->tls_error, sizeof(io->tls_error), "%s",
			    strerror(EVUTIL_SOCKET_ERROR()));
		else
			snprintf(io->tls_error, sizeof(io->tls_error),
			    "handshake failed");
	} else if (what & BEV_EVENT_EOF) {
		error = ECONNRESET;
		snprintf(io->tls_error, sizeof(io->tls_error),
		    "connection closed during the handshake");
	} else
		return;
	io->tls_pending = false;
	io->done(io, error, io->arg);	/* may free io */
}

/* Put a TLS filter with ssl (in state st) over the io's bufferevent. */
static int
io_tls_start(struct io *io, SSL *ssl, enum bufferevent_ssl_state st,
    io_done_cb done)
{
	struct bufferevent *under = io->bev, *bev;

	bufferevent_setwatermark(under, EV_WRITE, 0, IO_TLS_OUT_MAX);
	bev = bufferevent_openssl_filter_new(event_get_base(io->deadline),
	    under, ssl, st, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		bufferevent_setwatermark(under, EV_WRITE, 0, 0);
		return -1;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	io->under = under;
	io->lowat_ev = event_new(event_get_base(io->deadline), -1, 0,
	    io_lowatcb, io);
	io->under_cb = evbuffer_add_cb(bufferevent_get_output(under),
	    io_under_outcb, io);
	if (io->lowat_ev == NULL || io->under_cb == NULL)
		fatalx("io: cannot watch the TLS output");
	io->tls = true;
	io->tls_pending = true;
	io->done = done;
	io->tls_error[0] = '\0';
	io_attach(io, bev);
	return 0;
}

int
io_tls_client(struct io *io, struct ssl_ctx_st *ctx, const char *servername,
    io_done_cb done)
{
	SSL *ssl;

	if (io->bev == NULL || io->tls || io->connecting)
		return -1;
	if ((ssl = SSL_new(ctx)) == NULL)
		return -1;
	if (servername != NULL && *servername != '\0' &&
	    SSL_set_tlsext_host_name(ssl, servername) != 1) {
		SSL_free(ssl);
		return -1;
	}
	/*
	 * The plain bufferevent goes under the filter; bytes the peer sent
	 * after its 220 stay in its input and are read as TLS records, never
	 * as replies (STARTTLS response injection).
	 */
	if (io_tls_start(io, ssl, BUFFEREVENT_SSL_CONNECTING, done) == -1) {
		SSL_free(ssl);
		return -1;
	}
	return 0;
}

int
io_tls_server(struct io *io, struct ssl_st *ssl, io_done_cb done)
{
	if (io->bev == NULL || io->tls || io->connecting) {
		SSL_free(ssl);
		return -1;
	}
	/*
	 * CVE-2011-0411 class: whatever the client sent before the
	 * handshake (pipelined behind STARTTLS) is plaintext an attacker
	 * could have injected. It is dropped, never read as commands nor as
	 * TLS records. Replies already queued (the 220) still go out in
	 * plaintext ahead of the handshake.
	 */
	evbuffer_drain(bufferevent_get_input(io->bev),
	    evbuffer_get_length(bufferevent_get_input(io->bev)));
	if (io_tls_start(io, ssl, BUFFEREVENT_SSL_ACCEPTING, done) == -1) {
		SSL_free(ssl);
		return -1;
	}
	return 0;
}

bool
io_tls_info(struct io *io, char *buf, size_t size)
{
	SSL *ssl;

	if (io->bev == NULL || !io->tls || io->tls_pending ||
	    (ssl = bufferevent_openssl_get_ssl(io->bev)) == NULL) {
		if (size > 0)
			buf[0] = '\0';
		return false;
	}
	snprintf(buf, size, "%s %s", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl));
	return true;
}

const char *
io_tls_error(struct io *io)
{
	return io->tls_error;
}

int
io_write(struct io *io, const void *data, size_t len)
{
	return bufferevent_write(io->bev, data, len);
}

int
io_printf(struct io *io, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = evbuffer_add_vprintf(bufferevent_get_output(io->bev), fmt, ap);
	va_end(ap);
	return r < 0 ? -1 : 0;
}

size_t
io_out_len(struct io *io)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(io->bev));

	if (io->under != NULL)
		n += evbuffer_get_length(bufferevent_get_output(io->under));
	return n;
}

size_t
io_in_len(struct io *io)
{
	return evbuffer_get_length(bufferevent_get_input(io->bev));
}

const char *
io_in_peek(struct io *io, size_t *len_r)
{
	struct evbuffer *in = bufferevent_get_input(io->bev);
	struct evbuffer_iovec v;

	/* The first chunk only: callers loop, so no copying pullup. */
	if (evbuffer_peek(in, -1, NULL, &v, 1) < 1) {
		*len_r = 0;
		return NULL;
	}
	*len_r = v.iov_len;
	return v.iov_base;
}

void
io_in_drain(struct io *io, size_t n)
{
	evbuffer_drain(bufferevent_get_input(io->bev), n);
}

void
io_in_copy(struct io *io, void *dst, size_t n)
{
	if (evbuffer_copyout(bufferevent_get_input(io->bev), dst, n) !=
	    (ev_ssize_t)n)
		fatalx("io_in_copy: short copy");
}

long
io_in_find_lf(struct io *io, size_t max)
{
	struct evbuffer *in = bufferevent_get_input(io->bev);
	struct evbuffer_ptr p;
	size_t len = evbuffer_get_length(in);

	p = evbuffer_search(in, "\n", 1, NULL);
	if (p.pos < 0 || (size_t)p.pos >= max || (size_t)p.pos >= len)
		return -1;
	return (long)p.pos;
}

void
io_pause_read(struct io *io)
{
	bufferevent_disable(io->bev, EV_READ);
}

void
io_resume_read(struct io *io)
{
	bufferevent_enable(io->bev, EV_READ);
}

void
io_set_deadline(struct io *io, unsigned int seconds)
{
	struct timeval tv = { .tv_sec = seconds, .tv_usec = 0 };

	if (seconds == 0)
		evtimer_del(io->deadline);
	else
		evtimer_add(io->deadline, &tv);
}

void
io_reschedule(struct io *io)
{
	event_active(io->resched, 0, 0);
}
