/*
 * dkim_tags.c: DKIM tag lists, DKIM-Signature fields and key records.
 *
 * Entry points: dkim_taglist_parse(), dkim_taglist_get(), dkim_sig_parse(),
 * dkim_sig_free(), dkim_key_query_name(), dkim_key_parse(),
 * dkim_key_free(), dkim_reason_result(), dkim_reason_str(),
 * dkim_result_str(), dkim_alg_str(), dkim_alg_hash(), dkim_alg_keytype().
 *
 * The tag-list parser is one left-to-right pass that records offsets into
 * the text (a signer's b= value is later cut out by offset, so the rest of
 * the field stays byte for byte). The signature and key parsers check the
 * tags they know, each into its own reason, and ignore the others.
 *
 * SECURITY: parses untrusted text: DKIM-Signature fields of received mail
 * and DNS TXT records chosen by whoever signed it, in the daemon (worker
 * threads). No recursion; each octet is read a bounded number of times;
 * the tag count, h= names and decoded sizes are capped; keys are decoded by
 * OpenSSL from DER whose length is bounded here.
 * STANDARDS: RFC 6376 3.2 (tag lists), 3.5 (DKIM-Signature), 3.6.1 (key
 * records), 6.1.1 and 6.1.2 (what makes a signature or key unusable);
 * RFC 8301 (rsa-sha1, 1024-bit minimum); RFC 8463 (ed25519); RFC 8601
 * 2.7.1 (result names).
 * OWNERSHIP: struct dkim_sig owns copies of everything it names (not the
 * parsed text); struct dkim_key owns its EVP_PKEY.
 */
#include "msgauth/dkim.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "lib/util.h"
#include "msgauth/b64.h"
#include "msgauth/dkim_private.h"

#define DKIM_B_MAX	1024	/* decoded b= octets: RSA-8192 */
#define DKIM_P_TEXT_MAX	8192	/* p= characters */

