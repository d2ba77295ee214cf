/*
 * client.c: a small blocking SMTP client for local injection: `petrel
 * sendmail` talks to the daemon's RUN_DIR/sendmail socket with it, and the
 * maildrop pickup (on its own worker thread) to a session over a
 * socketpair.
 *
 * Entry points: local_client_init, local_client_cmd, local_client_reply,
 * local_client_data, local_client_data_end, local_mail_params,
 * local_rcpt_params.
 *
 * SECURITY: replies come from our own daemon, but are still read into a
 * fixed buffer line by line; a reply line longer than the buffer is cut.
 * STANDARDS: RFC 5321 4.2 (replies, multi-line), 4.5.2 (dot-stuffing),
 * RFC 3461 4.1, 4.3, 4.4 (NOTIFY, RET, ENVID), RFC 6531 3.4 (SMTPUTF8).
 */
#include "local/local.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"

void
local_client_init(struct local_client *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->bol = true;
}

/* One reply line into line (cut at size-1), without CRLF. */
static int
local_client_line(struct local_client *c, char *line, size_t size)
{
	size_t n = 0;
	ssize_t r;
	char ch;

	for (;;) {
		if (c->inpos == c->inlen) {
			do
				r = read(c->fd, c->in, sizeof(c->in));
			while (r == -1 && errno == EINTR);
			if (r <= 0)
				return -1;
			c->inpos = 0;
			c->inlen = (size_t)r;
		}
		ch = c->in[c->inpos++];
		if (ch == '\n')
			break;
		if (ch != '\r' && n + 1 < size)
			line[n++] = ch;
	}
	line[n] = '\0';
	return 0;
}

int
local_client_reply(struct local_client *c)
{
	char line[512];
	int code;

	c->reply[0] = '\0';
	for (;;) {
		if (local_client_line(c, line, sizeof(line)) == -1) {
			strlcpy(c->reply, "connection closed by the daemon",
			    sizeof(c->reply));
			return -1;
		}
		if (strlen(line) < 3 || line[0] < '2' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' || line[2] < '0' ||
		    line[2] > '9' || (line[3] != '\0' && line[3] != ' ' &&
		    line[3] != '-')) {
			strlcpy(c->reply, "malformed reply from the daemon",
			    sizeof(c->reply));
			return -1;
		}
		if (c->reply[0] != '\0')
			strlcat(c->reply, " / ", sizeof(c->reply));
		strlcat(c->reply, line, sizeof(c->reply));
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
		    (line[2] - '0');
		if (line[3] != '-')
			return code;
	}
}

int
local_client_cmd(struct local_client *c, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2) {
		strlcpy(c->reply, "command too long", sizeof(c->reply));
		return -1;
	}
	memcpy(line + n, "\r\n", 2);
	if (write_all(c->fd, line, (size_t)n + 2) == -1) {
		strlcpy(c->reply, "connection closed by the daemon",
		    sizeof(c->reply));
		return -1;
	}
	return local_client_reply(c);
}

int
local_client_flush(struct local_client *c)
{
	if (c->outlen > 0 && write_all(c->fd, c->out, c->outlen) == -1) {
		strlcpy(c->reply, "connection closed by the daemon",
		    sizeof(c->reply));
		return -1;
	}
	c->outlen = 0;
	return 0;
}

static int
local_client_put(struct local_client *c, const char *p, size_t n)
{
	if (c->outlen + n > sizeof(c->out) && local_client_flush(c) == -1)
		return -1;
	memcpy(c->out + c->outlen, p, n);
	c->outlen += n;
	return 0;
}

int
local_client_data(struct local_client *c, const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] == '\n') {
			if (local_client_put(c, c->cr ? "\n" : "\r\n",
			    c->cr ? 1 : 2) == -1)
				return -1;
			c->bol = true;
			c->cr = false;
			continue;
		}
		/* RFC 5321 4.5.2: a line that starts with "." gets one more. */
		if (c->bol && p[i] == '.' && !c->raw && local_client_put(c, ".", 1) == -1)
			return -1;
		if (local_client_put(c, p + i, 1) == -1)
			return -1;
		c->bol = false;
		c->cr = p[i] == '\r';
	}
	return 0;
}

int
local_client_data_end(struct local_client *c)
{
	if (!c->bol && local_client_data(c, "\n", 1) == -1)
		return -1;
	if (local_client_put(c, ".\r\n", 3) == -1 ||
	    local_client_flush(c) == -1)
		return -1;
	return local_client_reply(c);
}

bool
local_is_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

void
local_mail_params(char *out, size_t size, const char *ret,
    const char *envid, bool smtputf8)
{
	out[0] = '\0';
	if (ret != NULL && ret[0] != '\0') {
		strlcat(out, " RET=", size);
		strlcat(out, ret, size);
	}
	if (envid != NULL && envid[0] != '\0') {
		strlcat(out, " ENVID=", size);
		strlcat(out, envid, size);
	}
	if (smtputf8)
		strlcat(out, " SMTPUTF8", size);
}

void
local_rcpt_params(char *out, size_t size, const char *notify)
{
	out[0] = '\0';
	if (notify != NULL && notify[0] != '\0') {
		strlcat(out, " NOTIFY=", size);
		strlcat(out, notify, size);
	}
}
