/*
 * io.h: the one boundary between protocol code and sockets. Session code
 * sees events and byte buffers, never a file descriptor, a bufferevent or
 * an SSL object, so a session can run over a socketpair() in a test and
 * TLS can be slid underneath later without touching it.
 *
 * Events (OpenSMTPD's ioev.h is the model):
 *   IO_DATAIN        input arrived (io_in_len() > 0)
 *   IO_LOWAT         every queued output byte has been written
 *   IO_TIMEOUT       the deadline set by io_set_deadline() passed
 *   IO_DISCONNECTED  the peer closed the connection
 *   IO_ERROR         a socket error
 * The callback may free the io (io_free) and its owner.
 */
#ifndef PETREL_IO_IO_H
#define PETREL_IO_IO_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct io;
struct ssl_ctx_st;	/* OpenSSL's SSL_CTX */
struct ssl_st;		/* OpenSSL's SSL */

enum io_event {
	IO_DATAIN,
	IO_LOWAT,
	IO_TIMEOUT,
	IO_DISCONNECTED,
	IO_ERROR,
};

typedef void (*io_cb)(struct io *io, enum io_event ev, void *arg);

/*
 * The outcome of io_connect() or io_tls_client(): error 0 on success,
 * else an errno value. Runs from the loop; it may free the io.
 */
typedef void (*io_done_cb)(struct io *io, int error, void *arg);

/*
 * Wrap a connected, non-blocking socket. The io owns fd and closes it in
 * io_free(). Reading stops by itself while more than in_max bytes of input
 * wait to be consumed (watermark: memory per session stays bounded).
 */
struct io *io_new(struct event_base *base, int fd, size_t in_max, io_cb cb,
    void *arg);
void io_free(struct io *io);

/*
 * Open an outbound TCP or Unix-domain connection without blocking: a
 * non-blocking socket of addr's family, bound to bindaddr first when it is
 * not NULL (the port is left to connect(2) where Linux allows), connected
 * to addr. Never fails and never calls back from within: done runs later
 * from the loop with error 0 once connected (the io then behaves as one
 * made by io_new() with in_max and cb), or with an errno value: ETIMEDOUT
 * when timeout seconds passed first (0: no deadline of its own), or what
 * socket(2), bind(2) or connect(2) failed with (ECONNREFUSED, ENOENT for
 * a missing Unix socket, EAGAIN for one whose listen queue is full,
 * EADDRNOTAVAIL for a bad bind address...). Until
 * done has run with 0 only io_free() may be called; after an error too.
 */
struct io *io_connect(struct event_base *base, const struct sockaddr *addr,
    socklen_t addrlen, const struct sockaddr *bindaddr, socklen_t bindlen,
    unsigned int timeout, size_t in_max, io_cb cb, io_done_cb done,
    void *arg);

/*
 * Start TLS as the client on a connected io (after the peer's 220 to
 * STARTTLS), with a new SSL from ctx; servername, when not NULL or "", is
 * sent as SNI. Certificates are checked only as ctx says. Bytes of input
 * not yet consumed are handed to TLS, never returned as plaintext. Returns
 * -1 if the SSL objects cannot be made (the io is unchanged), else 0, and
 * done runs later from the loop: error 0 when the handshake completed,
 * EPROTO when it failed, ECONNRESET when the peer closed (io_tls_error()
 * has a line for the log). cb gets no IO_DATAIN or IO_LOWAT during the
 * handshake, but IO_TIMEOUT from io_set_deadline() still comes. A peer's
 * close without close_notify is reported as IO_DISCONNECTED.
 */
int io_tls_client(struct io *io, struct ssl_ctx_st *ctx,
    const char *servername, io_done_cb done);

/*
 * Start TLS as the server on a connected io with ssl, a server-mode SSL
 * the io takes over (it is freed with the io, or at once on failure):
 * implicit TLS right after accept, or STARTTLS once its 220 is queued.
 * Input not yet consumed is discarded first (CVE-2011-0411: commands
 * pipelined behind STARTTLS are never executed), while queued output is
 * still sent in plaintext ahead of the handshake. Returns -1 if the
 * filter cannot be made, else 0; done then runs as for io_tls_client().
 */
int io_tls_server(struct io *io, struct ssl_st *ssl, io_done_cb done);

/*
 * After a completed handshake: "TLSv1.3 TLS_AES_256_GCM_SHA384" into buf
 * (size bytes) and true; false and "" without TLS.
 */
bool io_tls_info(struct io *io, char *buf, size_t size);

/* Why the TLS handshake failed ("" if it did not). */
const char *io_tls_error(struct io *io);

/*
 * The owner is closing: once the output queued so far is written, end
 * TLS with a close_notify alert (RFC 8446 6.1), which IO_LOWAT then
 * waits for too. Without TLS (or during a handshake) it changes nothing.
 */
void io_finish(struct io *io);

/* Queue output. Returns 0 or -1. */
int io_write(struct io *io, const void *data, size_t len);
int io_printf(struct io *io, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
size_t io_out_len(struct io *io);

/* Input: bytes waiting, a contiguous view of the first n, and consume. */
size_t io_in_len(struct io *io);
const char *io_in_peek(struct io *io, size_t *len_r);
void io_in_drain(struct io *io, size_t n);
/* Copy the first n bytes of input (n <= io_in_len) into dst. */
void io_in_copy(struct io *io, void *dst, size_t n);

/*
 * Find the next LF in the input, searching at most max bytes. Returns its
 * offset (the line is [0, offset), the LF excluded), or -1 if there is no
 * LF within the first max bytes.
 */
long io_in_find_lf(struct io *io, size_t max);

/* Stop/resume reading from the socket (input already buffered stays). */
void io_pause_read(struct io *io);
void io_resume_read(struct io *io);

/*
 * Arm a deadline: IO_TIMEOUT fires once, seconds from now, unless re-armed
 * or cleared (seconds 0). It is not re-armed by traffic.
 */
void io_set_deadline(struct io *io, unsigned int seconds);

/* Fire an IO_DATAIN callback soon from the loop (to resume processing of
 * input that is already buffered). */
void io_reschedule(struct io *io);

#endif
