/*
 * sendmail.c: `petrel sendmail` (also the program invoked as sendmail,
 * newaliases or mailq): the sendmail command line that cron, PHP's mail(),
 * mail(1), mutt and monitoring scripts call.
 *
 * Entry point: cmd_sendmail. The message is read from stdin (a "." line
 * alone ends it unless -i), LF line ends become CRLF, Bcc: is removed,
 * From: is added when missing (login@hostname, the -F name or the login's
 * full name), and it is handed to the daemon over RUN_DIR/sendmail in an
 * SMTP session; the exit status is 0 only after the daemon's 250 (the
 * message is on disk). If the daemon does not answer, the message goes to
 * petrel-postdrop (beside this program), which leaves it in the maildrop
 * directory for the daemon to pick up when it starts.
 *
 * Exit statuses (sysexits.h, as sendmail): 0 sent; 64 usage; 65 the
 * message was refused (size, header limits, bad address list); 67 a
 * recipient is unknown; 69 refused otherwise, or -bp/-q failed; 70
 * internal error; 71 cannot start petrel-postdrop; 74 stdin read error;
 * 75 temporary failure (try again); 78 configuration error.
 *
 * SECURITY: runs with the caller's privileges (no setuid): the daemon
 * learns the uid from the kernel (SO_PEERCRED), postdrop from getuid().
 * STANDARDS: RFC 5321 (the session), RFC 5322 (header fields),
 * sendmail(8) and Postfix's sendmail(1) for the command line.
 * -bp and -q are the queue commands' (queue.c): the listing and a flush.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "local/local.h"

int cmd_sendmail(int argc, char **argv);
int queue_cli_mailq(const char *conf_path);	/* queue.c */
int queue_cli_flush(const char *conf_path);	/* queue.c */

struct sendmail {
	struct sendmail_args a;
	struct conf *conf;
	const char *conf_path;
	char login[64];		/* the caller's login, or its uid */
	char fullname[256];	/* from the passwd GECOS field */
	char sender[SENDMAIL_ADDR_MAX + 1];
	char **rcpts;
	size_t nrcpts;
	struct buf hdr;		/* the header section as read */
	struct buf out;		/* ... rewritten, From: added */
	char *first_body;	/* a body line read while looking for
				 * headers, or NULL */
	size_t first_body_len;
	bool body_started;	/* the empty line after the headers came */
	bool eof;		/* input ended ("." line or EOF) */
};

static void
sendmail_usage(void)
{
	fprintf(stderr,
	    "usage: sendmail [-t] [-i] [-f sender] [-F name] [-C file] "
	    "[-N dsn] [-R ret] [-V envid]\n"
	    "                [-bm|-bs|-bi|-bp] [-q] [recipient ...]\n");
}

static int
sendmail_add_rcpt(struct sendmail *sm, const char *addr, size_t len)
{
	const struct conf *c = sm->conf;
	const char *dom;

	if (len == 0 || len > SENDMAIL_ADDR_MAX)
		return -1;
	if (sm->nrcpts >= MAILDROP_RCPTS_MAX)
		return -1;
	sm->rcpts = xrealloc(sm->rcpts, (sm->nrcpts + 1) *
	    sizeof(*sm->rcpts));
	if (memchr(addr, '@', len) != NULL)
		sm->rcpts[sm->nrcpts++] = xstrndup(addr, len);
	else {
		/* A bare login ("root", cron's MAILTO): this host's name
		 * when it is one of our domains, else the first domain. */
		dom = conf_is_local_domain(c, c->hostname) || c->ndomains == 0 ?
		    c->hostname : c->domains[0];
		sm->rcpts[sm->nrcpts++] = xasprintf("%.*s@%s", (int)len, addr,
		    dom);
	}
	return 0;
}

static int
sendmail_header_rcpt(void *arg, const char *addr, size_t len)
{
	return sendmail_add_rcpt(arg, addr, len) == -1 ? 1 : 0;
}

/* Is line a header field's first line ("Name:") or a continuation? */
static bool
sendmail_is_header_line(const char *line, size_t len, bool after_field)
{
	size_t i;

	if (len > 0 && (line[0] == ' ' || line[0] == '\t'))
		return after_field;
	for (i = 0; i < len && line[i] > 0x20 && line[i] < 0x7f &&
	    line[i] != ':'; i++)
		;
	if (i == 0)
		return false;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	return i < len && line[i] == ':';
}

