/*
 * spool.h: the durable spool, the only code that writes queue files.
 *
 * Layout under the spool directory:
 *   incoming/ID   being written; deleted at start-up if it lacks END
 *   queue/ID      committed: complete and fsync'd, directory fsync'd
 *   corrupt/ID    could not be parsed at start-up, or its content went
 *                 bad after (spool_quarantine()); kept for a human
 *   failed/ID     every recipient done, at least one FAILED: kept, never
 *                 deleted, until bounces (DSN) exist; states are final
 *
 * A message is written to incoming/ (O_EXCL, 0600), content streamed in by
 * the session (the event loop only fills memory; spool threads do every
 * write(2), so a stalled disk never blocks the loop: the session slows
 * its client down with spool_writer_pending() and spool_writer_notify()),
 * then spool_writer_commit() hands it to the commit pipeline: worker
 * threads write what is left and fsync the file, one thread renames a
 * batch into queue/ and fsyncs queue/ once for the whole batch (group
 * commit), and only then is the callback run on the event loop. The
 * session answers 250 from that callback, never earlier.
 *
 * Queue IDs are unique across restarts: microseconds since the epoch
 * (bumped by one when the clock has not advanced, so never reused within a
 * process) and a random per-process tag, base-32 (Crockford) encoded.
 *
 * The queue file format is in docs/queue-format.md.
 *
 * THREADS: every function here is called on the event loop thread except
 * where it says otherwise. Callbacks run on the event loop thread.
 */
#ifndef PETREL_QUEUE_SPOOL_H
#define PETREL_QUEUE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/envelope.h"

struct event_base;
struct spool;
struct spool_writer;

struct spool_stats {
	uint64_t file_fsyncs;
	uint64_t dir_fsyncs;
	uint64_t commits;	/* messages made durable */
	uint64_t commit_errors;
	uint64_t batches;
	uint64_t files_reused;	/* messages written over a spare file */
};

/*
 * Open (creating incoming/, queue/, corrupt/, failed/ if absent, mode
 * 0700) the spool at dir. nsync is the number of file-fsync threads.
 * Returns NULL and sets *error_r (static or strerror text) on failure.
 */
struct spool *spool_open(const char *dir, struct event_base *base,
    unsigned int nsync, const char **error_r);

/*
 * Stop the threads after finishing every commit in flight and every write
 * job (of aborted writers too: nothing is freed while a thread uses it),
 * then free. Every writer must have been committed or aborted before (an
 * open writer is a bug: fatalx). The loop is blocked while spool_close()
 * waits, so the callbacks of the commits that finish during the drain (and
 * of any completion not yet delivered by the loop) run from within
 * spool_close(), on the calling thread, before it returns: a session still
 * waiting gets its answer. A spool_writer_open() that finishes during the
 * drain gets no writer (the file is removed) and error ESHUTDOWN. Those
 * callbacks must not call spool_close(); a spool_writer_new() or
 * spool_writer_open() from them fails with ESHUTDOWN. Call it on the loop
 * thread before event_base_free(). spool_close(NULL) is a no-op. Logs
 * "spool: stats file_fsyncs=N dir_fsyncs=N commits=N errors=N batches=N".
 */
void spool_close(struct spool *sp);

/*
 * Wait until every commit in flight is durable or failed, and every
 * write job has finished (an open writer's pending records are written),
 * and run those callbacks (and due drain callbacks) now, from this call
 * (loop thread). Open writers stay open and the spool stays usable. At
 * shutdown, call it while the callbacks' arguments (sessions, server,
 * scheduler) still exist, then free those, then spool_close().
 */
void spool_drain(struct spool *sp);

void spool_get_stats(const struct spool *sp, struct spool_stats *st);

/*
 * Write the next unique queue ID into id (QUEUE_ID_MAX bytes): 16
 * characters, 11 of microseconds and 5 of a random per-process tag; IDs of
 * one process sort in the order they were made. Thread-safe.
 */
void spool_new_id(struct spool *sp, char *id);

