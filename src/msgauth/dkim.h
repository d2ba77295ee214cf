/*
 * dkim.h: the DKIM core (RFC 6376, RFC 8463 Ed25519, RFC 8301): tag lists,
 * DKIM-Signature fields, key records, canonicalization, signing and
 * verification. Pure and synchronous, over memory buffers: the daemon runs
 * them on worker threads and does the DNS lookups itself (the query name
 * is "<s>._domainkey.<d>", see dkim_key_query_name()).
 *
 * Messages are given in wire form: lines end in CRLF; a bare CR or LF is
 * an ordinary octet. The header section ends at the first empty line (or
 * at the end of the message, then the body is empty).
 *
 * A verifier's flow, per DKIM-Signature field of the message (at most
 * dkim_max_signatures of them, the caller's policy):
 *   dkim_msg_parse(msg)                 -> the header fields, the body
 *   dkim_sig_parse(field)               -> a signature, or a reason
 *   DNS TXT of dkim_key_query_name(sig) -> record text (strings joined)
 *   dkim_key_parse(record)              -> a key, or a reason
 *   dkim_verify(msg, sig, key, opts)    -> pass, or a reason
 * Every reason maps to a result (dkim_reason_result()) and to a short text
 * for an Authentication-Results "reason" (dkim_reason_str()). A missing
 * key record is DKIM_KEY_NOT_FOUND, a failed lookup DKIM_KEY_TEMPFAIL.
 *
 * A signer's flow: dkim_privkey_load() once (start-up or reload), then
 * dkim_sign() per message and key; prepend the returned field. Two keys
 * (RSA and Ed25519) give two independent fields over the same message.
 *
 * Not yet: the optional refusal of a t= in the future (RFC 6376 3.5 "MAY");
 * a libFuzzer target (tests/unit/test_msgauth_dkim_fuzz.c is a fixed-seed
 * mutation test meanwhile). The daemon side (DNS lookups, the
 * dkim_max_signatures cap, Authentication-Results) lives elsewhere.
 */
#ifndef PETREL_MSGAUTH_DKIM_H
#define PETREL_MSGAUTH_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

/* Limits on untrusted input (each refusal has its reason). */
#define DKIM_TAGS_MAX		64	/* tags in one tag list */
#define DKIM_SIG_HDRS_MAX	256	/* names in h= */
#define DKIM_MSG_FIELDS_MAX	4096	/* header fields in a message */
#define DKIM_DOMAIN_MAX		253
#define DKIM_RSA_MIN_BITS	1024	/* RFC 8301 3.2 */
#define DKIM_RSA_MAX_BITS	8192	/* bounds the verification cost */

/* RFC 8601 2.7.1 results. */
enum dkim_result {
	DKIM_RESULT_NONE,
	DKIM_RESULT_PASS,
	DKIM_RESULT_FAIL,
	DKIM_RESULT_NEUTRAL,
	DKIM_RESULT_POLICY,
	DKIM_RESULT_TEMPERROR,
	DKIM_RESULT_PERMERROR,
};

/*
 * Why a signature did not pass. Each has one result class and one text
 * (dkim_reason_result(), dkim_reason_str()).
 */
