/*
 * local.h: local mail injection (issue 6), shared by `petrel sendmail`
 * (src/cli/sendmail.c), petrel-postdrop (src/postdrop/) and the daemon's
 * maildrop pickup (src/daemon/pickup.c):
 *
 *   args.c      the sendmail command line (pure: no I/O)
 *   header.c    the header section of a message from a local program:
 *               recipients from To/Cc/Bcc (-t), Bcc removed, From: added
 *   maildrop.c  maildrop files (docs/queue-format.md, "maildrop files")
 *   client.c    a small blocking SMTP client over a connected socket
 *
 * Nothing here runs on the daemon's event loop: the pickup calls it from
 * its own worker thread.
 */
#ifndef PETREL_LOCAL_LOCAL_H
#define PETREL_LOCAL_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/buf.h"

/* sysexits.h values, as sendmail exits with them. */
#define LOCAL_EX_OK		0
#define LOCAL_EX_USAGE		64
#define LOCAL_EX_DATAERR	65
#define LOCAL_EX_NOINPUT	66
#define LOCAL_EX_NOUSER		67
#define LOCAL_EX_UNAVAILABLE	69
#define LOCAL_EX_SOFTWARE	70
#define LOCAL_EX_OSERR		71
#define LOCAL_EX_CANTCREAT	73
#define LOCAL_EX_IOERR		74
#define LOCAL_EX_TEMPFAIL	75
#define LOCAL_EX_NOPERM		77
#define LOCAL_EX_CONFIG		78

/* ---- args.c ---- */

enum sendmail_mode {
	SENDMAIL_MODE_SEND,		/* -bm (default): a message on stdin */
	SENDMAIL_MODE_SMTP,		/* -bs: SMTP on stdin/stdout */
	SENDMAIL_MODE_QUEUE,		/* -bp, mailq */
	SENDMAIL_MODE_FLUSH,		/* -q */
	SENDMAIL_MODE_NEWALIASES,	/* -bi, -I, newaliases */
};

/* Longest -V envelope id, xtext-encoded (RFC 3461 4.4: 100). */
#define SENDMAIL_ENVID_MAX	100
/* Longest -f sender or recipient argument. */
#define SENDMAIL_ADDR_MAX	512

struct sendmail_args {
	enum sendmail_mode mode;
	bool t;			/* -t: recipients from the headers */
	bool i;			/* -i, -oi: "." alone does not end input */
	const char *conf;	/* -C FILE (or -c FILE) */
	bool has_sender;	/* -f or -r was given */
	char sender[SENDMAIL_ADDR_MAX + 1];	/* without <>; "" is <> */
	const char *fullname;	/* -F */
	char notify[40];	/* "NEVER", "SUCCESS,DELAY" or "" */
	char ret[8];		/* "FULL", "HDRS" or "" */
	char envid[SENDMAIL_ENVID_MAX + 1];	/* xtext, or "" */
	char *const *rcpts;	/* the operands (argv's) */
	size_t nrcpts;
	unsigned int ignored;	/* historic flags that were ignored */
};

/*
 * Parse argv[1..argc) into a (argv[0]'s basename picks the mode:
 * "newaliases" and "mailq" as -bi and -bp). Returns 0, or -1 with a
 * message for the user in err (an unknown or unsupported flag, a bad
 * -N/-R/-V value, a missing option argument): exit 64 (EX_USAGE).
 */
int sendmail_args_parse(int argc, char *const *argv, struct sendmail_args *a,
    char *err, size_t errsize);

/* ---- header.c ---- */

/* The longest header section `petrel sendmail` reads before sending. */
#define SENDMAIL_HEADER_MAX	(1024 * 1024)

typedef int (*sendmail_rcpt_cb)(void *arg, const char *addr, size_t len);

/*
 * Rewrite the header section hdr[0..len) (lines ended by LF or CRLF, the
 * empty line not included) into out with CRLF line ends, Bcc: fields left
 * out (as Postfix's cleanup does, -t or not); with want_rcpts, every
 * address of To:, Cc: and Bcc: goes to cb first. *has_from_r says whether a From: field is there. Returns 0, or -1
 * with *error_r ("bad address list in To:", or out's cap).
 */
int sendmail_header_rewrite(const char *hdr, size_t len, bool want_rcpts,
    sendmail_rcpt_cb cb, void *arg, struct buf *out, bool *has_from_r,
    const char **error_r);

