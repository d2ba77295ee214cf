/*
 * test_smtp_data.c: the DATA sub-machine (src/smtp/data.c): end of data,
 * dot-unstuffing, bare CR/LF, NUL, long lines, output cap, pipelined
 * bytes, and every SMTP smuggling variant from the shared conformance
 * file; and its chunked mode for BDAT (no end of data, no unstuffing,
 * the same line checks, a CR pending at the end flushed by
 * smtp_data_finish()). Every case is fed at once, one byte at a time, in
 * 3-byte chunks and split in two at every offset, with identical results
 * required.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "smtp/data.h"

#include "testutil.h"
#include "smuggling_variants.h"

#define S(x)		x, sizeof(x) - 1
#define BIG		(1024 * 1024)

struct result {
	char *out;
	size_t out_len;
	size_t consumed;
	bool done;
	uint64_t size, bare_cr, bare_lf, nul, long_lines;
};

/*
 * Set by the BDAT tests: run() then uses the chunked machine and calls
 * smtp_data_finish() after the last piece, as the session does at LAST.
 */
static bool chunked;

/*
 * Feed in[0..len) in pieces: chunk octets at a time (0: all at once), or
 * when split > 0 first in[0..split) and then the rest.
 */
static void
run(const char *in, size_t len, enum smtp_data_mode mode, size_t max_line,
    size_t outmax, size_t chunk, size_t split, struct result *r)
{
	struct smtp_data d;
	struct buf out;
	size_t off = 0, n, c;

	if (chunked)
		smtp_data_init_chunked(&d, mode, max_line);
	else
		smtp_data_init(&d, mode, max_line);
	buf_init(&out, outmax);
	while (off < len) {
		if (split > 0)
			n = off < split ? split - off : len - off;
		else
			n = chunk == 0 ? len - off : chunk;
		if (n > len - off)
			n = len - off;
		c = smtp_data_feed(&d, in + off, n, &out);
		off += c;
		if (c < n) {
			/* Only the final dot stops a feed early. */
			if (!d.done)
				fail_msg("feed consumed %zu of %zu without "
				    "done", c, n);
			break;
		}
	}
	if (d.done && off < len &&
	    smtp_data_feed(&d, in + off, len - off, &out) != 0)
		fail_msg("feed after done consumed input");
	if (chunked)
		smtp_data_finish(&d, &out);
	r->out = malloc(out.len + 1);
	assert_non_null(r->out);
	memcpy(r->out, buf_str(&out), out.len + 1);
	r->out_len = out.len;
	r->consumed = off;
	r->done = d.done;
	r->size = d.size;
	r->bare_cr = d.bare_cr;
	r->bare_lf = d.bare_lf;
	r->nul = d.nul;
	r->long_lines = d.long_lines;
	buf_free(&out);
}

static void
check_u64(const char *name, const char *how, const char *what,
    uint64_t got, uint64_t want)
{
	if (got != want)
		fail_msg("%s (%s): %s: got %llu, want %llu", name, how, what,
		    (unsigned long long)got, (unsigned long long)want);
}

static void
check_result(const char *name, const char *how, const struct result *got,
    const struct result *want)
{
	if (got->out_len != want->out_len ||
	    memcmp(got->out, want->out, want->out_len) != 0)
		fail_msg("%s (%s): content: got \"%s\", want \"%s\"", name,
		    how, test_escn(got->out, got->out_len),
		    test_escn(want->out, want->out_len));
	check_u64(name, how, "consumed", got->consumed, want->consumed);
	check_u64(name, how, "done", got->done, want->done);
	check_u64(name, how, "size", got->size, want->size);
	check_u64(name, how, "bare_cr", got->bare_cr, want->bare_cr);
	check_u64(name, how, "bare_lf", got->bare_lf, want->bare_lf);
	check_u64(name, how, "nul", got->nul, want->nul);
	check_u64(name, how, "long_lines", got->long_lines,
	    want->long_lines);
}

