/*
 * rr.h: pure parsers for the rdata of the record types Petrel uses, and
 * encoders from presentation form (for the fake resolver and tests).
 *
 * The parsers take rdata in uncompressed wire form, as libunbound hands
 * it over, and trust nothing in it: every length is checked against len,
 * a compression pointer or an extended label type is malformed, and the
 * whole rdata must be consumed. They return 0, or -1 for malformed data
 * (out is then unspecified but owns nothing).
 */
#ifndef PETREL_DNS_RR_H
#define PETREL_DNS_RR_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"

/*
 * A domain name at rdata[*off_r], presentation form as described at
 * DNS_NAME_MAX (lower case, no trailing dot, "" for the root) into out
 * (outsize >= DNS_NAME_MAX for every valid name); *off_r moves past it.
 */
int dns_rr_parse_name(const uint8_t *rdata, size_t len, size_t *off_r,
    char *out, size_t outsize);

int dns_rr_parse_a(const uint8_t *rdata, size_t len, struct dns_addr *out);
int dns_rr_parse_aaaa(const uint8_t *rdata, size_t len,
    struct dns_addr *out);
int dns_rr_parse_mx(const uint8_t *rdata, size_t len, struct dns_mx *out);
/* PTR and CNAME: the rdata is one name. */
int dns_rr_parse_ptr(const uint8_t *rdata, size_t len, char *out,
    size_t outsize);
/* Allocates out->data (free() it); at least one character-string. */
int dns_rr_parse_txt(const uint8_t *rdata, size_t len, struct dns_txt *out);
/* Allocates out->data (free() it). */
int dns_rr_parse_tlsa(const uint8_t *rdata, size_t len,
    struct dns_tlsa *out);

/*
 * Wire form of a presentation name ("mx.example.com", trailing dot
 * optional, "" or "." for the root, \. \\ and \DDD escapes). Returns 0 and
 * the length in *len_r, or -1 (bad syntax, a label over 63 or a name over
 * 255 octets, or outsize too small).
 */
int dns_rr_encode_name(const char *name, uint8_t *out, size_t outsize,
    size_t *len_r);

/*
 * rdata of type from presentation text, as dns_fake_set() takes it.
 * Returns 0 and the length in *len_r, or -1.
 */
int dns_rr_encode(uint16_t type, const char *text, uint8_t *out,
    size_t outsize, size_t *len_r);

#endif
