/*
 * dns.c: asynchronous DNS queries over libunbound in a libevent loop, the
 * in-memory fake that replaces libunbound in unit tests, and the request
 * bookkeeping both share (ids, the cap on queries in flight, callbacks).
 *
 * Entry points: dns_new(), dns_new_fake(), dns_query(), dns_cancel(),
 * dns_free(), dns_running(), dns_waiting(), dns_set_max_queries(),
 * dns_fake_set(), dns_fake_count(), dns_type_name(), dns_type_from_name(),
 * dns_status_name().
 *
 * A request is WAITING (over the cap, FIFO), RUNNING (handed to the
 * backend) or DONE (answered, its callback not yet run). A backend, the
 * one vtable below, starts and cancels queries and reports answers with
 * dns_query_complete(); callbacks run only from dns_dispatch(), which an
 * event handler calls once it is done with the backend (never from inside
 * ub_process(), never from inside dns_query()), so a callback may freely
 * query, cancel or dns_free(): a dns_free() during dispatch only marks the
 * object dead and dispatch frees it on its way out.
 *
 * libunbound runs its resolver in a thread (ub_ctx_async(ctx, 1)); its
 * answers arrive on a pipe, ub_fd(), that the loop watches, and
 * ub_process() runs our callback for each.
 *
 * SECURITY: answers come from the network. libunbound checks the message;
 * rr.c parses the rdata defensively. Nothing is logged per query at info
 * level (a busy server makes thousands).
 * STANDARDS: RFC 1035, RFC 2308 (NODATA vs NXDOMAIN), RFC 4033 (DNSSEC
 * validation by libunbound when enabled).
 * OWNERSHIP: struct dns owns its queries, their answers and the backend;
 * an answer lives until its callback returns.
 */
#include "dns/dns.h"

#include <sys/queue.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <unbound.h>

#include "dns/dns_private.h"
#include "dns/rr.h"
#include "lib/log.h"
#include "lib/util.h"

#define DNS_MAX_QUERIES_DEFAULT	100
#define DNS_HASH_MIN		64
#define DNS_FAKE_CNAME_MAX	8
/* A SERVFAIL after this long was a timeout (see dns_ub_answer()). */
#define DNS_TIMEOUT_GUESS_USEC	1000000

enum dns_qstate {
	DNS_Q_WAITING,
	DNS_Q_RUNNING,
	DNS_Q_DONE,
};

/* An answer and everything its pointers point to. */
struct dns_result {
	struct dns_answer a;
	char canon[DNS_NAME_MAX];
	char errbuf[160];
	uint8_t *rawbuf;
	struct dns_rdata *raw;
	struct dns_addr *addrs;
	struct dns_mx *mx;
	struct dns_txt *txt;
	char **names;
	char *namebuf;
	struct dns_tlsa *tlsa;
};

struct dns_query {
	struct dns *d;
	uint64_t id;
	char *name;
	uint16_t type;
	dns_cb cb;
	void *arg;
	enum dns_qstate state;
	TAILQ_ENTRY(dns_query) entry;	/* waiting, running or done */
	struct dns_query *hnext;	/* id hash chain */
	int ub_id;			/* unbound: async id */
	uint64_t started;		/* unbound: time_mono_usec() */
	struct event *ev;		/* fake: the answer's event */
	struct dns_result res;
};

TAILQ_HEAD(dns_qlist, dns_query);

struct dns_backend {
	const char *name;
	/* Start q (RUNNING); never runs a callback. */
	void (*start)(struct dns *, struct dns_query *);
	/* Stop a RUNNING q: no answer for it after this. */
	void (*cancel)(struct dns *, struct dns_query *);
	/* Free the backend's state (every query is gone). */
	void (*destroy)(struct dns *);
};

/* Fake: one (name, type) answer or one query counter. */
struct dns_fake_entry {
	char *name;
	uint16_t type;
	bool has_answer;
	enum dns_status status;
	size_t n;
	struct dns_rdata *rd;
	unsigned int count;
	struct dns_fake_entry *next;
};

struct dns {
	const struct dns_backend *be;
	struct event_base *base;
	uint64_t next_id;
	unsigned int max_queries;
	struct dns_qlist waiting, running, done;
	size_t nwaiting, nrunning;
	struct dns_query **hash;
	size_t nhash, nquery;
	struct event *ev_done;		/* runs dns_dispatch() */
	bool dispatching;
	bool dead;			/* dns_free() during dispatch */
	struct dns_route_req *routes;	/* mx.c */

	struct ub_ctx *ub;
	bool ub_started;		/* its thread exists */
	struct event *ev_ub;

	struct dns_fake_entry *fake;
};

