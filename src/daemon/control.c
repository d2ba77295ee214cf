/*
 * control.c: the control socket RUN_DIR/control, served on the event loop
 * for `petrel queue ...`, `mailq` and `petrel trace`.
 *
 * Entry points: control_bind (as root, before the privilege drop),
 * control_new, control_free.
 *
 * PROTOCOL. A Unix stream socket; one request per connection. The client
 * sends one line, at most 1024 bytes with its LF:
 *
 *   list [ID]                  the queue (or one message)
 *   show ID                    one message: envelope and content
 *   flush [ID]                 retry now: everything (held mail stays
 *                              held), or one message
 *   flush-domain DOMAIN        retry now the recipients at DOMAIN
 *   delete ID | delete-all | delete-sender ADDR | delete-recipient ADDR
 *   hold ID | release ID | bounce ID
 *   trace QUERY                a message's recent log lines, QUERY a
 *                              queue ID or a Message-ID (with or without
 *                              its <>), fewer than 256 bytes
 *
 * Arguments are words: "-" is the empty string (delete-sender - selects
 * the null sender <>), any byte outside '!'..'~', '%', and a word that
 * would be "-" itself are written %XX. The daemon answers with zero or
 * more data lines, then one status line, then closes:
 *
 *   msg ID SIZE ARRIVAL STATE SENDER           (list, show)
 *   rcpt ADDR ORIG ATTEMPTS NEXT LAST WAIT REMOTE REPLY
 *   info KEY VALUE                             (show: client, helo...)
 *   data LEN                                   (show: LEN octets of the
 *                                              message follow, then LF)
 *   line TEXT                                  (trace: one log line)
 *   ok N TEXT                                  N messages listed or changed
 *                                              (trace: N lines sent)
 *   err CODE TEXT                              CODE: denied, bad, notfound,
 *                                              failed, busy, shutdown
 *
 * STATE is queued, active or hold; WAIT (why a pending recipient waits)
 * is due, retry, active or hold; times are Unix seconds (LAST 0: never
 * tried); SENDER, ADDR, ORIG, REMOTE, REPLY and VALUE are words. Only
 * pending recipients are listed. TEXT is printable ASCII.
 *
 * A trace answer has the lines of the message still in the daemon's
 * ring (daemon/trace.h: its lines, its SMTP session's, its reports'), in
 * time order, as logged but for control bytes written '?'; then
 * "ok N lines", or "ok N truncated ..." when the lines passed
 * CTLPROTO_TRACE_MAX (4 MiB) bytes and only the first N were sent, or
 * "err notfound" (nothing in the ring), or "err bad" (QUERY is neither
 * form). The ring is searched on the work queue, not the loop.
 *
 * SECURITY: local clients only, and only those SO_PEERCRED (and
 * SO_PEERGROUPS) show to be root, the daemon's user, or in its group;
 * everyone else gets "err denied" and a log line. The socket file is
 * 0660 user:group as well. A request is one bounded line read within
 * CONTROL_REQUEST_TIMEOUT seconds; at most CONTROL_CONNS_MAX connections
 * at a time; nothing here blocks the loop: listings and message reads
 * run on the work queue, queue changes on the scheduler's workers. A
 * client that stops reading its answer is dropped after
 * CONTROL_WRITE_TIMEOUT seconds.
 * OWNERSHIP: the control owns its listening socket and connections.
 * Asynchronous answers carry a connection's id, not a pointer: a client
 * gone meanwhile is looked up, not found, and its answer dropped.
 */
#include "daemon/control.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon/ctlproto.h"
#include "daemon/trace.h"
#include "delivery/delivery.h"
#include "io/io.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "queue/spool.h"

#define CONTROL_CONNS_MAX	16
#define CONTROL_REQUEST_TIMEOUT	10	/* seconds to send the request */
#define CONTROL_WRITE_TIMEOUT	120	/* seconds to read the answer */
#define CONTROL_GROUPS_MAX	256
#define CONTROL_SHOW_MAX	((size_t)1 << 31)	/* a message, read */

struct ctl_conn {
	TAILQ_ENTRY(ctl_conn) entry;
	struct control *ctl;
	struct io *io;
	uint64_t id;
	uid_t uid;
	pid_t pid;
	bool busy;		/* the request is being answered */
	bool closing;		/* answered: free once written */
};

