/*
 * log.h: one event per line, key=value, to stderr (the daemon runs in the
 * foreground; systemd or the test harness collects stderr).
 *
 * Lines look like: "2026-11-29T02:13:13.123Z petrel[123]: info: msg k=v".
 * Messages are formatted by the caller; log_escape() makes client text safe.
 */
#ifndef PETREL_LIB_LOG_H
#define PETREL_LIB_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERR,
};

void log_init(const char *progname, enum log_level min);
void log_set_level(enum log_level min);

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
