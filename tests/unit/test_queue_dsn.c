/*
 * test_queue_dsn.c: the delivery status notification composer
 * (src/queue/dsn.c). Every report is taken apart again by a small MIME
 * splitter (boundary lines, then header fields unfolded) and checked part
 * by part and field by field: top-level fields, the notification text,
 * each delivery-status block, the returned content byte for byte; and on
 * the raw bytes: CRLF only, no line over 998 octets, the boundary in no
 * part. Also: xtext decoding, content fed in any chunking, a boundary
 * that collides with the content, a source that fails, output buffers
 * too small, hostile ORCPT/ENVID/reply text, and 400 reports from random
 * hostile values (fixed, printed seed).
 *
 * With PETREL_DSN_DUMP=dir, every composed report is also written to
 * dir/<case>.eml for tests/e2e/test_dsn_format.py (Python's email
 * package parses them).
 */
#include <sys/stat.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "queue/dsn.h"

#include "testutil.h"

#define HOST		"mx.petrel.test"
#define NOW		1764382393ULL	/* Sat, 29 Nov 2025 02:13:13 +0000 */
#define NOW_DATE	"Sat, 29 Nov 2025 02:13:13 +0000"
#define ARRIVAL		(NOW - 4 * 3600)
#define ARRIVAL_DATE	"Fri, 28 Nov 2025 22:13:13 +0000"
#define LAST		(NOW - 60)
#define LAST_DATE	"Sat, 29 Nov 2025 02:12:13 +0000"
#define UNTIL		(ARRIVAL + 5 * 86400)
#define UNTIL_DATE	"Wed, 03 Dec 2025 22:13:13 +0000"
#define OUT_MAX		(1024 * 1024)

/* ---- A source over a string ---- */

struct str_source {
	const char *data;
	size_t len, pos;
	size_t chunk;		/* 0: everything in one chunk */
	size_t fail_at;		/* fail at this offset; SIZE_MAX: never */
	int fail_errno;
	size_t calls;
};

static int
str_next(void *arg, const char **data, size_t *len)
{
	struct str_source *s = arg;
	size_t n;

	s->calls++;
	if (s->pos >= s->fail_at) {
		errno = s->fail_errno;
		return -1;
	}
	if (s->pos == s->len)
		return 0;
	n = s->len - s->pos;
	if (s->chunk != 0 && n > s->chunk)
		n = s->chunk;
	if (s->fail_at != SIZE_MAX && s->pos + n > s->fail_at)
		n = s->fail_at - s->pos;
	*data = s->data + s->pos;
	*len = n;
	s->pos += n;
	return 1;
}

static void
str_source_init(struct str_source *s, const char *data, size_t len)
{
	memset(s, 0, sizeof(*s));
	s->data = data;
	s->len = len;
	s->fail_at = SIZE_MAX;
}

/* ---- Deterministic randomness for the tests that need it ---- */

static unsigned int rnd_counter;

/* Call k gives bytes all equal to k. */
static void
rnd_counting(unsigned char *p, size_t n)
{
	memset(p, (int)(rnd_counter++ & 0xff), n);
}

static void
rnd_constant(unsigned char *p, size_t n)
{
	memset(p, 0x42, n);
}

/* The boundary dsn.c makes from 16 bytes all equal to v. */
static void
boundary_for(unsigned int v, char *dst, size_t size)
{
	char hex[33];
	size_t i;

	for (i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", v & 0xff);
	snprintf(dst, size, "=_petrel_%s", hex);
}

/* ---- A small MIME splitter ---- */

#define MAX_FIELDS	128
#define MAX_PARTS	4
#define MAX_BLOCKS	16

struct field {
	char *name;
	char *value;	/* unfolded (CRLF removed), leading blanks trimmed */
};

struct fields {
	struct field f[MAX_FIELDS];
	size_t n;
};

struct part {
	struct fields hdr;
	const char *body;	/* without the CRLF before the next boundary */
	size_t body_len;
};

struct parsed {
	struct fields hdr;
	char boundary[128];
	struct part parts[MAX_PARTS];
	size_t nparts;
};

static void
fields_free(struct fields *f)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		free(f->f[i].name);
		free(f->f[i].value);
	}
	f->n = 0;
}

static void
parsed_free(struct parsed *p)
{
	size_t i;

	fields_free(&p->hdr);
	for (i = 0; i < p->nparts; i++)
		fields_free(&p->parts[i].hdr);
	p->nparts = 0;
}

/* Header block p[0..n) (CRLF lines, no empty line) into fields. */
static void
fields_parse(const char *p, size_t n, struct fields *out)
{
	const char *end = p + n, *eol, *colon;
	struct field *cur = NULL;
	size_t have;

	out->n = 0;
	while (p < end) {
		eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (eol == NULL)
			fail_msg("header line without CRLF: %s",
			    test_escn(p, (size_t)(end - p)));
		if (*p == ' ' || *p == '\t') {
			if (cur == NULL)
				fail_msg("continuation line first: %s",
				    test_escn(p, (size_t)(eol - p)));
			have = strlen(cur->value);
			cur->value = realloc(cur->value,
			    have + (size_t)(eol - p) + 1);
			assert_non_null(cur->value);
			memcpy(cur->value + have, p, (size_t)(eol - p));
			cur->value[have + (size_t)(eol - p)] = '\0';
		} else {
			colon = memchr(p, ':', (size_t)(eol - p));
			if (colon == NULL)
				fail_msg("header line without colon: %s",
				    test_escn(p, (size_t)(eol - p)));
			if (out->n == MAX_FIELDS)
				fail_msg("too many header fields");
			cur = &out->f[out->n++];
			cur->name = test_dup_exact(p, (size_t)(colon - p));
			colon++;
			while (colon < eol && (*colon == ' ' || *colon == '\t'))
				colon++;
			cur->value = test_dup_exact(colon,
			    (size_t)(eol - colon));
		}
		p = eol + 2;
	}
}

static size_t
field_count(const struct fields *f, const char *name)
{
	size_t i, n = 0;

	for (i = 0; i < f->n; i++)
		if (strcasecmp(f->f[i].name, name) == 0)
			n++;
	return n;
}

/* The one field called name, or NULL; two of them fail the test. */
static const char *
field_get(const struct fields *f, const char *name)
{
	size_t i;
	const char *v = NULL;

	for (i = 0; i < f->n; i++)
		if (strcasecmp(f->f[i].name, name) == 0) {
			if (v != NULL)
				fail_msg("field %s twice", name);
			v = f->f[i].value;
		}
	return v;
}

static void
field_want(const struct fields *f, const char *name, const char *want)
{
	const char *got = field_get(f, name);

	if (want == NULL) {
		if (got != NULL)
			fail_msg("field %s: got \"%s\", want none", name,
			    test_esc(got));
		return;
	}
	if (got == NULL)
		fail_msg("field %s: missing, want \"%s\"", name,
		    test_esc(want));
	if (strcmp(got, want) != 0)
		fail_msg("field %s: got \"%s\", want \"%s\"", name,
		    test_esc(got), test_esc(want));
}

/* Raw-byte checks: CRLF only, no NUL, no line over 998 octets. */
static void
check_lines(const char *s, size_t n)
{
	size_t i, linestart = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '\0')
			fail_msg("NUL at %zu", i);
		if (s[i] == '\r' && (i + 1 == n || s[i + 1] != '\n'))
			fail_msg("bare CR at %zu: %s", i,
			    test_escn(s + linestart, i - linestart + 2));
		if (s[i] == '\n') {
			if (i == 0 || s[i - 1] != '\r')
				fail_msg("bare LF at %zu", i);
			if (i - 1 - linestart > 998)
				fail_msg("line of %zu octets at %zu",
				    i - 1 - linestart, linestart);
			linestart = i + 1;
		}
	}
	if (linestart != n)
		fail_msg("last line without CRLF");
}

/* The boundary="..." parameter of a Content-Type value. */
static void
boundary_param(const char *ct, char *dst, size_t size)
{
	const char *p = strstr(ct, "boundary=\""), *q;

	if (p == NULL)
		fail_msg("no boundary in \"%s\"", test_esc(ct));
	p += strlen("boundary=\"");
	q = strchr(p, '"');
	assert_non_null(q);
	assert_true((size_t)(q - p) < size);
	memcpy(dst, p, (size_t)(q - p));
	dst[q - p] = '\0';
	assert_true(strlen(dst) >= 1 && strlen(dst) <= 70);
}

/* Split a report into its top-level fields and parts. */
static void
parse_report(const char *raw, size_t len, struct parsed *p)
{
	const char *end = raw + len, *hend, *line, *eol, *pstart = NULL;
	char delim[140], close[140];
	const char *ct;
	bool closed = false;

	memset(p, 0, sizeof(*p));
	check_lines(raw, len);
	hend = memmem(raw, len, "\r\n\r\n", 4);
	assert_non_null(hend);
	fields_parse(raw, (size_t)(hend - raw) + 2, &p->hdr);
	ct = field_get(&p->hdr, "Content-Type");
	assert_non_null(ct);
	boundary_param(ct, p->boundary, sizeof(p->boundary));
	snprintf(delim, sizeof(delim), "--%s", p->boundary);
	snprintf(close, sizeof(close), "--%s--", p->boundary);

	for (line = hend + 4; line < end; line = eol + 2) {
		eol = memmem(line, (size_t)(end - line), "\r\n", 2);
		assert_non_null(eol);
		if (closed)
			fail_msg("text after the closing boundary: %s",
			    test_escn(line, (size_t)(eol - line)));
		if ((size_t)(eol - line) == strlen(delim) &&
		    memcmp(line, delim, strlen(delim)) == 0) {
			if (pstart != NULL)
				goto part;
			pstart = eol + 2;
			continue;
		}
		if ((size_t)(eol - line) == strlen(close) &&
		    memcmp(line, close, strlen(close)) == 0) {
			assert_non_null(pstart);
			closed = true;
			goto part;
		}
		/* Neither: the boundary must not start any other line. */
		if ((size_t)(eol - line) >= strlen(delim) &&
		    memcmp(line, delim, strlen(delim)) == 0)
			fail_msg("line starts with the boundary: %s",
			    test_escn(line, (size_t)(eol - line)));
		continue;
part:
		{
			struct part *pt;
			const char *bend = line - 2, *phend;

			assert_true(p->nparts < MAX_PARTS);
			pt = &p->parts[p->nparts++];
			/* The delimiter's CRLF belongs to the delimiter. */
			assert_true(bend >= pstart);
			size_t plen = (size_t)(bend - pstart);

			if (plen >= 2 && memcmp(pstart, "\r\n", 2) == 0) {
				pt->hdr.n = 0;
				pt->body = pstart + 2;
			} else {
				phend = memmem(pstart, plen + 2, "\r\n\r\n", 4);
				assert_non_null(phend);
				fields_parse(pstart,
				    (size_t)(phend - pstart) + 2, &pt->hdr);
				pt->body = phend + 4;
			}
			assert_true(pt->body <= bend);
			pt->body_len = (size_t)(bend - pt->body);
			pstart = eol + 2;
		}
	}
	if (!closed)
		fail_msg("no closing boundary");
}

