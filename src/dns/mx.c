/*
 * mx.c: where mail for a domain goes (RFC 5321 section 5.1): the MX
 * lookup, preference order with equal preferences shuffled, the implicit
 * MX, the null MX, this host in the list, and the addresses of every
 * remaining host, as one ordered list of targets.
 *
 * Entry points: dns_route_lookup(), dns_route_cancel();
 * dns_route_free_all() for dns_free().
 *
 * A lookup is one MX query, then an AAAA and an A query per host, all in
 * parallel; the callback runs when the last one answered. The sub-queries
 * carry a pointer to the lookup (or its host): a lookup that goes away
 * cancels them first, so none can answer into freed memory.
 *
 * SECURITY: MX names and addresses come from the DNS: names are parsed and
 * escaped by rr.c; at most DNS_ROUTE_MAX_HOSTS hosts and
 * DNS_ROUTE_MAX_ADDRS addresses per host and family are used, so a huge
 * answer cannot make a huge target list.
 * STANDARDS: RFC 5321 5.1 (MX order, implicit MX, this host in the list),
 * RFC 7505 (null MX), RFC 3463 (enhanced codes in the replies: 4.4.3
 * directory server failure, 5.1.2 bad destination system, 5.4.4 unable to
 * route, 5.4.6 routing loop), RFC 7505 3.2 (5.1.10 for a null MX).
 * OWNERSHIP: struct dns keeps the list of lookups (dns_routes_head());
 * each owns its copies of the options, hosts and targets.
 */
#include "dns/dns.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "dns/dns_private.h"
#include "dns/rr.h"
#include "lib/log.h"
#include "lib/util.h"

enum {
	ROUTE_AAAA,
	ROUTE_A,
};

struct dns_route_host {
	struct dns_route_req *rr;
	char name[DNS_NAME_MAX];
	uint16_t pref;
	uint32_t rnd;
	uint64_t qid[2];		/* by ROUTE_AAAA, ROUTE_A; 0: none */
	bool asked[2];
	enum dns_status st[2];
	struct dns_addr addrs[2][DNS_ROUTE_MAX_ADDRS];
	size_t naddrs[2];
};

struct dns_route_req {
	struct dns_route_req *next, *prev;
	struct dns *d;
	uint64_t id;
	char domain[DNS_NAME_MAX];
	bool use_mx, inet6;
	unsigned int port;
	char **self_names;
	size_t nself_names;
	struct sockaddr_storage *self_addrs;
	size_t nself_addrs;
	dns_route_cb cb;
	void *arg;
	uint64_t qid_mx;
	struct dns_route_host *hosts;
	size_t nhosts;
	size_t pending;			/* address queries unanswered */
	struct event *ev;		/* answers that need no DNS */
	struct dns_route res;
	struct dns_target *targets;
};

static void route_build(struct dns_route_req *);

static void
route_link(struct dns_route_req *rr)
{
	struct dns_route_req **head = dns_routes_head(rr->d);

	rr->prev = NULL;
	rr->next = *head;
	if (*head != NULL)
		(*head)->prev = rr;
	*head = rr;
}

static void
route_unlink(struct dns_route_req *rr)
{
	struct dns_route_req **head = dns_routes_head(rr->d);

	if (rr->prev != NULL)
		rr->prev->next = rr->next;
	else
		*head = rr->next;
	if (rr->next != NULL)
		rr->next->prev = rr->prev;
	rr->next = rr->prev = NULL;
}

/* Cancel every sub-query still out. */
static void
route_cancel_queries(struct dns_route_req *rr)
{
	size_t i, k;

	if (rr->qid_mx != 0)
		dns_cancel(rr->d, rr->qid_mx);
	rr->qid_mx = 0;
	for (i = 0; i < rr->nhosts; i++)
		for (k = 0; k < 2; k++) {
			if (rr->hosts[i].qid[k] != 0)
				dns_cancel(rr->d, rr->hosts[i].qid[k]);
			rr->hosts[i].qid[k] = 0;
		}
	rr->pending = 0;
}

static void
route_free(struct dns_route_req *rr)
{
	size_t i;

	if (rr->ev != NULL)
		event_free(rr->ev);
	for (i = 0; i < rr->nself_names; i++)
		free(rr->self_names[i]);
	free(rr->self_names);
	free(rr->self_addrs);
	free(rr->hosts);
	free(rr->targets);
	free(rr);
}

