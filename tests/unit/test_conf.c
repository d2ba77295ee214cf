/*
 * test_conf.c: the configuration parser (src/conf). Every directive with
 * its value, every default, the built-in default, lists, every error
 * message with its line, trusted networks, conf_locate(), and the SPF,
 * DKIM and DMARC directives with conf_dkim_key_next().
 *
 * Each case writes its configuration text to a temporary file (mkstemp),
 * loads it and compares; failures print "got X, want Y".
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "lib/util.h"

#define MAX_ERRORS 32

struct errors {
	char *msg[MAX_ERRORS];
	size_t n;
};

static void
errors_cb(void *arg, const char *msg)
{
	struct errors *e = arg;

	if (e->n < MAX_ERRORS)
		e->msg[e->n] = xstrdup(msg);
	e->n++;
}

static void
errors_clear(struct errors *e)
{
	size_t i;

	for (i = 0; i < e->n && i < MAX_ERRORS; i++)
		free(e->msg[i]);
	e->n = 0;
}

static void
errors_print(const struct errors *e)
{
	size_t i;

	for (i = 0; i < e->n && i < MAX_ERRORS; i++)
		print_message("  error: %s\n", e->msg[i]);
}

/* Write len bytes of text to a new temporary file; path is filled in. */
static void
write_file(char *path, size_t pathsize, const char *text, size_t len)
{
	const char *tmp = getenv("TMPDIR");
	int fd;

	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	snprintf(path, pathsize, "%s/test_conf.XXXXXX", tmp);
	fd = mkstemp(path);
	assert_int_not_equal(fd, -1);
	assert_int_equal(write_all(fd, text, len), 0);
	assert_int_equal(close(fd), 0);
}

/* Load text; returns the conf or NULL with *e holding the errors. */
static struct conf *
load_text(const char *text, char *path, size_t pathsize, struct errors *e)
{
	struct conf *c;

	write_file(path, pathsize, text, strlen(text));
	c = conf_load(path, errors_cb, e);
	return c;
}

/* Load text that must be valid; fails the test otherwise. */
static struct conf *
load_ok(const char *text)
{
	struct errors e = { .n = 0 };
	char path[256];
	struct conf *c;

	c = load_text(text, path, sizeof(path), &e);
	unlink(path);
	if (c == NULL || e.n != 0) {
		print_message("config:\n%s\n", text);
		errors_print(&e);
		errors_clear(&e);
		fail_msg("got %zu errors, want a valid configuration", e.n);
	}
	return c;
}

static void
hostname_default(char *out, size_t outsize)
{
	char name[256];

	assert_int_equal(gethostname(name, sizeof(name)), 0);
	name[sizeof(name) - 1] = '\0';
	if (name[0] == '\0')
		strlcpy(name, "localhost", sizeof(name));
	ascii_lowercase(name);
	strlcpy(out, name, outsize);
}

#define FIELD(f) offsetof(struct conf, f), #f

static uint64_t
number_at(const struct conf *c, size_t offset)
{
	uint64_t v;

	memcpy(&v, (const char *)c + offset, sizeof(v));
	return v;
}

static const char *
string_at(const struct conf *c, size_t offset)
{
	const char *s;

	memcpy(&s, (const char *)c + offset, sizeof(s));
	return s;
}

static bool
bool_at(const struct conf *c, size_t offset)
{
	bool v;

	memcpy(&v, (const char *)c + offset, sizeof(v));
	return v;
}

static void
check_bool(const struct conf *c, size_t offset, const char *name,
    bool want, const char *ctx)
{
	bool got = bool_at(c, offset);

	if (got != want)
		fail_msg("%s: %s: got %s, want %s", ctx, name,
		    got ? "yes" : "no", want ? "yes" : "no");
}

static void
check_number(const struct conf *c, size_t offset, const char *name,
    uint64_t want, const char *ctx)
{
	uint64_t got = number_at(c, offset);

	if (got != want)
		fail_msg("%s: %s: got %llu, want %llu", ctx, name,
		    (unsigned long long)got, (unsigned long long)want);
}

static void
check_string(const struct conf *c, size_t offset, const char *name,
    const char *want, const char *ctx)
{
	const char *got = string_at(c, offset);

	if (want == NULL && got == NULL)
		return;
	if (want == NULL || got == NULL || strcmp(got, want) != 0)
		fail_msg("%s: %s: got \"%s\", want \"%s\"", ctx, name,
		    got ? got : "(null)", want ? want : "(null)");
}

/* ---------------------------------------------------------------- */

static const struct {
	size_t offset;
	const char *name;
	uint64_t def;
} number_defaults[] = {
	{ FIELD(max_message_size), 36700160 },
	{ FIELD(max_recipients), 1000 },
	{ FIELD(max_line_length), 65536 },
	{ FIELD(max_connections), 1000 },
	{ FIELD(max_connections_per_ip), 50 },
	{ FIELD(max_errors), 20 },
	{ FIELD(max_hops), 100 },
	{ FIELD(max_header_size), 1048576 },
	{ FIELD(timeout_command), 300 },
	{ FIELD(timeout_data), 600 },
	{ FIELD(timeout_shutdown), 30 },
	{ FIELD(delivery_workers), 16 },
	{ FIELD(spool_sync_workers), 8 },
	{ FIELD(queue_lifetime), 5 * 86400 },
	{ FIELD(dns_max_queries), 100 },
	{ FIELD(destination_concurrency), 20 },
	{ FIELD(max_outbound_connections), 500 },
	{ FIELD(max_messages_per_connection), 100 },
	{ FIELD(client_timeout_connect), 30 },
	{ FIELD(client_timeout_command), 300 },
	{ FIELD(client_timeout_data), 600 },
	{ FIELD(retry_initial), 300 },
	{ FIELD(retry_max), 3600 },
	{ FIELD(delay_warning), 4 * 3600 },
	{ FIELD(bounce_size_limit), 50 * 1024 },
	{ FIELD(auth_fail_delay), 1 },
	{ FIELD(auth_max_failures), 3 },
	{ FIELD(dkim_max_signatures), 5 },
};

/* The SPF, DKIM and DMARC switches and their defaults. */
static const struct {
	size_t offset;
	const char *name;
	bool def;
} msgauth_bool_defaults[] = {
	{ FIELD(msgauth), true },
	{ FIELD(spf_reject), false },
	{ FIELD(spf_temperror_defer), false },
	{ FIELD(spf_helo), false },
	{ FIELD(dkim_allow_sha1), false },
	{ FIELD(dmarc_enforce), true },
};

/* Defaults shared by a file that omits everything and the built-in one. */
static void
check_number_defaults(const struct conf *c, const char *ctx)
{
	size_t i;

	for (i = 0; i < nitems(number_defaults); i++)
		check_number(c, number_defaults[i].offset,
		    number_defaults[i].name, number_defaults[i].def, ctx);
	assert_int_equal(c->bare_lf, CONF_BARE_LF_REJECT);
	assert_false(c->dnssec);
	assert_true(c->inet6);
	assert_null(c->relayhost);
	assert_null(c->transport);
	assert_int_equal(c->nroutes, 0);
	assert_null(c->smtp_bind_address);
	assert_null(c->double_bounce);
	assert_int_equal(c->ntls, 0);
	assert_string_equal(c->tls_protocols, "TLSv1.2 TLSv1.3");
	assert_non_null(strstr(c->tls_ciphers, "ECDHE-RSA-AES128-GCM-SHA256"));
	assert_false(c->auth_plaintext);
	assert_false(c->mx_auth);
	assert_true(c->sender_login);
	assert_false(c->received_auth_name);
	assert_int_equal(c->auth_backend, CONF_AUTH_USERS);
	for (i = 0; i < nitems(msgauth_bool_defaults); i++)
		check_bool(c, msgauth_bool_defaults[i].offset,
		    msgauth_bool_defaults[i].name,
		    msgauth_bool_defaults[i].def, ctx);
	assert_null(c->dkim_keys);
	assert_int_equal(c->ndkim_keys, 0);
	assert_int_equal(c->dmarc_multiple_from,
	    CONF_DMARC_MULTIPLE_FROM_REJECT);
	assert_null(c->quarantine_folder);
}

static void
test_defaults(void **state)
{
	static const char *const texts[] = {
		"",
		"# only a comment\n\n   \n\t\n",
		"\n# no newline at the end",
	};
	char host[256];
	size_t i;

	(void)state;
	hostname_default(host, sizeof(host));
	for (i = 0; i < nitems(texts); i++) {
		struct conf *c = load_ok(texts[i]);
		const struct sockaddr_in *sin;

		check_number_defaults(c, texts[i]);
		assert_string_equal(c->hostname, host);
		assert_string_equal(c->spool, "/var/spool/petrel");
		assert_string_equal(c->maildir, "/var/mail/%d/%u");
		assert_string_equal(c->user, "petrel");
		assert_null(c->users);
		assert_null(c->aliases);
		/* No `domain` line: the host name is the local domain. */
		assert_int_equal(c->ndomains, 1);
		assert_string_equal(c->domains[0], host);
		assert_true(conf_is_local_domain(c, host));
		assert_int_equal(c->ntrusted, 0);
		assert_int_equal(c->ndns, 0);
		assert_non_null(c->path);
		assert_int_equal(c->nlisten, 1);
		assert_string_equal(c->listen[0].text, "127.0.0.1:25");
		assert_string_equal(c->listen[0].host, "127.0.0.1");
		assert_int_equal(c->listen[0].port, 25);
		assert_int_equal(c->listen[0].role, CONF_ROLE_MX);
		sin = (const struct sockaddr_in *)&c->listen[0].addr;
		assert_int_equal(sin->sin_family, AF_INET);
		assert_int_equal(ntohs(sin->sin_port), 25);
		assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x7f000001);
		assert_int_equal(c->listen[0].addrlen, sizeof(*sin));
		conf_free(c);
	}
}

