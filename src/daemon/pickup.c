/*
 * pickup.c: local injection on the daemon's side (issue 6).
 *
 * Entry points: pickup_prepare (at start, as root: run_dir, the maildrop,
 * the RUN_DIR/sendmail socket), pickup_new / pickup_stop / pickup_free
 * (the maildrop pickup).
 *
 * The pickup reads the maildrop now and every minute (a message dropped
 * while the daemon was starting is not stranded). One file at a time, on
 * its own worker thread (the loop never touches the files): the file is
 * opened (O_NOFOLLOW, a regular file with one link), its envelope read
 * and checked (local/maildrop.c), and its owner's login name looked up;
 * then, on the loop, a session of role local is started on one end of a
 * socketpair for that uid, and the worker speaks SMTP to it with the
 * file's envelope and message (local/client.c). So a dropped message
 * gets exactly what the sendmail socket gives: Received:, Date:,
 * Message-ID:, the X-Authentication-Warning: of a foreign sender, DKIM
 * signing, the size, line and recipient limits, and the spool's commit.
 *
 * SECURITY: maildrop files are written by local users (through the
 * setgid petrel-postdrop, but a user owns the file it left and may change
 * it): the identity is the file's owner (fstat), and a file whose
 * recorded uid differs, that is not a regular file, that is larger than
 * max_message_size allows or whose envelope is malformed is moved to
 * maildrop/corrupt/ and logged, never deleted, never trusted. The file is
 * removed only after the session's 250 (on disk); a 4xx or a broken
 * session leaves it for the next round. A permanent refusal moves it to
 * corrupt/ with the reply in the log (not yet: a bounce to the sender).
 * A recipient refused for good is logged and the others get the message.
 * OWNERSHIP: the pickup owns its worker pool, its timer and the job under
 * way; jobs carry the pickup pointer, which outlives them (pickup_free
 * runs the pool's remaining callbacks before it frees anything).
 */
#include "daemon/pickup.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "local/local.h"
#include "smtp/smtp.h"

#define PICKUP_INTERVAL		60		/* seconds between rounds */
#define PICKUP_FILES_MAX	1000		/* files per round */
#define PICKUP_STALE_TMP	(24 * 3600)	/* a "t" file this old is a
						 * dead postdrop's */
#define PICKUP_ENV_MAX		((uint64_t)MAILDROP_RCPTS_MAX * \
				    (MAILDROP_LINE_MAX + 2) + 8192)
#define PICKUP_IO_TIMEOUT	600		/* seconds per reply */

struct pickup {
	struct event_base *base;
	struct smtp_server *srv;
	struct workq *wq;
	struct event *timer;
	char *dir;
	char *hostname;			/* for the notices it sends */
	uint64_t max_size;
	bool stopping;
	bool busy;			/* a round is under way */
	char **names;			/* this round's files */
	size_t nnames, next;
};

enum pickup_result {
	PICKUP_SKIP,			/* gone, or not ours to read */
	PICKUP_READY,			/* prepared: feed it */
	PICKUP_CORRUPT,			/* moved to corrupt/ */
	PICKUP_QUEUED,			/* 250: removed */
	PICKUP_RETRY,			/* 4xx or broken: left in place */
	PICKUP_REFUSED,			/* 5xx: moved to corrupt/ */
	PICKUP_RETURNED,		/* 5xx: returned to the sender */
};

/* The refusals a notice to the sender lists, at most this long. */
#define PICKUP_NOTICE_MAX	(16 * 1024)
/* The original header section quoted in a notice, at most. */
#define PICKUP_NOTICE_HEADER	(32 * 1024)
#define PICKUP_NOTICE_QUOTE	"\r\n-- The header of your message --\r\n\r\n"

struct pickup_job {
	struct pickup *p;
	char name[64];
	char path[4096];
	FILE *fp;
	struct maildrop_env env;
	uint64_t offset;
	uid_t uid;
	char user[64];
	bool has_user;
	int fd;				/* the worker's end of the pair */
	enum pickup_result result;
	char msg[1200];			/* logged on the loop */
	enum log_level level;
};

/* ---- start-up ---- */

