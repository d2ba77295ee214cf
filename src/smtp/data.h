/*
 * data.h: the DATA sub-machine. Feeds raw bytes from the client, finds the
 * end of data, removes dot-stuffing and checks every line, and hands the
 * content on in chunks. Pure: no I/O, fed one byte or a megabyte at a time
 * with the same result.
 *
 * SECURITY: untrusted input. The end of data is exactly CRLF "." CRLF
 * (RFC 5321 4.1.1.4), where the first CRLF ends a line (or is the start of
 * DATA). A bare LF or bare CR is never a line ending for this purpose, so
 * "\n.\n", "\r.\r", "\n.\r\n", "\r\n.\r" and the rest of the smuggling
 * variants never end the message (tests/unit/test_smtp_data.c,
 * tests/e2e/test_smuggling.py).
 *
 * Lines are the bytes between two CRLFs. Dot-unstuffing removes the first
 * "." of a line (RFC 5321 4.5.2). Bare CR and bare LF inside a line are
 * counted (and in SMTP_DATA_NORMALIZE mode written as CRLF); NUL bytes are
 * counted. A line longer than max_line (excluding CRLF) is counted as an
 * error, and the rest of it is dropped; reading goes on to the final dot so
 * the session stays in sync.
 *
 * BDAT (RFC 3030) content of a 7BIT or 8BITMIME message goes through the
 * same machine in chunked mode (smtp_data_init_chunked()): the chunk
 * sizes delimit the message, so there is no end of data and no
 * dot-unstuffing ("." at the start of a line, and CRLF "." CRLF, are
 * content), but bare CR, bare LF, NUL and long lines are counted (and
 * normalized) exactly as for DATA. The state carries over from one chunk
 * to the next, so a CRLF split between two chunks is one line ending.
 */
#ifndef PETREL_SMTP_DATA_H
#define PETREL_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

enum smtp_data_mode {
	SMTP_DATA_STRICT,	/* bare CR/LF kept as is and counted */
	SMTP_DATA_NORMALIZE,	/* bare CR/LF written as CRLF, counted */
};

struct smtp_data {
	/* configuration */
	enum smtp_data_mode mode;
	size_t max_line;	/* longest line kept intact, without CRLF */

	/* results, valid at any time */
	uint64_t size;		/* content bytes produced so far */
	uint64_t bare_cr;	/* bare CRs seen */
	uint64_t bare_lf;	/* bare LFs seen */
	uint64_t nul;		/* NUL bytes seen */
	uint64_t long_lines;	/* lines over max_line */
	bool done;		/* CRLF.CRLF seen */

	/* private state */
	int state;
	size_t line_len;
	bool chunked;		/* BDAT: no end of data, no unstuffing */
};

void smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode,
    size_t max_line);

/*
 * The same for BDAT content: smtp_data_feed() consumes every byte it is
 * given and never sets done; call smtp_data_finish() after the last
 * chunk.
 */
void smtp_data_init_chunked(struct smtp_data *d, enum smtp_data_mode mode,
    size_t max_line);

/*
 * End of BDAT content: a CR still waiting for its LF is a bare CR
 * (counted, and written as CR or CRLF by the mode) and goes to out. A
 * no-op for DATA, where the final dot leaves nothing pending.
 */
void smtp_data_finish(struct smtp_data *d, struct buf *out);

/*
 * Consume bytes from in[0..len). Content (unstuffed, with CRLF line
 * endings) is appended to out; if out is full (buf_append fails) the
 * content is dropped but counting goes on (the caller checks size against
 * its own limit). Stops right after the final CRLF.CRLF (sets d->done) so
 * pipelined commands that follow stay unread. Returns the number of bytes
 * of in consumed.
 */
size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len,
    struct buf *out);

#endif