static void dns_dispatch(struct dns *);
static void dns_destroy(struct dns *);

static const struct {
	uint16_t type;
	const char *name;
} dns_types[] = {
	{ DNS_TYPE_A, "A" },
	{ DNS_TYPE_NS, "NS" },
	{ DNS_TYPE_CNAME, "CNAME" },
	{ DNS_TYPE_SOA, "SOA" },
	{ DNS_TYPE_PTR, "PTR" },
	{ DNS_TYPE_MX, "MX" },
	{ DNS_TYPE_TXT, "TXT" },
	{ DNS_TYPE_AAAA, "AAAA" },
	{ DNS_TYPE_TLSA, "TLSA" },
};

const char *
dns_type_name(uint16_t type)
{
	size_t i;

	for (i = 0; i < nitems(dns_types); i++)
		if (dns_types[i].type == type)
			return dns_types[i].name;
	return NULL;
}

uint16_t
dns_type_from_name(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(dns_types); i++)
		if (ascii_strcasecmp(dns_types[i].name, name) == 0)
			return dns_types[i].type;
	return 0;
}

const char *
dns_status_name(enum dns_status st)
{
	switch (st) {
	case DNS_OK:
		return "OK";
	case DNS_NODATA:
		return "NODATA";
	case DNS_NXDOMAIN:
		return "NXDOMAIN";
	case DNS_TEMPFAIL:
		return "TEMPFAIL";
	case DNS_PERMFAIL:
		return "PERMFAIL";
	}
	return "?";
}

struct event_base *
dns_event_base(const struct dns *d)
{
	return d->base;
}

uint64_t
dns_next_id(struct dns *d)
{
	return d->next_id++;
}

struct dns_route_req **
dns_routes_head(struct dns *d)
{
	return &d->routes;
}

/*
 * Answers.
 */

static void
dns_result_clear(struct dns_result *r)
{
	size_t i;

	if (r->txt != NULL)
		for (i = 0; i < r->a.n; i++)
			free(r->txt[i].data);
	if (r->tlsa != NULL)
		for (i = 0; i < r->a.n; i++)
			free(r->tlsa[i].data);
	free(r->rawbuf);
	free(r->raw);
	free(r->addrs);
	free(r->mx);
	free(r->txt);
	free(r->names);
	free(r->namebuf);
	free(r->tlsa);
	r->rawbuf = NULL;
	r->raw = NULL;
	r->addrs = NULL;
	r->mx = NULL;
	r->txt = NULL;
	r->names = NULL;
	r->namebuf = NULL;
	r->tlsa = NULL;
	r->a.n = 0;
	r->a.raw = NULL;
	r->a.addrs = NULL;
	r->a.mx = NULL;
	r->a.txt = NULL;
	r->a.names = NULL;
	r->a.tlsa = NULL;
}

/* An answer without records: NODATA, NXDOMAIN or a failure. */
static void
dns_result_status(struct dns_query *q, enum dns_status st, const char *error)
{
	struct dns_result *r = &q->res;

	dns_result_clear(r);
	r->a.status = st;
	r->a.type = q->type;
	r->a.qname = q->name;
	if (r->a.canonname == NULL)
		r->a.canonname = q->name;
	strlcpy(r->errbuf, error, sizeof(r->errbuf));
	r->a.error = r->errbuf;
}

static void
dns_result_canon(struct dns_query *q, const char *canon)
{
	struct dns_result *r = &q->res;
	size_t n;

	if (canon == NULL || canon[0] == '\0' ||
	    strlcpy(r->canon, canon, sizeof(r->canon)) >= sizeof(r->canon)) {
		r->a.canonname = q->name;
		return;
	}
	n = strlen(r->canon);
	if (n > 1 && r->canon[n - 1] == '.')
		r->canon[n - 1] = '\0';
	r->a.canonname = r->canon;
}

/*
 * Records: copy the n rdatas and parse them by type. A record that does
 * not parse makes the whole answer DNS_PERMFAIL: a partial list could
 * hide the mail exchanger that matters.
 */
