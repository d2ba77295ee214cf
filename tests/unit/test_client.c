/*
 * test_client.c: the outbound SMTP/LMTP client against a scripted fake
 * server in the same libevent loop (loopback TCP, or a Unix socket for
 * LMTP). Each case checks the events and replies the client reports and
 * the exact bytes the server received.
 *
 * The fake server answers each command line with the next step of its
 * script (step 0 is the greeting); after a 354 it reads content up to
 * CRLF.CRLF exactly as a strict RFC 5321 server does, and un-stuffs it;
 * BDAT chunks are read by their counts. It can hold its replies until
 * DATA arrives (a client that does not pipeline then stalls), close after
 * a reply, start TLS after a 220, or send garbage instead of TLS.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "client/client.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "smtp/parse.h"		/* enum values only: checked equal below */

#include "testutil.h"
#include "smuggling_variants.h"

_Static_assert((int)SMTPC_BODY_8BITMIME == (int)SMTP_BODY_8BITMIME &&
    (int)SMTPC_BODY_BINARYMIME == (int)SMTP_BODY_BINARYMIME &&
    (int)SMTPC_BODY_7BIT == (int)SMTP_BODY_7BIT &&
    (int)SMTPC_BODY_UNSPEC == (int)SMTP_BODY_UNSPEC, "body values");
_Static_assert((int)SMTPC_RET_FULL == (int)SMTP_RET_FULL &&
    (int)SMTPC_RET_HDRS == (int)SMTP_RET_HDRS, "ret values");
_Static_assert(SMTPC_NOTIFY_NEVER == SMTP_NOTIFY_NEVER &&
    SMTPC_NOTIFY_SUCCESS == SMTP_NOTIFY_SUCCESS &&
    SMTPC_NOTIFY_FAILURE == SMTP_NOTIFY_FAILURE &&
    SMTPC_NOTIFY_DELAY == SMTP_NOTIFY_DELAY, "notify bits");

#define HELO_NAME	"client.test"
#define PEER_NAME	"mx.test"
#define RX_MAX		(2 * 1024 * 1024)	/* bytes of transcript kept */
#define MSG_MAX		(2 * 1024 * 1024)	/* bytes of a message kept */
#define MSGS_MAX	8

/*
 * The fake server.
 */

enum fact {
	A_NONE,
	A_CLOSE,	/* close after the reply (or at once without one) */
	A_TLS,		/* start TLS after the reply */
	A_GARBAGE,	/* send bytes that are not TLS, stop reading */
	A_MUTE,		/* stop reading after the reply */
	A_TRICKLE,	/* send the reply one octet every trickle_ms */
};

struct fstep {
	const char *reply;	/* without the last CRLF; NULL: say nothing */
	enum fact act;
};

enum fmode { F_CMD, F_DATA, F_BDAT };

struct fake {
	struct event_base *base;
	evutil_socket_t lfd;
	struct event *lev;
	struct bufferevent *bev;
	char unix_dir[64];
	char unix_path[108];
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char peer_ip[INET6_ADDRSTRLEN];

	const struct fstep *steps;
	size_t nsteps, next;
	bool hold;		/* hold replies from MAIL until DATA/BDAT */
	bool holding;
	struct evbuffer *held;
	bool auto_bdat;		/* answer non-LAST BDAT by itself */
	SSL_CTX *tls;
	char sni[256];
	unsigned int pause_ms;	/* stop reading this long after 354 */
	struct event *pause_ev;
	unsigned int trickle_ms;	/* A_TRICKLE: delay between octets */
	const char *trickle;	/* what is left to trickle */
	struct event *trickle_ev;

	struct buf rx;		/* everything received (first RX_MAX) */
	size_t rx_total;
	char verbs[8192];	/* "EHLO|MAIL RCPT DATA|": one | per read */
	bool batch_any;
	enum fmode mode;
	size_t bdat_left;
	bool bdat_last;
	struct buf cur;		/* content of the message being read */
	size_t cur_total;
	int eod;		/* octets of CRLF.CRLF matched */
	struct buf msgs[MSGS_MAX];	/* un-stuffed messages */
	size_t nmsgs;
	size_t ndata;		/* DATA/BDAT transactions completed */

	bool closing, eof, exhausted;
	bool muted;		/* read and drop everything */
	int accepts;
};

static void fake_readcb(struct bufferevent *, void *);

static void
fake_rx(struct fake *f, const char *p, size_t n)
{
	size_t room = RX_MAX - f->rx.len;

	buf_append(&f->rx, p, n < room ? n : room);
	f->rx_total += n;
}

static void
fake_close(struct fake *f)
{
	if (f->bev != NULL)
		bufferevent_free(f->bev);
	f->bev = NULL;
	f->closing = false;
}

static void
fake_writecb(struct bufferevent *bev, void *arg)
{
	struct fake *f = arg;

	if (f->closing &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		fake_close(f);
}

static void
fake_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct fake *f = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		SSL *ssl = bufferevent_openssl_get_ssl(f->bev);
		const char *sn = ssl != NULL ? SSL_get_servername(ssl,
		    TLSEXT_NAMETYPE_host_name) : NULL;

		strlcpy(f->sni, sn != NULL ? sn : "", sizeof(f->sni));
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		f->eof = true;
		fake_close(f);
	}
}

static void
fake_write(struct fake *f, const char *s)
{
	if (f->bev == NULL)
		return;
	if (f->holding)
		evbuffer_add(f->held, s, strlen(s));
	else
		bufferevent_write(f->bev, s, strlen(s));
}

static void
fake_start_tls(struct fake *f)
{
	SSL *ssl = SSL_new(f->tls);
	struct bufferevent *bev;

	assert_non_null(ssl);
	bev = bufferevent_openssl_filter_new(f->base, f->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	assert_non_null(bev);
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	f->bev = bev;
	bufferevent_setcb(bev, fake_readcb, fake_writecb, fake_eventcb, f);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* Answer with the next step. Returns false when the connection ends. */
static bool
fake_step(struct fake *f)
{
	const struct fstep *s;

	if (f->next >= f->nsteps) {
		f->exhausted = true;
		fake_write(f, "554 5.5.0 script exhausted\r\n");
		return true;
	}
	s = &f->steps[f->next++];
	if (s->act == A_TRICKLE) {
		struct timeval tv = { 0, f->trickle_ms * 1000 };

		f->trickle = s->reply;
		evtimer_add(f->trickle_ev, &tv);
		return true;
	}
	if (s->reply != NULL) {
		fake_write(f, s->reply);
		fake_write(f, "\r\n");
	}
	switch (s->act) {
	case A_NONE:
	case A_TRICKLE:
		break;
	case A_CLOSE:
		f->closing = true;
		fake_writecb(f->bev, f);
		return false;
	case A_TLS:
		fake_start_tls(f);
		return false;	/* the rest of the input is TLS */
	case A_GARBAGE:
		fake_write(f, "this is not a TLS handshake at all\r\n");
		f->muted = true;
		return false;
	case A_MUTE:
		f->muted = true;
		return false;
	}
	return true;
}

static void
fake_release(struct fake *f)
{
	if (!f->holding)
		return;
	f->holding = false;
	bufferevent_write_buffer(f->bev, f->held);
}

static void
fake_verb(struct fake *f, const char *line)
{
	size_t n = strcspn(line, " \r"), len = strlen(f->verbs);

	if (n > 8)
		n = 8;
	if (f->batch_any && len + 1 < sizeof(f->verbs))
		f->verbs[len++] = ' ';
	if (len + n + 1 < sizeof(f->verbs)) {
		memcpy(f->verbs + len, line, n);
		f->verbs[len + n] = '\0';
	}
	f->batch_any = true;
}

static void
fake_unpausecb(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;

	(void)fd;
	(void)what;
	if (f->bev != NULL) {
		if (bufferevent_get_underlying(f->bev) != NULL)
			bufferevent_enable(bufferevent_get_underlying(f->bev),
			    EV_READ);
		bufferevent_enable(f->bev, EV_READ);
		fake_readcb(f->bev, f);
	}
}

/* A_TRICKLE: the next octet of the reply (then its CRLF at once). */
static void
fake_tricklecb(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;
	struct timeval tv = { 0, f->trickle_ms * 1000 };

	(void)fd;
	(void)what;
	if (f->bev == NULL || f->trickle == NULL)
		return;
	if (*f->trickle == '\0') {
		f->trickle = NULL;
		fake_write(f, "\r\n");
		return;
	}
	bufferevent_write(f->bev, f->trickle++, 1);
	evtimer_add(f->trickle_ev, &tv);
}

/* A message is complete: keep it un-stuffed (RFC 5321 4.5.2). */
static void
fake_message_end(struct fake *f, bool stuffed)
{
	struct buf *m;
	size_t i, len = f->cur.len;
	bool bol = true;

	f->ndata++;
	if (f->nmsgs == MSGS_MAX)
		return;
	m = &f->msgs[f->nmsgs++];
	buf_init(m, MSG_MAX);
	if (stuffed)
		len = len >= 3 ? len - 3 : 0;	/* ".\r\n" */
	for (i = 0; i < len; i++) {
		char ch = f->cur.data[i];

		if (!(stuffed && bol && ch == '.'))
			buf_append(m, &ch, 1);
		bol = ch == '\n' && i > 0 && f->cur.data[i - 1] == '\r';
	}
	if (m->data == NULL)
		buf_append(m, "", 0);
	buf_reset(&f->cur);
}

static void
fake_content(struct fake *f, const char *p, size_t n)
{
	size_t room = f->cur_total < MSG_MAX ? MSG_MAX - f->cur_total : 0;

	buf_append(&f->cur, p, n < room ? n : room);
	f->cur_total += n;
}

/* Content up to CRLF.CRLF, the only end of data (RFC 5321 4.1.1.4). */
static bool
fake_data(struct fake *f, struct evbuffer *in)
{
	static const char eod[] = "\r\n.\r\n";
	char tmp[16384];
	ev_ssize_t got;
	size_t n, i;

	got = evbuffer_copyout(in, tmp, sizeof(tmp));
	assert_true(got > 0);
	n = (size_t)got;
	for (i = 0; i < n; i++) {
		if (tmp[i] == eod[f->eod])
			f->eod++;
		else
			f->eod = tmp[i] == '\r' ? 1 : 0;
		if (f->eod == 5)
			break;
	}
	if (i == n) {
		evbuffer_drain(in, n);
		fake_rx(f, tmp, n);
		fake_content(f, tmp, n);
		return true;
	}
	evbuffer_drain(in, i + 1);
	fake_rx(f, tmp, i + 1);
	fake_content(f, tmp, i + 1);
	fake_message_end(f, true);
	f->mode = F_CMD;
	return fake_step(f);
}

/* A BDAT chunk has been read. */
static bool
fake_bdat_end(struct fake *f)
{
	f->mode = F_CMD;
	if (f->bdat_last) {
		fake_message_end(f, false);
		f->cur_total = 0;
		fake_release(f);
		return fake_step(f);
	}
	if (f->auto_bdat) {
		fake_write(f, "250 2.0.0 chunk ok\r\n");
		return true;
	}
	return fake_step(f);
}

static bool
fake_command(struct fake *f, char *line)
{
	char *end;
	unsigned long long v;

	fake_verb(f, line);
	if (ascii_strncasecmp(line, "QUIT", 4) == 0) {
		fake_release(f);
		fake_write(f, "221 2.0.0 bye\r\n");
		f->closing = true;
		fake_writecb(f->bev, f);
		return false;
	}
	if (ascii_strncasecmp(line, "MAIL", 4) == 0 && f->hold)
		f->holding = true;
	if (ascii_strncasecmp(line, "DATA", 4) == 0) {
		bool more;
		const struct fstep *s = f->next < f->nsteps ?
		    &f->steps[f->next] : NULL;

		more = fake_step(f);
		fake_release(f);
		if (s != NULL && s->reply != NULL &&
		    strncmp(s->reply, "354", 3) == 0) {
			f->mode = F_DATA;
			f->eod = 2;	/* the CRLF of the DATA line */
			f->cur_total = 0;
			buf_reset(&f->cur);
			if (f->pause_ms > 0 && f->bev != NULL) {
				struct timeval tv = { 0, f->pause_ms * 1000 };

				/* Under TLS, the socket too. */
				if (bufferevent_get_underlying(f->bev) != NULL)
					bufferevent_disable(
					    bufferevent_get_underlying(f->bev),
					    EV_READ);
				bufferevent_disable(f->bev, EV_READ);
				evtimer_add(f->pause_ev, &tv);
				return false;
			}
		}
		return more;
	}
	if (ascii_strncasecmp(line, "BDAT ", 5) == 0) {
		errno = 0;
		v = strtoull(line + 5, &end, 10);
		assert_int_equal(errno, 0);
		f->mode = F_BDAT;
		f->bdat_left = (size_t)v;
		f->bdat_last = strncmp(end, " LAST", 5) == 0;
		if (f->bdat_left == 0)
			return fake_bdat_end(f);
		return true;
	}
	return fake_step(f);
}

static void
fake_readcb(struct bufferevent *bev, void *arg)
{
	struct fake *f = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len, n;
	char *line;

	f->batch_any = false;
	if (f->muted) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	while (f->bev == bev && !f->closing &&
	    (len = evbuffer_get_length(in)) > 0) {
		if (f->mode == F_DATA) {
			if (!fake_data(f, in))
				break;
			continue;
		}
		if (f->mode == F_BDAT) {
			char tmp[16384];

			n = len < f->bdat_left ? len : f->bdat_left;
			if (n > sizeof(tmp))
				n = sizeof(tmp);
			evbuffer_remove(in, tmp, n);
			fake_rx(f, tmp, n);
			fake_content(f, tmp, n);
			f->bdat_left -= n;
			if (f->bdat_left > 0)
				continue;
			if (!fake_bdat_end(f))
				break;
			continue;
		}
		line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
		if (line == NULL) {
			assert_true(len < 8192);	/* no endless line */
			break;
		}
		fake_rx(f, line, n);
		fake_rx(f, "\n", 1);
		if (!fake_command(f, line)) {
			free(line);
			break;
		}
		free(line);
	}
	if (f->batch_any) {
		strlcat(f->verbs, "|", sizeof(f->verbs));
		f->batch_any = false;
	}
}

static void
fake_acceptcb(evutil_socket_t lfd, short what, void *arg)
{
	struct fake *f = arg;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd;

	(void)what;
	fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK);
	if (fd == -1)
		return;
	f->accepts++;
	assert_int_equal(f->accepts, 1);
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr,
		    f->peer_ip, sizeof(f->peer_ip));
	f->bev = bufferevent_socket_new(f->base, fd, BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(f->bev);
	bufferevent_setcb(f->bev, fake_readcb, fake_writecb, fake_eventcb, f);
	bufferevent_enable(f->bev, EV_READ | EV_WRITE);
	fake_step(f);		/* the greeting */
}

/* A listening fake on 127.0.0.1 (or a Unix socket); steps as given. */
static struct fake *
fake_new(struct event_base *base, bool unix_socket,
    const struct fstep *steps, size_t nsteps)
{
	struct fake *f = xcalloc(1, sizeof(*f));
	struct sockaddr_in *sin = (struct sockaddr_in *)&f->addr;
	struct sockaddr_un *sun = (struct sockaddr_un *)&f->addr;
	int one = 1;

	f->base = base;
	f->steps = steps;
	f->nsteps = nsteps;
	buf_init(&f->rx, RX_MAX);
	buf_init(&f->cur, MSG_MAX);
	f->held = evbuffer_new();
	f->pause_ev = evtimer_new(base, fake_unpausecb, f);
	f->trickle_ev = evtimer_new(base, fake_tricklecb, f);
	if (unix_socket) {
		strlcpy(f->unix_dir, "/tmp/petrel-test-client-XXXXXX",
		    sizeof(f->unix_dir));
		assert_non_null(mkdtemp(f->unix_dir));
		snprintf(f->unix_path, sizeof(f->unix_path), "%s/lmtp",
		    f->unix_dir);
		sun->sun_family = AF_UNIX;
		strlcpy(sun->sun_path, f->unix_path, sizeof(sun->sun_path));
		f->addrlen = sizeof(*sun);
		f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	} else {
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		f->addrlen = sizeof(*sin);
		f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one));
	}
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&f->addr,
	    f->addrlen), 0);
	assert_int_equal(listen(f->lfd, 8), 0);
	if (!unix_socket) {
		f->addrlen = sizeof(f->addr);
		assert_int_equal(getsockname(f->lfd,
		    (struct sockaddr *)&f->addr, &f->addrlen), 0);
	}
	f->lev = event_new(base, f->lfd, EV_READ | EV_PERSIST, fake_acceptcb,
	    f);
	event_add(f->lev, NULL);
	return f;
}

