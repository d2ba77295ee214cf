/*
 * selfsigned.c: the certificate Petrel uses when none is configured, so
 * that STARTTLS works out of the box (opportunistic TLS, RFC 7435: SMTP
 * clients rarely verify, and encryption without authentication still
 * beats plain text).
 *
 * Entry point: tls_selfsigned_ensure().
 *
 * Made once and kept: DIR/tls/selfsigned.key and DIR/tls/selfsigned.pem.
 * RSA 2048 rather than EC: every TLS 1.2 client handles RSA, and a key
 * made once per installation makes its generation time irrelevant.
 *
 * SECURITY: usually runs as root before the privilege drop, in a spool
 * the daemon's user owns. So nothing here follows a symlink: DIR/tls is
 * opened O_NOFOLLOW, files are reached with *at() calls from that
 * descriptor and created O_EXCL | O_NOFOLLOW, mode 0600. The hostname is
 * checked to be a plain DNS name before it goes into the certificate.
 * STANDARDS: RFC 5280 (4.1.2.2 serial: positive, at most 20 octets;
 * 4.2.1.6 subjectAltName; 4.2.1.9 basicConstraints; 4.2.1.3 keyUsage),
 * RFC 6125 (names in the SAN).
 * OWNERSHIP: returns paths the caller frees; keys and certificates are
 * freed here.
 */
#include "tls/tls.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/util.h"
#include "tls/tls_private.h"

#define TLS_SS_BITS		2048
#define TLS_SS_SERIAL_BITS	127	/* positive, < 2^127: 16 octets */
#define TLS_SS_BACKDATE		3600	/* seconds: clients with slow clocks */
#define TLS_SS_CN_MAX		64	/* RFC 5280 ub-common-name */
#define TLS_SS_HOST_MAX		253

static bool
tls_ss_host_valid(const char *host)
{
	size_t len = strlen(host), i;

	if (len == 0 || len > TLS_SS_HOST_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char c = host[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.'))
			return false;
	}
	return true;
}

static int
tls_ss_add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *ext;
	int r;

	if ((ext = X509V3_EXT_nconf_nid(NULL, v3, nid, value)) == NULL)
		return -1;
	r = X509_add_ext(x, ext, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(ext);
	return r;
}

/* subjectAltName dNSName=host, built directly: no config-string parsing. */
static int
tls_ss_add_san(X509 *x, const char *host)
{
	GENERAL_NAMES *gens = NULL;
	GENERAL_NAME *gen = NULL;
	ASN1_IA5STRING *ia5 = NULL;
	int r = -1;

	if ((gens = sk_GENERAL_NAME_new_null()) == NULL ||
	    (gen = GENERAL_NAME_new()) == NULL ||
	    (ia5 = ASN1_IA5STRING_new()) == NULL ||
	    ASN1_STRING_set(ia5, host, (int)strlen(host)) != 1)
		goto done;
	GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
	ia5 = NULL;
	if (sk_GENERAL_NAME_push(gens, gen) <= 0)
		goto done;
	gen = NULL;
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
	    X509V3_ADD_DEFAULT) == 1)
		r = 0;
done:
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gen);
	GENERAL_NAMES_free(gens);
	return r;
}

/* A fresh key and a self-signed certificate for host. */
static int
tls_ss_make(const char *host, EVP_PKEY **key_r, X509 **cert_r)
{
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	X509_NAME *name;
	X509V3_CTX v3;
	BIGNUM *serial = NULL;

	if ((key = EVP_RSA_gen(TLS_SS_BITS)) == NULL ||
	    (x = X509_new()) == NULL || (serial = BN_new()) == NULL)
		goto fail;
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    BN_rand(serial, TLS_SS_SERIAL_BITS, BN_RAND_TOP_ANY,
	    BN_RAND_BOTTOM_ODD) != 1 ||
	    BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) == NULL)
		goto fail;
	if (X509_gmtime_adj(X509_getm_notBefore(x), -TLS_SS_BACKDATE) ==
	    NULL || X509_time_adj_ex(X509_getm_notAfter(x),
	    TLS_SELFSIGNED_DAYS, 0, NULL) == NULL)
		goto fail;
	name = X509_get_subject_name(x);
	/* Names longer than a CN may be are in the SAN alone. */
	if (strlen(host) <= TLS_SS_CN_MAX &&
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)host, -1, -1, 0) != 1)
		goto fail;
	if (X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, key) != 1)
		goto fail;
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	if (tls_ss_add_ext(x, &v3, NID_basic_constraints,
	    "critical,CA:FALSE") == -1 ||
	    tls_ss_add_ext(x, &v3, NID_key_usage,
	    "critical,digitalSignature,keyEncipherment") == -1 ||
	    tls_ss_add_ext(x, &v3, NID_ext_key_usage, "serverAuth") == -1 ||
	    tls_ss_add_ext(x, &v3, NID_subject_key_identifier, "hash") == -1 ||
	    tls_ss_add_san(x, host) == -1)
		goto fail;
	if (X509_sign(x, key, EVP_sha256()) <= 0)
		goto fail;
	BN_free(serial);
	*key_r = key;
	*cert_r = x;
	return 0;

