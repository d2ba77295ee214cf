/*
 * authres.c: Authentication-Results (RFC 8601): the builder, the syntax
 * check and the forgery test.
 *
 * Entry points: authres_new(), authres_free(), authres_add(),
 * authres_reason(), authres_prop(), authres_count(), authres_format(),
 * authres_parse(), authres_claims_host(), authres_claims_hostn().
 *
 * The builder keeps each result as ready-made pieces ("spf=pass", the
 * comment, "reason=...", each "ptype.property=value"); authres_format()
 * lays them out with one space between pieces and folds at those spaces.
 * The reader is a small lexer over RFC 5322 CFWS and RFC 2045 values
 * with a loop over resinfo; comments nest by a counter.
 *
 * SECURITY: authres_parse() and authres_claims_hostn() read untrusted
 * header text: every read is checked against the end, comments are
 * bounded in depth, no recursion, each octet is looked at a bounded
 * number of times. The builder writes only what it checked: keywords,
 * quoted or token values without control characters, escaped comments.
 * STANDARDS: RFC 8601 2.2, 2.3, 2.7, 5, Appendix B; RFC 2045 5.1; RFC
 * 5322 2.2.3, 3.2.1, 3.2.2, 3.2.4, 4.2 (obs-FWS: a bare LF fold is
 * accepted when reading); RFC 5321 4.1.2 (Keyword, Ldh-str); RFC 6376
 * 3.5 (domain-name in pvalue); RFC 6532 3.2 (UTF-8).
 * OWNERSHIP: struct authres owns copies of everything it was given.
 */
#include "msgauth/authres.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/utf8.h"
#include "lib/util.h"

/* RFC 5322 2.1.1: lines SHOULD stay within 78 octets. */
#define AUTHRES_LINE	78

#define AUTHRES_FIELD	"Authentication-Results:"

struct authres_result {
	char *method;		/* "spf=pass" */
	char *comment;		/* "(...)" or NULL */
	char *reason;		/* "reason=..." or NULL */
	char *props[AUTHRES_PROPS_MAX];
	size_t nprops;
};

struct authres {
	char *id;		/* as written: token or quoted-string */
	struct authres_result res[AUTHRES_RESULTS_MAX];
	size_t n;
};

/* ------------------------------------------------------------------ */
/* Character classes. */

static bool
ar_is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static bool
ar_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 2045 5.1 tspecials. */
static bool
ar_is_tspecial(unsigned char c)
{
	return c != '\0' && strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

/* RFC 2045 token octet (ASCII). */
static bool
ar_is_tokchar(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !ar_is_tspecial(c);
}

/* RFC 5321 Keyword (Ldh-str): letters, digits, '-' not at either end. */
static bool
ar_is_keyword(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || !ar_is_alnum((unsigned char)s[0]) ||
	    !ar_is_alnum((unsigned char)s[len - 1]))
		return false;
	for (i = 0; i < len; i++)
		if (!ar_is_alnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

/* ------------------------------------------------------------------ */
/* The builder. */

static bool
ar_is_token(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!ar_is_tokchar((unsigned char)*s))
			return false;
	return true;
}

/* RFC 5322 atext. */
static bool
ar_is_atext(unsigned char c)
{
	return ar_is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~",
	    c) != NULL);
}

/* [ [ dot-atom-text ] "@" ] domain-name, as RFC 8601 pvalue allows. */
static bool
ar_is_addr(const char *s)
{
	const char *at = strchr(s, '@'), *p;
	size_t label = 0;

	if (at == NULL || strchr(at + 1, '@') != NULL)
		return false;
	/* The local part: empty or a dot-atom-text. */
	for (p = s; p < at; p++) {
		if (*p == '.') {
			if (p == s || p[-1] == '.' || p + 1 == at)
				return false;
		} else if (!ar_is_atext((unsigned char)*p))
			return false;
	}
	/* RFC 6376 domain-name: sub-domain 1*("." sub-domain). */
	if (strchr(at + 1, '.') == NULL)
		return false;
	for (p = at + 1; ; p++) {
		if (*p == '.' || *p == '\0') {
			if (label == 0 || p[-1] == '-')
				return false;
			if (*p == '\0')
				return true;
			label = 0;
		} else if (ar_is_alnum((unsigned char)*p) ||
		    (*p == '-' && label > 0))
			label++;
		else
			return false;
	}
}

