/*
 * buf.h: a binary-safe, NUL-terminated byte buffer with a maximum size fixed
 * at init (curl's dynbuf). Appends past the maximum fail with EMSGSIZE and
 * leave the contents unchanged: no unbounded growth from network input.
 */
#ifndef PETREL_LIB_BUF_H
#define PETREL_LIB_BUF_H

#include <stddef.h>

struct buf {
	char *data;	/* NUL-terminated; NULL until the first append */
	size_t len;
	size_t cap;
	size_t max;	/* content length never exceeds this */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);		/* releases memory; b reusable */
void buf_reset(struct buf *b);		/* len = 0, keeps memory */

/* Return 0, or -1 with errno EMSGSIZE when the result would exceed max. */
int buf_append(struct buf *b, const void *data, size_t len);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Contents as a C string ("" when empty). */
const char *buf_str(const struct buf *b);

#endif
