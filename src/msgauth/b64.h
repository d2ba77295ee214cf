/*
 * b64.h: base64 (RFC 4648 4) over OpenSSL, as DKIM needs it: the decoder
 * skips folding white space anywhere in the text and checks the padding.
 */
#ifndef PETREL_MSGAUTH_B64_H
#define PETREL_MSGAUTH_B64_H

#include <stddef.h>

/* The most octets b64_decode() can produce from len characters. */
#define B64_DECODED_MAX(len)	(((len) / 4 + 1) * 3)

/*
 * Decode in[0..len). SP, HTAB, CR and LF are skipped wherever they appear
 * (RFC 6376 2.4: base64 values in tags may be folded). The remaining text
 * must be whole groups of four characters from the base64 alphabet, with
 * at most two '=' and only at the very end. Empty text decodes to zero
 * octets.
 * Returns 0 with *out_r set to a buffer of *outlen_r octets (the caller
 * frees it; never NULL on success, even for zero octets), or -1 with
 * *error_r set to a static description ("invalid character", "bad
 * padding", "truncated").
 */
int b64_decode(const char *in, size_t len, unsigned char **out_r,
    size_t *outlen_r, const char **error_r);

/* The base64 text of in[0..len), padded, NUL-terminated; caller frees. */
char *b64_encode(const unsigned char *in, size_t len);

#endif
