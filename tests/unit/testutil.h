/*
 * testutil.h: small helpers shared by the cmocka tests. Include after
 * <cmocka.h> (and its prerequisites). Everything is static inline, so a
 * test that uses none of it pays nothing.
 */
#ifndef PETREL_TESTS_TESTUTIL_H
#define PETREL_TESTS_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Printable form of s[0..n) for failure messages: CR and LF as \r and \n,
 * other control bytes, non-ASCII and '\' as \xNN. Two static buffers in
 * rotation, so two results may appear in one message.
 */
static inline const char *
test_escn(const char *s, size_t n)
{
	static char b[2][4096];
	static int which;
	char *o = b[which ^= 1];
	size_t i, k = 0;

	for (i = 0; i < n && k < sizeof(b[0]) - 8; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r')
			k += (size_t)snprintf(o + k, 8, "\\r");
		else if (c == '\n')
			k += (size_t)snprintf(o + k, 8, "\\n");
		else if (c < 32 || c > 126 || c == '\\')
			k += (size_t)snprintf(o + k, 8, "\\x%02x", c);
		else
			o[k++] = (char)c;
	}
	o[k] = '\0';
	return o;
}

static inline const char *
test_esc(const char *s)
{
	return test_escn(s, strlen(s));
}

#ifdef PETREL_CONFORMANCE_DIR
/*
 * The path of a conformance file, rel relative to conformance/ (as in
 * ../shared/conformance): the unchanged copy in tests/data/conformance,
 * which is what CI has. $PETREL_CONFORMANCE_DIR overrides the built-in
 * directory.
 */
static inline const char *
test_conformance_path(char *buf, size_t size, const char *rel)
{
	const char *dir = getenv("PETREL_CONFORMANCE_DIR");

	if (dir == NULL || *dir == '\0')
		dir = PETREL_CONFORMANCE_DIR;
	snprintf(buf, size, "%s/%s", dir, rel);
	return buf;
}
#endif

/*
 * An exact-size heap copy of s[0..n) plus NUL: a parser that reads one
 * byte too far then trips ASan or valgrind.
 */
static inline char *
test_dup_exact(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	assert_non_null(p);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static inline void
test_assert_str_or_null(const char *got, const char *want)
{
	if (want == NULL) {
		assert_null(got);
		return;
	}
	assert_non_null(got);
	assert_string_equal(got, want);
}

#endif