/* The "." line that ends input without -i: ".\n" or ".\r\n". */
static bool
sendmail_is_dot(const struct sendmail *sm, const char *line, size_t len)
{
	return !sm->a.i && ((len == 2 && memcmp(line, ".\n", 2) == 0) ||
	    (len == 3 && memcmp(line, ".\r\n", 3) == 0));
}

/*
 * Read the header section: up to the empty line, the first line that is
 * not a header field (it starts the body), the "." line or EOF.
 */
static int
sendmail_read_headers(struct sendmail *sm)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	bool first = true, after_field = false;

	buf_init(&sm->hdr, SENDMAIL_HEADER_MAX);
	for (;;) {
		n = getline(&line, &cap, stdin);
		if (n == -1) {
			free(line);
			if (ferror(stdin)) {
				fprintf(stderr, "sendmail: reading the message: "
				    "%s\n", strerror(errno));
				return LOCAL_EX_IOERR;
			}
			sm->eof = true;
			return 0;
		}
		if (sendmail_is_dot(sm, line, (size_t)n)) {
			sm->eof = true;
			break;
		}
		/* An mbox "From " line before the headers is not one. */
		if (first && n >= 5 && memcmp(line, "From ", 5) == 0) {
			first = false;
			continue;
		}
		first = false;
		if ((n == 1 && line[0] == '\n') ||
		    (n == 2 && memcmp(line, "\r\n", 2) == 0)) {
			sm->body_started = true;
			break;
		}
		if (!sendmail_is_header_line(line, (size_t)n, after_field)) {
			sm->first_body = line;	/* the body starts here */
			sm->first_body_len = (size_t)n;
			return 0;
		}
		after_field = true;
		if (buf_append(&sm->hdr, line, (size_t)n) == -1) {
			free(line);
			fprintf(stderr, "sendmail: the header section is "
			    "larger than %d octets\n", SENDMAIL_HEADER_MAX);
			return LOCAL_EX_DATAERR;
		}
	}
	free(line);
	return 0;
}

/* The rewritten header section, From: added, and the empty line. */
static int
sendmail_build_headers(struct sendmail *sm)
{
	const char *err = NULL;
	const char *name;
	bool has_from;
	char addr[SENDMAIL_ADDR_MAX + 300];
	char *from;

	buf_init(&sm->out, SENDMAIL_HEADER_MAX + 4096);
	if (sendmail_header_rewrite(sm->hdr.data != NULL ? sm->hdr.data : "",
	    sm->hdr.len, sm->a.t, sendmail_header_rcpt, sm, &sm->out,
	    &has_from, &err) == -1) {
		fprintf(stderr, "sendmail: %s\n", err);
		return LOCAL_EX_DATAERR;
	}
	if (!has_from) {
		snprintf(addr, sizeof(addr), "%s@%s", sm->login,
		    sm->conf->hostname);
		name = sm->a.fullname != NULL ? sm->a.fullname :
		    sm->fullname[0] != '\0' ? sm->fullname : NULL;
		from = sendmail_from_field(name, addr);
		(void)buf_append_str(&sm->out, from);
		free(from);
	}
	if (buf_append(&sm->out, "\r\n", 2) == -1) {
		fprintf(stderr, "sendmail: the header section is too large\n");
		return LOCAL_EX_DATAERR;
	}
	return 0;
}

/* Copy the rest of the message (after the headers) into c. */
static int
sendmail_copy_body(struct sendmail *sm, struct local_client *c, int *ioerr)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	*ioerr = 0;
	if (sm->first_body != NULL) {
		if (local_client_data(c, sm->first_body,
		    sm->first_body_len) == -1)
			return -1;
	}
	if (sm->eof)
		return 0;
	while ((n = getline(&line, &cap, stdin)) != -1) {
		if (sendmail_is_dot(sm, line, (size_t)n))
			break;
		if (local_client_data(c, line, (size_t)n) == -1) {
			free(line);
			return -1;
		}
	}
	if (n == -1 && ferror(stdin))
		*ioerr = errno != 0 ? errno : EIO;
	free(line);
	return 0;
}

/* Map a refusal to a sysexits code. */
static int
sendmail_exit_for(int code, int stage)
{
	if (code < 0 || (code >= 400 && code < 500))
		return LOCAL_EX_TEMPFAIL;
	if (stage == 'R')
		return LOCAL_EX_NOUSER;
	if (stage == 'D' || stage == 'M')
		return LOCAL_EX_DATAERR;
	return LOCAL_EX_UNAVAILABLE;
}

