/*
 * smtpload.c: petrel-smtpload, the SMTP load generator of bench/.
 *
 * Entry point: main(). Usage and output: bench/README.md ("smtpload").
 *
 * One thread drives every session over non-blocking sockets on one epoll
 * set (level-triggered). A session sends one command, reads its whole reply
 * (multi-line replies included), then sends the next: EHLO, then for each
 * message MAIL, RCPT, DATA, the message with the final ".", and QUIT when
 * its connection has carried its share (-M). No pipelining, as smtp-source
 * without -P. Every time from writing the final "." to reading the whole
 * 250 is kept, and the percentiles are nearest-rank over the sorted times.
 *
 * Connections take their share from one pool of messages not yet started,
 * so that -m/-M connections are made whatever the session count; a session
 * whose connection fails (or whose message is refused and then RSET fails)
 * gives the messages it has not started back to the pool. Every failure
 * ends the message in progress, so a run always ends: sent + failed = -m
 * unless -T expires.
 *
 * Open loop (-r): message k (counted from 0 in the order sessions become
 * free) is due at start + k / RATE. A free session takes the next k and
 * waits for its time (before connecting when it needs a new connection,
 * before MAIL otherwise); when every session is busy at that time the
 * message starts late. Lateness is reported on stderr and is not part of
 * the latency, which is always final dot to 250.
 *
 * The message is built once: the header block (each session keeps its own
 * copy, in which only the ten digits of the Message-ID change) and the body
 * with the final ".", shared by every session. Lines have at most 78
 * characters and none starts with "." (checked at startup), so no
 * dot-stuffing is needed.
 *
 * SECURITY: talks to the one server given on the command line with the
 * caller's privileges and writes no file. Replies are read into a fixed
 * buffer per session (a longer reply is an error) and printed escaped.
 * STANDARDS: RFC 5321 4.1.1 (commands), 4.2 (replies, multi-line), 4.5.2
 * (transparency); RFC 5322 2.1.1 (lines of at most 78 characters), 3.6.4
 * (Message-ID).
 * OWNERSHIP: the sessions and their header copies belong to the run and
 * live until exit; the body buffer is shared read-only.
 */
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/util.h"

#define SMTPLOAD_NAME		"petrel-smtpload"
#define SMTPLOAD_REPLY_MAX	8192	/* one whole reply, EHLO's included */
#define SMTPLOAD_LINE_MAX	78	/* RFC 5322 2.1.1 SHOULD */
#define SMTPLOAD_DIGITS		10	/* Message-ID serial: -m < 10^10 */
#define SMTPLOAD_SIZE_MAX	(64ULL * 1024 * 1024)
#define SMTPLOAD_EVENTS		256
#define SMTPLOAD_LATE_NS	1000000ULL	/* "late": over 1 ms */
#define SMTPLOAD_NS		1000000000ULL

enum smtpload_state {
	SMTPLOAD_STATE_FREE,		/* no connection, about to take work */
	SMTPLOAD_STATE_WAIT_CONNECT,	/* -r: waiting for its slot */
	SMTPLOAD_STATE_CONNECTING,
	SMTPLOAD_STATE_GREETING,
	SMTPLOAD_STATE_EHLO,
	SMTPLOAD_STATE_WAIT_MAIL,	/* -r: connected, awaiting its slot */
	SMTPLOAD_STATE_MAIL,
	SMTPLOAD_STATE_RCPT,
	SMTPLOAD_STATE_DATA,
	SMTPLOAD_STATE_DOT,
	SMTPLOAD_STATE_RSET,
	SMTPLOAD_STATE_QUIT,
	SMTPLOAD_STATE_DONE,
};

struct smtpload_session {
	unsigned int		 id;
	int			 fd;
	enum smtpload_state	 state;
	uint32_t		 events;	/* as registered with epoll */
	uint64_t		 left;		/* messages not yet started on
						   this connection */
	int64_t			 msg;		/* message in progress, or -1 */
	uint64_t		 slot_ns;	/* WAIT_*: when to go on */
	uint64_t		 dot_ns;	/* when the final "." left */
	const char		*last_cmd;	/* for error messages */
	struct iovec		 out[2];	/* what is left to write */
	int			 outfirst, outcnt;
	char			*hdr;		/* own copy of the headers */
	char			 in[SMTPLOAD_REPLY_MAX];
	size_t			 inlen;
	STAILQ_ENTRY(smtpload_session) entry;	/* waiting or runnable */
};
STAILQ_HEAD(smtpload_queue, smtpload_session);

