/*
 * log.c: timestamped key=value lines on stderr or syslog, and appended to
 * a log file. Thread-safe: each line is formatted into a local buffer and
 * written with one write(2) per destination (see log.h, NON-BLOCKING).
 *
 * Entry points: log_init, log_set_dest, log_file_open/_reopen/_close,
 * log_set_tap, log_debug/info/warn/err, fatalx, log_escape(_word).
 * SECURITY: callers escape untrusted text (log_escape); the log file is
 * opened O_NOFOLLOW so a link planted in its directory is not followed.
 * OWNERSHIP: the log file descriptor and its path are module state,
 * guarded by log_lock.
 */
#include "lib/log.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *log_progname = "petrel";
static enum log_level log_min = LOG_LEVEL_INFO;
/* Read by every thread, changed by the loop's reload: atomic. */
static _Atomic int log_dest = LOG_DEST_STDERR;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = -1;			/* log_file, or -1 */
static char *log_path;			/* its path, for reopening */
static log_tap_cb log_tap;
static void *log_tap_arg;

void
log_init(const char *progname, enum log_level min)
{
	log_progname = progname;
	log_min = min;
}

void
log_set_level(enum log_level min)
{
	log_min = min;
}

void
log_set_dest(enum log_dest dest)
{
	if (dest == LOG_DEST_SYSLOG && log_dest != LOG_DEST_SYSLOG)
		openlog(log_progname, LOG_PID | LOG_NDELAY, LOG_MAIL);
	else if (dest != LOG_DEST_SYSLOG && log_dest == LOG_DEST_SYSLOG)
		closelog();
	log_dest = dest;
}

static int
log_file_open_fd(const char *path, uid_t uid, gid_t gid)
{
	int fd, saved;
	bool created = true;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, 0640);
	if (fd == -1 && errno == EEXIST) {
		created = false;
		fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd == -1)
		return -1;
	/* The umask could have taken the group's read bit. */
	if (created && (fchmod(fd, 0640) == -1 || (uid != (uid_t)-1 &&
	    fchown(fd, uid, gid) == -1))) {
		saved = errno;
		close(fd);
		unlink(path);
		errno = saved;
		return -1;
	}
	return fd;
}

int
log_file_open(const char *path, uid_t uid, gid_t gid)
{
	int fd, old;
	char *copy;

	if ((fd = log_file_open_fd(path, uid, gid)) == -1)
		return -1;
	if ((copy = strdup(path)) == NULL) {
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	pthread_mutex_lock(&log_lock);
	old = log_fd;
	log_fd = fd;
	free(log_path);
	log_path = copy;
	pthread_mutex_unlock(&log_lock);
	if (old != -1)
		close(old);
	return 0;
}

int
log_file_reopen(void)
{
	char *path = NULL;
	int fd, old;

	pthread_mutex_lock(&log_lock);
	if (log_path != NULL)
		path = strdup(log_path);
	pthread_mutex_unlock(&log_lock);
	if (path == NULL)
		return 0;
	/* As the daemon's user: a new file is its own already. */
	fd = log_file_open_fd(path, (uid_t)-1, (gid_t)-1);
	free(path);
	if (fd == -1)
		return -1;
	pthread_mutex_lock(&log_lock);
	old = log_fd;
	log_fd = fd;
	pthread_mutex_unlock(&log_lock);
	if (old != -1)
		close(old);
	return 0;
}

void
log_file_close(void)
{
	int old;

	pthread_mutex_lock(&log_lock);
	old = log_fd;
	log_fd = -1;
	free(log_path);
	log_path = NULL;
	pthread_mutex_unlock(&log_lock);
	if (old != -1)
		close(old);
}

void
log_set_tap(log_tap_cb cb, void *arg)
{
	pthread_mutex_lock(&log_lock);
	log_tap = cb;
	log_tap_arg = arg;
	pthread_mutex_unlock(&log_lock);
}

static void log_vwrite(enum log_level, const char *, va_list)
    __attribute__((format(printf, 2, 0)));

static _Thread_local time_t log_stamp_sec;
static _Thread_local char log_stamp[32];
static _Thread_local size_t log_stamp_len;

static void
log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
	static const char *names[] = { "debug", "info", "warn", "error" };
	static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING,
	    LOG_ERR };
	char line[4096];
	struct timespec ts;
	struct tm tm;
	log_tap_cb tap;
	void *tap_arg;
	size_t n, body;
	int r, dest = log_dest;

	if (level < log_min)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	/* The date and time to the second, formatted once a second per
	 * thread: a busy daemon logs thousands of lines a second. */
	if (ts.tv_sec != log_stamp_sec || log_stamp_len == 0) {
		gmtime_r(&ts.tv_sec, &tm);
		log_stamp_len = strftime(log_stamp, sizeof(log_stamp),
		    "%Y-%m-%dT%H:%M:%S", &tm);
		log_stamp_sec = ts.tv_sec;
	}
	memcpy(line, log_stamp, log_stamp_len);
	n = log_stamp_len;
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s[%d]: ",
	    ts.tv_nsec / 1000000, log_progname, (int)getpid());
	if (r > 0)
		n += (size_t)r;
	body = n;
	r = snprintf(line + n, sizeof(line) - n, "%s: ", names[level]);
	if (r > 0)
		n += (size_t)r;
	r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	if (r < 0)
		r = 0;
	if ((size_t)r >= sizeof(line) - n - 1)
		n = sizeof(line) - 2;
	else
		n += (size_t)r;
	line[n] = '\0';
	if (dest == LOG_DEST_SYSLOG)
		syslog(prio[level], "%s", line + body);
	line[n++] = '\n';
	if (dest != LOG_DEST_SYSLOG &&
	    write(STDERR_FILENO, line, n) == -1) {
		/* Nowhere left to report it. */
	}
	pthread_mutex_lock(&log_lock);
	if (log_fd != -1 && write(log_fd, line, n) == -1) {
		/* Reported nowhere either: stderr may be the journal. */
	}
	tap = log_tap;
	tap_arg = log_tap_arg;
	pthread_mutex_unlock(&log_lock);
	if (tap != NULL)
		tap(line, n - 1, tap_arg);
}

#define LOG_FN(name, level)                      \
	void name(const char *fmt, ...)          \
	{                                        \
		va_list ap;                      \
		va_start(ap, fmt);               \
		log_vwrite(level, fmt, ap);      \
		va_end(ap);                      \
	}

LOG_FN(log_debug, LOG_LEVEL_DEBUG)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_warn, LOG_LEVEL_WARN)
LOG_FN(log_err, LOG_LEVEL_ERR)

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERR, fmt, ap);
	va_end(ap);
	abort();
}

static char *
log_escape_chars(char *dst, size_t dstsize, const char *src, size_t len,
    bool space)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;

	if (dstsize == 0)
		return dst;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		size_t need = (c < 0x20 || c > 0x7e || c == '"' || c == '\\' ||
		    (space && c == ' ')) ? 4 : 1;

		if (o + need + 4 > dstsize) {
			if (dstsize >= 4) {
				o = o + 4 > dstsize ? dstsize - 4 : o;
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (need == 4) {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		} else
			dst[o++] = (char)c;
	}
	dst[o] = '\0';
	return dst;
}

char *
log_escape(char *dst, size_t dstsize, const char *src, size_t len)
{
	return log_escape_chars(dst, dstsize, src, len, false);
}

char *
log_escape_word(char *dst, size_t dstsize, const char *src, size_t len)
{
	return log_escape_chars(dst, dstsize, src, len, true);
}
