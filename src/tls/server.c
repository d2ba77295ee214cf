/*
 * server.c: the server side TLS contexts: one SSL_CTX per certificate/key
 * pair, all with the same policy, and the SNI callback that moves a
 * connection onto the pair for the name the client asked for.
 *
 * Entry points: tls_server_new(), tls_server_ref(), tls_server_unref(),
 * tls_server_ssl_new(), tls_describe().
 *
 * Why one context per pair (rather than swapping certificates on one
 * SSL): SSL_set_SSL_CTX() from the servername callback is the path that
 * OpenSSL, nginx and Postfix all use, and it leaves the session cache and
 * ticket keys on the context the SSL was made from (OpenSSL keeps
 * session_ctx), so resumption works the same whatever name was asked.
 *
 * SECURITY: see tls.h. The servername callback sees the client's SNI name
 * (untrusted, at most 255 octets per RFC 6066 3; longer names simply get
 * the default pair) and only compares it with configured names.
 * STANDARDS: RFC 6066 3 (SNI), RFC 6125 6.4.3 (wildcards match exactly
 * one label), RFC 8996 (TLS 1.0/1.1 off by default), RFC 7457 (why no
 * compression and no renegotiation).
 * OWNERSHIP: the server owns its contexts; each SSL from
 * tls_server_ssl_new() owns one server reference through its ex_data
 * (dropped by the ex_data free callback when the SSL is freed) and its
 * own references to the contexts it used.
 */
#include "tls/tls.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "lib/log.h"
#include "lib/util.h"
#include "tls/tls_private.h"

#define TLS_NAME_MAX	255	/* RFC 6066 3: HostName is <= 2^16-1, DNS
				   names are <= 255 octets */
#define TLS_SID_CTX	"petrel"

struct tls_pair {
	char *name;		/* lowercase, no trailing dot; NULL: default */
	const char *suffix;	/* wildcard "*.SUFFIX": points to SUFFIX */
	SSL_CTX *ctx;
};

struct tls_server {
	atomic_uint refs;
	struct tls_pair *pairs;
	size_t npairs;
	size_t def;		/* index of the default pair */
};

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_ex_index = -1;

static void tls_server_free(struct tls_server *);

/*
 * ex_data callbacks: the SSL's reference to its server. SSL_dup() copies
 * ex_data, so the copy takes a reference of its own.
 */
static int
tls_ex_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d,
    int idx, long argl, void *argp)
{
	(void)to;
	(void)from;
	(void)idx;
	(void)argl;
	(void)argp;
	if (from_d != NULL && *from_d != NULL)
		tls_server_ref(*from_d);
	return 1;
}

static void
tls_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	tls_server_unref(ptr);
}

static void
tls_ex_init(void)
{
	tls_ex_index = SSL_get_ex_new_index(0, NULL, NULL, tls_ex_dup,
	    tls_ex_free);
}

static int
tls_ex_get_index(void)
{
	if (pthread_once(&tls_once, tls_ex_init) != 0 || tls_ex_index < 0)
		fatalx("tls: cannot allocate an SSL ex_data index");
	return tls_ex_index;
}

/*
 * Lowercase name into out without a trailing dot; false if it does not
 * fit or is empty.
 */
static bool
tls_name_fold(const char *name, char *out, size_t outsize)
{
	size_t len = strlen(name);

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len >= outsize)
		return false;
	memcpy(out, name, len);
	out[len] = '\0';
	ascii_lowercase(out);
	return true;
}

/*
 * A configured SNI name, already folded: labels of letters, digits, '-'
 * and '_', separated by single dots, the first of which may be "*" alone.
 */