struct smtpload_cmd {
	char		*text;		/* with CRLF */
	size_t		 len;
};

struct smtpload {
	/* options */
	uint64_t		 sessions, messages, per_conn, size, timeout;
	const char		*from, *to, *helo, *target;
	double			 rate;
	bool			 quiet;
	struct sockaddr_storage	 addr;
	socklen_t		 addrlen;

	/* what is sent, built once */
	struct smtpload_cmd	 ehlo, mail, rcpt, data, rset, quit;
	char			*hdr;		/* header block template */
	size_t			 hdr_len, hdr_digits;
	char			*body;		/* the rest, then ".\r\n" */
	size_t			 body_len;

	/* the run */
	int			 ep;
	uint64_t		 t0, pool, next_msg, active;
	uint64_t		 sent, failed, connections, errors;
	uint64_t		*lat;
	size_t			 nlat;
	uint64_t		 late, late_max;
	struct smtpload_session	*sess;
	struct smtpload_queue	 waiting, runnable;
};

static struct smtpload load;

static void smtpload_session_start(struct smtpload_session *);
static void smtpload_session_fail(struct smtpload_session *, const char *,
    ...) __attribute__((format(printf, 2, 3)));

static const char *smtpload_cmd_connect = "(connect)";
static const char *smtpload_cmd_message = "(message and final \".\")";

static void smtpload_usage(const char *, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

static void
smtpload_usage(const char *fmt, ...)
{
	va_list ap;

	if (fmt != NULL) {
		fprintf(stderr, "%s: ", SMTPLOAD_NAME);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fprintf(stderr, "\n");
	}
	fprintf(stderr,
	    "usage: %s [-q] [-s sessions] [-m messages] "
	    "[-M messages-per-connection]\n"
	    "       [-l bytes] [-f from] [-t to] [-H ehlo-name] [-r rate] "
	    "[-T seconds] host:port\n", SMTPLOAD_NAME);
	exit(2);
}

static uint64_t
smtpload_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * SMTPLOAD_NS + (uint64_t)ts.tv_nsec;
}

static uint64_t
smtpload_number(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	uint64_t v;
	const char *error;

	if (parse_u64(s, min, max, &v, &error) == -1)
		smtpload_usage("%s %s: %s (%llu to %llu)", opt, s, error,
		    (unsigned long long)min, (unsigned long long)max);
	return v;
}

/* Command arguments go on the wire: no controls, no spaces, no "<>". */
static const char *
smtpload_word(const char *opt, const char *s, size_t max, bool empty_ok)
{
	const unsigned char *p;

	if ((*s == '\0' && !empty_ok) || strlen(s) > max)
		smtpload_usage("%s: 1 to %zu characters", opt, max);
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>')
			smtpload_usage("%s: no spaces, controls or <>", opt);
	return s;
}

static void
smtpload_resolve(const char *target)
{
	struct addrinfo hints, *res;
	char host[256];
	const char *port, *colon;
	size_t hlen;
	int rc;

	if (target[0] == '[') {
		colon = strchr(target, ']');
		if (colon == NULL || colon[1] != ':')
			smtpload_usage("%s: not [ADDRESS]:PORT", target);
		hlen = (size_t)(colon - target) - 1;
		target++;
		port = colon + 2;
	} else {
		colon = strrchr(target, ':');
		if (colon == NULL)
			smtpload_usage("%s: not HOST:PORT", target);
		hlen = (size_t)(colon - target);
		port = colon + 1;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		smtpload_usage("%s: bad host", target);
	memcpy(host, target, hlen);
	host[hlen] = '\0';
	(void)smtpload_number("port", port, 1, 65535);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0)
		smtpload_usage("%s: %s", host, gai_strerror(rc));
	memcpy(&load.addr, res->ai_addr, res->ai_addrlen);
	load.addrlen = res->ai_addrlen;
	freeaddrinfo(res);
}

static void
smtpload_cmd_set(struct smtpload_cmd *c, char *text)
{
	c->text = text;
	c->len = strlen(text);
}

/*
 * A bug if it fails: every line ends in CRLF, has at most 78 characters
 * before it and does not start with "." (so that no dot-stuffing is due).
 */
