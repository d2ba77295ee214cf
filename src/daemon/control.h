/*
 * control.h: the daemon's control socket, RUN_DIR/control, that the
 * `petrel queue` commands, `mailq` and `petrel trace` talk to. The
 * protocol is described in control.c; ctlproto.h has its parser and
 * encoders.
 */
#ifndef PETREL_DAEMON_CONTROL_H
#define PETREL_DAEMON_CONTROL_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>

#define CONTROL_SOCKET_NAME	"control"

struct control;
struct event_base;
struct scheduler;
struct spool;
struct trace;
struct workq;

/*
 * Bind and listen on RUN_DIR/control (its path written to path_r, of
 * pathsize bytes), before the privilege drop: mode 0660, and when
 * chown_it, owned by uid:gid, so that root, the daemon's user and its
 * group may connect. A stale socket file is removed first; one that a
 * live process still accepts on is refused ("another daemon"). Returns
 * the listening socket (non-blocking, close-on-exec), or -1 with err set.
 */
int control_bind(const char *run_dir, uid_t uid, gid_t gid, bool chown_it,
    char *path_r, size_t pathsize, char *err, size_t errlen);

/*
 * Serve requests on fd (from control_bind(); the control owns it from
 * now on) on base. Clients are served when SO_PEERCRED says they are
 * root, uid, or in group gid (primary or supplementary); others are
 * refused and logged. Listings, message reads and trace lookups (in
 * trace, the daemon's ring; NULL: trace requests are refused) run on wq;
 * queue changes go through sched. path is unlinked by control_free().
 * trace must outlive the control.
 */
struct control *control_new(struct event_base *base, int fd,
    const char *path, struct scheduler *sched, struct spool *sp,
    struct workq *wq, struct trace *trace, uid_t uid, gid_t gid);

/*
 * Close the socket and every connection and remove the socket file.
 * Call it after workq_free() and scheduler_free(): their callbacks may
 * still answer a client. NULL is a no-op.
 */
void control_free(struct control *ctl);

#endif
