/*
 * fuzz_dsn.c: libFuzzer target for the bounce composer of src/queue/dsn.c:
 * dsn_compose() reading an original message (its header block and body,
 * as a bounce quotes them) and untrusted report strings (remote replies,
 * ORCPT, ENVID, addresses), plus dsn_find_msgid() and dsn_xtext_decode().
 *
 * Input: byte 0 picks RET=FULL (bit 0), SMTPUTF8 (bit 1), the action
 * (bits 2-4, modulo 5), bounce_size_limit (bits 5-6: 16, 300, 4000, 1 MiB)
 * and a second recipient with a double_bounce To: (bit 7); byte 1 the
 * size of the chunks the source hands out (0: all at once); byte 2 the
 * output cap (dsn_size_hint(), or 1500/3000/6000 octets: the composer
 * then returns less). Then NUL-separated strings: recipient, ORCPT,
 * status, remote MTA, diagnostic, command, sender, ENVID; what follows
 * the eighth NUL is the original message. Random bytes (boundaries,
 * Message-ID) come from a counter reset for each run, so runs repeat.
 * FUZZ_DSN_SHOW=1 in the environment prints each report.
 *
 * Invariants (a failure aborts):
 *   - on success: CRLF line ends only, no NUL, no line over 998 octets;
 *     a header section of "Name: value" fields and WSP continuations,
 *     ended by an empty line; no control character (but TAB) and, unless
 *     SMTPUTF8, no 8-bit byte outside the returned content;
 *     *eight_bit_r exactly when the output has an 8-bit byte; the MIME
 *     boundary of the
 *     Content-Type occurs in the body only as the 3 or 4 delimiter lines
 *     (two or three parts, then the close delimiter, which ends the
 *     message): returned content can never end its part;
 *   - on failure: errno EINVAL, EMSGSIZE or EIO and the output untouched;
 *   - the output does not depend on how the source chunks the message;
 *   - dsn_find_msgid() gives "" or "<...>" of printable ASCII without
 *     spaces; dsn_xtext_decode() gives a NUL-free string of the length
 *     it returns.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "queue/dsn.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

#define NFIELDS		8

static const uint64_t size_limits[] = { 16, 300, 4000, 1024 * 1024 };
static const size_t out_caps[] = { 0, 1500, 3000, 6000 };

static unsigned char rnd_next;

/* Deterministic "random" bytes: a counter, reset per run. */
static void
fuzz_random(unsigned char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = rnd_next++;
}

struct source {
	const char *data;
	size_t len, off, chunk;
};

static int
source_next(void *arg, const char **data, size_t *len)
{
	struct source *s = arg;
	size_t n;

	if (s->off >= s->len)
		return 0;
	n = s->len - s->off;
	if (s->chunk > 0 && n > s->chunk)
		n = s->chunk;
	*data = s->data + s->off;
	*len = n;
	s->off += n;
	return 1;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	dsn_set_random(fuzz_random);
	return 0;
}

static size_t
count(const char *p, size_t n, const char *needle)
{
	size_t k = 0, nl = strlen(needle);
	const char *q;

	while (n >= nl && (q = memmem(p, n, needle, nl)) != NULL) {
		k++;
		n -= (size_t)(q - p) + 1;
		p = q + 1;
	}
	return k;
}

/* Header lines: "Name: value" (printable name, no colon) or WSP first. */
static void
check_fields(const char *p, size_t n)
{
	const char *end = p + n, *lf, *c;

	while (p < end) {
		lf = memchr(p, '\n', (size_t)(end - p));
		CHECK(lf != NULL);
		if (p[0] != ' ' && p[0] != '\t') {
			for (c = p; c < lf && *c != ':'; c++)
				CHECK(*c > ' ' && *c < 0x7f);
			CHECK(c > p && c < lf);
		}
		p = lf + 1;
	}
}

