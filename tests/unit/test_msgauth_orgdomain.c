/*
 * test_msgauth_orgdomain.c: the Organizational Domain (RFC 7489 3.2).
 *
 * The PSL project's own test list (conformance/dmarc/psl/test_psl.txt,
 * 78 active checkPublicSuffix() lines) over the list it comes with: a non-null
 * expectation is our answer 0 with that domain, null is either a public
 * suffix (1, the name itself) or an invalid name (-1). Then our own table:
 * normalisation, the DMARC examples, bounds, and the system's list.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/util.h"
#include "msgauth/orgdomain.h"
#include "testutil.h"

/* conformance/dmarc/psl/NAME (see test_conformance_path()). */
static void
psl_path(char *path, size_t size, const char *name)
{
	char rel[512];

	snprintf(rel, sizeof(rel), "dmarc/psl/%s", name);
	test_conformance_path(path, size, rel);
}

static int
setup_list(void **state)
{
	char path[1024], err[256];

	(void)state;
	psl_path(path, sizeof(path), "public_suffix_list.dat");
	if (orgdomain_load(path, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	return 0;
}

static int
teardown_list(void **state)
{
	(void)state;
	orgdomain_unload();
	return 0;
}

/* 'text' or null at p; returns the position after it, NULL on a bad line. */
static const char *
psl_arg(const char *p, char *out, size_t size, int *isnull)
{
	const char *q;

	while (*p == ' ')
		p++;
	if (strncmp(p, "null", 4) == 0) {
		*isnull = 1;
		out[0] = '\0';
		return p + 4;
	}
	if (*p != '\'' || (q = strchr(p + 1, '\'')) == NULL ||
	    (size_t)(q - p - 1) >= size)
		return NULL;
	*isnull = 0;
	memcpy(out, p + 1, (size_t)(q - p - 1));
	out[q - p - 1] = '\0';
	return q + 1;
}

static void
test_psl_suite(void **state)
{
	char path[1024], line[1024], in[512], want[512], got[ORGDOMAIN_MAX];
	char norm[ORGDOMAIN_MAX];
	int innull, wantnull, r, n = 0, failed = 0;
	const char *p;
	FILE *fp;

	(void)state;
	psl_path(path, sizeof(path), "test_psl.txt");
	if ((fp = fopen(path, "r")) == NULL)
		fail_msg("cannot open %s", path);
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (strncmp(line, "checkPublicSuffix(", 18) != 0)
			continue;
		p = psl_arg(line + 18, in, sizeof(in), &innull);
		assert_non_null(p);
		assert_true(*p == ',');
		p = psl_arg(p + 1, want, sizeof(want), &wantnull);
		assert_non_null(p);
		n++;
		r = orgdomain_get(innull ? NULL : in, got, sizeof(got));
		if (wantnull) {
			/* No registrable domain: a public suffix (then the
			 * name itself) or not a valid name at all. */
			if (r == 1 && orgdomain_normalize(in, norm,
			    sizeof(norm)) == 0 && strcmp(got, norm) == 0)
				continue;
			if (r == -1)
				continue;
			print_error("%s: got %d '%s', want null\n", test_esc(in),
			    r, test_esc(r == -1 ? "" : got));
			failed++;
		} else if (r != 0 || strcmp(got, want) != 0) {
			print_error("%s: got %d '%s', want '%s'\n", test_esc(in),
			    r, test_esc(r == -1 ? "" : got), test_esc(want));
			failed++;
		}
	}
	fclose(fp);
	print_message("test_psl.txt: %d cases, %d failed\n", n, failed);
	/* 82 lines, 4 of them commented out. */
	assert_int_equal(n, 78);
	assert_int_equal(failed, 0);
}

struct org_case {
	const char *in;
	int ret;
	const char *out;	/* when ret != -1 */
};

static const struct org_case org_cases[] = {
	/* The example and its relatives. */
	{ "a.b.example.co.uk", 0, "example.co.uk" },
	{ "example.co.uk", 0, "example.co.uk" },
	{ "co.uk", 1, "co.uk" },
	{ "uk", 1, "uk" },
	{ "A.B.Example.CO.UK.", 0, "example.co.uk" },
	{ "mail.example.com", 0, "example.com" },
	{ "example.com.", 0, "example.com" },
	{ "com", 1, "com" },
	{ "com.", 1, "com" },
	/* Private section entries count (RFC 7489 3.2 uses the list). */
	{ "foo.blogspot.com", 0, "foo.blogspot.com" },
	{ "a.foo.blogspot.com", 0, "foo.blogspot.com" },
	{ "blogspot.com", 1, "blogspot.com" },
	{ "x.foo.github.io", 0, "foo.github.io" },
	/* Underscores (DNS labels may hold them). */
	{ "_dmarc.example.org", 0, "example.org" },
	/* The implicit "*" rule for an unlisted TLD. */
	{ "a.b.example.invalidtld", 0, "example.invalidtld" },
	{ "localhost", 1, "localhost" },
	/* Punycode and its U-label form. */
	{ "www.xn--85x722f.xn--fiqs8s", 0, "xn--85x722f.xn--fiqs8s" },
	{ "www.\xe9\xa3\x9f\xe7\x8b\xae.\xe4\xb8\xad\xe5\x9b\xbd", 0,
	    "\xe9\xa3\x9f\xe7\x8b\xae.\xe4\xb8\xad\xe5\x9b\xbd" },
	/* Invalid names. */
	{ "", -1, NULL },
	{ ".", -1, NULL },
	{ "..", -1, NULL },
	{ ".example.com", -1, NULL },
	{ "example..com", -1, NULL },
	{ "example.com..", -1, NULL },
	{ "exa mple.com", -1, NULL },
	{ "user@example.com", -1, NULL },
	{ "[192.0.2.1]", -1, NULL },
	{ "example.com\n", -1, NULL },
	{ "\xff.example.com", -1, NULL },
	{ "\xc3.example.com", -1, NULL },
};

static void
test_org_table(void **state)
{
	char got[ORGDOMAIN_MAX];
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < nitems(org_cases); i++) {
		const struct org_case *c = &org_cases[i];

		r = orgdomain_get(c->in, got, sizeof(got));
		if (r != c->ret || (r != -1 && strcmp(got, c->out) != 0))
			fail_msg("'%s': got %d '%s', want %d '%s'",
			    test_esc(c->in), r, r == -1 ? "" : test_esc(got),
			    c->ret, c->out != NULL ? c->out : "");
	}
}