static void
fake_free(struct fake *f)
{
	size_t i;

	fake_close(f);
	event_free(f->lev);
	event_free(f->pause_ev);
	event_free(f->trickle_ev);
	close(f->lfd);
	evbuffer_free(f->held);
	buf_free(&f->rx);
	buf_free(&f->cur);
	for (i = 0; i < f->nmsgs; i++)
		buf_free(&f->msgs[i]);
	if (f->unix_path[0] != '\0') {
		unlink(f->unix_path);
		rmdir(f->unix_dir);
	}
	free(f);
}

/*
 * Message sources.
 */

struct memsrc {
	const char *data;
	size_t len, off;
	size_t chunk;		/* bytes per next(); 0: all at once */
	size_t fail_at;		/* fail with EBADMSG at this offset; 0: no */
	/* generator: repeat data until total bytes */
	size_t total, produced;
};

static int
memsrc_next(void *arg, const char **data, size_t *len)
{
	struct memsrc *s = arg;
	size_t n;

	if (s->total > 0) {
		if (s->produced >= s->total)
			return 0;
		n = s->len;
		if (n > s->total - s->produced)
			n = s->total - s->produced;
		s->produced += n;
		*data = s->data;
		*len = n;
		return 1;
	}
	if (s->fail_at > 0 && s->off >= s->fail_at) {
		errno = EBADMSG;
		return -1;
	}
	if (s->off >= s->len)
		return 0;
	n = s->chunk > 0 ? s->chunk : s->len;
	if (n > s->len - s->off)
		n = s->len - s->off;
	if (s->fail_at > 0 && n > s->fail_at - s->off)
		n = s->fail_at - s->off;
	*data = s->data + s->off;
	*len = n;
	s->off += n;
	s->produced += n;
	return 1;
}

/*
 * The client side: a driver that sends its messages one after another on
 * one connection, then QUITs.
 */

struct drive {
	struct event_base *base;
	struct smtpc *c;
	struct smtpc_msg *msgs[MSGS_MAX];
	size_t nmsgs, next;
	char ev[32];
	bool reusable[MSGS_MAX];
	bool done;
	struct smtpc_reply err;
	enum smtpc_status fstatus;
	bool tls_failed;
	char tls_info[128];
	unsigned int caps;
	uint64_t max_size;
	bool authenticated;	/* smtpc_authenticated() at READY */
	bool auth_refused;	/* smtpc_auth_refused() at FAILED */
	bool idle;		/* at READY, do nothing */
	char free_at;		/* smtpc_free() at this event ("RFDC") */
};

static void
drive_finish(struct drive *d)
{
	smtpc_free(d->c);
	d->c = NULL;
	d->done = true;
}

static void
drive_cb(struct smtpc *c, enum smtpc_event ev, void *arg)
{
	struct drive *d = arg;
	static const char letters[] = "RFDC";
	size_t n = strlen(d->ev);

	assert_ptr_equal(c, d->c);
	if (n + 1 < sizeof(d->ev))
		d->ev[n] = letters[ev];
	if (d->free_at == letters[ev]) {
		drive_finish(d);	/* and never a callback again */
		return;
	}
	switch (ev) {
	case SMTPC_READY:
		d->caps = smtpc_caps(c);
		d->max_size = smtpc_max_size(c);
		d->authenticated = smtpc_authenticated(c);
		strlcpy(d->tls_info, smtpc_tls_info(c) != NULL ?
		    smtpc_tls_info(c) : "", sizeof(d->tls_info));
		if (d->idle)
			break;
		if (d->next < d->nmsgs) {
			assert_int_equal(smtpc_send(c, d->msgs[d->next++]), 0);
			/* Not twice. */
			assert_int_equal(smtpc_send(c, d->msgs[0]), -1);
			assert_int_equal(errno, EBUSY);
		} else
			smtpc_quit(c);
		break;
	case SMTPC_DONE:
		d->reusable[d->next - 1] = smtpc_reusable(c);
		if (!smtpc_reusable(c)) {
			d->err = *smtpc_last_error(c);
			drive_finish(d);
			break;
		}
		if (d->next < d->nmsgs)
			assert_int_equal(smtpc_send(c, d->msgs[d->next++]), 0);
		else
			smtpc_quit(c);
		break;
	case SMTPC_FAILED:
		d->err = *smtpc_last_error(c);
		d->fstatus = smtpc_failure_status(c);
		d->tls_failed = smtpc_tls_failed(c);
		d->auth_refused = smtpc_auth_refused(c);
		drive_finish(d);
		break;
	case SMTPC_CLOSED:
		d->err = *smtpc_last_error(c);
		drive_finish(d);
		break;
	}
}

static bool loop_timed_out;

static void
loop_timeoutcb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	loop_timed_out = true;
	event_base_loopbreak(arg);
}

/* Run until the client is finished and the fake has seen it go. */
static void
run(struct event_base *base, struct drive *d, struct fake *f)
{
	struct timeval tv = { 20, 0 };
	struct event *t = evtimer_new(base, loop_timeoutcb, base);

	loop_timed_out = false;
	evtimer_add(t, &tv);
	while (!loop_timed_out &&
	    !(d->done && (f == NULL || f->accepts == 0 || f->bev == NULL)))
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	if (loop_timed_out)
		fail_msg("timed out: events %s, server got \"%s\"", d->ev,
		    f != NULL ? test_escn(buf_str(&f->rx), f->rx.len) : "");
}

struct config_opts {
	enum smtpc_proto proto;
	unsigned int t_command;
	unsigned int t_data;
	SSL_CTX *ssl;
	const struct sockaddr *bind;
	socklen_t bindlen;
	bool no_starttls;	/* starttls false even with ssl */
	const char *auth_user;
	const char *auth_password;
};

static void
drive_open(struct drive *d, struct event_base *base, struct fake *f,
    const struct sockaddr *addr, socklen_t addrlen,
    const struct config_opts *o)
{
	struct smtpc_config conf = {
		.proto = o != NULL ? o->proto : SMTPC_SMTP,
		.helo = HELO_NAME,
		.peer_name = PEER_NAME,
		.addr = addr != NULL ? addr : (struct sockaddr *)&f->addr,
		.addrlen = addr != NULL ? addrlen : f->addrlen,
		.bind = o != NULL ? o->bind : NULL,
		.bindlen = o != NULL ? o->bindlen : 0,
		.starttls = o != NULL && o->ssl != NULL && !o->no_starttls,
		.ssl_ctx = o != NULL ? o->ssl : NULL,
		.timeout_connect = 5,
		.timeout_command = o != NULL && o->t_command ? o->t_command :
		    5,
		.timeout_data = o != NULL && o->t_data ? o->t_data : 5,
		.auth_user = o != NULL ? o->auth_user : NULL,
		.auth_password = o != NULL ? o->auth_password : NULL,
	};

	d->base = base;
	d->c = smtpc_open(base, &conf, drive_cb, d);
	assert_non_null(d->c);
	assert_string_equal(d->ev, "");	/* never from within open */
}

/*
 * Helpers for cases.
 */

#define EHLO_FULL \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n" \
	"250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n" \
	"250 ENHANCEDSTATUSCODES"
#define EHLO_PLAIN	"250-mx.test\r\n250 8BITMIME"

static struct smtpc_rcpt *
rcpts_new(size_t n, const char *const *addrs)
{
	struct smtpc_rcpt *r = xcalloc(n, sizeof(*r));
	size_t i;

	for (i = 0; i < n; i++) {
		r[i].addr = addrs[i];
		r[i].status = SMTPC_OK;		/* must be overwritten */
	}
	return r;
}

static void
msg_init(struct smtpc_msg *m, struct memsrc *s, const char *content,
    struct smtpc_rcpt *rcpts, size_t n)
{
	memset(m, 0, sizeof(*m));
	memset(s, 0, sizeof(*s));
	s->data = content;
	s->len = strlen(content);
	m->sender = "a@x.test";
	m->size = s->len;
	m->rcpts = rcpts;
	m->nrcpts = n;
	m->src.next = memsrc_next;
	m->src.arg = s;
}

static void
check_reply(const char *what, const struct smtpc_reply *r, int code,
    const char *enhanced, const char *text)
{
	if (r->code != code)
		fail_msg("%s: code got %d, want %d (%s)", what, r->code, code,
		    test_esc(r->text));
	if (enhanced != NULL && strcmp(r->enhanced, enhanced) != 0)
		fail_msg("%s: enhanced got \"%s\", want \"%s\"", what,
		    r->enhanced, enhanced);
	if (text != NULL && strstr(r->text, text) == NULL)
		fail_msg("%s: text got \"%s\", want it to contain \"%s\"",
		    what, test_esc(r->text), text);
}

static void
check_bytes(const char *what, const struct buf *got, const char *want)
{
	size_t wl = strlen(want);

	if (got->len != wl || memcmp(buf_str(got), want, wl) != 0)
		fail_msg("%s: server got\n  \"%s\"\nwant\n  \"%s\"", what,
		    test_escn(buf_str(got), got->len), test_esc(want));
}

static const char *const status_names[] = { "OK", "TEMP", "PERM" };

static void
check_status(const char *what, enum smtpc_status got, enum smtpc_status want)
{
	if (got != want)
		fail_msg("%s: status got %s, want %s", what,
		    status_names[got], status_names[want]);
}

static struct event_base *
base_new(void)
{
	struct event_base *base = event_base_new();

	assert_non_null(base);
	return base;
}

/*
 * The shape of most cases: one fake server with its script, one client
 * connection, and at most one message. tcase_init() makes the loop, the
 * fake and, unless content is NULL, the recipients (addrs[0..n)) and the
 * message, queued on the driver; the case may then adjust t->f, t->m,
 * t->s and t->r before tcase_run() opens the client (o: NULL for the
 * defaults) and runs until both sides are finished. tcase_free() undoes
 * tcase_init().
 */
struct tcase {
	struct event_base *base;
	struct fake *f;
	struct drive d;
	struct smtpc_msg m;
	struct memsrc s;
	struct smtpc_rcpt *r;
};

static void
tcase_init(struct tcase *t, bool unix_socket, const struct fstep *steps,
    size_t nsteps, const char *content, const char *const *addrs, size_t n)
{
	memset(t, 0, sizeof(*t));
	t->base = base_new();
	t->f = fake_new(t->base, unix_socket, steps, nsteps);
	if (content == NULL)
		return;
	t->r = rcpts_new(n, addrs);
	msg_init(&t->m, &t->s, content, t->r, n);
	t->d.msgs[t->d.nmsgs++] = &t->m;
}

static void
tcase_run(struct tcase *t, const struct config_opts *o)
{
	drive_open(&t->d, t->base, t->f, NULL, 0, o);
	run(t->base, &t->d, t->f);
}

static void
tcase_free(struct tcase *t)
{
	free(t->r);
	fake_free(t->f);
	event_base_free(t->base);
}

/*
 * Cases.
 */

/* PIPELINING: MAIL, RCPTs and DATA in one group (the fake holds its
 * replies until DATA: a client that waits would stall). */
static void
test_pipelined(void **state)
{
	static const struct fstep steps[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ EHLO_FULL, A_NONE },
		{ "250 2.1.0 ok", A_NONE },
		{ "250 2.1.5 ok", A_NONE },
		{ "250 2.1.5 ok", A_NONE },
		{ "354 go on", A_NONE },
		{ "250 2.0.0 queued as X1", A_NONE },
	};
	static const char *const addrs[] = { "b@y.test", "c@y.test" };
	struct tcase t;

	(void)state;
	tcase_init(&t, false, steps, nitems(steps),
	    "Subject: x\r\n\r\nHello\r\n", addrs, 2);
	t.f->hold = true;
	tcase_run(&t, NULL);
	assert_string_equal(t.d.ev, "RDC");
	check_bytes("pipelined", &t.f->rx,
	    "EHLO client.test\r\n"
	    "MAIL FROM:<a@x.test> SIZE=21\r\n"
	    "RCPT TO:<b@y.test>\r\n"
	    "RCPT TO:<c@y.test>\r\n"
	    "DATA\r\n"
	    "Subject: x\r\n\r\nHello\r\n.\r\n"
	    "QUIT\r\n");
	assert_string_equal(t.f->verbs, "EHLO|MAIL RCPT RCPT DATA|QUIT|");
	assert_true((t.d.caps & (SMTPC_CAP_PIPELINING | SMTPC_CAP_SIZE |
	    SMTPC_CAP_8BITMIME | SMTPC_CAP_SMTPUTF8 | SMTPC_CAP_DSN |
	    SMTPC_CAP_ENHANCEDSTATUSCODES)) == (SMTPC_CAP_PIPELINING |
	    SMTPC_CAP_SIZE | SMTPC_CAP_8BITMIME | SMTPC_CAP_SMTPUTF8 |
	    SMTPC_CAP_DSN | SMTPC_CAP_ENHANCEDSTATUSCODES));
	assert_true(t.d.max_size == 10000000);
	check_status("rcpt 0", t.r[0].status, SMTPC_OK);
	check_status("rcpt 1", t.r[1].status, SMTPC_OK);
	check_reply("rcpt 0", &t.r[0].reply, 250, "2.0.0", "queued as X1");
	check_status("msg", t.m.status, SMTPC_OK);
	assert_int_equal(t.f->nmsgs, 1);
	assert_false(t.f->exhausted);
	tcase_free(&t);
}

/* Without PIPELINING: one command, one reply. */
static void
test_one_by_one(void **state)
{
	static const struct fstep steps[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ EHLO_PLAIN, A_NONE },
		{ "250 2.1.0 ok", A_NONE },
		{ "250 2.1.5 ok", A_NONE },
		{ "250 2.1.5 ok", A_NONE },
		{ "354 go on", A_NONE },
		{ "250 2.0.0 queued", A_NONE },
	};
	static const char *const addrs[] = { "b@y.test", "c@y.test" };
	struct tcase t;

	(void)state;
	tcase_init(&t, false, steps, nitems(steps), "Hello\r\n", addrs, 2);
	tcase_run(&t, NULL);
	assert_string_equal(t.d.ev, "RDC");
	/* No SIZE offered: no SIZE=. */
	check_bytes("one by one", &t.f->rx,
	    "EHLO client.test\r\nMAIL FROM:<a@x.test>\r\n"
	    "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n"
	    "Hello\r\n.\r\nQUIT\r\n");
	assert_string_equal(t.f->verbs, "EHLO|MAIL|RCPT|RCPT|DATA|QUIT|");
	check_status("rcpt 1", t.r[1].status, SMTPC_OK);
	tcase_free(&t);
}