static const struct {
	enum dkim_result result;
	const char *text;
} dkim_reasons[DKIM_REASON_COUNT] = {
	[DKIM_OK] = { DKIM_RESULT_PASS, "ok" },
	[DKIM_SIG_SYNTAX] = { DKIM_RESULT_PERMERROR,
	    "signature syntax error" },
	[DKIM_SIG_DUPLICATE_TAG] = { DKIM_RESULT_PERMERROR,
	    "signature has a duplicate tag" },
	[DKIM_SIG_TOO_MANY_TAGS] = { DKIM_RESULT_PERMERROR,
	    "signature has too many tags" },
	[DKIM_SIG_MISSING_V] = { DKIM_RESULT_PERMERROR,
	    "signature missing required tag v=" },
	[DKIM_SIG_MISSING_A] = { DKIM_RESULT_PERMERROR,
	    "signature missing required tag a=" },
	[DKIM_SIG_MISSING_B] = { DKIM_RESULT_PERMERROR,
	    "signature missing required tag b=" },
	[DKIM_SIG_MISSING_BH] = { DKIM_RESULT_PERMERROR,
	    "signature missing required tag bh=" },
	[DKIM_SIG_MISSING_D] = { DKIM_RESULT_PERMERROR,
	    "signature missing required tag d=" },
	[DKIM_SIG_MISSING_H] = { DKIM_RESULT_PERMERROR,
	    "signature missing required tag h=" },
	[DKIM_SIG_MISSING_S] = { DKIM_RESULT_PERMERROR,
	    "signature missing required tag s=" },
	[DKIM_SIG_VERSION] = { DKIM_RESULT_PERMERROR,
	    "incompatible signature version" },
	[DKIM_SIG_ALGORITHM] = { DKIM_RESULT_PERMERROR,
	    "unsupported signature algorithm" },
	[DKIM_SIG_BAD_B] = { DKIM_RESULT_PERMERROR,
	    "signature b= is not valid base64" },
	[DKIM_SIG_BAD_BH] = { DKIM_RESULT_PERMERROR,
	    "signature bh= is not valid base64" },
	[DKIM_SIG_CANON] = { DKIM_RESULT_PERMERROR,
	    "unsupported canonicalization" },
	[DKIM_SIG_DOMAIN] = { DKIM_RESULT_PERMERROR,
	    "signature d= is not a domain name" },
	[DKIM_SIG_SELECTOR] = { DKIM_RESULT_PERMERROR,
	    "signature s= is not a selector" },
	[DKIM_SIG_HEADERS] = { DKIM_RESULT_PERMERROR,
	    "signature h= is invalid" },
	[DKIM_SIG_FROM_NOT_SIGNED] = { DKIM_RESULT_PERMERROR,
	    "From field not signed" },
	[DKIM_SIG_IDENTITY] = { DKIM_RESULT_PERMERROR,
	    "signature i= is invalid" },
	[DKIM_SIG_IDENTITY_DOMAIN] = { DKIM_RESULT_PERMERROR,
	    "domain mismatch between i= and d=" },
	[DKIM_SIG_LENGTH] = { DKIM_RESULT_PERMERROR,
	    "signature l= is invalid" },
	[DKIM_SIG_QUERY] = { DKIM_RESULT_PERMERROR,
	    "unsupported query method" },
	[DKIM_SIG_TIMESTAMP] = { DKIM_RESULT_PERMERROR,
	    "signature t= is invalid" },
	[DKIM_SIG_EXPIRATION] = { DKIM_RESULT_PERMERROR,
	    "signature x= is invalid" },
	[DKIM_SIG_EXPIRES_BEFORE_SIGNED] = { DKIM_RESULT_PERMERROR,
	    "signature x= is before t=" },
	[DKIM_KEY_SYNTAX] = { DKIM_RESULT_PERMERROR, "key syntax error" },
	[DKIM_KEY_DUPLICATE_TAG] = { DKIM_RESULT_PERMERROR,
	    "key record has a duplicate tag" },
	[DKIM_KEY_TOO_MANY_TAGS] = { DKIM_RESULT_PERMERROR,
	    "key record has too many tags" },
	[DKIM_KEY_VERSION] = { DKIM_RESULT_PERMERROR,
	    "incompatible key version" },
	[DKIM_KEY_MISSING_P] = { DKIM_RESULT_PERMERROR,
	    "key record missing p=" },
	[DKIM_KEY_BAD_P] = { DKIM_RESULT_PERMERROR,
	    "key p= is not a valid key" },
	[DKIM_KEY_NOT_FOUND] = { DKIM_RESULT_PERMERROR,
	    "no key for signature" },
	[DKIM_KEY_TEMPFAIL] = { DKIM_RESULT_TEMPERROR,
	    "key unavailable" },
	[DKIM_FAIL_KEY_TYPE] = { DKIM_RESULT_FAIL, "unknown key type" },
	[DKIM_FAIL_KEY_SERVICE] = { DKIM_RESULT_FAIL,
	    "key not for email" },
	[DKIM_FAIL_KEY_REVOKED] = { DKIM_RESULT_FAIL, "key revoked" },
	[DKIM_FAIL_KEY_TOO_SMALL] = { DKIM_RESULT_FAIL,
	    "key too small" },
	[DKIM_FAIL_KEY_TOO_LARGE] = { DKIM_RESULT_FAIL,
	    "key too large" },
	[DKIM_FAIL_KEY_MISMATCH] = { DKIM_RESULT_FAIL,
	    "key type does not match signature algorithm" },
	[DKIM_FAIL_HASH_NOT_ALLOWED] = { DKIM_RESULT_FAIL,
	    "hash algorithm not allowed by key" },
	[DKIM_FAIL_STRICT_IDENTITY] = { DKIM_RESULT_FAIL,
	    "key t=s requires i= domain equal to d=" },
	[DKIM_FAIL_EXPIRED] = { DKIM_RESULT_FAIL, "signature expired" },
	[DKIM_FAIL_RSA_SHA1] = { DKIM_RESULT_FAIL,
	    "rsa-sha1 not accepted" },
	[DKIM_FAIL_BODY_TOO_SHORT] = { DKIM_RESULT_FAIL,
	    "body shorter than l=" },
	[DKIM_FAIL_BODY_HASH] = { DKIM_RESULT_FAIL,
	    "body hash did not verify" },
	[DKIM_FAIL_SIGNATURE] = { DKIM_RESULT_FAIL,
	    "signature did not verify" },
	[DKIM_MSG_MALFORMED] = { DKIM_RESULT_PERMERROR,
	    "message header malformed" },
};