static int
pickup_dir(const char *path, mode_t mode, uid_t uid, gid_t gid, bool chown_it)
{
	if (mkdir_p(path, (unsigned int)mode) == -1) {
		log_err("daemon: cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	/* The mode first: once the directory is the daemon user's, root
	 * needs CAP_FOWNER to chmod it, which the systemd unit does not
	 * grant (contrib/petrel.service). chown keeps the sticky bit. */
	if (chmod(path, mode) == -1 ||
	    (chown_it && chown(path, uid, gid) == -1)) {
		log_err("daemon: cannot set the owner or mode of %s: %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

int
pickup_prepare(const struct conf *c, uid_t uid, gid_t gid, bool chown_them)
{
	struct sockaddr_un sun;
	struct group *gr;
	struct stat st;
	gid_t dropgid = gid;
	char corrupt[4096];
	int fd;

	if (chown_them) {
		if ((gr = getgrnam("petreldrop")) != NULL)
			dropgid = gr->gr_gid;
		else
			log_warn("daemon: group petreldrop does not exist "
			    "(scripts/deps.sh or the package creates it): "
			    "only root's sendmail can use the maildrop "
			    "while the daemon is down");
	}
	snprintf(corrupt, sizeof(corrupt), "%s/corrupt", c->maildrop);
	if (pickup_dir(c->run_dir, 0755, uid, gid, chown_them) == -1 ||
	    pickup_dir(c->maildrop, 01730, uid, dropgid, chown_them) == -1 ||
	    pickup_dir(corrupt, 0700, uid, gid, chown_them) == -1)
		return -1;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/sendmail",
	    c->run_dir) >= sizeof(sun.sun_path)) {
		log_err("daemon: run_dir %s: the socket path is too long",
		    c->run_dir);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (lstat(sun.sun_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_err("daemon: %s exists and is not a socket",
			    sun.sun_path);
			close(fd);
			return -1;
		}
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			log_err("daemon: another petrel serve answers on %s",
			    sun.sun_path);
			close(fd);
			return -1;
		}
		close(fd);
		(void)unlink(sun.sun_path);	/* stale */
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
		    0)) == -1)
			return -1;
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    chmod(sun.sun_path, 0666) == -1 ||
	    (chown_them && chown(sun.sun_path, uid, gid) == -1) ||
	    listen(fd, 128) == -1) {
		log_err("daemon: cannot listen on %s: %s", sun.sun_path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- the pickup ---- */

static void pickup_next(struct pickup *);

static void
pickup_free_names(struct pickup *p)
{
	size_t i;

	for (i = 0; i < p->nnames; i++)
		free(p->names[i]);
	free(p->names);
	p->names = NULL;
	p->nnames = p->next = 0;
}

/* Worker: the round's file names; stale temporary files removed. */
static void
pickup_list_work(void *arg)
{
	struct pickup *p = arg;
	struct dirent *de;
	struct stat st;
	time_t now = time(NULL);
	DIR *d;
	int dfd;

	if ((d = opendir(p->dir)) == NULL)
		return;
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL && p->nnames < PICKUP_FILES_MAX) {
		if (strlen(de->d_name) != 17 ||
		    strspn(de->d_name + 1, "0123456789abcdef") != 16)
			continue;
		if (de->d_name[0] == 'm') {
			p->names = xrealloc(p->names, (p->nnames + 1) *
			    sizeof(*p->names));
			p->names[p->nnames++] = xstrdup(de->d_name);
		} else if (de->d_name[0] == 't' &&
		    fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    now - st.st_mtime > PICKUP_STALE_TMP)
			(void)unlinkat(dfd, de->d_name, 0);
	}
	closedir(d);
}

static void
pickup_list_done(void *arg)
{
	struct pickup *p = arg;

	if (p->nnames > 0)
		log_info("pickup: maildrop=%s files=%zu", p->dir, p->nnames);
	pickup_next(p);
}

static void
pickup_round(struct pickup *p)
{
	if (p->busy || p->stopping)
		return;
	p->busy = true;
	workq_run(p->wq, pickup_list_work, pickup_list_done, p);
}

static void
pickup_timercb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pickup_round(arg);
}

/* Worker: move the job's file to corrupt/, saying why. */
static void
pickup_move_aside(struct pickup_job *j, enum pickup_result res,
    const char *why)
{
	char to[4200];

	snprintf(to, sizeof(to), "%s/corrupt/%s", j->p->dir, j->name);
	j->result = res;
	j->level = LOG_LEVEL_WARN;
	if (rename(j->path, to) == -1) {
		snprintf(j->msg, sizeof(j->msg), "pickup: file=%s %s; cannot "
		    "move it to corrupt/: %s (left in place)", j->name, why,
		    strerror(errno));
		j->result = PICKUP_RETRY;
		return;
	}
	(void)fsync_dir(j->p->dir);
	snprintf(j->msg, sizeof(j->msg), "pickup: file=%s %s: moved to "
	    "%s/corrupt/", j->name, why, j->p->dir);
}

/* Worker: open the file, read and check its envelope, name its owner. */
static void
pickup_prepare_work(void *arg)
{
	struct pickup_job *j = arg;
	const char *err = NULL;
	struct passwd pw, *res = NULL;
	struct stat st;
	char buf[4096], why[200];
	int fd;

	j->result = PICKUP_SKIP;
	fd = open(j->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT)
			return;
		snprintf(why, sizeof(why), "cannot be opened (%s)",
		    strerror(errno));
		pickup_move_aside(j, PICKUP_CORRUPT, why);
		return;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		close(fd);
		pickup_move_aside(j, PICKUP_CORRUPT, "is not a regular file "
		    "with one link");
		return;
	}
	if ((uint64_t)st.st_size > j->p->max_size + PICKUP_ENV_MAX) {
		close(fd);
		pickup_move_aside(j, PICKUP_CORRUPT, "is larger than "
		    "max_message_size allows");
		return;
	}
	if ((j->fp = fdopen(fd, "r")) == NULL) {
		close(fd);
		j->result = PICKUP_RETRY;
		return;
	}
	if (maildrop_read_env(j->fp, &j->env, &j->offset, &err) == -1) {
		snprintf(why, sizeof(why), "malformed (%s)", err);
		pickup_move_aside(j, PICKUP_CORRUPT, why);
		return;
	}
	if (j->env.uid != st.st_uid) {
		snprintf(why, sizeof(why), "records uid %u but belongs to "
		    "uid %u", j->env.uid, (unsigned int)st.st_uid);
		pickup_move_aside(j, PICKUP_CORRUPT, why);
		return;
	}
	if (j->offset + j->env.size != (uint64_t)st.st_size) {
		snprintf(why, sizeof(why), "malformed (size %llu, but %llu "
		    "octets follow the envelope)",
		    (unsigned long long)j->env.size,
		    (unsigned long long)((uint64_t)st.st_size - j->offset));
		pickup_move_aside(j, PICKUP_CORRUPT, why);
		return;
	}
	j->uid = st.st_uid;
	if (getpwuid_r(j->uid, &pw, buf, sizeof(buf), &res) == 0 &&
	    res != NULL && strlen(res->pw_name) < sizeof(j->user)) {
		strlcpy(j->user, res->pw_name, sizeof(j->user));
		j->has_user = true;
	}
	j->result = PICKUP_READY;
}

