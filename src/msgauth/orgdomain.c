/*
 * orgdomain.c: the Organizational Domain (RFC 7489 3.2) over libpsl.
 *
 * Entry points: orgdomain_load(), orgdomain_unload(), orgdomain_normalize(),
 * orgdomain_get(), orgdomain_same().
 *
 * RFC 7489 3.2: take the longest public suffix that matches the name
 * (the list's rules, its exceptions and the implicit "*" rule, which is
 * what libpsl's psl_registrable_domain() applies) and add one label to its
 * left. A name that is itself a public suffix has no such label: we answer
 * the name itself and say so (orgdomain.h).
 *
 * SECURITY: the names come from untrusted mail (From:, DKIM d=, MAIL
 * FROM). orgdomain_normalize() bounds and checks them before libpsl reads
 * them; libpsl only reads the NUL-terminated copy. The list itself is a
 * file of the system (root-owned), read once at start-up.
 * STANDARDS: RFC 7489 3.2; RFC 1035 2.3.4 (63-octet labels, and 253
 * octets of presentation form); RFC 3629 (UTF-8 in U-labels).
 * OWNERSHIP: one process-wide psl_ctx_t, replaced by orgdomain_load(),
 * freed by orgdomain_unload(); nothing else is allocated beyond a call
 * (libpsl's lower-cased copy of a non-ASCII name is freed before return).
 */
#include "msgauth/orgdomain.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpsl.h>

#include "lib/log.h"
#include "lib/utf8.h"
#include "lib/util.h"

static pthread_mutex_t orgdomain_lock = PTHREAD_MUTEX_INITIALIZER;
static psl_ctx_t *orgdomain_psl;

/* Read a list: path, or the default file with libpsl's built-in list as
 * the fallback. NULL with a message in err. */
static psl_ctx_t *
orgdomain_read(const char *path, char *err, size_t errlen)
{
	const char *file = path != NULL ? path : ORGDOMAIN_PSL_FILE;
	psl_ctx_t *psl;

	if ((psl = psl_load_file(file)) != NULL)
		return psl;
	if (path != NULL) {
		snprintf(err, errlen, "cannot load the public suffix list %s",
		    file);
		return NULL;
	}
	/* Only when the package is missing: a list from libpsl's build,
	 * older than the system's. psl_free() ignores it. */
	if ((psl = (psl_ctx_t *)psl_builtin()) == NULL) {
		snprintf(err, errlen, "cannot load the public suffix list %s "
		    "and libpsl has no built-in list", file);
		return NULL;
	}
	log_warn("orgdomain: cannot read %s (package publicsuffix?), using "
	    "libpsl's built-in list", file);
	return psl;
}

int
orgdomain_load(const char *path, char *err, size_t errlen)
{
	psl_ctx_t *psl, *old;

	if ((psl = orgdomain_read(path, err, errlen)) == NULL)
		return -1;
	pthread_mutex_lock(&orgdomain_lock);
	old = orgdomain_psl;
	orgdomain_psl = psl;
	pthread_mutex_unlock(&orgdomain_lock);
	psl_free(old);
	return 0;
}

void
orgdomain_unload(void)
{
	pthread_mutex_lock(&orgdomain_lock);
	psl_free(orgdomain_psl);
	orgdomain_psl = NULL;
	pthread_mutex_unlock(&orgdomain_lock);
}

/*
 * The list in use, loading the default one the first time. The load
 * happens under the lock, so that two threads asking first cannot both
 * load and one free the list the other is reading.
 */
static const psl_ctx_t *
orgdomain_list(void)
{
	const psl_ctx_t *psl;
	char err[256];

	pthread_mutex_lock(&orgdomain_lock);
	if (orgdomain_psl == NULL &&
	    (orgdomain_psl = orgdomain_read(NULL, err, sizeof(err))) == NULL)
		log_err("orgdomain: %s", err);
	psl = orgdomain_psl;
	pthread_mutex_unlock(&orgdomain_lock);
	return psl;
}

int
orgdomain_normalize(const char *domain, char *out, size_t size)
{
	size_t len, i, label = 0, n;
	bool ascii = true;
	char *lower = NULL;
	unsigned char c;

	if (domain == NULL || size == 0)
		return -1;
	len = strnlen(domain, ORGDOMAIN_MAX + 1);
	/* One trailing dot: the absolute form of the same name. */
	if (len > 1 && domain[len - 1] == '.')
		len--;
	if (len == 0 || len > ORGDOMAIN_MAX - 1 || len >= size)
		return -1;
	for (i = 0; i < len; i++) {
		c = (unsigned char)domain[i];
		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
			continue;
		}
		if (c >= 0x80) {
			if ((n = utf8_seq_len(domain + i)) == 0 ||
			    i + n > len)
				return -1;
			ascii = false;
			i += n - 1;
			label += n;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_')
			label++;
		else
			return -1;
		if (label > 63)
			return -1;
	}
	if (label == 0)
		return -1;
	memcpy(out, domain, len);
	out[len] = '\0';
	ascii_lowercase(out);
	if (ascii)
		return 0;
	/* U-labels: libpsl's lower-casing (libidn2/ICU), then the same
	 * bounds again since case mapping may change the length. */
	if (psl_str_to_utf8lower(out, "utf-8", NULL, &lower) != PSL_SUCCESS ||
	    lower == NULL) {
		psl_free_string(lower);
		return -1;
	}
	if (strlcpy(out, lower, size) >= size || strlen(lower) > 253) {
		psl_free_string(lower);
		return -1;
	}
	psl_free_string(lower);
	return 0;
}

int
orgdomain_get(const char *domain, char *out, size_t size)
{
	char name[ORGDOMAIN_MAX];
	const psl_ctx_t *psl;
	const char *reg;

	if (orgdomain_normalize(domain, name, sizeof(name)) == -1)
		return -1;
	if ((psl = orgdomain_list()) == NULL)
		return -1;
	if ((reg = psl_registrable_domain(psl, name)) == NULL) {
		/* A public suffix itself (RFC 7489 3.2 step 4 has no label
		 * to add): its own Organizational Domain. */
		if (strlcpy(out, name, size) >= size)
			return -1;
		return 1;
	}
	if (strlcpy(out, reg, size) >= size)
		return -1;
	return 0;
}

bool
orgdomain_same(const char *a, const char *b)
{
	char oa[ORGDOMAIN_MAX], ob[ORGDOMAIN_MAX];

	if (orgdomain_get(a, oa, sizeof(oa)) == -1 ||
	    orgdomain_get(b, ob, sizeof(ob)) == -1)
		return false;
	return strcmp(oa, ob) == 0;
}
