/*
 * scan.h: facts about a message's content that outbound delivery needs:
 * whether it has 8-bit octets (8BITMIME), its longest line (RFC 5321's
 * 998-octet limit) and how many Received: header fields it carries (mail
 * loops). Fed the content in pieces; the result does not depend on how it
 * is split.
 */
#ifndef PETREL_DELIVERY_SCAN_H
#define PETREL_DELIVERY_SCAN_H

#include <stdbool.h>
#include <stddef.h>

struct content_scan {
	/* results, complete after content_scan_finish() */
	bool eight_bit;		/* an octet >= 0x80 */
	size_t longest;		/* octets of the longest line, CRLF or LF
				 * excluded */
	unsigned int hops;	/* header lines starting "Received:" */

	/* private */
	size_t line;		/* octets of the current line so far */
	bool last_cr;		/* the last octet seen was a CR */
	bool in_headers;
	char name[10];		/* start of the current header line */
	size_t namelen;
};

void content_scan_init(struct content_scan *sc);
void content_scan_feed(struct content_scan *sc, const char *p, size_t len);
void content_scan_finish(struct content_scan *sc);

#endif