/*
 * The local domains default to the host name, lower-cased, whatever the
 * order of the lines; any `domain` line replaces that default.
 */
static void
test_domain_default(void **state)
{
	struct conf *c;

	(void)state;
	c = load_ok("hostname MX.Example.TEST\n");
	assert_string_equal(c->hostname, "MX.Example.TEST");
	assert_int_equal(c->ndomains, 1);
	assert_string_equal(c->domains[0], "mx.example.test");
	assert_true(conf_is_local_domain(c, "mx.example.test"));
	conf_free(c);

	c = load_ok("domain a.test\nhostname mx.example.test\n");
	assert_int_equal(c->ndomains, 1);
	assert_string_equal(c->domains[0], "a.test");
	assert_false(conf_is_local_domain(c, "mx.example.test"));
	conf_free(c);

	c = load_ok("hostname mx.example.test\ndomain a.test\n"
		    "domain B.test\n");
	assert_int_equal(c->ndomains, 2);
	assert_string_equal(c->domains[0], "a.test");
	assert_string_equal(c->domains[1], "b.test");
	assert_false(conf_is_local_domain(c, "mx.example.test"));
	conf_free(c);
}

/*
 * maildir without %d is fine for one domain (the default one included),
 * not for several: alice@d1 and alice@d2 would share a Maildir.
 */
static void
test_maildir_needs_domain(void **state)
{
	struct conf *c;

	(void)state;
	c = load_ok("maildir /home/%u/Maildir\n");
	assert_string_equal(c->maildir, "/home/%u/Maildir");
	conf_free(c);
	c = load_ok("domain a.test\nmaildir /home/%u/Maildir\n"
		    "domain A.TEST\n");
	assert_int_equal(c->ndomains, 1);
	conf_free(c);
	c = load_ok("domain a.test\ndomain b.test\n"
		    "maildir /m/%u/%d\n");
	conf_free(c);
}

static void
test_builtin_default(void **state)
{
	struct conf *c = conf_default();
	const struct sockaddr_in *sin;
	char host[256];

	(void)state;
	hostname_default(host, sizeof(host));
	check_number_defaults(c, "built-in");
	assert_null(c->path);
	assert_string_equal(c->hostname, host);
	assert_string_equal(c->spool, "./var/spool");
	assert_string_equal(c->maildir, "./var/mail/%d/%u");
	assert_string_equal(c->user, "petrel");
	assert_null(c->users);
	assert_null(c->aliases);
	assert_int_equal(c->ndomains, 1);
	assert_string_equal(c->domains[0], "localhost");
	assert_true(conf_is_local_domain(c, "LocalHost"));
	assert_int_equal(c->ntrusted, 0);
	assert_int_equal(c->ndns, 0);
	assert_int_equal(c->nlisten, 1);
	assert_string_equal(c->listen[0].text, "127.0.0.1:2525");
	assert_string_equal(c->listen[0].host, "127.0.0.1");
	assert_int_equal(c->listen[0].port, 2525);
	assert_int_equal(c->listen[0].role, CONF_ROLE_MX);
	sin = (const struct sockaddr_in *)&c->listen[0].addr;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 2525);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x7f000001);
	conf_free(c);
}

/* One directive per row: the line, and the number it must produce. */
static const struct {
	const char *line;
	size_t offset;
	const char *name;
	uint64_t want;
} number_cases[] = {
	{ "max_message_size 1000", FIELD(max_message_size), 1000 },
	{ "max_message_size 10m", FIELD(max_message_size), 10485760 },
	{ "max_message_size 2K", FIELD(max_message_size), 2048 },
	{ "max_message_size 4g", FIELD(max_message_size), 4294967296ULL },
	{ "max_recipients 1", FIELD(max_recipients), 1 },
	{ "max_recipients 1000000", FIELD(max_recipients), 1000000 },
	{ "max_line_length 1000", FIELD(max_line_length), 1000 },
	{ "max_line_length 128k", FIELD(max_line_length), 131072 },
	{ "max_connections 7", FIELD(max_connections), 7 },
	{ "max_connections_per_ip 3", FIELD(max_connections_per_ip), 3 },
	{ "max_errors 5", FIELD(max_errors), 5 },
	{ "max_hops 30", FIELD(max_hops), 30 },
	{ "max_header_size 64k", FIELD(max_header_size), 65536 },
	{ "max_header_size 5000", FIELD(max_header_size), 5000 },
	{ "timeout_command 2m", FIELD(timeout_command), 120 },
	{ "timeout_command 45", FIELD(timeout_command), 45 },
	{ "timeout_command 45s", FIELD(timeout_command), 45 },
	{ "timeout_data 1h", FIELD(timeout_data), 3600 },
	{ "timeout_data 1d", FIELD(timeout_data), 86400 },
	{ "timeout_shutdown 0", FIELD(timeout_shutdown), 0 },
	{ "timeout_shutdown 2m", FIELD(timeout_shutdown), 120 },
	{ "delivery_workers 3", FIELD(delivery_workers), 3 },
	{ "spool_sync_workers 2", FIELD(spool_sync_workers), 2 },
	{ "queue_lifetime 2d", FIELD(queue_lifetime), 172800 },
	{ "queue_lifetime 30s", FIELD(queue_lifetime), 30 },
	{ "dns_max_queries 7", FIELD(dns_max_queries), 7 },
	{ "destination_concurrency 1", FIELD(destination_concurrency), 1 },
	{ "max_outbound_connections 9", FIELD(max_outbound_connections), 9 },
	{ "max_messages_per_connection 2",
	    FIELD(max_messages_per_connection), 2 },
	{ "client_timeout_connect 3s", FIELD(client_timeout_connect), 3 },
	{ "client_timeout_command 1m", FIELD(client_timeout_command), 60 },
	{ "client_timeout_data 1h", FIELD(client_timeout_data), 3600 },
	{ "retry_initial 1s", FIELD(retry_initial), 1 },
	{ "retry_max 2h", FIELD(retry_max), 7200 },
	{ "delay_warning 0", FIELD(delay_warning), 0 },
	{ "delay_warning 1d", FIELD(delay_warning), 86400 },
	{ "bounce_size_limit 0", FIELD(bounce_size_limit), 0 },
	{ "bounce_size_limit 1m", FIELD(bounce_size_limit), 1048576 },
	{ "auth_fail_delay 0", FIELD(auth_fail_delay), 0 },
	{ "auth_fail_delay 10s", FIELD(auth_fail_delay), 10 },
	{ "auth_max_failures 5", FIELD(auth_max_failures), 5 },
	{ "dkim_max_signatures 1", FIELD(dkim_max_signatures), 1 },
	{ "dkim_max_signatures 20", FIELD(dkim_max_signatures), 20 },
	{ "dkim_max_signatures 05", FIELD(dkim_max_signatures), 5 },
};

static void
test_number_directives(void **state)
{
	size_t i, j;

	(void)state;
	for (i = 0; i < nitems(number_cases); i++) {
		char *text = xasprintf("%s\n", number_cases[i].line);
		struct conf *c = load_ok(text);

		check_number(c, number_cases[i].offset, number_cases[i].name,
		    number_cases[i].want, number_cases[i].line);
		/* ...and every other number keeps its default. */
		for (j = 0; j < nitems(number_defaults); j++)
			if (number_defaults[j].offset !=
			    number_cases[i].offset)
				check_number(c, number_defaults[j].offset,
				    number_defaults[j].name,
				    number_defaults[j].def,
				    number_cases[i].line);
		conf_free(c);
		free(text);
	}
}

static const struct {
	const char *line;
	size_t offset;
	const char *name;
	const char *want;
} string_cases[] = {
	{ "hostname mx.example.test", FIELD(hostname), "mx.example.test" },
	{ "hostname MX1.Example.TEST", FIELD(hostname), "MX1.Example.TEST" },
	{ "hostname localhost", FIELD(hostname), "localhost" },
	{ "spool /srv/spool", FIELD(spool), "/srv/spool" },
	{ "spool ./var/spool", FIELD(spool), "./var/spool" },
	{ "maildir /home/%u/Maildir", FIELD(maildir), "/home/%u/Maildir" },
	{ "maildir /m/%d/%u/100%%", FIELD(maildir), "/m/%d/%u/100%%" },
	{ "users /etc/petrel/users", FIELD(users), "/etc/petrel/users" },
	{ "users /does/not/exist", FIELD(users), "/does/not/exist" },
	{ "aliases /etc/petrel/aliases", FIELD(aliases),
	    "/etc/petrel/aliases" },
	{ "user mail", FIELD(user), "mail" },
	{ "user root", FIELD(user), "root" },
	{ "smtp_bind_address 192.0.2.7", FIELD(smtp_bind_address),
	    "192.0.2.7" },
	{ "smtp_bind_address6 2001:db8::7", FIELD(smtp_bind_address6),
	    "2001:db8::7" },
	{ "double_bounce postmaster", FIELD(double_bounce), "postmaster" },
	{ "double_bounce ops@example.test", FIELD(double_bounce),
	    "ops@example.test" },
	{ "tls_ciphers HIGH:!aNULL", FIELD(tls_ciphers), "HIGH:!aNULL" },
	{ "tls_protocols TLSv1.3", FIELD(tls_protocols), "TLSv1.3" },
	{ "tls_protocols TLSv1.2   TLSv1.3", FIELD(tls_protocols),
	    "TLSv1.2 TLSv1.3" },
	{ "quarantine_folder Junk", FIELD(quarantine_folder), "Junk" },
	{ "quarantine_folder Junk.DMARC", FIELD(quarantine_folder),
	    "Junk.DMARC" },
	{ "quarantine_folder spam_2-x", FIELD(quarantine_folder),
	    "spam_2-x" },
	{ "quarantine_folder _", FIELD(quarantine_folder), "_" },
	/* 64 octets, the most */
	{ "quarantine_folder "
	  "J123456789012345678901234567890123456789012345678901234567890123",
	    FIELD(quarantine_folder),
	  "J123456789012345678901234567890123456789012345678901234567890123" },
};

