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

#include "io/io.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/strset.h"
#include "lib/util.h"
#include "policy/policy.h"
#include "queue/spool.h"
#include "smtp/data.h"
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
};

static const char *const smtp_state_names[] = {
	"GREETING", "INIT", "HELO", "MAIL", "RCPT", "OPEN", "DATA", "COMMIT",
	"QUIT", "BDAT", "CHUNKING",
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
	{ "STARTTLS", SMTP_CMD_STARTTLS, ST_SESSION, 0, smtp_cmd_notimpl },
	{ "AUTH", SMTP_CMD_AUTH, ST_SESSION, 0, smtp_cmd_notimpl },
	/* Every state that reads commands: a refused chunk is still read. */
	{ "BDAT", SMTP_CMD_BDAT, ST_SESSION, 0, smtp_cmd_bdat },
};

static void smtp_session_iocb(struct io *, enum io_event, void *);
static void smtp_session_process(struct smtp_session *);
static void smtp_session_close(struct smtp_session *);

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
static void
smtp_reply(struct smtp_session *s, enum reply_id id, const char *arg)
{
	const struct reply *r = reply_get(id);
	const char *p = strstr(r->text, "%s");
	char text[600];

	if (p != NULL)
		snprintf(text, sizeof(text), "%.*s%s%s", (int)(p - r->text),
		    r->text, arg != NULL ? arg : "", p + 2);
	else
		strlcpy(text, r->text, sizeof(text));
	if (r->enhanced != NULL)
		io_printf(s->io, "%d %s %s\r\n", r->code, r->enhanced, text);
	else
		io_printf(s->io, "%d %s\r\n", r->code, text);
	/*
	 * RFC 3030 2: after a refused chunk a client "MUST NOT send any
	 * additional BDAT segments", but those already pipelined arrive and
	 * get REPLY_BDAT_DISCARDED: counted as junk (smtp_cmd_bdat), not as
	 * errors, so a long pipeline does not end in 421.
	 */
	if (r->code >= 400 && id != REPLY_TOO_MANY_RCPTS &&
	    id != REPLY_BDAT_DISCARDED)
		s->errors++;
	/*
	 * Log error replies, but only the first few of a session: a client
	 * must not be able to turn each bad command into a log line (the
	 * disconnect line carries the total).
	 */
	if (r->code >= 400 && id != REPLY_UNKNOWN_USER) {
		if (++s->logged_errors <= SMTP_LOG_ERRORS_MAX)
			log_info("smtp: session=%016llx client=%s "
			    "reply=\"%d %s\"", (unsigned long long)s->id,
			    s->addr, r->code,
			    r->enhanced != NULL ? r->enhanced : "");
		else if (s->logged_errors == SMTP_LOG_ERRORS_MAX + 1)
			log_info("smtp: session=%016llx client=%s: further "
			    "error replies are not logged",
			    (unsigned long long)s->id, s->addr);
	}
	if (reply_closes(id))
		smtp_session_close(s);
}

static void
smtp_txn_reset(struct smtp_session *s)
{
	if (s->txn.writer != NULL)
		spool_writer_abort(s->txn.writer);
	envelope_free(&s->txn.env);
	strset_free(&s->txn.targets);
	strset_free(&s->txn.resolved);
	memset(&s->txn, 0, sizeof(s->txn));
	envelope_init(&s->txn.env);
	strset_init(&s->txn.targets);
	strset_init(&s->txn.resolved);
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

void
smtp_session_start(struct smtp_server *srv, int fd, const struct sockaddr *sa,
    socklen_t salen, const struct conf_listen *l, enum reply_id refuse)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	const void *src = NULL;
	int family = sa->sa_family;
	uint64_t delay;

	s->srv = srv;
	if (salen <= sizeof(s->peer))
		memcpy(&s->peer, sa, salen);
	s->rt = smtp_runtime_ref(srv->rt);
	s->id = srv->next_id++;
	s->listener = *l;
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
	buf_init(&s->chunk, SMTP_DATA_CHUNK_MAX);
	s->io = io_new(srv->base, fd, SMTP_IN_MAX, smtp_session_iocb, s);
	smtp_server_register(srv, s);
	log_info("smtp: connect session=%016llx client=%s listener=%s",
	    (unsigned long long)s->id, s->addr, l->text);

	if (refuse != REPLY_NONE) {
		smtp_reply(s, refuse, smtp_conf(s)->hostname);
		return;
	}
	delay = smtp_conf(s)->greeting_delay;
	if (delay > 0) {
		struct timeval tv = { .tv_sec = (time_t)delay };

		s->greet_ev = evtimer_new(srv->base, smtp_session_greetcb, s);
		evtimer_add(s->greet_ev, &tv);
		return;
	}
	smtp_session_greet(s);
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
	smtp_txn_reset(s);
	envelope_free(&s->txn.env);
	buf_free(&s->chunk);
	io_free(s->io);
	smtp_runtime_unref(s->rt);
	free(s);
}

