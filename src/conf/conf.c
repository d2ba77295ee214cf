/*
 * conf.c: the configuration file. conf_load() reads a file of directives
 * (one a line, '#' comments, whitespace-separated values) into a struct
 * conf; conf_default() builds the built-in default; conf_locate() decides
 * which file to read. docs/configuration.md documents every directive.
 *
 * Entry points: conf_load, conf_default, conf_free, conf_locate,
 * conf_is_local_domain, conf_is_trusted, conf_role_name,
 * conf_dkim_key_next.
 *
 * The parser is table-driven: one row per directive names its argument
 * count, whether it may repeat, and its handler. The dispatcher does the
 * generic checks (unknown, duplicate, argument count) so handlers only
 * validate their values. Every error is reported, never just the first, so
 * that `petrel check-config` lists everything wrong with a file at once.
 *
 * SECURITY: the file is written by the administrator and read with the
 * daemon's start-up privileges (usually root). Values are never passed to
 * a shell or to DNS: listen, trusted and dns take numeric addresses only.
 * Text quoted back in error messages is escaped (log_escape) because the
 * file may contain anything.
 * STANDARDS: RFC 5321 2.3.5 (domain syntax for hostname and domain),
 * RFC 5321 4.5.1 (postmaster must work: without a `domain` line the host
 * name is the local domain, like Postfix's mydestination = $myhostname),
 * RFC 4291 2.5.5.2 (IPv4-mapped IPv6 addresses in conf_is_trusted),
 * RFC 4632 (CIDR notation), RFC 6376 3.1 (DKIM selectors, the key's
 * name "<selector>._domainkey.<domain>"), RFC 8301 (rsa-sha1 off by
 * default), RFC 7489 6.6.1 (several From: domains).
 * OWNERSHIP: a struct conf owns every string and array it points to;
 * conf_free() releases them all.
 */
#include "conf/conf.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

/* Defaults for directives a file omits (docs/configuration.md). */
#define CONF_DEFAULT_SPOOL		"/var/spool/petrel"
#define CONF_DEFAULT_RUN_DIR		"/run/petrel"
#define CONF_DEFAULT_MAILDROP		"/var/spool/petrel-maildrop"
#define CONF_DEFAULT_MAILDIR		"/var/mail/%d/%u"
#define CONF_DEFAULT_USER		"petrel"
#define CONF_DEFAULT_LISTEN		"127.0.0.1:25"

/* The built-in default, used when no file exists. */
#define CONF_BUILTIN_LISTEN		"127.0.0.1:2525"
#define CONF_BUILTIN_SPOOL		"./var/spool"
#define CONF_BUILTIN_RUN_DIR		"./var/run"
#define CONF_BUILTIN_MAILDROP		"./var/maildrop"
#define CONF_BUILTIN_MAILDIR		"./var/mail/%d/%u"
#define CONF_BUILTIN_DOMAIN		"localhost"

/* Mozilla's "intermediate" configuration (TLS 1.2 ciphers; TLS 1.3 has
 * its own, all acceptable). */
#define CONF_DEFAULT_TLS_PROTOCOLS	"TLSv1.2 TLSv1.3"
#define CONF_DEFAULT_TLS_CIPHERS					\
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"	\
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"	\
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"	\
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"		\
	"DHE-RSA-CHACHA20-POLY1305"

/* The key record of dkim_sign's selector s and domain d is at
 * "s._domainkey.d" (RFC 6376 3.6.2.1), a DNS name of 253 octets at most. */
#define CONF_DKIM_KEY_INFIX		"._domainkey."
#define CONF_DNS_NAME_MAX		253
#define CONF_FOLDER_MAX			64	/* quarantine_folder octets */

#define DNS_DEFAULT_PORT		53
#define CONF_MAX_ARGS			16
#define CONF_ESCAPED_MAX		96	/* quoted text in messages */

struct conf_parser;
struct conf_directive;

typedef int (*conf_handler)(struct conf_parser *,
    const struct conf_directive *, char **);

enum conf_number_kind {
	CONF_NUMBER_COUNT,
	CONF_NUMBER_SIZE,
	CONF_NUMBER_DURATION,
};

struct conf_directive {
	const char *name;
	unsigned int min_args;
	unsigned int max_args;
	bool repeatable;
	conf_handler handler;
	/* numeric directives only */
	size_t offset;		/* of the uint64_t in struct conf */
	enum conf_number_kind kind;
	uint64_t min;
	uint64_t max;
	uint64_t def;		/* the default when the file omits it */
};

struct conf_parser {
	struct conf *c;
	const char *file;
	unsigned int line;
	conf_error_cb cb;
	void *arg;
	unsigned int nerrors;
	unsigned int *listen_lines;	/* line of each c->listen entry */
	unsigned int maildir_line;	/* of a valid maildir, or 0 */
	bool maildir_has_d;		/* that template has %d */
};

