/*
 * spf.h: Sender Policy Framework (RFC 7208): a pure record parser, pure
 * macro expansion, and check_host() evaluated asynchronously over
 * dns/dns.h.
 *
 *   struct spf_request req = { .ip = "192.0.2.1",
 *       .mail_from = "user@example.com", .helo = "mx.example.net" };
 *   uint64_t id = spf_check(d, &req, cb, arg);
 *   ...
 *   spf_cancel(id);            (optional: no callback after it)
 *
 * The callback runs later from the event loop of d, never from inside
 * spf_check(), exactly once unless the check is cancelled first. It may
 * start new checks and cancel others. Cancel every check of a resolver
 * before dns_free() (its queries would never answer).
 */
#ifndef PETREL_MSGAUTH_SPF_H
#define PETREL_MSGAUTH_SPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"

struct buf;

/* The results of RFC 7208 section 2.6. */
enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};

/* "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror" */
const char *spf_result_name(enum spf_result r);

/*
 * The record (RFC 7208 section 12 ABNF).
 */
enum spf_mech {
	SPF_MECH_ALL,
	SPF_MECH_INCLUDE,
	SPF_MECH_A,
	SPF_MECH_MX,
	SPF_MECH_PTR,
	SPF_MECH_IP4,
	SPF_MECH_IP6,
	SPF_MECH_EXISTS,
	SPF_MOD_REDIRECT,
	SPF_MOD_EXP,
	SPF_MOD_UNKNOWN,
};

struct spf_term {
	enum spf_mech type;
	enum spf_result qual;	/* mechanisms: SPF_PASS ("+" or none),
				 * SPF_FAIL, SPF_SOFTFAIL, SPF_NEUTRAL */
	char *text;		/* the term as written (NUL-terminated) */
	char *name;		/* unknown modifier: its name; else NULL */
	char *spec;		/* domain-spec (include, a, mx, ptr, exists,
				 * redirect, exp) or the macro-string of an
				 * unknown modifier; NULL when absent */
	struct dns_addr net;	/* ip4, ip6 */
	int cidr4, cidr6;	/* prefix lengths: 32 and 128 unless given */
	bool uses_p;		/* spec contains %{p} */
};

/* Parsed terms in order; redirect and exp are NULL or point into terms. */
struct spf_record {
	struct spf_term *terms;
	size_t nterms;
	const struct spf_term *redirect;
	const struct spf_term *exp;
	unsigned int dns_terms;	/* include a mx ptr exists redirect */
};

/*
 * True if the TXT text starts with the version "v=spf1" (any case)
 * followed by a space or the end (RFC 7208 4.5).
 */
bool spf_record_is_spf1(const char *txt, size_t len);

/*
 * Parse a whole record (txt[0..len), any bytes). Returns a record to free
 * with spf_record_free(), or NULL with the reason for the permerror in
 * err ("unknown mechanism \"moo\"", "bad cidr length", ...). Strict: every
 * term is checked before anything is evaluated (RFC 7208 4.6), redirect
 * and exp at most once each, only printable ASCII separated by spaces.
 */
struct spf_record *spf_record_parse(const char *txt, size_t len, char *err,
    size_t errlen);
void spf_record_free(struct spf_record *rec);

/*
 * Macro expansion (RFC 7208 section 7).
 */
struct spf_macro_env {
	const char *sender;	/* %{s}: local@domain */
	const char *local;	/* %{l} */
	const char *sender_domain; /* %{o} */
	const char *domain;	/* %{d}: the current domain */
	const char *helo;	/* %{h} */
	struct dns_addr ip;	/* %{i} %{c} %{v}: AF_INET for IPv4 and
				 * IPv4-mapped clients */
	bool ip_upper;		/* %{i} of IPv6 with A-F, not a-f */
	const char *ptr;	/* %{p}: validated name; NULL: "unknown" */
	const char *receiver;	/* %{r}; NULL: "unknown" */
	uint64_t timestamp;	/* %{t} */
};