enum dkim_result
dkim_reason_result(enum dkim_reason reason)
{
	if ((unsigned int)reason >= DKIM_REASON_COUNT)
		return DKIM_RESULT_PERMERROR;
	return dkim_reasons[reason].result;
}

const char *
dkim_reason_str(enum dkim_reason reason)
{
	if ((unsigned int)reason >= DKIM_REASON_COUNT)
		return "unknown error";
	return dkim_reasons[reason].text;
}

const char *
dkim_result_str(enum dkim_result result)
{
	switch (result) {
	case DKIM_RESULT_NONE:
		return "none";
	case DKIM_RESULT_PASS:
		return "pass";
	case DKIM_RESULT_FAIL:
		return "fail";
	case DKIM_RESULT_NEUTRAL:
		return "neutral";
	case DKIM_RESULT_POLICY:
		return "policy";
	case DKIM_RESULT_TEMPERROR:
		return "temperror";
	case DKIM_RESULT_PERMERROR:
		return "permerror";
	}
	return "permerror";
}

const char *
dkim_pass_note_flags(bool testing, bool partial_body)
{
	if (testing && partial_body)
		return "key in testing mode (t=y); body partly signed (l=)";
	if (testing)
		return "key in testing mode (t=y)";
	if (partial_body)
		return "body partly signed (l=)";
	return NULL;
}

const char *
dkim_pass_note(const struct dkim_verdict *v)
{
	return dkim_pass_note_flags(v->testing, v->partial_body);
}

const char *
dkim_alg_str(enum dkim_alg alg)
{
	switch (alg) {
	case DKIM_ALG_RSA_SHA256:
		return "rsa-sha256";
	case DKIM_ALG_RSA_SHA1:
		return "rsa-sha1";
	case DKIM_ALG_ED25519_SHA256:
		return "ed25519-sha256";
	}
	return "unknown";
}

enum dkim_hash
dkim_alg_hash(enum dkim_alg alg)
{
	return alg == DKIM_ALG_RSA_SHA1 ? DKIM_HASH_SHA1 : DKIM_HASH_SHA256;
}

enum dkim_keytype
dkim_alg_keytype(enum dkim_alg alg)
{
	return alg == DKIM_ALG_ED25519_SHA256 ? DKIM_KEY_ED25519 :
	    DKIM_KEY_RSA;
}

const EVP_MD *
dkim_hash_md(enum dkim_hash h)
{
	return h == DKIM_HASH_SHA1 ? EVP_sha1() : EVP_sha256();
}

/*
 * Tag lists
 */

