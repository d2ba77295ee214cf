/*
 * conf.h: the configuration file. One directive per line, '#' starts a
 * comment, a repeated directive adds to a list (docs/configuration.md).
 *
 * conf_load() parses a file into a new struct conf; every error is reported
 * through the callback as FILE:LINE: message and the load fails as a whole,
 * so a reload with a broken file keeps the old configuration.
 * conf_default() builds the built-in default used when no file exists.
 */
#ifndef PETREL_CONF_CONF_H
#define PETREL_CONF_CONF_H

#include <netinet/in.h>
#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum conf_role {
	CONF_ROLE_MX,
	CONF_ROLE_SUBMISSION,
	CONF_ROLE_SUBMISSIONS,
	/* issue 6: the daemon's own RUN_DIR/sendmail socket and maildrop
	 * pickup (src/smtp/local.c); never from `listen`. */
	CONF_ROLE_LOCAL,
};

/* issue 8: `sandbox yes|no|log` (src/daemon/sandbox.c). */
enum conf_sandbox {
	CONF_SANDBOX_YES,	/* the default: the seccomp allow-list */
	CONF_SANDBOX_NO,
	CONF_SANDBOX_LOG,	/* allow everything; the kernel logs the rest */
};

enum conf_bare_lf {
	CONF_BARE_LF_REJECT,
	CONF_BARE_LF_NORMALIZE,
};

struct conf_listen {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char text[128];		/* "127.0.0.1:2525" or "[::1]:25" as written */
	char host[64];		/* numeric address without brackets */
	unsigned int port;
	enum conf_role role;
};

/* A network for `trusted`: address family, address bytes, prefix length. */
struct conf_net {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned int prefix;
};

/* A certificate and its key; name NULL for the default pair (no SNI). */
struct conf_tls_pair {
	char *name;		/* SNI host name (lower case) or NULL */
	char *cert;		/* PEM file, full chain */
	char *key;		/* PEM file */
	unsigned int cert_line, key_line;	/* for errors */
};

enum conf_auth_backend {
	CONF_AUTH_USERS,	/* the users file, crypt(3) hashes */
	CONF_AUTH_DOVECOT,	/* Dovecot's auth-client socket */
};

/*
 * A DKIM signing key, one `dkim_sign DOMAIN SELECTOR KEYFILE` line. The
 * parser checks the names only: the daemon loads keyfile (as it does
 * TLS keys), at start, on reload and in check-config.
 */
struct conf_dkim_key {
	char *domain;		/* lower case; the From: domain it signs */
	char *selector;		/* as written: s= and the key's DNS name
				 * "<selector>._domainkey.<domain>" */
	char *keyfile;		/* PEM private key (RSA or Ed25519) */
	unsigned int line;	/* for errors */
};

/* RFC 7489 6.6.1: a message whose From: has several different domains. */
enum conf_dmarc_multiple_from {
	CONF_DMARC_MULTIPLE_FROM_REJECT,	/* refuse it (default) */
	CONF_DMARC_MULTIPLE_FROM_EVALUATE,	/* evaluate each domain, the
						 * strictest policy wins */
};

/*
 * A next hop that replaces the MX lookup: `relayhost` for all non-local
 * mail, or one line of the `transport` file for a domain.
 */
enum conf_route_kind {
	CONF_ROUTE_SMTP,
	CONF_ROUTE_LMTP_UNIX,
	CONF_ROUTE_LMTP_INET,
	CONF_ROUTE_DISCARD,	/* transport only: accept, then drop */
};

struct conf_route {
	char *domain;		/* transport: "example.com", ".example.com"
				 * (its subdomains) or "*"; relayhost: NULL */
	enum conf_route_kind kind;
	char *host;		/* name or numeric address, no brackets;
				 * NULL for lmtp:unix: */
	unsigned int port;
	bool mx;		/* smtp:host without brackets: host's MX */
	char *path;		/* lmtp:unix: socket path; discard: its
				 * text (maybe ""); else NULL */
	char *text;		/* the next hop as written, for logs */
};

struct conf {
	char *path;		/* file it came from, or NULL for built-in */

