/*
 * test_msgauth_dmarc.c: DMARC (RFC 7489).
 *
 * - the record parser: OpenDMARC's parse table (conformance/dmarc/
 *   opendmarc/dmarc-record-parse.tsv, one documented difference), our own
 *   table of every tag, every prefix of valid records in exact-size
 *   copies, and a mutation test with a fixed seed checking the parsed
 *   record's invariants (run under ASan: make SANITIZE=address,undefined);
 * - alignment: OpenDMARC's table (two documented differences) and ours;
 * - policy discovery over the fake resolver: From domain, fallback to the
 *   Organizational Domain (a.b.example.co.uk), several records, other TXT
 *   records, DNS errors, invalid records, cancellation;
 * - evaluation: the issue's cases (aligned SPF only, aligned DKIM only,
 *   both failing under p=none/quarantine/reject, sp= for subdomains,
 *   strict and relaxed, pct=0 and pct=100 and in between, invalid
 *   records) and the merge of several verdicts;
 * - the author domain: OpenDMARC's From: table (differences documented)
 *   and what happens with zero, several and unreadable From: domains.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "testutil.h"

#include "dns/dns.h"
#include "lib/buf.h"
#include "lib/util.h"
#include "msgauth/authres.h"
#include "msgauth/dmarc.h"
#include "msgauth/orgdomain.h"

#include "dns_fake_fixture.h"

/* conformance/dmarc/NAME (see test_conformance_path()). */
static FILE *
conf_open(const char *name, char *path, size_t size)
{
	char rel[512];
	FILE *fp;

	snprintf(rel, sizeof(rel), "dmarc/%s", name);
	if ((fp = fopen(test_conformance_path(path, size, rel), "r")) == NULL)
		fail_msg("cannot open %s", path);
	return fp;
}

/* Split a TSV line in place into at most n fields; returns the count. */
static size_t
tsv_split(char *line, char **f, size_t n)
{
	size_t k = 0;
	char *p = line;

	line[strcspn(line, "\r\n")] = '\0';
	while (k < n) {
		f[k++] = p;
		if ((p = strchr(p, '\t')) == NULL)
			break;
		*p++ = '\0';
	}
	return k;
}