struct control {
	struct event_base *base;
	int fd;
	char *path;
	struct event *ev;
	struct scheduler *sched;
	struct spool *sp;
	struct workq *wq;
	struct trace *trace;	/* NULL: trace requests get err failed */
	uid_t uid;
	gid_t gid;
	uint64_t next_id;
	size_t nconns;
	TAILQ_HEAD(, ctl_conn) conns;
};

/* A listing or a message read, on the work queue. */
struct ctl_job {
	struct control *ctl;
	uint64_t conn_id;
	bool show;
	struct scheduler_entry *entries;
	size_t n;
	struct buf out;		/* the answer, written by the worker */
};

/* A trace lookup, on the work queue. */
struct ctl_trace_job {
	struct control *ctl;
	uint64_t conn_id;
	char query[CTLPROTO_QUERY_MAX];
	struct buf out;		/* the answer, written by the worker */
};

static void ctl_conn_free(struct ctl_conn *cc);

int
control_bind(const char *run_dir, uid_t uid, gid_t gid, bool chown_it,
    char *path_r, size_t pathsize, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	mode_t old;
	int fd, probe, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s",
	    run_dir, CONTROL_SOCKET_NAME) >= sizeof(sun.sun_path) ||
	    strlcpy(path_r, sun.sun_path, pathsize) >= pathsize) {
		snprintf(err, errlen, "%s/%s: path too long for a Unix socket",
		    run_dir, CONTROL_SOCKET_NAME);
		return -1;
	}
	/* Someone still accepting there is a live daemon: leave it be. */
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (probe != -1) {
		int r = connect(probe, (struct sockaddr *)&sun, sizeof(sun));

		saved = errno;
		close(probe);
		if (r == 0 || saved == EAGAIN) {
			snprintf(err, errlen, "%s: another daemon answers on "
			    "this control socket (same run_dir?)",
			    sun.sun_path);
			return -1;
		}
	}
	if (unlink(sun.sun_path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove the stale %s: %s",
		    sun.sun_path, strerror(errno));
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* Never world-accessible, not even between bind and chmod. */
	old = umask(0117);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved = errno;
		umask(old);
		close(fd);
		snprintf(err, errlen, "cannot bind %s: %s", sun.sun_path,
		    strerror(saved));
		return -1;
	}
	umask(old);
	/* The mode before the owner: once the socket is the daemon user's,
	 * root needs CAP_FOWNER to chmod it, which the systemd unit does not
	 * grant (contrib/petrel.service). */
	if (chmod(sun.sun_path, 0660) == -1 ||
	    (chown_it && chown(sun.sun_path, uid, gid) == -1) ||
	    listen(fd, 64) == -1) {
		saved = errno;
		close(fd);
		unlink(sun.sun_path);
		snprintf(err, errlen, "%s: %s", sun.sun_path, strerror(saved));
		return -1;
	}
	return fd;
}

static struct ctl_conn *
ctl_conn_find(struct control *ctl, uint64_t id)
{
	struct ctl_conn *cc;

	TAILQ_FOREACH(cc, &ctl->conns, entry)
		if (cc->id == id)
			return cc;
	return NULL;
}

