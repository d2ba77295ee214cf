/*
 * fuzz_dmarc_record.c: libFuzzer target for the DMARC record parser,
 * dmarc_record_parse(), with dmarc_record_is_dmarc(), dmarc_record_copy()
 * and dmarc_record_clear().
 *
 * The input is the TXT text found at _dmarc.<domain>, any bytes.
 *
 * Invariants checked: a parsed record is also recognised by
 * dmarc_record_is_dmarc(); p is a real request and sp one or UNSET, each
 * with a name; pct is 0..100; fo, rf only hold known bits; at most
 * DMARC_URIS_MAX rua/ruf URIs, each non-empty and within DMARC_URI_MAX;
 * p_fallback implies p=none, no sp and a rua URI. A deep copy equals the
 * original and both clear without leaking. A refused record says why
 * and holds nothing (clearing it again is harmless).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msgauth/dmarc.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_check_uris(const struct dmarc_uri *u, size_t n)
{
	size_t i, len;

	if (n > DMARC_URIS_MAX)
		__builtin_trap();
	for (i = 0; i < n; i++) {
		if (u[i].uri == NULL)
			__builtin_trap();
		len = strlen(u[i].uri);
		if (len == 0 || len > DMARC_URI_MAX)
			__builtin_trap();
	}
}

static void
fuzz_same_uris(const struct dmarc_uri *a, const struct dmarc_uri *b,
    size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (a[i].uri == b[i].uri || strcmp(a[i].uri, b[i].uri) != 0 ||
		    a[i].max_size != b[i].max_size)
			__builtin_trap();
}

static void
fuzz_check_record(const struct dmarc_record *rec)
{
	struct dmarc_record copy;

	if (rec->p < DMARC_REQ_NONE || rec->p > DMARC_REQ_REJECT)
		__builtin_trap();
	if (rec->sp < DMARC_REQ_UNSET || rec->sp > DMARC_REQ_REJECT)
		__builtin_trap();
	if (dmarc_request_name(rec->p) == NULL ||
	    dmarc_request_name(rec->sp) == NULL)
		__builtin_trap();
	if (rec->pct > 100)
		__builtin_trap();
	if ((rec->fo & ~(unsigned int)(DMARC_FO_0 | DMARC_FO_1 | DMARC_FO_D |
	    DMARC_FO_S)) != 0 || (rec->rf & ~(unsigned int)DMARC_RF_AFRF) != 0)
		__builtin_trap();
	if (rec->adkim != DMARC_ALIGN_RELAXED &&
	    rec->adkim != DMARC_ALIGN_STRICT)
		__builtin_trap();
	if (rec->aspf != DMARC_ALIGN_RELAXED &&
	    rec->aspf != DMARC_ALIGN_STRICT)
		__builtin_trap();
	fuzz_check_uris(rec->rua, rec->nrua);
	fuzz_check_uris(rec->ruf, rec->nruf);
	if (rec->p_fallback && (rec->p != DMARC_REQ_NONE ||
	    rec->sp != DMARC_REQ_UNSET || rec->nrua == 0))
		__builtin_trap();

	dmarc_record_copy(&copy, rec);
	if (copy.p != rec->p || copy.sp != rec->sp ||
	    copy.pct != rec->pct || copy.nrua != rec->nrua ||
	    copy.nruf != rec->nruf)
		__builtin_trap();
	fuzz_same_uris(copy.rua, rec->rua, rec->nrua);
	fuzz_same_uris(copy.ruf, rec->ruf, rec->nruf);
	dmarc_record_clear(&copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dmarc_record rec;
	const char *error = NULL;
	char *txt;

	/* An exact-size copy, so that ASan sees any read past the end. */
	if ((txt = malloc(size > 0 ? size : 1)) == NULL)
		return 0;
	memcpy(txt, data, size);
	if (dmarc_record_parse(txt, size, &rec, &error) == 0) {
		if (!dmarc_record_is_dmarc(txt, size))
			__builtin_trap();
		fuzz_check_record(&rec);
	} else if (error == NULL || rec.nrua != 0 || rec.nruf != 0)
		__builtin_trap();
	dmarc_record_clear(&rec);
	dmarc_record_clear(&rec);
	free(txt);
	return 0;
}
