/*
 * data.c: the DATA sub-machine. Finds the end of data, removes
 * dot-stuffing, counts bare CR, bare LF, NUL and over-long lines, and
 * appends the content to a capped buffer.
 *
 * Entry points: smtp_data_init(), smtp_data_init_chunked(),
 * smtp_data_feed(), smtp_data_finish().
 *
 * SECURITY: parses untrusted input; this is the SMTP smuggling defense.
 * The message ends only at CRLF "." CRLF where the first CRLF ended a
 * line, or at "." CRLF as the very first line. A bare CR or bare LF never
 * ends a line here, whatever the mode: in NORMALIZE mode it is written as
 * CRLF, but the machine still does not treat the next byte as the start
 * of a line, so "\n.\r\n" can neither end the message nor be unstuffed.
 * The state is a handful of integers: memory does not grow with input,
 * and the result does not depend on how the input is split into feeds.
 * In chunked mode (BDAT, RFC 3030 2) a line start is never special:
 * the machine only checks and normalizes lines.
 * STANDARDS: RFC 5321 2.3.8 (lines end with CRLF), 4.1.1.4 (end of data),
 * 4.5.2 (transparency), 4.5.3.1.6 (line length); RFC 3030 2 (BDAT
 * content is not dot-stuffed).
 * OWNERSHIP: struct smtp_data is the caller's; content goes to the
 * caller's struct buf.
 */
#include "smtp/data.h"

#include <string.h>

enum data_state {
	DATA_BOL = 0,	/* at the start of a line (after CRLF, or first) */
	DATA_DOT,	/* a line began with "." */
	DATA_DOT_CR,	/* a line began with ".\r" */
	DATA_LINE,	/* inside a line */
	DATA_CR,	/* inside a line, a CR waits for its LF */
};

void
smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode,
    size_t max_line)
{
	memset(d, 0, sizeof(*d));
	d->mode = mode;
	d->max_line = max_line;
	d->state = DATA_BOL;
}

void
smtp_data_init_chunked(struct smtp_data *d, enum smtp_data_mode mode,
    size_t max_line)
{
	smtp_data_init(d, mode, max_line);
	d->chunked = true;
}

/*
 * Produce content. size counts every produced byte; out receives as much
 * of it as fits (a prefix, so the result does not depend on chunking).
 */
static void
data_emit(struct smtp_data *d, struct buf *out, const char *p, size_t n)
{
	size_t room;

	d->size += n;
	room = out->max > out->len ? out->max - out->len : 0;
	if (n > room)
		n = room;
	if (n > 0)
		(void)buf_append(out, p, n);
}

/*
 * Account for n input octets of the current line and return how many of
 * them are kept. RFC 5321 4.5.3.1.6 sets 1000 octets; max_line comes from
 * the configuration (max_line_length) and 0 means no limit. The first
 * octet past the limit counts the line once in long_lines.
 */
static size_t
data_line_keep(struct smtp_data *d, size_t n)
{
	size_t keep;

	if (d->max_line == 0)
		return n;
	if (d->line_len > d->max_line)
		return 0;		/* already counted */
	if (n <= d->max_line - d->line_len) {
		d->line_len += n;
		return n;
	}
	keep = d->max_line - d->line_len;
	d->long_lines++;
	d->line_len = d->max_line + 1;
	return keep;
}

/* A CR not followed by LF, or an LF not preceded by CR. */
static void
data_bare(struct smtp_data *d, struct buf *out, char c)
{
	if (c == '\r')
		d->bare_cr++;
	else
		d->bare_lf++;
	if (data_line_keep(d, 1) == 0)
		return;
	if (d->mode == SMTP_DATA_NORMALIZE)
		data_emit(d, out, "\r\n", 2);
	else
		data_emit(d, out, &c, 1);
}

/* Count the NULs of p[0..n) (memchr: fast when there are none). */
static void
data_count_nul(struct smtp_data *d, const char *p, size_t n)
{
	const char *end = p + n, *z;

	while (p < end && (z = memchr(p, '\0', (size_t)(end - p))) != NULL) {
		d->nul++;
		p = z + 1;
	}
}

/* Ordinary line octets: no CR, no LF. */
static void
data_text(struct smtp_data *d, struct buf *out, const char *p, size_t n)
{
	data_count_nul(d, p, n);
	data_emit(d, out, p, data_line_keep(d, n));
}

/*
 * The index of the first CR or LF in in[i..len), or len. Two memchr()
 * passes (vectorized in libc) instead of a loop over every octet.
 */
static size_t
data_span(const char *in, size_t i, size_t len)
{
	const char *lf, *cr;
	size_t end;

	lf = memchr(in + i, '\n', len - i);
	end = lf != NULL ? (size_t)(lf - in) : len;
	cr = memchr(in + i, '\r', end - i);
	return cr != NULL ? (size_t)(cr - in) : end;
}

size_t
smtp_data_feed(struct smtp_data *d, const char *in, size_t len,
    struct buf *out)
{
	size_t i = 0, j;
	char c;

	/*
	 * Each case either consumes in[i] (i++) or changes state and lets
	 * the next round look at the same byte again.
	 */
	while (i < len && !d->done) {
		c = in[i];
		switch (d->state) {
		case DATA_BOL:
			if (c == '.' && !d->chunked) {
				d->state = DATA_DOT;
				i++;
			} else
				d->state = DATA_LINE;
			break;
		case DATA_DOT:
			/* RFC 5321 4.5.2: drop the first "." of the line. */
			if (c == '\r') {
				d->state = DATA_DOT_CR;
				i++;
			} else
				d->state = DATA_LINE;
			break;
		case DATA_DOT_CR:
			if (c == '\n') {
				/* CRLF "." CRLF: stop right here. */
				d->done = true;
				i++;
				break;
			}
			data_bare(d, out, '\r');
			d->state = DATA_LINE;
			break;
		case DATA_CR:
			if (c == '\n') {
				data_emit(d, out, "\r\n", 2);
				d->line_len = 0;
				d->state = DATA_BOL;
				i++;
				break;
			}
			/* "\r\r\n": the first CR is bare. */
			data_bare(d, out, '\r');
			d->state = DATA_LINE;
			break;
		case DATA_LINE:
			if (c == '\r') {
				d->state = DATA_CR;
				i++;
			} else if (c == '\n') {
				data_bare(d, out, '\n');
				i++;
			} else {
				j = data_span(in, i, len);
				if (j + 1 < len && in[j] == '\r' &&
				    in[j + 1] == '\n') {
					/* The common case, a whole line and
					 * its CRLF: one append. */
					size_t n = j - i, keep;

					data_count_nul(d, in + i, n);
					keep = data_line_keep(d, n);
					if (keep == n)
						data_emit(d, out, in + i,
						    n + 2);
					else {
						data_emit(d, out, in + i,
						    keep);
						data_emit(d, out, "\r\n", 2);
					}
					d->line_len = 0;
					d->state = DATA_BOL;
					i = j + 2;
					break;
				}
				data_text(d, out, in + i, j - i);
				i = j;
			}
			break;
		}
	}
	return i;
}

void
smtp_data_finish(struct smtp_data *d, struct buf *out)
{
	if (d->done || d->state != DATA_CR)
		return;
	data_bare(d, out, '\r');
	d->state = DATA_LINE;
}
