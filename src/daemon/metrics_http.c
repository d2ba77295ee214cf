/*
 * metrics_http.c: the Prometheus endpoint, `metrics ADDR:PORT` (issue 6).
 *
 * Entry points: metrics_http_bind (as root, before the privilege drop),
 * metrics_http_new, metrics_http_free, metrics_http_format,
 * metrics_http_is_loopback, metrics_http_check_all.
 *
 * PROTOCOL. HTTP/1.1 (and 1.0), one request per connection, answered
 * with "Connection: close":
 *
 *   GET /metrics (or HEAD; a query string is ignored)
 *       200, Content-Type: text/plain; version=0.0.4; charset=utf-8
 *   any other path                    404
 *   another method                    405 (Allow: GET, HEAD)
 *   a request line that does not parse, or not HTTP/1.x   400
 *   a request head over METRICS_HTTP_HEAD_MAX octets      431
 *
 * The request head (request line and header fields up to the empty line)
 * is read as lines; header fields are not interpreted, and nothing after
 * the head is read: a request body is never expected.
 *
 * Why not libevent's evhttp: version 2.1 (Debian 12) cannot cap the
 * number of connections (evhttp_set_max_connections came in 2.2) and
 * gives no hook when a connection is accepted; and network input here
 * goes through src/io, as for SMTP and the control socket (control.c is
 * the same shape).
 *
 * SECURITY: anyone who can connect may read the counters (there is no
 * authentication): the address belongs on loopback or a private network,
 * and check-config and serve warn when it is not loopback. The daemon's
 * unprivileged user serves it. At most METRICS_HTTP_CONNS_MAX connections
 * at once (more are closed at accept); the head must arrive within
 * METRICS_HTTP_READ_TIMEOUT seconds and within METRICS_HTTP_HEAD_MAX
 * octets; a client that does not read its answer is dropped after
 * METRICS_HTTP_WRITE_TIMEOUT seconds. A scrape reads only memory: atomic
 * counters, the spool's counts (a mutex held for a copy) and one pass
 * over the scheduler's queue; it never blocks the loop on I/O. Label
 * values are fixed strings of the metric definitions.
 * STANDARDS: RFC 9112 (HTTP/1.1 message syntax: request line, 3.2
 * request target, 9.6 Connection: close), RFC 9110 (15.5.5 404, 15.5.6
 * 405 with Allow, 15.5.1 400), RFC 6585 5 (431); Prometheus exposition
 * format 0.0.4.
 * OWNERSHIP: the endpoint owns its listening socket and connections.
 */
#include "daemon/metrics_http.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "delivery/delivery.h"
#include "delivery/metrics.h"
#include "io/io.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/util.h"
#include "msgauth/metrics.h"
#include "queue/spool.h"
#include "smtp/metrics.h"
#include "smtp/smtp.h"

#define METRICS_HTTP_CONNS_MAX		8
#define METRICS_HTTP_HEAD_MAX		8192	/* request line + fields */
#define METRICS_HTTP_READ_TIMEOUT	10	/* seconds to send the head */
#define METRICS_HTTP_WRITE_TIMEOUT	30	/* seconds to read the answer */
#define METRICS_HTTP_LINGER		2	/* seconds to drain after an
						 * error answer */
#define METRICS_HTTP_BODY_MAX		(4 * 1024 * 1024)
#define METRICS_HTTP_PATH		"/metrics"
#define METRICS_HTTP_CONTENT_TYPE	"text/plain; version=0.0.4; " \
					"charset=utf-8"

struct mh_conn {
	TAILQ_ENTRY(mh_conn) entry;
	struct metrics_http *mh;
	struct io *io;
	size_t head_len;	/* octets of the head read so far */
	bool head_request;	/* HEAD: no body */
	int status;		/* decided by the request line, 0 before */
	bool closing;		/* answered: free once written */
	bool linger;		/* an error: drain the input before closing */
	bool lingering;		/* answer written: draining until EOF */
};

