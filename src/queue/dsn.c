/*
 * dsn.c: the delivery status notification composer (bounces, delay
 * warnings, success and "relayed" notices).
 *
 * Entry points: dsn_compose(), dsn_size_hint(), dsn_action_name(),
 * dsn_xtext_decode(), dsn_set_random() (tests).
 *
 * The composer reads the original content once, normalising line ends to
 * CRLF, into a buffer capped at size_limit: the header block (cut before
 * the field that would cross the cap; lines over 998 octets cut), and the
 * body too when the whole message may be returned. It then writes the
 * notification part (for people), the delivery-status part (for
 * programs) and the returned content, picks a random MIME boundary that
 * occurs in none of them, and assembles the message. When the caller's
 * buffer is too small, it retries with less returned content.
 *
 * SECURITY: nearly every string here is untrusted: remote replies, host
 * names, ORCPT and ENVID values (decoded xtext may hold CR or LF), the
 * original header block. Nothing reaches the output unfiltered: control
 * characters become '?' (TAB a space), non-ASCII bytes become '?' unless
 * the report is an SMTPUTF8 one and they form well-formed UTF-8, and the
 * returned content can never end the MIME part early (the boundary is
 * checked against it). Memory is bounded by size_limit plus the caller's
 * cap on its output buffer. Runs with the daemon's unprivileged user.
 * STANDARDS: RFC 3464 (message/delivery-status; 2.2 per-message fields,
 * 2.3 per-recipient fields, appendix examples), RFC 6522
 * (multipart/report; report-type names the second part's subtype), RFC
 * 3461 4 (xtext), 4.2 (ORCPT: type kept, value decoded), 4.3 (RET
 * applies to failure reports), RFC 3463 (status codes), RFC 3834 5
 * (Auto-Submitted: auto-replied), RFC 5322 2.1.1 and 2.2.3 (998-octet
 * lines, folding), 3.3 (date-time), RFC 2045 6 (8bit parts), RFC 6533
 * (utf-8 address type, message/global-delivery-status, global-headers,
 * global), RFC 6532 (UTF-8 header fields).
 * OWNERSHIP: everything in struct dsn_report is borrowed; the result is
 * appended to the caller's buffer; temporaries are freed before return.
 */
#include "queue/dsn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/utf8.h"
#include "lib/util.h"

#define DSN_LINE_MAX	998	/* RFC 5322 2.1.1, without CRLF */
#define DSN_FOLD	78	/* preferred line length of header fields */
#define DSN_CUT		990	/* where a line without spaces is cut */
#define DSN_MSGID_MAX	256	/* a longer Message-ID is not repeated */
#define DSN_HOST_MAX	255
#define DSN_BOUNDARY_TRIES 32
#define DSN_INDENT	"    "	/* reply lines in the text part */

/* What the third part returns. */
enum dsn_quote {
	DSN_QUOTE_FULL,		/* the whole message */
	DSN_QUOTE_HEADERS,	/* its header block */
	DSN_QUOTE_NONE,
};

/* A buffer writer whose first failure (EMSGSIZE) sticks. */
struct dsn_w {
	struct buf *b;
	bool failed;
};

/* The original content, normalised, as far as the report needs it. */
struct dsn_content {
	struct buf store;	/* CRLF lines; max size_limit */
	size_t hdr_len;		/* the header block is store[0..hdr_len) */
	size_t field_start;	/* where the current header field starts */
	bool hdr_done;		/* hdr_len is final */
	bool full_ok;		/* store holds the whole message */
	bool done;		/* nothing more is needed */
	bool cr;		/* a CR waits for its LF */
	size_t linelen;
	char line[DSN_LINE_MAX + 1];	/* one octet more: "too long" */
};

static void dsn_random_default(unsigned char *, size_t);

static dsn_random_fn dsn_random = dsn_random_default;

static const char *const dsn_action_names[] = {
	[DSN_FAILED] = "failed",
	[DSN_DELAYED] = "delayed",
	[DSN_DELIVERED] = "delivered",
	[DSN_RELAYED] = "relayed",
	[DSN_EXPANDED] = "expanded",
};

/* RFC 3463 3.x: subject.detail texts, for a report without a reply. */
static const struct {
	const char *code;
	const char *text;
} dsn_status_texts[] = {
	{ "0.0", "Other undefined status" },
	{ "1.0", "Other address status" },
	{ "1.1", "Bad destination mailbox address" },
	{ "1.2", "Bad destination system address" },
	{ "1.3", "Bad destination mailbox address syntax" },
	{ "1.4", "Destination mailbox address ambiguous" },
	{ "1.5", "Destination address valid" },
	{ "1.6", "Destination mailbox has moved" },
	{ "1.7", "Bad sender's mailbox address syntax" },
	{ "1.8", "Bad sender's system address" },
	{ "1.10", "Recipient address has null MX" },
	{ "2.0", "Other or undefined mailbox status" },
	{ "2.1", "Mailbox disabled, not accepting messages" },
	{ "2.2", "Mailbox full" },
	{ "2.3", "Message length exceeds administrative limit" },
	{ "2.4", "Mailing list expansion problem" },
	{ "3.0", "Other or undefined mail system status" },
	{ "3.1", "Mail system full" },
	{ "3.2", "System not accepting network messages" },
	{ "3.3", "System not capable of selected features" },
	{ "3.4", "Message too big for system" },
	{ "3.5", "System incorrectly configured" },
	{ "4.0", "Other or undefined network or routing status" },
	{ "4.1", "No answer from host" },
	{ "4.2", "Bad connection" },
	{ "4.3", "Directory server failure" },
	{ "4.4", "Unable to route" },
	{ "4.5", "Mail system congestion" },
	{ "4.6", "Routing loop detected" },
	{ "4.7", "Delivery time expired" },
	{ "5.0", "Other or undefined protocol status" },
	{ "5.1", "Invalid command" },
	{ "5.2", "Syntax error" },
	{ "5.3", "Too many recipients" },
	{ "5.4", "Invalid command arguments" },
	{ "5.5", "Wrong protocol version" },
	{ "6.0", "Other or undefined media error" },
	{ "6.1", "Media not supported" },
	{ "6.2", "Conversion required and prohibited" },
	{ "6.3", "Conversion required but not supported" },
	{ "6.4", "Conversion with loss performed" },
	{ "6.5", "Conversion failed" },
	{ "6.7", "Non-ASCII addresses not permitted for that "
	    "sender/recipient" },
	{ "7.0", "Other or undefined security status" },
	{ "7.1", "Delivery not authorized, message refused" },
	{ "7.2", "Mailing list expansion prohibited" },
	{ "7.3", "Security conversion required but not possible" },
	{ "7.4", "Security features not supported" },
	{ "7.5", "Cryptographic failure" },
	{ "7.6", "Cryptographic algorithm not supported" },
	{ "7.7", "Message integrity failure" },
};

/* ---- Small helpers ---- */

const char *
dsn_action_name(enum dsn_action action)
{
	if ((unsigned int)action >= nitems(dsn_action_names))
		return "failed";
	return dsn_action_names[action];
}