static int
setup_psl(void **state)
{
	char path[1024], err[256];
	FILE *fp = conf_open("psl/public_suffix_list.dat", path, sizeof(path));

	(void)state;
	fclose(fp);
	if (orgdomain_load(path, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	return 0;
}

static int
teardown_psl(void **state)
{
	(void)state;
	orgdomain_unload();
	return 0;
}

static int
parse_exact(const char *txt, struct dmarc_record *rec, const char **err)
{
	char *copy = test_dup_exact(txt, strlen(txt));
	int r = dmarc_record_parse(copy, strlen(txt), rec, err);

	free(copy);
	return r;
}

/* ------------------------------------------------------------------ */

/*
 * OpenDMARC's verdicts. Where ours differ, on purpose:
 *   "p=n": OpenDMARC takes a prefix of "none"; RFC 7489 6.4 has only
 *   the three whole words, and without rua= there is no fallback.
 */
static const char *const opendmarc_differs[] = {
	"v=DMARC1; p=n;",
};

static void
test_opendmarc_parse(void **state)
{
	char path[1024], line[2048], *f[3];
	struct dmarc_record rec;
	const char *err;
	int n = 0, same = 0, want;
	size_t i;
	bool differs;
	FILE *fp = conf_open("opendmarc/dmarc-record-parse.tsv", path,
	    sizeof(path));

	(void)state;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (line[0] == '#')
			continue;
		assert_int_equal(tsv_split(line, f, 3), 2);
		n++;
		want = strcmp(f[1], "DMARC_PARSE_OKAY") == 0 ? 0 : -1;
		differs = false;
		for (i = 0; i < nitems(opendmarc_differs); i++)
			if (strcmp(f[0], opendmarc_differs[i]) == 0)
				differs = true;
		if (differs)
			want = want == 0 ? -1 : 0;
		else
			same++;
		if (parse_exact(f[0], &rec, &err) != want)
			fail_msg("'%s': got %s, want %s (OpenDMARC %s)",
			    f[0], want == 0 ? "an error" : "ok",
			    want == 0 ? "ok" : "an error", f[1]);
		dmarc_record_clear(&rec);
	}
	fclose(fp);
	print_message("dmarc-record-parse.tsv: %d records, %d as OpenDMARC, "
	    "%d documented differences\n", n, same, n - same);
	assert_int_equal(n, 19);
	assert_int_equal(n - same, (int)nitems(opendmarc_differs));
}

struct rec_case {
	const char *txt;
	int ret;
	enum dmarc_request p, sp;
	enum dmarc_align adkim, aspf;
	unsigned int pct;
	unsigned int fo, rf;
	uint32_t ri;
	size_t nrua, nruf;
	const char *rua0;
	uint64_t rua0_size;
	bool fallback;
};

#define R_DEF	DMARC_ALIGN_RELAXED, DMARC_ALIGN_RELAXED, 100, DMARC_FO_0, \
		DMARC_RF_AFRF, 86400
#define NONE	DMARC_REQ_NONE
#define QUAR	DMARC_REQ_QUARANTINE
#define REJ	DMARC_REQ_REJECT
#define UNSET	DMARC_REQ_UNSET
#define RX	DMARC_ALIGN_RELAXED
#define SX	DMARC_ALIGN_STRICT

static const struct rec_case rec_cases[] = {
	{ "v=DMARC1; p=none", 0, NONE, UNSET, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1;p=reject;", 0, REJ, UNSET, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=quarantine; sp=reject", 0, QUAR, REJ, R_DEF, 0, 0,
	    NULL, 0, false },
	/* Keywords in any case; white space and folding around '=' and ';'. */
	{ " v = DMARC1 ;\r\n\tP = Reject ; SP=NONE ; ADKIM=S; aspf=s ;", 0,
	    REJ, NONE, SX, SX, 100, DMARC_FO_0, DMARC_RF_AFRF, 86400, 0, 0,
	    NULL, 0, false },
	/* Every tag. */
	{ "v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=r; pct=25; "
	    "fo=1:d:s; rf=afrf; ri=3600; "
	    "rua=mailto:agg@example.com!10m, mailto:agg2@example.net; "
	    "ruf=mailto:fail@example.com!512", 0,
	    REJ, QUAR, SX, RX, 25, DMARC_FO_1 | DMARC_FO_D | DMARC_FO_S,
	    DMARC_RF_AFRF, 3600, 2, 1, "mailto:agg@example.com", 10485760,
	    false },
	{ "v=DMARC1; p=none; fo=0 : 1; rua=mailto:a@b.example!1K", 0, NONE,
	    UNSET, RX, RX, 100, DMARC_FO_0 | DMARC_FO_1, DMARC_RF_AFRF,
	    86400, 1, 0, "mailto:a@b.example", 1024, false },
	{ "v=DMARC1; p=none; rua=mailto:a%2cb@example.com!2t", 0, NONE, UNSET,
	    R_DEF, 1, 0, "mailto:a%2cb@example.com", 2ULL << 40, false },
	{ "v=DMARC1; p=none; pct=0", 0, NONE, UNSET, RX, RX, 0, DMARC_FO_0,
	    DMARC_RF_AFRF, 86400, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=none; pct=100", 0, NONE, UNSET, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none; pct=007", 0, NONE, UNSET, RX, RX, 7, DMARC_FO_0,
	    DMARC_RF_AFRF, 86400, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=none; ri=0", 0, NONE, UNSET, RX, RX, 100, DMARC_FO_0,
	    DMARC_RF_AFRF, 0, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=none; ri=4294967295", 0, NONE, UNSET, RX, RX, 100,
	    DMARC_FO_0, DMARC_RF_AFRF, 4294967295U, 0, 0, NULL, 0, false },
	/* p= after other tags; unknown tags ignored. */
	{ "v=DMARC1; pct=50; foo=bar baz; x_1=; p=reject", 0, REJ, UNSET,
	    RX, RX, 50, DMARC_FO_0, DMARC_RF_AFRF, 86400, 0, 0, NULL, 0,
	    false },
	/* Empty elements. */
	{ "v=DMARC1;; p=none;;", 0, NONE, UNSET, R_DEF, 0, 0, NULL, 0,
	    false },
	/* More URIs than are kept. */
	{ "v=DMARC1; p=none; rua=a:1,a:2,a:3,a:4,a:5,a:6,a:7,a:8,a:9,a:10", 0,
	    NONE, UNSET, R_DEF, DMARC_URIS_MAX, 0, "a:1", 0, false },
	/* RFC 7489 6.6.3: a bad or missing p= with a valid rua= is p=none. */
	{ "v=DMARC1; p=bogus; rua=mailto:r@example.com", 0, NONE, UNSET,
	    R_DEF, 1, 0, "mailto:r@example.com", 0, true },
	{ "v=DMARC1; rua=mailto:r@example.com", 0, NONE, UNSET, R_DEF, 1, 0,
	    "mailto:r@example.com", 0, true },
	{ "v=DMARC1; p=reject; sp=bogus; rua=mailto:r@example.com", 0, NONE,
	    UNSET, R_DEF, 1, 0, "mailto:r@example.com", 0, true },
	/* Errors. */
	{ "", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1;", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=dmarc1; p=none", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC2; p=none", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "p=none; v=DMARC1", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1 p=none", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=none; p=reject", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none; foo=1; FOO=2", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; v=DMARC1; p=none", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=rejectx", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=reject; sp=bogus", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none; pct=101", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none; pct=0100", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none; pct=-1", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=none; pct=", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=none; pct=5 0", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none; ri=4294967296", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none; adkim=x", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none; aspf=", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=none; fo=2", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=none; fo=1:", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=none; fo=1 d", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=none; rf=iodef", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none; rua=", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=none; rua=example.com", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none; rua=mailto:", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none; rua=1mailto:a@b", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none; rua=mailto:a@b,", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none; rua=mailto:a@b!", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none; rua=mailto:a@b!10x", -1, 0, 0, R_DEF, 0, 0, NULL,
	    0, false },
	{ "v=DMARC1; p=none; rua=mailto:a@b!k", -1, 0, 0, R_DEF, 0, 0, NULL,
	    0, false },
	{ "v=DMARC1; p=none; rua=mailto:a@b!99999999999999999999", -1, 0, 0,
	    R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=none; rua=mailto:a%2", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none; rua=mailto:a%zz@b", -1, 0, 0, R_DEF, 0, 0, NULL,
	    0, false },
	{ "v=DMARC1; p=none; rua=mailto:a\"b@c", -1, 0, 0, R_DEF, 0, 0, NULL,
	    0, false },
	/* A bad rua= voids the fallback too. */
	{ "v=DMARC1; p=bogus; rua=bogus", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none; 1x=2", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=none; =2", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=none; foo", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=none; foo=\x01", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none; foo=\xc3\xa9", -1, 0, 0, R_DEF, 0, 0, NULL, 0,
	    false },
	{ "v=DMARC1; p=none\r\n", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
	{ "v=DMARC1; p=none\n p=x", -1, 0, 0, R_DEF, 0, 0, NULL, 0, false },
};

static void
test_record_table(void **state)
{
	struct dmarc_record rec;
	const char *err;
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < nitems(rec_cases); i++) {
		const struct rec_case *c = &rec_cases[i];

		err = NULL;
		r = parse_exact(c->txt, &rec, &err);
		if (r != c->ret)
			fail_msg("'%s': got %d (%s), want %d", test_esc(c->txt),
			    r, err != NULL ? err : "", c->ret);
		if (r == -1) {
			assert_non_null(err);
			assert_int_equal(rec.nrua, 0);
			continue;
		}
		if (rec.p != c->p || rec.sp != c->sp || rec.adkim != c->adkim ||
		    rec.aspf != c->aspf || rec.pct != c->pct ||
		    rec.fo != c->fo || rec.rf != c->rf || rec.ri != c->ri ||
		    rec.nrua != c->nrua || rec.nruf != c->nruf ||
		    rec.p_fallback != c->fallback)
			fail_msg("'%s': got p=%d sp=%d adkim=%d aspf=%d pct=%u "
			    "fo=%u rf=%u ri=%u nrua=%zu nruf=%zu fallback=%d",
			    test_esc(c->txt), rec.p, rec.sp, rec.adkim,
			    rec.aspf, rec.pct, rec.fo, rec.rf, rec.ri, rec.nrua,
			    rec.nruf, rec.p_fallback);
		if (c->rua0 != NULL) {
			assert_string_equal(rec.rua[0].uri, c->rua0);
			assert_true(rec.rua[0].max_size == c->rua0_size);
		}
		dmarc_record_clear(&rec);
	}
}

static void
test_record_is_dmarc(void **state)
{
	(void)state;
	assert_true(dmarc_record_is_dmarc("v=DMARC1", 8));
	assert_true(dmarc_record_is_dmarc("v=DMARC1; p=bogus", 17));
	assert_true(dmarc_record_is_dmarc("  v = DMARC1 ;", 14));
	assert_false(dmarc_record_is_dmarc("v=DMARC1x", 9));
	assert_false(dmarc_record_is_dmarc("v=DMARC", 7));
	assert_false(dmarc_record_is_dmarc("v=spf1 -all", 11));
	assert_false(dmarc_record_is_dmarc("p=none; v=DMARC1", 16));
	assert_false(dmarc_record_is_dmarc("", 0));
	/* Only len octets are read. */
	assert_false(dmarc_record_is_dmarc("v=DMARC1", 7));
}

static void
test_record_copy(void **state)
{
	struct dmarc_record a, b;
	const char *txt = "v=DMARC1; p=reject; rua=mailto:x@example.com; "
	    "ruf=mailto:y@example.com";

	(void)state;
	assert_int_equal(parse_exact(txt, &a, NULL), 0);
	dmarc_record_copy(&b, &a);
	dmarc_record_clear(&a);
	assert_int_equal(b.p, DMARC_REQ_REJECT);
	assert_string_equal(b.rua[0].uri, "mailto:x@example.com");
	assert_string_equal(b.ruf[0].uri, "mailto:y@example.com");
	dmarc_record_clear(&b);
	dmarc_record_clear(&b);
	assert_string_equal(dmarc_request_name(DMARC_REQ_QUARANTINE),
	    "quarantine");
	assert_string_equal(dmarc_request_name(DMARC_REQ_UNSET), "");
}

/* Every prefix of valid records, each in an exact-size copy. */
static void
test_record_prefixes(void **state)
{
	struct dmarc_record rec;
	size_t i, k, len;
	char *copy;

	(void)state;
	for (i = 0; i < nitems(rec_cases); i++) {
		if (rec_cases[i].ret != 0)
			continue;
		len = strlen(rec_cases[i].txt);
		for (k = 0; k <= len; k++) {
			copy = test_dup_exact(rec_cases[i].txt, k);
			if (dmarc_record_parse(copy, k, &rec, NULL) == 0) {
				assert_true(rec.p >= DMARC_REQ_NONE);
				dmarc_record_clear(&rec);
			}
			free(copy);
		}
	}
}

static uint64_t
rng_next(uint64_t *s)
{
	/* splitmix64 */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static size_t
rng_below(uint64_t *s, size_t n)
{
	return n > 0 ? (size_t)(rng_next(s) % n) : 0;
}

static bool
uri_ok(const struct dmarc_uri *u)
{
	size_t len = strlen(u->uri);
	const char *colon = strchr(u->uri, ':');

	return len > 0 && len <= DMARC_URI_MAX && colon != NULL &&
	    colon > u->uri && colon[1] != '\0' &&
	    strpbrk(u->uri, ",!; \t\r\n") == NULL;
}

/*
 * Mutation test: 1 to 4 random edits of valid records (octets the grammar
 * cares about, random octets, deletion, duplication, truncation), parsed
 * from an exact-size copy. An accepted record must satisfy the contract:
 * p a policy, sp unset or a policy, pct <= 100, URIs well-formed and
 * bounded, and the fallback only with a rua=.
 */
static void
test_record_mutations(void **state)
{
	static const char interesting[] = ";=:,! \t\r\nvpVP0129%kDMARC1\"\x00"
	    "\x80\xff";
	uint64_t seed = 0x5eed0d3a4c2b1a09ULL;
	char buf[600], *copy;
	struct dmarc_record rec;
	size_t len, k, nedits, pos, span, j;
	int round, accepted = 0, refused = 0;

	(void)state;
	for (round = 0; round < 200000; round++) {
		const struct rec_case *c;

		do
			c = &rec_cases[rng_below(&seed, nitems(rec_cases))];
		while (c->ret != 0);
		len = strlen(c->txt);
		memcpy(buf, c->txt, len);
		nedits = 1 + rng_below(&seed, 4);
		for (k = 0; k < nedits; k++) {
			pos = rng_below(&seed, len + 1);
			switch (rng_below(&seed, 5)) {
			case 0:
				if (pos < len)
					buf[pos] = interesting[rng_below(&seed,
					    sizeof(interesting) - 1)];
				break;
			case 1:
				if (pos < len)
					buf[pos] = (char)rng_below(&seed, 256);
				break;
			case 2:
				span = 1 + rng_below(&seed, 4);
				if (pos + span <= len) {
					memmove(buf + pos, buf + pos + span,
					    len - pos - span);
					len -= span;
				}
				break;
			case 3:
				span = 1 + rng_below(&seed, 16);
				if (pos + span <= len &&
				    len + span <= sizeof(buf)) {
					memmove(buf + pos + span, buf + pos,
					    len - pos);
					len += span;
				}
				break;
			case 4:
				len = pos;
				break;
			}
		}
		copy = test_dup_exact(buf, len);
		if (dmarc_record_parse(copy, len, &rec, NULL) == 0) {
			accepted++;
			assert_true(rec.p == DMARC_REQ_NONE ||
			    rec.p == DMARC_REQ_QUARANTINE ||
			    rec.p == DMARC_REQ_REJECT);
			assert_true(rec.sp <= DMARC_REQ_REJECT);
			assert_true(rec.pct <= 100);
			assert_true(rec.nrua <= DMARC_URIS_MAX &&
			    rec.nruf <= DMARC_URIS_MAX);
			for (j = 0; j < rec.nrua; j++)
				assert_true(uri_ok(&rec.rua[j]));
			for (j = 0; j < rec.nruf; j++)
				assert_true(uri_ok(&rec.ruf[j]));
			assert_true(!rec.p_fallback || rec.nrua > 0);
			assert_true(dmarc_record_is_dmarc(copy, len));
			assert_null(memchr(copy, '\0', len));
			dmarc_record_clear(&rec);
		} else {
			refused++;
			assert_int_equal(rec.nrua, 0);
		}
		free(copy);
	}
	print_message("mutations: %d accepted, %d refused\n", accepted,
	    refused);
	assert_true(accepted > 1000 && refused > 1000);
}

/* ------------------------------------------------------------------ */

/*
 * OpenDMARC's alignment table. Where ours differ, on purpose: OpenDMARC
 * strips any number of leading and trailing dots (".mac.com.",
 * "....mac.com...."); those are not domain names, and a name we cannot
 * read never aligns (only one trailing dot, the absolute form, is
 * accepted).
 */
static const char *const align_differs[] = {
	".mac.com.",
	"....mac.com....",
};

static void
test_opendmarc_alignment(void **state)
{
	char path[1024], line[1024], *f[5];
	int n = 0, same = 0;
	bool want, got, differs;
	size_t i;
	FILE *fp = conf_open("opendmarc/alignment.tsv", path, sizeof(path));

	(void)state;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (line[0] == '#')
			continue;
		assert_int_equal(tsv_split(line, f, 5), 4);
		n++;
		want = strcmp(f[3], "0") == 0;
		differs = false;
		for (i = 0; i < nitems(align_differs); i++)
			if (strcmp(f[0], align_differs[i]) == 0)
				differs = true;
		if (differs)
			want = !want;
		else
			same++;
		got = dmarc_aligned(f[0], f[1],
		    strcmp(f[2], "DMARC_RECORD_A_STRICT") == 0 ?
		    DMARC_ALIGN_STRICT : DMARC_ALIGN_RELAXED);
		if (got != want)
			fail_msg("%s %s %s: got %d, want %d", f[0], f[1], f[2],
			    got, want);
	}
	fclose(fp);
	print_message("alignment.tsv: %d cases, %d as OpenDMARC, %d "
	    "documented differences\n", n, same, n - same);
	assert_int_equal(n, 10);
	assert_int_equal(n - same, (int)nitems(align_differs));
}

struct align_case {
	const char *from, *auth;
	bool relaxed, strict;
};

static const struct align_case align_cases[] = {
	{ "example.com", "example.com", true, true },
	{ "Example.COM", "example.com.", true, true },
	{ "news.example.com", "example.com", true, false },
	{ "example.com", "mail.example.com", true, false },
	{ "a.example.com", "b.example.com", true, false },
	{ "a.b.example.co.uk", "example.co.uk", true, false },
	{ "a.b.example.co.uk", "c.example.co.uk", true, false },
	{ "example.co.uk", "other.co.uk", false, false },
	{ "co.uk", "example.co.uk", false, false },
	{ "example.com", "example.net", false, false },
	{ "example.com", "badexample.com", false, false },
	{ "example.com", "com", false, false },
	{ "foo.github.io", "bar.github.io", false, false },
	{ "x.foo.github.io", "foo.github.io", true, false },
	{ "example.com", "", false, false },
	{ "", "", false, false },
	{ "example.com", "example..com", false, false },
	{ "example.com", "[192.0.2.1]", false, false },
};

static void
test_alignment_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < nitems(align_cases); i++) {
		const struct align_case *c = &align_cases[i];
		bool r = dmarc_aligned(c->from, c->auth, DMARC_ALIGN_RELAXED);
		bool s = dmarc_aligned(c->from, c->auth, DMARC_ALIGN_STRICT);

		if (r != c->relaxed || s != c->strict)
			fail_msg("%s vs %s: got relaxed %d strict %d, want %d "
			    "%d", c->from, c->auth, r, s, c->relaxed,
			    c->strict);
	}
	assert_false(dmarc_aligned(NULL, "example.com", DMARC_ALIGN_RELAXED));
	assert_false(dmarc_aligned("example.com", NULL, DMARC_ALIGN_STRICT));
}