/*
 * Append value to b as RFC 8601 wants it: as is (token or address form)
 * or as a quoted-string. Returns -1 for an empty or over-long value, a
 * control character or ill-formed UTF-8.
 */
static int
ar_put_value(struct buf *b, const char *v)
{
	size_t len = strlen(v), n, i;
	unsigned char c;

	if (len == 0 || len > AUTHRES_TEXT_MAX)
		return -1;
	if (ar_is_token(v) || ar_is_addr(v))
		return buf_append_str(b, v);
	if (buf_append(b, "\"", 1) == -1)
		return -1;
	for (i = 0; i < len; i++) {
		c = (unsigned char)v[i];
		if (c >= 0x80) {
			if ((n = utf8_seq_len(v + i)) == 0)
				return -1;
			if (buf_append(b, v + i, n) == -1)
				return -1;
			i += n - 1;
			continue;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -1;
		if ((c == '"' || c == '\\') && buf_append(b, "\\", 1) == -1)
			return -1;
		if (buf_append(b, v + i, 1) == -1)
			return -1;
	}
	return buf_append(b, "\"", 1);
}

/* "(text)" with '(', ')', '\' escaped, bad octets as '?', cut at the
 * limit on a character boundary. */
static char *
ar_comment(const char *text)
{
	struct buf b;
	size_t i, n, len = strlen(text);
	unsigned char c;
	char *s;

	buf_init(&b, 2 * AUTHRES_TEXT_MAX + 8);
	buf_append(&b, "(", 1);
	for (i = 0; i < len && i < AUTHRES_TEXT_MAX; i++) {
		c = (unsigned char)text[i];
		if (c >= 0x80) {
			if ((n = utf8_seq_len(text + i)) == 0) {
				buf_append(&b, "?", 1);
				continue;
			}
			if (i + n > AUTHRES_TEXT_MAX)
				break;
			buf_append(&b, text + i, n);
			i += n - 1;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			buf_append(&b, "?", 1);
			continue;
		}
		if (c == '(' || c == ')' || c == '\\')
			buf_append(&b, "\\", 1);
		buf_append(&b, text + i, 1);
	}
	buf_append(&b, ")", 1);
	s = xstrdup(buf_str(&b));
	buf_free(&b);
	return s;
}

struct authres *
authres_new(const char *authserv_id)
{
	struct authres *ar = xcalloc(1, sizeof(*ar));
	struct buf b;
	char *clean, *p;

	/* Our hostname: a token in practice; anything odd is made safe so
	 * that ar_put_value() cannot refuse it. */
	clean = xstrdup(authserv_id != NULL && *authserv_id != '\0' ?
	    authserv_id : "localhost");
	for (p = clean; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f ||
		    (unsigned char)*p >= 0x80)
			*p = '?';
	if (strlen(clean) > AUTHRES_TEXT_MAX)
		clean[AUTHRES_TEXT_MAX] = '\0';
	buf_init(&b, 2 * AUTHRES_TEXT_MAX + 8);
	if (ar_put_value(&b, clean) == -1)
		fatalx("authres: cannot write authserv-id");
	ar->id = xstrdup(buf_str(&b));
	buf_free(&b);
	free(clean);
	return ar;
}

void
authres_free(struct authres *ar)
{
	size_t i, k;

	if (ar == NULL)
		return;
	for (i = 0; i < ar->n; i++) {
		free(ar->res[i].method);
		free(ar->res[i].comment);
		free(ar->res[i].reason);
		for (k = 0; k < ar->res[i].nprops; k++)
			free(ar->res[i].props[k]);
	}
	free(ar->id);
	free(ar);
}

size_t
authres_count(const struct authres *ar)
{
	return ar->n;
}

int
authres_add(struct authres *ar, const char *method, const char *result,
    const char *comment)
{
	struct authres_result *r;

	if (ar->n == AUTHRES_RESULTS_MAX ||
	    !ar_is_keyword(method, strlen(method)) ||
	    !ar_is_keyword(result, strlen(result)))
		return -1;
	r = &ar->res[ar->n++];
	memset(r, 0, sizeof(*r));
	r->method = xasprintf("%s=%s", method, result);
	if (comment != NULL && *comment != '\0')
		r->comment = ar_comment(comment);
	return 0;
}

int
authres_reason(struct authres *ar, const char *reason)
{
	struct authres_result *r;
	struct buf b;

	if (ar->n == 0 || (r = &ar->res[ar->n - 1])->reason != NULL)
		return -1;
	buf_init(&b, 2 * AUTHRES_TEXT_MAX + 16);
	if (buf_append_str(&b, "reason=") == -1 ||
	    ar_put_value(&b, reason) == -1) {
		buf_free(&b);
		return -1;
	}
	r->reason = xstrdup(buf_str(&b));
	buf_free(&b);
	return 0;
}

int
authres_prop(struct authres *ar, const char *ptype, const char *property,
    const char *value)
{
	struct authres_result *r;
	struct buf b;

	if (ar->n == 0 || (r = &ar->res[ar->n - 1])->nprops ==
	    AUTHRES_PROPS_MAX || !ar_is_keyword(ptype, strlen(ptype)) ||
	    !ar_is_keyword(property, strlen(property)) || value == NULL)
		return -1;
	buf_init(&b, 2 * AUTHRES_TEXT_MAX + 160);
	if (buf_printf(&b, "%s.%s=", ptype, property) == -1 ||
	    ar_put_value(&b, value) == -1) {
		buf_free(&b);
		return -1;
	}
	r->props[r->nprops++] = xstrdup(buf_str(&b));
	buf_free(&b);
	return 0;
}

/* One piece after a space, folding first if the line would overflow. */
static int
ar_piece(struct buf *out, size_t *col, const char *s, bool semi)
{
	size_t len = strlen(s) + (semi ? 1 : 0);

	if (*col + 1 + len > AUTHRES_LINE && *col > 1) {
		if (buf_append(out, "\r\n", 2) == -1)
			return -1;
		*col = 0;
	}
	if (buf_append(out, " ", 1) == -1 || buf_append_str(out, s) == -1 ||
	    (semi && buf_append(out, ";", 1) == -1))
		return -1;
	*col += 1 + len;
	return 0;
}

int
authres_format(const struct authres *ar, struct buf *out)
{
	const struct authres_result *r;
	size_t start = out->len, col, i, k, npieces, piece;
	const char *pieces[AUTHRES_PROPS_MAX + 3];

	if (buf_append_str(out, AUTHRES_FIELD) == -1)
		goto fail;
	col = strlen(AUTHRES_FIELD);
	if (ar_piece(out, &col, ar->id, true) == -1)
		goto fail;
	if (ar->n == 0 && ar_piece(out, &col, "none", false) == -1)
		goto fail;
	for (i = 0; i < ar->n; i++) {
		r = &ar->res[i];
		npieces = 0;
		pieces[npieces++] = r->method;
		if (r->comment != NULL)
			pieces[npieces++] = r->comment;
		if (r->reason != NULL)
			pieces[npieces++] = r->reason;
		for (k = 0; k < r->nprops; k++)
			pieces[npieces++] = r->props[k];
		for (piece = 0; piece < npieces; piece++)
			if (ar_piece(out, &col, pieces[piece],
			    piece + 1 == npieces && i + 1 < ar->n) == -1)
				goto fail;
	}
	if (buf_append(out, "\r\n", 2) == -1)
		goto fail;
	return 0;
fail:
	/* Leave out as it was. */
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return -1;
}

/* ------------------------------------------------------------------ */
/* The reader. */

struct ar_lex {
	const char *p, *end;
	const char *err;
};

/* utf8_seq_len() at p without reading at or past end: the value need
 * not be NUL-terminated, so look through a NUL-padded copy. */
static size_t
ar_utf8_len(const char *p, const char *end)
{
	char tmp[5] = { 0 };
	size_t n = (size_t)(end - p) < 4 ? (size_t)(end - p) : 4;

	memcpy(tmp, p, n);
	return utf8_seq_len(tmp);
}

/* Skip FWS and comments. Returns false (err set) on a malformed one. */
static bool
ar_cfws(struct ar_lex *lx)
{
	unsigned int depth = 0;
	const char *q;
	size_t n;

	while (lx->p < lx->end) {
		unsigned char c = (unsigned char)*lx->p;

		if (ar_is_wsp((char)c)) {
			lx->p++;
			continue;
		}
		if (c == '\r' || c == '\n') {
			/* A fold: CRLF (or a bare LF) and WSP; or the CRLF
			 * that ends the field. */
			q = lx->p + (c == '\r' ? 1 : 0);
			if (q >= lx->end || *q != '\n') {
				lx->err = "a CR without LF";
				return false;
			}
			q++;
			if (q == lx->end && depth == 0) {
				lx->p = q;
				continue;
			}
			if (q >= lx->end || !ar_is_wsp(*q)) {
				lx->err = "a line break that is not a fold";
				return false;
			}
			lx->p = q;
			continue;
		}
		if (c == '(') {
			if (++depth > AUTHRES_COMMENT_DEPTH) {
				lx->err = "comments nested too deep";
				return false;
			}
			lx->p++;
			continue;
		}
		if (depth == 0)
			return true;
		if (c == ')') {
			depth--;
			lx->p++;
		} else if (c == '\\') {
			if (lx->p + 1 >= lx->end || lx->p[1] == '\r' ||
			    lx->p[1] == '\n' || lx->p[1] == '\0') {
				lx->err = "a bad quoted-pair in a comment";
				return false;
			}
			lx->p += 2;
		} else if (c >= 0x80) {
			if ((n = ar_utf8_len(lx->p, lx->end)) == 0) {
				lx->err = "ill-formed UTF-8 in a comment";
				return false;
			}
			lx->p += n;
		} else if (c < 0x20 || c == 0x7f) {
			lx->err = "a control character in a comment";
			return false;
		} else
			lx->p++;
	}
	if (depth > 0) {
		lx->err = "an unclosed comment";
		return false;
	}
	return true;
}

/* A token (RFC 2045, and UTF-8 as RFC 6532 allows). */
static bool
ar_token(struct ar_lex *lx, const char **s, size_t *len)
{
	const char *start = lx->p;
	size_t n;

	while (lx->p < lx->end) {
		unsigned char c = (unsigned char)*lx->p;

		if (c >= 0x80) {
			if ((n = ar_utf8_len(lx->p, lx->end)) == 0)
				break;
			lx->p += n;
		} else if (ar_is_tokchar(c))
			lx->p++;
		else
			break;
	}
	*s = start;
	*len = (size_t)(lx->p - start);
	return *len > 0;
}

/*
 * A quoted-string at lx->p (on its '"'), unquoted into out (size; may
 * be NULL). *fits says whether it did fit.
 */
static bool
ar_quoted(struct ar_lex *lx, char *out, size_t size, bool *fits)
{
	size_t o = 0, n;
	const char *q;

	*fits = true;
	lx->p++;
	while (lx->p < lx->end && *lx->p != '"') {
		unsigned char c = (unsigned char)*lx->p;
		const char *from = lx->p;

		n = 1;
		if (c == '\\') {
			if (lx->p + 1 >= lx->end || lx->p[1] == '\r' ||
			    lx->p[1] == '\n' || lx->p[1] == '\0')
				break;
			from = ++lx->p;
		} else if (c == '\r' || c == '\n') {
			q = lx->p + (c == '\r' ? 1 : 0);
			if (q + 1 >= lx->end || *q != '\n' || !ar_is_wsp(q[1]))
				break;
			lx->p = q + 1;
			continue;
		} else if (c >= 0x80) {
			if ((n = ar_utf8_len(lx->p, lx->end)) == 0)
				break;
		} else if ((c < 0x20 && c != '\t') || c == 0x7f)
			break;
		if (out != NULL) {
			if (o + n < size) {
				memcpy(out + o, from, n);
				o += n;
			} else
				*fits = false;
		}
		lx->p = from + n;
	}
	if (out != NULL && size > 0)
		out[o < size ? o : size - 1] = '\0';
	if (lx->p >= lx->end || *lx->p != '"') {
		lx->err = "a bad quoted-string";
		return false;
	}
	lx->p++;
	return true;
}

/* RFC 2045 value: token / quoted-string; copied into out when given. */
static bool
ar_value(struct ar_lex *lx, char *out, size_t size)
{
	const char *s;
	size_t len;
	bool fits;

	if (lx->p < lx->end && *lx->p == '"') {
		if (!ar_quoted(lx, out, size, &fits))
			return false;
	} else {
		if (!ar_token(lx, &s, &len)) {
			lx->err = "a value is missing";
			return false;
		}
		fits = len < size;
		if (out != NULL && fits) {
			memcpy(out, s, len);
			out[len] = '\0';
		}
	}
	/* A value cut short would be another value: refuse it. */
	if (out != NULL && !fits) {
		lx->err = "a value too long for its buffer";
		return false;
	}
	return true;
}

/* A Keyword: letters, digits, '-'. */
static bool
ar_keyword(struct ar_lex *lx, const char **s, size_t *len)
{
	const char *start = lx->p;

	while (lx->p < lx->end && (ar_is_alnum((unsigned char)*lx->p) ||
	    *lx->p == '-'))
		lx->p++;
	*s = start;
	*len = (size_t)(lx->p - start);
	if (!ar_is_keyword(start, *len)) {
		lx->err = "a keyword is missing or malformed";
		return false;
	}
	return true;
}

static bool
ar_expect(struct ar_lex *lx, char c, const char *err)
{
	if (lx->p >= lx->end || *lx->p != c) {
		lx->err = err;
		return false;
	}
	lx->p++;
	return true;
}

/* domain-name after an '@' (sub-domains: letters, digits, '-', dots). */
static bool
ar_domain(struct ar_lex *lx)
{
	const char *start = lx->p;

	while (lx->p < lx->end && (ar_is_alnum((unsigned char)*lx->p) ||
	    *lx->p == '-' || *lx->p == '.'))
		lx->p++;
	if (lx->p == start || *start == '.' || lx->p[-1] == '.') {
		lx->err = "a bad domain-name";
		return false;
	}
	return true;
}

/* pvalue = [CFWS] ( value / [ [ local-part ] "@" ] domain-name ) [CFWS] */
static bool
ar_pvalue(struct ar_lex *lx)
{
	if (!ar_cfws(lx))
		return false;
	if (lx->p < lx->end && *lx->p == '@') {
		lx->p++;
		if (!ar_domain(lx))
			return false;
	} else {
		if (!ar_value(lx, NULL, 0))
			return false;
		if (lx->p < lx->end && *lx->p == '@') {
			lx->p++;
			if (!ar_domain(lx))
				return false;
		}
	}
	return ar_cfws(lx);
}

/* One resinfo after its ';' (and CFWS). */
static bool
ar_resinfo(struct ar_lex *lx)
{
	const char *s;
	size_t len;
	bool reason = false, props = false;

	if (!ar_keyword(lx, &s, &len) || !ar_cfws(lx))
		return false;
	if (lx->p < lx->end && *lx->p == '/') {
		/* method-version */
		lx->p++;
		if (!ar_cfws(lx))
			return false;
		if (lx->p >= lx->end || *lx->p < '0' || *lx->p > '9') {
			lx->err = "a bad method version";
			return false;
		}
		while (lx->p < lx->end && *lx->p >= '0' && *lx->p <= '9')
			lx->p++;
		if (!ar_cfws(lx))
			return false;
	}
	if (!ar_expect(lx, '=', "a method without '='") || !ar_cfws(lx) ||
	    !ar_keyword(lx, &s, &len) || !ar_cfws(lx))
		return false;
	while (lx->p < lx->end && *lx->p != ';') {
		if (!ar_keyword(lx, &s, &len) || !ar_cfws(lx))
			return false;
		if (lx->p < lx->end && *lx->p == '=' && !reason && !props &&
		    len == 6 && ascii_strncasecmp(s, "reason", 6) == 0) {
			lx->p++;
			reason = true;
			if (!ar_cfws(lx) || !ar_value(lx, NULL, 0) ||
			    !ar_cfws(lx))
				return false;
			continue;
		}
		props = true;
		if (!ar_expect(lx, '.', "a property without '.'") ||
		    !ar_cfws(lx) || !ar_keyword(lx, &s, &len) ||
		    !ar_cfws(lx) ||
		    !ar_expect(lx, '=', "a property without '='") ||
		    !ar_pvalue(lx))
			return false;
	}
	return true;
}

int
authres_parse(const char *value, size_t len, char *id, size_t idsize,
    const char **error_r)
{
	struct ar_lex lx;
	const char *s, *dummy;
	size_t klen;
	int n = 0;

	if (error_r == NULL)
		error_r = &dummy;
	if (id != NULL && idsize > 0)
		id[0] = '\0';
	if (value == NULL || memchr(value, '\0', len) != NULL) {
		*error_r = "a NUL in the field";
		return -1;
	}
	lx = (struct ar_lex){ value, value + len, NULL };
	if (!ar_cfws(&lx))
		goto fail;
	if (lx.p >= lx.end) {
		lx.err = "no authserv-id";
		goto fail;
	}
	if (!ar_value(&lx, id, idsize) || !ar_cfws(&lx))
		goto fail;
	/* authres-version = 1*DIGIT [CFWS] */
	if (lx.p < lx.end && *lx.p >= '0' && *lx.p <= '9') {
		while (lx.p < lx.end && *lx.p >= '0' && *lx.p <= '9')
			lx.p++;
		if (!ar_cfws(&lx))
			goto fail;
	}
	if (!ar_expect(&lx, ';', "no ';' after the authserv-id") ||
	    !ar_cfws(&lx))
		goto fail;
	/* no-result */
	{
		struct ar_lex save = lx;

		if (ar_keyword(&lx, &s, &klen) && klen == 4 &&
		    ascii_strncasecmp(s, "none", 4) == 0 && ar_cfws(&lx) &&
		    lx.p == lx.end)
			return 0;
		lx = save;
	}
	for (;;) {
		if (!ar_resinfo(&lx))
			goto fail;
		n++;
		if (lx.p >= lx.end)
			return n;
		lx.p++;		/* ';' */
		if (!ar_cfws(&lx))
			goto fail;
		if (lx.p >= lx.end)
			return n;	/* a lone ';' at the end */
	}
fail:
	*error_r = lx.err != NULL ? lx.err : "syntax error";
	return -1;
}

/* ------------------------------------------------------------------ */
/* Forged fields (RFC 8601 5). */

static bool
ar_same_host(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	if (alen > 1 && a[alen - 1] == '.')
		alen--;
	if (blen > 1 && b[blen - 1] == '.')
		blen--;
	return alen == blen && alen > 0 && ascii_strncasecmp(a, b, alen) == 0;
}

bool
authres_claims_hostn(const char *value, size_t len, const char *hostname)
{
	struct ar_lex lx;
	char id[AUTHRES_TEXT_MAX + 1];
	const char *s;
	size_t n;
	bool fits;

	if (value == NULL)
		return true;
	lx = (struct ar_lex){ value, value + len, NULL };
	if (!ar_cfws(&lx) || lx.p >= lx.end)
		return true;
	if (*lx.p == '"') {
		if (!ar_quoted(&lx, id, sizeof(id), &fits))
			return true;
		s = id;
		n = fits ? strlen(id) : 0;
	} else if (!ar_token(&lx, &s, &n))
		return true;
	/* What ends the authserv-id must be CFWS, ';' or the end; an id run
	 * into a special ("host/x", "a@host") cannot be read safely. */
	if (lx.p < lx.end && !ar_is_wsp(*lx.p) && *lx.p != '\r' &&
	    *lx.p != '\n' && *lx.p != '(' && *lx.p != ';')
		return true;
	return n > 0 && hostname != NULL && ar_same_host(s, n, hostname);
}

bool
authres_claims_host(const char *value, const char *hostname)
{
	if (value == NULL)
		return true;
	return authres_claims_hostn(value, strlen(value), hostname);
}