/* Split a delivery-status body into blocks of fields (blank lines). */
static size_t
status_blocks(const char *body, size_t len, struct fields *blocks,
    size_t max)
{
	const char *p = body, *end = body + len, *bend;
	size_t n = 0;

	/* The body is blocks of CRLF lines; the last CRLF was taken by
	 * the splitter, so add it back for the field parser. */
	char *copy = test_dup_exact(body, len + 2);

	memcpy(copy + len, "\r\n", 2);
	copy[len + 2] = '\0';
	p = copy;
	end = copy + len + 2;
	while (p < end) {
		while (p + 1 < end && p[0] == '\r' && p[1] == '\n')
			p += 2;
		if (p >= end)
			break;
		bend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
		bend = bend != NULL ? bend + 2 : end;
		assert_true(n < max);
		fields_parse(p, (size_t)(bend - p), &blocks[n++]);
		p = bend;
	}
	free(copy);
	return n;
}

/* True if line (without CRLF) is a whole line of text[0..n). */
static bool
has_line(const char *text, size_t n, const char *line)
{
	const char *p = text, *end = text + n, *eol;
	size_t l = strlen(line);

	while (p < end) {
		eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - p) == l && memcmp(p, line, l) == 0)
			return true;
		p = eol + 2;
	}
	return false;
}

/* True if a line of text[0..n) is not empty but holds only blanks. */
static bool
has_blank_line(const char *text, size_t n)
{
	const char *p = text, *end = text + n, *eol;

	while (p < end) {
		eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (eol == NULL)
			eol = end;
		if (eol > p && strspn(p, " \t") >= (size_t)(eol - p))
			return true;
		p = eol + 2;
	}
	return false;
}