static void
smtpload_text_check(const char *what, const char *p, size_t len)
{
	size_t i, start = 0;

	for (i = 0; i < len; i++) {
		if (p[i] != '\n')
			continue;
		if (i == start || p[i - 1] != '\r' ||
		    i - 1 - start > SMTPLOAD_LINE_MAX || p[start] == '.') {
			fprintf(stderr, "%s: bug: bad %s line at byte %zu\n",
			    SMTPLOAD_NAME, what, start);
			abort();
		}
		start = i + 1;
	}
	if (start != len) {
		fprintf(stderr, "%s: bug: %s does not end in CRLF\n",
		    SMTPLOAD_NAME, what);
		abort();
	}
}

/* The header block, blank line included; pad adds one byte. */
static char *
smtpload_headers(bool pad)
{
	struct timespec ts;
	struct tm tm;
	char date[64], *h;
	uint64_t runid;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000",
	    &tm) == 0)
		abort();
	runid = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
	    ((uint64_t)getpid() << 40);
	h = xasprintf("From: <%s>\r\n"
	    "To: <%s>\r\n"
	    "Subject: petrel-smtpload message%s\r\n"
	    "Date: %s\r\n"
	    "Message-ID: <%016llx.%0*u@smtpload.test>\r\n"
	    "\r\n",
	    load.from, load.to, pad ? "." : "", date,
	    (unsigned long long)runid, SMTPLOAD_DIGITS, 0u);
	return h;
}

static void
smtpload_message_build(void)
{
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789";
	size_t rest, n, j, line = 0;
	char *p, *at;

	load.hdr = smtpload_headers(false);
	load.hdr_len = strlen(load.hdr);
	/* Lines are 2 to 80 bytes with CRLF: one byte left is impossible. */
	if (load.size == load.hdr_len + 1) {
		free(load.hdr);
		load.hdr = smtpload_headers(true);
		load.hdr_len = strlen(load.hdr);
	}
	if (load.size < load.hdr_len)
		smtpload_usage("-l: at least %zu bytes (the headers)",
		    load.hdr_len);
	for (p = load.hdr; (at = strchr(p, '\n')) != NULL; p = at + 1)
		if (at - p > SMTPLOAD_LINE_MAX + 1)
			smtpload_usage("-f/-t: too long for a header line of "
			    "%d characters", SMTPLOAD_LINE_MAX);
	smtpload_text_check("header", load.hdr, load.hdr_len);
	at = strstr(load.hdr, "@smtpload.test>");
	if (at == NULL)
		abort();
	load.hdr_digits = (size_t)(at - load.hdr) - SMTPLOAD_DIGITS;

	rest = load.size - load.hdr_len;
	load.body_len = rest + 3;
	load.body = xmalloc(load.body_len);
	p = load.body;
	while (rest > 0) {
		/* Full lines, but never leave a single byte for the last. */
		n = rest;
		if (n > SMTPLOAD_LINE_MAX + 2)
			n = rest - 2 < SMTPLOAD_LINE_MAX + 2 ? rest - 2 :
			    SMTPLOAD_LINE_MAX + 2;
		for (j = 0; j + 2 < n; j++)
			p[j] = alnum[(line + j) % (sizeof(alnum) - 1)];
		p[n - 2] = '\r';
		p[n - 1] = '\n';
		p += n;
		rest -= n;
		line++;
	}
	smtpload_text_check("body", load.body, load.body_len - 3);
	memcpy(p, ".\r\n", 3);
}

static void
smtpload_commands_build(void)
{
	smtpload_cmd_set(&load.ehlo, xasprintf("EHLO %s\r\n", load.helo));
	smtpload_cmd_set(&load.mail, xasprintf("MAIL FROM:<%s>\r\n",
	    load.from));
	smtpload_cmd_set(&load.rcpt, xasprintf("RCPT TO:<%s>\r\n", load.to));
	smtpload_cmd_set(&load.data, xstrdup("DATA\r\n"));
	smtpload_cmd_set(&load.rset, xstrdup("RSET\r\n"));
	smtpload_cmd_set(&load.quit, xstrdup("QUIT\r\n"));
}