/* ------------------------------------------------------------------ */
/* Policy discovery over the fake resolver. */

struct got_pol {
	int calls;
	struct dmarc_policy pol;
	/* A lookup to start from the callback. */
	struct dns *d;
	const char *chain;
	uint64_t chain_id;
	struct got_pol *chain_got;
};

static void
got_pol_cb(void *arg, const struct dmarc_policy *pol)
{
	struct got_pol *g = arg;

	g->calls++;
	dmarc_policy_clear(&g->pol);
	dmarc_policy_copy(&g->pol, pol);
	if (g->chain != NULL) {
		g->chain_id = dmarc_lookup(g->d, g->chain, got_pol_cb,
		    g->chain_got);
		g->chain = NULL;
	}
}

static void
set_txt(struct dns *d, const char *name, const char *v1, const char *v2)
{
	const char *vals[2] = { v1, v2 };

	dns_fake_set(d, name, DNS_TYPE_TXT, DNS_OK, vals,
	    v2 != NULL ? 2 : v1 != NULL ? 1 : 0);
}

static void
lookup_run(struct dns_fixture *f, const char *domain, struct got_pol *g)
{
	memset(g, 0, sizeof(*g));
	assert_true(dmarc_lookup(f->d, domain, got_pol_cb, g) != 0);
	assert_int_equal(g->calls, 0);	/* never from inside the call */
	assert_int_equal(dmarc_lookup_pending(f->d), 1);
	dns_fixture_run(f);
	assert_int_equal(g->calls, 1);
	assert_int_equal(dmarc_lookup_pending(f->d), 0);
}

