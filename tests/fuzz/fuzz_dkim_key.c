/*
 * fuzz_dkim_key.c: libFuzzer target for the DKIM key record parser,
 * dkim_key_parse() (the TXT record "v=DKIM1; k=...; p=..."), which runs
 * the tag-list parser, base64 and OpenSSL's DER decoders on the p= value.
 *
 * The input is the TXT record's joined character-strings, any bytes.
 *
 * Invariants checked: success gives a key with a public key object, a
 * known type, a hash set within DKIM_HASH_* (h= may name only
 * unknown hashes, leaving it empty), an RSA size in
 * the accepted range (1024 bits at least, RFC 8301) or 256 for Ed25519;
 * failure gives a named reason and no key.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msgauth/dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dkim_key *key = NULL;
	enum dkim_reason reason = DKIM_OK;
	char *text;

	/* An exact-size copy, so that ASan sees any read past the end. */
	if ((text = malloc(size > 0 ? size : 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	if (dkim_key_parse(text, size, &key, &reason) == 0) {
		if (key == NULL || key->pkey == NULL || reason != DKIM_OK)
			__builtin_trap();
		if ((key->hashes & ~(unsigned int)(DKIM_HASH_SHA1 |
		    DKIM_HASH_SHA256)) != 0)
			__builtin_trap();
		if (key->type == DKIM_KEY_RSA) {
			if (key->bits < 1024)
				__builtin_trap();
		} else if (key->type == DKIM_KEY_ED25519) {
			if (key->bits != 256)
				__builtin_trap();
		} else
			__builtin_trap();
		dkim_key_free(key);
	} else {
		if (key != NULL || reason == DKIM_OK ||
		    dkim_reason_str(reason) == NULL)
			__builtin_trap();
	}
	free(text);
	return 0;
}
