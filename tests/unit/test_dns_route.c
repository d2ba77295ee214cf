/*
 * test_dns_route.c: the RFC 5321 5.1 destination lookup over the fake
 * resolver: MX order and shuffling of equal preferences, implicit MX, null
 * MX, this host in the list (by name and by address), temporary failures
 * that never fall back to A, hosts without addresses, caps, cancel.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/event.h>

#include "testutil.h"

#include "dns/dns.h"
#include "lib/util.h"

#include "dns_fake_fixture.h"

#define MAXT	64

struct result {
	int calls;
	enum dns_route_kind kind;
	char reply[256];
	char domain[DNS_NAME_MAX];
	size_t n;
	char t[MAXT][400];	/* "PREF HOST ADDR:PORT" */
};

static void
route_cb(void *arg, const struct dns_route *r)
{
	struct result *res = arg;
	char ntop[INET6_ADDRSTRLEN];
	size_t i;

	res->calls++;
	res->kind = r->kind;
	strlcpy(res->reply, r->reply, sizeof(res->reply));
	strlcpy(res->domain, r->domain, sizeof(res->domain));
	res->n = r->ntargets;
	if (r->kind == DNS_ROUTE_OK)
		assert_true(r->ntargets > 0);
	else
		assert_int_equal(r->ntargets, 0);
	for (i = 0; i < r->ntargets && i < MAXT; i++) {
		const struct dns_target *t = &r->targets[i];
		unsigned int port;

		if (t->addr.ss_family == AF_INET6) {
			const struct sockaddr_in6 *s6 = (const void *)&t->addr;

			inet_ntop(AF_INET6, &s6->sin6_addr, ntop, sizeof(ntop));
			port = ntohs(s6->sin6_port);
			assert_int_equal(t->addrlen, sizeof(*s6));
		} else {
			const struct sockaddr_in *s4 = (const void *)&t->addr;

			assert_int_equal(t->addr.ss_family, AF_INET);
			inet_ntop(AF_INET, &s4->sin_addr, ntop, sizeof(ntop));
			port = ntohs(s4->sin_port);
			assert_int_equal(t->addrlen, sizeof(*s4));
		}
		snprintf(res->t[i], sizeof(res->t[i]), "%u %s %s:%u", t->pref,
		    t->host, ntop, port);
	}
}

