/*
 * session.c: one SMTP session, the RFC 5321 state machine.
 *
 * Entry points: smtp_session_start (from the listener), the io callback,
 * smtp_session_shutdown. Commands are dispatched from one table; the
 * dispatcher does every generic check in a fixed order (line length, bare
 * CR/LF and NUL, error count, unknown verb, state, arguments) so handlers
 * hold only what is specific to their command.
 *
 * Message content comes by DATA (dot-stuffed, ended by CRLF.CRLF) or by
 * BDAT chunks (RFC 3030: each chunk is exactly the announced number of
 * octets); both stream through the same path into the spool writer, with
 * the same Received: header, size, header-size and hop checks, and the
 * same commit.
 *
 * SECURITY: parses untrusted input from the network, with the daemon's
 * unprivileged user. Every line, recipient count, message size, header size
 * and session time has a limit. The session never writes files itself: the
 * message goes to the spool writer, and the 250 after DATA or BDAT LAST is
 * sent only from the spool's "durable" callback. BDAT octets are never
 * read as commands: a chunk that is refused is still read to its end and
 * discarded, and a BDAT whose size cannot be parsed closes the session.
 * STANDARDS: RFC 5321 (3, 4.1, 4.2, 4.4, 4.5.3), RFC 2920 (PIPELINING),
 * RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 2034 (ENHANCEDSTATUSCODES),
 * RFC 6531 (SMTPUTF8), RFC 3848 (with keywords), RFC 3030 (CHUNKING,
 * BINARYMIME), RFC 3461 (DSN: parameters advertised, parsed and queued).
 * Local sessions (role local, issue 6: the RUN_DIR/sendmail socket and
 * maildrop pickup, local.c) relay like trusted clients, offer neither TLS
 * nor AUTH, skip greeting_delay and SPF/DKIM/DMARC, add Date and
 * Message-ID, name the caller's uid in Received:, and mark a sender that
 * is not the caller's own login@hostname with X-Authentication-Warning.
 * OWNERSHIP: the session owns its io, its transaction (envelope, spool
 * writer) and a reference to the runtime configuration it started with.
 */
#include "smtp/smtp.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/workq.h"
#include "mailaddr/hdraddr.h"
#include "msgauth/authres.h"
#include "msgauth/check.h"

#include "io/io.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/strset.h"
#include "lib/util.h"
#include "policy/policy.h"
#include "queue/dsn.h"		/* dsn_find_msgid: issue 6 log */
#include "queue/spool.h"
#include "sasl/dovecot.h"
#include "sasl/sasl.h"
#include "tls/tls.h"
#include "smtp/data.h"
#include "smtp/metrics.h"
#include "smtp/parse.h"
#include "smtp/reply.h"
#include "smtp/smtp_private.h"

#define SMTP_IN_MAX		(256 * 1024)	/* read watermark */
#define SMTP_DATA_FEED_MAX	(64 * 1024)	/* input per data_feed */
#define SMTP_DATA_CHUNK_MAX	(256 * 1024)	/* >= 2x feed: normalize */
#define SMTP_CLOSE_TIMEOUT	10		/* seconds to flush a reply */
#define SMTP_OUT_MAX		(64 * 1024)	/* replies not yet read */
/*
 * NOOP, RSET, VRFY, HELP and EXPN a session may send between two messages
 * before each one counts as an error (Postfix's smtpd_junk_command_limit):
 * without it a client could hold a connection slot forever.
 */
#define SMTP_JUNK_MAX		100
#define SMTP_LOG_ERRORS_MAX	20	/* error replies logged per session */
/*
 * Message bytes the spool threads may owe one session before it stops
 * reading from the client, and the level at which it starts again.
 */
#define SMTP_SPOOL_LAG_MAX	(1024 * 1024)
#define SMTP_SPOOL_LAG_LOW	(256 * 1024)
/*
 * Final recipients of one transaction after alias expansion. max_recipients
 * counts RCPT commands; one RCPT may name a list of POLICY_MAX_TARGETS.
 */
#define SMTP_TXN_TARGETS_MAX	10000
/* The From: header values kept for sender_login (octets, unfolded). */
#define SMTP_FROM_MAX		8192
/* The longest line read: an AUTH command with its initial response. */
#define SMTP_READ_MAX		(SASL_LINE_MAX + 2)

enum smtp_state {
	SMTP_STATE_GREETING,	/* connected, 220 not yet sent */
	SMTP_STATE_INIT,	/* 220 sent, no HELO/EHLO yet */
	SMTP_STATE_HELO,	/* HELO/EHLO done, no transaction */
	SMTP_STATE_MAIL,	/* MAIL accepted */
	SMTP_STATE_RCPT,	/* at least one RCPT accepted */
	SMTP_STATE_OPEN,	/* DATA/first BDAT: waiting for the spool file */
	SMTP_STATE_DATA,	/* reading message content */
	SMTP_STATE_COMMIT,	/* waiting for the spool to make it durable */
	SMTP_STATE_QUIT,	/* flushing the last reply, then close */
	SMTP_STATE_BDAT,	/* reading (or discarding) a BDAT chunk */
	SMTP_STATE_CHUNKING,	/* between the chunks of a BDAT message */
	SMTP_STATE_TLS,		/* TLS handshake (STARTTLS or port 465) */
	SMTP_STATE_AUTH,	/* reading SASL responses after 334 */
	SMTP_STATE_AUTHWAIT,	/* checking credentials, or the failure
				 * delay: nothing is read */
	SMTP_STATE_MAILWAIT,	/* MAIL waits for SPF (spf_reject): nothing
				 * is read */
};

static const char *const smtp_state_names[] = {
	"GREETING", "INIT", "HELO", "MAIL", "RCPT", "OPEN", "DATA", "COMMIT",
	"QUIT", "BDAT", "CHUNKING", "TLS", "AUTH", "AUTHWAIT", "MAILWAIT",
};

#define ST(x)		(1u << SMTP_STATE_##x)
#define ST_SESSION	(ST(INIT) | ST(HELO) | ST(MAIL) | ST(RCPT) | \
			    ST(CHUNKING))

/* Command flags. */
#define CMD_NOARGS	0x01	/* arguments are a 501 */
#define CMD_NEEDARGS	0x02	/* no arguments is a 501 */
#define CMD_JUNK	0x04	/* counts toward SMTP_JUNK_MAX */

/* Why a transaction failed while its DATA was read. */
enum smtp_txn_fail {
	TXN_OK = 0,
	TXN_SPOOL,
};

struct smtp_txn {
	struct envelope env;
	struct strset targets;		/* final addresses in env, once each */
	struct strset resolved;		/* local RCPT addresses looked up */
	struct spool_writer *writer;
	char id[QUEUE_ID_MAX];
	unsigned int rcpt_accepted;	/* RCPT commands that got 250 */
	unsigned int rcpt_refused;
	bool smtputf8;
	bool failed;			/* a spool write failed */
	int write_errno;

	/* BDAT (RFC 3030) */
	bool bdat;			/* content comes by BDAT: no DATA */
	bool binary;			/* BODY=BINARYMIME: stored unchecked */
	uint64_t bdat_size;		/* octets announced by its chunks */
	uint64_t bdat_start;		/* time_mono_usec() of the first */

	/* header accounting while DATA streams */
	bool in_headers;
	bool line_start;
	char hline[12];
	size_t hlen;
	uint64_t header_size;
	unsigned int hops;
	bool has_date;			/* a Date: header was seen */
	bool has_msgid;			/* a Message-ID: header was seen */
	char msgid[256];		/* issue 6: its "<...>", for the log */
	bool add_headers;		/* submission: add Date/Message-ID */
	char *warn_sender;		/* local: MAIL FROM not the user's own:
					 * X-Authentication-Warning */
	/*
	 * sender_login: the From: headers, unfolded values one after the
	 * other (from_count of them), kept while in_from.
	 */
	bool want_from;
	/* SPF, DKIM and DMARC on this message, or NULL (not checked). */
	struct msgauth_check *auth;
	/* DKIM signing of submitted or trusted mail, or NULL. */
	struct dkim_stream *sign;
	/*
	 * The header section, held until it ends so that forged
	 * Authentication-Results fields can be left out (RFC 8601 5); at most
	 * max_header_size octets (a larger one fails the message anyway).
	 */
	struct buf hdr;
	bool in_from;
	bool from_overflow;		/* longer than SMTP_FROM_MAX */
	unsigned int from_count;
	struct buf from;
};

struct smtp_session {
	struct smtp_session *next;	/* server bucket chain */
	struct smtp_server *srv;
	struct smtp_runtime *rt;
	uint64_t id;
	struct io *io;
	enum smtp_state state;
	struct conf_listen listener;

	struct sockaddr_storage peer;
	char addr[64];			/* client address, numeric */
	char helo[SMTP_DOMAIN_MAX + 1];
	bool esmtp;			/* EHLO (PIPELINING offered) */
	bool skipping;			/* discarding an over-long line */
	bool skip_quiet;		/* ... already answered */
	bool skip_auth;			/* ... an AUTH line: 500 5.5.6 */
	bool closing;			/* shutdown: close after this txn */
	bool busy;			/* in smtp_session_process */
	bool destroyed;
	bool out_blocked;		/* reading stopped: client lags */
	bool eof;			/* the client closed its side */
	bool spool_blocked;		/* reading stopped: the spool lags */
	unsigned int errors;
	unsigned int junk;		/* junk commands since the last 250 */
	unsigned int logged_errors;	/* error replies seen by the log */
	struct event *greet_ev;

	struct smtp_txn txn;
	struct smtp_data data;
	struct buf chunk;

	/*
	 * The BDAT chunk being read (state BDAT). With refuse set, its octets
	 * are discarded and refuse is the reply once they are read; the
	 * session then returns to resume.
	 */
	uint64_t chunk_size;
	uint64_t chunk_left;
	bool chunk_last;
	enum reply_id chunk_refuse;
	enum smtp_state chunk_resume;
	bool bdat_refused;		/* the last command was a refused BDAT */

	/* TLS */
	bool tls;			/* the handshake completed */
	enum reply_id tls_refuse;	/* port 465: the reply after it */
	char tls_info[96];		/* "TLSv1.3 TLS_AES_256_GCM_SHA384" */

	/* SMTP AUTH (RFC 4954) */
	char *auth_user;		/* authenticated as, or NULL */
	char auth_mech[16];
	struct sasl_exchange *sasl;	/* the exchange under way */
	uint64_t auth_job;		/* verifier or Dovecot request id */
	struct sasl_dovecot *auth_dovecot;	/* which client has it */
	struct event *auth_ev;		/* the failure delay */
	unsigned int auth_failures;	/* failed AUTH in this session */
	bool auth_close;		/* 421 after the delayed 535 */

	/* Local injection (role local, issue 6): who the caller is. */
	bool local;
	uid_t local_uid;		/* SO_PEERCRED, or the maildrop
					 * file's owner */
	char local_user[64];		/* login name, "" if none */
};

struct smtp_cmd_def {
	const char *name;
	enum smtp_cmd_id id;
	unsigned int states;
	unsigned int flags;
	void (*handler)(struct smtp_session *, const char *);
};

/* A commit in flight: outlives the session if the client goes away. */
struct smtp_commit {
	struct smtp_server *srv;
	struct envelope env;
	uint64_t size;			/* issue 6: for the log */
	char msgid[256];
};

static void smtp_cmd_helo(struct smtp_session *, const char *);
static void smtp_cmd_ehlo(struct smtp_session *, const char *);
static void smtp_cmd_mail(struct smtp_session *, const char *);
static void smtp_cmd_rcpt(struct smtp_session *, const char *);
static void smtp_cmd_data(struct smtp_session *, const char *);
static void smtp_cmd_bdat(struct smtp_session *, const char *);
static void smtp_cmd_rset(struct smtp_session *, const char *);
static void smtp_cmd_noop(struct smtp_session *, const char *);
static void smtp_cmd_quit(struct smtp_session *, const char *);
static void smtp_cmd_vrfy(struct smtp_session *, const char *);
static void smtp_cmd_help(struct smtp_session *, const char *);
static void smtp_cmd_notimpl(struct smtp_session *, const char *);
static void smtp_cmd_starttls(struct smtp_session *, const char *);
static void smtp_cmd_auth(struct smtp_session *, const char *);

static const struct smtp_cmd_def smtp_cmds[] = {
	{ "HELO", SMTP_CMD_HELO, ST_SESSION, CMD_NEEDARGS, smtp_cmd_helo },
	{ "EHLO", SMTP_CMD_EHLO, ST_SESSION, CMD_NEEDARGS, smtp_cmd_ehlo },
	{ "MAIL", SMTP_CMD_MAIL, ST(HELO), CMD_NEEDARGS, smtp_cmd_mail },
	{ "RCPT", SMTP_CMD_RCPT, ST(MAIL) | ST(RCPT), CMD_NEEDARGS,
	    smtp_cmd_rcpt },
	{ "DATA", SMTP_CMD_DATA, ST(RCPT), CMD_NOARGS, smtp_cmd_data },
	{ "RSET", SMTP_CMD_RSET, ST_SESSION, CMD_NOARGS | CMD_JUNK, smtp_cmd_rset },
	{ "NOOP", SMTP_CMD_NOOP, ST_SESSION, CMD_JUNK, smtp_cmd_noop },
	{ "QUIT", SMTP_CMD_QUIT, ST_SESSION, CMD_NOARGS, smtp_cmd_quit },
	{ "VRFY", SMTP_CMD_VRFY, ST_SESSION, CMD_NEEDARGS | CMD_JUNK, smtp_cmd_vrfy },
	{ "HELP", SMTP_CMD_HELP, ST_SESSION, CMD_JUNK, smtp_cmd_help },
	{ "EXPN", SMTP_CMD_EXPN, ST_SESSION, CMD_JUNK, smtp_cmd_notimpl },
	{ "STARTTLS", SMTP_CMD_STARTTLS, ST(HELO), CMD_NOARGS,
	    smtp_cmd_starttls },
	{ "AUTH", SMTP_CMD_AUTH, ST(HELO), CMD_NEEDARGS, smtp_cmd_auth },
	/* Every state that reads commands: a refused chunk is still read. */
	{ "BDAT", SMTP_CMD_BDAT, ST_SESSION, 0, smtp_cmd_bdat },
};

static void smtp_session_iocb(struct io *, enum io_event, void *);
static void smtp_session_begin(struct smtp_session *, enum reply_id);
static int smtp_tls_start(struct smtp_session *, SSL *);
static void smtp_auth_cancel(struct smtp_session *);
static char *smtp_log_user(char *, size_t, const char *);
static int smtp_read_auth_line(struct smtp_session *);
static bool smtp_sender_owned(const struct smtp_session *, const char *,
    const char *);
