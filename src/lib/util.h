/*
 * util.h: allocation wrappers that abort, bounded string copies and a
 * strtonum-style number parser. No mail knowledge.
 */
#ifndef PETREL_LIB_UTIL_H
#define PETREL_LIB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation failure aborts: every per-session allocation is capped. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * strlcpy/strlcat (OpenBSD semantics): always NUL-terminate when size > 0,
 * return the length of the string they tried to create; a return value
 * >= size means truncation.
 */
size_t strlcpy(char *dst, const char *src, size_t size);
size_t strlcat(char *dst, const char *src, size_t size);

/*
 * Parse a decimal unsigned number in [min, max]. Returns 0 and sets *out, or
 * -1 with *error_r set to "invalid", "too small" or "too large". Leading
 * signs, spaces and trailing garbage are invalid.
 */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out,
    const char **error_r);

/*
 * Parse a duration: a number followed by an optional unit s, m, h or d
 * (no unit: seconds). Returns 0 and sets *seconds_r, or -1.
 */
int parse_duration(const char *s, uint64_t *seconds_r, const char **error_r);

/* Parse a byte size with optional k, m, g suffix (powers of 1024). */
int parse_size(const char *s, uint64_t *bytes_r, const char **error_r);

/* Case-insensitive ASCII comparisons that ignore the locale. */
int ascii_strcasecmp(const char *a, const char *b);
int ascii_strncasecmp(const char *a, const char *b, size_t n);
void ascii_lowercase(char *s);

/* The value of a hexadecimal digit (either case), or -1. */
int hex_value(char c);

/* Monotonic and wall-clock time. */
uint64_t time_mono_usec(void);
uint64_t time_real_usec(void);

/* Write all of buf to fd, retrying on EINTR and short writes. */
int write_all(int fd, const void *buf, size_t len);

/* fsync a directory by path. Returns 0 or -1 with errno set. */
int fsync_dir(const char *path);

/* mkdir -p: missing parents are made 0755, the last component mode. */
int mkdir_p(const char *path, unsigned int mode);

#endif
