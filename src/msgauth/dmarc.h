/*
 * dmarc.h: DMARC (RFC 7489) building blocks: the policy record parser,
 * identifier alignment, asynchronous policy discovery over src/dns, the
 * evaluation of one message (a pure function) and what to do with a
 * message that has no single From: domain.
 *
 *   struct dmarc_from f;                           the author domain
 *   dmarc_from_domains(values, lens, n, &f);
 *   if (!dmarc_from_verdict(&f, DMARC_FROM_DEFAULT, &v)) -> v says all
 *   id = dmarc_lookup(d, f.domains[0], cb, arg);   later: cb(arg, pol)
 *   dmarc_policy_copy(&mine, pol);                 (to keep it)
 *   dmarc_evaluate(&in, &v);                       in.policy = &mine
 *   dmarc_policy_clear(&mine);
 *
 * SECURITY: records come from the DNS and From: values from the message:
 * both untrusted. The parser reads at most the given length, runs in
 * linear time without recursion, and bounds what it keeps (DMARC_URIS_MAX
 * URIs of at most DMARC_URI_MAX octets per list).
 * STANDARDS: RFC 7489 3.1 (alignment), 3.2 (Organizational Domain, see
 * orgdomain.h), 6.3 (tags), 6.4 (formal definition), 6.6.1 (author
 * domain), 6.6.2 (evaluation), 6.6.3 (policy discovery), 6.6.4 (pct and
 * the disposition), 6.7; RFC 6376 3.2 (the tag-list syntax DMARC reuses).
 */
#ifndef PETREL_MSGAUTH_DMARC_H
#define PETREL_MSGAUTH_DMARC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msgauth/orgdomain.h"

struct dns;

/* The p= and sp= values (RFC 7489 6.4 dmarc-request). */
enum dmarc_request {
	DMARC_REQ_UNSET,	/* sp= absent: p applies */
	DMARC_REQ_NONE,
	DMARC_REQ_QUARANTINE,
	DMARC_REQ_REJECT,
};

enum dmarc_align {
	DMARC_ALIGN_RELAXED,	/* same Organizational Domain */
	DMARC_ALIGN_STRICT,	/* the same name */
};

/* fo= options (a set). */
#define DMARC_FO_0	0x1
#define DMARC_FO_1	0x2
#define DMARC_FO_D	0x4
#define DMARC_FO_S	0x8

/* rf= formats (a set): the IANA registry has only "afrf". */
#define DMARC_RF_AFRF	0x1

/* URIs kept per rua=/ruf= list (more are ignored: RFC 7489 6.2 lets a
 * receiver limit them, and it must send to at least two), and the longest
 * URI kept (a longer one is a syntax error). */
#define DMARC_URIS_MAX	8
#define DMARC_URI_MAX	512

struct dmarc_uri {
	char *uri;		/* as written (percent-encoding kept) */
	uint64_t max_size;	/* "!10m": 10485760; 0 for no limit */
};

struct dmarc_record {
	enum dmarc_request p;	/* NONE, QUARANTINE or REJECT */
	enum dmarc_request sp;	/* UNSET when absent */
	/*
	 * p= missing or invalid, or sp= invalid, but a valid rua=: the
	 * record reads as "v=DMARC1; p=none" with its rua= (RFC 7489
	 * 6.6.3), and p is NONE, sp UNSET.
	 */
	bool p_fallback;
	enum dmarc_align adkim, aspf;	/* default relaxed */
	unsigned int pct;		/* 0..100, default 100 */
	unsigned int fo;		/* DMARC_FO_*, default DMARC_FO_0 */
	unsigned int rf;		/* DMARC_RF_*, default DMARC_RF_AFRF */
	uint32_t ri;			/* seconds, default 86400 */
	struct dmarc_uri rua[DMARC_URIS_MAX];
	size_t nrua;
	struct dmarc_uri ruf[DMARC_URIS_MAX];
	size_t nruf;
};

/*
 * True when txt[0..len) starts with the tag "v=DMARC1" (white space
 * allowed around '=', then the end, ';' or white space): the records
 * RFC 7489 6.6.3 keeps at a _dmarc name; all others are discarded.
 */
bool dmarc_record_is_dmarc(const char *txt, size_t len);

