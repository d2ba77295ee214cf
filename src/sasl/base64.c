/*
 * base64.c: strict base64 for SASL responses and challenges, over
 * OpenSSL's EVP_DecodeBlock/EVP_EncodeBlock.
 *
 * Entry points: sasl_base64_decode(), sasl_base64_encode().
 *
 * EVP_DecodeBlock alone is lenient: it skips leading and trailing white
 * space, keeps the pad bytes in its output length, and accepts non-zero
 * bits under the padding. The checks here come first, so that OpenSSL
 * only ever sees canonical input and the pad count is known.
 *
 * SECURITY: decodes untrusted network input into a buffer the caller
 * sized with SASL_BASE64_DECODED_MAX(); checked before any write.
 * STANDARDS: RFC 4648 4 (alphabet, padding), 3.3 (characters outside the
 * alphabet are refused), 3.5 (canonical encoding: pad bits are zero).
 * OWNERSHIP: no allocation.
 */
#include "sasl/sasl.h"

#include <limits.h>
#include <string.h>

#include <openssl/evp.h>

/* The value of a base64 character, or -1. */
static int
sasl_base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
sasl_base64_decode(const char *in, size_t len, unsigned char *out,
    size_t outsize, size_t *outlen_r)
{
	size_t i, pad = 0;
	int n;

	if (len % 4 != 0 || len > INT_MAX ||
	    outsize < SASL_BASE64_DECODED_MAX(len))
		return -1;
	if (len == 0) {
		*outlen_r = 0;
		return 0;
	}
	if (in[len - 1] == '=')
		pad = in[len - 2] == '=' ? 2 : 1;
	for (i = 0; i < len - pad; i++)
		if (sasl_base64_value((unsigned char)in[i]) == -1)
			return -1;
	/* The bits below the padding must be zero (RFC 4648 3.5). */
	if (pad == 2 && (sasl_base64_value((unsigned char)in[len - 3]) &
	    0x0f) != 0)
		return -1;
	if (pad == 1 && (sasl_base64_value((unsigned char)in[len - 2]) &
	    0x03) != 0)
		return -1;
	n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if (n < 0 || (size_t)n != SASL_BASE64_DECODED_MAX(len))
		return -1;
	*outlen_r = (size_t)n - pad;
	return 0;
}

int
sasl_base64_encode(const unsigned char *in, size_t len, char *out,
    size_t outsize)
{
	int n;

	if (len > (size_t)INT_MAX / 4 * 3 - 3 ||
	    outsize < SASL_BASE64_ENCODED_SIZE(len))
		return -1;
	if (len == 0) {
		out[0] = '\0';
		return 0;
	}
	n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	if (n < 0)
		return -1;
	return n;
}