fail:
	BN_free(serial);
	X509_free(x);
	EVP_PKEY_free(key);
	return -1;
}

/*
 * Write data to DIR/tls/NAME through NAME.tmp: created 0600 O_EXCL,
 * chowned, fsync'd, closed with a check, renamed over NAME.
 */
static int
tls_ss_write(int tfd, const char *tlsdir, const char *name, const void *data,
    size_t len, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	char tmp[64];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	if (unlinkat(tfd, tmp, 0) == -1 && errno != ENOENT)
		goto fail_errno;
	fd = openat(tfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd == -1)
		goto fail_errno;
	if (fchmod(fd, 0600) == -1 ||
	    ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
	    fchown(fd, uid, gid) == -1) ||
	    write_all(fd, data, len) == -1 || fsync(fd) == -1) {
		int saved = errno;

		close(fd);
		unlinkat(tfd, tmp, 0);
		errno = saved;
		goto fail_errno;
	}
	if (close(fd) == -1) {
		int saved = errno;

		unlinkat(tfd, tmp, 0);
		errno = saved;
		goto fail_errno;
	}
	if (renameat(tfd, tmp, tfd, name) == -1) {
		int saved = errno;

		unlinkat(tfd, tmp, 0);
		errno = saved;
		goto fail_errno;
	}
	return 0;

fail_errno:
	snprintf(err, errlen, "%s/%s: %s", tlsdir, name, strerror(errno));
	return -1;
}

/* PEM of key or certificate into a heap buffer (wiped by the caller). */
static int
tls_ss_pem(EVP_PKEY *key, X509 *cert, struct tls_blob *out)
{
	BIO *bio;
	char *p = NULL;
	long n;
	bool ok;
	int r = -1;

	out->data = NULL;
	out->len = 0;
	if ((bio = BIO_new(BIO_s_mem())) == NULL)
		return -1;
	if (key != NULL)
		ok = PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL,
		    NULL) == 1;
	else
		ok = PEM_write_bio_X509(bio, cert) == 1;
	n = BIO_get_mem_data(bio, &p);
	if (ok && n > 0) {
		out->data = xmalloc((size_t)n);
		memcpy(out->data, p, (size_t)n);
		out->len = (size_t)n;
		r = 0;
	}
	/* A memory BIO frees with OPENSSL_free: wipe the key copy first. */
	if (key != NULL && n > 0)
		OPENSSL_cleanse(p, (size_t)n);
	BIO_free(bio);
	return r;
}

static int
tls_ss_generate(int tfd, const char *tlsdir, const char *host, uid_t uid,
    gid_t gid, char *err, size_t errlen)
{
	struct tls_blob kpem = { NULL, 0 }, cpem = { NULL, 0 };
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	int r = -1;

	if (tls_ss_make(host, &key, &cert) == -1 ||
	    tls_ss_pem(key, NULL, &kpem) == -1 ||
	    tls_ss_pem(NULL, cert, &cpem) == -1) {
		snprintf(err, errlen, "%s/%s: cannot generate: %s", tlsdir,
		    TLS_SELFSIGNED_CERT, tls_ssl_reason("failed"));
		goto done;
	}
	/*
	 * Key first: a crash between the renames leaves a new key and no
	 * certificate (or an old one), which the next start regenerates.
	 */
	if (tls_ss_write(tfd, tlsdir, TLS_SELFSIGNED_KEY, kpem.data, kpem.len,
	    uid, gid, err, errlen) == -1 ||
	    tls_ss_write(tfd, tlsdir, TLS_SELFSIGNED_CERT, cpem.data,
	    cpem.len, uid, gid, err, errlen) == -1)
		goto done;
	if (fsync(tfd) == -1) {
		snprintf(err, errlen, "%s: fsync: %s", tlsdir,
		    strerror(errno));
		goto done;
	}
	r = 0;
done:
	tls_blob_free(&kpem);
	tls_blob_free(&cpem);
	X509_free(cert);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return r;
}