void
dsn_set_random(dsn_random_fn fn)
{
	dsn_random = fn != NULL ? fn : dsn_random_default;
}

static void
dsn_random_default(unsigned char *p, size_t n)
{
	static uint64_t counter;
	uint64_t x;
	size_t i;

	if (n <= 1024 && RAND_bytes(p, (int)n) == 1)
		return;
	/*
	 * No randomness: boundaries are still checked against the content,
	 * and a Message-ID only needs to differ from the last one.
	 */
	x = time_real_usec() ^ (++counter * 0x9e3779b97f4a7c15ULL);
	for (i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)x;
	}
}

static void
dsn_hex(char *dst, const unsigned char *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		dst[2 * i] = digits[p[i] >> 4];
		dst[2 * i + 1] = digits[p[i] & 15];
	}
	dst[2 * n] = '\0';
}

static bool
dsn_has_8bit(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

static bool
dsn_is_empty(const char *s)
{
	return s == NULL || s[0] == '\0';
}

static size_t
dsn_len(const char *s)
{
	return s != NULL ? strlen(s) : 0;
}

/* RFC 5322 3.3 date-time in UTC, "Sat, 29 Nov 2025 02:13:13 +0000". */
static void
dsn_date(char *dst, size_t size, uint64_t t)
{
	static const char *const days[] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat",
	};
	static const char *const months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
	};
	struct tm tm;
	time_t tt;

	if (t > 253402300799ULL)	/* 9999-12-31T23:59:59Z */
		t = 253402300799ULL;
	tt = (time_t)t;
	if (gmtime_r(&tt, &tm) == NULL) {
		tt = 0;
		gmtime_r(&tt, &tm);
	}
	snprintf(dst, size, "%s, %02d %s %04d %02d:%02d:%02d +0000",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* "45 seconds", "30 minutes", "4 hours", "5 days": whole units, down. */
static void
dsn_duration(char *dst, size_t size, uint64_t s)
{
	unsigned long long n;
	const char *unit;

	if (s < 120) {
		n = s;
		unit = s == 1 ? "second" : "seconds";
	} else if (s < 2 * 3600) {
		n = s / 60;
		unit = "minutes";
	} else if (s < 2 * 86400) {
		n = s / 3600;
		unit = "hours";
	} else {
		n = s / 86400;
		unit = "days";
	}
	snprintf(dst, size, "%llu %s", n, unit);
}

/* ---- The sticky writer ---- */

static void
dsn_w_add(struct dsn_w *w, const void *p, size_t n)
{
	if (!w->failed && buf_append(w->b, p, n) == -1)
		w->failed = true;
}

static void
dsn_w_str(struct dsn_w *w, const char *s)
{
	dsn_w_add(w, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3)))
dsn_w_printf(struct dsn_w *w, const char *fmt, ...)
{
	va_list ap;
	char small[512];
	char *big;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		fatalx("dsn: vsnprintf failed");
	if ((size_t)n < sizeof(small)) {
		dsn_w_add(w, small, (size_t)n);
		return;
	}
	big = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	dsn_w_add(w, big, (size_t)n);
	free(big);
}

/*
 * Append s[0..n) with control characters and DEL as '?', TAB as a space,
 * and each non-ASCII byte as '?' unless utf8 is set and it belongs to a
 * well-formed UTF-8 sequence inside s[0..n). Never longer than n. s must
 * be NUL-terminated somewhere at or after n (utf8_seq_len reads ahead).
 */
static void
dsn_w_clean(struct dsn_w *w, const char *s, size_t n, bool utf8)
{
	size_t i = 0, run, k;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];

		for (run = 0; i + run < n; run++) {
			c = (unsigned char)s[i + run];
			if (c < 0x20 || c >= 0x7f)
				break;
		}
		dsn_w_add(w, s + i, run);
		i += run;
		if (i >= n)
			break;
		if (c == '\t') {
			dsn_w_add(w, " ", 1);
			i++;
		} else if (c >= 0x80 && utf8 && (k = utf8_seq_len(s + i)) > 0 &&
		    k <= n - i) {
			dsn_w_add(w, s + i, k);
			i += k;
		} else {
			dsn_w_add(w, "?", 1);
			i++;
		}
	}
}

/* A heap copy of s[0..n) cleaned as by dsn_w_clean(). */
static char *
dsn_clean_dup(const char *s, size_t n, bool utf8)
{
	struct buf b;
	struct dsn_w w = { &b, false };
	char *p;

	buf_init(&b, n + 1);
	dsn_w_clean(&w, s, n, utf8);
	if (w.failed)
		fatalx("dsn: cleaning grew the text");
	p = b.data != NULL ? b.data : xstrdup("");
	return p;
}

/*
 * A header field "Name: value" (value cleaned: no CR, LF or other
 * controls), folded (RFC 5322 2.2.3) before a space so that lines stay
 * within 78 octets where the words allow, and always within 998. A run
 * of more than 990 octets without a space is cut by inserting CRLF and a
 * space, a run of blanks that long becomes one, and blanks at the end
 * go (the only changes to a value, and only to absurd ones: trailing
 * blanks would otherwise end up on a line of their own, of any length).
 */
static void
dsn_w_field(struct dsn_w *w, const char *name, const char *value)
{
	size_t n = strlen(value), pos = 0, col, first, brk, k, back;

	while (n > 0 && value[n - 1] == ' ')
		n--;
	dsn_w_str(w, name);
	dsn_w_add(w, ":", 1);
	if (n > 0)
		dsn_w_add(w, " ", 1);
	col = strlen(name) + 2;
	while (col + (n - pos) > DSN_FOLD) {
		/* A fold must leave something other than blanks behind. */
		first = pos;
		while (first < n && value[first] == ' ')
			first++;
		if (first == n)
			break;
		if (first - pos >= DSN_CUT - col) {
			/* A run of blanks that fills a line by itself would
			 * leave a blank continuation line: keep one. */
			pos = first - 1;
			continue;
		}
		brk = 0;
		for (k = first + 1; k < n && col + (k - pos) <= DSN_FOLD; k++)
			if (value[k] == ' ')
				brk = k;
		if (brk == 0)	/* a long word: the first space after it */
			for (k = first + 1; k < n &&
			    col + (k - pos) <= DSN_LINE_MAX; k++)
				if (value[k] == ' ') {
					brk = k;
					break;
				}
		if (brk == 0 && col + (n - pos) <= DSN_LINE_MAX)
			break;
		if (brk == 0) {
			/* No space to fold at within 998 octets: cut,
			 * keeping UTF-8 sequences whole. */
			brk = pos + (DSN_CUT - col);
			for (back = 0; back < 3 && brk > first + 1 &&
			    ((unsigned char)value[brk] & 0xc0) == 0x80; back++)
				brk--;
			dsn_w_add(w, value + pos, brk - pos);
			dsn_w_add(w, "\r\n ", 3);
			col = 1;
			pos = brk;
			continue;
		}
		/* The space at brk starts the continuation line. */
		dsn_w_add(w, value + pos, brk - pos);
		dsn_w_add(w, "\r\n", 2);
		col = 0;
		pos = brk;
	}
	dsn_w_add(w, value + pos, n - pos);
	dsn_w_add(w, "\r\n", 2);
}

