/*
 * trace.c: the recent story of each message, for `petrel trace`.
 *
 * Every log line that names a queue= or a session= is also kept in a ring
 * of at most max_lines lines and max_bytes bytes (the oldest go first).
 * trace_lookup() walks the ring twice with a struct trace_query: the first
 * pass learns which queue IDs (a Message-ID's received lines, the reports
 * a message caused) and which SMTP sessions belong to the story, the
 * second copies their lines out in time order. `petrel trace` runs the
 * same two passes over log_file when the daemon cannot answer. A walk is
 * a few string searches per line: about a millisecond per thousand lines,
 * on the loop thread, once per trace command.
 *
 * Entry points: trace_new, trace_free, trace_add, trace_log_tap,
 * trace_lookup, trace_query_init/_learn/_match, trace_line_field.
 * SECURITY: lines hold client text, escaped by whoever logged it. Fields
 * are found by their first " key=" occurrence; the keys followed here
 * come before any client text in every line (docs/logging.md).
 * OWNERSHIP: the ring owns copies of its lines; lookups copy into the
 * caller's buffer under the ring's mutex.
 */
#include "daemon/trace.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"

struct trace_line {
	char *text;
	size_t len;
};

struct trace {
	pthread_mutex_t lock;
	struct trace_line *ring;
	size_t cap;		/* max_lines */
	size_t head;		/* oldest */
	size_t n;
	size_t bytes;
	size_t max_bytes;
};

/* ---- fields and queries ---- */

bool
trace_line_field(const char *line, size_t len, const char *key, char *out,
    size_t outsize)
{
	size_t klen = strlen(key), i, v;

	for (i = 0; i + klen + 2 <= len; i++) {
		if (line[i] != ' ' || memcmp(line + i + 1, key, klen) != 0 ||
		    line[i + 1 + klen] != '=')
			continue;
		i += klen + 2;
		for (v = i; v < len && line[v] != ' '; v++)
			;
		if (v - i >= outsize)
			return false;
		memcpy(out, line + i, v - i);
		out[v - i] = '\0';
		return true;
	}
	return false;
}

static bool
trace_is_id(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z')))
			return false;
	return i > 0 && i < TRACE_ID_MAX;
}

int
trace_query_init(struct trace_query *q, const char *text,
    const char **error_r)
{
	size_t len = strlen(text), i;
	const char *p = text;

	memset(q, 0, sizeof(*q));
	if (trace_is_id(text)) {
		strlcpy(q->queue[0], text, sizeof(q->queue[0]));
		q->nqueue = 1;
		return 0;
	}
	if (strchr(text, '@') == NULL && text[0] != '<')
		goto bad;
	if (len > 0 && p[0] == '<') {
		p++;
		len--;
		if (len == 0 || p[len - 1] != '>')
			goto bad;
		len--;
	}
	if (len == 0 || len + 3 > sizeof(q->msgid))
		goto bad;
	/* As the log writes it: printable ASCII, no space, '"' or '\\'. */
	for (i = 0; i < len; i++)
		if (p[i] <= ' ' || p[i] >= 0x7f || p[i] == '"' ||
		    p[i] == '\\' || p[i] == '<' || p[i] == '>')
			goto bad;
	q->msgid[0] = '<';
	memcpy(q->msgid + 1, p, len);
	q->msgid[len + 1] = '>';
	q->msgid[len + 2] = '\0';
	return 0;
bad:
	*error_r = "not a queue ID (letters and digits) or a Message-ID "
	    "(<local@domain>)";
	return -1;
}

static bool
trace_in(char set[][TRACE_ID_MAX], size_t n, const char *id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(set[i], id) == 0)
			return true;
	return false;
}

static void
trace_push(char set[][TRACE_ID_MAX], size_t *n, const char *id)
{
	if (*n < TRACE_IDS_MAX && !trace_in(set, *n, id))
		strlcpy(set[(*n)++], id, TRACE_ID_MAX);
}

