/*
 * auth.c: `petrel auth check`, the Authentication-Results field Petrel
 * would add to a message, for administrators and tests.
 *
 *   petrel auth check [-c FILE] [--dns HOST:PORT]... --ip IP
 *                     --helo NAME --mail-from ADDR < message
 *
 * The message is read from standard input (bare LF line ends become CRLF,
 * as on the wire); SPF (MAIL FROM, or the HELO name when ADDR is "" or
 * "<>"), DKIM and DMARC run exactly as for a message arriving on port 25
 * from an untrusted client (src/msgauth/check.c), with the configuration's
 * hostname as the authserv-id and its dns servers (or --dns). Prints the
 * field, then the disposition ("disposition: accept|quarantine|reject")
 * and the log line. Exit status: 0 when a result was printed, 1 when the
 * check could not run (deadline), 2 on usage errors (a --dns or `dns`
 * address the resolver refuses included).
 *
 * Entry point: cmd_auth().
 * SECURITY: the message and the DNS answers are untrusted; the libraries
 * bound them (check.h). The input is capped at max_message_size.
 * OWNERSHIP: everything is freed before return.
 */
#include <sys/socket.h>
#include <arpa/inet.h>

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "daemon/daemon.h"
#include "dns/dns.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "msgauth/check.h"

int cmd_auth(int argc, char **argv);

#define AUTH_CLI_MAX_DNS	8
#define AUTH_CLI_DEADLINE_SEC	60

struct auth_cli {
	struct event_base *base;
	bool done;
	int status;
};

static void
auth_cli_usage(void)
{
	fprintf(stderr, "usage: petrel auth check [-c FILE] [--dns HOST:PORT]"
	    "... --ip IP --helo NAME\n"
	    "                         --mail-from ADDR < message\n");
}

static void
auth_cli_conf_error(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "%s\n", msg);
}

static void
auth_cli_done(void *arg, const struct msgauth_result *r)
{
	struct auth_cli *a = arg;
	const char *l, *e;

	/* The field as a header would carry it, with the terminal's line
	 * ends: CRLF becomes LF, as on the two lines after it. */
	for (l = r->authres; (e = strstr(l, "\r\n")) != NULL; l = e + 2)
		printf("%.*s\n", (int)(e - l), l);
	fputs(l, stdout);
	printf("disposition: %s\n", msgauth_disposition_name(r->disposition));
	printf("log: %s\n", r->log);
	a->status = 0;
	a->done = true;
	event_base_loopbreak(a->base);
}

static void
auth_cli_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct auth_cli *a = arg;

	(void)fd;
	(void)what;
	fprintf(stderr, "petrel: auth: no result within %d s\n",
	    AUTH_CLI_DEADLINE_SEC);
	a->done = true;
	event_base_loopbreak(a->base);
}

/* Standard input, bare LF turned into CRLF, at most max octets. */
static int
auth_cli_read(struct buf *msg, uint64_t max)
{
	char chunk[65536];
	ssize_t n, i;
	char prev = '\0';

	while ((n = read(STDIN_FILENO, chunk, sizeof(chunk))) > 0) {
		for (i = 0; i < n; i++) {
			if (chunk[i] == '\n' && prev != '\r' &&
			    buf_append(msg, "\r", 1) == -1)
				return -1;
			if (buf_append(msg, &chunk[i], 1) == -1)
				return -1;
			prev = chunk[i];
		}
		if (msg->len > max) {
			errno = EFBIG;
			return -1;
		}
	}
	return n < 0 ? -1 : 0;
}

static int
auth_cli_run(const struct conf *c, const char *const *dns, size_t ndns,
    struct msgauth_params *p, const struct buf *msg)
{
	struct auth_cli a = { NULL, false, 1 };
	struct event *deadline = NULL;
	struct timeval tv = { AUTH_CLI_DEADLINE_SEC, 0 };
	struct msgauth_check *chk = NULL;
	char err[256];

