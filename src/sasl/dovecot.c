/*
 * dovecot.c: asynchronous client of Dovecot's auth-client socket.
 *
 * Entry points: sasl_dovecot_new/free(), sasl_dovecot_auth(),
 * sasl_dovecot_cancel().
 *
 *   IDLE --first request--> CONNECTING --connected, send VERSION, CPID-->
 *   HANDSHAKE --server's VERSION 1.x, MECH PLAIN, DONE--> READY
 *   READY: every queued request goes out as
 *     AUTH <id> PLAIN service=smtp [secured] lip= rip= resp=<base64>
 *   and comes back as OK <id> [user=...], FAIL <id> [temp] [reason=...],
 *   in any order. Any error (connect, EOF, a broken line, a major version
 *   other than 1, no PLAIN) closes the connection and answers every
 *   request TEMPFAIL; the next request reconnects.
 *
 * Each request has its own timer: a silent Dovecot answers TEMPFAIL, and
 * a connection that never finished its handshake is dropped with it.
 * Callbacks run from libevent callbacks only (a failure found during
 * sasl_dovecot_auth() is deferred through an event), one request at a
 * time, after the request left the list, so they may start or cancel
 * others.
 *
 * SECURITY: the socket is Dovecot's, but its lines are still bounded
 * (DC_LINE_MAX) and parsed strictly. Everything we send that comes from
 * the client travels inside base64 (resp=), so no TAB or LF from the
 * network can add parameters; the other values are tab-escaped. Our copy
 * of the AUTH line (it holds the password) is wiped once written; the
 * copy in libevent's output buffer is not.
 * STANDARDS: Dovecot authentication protocol 1.x ("Dovecot Authentication
 * Protocol", doc.dovecot.org): handshake, AUTH, OK, FAIL, CONT, the
 * \001 tab-escaping.
 * OWNERSHIP: the client owns its connection and every request.
 */
#include "sasl/dovecot.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "lib/base64.h"
#include "lib/log.h"
#include "lib/util.h"
#include "sasl/sasl.h"

#define DC_LINE_MAX		16384	/* Dovecot's longest auth line */
#define DC_TIMEOUT_DEFAULT	30	/* seconds */
#define DC_USER_MAX		1024	/* user= we pass on */

enum dc_state {
	DC_IDLE,
	DC_CONNECTING,
	DC_HANDSHAKE,
	DC_READY,
};

struct dc_req {
	TAILQ_ENTRY(dc_req) entry;
	struct sasl_dovecot *d;
	uint64_t id;
	uint32_t wire_id;
	bool sent;
	bool cancelled;
	char *line;		/* the AUTH line until sent; wiped */
	size_t line_len;
	struct event *timer;
	sasl_dovecot_cb cb;
	void *arg;
};

TAILQ_HEAD(dc_reqs, dc_req);

struct sasl_dovecot {
	struct event_base *base;
	char *path;
	struct timeval timeout;
	enum dc_state state;
	struct bufferevent *bev;
	struct event *defer;	/* fails every request, from the loop */
	struct dc_reqs reqs;
	uint64_t next_id;
	uint32_t next_wire;
	bool version_ok;
	bool has_plain;
};

static void dc_read_cb(struct bufferevent *, void *);
static void dc_event_cb(struct bufferevent *, short, void *);

static void
dc_req_free(struct dc_req *r)
{
	if (r->line != NULL) {
		OPENSSL_cleanse(r->line, r->line_len);
		free(r->line);
	}
	if (r->timer != NULL)
		event_free(r->timer);
	free(r);
}

/* Take r off the list, run its callback unless cancelled, free it. */
static void
dc_req_finish(struct sasl_dovecot *d, struct dc_req *r,
    enum sasl_dovecot_result res, const char *user)
{
	TAILQ_REMOVE(&d->reqs, r, entry);
	if (!r->cancelled)
		r->cb(r->arg, res, user);
	dc_req_free(r);
}

static void
dc_close(struct sasl_dovecot *d)
{
	if (d->bev != NULL)
		bufferevent_free(d->bev);
	d->bev = NULL;
	d->state = DC_IDLE;
	d->version_ok = false;
	d->has_plain = false;
}

/*
 * Drop the connection and answer TEMPFAIL to every request there was
 * then. Requests that callbacks start meanwhile go on a new connection.
 */
