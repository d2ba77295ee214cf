/*
 * fuzz_headers.c: libFuzzer target for the header and body parsing that
 * DKIM and the header rewriters do on whole messages:
 *   - src/msgauth/dkim_canon.c: dkim_msg_parse() (fields, folding, where
 *     the body starts), dkim_canon_header() and the streaming body
 *     canonicalizer (simple and relaxed), dkim_body_hash();
 *   - src/msgauth/dkim_stream.c: the header section as the session
 *     streams it (dkim_stream_feed() in two pieces);
 *   - src/msgauth/authres.c: authres_parse() and authres_claims_hostn()
 *     on every Authentication-Results field (the session drops forged
 *     ones with the latter);
 *   - src/local/header.c: sendmail_header_rewrite() on the header
 *     section (Bcc: removal, recipients from To:/Cc:/Bcc:).
 *
 * Input: byte 0 picks the l= limit of the body canonicalization (its low
 * 7 bits times 8; 127: none), byte 1 the split point (scaled onto the
 * message), the rest is the message.
 *
 * Invariants (a failure aborts):
 *   - dkim_msg_parse(): fields in order, inside the message, not
 *     overlapping, each a non-empty name without trailing WSP that is
 *     not a continuation, followed by WSP and a colon; the body is the
 *     rest of the message and follows every field;
 *   - dkim_canon_header(): simple is the field with one CRLF ensured;
 *     relaxed has a lower-case name, ends in CRLF, no TAB, no WSP run, no
 *     WSP before the CRLF or after the colon, and is idempotent on every
 *     parsed field (and on any text whose inner CRLFs are foldings);
 *   - the body canonicalizer gives the same octets whole, in two pieces
 *     and one octet at a time; both forms are idempotent and end in one
 *     CRLF (relaxed: or are empty), relaxed has no TAB, no WSP run, no
 *     WSP before a CRLF (but the CRLF added after a body that lacked one:
 *     its WSP stays, as in dkimpy, and only there is relaxed not
 *     idempotent); with l= the output is the unlimited one's
 *     prefix; final() is the full length; dkim_body_hash() is the
 *     SHA-256 of that prefix;
 *   - dkim_stream agrees with dkim_msg_parse(): the same header error,
 *     the same From: values, the DKIM-Signature count split into
 *     considered and extra;
 *   - an Authentication-Results value that authres_parse() reads with
 *     authserv-id X is one authres_claims_hostn() says claims X;
 *   - sendmail_header_rewrite() ends every line with CRLF, no Bcc: field,
 *     and says From: is there exactly when a From: field is in its
 *     output.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "local/local.h"
#include "msgauth/authres.h"
#include "msgauth/dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

#define MAX_SIGS	3
#define BUF_MAX		(16 * 1024 * 1024)	/* room for any result */

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* ---- dkim_msg_parse ---- */

static void
check_msg(const char *msg, size_t len, const struct dkim_msg *m)
{
	const char *prev_end = msg, *c;
	size_t i;

	CHECK(m->nhdrs <= DKIM_MSG_FIELDS_MAX);
	for (i = 0; i < m->nhdrs; i++) {
		const struct dkim_hdr *h = &m->hdrs[i];

		CHECK(h->raw >= prev_end && h->rawlen > h->namelen);
		CHECK(h->raw + h->rawlen <= msg + len);
		CHECK(h->namelen > 0 && !is_wsp(h->raw[0]) &&
		    !is_wsp(h->raw[h->namelen - 1]));
		CHECK(memchr(h->raw, ':', h->namelen) == NULL);
		for (c = h->raw + h->namelen; is_wsp(*c); c++)
			;
		CHECK(*c == ':' && c < h->raw + h->rawlen);
		prev_end = h->raw + h->rawlen;
	}
	CHECK(m->body >= prev_end && m->body + m->bodylen == msg + len);
}

/* ---- header canonicalization ---- */

/*
 * Is raw[0..len) shaped like a field of dkim_msg_parse(): every CRLF but
 * a final one followed by WSP? Relaxed canonicalization is idempotent on
 * those; on other text, unfolding a CRLF between a bare CR and a bare LF
 * makes a new CRLF, which no parsed field can hold.
 */
