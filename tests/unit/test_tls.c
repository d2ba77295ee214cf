/*
 * test_tls.c: the server TLS contexts over real handshakes on a
 * socketpair: the certificate chosen per SNI name (exact, wildcard,
 * default, first pair as default), the full chain sent, TLS 1.0/1.1
 * refused by default with a positive control that the same client gets
 * through when they are enabled, the options on every connection (and a
 * hang-up without close_notify read as a clean end), configuration and
 * file errors and their
 * texts, references that outlive the owner (a reload while a session
 * runs), the self-signed fallback (created once, reused, mode 0600,
 * ownership, half pairs, refusal to overwrite or follow symlinks),
 * tls_file_readable_by() by mode class, directories, symlinks,
 * supplementary groups and ACLs, and tls_describe().
 *
 * Certificates are made here with OpenSSL (EC P-256, small serials that
 * name the pair) in a temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "testutil.h"

#include "lib/util.h"
#include "tls/tls.h"

/* Serial numbers that say which pair a client got. */
enum {
	SERIAL_CA = 100,
	SERIAL_DEFAULT = 1,
	SERIAL_MAIL = 2,
	SERIAL_WILD = 3,
	SERIAL_OTHER = 4,
	SERIAL_COMBO = 5,
	SERIAL_RELOAD = 6,
};

static char tmpdir[] = "/tmp/petrel-tls-XXXXXX";

/* Paths of the fixture files, filled by the group setup. */
static struct {
	char ca[PATH_MAX];
	char default_pem[PATH_MAX], default_key[PATH_MAX];
	char mail_pem[PATH_MAX], mail_key[PATH_MAX];
	char wild_pem[PATH_MAX], wild_key[PATH_MAX];
	char other_pem[PATH_MAX], other_key[PATH_MAX];
	char combo[PATH_MAX];
	char reload_pem[PATH_MAX], reload_key[PATH_MAX];
	char enc_key[PATH_MAX];
	char garbage[PATH_MAX];
	char missing[PATH_MAX];
} f;

static void
path_of(char *out, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", tmpdir, name);

	assert_true(n > 0 && n < PATH_MAX);
}

static X509 *
make_cert(EVP_PKEY *key, const char *cn, long serial, X509 *issuer,
    EVP_PKEY *issuer_key)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	X509 *x = X509_new();

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial),
	    1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_int_equal(X509_NAME_add_entry_by_txt(X509_get_subject_name(x),
	    "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : X509_get_subject_name(x)), 1);
	assert_int_equal(X509_set_pubkey(x, key), 1);
	X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &v3, NID_basic_constraints,
	    serial == SERIAL_CA ? "critical,CA:TRUE" : "CA:FALSE");
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, issuer_key != NULL ? issuer_key : key,
	    EVP_sha256()) > 0);
	return x;
}

/* certs[0..n) then key (if any) to path, as PEM. */
static void
write_pem(const char *path, X509 *const *certs, size_t n, EVP_PKEY *key)
{
	BIO *bio = BIO_new_file(path, "w");
	size_t i;

	assert_non_null(bio);
	for (i = 0; i < n; i++)
		assert_int_equal(PEM_write_bio_X509(bio, certs[i]), 1);
	if (key != NULL)
		assert_int_equal(PEM_write_bio_PrivateKey(bio, key, NULL, NULL,
		    0, NULL, NULL), 1);
	BIO_free(bio);
}

static void
write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

/* A leaf signed by ca into NAME.pem (leaf + CA) and NAME.key. */
static void
make_pair(const char *name, const char *cn, long serial, X509 *ca,
    EVP_PKEY *ca_key, char *pem_r, char *key_r)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *leaf, *chain[2];
	char file[64];

	assert_non_null(key);
	leaf = make_cert(key, cn, serial, ca, ca_key);
	snprintf(file, sizeof(file), "%s.pem", name);
	path_of(pem_r, file);
	chain[0] = leaf;
	chain[1] = ca;
	write_pem(pem_r, chain, 2, NULL);
	snprintf(file, sizeof(file), "%s.key", name);
	path_of(key_r, file);
	write_pem(key_r, NULL, 0, key);
	X509_free(leaf);
	EVP_PKEY_free(key);
}