struct metrics_http {
	struct event_base *base;
	int fd;
	char *text;
	struct event *ev;
	struct event *retry_ev;	/* accept paused after EMFILE */
	struct metrics_sources src;
	size_t nconns;
	uint64_t refused;
	TAILQ_HEAD(, mh_conn) conns;
};

/* ---- the daemon's own metrics, read from elsewhere at each scrape ---- */

static const char *const mh_fsync_kinds[] = { "file", "directory" };

static struct metric mh_metric_fsyncs = {
	.name = "petrel_spool_fsyncs_total",
	.help = "fsync() calls the spool made: on queue files, and on the "
	    "queue directory (shared by a batch of commits).",
	.type = METRIC_COUNTER,
	.label = "kind",
	.values = mh_fsync_kinds,
	.nvalues = nitems(mh_fsync_kinds),
};

static struct metric mh_metric_commits = {
	.name = "petrel_spool_commits_total",
	.help = "Messages the spool made durable.",
	.type = METRIC_COUNTER,
};

static struct metric mh_metric_commit_errors = {
	.name = "petrel_spool_commit_errors_total",
	.help = "Commits that failed (the client got a 4xx).",
	.type = METRIC_COUNTER,
};

static struct metric mh_metric_batches = {
	.name = "petrel_spool_commit_batches_total",
	.help = "Group commits: batches of messages made durable together.",
	.type = METRIC_COUNTER,
};

static struct metric mh_metric_delivered = {
	.name = "petrel_recipients_delivered_total",
	.help = "Recipients delivered (Maildir, LMTP or remote SMTP).",
	.type = METRIC_COUNTER,
};

static struct metric mh_metric_deferred = {
	.name = "petrel_recipients_deferred_total",
	.help = "Delivery attempts that failed temporarily (one recipient "
	    "may count several times).",
	.type = METRIC_COUNTER,
};

static struct metric mh_metric_bounced = {
	.name = "petrel_recipients_bounced_total",
	.help = "Recipients given up: permanent failure, queue_lifetime "
	    "reached, or `petrel queue bounce`.",
	.type = METRIC_COUNTER,
};

static struct metric mh_metric_queue_messages = {
	.name = "petrel_queue_messages",
	.help = "Messages in the queue now (held ones included).",
	.type = METRIC_GAUGE,
};

static struct metric mh_metric_queue_held = {
	.name = "petrel_queue_held_messages",
	.help = "Messages on hold now (`petrel queue hold`).",
	.type = METRIC_GAUGE,
};

static struct metric mh_metric_queue_rcpts = {
	.name = "petrel_queue_recipients",
	.help = "Recipients waiting for delivery now.",
	.type = METRIC_GAUGE,
};

static struct metric mh_metric_queue_age = {
	.name = "petrel_queue_oldest_message_age_seconds",
	.help = "Age of the oldest message in the queue (0 when empty).",
	.type = METRIC_GAUGE,
};

static struct metric mh_metric_sessions = {
	.name = "petrel_smtp_sessions",
	.help = "SMTP sessions open now.",
	.type = METRIC_GAUGE,
};

static struct metric mh_metric_start = {
	.name = "petrel_start_time_seconds",
	.help = "When the daemon started (Unix seconds).",
	.type = METRIC_GAUGE,
};

static struct metric *const mh_metrics_own[] = {
	&mh_metric_sessions,
	&mh_metric_delivered,
	&mh_metric_deferred,
	&mh_metric_bounced,
	&mh_metric_queue_messages,
	&mh_metric_queue_held,
	&mh_metric_queue_rcpts,
	&mh_metric_queue_age,
	&mh_metric_fsyncs,
	&mh_metric_commits,
	&mh_metric_commit_errors,
	&mh_metric_batches,
	&mh_metric_start,
};

