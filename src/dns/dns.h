/*
 * dns.h: asynchronous DNS over libunbound, plugged into a libevent loop,
 * and the RFC 5321 section 5.1 destination lookup built on it.
 *
 *   struct dns *d = dns_new(base, &cfg, err, sizeof(err));
 *   uint64_t id = dns_query(d, "example.com", DNS_TYPE_MX, cb, arg);
 *   ...
 *   dns_cancel(d, id);         (optional: no callback after it)
 *   dns_free(d);               (cancels everything, no callback after it)
 *
 * Every request carries a 64-bit id, never 0. Its callback runs later from
 * the event loop, never from inside the call that made the request, exactly
 * once unless the request is cancelled first. A callback may make new
 * requests, cancel others and even call dns_free().
 *
 * libunbound's own cache serves repeated lookups; nothing here caches.
 * dns_new_fake() makes the same object over an in-memory table for unit
 * tests: answers from it also arrive later from the loop.
 */
#ifndef PETREL_DNS_DNS_H
#define PETREL_DNS_DNS_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct dns;

/* Record types (RFC 1035, 3596, 6698), the values of the wire. */
enum dns_type {
	DNS_TYPE_A = 1,
	DNS_TYPE_NS = 2,
	DNS_TYPE_CNAME = 5,
	DNS_TYPE_SOA = 6,
	DNS_TYPE_PTR = 12,
	DNS_TYPE_MX = 15,
	DNS_TYPE_TXT = 16,
	DNS_TYPE_AAAA = 28,
	DNS_TYPE_TLSA = 52,
};

/*
 * A name in presentation form without the trailing dot, plus NUL. Labels'
 * bytes other than letters, digits and printable ASCII come out as \DDD,
 * '.' and '\' inside a label as \. and \\ (RFC 1035 5.1); a name that does
 * not fit is malformed.
 */
#define DNS_NAME_MAX	256

enum dns_status {
	DNS_OK,		/* n >= 1 records */
	DNS_NODATA,	/* the name exists, no record of that type */
	DNS_NXDOMAIN,	/* the name does not exist */
	DNS_TEMPFAIL,	/* SERVFAIL, REFUSED, timeout, network error,
			 * DNSSEC bogus: try again later */
	DNS_PERMFAIL,	/* an answer we cannot parse */
};

struct dns_addr {
	int family;		/* AF_INET (4 bytes used) or AF_INET6 */
	uint8_t addr[16];
};

struct dns_mx {
	uint16_t pref;
	char name[DNS_NAME_MAX];	/* lower case, no trailing dot; ""
					 * for the null MX target "." */
};

/* A TXT record: its character-strings concatenated, any byte allowed. */
struct dns_txt {
	char *data;		/* len bytes plus a NUL (not part of it) */
	size_t len;
};

struct dns_tlsa {
	uint8_t usage, selector, mtype;
	uint8_t *data;		/* certificate association data */
	size_t len;
};

/* One record's rdata as libunbound gives it: wire form, uncompressed. */
struct dns_rdata {
	const uint8_t *data;
	size_t len;
};

/*
 * The answer to one query, valid during the callback only. Exactly one of
 * the typed arrays is set for A/AAAA (addrs), MX (mx), TXT (txt), PTR and
 * CNAME (names), TLSA (tlsa), each with n entries in DNS order; the others
 * are NULL. raw holds the n rdatas of any type.
 */
struct dns_answer {
	enum dns_status status;
	uint16_t type;
	const char *qname;	/* as asked */
	const char *canonname;	/* after CNAMEs (libunbound follows them),
				 * no trailing dot; qname when there was
				 * none */
	bool secure;		/* DNSSEC-validated */
	uint32_t ttl;
	const char *error;	/* short text: "NXDOMAIN", "SERVFAIL",
				 * "timed out", ...; "" for DNS_OK */
	size_t n;
	const struct dns_addr *addrs;
	const struct dns_mx *mx;
	const struct dns_txt *txt;
	const char *const *names;
	const struct dns_tlsa *tlsa;
	const struct dns_rdata *raw;
};

typedef void (*dns_cb)(void *arg, const struct dns_answer *ans);

struct dns_config {
	const char *const *servers;	/* "127.0.0.1:5353", "[::1]:53",
					 * "192.0.2.1" (port 53); none:
					 * /etc/resolv.conf */
	size_t nservers;
	bool dnssec;			/* validate with the root trust
					 * anchor DNS_ROOT_KEY */
	unsigned int max_queries;	/* in flight at once (0: 100); the
					 * rest wait in FIFO order */
};

/* The root trust anchor file (Debian's dns-root-data). */
#define DNS_ROOT_KEY	"/usr/share/dns/root.key"

/*
 * A resolver on base. Returns NULL with a message in err on a bad server
 * address, a missing trust anchor or a libunbound failure. Never blocks
 * except to read /etc/resolv.conf or the trust anchor.
 */
struct dns *dns_new(struct event_base *base, const struct dns_config *cfg,
    char *err, size_t errlen);

/*
 * Ask for name's records of type. Returns the request's id (never 0); cb
 * runs later with the answer. name is copied.
 */
uint64_t dns_query(struct dns *d, const char *name, uint16_t type,
    dns_cb cb, void *arg);

/* Forget request id: its callback will not run. Unknown ids are ignored. */
void dns_cancel(struct dns *d, uint64_t id);

/* Cancel everything (no callback runs after) and free. NULL is a no-op. */
/* The event loop d runs on (its callbacks and timers belong there). */
struct event_base *dns_event_base(const struct dns *d);