static int
setup(void **state)
{
	EVP_PKEY *ca_key, *key;
	X509 *ca, *x;
	BIO *bio;

	(void)state;
	if (mkdtemp(tmpdir) == NULL || chmod(tmpdir, 0755) == -1)
		return -1;
	ca_key = EVP_EC_gen("P-256");
	ca = make_cert(ca_key, "Petrel Test CA", SERIAL_CA, NULL, NULL);
	path_of(f.ca, "ca.pem");
	write_pem(f.ca, &ca, 1, NULL);
	make_pair("default", "default.test", SERIAL_DEFAULT, ca, ca_key,
	    f.default_pem, f.default_key);
	make_pair("mail", "mail.example.test", SERIAL_MAIL, ca, ca_key,
	    f.mail_pem, f.mail_key);
	make_pair("wild", "*.example.test", SERIAL_WILD, ca, ca_key,
	    f.wild_pem, f.wild_key);
	make_pair("other", "other.test", SERIAL_OTHER, ca, ca_key,
	    f.other_pem, f.other_key);
	make_pair("reload", "default.test", SERIAL_RELOAD, ca, ca_key,
	    f.reload_pem, f.reload_key);

	/* One file holding certificate and key (key == cert). */
	key = EVP_EC_gen("P-256");
	x = make_cert(key, "combo.test", SERIAL_COMBO, ca, ca_key);
	path_of(f.combo, "combo.pem");
	write_pem(f.combo, &x, 1, key);
	/* The key of default.pem, encrypted. */
	X509_free(x);
	EVP_PKEY_free(key);
	bio = BIO_new_file(f.default_key, "r");
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(key);
	path_of(f.enc_key, "enc.key");
	bio = BIO_new_file(f.enc_key, "w");
	assert_int_equal(PEM_write_bio_PrivateKey(bio, key, EVP_aes_128_cbc(),
	    (const unsigned char *)"secret", 6, NULL, NULL), 1);
	BIO_free(bio);
	EVP_PKEY_free(key);

	path_of(f.garbage, "garbage.pem");
	write_text(f.garbage, "this is not PEM\n");
	path_of(f.missing, "missing.pem");
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
teardown(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* --- handshakes over a socketpair ------------------------------------ */

struct conn {
	int fd[2];
	SSL *s, *c;
	bool ok;
	char why[256];
};

static SSL_CTX *
client_ctx(int max_version, const char *ciphers)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	assert_non_null(ctx);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (max_version != 0) {
		assert_int_equal(SSL_CTX_set_min_proto_version(ctx,
		    TLS1_VERSION), 1);
		assert_int_equal(SSL_CTX_set_max_proto_version(ctx,
		    max_version), 1);
	}
	if (ciphers != NULL)
		assert_int_equal(SSL_CTX_set_cipher_list(ctx, ciphers), 1);
	return ctx;
}

/* One step of SSL_do_handshake: 1 done, 0 wants more, -1 failed. */
static int
step(SSL *ssl, char *why, size_t whylen, const char *side)
{
	int r, e;

	ERR_clear_error();
	if ((r = SSL_do_handshake(ssl)) == 1)
		return 1;
	e = SSL_get_error(ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	snprintf(why, whylen, "%s: %s", side,
	    ERR_reason_error_string(ERR_peek_last_error()) != NULL ?
	    ERR_reason_error_string(ERR_peek_last_error()) : "failed");
	return -1;
}

/* Run the handshake between s (ours, consumed) and a client of cctx. */
static void
conn_open(struct conn *cn, SSL *s, SSL_CTX *cctx, const char *sni)
{
	int i, rs = 0, rc = 0;

	memset(cn, 0, sizeof(*cn));
	assert_non_null(s);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, cn->fd), 0);
	assert_int_equal(fcntl(cn->fd[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(fcntl(cn->fd[1], F_SETFL, O_NONBLOCK), 0);
	cn->s = s;
	assert_int_equal(SSL_set_fd(cn->s, cn->fd[0]), 1);
	assert_non_null(cn->c = SSL_new(cctx));
	assert_int_equal(SSL_set_fd(cn->c, cn->fd[1]), 1);
	if (sni != NULL)
		assert_int_equal(SSL_set_tlsext_host_name(cn->c, sni), 1);
	SSL_set_connect_state(cn->c);
	for (i = 0; i < 100 && !(rs == 1 && rc == 1); i++) {
		if (rc == 0)
			rc = step(cn->c, cn->why, sizeof(cn->why), "client");
		if (rc == -1)
			break;
		if (rs == 0)
			rs = step(cn->s, cn->why, sizeof(cn->why), "server");
		if (rs == -1)
			break;
	}
	cn->ok = rs == 1 && rc == 1;
	ERR_clear_error();
}

static void
conn_close(struct conn *cn)
{
	SSL_free(cn->s);
	SSL_free(cn->c);
	close(cn->fd[0]);
	if (cn->fd[1] != -1)
		close(cn->fd[1]);
	ERR_clear_error();
}

static const char *
tls_test_reason(void)
{
	const char *r = ERR_reason_error_string(ERR_peek_last_error());

	return r != NULL ? r : "no OpenSSL error";
}

/* Send msg from one SSL to the other and check it arrives whole. */
static void
conn_send(SSL *from, SSL *to, const char *msg)
{
	char buf[256];
	size_t got = 0, len = strlen(msg);
	int i, n;

	assert_int_equal(SSL_write(from, msg, (int)len), (int)len);
	for (i = 0; i < 100 && got < len; i++) {
		ERR_clear_error();
		n = SSL_read(to, buf + got, (int)(sizeof(buf) - got));
		if (n > 0)
			got += (size_t)n;
		else
			assert_int_equal(SSL_get_error(to, n),
			    SSL_ERROR_WANT_READ);
	}
	if (got != len || memcmp(buf, msg, len) != 0)
		fail_msg("got \"%s\", want \"%s\"", test_escn(buf, got),
		    test_esc(msg));
}

static long
peer_serial(const struct conn *cn)
{
	X509 *peer = SSL_get0_peer_certificate(cn->c);

	assert_non_null(peer);
	return ASN1_INTEGER_get(X509_get0_serialNumber(peer));
}

/* Handshake with srv under sni and return the serial the client saw. */
static long
serial_for(struct tls_server *srv, SSL_CTX *cctx, const char *sni)
{
	struct conn cn;
	long serial;

	conn_open(&cn, tls_server_ssl_new(srv), cctx, sni);
	if (!cn.ok)
		fail_msg("sni %s: handshake failed: %s", sni ? sni : "(none)",
		    cn.why);
	serial = peer_serial(&cn);
	conn_send(cn.c, cn.s, "EHLO client.test\r\n");
	conn_send(cn.s, cn.c, "250 ok\r\n");
	conn_close(&cn);
	return serial;
}

static struct tls_server *
server_or_fail(const struct tls_pair_config *pairs, size_t n,
    const char *protocols, const char *ciphers)
{
	struct tls_config cfg = { pairs, n, protocols, ciphers };
	struct tls_server *srv;
	char err[512];

	err[0] = '\0';
	if ((srv = tls_server_new(&cfg, err, sizeof(err))) == NULL)
		fail_msg("tls_server_new: %s", err);
	assert_int_equal(ERR_peek_error(), 0);
	return srv;
}

/* --- SNI -------------------------------------------------------------- */

struct sni_case {
	const char *sni;	/* NULL: no SNI */
	long want;		/* the serial the client must see */
};

/* A server from pairs; each case's SNI must give its serial. */
static void
check_sni(const struct tls_pair_config *pairs, size_t npairs,
    const struct sni_case *cases, size_t ncases)
{
	struct tls_server *srv;
	SSL_CTX *cctx = client_ctx(0, NULL);
	size_t i;
	long got;

	srv = server_or_fail(pairs, npairs, NULL, NULL);
	for (i = 0; i < ncases; i++) {
		got = serial_for(srv, cctx, cases[i].sni);
		if (got != cases[i].want)
			fail_msg("sni %s: got serial %ld, want %ld",
			    cases[i].sni ? cases[i].sni : "(none)", got,
			    cases[i].want);
	}
	tls_server_unref(srv);
	SSL_CTX_free(cctx);
}

static void
test_sni_chooses_pair(void **state)
{
	/* Wildcard first and default second: order must not matter. */
	const struct tls_pair_config pairs[] = {
		{ "*.example.test", f.wild_pem, f.wild_key },
		{ NULL, f.default_pem, f.default_key },
		{ "mail.example.test", f.mail_pem, f.mail_key },
		{ "Other.Test", f.other_pem, f.other_key },
	};
	static const struct sni_case cases[] = {
		{ NULL, SERIAL_DEFAULT },
		{ "mail.example.test", SERIAL_MAIL },	/* exact beats * */
		{ "MAIL.Example.TEST", SERIAL_MAIL },
		{ "mail.example.test.", SERIAL_MAIL },
		{ "imap.example.test", SERIAL_WILD },
		{ "x.example.test", SERIAL_WILD },
		{ "a.b.example.test", SERIAL_DEFAULT },	/* one label only */
		{ "example.test", SERIAL_DEFAULT },
		{ "xexample.test", SERIAL_DEFAULT },
		{ "other.test", SERIAL_OTHER },
		{ "other.test.example", SERIAL_DEFAULT },
		{ "unknown.test", SERIAL_DEFAULT },
		{ "mail", SERIAL_DEFAULT },
	};

	(void)state;
	check_sni(pairs, nitems(pairs), cases, nitems(cases));
}

static void
test_sni_first_pair_is_default(void **state)
{
	const struct tls_pair_config pairs[] = {
		{ "mail.example.test", f.mail_pem, f.mail_key },
		{ "other.test", f.other_pem, f.other_key },
	};
	static const struct sni_case cases[] = {
		{ NULL, SERIAL_MAIL },
		{ "unknown.test", SERIAL_MAIL },
		{ "other.test", SERIAL_OTHER },
	};

	(void)state;
	check_sni(pairs, nitems(pairs), cases, nitems(cases));
}

/* The whole chain goes out; one file may hold certificate and key. */
static void
test_chain_and_combined_file(void **state)
{
	const struct tls_pair_config pairs[] = {
		{ NULL, f.default_pem, f.default_key },
		{ "combo.test", f.combo, f.combo },
	};
	struct tls_server *srv;
	SSL_CTX *cctx = client_ctx(0, NULL);
	STACK_OF(X509) *chain;
	struct conn cn;
	char cn_text[128];

	(void)state;
	srv = server_or_fail(pairs, nitems(pairs), NULL, NULL);
	conn_open(&cn, tls_server_ssl_new(srv), cctx, "default.test");
	assert_true(cn.ok);
	chain = SSL_get_peer_cert_chain(cn.c);
	assert_non_null(chain);
	if (sk_X509_num(chain) != 2)
		fail_msg("got a chain of %d, want 2 (leaf, CA)",
		    sk_X509_num(chain));
	X509_NAME_get_text_by_NID(X509_get_subject_name(sk_X509_value(chain,
	    1)), NID_commonName, cn_text, sizeof(cn_text));
	assert_string_equal(cn_text, "Petrel Test CA");
	X509_NAME_get_text_by_NID(X509_get_subject_name(
	    SSL_get0_peer_certificate(cn.c)), NID_commonName, cn_text,
	    sizeof(cn_text));
	assert_string_equal(cn_text, "default.test");
	conn_close(&cn);
	assert_int_equal(serial_for(srv, cctx, "combo.test"), SERIAL_COMBO);
	tls_server_unref(srv);
	SSL_CTX_free(cctx);
}

/* --- protocol versions ------------------------------------------------ */

static void
test_protocols(void **state)
{
	/*
	 * A legacy client: offers TLS 1.0 up to max, at security level 0,
	 * so the only thing that can refuse it is the server's range.
	 */
	static const char legacy[] = "DEFAULT:@SECLEVEL=0";
	static const struct {
		const char *protocols;
		const char *ciphers;
		int client_max;		/* 0: the client's defaults */
		const char *client_ciphers;
		int want;		/* version, or 0: refused */
	} cases[] = {
		/* The defaults refuse TLS 1.1 and 1.0. */
		{ NULL, NULL, TLS1_1_VERSION, legacy, 0 },
		{ NULL, NULL, TLS1_VERSION, legacy, 0 },
		/* ... even with ciphers that would allow them ... */
		{ NULL, legacy, TLS1_1_VERSION, legacy, 0 },
		{ NULL, legacy, TLS1_VERSION, legacy, 0 },
		{ "TLSv1.2 TLSv1.3", legacy, TLS1_1_VERSION, legacy, 0 },
		/* ... and the same client gets in when they are enabled. */
		{ "TLSv1.1 TLSv1.2 TLSv1.3", legacy, TLS1_1_VERSION, legacy,
		    TLS1_1_VERSION },
		{ "TLSv1,TLSv1.1,TLSv1.2", legacy, TLS1_VERSION, legacy,
		    TLS1_VERSION },
		/* Enabling them lowers the security level by itself. */
		{ "TLSv1.1 TLSv1.2 TLSv1.3", "DEFAULT", TLS1_1_VERSION,
		    legacy, TLS1_1_VERSION },
		/* Modern clients. */
		{ NULL, NULL, 0, NULL, TLS1_3_VERSION },
		{ NULL, NULL, TLS1_2_VERSION, NULL, TLS1_2_VERSION },
		{ "TLSv1.2", NULL, 0, NULL, TLS1_2_VERSION },
		{ "tlsv1.3", NULL, TLS1_2_VERSION, NULL, 0 },
		{ " TLSv1.3 ", NULL, 0, NULL, TLS1_3_VERSION },
		{ "", NULL, TLS1_1_VERSION, legacy, 0 },
	};
	const struct tls_pair_config pair = { NULL, f.default_pem,
		f.default_key };
	struct tls_server *srv;
	SSL_CTX *cctx;
	struct conn cn;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		srv = server_or_fail(&pair, 1, cases[i].protocols,
		    cases[i].ciphers);
		cctx = client_ctx(cases[i].client_max,
		    cases[i].client_ciphers);
		conn_open(&cn, tls_server_ssl_new(srv), cctx, NULL);
		if (cases[i].want == 0 && cn.ok)
			fail_msg("case %zu (%s): got %s, want refused", i,
			    cases[i].protocols ? cases[i].protocols : "NULL",
			    SSL_get_version(cn.c));
		if (cases[i].want != 0 && !cn.ok)
			fail_msg("case %zu (%s): refused (%s), want %x", i,
			    cases[i].protocols ? cases[i].protocols : "NULL",
			    cn.why, cases[i].want);
		if (cases[i].want != 0 && SSL_version(cn.s) != cases[i].want)
			fail_msg("case %zu: got version %x, want %x", i,
			    SSL_version(cn.s), cases[i].want);
		conn_close(&cn);
		SSL_CTX_free(cctx);
		tls_server_unref(srv);
	}
}

/*
 * The options of tls.h on every connection, and what the one libevent
 * needs most does: a client that hangs up without close_notify is a
 * clean end of stream, not an error.
 */
static void
test_policy(void **state)
{
	static const struct {
		uint64_t bit;
		const char *name;
	} opts[] = {
		{ SSL_OP_NO_COMPRESSION, "NO_COMPRESSION" },
		{ SSL_OP_NO_RENEGOTIATION, "NO_RENEGOTIATION" },
		{ SSL_OP_IGNORE_UNEXPECTED_EOF, "IGNORE_UNEXPECTED_EOF" },
		{ SSL_OP_CIPHER_SERVER_PREFERENCE, "CIPHER_SERVER_PREFERENCE" },
	};
	const struct tls_pair_config pairs[] = {
		{ NULL, f.default_pem, f.default_key },
		{ "mail.example.test", f.mail_pem, f.mail_key },
	};
	struct tls_server *srv;
	SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, NULL);
	struct conn cn;
	char buf[16];
	size_t i;
	int n, e;

	(void)state;
	srv = server_or_fail(pairs, nitems(pairs), NULL, NULL);
	/* After SNI moved the connection to another pair's context too. */
	conn_open(&cn, tls_server_ssl_new(srv), cctx, "mail.example.test");
	assert_true(cn.ok);
	assert_int_equal(peer_serial(&cn), SERIAL_MAIL);
	for (i = 0; i < nitems(opts); i++)
		if ((SSL_get_options(cn.s) & opts[i].bit) == 0)
			fail_msg("SSL_OP_%s is not set", opts[i].name);
	assert_int_equal(SSL_get_min_proto_version(cn.s), TLS1_2_VERSION);
	assert_int_equal(SSL_get_max_proto_version(cn.s), TLS1_3_VERSION);
	/* Intermediate ciphers, server's order: AES128-GCM first. */
	assert_string_equal(SSL_CIPHER_get_name(SSL_get_current_cipher(cn.c)),
	    "ECDHE-ECDSA-AES128-GCM-SHA256");
	/* No compression was negotiated. */
	assert_null(SSL_get_current_compression(cn.s));

	/* The client vanishes without close_notify. */
	SSL_free(cn.c);
	cn.c = NULL;
	close(cn.fd[1]);
	cn.fd[1] = -1;
	ERR_clear_error();
	n = SSL_read(cn.s, buf, sizeof(buf));
	e = SSL_get_error(cn.s, n);
	if (n != 0 || e != SSL_ERROR_ZERO_RETURN)
		fail_msg("got SSL_read %d error %d (%s), want 0 and "
		    "SSL_ERROR_ZERO_RETURN", n, e,
		    tls_test_reason());
	conn_close(&cn);
	SSL_CTX_free(cctx);
	tls_server_unref(srv);
}

/* --- errors ----------------------------------------------------------- */

static void
expect_error(const struct tls_pair_config *pairs, size_t n,
    const char *protocols, const char *ciphers, const char *want1,
    const char *want2)
{
	struct tls_config cfg = { pairs, n, protocols, ciphers };
	struct tls_server *srv;
	char err[512];

	strlcpy(err, "untouched", sizeof(err));
	srv = tls_server_new(&cfg, err, sizeof(err));
	if (srv != NULL)
		fail_msg("got a server, want an error with \"%s\"", want1);
	if (strstr(err, want1) == NULL ||
	    (want2 != NULL && strstr(err, want2) == NULL))
		fail_msg("got \"%s\", want \"%s\"%s%s", err, want1,
		    want2 ? " and " : "", want2 ? want2 : "");
	if (ERR_peek_error() != 0)
		fail_msg("%s: OpenSSL error queue left non-empty", err);
}

/* err must start with "FILE: ". */
static void
expect_file_error(const char *cert, const char *key, const char *file,
    const char *reason)
{
	const struct tls_pair_config pair = { NULL, cert, key };
	char want[PATH_MAX + 64];

	snprintf(want, sizeof(want), "%s: %s", file, reason);
	expect_error(&pair, 1, NULL, NULL, want, NULL);
}

static void
test_file_errors(void **state)
{
	char want[2 * PATH_MAX + 64];
	const struct tls_pair_config mismatch = { NULL, f.default_pem,
		f.mail_key };

	(void)state;
	/* A key that is not the certificate's names both files. */
	snprintf(want, sizeof(want), "%s: the key does not match the "
	    "certificate in %s", f.mail_key, f.default_pem);
	expect_error(&mismatch, 1, NULL, NULL, want, NULL);
	/* The same mismatch under an SNI name, after a good pair. */
	{
		const struct tls_pair_config pairs[] = {
			{ NULL, f.default_pem, f.default_key },
			{ "mail.example.test", f.mail_pem, f.other_key },
		};

		snprintf(want, sizeof(want), "%s: the key does not match "
		    "the certificate in %s", f.other_key, f.mail_pem);
		expect_error(pairs, 2, NULL, NULL, want, NULL);
	}
	expect_file_error(f.missing, f.default_key, f.missing,
	    "No such file or directory");
	expect_file_error(f.default_pem, f.missing, f.missing,
	    "No such file or directory");
	expect_file_error(f.garbage, f.default_key, f.garbage,
	    "no certificate found");
	expect_file_error(f.default_pem, f.garbage, f.garbage,
	    "no private key found");
	/* A certificate file given as the key. */
	expect_file_error(f.default_pem, f.mail_pem, f.mail_pem,
	    "no private key found");
	/* No passphrase prompt, ever. */
	expect_file_error(f.default_pem, f.enc_key, f.enc_key,
	    "encrypted keys are not supported");
	expect_file_error(tmpdir, f.default_key, tmpdir,
	    "not a regular file");
}

/*
 * A file the daemon's user cannot read (the reload case, after the
 * privilege drop): as root, ask a child running as nobody.
 */
static void
test_unreadable_file(void **state)
{
	char key[PATH_MAX], err[512] = "", want[PATH_MAX + 64];
	const struct tls_pair_config pair = { NULL, f.default_pem, key };
	struct tls_config cfg = { &pair, 1, NULL, NULL };
	int p[2], status;
	ssize_t n;
	pid_t pid;

	(void)state;
	path_of(key, "private.key");
	write_text(key, "");
	{
		/* Copy the real key, then close it to everyone else. */
		FILE *in = fopen(f.default_key, "r"), *out = fopen(key, "w");
		char buf[4096];
		size_t len;

		assert_non_null(in);
		assert_non_null(out);
		while ((len = fread(buf, 1, sizeof(buf), in)) > 0)
			assert_int_equal(fwrite(buf, 1, len, out), len);
		fclose(in);
		assert_int_equal(fclose(out), 0);
	}
	assert_int_equal(chmod(key, 0600), 0);
	snprintf(want, sizeof(want), "%s: Permission denied", key);
	if (geteuid() != 0) {
		assert_int_equal(chmod(key, 0), 0);
		assert_null(tls_server_new(&cfg, err, sizeof(err)));
	} else {
		/* The readable control: root reads it. */
		struct tls_server *srv = tls_server_new(&cfg, err,
		    sizeof(err));

		if (srv == NULL)
			fail_msg("as root: %s", err);
		tls_server_unref(srv);
		assert_int_equal(pipe(p), 0);
		pid = fork();
		assert_true(pid != -1);
		if (pid == 0) {
			struct tls_server *s;

			close(p[0]);
			if (setgroups(0, NULL) == -1 || setgid(65534) == -1 ||
			    setuid(65534) == -1)
				_exit(2);
			s = tls_server_new(&cfg, err, sizeof(err));
			if (s != NULL)
				strlcpy(err, "got a server", sizeof(err));
			(void)!write(p[1], err, strlen(err));
			_exit(0);
		}
		close(p[1]);
		n = read(p[0], err, sizeof(err) - 1);
		err[n > 0 ? n : 0] = '\0';
		close(p[0]);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	if (strcmp(err, want) != 0)
		fail_msg("got \"%s\", want \"%s\"", err, want);
	unlink(key);
}

static void
test_config_errors(void **state)
{
	const struct tls_pair_config one = { NULL, f.default_pem,
		f.default_key };
	const struct tls_pair_config two_defaults[] = {
		{ NULL, f.default_pem, f.default_key },
		{ NULL, f.mail_pem, f.mail_key },
	};
	const struct tls_pair_config dup[] = {
		{ "Mail.Example.Test", f.default_pem, f.default_key },
		{ "mail.example.test.", f.mail_pem, f.mail_key },
	};
	const struct tls_pair_config no_key = { NULL, f.default_pem, NULL };
	static const char *bad_names[] = {
		"", ".", "*", "*.", "a*.example.test", "*.*.example.test",
		"a..b", ".a", "a b", "ex*mple.test", "mail.example.test..",
		"*example.test", "caf\xc3\xa9.test",
	};
	size_t i;

	(void)state;
	expect_error(&one, 1, "TLSv1.4", NULL,
	    "tls_protocols: unknown protocol \"TLSv1.4\"", NULL);
	expect_error(&one, 1, "SSLv3 TLSv1.2", NULL,
	    "tls_protocols: unknown protocol \"SSLv3\"", NULL);
	expect_error(&one, 1, "TLSv1 TLSv1.3", NULL,
	    "tls_protocols: \"TLSv1 TLSv1.3\" leaves out TLSv1.1", NULL);
	expect_error(&one, 1, NULL, "NO-SUCH-CIPHER", "tls_ciphers:", NULL);
	expect_error(&one, 0, NULL, NULL,
	    "tls_cert: no certificate configured", NULL);
	expect_error(NULL, 1, NULL, NULL,
	    "tls_cert: no certificate configured", NULL);
	expect_error(two_defaults, 2, NULL, NULL,
	    "are both default certificates", f.mail_pem);
	expect_error(dup, 2, NULL, NULL, "name mail.example.test is already "
	    "used by", f.default_pem);
	expect_error(&no_key, 1, NULL, NULL, "without a key", f.default_pem);
	for (i = 0; i < nitems(bad_names); i++) {
		const struct tls_pair_config named = { bad_names[i],
			f.default_pem, f.default_key };
		char want[PATH_MAX + 32];

		snprintf(want, sizeof(want), "%s: invalid name", f.default_pem);
		expect_error(&named, 1, NULL, NULL, want, NULL);
	}
}

/* --- references ------------------------------------------------------- */

static void
test_references(void **state)
{
	const struct tls_pair_config pairs[] = {
		{ NULL, f.default_pem, f.default_key },
		{ "mail.example.test", f.mail_pem, f.mail_key },
	};
	const struct tls_pair_config reloaded = { NULL, f.reload_pem,
		f.reload_key };
	struct tls_server *srv, *held, *next;
	SSL_CTX *cctx = client_ctx(0, NULL);
	struct conn open_conn;
	SSL *pending;

	(void)state;
	/* A session's reference outlives the owner's. */
	srv = server_or_fail(pairs, nitems(pairs), NULL, NULL);
	held = tls_server_ref(srv);
	assert_ptr_equal(held, srv);
	tls_server_unref(srv);
	assert_int_equal(serial_for(held, cctx, "mail.example.test"),
	    SERIAL_MAIL);

	/*
	 * An SSL made before the last unref still chooses by SNI during
	 * its (later) handshake: it holds the server itself.
	 */
	pending = tls_server_ssl_new(held);
	assert_non_null(pending);
	conn_open(&open_conn, tls_server_ssl_new(held), cctx, NULL);
	assert_true(open_conn.ok);
	tls_server_unref(held);
	{
		struct conn cn;

		conn_open(&cn, pending, cctx, "mail.example.test");
		assert_true(cn.ok);
		assert_int_equal(peer_serial(&cn), SERIAL_MAIL);
		conn_close(&cn);
	}

	/*
	 * A reload: new connections get the new certificate while the open
	 * one still talks over the old server.
	 */
	next = server_or_fail(&reloaded, 1, NULL, NULL);
	assert_int_equal(serial_for(next, cctx, NULL), SERIAL_RELOAD);
	conn_send(open_conn.c, open_conn.s, "NOOP\r\n");
	conn_send(open_conn.s, open_conn.c, "250 2.0.0 still here\r\n");
	assert_int_equal(peer_serial(&open_conn), SERIAL_DEFAULT);
	conn_close(&open_conn);
	tls_server_unref(next);
	tls_server_unref(NULL);
	SSL_CTX_free(cctx);
}

/* --- self-signed ------------------------------------------------------ */

struct ss_info {
	ASN1_INTEGER *serial;
	char cn[128];
	char san[256];
	int days;
	int bits;
	int type;
};

static void
ss_inspect(const char *cert, const char *key, struct ss_info *in)
{
	GENERAL_NAMES *gens;
	EVP_PKEY *pk;
	X509 *x;
	BIO *bio;
	int days, secs;

	memset(in, 0, sizeof(*in));
	bio = BIO_new_file(cert, "r");
	assert_non_null(bio);
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(x);
	in->serial = ASN1_INTEGER_dup(X509_get0_serialNumber(x));
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
	    in->cn, sizeof(in->cn));
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (gens != NULL && sk_GENERAL_NAME_num(gens) == 1 &&
	    sk_GENERAL_NAME_value(gens, 0)->type == GEN_DNS) {
		const ASN1_IA5STRING *d =
		    sk_GENERAL_NAME_value(gens, 0)->d.dNSName;

		snprintf(in->san, sizeof(in->san), "DNS:%.*s",
		    ASN1_STRING_length(d),
		    (const char *)ASN1_STRING_get0_data(d));
	}
	GENERAL_NAMES_free(gens);
	assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x),
	    X509_get0_notAfter(x)), 1);
	in->days = days;
	bio = BIO_new_file(key, "r");
	assert_non_null(bio);
	pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(pk);
	assert_int_equal(X509_check_private_key(x, pk), 1);
	in->bits = EVP_PKEY_get_bits(pk);
	in->type = EVP_PKEY_get_base_id(pk);
	EVP_PKEY_free(pk);
	X509_free(x);
}