/* The result is in rr->res: hand it over and free the lookup. */
static void
route_finish(struct dns_route_req *rr)
{
	route_cancel_queries(rr);
	route_unlink(rr);
	rr->res.domain = rr->domain;
	if (rr->res.kind != DNS_ROUTE_OK) {
		rr->res.targets = NULL;
		rr->res.ntargets = 0;
	}
	/* The callback may free the dns object: touch nothing of it after. */
	rr->cb(rr->arg, &rr->res);
	route_free(rr);
}

static void route_fail(struct dns_route_req *, enum dns_route_kind,
    const char *, ...) __attribute__((format(printf, 3, 4)));

static void
route_fail(struct dns_route_req *rr, enum dns_route_kind kind,
    const char *fmt, ...)
{
	va_list ap;

	rr->res.kind = kind;
	va_start(ap, fmt);
	/* Truncation is fine: the code and enhanced code come first. */
	(void)vsnprintf(rr->res.reply, sizeof(rr->res.reply), fmt, ap);
	va_end(ap);
	route_finish(rr);
}

/* Do we listen on the targets' port (true when no address is known)? */
static bool
route_port_is_self(const struct dns_route_req *rr)
{
	const struct sockaddr_storage *ss;
	in_port_t port;
	size_t i;

	if (rr->nself_addrs == 0)
		return true;
	for (i = 0; i < rr->nself_addrs; i++) {
		ss = &rr->self_addrs[i];
		if (ss->ss_family == AF_INET)
			port = ((const struct sockaddr_in *)ss)->sin_port;
		else if (ss->ss_family == AF_INET6)
			port = ((const struct sockaddr_in6 *)ss)->sin6_port;
		else
			continue;
		if (port == 0 || ntohs(port) == rr->port)
			return true;
	}
	return false;
}

/*
 * One of our names is this host. In an MX list the name alone counts
 * (RFC 5321 5.1; behind a port-mapping NAT we may listen on another port
 * than the MX's). A relay host named with a port is this host only at a
 * port we listen on, as for addresses: [our name]:10025, a content filter
 * or a second MTA on this host, is somebody else, not a loop.
 */
static bool
route_is_self_name(const struct dns_route_req *rr, const char *name)
{
	size_t i;

	if (!rr->use_mx && !route_port_is_self(rr))
		return false;
	for (i = 0; i < rr->nself_names; i++)
		if (ascii_strcasecmp(rr->self_names[i], name) == 0)
			return true;
	return false;
}

static bool
route_is_self_addr(const struct dns_route_req *rr, const struct dns_addr *a)
{
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;
	size_t i;

	for (i = 0; i < rr->nself_addrs; i++) {
		const struct sockaddr_storage *ss = &rr->self_addrs[i];

		if (ss->ss_family != a->family)
			continue;
		if (a->family == AF_INET) {
			sin = (const struct sockaddr_in *)ss;
			if (memcmp(&sin->sin_addr, a->addr, 4) == 0 &&
			    (sin->sin_port == 0 ||
			    ntohs(sin->sin_port) == rr->port))
				return true;
		} else {
			sin6 = (const struct sockaddr_in6 *)ss;
			if (memcmp(&sin6->sin6_addr, a->addr, 16) == 0 &&
			    (sin6->sin6_port == 0 ||
			    ntohs(sin6->sin6_port) == rr->port))
				return true;
		}
	}
	return false;
}

static bool
route_host_is_self(const struct dns_route_req *rr,
    const struct dns_route_host *h)
{
	size_t k, i;

	for (k = 0; k < 2; k++)
		for (i = 0; i < h->naddrs[k]; i++)
			if (route_is_self_addr(rr, &h->addrs[k][i]))
				return true;
	return false;
}

static void
route_target(struct dns_route_req *rr, const struct dns_route_host *h,
    const struct dns_addr *a)
{
	struct dns_target *t = &rr->targets[rr->res.ntargets++];

	memset(t, 0, sizeof(*t));
	strlcpy(t->host, h->name, sizeof(t->host));
	t->pref = h->pref;
	if (a->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&t->addr;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)rr->port);
		memcpy(&sin->sin_addr, a->addr, 4);
		t->addrlen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&t->addr;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)rr->port);
		memcpy(&sin6->sin6_addr, a->addr, 16);
		t->addrlen = sizeof(*sin6);
	}
}