static void
dns_result_records(struct dns_query *q, const struct dns_rdata *rd, size_t n)
{
	struct dns_result *r = &q->res;
	size_t i, total = 0, off = 0;
	int bad = 0;

	dns_result_clear(r);
	r->a.type = q->type;
	r->a.qname = q->name;
	if (r->a.canonname == NULL)
		r->a.canonname = q->name;
	if (n == 0) {
		dns_result_status(q, DNS_NODATA, "NODATA");
		return;
	}
	for (i = 0; i < n; i++)
		total += rd[i].len;
	r->rawbuf = xmalloc(total > 0 ? total : 1);
	r->raw = xcalloc(n, sizeof(*r->raw));
	for (i = 0; i < n; i++) {
		if (rd[i].len > 0)
			memcpy(r->rawbuf + off, rd[i].data, rd[i].len);
		r->raw[i].data = r->rawbuf + off;
		r->raw[i].len = rd[i].len;
		off += rd[i].len;
	}
	r->a.n = n;
	r->a.raw = r->raw;
	switch (q->type) {
	case DNS_TYPE_A:
	case DNS_TYPE_AAAA:
		r->addrs = xcalloc(n, sizeof(*r->addrs));
		for (i = 0; i < n && !bad; i++)
			bad = (q->type == DNS_TYPE_A ?
			    dns_rr_parse_a(r->raw[i].data, r->raw[i].len,
			    &r->addrs[i]) :
			    dns_rr_parse_aaaa(r->raw[i].data, r->raw[i].len,
			    &r->addrs[i])) == -1;
		r->a.addrs = r->addrs;
		break;
	case DNS_TYPE_MX:
		r->mx = xcalloc(n, sizeof(*r->mx));
		for (i = 0; i < n && !bad; i++)
			bad = dns_rr_parse_mx(r->raw[i].data, r->raw[i].len,
			    &r->mx[i]) == -1;
		r->a.mx = r->mx;
		break;
	case DNS_TYPE_TXT:
		r->txt = xcalloc(n, sizeof(*r->txt));
		for (i = 0; i < n && !bad; i++)
			bad = dns_rr_parse_txt(r->raw[i].data, r->raw[i].len,
			    &r->txt[i]) == -1;
		r->a.txt = r->txt;
		break;
	case DNS_TYPE_PTR:
	case DNS_TYPE_CNAME:
	case DNS_TYPE_NS:
		r->names = xcalloc(n, sizeof(*r->names));
		r->namebuf = xcalloc(n, DNS_NAME_MAX);
		for (i = 0; i < n && !bad; i++) {
			r->names[i] = r->namebuf + i * DNS_NAME_MAX;
			bad = dns_rr_parse_ptr(r->raw[i].data, r->raw[i].len,
			    r->names[i], DNS_NAME_MAX) == -1;
		}
		r->a.names = (const char *const *)r->names;
		break;
	case DNS_TYPE_TLSA:
		r->tlsa = xcalloc(n, sizeof(*r->tlsa));
		for (i = 0; i < n && !bad; i++)
			bad = dns_rr_parse_tlsa(r->raw[i].data, r->raw[i].len,
			    &r->tlsa[i]) == -1;
		r->a.tlsa = r->tlsa;
		break;
	default:
		break;
	}
	if (bad) {
		char esc[64];
		const char *tn = dns_type_name(q->type);

		snprintf(esc, sizeof(esc), "%s", tn != NULL ? tn : "unknown");
		dns_result_status(q, DNS_PERMFAIL, "");
		snprintf(r->errbuf, sizeof(r->errbuf), "malformed %s record",
		    esc);
		return;
	}
	r->a.status = DNS_OK;
	r->a.error = "";
}

/*
 * Bookkeeping: the id hash, the three lists, the cap.
 */

static void
dns_hash_grow(struct dns *d)
{
	struct dns_query **nh, *q, *next;
	size_t nn = d->nhash * 2, i;

	nh = xcalloc(nn, sizeof(*nh));
	for (i = 0; i < d->nhash; i++)
		for (q = d->hash[i]; q != NULL; q = next) {
			next = q->hnext;
			q->hnext = nh[q->id & (nn - 1)];
			nh[q->id & (nn - 1)] = q;
		}
	free(d->hash);
	d->hash = nh;
	d->nhash = nn;
}

static void
dns_hash_add(struct dns *d, struct dns_query *q)
{
	struct dns_query **b;

	if (d->nquery >= d->nhash)
		dns_hash_grow(d);
	b = &d->hash[q->id & (d->nhash - 1)];
	q->hnext = *b;
	*b = q;
	d->nquery++;
}

static struct dns_query *
dns_hash_find(struct dns *d, uint64_t id)
{
	struct dns_query *q;

	for (q = d->hash[id & (d->nhash - 1)]; q != NULL; q = q->hnext)
		if (q->id == id)
			return q;
	return NULL;
}

static void
dns_hash_remove(struct dns *d, struct dns_query *q)
{
	struct dns_query **pp;

	for (pp = &d->hash[q->id & (d->nhash - 1)]; *pp != NULL;
	    pp = &(*pp)->hnext)
		if (*pp == q) {
			*pp = q->hnext;
			d->nquery--;
			return;
		}
	fatalx("dns: query %llu not in its hash chain",
	    (unsigned long long)q->id);
}