enum dkim_reason {
	DKIM_OK = 0,
	/* The DKIM-Signature field (permerror). */
	DKIM_SIG_SYNTAX,		/* tag-list syntax */
	DKIM_SIG_DUPLICATE_TAG,
	DKIM_SIG_TOO_MANY_TAGS,
	DKIM_SIG_MISSING_V,
	DKIM_SIG_MISSING_A,
	DKIM_SIG_MISSING_B,
	DKIM_SIG_MISSING_BH,
	DKIM_SIG_MISSING_D,
	DKIM_SIG_MISSING_H,
	DKIM_SIG_MISSING_S,
	DKIM_SIG_VERSION,		/* v= other than 1 */
	DKIM_SIG_ALGORITHM,		/* a= unknown */
	DKIM_SIG_BAD_B,			/* b= not base64 */
	DKIM_SIG_BAD_BH,		/* bh= not base64 */
	DKIM_SIG_CANON,			/* c= unknown */
	DKIM_SIG_DOMAIN,		/* d= not a domain name */
	DKIM_SIG_SELECTOR,		/* s= not a selector */
	DKIM_SIG_HEADERS,		/* h= syntax or too many names */
	DKIM_SIG_FROM_NOT_SIGNED,	/* h= without From */
	DKIM_SIG_IDENTITY,		/* i= syntax */
	DKIM_SIG_IDENTITY_DOMAIN,	/* i= domain not d= or below it */
	DKIM_SIG_LENGTH,		/* l= syntax */
	DKIM_SIG_QUERY,			/* q= without dns/txt */
	DKIM_SIG_TIMESTAMP,		/* t= syntax */
	DKIM_SIG_EXPIRATION,		/* x= syntax */
	DKIM_SIG_EXPIRES_BEFORE_SIGNED,	/* x= < t= */
	/* The key record (permerror). */
	DKIM_KEY_SYNTAX,
	DKIM_KEY_DUPLICATE_TAG,
	DKIM_KEY_TOO_MANY_TAGS,
	DKIM_KEY_VERSION,		/* v= not DKIM1, or not first */
	DKIM_KEY_MISSING_P,
	DKIM_KEY_BAD_P,			/* p= not base64 or not a key */
	DKIM_KEY_NOT_FOUND,		/* the caller's DNS: no record */
	/* The caller's DNS lookup failed (temperror). */
	DKIM_KEY_TEMPFAIL,
	/* Verification (fail). */
	DKIM_FAIL_KEY_TYPE,		/* k= unknown */
	DKIM_FAIL_KEY_SERVICE,		/* s= excludes email */
	DKIM_FAIL_KEY_REVOKED,		/* p= empty */
	DKIM_FAIL_KEY_TOO_SMALL,	/* RSA under 1024 bits */
	DKIM_FAIL_KEY_TOO_LARGE,	/* RSA over DKIM_RSA_MAX_BITS */
	DKIM_FAIL_KEY_MISMATCH,		/* a= and k= disagree */
	DKIM_FAIL_HASH_NOT_ALLOWED,	/* the key's h= excludes a='s hash */
	DKIM_FAIL_STRICT_IDENTITY,	/* t=s and the i= domain is not d= */
	DKIM_FAIL_EXPIRED,		/* now > x= */
	DKIM_FAIL_RSA_SHA1,		/* verified, but RFC 8301 */
	DKIM_FAIL_BODY_TOO_SHORT,	/* l= longer than the body */
	DKIM_FAIL_BODY_HASH,		/* bh= differs */
	DKIM_FAIL_SIGNATURE,		/* b= does not verify */
	/* The message (permerror). */
	DKIM_MSG_MALFORMED,		/* too many fields */
	DKIM_REASON_COUNT
};

/* The result class of a reason (DKIM_OK -> pass). */
enum dkim_result dkim_reason_result(enum dkim_reason reason);

/*
 * Short text for an Authentication-Results "reason" ("body hash did not
 * verify", "key revoked"...); static, printable ASCII.
 */
const char *dkim_reason_str(enum dkim_reason reason);

/* "pass", "fail", ... as in RFC 8601. */
const char *dkim_result_str(enum dkim_result result);

/*
 * What a pass should say about itself, or NULL: "key in testing mode
 * (t=y)" (RFC 6376 3.6.1: such mail counts as unsigned), "body partly
 * signed (l=)" (RFC 6376 8.2: content after l= octets is not covered), or
 * both. Static text.
 */
const char *dkim_pass_note_flags(bool testing, bool partial_body);
struct dkim_verdict;
const char *dkim_pass_note(const struct dkim_verdict *v);

/*
 * Tag lists (RFC 6376 3.2)
 */

struct dkim_tag {
	const char *name;	/* points into the parsed text */
	size_t namelen;
	const char *value;	/* without surrounding white space */
	size_t valuelen;
	/*
	 * Everything between '=' and the ';' that ends the spec (or the end
	 * of the text): what a signer's b= value and its surrounding white
	 * space occupy.
	 */
	size_t span_start, span_end;	/* offsets into the parsed text */
};

