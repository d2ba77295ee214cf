/*
 * daemon_log.c: where the daemon's log lines go (`log stderr|syslog`,
 * `log_file PATH`) and the trace ring that `petrel trace` asks (issue 6).
 *
 * Entry points: daemon_log_start, daemon_log_reopen, daemon_log_reload,
 * daemon_log_stop. The writing itself is src/lib/log.c (one small write
 * per line, never waiting on the network); the ring is daemon/trace.c.
 * SECURITY: log_file is opened as root at start (created owned by the
 * daemon's user) and as that user on SIGHUP: its directory, or
 * logrotate's `create`, must let that user make the new file.
 * OWNERSHIP: the caller owns the returned ring; the log file belongs to
 * src/lib/log.c.
 */
#include "daemon/daemon_log.h"

#include <errno.h>
#include <string.h>

#include "conf/conf.h"
#include "daemon/trace.h"
#include "lib/log.h"

struct trace *
daemon_log_start(const struct conf *c, uid_t uid, gid_t gid)
{
	struct trace *t;

	if (c->log_file != NULL && log_file_open(c->log_file, uid, gid) == -1) {
		log_err("daemon: log_file %s: %s", c->log_file,
		    strerror(errno));
		return NULL;
	}
	log_set_dest(c->log_syslog ? LOG_DEST_SYSLOG : LOG_DEST_STDERR);
	t = trace_new(TRACE_DEFAULT_LINES, TRACE_DEFAULT_BYTES);
	log_set_tap(trace_log_tap, t);
	return t;
}

void
daemon_log_reopen(void)
{
	if (log_file_reopen() == -1)
		log_err("daemon: log_file: cannot reopen: %s; still writing "
		    "to the file open before", strerror(errno));
}

void
daemon_log_reload(const struct conf *old, const struct conf *c)
{
	log_set_dest(c->log_syslog ? LOG_DEST_SYSLOG : LOG_DEST_STDERR);
	if (old->log_file != NULL && c->log_file != NULL &&
	    strcmp(old->log_file, c->log_file) == 0)
		return;
	if (c->log_file == NULL) {
		log_file_close();
		return;
	}
	if (log_file_open(c->log_file, (uid_t)-1, (gid_t)-1) == -1)
		log_err("daemon: log_file %s: %s; still writing to the file "
		    "open before", c->log_file, strerror(errno));
}

void
daemon_log_stop(struct trace *t)
{
	log_set_tap(NULL, NULL);
	trace_free(t);
	log_file_close();
	log_set_dest(LOG_DEST_STDERR);
}