void dns_free(struct dns *d);

/* Requests sent and not yet answered (running) and waiting for a slot. */
size_t dns_running(const struct dns *d);
size_t dns_waiting(const struct dns *d);

/* Change the cap on requests in flight (0: 100); waiting ones may start. */
void dns_set_max_queries(struct dns *d, unsigned int max);

/* "MX" for DNS_TYPE_MX, NULL for a type not listed in enum dns_type. */
const char *dns_type_name(uint16_t type);
/* The type for a name ("mx", any case), or 0. */
uint16_t dns_type_from_name(const char *name);
/* "OK", "NODATA", "NXDOMAIN", "TEMPFAIL", "PERMFAIL". */
const char *dns_status_name(enum dns_status st);

/*
 * The fake resolver for tests: answers come from a table filled with
 * dns_fake_set(), later from the loop like real ones (an activated event
 * per query, run in FIFO order; dns_running() counts the query until
 * then), within max_queries like real ones. A name with no entry at all
 * is NXDOMAIN; a name with entries for other types only is NODATA; a name
 * with a CNAME entry is followed (up to 8 links) as a resolver would, and
 * canonname says where it led.
 */
struct dns *dns_new_fake(struct event_base *base);

/*
 * Set the answer for (name, type), replacing an earlier one; names match
 * in any case, with or without the trailing dot. st DNS_OK (n == 0 is
 * NODATA) takes values[0..n) in presentation form: "192.0.2.1",
 * "2001:db8::1", "10 mx.example.com" ("0 ." for a null MX), the TXT text
 * itself (split into 255-byte character-strings; \DDD and \X stand for
 * one octet, as dns_answer_format() writes them), names for PTR and
 * CNAME, "3 1 1 a0b1..." for TLSA. Other statuses ignore values. Aborts on a
 * value it cannot encode (a bug in the test).
 */
void dns_fake_set(struct dns *d, const char *name, uint16_t type,
    enum dns_status st, const char *const *values, size_t n);

/* Queries sent for (name, type) so far; type 0 counts every type. */
unsigned int dns_fake_count(const struct dns *d, const char *name,
    uint16_t type);

/*
 * Presentation form of record i of ans (i < n) into buf: "192.0.2.1",
 * "10 mx.example.com", TXT text with bytes outside printable ASCII and
 * '\' as \DDD, names, "3 1 1 a0b1..." for TLSA, "\# LEN HEX" (RFC 3597)
 * for other types. Returns the length it needed (like snprintf; the result
 * is truncated when that is >= size), or -1 for i >= n.
 */
int dns_answer_format(const struct dns_answer *ans, size_t i, char *buf,
    size_t size);

/*
 * The destination of mail for a domain (RFC 5321 5.1).
 */
struct dns_route_opts {
	bool use_mx;		/* false: domain is a host ([host] in the
				 * configuration): its A/AAAA only; a numeric
				 * address needs no DNS at all */
	bool inet6;		/* AAAA too (first), else A only */
	unsigned int port;	/* filled into every target (0: 25) */
	/*
	 * This host's names: an MX host so named is this host; a host
	 * looked up without MX (use_mx false) only when the port is one of
	 * self_addrs' (any port without self_addrs).
	 */
	const char *const *self_names;
	size_t nself_names;
	/*
	 * This host's listening addresses: an MX host resolving to one is
	 * this host. A port of 0 matches every port, any other only a
	 * target with that port.
	 */
	const struct sockaddr_storage *self_addrs;
	size_t nself_addrs;
};

enum dns_route_kind {
	DNS_ROUTE_OK,
	DNS_ROUTE_TEMP,
	DNS_ROUTE_PERM,
};

struct dns_target {
	char host[DNS_NAME_MAX];	/* the MX host (or the domain) */
	uint16_t pref;			/* 0 for an implicit MX */
	struct sockaddr_storage addr;	/* with opts->port */
	socklen_t addrlen;
};

/* Valid during the callback only. */
struct dns_route {
	enum dns_route_kind kind;
	char reply[256];	/* not OK: "550 5.1.2 ..." for logs and
				 * bounces; OK: "" */
	const char *domain;
	const struct dns_target *targets;	/* to try in this order */
	size_t ntargets;			/* >= 1 when OK, else 0 */
};

typedef void (*dns_route_cb)(void *arg, const struct dns_route *r);

/* MX hosts considered at most (the best ones), addresses per host. */
#define DNS_ROUTE_MAX_HOSTS	10
#define DNS_ROUTE_MAX_ADDRS	16

/*
 * Look up where mail for domain goes. Returns an id for
 * dns_route_cancel() (never 0); cb runs later, exactly once unless
 * cancelled. domain, opts and the arrays it points to are copied.
 *
 * MX lookup: a temporary failure defers (451 4.4.3, never the A record
 * instead); NXDOMAIN is 550 5.1.2; no MX record means the domain's own
 * addresses (implicit MX, preference 0); a lone "MX 0 ." is 556 5.1.10
 * (RFC 7505). Hosts sorted by preference, equal ones in random order;
 * when this host is listed, it and every host of equal or worse
 * preference go (554 5.4.6 when nothing is left). Every target address,
 * in MX order, AAAA before A, each host's in DNS order. A host whose
 * lookups failed temporarily is skipped; no target at all is 451 4.4.3
 * when a lookup failed temporarily, else 550 5.4.4.
 */
uint64_t dns_route_lookup(struct dns *d, const char *domain,
    const struct dns_route_opts *opts, dns_route_cb cb, void *arg);

void dns_route_cancel(struct dns *d, uint64_t id);

#endif
