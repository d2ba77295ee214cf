/*
 * spf_parse.c: the pure half of SPF: the record parser and macro
 * expansion. No DNS, no allocation beyond the record's own.
 *
 * Entry points: spf_record_is_spf1(), spf_record_parse(),
 * spf_record_free(), spf_macro_expand(), spf_domain_spec_valid(),
 * spf_ip_dotted(), spf_result_name().
 *
 * A record is split on spaces into terms; each term is read left to right
 * by hand (qualifier, name, then what that name takes), never with
 * regular expressions, so "all." or "redirect:x" cannot be half-matched.
 * The dual-cidr-length of a and mx is taken from the end of the term: a
 * domain-spec cannot end in "/digits" (its last label must be a toplabel
 * or a macro), so the split is unambiguous.
 *
 * SECURITY: parses DNS TXT data and, in macro expansion, the client's
 * MAIL FROM, HELO and address, all untrusted. Every loop is bounded by
 * the input length, nothing recurses; expansions are capped at
 * SPF_MACRO_MAX octets (struct buf max) and fail beyond it.
 * STANDARDS: RFC 7208 4.5 (record selection), 4.6 (term syntax), 5
 * (mechanisms), 6 (modifiers), 7 (macros), 12 (collected ABNF); RFC 3986
 * 2.3 (unreserved characters of the URL escape); RFC 4291 2.2 (ip6
 * text forms, through inet_pton).
 * OWNERSHIP: spf_record_parse() returns a record owning its terms and
 * their strings; spf_record_free() releases all of it.
 */
#include "msgauth/spf.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/util.h"

/* Terms in one record at most: real records have a few dozen. */
#define SPF_MAX_TERMS	1024

static const char *const spf_result_names[] = {
	"none", "neutral", "pass", "fail", "softfail", "temperror",
	"permerror",
};

const char *
spf_result_name(enum spf_result r)
{
	if ((size_t)r >= nitems(spf_result_names))
		return "unknown";
	return spf_result_names[r];
}

static bool
spf_is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
spf_is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool
spf_is_alnum(int c)
{
	return spf_is_alpha(c) || spf_is_digit(c);
}

static int
spf_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

bool
spf_record_is_spf1(const char *txt, size_t len)
{
	return len >= 6 && ascii_strncasecmp(txt, "v=spf1", 6) == 0 &&
	    (len == 6 || txt[6] == ' ');
}

/*
 * Macros.
 */

struct spf_scan {
	bool ends_with_macro;	/* the last token was a macro-expand */
	size_t tail;		/* start of the literal run at the end */
};

static bool
spf_is_delim(int c)
{
	return c != '\0' && strchr(".-+,/_=", c) != NULL;
}

static bool
spf_is_unreserved(int c)
{
	return spf_is_alnum(c) || c == '-' || c == '.' || c == '_' ||
	    c == '~';
}

void
spf_ip_dotted(const struct dns_addr *ip, bool upper, char *out,
    size_t outsize)
{
	const char *hex = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	size_t i, o = 0;

	if (outsize == 0)
		return;
	out[0] = '\0';
	if (ip->family == AF_INET) {
		snprintf(out, outsize, "%u.%u.%u.%u", ip->addr[0], ip->addr[1],
		    ip->addr[2], ip->addr[3]);
		return;
	}
	if (outsize < 64)
		return;
	for (i = 0; i < 16; i++) {
		out[o++] = hex[ip->addr[i] >> 4];
		out[o++] = '.';
		out[o++] = hex[ip->addr[i] & 0xf];
		out[o++] = '.';
	}
	out[o - 1] = '\0';
}

