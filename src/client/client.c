/*
 * client.c: one client state machine for outbound SMTP and LMTP.
 *
 * Entry points: smtpc_open, smtpc_send, smtpc_quit, smtpc_free, the
 * accessors, smtpc_ssl_ctx_new; the io callbacks smtpc_iocb,
 * smtpc_connected and smtpc_tls_done.
 *
 * Set-up: greeting, EHLO, STARTTLS and EHLO again, then (with
 * credentials) AUTH PLAIN or the LOGIN dialogue, then SMTPC_READY. A
 * failure that leaves the peer in a known state (AUTH refused, no TLS,
 * no usable mechanism) says QUIT and waits for the 221 before
 * SMTPC_FAILED (quit_fail), as Postfix does.
 *
 * Every command whose reply is awaited goes into a small ring, in the
 * order it was written; each reply pops the oldest entry and goes to the
 * handler for that command. That one mechanism serves the greeting, one
 * command at a time, and RFC 2920 pipelining (MAIL, every RCPT and DATA
 * in one write, at most SMTPC_PIPELINE_MAX in flight). Content is pulled
 * from the caller's source only while the output buffer is short of
 * SMTPC_OUT_HIGH, and normalised on the way out: dot-stuffed (DATA), every
 * bare CR and bare LF made a CRLF, a CRLF added at the end when missing.
 *
 * Events for the caller are queued while a callback from libevent runs
 * and delivered as the very last thing it does (smtpc_flush), so the
 * caller may free the connection from its callback; events raised by an
 * API call are delivered from the loop (the defer event).
 *
 * SECURITY: parses replies from a remote, untrusted server. Reply lines
 * are capped at SMTPC_REPLY_LINE_MAX octets and replies at
 * SMTPC_REPLY_LINES lines; texts are copied with caps and with control
 * characters replaced; nothing the peer sends is ever echoed into a
 * command. Addresses from the caller that hold control characters are
 * refused rather than sent (command injection). Runs as the daemon's
 * unprivileged user. TLS is opportunistic and unauthenticated (RFC 7435).
 * SMTP AUTH credentials go out only under TLS; the password and the
 * base64 forms are never logged, and every copy the client makes (the
 * configuration's, the encoded command) is wiped with explicit_bzero()
 * (the io layer's output buffer, which TLS encrypts, is not).
 * STANDARDS: RFC 5321 (3.1 greeting, 3.2 EHLO/HELO, 4.1.1.4 DATA and
 * dot-stuffing, 4.2 replies, 4.5.2 transparency, 4.5.3.1 limits, 4.5.3.2
 * timeouts), RFC 2033 (LMTP: LHLO, one reply per recipient), RFC 2920,
 * RFC 1870, RFC 6152, RFC 6531, RFC 3461, RFC 3030, RFC 3207, RFC 3463,
 * RFC 4954 (AUTH; 4: only under TLS for PLAIN/LOGIN here), RFC 4616
 * (PLAIN), draft-murchison-sasl-login-00 (LOGIN), RFC 4648 4 (base64).
 * OWNERSHIP: the connection owns its io, its copies of the configuration
 * and a reference to the SSL_CTX; the message and its recipients are the
 * caller's, written to only between smtpc_send() and SMTPC_DONE.
 */
#include "client/client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "io/io.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"

#define SMTPC_IN_MAX		(64 * 1024)	/* read watermark */
#define SMTPC_QUIT_TIMEOUT	5	/* seconds to wait for 221 */
#define SMTPC_STAGE_IN		8192	/* content octets per normalise step */
#define SMTPC_STAGE_OUT		(2 * SMTPC_STAGE_IN + 8)
#define SMTPC_BDAT_INFLIGHT	8	/* BDAT commands awaiting replies */
#define SMTPC_RING		(SMTPC_PIPELINE_MAX + 8)
#define SMTPC_CMD_MAX		4096	/* one MAIL or RCPT command */
#define SMTPC_ADDR_MAX		1000	/* sender, recipient: fits in it */
#define SMTPC_SIGNALS		4
#define SMTPC_HOST_MAX		255	/* peer name in texts */
#define SMTPC_ADDR_TEXT_MAX	(INET6_ADDRSTRLEN + 108)	/* or a path */
/* User name and password octets together: base64 of the PLAIN response
 * stays well within RFC 4954 4's 12288 octets. */
#define SMTPC_AUTH_MAX		4096

/* RFC 5321 4.5.3.2 (and Postfix's 30 s connect timeout). */
#define SMTPC_DEF_CONNECT	30
#define SMTPC_DEF_COMMAND	300
#define SMTPC_DEF_DATA		600

enum smtpc_state {
	SMTPC_ST_CONNECT,	/* TCP connect in progress */
	SMTPC_ST_SETUP,		/* greeting, EHLO/LHLO/HELO, STARTTLS */
	SMTPC_ST_TLS,		/* TLS handshake */
	SMTPC_ST_IDLE,		/* ready for a message */
	SMTPC_ST_TXN,		/* RSET, MAIL, RCPT, DATA replies */
	SMTPC_ST_BODY,		/* streaming content after 354 */
	SMTPC_ST_BDAT,		/* streaming BDAT chunks */
	SMTPC_ST_FINAL,		/* waiting for the reply(s) to end of data */
	SMTPC_ST_QUIT,		/* QUIT sent */
	SMTPC_ST_CLOSED,	/* no connection */
};

static const char *const smtpc_state_names[] = {
	"CONNECT", "SETUP", "TLS", "IDLE", "TXN", "BODY", "BDAT", "FINAL",
	"QUIT", "CLOSED",
};

enum smtpc_cmd {
	SMTPC_CMD_GREETING,
	SMTPC_CMD_EHLO,
	SMTPC_CMD_LHLO,
	SMTPC_CMD_HELO,
	SMTPC_CMD_STARTTLS,
	SMTPC_CMD_AUTH,		/* AUTH PLAIN <ir> or AUTH LOGIN */
	SMTPC_CMD_AUTH_USER,	/* LOGIN: the base64 user name */
	SMTPC_CMD_AUTH_PASS,	/* LOGIN: the base64 password */
	SMTPC_CMD_RSET,
	SMTPC_CMD_MAIL,
	SMTPC_CMD_RCPT,
	SMTPC_CMD_DATA,
	SMTPC_CMD_BDAT,
	SMTPC_CMD_BDAT_LAST,
	SMTPC_CMD_QUIT,
};

/* For "lost connection with HOST[ADDR] while ..." (Postfix's words). */
static const char *const smtpc_cmd_stage[] = {
	[SMTPC_CMD_GREETING] = "receiving the initial server greeting",
	[SMTPC_CMD_EHLO] = "performing the EHLO handshake",
	[SMTPC_CMD_LHLO] = "performing the LHLO handshake",
	[SMTPC_CMD_HELO] = "performing the HELO handshake",
	[SMTPC_CMD_STARTTLS] = "sending STARTTLS",
	[SMTPC_CMD_AUTH] = "performing SASL authentication",
	[SMTPC_CMD_AUTH_USER] = "performing SASL authentication",
	[SMTPC_CMD_AUTH_PASS] = "performing SASL authentication",
	[SMTPC_CMD_RSET] = "sending RSET",
	[SMTPC_CMD_MAIL] = "sending MAIL FROM",
	[SMTPC_CMD_RCPT] = "sending RCPT TO",
	[SMTPC_CMD_DATA] = "sending DATA command",
	[SMTPC_CMD_BDAT] = "sending message body",
	[SMTPC_CMD_BDAT_LAST] = "sending end of data",
	[SMTPC_CMD_QUIT] = "sending QUIT",
};

/* SASL mechanisms we can use (RFC 4954 3: the EHLO AUTH keyword). */
#define SMTPC_MECH_PLAIN	0x01
#define SMTPC_MECH_LOGIN	0x02

/* A recipient of the current message, inside the client. */
enum smtpc_rstate {
	SMTPC_R_WAIT,		/* RCPT not sent or not answered */
	SMTPC_R_ACCEPTED,	/* RCPT got 2xx: waits for the final reply */
	SMTPC_R_FINAL,		/* status and reply are final */
};

struct smtpc_pending {
	enum smtpc_cmd cmd;
	size_t idx;		/* RCPT: the recipient */
	uint64_t after;		/* input offset its reply starts at, or past */
};

struct smtpc {
	uint64_t id;
	struct event_base *base;
	struct io *io;
	struct event *defer;
	smtpc_cb cb;
	void *arg;
	enum smtpc_event sig[SMTPC_SIGNALS];	/* for the caller, in order */
	size_t nsig;
	bool final_sent;	/* FAILED or CLOSED queued */

	/* Configuration (copied). */
	enum smtpc_proto proto;
	char *helo;
	char *sni;		/* NULL: no SNI (an address, or no name) */
	char peer[SMTPC_HOST_MAX + SMTPC_ADDR_TEXT_MAX + 3];	/* h[a] */
	char peer_port[SMTPC_HOST_MAX + SMTPC_ADDR_TEXT_MAX + 9]; /* :port */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct sockaddr_storage bindaddr;
	socklen_t bindlen;
	bool starttls;
	SSL_CTX *ssl_ctx;
	unsigned int t_connect, t_command, t_data;
	char *auth_user;	/* NULL: no AUTH */
	char *auth_password;	/* wiped and NULL once AUTH has ended */

	/* Session. */
	enum smtpc_state state;
	unsigned int caps;
	uint64_t max_size;
	bool tls;
	char tls_info[128];
	bool tls_failed;
	int starttls_code;	/* the peer's refusal of STARTTLS, or 0 */
	unsigned int auth_mechs;	/* SMTPC_MECH_* of the last EHLO */
	unsigned int auth_mech;		/* the one in use */
	bool authenticated;
	bool auth_refused;	/* 5xx to AUTH */
	bool quit_fail;		/* QUIT sent; FAILED after it */
	bool need_rset;		/* a message went before: RSET first */
	enum smtpc_status fail_status;
	struct smtpc_reply err;