/* EHLO refused with 5xx: HELO, and no extension is used. */
static void
test_helo_fallback(void **state)
{
	static const struct {
		const char *ehlo_reply;
	} cases[] = {
		{ "502 5.5.1 command not implemented" },
		{ "500 syntax error" },
		{ "504 5.5.2 nope" },
		{ "550 not here" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		const struct fstep steps[] = {
			{ "220 old.test SMTP", A_NONE },
			{ cases[i].ehlo_reply, A_NONE },
			{ "250 old.test", A_NONE },
			{ "250 ok", A_NONE },
			{ "250 ok", A_NONE },
			{ "354 go", A_NONE },
			{ "250 ok", A_NONE },
		};
		static const char *const addrs[] = { "b@y.test" };
		struct tcase t;

		tcase_init(&t, false, steps, nitems(steps), "x\r\n", addrs, 1);
		t.m.body = SMTPC_BODY_8BITMIME;	/* but 7-bit content */
		tcase_run(&t, NULL);
		assert_string_equal(t.d.ev, "RDC");
		assert_int_equal(t.d.caps, 0);
		check_bytes(cases[i].ehlo_reply, &t.f->rx,
		    "EHLO client.test\r\nHELO client.test\r\n"
		    "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"
		    "x\r\n.\r\nQUIT\r\n");
		check_status("rcpt", t.r[0].status, SMTPC_OK);
		tcase_free(&t);
	}
}

/* Per-recipient results; a multi-line reply kept whole. */
static void
test_rcpt_mix(void **state)
{
	static const struct fstep steps[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ EHLO_FULL, A_NONE },
		{ "250 2.1.0 ok", A_NONE },
		{ "250 2.1.5 ok", A_NONE },
		{ "550-5.1.1 <c@y.test>: no such user\r\n"
		  "550 5.1.1 see https://mx.test/550", A_NONE },
		{ "451 4.7.1 greylisted, try later", A_NONE },
		{ "552 5.2.2 mailbox full", A_NONE },
		{ "354 go on", A_NONE },
		{ "250 2.0.0 queued as X2", A_NONE },
	};
	static const char *const addrs[] = {
		"b@y.test", "c@y.test", "d@y.test", "e@y.test",
	};
	struct tcase t;

	(void)state;
	tcase_init(&t, false, steps, nitems(steps), "Hi\r\n", addrs, 4);
	tcase_run(&t, NULL);
	assert_string_equal(t.d.ev, "RDC");
	check_status("b", t.r[0].status, SMTPC_OK);
	check_reply("b", &t.r[0].reply, 250, "2.0.0", "250 2.0.0 queued as X2");
	check_status("c", t.r[1].status, SMTPC_PERM);
	check_reply("c", &t.r[1].reply, 550, "5.1.1", NULL);
	assert_string_equal(t.r[1].reply.text, "550-5.1.1 <c@y.test>: no such "
	    "user 550 5.1.1 see https://mx.test/550");
	check_status("d", t.r[2].status, SMTPC_TEMP);
	check_reply("d", &t.r[2].reply, 451, "4.7.1", "greylisted");
	/* RFC 5321 4.5.3.1.10: 552 to RCPT is temporary. */
	check_status("e", t.r[3].status, SMTPC_TEMP);
	check_reply("e", &t.r[3].reply, 552, "5.2.2", NULL);
	assert_int_equal(t.f->nmsgs, 1);
	tcase_free(&t);
}

/*
 * Every RCPT refused: no content. Pipelined, DATA went with the group
 * and gets 554; one by one, DATA is never sent. The next message starts
 * with RSET.
 */
static void
test_all_refused(void **state)
{
	static const struct fstep piped[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250 PIPELINING", A_NONE },
		{ "250 2.1.0 ok", A_NONE },
		{ "550 5.1.1 unknown", A_NONE },
		{ "550 5.1.1 unknown too", A_NONE },
		{ "554 5.5.1 no valid recipients", A_NONE },
		{ "250 2.0.0 reset", A_NONE },
		{ "250 2.1.0 ok", A_NONE },
		{ "250 2.1.5 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 queued", A_NONE },
	};
	static const struct fstep single[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250 mx.test", A_NONE },
		{ "250 2.1.0 ok", A_NONE },
		{ "550 5.1.1 unknown", A_NONE },
		{ "550 5.1.1 unknown too", A_NONE },
		{ "250 2.0.0 reset", A_NONE },
		{ "250 2.1.0 ok", A_NONE },
		{ "250 2.1.5 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 queued", A_NONE },
	};
	static const struct {
		const struct fstep *steps;
		size_t n;
		const char *want;
	} cases[] = {
		{ piped, nitems(piped),
		  "EHLO client.test\r\nMAIL FROM:<a@x.test>\r\n"
		  "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n"
		  "RSET\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<z@y.test>\r\n"
		  "DATA\r\nsecond\r\n.\r\nQUIT\r\n" },
		{ single, nitems(single),
		  "EHLO client.test\r\nMAIL FROM:<a@x.test>\r\n"
		  "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n"
		  "RSET\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<z@y.test>\r\n"
		  "DATA\r\nsecond\r\n.\r\nQUIT\r\n" },
	};
	static const char *const addrs[] = { "b@y.test", "c@y.test" };
	static const char *const addrs2[] = { "z@y.test" };
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		struct tcase t;
		struct smtpc_msg m2;
		struct memsrc s2;
		struct smtpc_rcpt *r2 = rcpts_new(1, addrs2);

		tcase_init(&t, false, cases[i].steps, cases[i].n, "first\r\n",
		    addrs, 2);
		msg_init(&m2, &s2, "second\r\n", r2, 1);
		t.d.msgs[t.d.nmsgs++] = &m2;
		tcase_run(&t, NULL);
		assert_string_equal(t.d.ev, "RDDC");
		check_bytes(i == 0 ? "pipelined" : "single", &t.f->rx,
		    cases[i].want);
		check_status("b", t.r[0].status, SMTPC_PERM);
		check_reply("b", &t.r[0].reply, 550, "5.1.1", "unknown");
		check_status("c", t.r[1].status, SMTPC_PERM);
		check_reply("c", &t.r[1].reply, 550, "5.1.1", "unknown too");
		assert_true(t.d.reusable[0]);
		check_status("z", r2[0].status, SMTPC_OK);
		assert_int_equal(t.f->nmsgs, 1);
		free(r2);
		tcase_free(&t);
	}
}

/* MAIL refused: every recipient shares the reply. */
static void
test_mail_refused(void **state)
{
	static const struct fstep steps[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250 PIPELINING", A_NONE },
		{ "553 5.7.1 sender refused", A_NONE },
		{ "503 5.5.1 need MAIL", A_NONE },
		{ "503 5.5.1 need MAIL", A_NONE },
		{ "503 5.5.1 need RCPT", A_NONE },
	};
	static const char *const addrs[] = { "b@y.test", "c@y.test" };
	struct tcase t;

	(void)state;
	tcase_init(&t, false, steps, nitems(steps), "x\r\n", addrs, 2);
	tcase_run(&t, NULL);
	assert_string_equal(t.d.ev, "RDC");
	check_status("msg", t.m.status, SMTPC_PERM);
	check_reply("msg", &t.m.reply, 553, "5.7.1", "sender refused");
	check_status("b", t.r[0].status, SMTPC_PERM);
	check_reply("b", &t.r[0].reply, 553, "5.7.1", "sender refused");
	check_status("c", t.r[1].status, SMTPC_PERM);
	assert_int_equal(t.f->nmsgs, 0);
	assert_false(t.f->exhausted);
	tcase_free(&t);
}

/* Refusals decided here, before MAIL: nothing but EHLO and QUIT. */
static void
test_local_refusals(void **state)
{
	static const struct {
		const char *name;
		const char *ehlo;
		bool eight_bit, smtputf8;
		int body;
		size_t longest;
		uint64_t size;
		int code;
		const char *enhanced, *text;
	} cases[] = {
		{ "8bit to 7bit peer", "250-mx.test\r\n250 PIPELINING",
		  true, false, SMTPC_BODY_8BITMIME, 10, 100,
		  554, "5.6.3", "mx.test[127.0.0.1] does not offer 8BITMIME" },
		{ "8bit content, no BODY", "250 mx.test",
		  true, false, SMTPC_BODY_UNSPEC, 10, 100,
		  554, "5.6.3", "8-bit content" },
		{ "binarymime without chunking", "250-mx.test\r\n250 8BITMIME",
		  true, false, SMTPC_BODY_BINARYMIME, 10, 100,
		  554, "5.6.3", "BINARYMIME" },
		{ "smtputf8", "250-mx.test\r\n250 8BITMIME",
		  true, true, SMTPC_BODY_8BITMIME, 10, 100,
		  553, "5.6.7", "mx.test[127.0.0.1] does not offer SMTPUTF8" },
		{ "long line", EHLO_FULL,
		  false, false, SMTPC_BODY_UNSPEC, 999, 100,
		  554, "5.6.0", "message has a line longer than 998 octets" },
		{ "size", "250-mx.test\r\n250 SIZE 1000",
		  false, false, SMTPC_BODY_UNSPEC, 10, 1001,
		  552, "5.3.4", "exceeds the size limit 1000 of mx.test" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		const struct fstep steps[] = {
			{ "220 mx.test ESMTP", A_NONE },
			{ cases[i].ehlo, A_NONE },
		};
		static const char *const addrs[] = { "b@y.test", "c@y.test" };
		struct tcase t;

		tcase_init(&t, false, steps, nitems(steps), "x\r\n", addrs, 2);
		t.m.eight_bit = cases[i].eight_bit;
		t.m.smtputf8 = cases[i].smtputf8;
		t.m.body = cases[i].body;
		t.m.longest_line = cases[i].longest;
		t.m.size = cases[i].size;
		tcase_run(&t, NULL);
		assert_string_equal(t.d.ev, "RDC");
		check_bytes(cases[i].name, &t.f->rx,
		    "EHLO client.test\r\nQUIT\r\n");
		check_status(cases[i].name, t.r[0].status, SMTPC_PERM);
		check_status(cases[i].name, t.r[1].status, SMTPC_PERM);
		check_status(cases[i].name, t.m.status, SMTPC_PERM);
		check_reply(cases[i].name, &t.r[1].reply, cases[i].code,
		    cases[i].enhanced, cases[i].text);
		assert_true(t.d.reusable[0]);
		tcase_free(&t);
	}
}

/* MAIL and RCPT parameters for a peer with every extension. */
static void
test_params(void **state)
{
	static const struct fstep steps[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ EHLO_FULL, A_NONE },
		{ "250 2.1.0 ok", A_NONE },
		{ "250 2.1.5 ok", A_NONE },
		{ "250 2.1.5 ok", A_NONE },
		{ "250 2.1.5 ok", A_NONE },
		{ "354 go on", A_NONE },
		{ "250 2.0.0 queued", A_NONE },
	};
	static const char *const addrs[] = {
		"b@y.test", "c@y.test", "d@y.test",
	};
	struct tcase t;

	(void)state;
	tcase_init(&t, false, steps, nitems(steps),
	    "caf\xc3\xa9\r\n", addrs, 3);
	t.m.sender = "";
	t.m.body = SMTPC_BODY_8BITMIME;
	t.m.eight_bit = true;
	t.m.smtputf8 = true;
	t.m.dsn = true;
	t.m.ret = SMTPC_RET_HDRS;
	t.m.envid = "QQ+2Bx";
	t.r[0].notify = SMTPC_NOTIFY_SUCCESS | SMTPC_NOTIFY_FAILURE |
	    SMTPC_NOTIFY_DELAY;
	t.r[0].orcpt = "rfc822;b@y.test";
	t.r[1].notify = SMTPC_NOTIFY_NEVER;
	t.r[2].notify = SMTPC_NOTIFY_DELAY;
	t.r[2].orcpt = "rfc822;bad value";	/* not xtext: left out */
	tcase_run(&t, NULL);
	assert_string_equal(t.d.ev, "RDC");
	check_bytes("params", &t.f->rx,
	    "EHLO client.test\r\n"
	    "MAIL FROM:<> SIZE=7 BODY=8BITMIME SMTPUTF8 RET=HDRS "
	    "ENVID=QQ+2Bx\r\n"
	    "RCPT TO:<b@y.test> NOTIFY=SUCCESS,FAILURE,DELAY "
	    "ORCPT=rfc822;b@y.test\r\n"
	    "RCPT TO:<c@y.test> NOTIFY=NEVER\r\n"
	    "RCPT TO:<d@y.test> NOTIFY=DELAY\r\n"
	    "DATA\r\ncaf\xc3\xa9\r\n.\r\nQUIT\r\n");
	check_status("b", t.r[0].status, SMTPC_OK);
	tcase_free(&t);
}

/* Without DSN at the peer, no DSN parameters; CR/LF in an address is
 * refused, never sent. */
static void
test_params_no_dsn(void **state)
{
	static const struct fstep steps[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250 PIPELINING", A_NONE },
		{ "250 2.1.0 ok", A_NONE },
		{ "250 2.1.5 ok", A_NONE },
		{ "354 go on", A_NONE },
		{ "250 2.0.0 queued", A_NONE },
	};
	static const char *const addrs[] = {
		"b@y.test", "c@y.test>\r\nRCPT TO:<evil@z.test",
	};
	struct tcase t;

	(void)state;
	tcase_init(&t, false, steps, nitems(steps), "x\r\n", addrs, 2);
	t.m.dsn = true;
	t.m.ret = SMTPC_RET_FULL;
	t.m.envid = "abc";
	t.r[0].notify = SMTPC_NOTIFY_SUCCESS;
	t.r[0].orcpt = "rfc822;b@y.test";
	tcase_run(&t, NULL);
	check_bytes("no dsn", &t.f->rx,
	    "EHLO client.test\r\nMAIL FROM:<a@x.test>\r\n"
	    "RCPT TO:<b@y.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n");
	check_status("b", t.r[0].status, SMTPC_OK);
	check_status("evil", t.r[1].status, SMTPC_PERM);
	check_reply("evil", &t.r[1].reply, 553, "5.1.3", NULL);
	tcase_free(&t);
}

/* A pipelining server that takes one message for one recipient. */
static const struct fstep steps_one_rcpt[] = {
	{ "220 mx.test ESMTP", A_NONE },
	{ "250-mx.test\r\n250 PIPELINING", A_NONE },
	{ "250 ok", A_NONE },
	{ "250 ok", A_NONE },
	{ "354 go", A_NONE },
	{ "250 ok", A_NONE },
};

