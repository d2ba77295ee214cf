/*
 * throttle.c: failed logins per client address, to slow down password
 * guessing across sessions (a fresh connection does not start over).
 *
 * Entry points: sasl_throttle_new/free(), sasl_throttle_delay(),
 * sasl_throttle_failures(), sasl_throttle_success(), sasl_throttle_size().
 *
 * A hash table (chained, seeded hash) for lookups plus a list in order of
 * last use; at max_entries the least recently used address is dropped, so
 * an attacker with many addresses costs bounded memory and can at worst
 * make us forget other addresses early (they then wait less, never more).
 * The delay only slows the reply to a failed login, on the session's own
 * timer: other sessions are never slowed.
 *
 * SECURITY: the keys are client addresses chosen by the network; the hash
 * is seeded at start so nobody can aim many addresses at one chain. IPv6
 * addresses are keyed by their /64: one host usually has a whole /64.
 * STANDARDS: RFC 4291 2.5.5.2 (IPv4-mapped IPv6 addresses).
 * OWNERSHIP: the table owns its entries.
 */
#include "sasl/sasl.h"

#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

#define SASL_THROTTLE_FAILURES_MAX	1000000	/* saturates here */

struct sasl_tkey {
	uint8_t family;		/* 4, 6, or 0: not a numeric address */
	uint8_t addr[16];	/* IPv4 in the first 4, IPv6's /64 in 8;
				 * else a digest of the string */
};

struct sasl_tentry {
	struct sasl_tkey key;
	unsigned int failures;
	uint64_t last;		/* ms of the last failure */
	struct sasl_tentry *next;	/* hash chain */
	TAILQ_ENTRY(sasl_tentry) lru;
};

struct sasl_throttle {
	struct sasl_tentry **buckets;
	size_t nbuckets;	/* a power of two */
	size_t size;
	size_t max;
	uint64_t delay_ms;
	uint64_t max_delay_ms;
	uint64_t forget_ms;
	uint64_t seed;
	TAILQ_HEAD(, sasl_tentry) lru;	/* least recently used first */
};

/* FNV-1a over len bytes, started from seed. */
static uint64_t
sasl_throttle_fnv(uint64_t h, const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void
sasl_throttle_key(struct sasl_throttle *t, const char *addr,
    struct sasl_tkey *k)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };
	struct in6_addr a6;
	struct in_addr a4;
	uint64_t h;

	memset(k, 0, sizeof(*k));
	if (inet_pton(AF_INET, addr, &a4) == 1) {
		k->family = 4;
		memcpy(k->addr, &a4, 4);
	} else if (inet_pton(AF_INET6, addr, &a6) == 1) {
		if (memcmp(a6.s6_addr, mapped, sizeof(mapped)) == 0) {
			k->family = 4;
			memcpy(k->addr, a6.s6_addr + 12, 4);
		} else {
			k->family = 6;
			memcpy(k->addr, a6.s6_addr, 8);
		}
	} else {
		/* A unix socket name or the like: rare, digest it. */
		h = sasl_throttle_fnv(t->seed ^ 0xcbf29ce484222325ULL, addr,
		    strlen(addr));
		memcpy(k->addr, &h, sizeof(h));
		h = sasl_throttle_fnv(h, addr, strlen(addr));
		memcpy(k->addr + 8, &h, sizeof(h));
	}
}

static size_t
sasl_throttle_bucket(const struct sasl_throttle *t, const struct sasl_tkey *k)
{
	uint64_t h = sasl_throttle_fnv(t->seed, k, sizeof(*k));

	/* FNV's low bits mix poorly: fold the high half in. */
	return (size_t)((h ^ (h >> 32)) & (t->nbuckets - 1));
}

static struct sasl_tentry **
sasl_throttle_find(struct sasl_throttle *t, const struct sasl_tkey *k)
{
	struct sasl_tentry **pp;

	pp = &t->buckets[sasl_throttle_bucket(t, k)];
	while (*pp != NULL && memcmp(&(*pp)->key, k, sizeof(*k)) != 0)
		pp = &(*pp)->next;
	return pp;
}

