/*
 * dkim_verify.c: one DKIM signature checked against its key.
 *
 * Entry points: dkim_verify(); dkim_verify_bodyhash() (dkim_private.h,
 * for dkim_stream.c: the body hash computed while the body streamed).
 *
 * The checks that need no crypto come first (key type, the key's h=, t=s,
 * x=), then the body hash, then the signature over the header hash. For
 * ed25519-sha256 the signed data is the SHA-256 hash itself (RFC 8463 3:
 * PureEdDSA over the hash); for RSA it is PKCS#1 v1.5 over the hash.
 *
 * SECURITY: runs over untrusted messages, signatures and keys; the key
 * sizes are bounded by dkim_key_parse(), the signature size by
 * dkim_sig_parse(). The comparison of body hashes need not be constant
 * time: both are public.
 * STANDARDS: RFC 6376 6.1 (verification), 3.5 (x=, l=), 3.6.1 (key h=,
 * t=s); RFC 8301 (rsa-sha1 is not valid); RFC 8463 3.
 * OWNERSHIP: nothing is kept; the verdict is filled in place.
 */
#include "msgauth/dkim.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "lib/util.h"
#include "msgauth/dkim_private.h"

static bool
dkim_verify_crypto(const struct dkim_sig *sig, const struct dkim_key *key,
    const unsigned char *md, size_t mdlen)
{
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *mctx = NULL;
	bool ok = false;

	if (key->type == DKIM_KEY_ED25519) {
		if ((mctx = EVP_MD_CTX_new()) != NULL &&
		    EVP_DigestVerifyInit(mctx, NULL, NULL, NULL,
		    key->pkey) == 1 &&
		    EVP_DigestVerify(mctx, sig->b, sig->blen, md,
		    mdlen) == 1)
			ok = true;
		EVP_MD_CTX_free(mctx);
		ERR_clear_error();
		return ok;
	}
	if ((pctx = EVP_PKEY_CTX_new(key->pkey, NULL)) != NULL &&
	    EVP_PKEY_verify_init(pctx) == 1 &&
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1 &&
	    EVP_PKEY_CTX_set_signature_md(pctx,
	    dkim_hash_md(dkim_alg_hash(sig->alg))) == 1 &&
	    EVP_PKEY_verify(pctx, sig->b, sig->blen, md, mdlen) == 1)
		ok = true;
	EVP_PKEY_CTX_free(pctx);
	/* A failed check queues errors; TLS code must not see them. */
	ERR_clear_error();
	return ok;
}

/* bd: the body hash computed by the caller (streaming), or NULL. */
static enum dkim_reason
dkim_verify_reason(const struct dkim_msg *m, const struct dkim_sig *sig,
    const struct dkim_bodyhash *bd, const struct dkim_key *key,
    const struct dkim_verify_opts *opts, struct dkim_verdict *v)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	size_t bhlen;
	uint64_t total;

	if (dkim_alg_keytype(sig->alg) != key->type)
		return DKIM_FAIL_KEY_MISMATCH;
	if (!(key->hashes & dkim_alg_hash(sig->alg)))
		return DKIM_FAIL_HASH_NOT_ALLOWED;
	/* RFC 6376 3.6.1 t=s: the i= domain must be d= itself. */
	if (key->strict && ascii_strcasecmp(sig->identity_domain,
	    sig->domain) != 0)
		return DKIM_FAIL_STRICT_IDENTITY;
	if (opts != NULL && opts->now >= 0 && sig->expiration >= 0 &&
	    opts->now > sig->expiration)
		return DKIM_FAIL_EXPIRED;

	if (bd != NULL) {
		bhlen = bd->mdlen;
		memcpy(md, bd->md, bhlen);
		total = bd->total;
	} else
		bhlen = dkim_body_hash(sig->bcanon, dkim_alg_hash(sig->alg),
		    sig->length, m->body, m->bodylen, md, &total);
	if (sig->length >= 0) {
		/* RFC 6376 3.5 l=: the body must be at least that long. */
		if (total < (uint64_t)sig->length)
			return DKIM_FAIL_BODY_TOO_SHORT;
		v->partial_body = total > (uint64_t)sig->length;
	}
	if (bhlen != sig->bhlen || memcmp(md, sig->bh, bhlen) != 0)
		return DKIM_FAIL_BODY_HASH;

	if (dkim_header_hash(m, sig, md, &mdlen) == -1 ||
	    !dkim_verify_crypto(sig, key, md, mdlen))
		return DKIM_FAIL_SIGNATURE;
	if (sig->alg == DKIM_ALG_RSA_SHA1 &&
	    (opts == NULL || !opts->allow_rsa_sha1))
		return DKIM_FAIL_RSA_SHA1;
	return DKIM_OK;
}

int
dkim_verify_bodyhash(const struct dkim_msg *m, const struct dkim_sig *sig,
    const struct dkim_bodyhash *bd, const struct dkim_key *key,
    const struct dkim_verify_opts *opts, struct dkim_verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->alg = sig->alg;
	v->testing = key->testing;
	v->reason = dkim_verify_reason(m, sig, bd, key, opts, v);
	v->result = dkim_reason_result(v->reason);
	return v->reason == DKIM_OK ? 0 : -1;
}

int
dkim_verify(const struct dkim_msg *m, const struct dkim_sig *sig,
    const struct dkim_key *key, const struct dkim_verify_opts *opts,
    struct dkim_verdict *v)
{
	return dkim_verify_bodyhash(m, sig, NULL, key, opts, v);
}