/* Queue the status line and close once everything is written. */
static void
ctl_finish(struct ctl_conn *cc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
ctl_finish(struct ctl_conn *cc, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* The status line is one line of printable ASCII. */
	for (i = 0; line[i] != '\0'; i++)
		if ((unsigned char)line[i] < ' ' ||
		    (unsigned char)line[i] >= 0x7f)
			line[i] = '?';
	io_printf(cc->io, "%s\n", line);
	cc->closing = true;
	io_set_deadline(cc->io, CONTROL_WRITE_TIMEOUT);
	if (io_out_len(cc->io) == 0)
		io_reschedule(cc->io);
}

/* ---- list and show, on the work queue ---- */

static void
ctl_info(struct buf *b, const char *key, const char *value)
{
	if (value == NULL)
		return;
	buf_printf(b, "info %s ", key);
	ctlproto_word_encode(b, value);
	buf_append(b, "\n", 1);
}

static int
ctl_show_content(struct ctl_job *job, const struct scheduler_entry *e,
    struct spool_reader *rd)
{
	struct buf content;
	const char *data;
	size_t len;
	int r;

	buf_init(&content, CONTROL_SHOW_MAX);
	while ((r = spool_reader_next(rd, &data, &len)) == 1)
		if (buf_append(&content, data, len) == -1) {
			r = -1;
			break;
		}
	if (r == 0) {
		const struct envelope *env = &e->env;
		char num[32];

		ctl_info(&job->out, "client_addr", env->client_addr);
		ctl_info(&job->out, "client_name", env->client_name);
		ctl_info(&job->out, "helo", env->helo);
		ctl_info(&job->out, "proto", env->proto);
		ctl_info(&job->out, "tls", env->tls);
		ctl_info(&job->out, "auth_user", env->auth_user);
		ctl_info(&job->out, "envid", env->envid);
		snprintf(num, sizeof(num), "%d", env->ret);
		ctl_info(&job->out, "ret", env->ret != 0 ? (env->ret == 1 ?
		    "FULL" : "HDRS") : NULL);
		ctl_info(&job->out, "body", env->body == 1 ? "7BIT" :
		    env->body == 2 ? "8BITMIME" : env->body == 3 ?
		    "BINARYMIME" : NULL);
		ctl_info(&job->out, "smtputf8", env->smtputf8 ? "yes" : NULL);
		if (buf_printf(&job->out, "data %zu\n", content.len) == -1 ||
		    buf_append(&job->out, content.data != NULL ? content.data :
		    "", content.len) == -1 || buf_append(&job->out, "\n", 1) ==
		    -1)
			r = -1;
	}
	buf_free(&content);
	return r;
}

static void
ctl_job_work(void *arg)
{
	struct ctl_job *job = arg;
	struct ctlproto_list l = { NULL, 0 };
	uint64_t now = (uint64_t)time(NULL);
	size_t i, listed = 0;

	for (i = 0; i < job->n; i++) {
		const struct scheduler_entry *e = &job->entries[i];
		struct spool_reader *rd;
		const char *error;

		/* Delivered or deleted since the snapshot: not listed. */
		if ((rd = spool_reader_open(job->ctl->sp, e->id, &error)) ==
		    NULL)
			continue;
		ctlproto_list_add(&l, e->id, &e->env, spool_reader_size(rd),
		    e->held ? CTL_STATE_HELD : e->active ? CTL_STATE_ACTIVE :
		    CTL_STATE_QUEUED, now);
		if (ctlproto_msg_encode(&l.msgs[l.n - 1], &job->out) == -1 ||
		    (job->show && ctl_show_content(job, e, rd) == -1)) {
			spool_reader_close(rd);
			buf_free(&job->out);
			buf_init(&job->out, 1024);
			buf_printf(&job->out, "err failed cannot read the "
			    "queue file of %s\n", e->id);
			ctlproto_list_free(&l);
			return;
		}
		spool_reader_close(rd);
		listed++;
	}
	ctlproto_list_free(&l);
	if (job->show && listed == 0)
		buf_printf(&job->out, "err notfound no such message in the "
		    "queue\n");
	else
		buf_printf(&job->out, "ok %zu listed\n", listed);
}

/* A whole answer made on the work queue: send it, then close. */
static void
ctl_send_answer(struct control *ctl, uint64_t conn_id, const struct buf *out)
{
	struct ctl_conn *cc = ctl_conn_find(ctl, conn_id);

	if (cc == NULL)
		return;		/* the client is gone */
	io_write(cc->io, out->data != NULL ? out->data : "", out->len);
	cc->closing = true;
	io_set_deadline(cc->io, CONTROL_WRITE_TIMEOUT);
	if (io_out_len(cc->io) == 0)
		io_reschedule(cc->io);
}

static void
ctl_job_done(void *arg)
{
	struct ctl_job *job = arg;

	ctl_send_answer(job->ctl, job->conn_id, &job->out);
	scheduler_entries_free(job->entries, job->n);
	buf_free(&job->out);
	free(job);
}

static void
ctl_list(struct ctl_conn *cc, const char *id, bool show)
{
	struct ctl_job *job = xcalloc(1, sizeof(*job));

	job->ctl = cc->ctl;
	job->conn_id = cc->id;
	job->show = show;
	job->n = scheduler_snapshot(cc->ctl->sched, id, &job->entries);
	buf_init(&job->out, SIZE_MAX / 2);
	if (id != NULL && job->n == 0) {
		scheduler_entries_free(job->entries, job->n);
		buf_free(&job->out);
		free(job);
		ctl_finish(cc, "err notfound no message %s in the queue", id);
		return;
	}
	workq_run(cc->ctl->wq, ctl_job_work, ctl_job_done, job);
}

/* ---- trace, on the work queue ---- */

/*
 * The ring's lines for the query, each as a "line" line, then the status.
 * On the work queue: a full ring (20000 lines) takes some milliseconds,
 * and trace_lookup() holds the ring's mutex only, never the loop.
 */
static void
ctl_trace_work(void *arg)
{
	struct ctl_trace_job *job = arg;
	struct buf lines;
	const char *error = "", *p, *end, *nl;
	size_t sent = 0;
	int n;

	buf_init(&lines, CTLPROTO_TRACE_MAX);
	n = trace_lookup(job->ctl->trace, job->query, &lines, &error);
	if (n == -1 && errno != EMSGSIZE) {
		buf_printf(&job->out, "err bad %s\n", error);
		buf_free(&lines);
		return;
	}
	/* Each line ends in LF (a line holding an LF itself becomes two:
	 * the answer stays one log line per "line" line). */
	p = lines.data;
	end = p != NULL ? p + lines.len : NULL;
	while (p != NULL && p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		if (ctlproto_trace_line_encode(&job->out, p, (size_t)(nl - p))
		    == -1)
			break;
		sent++;
		p = nl + 1;
	}
	buf_free(&lines);
	if (n == -1)
		buf_printf(&job->out, "ok %zu truncated: the answer stops at "
		    "%u MiB; read log_file for the rest\n", sent,
		    CTLPROTO_TRACE_MAX / (1024 * 1024));
	else if (n == 0)
		buf_printf(&job->out, "err notfound the daemon has no recent "
		    "line about it\n");
	else
		buf_printf(&job->out, "ok %zu lines\n", sent);
}

static void
ctl_trace_done(void *arg)
{
	struct ctl_trace_job *job = arg;

	ctl_send_answer(job->ctl, job->conn_id, &job->out);
	buf_free(&job->out);
	free(job);
}

static void
ctl_trace(struct ctl_conn *cc, const char *query)
{
	struct ctl_trace_job *job;

	if (cc->ctl->trace == NULL) {
		ctl_finish(cc, "err failed this daemon keeps no trace");
		return;
	}
	job = xcalloc(1, sizeof(*job));
	job->ctl = cc->ctl;
	job->conn_id = cc->id;
	strlcpy(job->query, query, sizeof(job->query));
	/* The lines (CTLPROTO_TRACE_MAX), their "line " prefixes, the
	 * status line: bounded by construction. */
	buf_init(&job->out, SIZE_MAX / 2);
	workq_run(cc->ctl->wq, ctl_trace_work, ctl_trace_done, job);
}

/* ---- queue changes, through the scheduler ---- */

struct ctl_admin_ctx {
	struct control *ctl;
	char id[QUEUE_ID_MAX];	/* the message named, or "" */
	const char *verb;	/* "deleted", "held"... */
};

static void
ctl_admin_done(void *arg, uint64_t cookie,
    const struct scheduler_admin_result *res)
{
	struct ctl_admin_ctx *ctx = arg;
	struct ctl_conn *cc = ctl_conn_find(ctx->ctl, cookie);

	if (cc != NULL) {
		if (ctx->id[0] != '\0' && res->matched == 0)
			ctl_finish(cc, "err notfound no message %s in the "
			    "queue", ctx->id);
		else if (res->failed > 0)
			ctl_finish(cc, "err failed %zu of %zu not %s: %s",
			    res->failed, res->matched, ctx->verb, res->error);
		else
			ctl_finish(cc, "ok %zu %zu message%s %s", res->done,
			    res->done, res->done == 1 ? "" : "s", ctx->verb);
	}
	free(ctx);
}

static void
ctl_admin(struct ctl_conn *cc, const struct ctlproto_request *req)
{
	struct ctl_admin_ctx *ctx = xcalloc(1, sizeof(*ctx));
	struct scheduler_select sel;
	enum scheduler_admin_op op = SCHED_ADMIN_FLUSH;

	memset(&sel, 0, sizeof(sel));
	ctx->ctl = cc->ctl;
	if (req->has_arg && req->cmd != CTL_CMD_FLUSH_DOMAIN &&
	    req->cmd != CTL_CMD_DELETE_SENDER &&
	    req->cmd != CTL_CMD_DELETE_RCPT) {
		strlcpy(ctx->id, req->arg, sizeof(ctx->id));
		sel.id = ctx->id;
	}
	switch (req->cmd) {
	case CTL_CMD_FLUSH:
		ctx->verb = "flushed";
		break;
	case CTL_CMD_FLUSH_DOMAIN:
		ctx->verb = "flushed";
		sel.domain = req->arg;
		break;
	case CTL_CMD_DELETE:
	case CTL_CMD_DELETE_ALL:
		op = SCHED_ADMIN_DELETE;
		ctx->verb = "deleted";
		break;
	case CTL_CMD_DELETE_SENDER:
		op = SCHED_ADMIN_DELETE;
		ctx->verb = "deleted";
		sel.sender = req->arg;
		break;
	case CTL_CMD_DELETE_RCPT:
		op = SCHED_ADMIN_DELETE;
		ctx->verb = "deleted";
		sel.rcpt = req->arg;
		break;
	case CTL_CMD_HOLD:
		op = SCHED_ADMIN_HOLD;
		ctx->verb = "held";
		break;
	case CTL_CMD_RELEASE:
		op = SCHED_ADMIN_RELEASE;
		ctx->verb = "released";
		break;
	case CTL_CMD_BOUNCE:
		op = SCHED_ADMIN_BOUNCE;
		ctx->verb = "bounced";
		break;
	case CTL_CMD_LIST:
	case CTL_CMD_SHOW:
	case CTL_CMD_TRACE:
		fatalx("control: %d is not a queue change", req->cmd);
	}
	/* The answer may come during this call (ctl_finish only queues). */
	scheduler_admin(cc->ctl->sched, op, &sel, ctl_admin_done, ctx, cc->id);
}

/* ---- connections ---- */

static void
ctl_request(struct ctl_conn *cc, const char *line, size_t len)
{
	struct ctlproto_request req;
	const char *error;
	char arg[CTLPROTO_ARG_MAX * 4];

	if (ctlproto_request_parse(line, len, &req, &error) == -1) {
		log_warn("control: uid=%u pid=%ld bad request: %s",
		    (unsigned int)cc->uid, (long)cc->pid, error);
		ctl_finish(cc, "err bad %s", error);
		return;
	}
	log_escape(arg, sizeof(arg), req.arg, strlen(req.arg));
	log_info("control: uid=%u pid=%ld request=%s%s%s",
	    (unsigned int)cc->uid, (long)cc->pid, ctlproto_cmd_name(req.cmd),
	    req.has_arg ? " arg=" : "", req.has_arg ? arg : "");
	switch (req.cmd) {
	case CTL_CMD_LIST:
		ctl_list(cc, req.has_arg ? req.arg : NULL, false);
		return;
	case CTL_CMD_SHOW:
		ctl_list(cc, req.arg, true);
		return;
	case CTL_CMD_TRACE:
		ctl_trace(cc, req.arg);
		return;
	default:
		ctl_admin(cc, &req);
		return;
	}
}

static void
ctl_conn_cb(struct io *io, enum io_event ev, void *arg)
{
	struct ctl_conn *cc = arg;
	long lf;

	(void)io;
	switch (ev) {
	case IO_DATAIN:
		if (cc->closing && io_out_len(cc->io) == 0) {
			ctl_conn_free(cc);
			return;
		}
		if (cc->busy || cc->closing) {
			/* One request per connection: ignore the rest. */
			io_in_drain(cc->io, io_in_len(cc->io));
			return;
		}
		lf = io_in_find_lf(cc->io, CTLPROTO_LINE_MAX);
		if (lf < 0) {
			if (io_in_len(cc->io) >= CTLPROTO_LINE_MAX) {
				cc->busy = true;
				log_warn("control: uid=%u pid=%ld request too "
				    "long", (unsigned int)cc->uid,
				    (long)cc->pid);
				ctl_finish(cc, "err bad request too long");
			}
			return;
		}
		{
			char line[CTLPROTO_LINE_MAX];

			io_in_copy(cc->io, line, (size_t)lf);
			io_in_drain(cc->io, (size_t)lf + 1);
			cc->busy = true;
			io_pause_read(cc->io);
			io_set_deadline(cc->io, 0);
			ctl_request(cc, line, (size_t)lf);
		}
		return;
	case IO_LOWAT:
		if (cc->closing && io_out_len(cc->io) == 0)
			ctl_conn_free(cc);
		return;
	case IO_TIMEOUT:
		log_info("control: uid=%u pid=%ld timed out",
		    (unsigned int)cc->uid, (long)cc->pid);
		ctl_conn_free(cc);
		return;
	case IO_DISCONNECTED:
	case IO_ERROR:
		/* An answer still owed finds the connection gone. */
		ctl_conn_free(cc);
		return;
	}
}

static void
ctl_conn_free(struct ctl_conn *cc)
{
	struct control *ctl = cc->ctl;

	TAILQ_REMOVE(&ctl->conns, cc, entry);
	ctl->nconns--;
	io_free(cc->io);
	free(cc);
}

/* root, the daemon's user, or a member of its group (any of its groups). */
static bool
ctl_peer_allowed(struct control *ctl, int fd, const struct ucred *cr)
{
	gid_t groups[CONTROL_GROUPS_MAX];
	socklen_t len = sizeof(groups);
	size_t i;

	if (cr->uid == 0 || cr->uid == ctl->uid || cr->gid == ctl->gid)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == -1)
		return false;
	for (i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == ctl->gid)
			return true;
	return false;
}

