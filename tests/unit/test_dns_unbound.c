/*
 * test_dns_unbound.c: the real backend (libunbound in a thread, its pipe
 * in the libevent loop) against a tiny DNS responder on 127.0.0.1 in a
 * thread of this test. The responder holds queries until none has come
 * for a moment and then answers the whole batch, so the largest batch (in
 * distinct questions: a retransmission is not another query) is the
 * number of queries that were in flight at once: with max_queries 10,
 * 300 queries must all answer, correctly, in batches of at most 10.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "testutil.h"

#include "dns/dns.h"
#include "lib/util.h"

#define BATCH_MAX	1024
#define QUIET_MS	30	/* no query for this long: answer the batch */

struct pkt {
	uint8_t buf[512];
	size_t len;
	struct sockaddr_in from;
};

struct responder {
	int fd;
	unsigned int port;
	pthread_t thread;
	_Atomic int stop;
	pthread_mutex_t lock;
	size_t max_batch;
	size_t nqueries;
	struct pkt batch[BATCH_MAX];
};

/*
 * Answer one query: "qN.test" A -> 127.1.N/256.N%256, "servfail.test" ->
 * SERVFAIL, "nx.test" or anything else -> NXDOMAIN. Additional records
 * (unbound's EDNS OPT) are dropped: no OPT in the reply is fine.
 */
static void
responder_answer(struct responder *r, struct pkt *p)
{
	uint8_t out[600];
	char name[300];
	size_t off = 12, o = 0, end;
	unsigned int n;
	uint16_t qtype;
	int rcode = 3;
	bool answer = false;

	if (p->len < 12 || p->buf[4] != 0 || p->buf[5] != 1)
		return;
	while (off < p->len && p->buf[off] != 0) {
		size_t l = p->buf[off];

		if (l > 63 || off + 1 + l >= p->len ||
		    o + l + 1 >= sizeof(name))
			return;
		if (o > 0)
			name[o++] = '.';
		memcpy(name + o, p->buf + off + 1, l);
		o += l;
		off += 1 + l;
	}
	name[o] = '\0';
	end = off + 5;
	if (end > p->len)
		return;
	qtype = (uint16_t)(p->buf[off + 1] << 8 | p->buf[off + 2]);
	if (strcmp(name, "servfail.test") == 0)
		rcode = 2;
	else if (sscanf(name, "q%u.test", &n) == 1 && n < 65536) {
		rcode = 0;
		answer = qtype == 1;
	}
	memcpy(out, p->buf, end);
	out[2] = (uint8_t)(0x84 | (p->buf[2] & 0x01));	/* QR AA RD */
	out[3] = (uint8_t)(0x80 | rcode);			/* RA */
	out[6] = 0;
	out[7] = answer ? 1 : 0;
	memset(out + 8, 0, 4);
	o = end;
	if (answer) {
		static const uint8_t rr[] = { 0xc0, 0x0c, 0, 1, 0, 1,
		    0, 0, 0, 0, 0, 4 };

		memcpy(out + o, rr, sizeof(rr));
		o += sizeof(rr);
		out[o++] = 127;
		out[o++] = 1;
		out[o++] = (uint8_t)(n >> 8);
		out[o++] = (uint8_t)n;
	}
	(void)sendto(r->fd, out, o, 0, (struct sockaddr *)&p->from,
	    sizeof(p->from));
}

/* The question section of a query: its bytes after the header. */
static size_t
pkt_question_len(const struct pkt *p)
{
	size_t off = 12;

	while (off < p->len && p->buf[off] != 0)
		off += 1 + (size_t)p->buf[off];
	return off + 5 <= p->len ? off + 5 - 12 : 0;
}

/*
 * Distinct questions in a batch: a resolver that waited too long (a
 * loaded machine) sends the same question again, which is not one more
 * query in flight.
 */