static bool
field_shaped(const char *raw, size_t len)
{
	size_t i;

	for (i = 0; i + 2 < len; i++)
		if (raw[i] == '\r' && raw[i + 1] == '\n' && !is_wsp(raw[i + 2]))
			return false;
	return true;
}

static void
check_header_canon(const char *raw, size_t len)
{
	struct buf s, r, rr;
	size_t i, colon, n;

	buf_init(&s, BUF_MAX);
	buf_init(&r, BUF_MAX);
	buf_init(&rr, BUF_MAX);
	CHECK(dkim_canon_header(DKIM_CANON_SIMPLE, raw, len, &s) == 0);
	n = len >= 2 && raw[len - 2] == '\r' && raw[len - 1] == '\n' ?
	    len - 2 : len;
	CHECK(s.len == n + 2 && memcmp(s.data, raw, n) == 0 &&
	    memcmp(s.data + n, "\r\n", 2) == 0);

	CHECK(dkim_canon_header(DKIM_CANON_RELAXED, raw, len, &r) == 0);
	CHECK(r.len >= 3 && memcmp(r.data + r.len - 2, "\r\n", 2) == 0);
	colon = (size_t)((const char *)memchr(r.data, ':', r.len) - r.data);
	for (i = 0; i < colon; i++)
		CHECK(!(r.data[i] >= 'A' && r.data[i] <= 'Z'));
	CHECK(colon + 1 == r.len - 2 || r.data[colon + 1] != ' ');
	for (i = colon + 1; i < r.len - 2; i++) {
		CHECK(r.data[i] != '\t');
		if (r.data[i] == ' ')
			CHECK(r.data[i + 1] != ' ' && i + 1 < r.len - 2);
	}
	CHECK(dkim_canon_header(DKIM_CANON_RELAXED, r.data, r.len, &rr) == 0);
	if (field_shaped(raw, len))
		CHECK(rr.len == r.len && memcmp(rr.data, r.data, r.len) == 0);
	buf_free(&s);
	buf_free(&r);
	buf_free(&rr);
}

/* ---- body canonicalization ---- */

static void
sink(void *arg, const char *data, size_t len)
{
	CHECK(buf_append(arg, data, len) == 0);
}

/* Canonicalize body in pieces of step octets (0: whole). */
static uint64_t
body_canon(enum dkim_canon c, int64_t limit, const char *body, size_t len,
    size_t step, struct buf *out)
{
	struct dkim_bodycanon bc;
	size_t off, n;

	buf_init(out, BUF_MAX);
	dkim_bodycanon_init(&bc, c, limit, sink, out);
	for (off = 0; off < len; off += n) {
		n = step == 0 || step > len - off ? len - off : step;
		dkim_bodycanon_update(&bc, body + off, n);
	}
	return dkim_bodycanon_final(&bc);
}