static int conf_set_hostname(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_set_string(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_add_listen(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_add_domain(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_set_maildir(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_add_trusted(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_add_dns(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_set_number(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_set_bare_lf(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_set_onoff(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_set_sandbox(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_set_relayhost(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_set_relayhost_auth(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_set_bind_address(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_set_double_bounce(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_add_tls_file(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_set_tls_protocols(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_set_auth(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_add_dkim_sign(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_set_dmarc_multiple_from(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_set_quarantine_folder(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_set_deliver(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_set_log(struct conf_parser *,
    const struct conf_directive *, char **);
static int conf_set_metrics(struct conf_parser *,
    const struct conf_directive *, char **);

#define KIB	((uint64_t)1024)
#define MIB	(KIB * 1024)
#define GIB	(MIB * 1024)
#define MINUTE	((uint64_t)60)
#define HOUR	(MINUTE * 60)
#define DAY	(HOUR * 24)

#define STRING(n, field)						\
	{ n, 1, 1, false, conf_set_string,				\
	    offsetof(struct conf, field), 0, 0, 0, 0 }
#define ONOFF(n, field)							\
	{ n, 1, 1, false, conf_set_onoff,				\
	    offsetof(struct conf, field), 0, 0, 0, 0 }
#define NUMBER(n, k, lo, hi, d)						\
	{ #n, 1, 1, false, conf_set_number,				\
	    offsetof(struct conf, n), k, lo, hi, d }

static const struct conf_directive directives[] = {
	{ "hostname", 1, 1, false, conf_set_hostname, 0, 0, 0, 0, 0 },
	STRING("spool", spool),
	STRING("run_dir", run_dir),
	STRING("maildrop", maildrop),
	/* issue 6, logging (docs/logging.md) */
	{ "log", 1, 1, false, conf_set_log, 0, 0, 0, 0, 0 },
	STRING("log_file", log_file),
	{ "listen", 1, 2, true, conf_add_listen, 0, 0, 0, 0, 0 },
	{ "domain", 1, 1, true, conf_add_domain, 0, 0, 0, 0, 0 },
	{ "maildir", 1, 1, false, conf_set_maildir, 0, 0, 0, 0, 0 },
	{ "deliver", 1, 2, false, conf_set_deliver, 0, 0, 0, 0, 0 },
	STRING("users", users),
	STRING("aliases", aliases),
	{ "trusted", 1, 1, true, conf_add_trusted, 0, 0, 0, 0, 0 },
	{ "dns", 1, 1, true, conf_add_dns, 0, 0, 0, 0, 0 },
	NUMBER(max_message_size, CONF_NUMBER_SIZE, 1, 4 * GIB,
	    36700160),
	NUMBER(max_recipients, CONF_NUMBER_COUNT, 1, 1000000, 1000),
	/* RFC 5321 4.5.3.1.6: a text line is at least 1000 octets. */
	NUMBER(max_line_length, CONF_NUMBER_SIZE, 1000, 16 * MIB, 65536),
	NUMBER(max_connections, CONF_NUMBER_COUNT, 1, 1000000, 1000),
	NUMBER(max_connections_per_ip, CONF_NUMBER_COUNT, 1, 1000000, 50),
	NUMBER(max_errors, CONF_NUMBER_COUNT, 1, 1000000, 20),
	NUMBER(max_hops, CONF_NUMBER_COUNT, 1, 10000, 100),
	NUMBER(max_header_size, CONF_NUMBER_SIZE, 1, GIB, MIB),
	NUMBER(timeout_command, CONF_NUMBER_DURATION, 1, DAY, 5 * MINUTE),
	NUMBER(timeout_data, CONF_NUMBER_DURATION, 1, DAY, 10 * MINUTE),
	/* 0 is meaningful: do not wait for sessions in DATA. */
	NUMBER(timeout_shutdown, CONF_NUMBER_DURATION, 0, HOUR, 30),
	NUMBER(greeting_delay, CONF_NUMBER_DURATION, 0, MINUTE, 0),
	{ "bare_lf", 1, 1, false, conf_set_bare_lf, 0, 0, 0, 0, 0 },
	STRING("user", user),
	{ "sandbox", 1, 1, false, conf_set_sandbox, 0, 0, 0, 0, 0 },
	NUMBER(delivery_workers, CONF_NUMBER_COUNT, 1, 256, 16),
	NUMBER(spool_sync_workers, CONF_NUMBER_COUNT, 1, 256, 8),
	NUMBER(queue_lifetime, CONF_NUMBER_DURATION, 1, 365 * DAY, 5 * DAY),
	/* Sending mail. */
	ONOFF("dnssec", dnssec),
	ONOFF("inet6", inet6),
	NUMBER(dns_max_queries, CONF_NUMBER_COUNT, 1, 100000, 100),
	{ "relayhost", 1, 1, false, conf_set_relayhost, 0, 0, 0, 0, 0 },
	{ "relayhost_auth", 2, 2, false, conf_set_relayhost_auth,
	    0, 0, 0, 0, 0 },
	STRING("transport", transport),
	{ "smtp_bind_address", 1, 1, false, conf_set_bind_address,
	    offsetof(struct conf, smtp_bind_address), 0, AF_INET, 0, 0 },
	{ "smtp_bind_address6", 1, 1, false, conf_set_bind_address,
	    offsetof(struct conf, smtp_bind_address6), 0, AF_INET6, 0, 0 },
	NUMBER(destination_concurrency, CONF_NUMBER_COUNT, 1, 10000, 20),
	NUMBER(max_outbound_connections, CONF_NUMBER_COUNT, 1, 100000, 500),
	NUMBER(max_messages_per_connection, CONF_NUMBER_COUNT, 1, 1000000,
	    100),
	/* RFC 5321 4.5.3.2: 5 min per command, 10 min for the final dot. */
	NUMBER(client_timeout_connect, CONF_NUMBER_DURATION, 1, HOUR, 30),
	NUMBER(client_timeout_command, CONF_NUMBER_DURATION, 1, HOUR,
	    5 * MINUTE),
	NUMBER(client_timeout_data, CONF_NUMBER_DURATION, 1, HOUR,
	    10 * MINUTE),
	NUMBER(retry_initial, CONF_NUMBER_DURATION, 1, DAY, 5 * MINUTE),
	NUMBER(retry_max, CONF_NUMBER_DURATION, 1, 7 * DAY, HOUR),
	/* 0 is meaningful: no delay notices. */
	NUMBER(delay_warning, CONF_NUMBER_DURATION, 0, 365 * DAY, 4 * HOUR),
	NUMBER(bounce_size_limit, CONF_NUMBER_SIZE, 0, 100 * MIB, 50 * KIB),
	{ "double_bounce", 1, 1, false, conf_set_double_bounce,
	    0, 0, 0, 0, 0 },
	/* TLS and SMTP AUTH. */
	{ "tls_cert", 1, 2, true, conf_add_tls_file, 0, 0, 0, 0, 0 },
	{ "tls_key", 1, 2, true, conf_add_tls_file, 0, 0, 1, 0, 0 },
	{ "tls_protocols", 1, 4, false, conf_set_tls_protocols,
	    0, 0, 0, 0, 0 },
	STRING("tls_ciphers", tls_ciphers),
	ONOFF("auth_plaintext", auth_plaintext),
	NUMBER(auth_fail_delay, CONF_NUMBER_DURATION, 0, MINUTE, 1),
	NUMBER(auth_max_failures, CONF_NUMBER_COUNT, 1, 1000, 3),
	ONOFF("mx_auth", mx_auth),
	ONOFF("sender_login", sender_login),
	ONOFF("received_auth_name", received_auth_name),
	{ "auth", 1, 2, false, conf_set_auth, 0, 0, 0, 0, 0 },
	/* SPF, DKIM and DMARC. */
	ONOFF("msgauth", msgauth),
	ONOFF("spf_reject", spf_reject),
	ONOFF("spf_temperror_defer", spf_temperror_defer),
	ONOFF("spf_helo", spf_helo),
	{ "dkim_sign", 3, 3, true, conf_add_dkim_sign, 0, 0, 0, 0, 0 },
	/* Each signature costs a DNS lookup and a public-key operation. */
	NUMBER(dkim_max_signatures, CONF_NUMBER_COUNT, 1, 20, 5),
	ONOFF("dkim_allow_sha1", dkim_allow_sha1),
	ONOFF("dmarc_enforce", dmarc_enforce),
	{ "dmarc_multiple_from", 1, 1, false, conf_set_dmarc_multiple_from,
	    0, 0, 0, 0, 0 },
	{ "quarantine_folder", 1, 1, false, conf_set_quarantine_folder,
	    0, 0, 0, 0, 0 },
	/* issue 6: the Prometheus endpoint (src/daemon/metrics_http.c). */
	{ "metrics", 1, 1, false, conf_set_metrics, 0, 0, 0, 0, 0 },
};

static const struct conf_directive *
conf_directive_find(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(directives); i++)
		if (strcmp(name, directives[i].name) == 0)
			return &directives[i];
	return NULL;
}

/* Add a listen address the code supplies (a default), or abort. */
static void
conf_add_listen_default(struct conf_parser *p, const char *addr)
{
	char buf[sizeof(((struct conf_listen *)0)->text)];
	char *args[] = { buf, NULL };

	strlcpy(buf, addr, sizeof(buf));
	if (conf_add_listen(p, conf_directive_find("listen"), args) == -1)
		fatalx("bad default listen address %s", addr);
}

static const char *const role_names[] = {
	[CONF_ROLE_MX] = "mx",
	[CONF_ROLE_SUBMISSION] = "submission",
	[CONF_ROLE_SUBMISSIONS] = "submissions",
};

static void conf_parser_error(struct conf_parser *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* Report "FILE:LINE: message" (or "FILE: message" when line is 0). */
static void
conf_parser_error(struct conf_parser *p, const char *fmt, ...)
{
	va_list ap;
	char *msg, *full;

	p->nerrors++;
	if (p->cb == NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatalx("out of memory");
	va_end(ap);
	if (p->line > 0)
		full = xasprintf("%s:%u: %s", p->file, p->line, msg);
	else
		full = xasprintf("%s: %s", p->file, msg);
	p->cb(p->arg, full);
	free(full);
	free(msg);
}

/* Escape s for quoting in an error message; returns dst. */
static char *
conf_escape(char *dst, size_t dstsize, const char *s)
{
	return log_escape(dst, dstsize, s, strlen(s));
}

/*
 * RFC 5321 2.3.5 domain: dot-separated labels of letters, digits and
 * hyphens, not starting or ending with a hyphen, 63 octets a label and
 * 253 in all. No trailing dot, no underscore: the name appears in EHLO.
 */
static bool
conf_is_valid_domain(const char *s)
{
	size_t len = strlen(s), label = 0;
	const char *p;

	if (len == 0 || len > 253)
		return false;
	for (p = s; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch == '.') {
			if (label == 0 || p[-1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (ch == '-' && label == 0)
			return false;
		if (!(ch == '-' || (ch >= '0' && ch <= '9') ||
		    (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && p[-1] != '-';
}

static char *
conf_default_hostname(void)
{
	char name[256];

	if (gethostname(name, sizeof(name)) == -1)
		return xstrdup("localhost");
	name[sizeof(name) - 1] = '\0';
	if (name[0] == '\0')
		return xstrdup("localhost");
	ascii_lowercase(name);
	return xstrdup(name);
}

static uint64_t *
conf_number_field(struct conf *c, const struct conf_directive *d)
{
	return (uint64_t *)(void *)((char *)c + d->offset);
}

static char **
conf_string_field(struct conf *c, const struct conf_directive *d)
{
	return (char **)(void *)((char *)c + d->offset);
}

/* A new conf with the defaults for directives a file omits. */
static struct conf *
conf_new_defaults(void)
{
	struct conf *c;
	size_t i;

	c = xcalloc(1, sizeof(*c));
	c->hostname = conf_default_hostname();
	c->spool = xstrdup(CONF_DEFAULT_SPOOL);
	c->run_dir = xstrdup(CONF_DEFAULT_RUN_DIR);
	c->maildrop = xstrdup(CONF_DEFAULT_MAILDROP);
	c->maildir = xstrdup(CONF_DEFAULT_MAILDIR);
	c->user = xstrdup(CONF_DEFAULT_USER);
	c->bare_lf = CONF_BARE_LF_REJECT;
	c->sandbox = CONF_SANDBOX_YES;
	c->inet6 = true;
	c->sender_login = true;
	c->tls_protocols = xstrdup(CONF_DEFAULT_TLS_PROTOCOLS);
	c->tls_ciphers = xstrdup(CONF_DEFAULT_TLS_CIPHERS);
	c->msgauth = true;
	c->dmarc_enforce = true;
	c->dmarc_multiple_from = CONF_DMARC_MULTIPLE_FROM_REJECT;
	for (i = 0; i < nitems(directives); i++)
		if (directives[i].handler == conf_set_number)
			*conf_number_field(c, &directives[i]) =
			    directives[i].def;
	return c;
}

static int
conf_set_hostname(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	char esc[CONF_ESCAPED_MAX];

	if (!conf_is_valid_domain(args[0])) {
		conf_parser_error(p, "%s: invalid host name \"%s\"", d->name,
		    conf_escape(esc, sizeof(esc), args[0]));
		return -1;
	}
	free(p->c->hostname);
	p->c->hostname = xstrdup(args[0]);
	return 0;
}

static int
conf_set_string(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	char **field = conf_string_field(p->c, d);

	free(*field);
	*field = xstrdup(args[0]);
	return 0;
}

static int
conf_parse_port(const char *s, unsigned int *port_r)
{
	const char *error;
	uint64_t v;

	if (parse_u64(s, 1, 65535, &v, &error) == -1)
		return -1;
	*port_r = (unsigned int)v;
	return 0;
}

/*
 * Split "a.b.c.d:port", "[v6]:port" (and, when port_optional, "a.b.c.d",
 * "v6" or "[v6]") into a numeric address and a port. Only numeric
 * addresses: configuration never triggers a DNS lookup.
 * Returns 0, or -1 with *error_r set.
 */
static int
conf_parse_hostport(const char *s, bool port_optional, char *host,
    size_t hostsize, int *family_r, uint8_t addr[16], unsigned int *port_r,
    const char **error_r)
{
	const char *portstr = NULL, *colon;
	size_t hlen;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (end == NULL) {
			*error_r = "missing ']'";
			return -1;
		}
		hlen = (size_t)(end - s - 1);
		if (end[1] == ':')
			portstr = end + 2;
		else if (end[1] != '\0') {
			*error_r = "expected ':' after ']'";
			return -1;
		}
		if (hlen >= hostsize) {
			*error_r = "invalid IPv6 address";
			return -1;
		}
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		*family_r = AF_INET6;
	} else {
		colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			/* Several colons: a bare IPv6 address, no port. */
			if (!port_optional) {
				*error_r = "an IPv6 address needs brackets, "
					   "as in [::1]:25";
				return -1;
			}
			colon = NULL;
			*family_r = AF_INET6;
		} else
			*family_r = AF_INET;
		hlen = colon != NULL ? (size_t)(colon - s) : strlen(s);
		if (colon != NULL)
			portstr = colon + 1;
		if (hlen >= hostsize) {
			*error_r = "not a numeric IPv4 address (no host names)";
			return -1;
		}
		memcpy(host, s, hlen);
		host[hlen] = '\0';
	}
	if (inet_pton(*family_r, host, addr) != 1) {
		*error_r = *family_r == AF_INET6 ? "invalid IPv6 address" :
		    "not a numeric IPv4 address (no host names)";
		return -1;
	}
	if (portstr == NULL) {
		if (!port_optional) {
			*error_r = "missing port";
			return -1;
		}
		*port_r = DNS_DEFAULT_PORT;
		return 0;
	}
	if (conf_parse_port(portstr, port_r) == -1) {
		*error_r = "invalid port (1-65535)";
		return -1;
	}
	return 0;
}

/* l's socket address from a parsed numeric address and l->port. */
static void
conf_listen_set_addr(struct conf_listen *l, int family, const uint8_t *addr)
{
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&l->addr;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)l->port);
		memcpy(&sin->sin_addr, addr, 4);
		l->addrlen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&l->addr;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)l->port);
		memcpy(&sin6->sin6_addr, addr, 16);
		l->addrlen = sizeof(*sin6);
	}
}

static int
conf_add_listen(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	struct conf *c = p->c;
	struct conf_listen l;
	char esc[CONF_ESCAPED_MAX];
	const char *error;
	uint8_t addr[16];
	size_t i;
	int family;

	memset(&l, 0, sizeof(l));
	if (strlcpy(l.text, args[0], sizeof(l.text)) >= sizeof(l.text)) {
		conf_parser_error(p, "%s: address too long \"%s\"", d->name,
		    conf_escape(esc, sizeof(esc), args[0]));
		return -1;
	}
	if (conf_parse_hostport(args[0], false, l.host, sizeof(l.host),
	    &family, addr, &l.port, &error) == -1) {
		conf_parser_error(p, "%s: bad address \"%s\": %s", d->name,
		    conf_escape(esc, sizeof(esc), args[0]), error);
		return -1;
	}
	l.role = CONF_ROLE_MX;
	if (args[1] != NULL) {
		for (i = 0; i < nitems(role_names); i++)
			if (strcmp(args[1], role_names[i]) == 0)
				break;
		if (i == nitems(role_names)) {
			conf_parser_error(p, "%s: unknown role \"%s\" "
			    "(mx, submission or submissions)", d->name,
			    conf_escape(esc, sizeof(esc), args[1]));
			return -1;
		}
		l.role = (enum conf_role)i;
	}
	conf_listen_set_addr(&l, family, addr);
	/* The same address twice would only fail later, at bind time. */
	for (i = 0; i < c->nlisten; i++) {
		if (c->listen[i].addrlen == l.addrlen &&
		    memcmp(&c->listen[i].addr, &l.addr, l.addrlen) == 0) {
			/* listen_lines has nlisten entries:
			 * NOLINTBEGIN(clang-analyzer-core.NullDereference) */
			conf_parser_error(p, "%s: \"%s\" already listed on "
			    "line %u", d->name,
			    conf_escape(esc, sizeof(esc), args[0]),
			    p->listen_lines[i]);
			/* NOLINTEND(clang-analyzer-core.NullDereference) */
			return -1;
		}
	}
	c->listen = xrealloc(c->listen, (c->nlisten + 1) * sizeof(l));
	p->listen_lines = xrealloc(p->listen_lines,
	    (c->nlisten + 1) * sizeof(*p->listen_lines));
	c->listen[c->nlisten] = l;
	p->listen_lines[c->nlisten] = p->line;
	c->nlisten++;
	return 0;
}

/*
 * issue 6: `metrics ADDR:PORT`, a numeric address as `listen` takes
 * (IPv6 in brackets). Served over plain HTTP without authentication:
 * docs/configuration.md says to keep it on loopback or a private network.
 */
static int
conf_set_metrics(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	struct conf_listen l;
	char esc[CONF_ESCAPED_MAX];
	const char *error;
	uint8_t addr[16];
	int family;

	memset(&l, 0, sizeof(l));
	if (strlcpy(l.text, args[0], sizeof(l.text)) >= sizeof(l.text)) {
		conf_parser_error(p, "%s: address too long \"%s\"", d->name,
		    conf_escape(esc, sizeof(esc), args[0]));
		return -1;
	}
	if (conf_parse_hostport(args[0], false, l.host, sizeof(l.host),
	    &family, addr, &l.port, &error) == -1) {
		conf_parser_error(p, "%s: bad address \"%s\": %s", d->name,
		    conf_escape(esc, sizeof(esc), args[0]), error);
		return -1;
	}
	conf_listen_set_addr(&l, family, addr);
	l.role = CONF_ROLE_MX;	/* unused */
	free(p->c->metrics);
	p->c->metrics = xmalloc(sizeof(l));
	*p->c->metrics = l;
	return 0;
}

static void
conf_push_string(char ***list, size_t *n, const char *s)
{
	*list = xrealloc(*list, (*n + 1) * sizeof(**list));
	(*list)[(*n)++] = xstrdup(s);
}

static int
conf_add_domain(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	char esc[CONF_ESCAPED_MAX];

	if (!conf_is_valid_domain(args[0])) {
		conf_parser_error(p, "%s: invalid domain \"%s\"", d->name,
		    conf_escape(esc, sizeof(esc), args[0]));
		return -1;
	}
	/* A domain listed twice is harmless: keep one copy. */
	if (conf_is_local_domain(p->c, args[0]))
		return 0;
	conf_push_string(&p->c->domains, &p->c->ndomains, args[0]);
	ascii_lowercase(p->c->domains[p->c->ndomains - 1]);
	return 0;
}

static int
conf_set_maildir(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	char esc[CONF_ESCAPED_MAX];
	const char *s;
	bool has_u = false, has_d = false;

	for (s = args[0]; *s != '\0'; s++) {
		if (*s != '%')
			continue;
		s++;
		if (*s == 'u')
			has_u = true;
		else if (*s == 'd')
			has_d = true;
		else if (*s == '\0') {
			conf_parser_error(p, "%s: lone %% at the end (write "
			    "%%%% for a literal %%)", d->name);
			return -1;
		}
		else if (*s != '%') {
			char bad[3] = { '%', *s, '\0' };

			conf_parser_error(p, "%s: unknown escape \"%s\" "
			    "(only %%d, %%u and %%%%)", d->name,
			    conf_escape(esc, sizeof(esc), bad));
			return -1;
		}
	}
	if (!has_u) {
		conf_parser_error(p, "%s: template must contain %%u",
		    d->name);
		return -1;
	}
	free(p->c->maildir);
	p->c->maildir = xstrdup(args[0]);
	p->maildir_line = p->line;
	p->maildir_has_d = has_d;
	return 0;
}

static int
conf_add_trusted(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	struct conf_net net;
	char host[INET6_ADDRSTRLEN + 1], esc[CONF_ESCAPED_MAX];
	char ntop[INET6_ADDRSTRLEN];
	const char *slash, *error;
	unsigned int maxprefix, i;
	uint64_t prefix;
	size_t hlen;
	bool host_bits = false;

	memset(&net, 0, sizeof(net));
	slash = strchr(args[0], '/');
	hlen = slash != NULL ? (size_t)(slash - args[0]) : strlen(args[0]);
	net.family = memchr(args[0], ':', hlen) != NULL ? AF_INET6 : AF_INET;
	maxprefix = net.family == AF_INET ? 32 : 128;
	if (hlen >= sizeof(host))
		goto bad;
	memcpy(host, args[0], hlen);
	host[hlen] = '\0';
	if (inet_pton(net.family, host, net.addr) != 1)
		goto bad;
	if (slash == NULL)
		prefix = maxprefix;
	else if (parse_u64(slash + 1, 0, maxprefix, &prefix, &error) == -1) {
		conf_parser_error(p, "%s: invalid prefix length in \"%s\" "
		    "(0-%u)", d->name, conf_escape(esc, sizeof(esc), args[0]),
		    maxprefix);
		return -1;
	}
	net.prefix = (unsigned int)prefix;
	/*
	 * 10.1.2.3/8 is ambiguous: the administrator meant either one host
	 * or 10.0.0.0/8. Refuse it and say which network the prefix means.
	 */
	for (i = 0; i < maxprefix / 8; i++) {
		uint8_t mask;

		if (i * 8 >= net.prefix)
			mask = 0;
		else if (i * 8 + 8 <= net.prefix)
			mask = 0xff;
		else
			mask = (uint8_t)(0xff << (8 - (net.prefix - i * 8)));
		if (net.addr[i] & ~mask) {
			host_bits = true;
			net.addr[i] &= mask;
		}
	}
	if (host_bits) {
		inet_ntop(net.family, net.addr, ntop, sizeof(ntop));
		conf_parser_error(p, "%s: host bits set in \"%s\" (the network "
		    "is %s/%u)", d->name,
		    conf_escape(esc, sizeof(esc), args[0]), ntop, net.prefix);
		return -1;
	}
	p->c->trusted = xrealloc(p->c->trusted,
	    (p->c->ntrusted + 1) * sizeof(net));
	p->c->trusted[p->c->ntrusted++] = net;
	return 0;

bad:
	conf_parser_error(p, "%s: invalid network \"%s\" (ADDRESS or "
	    "ADDRESS/PREFIX)", d->name, conf_escape(esc, sizeof(esc), args[0]));
	return -1;
}

static int
conf_add_dns(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	char host[64], esc[CONF_ESCAPED_MAX];
	const char *error;
	uint8_t addr[16];
	unsigned int port;
	int family;

	if (conf_parse_hostport(args[0], true, host, sizeof(host), &family,
	    addr, &port, &error) == -1) {
		conf_parser_error(p, "%s: bad address \"%s\": %s", d->name,
		    conf_escape(esc, sizeof(esc), args[0]), error);
		return -1;
	}
	conf_push_string(&p->c->dns, &p->c->ndns, args[0]);
	return 0;
}

static int
conf_set_number(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	static const char *const unit[] = {
		[CONF_NUMBER_COUNT] = "",
		[CONF_NUMBER_SIZE] = " bytes",
		[CONF_NUMBER_DURATION] = "s",
	};
	char esc[CONF_ESCAPED_MAX];
	const char *error = NULL;
	uint64_t v;
	int r;

	switch (d->kind) {
	case CONF_NUMBER_SIZE:
		r = parse_size(args[0], &v, &error);
		break;
	case CONF_NUMBER_DURATION:
		r = parse_duration(args[0], &v, &error);
		break;
	default:
		r = parse_u64(args[0], 0, UINT64_MAX, &v, &error);
		break;
	}
	if (r == -1 && strcmp(error, "too large") != 0) {
		conf_escape(esc, sizeof(esc), args[0]);
		if (d->kind == CONF_NUMBER_SIZE)
			conf_parser_error(p, "%s: invalid size \"%s\" (bytes, "
			    "or a number with k, m or g)", d->name, esc);
		else if (d->kind == CONF_NUMBER_DURATION)
			conf_parser_error(p, "%s: invalid duration \"%s\" "
			    "(seconds, or a number with s, m, h or d)",
			    d->name, esc);
		else
			conf_parser_error(p, "%s: invalid number \"%s\"",
			    d->name, esc);
		return -1;
	}
	if (r == -1 || v > d->max) {
		conf_parser_error(p, "%s: too large (maximum %llu%s)", d->name,
		    (unsigned long long)d->max, unit[d->kind]);
		return -1;
	}
	if (v < d->min) {
		conf_parser_error(p, "%s: too small (minimum %llu%s)", d->name,
		    (unsigned long long)d->min, unit[d->kind]);
		return -1;
	}
	*conf_number_field(p->c, d) = v;
	return 0;
}

/*
 * A directive that takes one of two words: 0 for first, 1 for second, or
 * -1 after the error "NAME: invalid value "X" (FIRST or SECOND)".
 */
static int
conf_choice(struct conf_parser *p, const struct conf_directive *d,
    const char *arg, const char *first, const char *second)
{
	char esc[CONF_ESCAPED_MAX];

	if (strcmp(arg, first) == 0)
		return 0;
	if (strcmp(arg, second) == 0)
		return 1;
	conf_parser_error(p, "%s: invalid value \"%s\" (%s or %s)", d->name,
	    conf_escape(esc, sizeof(esc), arg), first, second);
	return -1;
}

static int
conf_set_bare_lf(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	int v = conf_choice(p, d, args[0], "reject", "normalize");

	if (v == -1)
		return -1;
	p->c->bare_lf = v == 0 ? CONF_BARE_LF_REJECT : CONF_BARE_LF_NORMALIZE;
	return 0;
}

/* issue 6: `log stderr|syslog`. */
static int
conf_set_log(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	int v = conf_choice(p, d, args[0], "stderr", "syslog");

	if (v == -1)
		return -1;
	p->c->log_syslog = v == 1;
	return 0;
}

/* issue 8: `sandbox yes|no|log` (yes and no also as on and off). */
static int
conf_set_sandbox(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	char esc[CONF_ESCAPED_MAX];

	if (strcmp(args[0], "yes") == 0 || strcmp(args[0], "on") == 0)
		p->c->sandbox = CONF_SANDBOX_YES;
	else if (strcmp(args[0], "no") == 0 || strcmp(args[0], "off") == 0)
		p->c->sandbox = CONF_SANDBOX_NO;
	else if (strcmp(args[0], "log") == 0)
		p->c->sandbox = CONF_SANDBOX_LOG;
	else {
		conf_parser_error(p, "%s: invalid value \"%s\" (yes, no or "
		    "log)", d->name, conf_escape(esc, sizeof(esc), args[0]));
		return -1;
	}
	return 0;
}

static int
conf_set_onoff(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	bool *field = (bool *)(void *)((char *)p->c + d->offset);
	char esc[CONF_ESCAPED_MAX];

	if (strcmp(args[0], "on") == 0 || strcmp(args[0], "yes") == 0)
		*field = true;
	else if (strcmp(args[0], "off") == 0 || strcmp(args[0], "no") == 0)
		*field = false;
	else {
		conf_parser_error(p, "%s: invalid value \"%s\" (on or off)",
		    d->name, conf_escape(esc, sizeof(esc), args[0]));
		return -1;
	}
	return 0;
}

/* A host name as RFC 5321 2.3.5 spells it, or a numeric address. */
static bool
conf_is_valid_host(const char *s)
{
	uint8_t addr[16];

	if (inet_pton(AF_INET, s, addr) == 1 ||
	    inet_pton(AF_INET6, s, addr) == 1)
		return true;
	return conf_is_valid_domain(s);
}

/*
 * "[host]:port", "[host]", "host:port" or "host" (host a name, an IPv4
 * address, or in brackets an IPv6 address). Brackets mean "this host",
 * no MX lookup, as in Postfix.
 */
static int
conf_route_parse_host(const char *s, struct conf_route *r,
    const char **error_r)
{
	const char *portstr = NULL, *end;
	uint64_t port;
	size_t hlen;

	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL) {
			*error_r = "missing ']'";
			return -1;
		}
		hlen = (size_t)(end - s - 1);
		s++;
		r->mx = false;
		if (end[1] == ':')
			portstr = end + 2;
		else if (end[1] != '\0') {
			*error_r = "expected ':' after ']'";
			return -1;
		}
	} else {
		end = strchr(s, ':');
		if (end != NULL && strchr(end + 1, ':') != NULL) {
			*error_r = "an IPv6 address needs brackets, as in "
				   "[2001:db8::1]:25";
			return -1;
		}
		hlen = end != NULL ? (size_t)(end - s) : strlen(s);
		if (end != NULL)
			portstr = end + 1;
		r->mx = true;
	}
	if (hlen == 0 || hlen > 253) {
		*error_r = "missing or too long host";
		return -1;
	}
	r->host = xstrndup(s, hlen);
	ascii_lowercase(r->host);
	if (!conf_is_valid_host(r->host)) {
		*error_r = "invalid host name or address";
		return -1;
	}
	{
		uint8_t addr[16];

		/* An address is never looked up as an MX name. */
		if (inet_pton(AF_INET, r->host, addr) == 1 ||
		    inet_pton(AF_INET6, r->host, addr) == 1)
			r->mx = false;
	}
	r->port = 25;
	if (portstr != NULL) {
		if (parse_u64(portstr, 1, 65535, &port, error_r) == -1) {
			*error_r = "invalid port (1-65535)";
			return -1;
		}
		r->port = (unsigned int)port;
	}
	return 0;
}

int
conf_route_parse(const char *s, bool with_scheme, struct conf_route *r,
    const char **error_r)
{
	memset(r, 0, sizeof(*r));
	r->text = xstrdup(s);
	r->kind = CONF_ROUTE_SMTP;
	if (!with_scheme)
		return conf_route_parse_host(s, r, error_r);
	if (strncmp(s, "smtp:", 5) == 0)
		return conf_route_parse_host(s + 5, r, error_r);
	if (strncmp(s, "lmtp:unix:", 10) == 0) {
		r->kind = CONF_ROUTE_LMTP_UNIX;
		if (s[10] != '/') {
			*error_r = "lmtp:unix: needs an absolute socket path";
			return -1;
		}
		if (strlen(s + 10) >= sizeof(((struct sockaddr_un *)0)->
		    sun_path)) {
			*error_r = "socket path too long";
			return -1;
		}
		r->path = xstrdup(s + 10);
		return 0;
	}
	if (strncmp(s, "lmtp:inet:", 10) == 0) {
		r->kind = CONF_ROUTE_LMTP_INET;
		if (conf_route_parse_host(s + 10, r, error_r) == -1)
			return -1;
		/* LMTP has no MX records (RFC 2033 does not use them). */
		r->mx = false;
		if (strchr(s + 10, ':') == NULL ||
		    (s[10] == '[' && strstr(s + 10, "]:") == NULL)) {
			*error_r = "lmtp:inet: needs a port, as in "
				   "lmtp:inet:127.0.0.1:24";
			return -1;
		}
		return 0;
	}
	if (strncmp(s, "discard:", 8) == 0) {
		/* Postfix's discard(8): "discard:" or "discard:TEXT". */
		r->kind = CONF_ROUTE_DISCARD;
		if (strlen(s + 8) > 200) {
			*error_r = "discard: text too long (200 octets at most)";
			return -1;
		}
		r->path = xstrdup(s + 8);
		return 0;
	}
	*error_r = "expected smtp:, lmtp:unix:, lmtp:inet: or discard:";
	return -1;
}

void
conf_route_clear(struct conf_route *r)
{
	free(r->domain);
	free(r->host);
	free(r->path);
	free(r->text);
	memset(r, 0, sizeof(*r));
}

static int
conf_set_relayhost(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	char esc[CONF_ESCAPED_MAX];
	const char *error;
	struct conf_route r;

	if (conf_route_parse(args[0], false, &r, &error) == -1) {
		conf_parser_error(p, "%s: bad next hop \"%s\": %s", d->name,
		    conf_escape(esc, sizeof(esc), args[0]), error);
		conf_route_clear(&r);
		return -1;
	}
	p->c->relayhost = xmalloc(sizeof(r));
	*p->c->relayhost = r;
	return 0;
}

static int
conf_set_relayhost_auth(struct conf_parser *p,
    const struct conf_directive *d, char **args)
{
	(void)d;
	free(p->c->relayhost_auth_user);
	free(p->c->relayhost_auth_file);
	p->c->relayhost_auth_user = xstrdup(args[0]);
	p->c->relayhost_auth_file = xstrdup(args[1]);
	return 0;
}

/* d->min holds the address family the directive takes. */
static int
conf_set_bind_address(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	char **field = conf_string_field(p->c, d), esc[CONF_ESCAPED_MAX];
	uint8_t addr[16];

	if (inet_pton((int)d->min, args[0], addr) != 1) {
		conf_parser_error(p, "%s: not a numeric %s address \"%s\"",
		    d->name, d->min == AF_INET ? "IPv4" : "IPv6",
		    conf_escape(esc, sizeof(esc), args[0]));
		return -1;
	}
	free(*field);
	*field = xstrdup(args[0]);
	return 0;
}

static int
conf_set_double_bounce(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	char esc[CONF_ESCAPED_MAX];
	const char *at = strrchr(args[0], '@');

	if (strchr(args[0], '<') != NULL || strchr(args[0], '>') != NULL ||
	    (at != NULL && !conf_is_valid_domain(at + 1)) ||
	    args[0][0] == '@') {
		conf_parser_error(p, "%s: invalid address \"%s\" (a local "
		    "part such as postmaster, or user@domain)", d->name,
		    conf_escape(esc, sizeof(esc), args[0]));
		return -1;
	}
	free(p->c->double_bounce);
	p->c->double_bounce = xstrdup(args[0]);
	return 0;
}

/*
 * tls_cert FILE [NAME] / tls_key FILE [NAME]: d->min is 0 for the
 * certificate, 1 for the key. Lines with the same NAME (or none) make
 * one pair; conf_check_tls() checks every pair is complete.
 */
static int
conf_add_tls_file(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	struct conf *c = p->c;
	struct conf_tls_pair *pair = NULL;
	char esc[CONF_ESCAPED_MAX], *name = NULL;
	size_t i;

	if (args[1] != NULL) {
		name = xstrdup(args[1]);
		ascii_lowercase(name);
		if (!conf_is_valid_domain(name[0] == '*' && name[1] == '.' ?
		    name + 2 : name)) {
			conf_parser_error(p, "%s: invalid host name \"%s\"",
			    d->name, conf_escape(esc, sizeof(esc), args[1]));
			free(name);
			return -1;
		}
	}
	for (i = 0; i < c->ntls; i++)
		if ((name == NULL && c->tls[i].name == NULL) ||
		    (name != NULL && c->tls[i].name != NULL &&
		    strcmp(name, c->tls[i].name) == 0))
			pair = &c->tls[i];
	if (pair == NULL) {
		c->tls = xrealloc(c->tls, (c->ntls + 1) * sizeof(*c->tls));
		pair = &c->tls[c->ntls++];
		memset(pair, 0, sizeof(*pair));
		pair->name = name;
	} else
		free(name);
	if ((d->min == 0 ? pair->cert : pair->key) != NULL) {
		conf_parser_error(p, "%s: a second one for %s (first on line "
		    "%u)", d->name, pair->name != NULL ? pair->name :
		    "the default certificate", d->min == 0 ? pair->cert_line :
		    pair->key_line);
		return -1;
	}
	if (d->min == 0) {
		pair->cert = xstrdup(args[0]);
		pair->cert_line = p->line;
	} else {
		pair->key = xstrdup(args[0]);
		pair->key_line = p->line;
	}
	return 0;
}

static int
conf_set_tls_protocols(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	static const char *const known[] = {
		"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3",
	};
	char esc[CONF_ESCAPED_MAX], out[64] = "";
	size_t i, k;

	for (i = 0; args[i] != NULL; i++) {
		for (k = 0; k < nitems(known); k++)
			if (strcmp(args[i], known[k]) == 0)
				break;
		if (k == nitems(known)) {
			conf_parser_error(p, "%s: unknown protocol \"%s\" "
			    "(TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)", d->name,
			    conf_escape(esc, sizeof(esc), args[i]));
			return -1;
		}
		if (out[0] != '\0')
			strlcat(out, " ", sizeof(out));
		strlcat(out, args[i], sizeof(out));
	}
	free(p->c->tls_protocols);
	p->c->tls_protocols = xstrdup(out);
	return 0;
}

/* auth users | auth dovecot unix:/path */
static int
conf_set_auth(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	char esc[CONF_ESCAPED_MAX];

	if (strcmp(args[0], "users") == 0 && args[1] == NULL) {
		p->c->auth_backend = CONF_AUTH_USERS;
		return 0;
	}
	if (strcmp(args[0], "dovecot") == 0 && args[1] != NULL &&
	    strncmp(args[1], "unix:/", 6) == 0 &&
	    strlen(args[1] + 5) < sizeof(((struct sockaddr_un *)0)->
	    sun_path)) {
		p->c->auth_backend = CONF_AUTH_DOVECOT;
		free(p->c->auth_socket);
		p->c->auth_socket = xstrdup(args[1] + 5);
		return 0;
	}
	conf_parser_error(p, "%s: expected \"users\" or \"dovecot "
	    "unix:/path/to/auth-client\", not \"%s%s%s\"", d->name,
	    conf_escape(esc, sizeof(esc), args[0]), args[1] != NULL ? " " : "",
	    args[1] != NULL ? args[1] : "");
	return -1;
}

/*
 * dkim_sign DOMAIN SELECTOR KEYFILE. Several keys may share a domain (an
 * RSA and an Ed25519 selector: each signs), not a selector. The key file
 * is the daemon's to load, as tls_key is.
 */
static int
conf_add_dkim_sign(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	struct conf *c = p->c;
	struct conf_dkim_key *k;
	char esc[CONF_ESCAPED_MAX];
	size_t i;

	if (!conf_is_valid_domain(args[0])) {
		conf_parser_error(p, "%s: invalid domain \"%s\"", d->name,
		    conf_escape(esc, sizeof(esc), args[0]));
		return -1;
	}
	ascii_lowercase(args[0]);
	/* RFC 6376 3.1: selector = sub-domain *( "." sub-domain ). */
	if (!conf_is_valid_domain(args[1])) {
		conf_parser_error(p, "%s: invalid selector \"%s\" (letters, "
		    "digits and hyphens, labels separated by dots)", d->name,
		    conf_escape(esc, sizeof(esc), args[1]));
		return -1;
	}
	if (strlen(args[1]) + strlen(CONF_DKIM_KEY_INFIX) + strlen(args[0]) >
	    CONF_DNS_NAME_MAX) {
		conf_parser_error(p, "%s: selector \"%s\" too long for %s "
		    "(SELECTOR._domainkey.DOMAIN is longer than %d octets)",
		    d->name, conf_escape(esc, sizeof(esc), args[1]), args[0],
		    CONF_DNS_NAME_MAX);
		return -1;
	}
	/* DNS names compare without case: "S1" is the key of "s1". */
	for (i = 0; i < c->ndkim_keys; i++) {
		const struct conf_dkim_key *o = &c->dkim_keys[i];

		if (strcmp(o->domain, args[0]) == 0 &&
		    ascii_strcasecmp(o->selector, args[1]) == 0) {
			conf_parser_error(p, "%s: selector \"%s\" of %s "
			    "already listed on line %u", d->name,
			    conf_escape(esc, sizeof(esc), args[1]), args[0],
			    o->line);
			return -1;
		}
	}
	c->dkim_keys = xrealloc(c->dkim_keys,
	    (c->ndkim_keys + 1) * sizeof(*c->dkim_keys));
	k = &c->dkim_keys[c->ndkim_keys++];
	k->domain = xstrdup(args[0]);
	k->selector = xstrdup(args[1]);
	k->keyfile = xstrdup(args[2]);
	k->line = p->line;
	return 0;
}

static int
conf_set_dmarc_multiple_from(struct conf_parser *p,
    const struct conf_directive *d, char **args)
{
	int v = conf_choice(p, d, args[0], "reject", "evaluate");

	if (v == -1)
		return -1;
	p->c->dmarc_multiple_from = v == 0 ?
	    CONF_DMARC_MULTIPLE_FROM_REJECT : CONF_DMARC_MULTIPLE_FROM_EVALUATE;
	return 0;
}

/*
 * A Maildir++ folder name: "Junk" is the directory .Junk/ beside cur/,
 * "Junk.DMARC" the subfolder DMARC of Junk. The name becomes part of a
 * path: no '/', no empty component ("..", or '.' at either end), and
 * only characters that need no IMAP modified UTF-7 (RFC 3501 5.1.3).
 */
static int
conf_set_quarantine_folder(struct conf_parser *p,
    const struct conf_directive *d, char **args)
{
	const char *s = args[0];
	char esc[CONF_ESCAPED_MAX];
	size_t i, len = strlen(s);

	if (len > CONF_FOLDER_MAX) {
		conf_parser_error(p, "%s: folder name too long (maximum %d "
		    "octets)", d->name, CONF_FOLDER_MAX);
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		    ch == '.'))
			break;
	}
	if (i < len || s[0] == '.' || s[len - 1] == '.' ||
	    strstr(s, "..") != NULL) {
		conf_parser_error(p, "%s: invalid folder name \"%s\" "
		    "(letters, digits, '-' and '_', with '.' between names, "
		    "as in Junk or Junk.DMARC)", d->name,
		    conf_escape(esc, sizeof(esc), s));
		return -1;
	}
	free(p->c->quarantine_folder);
	p->c->quarantine_folder = xstrdup(s);
	return 0;
}

/*
 * deliver maildir | deliver lmtp unix:/path | deliver lmtp inet:host:port
 * (issue 6): where local recipients go. The target is parsed as a
 * transport file's "lmtp:" next hop, so both accept the same forms.
 */
static int
conf_set_deliver(struct conf_parser *p, const struct conf_directive *d,
    char **args)
{
	char esc[CONF_ESCAPED_MAX], *hop;
	const char *error;
	struct conf_route r;

	if (strcmp(args[0], "maildir") == 0 && args[1] == NULL) {
		if (p->c->deliver_lmtp != NULL)
			conf_route_clear(p->c->deliver_lmtp);
		free(p->c->deliver_lmtp);
		p->c->deliver_lmtp = NULL;
		return 0;
	}
	if (strcmp(args[0], "lmtp") != 0 || args[1] == NULL) {
		conf_parser_error(p, "%s: expected \"maildir\", \"lmtp "
		    "unix:/PATH\" or \"lmtp inet:HOST:PORT\"", d->name);
		return -1;
	}
	if (strncmp(args[1], "unix:", 5) != 0 &&
	    strncmp(args[1], "inet:", 5) != 0) {
		conf_parser_error(p, "%s: bad LMTP target \"%s\": expected "
		    "unix:/PATH or inet:HOST:PORT", d->name,
		    conf_escape(esc, sizeof(esc), args[1]));
		return -1;
	}
	hop = xasprintf("lmtp:%s", args[1]);
	if (conf_route_parse(hop, true, &r, &error) == -1) {
		conf_parser_error(p, "%s: bad LMTP target \"%s\": %s",
		    d->name, conf_escape(esc, sizeof(esc), args[1]), error);
		conf_route_clear(&r);
		free(hop);
		return -1;
	}
	free(hop);
	p->c->deliver_lmtp = xmalloc(sizeof(r));
	*p->c->deliver_lmtp = r;
	return 0;
}

/* Every tls_cert has its tls_key and the other way round. */
static void
conf_check_tls(struct conf_parser *p)
{
	size_t i;

	for (i = 0; i < p->c->ntls; i++) {
		const struct conf_tls_pair *t = &p->c->tls[i];
		const char *what = t->name != NULL ? t->name :
		    "the default certificate";

		if (t->cert == NULL) {
			p->line = t->key_line;
			conf_parser_error(p, "tls_key: no tls_cert for %s",
			    what);
		} else if (t->key == NULL) {
			p->line = t->cert_line;
			conf_parser_error(p, "tls_cert: no tls_key for %s",
			    what);
		}
	}
}

/*
 * The transport file: "domain  nexthop" per line, '#' comments. Errors
 * are reported as TRANSPORT-FILE:LINE through the same callback.
 */
static void
conf_load_transport(struct conf_parser *p, unsigned int conf_line)
{
	static const char ws[] = " \t\r\n\f\v";
	const char *saved_file = p->file, *error;
	char *line = NULL, *s, *dom, *hop, *extra, esc[CONF_ESCAPED_MAX];
	size_t linesize = 0, i;
	ssize_t n;
	FILE *fp;

	if ((fp = fopen(p->c->transport, "re")) == NULL) {
		p->line = conf_line;
		conf_parser_error(p, "transport: cannot open \"%s\": %s",
		    conf_escape(esc, sizeof(esc), p->c->transport),
		    strerror(errno));
		return;
	}
	p->file = p->c->transport;
	p->line = 0;
	while ((n = getline(&line, &linesize, fp)) != -1) {
		struct conf_route r;

		p->line++;
		if (memchr(line, '\0', (size_t)n) != NULL) {
			conf_parser_error(p, "NUL byte in line");
			continue;
		}
		if ((s = strchr(line, '#')) != NULL)
			*s = '\0';
		dom = strtok_r(line, ws, &s);
		if (dom == NULL)
			continue;
		hop = strtok_r(NULL, ws, &s);
		extra = hop != NULL ? strtok_r(NULL, ws, &s) : NULL;
		if (hop == NULL || extra != NULL) {
			conf_parser_error(p, "expected \"domain next-hop\", "
			    "as in \"example.com smtp:[10.0.0.1]:25\"");
			continue;
		}
		ascii_lowercase(dom);
		if (strcmp(dom, "*") != 0 && !conf_is_valid_domain(
		    dom[0] == '.' ? dom + 1 : dom)) {
			conf_parser_error(p, "invalid domain \"%s\"",
			    conf_escape(esc, sizeof(esc), dom));
			continue;
		}
		for (i = 0; i < p->c->nroutes; i++)
			if (strcmp(p->c->routes[i].domain, dom) == 0)
				break;
		if (i < p->c->nroutes) {
			conf_parser_error(p, "duplicate domain \"%s\"",
			    conf_escape(esc, sizeof(esc), dom));
			continue;
		}
		if (conf_route_parse(hop, true, &r, &error) == -1) {
			conf_parser_error(p, "bad next hop \"%s\": %s",
			    conf_escape(esc, sizeof(esc), hop), error);
			conf_route_clear(&r);
			continue;
		}
		r.domain = xstrdup(dom);
		p->c->routes = xrealloc(p->c->routes, (p->c->nroutes + 1) *
		    sizeof(*p->c->routes));
		p->c->routes[p->c->nroutes++] = r;
	}
	if (ferror(fp)) {
		p->line = 0;
		conf_parser_error(p, "read error: %s", strerror(errno));
	}
	free(line);
	fclose(fp);
	p->file = saved_file;
}

const struct conf_route *
conf_route_find(const struct conf *c, const char *domain)
{
	const char *d;
	size_t i;

	for (i = 0; i < c->nroutes; i++)
		if (strcmp(c->routes[i].domain, domain) == 0)
			return &c->routes[i];
	/* ".example.com" matches sub.example.com, nearest parent first. */
	for (d = strchr(domain, '.'); d != NULL; d = strchr(d + 1, '.'))
		for (i = 0; i < c->nroutes; i++)
			if (strcmp(c->routes[i].domain, d) == 0)
				return &c->routes[i];
	for (i = 0; i < c->nroutes; i++)
		if (strcmp(c->routes[i].domain, "*") == 0)
			return &c->routes[i];
	return NULL;
}

/*
 * One line: strip the comment, split on whitespace, run the generic
 * checks from the table, then the directive's handler.
 */
static void
conf_parse_line(struct conf_parser *p, char *line, unsigned int *seen)
{
	static const char ws[] = " \t\r\n\f\v";
	const struct conf_directive *d = NULL;
	char *tok[CONF_MAX_ARGS + 1], *args[CONF_MAX_ARGS + 1];
	char *s, esc[CONF_ESCAPED_MAX];
	size_t i, nargs, ntok = 0;

	if ((s = strchr(line, '#')) != NULL)
		*s = '\0';
	for (s = line;;) {
		s += strspn(s, ws);
		if (*s == '\0')
			break;
		if (ntok < nitems(tok))
			tok[ntok] = s;
		ntok++;
		s += strcspn(s, ws);
		if (*s != '\0')
			*s++ = '\0';
	}
	if (ntok == 0)
		return;
	if ((d = conf_directive_find(tok[0])) == NULL) {
		conf_parser_error(p, "unknown directive \"%s\"",
		    conf_escape(esc, sizeof(esc), tok[0]));
		return;
	}
	i = (size_t)(d - directives);
	if (!d->repeatable && seen[i] != 0) {
		conf_parser_error(p, "duplicate directive \"%s\" (first on "
		    "line %u)", d->name, seen[i]);
		return;
	}
	if (seen[i] == 0)
		seen[i] = p->line;
	nargs = ntok - 1;
	if (nargs < d->min_args) {
		conf_parser_error(p, "%s: missing value", d->name);
		return;
	}
	if (nargs > d->max_args) {
		conf_parser_error(p, "%s: unexpected extra value \"%s\"",
		    d->name, conf_escape(esc, sizeof(esc),
		    tok[d->max_args + 1]));
		return;
	}
	memset(args, 0, sizeof(args));
	for (i = 0; i < nargs; i++)
		args[i] = tok[i + 1];
	(void)d->handler(p, d, args);
}

struct conf *
conf_load(const char *path, conf_error_cb cb, void *arg)
{
	struct conf_parser p;
	unsigned int seen[nitems(directives)];
	char *line = NULL;
	size_t linesize = 0;
	ssize_t n;
	FILE *fp;

	memset(&p, 0, sizeof(p));
	memset(seen, 0, sizeof(seen));
	p.file = path;
	p.cb = cb;
	p.arg = arg;
	if ((fp = fopen(path, "re")) == NULL) {
		conf_parser_error(&p, "cannot open: %s", strerror(errno));
		return NULL;
	}
	p.c = conf_new_defaults();
	p.c->path = xstrdup(path);
	while ((n = getline(&line, &linesize, fp)) != -1) {
		p.line++;
		if (memchr(line, '\0', (size_t)n) != NULL) {
			conf_parser_error(&p, "NUL byte in line");
			continue;
		}
		conf_parse_line(&p, line, seen);
	}
	if (ferror(fp)) {
		p.line = 0;
		conf_parser_error(&p, "read error: %s", strerror(errno));
	}
	free(line);
	fclose(fp);
	if (p.nerrors == 0 && p.c->nlisten == 0)
		conf_add_listen_default(&p, CONF_DEFAULT_LISTEN);
	/*
	 * Checks across directives, once every line is read (they may come
	 * in any order). Without %d, alice@d1 and alice@d2 would share one
	 * Maildir.
	 */
	if (p.maildir_line > 0 && !p.maildir_has_d && p.c->ndomains > 1) {
		p.line = p.maildir_line;
		conf_parser_error(&p, "maildir: template must contain %%d when "
		    "more than one domain is configured");
	}
	/*
	 * No domain line: we are the destination for our own name, as
	 * Postfix's mydestination defaults to $myhostname. Otherwise
	 * <postmaster> (RFC 5321 4.5.1), which the session completes with
	 * a local domain or the host name, would be refused as relaying.
	 */
	if (p.c->ndomains == 0) {
		conf_push_string(&p.c->domains, &p.c->ndomains,
		    p.c->hostname);
		ascii_lowercase(p.c->domains[0]);
	}
	if (p.c->transport != NULL)
		conf_load_transport(&p, seen[conf_directive_find("transport") -
		    directives]);
	conf_check_tls(&p);
	if (p.c->relayhost_auth_user != NULL && p.c->relayhost == NULL) {
		p.line = seen[conf_directive_find("relayhost_auth") -
		    directives];
		conf_parser_error(&p, "relayhost_auth: needs a relayhost");
	}
	if (p.c->retry_max < p.c->retry_initial) {
		p.line = seen[conf_directive_find("retry_max") - directives];
		if (p.line == 0)
			p.line = seen[conf_directive_find("retry_initial") -
			    directives];
		conf_parser_error(&p, "retry_max (%llus) is shorter than "
		    "retry_initial (%llus)",
		    (unsigned long long)p.c->retry_max,
		    (unsigned long long)p.c->retry_initial);
	}
	free(p.listen_lines);
	if (p.nerrors > 0) {
		conf_free(p.c);
		return NULL;
	}
	return p.c;
}

struct conf *
conf_default(void)
{
	struct conf_parser p;
	struct conf *c;

	memset(&p, 0, sizeof(p));
	p.file = "built-in default";
	c = p.c = conf_new_defaults();
	conf_add_listen_default(&p, CONF_BUILTIN_LISTEN);
	free(p.listen_lines);
	free(c->spool);
	c->spool = xstrdup(CONF_BUILTIN_SPOOL);
	free(c->run_dir);
	c->run_dir = xstrdup(CONF_BUILTIN_RUN_DIR);
	free(c->maildrop);
	c->maildrop = xstrdup(CONF_BUILTIN_MAILDROP);
	free(c->maildir);
	c->maildir = xstrdup(CONF_BUILTIN_MAILDIR);
	conf_push_string(&c->domains, &c->ndomains, CONF_BUILTIN_DOMAIN);
	return c;
}

void
conf_free(struct conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	free(c->path);
	free(c->hostname);
	free(c->spool);
	free(c->run_dir);
	free(c->maildrop);
	free(c->log_file);
	free(c->maildir);
	free(c->users);
	free(c->aliases);
	free(c->user);
	free(c->listen);
	free(c->metrics);
	for (i = 0; i < c->ndomains; i++)
		free(c->domains[i]);
	free(c->domains);
	free(c->trusted);
	for (i = 0; i < c->ndns; i++)
		free(c->dns[i]);
	free(c->dns);
	if (c->relayhost != NULL)
		conf_route_clear(c->relayhost);
	free(c->relayhost);
	if (c->deliver_lmtp != NULL)
		conf_route_clear(c->deliver_lmtp);
	free(c->deliver_lmtp);
	free(c->relayhost_auth_user);
	if (c->relayhost_auth_password != NULL) {
		explicit_bzero(c->relayhost_auth_password,
		    strlen(c->relayhost_auth_password));
		free(c->relayhost_auth_password);
	}
	free(c->relayhost_auth_file);
	free(c->transport);
	for (i = 0; i < c->nroutes; i++)
		conf_route_clear(&c->routes[i]);
	free(c->routes);
	free(c->smtp_bind_address);
	free(c->smtp_bind_address6);
	free(c->double_bounce);
	for (i = 0; i < c->ntls; i++) {
		free(c->tls[i].name);
		free(c->tls[i].cert);
		free(c->tls[i].key);
	}
	free(c->tls);
	free(c->tls_protocols);
	free(c->tls_ciphers);
	free(c->auth_socket);
	for (i = 0; i < c->ndkim_keys; i++) {
		free(c->dkim_keys[i].domain);
		free(c->dkim_keys[i].selector);
		free(c->dkim_keys[i].keyfile);
	}
	free(c->dkim_keys);
	free(c->quarantine_folder);
	free(c);
}

bool
conf_is_local_domain(const struct conf *c, const char *domain)
{
	size_t i;

	for (i = 0; i < c->ndomains; i++)
		if (ascii_strcasecmp(c->domains[i], domain) == 0)
			return true;
	return false;
}

/* Do the first prefix bits of a and b agree? */
static bool
conf_prefix_match(const uint8_t *a, const uint8_t *b, unsigned int prefix)
{
	unsigned int full = prefix / 8, rest = prefix % 8;
	uint8_t mask;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

static bool
conf_net_contains(const struct conf *c, int family, const uint8_t *addr)
{
	size_t i;

	for (i = 0; i < c->ntrusted; i++)
		if (c->trusted[i].family == family &&
		    conf_prefix_match(c->trusted[i].addr, addr,
		    c->trusted[i].prefix))
			return true;
	return false;
}

bool
conf_is_trusted(const struct conf *c, const struct sockaddr *sa)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0xff, 0xff };
	uint8_t v6[16];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		if (conf_net_contains(c, AF_INET,
		    (const uint8_t *)&sin->sin_addr))
			return true;
		/* Also as ::ffff:a.b.c.d against IPv6 networks. */
		memcpy(v6, mapped, sizeof(mapped));
		memcpy(v6 + 12, &sin->sin_addr, 4);
		return conf_net_contains(c, AF_INET6, v6);
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		memcpy(v6, &sin6->sin6_addr, 16);
		if (conf_net_contains(c, AF_INET6, v6))
			return true;
		/*
		 * RFC 4291 2.5.5.2: a dual-stack socket shows an IPv4 client
		 * as ::ffff:a.b.c.d; match it against the IPv4 networks.
		 */
		if (memcmp(v6, mapped, sizeof(mapped)) == 0)
			return conf_net_contains(c, AF_INET, v6 + 12);
	}
	return false;
}

const char *
conf_locate_from(const char *cli_path, const char *system_path,
    const char **source_r)
{
	struct stat st;
	const char *env;

	if (cli_path != NULL) {
		*source_r = "command line";
		return cli_path;
	}
	env = getenv("PETREL_CONFIG");
	if (env != NULL && env[0] != '\0') {
		*source_r = "PETREL_CONFIG";
		return env;
	}
	/*
	 * Only a file that is certainly absent falls back to the built-in
	 * default; one we cannot stat (EACCES) is returned so that loading
	 * it reports the problem instead of silently running on defaults.
	 */
	if (stat(system_path, &st) == 0 ||
	    (errno != ENOENT && errno != ENOTDIR)) {
		*source_r = system_path;
		return system_path;
	}
	*source_r = "built-in default";
	return NULL;
}

const char *
conf_locate(const char *cli_path, const char **source_r)
{
	return conf_locate_from(cli_path, CONF_SYSTEM_PATH, source_r);
}

const struct conf_dkim_key *
conf_dkim_key_next(const struct conf *c, const char *domain, size_t *iter)
{
	size_t i;

	for (i = *iter; i < c->ndkim_keys; i++)
		if (ascii_strcasecmp(c->dkim_keys[i].domain, domain) == 0) {
			*iter = i + 1;
			return &c->dkim_keys[i];
		}
	*iter = c->ndkim_keys;
	return NULL;
}

const char *
conf_role_name(enum conf_role role)
{
	if ((size_t)role < nitems(role_names))
		return role_names[role];
	if (role == CONF_ROLE_LOCAL)
		return "local";	/* not in role_names: `listen` refuses it */
	return "unknown";
}
