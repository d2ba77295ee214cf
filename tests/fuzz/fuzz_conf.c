/*
 * fuzz_conf.c: libFuzzer target for the configuration parser of
 * src/conf/conf.c: conf_load() on the whole input as a file, and
 * conf_route_parse() on its first line (relayhost and transport forms).
 *
 * conf.h has no in-memory entry point, so the input goes into a memfd
 * created once (no file on disk, nothing left behind) and conf_load()
 * opens it as /proc/self/fd/N. A directive that names another file
 * (`transport`, the TLS and DKIM paths) makes conf_load() read that file
 * or look at it: inputs naming /dev, /proc or /sys are skipped so that a
 * run never blocks on a device or reads without end from /dev/zero.
 *
 * Invariants checked (a failure aborts; conf_load() itself must never
 * exit or abort on a bad file):
 *   - conf_load() returns a conf exactly when no error was reported;
 *   - a loaded conf has at least one listen address and one domain (its
 *     host name when the file names none), every domain lower-case, and
 *     retry_max >= retry_initial; the look-ups conf_is_local_domain(),
 *     conf_dkim_key_next() and conf_route_find() run on it; conf_free()
 *     releases everything (LeakSanitizer checks);
 *   - conf_route_parse() gives a text on success and an error message on
 *     failure, and conf_route_clear() frees either.
 */
#include <sys/mman.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

static int memfd = -1;
static char memfd_path[64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if ((memfd = memfd_create("fuzz_conf", MFD_CLOEXEC)) == -1) {
		perror("memfd_create");
		exit(1);
	}
	(void)snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d",
	    memfd);
	return 0;
}

static void
count_error(void *arg, const char *msg)
{
	unsigned int *n = arg;

	CHECK(msg != NULL && msg[0] != '\0');
	(*n)++;
}

static bool
mentions(const uint8_t *data, size_t size, const char *s)
{
	return memmem(data, size, s, strlen(s)) != NULL;
}

static void
check_route(const uint8_t *data, size_t size, bool with_scheme)
{
	struct conf_route r;
	const char *err = NULL;
	char line[512];
	size_t n;

	n = strcspn((const char *)data, "\n");	/* data is NUL-terminated */
	if (n > size)
		n = size;
	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	memcpy(line, data, n);
	line[n] = '\0';
	memset(&r, 0, sizeof(r));
	if (conf_route_parse(line, with_scheme, &r, &err) == 0)
		CHECK(r.text != NULL && r.domain == NULL);
	else
		CHECK(err != NULL);
	conf_route_clear(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf *c;
	const struct conf_dkim_key *k;
	char *z;
	unsigned int nerr = 0;
	size_t i, iter;

	if (size > 16384 || mentions(data, size, "/dev") ||
	    mentions(data, size, "/proc") || mentions(data, size, "/sys"))
		return 0;

	if ((z = malloc(size + 1)) == NULL)
		return 0;
	memcpy(z, data, size);
	z[size] = '\0';
	check_route((const uint8_t *)z, size, true);
	check_route((const uint8_t *)z, size, false);
	free(z);

	if (ftruncate(memfd, 0) == -1 ||
	    pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();	/* the harness, not Petrel */
	c = conf_load(memfd_path, count_error, &nerr);
	CHECK((c == NULL) == (nerr > 0));
	if (c == NULL)
		return 0;
	CHECK(c->nlisten > 0 && c->ndomains > 0);
	for (i = 0; i < c->ndomains; i++) {
		const char *d;

		for (d = c->domains[i]; *d != '\0'; d++)
			CHECK(*d < 'A' || *d > 'Z');
		CHECK(conf_is_local_domain(c, c->domains[i]));
	}
	CHECK(c->retry_max >= c->retry_initial);
	(void)conf_is_local_domain(c, "example.test");
	iter = 0;
	while ((k = conf_dkim_key_next(c, "example.test", &iter)) != NULL)
		CHECK(k->domain != NULL && k->selector != NULL &&
		    k->keyfile != NULL);
	(void)conf_route_find(c, "example.test");
	(void)conf_route_find(c, "sub.example.test");
	conf_free(c);
	return 0;
}