/*
 * A line of text (cleaned) after indent; when it would exceed 998 octets
 * it is wrapped at the last space that fits (or cut), each piece with the
 * same indent.
 */
static void
dsn_w_line(struct dsn_w *w, const char *indent, const char *s, size_t n)
{
	size_t width = DSN_LINE_MAX - strlen(indent), k, brk, back;

	while (n > width) {
		brk = 0;
		for (k = width; k > 0; k--)
			if (s[k] == ' ') {
				brk = k;
				break;
			}
		dsn_w_str(w, indent);
		if (brk > 0) {
			dsn_w_add(w, s, brk);
			s += brk + 1;
			n -= brk + 1;
		} else {
			brk = width;
			for (back = 0; back < 3 && brk > 1 &&
			    ((unsigned char)s[brk] & 0xc0) == 0x80; back++)
				brk--;
			dsn_w_add(w, s, brk);
			s += brk;
			n -= brk;
		}
		dsn_w_add(w, "\r\n", 2);
	}
	dsn_w_str(w, indent);
	dsn_w_add(w, s, n);
	dsn_w_add(w, "\r\n", 2);
}

/* ---- xtext, addresses, status codes ---- */

int
dsn_xtext_decode(const char *in, char *out, size_t outlen)
{
	size_t n = 0;
	int hi, lo;
	char c;

	if (outlen > 0)
		out[0] = '\0';
	while (*in != '\0') {
		c = *in;
		if ((unsigned char)c < '!' || (unsigned char)c > '~') {
			if (outlen > 0)
				out[0] = '\0';
			errno = EINVAL;
			return -1;
		}
		if (c == '+') {
			if ((hi = hex_value(in[1])) == -1 ||
			    (lo = hex_value(in[2])) == -1 ||
			    (hi == 0 && lo == 0)) {
				if (outlen > 0)
					out[0] = '\0';
				errno = EINVAL;
				return -1;
			}
			c = (char)(hi << 4 | lo);
			in += 3;
		} else
			in++;
		if (n + 1 >= outlen || n >= (size_t)INT32_MAX) {
			if (outlen > 0)
				out[0] = '\0';
			errno = EMSGSIZE;
			return -1;
		}
		out[n++] = c;
	}
	if (outlen == 0) {
		errno = EMSGSIZE;
		return -1;
	}
	out[n] = '\0';
	return (int)n;
}

/*
 * Decode xtext into a heap string if the result is text we may show:
 * no control characters, and non-ASCII only as well-formed UTF-8 when
 * utf8 is set. NULL otherwise (the caller shows the xtext as is).
 */
static char *
dsn_xtext_text(const char *x, bool utf8)
{
	size_t n = strlen(x) + 1, i, k;
	char *p = xmalloc(n);
	int len;

	if ((len = dsn_xtext_decode(x, p, n)) == -1)
		goto fail;
	for (i = 0; i < (size_t)len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c < 0x20 || c == 0x7f)
			goto fail;
		if (c >= 0x80) {
			if (!utf8 || (k = utf8_seq_len(p + i)) == 0)
				goto fail;
			i += k - 1;
		}
	}
	return p;
fail:
	free(p);
	return NULL;
}

/* Code point of the well-formed UTF-8 sequence of length k at s. */
static unsigned long
dsn_utf8_cp(const char *s, size_t k)
{
	const unsigned char *u = (const unsigned char *)s;
	unsigned long cp;
	size_t i;

	cp = u[0] & (k == 2 ? 0x1f : k == 3 ? 0x0f : 0x07);
	for (i = 1; i < k; i++)
		cp = cp << 6 | (u[i] & 0x3f);
	return cp;
}

/*
 * RFC 6533 3 utf-8-addr-xtext: the ASCII form of a UTF-8 address, each
 * code point outside printable ASCII (and '\', '+', '=', space) as
 * \x{HEX}. Bytes that are not UTF-8 become '?'.
 */
static void
dsn_w_uxtext(struct dsn_w *w, const char *s)
{
	size_t k;

	while (*s != '\0') {
		unsigned char c = (unsigned char)*s;

		if (c > 0x20 && c < 0x7f && c != '\\' && c != '+' &&
		    c != '=') {
			dsn_w_add(w, s, 1);
			s++;
		} else if (c < 0x80) {
			dsn_w_printf(w, "\\x{%02X}", c);
			s++;
		} else if ((k = utf8_seq_len(s)) > 0) {
			dsn_w_printf(w, "\\x{%lX}", dsn_utf8_cp(s, k));
			s += k;
		} else {
			dsn_w_add(w, "?", 1);
			s++;
		}
	}
}

/*
 * Undo RFC 6533 3 EmbeddedUnicodeChar escapes (\x{HEX}, one to six hex
 * digits, a Unicode scalar value) into UTF-8: a heap string, or NULL when
 * an escape is malformed.
 */
static char *
dsn_uxtext_decode(const char *s)
{
	struct buf b;
	struct dsn_w w = { &b, false };
	unsigned long cp;
	unsigned char u[4];
	size_t digits, n;
	int h;

	buf_init(&b, strlen(s) + 1);
	while (*s != '\0') {
		if (s[0] != '\\' || s[1] != 'x' || s[2] != '{') {
			dsn_w_add(&w, s++, 1);
			continue;
		}
		s += 3;
		for (cp = 0, digits = 0; (h = hex_value(*s)) != -1; s++)
			if (++digits <= 6)
				cp = cp << 4 | (unsigned long)h;
		if (*s != '}' || digits == 0 || digits > 6 || cp == 0 ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
			buf_free(&b);
			return NULL;
		}
		s++;
		if (cp < 0x80) {
			u[0] = (unsigned char)cp;
			n = 1;
		} else if (cp < 0x800) {
			u[0] = (unsigned char)(0xc0 | cp >> 6);
			u[1] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 2;
		} else if (cp < 0x10000) {
			u[0] = (unsigned char)(0xe0 | cp >> 12);
			u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
			u[2] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 3;
		} else {
			u[0] = (unsigned char)(0xf0 | cp >> 18);
			u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
			u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
			u[3] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 4;
		}
		/* An escape never expands: "\x{..}" is longer than its
		 * UTF-8 form. */
		dsn_w_add(&w, u, n);
	}
	if (w.failed)
		fatalx("dsn: \\x{} decoding grew the text");
	return b.data != NULL ? b.data : xstrdup("");
}

/*
 * An address field (Final-Recipient, X-Petrel-Sender): "rfc822; addr"
 * for ASCII; a UTF-8 address is "utf-8; addr" in a global report and
 * "utf-8; " utf-8-addr-xtext in a plain one (RFC 6533 3).
 */