/* Printable, one line, bounded: for replies on stderr. */
static void
smtpload_escape(char *dst, size_t size, const char *src, size_t len)
{
	size_t i, o = 0;
	unsigned char c;

	for (i = 0; i < len && o + 5 < size; i++) {
		c = (unsigned char)src[i];
		if (c == '\r' && i + 1 < len && src[i + 1] == '\n')
			continue;
		if (c == '\n') {
			if (i + 1 < len)
				o += (size_t)snprintf(dst + o, size - o, " | ");
		} else if (c < ' ' || c >= 0x7f)
			o += (size_t)snprintf(dst + o, size - o, "\\x%02x", c);
		else
			dst[o++] = (char)c;
	}
	dst[o < size ? o : size - 1] = '\0';
}

/* The first error of the run goes to stderr, the others are counted. */
static void
smtpload_error(struct smtpload_session *s, const char *what)
{
	const char *cmd = s->last_cmd;
	size_t len = strlen(cmd);

	if (load.errors++ > 0)
		return;
	if (len >= 2 && cmd[len - 2] == '\r')
		len -= 2;
	fprintf(stderr, "%s: session %u: after %.*s: %s\n", SMTPLOAD_NAME,
	    s->id, (int)len, cmd, what);
}

static void
smtpload_epoll(struct smtpload_session *s, uint32_t events)
{
	struct epoll_event ev;
	int op = s->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;

	if (events == s->events)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = s;
	if (epoll_ctl(load.ep, op, s->fd, &ev) == -1) {
		fprintf(stderr, "%s: epoll_ctl: %s\n", SMTPLOAD_NAME,
		    strerror(errno));
		exit(1);
	}
	s->events = events;
}

static void
smtpload_session_close(struct smtpload_session *s)
{
	/* A reply or EOF while waiting for the slot: out of the queue. */
	if (s->state == SMTPLOAD_STATE_WAIT_MAIL)
		STAILQ_REMOVE(&load.waiting, s, smtpload_session, entry);
	if (s->fd != -1)
		close(s->fd);	/* leaves the epoll set with it */
	s->fd = -1;
	s->events = 0;
	s->inlen = 0;
	s->outcnt = 0;
	load.pool += s->left;
	s->left = 0;
	s->state = SMTPLOAD_STATE_FREE;
	STAILQ_INSERT_TAIL(&load.runnable, s, entry);
}

/* A connection error: the message in progress fails, the rest goes back. */
static void
smtpload_session_fail(struct smtpload_session *s, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	smtpload_error(s, what);
	if (s->msg >= 0) {
		load.failed++;
		s->msg = -1;
	}
	smtpload_session_close(s);
}

/* Takes the next message; true if it must wait for its slot (-r). */
static bool
smtpload_session_take(struct smtpload_session *s)
{
	uint64_t due, now;

	s->msg = (int64_t)load.next_msg++;
	s->left--;
	if (load.rate <= 0)
		return false;
	due = load.t0 + (uint64_t)((double)s->msg * 1e9 / load.rate);
	now = smtpload_now();
	if (due > now) {
		s->slot_ns = due;
		STAILQ_INSERT_TAIL(&load.waiting, s, entry);
		return true;
	}
	if (now - due > SMTPLOAD_LATE_NS)
		load.late++;
	if (now - due > load.late_max)
		load.late_max = now - due;
	return false;
}

/* Writes what is left of s->out; 0 done, 1 pending, -1 failed (closed). */
static int
smtpload_session_flush(struct smtpload_session *s)
{
	struct msghdr mh;
	uint64_t start = 0;
	ssize_t n;
	size_t done;

	while (s->outcnt > 0) {
		/*
		 * The clock starts before the write that carries the final
		 * ".": on loopback the server can answer before sendmsg()
		 * returns (seen with smtp-sink on an idle core: "latencies"
		 * of 1 us when taken after).
		 */
		if (s->state == SMTPLOAD_STATE_DOT)
			start = smtpload_now();
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &s->out[s->outfirst];
		mh.msg_iovlen = (size_t)s->outcnt;
		n = sendmsg(s->fd, &mh, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				smtpload_epoll(s, EPOLLIN | EPOLLOUT);
				return 1;
			}
			smtpload_session_fail(s, "send: %s", strerror(errno));
			return -1;
		}
		done = (size_t)n;
		while (s->outcnt > 0 && done >= s->out[s->outfirst].iov_len) {
			done -= s->out[s->outfirst].iov_len;
			s->outfirst++;
			s->outcnt--;
		}
		if (s->outcnt > 0) {
			s->out[s->outfirst].iov_base =
			    (char *)s->out[s->outfirst].iov_base + done;
			s->out[s->outfirst].iov_len -= done;
		}
	}
	if (s->state == SMTPLOAD_STATE_DOT)
		s->dot_ns = start;
	smtpload_epoll(s, EPOLLIN);
	return 0;
}

