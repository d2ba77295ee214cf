/*
 * smuggling_variants.h: the fake end-of-data sequences of the public SMTP
 * smuggling scanners, for the unit tests that feed them to the DATA
 * reader (test_smtp_data.c) and to the client (test_client.c). They come
 * from the shared conformance file smuggling-eod-variants.json, never
 * from a list of our own: the unchanged copy of ../shared/conformance in
 * tests/data/conformance/smtp/ (CI has no ../shared).
 * Include after <cmocka.h> (and its prerequisites).
 *
 * Entry point: smuggling_variants_load().
 */
#ifndef PETREL_TESTS_SMUGGLING_VARIANTS_H
#define PETREL_TESTS_SMUGGLING_VARIANTS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMUGGLING_VARIANTS_FILE	"smuggling-eod-variants.json"
#define SMUGGLING_VARIANTS_MAX	64
/* 10 from hannob/smtpsmug, 7 + 9 from SEC Consult: fewer is a bad read. */
#define SMUGGLING_VARIANTS_MIN	26

struct smuggling_variant {
	char name[96];		/* "key[index]", for failure messages */
	char bytes[32];
	size_t len;
};

/* The whole file at path, NUL-terminated; NULL if it cannot be read. */
static inline char *
smuggling_read_file(const char *path, size_t *len_r)
{
	FILE *fp;
	char *p;
	long n;

	if ((fp = fopen(path, "rb")) == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 ||
	    fseek(fp, 0, SEEK_SET) != 0) {
		fclose(fp);
		return NULL;
	}
	p = malloc((size_t)n + 1);
	assert_non_null(p);
	if (fread(p, 1, (size_t)n, fp) != (size_t)n) {
		free(p);
		fclose(fp);
		return NULL;
	}
	p[n] = '\0';
	fclose(fp);
	*len_r = (size_t)n;
	return p;
}

/*
 * The file's text, from the copy in tests/data/conformance (see
 * test_conformance_path()). The path read is left in path (for the log).
 */
static inline char *
smuggling_variants_text(char *path, size_t pathsize)
{
	size_t len;

	test_conformance_path(path, pathsize, "smtp/" SMUGGLING_VARIANTS_FILE);
	return smuggling_read_file(path, &len);
}

/*
 * A JSON string at p (just past its opening quote), decoded into out;
 * returns the position after the closing quote. Handles the escapes the
 * file uses (\n \r \t \" \\ \/ \uXXXX below U+0800, as UTF-8).
 */
static inline const char *
smuggling_json_string(const char *p, char *out, size_t outsize,
    size_t *len_r)
{
	size_t o = 0;
	unsigned int u;
	char c;

	while (*p != '"') {
		assert_true(*p != '\0');
		c = *p++;
		if (c == '\\') {
			c = *p++;
			switch (c) {
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u':
				assert_int_equal(sscanf(p, "%4x", &u), 1);
				p += 4;
				assert_true(u < 0x800);
				if (u >= 0x80) {
					if (o + 1 < outsize)
						out[o++] = (char)(0xc0 |
						    (u >> 6));
					u = 0x80 | (u & 0x3f);
				}
				c = (char)u;
				break;
			default:
				break;	/* \" \\ \/ */
			}
		}
		if (o + 1 < outsize)
			out[o++] = c;
	}
	out[o] = '\0';
	*len_r = o;
	return p + 1;
}

/*
 * Fills v[0..max) with the variants and returns how many there are; fails
 * the test if the file cannot be read or holds fewer than
 * SMUGGLING_VARIANTS_MIN. Every string value in the file except the
 * "_about" text is a variant, named after its key (and its index in an
 * array). A tiny ad hoc reader: strings followed by ':' are keys.
 */
static inline size_t
smuggling_variants_load(struct smuggling_variant *v, size_t max)
{
	char path[4096], key[64] = "", s[2048];
	const char *p;
	size_t n = 0, len, idx = 0;
	char *text;

	text = smuggling_variants_text(path, sizeof(path));
	if (text == NULL)
		fail_msg("cannot read " SMUGGLING_VARIANTS_FILE
		    " (PETREL_SOURCE_DIR=%s)", getenv("PETREL_SOURCE_DIR") ?
		    getenv("PETREL_SOURCE_DIR") : "(unset)");
	for (p = text; *p != '\0';) {
		if (*p != '"') {
			if (*p == '[')
				idx = 0;
			p++;
			continue;
		}
		p = smuggling_json_string(p + 1, s, sizeof(s), &len);
		while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
			p++;
		if (*p == ':') {
			if (len >= sizeof(key))
				len = sizeof(key) - 1;
			memcpy(key, s, len);
			key[len] = '\0';
			idx = 0;
			continue;
		}
		if (strcmp(key, "_about") == 0)
			continue;
		assert_true(n < max);
		assert_true(len < sizeof(v[n].bytes));
		snprintf(v[n].name, sizeof(v[n].name), "%s[%zu]", key, idx++);
		memcpy(v[n].bytes, s, len);
		v[n].len = len;
		n++;
	}
	free(text);
	if (n < SMUGGLING_VARIANTS_MIN)
		fail_msg("%s: %zu variants, want at least %d", path, n,
		    SMUGGLING_VARIANTS_MIN);
	print_message("%s: %zu smuggling variants\n", path, n);
	return n;
}

#endif