/*
 * Start a message: creates incoming/ID (ID written to id_r). The envelope
 * is written when the message is committed, so recipients may be added
 * until then. Returns NULL with errno set on failure (ENOSPC, EIO...).
 */
struct spool_writer *spool_writer_new(struct spool *sp, char *id_r);

/*
 * The same, off the event loop: a spool thread creates the file (inode
 * allocation can take milliseconds on a busy file system) and cb runs on
 * the loop with the writer (w != NULL, error 0) or an errno value. Never
 * calls cb during this call. If whoever asked is gone, cb must abort w.
 */
typedef void (*spool_open_cb)(void *arg, uint64_t cookie,
    struct spool_writer *w, int error);
void spool_writer_open(struct spool *sp, spool_open_cb cb, void *arg,
    uint64_t cookie);

/* The queue ID of an open writer. */
const char *spool_writer_id(const struct spool_writer *w);

/*
 * Append content bytes. Never touches the file: the bytes are copied into
 * the CONTENT record being filled (64 KiB of payload); each full record
 * is handed to a spool thread, which writes it. The caller bounds the
 * memory held with spool_writer_pending() and spool_writer_notify().
 * Returns 0, or -1 with errno set once a spool thread found a write error
 * (from the first call after; the writer stays failed; commit reports it
 * too, and the bytes of this call are dropped).
 */
int spool_writer_write(struct spool_writer *w, const void *data, size_t len);

/* Content bytes accepted so far (by spool_writer_write()). */
uint64_t spool_writer_size(const struct spool_writer *w);

/*
 * Content bytes accepted by spool_writer_write() not yet written to the
 * file by a spool thread. This includes the record being filled (under
 * 64 KiB; it goes out when full or at commit), so it reaches 0 only when
 * the content so far is a whole number of 64 KiB records. After a write
 * error it drops to what the loop still holds (0 after the next
 * spool_writer_write()). Exact at the time of the call (it only goes
 * down behind the caller's back).
 */
size_t spool_writer_pending(const struct spool_writer *w);

/*
 * Ask for cb(arg, cookie) on the loop once spool_writer_pending(w) drops
 * to at most low bytes, or once a spool thread has found a write error
 * (the next spool_writer_write() then fails). If it already is, cb runs
 * soon, from the loop (or from spool_drain()), never during this call.
 * It runs once per request. One request per writer at a time: a new one
 * replaces the old (its cb never runs). spool_writer_commit() and
 * spool_writer_abort() cancel it: cb then never runs. cb may write to,
 * commit or abort w, or call spool_writer_notify() again.
 */
typedef void (*spool_drain_cb)(void *arg, uint64_t cookie);
void spool_writer_notify(struct spool_writer *w, size_t low,
    spool_drain_cb cb, void *arg, uint64_t cookie);

/*
 * Called on the loop when the message is durable (error 0) or failed
 * (error is an errno value; the message is gone, never delivered).
 */
typedef void (*spool_commit_cb)(void *arg, uint64_t cookie, const char *id,
    int error);

/*
 * Finish the message with env (encoded now, so env may go after the call)
 * and an END record and queue it for durable commit: a spool thread
 * writes the records still pending, the tail and END, then fsyncs.
 * Takes ownership of w (the caller never touches it again); cancels a
 * spool_writer_notify() request. cb(arg, cookie, id, error) runs later on
 * the loop, never during this call: with error 0 only after the file is
 * fsync'd, renamed into queue/ and queue/ fsync'd; with an errno value if
 * any step failed, a write found failed by a spool thread included.
 * cookie is the session id so the callback can find out whether the
 * session still exists. An env with a NULL sender, client_addr, helo,
 * proto, or recipient orig or addr fails with EINVAL (the file would be
 * corrupt).
 */
void spool_writer_commit(struct spool_writer *w, const struct envelope *env,
    spool_commit_cb cb, void *arg, uint64_t cookie);

/*
 * Throw the message away (unlink incoming/ID) and cancel a
 * spool_writer_notify() request. Takes ownership of w. Records not yet
 * written are dropped at once; if a spool thread is writing one at this
 * moment, it finishes that write, then closes, unlinks and frees (and
 * spool_drain()/spool_close() wait for it). spool_writer_abort(NULL) is a
 * no-op.
 */