static void
test_string_directives(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < nitems(string_cases); i++) {
		char *text = xasprintf("%s\n", string_cases[i].line);
		struct conf *c = load_ok(text);

		check_string(c, string_cases[i].offset, string_cases[i].name,
		    string_cases[i].want, string_cases[i].line);
		conf_free(c);
		free(text);
	}
}

/* issue 6: `log stderr|syslog`, `log_file PATH`. */
static void
test_log(void **state)
{
	struct conf *c;

	(void)state;
	c = load_ok("hostname a.example\n");
	assert_false(c->log_syslog);
	assert_null(c->log_file);
	conf_free(c);
	c = load_ok("log syslog\nlog_file /var/log/petrel/petrel.log\n");
	assert_true(c->log_syslog);
	assert_string_equal(c->log_file, "/var/log/petrel/petrel.log");
	conf_free(c);
	c = load_ok("log stderr\n");
	assert_false(c->log_syslog);
	conf_free(c);
}

static void
test_bare_lf(void **state)
{
	struct conf *c;

	(void)state;
	c = load_ok("bare_lf normalize\n");
	assert_int_equal(c->bare_lf, CONF_BARE_LF_NORMALIZE);
	conf_free(c);
	c = load_ok("bare_lf reject\n");
	assert_int_equal(c->bare_lf, CONF_BARE_LF_REJECT);
	conf_free(c);
}

static const struct {
	const char *line;
	int family;
	const char *text;
	const char *host;
	unsigned int port;
	enum conf_role role;
} listen_cases[] = {
	{ "listen 127.0.0.1:25", AF_INET, "127.0.0.1:25", "127.0.0.1", 25,
	    CONF_ROLE_MX },
	{ "listen 0.0.0.0:25 mx", AF_INET, "0.0.0.0:25", "0.0.0.0", 25,
	    CONF_ROLE_MX },
	{ "listen 192.0.2.1:587 submission", AF_INET, "192.0.2.1:587",
	    "192.0.2.1", 587, CONF_ROLE_SUBMISSION },
	{ "listen 127.0.0.1:465 submissions", AF_INET, "127.0.0.1:465",
	    "127.0.0.1", 465, CONF_ROLE_SUBMISSIONS },
	{ "listen [::1]:25", AF_INET6, "[::1]:25", "::1", 25, CONF_ROLE_MX },
	{ "listen [::]:65535 submission", AF_INET6, "[::]:65535", "::",
	    65535, CONF_ROLE_SUBMISSION },
	{ "listen [2001:db8::5]:1", AF_INET6, "[2001:db8::5]:1",
	    "2001:db8::5", 1, CONF_ROLE_MX },
};

static void
test_listen(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < nitems(listen_cases); i++) {
		char *text = xasprintf("%s\n", listen_cases[i].line);
		struct conf *c = load_ok(text);
		const struct conf_listen *l;
		uint8_t want[16];

		assert_int_equal(c->nlisten, 1);
		l = &c->listen[0];
		assert_string_equal(l->text, listen_cases[i].text);
		assert_string_equal(l->host, listen_cases[i].host);
		assert_int_equal(l->port, listen_cases[i].port);
		assert_int_equal(l->role, listen_cases[i].role);
		assert_int_equal(l->addr.ss_family, listen_cases[i].family);
		assert_int_equal(inet_pton(listen_cases[i].family,
		    listen_cases[i].host, want), 1);
		if (listen_cases[i].family == AF_INET) {
			const struct sockaddr_in *sin = (const void *)&l->addr;

			assert_int_equal(l->addrlen, sizeof(*sin));
			assert_int_equal(ntohs(sin->sin_port),
			    listen_cases[i].port);
			assert_memory_equal(&sin->sin_addr, want, 4);
		} else {
			const struct sockaddr_in6 *sin6 =
			    (const void *)&l->addr;

			assert_int_equal(l->addrlen, sizeof(*sin6));
			assert_int_equal(ntohs(sin6->sin6_port),
			    listen_cases[i].port);
			assert_memory_equal(&sin6->sin6_addr, want, 16);
		}
		conf_free(c);
		free(text);
	}
}

static void
test_lists_accumulate(void **state)
{
	struct conf *c;

	(void)state;
	c = load_ok("listen 127.0.0.1:2525\n"
		    "domain Example.TEST\n"
		    "listen [::1]:2587 submission\n"
		    "trusted 127.0.0.0/8\n"
		    "domain other.test\n"
		    "dns 127.0.0.1:5353\n"
		    "listen 127.0.0.1:2465 submissions\n"
		    "trusted ::1/128\n"
		    "dns [::1]:5353\n"
		    "domain example.test   # again, any case: kept once\n"
		    "trusted 10.1.2.3\n"
		    "dns 127.0.0.2\n"
		    "domain third.test\n");
	assert_int_equal(c->nlisten, 3);
	assert_string_equal(c->listen[0].text, "127.0.0.1:2525");
	assert_int_equal(c->listen[0].role, CONF_ROLE_MX);
	assert_string_equal(c->listen[1].text, "[::1]:2587");
	assert_int_equal(c->listen[1].role, CONF_ROLE_SUBMISSION);
	assert_string_equal(c->listen[2].text, "127.0.0.1:2465");
	assert_int_equal(c->listen[2].role, CONF_ROLE_SUBMISSIONS);

	assert_int_equal(c->ndomains, 3);
	assert_string_equal(c->domains[0], "example.test");
	assert_string_equal(c->domains[1], "other.test");
	assert_string_equal(c->domains[2], "third.test");

	assert_int_equal(c->ntrusted, 3);
	assert_int_equal(c->trusted[0].family, AF_INET);
	assert_int_equal(c->trusted[0].prefix, 8);
	assert_int_equal(c->trusted[0].addr[0], 127);
	assert_int_equal(c->trusted[1].family, AF_INET6);
	assert_int_equal(c->trusted[1].prefix, 128);
	assert_int_equal(c->trusted[1].addr[15], 1);
	assert_int_equal(c->trusted[2].family, AF_INET);
	assert_int_equal(c->trusted[2].prefix, 32);
	assert_memory_equal(c->trusted[2].addr, "\x0a\x01\x02\x03", 4);

	assert_int_equal(c->ndns, 3);
	assert_string_equal(c->dns[0], "127.0.0.1:5353");
	assert_string_equal(c->dns[1], "[::1]:5353");
	assert_string_equal(c->dns[2], "127.0.0.2");
	conf_free(c);
}

static void
test_dns_forms(void **state)
{
	static const char *const ok[] = {
		"127.0.0.1", "127.0.0.1:53", "127.0.0.1:65535", "::1",
		"2001:db8::1", "[::1]", "[::1]:5353",
	};
	size_t i;

	(void)state;
	for (i = 0; i < nitems(ok); i++) {
		char *text = xasprintf("dns %s\n", ok[i]);
		struct conf *c = load_ok(text);

		assert_int_equal(c->ndns, 1);
		assert_string_equal(c->dns[0], ok[i]);
		conf_free(c);
		free(text);
	}
}

static void
test_comments_and_whitespace(void **state)
{
	struct conf *c;

	(void)state;
	c = load_ok("# petrel.conf\n"
		    "\n"
		    "hostname\tmx.example.test\t# the banner name\n"
		    "   spool    /srv/spool#no space before the comment\n"
		    "domain a.test #\n"
		    "user mail\r\n"
		    "listen 127.0.0.1:2525 submission # role, then comment\n"
		    "max_errors 3");
	assert_string_equal(c->hostname, "mx.example.test");
	assert_string_equal(c->spool, "/srv/spool");
	assert_int_equal(c->ndomains, 1);
	assert_string_equal(c->domains[0], "a.test");
	assert_string_equal(c->user, "mail");
	assert_int_equal(c->nlisten, 1);
	assert_int_equal(c->listen[0].role, CONF_ROLE_SUBMISSION);
	assert_int_equal(c->max_errors, 3);
	conf_free(c);
}

/* A whole file, every directive, as the issue shows it. */
static void
test_full_file(void **state)
{
	struct conf *c;

	(void)state;
	c = load_ok(
	    "hostname   mx.example.test          # banner\n"
	    "spool      /var/spool/petrel2\n"
	    "listen     127.0.0.1:25 mx\n"
	    "domain     example.test\n"
	    "maildir    /var/mail/%d/%u/\n"
	    "users      /etc/petrel/users\n"
	    "aliases    /etc/petrel/aliases\n"
	    "trusted    127.0.0.0/8\n"
	    "dns        127.0.0.1:5353\n"
	    "max_message_size 36700161\n"
	    "max_recipients   1001\n"
	    "max_line_length  65537\n"
	    "max_connections  1002\n"
	    "max_connections_per_ip 51\n"
	    "max_errors       21\n"
	    "max_hops         101\n"
	    "max_header_size  1048577\n"
	    "timeout_command  6m\n"
	    "timeout_data     11m\n"
	    "timeout_shutdown 31s\n"
	    "bare_lf          normalize\n"
	    "user       petrel2\n"
	    "delivery_workers 5\n"
	    "spool_sync_workers 6\n"
	    "queue_lifetime 6d\n");
	assert_string_equal(c->hostname, "mx.example.test");
	assert_string_equal(c->spool, "/var/spool/petrel2");
	assert_int_equal(c->nlisten, 1);
	assert_string_equal(c->listen[0].text, "127.0.0.1:25");
	assert_int_equal(c->ndomains, 1);
	assert_string_equal(c->maildir, "/var/mail/%d/%u/");
	assert_string_equal(c->users, "/etc/petrel/users");
	assert_string_equal(c->aliases, "/etc/petrel/aliases");
	assert_int_equal(c->ntrusted, 1);
	assert_int_equal(c->ndns, 1);
	assert_int_equal(c->max_message_size, 36700161);
	assert_int_equal(c->max_recipients, 1001);
	assert_int_equal(c->max_line_length, 65537);
	assert_int_equal(c->max_connections, 1002);
	assert_int_equal(c->max_connections_per_ip, 51);
	assert_int_equal(c->max_errors, 21);
	assert_int_equal(c->max_hops, 101);
	assert_int_equal(c->max_header_size, 1048577);
	assert_int_equal(c->timeout_command, 360);
	assert_int_equal(c->timeout_data, 660);
	assert_int_equal(c->timeout_shutdown, 31);
	assert_int_equal(c->bare_lf, CONF_BARE_LF_NORMALIZE);
	assert_string_equal(c->user, "petrel2");
	assert_int_equal(c->delivery_workers, 5);
	assert_int_equal(c->spool_sync_workers, 6);
	assert_int_equal(c->queue_lifetime, 6 * 86400);
	conf_free(c);
}