static bool
dkim_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static bool
dkim_is_alpha(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool
dkim_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 6376 3.2 VALCHAR, and 8-bit octets (seen in n= notes). */
static bool
dkim_is_valchar(char c)
{
	unsigned char u = (unsigned char)c;

	return (u >= 0x21 && u <= 0x7e && u != ';') || u >= 0x80;
}

/* Skip FWS (WSP, and CRLF when WSP follows it); returns the new offset. */
static size_t
dkim_skip_fws(const char *s, size_t len, size_t i)
{
	for (;;) {
		if (i < len && dkim_is_wsp(s[i]))
			i++;
		else if (i + 2 < len && s[i] == '\r' && s[i + 1] == '\n' &&
		    dkim_is_wsp(s[i + 2]))
			i += 3;
		else
			return i;
	}
}

int
dkim_taglist_parse(const char *text, size_t len, struct dkim_taglist *l,
    enum dkim_reason *reason_r)
{
	size_t i = 0, k;

	l->ntags = 0;
	i = dkim_skip_fws(text, len, i);
	if (i == len)
		return 0;
	for (;;) {
		struct dkim_tag *t;
		size_t name, namelen, vstart, vend;

		i = dkim_skip_fws(text, len, i);
		if (i == len && l->ntags > 0)
			return 0;	/* after a trailing ';' */
		if (i == len || !dkim_is_alpha(text[i]))
			goto syntax;
		name = i++;
		while (i < len && (dkim_is_alpha(text[i]) ||
		    dkim_is_digit(text[i]) || text[i] == '_'))
			i++;
		namelen = i - name;
		i = dkim_skip_fws(text, len, i);
		if (i == len || text[i] != '=')
			goto syntax;
		i++;
		if (l->ntags == DKIM_TAGS_MAX) {
			*reason_r = DKIM_SIG_TOO_MANY_TAGS;
			return -1;
		}
		t = &l->tags[l->ntags];
		t->span_start = i;
		i = dkim_skip_fws(text, len, i);
		vstart = vend = i;
		while (i < len && text[i] != ';') {
			if (dkim_is_valchar(text[i])) {
				vend = ++i;
				continue;
			}
			k = dkim_skip_fws(text, len, i);
			if (k == i)
				goto syntax;	/* CTL, bare CR or LF */
			i = k;
		}
		t->span_end = i;
		t->name = text + name;
		t->namelen = namelen;
		t->value = text + vstart;
		t->valuelen = vend - vstart;
		for (k = 0; k < l->ntags; k++) {
			if (l->tags[k].namelen == namelen &&
			    memcmp(l->tags[k].name, t->name, namelen) == 0) {
				*reason_r = DKIM_SIG_DUPLICATE_TAG;
				return -1;
			}
		}
		l->ntags++;
		if (i == len)
			return 0;
		i++;		/* ';' */
	}
syntax:
	*reason_r = DKIM_SIG_SYNTAX;
	return -1;
}

const struct dkim_tag *
dkim_taglist_get(const struct dkim_taglist *l, const char *name)
{
	size_t i, n = strlen(name);

	for (i = 0; i < l->ntags; i++)
		if (l->tags[i].namelen == n &&
		    memcmp(l->tags[i].name, name, n) == 0)
			return &l->tags[i];
	return NULL;
}

/* Whether tag t's value is s (ASCII case-insensitive). */
static bool
dkim_tag_is(const struct dkim_tag *t, const char *s)
{
	return t->valuelen == strlen(s) &&
	    ascii_strncasecmp(t->value, s, t->valuelen) == 0;
}

/*
 * Iterate over a colon-separated list in a tag value (h=, q=, and the key
 * record's h=, s=, t=): the next element, with FWS around it removed, is
 * put in *el, *ellen. Returns false at the end. *pos starts at 0.
 */
static bool
dkim_list_next(const struct dkim_tag *t, size_t *pos, const char **el,
    size_t *ellen)
{
	const char *v = t->value;
	size_t n = t->valuelen, i = *pos, s, e;

	if (i > n)
		return false;
	i = dkim_skip_fws(v, n, i);
	s = e = i;
	while (i < n && v[i] != ':') {
		if (!dkim_is_wsp(v[i]) && v[i] != '\r' && v[i] != '\n')
			e = i + 1;
		i++;
	}
	*el = v + s;
	*ellen = e - s;
	*pos = i + 1;		/* past ':' or past the end */
	return true;
}

static bool
dkim_el_is(const char *el, size_t ellen, const char *s)
{
	return ellen == strlen(s) && ascii_strncasecmp(el, s, ellen) == 0;
}

static bool
dkim_label_ok(const char *s, size_t len, bool underscore)
{
	size_t i;

	if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
		return false;
	for (i = 0; i < len; i++)
		if (!dkim_is_alpha(s[i]) && !dkim_is_digit(s[i]) &&
		    s[i] != '-' && !(underscore && s[i] == '_'))
			return false;
	return true;
}

static bool
dkim_name_ok(const char *s, size_t len, bool underscore, size_t minlabels)
{
	size_t i = 0, start = 0, labels = 0;

	if (len == 0 || len > DKIM_DOMAIN_MAX)
		return false;
	for (i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (!dkim_label_ok(s + start, i - start, underscore))
				return false;
			labels++;
			start = i + 1;
		}
	}
	return labels >= minlabels;
}

bool
dkim_is_domain(const char *s, size_t len, bool two_labels)
{
	return dkim_name_ok(s, len, false, two_labels ? 2 : 1);
}

bool
dkim_is_selector(const char *s, size_t len)
{
	return dkim_name_ok(s, len, true, 1);
}

/*
 * A decimal number of at most maxdigits digits; more than 18 digits
 * saturate at INT64_MAX (an l= that large exceeds any body anyway).
 */
