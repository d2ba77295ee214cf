/*
 * test_msgauth_dkim_fuzz.c: mutation tests of the DKIM parsers with a fixed
 * seed (run it under ASan/UBSan: make SANITIZE=address,undefined). Seeds
 * are real DKIM-Signature fields and key records from the conformance set;
 * each mutant (octets flipped, inserted from a set of interesting octets,
 * deleted, duplicated, truncated) is parsed from an exact-size heap copy
 * and the result is checked against invariants: offsets inside the input,
 * tag names well-formed and unique, a parsed signature's d=, s=, i=, h= as
 * the RFC says, a parsed key usable. Whole signed messages are mutated too
 * and verified (no crash, every reason known; some harmless mutants still
 * pass), and every body is canonicalized whole and one octet at a time alike.
 * PETREL_FUZZ_ROUNDS overrides the number of rounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "msgauth/dkim.h"

#include "testutil.h"
#include "test_msgauth_dkim_util.h"

#define SEED	0x5eed2026u

static unsigned int rounds = 50000;

static const char interesting[] = {
	';', '=', ' ', '\t', '\r', '\n', ':', '@', '.', '/', '-', '_', 'a',
	'Z', '0', '9', '+', '\0', '\x7f', '\x80', '\xff', 'b', 'h', 'd', 's',
	'v', 'x', 't', 'l', 'i', 'k', 'p',
};

/* A mutant of in[0..len) into a new exact-size buffer; *out_len set. */
static char *
mutate(const char *in, size_t len, unsigned int *seed, size_t *out_len)
{
	char *o = malloc(len * 2 + 64);
	size_t n = len, k, a, b;
	int steps = 1 + rand_r(seed) % 4;

	assert_non_null(o);
	memcpy(o, in, len);
	while (steps-- > 0) {
		switch (rand_r(seed) % 6) {
		case 0:		/* flip */
			if (n > 0)
				o[rand_r(seed) % n] ^=
				    (char)(1 << (rand_r(seed) % 8));
			break;
		case 1:		/* insert */
			if (n < len * 2 + 32) {
				k = n > 0 ? (size_t)rand_r(seed) % (n + 1) : 0;
				memmove(o + k + 1, o + k, n - k);
				o[k] = interesting[rand_r(seed) %
				    sizeof(interesting)];
				n++;
			}
			break;
		case 2:		/* delete a range */
			if (n > 0) {
				a = (size_t)rand_r(seed) % n;
				b = a + 1 + (size_t)rand_r(seed) % 8;
				if (b > n)
					b = n;
				memmove(o + a, o + b, n - b);
				n -= b - a;
			}
			break;
		case 3:		/* duplicate a range */
			if (n > 0 && n + 16 < len * 2 + 32) {
				a = (size_t)rand_r(seed) % n;
				k = 1 + (size_t)rand_r(seed) % 16;
				if (a + k > n)
					k = n - a;
				memmove(o + a + k, o + a, n - a);
				n += k;
			}
			break;
		case 4:		/* truncate */
			if (n > 0)
				n = (size_t)rand_r(seed) % n;
			break;
		default:	/* overwrite with an interesting octet */
			if (n > 0)
				o[rand_r(seed) % n] = interesting[rand_r(seed)
				    % sizeof(interesting)];
			break;
		}
	}
	{
		char *exact = malloc(n > 0 ? n : 1);

		assert_non_null(exact);
		memcpy(exact, o, n);
		free(o);
		o = exact;
	}
	*out_len = n;
	return o;
}

