/*
 * b64.c: the one base64 decoder and encoder of the msgauth library, over
 * OpenSSL's EVP_DecodeBlock()/EVP_EncodeBlock().
 *
 * Entry points: b64_decode(), b64_encode().
 *
 * EVP_DecodeBlock() on its own is too lenient for DKIM (it trims only the
 * ends, accepts a length that is not a multiple of four in some versions
 * and reports the padding as zero octets), so the text is first copied
 * without its white space and checked here: alphabet, length, and where
 * '=' may stand. OpenSSL then does the arithmetic.
 *
 * SECURITY: decodes untrusted text (DKIM-Signature b=/bh=, DNS p=). Every
 * read is bounded by len; the output is sized from the input before
 * decoding.
 * STANDARDS: RFC 4648 4; RFC 6376 2.4 (base64string with FWS).
 * OWNERSHIP: both functions return heap buffers the caller frees.
 */
#include "msgauth/b64.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "lib/log.h"
#include "lib/util.h"

static bool
b64_is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int
b64_decode(const char *in, size_t len, unsigned char **out_r,
    size_t *outlen_r, const char **error_r)
{
	unsigned char *clean, *out;
	size_t i, n = 0, pad = 0;
	int got;

	*out_r = NULL;
	*outlen_r = 0;
	if (len > INT_MAX / 2) {
		*error_r = "too long";
		return -1;
	}
	clean = xmalloc(len + 1);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			pad++;
		} else if (!b64_is_alpha(c) || pad > 0) {
			/* Nothing but padding may follow padding. */
			*error_r = pad > 0 ? "bad padding" :
			    "invalid character";
			free(clean);
			return -1;
		}
		clean[n++] = c;
	}
	if (pad > 2) {
		*error_r = "bad padding";
		free(clean);
		return -1;
	}
	if (n % 4 != 0) {
		*error_r = pad > 0 ? "bad padding" : "truncated";
		free(clean);
		return -1;
	}
	out = xmalloc(B64_DECODED_MAX(n));
	if (n == 0) {
		free(clean);
		*out_r = out;
		return 0;
	}
	got = EVP_DecodeBlock(out, clean, (int)n);
	free(clean);
	if (got < 0 || (size_t)got != n / 4 * 3) {
		free(out);
		*error_r = "invalid character";
		return -1;
	}
	*out_r = out;
	*outlen_r = (size_t)got - pad;
	return 0;
}

char *
b64_encode(const unsigned char *in, size_t len)
{
	char *out;

	if (len > (size_t)INT_MAX / 4 * 3 - 3)
		fatalx("b64_encode: %zu octets", len);
	out = xmalloc(4 * ((len + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}
