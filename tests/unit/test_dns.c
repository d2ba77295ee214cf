/*
 * test_dns.c: the request machinery over the fake backend: answers of
 * every type arrive later from the loop, exactly once, in FIFO order and
 * never more than max_queries at a time; cancel and dns_free() (also from
 * inside a callback) stop callbacks; dns_new() refuses bad settings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/event.h>

#include "testutil.h"

#include "dns/dns.h"
#include "lib/util.h"

#include "dns_fake_fixture.h"

/* One recorded answer, deep-copied out of the callback. */
struct got {
	int calls;
	enum dns_status status;
	uint16_t type;
	char qname[DNS_NAME_MAX];
	char canon[DNS_NAME_MAX];
	char error[160];
	size_t n;
	char rec[8][700];	/* dns_answer_format() of each record */
	size_t txtlen[8];
};

static void
record(void *arg, const struct dns_answer *a)
{
	struct got *g = arg;
	size_t i;

	g->calls++;
	g->status = a->status;
	g->type = a->type;
	strlcpy(g->qname, a->qname, sizeof(g->qname));
	strlcpy(g->canon, a->canonname, sizeof(g->canon));
	strlcpy(g->error, a->error, sizeof(g->error));
	g->n = a->n;
	for (i = 0; i < a->n && i < nitems(g->rec); i++) {
		dns_answer_format(a, i, g->rec[i], sizeof(g->rec[i]));
		if (a->txt != NULL)
			g->txtlen[i] = a->txt[i].len;
	}
}

static const struct {
	const char *name;
	uint16_t type;
	const char *values[3];
	size_t n;
	const char *want[3];
} typed[] = {
	{ "a.test", DNS_TYPE_A, { "192.0.2.1", "192.0.2.2" }, 2,
	    { "192.0.2.1", "192.0.2.2" } },
	{ "a.test", DNS_TYPE_AAAA, { "2001:db8::1" }, 1, { "2001:db8::1" } },
	{ "mx.test", DNS_TYPE_MX, { "10 MX1.Example.TEST.", "0 ." }, 2,
	    { "10 mx1.example.test", "0 ." } },
	{ "txt.test", DNS_TYPE_TXT, { "v=spf1 -all", "" }, 2,
	    { "v=spf1 -all", "" } },
	{ "1.2.0.192.in-addr.arpa", DNS_TYPE_PTR, { "Host.Test." }, 1,
	    { "host.test" } },
	{ "c.test", DNS_TYPE_CNAME, { "target.test" }, 1, { "target.test" } },
	{ "_25._tcp.mx.test", DNS_TYPE_TLSA, { "3 1 1 00ff" }, 1,
	    { "3 1 1 00ff" } },
};

static void
test_types(void **state)
{
	struct dns_fixture *f = *state;
	struct got g[nitems(typed)];
	uint64_t id;
	size_t i, k;

	memset(g, 0, sizeof(g));
	for (i = 0; i < nitems(typed); i++)
		dns_fake_set(f->d, typed[i].name, typed[i].type, DNS_OK,
		    typed[i].values, typed[i].n);
	for (i = 0; i < nitems(typed); i++) {
		id = dns_query(f->d, typed[i].name, typed[i].type, record,
		    &g[i]);
		assert_true(id != 0);
		/* Never from inside dns_query(). */
		assert_int_equal(g[i].calls, 0);
	}
	dns_fixture_run(f);
	for (i = 0; i < nitems(typed); i++) {
		assert_int_equal(g[i].calls, 1);
		if (g[i].status != DNS_OK)
			fail_msg("%s %s: got %s, want OK", typed[i].name,
			    dns_type_name(typed[i].type),
			    dns_status_name(g[i].status));
		assert_int_equal(g[i].type, typed[i].type);
		assert_string_equal(g[i].qname, typed[i].name);
		assert_string_equal(g[i].canon, typed[i].name);
		assert_string_equal(g[i].error, "");
		assert_int_equal(g[i].n, typed[i].n);
		for (k = 0; k < typed[i].n; k++)
			if (strcmp(g[i].rec[k], typed[i].want[k]) != 0)
				fail_msg("%s record %zu: got \"%s\", want "
				    "\"%s\"", typed[i].name, k, g[i].rec[k],
				    typed[i].want[k]);
	}
}

static void
test_long_txt(void **state)
{
	struct dns_fixture *f = *state;
	char text[1200];
	const char *v[1] = { text };
	struct got g;

	memset(text, 'y', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	memset(&g, 0, sizeof(g));
	dns_fake_set(f->d, "long.test", DNS_TYPE_TXT, DNS_OK, v, 1);
	dns_query(f->d, "long.test", DNS_TYPE_TXT, record, &g);
	dns_fixture_run(f);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 1);
	/* 255-byte character-strings joined again. */
	assert_int_equal(g.txtlen[0], sizeof(text) - 1);
}