static void
dns_query_free(struct dns_query *q)
{
	dns_result_clear(&q->res);
	free(q->name);
	free(q);
}

/* Start waiting queries while there is room (never runs callbacks). */
static void
dns_start_waiting(struct dns *d)
{
	struct dns_query *q;

	while (d->nrunning < d->max_queries &&
	    (q = TAILQ_FIRST(&d->waiting)) != NULL) {
		TAILQ_REMOVE(&d->waiting, q, entry);
		d->nwaiting--;
		TAILQ_INSERT_TAIL(&d->running, q, entry);
		d->nrunning++;
		q->state = DNS_Q_RUNNING;
		d->be->start(d, q);
	}
}

/* A backend has filled q->res: queue the callback. */
static void
dns_query_complete(struct dns *d, struct dns_query *q)
{
	if (q->state != DNS_Q_RUNNING)
		fatalx("dns: completing query %llu in state %d",
		    (unsigned long long)q->id, (int)q->state);
	TAILQ_REMOVE(&d->running, q, entry);
	d->nrunning--;
	TAILQ_INSERT_TAIL(&d->done, q, entry);
	q->state = DNS_Q_DONE;
}

/*
 * Run the callbacks of answered queries, starting waiting ones as slots
 * free up. Called only from event handlers.
 */
static void
dns_dispatch(struct dns *d)
{
	struct dns_query *q;

	if (d->dispatching)
		return;
	d->dispatching = true;
	while (!d->dead) {
		dns_start_waiting(d);
		if ((q = TAILQ_FIRST(&d->done)) == NULL)
			break;
		TAILQ_REMOVE(&d->done, q, entry);
		dns_hash_remove(d, q);
		q->cb(q->arg, &q->res.a);
		dns_query_free(q);
	}
	d->dispatching = false;
	if (d->dead)
		dns_destroy(d);
}

static void
dns_done_event(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dns_dispatch(arg);
}

/* Make dns_dispatch() run soon from the loop. */
static void
dns_kick(struct dns *d)
{
	event_active(d->ev_done, EV_TIMEOUT, 1);
}

static struct dns *
dns_alloc(struct event_base *base, const struct dns_backend *be)
{
	struct dns *d = xcalloc(1, sizeof(*d));

	d->be = be;
	d->base = base;
	d->next_id = 1;
	d->max_queries = DNS_MAX_QUERIES_DEFAULT;
	TAILQ_INIT(&d->waiting);
	TAILQ_INIT(&d->running);
	TAILQ_INIT(&d->done);
	d->nhash = DNS_HASH_MIN;
	d->hash = xcalloc(d->nhash, sizeof(*d->hash));
	if ((d->ev_done = event_new(base, -1, 0, dns_done_event, d)) == NULL)
		fatalx("dns: event_new failed");
	return d;
}

uint64_t
dns_query(struct dns *d, const char *name, uint16_t type, dns_cb cb,
    void *arg)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));

	q->d = d;
	q->id = dns_next_id(d);
	q->name = xstrdup(name);
	q->type = type;
	q->cb = cb;
	q->arg = arg;
	q->ub_id = -1;
	q->state = DNS_Q_WAITING;
	dns_hash_add(d, q);
	TAILQ_INSERT_TAIL(&d->waiting, q, entry);
	d->nwaiting++;
	dns_start_waiting(d);
	return q->id;
}

/* Unlink q from wherever it is and free it, without a callback. */
static void
dns_query_drop(struct dns *d, struct dns_query *q)
{
	switch (q->state) {
	case DNS_Q_WAITING:
		TAILQ_REMOVE(&d->waiting, q, entry);
		d->nwaiting--;
		break;
	case DNS_Q_RUNNING:
		d->be->cancel(d, q);
		TAILQ_REMOVE(&d->running, q, entry);
		d->nrunning--;
		break;
	case DNS_Q_DONE:
		TAILQ_REMOVE(&d->done, q, entry);
		break;
	}
	dns_hash_remove(d, q);
	dns_query_free(q);
}

void
dns_cancel(struct dns *d, uint64_t id)
{
	struct dns_query *q;

	if (d == NULL || d->dead || (q = dns_hash_find(d, id)) == NULL)
		return;
	dns_query_drop(d, q);
	dns_start_waiting(d);
}

size_t
dns_running(const struct dns *d)
{
	return d->nrunning;
}

size_t
dns_waiting(const struct dns *d)
{
	return d->nwaiting;
}

void
dns_set_max_queries(struct dns *d, unsigned int max)
{
	d->max_queries = max > 0 ? max : DNS_MAX_QUERIES_DEFAULT;
	dns_start_waiting(d);
}