static size_t
batch_distinct(const struct pkt *batch, size_t n)
{
	size_t i, j, la, distinct = 0;

	for (i = 0; i < n; i++) {
		la = pkt_question_len(&batch[i]);
		for (j = 0; j < i; j++)
			if (pkt_question_len(&batch[j]) == la &&
			    strncasecmp((const char *)batch[i].buf + 12,
			    (const char *)batch[j].buf + 12, la) == 0)
				break;
		if (j == i)
			distinct++;
	}
	return distinct;
}

static void *
responder_main(void *arg)
{
	struct responder *r = arg;
	size_t nbatch = 0, i;

	while (!r->stop) {
		struct pollfd pfd = { r->fd, POLLIN, 0 };
		int ready = poll(&pfd, 1, nbatch > 0 ? QUIET_MS : 50);

		if (ready > 0 && nbatch < BATCH_MAX) {
			struct pkt *p = &r->batch[nbatch];
			socklen_t sl = sizeof(p->from);
			ssize_t got = recvfrom(r->fd, p->buf, sizeof(p->buf), 0,
			    (struct sockaddr *)&p->from, &sl);

			if (got > 0) {
				p->len = (size_t)got;
				nbatch++;
			}
			continue;
		}
		if (nbatch == 0)
			continue;
		pthread_mutex_lock(&r->lock);
		if (batch_distinct(r->batch, nbatch) > r->max_batch)
			r->max_batch = batch_distinct(r->batch, nbatch);
		r->nqueries += nbatch;
		pthread_mutex_unlock(&r->lock);
		for (i = 0; i < nbatch; i++)
			responder_answer(r, &r->batch[i]);
		nbatch = 0;
	}
	return NULL;
}

