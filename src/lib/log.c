/*
 * log.c: timestamped key=value lines on stderr. Thread-safe: each line is
 * formatted into a local buffer and written with one write(2).
 */
#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_progname = "petrel";
static enum log_level log_min = LOG_LEVEL_INFO;

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

static void log_vwrite(enum log_level, const char *, va_list)
    __attribute__((format(printf, 2, 0)));

static void
log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
	static const char *names[] = { "debug", "info", "warn", "error" };
	char line[4096];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;

	if (level < log_min)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s[%d]: %s: ",
	    ts.tv_nsec / 1000000, log_progname, (int)getpid(), names[level]);
	if (r > 0)
		n += (size_t)r;
	r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	if (r < 0)
		r = 0;
	if ((size_t)r >= sizeof(line) - n - 1)
		n = sizeof(line) - 2;
	else
		n += (size_t)r;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) == -1) {
		/* Nowhere left to report it. */
	}
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