/*
 * Error cases: the text, and every message it must produce, written as
 * "LINE: message" (the test puts the file name in front).
 */
static const struct {
	const char *text;
	const char *want[8];
} error_cases[] = {
	{ "lisen 127.0.0.1:25\n", { "1: unknown directive \"lisen\"" } },
	{ "Hostname a.test\n", { "1: unknown directive \"Hostname\"" } },
	{ "lisen\x01 x\n", { "1: unknown directive \"lisen\\x01\"" } },
	{ "hostname\n", { "1: hostname: missing value" } },
	{ "spool   # nothing but a comment\n",
	    { "1: spool: missing value" } },
	{ "listen\n", { "1: listen: missing value" } },
	{ "hostname a.test b.test\n",
	    { "1: hostname: unexpected extra value \"b.test\"" } },
	{ "listen 127.0.0.1:25 mx extra more\n",
	    { "1: listen: unexpected extra value \"extra\"" } },
	{ "domain a.test b.test\n",
	    { "1: domain: unexpected extra value \"b.test\"" } },
	{ "hostname a.test\nhostname b.test\n",
	    { "2: duplicate directive \"hostname\" (first on line 1)" } },
	{ "max_errors 3\n\n# x\nmax_errors 3\n",
	    { "4: duplicate directive \"max_errors\" (first on line 1)" } },
	{ "bare_lf reject\nbare_lf normalize\nbare_lf reject\n",
	    { "2: duplicate directive \"bare_lf\" (first on line 1)",
		"3: duplicate directive \"bare_lf\" (first on line 1)" } },

	/* numbers */
	{ "max_recipients abc\n",
	    { "1: max_recipients: invalid number \"abc\"" } },
	{ "max_recipients -1\n",
	    { "1: max_recipients: invalid number \"-1\"" } },
	{ "max_recipients 10k\n",
	    { "1: max_recipients: invalid number \"10k\"" } },
	{ "max_recipients 0\n",
	    { "1: max_recipients: too small (minimum 1)" } },
	{ "max_recipients 1000001\n",
	    { "1: max_recipients: too large (maximum 1000000)" } },
	{ "max_recipients 99999999999999999999999\n",
	    { "1: max_recipients: too large (maximum 1000000)" } },
	{ "max_connections 0\n",
	    { "1: max_connections: too small (minimum 1)" } },
	{ "max_connections_per_ip 0\n",
	    { "1: max_connections_per_ip: too small (minimum 1)" } },
	{ "max_errors 0\n", { "1: max_errors: too small (minimum 1)" } },
	{ "max_hops 0\n", { "1: max_hops: too small (minimum 1)" } },
	{ "delivery_workers 0\n",
	    { "1: delivery_workers: too small (minimum 1)" } },
	{ "spool_sync_workers 257\n",
	    { "1: spool_sync_workers: too large (maximum 256)" } },
	{ "max_line_length 999\n",
	    { "1: max_line_length: too small (minimum 1000 bytes)" } },
	{ "max_message_size 0\n",
	    { "1: max_message_size: too small (minimum 1 bytes)" } },
	{ "max_message_size 5g\n",
	    { "1: max_message_size: too large (maximum 4294967296 "
		"bytes)" } },
	{ "max_message_size 5t\n",
	    { "1: max_message_size: invalid size \"5t\" (bytes, or a number "
		"with k, m or g)" } },
	{ "max_header_size 1.5m\n",
	    { "1: max_header_size: invalid size \"1.5m\" (bytes, or a "
		"number with k, m or g)" } },
	{ "timeout_command 5x\n",
	    { "1: timeout_command: invalid duration \"5x\" (seconds, or a "
		"number with s, m, h or d)" } },
	{ "timeout_command m\n",
	    { "1: timeout_command: invalid duration \"m\" (seconds, or a "
		"number with s, m, h or d)" } },
	{ "timeout_command 0\n",
	    { "1: timeout_command: too small (minimum 1s)" } },
	{ "timeout_data 2d\n",
	    { "1: timeout_data: too large (maximum 86400s)" } },
	{ "timeout_shutdown 2h\n",
	    { "1: timeout_shutdown: too large (maximum 3600s)" } },
	{ "queue_lifetime 0s\n",
	    { "1: queue_lifetime: too small (minimum 1s)" } },

	/* listen */
	{ "listen 127.0.0.1\n",
	    { "1: listen: bad address \"127.0.0.1\": missing port" } },
	{ "listen 127.0.0.1:\n",
	    { "1: listen: bad address \"127.0.0.1:\": invalid port "
		"(1-65535)" } },
	{ "listen 127.0.0.1:0\n",
	    { "1: listen: bad address \"127.0.0.1:0\": invalid port "
		"(1-65535)" } },
	{ "listen 127.0.0.1:65536\n",
	    { "1: listen: bad address \"127.0.0.1:65536\": invalid port "
		"(1-65535)" } },
	{ "listen 127.0.0.1:smtp\n",
	    { "1: listen: bad address \"127.0.0.1:smtp\": invalid port "
		"(1-65535)" } },
	{ "listen localhost:25\n",
	    { "1: listen: bad address \"localhost:25\": not a numeric IPv4 "
		"address (no host names)" } },
	{ "listen 256.0.0.1:25\n",
	    { "1: listen: bad address \"256.0.0.1:25\": not a numeric IPv4 "
		"address (no host names)" } },
	{ "listen 127.1:25\n",
	    { "1: listen: bad address \"127.1:25\": not a numeric IPv4 "
		"address (no host names)" } },
	{ "listen ::1:25\n",
	    { "1: listen: bad address \"::1:25\": an IPv6 address needs "
		"brackets, as in [::1]:25" } },
	{ "listen [::1:25\n",
	    { "1: listen: bad address \"[::1:25\": missing ']'" } },
	{ "listen [::1]25\n",
	    { "1: listen: bad address \"[::1]25\": expected ':' after "
		"']'" } },
	{ "listen [::1]\n",
	    { "1: listen: bad address \"[::1]\": missing port" } },
	{ "listen [127.0.0.1]:25\n",
	    { "1: listen: bad address \"[127.0.0.1]:25\": invalid IPv6 "
		"address" } },
	{ "listen 127.0.0.1:25 relay\n",
	    { "1: listen: unknown role \"relay\" (mx, submission or "
		"submissions)" } },
	{ "listen 127.0.0.1:25 MX\n",
	    { "1: listen: unknown role \"MX\" (mx, submission or "
		"submissions)" } },
	{ "listen 127.0.0.1:25\nlisten 127.0.0.1:25 submission\n",
	    { "2: listen: \"127.0.0.1:25\" already listed on line 1" } },

	/* trusted */
	{ "trusted 10.0.0.0/33\n",
	    { "1: trusted: invalid prefix length in \"10.0.0.0/33\" "
		"(0-32)" } },
	{ "trusted ::/129\n",
	    { "1: trusted: invalid prefix length in \"::/129\" (0-128)" } },
	{ "trusted 10.0.0.0/\n",
	    { "1: trusted: invalid prefix length in \"10.0.0.0/\" "
		"(0-32)" } },
	{ "trusted 10.0.0.0/x\n",
	    { "1: trusted: invalid prefix length in \"10.0.0.0/x\" "
		"(0-32)" } },
	{ "trusted 10.0.0/8\n",
	    { "1: trusted: invalid network \"10.0.0/8\" (ADDRESS or "
		"ADDRESS/PREFIX)" } },
	{ "trusted example.test\n",
	    { "1: trusted: invalid network \"example.test\" (ADDRESS or "
		"ADDRESS/PREFIX)" } },
	{ "trusted 2001:db8::g/32\n",
	    { "1: trusted: invalid network \"2001:db8::g/32\" (ADDRESS or "
		"ADDRESS/PREFIX)" } },
	{ "trusted 10.1.2.3/8\n",
	    { "1: trusted: host bits set in \"10.1.2.3/8\" (the network is "
		"10.0.0.0/8)" } },
	{ "trusted 2001:db8::1/64\n",
	    { "1: trusted: host bits set in \"2001:db8::1/64\" (the network "
		"is 2001:db8::/64)" } },

	/* dns */
	{ "dns resolver.example\n",
	    { "1: dns: bad address \"resolver.example\": not a numeric IPv4 "
		"address (no host names)" } },
	{ "dns 127.0.0.1:0\n",
	    { "1: dns: bad address \"127.0.0.1:0\": invalid port "
		"(1-65535)" } },
	{ "dns [::1]:x\n",
	    { "1: dns: bad address \"[::1]:x\": invalid port (1-65535)" } },

	/* maildir, names, bare_lf */
	{ "maildir /var/mail/%d\n",
	    { "1: maildir: template must contain %u" } },
	{ "maildir /var/mail/%x/%u\n",
	    { "1: maildir: unknown escape \"%x\" (only %d, %u and %%)" } },
	{ "maildir /var/mail/%u%\n",
	    { "1: maildir: lone % at the end (write %% for a literal %)" } },
	{ "maildir /var/mail/%%u\n",
	    { "1: maildir: template must contain %u" } },
	/* several domains need %d, wherever the lines are */
	{ "domain a.test\ndomain b.test\nmaildir /var/mail/%u\n",
	    { "3: maildir: template must contain %d when more than one "
		"domain is configured" } },
	{ "# x\nmaildir /home/%u/%%d\ndomain a.test\ndomain b.test\n",
	    { "2: maildir: template must contain %d when more than one "
		"domain is configured" } },
	{ "maildir /home/%u\ndomain a.test\nlisen x\ndomain b.test\n",
	    { "3: unknown directive \"lisen\"",
		"1: maildir: template must contain %d when more than one "
		"domain is configured" } },
	{ "hostname mx..example.test\n",
	    { "1: hostname: invalid host name \"mx..example.test\"" } },
	{ "hostname mx_1.example.test\n",
	    { "1: hostname: invalid host name \"mx_1.example.test\"" } },
	{ "domain example.test.\n",
	    { "1: domain: invalid domain \"example.test.\"" } },
	{ "domain -a.test\n", { "1: domain: invalid domain \"-a.test\"" } },
	{ "domain a-.test\n", { "1: domain: invalid domain \"a-.test\"" } },
	{ "domain [127.0.0.1]\n",
	    { "1: domain: invalid domain \"[127.0.0.1]\"" } },
	{ "bare_lf maybe\n",
	    { "1: bare_lf: invalid value \"maybe\" (reject or normalize)" } },
	{ "log file\n",
	    { "1: log: invalid value \"file\" (stderr or syslog)" } },
	{ "dnssec maybe\n",
	    { "1: dnssec: invalid value \"maybe\" (on or off)" } },
	{ "relayhost [2001:db8::1\n",
	    { "1: relayhost: bad next hop \"[2001:db8::1\": missing ']'" } },
	{ "relayhost 2001:db8::1\n",
	    { "1: relayhost: bad next hop \"2001:db8::1\": an IPv6 address "
	      "needs brackets, as in [2001:db8::1]:25" } },
	{ "relayhost [relay.test]:0\n",
	    { "1: relayhost: bad next hop \"[relay.test]:0\": invalid port "
	      "(1-65535)" } },
	{ "relayhost bad_host!\n",
	    { "1: relayhost: bad next hop \"bad_host!\": invalid host name "
	      "or address" } },
	{ "relayhost_auth me /etc/pw\n",
	    { "1: relayhost_auth: needs a relayhost" } },
	{ "smtp_bind_address ::1\n",
	    { "1: smtp_bind_address: not a numeric IPv4 address \"::1\"" } },
	{ "smtp_bind_address6 127.0.0.1\n",
	    { "1: smtp_bind_address6: not a numeric IPv6 address "
	      "\"127.0.0.1\"" } },
	{ "retry_initial 10m\nretry_max 5m\n",
	    { "2: retry_max (300s) is shorter than retry_initial (600s)" } },
	{ "double_bounce <x@y.test>\n",
	    { "1: double_bounce: invalid address \"<x@y.test>\" (a local part "
	      "such as postmaster, or user@domain)" } },
	{ "transport /does/not/exist\n",
	    { "1: transport: cannot open \"/does/not/exist\": No such file "
	      "or directory" } },
	{ "tls_cert /a.pem\ntls_key /b.pem mail.example.test\n",
	    { "1: tls_cert: no tls_key for the default certificate",
	      "2: tls_key: no tls_cert for mail.example.test" } },
	{ "tls_cert /a.pem\ntls_key /a.key\ntls_cert /c.pem\n",
	    { "3: tls_cert: a second one for the default certificate (first "
	      "on line 1)" } },
	{ "tls_protocols SSLv3\n",
	    { "1: tls_protocols: unknown protocol \"SSLv3\" (TLSv1, TLSv1.1, "
	      "TLSv1.2, TLSv1.3)" } },
	{ "auth ldap\n",
	    { "1: auth: expected \"users\" or \"dovecot unix:/path/to/"
	      "auth-client\", not \"ldap\"" } },

	/* SPF, DKIM and DMARC */
	{ "spf_reject maybe\n",
	    { "1: spf_reject: invalid value \"maybe\" (on or off)" } },
	{ "spf_temperror_defer 1\n",
	    { "1: spf_temperror_defer: invalid value \"1\" (on or off)" } },
	{ "spf_helo YES\n",
	    { "1: spf_helo: invalid value \"YES\" (on or off)" } },
	{ "dkim_allow_sha1 true\n",
	    { "1: dkim_allow_sha1: invalid value \"true\" (on or off)" } },
	{ "dmarc_enforce quarantine\n",
	    { "1: dmarc_enforce: invalid value \"quarantine\" (on or "
	      "off)" } },
	{ "msgauth off please\n",
	    { "1: msgauth: unexpected extra value \"please\"" } },
	{ "msgauth no\nmsgauth yes\n",
	    { "2: duplicate directive \"msgauth\" (first on line 1)" } },
	{ "spf_reject yes\n\nspf_reject yes\n",
	    { "3: duplicate directive \"spf_reject\" (first on line 1)" } },
	{ "dkim_max_signatures 0\n",
	    { "1: dkim_max_signatures: too small (minimum 1)" } },
	{ "dkim_max_signatures 21\n",
	    { "1: dkim_max_signatures: too large (maximum 20)" } },
	{ "dkim_max_signatures five\n",
	    { "1: dkim_max_signatures: invalid number \"five\"" } },
	{ "dmarc_multiple_from first\n",
	    { "1: dmarc_multiple_from: invalid value \"first\" (reject or "
	      "evaluate)" } },
	{ "dmarc_multiple_from Reject\n",
	    { "1: dmarc_multiple_from: invalid value \"Reject\" (reject or "
	      "evaluate)" } },
	{ "dmarc_multiple_from\n",
	    { "1: dmarc_multiple_from: missing value" } },
	{ "dkim_sign example.test s1\n",
	    { "1: dkim_sign: missing value" } },
	{ "dkim_sign example.test s1 /k.pem rsa\n",
	    { "1: dkim_sign: unexpected extra value \"rsa\"" } },
	{ "dkim_sign * s1 /k.pem\n",
	    { "1: dkim_sign: invalid domain \"*\"" } },
	{ "dkim_sign *.example.test s1 /k.pem\n",
	    { "1: dkim_sign: invalid domain \"*.example.test\"" } },
	{ "dkim_sign example.test. s1 /k.pem\n",
	    { "1: dkim_sign: invalid domain \"example.test.\"" } },
	{ "dkim_sign ex_ample.test s1 /k.pem\n",
	    { "1: dkim_sign: invalid domain \"ex_ample.test\"" } },
	{ "dkim_sign [192.0.2.1] s1 /k.pem\n",
	    { "1: dkim_sign: invalid domain \"[192.0.2.1]\"" } },
	{ "dkim_sign example.test s_1 /k.pem\n",
	    { "1: dkim_sign: invalid selector \"s_1\" (letters, digits and "
	      "hyphens, labels separated by dots)" } },
	{ "dkim_sign example.test -s1 /k.pem\n",
	    { "1: dkim_sign: invalid selector \"-s1\" (letters, digits and "
	      "hyphens, labels separated by dots)" } },
	{ "dkim_sign example.test s1- /k.pem\n",
	    { "1: dkim_sign: invalid selector \"s1-\" (letters, digits and "
	      "hyphens, labels separated by dots)" } },
	{ "dkim_sign example.test a..b /k.pem\n",
	    { "1: dkim_sign: invalid selector \"a..b\" (letters, digits and "
	      "hyphens, labels separated by dots)" } },
	{ "dkim_sign example.test .s1 /k.pem\n",
	    { "1: dkim_sign: invalid selector \".s1\" (letters, digits and "
	      "hyphens, labels separated by dots)" } },
	{ "dkim_sign example.test s1. /k.pem\n",
	    { "1: dkim_sign: invalid selector \"s1.\" (letters, digits and "
	      "hyphens, labels separated by dots)" } },
	{ "dkim_sign example.test s1._domainkey /k.pem\n",
	    { "1: dkim_sign: invalid selector \"s1._domainkey\" (letters, "
	      "digits and hyphens, labels separated by dots)" } },
	{ "dkim_sign example.test "
	  "s123456789012345678901234567890123456789012345678901234567890123"
	  " /k.pem\n",
	    { "1: dkim_sign: invalid selector "
	      "\"s123456789012345678901234567890123456789012345678901234567890"
	      "123\" (letters, digits and hyphens, labels separated by "
	      "dots)" } },
	{ "dkim_sign example.test s\xc3\xa9 /k.pem\n",
	    { "1: dkim_sign: invalid selector \"s\\xc3\\xa9\" (letters, "
	      "digits and hyphens, labels separated by dots)" } },
	{ "dkim_sign example.test s1 /a.pem\n"
	  "dkim_sign Example.TEST s1 /b.pem\n",
	    { "2: dkim_sign: selector \"s1\" of example.test already listed "
	      "on line 1" } },
	{ "dkim_sign example.test s1 /a.pem\n"
	  "dkim_sign example.test s2 /b.pem\n"
	  "# x\n"
	  "dkim_sign example.test S2 /a.pem\n",
	    { "4: dkim_sign: selector \"S2\" of example.test already listed "
	      "on line 2" } },
	{ "quarantine_folder .Junk\n",
	    { "1: quarantine_folder: invalid folder name \".Junk\" (letters, "
	      "digits, '-' and '_', with '.' between names, as in Junk or "
	      "Junk.DMARC)" } },
	{ "quarantine_folder Junk.\n",
	    { "1: quarantine_folder: invalid folder name \"Junk.\" (letters, "
	      "digits, '-' and '_', with '.' between names, as in Junk or "
	      "Junk.DMARC)" } },
	{ "quarantine_folder ..\n",
	    { "1: quarantine_folder: invalid folder name \"..\" (letters, "
	      "digits, '-' and '_', with '.' between names, as in Junk or "
	      "Junk.DMARC)" } },
	{ "quarantine_folder .\n",
	    { "1: quarantine_folder: invalid folder name \".\" (letters, "
	      "digits, '-' and '_', with '.' between names, as in Junk or "
	      "Junk.DMARC)" } },
	{ "quarantine_folder Junk..Spam\n",
	    { "1: quarantine_folder: invalid folder name \"Junk..Spam\" "
	      "(letters, digits, '-' and '_', with '.' between names, as in "
	      "Junk or Junk.DMARC)" } },
	{ "quarantine_folder Junk/../../etc\n",
	    { "1: quarantine_folder: invalid folder name \"Junk/../../etc\" "
	      "(letters, digits, '-' and '_', with '.' between names, as in "
	      "Junk or Junk.DMARC)" } },
	{ "quarantine_folder /var/mail/junk\n",
	    { "1: quarantine_folder: invalid folder name \"/var/mail/junk\" "
	      "(letters, digits, '-' and '_', with '.' between names, as in "
	      "Junk or Junk.DMARC)" } },
	{ "quarantine_folder J\xc3\xbcnk\n",
	    { "1: quarantine_folder: invalid folder name \"J\\xc3\\xbcnk\" "
	      "(letters, digits, '-' and '_', with '.' between names, as in "
	      "Junk or Junk.DMARC)" } },
	{ "quarantine_folder Junk&AOQ-\n",
	    { "1: quarantine_folder: invalid folder name \"Junk&AOQ-\" "
	      "(letters, digits, '-' and '_', with '.' between names, as in "
	      "Junk or Junk.DMARC)" } },
	{ "quarantine_folder "
	  "J1234567890123456789012345678901234567890123456789012345678901234\n",
	    { "1: quarantine_folder: folder name too long (maximum 64 "
	      "octets)" } },
	{ "quarantine_folder Junk\nquarantine_folder Spam\n",
	    { "2: duplicate directive \"quarantine_folder\" (first on line "
	      "1)" } },

	/* several errors in one file: all reported, right lines */
	{ "# petrel.conf\n"
	  "hostname mx.example.test\n"
	  "lisen 127.0.0.1:25\n"
	  "\n"
	  "max_recipients lots   # comment\n"
	  "domain example.test\n"
	  "timeout_data 10y\n"
	  "listen 127.0.0.1:25 relay\n"
	  "trusted 10.0.0.0/40\n"
	  "hostname other.test\n"
	  "maildir /var/mail/%d\n"
	  "spool\n",
	    { "3: unknown directive \"lisen\"",
		"5: max_recipients: invalid number \"lots\"",
		"7: timeout_data: invalid duration \"10y\" (seconds, or a "
		"number with s, m, h or d)",
		"8: listen: unknown role \"relay\" (mx, submission or "
		"submissions)",
		"9: trusted: invalid prefix length in \"10.0.0.0/40\" (0-32)",
		"10: duplicate directive \"hostname\" (first on line 2)",
		"11: maildir: template must contain %u",
		"12: spool: missing value" } },
};