/* The value of macro letter (lower case) in env, into tmp if computed. */
static const char *
spf_macro_value(int letter, const struct spf_macro_env *env, char *tmp,
    size_t tmpsize)
{
	switch (letter) {
	case 's':
		return env->sender;
	case 'l':
		return env->local;
	case 'o':
		return env->sender_domain;
	case 'd':
		return env->domain;
	case 'h':
		return env->helo;
	case 'i':
		spf_ip_dotted(&env->ip, env->ip_upper, tmp, tmpsize);
		return tmp;
	case 'c':
		if (inet_ntop(env->ip.family, env->ip.addr, tmp,
		    (socklen_t)tmpsize) == NULL)
			return "";
		return tmp;
	case 'v':
		return env->ip.family == AF_INET ? "in-addr" : "ip6";
	case 'p':
		return env->ptr != NULL ? env->ptr : "unknown";
	case 'r':
		return env->receiver != NULL ? env->receiver : "unknown";
	case 't':
		snprintf(tmp, tmpsize, "%llu",
		    (unsigned long long)env->timestamp);
		return tmp;
	}
	return "";
}

/*
 * RFC 7208 7.3: split value on the delimiters, optionally reverse, keep
 * the rightmost digits parts, join with ".", URL-escape for an upper-case
 * letter.
 */
static int
spf_macro_transform(const char *value, const char *delims, size_t ndelims,
    unsigned int digits, bool reverse, bool escape, struct buf *out)
{
	size_t vlen = strlen(value), nparts = 1, i, k, first;
	size_t *start, *plen;
	int rc = 0;

	for (i = 0; i < vlen; i++)
		if (memchr(delims, value[i], ndelims) != NULL)
			nparts++;
	start = xcalloc(nparts, sizeof(*start));
	plen = xcalloc(nparts, sizeof(*plen));
	k = 0;
	start[0] = 0;
	for (i = 0; i < vlen; i++) {
		if (memchr(delims, value[i], ndelims) != NULL) {
			plen[k] = i - start[k];
			start[++k] = i + 1;
		}
	}
	plen[k] = vlen - start[k];
	if (reverse) {
		for (i = 0; i < nparts / 2; i++) {
			size_t ts = start[i], tl = plen[i];

			start[i] = start[nparts - 1 - i];
			plen[i] = plen[nparts - 1 - i];
			start[nparts - 1 - i] = ts;
			plen[nparts - 1 - i] = tl;
		}
	}
	first = digits > 0 && digits < nparts ? nparts - digits : 0;
	for (k = first; k < nparts && rc == 0; k++) {
		if (k > first && buf_append(out, ".", 1) == -1)
			rc = -1;
		for (i = 0; i < plen[k] && rc == 0; i++) {
			unsigned char c = (unsigned char)value[start[k] + i];
			char esc[4];

			if (escape && !spf_is_unreserved(c)) {
				snprintf(esc, sizeof(esc), "%%%02X", c);
				rc = buf_append(out, esc, 3);
			} else
				rc = buf_append(out, &value[start[k] + i], 1);
		}
	}
	free(start);
	free(plen);
	return rc;
}

/*
 * The one scanner behind syntax checks and expansion: env NULL checks
 * only. sc (may be NULL) learns where the literal tail starts.
 */
