/*
 * test_dns_rr.c: the rdata parsers take valid wire data apart exactly and
 * refuse malformed data (truncated, over-long, compression pointers,
 * trailing bytes) without reading past the end; the encoders used by the
 * fake resolver produce what the parsers read back; dns_answer_format()
 * prints presentation form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "testutil.h"

#include "dns/dns.h"
#include "dns/rr.h"
#include "lib/util.h"

/* rdata vectors are written as C strings with an explicit length. */
struct vec {
	const char *data;
	size_t len;
	int want;		/* 0 or -1 */
	const char *name;	/* expected presentation name */
};

#define V(s, want, name) { s, sizeof(s) - 1, want, name }

/* An exact-size heap copy: reading one byte too far trips ASan. */
static uint8_t *
dup_exact(const char *s, size_t n)
{
	uint8_t *p = malloc(n);

	if (n > 0) {
		assert_non_null(p);
		memcpy(p, s, n);
	}
	return p;
}

static void
test_parse_name(void **state)
{
	static const struct vec v[] = {
		V("\x03www\x07" "example\x03" "com\x00", 0, "www.example.com"),
		V("\x03WwW\x07" "ExAmPlE\x03" "COM\x00", 0, "www.example.com"),
		V("\x00", 0, ""),
		V("\x03" "a.b\x00", 0, "a\\.b"),
		V("\x03" "a\\b\x00", 0, "a\\\\b"),
		V("\x01\x00\x00", 0, "\\000"),
		V("\x03" "a b\x00", 0, "a\\032b"),
		V("\x02\xc3\xa9\x00", 0, "\\195\\169"),
		V("\x01\x7f\x00", 0, "\\127"),
		V("\x04_25_\x04_tcp\x00", 0, "_25_._tcp"),
		V("", -1, NULL),
		V("\x03www", -1, NULL),			/* no root label */
		V("\x03www\x07" "example", -1, NULL),
		V("\x05" "ab\x00", -1, NULL),		/* label past end */
		V("\xc0\x0c", -1, NULL),	/* compression pointer */
		V("\x03www\xc0\x0c", -1, NULL),
		V("\x41" "a\x00", -1, NULL),		/* 0x40 label type */
		V("\x81" "a\x00", -1, NULL),		/* 0x80 label type */
	};
	char out[DNS_NAME_MAX];
	size_t i, off;

	(void)state;
	for (i = 0; i < nitems(v); i++) {
		uint8_t *p = dup_exact(v[i].data, v[i].len);
		int r;

		off = 0;
		r = dns_rr_parse_name(p, v[i].len, &off, out, sizeof(out));
		if (r != v[i].want)
			fail_msg("vector %zu (%s): got %d, want %d", i,
			    test_escn(v[i].data, v[i].len), r, v[i].want);
		if (r == 0) {
			if (strcmp(out, v[i].name) != 0)
				fail_msg("vector %zu: got \"%s\", want \"%s\"",
				    i, out, v[i].name);
			assert_int_equal(off, v[i].len);
		}
		free(p);
	}
}

/* Names at the limits: 255 octets of wire form, DNS_NAME_MAX output. */
static void
test_parse_name_limits(void **state)
{
	uint8_t wire[300];
	char out[DNS_NAME_MAX], small[8];
	size_t off, o, l, i;

	(void)state;
	/* 63 + 63 + 63 + 61 octets of labels: 255 in wire form. */
	o = 0;
	for (l = 0; l < 4; l++) {
		size_t n = l < 3 ? 63 : 61;

		wire[o++] = (uint8_t)n;
		memset(wire + o, 'a' + (int)l, n);
		o += n;
	}
	wire[o++] = 0;
	assert_int_equal(o, 255);
	off = 0;
	assert_int_equal(dns_rr_parse_name(wire, o, &off, out, sizeof(out)),
	    0);
	assert_int_equal(strlen(out), 253);
	assert_int_equal(off, 255);

	/* One more octet: 256 is over the limit. */
	wire[3 * 64] = 62;
	memset(wire + 3 * 64 + 1, 'd', 62);
	wire[3 * 64 + 63] = 0;
	off = 0;
	assert_int_equal(dns_rr_parse_name(wire, 256, &off, out, sizeof(out)),
	    -1);

	/* 64-octet label. */
	wire[0] = 64;
	memset(wire + 1, 'x', 64);
	wire[65] = 0;
	off = 0;
	assert_int_equal(dns_rr_parse_name(wire, 66, &off, out, sizeof(out)),
	    -1);

	/* Valid wire form whose escaped form does not fit. */
	o = 0;
	for (l = 0; l < 2; l++) {
		wire[o++] = 63;
		memset(wire + o, 0x01, 63);
		o += 63;
	}
	wire[o++] = 0;
	off = 0;
	assert_int_equal(dns_rr_parse_name(wire, o, &off, out, sizeof(out)),
	    -1);

	/* Output buffer too small, at every size. */
	memcpy(wire, "\x07" "example\x03" "com\x00", 13);
	for (i = 0; i <= sizeof(small); i++) {
		off = 0;
		assert_int_equal(dns_rr_parse_name(wire, 13, &off, small, i),
		    -1);
	}
	off = 0;
	assert_int_equal(dns_rr_parse_name(wire, 13, &off, out, 12), 0);
	assert_string_equal(out, "example.com");
}