/* Every list, in the order of the exposition. */
static struct metric *const *
mh_list(size_t which, size_t *n_r)
{
	switch (which) {
	case 0:
		return smtp_metrics_list(n_r);
	case 1:
		return msgauth_metrics_list(n_r);
	case 2:
		return delivery_metrics_list(n_r);
	case 3:
		*n_r = nitems(mh_metrics_own);
		return mh_metrics_own;
	default:
		*n_r = 0;
		return NULL;
	}
}

#define MH_NLISTS	4

bool
metrics_http_check_all(const char **name_r, const char **error_r)
{
	struct metric *const *list;
	size_t i, j, n;

	for (i = 0; i < MH_NLISTS; i++) {
		list = mh_list(i, &n);
		for (j = 0; j < n; j++)
			if (!metrics_check(list[j], error_r)) {
				*name_r = list[j]->name != NULL ?
				    list[j]->name : "(unnamed)";
				return false;
			}
	}
	return true;
}

/* Copy what other modules count into the daemon's own metrics. */
static void
mh_collect(const struct metrics_sources *src)
{
	struct spool_stats st;
	struct scheduler_stats ss;
	struct scheduler_queue q;
	uint64_t now = (uint64_t)time(NULL);

	memset(&st, 0, sizeof(st));
	memset(&ss, 0, sizeof(ss));
	memset(&q, 0, sizeof(q));
	if (src != NULL && src->spool != NULL)
		spool_get_stats(src->spool, &st);
	if (src != NULL && src->sched != NULL) {
		scheduler_get_stats(src->sched, &ss);
		scheduler_get_queue(src->sched, &q);
	}
	metrics_set(&mh_metric_fsyncs, 0, (int64_t)st.file_fsyncs);
	metrics_set(&mh_metric_fsyncs, 1, (int64_t)st.dir_fsyncs);
	metrics_set(&mh_metric_commits, 0, (int64_t)st.commits);
	metrics_set(&mh_metric_commit_errors, 0, (int64_t)st.commit_errors);
	metrics_set(&mh_metric_batches, 0, (int64_t)st.batches);
	metrics_set(&mh_metric_delivered, 0, (int64_t)ss.delivered);
	metrics_set(&mh_metric_deferred, 0, (int64_t)ss.deferred);
	metrics_set(&mh_metric_bounced, 0, (int64_t)ss.failed);
	metrics_set(&mh_metric_queue_messages, 0, (int64_t)q.messages);
	metrics_set(&mh_metric_queue_held, 0, (int64_t)q.held);
	metrics_set(&mh_metric_queue_rcpts, 0, (int64_t)q.recipients);
	metrics_set(&mh_metric_queue_age, 0, q.oldest_arrival != 0 &&
	    now > q.oldest_arrival ? (int64_t)(now - q.oldest_arrival) : 0);
	metrics_set(&mh_metric_sessions, 0, src != NULL && src->srv != NULL ?
	    (int64_t)smtp_server_sessions(src->srv) : 0);
}

int
metrics_http_format(struct buf *out, const struct metrics_sources *src)
{
	struct metric *const *list;
	size_t i, n;

	mh_collect(src);
	for (i = 0; i < MH_NLISTS; i++) {
		list = mh_list(i, &n);
		if (metrics_format(out, list, n) == -1)
			return -1;
	}
	return 0;
}

/* ---- listening ---- */

int
metrics_http_bind(const struct conf_listen *l, char *err, size_t errlen)
{
	int fd, one = 1, saved;

	fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0);
	if (fd == -1) {
		snprintf(err, errlen, "metrics %s: socket: %s", l->text,
		    strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (l->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) == -1 ||
	    listen(fd, 64) == -1) {
		saved = errno;
		close(fd);
		snprintf(err, errlen, "metrics %s: cannot listen: %s",
		    l->text, strerror(saved));
		return -1;
	}
	return fd;
}

bool
metrics_http_is_loopback(const struct conf_listen *l)
{
	if (l->addr.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)&l->addr;

		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (l->addr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)&l->addr;

		return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
		    sin6->sin6_addr.s6_addr[12] == 127);
	}
	return false;
}

/* ---- connections ---- */