/* Every address lookup has answered: the target list, or why none. */
static void
route_build(struct dns_route_req *rr)
{
	struct dns_route_host *h;
	size_t i, k, keep = rr->nhosts;
	bool temp = false;
	const char *temp_error = "";

	/*
	 * RFC 5321 5.1: a host that resolves to one of our own addresses is
	 * this host, as much as one that carries our name (MX hosts with our
	 * name are gone already; this catches an implicit MX or a relay host
	 * that is us). Hosts are sorted, so the first one found has the best
	 * preference of them.
	 */
	for (i = 0; i < rr->nhosts; i++)
		if (route_host_is_self(rr, &rr->hosts[i]) ||
		    route_is_self_name(rr, rr->hosts[i].name)) {
			for (keep = 0; keep < rr->nhosts; keep++)
				if (rr->hosts[keep].pref >= rr->hosts[i].pref)
					break;
			break;
		}
	if (keep == 0) {
		route_fail(rr, DNS_ROUTE_PERM,
		    "554 5.4.6 mail for %s loops back to myself", rr->domain);
		return;
	}
	rr->targets = xcalloc(keep * 2 * DNS_ROUTE_MAX_ADDRS,
	    sizeof(*rr->targets));
	rr->res.targets = rr->targets;
	for (i = 0; i < keep; i++) {
		h = &rr->hosts[i];
		for (k = 0; k < 2; k++) {
			if (h->asked[k] && h->st[k] == DNS_TEMPFAIL &&
			    !temp) {
				temp = true;
				temp_error = h->name;
			}
			for (size_t j = 0; j < h->naddrs[k]; j++)
				route_target(rr, h, &h->addrs[k][j]);
		}
	}
	if (rr->res.ntargets > 0) {
		rr->res.kind = DNS_ROUTE_OK;
		rr->res.reply[0] = '\0';
		route_finish(rr);
	} else if (temp)
		route_fail(rr, DNS_ROUTE_TEMP, "451 4.4.3 %s: address lookup "
		    "of %s failed temporarily", rr->domain, temp_error);
	else if (!rr->use_mx)
		route_fail(rr, DNS_ROUTE_PERM, "550 5.4.4 %s: host has no "
		    "address", rr->domain);
	else
		route_fail(rr, DNS_ROUTE_PERM, "550 5.4.4 %s: no address for "
		    "any mail exchanger", rr->domain);
}

static void
route_addr_answer(void *arg, const struct dns_answer *a)
{
	struct dns_route_host *h = arg;
	struct dns_route_req *rr = h->rr;
	int k = a->type == DNS_TYPE_AAAA ? ROUTE_AAAA : ROUTE_A;
	int family = k == ROUTE_AAAA ? AF_INET6 : AF_INET;
	size_t i;

	h->qid[k] = 0;
	h->st[k] = a->status;
	if (a->status == DNS_OK)
		for (i = 0; i < a->n && h->naddrs[k] < DNS_ROUTE_MAX_ADDRS;
		    i++)
			if (a->addrs[i].family == family)
				h->addrs[k][h->naddrs[k]++] = a->addrs[i];
	if (--rr->pending == 0)
		route_build(rr);
}

/* Ask for every host's addresses (pending > 0 after, unless no host). */
static void
route_resolve(struct dns_route_req *rr)
{
	struct dns_route_host *h;
	size_t i;

	for (i = 0; i < rr->nhosts; i++) {
		h = &rr->hosts[i];
		h->rr = rr;
		if (rr->inet6) {
			h->asked[ROUTE_AAAA] = true;
			rr->pending++;
			h->qid[ROUTE_AAAA] = dns_query(rr->d, h->name,
			    DNS_TYPE_AAAA, route_addr_answer, h);
		}
		h->asked[ROUTE_A] = true;
		rr->pending++;
		h->qid[ROUTE_A] = dns_query(rr->d, h->name, DNS_TYPE_A,
		    route_addr_answer, h);
	}
}

/* The domain itself as the only host, preference 0. */
static void
route_implicit(struct dns_route_req *rr)
{
	rr->hosts = xcalloc(1, sizeof(*rr->hosts));
	rr->nhosts = 1;
	strlcpy(rr->hosts[0].name, rr->domain, sizeof(rr->hosts[0].name));
	rr->hosts[0].pref = 0;
}