/*
 * Worker: tell the sender, in a new transaction on the same session
 * (sender <>), which recipients were refused and why, quoting the
 * header section of the message. The sender never saw these refusals:
 * `sendmail` exited 0 once petrel-postdrop had the file. Returns the
 * reply code to the final dot, or -1.
 */
static int
pickup_notice(struct pickup_job *j, struct local_client *c,
    const struct buf *refused)
{
	char buf[PICKUP_NOTICE_HEADER + 1], *end;
	size_t n;
	int code;

	if (j->env.sender[0] == '\0')
		return -1;		/* <>: nobody to tell */
	if ((code = local_client_cmd(c, "MAIL FROM:<>%s",
	    local_is_8bit(j->env.sender) ? " SMTPUTF8" : "")) != 250 ||
	    (code = local_client_cmd(c, "RCPT TO:<%s>",
	    j->env.sender)) != 250 ||
	    (code = local_client_cmd(c, "DATA")) != 354)
		return code == -1 ? -1 : code;
	snprintf(buf, sizeof(buf),
	    "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
	    "To: <%s>\r\n"
	    "Subject: Undelivered Mail Returned to Sender\r\n"
	    "Auto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "\r\n"
	    "This is the mail system at host %s.\r\n\r\n"
	    "A message you sent (sendmail, while the mail system was\r\n"
	    "stopped) could not be delivered to the recipients below.\r\n"
	    "\r\n", j->p->hostname, j->env.sender, j->p->hostname);
	if (local_client_data(c, buf, strlen(buf)) == -1 ||
	    local_client_data(c, refused->data, refused->len) == -1)
		return -1;
	n = 0;
	if (fseeko(j->fp, (off_t)j->offset, SEEK_SET) == 0)
		n = fread(buf, 1, j->env.size < PICKUP_NOTICE_HEADER ?
		    (size_t)j->env.size : PICKUP_NOTICE_HEADER, j->fp);
	buf[n] = '\0';
	if ((end = strstr(buf, "\r\n\r\n")) != NULL)
		n = (size_t)(end - buf) + 2;
	if (local_client_data(c, PICKUP_NOTICE_QUOTE,
	    sizeof(PICKUP_NOTICE_QUOTE) - 1) == -1 ||
	    local_client_data(c, buf, n) == -1)
		return -1;
	return local_client_data_end(c);
}

