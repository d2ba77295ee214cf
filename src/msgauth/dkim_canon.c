/*
 * dkim_canon.c: messages split into header fields and body, the simple and
 * relaxed canonicalizations, the body hash and the header hash.
 *
 * Entry points: dkim_msg_parse(), dkim_msg_free(), dkim_hdr_is(),
 * dkim_canon_header(), dkim_bodycanon_init(), dkim_bodycanon_update(),
 * dkim_bodycanon_final(), dkim_body_hash(), dkim_header_hash().
 *
 * The body canonicalizer is a small state machine fed any chunking of the
 * body: it passes content through at once and holds back only what it
 * cannot decide yet (a CR that may start a CRLF, the line ends since the
 * last content, a run of white space), as counters and flags, so its
 * memory is constant whatever the body.
 *
 * SECURITY: reads untrusted messages. Every scan is bounded by the given
 * length; header selection costs at most DKIM_SIG_HDRS_MAX times the
 * field count (both capped); no recursion.
 * STANDARDS: RFC 6376 3.4 (canonicalization), 3.4.5 (l=), 3.7 (what is
 * hashed), 5.4.2 (fields signed from the bottom up, missing ones as the
 * null string); RFC 5322 2.2 (fields), 2.2.3 (folding).
 * OWNERSHIP: struct dkim_msg points into the caller's message and owns only
 * its field array.
 */
#include "msgauth/dkim.h"

#include <string.h>

#include <openssl/evp.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "msgauth/dkim_private.h"

static bool
dkim_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Messages
 */

void
dkim_msg_free(struct dkim_msg *m)
{
	free(m->hdrs);
	m->hdrs = NULL;
	m->nhdrs = 0;
}

int
dkim_msg_parse(const char *msg, size_t len, struct dkim_msg *m,
    enum dkim_reason *reason_r)
{
	size_t pos = 0, cap = 0, eol, next, i;
	struct dkim_hdr *cur = NULL;
	const char *nl;

	memset(m, 0, sizeof(*m));
	m->body = msg + len;
	while (pos < len) {
		/* The line's end: the next CRLF (a bare LF is content). */
		eol = len;
		next = len;
		for (i = pos; i < len; i = (size_t)(nl - msg) + 1) {
			nl = memchr(msg + i, '\n', len - i);
			if (nl == NULL)
				break;
			if (nl > msg + pos && nl[-1] == '\r') {
				eol = (size_t)(nl - msg) - 1;
				next = eol + 2;
				break;
			}
		}
		if (eol == pos && next == pos + 2) {
			m->body = msg + next;
			break;
		}
		if (dkim_is_wsp(msg[pos])) {
			/* A continuation line. */
			if (cur != NULL)
				cur->rawlen = next - (size_t)(cur->raw - msg);
		} else {
			const char *colon = memchr(msg + pos, ':', eol - pos);

			cur = NULL;
			if (colon != NULL && colon > msg + pos) {
				if (m->nhdrs == DKIM_MSG_FIELDS_MAX) {
					dkim_msg_free(m);
					*reason_r = DKIM_MSG_MALFORMED;
					return -1;
				}
				if (m->nhdrs == cap) {
					cap = cap ? cap * 2 : 32;
					m->hdrs = xrealloc(m->hdrs,
					    cap * sizeof(*m->hdrs));
				}
				cur = &m->hdrs[m->nhdrs++];
				cur->raw = msg + pos;
				cur->rawlen = next - pos;
				cur->namelen = (size_t)(colon - cur->raw);
				while (cur->namelen > 0 &&
				    dkim_is_wsp(cur->raw[cur->namelen - 1]))
					cur->namelen--;
				if (cur->namelen == 0) {
					m->nhdrs--;
					cur = NULL;
				}
			}
		}
		pos = next;
	}
	m->bodylen = (size_t)(msg + len - m->body);
	*reason_r = DKIM_OK;
	return 0;
}

bool
dkim_hdr_is(const struct dkim_hdr *h, const char *name)
{
	size_t n = strlen(name);

	return h->namelen == n && ascii_strncasecmp(h->raw, name, n) == 0;
}

/*
 * Header canonicalization
 */

int
dkim_canon_header(enum dkim_canon c, const char *raw, size_t len,
    struct buf *out)
{
	const char *colon, *p, *end;
	size_t namelen, i;
	bool wsp = false, started = false;
	char ch;

