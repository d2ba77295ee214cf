/*
 * b64.c: DKIM's base64: lib/base64.c with folding white space skipped
 * (BASE64_FWS), returning heap buffers.
 *
 * Entry points: b64_decode(), b64_encode().
 *
 * SECURITY: decodes untrusted text (DKIM-Signature b=/bh=, DNS p=); the
 * checks are lib/base64.c's.
 * STANDARDS: RFC 4648 4; RFC 6376 2.4 (base64string with FWS).
 * OWNERSHIP: both functions return heap buffers the caller frees.
 */
#include "msgauth/b64.h"

#include <limits.h>
#include <stdlib.h>

#include "lib/base64.h"
#include "lib/log.h"
#include "lib/util.h"

int
b64_decode(const char *in, size_t len, unsigned char **out_r,
    size_t *outlen_r, const char **error_r)
{
	const char *why = "too long";
	unsigned char *out;

	*out_r = NULL;
	*outlen_r = 0;
	if (len > INT_MAX / 2) {
		*error_r = why;
		return -1;
	}
	out = xmalloc(BASE64_DECODED_MAX(len));
	if (base64_decode(in, len, BASE64_FWS, out, BASE64_DECODED_MAX(len),
	    outlen_r, &why) == -1) {
		free(out);
		*outlen_r = 0;
		*error_r = why;
		return -1;
	}
	*out_r = out;
	return 0;
}

char *
b64_encode(const unsigned char *in, size_t len)
{
	char *out;

	if (len > (size_t)INT_MAX / 4 * 3 - 3)
		fatalx("b64_encode: %zu octets", len);
	out = xmalloc(BASE64_ENCODED_SIZE(len));
	if (base64_encode(in, len, out, BASE64_ENCODED_SIZE(len)) == -1)
		fatalx("b64_encode: %zu octets", len);
	return out;
}