static void
test_org_bounds(void **state)
{
	char name[400], got[ORGDOMAIN_MAX], small[8];
	size_t i;

	(void)state;
	/* A 63-octet label is fine, 64 is not. */
	memset(name, 'a', 63);
	strlcpy(name + 63, ".example.com", sizeof(name) - 63);
	assert_int_equal(orgdomain_get(name, got, sizeof(got)), 0);
	assert_string_equal(got, "example.com");
	memset(name, 'a', 64);
	strlcpy(name + 64, ".example.com", sizeof(name) - 64);
	assert_int_equal(orgdomain_get(name, got, sizeof(got)), -1);
	/* 253 octets in all is fine (plus a trailing dot), 254 not. */
	for (i = 0; i < 241; i += 2) {
		name[i] = 'a';
		name[i + 1] = '.';
	}
	strlcpy(name + 242, "example.com", sizeof(name) - 242);
	assert_int_equal(strlen(name), 253);
	assert_int_equal(orgdomain_get(name, got, sizeof(got)), 0);
	strlcat(name, ".", sizeof(name));
	assert_int_equal(orgdomain_get(name, got, sizeof(got)), 0);
	name[0] = 'b';
	memmove(name + 1, name, strlen(name) + 1);
	name[strlen(name) - 1] = '\0';
	assert_int_equal(strlen(name), 254);
	assert_int_equal(orgdomain_get(name, got, sizeof(got)), -1);
	/* Output too small. */
	assert_int_equal(orgdomain_get("a.example.com", small, sizeof(small)),
	    -1);
	assert_int_equal(orgdomain_get("a.example.com", small, 0), -1);
}

static void
test_org_same(void **state)
{
	(void)state;
	assert_true(orgdomain_same("a.example.com", "B.EXAMPLE.COM."));
	assert_true(orgdomain_same("example.com", "x.y.example.com"));
	assert_false(orgdomain_same("example.com", "example.net"));
	assert_false(orgdomain_same("a.co.uk", "b.co.uk"));
	/* A public suffix is its own organizational domain only. */
	assert_false(orgdomain_same("co.uk", "example.co.uk"));
	assert_true(orgdomain_same("co.uk", "CO.UK"));
	assert_false(orgdomain_same("", ""));
	assert_false(orgdomain_same(".example.com", "example.com"));
}

/* The system's list (package publicsuffix), loaded by default. */
static void
test_org_default_list(void **state)
{
	char got[ORGDOMAIN_MAX], err[256];

	(void)state;
	orgdomain_unload();
	assert_int_equal(orgdomain_get("a.b.example.co.uk", got, sizeof(got)),
	    0);
	assert_string_equal(got, "example.co.uk");
	assert_int_equal(orgdomain_load("/nonexistent/psl.dat", err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/psl.dat"));
	/* The list in use survives a failed load. */
	assert_int_equal(orgdomain_get("x.example.com", got, sizeof(got)), 0);
	assert_string_equal(got, "example.com");
	assert_int_equal(orgdomain_load(NULL, err, sizeof(err)), 0);
	assert_int_equal(orgdomain_get("x.a.github.io", got, sizeof(got)), 0);
	assert_string_equal(got, "a.github.io");
}

static void *
org_thread(void *arg)
{
	char got[ORGDOMAIN_MAX];
	int i, *bad = arg;

	for (i = 0; i < 200; i++)
		if (orgdomain_get("a.b.example.co.uk", got, sizeof(got)) != 0 ||
		    strcmp(got, "example.co.uk") != 0)
			(*bad)++;
	return NULL;
}

/* Threads asking first all at once: one lazy load, the same answers
 * (run under ASan or TSan to see a list freed under a reader). */
static void
test_org_threads(void **state)
{
	pthread_t t[8];
	int bad[8] = { 0 };
	size_t i;

	(void)state;
	orgdomain_unload();
	for (i = 0; i < nitems(t); i++)
		assert_int_equal(pthread_create(&t[i], NULL, org_thread,
		    &bad[i]), 0);
	for (i = 0; i < nitems(t); i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(bad[i], 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_psl_suite),
		cmocka_unit_test(test_org_table),
		cmocka_unit_test(test_org_bounds),
		cmocka_unit_test(test_org_same),
		cmocka_unit_test(test_org_default_list),
		cmocka_unit_test(test_org_threads),
	};

	return cmocka_run_group_tests(tests, setup_list, teardown_list);
}
