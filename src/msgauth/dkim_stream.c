/*
 * dkim_stream.c: DKIM verification and signing over a message fed in
 * chunks, for the SMTP session that spools a message it cannot hold.
 *
 * Entry points: dkim_stream_new(), dkim_stream_free(),
 * dkim_stream_want_body(), dkim_stream_feed(), dkim_stream_finish(),
 * dkim_stream_nsigs(), dkim_stream_nextra(), dkim_stream_sig(),
 * dkim_stream_key_name(), dkim_stream_verify(), dkim_stream_from(),
 * dkim_stream_header_overflow(), dkim_stream_header_error(),
 * dkim_stream_sign().
 *
 * The header section is kept (bounded by header_max) while a four-state
 * machine looks for its end, the first line that is empty (CRLF at the
 * start of a line, exactly where dkim_msg_parse() ends it). There the kept
 * section, empty line included, goes through dkim_msg_parse(), so fields
 * are split as for a whole message; the DKIM-Signature fields are parsed
 * and one body canonicalizer with its digest is started per distinct
 * (body canonicalization, hash, l=) among them and the signer's wants.
 * The body then streams through those and is never kept. Verification and
 * signing reuse dkim_verify() and dkim_sign() (dkim_verify_bodyhash(),
 * dkim_sign_bodyhash()) over the kept fields and the streamed hash, so the
 * verdicts and fields cannot differ from the whole-message ones.
 *
 * SECURITY: reads untrusted messages. Memory is header_max plus one
 * canonicalizer (about 4 KiB) and digest per hash, at most max_sigs plus
 * four of them; every octet is looked at a bounded number of times (once
 * by the header scan, once per hash); no recursion. Signing runs with the
 * daemon's private keys, given by the caller.
 * STANDARDS: RFC 6376 3.4 (canonicalization), 3.5 (l=), 3.7, 5, 6.1; RFC
 * 5322 2.1 (the header section ends at the first empty line).
 * OWNERSHIP: the stream owns its kept header section, the parsed
 * signatures (handed out as const pointers), the From: value arrays that
 * point into the header section and its digests. Results of
 * dkim_stream_sign() belong to the caller.
 */
#include "msgauth/dkim.h"

#include <string.h>

#include <openssl/evp.h>

#include "lib/log.h"
#include "lib/util.h"
#include "msgauth/dkim_private.h"

#define DKIM_STREAM_WANT_MAX	4	/* 2 canonicalizations x 2 hashes */
#define DKIM_STREAM_QNAME_MAX	(DKIM_DOMAIN_MAX + 1)

/* Where the header scan is within a line. */
enum dkim_stream_line {
	DKIM_LINE_START,	/* after a CRLF, or at the start */
	DKIM_LINE_START_CR,	/* a CR first on the line */
	DKIM_LINE_MID,
	DKIM_LINE_MID_CR,	/* a CR last, within a line */
};

/* One body canonicalizer and its digest. */
struct dkim_stream_body {
	enum dkim_canon canon;
	enum dkim_hash hash;
	int64_t limit;
	EVP_MD_CTX *ctx;
	struct dkim_bodycanon bc;
	struct dkim_bodyhash bd;	/* at dkim_stream_finish() */
};

struct dkim_stream_sig {
	struct dkim_sig *sig;		/* NULL: did not parse */
	enum dkim_reason error;		/* DKIM_OK: can be verified */
	size_t body;			/* index in bodies */
	bool has_qname;
	char qname[DKIM_STREAM_QNAME_MAX];
};

struct dkim_stream_want {
	enum dkim_canon canon;
	enum dkim_hash hash;
};

struct dkim_stream {
	unsigned int max_sigs;
	size_t header_max;

	/* The header section, at most header_max octets of it. */
	char *hdr;
	size_t hdrlen, hdrcap;
	enum dkim_stream_line line;
	bool header_done;
	bool overflow;
	bool finished;

	struct dkim_msg m;		/* over hdr, once header_done */
	enum dkim_reason header_error;

	struct dkim_stream_sig *sigs;
	size_t nsigs, nextra;

	struct dkim_stream_want wants[DKIM_STREAM_WANT_MAX];
	size_t nwants;

	struct dkim_stream_body *bodies;
	size_t nbodies;

	const char **from_values;
	size_t *from_lens;
	size_t nfrom;
};