	char *hostname;
	char *spool;
	char *run_dir;		/* sockets: control, sendmail */
	char *maildrop;		/* sendmail's drop box when the daemon
				 * is down (petrel-postdrop writes it) */
	char *maildir;		/* template with %d and %u */
	struct conf_route *deliver_lmtp; /* `deliver lmtp TARGET`: local
					 * recipients over LMTP; NULL:
					 * `deliver maildir` (default) */
	char *users;		/* path or NULL */
	char *aliases;		/* path or NULL */
	char *user;		/* user to drop to when started as root */
	/* issue 6, logging: `log stderr|syslog`, `log_file PATH` */
	bool log_syslog;	/* log syslog: lines to syslog, not stderr */
	char *log_file;		/* also appended here, or NULL */

	struct conf_listen *listen;
	size_t nlisten;
	struct conf_listen *metrics;	/* issue 6: `metrics ADDR:PORT`, the
					 * Prometheus endpoint; NULL: off */
	char **domains;		/* lower-case; never empty after
				 * conf_load(): the host name if the file
				 * has no `domain` line */
	size_t ndomains;
	struct conf_net *trusted;
	size_t ntrusted;
	char **dns;		/* "127.0.0.1:5353" as written */
	size_t ndns;

	uint64_t max_message_size;
	uint64_t max_recipients;
	uint64_t max_line_length;
	uint64_t max_connections;
	uint64_t max_connections_per_ip;
	uint64_t max_errors;
	uint64_t max_hops;
	uint64_t max_header_size;	/* all header lines of a message */
	uint64_t greeting_delay;	/* seconds before the 220 (0: none) */
	uint64_t timeout_command;	/* seconds */
	uint64_t timeout_data;		/* seconds */
	uint64_t timeout_shutdown;	/* seconds to let DATA finish */
	uint64_t delivery_workers;	/* threads for Maildir delivery */
	uint64_t spool_sync_workers;	/* threads doing file fsyncs */
	uint64_t queue_lifetime;	/* seconds before giving up */
	enum conf_bare_lf bare_lf;
	enum conf_sandbox sandbox;	/* issue 8 */

	/* Outbound delivery (docs/configuration.md, "Sending mail"). */
	bool dnssec;			/* validate DNSSEC (default off) */
	bool inet6;			/* use AAAA records (default on) */
	uint64_t dns_max_queries;	/* simultaneous DNS queries */
	struct conf_route *relayhost;	/* or NULL: MX lookup */
	char *relayhost_auth_user;	/* or NULL */
	char *relayhost_auth_file;	/* password file, or NULL */
	char *relayhost_auth_password;	/* its first line, read by the
					 * daemon after conf_load() (not by
					 * the parser), or NULL */
	char *transport;		/* path of the transport file or NULL */
	struct conf_route *routes;	/* its lines, in file order */
	size_t nroutes;
	char *smtp_bind_address;	/* numeric IPv4 source, or NULL */
	char *smtp_bind_address6;	/* numeric IPv6 source, or NULL */
	uint64_t destination_concurrency; /* connections per destination */
	uint64_t max_outbound_connections; /* connections in all */
	uint64_t max_messages_per_connection;
	uint64_t client_timeout_connect;	/* seconds */
	uint64_t client_timeout_command;	/* seconds, per reply */
	uint64_t client_timeout_data;	/* seconds, DATA/BDAT and final dot */
	uint64_t retry_initial;		/* seconds before the first retry */
	uint64_t retry_max;		/* longest wait between attempts */
	uint64_t delay_warning;		/* seconds; 0: no delay DSN */
	uint64_t bounce_size_limit;	/* bytes of a message in a bounce */
	char *double_bounce;		/* address for failed bounces, or NULL
					 * (dropped with a log line) */

	/* TLS and SMTP AUTH (docs/configuration.md, "TLS and AUTH"). */
	struct conf_tls_pair *tls;	/* the default pair (name NULL) and
					 * SNI pairs; none: self-signed */
	size_t ntls;
	char *tls_protocols;		/* "TLSv1.2 TLSv1.3" */
	char *tls_ciphers;		/* OpenSSL cipher list (TLS 1.2) */
	bool auth_plaintext;		/* AUTH without TLS (default no) */
	uint64_t auth_fail_delay;	/* seconds, doubled per failure */
	uint64_t auth_max_failures;	/* then 421 4.7.0 */
	bool mx_auth;			/* offer AUTH on mx listeners */
	bool sender_login;		/* MAIL FROM and From: must be the
					 * user's own (default yes) */
	bool received_auth_name;	/* login name in Received: */
	enum conf_auth_backend auth_backend;
	char *auth_socket;		/* dovecot: unix socket path */