static void
dsn_w_addr_field(struct dsn_w *w, const char *name, const char *addr,
    bool global)
{
	struct buf v;
	struct dsn_w vw = { &v, false };
	size_t n = strlen(addr);
	bool eight = dsn_has_8bit(addr, n);

	buf_init(&v, 8 * n + 64);
	if (!eight) {
		dsn_w_str(&vw, "rfc822; ");
		dsn_w_clean(&vw, addr, n, false);
	} else if (global) {
		dsn_w_str(&vw, "utf-8; ");
		dsn_w_clean(&vw, addr, n, true);
	} else {
		dsn_w_str(&vw, "utf-8; ");
		dsn_w_uxtext(&vw, addr);
	}
	if (vw.failed)
		fatalx("dsn: address field overflow");
	dsn_w_field(w, name, buf_str(&v));
	buf_free(&v);
}

/*
 * Split an ORCPT "addr-type;xtext" (RFC 3461 4.2). The type is copied to
 * type (a bad or missing one reads as rfc822); the value, decoded when
 * that gives showable text (else as given, cleaned), is returned on the
 * heap, with *decoded_r telling which.
 */
static char *
dsn_orcpt_split(const char *orcpt, bool global, char *type, size_t typesize,
    bool *decoded_r)
{
	const char *semi = strchr(orcpt, ';'), *x, *t, *te;
	char *v;
	size_t i;
	bool ok = semi != NULL;

	strlcpy(type, "rfc822", typesize);
	x = orcpt;
	if (ok) {
		t = orcpt;
		while (*t == ' ')
			t++;
		te = semi;
		while (te > t && te[-1] == ' ')
			te--;
		ok = te > t && (size_t)(te - t) < typesize;
		for (i = 0; ok && t + i < te; i++) {
			char c = t[i];

			ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '-';
		}
		if (ok) {
			memcpy(type, t, (size_t)(te - t));
			type[te - t] = '\0';
			x = semi + 1;
			while (*x == ' ')
				x++;
		}
	}
	if ((v = dsn_xtext_text(x, global)) != NULL) {
		*decoded_r = true;
		return v;
	}
	*decoded_r = false;
	return dsn_clean_dup(x, strlen(x), false);
}

/* Original-Recipient from an ORCPT. */
static void
dsn_w_orcpt_field(struct dsn_w *w, const char *orcpt, bool global)
{
	struct buf v;
	struct dsn_w vw = { &v, false };
	char type[33];
	char *val;
	bool decoded;

	val = dsn_orcpt_split(orcpt, global, type, sizeof(type), &decoded);
	buf_init(&v, strlen(val) + sizeof(type) + 16);
	/* An rfc822 value that decoded to UTF-8 is a utf-8 address. */
	if (ascii_strcasecmp(type, "rfc822") == 0 &&
	    dsn_has_8bit(val, strlen(val)))
		strlcpy(type, "utf-8", sizeof(type));
	dsn_w_printf(&vw, "%s; %s", type, val);
	if (vw.failed)
		fatalx("dsn: ORCPT field overflow");
	dsn_w_field(w, "Original-Recipient", buf_str(&v));
	buf_free(&v);
	free(val);
}

