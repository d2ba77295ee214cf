/*
 * spool_admin.h: the spool lock, and the spool read and changed directly
 * by `petrel queue` while no daemon runs.
 *
 * The lock is SPOOL/lock, an exclusive flock(2) held for as long as its
 * file descriptor stays open, holding "PID ROLE\n" (ROLE "serve" for the
 * daemon, "queue" for a command working on the spool). `petrel serve`
 * holds it for its whole life, so that two daemons never share a spool
 * and the queue commands know whether a daemon runs; a queue command
 * holds it while it reads or deletes, so that a daemon starting meanwhile
 * waits for it.
 *
 * THREADS: these functions block (file I/O, waiting for the lock); call
 * them from the command line tools or before the daemon's loop starts.
 */
#ifndef PETREL_QUEUE_SPOOL_ADMIN_H
#define PETREL_QUEUE_SPOOL_ADMIN_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/envelope.h"

#define SPOOL_LOCK_FILE		"lock"
#define SPOOL_LOCK_SERVE	"serve"
#define SPOOL_LOCK_QUEUE	"queue"

/*
 * Take the spool lock of spooldir for role (SPOOL_LOCK_SERVE or
 * SPOOL_LOCK_QUEUE). A new lock file is made mode 0600 and, when uid is
 * not (uid_t)-1, given to uid/gid. While the lock is held by anything but
 * a daemon (a queue command, or a holder that has not yet written its
 * name), it is tried again for up to wait_ms milliseconds; a daemon's
 * lock fails at once. Returns the file descriptor that holds the lock
 * (close it to release; it is close-on-exec), or -1 with errno:
 * EWOULDBLOCK when another process holds it (*holder_pid_r its pid, 0 if
 * unknown, and holder_role its role, "" if unknown), else the error of
 * open(2) or flock(2).
 */
int spool_admin_lock(const char *spooldir, const char *role,
    unsigned int wait_ms, uid_t uid, gid_t gid, pid_t *holder_pid_r,
    char *holder_role, size_t rolesize);

/*
 * Every committed message in spooldir/queue, in queue ID order: cb gets
 * its ID, envelope (valid during the call) and size (content and
 * PREPEND octets, as delivered). Files that do not parse are skipped and
 * counted in *skipped_r (the daemon moves them to corrupt/ at its next
 * start). cb's non-zero return stops the scan and is returned. Returns 0,
 * or -1 with errno and *error_r when queue/ cannot be read.
 */
typedef int (*spool_admin_scan_cb)(void *arg, const char *id,
    const struct envelope *env, uint64_t size);
int spool_admin_scan(const char *spooldir, spool_admin_scan_cb cb,
    void *arg, size_t *skipped_r, const char **error_r);

/*
 * Remove spooldir/queue/ID durably (unlink, then fsync queue/). Returns 0,
 * or -1 with errno (EINVAL: not a queue ID; ENOENT: no such message).
 */
int spool_admin_remove(const char *spooldir, const char *id);

/* Is id a name the spool could hold (1-31 of [0-9A-Za-z._-], no "."
 * first)? */
bool spool_admin_valid_id(const char *id);

#endif