static void
test_statuses(void **state)
{
	struct dns_fixture *f = *state;
	static const char *const one[] = { "192.0.2.1" };
	static const struct {
		const char *name;
		uint16_t type;
		enum dns_status want;
		const char *error;
	} v[] = {
		{ "a.test", DNS_TYPE_MX, DNS_NODATA, "NODATA" },
		{ "A.TEST.", DNS_TYPE_A, DNS_OK, "" },
		{ "nowhere.test", DNS_TYPE_A, DNS_NXDOMAIN, "NXDOMAIN" },
		{ "temp.test", DNS_TYPE_A, DNS_TEMPFAIL, "SERVFAIL" },
		{ "perm.test", DNS_TYPE_A, DNS_PERMFAIL, "malformed answer" },
		{ "nx.test", DNS_TYPE_A, DNS_NXDOMAIN, "NXDOMAIN" },
		{ "nodata.test", DNS_TYPE_A, DNS_NODATA, "NODATA" },
		{ "a..test", DNS_TYPE_A, DNS_PERMFAIL, "invalid name" },
	};
	struct got g[nitems(v)];
	size_t i;

	memset(g, 0, sizeof(g));
	dns_fake_set(f->d, "a.test", DNS_TYPE_A, DNS_OK, one, 1);
	dns_fake_set(f->d, "temp.test", DNS_TYPE_A, DNS_TEMPFAIL, NULL, 0);
	dns_fake_set(f->d, "perm.test", DNS_TYPE_A, DNS_PERMFAIL, NULL, 0);
	dns_fake_set(f->d, "nx.test", DNS_TYPE_A, DNS_NXDOMAIN, NULL, 0);
	dns_fake_set(f->d, "nodata.test", DNS_TYPE_A, DNS_OK, NULL, 0);
	for (i = 0; i < nitems(v); i++)
		dns_query(f->d, v[i].name, v[i].type, record, &g[i]);
	dns_fixture_run(f);
	for (i = 0; i < nitems(v); i++) {
		assert_int_equal(g[i].calls, 1);
		if (g[i].status != v[i].want)
			fail_msg("%s: got %s, want %s", v[i].name,
			    dns_status_name(g[i].status),
			    dns_status_name(v[i].want));
		assert_string_equal(g[i].error, v[i].error);
		if (v[i].want != DNS_OK)
			assert_int_equal(g[i].n, 0);
	}
	/* Replacing an answer. */
	dns_fake_set(f->d, "temp.test", DNS_TYPE_A, DNS_OK, one, 1);
	memset(&g[0], 0, sizeof(g[0]));
	dns_query(f->d, "temp.test", DNS_TYPE_A, record, &g[0]);
	dns_fixture_run(f);
	assert_int_equal(g[0].status, DNS_OK);
	assert_string_equal(g[0].rec[0], "192.0.2.1");
}

static void
test_cname(void **state)
{
	struct dns_fixture *f = *state;
	static const char *const c1[] = { "middle.test" };
	static const char *const c2[] = { "final.test" };
	static const char *const a[] = { "192.0.2.9" };
	static const char *const loop[] = { "loop.test" };
	struct got g[4];

	memset(g, 0, sizeof(g));
	dns_fake_set(f->d, "alias.test", DNS_TYPE_CNAME, DNS_OK, c1, 1);
	dns_fake_set(f->d, "middle.test", DNS_TYPE_CNAME, DNS_OK, c2, 1);
	dns_fake_set(f->d, "final.test", DNS_TYPE_A, DNS_OK, a, 1);
	dns_fake_set(f->d, "loop.test", DNS_TYPE_CNAME, DNS_OK, loop, 1);
	dns_query(f->d, "alias.test", DNS_TYPE_A, record, &g[0]);
	dns_query(f->d, "alias.test", DNS_TYPE_CNAME, record, &g[1]);
	dns_query(f->d, "alias.test", DNS_TYPE_MX, record, &g[2]);
	dns_query(f->d, "loop.test", DNS_TYPE_A, record, &g[3]);
	dns_fixture_run(f);
	assert_int_equal(g[0].status, DNS_OK);
	assert_string_equal(g[0].rec[0], "192.0.2.9");
	assert_string_equal(g[0].qname, "alias.test");
	assert_string_equal(g[0].canon, "final.test");
	assert_int_equal(g[1].status, DNS_OK);
	assert_string_equal(g[1].rec[0], "middle.test");
	assert_int_equal(g[2].status, DNS_NODATA);
	assert_string_equal(g[2].canon, "final.test");
	assert_int_equal(g[3].calls, 1);
	assert_int_equal(g[3].status, DNS_NODATA);
}