static bool
dkim_number(const struct dkim_tag *t, size_t maxdigits, int64_t *out)
{
	size_t i;
	int64_t v = 0;

	if (t->valuelen == 0 || t->valuelen > maxdigits)
		return false;
	for (i = 0; i < t->valuelen; i++) {
		if (!dkim_is_digit(t->value[i]))
			return false;
		if (v > (INT64_MAX - 9) / 10)
			v = INT64_MAX;
		else
			v = v * 10 + (t->value[i] - '0');
	}
	*out = v;
	return true;
}

/* Whether name is domain or a subdomain of it (ASCII case-insensitive). */
static bool
dkim_domain_within(const char *name, size_t nlen, const char *domain)
{
	size_t dlen = strlen(domain);

	if (nlen == dlen)
		return ascii_strncasecmp(name, domain, dlen) == 0;
	return nlen > dlen && name[nlen - dlen - 1] == '.' &&
	    ascii_strncasecmp(name + nlen - dlen, domain, dlen) == 0;
}

/*
 * Signatures
 */

void
dkim_sig_free(struct dkim_sig *sig)
{
	size_t i;

	if (sig == NULL)
		return;
	for (i = 0; i < sig->nhdrs; i++)
		free(sig->hdrs[i]);
	free(sig->hdrs);
	free(sig->identity);
	free(sig->b);
	free(sig->field);
	free(sig);
}

static enum dkim_reason
dkim_sig_check_h(struct dkim_sig *sig, const struct dkim_tag *t)
{
	const char *el;
	size_t pos = 0, ellen, i;
	bool from = false;

	sig->hdrs = xcalloc(DKIM_SIG_HDRS_MAX, sizeof(*sig->hdrs));
	while (dkim_list_next(t, &pos, &el, &ellen)) {
		if (ellen == 0 || sig->nhdrs == DKIM_SIG_HDRS_MAX)
			return DKIM_SIG_HEADERS;
		/* RFC 5322 ftext: printable ASCII but ':'. */
		for (i = 0; i < ellen; i++) {
			unsigned char c = (unsigned char)el[i];

			if (c < 33 || c > 126 || c == ':')
				return DKIM_SIG_HEADERS;
		}
		if (dkim_el_is(el, ellen, "from"))
			from = true;
		sig->hdrs[sig->nhdrs++] = xstrndup(el, ellen);
	}
	return from ? DKIM_OK : DKIM_SIG_FROM_NOT_SIGNED;
}

