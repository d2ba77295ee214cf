/*
 * spf.c: `petrel spf check`, one SPF check_host() (msgauth/spf.h) through
 * the daemon's own resolver (libunbound, the configuration's `dns`
 * servers and `dnssec`), for administrators and for the end-to-end tests.
 *
 *   petrel spf check [-c FILE] [--dns HOST:PORT]... --ip IP
 *       --mail-from ADDR [--helo NAME] [--receiver NAME]
 *       [--default-exp MACRO-STRING]
 *
 *   $ petrel spf check --ip 192.0.2.1 --mail-from user@example.com \
 *         --helo mx.example.net
 *   fail
 *   mechanism: -all; reason: example.com matched -all
 *   explanation: example.com does not designate 192.0.2.1 as permitted sender
 *
 * --ip is the client's address (IPv4, IPv6 or IPv4-mapped IPv6).
 * --mail-from is the reverse-path's address; an empty one ("" or "<>")
 * is the null reverse-path: the HELO identity (postmaster@HELO) is
 * checked instead (RFC 7208 2.4). --helo is the HELO/EHLO argument
 * (default empty), --receiver the %{r} macro (default: the
 * configuration's hostname). --dns (repeatable) replaces the
 * configuration's `dns` servers ("127.0.0.1:5353", "[::1]:53",
 * "192.0.2.1"); with neither, /etc/resolv.conf. --default-exp replaces
 * the default explanation of a fail without a usable exp= (the suite's
 * tests compare it against "DEFAULT").
 *
 * Output (stdout), every byte outside printable ASCII and '\' as \xNN:
 *   line 1  the result: none, neutral, pass, fail, softfail, temperror,
 *           permerror (RFC 7208 2.6)
 *   line 2  "mechanism: TERM; reason: TEXT" when a top-level term
 *           decided (TERM as written, e.g. "include:_spf.example.net"),
 *           else "reason: TEXT" (no record, permerror or temperror cause,
 *           default result)
 *   line 3  fail only: "explanation: TEXT" (the exp= text or the default)
 *
 * Exit status: 0 whenever a result was obtained, whatever it is (fail,
 * temperror and permerror included: the result is the output, not an
 * error of the command); 1 when the check could not run (no event base,
 * the loop failed); 2 for a bad command line (an unknown option, a missing --ip
 * or --mail-from, --ip not an IP address, a --dns address the resolver
 * refuses) or a bad configuration, as for the other commands.
 *
 * Entry point: cmd_spf().
 * SECURITY: runs as the caller; prints DNS-derived text (explanations,
 * reasons), escaped here so that it cannot drive the terminal.
 * STANDARDS: RFC 7208 (through msgauth/spf.c).
 * OWNERSHIP: everything is freed before return.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "daemon/daemon.h"
#include "dns/dns.h"
#include "lib/log.h"
#include "lib/util.h"
#include "msgauth/spf.h"

/* spf_check() times out after 20 s (its default); this only guards the
 * loop against a bug. */
#define SPF_CLI_DEADLINE_SEC	60
#define SPF_CLI_MAX_DNS		16

int cmd_spf(int argc, char **argv);

struct spf_cli {
	struct event_base *base;
	bool done;
	int status;		/* exit code */
};

static void
spf_cli_usage(void)
{
	fprintf(stderr, "usage: petrel spf check [-c FILE] "
	    "[--dns HOST:PORT]... --ip IP --mail-from ADDR\n"
	    "           [--helo NAME] [--receiver NAME] "
	    "[--default-exp MACRO-STRING]\n");
}

static void
spf_cli_conf_error(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "petrel: %s\n", msg);
}

/* Print s with bytes outside printable ASCII and '\' as \xNN. */
static void
spf_cli_print(const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p < 0x20 || *p > 0x7e || *p == '\\')
			printf("\\x%02x", *p);
		else
			putchar(*p);
	}
}

static void
spf_cli_done(void *arg, const struct spf_outcome *o)
{
	struct spf_cli *s = arg;

	s->done = true;
	s->status = 0;
	event_base_loopbreak(s->base);
	printf("%s\n", spf_result_name(o->result));
	if (o->mechanism != NULL) {
		printf("mechanism: ");
		spf_cli_print(o->mechanism);
		printf("; ");
	}
	printf("reason: ");
	spf_cli_print(o->reason != NULL ? o->reason : "");
	printf("\n");
	if (o->result == SPF_FAIL) {
		printf("explanation: ");
		spf_cli_print(o->explanation != NULL ? o->explanation : "");
		printf("\n");
	}
}

static void
spf_cli_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct spf_cli *s = arg;

	(void)fd;
	(void)what;
	fprintf(stderr, "petrel: spf: the check did not finish in %d s\n",
	    SPF_CLI_DEADLINE_SEC);
	s->status = 1;
	s->done = true;
	event_base_loopbreak(s->base);
}