/* Content on the wire: dot-stuffed, CRLF only, CRLF.CRLF at the end. */
static void
test_dot_stuffing(void **state)
{
	static const struct {
		const char *in, *wire;
	} cases[] = {
		{ "", ".\r\n" },
		{ ".\r\n", "..\r\n.\r\n" },
		{ "..x\r\n", "...x\r\n.\r\n" },
		{ "a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n" },
		{ "a\nb\n", "a\r\nb\r\n.\r\n" },
		{ "a\rb\r", "a\r\nb\r\n.\r\n" },
		{ "\n", "\r\n.\r\n" },
		{ "\r", "\r\n.\r\n" },
		{ "no final crlf", "no final crlf\r\n.\r\n" },
		{ "x\r\n.", "x\r\n..\r\n.\r\n" },
		{ "\r\r\n", "\r\n\r\n.\r\n" },
		{ "\n.\n", "\r\n..\r\n.\r\n" },
		{ "\r.\r", "\r\n..\r\n.\r\n" },
		{ "a\n.\r\nMAIL FROM:<s@x>\r\n",
		  "a\r\n..\r\nMAIL FROM:<s@x>\r\n.\r\n" },
		{ ".a\r\n.b\n..\r", "..a\r\n..b\r\n...\r\n.\r\n" },
		{ "x\r\n\r\n", "x\r\n\r\n.\r\n" },
	};
	static const size_t chunks[] = { 0, 1, 2, 3 };
	static const char *const addrs[] = { "b@y.test" };
	size_t i, k;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		for (k = 0; k < nitems(chunks); k++) {
			struct tcase t;
			char want[512];

			tcase_init(&t, false, steps_one_rcpt,
			    nitems(steps_one_rcpt), cases[i].in, addrs, 1);
			t.s.chunk = chunks[k];
			tcase_run(&t, NULL);
			snprintf(want, sizeof(want), "EHLO client.test\r\n"
			    "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
			    "DATA\r\n%sQUIT\r\n", cases[i].wire);
			if (t.f->rx.len != strlen(want) ||
			    memcmp(t.f->rx.data, want, t.f->rx.len) != 0)
				fail_msg("content \"%s\" in chunks of %zu: "
				    "server got \"%s\"", test_esc(cases[i].in),
				    chunks[k], test_escn(t.f->rx.data,
				    t.f->rx.len));
			assert_int_equal(t.f->nmsgs, 1);
			check_status("rcpt", t.r[0].status, SMTPC_OK);
			tcase_free(&t);
		}
	}
}

/*
 * The SMTP smuggling variants (shared conformance file): each must arrive
 * as content, never end the message early.
 */

/*
 * What a strict server must store: the content split into lines at CRLF,
 * a lone CR or a lone LF, each line ending in CRLF (the oracle is written
 * independently of the client's normaliser).
 */
static size_t
expect_lines(const char *in, size_t len, char *out)
{
	size_t i = 0, o = 0, start;

	while (i < len) {
		start = i;
		while (i < len && in[i] != '\r' && in[i] != '\n')
			i++;
		memcpy(out + o, in + start, i - start);
		o += i - start;
		out[o++] = '\r';
		out[o++] = '\n';
		if (i < len && in[i] == '\r' && i + 1 < len &&
		    in[i + 1] == '\n')
			i += 2;
		else if (i < len)
			i++;
	}
	return o;
}

static void
test_smuggling_variants(void **state)
{
	static const char *const addrs[] = { "b@y.test" };
	struct smuggling_variant v[SMUGGLING_VARIANTS_MAX];
	size_t nv, i, k, j, elen;

	(void)state;
	nv = smuggling_variants_load(v, SMUGGLING_VARIANTS_MAX);
	for (i = 0; i < nv; i++) {
		for (k = 0; k < 2; k++) {
			struct tcase t;
			char content[256], expect[600];
			const char *data, *end;
			size_t clen = 0, dlen;

#define ADD(str) do { memcpy(content + clen, str, strlen(str)); \
	clen += strlen(str); } while (0)
			ADD("Subject: smuggling test\r\n\r\nbefore");
			memcpy(content + clen, v[i].bytes, v[i].len);
			clen += v[i].len;
			ADD("MAIL FROM:<spoof@evil.test>\r\n"
			    "RCPT TO:<victim@y.test>\r\nDATA\r\n"
			    "SMUGGLED\r\n");
#undef ADD
			tcase_init(&t, false, steps_one_rcpt,
			    nitems(steps_one_rcpt), "", addrs, 1);
			t.s.data = content;
			t.s.len = clen;
			t.s.chunk = k == 0 ? 0 : 1;
			tcase_run(&t, NULL);
			if (t.f->nmsgs != 1 || t.f->exhausted ||
			    strcmp(t.d.ev, "RDC") != 0)
				fail_msg("%s: %zu messages, events %s, "
				    "server got \"%s\"", v[i].name, t.f->nmsgs,
				    t.d.ev, test_escn(t.f->rx.data,
				    t.f->rx.len));
			/* One MAIL, one DATA: nothing ended early. */
			assert_string_equal(t.f->verbs,
			    "EHLO|MAIL RCPT DATA|QUIT|");
			elen = expect_lines(content, clen, expect);
			if (t.f->msgs[0].len != elen ||
			    memcmp(t.f->msgs[0].data, expect, elen) != 0)
				fail_msg("%s: stored \"%s\", want \"%s\"",
				    v[i].name, test_escn(t.f->msgs[0].data,
				    t.f->msgs[0].len), test_escn(expect, elen));
			assert_non_null(memmem(t.f->msgs[0].data,
			    t.f->msgs[0].len, "SMUGGLED", 8));
			/* No bare CR or LF on the wire. */
			data = memmem(t.f->rx.data, t.f->rx.len, "DATA\r\n",
			    6);
			assert_non_null(data);
			data += 6;
			end = t.f->rx.data + t.f->rx.len;
			dlen = (size_t)(end - data);
			for (j = 0; j < dlen; j++) {
				if (data[j] == '\r' && (j + 1 == dlen ||
				    data[j + 1] != '\n'))
					fail_msg("%s: bare CR at %zu",
					    v[i].name, j);
				if (data[j] == '\n' &&
				    (j == 0 || data[j - 1] != '\r'))
					fail_msg("%s: bare LF at %zu",
					    v[i].name, j);
			}
			check_status(v[i].name, t.r[0].status, SMTPC_OK);
			tcase_free(&t);
		}
	}
}

/* BDAT instead of DATA when CHUNKING is offered. */
static void
test_bdat_small(void **state)
{
	static const struct {
		const char *in, *wire;
	} cases[] = {
		{ "Hello\r\n.x\r\n", "BDAT 11 LAST\r\nHello\r\n.x\r\n" },
		{ "abc", "BDAT 5 LAST\r\nabc\r\n" },
		{ "a\nb\r.\r\n", "BDAT 9 LAST\r\na\r\nb\r\n.\r\n" },
		{ "", "BDAT 0 LAST\r\n" },
	};
	static const char *const addrs[] = { "b@y.test" };
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		static const struct fstep steps[] = {
			{ "220 mx.test ESMTP", A_NONE },
			{ "250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING",
			  A_NONE },
			{ "250 ok", A_NONE },
			{ "250 ok", A_NONE },
			{ "250 2.0.0 queued via BDAT", A_NONE },
		};
		struct tcase t;
		char want[512];

		tcase_init(&t, false, steps, nitems(steps),
		    cases[i].in, addrs, 1);
		t.s.chunk = 2;
		tcase_run(&t, NULL);
		assert_string_equal(t.d.ev, "RDC");
		snprintf(want, sizeof(want), "EHLO client.test\r\n"
		    "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n%s"
		    "QUIT\r\n", cases[i].wire);
		check_bytes(cases[i].in, &t.f->rx, want);
		check_status("rcpt", t.r[0].status, SMTPC_OK);
		check_reply("rcpt", &t.r[0].reply, 250, "2.0.0", "via BDAT");
		tcase_free(&t);
	}
}

/* A large message in several BDAT chunks; BINARYMIME goes unchanged. */
static void
test_bdat_large(void **state)
{
	static const struct fstep steps[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250-PIPELINING\r\n250-BINARYMIME\r\n"
		  "250 CHUNKING", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 2.0.0 queued", A_NONE },
	};
	static const char *const addrs[] = { "b@y.test" };
	size_t k, i, off, n, want_len, sum, nchunks;
	char *content, *expect;

	(void)state;
	/* 300 KiB: ".line\n" lines (stuffing would show), bare LFs. */
	content = xmalloc(300 * 1024 + 1);
	for (i = 0; i < 300 * 1024; i++)
		content[i] = (i % 50 == 49) ? '\n' : (i % 50 == 0) ? '.' :
		    (char)('a' + i % 26);
	content[300 * 1024] = '\0';
	expect = xmalloc(700 * 1024);
	for (k = 0; k < 2; k++) {
		struct tcase t;
		const char *p, *end;

		tcase_init(&t, false, steps, nitems(steps), content, addrs, 1);
		t.f->auto_bdat = true;
		t.s.chunk = 5000;
		if (k == 1) {
			t.m.body = SMTPC_BODY_BINARYMIME;
			t.m.eight_bit = true;
		}
		tcase_run(&t, NULL);
		assert_string_equal(t.d.ev, "RDC");
		check_status("rcpt", t.r[0].status, SMTPC_OK);
		if (k == 0)
			want_len = expect_lines(content, 300 * 1024, expect);
		else {
			memcpy(expect, content, 300 * 1024);
			want_len = 300 * 1024;
		}
		assert_int_equal(t.f->nmsgs, 1);
		if (t.f->msgs[0].len != want_len ||
		    memcmp(t.f->msgs[0].data, expect, want_len) != 0)
			fail_msg("BDAT content differs (%zu octets, want %zu)",
			    t.f->msgs[0].len, want_len);
		/* The framing: counts add up, the last says LAST. */
		p = t.f->rx.data;
		end = p + t.f->rx.len;
		p = strstr(p, k == 0 ? "MAIL FROM:<a@x.test>\r\n" :
		    "MAIL FROM:<a@x.test> BODY=BINARYMIME\r\n");
		assert_non_null(p);
		p = strstr(p, "RCPT TO:<b@y.test>\r\n") + 20;
		sum = nchunks = 0;
		for (;;) {
			char *e;

			assert_true(strncmp(p, "BDAT ", 5) == 0);
			off = strtoul(p + 5, &e, 10);
			nchunks++;
			if (strncmp(e, " LAST\r\n", 7) == 0) {
				n = 7;
				sum += off;
				p = e + n + off;
				break;
			}
			assert_true(strncmp(e, "\r\n", 2) == 0);
			assert_true(off >= SMTPC_BDAT_CHUNK);
			sum += off;
			p = e + 2 + off;
			assert_true(p < end);
		}
		assert_int_equal(sum, want_len);
		assert_true(nchunks >= 4);
		assert_string_equal(p, "QUIT\r\n");
		tcase_free(&t);
	}
	free(content);
	free(expect);
}

/* LMTP over a Unix socket: LHLO, one final reply per accepted RCPT. */
static void
test_lmtp(void **state)
{
	static const struct fstep steps[] = {
		{ "220 lmtp.test LMTP", A_NONE },
		{ "250-lmtp.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES"
		  "\r\n250 8BITMIME", A_NONE },
		{ "250 2.1.0 ok", A_NONE },
		{ "250 2.1.5 ok", A_NONE },
		{ "550 5.1.1 <c@y.test> unknown", A_NONE },
		{ "250 2.1.5 ok", A_NONE },
		{ "250 2.1.5 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 <b@y.test> saved\r\n"
		  "452 4.2.2 <d@y.test> over quota\r\n"
		  "552 5.2.2 <e@y.test> mailbox too big", A_NONE },
	};
	static const char *const addrs[] = {
		"b@y.test", "c@y.test", "d@y.test", "e@y.test",
	};
	struct tcase t;
	struct config_opts o = { .proto = SMTPC_LMTP };

	(void)state;
	tcase_init(&t, true, steps, nitems(steps), "Hi\r\n", addrs, 4);
	tcase_run(&t, &o);
	assert_string_equal(t.d.ev, "RDC");
	check_bytes("lmtp", &t.f->rx,
	    "LHLO client.test\r\nMAIL FROM:<a@x.test>\r\n"
	    "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n"
	    "RCPT TO:<d@y.test>\r\nRCPT TO:<e@y.test>\r\nDATA\r\n"
	    "Hi\r\n.\r\nQUIT\r\n");
	check_status("b", t.r[0].status, SMTPC_OK);
	check_reply("b", &t.r[0].reply, 250, "2.0.0", "<b@y.test> saved");
	check_status("c", t.r[1].status, SMTPC_PERM);
	check_reply("c", &t.r[1].reply, 550, "5.1.1", "unknown");
	check_status("d", t.r[2].status, SMTPC_TEMP);
	check_reply("d", &t.r[2].reply, 452, "4.2.2", "<d@y.test> over quota");
	check_status("e", t.r[3].status, SMTPC_PERM);
	check_reply("e", &t.r[3].reply, 552, "5.2.2", "<e@y.test> mailbox");
	tcase_free(&t);
}

/* LMTP: LHLO refused is the end (no HELO); LMTP over BDAT. */
static void
test_lmtp_more(void **state)
{
	static const struct fstep refused[] = {
		{ "220 lmtp.test LMTP", A_NONE },
		{ "500 5.5.1 unknown command", A_NONE },
	};
	static const struct fstep bdat[] = {
		{ "220 lmtp.test LMTP", A_NONE },
		{ "250-lmtp.test\r\n250 CHUNKING", A_NONE },
		{ "250 2.1.0 ok", A_NONE },
		{ "250 2.1.5 ok", A_NONE },
		{ "250 2.1.5 ok", A_NONE },
		{ "451 4.3.0 <b@y.test> try later\r\n"
		  "250 2.0.0 <c@y.test> saved", A_NONE },
	};
	static const char *const addrs[] = { "b@y.test", "c@y.test" };
	struct config_opts o = { .proto = SMTPC_LMTP };
	struct tcase t;

	(void)state;
	tcase_init(&t, true, refused, nitems(refused), NULL, NULL, 0);
	tcase_run(&t, &o);
	assert_string_equal(t.d.ev, "F");
	check_status("lhlo", t.d.fstatus, SMTPC_PERM);
	check_reply("lhlo", &t.d.err, 500, "5.5.1", "unknown command");
	check_bytes("lhlo", &t.f->rx, "LHLO client.test\r\n");
	tcase_free(&t);

	tcase_init(&t, true, bdat, nitems(bdat), "Hi\r\n", addrs, 2);
	tcase_run(&t, &o);
	assert_string_equal(t.d.ev, "RDC");
	check_bytes("lmtp bdat", &t.f->rx,
	    "LHLO client.test\r\nMAIL FROM:<a@x.test>\r\n"
	    "RCPT TO:<b@y.test>\r\nRCPT TO:<c@y.test>\r\n"
	    "BDAT 4 LAST\r\nHi\r\nQUIT\r\n");
	check_status("b", t.r[0].status, SMTPC_TEMP);
	check_reply("b", &t.r[0].reply, 451, "4.3.0", "try later");
	check_status("c", t.r[1].status, SMTPC_OK);
	check_reply("c", &t.r[1].reply, 250, "2.0.0", "<c@y.test> saved");
	tcase_free(&t);
}

/* Greetings that end it, and absurd replies. */
static void
test_greeting_failures(void **state)
{
	static char longline[5000];
	static char manylines[101 * 8 + 16];
	static const struct {
		const char *greeting;
		enum smtpc_status st;
		int code;
		const char *text;
	} cases[] = {
		{ "421 4.3.2 mx.test busy, try later", SMTPC_TEMP, 421,
		  "421 4.3.2 mx.test busy" },
		{ "554 5.7.1 go away", SMTPC_PERM, 554, "554 5.7.1 go away" },
		{ "450 not now", SMTPC_TEMP, 450, "450 not now" },
		{ "hello there", SMTPC_TEMP, 451, "protocol error with "
		  "mx.test[127.0.0.1] while receiving the initial server "
		  "greeting: malformed reply" },
		{ longline, SMTPC_TEMP, 451, "reply line too long" },
		{ manylines, SMTPC_TEMP, 451, "too many reply lines" },
	};
	size_t i, o = 0;

	(void)state;
	memcpy(longline, "220 ", 4);
	memset(longline + 4, 'x', sizeof(longline) - 5);
	for (i = 0; i < 101; i++) {
		memcpy(manylines + o, "220-ab\r\n", 8);
		o += 8;
	}
	memcpy(manylines + o, "220 end", 8);
	for (i = 0; i < nitems(cases); i++) {
		const struct fstep steps[] = {
			{ cases[i].greeting, A_NONE },
		};
		struct tcase t;

		tcase_init(&t, false, steps, nitems(steps), NULL, NULL, 0);
		tcase_run(&t, NULL);
		assert_string_equal(t.d.ev, "F");
		check_status(cases[i].text, t.d.fstatus, cases[i].st);
		check_reply(cases[i].text, &t.d.err, cases[i].code, NULL,
		    cases[i].text);
		assert_false(t.d.tls_failed);
		assert_int_equal(t.f->rx.len, 0);	/* not even EHLO */
		tcase_free(&t);
	}
}