/* RFC 3463 2: class "." subject "." detail, 1-3 digits each. */
static bool
dsn_status_ok(const char *s, size_t n)
{
	size_t i = 0, part, digits;

	if (n < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return false;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (digits = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			digits++;
		if (digits == 0 || digits > 3)
			return false;
		if (part == 0) {
			if (i >= n || s[i] != '.')
				return false;
			i++;
		}
	}
	return i == n;
}

/* A reply: three digits, the first 2-5, then a space, '-' or the end. */
static bool
dsn_is_reply(const char *s)
{
	return s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' &&
	    s[2] >= '0' && s[2] <= '9' &&
	    (s[3] == ' ' || s[3] == '-' || s[3] == '\0' || s[3] == '\r' ||
	    s[3] == '\n');
}

/* The status to report for rc into dst (at least 16 bytes). */
static void
dsn_status_pick(const struct dsn_rcpt *rc, char *dst, size_t size)
{
	const char *d = rc->diagnostic, *e;

	if (!dsn_is_empty(rc->status) &&
	    dsn_status_ok(rc->status, strlen(rc->status))) {
		strlcpy(dst, rc->status, size);
		return;
	}
	if (!dsn_is_empty(d) && dsn_is_reply(d) && (d[3] == ' ' ||
	    d[3] == '-')) {
		d += 4;
		for (e = d; *e >= '0' && *e <= '9'; e++)
			;
		for (; *e == '.' || (*e >= '0' && *e <= '9'); e++)
			;
		if ((*e == ' ' || *e == '\0' || *e == '\r' || *e == '\n') &&
		    dsn_status_ok(d, (size_t)(e - d)) &&
		    (size_t)(e - d) < size) {
			memcpy(dst, d, (size_t)(e - d));
			dst[e - d] = '\0';
			return;
		}
	}
	strlcpy(dst, rc->action == DSN_FAILED ? "5.0.0" :
	    rc->action == DSN_DELAYED ? "4.0.0" : "2.0.0", size);
}

static const char *
dsn_status_text(const char *status)
{
	const char *sd = status + 2, *dot;
	char subject[8];
	size_t i;

	for (i = 0; i < nitems(dsn_status_texts); i++)
		if (strcmp(dsn_status_texts[i].code, sd) == 0)
			return dsn_status_texts[i].text;
	if ((dot = strchr(sd, '.')) != NULL &&
	    (size_t)(dot - sd) + 3 <= sizeof(subject)) {
		memcpy(subject, sd, (size_t)(dot - sd));
		memcpy(subject + (dot - sd), ".0", 3);
		for (i = 0; i < nitems(dsn_status_texts); i++)
			if (strcmp(dsn_status_texts[i].code, subject) == 0)
				return dsn_status_texts[i].text;
	}
	return dsn_status_texts[0].text;
}

/*
 * Call fn for each non-empty line of a diagnostic (lines end at CR, LF
 * or CRLF).
 */
static void
dsn_diag_lines(const char *d, void (*fn)(void *, const char *, size_t),
    void *arg)
{
	size_t n;

	while (*d != '\0') {
		n = strcspn(d, "\r\n");
		if (n > 0)
			fn(arg, d, n);
		d += n;
		while (*d == '\r' || *d == '\n')
			d++;
	}
}

struct dsn_join {
	struct dsn_w *w;
	bool global;
	bool any;
};

static void
dsn_join_line(void *arg, const char *s, size_t n)
{
	struct dsn_join *j = arg;

	if (j->any)
		dsn_w_add(j->w, " ", 1);
	dsn_w_clean(j->w, s, n, j->global);
	j->any = true;
}

/* Diagnostic-Code: smtp; <reply lines joined by spaces>. */
static void
dsn_w_diag_field(struct dsn_w *w, const char *diag, bool global)
{
	struct buf v;
	struct dsn_w vw = { &v, false };
	struct dsn_join j = { &vw, global, false };

	buf_init(&v, strlen(diag) + 32);
	dsn_w_str(&vw, dsn_is_reply(diag) ? "smtp; " : "X-Petrel; ");
	dsn_diag_lines(diag, dsn_join_line, &j);
	if (vw.failed)
		fatalx("dsn: diagnostic field overflow");
	dsn_w_field(w, "Diagnostic-Code", buf_str(&v));
	buf_free(&v);
}

/* ---- Reading the original ---- */

/* One whole line (without its end) is in c->line[0..c->linelen). */
static void
dsn_content_line(struct dsn_content *c)
{
	size_t n = c->linelen, back;
	bool is_long = n > DSN_LINE_MAX;

	c->linelen = 0;
	if (is_long) {
		/* RFC 5322 2.1.1: cut at 998, not inside a UTF-8 sequence. */
		n = DSN_LINE_MAX;
		for (back = 0; back < 3 && n > 0 &&
		    ((unsigned char)c->line[n] & 0xc0) == 0x80; back++)
			n--;
	}
	if (!c->hdr_done) {
		if (n == 0 && !is_long) {
			/* The empty line: the header block is complete. */
			c->hdr_done = true;
			c->hdr_len = c->store.len;
			if (!c->full_ok ||
			    buf_append(&c->store, "\r\n", 2) == -1) {
				c->full_ok = false;
				c->done = true;
			}
			return;
		}
		if (is_long)
			c->full_ok = false;
		if (c->line[0] != ' ' && c->line[0] != '\t')
			c->field_start = c->store.len;
		if (buf_append(&c->store, c->line, n) == -1 ||
		    buf_append(&c->store, "\r\n", 2) == -1) {
			/* Over the cap: drop the field that crossed it. */
			c->store.len = c->field_start;
			if (c->store.data != NULL)
				c->store.data[c->store.len] = '\0';
			c->hdr_len = c->field_start;
			c->hdr_done = true;
			c->full_ok = false;
			c->done = true;
		}
		return;
	}
	if (!c->full_ok || is_long || buf_append(&c->store, c->line, n) == -1 ||
	    buf_append(&c->store, "\r\n", 2) == -1) {
		c->full_ok = false;
		c->done = true;
	}
}

static void
dsn_content_feed(struct dsn_content *c, const char *p, size_t n)
{
	size_t i;
	char b;

	for (i = 0; i < n && !c->done; i++) {
		b = p[i];
		if (c->cr) {
			/* CRLF, or a bare CR: either ends the line. */
			c->cr = false;
			dsn_content_line(c);
			if (b == '\n' || c->done)
				continue;
		}
		if (b == '\r')
			c->cr = true;
		else if (b == '\n')
			dsn_content_line(c);
		else if (c->linelen <= DSN_LINE_MAX) {
			if (b == '\0') {
				/* A NUL cannot be returned as is. */
				b = '?';
				c->full_ok = false;
			}
			c->line[c->linelen++] = b;
		}
	}
}

/* Read the source. Returns 0, or -1 with errno. */
static int
dsn_content_read(struct dsn_content *c, const struct dsn_source *src)
{
	const char *data;
	size_t len;
	int rv;

	while (!c->done) {
		data = NULL;
		len = 0;
		errno = 0;
		rv = src->next(src->arg, &data, &len);
		if (rv == 0)
			break;
		if (rv != 1) {
			if (errno == 0)
				errno = EIO;
			return -1;
		}
		if (len > 0 && data == NULL) {
			errno = EIO;
			return -1;
		}
		dsn_content_feed(c, data, len);
	}
	if (!c->done && (c->cr || c->linelen > 0)) {
		/* The last line had no line end. */
		c->cr = false;
		dsn_content_line(c);
	}
	if (!c->hdr_done) {
		c->hdr_len = c->store.len;
		c->hdr_done = true;
	}
	return 0;
}

/* Also the Message-ID of the "smtp: queued" log line (issue 6). */
void
dsn_find_msgid(const char *h, size_t n, char *dst, size_t size)
{
	static const char name[] = "message-id";
	const char *p = h, *end = h + n, *eol, *v, *lt, *gt, *q;
	char val[DSN_MSGID_MAX * 2];
	size_t vlen = 0, k;

	dst[0] = '\0';
	while (p < end) {
		eol = memchr(p, '\r', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - p) > sizeof(name) - 1 &&
		    ascii_strncasecmp(p, name, sizeof(name) - 1) == 0) {
			v = p + sizeof(name) - 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			if (v < eol && *v == ':')
				break;
		}
		p = eol + 2;
	}
	if (p >= end)
		return;
	/* The value with its continuation lines, unfolded. */
	v = (const char *)memchr(p, ':', (size_t)(end - p)) + 1;
	for (;;) {
		eol = memchr(v, '\r', (size_t)(end - v));
		if (eol == NULL)
			eol = end;
		k = (size_t)(eol - v);
		if (k > sizeof(val) - 1 - vlen)
			return;
		memcpy(val + vlen, v, k);
		vlen += k;
		v = eol + 2;
		if (v >= end || (*v != ' ' && *v != '\t'))
			break;
	}
	val[vlen] = '\0';
	if ((lt = strchr(val, '<')) == NULL ||
	    (gt = strchr(lt, '>')) == NULL ||
	    (size_t)(gt - lt) + 2 > size || gt - lt < 2)
		return;
	for (q = lt + 1; q < gt; q++)
		if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f ||
		    *q == '<')
			return;
	memcpy(dst, lt, (size_t)(gt - lt) + 1);
	dst[gt - lt + 1] = '\0';
}

/* ---- The parts ---- */

/* The most serious action present: it decides subject and wording. */
static enum dsn_action
dsn_report_kind(const struct dsn_report *r)
{
	enum dsn_action kind = r->rcpts[0].action;
	size_t i;

	for (i = 0; i < r->nrcpts; i++) {
		if (r->rcpts[i].action == DSN_FAILED)
			return DSN_FAILED;
		if (r->rcpts[i].action == DSN_DELAYED)
			kind = DSN_DELAYED;
	}
	if ((unsigned int)kind >= nitems(dsn_action_names))
		kind = DSN_FAILED;
	return kind;
}

struct dsn_text_ctx {
	struct dsn_w *w;
	bool global;
};

static void
dsn_text_reply_line(void *arg, const char *s, size_t n)
{
	struct dsn_text_ctx *t = arg;
	char *line = dsn_clean_dup(s, n, t->global);

	dsn_w_line(t->w, DSN_INDENT, line, strlen(line));
	free(line);
}

static void
dsn_text_plain_line(void *arg, const char *s, size_t n)
{
	dsn_w_line(arg, "", s, n);
}