static void
test_errors(void **state)
{
	size_t i, j, nwant;

	(void)state;
	for (i = 0; i < nitems(error_cases); i++) {
		struct errors e = { .n = 0 };
		char path[256];
		struct conf *c;

		c = load_text(error_cases[i].text, path, sizeof(path), &e);
		unlink(path);
		for (nwant = 0; nwant < nitems(error_cases[i].want) &&
		    error_cases[i].want[nwant] != NULL; nwant++)
			;
		if (c != NULL) {
			conf_free(c);
			fail_msg("case %zu: got a configuration, want NULL",
			    i);
		}
		if (e.n != nwant) {
			print_message("case %zu:\n%s", i, error_cases[i].text);
			errors_print(&e);
			fail_msg("case %zu: got %zu errors, want %zu", i, e.n,
			    nwant);
		}
		for (j = 0; j < nwant; j++) {
			char *want = xasprintf("%s:%s", path,
			    error_cases[i].want[j]);

			if (strcmp(e.msg[j], want) != 0)
				fail_msg("case %zu: got \"%s\", want \"%s\"",
				    i, e.msg[j], want);
			free(want);
		}
		errors_clear(&e);
	}
}

/* relayhost forms, the transport file and conf_route_find(). */
static void
test_routes(void **state)
{
	struct errors e = { .n = 0 };
	const struct conf_route *r;
	char tpath[256], path[256], *text;
	struct conf *c;

	(void)state;
	c = load_ok("relayhost [Relay.Example.Test]:587\n");
	assert_non_null(c->relayhost);
	assert_string_equal(c->relayhost->host, "relay.example.test");
	assert_int_equal(c->relayhost->port, 587);
	assert_false(c->relayhost->mx);
	conf_free(c);
	c = load_ok("relayhost relay.example.test\n");
	assert_true(c->relayhost->mx);
	assert_int_equal(c->relayhost->port, 25);
	conf_free(c);
	c = load_ok("relayhost [2001:db8::1]:26\n");
	assert_string_equal(c->relayhost->host, "2001:db8::1");
	assert_false(c->relayhost->mx);
	conf_free(c);
	c = load_ok("relayhost 192.0.2.1\n");	/* an address: never MX */
	assert_false(c->relayhost->mx);
	conf_free(c);

	{
		static const char routes[] = "# routes\n"
		    "example.org   smtp:[10.0.0.5]:2525\n"
		    ".example.org  smtp:relay.example.net\n"
		    "Lists.Example.COM lmtp:unix:/run/dovecot/lmtp   # x\n"
		    "archive.test  lmtp:inet:127.0.0.1:24\n"
		    "sink.test     discard:\n"
		    "void.test     discard:benchmark-sink\n"
		    "*             smtp:[smarthost.test]\n";

		write_file(tpath, sizeof(tpath), routes, sizeof(routes) - 1);
	}
	text = xasprintf("transport %s\n", tpath);
	c = load_ok(text);
	free(text);
	assert_int_equal(c->nroutes, 7);
	r = conf_route_find(c, "example.org");
	assert_string_equal(r->host, "10.0.0.5");
	assert_int_equal(r->port, 2525);
	assert_false(r->mx);
	r = conf_route_find(c, "a.b.example.org");	/* nearest parent */
	assert_string_equal(r->domain, ".example.org");
	assert_true(r->mx);
	r = conf_route_find(c, "lists.example.com");
	assert_int_equal(r->kind, CONF_ROUTE_LMTP_UNIX);
	assert_string_equal(r->path, "/run/dovecot/lmtp");
	r = conf_route_find(c, "archive.test");
	assert_int_equal(r->kind, CONF_ROUTE_LMTP_INET);
	assert_int_equal(r->port, 24);
	r = conf_route_find(c, "sink.test");
	assert_int_equal(r->kind, CONF_ROUTE_DISCARD);
	assert_string_equal(r->path, "");
	r = conf_route_find(c, "void.test");
	assert_int_equal(r->kind, CONF_ROUTE_DISCARD);
	assert_string_equal(r->path, "benchmark-sink");
	r = conf_route_find(c, "elsewhere.test");
	assert_string_equal(r->domain, "*");
	assert_string_equal(r->host, "smarthost.test");
	conf_free(c);
	unlink(tpath);

	/* Errors name the transport file and its line; all are reported. */
	{
		static const char bad[] = "ok.test smtp:[10.0.0.1]\n"
		    "bad.test\n"
		    "x.test ftp:host\n"
		    "ok.test smtp:[10.0.0.2]\n"
		    "y.test lmtp:inet:127.0.0.1\n";

		write_file(tpath, sizeof(tpath), bad, sizeof(bad) - 1);
	}
	text = xasprintf("transport %s\n", tpath);
	c = load_text(text, path, sizeof(path), &e);
	free(text);
	unlink(path);
	assert_null(c);
	assert_int_equal(e.n, 4);
	{
		char *want[4];
		size_t i;

		want[0] = xasprintf("%s:2: expected \"domain next-hop\", as in "
		    "\"example.com smtp:[10.0.0.1]:25\"", tpath);
		want[1] = xasprintf("%s:3: bad next hop \"ftp:host\": expected "
		    "smtp:, lmtp:unix:, lmtp:inet: or discard:", tpath);
		want[2] = xasprintf("%s:4: duplicate domain \"ok.test\"",
		    tpath);
		want[3] = xasprintf("%s:5: bad next hop \"lmtp:inet:127.0.0.1\""
		    ": lmtp:inet: needs a port, as in lmtp:inet:127.0.0.1:24",
		    tpath);
		for (i = 0; i < 4; i++) {
			if (strcmp(e.msg[i], want[i]) != 0)
				fail_msg("got \"%s\", want \"%s\"", e.msg[i],
				    want[i]);
			free(want[i]);
		}
	}
	errors_clear(&e);
	unlink(tpath);
}