static void
dkim_stream_sink(void *arg, const char *data, size_t len)
{
	if (EVP_DigestUpdate(arg, data, len) != 1)
		fatalx("dkim: EVP_DigestUpdate failed");
}

struct dkim_stream *
dkim_stream_new(unsigned int max_sigs, size_t header_max)
{
	struct dkim_stream *s;

	s = xcalloc(1, sizeof(*s));
	s->max_sigs = max_sigs;
	s->header_max = header_max;
	s->line = DKIM_LINE_START;
	s->header_error = DKIM_OK;
	return s;
}

void
dkim_stream_free(struct dkim_stream *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nsigs; i++)
		dkim_sig_free(s->sigs[i].sig);
	free(s->sigs);
	for (i = 0; i < s->nbodies; i++)
		EVP_MD_CTX_free(s->bodies[i].ctx);
	free(s->bodies);
	free(s->from_values);
	free(s->from_lens);
	dkim_msg_free(&s->m);
	free(s->hdr);
	free(s);
}

int
dkim_stream_want_body(struct dkim_stream *s, enum dkim_canon c,
    enum dkim_alg alg)
{
	enum dkim_hash h = dkim_alg_hash(alg);
	size_t i;

	if (s->header_done)
		return -1;
	for (i = 0; i < s->nwants; i++)
		if (s->wants[i].canon == c && s->wants[i].hash == h)
			return 0;
	if (s->nwants == DKIM_STREAM_WANT_MAX)
		fatalx("dkim_stream_want_body: more than %d wants",
		    DKIM_STREAM_WANT_MAX);
	s->wants[s->nwants].canon = c;
	s->wants[s->nwants].hash = h;
	s->nwants++;
	return 0;
}

/* Keep header octets while they fit; past header_max, only note it. */
static void
dkim_stream_keep(struct dkim_stream *s, const char *data, size_t len)
{
	size_t room = s->header_max - s->hdrlen;

	if (s->overflow)
		return;
	if (len > room) {
		s->overflow = true;
		len = room;
	}
	if (len == 0)
		return;
	if (s->hdrlen + len > s->hdrcap) {
		size_t cap = s->hdrcap ? s->hdrcap : 4096;

		while (cap < s->hdrlen + len)
			cap *= 2;
		if (cap > s->header_max)
			cap = s->header_max;
		s->hdr = xrealloc(s->hdr, cap);
		s->hdrcap = cap;
	}
	memcpy(s->hdr + s->hdrlen, data, len);
	s->hdrlen += len;
}

/* The body hash for (c, h, limit), started if new. */
static size_t
dkim_stream_body_get(struct dkim_stream *s, size_t cap, enum dkim_canon c,
    enum dkim_hash h, int64_t limit)
{
	struct dkim_stream_body *b;
	size_t i;