static void
check_taglist(const char *in, size_t n, const struct dkim_taglist *l)
{
	size_t i, k, j;

	assert_true(l->ntags <= DKIM_TAGS_MAX);
	for (i = 0; i < l->ntags; i++) {
		const struct dkim_tag *t = &l->tags[i];

		assert_true(t->name >= in && t->name + t->namelen <= in + n);
		assert_true(t->namelen > 0);
		assert_true((t->name[0] >= 'a' && t->name[0] <= 'z') ||
		    (t->name[0] >= 'A' && t->name[0] <= 'Z'));
		for (j = 0; j < t->namelen; j++)
			assert_true(t->name[j] == '_' ||
			    (t->name[j] >= '0' && t->name[j] <= '9') ||
			    (t->name[j] >= 'a' && t->name[j] <= 'z') ||
			    (t->name[j] >= 'A' && t->name[j] <= 'Z'));
		assert_true(t->span_start <= t->span_end && t->span_end <= n);
		assert_true(t->value >= in + t->span_start);
		assert_true(t->value + t->valuelen <= in + t->span_end);
		for (j = 0; j < t->valuelen; j++)
			assert_true(t->value[j] != ';' && t->value[j] != '\0');
		if (t->valuelen > 0) {
			assert_true(t->value[0] != ' ' && t->value[0] != '\t');
			assert_true(t->value[t->valuelen - 1] != ' ' &&
			    t->value[t->valuelen - 1] != '\n');
		}
		for (k = 0; k < i; k++)
			assert_false(l->tags[k].namelen == t->namelen &&
			    memcmp(l->tags[k].name, t->name, t->namelen) == 0);
	}
}

static bool
ldh(char c, bool underscore)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
	    (underscore && c == '_');
}

static void
check_sig(const char *in, size_t n, const struct dkim_sig *sig)
{
	size_t i;
	bool from = false;

	assert_true(sig->b_start <= sig->b_end && sig->b_end <= n);
	assert_int_equal(sig->fieldlen, n);
	assert_memory_equal(sig->field, in, n);
	assert_true(strlen(sig->domain) > 0 && strchr(sig->domain, '.'));
	for (i = 0; sig->domain[i] != '\0'; i++)
		assert_true(ldh(sig->domain[i], false));
	for (i = 0; sig->selector[i] != '\0'; i++)
		assert_true(ldh(sig->selector[i], true));
	assert_true(sig->nhdrs >= 1 && sig->nhdrs <= DKIM_SIG_HDRS_MAX);
	for (i = 0; i < sig->nhdrs; i++) {
		assert_true(strlen(sig->hdrs[i]) > 0);
		assert_null(strchr(sig->hdrs[i], ':'));
		if (ascii_strcasecmp(sig->hdrs[i], "from") == 0)
			from = true;
	}
	assert_true(from);
	{
		size_t il = strlen(sig->identity_domain);
		size_t dl = strlen(sig->domain);

		assert_true(il >= dl);
		assert_int_equal(ascii_strcasecmp(
		    sig->identity_domain + il - dl, sig->domain), 0);
	}
	assert_true(sig->blen > 0);
	assert_true(sig->bhlen > 0 && sig->bhlen <= sizeof(sig->bh));
	if (sig->timestamp >= 0 && sig->expiration >= 0)
		assert_true(sig->expiration >= sig->timestamp);
}

/* Every DKIM-Signature field of the conformance messages, as seeds. */
static size_t
collect_fields(char ***fields_r, size_t **lens_r)
{
	static const char *const files[] = {
		"rfc8463/signed-A3.eml",
		"go-msgauth/verified-rfc6376-A2-resigned.eml",
		"go-msgauth/verified-rawrsa-newengland.eml",
		"dkimpy-data/ed25519test2.msg", "dkimpy-data/test2.message",
		"mail-auth/003.txt", "mail-auth/004.txt", "mail-auth/005.txt",
		"mail-auth/006.txt",
	};
	char **fields = NULL;
	size_t *lens = NULL, nf = 0, i, k, len, clen;

	for (i = 0; i < nitems(files); i++) {
		char *raw = dt_read(files[i], &len), *start = raw, *msg;
		struct dkim_msg m;
		enum dkim_reason r;

		/* mail-auth files: DNS lines, a blank line, the message. */
		if (strncmp(files[i], "mail-auth/", 10) == 0) {
			start = strstr(raw, "\n\n");
			assert_non_null(start);
			start += 2;
		}
		msg = dt_crlf(start, len - (size_t)(start - raw), &clen);
		assert_int_equal(dkim_msg_parse(msg, clen, &m, &r), 0);
		for (k = 0; k < m.nhdrs; k++) {
			if (!dkim_hdr_is(&m.hdrs[k], "DKIM-Signature"))
				continue;
			fields = realloc(fields, (nf + 1) * sizeof(*fields));
			lens = realloc(lens, (nf + 1) * sizeof(*lens));
			assert_non_null(fields);
			assert_non_null(lens);
			fields[nf] = test_dup_exact(m.hdrs[k].raw,
			    m.hdrs[k].rawlen);
			lens[nf++] = m.hdrs[k].rawlen;
		}
		dkim_msg_free(&m);
		free(msg);
		free(raw);
	}
	*fields_r = fields;
	*lens_r = lens;
	return nf;
}