static enum dkim_reason
dkim_sig_check_tags(struct dkim_sig *sig, const struct dkim_taglist *l,
    unsigned int flags)
{
	static const struct {
		const char *name;
		enum dkim_reason missing;
	} required[] = {
		{ "v", DKIM_SIG_MISSING_V }, { "a", DKIM_SIG_MISSING_A },
		{ "b", DKIM_SIG_MISSING_B }, { "bh", DKIM_SIG_MISSING_BH },
		{ "d", DKIM_SIG_MISSING_D }, { "h", DKIM_SIG_MISSING_H },
		{ "s", DKIM_SIG_MISSING_S },
	};
	const struct dkim_tag *t;
	enum dkim_reason r;
	unsigned char *dec;
	const char *err, *el, *at;
	size_t i, declen, pos, ellen;
	bool dnstxt;

	for (i = 0; i < nitems(required); i++)
		if (dkim_taglist_get(l, required[i].name) == NULL)
			return required[i].missing;

	if (!dkim_tag_is(dkim_taglist_get(l, "v"), "1"))
		return DKIM_SIG_VERSION;

	t = dkim_taglist_get(l, "a");
	if (dkim_tag_is(t, "rsa-sha256"))
		sig->alg = DKIM_ALG_RSA_SHA256;
	else if (dkim_tag_is(t, "rsa-sha1"))
		sig->alg = DKIM_ALG_RSA_SHA1;
	else if (dkim_tag_is(t, "ed25519-sha256"))
		sig->alg = DKIM_ALG_ED25519_SHA256;
	else
		return DKIM_SIG_ALGORITHM;

	t = dkim_taglist_get(l, "b");
	if (t->valuelen == 0 && !(flags & DKIM_SIG_PARSE_EMPTY_B))
		return DKIM_SIG_MISSING_B;
	if (b64_decode(t->value, t->valuelen, &dec, &declen, &err) == -1)
		return DKIM_SIG_BAD_B;
	if (declen > DKIM_B_MAX) {
		free(dec);
		return DKIM_SIG_BAD_B;
	}
	sig->b = dec;
	sig->blen = declen;

	t = dkim_taglist_get(l, "bh");
	if (b64_decode(t->value, t->valuelen, &dec, &declen, &err) == -1)
		return DKIM_SIG_BAD_BH;
	if (declen == 0 || declen > sizeof(sig->bh)) {
		free(dec);
		return DKIM_SIG_BAD_BH;
	}
	memcpy(sig->bh, dec, declen);
	sig->bhlen = declen;
	free(dec);

	sig->hcanon = sig->bcanon = DKIM_CANON_SIMPLE;
	if ((t = dkim_taglist_get(l, "c")) != NULL) {
		const char *slash = memchr(t->value, '/', t->valuelen);
		size_t hlen = slash ? (size_t)(slash - t->value) : t->valuelen;

		if (dkim_el_is(t->value, hlen, "relaxed"))
			sig->hcanon = DKIM_CANON_RELAXED;
		else if (!dkim_el_is(t->value, hlen, "simple"))
			return DKIM_SIG_CANON;
		if (slash != NULL) {
			size_t blen = t->valuelen - hlen - 1;

			if (dkim_el_is(slash + 1, blen, "relaxed"))
				sig->bcanon = DKIM_CANON_RELAXED;
			else if (!dkim_el_is(slash + 1, blen, "simple"))
				return DKIM_SIG_CANON;
		}
	}

	t = dkim_taglist_get(l, "d");
	if (!dkim_is_domain(t->value, t->valuelen, true))
		return DKIM_SIG_DOMAIN;
	memcpy(sig->domain, t->value, t->valuelen);
	sig->domain[t->valuelen] = '\0';

	t = dkim_taglist_get(l, "s");
	if (!dkim_is_selector(t->value, t->valuelen))
		return DKIM_SIG_SELECTOR;
	memcpy(sig->selector, t->value, t->valuelen);
	sig->selector[t->valuelen] = '\0';

	if ((r = dkim_sig_check_h(sig, dkim_taglist_get(l, "h"))) != DKIM_OK)
		return r;

	if ((t = dkim_taglist_get(l, "i")) != NULL) {
		at = NULL;
		for (i = 0; i < t->valuelen; i++)
			if (t->value[i] == '@')
				at = t->value + i;
		if (at == NULL)
			return DKIM_SIG_IDENTITY;
		ellen = t->valuelen - (size_t)(at + 1 - t->value);
		if (!dkim_is_domain(at + 1, ellen, false))
			return DKIM_SIG_IDENTITY;
		if (!dkim_domain_within(at + 1, ellen, sig->domain))
			return DKIM_SIG_IDENTITY_DOMAIN;
		sig->identity = xstrndup(t->value, t->valuelen);
	} else {
		sig->identity = xasprintf("@%s", sig->domain);
	}
	sig->identity_domain = strrchr(sig->identity, '@') + 1;

	sig->length = -1;
	if ((t = dkim_taglist_get(l, "l")) != NULL &&
	    !dkim_number(t, 76, &sig->length))
		return DKIM_SIG_LENGTH;

	if ((t = dkim_taglist_get(l, "q")) != NULL) {
		pos = 0;
		dnstxt = false;
		while (dkim_list_next(t, &pos, &el, &ellen))
			if (dkim_el_is(el, ellen, "dns/txt"))
				dnstxt = true;
		if (!dnstxt)
			return DKIM_SIG_QUERY;
	}

	sig->timestamp = sig->expiration = -1;
	if ((t = dkim_taglist_get(l, "t")) != NULL &&
	    !dkim_number(t, 18, &sig->timestamp))
		return DKIM_SIG_TIMESTAMP;
	if ((t = dkim_taglist_get(l, "x")) != NULL &&
	    !dkim_number(t, 18, &sig->expiration))
		return DKIM_SIG_EXPIRATION;
	if (sig->timestamp >= 0 && sig->expiration >= 0 &&
	    sig->expiration < sig->timestamp)
		return DKIM_SIG_EXPIRES_BEFORE_SIGNED;
	return DKIM_OK;
}