	for (i = 0; i < s->nbodies; i++) {
		b = &s->bodies[i];
		if (b->canon == c && b->hash == h && b->limit == limit)
			return i;
	}
	if (s->nbodies == cap)
		fatalx("dkim_stream: body hash table full");
	b = &s->bodies[s->nbodies];
	b->canon = c;
	b->hash = h;
	b->limit = limit;
	if ((b->ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(b->ctx, dkim_hash_md(h), NULL) != 1)
		fatalx("dkim: digest init failed");
	dkim_bodycanon_init(&b->bc, c, limit, dkim_stream_sink, b->ctx);
	return s->nbodies++;
}

/*
 * The header section has ended (or the message, without an empty line):
 * split its fields, parse the signatures, start the body hashes.
 */
static void
dkim_stream_header_end(struct dkim_stream *s)
{
	enum dkim_reason r;
	size_t i, len = s->hdrlen, nh, cap;

	s->header_done = true;
	if (s->overflow) {
		/* The complete lines kept; the last field may go on. */
		while (len >= 2 && !(s->hdr[len - 2] == '\r' &&
		    s->hdr[len - 1] == '\n'))
			len--;
		if (len < 2)
			len = 0;
		s->header_error = DKIM_MSG_MALFORMED;
	}
	if (dkim_msg_parse(s->hdr != NULL ? s->hdr : "", len, &s->m,
	    &r) == -1) {
		/* Too many fields: no signature, as for the whole message. */
		s->header_error = r;
		return;
	}
	nh = s->m.nhdrs;
	if (s->overflow && nh > 0)
		nh--;

	s->sigs = xcalloc(s->max_sigs > 0 ? s->max_sigs : 1,
	    sizeof(*s->sigs));
	s->from_values = xcalloc(nh + 1, sizeof(*s->from_values));
	s->from_lens = xcalloc(nh + 1, sizeof(*s->from_lens));
	for (i = 0; i < nh; i++) {
		const struct dkim_hdr *h = &s->m.hdrs[i];

		if (dkim_hdr_is(h, "From")) {
			const char *v = h->raw + h->namelen;
			size_t vlen = h->rawlen - h->namelen;

			/* Past the white space before the colon, the colon. */
			while (vlen > 0 && *v != ':') {
				v++;
				vlen--;
			}
			if (vlen > 0) {
				v++;
				vlen--;
			}
			if (vlen >= 2 && v[vlen - 2] == '\r' &&
			    v[vlen - 1] == '\n')
				vlen -= 2;
			s->from_values[s->nfrom] = v;
			s->from_lens[s->nfrom++] = vlen;
		}
		if (dkim_hdr_is(h, "DKIM-Signature")) {
			struct dkim_stream_sig *ss;

			if (s->nsigs == s->max_sigs) {
				s->nextra++;
				continue;
			}
			ss = &s->sigs[s->nsigs++];
			if (dkim_sig_parse(h->raw, h->rawlen, &ss->sig,
			    &r) == -1) {
				ss->sig = NULL;
				ss->error = r;
			}
			if (s->overflow)
				ss->error = DKIM_MSG_MALFORMED;
		}
	}
	if (s->overflow)
		return;		/* nothing can be verified or signed */

	cap = s->nsigs + s->nwants;
	s->bodies = xcalloc(cap > 0 ? cap : 1, sizeof(*s->bodies));
	for (i = 0; i < s->nsigs; i++) {
		struct dkim_stream_sig *ss = &s->sigs[i];

		if (ss->error != DKIM_OK)
			continue;
		ss->body = dkim_stream_body_get(s, cap, ss->sig->bcanon,
		    dkim_alg_hash(ss->sig->alg), ss->sig->length);
		ss->has_qname = dkim_key_query_name(ss->sig, ss->qname,
		    sizeof(ss->qname)) == 0;
	}
	for (i = 0; i < s->nwants; i++)
		(void)dkim_stream_body_get(s, cap, s->wants[i].canon,
		    s->wants[i].hash, -1);
}

static void
dkim_stream_body(struct dkim_stream *s, const char *data, size_t len)
{
	size_t i;

	for (i = 0; i < s->nbodies; i++)
		dkim_bodycanon_update(&s->bodies[i].bc, data, len);
}

void
dkim_stream_feed(struct dkim_stream *s, const char *data, size_t len)
{
	size_t i;

	if (s->finished)
		fatalx("dkim_stream_feed after dkim_stream_finish");
	if (s->header_done) {
		dkim_stream_body(s, data, len);
		return;
	}
	for (i = 0; i < len; i++) {
		char c = data[i];

		switch (s->line) {
		case DKIM_LINE_START:
			s->line = c == '\r' ? DKIM_LINE_START_CR :
			    DKIM_LINE_MID;
			break;
		case DKIM_LINE_START_CR:
			if (c == '\n') {
				/* The empty line: the header section ends. */
				dkim_stream_keep(s, data, i + 1);
				dkim_stream_header_end(s);
				dkim_stream_body(s, data + i + 1,
				    len - i - 1);
				return;
			}
			s->line = c == '\r' ? DKIM_LINE_MID_CR :
			    DKIM_LINE_MID;
			break;
		case DKIM_LINE_MID:
			if (c == '\r')
				s->line = DKIM_LINE_MID_CR;
			break;
		case DKIM_LINE_MID_CR:
			if (c == '\n')
				s->line = DKIM_LINE_START;
			else if (c != '\r')
				s->line = DKIM_LINE_MID;
			break;
		}
	}
	dkim_stream_keep(s, data, len);
}

void
dkim_stream_finish(struct dkim_stream *s)
{
	struct dkim_stream_body *b;
	unsigned int mdlen;
	size_t i;

	if (s->finished)
		return;
	if (!s->header_done)
		dkim_stream_header_end(s);	/* no body */
	for (i = 0; i < s->nbodies; i++) {
		b = &s->bodies[i];
		b->bd.total = dkim_bodycanon_final(&b->bc);
		if (EVP_DigestFinal_ex(b->ctx, b->bd.md, &mdlen) != 1)
			fatalx("dkim: digest final failed");
		b->bd.mdlen = mdlen;
		EVP_MD_CTX_free(b->ctx);
		b->ctx = NULL;
	}
	s->finished = true;
}

static void
dkim_stream_check(const struct dkim_stream *s, const char *what)
{
	if (!s->finished)
		fatalx("%s before dkim_stream_finish", what);
}

size_t
dkim_stream_nsigs(const struct dkim_stream *s)
{
	dkim_stream_check(s, "dkim_stream_nsigs");
	return s->nsigs;
}

size_t
dkim_stream_nextra(const struct dkim_stream *s)
{
	dkim_stream_check(s, "dkim_stream_nextra");
	return s->nextra;
}

static const struct dkim_stream_sig *
dkim_stream_get(const struct dkim_stream *s, size_t i, const char *what)
{
	dkim_stream_check(s, what);
	if (i >= s->nsigs)
		fatalx("%s: signature %zu of %zu", what, i, s->nsigs);
	return &s->sigs[i];
}

const struct dkim_sig *
dkim_stream_sig(const struct dkim_stream *s, size_t i,
    enum dkim_reason *error_r)
{
	const struct dkim_stream_sig *ss = dkim_stream_get(s, i,
	    "dkim_stream_sig");

