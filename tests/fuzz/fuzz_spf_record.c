/*
 * fuzz_spf_record.c: libFuzzer target for the SPF record parser,
 * spf_record_parse(), and the macro expander, spf_macro_expand(), both
 * pure (no DNS).
 *
 * The input is a TXT record's text, any bytes. It is parsed as a record;
 * the domain-spec or macro-string of every parsed term is then expanded
 * with a fixed fake context (sender, HELO, an IPv4 or an IPv6 client,
 * chosen by the input's length), and the whole input is also expanded in
 * each of the three modes (domain-spec, explain-string, macro-string).
 *
 * Invariants checked: a parsed record has its terms' text, redirect and
 * exp pointing into its terms, prefix lengths within 32 and 128, no more
 * DNS terms than terms; a failed parse says why. An expansion that the
 * syntax-only pass (env NULL) refuses must fail with the context too; a
 * successful one is NUL-terminated and at most SPF_MACRO_MAX octets.
 */
#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "msgauth/spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_env(struct spf_macro_env *env, bool v6)
{
	static const uint8_t v4[4] = { 192, 0, 2, 3 };
	static const uint8_t v6a[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
	    0, 0, 0, 0, 0xca, 0xfe, 0xba, 0xbe };

	memset(env, 0, sizeof(*env));
	env->sender = "strong-bad@email.example.com";
	env->local = "strong-bad";
	env->sender_domain = "email.example.com";
	env->domain = "email.example.com";
	env->helo = "mx.example.org";
	if (v6) {
		env->ip.family = AF_INET6;
		memcpy(env->ip.addr, v6a, sizeof(v6a));
		env->ip_upper = true;
		env->ptr = NULL;
		env->receiver = NULL;
	} else {
		env->ip.family = AF_INET;
		memcpy(env->ip.addr, v4, sizeof(v4));
		env->ptr = "mx.example.org";
		env->receiver = "receiver.example.net";
	}
	env->timestamp = 1700000000;
}

static void
fuzz_expand(const char *s, size_t len, enum spf_macro_mode mode,
    const struct spf_macro_env *env, struct buf *out)
{
	const char *error = NULL;
	int syntax, r;

	syntax = spf_macro_expand(s, len, mode, NULL, NULL, &error);
	if (syntax == -1 && error == NULL)
		__builtin_trap();
	error = NULL;
	r = spf_macro_expand(s, len, mode, env, out, &error);
	if (r == -1) {
		if (error == NULL)
			__builtin_trap();
		return;
	}
	if (syntax == -1)
		__builtin_trap();
	if (out->len > SPF_MACRO_MAX)
		__builtin_trap();
	if (out->len > 0 && out->data[out->len] != '\0')
		__builtin_trap();
}

static void
fuzz_check_record(const struct spf_record *rec,
    const struct spf_macro_env *env, struct buf *out)
{
	const struct spf_term *t;
	const char *error;
	size_t i;

	if (rec->nterms > 0 && rec->terms == NULL)
		__builtin_trap();
	if (rec->dns_terms > rec->nterms)
		__builtin_trap();
	if (rec->redirect != NULL && (rec->redirect < rec->terms ||
	    rec->redirect >= rec->terms + rec->nterms ||
	    rec->redirect->type != SPF_MOD_REDIRECT))
		__builtin_trap();
	if (rec->exp != NULL && (rec->exp < rec->terms ||
	    rec->exp >= rec->terms + rec->nterms ||
	    rec->exp->type != SPF_MOD_EXP))
		__builtin_trap();
	for (i = 0; i < rec->nterms; i++) {
		t = &rec->terms[i];
		if (t->text == NULL)
			__builtin_trap();
		if (t->cidr4 < 0 || t->cidr4 > 32 || t->cidr6 < 0 ||
		    t->cidr6 > 128)
			__builtin_trap();
		if ((t->type == SPF_MOD_UNKNOWN) != (t->name != NULL))
			__builtin_trap();
		if (t->spec == NULL)
			continue;
		(void)spf_domain_spec_valid(t->spec, strlen(t->spec),
		    &error);
		fuzz_expand(t->spec, strlen(t->spec),
		    t->type == SPF_MOD_UNKNOWN ? SPF_MACRO_STRING :
		    SPF_MACRO_DOMAIN, env, out);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spf_macro_env env;
	struct spf_record *rec;
	struct buf out;
	const char *error;
	char err[256], *txt;

	/* An exact-size copy, so that ASan sees any read past the end. */
	if ((txt = malloc(size > 0 ? size : 1)) == NULL)
		return 0;
	memcpy(txt, data, size);
	fuzz_env(&env, size % 2 == 1);
	buf_init(&out, SPF_MACRO_MAX);

	(void)spf_record_is_spf1(txt, size);
	if ((rec = spf_record_parse(txt, size, err, sizeof(err))) != NULL) {
		fuzz_check_record(rec, &env, &out);
		spf_record_free(rec);
	} else if (err[0] == '\0' || strnlen(err, sizeof(err)) ==
	    sizeof(err))
		__builtin_trap();

	fuzz_expand(txt, size, SPF_MACRO_DOMAIN, &env, &out);
	fuzz_expand(txt, size, SPF_MACRO_EXP, &env, &out);
	fuzz_expand(txt, size, SPF_MACRO_STRING, &env, &out);
	error = NULL;
	if (!spf_domain_spec_valid(txt, size, &error) && error == NULL)
		__builtin_trap();

	buf_free(&out);
	free(txt);
	return 0;
}
