/*
 * rr.c: rdata parsers (wire form to C structs), encoders from presentation
 * form, and the presentation of a parsed answer.
 *
 * Entry points: dns_rr_parse_name/a/aaaa/mx/ptr/txt/tlsa(),
 * dns_rr_encode_name(), dns_rr_encode(), dns_answer_format().
 *
 * SECURITY: the parsers read data from the network (whatever the DNS
 * servers said, after libunbound checked the message structure). They are
 * pure functions that check every length against the rdata length, never
 * follow compression pointers (libunbound hands rdata over uncompressed,
 * so a pointer is malformed) and bound their output; they are fuzzed.
 * Names are lower-cased and every byte that could confuse a log, a shell
 * or a later lookup is escaped (\DDD).
 * STANDARDS: RFC 1035 3.1 (names), 3.3.9 (MX), 3.3.12 (PTR), 3.3.14 (TXT),
 * 5.1 (presentation escapes); RFC 3596 (AAAA); RFC 6698 2.1 (TLSA);
 * RFC 3597 5 (unknown types as \#); RFC 7505 (null MX target ".").
 * OWNERSHIP: dns_rr_parse_txt() and dns_rr_parse_tlsa() allocate
 * out->data for the caller; nothing else allocates.
 */
#include "dns/rr.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

#define DNS_LABEL_MAX	63
#define DNS_WIRE_MAX	255	/* octets of a name in wire form */

int
dns_rr_parse_name(const uint8_t *rdata, size_t len, size_t *off_r,
    char *out, size_t outsize)
{
	size_t off = *off_r, o = 0, wire = 0, i;
	bool first = true;

	if (outsize == 0)
		return -1;
	for (;;) {
		uint8_t l;

		if (off >= len)
			return -1;
		l = rdata[off++];
		wire += 1 + (size_t)l;
		if (wire > DNS_WIRE_MAX)
			return -1;
		if (l == 0)
			break;
		/* 0xc0: a compression pointer; 0x40, 0x80: RFC 6891 6.1.1. */
		if (l > DNS_LABEL_MAX)
			return -1;
		if (l > len - off)
			return -1;
		if (!first) {
			if (o + 1 >= outsize)
				return -1;
			out[o++] = '.';
		}
		first = false;
		for (i = 0; i < l; i++) {
			uint8_t c = rdata[off + i];

			if (c >= 'A' && c <= 'Z')
				c = (uint8_t)(c - 'A' + 'a');
			if (c == '.' || c == '\\') {
				if (o + 2 >= outsize)
					return -1;
				out[o++] = '\\';
				out[o++] = (char)c;
			} else if (c <= 0x20 || c >= 0x7f) {
				if (o + 4 >= outsize)
					return -1;
				out[o++] = '\\';
				out[o++] = (char)('0' + c / 100);
				out[o++] = (char)('0' + c / 10 % 10);
				out[o++] = (char)('0' + c % 10);
			} else {
				if (o + 1 >= outsize)
					return -1;
				out[o++] = (char)c;
			}
		}
		off += l;
	}
	out[o] = '\0';
	*off_r = off;
	return 0;
}

int
dns_rr_parse_a(const uint8_t *rdata, size_t len, struct dns_addr *out)
{
	if (len != 4)
		return -1;
	memset(out, 0, sizeof(*out));
	out->family = AF_INET;
	memcpy(out->addr, rdata, 4);
	return 0;
}

int
dns_rr_parse_aaaa(const uint8_t *rdata, size_t len, struct dns_addr *out)
{
	if (len != 16)
		return -1;
	out->family = AF_INET6;
	memcpy(out->addr, rdata, 16);
	return 0;
}

int
dns_rr_parse_mx(const uint8_t *rdata, size_t len, struct dns_mx *out)
{
	size_t off = 2;

	if (len < 3)
		return -1;
	out->pref = (uint16_t)(rdata[0] << 8 | rdata[1]);
	if (dns_rr_parse_name(rdata, len, &off, out->name,
	    sizeof(out->name)) == -1)
		return -1;
	return off == len ? 0 : -1;
}

int
dns_rr_parse_ptr(const uint8_t *rdata, size_t len, char *out,
    size_t outsize)
{
	size_t off = 0;

	if (dns_rr_parse_name(rdata, len, &off, out, outsize) == -1)
		return -1;
	return off == len ? 0 : -1;
}

