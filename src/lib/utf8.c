/*
 * utf8.c: UTF-8 sequence validation (RFC 3629 4, the UTF8-2/3/4 rules).
 *
 * SECURITY: reads untrusted text; stops at the first byte that does not
 * fit, so a NUL (never a continuation byte) ends the scan.
 */
#include "lib/utf8.h"

size_t
utf8_seq_len(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;		/* no overlong 3-byte forms */
	else if (p[0] == 0xed)
		hi = 0x9f;		/* no surrogates */
	else if (p[0] == 0xf0)
		lo = 0x90;		/* no overlong 4-byte forms */
	else if (p[0] == 0xf4)
		hi = 0x8f;		/* nothing above U+10FFFF */
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}