static int
sendmail_refused(struct local_client *c, int code, int stage,
    const char *what)
{
	fprintf(stderr, "sendmail: %s: %s\n", what, c->reply);
	if (code >= 0)
		(void)local_client_cmd(c, "QUIT");
	return sendmail_exit_for(code, stage);
}

static int
sendmail_connect(const struct conf *c)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/sendmail",
	    c->run_dir) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int
sendmail_smtp(struct sendmail *sm, int fd)
{
	struct local_client c;
	char params[300];
	size_t i;
	int code, ioerr;
	bool utf8;

	local_client_init(&c, fd);
	if ((code = local_client_reply(&c)) != 220)
		return sendmail_refused(&c, code, 'G', "the daemon refused "
		    "the connection");
	if ((code = local_client_cmd(&c, "EHLO localhost")) != 250)
		return sendmail_refused(&c, code, 'E', "EHLO");
	utf8 = local_is_8bit(sm->sender);
	for (i = 0; i < sm->nrcpts; i++)
		utf8 = utf8 || local_is_8bit(sm->rcpts[i]);
	local_mail_params(params, sizeof(params), sm->a.ret, sm->a.envid,
	    utf8);
	if ((code = local_client_cmd(&c, "MAIL FROM:<%s>%s", sm->sender,
	    params)) != 250)
		return sendmail_refused(&c, code, 'M', "sender refused");
	local_rcpt_params(params, sizeof(params), sm->a.notify);
	for (i = 0; i < sm->nrcpts; i++) {
		if ((code = local_client_cmd(&c, "RCPT TO:<%s>%s",
		    sm->rcpts[i], params)) != 250 && code != 251) {
			fprintf(stderr, "sendmail: recipient <%s> refused\n",
			    sm->rcpts[i]);
			return sendmail_refused(&c, code, 'R',
			    "nothing was sent");
		}
	}
	if ((code = local_client_cmd(&c, "DATA")) != 354)
		return sendmail_refused(&c, code, 'X', "DATA");
	if (local_client_data(&c, sm->out.data, sm->out.len) == -1 ||
	    sendmail_copy_body(sm, &c, &ioerr) == -1)
		return sendmail_refused(&c, -1, 'D', "sending the message");
	if (ioerr != 0) {
		/* Nothing is sent: close without the final dot. */
		fprintf(stderr, "sendmail: reading the message: %s; nothing "
		    "was sent\n", strerror(ioerr));
		return LOCAL_EX_IOERR;
	}
	if ((code = local_client_data_end(&c)) != 250)
		return sendmail_refused(&c, code, 'D', "message refused");
	(void)local_client_cmd(&c, "QUIT");
	return LOCAL_EX_OK;
}

/* petrel-postdrop beside this program (/proc/self/exe). */
static int
sendmail_postdrop_path(char *out, size_t size)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n <= 0)
		return -1;
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) == NULL)
		return -1;
	*slash = '\0';
	if ((size_t)snprintf(out, size, "%s/petrel-postdrop", self) >= size)
		return -1;
	return 0;
}