static void
test_lookup_from_domain(void **state)
{
	struct dns_fixture *f = *state;
	struct got_pol g;

	set_txt(f->d, "_dmarc.example.com",
	    "v=DMARC1; p=reject; rua=mailto:d@example.com", NULL);
	lookup_run(f, "Example.COM.", &g);
	assert_int_equal(g.pol.status, DMARC_POLICY_FOUND);
	assert_int_equal(g.pol.rec.p, DMARC_REQ_REJECT);
	assert_string_equal(g.pol.from_domain, "example.com");
	assert_string_equal(g.pol.org_domain, "example.com");
	assert_string_equal(g.pol.record_domain, "example.com");
	assert_false(g.pol.at_org);
	assert_string_equal(g.pol.rec.rua[0].uri, "mailto:d@example.com");
	assert_int_equal(dns_fake_count(f->d, "_dmarc.example.com",
	    DNS_TYPE_TXT), 1);
	dmarc_policy_clear(&g.pol);
}

static void
test_lookup_org_fallback(void **state)
{
	struct dns_fixture *f = *state;
	struct got_pol g;

	/* Only other TXT records at the From domain's _dmarc name. */
	set_txt(f->d, "_dmarc.a.b.example.co.uk", "v=spf1 -all",
	    "hello world");
	set_txt(f->d, "_dmarc.example.co.uk",
	    "v=DMARC1; p=quarantine; sp=reject", "unrelated text");
	lookup_run(f, "a.b.example.co.uk", &g);
	assert_int_equal(g.pol.status, DMARC_POLICY_FOUND);
	assert_true(g.pol.at_org);
	assert_string_equal(g.pol.org_domain, "example.co.uk");
	assert_string_equal(g.pol.record_domain, "example.co.uk");
	assert_int_equal(g.pol.rec.sp, DMARC_REQ_REJECT);
	assert_int_equal(dns_fake_count(f->d, "_dmarc.a.b.example.co.uk",
	    DNS_TYPE_TXT), 1);
	assert_int_equal(dns_fake_count(f->d, "_dmarc.example.co.uk",
	    DNS_TYPE_TXT), 1);
	/* Never the intermediate name, never the public suffix. */
	assert_int_equal(dns_fake_count(f->d, "_dmarc.b.example.co.uk", 0), 0);
	assert_int_equal(dns_fake_count(f->d, "_dmarc.co.uk", 0), 0);
	dmarc_policy_clear(&g.pol);

	/* NXDOMAIN at the subdomain (no entry at all), NODATA at the org. */
	dns_fake_set(f->d, "_dmarc.example.net", DNS_TYPE_A, DNS_OK,
	    (const char *[]){ "192.0.2.1" }, 1);
	lookup_run(f, "mail.example.net", &g);
	assert_int_equal(g.pol.status, DMARC_POLICY_ABSENT);
	assert_false(g.pol.at_org);
	assert_string_equal(g.pol.record_domain, "");
	assert_int_equal(dns_fake_count(f->d, "_dmarc.mail.example.net",
	    DNS_TYPE_TXT), 1);
	assert_int_equal(dns_fake_count(f->d, "_dmarc.example.net",
	    DNS_TYPE_TXT), 1);
	dmarc_policy_clear(&g.pol);
}

static void
test_lookup_no_second_query(void **state)
{
	struct dns_fixture *f = *state;
	struct got_pol g;

	/* The From domain is its own organizational domain: one query. */
	lookup_run(f, "example.org", &g);
	assert_int_equal(g.pol.status, DMARC_POLICY_ABSENT);
	assert_int_equal(dns_fake_count(f->d, "_dmarc.example.org", 0), 1);
	assert_int_equal(dns_fake_count(f->d, "_dmarc.org", 0), 0);
	/* A public suffix: itself only. */
	lookup_run(f, "co.uk", &g);
	assert_int_equal(g.pol.status, DMARC_POLICY_ABSENT);
	assert_int_equal(dns_fake_count(f->d, "_dmarc.co.uk", 0), 1);
	assert_int_equal(dns_fake_count(f->d, "_dmarc.uk", 0), 0);
	dmarc_policy_clear(&g.pol);
}

static void
test_lookup_multiple(void **state)
{
	struct dns_fixture *f = *state;
	struct got_pol g;

	set_txt(f->d, "_dmarc.sub.example.com", "v=DMARC1; p=none",
	    "v=DMARC1; p=reject");
	set_txt(f->d, "_dmarc.example.com", "v=DMARC1; p=reject", NULL);
	lookup_run(f, "sub.example.com", &g);
	/* RFC 7489 6.6.3 step 5: several records, no DMARC; no fallback. */
	assert_int_equal(g.pol.status, DMARC_POLICY_ABSENT);
	assert_non_null(strstr(g.pol.reason, "2 DMARC records"));
	assert_int_equal(dns_fake_count(f->d, "_dmarc.example.com", 0), 0);
	dmarc_policy_clear(&g.pol);
	/* Even when one of them is invalid. */
	set_txt(f->d, "_dmarc.example.com", "v=DMARC1; p=reject",
	    "v=DMARC1; p=bogus");
	lookup_run(f, "example.com", &g);
	assert_int_equal(g.pol.status, DMARC_POLICY_ABSENT);
	dmarc_policy_clear(&g.pol);
}

static void
test_lookup_errors(void **state)
{
	struct dns_fixture *f = *state;
	struct got_pol g;

	/* TEMPFAIL at the From domain: temperror, no fallback. */
	dns_fake_set(f->d, "_dmarc.a.example.com", DNS_TYPE_TXT, DNS_TEMPFAIL,
	    NULL, 0);
	set_txt(f->d, "_dmarc.example.com", "v=DMARC1; p=reject", NULL);
	lookup_run(f, "a.example.com", &g);
	assert_int_equal(g.pol.status, DMARC_POLICY_TEMPERROR);
	assert_int_equal(dns_fake_count(f->d, "_dmarc.example.com", 0), 0);
	dmarc_policy_clear(&g.pol);
	/* TEMPFAIL at the organizational domain. */
	dns_fake_set(f->d, "_dmarc.example.net", DNS_TYPE_TXT, DNS_TEMPFAIL,
	    NULL, 0);
	lookup_run(f, "b.example.net", &g);
	assert_int_equal(g.pol.status, DMARC_POLICY_TEMPERROR);
	dmarc_policy_clear(&g.pol);
	/* PERMFAIL. */
	dns_fake_set(f->d, "_dmarc.example.org", DNS_TYPE_TXT, DNS_PERMFAIL,
	    NULL, 0);
	lookup_run(f, "example.org", &g);
	assert_int_equal(g.pol.status, DMARC_POLICY_PERMERROR);
	dmarc_policy_clear(&g.pol);
	/* One invalid record at the From domain: permerror, no fallback. */
	set_txt(f->d, "_dmarc.c.example.com", "v=DMARC1; p=bogus", NULL);
	lookup_run(f, "c.example.com", &g);
	assert_int_equal(g.pol.status, DMARC_POLICY_PERMERROR);
	assert_non_null(strstr(g.pol.reason, "invalid p="));
	assert_int_equal(dns_fake_count(f->d, "_dmarc.example.com", 0), 0);
	dmarc_policy_clear(&g.pol);
	/* Invalid p= with a valid rua=: p=none. */
	set_txt(f->d, "_dmarc.d.example.com",
	    "v=DMARC1; p=bogus; rua=mailto:r@example.com", NULL);
	lookup_run(f, "d.example.com", &g);
	assert_int_equal(g.pol.status, DMARC_POLICY_FOUND);
	assert_true(g.pol.rec.p_fallback);
	assert_int_equal(g.pol.rec.p, DMARC_REQ_NONE);
	dmarc_policy_clear(&g.pol);
}