/*
 * The From: field for a message that lacks one: "From: NAME <ADDR>\r\n",
 * with NAME quoted as RFC 5322 3.2.4 needs (a name with specials) or
 * left out when name is NULL or empty; "From: ADDR\r\n" then.
 */
char *sendmail_from_field(const char *name, const char *addr);

/* ---- maildrop.c ---- */

#define MAILDROP_MAGIC		"PETREL-MAILDROP 1"
#define MAILDROP_LINE_MAX	1024		/* one envelope line */
#define MAILDROP_RCPTS_MAX	10000
#define MAILDROP_SIZE_WIDTH	20		/* digits of the size field */

struct maildrop_env {
	bool has_uid;
	unsigned int uid;	/* as postdrop recorded it */
	bool has_size;
	uint64_t size;		/* message octets after "data" */
	char *sender;		/* without <>; "" is <> */
	char ret[8];		/* "FULL", "HDRS" or "" */
	char envid[SENDMAIL_ENVID_MAX + 1];
	char notify[40];
	char **rcpts;		/* without <> */
	size_t nrcpts;
};

void maildrop_env_init(struct maildrop_env *e);
void maildrop_env_free(struct maildrop_env *e);

/*
 * One envelope line (without its LF): "sender <a>", "rcpt <a>",
 * "ret FULL|HDRS", "envid XTEXT", "notify NEVER|SUCCESS,FAILURE,DELAY",
 * and, unless from_user, "uid N" and "size N". Returns 1 for the line
 * "data" (the envelope is complete: a sender and one recipient at
 * least), 0 for another good line, -1 with *error_r. Values are checked
 * for their form only (printable, bounded); the daemon's SMTP session
 * judges the addresses.
 */
int maildrop_parse_line(struct maildrop_env *e, const char *line,
    bool from_user, const char **error_r);

/*
 * Read the envelope of a maildrop file from fp up to and including its
 * "data" line: the magic line first, a uid and a size. Returns 0 with
 * *offset_r set to where the message starts, or -1 with *error_r.
 */
int maildrop_read_env(FILE *fp, struct maildrop_env *e, uint64_t *offset_r,
    const char **error_r);

/*
 * Write the envelope of a maildrop file (magic, uid, a size of 0 in
 * MAILDROP_SIZE_WIDTH digits for maildrop_set_size() to fill in, the
 * lines of e, "data") to fd. Returns the octets written, or -1 (errno).
 */
long long maildrop_write_env(int fd, const struct maildrop_env *e);

/* Fill in the size field of a file maildrop_write_env() began. */
int maildrop_set_size(int fd, uint64_t size);

/* ---- client.c ---- */

struct local_client {
	int fd;
	char in[4096];
	size_t inpos, inlen;
	char out[65536];
	size_t outlen;
	bool bol;		/* data: at the start of a line */
	bool cr;		/* data: the last octet was CR */
	bool raw;		/* data: no dot-stuffing (a file, not SMTP) */
	char reply[1024];	/* the last reply, lines joined by " / " */
};

void local_client_init(struct local_client *c, int fd);

/*
 * Read one (multi-line) reply: its code, or -1 when the connection broke
 * or the reply is malformed (c->reply says why).
 */
int local_client_reply(struct local_client *c);

/* Send one command line (CRLF added) and read the reply, as above. */
int local_client_cmd(struct local_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Message content after 354: LF line ends become CRLF (CRLF stays), a
 * line starting with "." gets another (RFC 5321 4.5.2) unless c->raw (a
 * pipe to petrel-postdrop). Returns 0 or -1.
 */
int local_client_data(struct local_client *c, const char *p, size_t len);

/* End the content (a last CRLF if missing, "."), read the reply. */
int local_client_data_end(struct local_client *c);

/* Write out what local_client_data() buffered. Returns 0 or -1. */
int local_client_flush(struct local_client *c);

/*
 * The ESMTP parameters for MAIL (" RET=FULL ENVID=x SMTPUTF8") and RCPT
 * (" NOTIFY=..."), with a leading space each, or "".
 */
void local_mail_params(char *out, size_t size, const char *ret, const char *envid, bool smtputf8);
void local_rcpt_params(char *out, size_t size, const char *notify);

/* Does s hold an octet >= 0x80 (SMTPUTF8 needed)? */
bool local_is_8bit(const char *s);

#endif