	/* Commands awaiting replies, oldest first. */
	struct smtpc_pending ring[SMTPC_RING];
	size_t ring_head, ring_len;

	/* The reply being read. */
	uint64_t nreplies;	/* replies read so far */
	uint64_t in_off;	/* input octets consumed so far */
	uint64_t rep_start;	/* in_off at the reply's first line */
	uint64_t eod_after;	/* "after" of the end of data */
	struct smtpc_reply rep;
	unsigned int rep_lines;
	size_t rep_len;
	unsigned int rep_caps;
	uint64_t rep_size;
	unsigned int rep_auth;	/* SMTPC_MECH_* in this EHLO reply */
	char line[SMTPC_REPLY_LINE_MAX + 2];

	/* The message. */
	struct smtpc_msg *msg;
	unsigned char *rst;	/* enum smtpc_rstate per recipient */
	size_t wr_rcpt;		/* next recipient to send */
	size_t naccepted;
	size_t final_left;	/* final replies still due */
	size_t final_idx;	/* LMTP: next recipient to scan */
	bool mail_sent, mail_failed, data_sent, last_sent;
	bool eod_sent;		/* end of data written out to the socket */
	bool src_eof;
	const char *src_p;	/* unsent part of the source's chunk */
	size_t src_len;
	bool bol, cr;		/* normaliser: at line start, CR pending */
	char *stage;		/* normalised content, SMTPC_STAGE_OUT */
	struct buf chunk;	/* BDAT chunk being filled */
};

static uint64_t smtpc_next_id;

static void smtpc_iocb(struct io *, enum io_event, void *);
static void smtpc_connected(struct io *, int, void *);
static void smtpc_tls_done(struct io *, int, void *);
static void smtpc_reply(struct smtpc *);
static void smtpc_txn_pump(struct smtpc *);
static void smtpc_body_pump(struct smtpc *);
static void smtpc_bdat_pump(struct smtpc *);
static void smtpc_break(struct smtpc *, const struct smtpc_reply *);
static void smtpc_quit_end(struct smtpc *, const struct smtpc_reply *);
static void smtpc_setup_done(struct smtpc *);
static void smtpc_on_auth(struct smtpc *, enum smtpc_cmd);

/*
 * Small helpers.
 */

static void
smtpc_enter_state(struct smtpc *c, enum smtpc_state st)
{
	if (c->state != st)
		log_debug("client: conn=%llu peer=%s state %s -> %s",
		    (unsigned long long)c->id, c->peer,
		    smtpc_state_names[c->state], smtpc_state_names[st]);
	c->state = st;
}

static void
smtpc_reply_make(struct smtpc_reply *r, int code, const char *enhanced,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
smtpc_reply_make(struct smtpc_reply *r, int code, const char *enhanced,
    const char *fmt, ...)
{
	va_list ap;
	int n;

	r->code = code;
	strlcpy(r->enhanced, enhanced, sizeof(r->enhanced));
	n = snprintf(r->text, sizeof(r->text), "%d %s ", code, enhanced);
	if (n < 0 || (size_t)n >= sizeof(r->text))
		return;
	va_start(ap, fmt);
	vsnprintf(r->text + n, sizeof(r->text) - (size_t)n, fmt, ap);
	va_end(ap);
}

static enum smtpc_status
smtpc_class(int code)
{
	if (code >= 200 && code < 300)
		return SMTPC_OK;
	if (code >= 500 && code < 600)
		return SMTPC_PERM;
	return SMTPC_TEMP;
}

static const char *
smtpc_escape(char *dst, size_t dstsize, const char *s)
{
	return log_escape(dst, dstsize, s, strlen(s));
}

/* Host names go into texts and logs: keep the characters names have. */
static void
smtpc_clean_name(char *dst, size_t size, const char *s, size_t len)
{
	size_t i, o = 0;

	for (i = 0; i < len && s[i] != '\0' && o + 1 < size; i++) {
		unsigned char ch = (unsigned char)s[i];

		dst[o++] = (ch > 0x20 && ch < 0x7f && ch != '[' &&
		    ch != ']') ? (char)ch : '?';
	}
	dst[o] = '\0';
}

static void
smtpc_format_peer(struct smtpc *c, const char *name)
{
	char host[SMTPC_HOST_MAX + 1], addr[SMTPC_ADDR_TEXT_MAX + 1];
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;
	const struct sockaddr_un *sun;
	unsigned int port = 0;
	size_t plen;

	addr[0] = '\0';
	switch (c->addr.ss_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)&c->addr;
		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		port = ntohs(sin->sin_port);
		break;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)&c->addr;
		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
		port = ntohs(sin6->sin6_port);
		break;
	case AF_UNIX:
		sun = (const struct sockaddr_un *)&c->addr;
		plen = c->addrlen > offsetof(struct sockaddr_un, sun_path) ?
		    c->addrlen - offsetof(struct sockaddr_un, sun_path) : 0;
		if (plen > sizeof(sun->sun_path))
			plen = sizeof(sun->sun_path);
		smtpc_clean_name(addr, sizeof(addr), sun->sun_path, plen);
		break;
	default:
		strlcpy(addr, "?", sizeof(addr));
		break;
	}
	if (name != NULL && *name != '\0')
		smtpc_clean_name(host, sizeof(host), name, strlen(name));
	else
		strlcpy(host, c->addr.ss_family == AF_UNIX ? "local" :
		    "unknown", sizeof(host));
	snprintf(c->peer, sizeof(c->peer), "%s[%s]", host, addr);
	if (port != 0)
		snprintf(c->peer_port, sizeof(c->peer_port), "%s:%u",
		    c->peer, port);
	else
		strlcpy(c->peer_port, c->peer, sizeof(c->peer_port));
}

/* SNI only for a host name (RFC 6066 3: not for an IP address). */
static char *
smtpc_sni(const char *name)
{
	unsigned char tmp[sizeof(struct in6_addr)];
	char *s;
	size_t n;

	if (name == NULL || *name == '\0' || strlen(name) > 253 + 1)
		return NULL;
	if (inet_pton(AF_INET, name, tmp) == 1 ||
	    inet_pton(AF_INET6, name, tmp) == 1)
		return NULL;
	s = xstrdup(name);
	n = strlen(s);
	if (n > 0 && s[n - 1] == '.')
		s[n - 1] = '\0';	/* "mx.example." */
	if (*s == '\0' || strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != strlen(s)) {
		free(s);
		return NULL;
	}
	return s;
}

/*
 * Events for the caller.
 */

static void
smtpc_signal(struct smtpc *c, enum smtpc_event ev)
{
	if (c->nsig == SMTPC_SIGNALS)
		fatalx("client: event queue full");
	c->sig[c->nsig++] = ev;
	if (ev == SMTPC_FAILED || ev == SMTPC_CLOSED)
		c->final_sent = true;
}

/* From an API call: deliver from the loop. */
static void
smtpc_signal_later(struct smtpc *c, enum smtpc_event ev)
{
	smtpc_signal(c, ev);
	event_active(c->defer, 0, 0);
}

/* Deliver the oldest queued event; the last thing any entry point does. */
static void
smtpc_flush(struct smtpc *c)
{
	enum smtpc_event ev;

	if (c->nsig == 0)
		return;
	ev = c->sig[0];
	memmove(c->sig, c->sig + 1, --c->nsig * sizeof(c->sig[0]));
	if (c->nsig > 0)
		event_active(c->defer, 0, 0);
	else if (c->io != NULL && c->state != SMTPC_ST_CONNECT &&
	    c->state != SMTPC_ST_TLS && io_in_len(c->io) > 0)
		io_reschedule(c->io);	/* input we stopped reading at */
	if (ev == SMTPC_DONE)
		c->msg = NULL;
	c->cb(c, ev, c->arg);		/* may free c */
}

static void
smtpc_defercb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	smtpc_flush(arg);
}

/* The deadline for what the connection waits for now. */
static void
smtpc_arm(struct smtpc *c)
{
	unsigned int t = 0;

	if (c->io == NULL)
		return;
	switch (c->state) {
	case SMTPC_ST_SETUP:
	case SMTPC_ST_TLS:
	case SMTPC_ST_TXN:
		t = c->t_command;
		break;
	case SMTPC_ST_BODY:
	case SMTPC_ST_BDAT:
	case SMTPC_ST_FINAL:
		t = c->t_data;
		break;
	case SMTPC_ST_QUIT:
		t = c->t_command < SMTPC_QUIT_TIMEOUT ? c->t_command :
		    SMTPC_QUIT_TIMEOUT;
		break;
	case SMTPC_ST_CONNECT:
		return;		/* io_connect has its own */
	case SMTPC_ST_IDLE:
	case SMTPC_ST_CLOSED:
		break;
	}
	io_set_deadline(c->io, t);
}

static void
smtpc_close(struct smtpc *c)
{
	io_free(c->io);
	c->io = NULL;
	c->ring_len = 0;
	smtpc_enter_state(c, SMTPC_ST_CLOSED);
}

/* Why the set-up failed: for smtpc_last_error() and the log. */
static void
smtpc_fail_note(struct smtpc *c, enum smtpc_status st,
    const struct smtpc_reply *r)
{
	char esc[512];

	c->fail_status = st;
	c->err = *r;
	log_info("client: failed conn=%llu peer=%s status=%s%s reply=\"%s\"",
	    (unsigned long long)c->id, c->peer,
	    st == SMTPC_PERM ? "perm" : "temp",
	    c->tls_failed ? " tls_failed=yes" : "",
	    smtpc_escape(esc, sizeof(esc), r->text));
}

/* The connection could not be set up. */
static void
smtpc_fail(struct smtpc *c, enum smtpc_status st,
    const struct smtpc_reply *r)
{
	smtpc_fail_note(c, st, r);
	smtpc_close(c);
	smtpc_signal(c, SMTPC_FAILED);
}