static void
smtpload_session_send(struct smtpload_session *s, const struct smtpload_cmd *c,
    enum smtpload_state next)
{
	s->state = next;
	s->last_cmd = c->text;
	s->out[0].iov_base = c->text;
	s->out[0].iov_len = c->len;
	s->outfirst = 0;
	s->outcnt = 1;
	(void)smtpload_session_flush(s);
}

static void
smtpload_session_message(struct smtpload_session *s)
{
	uint64_t v = (uint64_t)s->msg;
	char *d = s->hdr + load.hdr_digits;
	int i;

	for (i = SMTPLOAD_DIGITS - 1; i >= 0; i--) {
		d[i] = (char)('0' + v % 10);
		v /= 10;
	}
	s->state = SMTPLOAD_STATE_DOT;
	s->last_cmd = smtpload_cmd_message;
	s->out[0].iov_base = s->hdr;
	s->out[0].iov_len = load.hdr_len;
	s->out[1].iov_base = load.body;
	s->out[1].iov_len = load.body_len;
	s->outfirst = 0;
	s->outcnt = 2;
	(void)smtpload_session_flush(s);
}

static void
smtpload_session_connect(struct smtpload_session *s)
{
	int one = 1;

	load.connections++;
	s->last_cmd = smtpload_cmd_connect;
	s->fd = socket(load.addr.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd == -1) {
		smtpload_session_fail(s, "socket: %s", strerror(errno));
		return;
	}
	/* Replies and commands are small: no Nagle delay on either. */
	(void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s->fd, (struct sockaddr *)&load.addr, load.addrlen) == 0) {
		s->state = SMTPLOAD_STATE_GREETING;
		smtpload_epoll(s, EPOLLIN);
	} else if (errno == EINPROGRESS) {
		s->state = SMTPLOAD_STATE_CONNECTING;
		smtpload_epoll(s, EPOLLOUT);
	} else
		smtpload_session_fail(s, "connect: %s", strerror(errno));
}

/* A free session: a new connection with its share, or done. */
static void
smtpload_session_start(struct smtpload_session *s)
{
	if (load.pool == 0) {
		s->state = SMTPLOAD_STATE_DONE;
		load.active--;
		return;
	}
	s->left = load.pool < load.per_conn ? load.pool : load.per_conn;
	load.pool -= s->left;
	if (smtpload_session_take(s))
		s->state = SMTPLOAD_STATE_WAIT_CONNECT;
	else
		smtpload_session_connect(s);
}

/* After EHLO's 250 the message is taken; after a 250 to "." or RSET not. */
static void
smtpload_session_next(struct smtpload_session *s)
{
	if (s->left == 0)
		smtpload_session_send(s, &load.quit, SMTPLOAD_STATE_QUIT);
	else if (smtpload_session_take(s))
		s->state = SMTPLOAD_STATE_WAIT_MAIL;
	else
		smtpload_session_send(s, &load.mail, SMTPLOAD_STATE_MAIL);
}

/*
 * A 4xx/5xx (or any reply but the one expected): the message fails; the
 * session goes on with RSET unless the connection is of no more use.
 */
static void
smtpload_session_refused(struct smtpload_session *s, int code, size_t len)
{
	char text[1024];

	smtpload_escape(text, sizeof(text), s->in, len);
	smtpload_error(s, text);
	if (s->msg >= 0) {
		load.failed++;
		s->msg = -1;
	}
	switch (s->state) {
	case SMTPLOAD_STATE_MAIL:
	case SMTPLOAD_STATE_RCPT:
	case SMTPLOAD_STATE_DATA:
	case SMTPLOAD_STATE_DOT:
		if (code != 421) {
			smtpload_session_send(s, &load.rset,
			    SMTPLOAD_STATE_RSET);
			return;
		}
		break;
	default:
		break;
	}
	smtpload_session_close(s);
}

/*
 * One whole reply in s->in? 1 (code set, *len its length), 0 (need more),
 * -1 (malformed). RFC 5321 4.2.1: "NNN-text" lines, the last "NNN text"
 * or "NNN"; the code must stay the same.
 */