static void
ctl_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct control *ctl = arg;
	struct ctl_conn *cc;
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	int fd;

	(void)what;
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1) {
		if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("control: accept: %s", strerror(errno));
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) == -1) {
		log_warn("control: SO_PEERCRED: %s", strerror(errno));
		close(fd);
		return;
	}
	if (ctl->nconns >= CONTROL_CONNS_MAX) {
		log_warn("control: uid=%u pid=%ld refused: %d connections "
		    "already", (unsigned int)cr.uid, (long)cr.pid,
		    CONTROL_CONNS_MAX);
		close(fd);
		return;
	}
	cc = xcalloc(1, sizeof(*cc));
	cc->ctl = ctl;
	cc->id = ++ctl->next_id;
	cc->uid = cr.uid;
	cc->pid = cr.pid;
	cc->io = io_new(ctl->base, fd, CTLPROTO_LINE_MAX, ctl_conn_cb, cc);
	TAILQ_INSERT_TAIL(&ctl->conns, cc, entry);
	ctl->nconns++;
	if (!ctl_peer_allowed(ctl, fd, &cr)) {
		log_warn("control: refused uid=%u gid=%u pid=%ld: not root, "
		    "the daemon's user or in its group",
		    (unsigned int)cr.uid, (unsigned int)cr.gid, (long)cr.pid);
		cc->busy = true;
		io_pause_read(cc->io);
		ctl_finish(cc, "err denied only root, the daemon's user and "
		    "members of its group may use the control socket");
		return;
	}
	io_set_deadline(cc->io, CONTROL_REQUEST_TIMEOUT);
}