static void
test_cancel(void **state)
{
	struct dns_fixture *f = *state;
	struct got g[3];
	uint64_t id[3];

	memset(g, 0, sizeof(g));
	id[0] = dns_query(f->d, "x.test", DNS_TYPE_A, record, &g[0]);
	id[1] = dns_query(f->d, "y.test", DNS_TYPE_A, record, &g[1]);
	id[2] = dns_query(f->d, "z.test", DNS_TYPE_A, record, &g[2]);
	assert_true(id[0] != id[1] && id[1] != id[2] && id[0] != 0);
	dns_cancel(f->d, id[1]);
	dns_cancel(f->d, id[1]);		/* twice: no-op */
	dns_cancel(f->d, 999999);		/* unknown: no-op */
	assert_int_equal(dns_running(f->d), 2);
	dns_fixture_run(f);
	assert_int_equal(g[0].calls, 1);
	assert_int_equal(g[1].calls, 0);
	assert_int_equal(g[2].calls, 1);
	/* An answered id is unknown now. */
	dns_cancel(f->d, id[0]);
	assert_int_equal(dns_running(f->d), 0);
	assert_int_equal(dns_waiting(f->d), 0);
}

/* A callback that cancels another query, or starts a new one. */
struct chain {
	struct dns *d;
	uint64_t victim;
	int calls;
	struct got *next;
};

static void
chain_cb(void *arg, const struct dns_answer *a)
{
	struct chain *c = arg;

	(void)a;
	c->calls++;
	if (c->victim != 0)
		dns_cancel(c->d, c->victim);
	if (c->next != NULL)
		dns_query(c->d, "later.test", DNS_TYPE_A, record, c->next);
}

static void
test_cancel_from_callback(void **state)
{
	struct dns_fixture *f = *state;
	struct chain c = { f->d, 0, 0, NULL };
	struct got g, later;

	memset(&g, 0, sizeof(g));
	memset(&later, 0, sizeof(later));
	c.next = &later;
	dns_query(f->d, "first.test", DNS_TYPE_A, chain_cb, &c);
	c.victim = dns_query(f->d, "second.test", DNS_TYPE_A, record, &g);
	dns_fixture_run(f);
	assert_int_equal(c.calls, 1);
	assert_int_equal(g.calls, 0);
	assert_int_equal(later.calls, 1);
	assert_int_equal(later.status, DNS_NXDOMAIN);
}

static void
free_cb(void *arg, const struct dns_answer *a)
{
	(void)a;
	dns_freer_free(arg);
}

static void
test_free_from_callback(void **state)
{
	struct dns_fixture *f = *state;
	struct dns_freer fr = { &f->d, 0 };
	struct got g[3];
	size_t i;

	memset(g, 0, sizeof(g));
	dns_set_max_queries(f->d, 2);
	dns_query(f->d, "a.test", DNS_TYPE_A, free_cb, &fr);
	for (i = 0; i < nitems(g); i++)
		dns_query(f->d, "b.test", DNS_TYPE_A, record, &g[i]);
	dns_route_lookup(f->d, "r.test", &(struct dns_route_opts){
	    .use_mx = true, .port = 25 }, NULL, NULL);
	dns_fixture_run(f);
	assert_int_equal(fr.calls, 1);
	for (i = 0; i < nitems(g); i++)
		assert_int_equal(g[i].calls, 0);
	assert_null(f->d);
}

static void
test_free_pending(void **state)
{
	struct dns_fixture *f = *state;
	struct got g;

	memset(&g, 0, sizeof(g));
	dns_query(f->d, "a.test", DNS_TYPE_A, record, &g);
	dns_free(f->d);
	f->d = NULL;
	/* The fake's event is gone with it: nothing runs. */
	dns_fixture_run(f);
	assert_int_equal(g.calls, 0);
}

/* 300 queries with max_queries 10: never more than 10 running, FIFO. */
struct capped {
	struct dns *d;
	int order[300];
	int n;
	size_t max_running;
};

struct capped_arg {
	struct capped *c;
	int i;
};

static void
capped_cb(void *arg, const struct dns_answer *a)
{
	struct capped_arg *ca = arg;
	struct capped *c = ca->c;

	assert_int_equal(a->status, DNS_OK);
	if (dns_running(c->d) > c->max_running)
		c->max_running = dns_running(c->d);
	c->order[c->n++] = ca->i;
}