/* Worker: one SMTP transaction with the local session. */
static void
pickup_feed_work(void *arg)
{
	struct pickup_job *j = arg;
	struct local_client c;
	struct timeval tv = { .tv_sec = PICKUP_IO_TIMEOUT };
	char params[300], buf[65536], why[400];
	uint64_t left = j->env.size;
	size_t i, n, accepted = 0;
	struct buf refused;
	bool utf8;
	int code;

	buf_init(&refused, PICKUP_NOTICE_MAX);
	(void)setsockopt(j->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(j->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	local_client_init(&c, j->fd);
	j->result = PICKUP_RETRY;
	j->level = LOG_LEVEL_WARN;
	if ((code = local_client_reply(&c)) != 220 ||
	    (code = local_client_cmd(&c, "EHLO pickup")) != 250)
		goto fail;
	utf8 = local_is_8bit(j->env.sender);
	for (i = 0; i < j->env.nrcpts; i++)
		utf8 = utf8 || local_is_8bit(j->env.rcpts[i]);
	local_mail_params(params, sizeof(params), j->env.ret, j->env.envid,
	    utf8);
	if ((code = local_client_cmd(&c, "MAIL FROM:<%s>%s", j->env.sender,
	    params)) != 250)
		goto fail;
	local_rcpt_params(params, sizeof(params), j->env.notify);
	for (i = 0; i < j->env.nrcpts; i++) {
		code = local_client_cmd(&c, "RCPT TO:<%s>%s", j->env.rcpts[i],
		    params);
		if (code == 250 || code == 251) {
			accepted++;
			continue;
		}
		if (code < 500)
			goto fail;	/* all again later: no duplicates */
		/* The others get the message, the sender a notice. */
		log_warn("pickup: file=%s uid=%u to=<%s> refused: %s",
		    j->name, (unsigned int)j->uid, j->env.rcpts[i], c.reply);
		(void)buf_printf(&refused, "<%s>: %s\r\n", j->env.rcpts[i],
		    c.reply);
	}
	if (accepted == 0) {
		strlcpy(why, "refused for good (no recipient accepted)",
		    sizeof(why));
		(void)local_client_cmd(&c, "RSET");
		goto refused;
	}
	if ((code = local_client_cmd(&c, "DATA")) != 354)
		goto fail;
	if (fseeko(j->fp, (off_t)j->offset, SEEK_SET) == -1) {
		code = -1;
		goto fail;
	}
	while (left > 0) {
		n = fread(buf, 1, left < sizeof(buf) ? (size_t)left :
		    sizeof(buf), j->fp);
		if (n == 0) {
			code = -1;	/* the file shrank: try again */
			goto fail;
		}
		if (local_client_data(&c, buf, n) == -1) {
			code = -1;
			goto fail;
		}
		left -= n;
	}
	if ((code = local_client_data_end(&c)) != 250)
		goto fail;
	strlcpy(why, c.reply, sizeof(why));	/* "250 2.0.0 queued as ..." */
	if (refused.len > 0 && pickup_notice(j, &c, &refused) != 250)
		log_warn("pickup: file=%s: no notice of the refused "
		    "recipients to <%s>: %s", j->name, j->env.sender,
		    j->env.sender[0] == '\0' ? "null sender" : c.reply);
	(void)local_client_cmd(&c, "QUIT");
	/* On disk in the spool: only now does the maildrop file go. */
	if (unlink(j->path) == -1 && errno != ENOENT) {
		j->level = LOG_LEVEL_ERR;
		snprintf(j->msg, sizeof(j->msg), "pickup: file=%s queued "
		    "(%.300s) but cannot be removed: %s: it will be sent again",
		    j->name, why, strerror(errno));
	} else {
		(void)fsync_dir(j->p->dir);
		j->level = LOG_LEVEL_INFO;
		snprintf(j->msg, sizeof(j->msg), "pickup: file=%s uid=%u "
		    "user=%s nrcpt=%zu size=%llu: %.300s", j->name,
		    (unsigned int)j->uid, j->has_user ? j->user : "unknown",
		    accepted, (unsigned long long)j->env.size, why);
	}
	j->result = PICKUP_QUEUED;
	buf_free(&refused);
	return;
fail:
	if (code < 500) {
		snprintf(j->msg, sizeof(j->msg), "pickup: file=%s not queued "
		    "(%.300s): left for the next round", j->name, c.reply);
		buf_free(&refused);
		return;
	}
	/* Refused for good (MAIL, DATA, the final dot): every recipient. */
	(void)buf_printf(&refused, "%s: %s\r\n", accepted > 0 ?
	    "the other recipients" : "every recipient", c.reply);
	snprintf(why, sizeof(why), "refused for good (%.300s)", c.reply);
	(void)local_client_cmd(&c, "RSET");
refused:
	if (pickup_notice(j, &c, &refused) == 250) {
		(void)local_client_cmd(&c, "QUIT");
		if (unlink(j->path) == 0)
			(void)fsync_dir(j->p->dir);
		j->result = PICKUP_RETURNED;
		j->level = LOG_LEVEL_WARN;
		snprintf(j->msg, sizeof(j->msg), "pickup: file=%s uid=%u %s: "
		    "returned to <%.300s>", j->name, (unsigned int)j->uid,
		    why, j->env.sender);
	} else {
		(void)local_client_cmd(&c, "QUIT");
		pickup_move_aside(j, PICKUP_REFUSED, why);
	}
	buf_free(&refused);
}

static void
pickup_job_free(struct pickup_job *j)
{
	if (j->fp != NULL)
		fclose(j->fp);
	if (j->fd != -1)
		close(j->fd);
	maildrop_env_free(&j->env);
	free(j);
}

static void
pickup_job_log(struct pickup_job *j)
{
	char esc[800];

	if (j->msg[0] == '\0')
		return;
	log_escape(esc, sizeof(esc), j->msg, strlen(j->msg));
	if (j->level == LOG_LEVEL_INFO)
		log_info("%s", esc);
	else if (j->level == LOG_LEVEL_ERR)
		log_err("%s", esc);
	else
		log_warn("%s", esc);
}

static void
pickup_feed_done(void *arg)
{
	struct pickup_job *j = arg;
	struct pickup *p = j->p;

	pickup_job_log(j);
	pickup_job_free(j);
	pickup_next(p);
}

static void
pickup_prepare_done(void *arg)
{
	struct pickup_job *j = arg;
	struct pickup *p = j->p;
	int sv[2];

	pickup_job_log(j);
	if (j->result != PICKUP_READY || p->stopping) {
		pickup_job_free(j);
		pickup_next(p);
		return;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("pickup: socketpair: %s; retrying next round",
		    strerror(errno));
		pickup_job_free(j);
		pickup_next(p);
		return;
	}
	smtp_server_local_session(p->srv, sv[0], (unsigned int)j->uid,
	    j->has_user ? j->user : NULL);
	j->fd = sv[1];
	j->msg[0] = '\0';
	workq_run(p->wq, pickup_feed_work, pickup_feed_done, j);
}

static void
pickup_next(struct pickup *p)
{
	struct pickup_job *j;

	if (p->stopping || p->next >= p->nnames) {
		pickup_free_names(p);
		p->busy = false;
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->p = p;
	j->fd = -1;
	maildrop_env_init(&j->env);
	strlcpy(j->name, p->names[p->next], sizeof(j->name));
	snprintf(j->path, sizeof(j->path), "%s/%s", p->dir, j->name);
	p->next++;
	workq_run(p->wq, pickup_prepare_work, pickup_prepare_done, j);
}

struct pickup *
pickup_new(struct event_base *base, struct smtp_server *srv,
    const struct conf *c)
{
	struct pickup *p = xcalloc(1, sizeof(*p));
	struct timeval tv = { .tv_sec = PICKUP_INTERVAL };

	p->base = base;
	p->srv = srv;
	p->dir = xstrdup(c->maildrop);
	p->hostname = xstrdup(c->hostname);
	p->max_size = c->max_message_size;
	p->wq = workq_new(base, 1);
	p->timer = event_new(base, -1, EV_PERSIST, pickup_timercb, p);
	evtimer_add(p->timer, &tv);
	pickup_round(p);
	return p;
}

void
pickup_stop(struct pickup *p)
{
	if (p == NULL)
		return;
	p->stopping = true;
	evtimer_del(p->timer);
}

void
pickup_free(struct pickup *p)
{
	if (p == NULL)
		return;
	p->stopping = true;
	workq_free(p->wq);	/* runs the callbacks still owed */
	pickup_free_names(p);
	event_free(p->timer);
	free(p->dir);
	free(p->hostname);
	free(p);
}
