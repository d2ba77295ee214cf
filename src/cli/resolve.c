/*
 * resolve.c: `petrel resolve [-c FILE] TYPE NAME`, one DNS lookup through
 * the daemon's own resolver (libunbound, the configuration's `dns`
 * servers and `dnssec`), for administrators and for the end-to-end tests.
 *
 *   petrel resolve MX example.com      10 mx1.example.com
 *   petrel resolve route example.com   10 mx1.example.com 192.0.2.1:25
 *
 * TYPE is A, AAAA, MX, TXT, PTR, CNAME or TLSA (any case), or `route`:
 * the RFC 5321 5.1 destination lookup for NAME as a mail domain, which
 * prints the targets in the order delivery would try them ("PREF HOST
 * ADDRESS:PORT").
 *
 * Records go to stdout, one per line in presentation form (TXT: the
 * character-strings joined, bytes outside printable ASCII and '\' as
 * \DDD). A canonical name other than NAME and a DNSSEC-secure answer are
 * noted on stderr. A failure goes to stderr: "NXDOMAIN" or "NODATA" (exit
 * 1), "TEMPFAIL: reason" (exit 75, EX_TEMPFAIL), "PERMFAIL: reason" (exit
 * 1); for route, the SMTP reply (exit 1 when permanent, 75 when
 * temporary). A bad command line or configuration exits 2.
 *
 * Entry point: cmd_resolve().
 * SECURITY: prints DNS data, which rr.c has escaped; runs as the caller.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
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

#define RESOLVE_EX_TEMPFAIL	75	/* sysexits.h EX_TEMPFAIL */
/* libunbound gives up well before this; it only guards the loop. */
#define RESOLVE_DEADLINE_SEC	60

int cmd_resolve(int argc, char **argv);

struct resolve {
	struct event_base *base;
	const char *name;
	int status;		/* exit code */
	bool done;
};

static void
resolve_usage(void)
{
	fprintf(stderr, "usage: petrel resolve [-c FILE] "
	    "A|AAAA|MX|TXT|PTR|CNAME|TLSA|route NAME\n");
}

static void
resolve_conf_error(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "petrel: %s\n", msg);
}

static void
resolve_answer(void *arg, const struct dns_answer *a)
{
	struct resolve *r = arg;
	char *buf;
	size_t i;
	int len;

	r->done = true;
	event_base_loopbreak(r->base);
	if (a->canonname != NULL && ascii_strcasecmp(a->canonname,
	    r->name) != 0)
		fprintf(stderr, "; canonical name %s\n", a->canonname);
	if (a->secure)
		fprintf(stderr, "; secure (DNSSEC)\n");
	switch (a->status) {
	case DNS_OK:
		break;
	case DNS_NODATA:
	case DNS_NXDOMAIN:
		fprintf(stderr, "%s\n", dns_status_name(a->status));
		r->status = 1;
		return;
	case DNS_TEMPFAIL:
		fprintf(stderr, "TEMPFAIL: %s\n", a->error);
		r->status = RESOLVE_EX_TEMPFAIL;
		return;
	case DNS_PERMFAIL:
		fprintf(stderr, "PERMFAIL: %s\n", a->error);
		r->status = 1;
		return;
	}
	for (i = 0; i < a->n; i++) {
		if ((len = dns_answer_format(a, i, NULL, 0)) < 0)
			continue;
		buf = xmalloc((size_t)len + 1);
		dns_answer_format(a, i, buf, (size_t)len + 1);
		printf("%s\n", buf);
		free(buf);
	}
	r->status = 0;
}