static void
test_max_queries(void **state)
{
	struct dns_fixture *f = *state;
	static const char *const one[] = { "192.0.2.1" };
	struct capped c;
	struct capped_arg ca[300];
	char name[64];
	int i;

	memset(&c, 0, sizeof(c));
	c.d = f->d;
	dns_set_max_queries(f->d, 10);
	for (i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "h%d.test", i);
		dns_fake_set(f->d, name, DNS_TYPE_A, DNS_OK, one, 1);
	}
	for (i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "h%d.test", i);
		ca[i].c = &c;
		ca[i].i = i;
		dns_query(f->d, name, DNS_TYPE_A, capped_cb, &ca[i]);
	}
	assert_int_equal(dns_running(f->d), 10);
	assert_int_equal(dns_waiting(f->d), 290);
	/* Waiting queries have not been sent. */
	assert_int_equal(dns_fake_count(f->d, "h10.test", DNS_TYPE_A), 0);
	assert_int_equal(dns_fake_count(f->d, "h9.test", DNS_TYPE_A), 1);
	dns_fixture_run(f);
	assert_int_equal(c.n, 300);
	assert_true(c.max_running <= 10);
	for (i = 0; i < 300; i++)
		if (c.order[i] != i)
			fail_msg("answer %d: got query %d, want %d", i,
			    c.order[i], i);
	assert_int_equal(dns_running(f->d), 0);
	assert_int_equal(dns_waiting(f->d), 0);
}

static void
test_fake_count(void **state)
{
	struct dns_fixture *f = *state;
	struct got g;

	memset(&g, 0, sizeof(g));
	dns_query(f->d, "count.test", DNS_TYPE_MX, record, &g);
	dns_query(f->d, "COUNT.test.", DNS_TYPE_MX, record, &g);
	dns_query(f->d, "count.test", DNS_TYPE_A, record, &g);
	dns_fixture_run(f);
	assert_int_equal(g.calls, 3);
	assert_int_equal(dns_fake_count(f->d, "count.test", DNS_TYPE_MX), 2);
	assert_int_equal(dns_fake_count(f->d, "count.test", DNS_TYPE_A), 1);
	assert_int_equal(dns_fake_count(f->d, "count.test", 0), 3);
	assert_int_equal(dns_fake_count(f->d, "other.test", 0), 0);
}

/* dns_new() with the real backend: bad settings fail with a message. */
static void
test_dns_new(void **state)
{
	struct event_base *base = event_base_new();
	const char *bad[] = { "127.0.0.1:0", "300.1.1.1", "[::1", "[::1]x",
	    "example.com", "127.0.0.1:99999", "" };
	const char *good[] = { "127.0.0.1:5353", "[::1]:53", "192.0.2.1",
	    "::1" };
	struct dns_config cfg;
	struct dns *d;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < nitems(bad); i++) {
		memset(&cfg, 0, sizeof(cfg));
		cfg.servers = &bad[i];
		cfg.nservers = 1;
		err[0] = '\0';
		d = dns_new(base, &cfg, err, sizeof(err));
		if (d != NULL)
			fail_msg("server \"%s\": got a resolver, want an "
			    "error", bad[i]);
		if (strstr(err, "bad DNS server address") == NULL)
			fail_msg("server \"%s\": got \"%s\"", bad[i], err);
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.servers = good;
	cfg.nservers = nitems(good);
	cfg.max_queries = 7;
	d = dns_new(base, &cfg, err, sizeof(err));
	if (d == NULL)
		fail_msg("good servers: got \"%s\"", err);
	assert_int_equal(dns_running(d), 0);
	dns_free(d);

	/* dnssec needs the root trust anchor. */
	cfg.dnssec = true;
	d = dns_new(base, &cfg, err, sizeof(err));
	if (access(DNS_ROOT_KEY, R_OK) == 0) {
		assert_non_null(d);
		dns_free(d);
	} else {
		assert_null(d);
		if (strstr(err, DNS_ROOT_KEY) == NULL)
			fail_msg("dnssec without %s: got \"%s\"", DNS_ROOT_KEY,
			    err);
	}
	dns_free(NULL);
	event_base_free(base);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, dns_fixture_setup, \
	dns_fixture_teardown)
	const struct CMUnitTest tests[] = {
		T(test_types),
		T(test_long_txt),
		T(test_statuses),
		T(test_cname),
		T(test_cancel),
		T(test_cancel_from_callback),
		T(test_free_from_callback),
		T(test_free_pending),
		T(test_max_queries),
		T(test_fake_count),
		cmocka_unit_test(test_dns_new),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