static void
dc_fail_all(struct sasl_dovecot *d, const char *why)
{
	struct dc_reqs old;
	struct dc_req *r;

	if (!TAILQ_EMPTY(&d->reqs))
		log_warn("auth: dovecot socket=%s: %s", d->path, why);
	dc_close(d);
	TAILQ_INIT(&old);
	TAILQ_CONCAT(&old, &d->reqs, entry);
	while ((r = TAILQ_FIRST(&old)) != NULL) {
		TAILQ_REMOVE(&old, r, entry);
		if (!r->cancelled)
			r->cb(r->arg, SASL_DOVECOT_TEMPFAIL, NULL);
		dc_req_free(r);
	}
}

static void
dc_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dc_fail_all(arg, "cannot connect");
}

/* Write the AUTH lines not sent yet. */
static void
dc_send_queued(struct sasl_dovecot *d)
{
	struct dc_req *r;

	TAILQ_FOREACH(r, &d->reqs, entry) {
		if (r->sent)
			continue;
		bufferevent_write(d->bev, r->line, r->line_len);
		OPENSSL_cleanse(r->line, r->line_len);
		free(r->line);
		r->line = NULL;
		r->sent = true;
	}
}

static void
dc_connect(struct sasl_dovecot *d)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, d->path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		event_active(d->defer, 0, 0);
		return;
	}
	d->bev = bufferevent_socket_new(d->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (d->bev == NULL)
		fatalx("sasl_dovecot: bufferevent_socket_new failed");
	bufferevent_setcb(d->bev, dc_read_cb, NULL, dc_event_cb, d);
	d->state = DC_CONNECTING;
	if (bufferevent_socket_connect(d->bev, (struct sockaddr *)&sun,
	    sizeof(sun)) == -1) {
		/* Never call back from inside sasl_dovecot_auth(). */
		event_active(d->defer, 0, 0);
		return;
	}
	bufferevent_enable(d->bev, EV_READ | EV_WRITE);
}

/* Undo Dovecot's tab-escaping of s in place (\001 then 0 1 t r l). */
static void
dc_unescape(char *s)
{
	char *o = s;

	for (; *s != '\0'; s++) {
		if (*s != '\001') {
			*o++ = *s;
			continue;
		}
		switch (*++s) {
		case '\0':
			*o = '\0';
			return;
		case '0':
			*o = '\0';	/* a NUL ends the value for us */
			return;
		case '1':
			*o++ = '\001';
			break;
		case 't':
			*o++ = '\t';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 'l':
			*o++ = '\n';
			break;
		default:
			*o++ = *s;
			break;
		}
	}
	*o = '\0';
}

/* Append s to b with TAB, LF, CR and \001 escaped. */
static void
dc_escape_append(struct evbuffer *b, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '\001':
			evbuffer_add(b, "\0011", 2);
			break;
		case '\t':
			evbuffer_add(b, "\001t", 2);
			break;
		case '\r':
			evbuffer_add(b, "\001r", 2);
			break;
		case '\n':
			evbuffer_add(b, "\001l", 2);
			break;
		default:
			evbuffer_add(b, s, 1);
			break;
		}
	}
}

/* Split line at TABs into at most max fields. Returns the count. */
static size_t
dc_split(char *line, char **f, size_t max)
{
	size_t n = 0;
	char *tab;

	while (n < max) {
		f[n++] = line;
		if ((tab = strchr(line, '\t')) == NULL)
			break;
		*tab = '\0';
		line = tab + 1;
	}
	return n;
}

static struct dc_req *
dc_find_wire(struct sasl_dovecot *d, const char *s)
{
	struct dc_req *r;
	uint64_t id;
	const char *err;

	if (parse_u64(s, 1, UINT32_MAX, &id, &err) == -1)
		return NULL;
	TAILQ_FOREACH(r, &d->reqs, entry)
		if (r->sent && r->wire_id == id)
			return r;
	return NULL;
}

/* One handshake line. Returns 0, or -1 to drop the connection. */
static int
dc_handshake_line(struct sasl_dovecot *d, char **f, size_t n)
{
	uint64_t major;
	const char *err;

	if (strcmp(f[0], "VERSION") == 0) {
		if (n < 3 || parse_u64(f[1], 0, UINT32_MAX, &major, &err) == -1)
			return -1;
		if (major != 1)
			return -1;
		d->version_ok = true;
	} else if (strcmp(f[0], "MECH") == 0) {
		if (n >= 2 && ascii_strcasecmp(f[1], "PLAIN") == 0)
			d->has_plain = true;
	} else if (strcmp(f[0], "DONE") == 0) {
		if (!d->version_ok || !d->has_plain)
			return -1;
		d->state = DC_READY;
		dc_send_queued(d);
	}
	/* SPID, CUID, COOKIE and anything newer: not needed. */
	return 0;
}

