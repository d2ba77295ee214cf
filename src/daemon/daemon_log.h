/*
 * daemon_log.h: `log`, `log_file` and the trace ring for `petrel serve`
 * (issue 6). Hooks called from daemon.c; docs/logging.md.
 */
#ifndef PETREL_DAEMON_DAEMON_LOG_H
#define PETREL_DAEMON_DAEMON_LOG_H

#include <sys/types.h>

struct conf;
struct trace;

/*
 * At start, before the privilege drop: send lines to syslog if c says
 * so, open c->log_file (created 0640, owned by uid:gid when they are not
 * -1: the daemon's user, who reopens it later), and start the trace ring
 * with the log tap. Returns the ring, or NULL after logging why the log
 * file cannot be opened.
 */
struct trace *daemon_log_start(const struct conf *c, uid_t uid, gid_t gid);

/*
 * SIGHUP: reopen log_file (logrotate renamed it). On failure the old
 * file stays in use and the error is logged.
 */
void daemon_log_reopen(void);

/*
 * A reloaded configuration: apply `log` and, if log_file changed, open
 * the new one (as the daemon's user; on failure the old one stays).
 */
void daemon_log_reload(const struct conf *old, const struct conf *c);

/* At exit: the tap off, the ring freed, the file closed. */
void daemon_log_stop(struct trace *t);

#endif