/*
 * Parse the DMARC record txt[0..len) (need not be NUL-terminated; a NUL
 * inside is an error) into *rec. Returns 0, or -1 with *error_r (if not
 * NULL) set to a static English phrase and *rec cleared (nothing to
 * free).
 *
 * Strict, as RFC 7489 6.3/6.4 and RFC 6376 3.2 write it:
 *   - the tag-list syntax (tag names: a letter then letters, digits,
 *     '_'; values: printable ASCII but ';', white space only between
 *     words; folding white space allowed); a duplicate tag is an error;
 *     empty elements (";;", a trailing ";") are allowed;
 *   - v=DMARC1 first (the value is case-sensitive, RFC 7489 6.4 spells
 *     it in %x); tag names and the keyword values (none, r, s, afrf...)
 *     are case-insensitive, as ABNF strings are;
 *   - p= must be present, anywhere after v (RFC 7489 6.3 "in that order"
 *     is read as v first, as OpenDMARC and Mail::DMARC read it);
 *   - an error in any known tag voids the record (adkim, aspf, pct not
 *     in 0..100, ri not a 32-bit number, fo, a malformed rua/ruf URI,
 *     an rf= format not in the registry: RFC 7489 6.3 "MAY ignore the
 *     entire DMARC record", as OpenDMARC does);
 *   - except p= and sp=: missing or invalid ones with at least one valid
 *     rua= URI give p_fallback (RFC 7489 6.6.3), otherwise an error;
 *   - unknown tags are ignored (their value must still be a tag-value).
 * Free with dmarc_record_clear().
 */
int dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *rec,
    const char **error_r);

/* Free what rec holds and zero it; the zeroed record may be cleared again. */
void dmarc_record_clear(struct dmarc_record *rec);

/* Deep copy (dst is overwritten, not cleared). */
void dmarc_record_copy(struct dmarc_record *dst,
    const struct dmarc_record *src);

/* "none", "quarantine", "reject"; "" for DMARC_REQ_UNSET. */
const char *dmarc_request_name(enum dmarc_request r);

/*
 * RFC 7489 3.1: is the authenticated domain auth (a DKIM d= that
 * verified, or the SPF-authenticated domain) aligned with the From domain
 * from? Strict: the same name, ASCII case-insensitive, one trailing dot
 * ignored. Relaxed: the same Organizational Domain (orgdomain.h). An
 * invalid name (empty, empty labels, leading dots...) is never aligned.
 */
bool dmarc_aligned(const char *from, const char *auth, enum dmarc_align mode);

/*
 * Policy discovery (RFC 7489 6.6.3).
 */
enum dmarc_policy_status {
	DMARC_POLICY_FOUND,	/* one valid record: rec */
	DMARC_POLICY_ABSENT,	/* no DMARC record at either name, or
				 * several at one: DMARC does not apply */
	DMARC_POLICY_TEMPERROR,	/* a DNS lookup failed temporarily */
	DMARC_POLICY_PERMERROR,	/* the one record there is invalid, or an
				 * answer that cannot be parsed */
};

struct dmarc_policy {
	enum dmarc_policy_status status;
	char reason[160];	/* short English: "no DMARC record",
				 * "2 DMARC records at _dmarc.x", ... */
	char from_domain[ORGDOMAIN_MAX];	/* normalised */
	char org_domain[ORGDOMAIN_MAX];		/* its Organizational
						 * Domain */
	char record_domain[ORGDOMAIN_MAX];	/* where the record was
						 * found ("" if not) */
	/* The record came from the Organizational Domain and the From
	 * domain is below it: sp= applies (RFC 7489 6.3 sp). */
	bool at_org;
	struct dmarc_record rec;	/* FOUND only; else cleared */
};

/* Copy for keeping (dst is overwritten); clear with dmarc_policy_clear(). */
void dmarc_policy_copy(struct dmarc_policy *dst,
    const struct dmarc_policy *src);
void dmarc_policy_clear(struct dmarc_policy *pol);

/* pol valid during the call only. */
typedef void (*dmarc_lookup_cb)(void *arg, const struct dmarc_policy *pol);

/*
 * Discover the policy of from_domain (a From: domain, normalised here):
 * the TXT records at _dmarc.<from_domain>; only those that are DMARC
 * records count (dmarc_record_is_dmarc()); none (NXDOMAIN, NODATA or
 * only other TXT) -> the same at _dmarc.<Organizational Domain> when that
 * is another name; several -> ABSENT; one -> FOUND, or PERMERROR when it
 * is invalid. TEMPFAIL -> TEMPERROR (no fallback); an answer the resolver
 * could not parse (DNS_PERMFAIL) -> PERMERROR. A _dmarc name over 253
 * octets cannot exist: it counts as no record without being asked.
 *
 * Returns the lookup's id (never 0); cb runs later from the event loop,
 * exactly once unless cancelled, never from inside this call. Returns 0,
 * with no callback ever, when from_domain is not a valid name or not
 * ASCII (not yet: RFC 7489 6.6.1 A-label conversion of U-labels): the
 * caller records permerror. cb may call dmarc_lookup() and
 * dmarc_lookup_cancel(), and dns_free() after dmarc_lookup_cancel_all().
 *
 * Loop thread only (the pending lookups are a process-wide list, which a
 * lock guards, but their DNS objects are per loop).
 */