/* Forget the password (after AUTH, or when the connection goes). */
static void
smtpc_wipe_password(struct smtpc *c)
{
	if (c->auth_password == NULL)
		return;
	explicit_bzero(c->auth_password, strlen(c->auth_password));
	free(c->auth_password);
	c->auth_password = NULL;
}

/*
 * Ring of commands awaiting replies.
 */

/*
 * Input that is here before a command is written cannot answer it: the
 * command's reply must start past it (see smtpc_reply()).
 */
static uint64_t
smtpc_in_end(struct smtpc *c)
{
	return c->in_off + (c->io != NULL ? io_in_len(c->io) : 0);
}

static void
smtpc_push(struct smtpc *c, enum smtpc_cmd cmd, size_t idx)
{
	struct smtpc_pending *p;

	if (c->ring_len == SMTPC_RING)
		fatalx("client: too many commands in flight");
	p = &c->ring[(c->ring_head + c->ring_len++) % SMTPC_RING];
	p->cmd = cmd;
	p->idx = idx;
	p->after = smtpc_in_end(c);
}

static struct smtpc_pending
smtpc_pop(struct smtpc *c)
{
	struct smtpc_pending p = c->ring[c->ring_head];

	c->ring_head = (c->ring_head + 1) % SMTPC_RING;
	c->ring_len--;
	return p;
}

static const char *
smtpc_stage(const struct smtpc *c)
{
	switch (c->state) {
	case SMTPC_ST_TLS:
		return "performing the TLS handshake";
	case SMTPC_ST_BODY:
		return "sending message body";
	case SMTPC_ST_FINAL:
		return "sending end of data";
	default:
		break;
	}
	if (c->ring_len > 0)
		return smtpc_cmd_stage[c->ring[c->ring_head].cmd];
	if (c->state == SMTPC_ST_BDAT)
		return "sending message body";
	return "waiting for the server";
}

/*
 * Reading replies (RFC 5321 4.2): "ddd-text" continuation lines, then
 * "ddd text" or "ddd". Returns 1 with a reply in c->rep, 0 when more
 * input is needed, -1 for a protocol error (why in *why_r).
 */

static const struct {
	const char *kw;
	unsigned int cap;
} smtpc_exts[] = {
	{ "PIPELINING", SMTPC_CAP_PIPELINING },
	{ "SIZE", SMTPC_CAP_SIZE },
	{ "8BITMIME", SMTPC_CAP_8BITMIME },
	{ "SMTPUTF8", SMTPC_CAP_SMTPUTF8 },
	{ "DSN", SMTPC_CAP_DSN },
	{ "CHUNKING", SMTPC_CAP_CHUNKING },
	{ "BINARYMIME", SMTPC_CAP_BINARYMIME },
	{ "STARTTLS", SMTPC_CAP_STARTTLS },
	{ "ENHANCEDSTATUSCODES", SMTPC_CAP_ENHANCEDSTATUSCODES },
};

/*
 * "AUTH PLAIN LOGIN CRAM-MD5" (RFC 4954 3), or the pre-standard
 * "AUTH=PLAIN LOGIN" some servers still send: the mechanisms we know.
 */
static void
smtpc_parse_auth(struct smtpc *c, const char *s)
{
	size_t n;

	c->rep_caps |= SMTPC_CAP_AUTH;
	for (;;) {
		s += strspn(s, " ");
		if ((n = strcspn(s, " ")) == 0)
			return;
		if (n == 5 && ascii_strncasecmp(s, "PLAIN", 5) == 0)
			c->rep_auth |= SMTPC_MECH_PLAIN;
		else if (n == 5 && ascii_strncasecmp(s, "LOGIN", 5) == 0)
			c->rep_auth |= SMTPC_MECH_LOGIN;
		s += n;
	}
}

/* One EHLO keyword line ("SIZE 10240000"), past "250-". */
static void
smtpc_parse_ext(struct smtpc *c, const char *s)
{
	char kw[32], arg[32];
	size_t n, i;
	uint64_t v;
	const char *err;

	if (ascii_strncasecmp(s, "AUTH", 4) == 0 &&
	    (s[4] == ' ' || s[4] == '=' || s[4] == '\0')) {
		smtpc_parse_auth(c, s[4] == '\0' ? s + 4 : s + 5);
		return;
	}
	n = strcspn(s, " ");
	if (n == 0 || n >= sizeof(kw))
		return;
	memcpy(kw, s, n);
	kw[n] = '\0';
	for (i = 0; i < nitems(smtpc_exts); i++) {
		if (ascii_strcasecmp(kw, smtpc_exts[i].kw) != 0)
			continue;
		c->rep_caps |= smtpc_exts[i].cap;
		if (smtpc_exts[i].cap != SMTPC_CAP_SIZE)
			return;
		/* RFC 1870: "SIZE" or "SIZE 0" means no fixed limit. */
		s += n;
		s += strspn(s, " ");
		n = strcspn(s, " ");
		c->rep_size = 0;
		if (n > 0 && n < sizeof(arg)) {
			memcpy(arg, s, n);
			arg[n] = '\0';
			if (parse_u64(arg, 0, UINT64_MAX, &v, &err) == 0)
				c->rep_size = v;
		}
		return;
	}
}

/* "5.1.1" at the start of s, of class cls, followed by space or end. */
static void
smtpc_parse_enhanced(struct smtpc_reply *r, const char *s, char cls)
{
	size_t i = 0, n, part;

	r->enhanced[0] = '\0';
	if (s[0] != cls || s[1] != '.')
		return;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (n = 0; s[i] >= '0' && s[i] <= '9'; i++)
			n++;
		if (n < 1 || n > 3)
			return;
		if (part == 0) {
			if (s[i] != '.')
				return;
			i++;
		}
	}
	if (s[i] != ' ' && s[i] != '\0')
		return;
	memcpy(r->enhanced, s, i);
	r->enhanced[i] = '\0';
}

static void
smtpc_text_append(struct smtpc *c, const char *s, size_t len)
{
	size_t i, room = sizeof(c->rep.text) - 1;

	if (c->rep_len > 0 && c->rep_len < room)
		c->rep.text[c->rep_len++] = ' ';
	for (i = 0; i < len && c->rep_len < room; i++) {
		unsigned char ch = (unsigned char)s[i];

		c->rep.text[c->rep_len++] = (ch < 0x20 || ch == 0x7f) ?
		    '?' : (char)ch;
	}
	c->rep.text[c->rep_len] = '\0';
}

static int
smtpc_reply_read(struct smtpc *c, const char **why_r)
{
	size_t avail, len;
	long lf;
	char *l = c->line, sep;
	bool ehlo;
	int code;

	for (;;) {
		if ((avail = io_in_len(c->io)) == 0)
			return 0;
		lf = io_in_find_lf(c->io, SMTPC_REPLY_LINE_MAX + 2);
		if (lf < 0) {
			if (avail >= SMTPC_REPLY_LINE_MAX + 2) {
				*why_r = "reply line too long";
				return -1;
			}
			return 0;
		}
		len = (size_t)lf;
		io_in_copy(c->io, l, len);
		io_in_drain(c->io, len + 1);
		if (c->rep_lines == 0)
			c->rep_start = c->in_off;
		c->in_off += len + 1;
		if (len > 0 && l[len - 1] == '\r')
			len--;
		if (len > SMTPC_REPLY_LINE_MAX) {
			*why_r = "reply line too long";
			return -1;
		}
		l[len] = '\0';
		if (len < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' ||
		    l[1] > '9' || l[2] < '0' || l[2] > '9' ||
		    (len > 3 && l[3] != ' ' && l[3] != '-') ||
		    memchr(l, '\0', len) != NULL) {
			*why_r = "malformed reply";
			return -1;
		}
		sep = len > 3 ? l[3] : ' ';
		code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
		if (++c->rep_lines > SMTPC_REPLY_LINES) {
			*why_r = "too many reply lines";
			return -1;
		}
		if (c->rep_lines > 1 && code != c->rep.code) {
			/*
			 * RFC 5321 4.2.1: the same code on every line. Which
			 * one would count? "250-..." then "550 ..." would be
			 * a bounce whose text (and DSN status) says 2.0.0.
			 */
			*why_r = "reply codes differ between lines";
			return -1;
		}
		if (c->rep_lines == 1) {
			c->rep.code = code;
			c->rep_len = 0;
			c->rep.text[0] = '\0';
			c->rep_caps = 0;
			c->rep_size = 0;
			c->rep_auth = 0;
			smtpc_parse_enhanced(&c->rep, len > 4 ? l + 4 : "",
			    l[0]);
		} else {
			ehlo = c->ring_len > 0 &&
			    (c->ring[c->ring_head].cmd == SMTPC_CMD_EHLO ||
			    c->ring[c->ring_head].cmd == SMTPC_CMD_LHLO);
			if (ehlo && len > 4)
				smtpc_parse_ext(c, l + 4);
		}
		smtpc_text_append(c, l, len);
		if (sep == '-')
			continue;
		c->rep_lines = 0;
		return 1;
	}
}

static void
smtpc_input(struct smtpc *c)
{
	const char *why = NULL;
	struct smtpc_reply r;
	int rv;

	while (c->io != NULL && c->nsig == 0 &&
	    c->state != SMTPC_ST_CONNECT && c->state != SMTPC_ST_TLS &&
	    c->state != SMTPC_ST_CLOSED) {
		rv = smtpc_reply_read(c, &why);
		if (rv == 0)
			break;
		if (rv < 0) {
			smtpc_reply_make(&r, 451, "4.5.0",
			    "protocol error with %s while %s: %s", c->peer,
			    smtpc_stage(c), why);
			smtpc_break(c, &r);
			break;
		}
		c->nreplies++;
		smtpc_reply(c);
	}
}

/*
 * Set-up: greeting, EHLO/LHLO (HELO), STARTTLS.
 */