static bool
has_8bit(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

/* ---- Composing ---- */

static void
dump(const char *name, const struct buf *out)
{
	const char *dir = getenv("PETREL_DSN_DUMP");
	char path[1024];
	FILE *f;

	if (dir == NULL || dir[0] == '\0')
		return;
	snprintf(path, sizeof(path), "%s/%s.eml", dir, name);
	f = fopen(path, "wb");
	if (f == NULL)
		fail_msg("cannot write %s", path);
	assert_int_equal(fwrite(out->data, 1, out->len, f), out->len);
	assert_int_equal(fclose(f), 0);
}

static void
report_init(struct dsn_report *r, const struct dsn_rcpt *rcpts, size_t n)
{
	memset(r, 0, sizeof(*r));
	r->hostname = HOST;
	r->sender = "alice@example.com";
	r->queue_id = "1H2K3J4L5M6N7P8Q";
	r->arrival = ARRIVAL;
	r->now = NOW;
	r->size_limit = 50 * 1024;
	r->rcpts = rcpts;
	r->nrcpts = n;
}

/* Compose with content in one chunk; fails the test on error. */
static void
compose(const struct dsn_report *r, const char *content, struct buf *out,
    bool *eight_bit)
{
	struct str_source s;
	struct dsn_source src;

	str_source_init(&s, content, strlen(content));
	src.next = str_next;
	src.arg = &s;
	buf_init(out, OUT_MAX);
	if (dsn_compose(r, &src, out, eight_bit) != 0)
		fail_msg("dsn_compose: %s", strerror(errno));
}

/* ---- The table ---- */

#define CONTENT \
	"Received: from client.example.com by mx.petrel.test\r\n" \
	"From: Alice <alice@example.com>\r\n" \
	"To: bob@example.org\r\n" \
	"Subject: lunch\r\n" \
	"Message-ID: <20251128.abc@example.com>\r\n" \
	"\r\n" \
	"Shall we meet at noon?\r\n" \
	"-- \r\n" \
	"Alice\r\n"
#define CONTENT_HEADERS \
	"Received: from client.example.com by mx.petrel.test\r\n" \
	"From: Alice <alice@example.com>\r\n" \
	"To: bob@example.org\r\n" \
	"Subject: lunch\r\n" \
	"Message-ID: <20251128.abc@example.com>\r\n"

#define CONTENT_8BIT \
	"From: =?utf-8?q?J=C3=BCrgen?= <juergen@example.com>\r\n" \
	"Subject: Gr\xc3\xbc\xc3\x9f" "e\r\n" \
	"Message-ID:\r\n <folded.id@example.com>\r\n" \
	"\r\n" \
	"K\xc3\xa4se und Br\xc3\xb6tchen\r\n"
#define CONTENT_8BIT_HEADERS \
	"From: =?utf-8?q?J=C3=BCrgen?= <juergen@example.com>\r\n" \
	"Subject: Gr\xc3\xbc\xc3\x9f" "e\r\n" \
	"Message-ID:\r\n <folded.id@example.com>\r\n"

#define CONTENT_UTF8 \
	"From: J\xc3\xbcrgen <j\xc3\xbcrgen@example.org>\r\n" \
	"To: \xe7\x94\xa8\xe6\x88\xb7@example.net\r\n" \
	"Subject: \xe4\xbd\xa0\xe5\xa5\xbd\r\n" \
	"\r\n" \
	"\xe4\xbd\xa0\xe5\xa5\xbd\r\n"
#define CONTENT_UTF8_HEADERS \
	"From: J\xc3\xbcrgen <j\xc3\xbcrgen@example.org>\r\n" \
	"To: \xe7\x94\xa8\xe6\x88\xb7@example.net\r\n" \
	"Subject: \xe4\xbd\xa0\xe5\xa5\xbd\r\n"

#define UADDR "\xe7\x94\xa8\xe6\x88\xb7@example.net"	/* 用户@ */
#define USENDER "j\xc3\xbcrgen@example.org"			/* jürgen@ */

#define SUBJ_FAILED	"Undelivered Mail Returned to Sender"
#define SUBJ_DELAYED	"Delayed Mail (still being retried)"
#define SUBJ_OK		"Successful Mail Delivery Report"

#define HDRS		"text/rfc822-headers"
#define FULL		"message/rfc822"
#define DESC_UH		"Undelivered Message Headers"
#define DESC_UM		"Undelivered Message"
#define DESC_DH		"Delivered Message Headers"

struct rcpt_want {
	const char *final;	/* Final-Recipient */
	const char *orig;	/* Original-Recipient, NULL: none */
	const char *status;
	const char *diag;	/* Diagnostic-Code, NULL: none */
};

struct dsn_case {
	const char *name;
	struct dsn_rcpt rcpts[3];
	size_t nrcpts;
	const char *sender;	/* NULL: alice@example.com */
	const char *to;
	const char *envid;
	bool ret_full;
	bool smtputf8;
	uint64_t size_limit;	/* 0: 50 KiB */
	const char *content;

	const char *subject;
	const char *part3_type;	/* NULL: no third part */
	const char *part3_desc;
	const char *part3_body;	/* exactly */
	bool eight_bit;
	const char *want_to;	/* To: */
	const char *want_envid;
	const char *want_msgid;	/* In-Reply-To and References */
	struct rcpt_want want[3];
	const char *text[8];	/* whole lines of the text part */
};

static const struct dsn_case cases[] = {
	{
		.name = "failed_one",
		.rcpts = { { .addr = "bob@example.org", .action = DSN_FAILED,
		    .status = "5.1.1", .remote_mta = "mx.example.org",
		    .diagnostic = "550 5.1.1 <bob@example.org>: user unknown",
		    .last_attempt = LAST, .command = "RCPT TO" } },
		.nrcpts = 1,
		.content = CONTENT,
		.subject = SUBJ_FAILED,
		.part3_type = HDRS, .part3_desc = DESC_UH,
		.part3_body = CONTENT_HEADERS,
		.want_msgid = "<20251128.abc@example.com>",
		.want = { { "rfc822; bob@example.org", NULL, "5.1.1",
		    "smtp; 550 5.1.1 <bob@example.org>: user unknown" } },
		.text = {
		    "I'm sorry to have to inform you that your message "
		    "could not",
		    "be delivered to one or more recipients. Its headers are "
		    "attached below.",
		    "<bob@example.org>: host mx.example.org said:",
		    "    550 5.1.1 <bob@example.org>: user unknown",
		    "    (in reply to RCPT TO command)",
		    "The message arrived on " ARRIVAL_DATE,
		    "with queue ID 1H2K3J4L5M6N7P8Q." },
	},
	{
		.name = "failed_several_orcpt_envid",
		.rcpts = {
		    { .addr = "bob+x@example.org",
		      .orcpt = "rfc822;bob+2Bx@example.org",
		      .action = DSN_FAILED, .status = "5.2.2",
		      .remote_mta = "mx.example.org",
		      .diagnostic = "552 5.2.2 mailbox full",
		      .last_attempt = LAST, .command = "end of DATA" },
		    { .addr = "carol@example.org",
		      .orcpt = "rfc822;team@example.net",
		      .action = DSN_FAILED, .status = "5.7.1",
		      .remote_mta = "mx2.example.org",
		      .diagnostic = "554 5.7.1 rejected by policy" },
		    { .addr = "dave@nullmx.example", .action = DSN_FAILED,
		      .status = "5.1.10" } },
		.nrcpts = 3,
		.envid = "QQ+2B1+3Dx",
		.content = CONTENT,
		.subject = SUBJ_FAILED,
		.part3_type = HDRS, .part3_desc = DESC_UH,
		.part3_body = CONTENT_HEADERS,
		.want_envid = "QQ+1=x",
		.want_msgid = "<20251128.abc@example.com>",
		.want = {
		    { "rfc822; bob+x@example.org",
		      "rfc822; bob+x@example.org", "5.2.2",
		      "smtp; 552 5.2.2 mailbox full" },
		    { "rfc822; carol@example.org",
		      "rfc822; team@example.net", "5.7.1",
		      "smtp; 554 5.7.1 rejected by policy" },
		    { "rfc822; dave@nullmx.example", NULL, "5.1.10",
		      NULL } },
		.text = {
		    "<bob+x@example.org>: host mx.example.org said:",
		    "    552 5.2.2 mailbox full",
		    "    (in reply to end of DATA command)",
		    "<carol@example.org> (expanded from <team@example.net>): "
		    "host mx2.example.org said:",
		    "<dave@nullmx.example>: 5.1.10 Recipient address has "
		    "null MX" },
	},
	{
		.name = "failed_full_within",
		.rcpts = { { .addr = "bob@example.org", .action = DSN_FAILED,
		    .status = "5.1.1", .remote_mta = "mx.example.org",
		    .diagnostic = "550 5.1.1 no such user" } },
		.nrcpts = 1,
		.ret_full = true,
		.content = CONTENT,
		.subject = SUBJ_FAILED,
		.part3_type = FULL, .part3_desc = DESC_UM,
		.part3_body = CONTENT,
		.want_msgid = "<20251128.abc@example.com>",
		.want = { { "rfc822; bob@example.org", NULL, "5.1.1",
		    "smtp; 550 5.1.1 no such user" } },
		.text = { "be delivered to one or more recipients. It's "
		    "attached below." },
	},
	{
		.name = "failed_full_over_limit",
		.rcpts = { { .addr = "bob@example.org", .action = DSN_FAILED,
		    .status = "5.1.1", .remote_mta = "mx.example.org",
		    .diagnostic = "550 5.1.1 no such user" } },
		.nrcpts = 1,
		.ret_full = true,
		/* Room for the headers, not for the whole message. */
		.size_limit = sizeof(CONTENT_HEADERS) + 4,
		.content = CONTENT,
		.subject = SUBJ_FAILED,
		.part3_type = HDRS, .part3_desc = DESC_UH,
		.part3_body = CONTENT_HEADERS,
		.want_msgid = "<20251128.abc@example.com>",
		.want = { { "rfc822; bob@example.org", NULL, "5.1.1",
		    "smtp; 550 5.1.1 no such user" } },
	},
	{
		.name = "failed_full_exactly_limit",
		.rcpts = { { .addr = "bob@example.org", .action = DSN_FAILED,
		    .status = "5.1.1" } },
		.nrcpts = 1,
		.ret_full = true,
		.size_limit = sizeof(CONTENT) - 1,
		.content = CONTENT,
		.subject = SUBJ_FAILED,
		.part3_type = FULL, .part3_desc = DESC_UM,
		.part3_body = CONTENT,
		.want_msgid = "<20251128.abc@example.com>",
		.want = { { "rfc822; bob@example.org", NULL, "5.1.1", NULL } },
		.text = { "<bob@example.org>: 5.1.1 Bad destination mailbox "
		    "address" },
	},
	{
		.name = "delayed",
		.rcpts = { { .addr = "bob@example.org", .action = DSN_DELAYED,
		    .status = "4.4.1", .remote_mta = "mx.example.org",
		    .diagnostic = "451 4.4.1 try again later",
		    .last_attempt = LAST, .will_retry_until = UNTIL,
		    .command = "MAIL FROM" } },
		.nrcpts = 1,
		.ret_full = true,	/* RET applies to failures only */
		.content = CONTENT,
		.subject = SUBJ_DELAYED,
		.part3_type = HDRS, .part3_desc = DESC_UH,
		.part3_body = CONTENT_HEADERS,
		.want_msgid = "<20251128.abc@example.com>",
		.want = { { "rfc822; bob@example.org", NULL, "4.4.1",
		    "smtp; 451 4.4.1 try again later" } },
		.text = {
		    "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR "
		    "MESSAGE. #",
		    "Your message could not be delivered for 4 hours.",
		    "It will be retried until it is 5 days old",
		    "(until " UNTIL_DATE ").",
		    "<bob@example.org>: host mx.example.org said:",
		    "    (in reply to MAIL FROM command)" },
	},
	{
		.name = "delivered",
		.rcpts = { { .addr = "bob@example.org",
		    .orcpt = "rfc822;bob@example.org",
		    .action = DSN_DELIVERED, .status = "2.0.0" } },
		.nrcpts = 1,
		.content = CONTENT,
		.subject = SUBJ_OK,
		.part3_type = HDRS, .part3_desc = DESC_DH,
		.part3_body = CONTENT_HEADERS,
		.want_msgid = "<20251128.abc@example.com>",
		.want = { { "rfc822; bob@example.org",
		    "rfc822; bob@example.org", "2.0.0", NULL } },
		.text = {
		    "Your message was successfully delivered to the "
		    "destination(s)",
		    "<bob@example.org>: delivered to mailbox" },
	},
	{
		.name = "relayed",
		.rcpts = {
		    { .addr = "bob@example.org", .action = DSN_RELAYED,
		      .remote_mta = "mx.example.org",
		      .diagnostic = "250 2.0.0 Ok: queued as 4F2A1" },
		    { .addr = "carol@example.org", .action = DSN_RELAYED,
		      .remote_mta = "mx.example.org" } },
		.nrcpts = 2,
		.content = CONTENT,
		.subject = SUBJ_OK,
		.part3_type = HDRS, .part3_desc = DESC_DH,
		.part3_body = CONTENT_HEADERS,
		.want_msgid = "<20251128.abc@example.com>",
		.want = {
		    { "rfc822; bob@example.org", NULL, "2.0.0",
		      "smtp; 250 2.0.0 Ok: queued as 4F2A1" },
		    { "rfc822; carol@example.org", NULL, "2.0.0", NULL } },
		.text = {
		    "<bob@example.org>: relayed to host mx.example.org, which "
		    "does not report delivery status:",
		    "    250 2.0.0 Ok: queued as 4F2A1",
		    "<carol@example.org>: relayed to host mx.example.org, "
		    "which does not report delivery status" },
	},
	{
		.name = "eight_bit_full",
		.rcpts = { { .addr = "bob@example.org", .action = DSN_FAILED,
		    .status = "5.1.1", .diagnostic = "550 5.1.1 unknown" } },
		.nrcpts = 1,
		.ret_full = true,
		.content = CONTENT_8BIT,
		.subject = SUBJ_FAILED,
		.part3_type = FULL, .part3_desc = DESC_UM,
		.part3_body = CONTENT_8BIT,
		.eight_bit = true,
		.want_msgid = "<folded.id@example.com>",
		.want = { { "rfc822; bob@example.org", NULL, "5.1.1",
		    "smtp; 550 5.1.1 unknown" } },
		.text = { "<bob@example.org>:", "    550 5.1.1 unknown" },
	},
	{
		.name = "eight_bit_headers",
		.rcpts = { { .addr = "bob@example.org", .action = DSN_FAILED,
		    .status = "5.1.1" } },
		.nrcpts = 1,
		.content = CONTENT_8BIT,
		.subject = SUBJ_FAILED,
		.part3_type = HDRS, .part3_desc = DESC_UH,
		.part3_body = CONTENT_8BIT_HEADERS,
		.eight_bit = true,
		.want_msgid = "<folded.id@example.com>",
		.want = { { "rfc822; bob@example.org", NULL, "5.1.1", NULL } },
	},
	{
		.name = "smtputf8",
		.rcpts = { { .addr = UADDR,
		    .orcpt = "utf-8;\\x{7528}\\x{6237}@example.net",
		    .action = DSN_FAILED, .status = "5.1.1",
		    .remote_mta = "mx.example.net",
		    .diagnostic =
		    "550 5.1.1 \xe7\x94\xa8\xe6\x88\xb7 unknown\x07",
		    .command = "RCPT TO" } },
		.nrcpts = 1,
		.sender = USENDER,
		.smtputf8 = true,
		.content = CONTENT_UTF8,
		.subject = SUBJ_FAILED,
		.part3_type = "message/global-headers", .part3_desc = DESC_UH,
		.part3_body = CONTENT_UTF8_HEADERS,
		.eight_bit = true,
		.want_to = "<" USENDER ">",
		.want = { { "utf-8; " UADDR,
		    "utf-8; \\x{7528}\\x{6237}@example.net", "5.1.1",
		    "smtp; 550 5.1.1 \xe7\x94\xa8\xe6\x88\xb7 unknown?" } },
		.text = { "<" UADDR ">: host mx.example.net said:",
		    "    550 5.1.1 \xe7\x94\xa8\xe6\x88\xb7 unknown?" },
	},
	{
		.name = "smtputf8_full",
		.rcpts = { { .addr = UADDR, .action = DSN_FAILED,
		    .status = "5.1.1" } },
		.nrcpts = 1,
		.sender = USENDER,
		.smtputf8 = true,
		.ret_full = true,
		.content = CONTENT_UTF8,
		.subject = SUBJ_FAILED,
		.part3_type = "message/global", .part3_desc = DESC_UM,
		.part3_body = CONTENT_UTF8,
		.eight_bit = true,
		.want_to = "<" USENDER ">",
		.want = { { "utf-8; " UADDR, NULL, "5.1.1", NULL } },
	},
	{
		/* A UTF-8 address in a plain report: utf-8-addr-xtext. */
		.name = "utf8_address_plain_report",
		.rcpts = { { .addr = "j\xc3\xbcrgen+1=x@example.org",
		    .action = DSN_FAILED, .status = "5.1.1",
		    .diagnostic = "550 5.1.1 \xc3\x9cnknown \xff" } },
		.nrcpts = 1,
		.content = CONTENT,
		.subject = SUBJ_FAILED,
		.part3_type = HDRS, .part3_desc = DESC_UH,
		.part3_body = CONTENT_HEADERS,
		.want_msgid = "<20251128.abc@example.com>",
		.want = { { "utf-8; j\\x{FC}rgen\\x{2B}1\\x{3D}x@example.org",
		    NULL, "5.1.1", "smtp; 550 5.1.1 ??nknown ?" } },
		.text = { "<j??rgen+1=x@example.org>:",
		    "    550 5.1.1 ??nknown ?" },
	},
	{
		.name = "multiline_reply",
		.rcpts = { { .addr = "bob@example.org", .action = DSN_FAILED,
		    .remote_mta = "mx.example.org",
		    .diagnostic = "550-5.7.1 This mail was refused.\r\n"
		    "550-5.7.1 See https://example.org/why\r\n"
		    "550 5.7.1 Goodbye.", .command = "end of DATA" } },
		.nrcpts = 1,
		.content = CONTENT,
		.subject = SUBJ_FAILED,
		.part3_type = HDRS, .part3_desc = DESC_UH,
		.part3_body = CONTENT_HEADERS,
		.want_msgid = "<20251128.abc@example.com>",
		.want = { { "rfc822; bob@example.org", NULL, "5.7.1",
		    "smtp; 550-5.7.1 This mail was refused. 550-5.7.1 See "
		    "https://example.org/why 550 5.7.1 Goodbye." } },
		.text = { "<bob@example.org>: host mx.example.org said:",
		    "    550-5.7.1 This mail was refused.",
		    "    550-5.7.1 See https://example.org/why",
		    "    550 5.7.1 Goodbye.",
		    "    (in reply to end of DATA command)" },
	},
	{
		/* Decoded xtext with CR LF is shown undecoded. */
		.name = "hostile_orcpt_envid",
		.rcpts = { { .addr = "bob@example.org",
		    .orcpt = "rfc822;evil+0D+0AX-Injected:+20yes@example.org",
		    .action = DSN_FAILED, .status = "5.1.1",
		    .remote_mta = "mx.example.org\r\nX-Bad: 1",
		    .diagnostic =
		    "550 5.1.1 bad\r\n\r\nX-Injected: yes\n\n" } },
		.nrcpts = 1,
		.envid = "id+0D+0AX-Injected:+20yes",
		.content = CONTENT,
		.subject = SUBJ_FAILED,
		.part3_type = HDRS, .part3_desc = DESC_UH,
		.part3_body = CONTENT_HEADERS,
		.want_envid = "id+0D+0AX-Injected:+20yes",
		.want_msgid = "<20251128.abc@example.com>",
		.want = { { "rfc822; bob@example.org",
		    "rfc822; evil+0D+0AX-Injected:+20yes@example.org", "5.1.1",
		    "smtp; 550 5.1.1 bad X-Injected: yes" } },
		.text = { "<bob@example.org>: host mx.example.org??X-Bad: 1 "
		    "said:" },
	},
	{
		.name = "status_from_reply",
		.rcpts = {
		    { .addr = "bob@example.org", .action = DSN_FAILED,
		      .status = "",
		      .diagnostic = "550 5.7.26 unauthenticated" },
		    { .addr = "carol@example.org", .action = DSN_FAILED,
		      .status = "garbage", .diagnostic = "550 no code here" },
		    { .addr = "dave@example.org", .action = DSN_FAILED,
		      .diagnostic = "mail loop: too many Received: headers" } },
		.nrcpts = 3,
		.content = CONTENT,
		.subject = SUBJ_FAILED,
		.part3_type = HDRS, .part3_desc = DESC_UH,
		.part3_body = CONTENT_HEADERS,
		.want_msgid = "<20251128.abc@example.com>",
		.want = {
		    { "rfc822; bob@example.org", NULL, "5.7.26",
		      "smtp; 550 5.7.26 unauthenticated" },
		    { "rfc822; carol@example.org", NULL, "5.0.0",
		      "smtp; 550 no code here" },
		    { "rfc822; dave@example.org", NULL, "5.0.0",
		      "X-Petrel; mail loop: too many Received: headers" } },
	},
	{
		/* A double bounce to the postmaster. */
		.name = "null_sender",
		.rcpts = { { .addr = "bob@example.org", .action = DSN_FAILED,
		    .status = "5.1.1" } },
		.nrcpts = 1,
		.sender = "",
		.to = "postmaster@mx.petrel.test",
		.content = "From: MAILER-DAEMON@example.org\r\n\r\nbody\r\n",
		.subject = SUBJ_FAILED,
		.part3_type = HDRS, .part3_desc = DESC_UH,
		.part3_body = "From: MAILER-DAEMON@example.org\r\n",
		.want_to = "<postmaster@mx.petrel.test>",
		.want = { { "rfc822; bob@example.org", NULL, "5.1.1", NULL } },
		.text = { "It had the null sender <> (it was itself a delivery "
		    "report)," },
	},
	{
		/* Bare LF and bare CR read as line ends; no final CRLF. */
		.name = "bare_line_ends",
		.rcpts = { { .addr = "bob@example.org", .action = DSN_FAILED,
		    .status = "5.1.1" } },
		.nrcpts = 1,
		.ret_full = true,
		.content = "Subject: a\nFrom: b\r\n\nbody\rmore\r\nend",
		.subject = SUBJ_FAILED,
		.part3_type = FULL, .part3_desc = DESC_UM,
		.part3_body = "Subject: a\r\nFrom: b\r\n\r\nbody\r\nmore\r\n"
		    "end\r\n",
		.want = { { "rfc822; bob@example.org", NULL, "5.1.1", NULL } },
	},
	{
		/* Lines that look like our boundaries. */
		.name = "boundary_lookalike",
		.rcpts = { { .addr = "bob@example.org", .action = DSN_FAILED,
		    .status = "5.1.1" } },
		.nrcpts = 1,
		.ret_full = true,
		.content = "X-Test: --=_petrel_\r\n\r\n--=_petrel_\r\n"
		    "--=_petrel_00000000000000000000000000000000--\r\n"
		    "=_petrel_\r\n",
		.subject = SUBJ_FAILED,
		.part3_type = FULL, .part3_desc = DESC_UM,
		.part3_body = "X-Test: --=_petrel_\r\n\r\n--=_petrel_\r\n"
		    "--=_petrel_00000000000000000000000000000000--\r\n"
		    "=_petrel_\r\n",
		.want = { { "rfc822; bob@example.org", NULL, "5.1.1", NULL } },
	},
	{
		/* No header block: nothing to return. */
		.name = "empty_content",
		.rcpts = { { .addr = "bob@example.org", .action = DSN_FAILED,
		    .status = "5.1.1" } },
		.nrcpts = 1,
		.content = "",
		.subject = SUBJ_FAILED,
		.want = { { "rfc822; bob@example.org", NULL, "5.1.1", NULL } },
		.text = { "be delivered to one or more recipients." },
	},
	{
		.name = "empty_content_full",
		.rcpts = { { .addr = "bob@example.org", .action = DSN_FAILED,
		    .status = "5.1.1" } },
		.nrcpts = 1,
		.ret_full = true,
		.content = "",
		.subject = SUBJ_FAILED,
		.want = { { "rfc822; bob@example.org", NULL, "5.1.1", NULL } },
		.text = { "be delivered to one or more recipients." },
	},
	{
		/* No header block, a body: returned whole, or nothing. */
		.name = "body_only_full",
		.rcpts = { { .addr = "bob@example.org", .action = DSN_FAILED,
		    .status = "5.1.1" } },
		.nrcpts = 1,
		.ret_full = true,
		.content = "\r\njust a body\r\n",
		.subject = SUBJ_FAILED,
		.part3_type = FULL, .part3_desc = DESC_UM,
		.part3_body = "\r\njust a body\r\n",
		.want = { { "rfc822; bob@example.org", NULL, "5.1.1", NULL } },
		.text = { "be delivered to one or more recipients. It's "
		    "attached below." },
	},
};

static void
check_case(const struct dsn_case *tc, const char *raw, size_t len,
    bool eight_bit)
{
	struct parsed p;
	struct fields blocks[MAX_BLOCKS];
	const struct part *text, *status, *quote;
	const char *v, *sender = tc->sender != NULL ? tc->sender :
	    "alice@example.com";
	char want[512];
	size_t nblocks, i, k;
	bool global = tc->smtputf8;

	parse_report(raw, len, &p);

	/* Top-level fields. */
	field_want(&p.hdr, "Date", NOW_DATE);
	field_want(&p.hdr, "From", "Mail Delivery System <MAILER-DAEMON@"
	    HOST ">");
	if (tc->want_to != NULL)
		field_want(&p.hdr, "To", tc->want_to);
	else {
		snprintf(want, sizeof(want), "<%s>", sender);
		field_want(&p.hdr, "To", want);
	}
	field_want(&p.hdr, "Subject", tc->subject);
	field_want(&p.hdr, "Auto-Submitted", "auto-replied");
	field_want(&p.hdr, "MIME-Version", "1.0");
	field_want(&p.hdr, "In-Reply-To", tc->want_msgid);
	field_want(&p.hdr, "References", tc->want_msgid);
	v = field_get(&p.hdr, "Message-ID");
	assert_non_null(v);
	snprintf(want, sizeof(want), "<%llu.", (unsigned long long)NOW);
	assert_true(strncmp(v, want, strlen(want)) == 0);
	assert_true(strlen(v) > strlen("@" HOST ">") &&
	    strcmp(v + strlen(v) - strlen("@" HOST ">"), "@" HOST ">") == 0);
	snprintf(want, sizeof(want), "multipart/report; report-type=%s;\t"
	    "boundary=\"%s\"", global ? "global-delivery-status" :
	    "delivery-status", p.boundary);
	field_want(&p.hdr, "Content-Type", want);
	field_want(&p.hdr, "Content-Transfer-Encoding", has_8bit(raw, len) &&
	    (has_8bit(p.parts[0].body, p.parts[0].body_len) ||
	    has_8bit(p.parts[1].body, p.parts[1].body_len) ||
	    (p.nparts > 2 && has_8bit(p.parts[2].body, p.parts[2].body_len))) ?
	    "8bit" : NULL);
	if (eight_bit != tc->eight_bit)
		fail_msg("eight_bit: got %d, want %d", eight_bit,
		    tc->eight_bit);
	assert_int_equal(eight_bit, has_8bit(raw, len));

	/* The parts, and the boundary in none of them. */
	assert_int_equal(p.nparts, tc->part3_type != NULL ? 3 : 2);
	for (i = 0; i < p.nparts; i++)
		assert_null(memmem(p.parts[i].body, p.parts[i].body_len,
		    p.boundary, strlen(p.boundary)));
	assert_null(strstr(tc->content, p.boundary));

	text = &p.parts[0];
	field_want(&text->hdr, "Content-Description", "Notification");
	field_want(&text->hdr, "Content-Type", "text/plain; charset=utf-8");
	field_want(&text->hdr, "Content-Transfer-Encoding",
	    has_8bit(text->body, text->body_len) ? "8bit" : NULL);
	assert_true(has_line(text->body, text->body_len,
	    "This is the mail system at host " HOST "."));
	for (i = 0; i < nitems(tc->text) && tc->text[i] != NULL; i++)
		if (!has_line(text->body, text->body_len, tc->text[i]))
			fail_msg("%s: text part lacks the line \"%s\":\n%s",
			    tc->name, test_esc(tc->text[i]),
			    test_escn(text->body, text->body_len));
	/* Every recipient is named at the start of a line. */
	for (i = 0; i < tc->nrcpts; i++) {
		if (!global && has_8bit(tc->rcpts[i].addr,
		    strlen(tc->rcpts[i].addr)))
			continue;
		snprintf(want, sizeof(want), "\r\n<%s>", tc->rcpts[i].addr);
		assert_non_null(memmem(text->body, text->body_len, want,
		    strlen(want)));
	}

	status = &p.parts[1];
	field_want(&status->hdr, "Content-Description", "Delivery report");
	field_want(&status->hdr, "Content-Type", global ?
	    "message/global-delivery-status" : "message/delivery-status");
	field_want(&status->hdr, "Content-Transfer-Encoding",
	    has_8bit(status->body, status->body_len) ? "8bit" : NULL);
	nblocks = status_blocks(status->body, status->body_len, blocks,
	    MAX_BLOCKS);
	assert_int_equal(nblocks, 1 + tc->nrcpts);
	field_want(&blocks[0], "Reporting-MTA", "dns; " HOST);
	field_want(&blocks[0], "X-Petrel-Queue-ID", "1H2K3J4L5M6N7P8Q");
	field_want(&blocks[0], "Arrival-Date", ARRIVAL_DATE);
	field_want(&blocks[0], "Original-Envelope-Id", tc->want_envid);
	if (sender[0] != '\0') {
		snprintf(want, sizeof(want), "%s; %s", has_8bit(sender,
		    strlen(sender)) ? "utf-8" : "rfc822", sender);
		field_want(&blocks[0], "X-Petrel-Sender", want);
	} else
		field_want(&blocks[0], "X-Petrel-Sender", NULL);
	for (i = 0; i < tc->nrcpts; i++) {
		const struct dsn_rcpt *rc = &tc->rcpts[i];
		const struct rcpt_want *rw = &tc->want[i];
		const struct fields *b = &blocks[1 + i];

		field_want(b, "Final-Recipient", rw->final);
		field_want(b, "Original-Recipient", rw->orig);
		field_want(b, "Action", dsn_action_name(rc->action));
		field_want(b, "Status", rw->status);
		field_want(b, "Diagnostic-Code", rw->diag);
		if (rc->remote_mta != NULL &&
		    strcspn(rc->remote_mta, "\r\n") == strlen(rc->remote_mta)) {
			snprintf(want, sizeof(want), "dns; %s", rc->remote_mta);
			field_want(b, "Remote-MTA", want);
		} else
			assert_int_equal(field_count(b, "Remote-MTA"),
			    rc->remote_mta != NULL);
		field_want(b, "Last-Attempt-Date", rc->last_attempt != 0 ?
		    LAST_DATE : NULL);
		field_want(b, "Will-Retry-Until", rc->action == DSN_DELAYED &&
		    rc->will_retry_until != 0 ? UNTIL_DATE : NULL);
		/* Nothing smuggled in as a field of its own. */
		assert_int_equal(field_count(b, "X-Injected"), 0);
		assert_int_equal(field_count(b, "X-Bad"), 0);
		for (k = 0; k < b->n; k++)
			assert_non_null(strchr("FOASRDLW", b->f[k].name[0]));
	}
	for (i = 0; i < nblocks; i++)
		fields_free(&blocks[i]);

	if (tc->part3_type != NULL) {
		quote = &p.parts[2];
		field_want(&quote->hdr, "Content-Type", tc->part3_type);
		field_want(&quote->hdr, "Content-Description", tc->part3_desc);
		field_want(&quote->hdr, "Content-Transfer-Encoding",
		    has_8bit(tc->part3_body, strlen(tc->part3_body)) ?
		    "8bit" : NULL);
		if (quote->body_len != strlen(tc->part3_body) ||
		    memcmp(quote->body, tc->part3_body, quote->body_len) != 0)
			fail_msg("%s: part 3 is \"%s\", want \"%s\"", tc->name,
			    test_escn(quote->body, quote->body_len),
			    test_esc(tc->part3_body));
	}
	parsed_free(&p);
}

static void
run_case(const struct dsn_case *tc)
{
	struct dsn_report r;
	struct buf out;
	bool eight_bit;

	report_init(&r, tc->rcpts, tc->nrcpts);
	if (tc->sender != NULL)
		r.sender = tc->sender;
	r.to = tc->to;
	r.envid = tc->envid;
	r.ret_full = tc->ret_full;
	r.smtputf8 = tc->smtputf8;
	if (tc->size_limit != 0)
		r.size_limit = tc->size_limit;
	compose(&r, tc->content, &out, &eight_bit);
	dump(tc->name, &out);
	check_case(tc, out.data, out.len, eight_bit);
	buf_free(&out);
}

static void
test_cases(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		print_message("case %s\n", cases[i].name);
		run_case(&cases[i]);
	}
}