	if (len >= 2 && raw[len - 2] == '\r' && raw[len - 1] == '\n')
		len -= 2;
	if (c == DKIM_CANON_SIMPLE) {
		if (buf_append(out, raw, len) == -1 ||
		    buf_append(out, "\r\n", 2) == -1)
			return -1;
		return 0;
	}
	/* relaxed (RFC 6376 3.4.2) */
	if ((colon = memchr(raw, ':', len)) == NULL)
		colon = raw + len;
	namelen = (size_t)(colon - raw);
	while (namelen > 0 && dkim_is_wsp(raw[namelen - 1]))
		namelen--;
	for (i = 0; i < namelen; i++) {
		ch = raw[i];
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (buf_append(out, &ch, 1) == -1)
			return -1;
	}
	if (buf_append(out, ":", 1) == -1)
		return -1;
	end = raw + len;
	for (p = colon < end ? colon + 1 : end; p < end; p++) {
		if (*p == '\r' && p + 1 < end && p[1] == '\n') {
			p++;	/* unfold: the CRLF goes, the WSP stays */
			continue;
		}
		if (dkim_is_wsp(*p)) {
			wsp = true;
			continue;
		}
		if (wsp && started && buf_append(out, " ", 1) == -1)
			return -1;
		wsp = false;
		started = true;
		if (buf_append(out, p, 1) == -1)
			return -1;
	}
	return buf_append(out, "\r\n", 2);
}

/*
 * Body canonicalization
 */

static void
dkim_bc_flush(struct dkim_bodycanon *bc)
{
	if (bc->olen > 0)
		bc->sink(bc->arg, bc->out, bc->olen);
	bc->olen = 0;
}

static void
dkim_bc_emit(struct dkim_bodycanon *bc, const char *p, size_t n)
{
	size_t k;

	bc->total += n;
	if (bc->limit >= 0) {
		uint64_t room = (uint64_t)bc->limit - bc->emitted;

		if (n > room)
			n = (size_t)room;
	}
	bc->emitted += n;
	while (n > 0) {
		if (bc->olen == sizeof(bc->out))
			dkim_bc_flush(bc);
		k = sizeof(bc->out) - bc->olen;
		if (k > n)
			k = n;
		memcpy(bc->out + bc->olen, p, k);
		bc->olen += k;
		p += k;
		n -= k;
	}
}

/* Content follows: release the held line ends and white space. */
static void
dkim_bc_release(struct dkim_bodycanon *bc)
{
	for (; bc->crlfs > 0; bc->crlfs--)
		dkim_bc_emit(bc, "\r\n", 2);
	if (bc->wsp)
		dkim_bc_emit(bc, " ", 1);
	bc->wsp = false;
	bc->content = true;
}

void
dkim_bodycanon_init(struct dkim_bodycanon *bc, enum dkim_canon c,
    int64_t limit, dkim_sink_fn sink, void *arg)
{
	memset(bc, 0, offsetof(struct dkim_bodycanon, out));
	bc->canon = c;
	bc->limit = limit;
	bc->sink = sink;
	bc->arg = arg;
}

void
dkim_bodycanon_update(struct dkim_bodycanon *bc, const char *data,
    size_t len)
{
	const char *p = data, *end = data + len, *run;
	bool relaxed = bc->canon == DKIM_CANON_RELAXED;

	while (p < end) {
		if (bc->cr) {
			bc->cr = false;
			if (*p == '\n') {
				bc->wsp = false; /* WSP at a line's end */
				bc->crlfs++;
				p++;
				continue;
			}
			dkim_bc_release(bc);	/* a bare CR is content */
			dkim_bc_emit(bc, "\r", 1);
		}
		if (*p == '\r') {
			bc->cr = true;
			p++;
			continue;
		}
		if (relaxed && dkim_is_wsp(*p)) {
			bc->wsp = true;
			p++;
			continue;
		}
		/* A run of plain content goes out in one piece. */
		dkim_bc_release(bc);
		run = p;
		while (p < end && *p != '\r' &&
		    !(relaxed && dkim_is_wsp(*p)))
			p++;
		dkim_bc_emit(bc, run, (size_t)(p - run));
	}
}

uint64_t
dkim_bodycanon_final(struct dkim_bodycanon *bc)
{
	if (bc->cr) {
		bc->cr = false;
		dkim_bc_release(bc);
		dkim_bc_emit(bc, "\r", 1);
	}
	if (bc->canon == DKIM_CANON_SIMPLE) {
		/* RFC 6376 3.4.3: one CRLF ends it; an empty body is CRLF. */
		bc->crlfs = 0;
		dkim_bc_emit(bc, "\r\n", 2);
	} else {
		/*
		 * RFC 6376 3.4.4. White space on a last line without CRLF
		 * stays as one SP, as dkimpy does: the CRLF added after it
		 * is not a line end the message had.
		 */
		bc->crlfs = 0;
		if (bc->wsp)
			dkim_bc_release(bc);
		if (bc->content)
			dkim_bc_emit(bc, "\r\n", 2);
	}
	dkim_bc_flush(bc);
	return bc->total;
}