/* Both files parse and the key matches: 0; else -1 with err. */
static int
tls_ss_check(int tfd, const char *certpath, const char *keypath, char *err,
    size_t errlen)
{
	struct tls_blob blob;
	STACK_OF(X509) *chain = NULL;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	int r = -1;

	if (tls_blob_read(tfd, TLS_SELFSIGNED_CERT, O_NOFOLLOW, certpath,
	    &blob, err, errlen) == -1)
		return -1;
	r = tls_pem_parse_cert(&blob, certpath, &cert, &chain, err, errlen);
	tls_blob_free(&blob);
	if (r == -1)
		return -1;
	r = -1;
	if (tls_blob_read(tfd, TLS_SELFSIGNED_KEY, O_NOFOLLOW, keypath, &blob,
	    err, errlen) == -1)
		goto done;
	if (tls_pem_parse_key(&blob, keypath, &key, err, errlen) == 0) {
		if (X509_check_private_key(cert, key) == 1)
			r = 0;
		else
			snprintf(err, errlen, "%s: the key does not match the "
			    "certificate in %s", keypath, certpath);
	}
	tls_blob_free(&blob);
done:
	EVP_PKEY_free(key);
	X509_free(cert);
	sk_X509_pop_free(chain, X509_free);
	ERR_clear_error();
	return r;
}

int
tls_selfsigned_ensure(const char *dir, const char *hostname, uid_t uid,
    gid_t gid, char **cert_r, char **key_r, bool *created_r, char *err,
    size_t errlen)
{
	struct stat cst, kst;
	char *tlsdir, *certpath, *keypath;
	bool have_cert, have_key, made_dir = false;
	int dfd = -1, tfd = -1, r = -1;

	*cert_r = *key_r = NULL;
	*created_r = false;
	tlsdir = xasprintf("%s/%s", dir, TLS_SELFSIGNED_DIR);
	certpath = xasprintf("%s/%s", tlsdir, TLS_SELFSIGNED_CERT);
	keypath = xasprintf("%s/%s", tlsdir, TLS_SELFSIGNED_KEY);
	if (!tls_ss_host_valid(hostname)) {
		snprintf(err, errlen, "%s: hostname \"%.64s\" is not a plain "
		    "DNS name", certpath, hostname);
		goto done;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		goto done;
	}
	if (mkdirat(dfd, TLS_SELFSIGNED_DIR, 0700) == 0)
		made_dir = true;
	else if (errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", tlsdir, strerror(errno));
		goto done;
	}
	tfd = openat(dfd, TLS_SELFSIGNED_DIR,
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (tfd == -1) {
		int saved = errno;

		/* Linux says ENOTDIR, not ELOOP, for O_DIRECTORY. */
		if ((saved == ELOOP || saved == ENOTDIR) &&
		    fstatat(dfd, TLS_SELFSIGNED_DIR, &cst,
		    AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(cst.st_mode))
			snprintf(err, errlen, "%s: is a symbolic link",
			    tlsdir);
		else
			snprintf(err, errlen, "%s: %s", tlsdir,
			    strerror(saved));
		goto done;
	}
	if (made_dir) {
		if ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
		    fchown(tfd, uid, gid) == -1) {
			snprintf(err, errlen, "%s: chown: %s", tlsdir,
			    strerror(errno));
			goto done;
		}
		if (fsync(dfd) == -1) {
			snprintf(err, errlen, "%s: fsync: %s", dir,
			    strerror(errno));
			goto done;
		}
	}

	have_cert = fstatat(tfd, TLS_SELFSIGNED_CERT, &cst,
	    AT_SYMLINK_NOFOLLOW) == 0;
	if (!have_cert && errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", certpath, strerror(errno));
		goto done;
	}
	have_key = fstatat(tfd, TLS_SELFSIGNED_KEY, &kst,
	    AT_SYMLINK_NOFOLLOW) == 0;
	if (!have_key && errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", keypath, strerror(errno));
		goto done;
	}
	if (have_cert && have_key) {
		/* Unusable files are the operator's to look at. */
		if (tls_ss_check(tfd, certpath, keypath, err, errlen) == -1) {
			size_t len = strlen(err);

			snprintf(err + len, errlen > len ? errlen - len : 0,
			    " (remove %s and %s to generate new ones)",
			    certpath, keypath);
			goto done;
		}
	} else {
		/* None, or half of a pair from an interrupted start. */
		if (tls_ss_generate(tfd, tlsdir, hostname, uid, gid, err,
		    errlen) == -1)
			goto done;
		*created_r = true;
	}
	*cert_r = certpath;
	*key_r = keypath;
	certpath = keypath = NULL;
	r = 0;
done:
	if (tfd != -1)
		close(tfd);
	if (dfd != -1)
		close(dfd);
	free(certpath);
	free(keypath);
	free(tlsdir);
	return r;
}