/* The daemon is down: the message goes to petrel-postdrop. */
static int
sendmail_postdrop(struct sendmail *sm, int connect_errno)
{
	char path[PATH_MAX], line[SENDMAIL_ADDR_MAX + 32];
	struct local_client c;
	int pfd[2], status, ioerr;
	size_t i;
	pid_t pid;
	bool bad = false;

	if (sendmail_postdrop_path(path, sizeof(path)) == -1 ||
	    access(path, X_OK) == -1) {
		fprintf(stderr, "sendmail: the daemon is not running (%s/"
		    "sendmail: %s) and petrel-postdrop cannot be found "
		    "beside this program; nothing was sent\n",
		    sm->conf->run_dir, strerror(connect_errno));
		return LOCAL_EX_TEMPFAIL;
	}
	if (pipe2(pfd, O_CLOEXEC) == -1 || (pid = fork()) == -1) {
		fprintf(stderr, "sendmail: cannot start %s: %s\n", path,
		    strerror(errno));
		return LOCAL_EX_OSERR;
	}
	if (pid == 0) {
		if (dup2(pfd[0], 0) == -1)
			_exit(LOCAL_EX_OSERR);
		if (sm->conf_path != NULL)
			execl(path, "petrel-postdrop", "-c", sm->conf_path,
			    (char *)NULL);
		else
			execl(path, "petrel-postdrop", (char *)NULL);
		fprintf(stderr, "sendmail: cannot run %s: %s\n", path,
		    strerror(errno));
		_exit(LOCAL_EX_OSERR);
	}
	close(pfd[0]);
	local_client_init(&c, pfd[1]);
	c.raw = true;
#define PUT(...) do { \
	int n_ = snprintf(line, sizeof(line), __VA_ARGS__); \
	if (n_ < 0 || (size_t)n_ >= sizeof(line) || \
	    write_all(pfd[1], line, (size_t)n_) == -1) \
		bad = true; \
} while (0)
	PUT("sender <%s>\n", sm->sender);
	if (sm->a.ret[0] != '\0')
		PUT("ret %s\n", sm->a.ret);
	if (sm->a.envid[0] != '\0')
		PUT("envid %s\n", sm->a.envid);
	if (sm->a.notify[0] != '\0')
		PUT("notify %s\n", sm->a.notify);
	for (i = 0; i < sm->nrcpts; i++)
		PUT("rcpt <%s>\n", sm->rcpts[i]);
	PUT("data\n");
#undef PUT
	/* The envelope lines are LF-ended; the message is CRLF from here. */
	if (!bad && (local_client_data(&c, sm->out.data, sm->out.len) == -1 ||
	    sendmail_copy_body(sm, &c, &ioerr) == -1 ||
	    (c.bol ? 0 : local_client_data(&c, "\n", 1)) == -1 ||
	    local_client_flush(&c) == -1))
		bad = true;
	if (!bad && ioerr != 0) {
		/* Kill postdrop before it can commit a cut message. */
		kill(pid, SIGTERM);
		fprintf(stderr, "sendmail: reading the message: %s; nothing "
		    "was sent\n", strerror(ioerr));
	}
	close(pfd[1]);
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return LOCAL_EX_OSERR;
	if (!bad && ioerr != 0)
		return LOCAL_EX_IOERR;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	fprintf(stderr, "sendmail: petrel-postdrop died (signal %d); nothing "
	    "was sent\n", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return LOCAL_EX_TEMPFAIL;
}

/* -bs: SMTP on stdin/stdout, relayed to the daemon's socket. */
static int
sendmail_relay(int fd)
{
	struct pollfd p[2];
	char buf[16384];
	ssize_t n;
	bool in_open = true;

	for (;;) {
		p[0].fd = in_open ? 0 : -1;
		p[0].events = POLLIN;
		p[1].fd = fd;
		p[1].events = POLLIN;
		if (poll(p, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			return LOCAL_EX_OSERR;
		}
		if (p[1].revents != 0) {
			n = read(fd, buf, sizeof(buf));
			if (n <= 0)
				return LOCAL_EX_OK;	/* the daemon closed */
			if (write_all(1, buf, (size_t)n) == -1)
				return LOCAL_EX_IOERR;
		}
		if (in_open && p[0].revents != 0) {
			n = read(0, buf, sizeof(buf));
			if (n <= 0) {
				in_open = false;
				(void)shutdown(fd, SHUT_WR);
			} else if (write_all(fd, buf, (size_t)n) == -1)
				return LOCAL_EX_OK;	/* read what is left */
		}
	}
}

static void
sendmail_print_conf_error(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "sendmail: %s\n", msg);
}

static void
sendmail_whoami(struct sendmail *sm)
{
	struct passwd *pw = getpwuid(getuid());
	size_t n;

	if (pw != NULL && strlen(pw->pw_name) < sizeof(sm->login)) {
		strlcpy(sm->login, pw->pw_name, sizeof(sm->login));
		if (pw->pw_gecos != NULL) {
			n = strcspn(pw->pw_gecos, ",");
			if (n >= sizeof(sm->fullname))
				n = sizeof(sm->fullname) - 1;
			memcpy(sm->fullname, pw->pw_gecos, n);
			sm->fullname[n] = '\0';
		}
	} else
		snprintf(sm->login, sizeof(sm->login), "%u",
		    (unsigned int)getuid());
}

