/*
 * mailaddr.c: the RFC 5321 mailbox grammar (with RFC 6531 UTF-8) that the
 * SMTP path parser and the aliases loader share.
 *
 * Entry points: mailaddr_is_letdig(), mailaddr_is_atext(),
 * mailaddr_scan_dot_string(), mailaddr_scan_quoted_string(),
 * mailaddr_scan_domain(), mailaddr_scan_address_literal(),
 * mailaddr_scan_domain_or_literal(), mailaddr_localpart_unquote().
 *
 * SECURITY: inputs are untrusted. The scanners only read up to the
 * terminating NUL (NUL never matches a class, so every look-ahead stops
 * there) and write nothing; the address literal is copied into a local
 * array only after its length is checked; the unquoter checks every
 * octet against outsize before writing it.
 * STANDARDS: RFC 5321 4.1.2, 4.1.3, 4.5.3.1; RFC 5322 3.2.3 (atext);
 * RFC 1035 2.3.4; RFC 3629 (UTF-8); RFC 6531 3.3.
 * OWNERSHIP: nothing is allocated; results point into the caller's string
 * or are written into the caller's buffer.
 */
#include "mailaddr/mailaddr.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <string.h>

#include "lib/utf8.h"
#include "lib/util.h"

/* The longest address literal we can accept: "IPv6:" + an IPv6 text. */
#define LITERAL_MAX		(5 + INET6_ADDRSTRLEN)

bool
mailaddr_is_letdig(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9');
}

bool
mailaddr_is_atext(unsigned char c)
{
	return mailaddr_is_letdig(c) ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Length of the UTF8-non-ascii sequence at p if flags allow one, else 0. */
static size_t
utf8_len(const char *p, unsigned int flags)
{
	return (flags & MAILADDR_UTF8) != 0 ? utf8_seq_len(p) : 0;
}

static void
set_utf8(bool *utf8_r)
{
	if (utf8_r != NULL)
		*utf8_r = true;
}

const char *
mailaddr_scan_dot_string(const char *p, unsigned int flags, bool *utf8_r,
    const char **bad_r)
{
	const char *start;
	size_t n;

	for (;;) {
		start = p;
		for (;;) {
			if (mailaddr_is_atext(*p))
				p++;
			else if ((n = utf8_len(p, flags)) > 0) {
				set_utf8(utf8_r);
				p += n;
			} else
				break;
		}
		if (p == start) {
			if (bad_r != NULL)
				*bad_r = p;
			return NULL;
		}
		if (*p != '.')
			return p;
		p++;
	}
}

const char *
mailaddr_scan_quoted_string(const char *p, unsigned int flags, bool *utf8_r,
    const char **bad_r)
{
	unsigned char c;
	size_t n;

	if (*p != '"')
		goto bad;
	for (p++;; p += n) {
		c = *p;
		n = 1;
		if (c == '"')
			return p + 1;
		if (c == '\\') {
			c = p[1];
			if (c < 32 || c > 126)
				goto bad;
			n = 2;
		} else if (c >= 32 && c <= 126)
			;
		else if ((n = utf8_len(p, flags)) > 0)
			set_utf8(utf8_r);
		else
			goto bad;
	}

bad:
	if (bad_r != NULL)
		*bad_r = p;
	return NULL;
}

const char *
mailaddr_scan_domain(const char *p, unsigned int flags, bool *utf8_r)
{
	const char *start;
	unsigned char last;
	bool nonascii;
	size_t n;

	for (;;) {
		start = p;
		last = '\0';
		nonascii = false;
		for (;;) {
			if (mailaddr_is_letdig(*p) || *p == '-' ||
			    ((flags & MAILADDR_UNDERSCORE) != 0 && *p == '_'))
				last = *p++;
			else if ((n = utf8_len(p, flags)) > 0) {
				nonascii = true;
				last = 0x80;
				p += n;
			} else
				break;
		}
		if (p == start || *start == '-' || last == '-')
			return NULL;
		if (nonascii)
			set_utf8(utf8_r);
		else if ((size_t)(p - start) > MAILADDR_LABEL_MAX)
			return NULL;
		if (*p != '.')
			return p;
		p++;
	}
}

const char *
mailaddr_scan_address_literal(const char *p)
{
	char tmp[LITERAL_MAX + 1];
	struct in6_addr a6;
	struct in_addr a4;
	const char *q;
	size_t len;

	if (*p != '[')
		return NULL;
	/* dcontent = %d33-90 / %d94-126: no '[', '\\', SP, CTL or 8-bit. */
	for (q = p + 1; *q != ']'; q++)
		if (!((*q >= 33 && *q <= 90) || (*q >= 94 && *q <= 126)))
			return NULL;
	len = q - (p + 1);
	if (len == 0 || len > LITERAL_MAX)
		return NULL;
	memcpy(tmp, p + 1, len);
	tmp[len] = '\0';
	if (ascii_strncasecmp(tmp, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, tmp + 5, &a6) != 1)
			return NULL;
	} else if (inet_pton(AF_INET, tmp, &a4) != 1)
		return NULL;
	return q + 1;
}

const char *
mailaddr_scan_domain_or_literal(const char *p, unsigned int flags,
    bool *utf8_r)
{
	if (*p == '[')
		return mailaddr_scan_address_literal(p);
	return mailaddr_scan_domain(p, flags, utf8_r);
}

int
mailaddr_localpart_unquote(const char *lp, size_t len, char *out,
    size_t outsize)
{
	const char *p = lp, *end = lp + len;
	bool quoted = false;
	size_t o = 0;
	char c;

	if (outsize == 0)
		return -1;
	if (p < end && *p == '"') {
		quoted = true;
		p++;
	}
	for (; p < end; p++) {
		c = *p;
		if (quoted) {
			if (c == '"')
				break;
			if (c == '\\' && p + 1 < end)
				c = *++p;
		}
		if (o + 1 >= outsize) {
			out[0] = '\0';
			return -1;
		}
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}