/* TLS pairs by name, auth backends, on/off switches. */
static void
test_tls_and_auth(void **state)
{
	struct conf *c;

	(void)state;
	c = load_ok("tls_cert /etc/ssl/a.pem\ntls_key /etc/ssl/a.key\n"
	    "tls_key /etc/ssl/m.key Mail.Example.Test\n"
	    "tls_cert /etc/ssl/m.pem mail.example.test\n"
	    "auth_plaintext yes\nmx_auth on\nsender_login no\n"
	    "received_auth_name yes\n"
	    "auth dovecot unix:/run/dovecot/auth-client\n");
	assert_int_equal(c->ntls, 2);
	assert_null(c->tls[0].name);
	assert_string_equal(c->tls[0].cert, "/etc/ssl/a.pem");
	assert_string_equal(c->tls[0].key, "/etc/ssl/a.key");
	assert_string_equal(c->tls[1].name, "mail.example.test");
	assert_string_equal(c->tls[1].cert, "/etc/ssl/m.pem");
	assert_string_equal(c->tls[1].key, "/etc/ssl/m.key");
	assert_true(c->auth_plaintext);
	assert_true(c->mx_auth);
	assert_false(c->sender_login);
	assert_true(c->received_auth_name);
	assert_int_equal(c->auth_backend, CONF_AUTH_DOVECOT);
	assert_string_equal(c->auth_socket, "/run/dovecot/auth-client");
	conf_free(c);
}

