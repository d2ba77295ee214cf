/*
 * fuzz_dkim_signature.c: libFuzzer target for the DKIM-Signature header
 * field parser, dkim_sig_parse_flags() (and through it the tag-list
 * parser dkim_taglist_parse()).
 *
 * The input is one whole header field ("DKIM-Signature: v=1; ..."), any
 * bytes. It is parsed twice: as a verifier reads it (b= required) and as
 * the signer reads its template (DKIM_SIG_PARSE_EMPTY_B).
 *
 * Invariants checked on success: the b= span lies inside the field, the
 * field copy equals the input, d= and s= are non-empty NUL-terminated
 * names within DKIM_DOMAIN_MAX, i= ends in a domain within the identity,
 * h= lists at least one name, bh= fits its buffer, the algorithm and
 * the key query name print. On failure: a reason that has a name and no
 * result left behind. The tag-list parser, run on the whole input too,
 * gives at most DKIM_TAGS_MAX distinct, non-empty names, and names,
 * values and spans inside the text, each value inside its span.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msgauth/dkim.h"
#include "msgauth/dkim_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_check_sig(const struct dkim_sig *sig, const char *field, size_t len)
{
	char qname[DKIM_DOMAIN_MAX + 1];
	size_t i, dlen, slen;

	if (sig->fieldlen != len || memcmp(sig->field, field, len) != 0 ||
	    sig->field[len] != '\0')
		__builtin_trap();
	if (sig->b_start > sig->b_end || sig->b_end > sig->fieldlen)
		__builtin_trap();
	dlen = strnlen(sig->domain, sizeof(sig->domain));
	slen = strnlen(sig->selector, sizeof(sig->selector));
	if (dlen == 0 || dlen > DKIM_DOMAIN_MAX || slen == 0 ||
	    slen > DKIM_DOMAIN_MAX)
		__builtin_trap();
	if (sig->identity == NULL || sig->identity_domain == NULL ||
	    sig->identity_domain < sig->identity ||
	    sig->identity_domain > sig->identity + strlen(sig->identity))
		__builtin_trap();
	if (sig->nhdrs == 0 || sig->hdrs == NULL)
		__builtin_trap();
	for (i = 0; i < sig->nhdrs; i++)
		if (sig->hdrs[i] == NULL)
			__builtin_trap();
	if (sig->bhlen > sizeof(sig->bh))
		__builtin_trap();
	if (sig->blen > 0 && sig->b == NULL)
		__builtin_trap();
	if (dkim_alg_str(sig->alg) == NULL)
		__builtin_trap();
	(void)dkim_alg_hash(sig->alg);
	(void)dkim_alg_keytype(sig->alg);
	if (dkim_key_query_name(sig, qname, sizeof(qname)) == 0 &&
	    strlen(qname) > DKIM_DOMAIN_MAX)
		__builtin_trap();
}

static void
fuzz_check_taglist(const char *text, size_t len)
{
	struct dkim_taglist *l;
	const struct dkim_tag *t;
	enum dkim_reason reason = DKIM_OK;
	size_t i, k;

	if ((l = malloc(sizeof(*l))) == NULL)
		return;
	if (dkim_taglist_parse(text, len, l, &reason) == -1) {
		if (reason == DKIM_OK)
			__builtin_trap();
		free(l);
		return;
	}
	if (l->ntags > DKIM_TAGS_MAX)
		__builtin_trap();
	for (i = 0; i < l->ntags; i++) {
		t = &l->tags[i];
		if (t->namelen == 0 || t->name < text ||
		    t->name + t->namelen > text + len)
			__builtin_trap();
		if (t->span_start > t->span_end || t->span_end > len)
			__builtin_trap();
		if (t->value < text + t->span_start ||
		    t->value + t->valuelen > text + t->span_end)
			__builtin_trap();
		for (k = 0; k < i; k++)
			if (l->tags[k].namelen == t->namelen &&
			    memcmp(l->tags[k].name, t->name, t->namelen) == 0)
				__builtin_trap();
		if (dkim_taglist_get(l, "v") == NULL &&
		    t->namelen == 1 && t->name[0] == 'v')
			__builtin_trap();
	}
	free(l);
}

static void
fuzz_parse(const char *field, size_t len, unsigned int flags)
{
	struct dkim_sig *sig = NULL;
	enum dkim_reason reason = DKIM_OK;

	if (dkim_sig_parse_flags(field, len, flags, &sig, &reason) == 0) {
		if (sig == NULL || reason != DKIM_OK)
			__builtin_trap();
		fuzz_check_sig(sig, field, len);
		dkim_sig_free(sig);
	} else {
		if (sig != NULL || reason == DKIM_OK)
			__builtin_trap();
		if (dkim_reason_str(reason) == NULL)
			__builtin_trap();
		(void)dkim_result_str(dkim_reason_result(reason));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *field;

	/* An exact-size copy, so that ASan sees any read past the end. */
	if ((field = malloc(size > 0 ? size : 1)) == NULL)
		return 0;
	memcpy(field, data, size);
	fuzz_parse(field, size, 0);
	fuzz_parse(field, size, DKIM_SIG_PARSE_EMPTY_B);
	fuzz_check_taglist(field, size);
	free(field);
	return 0;
}