static void
sendmail_free(struct sendmail *sm)
{
	size_t i;

	for (i = 0; i < sm->nrcpts; i++)
		free(sm->rcpts[i]);
	free(sm->rcpts);
	free(sm->first_body);
	buf_free(&sm->hdr);
	buf_free(&sm->out);
	conf_free(sm->conf);
}

int
cmd_sendmail(int argc, char **argv)
{
	struct sendmail sm;
	const char *source, *path;
	char err[256];
	size_t i;
	int fd, rc;

	memset(&sm, 0, sizeof(sm));
	buf_init(&sm.hdr, SENDMAIL_HEADER_MAX);
	buf_init(&sm.out, SENDMAIL_HEADER_MAX);
	if (sendmail_args_parse(argc, argv, &sm.a, err, sizeof(err)) == -1) {
		fprintf(stderr, "sendmail: %s\n", err);
		sendmail_usage();
		return LOCAL_EX_USAGE;
	}
	switch (sm.a.mode) {
	case SENDMAIL_MODE_NEWALIASES:
		/* Petrel reads its aliases file as it is (a reload picks up
		 * changes): nothing to build. Debian's maintainer scripts
		 * call this and want 0. */
		return LOCAL_EX_OK;
	case SENDMAIL_MODE_QUEUE:
		/* -bp: mailq (queue.c prints any error itself). */
		return queue_cli_mailq(sm.a.conf) == 0 ? LOCAL_EX_OK :
		    LOCAL_EX_UNAVAILABLE;
	case SENDMAIL_MODE_FLUSH:
		/* -q: flush, through the daemon's control socket. */
		return queue_cli_flush(sm.a.conf) == 0 ? LOCAL_EX_OK :
		    LOCAL_EX_UNAVAILABLE;
	default:
		break;
	}
	path = conf_locate(sm.a.conf, &source);
	sm.conf_path = path;
	sm.conf = path != NULL ? conf_load(path, sendmail_print_conf_error,
	    NULL) : conf_default();
	if (sm.conf == NULL)
		return LOCAL_EX_CONFIG;
	signal(SIGPIPE, SIG_IGN);

	if (sm.a.mode == SENDMAIL_MODE_SMTP) {
		if ((fd = sendmail_connect(sm.conf)) == -1) {
			printf("421 4.3.0 %s petrel is not running: try "
			    "again later\r\n", sm.conf->hostname);
			fflush(stdout);
			sendmail_free(&sm);
			return LOCAL_EX_TEMPFAIL;
		}
		rc = sendmail_relay(fd);
		close(fd);
		sendmail_free(&sm);
		return rc;
	}

	sendmail_whoami(&sm);
	if (sm.a.has_sender)
		strlcpy(sm.sender, sm.a.sender, sizeof(sm.sender));
	else
		snprintf(sm.sender, sizeof(sm.sender), "%s@%s", sm.login,
		    sm.conf->hostname);
	if (sm.a.has_sender && sm.sender[0] != '\0' &&
	    strchr(sm.sender, '@') == NULL) {
		/* -f alice: qualified like a login. */
		char q[SENDMAIL_ADDR_MAX + 1];

		if ((size_t)snprintf(q, sizeof(q), "%s@%s", sm.sender,
		    sm.conf->hostname) < sizeof(q))
			strlcpy(sm.sender, q, sizeof(sm.sender));
	}
	for (i = 0; i < sm.a.nrcpts; i++)
		if (sendmail_add_rcpt(&sm, sm.a.rcpts[i],
		    strlen(sm.a.rcpts[i])) == -1) {
			fprintf(stderr, "sendmail: bad recipient \"%s\"\n",
			    sm.a.rcpts[i]);
			sendmail_free(&sm);
			return LOCAL_EX_USAGE;
		}
	if ((rc = sendmail_read_headers(&sm)) != 0 ||
	    (rc = sendmail_build_headers(&sm)) != 0) {
		sendmail_free(&sm);
		return rc;
	}
	if (sm.nrcpts == 0) {
		fprintf(stderr, "sendmail: no recipients (give them as "
		    "arguments, or use -t)\n");
		sendmail_free(&sm);
		return LOCAL_EX_USAGE;
	}
	if ((fd = sendmail_connect(sm.conf)) == -1)
		rc = sendmail_postdrop(&sm, errno);
	else {
		rc = sendmail_smtp(&sm, fd);
		close(fd);
	}
	sendmail_free(&sm);
	return rc;
}