static void
test_lookup_bad_names(void **state)
{
	struct dns_fixture *f = *state;
	struct got_pol g;
	char name[300];
	size_t i;

	memset(&g, 0, sizeof(g));
	assert_true(dmarc_lookup(f->d, NULL, got_pol_cb, &g) == 0);
	assert_true(dmarc_lookup(f->d, "", got_pol_cb, &g) == 0);
	assert_true(dmarc_lookup(f->d, "a..b", got_pol_cb, &g) == 0);
	assert_true(dmarc_lookup(f->d, "[192.0.2.1]", got_pol_cb, &g) == 0);
	assert_true(dmarc_lookup(f->d, "\xe4\xb8\xad.example", got_pol_cb,
	    &g) == 0);
	assert_int_equal(dmarc_lookup_pending(f->d), 0);
	/* A 253-octet From domain: _dmarc.<it> cannot exist; the
	 * organizational domain is still asked. */
	for (i = 0; i < 241; i += 2) {
		name[i] = 'a';
		name[i + 1] = '.';
	}
	strlcpy(name + 242, "example.com", sizeof(name) - 242);
	set_txt(f->d, "_dmarc.example.com", "v=DMARC1; p=quarantine", NULL);
	lookup_run(f, name, &g);
	assert_int_equal(g.pol.status, DMARC_POLICY_FOUND);
	assert_true(g.pol.at_org);
	assert_int_equal(g.pol.rec.p, DMARC_REQ_QUARANTINE);
	/* Straight to the organizational domain: one query in all. */
	assert_int_equal(dns_fake_count(f->d, "_dmarc.example.com", 0), 1);
	assert_int_equal(dns_fake_count(f->d, "_dmarc.invalid", 0), 0);
	dmarc_policy_clear(&g.pol);
	assert_int_equal(g.calls, 1);
}

static void
test_lookup_cancel(void **state)
{
	struct dns_fixture *f = *state;
	struct got_pol g1, g2, g3;
	uint64_t id1, id2, id3;

	memset(&g1, 0, sizeof(g1));
	memset(&g2, 0, sizeof(g2));
	memset(&g3, 0, sizeof(g3));
	set_txt(f->d, "_dmarc.example.com", "v=DMARC1; p=reject", NULL);
	id1 = dmarc_lookup(f->d, "x.example.com", got_pol_cb, &g1);
	id2 = dmarc_lookup(f->d, "example.com", got_pol_cb, &g2);
	id3 = dmarc_lookup(f->d, "y.example.com", got_pol_cb, &g3);
	assert_true(id1 != 0 && id2 != 0 && id3 != 0);
	assert_true(id1 != id2 && id2 != id3 && id1 != id3);
	assert_int_equal(dmarc_lookup_pending(f->d), 3);
	dmarc_lookup_cancel(f->d, id1);
	dmarc_lookup_cancel(f->d, id1);		/* twice: ignored */
	dmarc_lookup_cancel(f->d, 0);
	dmarc_lookup_cancel(f->d, 12345678);
	assert_int_equal(dmarc_lookup_pending(f->d), 2);
	dns_fixture_run(f);
	assert_int_equal(g1.calls, 0);
	assert_int_equal(g2.calls, 1);
	assert_int_equal(g3.calls, 1);
	assert_int_equal(g3.pol.status, DMARC_POLICY_FOUND);
	assert_true(g3.pol.at_org);
	dmarc_policy_clear(&g2.pol);
	dmarc_policy_clear(&g3.pol);

	/* A callback that starts another lookup. */
	memset(&g1, 0, sizeof(g1));
	memset(&g2, 0, sizeof(g2));
	g1.d = f->d;
	g1.chain = "z.example.com";
	g1.chain_got = &g2;
	assert_true(dmarc_lookup(f->d, "example.com", got_pol_cb, &g1) != 0);
	dns_fixture_run(f);
	assert_int_equal(g1.calls, 1);
	assert_true(g1.chain_id != 0);
	assert_int_equal(g2.calls, 1);
	assert_int_equal(g2.pol.status, DMARC_POLICY_FOUND);
	dmarc_policy_clear(&g1.pol);
	dmarc_policy_clear(&g2.pol);

	/* Cancel everything, then free the resolver: no callback. */
	memset(&g1, 0, sizeof(g1));
	assert_true(dmarc_lookup(f->d, "q.example.com", got_pol_cb, &g1) != 0);
	assert_true(dmarc_lookup(f->d, "r.example.com", got_pol_cb, &g1) != 0);
	dmarc_lookup_cancel_all(f->d);
	assert_int_equal(dmarc_lookup_pending(f->d), 0);
	dns_free(f->d);
	f->d = NULL;
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(g1.calls, 0);
}

/* ------------------------------------------------------------------ */
/* Evaluation. */

struct eval_case {
	const char *name;
	const char *from;
	const char *record;	/* NULL: no policy */
	bool at_org;
	bool spf_pass;
	const char *spf_domain;
	const char *dkim_d[2];	/* NULL-ended */
	bool dkim_pass[2];
	unsigned int roll;
	enum dmarc_result result;
	enum dmarc_request policy;
	enum dmarc_disposition disp;
	bool spf_al, dkim_al, sampled;
};

#define D_NONE	DMARC_DISP_NONE
#define D_QUAR	DMARC_DISP_QUARANTINE
#define D_REJ	DMARC_DISP_REJECT
#define PASS	DMARC_RESULT_PASS
#define FAIL	DMARC_RESULT_FAIL

