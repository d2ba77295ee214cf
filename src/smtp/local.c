/*
 * local.c: local injection into the SMTP server (issue 6): the daemon's
 * RUN_DIR/sendmail Unix socket, which `petrel sendmail` talks SMTP to, and
 * sessions for maildrop pickup (src/daemon/pickup.c).
 *
 * Entry points: smtp_server_listen_local, smtp_local_acceptcb (the
 * listener's accept callback), smtp_server_local_session, and
 * smtp_local_detach (from smtp_server_free).
 *
 * SECURITY: the socket is mode 0666, so any local user connects. The
 * caller's uid comes from the kernel (SO_PEERCRED), never from anything it
 * sends; its login name from getpwuid_r() on a worker thread (NSS may read
 * files or ask a network service: never on the loop). A session of role
 * local relays like a trusted client (session.c); the identity goes into
 * Received: and, for a -f sender that is not the caller's own, into an
 * X-Authentication-Warning: header.
 * OWNERSHIP: a lookup job owns the accepted fd until it hands it to a
 * session; it holds a reference to the server's smtp_local_ctl, whose
 * srv is NULL once the server is freed (the job then closes the fd).
 */
#include "smtp/smtp.h"

#include <sys/socket.h>
#include <sys/types.h>

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/listener.h>

#include "lib/log.h"
#include "lib/util.h"
#include "lib/workq.h"
#include "smtp/smtp_private.h"

/* What outlives the server while lookups are on the workers. */
struct smtp_local_ctl {
	struct smtp_server *srv;	/* NULL once the server is gone */
	unsigned int refs;
};

struct smtp_local_job {
	struct smtp_local_ctl *ctl;
	int fd;
	uid_t uid;
	enum reply_id refuse;
	bool found;
	char user[64];
};

int
smtp_server_listen_local(struct smtp_server *srv, int fd)
{
	struct conf_listen l;

	memset(&l, 0, sizeof(l));
	l.role = CONF_ROLE_LOCAL;
	strlcpy(l.text, "sendmail", sizeof(l.text));
	strlcpy(l.host, "local", sizeof(l.host));
	if (srv->local == NULL) {
		srv->local = xcalloc(1, sizeof(*srv->local));
		srv->local->srv = srv;
		srv->local->refs = 1;
	}
	return smtp_server_listen(srv, fd, &l);
}

static void
smtp_local_ctl_unref(struct smtp_local_ctl *ctl)
{
	if (ctl != NULL && --ctl->refs == 0)
		free(ctl);
}

void
smtp_local_detach(struct smtp_server *srv)
{
	if (srv->local == NULL)
		return;
	srv->local->srv = NULL;
	smtp_local_ctl_unref(srv->local);
	srv->local = NULL;
}

/* The login name of uid (worker thread, or the loop without a pool). */
static void
smtp_local_lookup(void *arg)
{
	struct smtp_local_job *j = arg;
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (getpwuid_r(j->uid, &pw, buf, sizeof(buf), &res) == 0 &&
	    res != NULL && strlen(res->pw_name) < sizeof(j->user)) {
		strlcpy(j->user, res->pw_name, sizeof(j->user));
		j->found = true;
	}
}

static void
smtp_local_looked_up(void *arg)
{
	struct smtp_local_job *j = arg;
	struct smtp_server *srv = j->ctl->srv;

	if (srv == NULL || srv->shutting_down)
		close(j->fd);
	else
		smtp_session_start_local(srv, j->fd, j->uid,
		    j->found ? j->user : NULL, "sendmail", j->refuse);
	smtp_local_ctl_unref(j->ctl);
	free(j);
}

void
smtp_local_acceptcb(struct evconnlistener *evl, int fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct smtp_listener *l = arg;
	struct smtp_server *srv = l->srv;
	struct smtp_local_job *j;
	struct ucred cred;
	socklen_t len = sizeof(cred);

	(void)evl;
	(void)sa;
	(void)salen;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1 ||
	    len != sizeof(cred)) {
		log_warn("smtp: sendmail socket: no peer credentials: %s; "
		    "closing", strerror(errno));
		close(fd);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->ctl = srv->local;
	j->ctl->refs++;
	j->fd = fd;
	j->uid = cred.uid;
	/* No per-address limit: every local caller has the same "address". */
	j->refuse = srv->nsessions >= srv->rt->conf->max_connections ?
	    REPLY_TOO_MANY_CONN : REPLY_NONE;
	if (srv->workq != NULL)
		workq_run(srv->workq, smtp_local_lookup, smtp_local_looked_up,
		    j);
	else {
		smtp_local_lookup(j);
		smtp_local_looked_up(j);
	}
	smtp_server_accepted(l, fd);
}

void
smtp_server_local_session(struct smtp_server *srv, int fd, unsigned int uid,
    const char *user)
{
	if (srv->shutting_down) {
		close(fd);
		return;
	}
	evutil_make_socket_nonblocking(fd);
	smtp_session_start_local(srv, fd, (uid_t)uid, user, "pickup",
	    srv->nsessions >= srv->rt->conf->max_connections ?
	    REPLY_TOO_MANY_CONN : REPLY_NONE);
}