static bool
tls_name_valid(const char *name)
{
	const char *p = name;
	size_t label = 0;

	if (p[0] == '*') {
		if (p[1] != '.' || p[2] == '\0')
			return false;
		p += 2;
	}
	for (; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if ((*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_') {
			label++;
		} else {
			return false;
		}
	}
	return label > 0;
}

static const struct tls_pair *
tls_server_find(const struct tls_server *srv, const char *name)
{
	const char *dot;
	size_t i;

	for (i = 0; i < srv->npairs; i++) {
		if (srv->pairs[i].name != NULL &&
		    srv->pairs[i].suffix == NULL &&
		    strcmp(srv->pairs[i].name, name) == 0)
			return &srv->pairs[i];
	}
	/* RFC 6125 6.4.3: "*" stands for exactly one, non-empty label. */
	dot = strchr(name, '.');
	if (dot != NULL && dot != name) {
		for (i = 0; i < srv->npairs; i++) {
			if (srv->pairs[i].suffix != NULL &&
			    strcmp(srv->pairs[i].suffix, dot + 1) == 0)
				return &srv->pairs[i];
		}
	}
	return &srv->pairs[srv->def];
}

/*
 * The servername callback, run by OpenSSL while it processes the
 * ClientHello (for TLS 1.3 again after a HelloRetryRequest). Unknown or
 * missing names keep the default pair: refusing them would only break
 * clients that send an IP address or an internal name.
 */
static int
tls_servername_cb(SSL *ssl, int *alert, void *arg)
{
	const struct tls_server *srv;
	const struct tls_pair *pair;
	const char *sni;
	char name[TLS_NAME_MAX + 1];

	(void)arg;
	srv = SSL_get_ex_data(ssl, tls_ex_get_index());
	sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (srv == NULL || sni == NULL ||
	    !tls_name_fold(sni, name, sizeof(name)))
		return SSL_TLSEXT_ERR_OK;
	pair = tls_server_find(srv, name);
	if (pair->ctx != SSL_get_SSL_CTX(ssl) &&
	    SSL_set_SSL_CTX(ssl, pair->ctx) == NULL) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	return SSL_TLSEXT_ERR_OK;
}

/*
 * Parse cfg->protocols into a version range. Returns 0 or -1 with err.
 */
static int
tls_protocols_parse(const char *s, int *min_r, int *max_r, char *err,
    size_t errlen)
{
	static const struct {
		const char *word;
		int version;
	} words[] = {
		{ "TLSv1", TLS1_VERSION },
		{ "TLSv1.1", TLS1_1_VERSION },
		{ "TLSv1.2", TLS1_2_VERSION },
		{ "TLSv1.3", TLS1_3_VERSION },
	};
	static const char sep[] = " \t,";
	unsigned int set = 0, bit;
	size_t i, n, lo = nitems(words), hi = 0;
	const char *p;

	if (s == NULL)
		s = TLS_PROTOCOLS_DEFAULT;
	for (p = s + strspn(s, sep); *p != '\0'; p += n, p += strspn(p, sep)) {
		n = strcspn(p, sep);
		for (i = 0; i < nitems(words); i++) {
			if (strlen(words[i].word) == n &&
			    ascii_strncasecmp(words[i].word, p, n) == 0)
				break;
		}
		if (i == nitems(words)) {
			snprintf(err, errlen, "tls_protocols: unknown "
			    "protocol \"%.*s\" (known: TLSv1 TLSv1.1 TLSv1.2 "
			    "TLSv1.3)", (int)(n > 32 ? 32 : n), p);
			return -1;
		}
		set |= 1U << i;
	}
	if (set == 0)
		return tls_protocols_parse(NULL, min_r, max_r, err, errlen);
	for (i = 0; i < nitems(words); i++) {
		if (set & (1U << i)) {
			if (lo == nitems(words))
				lo = i;
			hi = i;
		}
	}
	for (i = lo; i <= hi; i++) {
		bit = 1U << i;
		if ((set & bit) == 0) {
			snprintf(err, errlen, "tls_protocols: \"%s\" leaves "
			    "out %s (the versions must form one range)", s,
			    words[i].word);
			return -1;
		}
	}
	*min_r = words[lo].version;
	*max_r = words[hi].version;
	return 0;
}

/* A context with the policy of tls.h and no certificate yet. */
static SSL_CTX *
tls_ctx_new(int min, int max, const char *ciphers, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errlen, "tls: cannot create a context: %s",
		    tls_ssl_reason("out of memory"));
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, min) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, max) != 1) {
		snprintf(err, errlen, "tls_protocols: %s",
		    tls_ssl_reason("not supported by this OpenSSL"));
		goto fail;
	}
	/*
	 * TLS 1.0 and 1.1 sign the handshake with SHA-1 (or MD5+SHA-1),
	 * which security level 1 and above refuse: an operator who turns
	 * them on means it. Set before the cipher list, so an explicit
	 * "@SECLEVEL=N" there still wins.
	 */
	if (min < TLS1_2_VERSION)
		SSL_CTX_set_security_level(ctx, 0);
	if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		snprintf(err, errlen, "tls_ciphers: \"%.64s\": %s", ciphers,
		    tls_ssl_reason("no usable cipher"));
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* libevent may retry a write from a different buffer address. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* DHE suites of the intermediate list: RFC 7919 groups by key size. */
	SSL_CTX_set_dh_auto(ctx, 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	if (SSL_CTX_set_session_id_context(ctx,
	    (const unsigned char *)TLS_SID_CTX, sizeof(TLS_SID_CTX) - 1) !=
	    1) {
		snprintf(err, errlen, "tls: session id context: %s",
		    tls_ssl_reason("failed"));
		goto fail;
	}
	SSL_CTX_set_tlsext_servername_callback(ctx, tls_servername_cb);
	return ctx;

fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Read, parse and install one pair's files into ctx. */
static int
tls_ctx_load(SSL_CTX *ctx, const struct tls_pair_config *pc, char *err,
    size_t errlen)
{
	struct tls_blob blob;
	STACK_OF(X509) *chain = NULL;
	X509 *leaf = NULL;
	EVP_PKEY *key = NULL;
	int r;

	if (tls_blob_read(AT_FDCWD, pc->cert, 0, pc->cert, &blob, err,
	    errlen) == -1)
		return -1;
	r = tls_pem_parse_cert(&blob, pc->cert, &leaf, &chain, err, errlen);
	tls_blob_free(&blob);
	if (r == -1)
		return -1;
	if (tls_blob_read(AT_FDCWD, pc->key, 0, pc->key, &blob, err,
	    errlen) == -1)
		goto fail;
	r = tls_pem_parse_key(&blob, pc->key, &key, err, errlen);
	tls_blob_free(&blob);
	if (r == -1)
		goto fail;
	/*
	 * Check before installing: SSL_CTX_use_PrivateKey() quietly drops
	 * a certificate that does not match, and the error would then be
	 * "no certificate assigned".
	 */
	if (X509_check_private_key(leaf, key) != 1) {
		snprintf(err, errlen, "%s: the key does not match the "
		    "certificate in %s", pc->key, pc->cert);
		goto fail;
	}
	if (SSL_CTX_use_certificate(ctx, leaf) != 1) {
		snprintf(err, errlen, "%s: %s", pc->cert,
		    tls_ssl_reason("cannot use the certificate"));
		goto fail;
	}
	if (SSL_CTX_set0_chain(ctx, chain) != 1) {
		snprintf(err, errlen, "%s: chain: %s", pc->cert,
		    tls_ssl_reason("cannot use the chain"));
		goto fail;
	}
	chain = NULL;		/* the context owns it now */
	if (SSL_CTX_use_PrivateKey(ctx, key) != 1) {
		snprintf(err, errlen, "%s: %s", pc->key,
		    tls_ssl_reason("cannot use the key"));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "%s: the key does not match the "
		    "certificate in %s (%s)", pc->key, pc->cert,
		    tls_ssl_reason("check failed"));
		goto fail;
	}
	X509_free(leaf);
	EVP_PKEY_free(key);
	return 0;

fail:
	sk_X509_pop_free(chain, X509_free);
	X509_free(leaf);
	EVP_PKEY_free(key);
	return -1;
}

