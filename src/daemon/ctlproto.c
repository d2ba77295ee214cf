/*
 * ctlproto.c: the control protocol's requests, words and queue listing
 * lines (the grammar is in control.c's header comment).
 *
 * Entry points: ctlproto_request_parse, ctlproto_request_format,
 * ctlproto_word_encode, ctlproto_word_decode, ctlproto_list_add,
 * ctlproto_msg_encode, ctlproto_list_decode, ctlproto_list_free,
 * ctlproto_trace_line_encode, ctlproto_trace_line_decode.
 *
 * SECURITY: ctlproto_request_parse() reads what a local client sent (the
 * daemon has checked the client's credentials, but the bytes are still
 * untrusted): bounded lengths, every argument decoded and checked.
 * ctlproto_list_decode() reads what the daemon sent (the CLI trusts the
 * daemon no more than it must: malformed lines are errors).
 */
#include "daemon/ctlproto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "queue/spool_admin.h"

enum ctl_arg {
	CTL_ARG_NONE,
	CTL_ARG_ID,		/* a queue ID, required */
	CTL_ARG_OPT_ID,		/* a queue ID, optional */
	CTL_ARG_DOMAIN,
	CTL_ARG_ADDR,		/* may be "" (the null sender) */
	CTL_ARG_QUERY,		/* a trace query: not empty, bounded */
};

static const struct {
	const char *name;
	enum ctlproto_cmd cmd;
	enum ctl_arg arg;
} ctl_cmds[] = {
	{ "list", CTL_CMD_LIST, CTL_ARG_OPT_ID },
	{ "show", CTL_CMD_SHOW, CTL_ARG_ID },
	{ "flush", CTL_CMD_FLUSH, CTL_ARG_OPT_ID },
	{ "flush-domain", CTL_CMD_FLUSH_DOMAIN, CTL_ARG_DOMAIN },
	{ "delete", CTL_CMD_DELETE, CTL_ARG_ID },
	{ "delete-all", CTL_CMD_DELETE_ALL, CTL_ARG_NONE },
	{ "delete-sender", CTL_CMD_DELETE_SENDER, CTL_ARG_ADDR },
	{ "delete-recipient", CTL_CMD_DELETE_RCPT, CTL_ARG_ADDR },
	{ "hold", CTL_CMD_HOLD, CTL_ARG_ID },
	{ "release", CTL_CMD_RELEASE, CTL_ARG_ID },
	{ "bounce", CTL_CMD_BOUNCE, CTL_ARG_ID },
	{ "trace", CTL_CMD_TRACE, CTL_ARG_QUERY },
};

static const char ctl_hex[] = "0123456789ABCDEF";

const char *
ctlproto_cmd_name(enum ctlproto_cmd cmd)
{
	size_t i;

	for (i = 0; i < nitems(ctl_cmds); i++)
		if (ctl_cmds[i].cmd == cmd)
			return ctl_cmds[i].name;
	return "?";
}

int
ctlproto_word_encode(struct buf *out, const char *s)
{
	char esc[3];
	size_t i, start = 0, n = strlen(s);

	if (n == 0)
		return buf_append(out, "-", 1);
	if (strcmp(s, "-") == 0)
		return buf_append(out, "%2D", 3);
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch > ' ' && ch < 0x7f && ch != '%')
			continue;
		if (buf_append(out, s + start, i - start) == -1)
			return -1;
		esc[0] = '%';
		esc[1] = ctl_hex[ch >> 4];
		esc[2] = ctl_hex[ch & 0xf];
		if (buf_append(out, esc, 3) == -1)
			return -1;
		start = i + 1;
	}
	return buf_append(out, s + start, n - start);
}