static int
spf_macro_scan(const char *s, size_t len, enum spf_macro_mode mode,
    const struct spf_macro_env *env, struct buf *out, struct spf_scan *sc,
    const char **error_r)
{
	size_t i = 0;
	char tmp[64];

	if (sc != NULL) {
		sc->ends_with_macro = false;
		sc->tail = 0;
	}
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		const char *lit = NULL;
		size_t litlen = 0;

		if (c != '%') {
			if (c == ' ' && mode == SPF_MACRO_EXP)
				;
			else if (c < 0x21 || c > 0x7e) {
				*error_r = "invalid character";
				return -1;
			}
			if (sc != NULL && sc->ends_with_macro) {
				sc->ends_with_macro = false;
				sc->tail = i;
			}
			if (env != NULL && buf_append(out, &s[i], 1) == -1)
				goto toolong;
			i++;
			continue;
		}
		if (i + 1 >= len) {
			*error_r = "'%' at the end of a macro-string";
			return -1;
		}
		switch (s[i + 1]) {
		case '%':
			lit = "%";
			litlen = 1;
			break;
		case '_':
			lit = " ";
			litlen = 1;
			break;
		case '-':
			lit = "%20";
			litlen = 3;
			break;
		case '{':
			break;
		default:
			*error_r = "'%' not followed by '{', '%', '_' or '-'";
			return -1;
		}
		if (lit != NULL) {
			if (env != NULL && buf_append(out, lit, litlen) == -1)
				goto toolong;
			i += 2;
		} else {
			int letter, lc;
			unsigned int digits = 0;
			bool reverse = false, anydigit = false;
			char delims[8];
			size_t ndelims = 0, j = i + 2;

			if (j >= len) {
				*error_r = "unterminated macro";
				return -1;
			}
			letter = (unsigned char)s[j++];
			lc = spf_lower(letter);
			if (lc == '\0' || strchr("slodiphcrtv", lc) == NULL) {
				*error_r = "unknown macro letter";
				return -1;
			}
			/* RFC 7208 7.3: c, r, t "only in exp text", so
			 * not in unknown modifiers either (as pyspf). */
			if (mode != SPF_MACRO_EXP && strchr("crt", lc) !=
			    NULL) {
				*error_r = "macro letters c, r, t are allowed "
				    "in exp text only";
				return -1;
			}
			while (j < len && spf_is_digit(s[j])) {
				anydigit = true;
				if (digits < 1000)
					digits = digits * 10 +
					    (unsigned int)(s[j] - '0');
				j++;
			}
			if (anydigit && digits == 0) {
				*error_r = "macro digit transformer of 0";
				return -1;
			}
			if (j < len && (s[j] == 'r' || s[j] == 'R')) {
				reverse = true;
				j++;
			}
			while (j < len && spf_is_delim(s[j])) {
				if (ndelims < sizeof(delims) &&
				    memchr(delims, s[j], ndelims) == NULL)
					delims[ndelims++] = s[j];
				j++;
			}
			if (j >= len || s[j] != '}') {
				*error_r = "bad macro syntax";
				return -1;
			}
			if (ndelims == 0)
				delims[ndelims++] = '.';
			if (env != NULL) {
				const char *v = spf_macro_value(lc, env, tmp,
				    sizeof(tmp));

				if (spf_macro_transform(v != NULL ? v : "",
				    delims, ndelims, digits, reverse,
				    letter != lc, out) == -1)
					goto toolong;
			}
			i = j + 1;
		}
		if (sc != NULL) {
			sc->ends_with_macro = true;
			sc->tail = i;
		}
	}
	return 0;

toolong:
	*error_r = "macro expansion too long";
	return -1;
}

/* RFC 7208 7.1 toplabel. */
static bool
spf_toplabel_valid(const char *s, size_t len)
{
	bool alpha = false, dash = false;
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] == '-')
			dash = true;
		else if (spf_is_alpha(s[i]))
			alpha = true;
		else if (!spf_is_digit(s[i]))
			return false;
	}
	if (dash)
		return s[0] != '-' && s[len - 1] != '-';
	return alpha;
}

bool
spf_domain_spec_valid(const char *s, size_t len, const char **error_r)
{
	struct spf_scan sc;
	size_t end, k;

	if (len == 0) {
		*error_r = "empty domain-spec";
		return false;
	}
	if (spf_macro_scan(s, len, SPF_MACRO_DOMAIN, NULL, NULL, &sc,
	    error_r) == -1)
		return false;
	if (sc.ends_with_macro)
		return true;
	/* domain-end = "." toplabel [ "." ], all in the literal tail. */
	end = len;
	if (end > sc.tail && s[end - 1] == '.')
		end--;
	for (k = end; k > sc.tail && s[k - 1] != '.'; k--)
		;
	if (k == sc.tail || !spf_toplabel_valid(s + k, end - k)) {
		*error_r = "domain-spec does not end in a valid top label "
		    "or a macro";
		return false;
	}
	return true;
}