static void
test_fuzz_signature(void **state)
{
	unsigned int seed = SEED;
	char **fields;
	size_t *lens, nf, i, n;
	unsigned int round, ok = 0;

	(void)state;
	nf = collect_fields(&fields, &lens);
	assert_true(nf >= 10);
	/* The seeds themselves parse. */
	for (i = 0; i < nf; i++) {
		struct dkim_sig *sig;
		enum dkim_reason r;

		if (dkim_sig_parse(fields[i], lens[i], &sig, &r) != 0)
			fail_msg("seed %zu: %s", i, dkim_reason_str(r));
		check_sig(fields[i], lens[i], sig);
		dkim_sig_free(sig);
	}
	for (round = 0; round < rounds; round++) {
		struct dkim_taglist l;
		struct dkim_sig *sig = NULL;
		enum dkim_reason r = DKIM_REASON_COUNT;
		const char *colon;
		char *mut;

		i = (size_t)rand_r(&seed) % nf;
		mut = mutate(fields[i], lens[i], &seed, &n);
		colon = memchr(mut, ':', n);
		if (colon != NULL) {
			size_t off = (size_t)(colon + 1 - mut);

			if (dkim_taglist_parse(colon + 1, n - off, &l, &r) == 0)
				check_taglist(colon + 1, n - off, &l);
			else
				assert_true(r == DKIM_SIG_SYNTAX ||
				    r == DKIM_SIG_DUPLICATE_TAG ||
				    r == DKIM_SIG_TOO_MANY_TAGS);
		}
		if (dkim_sig_parse(mut, n, &sig, &r) == 0) {
			assert_int_equal(r, DKIM_OK);
			check_sig(mut, n, sig);
			dkim_sig_free(sig);
			ok++;
		} else {
			assert_null(sig);
			assert_true(r > DKIM_OK && r < DKIM_KEY_SYNTAX);
			assert_int_equal(dkim_reason_result(r),
			    DKIM_RESULT_PERMERROR);
		}
		free(mut);
	}
	/* The mutations leave a fair share parseable (they probe deep). */
	assert_true(ok > rounds / 20);
	for (i = 0; i < nf; i++)
		free(fields[i]);
	free(fields);
	free(lens);
}

static void
test_fuzz_key(void **state)
{
	static const char *const files[] = {
		"dkimpy-data/test.txt",
		"dkimpy-data/1024_testkey_wo_markers.pub.rsa.txt",
		"dkimpy-data/2048_testkey_wo_markers.pub.txt",
		"dkimpy-data/ed25519test.dns", "dkimpy-data/eximtest.dns",
		"dkimpy-data/test_tlsrpt.txt",
	};
	unsigned int seed = SEED + 1, round, ok = 0;
	char *recs[nitems(files)];
	size_t lens[nitems(files)], i, n;

	(void)state;
	for (i = 0; i < nitems(files); i++) {
		recs[i] = dt_read(files[i], &lens[i]);
		while (lens[i] > 0 && (recs[i][lens[i] - 1] == '\n'))
			lens[i]--;
	}
	for (round = 0; round < rounds; round++) {
		struct dkim_key *key = NULL;
		enum dkim_reason r = DKIM_REASON_COUNT;
		char *mut;

		i = (size_t)rand_r(&seed) % nitems(files);
		mut = mutate(recs[i], lens[i], &seed, &n);
		if (dkim_key_parse(mut, n, &key, &r) == 0) {
			assert_non_null(key);
			assert_non_null(key->pkey);
			if (key->type == DKIM_KEY_RSA)
				assert_true(key->bits >= DKIM_RSA_MIN_BITS &&
				    key->bits <= DKIM_RSA_MAX_BITS);
			else
				assert_int_equal(key->bits, 256);
			dkim_key_free(key);
			ok++;
		} else {
			assert_null(key);
			assert_true(r >= DKIM_KEY_SYNTAX &&
			    r <= DKIM_FAIL_KEY_TOO_LARGE &&
			    r != DKIM_KEY_NOT_FOUND && r != DKIM_KEY_TEMPFAIL);
		}
		free(mut);
	}
	assert_true(ok > rounds / 50);
	for (i = 0; i < nitems(files); i++)
		free(recs[i]);
}