int
ctlproto_word_decode(const char *w, size_t len, char *out, size_t size)
{
	size_t i, o = 0;

	if (size == 0 || len == 0)
		return -1;
	if (len == 1 && w[0] == '-') {
		out[0] = '\0';
		return 0;
	}
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)w[i];

		if (ch == '%') {
			int hi, lo;

			if (i + 2 >= len)
				return -1;
			hi = hex_value(w[i + 1]);
			lo = hex_value(w[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			ch = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else if (ch <= ' ' || ch >= 0x7f)
			return -1;
		if (o + 1 >= size)
			return -1;
		out[o++] = (char)ch;
	}
	out[o] = '\0';
	return 0;
}

int
ctlproto_request_parse(const char *line, size_t len,
    struct ctlproto_request *req, const char **error_r)
{
	const char *sp, *arg = NULL;
	size_t i, namelen, arglen = 0;
	enum ctl_arg kind;

	memset(req, 0, sizeof(*req));
	if (len == 0) {
		*error_r = "empty request";
		return -1;
	}
	if (len >= CTLPROTO_LINE_MAX) {
		*error_r = "request too long";
		return -1;
	}
	if (memchr(line, '\0', len) != NULL || memchr(line, '\r', len) !=
	    NULL) {
		*error_r = "bad byte in request";
		return -1;
	}
	sp = memchr(line, ' ', len);
	namelen = sp != NULL ? (size_t)(sp - line) : len;
	if (sp != NULL) {
		arg = sp + 1;
		arglen = len - namelen - 1;
		if (arglen == 0 || memchr(arg, ' ', arglen) != NULL) {
			*error_r = "bad argument";
			return -1;
		}
	}
	for (i = 0; i < nitems(ctl_cmds); i++)
		if (strlen(ctl_cmds[i].name) == namelen &&
		    memcmp(ctl_cmds[i].name, line, namelen) == 0)
			break;
	if (i == nitems(ctl_cmds)) {
		*error_r = "unknown command";
		return -1;
	}
	req->cmd = ctl_cmds[i].cmd;
	kind = ctl_cmds[i].arg;
	if (arg == NULL) {
		if (kind == CTL_ARG_NONE || kind == CTL_ARG_OPT_ID)
			return 0;
		*error_r = "missing argument";
		return -1;
	}
	if (kind == CTL_ARG_NONE) {
		*error_r = "unexpected argument";
		return -1;
	}
	if (ctlproto_word_decode(arg, arglen, req->arg, sizeof(req->arg)) ==
	    -1) {
		*error_r = "bad argument";
		return -1;
	}
	req->has_arg = true;
	switch (kind) {
	case CTL_ARG_ID:
	case CTL_ARG_OPT_ID:
		if (!spool_admin_valid_id(req->arg)) {
			*error_r = "bad queue ID";
			return -1;
		}
		break;
	case CTL_ARG_DOMAIN:
		if (req->arg[0] == '\0' || strlen(req->arg) > 255) {
			*error_r = "bad domain";
			return -1;
		}
		break;
	case CTL_ARG_QUERY:
		if (req->arg[0] == '\0' ||
		    strlen(req->arg) >= CTLPROTO_QUERY_MAX) {
			*error_r = "bad trace query";
			return -1;
		}
		break;
	case CTL_ARG_ADDR:
	case CTL_ARG_NONE:
		break;
	}
	return 0;
}

int
ctlproto_trace_line_encode(struct buf *out, const char *text, size_t len)
{
	size_t i, start;

	if (buf_append(out, "line ", 5) == -1)
		return -1;
	start = out->len;
	if (buf_append(out, text, len) == -1)
		return -1;
	for (i = start; i < out->len; i++) {
		unsigned char ch = (unsigned char)out->data[i];

		if ((ch < ' ' && ch != '\t') || ch == 0x7f)
			out->data[i] = '?';
	}
	return buf_append(out, "\n", 1);
}

const char *
ctlproto_trace_line_decode(const char *line, size_t *len_r)
{
	if (strncmp(line, "line ", 5) != 0)
		return NULL;
	*len_r = strlen(line + 5);
	return line + 5;
}

int
ctlproto_request_format(const struct ctlproto_request *req, struct buf *out)
{
	if (buf_append_str(out, ctlproto_cmd_name(req->cmd)) == -1)
		return -1;
	if (req->has_arg && (buf_append(out, " ", 1) == -1 ||
	    ctlproto_word_encode(out, req->arg) == -1))
		return -1;
	return buf_append(out, "\n", 1);
}

/* ---- the listing ---- */

static const char *const ctl_state_names[] = {
	[CTL_STATE_QUEUED] = "queued",
	[CTL_STATE_ACTIVE] = "active",
	[CTL_STATE_HELD] = "hold",
};

static const char *const ctl_wait_names[] = {
	[CTL_WAIT_DUE] = "due",
	[CTL_WAIT_RETRY] = "retry",
	[CTL_WAIT_ACTIVE] = "active",
	[CTL_WAIT_HOLD] = "hold",
};

const char *
ctlproto_state_name(enum ctlproto_state st)
{
	return (size_t)st < nitems(ctl_state_names) ? ctl_state_names[st] :
	    "?";
}

const char *
ctlproto_wait_name(enum ctlproto_wait w)
{
	return (size_t)w < nitems(ctl_wait_names) ? ctl_wait_names[w] : "?";
}

static struct ctlproto_msg *
ctl_list_new_msg(struct ctlproto_list *l)
{
	struct ctlproto_msg *m;

	l->msgs = xrealloc(l->msgs, (l->n + 1) * sizeof(*l->msgs));
	m = &l->msgs[l->n++];
	memset(m, 0, sizeof(*m));
	return m;
}

static struct ctlproto_rcpt *
ctl_msg_new_rcpt(struct ctlproto_msg *m)
{
	struct ctlproto_rcpt *r;

	m->rcpts = xrealloc(m->rcpts, (m->nrcpts + 1) * sizeof(*m->rcpts));
	r = &m->rcpts[m->nrcpts++];
	memset(r, 0, sizeof(*r));
	return r;
}

void
ctlproto_list_add(struct ctlproto_list *l, const char *id,
    const struct envelope *env, uint64_t size, enum ctlproto_state state,
    uint64_t now)
{
	struct ctlproto_msg *m = ctl_list_new_msg(l);
	size_t i;

	strlcpy(m->id, id, sizeof(m->id));
	m->size = size;
	m->arrival = env->arrival;
	m->state = state;
	m->sender = xstrdup(env->sender != NULL ? env->sender : "");
	for (i = 0; i < env->nrcpts; i++) {
		const struct envelope_rcpt *er = &env->rcpts[i];
		struct ctlproto_rcpt *r;

		if (er->status != RCPT_STATUS_PENDING)
			continue;
		r = ctl_msg_new_rcpt(m);
		r->addr = xstrdup(er->addr != NULL ? er->addr : "");
		r->orig = xstrdup(er->orig != NULL ? er->orig : "");
		r->reply = xstrndup(er->last_reply, sizeof(er->last_reply));
		r->remote = xstrndup(er->remote_mta, sizeof(er->remote_mta));
		r->attempts = er->attempts;
		r->next_attempt = er->next_attempt;
		r->last_attempt = er->last_attempt;
		if (state == CTL_STATE_HELD)
			r->wait = CTL_WAIT_HOLD;
		else if (state == CTL_STATE_ACTIVE)
			r->wait = CTL_WAIT_ACTIVE;
		else if (er->next_attempt > now)
			r->wait = CTL_WAIT_RETRY;
		else
			r->wait = CTL_WAIT_DUE;
	}
}

void
ctlproto_list_free(struct ctlproto_list *l)
{
	size_t i, j;

	for (i = 0; i < l->n; i++) {
		struct ctlproto_msg *m = &l->msgs[i];

		for (j = 0; j < m->nrcpts; j++) {
			free(m->rcpts[j].addr);
			free(m->rcpts[j].orig);
			free(m->rcpts[j].reply);
			free(m->rcpts[j].remote);
		}
		free(m->rcpts);
		free(m->sender);
	}
	free(l->msgs);
	l->msgs = NULL;
	l->n = 0;
}

/*
 *   msg ID SIZE ARRIVAL STATE SENDER
 *   rcpt ADDR ORIG ATTEMPTS NEXT LAST WAIT REMOTE REPLY
 */
int
ctlproto_msg_encode(const struct ctlproto_msg *m, struct buf *out)
{
	size_t i;

	if (buf_printf(out, "msg %s %llu %llu %s ", m->id,
	    (unsigned long long)m->size, (unsigned long long)m->arrival,
	    ctlproto_state_name(m->state)) == -1 ||
	    ctlproto_word_encode(out, m->sender) == -1 ||
	    buf_append(out, "\n", 1) == -1)
		return -1;
	for (i = 0; i < m->nrcpts; i++) {
		const struct ctlproto_rcpt *r = &m->rcpts[i];

		if (buf_append(out, "rcpt ", 5) == -1 ||
		    ctlproto_word_encode(out, r->addr) == -1 ||
		    buf_append(out, " ", 1) == -1 ||
		    ctlproto_word_encode(out, r->orig) == -1 ||
		    buf_printf(out, " %u %llu %llu %s ", r->attempts,
		    (unsigned long long)r->next_attempt,
		    (unsigned long long)r->last_attempt,
		    ctlproto_wait_name(r->wait)) == -1 ||
		    ctlproto_word_encode(out, r->remote) == -1 ||
		    buf_append(out, " ", 1) == -1 ||
		    ctlproto_word_encode(out, r->reply) == -1 ||
		    buf_append(out, "\n", 1) == -1)
			return -1;
	}
	return 0;
}

#define CTL_FIELDS_MAX	10

/* Split line at single spaces into at most max fields; count or -1. */
static int
ctl_split(const char *line, const char **f, size_t *flen, size_t max)
{
	size_t n = 0;
	const char *p = line, *sp;

	for (;;) {
		if (n == max)
			return -1;
		sp = strchr(p, ' ');
		f[n] = p;
		flen[n] = sp != NULL ? (size_t)(sp - p) : strlen(p);
		if (flen[n] == 0)
			return -1;
		n++;
		if (sp == NULL)
			return (int)n;
		p = sp + 1;
	}
}

static int
ctl_num(const char *f, size_t len, uint64_t max, uint64_t *out)
{
	char tmp[24];
	const char *error;

	if (len >= sizeof(tmp))
		return -1;
	memcpy(tmp, f, len);
	tmp[len] = '\0';
	return parse_u64(tmp, 0, max, out, &error);
}

static char *
ctl_word(const char *f, size_t len, size_t max, bool *bad)
{
	char *s = xmalloc(max);

	if (ctlproto_word_decode(f, len, s, max) == -1) {
		*bad = true;
		s[0] = '\0';
	}
	return s;
}

int
ctlproto_list_decode(struct ctlproto_list *l, const char *line,
    const char **error_r)
{
	const char *f[CTL_FIELDS_MAX];
	size_t flen[CTL_FIELDS_MAX], i;
	uint64_t v[4];
	bool bad = false;

	if (strncmp(line, "msg ", 4) == 0) {
		struct ctlproto_msg *m;

		if (ctl_split(line, f, flen, CTL_FIELDS_MAX) != 6 ||
		    flen[1] >= QUEUE_ID_MAX ||
		    ctl_num(f[2], flen[2], UINT64_MAX, &v[0]) == -1 ||
		    ctl_num(f[3], flen[3], UINT64_MAX, &v[1]) == -1) {
			*error_r = "malformed msg line";
			return -1;
		}
		for (i = 0; i < nitems(ctl_state_names); i++)
			if (strlen(ctl_state_names[i]) == flen[4] &&
			    memcmp(ctl_state_names[i], f[4], flen[4]) == 0)
				break;
		if (i == nitems(ctl_state_names)) {
			*error_r = "malformed msg line";
			return -1;
		}
		m = ctl_list_new_msg(l);
		memcpy(m->id, f[1], flen[1]);
		m->id[flen[1]] = '\0';
		m->size = v[0];
		m->arrival = v[1];
		m->state = (enum ctlproto_state)i;
		m->sender = ctl_word(f[5], flen[5], 1024, &bad);
		if (bad || !spool_admin_valid_id(m->id)) {
			*error_r = "malformed msg line";
			return -1;
		}
		return 1;
	}
	if (strncmp(line, "rcpt ", 5) == 0) {
		struct ctlproto_rcpt *r;

		if (l->n == 0 ||
		    ctl_split(line, f, flen, CTL_FIELDS_MAX) != 9 ||
		    ctl_num(f[3], flen[3], UINT32_MAX, &v[0]) == -1 ||
		    ctl_num(f[4], flen[4], UINT64_MAX, &v[1]) == -1 ||
		    ctl_num(f[5], flen[5], UINT64_MAX, &v[2]) == -1) {
			*error_r = "malformed rcpt line";
			return -1;
		}
		for (i = 0; i < nitems(ctl_wait_names); i++)
			if (strlen(ctl_wait_names[i]) == flen[6] &&
			    memcmp(ctl_wait_names[i], f[6], flen[6]) == 0)
				break;
		if (i == nitems(ctl_wait_names)) {
			*error_r = "malformed rcpt line";
			return -1;
		}
		r = ctl_msg_new_rcpt(&l->msgs[l->n - 1]);
		r->addr = ctl_word(f[1], flen[1], 1024, &bad);
		r->orig = ctl_word(f[2], flen[2], 1024, &bad);
		r->attempts = (uint32_t)v[0];
		r->next_attempt = v[1];
		r->last_attempt = v[2];
		r->wait = (enum ctlproto_wait)i;
		r->remote = ctl_word(f[7], flen[7], 512, &bad);
		r->reply = ctl_word(f[8], flen[8], 2048, &bad);
		if (bad) {
			*error_r = "malformed rcpt line";
			return -1;
		}
		return 1;
	}
	return 0;
}
