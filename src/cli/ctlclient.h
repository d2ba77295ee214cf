/*
 * ctlclient.h: the client side of the daemon's control socket
 * (RUN_DIR/control; the protocol is in src/daemon/control.c), shared by
 * `petrel queue`, `mailq`, `sendmail -bp/-q` and `petrel trace`: connect,
 * send one request, read the answer's lines up to its status line.
 *
 * Blocking I/O (the CLI may block), bounded by a receive timeout.
 */
#ifndef PETREL_CLI_CTLCLIENT_H
#define PETREL_CLI_CTLCLIENT_H

#include <stddef.h>
#include <stdio.h>

#include "daemon/ctlproto.h"

struct conf;

enum ctlclient_result {
	CTLCLIENT_OK,		/* "ok N TEXT" */
	CTLCLIENT_ERR,		/* "err CODE TEXT", CODE not "denied" */
	CTLCLIENT_DENIED,	/* "err denied ...", or the socket refused
				 * us (EACCES, EPERM) */
	CTLCLIENT_DOWN,		/* no daemon there (ENOENT, ECONNREFUSED,
				 * ENOTDIR) */
	CTLCLIENT_FAIL,		/* no answer in time, a malformed or cut
				 * answer, or another error */
};

struct ctlclient_answer {
	enum ctlclient_result result;
	int error;		/* errno of a failed connect, else 0 */
	char path[256];		/* the socket's path, for messages */
	char code[16];		/* CODE of "err CODE", "" otherwise */
	unsigned long long n;	/* N of "ok N" */
	char text[512];		/* TEXT of the status line, or what failed */
};

/*
 * Called for each data line of the answer (line without its LF, len
 * bytes; the callback may change it). fp is the socket, for a "data LEN"
 * line's LEN octets. Returns 0, or -1 to stop: the answer is then
 * CTLCLIENT_FAIL "malformed or incomplete answer from the daemon".
 */
typedef int (*ctlclient_line_cb)(void *arg, char *line, size_t len,
    FILE *fp);

/*
 * Connect to c->run_dir/control, send req, read the answer until its
 * status line (waiting at most timeout seconds for each read), and close.
 * Fills *ans and returns ans->result. SIGPIPE is ignored from then on
 * (a refusal may close the socket before the request is written).
 */
enum ctlclient_result ctlclient_request(const struct conf *c,
    const struct ctlproto_request *req, int timeout, ctlclient_line_cb cb,
    void *arg, struct ctlclient_answer *ans);

#endif