/* One recipient's entry in the notification part. */
static void
dsn_text_rcpt(struct dsn_w *w, const struct dsn_rcpt *rc, bool global)
{
	struct buf head;
	struct dsn_w hw = { &head, false };
	struct dsn_text_ctx t = { w, global };
	bool has_diag = !dsn_is_empty(rc->diagnostic);
	bool remote = !dsn_is_empty(rc->remote_mta);
	char status[16], type[33];
	char *orig, *host = NULL;
	bool decoded;

	buf_init(&head, 8 * 1024 + strlen(rc->addr) + dsn_len(rc->orcpt) +
	    dsn_len(rc->remote_mta));
	dsn_w_add(&hw, "<", 1);
	dsn_w_clean(&hw, rc->addr, strlen(rc->addr), global);
	dsn_w_add(&hw, ">", 1);
	if (!dsn_is_empty(rc->orcpt)) {
		orig = dsn_orcpt_split(rc->orcpt, global, type, sizeof(type),
		    &decoded);
		if (decoded && ascii_strcasecmp(type, "utf-8") == 0) {
			char *u = dsn_uxtext_decode(orig);

			free(orig);
			orig = u;
		} else if (!decoded ||
		    ascii_strcasecmp(type, "rfc822") != 0) {
			free(orig);
			orig = NULL;
		}
		/* Postfix's "(expanded from <alias>)". */
		if (orig != NULL && ascii_strcasecmp(orig, rc->addr) != 0) {
			dsn_w_str(&hw, " (expanded from <");
			dsn_w_clean(&hw, orig, strlen(orig), global);
			dsn_w_str(&hw, ">)");
		}
		free(orig);
	}
	/*
	 * "<a>: host h said:" with the reply below, "<a>:" with local error
	 * text below, or "<a>: 5.1.1 Bad destination mailbox address".
	 */
	if (remote) {
		host = dsn_clean_dup(rc->remote_mta, strlen(rc->remote_mta),
		    global);
		switch (rc->action) {
		case DSN_DELIVERED:
			dsn_w_printf(&hw, ": delivered via host %s", host);
			break;
		case DSN_RELAYED:
			dsn_w_printf(&hw, ": relayed to host %s, which does "
			    "not report delivery status", host);
			break;
		case DSN_EXPANDED:
			dsn_w_printf(&hw, ": expanded via host %s", host);
			break;
		default:
			if (has_diag)
				dsn_w_printf(&hw, ": host %s said", host);
			else {
				dsn_status_pick(rc, status, sizeof(status));
				dsn_w_printf(&hw, ": host %s: %s %s", host,
				    status, dsn_status_text(status));
			}
			break;
		}
		free(host);
	} else {
		switch (rc->action) {
		case DSN_DELIVERED:
			dsn_w_str(&hw, ": delivered to mailbox");
			break;
		case DSN_RELAYED:
			dsn_w_str(&hw, ": relayed to a system that does not "
			    "report delivery status");
			break;
		case DSN_EXPANDED:
			dsn_w_str(&hw, ": delivered to an alias or mailing "
			    "list");
			break;
		default:
			if (!has_diag) {
				dsn_status_pick(rc, status, sizeof(status));
				dsn_w_printf(&hw, ": %s %s", status,
				    dsn_status_text(status));
			}
			break;
		}
	}
	if (has_diag)
		dsn_w_add(&hw, ":", 1);
	if (hw.failed)
		fatalx("dsn: recipient line overflow");
	dsn_w_line(w, "", buf_str(&head), head.len);
	buf_free(&head);
	if (has_diag) {
		dsn_diag_lines(rc->diagnostic, dsn_text_reply_line, &t);
		if (!dsn_is_empty(rc->command)) {
			char *cmd = dsn_clean_dup(rc->command,
			    strnlen(rc->command, 64), false);

			dsn_w_printf(w, DSN_INDENT "(in reply to %s command)"
			    "\r\n", cmd);
			free(cmd);
		}
	}
}

/* Part 1: the notification for people. */
static void
dsn_text_part(struct dsn_w *w, const struct dsn_report *r,
    enum dsn_action kind, enum dsn_quote quote)
{
	char date[64], dur[64];
	uint64_t until = 0;
	size_t i;

	dsn_w_printf(w, "This is the mail system at host %s.\r\n\r\n",
	    r->hostname);
	switch (kind) {
	case DSN_FAILED:
		dsn_w_printf(w, "I'm sorry to have to inform you that your "
		    "message could not\r\nbe delivered to one or more "
		    "recipients.%s\r\n\r\n", quote == DSN_QUOTE_FULL ?
		    " It's attached below." : quote == DSN_QUOTE_HEADERS ?
		    " Its headers are attached below." : "");
		dsn_w_str(w, "For further assistance, please send mail to "
		    "postmaster.\r\nIf you do so, please include this problem "
		    "report.\r\n\r\n");
		break;
	case DSN_DELAYED:
		dsn_w_str(w,
		    "######################################################"
		    "##############\r\n"
		    "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND "
		    "YOUR MESSAGE. #\r\n"
		    "######################################################"
		    "##############\r\n\r\n");
		if (r->arrival != 0 && r->now > r->arrival) {
			dsn_duration(dur, sizeof(dur), r->now - r->arrival);
			dsn_w_printf(w, "Your message could not be delivered "
			    "for %s.\r\n", dur);
		} else
			dsn_w_str(w, "Your message could not be delivered "
			    "yet.\r\n");
		for (i = 0; i < r->nrcpts; i++)
			if (r->rcpts[i].will_retry_until > until)
				until = r->rcpts[i].will_retry_until;
		if (until != 0) {
			dsn_date(date, sizeof(date), until);
			if (r->arrival != 0 && until > r->arrival) {
				dsn_duration(dur, sizeof(dur),
				    until - r->arrival);
				dsn_w_printf(w, "It will be retried until it "
				    "is %s old\r\n(until %s).\r\n\r\n", dur,
				    date);
			} else
				dsn_w_printf(w, "It will be retried until "
				    "%s.\r\n\r\n", date);
		} else
			dsn_w_str(w, "It will be retried.\r\n\r\n");
		dsn_w_str(w, "For further assistance, please send mail to "
		    "postmaster.\r\n\r\n");
		break;
	default:
		dsn_w_str(w, "Your message was successfully delivered to the "
		    "destination(s)\r\nlisted below. If the message was "
		    "delivered to a mailbox you will\r\nreceive no further "
		    "notifications. Otherwise you may still receive\r\n"
		    "notifications of mail delivery errors from other "
		    "systems.\r\n\r\n");
		break;
	}
	/* "The message arrived on DATE\r\nwith queue ID ID." */
	if (!dsn_is_empty(r->queue_id) || r->arrival != 0) {
		struct buf line;
		struct dsn_w lw = { &line, false };

		buf_init(&line, 4096);
		dsn_w_str(&lw, "The message");
		if (r->arrival != 0) {
			dsn_date(date, sizeof(date), r->arrival);
			dsn_w_printf(&lw, " arrived on %s", date);
		}
		if (!dsn_is_empty(r->queue_id)) {
			dsn_w_str(&lw, r->arrival != 0 ? "\nwith" : " has");
			dsn_w_str(&lw, " queue ID ");
			dsn_w_clean(&lw, r->queue_id,
			    strnlen(r->queue_id, 64), false);
		}
		dsn_w_str(&lw, ".");
		dsn_diag_lines(buf_str(&line), dsn_text_plain_line, w);
		buf_free(&line);
	}
	if (dsn_is_empty(r->sender))
		dsn_w_str(w, "It had the null sender <> (it was itself a "
		    "delivery report),\r\nso this report goes to the "
		    "postmaster instead.\r\n");
	dsn_w_str(w, "\r\n                   The mail system\r\n");
	for (i = 0; i < r->nrcpts; i++) {
		dsn_w_str(w, "\r\n");
		dsn_text_rcpt(w, &r->rcpts[i], r->smtputf8);
	}
}

