/*
 * dmarc.c: DMARC (RFC 7489): the record parser, alignment, policy
 * discovery over the asynchronous resolver, evaluation, and the author
 * domain of a message's From: fields.
 *
 * Entry points: dmarc_record_is_dmarc(), dmarc_record_parse(),
 * dmarc_record_clear(), dmarc_record_copy(), dmarc_aligned(),
 * dmarc_lookup(), dmarc_lookup_cancel(), dmarc_lookup_cancel_all(),
 * dmarc_lookup_pending(), dmarc_policy_copy(), dmarc_policy_clear(),
 * dmarc_evaluate(), dmarc_verdict_merge(), dmarc_from_domains(),
 * dmarc_from_verdict(), dmarc_authres(), dmarc_verdict_format(), and the
 * *_name() functions.
 *
 * The record parser is a tag-list lexer of its own (RFC 6376 3.2, which
 * RFC 7489 6.4 reuses) and one value parser per known tag; dmarc.h says
 * what is refused. A lookup is at most two TXT queries in sequence; each
 * request sits on a process-wide list so that it can be cancelled by id.
 *
 * Not yet: U-label From domains (RFC 7489 6.6.1 wants them converted to
 * A-labels before the lookup; dmarc_lookup() refuses them); failure
 * reports (fo=, ruf=) and aggregate reports (rua=) are kept in the
 * record for a later issue but not sent.
 *
 * SECURITY: TXT records (any octets, from the DNS) and From: values (from
 * the message) are untrusted. Every read is bounded by the given length;
 * no recursion; each octet is looked at a bounded number of times, and a
 * record with more than DMARC_TAGS_MAX tags is refused so that the
 * duplicate check stays small. What is kept is bounded (dmarc.h).
 * STANDARDS: RFC 7489 3.1, 3.2, 6.3, 6.4, 6.6.1-6.6.4; RFC 6376 3.2
 * (tag-list); RFC 3986 3.1 (URI scheme) and 2 (URI characters); RFC 8601
 * 2.7.1 (the dmarc result names).
 * OWNERSHIP: a record owns its URI strings (dmarc_record_clear()); a
 * lookup owns its request until its callback has returned or it is
 * cancelled; the policy handed to the callback is the request's.
 */
#include "msgauth/dmarc.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "mailaddr/hdraddr.h"
#include "msgauth/authres.h"

/* More tags than this in one record is a syntax error. */
#define DMARC_TAGS_MAX	64

/* ------------------------------------------------------------------ */
/* The tag-list lexer (RFC 6376 3.2). */

struct dmarc_tag {
	const char *name, *val;
	size_t nlen, vlen;
};

struct dmarc_lex {
	const char *p, *end;
};

static bool
dmarc_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* VALCHAR = %x21-3A / %x3C-7E: printable ASCII but ';'. */
static bool
dmarc_is_valchar(char c)
{
	return c >= 0x21 && c <= 0x7e && c != ';';
}

static bool
dmarc_is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
dmarc_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Skip FWS: WSP, and CRLF only when WSP follows (RFC 5322 FWS). */
static void
dmarc_skip_fws(struct dmarc_lex *lx)
{
	for (;;) {
		if (lx->p < lx->end && dmarc_is_wsp(*lx->p))
			lx->p++;
		else if (lx->end - lx->p >= 3 && lx->p[0] == '\r' &&
		    lx->p[1] == '\n' && dmarc_is_wsp(lx->p[2]))
			lx->p += 3;
		else
			return;
	}
}

/*
 * The next tag-spec. Returns 1 with *t set, 0 at the end, -1 on a syntax
 * error. Empty specs (only FWS between semicolons) are skipped.
 */
static int
dmarc_lex_next(struct dmarc_lex *lx, struct dmarc_tag *t,
    const char **error_r)
{
	for (;;) {
		dmarc_skip_fws(lx);
		if (lx->p >= lx->end)
			return 0;
		if (*lx->p != ';')
			break;
		lx->p++;
	}
	if (!dmarc_is_alpha(*lx->p)) {
		*error_r = "a tag name must start with a letter";
		return -1;
	}
	t->name = lx->p;
	while (lx->p < lx->end && (dmarc_is_alpha(*lx->p) ||
	    dmarc_is_digit(*lx->p) || *lx->p == '_'))
		lx->p++;
	t->nlen = (size_t)(lx->p - t->name);
	dmarc_skip_fws(lx);
	if (lx->p >= lx->end || *lx->p != '=') {
		*error_r = "a tag without '='";
		return -1;
	}
	lx->p++;
	dmarc_skip_fws(lx);
	t->val = lx->p;
	t->vlen = 0;
	while (lx->p < lx->end && *lx->p != ';') {
		if (dmarc_is_valchar(*lx->p)) {
			lx->p++;
			t->vlen = (size_t)(lx->p - t->val);
			continue;
		}
		const char *before = lx->p;

		dmarc_skip_fws(lx);
		if (lx->p == before) {
			*error_r = "a control or 8-bit octet in a tag value";
			return -1;
		}
	}
	if (lx->p < lx->end)
		lx->p++;	/* the ';' */
	return 1;
}

