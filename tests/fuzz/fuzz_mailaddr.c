/*
 * fuzz_mailaddr.c: libFuzzer target for src/mailaddr: the RFC 5321
 * scanners of mailaddr.c (Dot-string, Quoted-string, Domain, address
 * literal), mailaddr_localpart_unquote(), and the RFC 5322 header
 * address-list parser of hdraddr.c with mailaddr_addr_split().
 *
 * Input: byte 0 holds the scanner flags (MAILADDR_UTF8,
 * MAILADDR_UNDERSCORE), MAILADDR_HDR_STRICT and the size of the unquote
 * buffer; the rest is the text. The scanners see it cut at its first NUL;
 * the header parser sees the exact octets (no NUL after them, so ASan
 * catches a read past len).
 *
 * Invariants checked (a failure aborts):
 *   - a scanner returns NULL or a pointer in (p, end of string] (the
 *     Domain and literal scanners never return p itself);
 *     mailaddr_scan_domain_or_literal() agrees with the scanner it
 *     delegates to;
 *   - mailaddr_localpart_unquote() never writes past outsize, and its
 *     result is NUL-terminated and no longer than its input;
 *   - every address the header parser reports is NUL-terminated at
 *     addr[len], at most MAILADDR_HDR_ADDR_MAX octets, without NUL, CR,
 *     LF or other control characters, with SP and HTAB only inside a
 *     quoted local part, splits at an '@' with mailaddr_addr_split(),
 *     and the callback count equals the return value; a
 *     walk stopped by the callback returns MAILADDR_HDR_STOPPED; an error
 *     has a message and never called the callback.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailaddr/hdraddr.h"
#include "mailaddr/mailaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

struct walk {
	int calls;
	int stop_at;		/* stop after this many calls; 0: never */
};

static int
hdr_cb(void *arg, const char *addr, size_t len)
{
	struct walk *w = arg;
	size_t i, local_len;
	bool quoted;

	CHECK(len > 0 && len <= MAILADDR_HDR_ADDR_MAX);
	CHECK(addr[len] == '\0');
	CHECK(mailaddr_addr_split(addr, len, &local_len, &quoted));
	/* WSP (SP, HTAB) only in a quoted local part. */
	for (i = 0; i < len; i++) {
		CHECK(((unsigned char)addr[i] >= 0x20 &&
		    (unsigned char)addr[i] != 0x7f) || addr[i] == '\t');
		if (addr[i] == ' ' || addr[i] == '\t')
			CHECK(quoted && i < local_len);
	}
	CHECK(local_len > 0 && local_len + 1 < len);
	CHECK(addr[local_len] == '@');
	CHECK(quoted == (addr[0] == '"'));
	w->calls++;
	return w->stop_at != 0 && w->calls == w->stop_at;
}

static void
check_scan(const char *p, const char *r, bool may_be_empty)
{
	if (r == NULL)
		return;
	CHECK(r >= p && r <= p + strlen(p));
	if (!may_be_empty)
		CHECK(r > p);
}

static void
check_unquote(const char *lp, size_t len, size_t outsize)
{
	char *out;

	if ((out = malloc(outsize)) == NULL)
		return;
	if (mailaddr_localpart_unquote(lp, len, out, outsize) == 0)
		CHECK(strlen(out) < outsize && strlen(out) <= len);
	else
		CHECK(out[0] == '\0');
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct walk w;
	const char *s, *r, *r2, *bad, *err;
	char *str, *raw;
	unsigned int flags, hflags;
	size_t len, outsize;
	bool utf8;
	int n;

	if (size < 1 || size > 8192)
		return 0;
	flags = data[0] & (MAILADDR_UTF8 | MAILADDR_UNDERSCORE);
	hflags = data[0] & 4 ? MAILADDR_HDR_STRICT : 0;
	outsize = 1 + (data[0] >> 3);	/* 1..32 */
	data++;
	size--;

	len = strnlen((const char *)data, size);
	if ((str = malloc(len + 1)) == NULL)
		return 0;
	memcpy(str, data, len);
	str[len] = '\0';
	s = str;

	utf8 = false;
	bad = NULL;
	r = mailaddr_scan_dot_string(s, flags, &utf8, &bad);
	check_scan(s, r, false);
	if (r == NULL)
		CHECK(bad != NULL && bad >= s && bad <= s + len);
	else {
		check_unquote(s, (size_t)(r - s), outsize);
		check_unquote(s, (size_t)(r - s), (size_t)(r - s) + 1);
	}
	bad = NULL;
	r = mailaddr_scan_quoted_string(s, flags, &utf8, &bad);
	check_scan(s, r, false);
	if (r == NULL)
		CHECK(bad != NULL && bad >= s && bad <= s + len);
	else {
		CHECK(r - s >= 2 && r[-1] == '"');
		check_unquote(s, (size_t)(r - s), outsize);
		check_unquote(s, (size_t)(r - s), (size_t)(r - s) + 1);
	}
	r = mailaddr_scan_domain(s, flags, &utf8);
	check_scan(s, r, false);
	r2 = mailaddr_scan_address_literal(s);
	check_scan(s, r2, false);
	if (r2 != NULL)
		CHECK(s[0] == '[' && r2[-1] == ']');
	r2 = mailaddr_scan_domain_or_literal(s, flags, &utf8);
	if (s[0] == '[')
		CHECK(r2 == mailaddr_scan_address_literal(s));
	else
		CHECK(r2 == r);
	/* Unquote a prefix, whatever it is (the function trusts len). */
	check_unquote(s, len < 80 ? len : 80, outsize);

	/* The header parser on the exact octets. */
	if ((raw = malloc(size > 0 ? size : 1)) == NULL) {
		free(str);
		return 0;
	}
	memcpy(raw, data, size);
	memset(&w, 0, sizeof(w));
	err = NULL;
	n = mailaddr_header_parse(raw, size, hflags, hdr_cb, &w, &err);
	if (n < 0) {
		CHECK(n == -1 && err != NULL && w.calls == 0);
	} else {
		CHECK(n == w.calls && n <= MAILADDR_HDR_ADDRS_MAX);
		/* STRICT refuses more, never less. */
		CHECK(mailaddr_header_addresses(raw, size, NULL, NULL) == n);
		if (n >= 1) {
			memset(&w, 0, sizeof(w));
			w.stop_at = 1;
			CHECK(mailaddr_header_parse(raw, size, hflags, hdr_cb,
			    &w, NULL) == MAILADDR_HDR_STOPPED);
			CHECK(w.calls == 1);
		}
	}
	free(raw);
	free(str);
	return 0;
}