static void
test_parse_addr(void **state)
{
	struct dns_addr a;
	static const uint8_t v4[4] = { 192, 0, 2, 1 };
	static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
	    0, 0, 0, 0, 0, 0, 0, 1 };
	char ntop[INET6_ADDRSTRLEN];
	size_t n;

	(void)state;
	assert_int_equal(dns_rr_parse_a(v4, 4, &a), 0);
	assert_int_equal(a.family, AF_INET);
	assert_string_equal(inet_ntop(AF_INET, a.addr, ntop, sizeof(ntop)),
	    "192.0.2.1");
	for (n = 0; n < 16; n++)
		if (n != 4)
			assert_int_equal(dns_rr_parse_a(v6, n, &a), -1);
	assert_int_equal(dns_rr_parse_aaaa(v6, 16, &a), 0);
	assert_int_equal(a.family, AF_INET6);
	assert_string_equal(inet_ntop(AF_INET6, a.addr, ntop, sizeof(ntop)),
	    "2001:db8::1");
	for (n = 0; n < 16; n++)
		assert_int_equal(dns_rr_parse_aaaa(v6, n, &a), -1);
}

static void
test_parse_mx(void **state)
{
	static const struct vec v[] = {
		V("\x00\x0a\x02mx\x07" "example\x03" "com\x00", 0,
		    "mx.example.com"),
		V("\xff\xff\x02MX\x00", 0, "mx"),
		V("\x00\x00\x00", 0, ""),		/* null MX */
		V("", -1, NULL),
		V("\x00", -1, NULL),
		V("\x00\x0a", -1, NULL),
		V("\x00\x0a\x02mx", -1, NULL),
		V("\x00\x0a\x02mx\x00\x00", -1, NULL),	/* trailing byte */
		V("\x00\x0a\xc0\x0c", -1, NULL),
	};
	static const uint16_t pref[] = { 10, 65535, 0 };
	struct dns_mx mx;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(v); i++) {
		uint8_t *p = dup_exact(v[i].data, v[i].len);
		int r = dns_rr_parse_mx(p, v[i].len, &mx);

		if (r != v[i].want)
			fail_msg("MX vector %zu (%s): got %d, want %d", i,
			    test_escn(v[i].data, v[i].len), r, v[i].want);
		if (r == 0) {
			assert_string_equal(mx.name, v[i].name);
			assert_int_equal(mx.pref, pref[i]);
		}
		free(p);
	}
}

static void
test_parse_ptr(void **state)
{
	char out[DNS_NAME_MAX];
	uint8_t *p;

	(void)state;
	p = dup_exact("\x04host\x04test\x00", 11);
	assert_int_equal(dns_rr_parse_ptr(p, 11, out, sizeof(out)), 0);
	assert_string_equal(out, "host.test");
	assert_int_equal(dns_rr_parse_ptr(p, 10, out, sizeof(out)), -1);
	free(p);
	p = dup_exact("\x04host\x00\x00", 7);
	assert_int_equal(dns_rr_parse_ptr(p, 7, out, sizeof(out)), -1);
	free(p);
}

