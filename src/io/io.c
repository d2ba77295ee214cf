/*
 * io.c: io events over libevent bufferevents.
 *
 * SECURITY: reads untrusted bytes into a bounded evbuffer; it never
 * interprets them.
 */
#include "io/io.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "lib/log.h"
#include "lib/util.h"

struct io {
	struct bufferevent *bev;
	struct event *deadline;
	struct event *resched;
	io_cb cb;
	void *arg;
};

static void
io_deliver(struct io *io, enum io_event ev)
{
	io->cb(io, ev, io->arg);
}

static void
io_readcb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	io_deliver(arg, IO_DATAIN);
}

static void
io_writecb(struct bufferevent *bev, void *arg)
{
	struct io *io = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		io_deliver(io, IO_LOWAT);
}

static void
io_eventcb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & BEV_EVENT_EOF)
		io_deliver(arg, IO_DISCONNECTED);
	else if (what & BEV_EVENT_ERROR)
		io_deliver(arg, IO_ERROR);
}

static void
io_deadlinecb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	io_deliver(arg, IO_TIMEOUT);
}

static void
io_reschedcb(evutil_socket_t fd, short what, void *arg)
{
	struct io *io = arg;

	(void)fd;
	(void)what;
	if (evbuffer_get_length(bufferevent_get_input(io->bev)) > 0)
		io_deliver(io, IO_DATAIN);
}

struct io *
io_new(struct event_base *base, int fd, size_t in_max, io_cb cb, void *arg)
{
	struct io *io = xcalloc(1, sizeof(*io));

	io->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (io->bev == NULL)
		fatalx("bufferevent_socket_new failed");
	io->cb = cb;
	io->arg = arg;
	io->deadline = evtimer_new(base, io_deadlinecb, io);
	io->resched = event_new(base, -1, 0, io_reschedcb, io);
	bufferevent_setcb(io->bev, io_readcb, io_writecb, io_eventcb, io);
	bufferevent_setwatermark(io->bev, EV_READ, 0, in_max);
	bufferevent_setwatermark(io->bev, EV_WRITE, 0, 0);
	bufferevent_enable(io->bev, EV_READ | EV_WRITE);
	return io;
}

void
io_free(struct io *io)
{
	if (io == NULL)
		return;
	event_free(io->deadline);
	event_free(io->resched);
	bufferevent_free(io->bev);
	free(io);
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
	return evbuffer_get_length(bufferevent_get_output(io->bev));
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