/* Run every way of splitting the input and compare each with want. */
static void
run_all_ways(const char *name, const char *in, size_t len,
    enum smtp_data_mode mode, size_t max_line, size_t outmax,
    const struct result *want)
{
	struct result r;
	char how[64];
	size_t k;

	run(in, len, mode, max_line, outmax, 0, 0, &r);
	check_result(name, "all at once", &r, want);
	free(r.out);
	run(in, len, mode, max_line, outmax, 1, 0, &r);
	check_result(name, "byte by byte", &r, want);
	free(r.out);
	run(in, len, mode, max_line, outmax, 3, 0, &r);
	check_result(name, "3-byte chunks", &r, want);
	free(r.out);
	for (k = 1; k < len; k++) {
		snprintf(how, sizeof(how), "split at %zu", k);
		run(in, len, mode, max_line, outmax, 0, k, &r);
		check_result(name, how, &r, want);
		free(r.out);
	}
}

struct data_case {
	const char *name;
	const char *in;
	size_t in_len;
	enum smtp_data_mode mode;
	size_t max_line;
	size_t outmax;
	const char *out;
	size_t out_len;
	size_t consumed;
	bool done;
	uint64_t size, bare_cr, bare_lf, nul, long_lines;
};

#define STRICT		SMTP_DATA_STRICT
#define NORM		SMTP_DATA_NORMALIZE

