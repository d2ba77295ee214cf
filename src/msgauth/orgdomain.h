/*
 * orgdomain.h: the Organizational Domain of RFC 7489 3.2, from the Public
 * Suffix List (libpsl over Debian's `publicsuffix` package).
 *
 *   orgdomain_load(NULL, err, sizeof(err));      (at start-up; optional)
 *   orgdomain_get("a.b.example.co.uk", out, sizeof(out));
 *        -> 0, out = "example.co.uk"
 *
 * The list is process-wide and read-only once loaded: orgdomain_get() is
 * safe from any thread, orgdomain_load() and orgdomain_unload() are not
 * (call them at start-up or shut-down, while no other thread looks up).
 * orgdomain_get() without an earlier orgdomain_load() loads the default
 * list itself, once.
 *
 * SECURITY: the domain is untrusted (a From: header, a DKIM d=, a MAIL
 * FROM): it is checked (labels of 1-63 octets, 253 in all, letters,
 * digits, '-', '_', well-formed UTF-8) before libpsl sees it.
 * STANDARDS: RFC 7489 3.2; https://publicsuffix.org/list/ (the algorithm,
 * its implicit "*" rule and "!" exceptions, as libpsl implements them).
 */
#ifndef PETREL_MSGAUTH_ORGDOMAIN_H
#define PETREL_MSGAUTH_ORGDOMAIN_H

#include <stdbool.h>
#include <stddef.h>

/* Debian's copy of the list (package `publicsuffix`). */
#define ORGDOMAIN_PSL_FILE	"/usr/share/publicsuffix/public_suffix_list.dat"

/* Room for any result: a 253-octet name plus NUL. */
#define ORGDOMAIN_MAX		254

/*
 * Load the list from path (NULL: ORGDOMAIN_PSL_FILE), replacing the one
 * in use. Loading an explicit file, not libpsl's newest-of-several, keeps
 * the answers reproducible. When path is NULL and that file cannot be
 * read, libpsl's built-in list is used instead and a warning logged.
 * Returns 0, or -1 with a message in err (the previous list stays).
 */
int orgdomain_load(const char *path, char *err, size_t errlen);

/* Free the list (tests, shut-down). The next orgdomain_get() reloads. */
void orgdomain_unload(void);

/*
 * Normalise domain into out (size bytes): ASCII letters lower-cased (and
 * non-ASCII ones through libpsl's UTF-8 lower-casing), one trailing dot
 * removed. Returns 0, or -1 when domain is not a valid name (empty, an
 * empty label, a label over 63 octets, over 253 octets, a character other
 * than letters, digits, '-', '_' and well-formed UTF-8) or does not fit.
 */
int orgdomain_normalize(const char *domain, char *out, size_t size);

/*
 * The Organizational Domain of domain into out (size bytes, normalised as
 * above). Returns:
 *    0  out is the registrable domain: the longest matching public suffix
 *       plus one label (RFC 7489 3.2 steps 3-5);
 *    1  domain is itself a public suffix ("com", "co.uk", or a lone
 *       unlisted label under the implicit "*" rule): RFC 7489 3.2 has no
 *       label x+1 to add, so out is the domain itself. It is then its own
 *       Organizational Domain: it aligns only with itself and policy
 *       discovery has no other place to look (what OpenDMARC does too);
 *   -1  domain is not a valid name, out is too small, or no list could be
 *       loaded.
 */
int orgdomain_get(const char *domain, char *out, size_t size);

/* True when a and b are valid names with the same Organizational Domain. */
bool orgdomain_same(const char *a, const char *b);

#endif