static void
sink_buf(void *arg, const char *data, size_t len)
{
	assert_int_equal(buf_append(arg, data, len), 0);
}

/* Mutated signed messages: verify without crashing; bodies stream alike. */
static void
test_fuzz_message(void **state)
{
	static const struct {
		const char *file, *dns;
		int64_t now;
	} cases[] = {
		{ "rfc8463/signed-A3.eml", "rfc8463/dns.txt", -1 },
		{ "go-msgauth/verified-rfc6376-A2-resigned.eml",
		    "go-msgauth/dns.txt", -1 },
		{ "mail-auth/004.txt", NULL, 1667843664 },
	};
	unsigned int seed = SEED + 2, round, passed = 0;
	char *msgs[nitems(cases)], *dns[nitems(cases)];
	size_t lens[nitems(cases)], i, n, len;
	unsigned int r2 = rounds / 10;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		char *raw = dt_read(cases[i].file, &len);

		if (cases[i].dns == NULL) {
			char *sep = strstr(raw, "\n\n");

			assert_non_null(sep);
			sep[1] = '\0';
			msgs[i] = dt_crlf(sep + 2,
			    len - (size_t)(sep + 2 - raw), &lens[i]);
			dns[i] = raw;
		} else {
			msgs[i] = dt_crlf(raw, len, &lens[i]);
			free(raw);
			dns[i] = dt_read(cases[i].dns, &len);
		}
	}
	for (round = 0; round < r2; round++) {
		struct dt_sigresult res[DT_MAX_SIGS];
		struct dkim_verify_opts vo;
		struct dkim_bodycanon bc;
		struct buf whole, bytes;
		size_t nsig, k;
		char *mut;
		int c;

		i = (size_t)rand_r(&seed) % nitems(cases);
		vo.now = cases[i].now;
		vo.allow_rsa_sha1 = false;
		mut = mutate(msgs[i], lens[i], &seed, &n);
		nsig = dt_verify_all(mut, n, dns[i], &vo, res);
		for (k = 0; k < nsig; k++) {
			assert_true(res[k].reason < DKIM_REASON_COUNT);
			if (res[k].result == DKIM_RESULT_PASS)
				passed++;
		}
		for (c = 0; c < 2; c++) {
			buf_init(&whole, 1 << 22);
			buf_init(&bytes, 1 << 22);
			dkim_bodycanon_init(&bc, c ? DKIM_CANON_RELAXED :
			    DKIM_CANON_SIMPLE, -1, sink_buf, &whole);
			dkim_bodycanon_update(&bc, mut, n);
			dkim_bodycanon_final(&bc);
			dkim_bodycanon_init(&bc, c ? DKIM_CANON_RELAXED :
			    DKIM_CANON_SIMPLE, -1, sink_buf, &bytes);
			for (k = 0; k < n; k++)
				dkim_bodycanon_update(&bc, mut + k, 1);
			dkim_bodycanon_final(&bc);
			assert_int_equal(whole.len, bytes.len);
			if (whole.len > 0)
				assert_memory_equal(whole.data, bytes.data,
				    whole.len);
			buf_free(&whole);
			buf_free(&bytes);
		}
		free(mut);
	}
	/* Some mutants are harmless (outside what is signed): they pass. */
	assert_true(passed > 0);
	for (i = 0; i < nitems(cases); i++) {
		free(msgs[i]);
		free(dns[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fuzz_signature),
		cmocka_unit_test(test_fuzz_key),
		cmocka_unit_test(test_fuzz_message),
	};
	const char *env = getenv("PETREL_FUZZ_ROUNDS");
	uint64_t v;
	const char *err;

	if (env != NULL && parse_u64(env, 10, 100000000, &v, &err) == 0)
		rounds = (unsigned int)v;
	printf("# seed 0x%x, %u rounds\n", SEED, rounds);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
