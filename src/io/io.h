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

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct io;

enum io_event {
	IO_DATAIN,
	IO_LOWAT,
	IO_TIMEOUT,
	IO_DISCONNECTED,
	IO_ERROR,
};

typedef void (*io_cb)(struct io *io, enum io_event ev, void *arg);

/*
 * Wrap a connected, non-blocking socket. The io owns fd and closes it in
 * io_free(). Reading stops by itself while more than in_max bytes of input
 * wait to be consumed (watermark: memory per session stays bounded).
 */
struct io *io_new(struct event_base *base, int fd, size_t in_max, io_cb cb,
    void *arg);
void io_free(struct io *io);

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
