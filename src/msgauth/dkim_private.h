/*
 * dkim_private.h: what the dkim*.c files share and nobody else uses.
 */
#ifndef PETREL_MSGAUTH_DKIM_PRIVATE_H
#define PETREL_MSGAUTH_DKIM_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "msgauth/dkim.h"

/* dkim_sig_parse_flags(): a template for signing may have an empty b=. */
#define DKIM_SIG_PARSE_EMPTY_B	0x01

int dkim_sig_parse_flags(const char *field, size_t len, unsigned int flags,
    struct dkim_sig **sig_r, enum dkim_reason *reason_r);

/* RFC 5321 sub-domain labels joined by dots (d= needs two labels). */
bool dkim_is_domain(const char *s, size_t len, bool two_labels);
/* The same, '_' allowed in labels (selectors in the wild). */
bool dkim_is_selector(const char *s, size_t len);

const EVP_MD *dkim_hash_md(enum dkim_hash h);

/*
 * The hash of the canonical header data sig covers in m: the fields h=
 * selects (bottom up, oversigned names add nothing, sig's own field never
 * selected), then sig's field with the b= value removed and no final CRLF.
 * md must hold EVP_MAX_MD_SIZE octets. Returns 0, or -1 (crypto failure).
 */
int dkim_header_hash(const struct dkim_msg *m, const struct dkim_sig *sig,
    unsigned char *md, unsigned int *mdlen_r);

/*
 * A body hash computed elsewhere (dkim_stream.c hashes the body as it
 * streams): the digest and the full canonical length (for l= checks).
 */
struct dkim_bodyhash {
	unsigned char md[EVP_MAX_MD_SIZE];
	size_t mdlen;
	uint64_t total;
};

/*
 * dkim_verify() with the body hash given: bd must be the hash of m's body
 * with sig's body canonicalization, hash and l=; m->body is not read.
 * bd NULL: dkim_verify() itself.
 */
int dkim_verify_bodyhash(const struct dkim_msg *m, const struct dkim_sig *sig,
    const struct dkim_bodyhash *bd, const struct dkim_key *key,
    const struct dkim_verify_opts *opts, struct dkim_verdict *v);

/*
 * dkim_sign() with the body hash given: bd must be the hash of the body
 * with o->bcanon, SHA-256 and no limit; m->body is not read.
 */
char *dkim_sign_bodyhash(const struct dkim_msg *m,
    const struct dkim_bodyhash *bd, const struct dkim_privkey *key,
    const struct dkim_sign_opts *o, const char **error_r);

#endif