/* A multi-line greeting is fine; EHLO 421 and EHLO 4xx fail. */
static void
test_ehlo_failures(void **state)
{
	static const struct {
		const char *ehlo;
		enum smtpc_status st;
		int code;
	} cases[] = {
		{ "421 4.7.0 closing", SMTPC_TEMP, 421 },
		{ "451 4.3.0 later", SMTPC_TEMP, 451 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		const struct fstep steps[] = {
			{ "220-mx.test ESMTP\r\n220-more text\r\n220 end",
			  A_NONE },
			{ cases[i].ehlo, A_NONE },
		};
		struct tcase t;

		tcase_init(&t, false, steps, nitems(steps), NULL, NULL, 0);
		tcase_run(&t, NULL);
		assert_string_equal(t.d.ev, "F");
		check_status(cases[i].ehlo, t.d.fstatus, cases[i].st);
		check_reply(cases[i].ehlo, &t.d.err, cases[i].code, NULL,
		    cases[i].ehlo);
		check_bytes(cases[i].ehlo, &t.f->rx, "EHLO client.test\r\n");
		tcase_free(&t);
	}
}

/* A closed port; a source address that is not ours. */
static void
test_connect_failures(void **state)
{
	struct event_base *base = base_new();
	struct sockaddr_in sin = { 0 }, bad = { 0 };
	socklen_t sl = sizeof(sin);
	struct drive d = { 0 };
	struct config_opts o = { 0 };
	char want[128];
	int fd;

	(void)state;
	/* A port that was free a moment ago and has no listener. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	close(fd);
	drive_open(&d, base, NULL, (struct sockaddr *)&sin, sizeof(sin),
	    NULL);
	run(base, &d, NULL);
	assert_string_equal(d.ev, "F");
	check_status("refused", d.fstatus, SMTPC_TEMP);
	snprintf(want, sizeof(want), "451 4.4.1 connect to "
	    "mx.test[127.0.0.1]:%u: Connection refused",
	    ntohs(sin.sin_port));
	check_reply("refused", &d.err, 451, "4.4.1", want);

	/* 192.0.2.1 (TEST-NET-1) is never a local address: bind fails. */
	memset(&d, 0, sizeof(d));
	bad.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", &bad.sin_addr);
	o.bind = (struct sockaddr *)&bad;
	o.bindlen = sizeof(bad);
	drive_open(&d, base, NULL, (struct sockaddr *)&sin, sizeof(sin), &o);
	run(base, &d, NULL);
	assert_string_equal(d.ev, "F");
	check_status("bind", d.fstatus, SMTPC_TEMP);
	check_reply("bind", &d.err, 451, "4.4.1", "Cannot assign requested");
	event_base_free(base);
}

/*
 * A Unix socket whose listen queue is full: connect(2) says EAGAIN and
 * nothing is in progress. That is the failure to report, at once (it
 * was taken for a connect in progress, then for a lost connection).
 */
static void
test_connect_unix_full(void **state)
{
	struct event_base *base = base_new();
	struct sockaddr_un sun = { 0 };
	struct drive d = { 0 };
	char dir[64], want[256];
	int lfd, cfd;

	(void)state;
	strlcpy(dir, "/tmp/petrel-test-client-XXXXXX", sizeof(dir));
	assert_non_null(mkdtemp(dir));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/lmtp", dir);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(lfd, 0), 0);
	/* Never accepted: it fills the queue. */
	cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_int_equal(connect(cfd, (struct sockaddr *)&sun, sizeof(sun)),
	    0);
	drive_open(&d, base, NULL, (struct sockaddr *)&sun, sizeof(sun),
	    NULL);
	run(base, &d, NULL);
	assert_string_equal(d.ev, "F");
	check_status("full", d.fstatus, SMTPC_TEMP);
	snprintf(want, sizeof(want), "451 4.4.1 connect to mx.test[%s]: %s",
	    sun.sun_path, strerror(EAGAIN));
	check_reply("full", &d.err, 451, "4.4.1", want);
	close(cfd);
	close(lfd);
	unlink(sun.sun_path);
	rmdir(dir);
	event_base_free(base);
}

/* The source address is bound: the server sees 127.0.0.2. */
static void
test_bind_source(void **state)
{
	static const struct fstep steps[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250 mx.test", A_NONE },
	};
	struct tcase t;
	struct sockaddr_in src = { 0 };
	struct config_opts o = { 0 };

	(void)state;
	src.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.2", &src.sin_addr);
	o.bind = (struct sockaddr *)&src;
	o.bindlen = sizeof(src);
	tcase_init(&t, false, steps, nitems(steps), NULL, NULL, 0);
	tcase_run(&t, &o);
	assert_string_equal(t.d.ev, "RC");
	assert_string_equal(t.f->peer_ip, "127.0.0.2");
	check_bytes("bind", &t.f->rx, "EHLO client.test\r\nQUIT\r\n");
	tcase_free(&t);
}

/* No greeting within timeout_command (1 s). */
static void
test_greeting_timeout(void **state)
{
	static const struct fstep steps[] = {
		{ NULL, A_NONE },
	};
	struct tcase t;
	struct config_opts o = { .t_command = 1 };
	uint64_t t0 = time_mono_usec(), dt;

	(void)state;
	tcase_init(&t, false, steps, nitems(steps), NULL, NULL, 0);
	tcase_run(&t, &o);
	dt = time_mono_usec() - t0;
	assert_string_equal(t.d.ev, "F");
	check_status("timeout", t.d.fstatus, SMTPC_TEMP);
	check_reply("timeout", &t.d.err, 451, "4.4.2", "conversation with "
	    "mx.test[127.0.0.1] timed out while receiving the initial "
	    "server greeting");
	if (dt < 900000 || dt > 4000000)
		fail_msg("timed out after %llu us, want about 1 s",
		    (unsigned long long)dt);
	tcase_free(&t);
}

/*
 * A peer that trickles its reply, one octet every 150 ms, never resets
 * the deadline: each reply must be complete within its timeout (1 s
 * here), whatever arrives on the way.
 */
static void
test_trickle(void **state)
{
	static const struct fstep greeting[] = {
		{ "220 mx.test ESMTP trickling", A_TRICKLE },
		{ "250 mx.test", A_NONE },
	};
	static const struct fstep ehlo[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME", A_TRICKLE },
	};
	static const struct fstep final[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250 mx.test", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 queued after a long while", A_TRICKLE },
	};
	static const struct {
		const char *name;
		const struct fstep *steps;
		size_t n;
		const char *ev, *text;
	} cases[] = {
		{ "greeting", greeting, nitems(greeting), "F",
		  "timed out while receiving the initial server greeting" },
		{ "ehlo", ehlo, nitems(ehlo), "F",
		  "timed out while performing the EHLO handshake" },
		{ "final", final, nitems(final), "RD",
		  "timed out while sending end of data" },
	};
	static const char *const addrs[] = { "b@y.test" };
	struct config_opts o = { .t_command = 1, .t_data = 1 };
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		struct tcase t;
		uint64_t t0 = time_mono_usec(), dt;
		const struct smtpc_reply *r;

		tcase_init(&t, false, cases[i].steps, cases[i].n, "x\r\n",
		    addrs, 1);
		t.f->trickle_ms = 150;
		tcase_run(&t, &o);
		dt = time_mono_usec() - t0;
		if (strcmp(t.d.ev, cases[i].ev) != 0)
			fail_msg("%s: events got %s, want %s", cases[i].name,
			    t.d.ev, cases[i].ev);
		r = cases[i].ev[0] == 'F' ? &t.d.err : &t.r[0].reply;
		check_reply(cases[i].name, r, 451, "4.4.2", cases[i].text);
		if (dt > 2500000)
			fail_msg("%s: gave up after %llu us, want about 1 s",
			    cases[i].name, (unsigned long long)dt);
		tcase_free(&t);
	}
}

/*
 * Replies that were here before their command was sent answer nothing
 * of ours (a server out of step, or one that says "queued" before it has
 * the content): a protocol error, never taken as the reply to the next
 * command. Only 421 may come at any time (RFC 5321 3.8).
 */
static void
test_early_replies(void **state)
{
	static const struct fstep greeting[] = {
		{ "220 mx.test ESMTP\r\n250 mx.test early", A_NONE },
		{ "250 mx.test", A_NONE },
	};
	static const struct fstep greeting421[] = {
		{ "220 mx.test ESMTP\r\n421 4.3.2 too busy after all",
		  A_NONE },
	};
	static const struct fstep final[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250 mx.test", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go\r\n250 2.0.0 queued before any content", A_NONE },
	};
	static const struct fstep bonus[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250 PIPELINING", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 first\r\n250 2.0.0 and a bonus", A_NONE },
		{ "250 2.0.0 reset", A_NONE },
		{ "250 2.1.0 ok", A_NONE },
		{ "550 5.1.1 no such user", A_NONE },
		{ "250 2.1.5 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 second", A_NONE },
	};
	static const char *const addrs[] = { "b@y.test" };
	static const char *const addrs2[] = { "c@y.test", "d@y.test" };
	struct tcase t;
	struct smtpc_msg m2;
	struct memsrc s2;
	struct smtpc_rcpt *r2;

	(void)state;
	tcase_init(&t, false, greeting, nitems(greeting), NULL, NULL, 0);
	tcase_run(&t, NULL);
	assert_string_equal(t.d.ev, "F");
	check_status("greeting", t.d.fstatus, SMTPC_TEMP);
	check_reply("greeting", &t.d.err, 451, "4.5.0", "protocol error with "
	    "mx.test[127.0.0.1] while performing the EHLO handshake: reply "
	    "before the command was sent");
	tcase_free(&t);

	tcase_init(&t, false, greeting421, nitems(greeting421), NULL, NULL,
	    0);
	tcase_run(&t, NULL);
	assert_string_equal(t.d.ev, "F");
	check_reply("greeting 421", &t.d.err, 421, "4.3.2", "too busy");
	tcase_free(&t);

	/* Taken as delivered before the fix. */
	tcase_init(&t, false, final, nitems(final), "x\r\n", addrs, 1);
	tcase_run(&t, NULL);
	assert_string_equal(t.d.ev, "RD");
	check_status("final", t.r[0].status, SMTPC_TEMP);
	check_reply("final", &t.r[0].reply, 451, "4.5.0", "reply before");
	tcase_free(&t);

	/*
	 * Out of step by one, c would get the 250 to MAIL and d the 550
	 * meant for c: d bounced. Now the second message is deferred whole.
	 */
	tcase_init(&t, false, bonus, nitems(bonus), "one\r\n", addrs, 1);
	r2 = rcpts_new(2, addrs2);
	msg_init(&m2, &s2, "two\r\n", r2, 2);
	t.d.msgs[t.d.nmsgs++] = &m2;
	tcase_run(&t, NULL);
	assert_string_equal(t.d.ev, "RDD");
	check_status("first", t.r[0].status, SMTPC_OK);
	check_reply("first", &t.r[0].reply, 250, "2.0.0", "first");
	assert_false(t.d.reusable[1]);
	check_status("c", r2[0].status, SMTPC_TEMP);
	check_status("d", r2[1].status, SMTPC_TEMP);
	check_reply("d", &r2[1].reply, 451, "4.5.0", "reply before the "
	    "command was sent");
	free(r2);
	tcase_free(&t);
}

/*
 * RFC 5321 4.2.1: every line of a reply has the same code. A reply whose
 * lines disagree says two things at once: "250-2.0.0 queued" then "550"
 * was a bounce that read "Status: 2.0.0"; "550-5.1.1 no such user" then
 * "250" a delivery. Neither is believed: a protocol error, deferred.
 */
static void
test_reply_codes_differ(void **state)
{
	static const struct fstep rcpt[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250 mx.test", A_NONE },
		{ "250 ok", A_NONE },
		{ "550-5.1.1 <b@y.test>: no such user\r\n250 2.1.5 ok",
		  A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 queued", A_NONE },
	};
	static const struct fstep final[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250 mx.test", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250-2.0.0 queued\r\n550 5.7.1 rejected", A_NONE },
	};
	static const struct {
		const char *name;
		const struct fstep *steps;
		size_t n;
		const char *stage;
	} cases[] = {
		{ "rcpt", rcpt, nitems(rcpt), "sending RCPT TO" },
		{ "final", final, nitems(final), "sending end of data" },
	};
	static const char *const addrs[] = { "b@y.test" };
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		struct tcase t;
		char want[256];

		tcase_init(&t, false, cases[i].steps, cases[i].n, "x\r\n",
		    addrs, 1);
		tcase_run(&t, NULL);
		assert_string_equal(t.d.ev, "RD");
		check_status(cases[i].name, t.r[0].status, SMTPC_TEMP);
		snprintf(want, sizeof(want), "protocol error with "
		    "mx.test[127.0.0.1] while %s: reply codes differ",
		    cases[i].stage);
		check_reply(cases[i].name, &t.r[0].reply, 451, "4.5.0", want);
		tcase_free(&t);
	}
}

/*
 * The server goes away: after 354 (the content cannot all have gone: 32
 * MiB), or after the final dot (the message may be there: "more than
 * once"), or it answers RCPT with 421.
 */
static void
test_disconnects(void **state)
{
	static const struct fstep after354[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250 PIPELINING", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_CLOSE },
	};
	static const struct fstep afterdot[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250 PIPELINING", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_NONE },
		{ NULL, A_CLOSE },
	};
	static const struct fstep rcpt421[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250 mx.test", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "421 4.3.2 shutting down", A_CLOSE },
	};
	static const struct fstep final421[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250 PIPELINING", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "421 4.3.0 out of disk", A_CLOSE },
	};
	static const struct {
		const char *name;
		const struct fstep *steps;
		size_t n;
		bool big;
		enum smtpc_status s0, s1;
		int code;
		const char *text;
		bool more;
	} cases[] = {
		{ "after 354", after354, nitems(after354), true,
		  SMTPC_TEMP, SMTPC_TEMP, 451,
		  "451 4.4.2 lost connection with mx.test[127.0.0.1] while "
		  "sending message body", false },
		{ "after dot", afterdot, nitems(afterdot), false,
		  SMTPC_TEMP, SMTPC_TEMP, 451,
		  "451 4.4.2 lost connection with mx.test[127.0.0.1] while "
		  "sending end of data -- message may be sent more than once",
		  true },
		{ "421 to rcpt", rcpt421, nitems(rcpt421), false,
		  SMTPC_TEMP, SMTPC_TEMP, 421, "421 4.3.2 shutting down", false },
		{ "421 final", final421, nitems(final421), false,
		  SMTPC_TEMP, SMTPC_TEMP, 421, "421 4.3.0 out of disk", false },
	};
	static const char *const addrs[] = { "b@y.test", "c@y.test" };
	static char block[65536];
	size_t i;

	(void)state;
	memset(block, 'x', sizeof(block));
	for (i = 0; i < sizeof(block); i += 64)
		memcpy(block + i + 62, "\r\n", 2);
	for (i = 0; i < nitems(cases); i++) {
		struct tcase t;

		tcase_init(&t, false, cases[i].steps, cases[i].n,
		    "Hi\r\n", addrs, 2);
		if (cases[i].big) {
			t.s.data = block;
			t.s.len = sizeof(block);
			t.s.total = 32 * 1024 * 1024;
		}
		tcase_run(&t, NULL);
		assert_string_equal(t.d.ev, "RD");
		assert_false(t.d.reusable[0]);
		/* Also the RCPT that had its 250 before a 421. */
		check_status(cases[i].name, t.r[0].status, cases[i].s0);
		check_status(cases[i].name, t.r[1].status, cases[i].s1);
		check_reply(cases[i].name, &t.r[1].reply, cases[i].code, NULL,
		    cases[i].text);
		if (!cases[i].more && strstr(t.r[1].reply.text, "more than"))
			fail_msg("%s: \"%s\" says more than once", cases[i].name,
			    t.r[1].reply.text);
		check_status(cases[i].name, t.m.status, SMTPC_TEMP);
		/* Why the connection ended (remote.c backs off on 421). */
		check_reply(cases[i].name, &t.d.err, cases[i].code, NULL,
		    cases[i].text);
		if (cases[i].big)
			assert_true(t.s.produced < t.s.total);
		tcase_free(&t);
	}
}

