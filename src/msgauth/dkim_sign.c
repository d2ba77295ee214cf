/*
 * dkim_sign.c: DKIM signing with RSA or Ed25519 keys.
 *
 * Entry points: dkim_privkey_load(), dkim_privkey_free(),
 * dkim_privkey_type(), dkim_sign_opts_init(), dkim_sign_default_headers(),
 * dkim_sign(), dkim_sign_field(); dkim_sign_bodyhash() (dkim_private.h, for
 * dkim_stream.c: the body hash computed while the body streamed).
 *
 * The signer writes its field with an empty b=, parses it back with the
 * verifier's parser and computes the signature over exactly what a
 * verifier will hash (dkim_header_hash()), so signer and verifier cannot
 * disagree about the bytes. The layout is go-msgauth's (tags in
 * alphabetical order, "; "-separated, a new line before a tag that would
 * pass 75 columns, b= last on lines of 75), so its published outputs are
 * reproduced byte for byte; an h= too long for one line is folded after
 * its colons.
 *
 * SECURITY: runs on messages from authenticated or trusted senders, with
 * the daemon's private keys (read at start-up, given here in memory). Key
 * text is wiped after decoding a seed.
 * STANDARDS: RFC 6376 3.5, 3.7, 5 (signing), 5.4.1 (fields to sign), 5.4.2
 * (oversigning); RFC 8463 3 (ed25519-sha256: PureEdDSA over the SHA-256
 * hash); RFC 8301 (rsa-sha256, 1024 bits at least; we never sign sha1).
 * OWNERSHIP: struct dkim_privkey owns its EVP_PKEY; results are heap
 * strings the caller frees.
 */
#include "msgauth/dkim.h"

#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "msgauth/b64.h"
#include "msgauth/dkim_private.h"

#define DKIM_SIGN_FOLD	75	/* go-msgauth's line width */
#define DKIM_SIGN_FIELD_MAX	(64 * 1024)

struct dkim_privkey {
	EVP_PKEY *pkey;
	enum dkim_keytype type;
};

/* RFC 6376 5.4.1, plus the fields that give the body its meaning. */
static const char *const dkim_default_headers[] = {
	"From", "Reply-To", "Subject", "Date", "To", "Cc",
	"Resent-Date", "Resent-From", "Resent-Sender", "Resent-To",
	"Resent-Cc", "In-Reply-To", "References", "List-Id", "List-Help",
	"List-Unsubscribe", "List-Subscribe", "List-Post", "List-Owner",
	"List-Archive", "Message-ID", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding",
};

/* Signed once more than present, so that none can be added. */
static const char *const dkim_oversigned[] = {
	"From", "Subject", "Date", "To", "Cc",
};

/* Never ask a terminal for a pass phrase: encrypted keys are refused. */
static int
dkim_pem_nopass(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return -1;
}

struct dkim_privkey *
dkim_privkey_load(const char *text, size_t len, const char **error_r)
{
	struct dkim_privkey *k;
	EVP_PKEY *pkey = NULL;
	unsigned char *seed;
	size_t seedlen;
	const char *err;
	BIO *bio;
	int id;

	if (len > INT32_MAX) {
		*error_r = "key file too large";
		return NULL;
	}
	if (memmem(text, len, "-----BEGIN", 10) != NULL) {
		if ((bio = BIO_new_mem_buf(text, (int)len)) == NULL) {
			*error_r = "out of memory";
			return NULL;
		}
		pkey = PEM_read_bio_PrivateKey(bio, NULL, dkim_pem_nopass,
		    NULL);
		BIO_free(bio);
		if (pkey == NULL) {
			ERR_clear_error();
			*error_r = "not a PEM private key (or encrypted)";
			return NULL;
		}
	} else if (b64_decode(text, len, &seed, &seedlen, &err) == 0) {
		/* dkimpy's Ed25519 key file: the base64 seed. */
		if (seedlen == 32)
			pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519,
			    NULL, seed, seedlen);
		OPENSSL_cleanse(seed, seedlen);
		free(seed);
		if (pkey == NULL) {
			ERR_clear_error();
			*error_r = "not a PEM key or an Ed25519 seed";
			return NULL;
		}
	} else {
		*error_r = "not a PEM key or an Ed25519 seed";
		return NULL;
	}
	id = EVP_PKEY_get_base_id(pkey);
	if (id != EVP_PKEY_RSA && id != EVP_PKEY_ED25519) {
		EVP_PKEY_free(pkey);
		*error_r = "key is neither RSA nor Ed25519";
		return NULL;
	}
	if (id == EVP_PKEY_RSA && EVP_PKEY_get_bits(pkey) < DKIM_RSA_MIN_BITS) {
		EVP_PKEY_free(pkey);
		*error_r = "RSA key under 1024 bits";
		return NULL;
	}
	k = xcalloc(1, sizeof(*k));
	k->pkey = pkey;
	k->type = id == EVP_PKEY_RSA ? DKIM_KEY_RSA : DKIM_KEY_ED25519;
	return k;
}