static void
resolve_route(void *arg, const struct dns_route *rt)
{
	struct resolve *r = arg;
	char ntop[INET6_ADDRSTRLEN];
	size_t i;

	r->done = true;
	event_base_loopbreak(r->base);
	if (rt->kind != DNS_ROUTE_OK) {
		fprintf(stderr, "%s\n", rt->reply);
		r->status = rt->kind == DNS_ROUTE_TEMP ?
		    RESOLVE_EX_TEMPFAIL : 1;
		return;
	}
	for (i = 0; i < rt->ntargets; i++) {
		const struct dns_target *t = &rt->targets[i];

		if (t->addr.ss_family == AF_INET6) {
			const struct sockaddr_in6 *s6 =
			    (const struct sockaddr_in6 *)&t->addr;

			inet_ntop(AF_INET6, &s6->sin6_addr, ntop, sizeof(ntop));
			printf("%u %s [%s]:%u\n", t->pref, t->host, ntop,
			    ntohs(s6->sin6_port));
		} else {
			const struct sockaddr_in *s4 =
			    (const struct sockaddr_in *)&t->addr;

			inet_ntop(AF_INET, &s4->sin_addr, ntop, sizeof(ntop));
			printf("%u %s %s:%u\n", t->pref, t->host, ntop,
			    ntohs(s4->sin_port));
		}
	}
	r->status = 0;
}

static void
resolve_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct resolve *r = arg;

	(void)fd;
	(void)what;
	fprintf(stderr, "TEMPFAIL: timed out\n");
	r->status = RESOLVE_EX_TEMPFAIL;
	r->done = true;
	event_base_loopbreak(r->base);
}

static int
resolve_run(const struct conf *c, bool route, uint16_t type,
    const char *name)
{
	struct resolve r = { NULL, name, 1, false };
	struct dns_route_opts ro;
	struct sockaddr_storage *self_addrs = NULL;
	const char *self_names[1];
	struct event *deadline = NULL;
	struct timeval tv = { RESOLVE_DEADLINE_SEC, 0 };
	struct dns *d = NULL;
	char err[256];
	size_t i;

	if ((r.base = event_base_new()) == NULL) {
		fprintf(stderr, "petrel: event_base_new failed\n");
		return 1;
	}
	if ((d = daemon_dns_new(r.base, c, NULL, 0, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "petrel: dns: %s\n", err);
		r.status = 1;
		goto done;
	}
	if (route) {
		memset(&ro, 0, sizeof(ro));
		ro.use_mx = true;
		ro.inet6 = c->inet6;
		ro.port = 25;
		self_names[0] = c->hostname;
		ro.self_names = self_names;
		ro.nself_names = c->hostname != NULL ? 1 : 0;
		if (c->nlisten > 0) {
			self_addrs = xcalloc(c->nlisten, sizeof(*self_addrs));
			for (i = 0; i < c->nlisten; i++)
				self_addrs[i] = c->listen[i].addr;
		}
		ro.self_addrs = self_addrs;
		ro.nself_addrs = c->nlisten;
		dns_route_lookup(d, name, &ro, resolve_route, &r);
	} else
		dns_query(d, name, type, resolve_answer, &r);
	deadline = evtimer_new(r.base, resolve_deadline, &r);
	if (deadline == NULL || evtimer_add(deadline, &tv) == -1) {
		fprintf(stderr, "petrel: cannot set a timer\n");
		r.status = 1;
		goto done;
	}
	while (!r.done)
		if (event_base_loop(r.base, EVLOOP_ONCE) == -1)
			break;
done:
	if (deadline != NULL)
		event_free(deadline);
	dns_free(d);
	free(self_addrs);
	event_base_free(r.base);
	return r.status;
}

int
cmd_resolve(int argc, char **argv)
{
	const char *conf_path = NULL, *path, *source;
	struct conf *c;
	uint16_t type = 0;
	bool route = false;
	int ch, status;

	optind = 1;
	while ((ch = getopt(argc, argv, "c:")) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		default:
			resolve_usage();
			return 2;
		}
	}
	if (argc - optind != 2) {
		resolve_usage();
		return 2;
	}
	if (ascii_strcasecmp(argv[optind], "route") == 0)
		route = true;
	else if ((type = dns_type_from_name(argv[optind])) == 0 ||
	    type == DNS_TYPE_NS || type == DNS_TYPE_SOA) {
		fprintf(stderr, "petrel: resolve: unknown type \"%s\"\n",
		    argv[optind]);
		resolve_usage();
		return 2;
	}
	path = conf_locate(conf_path, &source);
	c = path != NULL ? conf_load(path, resolve_conf_error, NULL) :
	    conf_default();
	if (c == NULL)
		return 2;
	status = resolve_run(c, route, type, argv[optind + 1]);
	conf_free(c);
	return status;
}
