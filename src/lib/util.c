/*
 * util.c: allocation wrappers, bounded strings, number and duration
 * parsing, clocks, small file helpers.
 *
 * SECURITY: parse_* take configuration and protocol text; they never read
 * past the terminating NUL and reject anything that is not exactly a number.
 */
#include "lib/util.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"

void *
xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		fatalx("out of memory (%zu bytes)", size);
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		fatalx("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

void *
xrealloc(void *p, size_t size)
{
	void *q = realloc(p, size ? size : 1);

	if (q == NULL)
		fatalx("out of memory (%zu bytes)", size);
	return q;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		fatalx("out of memory");
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (p == NULL)
		fatalx("out of memory");
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatalx("out of memory");
	return p;
}

size_t
strlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size > 0) {
		size_t n = len < size - 1 ? len : size - 1;

		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

size_t
strlcat(char *dst, const char *src, size_t size)
{
	size_t dlen = strnlen(dst, size);

	if (dlen == size)
		return size + strlen(src);
	return dlen + strlcpy(dst + dlen, src, size - dlen);
}

int
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out,
    const char **error_r)
{
	uint64_t v = 0;
	const char *p;

	if (s == NULL || *s == '\0') {
		*error_r = "invalid";
		return -1;
	}
	for (p = s; *p != '\0'; p++) {
		unsigned int d;

		if (*p < '0' || *p > '9') {
			*error_r = "invalid";
			return -1;
		}
		d = (unsigned int)(*p - '0');
		if (v > (UINT64_MAX - d) / 10) {
			*error_r = "too large";
			return -1;
		}
		v = v * 10 + d;
	}
	if (v < min) {
		*error_r = "too small";
		return -1;
	}
	if (v > max) {
		*error_r = "too large";
		return -1;
	}
	*out = v;
	return 0;
}

static int
parse_suffixed(const char *s, const char *units, const uint64_t *mult,
    uint64_t *out, const char **error_r)
{
	char num[32];
	size_t len = strlen(s);
	uint64_t m = 1, v;
	const char *u;

	if (len == 0 || len >= sizeof(num)) {
		*error_r = "invalid";
		return -1;
	}
	memcpy(num, s, len + 1);
	u = strchr(units, num[len - 1] | 0x20);
	if (num[len - 1] >= 'A' && u != NULL && *u != '\0') {
		m = mult[u - units];
		num[len - 1] = '\0';
	}
	if (parse_u64(num, 0, UINT64_MAX / m, &v, error_r) == -1)
		return -1;
	*out = v * m;
	return 0;
}

int
parse_duration(const char *s, uint64_t *seconds_r, const char **error_r)
{
	static const uint64_t mult[] = { 1, 60, 3600, 86400 };

	return parse_suffixed(s, "smhd", mult, seconds_r, error_r);
}

int
parse_size(const char *s, uint64_t *bytes_r, const char **error_r)
{
	static const uint64_t mult[] = { 1024, 1024 * 1024,
		1024 * 1024 * 1024 };

	return parse_suffixed(s, "kmg", mult, bytes_r, error_r);
}

int
ascii_strcasecmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		int ca = (unsigned char)*a, cb = (unsigned char)*b;

		if (ca >= 'A' && ca <= 'Z')
			ca += 32;
		if (cb >= 'A' && cb <= 'Z')
			cb += 32;
		if (ca != cb || ca == 0)
			return ca - cb;
	}
}

int
ascii_strncasecmp(const char *a, const char *b, size_t n)
{
	for (; n > 0; a++, b++, n--) {
		int ca = (unsigned char)*a, cb = (unsigned char)*b;

		if (ca >= 'A' && ca <= 'Z')
			ca += 32;
		if (cb >= 'A' && cb <= 'Z')
			cb += 32;
		if (ca != cb || ca == 0)
			return ca - cb;
	}
	return 0;
}

void
ascii_lowercase(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s += 32;
}

int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

uint64_t
time_mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t
time_real_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
fsync_dir(const char *path)
{
	int fd, r, saved;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	r = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

int
mkdir_p(const char *path, unsigned int mode)
{
	char tmp[4096];
	char *p;

	if (strlcpy(tmp, path, sizeof(tmp)) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		/* Parents are traversable: only the leaf gets mode. */
		if (mkdir(tmp, 0755) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) == -1 && errno != EEXIST)
		return -1;
	return 0;
}