static const struct eval_case eval_cases[] = {
	{ "aligned SPF only", "example.com", "v=DMARC1; p=reject", false,
	    true, "example.com", { "other.example", NULL }, { false, false },
	    0, PASS, REJ, D_NONE, true, false, false },
	{ "aligned SPF only, relaxed subdomain", "example.com",
	    "v=DMARC1; p=reject", false, true, "bounces.example.com",
	    { NULL, NULL }, { false, false }, 0, PASS, REJ, D_NONE, true,
	    false, false },
	{ "aligned DKIM only", "example.com", "v=DMARC1; p=reject", false,
	    true, "mailer.example", { "example.com", NULL }, { true, false },
	    0, PASS, REJ, D_NONE, false, true, false },
	{ "aligned DKIM as second signature", "example.com",
	    "v=DMARC1; p=reject", false, false, NULL,
	    { "mailer.example", "mail.example.com" }, { true, true }, 0, PASS,
	    REJ, D_NONE, false, true, false },
	{ "aligned DKIM that failed", "example.com", "v=DMARC1; p=reject",
	    false, false, NULL, { "example.com", NULL }, { false, false }, 0,
	    FAIL, REJ, D_REJ, false, false, false },
	{ "aligned SPF that failed", "example.com", "v=DMARC1; p=reject",
	    false, false, "example.com", { NULL, NULL }, { false, false }, 0,
	    FAIL, REJ, D_REJ, false, false, false },
	{ "both failing, p=none", "example.com", "v=DMARC1; p=none", false,
	    true, "evil.example", { "evil.example", NULL }, { true, false },
	    0, FAIL, NONE, D_NONE, false, false, false },
	{ "both failing, p=quarantine", "example.com",
	    "v=DMARC1; p=quarantine", false, true, "evil.example",
	    { "evil.example", NULL }, { true, false }, 0, FAIL, QUAR, D_QUAR,
	    false, false, false },
	{ "both failing, p=reject", "example.com", "v=DMARC1; p=reject",
	    false, true, "evil.example", { "evil.example", NULL },
	    { true, false }, 0, FAIL, REJ, D_REJ, false, false, false },
	/* sp= applies to a subdomain whose policy came from the org. */
	{ "sp= for a subdomain", "a.example.com",
	    "v=DMARC1; p=reject; sp=quarantine", true, false, NULL,
	    { NULL, NULL }, { false, false }, 0, FAIL, QUAR, D_QUAR, false,
	    false, false },
	{ "sp=none for a subdomain", "a.example.com",
	    "v=DMARC1; p=reject; sp=none", true, false, NULL, { NULL, NULL },
	    { false, false }, 0, FAIL, NONE, D_NONE, false, false, false },
	{ "no sp=: p for a subdomain", "a.example.com",
	    "v=DMARC1; p=reject", true, false, NULL, { NULL, NULL },
	    { false, false }, 0, FAIL, REJ, D_REJ, false, false, false },
	{ "sp= not for the domain itself", "a.example.com",
	    "v=DMARC1; p=reject; sp=none", false, false, NULL, { NULL, NULL },
	    { false, false }, 0, FAIL, REJ, D_REJ, false, false, false },
	/* The org-domain fallback of a.b.example.co.uk, relaxed. */
	{ "org fallback, relaxed DKIM", "a.b.example.co.uk",
	    "v=DMARC1; p=reject", true, false, NULL,
	    { "example.co.uk", NULL }, { true, false }, 0, PASS, REJ, D_NONE,
	    false, true, false },
	{ "org fallback, other co.uk", "a.b.example.co.uk",
	    "v=DMARC1; p=reject", true, true, "example2.co.uk",
	    { "co.uk", NULL }, { true, false }, 0, FAIL, REJ, D_REJ, false,
	    false, false },
	/* Strict against relaxed. */
	{ "strict DKIM, subdomain d=", "example.com",
	    "v=DMARC1; p=reject; adkim=s", false, false, NULL,
	    { "mail.example.com", NULL }, { true, false }, 0, FAIL, REJ,
	    D_REJ, false, false, false },
	{ "strict DKIM, same d=", "example.com",
	    "v=DMARC1; p=reject; adkim=s", false, false, NULL,
	    { "EXAMPLE.com", NULL }, { true, false }, 0, PASS, REJ, D_NONE,
	    false, true, false },
	{ "strict SPF, subdomain", "example.com",
	    "v=DMARC1; p=reject; aspf=s", false, true, "mail.example.com",
	    { NULL, NULL }, { false, false }, 0, FAIL, REJ, D_REJ, false,
	    false, false },
	{ "strict SPF, relaxed DKIM", "example.com",
	    "v=DMARC1; p=reject; aspf=s", false, true, "mail.example.com",
	    { "mail.example.com", NULL }, { true, false }, 0, PASS, REJ,
	    D_NONE, false, true, false },
	{ "strict SPF, same domain", "mail.example.com",
	    "v=DMARC1; p=reject; aspf=s", true, true, "mail.example.com",
	    { NULL, NULL }, { false, false }, 0, PASS, REJ, D_NONE, true,
	    false, false },
	/* pct. */
	{ "pct=0 reject", "example.com", "v=DMARC1; p=reject; pct=0", false,
	    false, NULL, { NULL, NULL }, { false, false }, 0, FAIL, REJ,
	    D_QUAR, false, false, true },
	{ "pct=0 quarantine", "example.com", "v=DMARC1; p=quarantine; pct=0",
	    false, false, NULL, { NULL, NULL }, { false, false }, 0, FAIL,
	    QUAR, D_NONE, false, false, true },
	{ "pct=100 reject, highest roll", "example.com",
	    "v=DMARC1; p=reject; pct=100", false, false, NULL, { NULL, NULL },
	    { false, false }, 99, FAIL, REJ, D_REJ, false, false, false },
	{ "pct=50, roll 49", "example.com", "v=DMARC1; p=reject; pct=50",
	    false, false, NULL, { NULL, NULL }, { false, false }, 49, FAIL,
	    REJ, D_REJ, false, false, false },
	{ "pct=50, roll 50", "example.com", "v=DMARC1; p=reject; pct=50",
	    false, false, NULL, { NULL, NULL }, { false, false }, 50, FAIL,
	    REJ, D_QUAR, false, false, true },
	{ "pct=0 pass", "example.com", "v=DMARC1; p=reject; pct=0", false,
	    true, "example.com", { NULL, NULL }, { false, false }, 0, PASS,
	    REJ, D_NONE, true, false, false },
	/* Fallback record (invalid p with rua). */
	{ "p=bogus with rua", "example.com",
	    "v=DMARC1; p=bogus; rua=mailto:a@example.com", false, false, NULL,
	    { NULL, NULL }, { false, false }, 0, FAIL, NONE, D_NONE, false,
	    false, false },
	/* No policy. */
	{ "no policy", "example.com", NULL, false, true, "evil.example",
	    { NULL, NULL }, { false, false }, 0, DMARC_RESULT_NONE, UNSET,
	    D_NONE, false, false, false },
};

static void
test_eval_table(void **state)
{
	struct dmarc_policy pol;
	struct dmarc_dkim dk[2];
	struct dmarc_input in;
	struct dmarc_verdict v;
	size_t i, k;

	(void)state;
	for (i = 0; i < nitems(eval_cases); i++) {
		const struct eval_case *c = &eval_cases[i];

		memset(&pol, 0, sizeof(pol));
		if (c->record == NULL)
			pol.status = DMARC_POLICY_ABSENT;
		else {
			pol.status = DMARC_POLICY_FOUND;
			assert_int_equal(parse_exact(c->record, &pol.rec, NULL),
			    0);
		}
		pol.at_org = c->at_org;
		memset(&in, 0, sizeof(in));
		in.from_domain = c->from;
		in.policy = &pol;
		in.spf_pass = c->spf_pass;
		in.spf_domain = c->spf_domain;
		for (k = 0; k < 2 && c->dkim_d[k] != NULL; k++) {
			dk[k].domain = c->dkim_d[k];
			dk[k].pass = c->dkim_pass[k];
		}
		in.dkim = dk;
		in.ndkim = k;
		in.roll = c->roll;
		dmarc_evaluate(&in, &v);
		if (v.result != c->result || v.policy != c->policy ||
		    v.disposition != c->disp || v.spf_aligned != c->spf_al ||
		    v.dkim_aligned != c->dkim_al ||
		    v.sampled_out != c->sampled)
			fail_msg("%s: got %s policy=%s %s spf_al=%d dkim_al=%d "
			    "sampled=%d, want %s policy=%s %s %d %d %d",
			    c->name, dmarc_result_name(v.result),
			    dmarc_request_name(v.policy),
			    dmarc_disposition_name(v.disposition),
			    v.spf_aligned, v.dkim_aligned, v.sampled_out,
			    dmarc_result_name(c->result),
			    dmarc_request_name(c->policy),
			    dmarc_disposition_name(c->disp), c->spf_al,
			    c->dkim_al, c->sampled);
		assert_non_null(v.reason);
		if (v.dkim_aligned)
			assert_true(dk[v.dkim_index].pass);
		dmarc_policy_clear(&pol);
	}
}

static void
test_eval_statuses(void **state)
{
	struct dmarc_policy pol;
	struct dmarc_input in;
	struct dmarc_verdict v;

	(void)state;
	memset(&pol, 0, sizeof(pol));
	memset(&in, 0, sizeof(in));
	in.from_domain = "example.com";
	in.spf_pass = true;
	in.spf_domain = "example.com";
	in.policy = &pol;
	pol.status = DMARC_POLICY_TEMPERROR;
	dmarc_evaluate(&in, &v);
	assert_int_equal(v.result, DMARC_RESULT_TEMPERROR);
	assert_int_equal(v.disposition, DMARC_DISP_NONE);
	pol.status = DMARC_POLICY_PERMERROR;
	dmarc_evaluate(&in, &v);
	assert_int_equal(v.result, DMARC_RESULT_PERMERROR);
	assert_int_equal(v.disposition, DMARC_DISP_NONE);
	in.policy = NULL;
	dmarc_evaluate(&in, &v);
	assert_int_equal(v.result, DMARC_RESULT_NONE);
	assert_string_equal(dmarc_result_name(DMARC_RESULT_TEMPERROR),
	    "temperror");
	assert_string_equal(dmarc_disposition_name(DMARC_DISP_QUARANTINE),
	    "quarantine");
}