static void
mh_conn_free(struct mh_conn *cc)
{
	struct metrics_http *mh = cc->mh;

	TAILQ_REMOVE(&mh->conns, cc, entry);
	mh->nconns--;
	io_free(cc->io);
	free(cc);
}

static const char *
mh_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	default:
		return "Internal Server Error";
	}
}

/* Queue the answer and close once it is written. */
static void
mh_answer(struct mh_conn *cc, int status)
{
	struct buf body;
	const char *type = "text/plain; charset=utf-8";

	buf_init(&body, METRICS_HTTP_BODY_MAX);
	if (status == 200) {
		type = METRICS_HTTP_CONTENT_TYPE;
		if (metrics_http_format(&body, &cc->mh->src) == -1) {
			log_warn("metrics: the exposition is over %d octets",
			    METRICS_HTTP_BODY_MAX);
			buf_reset(&body);
			status = 500;
		}
	}
	if (status != 200)
		buf_printf(&body, "%d %s\n", status, mh_reason(status));
	io_printf(cc->io, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "%s"
	    "Connection: close\r\n"
	    "\r\n", status, mh_reason(status), type, body.len,
	    status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (!cc->head_request && body.len > 0)
		io_write(cc->io, body.data, body.len);
	buf_free(&body);
	cc->closing = true;
	cc->linger = status != 200;
	io_in_drain(cc->io, io_in_len(cc->io));
	io_set_deadline(cc->io, METRICS_HTTP_WRITE_TIMEOUT);
	if (io_out_len(cc->io) == 0)
		io_reschedule(cc->io);
}

/*
 * The answer is written: close. After an error the client may still be
 * sending (an oversized head): a close with unread input makes the kernel
 * send a reset, which can destroy the answer before the client reads it.
 * So drain until the client closes, at most METRICS_HTTP_LINGER seconds
 * (RFC 9112 9.6, "lingering close").
 */
static void
mh_written(struct mh_conn *cc)
{
	if (io_out_len(cc->io) != 0)
		return;
	if (!cc->linger) {
		mh_conn_free(cc);
		return;
	}
	if (!cc->lingering) {
		cc->lingering = true;
		io_set_deadline(cc->io, METRICS_HTTP_LINGER);
	}
}

/*
 * The request line: "METHOD SP request-target SP HTTP-version" (RFC 9112
 * 3). Decides the status; HEAD is remembered.
 */
static int
mh_request_line(struct mh_conn *cc, const char *line)
{
	const char *sp1, *sp2, *target, *version;
	size_t mlen, tlen, plen;

	if ((sp1 = strchr(line, ' ')) == NULL ||
	    (sp2 = strchr(sp1 + 1, ' ')) == NULL ||
	    strchr(sp2 + 1, ' ') != NULL)
		return 400;
	mlen = (size_t)(sp1 - line);
	target = sp1 + 1;
	tlen = (size_t)(sp2 - target);
	version = sp2 + 1;
	if (mlen == 0 || tlen == 0 || strncmp(version, "HTTP/1.", 7) != 0 ||
	    version[7] < '0' || version[7] > '9' || version[8] != '\0')
		return 400;
	if (mlen == 4 && memcmp(line, "HEAD", 4) == 0)
		cc->head_request = true;
	else if (mlen != 3 || memcmp(line, "GET", 3) != 0)
		return 405;
	plen = strcspn(target, "? ");
	if (plen > tlen)
		plen = tlen;
	if (plen == strlen(METRICS_HTTP_PATH) &&
	    memcmp(target, METRICS_HTTP_PATH, plen) == 0)
		return 200;
	return 404;
}

/* Read head lines; answer at the empty line. */
static void
mh_read(struct mh_conn *cc)
{
	char line[METRICS_HTTP_HEAD_MAX];
	size_t len, room;
	long lf;

	while (!cc->closing) {
		room = METRICS_HTTP_HEAD_MAX - cc->head_len;
		lf = io_in_find_lf(cc->io, room);
		if (lf < 0) {
			if (io_in_len(cc->io) >= room)
				mh_answer(cc, 431);
			return;
		}
		len = (size_t)lf;
		io_in_copy(cc->io, line, len);
		io_in_drain(cc->io, len + 1);
		cc->head_len += len + 1;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		line[len] = '\0';
		/* RFC 9112 2.2: empty lines before the request line are
		 * ignored (the head's maximum bounds them). */
		if (cc->status == 0) {
			if (len > 0)
				cc->status = mh_request_line(cc, line);
			continue;
		}
		if (len == 0) {
			mh_answer(cc, cc->status);
			return;
		}
		/* A header field: not interpreted. */
	}
}

static void
mh_conn_cb(struct io *io, enum io_event ev, void *arg)
{
	struct mh_conn *cc = arg;

	(void)io;
	switch (ev) {
	case IO_DATAIN:
		if (cc->closing) {
			io_in_drain(cc->io, io_in_len(cc->io));
			mh_written(cc);
			return;
		}
		mh_read(cc);
		return;
	case IO_LOWAT:
		if (cc->closing)
			mh_written(cc);
		return;
	case IO_TIMEOUT:
	case IO_DISCONNECTED:
	case IO_ERROR:
		mh_conn_free(cc);
		return;
	}
}

static void
mh_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct metrics_http *mh = arg;

	(void)fd;
	(void)what;
	event_add(mh->ev, NULL);
}