static struct responder *
responder_start(void)
{
	struct responder *r = xcalloc(1, sizeof(*r));
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	r->fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(r->fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(r->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(r->fd, (struct sockaddr *)&sin, &sl), 0);
	r->port = ntohs(sin.sin_port);
	pthread_mutex_init(&r->lock, NULL);
	assert_int_equal(pthread_create(&r->thread, NULL, responder_main, r),
	    0);
	return r;
}

static void
responder_stop(struct responder *r)
{
	r->stop = 1;
	pthread_join(r->thread, NULL);
	close(r->fd);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

struct fixture {
	struct event_base *base;
	struct responder *resp;
	struct dns *d;
	char server[64];
};

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	const char *servers[1];
	struct dns_config cfg;
	char err[256];

	f->base = event_base_new();
	f->resp = responder_start();
	snprintf(f->server, sizeof(f->server), "127.0.0.1:%u", f->resp->port);
	servers[0] = f->server;
	memset(&cfg, 0, sizeof(cfg));
	cfg.servers = servers;
	cfg.nservers = 1;
	cfg.max_queries = 10;
	f->d = dns_new(f->base, &cfg, err, sizeof(err));
	if (f->d == NULL)
		fail_msg("dns_new: %s", err);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	dns_free(f->d);
	responder_stop(f->resp);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* Run the loop until *done reaches want, failing after 30 s. */
static void
run_until(struct fixture *f, const int *done, int want)
{
	uint64_t deadline = time_mono_usec() + 30 * 1000000ULL;

	while (*done < want) {
		if (time_mono_usec() > deadline)
			fail_msg("timed out: %d of %d answers", *done, want);
		event_base_loop(f->base, EVLOOP_ONCE);
	}
}

struct many {
	struct dns *d;
	int done;
	size_t max_running;
	int bad;
};

struct many_arg {
	struct many *m;
	unsigned int i;
};

static void
many_cb(void *arg, const struct dns_answer *a)
{
	struct many_arg *ma = arg;
	struct many *m = ma->m;

	m->done++;
	if (dns_running(m->d) > m->max_running)
		m->max_running = dns_running(m->d);
	if (a->status != DNS_OK || a->n != 1 ||
	    a->addrs[0].family != AF_INET || a->addrs[0].addr[0] != 127 ||
	    a->addrs[0].addr[1] != 1 ||
	    (a->addrs[0].addr[2] << 8 | a->addrs[0].addr[3]) != (int)ma->i) {
		print_error("q%u.test: got %s n=%zu\n", ma->i,
		    dns_status_name(a->status), a->n);
		m->bad++;
	}
}

static void
test_300_queries(void **state)
{
	struct fixture *f = *state;
	struct many m;
	struct many_arg *args = xcalloc(300, sizeof(*args));
	char name[32];
	unsigned int i;

	memset(&m, 0, sizeof(m));
	m.d = f->d;
	for (i = 0; i < 300; i++) {
		args[i].m = &m;
		args[i].i = i;
		snprintf(name, sizeof(name), "q%u.test", i);
		dns_query(f->d, name, DNS_TYPE_A, many_cb, &args[i]);
	}
	assert_int_equal(m.done, 0);
	assert_int_equal(dns_running(f->d), 10);
	assert_int_equal(dns_waiting(f->d), 290);
	run_until(f, &m.done, 300);
	assert_int_equal(m.bad, 0);
	assert_true(m.max_running <= 10);
	pthread_mutex_lock(&f->resp->lock);
	if (f->resp->max_batch > 10 || f->resp->max_batch < 2)
		fail_msg("the server saw %zu queries at once, want 2..10",
		    f->resp->max_batch);
	assert_true(f->resp->nqueries >= 300);
	pthread_mutex_unlock(&f->resp->lock);
	free(args);
}

struct one {
	int done;
	enum dns_status status;
	char error[64];
};

static int one_total;		/* answers to one_cb() in all */

static void
one_cb(void *arg, const struct dns_answer *a)
{
	struct one *o = arg;

	one_total++;
	o->done++;
	o->status = a->status;
	strlcpy(o->error, a->error, sizeof(o->error));
}

static void
test_statuses(void **state)
{
	struct fixture *f = *state;
	struct one o[4];
	int i;

	memset(o, 0, sizeof(o));
	one_total = 0;
	dns_query(f->d, "servfail.test", DNS_TYPE_A, one_cb, &o[0]);
	dns_query(f->d, "nx.test", DNS_TYPE_A, one_cb, &o[1]);
	dns_query(f->d, "q7.test", DNS_TYPE_MX, one_cb, &o[2]);
	dns_query(f->d, "bad..name", DNS_TYPE_A, one_cb, &o[3]);
	run_until(f, &one_total, 4);
	for (i = 0; i < 4; i++)
		assert_int_equal(o[i].done, 1);
	assert_int_equal(o[0].status, DNS_TEMPFAIL);
	assert_string_equal(o[0].error, "SERVFAIL");
	assert_int_equal(o[1].status, DNS_NXDOMAIN);
	assert_int_equal(o[2].status, DNS_NODATA);
	assert_int_equal(o[3].status, DNS_PERMFAIL);
}

/* Cancel running queries and free with queries in flight. */
static void
test_cancel_and_free(void **state)
{
	struct fixture *f = *state;
	struct one o[3];
	uint64_t id;

	memset(o, 0, sizeof(o));
	id = dns_query(f->d, "q1.test", DNS_TYPE_A, one_cb, &o[0]);
	dns_query(f->d, "q2.test", DNS_TYPE_A, one_cb, &o[1]);
	dns_cancel(f->d, id);
	run_until(f, &o[1].done, 1);
	assert_int_equal(o[0].done, 0);
	dns_query(f->d, "q3.test", DNS_TYPE_A, one_cb, &o[2]);
	dns_free(f->d);
	f->d = NULL;
	/* Whatever the pipe still brings, nobody is called. */
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(o[0].done, 0);
	assert_int_equal(o[2].done, 0);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_300_queries),
		T(test_statuses),
		T(test_cancel_and_free),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
