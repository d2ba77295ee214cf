/*
 * ctlclient.c: one request over the daemon's control socket, for the
 * commands that talk to the running daemon (`petrel queue`, `mailq`,
 * `petrel trace`).
 *
 * Entry point: ctlclient_request().
 * SECURITY: runs as the caller; the daemon checks the caller's
 * credentials (SO_PEERCRED). The answer is trusted no further than its
 * grammar: lines over CTLPROTO_REPLY_LINE_MAX, a missing status line or
 * a line the caller's callback refuses make the answer a failure.
 * OWNERSHIP: the socket is opened and closed here.
 */
#include "cli/ctlclient.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/control.h"
#include "lib/buf.h"
#include "lib/util.h"

/* Connect to RUN_DIR/control: the socket, or -1 with errno. */
static int
ctlclient_connect(const struct conf *c, int timeout, char *path,
    size_t pathsize)
{
	struct sockaddr_un sun;
	struct timeval tv = { timeout, 0 };
	int fd, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s",
	    c->run_dir, CONTROL_SOCKET_NAME) >= sizeof(sun.sun_path)) {
		snprintf(path, pathsize, "%s/%s", c->run_dir,
		    CONTROL_SOCKET_NAME);
		errno = ENAMETOOLONG;
		return -1;
	}
	strlcpy(path, sun.sun_path, pathsize);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* The status line "ok N TEXT" or "err CODE TEXT" into ans. */
static void
ctlclient_status(const char *line, struct ctlclient_answer *ans)
{
	const char *p, *sp, *error;
	uint64_t n;
	char num[24];
	size_t len;

	if (strncmp(line, "ok ", 3) == 0) {
		p = line + 3;
		sp = strchr(p, ' ');
		len = sp != NULL ? (size_t)(sp - p) : strlen(p);
		if (len >= sizeof(num))
			len = sizeof(num) - 1;
		memcpy(num, p, len);
		num[len] = '\0';
		ans->n = parse_u64(num, 0, UINT64_MAX, &n, &error) == 0 ?
		    (unsigned long long)n : 0;
		strlcpy(ans->text, sp != NULL ? sp + 1 : "",
		    sizeof(ans->text));
		ans->result = CTLCLIENT_OK;
		return;
	}
	/* "err CODE TEXT" */
	p = line + 4;
	sp = strchr(p, ' ');
	len = sp != NULL ? (size_t)(sp - p) : strlen(p);
	if (len >= sizeof(ans->code))
		len = sizeof(ans->code) - 1;
	memcpy(ans->code, p, len);
	ans->code[len] = '\0';
	strlcpy(ans->text, sp != NULL ? sp + 1 : p, sizeof(ans->text));
	ans->result = strcmp(ans->code, "denied") == 0 ? CTLCLIENT_DENIED :
	    CTLCLIENT_ERR;
}

/* Send req on fd, read the answer; closes fd. */
static void
ctlclient_exchange(int fd, const struct ctlproto_request *req,
    ctlclient_line_cb cb, void *arg, struct ctlclient_answer *ans)
{
	struct buf b;
	FILE *fp;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	bool done = false;

	buf_init(&b, CTLPROTO_LINE_MAX);
	/* A refusal may be sent, and the socket closed, before the request
	 * is written (EPIPE): read it all the same. */
	if (ctlproto_request_format(req, &b) == -1 ||
	    (write_all(fd, b.data, b.len) == -1 && errno != EPIPE &&
	    errno != ECONNRESET)) {
		snprintf(ans->text, sizeof(ans->text), "cannot send the "
		    "request: %s", strerror(errno));
		buf_free(&b);
		close(fd);
		ans->result = CTLCLIENT_FAIL;
		return;
	}
	buf_free(&b);
	if ((fp = fdopen(fd, "r")) == NULL) {
		snprintf(ans->text, sizeof(ans->text), "fdopen: %s",
		    strerror(errno));
		close(fd);
		ans->result = CTLCLIENT_FAIL;
		return;
	}
	while ((n = getline(&line, &cap, fp)) > 0) {
		if (line[n - 1] != '\n' || (size_t)n > CTLPROTO_REPLY_LINE_MAX)
			break;
		line[--n] = '\0';
		if (strncmp(line, "ok ", 3) == 0 ||
		    strncmp(line, "err ", 4) == 0) {
			ctlclient_status(line, ans);
			done = true;
			break;
		}
		if (cb(arg, line, (size_t)n, fp) == -1)
			break;
	}
	if (!done) {
		snprintf(ans->text, sizeof(ans->text), "%s", ferror(fp) &&
		    (errno == EAGAIN || errno == EWOULDBLOCK) ?
		    "no answer from the daemon in time" :
		    "malformed or incomplete answer from the daemon");
		ans->result = CTLCLIENT_FAIL;
	}
	free(line);
	fclose(fp);
}

enum ctlclient_result
ctlclient_request(const struct conf *c, const struct ctlproto_request *req,
    int timeout, ctlclient_line_cb cb, void *arg,
    struct ctlclient_answer *ans)
{
	int fd;

	memset(ans, 0, sizeof(*ans));
	signal(SIGPIPE, SIG_IGN);
	fd = ctlclient_connect(c, timeout, ans->path, sizeof(ans->path));
	if (fd == -1) {
		ans->error = errno;
		snprintf(ans->text, sizeof(ans->text), "%s: %s", ans->path,
		    strerror(errno));
		if (errno == EACCES || errno == EPERM)
			ans->result = CTLCLIENT_DENIED;
		else if (errno == ENOENT || errno == ECONNREFUSED ||
		    errno == ENOTDIR)
			ans->result = CTLCLIENT_DOWN;
		else
			ans->result = CTLCLIENT_FAIL;
		return ans->result;
	}
	ctlclient_exchange(fd, req, cb, arg, ans);
	return ans->result;
}