static void
test_parse_txt(void **state)
{
	static const struct {
		const char *data;
		size_t len;
		int want;
		const char *text;
		size_t tlen;
	} v[] = {
		{ "\x0bv=spf1 -all", 12, 0, "v=spf1 -all", 11 },
		{ "\x03" "abc\x02" "de\x00\x01" "f", 10, 0, "abcdef", 6 },
		{ "\x00", 1, 0, "", 0 },
		{ "\x03" "a\x00" "b", 4, 0, "a\0b", 3 },
		{ "\x02\xff\x00", 3, 0, "\xff\0", 2 },
		{ "", 0, -1, NULL, 0 },
		{ "\x05" "abc", 4, -1, NULL, 0 },
		{ "\x03" "abc\x01", 5, -1, NULL, 0 },
	};
	struct dns_txt t;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(v); i++) {
		uint8_t *p = dup_exact(v[i].data, v[i].len);
		int r = dns_rr_parse_txt(p, v[i].len, &t);

		if (r != v[i].want)
			fail_msg("TXT vector %zu (%s): got %d, want %d", i,
			    test_escn(v[i].data, v[i].len), r, v[i].want);
		if (r == 0) {
			assert_int_equal(t.len, v[i].tlen);
			assert_memory_equal(t.data, v[i].text, v[i].tlen);
			assert_int_equal(t.data[t.len], '\0');
		} else
			assert_null(t.data);
		free(t.data);
		free(p);
	}
}

static void
test_parse_tlsa(void **state)
{
	struct dns_tlsa t;
	uint8_t *p;

	(void)state;
	p = dup_exact("\x03\x01\x01\xde\xad\xbe\xef", 7);
	assert_int_equal(dns_rr_parse_tlsa(p, 7, &t), 0);
	assert_int_equal(t.usage, 3);
	assert_int_equal(t.selector, 1);
	assert_int_equal(t.mtype, 1);
	assert_int_equal(t.len, 4);
	assert_memory_equal(t.data, "\xde\xad\xbe\xef", 4);
	free(t.data);
	assert_int_equal(dns_rr_parse_tlsa(p, 3, &t), 0);
	assert_int_equal(t.len, 0);
	free(t.data);
	assert_int_equal(dns_rr_parse_tlsa(p, 2, &t), -1);
	assert_null(t.data);
	assert_int_equal(dns_rr_parse_tlsa(p, 0, &t), -1);
	free(p);
}

/* Every proper prefix of a valid record is malformed (no name ends
 * early), and no parser reads past the prefix. */
static void
test_prefixes(void **state)
{
	static const char mx[] = "\x00\x0a\x02mx\x07" "example\x03" "com\x00";
	static const char ptr[] = "\x04host\x04test\x00";
	char out[DNS_NAME_MAX];
	struct dns_mx m;
	size_t n;

	(void)state;
	for (n = 0; n < sizeof(mx) - 1; n++) {
		uint8_t *p = dup_exact(mx, n);

		if (dns_rr_parse_mx(p, n, &m) != -1)
			fail_msg("MX prefix of %zu bytes: got 0, want -1", n);
		free(p);
	}
	for (n = 0; n < sizeof(ptr) - 1; n++) {
		uint8_t *p = dup_exact(ptr, n);

		if (dns_rr_parse_ptr(p, n, out, sizeof(out)) != -1)
			fail_msg("PTR prefix of %zu bytes: got 0, want -1", n);
		free(p);
	}
}

/* Random bytes through every parser: no crash, no read past the end
 * (ASan), and a name that parses holds printable ASCII only. */
static void
test_random_input(void **state)
{
	uint32_t seed = 0x5eed1234;
	char out[DNS_NAME_MAX];
	size_t iter, i, n, off;

	(void)state;
	for (iter = 0; iter < 20000; iter++) {
		uint8_t buf[300], *p;
		struct dns_mx m;
		struct dns_txt t;
		struct dns_tlsa tl;
		struct dns_addr a;

		seed = seed * 1103515245 + 12345;
		n = (seed >> 8) % sizeof(buf);
		for (i = 0; i < n; i++) {
			seed = seed * 1103515245 + 12345;
			buf[i] = (uint8_t)(seed >> 16);
			/* Many small values, so label lengths fit. */
			if (buf[i] & 0x80 && (seed & 3))
				buf[i] &= 0x0f;
		}
		p = dup_exact((const char *)buf, n);
		if (dns_rr_parse_mx(p, n, &m) == 0)
			for (i = 0; m.name[i] != '\0'; i++)
				assert_true(m.name[i] > 0x20 &&
				    m.name[i] < 0x7f);
		off = 0;
		if (dns_rr_parse_name(p, n, &off, out, sizeof(out)) == 0)
			assert_true(off <= n);
		if (dns_rr_parse_txt(p, n, &t) == 0)
			assert_true(t.len < n);
		free(t.data);
		if (dns_rr_parse_tlsa(p, n, &tl) == 0)
			assert_int_equal(tl.len, n - 3);
		free(tl.data);
		(void)dns_rr_parse_a(p, n, &a);
		(void)dns_rr_parse_aaaa(p, n, &a);
		(void)dns_rr_parse_ptr(p, n, out, sizeof(out));
		free(p);
	}
}