static int
smtpload_reply_parse(struct smtpload_session *s, int *code, size_t *len)
{
	const char *p = s->in, *end = s->in + s->inlen, *nl;
	int first = -1, c;

	while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if (nl - p < 4 || p[0] < '2' || p[0] > '5' || p[1] < '0' ||
		    p[1] > '9' || p[2] < '0' || p[2] > '9')
			return -1;
		c = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
		if (first != -1 && c != first)
			return -1;
		first = c;
		if (p[3] == '-') {
			p = nl + 1;
			continue;
		}
		if (p[3] != ' ' && p[3] != '\r')
			return -1;
		*code = c;
		*len = (size_t)(nl + 1 - s->in);
		return 1;
	}
	return 0;
}

static void
smtpload_session_reply(struct smtpload_session *s, int code, size_t len)
{
	uint64_t now;
	int want = 250;

	switch (s->state) {
	case SMTPLOAD_STATE_GREETING:
		want = 220;
		break;
	case SMTPLOAD_STATE_DATA:
		want = 354;
		break;
	case SMTPLOAD_STATE_QUIT:
		want = 221;
		break;
	case SMTPLOAD_STATE_EHLO:
	case SMTPLOAD_STATE_MAIL:
	case SMTPLOAD_STATE_RCPT:
	case SMTPLOAD_STATE_DOT:
	case SMTPLOAD_STATE_RSET:
		if (code / 100 == 2)
			want = code;
		break;
	default:
		/* A reply nothing asked for (a 421 while waiting). */
		want = -1;
		break;
	}
	if (s->outcnt > 0) {
		char text[256];

		/* Out of step: the connection is of no more use. */
		smtpload_escape(text, sizeof(text), s->in, len);
		smtpload_session_fail(s, "reply before the command was "
		    "written whole: %s", text);
		return;
	}
	if (code != want) {
		smtpload_session_refused(s, code, len);
		return;
	}
	switch (s->state) {
	case SMTPLOAD_STATE_GREETING:
		smtpload_session_send(s, &load.ehlo, SMTPLOAD_STATE_EHLO);
		break;
	case SMTPLOAD_STATE_EHLO:
		/* The first message was taken when connecting. */
		smtpload_session_send(s, &load.mail, SMTPLOAD_STATE_MAIL);
		break;
	case SMTPLOAD_STATE_MAIL:
		smtpload_session_send(s, &load.rcpt, SMTPLOAD_STATE_RCPT);
		break;
	case SMTPLOAD_STATE_RCPT:
		smtpload_session_send(s, &load.data, SMTPLOAD_STATE_DATA);
		break;
	case SMTPLOAD_STATE_DATA:
		smtpload_session_message(s);
		break;
	case SMTPLOAD_STATE_DOT:
		now = smtpload_now();
		load.lat[load.nlat++] = now - s->dot_ns;
		load.sent++;
		s->msg = -1;
		smtpload_session_next(s);
		break;
	case SMTPLOAD_STATE_RSET:
		smtpload_session_next(s);
		break;
	case SMTPLOAD_STATE_QUIT:
		smtpload_session_close(s);
		break;
	default:
		abort();
	}
}

static void
smtpload_session_read(struct smtpload_session *s)
{
	char text[256];
	ssize_t n;
	size_t len;
	int code, rc;

	n = recv(s->fd, s->in + s->inlen, sizeof(s->in) - s->inlen, 0);
	if (n == 0) {
		smtpload_session_fail(s, "connection closed by the server");
		return;
	}
	if (n == -1) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			smtpload_session_fail(s, "recv: %s", strerror(errno));
		return;
	}
	s->inlen += (size_t)n;
	for (;;) {
		rc = smtpload_reply_parse(s, &code, &len);
		if (rc == -1) {
			smtpload_escape(text, sizeof(text), s->in,
			    s->inlen < 200 ? s->inlen : 200);
			smtpload_session_fail(s, "malformed reply: %s", text);
			return;
		}
		if (rc == 0) {
			if (s->inlen == sizeof(s->in))
				smtpload_session_fail(s, "reply over %zu bytes",
				    sizeof(s->in));
			return;
		}
		smtpload_session_reply(s, code, len);
		if (s->fd == -1 || s->inlen <= len) {
			s->inlen = 0;
			return;
		}
		/*
		 * No pipelining, so more is a reply nothing asked for (a 421
		 * after the 250): it is handled as such, in the new state.
		 */
		memmove(s->in, s->in + len, s->inlen - len);
		s->inlen -= len;
	}
}