static const struct data_case data_cases[] = {
	{ "empty message", S(".\r\n"), STRICT, 1000, BIG, S(""), 3, true,
	    0, 0, 0, 0, 0 },
	{ "empty message, normalize", S(".\r\n"), NORM, 1000, BIG, S(""),
	    3, true, 0, 0, 0, 0, 0 },
	{ "one line", S("x\r\n.\r\n"), STRICT, 1000, BIG, S("x\r\n"), 6,
	    true, 3, 0, 0, 0, 0 },
	{ "empty first line", S("\r\n.\r\n"), STRICT, 1000, BIG, S("\r\n"),
	    5, true, 2, 0, 0, 0, 0 },
	{ "nothing yet", S(""), STRICT, 1000, BIG, S(""), 0, false,
	    0, 0, 0, 0, 0 },
	{ "incomplete end", S("a\r\n.\r"), STRICT, 1000, BIG, S("a\r\n"), 5,
	    false, 3, 0, 0, 0, 0 },
	{ "unstuff ..x", S("..x\r\n.\r\n"), STRICT, 1000, BIG, S(".x\r\n"),
	    8, true, 4, 0, 0, 0, 0 },
	{ "unstuff ..", S("a\r\n..\r\n.\r\n"), STRICT, 1000, BIG,
	    S("a\r\n.\r\n"), 10, true, 6, 0, 0, 0, 0 },
	{ "unstuff .x", S(".x\r\n.\r\n"), STRICT, 1000, BIG, S("x\r\n"), 7,
	    true, 3, 0, 0, 0, 0 },
	{ "unstuff ...", S("...\r\n.\r\n"), STRICT, 1000, BIG,
	    S("..\r\n"), 8, true, 4, 0, 0, 0, 0 },
	{ "dot inside line kept", S("a.b\r\n.\r\n"), STRICT, 1000, BIG,
	    S("a.b\r\n"), 8, true, 5, 0, 0, 0, 0 },
	{ "pipelined after end", S("a\r\n.\r\nQUIT\r\n"), STRICT, 1000, BIG,
	    S("a\r\n"), 6, true, 3, 0, 0, 0, 0 },
	{ "pipelined after empty", S(".\r\nMAIL FROM:<a@b>\r\n"), STRICT,
	    1000, BIG, S(""), 3, true, 0, 0, 0, 0, 0 },
	{ "NUL counted and kept", S("a\0b\r\n\0\r\n.\r\n"), STRICT, 1000,
	    BIG, S("a\0b\r\n\0\r\n"), 11, true, 8, 0, 0, 2, 0 },
	{ "bare LF strict", S("a\nb\r\n.\r\n"), STRICT, 1000, BIG,
	    S("a\nb\r\n"), 8, true, 5, 0, 1, 0, 0 },
	{ "bare LF normalize", S("a\nb\r\n.\r\n"), NORM, 1000, BIG,
	    S("a\r\nb\r\n"), 8, true, 6, 0, 1, 0, 0 },
	{ "bare CR strict", S("a\rb\r\n.\r\n"), STRICT, 1000, BIG,
	    S("a\rb\r\n"), 8, true, 5, 1, 0, 0, 0 },
	{ "bare CR normalize", S("a\rb\r\n.\r\n"), NORM, 1000, BIG,
	    S("a\r\nb\r\n"), 8, true, 6, 1, 0, 0, 0 },
	{ "CR CR LF strict", S("a\r\r\n.\r\n"), STRICT, 1000, BIG,
	    S("a\r\r\n"), 7, true, 4, 1, 0, 0, 0 },
	{ "CR CR LF normalize", S("a\r\r\n.\r\n"), NORM, 1000, BIG,
	    S("a\r\n\r\n"), 7, true, 5, 1, 0, 0, 0 },
	{ "LF CR strict", S("a\n\rb\r\n.\r\n"), STRICT, 1000, BIG,
	    S("a\n\rb\r\n"), 9, true, 6, 1, 1, 0, 0 },
	/* A bare LF does not start a line: ".\r\n" after it is content. */
	{ "LF dot CRLF not end", S("a\n.\r\nb\r\n.\r\n"), STRICT, 1000, BIG,
	    S("a\n.\r\nb\r\n"), 11, true, 8, 0, 1, 0, 0 },
	{ "LF dot CRLF not end, normalize", S("a\n.\r\nb\r\n.\r\n"), NORM,
	    1000, BIG, S("a\r\n.\r\nb\r\n"), 11, true, 9, 0, 1, 0, 0 },
	{ "LF dot LF at start", S("\n.\n.\r\n"), STRICT, 1000, BIG,
	    S("\n.\n.\r\n"), 6, false, 6, 0, 2, 0, 0 },
	{ "dot CR x", S(".\rx\r\n.\r\n"), STRICT, 1000, BIG, S("\rx\r\n"),
	    8, true, 4, 1, 0, 0, 0 },
	{ "dot CR CR LF", S(".\r\r\n.\r\n"), NORM, 1000, BIG,
	    S("\r\n\r\n"), 7, true, 4, 1, 0, 0, 0 },
	{ "dot LF", S(".\n.\r\n"), STRICT, 1000, BIG, S("\n.\r\n"), 5,
	    false, 4, 0, 1, 0, 0 },
	{ "line at max", S("abc\r\n.\r\n"), STRICT, 3, BIG, S("abc\r\n"), 8,
	    true, 5, 0, 0, 0, 0 },
	{ "line over max", S("abcd\r\nab\r\nabcdef\r\n.\r\n"), STRICT, 3,
	    BIG, S("abc\r\nab\r\nabc\r\n"), 21, true, 14, 0, 0, 0, 2 },
	{ "long line, unstuffed dot not counted", S("..abc\r\n.\r\n"),
	    STRICT, 4, BIG, S(".abc\r\n"), 10, true, 6, 0, 0, 0, 0 },
	{ "long line after unstuffing", S("..abcd\r\n.\r\n"), STRICT, 4, BIG,
	    S(".abc\r\n"), 11, true, 6, 0, 0, 0, 1 },
	{ "bare LF past max dropped", S("abc\nd\r\n.\r\n"), NORM, 3, BIG,
	    S("abc\r\n"), 10, true, 5, 0, 1, 0, 1 },
	{ "bare LF within max", S("ab\nd\r\n.\r\n"), STRICT, 3, BIG,
	    S("ab\n\r\n"), 9, true, 5, 0, 1, 0, 1 },
	{ "NUL past max counted", S("abc\0\r\n.\r\n"), STRICT, 3, BIG,
	    S("abc\r\n"), 9, true, 5, 0, 0, 1, 1 },
	{ "max_line 0 is no limit", S("abcdefgh\r\n.\r\n"), STRICT, 0, BIG,
	    S("abcdefgh\r\n"), 13, true, 10, 0, 0, 0, 0 },
	{ "output cap keeps prefix, counts size", S("abcdef\r\n.\r\n"),
	    STRICT, 1000, 4, S("abcd"), 11, true, 8, 0, 0, 0, 0 },
	{ "final dot then garbage", S("x\r\n.\r\n.\r\n"), STRICT, 1000, BIG,
	    S("x\r\n"), 6, true, 3, 0, 0, 0, 0 },
};