	if ((a.base = event_base_new()) == NULL)
		return 1;
	if ((p->dns = daemon_dns_new(a.base, c, dns, ndns, err,
	    sizeof(err))) == NULL) {
		/* A --dns or `dns` address refused: a usage error. */
		fprintf(stderr, "petrel: dns: %s\n", err);
		a.status = 2;
		goto done;
	}
	deadline = evtimer_new(a.base, auth_cli_deadline, &a);
	if (deadline == NULL || evtimer_add(deadline, &tv) == -1)
		goto done;
	chk = msgauth_start(p);
	msgauth_feed(chk, msg->data != NULL ? msg->data : "", msg->len);
	msgauth_end(chk, auth_cli_done, &a);
	while (!a.done)
		if (event_base_loop(a.base, EVLOOP_ONCE) == -1)
			break;
done:
	msgauth_free(chk);
	if (deadline != NULL)
		event_free(deadline);
	dns_free(p->dns);
	event_base_free(a.base);
	fflush(stdout);
	return a.status;
}

int
cmd_auth(int argc, char **argv)
{
	enum { OPT_DNS = 256, OPT_IP, OPT_FROM, OPT_HELO };
	static const struct option longopts[] = {
		{ "dns", required_argument, NULL, OPT_DNS },
		{ "ip", required_argument, NULL, OPT_IP },
		{ "mail-from", required_argument, NULL, OPT_FROM },
		{ "helo", required_argument, NULL, OPT_HELO },
		{ NULL, 0, NULL, 0 },
	};
	const char *dns[AUTH_CLI_MAX_DNS];
	const char *conf_path = NULL, *path, *source;
	const char *ip = NULL, *from = NULL, *helo = NULL;
	struct msgauth_params p;
	struct conf *c;
	struct buf msg;
	unsigned char a6[16];
	size_t ndns = 0;
	int ch, status;

	if (argc < 2 || strcmp(argv[1], "check") != 0) {
		if (argc >= 2) {
			char e[128];

			fprintf(stderr, "petrel: unknown auth command \"%s\"\n",
			    log_escape(e, sizeof(e), argv[1],
			    strlen(argv[1])));
		}
		auth_cli_usage();
		return 2;
	}
	argc--;
	argv++;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case OPT_DNS:
			if (ndns == AUTH_CLI_MAX_DNS) {
				fprintf(stderr, "petrel: auth: at most %d "
				    "--dns\n", AUTH_CLI_MAX_DNS);
				return 2;
			}
			dns[ndns++] = optarg;
			break;
		case OPT_IP:
			ip = optarg;
			break;
		case OPT_FROM:
			from = optarg;
			break;
		case OPT_HELO:
			helo = optarg;
			break;
		default:
			auth_cli_usage();
			return 2;
		}
	}
	if (optind != argc || ip == NULL || from == NULL || helo == NULL) {
		auth_cli_usage();
		return 2;
	}
	if (inet_pton(AF_INET, ip, a6) != 1 && inet_pton(AF_INET6, ip, a6) !=
	    1) {
		fprintf(stderr, "petrel: auth: --ip is not an IPv4 or IPv6 "
		    "address\n");
		return 2;
	}
	if (strcmp(from, "<>") == 0)
		from = "";
	path = conf_locate(conf_path, &source);
	c = path != NULL ? conf_load(path, auth_cli_conf_error, NULL) :
	    conf_default();
	if (c == NULL)
		return 2;
	buf_init(&msg, (size_t)c->max_message_size * 2 + 2);
	if (auth_cli_read(&msg, c->max_message_size) == -1) {
		fprintf(stderr, "petrel: auth: reading the message: %s\n",
		    strerror(errno));
		buf_free(&msg);
		conf_free(c);
		return 1;
	}
	memset(&p, 0, sizeof(p));
	p.authserv_id = c->hostname;
	p.client_ip = ip;
	p.helo = helo;
	p.mail_from = from;
	p.spf_helo = c->spf_helo;
	p.dkim_max_signatures = (unsigned int)c->dkim_max_signatures;
	p.dkim_allow_sha1 = c->dkim_allow_sha1;
	p.dmarc_from_flags = DMARC_FROM_REJECT_INVALID |
	    (c->dmarc_multiple_from == CONF_DMARC_MULTIPLE_FROM_REJECT ?
	    DMARC_FROM_REJECT_MULTIPLE : 0);
	p.header_max = (size_t)c->max_header_size;
	p.pct_roll = MSGAUTH_ROLL_DRAW;
	status = auth_cli_run(c, dns, ndns, &p, &msg);
	buf_free(&msg);
	conf_free(c);
	return status;
}