static void
smtpload_session_event(struct smtpload_session *s, uint32_t events)
{
	int err = 0;
	socklen_t elen = sizeof(err);

	if (s->fd == -1)
		return;		/* closed earlier in this batch */
	if (s->state == SMTPLOAD_STATE_CONNECTING) {
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &elen) == -1)
			err = errno;
		if (err != 0) {
			smtpload_session_fail(s, "connect: %s", strerror(err));
			return;
		}
		s->state = SMTPLOAD_STATE_GREETING;
		smtpload_epoll(s, EPOLLIN);
		return;
	}
	if ((events & EPOLLOUT) && s->outcnt > 0 &&
	    smtpload_session_flush(s) == -1)
		return;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		smtpload_session_read(s);
}

/* Sessions whose slot has come; then free sessions take new work. */
static void
smtpload_run_queues(void)
{
	struct smtpload_session *s;
	uint64_t now;

	for (;;) {
		now = smtpload_now();
		while ((s = STAILQ_FIRST(&load.waiting)) != NULL &&
		    s->slot_ns <= now) {
			STAILQ_REMOVE_HEAD(&load.waiting, entry);
			if (s->state == SMTPLOAD_STATE_WAIT_CONNECT)
				smtpload_session_connect(s);
			else if (s->state == SMTPLOAD_STATE_WAIT_MAIL)
				smtpload_session_send(s, &load.mail,
				    SMTPLOAD_STATE_MAIL);
		}
		if (STAILQ_EMPTY(&load.runnable))
			break;
		while ((s = STAILQ_FIRST(&load.runnable)) != NULL) {
			STAILQ_REMOVE_HEAD(&load.runnable, entry);
			smtpload_session_start(s);
		}
	}
}

static int
smtpload_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest sample with at least p% at or below it. */
static double
smtpload_percentile(unsigned int p)
{
	size_t rank;

	if (load.nlat == 0)
		return 0;
	rank = (p * load.nlat + 99) / 100;
	if (rank < 1)
		rank = 1;
	return (double)load.lat[rank - 1] / 1e6;
}

static void
smtpload_report(uint64_t end)
{
	double secs = (double)(end - load.t0) / 1e9;

	qsort(load.lat, load.nlat, sizeof(load.lat[0]), smtpload_cmp);
	printf("sent=%llu failed=%llu connections=%llu seconds=%.3f "
	    "rate=%.1f lat_p50=%.3f lat_p90=%.3f lat_p99=%.3f "
	    "lat_max=%.3f\n",
	    (unsigned long long)load.sent, (unsigned long long)load.failed,
	    (unsigned long long)load.connections, secs,
	    secs > 0 ? (double)load.sent / secs : 0.0,
	    smtpload_percentile(50), smtpload_percentile(90),
	    smtpload_percentile(99),
	    load.nlat > 0 ? (double)load.lat[load.nlat - 1] / 1e6 : 0.0);
	fflush(stdout);
	if (load.errors > 1)
		fprintf(stderr, "%s: %llu errors in all (the first above)\n",
		    SMTPLOAD_NAME, (unsigned long long)load.errors);
	if (load.rate > 0 && !load.quiet)
		fprintf(stderr, "%s: open loop at %.1f/s: %llu messages "
		    "started over 1 ms late, at most %.3f ms (not in lat_*)\n",
		    SMTPLOAD_NAME, load.rate, (unsigned long long)load.late,
		    (double)load.late_max / 1e6);
}

static void
smtpload_nofile(void)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)load.sessions + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
}