/* Every case of a table, fed every way. */
static void
run_cases(const struct data_case *cases, size_t n)
{
	const struct data_case *c;
	struct result want;
	size_t i;

	for (i = 0; i < n; i++) {
		c = &cases[i];
		want.out = (char *)c->out;
		want.out_len = c->out_len;
		want.consumed = c->consumed;
		want.done = c->done;
		want.size = c->size;
		want.bare_cr = c->bare_cr;
		want.bare_lf = c->bare_lf;
		want.nul = c->nul;
		want.long_lines = c->long_lines;
		run_all_ways(c->name, c->in, c->in_len, c->mode, c->max_line,
		    c->outmax, &want);
	}
}

static void
test_data_cases(void **state)
{
	(void)state;
	run_cases(data_cases, sizeof(data_cases) / sizeof(data_cases[0]));
}

/* The state machine resumes correctly after a feed ends mid-sequence. */
static void
test_data_resume(void **state)
{
	static const char *const pieces[] = { "a\r", "\n.", "\r", "\nQUIT" };
	struct smtp_data d;
	struct buf out;
	size_t got[4], i;
	static const size_t want[4] = { 2, 2, 1, 1 };

	(void)state;
	smtp_data_init(&d, SMTP_DATA_STRICT, 1000);
	buf_init(&out, BIG);
	for (i = 0; i < 4; i++) {
		got[i] = smtp_data_feed(&d, pieces[i], strlen(pieces[i]),
		    &out);
		if (got[i] != want[i])
			fail_msg("piece %zu: consumed: got %zu, want %zu", i,
			    got[i], want[i]);
		if (d.done != (i >= 3))
			fail_msg("piece %zu: done: got %d, want %d", i,
			    d.done, i >= 3);
	}
	if (strcmp(buf_str(&out), "a\r\n") != 0)
		fail_msg("content: got \"%s\", want \"a\\r\\n\"",
		    test_escn(out.data, out.len));
	buf_free(&out);
}

/* A large message with a long body must be linear and exact. */
static void
test_data_large(void **state)
{
	struct result want, r;
	size_t n = 200000, i, len;
	char *in, *expect;

	(void)state;
	in = malloc(n * 4 + 8);
	expect = malloc(n * 4 + 8);
	assert_non_null(in);
	assert_non_null(expect);
	len = 0;
	for (i = 0; i < n; i++) {
		memcpy(in + len, "..\r\n", 4);
		memcpy(expect + i * 3, ".\r\n", 3);
		len += 4;
	}
	memcpy(in + len, ".\r\n", 3);
	len += 3;
	want.out = expect;
	want.out_len = n * 3;
	want.consumed = len;
	want.done = true;
	want.size = n * 3;
	want.bare_cr = want.bare_lf = want.nul = want.long_lines = 0;
	run(in, len, SMTP_DATA_STRICT, 1000, n * 4, 0, 0, &r);
	check_result("200000 stuffed lines", "all at once", &r, &want);
	free(r.out);
	run(in, len, SMTP_DATA_STRICT, 1000, n * 4, 1, 0, &r);
	check_result("200000 stuffed lines", "byte by byte", &r, &want);
	free(r.out);
	free(in);
	free(expect);
}