void
trace_query_learn(struct trace_query *q, const char *line, size_t len)
{
	char queue[TRACE_ID_MAX], other[TRACE_MSGID_MAX];

	if (!trace_line_field(line, len, "queue", queue, sizeof(queue)))
		return;
	if (q->msgid[0] != '\0' && trace_line_field(line, len, "message-id",
	    other, sizeof(other)) && strcmp(other, q->msgid) == 0)
		trace_push(q->queue, &q->nqueue, queue);
	if (!trace_in(q->queue, q->nqueue, queue))
		return;
	if (trace_line_field(line, len, "session", other, TRACE_ID_MAX))
		trace_push(q->session, &q->nsession, other);
	if (trace_line_field(line, len, "report_queue", other, TRACE_ID_MAX))
		trace_push(q->queue, &q->nqueue, other);
}

bool
trace_query_match(const struct trace_query *q, const char *line, size_t len)
{
	char id[TRACE_ID_MAX];

	if (trace_line_field(line, len, "queue", id, sizeof(id)))
		return trace_in((char (*)[TRACE_ID_MAX])q->queue, q->nqueue,
		    id);
	if (trace_line_field(line, len, "session", id, sizeof(id)))
		return trace_in((char (*)[TRACE_ID_MAX])q->session,
		    q->nsession, id);
	return false;
}

/* ---- the ring ---- */

struct trace *
trace_new(size_t max_lines, size_t max_bytes)
{
	struct trace *t;

	t = xcalloc(1, sizeof(*t));
	if (max_lines == 0)
		max_lines = 1;
	t->cap = max_lines;
	t->max_bytes = max_bytes;
	t->ring = xcalloc(max_lines, sizeof(*t->ring));
	if (pthread_mutex_init(&t->lock, NULL) != 0)
		fatalx("trace: pthread_mutex_init failed");
	return t;
}

void
trace_free(struct trace *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++)
		free(t->ring[(t->head + i) % t->cap].text);
	free(t->ring);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* Drop the oldest line. Called locked, with n > 0. */
static void
trace_evict(struct trace *t)
{
	struct trace_line *l = &t->ring[t->head];

	t->bytes -= l->len;
	free(l->text);
	l->text = NULL;
	l->len = 0;
	t->head = (t->head + 1) % t->cap;
	t->n--;
}

static bool
trace_wanted(const char *line, size_t len)
{
	char id[TRACE_ID_MAX];

	return trace_line_field(line, len, "queue", id, sizeof(id)) ||
	    trace_line_field(line, len, "session", id, sizeof(id));
}

void
trace_add(struct trace *t, const char *line, size_t len)
{
	struct trace_line *l;

	if (len > t->max_bytes || !trace_wanted(line, len))
		return;
	pthread_mutex_lock(&t->lock);
	while (t->n > 0 && (t->n == t->cap || t->bytes + len > t->max_bytes))
		trace_evict(t);
	l = &t->ring[(t->head + t->n) % t->cap];
	l->text = xstrndup(line, len);
	l->len = len;
	t->bytes += len;
	t->n++;
	pthread_mutex_unlock(&t->lock);
}

void
trace_log_tap(const char *line, size_t len, void *arg)
{
	trace_add(arg, line, len);
}

int
trace_lookup(struct trace *t, const char *id_or_msgid, struct buf *out,
    const char **error_r)
{
	struct trace_query *q;
	struct trace_line *l;
	size_t i;
	int found = 0;

	q = xmalloc(sizeof(*q));
	if (trace_query_init(q, id_or_msgid, error_r) == -1) {
		free(q);
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&t->lock);
	for (i = 0; i < t->n; i++) {
		l = &t->ring[(t->head + i) % t->cap];
		trace_query_learn(q, l->text, l->len);
	}
	for (i = 0; i < t->n && found >= 0; i++) {
		l = &t->ring[(t->head + i) % t->cap];
		if (!trace_query_match(q, l->text, l->len))
			continue;
		/* Whole lines only. */
		if (out->len + l->len + 1 > out->max ||
		    buf_append(out, l->text, l->len) == -1 ||
		    buf_append(out, "\n", 1) == -1) {
			*error_r = "too many lines for the reply";
			found = -1;
		} else
			found++;
	}
	pthread_mutex_unlock(&t->lock);
	free(q);
	if (found == -1)
		errno = EMSGSIZE;
	return found;
}

void
trace_usage(struct trace *t, size_t *lines_r, size_t *bytes_r)
{
	pthread_mutex_lock(&t->lock);
	*lines_r = t->n;
	*bytes_r = t->bytes;
	pthread_mutex_unlock(&t->lock);
}