static void smtp_session_process(struct smtp_session *);
static void smtp_session_close(struct smtp_session *);
static bool smtp_is_header_safe(const char *);
static void smtp_local_sender_check(struct smtp_session *,
    const struct smtp_address *);

/* ---- small helpers ---- */

static const struct conf *
smtp_conf(const struct smtp_session *s)
{
	return s->rt->conf;
}

static void
smtp_session_enter_state(struct smtp_session *s, enum smtp_state st)
{
	if (s->state == st)
		return;
	log_debug("smtp: session=%016llx state %s -> %s",
	    (unsigned long long)s->id, smtp_state_names[s->state],
	    smtp_state_names[st]);
	s->state = st;
}

/*
 * Send a reply from the table. arg replaces a "%s" in the text (the texts
 * are fixed strings, so no printf format ever comes from the network).
 */
/*
 * Send one reply line and account for it: error replies count toward
 * max_errors (unless counted is false) and the first few are logged.
 */
static void
smtp_reply_line(struct smtp_session *s, int code, const char *enhanced,
    const char *text, bool counted, bool logged)
{
	int r;

	/*
	 * The reply is queued, never written here: smtp_session_close()
	 * relies on it to keep s alive for the callers of smtp_reply(). Only
	 * a failed allocation can stop it, and that ends the daemon, as
	 * xmalloc() does.
	 */
	if (enhanced != NULL)
		r = io_printf(s->io, "%d %s %s\r\n", code, enhanced, text);
	else
		r = io_printf(s->io, "%d %s\r\n", code, text);
	if (r == -1)
		fatalx("smtp: out of memory queueing a reply");
	if (code >= 400 && counted)
		s->errors++;
	/*
	 * Log error replies, but only the first few of a session: a client
	 * must not be able to turn each bad command into a log line (the
	 * disconnect line carries the total).
	 */
	if (code >= 400 && logged) {
		if (++s->logged_errors <= SMTP_LOG_ERRORS_MAX)
			log_info("smtp: session=%016llx client=%s "
			    "reply=\"%d %s\"", (unsigned long long)s->id,
			    s->addr, code, enhanced != NULL ? enhanced : "");
		else if (s->logged_errors == SMTP_LOG_ERRORS_MAX + 1)
			log_info("smtp: session=%016llx client=%s: further "
			    "error replies are not logged",
			    (unsigned long long)s->id, s->addr);
	}
}

static void
smtp_reply(struct smtp_session *s, enum reply_id id, const char *arg)
{
	const struct reply *r = reply_get(id);
	const char *p = strstr(r->text, "%s");
	char text[600];

	smtp_metrics_reply(s->listener.role, id);	/* issue 6: metrics */
	if (p != NULL)
		snprintf(text, sizeof(text), "%.*s%s%s", (int)(p - r->text),
		    r->text, arg != NULL ? arg : "", p + 2);
	else
		strlcpy(text, r->text, sizeof(text));
	/*
	 * RFC 3030 2: after a refused chunk a client "MUST NOT send any
	 * additional BDAT segments", but those already pipelined arrive and
	 * get REPLY_BDAT_DISCARDED: counted as junk (smtp_cmd_bdat), not as
	 * errors, so a long pipeline does not end in 421.
	 */
	smtp_reply_line(s, r->code, r->enhanced, text,
	    id != REPLY_TOO_MANY_RCPTS && id != REPLY_BDAT_DISCARDED &&
	    id != REPLY_AUTH_TEMPFAIL, id != REPLY_UNKNOWN_USER);
	if (reply_closes(id))
		smtp_session_close(s);
}

static void
smtp_txn_reset(struct smtp_session *s)
{
	if (s->txn.writer != NULL)
		spool_writer_abort(s->txn.writer);
	msgauth_free(s->txn.auth);
	dkim_stream_free(s->txn.sign);
	envelope_free(&s->txn.env);
	strset_free(&s->txn.targets);
	strset_free(&s->txn.resolved);
	buf_free(&s->txn.from);
	buf_free(&s->txn.hdr);
	free(s->txn.warn_sender);
	memset(&s->txn, 0, sizeof(s->txn));
	envelope_init(&s->txn.env);
	strset_init(&s->txn.targets);
	strset_init(&s->txn.resolved);
	buf_init(&s->txn.from, SMTP_FROM_MAX);
}

/*
 * Whole seconds left of timeout_data for the BDAT message under way: it
 * bounds the message from its first chunk, the waits between chunks
 * included (as the 354 deadline bounds DATA), so a client that sends
 * small chunks within timeout_command cannot stretch it.
 */
static unsigned int
smtp_bdat_time_left(const struct smtp_session *s)
{
	uint64_t limit = smtp_conf(s)->timeout_data, spent;

	spent = (time_mono_usec() - s->txn.bdat_start) / 1000000;
	return spent < limit ? (unsigned int)(limit - spent) : 0;
}

static void
smtp_wait_command(struct smtp_session *s)
{
	unsigned int t = (unsigned int)smtp_conf(s)->timeout_command, left;

	if (s->state == SMTP_STATE_CHUNKING &&
	    (left = smtp_bdat_time_left(s)) < t)
		t = left > 0 ? left : 1;
	io_set_deadline(s->io, t);
}

/* ---- lifecycle ---- */

uint64_t
smtp_session_id(const struct smtp_session *s)
{
	return s->id;
}

struct smtp_session *
smtp_session_next(struct smtp_session *s)
{
	return s->next;
}

void
smtp_session_set_next(struct smtp_session *s, struct smtp_session *n)
{
	s->next = n;
}

const char *
smtp_session_addr(const struct smtp_session *s)
{
	return s->addr;
}

static void
smtp_session_greet(struct smtp_session *s)
{
	smtp_session_enter_state(s, SMTP_STATE_INIT);
	smtp_reply(s, REPLY_GREETING, smtp_conf(s)->hostname);
	/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): s not freed */
	smtp_wait_command(s);
}

static void
smtp_session_greetcb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	(void)fd;
	(void)what;
	/* RFC 5321 4.3.1: a client waits for the greeting. One that spoke
	 * first is a spam engine that does not read replies. */
	if (io_in_len(s->io) > 0) {
		smtp_reply(s, REPLY_EARLY_TALKER, NULL);
		return;
	}
	smtp_session_greet(s);
}

/* A new session on fd, registered; the caller logs and greets. */
static struct smtp_session *
smtp_session_new(struct smtp_server *srv, int fd, const struct sockaddr *sa,
    socklen_t salen, const struct conf_listen *l)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	const void *src = NULL;
	int family = sa->sa_family;

	s->srv = srv;
	if (salen <= sizeof(s->peer))
		memcpy(&s->peer, sa, salen);
	s->rt = smtp_runtime_ref(srv->rt);
	s->id = srv->next_id++;
	s->listener = *l;
	smtp_metrics_connection(l->role);	/* issue 6: metrics */
	if (family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		src = &s6->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			src = &s6->sin6_addr.s6_addr[12];
			family = AF_INET;
		}
	} else if (family == AF_INET)
		src = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	if (src == NULL || inet_ntop(family, src, s->addr,
	    sizeof(s->addr)) == NULL)
		strlcpy(s->addr, "unknown", sizeof(s->addr));
	envelope_init(&s->txn.env);
	strset_init(&s->txn.targets);
	strset_init(&s->txn.resolved);
	buf_init(&s->txn.from, SMTP_FROM_MAX);
	buf_init(&s->chunk, SMTP_DATA_CHUNK_MAX);
	s->io = io_new(srv->base, fd, SMTP_IN_MAX, smtp_session_iocb, s);
	if (l->role == CONF_ROLE_LOCAL) {
		s->local = true;
		strlcpy(s->addr, "local", sizeof(s->addr));
	}
	smtp_server_register(srv, s);
	return s;
}

void
smtp_session_start(struct smtp_server *srv, int fd, const struct sockaddr *sa,
    socklen_t salen, const struct conf_listen *l, enum reply_id refuse)
{
	struct smtp_session *s = smtp_session_new(srv, fd, sa, salen, l);

	log_info("smtp: connect session=%016llx client=%s listener=%s",
	    (unsigned long long)s->id, s->addr, l->text);

	if (l->role == CONF_ROLE_SUBMISSIONS) {
		/* RFC 8314 3.3: TLS first, then the greeting (or refusal). */
		s->tls_refuse = refuse;
		if (smtp_tls_start(s, NULL) == -1) {
			log_warn("smtp: session=%016llx client=%s: cannot "
			    "start TLS; closing", (unsigned long long)s->id,
			    s->addr);
			smtp_session_destroy(s);
		}
		return;
	}
	smtp_session_begin(s, refuse);
}

/*
 * A local session (the sendmail socket or maildrop pickup) for uid, whose
 * login name is user (NULL: none). Relay is allowed, as for trusted
 * clients; no TLS, no AUTH, no greeting delay.
 */
void
smtp_session_start_local(struct smtp_server *srv, int fd, uid_t uid,
    const char *user, const char *via, enum reply_id refuse)
{
	struct conf_listen l;
	struct sockaddr_storage ss;
	struct smtp_session *s;
	char esc[100];

	memset(&l, 0, sizeof(l));
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	l.role = CONF_ROLE_LOCAL;
	strlcpy(l.text, via, sizeof(l.text));
	strlcpy(l.host, "local", sizeof(l.host));
	s = smtp_session_new(srv, fd, (const struct sockaddr *)&ss,
	    sizeof(ss), &l);
	s->local_uid = uid;
	if (user != NULL)
		strlcpy(s->local_user, user, sizeof(s->local_user));
	log_info("smtp: connect session=%016llx client=local listener=%s "
	    "uid=%u user=%s", (unsigned long long)s->id, via,
	    (unsigned int)uid, s->local_user[0] != '\0' ?
	    log_escape(esc, sizeof(esc), s->local_user,
	    strlen(s->local_user)) : "unknown");
	smtp_session_begin(s, refuse);
}

/* The greeting (after greeting_delay), or the refusal. */
static void
smtp_session_begin(struct smtp_session *s, enum reply_id refuse)
{
	uint64_t delay;

	if (refuse != REPLY_NONE) {
		smtp_reply(s, refuse, smtp_conf(s)->hostname);
		return;
	}
	delay = s->local ? 0 : smtp_conf(s)->greeting_delay;
	if (delay > 0) {
		struct timeval tv = { .tv_sec = (time_t)delay };

		smtp_session_enter_state(s, SMTP_STATE_GREETING);
		s->greet_ev = evtimer_new(s->srv->base, smtp_session_greetcb,
		    s);
		evtimer_add(s->greet_ev, &tv);
		return;
	}
	smtp_session_greet(s);
}

/* ---- TLS ---- */

static void
smtp_tls_done(struct io *io, int error, void *arg)
{
	struct smtp_session *s = arg;
	char proto[32], *cipher;

	smtp_metrics_tls(error == 0);	/* issue 6: metrics */
	if (error != 0) {
		char esc[200];
		const char *why = io_tls_error(io);

		log_info("smtp: TLS handshake failed session=%016llx "
		    "client=%s error=\"%s\"", (unsigned long long)s->id,
		    s->addr, log_escape(esc, sizeof(esc), why, strlen(why)));
		smtp_session_destroy(s);
		return;
	}
	s->tls = true;
	io_tls_info(io, s->tls_info, sizeof(s->tls_info));
	strlcpy(proto, s->tls_info, sizeof(proto));
	if ((cipher = strchr(proto, ' ')) != NULL)
		*cipher++ = '\0';
	log_info("smtp: tls session=%016llx client=%s protocol=%s cipher=%s",
	    (unsigned long long)s->id, s->addr, proto,
	    s->tls_info + (cipher != NULL ? (size_t)(cipher - proto) : 0));
	if (s->listener.role == CONF_ROLE_SUBMISSIONS) {
		/* Port 465: the session begins now (STARTTLS is refused
		 * there, so this runs once). */
		smtp_session_begin(s, s->tls_refuse);
		return;
	}
	/*
	 * RFC 3207 4.2: discard everything learned from the client before
	 * the handshake; the session starts again from EHLO.
	 */
	smtp_txn_reset(s);
	s->helo[0] = '\0';
	s->esmtp = false;
	free(s->auth_user);		/* an AUTH before TLS (auth_plaintext) */
	s->auth_user = NULL;
	smtp_session_enter_state(s, SMTP_STATE_INIT);
	smtp_wait_command(s);
	if (io_in_len(s->io) > 0)
		io_reschedule(s->io);
}

/*
 * Start the server side of a TLS handshake with ssl, or with a new one
 * when ssl is NULL. Returns -1 (nothing changed, ssl freed) when there is
 * no TLS server or OpenSSL cannot make the connection.
 */
static int
smtp_tls_start(struct smtp_session *s, SSL *ssl)
{
	if (ssl == NULL && (s->rt->tls == NULL ||
	    (ssl = tls_server_ssl_new(s->rt->tls)) == NULL))
		return -1;
	if (io_tls_server(s->io, ssl, smtp_tls_done) == -1)
		return -1;	/* io_tls_server freed ssl */
	smtp_session_enter_state(s, SMTP_STATE_TLS);
	io_set_deadline(s->io, (unsigned int)smtp_conf(s)->timeout_command);
	return 0;
}

void
smtp_session_destroy(struct smtp_session *s)
{
	if (s->busy) {
		/* Inside process(): it frees us when it unwinds. */
		s->destroyed = true;
		return;
	}
	log_info("smtp: disconnect session=%016llx client=%s errors=%u "
	    "error_replies=%u", (unsigned long long)s->id, s->addr, s->errors,
	    s->logged_errors);
	smtp_server_unregister(s->srv, s);
	if (s->greet_ev != NULL)
		event_free(s->greet_ev);
	smtp_auth_cancel(s);
	free(s->auth_user);
	smtp_txn_reset(s);
	envelope_free(&s->txn.env);
	buf_free(&s->txn.from);
	buf_free(&s->txn.hdr);
	buf_free(&s->chunk);
	io_free(s->io);
	smtp_runtime_unref(s->rt);
	free(s);
}

/*
 * Close once every queued reply byte has been written. After a reply
 * (smtp_reply() with a closing reply) there always are such bytes, so s is
 * not freed here but later, from the io callback: the callers of
 * smtp_reply() go on using s. clang-tidy cannot see that the output
 * buffer is not empty and reports a use after free at each such caller,
 * each marked NOLINTNEXTLINE(clang-analyzer-unix.Malloc): s not freed.
 */