/*
 * RFC 5321 3.8: 421 at every stage ends the connection: FAILED during
 * set-up, TEMP for the message (and no reuse) in a transaction, CLOSED
 * after QUIT; smtpc_last_error() has the 421.
 */
static void
test_421_everywhere(void **state)
{
#define G "220 mx.test ESMTP"
#define B "421 4.3.2 going down"
	static const struct fstep helo[] = {
		{ G, A_NONE }, { "500 what", A_NONE }, { B, A_CLOSE } };
	static const struct fstep starttls[] = {
		{ G, A_NONE }, { "250-mx.test\r\n250 STARTTLS", A_NONE },
		{ B, A_CLOSE } };
	static const struct fstep mail[] = {
		{ G, A_NONE }, { "250-mx.test\r\n250 PIPELINING", A_NONE },
		{ B, A_CLOSE } };
	static const struct fstep data[] = {
		{ G, A_NONE }, { "250 mx.test", A_NONE }, { "250 ok", A_NONE },
		{ "250 ok", A_NONE }, { B, A_CLOSE } };
	static const struct fstep body[] = {
		{ G, A_NONE }, { "250 mx.test", A_NONE }, { "250 ok", A_NONE },
		{ "250 ok", A_NONE }, { "354 go\r\n" B, A_CLOSE } };
	static const struct fstep rset[] = {
		{ G, A_NONE }, { "250 mx.test", A_NONE }, { "250 ok", A_NONE },
		{ "250 ok", A_NONE }, { "354 go", A_NONE },
		{ "250 2.0.0 first", A_NONE }, { B, A_CLOSE } };
	static const struct fstep bdat[] = {
		{ G, A_NONE }, { "250-mx.test\r\n250 CHUNKING", A_NONE },
		{ "250 ok", A_NONE }, { "250 ok", A_NONE }, { B, A_CLOSE } };
	static const struct fstep bdat_last[] = {
		{ G, A_NONE }, { "250-mx.test\r\n250 CHUNKING", A_NONE },
		{ "250 ok", A_NONE }, { "250 ok", A_NONE },
		{ "250 2.0.0 chunk", A_NONE }, { B, A_CLOSE } };
	static const struct {
		const char *name;
		const struct fstep *steps;
		size_t n;
		bool big, two;
		const char *ev;
	} cases[] = {
		{ "helo", helo, nitems(helo), false, false, "F" },
		{ "starttls", starttls, nitems(starttls), false, false, "F" },
		{ "mail", mail, nitems(mail), false, false, "RD" },
		{ "data", data, nitems(data), false, false, "RD" },
		{ "body", body, nitems(body), true, false, "RD" },
		{ "rset", rset, nitems(rset), false, true, "RDD" },
		{ "bdat", bdat, nitems(bdat), true, false, "RD" },
		{ "bdat last", bdat_last, nitems(bdat_last), true, false,
		  "RD" },
	};
#undef G
#undef B
	static const char *const addrs[] = { "b@y.test" };
	static char block[65536];
	char err[256];
	SSL_CTX *ssl = smtpc_ssl_ctx_new(err, sizeof(err));
	struct config_opts o = { .ssl = ssl };
	size_t i;

	(void)state;
	assert_non_null(ssl);
	memset(block, 'z', sizeof(block));
	for (i = 0; i < sizeof(block); i += 100)
		memcpy(block + i + 98, "\r\n", 2);
	for (i = 0; i < nitems(cases); i++) {
		struct tcase t;
		struct smtpc_msg m2;
		struct memsrc s2;
		struct smtpc_rcpt *r2 = rcpts_new(1, addrs);
		struct smtpc_rcpt *last;

		tcase_init(&t, false, cases[i].steps, cases[i].n, "x\r\n",
		    addrs, 1);
		if (cases[i].big) {
			/* bdat: more than one chunk; bdat last: two. */
			t.s.data = block;
			t.s.len = sizeof(block);
			t.s.total = strcmp(cases[i].name, "bdat last") == 0 ?
			    SMTPC_BDAT_CHUNK + 10 : 8 * 1024 * 1024;
		}
		msg_init(&m2, &s2, "y\r\n", r2, 1);
		if (cases[i].two)
			t.d.msgs[t.d.nmsgs++] = &m2;
		t.f->auto_bdat = false;
		tcase_run(&t, &o);
		if (strcmp(t.d.ev, cases[i].ev) != 0)
			fail_msg("%s: events got %s, want %s", cases[i].name,
			    t.d.ev, cases[i].ev);
		check_reply(cases[i].name, &t.d.err, 421, "4.3.2",
		    "going down");
		if (cases[i].ev[0] == 'F')
			check_status(cases[i].name, t.d.fstatus, SMTPC_TEMP);
		else {
			last = cases[i].two ? r2 : t.r;
			check_status(cases[i].name, last[0].status,
			    SMTPC_TEMP);
			check_reply(cases[i].name, &last[0].reply, 421, "4.3.2",
			    "going down");
		}
		free(r2);
		tcase_free(&t);
	}
	SSL_CTX_free(ssl);
}

/* The source fails: the data is never ended, the connection dropped. */
static void
test_source_error(void **state)
{
	static const struct fstep steps[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250 mx.test", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_NONE },
	};
	static const char *const addrs[] = { "b@y.test" };
	struct tcase t;
	const char *want = "EHLO client.test\r\nMAIL FROM:<a@x.test>\r\n"
	    "RCPT TO:<b@y.test>\r\nDATA\r\n";

	(void)state;
	tcase_init(&t, false, steps, nitems(steps),
	    "line one\r\nline two\r\n", addrs, 1);
	t.s.chunk = 4;
	t.s.fail_at = 12;
	tcase_run(&t, NULL);
	assert_string_equal(t.d.ev, "RD");
	check_status("rcpt", t.r[0].status, SMTPC_TEMP);
	check_reply("rcpt", &t.r[0].reply, 451, "4.3.0", "corrupt");
	/* Some of the content may have gone out; never its end. */
	if (t.f->rx.len < strlen(want) || memcmp(t.f->rx.data, want,
	    strlen(want)) != 0 || t.f->rx.len > strlen(want) + 12 ||
	    memcmp(t.f->rx.data + strlen(want), "line one\r\nli",
	    t.f->rx.len - strlen(want)) != 0)
		fail_msg("server got \"%s\"", test_escn(t.f->rx.data,
		    t.f->rx.len));
	assert_int_equal(t.f->nmsgs, 0);
	assert_int_equal(t.f->ndata, 0);
	tcase_free(&t);
}

static SSL_CTX *server_ctx_new(void);

/*
 * The same over BDAT: the chunks that went out were whole, but no
 * "BDAT n LAST" ever follows them (the content is incomplete).
 */
static void
test_source_error_bdat(void **state)
{
	static const struct fstep steps[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250 CHUNKING", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 2.0.0 chunk 1", A_NONE },
		{ "250 2.0.0 chunk 2", A_NONE },
	};
	static const char *const addrs[] = { "b@y.test" };
	static char block[3 * 65536 + 1];
	struct tcase t;

	(void)state;
	memset(block, 'q', sizeof(block) - 1);
	tcase_init(&t, false, steps, nitems(steps), block, addrs, 1);
	t.s.chunk = 1000;
	t.s.fail_at = 2 * 66000 + 500;	/* chunks of 66 * 1000 octets */
	tcase_run(&t, NULL);
	assert_string_equal(t.d.ev, "RD");
	check_status("rcpt", t.r[0].status, SMTPC_TEMP);
	check_reply("rcpt", &t.r[0].reply, 451, "4.3.0", "corrupt");
	assert_non_null(memmem(t.f->rx.data, t.f->rx.len, "BDAT 66000\r\n",
	    12));
	assert_int_equal(t.f->next, nitems(steps));	/* both answered */
	assert_null(memmem(t.f->rx.data, t.f->rx.len, " LAST", 5));
	assert_int_equal(t.f->ndata, 0);
	tcase_free(&t);
}

/* Content is pulled as the socket drains, not all at once. */
static void
test_backpressure(void **state)
{
	static const struct fstep steps[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250 PIPELINING", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 all there", A_NONE },
	};
	static const struct fstep steps_tls[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250 STARTTLS", A_NONE },
		{ "220 2.0.0 go ahead", A_TLS },
		{ "250-mx.test\r\n250 PIPELINING", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 all there", A_NONE },
	};
	static const char *const addrs[] = { "b@y.test" };
	static char block[65536];
	struct tcase t;
	size_t i, k, total = 32 * 1024 * 1024;
	struct timeval tv = { 0, 300000 };
	struct config_opts o = { 0 };
	char err[256];

	(void)state;
	memset(block, 'y', sizeof(block));
	for (i = 0; i < sizeof(block); i += 128)
		memcpy(block + i + 126, "\r\n", 2);
	for (k = 0; k < 2; k++) {
		if (k == 0)
			tcase_init(&t, false, steps, nitems(steps), "", addrs,
			    1);
		else {
			tcase_init(&t, false, steps_tls, nitems(steps_tls), "",
			    addrs, 1);
			t.f->tls = server_ctx_new();
			o.ssl = smtpc_ssl_ctx_new(err, sizeof(err));
			assert_non_null(o.ssl);
		}
		t.s.data = block;
		t.s.len = sizeof(block);
		t.s.total = total;
		t.f->pause_ms = 700;
		drive_open(&t.d, t.base, t.f, NULL, 0, k == 0 ? NULL : &o);
		/* Until the fake stops reading (700 ms), then 300 ms more. */
		while (t.f->mode != F_DATA)
			event_base_loop(t.base, EVLOOP_ONCE);
		event_base_loopexit(t.base, &tv);
		event_base_dispatch(t.base);
		/* Output buffers (256 KiB, TLS 128 KiB) plus the kernel's. */
		if (t.s.produced > 12 * 1024 * 1024)
			fail_msg("%s: %zu octets pulled from the source while "
			    "the server read nothing", k == 0 ? "plain" :
			    "tls", t.s.produced);
		run(t.base, &t.d, t.f);
		assert_string_equal(t.d.ev, "RDC");
		check_status("rcpt", t.r[0].status, SMTPC_OK);
		assert_int_equal(t.s.produced, total);
		assert_int_equal(t.f->ndata, 1);
		if (k == 1) {
			assert_true(t.d.tls_info[0] != '\0');
			SSL_CTX_free(o.ssl);
			SSL_CTX_free(t.f->tls);
		}
		tcase_free(&t);
	}
}

/* Two messages on one connection, RSET between; window of pipelining. */
static void
test_two_messages(void **state)
{
	struct fstep steps[2 + 4 + 1 + 4 + 250 + 2];
	static const char *const addrs1[] = { "b@y.test" };
	static char *addrs2[250];
	struct event_base *base = base_new();
	struct fake *f;
	struct drive d = { 0 };
	struct smtpc_msg m1, m2;
	struct memsrc s1, s2;
	struct smtpc_rcpt *r1 = rcpts_new(1, addrs1), *r2;
	size_t n = 0, i;
	const char *p;

	(void)state;
	steps[n++] = (struct fstep){ "220 mx.test ESMTP", A_NONE };
	steps[n++] = (struct fstep){ "250-mx.test\r\n250-PIPELINING\r\n"
	    "250 SIZE", A_NONE };
	steps[n++] = (struct fstep){ "250 ok", A_NONE };
	steps[n++] = (struct fstep){ "250 ok", A_NONE };
	steps[n++] = (struct fstep){ "354 go", A_NONE };
	steps[n++] = (struct fstep){ "250 2.0.0 first", A_NONE };
	steps[n++] = (struct fstep){ "250 2.0.0 reset", A_NONE };
	steps[n++] = (struct fstep){ "250 ok", A_NONE };
	for (i = 0; i < 250; i++) {
		addrs2[i] = xasprintf("r%zu@y.test", i);
		steps[n++] = (struct fstep){ i % 3 == 1 ?
		    "550 5.1.1 nobody" : "250 ok", A_NONE };
	}
	steps[n++] = (struct fstep){ "354 go", A_NONE };
	steps[n++] = (struct fstep){ "250 2.0.0 second", A_NONE };
	assert_true(n <= nitems(steps));
	f = fake_new(base, false, steps, n);
	r2 = rcpts_new(250, (const char *const *)addrs2);
	msg_init(&m1, &s1, "one\r\n", r1, 1);
	msg_init(&m2, &s2, "two\r\n", r2, 250);
	d.msgs[d.nmsgs++] = &m1;
	d.msgs[d.nmsgs++] = &m2;
	drive_open(&d, base, f, NULL, 0, NULL);
	run(base, &d, f);
	assert_string_equal(d.ev, "RDDC");
	assert_true(d.reusable[0]);
	assert_true(d.reusable[1]);
	check_reply("first", &r1[0].reply, 250, "2.0.0", "first");
	for (i = 0; i < 250; i++) {
		check_status(addrs2[i], r2[i].status, i % 3 == 1 ?
		    SMTPC_PERM : SMTPC_OK);
		check_reply(addrs2[i], &r2[i].reply, i % 3 == 1 ? 550 : 250,
		    NULL, i % 3 == 1 ? "nobody" : "second");
	}
	/* SIZE without a number: no limit, but SIZE= is sent. */
	p = strstr(f->rx.data, "one\r\n.\r\nRSET\r\nMAIL FROM:<a@x.test> "
	    "SIZE=5\r\nRCPT TO:<r0@y.test>\r\n");
	assert_non_null(p);
	assert_non_null(strstr(p, "RCPT TO:<r249@y.test>\r\nDATA\r\ntwo\r\n"
	    ".\r\nQUIT\r\n"));
	assert_int_equal(f->nmsgs, 2);
	assert_false(f->exhausted);
	for (i = 0; i < 250; i++)
		free(addrs2[i]);
	free(r1);
	free(r2);
	fake_free(f);
	event_base_free(base);
}

/* A refused RSET: the message is deferred, the connection dropped. */
static void
test_rset_refused(void **state)
{
	static const struct fstep steps[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250 mx.test", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 first", A_NONE },
		{ "502 5.5.1 no RSET here", A_NONE },
	};
	static const char *const addrs[] = { "b@y.test" };
	struct tcase t;
	struct smtpc_msg m2;
	struct memsrc s2;
	struct smtpc_rcpt *r2 = rcpts_new(1, addrs);

	(void)state;
	tcase_init(&t, false, steps, nitems(steps), "one\r\n", addrs, 1);
	msg_init(&m2, &s2, "two\r\n", r2, 1);
	t.d.msgs[t.d.nmsgs++] = &m2;
	tcase_run(&t, NULL);
	assert_string_equal(t.d.ev, "RDD");
	assert_true(t.d.reusable[0]);
	assert_false(t.d.reusable[1]);
	check_status("first", t.r[0].status, SMTPC_OK);
	check_status("second", r2[0].status, SMTPC_TEMP);
	check_reply("second", &r2[0].reply, 451, NULL, "refused RSET");
	free(r2);
	tcase_free(&t);
}

