/*
 * dns_fake_fixture.h: the cmocka fixture of the tests that run the resolver
 * over its fake backend (test_dns.c, test_dns_route.c): an event base with
 * dns_new_fake() on it, and route options for dns_route_lookup() (MX,
 * IPv6, port 25). Also what a callback that frees the resolver keeps.
 * Include after <cmocka.h>, <event2/event.h>, dns/dns.h and lib/util.h.
 */
#ifndef PETREL_TESTS_DNS_FAKE_FIXTURE_H
#define PETREL_TESTS_DNS_FAKE_FIXTURE_H

#include <stdlib.h>

struct dns_fixture {
	struct event_base *base;
	struct dns *d;		/* NULL once a test has freed it */
	struct dns_route_opts o;
};

static inline int
dns_fixture_setup(void **state)
{
	struct dns_fixture *f = xcalloc(1, sizeof(*f));

	f->base = event_base_new();
	assert_non_null(f->base);
	f->d = dns_new_fake(f->base);
	assert_non_null(f->d);
	f->o.use_mx = true;
	f->o.inet6 = true;
	f->o.port = 25;
	*state = f;
	return 0;
}

static inline int
dns_fixture_teardown(void **state)
{
	struct dns_fixture *f = *state;

	dns_free(f->d);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* Run the loop dry: the fake keeps no event once everything is answered. */
static inline void
dns_fixture_run(struct dns_fixture *f)
{
	assert_int_equal(event_base_dispatch(f->base), 1);
}

/* For a callback that frees the resolver: where it is, calls so far. */
struct dns_freer {
	struct dns **dp;
	int calls;
};

static inline void
dns_freer_free(struct dns_freer *fr)
{
	fr->calls++;
	dns_free(*fr->dp);
	*fr->dp = NULL;
}

#endif