int
dkim_sig_parse_flags(const char *field, size_t len, unsigned int flags,
    struct dkim_sig **sig_r, enum dkim_reason *reason_r)
{
	struct dkim_taglist *l;
	struct dkim_sig *sig;
	const struct dkim_tag *b;
	const char *colon;
	size_t vstart, vlen;
	enum dkim_reason r;

	*sig_r = NULL;
	if ((colon = memchr(field, ':', len)) == NULL) {
		*reason_r = DKIM_SIG_SYNTAX;
		return -1;
	}
	vstart = (size_t)(colon + 1 - field);
	vlen = len - vstart;
	if (vlen >= 2 && field[len - 2] == '\r' && field[len - 1] == '\n')
		vlen -= 2;
	l = xmalloc(sizeof(*l));
	if (dkim_taglist_parse(field + vstart, vlen, l, &r) == -1) {
		free(l);
		*reason_r = r;
		return -1;
	}
	sig = xcalloc(1, sizeof(*sig));
	if ((r = dkim_sig_check_tags(sig, l, flags)) != DKIM_OK) {
		free(l);
		dkim_sig_free(sig);
		*reason_r = r;
		return -1;
	}
	b = dkim_taglist_get(l, "b");
	sig->b_start = vstart + b->span_start;
	sig->b_end = vstart + b->span_end;
	/* Not xstrndup(): the field may hold a NUL octet. */
	sig->field = xmalloc(len + 1);
	memcpy(sig->field, field, len);
	sig->field[len] = '\0';
	sig->fieldlen = len;
	free(l);
	*sig_r = sig;
	*reason_r = DKIM_OK;
	return 0;
}

int
dkim_sig_parse(const char *field, size_t len, struct dkim_sig **sig_r,
    enum dkim_reason *reason_r)
{
	return dkim_sig_parse_flags(field, len, 0, sig_r, reason_r);
}

int
dkim_key_query_name(const struct dkim_sig *sig, char *out, size_t outsize)
{
	int n;

	n = snprintf(out, outsize, "%s._domainkey.%s", sig->selector,
	    sig->domain);
	if (n < 0 || (size_t)n >= outsize || n > DKIM_DOMAIN_MAX)
		return -1;
	return 0;
}

/*
 * Key records
 */

void
dkim_key_free(struct dkim_key *key)
{
	if (key == NULL)
		return;
	EVP_PKEY_free(key->pkey);
	free(key);
}

static enum dkim_reason
dkim_key_decode_rsa(const unsigned char *der, size_t len, EVP_PKEY **pkey_r)
{
	const unsigned char *p = der;
	EVP_PKEY *pkey;
	int bits;

	/* SubjectPublicKeyInfo, as RFC 6376 3.6.1 says. */
	pkey = d2i_PUBKEY(NULL, &p, (long)len);
	if (pkey != NULL && (p != der + len ||
	    EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA)) {
		EVP_PKEY_free(pkey);
		return DKIM_KEY_BAD_P;
	}
	if (pkey == NULL) {
		/* A bare PKCS#1 RSAPublicKey, as some publish. */
		p = der;
		pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)len);
		if (pkey == NULL)
			return DKIM_KEY_BAD_P;
		if (p != der + len) {
			EVP_PKEY_free(pkey);
			return DKIM_KEY_BAD_P;
		}
	}
	bits = EVP_PKEY_get_bits(pkey);
	if (bits < DKIM_RSA_MIN_BITS || bits > DKIM_RSA_MAX_BITS) {
		EVP_PKEY_free(pkey);
		return bits < DKIM_RSA_MIN_BITS ? DKIM_FAIL_KEY_TOO_SMALL :
		    DKIM_FAIL_KEY_TOO_LARGE;
	}
	*pkey_r = pkey;
	return DKIM_OK;
}