static void
check_report(const struct buf *out, bool eight, bool utf8)
{
	const char *o = out->data, *end, *p, *lf, *b, *q, *quote;
	size_t n = out->len, i, line = 0, hdr, ndelim;
	char boundary[80], delim[96];
	bool has8 = false;

	CHECK(n > 0 && o != NULL);
	end = o + n;
	for (i = 0; i < n; i++) {
		CHECK(o[i] != '\0');	/* a NUL is never returned */
		if (o[i] == '\n')
			CHECK(i > 0 && o[i - 1] == '\r');
		if (o[i] == '\r')
			CHECK(i + 1 < n && o[i + 1] == '\n');
		if (o[i] == '\n')
			line = 0;
		else
			CHECK(++line <= 999);	/* 998 and the CR */
		if ((unsigned char)o[i] >= 0x80)
			has8 = true;
	}
	CHECK(has8 == eight);

	/* The header section and its boundary. */
	p = memmem(o, n, "\r\n\r\n", 4);
	CHECK(p != NULL);
	hdr = (size_t)(p - o) + 2;
	check_fields(o, hdr);
	/* Content-Type's parameter, on its own continuation line (the To:
	 * field may hold the same words). */
	b = memmem(o, hdr, "\r\n\tboundary=\"", 13);
	CHECK(b != NULL);
	b += 13;
	q = memchr(b, '"', hdr - (size_t)(b - o));
	CHECK(q != NULL && q > b && (size_t)(q - b) < sizeof(boundary));
	memcpy(boundary, b, (size_t)(q - b));
	boundary[q - b] = '\0';

	/* The boundary: the parameter, the delimiters, the close. */
	snprintf(delim, sizeof(delim), "\r\n--%s\r\n", boundary);
	ndelim = count(o, n, delim);
	CHECK(ndelim == 2 || ndelim == 3);
	snprintf(delim, sizeof(delim), "\r\n--%s--\r\n", boundary);
	CHECK(n > strlen(delim) &&
	    memcmp(end - strlen(delim), delim, strlen(delim)) == 0);
	/* The header section may hold it (the To: address is the sender):
	 * RFC 2046 5.1.1 only needs it absent from the parts. */
	CHECK(count(o + hdr, n - hdr, boundary) == ndelim + 1);

	/*
	 * Outside the returned content (the third part's body) everything
	 * is cleaned: no control character but TAB, 8-bit only for
	 * SMTPUTF8 reports.
	 */
	quote = end;
	if (ndelim == 3) {
		snprintf(delim, sizeof(delim), "\r\n--%s\r\n", boundary);
		p = o;
		for (i = 0; i < 3; i++) {
			p = memmem(p, (size_t)(end - p), delim, strlen(delim));
			CHECK(p != NULL);
			p += strlen(delim);
		}
		/* The part's own header lines, then its body. */
		p = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
		CHECK(p != NULL);
		quote = p + 4;
	}
	for (p = o; p < quote; p++) {
		unsigned char c = (unsigned char)*p;

		CHECK(c >= 0x20 || c == '\t' || c == '\r' || c == '\n');
		CHECK(c != 0x7f);
		if (c >= 0x80)
			CHECK(utf8);
	}
	/* The delivery-status part: fields and empty lines only. */
	snprintf(delim, sizeof(delim), "\r\n--%s\r\n", boundary);
	p = memmem(o, n, delim, strlen(delim));
	CHECK(p != NULL);
	p = memmem(p + 1, (size_t)(end - p - 1), delim, strlen(delim));
	CHECK(p != NULL);
	p += strlen(delim);
	lf = memmem(p, (size_t)(end - p), delim, strlen(delim));
	if (lf == NULL) {
		snprintf(delim, sizeof(delim), "\r\n--%s--\r\n", boundary);
		lf = memmem(p, (size_t)(end - p), delim, strlen(delim));
	}
	CHECK(lf != NULL);
	lf += 2;			/* the last line's CRLF */
	for (q = p; q < lf; ) {
		const char *e = memchr(q, '\n', (size_t)(lf - q));

		CHECK(e != NULL);
		if (e - q > 1)			/* not an empty line */
			check_fields(q, (size_t)(e - q) + 1);
		q = e + 1;
	}
}