static void
smtpc_send_hello(struct smtpc *c, enum smtpc_cmd cmd)
{
	const char *verb = cmd == SMTPC_CMD_LHLO ? "LHLO" :
	    cmd == SMTPC_CMD_HELO ? "HELO" : "EHLO";

	io_printf(c->io, "%s %s\r\n", verb, c->helo);
	smtpc_push(c, cmd, 0);
}

static void
smtpc_ready(struct smtpc *c)
{
	smtpc_enter_state(c, SMTPC_ST_IDLE);
	log_debug("client: ready conn=%llu peer=%s caps=0x%x size=%llu "
	    "tls=%s", (unsigned long long)c->id, c->peer, c->caps,
	    (unsigned long long)c->max_size, c->tls ? c->tls_info : "no");
	smtpc_signal(c, SMTPC_READY);
}

/*
 * SMTP AUTH (RFC 4954) with the configured credentials.
 */

/*
 * Set-up cannot go on, but the peer is in a known state: say QUIT, and
 * SMTPC_FAILED (TEMP, r) follows its 221 (or the loss, or the timeout).
 */
static void
smtpc_fail_quit(struct smtpc *c, const struct smtpc_reply *r)
{
	smtpc_wipe_password(c);
	smtpc_fail_note(c, SMTPC_TEMP, r);
	c->quit_fail = true;
	io_printf(c->io, "QUIT\r\n");
	smtpc_push(c, SMTPC_CMD_QUIT, 0);
	smtpc_enter_state(c, SMTPC_ST_QUIT);
	smtpc_arm(c);
}

/*
 * Write "prefix base64(a [NUL b])\r\n" (PLAIN: a is "\0user", LOGIN: one
 * string) and wipe every copy made on the way. The text never reaches a
 * log.
 */
static void
smtpc_send_b64(struct smtpc *c, const char *prefix, const char *a,
    size_t alen, const char *b)
{
	size_t blen = b != NULL ? strlen(b) : 0;
	size_t rawlen = alen + (b != NULL ? 1 + blen : 0);
	size_t plen = strlen(prefix);
	size_t enclen = 4 * ((rawlen + 2) / 3);
	size_t linelen = plen + enclen + 2;
	unsigned char *raw = xmalloc(rawlen + 1);
	char *line = xmalloc(linelen + 1);
	int n;

	if (rawlen > SMTPC_AUTH_MAX + 2)
		fatalx("client: credentials too long"); /* checked */
	memcpy(raw, a, alen);
	if (b != NULL) {
		raw[alen] = '\0';
		memcpy(raw + alen + 1, b, blen);
	}
	memcpy(line, prefix, plen);
	n = EVP_EncodeBlock((unsigned char *)line + plen, raw, (int)rawlen);
	if (n < 0 || (size_t)n != enclen)
		fatalx("client: base64 of %zu octets", rawlen);
	memcpy(line + plen + enclen, "\r\n", 2);
	io_write(c->io, line, linelen);
	explicit_bzero(raw, rawlen + 1);
	explicit_bzero(line, linelen + 1);
	free(raw);
	free(line);
}

static void
smtpc_auth_start(struct smtpc *c)
{
	struct smtpc_reply r;
	char *ir;
	size_t ulen;

	if (c->auth_mechs & SMTPC_MECH_PLAIN) {
		/*
		 * RFC 4616 2: [authzid] NUL authcid NUL passwd, no authzid;
		 * RFC 4954 4: as the initial response, one round trip.
		 */
		c->auth_mech = SMTPC_MECH_PLAIN;
		ulen = strlen(c->auth_user);
		ir = xmalloc(ulen + 2);
		ir[0] = '\0';
		memcpy(ir + 1, c->auth_user, ulen + 1);
		smtpc_send_b64(c, "AUTH PLAIN ", ir, ulen + 1,
		    c->auth_password);
		explicit_bzero(ir, ulen + 2);
		free(ir);
		smtpc_push(c, SMTPC_CMD_AUTH, 0);
		return;
	}
	if (c->auth_mechs & SMTPC_MECH_LOGIN) {
		/* The 334 dialogue: user name, then password. */
		c->auth_mech = SMTPC_MECH_LOGIN;
		io_printf(c->io, "AUTH LOGIN\r\n");
		smtpc_push(c, SMTPC_CMD_AUTH, 0);
		return;
	}
	if (c->caps & SMTPC_CAP_AUTH)
		smtpc_reply_make(&r, 454, "4.7.0", "%s offers no SASL "
		    "mechanism we can use (PLAIN or LOGIN); credentials not "
		    "sent", c->peer);
	else
		smtpc_reply_make(&r, 454, "4.7.0", "%s does not offer SMTP "
		    "AUTH; credentials not sent", c->peer);
	smtpc_fail_quit(c, &r);
}

/*
 * The last EHLO is answered (and TLS is up or out of reach): AUTH when
 * credentials are given, else ready. PLAIN and LOGIN carry the password
 * as it is (RFC 4954 4, RFC 4616 6): without TLS they are never sent, as
 * with Postfix's defaults (smtp_sasl_security_options noplaintext,
 * smtp_sasl_tls_security_options noanonymous).
 */
static void
smtpc_setup_done(struct smtpc *c)
{
	struct smtpc_reply r;
	char code[8];

	if (c->auth_user == NULL || c->authenticated) {
		smtpc_ready(c);
		return;
	}
	if (strlen(c->auth_user) + strlen(c->auth_password) >
	    SMTPC_AUTH_MAX) {
		smtpc_reply_make(&r, 454, "4.7.0", "SMTP AUTH user name and "
		    "password longer than %d octets; not sent to %s",
		    SMTPC_AUTH_MAX, c->peer);
		smtpc_fail_quit(c, &r);
		return;
	}
	if (!c->tls) {
		if (c->starttls_code != 0) {
			snprintf(code, sizeof(code), "%d", c->starttls_code);
			smtpc_reply_make(&r, 454, "4.7.0", "%s offers no TLS "
			    "(STARTTLS refused with %s); credentials are "
			    "never sent in plaintext", c->peer, code);
		} else if (!(c->caps & SMTPC_CAP_STARTTLS))
			smtpc_reply_make(&r, 454, "4.7.0", "%s offers no TLS "
			    "(no STARTTLS); credentials are never sent in "
			    "plaintext", c->peer);
		else
			smtpc_reply_make(&r, 454, "4.7.0", "no TLS with %s "
			    "(TLS unavailable here); credentials are never "
			    "sent in plaintext", c->peer);
		smtpc_fail_quit(c, &r);
		return;
	}
	smtpc_auth_start(c);
}

static void
smtpc_on_auth(struct smtpc *c, enum smtpc_cmd cmd)
{
	struct smtpc_reply r;
	char enh[16], esc[300];
	bool login = c->auth_mech == SMTPC_MECH_LOGIN;

	if (c->rep.code == 334) {
		/* The challenge itself (a prompt for LOGIN) is not used. */
		if (login && cmd == SMTPC_CMD_AUTH) {
			smtpc_send_b64(c, "", c->auth_user,
			    strlen(c->auth_user), NULL);
			smtpc_push(c, SMTPC_CMD_AUTH_USER, 0);
			return;
		}
		if (login && cmd == SMTPC_CMD_AUTH_USER) {
			smtpc_send_b64(c, "", c->auth_password,
			    strlen(c->auth_password), NULL);
			smtpc_push(c, SMTPC_CMD_AUTH_PASS, 0);
			return;
		}
		/*
		 * PLAIN had it all; LOGIN has nothing left to say. "*"
		 * would cancel (RFC 4954 4), but a peer this confused is
		 * better left.
		 */
		smtpc_reply_make(&r, 451, "4.5.0", "protocol error with %s "
		    "while performing SASL authentication: unexpected "
		    "challenge", c->peer);
		smtpc_wipe_password(c);
		smtpc_fail(c, SMTPC_TEMP, &r);
		return;
	}
	smtpc_wipe_password(c);
	if (c->rep.code == 235) {
		c->authenticated = true;
		log_info("client: authenticated conn=%llu peer=%s user=%s "
		    "mech=%s", (unsigned long long)c->id, c->peer,
		    smtpc_escape(esc, sizeof(esc), c->auth_user),
		    login ? "LOGIN" : "PLAIN");
		smtpc_ready(c);
		return;
	}
	/*
	 * Refused (535 5.7.8 wrong credentials, 534, 538, 454, ...). Always
	 * TEMP, as Postfix's smtp_sasl_auth_soft_bounce: a wrong password
	 * here is our configuration's fault, not the messages', and must
	 * not bounce the queue. The DSN code becomes 4.X.Y.
	 */
	c->auth_refused = c->rep.code / 100 == 5;
	if (c->rep.enhanced[0] != '\0') {
		strlcpy(enh, c->rep.enhanced, sizeof(enh));
		enh[0] = '4';
	} else
		strlcpy(enh, "4.7.0", sizeof(enh));
	smtpc_reply_make(&r, 454, enh, "SASL authentication failed; server "
	    "%s said: %s", c->peer, c->rep.text);
	smtpc_fail_quit(c, &r);
}

static void
smtpc_on_greeting(struct smtpc *c)
{
	switch (c->rep.code / 100) {
	case 2:
		smtpc_send_hello(c, c->proto == SMTPC_LMTP ?
		    SMTPC_CMD_LHLO : SMTPC_CMD_EHLO);
		break;
	case 5:
		/* RFC 5321 3.1: this host will not talk to us. */
		smtpc_fail(c, SMTPC_PERM, &c->rep);
		break;
	default:
		smtpc_fail(c, SMTPC_TEMP, &c->rep);
		break;
	}
}