static void
dns_destroy(struct dns *d)
{
	d->be->destroy(d);
	event_free(d->ev_done);
	free(d->hash);
	free(d);
}

void
dns_free(struct dns *d)
{
	struct dns_query *q;

	if (d == NULL || d->dead)
		return;
	/* Waiting ones first, so that no slot frees up for them. */
	while ((q = TAILQ_FIRST(&d->waiting)) != NULL)
		dns_query_drop(d, q);
	while ((q = TAILQ_FIRST(&d->running)) != NULL)
		dns_query_drop(d, q);
	while ((q = TAILQ_FIRST(&d->done)) != NULL)
		dns_query_drop(d, q);
	dns_route_free_all(d);		/* their queries are gone already */
	if (d->dispatching) {
		d->dead = true;		/* dns_dispatch() frees it */
		return;
	}
	dns_destroy(d);
}

/*
 * The libunbound backend.
 */

static const char *
dns_rcode_text(int rcode)
{
	switch (rcode) {
	case 1:
		return "FORMERR";
	case 2:
		return "SERVFAIL";
	case 4:
		return "NOTIMP";
	case 5:
		return "REFUSED";
	default:
		return NULL;
	}
}

/*
 * ub_process() calls this for each answer; arg is the query, which stays
 * valid because dns_query_drop() ub_cancel()s a running query (after
 * which libunbound never calls back for it).
 */
static void
dns_ub_answer(void *arg, int err, struct ub_result *res)
{
	struct dns_query *q = arg;
	struct dns_rdata *rd = NULL;
	char buf[160];
	const char *rc;
	size_t n = 0, i;

	q->ub_id = -1;
	if (err != 0 || res == NULL) {
		dns_result_status(q, err == UB_SYNTAX ? DNS_PERMFAIL :
		    DNS_TEMPFAIL, ub_strerror(err));
		goto done;
	}
	dns_result_canon(q, res->canonname);
	q->res.a.secure = res->secure != 0;
	q->res.a.ttl = res->ttl > 0 ? (uint32_t)res->ttl : 0;
	if (res->bogus) {
		snprintf(buf, sizeof(buf), "DNSSEC validation failed%s%s",
		    res->why_bogus != NULL ? ": " : "",
		    res->why_bogus != NULL ? res->why_bogus : "");
		dns_result_status(q, DNS_TEMPFAIL, buf);
	} else if (res->rcode == 3 || (res->rcode == 0 && res->nxdomain))
		dns_result_status(q, DNS_NXDOMAIN, "NXDOMAIN");
	else if (res->rcode == 2 &&
	    time_mono_usec() - q->started >= DNS_TIMEOUT_GUESS_USEC) {
		/*
		 * libunbound reports an unresponsive server as SERVFAIL too;
		 * one that answered SERVFAIL did so within milliseconds.
		 */
		dns_result_status(q, DNS_TEMPFAIL, "timed out");
	} else if (res->rcode != 0) {
		if ((rc = dns_rcode_text(res->rcode)) == NULL) {
			snprintf(buf, sizeof(buf), "RCODE %d", res->rcode);
			rc = buf;
		}
		dns_result_status(q, DNS_TEMPFAIL, rc);
	} else if (!res->havedata)
		dns_result_status(q, DNS_NODATA, "NODATA");
	else {
		while (res->data[n] != NULL)
			n++;
		rd = xcalloc(n > 0 ? n : 1, sizeof(*rd));
		for (i = 0; i < n; i++) {
			rd[i].data = (const uint8_t *)res->data[i];
			rd[i].len = res->len[i] > 0 ? (size_t)res->len[i] : 0;
		}
		dns_result_records(q, rd, n);
		free(rd);
	}
	if (q->res.a.status != DNS_OK)
		q->res.a.ttl = res->ttl > 0 ? (uint32_t)res->ttl : 0;
done:
	if (res != NULL)
		ub_resolve_free(res);
	dns_query_complete(q->d, q);
	dns_kick(q->d);		/* dns_ub_readable() dispatches anyway */
}

static void
dns_ub_start(struct dns *d, struct dns_query *q)
{
	int r;

	q->started = time_mono_usec();
	if (!d->ub_started) {
		sigset_t all, old;

		/*
		 * The first query starts libunbound's thread, which inherits
		 * our signal mask: block everything around it, so that the
		 * daemon's signals only ever reach the loop thread.
		 */
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		r = ub_resolve_async(d->ub, q->name, q->type, 1 /* IN */, q,
		    dns_ub_answer, &q->ub_id);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		d->ub_started = true;
	} else
		r = ub_resolve_async(d->ub, q->name, q->type, 1 /* IN */, q,
		    dns_ub_answer, &q->ub_id);
	if (r != 0) {
		q->ub_id = -1;
		dns_result_status(q, r == UB_SYNTAX ? DNS_PERMFAIL :
		    DNS_TEMPFAIL, r == UB_SYNTAX ? "invalid name" :
		    ub_strerror(r));
		dns_query_complete(d, q);
		dns_kick(d);
	}
}