/*
 * The expected content, computed the simple way: remove every "." that
 * starts a line (at 0 or right after a CR LF pair), then count CRs not
 * followed by LF and LFs not preceded by CR, and in NORMALIZE mode turn
 * each into CR LF.
 */
static void
oracle(const char *in, size_t len, enum smtp_data_mode mode,
    struct result *r)
{
	/* Chunked (BDAT): nothing is unstuffed. */
	char *u, *o;
	size_t i, n = 0, k = 0;
	bool bare;

	u = malloc(len + 1);
	o = malloc(2 * len + 1);
	assert_non_null(u);
	assert_non_null(o);
	for (i = 0; i < len; i++) {
		if (!chunked && in[i] == '.' && (i == 0 || (i >= 2 &&
		    in[i - 1] == '\n' && in[i - 2] == '\r')))
			continue;
		u[n++] = in[i];
	}
	memset(r, 0, sizeof(*r));
	for (i = 0; i < n; i++) {
		bare = false;
		if (u[i] == '\r' && (i + 1 == n || u[i + 1] != '\n')) {
			r->bare_cr++;
			bare = true;
		} else if (u[i] == '\n' && (i == 0 || u[i - 1] != '\r')) {
			r->bare_lf++;
			bare = true;
		} else if (u[i] == '\0')
			r->nul++;
		if (bare && mode == SMTP_DATA_NORMALIZE) {
			o[k++] = '\r';
			o[k++] = '\n';
		} else
			o[k++] = u[i];
	}
	free(u);
	r->out = o;
	r->out_len = k;
	r->size = k;
}

/* msg[0..size) = pre, the variant, post; returns the length. */
static size_t
variant_message(char *msg, size_t size, const char *pre,
    const struct smuggling_variant *v, const char *post)
{
	size_t len = 0;

	assert_true(strlen(pre) + v->len + strlen(post) <= size);
	memcpy(msg + len, pre, strlen(pre));
	len += strlen(pre);
	memcpy(msg + len, v->bytes, v->len);
	len += v->len;
	memcpy(msg + len, post, strlen(post));
	len += strlen(post);
	return len;
}

/* "what key[i] "bytes" mode", for failure messages: truncation is fine. */
static void
variant_name(char *name, size_t size, const char *what,
    const struct smuggling_variant *v, enum smtp_data_mode mode)
{
	if ((size_t)snprintf(name, size, "%s %s \"%.40s\" %s", what, v->name,
	    test_escn(v->bytes, v->len), mode == SMTP_DATA_STRICT ? "strict" :
	    "normalize") >= size)
		name[size - 1] = '\0';
}

static void
test_data_smuggling(void **state)
{
	static const char pre[] = "hello";
	static const char post[] =
	    "MAIL FROM:<x@y>\r\nDATA\r\nSMUGGLED\r\n";
	static const char end[] = ".\r\n";
	static const char pipelined[] = "QUIT\r\n";
	static const enum smtp_data_mode modes[] = { SMTP_DATA_STRICT,
		SMTP_DATA_NORMALIZE };
	struct smuggling_variant v[SMUGGLING_VARIANTS_MAX];
	struct result want, r;
	char msg[256], name[128];
	size_t nv, i, m, body_len, len;

	(void)state;
	nv = smuggling_variants_load(v, SMUGGLING_VARIANTS_MAX);
	for (i = 0; i < nv; i++) {
		len = variant_message(msg, sizeof(msg), pre, &v[i], post);
		body_len = len;
		memcpy(msg + len, end, sizeof(end) - 1);
		len += sizeof(end) - 1;
		memcpy(msg + len, pipelined, sizeof(pipelined) - 1);
		len += sizeof(pipelined) - 1;
		for (m = 0; m < 2; m++) {
			variant_name(name, sizeof(name), "variant", &v[i],
			    modes[m]);
			oracle(msg, body_len, modes[m], &want);
			want.consumed = body_len + sizeof(end) - 1;
			want.done = true;
			/* Never two messages: the first end is the real one. */
			run_all_ways(name, msg, len, modes[m], 1000, BIG,
			    &want);
			/* The smuggled command stays inside the one message. */
			run(msg, len, modes[m], 1000, BIG, 0, 0, &r);
			if (memmem(r.out, r.out_len, "SMUGGLED\r\n", 10) ==
			    NULL || memmem(r.out, r.out_len, "MAIL FROM:<x@y>",
			    15) == NULL)
				fail_msg("%s: smuggled text missing from "
				    "\"%s\"", name, test_escn(r.out, r.out_len));
			free(r.out);
			/* The variant alone never ends the message. */
			run(msg, sizeof(pre) - 1 + v[i].len, modes[m], 1000,
			    BIG, 1, 0, &r);
			if (r.done)
				fail_msg("%s alone: done: got 1, want 0", name);
			free(r.out);
			free(want.out);
		}
	}
}