struct control *
control_new(struct event_base *base, int fd, const char *path,
    struct scheduler *sched, struct spool *sp, struct workq *wq,
    struct trace *trace, uid_t uid, gid_t gid)
{
	struct control *ctl = xcalloc(1, sizeof(*ctl));

	ctl->base = base;
	ctl->fd = fd;
	ctl->path = xstrdup(path);
	ctl->sched = sched;
	ctl->sp = sp;
	ctl->wq = wq;
	ctl->trace = trace;
	ctl->uid = uid;
	ctl->gid = gid;
	TAILQ_INIT(&ctl->conns);
	ctl->ev = event_new(base, fd, EV_READ | EV_PERSIST, ctl_accept_cb,
	    ctl);
	if (ctl->ev == NULL || event_add(ctl->ev, NULL) == -1)
		fatalx("control: cannot watch the control socket");
	return ctl;
}

void
control_free(struct control *ctl)
{
	struct ctl_conn *cc;

	if (ctl == NULL)
		return;
	while ((cc = TAILQ_FIRST(&ctl->conns)) != NULL)
		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): free unlinks */
		ctl_conn_free(cc);
	event_free(ctl->ev);
	close(ctl->fd);
	if (unlink(ctl->path) == -1 && errno != ENOENT)
		log_warn("control: cannot remove %s: %s", ctl->path,
		    strerror(errno));
	free(ctl->path);
	free(ctl);
}