struct dkim_taglist {
	struct dkim_tag tags[DKIM_TAGS_MAX];
	size_t ntags;
};

/*
 * Parse text[0..len) as a tag-list: tag-spec *(";" tag-spec) [";"], where
 * a tag-spec is [FWS] name [FWS] "=" [FWS] value [FWS]. FWS is WSP with at
 * most one CRLF before WSP between; names are ALPHA *(ALPHA/DIGIT/"_"),
 * case-sensitive; values are VALCHARs (octets 0x21-0x7e but ';', and
 * 8-bit octets, which appear in notes) with white space inside. An empty
 * text is an empty list.
 * Returns 0, or -1 with *reason_r DKIM_SIG_SYNTAX, DKIM_SIG_DUPLICATE_TAG
 * or DKIM_SIG_TOO_MANY_TAGS (the caller maps them for key records).
 * The tags point into text, which must outlive l.
 */
int dkim_taglist_parse(const char *text, size_t len, struct dkim_taglist *l,
    enum dkim_reason *reason_r);

/* The tag named name (case-sensitive), or NULL. */
const struct dkim_tag *dkim_taglist_get(const struct dkim_taglist *l,
    const char *name);

/*
 * Signatures (RFC 6376 3.5)
 */

enum dkim_alg {
	DKIM_ALG_RSA_SHA256,
	DKIM_ALG_RSA_SHA1,
	DKIM_ALG_ED25519_SHA256,
};

enum dkim_canon {
	DKIM_CANON_SIMPLE,
	DKIM_CANON_RELAXED,
};

enum dkim_keytype {
	DKIM_KEY_RSA,
	DKIM_KEY_ED25519,
};

enum dkim_hash {
	DKIM_HASH_SHA1 = 1 << 0,
	DKIM_HASH_SHA256 = 1 << 1,
};

/* "rsa-sha256", ... */
const char *dkim_alg_str(enum dkim_alg alg);
enum dkim_hash dkim_alg_hash(enum dkim_alg alg);
enum dkim_keytype dkim_alg_keytype(enum dkim_alg alg);

struct dkim_sig {
	char *field;		/* a copy of the whole header field */
	size_t fieldlen;
	size_t b_start, b_end;	/* the b= value's span in field */
	enum dkim_alg alg;
	enum dkim_canon hcanon, bcanon;
	char domain[DKIM_DOMAIN_MAX + 1];	/* d=, as written */
	char selector[DKIM_DOMAIN_MAX + 1];	/* s= */
	char *identity;		/* i=, or "@" d= when absent */
	const char *identity_domain;	/* the part after the last '@' */
	char **hdrs;		/* h= names, as written */
	size_t nhdrs;
	unsigned char *b;	/* decoded signature */
	size_t blen;
	unsigned char bh[64];	/* decoded body hash */
	size_t bhlen;
	int64_t length;		/* l=, -1 when absent */
	int64_t timestamp;	/* t=, -1 when absent */
	int64_t expiration;	/* x=, -1 when absent */
};

/*
 * Parse one DKIM-Signature header field: field[0..len) is the whole
 * field, name and colon included (a trailing CRLF may be there or not).
 * Checks everything RFC 6376 3.5 and 6.1.1 ask of the field alone:
 * required tags, v=1, a= known, b= and bh= base64 (b= may not be empty),
 * c=, d= and s= names, h= listing From, i= within d=, l=, q= with
 * dns/txt, t= and x= numbers (x= not before t=). z= and unknown tags are
 * ignored.
 * Returns 0 with *sig_r (free with dkim_sig_free()), or -1 with *reason_r.
 */
int dkim_sig_parse(const char *field, size_t len, struct dkim_sig **sig_r,
    enum dkim_reason *reason_r);
void dkim_sig_free(struct dkim_sig *sig);

/*
 * The DNS name of sig's key, "<s>._domainkey.<d>", into out (size outsize).
 * Returns 0, or -1 when it does not fit.
 */