static void
smtpc_on_hello(struct smtpc *c, enum smtpc_cmd cmd)
{
	switch (c->rep.code / 100) {
	case 2:
		break;
	case 5:
		/* RFC 5321 3.2: an old server; try HELO (not in LMTP). */
		if (cmd == SMTPC_CMD_EHLO) {
			smtpc_send_hello(c, SMTPC_CMD_HELO);
			return;
		}
		smtpc_fail(c, SMTPC_PERM, &c->rep);
		return;
	default:
		smtpc_fail(c, SMTPC_TEMP, &c->rep);
		return;
	}
	if (cmd == SMTPC_CMD_HELO) {
		c->caps = 0;
		c->max_size = 0;
	} else {
		c->caps = c->rep_caps;
		c->max_size = (c->caps & SMTPC_CAP_SIZE) ? c->rep_size : 0;
	}
	c->auth_mechs = cmd == SMTPC_CMD_HELO ? 0 : c->rep_auth;
	if (!c->tls && (c->starttls || c->auth_user != NULL) &&
	    c->ssl_ctx != NULL && (c->caps & SMTPC_CAP_STARTTLS)) {
		io_printf(c->io, "STARTTLS\r\n");
		smtpc_push(c, SMTPC_CMD_STARTTLS, 0);
		return;
	}
	smtpc_setup_done(c);
}

static void
smtpc_on_starttls(struct smtpc *c)
{
	struct smtpc_reply r;

	if (c->rep.code != 220) {
		/* Opportunistic: carry on in plaintext (RFC 3207 4). */
		log_info("client: STARTTLS refused conn=%llu peer=%s code=%d",
		    (unsigned long long)c->id, c->peer, c->rep.code);
		c->starttls_code = c->rep.code;
		smtpc_setup_done(c);
		return;
	}
	if (io_tls_client(c->io, c->ssl_ctx, c->sni, smtpc_tls_done) == -1) {
		c->tls_failed = true;
		smtpc_reply_make(&r, 451, "4.7.5", "cannot start TLS with "
		    "%s: out of resources", c->peer);
		smtpc_fail(c, SMTPC_TEMP, &r);
		return;
	}
	smtpc_enter_state(c, SMTPC_ST_TLS);
}

static void
smtpc_tls_done(struct io *io, int error, void *arg)
{
	struct smtpc *c = arg;
	struct smtpc_reply r;
	char esc[200];

	(void)io;
	if (error != 0) {
		c->tls_failed = true;
		smtpc_reply_make(&r, 451, "4.7.5",
		    "TLS handshake with %s failed: %s", c->peer,
		    smtpc_escape(esc, sizeof(esc), io_tls_error(c->io)));
		smtpc_fail(c, SMTPC_TEMP, &r);
		smtpc_flush(c);
		return;
	}
	c->tls = true;
	io_tls_info(c->io, c->tls_info, sizeof(c->tls_info));
	log_info("client: TLS established conn=%llu peer=%s tls=\"%s\"",
	    (unsigned long long)c->id, c->peer, c->tls_info);
	/* RFC 3207 4.2: forget what we knew; say EHLO again. */
	c->caps = 0;
	c->max_size = 0;
	c->auth_mechs = 0;
	smtpc_enter_state(c, SMTPC_ST_SETUP);
	smtpc_send_hello(c, c->proto == SMTPC_LMTP ? SMTPC_CMD_LHLO :
	    SMTPC_CMD_EHLO);
	smtpc_arm(c);
	smtpc_flush(c);
}

static void
smtpc_connected(struct io *io, int error, void *arg)
{
	struct smtpc *c = arg;
	struct smtpc_reply r;

	(void)io;
	if (error != 0) {
		smtpc_reply_make(&r, 451, "4.4.1", "connect to %s: %s",
		    c->peer_port, strerror(error));
		smtpc_fail(c, SMTPC_TEMP, &r);
		smtpc_flush(c);
		return;
	}
	log_debug("client: connected conn=%llu peer=%s",
	    (unsigned long long)c->id, c->peer_port);
	smtpc_enter_state(c, SMTPC_ST_SETUP);
	smtpc_push(c, SMTPC_CMD_GREETING, 0);
	smtpc_arm(c);
}

/*
 * The transaction.
 */

/* Every recipient without a final status gets st and r. */
static void
smtpc_rcpts_fail(struct smtpc *c, enum smtpc_status st,
    const struct smtpc_reply *r)
{
	struct smtpc_msg *m = c->msg;
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nrcpts; i++) {
		if (c->rst[i] == SMTPC_R_FINAL)
			continue;
		m->rcpts[i].status = st;
		m->rcpts[i].reply = *r;
		c->rst[i] = SMTPC_R_FINAL;
	}
	m->status = st;
	m->reply = *r;
}

static void
smtpc_txn_finish(struct smtpc *c)
{
	size_t i, ok = 0;

	for (i = 0; i < c->msg->nrcpts; i++)
		if (c->rst[i] == SMTPC_R_FINAL &&
		    c->msg->rcpts[i].status == SMTPC_OK)
			ok++;
	log_debug("client: done conn=%llu peer=%s rcpts=%zu delivered=%zu",
	    (unsigned long long)c->id, c->peer, c->msg->nrcpts, ok);
	c->need_rset = true;
	if (c->io != NULL)
		smtpc_enter_state(c, SMTPC_ST_IDLE);
	smtpc_signal(c, SMTPC_DONE);
}

/*
 * The QUIT exchange is over (221, lost, timed out; why: NULL after the
 * 221, else the reason kept for smtpc_last_error()): SMTPC_CLOSED, or
 * SMTPC_FAILED when the QUIT ended a failed set-up (the reason noted
 * then stays).
 */
static void
smtpc_quit_end(struct smtpc *c, const struct smtpc_reply *why)
{
	smtpc_close(c);
	if (c->quit_fail) {
		smtpc_signal(c, SMTPC_FAILED);
		return;
	}
	if (why != NULL)
		c->err = *why;
	smtpc_signal(c, SMTPC_CLOSED);
}

/*
 * The connection cannot go on (lost, timed out, protocol error, 421):
 * what is pending gets r, and the connection is closed.
 */
static void
smtpc_break(struct smtpc *c, const struct smtpc_reply *r)
{
	char esc[512];

	switch (c->state) {
	case SMTPC_ST_CONNECT:
	case SMTPC_ST_SETUP:
	case SMTPC_ST_TLS:
		if (c->state == SMTPC_ST_TLS)
			c->tls_failed = true;
		smtpc_fail(c, SMTPC_TEMP, r);
		return;
	case SMTPC_ST_TXN:
	case SMTPC_ST_BODY:
	case SMTPC_ST_BDAT:
	case SMTPC_ST_FINAL:
		log_info("client: transaction failed conn=%llu peer=%s "
		    "reply=\"%s\"", (unsigned long long)c->id, c->peer,
		    smtpc_escape(esc, sizeof(esc), r->text));
		c->err = *r;	/* smtpc_last_error(): why it ended */
		smtpc_rcpts_fail(c, smtpc_class(r->code) == SMTPC_PERM ?
		    SMTPC_PERM : SMTPC_TEMP, r);
		smtpc_close(c);
		smtpc_txn_finish(c);
		return;
	case SMTPC_ST_IDLE:
	case SMTPC_ST_QUIT:
		log_debug("client: closed conn=%llu peer=%s reply=\"%s\"",
		    (unsigned long long)c->id, c->peer,
		    smtpc_escape(esc, sizeof(esc), r->text));
		smtpc_quit_end(c, r);
		return;
	case SMTPC_ST_CLOSED:
		return;
	}
}

/* The connection went away or timed out. */
static void
smtpc_lost(struct smtpc *c, bool timeout)
{
	struct smtpc_reply r;
	const char *more = "";

	if (c->state == SMTPC_ST_CLOSED)
		return;
	if (c->eod_sent)
		more = " -- message may be sent more than once";
	if (timeout)
		smtpc_reply_make(&r, 451, "4.4.2", "conversation with %s "
		    "timed out while %s%s", c->peer, smtpc_stage(c), more);
	else
		smtpc_reply_make(&r, 451, "4.4.2", "lost connection with %s "
		    "while %s%s", c->peer, smtpc_stage(c), more);
	if (c->state == SMTPC_ST_QUIT || c->state == SMTPC_ST_IDLE) {
		smtpc_quit_end(c, &r);
		return;
	}
	smtpc_break(c, &r);
}

/* A reply where none was due. */
static void
smtpc_unexpected(struct smtpc *c)
{
	struct smtpc_reply r;

	if (c->state == SMTPC_ST_BODY && c->rep.code >= 400) {
		/* The server gave up on the content: take its word. */
		smtpc_break(c, &c->rep);
		return;
	}
	if (c->rep.code == 421) {
		smtpc_break(c, &c->rep);
		return;
	}
	smtpc_reply_make(&r, 451, "4.5.0", "protocol error with %s while "
	    "%s: unexpected reply", c->peer, smtpc_stage(c));
	smtpc_break(c, &r);
}

/* Does s hold a control character (command injection)? */
static bool
smtpc_has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* xtext (RFC 3461 4): printable ASCII but SP and '='. */
static bool
smtpc_is_xtext(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f ||
		    *s == '=')
			return false;
	return true;
}

static bool
smtpc_dsn(const struct smtpc *c)
{
	return c->msg->dsn && (c->caps & SMTPC_CAP_DSN);
}

static void
smtpc_send_mail(struct smtpc *c)
{
	const struct smtpc_msg *m = c->msg;
	struct buf b;

	buf_init(&b, SMTPC_CMD_MAX);
	buf_printf(&b, "MAIL FROM:<%s>", m->sender);
	if ((c->caps & SMTPC_CAP_SIZE) && m->size > 0)
		buf_printf(&b, " SIZE=%llu", (unsigned long long)m->size);
	if (m->body == SMTPC_BODY_BINARYMIME)
		buf_append_str(&b, " BODY=BINARYMIME");
	else if ((m->body == SMTPC_BODY_8BITMIME || m->eight_bit) &&
	    (c->caps & SMTPC_CAP_8BITMIME))
		buf_append_str(&b, " BODY=8BITMIME");
	if (m->smtputf8)
		buf_append_str(&b, " SMTPUTF8");
	if (smtpc_dsn(c)) {
		if (m->ret == SMTPC_RET_FULL)
			buf_append_str(&b, " RET=FULL");
		else if (m->ret == SMTPC_RET_HDRS)
			buf_append_str(&b, " RET=HDRS");
		if (m->envid != NULL && *m->envid != '\0' &&
		    strlen(m->envid) <= 100 && smtpc_is_xtext(m->envid))
			buf_printf(&b, " ENVID=%s", m->envid);
	}
	buf_append_str(&b, "\r\n");
	io_write(c->io, buf_str(&b), b.len);
	buf_free(&b);
	smtpc_push(c, SMTPC_CMD_MAIL, 0);
	c->mail_sent = true;
}