/* One reply line while READY. Returns 0, or -1 to drop the connection. */
static int
dc_reply_line(struct sasl_dovecot *d, char **f, size_t n)
{
	char user[DC_USER_MAX];
	struct dc_req *r;
	bool temp = false, has_user = false;
	size_t i;

	if (strcmp(f[0], "OK") != 0 && strcmp(f[0], "FAIL") != 0 &&
	    strcmp(f[0], "CONT") != 0)
		return 0;	/* unknown commands are ignored */
	if (n < 2)
		return -1;
	if ((r = dc_find_wire(d, f[1])) == NULL)
		return 0;	/* a request that timed out meanwhile */
	if (strcmp(f[0], "CONT") == 0) {
		/* PLAIN with its initial response never needs more. */
		dc_req_finish(d, r, SASL_DOVECOT_TEMPFAIL, NULL);
		return 0;
	}
	for (i = 2; i < n; i++) {
		if (strcmp(f[i], "temp") == 0 ||
		    strcmp(f[i], "code=temp_fail") == 0)
			temp = true;
		else if (strncmp(f[i], "user=", 5) == 0) {
			dc_unescape(f[i] + 5);
			if (strlcpy(user, f[i] + 5, sizeof(user)) <
			    sizeof(user))
				has_user = true;
		}
	}
	if (strcmp(f[0], "OK") == 0)
		dc_req_finish(d, r, SASL_DOVECOT_OK, has_user ? user : NULL);
	else
		dc_req_finish(d, r, temp ? SASL_DOVECOT_TEMPFAIL :
		    SASL_DOVECOT_FAIL, NULL);
	return 0;
}

/* Connected: our half of the handshake. */
static void
dc_connected(struct sasl_dovecot *d)
{
	char msg[64];
	int len;

	d->state = DC_HANDSHAKE;
	len = snprintf(msg, sizeof(msg), "VERSION\t1\t2\nCPID\t%ld\n",
	    (long)getpid());
	evbuffer_add(bufferevent_get_output(d->bev), msg, (size_t)len);
}

static void
dc_read_cb(struct bufferevent *bev, void *arg)
{
	struct sasl_dovecot *d = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line, *f[64];
	const char *why = NULL;
	size_t len, n;
	int rc;

	/*
	 * Dovecot speaks first, and its handshake can be read before
	 * libevent reports the connect (both ready in one loop turn): it is
	 * the handshake all the same.
	 */
	if (d->bev == bev && d->state == DC_CONNECTING)
		dc_connected(d);
	while (d->bev == bev &&
	    (line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		if (len > DC_LINE_MAX || strlen(line) != len) {
			free(line);
			why = "overlong line or NUL byte from the server";
			break;
		}
		n = dc_split(line, f, nitems(f));
		if (d->state == DC_HANDSHAKE)
			rc = dc_handshake_line(d, f, n);
		else
			rc = dc_reply_line(d, f, n);
		free(line);
		if (rc == -1) {
			why = d->state == DC_HANDSHAKE ? "bad handshake "
			    "(want VERSION 1, MECH PLAIN, DONE)" :
			    "bad reply";
			break;
		}
	}
	if (why == NULL && d->bev == bev &&
	    evbuffer_get_length(in) > DC_LINE_MAX)
		why = "overlong line from the server";
	if (why != NULL && d->bev == bev)
		dc_fail_all(d, why);
}

static void
dc_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sasl_dovecot *d = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (d->state == DC_CONNECTING)
			dc_connected(d);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		dc_fail_all(d, what & BEV_EVENT_EOF ? "connection closed" :
		    "connection error");
}

static void
dc_req_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dc_req *r = arg;
	struct sasl_dovecot *d = r->d;

	(void)fd;
	(void)what;
	if (d->state != DC_READY) {
		/* Not even a handshake in all that time: a dead socket. */
		dc_fail_all(d, "no handshake before the timeout");
		return;
	}
	log_warn("auth: dovecot socket=%s: no answer within %lds", d->path,
	    (long)d->timeout.tv_sec);
	dc_req_finish(d, r, SASL_DOVECOT_TEMPFAIL, NULL);
}