int dkim_key_query_name(const struct dkim_sig *sig, char *out,
    size_t outsize);

/*
 * Key records (RFC 6376 3.6.1, RFC 8463 4)
 */

struct dkim_key {
	enum dkim_keytype type;
	unsigned int hashes;	/* DKIM_HASH_* allowed (h=; absent: all) */
	bool testing;		/* t=y */
	bool strict;		/* t=s */
	unsigned int bits;	/* RSA modulus size; 256 for Ed25519 */
	void *pkey;		/* EVP_PKEY * */
};

/*
 * Parse a key record (the TXT strings of one record joined). v=DKIM1 must
 * be the first tag if present; k= rsa (default) or ed25519; h= a list of
 * hashes; s= must include "*" or "email"; t= flags y and s; p= the key:
 * for RSA a DER SubjectPublicKeyInfo or, as some publish, a bare PKCS#1
 * RSAPublicKey, at least 1024 bits (RFC 8301); for Ed25519 32 raw octets
 * (RFC 8463). n=, g= and unknown tags are ignored.
 * Returns 0 with *key_r (free with dkim_key_free()), or -1 with *reason_r:
 * DKIM_KEY_* (permerror) or DKIM_FAIL_KEY_TYPE, _SERVICE, _REVOKED,
 * _TOO_SMALL, _TOO_LARGE (fail).
 */
int dkim_key_parse(const char *text, size_t len, struct dkim_key **key_r,
    enum dkim_reason *reason_r);
void dkim_key_free(struct dkim_key *key);

/*
 * Messages
 */

struct dkim_hdr {
	const char *raw;	/* the whole field, through its CRLF */
	size_t rawlen;
	size_t namelen;		/* raw[0..namelen): the name alone */
};

struct dkim_msg {
	struct dkim_hdr *hdrs;
	size_t nhdrs;
	const char *body;	/* after the empty line */
	size_t bodylen;
};

/*
 * Split msg[0..len) into header fields and body. A line of the header
 * section that is neither a field (no colon) nor a continuation is
 * skipped: no h= can name it. msg must outlive m.
 * Returns 0, or -1 (DKIM_MSG_MALFORMED: more than DKIM_MSG_FIELDS_MAX
 * fields). Free with dkim_msg_free() (safe on a zeroed struct).
 */
int dkim_msg_parse(const char *msg, size_t len, struct dkim_msg *m,
    enum dkim_reason *reason_r);
void dkim_msg_free(struct dkim_msg *m);

/* Whether h's name is name (ASCII case-insensitive). */
bool dkim_hdr_is(const struct dkim_hdr *h, const char *name);

/*
 * Canonicalization (RFC 6376 3.4)
 */

/*
 * Append the canonical form of one header field (raw[0..len), name through
 * the CRLF that ends it, or without it) to out. simple: unchanged, with a
 * CRLF ensured; relaxed: lower-case name, unfolded, WSP runs to one SP, no
 * WSP around the colon or at the end, then CRLF.
 * Returns 0, or -1 when out is full.
 */
int dkim_canon_header(enum dkim_canon c, const char *raw, size_t len,
    struct buf *out);

typedef void (*dkim_sink_fn)(void *arg, const char *data, size_t len);

/*
 * Streaming body canonicalization. Feed the body in chunks of any size
 * (a CRLF may be split between chunks), then finish. The canonical octets
 * go to sink, at most limit of them when limit >= 0 (l=).
 * simple: trailing empty lines removed, one CRLF ensured at the end (an
 * empty body is CRLF). relaxed: WSP at line ends removed, other WSP runs
 * to one SP, trailing empty lines removed, a CRLF ensured after a
 * non-empty body (an empty body stays empty).
 * The struct is public for stack allocation; its fields are private.
 */
struct dkim_bodycanon {
	enum dkim_canon canon;
	dkim_sink_fn sink;
	void *arg;
	int64_t limit;
	uint64_t total;		/* canonical length, limit aside */
	uint64_t emitted;	/* octets given to sink */
	uint64_t crlfs;		/* held: line ends since content */
	bool cr;		/* a held CR */
	bool wsp;		/* a held WSP run (relaxed) */
	bool content;		/* anything but line ends so far */
	size_t olen;
	char out[4096];
};