static void
smtp_session_close(struct smtp_session *s)
{
	smtp_session_enter_state(s, SMTP_STATE_QUIT);
	if (s->greet_ev != NULL)
		evtimer_del(s->greet_ev);
	smtp_auth_cancel(s);		/* no result, no delayed 535 */
	io_pause_read(s->io);
	io_finish(s->io);		/* TLS: close_notify after the reply */
	io_set_deadline(s->io, SMTP_CLOSE_TIMEOUT);
	if (io_out_len(s->io) == 0)
		smtp_session_destroy(s);
}

void
smtp_session_shutdown(struct smtp_session *s)
{
	switch (s->state) {
	case SMTP_STATE_OPEN:
	case SMTP_STATE_DATA:
	case SMTP_STATE_BDAT:
	case SMTP_STATE_COMMIT:
		/* Let the message (or chunk) finish; 421 after its reply.
		 * Between chunks (CHUNKING) the 421 goes out at once: the
		 * message is not complete, and nothing was acknowledged. */
		s->closing = true;
		break;
	case SMTP_STATE_QUIT:
		break;
	case SMTP_STATE_TLS:
		/* No plaintext reply into a handshake. */
		smtp_session_destroy(s);
		break;
	default:
		smtp_reply(s, REPLY_SHUTDOWN, smtp_conf(s)->hostname);
		break;
	}
}

static void
smtp_session_iocb(struct io *io, enum io_event ev, void *arg)
{
	struct smtp_session *s = arg;

	(void)io;
	switch (ev) {
	case IO_DATAIN:
		if (s->state == SMTP_STATE_GREETING) {
			/* Talking before the greeting: refuse at once. */
			evtimer_del(s->greet_ev);
			smtp_reply(s, REPLY_EARLY_TALKER, NULL);
			return;
		}
		smtp_session_process(s);
		break;
	case IO_LOWAT:
		if (s->state == SMTP_STATE_QUIT) {
			smtp_session_destroy(s);
			break;
		}
		if (s->out_blocked) {
			s->out_blocked = false;
			io_resume_read(s->io);
			if (io_in_len(s->io) > 0)
				io_reschedule(s->io);
		}
		break;
	case IO_TIMEOUT:
		if (s->state == SMTP_STATE_QUIT) {
			smtp_session_destroy(s);
			break;
		}
		log_info("smtp: timeout session=%016llx client=%s state=%s",
		    (unsigned long long)s->id, s->addr,
		    smtp_state_names[s->state]);
		if (s->state == SMTP_STATE_COMMIT ||
		    s->state == SMTP_STATE_OPEN ||
		    s->state == SMTP_STATE_AUTHWAIT ||
		    s->state == SMTP_STATE_MAILWAIT)
			break;		/* we answer; not the client */
		if (s->state == SMTP_STATE_TLS) {
			/* No plaintext reply into a handshake. */
			smtp_session_destroy(s);
			break;
		}
		smtp_reply(s, REPLY_TIMEOUT, smtp_conf(s)->hostname);
		break;
	case IO_DISCONNECTED:
		/*
		 * The client may have closed only its sending side after
		 * pipelining its last commands (QUIT after the final dot):
		 * finish what it sent and flush the replies first.
		 */
		if (s->state != SMTP_STATE_DATA &&
		    s->state != SMTP_STATE_BDAT &&
		    s->state != SMTP_STATE_QUIT &&
		    s->state != SMTP_STATE_GREETING) {
			s->eof = true;
			smtp_session_process(s);
			break;
		}
		/* FALLTHROUGH */
	case IO_ERROR:
		if (s->state == SMTP_STATE_DATA ||
		    s->state == SMTP_STATE_BDAT ||
		    s->state == SMTP_STATE_CHUNKING)
			log_info("smtp: client went away in %s "
			    "session=%016llx client=%s: message discarded",
			    smtp_state_names[s->state],
			    (unsigned long long)s->id, s->addr);
		smtp_session_destroy(s);
		break;
	}
}

/* ---- command reading and dispatch ---- */

static const struct smtp_cmd_def *
smtp_cmd_find(enum smtp_cmd_id id)
{
	size_t i;

	for (i = 0; i < nitems(smtp_cmds); i++)
		if (smtp_cmds[i].id == id)
			return &smtp_cmds[i];
	return NULL;
}

/* The reply for a command that is valid but not in this state. */
static enum reply_id
smtp_bad_state_reply(const struct smtp_session *s, enum smtp_cmd_id id)
{
	switch (id) {
	case SMTP_CMD_MAIL:
		if (s->state == SMTP_STATE_INIT)
			return REPLY_NEED_HELO;
		return REPLY_NESTED_MAIL;
	case SMTP_CMD_RCPT:
		if (s->state == SMTP_STATE_CHUNKING)
			return REPLY_RCPT_AFTER_BDAT;
		return REPLY_NEED_MAIL;
	case SMTP_CMD_DATA:
		if (s->state == SMTP_STATE_MAIL)
			return s->txn.rcpt_refused > 0 ? REPLY_NO_VALID_RCPTS :
			    REPLY_NEED_RCPT;
		if (s->state == SMTP_STATE_CHUNKING)
			return REPLY_DATA_AFTER_BDAT;	/* RFC 3030 2 */
		return REPLY_NEED_MAIL;
	case SMTP_CMD_STARTTLS:
	case SMTP_CMD_AUTH:
		if (s->state == SMTP_STATE_INIT)
			return REPLY_NEED_HELO;
		return REPLY_IN_TXN;
	default:
		return REPLY_NEED_HELO;
	}
}

static void
smtp_dispatch(struct smtp_session *s, const char *line)
{
	struct smtp_command cmd;
	const struct smtp_cmd_def *def;

	if (s->errors >= smtp_conf(s)->max_errors) {
		smtp_reply(s, REPLY_TOO_MANY_ERRORS, smtp_conf(s)->hostname);
		return;
	}
	smtp_parse_command(line, &cmd);
	if (cmd.id != SMTP_CMD_BDAT)
		s->bdat_refused = false;
	def = smtp_cmd_find(cmd.id);
	if (def == NULL) {
		smtp_reply(s, REPLY_UNKNOWN_CMD, NULL);
		return;
	}
	if (!(def->states & (1u << s->state))) {
		smtp_reply(s, smtp_bad_state_reply(s, cmd.id), NULL);
		return;
	}
	if ((def->flags & CMD_NOARGS) && cmd.args[0] != '\0') {
		smtp_reply(s, REPLY_NO_ARGS, NULL);
		return;
	}
	if ((def->flags & CMD_NEEDARGS) && cmd.args[0] == '\0') {
		smtp_reply(s, def->id == SMTP_CMD_HELO ||
		    def->id == SMTP_CMD_EHLO ? REPLY_HELO_SYNTAX :
		    REPLY_SYNTAX, NULL);
		return;
	}
	if (def->flags & CMD_JUNK) {
		if (++s->junk > SMTP_JUNK_MAX)
			s->errors++;
	}
	def->handler(s, cmd.args);
}

/* Does the input start with "AUTH " (an over-long line's verb)? */
static bool
smtp_line_is_auth(struct smtp_session *s)
{
	char verb[5];

	if (io_in_len(s->io) < sizeof(verb))
		return false;
	io_in_copy(s->io, verb, sizeof(verb));
	return ascii_strncasecmp(verb, "AUTH ", sizeof(verb)) == 0;
}

/*
 * Read one command line. Returns 1 when a line was handled, 0 when more
 * input is needed.
 */
static int
smtp_read_command(struct smtp_session *s)
{
	char line[SMTP_READ_MAX + 1];
	size_t avail = io_in_len(s->io), len;
	long lf;
	bool bad = false;

	/* Find the line's end wherever it is: what follows an over-long
	 * line is the next (pipelined) command, never to be dropped. */
	lf = io_in_find_lf(s->io, avail);
	if (s->skipping || lf >= SMTP_READ_MAX) {
		if (!s->skipping)
			s->skip_auth = smtp_line_is_auth(s);
		if (lf < 0) {
			io_in_drain(s->io, avail);
			return 0;
		}
		io_in_drain(s->io, (size_t)lf + 1);
		s->skipping = false;
		if (s->skip_quiet)
			s->skip_quiet = false;
		else
			smtp_reply(s, s->skip_auth ? REPLY_AUTH_TOO_LONG :
			    REPLY_LINE_TOO_LONG, NULL);
		return 1;
	}
	if (lf < 0) {
		if (avail < SMTP_READ_MAX)
			return 0;
		/* Longer than any command may be: drop it to its end. */
		s->skip_auth = smtp_line_is_auth(s);
		io_in_drain(s->io, avail);
		s->skipping = true;
		return 1;
	}
	len = (size_t)lf;
	io_in_copy(s->io, line, len);
	io_in_drain(s->io, len + 1);
	if (len > 0 && line[len - 1] == '\r')
		len--;
	else
		bad = true;		/* bare LF ends the line */
	line[len] = '\0';
	if (memchr(line, '\r', len) != NULL || strlen(line) != len)
		bad = true;		/* bare CR or NUL inside */

	if (bad) {
		smtp_reply(s, REPLY_BAD_LINE, NULL);
		return 1;
	}
	if (len + 2 > smtp_command_line_max(line, len)) {
		smtp_reply(s, REPLY_LINE_TOO_LONG, NULL);
		return 1;
	}
	/*
	 * RFC 2920: without PIPELINING (no EHLO) a client must wait for each
	 * reply. Commands already waiting behind this one mean it did not:
	 * the SMTP smuggling and spam-engine tell (Postfix 3.9's defense).
	 */
	if (!s->esmtp && io_in_len(s->io) > 0) {
		smtp_reply(s, REPLY_UNAUTH_PIPELINING, NULL);
		return 1;
	}
	smtp_dispatch(s, line);
	return 1;
}

static void smtp_data_process(struct smtp_session *);
static void smtp_bdat_process(struct smtp_session *);

static void
smtp_session_process(struct smtp_session *s)
{
	s->busy = true;
	while (!s->destroyed) {
		if (s->state == SMTP_STATE_DATA) {
			smtp_data_process(s);
			if (s->state == SMTP_STATE_DATA)
				break;	/* need more input */
			continue;
		}
		if (s->state == SMTP_STATE_BDAT) {
			smtp_bdat_process(s);
			if (s->state == SMTP_STATE_BDAT)
				break;	/* need more input */
			continue;
		}
		if (s->state == SMTP_STATE_COMMIT ||
		    s->state == SMTP_STATE_OPEN ||
		    s->state == SMTP_STATE_QUIT ||
		    s->state == SMTP_STATE_GREETING ||
		    s->state == SMTP_STATE_TLS ||
		    s->state == SMTP_STATE_AUTHWAIT ||
		    s->state == SMTP_STATE_MAILWAIT)
			break;
		if (io_in_len(s->io) == 0)
			break;
		if (io_out_len(s->io) > SMTP_OUT_MAX) {
			/* RFC 2920 5: the client must read; until it does,
			 * stop reading (the command deadline still runs). */
			s->out_blocked = true;
			io_pause_read(s->io);
			break;
		}
		if (s->state == SMTP_STATE_AUTH && !s->skipping) {
			if (smtp_read_auth_line(s) == 0)
				break;
		} else if (smtp_read_command(s) == 0)
			break;
		if (s->state != SMTP_STATE_DATA &&
		    s->state != SMTP_STATE_BDAT &&
		    s->state != SMTP_STATE_QUIT &&
		    s->state != SMTP_STATE_OPEN &&
		    s->state != SMTP_STATE_COMMIT &&
		    s->state != SMTP_STATE_TLS &&
		    s->state != SMTP_STATE_AUTHWAIT &&
		    s->state != SMTP_STATE_MAILWAIT)
			smtp_wait_command(s);
	}
	s->busy = false;
	if (s->destroyed) {
		s->destroyed = false;
		smtp_session_destroy(s);
		return;
	}
	/*
	 * Input left without out_blocked is a line without its LF: after
	 * the client's EOF it never ends, and waiting for it would hold the
	 * connection until timeout_command.
	 */
	if (s->eof && (io_in_len(s->io) == 0 || !s->out_blocked) &&
	    (s->state == SMTP_STATE_INIT || s->state == SMTP_STATE_HELO ||
	    s->state == SMTP_STATE_AUTH ||
	    s->state == SMTP_STATE_MAIL || s->state == SMTP_STATE_RCPT ||
	    s->state == SMTP_STATE_CHUNKING)) {
		if (s->state == SMTP_STATE_CHUNKING)
			log_info("smtp: client went away between BDAT chunks "
			    "session=%016llx client=%s: message discarded",
			    (unsigned long long)s->id, s->addr);
		smtp_session_close(s);	/* nothing more will come */
	} else if (s->eof && (s->state == SMTP_STATE_DATA ||
	    s->state == SMTP_STATE_BDAT))
		smtp_session_destroy(s);	/* the message is incomplete */
}

/* ---- commands ---- */

static bool smtp_starttls_offered(const struct smtp_session *);
static bool smtp_auth_offered(const struct smtp_session *);

static void
smtp_hello(struct smtp_session *s, const char *args, bool esmtp)
{
	const struct conf *c = smtp_conf(s);

	if (!smtp_parse_helo(args) || strlen(args) >= sizeof(s->helo)) {
		smtp_reply(s, REPLY_HELO_SYNTAX, NULL);
		return;
	}
	/* RFC 5321 4.1.4: HELO/EHLO resets any transaction. */
	smtp_txn_reset(s);
	strlcpy(s->helo, args, sizeof(s->helo));
	s->esmtp = esmtp;
	smtp_session_enter_state(s, SMTP_STATE_HELO);
	if (!esmtp) {
		smtp_reply(s, REPLY_HELO, c->hostname);
		return;
	}
	/*
	 * RFC 3030: CHUNKING, and BINARYMIME which needs it. RFC 3461: DSN;
	 * its parameters are checked (parse.c) and kept in the queue file.
	 * RFC 3207: STARTTLS; RFC 4954: AUTH.
	 */
	io_printf(s->io,
	    "250-%s\r\n"
	    "250-PIPELINING\r\n"
	    "250-SIZE %llu\r\n"
	    "250-8BITMIME\r\n"
	    "250-BINARYMIME\r\n"
	    "250-CHUNKING\r\n"
	    "250-DSN\r\n",
	    c->hostname, (unsigned long long)c->max_message_size);
	if (smtp_starttls_offered(s))
		io_printf(s->io, "250-STARTTLS\r\n");
	if (smtp_auth_offered(s))
		io_printf(s->io, "250-AUTH %s\r\n", sasl_mechanisms());
	io_printf(s->io,
	    "250-ENHANCEDSTATUSCODES\r\n"
	    "250 SMTPUTF8\r\n");
}