/* ---- Cases built at run time ---- */

static const struct dsn_rcpt one_failed = {
	.addr = "bob@example.org", .action = DSN_FAILED, .status = "5.1.1",
	.remote_mta = "mx.example.org",
	.diagnostic = "550 5.1.1 <bob@example.org>: user unknown",
};

/* Compose, parse, and return part 3 (NULL when absent). */
static char *
part3_of(const struct dsn_report *r, const char *content, const char *name,
    char *type, size_t typesize)
{
	struct buf out;
	struct parsed p;
	bool eight_bit;
	char *body = NULL;

	compose(r, content, &out, &eight_bit);
	dump(name, &out);
	parse_report(out.data, out.len, &p);
	type[0] = '\0';
	if (p.nparts == 3) {
		strlcpy(type, field_get(&p.parts[2].hdr, "Content-Type"),
		    typesize);
		body = test_dup_exact(p.parts[2].body, p.parts[2].body_len);
	}
	parsed_free(&p);
	buf_free(&out);
	return body;
}

/* A body line over 998 octets: the whole message cannot be returned. */
static void
test_long_body_line(void **state)
{
	struct dsn_report r;
	char *content, *body, type[64];
	size_t n = 1500;

	(void)state;
	content = xmalloc(n + 64);
	memcpy(content, "Subject: long\r\n\r\n", 17);
	memset(content + 17, 'x', n);
	memcpy(content + 17 + n, "\r\nend\r\n", 8);
	report_init(&r, &one_failed, 1);
	r.ret_full = true;
	r.size_limit = 1024 * 1024;
	body = part3_of(&r, content, "long_body_line", type, sizeof(type));
	assert_string_equal(type, "text/rfc822-headers");
	assert_string_equal(body, "Subject: long\r\n");
	free(body);

	/* 998 octets are fine. */
	memset(content + 17, 'y', 998);
	memcpy(content + 17 + 998, "\r\n", 3);
	body = part3_of(&r, content, "line_998", type, sizeof(type));
	assert_string_equal(type, "message/rfc822");
	assert_string_equal(body, content);
	free(body);
	free(content);
}