void dkim_bodycanon_init(struct dkim_bodycanon *bc, enum dkim_canon c,
    int64_t limit, dkim_sink_fn sink, void *arg);
void dkim_bodycanon_update(struct dkim_bodycanon *bc, const char *data,
    size_t len);
/* Ends the body; returns the full canonical length (ignoring limit). */
uint64_t dkim_bodycanon_final(struct dkim_bodycanon *bc);

/*
 * The body hash of body[0..len) as sig or a signer would compute it:
 * canonicalization c, hash h, limit (-1: none). Writes the digest to md
 * (at least 32 octets) and returns its length; *total_r gets the full
 * canonical length (for l= checks; may be NULL).
 */
size_t dkim_body_hash(enum dkim_canon c, enum dkim_hash h, int64_t limit,
    const char *body, size_t len, unsigned char *md, uint64_t *total_r);

/*
 * Verification (RFC 6376 6)
 */

struct dkim_verify_opts {
	int64_t now;		/* for x=; < 0: no expiry check */
	bool allow_rsa_sha1;	/* RFC 8301 says no: off by default */
};

struct dkim_verdict {
	enum dkim_result result;
	enum dkim_reason reason;
	bool testing;		/* the key has t=y */
	bool partial_body;	/* l= left part of the body unsigned */
	enum dkim_alg alg;
};

/*
 * Verify sig (a field of m, parsed by dkim_sig_parse()) with key. Header
 * fields are selected per h= from the bottom up (a name listed more times
 * than present adds nothing: oversigning); the signature field itself is
 * never selected. Fills *v; returns 0 for pass, -1 otherwise. With
 * rsa-sha1, a signature that verifies gives DKIM_FAIL_RSA_SHA1 unless
 * opts->allow_rsa_sha1. opts may be NULL (no expiry check, no rsa-sha1).
 */
int dkim_verify(const struct dkim_msg *m, const struct dkim_sig *sig,
    const struct dkim_key *key, const struct dkim_verify_opts *opts,
    struct dkim_verdict *v);

/*
 * Signing (RFC 6376 5, RFC 8463 3)
 */

struct dkim_privkey;

/*
 * Load a private key: PEM (PKCS#8, or PKCS#1 "RSA PRIVATE KEY"), RSA or
 * Ed25519, or the base64 text of a 32-octet Ed25519 seed (dkimpy's key
 * file). RSA keys must have at least 1024 bits.
 * Returns the key (free with dkim_privkey_free()), or NULL with *error_r.
 */
struct dkim_privkey *dkim_privkey_load(const char *text, size_t len,
    const char **error_r);
void dkim_privkey_free(struct dkim_privkey *k);
enum dkim_keytype dkim_privkey_type(const struct dkim_privkey *k);

#define DKIM_SIGN_TIME_NOW	(-1)	/* t= from the clock */
#define DKIM_SIGN_TIME_NONE	(-2)	/* no t= */

struct dkim_sign_opts {
	const char *domain;		/* d=, required */
	const char *selector;		/* s=, required */
	const char *identity;		/* i=, NULL: none */
	/*
	 * h=, exactly as given (repeat a name to oversign it); NULL: the
	 * default set (dkim_sign_default_headers()).
	 */
	const char *const *headers;
	size_t nheaders;
	enum dkim_canon hcanon, bcanon;	/* relaxed/relaxed by default */
	int64_t timestamp;		/* DKIM_SIGN_TIME_NOW by default */
	uint64_t expire_after;		/* x= t= + this; 0: no x= */
	bool body_length;		/* add l= (not recommended) */
};

/* Defaults: relaxed/relaxed, t= now, the default header set. */
void dkim_sign_opts_init(struct dkim_sign_opts *o, const char *domain,
    const char *selector);