static void
test_encode_name(void **state)
{
	static const struct {
		const char *name;
		const char *wire;
		size_t len;
	} ok[] = {
		{ "example.com", "\x07" "example\x03" "com\x00", 13 },
		{ "example.com.", "\x07" "example\x03" "com\x00", 13 },
		{ "", "\x00", 1 },
		{ ".", "\x00", 1 },
		{ "a\\.b.c", "\x03" "a.b\x01" "c\x00", 7 },
		{ "\\000\\255", "\x02\x00\xff\x00", 4 },
		{ "a\\\\", "\x02" "a\\\x00", 4 },
	};
	static const char *const bad[] = {
		"a..b", ".a", "..", "a\\", "a\\25", "\\256",
	};
	uint8_t wire[300];
	char big[400], out[DNS_NAME_MAX];
	size_t i, len, off;

	(void)state;
	for (i = 0; i < nitems(ok); i++) {
		if (dns_rr_encode_name(ok[i].name, wire, sizeof(wire),
		    &len) != 0)
			fail_msg("encode \"%s\": got -1, want 0", ok[i].name);
		assert_int_equal(len, ok[i].len);
		assert_memory_equal(wire, ok[i].wire, len);
		/* And back: parse gives the canonical presentation form. */
		off = 0;
		assert_int_equal(dns_rr_parse_name(wire, len, &off, out,
		    sizeof(out)), 0);
	}
	for (i = 0; i < nitems(bad); i++)
		if (dns_rr_encode_name(bad[i], wire, sizeof(wire), &len) != -1)
			fail_msg("encode \"%s\": got 0, want -1", bad[i]);
	/* A 64-character label, a 256-octet name. */
	memset(big, 'a', 64);
	big[64] = '\0';
	assert_int_equal(dns_rr_encode_name(big, wire, sizeof(wire), &len),
	    -1);
	for (i = 0; i < 4; i++) {
		memset(big + i * 64, 'a', 63);
		big[i * 64 + 63] = '.';
	}
	big[4 * 64 - 1] = '\0';		/* 4 labels of 63: 257 octets */
	assert_int_equal(dns_rr_encode_name(big, wire, sizeof(wire), &len),
	    -1);
	big[3 * 64 + 61] = '\0';	/* 63, 63, 63, 61: 255 octets */
	assert_int_equal(dns_rr_encode_name(big, wire, sizeof(wire), &len), 0);
	assert_int_equal(len, 255);
	/* The output buffer is respected at every size. */
	for (i = 0; i < 13; i++)
		assert_int_equal(dns_rr_encode_name("example.com", wire, i,
		    &len), -1);
}