static int
spf_cli_run(const struct conf *c, const char *const *dns, size_t ndns,
    const struct spf_request *req)
{
	struct spf_cli s = { NULL, false, 1 };
	struct event *deadline = NULL;
	struct timeval tv = { SPF_CLI_DEADLINE_SEC, 0 };
	struct dns *d = NULL;
	uint64_t id = 0;
	char err[256];

	if ((s.base = event_base_new()) == NULL) {
		fprintf(stderr, "petrel: event_base_new failed\n");
		return 1;
	}
	if ((d = daemon_dns_new(s.base, c, dns, ndns, err,
	    sizeof(err))) == NULL) {
		/* A --dns or `dns` address refused: a usage error (2), as
		 * for `petrel dkim verify` and `petrel auth check`. */
		fprintf(stderr, "petrel: dns: %s\n", err);
		s.status = 2;
		goto done;
	}
	deadline = evtimer_new(s.base, spf_cli_deadline, &s);
	if (deadline == NULL || evtimer_add(deadline, &tv) == -1) {
		fprintf(stderr, "petrel: cannot set a timer\n");
		goto done;
	}
	id = spf_check(d, req, spf_cli_done, &s);
	while (!s.done)
		if (event_base_loop(s.base, EVLOOP_ONCE) == -1) {
			fprintf(stderr, "petrel: the event loop failed\n");
			s.status = 1;
			break;
		}
done:
	/* Not finished (deadline, loop failure): no callback after this. */
	if (id != 0)
		spf_cancel(id);
	if (deadline != NULL)
		event_free(deadline);
	dns_free(d);
	event_base_free(s.base);
	fflush(stdout);
	return s.status;
}

/* True if s is an IPv4 or IPv6 address spf_check() takes. */
static bool
spf_cli_ip_valid(const char *s)
{
	unsigned char a[16];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

int
cmd_spf(int argc, char **argv)
{
	enum { OPT_DNS = 256, OPT_IP, OPT_FROM, OPT_HELO, OPT_RECEIVER,
	    OPT_EXP };
	static const struct option longopts[] = {
		{ "dns", required_argument, NULL, OPT_DNS },
		{ "ip", required_argument, NULL, OPT_IP },
		{ "mail-from", required_argument, NULL, OPT_FROM },
		{ "helo", required_argument, NULL, OPT_HELO },
		{ "receiver", required_argument, NULL, OPT_RECEIVER },
		{ "default-exp", required_argument, NULL, OPT_EXP },
		{ NULL, 0, NULL, 0 },
	};
	const char *dns[SPF_CLI_MAX_DNS];
	const char *conf_path = NULL, *path, *source;
	const char *ip = NULL, *from = NULL, *helo = "", *receiver = NULL;
	const char *exp = NULL;
	struct spf_request req;
	struct conf *c;
	size_t ndns = 0;
	char e[128];
	int ch, status;

	if (argc < 2 || strcmp(argv[1], "check") != 0) {
		if (argc >= 2)
			fprintf(stderr, "petrel: unknown spf command \"%s\"\n",
			    log_escape(e, sizeof(e), argv[1],
			    strlen(argv[1])));
		spf_cli_usage();
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
			if (ndns == SPF_CLI_MAX_DNS) {
				fprintf(stderr, "petrel: spf: at most %d "
				    "--dns\n", SPF_CLI_MAX_DNS);
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
		case OPT_RECEIVER:
			receiver = optarg;
			break;
		case OPT_EXP:
			exp = optarg;
			break;
		default:
			spf_cli_usage();
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "petrel: spf: unexpected argument \"%s\"\n",
		    log_escape(e, sizeof(e), argv[optind],
		    strlen(argv[optind])));
		spf_cli_usage();
		return 2;
	}
	if (ip == NULL || from == NULL) {
		fprintf(stderr, "petrel: spf: %s is required\n",
		    ip == NULL ? "--ip" : "--mail-from");
		spf_cli_usage();
		return 2;
	}
	if (!spf_cli_ip_valid(ip)) {
		fprintf(stderr, "petrel: spf: --ip \"%s\" is not an IPv4 or "
		    "IPv6 address\n", log_escape(e, sizeof(e), ip,
		    strlen(ip)));
		return 2;
	}
	if (strcmp(from, "<>") == 0)
		from = "";

	path = conf_locate(conf_path, &source);
	c = path != NULL ? conf_load(path, spf_cli_conf_error, NULL) :
	    conf_default();
	if (c == NULL)
		return 2;
	memset(&req, 0, sizeof(req));
	req.ip = ip;
	req.mail_from = from;
	req.helo = helo;
	req.receiver = receiver != NULL ? receiver : c->hostname;
	req.default_exp = exp;
	status = spf_cli_run(c, dns, ndns, &req);
	conf_free(c);
	return status;
}