static enum dkim_reason
dkim_key_check_tags(struct dkim_key *key, const struct dkim_taglist *l)
{
	const struct dkim_tag *t, *p;
	const char *el, *err;
	unsigned char *der;
	size_t pos, ellen, derlen;
	bool email;
	enum dkim_reason r;

	/* RFC 6376 3.6.1 v=: if present, the first tag, exactly DKIM1. */
	if ((t = dkim_taglist_get(l, "v")) != NULL &&
	    (t != &l->tags[0] || t->valuelen != 5 ||
	    memcmp(t->value, "DKIM1", 5) != 0))
		return DKIM_KEY_VERSION;
	if ((p = dkim_taglist_get(l, "p")) == NULL)
		return DKIM_KEY_MISSING_P;

	key->type = DKIM_KEY_RSA;
	if ((t = dkim_taglist_get(l, "k")) != NULL) {
		if (dkim_tag_is(t, "ed25519"))
			key->type = DKIM_KEY_ED25519;
		else if (!dkim_tag_is(t, "rsa"))
			return DKIM_FAIL_KEY_TYPE;
	}

	key->hashes = DKIM_HASH_SHA1 | DKIM_HASH_SHA256;
	if ((t = dkim_taglist_get(l, "h")) != NULL) {
		key->hashes = 0;
		pos = 0;
		while (dkim_list_next(t, &pos, &el, &ellen)) {
			if (dkim_el_is(el, ellen, "sha1"))
				key->hashes |= DKIM_HASH_SHA1;
			else if (dkim_el_is(el, ellen, "sha256"))
				key->hashes |= DKIM_HASH_SHA256;
		}
	}

	if ((t = dkim_taglist_get(l, "s")) != NULL) {
		email = false;
		pos = 0;
		while (dkim_list_next(t, &pos, &el, &ellen))
			if (dkim_el_is(el, ellen, "*") ||
			    dkim_el_is(el, ellen, "email"))
				email = true;
		if (!email)
			return DKIM_FAIL_KEY_SERVICE;
	}

	if ((t = dkim_taglist_get(l, "t")) != NULL) {
		pos = 0;
		while (dkim_list_next(t, &pos, &el, &ellen)) {
			if (ellen == 1 && el[0] == 'y')
				key->testing = true;
			else if (ellen == 1 && el[0] == 's')
				key->strict = true;
		}
	}

	if (p->valuelen == 0)
		return DKIM_FAIL_KEY_REVOKED;
	if (p->valuelen > DKIM_P_TEXT_MAX ||
	    b64_decode(p->value, p->valuelen, &der, &derlen, &err) == -1)
		return DKIM_KEY_BAD_P;
	if (key->type == DKIM_KEY_ED25519) {
		/* RFC 8463 4: the raw 32-octet public key. */
		r = DKIM_KEY_BAD_P;
		if (derlen == 32 && (key->pkey = EVP_PKEY_new_raw_public_key(
		    EVP_PKEY_ED25519, NULL, der, derlen)) != NULL) {
			key->bits = 256;
			r = DKIM_OK;
		}
	} else {
		EVP_PKEY *pkey = NULL;

		r = dkim_key_decode_rsa(der, derlen, &pkey);
		if (r == DKIM_OK) {
			key->pkey = pkey;
			key->bits = (unsigned int)EVP_PKEY_get_bits(pkey);
		}
	}
	free(der);
	/*
	 * The SPKI attempt fails for a bare RSAPublicKey, and bad keys fail
	 * in OpenSSL: clear its error queue, which TLS code on this thread
	 * would otherwise misread.
	 */
	ERR_clear_error();
	return r;
}

int
dkim_key_parse(const char *text, size_t len, struct dkim_key **key_r,
    enum dkim_reason *reason_r)
{
	struct dkim_taglist *l;
	struct dkim_key *key;
	enum dkim_reason r;

	*key_r = NULL;
	l = xmalloc(sizeof(*l));
	if (dkim_taglist_parse(text, len, l, &r) == -1) {
		free(l);
		*reason_r = r == DKIM_SIG_DUPLICATE_TAG ?
		    DKIM_KEY_DUPLICATE_TAG : r == DKIM_SIG_TOO_MANY_TAGS ?
		    DKIM_KEY_TOO_MANY_TAGS : DKIM_KEY_SYNTAX;
		return -1;
	}
	key = xcalloc(1, sizeof(*key));
	r = dkim_key_check_tags(key, l);
	free(l);
	if (r != DKIM_OK) {
		dkim_key_free(key);
		*reason_r = r;
		return -1;
	}
	*key_r = key;
	*reason_r = DKIM_OK;
	return 0;
}