static bool
same(const struct buf *a, const struct buf *b)
{
	return a->len == b->len &&
	    (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static void
check_body(enum dkim_canon c, const char *body, size_t len, size_t split,
    int64_t limit)
{
	struct buf whole, two, bytes, again, lim;
	struct dkim_bodycanon bc;
	unsigned char md[64], want[EVP_MAX_MD_SIZE];
	unsigned int wantlen;
	uint64_t total, t2, hashed_total;
	size_t i, mdlen, keep;
	const char *o;
	bool unterminated;

	total = body_canon(c, -1, body, len, 0, &whole);
	CHECK(total == whole.len);
	/* In two pieces, and one octet at a time. */
	buf_init(&two, BUF_MAX);
	dkim_bodycanon_init(&bc, c, -1, sink, &two);
	dkim_bodycanon_update(&bc, body, split);
	dkim_bodycanon_update(&bc, body + split, len - split);
	CHECK(dkim_bodycanon_final(&bc) == total && same(&two, &whole));
	if (len <= 1024) {
		t2 = body_canon(c, -1, body, len, 1, &bytes);
		CHECK(t2 == total && same(&bytes, &whole));
		buf_free(&bytes);
	}

	/* Its shape. */
	o = whole.data;
	if (c == DKIM_CANON_SIMPLE)
		CHECK(whole.len >= 2);
	if (whole.len > 0) {
		CHECK(whole.len >= 2 &&
		    memcmp(o + whole.len - 2, "\r\n", 2) == 0);
		CHECK(whole.len == 2 || whole.len < 4 ||
		    memcmp(o + whole.len - 4, "\r\n\r\n", 4) != 0);
	}
	/*
	 * Relaxed: WSP before a CRLF only at the very end, where the body
	 * had no CRLF after it (the CRLF added by RFC 6376 3.4.4 c; dkimpy
	 * keeps that WSP too, and then canonicalizing again drops it).
	 */
	unterminated = len > 0 && (len < 2 || body[len - 2] != '\r' ||
	    body[len - 1] != '\n');
	if (c == DKIM_CANON_RELAXED)
		for (i = 0; i < whole.len; i++) {
			CHECK(o[i] != '\t');
			if (o[i] == ' ')
				CHECK(i + 1 < whole.len && o[i + 1] != ' ' &&
				    (!(o[i + 1] == '\r' && i + 2 < whole.len &&
				    o[i + 2] == '\n') ||
				    (unterminated && i + 3 == whole.len)));
		}

	/* Idempotent (but for that trailing WSP). */
	if (c == DKIM_CANON_SIMPLE || !unterminated) {
		t2 = body_canon(c, -1, whole.data, whole.len, 0, &again);
		CHECK(t2 == total && same(&again, &whole));
		buf_free(&again);
	}

	/* l=: a prefix, the full length still counted, and the hash. */
	t2 = body_canon(c, limit, body, len, split > 0 ? split : 0, &lim);
	CHECK(t2 == total);
	keep = limit < 0 || (uint64_t)limit > total ? (size_t)total :
	    (size_t)limit;
	CHECK(lim.len == keep &&
	    (keep == 0 || memcmp(lim.data, whole.data, keep) == 0));
	mdlen = dkim_body_hash(c, DKIM_HASH_SHA256, limit, body, len, md,
	    &hashed_total);
	CHECK(hashed_total == total);
	CHECK(EVP_Digest(keep > 0 ? lim.data : "", keep, want, &wantlen,
	    EVP_sha256(), NULL) == 1);
	CHECK(mdlen == wantlen && memcmp(md, want, mdlen) == 0);

	buf_free(&whole);
	buf_free(&two);
	buf_free(&lim);
}

/* ---- the streamed header section ---- */

static void
check_stream(const char *msg, size_t len, size_t split,
    const struct dkim_msg *m, bool parsed)
{
	struct dkim_stream *s;
	const char *const *values;
	const size_t *lens;
	size_t nfrom, i, k, nsig = 0, vlen;
	const char *v;

	s = dkim_stream_new(MAX_SIGS, len + 1);
	dkim_stream_feed(s, msg, split);
	dkim_stream_feed(s, msg + split, len - split);
	dkim_stream_finish(s);
	CHECK(!dkim_stream_header_overflow(s));
	CHECK((dkim_stream_header_error(s) == DKIM_OK) == parsed);
	if (parsed) {
		nfrom = dkim_stream_from(s, &values, &lens);
		for (i = 0, k = 0; i < m->nhdrs; i++) {
			const struct dkim_hdr *h = &m->hdrs[i];

			if (dkim_hdr_is(h, "DKIM-Signature"))
				nsig++;
			if (!dkim_hdr_is(h, "From"))
				continue;
			/* After the colon, without the final CRLF. */
			v = memchr(h->raw, ':', h->rawlen) + 1;
			vlen = h->rawlen - (size_t)(v - h->raw);
			if (vlen >= 2 && v[vlen - 2] == '\r' &&
			    v[vlen - 1] == '\n')
				vlen -= 2;
			CHECK(k < nfrom && lens[k] == vlen &&
			    memcmp(values[k], v, vlen) == 0);
			k++;
		}
		CHECK(k == nfrom);
		CHECK(dkim_stream_nsigs(s) == (nsig < MAX_SIGS ? nsig :
		    MAX_SIGS));
		CHECK(dkim_stream_nsigs(s) + dkim_stream_nextra(s) == nsig);
		for (i = 0; i < dkim_stream_nsigs(s); i++) {
			enum dkim_reason why;
			const struct dkim_sig *sig = dkim_stream_sig(s, i,
			    &why);

			CHECK((sig != NULL) == (why == DKIM_OK));
			if (sig != NULL)
				(void)dkim_stream_key_name(s, i);
		}
	}
	dkim_stream_free(s);
}

/* ---- Authentication-Results ---- */

static void
check_authres(const struct dkim_msg *m)
{
	/* authres_claims_hostn() reads ids of up to AUTHRES_TEXT_MAX octets
	 * (longer ones are no host name, so never ours); authres_parse()
	 * refuses an id longer than this buffer rather than cut it. */
	char id[AUTHRES_TEXT_MAX + 1];
	const char *v, *err;
	size_t i, vlen;

	for (i = 0; i < m->nhdrs; i++) {
		const struct dkim_hdr *h = &m->hdrs[i];

		if (!dkim_hdr_is(h, "Authentication-Results"))
			continue;
		v = memchr(h->raw, ':', h->rawlen) + 1;
		vlen = h->rawlen - (size_t)(v - h->raw);
		(void)authres_claims_hostn(v, vlen, "mx.example.test");
		id[0] = '\0';
		if (authres_parse(v, vlen, id, sizeof(id), &err) >= 0 &&
		    id[0] != '\0')
			CHECK(authres_claims_hostn(v, vlen, id));
	}
}

/* ---- sendmail's header rewrite ---- */

static int
rcpt_cb(void *arg, const char *addr, size_t len)
{
	(void)arg;
	CHECK(len == 0 || addr != NULL);
	return 0;
}

static void
check_sendmail(const char *hdr, size_t len)
{
	struct buf out;
	const char *err = NULL, *p, *end, *lf;
	bool has_from = false, saw_from = false;

	buf_init(&out, 2 * len + 16);
	if (sendmail_header_rewrite(hdr, len, true, rcpt_cb, NULL, &out,
	    &has_from, &err) == 0) {
		p = out.data;
		end = out.len > 0 ? p + out.len : p;
		while (p != NULL && p < end) {
			lf = memchr(p, '\n', (size_t)(end - p));
			/* A bare CR is content here, not a line end. */
			CHECK(lf != NULL && lf > p && lf[-1] == '\r');
			if (ascii_strncasecmp(p, "bcc", 3) == 0) {
				const char *c = p + 3;

				while (c < lf && is_wsp(*c))
					c++;
				CHECK(*c != ':');
			}
			if ((size_t)(lf - p) > 5 &&
			    ascii_strncasecmp(p, "from", 4) == 0) {
				const char *c = p + 4;

				while (c < lf && is_wsp(*c))
					c++;
				if (*c == ':')
					saw_from = true;
			}
			p = lf + 1;
		}
		CHECK(has_from == saw_from);
	} else
		CHECK(err != NULL);
	buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dkim_msg m;
	enum dkim_reason reason;
	char *msg;
	size_t len, split, i, hlen;
	int64_t limit;
	bool parsed;

	if (size < 2)
		return 0;
	limit = (data[0] & 0x7f) == 0x7f ? -1 : (int64_t)(data[0] & 0x7f) * 8;
	len = size - 2;
	split = (size_t)data[1] * len / 255;
	/* An exact-size copy: ASan sees a read past the end. */
	if ((msg = malloc(len > 0 ? len : 1)) == NULL)
		return 0;
	memcpy(msg, data + 2, len);

	parsed = dkim_msg_parse(msg, len, &m, &reason) == 0;
	if (parsed) {
		check_msg(msg, len, &m);
		for (i = 0; i < m.nhdrs; i++)
			check_header_canon(m.hdrs[i].raw, m.hdrs[i].rawlen);
		check_body(DKIM_CANON_SIMPLE, m.body, m.bodylen,
		    split < m.bodylen ? split : m.bodylen, limit);
		check_body(DKIM_CANON_RELAXED, m.body, m.bodylen,
		    split < m.bodylen ? split : m.bodylen, limit);
		check_authres(&m);
		/* The header section without its empty line. */
		hlen = (size_t)(m.body - msg);
		if (hlen >= 2 && memcmp(msg + hlen - 2, "\r\n", 2) == 0 &&
		    (hlen == 2 || (hlen >= 4 &&
		    memcmp(msg + hlen - 4, "\r\n", 2) == 0)))
			hlen -= 2;
		check_sendmail(msg, hlen);
	} else
		CHECK(reason == DKIM_MSG_MALFORMED);
	check_stream(msg, len, split, &m, parsed);
	/* Any text as one field (idempotence: only a field's shape). */
	check_header_canon(msg, len);
	dkim_msg_free(&m);
	free(msg);
	return 0;
}
