/*
 * tls.h: OpenSSL 3 server contexts for the listeners (STARTTLS on mx and
 * submission, implicit TLS on submissions): certificate/key pairs chosen
 * by SNI, protocol and cipher policy, a self-signed fallback certificate,
 * and the start-up check that the daemon's user can read the files.
 *
 * Use:
 *
 *   srv = tls_server_new(&cfg, err, sizeof(err));   start-up, SIGHUP
 *   ssl = tls_server_ssl_new(srv);                  one per connection
 *   ... hand ssl to libevent (bufferevent_openssl_*_new) ...
 *   tls_describe(ssl, buf, sizeof(buf));            after the handshake
 *   tls_server_unref(srv);                          on reload or exit
 *
 * A reload builds a new server with tls_server_new() and, only if that
 * succeeded, unrefs the old one: every file is read completely inside
 * tls_server_new(), so a key that cannot be read fails there and the old
 * server stays in use. Connections already using the old server keep it
 * (see OWNERSHIP).
 *
 * SNI (RFC 6066 3): the client's server_name, lowercased and without a
 * trailing dot, is looked up (1) among the pairs with exactly that name,
 * (2) among wildcard pairs "*.SUFFIX" when the name is one label (not
 * empty, no dot) followed by ".SUFFIX", (3) else the default pair: the
 * one configured without a name, or the first pair when every pair has a
 * name. A client without SNI, or with a name nothing matches, gets the
 * default pair; the handshake is never refused for its name.
 *
 * Policy set on every context: protocol range from cfg->protocols
 * (default TLS 1.2 and 1.3), cfg->ciphers for TLS <= 1.2 (default
 * TLS_CIPHERS_DEFAULT, Mozilla "intermediate"; TLS 1.3 suites keep
 * OpenSSL's defaults), server cipher preference, no compression
 * (CRIME), no renegotiation (client-initiated renegotiation DoS,
 * CVE-2009-3555 class), SSL_OP_IGNORE_UNEXPECTED_EOF (many SMTP clients
 * hang up without close_notify, and libevent 2.1.12 predates OpenSSL 3),
 * ECDHE and built-in DHE groups, session tickets and a server session
 * cache, no client certificates.
 *
 * SECURITY: certificate and key files are trusted configuration, read
 * with the privileges of the caller (a reload after the privilege drop
 * reads them as the daemon's user). Encrypted keys are refused (no
 * passphrase prompt ever reaches a terminal). Key material read from disk
 * is wiped from our buffers after parsing. The handshake itself (SNI
 * name, ClientHello) is untrusted input handled by OpenSSL; the SNI
 * callback only compares the name with configured ones.
 * STANDARDS: RFC 8446 (TLS 1.3), RFC 5246 (TLS 1.2), RFC 6066 3 (SNI),
 * RFC 8996 (TLS 1.0 and 1.1 deprecated: off by default), RFC 6125 6.4.3
 * (one-label wildcards), RFC 8314 (implicit TLS for submission), RFC
 * 3207 (STARTTLS), RFC 5280 (the self-signed certificate).
 * OWNERSHIP: a struct tls_server is reference counted (atomically: refs
 * may be dropped from any thread). tls_server_new() returns it with one
 * reference. Every SSL made by tls_server_ssl_new() holds its own
 * reference, released when that SSL is freed, so a server lives as long
 * as any of its connections even if nobody else holds it; a session that
 * wants the server for other purposes takes tls_server_ref() itself.
 */
#ifndef PETREL_TLS_TLS_H
#define PETREL_TLS_TLS_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

/*
 * Mozilla "intermediate" (server side TLS guidelines v5.7) for TLS 1.2;
 * TLS 1.3 suites are not set by this string.
 */
#define TLS_CIPHERS_DEFAULT						\
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"	\
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"	\
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"	\
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"		\
	"DHE-RSA-CHACHA20-POLY1305"
/*
 * When TLS 1.0 or 1.1 is enabled and the cipher list is the default: the
 * default plus Mozilla "old" CBC suites, since those versions have no
 * AEAD cipher and the default alone would make enabling them a no-op.
 */
#define TLS_CIPHERS_LEGACY	TLS_CIPHERS_DEFAULT ":"			\
	"ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:"			\
	"ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:"			\
	"AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA:AES256-SHA"
#define TLS_PROTOCOLS_DEFAULT	"TLSv1.2 TLSv1.3"

/* Limits on configuration (not on network input). */
#define TLS_PAIRS_MAX		256		/* certificate/key pairs */
#define TLS_FILE_MAX		(1024 * 1024)	/* bytes in one PEM file */

/* Directory and files of the self-signed fallback, under the spool. */
#define TLS_SELFSIGNED_DIR	"tls"
#define TLS_SELFSIGNED_CERT	"selfsigned.pem"
#define TLS_SELFSIGNED_KEY	"selfsigned.key"
#define TLS_SELFSIGNED_DAYS	3650

struct tls_pair_config {
	/*
	 * SNI name ("mail.example.test", or "*.example.test" for any one
	 * label in front of example.test), compared case-insensitively;
	 * NULL for the default pair.
	 */
	const char *name;
	const char *cert;	/* PEM: the certificate, then its chain */
	const char *key;	/* PEM private key, unencrypted; may equal
				   cert when one file holds both */
};

