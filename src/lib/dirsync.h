/*
 * dirsync.h: shared directory fsyncs across threads.
 *
 * dirsync(path) returns once an fsync of the directory that STARTED after
 * the call has finished, so whatever the caller did to the directory
 * before calling (a link, a rename) is durable. Callers that arrive while
 * one fsync runs wait for the next one, and all of them share it: with N
 * threads delivering into one Maildir at once, new/ is fsync'd about twice
 * per wave instead of N times. Thread-safe; blocks (call it on a worker
 * thread, never on the event loop).
 */
#ifndef PETREL_LIB_DIRSYNC_H
#define PETREL_LIB_DIRSYNC_H

#include <stdint.h>

/* Returns 0, or -1 with errno from the fsync (or open) that covered us. */
int dirsync(const char *path);

/* fsyncs actually issued by dirsync() since start (for tests and stats). */
uint64_t dirsync_count(void);

#endif