	if (error_r != NULL)
		*error_r = ss->error;
	return ss->sig;
}

const char *
dkim_stream_key_name(const struct dkim_stream *s, size_t i)
{
	const struct dkim_stream_sig *ss = dkim_stream_get(s, i,
	    "dkim_stream_key_name");

	if (ss->error != DKIM_OK || !ss->has_qname)
		return NULL;
	return ss->qname;
}

int
dkim_stream_verify(const struct dkim_stream *s, size_t i,
    const struct dkim_key *key, const struct dkim_verify_opts *opts,
    struct dkim_verdict *v)
{
	const struct dkim_stream_sig *ss = dkim_stream_get(s, i,
	    "dkim_stream_verify");

	if (ss->error != DKIM_OK) {
		memset(v, 0, sizeof(*v));
		if (ss->sig != NULL)
			v->alg = ss->sig->alg;
		v->testing = key != NULL && key->testing;
		v->reason = ss->error;
		v->result = dkim_reason_result(v->reason);
		return -1;
	}
	if (key == NULL)
		fatalx("dkim_stream_verify: no key");
	return dkim_verify_bodyhash(&s->m, ss->sig, &s->bodies[ss->body].bd,
	    key, opts, v);
}

size_t
dkim_stream_from(const struct dkim_stream *s, const char *const **values_r,
    const size_t **lens_r)
{
	dkim_stream_check(s, "dkim_stream_from");
	*values_r = s->from_values;
	*lens_r = s->from_lens;
	return s->nfrom;
}

bool
dkim_stream_header_overflow(const struct dkim_stream *s)
{
	dkim_stream_check(s, "dkim_stream_header_overflow");
	return s->overflow;
}

enum dkim_reason
dkim_stream_header_error(const struct dkim_stream *s)
{
	dkim_stream_check(s, "dkim_stream_header_error");
	return s->header_error;
}

char *
dkim_stream_sign(const struct dkim_stream *s, const struct dkim_privkey *key,
    const struct dkim_sign_opts *o, const char **error_r)
{
	size_t i;

	dkim_stream_check(s, "dkim_stream_sign");
	if (s->overflow) {
		*error_r = "header section too large";
		return NULL;
	}
	if (s->header_error != DKIM_OK) {
		*error_r = dkim_reason_str(s->header_error);
		return NULL;
	}
	/* Only a wanted hash: one that a signature asked for is chance. */
	for (i = 0; i < s->nwants; i++)
		if (s->wants[i].canon == o->bcanon &&
		    s->wants[i].hash == DKIM_HASH_SHA256)
			break;
	if (i < s->nwants) {
		for (i = 0; i < s->nbodies; i++) {
			const struct dkim_stream_body *b = &s->bodies[i];

			if (b->canon == o->bcanon &&
			    b->hash == DKIM_HASH_SHA256 && b->limit == -1)
				return dkim_sign_bodyhash(&s->m, &b->bd, key,
				    o, error_r);
		}
	}
	*error_r = "body canonicalization not requested "
	    "(dkim_stream_want_body)";
	return NULL;
}