/* One switch per row: the line and the value it must give. */
static const struct {
	const char *line;
	size_t offset;
	const char *name;
	bool want;
} msgauth_bool_cases[] = {
	{ "msgauth no", FIELD(msgauth), false },
	{ "msgauth off", FIELD(msgauth), false },
	{ "msgauth yes", FIELD(msgauth), true },
	{ "spf_reject yes", FIELD(spf_reject), true },
	{ "spf_reject on", FIELD(spf_reject), true },
	{ "spf_reject no", FIELD(spf_reject), false },
	{ "spf_temperror_defer yes", FIELD(spf_temperror_defer), true },
	{ "spf_temperror_defer no", FIELD(spf_temperror_defer), false },
	{ "spf_helo yes", FIELD(spf_helo), true },
	{ "spf_helo no", FIELD(spf_helo), false },
	{ "dkim_allow_sha1 yes", FIELD(dkim_allow_sha1), true },
	{ "dkim_allow_sha1 no", FIELD(dkim_allow_sha1), false },
	{ "dmarc_enforce no", FIELD(dmarc_enforce), false },
	{ "dmarc_enforce yes", FIELD(dmarc_enforce), true },
};

/* Each switch sets its own field and no other. */
static void
test_msgauth_switches(void **state)
{
	size_t i, j;

	(void)state;
	for (i = 0; i < nitems(msgauth_bool_cases); i++) {
		char *text = xasprintf("%s\n", msgauth_bool_cases[i].line);
		struct conf *c = load_ok(text);

		check_bool(c, msgauth_bool_cases[i].offset,
		    msgauth_bool_cases[i].name, msgauth_bool_cases[i].want,
		    msgauth_bool_cases[i].line);
		for (j = 0; j < nitems(msgauth_bool_defaults); j++)
			if (msgauth_bool_defaults[j].offset !=
			    msgauth_bool_cases[i].offset)
				check_bool(c, msgauth_bool_defaults[j].offset,
				    msgauth_bool_defaults[j].name,
				    msgauth_bool_defaults[j].def,
				    msgauth_bool_cases[i].line);
		assert_int_equal(c->dmarc_multiple_from,
		    CONF_DMARC_MULTIPLE_FROM_REJECT);
		conf_free(c);
		free(text);
	}
}

static void
test_dmarc_multiple_from(void **state)
{
	struct conf *c;

	(void)state;
	c = load_ok("dmarc_multiple_from evaluate\n");
	assert_int_equal(c->dmarc_multiple_from,
	    CONF_DMARC_MULTIPLE_FROM_EVALUATE);
	conf_free(c);
	c = load_ok("dmarc_multiple_from reject\n");
	assert_int_equal(c->dmarc_multiple_from,
	    CONF_DMARC_MULTIPLE_FROM_REJECT);
	conf_free(c);
}

/* A domain name of exactly len octets: labels of 62 'a's and dots. */
static char *
long_domain(size_t len)
{
	char *s = xmalloc(len + 1);
	size_t i;

	for (i = 0; i < len; i++)
		s[i] = i % 63 == 62 ? '.' : 'a';
	s[len] = '\0';
	assert_true(len > 0 && s[len - 1] != '.');
	return s;
}

static void
check_dkim_key(const struct conf_dkim_key *k, const char *domain,
    const char *selector, const char *keyfile, unsigned int line)
{
	assert_non_null(k);
	assert_string_equal(k->domain, domain);
	assert_string_equal(k->selector, selector);
	assert_string_equal(k->keyfile, keyfile);
	assert_int_equal(k->line, line);
}

/* dkim_sign lines, in order, and conf_dkim_key_next() over them. */
static void
test_dkim_sign(void **state)
{
	const struct conf_dkim_key *k;
	struct errors e = { .n = 0 };
	char path[256], *text, *dom, *want;
	struct conf *c;
	size_t it;

	(void)state;
	c = load_ok("dkim_sign Example.TEST rsa2026 /etc/petrel/dkim/rsa.pem\n"
	    "# an Ed25519 key beside it: both sign\n"
	    "dkim_sign example.test ed2026 /etc/petrel/dkim/ed.pem\n"
	    "dkim_sign other.test Mail.2026-a ./keys/other.key\n"
	    "dkim_sign sub.example.test s1 /k/sub.pem\n"
	    "dkim_sign other.test 1 /k/one.pem\n");
	assert_int_equal(c->ndkim_keys, 5);
	check_dkim_key(&c->dkim_keys[0], "example.test", "rsa2026",
	    "/etc/petrel/dkim/rsa.pem", 1);
	check_dkim_key(&c->dkim_keys[1], "example.test", "ed2026",
	    "/etc/petrel/dkim/ed.pem", 3);
	/* the selector keeps its case: it is written into s= */
	check_dkim_key(&c->dkim_keys[2], "other.test", "Mail.2026-a",
	    "./keys/other.key", 4);
	check_dkim_key(&c->dkim_keys[3], "sub.example.test", "s1",
	    "/k/sub.pem", 5);
	check_dkim_key(&c->dkim_keys[4], "other.test", "1", "/k/one.pem", 6);

	/* Both keys of example.test, in file order, any case. */
	it = 0;
	k = conf_dkim_key_next(c, "EXAMPLE.test", &it);
	assert_ptr_equal(k, &c->dkim_keys[0]);
	k = conf_dkim_key_next(c, "EXAMPLE.test", &it);
	assert_ptr_equal(k, &c->dkim_keys[1]);
	assert_null(conf_dkim_key_next(c, "EXAMPLE.test", &it));
	assert_null(conf_dkim_key_next(c, "EXAMPLE.test", &it));
	/* other.test's two keys are not adjacent */
	it = 0;
	assert_ptr_equal(conf_dkim_key_next(c, "other.test", &it),
	    &c->dkim_keys[2]);
	assert_ptr_equal(conf_dkim_key_next(c, "other.test", &it),
	    &c->dkim_keys[4]);
	assert_null(conf_dkim_key_next(c, "other.test", &it));
	/* Exact domains only: no parent, no child, no suffix. */
	it = 0;
	assert_ptr_equal(conf_dkim_key_next(c, "sub.example.test", &it),
	    &c->dkim_keys[3]);
	assert_null(conf_dkim_key_next(c, "sub.example.test", &it));
	it = 0;
	assert_null(conf_dkim_key_next(c, "a.sub.example.test", &it));
	it = 0;
	assert_null(conf_dkim_key_next(c, "xexample.test", &it));
	it = 0;
	assert_null(conf_dkim_key_next(c, "test", &it));
	it = 0;
	assert_null(conf_dkim_key_next(c, "", &it));
	conf_free(c);

	/* No dkim_sign: nothing signs. */
	c = load_ok("");
	it = 0;
	assert_null(conf_dkim_key_next(c, "example.test", &it));
	conf_free(c);

	/*
	 * "s._domainkey.DOMAIN" may have 253 octets, not 254: with a
	 * one-octet selector the domain may have 253 - 1 - 12 = 240.
	 */
	dom = long_domain(240);
	text = xasprintf("dkim_sign %s s /k.pem\n", dom);
	c = load_ok(text);
	assert_int_equal(c->ndkim_keys, 1);
	assert_string_equal(c->dkim_keys[0].domain, dom);
	conf_free(c);
	free(text);
	text = xasprintf("dkim_sign %s s2 /k.pem\n", dom);
	c = load_text(text, path, sizeof(path), &e);
	unlink(path);
	assert_null(c);
	assert_int_equal(e.n, 1);
	want = xasprintf("%s:1: dkim_sign: selector \"s2\" too long for %s "
	    "(SELECTOR._domainkey.DOMAIN is longer than 253 octets)", path,
	    dom);
	if (strcmp(e.msg[0], want) != 0)
		fail_msg("got \"%s\", want \"%s\"", e.msg[0], want);
	free(want);
	errors_clear(&e);
	free(text);
	free(dom);
}

static void
test_nul_byte(void **state)
{
	static const char text[] = "hostname a.test\nspool /x\0y\nuser z\n";
	struct errors e = { .n = 0 };
	char path[256], *want;
	struct conf *c;

	(void)state;
	write_file(path, sizeof(path), text, sizeof(text) - 1);
	c = conf_load(path, errors_cb, &e);
	unlink(path);
	assert_null(c);
	assert_int_equal(e.n, 1);
	want = xasprintf("%s:2: NUL byte in line", path);
	assert_string_equal(e.msg[0], want);
	free(want);
	errors_clear(&e);
}