/*
 * The default h= for m, appended to names (a colon-separated list, no
 * spaces): each field of the RFC 6376 5.4.1 set (plus Message-ID,
 * MIME-Version and the Content-Type/-Transfer-Encoding that give the body
 * its meaning) as often as m has it, and From, Subject, Date, To and Cc
 * once more (oversigned: a field added later breaks the signature).
 * Returns 0, or -1 when names is full.
 */
int dkim_sign_default_headers(const struct dkim_msg *m, struct buf *names);

/*
 * Sign msg[0..len). Returns the DKIM-Signature field to prepend, "DKIM-
 * Signature: ...\r\n", folded with FWS before 76 columns (tags in
 * alphabetical order then b= on its own lines, go-msgauth's layout); the
 * caller frees it. NULL with *error_r when the message has no From field,
 * an option is invalid, or the crypto fails.
 */
char *dkim_sign(const char *msg, size_t len, const struct dkim_privkey *key,
    const struct dkim_sign_opts *o, const char **error_r);

/*
 * The b= value for a signature field written by the caller: field[0..
 * flen) is a complete DKIM-Signature field whose b= is empty (or whatever:
 * it is removed as a verifier would) and whose bh= must already be the
 * body hash of msg. The signature is computed exactly as a verifier
 * checks it, so any layout can be reproduced (RFC 8463's examples).
 * Returns the base64 value (caller frees) or NULL with *error_r.
 */
char *dkim_sign_field(const char *msg, size_t len,
    const struct dkim_privkey *key, const char *field, size_t flen,
    const char **error_r);

/*
 * Streaming (dkim_stream.c): verify and sign a message as it arrives, in
 * chunks, without holding its body. The SMTP session feeds the DATA
 * content (the exact octets the spool stores, CRLF line ends) as it
 * streams; after the final dot the verdicts need only the DNS lookups and
 * the crypto.
 *
 *   s = dkim_stream_new(max_sigs, header_max);
 *   dkim_stream_want_body(s, canon, alg);     only to sign, before feeding
 *   dkim_stream_feed(s, data, len) ...        any chunking
 *   dkim_stream_finish(s);
 *   for i < dkim_stream_nsigs(s):
 *     sig = dkim_stream_sig(s, i, &err)      err != DKIM_OK: not checked
 *     DNS TXT of dkim_stream_key_name(s, i) -> dkim_key_parse()
 *     dkim_stream_verify(s, i, key, opts, &v)
 *   dkim_stream_from(s, &values, &lens)       for dmarc_from_domains()
 *   dkim_stream_sign(s, privkey, opts, &err)  the field to prepend
 *   dkim_stream_free(s);
 *
 * Only the header section is kept (at most header_max octets); the body
 * goes through one canonicalizer and hash per distinct (body
 * canonicalization, hash, l=) among the signatures and the signer's
 * wants, so memory is bounded by header_max plus about 4 KiB per hash.
 * Results are those of dkim_msg_parse() + dkim_verify() / dkim_sign() on
 * the whole message, octet for octet.
 */

struct dkim_stream;

/*
 * max_sigs: the DKIM-Signature fields considered, in header order
 * (dkim_max_signatures; further ones are only counted, see
 * dkim_stream_nextra()). header_max: the octets of the header section,
 * its empty line included, that are kept; a longer header section makes
 * every signature a permerror (DKIM_MSG_MALFORMED, see
 * dkim_stream_header_overflow()); a message without an empty line is all
 * header section, so header_max bounds it whole. Free with
 * dkim_stream_free().
 */
struct dkim_stream *dkim_stream_new(unsigned int max_sigs, size_t header_max);
void dkim_stream_free(struct dkim_stream *s);

/*
 * Also hash the body with canonicalization c and alg's hash (no l=), for
 * dkim_stream_sign() (whose a= always uses SHA-256). Call before the body
 * starts (before any feed is safe). Returns 0, or -1 when the header
 * section has already ended (then signing with c will fail).
 */
int dkim_stream_want_body(struct dkim_stream *s, enum dkim_canon c,
    enum dkim_alg alg);