/* ---- chunked mode (BDAT) ---- */

static const struct data_case chunked_cases[] = {
	{ "nothing", S(""), STRICT, 1000, BIG, S(""), 0, false,
	    0, 0, 0, 0, 0 },
	{ "dot lines are content", S(".\r\n..x\r\n"), STRICT, 1000, BIG,
	    S(".\r\n..x\r\n"), 8, false, 8, 0, 0, 0, 0 },
	{ "CRLF.CRLF is content", S("a\r\n.\r\nMAIL FROM:<x@y>\r\n"),
	    STRICT, 1000, BIG, S("a\r\n.\r\nMAIL FROM:<x@y>\r\n"), 23,
	    false, 23, 0, 0, 0, 0 },
	{ "no final CRLF", S("a\r\nb"), STRICT, 1000, BIG, S("a\r\nb"), 4,
	    false, 4, 0, 0, 0, 0 },
	{ "bare LF strict", S("a\nb\r\n"), STRICT, 1000, BIG,
	    S("a\nb\r\n"), 5, false, 5, 0, 1, 0, 0 },
	{ "bare LF normalize", S("a\nb\r\n"), NORM, 1000, BIG,
	    S("a\r\nb\r\n"), 5, false, 6, 0, 1, 0, 0 },
	{ "trailing CR strict", S("a\r"), STRICT, 1000, BIG, S("a\r"), 2,
	    false, 2, 1, 0, 0, 0 },
	{ "trailing CR normalize", S("a\r"), NORM, 1000, BIG, S("a\r\n"),
	    2, false, 3, 1, 0, 0, 0 },
	{ "CR CR LF", S("a\r\r\n"), STRICT, 1000, BIG, S("a\r\r\n"), 4,
	    false, 4, 1, 0, 0, 0 },
	{ "LF dot CRLF", S("a\n.\r\n"), NORM, 1000, BIG,
	    S("a\r\n.\r\n"), 5, false, 6, 0, 1, 0, 0 },
	{ "NUL counted and kept", S("\0a\r\n"), STRICT, 1000, BIG,
	    S("\0a\r\n"), 4, false, 4, 0, 0, 1, 0 },
	{ "long line cut and counted", S("abcdefg\r\nxy\r\n"), STRICT, 4,
	    BIG, S("abcd\r\nxy\r\n"), 13, false, 10, 0, 0, 0, 1 },
};

static void
test_chunked_cases(void **state)
{
	(void)state;
	chunked = true;
	run_cases(chunked_cases,
	    sizeof(chunked_cases) / sizeof(chunked_cases[0]));
	chunked = false;
}

/*
 * Every smuggling variant, and the final dot and the command after it, is
 * plain content of a BDAT chunk: nothing ends it, nothing is unstuffed,
 * and the result is the oracle's (bare CR/LF counted and, in NORMALIZE
 * mode, turned into CRLF, as for DATA).
 */
