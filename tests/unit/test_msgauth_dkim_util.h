/*
 * test_msgauth_dkim_util.h: helpers shared by the DKIM unit tests: reading
 * the shared conformance files, LF -> CRLF, the "name rdata" DNS files, and
 * a whole-message verifier that looks keys up in such a file (what the
 * daemon will do with DNS). Include after <cmocka.h>; all static.
 */
#ifndef PETREL_TESTS_MSGAUTH_DKIM_UTIL_H
#define PETREL_TESTS_MSGAUTH_DKIM_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msgauth/dkim.h"

#define DT_MAX_SIGS	8

/* Read a whole file; NULL if it cannot be read. */
static inline char *
dt_read_path(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	size_t cap = 0, len = 0, n;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = (len + 4096 + 1) * 2;
			p = realloc(p, cap);
			assert_non_null(p);
		}
		n = fread(p + len, 1, cap - len - 1, f);
		if (n == 0)
			break;
		len += n;
	}
	fclose(f);
	p[len] = '\0';
	*len_r = len;
	return p;
}

/*
 * A file of the DKIM conformance set (rel is relative to
 * conformance/dkim/; see test_conformance_path()). Fails the test when
 * missing.
 */
static inline char *
dt_read(const char *rel, size_t *len_r)
{
	char path[1024], sub[512];
	char *p;

	*len_r = 0;
	snprintf(sub, sizeof(sub), "dkim/%s", rel);
	p = dt_read_path(test_conformance_path(path, sizeof(path), sub),
	    len_r);
	if (p == NULL)
		fail_msg("cannot read conformance file %s", rel);
	return p;
}

/* A copy with every bare LF turned into CRLF (CRLF stays). */
static inline char *
dt_crlf(const char *s, size_t n, size_t *len_r)
{
	char *o = malloc(2 * n + 1);
	size_t i, k = 0;

	assert_non_null(o);
	for (i = 0; i < n; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			o[k++] = '\r';
		o[k++] = s[i];
	}
	o[k] = '\0';
	*len_r = k;
	return o;
}

/*
 * The rdata of name in a DNS file ("name rdata" per line, '#' comments),
 * as a malloc'd string, or NULL. Case-insensitive name, no trailing dot.
 */
static inline char *
dt_dns_lookup(const char *dns, const char *name)
{
	const char *p = dns, *eol, *sp;
	size_t nlen = strlen(name);

	while (*p != '\0') {
		eol = strchr(p, '\n');
		if (eol == NULL)
			eol = p + strlen(p);
		sp = memchr(p, ' ', (size_t)(eol - p));
		if (*p != '#' && sp != NULL && (size_t)(sp - p) == nlen &&
		    strncasecmp(p, name, nlen) == 0) {
			const char *e = eol;
			char *r;

			if (e > sp && e[-1] == '\r')
				e--;
			r = strndup(sp + 1, (size_t)(e - sp - 1));
			assert_non_null(r);
			return r;
		}
		p = *eol ? eol + 1 : eol;
	}
	return NULL;
}

struct dt_sigresult {
	enum dkim_result result;
	enum dkim_reason reason;
	char domain[256];
	char selector[256];
	enum dkim_alg alg;
	bool partial_body;
};

/*
 * Verify every DKIM-Signature field of msg with keys from dns (a DNS file
 * text). Returns the number of signatures (at most DT_MAX_SIGS).
 */
