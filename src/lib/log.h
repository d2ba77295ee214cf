/*
 * log.h: one event per line, key=value, to stderr or syslog, and
 * optionally appended to a file (`log`, `log_file`; docs/logging.md has
 * the format of every per-message event).
 *
 * Lines look like: "2026-11-29T02:13:13.123Z petrel[123]: info: msg k=v".
 * Messages are formatted by the caller; log_escape() makes client text safe.
 *
 * NON-BLOCKING: every line is one small write(2) to stderr and one
 * O_APPEND write(2) to the log file, or one syslog(3) datagram: the same
 * cost as the stderr writes the daemon has always made on its loop. They
 * can only stall if whatever reads stderr or /dev/log stops reading, or the
 * file system holding log_file hangs; nothing here waits on the network.
 *
 * THREADS: every function may be called from any thread. The log file's
 * descriptor is swapped under a mutex (log_file_reopen), so a line is
 * never written to a closed or reused descriptor.
 */
#ifndef PETREL_LIB_LOG_H
#define PETREL_LIB_LOG_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>

enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERR,
};

/* Where lines go besides the log file (`log stderr|syslog`). */
enum log_dest {
	LOG_DEST_STDERR,	/* the default */
	LOG_DEST_SYSLOG,	/* syslog(3), facility mail, ident progname */
};

void log_init(const char *progname, enum log_level min);
void log_set_level(enum log_level min);

/*
 * Send lines to dest from now on. LOG_DEST_SYSLOG opens the syslog
 * connection (openlog with LOG_PID | LOG_NDELAY, facility LOG_MAIL) so
 * that it exists before a chroot or privilege drop; the level maps to
 * LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR, and the message is the line
 * without its timestamp and "progname[pid]: " (syslog adds its own).
 */
void log_set_dest(enum log_dest dest);

/*
 * Also append every line to path (opened O_APPEND, created mode 0640).
 * When the file is created and uid is not (uid_t)-1, it is chowned to
 * uid:gid (the daemon's user, so that it can reopen it). Replaces a file
 * opened before. Returns 0, or -1 with errno set (nothing changed).
 */
int log_file_open(const char *path, uid_t uid, gid_t gid);

/*
 * Open the log file's path again (after logrotate renamed it; SIGHUP),
 * with the caller's privileges. On failure the old file stays in use and
 * -1 is returned with errno set; 0 if no log file is open.
 */
int log_file_reopen(void);

/* Stop writing to the log file. */
void log_file_close(void);

/*
 * A tap sees every line written (at or above the level), whole with its
 * timestamp, without the newline, from whichever thread logged it: the
 * daemon's trace buffer (daemon/trace.h). It must not log. NULL removes it.
 */
typedef void (*log_tap_cb)(const char *line, size_t len, void *arg);
void log_set_tap(log_tap_cb cb, void *arg);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A bug: log and abort with a core. */
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/*
 * Copy at most len bytes of untrusted text into dst (size dstsize) with
 * every byte outside printable ASCII (and '"', '\\') written as \xNN;
 * truncated text ends in "...". Always NUL-terminates; returns dst.
 */
char *log_escape(char *dst, size_t dstsize, const char *src, size_t len);

/*
 * log_escape() that escapes spaces too (\x20): for an untrusted value in
 * a key=value field (a login name), so that it cannot look like further
 * fields to a log reader such as fail2ban.
 */
char *log_escape_word(char *dst, size_t dstsize, const char *src,
    size_t len);

#endif
