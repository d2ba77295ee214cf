/*
 * base64.h: base64 (RFC 4648 4) over OpenSSL, the one helper every
 * subsystem uses: SMTP AUTH exchanges (strict, canonical), DKIM tags and
 * key records (folding white space allowed).
 */
#ifndef PETREL_LIB_BASE64_H
#define PETREL_LIB_BASE64_H

#include <stddef.h>

/* SP, HTAB, CR and LF anywhere are skipped (RFC 6376 2.4). */
#define BASE64_FWS		0x01
/*
 * The bits under the padding must be zero (RFC 4648 3.5), so that every
 * octet string has exactly one accepted encoding (SMTP AUTH).
 */
#define BASE64_CANONICAL	0x02

/* The most octets base64_decode() writes for len characters. */
#define BASE64_DECODED_MAX(len)		(((len) / 4 + 1) * 3)
/* Octets, NUL included, base64_encode() writes for len octets. */
#define BASE64_ENCODED_SIZE(len)	(((len) + 2) / 3 * 4 + 1)

/*
 * Decode in[0..len) (need not be NUL-terminated) into out (outsize >=
 * BASE64_DECODED_MAX(len)). What remains after BASE64_FWS skipping must be
 * whole groups of four characters of the base64 alphabet, with at most
 * two '=' and only at the very end; without BASE64_FWS any white space is
 * an invalid character. Empty text decodes to zero octets. Returns 0 and
 * *outlen_r, or -1 with *error_r (when not NULL) set to a static phrase:
 * "invalid character", "bad padding", "truncated", "non-canonical
 * padding bits", "too long", "output buffer too small". out is not
 * NUL-terminated.
 */
int base64_decode(const char *in, size_t len, unsigned int flags,
    unsigned char *out, size_t outsize, size_t *outlen_r,
    const char **error_r);

/*
 * Encode in[0..len) into out (outsize >= BASE64_ENCODED_SIZE(len)),
 * padded and NUL-terminated. Returns the length of the text, or -1 if out
 * is too small or len too large.
 */
int base64_encode(const unsigned char *in, size_t len, char *out,
    size_t outsize);

#endif