static void
smtpc_send_rcpt(struct smtpc *c, size_t i)
{
	const struct smtpc_rcpt *rc = &c->msg->rcpts[i];
	unsigned int n = rc->notify;
	struct buf b;
	const char *sep = "";

	buf_init(&b, SMTPC_CMD_MAX);
	buf_printf(&b, "RCPT TO:<%s>", rc->addr);
	if (smtpc_dsn(c) && n != 0) {
		buf_append_str(&b, " NOTIFY=");
		if (n & SMTPC_NOTIFY_NEVER)
			buf_append_str(&b, "NEVER");
		else {
			if (n & SMTPC_NOTIFY_SUCCESS) {
				buf_append_str(&b, "SUCCESS");
				sep = ",";
			}
			if (n & SMTPC_NOTIFY_FAILURE) {
				buf_printf(&b, "%sFAILURE", sep);
				sep = ",";
			}
			if (n & SMTPC_NOTIFY_DELAY)
				buf_printf(&b, "%sDELAY", sep);
		}
	}
	if (smtpc_dsn(c) && rc->orcpt != NULL && *rc->orcpt != '\0' &&
	    strlen(rc->orcpt) <= 500 && smtpc_is_xtext(rc->orcpt))
		buf_printf(&b, " ORCPT=%s", rc->orcpt);
	buf_append_str(&b, "\r\n");
	io_write(c->io, buf_str(&b), b.len);
	buf_free(&b);
	smtpc_push(c, SMTPC_CMD_RCPT, i);
}

/*
 * Send what may be sent now: with PIPELINING, MAIL, the RCPTs and DATA
 * back to back (RFC 2920 3.1: DATA last in the group), at most
 * SMTPC_PIPELINE_MAX in flight; without it, one command per reply.
 */
static void
smtpc_txn_pump(struct smtpc *c)
{
	struct smtpc_msg *m = c->msg;
	size_t limit = (c->caps & SMTPC_CAP_PIPELINING) ?
	    SMTPC_PIPELINE_MAX : 1;
	bool chunking = (c->caps & SMTPC_CAP_CHUNKING) != 0;

	if (c->state != SMTPC_ST_TXN || c->need_rset)
		return;
	while (c->ring_len < limit) {
		if (!c->mail_sent) {
			smtpc_send_mail(c);
			continue;
		}
		if (c->mail_failed)
			break;
		if (c->wr_rcpt < m->nrcpts) {
			if (c->rst[c->wr_rcpt] == SMTPC_R_WAIT)
				smtpc_send_rcpt(c, c->wr_rcpt);
			c->wr_rcpt++;
			continue;
		}
		if (c->data_sent || chunking)
			break;
		if (c->ring_len == 0 && c->naccepted == 0)
			break;		/* every RCPT refused already */
		io_printf(c->io, "DATA\r\n");
		smtpc_push(c, SMTPC_CMD_DATA, 0);
		c->data_sent = true;
	}
	if (c->ring_len > 0 || c->data_sent)
		return;
	if (c->mail_failed || c->naccepted == 0) {
		smtpc_txn_finish(c);
		return;
	}
	/* CHUNKING: every RCPT answered, some accepted. */
	smtpc_enter_state(c, SMTPC_ST_BDAT);
	c->bol = true;
	c->cr = false;
	smtpc_bdat_pump(c);
}

static void
smtpc_on_rset(struct smtpc *c)
{
	struct smtpc_reply r;

	if (c->rep.code / 100 != 2) {
		smtpc_reply_make(&r, 451, "4.4.0", "%s refused RSET: %s",
		    c->peer, c->rep.text);
		smtpc_break(c, &r);
		return;
	}
	c->need_rset = false;
	smtpc_txn_pump(c);
}

static void
smtpc_on_mail(struct smtpc *c)
{
	if (c->rep.code / 100 == 2)
		return;
	c->mail_failed = true;
	smtpc_rcpts_fail(c, smtpc_class(c->rep.code), &c->rep);
}

static void
smtpc_on_rcpt(struct smtpc *c, size_t i)
{
	struct smtpc_rcpt *rc = &c->msg->rcpts[i];

	if (c->mail_failed || c->rst[i] != SMTPC_R_WAIT)
		return;
	if (c->rep.code / 100 == 2) {
		c->rst[i] = SMTPC_R_ACCEPTED;
		c->naccepted++;
		return;
	}
	/* RFC 5321 4.5.3.1.10: treat 552 to RCPT as 452. */
	rc->status = c->rep.code == 552 ? SMTPC_TEMP :
	    smtpc_class(c->rep.code);
	rc->reply = c->rep;
	c->rst[i] = SMTPC_R_FINAL;
}

static void
smtpc_on_data(struct smtpc *c)
{
	struct smtpc_reply r;

	if (c->mail_failed || c->naccepted == 0) {
		if (c->rep.code / 100 != 3) {
			smtpc_txn_finish(c);	/* the expected 503/554 */
			return;
		}
		/* 354 with no recipient: content would go nowhere. */
		smtpc_reply_make(&r, 451, "4.5.0", "protocol error with %s: "
		    "DATA accepted without valid recipients", c->peer);
		smtpc_break(c, &r);
		return;
	}
	switch (c->rep.code / 100) {
	case 3:
		smtpc_enter_state(c, SMTPC_ST_BODY);
		c->bol = true;
		c->cr = false;
		smtpc_body_pump(c);
		return;
	case 4:
	case 5:
		smtpc_rcpts_fail(c, smtpc_class(c->rep.code), &c->rep);
		smtpc_txn_finish(c);
		return;
	default:
		smtpc_unexpected(c);
		return;
	}
}

/* One reply to the end of data (or BDAT LAST). */
static void
smtpc_on_final(struct smtpc *c)
{
	struct smtpc_msg *m = c->msg;
	enum smtpc_status st;
	size_t i;

	if (c->rep.code / 100 == 3) {
		smtpc_unexpected(c);
		return;
	}
	st = smtpc_class(c->rep.code);
	if (c->rep.code == 421) {
		/* RFC 5321 3.8: closing; nothing more will come. */
		c->err = c->rep;
		smtpc_rcpts_fail(c, SMTPC_TEMP, &c->rep);
		smtpc_close(c);
		smtpc_txn_finish(c);
		return;
	}
	if (c->proto == SMTPC_LMTP) {
		/* RFC 2033 4.2: one reply per accepted RCPT, in order. */
		while (c->final_idx < m->nrcpts &&
		    c->rst[c->final_idx] != SMTPC_R_ACCEPTED)
			c->final_idx++;
		if (c->final_idx < m->nrcpts) {
			i = c->final_idx++;
			m->rcpts[i].status = st;
			m->rcpts[i].reply = c->rep;
			c->rst[i] = SMTPC_R_FINAL;
		}
		m->reply = c->rep;
	} else {
		for (i = 0; i < m->nrcpts; i++) {
			if (c->rst[i] != SMTPC_R_ACCEPTED)
				continue;
			m->rcpts[i].status = st;
			m->rcpts[i].reply = c->rep;
			c->rst[i] = SMTPC_R_FINAL;
		}
		m->status = st;
		m->reply = c->rep;
	}
	if (c->final_left > 0)
		c->final_left--;
	if (c->final_left > 0) {
		smtpc_enter_state(c, SMTPC_ST_FINAL);
		return;
	}
	smtpc_txn_finish(c);
}

static void
smtpc_on_bdat(struct smtpc *c, bool last)
{
	if (last) {
		c->final_left = c->proto == SMTPC_LMTP ? c->naccepted : 1;
		smtpc_on_final(c);
		return;
	}
	if (c->rep.code / 100 == 2) {
		smtpc_bdat_pump(c);
		return;
	}
	/*
	 * A refused chunk fails the transaction (RFC 3030 4.1); how many
	 * replies the chunks still in flight get varies: start afresh.
	 */
	smtpc_break(c, &c->rep);
}

static void
smtpc_reply(struct smtpc *c)
{
	struct smtpc_pending p;
	struct smtpc_reply r;
	uint64_t after = 0;

	/*
	 * A reply that arrived before its command was written answers
	 * something else: the peer is out of step (RFC 2920 3.1 keeps the
	 * order) or says "queued" before it has the content. Taken as the
	 * next command's reply it would shift every later reply onto the
	 * wrong command (the wrong recipient). A 421 may come at any time
	 * (RFC 5321 3.8).
	 */
	if (c->ring_len > 0)
		after = c->ring[c->ring_head].after;
	else if (c->state == SMTPC_ST_FINAL)
		after = c->eod_after;
	if (c->rep_start < after && c->rep.code != 421) {
		smtpc_reply_make(&r, 451, "4.5.0", "protocol error with %s "
		    "while %s: reply before the command was sent", c->peer,
		    smtpc_stage(c));
		smtpc_break(c, &r);
		return;
	}
	if (c->state == SMTPC_ST_FINAL && c->ring_len == 0) {
		smtpc_on_final(c);
		return;
	}
	if (c->ring_len == 0) {
		smtpc_unexpected(c);
		return;
	}
	p = smtpc_pop(c);
	if (c->rep.code == 421 && p.cmd != SMTPC_CMD_QUIT &&
	    p.cmd != SMTPC_CMD_BDAT_LAST) {
		/* RFC 5321 3.8: the server is closing the channel. */
		smtpc_break(c, &c->rep);
		return;
	}
	switch (p.cmd) {
	case SMTPC_CMD_GREETING:
		smtpc_on_greeting(c);
		break;
	case SMTPC_CMD_EHLO:
	case SMTPC_CMD_LHLO:
	case SMTPC_CMD_HELO:
		smtpc_on_hello(c, p.cmd);
		break;
	case SMTPC_CMD_STARTTLS:
		smtpc_on_starttls(c);
		break;
	case SMTPC_CMD_RSET:
		smtpc_on_rset(c);
		break;
	case SMTPC_CMD_MAIL:
		smtpc_on_mail(c);
		smtpc_txn_pump(c);
		break;
	case SMTPC_CMD_RCPT:
		smtpc_on_rcpt(c, p.idx);
		smtpc_txn_pump(c);
		break;
	case SMTPC_CMD_DATA:
		smtpc_on_data(c);
		break;
	case SMTPC_CMD_BDAT:
	case SMTPC_CMD_BDAT_LAST:
		smtpc_on_bdat(c, p.cmd == SMTPC_CMD_BDAT_LAST);
		break;
	case SMTPC_CMD_AUTH:
	case SMTPC_CMD_AUTH_USER:
	case SMTPC_CMD_AUTH_PASS:
		smtpc_on_auth(c, p.cmd);
		break;
	case SMTPC_CMD_QUIT:
		smtpc_quit_end(c, NULL);
		break;
	}
}