void
dkim_privkey_free(struct dkim_privkey *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

enum dkim_keytype
dkim_privkey_type(const struct dkim_privkey *k)
{
	return k->type;
}

void
dkim_sign_opts_init(struct dkim_sign_opts *o, const char *domain,
    const char *selector)
{
	memset(o, 0, sizeof(*o));
	o->domain = domain;
	o->selector = selector;
	o->hcanon = DKIM_CANON_RELAXED;
	o->bcanon = DKIM_CANON_RELAXED;
	o->timestamp = DKIM_SIGN_TIME_NOW;
}

static size_t
dkim_count_fields(const struct dkim_msg *m, const char *name)
{
	size_t i, n = 0;

	for (i = 0; i < m->nhdrs; i++)
		if (dkim_hdr_is(&m->hdrs[i], name))
			n++;
	return n;
}

int
dkim_sign_default_headers(const struct dkim_msg *m, struct buf *names)
{
	size_t i, j, n;

	for (i = 0; i < nitems(dkim_default_headers); i++) {
		const char *name = dkim_default_headers[i];

		n = dkim_count_fields(m, name);
		for (j = 0; j < nitems(dkim_oversigned); j++)
			if (strcmp(dkim_oversigned[j], name) == 0)
				n++;
		for (j = 0; j < n; j++)
			if (buf_printf(names, "%s%s",
			    names->len > 0 ? ":" : "", name) == -1)
				return -1;
	}
	return 0;
}

/* The signature over m for sig (parsed from our own field). */
static char *
dkim_sign_compute(const struct dkim_msg *m, const struct dkim_sig *sig,
    const struct dkim_privkey *key, const char **error_r)
{
	unsigned char md[EVP_MAX_MD_SIZE], *out = NULL;
	unsigned int mdlen;
	size_t outlen = 0;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *mctx = NULL;
	char *b64 = NULL;
	bool ok = false;

	if (dkim_alg_keytype(sig->alg) != key->type) {
		*error_r = "a= does not match the key type";
		return NULL;
	}
	if (dkim_header_hash(m, sig, md, &mdlen) == -1) {
		*error_r = "header hash failed";
		return NULL;
	}
	if (key->type == DKIM_KEY_ED25519) {
		/* RFC 8463 3: Ed25519 (pure) over the SHA-256 hash. */
		if ((mctx = EVP_MD_CTX_new()) != NULL &&
		    EVP_DigestSignInit(mctx, NULL, NULL, NULL,
		    key->pkey) == 1 &&
		    EVP_DigestSign(mctx, NULL, &outlen, md, mdlen) == 1) {
			out = xmalloc(outlen);
			ok = EVP_DigestSign(mctx, out, &outlen, md,
			    mdlen) == 1;
		}
	} else {
		if ((pctx = EVP_PKEY_CTX_new(key->pkey, NULL)) != NULL &&
		    EVP_PKEY_sign_init(pctx) == 1 &&
		    EVP_PKEY_CTX_set_rsa_padding(pctx,
		    RSA_PKCS1_PADDING) == 1 &&
		    EVP_PKEY_CTX_set_signature_md(pctx,
		    dkim_hash_md(dkim_alg_hash(sig->alg))) == 1 &&
		    EVP_PKEY_sign(pctx, NULL, &outlen, md, mdlen) == 1) {
			out = xmalloc(outlen);
			ok = EVP_PKEY_sign(pctx, out, &outlen, md,
			    mdlen) == 1;
		}
	}
	EVP_MD_CTX_free(mctx);
	EVP_PKEY_CTX_free(pctx);
	if (ok)
		b64 = b64_encode(out, outlen);
	else
		*error_r = "signing failed";
	/* Leave no error behind for TLS code on this thread to misread. */
	ERR_clear_error();
	free(out);
	return b64;
}

char *
dkim_sign_field(const char *msg, size_t len, const struct dkim_privkey *key,
    const char *field, size_t flen, const char **error_r)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	struct dkim_sig *sig;
	struct dkim_msg m;
	enum dkim_reason r;
	size_t mdlen;
	char *b64 = NULL;

	if (dkim_sig_parse_flags(field, flen, DKIM_SIG_PARSE_EMPTY_B, &sig,
	    &r) == -1) {
		*error_r = dkim_reason_str(r);
		return NULL;
	}
	if (dkim_msg_parse(msg, len, &m, &r) == -1) {
		dkim_sig_free(sig);
		*error_r = dkim_reason_str(r);
		return NULL;
	}
	mdlen = dkim_body_hash(sig->bcanon, dkim_alg_hash(sig->alg),
	    sig->length, m.body, m.bodylen, md, NULL);
	if (mdlen != sig->bhlen || memcmp(md, sig->bh, mdlen) != 0)
		*error_r = "bh= is not the body hash";
	else
		b64 = dkim_sign_compute(&m, sig, key, error_r);
	dkim_msg_free(&m);
	dkim_sig_free(sig);
	return b64;
}