static void
dns_ub_cancel(struct dns *d, struct dns_query *q)
{
	if (q->ub_id != -1)
		ub_cancel(d->ub, q->ub_id);
	q->ub_id = -1;
}

static void
dns_ub_destroy(struct dns *d)
{
	if (d->ev_ub != NULL)
		event_free(d->ev_ub);
	if (d->ub != NULL)
		ub_ctx_delete(d->ub);
}

static void
dns_ub_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;
	int r;

	(void)fd;
	(void)what;
	if ((r = ub_process(d->ub)) != 0)
		log_warn("dns: ub_process failed: %s", ub_strerror(r));
	dns_dispatch(d);
}

static const struct dns_backend dns_backend_unbound = {
	"unbound",
	dns_ub_start,
	dns_ub_cancel,
	dns_ub_destroy,
};

/*
 * "127.0.0.1:5353", "[::1]:53", "192.0.2.1", "::1" into unbound's
 * "addr@port". Returns 0 or -1.
 */
static int
dns_server_to_unbound(const char *s, char *out, size_t outsize)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port = "53", *colon, *error;
	uint8_t addr[16];
	uint64_t p;
	size_t n;
	int family = AF_INET;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (end == NULL)
			return -1;
		n = (size_t)(end - s - 1);
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return -1;
		s++;
		family = AF_INET6;
	} else if ((colon = strchr(s, ':')) != NULL &&
	    strchr(colon + 1, ':') == NULL) {
		n = (size_t)(colon - s);
		port = colon + 1;
	} else {
		n = strlen(s);
		if (colon != NULL)
			family = AF_INET6;	/* bare IPv6 address */
	}
	if (n == 0 || n >= sizeof(host))
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	if (inet_pton(family, host, addr) != 1)
		return -1;
	if (parse_u64(port, 1, 65535, &p, &error) == -1)
		return -1;
	if ((size_t)snprintf(out, outsize, "%s@%llu", host,
	    (unsigned long long)p) >= outsize)
		return -1;
	return 0;
}

/* ub_ctx_set_option() that names the option when it fails. */
static int
dns_ub_option(struct ub_ctx *ub, const char *opt, const char *val,
    char *err, size_t errlen)
{
	int r;

	if ((r = ub_ctx_set_option(ub, opt, val)) != 0) {
		snprintf(err, errlen, "libunbound option %s %s: %s", opt, val,
		    ub_strerror(r));
		return -1;
	}
	return 0;
}

/*
 * libunbound settings. Its defaults retry an unresponsive server for up
 * to two minutes; a mail server retries the whole delivery later anyway,
 * so a lookup gives up after a few seconds and reports a temporary
 * failure. infra-host-ttl stays short so that a server that was down is
 * asked again soon after it recovers.
 */
static const struct {
	const char *opt, *val;
} dns_ub_options[] = {
	/* Servers on loopback: local caches (127.0.0.53, a local unbound)
	 * and the tests' servers. libunbound refuses them by default. */
	{ "do-not-query-localhost:", "no" },
	/* Reverse zones of private networks go to the servers too: sites
	 * have PTRs for them (libunbound answers NXDOMAIN by default). */
	{ "unblock-lan-zones:", "yes" },
	{ "insecure-lan-zones:", "yes" },
	/* Records in the order the server gave them (RFC 5321 5.1 leaves
	 * the order of a host's addresses to the DNS). */
	{ "rrset-roundrobin:", "no" },
	{ "infra-host-ttl:", "60" },
	{ "infra-cache-max-rtt:", "2000" },
	{ "outbound-msg-retry:", "2" },
};

/*
 * libunbound answers some RFC 6761 special-use names itself (NXDOMAIN for
 * test., localhost PTRs for 127.in-addr.arpa.). A mail server asks its
 * servers, like the system resolver does: tests use .test and loopback
 * addresses. (The option "local-zone: NAME nodefault" does not reach a
 * libunbound context; removing the zone after finalising does.)
 */
static const char *const dns_ub_local_zones[] = {
	"test.",
	"127.in-addr.arpa.",
};