static void
test_chunked_smuggling(void **state)
{
	static const char pre[] = "hello";
	static const char post[] =
	    "MAIL FROM:<x@y>\r\nDATA\r\nSMUGGLED\r\n.\r\nQUIT\r\n";
	static const enum smtp_data_mode modes[] = { SMTP_DATA_STRICT,
		SMTP_DATA_NORMALIZE };
	struct smuggling_variant v[SMUGGLING_VARIANTS_MAX];
	struct result want;
	char msg[256], name[128];
	size_t nv, i, m, len;

	(void)state;
	nv = smuggling_variants_load(v, SMUGGLING_VARIANTS_MAX);
	chunked = true;
	for (i = 0; i < nv; i++) {
		len = variant_message(msg, sizeof(msg), pre, &v[i], post);
		for (m = 0; m < 2; m++) {
			variant_name(name, sizeof(name), "chunked", &v[i],
			    modes[m]);
			oracle(msg, len, modes[m], &want);
			want.consumed = len;
			want.done = false;
			run_all_ways(name, msg, len, modes[m], 1000, BIG,
			    &want);
			free(want.out);
		}
	}
	chunked = false;
}

/* smtp_data_finish() does nothing to a DATA machine after its dot. */
/*
 * The reference: the byte-at-a-time machine data.c had before it learnt
 * to skip through lines with memchr(). The fast one must agree with it on
 * every input, however split.
 */
struct ref_data {
	int mode;
	size_t max_line;
	uint64_t size, bare_cr, bare_lf, nul, long_lines;
	bool done, chunked;
	int state;
	size_t line_len;
};

enum { R_BOL, R_DOT, R_DOT_CR, R_LINE, R_CR };

static void
ref_emit(struct ref_data *d, struct buf *out, const char *p, size_t n)
{
	size_t room;

	d->size += n;
	room = out->max > out->len ? out->max - out->len : 0;
	if (n > room)
		n = room;
	if (n > 0)
		(void)buf_append(out, p, n);
}

static size_t
ref_keep(struct ref_data *d, size_t n)
{
	size_t keep;

	if (d->max_line == 0)
		return n;
	if (d->line_len > d->max_line)
		return 0;
	if (n <= d->max_line - d->line_len) {
		d->line_len += n;
		return n;
	}
	keep = d->max_line - d->line_len;
	d->long_lines++;
	d->line_len = d->max_line + 1;
	return keep;
}

static void
ref_bare(struct ref_data *d, struct buf *out, char c)
{
	if (c == '\r')
		d->bare_cr++;
	else
		d->bare_lf++;
	if (ref_keep(d, 1) == 0)
		return;
	if (d->mode == SMTP_DATA_NORMALIZE)
		ref_emit(d, out, "\r\n", 2);
	else
		ref_emit(d, out, &c, 1);
}

static size_t
ref_feed(struct ref_data *d, const char *in, size_t len, struct buf *out)
{
	size_t i = 0, j, k;
	char c;

	while (i < len && !d->done) {
		c = in[i];
		switch (d->state) {
		case R_BOL:
			if (c == '.' && !d->chunked) {
				d->state = R_DOT;
				i++;
			} else
				d->state = R_LINE;
			break;
		case R_DOT:
			if (c == '\r') {
				d->state = R_DOT_CR;
				i++;
			} else
				d->state = R_LINE;
			break;
		case R_DOT_CR:
			if (c == '\n') {
				d->done = true;
				i++;
				break;
			}
			ref_bare(d, out, '\r');
			d->state = R_LINE;
			break;
		case R_CR:
			if (c == '\n') {
				ref_emit(d, out, "\r\n", 2);
				d->line_len = 0;
				d->state = R_BOL;
				i++;
				break;
			}
			ref_bare(d, out, '\r');
			d->state = R_LINE;
			break;
		case R_LINE:
			if (c == '\r') {
				d->state = R_CR;
				i++;
			} else if (c == '\n') {
				ref_bare(d, out, '\n');
				i++;
			} else {
				for (j = i; j < len && in[j] != '\r' &&
				    in[j] != '\n'; j++)
					;
				for (k = i; k < j; k++)
					if (in[k] == '\0')
						d->nul++;
				ref_emit(d, out, in + i, ref_keep(d, j - i));
				i = j;
			}
			break;
		}
	}
	return i;
}