/* STARTTLS: mx and submission listeners, before TLS. */
static bool
smtp_starttls_offered(const struct smtp_session *s)
{
	return !s->tls && s->rt->tls != NULL && !s->local &&
	    s->listener.role != CONF_ROLE_SUBMISSIONS;
}

/*
 * AUTH: on submission listeners, and on mx ones with mx_auth yes; only
 * under TLS unless auth_plaintext yes; not once authenticated.
 */
static bool
smtp_auth_offered(const struct smtp_session *s)
{
	const struct conf *c = smtp_conf(s);

	return s->auth_user == NULL && !s->local &&
	    (s->listener.role != CONF_ROLE_MX || c->mx_auth) &&
	    (s->tls || c->auth_plaintext);
}

static void
smtp_cmd_helo(struct smtp_session *s, const char *args)
{
	smtp_hello(s, args, false);
}

static void
smtp_cmd_ehlo(struct smtp_session *s, const char *args)
{
	smtp_hello(s, args, true);
}

/* Skip "FROM:" / "TO:" and one optional space (Postfix is as lenient). */
static const char *
smtp_skip_keyword(const char *args, const char *kw)
{
	size_t n = strlen(kw);

	if (ascii_strncasecmp(args, kw, n) != 0)
		return NULL;
	args += n;
	if (*args == ' ')
		args++;
	return args;
}

/*
 * SPF, DKIM and DMARC judge mail from unauthenticated clients outside the
 * trusted networks only (issue 5): mail a user submitted, or a trusted
 * host relays, is signed, not judged. SPF starts now, with MAIL.
 */
static void
smtp_msgauth_start(struct smtp_session *s, const char *sender)
{
	const struct conf *c = smtp_conf(s);
	struct msgauth_params p;

	if (!c->msgauth || s->srv->dns == NULL || s->auth_user != NULL ||
	    s->local || conf_is_trusted(c, (const struct sockaddr *)&s->peer))
		return;
	memset(&p, 0, sizeof(p));
	p.dns = s->srv->dns;
	p.authserv_id = c->hostname;
	p.client_ip = s->addr;
	p.helo = s->helo;
	p.mail_from = sender;
	p.spf_helo = c->spf_helo;
	p.dkim_max_signatures = (unsigned int)c->dkim_max_signatures;
	p.dkim_allow_sha1 = c->dkim_allow_sha1;
	p.dmarc_from_flags = DMARC_FROM_REJECT_INVALID |
	    (c->dmarc_multiple_from == CONF_DMARC_MULTIPLE_FROM_REJECT ?
	    DMARC_FROM_REJECT_MULTIPLE : 0);
	p.header_max = (size_t)c->max_header_size;
	p.pct_roll = MSGAUTH_ROLL_DRAW;
	if (s->srv->workq != NULL) {
		p.offload = workq_offload;
		p.offload_ctx = s->srv->workq;
	}
	s->txn.auth = msgauth_start(&p);
}

/*
 * spf_reject / spf_temperror_defer: the SPF verdict decides MAIL's reply.
 * fail → 550 5.7.23 with the domain's explanation (RFC 7208 8.4), a
 * temperror → 451 4.7.24 (8.6); anything else → 250.
 */
static void
smtp_spf_verdict(void *arg, const struct spf_outcome *o)
{
	struct smtp_session *s = arg;
	const struct conf *c = smtp_conf(s);
	char why[200];
	size_t i, n = 0;

	if (o->result == SPF_FAIL && c->spf_reject) {
		const char *e = o->explanation != NULL ? o->explanation : "";

		/* Text from DNS: printable ASCII only, bounded. */
		for (i = 0; e[i] != '\0' && n + 1 < sizeof(why); i++)
			if (e[i] >= 0x20 && e[i] < 0x7f)
				why[n++] = e[i];
		why[n] = '\0';
		smtp_txn_reset(s);
		smtp_session_enter_state(s, SMTP_STATE_HELO);
		smtp_reply(s, REPLY_SPF_FAIL, why[0] != '\0' ? why :
		    "sender not authorized");
	} else if (o->result == SPF_TEMPERROR && c->spf_temperror_defer) {
		smtp_txn_reset(s);
		smtp_session_enter_state(s, SMTP_STATE_HELO);
		smtp_reply(s, REPLY_SPF_TEMPERROR, NULL);
	} else {
		smtp_session_enter_state(s, SMTP_STATE_MAIL);
		smtp_reply(s, REPLY_MAIL_OK, NULL);
	}
	/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): s not freed */
	if (s->state == SMTP_STATE_QUIT)
		return;
	io_resume_read(s->io);
	smtp_wait_command(s);
	if (s->eof)
		smtp_session_process(s);
	else if (io_in_len(s->io) > 0)
		io_reschedule(s->io);
}

static void
smtp_cmd_mail(struct smtp_session *s, const char *args)
{
	const struct conf *c = smtp_conf(s);
	struct smtp_address addr;
	struct smtp_mail_params p;
	struct envelope *env = &s->txn.env;
	const char *rest;
	enum reply_id reply;
	char bad[64], esc[300], ue[128];

	/* RFC 6409 4.3: submission is for authenticated users. */
	if (s->listener.role != CONF_ROLE_MX && !s->local &&
	    s->auth_user == NULL) {
		smtp_reply(s, REPLY_AUTH_REQUIRED, NULL);
		return;
	}
	if ((rest = smtp_skip_keyword(args, "FROM:")) == NULL) {
		smtp_reply(s, REPLY_SYNTAX, NULL);
		return;
	}
	if (smtp_parse_path(rest, false, true, true, &addr, &rest,
	    &reply) == -1) {
		smtp_reply(s, reply, NULL);
		return;
	}
	memset(&p, 0, sizeof(p));
	if (*rest != '\0') {
		if (*rest != ' ') {
			smtp_reply(s, REPLY_BAD_SENDER, NULL);
			return;
		}
		if (smtp_parse_mail_params(rest + 1, &p, &reply, bad,
		    sizeof(bad)) == -1) {
			smtp_reply(s, reply, bad);
			return;
		}
	}
	if (addr.utf8 && !p.smtputf8) {
		smtp_reply(s, REPLY_NEED_SMTPUTF8, NULL);
		return;
	}
	if (p.has_size && p.size > c->max_message_size) {
		smtp_reply(s, REPLY_SIZE_EXCEEDED, NULL);
		return;
	}
	/*
	 * sender_login: an authenticated user sends as itself or one of its
	 * aliases. <> (bounces, vacation replies) names nobody; its From:
	 * header is still checked after DATA.
	 */
	if (s->auth_user != NULL && c->sender_login && !addr.null &&
	    !smtp_sender_owned(s, addr.localpart, addr.domain)) {
		log_info("smtp: sender refused session=%016llx client=%s "
		    "user=%s from=<%s>", (unsigned long long)s->id, s->addr,
		    smtp_log_user(ue, sizeof(ue), s->auth_user),
		    log_escape(esc, sizeof(esc),
		    addr.text, strlen(addr.text)));
		smtp_reply(s, REPLY_SENDER_NOT_OWNED, addr.text);
		return;
	}
	smtp_txn_reset(s);
	env->sender = xstrdup(addr.text);
	env->body = (int)p.body;
	env->size = p.has_size ? p.size : 0;
	env->smtputf8 = p.smtputf8;
	env->ret = (int)p.ret;
	env->envid = p.envid[0] != '\0' ? xstrdup(p.envid) : NULL;
	env->auth = p.auth[0] != '\0' ? xstrdup(p.auth) : NULL;
	env->client_addr = xstrdup(s->addr);
	env->helo = xstrdup(s->helo);
	env->tls = s->tls ? xstrdup(s->tls_info) : NULL;
	env->auth_user = s->auth_user != NULL ? xstrdup(s->auth_user) : NULL;
	if (s->local)
		smtp_local_sender_check(s, &addr);
	smtp_msgauth_start(s, addr.text);
	s->txn.smtputf8 = p.smtputf8;
	if (s->txn.auth != NULL && (c->spf_reject || c->spf_temperror_defer)) {
		/* The MAIL reply waits for SPF (RFC 7208 8.4, 8.6). */
		log_info("smtp: mail session=%016llx client=%s from=<%s>",
		    (unsigned long long)s->id, s->addr,
		    log_escape(esc, sizeof(esc), addr.text,
		    strlen(addr.text)));
		smtp_session_enter_state(s, SMTP_STATE_MAILWAIT);
		io_pause_read(s->io);
		io_set_deadline(s->io, 0);
		msgauth_spf_wait(s->txn.auth, smtp_spf_verdict, s);
		return;
	}
	smtp_session_enter_state(s, SMTP_STATE_MAIL);
	log_info("smtp: mail session=%016llx client=%s from=<%s>",
	    (unsigned long long)s->id, s->addr,
	    log_escape(esc, sizeof(esc), addr.text, strlen(addr.text)));
	smtp_reply(s, REPLY_MAIL_OK, NULL);
}

static void
smtp_rcpt_refuse(struct smtp_session *s, enum reply_id reply,
    const char *text)
{
	char esc[300];

	s->txn.rcpt_refused++;
	log_info("smtp: rcpt refused session=%016llx client=%s to=<%s> "
	    "reply=%d", (unsigned long long)s->id, s->addr,
	    log_escape(esc, sizeof(esc), text, strlen(text)),
	    reply_get(reply)->code);
	smtp_reply(s, reply, text);
}

/*
 * Add a final recipient unless the transaction has it already: several
 * RCPTs may name one mailbox (an alias and its target, two spellings of
 * a local address), and each mailbox gets one copy. Local targets are
 * lower-cased by policy; remote local parts are case-sensitive (RFC 5321
 * 2.4), so the comparison is exact.
 */
static void
smtp_txn_add_target(struct smtp_txn *t, const char *orig, const char *addr,
    const char *mailbox, enum rcpt_kind kind,
    const struct smtp_rcpt_params *p)
{
	if (!strset_add(&t->targets, addr))
		return;
	envelope_rcpt_add(&t->env, orig, addr, mailbox, kind, p->notify,
	    p->orcpt[0] != '\0' ? p->orcpt : NULL);
}

static void
smtp_cmd_rcpt(struct smtp_session *s, const char *args)
{
	const struct conf *c = smtp_conf(s);
	struct smtp_address addr;
	struct smtp_rcpt_params p;
	struct policy_target *targets = NULL;
	size_t ntargets = 0, i, nnew;
	const char *rest, *domain;
	enum reply_id reply;
	enum policy_rcpt pr;
	char bad[64], local[SMTP_LOCALPART_MAX + 1];
	char dom[SMTP_DOMAIN_MAX + 1];
	char key[SMTP_LOCALPART_MAX + SMTP_DOMAIN_MAX + 2];

	if ((rest = smtp_skip_keyword(args, "TO:")) == NULL) {
		smtp_reply(s, REPLY_SYNTAX, NULL);
		return;
	}
	if (smtp_parse_path(rest, true, false, s->txn.smtputf8, &addr,
	    &rest, &reply) == -1) {
		smtp_reply(s, reply, NULL);
		return;
	}
	memset(&p, 0, sizeof(p));
	if (*rest != '\0') {
		if (*rest != ' ') {
			smtp_reply(s, REPLY_BAD_RCPT, NULL);
			return;
		}
		if (smtp_parse_rcpt_params(rest + 1, &p, &reply, bad,
		    sizeof(bad)) == -1) {
			smtp_reply(s, reply, bad);
			return;
		}
	}
	if (s->txn.rcpt_accepted >= c->max_recipients) {
		smtp_reply(s, REPLY_TOO_MANY_RCPTS, NULL);
		return;
	}

	/* RFC 5321 4.5.1: <postmaster> alone is this host's postmaster. */
	domain = addr.domain;
	if (domain[0] == '\0')
		domain = c->ndomains > 0 ? c->domains[0] : c->hostname;
	strlcpy(dom, domain, sizeof(dom));
	ascii_lowercase(dom);

	if (conf_is_local_domain(c, dom)) {
		if (smtp_localpart_unquote(addr.localpart, local,
		    sizeof(local)) == -1) {
			smtp_rcpt_refuse(s, REPLY_BAD_MAILBOX, addr.text);
			return;
		}
		/* The same address again adds nothing: skip the lookup. */
		snprintf(key, sizeof(key), "%s@%s", local, dom);
		if (strset_has(&s->txn.resolved, key))
			goto accepted;
		pr = policy_rcpt_resolve(s->rt->tables, c, local, dom,
		    &targets, &ntargets);
		switch (pr) {
		case POLICY_RCPT_OK:
			break;
		case POLICY_RCPT_UNSAFE:
			smtp_rcpt_refuse(s, REPLY_BAD_MAILBOX, addr.text);
			return;
		case POLICY_RCPT_REFUSED:
			smtp_rcpt_refuse(s, REPLY_ALIAS_REFUSED, addr.text);
			return;
		case POLICY_RCPT_LOOP:
			smtp_rcpt_refuse(s, REPLY_ALIAS_LOOP, addr.text);
			return;
		case POLICY_RCPT_TOO_MANY:
			/* The administrator can fix the aliases: defer, as
			 * Postfix does for alias expansion errors. */
			smtp_rcpt_refuse(s, REPLY_ALIAS_EXPANSION, addr.text);
			return;
		case POLICY_RCPT_UNKNOWN:
		default:
			smtp_rcpt_refuse(s, REPLY_UNKNOWN_USER, addr.text);
			return;
		}
		for (i = 0, nnew = 0; i < ntargets; i++)
			if (!strset_has(&s->txn.targets, targets[i].addr))
				nnew++;
		if (s->txn.env.nrcpts + nnew > SMTP_TXN_TARGETS_MAX) {
			policy_targets_free(targets, ntargets);
			smtp_reply(s, REPLY_TOO_MANY_RCPTS, NULL);
			return;
		}
		for (i = 0; i < ntargets; i++)
			smtp_txn_add_target(&s->txn, addr.text,
			    targets[i].addr, targets[i].mailbox,
			    targets[i].local ? RCPT_KIND_LOCAL :
			    RCPT_KIND_REMOTE, &p);
		policy_targets_free(targets, ntargets);
		strset_add(&s->txn.resolved, key);
	} else {
		/* RFC 5321 3.6.2: relay only for those we serve. */
		bool trusted = s->auth_user != NULL || s->local ||
		    conf_is_trusted(c,
		    (const struct sockaddr *)&s->peer);

		if (!trusted) {
			smtp_rcpt_refuse(s, REPLY_RELAY_DENIED, addr.text);
			return;
		}
		if (s->txn.env.nrcpts + 1 > SMTP_TXN_TARGETS_MAX) {
			smtp_reply(s, REPLY_TOO_MANY_RCPTS, NULL);
			return;
		}
		smtp_txn_add_target(&s->txn, addr.text, addr.text, NULL,
		    RCPT_KIND_REMOTE, &p);
	}
accepted:
	s->txn.rcpt_accepted++;
	smtp_session_enter_state(s, SMTP_STATE_RCPT);
	smtp_reply(s, REPLY_RCPT_OK, NULL);
}