/*
 * Content. RFC 5321 4.5.2: a line that starts with "." gets another;
 * 2.3.8: lines end in CRLF, so a bare CR or a bare LF becomes CRLF (we
 * never emit either: SMTP smuggling). out needs 2 * len + 4 octets.
 */
static size_t
smtpc_normalize(struct smtpc *c, const char *in, size_t len, char *out,
    bool stuff)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		char ch = in[i];

		if (c->cr) {
			c->cr = false;
			out[o++] = '\r';
			out[o++] = '\n';
			c->bol = true;
			if (ch == '\n')
				continue;
		}
		if (ch == '\r') {
			c->cr = true;
			continue;
		}
		if (ch == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			c->bol = true;
			continue;
		}
		if (c->bol && ch == '.' && stuff)
			out[o++] = '.';
		out[o++] = ch;
		c->bol = false;
	}
	return o;
}

/* The content's last line ends in CRLF. */
static size_t
smtpc_normalize_end(struct smtpc *c, char *out)
{
	size_t o = 0;

	if (c->cr || !c->bol) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	c->cr = false;
	c->bol = true;
	return o;
}

/* Fetch the next chunk; returns 1, 0 at the end, -1 after failing. */
static int
smtpc_source_next(struct smtpc *c)
{
	struct smtpc_msg *m = c->msg;
	struct smtpc_reply r;
	const char *p = NULL;
	size_t len = 0;
	int rv, e;

	if (c->src_len > 0)
		return 1;
	if (c->src_eof)
		return 0;
	errno = 0;
	rv = m->src.next(m->src.arg, &p, &len);
	if (rv < 0) {
		e = errno;
		smtpc_reply_make(&r, 451, "4.3.0", "error reading the message "
		    "content for %s: %s", c->peer, e == EBADMSG ?
		    "queue file content is corrupt" : strerror(e));
		/* Never end the data: what went out stays incomplete. */
		smtpc_break(c, &r);
		return -1;
	}
	if (rv == 0) {
		c->src_eof = true;
		return 0;
	}
	c->src_p = p;
	c->src_len = p != NULL ? len : 0;
	return 1;
}

static void
smtpc_body_pump(struct smtpc *c)
{
	size_t take, n;
	int rv;

	if (c->stage == NULL)
		c->stage = xmalloc(SMTPC_STAGE_OUT);
	while (io_out_len(c->io) < SMTPC_OUT_HIGH) {
		if ((rv = smtpc_source_next(c)) < 0)
			return;
		if (rv == 0) {
			n = smtpc_normalize_end(c, c->stage);
			memcpy(c->stage + n, ".\r\n", 3);
			io_write(c->io, c->stage, n + 3);
			c->eod_after = smtpc_in_end(c);
			c->final_left = c->proto == SMTPC_LMTP ?
			    c->naccepted : 1;
			c->final_idx = 0;
			smtpc_enter_state(c, SMTPC_ST_FINAL);
			return;
		}
		take = c->src_len < SMTPC_STAGE_IN ? c->src_len :
		    SMTPC_STAGE_IN;
		n = smtpc_normalize(c, c->src_p, take, c->stage, true);
		c->src_p += take;
		c->src_len -= take;
		if (n > 0)
			io_write(c->io, c->stage, n);
	}
}

static void
smtpc_chunk_add(struct smtpc *c, const char *p, size_t len)
{
	if (buf_append(&c->chunk, p, len) == -1)
		fatalx("client: BDAT chunk overflow");	/* sized above */
}

/*
 * RFC 3030: BDAT chunks, counted after normalisation (BINARYMIME goes as
 * it is). Pipelined only with PIPELINING, at most SMTPC_BDAT_INFLIGHT.
 */
static void
smtpc_bdat_pump(struct smtpc *c)
{
	bool binary = c->msg->body == SMTPC_BODY_BINARYMIME;
	size_t limit = (c->caps & SMTPC_CAP_PIPELINING) ?
	    SMTPC_BDAT_INFLIGHT : 1;
	size_t take, n;
	int rv;

	if (c->stage == NULL)
		c->stage = xmalloc(SMTPC_STAGE_OUT);
	if (c->chunk.max == 0)
		buf_init(&c->chunk, SMTPC_BDAT_CHUNK + SMTPC_STAGE_OUT);
	while (!c->last_sent && c->ring_len < limit &&
	    io_out_len(c->io) < SMTPC_OUT_HIGH) {
		while (c->chunk.len < SMTPC_BDAT_CHUNK) {
			if ((rv = smtpc_source_next(c)) < 0)
				return;
			if (rv == 0)
				break;
			take = c->src_len < SMTPC_STAGE_IN ? c->src_len :
			    SMTPC_STAGE_IN;
			if (binary)
				smtpc_chunk_add(c, c->src_p, take);
			else {
				n = smtpc_normalize(c, c->src_p, take,
				    c->stage, false);
				smtpc_chunk_add(c, c->stage, n);
			}
			c->src_p += take;
			c->src_len -= take;
		}
		if (c->src_eof) {
			if (!binary) {
				n = smtpc_normalize_end(c, c->stage);
				smtpc_chunk_add(c, c->stage, n);
			}
			io_printf(c->io, "BDAT %zu LAST\r\n", c->chunk.len);
			smtpc_push(c, SMTPC_CMD_BDAT_LAST, 0);
			c->eod_after = smtpc_in_end(c);
			c->last_sent = true;
		} else {
			io_printf(c->io, "BDAT %zu\r\n", c->chunk.len);
			smtpc_push(c, SMTPC_CMD_BDAT, 0);
		}
		if (c->chunk.len > 0)
			io_write(c->io, c->chunk.data, c->chunk.len);
		buf_reset(&c->chunk);
	}
}

/*
 * The io callback.
 */

static void
smtpc_iocb(struct io *io, enum io_event ev, void *arg)
{
	struct smtpc *c = arg;
	uint64_t nreplies = c->nreplies;
	bool rearm = true;

	(void)io;
	switch (ev) {
	case IO_DATAIN:
		smtpc_input(c);
		/*
		 * RFC 5321 4.5.3.2: the timeout is for the whole reply. Part
		 * of one does not push the deadline back, or a peer that
		 * trickles an octet at a time would hold us for ever.
		 */
		rearm = c->nreplies != nreplies;
		break;
	case IO_LOWAT:
		/*
		 * Only once the end of data has left us may the peer have the
		 * message: from then on a lost connection may mean a
		 * duplicate (RFC 1047).
		 */
		if (c->state == SMTPC_ST_FINAL ||
		    (c->state == SMTPC_ST_BDAT && c->last_sent))
			c->eod_sent = true;
		if (c->nsig > 0)
			break;
		if (c->state == SMTPC_ST_BODY)
			smtpc_body_pump(c);
		else if (c->state == SMTPC_ST_BDAT)
			smtpc_bdat_pump(c);
		break;
	case IO_TIMEOUT:
		smtpc_lost(c, true);
		break;
	case IO_DISCONNECTED:
	case IO_ERROR:
		/*
		 * Replies that came before the close count first; then the
		 * loss, even with an event queued (a DONE is followed by a
		 * CLOSED: the caller must not send on a dead connection).
		 */
		smtpc_input(c);
		smtpc_lost(c, false);
		break;
	}
	if (rearm)
		smtpc_arm(c);	/* by state: idle has no deadline */
	smtpc_flush(c);
}

/*
 * API.
 */

struct smtpc *
smtpc_open(struct event_base *base, const struct smtpc_config *conf,
    smtpc_cb cb, void *arg)
{
	struct smtpc *c = xcalloc(1, sizeof(*c));

	c->id = ++smtpc_next_id;
	c->base = base;
	c->cb = cb;
	c->arg = arg;
	c->proto = conf->proto;
	c->helo = xstrdup(conf->helo != NULL && *conf->helo != '\0' &&
	    !smtpc_has_ctl(conf->helo) && strchr(conf->helo, ' ') == NULL ?
	    conf->helo : "localhost");
	c->sni = smtpc_sni(conf->peer_name);
	if (conf->addrlen > sizeof(c->addr))
		fatalx("smtpc_open: address too long");
	memcpy(&c->addr, conf->addr, conf->addrlen);
	c->addrlen = conf->addrlen;
	if (conf->bind != NULL) {
		if (conf->bindlen > sizeof(c->bindaddr))
			fatalx("smtpc_open: bind address too long");
		memcpy(&c->bindaddr, conf->bind, conf->bindlen);
		c->bindlen = conf->bindlen;
	}
	c->starttls = conf->starttls;
	if (conf->ssl_ctx != NULL && SSL_CTX_up_ref(conf->ssl_ctx) == 1)
		c->ssl_ctx = conf->ssl_ctx;
	c->t_connect = conf->timeout_connect ? conf->timeout_connect :
	    SMTPC_DEF_CONNECT;
	c->t_command = conf->timeout_command ? conf->timeout_command :
	    SMTPC_DEF_COMMAND;
	c->t_data = conf->timeout_data ? conf->timeout_data :
	    SMTPC_DEF_DATA;
	if (conf->auth_user != NULL && conf->auth_password != NULL) {
		c->auth_user = xstrdup(conf->auth_user);
		c->auth_password = xstrdup(conf->auth_password);
	}
	smtpc_format_peer(c, conf->peer_name);
	c->defer = event_new(base, -1, 0, smtpc_defercb, c);
	if (c->defer == NULL)
		fatalx("client: event_new failed");
	c->state = SMTPC_ST_CONNECT;
	c->io = io_connect(base, (const struct sockaddr *)&c->addr,
	    c->addrlen, conf->bind != NULL ?
	    (const struct sockaddr *)&c->bindaddr : NULL, c->bindlen,
	    c->t_connect, SMTPC_IN_MAX, smtpc_iocb, smtpc_connected, c);
	return c;
}