/* pct honoured over every roll: exactly pct of 100 rolls enforce. */
static void
test_eval_pct_rolls(void **state)
{
	static const unsigned int pcts[] = { 0, 1, 33, 50, 99, 100 };
	struct dmarc_policy pol;
	struct dmarc_input in;
	struct dmarc_verdict v;
	char txt[64];
	size_t i;
	unsigned int roll, rej, quar;

	(void)state;
	for (i = 0; i < nitems(pcts); i++) {
		memset(&pol, 0, sizeof(pol));
		pol.status = DMARC_POLICY_FOUND;
		snprintf(txt, sizeof(txt), "v=DMARC1; p=reject; pct=%u",
		    pcts[i]);
		assert_int_equal(parse_exact(txt, &pol.rec, NULL), 0);
		memset(&in, 0, sizeof(in));
		in.from_domain = "example.com";
		in.policy = &pol;
		rej = quar = 0;
		for (roll = 0; roll < 100; roll++) {
			in.roll = roll;
			dmarc_evaluate(&in, &v);
			assert_int_equal(v.result, DMARC_RESULT_FAIL);
			rej += v.disposition == DMARC_DISP_REJECT;
			quar += v.disposition == DMARC_DISP_QUARANTINE;
		}
		assert_int_equal(rej, pcts[i]);
		assert_int_equal(quar, 100 - pcts[i]);
		dmarc_policy_clear(&pol);
	}
}

static void
test_verdict_merge(void **state)
{
	struct dmarc_verdict a, b;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.result = DMARC_RESULT_PASS;
	b.result = DMARC_RESULT_FAIL;
	b.disposition = DMARC_DISP_QUARANTINE;
	dmarc_verdict_merge(&a, &b);
	assert_int_equal(a.result, DMARC_RESULT_FAIL);
	assert_int_equal(a.disposition, DMARC_DISP_QUARANTINE);
	b.result = DMARC_RESULT_FAIL;
	b.disposition = DMARC_DISP_REJECT;
	dmarc_verdict_merge(&a, &b);
	assert_int_equal(a.disposition, DMARC_DISP_REJECT);
	b.result = DMARC_RESULT_PASS;
	b.disposition = DMARC_DISP_NONE;
	dmarc_verdict_merge(&a, &b);
	assert_int_equal(a.result, DMARC_RESULT_FAIL);
	assert_int_equal(a.disposition, DMARC_DISP_REJECT);
	/* none outranks pass; pass only when all passed. */
	a.result = DMARC_RESULT_PASS;
	a.disposition = DMARC_DISP_NONE;
	b.result = DMARC_RESULT_NONE;
	dmarc_verdict_merge(&a, &b);
	assert_int_equal(a.result, DMARC_RESULT_NONE);
}

static void
test_verdict_format(void **state)
{
	struct dmarc_policy pol;
	struct dmarc_dkim dk[2] = { { "evil.example", true },
	    { "exa mple.com", false } };
	struct dmarc_input in;
	struct dmarc_verdict v;
	struct buf b;

	(void)state;
	memset(&pol, 0, sizeof(pol));
	pol.status = DMARC_POLICY_FOUND;
	strlcpy(pol.record_domain, "example.com", sizeof(pol.record_domain));
	assert_int_equal(parse_exact("v=DMARC1; p=reject; adkim=s; pct=50",
	    &pol.rec, NULL), 0);
	memset(&in, 0, sizeof(in));
	in.from_domain = "example.com";
	in.policy = &pol;
	in.spf_pass = true;
	in.spf_domain = "bounce.example.com";
	in.dkim = dk;
	in.ndkim = 2;
	in.roll = 10;
	dmarc_evaluate(&in, &v);
	buf_init(&b, 2048);
	assert_int_equal(dmarc_verdict_format(&b, &in, &v), 0);
	assert_string_equal(buf_str(&b), "dmarc from=example.com "
	    "policy_domain=example.com p=reject sp=- pct=50 adkim=s aspf=r "
	    "result=pass disposition=none sampled_out=0 "
	    "spf=bounce.example.com/pass/aligned "
	    "dkim=evil.example/pass/unaligned,exa\\x20mple.com/fail/unaligned");
	buf_free(&b);
	/* Every aligned pass is logged as aligned, not only the first. */
	{
		struct dmarc_dkim two[3] = { { "example.com", true },
		    { "example.com", true }, { "sub.example.com", true } };

		in.dkim = two;
		in.ndkim = 3;
		dmarc_evaluate(&in, &v);
		buf_init(&b, 2048);
		assert_int_equal(dmarc_verdict_format(&b, &in, &v), 0);
		assert_non_null(strstr(buf_str(&b), " dkim=example.com/pass/"
		    "aligned,example.com/pass/aligned,"
		    "sub.example.com/pass/unaligned"));	/* adkim=s */
		buf_free(&b);
		in.dkim = dk;
	}
	/* No policy; a small buffer is refused. */
	pol.status = DMARC_POLICY_ABSENT;
	in.ndkim = 0;
	in.spf_domain = NULL;
	dmarc_evaluate(&in, &v);
	buf_init(&b, 2048);
	assert_int_equal(dmarc_verdict_format(&b, &in, &v), 0);
	assert_string_equal(buf_str(&b), "dmarc from=example.com result=none "
	    "disposition=none sampled_out=0 spf=-/pass/unaligned");
	buf_free(&b);
	buf_init(&b, 20);
	assert_int_equal(dmarc_verdict_format(&b, &in, &v), -1);
	buf_free(&b);
	dmarc_policy_clear(&pol);
}

static void
test_dmarc_authres(void **state)
{
	struct authres *ar = authres_new("mx.example.net");
	struct dmarc_verdict v;
	struct buf b;
	char flat[1024];
	size_t i, o;

	(void)state;
	memset(&v, 0, sizeof(v));
	v.result = DMARC_RESULT_PASS;
	v.policy = DMARC_REQ_REJECT;
	assert_int_equal(dmarc_authres(ar, &v, "example.org"), 0);
	v.result = DMARC_RESULT_FAIL;
	v.disposition = DMARC_DISP_QUARANTINE;
	v.sampled_out = true;
	assert_int_equal(dmarc_authres(ar, &v, "example.com"), 0);
	v.result = DMARC_RESULT_PERMERROR;
	v.policy = DMARC_REQ_UNSET;
	v.reason = "several From: domains";
	assert_int_equal(dmarc_authres(ar, &v, NULL), 0);
	buf_init(&b, 4096);
	assert_int_equal(authres_format(ar, &b), 0);
	for (i = o = 0; buf_str(&b)[i] != '\0'; i++)
		if (buf_str(&b)[i] != '\r' && buf_str(&b)[i] != '\n')
			flat[o++] = buf_str(&b)[i];
	flat[o] = '\0';
	assert_string_equal(flat, "Authentication-Results: mx.example.net; "
	    "dmarc=pass (p=reject) header.from=example.org; dmarc=fail "
	    "(p=reject dis=quarantine pct) header.from=example.com; "
	    "dmarc=permerror (several From: domains)");
	buf_free(&b);
	authres_free(ar);
}

/* ------------------------------------------------------------------ */
/* The author domain. */

/*
 * OpenDMARC's From: table. OpenDMARC takes the first address's domain of
 * anything; we parse RFC 5322 and refuse what readers may show two ways
 * (hdraddr.h), and a second domain is a second domain. The differences,
 * by value: the status we give instead.
 */
struct from_differs {
	const char *value;
	enum dmarc_from_status status;
};

static const struct from_differs from_differs[] = {
	{ "\"Johnson, Joe <joe@joe.com>\" joe@joe.com", DMARC_FROM_INVALID },
	{ "<<<><joe@joe.com>>>", DMARC_FROM_INVALID },
	{ "Joe Johnson <joe@joe.com>, ace@ace.com", DMARC_FROM_MULTIPLE },
	{ "joe@joe.com, ace@ace.com", DMARC_FROM_MULTIPLE },
	{ "Mail From:<joe@joe.com>", DMARC_FROM_INVALID },
	{ "\"( bob@bob.com)\" joe@joe.com", DMARC_FROM_INVALID },
	{ "From: Davide D'Marco <user@blah.com>", DMARC_FROM_INVALID },
};