struct sasl_dovecot *
sasl_dovecot_new(struct event_base *base, const char *path,
    unsigned int timeout_sec)
{
	struct sasl_dovecot *d;

	d = xcalloc(1, sizeof(*d));
	d->base = base;
	d->path = xstrdup(path);
	d->timeout.tv_sec = timeout_sec > 0 ? timeout_sec : DC_TIMEOUT_DEFAULT;
	d->next_id = 1;
	d->next_wire = 1;
	TAILQ_INIT(&d->reqs);
	d->defer = event_new(base, -1, 0, dc_defer_cb, d);
	if (d->defer == NULL)
		fatalx("sasl_dovecot_new: event_new failed");
	return d;
}

void
sasl_dovecot_free(struct sasl_dovecot *d)
{
	struct dc_req *r;

	if (d == NULL)
		return;
	dc_close(d);
	while ((r = TAILQ_FIRST(&d->reqs)) != NULL) {
		TAILQ_REMOVE(&d->reqs, r, entry);
		dc_req_free(r);
	}
	event_free(d->defer);
	free(d->path);
	free(d);
}

/* The AUTH line of r: PLAIN with authzid NUL authcid NUL password. */
static void
dc_req_line(struct dc_req *r, const struct sasl_dovecot_request *req)
{
	const char *authzid = req->authzid != NULL ? req->authzid : "";
	size_t zl = strlen(authzid), cl = strlen(req->authcid);
	size_t pl = strlen(req->password), mlen = zl + cl + pl + 2;
	struct evbuffer *b = evbuffer_new();
	unsigned char *m = xmalloc(mlen);
	size_t elen = BASE64_ENCODED_SIZE(mlen);
	char *enc = xmalloc(elen), head[64];

	if (b == NULL)
		fatalx("sasl_dovecot: evbuffer_new failed");
	memcpy(m, authzid, zl);
	m[zl] = '\0';
	memcpy(m + zl + 1, req->authcid, cl);
	m[zl + 1 + cl] = '\0';
	memcpy(m + zl + cl + 2, req->password, pl);
	if (base64_encode(m, mlen, enc, elen) == -1)
		fatalx("sasl_dovecot: base64 of %zu octets", mlen);
	OPENSSL_cleanse(m, mlen);
	free(m);

	snprintf(head, sizeof(head), "AUTH\t%u\tPLAIN\tservice=",
	    (unsigned int)r->wire_id);
	evbuffer_add(b, head, strlen(head));
	dc_escape_append(b, req->service != NULL ? req->service : "smtp");
	if (req->secured)
		evbuffer_add(b, "\tsecured", 8);
	if (req->local_ip != NULL) {
		evbuffer_add(b, "\tlip=", 5);
		dc_escape_append(b, req->local_ip);
	}
	if (req->remote_ip != NULL) {
		evbuffer_add(b, "\trip=", 5);
		dc_escape_append(b, req->remote_ip);
	}
	evbuffer_add(b, "\tresp=", 6);
	evbuffer_add(b, enc, strlen(enc));
	evbuffer_add(b, "\n", 1);
	OPENSSL_cleanse(enc, elen);
	free(enc);

	r->line_len = evbuffer_get_length(b);
	r->line = xmalloc(r->line_len);
	evbuffer_remove(b, r->line, r->line_len);
	/* evbuffer_free does not wipe: the chains held the base64 too. */
	evbuffer_free(b);
}

uint64_t
sasl_dovecot_auth(struct sasl_dovecot *d,
    const struct sasl_dovecot_request *req, sasl_dovecot_cb cb, void *arg)
{
	struct dc_req *r;

	r = xcalloc(1, sizeof(*r));
	r->d = d;
	r->id = d->next_id++;
	r->wire_id = d->next_wire++;
	if (d->next_wire == 0)
		d->next_wire = 1;
	r->cb = cb;
	r->arg = arg;
	dc_req_line(r, req);
	r->timer = evtimer_new(d->base, dc_req_timeout_cb, r);
	if (r->timer == NULL)
		fatalx("sasl_dovecot_auth: evtimer_new failed");
	evtimer_add(r->timer, &d->timeout);
	TAILQ_INSERT_TAIL(&d->reqs, r, entry);

	if (d->state == DC_IDLE)
		dc_connect(d);
	else if (d->state == DC_READY)
		dc_send_queued(d);
	return r->id;
}

bool
sasl_dovecot_cancel(struct sasl_dovecot *d, uint64_t id)
{
	struct dc_req *r;

	TAILQ_FOREACH(r, &d->reqs, entry) {
		if (r->id != id)
			continue;
		if (r->cancelled)
			return false;
		if (!r->sent) {
			TAILQ_REMOVE(&d->reqs, r, entry);
			dc_req_free(r);
		} else
			r->cancelled = true;	/* its answer is dropped */
		return true;
	}
	return false;
}