/* Names: valid, folded, unique; at most one default. */
static int
tls_server_names(struct tls_server *srv, const struct tls_config *cfg,
    char *err, size_t errlen)
{
	const struct tls_pair_config *pc;
	char name[TLS_NAME_MAX + 1];
	size_t i, j, ndef = 0;

	for (i = 0; i < cfg->npairs; i++) {
		pc = &cfg->pairs[i];
		if (pc->name == NULL) {
			if (ndef++ > 0) {
				snprintf(err, errlen, "tls_cert: %s and %s "
				    "are both default certificates (give "
				    "one a name)",
				    cfg->pairs[srv->def].cert, pc->cert);
				return -1;
			}
			srv->def = i;
			continue;
		}
		if (!tls_name_fold(pc->name, name, sizeof(name)) ||
		    !tls_name_valid(name)) {
			snprintf(err, errlen, "%s: invalid name \"%.64s\"",
			    pc->cert, pc->name);
			return -1;
		}
		for (j = 0; j < i; j++) {
			if (srv->pairs[j].name != NULL &&
			    strcmp(srv->pairs[j].name, name) == 0) {
				snprintf(err, errlen, "%s: name %s is "
				    "already used by %s", pc->cert, name,
				    cfg->pairs[j].cert);
				return -1;
			}
		}
		srv->pairs[i].name = xstrdup(name);
		if (name[0] == '*')
			srv->pairs[i].suffix = srv->pairs[i].name + 2;
	}
	/* Without a nameless pair, the first one serves everyone else. */
	if (ndef == 0)
		srv->def = 0;
	return 0;
}

