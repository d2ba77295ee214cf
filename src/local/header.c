/*
 * header.c: the header section of a message a local program hands to
 * `petrel sendmail`.
 *
 * Entry points: sendmail_header_rewrite (CRLF line ends; with -t the
 * recipients of To:, Cc: and Bcc:, and Bcc: removed), sendmail_from_field
 * (the From: added when there is none).
 *
 * SECURITY: the text comes from the local user who runs the command, with
 * that user's privileges; only its size is bounded (out's cap). Address
 * lists are parsed by mailaddr_header_parse(), which refuses anything
 * ambiguous.
 * STANDARDS: RFC 5322 2.2 (fields, folding), 3.4 (address lists), 3.6.3
 * (Bcc: "removed" form), 3.2.4 (quoted display names); sendmail(8) -t.
 */
#include "local/local.h"

#include <string.h>

#include "lib/util.h"
#include "mailaddr/hdraddr.h"

/* Is the field at f[0..len) named name (any case)? */
static bool
sendmail_field_is(const char *f, size_t len, const char *name)
{
	size_t n = strlen(name), i;

	if (len <= n || ascii_strncasecmp(f, name, n) != 0)
		return false;
	for (i = n; i < len && (f[i] == ' ' || f[i] == '\t'); i++)
		;
	return i < len && f[i] == ':';
}

/* Append f[0..len) with every line end made CRLF. */
static int
sendmail_append_crlf(struct buf *out, const char *f, size_t len)
{
	size_t i, start = 0;

	for (i = 0; i < len; i++) {
		if (f[i] != '\n')
			continue;
		if (i > start && f[i - 1] == '\r') {
			if (buf_append(out, f + start, i + 1 - start) == -1)
				return -1;
		} else if (buf_append(out, f + start, i - start) == -1 ||
		    buf_append(out, "\r\n", 2) == -1)
			return -1;
		start = i + 1;
	}
	if (start < len && (buf_append(out, f + start, len - start) == -1 ||
	    buf_append(out, "\r\n", 2) == -1))
		return -1;
	return 0;
}

/*
 * A list that RFC 5322 refuses because it names bare logins ("To: root,
 * bob@example.org"), as scripts write them: each element is either a
 * login (letters, digits, ".", "_", "-", "+") or an address list of its
 * own. Returns the count, -1 (syntax) or MAILADDR_HDR_STOPPED.
 */
static int
sendmail_bare_list(const char *v, size_t len, sendmail_rcpt_cb cb, void *arg)
{
	size_t i = 0, s, e, k;
	int n = 0, r;

	while (i < len) {
		for (s = i; s < len && v[s] != ','; s++)
			;
		e = s;
		/* trim WSP and line ends */
		while (i < e && strchr(" \t\r\n", v[i]) != NULL)
			i++;
		while (e > i && strchr(" \t\r\n", v[e - 1]) != NULL)
			e--;
		if (e > i) {
			for (k = i; k < e; k++)
				if (strchr("abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+",
				    v[k]) == NULL)
					break;
			if (k == e) {
				if (cb(arg, v + i, e - i) != 0)
					return MAILADDR_HDR_STOPPED;
				n++;
			} else {
				r = mailaddr_header_parse(v + i, e - i, 0, cb,
				    arg, NULL);
				if (r < 0)
					return r;
				n += r;
			}
		}
		i = s + 1;
	}
	return n;
}

int
sendmail_header_rewrite(const char *hdr, size_t len, bool want_rcpts,
    sendmail_rcpt_cb cb, void *arg, struct buf *out, bool *has_from_r,
    const char **error_r)
{
	static const char *const rcpt_fields[] = { "To", "Cc", "Bcc" };
	size_t i, start = 0, k, colon;
	const char *f;
	int r;

	*has_from_r = false;
	for (i = 0; i <= len; i++) {
		/* A field ends where a line starts with other than WSP. */
		if (i < len && !(i > start && hdr[i - 1] == '\n' &&
		    hdr[i] != ' ' && hdr[i] != '\t'))
			continue;
		if (i == start)
			continue;
		f = hdr + start;
		if (sendmail_field_is(f, i - start, "From"))
			*has_from_r = true;
		for (k = 0; k < 3; k++)
			if (sendmail_field_is(f, i - start, rcpt_fields[k]))
				break;
		if (want_rcpts && k < 3) {
			colon = strcspn(f, ":") + 1;
			r = mailaddr_header_parse(f + colon, i - start - colon,
			    0, cb, arg, NULL);
			if (r == -1)
				r = sendmail_bare_list(f + colon,
				    i - start - colon, cb, arg);
			if (r == -1) {
				*error_r = k == 0 ? "bad address list in To:" :
				    k == 1 ? "bad address list in Cc:" :
				    "bad address list in Bcc:";
				return -1;
			}
			if (r == MAILADDR_HDR_STOPPED) {
				*error_r = "too many recipients";
				return -1;
			}
		}
		if (k == 2) {		/* Bcc: never shown */
			start = i;
			continue;
		}
		if (sendmail_append_crlf(out, f, i - start) == -1) {
			*error_r = "header section too large";
			return -1;
		}
		start = i;
	}
	return 0;
}

/* RFC 5322 3.2.3 atext and WSP: a phrase that needs no quotes. */
static bool
sendmail_is_plain_phrase(const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == ' ' ||
		    strchr("!#$%&'*+-/=?^_`{|}~", *p) != NULL))
			return false;
	return true;
}

char *
sendmail_from_field(const char *name, const char *addr)
{
	struct buf b;
	const unsigned char *p;
	char *r;

	if (name == NULL || name[0] == '\0')
		return xasprintf("From: %s\r\n", addr);
	buf_init(&b, 4096);
	if (sendmail_is_plain_phrase(name))
		(void)buf_printf(&b, "From: %s <%s>\r\n", name, addr);
	else {
		(void)buf_append_str(&b, "From: \"");
		/* RFC 5322 3.2.4: quoted-pair for '"' and '\'; control
		 * characters (a CR or LF would end the field) dropped. */
		for (p = (const unsigned char *)name; *p != '\0'; p++) {
			if (*p < 0x20 || *p == 0x7f)
				continue;
			if (*p == '"' || *p == '\\')
				(void)buf_append(&b, "\\", 1);
			(void)buf_append(&b, p, 1);
		}
		(void)buf_printf(&b, "\" <%s>\r\n", addr);
	}
	r = xstrdup(buf_str(&b));
	buf_free(&b);
	return r;
}