/* Unlink *pp from its chain and the LRU list, and free it. */
static void
sasl_throttle_remove(struct sasl_throttle *t, struct sasl_tentry **pp)
{
	struct sasl_tentry *e = *pp;

	*pp = e->next;
	TAILQ_REMOVE(&t->lru, e, lru);
	free(e);
	t->size--;
}

struct sasl_throttle *
sasl_throttle_new(size_t max_entries, uint64_t delay_ms,
    uint64_t max_delay_ms, uint64_t forget_ms)
{
	struct sasl_throttle *t;

	t = xcalloc(1, sizeof(*t));
	t->max = max_entries > 0 ? max_entries : SASL_THROTTLE_ENTRIES_DEFAULT;
	t->nbuckets = 16;
	while (t->nbuckets < t->max && t->nbuckets < ((size_t)1 << 30))
		t->nbuckets <<= 1;
	t->buckets = xcalloc(t->nbuckets, sizeof(*t->buckets));
	t->delay_ms = delay_ms;
	t->max_delay_ms = max_delay_ms;
	t->forget_ms = forget_ms;
	if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(t->seed))
		t->seed = time_mono_usec() ^ (uint64_t)(uintptr_t)t;
	TAILQ_INIT(&t->lru);
	return t;
}

void
sasl_throttle_free(struct sasl_throttle *t)
{
	struct sasl_tentry *e;

	if (t == NULL)
		return;
	while ((e = TAILQ_FIRST(&t->lru)) != NULL) {
		TAILQ_REMOVE(&t->lru, e, lru);
		free(e);
	}
	free(t->buckets);
	free(t);
}

static bool
sasl_throttle_expired(const struct sasl_throttle *t,
    const struct sasl_tentry *e, uint64_t now)
{
	return now >= e->last && now - e->last >= t->forget_ms;
}

uint64_t
sasl_throttle_delay(struct sasl_throttle *t, const char *addr, uint64_t now)
{
	struct sasl_tentry **pp, *e;
	struct sasl_tkey k;
	uint64_t delay;
	unsigned int i;

	sasl_throttle_key(t, addr, &k);
	pp = sasl_throttle_find(t, &k);
	if ((e = *pp) != NULL) {
		if (sasl_throttle_expired(t, e, now))
			e->failures = 0;
		TAILQ_REMOVE(&t->lru, e, lru);
	} else {
		if (t->size >= t->max) {
			struct sasl_tentry *old = TAILQ_FIRST(&t->lru);

			sasl_throttle_remove(t, sasl_throttle_find(t,
			    &old->key));
		}
		e = xcalloc(1, sizeof(*e));
		e->key = k;
		/* Found again: the eviction may have changed the chain. */
		pp = sasl_throttle_find(t, &k);
		e->next = *pp;
		*pp = e;
		t->size++;
	}
	TAILQ_INSERT_TAIL(&t->lru, e, lru);
	if (e->failures < SASL_THROTTLE_FAILURES_MAX)
		e->failures++;
	e->last = now;

	delay = t->delay_ms;
	for (i = 1; delay > 0 && i < e->failures &&
	    delay < t->max_delay_ms; i++)
		delay = delay > UINT64_MAX / 2 ? UINT64_MAX : delay * 2;
	return delay < t->max_delay_ms ? delay : t->max_delay_ms;
}

unsigned int
sasl_throttle_failures(struct sasl_throttle *t, const char *addr,
    uint64_t now)
{
	struct sasl_tentry *e;
	struct sasl_tkey k;

	sasl_throttle_key(t, addr, &k);
	e = *sasl_throttle_find(t, &k);
	if (e == NULL || sasl_throttle_expired(t, e, now))
		return 0;
	return e->failures;
}

void
sasl_throttle_success(struct sasl_throttle *t, const char *addr)
{
	struct sasl_tentry **pp;
	struct sasl_tkey k;

	sasl_throttle_key(t, addr, &k);
	pp = sasl_throttle_find(t, &k);
	if (*pp != NULL)
		sasl_throttle_remove(t, pp);
}

size_t
sasl_throttle_size(const struct sasl_throttle *t)
{
	return t->size;
}
