/*
 * test_delivery_scan.c: content_scan (8-bit, longest line, Received:
 * count) on fixed cases and against a byte-at-a-time reference on random
 * contents split at random.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "delivery/scan.h"

static void
scan_all(const char *p, size_t len, size_t piece, struct content_scan *sc)
{
	size_t off, n;

	content_scan_init(sc);
	for (off = 0; off < len; off += n) {
		n = piece == 0 || piece > len - off ? len - off : piece;
		content_scan_feed(sc, p + off, n);
	}
	content_scan_finish(sc);
}

static void
test_cases(void **state)
{
	static const struct {
		const char *in;
		bool eight_bit;
		size_t longest;
		unsigned int hops;
	} cases[] = {
		{ "", false, 0, 0 },
		{ "Subject: x\r\n\r\nbody\r\n", false, 10, 0 },
		{ "Received: a\r\nreceived:b\r\nX-Received: c\r\n\r\n"
		    "Received: in the body\r\n", false, 21, 2 },
		{ "A: b\r\n\r\ncaf\xc3\xa9\r\n", true, 5, 0 },
		{ "A: \xff\r\n\r\n", true, 4, 0 },
		/* a bare LF ends a line too; a lone CR is an octet */
		{ "A: b\n\nxx\ryy\n", false, 5, 0 },
		/* the last line without its newline counts whole */
		{ "A: b\r\n\r\n0123456789", false, 10, 0 },
		{ "Received:\r\n", false, 9, 1 },
	};
	struct content_scan sc;
	size_t i, piece;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (piece = 0; piece < 8; piece++) {
			scan_all(cases[i].in, strlen(cases[i].in), piece, &sc);
			if (sc.eight_bit != cases[i].eight_bit ||
			    sc.longest != cases[i].longest ||
			    sc.hops != cases[i].hops)
				fail_msg("case %zu piece %zu: 8bit %d longest "
				    "%zu hops %u", i, piece, sc.eight_bit,
				    sc.longest, sc.hops);
		}
	}
}

/* One octet at a time, the plain way. */
static void
reference(const unsigned char *p, size_t len, bool *eight_bit,
    size_t *longest, unsigned int *hops)
{
	size_t i, line = 0, l;
	bool in_headers = true, last_cr = false;
	char name[10];

	*eight_bit = false;
	*longest = 0;
	*hops = 0;
	for (i = 0; i < len; i++) {
		if (p[i] >= 0x80)
			*eight_bit = true;
		if (p[i] == '\n') {
			l = line > 0 && last_cr ? line - 1 : line;
			if (l > *longest)
				*longest = l;
			if (in_headers && l == 0)
				in_headers = false;
			line = 0;
			last_cr = false;
			continue;
		}
		if (in_headers && line < sizeof(name)) {
			name[line] = (char)p[i];
			if (line == 8 && strncasecmp(name, "received:", 9) == 0)
				(*hops)++;
		}
		line++;
		last_cr = p[i] == '\r';
	}
	if (line > *longest)
		*longest = line;
}

static void
test_matches_reference(void **state)
{
	static const char *const words[] = { "Received:", "received: x",
	    "\r\n", "\n", "\r", "abc", "\xe9", "0123456789012345678901234",
	    "\r\n\r\n", ":", " " };
	unsigned char buf[4000];
	struct content_scan sc;
	unsigned int round, hops;
	size_t len, off, n, longest;
	bool eight;

	(void)state;
	srandom(11);
	for (round = 0; round < 5000; round++) {
		len = 0;
		while (len < sizeof(buf) - 64 && random() % 200 != 0) {
			const char *w = words[random() % 11];

			memcpy(buf + len, w, strlen(w));
			len += strlen(w);
		}
		reference(buf, len, &eight, &longest, &hops);
		content_scan_init(&sc);
		for (off = 0; off < len; off += n) {
			n = 1 + (size_t)random() % (len - off);
			content_scan_feed(&sc, (const char *)buf + off, n);
		}
		content_scan_finish(&sc);
		if (sc.eight_bit != eight || sc.longest != longest ||
		    sc.hops != hops)
			fail_msg("round %u: got %d/%zu/%u, want %d/%zu/%u",
			    round, sc.eight_bit, sc.longest, sc.hops, eight,
			    longest, hops);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_matches_reference),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