void spool_writer_abort(struct spool_writer *w);

/*
 * Start-up recovery: delete incoming/ files, move unparsable queue files to
 * corrupt/ with a log line, and call cb for every valid queued message
 * (env is valid during the call only). Returns the number of messages
 * found, or -1 if the queue directory cannot be read.
 */
typedef void (*spool_recover_cb)(void *arg, const char *id,
    const struct envelope *env);
int spool_recover(struct spool *sp, spool_recover_cb cb, void *arg);

/* ---- Functions safe to call from worker threads ---- */

/*
 * Read a committed message's envelope. env is initialised here; on
 * success the caller envelope_free()s it. Returns 0, or -1 with *error_r
 * (a static string) and errno (EBADMSG: the file is corrupt).
 */
int spool_read_envelope(const struct spool *sp, const char *id,
    struct envelope *env, const char **error_r);

/*
 * Stream the content of a committed message: cb is called with consecutive
 * chunks; a non-zero return from cb stops and is returned. Returns 0, or
 * -1 with errno on read or format errors.
 */
typedef int (*spool_content_cb)(void *arg, const char *data, size_t len);
int spool_read_content(const struct spool *sp, const char *id,
    spool_content_cb cb, void *arg);

/*
 * Read a committed message's content chunk by chunk (the outbound client
 * streams it; bounces quote it). spool_reader_next() returns 1 with the
 * next chunk (valid until the next call), 0 at the end (after checking
 * the total), -1 with errno (EBADMSG: corrupt). The reader keeps the file
 * open: a message removed meanwhile can still be read to the end.
 * spool_reader_size() is the content size from END.
 */
struct spool_reader;
struct spool_reader *spool_reader_open(const struct spool *sp,
    const char *id, const char **error_r);
int spool_reader_next(struct spool_reader *r, const char **data,
    size_t *len);
uint64_t spool_reader_size(const struct spool_reader *r);
void spool_reader_close(struct spool_reader *r);

/*
 * Durably record every recipient's delivery state (status, attempts,
 * next_attempt, last_reply from env->rcpts[i]) in the queue file, in
 * place, with fdatasync. env must have the queued recipients in their
 * order (EINVAL if the count differs). Calls for the same id must not
 * overlap (the scheduler owns a message); a reader racing an update may
 * see a recipient as PENDING. Returns 0 or -1 with errno.
 */
int spool_update_rcpts(const struct spool *sp, const char *id,
    const struct envelope *env);

/*
 * Remove a message whose every recipient is done. Its file is kept in
 * spare/ for a later message to be written over when there is room
 * (docs/queue-format.md, "Spare files"), else unlinked; no directory
 * fsync. Returns 0 or -1 with errno. Thread-safe.
 */
int spool_remove(const struct spool *sp, const char *id);

/*
 * Unlink queue/ID (never kept as a spare file), then fsync queue/: for a
 * deletion that must not come back after a crash (`petrel queue delete`).
 * A missing file counts as removed (queue/ is still fsync'd). Returns 0
 * or -1 with errno.
 */
int spool_remove_sync(const struct spool *sp, const char *id);

/*
 * Move queue/ID to failed/ID (failed/ID.N if taken; logged) and fsync
 * both directories. Call it after spool_update_rcpts() so that the final
 * states and replies are in the file. Returns 0 or -1 with errno (EINVAL:
 * bad id, ENOENT: no such queue file).
 */
int spool_move_failed(const struct spool *sp, const char *id);

/*
 * Move queue/ID to corrupt/ID as start-up recovery does, with the log
 * line "spool: corrupt queue file id=ID moved to corrupt/: REASON", and
 * fsync both directories. For a file found bad after start-up (a CONTENT
 * CRC failing at delivery). Returns 0 or -1 with errno.
 */
int spool_quarantine(const struct spool *sp, const char *id,
    const char *reason);

#endif