static void
test_encode_types(void **state)
{
	uint8_t wire[2000];
	char text[700];
	size_t len;
	struct dns_mx mx;
	struct dns_txt t;
	struct dns_tlsa tl;

	(void)state;
	assert_int_equal(dns_rr_encode(DNS_TYPE_A, "192.0.2.1", wire,
	    sizeof(wire), &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(wire, "\xc0\x00\x02\x01", 4);
	assert_int_equal(dns_rr_encode(DNS_TYPE_A, "192.0.2", wire,
	    sizeof(wire), &len), -1);
	assert_int_equal(dns_rr_encode(DNS_TYPE_A, "::1", wire,
	    sizeof(wire), &len), -1);
	assert_int_equal(dns_rr_encode(DNS_TYPE_AAAA, "2001:db8::1", wire,
	    sizeof(wire), &len), 0);
	assert_int_equal(len, 16);

	assert_int_equal(dns_rr_encode(DNS_TYPE_MX, "10 mx.example.com", wire,
	    sizeof(wire), &len), 0);
	assert_int_equal(dns_rr_parse_mx(wire, len, &mx), 0);
	assert_int_equal(mx.pref, 10);
	assert_string_equal(mx.name, "mx.example.com");
	assert_int_equal(dns_rr_encode(DNS_TYPE_MX, "0 .", wire,
	    sizeof(wire), &len), 0);
	assert_int_equal(len, 3);
	assert_int_equal(dns_rr_encode(DNS_TYPE_MX, "65536 mx", wire,
	    sizeof(wire), &len), -1);
	assert_int_equal(dns_rr_encode(DNS_TYPE_MX, "mx", wire,
	    sizeof(wire), &len), -1);
	assert_int_equal(dns_rr_encode(DNS_TYPE_MX, "-1 mx", wire,
	    sizeof(wire), &len), -1);

	/* TXT: 600 bytes become 255 + 255 + 90. */
	memset(text, 'x', 600);
	text[600] = '\0';
	assert_int_equal(dns_rr_encode(DNS_TYPE_TXT, text, wire,
	    sizeof(wire), &len), 0);
	assert_int_equal(len, 603);
	assert_int_equal(wire[0], 255);
	assert_int_equal(wire[256], 255);
	assert_int_equal(wire[512], 90);
	assert_int_equal(dns_rr_parse_txt(wire, len, &t), 0);
	assert_int_equal(t.len, 600);
	assert_memory_equal(t.data, text, 600);
	free(t.data);
	assert_int_equal(dns_rr_encode(DNS_TYPE_TXT, "", wire, sizeof(wire),
	    &len), 0);
	assert_int_equal(len, 1);
	assert_int_equal(dns_rr_encode(DNS_TYPE_TXT, text, wire, 100, &len),
	    -1);

	assert_int_equal(dns_rr_encode(DNS_TYPE_TLSA, "3 1 1 DEADbeef", wire,
	    sizeof(wire), &len), 0);
	assert_int_equal(dns_rr_parse_tlsa(wire, len, &tl), 0);
	assert_int_equal(tl.len, 4);
	assert_memory_equal(tl.data, "\xde\xad\xbe\xef", 4);
	free(tl.data);
	assert_int_equal(dns_rr_encode(DNS_TYPE_TLSA, "3 1 1 abc", wire,
	    sizeof(wire), &len), -1);
	assert_int_equal(dns_rr_encode(DNS_TYPE_TLSA, "3 1 1 zz", wire,
	    sizeof(wire), &len), -1);
	assert_int_equal(dns_rr_encode(DNS_TYPE_TLSA, "256 1 1 00", wire,
	    sizeof(wire), &len), -1);
	assert_int_equal(dns_rr_encode(DNS_TYPE_PTR, "host.test", wire,
	    sizeof(wire), &len), 0);
	assert_int_equal(len, 11);
	assert_int_equal(dns_rr_encode(DNS_TYPE_SOA, "x", wire,
	    sizeof(wire), &len), -1);
}

static void
test_format(void **state)
{
	struct dns_addr addrs[2];
	struct dns_mx mx[2];
	struct dns_txt txt[1];
	struct dns_tlsa tlsa[1];
	const char *names[1] = { "host.test" };
	struct dns_rdata raw[1];
	struct dns_answer a;
	char buf[128];
	int r;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(addrs, 0, sizeof(addrs));
	addrs[0].family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", addrs[0].addr);
	addrs[1].family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::1", addrs[1].addr);
	a.n = 2;
	a.addrs = addrs;
	assert_int_equal(dns_answer_format(&a, 0, buf, sizeof(buf)), 9);
	assert_string_equal(buf, "192.0.2.1");
	dns_answer_format(&a, 1, buf, sizeof(buf));
	assert_string_equal(buf, "2001:db8::1");
	assert_int_equal(dns_answer_format(&a, 2, buf, sizeof(buf)), -1);
	/* Truncation: the length needed, a NUL-terminated prefix. */
	assert_int_equal(dns_answer_format(&a, 0, buf, 4), 9);
	assert_string_equal(buf, "192");
	assert_int_equal(dns_answer_format(&a, 0, NULL, 0), 9);

	memset(&a, 0, sizeof(a));
	mx[0].pref = 10;
	strlcpy(mx[0].name, "mx.example.com", sizeof(mx[0].name));
	mx[1].pref = 0;
	mx[1].name[0] = '\0';
	a.n = 2;
	a.mx = mx;
	dns_answer_format(&a, 0, buf, sizeof(buf));
	assert_string_equal(buf, "10 mx.example.com");
	dns_answer_format(&a, 1, buf, sizeof(buf));
	assert_string_equal(buf, "0 .");

	memset(&a, 0, sizeof(a));
	txt[0].data = (char *)"v=1\x01\\\xff";
	txt[0].len = 6;
	a.n = 1;
	a.txt = txt;
	r = dns_answer_format(&a, 0, buf, sizeof(buf));
	assert_string_equal(buf, "v=1\\001\\092\\255");
	assert_int_equal(r, (int)strlen(buf));

	memset(&a, 0, sizeof(a));
	tlsa[0].usage = 3;
	tlsa[0].selector = 1;
	tlsa[0].mtype = 1;
	tlsa[0].data = (uint8_t *)"\xab\x01";
	tlsa[0].len = 2;
	a.n = 1;
	a.tlsa = tlsa;
	dns_answer_format(&a, 0, buf, sizeof(buf));
	assert_string_equal(buf, "3 1 1 ab01");

	memset(&a, 0, sizeof(a));
	a.n = 1;
	a.names = names;
	dns_answer_format(&a, 0, buf, sizeof(buf));
	assert_string_equal(buf, "host.test");

	memset(&a, 0, sizeof(a));
	raw[0].data = (const uint8_t *)"\x01\x02";
	raw[0].len = 2;
	a.n = 1;
	a.raw = raw;
	dns_answer_format(&a, 0, buf, sizeof(buf));
	assert_string_equal(buf, "\\# 2 0102");
}

static void
test_type_names(void **state)
{
	(void)state;
	assert_int_equal(dns_type_from_name("mx"), DNS_TYPE_MX);
	assert_int_equal(dns_type_from_name("AAAA"), DNS_TYPE_AAAA);
	assert_int_equal(dns_type_from_name("tlsa"), DNS_TYPE_TLSA);
	assert_int_equal(dns_type_from_name("route"), 0);
	assert_string_equal(dns_type_name(DNS_TYPE_TXT), "TXT");
	assert_null(dns_type_name(999));
	assert_string_equal(dns_status_name(DNS_TEMPFAIL), "TEMPFAIL");
}

/* TXT values: \DDD and \X give one octet, so tests can serve any byte. */
static void
test_encode_txt_escapes(void **state)
{
	uint8_t wire[600];
	size_t len;
	char big[700];

	(void)state;
	assert_int_equal(dns_rr_encode(DNS_TYPE_TXT, "a\\000b\\\\c\\;d", wire,
	    sizeof(wire), &len), 0);
	assert_int_equal(len, 8);
	assert_memory_equal(wire, "\x07" "a\0b\\c;d", 8);
	/* a value out of range, and a plain text split at 255 */
	assert_int_equal(dns_rr_encode(DNS_TYPE_TXT, "x\\256", wire,
	    sizeof(wire), &len), -1);
	memset(big, 'q', 300);
	big[300] = '\0';
	assert_int_equal(dns_rr_encode(DNS_TYPE_TXT, big, wire, sizeof(wire),
	    &len), 0);
	assert_int_equal(len, 302);
	assert_int_equal(wire[0], 255);
	assert_int_equal(wire[256], 45);
	/* the empty string is one empty character-string */
	assert_int_equal(dns_rr_encode(DNS_TYPE_TXT, "", wire, sizeof(wire),
	    &len), 0);
	assert_int_equal(len, 1);
	assert_int_equal(wire[0], 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_txt_escapes),
		cmocka_unit_test(test_parse_name),
		cmocka_unit_test(test_parse_name_limits),
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_parse_mx),
		cmocka_unit_test(test_parse_ptr),
		cmocka_unit_test(test_parse_txt),
		cmocka_unit_test(test_parse_tlsa),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_random_input),
		cmocka_unit_test(test_encode_name),
		cmocka_unit_test(test_encode_types),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_type_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