static void
dkim_sink_digest(void *arg, const char *data, size_t len)
{
	if (EVP_DigestUpdate(arg, data, len) != 1)
		fatalx("dkim: EVP_DigestUpdate failed");
}

size_t
dkim_body_hash(enum dkim_canon c, enum dkim_hash h, int64_t limit,
    const char *body, size_t len, unsigned char *md, uint64_t *total_r)
{
	struct dkim_bodycanon *bc;
	EVP_MD_CTX *ctx;
	unsigned int mdlen = 0;
	uint64_t total;

	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, dkim_hash_md(h), NULL) != 1)
		fatalx("dkim: digest init failed");
	bc = xmalloc(sizeof(*bc));
	dkim_bodycanon_init(bc, c, limit, dkim_sink_digest, ctx);
	dkim_bodycanon_update(bc, body, len);
	total = dkim_bodycanon_final(bc);
	free(bc);
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
		fatalx("dkim: digest final failed");
	EVP_MD_CTX_free(ctx);
	if (total_r != NULL)
		*total_r = total;
	return mdlen;
}

/*
 * The header hash
 */

/* Whether h's name is the NUL-terminated name (case-insensitive). */
static bool
dkim_hdr_named(const struct dkim_hdr *h, const char *name)
{
	return dkim_hdr_is(h, name);
}

/* Whether h is the field sig was parsed from (trailing CRLF aside). */
static bool
dkim_hdr_is_sig(const struct dkim_hdr *h, const struct dkim_sig *sig)
{
	size_t a = h->rawlen, b = sig->fieldlen;

	if (a >= 2 && h->raw[a - 2] == '\r' && h->raw[a - 1] == '\n')
		a -= 2;
	if (b >= 2 && sig->field[b - 2] == '\r' && sig->field[b - 1] == '\n')
		b -= 2;
	return a == b && memcmp(h->raw, sig->field, a) == 0;
}

static int
dkim_hash_canon(EVP_MD_CTX *ctx, enum dkim_canon c, const char *raw,
    size_t len, bool strip_crlf)
{
	struct buf b;
	int rc = -1;

	buf_init(&b, len + 16);
	if (dkim_canon_header(c, raw, len, &b) == 0) {
		size_t n = b.len;

		if (strip_crlf && n >= 2)
			n -= 2;
		if (EVP_DigestUpdate(ctx, buf_str(&b), n) == 1)
			rc = 0;
	}
	buf_free(&b);
	return rc;
}

int
dkim_header_hash(const struct dkim_msg *m, const struct dkim_sig *sig,
    unsigned char *md, unsigned int *mdlen_r)
{
	EVP_MD_CTX *ctx;
	bool *used;
	char *self;
	size_t i, k, selflen;
	int rc = -1;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	if (EVP_DigestInit_ex(ctx, dkim_hash_md(dkim_alg_hash(sig->alg)),
	    NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return -1;
	}
	used = xcalloc(m->nhdrs + 1, sizeof(*used));
	for (i = 0; i < sig->nhdrs; i++) {
		/* RFC 6376 5.4.2: the last unused instance, bottom up. */
		for (k = m->nhdrs; k-- > 0;) {
			const struct dkim_hdr *h = &m->hdrs[k];

			if (used[k] || !dkim_hdr_named(h, sig->hdrs[i]) ||
			    dkim_hdr_is_sig(h, sig))
				continue;
			used[k] = true;
			if (dkim_hash_canon(ctx, sig->hcanon, h->raw,
			    h->rawlen, false) == -1)
				goto done;
			break;
		}
		/* None left: the null string (oversigning). */
	}
	/* RFC 6376 3.7: the signature field, b= emptied, no final CRLF. */
	selflen = sig->fieldlen - (sig->b_end - sig->b_start);
	self = xmalloc(selflen + 1);
	memcpy(self, sig->field, sig->b_start);
	memcpy(self + sig->b_start, sig->field + sig->b_end,
	    sig->fieldlen - sig->b_end);
	if (dkim_hash_canon(ctx, sig->hcanon, self, selflen, true) == 0 &&
	    EVP_DigestFinal_ex(ctx, md, mdlen_r) == 1)
		rc = 0;
	free(self);
done:
	free(used);
	EVP_MD_CTX_free(ctx);
	return rc;
}