/*
 * go-msgauth's layout: a tag goes on a new line when 3 + the line so far +
 * its name and value would pass 75 (the field name does not count).
 */
struct dkim_layout {
	struct buf *out;
	size_t line;		/* length of the current line */
};

static int
dkim_layout_tag(struct dkim_layout *lo, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	const char *p, *colon;

	if (3 + lo->line + nl + vl > DKIM_SIGN_FOLD && lo->line > 0) {
		if (buf_append(lo->out, "\r\n", 2) == -1)
			return -1;
		lo->line = 0;
	}
	if (3 + nl + vl <= DKIM_SIGN_FOLD || strcmp(name, "h") != 0) {
		lo->line += 3 + nl + vl;
		return buf_printf(lo->out, " %s=%s;", name, value);
	}
	/* A long h=: fold after colons (FWS is allowed there). */
	if (buf_printf(lo->out, " %s=", name) == -1)
		return -1;
	lo->line = 2 + nl;
	for (p = value; *p != '\0'; p = colon + 1) {
		size_t n;

		colon = strchr(p, ':');
		n = colon ? (size_t)(colon - p) + 1 : strlen(p) + 1;
		if (lo->line + n > DKIM_SIGN_FOLD && lo->line > 1) {
			if (buf_append(lo->out, "\r\n ", 3) == -1)
				return -1;
			lo->line = 1;
		}
		if (buf_append(lo->out, p, n - (colon ? 0 : 1)) == -1)
			return -1;
		lo->line += n;
		if (colon == NULL)
			break;
	}
	return buf_append(lo->out, ";", 1);
}

/* b= on lines of 75 (" b=" counted), then CRLF. */
static int
dkim_layout_b(struct buf *out, const char *b64)
{
	struct buf t;
	size_t i, n;
	int rc = 0;

	buf_init(&t, DKIM_SIGN_FIELD_MAX);
	if (buf_printf(&t, " b=%s", b64) == -1) {
		buf_free(&t);
		return -1;
	}
	if (buf_append(out, "\r\n", 2) == -1)
		rc = -1;
	for (i = 0; rc == 0 && i < t.len; i += n) {
		n = t.len - i > DKIM_SIGN_FOLD ? DKIM_SIGN_FOLD : t.len - i;
		if (i > 0 && buf_append(out, "\r\n ", 3) == -1)
			rc = -1;
		else if (buf_append(out, t.data + i, n) == -1)
			rc = -1;
	}
	if (rc == 0 && buf_append(out, "\r\n", 2) == -1)
		rc = -1;
	buf_free(&t);
	return rc;
}

static int
dkim_sign_check_opts(const struct dkim_sign_opts *o, const char **error_r)
{
	if (o->domain == NULL || !dkim_is_domain(o->domain,
	    strlen(o->domain), true)) {
		*error_r = "invalid signing domain";
		return -1;
	}
	if (o->selector == NULL || !dkim_is_selector(o->selector,
	    strlen(o->selector))) {
		*error_r = "invalid selector";
		return -1;
	}
	return 0;
}

char *
dkim_sign(const char *msg, size_t len, const struct dkim_privkey *key,
    const struct dkim_sign_opts *o, const char **error_r)
{
	struct dkim_bodyhash bd;
	struct dkim_msg m;
	enum dkim_reason r;
	char *ret;

	if (dkim_sign_check_opts(o, error_r) == -1)
		return NULL;
	if (dkim_msg_parse(msg, len, &m, &r) == -1) {
		*error_r = dkim_reason_str(r);
		return NULL;
	}
	bd.mdlen = dkim_body_hash(o->bcanon, DKIM_HASH_SHA256, -1, m.body,
	    m.bodylen, bd.md, &bd.total);
	ret = dkim_sign_bodyhash(&m, &bd, key, o, error_r);
	dkim_msg_free(&m);
	return ret;
}

