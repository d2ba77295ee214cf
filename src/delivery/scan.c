/*
 * scan.c: content facts for outbound delivery (see scan.h).
 *
 * Entry points: content_scan_init(), content_scan_feed(),
 * content_scan_finish().
 *
 * The header section is looked at octet by octet (it is short, and each
 * line's first nine octets are compared with "Received:"); after the empty
 * line that ends it, lines are found with memchr() and 8-bit octets by
 * OR-ing eight octets at a time, since every relayed message passes
 * through here once.
 * STANDARDS: RFC 5321 4.5.3.1.6 (line length, CRLF not counted); RFC 6152
 * (8BITMIME); RFC 5321 6.3 (counting Received: to detect loops).
 * THREADS: none; a scan is one caller's.
 */
#include "delivery/scan.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

void
content_scan_init(struct content_scan *sc)
{
	memset(sc, 0, sizeof(*sc));
	sc->in_headers = true;
}

/* An octet >= 0x80 in p[0..n). */
static bool
scan_any_high(const unsigned char *p, size_t n)
{
	uint64_t acc = 0, w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		acc |= w;
	}
	for (; i < n; i++)
		acc |= p[i];
	return (acc & UINT64_C(0x8080808080808080)) != 0;
}

/* An LF ends the current line. */
static void
scan_newline(struct content_scan *sc)
{
	size_t l = sc->line > 0 && sc->last_cr ? sc->line - 1 : sc->line;

	if (l > sc->longest)
		sc->longest = l;
	if (sc->in_headers && l == 0)
		sc->in_headers = false;
	sc->line = 0;
	sc->namelen = 0;
	sc->last_cr = false;
}

void
content_scan_feed(struct content_scan *sc, const char *p, size_t len)
{
	const unsigned char *u = (const unsigned char *)p;
	const char *nl;
	size_t i = 0, end;

	while (i < len && sc->in_headers) {
		unsigned char ch = u[i++];

		if (ch >= 0x80)
			sc->eight_bit = true;
		if (ch == '\n') {
			scan_newline(sc);
			continue;
		}
		if (sc->line < sizeof(sc->name)) {
			sc->name[sc->line] = (char)ch;
			sc->namelen = sc->line + 1;
			if (sc->namelen == 9 && strncasecmp(sc->name,
			    "received:", 9) == 0)
				sc->hops++;
		}
		sc->line++;
		sc->last_cr = ch == '\r';
	}
	while (i < len) {
		nl = memchr(p + i, '\n', len - i);
		end = nl != NULL ? (size_t)(nl - p) : len;
		if (!sc->eight_bit)
			sc->eight_bit = scan_any_high(u + i, end - i);
		if (end > i) {
			sc->line += end - i;
			sc->last_cr = u[end - 1] == '\r';
		}
		if (nl == NULL)
			break;
		scan_newline(sc);
		i = end + 1;
	}
}

void
content_scan_finish(struct content_scan *sc)
{
	if (sc->line > sc->longest)
		sc->longest = sc->line;
}