static inline size_t
dt_verify_all(const char *msg, size_t len, const char *dns,
    const struct dkim_verify_opts *opts, struct dt_sigresult *res)
{
	struct dkim_msg m;
	enum dkim_reason r;
	size_t i, n = 0;

	assert_int_equal(dkim_msg_parse(msg, len, &m, &r), 0);
	for (i = 0; i < m.nhdrs && n < DT_MAX_SIGS; i++) {
		struct dt_sigresult *sr = &res[n];
		struct dkim_sig *sig;
		struct dkim_key *key;
		struct dkim_verdict v;
		char qname[512], *txt;

		if (!dkim_hdr_is(&m.hdrs[i], "DKIM-Signature"))
			continue;
		n++;
		memset(sr, 0, sizeof(*sr));
		if (dkim_sig_parse(m.hdrs[i].raw, m.hdrs[i].rawlen, &sig,
		    &r) == -1) {
			sr->result = dkim_reason_result(r);
			sr->reason = r;
			continue;
		}
		snprintf(sr->domain, sizeof(sr->domain), "%s", sig->domain);
		snprintf(sr->selector, sizeof(sr->selector), "%s",
		    sig->selector);
		sr->alg = sig->alg;
		assert_int_equal(dkim_key_query_name(sig, qname,
		    sizeof(qname)), 0);
		if ((txt = dt_dns_lookup(dns, qname)) == NULL) {
			/* No key: RFC 6376 6.1.2 PERMFAIL (no key). */
			sr->reason = DKIM_KEY_NOT_FOUND;
			sr->result = dkim_reason_result(sr->reason);
			dkim_sig_free(sig);
			continue;
		}
		if (dkim_key_parse(txt, strlen(txt), &key, &r) == -1) {
			sr->result = dkim_reason_result(r);
			sr->reason = r;
		} else {
			dkim_verify(&m, sig, key, opts, &v);
			sr->result = v.result;
			sr->reason = v.reason;
			sr->partial_body = v.partial_body;
			dkim_key_free(key);
		}
		free(txt);
		dkim_sig_free(sig);
	}
	dkim_msg_free(&m);
	return n;
}

/* The b= value of a field, white space removed (malloc'd). */
static inline char *
dt_b_value(const char *field, size_t len)
{
	struct dkim_taglist l;
	const struct dkim_tag *t;
	enum dkim_reason r;
	const char *colon = memchr(field, ':', len);
	char *o;
	size_t i, k = 0, vlen;

	assert_non_null(colon);
	vlen = len - (size_t)(colon + 1 - field);
	if (vlen >= 2 && colon[vlen - 1] == '\r' && colon[vlen] == '\n')
		vlen -= 2;
	assert_int_equal(dkim_taglist_parse(colon + 1, vlen, &l, &r), 0);
	t = dkim_taglist_get(&l, "b");
	assert_non_null(t);
	o = malloc(t->valuelen + 1);
	assert_non_null(o);
	for (i = 0; i < t->valuelen; i++)
		if (t->value[i] != ' ' && t->value[i] != '\t' &&
		    t->value[i] != '\r' && t->value[i] != '\n')
			o[k++] = t->value[i];
	o[k] = '\0';
	return o;
}

/* A private key of the conformance set; fails the test when unusable. */
static inline struct dkim_privkey *
dt_load_key(const char *rel)
{
	struct dkim_privkey *k;
	const char *err = NULL;
	size_t len;
	char *text = dt_read(rel, &len);

	k = dkim_privkey_load(text, len, &err);
	if (k == NULL)
		fail_msg("%s: %s", rel, err);
	free(text);
	return k;
}

/* A conformance file with every bare LF turned into CRLF. */
static inline char *
dt_read_crlf(const char *rel, size_t *len_r)
{
	size_t len;
	char *lf = dt_read(rel, &len), *c;

	c = dt_crlf(lf, len, len_r);
	free(lf);
	return c;
}

/* A DNS file text of "name rdata" for one record. */
static inline char *
dt_dns1(const char *name, const char *rdata)
{
	size_t n = strlen(name) + strlen(rdata) + 3;
	char *p = malloc(n);

	assert_non_null(p);
	snprintf(p, n, "%s %s\n", name, rdata);
	return p;
}

/* dt_dns1() with the rdata of a conformance file (its last line end cut). */
static inline char *
dt_dns1_file(const char *name, const char *rel)
{
	size_t len;
	char *txt = dt_read(rel, &len), *p;

	while (len > 0 && (txt[len - 1] == '\n' || txt[len - 1] == '\r'))
		txt[--len] = '\0';
	p = dt_dns1(name, txt);
	free(txt);
	return p;
}

#endif
