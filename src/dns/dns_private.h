/*
 * dns_private.h: what dns.c shares with mx.c (the route lookup) and
 * nothing else. Not for use outside src/dns/.
 */
#ifndef PETREL_DNS_DNS_PRIVATE_H
#define PETREL_DNS_DNS_PRIVATE_H

#include <stdint.h>

#include "dns/dns.h"

/* A fresh request id (never 0), shared by queries and route lookups. */
uint64_t dns_next_id(struct dns *d);

/* mx.c: free every route lookup without callbacks (from dns_free()). */
void dns_route_free_all(struct dns *d);

/* mx.c: the head of the route list lives in struct dns. */
struct dns_route_req;
struct dns_route_req **dns_routes_head(struct dns *d);

#endif
