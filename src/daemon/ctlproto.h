/*
 * ctlproto.h: the control socket's protocol (the requests and replies that
 * src/daemon/control.c serves and `petrel queue` and `petrel trace` send;
 * the grammar is in control.c's header), and the queue listing both sides
 * share.
 *
 * Pure functions: no I/O, no global state; every string is bounded.
 * OWNERSHIP: a struct ctlproto_list owns its messages and their strings;
 * ctlproto_list_free() releases them.
 */
#ifndef PETREL_DAEMON_CTLPROTO_H
#define PETREL_DAEMON_CTLPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "queue/envelope.h"

#define CTLPROTO_LINE_MAX	1024	/* a request line, LF included */
#define CTLPROTO_ARG_MAX	512	/* a decoded argument, NUL included */
#define CTLPROTO_REPLY_LINE_MAX	(16 * 1024)	/* a reply line (client) */
#define CTLPROTO_QUERY_MAX	256	/* a trace query, NUL included */
#define CTLPROTO_TRACE_MAX	(4u * 1024 * 1024)	/* a trace answer's
						 * log lines, at most */

enum ctlproto_cmd {
	CTL_CMD_LIST,		/* list [ID] */
	CTL_CMD_SHOW,		/* show ID */
	CTL_CMD_FLUSH,		/* flush [ID] */
	CTL_CMD_FLUSH_DOMAIN,	/* flush-domain DOMAIN */
	CTL_CMD_DELETE,		/* delete ID */
	CTL_CMD_DELETE_ALL,	/* delete-all */
	CTL_CMD_DELETE_SENDER,	/* delete-sender ADDRESS ("" is <>) */
	CTL_CMD_DELETE_RCPT,	/* delete-recipient ADDRESS */
	CTL_CMD_HOLD,		/* hold ID */
	CTL_CMD_RELEASE,	/* release ID */
	CTL_CMD_BOUNCE,		/* bounce ID */
	CTL_CMD_TRACE,		/* trace QUEUE-ID|MESSAGE-ID */
};

struct ctlproto_request {
	enum ctlproto_cmd cmd;
	bool has_arg;
	char arg[CTLPROTO_ARG_MAX];	/* decoded */
};

/*
 * Parse one request line (len bytes, without its LF; a CR before it is
 * refused). Returns 0, or -1 with *error_r (static text) for an unknown
 * command, a missing, extra or bad argument (a queue ID that the spool
 * could not hold, an empty domain, a trace query of CTLPROTO_QUERY_MAX
 * bytes or more, an encoding error). A trace query's form (queue ID or
 * Message-ID) is checked by trace_lookup(), not here.
 */
int ctlproto_request_parse(const char *line, size_t len,
    struct ctlproto_request *req, const char **error_r);

/* The request line for req, LF included, appended to out. 0 or -1. */
int ctlproto_request_format(const struct ctlproto_request *req,
    struct buf *out);

/* The name of a command as sent ("delete-sender"). */
const char *ctlproto_cmd_name(enum ctlproto_cmd cmd);

/*
 * A trace answer's data line: "line TEXT", TEXT one log line as logged.
 * ctlproto_trace_line_encode appends it for the len bytes of text (no
 * LF), each byte below ' ' other than TAB, and DEL, written '?' so that
 * the line stays one line. ctlproto_trace_line_decode returns the TEXT
 * of a reply line (without its LF) and its length in *len_r, or NULL if
 * line is not a "line" line.
 */
int ctlproto_trace_line_encode(struct buf *out, const char *text,
    size_t len);
const char *ctlproto_trace_line_decode(const char *line, size_t *len_r);

/*
 * A word on the wire: "-" for the empty string; else every byte outside
 * '!'..'~', every '%', and a whole word "-" written %XX. Appends to out.
 */
int ctlproto_word_encode(struct buf *out, const char *s);

/*
 * Decode a word of len bytes into out (size bytes, NUL-terminated).
 * Returns 0, or -1 for a bad escape, an encoded NUL, a raw byte that
 * should have been encoded, or a result that does not fit.
 */
int ctlproto_word_decode(const char *w, size_t len, char *out, size_t size);

/* ---- The queue listing ---- */

enum ctlproto_state {
	CTL_STATE_QUEUED,	/* waiting (deferred, or not tried yet) */
	CTL_STATE_ACTIVE,	/* a delivery round runs now */
	CTL_STATE_HELD,		/* on hold: never tried until released */
};

/* Why a pending recipient is still in the queue. */
enum ctlproto_wait {
	CTL_WAIT_DUE,		/* its next attempt time has come */
	CTL_WAIT_RETRY,		/* backing off after a temporary failure */
	CTL_WAIT_ACTIVE,	/* being delivered now */
	CTL_WAIT_HOLD,		/* the message is on hold */
};

struct ctlproto_rcpt {
	char *addr;		/* final address */
	char *orig;		/* as given in RCPT TO */
	char *reply;		/* last reply, "" if none */
	char *remote;		/* host that gave it, "" if none */
	uint32_t attempts;
	uint64_t next_attempt;	/* unix seconds */
	uint64_t last_attempt;	/* unix seconds, 0: never tried */
	enum ctlproto_wait wait;
};

struct ctlproto_msg {
	char id[QUEUE_ID_MAX];
	uint64_t size;		/* octets as delivered */
	uint64_t arrival;	/* unix seconds */
	enum ctlproto_state state;
	char *sender;		/* "" for <> */
	struct ctlproto_rcpt *rcpts;	/* pending recipients only */
	size_t nrcpts;
};

struct ctlproto_list {
	struct ctlproto_msg *msgs;
	size_t n;
};

/*
 * Append a message made from a queue envelope: its PENDING recipients,
 * each with why it waits (state, and next_attempt against now).
 */
void ctlproto_list_add(struct ctlproto_list *l, const char *id,
    const struct envelope *env, uint64_t size, enum ctlproto_state state,
    uint64_t now);
void ctlproto_list_free(struct ctlproto_list *l);

/* The wire lines of one message ("msg ...", then "rcpt ..."). */
int ctlproto_msg_encode(const struct ctlproto_msg *m, struct buf *out);

/*
 * Take one reply line (without LF): a "msg" line starts a message, an
 * "rcpt" line adds to the last one. Returns 1 if taken, 0 if the line is
 * neither, -1 (with *error_r) if it is malformed.
 */
int ctlproto_list_decode(struct ctlproto_list *l, const char *line,
    const char **error_r);

const char *ctlproto_state_name(enum ctlproto_state st);
const char *ctlproto_wait_name(enum ctlproto_wait w);

#endif