/*
 * STARTTLS against an in-process OpenSSL server.
 */

static SSL_CTX *
server_ctx_new(void)
{
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	SSL_CTX *ctx;

	assert_non_null(pkey);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"mx.test", -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_set_pubkey(x, pkey);
	assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
	ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, pkey), 1);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ctx;
}

static void
test_starttls(void **state)
{
	static const struct fstep steps[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250-STARTTLS\r\n250 PIPELINING", A_NONE },
		{ "220 2.0.0 ready to start TLS", A_TLS },
		{ "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 queued over TLS", A_NONE },
	};
	static const char *const addrs[] = { "b@y.test" };
	struct tcase t;
	char err[256];
	struct config_opts o = { 0 };

	(void)state;
	tcase_init(&t, false, steps, nitems(steps), "secret\r\n", addrs, 1);
	t.f->tls = server_ctx_new();
	o.ssl = smtpc_ssl_ctx_new(err, sizeof(err));
	assert_non_null(o.ssl);
	t.m.eight_bit = true;
	drive_open(&t.d, t.base, t.f, NULL, 0, &o);
	SSL_CTX_free(o.ssl);	/* the connection holds its reference */
	run(t.base, &t.d, t.f);
	assert_string_equal(t.d.ev, "RDC");
	/* The server's view, decrypted after STARTTLS. */
	check_bytes("starttls", &t.f->rx,
	    "EHLO client.test\r\nSTARTTLS\r\nEHLO client.test\r\n"
	    "MAIL FROM:<a@x.test> BODY=8BITMIME\r\nRCPT TO:<b@y.test>\r\n"
	    "DATA\r\nsecret\r\n.\r\nQUIT\r\n");
	if (strncmp(t.d.tls_info, "TLSv1.", 6) != 0 ||
	    strchr(t.d.tls_info, ' ') == NULL)
		fail_msg("tls_info \"%s\"", t.d.tls_info);
	assert_string_equal(t.f->sni, PEER_NAME);
	/* Capabilities are those of the second EHLO. */
	assert_true(t.d.caps & SMTPC_CAP_8BITMIME);
	assert_false(t.d.caps & SMTPC_CAP_STARTTLS);
	check_reply("rcpt", &t.r[0].reply, 250, "2.0.0", "over TLS");
	SSL_CTX_free(t.f->tls);
	tcase_free(&t);
}

/* The handshake fails (garbage after 220); STARTTLS refused: plain. */
static void
test_starttls_failures(void **state)
{
	static const struct fstep garbage[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250 STARTTLS", A_NONE },
		{ "220 2.0.0 go ahead", A_GARBAGE },
	};
	static const struct fstep refused[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250 STARTTLS", A_NONE },
		{ "454 4.7.0 TLS not available", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 queued in plaintext", A_NONE },
	};
	static const struct fstep hang[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250 STARTTLS", A_NONE },
		{ "220 2.0.0 go ahead", A_MUTE },	/* then silence */
	};
	static const char *const addrs[] = { "b@y.test" };
	char err[256];
	SSL_CTX *ssl = smtpc_ssl_ctx_new(err, sizeof(err));
	struct config_opts o = { .ssl = ssl, .t_command = 1 };
	struct tcase t;
	size_t k;

	(void)state;
	assert_non_null(ssl);
	for (k = 0; k < 2; k++) {
		if (k == 0)
			tcase_init(&t, false, garbage, nitems(garbage), NULL,
			    NULL, 0);
		else
			tcase_init(&t, false, hang, nitems(hang), NULL, NULL,
			    0);
		tcase_run(&t, &o);
		assert_string_equal(t.d.ev, "F");
		assert_true(t.d.tls_failed);
		check_status("tls", t.d.fstatus, SMTPC_TEMP);
		check_reply("tls", &t.d.err, 451, NULL, k == 0 ?
		    "TLS handshake with mx.test[127.0.0.1] failed" :
		    "timed out while performing the TLS handshake");
		tcase_free(&t);
	}

	tcase_init(&t, false, refused, nitems(refused), "x\r\n", addrs, 1);
	tcase_run(&t, &o);
	assert_string_equal(t.d.ev, "RDC");
	assert_false(t.d.tls_failed);
	assert_string_equal(t.d.tls_info, "");
	check_bytes("refused", &t.f->rx,
	    "EHLO client.test\r\nSTARTTLS\r\nMAIL FROM:<a@x.test>\r\n"
	    "RCPT TO:<b@y.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n");
	check_reply("rcpt", &t.r[0].reply, 250, NULL, "plaintext");
	tcase_free(&t);
	SSL_CTX_free(ssl);
}

/*
 * Plaintext after the 220 to STARTTLS (RFC 3207 5, CVE-2011-0411 from
 * the client's side): it must never be read as a reply once TLS is up.
 * It goes to the handshake as TLS records, which fails it (the caller
 * may then retry in plaintext, where a reply is only a reply).
 */
static void
test_starttls_injection(void **state)
{
	static const struct fstep steps[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250 STARTTLS", A_NONE },
		{ "220 2.0.0 go ahead\r\n250-mx.test\r\n250 CHUNKING",
		  A_TLS },
		{ "250-mx.test\r\n250 PIPELINING", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 queued", A_NONE },
	};
	static const char *const addrs[] = { "b@y.test" };
	struct tcase t;
	char err[256];
	struct config_opts o = { .t_command = 2 };

	(void)state;
	tcase_init(&t, false, steps, nitems(steps), "x\r\n", addrs, 1);
	t.f->tls = server_ctx_new();
	o.ssl = smtpc_ssl_ctx_new(err, sizeof(err));
	assert_non_null(o.ssl);
	tcase_run(&t, &o);
	assert_string_equal(t.d.ev, "F");
	assert_true(t.d.tls_failed);
	check_reply("injection", &t.d.err, 451, "4.7.5", "TLS handshake");
	/* Nothing went over TLS: no second EHLO, no MAIL. */
	check_bytes("injection", &t.f->rx, "EHLO client.test\r\nSTARTTLS\r\n");
	SSL_CTX_free(o.ssl);
	SSL_CTX_free(t.f->tls);
	tcase_free(&t);
}

/*
 * SMTP AUTH with relayhost_auth's credentials (RFC 4954): only over TLS,
 * PLAIN preferred, LOGIN as the fallback, once per connection. The
 * base64 strings were made with Python's base64 module:
 * "\0relay@a.test\0s3cret pass", "relay@a.test", "s3cret pass".
 */
#define AUTH_USER	"relay@a.test"
#define AUTH_PASS	"s3cret pass"
#define AUTH_PLAIN_B64	"AHJlbGF5QGEudGVzdABzM2NyZXQgcGFzcw=="
#define AUTH_USER_B64	"cmVsYXlAYS50ZXN0"
#define AUTH_PASS_B64	"czNjcmV0IHBhc3M="
#define EHLO_TLS_AUTH \
	"250-mx.test\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME"

/* Neither the password nor any base64 form of the credentials. */
static void
check_no_credentials(const char *what, const struct buf *rx)
{
	static const char *const secrets[] = {
		AUTH_PASS, AUTH_PLAIN_B64, AUTH_USER_B64, AUTH_PASS_B64,
		"AUTH",
	};
	size_t i;

	for (i = 0; i < nitems(secrets); i++)
		if (rx->len > 0 && memmem(rx->data, rx->len, secrets[i],
		    strlen(secrets[i])) != NULL)
			fail_msg("%s: the server got \"%s\": \"%s\"", what,
			    secrets[i], test_escn(buf_str(rx), rx->len));
}

/*
 * After STARTTLS and the second EHLO: AUTH PLAIN with the initial
 * response, then the message. The EHLO before TLS offers AUTH too, and
 * nothing is sent there; starttls off in the configuration does not
 * matter (credentials want TLS). Mechanism lists in either form.
 */
static void
test_auth_plain(void **state)
{
	static const char *const mechs[] = {
		"250-AUTH PLAIN LOGIN",
		"250-AUTH LOGIN PLAIN",		/* PLAIN preferred */
		"250-AUTH CRAM-MD5 plain",
		"250-AUTH=PLAIN",		/* pre-RFC 4954 form */
	};
	static const char *const addrs[] = { "b@y.test" };
	char err[256], ehlo[200];
	struct config_opts o = { .no_starttls = true,
	    .auth_user = AUTH_USER, .auth_password = AUTH_PASS };
	size_t i;

	(void)state;
	o.ssl = smtpc_ssl_ctx_new(err, sizeof(err));
	assert_non_null(o.ssl);
	for (i = 0; i < nitems(mechs); i++) {
		struct fstep steps[] = {
			{ "220 mx.test ESMTP", A_NONE },
			{ EHLO_TLS_AUTH, A_NONE },
			{ "220 2.0.0 ready to start TLS", A_TLS },
			{ ehlo, A_NONE },
			{ "235 2.7.0 Authentication successful", A_NONE },
			{ "250 ok", A_NONE },
			{ "250 ok", A_NONE },
			{ "354 go", A_NONE },
			{ "250 2.0.0 queued", A_NONE },
		};
		struct tcase t;

		snprintf(ehlo, sizeof(ehlo), "250-mx.test\r\n%s\r\n"
		    "250 PIPELINING", mechs[i]);
		tcase_init(&t, false, steps, nitems(steps), "x\r\n", addrs,
		    1);
		t.f->tls = server_ctx_new();
		tcase_run(&t, &o);
		if (strcmp(t.d.ev, "RDC") != 0)
			fail_msg("%s: events %s", mechs[i], t.d.ev);
		assert_true(t.d.authenticated);
		assert_true(t.d.tls_info[0] != '\0');
		assert_true(t.d.caps & SMTPC_CAP_AUTH);
		check_bytes(mechs[i], &t.f->rx,
		    "EHLO client.test\r\nSTARTTLS\r\nEHLO client.test\r\n"
		    "AUTH PLAIN " AUTH_PLAIN_B64 "\r\n"
		    "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
		    "DATA\r\nx\r\n.\r\nQUIT\r\n");
		check_status("rcpt", t.r[0].status, SMTPC_OK);
		SSL_CTX_free(t.f->tls);
		tcase_free(&t);
	}
	SSL_CTX_free(o.ssl);
}

/* Only LOGIN offered: the 334 dialogue, user name then password. */
static void
test_auth_login(void **state)
{
	static const struct fstep steps[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250 STARTTLS", A_NONE },
		{ "220 2.0.0 ready to start TLS", A_TLS },
		{ "250-mx.test\r\n250-AUTH LOGIN\r\n250 PIPELINING", A_NONE },
		{ "334 VXNlcm5hbWU6", A_NONE },
		{ "334 UGFzc3dvcmQ6", A_NONE },
		{ "235 2.7.0 Authentication successful", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 queued", A_NONE },
	};
	static const char *const addrs[] = { "b@y.test" };
	struct tcase t;
	char err[256];
	struct config_opts o = { .auth_user = AUTH_USER,
	    .auth_password = AUTH_PASS };

	(void)state;
	tcase_init(&t, false, steps, nitems(steps), "x\r\n", addrs, 1);
	t.f->tls = server_ctx_new();
	o.ssl = smtpc_ssl_ctx_new(err, sizeof(err));
	assert_non_null(o.ssl);
	tcase_run(&t, &o);
	assert_string_equal(t.d.ev, "RDC");
	assert_true(t.d.authenticated);
	check_bytes("login", &t.f->rx,
	    "EHLO client.test\r\nSTARTTLS\r\nEHLO client.test\r\n"
	    "AUTH LOGIN\r\n" AUTH_USER_B64 "\r\n" AUTH_PASS_B64 "\r\n"
	    "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\n"
	    "DATA\r\nx\r\n.\r\nQUIT\r\n");
	/* (The fake keeps 8 octets of each line as its verb.) */
	assert_string_equal(t.f->verbs, "EHLO|STARTTLS|EHLO|AUTH|"
	    "cmVsYXlA|czNjcmV0|MAIL RCPT DATA|QUIT|");
	check_status("rcpt", t.r[0].status, SMTPC_OK);
	SSL_CTX_free(o.ssl);
	SSL_CTX_free(t.f->tls);
	tcase_free(&t);
}

/*
 * The peer refuses the login: QUIT, then FAILED, always TEMP (a wrong
 * password must not bounce the queue); the peer's reply is kept in the
 * text and its DSN code made 4.X.Y. No message is touched. 5xx marks
 * smtpc_auth_refused(); a 4xx does not; a second 334 to PLAIN is a
 * protocol error.
 */
static void
test_auth_refused(void **state)
{
	static const struct {
		const char *mech, *reply;
		bool refused;
		int code;
		const char *enhanced, *text;
		const char *sent;
	} cases[] = {
		{ "PLAIN", "535 5.7.8 Error: authentication failed: bad pw",
		  true, 454, "4.7.8", "SASL authentication failed; server "
		  "mx.test[127.0.0.1] said: 535 5.7.8 Error: authentication "
		  "failed: bad pw",
		  "AUTH PLAIN " AUTH_PLAIN_B64 "\r\nQUIT\r\n" },
		{ "LOGIN", "535 5.7.8 Error: authentication failed", true, 454,
		  "4.7.8", "said: 535 5.7.8 Error: authentication failed",
		  "AUTH LOGIN\r\n" AUTH_USER_B64 "\r\n" AUTH_PASS_B64
		  "\r\nQUIT\r\n" },
		{ "PLAIN", "454 4.7.0 Temporary authentication failure", false,
		  454, "4.7.0", "said: 454 4.7.0 Temporary authentication "
		  "failure", "AUTH PLAIN " AUTH_PLAIN_B64 "\r\nQUIT\r\n" },
		{ "PLAIN", "504 unrecognized authentication type", true, 454,
		  "4.7.0", "said: 504 unrecognized", "AUTH PLAIN "
		  AUTH_PLAIN_B64 "\r\nQUIT\r\n" },
		{ "PLAIN", "334 more please", false, 451, "4.5.0",
		  "unexpected challenge", "AUTH PLAIN " AUTH_PLAIN_B64 "\r\n" },
	};
	static const char *const addrs[] = { "b@y.test" };
	char err[256], ehlo[200], want[600];
	struct config_opts o = { .auth_user = AUTH_USER,
	    .auth_password = AUTH_PASS };
	size_t i;

	(void)state;
	o.ssl = smtpc_ssl_ctx_new(err, sizeof(err));
	assert_non_null(o.ssl);
	for (i = 0; i < nitems(cases); i++) {
		bool login = strcmp(cases[i].mech, "LOGIN") == 0;
		struct fstep steps[] = {
			{ "220 mx.test ESMTP", A_NONE },
			{ "250-mx.test\r\n250 STARTTLS", A_NONE },
			{ "220 2.0.0 ready to start TLS", A_TLS },
			{ ehlo, A_NONE },
			{ login ? "334 VXNlcm5hbWU6" : cases[i].reply, A_NONE },
			{ "334 UGFzc3dvcmQ6", A_NONE },
			{ cases[i].reply, A_NONE },
		};
		struct tcase t;

		snprintf(ehlo, sizeof(ehlo), "250-mx.test\r\n250 AUTH %s",
		    cases[i].mech);
		tcase_init(&t, false, steps, login ? nitems(steps) : 5,
		    "x\r\n", addrs, 1);
		t.f->tls = server_ctx_new();
		tcase_run(&t, &o);
		if (strcmp(t.d.ev, "F") != 0)
			fail_msg("%s: events %s", cases[i].reply, t.d.ev);
		check_status(cases[i].reply, t.d.fstatus, SMTPC_TEMP);
		check_reply(cases[i].reply, &t.d.err, cases[i].code,
		    cases[i].enhanced, cases[i].text);
		if (t.d.auth_refused != cases[i].refused)
			fail_msg("%s: auth_refused %d", cases[i].reply,
			    t.d.auth_refused);
		assert_false(t.d.tls_failed);
		snprintf(want, sizeof(want), "EHLO client.test\r\nSTARTTLS\r\n"
		    "EHLO client.test\r\n%s", cases[i].sent);
		check_bytes(cases[i].reply, &t.f->rx, want);
		assert_int_equal(t.f->ndata, 0);
		check_status("rcpt untouched", t.r[0].status, SMTPC_OK);
		assert_int_equal(t.r[0].reply.code, 0);
		SSL_CTX_free(t.f->tls);
		tcase_free(&t);
	}
	SSL_CTX_free(o.ssl);
}

/*
 * Under TLS but no usable mechanism (no AUTH at all, or only others):
 * QUIT, FAILED TEMP, and no credential went out.
 */
static void
test_auth_no_mechanism(void **state)
{
	static const struct {
		const char *ehlo, *text;
	} cases[] = {
		{ "250-mx.test\r\n250 PIPELINING", "does not offer SMTP AUTH" },
		{ "250-mx.test\r\n250-AUTH CRAM-MD5 XOAUTH2\r\n250 PIPELINING",
		  "offers no SASL mechanism we can use (PLAIN or LOGIN)" },
		{ "250-mx.test\r\n250 AUTH", "offers no SASL mechanism" },
	};
	char err[256];
	struct config_opts o = { .auth_user = AUTH_USER,
	    .auth_password = AUTH_PASS };
	size_t i;

	(void)state;
	o.ssl = smtpc_ssl_ctx_new(err, sizeof(err));
	assert_non_null(o.ssl);
	for (i = 0; i < nitems(cases); i++) {
		const struct fstep steps[] = {
			{ "220 mx.test ESMTP", A_NONE },
			{ EHLO_TLS_AUTH, A_NONE },
			{ "220 2.0.0 ready to start TLS", A_TLS },
			{ cases[i].ehlo, A_NONE },
		};
		struct tcase t;

		tcase_init(&t, false, steps, nitems(steps), NULL, NULL, 0);
		t.f->tls = server_ctx_new();
		tcase_run(&t, &o);
		assert_string_equal(t.d.ev, "F");
		check_status(cases[i].text, t.d.fstatus, SMTPC_TEMP);
		check_reply(cases[i].text, &t.d.err, 454, "4.7.0",
		    cases[i].text);
		assert_false(t.d.auth_refused);
		check_bytes(cases[i].text, &t.f->rx, "EHLO client.test\r\n"
		    "STARTTLS\r\nEHLO client.test\r\nQUIT\r\n");
		check_no_credentials(cases[i].text, &t.f->rx);
		SSL_CTX_free(t.f->tls);
		tcase_free(&t);
	}
	SSL_CTX_free(o.ssl);
}

/*
 * No TLS, whatever the reason (not offered while AUTH is, STARTTLS
 * refused, no TLS context here, HELO only, the handshake failed): the
 * credentials never reach the peer, in any form; FAILED, TEMP.
 */
static void
test_auth_needs_tls(void **state)
{
	static const struct fstep no_starttls[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250-mx.test\r\n250-AUTH PLAIN LOGIN\r\n250 PIPELINING",
		  A_NONE },
	};
	static const struct fstep refused[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ EHLO_TLS_AUTH, A_NONE },
		{ "454 4.7.0 TLS not available due to temporary reason",
		  A_NONE },
	};
	static const struct fstep helo[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "502 5.5.1 no EHLO", A_NONE },
		{ "250 mx.test", A_NONE },
	};
	static const struct fstep garbage[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ EHLO_TLS_AUTH, A_NONE },
		{ "220 2.0.0 go ahead", A_GARBAGE },
	};
	static const struct fstep tls_offered[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ EHLO_TLS_AUTH, A_NONE },
	};
	static const struct {
		const char *name;
		const struct fstep *steps;
		size_t n;
		bool ssl;
		const char *text, *sent;
	} cases[] = {
		{ "no STARTTLS", no_starttls, nitems(no_starttls), true,
		  "mx.test[127.0.0.1] offers no TLS (no STARTTLS); credentials "
		  "are never sent in plaintext",
		  "EHLO client.test\r\nQUIT\r\n" },
		{ "STARTTLS refused", refused, nitems(refused), true,
		  "offers no TLS (STARTTLS refused with 454)",
		  "EHLO client.test\r\nSTARTTLS\r\nQUIT\r\n" },
		/* STARTTLS offered, but we have no TLS context. */
		{ "no TLS context", tls_offered, nitems(tls_offered), false,
		  "no TLS with mx.test[127.0.0.1] (TLS unavailable here); "
		  "credentials are never sent in plaintext",
		  "EHLO client.test\r\nQUIT\r\n" },
		{ "HELO only", helo, nitems(helo), true,
		  "offers no TLS (no STARTTLS)",
		  "EHLO client.test\r\nHELO client.test\r\nQUIT\r\n" },
		{ "handshake failed", garbage, nitems(garbage), true,
		  "TLS handshake with mx.test[127.0.0.1] failed", NULL },
	};
	char err[256];
	SSL_CTX *ssl = smtpc_ssl_ctx_new(err, sizeof(err));
	size_t i;

	(void)state;
	assert_non_null(ssl);
	for (i = 0; i < nitems(cases); i++) {
		struct config_opts o = { .auth_user = AUTH_USER,
		    .auth_password = AUTH_PASS, .t_command = 2 };
		const char *sent = cases[i].sent;
		struct tcase t;

		if (cases[i].ssl)
			o.ssl = ssl;
		tcase_init(&t, false, cases[i].steps, cases[i].n, NULL, NULL,
		    0);
		tcase_run(&t, &o);
		if (strcmp(t.d.ev, "F") != 0)
			fail_msg("%s: events %s", cases[i].name, t.d.ev);
		check_status(cases[i].name, t.d.fstatus, SMTPC_TEMP);
		check_reply(cases[i].name, &t.d.err, sent != NULL ? 454 : 451,
		    sent != NULL ? "4.7.0" : "4.7.5", cases[i].text);
		assert_false(t.d.auth_refused);
		if (sent != NULL)
			check_bytes(cases[i].name, &t.f->rx, sent);
		check_no_credentials(cases[i].name, &t.f->rx);
		tcase_free(&t);
	}
	SSL_CTX_free(ssl);
}