uint64_t dmarc_lookup(struct dns *d, const char *from_domain,
    dmarc_lookup_cb cb, void *arg);

/* No callback after this. Unknown ids are ignored. */
void dmarc_lookup_cancel(struct dns *d, uint64_t id);

/*
 * Cancel every lookup on d, without callbacks. Call it before dns_free(d)
 * when lookups may be pending (dns_free() does not know them).
 */
void dmarc_lookup_cancel_all(struct dns *d);

/* Lookups pending on d (tests). */
size_t dmarc_lookup_pending(const struct dns *d);

/*
 * Evaluation (RFC 7489 6.6.2, 6.6.4, 6.7): pure, no DNS.
 */
enum dmarc_result {
	DMARC_RESULT_NONE,	/* no policy: DMARC does not apply */
	DMARC_RESULT_PASS,
	DMARC_RESULT_FAIL,
	DMARC_RESULT_TEMPERROR,
	DMARC_RESULT_PERMERROR,
};

enum dmarc_disposition {
	DMARC_DISP_NONE,	/* deliver as usual */
	DMARC_DISP_QUARANTINE,
	DMARC_DISP_REJECT,
};

/* A DKIM signature's outcome: its d= and whether it verified. */
struct dmarc_dkim {
	const char *domain;
	bool pass;
};

struct dmarc_input {
	const char *from_domain;
	const struct dmarc_policy *policy;	/* from dmarc_lookup() */
	/*
	 * The SPF result for the RFC 5321.MailFrom domain, or for the HELO
	 * identity when MAIL FROM was <> (RFC 7489 3.1.2 via RFC 7208
	 * 2.4); only pass counts.
	 */
	bool spf_pass;
	const char *spf_domain;
	const struct dmarc_dkim *dkim;		/* ndkim signatures */
	size_t ndkim;
	/* A uniformly random number in [0, 100): the policy applies when
	 * roll < pct (RFC 7489 6.6.4). */
	unsigned int roll;
};

struct dmarc_verdict {
	enum dmarc_result result;
	enum dmarc_request policy;	/* p= or sp= that applied; UNSET
					 * without a policy */
	enum dmarc_disposition disposition;
	bool sampled_out;	/* failed, but pct left the policy out: reject
				 * became quarantine, quarantine none (RFC
				 * 7489 6.6.4) */
	bool spf_aligned;	/* SPF passed and is aligned */
	bool dkim_aligned;	/* a DKIM pass is aligned: dkim[dkim_index] */
	size_t dkim_index;
	const char *reason;	/* static English, for logs and comments */
};

/*
 * Decide one message for one From domain. Result: the policy's status
 * when not FOUND (ABSENT -> none, TEMPERROR, PERMERROR; disposition
 * none); else pass when SPF or one DKIM signature passed and is aligned
 * under aspf=/adkim=, fail otherwise. The policy applied is sp= when the
 * record came from the Organizational Domain above the From domain and
 * has one, p= otherwise. A failure gets the policy's disposition when
 * roll < pct; otherwise reject becomes quarantine and quarantine none
 * (RFC 7489 6.6.4). A DKIM or SPF temperror is not an input: only passes
 * count (RFC 7489 does not say more; a temporary failure fails).
 */
void dmarc_evaluate(const struct dmarc_input *in, struct dmarc_verdict *v);

/*
 * For several From domains evaluated one by one (RFC 7489 6.6.1: "apply
 * the most strict policy selected among the checks that fail"): fold v
 * into acc, initialised with the first verdict. The stricter disposition
 * wins; results rank fail, temperror, permerror, none, pass (pass only
 * when all passed).
 */
void dmarc_verdict_merge(struct dmarc_verdict *acc,
    const struct dmarc_verdict *v);

/* "none", "pass", "fail", "temperror", "permerror" (RFC 8601 names). */
const char *dmarc_result_name(enum dmarc_result r);
/* "none", "quarantine", "reject". */
const char *dmarc_disposition_name(enum dmarc_disposition d);