/*
 * Can s go into a header comment as it is: printable ASCII or UTF-8, no
 * parentheses or backslash, not empty? (A Dovecot user name is not ours.)
 */
static bool
smtp_is_header_safe(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (*p == '\0')
		return false;
	for (; *p != '\0'; p++)
		if (*p < 0x21 || *p == 0x7f || *p == '(' || *p == ')' ||
		    *p == '\\')
			return false;
	return true;
}

/* RFC 5321 4.4 trace header, RFC 3848 "with" keywords. */
static int
smtp_write_received(struct smtp_session *s)
{
	const struct conf *c = smtp_conf(s);
	struct envelope *env = &s->txn.env;
	char proto[16], tls[160], who[SMTP_PATH_MAX + 40];
	char date[64], *hdr;
	struct tm tm;
	time_t now = time(NULL);
	int r;

	/* RFC 3848 (and RFC 6531 3.7.3): S for TLS, A for AUTH. */
	snprintf(proto, sizeof(proto), "%s%s%s",
	    env->smtputf8 ? "UTF8SMTP" : s->esmtp ? "ESMTP" : "SMTP",
	    s->tls && (s->esmtp || env->smtputf8) ? "S" : "",
	    s->auth_user != NULL && (s->esmtp || env->smtputf8) ? "A" : "");
	env->proto = xstrdup(proto);
	env->arrival = (uint64_t)now;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if (s->tls)
		snprintf(tls, sizeof(tls), "\t(using %.*s with cipher %s)\r\n",
		    (int)strcspn(s->tls_info, " "), s->tls_info,
		    s->tls_info + strcspn(s->tls_info, " ") +
		    (s->tls_info[strcspn(s->tls_info, " ")] != '\0'));
	else
		tls[0] = '\0';
	/* The login name only if received_auth_name yes: it is private. */
	if (s->auth_user != NULL && c->received_auth_name &&
	    smtp_is_header_safe(s->auth_user))
		snprintf(who, sizeof(who), "\t(Authenticated sender: %s)\r\n",
		    s->auth_user);
	else
		who[0] = '\0';
	if (s->local)
		/* Postfix's pickup form: "by HOST (Postfix, from userid N)". */
		hdr = xasprintf("Received: by %s (Petrel, from userid %u)\r\n"
		    "\tid %s%s%s%s; %s\r\n", c->hostname,
		    (unsigned int)s->local_uid, s->txn.id,
		    s->txn.rcpt_accepted == 1 ? "\r\n\tfor <" : "",
		    s->txn.rcpt_accepted == 1 ? env->rcpts[0].orig : "",
		    s->txn.rcpt_accepted == 1 ? ">" : "", date);
	else if (s->txn.rcpt_accepted == 1)
		hdr = xasprintf("Received: from %s (unknown [%s])\r\n%s%s"
		    "\tby %s (Petrel) with %s id %s\r\n"
		    "\tfor <%s>; %s\r\n", s->helo, s->addr, tls, who,
		    c->hostname, proto, s->txn.id, env->rcpts[0].orig, date);
	else
		hdr = xasprintf("Received: from %s (unknown [%s])\r\n%s%s"
		    "\tby %s (Petrel) with %s id %s;\r\n\t%s\r\n", s->helo,
		    s->addr, tls, who, c->hostname, proto, s->txn.id, date);
	r = spool_writer_write(s->txn.writer, hdr, strlen(hdr));
	free(hdr);
	return r;
}

/* A new message's content machine: DATA, or BDAT in chunked mode. */
static void
smtp_content_init(struct smtp_session *s)
{
	const struct conf *c = smtp_conf(s);
	enum smtp_data_mode mode = c->bare_lf == CONF_BARE_LF_NORMALIZE ?
	    SMTP_DATA_NORMALIZE : SMTP_DATA_STRICT;

	if (s->txn.bdat)
		smtp_data_init_chunked(&s->data, mode,
		    (size_t)c->max_line_length);
	else
		smtp_data_init(&s->data, mode, (size_t)c->max_line_length);
	s->txn.in_headers = true;
	s->txn.line_start = true;
	buf_free(&s->txn.hdr);
	buf_init(&s->txn.hdr, (size_t)c->max_header_size);
	/* RFC 6409 8.2, 8.3: submission completes Date and Message-ID. */
	s->txn.add_headers = s->listener.role != CONF_ROLE_MX ||
	    s->auth_user != NULL;	/* and role local */
	s->txn.want_from = s->auth_user != NULL && c->sender_login;
	/* Signed, not judged: submitted mail and trusted relays. */
	if (s->rt->dkim_keys != NULL && (s->auth_user != NULL || s->local ||
	    conf_is_trusted(c, (const struct sockaddr *)&s->peer))) {
		s->txn.sign = dkim_stream_new(0, (size_t)c->max_header_size);
		(void)dkim_stream_want_body(s->txn.sign, DKIM_CANON_RELAXED,
		    DKIM_ALG_RSA_SHA256);
		(void)dkim_stream_want_body(s->txn.sign, DKIM_CANON_RELAXED,
		    DKIM_ALG_ED25519_SHA256);
	}
}

static void smtp_bdat_read(struct smtp_session *);
static void smtp_bdat_refuse(struct smtp_session *, enum reply_id,
    enum smtp_state);

/*
 * The reply for a spool error: a full disk or quota (ENOSPC, EDQUOT) is
 * 452 4.3.1 (RFC 3463 X.3.1, mail system full); anything else (EIO, a
 * failed fsync whose data may be gone, a read-only spool, EACCES) is
 * 451 4.3.0. Either way the message was not queued.
 */
static enum reply_id
smtp_spool_reply(int error)
{
	return error == ENOSPC || error == EDQUOT ? REPLY_SPOOL_ERROR :
	    REPLY_LOCAL_ERROR;
}

/* The spool opened (or failed to open) the file for DATA or a first BDAT. */
static void
smtp_opened(void *arg, uint64_t cookie, struct spool_writer *w, int error)
{
	struct smtp_server *srv = arg;
	struct smtp_session *s = smtp_server_find(srv, cookie);
	const struct conf *c;

	if (s == NULL || s->state != SMTP_STATE_OPEN) {
		if (w != NULL)
			spool_writer_abort(w);	/* nobody left to write it */
		return;
	}
	c = smtp_conf(s);
	io_resume_read(s->io);
	if (w == NULL) {
		log_err("smtp: spool error session=%016llx error=\"%s\"",
		    (unsigned long long)s->id, strerror(error));
		if (s->txn.bdat) {
			/* RFC 3030 2: read the chunk, then answer 452. */
			smtp_txn_reset(s);
			smtp_bdat_refuse(s, smtp_spool_reply(error),
			    SMTP_STATE_HELO);
			smtp_session_process(s);
			return;
		}
		smtp_session_enter_state(s, SMTP_STATE_RCPT);
		smtp_reply(s, smtp_spool_reply(error), NULL);
		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): s not freed */
		smtp_wait_command(s);
		if (s->closing && s->state != SMTP_STATE_QUIT)
			smtp_reply(s, REPLY_SHUTDOWN, c->hostname);
		else if (s->eof)
			smtp_session_process(s);
		else if (io_in_len(s->io) > 0)
			io_reschedule(s->io);
		return;
	}
	s->txn.writer = w;
	strlcpy(s->txn.id, spool_writer_id(w), sizeof(s->txn.id));
	if (smtp_write_received(s) == -1) {
		s->txn.failed = true;
		s->txn.write_errno = errno;
	}
	smtp_content_init(s);
	if (s->txn.bdat) {
		/* Even with no input yet: "BDAT 0 LAST" needs none. */
		smtp_bdat_read(s);
		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): s not freed */
		smtp_session_process(s);
		return;
	}
	smtp_session_enter_state(s, SMTP_STATE_DATA);
	smtp_reply(s, REPLY_DATA_GO, NULL);
	/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): s not freed */
	io_set_deadline(s->io, (unsigned int)c->timeout_data);
	if (s->eof)
		smtp_session_process(s);
	else if (io_in_len(s->io) > 0)
		io_reschedule(s->io);
}

/*
 * Creating the file allocates an inode, which can take milliseconds: a
 * spool thread does it, and the message goes on (354 for DATA, reading
 * the chunk for BDAT) when it is done.
 */
static void
smtp_open_message(struct smtp_session *s)
{
	smtp_session_enter_state(s, SMTP_STATE_OPEN);
	io_set_deadline(s->io, 0);
	io_pause_read(s->io);
	spool_writer_open(s->srv->spool, smtp_opened, s->srv, s->id);
}

static void
smtp_cmd_data(struct smtp_session *s, const char *args)
{
	(void)args;
	/* RFC 3030 3: BINARYMIME content cannot be dot-stuffed text. */
	if (s->txn.env.body == SMTP_BODY_BINARYMIME) {
		smtp_reply(s, REPLY_BINARYMIME_DATA, NULL);
		return;
	}
	smtp_open_message(s);
}

/*
 * BDAT <size> [LAST] (RFC 3030 2). The chunk's octets follow the command
 * line at once, so whatever the answer is, exactly <size> octets are read
 * before it is given: a refused chunk is read and discarded (the server
 * "MUST accept and discard the associated message data before sending
 * the appropriate 5XX or 4XX code"), and message content is never taken
 * for commands. That holds for any size that parses, however large: the
 * octets are counted, not kept, and timeout_data bounds how long that
 * takes. Only a size that cannot be parsed leaves the end of the chunk
 * unknown; REPLY_BDAT_SYNTAX then closes the session rather than read
 * octets of unknown extent as commands (the smuggling hazard).
 *
 * The size is checked against what is left of max_message_size before
 * anything is read, so an oversized chunk is never spooled.
 */
static void
smtp_cmd_bdat(struct smtp_session *s, const char *args)
{
	const struct conf *c = smtp_conf(s);
	enum reply_id refuse = REPLY_NONE;
	enum smtp_state resume = s->state;
	uint64_t size;
	bool last;

	if (smtp_parse_bdat(args, &size, &last) == -1) {
		smtp_reply(s, REPLY_BDAT_SYNTAX, NULL);
		return;
	}
	s->chunk_size = size;
	s->chunk_left = size;
	s->chunk_last = last;
	if (s->bdat_refused) {
		/* Pipelined behind a refused chunk: junk, not an error. */
		if (++s->junk > SMTP_JUNK_MAX)
			s->errors++;
		refuse = REPLY_BDAT_DISCARDED;
	} else if (s->state == SMTP_STATE_INIT)
		refuse = REPLY_NEED_HELO;
	else if (s->state == SMTP_STATE_HELO)
		refuse = REPLY_NEED_MAIL;
	else if (s->state == SMTP_STATE_MAIL)
		refuse = s->txn.rcpt_refused > 0 ? REPLY_NO_VALID_RCPTS :
		    REPLY_NEED_RCPT;
	else if (size > c->max_message_size - s->txn.bdat_size) {
		/* RCPT or CHUNKING: the message would be too big. */
		smtp_txn_reset(s);
		refuse = REPLY_SIZE_EXCEEDED;
		resume = SMTP_STATE_HELO;
	}
	if (refuse != REPLY_NONE) {
		smtp_bdat_refuse(s, refuse, resume);
		return;
	}
	s->txn.bdat_size += size;
	if (size == 0 && !last && ++s->junk > SMTP_JUNK_MAX)
		s->errors++;		/* an empty chunk adds nothing */
	if (!s->txn.bdat) {
		s->txn.bdat = true;
		s->txn.binary = s->txn.env.body == SMTP_BODY_BINARYMIME;
		s->txn.bdat_start = time_mono_usec();
		smtp_open_message(s);
		return;
	}
	smtp_bdat_read(s);
}

static void
smtp_cmd_rset(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_txn_reset(s);
	if (s->state != SMTP_STATE_INIT)
		smtp_session_enter_state(s, SMTP_STATE_HELO);
	smtp_reply(s, REPLY_OK, NULL);
}

static void
smtp_cmd_noop(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_reply(s, REPLY_OK, NULL);
}

static void
smtp_cmd_quit(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_reply(s, REPLY_BYE, NULL);
	/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): s not freed */
	smtp_session_close(s);
}

static void
smtp_cmd_vrfy(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_reply(s, REPLY_VRFY, NULL);
}

static void
smtp_cmd_help(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_reply(s, REPLY_HELP, NULL);
}

static void
smtp_cmd_notimpl(struct smtp_session *s, const char *args)
{
	(void)args;
	smtp_reply(s, REPLY_NOT_IMPLEMENTED, NULL);
}

/*
 * Is localpart@domain (localpart as written, quotes and all) the
 * authenticated user's own address or one of its aliases?
 */
static bool
smtp_sender_owned(const struct smtp_session *s, const char *localpart,
    const char *domain)
{
	char local[SMTP_LOCALPART_MAX + 1], dom[SMTP_DOMAIN_MAX + 1];

	if (smtp_localpart_unquote(localpart, local, sizeof(local)) == -1 ||
	    strlen(domain) >= sizeof(dom))
		return false;
	strlcpy(dom, domain, sizeof(dom));
	ascii_lowercase(dom);
	return policy_sender_owned(s->rt->tables, smtp_conf(s), s->auth_user,
	    local, dom);
}

/*
 * Local injection: a caller other than root or the daemon's own user may
 * set any envelope sender (sendmail -f), as with Postfix and sendmail,
 * but one that is not its own login@hostname is logged and recorded in
 * an X-Authentication-Warning: header (sendmail's wording).
 */
static void
smtp_local_sender_check(struct smtp_session *s, const struct smtp_address *a)
{
	const struct conf *c = smtp_conf(s);
	char local[SMTP_LOCALPART_MAX + 1], esc[300];
	const char *shown;

	if (s->local_uid == 0 || s->local_uid == getuid())
		return;
	if (!a->null && s->local_user[0] != '\0' &&
	    smtp_localpart_unquote(a->localpart, local, sizeof(local)) == 0 &&
	    strcmp(local, s->local_user) == 0 &&
	    ascii_strcasecmp(a->domain, c->hostname) == 0)
		return;
	shown = a->null ? "<>" : a->text;
	log_info("smtp: sender set session=%016llx client=local uid=%u "
	    "user=%s from=<%s>", (unsigned long long)s->id,
	    (unsigned int)s->local_uid, s->local_user[0] != '\0' ?
	    s->local_user : "unknown", log_escape(esc, sizeof(esc),
	    a->text, strlen(a->text)));
	/* Into a header: printable text only (a quoted local part may hold
	 * anything the parser allows). */
	s->txn.warn_sender = xstrdup(smtp_is_header_safe(shown) ? shown :
	    "(unprintable)");
}