/*
 * A connection that carries a second message is still authenticated: no
 * second AUTH after RSET (RFC 4954 4), and READY came once.
 */
static void
test_auth_reused(void **state)
{
	static const struct fstep steps[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ EHLO_TLS_AUTH, A_NONE },
		{ "220 2.0.0 ready to start TLS", A_TLS },
		{ "250-mx.test\r\n250-AUTH PLAIN LOGIN\r\n250 PIPELINING",
		  A_NONE },
		{ "235 2.7.0 Authentication successful", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 first", A_NONE },
		{ "250 2.0.0 reset", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 second", A_NONE },
	};
	static const char *const addrs[] = { "b@y.test" };
	struct tcase t;
	struct smtpc_msg m2;
	struct memsrc s2;
	struct smtpc_rcpt *r2 = rcpts_new(1, addrs);
	char err[256];
	struct config_opts o = { .auth_user = AUTH_USER,
	    .auth_password = AUTH_PASS };

	(void)state;
	tcase_init(&t, false, steps, nitems(steps), "one\r\n", addrs, 1);
	msg_init(&m2, &s2, "two\r\n", r2, 1);
	t.d.msgs[t.d.nmsgs++] = &m2;
	t.f->tls = server_ctx_new();
	o.ssl = smtpc_ssl_ctx_new(err, sizeof(err));
	assert_non_null(o.ssl);
	tcase_run(&t, &o);
	assert_string_equal(t.d.ev, "RDDC");
	assert_true(t.d.reusable[0]);
	check_reply("first", &t.r[0].reply, 250, "2.0.0", "first");
	check_reply("second", &r2[0].reply, 250, "2.0.0", "second");
	assert_string_equal(t.f->verbs, "EHLO|STARTTLS|EHLO|AUTH|"
	    "MAIL RCPT DATA|RSET|MAIL RCPT DATA|QUIT|");
	assert_false(t.f->exhausted);
	SSL_CTX_free(o.ssl);
	SSL_CTX_free(t.f->tls);
	free(r2);
	tcase_free(&t);
}

/*
 * An idle connection has no deadline of its own (timeout_command is 1 s
 * here); a 421 or a close while idle gives SMTPC_CLOSED.
 */
static void
test_idle(void **state)
{
	static const struct fstep quiet[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250 mx.test", A_NONE },
	};
	static const struct fstep closing[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250 mx.test\r\n421 4.4.2 mx.test idle too long", A_CLOSE },
	};
	struct event_base *base = base_new();
	struct fake *f = fake_new(base, false, quiet, nitems(quiet));
	struct config_opts o = { .t_command = 1 };
	struct timeval tv = { 1, 600000 };
	struct drive d = { 0 };

	(void)state;
	d.idle = true;
	drive_open(&d, base, f, NULL, 0, &o);
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	assert_string_equal(d.ev, "R");
	assert_true(smtpc_reusable(d.c));
	smtpc_quit(d.c);
	assert_string_equal(d.ev, "R");	/* not from within */
	run(base, &d, f);
	assert_string_equal(d.ev, "RC");
	check_bytes("idle", &f->rx, "EHLO client.test\r\nQUIT\r\n");
	fake_free(f);

	f = fake_new(base, false, closing, nitems(closing));
	memset(&d, 0, sizeof(d));
	d.idle = true;
	drive_open(&d, base, f, NULL, 0, &o);
	run(base, &d, f);
	assert_string_equal(d.ev, "RC");
	check_reply("idle 421", &d.err, 421, "4.4.2", "idle too long");
	fake_free(f);
	event_base_free(base);
}

/*
 * smtpc_free() from within each event, also with another event queued
 * behind it (DONE then CLOSED when the peer closes after its reply) and
 * from a DONE raised by smtpc_send() itself: no callback after it, no
 * use after free (ASan), and the peer sees the connection go.
 */
static void
test_free_in_callbacks(void **state)
{
	static const struct fstep ready[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250 mx.test", A_NONE },
	};
	static const struct fstep full[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250 mx.test", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 queued", A_NONE },
	};
	static const struct fstep closing[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250 mx.test", A_NONE },
		{ "250 ok", A_NONE },
		{ "250 ok", A_NONE },
		{ "354 go", A_NONE },
		{ "250 2.0.0 queued, bye\r\n421 4.4.2 closing", A_CLOSE },
	};
	static const struct fstep refused[] = {
		{ "554 5.7.1 go away", A_NONE },
	};
	static const struct {
		const char *name;
		const struct fstep *steps;
		size_t n;
		char free_at;
		bool two, eight_bit;
		const char *ev;
	} cases[] = {
		{ "ready", ready, nitems(ready), 'R', false, false, "R" },
		{ "done, reusable", full, nitems(full), 'D', true, false,
		  "RD" },
		{ "done, closed queued", closing, nitems(closing), 'D', true,
		  false, "RD" },
		{ "done from smtpc_send", ready, nitems(ready), 'D', true,
		  true, "RD" },
		{ "closed", full, nitems(full), 'C', false, false, "RDC" },
		{ "failed", refused, nitems(refused), 'F', false, false, "F" },
	};
	static const char *const addrs[] = { "b@y.test" };
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		struct tcase t;
		struct smtpc_msg m2;
		struct memsrc s2;
		struct smtpc_rcpt *r2 = rcpts_new(1, addrs);
		struct timeval tv = { 0, 300000 };

		tcase_init(&t, false, cases[i].steps, cases[i].n, "x\r\n",
		    addrs, 1);
		t.m.eight_bit = cases[i].eight_bit;
		msg_init(&m2, &s2, "y\r\n", r2, 1);
		if (cases[i].two)
			t.d.msgs[t.d.nmsgs++] = &m2;
		t.d.free_at = cases[i].free_at;
		tcase_run(&t, NULL);
		/* Time for anything still queued to show up. */
		event_base_loopexit(t.base, &tv);
		event_base_dispatch(t.base);
		if (strcmp(t.d.ev, cases[i].ev) != 0)
			fail_msg("%s: events got %s, want %s", cases[i].name,
			    t.d.ev, cases[i].ev);
		assert_null(t.f->bev);
		free(r2);
		tcase_free(&t);
	}
}

/* smtpc_quit() in the middle, smtpc_free() at once: no callback. */
static void
test_quit_and_free(void **state)
{
	static const struct fstep steps[] = {
		{ "220 mx.test ESMTP", A_NONE },
		{ "250 mx.test", A_NONE },
	};
	struct event_base *base = base_new();
	struct fake *f = fake_new(base, false, steps, nitems(steps));
	struct drive d = { 0 };

	(void)state;
	drive_open(&d, base, f, NULL, 0, NULL);
	smtpc_quit(d.c);		/* still connecting */
	assert_string_equal(d.ev, "");
	run(base, &d, f);
	assert_string_equal(d.ev, "C");
	fake_free(f);

	f = fake_new(base, false, steps, nitems(steps));
	memset(&d, 0, sizeof(d));
	drive_open(&d, base, f, NULL, 0, NULL);
	smtpc_free(d.c);
	d.c = NULL;
	d.done = true;
	run(base, &d, f);
	assert_string_equal(d.ev, "");
	fake_free(f);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_one_by_one),
		cmocka_unit_test(test_helo_fallback),
		cmocka_unit_test(test_rcpt_mix),
		cmocka_unit_test(test_all_refused),
		cmocka_unit_test(test_mail_refused),
		cmocka_unit_test(test_local_refusals),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_params_no_dsn),
		cmocka_unit_test(test_dot_stuffing),
		cmocka_unit_test(test_smuggling_variants),
		cmocka_unit_test(test_bdat_small),
		cmocka_unit_test(test_bdat_large),
		cmocka_unit_test(test_lmtp),
		cmocka_unit_test(test_lmtp_more),
		cmocka_unit_test(test_greeting_failures),
		cmocka_unit_test(test_ehlo_failures),
		cmocka_unit_test(test_connect_failures),
		cmocka_unit_test(test_connect_unix_full),
		cmocka_unit_test(test_bind_source),
		cmocka_unit_test(test_greeting_timeout),
		cmocka_unit_test(test_trickle),
		cmocka_unit_test(test_early_replies),
		cmocka_unit_test(test_reply_codes_differ),
		cmocka_unit_test(test_disconnects),
		cmocka_unit_test(test_421_everywhere),
		cmocka_unit_test(test_source_error),
		cmocka_unit_test(test_source_error_bdat),
		cmocka_unit_test(test_backpressure),
		cmocka_unit_test(test_two_messages),
		cmocka_unit_test(test_rset_refused),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_starttls_failures),
		cmocka_unit_test(test_starttls_injection),
		cmocka_unit_test(test_auth_plain),
		cmocka_unit_test(test_auth_login),
		cmocka_unit_test(test_auth_refused),
		cmocka_unit_test(test_auth_no_mechanism),
		cmocka_unit_test(test_auth_needs_tls),
		cmocka_unit_test(test_auth_reused),
		cmocka_unit_test(test_idle),
		cmocka_unit_test(test_quit_and_free),
		cmocka_unit_test(test_free_in_callbacks),
	};

	signal(SIGPIPE, SIG_IGN);
	log_init("test_client", LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