/* Refusals that need no round trip; 0, or -1 with *r set. */
static int
smtpc_check_msg(struct smtpc *c, const struct smtpc_msg *m,
    struct smtpc_reply *r)
{
	if (m->sender == NULL || smtpc_has_ctl(m->sender) ||
	    strlen(m->sender) > SMTPC_ADDR_MAX) {
		smtpc_reply_make(r, 553, "5.1.7", "invalid sender address");
		return -1;
	}
	if (m->smtputf8 && !(c->caps & SMTPC_CAP_SMTPUTF8)) {
		smtpc_reply_make(r, 553, "5.6.7", "message needs SMTPUTF8 "
		    "but %s does not offer SMTPUTF8", c->peer);
		return -1;
	}
	if (m->body == SMTPC_BODY_BINARYMIME &&
	    (c->caps & (SMTPC_CAP_BINARYMIME | SMTPC_CAP_CHUNKING)) !=
	    (SMTPC_CAP_BINARYMIME | SMTPC_CAP_CHUNKING)) {
		smtpc_reply_make(r, 554, "5.6.3", "message is BINARYMIME but "
		    "%s does not offer BINARYMIME with CHUNKING (not "
		    "converted)", c->peer);
		return -1;
	}
	/*
	 * RFC 6152 3: 8-bit content only to an 8BITMIME server. We do not
	 * convert to 7 bit: it would break DKIM signatures. A message that
	 * says BODY=8BITMIME but has only 7-bit content may go as it is.
	 */
	if (m->eight_bit && m->body != SMTPC_BODY_BINARYMIME &&
	    !(c->caps & SMTPC_CAP_8BITMIME)) {
		smtpc_reply_make(r, 554, "5.6.3", "message has 8-bit content "
		    "but %s does not offer 8BITMIME (not converted)",
		    c->peer);
		return -1;
	}
	/* RFC 5322 2.1.1, RFC 5321 4.5.3.1.6: we never rewrap lines. */
	if (m->body != SMTPC_BODY_BINARYMIME &&
	    m->longest_line > SMTPC_LINE_MAX) {
		smtpc_reply_make(r, 554, "5.6.0", "message has a line longer "
		    "than 998 octets");
		return -1;
	}
	/* RFC 1870 6: a message over the announced limit is refused. */
	if (c->max_size > 0 && m->size > c->max_size) {
		smtpc_reply_make(r, 552, "5.3.4", "message size %llu exceeds "
		    "the size limit %llu of %s", (unsigned long long)m->size,
		    (unsigned long long)c->max_size, c->peer);
		return -1;
	}
	return 0;
}

int
smtpc_send(struct smtpc *c, struct smtpc_msg *m)
{
	struct smtpc_reply r;
	size_t i, nvalid = 0;
	char esc[512];

	if (c->state != SMTPC_ST_IDLE || c->msg != NULL || c->nsig > 0) {
		errno = EBUSY;
		return -1;
	}
	if (m->nrcpts == 0 || m->rcpts == NULL || m->src.next == NULL) {
		errno = EINVAL;
		return -1;
	}
	free(c->rst);
	c->rst = xcalloc(m->nrcpts, 1);
	c->msg = m;
	c->wr_rcpt = c->naccepted = c->final_left = c->final_idx = 0;
	c->mail_sent = c->mail_failed = c->data_sent = false;
	c->eod_sent = c->last_sent = c->src_eof = false;
	c->src_p = NULL;
	c->src_len = 0;
	buf_reset(&c->chunk);
	m->status = SMTPC_OK;
	memset(&m->reply, 0, sizeof(m->reply));
	for (i = 0; i < m->nrcpts; i++) {
		struct smtpc_rcpt *rc = &m->rcpts[i];

		memset(&rc->reply, 0, sizeof(rc->reply));
		rc->status = SMTPC_TEMP;
		c->rst[i] = SMTPC_R_WAIT;
		if (rc->addr == NULL || smtpc_has_ctl(rc->addr) ||
		    strlen(rc->addr) > SMTPC_ADDR_MAX ||
		    (rc->orcpt != NULL && smtpc_has_ctl(rc->orcpt))) {
			rc->status = SMTPC_PERM;
			smtpc_reply_make(&rc->reply, 553, "5.1.3",
			    "invalid recipient address");
			c->rst[i] = SMTPC_R_FINAL;
		} else
			nvalid++;
	}
	if (smtpc_check_msg(c, m, &r) == -1) {
		log_info("client: refused conn=%llu peer=%s reply=\"%s\"",
		    (unsigned long long)c->id, c->peer,
		    smtpc_escape(esc, sizeof(esc), r.text));
		smtpc_rcpts_fail(c, smtpc_class(r.code), &r);
		smtpc_signal_later(c, SMTPC_DONE);
		return 0;
	}
	if (nvalid == 0) {
		m->status = SMTPC_PERM;
		m->reply = m->rcpts[0].reply;
		smtpc_signal_later(c, SMTPC_DONE);
		return 0;
	}
	smtpc_enter_state(c, SMTPC_ST_TXN);
	if (c->need_rset) {
		/* Alone, not pipelined: its failure ends the connection. */
		io_printf(c->io, "RSET\r\n");
		smtpc_push(c, SMTPC_CMD_RSET, 0);
	} else
		smtpc_txn_pump(c);
	smtpc_arm(c);
	return 0;
}

void
smtpc_quit(struct smtpc *c)
{
	struct smtpc_reply r;

	if (c->final_sent)
		return;
	switch (c->state) {
	case SMTPC_ST_IDLE:
		io_printf(c->io, "QUIT\r\n");
		smtpc_push(c, SMTPC_CMD_QUIT, 0);
		smtpc_enter_state(c, SMTPC_ST_QUIT);
		smtpc_arm(c);
		return;
	case SMTPC_ST_QUIT:
		if (!c->quit_fail)
			return;
		c->quit_fail = false;	/* a failed set-up: CLOSED only */
		break;
	case SMTPC_ST_TXN:
	case SMTPC_ST_BODY:
	case SMTPC_ST_BDAT:
	case SMTPC_ST_FINAL:
		smtpc_reply_make(&r, 451, "4.3.0", "delivery to %s aborted",
		    c->peer);
		smtpc_rcpts_fail(c, SMTPC_TEMP, &r);
		c->msg = NULL;		/* no SMTPC_DONE */
		break;
	default:
		break;
	}
	smtpc_close(c);
	smtpc_signal_later(c, SMTPC_CLOSED);
}

void
smtpc_free(struct smtpc *c)
{
	if (c == NULL)
		return;
	io_free(c->io);
	event_free(c->defer);
	if (c->ssl_ctx != NULL)
		SSL_CTX_free(c->ssl_ctx);
	buf_free(&c->chunk);
	free(c->stage);
	free(c->rst);
	free(c->helo);
	free(c->sni);
	smtpc_wipe_password(c);
	free(c->auth_user);
	free(c);
}

const struct smtpc_reply *
smtpc_last_error(const struct smtpc *c)
{
	return &c->err;
}

enum smtpc_status
smtpc_failure_status(const struct smtpc *c)
{
	return c->fail_status;
}

bool
smtpc_auth_refused(const struct smtpc *c)
{
	return c->auth_refused;
}

bool
smtpc_authenticated(const struct smtpc *c)
{
	return c->authenticated;
}

bool
smtpc_tls_failed(const struct smtpc *c)
{
	return c->tls_failed;
}

const char *
smtpc_tls_info(const struct smtpc *c)
{
	return c->tls ? c->tls_info : NULL;
}

bool
smtpc_reusable(const struct smtpc *c)
{
	return c->state == SMTPC_ST_IDLE && c->io != NULL && !c->final_sent;
}

unsigned int
smtpc_caps(const struct smtpc *c)
{
	return c->caps;
}

uint64_t
smtpc_max_size(const struct smtpc *c)
{
	return c->max_size;
}

const char *
smtpc_peer(const struct smtpc *c)
{
	return c->peer;
}

SSL_CTX *
smtpc_ssl_ctx_new(char *err, size_t errlen)
{
	SSL_CTX *ctx;
	uint64_t opts = SSL_OP_NO_COMPRESSION;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		goto fail;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
		goto fail;
	/* RFC 7435: opportunistic, unauthenticated. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
#ifdef SSL_OP_NO_RENEGOTIATION
	opts |= SSL_OP_NO_RENEGOTIATION;
#endif
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* Many servers close without close_notify after QUIT. */
	opts |= SSL_OP_IGNORE_UNEXPECTED_EOF;
#endif
	SSL_CTX_set_options(ctx, opts);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;

fail:
	snprintf(err, errlen, "client TLS context: %s",
	    ERR_reason_error_string(ERR_peek_last_error()) != NULL ?
	    ERR_reason_error_string(ERR_peek_last_error()) : "failed");
	SSL_CTX_free(ctx);
	return NULL;
}