static bool
dmarc_eqi(const char *s, size_t len, const char *word)
{
	size_t wl = strlen(word);

	return len == wl && ascii_strncasecmp(s, word, len) == 0;
}

static bool
dmarc_tag_is(const struct dmarc_tag *t, const char *name)
{
	return dmarc_eqi(t->name, t->nlen, name);
}

bool
dmarc_record_is_dmarc(const char *txt, size_t len)
{
	struct dmarc_lex lx;
	struct dmarc_tag t;
	const char *err;

	if (txt == NULL)
		return false;
	lx = (struct dmarc_lex){ txt, txt + len };
	if (dmarc_lex_next(&lx, &t, &err) != 1)
		return false;
	/* RFC 7489 6.4: "v" then %x44 %x4d %x41 %x52 %x43 %x31. */
	return dmarc_tag_is(&t, "v") && t.vlen == 6 &&
	    memcmp(t.val, "DMARC1", 6) == 0;
}

/* ------------------------------------------------------------------ */
/* Tag values. */

static int
dmarc_parse_request(const struct dmarc_tag *t, enum dmarc_request *r)
{
	if (dmarc_eqi(t->val, t->vlen, "none"))
		*r = DMARC_REQ_NONE;
	else if (dmarc_eqi(t->val, t->vlen, "quarantine"))
		*r = DMARC_REQ_QUARANTINE;
	else if (dmarc_eqi(t->val, t->vlen, "reject"))
		*r = DMARC_REQ_REJECT;
	else
		return -1;
	return 0;
}

static int
dmarc_parse_align(const struct dmarc_tag *t, enum dmarc_align *a)
{
	if (dmarc_eqi(t->val, t->vlen, "r"))
		*a = DMARC_ALIGN_RELAXED;
	else if (dmarc_eqi(t->val, t->vlen, "s"))
		*a = DMARC_ALIGN_STRICT;
	else
		return -1;
	return 0;
}

/* 1*DIGIT up to max (no sign, no space); leading zeros are fine. */
static int
dmarc_parse_number(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t n = 0;
	size_t i;

	if (len == 0)
		return -1;
	for (i = 0; i < len; i++) {
		if (!dmarc_is_digit(s[i]))
			return -1;
		n = n * 10 + (uint64_t)(s[i] - '0');
		if (n > max)
			return -1;
	}
	*out = n;
	return 0;
}

/*
 * A colon-separated list of items (RFC 7489 6.4 dmarc-fo, dmarc-rfmt:
 * WSP allowed around ':'); each item goes to fn, which returns -1 on a
 * bad one.
 */
static int
dmarc_parse_colon_list(const char *s, size_t len,
    int (*fn)(const char *, size_t, unsigned int *), unsigned int *set)
{
	const char *end = s + len, *item, *q;

	if (len == 0)
		return -1;
	while (s <= end) {
		while (s < end && dmarc_is_wsp(*s))
			s++;
		item = s;
		while (s < end && *s != ':' && !dmarc_is_wsp(*s))
			s++;
		q = s;
		while (s < end && dmarc_is_wsp(*s))
			s++;
		if (s < end && *s != ':')
			return -1;	/* two words without ':' */
		if (fn(item, (size_t)(q - item), set) == -1)
			return -1;
		if (s == end)
			break;
		s++;		/* ':' */
	}
	return 0;
}

static int
dmarc_fo_item(const char *s, size_t len, unsigned int *set)
{
	if (dmarc_eqi(s, len, "0"))
		*set |= DMARC_FO_0;
	else if (dmarc_eqi(s, len, "1"))
		*set |= DMARC_FO_1;
	else if (dmarc_eqi(s, len, "d"))
		*set |= DMARC_FO_D;
	else if (dmarc_eqi(s, len, "s"))
		*set |= DMARC_FO_S;
	else
		return -1;
	return 0;
}

static int
dmarc_rf_item(const char *s, size_t len, unsigned int *set)
{
	/* The only format in the IANA registry (RFC 7489 11.4). */
	if (!dmarc_eqi(s, len, "afrf"))
		return -1;
	*set |= DMARC_RF_AFRF;
	return 0;
}

/* RFC 3986 2: characters of a URI, less ',' and '!' (RFC 7489 6.4:
 * they must be percent-encoded there) and ';' (the tag separator). */
static bool
dmarc_is_urichar(char c)
{
	return dmarc_is_alpha(c) || dmarc_is_digit(c) ||
	    (c != '\0' && strchr("-._~:/?#[]@$&'()*+=", c) != NULL);
}