static int
compose(const struct dsn_report *r, const char *msg, size_t len,
    size_t chunk, size_t cap, struct buf *out, bool *eight)
{
	struct source src = { msg, len, 0, chunk };
	struct dsn_source s = { source_next, &src };
	int rv;

	rnd_next = 0;
	buf_init(out, cap);
	rv = dsn_compose(r, &s, out, eight);
	if (rv == -1) {
		CHECK(errno == EINVAL || errno == EMSGSIZE || errno == EIO);
		CHECK(out->len == 0);
	}
	return rv;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *f[NFIELDS], *p, *end, *msg, *z;
	char *copy, msgid[256], xtext[512];
	struct dsn_rcpt rc[2];
	struct dsn_report r;
	struct buf one, two;
	bool eight1, eight2;
	size_t i, msglen, cap;
	int rv1, rv2, xl;

	if (size < 3)
		return 0;
	/* NUL-terminated copies of the fields; the message stays binary. */
	if ((copy = malloc(size + NFIELDS)) == NULL)
		return 0;
	memcpy(copy, data + 3, size - 3);
	copy[size - 3] = '\0';
	p = copy;
	end = copy + (size - 3);
	for (i = 0; i < NFIELDS; i++) {
		f[i] = p;
		z = memchr(p, '\0', (size_t)(end - p) + 1);
		p = z < end ? z + 1 : end;
	}
	msg = p;
	msglen = (size_t)(end - p);

	memset(rc, 0, sizeof(rc));
	rc[0].addr = f[0];
	rc[0].orcpt = f[1];
	rc[0].status = f[2];
	rc[0].remote_mta = f[3];
	rc[0].diagnostic = f[4];
	rc[0].command = f[5];
	rc[0].action = (enum dsn_action)(((data[0] >> 2) & 7) % 5);
	rc[0].last_attempt = 1790000000;
	rc[0].will_retry_until = 1790400000;
	rc[1] = rc[0];
	rc[1].addr = "second@example.test";
	rc[1].action = DSN_FAILED;
	rc[1].diagnostic = f[4][0] != '\0' ? f[4] + 1 : NULL;

	memset(&r, 0, sizeof(r));
	r.hostname = "mx.example.test";
	r.sender = f[6];
	r.queue_id = "1K1DFZDC2KHCEZD4";
	r.envid = f[7];
	r.arrival = 1789990000;
	r.now = 1790000001;
	r.ret_full = data[0] & 1;
	r.smtputf8 = (data[0] >> 1) & 1;
	r.size_limit = size_limits[(data[0] >> 5) & 3];
	r.rcpts = rc;
	r.nrcpts = data[0] & 0x80 ? 2 : 1;
	r.to = data[0] & 0x80 ? "postmaster@example.test" : NULL;
	cap = out_caps[data[2] & 3];
	if (cap == 0)
		cap = dsn_size_hint(&r);

	rv1 = compose(&r, msg, msglen, 0, cap, &one, &eight1);
	rv2 = compose(&r, msg, msglen, data[1], cap, &two, &eight2);
	CHECK(rv1 == rv2);
	if (getenv("FUZZ_DSN_SHOW") != NULL)
		fprintf(stderr, "rv=%d eight=%d\n%.*s\n", rv1, eight1,
		    (int)one.len, one.data != NULL ? one.data : "");
	if (rv1 == 0) {
		CHECK(one.len == two.len && eight1 == eight2 &&
		    memcmp(one.data, two.data, one.len) == 0);
		check_report(&one, eight1, r.smtputf8);
	}
	buf_free(&one);
	buf_free(&two);

	dsn_find_msgid(msg, msglen, msgid, sizeof(msgid));
	if (msgid[0] != '\0') {
		size_t ml = strlen(msgid);

		CHECK(ml >= 2 && msgid[0] == '<' && msgid[ml - 1] == '>');
		for (i = 0; i < ml; i++)
			CHECK(msgid[i] > ' ' && msgid[i] < 0x7f);
	}
	xl = dsn_xtext_decode(f[1], xtext, sizeof(xtext));
	if (xl >= 0)
		CHECK(strlen(xtext) == (size_t)xl);
	free(copy);
	return 0;
}
