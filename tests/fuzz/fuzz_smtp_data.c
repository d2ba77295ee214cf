/*
 * fuzz_smtp_data.c: libFuzzer target for the DATA/BDAT machine of
 * src/smtp/data.c (smtp_data_init(), smtp_data_init_chunked(),
 * smtp_data_feed(), smtp_data_finish()): dot-unstuffing, the end of data,
 * bare CR/LF, NUL and long-line counting, in STRICT and NORMALIZE modes.
 *
 * Input: byte 0 picks the split point (0..255 scaled onto the content),
 * byte 1 the mode (bit 0: NORMALIZE), chunked (bit 1) and max_line
 * (bits 2-3: 0 = no limit, 1, 5, 1000), the rest is the content.
 *
 * The content is fed twice: in one call, and in two calls split at the
 * chosen point (the second call gets what follows the first call's
 * consumption, as the session does). Invariants (a failure aborts):
 *   - the two runs agree exactly: consumed, done, every counter, the
 *     output bytes (data.h: "fed one byte or a megabyte at a time with
 *     the same result");
 *   - consumed <= input; chunked mode consumes everything and is never
 *     done; DATA that is not done consumed everything; done means the
 *     consumed input ends in ".\r\n" at the start of a line;
 *   - size counts exactly what was written (the buffer never fills here);
 *   - the output is no longer than the consumed input in STRICT mode, and
 *     in NORMALIZE mode no longer than that plus one octet per bare CR
 *     or bare LF (each written as CRLF);
 *   - after a long line, every line of the output fits max_line;
 *   - a third run into a buffer capped at the split point writes a
 *     prefix of the first run's output, never more than the cap, and
 *     counts the same (a full buffer drops content, not counting).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "smtp/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

static const size_t max_lines[] = { 0, 1, 5, 1000 };

struct run {
	struct smtp_data d;
	struct buf out;
	size_t consumed;
};

static void
run_init(struct run *r, enum smtp_data_mode mode, bool chunked,
    size_t max_line, size_t inlen)
{
	memset(r, 0, sizeof(*r));
	if (chunked)
		smtp_data_init_chunked(&r->d, mode, max_line);
	else
		smtp_data_init(&r->d, mode, max_line);
	/* Room for the worst case: every octet a bare CR/LF made CRLF. */
	buf_init(&r->out, 2 * inlen + 16);
}

static void
run_feed(struct run *r, const char *in, size_t len)
{
	size_t n;

	n = smtp_data_feed(&r->d, in, len, &r->out);
	CHECK(n <= len);
	r->consumed += n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run one, two, three;
	enum smtp_data_mode mode;
	const char *in;
	size_t len, split, max_line, i, line;
	bool chunked;

	if (size < 2)
		return 0;
	mode = data[1] & 1 ? SMTP_DATA_NORMALIZE : SMTP_DATA_STRICT;
	chunked = data[1] & 2;
	max_line = max_lines[(data[1] >> 2) & 3];
	in = (const char *)data + 2;
	len = size - 2;
	split = (size_t)data[0] * len / 255;

	run_init(&one, mode, chunked, max_line, len);
	run_feed(&one, in, len);
	if (chunked)
		smtp_data_finish(&one.d, &one.out);

	run_init(&two, mode, chunked, max_line, len);
	run_feed(&two, in, split);
	if (!two.d.done)
		run_feed(&two, in + two.consumed, len - two.consumed);
	if (chunked)
		smtp_data_finish(&two.d, &two.out);

	CHECK(one.consumed == two.consumed && one.d.done == two.d.done);
	CHECK(one.d.size == two.d.size && one.d.bare_cr == two.d.bare_cr &&
	    one.d.bare_lf == two.d.bare_lf && one.d.nul == two.d.nul &&
	    one.d.long_lines == two.d.long_lines);
	CHECK(one.out.len == two.out.len);
	if (one.out.len > 0)
		CHECK(memcmp(one.out.data, two.out.data, one.out.len) == 0);

	CHECK(one.consumed <= len);
	if (chunked)
		CHECK(!one.d.done && one.consumed == len);
	else if (!one.d.done)
		CHECK(one.consumed == len);
	else {
		CHECK(one.consumed >= 3);
		CHECK(memcmp(in + one.consumed - 3, ".\r\n", 3) == 0);
		CHECK(one.consumed == 3 ||
		    (one.consumed >= 5 &&
		    memcmp(in + one.consumed - 5, "\r\n", 2) == 0));
	}

	CHECK(one.d.size == one.out.len);
	if (mode == SMTP_DATA_STRICT)
		CHECK(one.out.len <= one.consumed);
	else
		CHECK(one.out.len <= one.consumed + one.d.bare_cr +
		    one.d.bare_lf);

	/* Lines of the output, CRLF-separated, fit max_line. */
	if (max_line > 0 && mode == SMTP_DATA_NORMALIZE) {
		line = 0;
		for (i = 0; i < one.out.len; i++) {
			if (one.out.data[i] == '\r' && i + 1 < one.out.len &&
			    one.out.data[i + 1] == '\n') {
				line = 0;
				i++;
			} else
				CHECK(++line <= max_line);
		}
	}

	run_init(&three, mode, chunked, max_line, len);
	three.out.max = split;
	run_feed(&three, in, len);
	if (chunked)
		smtp_data_finish(&three.d, &three.out);
	CHECK(three.consumed == one.consumed && three.d.size == one.d.size);
	CHECK(three.d.bare_cr == one.d.bare_cr &&
	    three.d.bare_lf == one.d.bare_lf && three.d.nul == one.d.nul &&
	    three.d.long_lines == one.d.long_lines);
	CHECK(three.out.len <= split && three.out.len <= one.out.len);
	if (three.out.len > 0)
		CHECK(memcmp(three.out.data, one.out.data, three.out.len) == 0);

	buf_free(&one.out);
	buf_free(&two.out);
	buf_free(&three.out);
	return 0;
}