	/*
	 * SPF, DKIM and DMARC (docs/configuration.md, "SPF, DKIM and
	 * DMARC"). Verification applies to mail from clients that are
	 * neither authenticated nor trusted; signing to mail from those that
	 * are.
	 */
	bool msgauth;			/* verify incoming mail and add
					 * Authentication-Results (default
					 * yes); signing is dkim_sign's */
	bool spf_reject;		/* SPF fail: 550 5.7.23 at MAIL */
	bool spf_temperror_defer;	/* SPF temperror: 451 4.7.24 */
	bool spf_helo;			/* check HELO also when MAIL FROM is
					 * not <> (smtp.helo) */
	struct conf_dkim_key *dkim_keys; /* in file order; NULL: no signing */
	size_t ndkim_keys;
	uint64_t dkim_max_signatures;	/* verified per message (1-20) */
	bool dkim_allow_sha1;		/* rsa-sha1 may pass (RFC 8301: no,
					 * the default) */
	bool dmarc_enforce;		/* act on p=reject and p=quarantine
					 * (default yes) */
	enum conf_dmarc_multiple_from dmarc_multiple_from;
	char *quarantine_folder;	/* Maildir++ folder for p=quarantine
					 * ("Junk": .Junk/), or NULL */
};

/* Called once per error with "FILE:LINE: message" already formatted. */
typedef void (*conf_error_cb)(void *arg, const char *msg);

/*
 * Parse path. Returns a new conf, or NULL after reporting every error
 * through cb (never stops at the first one). The result has every default
 * filled in for directives the file does not set.
 */
struct conf *conf_load(const char *path, conf_error_cb cb, void *arg);

/* The built-in default (docs/configuration.md, "Built-in default"). */
struct conf *conf_default(void);

void conf_free(struct conf *c);

/* Is domain (any case) one of ours? */
bool conf_is_local_domain(const struct conf *c, const char *domain);

/* Is the address (AF_INET/AF_INET6 sockaddr) in a trusted network? */
bool conf_is_trusted(const struct conf *c, const struct sockaddr *sa);

/*
 * Where the configuration comes from: -c FILE (cli_path), else
 * $PETREL_CONFIG, else /etc/petrel/petrel.conf if it exists, else NULL
 * (the built-in default). *source_r names the rule that chose it.
 */
const char *conf_locate(const char *cli_path, const char **source_r);

/* The system-wide file conf_locate() looks for. */
#define CONF_SYSTEM_PATH "/etc/petrel/petrel.conf"

/*
 * conf_locate() with another system-wide path (for tests): *source_r is
 * "command line", "PETREL_CONFIG", system_path or "built-in default". A
 * system_path that exists, or cannot be checked for another reason than
 * ENOENT/ENOTDIR (so that loading it reports the problem), is chosen.
 * An empty $PETREL_CONFIG counts as unset. The returned pointer is
 * cli_path, getenv()'s, or system_path: do not free it.
 */
const char *conf_locate_from(const char *cli_path, const char *system_path,
    const char **source_r);

const char *conf_role_name(enum conf_role role);

/*
 * The dkim_sign keys for a From: domain, in file order: the next key at
 * index *iter or after whose domain equals domain (any case, exact: a
 * key for example.test does not sign for sub.example.test), with *iter
 * advanced past it, or NULL when there is none left. Start with
 * *iter = 0. Several keys for one domain (RSA and Ed25519) each sign.
 */
const struct conf_dkim_key *conf_dkim_key_next(const struct conf *c,
    const char *domain, size_t *iter);

/*
 * The transport line for domain (lower-case): an exact line, else the
 * nearest ".parent" line, else "*", else NULL.
 */
const struct conf_route *conf_route_find(const struct conf *c,
    const char *domain);

/*
 * Parse a next hop: "smtp:[host]:port", "smtp:host", "lmtp:unix:/path",
 * "lmtp:inet:host:port" (with_scheme), or relayhost's "[host]:port",
 * "host". Returns 0, or -1 with *error_r. Fills r (domain left NULL);
 * free with conf_route_clear().
 */
int conf_route_parse(const char *s, bool with_scheme, struct conf_route *r,
    const char **error_r);
void conf_route_clear(struct conf_route *r);

#endif