/* Part 2: message/delivery-status (RFC 3464 2). */
static void
dsn_status_part(struct dsn_w *w, const struct dsn_report *r)
{
	bool global = r->smtputf8;
	char date[64], status[16], *v;
	size_t i;

	dsn_w_printf(w, "Reporting-MTA: dns; %s\r\n", r->hostname);
	if (!dsn_is_empty(r->queue_id)) {
		v = dsn_clean_dup(r->queue_id, strnlen(r->queue_id, 64), false);
		dsn_w_field(w, "X-Petrel-Queue-ID", v);
		free(v);
	}
	if (!dsn_is_empty(r->sender))
		dsn_w_addr_field(w, "X-Petrel-Sender", r->sender, global);
	if (!dsn_is_empty(r->envid)) {
		/* RFC 3464 2.2.1: the ENVID, decoded from xtext. */
		if ((v = dsn_xtext_text(r->envid, false)) == NULL)
			v = dsn_clean_dup(r->envid, strlen(r->envid), false);
		dsn_w_field(w, "Original-Envelope-Id", v);
		free(v);
	}
	if (r->arrival != 0) {
		dsn_date(date, sizeof(date), r->arrival);
		dsn_w_printf(w, "Arrival-Date: %s\r\n", date);
	}
	for (i = 0; i < r->nrcpts; i++) {
		const struct dsn_rcpt *rc = &r->rcpts[i];

		dsn_w_str(w, "\r\n");
		dsn_w_addr_field(w, "Final-Recipient", rc->addr, global);
		if (!dsn_is_empty(rc->orcpt))
			dsn_w_orcpt_field(w, rc->orcpt, global);
		dsn_w_printf(w, "Action: %s\r\n", dsn_action_name(rc->action));
		dsn_status_pick(rc, status, sizeof(status));
		dsn_w_printf(w, "Status: %s\r\n", status);
		if (!dsn_is_empty(rc->remote_mta)) {
			struct buf hv;
			struct dsn_w hvw = { &hv, false };

			buf_init(&hv, strlen(rc->remote_mta) + 16);
			dsn_w_str(&hvw, "dns; ");
			dsn_w_clean(&hvw, rc->remote_mta,
			    strlen(rc->remote_mta), global);
			dsn_w_field(w, "Remote-MTA", buf_str(&hv));
			buf_free(&hv);
		}
		if (!dsn_is_empty(rc->diagnostic))
			dsn_w_diag_field(w, rc->diagnostic, global);
		if (rc->last_attempt != 0) {
			dsn_date(date, sizeof(date), rc->last_attempt);
			dsn_w_printf(w, "Last-Attempt-Date: %s\r\n", date);
		}
		/* RFC 3464 2.3.9: only for delayed. */
		if (rc->action == DSN_DELAYED && rc->will_retry_until != 0) {
			dsn_date(date, sizeof(date), rc->will_retry_until);
			dsn_w_printf(w, "Will-Retry-Until: %s\r\n", date);
		}
	}
}

/* ---- Assembly ---- */

static bool
dsn_contains(const char *hay, size_t n, const char *needle)
{
	return n > 0 && memmem(hay, n, needle, strlen(needle)) != NULL;
}

/* One attempt with the given quote. Returns 0 or -1 with errno. */
static int
dsn_assemble(const struct dsn_report *r, const struct dsn_content *c,
    const struct buf *status, const char *msgid, enum dsn_quote quote,
    struct buf *out)
{
	static const char *const subjects[] = {
		[DSN_FAILED] = "Undelivered Mail Returned to Sender",
		[DSN_DELAYED] = "Delayed Mail (still being retried)",
		[DSN_DELIVERED] = "Successful Mail Delivery Report",
		[DSN_RELAYED] = "Successful Mail Delivery Report",
		[DSN_EXPANDED] = "Successful Mail Delivery Report",
	};
	enum dsn_action kind = dsn_report_kind(r);
	bool global = r->smtputf8, text8, status8, quote8;
	const char *to = !dsn_is_empty(r->to) ? r->to : r->sender;
	const char *qdata = c->store.data != NULL ? c->store.data : "";
	size_t qlen = quote == DSN_QUOTE_FULL ? c->store.len :
	    quote == DSN_QUOTE_HEADERS ? c->hdr_len : 0;
	struct buf text;
	struct dsn_w tw = { &text, false }, w = { out, false };
	unsigned char rnd[16];
	char boundary[64], hex[2 * sizeof(rnd) + 1], date[64];
	const char *qtype, *qdesc;
	int tries;

	buf_init(&text, out->max);
	dsn_text_part(&tw, r, kind, quote);
	if (tw.failed) {
		buf_free(&text);
		errno = EMSGSIZE;
		return -1;
	}

	/* A boundary found in no part (RFC 2046 5.1.1). */
	for (tries = 0;; tries++) {
		if (tries == DSN_BOUNDARY_TRIES) {
			buf_free(&text);
			errno = EIO;
			return -1;
		}
		dsn_random(rnd, sizeof(rnd));
		dsn_hex(hex, rnd, sizeof(rnd));
		snprintf(boundary, sizeof(boundary), "=_petrel_%s", hex);
		if (!dsn_contains(buf_str(&text), text.len, boundary) &&
		    !dsn_contains(buf_str(status), status->len, boundary) &&
		    !dsn_contains(qdata, qlen, boundary))
			break;
	}
	text8 = dsn_has_8bit(buf_str(&text), text.len);
	status8 = dsn_has_8bit(buf_str(status), status->len);
	quote8 = dsn_has_8bit(qdata, qlen);

	dsn_date(date, sizeof(date), r->now);
	dsn_w_printf(&w, "Date: %s\r\n", date);
	dsn_w_printf(&w, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
	    r->hostname);
	if (dsn_is_empty(to))
		dsn_w_str(&w, "To: undisclosed-recipients:;\r\n");
	else {
		struct buf tv;
		struct dsn_w tvw = { &tv, false };

		buf_init(&tv, strlen(to) + 8);
		dsn_w_add(&tvw, "<", 1);
		dsn_w_clean(&tvw, to, strlen(to), global);
		dsn_w_add(&tvw, ">", 1);
		dsn_w_field(&w, "To", buf_str(&tv));
		buf_free(&tv);
	}
	dsn_w_printf(&w, "Subject: %s\r\n", subjects[kind]);
	dsn_random(rnd, 8);
	dsn_hex(hex, rnd, 8);
	dsn_w_printf(&w, "Message-ID: <%llu.%s@%s>\r\n",
	    (unsigned long long)r->now, hex, r->hostname);
	if (msgid[0] != '\0') {
		dsn_w_printf(&w, "In-Reply-To: %s\r\n", msgid);
		dsn_w_printf(&w, "References: %s\r\n", msgid);
	}
	dsn_w_str(&w, "Auto-Submitted: auto-replied\r\n");
	dsn_w_str(&w, "MIME-Version: 1.0\r\n");
	dsn_w_printf(&w, "Content-Type: multipart/report; report-type=%s;"
	    "\r\n\tboundary=\"%s\"\r\n", global ? "global-delivery-status" :
	    "delivery-status", boundary);
	if (text8 || status8 || quote8)
		dsn_w_str(&w, "Content-Transfer-Encoding: 8bit\r\n");
	dsn_w_str(&w, "\r\nThis is a MIME-encapsulated message.\r\n");

