/*
 * pem.c: read certificate and key files whole and parse them, with error
 * texts that name the file ("FILE: reason").
 *
 * Entry points: tls_blob_read(), tls_blob_free(), tls_pem_parse_cert(),
 * tls_pem_parse_key(), tls_ssl_reason().
 *
 * We read the bytes ourselves rather than let OpenSSL open the file: the
 * error for an unreadable file is then strerror(errno) ("Permission
 * denied") instead of a libcrypto system-library code, the size is
 * capped, and the buffer that held a key is wiped.
 *
 * SECURITY: files are configuration, not network input, but are still
 * parsed defensively (size cap, regular files only). No passphrase
 * callback ever prompts: an encrypted key is an error.
 * STANDARDS: RFC 7468 (PEM textual encodings).
 * OWNERSHIP: a blob owns its buffer; parsed objects belong to the caller.
 */
#include "tls/tls_private.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "lib/util.h"
#include "tls/tls.h"

int
tls_blob_read(int dirfd, const char *name, int flags, const char *display,
    struct tls_blob *out, char *err, size_t errlen)
{
	struct stat st;
	size_t len = 0;
	ssize_t n;
	char *data = NULL;
	int fd, saved;

	out->data = NULL;
	out->len = 0;
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | flags);
	if (fd == -1) {
		snprintf(err, errlen, "%s: %s", display,
		    errno == ELOOP ? "is a symbolic link" : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", display, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", display);
		goto fail;
	}
	if (st.st_size > TLS_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d bytes", display,
		    TLS_FILE_MAX);
		goto fail;
	}
	/* One byte more than the size: a file that grew is caught below. */
	data = xmalloc((size_t)st.st_size + 2);
	for (;;) {
		n = read(fd, data + len, (size_t)st.st_size + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "%s: %s", display,
			    strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > (size_t)st.st_size) {
			snprintf(err, errlen, "%s: changed while being read",
			    display);
			goto fail;
		}
	}
	data[len] = '\0';
	close(fd);
	out->data = data;
	out->len = len;
	return 0;

fail:
	saved = errno;
	if (data != NULL) {
		OPENSSL_cleanse(data, (size_t)st.st_size + 2);
		free(data);
	}
	close(fd);
	errno = saved;
	return -1;
}

void
tls_blob_free(struct tls_blob *b)
{
	if (b->data != NULL) {
		OPENSSL_cleanse(b->data, b->len);
		free(b->data);
	}
	b->data = NULL;
	b->len = 0;
}

const char *
tls_ssl_reason(const char *fallback)
{
	unsigned long e = ERR_peek_last_error();
	const char *r;

	if (e == 0 || (r = ERR_reason_error_string(e)) == NULL)
		return fallback;
	return r;
}

/* The PEM reader ran out of blocks (rather than failing on one). */
static bool
tls_pem_at_end(void)
{
	unsigned long e = ERR_peek_last_error();

	return ERR_GET_LIB(e) == ERR_LIB_PEM &&
	    ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

int
tls_pem_parse_cert(const struct tls_blob *blob, const char *display,
    X509 **leaf_r, STACK_OF(X509) **chain_r, char *err, size_t errlen)
{
	STACK_OF(X509) *chain = NULL;
	X509 *leaf = NULL, *x;
	BIO *bio;

	*leaf_r = NULL;
	*chain_r = NULL;
	if ((bio = BIO_new_mem_buf(blob->data, (int)blob->len)) == NULL) {
		snprintf(err, errlen, "%s: %s", display,
		    tls_ssl_reason("out of memory"));
		return -1;
	}
	ERR_clear_error();
	/* As SSL_CTX_use_certificate_chain_file(): _AUX for the leaf. */
	if ((leaf = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL)) == NULL) {
		if (tls_pem_at_end())
			snprintf(err, errlen, "%s: no certificate found",
			    display);
		else
			snprintf(err, errlen, "%s: bad certificate: %s",
			    display, tls_ssl_reason("parse error"));
		goto fail;
	}
	if ((chain = sk_X509_new_null()) == NULL)
		goto fail_mem;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (sk_X509_push(chain, x) <= 0) {
			X509_free(x);
			goto fail_mem;
		}
	}
	if (!tls_pem_at_end()) {
		snprintf(err, errlen, "%s: bad certificate in the chain: %s",
		    display, tls_ssl_reason("parse error"));
		goto fail;
	}
	ERR_clear_error();
	BIO_free(bio);
	*leaf_r = leaf;
	*chain_r = chain;
	return 0;

fail_mem:
	snprintf(err, errlen, "%s: out of memory", display);
fail:
	sk_X509_pop_free(chain, X509_free);
	X509_free(leaf);
	BIO_free(bio);
	ERR_clear_error();
	return -1;
}

/*
 * Never prompt: OpenSSL's default callback would read a passphrase from
 * the terminal, which a daemon (or a test run) must not do.
 */
static int
tls_pem_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	bool *asked = arg;

	(void)buf;
	(void)size;
	(void)rwflag;
	*asked = true;
	return -1;
}

/*
 * Is there a "-----BEGIN ... PRIVATE KEY-----" line (any algorithm,
 * PKCS#8 or traditional, encrypted or not)? OpenSSL 3's decoders report
 * a file without one as "unsupported", which would send an operator who
 * swapped tls_cert and tls_key looking in the wrong place.
 */
static bool
tls_pem_has_key(const struct tls_blob *blob)
{
	static const char begin[] = "-----BEGIN ", end[] = "PRIVATE KEY-----";
	const char *p = blob->data, *eol, *lim = blob->data + blob->len;
	size_t n;

	for (; p < lim; p = eol + 1) {
		if ((eol = memchr(p, '\n', (size_t)(lim - p))) == NULL)
			eol = lim;
		n = (size_t)(eol - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n >= sizeof(begin) - 1 + sizeof(end) - 1 &&
		    memcmp(p, begin, sizeof(begin) - 1) == 0 &&
		    memcmp(p + n - (sizeof(end) - 1), end,
		    sizeof(end) - 1) == 0)
			return true;
	}
	return false;
}

int
tls_pem_parse_key(const struct tls_blob *blob, const char *display,
    EVP_PKEY **key_r, char *err, size_t errlen)
{
	EVP_PKEY *key;
	bool asked = false;
	BIO *bio;

	*key_r = NULL;
	if (!tls_pem_has_key(blob)) {
		snprintf(err, errlen, "%s: no private key found", display);
		return -1;
	}
	if ((bio = BIO_new_mem_buf(blob->data, (int)blob->len)) == NULL) {
		snprintf(err, errlen, "%s: %s", display,
		    tls_ssl_reason("out of memory"));
		return -1;
	}
	ERR_clear_error();
	key = PEM_read_bio_PrivateKey(bio, NULL, tls_pem_no_passphrase,
	    &asked);
	BIO_free(bio);
	if (key == NULL) {
		if (asked)
			snprintf(err, errlen,
			    "%s: encrypted keys are not supported", display);
		else
			snprintf(err, errlen, "%s: bad private key: %s",
			    display, tls_ssl_reason("parse error"));
		ERR_clear_error();
		return -1;
	}
	ERR_clear_error();
	*key_r = key;
	return 0;
}
