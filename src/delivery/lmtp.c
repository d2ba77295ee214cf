/*
 * lmtp.c: what is specific to local delivery over LMTP (`deliver lmtp`):
 * which recipients take the client path, the RCPT TO form of a local
 * address, and check-config's look at the target.
 *
 * Entry points: lmtp_via_client, lmtp_rcpt_addr, lmtp_check_target.
 *
 * The delivery itself is remote.c's: one LMTP transaction per message
 * carrying all its local recipients (RFC 2033 4.2: one reply per
 * accepted recipient after the final dot), connection reuse, timeouts,
 * back-off when the server is down. The scheduler applies each
 * recipient's reply: 2xx delivered, 4xx deferred and retried, 5xx
 * bounced with the server's reply in the report.
 *
 * SECURITY: lmtp_check_target runs in the CLI with the caller's rights;
 * it connects but sends nothing. lmtp_rcpt_addr reads addresses the
 * policy layer produced (never raw client text).
 * STANDARDS: RFC 2033 (LMTP), RFC 5321 4.1.2 (Dot-string and
 * Quoted-string local parts).
 * OWNERSHIP: lmtp_rcpt_addr's result belongs to the caller.
 */
#include "delivery/lmtp.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netdb.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "lib/util.h"
#include "mailaddr/mailaddr.h"
#include "queue/envelope.h"

#define LMTP_CHECK_TIMEOUT_MS	3000

bool
lmtp_via_client(const struct conf *c, const struct envelope_rcpt *r)
{
	return r->kind == RCPT_KIND_REMOTE || c->deliver_lmtp != NULL;
}

char *
lmtp_rcpt_addr(const char *addr)
{
	const char *at = strrchr(addr, '@'), *p, *end;
	char *lp, *out, *o;

	if (at == NULL || at == addr)
		return NULL;
	lp = xstrndup(addr, (size_t)(at - addr));
	end = mailaddr_scan_dot_string(lp, MAILADDR_UTF8, NULL, NULL);
	if (end != NULL && *end == '\0') {
		free(lp);
		return NULL;
	}
	/* '"' and '\' become quoted pairs; the rest is qtext as it is. */
	o = out = xmalloc(2 * strlen(lp) + strlen(at) + 3);
	*o++ = '"';
	for (p = lp; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			*o++ = '\\';
		*o++ = *p;
	}
	*o++ = '"';
	memcpy(o, at, strlen(at) + 1);
	free(lp);
	return out;
}

/* The target as written after "deliver lmtp" ("inet:[::1]:24"). */
static const char *
lmtp_target_text(const struct conf_route *t)
{
	return t->text != NULL && strncmp(t->text, "lmtp:", 5) == 0 ?
	    t->text + 5 : "?";
}

/* Connect fd to sa within the timeout. Returns 0, or -1 with errno. */
static int
lmtp_check_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct pollfd pfd;
	socklen_t elen = sizeof(int);
	int flags, err = 0, r;

	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
		return -1;
	if (connect(fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -1;
	pfd.fd = fd;
	pfd.events = POLLOUT;
	while ((r = poll(&pfd, 1, LMTP_CHECK_TIMEOUT_MS)) == -1 &&
	    errno == EINTR)
		;
	if (r == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	if (r == -1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == -1)
		return -1;
	if (err != 0) {
		errno = err;
		return -1;
	}
	return 0;
}

static enum lmtp_check
lmtp_check_unix(const struct conf_route *t, char *msg, size_t msgsize)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd;

	if (stat(t->path, &st) == -1) {
		snprintf(msg, msgsize, "deliver lmtp unix:%s: %s (is the LMTP "
		    "server running? mail waits in the queue until it is)",
		    t->path, strerror(errno));
		return LMTP_CHECK_WARN;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(msg, msgsize, "deliver lmtp unix:%s: not a socket",
		    t->path);
		return LMTP_CHECK_ERROR;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	/* conf_route_parse() refused paths that do not fit. */
	strlcpy(sun.sun_path, t->path, sizeof(sun.sun_path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    lmtp_check_connect(fd, (struct sockaddr *)&sun,
	    sizeof(sun)) == -1) {
		snprintf(msg, msgsize, "deliver lmtp unix:%s: cannot connect: "
		    "%s (mail waits in the queue until it can)", t->path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return LMTP_CHECK_WARN;
	}
	close(fd);
	return LMTP_CHECK_OK;
}

static enum lmtp_check
lmtp_check_inet(const struct conf_route *t, char *msg, size_t msgsize)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[16], why[256] = "no address";
	int fd, r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%u", t->port);
	if ((r = getaddrinfo(t->host, port, &hints, &res)) != 0) {
		snprintf(msg, msgsize, "deliver lmtp %s: %s (mail waits in "
		    "the queue until it resolves)", lmtp_target_text(t),
		    gai_strerror(r));
		return LMTP_CHECK_WARN;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol)) == -1) {
			strlcpy(why, strerror(errno), sizeof(why));
			continue;
		}
		r = lmtp_check_connect(fd, ai->ai_addr, ai->ai_addrlen);
		if (r == -1)
			strlcpy(why, strerror(errno), sizeof(why));
		close(fd);
		if (r == 0) {
			freeaddrinfo(res);
			return LMTP_CHECK_OK;
		}
	}
	freeaddrinfo(res);
	snprintf(msg, msgsize, "deliver lmtp %s: cannot connect: %s (mail "
	    "waits in the queue until it can)", lmtp_target_text(t), why);
	return LMTP_CHECK_WARN;
}

enum lmtp_check
lmtp_check_target(const struct conf *c, char *msg, size_t msgsize)
{
	const struct conf_route *t = c->deliver_lmtp;

	if (msgsize > 0)
		msg[0] = '\0';
	if (t == NULL)
		return LMTP_CHECK_OK;
	if (t->kind == CONF_ROUTE_LMTP_UNIX)
		return lmtp_check_unix(t, msg, msgsize);
	return lmtp_check_inet(t, msg, msgsize);
}