/*
 * The next len octets of the message. Lines end in CRLF; a CRLF may be
 * split between calls. The header section ends at the first empty line
 * (as in dkim_msg_parse()); the signatures are parsed then. Calling after
 * dkim_stream_finish() is a bug (fatalx).
 */
void dkim_stream_feed(struct dkim_stream *s, const char *data, size_t len);

/*
 * After the last octet (a message without an empty line is all header, its
 * body empty). Finalizes the body hashes; idempotent.
 */
void dkim_stream_finish(struct dkim_stream *s);

/*
 * The functions below need dkim_stream_finish() first (fatalx otherwise).
 * They only read s: once finished, s may be shared by threads (e.g. the
 * verifications of several signatures on workers), as long as none frees
 * it meanwhile.
 */

/* The DKIM-Signature fields considered (at most max_sigs). */
size_t dkim_stream_nsigs(const struct dkim_stream *s);

/* DKIM-Signature fields beyond max_sigs: not parsed, not checked. */
size_t dkim_stream_nextra(const struct dkim_stream *s);

/*
 * Signature i < dkim_stream_nsigs(s), in header order. *error_r (may be
 * NULL) is DKIM_OK when it can be verified, else why not: its
 * dkim_sig_parse() reason, or DKIM_MSG_MALFORMED when the header section
 * overflowed. Returns the parsed signature (owned by s; for d=, s=, a= in
 * Authentication-Results), or NULL when it did not parse.
 */
const struct dkim_sig *dkim_stream_sig(const struct dkim_stream *s, size_t i,
    enum dkim_reason *error_r);

/*
 * The DNS name of signature i's key ("<s>._domainkey.<d>", owned by s), or
 * NULL when it cannot be verified (see dkim_stream_sig()) or the name is
 * longer than DKIM_DOMAIN_MAX (dkim_key_query_name() fails: treat it as
 * DKIM_KEY_NOT_FOUND).
 */
const char *dkim_stream_key_name(const struct dkim_stream *s, size_t i);

/*
 * Verify signature i with its key (parsed by the caller from the DNS
 * answer) from the streamed body hash and the kept header section: the
 * verdict dkim_verify() gives on the whole message. A signature that
 * cannot be verified gets its dkim_stream_sig() reason (key may then be
 * NULL). Pure CPU, touches no shared state: may run on a worker thread.
 * Returns 0 for pass, -1 otherwise (*v says why).
 */
int dkim_stream_verify(const struct dkim_stream *s, size_t i,
    const struct dkim_key *key, const struct dkim_verify_opts *opts,
    struct dkim_verdict *v);

/*
 * The values of the From: fields of the header section (after the colon,
 * folded as written, without the final CRLF), in order, for
 * dmarc_from_domains(). *values_r and *lens_r are owned by s and point
 * into its kept header section. Returns their number.
 */
size_t dkim_stream_from(const struct dkim_stream *s,
    const char *const **values_r, const size_t **lens_r);

/*
 * Whether the header section was longer than header_max. Then only the
 * complete fields of the kept part but the last (which may continue)
 * were read: every signature among them is DKIM_MSG_MALFORMED, the From:
 * values are those of that part, and dkim_stream_sign() fails.
 */
bool dkim_stream_header_overflow(const struct dkim_stream *s);

/*
 * DKIM_OK, or DKIM_MSG_MALFORMED when the header section overflowed or has
 * more than DKIM_MSG_FIELDS_MAX fields (then no signature is found,
 * exactly as dkim_msg_parse() refuses the whole message).
 */
enum dkim_reason dkim_stream_header_error(const struct dkim_stream *s);

/*
 * dkim_sign() on the streamed message: the DKIM-Signature field to
 * prepend, byte for byte what dkim_sign() gives on the whole message with
 * the same options. Needs dkim_stream_want_body(s, o->bcanon, a= of key)
 * before the body started; NULL with *error_r otherwise, on overflow, or
 * for dkim_sign()'s reasons. The caller frees the field.
 */
char *dkim_stream_sign(const struct dkim_stream *s,
    const struct dkim_privkey *key, const struct dkim_sign_opts *o,
    const char **error_r);

#endif
