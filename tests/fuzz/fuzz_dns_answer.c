/*
 * fuzz_dns_answer.c: libFuzzer target for Petrel's own handling of DNS
 * answers (src/dns/rr.c, not libunbound): the rdata parsers
 * dns_rr_parse_a/_aaaa/_mx/_txt/_ptr/_tlsa/_name, which read the wire
 * form libunbound hands over, dns_answer_format(), which logs them, and
 * dns_rr_encode(), which turns the presentation form back into rdata
 * (the fake resolver's path).
 *
 * The first input byte picks the record type (low 3 bits: A, AAAA, MX,
 * TXT, PTR, CNAME, TLSA, or a type with no parser); the rest is one
 * record's rdata, any bytes. The answer is built as dns.c builds it (one
 * typed array, the raw rdata beside it).
 *
 * Invariants checked: a parsed name is NUL-terminated within
 * DNS_NAME_MAX; a parse that succeeds formats without truncation into a
 * buffer of the length dns_answer_format() asked for; the formatted text
 * encodes back with dns_rr_encode() to rdata that parses to the same
 * values (names compare after lower-casing, TXT as the joined octets).
 * A bare name parse at offset 0 never moves past the rdata.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "dns/rr.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const uint16_t fuzz_types[8] = {
	DNS_TYPE_A, DNS_TYPE_AAAA, DNS_TYPE_MX, DNS_TYPE_TXT, DNS_TYPE_PTR,
	DNS_TYPE_CNAME, DNS_TYPE_TLSA, DNS_TYPE_SOA,
};

/* The parsed form of one record, whatever its type. */
struct fuzz_rec {
	struct dns_addr addr;
	struct dns_mx mx;
	struct dns_txt txt;
	char name[DNS_NAME_MAX];
	struct dns_tlsa tlsa;
};

static void
fuzz_rec_clear(struct fuzz_rec *r)
{
	free(r->txt.data);
	free(r->tlsa.data);
	memset(r, 0, sizeof(*r));
}

/* Parse rdata as type into r: 0, -1 malformed, 1 no parser for type. */
static int
fuzz_parse(uint16_t type, const uint8_t *rd, size_t len, struct fuzz_rec *r)
{
	memset(r, 0, sizeof(*r));
	switch (type) {
	case DNS_TYPE_A:
		return dns_rr_parse_a(rd, len, &r->addr);
	case DNS_TYPE_AAAA:
		return dns_rr_parse_aaaa(rd, len, &r->addr);
	case DNS_TYPE_MX:
		if (dns_rr_parse_mx(rd, len, &r->mx) == -1)
			return -1;
		if (strnlen(r->mx.name, sizeof(r->mx.name)) ==
		    sizeof(r->mx.name))
			__builtin_trap();
		return 0;
	case DNS_TYPE_TXT:
		if (dns_rr_parse_txt(rd, len, &r->txt) == -1) {
			if (r->txt.data != NULL)
				__builtin_trap();
			return -1;
		}
		if (r->txt.len >= len || r->txt.data[r->txt.len] != '\0')
			__builtin_trap();
		return 0;
	case DNS_TYPE_PTR:
	case DNS_TYPE_CNAME:
		if (dns_rr_parse_ptr(rd, len, r->name, sizeof(r->name)) == -1)
			return -1;
		if (strnlen(r->name, sizeof(r->name)) == sizeof(r->name))
			__builtin_trap();
		return 0;
	case DNS_TYPE_TLSA:
		if (dns_rr_parse_tlsa(rd, len, &r->tlsa) == -1) {
			if (r->tlsa.data != NULL)
				__builtin_trap();
			return -1;
		}
		if (r->tlsa.len + 3 != len)
			__builtin_trap();
		return 0;
	default:
		return 1;
	}
}