/* dns_fake_set() with a NULL-terminated list of values. */
static void
set(struct dns_fixture *f, const char *name, uint16_t type, enum dns_status st,
    ...)
{
	const char *v[32];
	size_t n = 0;
	va_list ap;

	va_start(ap, st);
	while ((v[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	dns_fake_set(f->d, name, type, st, v, n);
}

static void
lookup(struct dns_fixture *f, const char *domain, struct result *r)
{
	memset(r, 0, sizeof(*r));
	dns_route_lookup(f->d, domain, &f->o, route_cb, r);
	/* Never from inside the call. */
	assert_int_equal(r->calls, 0);
	dns_fixture_run(f);
	assert_int_equal(r->calls, 1);
}

static void
want_targets(const struct result *r, ...)
{
	const char *w;
	size_t i = 0;
	va_list ap;

	if (r->kind != DNS_ROUTE_OK)
		fail_msg("got \"%s\" (kind %d), want targets", r->reply,
		    (int)r->kind);
	va_start(ap, r);
	while ((w = va_arg(ap, const char *)) != NULL) {
		if (i >= r->n)
			fail_msg("target %zu: got none, want \"%s\"", i, w);
		if (strcmp(r->t[i], w) != 0)
			fail_msg("target %zu: got \"%s\", want \"%s\"", i,
			    r->t[i], w);
		i++;
	}
	va_end(ap);
	if (i != r->n)
		fail_msg("got %zu targets, want %zu (extra: \"%s\")", r->n, i,
		    r->t[i]);
}

static void
want_reply(const struct result *r, enum dns_route_kind kind,
    const char *prefix, const char *contains)
{
	if (r->kind != kind)
		fail_msg("got kind %d (\"%s\"), want %d", (int)r->kind,
		    r->reply, (int)kind);
	if (strncmp(r->reply, prefix, strlen(prefix)) != 0)
		fail_msg("got \"%s\", want it to start with \"%s\"", r->reply,
		    prefix);
	if (contains != NULL && strstr(r->reply, contains) == NULL)
		fail_msg("got \"%s\", want it to contain \"%s\"", r->reply,
		    contains);
}

static void
test_two_preferences(void **state)
{
	struct dns_fixture *f = *state;
	struct result r;

	set(f, "example.test", DNS_TYPE_MX, DNS_OK, "20 mx2.example.test",
	    "10 mx1.example.test", NULL);
	set(f, "mx1.example.test", DNS_TYPE_A, DNS_OK, "192.0.2.1",
	    "192.0.2.2", NULL);
	set(f, "mx1.example.test", DNS_TYPE_AAAA, DNS_OK, "2001:db8::1", NULL);
	set(f, "mx2.example.test", DNS_TYPE_A, DNS_OK, "192.0.2.3", NULL);
	lookup(f, "example.test", &r);
	want_targets(&r, "10 mx1.example.test 2001:db8::1:25",
	    "10 mx1.example.test 192.0.2.1:25",
	    "10 mx1.example.test 192.0.2.2:25",
	    "20 mx2.example.test 192.0.2.3:25", NULL);
	assert_string_equal(r.domain, "example.test");
	assert_string_equal(r.reply, "");

	/* inet6 off: no AAAA asked, none used. */
	f->o.inet6 = false;
	f->o.port = 2525;
	lookup(f, "example.test.", &r);
	want_targets(&r, "10 mx1.example.test 192.0.2.1:2525",
	    "10 mx1.example.test 192.0.2.2:2525",
	    "20 mx2.example.test 192.0.2.3:2525", NULL);
	assert_string_equal(r.domain, "example.test");
	assert_int_equal(dns_fake_count(f->d, "mx1.example.test",
	    DNS_TYPE_AAAA), 1);
	assert_int_equal(dns_fake_count(f->d, "mx1.example.test",
	    DNS_TYPE_A), 2);
}

static void
test_mx_tempfail(void **state)
{
	struct dns_fixture *f = *state;
	struct result r;

	set(f, "temp.test", DNS_TYPE_MX, DNS_TEMPFAIL, NULL);
	set(f, "temp.test", DNS_TYPE_A, DNS_OK, "192.0.2.1", NULL);
	lookup(f, "temp.test", &r);
	want_reply(&r, DNS_ROUTE_TEMP, "451 4.4.3 ", "temp.test");
	/* Never the A record instead. */
	assert_int_equal(dns_fake_count(f->d, "temp.test", DNS_TYPE_A), 0);
	assert_int_equal(dns_fake_count(f->d, "temp.test", DNS_TYPE_AAAA), 0);

	/* A malformed MX answer defers too. */
	set(f, "perm.test", DNS_TYPE_MX, DNS_PERMFAIL, NULL);
	lookup(f, "perm.test", &r);
	want_reply(&r, DNS_ROUTE_TEMP, "451 4.4.3 ", "perm.test");
}

static void
test_nxdomain(void **state)
{
	struct dns_fixture *f = *state;
	struct result r;

	lookup(f, "nowhere.test", &r);
	want_reply(&r, DNS_ROUTE_PERM, "550 5.1.2 ", "domain not found");
	assert_non_null(strstr(r.reply, "nowhere.test"));
	assert_int_equal(dns_fake_count(f->d, "nowhere.test", DNS_TYPE_A), 0);
}

static void
test_implicit_mx(void **state)
{
	struct dns_fixture *f = *state;
	struct result r;

	set(f, "plain.test", DNS_TYPE_A, DNS_OK, "192.0.2.10", NULL);
	set(f, "plain.test", DNS_TYPE_AAAA, DNS_OK, "2001:db8::10", NULL);
	lookup(f, "plain.test", &r);
	want_targets(&r, "0 plain.test 2001:db8::10:25",
	    "0 plain.test 192.0.2.10:25", NULL);
	assert_int_equal(dns_fake_count(f->d, "plain.test", DNS_TYPE_MX), 1);

	/* The name exists (a TXT) but has no address at all. */
	set(f, "noaddr.test", DNS_TYPE_TXT, DNS_OK, "hello", NULL);
	lookup(f, "noaddr.test", &r);
	want_reply(&r, DNS_ROUTE_PERM, "550 5.4.4 ", "noaddr.test");
}

static void
test_null_mx(void **state)
{
	struct dns_fixture *f = *state;
	struct result r;

	set(f, "nullmx.test", DNS_TYPE_MX, DNS_OK, "0 .", NULL);
	set(f, "nullmx.test", DNS_TYPE_A, DNS_OK, "192.0.2.1", NULL);
	lookup(f, "nullmx.test", &r);
	want_reply(&r, DNS_ROUTE_PERM, "556 5.1.10 ", "null MX");
	assert_int_equal(dns_fake_count(f->d, "nullmx.test", DNS_TYPE_A), 0);

	/* A "." beside real MX records is ignored (RFC 7505 3). */
	set(f, "mixed.test", DNS_TYPE_MX, DNS_OK, "0 .", "10 mx.mixed.test",
	    NULL);
	set(f, "mx.mixed.test", DNS_TYPE_A, DNS_OK, "192.0.2.4", NULL);
	lookup(f, "mixed.test", &r);
	want_targets(&r, "10 mx.mixed.test 192.0.2.4:25", NULL);

	/* Only "." records, twice. */
	set(f, "nulls.test", DNS_TYPE_MX, DNS_OK, "0 .", "10 .", NULL);
	lookup(f, "nulls.test", &r);
	want_reply(&r, DNS_ROUTE_PERM, "556 5.1.10 ", NULL);
}

static void
test_self_by_name(void **state)
{
	struct dns_fixture *f = *state;
	static const char *const self[] = { "other.test", "ME.Example.TEST." };
	struct result r;

	f->o.self_names = self;
	f->o.nself_names = nitems(self);
	f->o.inet6 = false;
	set(f, "backup.test", DNS_TYPE_MX, DNS_OK, "10 primary.test",
	    "20 me.example.test", "20 peer.test", "30 worse.test", NULL);
	set(f, "primary.test", DNS_TYPE_A, DNS_OK, "192.0.2.1", NULL);
	set(f, "peer.test", DNS_TYPE_A, DNS_OK, "192.0.2.2", NULL);
	set(f, "worse.test", DNS_TYPE_A, DNS_OK, "192.0.2.3", NULL);
	lookup(f, "backup.test", &r);
	/* Ours, the equal one and the worse one go. */
	want_targets(&r, "10 primary.test 192.0.2.1:25", NULL);
	assert_int_equal(dns_fake_count(f->d, "peer.test", 0), 0);
	assert_int_equal(dns_fake_count(f->d, "me.example.test", 0), 0);

	/* We are the best MX: nothing is left. */
	set(f, "primary-me.test", DNS_TYPE_MX, DNS_OK, "10 me.example.test",
	    "20 primary.test", NULL);
	lookup(f, "primary-me.test", &r);
	want_reply(&r, DNS_ROUTE_PERM, "554 5.4.6 ",
	    "mail for primary-me.test loops back to myself");

	/* Equal to the best: still nothing. */
	set(f, "tie.test", DNS_TYPE_MX, DNS_OK, "10 primary.test",
	    "10 me.example.test", NULL);
	lookup(f, "tie.test", &r);
	want_reply(&r, DNS_ROUTE_PERM, "554 5.4.6 ", NULL);

	/* Mail for our own name, no MX (implicit MX): a loop too. */
	set(f, "me.example.test", DNS_TYPE_A, DNS_OK, "192.0.2.99", NULL);
	lookup(f, "Me.Example.Test", &r);
	want_reply(&r, DNS_ROUTE_PERM, "554 5.4.6 ", NULL);
	/* And a relay host that is us by name. */
	f->o.use_mx = false;
	lookup(f, "me.example.test", &r);
	want_reply(&r, DNS_ROUTE_PERM, "554 5.4.6 ", NULL);

	/*
	 * With our listening addresses known, a relay host with our name is
	 * us only at a port we listen on: at another port ([our name]:10025,
	 * a content filter) it is another server, as it is by address. In
	 * an MX list the name alone counts (a NAT may map port 25 to ours).
	 */
	{
		struct sockaddr_storage sa;
		struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;

		memset(&sa, 0, sizeof(sa));
		s4->sin_family = AF_INET;
		s4->sin_port = htons(25);
		inet_pton(AF_INET, "192.0.2.50", &s4->sin_addr);
		f->o.self_addrs = &sa;
		f->o.nself_addrs = 1;
		lookup(f, "me.example.test", &r);
		want_reply(&r, DNS_ROUTE_PERM, "554 5.4.6 ", NULL);
		f->o.port = 10025;
		lookup(f, "me.example.test", &r);
		want_targets(&r, "0 me.example.test 192.0.2.99:10025", NULL);
		f->o.use_mx = true;
		lookup(f, "primary-me.test", &r);
		want_reply(&r, DNS_ROUTE_PERM, "554 5.4.6 ", NULL);
		f->o.self_addrs = NULL;
		f->o.nself_addrs = 0;
	}
}

static void
test_self_by_address(void **state)
{
	struct dns_fixture *f = *state;
	struct sockaddr_storage self[2];
	struct sockaddr_in *s4 = (struct sockaddr_in *)&self[0];
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&self[1];
	struct result r;

	memset(self, 0, sizeof(self));
	s4->sin_family = AF_INET;
	s4->sin_port = htons(25);
	inet_pton(AF_INET, "192.0.2.50", &s4->sin_addr);
	s6->sin6_family = AF_INET6;
	s6->sin6_port = 0;		/* any port */
	inet_pton(AF_INET6, "2001:db8::50", &s6->sin6_addr);
	f->o.self_addrs = self;
	f->o.nself_addrs = 2;

	set(f, "d.test", DNS_TYPE_MX, DNS_OK, "10 a.test", "20 b.test",
	    "30 c.test", NULL);
	set(f, "a.test", DNS_TYPE_A, DNS_OK, "192.0.2.1", NULL);
	set(f, "b.test", DNS_TYPE_A, DNS_OK, "192.0.2.7", "192.0.2.50", NULL);
	set(f, "c.test", DNS_TYPE_A, DNS_OK, "192.0.2.3", NULL);
	lookup(f, "d.test", &r);
	want_targets(&r, "10 a.test 192.0.2.1:25", NULL);

	/* By IPv6 address, any port. */
	set(f, "e.test", DNS_TYPE_MX, DNS_OK, "10 a.test", "10 v6.test",
	    NULL);
	set(f, "v6.test", DNS_TYPE_AAAA, DNS_OK, "2001:db8::50", NULL);
	lookup(f, "e.test", &r);
	want_reply(&r, DNS_ROUTE_PERM, "554 5.4.6 ", "e.test");

	/* Our address on another port is another server. */
	f->o.port = 2525;
	lookup(f, "d.test", &r);
	want_targets(&r, "10 a.test 192.0.2.1:2525",
	    "20 b.test 192.0.2.7:2525", "20 b.test 192.0.2.50:2525",
	    "30 c.test 192.0.2.3:2525", NULL);
	f->o.port = 25;

	/* Implicit MX pointing at us. */
	set(f, "selfimplicit.test", DNS_TYPE_A, DNS_OK, "192.0.2.50", NULL);
	lookup(f, "selfimplicit.test", &r);
	want_reply(&r, DNS_ROUTE_PERM, "554 5.4.6 ", "selfimplicit.test");
}

static void
test_host_failures(void **state)
{
	struct dns_fixture *f = *state;
	struct result r;

	f->o.inet6 = false;
	/* The best host fails temporarily: skipped. */
	set(f, "skip.test", DNS_TYPE_MX, DNS_OK, "10 broken.test",
	    "20 fine.test", NULL);
	set(f, "broken.test", DNS_TYPE_A, DNS_TEMPFAIL, NULL);
	set(f, "fine.test", DNS_TYPE_A, DNS_OK, "192.0.2.8", NULL);
	lookup(f, "skip.test", &r);
	want_targets(&r, "20 fine.test 192.0.2.8:25", NULL);

	/* Every host temporary: temporary. */
	set(f, "alltemp.test", DNS_TYPE_MX, DNS_OK, "10 broken.test",
	    "20 broken2.test", NULL);
	set(f, "broken2.test", DNS_TYPE_A, DNS_TEMPFAIL, NULL);
	lookup(f, "alltemp.test", &r);
	want_reply(&r, DNS_ROUTE_TEMP, "451 4.4.3 ", "alltemp.test");

	/* One temporary, one nonexistent: temporary. */
	set(f, "mixed.test", DNS_TYPE_MX, DNS_OK, "10 broken.test",
	    "20 gone.test", NULL);
	lookup(f, "mixed.test", &r);
	want_reply(&r, DNS_ROUTE_TEMP, "451 4.4.3 ", NULL);

	/* No host has an address: permanent. */
	set(f, "none.test", DNS_TYPE_MX, DNS_OK, "10 gone.test",
	    "20 gone2.test", NULL);
	set(f, "gone2.test", DNS_TYPE_TXT, DNS_OK, "x", NULL);
	lookup(f, "none.test", &r);
	want_reply(&r, DNS_ROUTE_PERM, "550 5.4.4 ",
	    "no address for any mail exchanger");

	/* AAAA fails temporarily, A works: the host is used. */
	f->o.inet6 = true;
	set(f, "half.test", DNS_TYPE_MX, DNS_OK, "10 half-mx.test", NULL);
	set(f, "half-mx.test", DNS_TYPE_AAAA, DNS_TEMPFAIL, NULL);
	set(f, "half-mx.test", DNS_TYPE_A, DNS_OK, "192.0.2.9", NULL);
	lookup(f, "half.test", &r);
	want_targets(&r, "10 half-mx.test 192.0.2.9:25", NULL);
}

static void
test_mx_host_forms(void **state)
{
	struct dns_fixture *f = *state;
	struct result r;

	f->o.inet6 = false;
	/* An MX host behind a CNAME; an MX host that is an IP literal
	 * resolves like any name; a duplicate keeps its best record. */
	set(f, "forms.test", DNS_TYPE_MX, DNS_OK, "10 alias.test",
	    "20 192.0.2.77", "30 ALIAS.test", NULL);
	set(f, "alias.test", DNS_TYPE_CNAME, DNS_OK, "real.test", NULL);
	set(f, "real.test", DNS_TYPE_A, DNS_OK, "192.0.2.5", NULL);
	set(f, "192.0.2.77", DNS_TYPE_A, DNS_OK, "192.0.2.77", NULL);
	lookup(f, "forms.test", &r);
	want_targets(&r, "10 alias.test 192.0.2.5:25",
	    "20 192.0.2.77 192.0.2.77:25", NULL);
	assert_int_equal(dns_fake_count(f->d, "alias.test", DNS_TYPE_A), 1);
}

/* Equal preferences come in random order; worse ones always after. */
static void
test_shuffle(void **state)
{
	struct dns_fixture *f = *state;
	static const char *const hosts[] = { "a.test", "b.test", "c.test" };
	unsigned int first[3] = { 0 }, perms[6] = { 0 };
	struct result r;
	int i, k, round;

	f->o.inet6 = false;
	set(f, "eq.test", DNS_TYPE_MX, DNS_OK, "10 a.test", "10 b.test",
	    "10 c.test", "20 d.test", NULL);
	set(f, "a.test", DNS_TYPE_A, DNS_OK, "192.0.2.1", NULL);
	set(f, "b.test", DNS_TYPE_A, DNS_OK, "192.0.2.2", NULL);
	set(f, "c.test", DNS_TYPE_A, DNS_OK, "192.0.2.3", NULL);
	set(f, "d.test", DNS_TYPE_A, DNS_OK, "192.0.2.4", NULL);
	for (round = 0; round < 600; round++) {
		int pos[3] = { -1, -1, -1 };

		lookup(f, "eq.test", &r);
		assert_int_equal(r.n, 4);
		assert_string_equal(r.t[3], "20 d.test 192.0.2.4:25");
		for (i = 0; i < 3; i++)
			for (k = 0; k < 3; k++)
				if (strstr(r.t[i], hosts[k]) != NULL)
					pos[k] = i;
		for (k = 0; k < 3; k++) {
			assert_true(pos[k] >= 0);
			if (pos[k] == 0)
				first[k]++;
		}
		/* The permutation, numbered by where a and b are. */
		perms[pos[0] * 2 + (pos[1] > pos[2] ? 1 : 0)]++;
	}
	/*
	 * Each host leads 200 times in 600 on average (sd 11.5): below
	 * 120 is a bias, not bad luck (p < 1e-11). Each of the 6 orders
	 * comes 100 times on average (sd 9.1): below 40 likewise.
	 */
	for (k = 0; k < 3; k++)
		if (first[k] < 120)
			fail_msg("%s first %u times in 600, want about 200",
			    hosts[k], first[k]);
	for (k = 0; k < 6; k++)
		if (perms[k] < 40)
			fail_msg("order %d seen %u times in 600, want about "
			    "100", k, perms[k]);
}

static void
test_caps(void **state)
{
	struct dns_fixture *f = *state;
	const char *mx[15], *addrs[20];
	char mxbuf[15][64], hbuf[15][64], abuf[20][32];
	struct result r;
	int i;

	f->o.inet6 = false;
	for (i = 0; i < 15; i++) {
		snprintf(mxbuf[i], sizeof(mxbuf[i]), "%d mx%02d.test", i + 1,
		    i);
		snprintf(hbuf[i], sizeof(hbuf[i]), "mx%02d.test", i);
		mx[i] = mxbuf[i];
	}
	for (i = 0; i < 20; i++) {
		snprintf(abuf[i], sizeof(abuf[i]), "192.0.2.%d", i + 1);
		addrs[i] = abuf[i];
	}
	dns_fake_set(f->d, "many.test", DNS_TYPE_MX, DNS_OK, mx, 15);
	for (i = 0; i < 15; i++)
		dns_fake_set(f->d, hbuf[i], DNS_TYPE_A, DNS_OK, addrs, 1);
	lookup(f, "many.test", &r);
	assert_int_equal(r.kind, DNS_ROUTE_OK);
	assert_int_equal(r.n, DNS_ROUTE_MAX_HOSTS);
	assert_string_equal(r.t[9], "10 mx09.test 192.0.2.1:25");
	assert_int_equal(dns_fake_count(f->d, "mx09.test", DNS_TYPE_A), 1);
	assert_int_equal(dns_fake_count(f->d, "mx10.test", DNS_TYPE_A), 0);

	/* 20 addresses for one host: the first 16. */
	dns_fake_set(f->d, "mx00.test", DNS_TYPE_A, DNS_OK, addrs, 20);
	set(f, "wide.test", DNS_TYPE_MX, DNS_OK, "10 mx00.test", NULL);
	lookup(f, "wide.test", &r);
	assert_int_equal(r.n, DNS_ROUTE_MAX_ADDRS);
	assert_string_equal(r.t[15], "10 mx00.test 192.0.2.16:25");
}

static void
test_host_mode(void **state)
{
	struct dns_fixture *f = *state;
	struct result r;

	f->o.use_mx = false;
	f->o.port = 2525;
	set(f, "relay.test", DNS_TYPE_MX, DNS_OK, "10 elsewhere.test", NULL);
	set(f, "relay.test", DNS_TYPE_A, DNS_OK, "192.0.2.20", NULL);
	lookup(f, "relay.test", &r);
	want_targets(&r, "0 relay.test 192.0.2.20:2525", NULL);
	assert_int_equal(dns_fake_count(f->d, "relay.test", DNS_TYPE_MX), 0);

	/* Numeric addresses need no DNS but still answer later. */
	lookup(f, "127.0.0.1", &r);
	want_targets(&r, "0 127.0.0.1 127.0.0.1:2525", NULL);
	lookup(f, "::1", &r);
	want_targets(&r, "0 ::1 ::1:2525", NULL);
	assert_int_equal(dns_fake_count(f->d, "127.0.0.1", 0), 0);

	lookup(f, "missing.test", &r);
	want_reply(&r, DNS_ROUTE_PERM, "550 5.4.4 ", "missing.test");

	/* A relay host that is this host. */
	{
		struct sockaddr_storage self;
		struct sockaddr_in *s4 = (struct sockaddr_in *)&self;

		memset(&self, 0, sizeof(self));
		s4->sin_family = AF_INET;
		s4->sin_port = htons(2525);
		inet_pton(AF_INET, "127.0.0.1", &s4->sin_addr);
		f->o.self_addrs = &self;
		f->o.nself_addrs = 1;
		lookup(f, "127.0.0.1", &r);
		want_reply(&r, DNS_ROUTE_PERM, "554 5.4.6 ", NULL);
		f->o.self_addrs = NULL;
		f->o.nself_addrs = 0;
	}
}

static void
test_invalid_domain(void **state)
{
	struct dns_fixture *f = *state;
	struct result r;
	char big[300];

	lookup(f, "a..b", &r);
	want_reply(&r, DNS_ROUTE_PERM, "550 5.1.2 ", NULL);
	lookup(f, "", &r);
	want_reply(&r, DNS_ROUTE_PERM, "550 5.1.2 ", NULL);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	lookup(f, big, &r);
	want_reply(&r, DNS_ROUTE_PERM, "550 5.1.2 ", NULL);
}

static void
test_cancel(void **state)
{
	struct dns_fixture *f = *state;
	struct result r1, r2, r3;
	uint64_t id1, id2;

	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	memset(&r3, 0, sizeof(r3));
	set(f, "c.test", DNS_TYPE_MX, DNS_OK, "10 mx.c.test", NULL);
	set(f, "mx.c.test", DNS_TYPE_A, DNS_OK, "192.0.2.1", NULL);
	id1 = dns_route_lookup(f->d, "c.test", &f->o, route_cb, &r1);
	id2 = dns_route_lookup(f->d, "c.test", &f->o, route_cb, &r2);
	f->o.use_mx = false;
	dns_route_lookup(f->d, "127.0.0.1", &f->o, route_cb, &r3);
	assert_true(id1 != 0 && id2 != 0 && id1 != id2);
	dns_route_cancel(f->d, id1);
	dns_route_cancel(f->d, id1);
	dns_route_cancel(f->d, 123456789);
	dns_fixture_run(f);
	assert_int_equal(r1.calls, 0);
	assert_int_equal(r2.calls, 1);
	assert_int_equal(r3.calls, 1);
	assert_int_equal(dns_running(f->d), 0);

	/* dns_free() with lookups half done: no callback, no leak. */
	memset(&r1, 0, sizeof(r1));
	memset(&r3, 0, sizeof(r3));
	f->o.use_mx = true;
	dns_route_lookup(f->d, "c.test", &f->o, route_cb, &r1);
	f->o.use_mx = false;
	dns_route_lookup(f->d, "127.0.0.1", &f->o, route_cb, &r3);
	dns_free(f->d);
	f->d = NULL;
	dns_fixture_run(f);
	assert_int_equal(r1.calls, 0);
	assert_int_equal(r3.calls, 0);
}

/* A route callback that frees the resolver. */
static void
free_cb(void *arg, const struct dns_route *r)
{
	(void)r;
	dns_freer_free(arg);
}

static void
test_free_from_callback(void **state)
{
	struct dns_fixture *f = *state;
	struct dns_freer fr = { &f->d, 0 };
	struct result other;

	memset(&other, 0, sizeof(other));
	set(f, "c.test", DNS_TYPE_MX, DNS_OK, "10 mx.c.test", NULL);
	set(f, "mx.c.test", DNS_TYPE_A, DNS_OK, "192.0.2.1", NULL);
	dns_route_lookup(f->d, "c.test", &f->o, free_cb, &fr);
	dns_route_lookup(f->d, "c.test", &f->o, route_cb, &other);
	dns_fixture_run(f);
	assert_int_equal(fr.calls, 1);
	assert_int_equal(other.calls, 0);
	assert_null(f->d);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, dns_fixture_setup, \
	dns_fixture_teardown)
	const struct CMUnitTest tests[] = {
		T(test_two_preferences),
		T(test_mx_tempfail),
		T(test_nxdomain),
		T(test_implicit_mx),
		T(test_null_mx),
		T(test_self_by_name),
		T(test_self_by_address),
		T(test_host_failures),
		T(test_mx_host_forms),
		T(test_shuffle),
		T(test_caps),
		T(test_host_mode),
		T(test_invalid_domain),
		T(test_cancel),
		T(test_free_from_callback),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