	dsn_w_printf(&w, "\r\n--%s\r\n", boundary);
	dsn_w_str(&w, "Content-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n");
	if (text8)
		dsn_w_str(&w, "Content-Transfer-Encoding: 8bit\r\n");
	dsn_w_str(&w, "\r\n");
	dsn_w_add(&w, buf_str(&text), text.len);
	buf_free(&text);

	dsn_w_printf(&w, "\r\n--%s\r\n", boundary);
	dsn_w_printf(&w, "Content-Description: Delivery report\r\n"
	    "Content-Type: message/%s\r\n", global ?
	    "global-delivery-status" : "delivery-status");
	if (status8)
		dsn_w_str(&w, "Content-Transfer-Encoding: 8bit\r\n");
	dsn_w_str(&w, "\r\n");
	dsn_w_add(&w, buf_str(status), status->len);

	if (quote != DSN_QUOTE_NONE && qlen > 0) {
		bool sent = kind != DSN_FAILED && kind != DSN_DELAYED;

		if (quote == DSN_QUOTE_FULL) {
			qtype = global ? "message/global" : "message/rfc822";
			qdesc = sent ? "Delivered Message" :
			    "Undelivered Message";
		} else {
			qtype = global ? "message/global-headers" :
			    "text/rfc822-headers";
			qdesc = sent ? "Delivered Message Headers" :
			    "Undelivered Message Headers";
		}
		dsn_w_printf(&w, "\r\n--%s\r\n", boundary);
		dsn_w_printf(&w, "Content-Description: %s\r\n"
		    "Content-Type: %s\r\n", qdesc, qtype);
		if (quote8)
			dsn_w_str(&w, "Content-Transfer-Encoding: 8bit\r\n");
		dsn_w_str(&w, "\r\n");
		dsn_w_add(&w, qdata, qlen);
	}
	dsn_w_printf(&w, "\r\n--%s--\r\n", boundary);
	if (w.failed) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

static bool
dsn_hostname_ok(const char *h)
{
	size_t i;

	if (dsn_is_empty(h) || strlen(h) > DSN_HOST_MAX)
		return false;
	for (i = 0; h[i] != '\0'; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') ||
		    (h[i] >= 'A' && h[i] <= 'Z') ||
		    (h[i] >= '0' && h[i] <= '9') || h[i] == '.' ||
		    h[i] == '-' || h[i] == '_'))
			return false;
	return true;
}

int
dsn_compose(const struct dsn_report *report, const struct dsn_source *src,
    struct buf *out, bool *eight_bit_r)
{
	struct dsn_report rr = *report, *r = &rr;
	struct dsn_content c;
	struct buf status;
	struct dsn_w sw = { &status, false };
	char msgid[DSN_MSGID_MAX];
	enum dsn_quote quote;
	size_t start = out->len, i;
	int rv = -1, saved = 0;

	*eight_bit_r = false;
	if (r->now == 0)
		r->now = time_real_usec() / 1000000;
	if (r->nrcpts == 0 || r->rcpts == NULL ||
	    !dsn_hostname_ok(r->hostname)) {
		errno = EINVAL;
		return -1;
	}
	for (i = 0; i < r->nrcpts; i++)
		if (r->rcpts[i].addr == NULL) {
			errno = EINVAL;
			return -1;
		}

	memset(&c, 0, sizeof(c));
	buf_init(&c.store, r->size_limit > SIZE_MAX / 2 ? SIZE_MAX / 2 :
	    (size_t)r->size_limit);
	/* RFC 3461 4.3: RET=FULL asks for the content of failure reports. */
	c.full_ok = r->ret_full && dsn_report_kind(r) == DSN_FAILED;
	buf_init(&status, out->max);
	if (dsn_content_read(&c, src) == -1) {
		saved = errno;
		goto done;
	}
	dsn_find_msgid(buf_str(&c.store), c.hdr_len, msgid, sizeof(msgid));

	dsn_status_part(&sw, r);
	if (sw.failed) {
		saved = EMSGSIZE;
		goto done;
	}
	quote = c.full_ok && c.store.len > 0 ? DSN_QUOTE_FULL :
	    c.hdr_len > 0 ? DSN_QUOTE_HEADERS : DSN_QUOTE_NONE;
	for (;;) {
		if (dsn_assemble(r, &c, &status, msgid, quote, out) == 0) {
			rv = 0;
			break;
		}
		saved = errno;
		out->len = start;
		if (out->data != NULL)
			out->data[start] = '\0';
		if (saved != EMSGSIZE || quote == DSN_QUOTE_NONE)
			goto done;
		/* Too big for the caller's buffer: return less. */
		quote = quote == DSN_QUOTE_FULL && c.hdr_len > 0 ?
		    DSN_QUOTE_HEADERS : DSN_QUOTE_NONE;
	}
	*eight_bit_r = dsn_has_8bit(out->data + start, out->len - start);
done:
	buf_free(&status);
	buf_free(&c.store);
	if (rv == -1)
		errno = saved;
	return rv;
}

static size_t
dsn_add_sat(size_t a, size_t b)
{
	return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

size_t
dsn_size_hint(const struct dsn_report *r)
{
	size_t n = 64 * 1024, per, i;

	/*
	 * Each string shows up a few times (text, status fields), and
	 * escaping (\x{HH}), indentation and folding can grow it: 8 times
	 * its length is a generous bound.
	 */
	n = dsn_add_sat(n, r->size_limit > SIZE_MAX / 2 ? SIZE_MAX / 2 :
	    (size_t)r->size_limit);
	n = dsn_add_sat(n, 8 * (dsn_len(r->sender) + dsn_len(r->to) +
	    dsn_len(r->envid) + dsn_len(r->queue_id) + dsn_len(r->hostname)));
	for (i = 0; i < r->nrcpts; i++) {
		const struct dsn_rcpt *rc = &r->rcpts[i];

		per = 8 * (dsn_len(rc->addr) + dsn_len(rc->orcpt) +
		    dsn_len(rc->status) + dsn_len(rc->remote_mta) +
		    dsn_len(rc->diagnostic) + dsn_len(rc->command)) + 1024;
		n = dsn_add_sat(n, per);
	}
	return n;
}