enum spf_macro_mode {
	SPF_MACRO_DOMAIN,	/* domain-spec: c, r, t refused; the result
				 * loses one trailing dot and is cut from
				 * the left to 253 octets at a label */
	SPF_MACRO_EXP,		/* explain-string: spaces, c r t too */
	SPF_MACRO_STRING,	/* an unknown modifier's macro-string:
				 * c, r, t refused */
};

/* Longest expansion built (before truncation); longer is an error. */
#define SPF_MACRO_MAX	4096

/*
 * Expand s[0..len) into out (reset first). env NULL only checks the
 * syntax. Returns 0, or -1 with a reason in *error_r (a syntax error, or
 * an expansion over SPF_MACRO_MAX).
 */
int spf_macro_expand(const char *s, size_t len, enum spf_macro_mode mode,
    const struct spf_macro_env *env, struct buf *out, const char **error_r);

/* True if s[0..len) is a valid RFC 7208 7.1 domain-spec. */
bool spf_domain_spec_valid(const char *s, size_t len, const char **error_r);

/*
 * %{i} of ip: dotted quad, or 32 dot-separated nibbles (upper-case hex when
 * upper). out needs 64 bytes.
 */
void spf_ip_dotted(const struct dns_addr *ip, bool upper, char *out,
    size_t outsize);

/*
 * check_host() (RFC 7208 section 4).
 */
struct spf_request {
	const char *ip;		/* the client: "192.0.2.1",
				 * "2001:db8::1", "::ffff:192.0.2.1" (an
				 * IPv4 client) */
	const char *mail_from;	/* the reverse-path's address; NULL or ""
				 * checks the HELO identity
				 * (postmaster@helo) */
	const char *helo;	/* HELO/EHLO argument ("" when none) */
	const char *receiver;	/* %{r}: this host's name (NULL:
				 * "unknown") */
	uint64_t timestamp;	/* %{t}; 0: now */
	const char *default_exp; /* fail without a usable exp=: this
				  * macro-string (NULL: SPF_DEFAULT_EXP) */
	unsigned int timeout_ms; /* the whole check (0: 20000): then
				  * temperror (RFC 7208 4.6.4) */
};

#define SPF_DEFAULT_EXP \
	"%{d} does not designate %{c} as permitted sender"

/* Valid during the callback only. */
struct spf_outcome {
	enum spf_result result;
	const char *identity;	/* "mailfrom" or "helo" */
	const char *domain;	/* the domain checked (the identity's) */
	const char *mechanism;	/* the top-level term that decided, as
				 * written ("-all", "include:x.example",
				 * "redirect=y.example"); NULL when the
				 * default (no match) or an error decided */
	const char *explanation; /* fail only: the exp= text or the default */
	const char *reason;	/* a short text for logs and headers:
				 * "matched -all", "no SPF record", the
				 * permerror or temperror cause */
	unsigned int dns_terms;	/* DNS-querying terms evaluated */
	unsigned int queries;	/* DNS queries made */
};

typedef void (*spf_cb)(void *arg, const struct spf_outcome *out);

/* Limits of RFC 7208 4.6.4. */
#define SPF_MAX_DNS_TERMS	10
#define SPF_MAX_MX_NAMES	10
#define SPF_MAX_PTR_NAMES	10
#define SPF_MAX_VOID		2
/* An overall bound on the queries of one check (the limits above keep a
 * check well below it; a bug must not loop). */
#define SPF_MAX_QUERIES		200

/*
 * Start check_host() for req on d. req and its strings are copied.
 * Returns the check's id (never 0); cb runs later, exactly once unless
 * spf_cancel() is called first. A malformed req->ip gives permerror.
 * Checks are kept per thread: start, cancel and run them on d's loop
 * thread.
 */
uint64_t spf_check(struct dns *d, const struct spf_request *req, spf_cb cb,
    void *arg);

/* Stop a check and free it: its callback will not run. Unknown ids are
 * ignored (the check may have completed). */
void spf_cancel(uint64_t id);

/* Checks of this thread not yet completed nor cancelled. */
size_t spf_running(void);

#endif