/* A header line over 998 octets is cut at 998 (not inside UTF-8). */
static void
test_long_header_line(void **state)
{
	struct dsn_report r;
	char *content, *body, type[64], want[1100];
	size_t i;

	(void)state;
	content = xmalloc(4096);
	/* "X-Long: " (8) + 994 ASCII + "ü" at 1002..1003: crosses 998?
	 * Put a 2-byte character across the cut: octets 997..998. */
	memcpy(content, "X-Long: ", 8);
	for (i = 8; i < 997; i++)
		content[i] = 'a';
	content[997] = '\xc3';
	content[998] = '\xbc';
	for (i = 999; i < 2000; i++)
		content[i] = 'b';
	memcpy(content + 2000, "\r\nSubject: after\r\n\r\nbody\r\n", 27);
	report_init(&r, &one_failed, 1);
	r.ret_full = true;
	body = part3_of(&r, content, "long_header_line", type, sizeof(type));
	assert_string_equal(type, "text/rfc822-headers");
	/* Cut before the character that would cross 998. */
	memcpy(want, content, 997);
	memcpy(want + 997, "\r\nSubject: after\r\n", 19);
	assert_string_equal(body, want);
	free(body);
	free(content);
}

/* The returned header block stops before the field that crosses the cap. */
static void
test_header_cap(void **state)
{
	struct dsn_report r;
	struct buf content;
	char *body, type[64];
	size_t i;

	(void)state;
	buf_init(&content, 1 << 20);
	for (i = 0; i < 10; i++)
		buf_printf(&content, "X-Field-%02zu: %s\r\n", i,
		    "0123456789012345678901234567890123456789");
	/* The 11th field is folded over three lines and crosses the cap. */
	buf_printf(&content, "X-Folded: first\r\n second\r\n third\r\n");
	buf_printf(&content, "Subject: x\r\n\r\nbody\r\n");
	report_init(&r, &one_failed, 1);
	r.size_limit = 10 * 54 + 20;	/* into the folded field */
	body = part3_of(&r, buf_str(&content), "header_cap", type,
	    sizeof(type));
	assert_string_equal(type, "text/rfc822-headers");
	assert_int_equal(strlen(body), 10 * 54);
	assert_memory_equal(body, buf_str(&content), 10 * 54);
	free(body);

	/* A cap smaller than the first field: no third part. */
	r.size_limit = 10;
	body = part3_of(&r, buf_str(&content), "header_cap_tiny", type,
	    sizeof(type));
	assert_null(body);
	buf_free(&content);
}