struct tls_config {
	const struct tls_pair_config *pairs;
	size_t npairs;		/* 1 .. TLS_PAIRS_MAX */
	/*
	 * Words among TLSv1 TLSv1.1 TLSv1.2 TLSv1.3, separated by spaces,
	 * tabs or commas, forming one contiguous range (OpenSSL has a
	 * minimum and a maximum, not a set). NULL or "": the default,
	 * TLS_PROTOCOLS_DEFAULT. When TLS 1.0 or 1.1 is enabled the
	 * OpenSSL security level is lowered to 0 first (those versions
	 * sign with SHA-1, which level 1 and above refuse; without this
	 * the setting would have no effect); "@SECLEVEL=N" in ciphers
	 * still overrides it.
	 */
	const char *protocols;
	/*
	 * OpenSSL cipher list for TLS <= 1.2; NULL: TLS_CIPHERS_DEFAULT.
	 * NULL or TLS_CIPHERS_DEFAULT with TLS 1.0 or 1.1 enabled:
	 * TLS_CIPHERS_LEGACY.
	 */
	const char *ciphers;
};

struct tls_server;

/*
 * Build a server from cfg: one SSL_CTX per pair, every file read and
 * parsed now. Returns a server with one reference, or NULL with err set
 * to "FILE: reason" for a file ("/etc/x.key: Permission denied",
 * "/etc/x.key: the key does not match the certificate in /etc/x.pem",
 * "/etc/x.pem: no certificate found", "/etc/x.key: encrypted keys are not
 * supported") or "tls_protocols: ..." / "tls_ciphers: ..." / "tls_cert:
 * ..." for the rest of the configuration. cfg and the strings it points
 * to are not kept. Leaves OpenSSL's error queue of this thread empty.
 */
struct tls_server *tls_server_new(const struct tls_config *cfg, char *err,
    size_t errlen);

/* Take another reference; returns srv. srv must not be NULL. */
struct tls_server *tls_server_ref(struct tls_server *srv);

/* Drop a reference; the last one frees the server. NULL is a no-op. */
void tls_server_unref(struct tls_server *srv);

/*
 * A new server-mode SSL for one connection (SSL_set_accept_state done),
 * starting on the default pair's context; the SNI callback switches it
 * (SSL_set_SSL_CTX) during the handshake. The SSL holds a reference to
 * srv until SSL_free(). The caller owns the SSL: hand it to a libevent
 * OpenSSL bufferevent with BEV_OPT_CLOSE_ON_FREE (which then frees it) or
 * SSL_free() it. Returns NULL only if OpenSSL cannot allocate.
 */
SSL *tls_server_ssl_new(struct tls_server *srv);

/*
 * The self-signed fallback: make sure DIR/tls/selfsigned.pem and
 * DIR/tls/selfsigned.key exist, creating them if either is missing: an
 * RSA 2048 key, a certificate for CN=hostname (when it fits in 64
 * octets) and SAN=DNS:hostname, valid TLS_SELFSIGNED_DAYS days, random
 * 128-bit serial. DIR must exist; DIR/tls is created 0700. Files are
 * written to temporary names, fsync'd, renamed (key first) and the
 * directory fsync'd; both are mode 0600. DIR/tls and new files are
 * chowned to uid/gid; (uid_t)-1 / (gid_t)-1 leave the owner or group
 * as made. Existing files are reused when they parse and the key
 * matches the certificate (the hostname is not compared: the same
 * certificate survives a rename, so clients that pinned it keep
 * working); if they exist but are unusable that is an error (the file
 * is left for the operator to look at), never a silent overwrite.
 * hostname: letters, digits, '-', '_' and '.', at most 253 octets.
 *
 * Returns 0 with *cert_r and *key_r set to allocated paths (the caller
 * frees them) and *created_r true if new files were written, else -1
 * with err set ("DIR/tls/selfsigned.pem: reason"). Logs nothing: the
 * caller logs "tls: generated a self-signed certificate for HOST in FILE"
 * when *created_r. SECURITY: DIR/tls must not be a symlink; files are
 * created with O_EXCL | O_NOFOLLOW relative to an O_NOFOLLOW directory
 * descriptor, so a daemon user who owns the spool cannot make root write
 * elsewhere.
 */
int tls_selfsigned_ensure(const char *dir, const char *hostname, uid_t uid,
    gid_t gid, char **cert_r, char **key_r, bool *created_r, char *err,
    size_t errlen);

/*
 * Can a process with uid, gid and the supplementary groups[0..ngroups)
 * open path for reading? Follows the kernel's rules: uid 0 always can;
 * every directory on the way (of the path as given and of its resolved
 * form, since symlinks may lead elsewhere) needs search permission, and
 * the file read permission, each judged by the owner, group or other
 * class (only the first class that applies counts: an owner without the
 * owner bit cannot read through the group bit) and by POSIX ACLs where
 * present. A path that does not exist, or that the calling process
 * cannot stat (so: call it as root), gives false. Not considered:
 * capabilities other than uid 0, LSMs, read-only mounts. Intended for the
 * start-up check, run as root before the privilege drop with the daemon
 * user's groups (getgrouplist(3)), so the daemon can say "tls_key FILE is
 * not readable by user petrel (add it to group ssl-cert)".
 */
bool tls_file_readable_by(const char *path, uid_t uid, gid_t gid,
    const gid_t *groups, size_t ngroups);

/*
 * "VERSION CIPHER" of a finished handshake, e.g. "TLSv1.3
 * TLS_AES_256_GCM_SHA384" or "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256"
 * (OpenSSL's names; both words are plain tokens, safe for logs and the
 * Received: header). Writes "" when ssl is NULL or no cipher has been
 * negotiated yet. Truncates to size - 1 octets; always NUL-terminates
 * when size > 0.
 */
void tls_describe(SSL *ssl, char *buf, size_t size);

#endif
