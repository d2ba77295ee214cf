/*
 * pickup.h: local injection on the daemon's side (issue 6): run_dir, the
 * RUN_DIR/sendmail socket, the maildrop directory, and the pickup of the
 * maildrop files petrel-postdrop left while the daemon was down.
 */
#ifndef PETREL_DAEMON_PICKUP_H
#define PETREL_DAEMON_PICKUP_H

#include <stdbool.h>
#include <sys/types.h>

#include "conf/conf.h"

struct event_base;
struct smtp_server;
struct pickup;

/*
 * At start, before the privilege drop: create run_dir (0755) and the
 * maildrop (1730, group petreldrop when that group exists, with its
 * corrupt/ subdirectory 0700), both owned by uid/gid when chown_them,
 * then bind RUN_DIR/sendmail (mode 0666), replacing a stale socket.
 * Returns the listening socket, or -1 after logging why (another daemon
 * answers on the socket; a directory or the socket cannot be made).
 */
int pickup_prepare(const struct conf *c, uid_t uid, gid_t gid,
    bool chown_them);

/*
 * Pick up maildrop files now and every minute: each complete file
 * becomes a local session's message (same headers, limits and warnings
 * as the socket, identity from the file's owner) and is removed after
 * the spool's 250; a file that cannot be read or that the session
 * refuses for good is moved to maildrop/corrupt/ and logged. The work
 * runs on the pickup's own worker thread.
 */
struct pickup *pickup_new(struct event_base *base, struct smtp_server *srv,
    const struct conf *c);

/* Start no new file (before smtp_server_free: a file being fed ends
 * when its session closes). */
void pickup_stop(struct pickup *p);

/* After smtp_server_free. NULL is a no-op. */
void pickup_free(struct pickup *p);

#endif