/* NUL in the content: not returned whole; shown as '?' in headers. */
static void
test_nul_in_content(void **state)
{
	static const char content[] = "Subject: a\0b\r\n\r\nbo\0dy\r\n";
	struct dsn_report r;
	struct str_source s;
	struct dsn_source src = { str_next, &s };
	struct buf out;
	struct parsed p;
	bool eight_bit;

	(void)state;
	report_init(&r, &one_failed, 1);
	r.ret_full = true;
	str_source_init(&s, content, sizeof(content) - 1);
	buf_init(&out, OUT_MAX);
	assert_int_equal(dsn_compose(&r, &src, &out, &eight_bit), 0);
	parse_report(out.data, out.len, &p);
	assert_int_equal(p.nparts, 3);
	field_want(&p.parts[2].hdr, "Content-Type", "text/rfc822-headers");
	assert_int_equal(p.parts[2].body_len, strlen("Subject: a?b\r\n"));
	assert_memory_equal(p.parts[2].body, "Subject: a?b\r\n",
	    p.parts[2].body_len);
	parsed_free(&p);
	buf_free(&out);
}

/* Long diagnostics: folded at spaces (exact once unfolded), or cut. */
static void
test_long_diagnostic(void **state)
{
	struct dsn_report r;
	struct dsn_rcpt rc = one_failed;
	struct buf diag, out, want;
	struct parsed p;
	struct fields blocks[MAX_BLOCKS];
	size_t nblocks, i, nsp;
	const char *v;
	bool eight_bit;

	(void)state;
	/* Words: folds only at spaces, the value survives unfolding. */
	buf_init(&diag, 1 << 20);
	buf_append_str(&diag, "550 5.1.1");
	for (i = 0; i < 400; i++)
		buf_printf(&diag, " word%zu", i);
	buf_append_str(&diag, "  two  spaces ");
	rc.diagnostic = buf_str(&diag);
	report_init(&r, &rc, 1);
	compose(&r, CONTENT, &out, &eight_bit);
	dump("long_diagnostic_words", &out);
	parse_report(out.data, out.len, &p);
	nblocks = status_blocks(p.parts[1].body, p.parts[1].body_len, blocks,
	    MAX_BLOCKS);
	assert_int_equal(nblocks, 2);
	v = field_get(&blocks[1], "Diagnostic-Code");
	buf_init(&want, 1 << 20);
	/* All but the blank at the end, which goes (see below). */
	buf_printf(&want, "smtp; %.*s", (int)diag.len - 1, buf_str(&diag));
	assert_string_equal(v, buf_str(&want));
	/* Folded: the raw status part has many short lines. */
	assert_true(memmem(p.parts[1].body, p.parts[1].body_len, "\r\n word",
	    7) != NULL);
	/* The text part wraps it within 998 octets and loses no word. */
	assert_non_null(memmem(p.parts[0].body, p.parts[0].body_len,
	    "word399", 7));
	for (i = 0; i < nblocks; i++)
		fields_free(&blocks[i]);
	parsed_free(&p);
	buf_free(&out);
	buf_free(&want);

	/* No spaces at all: cut (adding a space), lines stay <= 998. */
	buf_reset(&diag);
	buf_append_str(&diag, "550 ");
	for (i = 0; i < 3000; i++)
		buf_append(&diag, "z", 1);
	rc.diagnostic = buf_str(&diag);
	compose(&r, CONTENT, &out, &eight_bit);
	dump("long_diagnostic_nospace", &out);
	parse_report(out.data, out.len, &p);	/* checks line lengths */
	nblocks = status_blocks(p.parts[1].body, p.parts[1].body_len, blocks,
	    MAX_BLOCKS);
	v = field_get(&blocks[1], "Diagnostic-Code");
	assert_non_null(v);
	for (i = 0, nsp = 0; v[i] != '\0'; i++)
		if (v[i] != ' ')
			nsp++;
	assert_int_equal(nsp, strlen("smtp;550") + 3000);
	for (i = 0; i < nblocks; i++)
		fields_free(&blocks[i]);
	parsed_free(&p);
	buf_free(&out);

	/* A run of 2000 blanks after a fold: no blank continuation line. */
	buf_reset(&diag);
	buf_append_str(&diag, "550 a");
	for (i = 0; i < 30; i++)
		buf_append_str(&diag, " word");
	for (i = 0; i < 2000; i++)
		buf_append(&diag, i % 2 ? " " : "\t", 1);
	buf_append_str(&diag, "b");
	rc.diagnostic = buf_str(&diag);
	compose(&r, CONTENT, &out, &eight_bit);
	dump("long_diagnostic_blanks", &out);
	parse_report(out.data, out.len, &p);
	assert_false(has_blank_line(p.parts[1].body, p.parts[1].body_len));
	nblocks = status_blocks(p.parts[1].body, p.parts[1].body_len, blocks,
	    MAX_BLOCKS);
	v = field_get(&blocks[1], "Diagnostic-Code");
	assert_non_null(v);
	/* The words survive; blanks (fewer of them) up to the "b". */
	buf_init(&want, 1 << 20);
	buf_append_str(&want, "smtp; 550 a");
	for (i = 0; i < 30; i++)
		buf_append_str(&want, " word");
	assert_true(strncmp(v, buf_str(&want), want.len) == 0);
	assert_true(strlen(v) > want.len + 1 && strlen(v) < want.len + 2001);
	assert_int_equal(strspn(v + want.len, " "), strlen(v) - want.len - 1);
	assert_int_equal(v[strlen(v) - 1], 'b');
	buf_free(&want);
	for (i = 0; i < nblocks; i++)
		fields_free(&blocks[i]);
	parsed_free(&p);
	buf_free(&out);

	/*
	 * A reply that ends in 1100 blanks (a remote server's choice): no
	 * line over 998 octets (the report could not be sent) and no line of
	 * blanks (RFC 5322 3.2.2; with fewer blanks that was the only
	 * defect); the blanks at the end mean nothing and go.
	 */
	buf_reset(&diag);
	buf_append_str(&diag, "550 5.1.1 no such user");
	for (i = 0; i < 1100; i++)
		buf_append(&diag, " ", 1);
	rc.diagnostic = buf_str(&diag);
	compose(&r, CONTENT, &out, &eight_bit);
	dump("long_diagnostic_trailing_blanks", &out);
	parse_report(out.data, out.len, &p);	/* checks line lengths */
	assert_false(has_blank_line(p.parts[1].body, p.parts[1].body_len));
	nblocks = status_blocks(p.parts[1].body, p.parts[1].body_len, blocks,
	    MAX_BLOCKS);
	field_want(&blocks[1], "Diagnostic-Code",
	    "smtp; 550 5.1.1 no such user");
	for (i = 0; i < nblocks; i++)
		fields_free(&blocks[i]);
	parsed_free(&p);
	buf_free(&out);

	/*
	 * After the first fold (at column 78 of "Diagnostic-Code: smtp; 550
	 * x" and 50 blanks) a run of exactly 990 blanks, then a word: the
	 * cut at 990 octets fell on the word's first octet and left a line
	 * of 990 blanks.
	 */
	buf_reset(&diag);
	buf_append_str(&diag, "550 x");
	for (i = 0; i < 1040; i++)
		buf_append(&diag, " ", 1);
	buf_append_str(&diag, "zzzzzzzzzzzzzzzzzzzz");
	rc.diagnostic = buf_str(&diag);
	compose(&r, CONTENT, &out, &eight_bit);
	dump("long_diagnostic_blanks_990", &out);
	parse_report(out.data, out.len, &p);
	assert_false(has_blank_line(p.parts[1].body, p.parts[1].body_len));
	nblocks = status_blocks(p.parts[1].body, p.parts[1].body_len, blocks,
	    MAX_BLOCKS);
	v = field_get(&blocks[1], "Diagnostic-Code");
	assert_non_null(v);
	assert_true(strncmp(v, "smtp; 550 x ", 12) == 0);
	assert_string_equal(v + strlen(v) - 21, " zzzzzzzzzzzzzzzzzzzz");
	for (i = 0; i < nblocks; i++)
		fields_free(&blocks[i]);
	parsed_free(&p);
	buf_free(&out);
	buf_free(&diag);
}

/* Same output whatever the chunking of the source. */
static void
test_chunking(void **state)
{
	static const size_t chunks[] = { 0, 1, 2, 3, 7, 64 };
	static const char content[] = "Subject: a\r\nX: b\r\n c\r\n\r\nline\r"
	    "\r\n\r\nbare\nlf\rcr\r\n";
	struct dsn_report r;
	struct buf first, out;
	struct str_source s;
	struct dsn_source src = { str_next, &s };
	bool eight_bit;
	size_t i;

	(void)state;
	report_init(&r, &one_failed, 1);
	r.ret_full = true;
	buf_init(&first, OUT_MAX);
	for (i = 0; i < nitems(chunks); i++) {
		rnd_counter = 0;
		dsn_set_random(rnd_counting);
		str_source_init(&s, content, sizeof(content) - 1);
		s.chunk = chunks[i];
		buf_init(&out, OUT_MAX);
		assert_int_equal(dsn_compose(&r, &src, &out, &eight_bit), 0);
		dsn_set_random(NULL);
		if (i == 0) {
			buf_append(&first, out.data, out.len);
			check_lines(out.data, out.len);
			assert_non_null(strstr(out.data,
			    "Subject: a\r\nX: b\r\n c\r\n\r\nline\r\n\r\n"
			    "\r\nbare\r\nlf\r\ncr\r\n\r\n--"));
		} else if (out.len != first.len ||
		    memcmp(out.data, first.data, out.len) != 0)
			fail_msg("chunk %zu: output differs", chunks[i]);
		buf_free(&out);
	}
	buf_free(&first);
}