struct dns *
dns_new(struct event_base *base, const struct dns_config *cfg, char *err,
    size_t errlen)
{
	struct dns *d;
	char fwd[INET6_ADDRSTRLEN + 16];
	size_t i;
	int r, fd;

	d = dns_alloc(base, &dns_backend_unbound);
	dns_set_max_queries(d, cfg->max_queries);
	if ((d->ub = ub_ctx_create()) == NULL) {
		snprintf(err, errlen, "ub_ctx_create failed");
		goto fail;
	}
	/* A thread, not a forked process: it shares our memory limits and
	 * dies with us. */
	if ((r = ub_ctx_async(d->ub, 1)) != 0) {
		snprintf(err, errlen, "ub_ctx_async: %s", ub_strerror(r));
		goto fail;
	}
	for (i = 0; i < nitems(dns_ub_options); i++)
		if (dns_ub_option(d->ub, dns_ub_options[i].opt,
		    dns_ub_options[i].val, err, errlen) == -1)
			goto fail;
	if (cfg->dnssec) {
		if (access(DNS_ROOT_KEY, R_OK) == -1) {
			snprintf(err, errlen, "dnssec on needs the root trust "
			    "anchor %s: %s (Debian package dns-root-data)",
			    DNS_ROOT_KEY, strerror(errno));
			goto fail;
		}
		if ((r = ub_ctx_add_ta_file(d->ub, DNS_ROOT_KEY)) != 0) {
			snprintf(err, errlen, "trust anchor %s: %s",
			    DNS_ROOT_KEY, ub_strerror(r));
			goto fail;
		}
	} else if (dns_ub_option(d->ub, "module-config:", "iterator", err,
	    errlen) == -1)
		goto fail;	/* no validator module: no validation */
	for (i = 0; i < cfg->nservers; i++) {
		if (dns_server_to_unbound(cfg->servers[i], fwd,
		    sizeof(fwd)) == -1) {
			char esc[128];

			snprintf(err, errlen, "bad DNS server address \"%s\"",
			    log_escape(esc, sizeof(esc), cfg->servers[i],
			    strlen(cfg->servers[i])));
			goto fail;
		}
		if ((r = ub_ctx_set_fwd(d->ub, fwd)) != 0) {
			snprintf(err, errlen, "DNS server %s: %s", fwd,
			    ub_strerror(r));
			goto fail;
		}
	}
	/* Not /etc/hosts: mail routing follows the DNS only. */
	if (cfg->nservers == 0 &&
	    (r = ub_ctx_resolvconf(d->ub, NULL)) != 0) {
		snprintf(err, errlen, "reading /etc/resolv.conf: %s",
		    ub_strerror(r));
		goto fail;
	}
	/* ub_ctx_zone_remove() finalises the context: options come first. */
	for (i = 0; i < nitems(dns_ub_local_zones); i++)
		if ((r = ub_ctx_zone_remove(d->ub,
		    dns_ub_local_zones[i])) != 0) {
			snprintf(err, errlen, "libunbound zone %s: %s",
			    dns_ub_local_zones[i], ub_strerror(r));
			goto fail;
		}
	if ((fd = ub_fd(d->ub)) == -1) {
		snprintf(err, errlen, "ub_fd failed");
		goto fail;
	}
	d->ev_ub = event_new(base, fd, EV_READ | EV_PERSIST, dns_ub_readable,
	    d);
	if (d->ev_ub == NULL || event_add(d->ev_ub, NULL) == -1) {
		snprintf(err, errlen, "cannot watch the libunbound fd");
		goto fail;
	}
	return d;

fail:
	dns_free(d);
	return NULL;
}

/*
 * The fake backend.
 */

static bool
dns_fake_name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && ascii_strncasecmp(a, b, la) == 0;
}

static struct dns_fake_entry *
dns_fake_find(const struct dns *d, const char *name, uint16_t type,
    bool answers)
{
	struct dns_fake_entry *e;

	for (e = d->fake; e != NULL; e = e->next)
		if ((type == 0 || e->type == type) && e->has_answer ==
		    answers && dns_fake_name_eq(e->name, name))
			return e;
	return NULL;
}

static void
dns_fake_entry_clear(struct dns_fake_entry *e)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		free((void *)e->rd[i].data);
	free(e->rd);
	e->rd = NULL;
	e->n = 0;
}

static struct dns_fake_entry *
dns_fake_entry(struct dns *d, const char *name, uint16_t type, bool answers)
{
	struct dns_fake_entry *e;

	if ((e = dns_fake_find(d, name, type, answers)) != NULL)
		return e;
	e = xcalloc(1, sizeof(*e));
	e->name = xstrdup(name);
	e->type = type;
	e->has_answer = answers;
	e->next = d->fake;
	d->fake = e;
	return e;
}

void
dns_fake_set(struct dns *d, const char *name, uint16_t type,
    enum dns_status st, const char *const *values, size_t n)
{
	struct dns_fake_entry *e = dns_fake_entry(d, name, type, true);
	uint8_t buf[65535];
	size_t i, len;