static void
test_cannot_open(void **state)
{
	struct errors e = { .n = 0 };
	char path[256], *want;
	struct conf *c;

	(void)state;
	write_file(path, sizeof(path), "", 0);
	unlink(path);
	c = conf_load(path, errors_cb, &e);
	assert_null(c);
	assert_int_equal(e.n, 1);
	want = xasprintf("%s: cannot open: No such file or directory", path);
	assert_string_equal(e.msg[0], want);
	free(want);
	errors_clear(&e);

	/* A directory opens but cannot be read: one error, no line. */
	c = conf_load("/", errors_cb, &e);
	assert_null(c);
	assert_int_equal(e.n, 1);
	assert_string_equal(e.msg[0], "/: read error: Is a directory");
	errors_clear(&e);
}

static void
test_null_callback(void **state)
{
	char path[256];
	struct conf *c;

	(void)state;
	write_file(path, sizeof(path), "bogus\n", 6);
	c = conf_load(path, NULL, NULL);
	unlink(path);
	assert_null(c);
	assert_null(conf_load(path, NULL, NULL));
}

/* ---------------------------------------------------------------- */

static void
make_sockaddr(const char *addr, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(addr, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, addr, &sin6->sin6_addr),
		    1);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, addr, &sin->sin_addr), 1);
	}
}

static const struct {
	const char *addr;
	bool want;
} trusted_cases[] = {
	/* 127.0.0.0/8 */
	{ "127.0.0.1", true },
	{ "127.255.255.255", true },
	{ "128.0.0.1", false },
	/* 172.16.0.0/12 (a prefix that is not a whole byte) */
	{ "172.16.0.1", true },
	{ "172.31.255.255", true },
	{ "172.32.0.1", false },
	{ "172.15.255.255", false },
	/* 192.0.2.7 = /32 */
	{ "192.0.2.7", true },
	{ "192.0.2.8", false },
	/* 2001:db8:1::/48 */
	{ "2001:db8:1::1", true },
	{ "2001:db8:1:ffff::1", true },
	{ "2001:db8:2::1", false },
	/* ::1/128 */
	{ "::1", true },
	{ "::2", false },
	/* IPv4-mapped against the IPv4 networks */
	{ "::ffff:127.0.0.1", true },
	{ "::ffff:172.20.1.1", true },
	{ "::ffff:192.0.2.7", true },
	{ "::ffff:192.0.2.8", false },
	{ "::ffff:10.0.0.1", false },
	/* not mapped: the same bytes elsewhere in v6 space do not count */
	{ "::127.0.0.1", false },
	{ "64:ff9b::127.0.0.1", false },
	/* 0.0.0.0 is not in any listed network */
	{ "0.0.0.0", false },
	{ "10.0.0.1", false },
};

static void
test_trusted(void **state)
{
	struct conf *c;
	size_t i;

	(void)state;
	c = load_ok("trusted 127.0.0.0/8\n"
		    "trusted 172.16.0.0/12\n"
		    "trusted 192.0.2.7\n"
		    "trusted 2001:db8:1::/48\n"
		    "trusted ::1/128\n");
	for (i = 0; i < nitems(trusted_cases); i++) {
		struct sockaddr_storage ss;
		bool got;

		make_sockaddr(trusted_cases[i].addr, &ss);
		got = conf_is_trusted(c, (struct sockaddr *)&ss);
		if (got != trusted_cases[i].want)
			fail_msg("%s: got %s, want %s", trusted_cases[i].addr,
			    got ? "trusted" : "untrusted",
			    trusted_cases[i].want ? "trusted" : "untrusted");
	}
	conf_free(c);
}

static void
test_trusted_edges(void **state)
{
	struct sockaddr_storage ss;
	struct conf *c;

	(void)state;
	/* No trusted directive: nobody is trusted, not even loopback. */
	c = load_ok("");
	make_sockaddr("127.0.0.1", &ss);
	assert_false(conf_is_trusted(c, (struct sockaddr *)&ss));
	make_sockaddr("::1", &ss);
	assert_false(conf_is_trusted(c, (struct sockaddr *)&ss));
	conf_free(c);

	/* /0 matches its whole family, and only it (plus mapped). */
	c = load_ok("trusted 0.0.0.0/0\n");
	make_sockaddr("203.0.113.9", &ss);
	assert_true(conf_is_trusted(c, (struct sockaddr *)&ss));
	make_sockaddr("::ffff:203.0.113.9", &ss);
	assert_true(conf_is_trusted(c, (struct sockaddr *)&ss));
	make_sockaddr("2001:db8::1", &ss);
	assert_false(conf_is_trusted(c, (struct sockaddr *)&ss));
	conf_free(c);

	/* An IPv6 network in mapped space covers the IPv4 client too. */
	c = load_ok("trusted ::ffff:10.0.0.0/104\n");
	make_sockaddr("10.9.9.9", &ss);
	assert_true(conf_is_trusted(c, (struct sockaddr *)&ss));
	make_sockaddr("11.0.0.1", &ss);
	assert_false(conf_is_trusted(c, (struct sockaddr *)&ss));
	conf_free(c);

	/* An AF_UNIX (or other) address is never trusted. */
	c = load_ok("trusted 0.0.0.0/0\ntrusted ::/0\n");
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	assert_false(conf_is_trusted(c, (struct sockaddr *)&ss));
	conf_free(c);
}

static void
test_local_domain(void **state)
{
	struct conf *c;

	(void)state;
	c = load_ok("domain Example.Test\ndomain b.test\n");
	assert_true(conf_is_local_domain(c, "example.test"));
	assert_true(conf_is_local_domain(c, "EXAMPLE.TEST"));
	assert_true(conf_is_local_domain(c, "B.test"));
	assert_false(conf_is_local_domain(c, "example.tes"));
	assert_false(conf_is_local_domain(c, "xexample.test"));
	assert_false(conf_is_local_domain(c, "sub.example.test"));
	assert_false(conf_is_local_domain(c, ""));
	conf_free(c);

	c = load_ok("");
	assert_false(conf_is_local_domain(c, "localhost"));
	conf_free(c);
}

static void
test_locate(void **state)
{
	char exists[256], missing[256], notdir[300];
	const char *source, *got;

	(void)state;
	write_file(exists, sizeof(exists), "", 0);
	write_file(missing, sizeof(missing), "", 0);
	unlink(missing);
	snprintf(notdir, sizeof(notdir), "%s/petrel.conf", exists);

	unsetenv("PETREL_CONFIG");
	/* -c wins over everything, whether or not the file exists. */
	setenv("PETREL_CONFIG", "/env/petrel.conf", 1);
	got = conf_locate_from("/cli/petrel.conf", exists, &source);
	assert_string_equal(got, "/cli/petrel.conf");
	assert_string_equal(source, "command line");
	got = conf_locate("/cli/petrel.conf", &source);
	assert_string_equal(got, "/cli/petrel.conf");
	assert_string_equal(source, "command line");

	/* then $PETREL_CONFIG, over an existing system file */
	got = conf_locate_from(NULL, exists, &source);
	assert_string_equal(got, "/env/petrel.conf");
	assert_string_equal(source, "PETREL_CONFIG");
	got = conf_locate(NULL, &source);
	assert_string_equal(got, "/env/petrel.conf");
	assert_string_equal(source, "PETREL_CONFIG");

	/* an empty $PETREL_CONFIG is as good as unset */
	setenv("PETREL_CONFIG", "", 1);
	got = conf_locate_from(NULL, exists, &source);
	assert_string_equal(got, exists);
	assert_string_equal(source, exists);

	/* then the system file if it exists... */
	unsetenv("PETREL_CONFIG");
	got = conf_locate_from(NULL, exists, &source);
	assert_string_equal(got, exists);
	assert_string_equal(source, exists);

	/* ...else the built-in default */
	got = conf_locate_from(NULL, missing, &source);
	assert_null(got);
	assert_string_equal(source, "built-in default");
	got = conf_locate_from(NULL, notdir, &source);
	assert_null(got);
	assert_string_equal(source, "built-in default");

	/* conf_locate() uses /etc/petrel/petrel.conf */
	got = conf_locate(NULL, &source);
	if (access(CONF_SYSTEM_PATH, F_OK) == 0) {
		assert_string_equal(got, "/etc/petrel/petrel.conf");
		assert_string_equal(source, "/etc/petrel/petrel.conf");
	} else {
		assert_null(got);
		assert_string_equal(source, "built-in default");
	}
	unlink(exists);
}

static void
test_role_name(void **state)
{
	(void)state;
	assert_string_equal(conf_role_name(CONF_ROLE_MX), "mx");
	assert_string_equal(conf_role_name(CONF_ROLE_SUBMISSION),
	    "submission");
	assert_string_equal(conf_role_name(CONF_ROLE_SUBMISSIONS),
	    "submissions");
	assert_string_equal(conf_role_name((enum conf_role)42), "unknown");
}

static void
test_free_null(void **state)
{
	(void)state;
	conf_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_domain_default),
		cmocka_unit_test(test_maildir_needs_domain),
		cmocka_unit_test(test_builtin_default),
		cmocka_unit_test(test_number_directives),
		cmocka_unit_test(test_string_directives),
		cmocka_unit_test(test_log),
		cmocka_unit_test(test_bare_lf),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_lists_accumulate),
		cmocka_unit_test(test_dns_forms),
		cmocka_unit_test(test_comments_and_whitespace),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_tls_and_auth),
		cmocka_unit_test(test_msgauth_switches),
		cmocka_unit_test(test_dmarc_multiple_from),
		cmocka_unit_test(test_dkim_sign),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_cannot_open),
		cmocka_unit_test(test_null_callback),
		cmocka_unit_test(test_trusted),
		cmocka_unit_test(test_trusted_edges),
		cmocka_unit_test(test_local_domain),
		cmocka_unit_test(test_locate),
		cmocka_unit_test(test_role_name),
		cmocka_unit_test(test_free_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