struct buf;

/*
 * One key=value line per verdict for logs and, later, aggregate reports
 * (RFC 7489 7.2 needs the policy published, the identifiers and their
 * results): appended to out without a newline, e.g.
 *   dmarc from=example.com policy_domain=example.com p=reject sp=none
 *   pct=100 adkim=r aspf=r result=fail disposition=reject sampled_out=0
 *   spf=example.net/pass/unaligned dkim=example.com/fail/unaligned
 * Untrusted names are escaped (log_escape_word()); at most DMARC_FROM_MAX
 * signatures are listed. Returns 0, or -1 when out is full.
 */
int dmarc_verdict_format(struct buf *out, const struct dmarc_input *in,
    const struct dmarc_verdict *v);

struct authres;

/*
 * Add the dmarc result of v to an Authentication-Results field (RFC 7489
 * 11.2): "dmarc=pass (p=reject) header.from=example.org", for a failure
 * "dmarc=fail (p=reject dis=quarantine) header.from=...", for none and
 * the errors "dmarc=permerror (reason) header.from=...". from_domain may
 * be NULL (no header.from). Returns authres_add()'s result.
 */
int dmarc_authres(struct authres *ar, const struct dmarc_verdict *v,
    const char *from_domain);

/*
 * The author domain (RFC 7489 6.6.1) from a message's From: fields.
 */
#define DMARC_FROM_MAX	8	/* distinct domains kept */

enum dmarc_from_status {
	DMARC_FROM_ONE,		/* one domain (in one or more addresses) */
	DMARC_FROM_NONE,	/* no From: field, or no address in it */
	DMARC_FROM_MULTIPLE,	/* several different domains */
	DMARC_FROM_INVALID,	/* a From: that does not parse, or an
				 * address whose domain is not a name (a
				 * domain literal, bad syntax) */
};

struct dmarc_from {
	enum dmarc_from_status status;
	size_t ndomains;	/* distinct domains seen (may exceed
				 * DMARC_FROM_MAX) */
	/* Normalised, the first DMARC_FROM_MAX distinct ones in order;
	 * domains[0] is the author domain when ONE. */
	char domains[DMARC_FROM_MAX][ORGDOMAIN_MAX];
};

/*
 * Read values[i][0..lens[i]) for i < n, the values of the message's
 * From: fields (unfolded or not), with mailaddr_header_parse() (RFC 5322
 * 3.4 with its unambiguous obsolete forms; hdraddr.h). Domains compare
 * after normalisation (case, trailing dot). Always fills *f.
 */
void dmarc_from_domains(const char *const *values, const size_t *lens,
    size_t n, struct dmarc_from *f);

/* Flags of dmarc_from_verdict(); DMARC_FROM_DEFAULT is both. */
enum dmarc_from_flag {
	DMARC_FROM_REJECT_MULTIPLE = 1 << 0,
	DMARC_FROM_REJECT_INVALID = 1 << 1,
};
#define DMARC_FROM_DEFAULT \
	(DMARC_FROM_REJECT_MULTIPLE | DMARC_FROM_REJECT_INVALID)

/*
 * What to do with f. Returns true when the caller goes on: ONE (look up
 * and evaluate domains[0]), or MULTIPLE without DMARC_FROM_REJECT_MULTIPLE
 * and at most DMARC_FROM_MAX domains (evaluate each, fold with
 * dmarc_verdict_merge(): RFC 7489 6.6.1). Returns false with *v filled
 * otherwise:
 *   NONE: result none, disposition none. RFC 7489 6.6.1 leaves messages
 *     without a From: domain out of its scope; there is no domain whose
 *     policy could apply (RFC 5322 requires From:, which is for the
 *     session's own checks to enforce);
 *   MULTIPLE with DMARC_FROM_REJECT_MULTIPLE (as the issue asks by
 *     default), or with more than DMARC_FROM_MAX domains (evaluating them
 *     all is a denial-of-service lever): result permerror, disposition
 *     reject;
 *   INVALID: result permerror; disposition reject with
 *     DMARC_FROM_REJECT_INVALID, else none. Rejecting is the default
 *     because a From: we cannot read may show a reader any domain, and
 *     letting it through unjudged would be a way around DMARC; without the
 *     flag, mail from broken mailers (an unquoted '@' in a display name,
 *     "a@b.example." with a dot at the end) is delivered, marked
 *     dmarc=permerror.
 */
bool dmarc_from_verdict(const struct dmarc_from *f, unsigned int flags,
    struct dmarc_verdict *v);

#endif