/* ---- STARTTLS (RFC 3207) ---- */

static void
smtp_cmd_starttls(struct smtp_session *s, const char *args)
{
	SSL *ssl;

	(void)args;
	if (s->tls) {
		smtp_reply(s, REPLY_TLS_ACTIVE, NULL);
		return;
	}
	if (!smtp_starttls_offered(s)) {
		smtp_reply(s, REPLY_NOT_IMPLEMENTED, NULL);
		return;
	}
	if ((ssl = tls_server_ssl_new(s->rt->tls)) == NULL) {
		smtp_reply(s, REPLY_TLS_UNAVAILABLE, NULL);
		return;
	}
	/*
	 * The 220 is queued first and goes out in plaintext; the handshake
	 * starts behind it. io_tls_server() drops whatever the client
	 * pipelined behind STARTTLS (CVE-2011-0411): it is never answered.
	 */
	smtp_reply(s, REPLY_STARTTLS_GO, NULL);
	/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): s not freed */
	if (smtp_tls_start(s, ssl) == -1) {
		log_warn("smtp: session=%016llx client=%s: cannot start TLS; "
		    "closing", (unsigned long long)s->id, s->addr);
		smtp_session_close(s);
	}
}

/* ---- AUTH (RFC 4954) ---- */

static void smtp_auth_result(struct smtp_session *, enum sasl_status);

/* A login name for a key=value log field (spaces escaped too). */
static char *
smtp_log_user(char *dst, size_t size, const char *user)
{
	return log_escape_word(dst, size, user, strlen(user));
}

/* Drop the exchange (wiping the credentials) and any request for it. */
static void
smtp_auth_cancel(struct smtp_session *s)
{
	if (s->auth_job != 0) {
		if (s->auth_dovecot != NULL)
			sasl_dovecot_cancel(s->auth_dovecot, s->auth_job);
		else
			sasl_verify_cancel(s->srv->verifier, s->auth_job);
		s->auth_job = 0;
	}
	s->auth_dovecot = NULL;
	if (s->auth_ev != NULL) {
		event_free(s->auth_ev);
		s->auth_ev = NULL;
	}
	sasl_exchange_free(s->sasl);
	s->sasl = NULL;
}

/* The exchange is over and answered: read commands again. */
static void
smtp_auth_resume(struct smtp_session *s)
{
	if (s->state == SMTP_STATE_QUIT || s->busy)
		return;		/* closing, or the command loop goes on */
	if (!s->out_blocked)
		io_resume_read(s->io);
	smtp_wait_command(s);
	if (s->eof)
		smtp_session_process(s);
	else if (io_in_len(s->io) > 0)
		io_reschedule(s->io);
}

/* Stop reading while the result or the failure delay is awaited. */
static void
smtp_auth_wait(struct smtp_session *s)
{
	smtp_session_enter_state(s, SMTP_STATE_AUTHWAIT);
	io_pause_read(s->io);
	io_set_deadline(s->io, 0);
}

static void
smtp_auth_success(struct smtp_session *s, const char *user)
{
	char esc[300];

	sasl_throttle_success(s->srv->throttle, s->addr);
	free(s->auth_user);
	s->auth_user = xstrdup(user);
	log_info("smtp: auth session=%016llx client=%s user=%s mech=%s",
	    (unsigned long long)s->id, s->addr,
	    smtp_log_user(esc, sizeof(esc), user), s->auth_mech);
	smtp_auth_cancel(s);
	smtp_session_enter_state(s, SMTP_STATE_HELO);
	smtp_reply(s, REPLY_AUTH_OK, NULL);
	/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): s not freed */
	smtp_auth_resume(s);
}

/* After the failure delay: 535, and 421 after too many. */
static void
smtp_auth_fail_reply(struct smtp_session *s)
{
	const struct sasl_reply *r = sasl_error_reply(SASL_ERR_BAD_CREDENTIALS);

	smtp_auth_cancel(s);
	smtp_session_enter_state(s, SMTP_STATE_HELO);
	smtp_reply_line(s, r->code, r->enhanced, r->text, true, true);
	if (smtp_conf(s)->auth_max_failures > 0 &&
	    s->auth_failures >= smtp_conf(s)->auth_max_failures) {
		smtp_reply(s, REPLY_AUTH_TOO_MANY, smtp_conf(s)->hostname);
		return;
	}
	smtp_auth_resume(s);
}

static void
smtp_auth_delaycb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	smtp_auth_fail_reply(arg);
}

/*
 * Bad credentials. The 535 waits auth_fail_delay, doubled for each
 * failure from the client's address (sasl_throttle), on a timer: this
 * session reads nothing meanwhile, others go on.
 */
static void
smtp_auth_failed(struct smtp_session *s)
{
	const char *user = s->sasl != NULL ? sasl_exchange_authcid(s->sasl) :
	    NULL;
	uint64_t delay;
	char esc[300];

	if (user == NULL)
		user = "";
	smtp_metrics_auth_failed();	/* issue 6: metrics */
	s->auth_failures++;
	log_info("smtp: auth failed client=%s user=%s session=%016llx "
	    "mech=%s failures=%u", s->addr,
	    smtp_log_user(esc, sizeof(esc), user),
	    (unsigned long long)s->id, s->auth_mech, s->auth_failures);
	delay = sasl_throttle_delay(s->srv->throttle, s->addr,
	    time_mono_usec() / 1000);
	if (delay == 0) {
		smtp_auth_fail_reply(s);
		return;
	}
	smtp_auth_cancel(s);
	smtp_auth_wait(s);
	{
		struct timeval tv = { .tv_sec = (time_t)(delay / 1000),
		    .tv_usec = (suseconds_t)(delay % 1000) * 1000 };

		s->auth_ev = evtimer_new(s->srv->base, smtp_auth_delaycb, s);
		if (s->auth_ev == NULL)
			fatalx("smtp: evtimer_new failed");
		evtimer_add(s->auth_ev, &tv);
	}
}

static void
smtp_auth_verified(void *arg, bool ok)
{
	struct smtp_session *s = arg;
	char user[SMTP_PATH_MAX + 1];

	s->auth_job = 0;
	if (!ok) {
		smtp_auth_failed(s);
		return;
	}
	/* The users file's addresses are case-insensitive: one spelling. */
	strlcpy(user, sasl_exchange_authcid(s->sasl), sizeof(user));
	ascii_lowercase(user);
	smtp_auth_success(s, user);
}

static void
smtp_auth_dovecot_done(void *arg, enum sasl_dovecot_result res,
    const char *user)
{
	struct smtp_session *s = arg;

	s->auth_job = 0;
	switch (res) {
	case SASL_DOVECOT_OK:
		smtp_auth_success(s, user != NULL && *user != '\0' ? user :
		    sasl_exchange_authcid(s->sasl));
		break;
	case SASL_DOVECOT_FAIL:
		smtp_auth_failed(s);
		break;
	case SASL_DOVECOT_TEMPFAIL:
	default:
		smtp_auth_cancel(s);
		smtp_session_enter_state(s, SMTP_STATE_HELO);
		smtp_reply(s, REPLY_AUTH_TEMPFAIL, NULL);
		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): s not freed */
		smtp_auth_resume(s);
		break;
	}
}

/* Credentials are complete: check them off the loop. */
static void
smtp_auth_verify(struct smtp_session *s)
{
	const struct conf *c = smtp_conf(s);
	const char *authcid = sasl_exchange_authcid(s->sasl);
	const char *password = sasl_exchange_password(s->sasl);

	smtp_auth_wait(s);
	if (c->auth_backend == CONF_AUTH_DOVECOT &&
	    s->srv->dovecot != NULL) {
		struct sasl_dovecot_request req = {
			.authzid = sasl_exchange_authzid(s->sasl),
			.authcid = authcid,
			.password = password,
			.service = "smtp",
			.local_ip = s->listener.host,
			.remote_ip = s->addr,
			.secured = s->tls,
		};

		s->auth_dovecot = s->srv->dovecot;
		s->auth_job = sasl_dovecot_auth(s->srv->dovecot, &req,
		    smtp_auth_dovecot_done, s);
		return;
	}
	/* Unknown users cost a hash too (sasl_verify): no user oracle. */
	s->auth_job = sasl_verify(s->srv->verifier,
	    policy_user_hash(s->rt->tables, authcid), password,
	    smtp_auth_verified, s);
}

static void
smtp_auth_result(struct smtp_session *s, enum sasl_status st)
{
	const struct sasl_reply *r;
	enum sasl_error err;
	const char *mech;

	if ((mech = sasl_exchange_mech(s->sasl)) != NULL)
		strlcpy(s->auth_mech, mech, sizeof(s->auth_mech));
	switch (st) {
	case SASL_STATUS_CHALLENGE:
		smtp_session_enter_state(s, SMTP_STATE_AUTH);
		io_printf(s->io, "334 %s\r\n", sasl_exchange_challenge(s->sasl));
		return;
	case SASL_STATUS_DONE:
		smtp_auth_verify(s);
		return;
	case SASL_STATUS_ERROR:
	default:
		err = sasl_exchange_error(s->sasl);
		if (sasl_error_is_failure(err)) {
			smtp_auth_failed(s);
			return;
		}
		r = sasl_error_reply(err);
		smtp_auth_cancel(s);
		smtp_session_enter_state(s, SMTP_STATE_HELO);
		smtp_reply_line(s, r->code, r->enhanced, r->text, true, true);
		return;
	}
}

static void
smtp_cmd_auth(struct smtp_session *s, const char *args)
{
	const struct conf *c = smtp_conf(s);

	if (s->auth_user != NULL) {
		smtp_reply(s, REPLY_AUTH_ALREADY, NULL);
		return;
	}
	if ((s->listener.role == CONF_ROLE_MX && !c->mx_auth) || s->local) {
		smtp_reply(s, REPLY_AUTH_DISABLED, NULL);
		return;
	}
	/* RFC 4954 4: the mechanisms need TLS; answered here, whatever the
	 * mechanism named. */
	if (!s->tls && !c->auth_plaintext) {
		smtp_reply(s, REPLY_AUTH_NEED_TLS, NULL);
		return;
	}
	s->auth_mech[0] = '\0';
	s->sasl = sasl_exchange_new();
	smtp_auth_result(s, sasl_exchange_start_args(s->sasl, args));
}

/*
 * A response line in state AUTH. Returns 1 when a line was handled, 0
 * when more input is needed.
 */
static int
smtp_read_auth_line(struct smtp_session *s)
{
	char line[SMTP_READ_MAX + 1];
	size_t avail = io_in_len(s->io), len;
	long lf;

	/* Find the line's end wherever it is: what follows is the next
	 * command, never to be dropped. */
	lf = io_in_find_lf(s->io, avail);
	if (lf >= SMTP_READ_MAX || (lf < 0 && avail >= SMTP_READ_MAX)) {
		/* RFC 4954 4: too long. What is left of it is skipped. */
		if (lf >= 0)
			io_in_drain(s->io, (size_t)lf + 1);
		else {
			io_in_drain(s->io, avail);
			s->skipping = true;
			s->skip_quiet = true;
		}
		smtp_auth_cancel(s);
		smtp_session_enter_state(s, SMTP_STATE_HELO);
		smtp_reply(s, REPLY_AUTH_TOO_LONG, NULL);
		return 1;
	}
	if (lf < 0)
		return 0;
	len = (size_t)lf;
	io_in_copy(s->io, line, len);
	io_in_drain(s->io, len + 1);
	if (len > 0 && line[len - 1] == '\r')
		len--;
	line[len] = '\0';
	smtp_auth_result(s, sasl_exchange_step(s->sasl, line, len));
	explicit_bzero(line, sizeof(line));
	return 1;
}

/* ---- DATA and BDAT content ---- */

/* A header field's name ended (its colon): note the ones that matter. */
static void
smtp_header_name(struct smtp_txn *t)
{
	size_t n = t->hlen - 1;		/* without the colon */

	/* RFC 5322 4.5.3 obs: white space before the colon. */
	while (n > 0 && (t->hline[n - 1] == ' ' || t->hline[n - 1] == '\t'))
		n--;
	if (n == 8 && ascii_strncasecmp(t->hline, "Received", 8) == 0)
		t->hops++;
	else if (n == 4 && ascii_strncasecmp(t->hline, "Date", 4) == 0)
		t->has_date = true;
	else if (n == 10 && ascii_strncasecmp(t->hline, "Message-ID", 10) == 0)
		t->has_msgid = true;
	else if (n == 4 && ascii_strncasecmp(t->hline, "From", 4) == 0 &&
	    t->want_from) {
		t->in_from = true;
		if (t->from_count++ > 0)
			buf_append(&t->from, "\n", 1);	/* never parses */
	}
}

/*
 * Follow the header section as content streams: its size, Received:
 * lines, whether Date: and Message-ID: are there, and the From: values
 * (unfolded) for sender_login. Returns the offset in p where the header
 * section ended (the empty line's first octet), or len.
 */
static size_t
smtp_scan_headers(struct smtp_txn *t, const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len && t->in_headers; i++) {
		char ch = p[i];

		t->header_size++;
		if (t->line_start) {
			t->line_start = false;
			t->hlen = 0;
			if (ch == '\r' || ch == '\n') {
				/* the empty line: headers end */
				t->in_headers = false;
				t->in_from = false;
				return i;
			}
			if (ch == ' ' || ch == '\t')
				t->hlen = sizeof(t->hline);  /* continued */
			else
				t->in_from = false;
		}
		if (ch == '\n') {
			t->line_start = true;
			continue;
		}
		if (t->in_from && ch != '\r' &&
		    buf_append(&t->from, &ch, 1) == -1)
			t->from_overflow = true;
		if (t->hlen < sizeof(t->hline)) {
			t->hline[t->hlen++] = ch;
			if (ch == ':') {
				smtp_header_name(t);
				t->hlen = sizeof(t->hline);	/* done */
			}
		}
	}
	return i;
}

static void smtp_message_end(struct smtp_session *);
static enum reply_id smtp_data_verdict(const struct smtp_session *);

