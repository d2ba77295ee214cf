/*
 * base64.c: base64 over OpenSSL's EVP_DecodeBlock/EVP_EncodeBlock.
 *
 * Entry points: base64_decode(), base64_encode().
 *
 * OpenSSL's block decoder is lenient (it skips leading and trailing white
 * space and does not care where '=' stands), so the text is checked here
 * first: alphabet, length, the place of '=', and with BASE64_CANONICAL
 * the bits under the padding. White space is removed (BASE64_FWS) into a
 * copy that OpenSSL then decodes.
 *
 * SECURITY: decodes untrusted text (AUTH responses, DKIM b=/bh=, key
 * records). Every read is bounded by len; out is checked against the
 * largest result before anything is written.
 * STANDARDS: RFC 4648 4 and 3.5; RFC 6376 2.4 (base64 with FWS).
 * OWNERSHIP: the caller owns both buffers.
 */
#include "lib/base64.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "lib/util.h"

/* The value of a base64 character, or -1. */
static int
base64_value(unsigned char c)
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

static int
base64_fail(const char **error_r, const char *why)
{
	if (error_r != NULL)
		*error_r = why;
	return -1;
}

int
base64_decode(const char *in, size_t len, unsigned int flags,
    unsigned char *out, size_t outsize, size_t *outlen_r,
    const char **error_r)
{
	unsigned char *clean;
	size_t i, n = 0, pad = 0;
	int got, last;

	if (len > INT_MAX / 2)
		return base64_fail(error_r, "too long");
	if (outsize < BASE64_DECODED_MAX(len))
		return base64_fail(error_r, "output buffer too small");
	clean = xmalloc(len + 1);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if ((flags & BASE64_FWS) &&
		    (c == ' ' || c == '\t' || c == '\r' || c == '\n'))
			continue;
		if (c == '=')
			pad++;
		else if (base64_value(c) == -1 || pad > 0) {
			/* Nothing but padding may follow padding. */
			free(clean);
			return base64_fail(error_r, pad > 0 ? "bad padding" :
			    "invalid character");
		}
		clean[n++] = c;
	}
	if (pad > 2 || (n % 4 != 0 && pad > 0)) {
		free(clean);
		return base64_fail(error_r, "bad padding");
	}
	if (n % 4 != 0) {
		free(clean);
		return base64_fail(error_r, "truncated");
	}
	if (n == 0) {
		free(clean);
		*outlen_r = 0;
		return 0;
	}
	if (flags & BASE64_CANONICAL) {
		last = base64_value(clean[n - 1 - pad]);
		if ((pad == 2 && (last & 0x0f) != 0) ||
		    (pad == 1 && (last & 0x03) != 0)) {
			free(clean);
			return base64_fail(error_r,
			    "non-canonical padding bits");
		}
	}
	got = EVP_DecodeBlock(out, clean, (int)n);
	free(clean);
	if (got < 0 || (size_t)got != n / 4 * 3)
		return base64_fail(error_r, "invalid character");
	*outlen_r = (size_t)got - pad;
	return 0;
}

int
base64_encode(const unsigned char *in, size_t len, char *out,
    size_t outsize)
{
	int n;

	if (len > (size_t)INT_MAX / 4 * 3 - 3 ||
	    outsize < BASE64_ENCODED_SIZE(len))
		return -1;
	if (len == 0) {
		out[0] = '\0';
		return 0;
	}
	n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return n < 0 ? -1 : n;
}