static bool
dmarc_is_hex(char c)
{
	return dmarc_is_digit(c) || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

/* One dmarc-uri: URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ]. */
static int
dmarc_parse_uri(const char *s, size_t len, struct dmarc_uri *u)
{
	const char *bang, *end = s + len;
	size_t i, ulen, shift = 0;
	uint64_t n;

	bang = memchr(s, '!', len);
	ulen = bang != NULL ? (size_t)(bang - s) : len;
	if (ulen == 0 || ulen > DMARC_URI_MAX)
		return -1;
	/* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
	if (!dmarc_is_alpha(s[0]))
		return -1;
	for (i = 1; i < ulen && s[i] != ':'; i++)
		if (!dmarc_is_alpha(s[i]) && !dmarc_is_digit(s[i]) &&
		    s[i] != '+' && s[i] != '-' && s[i] != '.')
			return -1;
	if (i >= ulen - 1)
		return -1;	/* no ':' or nothing after it */
	for (i++; i < ulen; i++) {
		if (s[i] == '%') {
			if (i + 2 >= ulen || !dmarc_is_hex(s[i + 1]) ||
			    !dmarc_is_hex(s[i + 2]))
				return -1;
			i += 2;
		} else if (!dmarc_is_urichar(s[i]))
			return -1;
	}
	u->max_size = 0;
	if (bang != NULL) {
		const char *d = bang + 1, *de = end;

		if (de > d) {
			switch (de[-1]) {
			case 'k': case 'K': shift = 10; de--; break;
			case 'm': case 'M': shift = 20; de--; break;
			case 'g': case 'G': shift = 30; de--; break;
			case 't': case 'T': shift = 40; de--; break;
			}
		}
		if (dmarc_parse_number(d, (size_t)(de - d),
		    UINT64_MAX >> 41, &n) == -1)
			return -1;
		u->max_size = n << shift;
	}
	u->uri = xstrndup(s, ulen);
	return 0;
}

/* A list of dmarc-uri separated by ',' with WSP around. */
static int
dmarc_parse_uris(const struct dmarc_tag *t, struct dmarc_uri *uris,
    size_t *nuris)
{
	const char *s = t->val, *end = t->val + t->vlen, *item, *q;
	struct dmarc_uri u;

	if (t->vlen == 0)
		return -1;
	while (s <= end) {
		while (s < end && dmarc_is_wsp(*s))
			s++;
		item = s;
		while (s < end && *s != ',' && !dmarc_is_wsp(*s))
			s++;
		q = s;
		while (s < end && dmarc_is_wsp(*s))
			s++;
		if (s < end && *s != ',')
			return -1;
		if (dmarc_parse_uri(item, (size_t)(q - item), &u) == -1)
			return -1;
		/* RFC 7489 6.2: a receiver may limit the URIs it uses. */
		if (*nuris < DMARC_URIS_MAX)
			uris[(*nuris)++] = u;
		else
			free(u.uri);
		if (s == end)
			break;
		s++;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The record. */

void
dmarc_record_clear(struct dmarc_record *rec)
{
	size_t i;

	for (i = 0; i < rec->nrua; i++)
		free(rec->rua[i].uri);
	for (i = 0; i < rec->nruf; i++)
		free(rec->ruf[i].uri);
	memset(rec, 0, sizeof(*rec));
}

void
dmarc_record_copy(struct dmarc_record *dst, const struct dmarc_record *src)
{
	size_t i;

	*dst = *src;
	for (i = 0; i < src->nrua; i++)
		dst->rua[i].uri = xstrdup(src->rua[i].uri);
	for (i = 0; i < src->nruf; i++)
		dst->ruf[i].uri = xstrdup(src->ruf[i].uri);
}

int
dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *rec,
    const char **error_r)
{
	struct dmarc_lex lx = { txt, txt + len };
	struct dmarc_tag t, seen[DMARC_TAGS_MAX];
	size_t nseen = 0, i;
	bool have_p = false, p_bad = false, sp_bad = false;
	const char *err = NULL, *dummy;
	uint64_t n;
	int r;

	if (error_r == NULL)
		error_r = &dummy;
	memset(rec, 0, sizeof(*rec));
	rec->adkim = rec->aspf = DMARC_ALIGN_RELAXED;
	rec->pct = 100;
	rec->fo = DMARC_FO_0;
	rec->rf = DMARC_RF_AFRF;
	rec->ri = 86400;
	if (txt == NULL || len == 0) {
		*error_r = "empty record";
		return -1;
	}
	if (memchr(txt, '\0', len) != NULL) {
		err = "NUL in the record";
		goto fail;
	}
	if (!dmarc_record_is_dmarc(txt, len)) {
		err = "not a DMARC record (v=DMARC1 must come first)";
		goto fail;
	}
	while ((r = dmarc_lex_next(&lx, &t, &err)) == 1) {
		/* RFC 6376 3.2: a duplicate tag voids the tag-list. */
		for (i = 0; i < nseen; i++)
			if (seen[i].nlen == t.nlen && ascii_strncasecmp(
			    seen[i].name, t.name, t.nlen) == 0) {
				err = "a tag appears twice";
				goto fail;
			}
		if (nseen == DMARC_TAGS_MAX) {
			err = "too many tags";
			goto fail;
		}
		seen[nseen++] = t;
		if (nseen == 1)
			continue;	/* v=DMARC1, checked above */
		if (dmarc_tag_is(&t, "p")) {
			have_p = true;
			if (dmarc_parse_request(&t, &rec->p) == -1)
				p_bad = true;
		} else if (dmarc_tag_is(&t, "sp")) {
			if (dmarc_parse_request(&t, &rec->sp) == -1)
				sp_bad = true;
		} else if (dmarc_tag_is(&t, "adkim")) {
			if (dmarc_parse_align(&t, &rec->adkim) == -1) {
				err = "invalid adkim=";
				goto fail;
			}
		} else if (dmarc_tag_is(&t, "aspf")) {
			if (dmarc_parse_align(&t, &rec->aspf) == -1) {
				err = "invalid aspf=";
				goto fail;
			}
		} else if (dmarc_tag_is(&t, "pct")) {
			/* RFC 7489 6.4: 1*3DIGIT, 0 to 100. */
			if (t.vlen > 3 ||
			    dmarc_parse_number(t.val, t.vlen, 100, &n) == -1) {
				err = "invalid pct= (0 to 100)";
				goto fail;
			}
			rec->pct = (unsigned int)n;
		} else if (dmarc_tag_is(&t, "ri")) {
			if (dmarc_parse_number(t.val, t.vlen, UINT32_MAX,
			    &n) == -1) {
				err = "invalid ri=";
				goto fail;
			}
			rec->ri = (uint32_t)n;
		} else if (dmarc_tag_is(&t, "fo")) {
			rec->fo = 0;
			if (dmarc_parse_colon_list(t.val, t.vlen, dmarc_fo_item,
			    &rec->fo) == -1) {
				err = "invalid fo=";
				goto fail;
			}
		} else if (dmarc_tag_is(&t, "rf")) {
			rec->rf = 0;
			if (dmarc_parse_colon_list(t.val, t.vlen, dmarc_rf_item,
			    &rec->rf) == -1) {
				err = "invalid rf= (only afrf is defined)";
				goto fail;
			}
		} else if (dmarc_tag_is(&t, "rua")) {
			if (dmarc_parse_uris(&t, rec->rua, &rec->nrua) == -1) {
				err = "invalid rua= URI";
				goto fail;
			}
		} else if (dmarc_tag_is(&t, "ruf")) {
			if (dmarc_parse_uris(&t, rec->ruf, &rec->nruf) == -1) {
				err = "invalid ruf= URI";
				goto fail;
			}
		}
		/* Unknown tags are ignored (RFC 7489 6.3). */
	}
	if (r == -1)
		goto fail;
	if (!have_p || p_bad || sp_bad) {
		/* RFC 7489 6.6.3: with a usable rua=, act as p=none. */
		if (rec->nrua == 0) {
			err = !have_p ? "no p= tag" : p_bad ? "invalid p=" :
			    "invalid sp=";
			goto fail;
		}
		rec->p = DMARC_REQ_NONE;
		rec->sp = DMARC_REQ_UNSET;
		rec->p_fallback = true;
	}
	return 0;
fail:
	dmarc_record_clear(rec);
	*error_r = err;
	return -1;
}

const char *
dmarc_request_name(enum dmarc_request r)
{
	switch (r) {
	case DMARC_REQ_NONE:
		return "none";
	case DMARC_REQ_QUARANTINE:
		return "quarantine";
	case DMARC_REQ_REJECT:
		return "reject";
	case DMARC_REQ_UNSET:
		break;
	}
	return "";
}

/* ------------------------------------------------------------------ */
/* Alignment (RFC 7489 3.1). */

bool
dmarc_aligned(const char *from, const char *auth, enum dmarc_align mode)
{
	char a[ORGDOMAIN_MAX], b[ORGDOMAIN_MAX];

	if (from == NULL || auth == NULL)
		return false;
	if (mode == DMARC_ALIGN_STRICT) {
		if (orgdomain_normalize(from, a, sizeof(a)) == -1 ||
		    orgdomain_normalize(auth, b, sizeof(b)) == -1)
			return false;
		return strcmp(a, b) == 0;
	}
	return orgdomain_same(from, auth);
}

/* ------------------------------------------------------------------ */
/* Policy discovery (RFC 7489 6.6.3). */

struct dmarc_req {
	struct dmarc_req *next, **prevp;
	struct dns *d;
	uint64_t id;		/* ours: the first query's id */
	uint64_t qid;		/* the query in flight */
	dmarc_lookup_cb cb;
	void *arg;
	bool too_long;		/* the name asked cannot exist */
	struct dmarc_policy pol;
};

static pthread_mutex_t dmarc_reqs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dmarc_req *dmarc_reqs;

static void
dmarc_req_link(struct dmarc_req *r)
{
	pthread_mutex_lock(&dmarc_reqs_lock);
	r->next = dmarc_reqs;
	if (r->next != NULL)
		r->next->prevp = &r->next;
	r->prevp = &dmarc_reqs;
	dmarc_reqs = r;
	pthread_mutex_unlock(&dmarc_reqs_lock);
}

static void
dmarc_req_unlink(struct dmarc_req *r)
{
	pthread_mutex_lock(&dmarc_reqs_lock);
	if (r->next != NULL)
		r->next->prevp = r->prevp;
	*r->prevp = r->next;
	pthread_mutex_unlock(&dmarc_reqs_lock);
}

static void
dmarc_req_free(struct dmarc_req *r)
{
	dmarc_policy_clear(&r->pol);
	free(r);
}

void
dmarc_policy_copy(struct dmarc_policy *dst, const struct dmarc_policy *src)
{
	*dst = *src;
	dmarc_record_copy(&dst->rec, &src->rec);
}

void
dmarc_policy_clear(struct dmarc_policy *pol)
{
	dmarc_record_clear(&pol->rec);
}

static void dmarc_dns_cb(void *, const struct dns_answer *);

/* Ask for the TXT records at _dmarc.<domain>; returns the query id. */
static uint64_t
dmarc_req_query(struct dmarc_req *r, const char *domain)
{
	char name[DNS_NAME_MAX + 16];

	snprintf(name, sizeof(name), "_dmarc.%s", domain);
	/* RFC 1035 2.3.4: such a name cannot exist (only when the From
	 * domain is its own Organizational Domain, see dmarc_lookup()); ask
	 * a name that cannot exist either (RFC 6761 6.4), so that the
	 * answer still comes from the loop, and take it as "no record". */
	r->too_long = strlen(name) > 253;
	return dns_query(r->d, r->too_long ? "_dmarc.invalid" : name,
	    DNS_TYPE_TXT, dmarc_dns_cb, r);
}

static void
dmarc_req_finish(struct dmarc_req *r)
{
	dmarc_req_unlink(r);
	r->cb(r->arg, &r->pol);
	dmarc_req_free(r);
}

__attribute__((format(printf, 3, 4)))
static void
dmarc_req_status(struct dmarc_req *r, enum dmarc_policy_status st,
    const char *fmt, ...)
{
	va_list ap;

	r->pol.status = st;
	va_start(ap, fmt);
	vsnprintf(r->pol.reason, sizeof(r->pol.reason), fmt, ap);
	va_end(ap);
}

static void
dmarc_dns_cb(void *arg, const struct dns_answer *ans)
{
	struct dmarc_req *r = arg;
	const char *domain = r->pol.at_org ? r->pol.org_domain :
	    r->pol.from_domain;
	const char *err;
	size_t i, ndmarc = 0, which = 0;

	r->qid = 0;
	if (r->too_long)
		goto empty;
	switch (ans->status) {
	case DNS_NODATA:
	case DNS_NXDOMAIN:
		goto empty;
	case DNS_TEMPFAIL:
		dmarc_req_status(r, DMARC_POLICY_TEMPERROR,
		    "DNS error at _dmarc.%s: %s", domain, ans->error);
		dmarc_req_finish(r);
		return;
	case DNS_PERMFAIL:
		dmarc_req_status(r, DMARC_POLICY_PERMERROR,
		    "bad DNS answer at _dmarc.%s: %s", domain, ans->error);
		dmarc_req_finish(r);
		return;
	case DNS_OK:
		break;
	}
	for (i = 0; i < ans->n; i++)
		if (dmarc_record_is_dmarc(ans->txt[i].data, ans->txt[i].len)) {
			if (ndmarc++ == 0)
				which = i;
		}
	if (ndmarc == 0)
		goto empty;
	strlcpy(r->pol.record_domain, domain, sizeof(r->pol.record_domain));
	if (ndmarc > 1) {
		/* RFC 7489 6.6.3 step 5: DMARC does not apply. */
		dmarc_req_status(r, DMARC_POLICY_ABSENT,
		    "%zu DMARC records at _dmarc.%s", ndmarc, domain);
		dmarc_req_finish(r);
		return;
	}
	if (dmarc_record_parse(ans->txt[which].data, ans->txt[which].len,
	    &r->pol.rec, &err) == -1) {
		dmarc_req_status(r, DMARC_POLICY_PERMERROR,
		    "invalid DMARC record at _dmarc.%s: %s", domain, err);
		dmarc_req_finish(r);
		return;
	}
	dmarc_req_status(r, DMARC_POLICY_FOUND, "DMARC record at _dmarc.%s",
	    domain);
	dmarc_req_finish(r);
	return;
empty:
	if (!r->pol.at_org &&
	    strcmp(r->pol.org_domain, r->pol.from_domain) != 0) {
		/* RFC 7489 6.6.3 step 3: the Organizational Domain. */
		r->pol.at_org = true;
		r->qid = dmarc_req_query(r, r->pol.org_domain);
		return;
	}
	r->pol.at_org = false;
	dmarc_req_status(r, DMARC_POLICY_ABSENT, "no DMARC record for %s",
	    r->pol.from_domain);
	dmarc_req_finish(r);
}

uint64_t
dmarc_lookup(struct dns *d, const char *from_domain, dmarc_lookup_cb cb,
    void *arg)
{
	struct dmarc_req *r;
	const char *p;

	if (from_domain == NULL)
		return 0;
	for (p = from_domain; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			return 0;	/* not yet: A-labels (RFC 7489 6.6.1) */
	r = xcalloc(1, sizeof(*r));
	if (orgdomain_normalize(from_domain, r->pol.from_domain,
	    sizeof(r->pol.from_domain)) == -1 ||
	    orgdomain_get(r->pol.from_domain, r->pol.org_domain,
	    sizeof(r->pol.org_domain)) == -1) {
		free(r);
		return 0;
	}
	r->d = d;
	r->cb = cb;
	r->arg = arg;
	/* RFC 1035 2.3.4: _dmarc.<a 247+ octet name> cannot exist; go to
	 * the Organizational Domain at once when there is one. */
	if (strlen(r->pol.from_domain) + strlen("_dmarc.") > 253 &&
	    strcmp(r->pol.org_domain, r->pol.from_domain) != 0) {
		r->pol.at_org = true;
		r->id = r->qid = dmarc_req_query(r, r->pol.org_domain);
	} else
		r->id = r->qid = dmarc_req_query(r, r->pol.from_domain);
	/* The callback never runs inside dns_query(): link now. */
	dmarc_req_link(r);
	return r->id;
}

/* Unlink and return the request (d, id), or NULL. */
static struct dmarc_req *
dmarc_req_take(const struct dns *d, uint64_t id)
{
	struct dmarc_req *r;

	pthread_mutex_lock(&dmarc_reqs_lock);
	for (r = dmarc_reqs; r != NULL; r = r->next)
		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): r is unlinked */
		if (r->d == d && (id == 0 || r->id == id))
			break;
	if (r != NULL) {
		if (r->next != NULL)
			r->next->prevp = r->prevp;
		*r->prevp = r->next;
	}
	pthread_mutex_unlock(&dmarc_reqs_lock);
	return r;
}

void
dmarc_lookup_cancel(struct dns *d, uint64_t id)
{
	struct dmarc_req *r;

	if (id == 0 || (r = dmarc_req_take(d, id)) == NULL)
		return;
	if (r->qid != 0)
		dns_cancel(d, r->qid);
	dmarc_req_free(r);
}

void
dmarc_lookup_cancel_all(struct dns *d)
{
	struct dmarc_req *r;

	while ((r = dmarc_req_take(d, 0)) != NULL) {
		if (r->qid != 0)
			dns_cancel(d, r->qid);
		dmarc_req_free(r);
	}
}

size_t
dmarc_lookup_pending(const struct dns *d)
{
	struct dmarc_req *r;
	size_t n = 0;

	pthread_mutex_lock(&dmarc_reqs_lock);
	for (r = dmarc_reqs; r != NULL; r = r->next)
		if (r->d == d)
			n++;
	pthread_mutex_unlock(&dmarc_reqs_lock);
	return n;
}

/* ------------------------------------------------------------------ */
/* Evaluation (RFC 7489 6.6.2, 6.6.4). */

void
dmarc_evaluate(const struct dmarc_input *in, struct dmarc_verdict *v)
{
	const struct dmarc_policy *pol = in->policy;
	const struct dmarc_record *rec;
	enum dmarc_request req;
	size_t i;

	memset(v, 0, sizeof(*v));
	v->result = DMARC_RESULT_NONE;
	v->policy = DMARC_REQ_UNSET;
	v->disposition = DMARC_DISP_NONE;
	if (pol == NULL || pol->status == DMARC_POLICY_ABSENT) {
		v->reason = "no DMARC policy";
		return;
	}
	if (pol->status == DMARC_POLICY_TEMPERROR) {
		v->result = DMARC_RESULT_TEMPERROR;
		v->reason = "DNS error looking up the DMARC policy";
		return;
	}
	if (pol->status == DMARC_POLICY_PERMERROR) {
		v->result = DMARC_RESULT_PERMERROR;
		v->reason = "invalid DMARC policy";
		return;
	}
	rec = &pol->rec;
	/* RFC 7489 6.3 sp: for subdomains of the domain queried. */
	req = pol->at_org && rec->sp != DMARC_REQ_UNSET ? rec->sp : rec->p;
	v->policy = req;
	v->spf_aligned = in->spf_pass && dmarc_aligned(in->from_domain,
	    in->spf_domain, rec->aspf);
	for (i = 0; i < in->ndkim; i++)
		if (in->dkim[i].pass && dmarc_aligned(in->from_domain,
		    in->dkim[i].domain, rec->adkim)) {
			v->dkim_aligned = true;
			v->dkim_index = i;
			break;
		}
	if (v->spf_aligned || v->dkim_aligned) {
		v->result = DMARC_RESULT_PASS;
		v->reason = v->dkim_aligned && v->spf_aligned ?
		    "aligned SPF and DKIM" : v->dkim_aligned ?
		    "aligned DKIM" : "aligned SPF";
		return;
	}
	v->result = DMARC_RESULT_FAIL;
	v->reason = "no aligned SPF or DKIM pass";
	if (req == DMARC_REQ_NONE)
		return;
	if (in->roll < rec->pct) {
		v->disposition = req == DMARC_REQ_REJECT ? DMARC_DISP_REJECT :
		    DMARC_DISP_QUARANTINE;
		return;
	}
	/* RFC 7489 6.6.4: sampled out, one step down. */
	v->sampled_out = true;
	v->disposition = req == DMARC_REQ_REJECT ? DMARC_DISP_QUARANTINE :
	    DMARC_DISP_NONE;
}

static int
dmarc_result_rank(enum dmarc_result r)
{
	switch (r) {
	case DMARC_RESULT_PASS:
		return 0;
	case DMARC_RESULT_NONE:
		return 1;
	case DMARC_RESULT_PERMERROR:
		return 2;
	case DMARC_RESULT_TEMPERROR:
		return 3;
	case DMARC_RESULT_FAIL:
		return 4;
	}
	return 4;
}

void
dmarc_verdict_merge(struct dmarc_verdict *acc, const struct dmarc_verdict *v)
{
	enum dmarc_disposition disp = acc->disposition > v->disposition ?
	    acc->disposition : v->disposition;

	if (dmarc_result_rank(v->result) > dmarc_result_rank(acc->result) ||
	    v->disposition > acc->disposition)
		*acc = *v;
	acc->disposition = disp;
}

const char *
dmarc_result_name(enum dmarc_result r)
{
	switch (r) {
	case DMARC_RESULT_NONE:
		return "none";
	case DMARC_RESULT_PASS:
		return "pass";
	case DMARC_RESULT_FAIL:
		return "fail";
	case DMARC_RESULT_TEMPERROR:
		return "temperror";
	case DMARC_RESULT_PERMERROR:
		return "permerror";
	}
	return "permerror";
}

const char *
dmarc_disposition_name(enum dmarc_disposition d)
{
	switch (d) {
	case DMARC_DISP_NONE:
		return "none";
	case DMARC_DISP_QUARANTINE:
		return "quarantine";
	case DMARC_DISP_REJECT:
		return "reject";
	}
	return "none";
}

/* A name from the message or the DNS, safe for a key=value field. */
static const char *
dmarc_log_name(char *dst, size_t size, const char *name)
{
	if (name == NULL || *name == '\0')
		return "-";
	return log_escape_word(dst, size, name, strlen(name));
}

int
dmarc_verdict_format(struct buf *out, const struct dmarc_input *in,
    const struct dmarc_verdict *v)
{
	const struct dmarc_policy *pol = in->policy;
	const struct dmarc_record *rec = pol != NULL &&
	    pol->status == DMARC_POLICY_FOUND ? &pol->rec : NULL;
	char a[ORGDOMAIN_MAX * 4 + 8];
	size_t i;
	int r;

	r = buf_printf(out, "dmarc from=%s",
	    dmarc_log_name(a, sizeof(a), in->from_domain));
	if (r == 0 && rec != NULL)
		r = buf_printf(out, " policy_domain=%s p=%s sp=%s pct=%u "
		    "adkim=%c aspf=%c%s",
		    dmarc_log_name(a, sizeof(a), pol->record_domain),
		    dmarc_request_name(rec->p), rec->sp == DMARC_REQ_UNSET ?
		    "-" : dmarc_request_name(rec->sp), rec->pct,
		    rec->adkim == DMARC_ALIGN_STRICT ? 's' : 'r',
		    rec->aspf == DMARC_ALIGN_STRICT ? 's' : 'r',
		    rec->p_fallback ? " p_fallback=1" : "");
	if (r == 0)
		r = buf_printf(out, " result=%s disposition=%s sampled_out=%d "
		    "spf=%s/%s/%s", dmarc_result_name(v->result),
		    dmarc_disposition_name(v->disposition), v->sampled_out,
		    dmarc_log_name(a, sizeof(a), in->spf_domain),
		    in->spf_pass ? "pass" : "fail",
		    v->spf_aligned ? "aligned" : "unaligned");
	/* Each signature's own alignment (RFC 7489 appendix C records
	 * them one by one), not only the one the verdict used. */
	for (i = 0; r == 0 && i < in->ndkim; i++)
		r = buf_printf(out, "%s%s/%s/%s", i == 0 ? " dkim=" : ",",
		    dmarc_log_name(a, sizeof(a), in->dkim[i].domain),
		    in->dkim[i].pass ? "pass" : "fail",
		    rec != NULL && in->dkim[i].pass &&
		    dmarc_aligned(in->from_domain, in->dkim[i].domain,
		    rec->adkim) ? "aligned" : "unaligned");
	return r;
}

int
dmarc_authres(struct authres *ar, const struct dmarc_verdict *v,
    const char *from_domain)
{
	char comment[128];

	if (v->result == DMARC_RESULT_PASS && v->policy != DMARC_REQ_UNSET)
		snprintf(comment, sizeof(comment), "p=%s",
		    dmarc_request_name(v->policy));
	else if (v->result == DMARC_RESULT_FAIL)
		snprintf(comment, sizeof(comment), "p=%s dis=%s%s",
		    dmarc_request_name(v->policy),
		    dmarc_disposition_name(v->disposition),
		    v->sampled_out ? " pct" : "");
	else
		strlcpy(comment, v->reason != NULL ? v->reason : "",
		    sizeof(comment));
	if (authres_add(ar, "dmarc", dmarc_result_name(v->result),
	    comment) == -1)
		return -1;
	if (from_domain != NULL)
		(void)authres_prop(ar, "header", "from", from_domain);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The author domain (RFC 7489 6.6.1). */

static int
dmarc_from_addr(void *arg, const char *addr, size_t len)
{
	struct dmarc_from *f = arg;
	char dom[ORGDOMAIN_MAX];
	size_t llen, i;
	bool quoted;

	if (!mailaddr_addr_split(addr, len, &llen, &quoted) ||
	    addr[llen + 1] == '[' ||
	    orgdomain_normalize(addr + llen + 1, dom, sizeof(dom)) == -1) {
		f->status = DMARC_FROM_INVALID;
		return 1;
	}
	for (i = 0; i < f->ndomains && i < DMARC_FROM_MAX; i++)
		if (strcmp(f->domains[i], dom) == 0)
			return 0;
	if (f->ndomains < DMARC_FROM_MAX)
		strlcpy(f->domains[f->ndomains], dom, sizeof(f->domains[0]));
	f->ndomains++;
	return 0;
}

void
dmarc_from_domains(const char *const *values, const size_t *lens, size_t n,
    struct dmarc_from *f)
{
	size_t i;

	memset(f, 0, sizeof(*f));
	f->status = DMARC_FROM_NONE;
	for (i = 0; i < n; i++) {
		if (mailaddr_header_parse(values[i], lens[i], 0,
		    dmarc_from_addr, f, NULL) < 0) {
			f->status = DMARC_FROM_INVALID;
			return;
		}
		if (f->status == DMARC_FROM_INVALID)
			return;
	}
	if (f->ndomains == 1)
		f->status = DMARC_FROM_ONE;
	else if (f->ndomains > 1)
		f->status = DMARC_FROM_MULTIPLE;
}

bool
dmarc_from_verdict(const struct dmarc_from *f, unsigned int flags,
    struct dmarc_verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->policy = DMARC_REQ_UNSET;
	v->disposition = DMARC_DISP_NONE;
	switch (f->status) {
	case DMARC_FROM_ONE:
		return true;
	case DMARC_FROM_NONE:
		v->result = DMARC_RESULT_NONE;
		v->reason = "no From: domain";
		return false;
	case DMARC_FROM_MULTIPLE:
		if (!(flags & DMARC_FROM_REJECT_MULTIPLE) &&
		    f->ndomains <= DMARC_FROM_MAX)
			return true;
		v->result = DMARC_RESULT_PERMERROR;
		v->disposition = DMARC_DISP_REJECT;
		v->reason = "several From: domains";
		return false;
	case DMARC_FROM_INVALID:
		v->result = DMARC_RESULT_PERMERROR;
		v->disposition = flags & DMARC_FROM_REJECT_INVALID ?
		    DMARC_DISP_REJECT : DMARC_DISP_NONE;
		v->reason = "unreadable From:";
		return false;
	}
	return false;
}