int
spf_macro_expand(const char *s, size_t len, enum spf_macro_mode mode,
    const struct spf_macro_env *env, struct buf *out, const char **error_r)
{
	const char *p;
	size_t n;

	if (env == NULL)
		return spf_macro_scan(s, len, mode, NULL, NULL, NULL, error_r);
	buf_reset(out);
	if (spf_macro_scan(s, len, mode, env, out, NULL, error_r) == -1)
		return -1;
	if (mode != SPF_MACRO_DOMAIN || out->len == 0)
		return 0;
	/* RFC 7208 7.3: a trailing dot is not part of the name. */
	if (out->data[out->len - 1] == '.')
		out->data[--out->len] = '\0';
	/* RFC 7208 7.3: cut whole labels from the left down to 253. */
	p = out->data;
	n = out->len;
	while (n > 253) {
		const char *dot = memchr(p, '.', n);

		if (dot == NULL)
			break;
		n -= (size_t)(dot + 1 - p);
		p = dot + 1;
	}
	if (p != out->data) {
		memmove(out->data, p, n);
		out->len = n;
		out->data[n] = '\0';
	}
	return 0;
}

/*
 * Records.
 */

/* A CIDR length: "0" or no leading zero, at most max. */
static int
spf_parse_cidr(const char *s, size_t len, int max)
{
	int v = 0;
	size_t i;

	if (len == 0 || len > 3 || (s[0] == '0' && len > 1))
		return -1;
	for (i = 0; i < len; i++) {
		if (!spf_is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v <= max ? v : -1;
}

/* RFC 7208 5.6 ip4-network: four qnums without leading zeros. */
static int
spf_parse_ip4(const char *s, size_t len, uint8_t out[4])
{
	size_t i = 0, part;

	for (part = 0; part < 4; part++) {
		size_t st = i;
		unsigned int v = 0;

		while (i < len && spf_is_digit(s[i]) && i - st < 3)
			v = v * 10 + (unsigned int)(s[i++] - '0');
		if (i == st || v > 255 || (s[st] == '0' && i - st > 1))
			return -1;
		out[part] = (uint8_t)v;
		if (part < 3) {
			if (i >= len || s[i] != '.')
				return -1;
			i++;
		}
	}
	return i == len ? 0 : -1;
}

static int
spf_parse_ip6(const char *s, size_t len, uint8_t out[16])
{
	char tmp[64];

	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	return inet_pton(AF_INET6, tmp, out) == 1 ? 0 : -1;
}

static bool
spf_has_p(const char *s)
{
	return strstr(s, "%{p") != NULL || strstr(s, "%{P") != NULL;
}

/* Fill t from one term; returns 0 or -1 with err set. */
static int
spf_parse_term(const char *s, size_t len, struct spf_term *t, char *err,
    size_t errlen)
{
	static const struct {
		const char *name;
		enum spf_mech type;
	} mechs[] = {
		{ "all", SPF_MECH_ALL }, { "include", SPF_MECH_INCLUDE },
		{ "a", SPF_MECH_A }, { "mx", SPF_MECH_MX },
		{ "ptr", SPF_MECH_PTR }, { "ip4", SPF_MECH_IP4 },
		{ "ip6", SPF_MECH_IP6 }, { "exists", SPF_MECH_EXISTS },
	};
	const char *why = NULL, *rest;
	size_t i = 0, j, k, restlen, n;
	bool qualified = false;
	char shown[80];

	t->text = xstrndup(s, len);
	t->qual = SPF_PASS;
	t->cidr4 = 32;
	t->cidr6 = 128;
	snprintf(shown, sizeof(shown), "%.*s", len > 60 ? 60 : (int)len, s);
	switch (s[0]) {
	case '+': t->qual = SPF_PASS; qualified = true; break;
	case '-': t->qual = SPF_FAIL; qualified = true; break;
	case '~': t->qual = SPF_SOFTFAIL; qualified = true; break;
	case '?': t->qual = SPF_NEUTRAL; qualified = true; break;
	}
	i = qualified ? 1 : 0;
	if (i >= len || !spf_is_alpha(s[i])) {
		snprintf(err, errlen, "invalid term \"%s\"", shown);
		return -1;
	}
	for (j = i + 1; j < len && (spf_is_alnum(s[j]) || s[j] == '-' ||
	    s[j] == '_' || s[j] == '.'); j++)
		;
	if (!qualified && j < len && s[j] == '=') {
		const char *v = s + j + 1;
		size_t vlen = len - j - 1;

		t->spec = xstrndup(v, vlen);
		if (j - i == 8 && ascii_strncasecmp(s + i, "redirect",
		    8) == 0) {
			t->type = SPF_MOD_REDIRECT;
			if (!spf_domain_spec_valid(v, vlen, &why))
				goto bad;
		} else if (j - i == 3 && ascii_strncasecmp(s + i, "exp",
		    3) == 0) {
			t->type = SPF_MOD_EXP;
			if (!spf_domain_spec_valid(v, vlen, &why))
				goto bad;
		} else {
			t->type = SPF_MOD_UNKNOWN;
			t->name = xstrndup(s + i, j - i);
			if (spf_macro_expand(v, vlen, SPF_MACRO_STRING, NULL,
			    NULL, &why) == -1)
				goto bad;
		}
		t->uses_p = spf_has_p(t->spec);
		return 0;
	}
	for (k = 0; k < nitems(mechs); k++)
		if (strlen(mechs[k].name) == j - i &&
		    ascii_strncasecmp(mechs[k].name, s + i, j - i) == 0)
			break;
	if (k == nitems(mechs) || (j < len && s[j] != ':' && s[j] != '/')) {
		snprintf(err, errlen, "unknown mechanism in \"%s\"", shown);
		return -1;
	}
	t->type = mechs[k].type;
	rest = s + j;
	restlen = len - j;
	switch (t->type) {
	case SPF_MECH_ALL:
		if (restlen != 0) {
			why = "all takes no argument";
			goto bad;
		}
		break;
	case SPF_MECH_INCLUDE:
	case SPF_MECH_EXISTS:
	case SPF_MECH_PTR:
		if (restlen == 0 && t->type == SPF_MECH_PTR)
			break;
		if (restlen == 0 || rest[0] != ':') {
			why = "a domain-spec is required after ':'";
			goto bad;
		}
		if (!spf_domain_spec_valid(rest + 1, restlen - 1, &why))
			goto bad;
		t->spec = xstrndup(rest + 1, restlen - 1);
		break;
	case SPF_MECH_A:
	case SPF_MECH_MX:
		/* dual-cidr-length from the end: [ "/" n ] [ "//" n ] */
		n = restlen;
		for (k = n; k > 0 && spf_is_digit(rest[k - 1]); k--)
			;
		if (k < n && k >= 2 && rest[k - 1] == '/' &&
		    rest[k - 2] == '/') {
			if ((t->cidr6 = spf_parse_cidr(rest + k, n - k,
			    128)) == -1) {
				why = "bad ip6 cidr length";
				goto bad;
			}
			n = k - 2;
			for (k = n; k > 0 && spf_is_digit(rest[k - 1]); k--)
				;
		}
		if (k < n && k >= 1 && rest[k - 1] == '/') {
			if ((t->cidr4 = spf_parse_cidr(rest + k, n - k,
			    32)) == -1) {
				why = "bad ip4 cidr length";
				goto bad;
			}
			n = k - 1;
		}
		if (n == 0)
			break;
		if (rest[0] != ':') {
			why = "bad argument";
			goto bad;
		}
		if (!spf_domain_spec_valid(rest + 1, n - 1, &why))
			goto bad;
		t->spec = xstrndup(rest + 1, n - 1);
		break;
	case SPF_MECH_IP4:
	case SPF_MECH_IP6:
		if (restlen == 0 || rest[0] != ':') {
			why = "an address is required after ':'";
			goto bad;
		}
		rest++;
		restlen--;
		for (n = 0; n < restlen && rest[n] != '/'; n++)
			;
		if (t->type == SPF_MECH_IP4) {
			t->net.family = AF_INET;
			if (spf_parse_ip4(rest, n, t->net.addr) == -1) {
				why = "bad ip4 address";
				goto bad;
			}
		} else {
			t->net.family = AF_INET6;
			if (spf_parse_ip6(rest, n, t->net.addr) == -1) {
				why = "bad ip6 address";
				goto bad;
			}
		}
		if (n < restlen) {
			int v = spf_parse_cidr(rest + n + 1, restlen - n - 1,
			    t->type == SPF_MECH_IP4 ? 32 : 128);

			if (v == -1) {
				why = "bad cidr length";
				goto bad;
			}
			if (t->type == SPF_MECH_IP4)
				t->cidr4 = v;
			else
				t->cidr6 = v;
		}
		break;
	default:
		break;
	}
	t->uses_p = t->spec != NULL && spf_has_p(t->spec);
	return 0;

bad:
	snprintf(err, errlen, "%s in \"%s\"", why, shown);
	return -1;
}

static void
spf_term_clear(struct spf_term *t)
{
	free(t->text);
	free(t->name);
	free(t->spec);
}

void
spf_record_free(struct spf_record *rec)
{
	size_t i;

	if (rec == NULL)
		return;
	for (i = 0; i < rec->nterms; i++)
		spf_term_clear(&rec->terms[i]);
	free(rec->terms);
	free(rec);
}

struct spf_record *
spf_record_parse(const char *txt, size_t len, char *err, size_t errlen)
{
	struct spf_record *rec;
	size_t i, st, cap = 0;

	if (errlen > 0)
		err[0] = '\0';
	if (!spf_record_is_spf1(txt, len)) {
		snprintf(err, errlen, "not a v=spf1 record");
		return NULL;
	}
	rec = xcalloc(1, sizeof(*rec));
	i = 6;
	for (;;) {
		struct spf_term *t;

		/* terms = *( 1*SP ( directive / modifier ) ); record ends
		 * in *SP. */
		while (i < len && txt[i] == ' ')
			i++;
		if (i >= len)
			break;
		st = i;
		while (i < len && txt[i] != ' ')
			i++;
		if (rec->nterms == SPF_MAX_TERMS) {
			snprintf(err, errlen, "more than %d terms",
			    SPF_MAX_TERMS);
			goto fail;
		}
		if (rec->nterms == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			rec->terms = xrealloc(rec->terms, cap *
			    sizeof(*rec->terms));
		}
		t = &rec->terms[rec->nterms++];
		memset(t, 0, sizeof(*t));
		{
			size_t k;

			for (k = st; k < i; k++) {
				unsigned char c = (unsigned char)txt[k];

				if (c < 0x21 || c > 0x7e) {
					t->text = xstrdup("");
					snprintf(err, errlen, "invalid "
					    "character 0x%02x in record", c);
					goto fail;
				}
			}
		}
		if (spf_parse_term(txt + st, i - st, t, err, errlen) == -1)
			goto fail;
		switch (t->type) {
		case SPF_MOD_REDIRECT:
			if (rec->redirect != NULL) {
				snprintf(err, errlen, "redirect= twice");
				goto fail;
			}
			rec->dns_terms++;
			break;
		case SPF_MOD_EXP:
			if (rec->exp != NULL) {
				snprintf(err, errlen, "exp= twice");
				goto fail;
			}
			break;
		case SPF_MECH_INCLUDE:
		case SPF_MECH_A:
		case SPF_MECH_MX:
		case SPF_MECH_PTR:
		case SPF_MECH_EXISTS:
			rec->dns_terms++;
			break;
		default:
			break;
		}
		/* Pointers into terms are set below: terms may move. */
		if (t->type == SPF_MOD_REDIRECT)
			rec->redirect = t;
		if (t->type == SPF_MOD_EXP)
			rec->exp = t;
	}
	rec->redirect = rec->exp = NULL;
	for (i = 0; i < rec->nterms; i++) {
		if (rec->terms[i].type == SPF_MOD_REDIRECT)
			rec->redirect = &rec->terms[i];
		if (rec->terms[i].type == SPF_MOD_EXP)
			rec->exp = &rec->terms[i];
	}
	return rec;

fail:
	spf_record_free(rec);
	return NULL;
}