struct tls_server *
tls_server_new(const struct tls_config *cfg, char *err, size_t errlen)
{
	struct tls_server *srv;
	const char *ciphers;
	int min, max;
	size_t i;

	(void)tls_ex_get_index();
	if (cfg->npairs == 0 || cfg->pairs == NULL) {
		snprintf(err, errlen, "tls_cert: no certificate configured");
		return NULL;
	}
	if (cfg->npairs > TLS_PAIRS_MAX) {
		snprintf(err, errlen, "tls_cert: more than %d certificates",
		    TLS_PAIRS_MAX);
		return NULL;
	}
	for (i = 0; i < cfg->npairs; i++) {
		if (cfg->pairs[i].cert == NULL || cfg->pairs[i].key == NULL) {
			snprintf(err, errlen, "tls_cert: %s without %s",
			    cfg->pairs[i].cert != NULL ? cfg->pairs[i].cert :
			    "a key", cfg->pairs[i].cert != NULL ? "a key" :
			    "a certificate");
			return NULL;
		}
	}
	if (tls_protocols_parse(cfg->protocols, &min, &max, err, errlen) ==
	    -1)
		return NULL;
	ciphers = cfg->ciphers != NULL ? cfg->ciphers : TLS_CIPHERS_DEFAULT;
	if (min < TLS1_2_VERSION && strcmp(ciphers, TLS_CIPHERS_DEFAULT) == 0)
		ciphers = TLS_CIPHERS_LEGACY;

	srv = xcalloc(1, sizeof(*srv));
	atomic_init(&srv->refs, 1);
	srv->pairs = xcalloc(cfg->npairs, sizeof(*srv->pairs));
	srv->npairs = cfg->npairs;
	if (tls_server_names(srv, cfg, err, errlen) == -1)
		goto fail;
	ERR_clear_error();
	for (i = 0; i < cfg->npairs; i++) {
		srv->pairs[i].ctx = tls_ctx_new(min, max, ciphers, err,
		    errlen);
		if (srv->pairs[i].ctx == NULL)
			goto fail;
		if (tls_ctx_load(srv->pairs[i].ctx, &cfg->pairs[i], err,
		    errlen) == -1)
			goto fail;
	}
	ERR_clear_error();
	return srv;

fail:
	ERR_clear_error();
	tls_server_free(srv);
	return NULL;
}

static void
tls_server_free(struct tls_server *srv)
{
	size_t i;

	for (i = 0; i < srv->npairs; i++) {
		SSL_CTX_free(srv->pairs[i].ctx);
		free(srv->pairs[i].name);
	}
	free(srv->pairs);
	free(srv);
}

struct tls_server *
tls_server_ref(struct tls_server *srv)
{
	atomic_fetch_add_explicit(&srv->refs, 1, memory_order_relaxed);
	return srv;
}

void
tls_server_unref(struct tls_server *srv)
{
	if (srv == NULL)
		return;
	if (atomic_fetch_sub_explicit(&srv->refs, 1,
	    memory_order_acq_rel) == 1)
		tls_server_free(srv);
}

SSL *
tls_server_ssl_new(struct tls_server *srv)
{
	SSL *ssl;

	if ((ssl = SSL_new(srv->pairs[srv->def].ctx)) == NULL) {
		ERR_clear_error();
		return NULL;
	}
	if (SSL_set_ex_data(ssl, tls_ex_get_index(),
	    tls_server_ref(srv)) != 1) {
		tls_server_unref(srv);
		SSL_free(ssl);
		ERR_clear_error();
		return NULL;
	}
	SSL_set_accept_state(ssl);
	return ssl;
}

void
tls_describe(SSL *ssl, char *buf, size_t size)
{
	const SSL_CIPHER *cipher;

	if (size == 0)
		return;
	buf[0] = '\0';
	if (ssl == NULL || (cipher = SSL_get_current_cipher(ssl)) == NULL)
		return;
	snprintf(buf, size, "%s %s", SSL_get_version(ssl),
	    SSL_CIPHER_get_name(cipher));
}