/* A boundary candidate found in the content is never used. */
static void
test_boundary_collision(void **state)
{
	struct dsn_report r;
	struct buf content, out;
	struct parsed p;
	char b[80], chosen[80];
	unsigned int v;
	bool eight_bit;

	(void)state;
	buf_init(&content, 1 << 16);
	buf_append_str(&content, "Subject: collide\r\n\r\n");
	/* The first four candidates (counter 0..3) are all in the body. */
	for (v = 0; v < 4; v++) {
		boundary_for(v, b, sizeof(b));
		buf_printf(&content, "--%s\r\n", b);
	}
	report_init(&r, &one_failed, 1);
	r.ret_full = true;
	rnd_counter = 0;
	dsn_set_random(rnd_counting);
	compose(&r, buf_str(&content), &out, &eight_bit);
	dsn_set_random(NULL);
	dump("boundary_collision", &out);
	parse_report(out.data, out.len, &p);
	strlcpy(chosen, p.boundary, sizeof(chosen));
	assert_int_equal(p.nparts, 3);
	field_want(&p.parts[2].hdr, "Content-Type", "message/rfc822");
	assert_int_equal(p.parts[2].body_len, content.len);
	assert_memory_equal(p.parts[2].body, content.data, content.len);
	assert_null(strstr(buf_str(&content), chosen));
	boundary_for(4, b, sizeof(b));
	assert_string_equal(chosen, b);
	parsed_free(&p);
	buf_free(&out);

	/* A source of randomness that never changes: give up, never use a
	 * boundary found in the content. */
	buf_reset(&content);
	buf_append_str(&content, "Subject: collide\r\n\r\n");
	buf_printf(&content, "=_petrel_%s\r\n",
	    "42424242424242424242424242424242");
	dsn_set_random(rnd_constant);
	{
		struct str_source s;
		struct dsn_source src = { str_next, &s };

		str_source_init(&s, content.data, content.len);
		buf_init(&out, OUT_MAX);
		errno = 0;
		assert_int_equal(dsn_compose(&r, &src, &out, &eight_bit), -1);
		assert_int_equal(errno, EIO);
		assert_int_equal(out.len, 0);
		buf_free(&out);
	}
	dsn_set_random(NULL);
	buf_free(&content);
}

/* The source fails: -1 with its errno, out as it was. */
static void
test_source_error(void **state)
{
	static const size_t fail_at[] = { 0, 5, 30, 80 };
	struct dsn_report r;
	struct str_source s;
	struct dsn_source src = { str_next, &s };
	struct buf out;
	bool eight_bit = true;
	size_t i;

	(void)state;
	report_init(&r, &one_failed, 1);
	r.ret_full = true;
	for (i = 0; i < nitems(fail_at); i++) {
		str_source_init(&s, CONTENT, strlen(CONTENT));
		s.chunk = 10;
		s.fail_at = fail_at[i];
		s.fail_errno = i == 0 ? ENOSPC : i == 1 ? EBADMSG : 0;
		buf_init(&out, OUT_MAX);
		buf_append_str(&out, "kept");
		errno = 0;
		assert_int_equal(dsn_compose(&r, &src, &out, &eight_bit), -1);
		assert_int_equal(errno, i == 0 ? ENOSPC : i == 1 ? EBADMSG :
		    EIO);
		assert_false(eight_bit);
		assert_int_equal(out.len, 4);
		assert_string_equal(buf_str(&out), "kept");
		buf_free(&out);
	}

	/* Headers only: it stops reading after the header block, so a
	 * failure later in the body does not matter. */
	r.ret_full = false;
	str_source_init(&s, CONTENT, strlen(CONTENT));
	s.chunk = 10;
	s.fail_at = strlen(CONTENT_HEADERS) + 10;
	s.fail_errno = EIO;
	buf_init(&out, OUT_MAX);
	assert_int_equal(dsn_compose(&r, &src, &out, &eight_bit), 0);
	assert_true(s.pos <= strlen(CONTENT_HEADERS) + 10);
	buf_free(&out);
}

/* A small output buffer: less returned content, then EMSGSIZE. */
static void
test_small_output(void **state)
{
	struct dsn_report r;
	struct str_source s;
	struct dsn_source src = { str_next, &s };
	struct buf out, full;
	struct parsed p;
	bool eight_bit;
	size_t base;

	(void)state;
	report_init(&r, &one_failed, 1);
	r.ret_full = true;
	compose(&r, CONTENT, &full, &eight_bit);
	base = full.len;
	buf_free(&full);

	/* Room for all but the body: headers only. */
	str_source_init(&s, CONTENT, strlen(CONTENT));
	buf_init(&out, base - 10);
	assert_int_equal(dsn_compose(&r, &src, &out, &eight_bit), 0);
	parse_report(out.data, out.len, &p);
	assert_int_equal(p.nparts, 3);
	field_want(&p.parts[2].hdr, "Content-Type", "text/rfc822-headers");
	/* The wording follows what is attached. */
	assert_true(has_line(p.parts[0].body, p.parts[0].body_len,
	    "be delivered to one or more recipients. Its headers are "
	    "attached below."));
	parsed_free(&p);
	buf_free(&out);

	/* Room for the report alone. */
	str_source_init(&s, CONTENT, strlen(CONTENT));
	buf_init(&out, base - strlen(CONTENT) - 40);
	assert_int_equal(dsn_compose(&r, &src, &out, &eight_bit), 0);
	parse_report(out.data, out.len, &p);
	assert_int_equal(p.nparts, 2);
	assert_true(has_line(p.parts[0].body, p.parts[0].body_len,
	    "be delivered to one or more recipients."));
	parsed_free(&p);
	buf_free(&out);

	/* Not even that. */
	str_source_init(&s, CONTENT, strlen(CONTENT));
	buf_init(&out, 300);
	errno = 0;
	assert_int_equal(dsn_compose(&r, &src, &out, &eight_bit), -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_int_equal(out.len, 0);
	buf_free(&out);
}

/* dsn_size_hint() holds a report with hostile, expanding strings. */
static void
test_size_hint(void **state)
{
	struct dsn_rcpt rc[50];
	struct dsn_report r;
	struct str_source s;
	struct dsn_source src = { str_next, &s };
	struct buf out, diag, content;
	char addr[50][80];
	struct parsed p;
	bool eight_bit;
	size_t i;

	(void)state;
	buf_init(&diag, 1 << 20);
	for (i = 0; i < 300; i++)
		buf_append_str(&diag, "5\n");
	buf_init(&content, 1 << 20);
	for (i = 0; i < 2000; i++)
		buf_append_str(&content, "X: y\r\n");
	buf_append_str(&content, "\r\nbody\r\n");
	for (i = 0; i < 50; i++) {
		snprintf(addr[i], sizeof(addr[i]),
		    "\x01\x02\x03\x04+=\\ \xf0\x9f\x98\x80%zu@example.org", i);
		memset(&rc[i], 0, sizeof(rc[i]));
		rc[i].addr = addr[i];
		rc[i].orcpt = "rfc822;+01+02+03+04+05+06+07@x";
		rc[i].action = DSN_FAILED;
		rc[i].remote_mta = "\x01\x02\x03\x04\x05\x06";
		rc[i].diagnostic = buf_str(&diag);
		rc[i].command = "RCPT TO";
	}
	report_init(&r, rc, 50);
	r.ret_full = true;
	r.size_limit = 64 * 1024;
	str_source_init(&s, content.data, content.len);
	buf_init(&out, dsn_size_hint(&r));
	assert_int_equal(dsn_compose(&r, &src, &out, &eight_bit), 0);
	dump("size_hint", &out);
	parse_report(out.data, out.len, &p);
	assert_int_equal(p.nparts, 3);
	field_want(&p.parts[2].hdr, "Content-Type", "message/rfc822");
	assert_false(eight_bit);	/* not an SMTPUTF8 report */
	parsed_free(&p);
	buf_free(&out);
	buf_free(&diag);
	buf_free(&content);
}

static void
test_invalid(void **state)
{
	struct dsn_report r;
	struct str_source s;
	struct dsn_source src = { str_next, &s };
	struct dsn_rcpt noaddr = { .action = DSN_FAILED };
	struct buf out;
	bool eight_bit;
	static const char *const hosts[] = { NULL, "", "mx petrel",
	    "mx\r\nX: y", "mx@x", "h\xc3\xa9" };
	size_t i;

	(void)state;
	buf_init(&out, OUT_MAX);
	report_init(&r, &one_failed, 0);
	str_source_init(&s, CONTENT, strlen(CONTENT));
	assert_int_equal(dsn_compose(&r, &src, &out, &eight_bit), -1);
	assert_int_equal(errno, EINVAL);
	report_init(&r, &noaddr, 1);
	assert_int_equal(dsn_compose(&r, &src, &out, &eight_bit), -1);
	assert_int_equal(errno, EINVAL);
	for (i = 0; i < nitems(hosts); i++) {
		report_init(&r, &one_failed, 1);
		r.hostname = hosts[i];
		errno = 0;
		assert_int_equal(dsn_compose(&r, &src, &out, &eight_bit), -1);
		assert_int_equal(errno, EINVAL);
	}
	assert_int_equal(out.len, 0);
	assert_int_equal(s.calls, 0);
	buf_free(&out);
}

/* RFC 5322 dates for a few instants (reference values from Python's
 * email.utils.formatdate). */
static void
test_dates(void **state)
{
	static const struct {
		uint64_t t;
		const char *want;
	} dates[] = {
		{ 951782400, "Tue, 29 Feb 2000 00:00:00 +0000" },
		{ 1000000000, "Sun, 09 Sep 2001 01:46:40 +0000" },
		{ 1764382393, "Sat, 29 Nov 2025 02:13:13 +0000" },
		{ 4102444799, "Thu, 31 Dec 2099 23:59:59 +0000" },
	};
	struct dsn_report r;
	struct buf out;
	struct parsed p;
	bool eight_bit;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(dates); i++) {
		report_init(&r, &one_failed, 1);
		r.now = dates[i].t;
		r.arrival = dates[i].t;
		compose(&r, CONTENT, &out, &eight_bit);
		parse_report(out.data, out.len, &p);
		field_want(&p.hdr, "Date", dates[i].want);
		parsed_free(&p);
		buf_free(&out);
	}
}

static void
test_xtext_decode(void **state)
{
	static const struct {
		const char *in;
		size_t outlen;
		int want;	/* length, or -1 */
		int want_errno;
		const char *want_out;
	} t[] = {
		{ "", 8, 0, 0, "" },
		{ "bob@example.org", 64, 15, 0, "bob@example.org" },
		{ "bob+2Bx@example.org", 64, 17, 0, "bob+x@example.org" },
		{ "+2B+3D+2b+3d", 64, 4, 0, "+=+=" },
		{ "a+20b", 64, 3, 0, "a b" },
		{ "+C3+BC", 64, 2, 0, "\xc3\xbc" },
		{ "+0D+0A", 64, 2, 0, "\r\n" },
		{ "+7E", 64, 1, 0, "~" },
		{ "abc", 4, 3, 0, "abc" },
		{ "abc", 3, -1, EMSGSIZE, "" },
		{ "+41+42", 2, -1, EMSGSIZE, "" },
		{ "abc", 0, -1, EMSGSIZE, NULL },
		{ "+", 64, -1, EINVAL, "" },
		{ "+2", 64, -1, EINVAL, "" },
		{ "+G0", 64, -1, EINVAL, "" },
		{ "+0G", 64, -1, EINVAL, "" },
		{ "+00", 64, -1, EINVAL, "" },
		{ "a b", 64, -1, EINVAL, "" },
		{ "a\x7f", 64, -1, EINVAL, "" },
		{ "\xc3\xbc", 64, -1, EINVAL, "" },
		{ "tab\t", 64, -1, EINVAL, "" },
	};
	char out[64];
	size_t i;
	int n;

	(void)state;
	for (i = 0; i < nitems(t); i++) {
		memset(out, 'Z', sizeof(out));
		errno = 0;
		n = dsn_xtext_decode(t[i].in, out, t[i].outlen);
		if (n != t[i].want)
			fail_msg("case %zu: got %d, want %d", i, n, t[i].want);
		if (n == -1)
			assert_int_equal(errno, t[i].want_errno);
		if (t[i].want_out != NULL && strcmp(out, t[i].want_out) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i,
			    test_esc(out), test_esc(t[i].want_out));
		if (t[i].outlen == 0)
			assert_int_equal(out[0], 'Z');
	}
}

