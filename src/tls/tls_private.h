/*
 * tls_private.h: what the files of src/tls share and nobody else uses:
 * reading a PEM file whole, parsing certificates and keys out of it, and
 * OpenSSL error text.
 */
#ifndef PETREL_TLS_TLS_PRIVATE_H
#define PETREL_TLS_TLS_PRIVATE_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* The contents of one file; wiped when freed (it may hold a key). */
struct tls_blob {
	char *data;
	size_t len;
};

/*
 * Read a whole regular file of at most TLS_FILE_MAX bytes: name relative
 * to dirfd (AT_FDCWD for a plain path), open flags added to O_RDONLY |
 * O_CLOEXEC | O_NOCTTY (e.g. O_NOFOLLOW). Returns 0, or -1 with err set
 * to "DISPLAY: reason".
 */
int tls_blob_read(int dirfd, const char *name, int flags,
    const char *display, struct tls_blob *out, char *err, size_t errlen);
void tls_blob_free(struct tls_blob *b);	/* OPENSSL_cleanse, free */

/*
 * The first certificate of blob (leaf) and every later one (its chain, in
 * file order; other PEM blocks such as a key are skipped). Returns 0 with
 * *leaf_r and *chain_r (possibly empty, never NULL) owned by the caller,
 * or -1 with err set to "DISPLAY: reason".
 */
int tls_pem_parse_cert(const struct tls_blob *blob, const char *display,
    X509 **leaf_r, STACK_OF(X509) **chain_r, char *err, size_t errlen);

/*
 * The first private key in blob; encrypted keys are refused without
 * asking for a passphrase. Returns 0 with *key_r owned by the caller, or
 * -1 with err set to "DISPLAY: reason".
 */
int tls_pem_parse_key(const struct tls_blob *blob, const char *display,
    EVP_PKEY **key_r, char *err, size_t errlen);

/*
 * The reason of the most recent OpenSSL error of this thread ("key values
 * mismatch"), or fallback when the queue is empty. Does not clear it.
 */
const char *tls_ssl_reason(const char *fallback);

#endif