static int
route_host_cmp(const void *a, const void *b)
{
	const struct dns_route_host *x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	if (x->rnd != y->rnd)
		return x->rnd < y->rnd ? -1 : 1;
	return 0;
}

static void
route_mx_list(struct dns_route_req *rr, const struct dns_answer *a)
{
	struct dns_route_host *h;
	size_t i, j, n = 0;

	/* RFC 7505 3: a null MX is the domain's only MX record. */
	if (a->n == 1 && a->mx[0].name[0] == '\0') {
		route_fail(rr, DNS_ROUTE_PERM, "556 5.1.10 %s does not accept "
		    "mail (null MX)", rr->domain);
		return;
	}
	rr->hosts = xcalloc(a->n, sizeof(*rr->hosts));
	for (i = 0; i < a->n; i++) {
		/* A "." among real MX records is invalid (RFC 7505 3):
		 * skip it and use the others. */
		if (a->mx[i].name[0] == '\0')
			continue;
		h = &rr->hosts[n++];
		strlcpy(h->name, a->mx[i].name, sizeof(h->name));
		h->pref = a->mx[i].pref;
		h->rnd = arc4random();
	}
	qsort(rr->hosts, n, sizeof(*rr->hosts), route_host_cmp);
	/* The same host twice: keep its best record. */
	for (i = 0, rr->nhosts = 0; i < n; i++) {
		for (j = 0; j < rr->nhosts; j++)
			if (ascii_strcasecmp(rr->hosts[j].name,
			    rr->hosts[i].name) == 0)
				break;
		if (j == rr->nhosts)
			rr->hosts[rr->nhosts++] = rr->hosts[i];
	}
	/*
	 * RFC 5321 5.1: when this host is a listed MX, only hosts with a
	 * better (lower) preference may be tried, or mail would loop.
	 */
	for (i = 0; i < rr->nhosts; i++)
		if (route_is_self_name(rr, rr->hosts[i].name)) {
			uint16_t cut = rr->hosts[i].pref;

			for (j = 0; j < rr->nhosts; j++)
				if (rr->hosts[j].pref >= cut)
					break;
			rr->nhosts = j;
			break;
		}
	if (rr->nhosts == 0) {
		if (n == 0)
			route_fail(rr, DNS_ROUTE_PERM, "556 5.1.10 %s does "
			    "not accept mail (null MX)", rr->domain);
		else
			route_fail(rr, DNS_ROUTE_PERM, "554 5.4.6 mail for %s "
			    "loops back to myself", rr->domain);
		return;
	}
	if (rr->nhosts > DNS_ROUTE_MAX_HOSTS)
		rr->nhosts = DNS_ROUTE_MAX_HOSTS;
	route_resolve(rr);
}

static void
route_mx_answer(void *arg, const struct dns_answer *a)
{
	struct dns_route_req *rr = arg;

	rr->qid_mx = 0;
	switch (a->status) {
	case DNS_OK:
		route_mx_list(rr, a);
		break;
	case DNS_NODATA:
		/* RFC 5321 5.1: no MX, the domain itself is the host. */
		route_implicit(rr);
		route_resolve(rr);
		break;
	case DNS_NXDOMAIN:
		route_fail(rr, DNS_ROUTE_PERM, "550 5.1.2 %s: domain not found",
		    rr->domain);
		break;
	case DNS_TEMPFAIL:
		/* Never the A record instead: a broken MX lookup says
		 * nothing about whether MX records exist. */
		route_fail(rr, DNS_ROUTE_TEMP, "451 4.4.3 %s: MX lookup "
		    "failed: %s", rr->domain, a->error);
		break;
	case DNS_PERMFAIL:
		/*
		 * An MX answer we cannot parse: defer rather than bounce. A
		 * broken zone is usually repaired within the queue lifetime,
		 * and the bounce comes at its end anyway.
		 */
		route_fail(rr, DNS_ROUTE_TEMP, "451 4.4.3 %s: MX lookup "
		    "failed: %s", rr->domain, a->error);
		break;
	}
}