/* The spool caught up with a session that stopped reading for it. */
static void
smtp_spool_drained(void *arg, uint64_t cookie)
{
	struct smtp_session *s = smtp_server_find(arg, cookie);

	if (s == NULL || !s->spool_blocked ||
	    (s->state != SMTP_STATE_DATA && s->state != SMTP_STATE_BDAT))
		return;
	s->spool_blocked = false;
	io_resume_read(s->io);
	smtp_session_process(s);
}

/*
 * Hand message content (DATA after unstuffing, BDAT octets) to the spool:
 * header accounting first, then the write unless the message has already
 * failed or grown past max_message_size (reading goes on to its end;
 * smtp_data_verdict() says why it failed).
 */
static void
smtp_content_write(struct smtp_session *s, const char *p, size_t len)
{
	if (len == 0 || s->txn.failed ||
	    s->data.size > smtp_conf(s)->max_message_size)
		return;
	if (s->txn.auth != NULL)
		msgauth_feed(s->txn.auth, p, len);
	if (s->txn.sign != NULL)
		dkim_stream_feed(s->txn.sign, p, len);
	if (spool_writer_write(s->txn.writer, p, len) == -1) {
		s->txn.failed = true;
		s->txn.write_errno = errno;
	}
}

/* Date: and Message-ID: for a submitted message that lacks them. */
static void
smtp_add_headers(struct smtp_session *s)
{
	char date[64], line[SMTP_DOMAIN_MAX + QUEUE_ID_MAX + 32];
	struct tm tm;
	time_t now = time(NULL);

	s->txn.add_headers = false;
	if (!s->txn.has_date) {
		localtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
		snprintf(line, sizeof(line), "Date: %s\r\n", date);
		smtp_content_write(s, line, strlen(line));
	}
	if (!s->txn.has_msgid) {
		snprintf(line, sizeof(line), "Message-ID: <%s@%s>\r\n",
		    s->txn.id, smtp_conf(s)->hostname);
		smtp_content_write(s, line, strlen(line));
		snprintf(s->txn.msgid, sizeof(s->txn.msgid), "<%s@%s>",
		    s->txn.id, smtp_conf(s)->hostname);	/* issue 6 */
	}
	if (s->txn.warn_sender != NULL) {
		char *w = xasprintf("X-Authentication-Warning: %s: %s set "
		    "sender to %s using -f\r\n", smtp_conf(s)->hostname,
		    s->local_user[0] != '\0' ? s->local_user : "unknown",
		    s->txn.warn_sender);

		smtp_content_write(s, w, strlen(w));
		free(w);
	}
}

/* Is this header field (name: value CRLF...) a forged Authentication-
 * Results naming our host? */
static bool
smtp_field_is_forged_authres(const struct smtp_session *s, const char *f,
    size_t len)
{
	static const char name[] = "Authentication-Results";
	size_t n = sizeof(name) - 1, i;

	if (len <= n || ascii_strncasecmp(f, name, n) != 0)
		return false;
	for (i = n; i < len && (f[i] == ' ' || f[i] == '\t'); i++)
		;
	if (i == len || f[i] != ':')
		return false;
	i++;
	return authres_claims_hostn(f + i, len - i, smtp_conf(s)->hostname);
}

/*
 * Write the held header section: every field but forged
 * Authentication-Results ones, then (submission) Date and Message-ID.
 */
static void
smtp_headers_flush(struct smtp_session *s)
{
	const char *h = s->txn.hdr.data, *f;
	size_t len = s->txn.hdr.len, i, start = 0;
	unsigned int dropped = 0;

	/* An empty message (BDAT 0 LAST) held nothing: h is NULL. */
	if (len == 0)
		return;
	for (i = 0; i <= len; i++) {
		/* A field ends where a line starts with other than WSP. */
		if (i < len && !(i > start && h[i - 1] == '\n' &&
		    h[i] != ' ' && h[i] != '\t'))
			continue;
		f = h + start;
		if (i > start) {
			if (smtp_field_is_forged_authres(s, f, i - start))
				dropped++;
			else
				smtp_content_write(s, f, i - start);
		}
		start = i;
	}
	/* issue 6: the Message-ID for the "queued" log line. */
	dsn_find_msgid(h, len, s->txn.msgid, sizeof(s->txn.msgid));
	if (dropped > 0)
		log_info("smtp: session=%016llx client=%s: removed %u "
		    "Authentication-Results naming %s (RFC 8601 5)",
		    (unsigned long long)s->id, s->addr, dropped,
		    smtp_conf(s)->hostname);
	buf_reset(&s->txn.hdr);
}

static void
smtp_content_put(struct smtp_session *s, const char *p, size_t len)
{
	size_t end;

	if (len == 0)
		return;
	if (s->txn.in_headers) {
		end = smtp_scan_headers(&s->txn, p, len);
		/* Held until the section ends; past max_header_size the
		 * message fails (smtp_data_verdict), so dropping is fine. */
		(void)buf_append(&s->txn.hdr, p, end);
		if (s->txn.in_headers)
			return;
		smtp_headers_flush(s);
		if (s->txn.add_headers)
			smtp_add_headers(s);	/* before the empty line */
		p += end;
		len -= end;
	}
	smtp_content_write(s, p, len);
}

/*
 * The disk lags: stop reading until it catches up, so the message never
 * piles up in memory. Returns true when reading stopped.
 */
static bool
smtp_spool_lags(struct smtp_session *s)
{
	if (s->txn.failed ||
	    spool_writer_pending(s->txn.writer) <= SMTP_SPOOL_LAG_MAX)
		return false;
	s->spool_blocked = true;
	log_debug("smtp: session=%016llx spool lags pending=%zu: reading "
	    "paused", (unsigned long long)s->id,
	    spool_writer_pending(s->txn.writer));
	io_pause_read(s->io);
	spool_writer_notify(s->txn.writer, SMTP_SPOOL_LAG_LOW,
	    smtp_spool_drained, s->srv, s->id);
	return true;
}

static void
smtp_data_process(struct smtp_session *s)
{
	if (s->spool_blocked)
		return;
	while (!s->data.done) {
		size_t len, n;
		const char *p = io_in_peek(s->io, &len);

		if (len == 0)
			return;
		if (len > SMTP_DATA_FEED_MAX)
			len = SMTP_DATA_FEED_MAX;
		buf_reset(&s->chunk);
		n = smtp_data_feed(&s->data, p, len, &s->chunk);
		io_in_drain(s->io, n);
		smtp_content_put(s, s->chunk.data, s->chunk.len);
		if (!s->data.done && smtp_spool_lags(s))
			return;
	}
	smtp_message_end(s);
}

/* After a reply that ends a chunk or a message: 421 if shutting down. */
static void
smtp_after_reply(struct smtp_session *s)
{
	if (s->state == SMTP_STATE_QUIT)
		return;
	if (s->closing)
		smtp_reply(s, REPLY_SHUTDOWN, smtp_conf(s)->hostname);
	else
		smtp_wait_command(s);
}

/* ---- BDAT ---- */

/*
 * Start reading the current chunk (state BDAT). A refused chunk has
 * timeout_data to itself; a chunk of the message only what is left of it.
 */
static void
smtp_bdat_read(struct smtp_session *s)
{
	unsigned int limit = (unsigned int)smtp_conf(s)->timeout_data;

	if (s->chunk_refuse == REPLY_NONE &&
	    (limit = smtp_bdat_time_left(s)) == 0) {
		log_info("smtp: timeout session=%016llx client=%s state=%s",
		    (unsigned long long)s->id, s->addr,
		    smtp_state_names[s->state]);
		smtp_reply(s, REPLY_TIMEOUT, smtp_conf(s)->hostname);
		return;
	}
	smtp_session_enter_state(s, SMTP_STATE_BDAT);
	io_set_deadline(s->io, limit);
}

/*
 * Read and discard the current chunk, then answer reply and go on in
 * state resume. A BDAT pipelined right behind it is discarded too
 * (REPLY_BDAT_DISCARDED) until another command comes.
 */
static void
smtp_bdat_refuse(struct smtp_session *s, enum reply_id reply,
    enum smtp_state resume)
{
	s->chunk_refuse = reply;
	s->chunk_resume = resume;
	s->bdat_refused = true;
	smtp_bdat_read(s);
}

static void smtp_message_fail_arg(struct smtp_session *, enum reply_id,
    const char *);
static void smtp_message_commit(struct smtp_session *);
static int smtp_dkim_sign_start(struct smtp_session *);
static void smtp_msgauth_done(void *, const struct msgauth_result *);

static void
smtp_message_fail(struct smtp_session *s, enum reply_id verdict)
{
	smtp_message_fail_arg(s, verdict, NULL);
}

/* A transaction failed: forget it, answer, and refuse later chunks. */
static void
smtp_message_fail_arg(struct smtp_session *s, enum reply_id verdict,
    const char *arg)
{
	if (s->txn.failed && verdict == smtp_spool_reply(s->txn.write_errno))
		log_err("smtp: spool write failed session=%016llx "
		    "error=\"%s\"", (unsigned long long)s->id,
		    strerror(s->txn.write_errno));
	if (s->txn.bdat)
		s->bdat_refused = true;
	smtp_txn_reset(s);
	smtp_session_enter_state(s, SMTP_STATE_HELO);
	smtp_reply(s, verdict, arg);
	/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): s not freed */
	smtp_after_reply(s);
}

static void
smtp_bdat_chunk_end(struct smtp_session *s)
{
	enum reply_id reply = s->chunk_refuse;
	char n[24];

	if (reply != REPLY_NONE) {
		s->chunk_refuse = REPLY_NONE;
		smtp_session_enter_state(s, s->chunk_resume);
		smtp_reply(s, reply, NULL);
		smtp_after_reply(s);
		return;
	}
	if (s->chunk_last) {
		if (!s->txn.binary) {
			buf_reset(&s->chunk);
			smtp_data_finish(&s->data, &s->chunk);
			smtp_content_put(s, s->chunk.data, s->chunk.len);
		}
		smtp_message_end(s);
		return;
	}
	/*
	 * Say so as soon as the message is known to be bad: RFC 3030 2, a
	 * client stops sending chunks after a 4xx or 5xx.
	 */
	reply = smtp_data_verdict(s);
	if (reply != REPLY_NONE) {
		smtp_message_fail(s, reply);
		return;
	}
	smtp_session_enter_state(s, SMTP_STATE_CHUNKING);
	snprintf(n, sizeof(n), "%llu", (unsigned long long)s->chunk_size);
	smtp_reply(s, REPLY_BDAT_OK, n);
	smtp_after_reply(s);
}

/*
 * Read the current chunk: exactly chunk_size octets, no end-of-data
 * search, no dot-unstuffing. BINARYMIME octets go to the spool as they
 * are. 7BIT and 8BITMIME content goes through the DATA machine in chunked
 * mode, which applies DATA's bare CR/LF policy (bare_lf reject or
 * normalize), its NUL and its line length checks: RFC 3030 2 leaves such
 * a message a text message that "MUST" follow the line rules of its body
 * type, and once queued it may be relayed by DATA, where a bare LF is
 * the smuggling hazard; only BINARYMIME (RFC 3030 3) is exempt. Nothing
 * of this can end the chunk early.
 */
static void
smtp_bdat_process(struct smtp_session *s)
{
	if (s->spool_blocked)
		return;
	while (s->chunk_left > 0) {
		size_t len;
		const char *p = io_in_peek(s->io, &len);

		if (len == 0)
			return;
		if (len > s->chunk_left)
			len = (size_t)s->chunk_left;
		if (len > SMTP_DATA_FEED_MAX)
			len = SMTP_DATA_FEED_MAX;
		if (s->chunk_refuse == REPLY_NONE && s->txn.binary)
			smtp_content_put(s, p, len);
		else if (s->chunk_refuse == REPLY_NONE) {
			buf_reset(&s->chunk);
			(void)smtp_data_feed(&s->data, p, len, &s->chunk);
			smtp_content_put(s, s->chunk.data, s->chunk.len);
		}
		io_in_drain(s->io, len);
		s->chunk_left -= len;
		if (s->chunk_refuse == REPLY_NONE && s->chunk_left > 0 &&
		    smtp_spool_lags(s))
			return;
	}
	/*
	 * Between chunks too: many small pipelined chunks would otherwise
	 * never meet the check above. LAST goes to the commit, which
	 * writes what is pending anyway.
	 */
	if (s->chunk_refuse == REPLY_NONE && !s->chunk_last &&
	    smtp_spool_lags(s))
		return;
	smtp_bdat_chunk_end(s);
}

/* ---- the end of a message ---- */

static void
smtp_committed(void *arg, uint64_t cookie, const char *id, int error)
{
	struct smtp_commit *cm = arg;
	struct smtp_server *srv = cm->srv;
	struct smtp_session *s;
	char esc[300], mid[300];

	if (error == 0 && srv->queued != NULL)
		srv->queued(srv->queued_arg, id, &cm->env);
	s = smtp_server_find(srv, cookie);
	/* issue 6: docs/logging.md, "smtp: queued". */
	if (error != 0)
		log_err("smtp: commit failed queue=%s session=%016llx "
		    "error=\"%s\"", id, (unsigned long long)cookie,
		    strerror(error));
	else
		log_info("smtp: queued queue=%s session=%016llx client=%s "
		    "from=<%s> size=%llu nrcpt=%zu%s%s%s", id,
		    (unsigned long long)cookie, cm->env.client_addr != NULL ?
		    cm->env.client_addr : "-",
		    log_escape_word(esc, sizeof(esc), cm->env.sender,
		    strlen(cm->env.sender)), (unsigned long long)cm->size,
		    cm->env.nrcpts, cm->msgid[0] != '\0' ? " message-id=" : "",
		    log_escape_word(mid, sizeof(mid), cm->msgid,
		    strlen(cm->msgid)), s == NULL ? " (client gone before the "
		    "reply)" : "");
	envelope_free(&cm->env);
	free(cm);
	if (s == NULL)
		return;

	s->txn.writer = NULL;		/* the spool has it */
	smtp_txn_reset(s);
	smtp_session_enter_state(s, SMTP_STATE_HELO);
	if (error != 0)
		smtp_reply(s, smtp_spool_reply(error), NULL);
	else {
		s->junk = 0;		/* a client that delivers is no junk */
		smtp_reply(s, REPLY_QUEUED, id);
	}
	/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): s not freed */
	if (s->state == SMTP_STATE_QUIT)
		return;
	if (s->closing || s->srv->shutting_down) {
		smtp_reply(s, REPLY_SHUTDOWN, smtp_conf(s)->hostname);
		return;
	}
	io_resume_read(s->io);
	smtp_wait_command(s);
	if (s->eof)
		smtp_session_process(s);	/* the rest, then close */
	else if (io_in_len(s->io) > 0)
		io_reschedule(s->io);	/* pipelined commands wait */
}