static void
assert_mode_owner(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	if ((st.st_mode & 07777) != mode)
		fail_msg("%s: got mode %o, want %o", path,
		    (unsigned int)(st.st_mode & 07777), (unsigned int)mode);
	if (st.st_uid != uid || st.st_gid != gid)
		fail_msg("%s: got owner %u:%u, want %u:%u", path,
		    (unsigned int)st.st_uid, (unsigned int)st.st_gid,
		    (unsigned int)uid, (unsigned int)gid);
}

static void
test_selfsigned(void **state)
{
	char spool[PATH_MAX], tlsdir[PATH_MAX], want[PATH_MAX];
	char *cert, *key, *cert2, *key2, err[1024];
	struct ss_info a, b, c;
	bool created;
	uid_t uid = geteuid() == 0 ? 4242 : getuid();
	gid_t gid = geteuid() == 0 ? 4243 : getgid();
	struct tls_server *srv;
	SSL_CTX *cctx;
	struct conn cn;

	(void)state;
	path_of(spool, "spool");
	assert_int_equal(mkdir(spool, 0700), 0);
	path_of(tlsdir, "spool/tls");

	/* First start: made, with the documented properties. */
	assert_int_equal(tls_selfsigned_ensure(spool, "mx.example.test", uid,
	    gid, &cert, &key, &created, err, sizeof(err)), 0);
	assert_true(created);
	path_of(want, "spool/tls/selfsigned.pem");
	assert_string_equal(cert, want);
	path_of(want, "spool/tls/selfsigned.key");
	assert_string_equal(key, want);
	assert_mode_owner(tlsdir, 0700, uid, gid);
	assert_mode_owner(cert, 0600, uid, gid);
	assert_mode_owner(key, 0600, uid, gid);
	ss_inspect(cert, key, &a);
	assert_string_equal(a.cn, "mx.example.test");
	assert_string_equal(a.san, "DNS:mx.example.test");
	if (a.days < 3650 || a.days > 3651)
		fail_msg("got %d days of validity, want 3650", a.days);
	assert_int_equal(a.type, EVP_PKEY_RSA);
	assert_int_equal(a.bits, 2048);

	/* It serves. */
	{
		const struct tls_pair_config pair = { NULL, cert, key };

		srv = server_or_fail(&pair, 1, NULL, NULL);
		cctx = client_ctx(0, NULL);
		conn_open(&cn, tls_server_ssl_new(srv), cctx,
		    "mx.example.test");
		assert_true(cn.ok);
		assert_int_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(
		    SSL_get0_peer_certificate(cn.c)), a.serial), 0);
		conn_close(&cn);
		SSL_CTX_free(cctx);
		tls_server_unref(srv);
	}

	/* Later starts reuse it, whatever the hostname now is. */
	assert_int_equal(tls_selfsigned_ensure(spool, "renamed.example.test",
	    uid, gid, &cert2, &key2, &created, err, sizeof(err)), 0);
	assert_false(created);
	assert_string_equal(cert2, cert);
	assert_string_equal(key2, key);
	ss_inspect(cert2, key2, &b);
	if (ASN1_INTEGER_cmp(a.serial, b.serial) != 0)
		fail_msg("the second start made a new certificate");
	free(cert2);
	free(key2);
	ASN1_INTEGER_free(b.serial);

	/* Half a pair (interrupted start): made again, new serial. */
	assert_int_equal(unlink(cert), 0);
	assert_int_equal(tls_selfsigned_ensure(spool, "mx.example.test", uid,
	    gid, &cert2, &key2, &created, err, sizeof(err)), 0);
	assert_true(created);
	ss_inspect(cert2, key2, &c);
	if (ASN1_INTEGER_cmp(a.serial, c.serial) == 0)
		fail_msg("a regenerated certificate kept the old serial");
	assert_mode_owner(cert2, 0600, uid, gid);
	assert_mode_owner(key2, 0600, uid, gid);
	free(cert2);
	free(key2);
	ASN1_INTEGER_free(c.serial);

	/* An unusable file is reported and left alone. */
	write_text(cert, "garbage\n");
	assert_int_equal(tls_selfsigned_ensure(spool, "mx.example.test", uid,
	    gid, &cert2, &key2, &created, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: no certificate found", cert);
	if (strstr(err, want) == NULL || strstr(err, "remove") == NULL)
		fail_msg("got \"%s\", want \"%s ... remove ...\"", err, want);
	assert_null(cert2);
	{
		char buf[64] = "";
		FILE *fp = fopen(cert, "r");

		assert_non_null(fp);
		assert_non_null(fgets(buf, sizeof(buf), fp));
		fclose(fp);
		assert_string_equal(buf, "garbage\n");
	}
	ASN1_INTEGER_free(a.serial);
	free(cert);
	free(key);
}

static void
test_selfsigned_errors(void **state)
{
	char spool[PATH_MAX], elsewhere[PATH_MAX], link[PATH_MAX];
	char *cert = (char *)"x", *key = (char *)"x", err[1024];
	bool created = true;
	static const char *bad_hosts[] = {
		"", "bad host", "a,b", "x\ny", "caf\xc3\xa9.test", "a/b",
	};
	size_t i;

	(void)state;
	path_of(spool, "spool2");
	assert_int_equal(mkdir(spool, 0700), 0);
	for (i = 0; i < nitems(bad_hosts); i++) {
		err[0] = '\0';
		assert_int_equal(tls_selfsigned_ensure(spool, bad_hosts[i],
		    (uid_t)-1, (gid_t)-1, &cert, &key, &created, err,
		    sizeof(err)), -1);
		if (strstr(err, "is not a plain DNS name") == NULL)
			fail_msg("host \"%s\": got \"%s\"",
			    test_esc(bad_hosts[i]), err);
		assert_null(cert);
		assert_false(created);
	}
	/* A spool that does not exist. */
	path_of(elsewhere, "no-such-spool");
	assert_int_equal(tls_selfsigned_ensure(elsewhere, "mx.test",
	    (uid_t)-1, (gid_t)-1, &cert, &key, &created, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "No such file or directory"));
	/* DIR/tls as a symlink: never followed. */
	path_of(elsewhere, "elsewhere");
	assert_int_equal(mkdir(elsewhere, 0700), 0);
	path_of(link, "spool2/tls");
	assert_int_equal(symlink(elsewhere, link), 0);
	assert_int_equal(tls_selfsigned_ensure(spool, "mx.test", (uid_t)-1,
	    (gid_t)-1, &cert, &key, &created, err, sizeof(err)), -1);
	if (strstr(err, "spool2/tls: is a symbolic link") == NULL)
		fail_msg("got \"%s\"", err);
	/* A file name in DIR/tls that is a symlink: never followed. */
	assert_int_equal(unlink(link), 0);
	assert_int_equal(mkdir(link, 0700), 0);
	path_of(link, "spool2/tls/selfsigned.pem");
	assert_int_equal(symlink(f.default_pem, link), 0);
	path_of(link, "spool2/tls/selfsigned.key");
	assert_int_equal(symlink(f.default_key, link), 0);
	assert_int_equal(tls_selfsigned_ensure(spool, "mx.test", (uid_t)-1,
	    (gid_t)-1, &cert, &key, &created, err, sizeof(err)), -1);
	if (strstr(err, "selfsigned.pem: is a symbolic link") == NULL)
		fail_msg("got \"%s\"", err);
	{
		struct stat st;

		/* Nothing was written through the first symlink either. */
		path_of(link, "elsewhere/selfsigned.pem");
		assert_int_equal(stat(link, &st), -1);
	}
}

/* --- tls_file_readable_by -------------------------------------------- */

enum who {
	WHO_OWNER,		/* the file's uid, a foreign gid */
	WHO_OWNER_IN_GROUP,	/* the file's uid and gid */
	WHO_GROUP,		/* another uid, the file's gid as primary */
	WHO_SUPP,		/* another uid, the file's gid supplementary */
	WHO_OTHER,		/* neither */
	WHO_ROOT,
};

static const char *who_names[] = {
	"owner", "owner-in-group", "group", "supplementary", "other", "root",
};

/* Owner and group of the test files (ours unless we can chown). */
static uid_t acc_uid;
static gid_t acc_gid;

static bool
readable_as(const char *path, enum who w)
{
	gid_t supp[3] = { 9001, acc_gid, 9002 };
	gid_t none[2] = { 9001, 9002 };

	switch (w) {
	case WHO_OWNER:
		return tls_file_readable_by(path, acc_uid, 9003, none, 2);
	case WHO_OWNER_IN_GROUP:
		return tls_file_readable_by(path, acc_uid, acc_gid, NULL, 0);
	case WHO_GROUP:
		return tls_file_readable_by(path, 7001, acc_gid, none, 2);
	case WHO_SUPP:
		return tls_file_readable_by(path, 7001, 9003, supp, 3);
	case WHO_OTHER:
		return tls_file_readable_by(path, 7001, 9003, none, 2);
	case WHO_ROOT:
		return tls_file_readable_by(path, 0, 0, NULL, 0);
	}
	return false;
}

static void
check_readable(const char *path, mode_t dmode, mode_t fmode, enum who w,
    bool want, const char *what)
{
	bool got = readable_as(path, w);

	if (got != want)
		fail_msg("%s: dir %03o file %03o as %s: got %s, want %s",
		    what, (unsigned int)dmode, (unsigned int)fmode,
		    who_names[w], got ? "readable" : "unreadable",
		    want ? "readable" : "unreadable");
}

static void
test_readable_by(void **state)
{
	static const struct {
		mode_t dmode, fmode;
		bool want[6];	/* by enum who */
	} cases[] = {
		/* owner, owner-in-group, group, supp, other, root */
		{ 0755, 0400, { 1, 1, 0, 0, 0, 1 } },
		{ 0755, 0600, { 1, 1, 0, 0, 0, 1 } },
		{ 0755, 0200, { 0, 0, 0, 0, 0, 1 } },
		/* The owner class wins even when the group bit is set. */
		{ 0755, 0040, { 0, 0, 1, 1, 0, 1 } },
		{ 0755, 0640, { 1, 1, 1, 1, 0, 1 } },
		{ 0755, 0004, { 0, 0, 0, 0, 1, 1 } },
		{ 0755, 0044, { 0, 0, 1, 1, 1, 1 } },
		{ 0755, 0000, { 0, 0, 0, 0, 0, 1 } },
		/* Directories need search (x), not read. */
		{ 0700, 0644, { 1, 1, 0, 0, 0, 1 } },
		{ 0711, 0644, { 1, 1, 1, 1, 1, 1 } },
		{ 0750, 0640, { 1, 1, 1, 1, 0, 1 } },
		{ 0740, 0644, { 1, 1, 0, 0, 0, 1 } },
		/* /etc/ssl/private on Debian. */
		{ 0710, 0640, { 1, 1, 1, 1, 0, 1 } },
		/* Last: unless root, we own the directory and cannot look
		 * into it either (see tls.h). */
		{ 0601, 0644, { 0, 0, 0, 0, 1, 1 } },
	};
	char dir[PATH_MAX], file[PATH_MAX], ldir[PATH_MAX], link[PATH_MAX];
	char rel[PATH_MAX], cwd[PATH_MAX];
	size_t i;
	int w;

	(void)state;
	acc_uid = geteuid() == 0 ? 5000 : getuid();
	acc_gid = geteuid() == 0 ? 6000 : getgid();
	path_of(dir, "acc");
	path_of(file, "acc/key.pem");
	path_of(ldir, "links");
	path_of(link, "links/key.pem");
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(mkdir(ldir, 0755), 0);
	write_text(file, "key\n");
	assert_int_equal(symlink("../acc/key.pem", link), 0);
	if (geteuid() == 0) {
		assert_int_equal(chown(dir, acc_uid, acc_gid), 0);
		assert_int_equal(chown(file, acc_uid, acc_gid), 0);
	}
	for (i = 0; i < nitems(cases); i++) {
		if (geteuid() != 0 && (cases[i].dmode & 0100) == 0)
			continue;
		/* File first: dir modes without x stop its owner too. */
		assert_int_equal(chmod(file, cases[i].fmode), 0);
		assert_int_equal(chmod(dir, cases[i].dmode), 0);
		for (w = WHO_OWNER; w <= WHO_ROOT; w++) {
			check_readable(file, cases[i].dmode, cases[i].fmode,
			    w, cases[i].want[w], "direct");
			/* Through a symlink in an open directory: the
			 * target's directory still decides. */
			check_readable(link, cases[i].dmode, cases[i].fmode,
			    w, cases[i].want[w], "symlink");
		}
	}
	/* A closed directory in front of the symlink. */
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(chmod(file, 0644), 0);
	check_readable(link, 0755, 0644, WHO_OTHER, true, "link dir 0755");
	assert_int_equal(chmod(ldir, 0700), 0);
	check_readable(link, 0700, 0644, WHO_OTHER, false, "link dir 0700");
	check_readable(file, 0755, 0644, WHO_OTHER, true, "beside it");
	assert_int_equal(chmod(ldir, 0755), 0);

	/* Relative paths resolve against the working directory. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	strlcpy(rel, "key.pem", sizeof(rel));
	check_readable(rel, 0755, 0644, WHO_OTHER, true, "relative");
	assert_int_equal(chmod(dir, 0700), 0);
	check_readable(rel, 0700, 0644, WHO_OTHER, false, "relative");
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(chmod(dir, 0755), 0);

	/* Missing files are never readable. */
	check_readable(f.missing, 0755, 0, WHO_ROOT, false, "missing");
	check_readable(f.missing, 0755, 0, WHO_OWNER, false, "missing");
	assert_false(tls_file_readable_by("", 0, 0, NULL, 0));
	assert_false(tls_file_readable_by(NULL, 0, 0, NULL, 0));
}

/* A POSIX ACL as Linux stores it in system.posix_acl_access. */
static int
set_acl(const char *path, const unsigned int (*ent)[3], size_t n)
{
	unsigned char buf[4 + 8 * 16], *p;
	size_t i;

	assert_true(n <= 16);
	buf[0] = 2;
	buf[1] = buf[2] = buf[3] = 0;
	for (i = 0; i < n; i++) {
		p = buf + 4 + 8 * i;
		p[0] = ent[i][0] & 0xff;
		p[1] = ent[i][0] >> 8;
		p[2] = ent[i][1] & 0xff;
		p[3] = ent[i][1] >> 8;
		p[4] = ent[i][2] & 0xff;
		p[5] = (ent[i][2] >> 8) & 0xff;
		p[6] = (ent[i][2] >> 16) & 0xff;
		p[7] = (ent[i][2] >> 24) & 0xff;
	}
	return setxattr(path, "system.posix_acl_access", buf, 4 + 8 * n, 0);
}

static void
test_readable_by_acl(void **state)
{
	/* tag, perm, id; as setfacl writes them (sorted by tag). */
	const unsigned int user_r[][3] = {
		{ 0x01, 6, 0 }, { 0x02, 4, 7001 }, { 0x04, 0, 0 },
		{ 0x10, 4, 0 }, { 0x20, 0, 0 },
	};
	const unsigned int user_masked[][3] = {
		{ 0x01, 6, 0 }, { 0x02, 4, 7001 }, { 0x04, 0, 0 },
		{ 0x10, 0, 0 }, { 0x20, 0, 0 },
	};
	const unsigned int group_r[][3] = {
		{ 0x01, 6, 0 }, { 0x04, 0, 0 }, { 0x08, 4, 8000 },
		{ 0x10, 4, 0 }, { 0x20, 4, 0 },
	};
	const unsigned int dir_nox[][3] = {
		{ 0x01, 7, 0 }, { 0x02, 0, 7001 }, { 0x04, 5, 0 },
		{ 0x10, 5, 0 }, { 0x20, 5, 0 },
	};
	gid_t g8000[1] = { 8000 };
	char dir[PATH_MAX], file[PATH_MAX];

	(void)state;
	path_of(dir, "acl");
	path_of(file, "acl/key.pem");
	assert_int_equal(mkdir(dir, 0755), 0);
	write_text(file, "key\n");
	assert_int_equal(chmod(file, 0600), 0);
	if (set_acl(file, user_r, nitems(user_r)) == -1) {
		if (errno == ENOTSUP || errno == EOPNOTSUPP) {
			print_message("ACLs not supported here: skipped\n");
			skip();
		}
		fail_msg("setxattr: %s", strerror(errno));
	}
	/* Named user with r, mask r: in; everybody else: out. */
	assert_true(tls_file_readable_by(file, 7001, 9003, NULL, 0));
	assert_false(tls_file_readable_by(file, 7002, 9003, NULL, 0));
	/* The mask limits named entries. */
	assert_int_equal(set_acl(file, user_masked, nitems(user_masked)), 0);
	assert_false(tls_file_readable_by(file, 7001, 9003, NULL, 0));
	/* A named group, as a supplementary group; a group member does not
	 * fall through to "other" when its group entries deny. */
	assert_int_equal(set_acl(file, group_r, nitems(group_r)), 0);
	assert_true(tls_file_readable_by(file, 7002, 9003, g8000, 1));
	assert_true(tls_file_readable_by(file, 7002, 9003, NULL, 0));
	/* Directory ACL: the named user lacks search permission. */
	assert_int_equal(set_acl(dir, dir_nox, nitems(dir_nox)), 0);
	assert_false(tls_file_readable_by(file, 7001, 9003, g8000, 1));
	assert_true(tls_file_readable_by(file, 7002, 9003, g8000, 1));
	assert_int_equal(removexattr(dir, "system.posix_acl_access"), 0);
	assert_int_equal(removexattr(file, "system.posix_acl_access"), 0);
}

/* --- tls_describe ----------------------------------------------------- */

static void
test_describe(void **state)
{
	const struct tls_pair_config pair = { NULL, f.default_pem,
		f.default_key };
	static const struct {
		int client_max;
		const char *prefix;
	} cases[] = {
		{ 0, "TLSv1.3 TLS_" },
		{ TLS1_2_VERSION, "TLSv1.2 ECDHE-ECDSA-" },
	};
	struct tls_server *srv;
	SSL_CTX *cctx;
	struct conn cn;
	char got[128], want[128], small[8];
	size_t i;
	SSL *fresh;

	(void)state;
	srv = server_or_fail(&pair, 1, NULL, NULL);
	for (i = 0; i < nitems(cases); i++) {
		cctx = client_ctx(cases[i].client_max, NULL);
		conn_open(&cn, tls_server_ssl_new(srv), cctx, NULL);
		assert_true(cn.ok);
		tls_describe(cn.s, got, sizeof(got));
		/* What the client negotiated, in the same form. */
		snprintf(want, sizeof(want), "%s %s", SSL_get_version(cn.c),
		    SSL_CIPHER_get_name(SSL_get_current_cipher(cn.c)));
		if (strcmp(got, want) != 0 ||
		    strncmp(got, cases[i].prefix,
		    strlen(cases[i].prefix)) != 0)
			fail_msg("got \"%s\", want \"%s\" starting with "
			    "\"%s\"", got, want, cases[i].prefix);
		/* One space, printable: fit for a header comment. */
		assert_ptr_equal(strchr(got, ' '), strrchr(got, ' '));
		for (size_t k = 0; got[k] != '\0'; k++)
			assert_true(got[k] >= ' ' && got[k] < 127);
		tls_describe(cn.s, small, sizeof(small));
		assert_int_equal(strlen(small), sizeof(small) - 1);
		assert_memory_equal(small, want, sizeof(small) - 1);
		conn_close(&cn);
		SSL_CTX_free(cctx);
	}
	/* Before a handshake, and without an SSL. */
	fresh = tls_server_ssl_new(srv);
	strlcpy(got, "untouched", sizeof(got));
	tls_describe(fresh, got, sizeof(got));
	assert_string_equal(got, "");
	SSL_free(fresh);
	strlcpy(got, "untouched", sizeof(got));
	tls_describe(NULL, got, sizeof(got));
	assert_string_equal(got, "");
	tls_describe(NULL, got, 0);
	tls_server_unref(srv);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sni_chooses_pair),
		cmocka_unit_test(test_sni_first_pair_is_default),
		cmocka_unit_test(test_chain_and_combined_file),
		cmocka_unit_test(test_protocols),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_unreadable_file),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_references),
		cmocka_unit_test(test_selfsigned),
		cmocka_unit_test(test_selfsigned_errors),
		cmocka_unit_test(test_readable_by),
		cmocka_unit_test(test_readable_by_acl),
		cmocka_unit_test(test_describe),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