static void
test_action_names(void **state)
{
	(void)state;
	assert_string_equal(dsn_action_name(DSN_FAILED), "failed");
	assert_string_equal(dsn_action_name(DSN_DELAYED), "delayed");
	assert_string_equal(dsn_action_name(DSN_DELIVERED), "delivered");
	assert_string_equal(dsn_action_name(DSN_RELAYED), "relayed");
	assert_string_equal(dsn_action_name(DSN_EXPANDED), "expanded");
}

/* Two reports never share a Message-ID or a boundary. */
static void
test_unique_ids(void **state)
{
	struct dsn_report r;
	struct buf a, b;
	struct parsed pa, pb;
	bool eight_bit;

	(void)state;
	report_init(&r, &one_failed, 1);
	compose(&r, CONTENT, &a, &eight_bit);
	compose(&r, CONTENT, &b, &eight_bit);
	parse_report(a.data, a.len, &pa);
	parse_report(b.data, b.len, &pb);
	assert_string_not_equal(field_get(&pa.hdr, "Message-ID"),
	    field_get(&pb.hdr, "Message-ID"));
	assert_string_not_equal(pa.boundary, pb.boundary);
	parsed_free(&pa);
	parsed_free(&pb);
	buf_free(&a);
	buf_free(&b);
}

/* ---- Randomized hostile input ---- */

static uint64_t rnd_state;

static unsigned int
rnd_next(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return (unsigned int)(rnd_state >> 16);
}

/*
 * Random text up to about max octets (+ one blank run) from pieces a
 * hostile peer would use: CR, LF, controls, blanks (runs up to 1200,
 * often about 990), 8-bit and UTF-8, xtext escapes that decode to CR
 * LF, field names, boundary lookalikes; NUL only when nul is set.
 * Returns the length.
 */
static size_t
rnd_text(struct buf *b, size_t max, bool nul)
{
	static const char *const pieces[] = {
		" ", "  ", "\t", "\r\n", "\n", "\r", "x", "word", "\xc3\xa9",
		"\xe7\x94\xa8", "\xff", "--", "=_petrel_", ":", ";", "<", ">",
		"+0D+0A", "+20", "+2B", "\\x{41}", "\\x{0D}", "550 ",
		"5.1.1 ", "From: a\r\n", "\r\n\r\n",
		"Message-ID: <a@b>\r\n", "\x7f", "\x01", ".\r\n", "\"",
		"X-Injected: yes\r\n",
	};
	size_t n = rnd_next() % (max + 1), run;

	buf_reset(b);
	while (b->len < n) {
		if (rnd_next() % 10 == 0) {
			/* Often near the 990 octets where a field is cut. */
			run = rnd_next() % 3 ? rnd_next() % 1200 :
			    975 + rnd_next() % 30;
			while (run-- > 0)
				buf_append(b, rnd_next() % 4 ? " " : "a", 1);
		} else if (nul && rnd_next() % 30 == 0)
			buf_append(b, "", 1);
		else
			buf_append_str(b, pieces[rnd_next() % nitems(pieces)]);
	}
	return b->len;
}

/*
 * Reports from random hostile values (every string of the report and
 * the content), a random size_limit, RET and output cap: each must
 * compose (or fail with EMSGSIZE for a tiny cap) into CRLF lines of at
 * most 998 octets without a line of blanks in any header section, with
 * the boundary in no part, and one delivery-status block per recipient
 * holding only the RFC 3464 fields. Every 16th is dumped for
 * test_dsn_format.py. The seed is fixed and printed.
 */
static void
test_random_hostile(void **state)
{
	static const char *const allowed[] = {
		"Final-Recipient", "Original-Recipient", "Action", "Status",
		"Remote-MTA", "Diagnostic-Code", "Last-Attempt-Date",
		"Will-Retry-Until",
	};
	const uint64_t seed = 20261129;
	struct buf strs[32], content, out;
	struct dsn_rcpt rc[3];
	struct dsn_report r;
	struct str_source s;
	struct dsn_source src = { str_next, &s };
	struct fields blocks[MAX_BLOCKS];
	struct parsed p;
	size_t i, k, nb, ns, iter, hlen;
	const char *hend;
	char name[32];
	bool eight_bit;

	(void)state;
	print_message("random hostile reports: seed %llu\n",
	    (unsigned long long)seed);
	rnd_state = seed;
	for (i = 0; i < nitems(strs); i++)
		buf_init(&strs[i], 1 << 16);
	buf_init(&content, 1 << 16);
	for (iter = 0; iter < 400; iter++) {
		ns = 0;
		memset(rc, 0, sizeof(rc));
		report_init(&r, rc, 1 + rnd_next() % 3);
		for (i = 0; i < r.nrcpts; i++) {
			rnd_text(&strs[ns], 80, false);
			rc[i].addr = rnd_next() % 2 ? buf_str(&strs[ns++]) :
			    "bob@example.org";
			rc[i].action = (enum dsn_action)(rnd_next() % 5);
#define RND_FIELD(f, max) do {						\
	rnd_text(&strs[ns], (max), false);				\
	if (rnd_next() % 2)						\
		(f) = buf_str(&strs[ns++]);				\
} while (0)
			RND_FIELD(rc[i].orcpt, 200);
			RND_FIELD(rc[i].status, 12);
			RND_FIELD(rc[i].remote_mta, 300);
			RND_FIELD(rc[i].diagnostic, 3000);
			RND_FIELD(rc[i].command, 80);
			rc[i].last_attempt = rnd_next() % 2 ? LAST : 0;
			rc[i].will_retry_until = rnd_next() % 2 ? UNTIL : 0;
		}
		rnd_text(&strs[ns], 80, false);
		r.sender = rnd_next() % 4 ? buf_str(&strs[ns++]) : "";
		RND_FIELD(r.to, 80);
		RND_FIELD(r.queue_id, 40);
		RND_FIELD(r.envid, 200);
#undef RND_FIELD
		r.ret_full = rnd_next() % 2;
		r.smtputf8 = rnd_next() % 2;
		r.size_limit = rnd_next() % 2 ? 50 * 1024 : rnd_next() % 3000;
		hlen = rnd_text(&content, 6000, true);
		str_source_init(&s, content.data, hlen);
		s.chunk = rnd_next() % 2 ? 1 + rnd_next() % 100 : 0;
		buf_init(&out, rnd_next() % 4 ? OUT_MAX :
		    2000 + rnd_next() % 20000);
		if (dsn_compose(&r, &src, &out, &eight_bit) == -1) {
			if (errno != EMSGSIZE || out.max == OUT_MAX)
				fail_msg("iteration %zu: dsn_compose: %s",
				    iter, strerror(errno));
			buf_free(&out);
			continue;
		}
		if (iter % 16 == 0) {
			snprintf(name, sizeof(name), "random_%03zu", iter);
			dump(name, &out);
		}
		parse_report(out.data, out.len, &p);
		assert_int_equal(eight_bit, has_8bit(out.data, out.len));
		hend = memmem(out.data, out.len, "\r\n\r\n", 4);
		hlen = (size_t)(hend - out.data);
		if (has_blank_line(out.data, hlen) ||
		    has_blank_line(p.parts[1].body, p.parts[1].body_len))
			fail_msg("iteration %zu: a header line of blanks",
			    iter);
		nb = status_blocks(p.parts[1].body, p.parts[1].body_len,
		    blocks, MAX_BLOCKS);
		if (nb != r.nrcpts + 1)
			fail_msg("iteration %zu: %zu status blocks, want %zu",
			    iter, nb, r.nrcpts + 1);
		for (i = 1; i < nb; i++) {
			for (k = 0; k < blocks[i].n; k++) {
				size_t a;

				for (a = 0; a < nitems(allowed); a++)
					if (strcmp(blocks[i].f[k].name,
					    allowed[a]) == 0)
						break;
				if (a == nitems(allowed))
					fail_msg("iteration %zu: field %s in "
					    "a recipient block", iter,
					    test_esc(blocks[i].f[k].name));
			}
			assert_int_equal(field_count(&blocks[i],
			    "Final-Recipient"), 1);
			assert_int_equal(field_count(&blocks[i], "Action"), 1);
			assert_int_equal(field_count(&blocks[i], "Status"), 1);
		}
		for (i = 0; i < nb; i++)
			fields_free(&blocks[i]);
		parsed_free(&p);
		buf_free(&out);
	}
	for (i = 0; i < nitems(strs); i++)
		buf_free(&strs[i]);
	buf_free(&content);
}

int
main(void)
{
	const char *dir = getenv("PETREL_DSN_DUMP");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_long_body_line),
		cmocka_unit_test(test_long_header_line),
		cmocka_unit_test(test_header_cap),
		cmocka_unit_test(test_nul_in_content),
		cmocka_unit_test(test_long_diagnostic),
		cmocka_unit_test(test_chunking),
		cmocka_unit_test(test_boundary_collision),
		cmocka_unit_test(test_source_error),
		cmocka_unit_test(test_small_output),
		cmocka_unit_test(test_size_hint),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_xtext_decode),
		cmocka_unit_test(test_action_names),
		cmocka_unit_test(test_unique_ids),
		cmocka_unit_test(test_random_hostile),
	};

	if (dir != NULL && dir[0] != '\0')
		mkdir(dir, 0700);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