/* Close once every queued reply byte has been written. */
static void
smtp_session_close(struct smtp_session *s)
{
	smtp_session_enter_state(s, SMTP_STATE_QUIT);
	if (s->greet_ev != NULL)
		evtimer_del(s->greet_ev);
	io_pause_read(s->io);
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
		    s->state == SMTP_STATE_OPEN)
			break;		/* the spool answers; not the client */
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

/*
 * Read one command line. Returns 1 when a line was handled, 0 when more
 * input is needed.
 */
static int
smtp_read_command(struct smtp_session *s)
{
	char line[SMTP_LINE_MAX_AUTH + 1];
	size_t avail = io_in_len(s->io), len;
	long lf;
	bool bad = false;

	/* Find the line's end wherever it is: what follows an over-long
	 * line is the next (pipelined) command, never to be dropped. */
	lf = io_in_find_lf(s->io, avail);
	if (s->skipping || lf >= SMTP_LINE_MAX_AUTH) {
		if (lf < 0) {
			io_in_drain(s->io, avail);
			return 0;
		}
		io_in_drain(s->io, (size_t)lf + 1);
		s->skipping = false;
		smtp_reply(s, REPLY_LINE_TOO_LONG, NULL);
		return 1;
	}
	if (lf < 0) {
		if (avail < SMTP_LINE_MAX_AUTH)
			return 0;
		/* Longer than any command may be: drop it to its end. */
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
		    s->state == SMTP_STATE_GREETING)
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
		if (smtp_read_command(s) == 0)
			break;
		if (s->state != SMTP_STATE_DATA &&
		    s->state != SMTP_STATE_BDAT &&
		    s->state != SMTP_STATE_QUIT &&
		    s->state != SMTP_STATE_OPEN &&
		    s->state != SMTP_STATE_COMMIT)
			smtp_wait_command(s);
	}
	s->busy = false;
	if (s->destroyed) {
		s->destroyed = false;
		smtp_session_destroy(s);
		return;
	}
	if (s->eof && io_in_len(s->io) == 0 &&
	    (s->state == SMTP_STATE_INIT || s->state == SMTP_STATE_HELO ||
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
	 */
	io_printf(s->io,
	    "250-%s\r\n"
	    "250-PIPELINING\r\n"
	    "250-SIZE %llu\r\n"
	    "250-8BITMIME\r\n"
	    "250-BINARYMIME\r\n"
	    "250-CHUNKING\r\n"
	    "250-DSN\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n"
	    "250 SMTPUTF8\r\n",
	    c->hostname, (unsigned long long)c->max_message_size);
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

static void
smtp_cmd_mail(struct smtp_session *s, const char *args)
{
	const struct conf *c = smtp_conf(s);
	struct smtp_address addr;
	struct smtp_mail_params p;
	struct envelope *env = &s->txn.env;
	const char *rest;
	enum reply_id reply;
	char bad[64], esc[300];

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
	s->txn.smtputf8 = p.smtputf8;
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
		bool trusted = conf_is_trusted(c,
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

/* RFC 5321 4.4 trace header, RFC 3848 "with" keywords. */
static int
smtp_write_received(struct smtp_session *s)
{
	const struct conf *c = smtp_conf(s);
	struct envelope *env = &s->txn.env;
	const char *proto;
	char date[64], *hdr;
	struct tm tm;
	time_t now = time(NULL);
	int r;

	if (env->smtputf8)
		proto = "UTF8SMTP";
	else
		proto = s->esmtp ? "ESMTP" : "SMTP";
	env->proto = xstrdup(proto);
	env->arrival = (uint64_t)now;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if (s->txn.rcpt_accepted == 1)
		hdr = xasprintf("Received: from %s (unknown [%s])\r\n"
		    "\tby %s (Petrel) with %s id %s\r\n"
		    "\tfor <%s>; %s\r\n", s->helo, s->addr, c->hostname,
		    proto, s->txn.id, env->rcpts[0].orig, date);
	else
		hdr = xasprintf("Received: from %s (unknown [%s])\r\n"
		    "\tby %s (Petrel) with %s id %s;\r\n\t%s\r\n", s->helo,
		    s->addr, c->hostname, proto, s->txn.id, date);
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
}

static void smtp_bdat_read(struct smtp_session *);
static void smtp_bdat_refuse(struct smtp_session *, enum reply_id,
    enum smtp_state);

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
			smtp_bdat_refuse(s, REPLY_SPOOL_ERROR,
			    SMTP_STATE_HELO);
			smtp_session_process(s);
			return;
		}
		smtp_session_enter_state(s, SMTP_STATE_RCPT);
		smtp_reply(s, REPLY_SPOOL_ERROR, NULL);
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
		smtp_session_process(s);
		return;
	}
	smtp_session_enter_state(s, SMTP_STATE_DATA);
	smtp_reply(s, REPLY_DATA_GO, NULL);
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

/* ---- DATA and BDAT content ---- */

/* Count header bytes and Received: lines in content as it streams. */
static void
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
				break;
			}
		}
		if (ch == '\n') {
			t->line_start = true;
			continue;
		}
		if (t->hlen < sizeof(t->hline)) {
			t->hline[t->hlen++] = ch;
			if (t->hlen == 9 &&
			    ascii_strncasecmp(t->hline, "Received:", 9) == 0)
				t->hops++;
		}
	}
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
smtp_content_put(struct smtp_session *s, const char *p, size_t len)
{
	if (len == 0)
		return;
	if (s->txn.in_headers)
		smtp_scan_headers(&s->txn, p, len);
	if (s->txn.failed || s->data.size > smtp_conf(s)->max_message_size)
		return;
	if (spool_writer_write(s->txn.writer, p, len) == -1) {
		s->txn.failed = true;
		s->txn.write_errno = errno;
	}
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

/* A transaction failed: forget it, answer, and refuse later chunks. */
static void
smtp_message_fail(struct smtp_session *s, enum reply_id verdict)
{
	if (verdict == REPLY_SPOOL_ERROR)
		log_err("smtp: spool write failed session=%016llx "
		    "error=\"%s\"", (unsigned long long)s->id,
		    strerror(s->txn.write_errno));
	if (s->txn.bdat)
		s->bdat_refused = true;
	smtp_txn_reset(s);
	smtp_session_enter_state(s, SMTP_STATE_HELO);
	smtp_reply(s, verdict, NULL);
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
	char esc[300];

	if (error == 0 && srv->queued != NULL)
		srv->queued(srv->queued_arg, id, &cm->env);
	s = smtp_server_find(srv, cookie);
	if (error != 0)
		log_err("smtp: spool commit failed id=%s error=\"%s\"", id,
		    strerror(error));
	else
		log_info("smtp: queued id=%s session=%016llx from=<%s> "
		    "nrcpt=%zu%s", id, (unsigned long long)cookie,
		    log_escape(esc, sizeof(esc), cm->env.sender,
		    strlen(cm->env.sender)), cm->env.nrcpts,
		    s == NULL ? " (client gone before the reply)" : "");
	envelope_free(&cm->env);
	free(cm);
	if (s == NULL)
		return;

	s->txn.writer = NULL;		/* the spool has it */
	smtp_txn_reset(s);
	smtp_session_enter_state(s, SMTP_STATE_HELO);
	if (error != 0)
		smtp_reply(s, REPLY_SPOOL_ERROR, NULL);
	else {
		s->junk = 0;		/* a client that delivers is no junk */
		smtp_reply(s, REPLY_QUEUED, id);
	}
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
		return REPLY_SPOOL_ERROR;
	return REPLY_NONE;
}

/* The final dot or BDAT LAST: refuse, or commit and answer when durable. */
static void
smtp_message_end(struct smtp_session *s)
{
	struct smtp_commit *cm;
	enum reply_id verdict = smtp_data_verdict(s);

	if (verdict != REPLY_NONE) {
		smtp_message_fail(s, verdict);
		return;
	}
	cm = xcalloc(1, sizeof(*cm));
	cm->srv = s->srv;
	envelope_copy(&cm->env, &s->txn.env);
	smtp_session_enter_state(s, SMTP_STATE_COMMIT);
	io_set_deadline(s->io, 0);
	io_pause_read(s->io);
	spool_writer_commit(s->txn.writer, &s->txn.env, smtp_committed, cm,
	    s->id);
	s->txn.writer = NULL;
}