/*
 * Why the message so far cannot be accepted, or REPLY_NONE. For
 * BINARYMIME the DATA machine sees nothing, so only the size (checked
 * per chunk, before reading), header and hop limits and spool errors
 * apply.
 */
static enum reply_id
smtp_data_verdict(const struct smtp_session *s)
{
	const struct conf *c = smtp_conf(s);
	const struct smtp_data *d = &s->data;

	if (d->nul > 0)
		return REPLY_NUL;
	if ((d->bare_cr > 0 || d->bare_lf > 0) &&
	    c->bare_lf == CONF_BARE_LF_REJECT)
		return REPLY_BARE_LF;
	if (d->size > c->max_message_size)
		return REPLY_SIZE_EXCEEDED;
	if (d->long_lines > 0)
		return REPLY_DATA_LINE_LONG;
	if (s->txn.header_size > c->max_header_size)
		return REPLY_HEADER_TOO_BIG;
	if (s->txn.hops > c->max_hops)
		return REPLY_TOO_MANY_HOPS;
	if (s->txn.failed)
		return smtp_spool_reply(s->txn.write_errno);
	return REPLY_NONE;
}

struct smtp_from_check {
	const struct smtp_session *s;
	char bad[SMTP_PATH_MAX + 1];	/* the first address not owned */
};

static int
smtp_from_addr(void *arg, const char *addr, size_t len)
{
	struct smtp_from_check *fc = arg;
	char local[SMTP_LOCALPART_MAX + 3], dom[SMTP_DOMAIN_MAX + 1];
	size_t llen;
	bool quoted;

	if (!mailaddr_addr_split(addr, len, &llen, &quoted) ||
	    llen >= sizeof(local) || len - llen - 1 >= sizeof(dom))
		goto bad;
	memcpy(local, addr, llen);
	local[llen] = '\0';
	memcpy(dom, addr + llen + 1, len - llen - 1);
	dom[len - llen - 1] = '\0';
	if (smtp_sender_owned(fc->s, local, dom))
		return 0;
bad:
	snprintf(fc->bad, sizeof(fc->bad), "%.*s",
	    (int)(len < sizeof(fc->bad) - 1 ? len : sizeof(fc->bad) - 1), addr);
	return -1;
}

/*
 * sender_login: every address in the From: header must be the user's.
 * RFC 5322 3.6 allows one From: field; none at all is left alone.
 */
static enum reply_id
smtp_from_verdict(struct smtp_session *s, char *bad, size_t badsize)
{
	struct smtp_txn *t = &s->txn;
	struct smtp_from_check fc;
	const char *why = NULL;
	int n;

	if (!t->want_from || t->from_count == 0)
		return REPLY_NONE;
	if (t->from_count > 1 || t->from_overflow) {
		strlcpy(bad, t->from_overflow ? "From: longer than 8192 octets" :
		    "more than one From: header", badsize);
		return REPLY_FROM_BAD;
	}
	memset(&fc, 0, sizeof(fc));
	fc.s = s;
	/*
	 * Strict: no route, no comment holding '@', '<' or '>', no white
	 * space around a dot: forms mail readers show differently from
	 * what is checked here.
	 */
	n = mailaddr_header_parse(t->from.data != NULL ? t->from.data : "",
	    t->from.len, MAILADDR_HDR_STRICT, smtp_from_addr, &fc, &why);
	if (fc.bad[0] != '\0') {
		log_escape(bad, badsize, fc.bad, strlen(fc.bad));
		return REPLY_FROM_NOT_OWNED;
	}
	if (n < 0)
		strlcpy(bad, why != NULL ? why : "syntax error", badsize);
	else if (n == 0)
		strlcpy(bad, "no address", badsize);
	if (n <= 0)
		return REPLY_FROM_BAD;
	return REPLY_NONE;
}

/* The final dot or BDAT LAST: refuse, or commit and answer when durable. */
static void
smtp_message_end(struct smtp_session *s)
{
	enum reply_id verdict;

	if (s->txn.in_headers)
		smtp_headers_flush(s);	/* no empty line: all header */
	verdict = smtp_data_verdict(s);
	char bad[SMTP_PATH_MAX + 1], ue[128];

	if (verdict == REPLY_NONE &&
	    (verdict = smtp_from_verdict(s, bad, sizeof(bad))) != REPLY_NONE) {
		if (verdict == REPLY_FROM_BAD)
			log_info("smtp: from refused session=%016llx "
			    "client=%s user=%s error=\"%s\"",
			    (unsigned long long)s->id, s->addr,
			    smtp_log_user(ue, sizeof(ue), s->auth_user), bad);
		else
			log_info("smtp: from refused session=%016llx "
			    "client=%s user=%s from=<%s>",
			    (unsigned long long)s->id, s->addr,
			    smtp_log_user(ue, sizeof(ue), s->auth_user), bad);
		smtp_message_fail_arg(s, verdict, bad);
		return;
	}
	if (verdict != REPLY_NONE) {
		smtp_message_fail(s, verdict);
		return;
	}
	if (s->txn.add_headers) {
		/* No empty line: the message is all headers. Add ours after
		 * its last line (ended first if it was not). */
		if (!s->txn.line_start)
			smtp_content_write(s, "\r\n", 2);
		smtp_add_headers(s);
		if ((verdict = smtp_data_verdict(s)) != REPLY_NONE) {
			smtp_message_fail(s, verdict);
			return;
		}
	}
	smtp_session_enter_state(s, SMTP_STATE_COMMIT);
	io_set_deadline(s->io, 0);
	io_pause_read(s->io);
	if (s->txn.sign != NULL && smtp_dkim_sign_start(s) == 0)
		return;		/* committed once signed */
	if (s->txn.auth != NULL) {
		/* DKIM keys, crypto and DMARC first: nothing is
		 * acknowledged before the verdict (a reject is a 550). */
		msgauth_end(s->txn.auth, smtp_msgauth_done, s);
		return;
	}
	smtp_message_commit(s);
}

/* Hand the message to the spool; 250 once it is durable. */
static void
smtp_message_commit(struct smtp_session *s)
{
	struct smtp_commit *cm;

	cm = xcalloc(1, sizeof(*cm));
	cm->srv = s->srv;
	envelope_copy(&cm->env, &s->txn.env);
	cm->size = spool_writer_size(s->txn.writer);	/* issue 6: log */
	strlcpy(cm->msgid, s->txn.msgid, sizeof(cm->msgid));
	spool_writer_commit(s->txn.writer, &s->txn.env, smtp_committed, cm,
	    s->id);
	s->txn.writer = NULL;
}

/* Signing on a worker: the stream and the keys travel with the job. */
struct smtp_sign_job {
	LIST_ENTRY(smtp_sign_job) entry;	/* srv->sign_jobs */
	struct smtp_server *srv;	/* NULL: the server is gone */
	uint64_t session;
	struct smtp_runtime *rt;	/* holds the keys */
	struct dkim_stream *st;
	char domain[SMTP_DOMAIN_MAX + 1];
	size_t keys[16];		/* indexes into rt->conf->dkim_keys */
	size_t nkeys;
	struct buf fields;		/* the DKIM-Signature fields made */
	char error[600];
};

static void
smtp_sign_work(void *arg)
{
	struct smtp_sign_job *j = arg;
	const struct conf *c = j->rt->conf;
	struct dkim_sign_opts o;
	const char *err = NULL;
	char *field;
	size_t i;

	for (i = 0; i < j->nkeys; i++) {
		const struct conf_dkim_key *k = &c->dkim_keys[j->keys[i]];

		dkim_sign_opts_init(&o, j->domain, k->selector);
		field = dkim_stream_sign(j->st, j->rt->dkim_keys[j->keys[i]],
		    &o, &err);
		if (field == NULL) {
			snprintf(j->error, sizeof(j->error), "%.255s %.255s: %.80s",
			    j->domain, k->selector, err != NULL ? err : "?");
			continue;
		}
		(void)buf_append_str(&j->fields, field);
		free(field);
	}
}

static void
smtp_sign_done(void *arg)
{
	struct smtp_sign_job *j = arg;
	struct smtp_session *s = NULL;

	if (j->srv != NULL) {
		LIST_REMOVE(j, entry);
		s = smtp_server_find(j->srv, j->session);
	}
	if (j->error[0] != '\0')
		log_warn("smtp: dkim signing failed session=%016llx: %s",
		    (unsigned long long)j->session, j->error);
	if (s != NULL && s->state == SMTP_STATE_COMMIT &&
	    s->txn.writer != NULL) {
		if (j->fields.len > 0) {
			log_info("smtp: dkim signed queue=%s session=%016llx "
			    "d=%s signatures=%zu", s->txn.id,
			    (unsigned long long)s->id,
			    j->domain, j->nkeys);
			free(s->txn.env.prepend);
			s->txn.env.prepend = xstrdup(buf_str(&j->fields));
		}
		smtp_message_commit(s);
	}
	dkim_stream_free(j->st);
	smtp_runtime_unref(j->rt);
	buf_free(&j->fields);
	free(j);
}

/* The From: domain of a message, lower-cased, when it names exactly one. */
static int
smtp_sign_from_cb(void *arg, const char *addr, size_t len)
{
	char *out = arg;
	size_t llen;
	bool quoted;

	if (out[0] != '\0' || !mailaddr_addr_split(addr, len, &llen, &quoted) ||
	    len - llen - 1 > SMTP_DOMAIN_MAX) {
		out[0] = '\1';		/* several, or unusable */
		return 1;
	}
	memcpy(out, addr + llen + 1, len - llen - 1);
	out[len - llen - 1] = '\0';
	return 0;
}

/*
 * Sign with the keys of the From: domain (dkim_sign) on a worker, then
 * commit with the DKIM-Signature fields in front. Returns -1 (nothing to
 * sign: commit as it is) when no key applies.
 */
static int
smtp_dkim_sign_start(struct smtp_session *s)
{
	const struct conf *c = smtp_conf(s);
	const struct conf_dkim_key *k;
	const char *const *values;
	const size_t *lens;
	struct smtp_sign_job *j;
	char domain[SMTP_DOMAIN_MAX + 2] = "";
	size_t iter = 0, n;

	dkim_stream_finish(s->txn.sign);
	n = dkim_stream_from(s->txn.sign, &values, &lens);
	if (n != 1 || mailaddr_header_addresses(values[0], lens[0],
	    smtp_sign_from_cb, domain) != 1 || domain[0] == '\1' ||
	    domain[0] == '\0')
		return -1;
	ascii_lowercase(domain);
	j = xcalloc(1, sizeof(*j));
	while ((k = conf_dkim_key_next(c, domain, &iter)) != NULL &&
	    j->nkeys < nitems(j->keys))
		j->keys[j->nkeys++] = (size_t)(k - c->dkim_keys);
	if (j->nkeys == 0 || s->srv->workq == NULL) {
		free(j);
		return -1;
	}
	j->srv = s->srv;
	j->session = s->id;
	j->rt = smtp_runtime_ref(s->rt);
	j->st = s->txn.sign;
	s->txn.sign = NULL;		/* the job's now */
	strlcpy(j->domain, domain, sizeof(j->domain));
	buf_init(&j->fields, 64 * 1024);
	LIST_INSERT_HEAD(&s->srv->sign_jobs, j, entry);
	workq_run(s->srv->workq, smtp_sign_work, smtp_sign_done, j);
	return 0;
}

/*
 * The server is being freed while signing jobs are still owed their done
 * (workq_free() runs them later, on this thread): they must not look it
 * up then. Their sessions are gone already; the jobs only free themselves.
 */
void
smtp_sign_orphan_all(struct smtp_server *srv)
{
	struct smtp_sign_job *j;

	while ((j = LIST_FIRST(&srv->sign_jobs)) != NULL) {
		LIST_REMOVE(j, entry);
		j->srv = NULL;
	}
}

/*
 * p=quarantine (RFC 7489 6.3): delivered, marked with X-Spam-Flag (what
 * Sieve scripts and mail programs already sort on) and a line saying
 * why, and with quarantine_folder into that Maildir++ folder of each
 * local mailbox ("Junk" -> MAILDIR/.Junk/).
 */
static void
smtp_msgauth_quarantine(struct smtp_session *s, const struct msgauth_result *r)
{
	const char *folder = smtp_conf(s)->quarantine_folder;
	size_t i;

	s->txn.env.prepend = xasprintf("%sX-Spam-Flag: YES\r\n"
	    "X-Petrel-Quarantine: DMARC policy of %s\r\n", r->authres,
	    r->dmarc_from != NULL ? r->dmarc_from : "the From: domain");
	if (folder == NULL)
		return;
	for (i = 0; i < s->txn.env.nrcpts; i++) {
		struct envelope_rcpt *rc = &s->txn.env.rcpts[i];
		char *box;

		if (rc->kind != RCPT_KIND_LOCAL || rc->mailbox == NULL)
			continue;
		box = xasprintf("%s/.%s", rc->mailbox, folder);
		free(rc->mailbox);
		rc->mailbox = box;
	}
}

/*
 * The verdicts are in (RFC 7489 6.6.2, 10.3): a failing message under
 * p=reject is refused with dmarc_enforce; otherwise it is committed with
 * the Authentication-Results field in front (queue format v3 PREPEND).
 */
static void
smtp_msgauth_done(void *arg, const struct msgauth_result *r)
{
	struct smtp_session *s = arg;

	log_info("msgauth: queue=%s session=%016llx client=%s %s",
	    s->txn.id, (unsigned long long)s->id, s->addr, r->log);
	if (r->disposition == MSGAUTH_REJECT && smtp_conf(s)->dmarc_enforce) {
		char from[SMTP_DOMAIN_MAX + 1];

		strlcpy(from, r->dmarc_from != NULL ? r->dmarc_from :
		    "the From: domain", sizeof(from));
		smtp_message_fail_arg(s, REPLY_DMARC_REJECT, from);
		if (s->state == SMTP_STATE_QUIT)
			return;
		io_resume_read(s->io);
		if (s->eof)
			smtp_session_process(s);
		else if (io_in_len(s->io) > 0)
			io_reschedule(s->io);
		return;
	}
	free(s->txn.env.prepend);
	if (r->disposition == MSGAUTH_QUARANTINE &&
	    smtp_conf(s)->dmarc_enforce) {
		smtp_msgauth_quarantine(s, r);
	} else
		s->txn.env.prepend = xstrdup(r->authres);
	smtp_message_commit(s);
}