static void
mh_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct metrics_http *mh = arg;
	struct mh_conn *cc;
	int fd;

	(void)what;
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			struct timeval tv = { 1, 0 };

			/* Out of descriptors: the socket stays readable and
			 * would spin the loop. Pause for a second. */
			log_warn("metrics: accept: %s; pausing for a second",
			    strerror(errno));
			event_del(mh->ev);
			evtimer_add(mh->retry_ev, &tv);
		} else if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("metrics: accept: %s", strerror(errno));
		return;
	}
	if (mh->nconns >= METRICS_HTTP_CONNS_MAX) {
		/* Logged now and then, not once per connection. */
		if (mh->refused++ % 1000 == 0)
			log_warn("metrics: %s: connection refused: %d "
			    "already open (refused so far: %llu)", mh->text,
			    METRICS_HTTP_CONNS_MAX,
			    (unsigned long long)mh->refused);
		close(fd);
		return;
	}
	cc = xcalloc(1, sizeof(*cc));
	cc->mh = mh;
	cc->io = io_new(mh->base, fd, METRICS_HTTP_HEAD_MAX, mh_conn_cb, cc);
	TAILQ_INSERT_TAIL(&mh->conns, cc, entry);
	mh->nconns++;
	io_set_deadline(cc->io, METRICS_HTTP_READ_TIMEOUT);
}

struct metrics_http *
metrics_http_new(struct event_base *base, int fd, const char *text,
    const struct metrics_sources *src)
{
	struct metrics_http *mh = xcalloc(1, sizeof(*mh));

	mh->base = base;
	mh->fd = fd;
	mh->text = xstrdup(text);
	mh->src = *src;
	TAILQ_INIT(&mh->conns);
	metrics_set(&mh_metric_start, 0, (int64_t)time(NULL));
	mh->ev = event_new(base, fd, EV_READ | EV_PERSIST, mh_accept_cb, mh);
	mh->retry_ev = evtimer_new(base, mh_retry_cb, mh);
	if (mh->ev == NULL || mh->retry_ev == NULL ||
	    event_add(mh->ev, NULL) == -1)
		fatalx("metrics: cannot watch the listening socket");
	return mh;
}

void
metrics_http_free(struct metrics_http *mh)
{
	struct mh_conn *cc;

	if (mh == NULL)
		return;
	while ((cc = TAILQ_FIRST(&mh->conns)) != NULL)
		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): free unlinks */
		mh_conn_free(cc);
	event_free(mh->ev);
	event_free(mh->retry_ev);
	close(mh->fd);
	free(mh->text);
	free(mh);
}