static void
smtpload_options(int argc, char **argv)
{
	char *end;
	int ch;

	load.sessions = 1;
	load.messages = 100;
	load.per_conn = 1;
	load.size = 4096;
	load.from = "bench@load.test";
	load.to = "user@example.test";
	load.helo = "load.test";
	load.timeout = 600;
	while ((ch = getopt(argc, argv, "s:m:M:l:f:t:H:r:T:q")) != -1) {
		switch (ch) {
		case 's':
			load.sessions = smtpload_number("-s", optarg, 1,
			    100000);
			break;
		case 'm':
			load.messages = smtpload_number("-m", optarg, 1,
			    1000000000);
			break;
		case 'M':
			load.per_conn = smtpload_number("-M", optarg, 1,
			    1000000000);
			break;
		case 'l':
			load.size = smtpload_number("-l", optarg, 1,
			    SMTPLOAD_SIZE_MAX);
			break;
		case 'f':
			load.from = smtpload_word("-f", optarg, 256, true);
			break;
		case 't':
			load.to = smtpload_word("-t", optarg, 256, false);
			break;
		case 'H':
			load.helo = smtpload_word("-H", optarg, 255, false);
			break;
		case 'r':
			errno = 0;
			load.rate = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    !isfinite(load.rate) || load.rate <= 0 ||
			    load.rate > 1e7)
				smtpload_usage("-r %s: a rate over 0, at most "
				    "1e7 per second", optarg);
			break;
		case 'T':
			load.timeout = smtpload_number("-T", optarg, 1,
			    31536000);
			break;
		case 'q':
			load.quiet = true;
			break;
		default:
			smtpload_usage(NULL);
		}
	}
	if (argc - optind != 1)
		smtpload_usage(argc - optind == 0 ? "no HOST:PORT" :
		    "one HOST:PORT only");
	load.target = argv[optind];
	smtpload_resolve(load.target);
}

int
main(int argc, char **argv)
{
	struct epoll_event ev[SMTPLOAD_EVENTS];
	struct timespec tmo;
	struct smtpload_session *s;
	uint64_t now, deadline, tick, wake;
	unsigned int i;
	int n;

	smtpload_options(argc, argv);
	smtpload_commands_build();
	smtpload_message_build();
	smtpload_nofile();

	if ((load.ep = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		fprintf(stderr, "%s: epoll_create1: %s\n", SMTPLOAD_NAME,
		    strerror(errno));
		return 1;
	}
	load.lat = xcalloc(load.messages, sizeof(load.lat[0]));
	load.sess = xcalloc(load.sessions, sizeof(load.sess[0]));
	STAILQ_INIT(&load.waiting);
	STAILQ_INIT(&load.runnable);
	load.pool = load.messages;
	load.active = load.sessions;
	for (i = 0; i < load.sessions; i++) {
		s = &load.sess[i];
		s->id = i + 1;
		s->fd = -1;
		s->msg = -1;
		s->last_cmd = smtpload_cmd_connect;
		s->hdr = xmalloc(load.hdr_len);
		memcpy(s->hdr, load.hdr, load.hdr_len);
		STAILQ_INSERT_TAIL(&load.runnable, s, entry);
	}

	load.t0 = smtpload_now();
	deadline = load.t0 + load.timeout * SMTPLOAD_NS;
	tick = load.t0 + SMTPLOAD_NS;
	for (;;) {
		smtpload_run_queues();
		if (load.active == 0)
			break;
		now = smtpload_now();
		if (now >= deadline) {
			fprintf(stderr, "%s: timeout after %llu s (-T)\n",
			    SMTPLOAD_NAME, (unsigned long long)load.timeout);
			smtpload_report(now);
			return 2;
		}
		if (!load.quiet && now >= tick) {
			fprintf(stderr, "%s: %.0f s: sent=%llu failed=%llu "
			    "connections=%llu\n", SMTPLOAD_NAME,
			    (double)(now - load.t0) / 1e9,
			    (unsigned long long)load.sent,
			    (unsigned long long)load.failed,
			    (unsigned long long)load.connections);
			tick += SMTPLOAD_NS;
		}
		wake = deadline;
		if (!load.quiet && tick < wake)
			wake = tick;
		if ((s = STAILQ_FIRST(&load.waiting)) != NULL &&
		    s->slot_ns < wake)
			wake = s->slot_ns;
		wake = wake > now ? wake - now : 0;
		tmo.tv_sec = (time_t)(wake / SMTPLOAD_NS);
		tmo.tv_nsec = (long)(wake % SMTPLOAD_NS);
		n = epoll_pwait2(load.ep, ev, SMTPLOAD_EVENTS, &tmo, NULL);
		if (n == -1 && (errno == ENOSYS || errno == EPERM))
			n = epoll_wait(load.ep, ev, SMTPLOAD_EVENTS,
			    (int)((wake + 999999) / 1000000));
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "%s: epoll_wait: %s\n", SMTPLOAD_NAME,
			    strerror(errno));
			return 1;
		}
		for (i = 0; i < (unsigned int)n; i++)
			smtpload_session_event(ev[i].data.ptr, ev[i].events);
	}
	smtpload_report(smtpload_now());
	return load.failed > 0 || load.errors > 0 ||
	    load.sent != load.messages ? 1 : 0;
}