/* For answers known without DNS: finish from the loop, later. */
static void
route_deferred(evutil_socket_t fd, short what, void *arg)
{
	struct dns_route_req *rr = arg;

	(void)fd;
	(void)what;
	if (rr->res.kind != DNS_ROUTE_OK)
		route_finish(rr);
	else
		route_build(rr);
}

static void
route_defer(struct dns_route_req *rr)
{
	rr->ev = event_new(dns_event_base(rr->d), -1, 0, route_deferred, rr);
	if (rr->ev == NULL)
		fatalx("dns: event_new failed");
	event_active(rr->ev, EV_TIMEOUT, 1);
}

/* A host given as a numeric address: its only target, no DNS. */
static bool
route_literal(struct dns_route_req *rr)
{
	struct dns_route_host *h;
	struct dns_addr a;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, rr->domain, a.addr) == 1)
		a.family = AF_INET;
	else if (inet_pton(AF_INET6, rr->domain, a.addr) == 1)
		a.family = AF_INET6;
	else
		return false;
	route_implicit(rr);
	h = &rr->hosts[0];
	h->rr = rr;
	h->addrs[a.family == AF_INET6 ? ROUTE_AAAA : ROUTE_A][0] = a;
	h->naddrs[a.family == AF_INET6 ? ROUTE_AAAA : ROUTE_A] = 1;
	rr->res.kind = DNS_ROUTE_OK;
	route_defer(rr);
	return true;
}

uint64_t
dns_route_lookup(struct dns *d, const char *domain,
    const struct dns_route_opts *opts, dns_route_cb cb, void *arg)
{
	struct dns_route_req *rr = xcalloc(1, sizeof(*rr));
	uint8_t wire[256];
	size_t i, n, wlen;

	rr->d = d;
	rr->id = dns_next_id(d);
	rr->use_mx = opts->use_mx;
	rr->inet6 = opts->inet6;
	rr->port = opts->port != 0 ? opts->port : 25;
	rr->cb = cb;
	rr->arg = arg;
	rr->self_names = xcalloc(opts->nself_names + 1,
	    sizeof(*rr->self_names));
	for (i = 0; i < opts->nself_names; i++) {
		rr->self_names[i] = xstrdup(opts->self_names[i]);
		n = strlen(rr->self_names[i]);
		if (n > 1 && rr->self_names[i][n - 1] == '.')
			rr->self_names[i][n - 1] = '\0';
	}
	rr->nself_names = opts->nself_names;
	if (opts->nself_addrs > 0) {
		rr->self_addrs = xcalloc(opts->nself_addrs,
		    sizeof(*rr->self_addrs));
		memcpy(rr->self_addrs, opts->self_addrs,
		    opts->nself_addrs * sizeof(*rr->self_addrs));
		rr->nself_addrs = opts->nself_addrs;
	}
	route_link(rr);

	n = strlcpy(rr->domain, domain, sizeof(rr->domain));
	if (n < sizeof(rr->domain) && n > 1 && rr->domain[n - 1] == '.')
		rr->domain[n - 1] = '\0';
	if (!rr->use_mx && route_literal(rr))
		return rr->id;
	if (n >= sizeof(rr->domain) || rr->domain[0] == '\0' ||
	    dns_rr_encode_name(rr->domain, wire, sizeof(wire), &wlen) == -1) {
		rr->res.kind = DNS_ROUTE_PERM;
		snprintf(rr->res.reply, sizeof(rr->res.reply),
		    "550 5.1.2 invalid domain name");
		route_defer(rr);
		return rr->id;
	}
	if (rr->use_mx)
		rr->qid_mx = dns_query(d, rr->domain, DNS_TYPE_MX,
		    route_mx_answer, rr);
	else {
		route_implicit(rr);
		route_resolve(rr);
	}
	return rr->id;
}

void
dns_route_cancel(struct dns *d, uint64_t id)
{
	struct dns_route_req *rr;

	if (d == NULL)
		return;
	for (rr = *dns_routes_head(d); rr != NULL; rr = rr->next)
		if (rr->id == id) {
			route_cancel_queries(rr);
			route_unlink(rr);
			route_free(rr);
			return;
		}
}

void
dns_route_free_all(struct dns *d)
{
	struct dns_route_req *rr;

	while ((rr = *dns_routes_head(d)) != NULL) {
		route_cancel_queries(rr);
		route_unlink(rr);
		route_free(rr);
	}
}
