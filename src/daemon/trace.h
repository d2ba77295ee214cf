/*
 * trace.h: a message's story from the log. The daemon keeps the recent
 * per-message log lines in a bounded ring (filled through log_set_tap());
 * `petrel trace` asks it, or reads log_file, and the same matching rules
 * pick the lines either way (docs/logging.md, "petrel trace").
 */
#ifndef PETREL_DAEMON_TRACE_H
#define PETREL_DAEMON_TRACE_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

/* Defaults for the ring: whichever limit is reached first evicts. */
#define TRACE_DEFAULT_LINES	20000
#define TRACE_DEFAULT_BYTES	(8u * 1024 * 1024)

#define TRACE_ID_MAX		64	/* queue and session IDs */
#define TRACE_MSGID_MAX		256	/* "<...>" as logged */
#define TRACE_IDS_MAX		64	/* IDs one query follows */

/*
 * What one lookup follows. Built from the text a user gave (a queue ID,
 * or a Message-ID with or without its angle brackets), then fed the log
 * lines in time order twice: trace_query_learn() on every line first,
 * then trace_query_match() on every line to choose those to print.
 */
struct trace_query {
	char msgid[TRACE_MSGID_MAX];	/* "<...>" or "" for a queue ID */
	char queue[TRACE_IDS_MAX][TRACE_ID_MAX];
	size_t nqueue;
	char session[TRACE_IDS_MAX][TRACE_ID_MAX];
	size_t nsession;
};

/*
 * Parse text: a queue ID (letters and digits) or a Message-ID (has an
 * '@' or starts with '<'; printable ASCII without spaces). Returns 0, or
 * -1 with *error_r set to a message for the user.
 */
int trace_query_init(struct trace_query *q, const char *text,
    const char **error_r);

/*
 * Pass 1, every line in time order: a received line ("queued") with the
 * wanted message-id= adds its queue=; a line of a followed queue ID adds
 * its session= (the SMTP session that received it) and its report_queue=
 * (the bounce or delay notice it caused, followed too).
 */
void trace_query_learn(struct trace_query *q, const char *line, size_t len);

/*
 * Pass 2: true for a line of a followed queue ID, and for a line of a
 * followed session that names no queue ID (connect, TLS, MAIL, ...).
 */
bool trace_query_match(const struct trace_query *q, const char *line,
    size_t len);

/*
 * The value of the first " key=" field of line (up to the next space or
 * the line's end) copied into out, or false (absent, or too long for
 * outsize). Keys written before any client-supplied text (queue=,
 * session=, report_queue=, message-id=) cannot be forged this way.
 */
bool trace_line_field(const char *line, size_t len, const char *key,
    char *out, size_t outsize);

/*
 * The ring. Thread-safe: trace_add() runs on whichever thread logged, the
 * lookup on the control socket's (the loop thread).
 */
struct trace;

/* A ring of at most max_lines lines and max_bytes bytes of text. */
struct trace *trace_new(size_t max_lines, size_t max_bytes);
void trace_free(struct trace *t);	/* NULL: no-op */

/* Keep line (no newline) if it names a queue= or a session=. */
void trace_add(struct trace *t, const char *line, size_t len);

/* A log_tap_cb: arg is the struct trace. */
void trace_log_tap(const char *line, size_t len, void *arg);

/*
 * Append to out the lines of the message id_or_msgid still in the ring,
 * in time order, each ending in "\n". Returns the number of lines (0: the
 * ring knows nothing of it), or -1 with *error_r set for a query that is
 * neither a queue ID nor a Message-ID, or when out is full (errno
 * EMSGSIZE; out then holds the first lines).
 */
int trace_lookup(struct trace *t, const char *id_or_msgid, struct buf *out,
    const char **error_r);

/* Lines and bytes held now (tests, metrics). */
void trace_usage(struct trace *t, size_t *lines_r, size_t *bytes_r);

#endif