	dns_fake_entry_clear(e);
	e->status = st;
	if (st != DNS_OK)
		return;
	e->rd = xcalloc(n > 0 ? n : 1, sizeof(*e->rd));
	for (i = 0; i < n; i++) {
		uint8_t *p;

		if (dns_rr_encode(type, values[i], buf, sizeof(buf),
		    &len) == -1)
			fatalx("dns_fake_set: cannot encode \"%s\" as type %u",
			    values[i], type);
		p = xmalloc(len > 0 ? len : 1);
		memcpy(p, buf, len);
		e->rd[i].data = p;
		e->rd[i].len = len;
		e->n++;
	}
}

unsigned int
dns_fake_count(const struct dns *d, const char *name, uint16_t type)
{
	const struct dns_fake_entry *e;
	unsigned int n = 0;

	for (e = d->fake; e != NULL; e = e->next)
		if (!e->has_answer && (type == 0 || e->type == type) &&
		    dns_fake_name_eq(e->name, name))
			n += e->count;
	return n;
}

/* Fill q's answer from the table, following CNAMEs like a resolver. */
static void
dns_fake_answer(struct dns *d, struct dns_query *q)
{
	const struct dns_fake_entry *e = NULL, *c;
	const char *name = q->name;
	char canon[DNS_NAME_MAX];
	size_t hops;
	uint8_t wire[256];
	size_t wlen;

	if (dns_rr_encode_name(q->name, wire, sizeof(wire), &wlen) == -1) {
		dns_result_status(q, DNS_PERMFAIL, "invalid name");
		return;
	}
	for (hops = 0; hops <= DNS_FAKE_CNAME_MAX; hops++) {
		if ((e = dns_fake_find(d, name, q->type, true)) != NULL)
			break;
		if (q->type == DNS_TYPE_CNAME)
			break;
		c = dns_fake_find(d, name, DNS_TYPE_CNAME, true);
		if (c == NULL || c->status != DNS_OK || c->n == 0)
			break;
		{
			size_t off = 0;

			if (dns_rr_parse_name(c->rd[0].data, c->rd[0].len,
			    &off, canon, sizeof(canon)) == -1)
				break;
		}
		dns_result_canon(q, canon);
		name = q->res.a.canonname;
	}
	if (e == NULL) {
		if (dns_fake_find(d, name, 0, true) != NULL)
			dns_result_status(q, DNS_NODATA, "NODATA");
		else
			dns_result_status(q, DNS_NXDOMAIN, "NXDOMAIN");
		return;
	}
	switch (e->status) {
	case DNS_OK:
		dns_result_records(q, e->rd, e->n);
		break;
	case DNS_NODATA:
		dns_result_status(q, e->status, "NODATA");
		break;
	case DNS_NXDOMAIN:
		dns_result_status(q, e->status, "NXDOMAIN");
		break;
	case DNS_TEMPFAIL:
		dns_result_status(q, e->status, "SERVFAIL");
		break;
	case DNS_PERMFAIL:
		dns_result_status(q, e->status, "malformed answer");
		break;
	}
}

static void
dns_fake_event(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	struct dns *d = q->d;

	(void)fd;
	(void)what;
	event_free(q->ev);
	q->ev = NULL;
	dns_fake_answer(d, q);
	dns_query_complete(d, q);
	dns_dispatch(d);
}

static void
dns_fake_start(struct dns *d, struct dns_query *q)
{
	dns_fake_entry(d, q->name, q->type, false)->count++;
	/*
	 * An active event, not a 0 s timer: active events run in the order
	 * they were activated, so answers come in FIFO order.
	 */
	if ((q->ev = event_new(d->base, -1, 0, dns_fake_event, q)) == NULL)
		fatalx("dns: event_new failed");
	event_active(q->ev, EV_TIMEOUT, 1);
}

static void
dns_fake_cancel(struct dns *d, struct dns_query *q)
{
	(void)d;
	if (q->ev != NULL)
		event_free(q->ev);
	q->ev = NULL;
}

static void
dns_fake_destroy(struct dns *d)
{
	struct dns_fake_entry *e, *next;

	for (e = d->fake; e != NULL; e = next) {
		next = e->next;
		dns_fake_entry_clear(e);
		free(e->name);
		free(e);
	}
}

static const struct dns_backend dns_backend_fake = {
	"fake",
	dns_fake_start,
	dns_fake_cancel,
	dns_fake_destroy,
};

struct dns *
dns_new_fake(struct event_base *base)
{
	return dns_alloc(base, &dns_backend_fake);
}