static bool
fuzz_rec_eq(uint16_t type, const struct fuzz_rec *a, const struct fuzz_rec *b)
{
	switch (type) {
	case DNS_TYPE_A:
		return a->addr.family == b->addr.family &&
		    memcmp(a->addr.addr, b->addr.addr, 4) == 0;
	case DNS_TYPE_AAAA:
		return a->addr.family == b->addr.family &&
		    memcmp(a->addr.addr, b->addr.addr, 16) == 0;
	case DNS_TYPE_MX:
		return a->mx.pref == b->mx.pref &&
		    strcmp(a->mx.name, b->mx.name) == 0;
	case DNS_TYPE_TXT:
		return a->txt.len == b->txt.len &&
		    memcmp(a->txt.data, b->txt.data, a->txt.len) == 0;
	case DNS_TYPE_PTR:
	case DNS_TYPE_CNAME:
		return strcmp(a->name, b->name) == 0;
	case DNS_TYPE_TLSA:
		return a->tlsa.usage == b->tlsa.usage &&
		    a->tlsa.selector == b->tlsa.selector &&
		    a->tlsa.mtype == b->tlsa.mtype &&
		    a->tlsa.len == b->tlsa.len && (a->tlsa.len == 0 ||
		    memcmp(a->tlsa.data, b->tlsa.data, a->tlsa.len) == 0);
	default:
		return true;
	}
}

/* dns_answer_format() of r, into a malloc'd string the caller frees. */
static char *
fuzz_format(uint16_t type, const struct fuzz_rec *r, const uint8_t *rd,
    size_t len)
{
	struct dns_answer a;
	struct dns_rdata raw = { rd, len };
	const char *name = r->name;
	char probe[8], *buf;
	int need, got;

	memset(&a, 0, sizeof(a));
	a.status = DNS_OK;
	a.type = type;
	a.qname = a.canonname = "fuzz.example";
	a.error = "";
	a.n = 1;
	a.raw = &raw;
	switch (type) {
	case DNS_TYPE_A:
	case DNS_TYPE_AAAA:
		a.addrs = &r->addr;
		break;
	case DNS_TYPE_MX:
		a.mx = &r->mx;
		break;
	case DNS_TYPE_TXT:
		a.txt = &r->txt;
		break;
	case DNS_TYPE_PTR:
	case DNS_TYPE_CNAME:
		a.names = &name;
		break;
	case DNS_TYPE_TLSA:
		a.tlsa = &r->tlsa;
		break;
	default:
		break;
	}
	if (dns_answer_format(&a, 1, probe, sizeof(probe)) != -1)
		__builtin_trap();
	/* First ask for the length, through a buffer too small for most. */
	if ((need = dns_answer_format(&a, 0, probe, sizeof(probe))) < 0)
		__builtin_trap();
	if (strnlen(probe, sizeof(probe)) == sizeof(probe))
		__builtin_trap();
	if ((buf = malloc((size_t)need + 1)) == NULL)
		return NULL;
	got = dns_answer_format(&a, 0, buf, (size_t)need + 1);
	if (got != need || strlen(buf) != (size_t)need)
		__builtin_trap();
	return buf;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_rec rec, again;
	uint16_t type;
	uint8_t *rd, *wire;
	size_t len, off, wlen, wsize;
	char name[DNS_NAME_MAX], *text;

	if (size < 1)
		return 0;
	type = fuzz_types[data[0] & 7];
	len = size - 1;
	/* An exact-size copy, so that ASan sees any read past the end. */
	if ((rd = malloc(len > 0 ? len : 1)) == NULL)
		return 0;
	memcpy(rd, data + 1, len);

	off = 0;
	if (dns_rr_parse_name(rd, len, &off, name, sizeof(name)) == 0 &&
	    (off == 0 || off > len || strnlen(name, sizeof(name)) ==
	    sizeof(name)))
		__builtin_trap();

	if (fuzz_parse(type, rd, len, &rec) == -1) {
		fuzz_rec_clear(&rec);
		free(rd);
		return 0;
	}
	if ((text = fuzz_format(type, &rec, rd, len)) == NULL)
		goto out;
	/* Presentation form back to rdata: the fake resolver's path. */
	wsize = 4 * len + 512;
	if (type != DNS_TYPE_SOA && (wire = malloc(wsize)) != NULL) {
		if (dns_rr_encode(type, text, wire, wsize, &wlen) == -1 ||
		    wlen > wsize)
			__builtin_trap();
		if (fuzz_parse(type, wire, wlen, &again) != 0 ||
		    !fuzz_rec_eq(type, &rec, &again))
			__builtin_trap();
		fuzz_rec_clear(&again);
		free(wire);
	}
	free(text);
out:
	fuzz_rec_clear(&rec);
	free(rd);
	return 0;
}