static void
test_opendmarc_from(void **state)
{
	char path[1024], line[1024], *f[3];
	struct dmarc_from df;
	const char *val;
	size_t i, len;
	int n = 0, same = 0;
	bool differs;
	FILE *fp = conf_open("opendmarc/from-domain-extraction.tsv", path,
	    sizeof(path));

	(void)state;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (line[0] == '#')
			continue;
		assert_int_equal(tsv_split(line, f, 3), 2);
		n++;
		val = f[0];
		len = strlen(val);
		dmarc_from_domains(&val, &len, 1, &df);
		differs = false;
		for (i = 0; i < nitems(from_differs); i++)
			if (strcmp(val, from_differs[i].value) == 0) {
				differs = true;
				if (df.status != from_differs[i].status)
					fail_msg("'%s': got status %d, want %d",
					    val, df.status,
					    from_differs[i].status);
				/* Where we read one domain, it is theirs. */
				if (df.status == DMARC_FROM_ONE)
					assert_string_equal(df.domains[0],
					    f[1]);
			}
		if (differs)
			continue;
		same++;
		if (df.status != DMARC_FROM_ONE ||
		    strcmp(df.domains[0], f[1]) != 0)
			fail_msg("'%s': got status %d '%s', want '%s'", val,
			    df.status, df.domains[0], f[1]);
	}
	fclose(fp);
	print_message("from-domain-extraction.tsv: %d values, %d as "
	    "OpenDMARC, %d documented differences\n", n, same, n - same);
	assert_int_equal(n, 13);
	assert_int_equal(n - same, (int)nitems(from_differs));
}

static void
from_one(const char *v1, const char *v2, struct dmarc_from *df)
{
	const char *vals[2] = { v1, v2 };
	size_t lens[2] = { v1 != NULL ? strlen(v1) : 0,
	    v2 != NULL ? strlen(v2) : 0 };

	dmarc_from_domains(vals, lens, v2 != NULL ? 2 : v1 != NULL ? 1 : 0,
	    df);
}

static void
test_from_domains(void **state)
{
	struct dmarc_from df;
	struct dmarc_verdict v;
	char many[512];
	size_t i;

	(void)state;
	from_one("Alice <alice@Example.COM>", NULL, &df);
	assert_int_equal(df.status, DMARC_FROM_ONE);
	assert_string_equal(df.domains[0], "example.com");
	assert_true(dmarc_from_verdict(&df, DMARC_FROM_DEFAULT, &v));
	/* RFC 5322 3.4.1: a dot-atom does not end in '.'. */
	from_one("alice@example.com.", NULL, &df);
	assert_int_equal(df.status, DMARC_FROM_INVALID);
	/* Two addresses, one domain (any case). */
	from_one("a@example.com, B <b@EXAMPLE.com>", NULL, &df);
	assert_int_equal(df.status, DMARC_FROM_ONE);
	assert_int_equal(df.ndomains, 1);
	/* Two From: fields, one domain. */
	from_one("a@example.com", "b@example.com", &df);
	assert_int_equal(df.status, DMARC_FROM_ONE);
	/* Two domains: rejected by default, evaluated each otherwise. */
	from_one("a@example.com", "b@example.net", &df);
	assert_int_equal(df.status, DMARC_FROM_MULTIPLE);
	assert_int_equal(df.ndomains, 2);
	assert_string_equal(df.domains[1], "example.net");
	assert_false(dmarc_from_verdict(&df, DMARC_FROM_DEFAULT, &v));
	assert_int_equal(v.result, DMARC_RESULT_PERMERROR);
	assert_int_equal(v.disposition, DMARC_DISP_REJECT);
	assert_true(dmarc_from_verdict(&df, DMARC_FROM_REJECT_INVALID, &v));
	from_one("a@example.com, b@sub.example.com", NULL, &df);
	assert_int_equal(df.status, DMARC_FROM_MULTIPLE);
	/* More domains than kept: rejected even when not by default. */
	many[0] = '\0';
	for (i = 0; i < DMARC_FROM_MAX + 2; i++) {
		char one[40];

		snprintf(one, sizeof(one), "%su@d%zu.example", i ? ", " : "",
		    i);
		strlcat(many, one, sizeof(many));
	}
	from_one(many, NULL, &df);
	assert_int_equal(df.status, DMARC_FROM_MULTIPLE);
	assert_int_equal(df.ndomains, DMARC_FROM_MAX + 2);
	assert_false(dmarc_from_verdict(&df, DMARC_FROM_REJECT_INVALID, &v));
	assert_int_equal(v.disposition, DMARC_DISP_REJECT);
	/* None: no field, an empty group. */
	from_one(NULL, NULL, &df);
	assert_int_equal(df.status, DMARC_FROM_NONE);
	assert_false(dmarc_from_verdict(&df, DMARC_FROM_DEFAULT, &v));
	assert_int_equal(v.result, DMARC_RESULT_NONE);
	assert_int_equal(v.disposition, DMARC_DISP_NONE);
	from_one("undisclosed:;", NULL, &df);
	assert_int_equal(df.status, DMARC_FROM_NONE);
	/* Unreadable: like several by default. */
	from_one("alice@example.com <", NULL, &df);
	assert_int_equal(df.status, DMARC_FROM_INVALID);
	assert_false(dmarc_from_verdict(&df, DMARC_FROM_DEFAULT, &v));
	assert_int_equal(v.result, DMARC_RESULT_PERMERROR);
	assert_int_equal(v.disposition, DMARC_DISP_REJECT);
	assert_false(dmarc_from_verdict(&df, DMARC_FROM_REJECT_MULTIPLE, &v));
	assert_int_equal(v.result, DMARC_RESULT_PERMERROR);
	assert_int_equal(v.disposition, DMARC_DISP_NONE);
	from_one("alice@[192.0.2.1]", NULL, &df);
	assert_int_equal(df.status, DMARC_FROM_INVALID);
	from_one("alice@example..com", NULL, &df);
	assert_int_equal(df.status, DMARC_FROM_INVALID);
	from_one("a@example.com", "b@", &df);
	assert_int_equal(df.status, DMARC_FROM_INVALID);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opendmarc_parse),
		cmocka_unit_test(test_record_table),
		cmocka_unit_test(test_record_is_dmarc),
		cmocka_unit_test(test_record_copy),
		cmocka_unit_test(test_record_prefixes),
		cmocka_unit_test(test_record_mutations),
		cmocka_unit_test(test_opendmarc_alignment),
		cmocka_unit_test(test_alignment_table),
		cmocka_unit_test_setup_teardown(test_lookup_from_domain,
		    dns_fixture_setup, dns_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_lookup_org_fallback,
		    dns_fixture_setup, dns_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_lookup_no_second_query,
		    dns_fixture_setup, dns_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_lookup_multiple,
		    dns_fixture_setup, dns_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_lookup_errors,
		    dns_fixture_setup, dns_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_lookup_bad_names,
		    dns_fixture_setup, dns_fixture_teardown),
		cmocka_unit_test_setup_teardown(test_lookup_cancel,
		    dns_fixture_setup, dns_fixture_teardown),
		cmocka_unit_test(test_eval_table),
		cmocka_unit_test(test_eval_statuses),
		cmocka_unit_test(test_eval_pct_rolls),
		cmocka_unit_test(test_verdict_merge),
		cmocka_unit_test(test_verdict_format),
		cmocka_unit_test(test_dmarc_authres),
		cmocka_unit_test(test_opendmarc_from),
		cmocka_unit_test(test_from_domains),
	};

	return cmocka_run_group_tests(tests, setup_psl, teardown_psl);
}