/* Random inputs of CR, LF, ".", NUL and letters, split at random. */
static void
test_data_matches_reference(void **state)
{
	static const char alphabet[] = "\r\n.\r\n.\0abcdefgh";
	static const size_t max_lines[] = { 0, 1, 3, 8, 1000 };
	static const size_t outmaxes[] = { 5, 64, BIG };
	char in[600];
	unsigned int round;

	(void)state;
	srandom(2026);
	for (round = 0; round < 20000; round++) {
		struct smtp_data d;
		struct ref_data r;
		struct buf out, rout;
		size_t len = (size_t)random() % sizeof(in), i, off, got, rgot;
		int mode = random() % 2 ? SMTP_DATA_STRICT :
		    SMTP_DATA_NORMALIZE;
		bool chunk_mode = random() % 4 == 0;
		size_t max_line = max_lines[random() % 5];
		size_t outmax = outmaxes[random() % 3];

		for (i = 0; i < len; i++)
			in[i] = alphabet[random() % (sizeof(alphabet) - 1)];
		if (chunk_mode)
			smtp_data_init_chunked(&d, mode, max_line);
		else
			smtp_data_init(&d, mode, max_line);
		memset(&r, 0, sizeof(r));
		r.mode = mode;
		r.max_line = max_line;
		r.chunked = chunk_mode;
		r.state = R_BOL;
		buf_init(&out, outmax);
		buf_init(&rout, outmax);
		for (off = 0; off < len && !d.done; off += got) {
			size_t n = 1 + (size_t)random() % (len - off);

			got = smtp_data_feed(&d, in + off, n, &out);
			rgot = ref_feed(&r, in + off, n, &rout);
			if (got != rgot)
				fail_msg("round %u: consumed %zu, reference "
				    "%zu (\"%s\")", round, got, rgot,
				    test_escn(in, len));
			if (d.done != r.done)
				fail_msg("round %u: done differs", round);
		}
		smtp_data_finish(&d, &out);
		if (!r.done && r.state == R_CR) {
			ref_bare(&r, &rout, '\r');
			r.state = R_LINE;
		}
		if (d.size != r.size || d.bare_cr != r.bare_cr ||
		    d.bare_lf != r.bare_lf || d.nul != r.nul ||
		    d.long_lines != r.long_lines || out.len != rout.len ||
		    (out.len > 0 && memcmp(out.data, rout.data, out.len) != 0))
			fail_msg("round %u: results differ (\"%s\")", round,
			    test_escn(in, len));
		buf_free(&out);
		buf_free(&rout);
	}
}

static void
test_finish_after_dot(void **state)
{
	struct smtp_data d;
	struct buf out;

	(void)state;
	smtp_data_init(&d, SMTP_DATA_NORMALIZE, 1000);
	buf_init(&out, BIG);
	assert_int_equal(smtp_data_feed(&d, "a\r\n.\r\n", 6, &out), 6);
	assert_true(d.done);
	smtp_data_finish(&d, &out);
	if (out.len != 3 || memcmp(out.data, "a\r\n", 3) != 0 ||
	    d.bare_cr != 0)
		fail_msg("finish after dot: got \"%s\" bare_cr %llu, want "
		    "\"a\\r\\n\" 0", test_escn(out.data, out.len),
		    (unsigned long long)d.bare_cr);
	buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_data_cases),
		cmocka_unit_test(test_data_resume),
		cmocka_unit_test(test_data_large),
		cmocka_unit_test(test_data_smuggling),
		cmocka_unit_test(test_chunked_cases),
		cmocka_unit_test(test_chunked_smuggling),
		cmocka_unit_test(test_finish_after_dot),
		cmocka_unit_test(test_data_matches_reference),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