char *
dkim_sign_bodyhash(const struct dkim_msg *m, const struct dkim_bodyhash *bd,
    const struct dkim_privkey *key, const struct dkim_sign_opts *o,
    const char **error_r)
{
	char bh[EVP_MAX_MD_SIZE * 2], num[3][24], *b64 = NULL, *bhtxt, *ret;
	const char *tags[12][2];
	struct dkim_layout lo;
	struct buf names, field;
	struct dkim_sig *sig = NULL;
	enum dkim_reason r;
	enum dkim_alg alg;
	uint64_t total = bd->total;
	size_t i, n = 0;
	int64_t t;

	if (dkim_sign_check_opts(o, error_r) == -1)
		return NULL;
	if (dkim_count_fields(m, "From") == 0) {
		*error_r = "message has no From field";
		return NULL;
	}
	buf_init(&names, DKIM_SIGN_FIELD_MAX);
	buf_init(&field, DKIM_SIGN_FIELD_MAX);
	ret = NULL;
	if (o->headers == NULL) {
		if (dkim_sign_default_headers(m, &names) == -1)
			goto toolong;
	} else {
		for (i = 0; i < o->nheaders; i++)
			if (buf_printf(&names, "%s%s", i > 0 ? ":" : "",
			    o->headers[i]) == -1)
				goto toolong;
	}

	alg = key->type == DKIM_KEY_ED25519 ? DKIM_ALG_ED25519_SHA256 :
	    DKIM_ALG_RSA_SHA256;
	bhtxt = b64_encode(bd->md, bd->mdlen);
	strlcpy(bh, bhtxt, sizeof(bh));
	free(bhtxt);

	t = o->timestamp;
	if (t == DKIM_SIGN_TIME_NOW)
		t = (int64_t)time(NULL);

	/* Alphabetical, as go-msgauth writes them. */
	tags[n][0] = "a";
	tags[n++][1] = dkim_alg_str(alg);
	tags[n][0] = "bh";
	tags[n++][1] = bh;
	tags[n][0] = "c";
	tags[n++][1] = o->hcanon == DKIM_CANON_RELAXED ?
	    (o->bcanon == DKIM_CANON_RELAXED ? "relaxed/relaxed" :
	    "relaxed/simple") : (o->bcanon == DKIM_CANON_RELAXED ?
	    "simple/relaxed" : "simple/simple");
	tags[n][0] = "d";
	tags[n++][1] = o->domain;
	tags[n][0] = "h";
	tags[n++][1] = buf_str(&names);
	if (o->identity != NULL) {
		tags[n][0] = "i";
		tags[n++][1] = o->identity;
	}
	if (o->body_length) {
		snprintf(num[0], sizeof(num[0]), "%llu",
		    (unsigned long long)total);
		tags[n][0] = "l";
		tags[n++][1] = num[0];
	}
	tags[n][0] = "s";
	tags[n++][1] = o->selector;
	if (t >= 0) {
		snprintf(num[1], sizeof(num[1]), "%lld", (long long)t);
		tags[n][0] = "t";
		tags[n++][1] = num[1];
	}
	tags[n][0] = "v";
	tags[n++][1] = "1";
	if (t >= 0 && o->expire_after > 0) {
		snprintf(num[2], sizeof(num[2]), "%llu",
		    (unsigned long long)((uint64_t)t + o->expire_after));
		tags[n][0] = "x";
		tags[n++][1] = num[2];
	}

	if (buf_append_str(&field, "DKIM-Signature:") == -1)
		goto toolong;
	lo.out = &field;
	lo.line = 0;
	for (i = 0; i < n; i++)
		if (dkim_layout_tag(&lo, tags[i][0], tags[i][1]) == -1)
			goto toolong;
	/* The field as hashed: b= empty ("\r\n b=" then the end). */
	if (buf_append_str(&field, "\r\n b=\r\n") == -1)
		goto toolong;
	if (dkim_sig_parse_flags(field.data, field.len,
	    DKIM_SIG_PARSE_EMPTY_B, &sig, &r) == -1) {
		*error_r = dkim_reason_str(r);
		goto done;
	}
	if ((b64 = dkim_sign_compute(m, sig, key, error_r)) == NULL)
		goto done;
	field.len -= strlen("\r\n b=\r\n");
	field.data[field.len] = '\0';
	if (dkim_layout_b(&field, b64) == -1)
		goto toolong;
	ret = xstrdup(buf_str(&field));
	goto done;
toolong:
	*error_r = "signature field too long";
done:
	free(b64);
	dkim_sig_free(sig);
	buf_free(&names);
	buf_free(&field);
	return ret;
}