int
dns_rr_parse_txt(const uint8_t *rdata, size_t len, struct dns_txt *out)
{
	size_t off, total = 0;

	out->data = NULL;
	out->len = 0;
	/* RFC 1035 3.3.14: one or more character-strings. */
	if (len == 0)
		return -1;
	for (off = 0; off < len; off += 1 + (size_t)rdata[off]) {
		if (rdata[off] > len - off - 1)
			return -1;
		total += rdata[off];
	}
	out->data = xmalloc(total + 1);
	for (off = 0; off < len; off += 1 + (size_t)rdata[off]) {
		memcpy(out->data + out->len, rdata + off + 1, rdata[off]);
		out->len += rdata[off];
	}
	out->data[out->len] = '\0';
	return 0;
}

int
dns_rr_parse_tlsa(const uint8_t *rdata, size_t len, struct dns_tlsa *out)
{
	out->data = NULL;
	out->len = 0;
	if (len < 3)
		return -1;
	out->usage = rdata[0];
	out->selector = rdata[1];
	out->mtype = rdata[2];
	out->len = len - 3;
	out->data = xmalloc(out->len > 0 ? out->len : 1);
	if (out->len > 0)
		memcpy(out->data, rdata + 3, out->len);
	return 0;
}

static bool
dns_rr_isdigit(char c)
{
	return c >= '0' && c <= '9';
}

int
dns_rr_encode_name(const char *name, uint8_t *out, size_t outsize,
    size_t *len_r)
{
	const char *s = name;
	size_t o = 0;

	if (strcmp(s, ".") == 0)
		s = "";
	while (*s != '\0') {
		size_t lpos = o++, l = 0;

		if (lpos >= outsize)
			return -1;
		while (*s != '\0' && *s != '.') {
			unsigned int c = (unsigned char)*s++;

			if (c == '\\') {
				if (dns_rr_isdigit(s[0]) &&
				    dns_rr_isdigit(s[1]) &&
				    dns_rr_isdigit(s[2])) {
					c = (unsigned int)((s[0] - '0') * 100 +
					    (s[1] - '0') * 10 + (s[2] - '0'));
					if (c > 255)
						return -1;
					s += 3;
				} else if (*s != '\0' && !dns_rr_isdigit(*s))
					c = (unsigned char)*s++;
				else
					return -1;	/* RFC 1035 5.1: \DDD */
			}
			if (o >= outsize || l == DNS_LABEL_MAX)
				return -1;
			out[o++] = (uint8_t)c;
			l++;
		}
		if (l == 0)
			return -1;	/* "a..b", ".a" */
		out[lpos] = (uint8_t)l;
		if (*s == '.')
			s++;
	}
	if (o >= outsize)
		return -1;
	out[o++] = 0;
	if (o > DNS_WIRE_MAX)
		return -1;
	*len_r = o;
	return 0;
}

/* A number in [0, max] followed by one space; moves *s past both. */
static int
dns_rr_number(const char **s, uint64_t max, uint64_t *v_r)
{
	const char *sp = strchr(*s, ' ');
	char tmp[8];
	const char *error;
	size_t n;

	if (sp == NULL)
		return -1;
	n = (size_t)(sp - *s);
	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, *s, n);
	tmp[n] = '\0';
	if (parse_u64(tmp, 0, max, v_r, &error) == -1)
		return -1;
	*s = sp + 1;
	return 0;
}

/*
 * TXT: the text's octets in strings of at most 255, with \DDD and \X
 * decoded as dns_answer_format() writes them (so a test can serve a NUL
 * or any other octet).
 */
static int
dns_rr_encode_txt(const char *text, uint8_t *out, size_t outsize,
    size_t *len_r)
{
	const char *s = text;
	uint8_t *raw = xmalloc(strlen(text) + 1);
	size_t i, n, o;
	int rc = -1;

	for (n = 0; *s != '\0'; n++) {
		if (*s == '\\' && dns_rr_isdigit(s[1]) &&
		    dns_rr_isdigit(s[2]) && dns_rr_isdigit(s[3])) {
			unsigned int c = (unsigned int)((s[1] - '0') * 100 +
			    (s[2] - '0') * 10 + (s[3] - '0'));

			if (c > 255)
				goto done;
			raw[n] = (uint8_t)c;
			s += 4;
		} else if (*s == '\\' && s[1] != '\0') {
			raw[n] = (uint8_t)s[1];
			s += 2;
		} else
			raw[n] = (uint8_t)*s++;
	}
	o = 0;
	i = 0;
	do {
		size_t chunk = n - i > 255 ? 255 : n - i;

		if (o + 1 + chunk > outsize || o + 1 + chunk > 65535)
			goto done;
		out[o++] = (uint8_t)chunk;
		memcpy(out + o, raw + i, chunk);
		o += chunk;
		i += chunk;
	} while (i < n);
	*len_r = o;
	rc = 0;
done:
	free(raw);
	return rc;
}

int
dns_rr_encode(uint16_t type, const char *text, uint8_t *out,
    size_t outsize, size_t *len_r)
{
	const char *s = text;
	uint64_t v[3];
	size_t i, n;

	switch (type) {
	case DNS_TYPE_A:
		if (outsize < 4 || inet_pton(AF_INET, text, out) != 1)
			return -1;
		*len_r = 4;
		return 0;
	case DNS_TYPE_AAAA:
		if (outsize < 16 || inet_pton(AF_INET6, text, out) != 1)
			return -1;
		*len_r = 16;
		return 0;
	case DNS_TYPE_MX:
		if (outsize < 2 || dns_rr_number(&s, 65535, &v[0]) == -1)
			return -1;
		out[0] = (uint8_t)(v[0] >> 8);
		out[1] = (uint8_t)v[0];
		if (dns_rr_encode_name(s, out + 2, outsize - 2, &n) == -1)
			return -1;
		*len_r = n + 2;
		return 0;
	case DNS_TYPE_NS:
	case DNS_TYPE_CNAME:
	case DNS_TYPE_PTR:
		return dns_rr_encode_name(text, out, outsize, len_r);
	case DNS_TYPE_TXT:
		return dns_rr_encode_txt(text, out, outsize, len_r);
	case DNS_TYPE_TLSA:
		for (i = 0; i < 3; i++)
			if (dns_rr_number(&s, 255, &v[i]) == -1)
				return -1;
		n = strlen(s);
		if (n % 2 != 0 || outsize < 3 + n / 2)
			return -1;
		for (i = 0; i < 3; i++)
			out[i] = (uint8_t)v[i];
		for (i = 0; i < n / 2; i++) {
			int hi = hex_value(s[2 * i]);
			int lo = hex_value(s[2 * i + 1]);

			if (hi < 0 || lo < 0)
				return -1;
			out[3 + i] = (uint8_t)(hi << 4 | lo);
		}
		*len_r = 3 + n / 2;
		return 0;
	default:
		return -1;
	}
}

/* A bounded appender that counts what it would have written. */
struct dns_fmt {
	char *buf;
	size_t size;
	size_t len;
};

static void dns_fmt_add(struct dns_fmt *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
dns_fmt_add(struct dns_fmt *f, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(f->len < f->size ? f->buf + f->len : NULL,
	    f->len < f->size ? f->size - f->len : 0, fmt, ap);
	va_end(ap);
	if (r > 0)
		f->len += (size_t)r;
}

static void
dns_fmt_hex(struct dns_fmt *f, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		dns_fmt_add(f, "%02x", p[i]);
}

int
dns_answer_format(const struct dns_answer *ans, size_t i, char *buf,
    size_t size)
{
	struct dns_fmt f = { buf, size, 0 };
	char ntop[INET6_ADDRSTRLEN];
	size_t k;

	if (i >= ans->n)
		return -1;
	if (size > 0)
		buf[0] = '\0';
	if (ans->addrs != NULL) {
		if (inet_ntop(ans->addrs[i].family, ans->addrs[i].addr, ntop,
		    sizeof(ntop)) == NULL)
			return -1;
		dns_fmt_add(&f, "%s", ntop);
	} else if (ans->mx != NULL) {
		dns_fmt_add(&f, "%u %s", ans->mx[i].pref,
		    ans->mx[i].name[0] != '\0' ? ans->mx[i].name : ".");
	} else if (ans->txt != NULL) {
		for (k = 0; k < ans->txt[i].len; k++) {
			unsigned char c = (unsigned char)ans->txt[i].data[k];

			if (c < 0x20 || c >= 0x7f || c == '\\')
				dns_fmt_add(&f, "\\%03u", c);
			else
				dns_fmt_add(&f, "%c", c);
		}
	} else if (ans->names != NULL) {
		dns_fmt_add(&f, "%s", ans->names[i][0] != '\0' ?
		    ans->names[i] : ".");
	} else if (ans->tlsa != NULL) {
		dns_fmt_add(&f, "%u %u %u ", ans->tlsa[i].usage,
		    ans->tlsa[i].selector, ans->tlsa[i].mtype);
		dns_fmt_hex(&f, ans->tlsa[i].data, ans->tlsa[i].len);
	} else if (ans->raw != NULL) {
		dns_fmt_add(&f, "\\# %zu%s", ans->raw[i].len,
		    ans->raw[i].len > 0 ? " " : "");
		dns_fmt_hex(&f, ans->raw[i].data, ans->raw[i].len);
	} else
		return -1;
	return f.len > (size_t)0x7fffffff ? 0x7fffffff : (int)f.len;
}
