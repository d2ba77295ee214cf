/*
 * spf.c: check_host() (RFC 7208 section 4), evaluated asynchronously over
 * the resolver of dns/dns.h.
 *
 * Entry points: spf_check(), spf_cancel(), spf_running().
 *
 * A check is a small machine with at most one DNS query in flight: each
 * answer moves it on (spf_run() loops until it must wait again), so the
 * terms are evaluated strictly left to right and the first decisive
 * answer wins, as RFC 7208 4.6.2 describes. include pushes a frame (the
 * nested check_host()), redirect replaces the current frame's record; the
 * stack depth is bounded by the limit of 10 DNS-querying terms. The %{p}
 * macro's validated names are looked up once per check, when a term or
 * the explanation first needs them.
 *
 * SECURITY: everything evaluated comes from DNS (TXT, MX, PTR, A/AAAA
 * answers) or from the client (MAIL FROM, HELO, its address): all of it
 * is untrusted. Work is bounded by the RFC 7208 4.6.4 limits (10
 * DNS-querying terms, 10 MX or PTR names each, 2 void lookups), by
 * SPF_MAX_QUERIES per check and by an overall timer (temperror).
 * Names built by macros are checked (labels of 1..63 octets, 253 in all)
 * before any query, and bytes outside printable ASCII are escaped.
 * STANDARDS: RFC 7208 2.6 (results), 3.2-3.3 (records, joined strings),
 * 4.3-4.8 (check_host), 5 (mechanisms, 5.2 include table), 6.1 (redirect),
 * 6.2 (exp, failures ignored), 7 (macros).
 * OWNERSHIP: a check owns copies of its request and everything it
 * allocates; it is freed after its callback returns, or by spf_cancel().
 * Deliberate choices: a/mx/exists lookups that fail temporarily give
 * temperror (RFC 7208 5); a ptr mechanism's lookup errors only fail to
 * match (5.5); a target name that is not a valid DNS name (an empty or
 * over-long label) does not match, without a query (4.3 by analogy, as
 * the suite allows); void lookups are those of the mechanisms' own first
 * query (a, mx, ptr, exists), never exp=; a macro syntax error anywhere
 * in the record, exp= included, is permerror (4.6), while one in the
 * explanation text only falls back to the default text (6.2). pyspf is
 * more lenient with both; a differential run on mutated suite records
 * found no other difference.
 */
#include "msgauth/spf.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "dns/dns.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"

/* Frames: the top check plus one per include in progress. */
#define SPF_MAX_DEPTH	(SPF_MAX_DNS_TERMS + 2)
#define SPF_DEFAULT_TIMEOUT_MS	20000

enum spf_wait {
	SPF_W_NONE,
	SPF_W_RECORD,		/* TXT of a frame's domain */
	SPF_W_A,		/* a mechanism */
	SPF_W_MX,		/* mx mechanism: the MX list */
	SPF_W_MX_HOST,		/* an MX host's addresses */
	SPF_W_PTR,		/* ptr mechanism: the PTR list */
	SPF_W_PTR_HOST,		/* a PTR name's addresses */
	SPF_W_EXISTS,
	SPF_W_PV_PTR,		/* %{p}: the PTR list */
	SPF_W_PV_HOST,		/* %{p}: a name's addresses */
	SPF_W_EXP,		/* exp= TXT */
};

struct spf_frame {
	char domain[DNS_NAME_MAX];
	struct spf_record *rec;
	size_t next;		/* the term being evaluated */
	bool include;		/* a nested check_host() of an include */
	bool redirected;	/* reached by redirect: none is permerror */
};

struct spf_names {
	char (*v)[DNS_NAME_MAX];
	size_t n, i;
};

struct spf_check {
	uint64_t id;
	struct spf_check *next;
	struct dns *d;
	struct event *start_ev;
	struct event *timer;
	uint64_t qid;		/* the query in flight, 0 when none */
	enum spf_wait wait;
	spf_cb cb;
	void *arg;

	/* The request, copied. */
	bool bad_ip;
	bool ip_upper;
	struct dns_addr ip;
	char *sender, *local, *sender_domain, *helo, *receiver;
	char *default_exp;
	const char *identity;
	uint64_t timestamp;
	unsigned int timeout_ms;

	struct spf_frame frames[SPF_MAX_DEPTH];
	size_t depth;		/* frames in use */

	unsigned int dns_terms, voids, queries;
	char target[DNS_NAME_MAX];	/* the current term's target */
	struct spf_names names;		/* MX or PTR names being tried */
	bool matched;		/* the current term matched */

	/* %{p}: 0 not looked up, 1 looking up, 2 done. */
	int pv_state;
	struct spf_names pv_names;
	char (*pv_valid)[DNS_NAME_MAX];
	size_t pv_nvalid;

	/* Outcome. */
	bool explaining;	/* a fail at the top: exp= next */
	char *mechanism;
	char reason[256];
	struct buf text;	/* expansions */
	struct buf explanation;
};

static _Thread_local struct spf_check *spf_checks;
static _Thread_local size_t spf_nchecks;
static uint64_t spf_last_id;

static void spf_run(struct spf_check *);
static void spf_finish(struct spf_check *, enum spf_result, const char *,
    ...) __attribute__((format(printf, 3, 4)));
static void spf_answer(void *, const struct dns_answer *);

/*
 * Names and addresses.
 */

/* A query name: 1..253 octets, labels of 1..63, no trailing dot. */
static bool
spf_name_ok(const char *s)
{
	size_t len = strlen(s), l = 0, i;

	if (len == 0 || len > 253)
		return false;
	for (i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (l == 0 || l > 63)
				return false;
			l = 0;
		} else
			l++;
	}
	return true;
}

/* True when name is domain or one of its subdomains (any case). */
static bool
spf_name_under(const char *name, const char *domain)
{
	size_t ln = strlen(name), ld = strlen(domain);

	if (ld > 0 && domain[ld - 1] == '.')
		ld--;
	if (ln > 0 && name[ln - 1] == '.')
		ln--;
	if (ld == 0 || ln < ld)
		return false;
	if (ascii_strncasecmp(name + ln - ld, domain, ld) != 0)
		return false;
	return ln == ld || name[ln - ld - 1] == '.';
}

static bool
spf_addr_match(const struct dns_addr *ip, const struct dns_addr *net,
    int prefix)
{
	int full = prefix / 8, rest = prefix % 8;

	if (ip->family != net->family)
		return false;
	if (memcmp(ip->addr, net->addr, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((ip->addr[full] ^ net->addr[full]) &
	    (0xff << (8 - rest)) & 0xff) == 0;
}

/* The client, IPv4-mapped IPv6 taken as IPv4 (RFC 7208 5 par. 9). */
static int
spf_parse_client(const char *s, struct dns_addr *ip, bool *upper_r)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };
	const char *p;

	*upper_r = false;
	memset(ip, 0, sizeof(*ip));
	if (s == NULL)
		return -1;
	if (inet_pton(AF_INET, s, ip->addr) == 1) {
		ip->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, ip->addr) != 1)
		return -1;
	ip->family = AF_INET6;
	if (memcmp(ip->addr, mapped, sizeof(mapped)) == 0) {
		memmove(ip->addr, ip->addr + 12, 4);
		memset(ip->addr + 4, 0, 12);
		ip->family = AF_INET;
		return 0;
	}
	/*
	 * RFC 7208 7.3 leaves the case of %{i}'s nibbles open (DNS ignores
	 * it); explanations show it. We follow the address as given: the
	 * openspf suite writes "CAFE:BABE::1" and wants E.B.A.B, RFC 7208
	 * 7.4 writes 2001:db8::cb01 and shows b.c.
	 */
	for (p = s; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'F')
			*upper_r = true;
	return 0;
}

/* The reverse name of ip under in-addr.arpa or ip6.arpa. */
static void
spf_reverse_name(const struct dns_addr *ip, char *out, size_t outsize)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	if (ip->family == AF_INET) {
		snprintf(out, outsize, "%u.%u.%u.%u.in-addr.arpa",
		    ip->addr[3], ip->addr[2], ip->addr[1], ip->addr[0]);
		return;
	}
	for (i = 16; i > 0 && o + 4 < outsize; i--) {
		out[o++] = hex[ip->addr[i - 1] & 0xf];
		out[o++] = '.';
		out[o++] = hex[ip->addr[i - 1] >> 4];
		out[o++] = '.';
	}
	out[o] = '\0';
	strlcat(out, "ip6.arpa", outsize);
}

/*
 * Presentation form for dns_query(): '\' and bytes outside printable
 * ASCII escaped (a macro may have put any byte of the client's text
 * there); spaces are left as they are, which both the fake and
 * libunbound take literally.
 */
static void
spf_query_name(const char *name, char *out, size_t outsize)
{
	size_t o = 0;

	for (; *name != '\0' && o + 5 < outsize; name++) {
		unsigned char c = (unsigned char)*name;

		if (c == '\\') {
			out[o++] = '\\';
			out[o++] = '\\';
		} else if (c < 0x20 || c > 0x7e) {
			snprintf(out + o, outsize - o, "\\%03u", c);
			o += 4;
		} else
			out[o++] = (char)c;
	}
	out[o] = '\0';
}

/*
 * The check's lifecycle.
 */

static struct spf_frame *
spf_top(struct spf_check *c)
{
	return &c->frames[c->depth - 1];
}

static void
spf_names_clear(struct spf_names *n)
{
	free(n->v);
	n->v = NULL;
	n->n = n->i = 0;
}

static void
spf_check_free(struct spf_check *c)
{
	size_t i;

	if (c->qid != 0)
		dns_cancel(c->d, c->qid);
	if (c->start_ev != NULL)
		event_free(c->start_ev);
	if (c->timer != NULL)
		event_free(c->timer);
	for (i = 0; i < SPF_MAX_DEPTH; i++)
		spf_record_free(c->frames[i].rec);
	spf_names_clear(&c->names);
	spf_names_clear(&c->pv_names);
	free(c->pv_valid);
	free(c->sender);
	free(c->local);
	free(c->sender_domain);
	free(c->helo);
	free(c->receiver);
	free(c->default_exp);
	free(c->mechanism);
	buf_free(&c->text);
	buf_free(&c->explanation);
	free(c);
}

static void
spf_unlink(struct spf_check *c)
{
	struct spf_check **pp;

	for (pp = &spf_checks; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			spf_nchecks--;
			return;
		}
	}
}

static void
spf_finish(struct spf_check *c, enum spf_result r, const char *fmt, ...)
{
	struct spf_outcome o;
	char reason[sizeof(c->reason)];
	va_list ap;

	/* Into a copy first: callers may pass c->reason itself. */
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	strlcpy(c->reason, reason, sizeof(c->reason));
	memset(&o, 0, sizeof(o));
	o.result = r;
	o.identity = c->identity;
	o.domain = c->frames[0].domain;
	o.mechanism = c->mechanism;
	o.explanation = r == SPF_FAIL ? buf_str(&c->explanation) : NULL;
	o.reason = c->reason;
	o.dns_terms = c->dns_terms;
	o.queries = c->queries;
	spf_unlink(c);
	if (c->qid != 0) {
		dns_cancel(c->d, c->qid);
		c->qid = 0;
	}
	c->cb(c->arg, &o);
	spf_check_free(c);
}

/*
 * Send one query for a name in presentation form (one from an answer);
 * the answer continues the machine.
 */
static void
spf_query_pres(struct spf_check *c, const char *name, uint16_t type,
    enum spf_wait w)
{
	c->queries++;
	c->wait = w;
	c->qid = dns_query(c->d, name, type, spf_answer, c);
}

/* The same for a name of raw octets (the client's, a macro's). */
static void
spf_query(struct spf_check *c, const char *name, uint16_t type,
    enum spf_wait w)
{
	char qname[DNS_NAME_MAX * 4];

	spf_query_name(name, qname, sizeof(qname));
	spf_query_pres(c, qname, type, w);
}

static uint16_t
spf_addr_type(const struct spf_check *c)
{
	return c->ip.family == AF_INET ? DNS_TYPE_A : DNS_TYPE_AAAA;
}

static void
spf_env(struct spf_check *c, const char *domain, struct spf_macro_env *env)
{
	size_t i;

	memset(env, 0, sizeof(*env));
	env->sender = c->sender;
	env->local = c->local;
	env->sender_domain = c->sender_domain;
	env->domain = domain;
	env->helo = c->helo;
	env->ip = c->ip;
	env->ip_upper = c->ip_upper;
	env->receiver = c->receiver;
	env->timestamp = c->timestamp;
	env->ptr = NULL;
	/* RFC 7208 7.3: a validated name under <domain> first. */
	for (i = 0; i < c->pv_nvalid && env->ptr == NULL; i++)
		if (spf_name_under(c->pv_valid[i], domain))
			env->ptr = c->pv_valid[i];
	if (env->ptr == NULL && c->pv_nvalid > 0)
		env->ptr = c->pv_valid[0];
}

/*
 * Expand a domain-spec into c->target. Returns 1 (a valid name), 0 (not
 * a name one can query: no match) or -1 (the check is finished).
 */
static int
spf_expand_target(struct spf_check *c, const char *spec)
{
	struct spf_macro_env env;
	const char *why;

	if (spec == NULL) {
		strlcpy(c->target, spf_top(c)->domain, sizeof(c->target));
		return 1;
	}
	spf_env(c, spf_top(c)->domain, &env);
	if (spf_macro_expand(spec, strlen(spec), SPF_MACRO_DOMAIN, &env,
	    &c->text, &why) == -1) {
		spf_finish(c, SPF_PERMERROR, "%s", why);
		return -1;
	}
	if (strlcpy(c->target, buf_str(&c->text), sizeof(c->target)) >=
	    sizeof(c->target) || !spf_name_ok(c->target))
		return 0;
	return 1;
}

/* What a step of the machine did. */
enum spf_step {
	SPF_GO,		/* more to do now */
	SPF_STOP,	/* a query is in flight, or the check is finished
			 * (and freed) */
};

/* %{p} needed and not looked up yet: start it. */
static bool
spf_need_ptr(struct spf_check *c, bool uses_p)
{
	char rev[DNS_NAME_MAX];

	if (!uses_p || c->pv_state == 2)
		return false;
	c->pv_state = 1;
	spf_reverse_name(&c->ip, rev, sizeof(rev));
	spf_query(c, rev, DNS_TYPE_PTR, SPF_W_PV_PTR);
	return true;
}

static void
spf_push(struct spf_check *c, const char *domain, bool include)
{
	struct spf_frame *f = &c->frames[c->depth++];

	memset(f, 0, sizeof(*f));
	strlcpy(f->domain, domain, sizeof(f->domain));
	f->include = include;
}

static enum spf_step
spf_fetch(struct spf_check *c)
{
	spf_query(c, spf_top(c)->domain, DNS_TYPE_TXT, SPF_W_RECORD);
	return SPF_STOP;
}

static enum spf_step spf_term_done(struct spf_check *);

/*
 * A frame's check_host() has returned r: pass, fail, softfail or neutral
 * (none and the errors end the whole check where they happen). At the
 * top this is the result (a fail wants its explanation first); an
 * include's result decides whether the include term matched (RFC 7208
 * 5.2), and the including frame goes on. Recurses once per include
 * level at most (SPF_MAX_DEPTH).
 */
static enum spf_step
spf_frame_done(struct spf_check *c, enum spf_result r, const char *how)
{
	struct spf_frame *f = spf_top(c);

	if (!f->include) {
		if (r != SPF_FAIL) {
			spf_finish(c, r, "%s", how);
			return SPF_STOP;
		}
		strlcpy(c->reason, how, sizeof(c->reason));
		c->explaining = true;
		return SPF_GO;
	}
	spf_record_free(f->rec);
	f->rec = NULL;
	c->depth--;
	c->matched = r == SPF_PASS;
	return spf_term_done(c);
}

/* The current term's outcome is known (c->matched): act on it. */
static enum spf_step
spf_term_done(struct spf_check *c)
{
	struct spf_frame *f = spf_top(c);
	const struct spf_term *t = &f->rec->terms[f->next];
	char how[300];

	spf_names_clear(&c->names);
	if (!c->matched) {
		f->next++;
		return SPF_GO;
	}
	c->matched = false;
	if (c->depth == 1) {
		free(c->mechanism);
		c->mechanism = xstrdup(t->text);
	}
	snprintf(how, sizeof(how), "%s matched %s", f->domain, t->text);
	return spf_frame_done(c, t->qual, how);
}

static bool
spf_count_term(struct spf_check *c, const struct spf_term *t)
{
	if (++c->dns_terms > SPF_MAX_DNS_TERMS) {
		spf_finish(c, SPF_PERMERROR, "more than %d DNS-querying terms "
		    "(at %s)", SPF_MAX_DNS_TERMS, t->text);
		return false;
	}
	return true;
}

/* A void lookup (RFC 7208 4.6.4); false when over the limit (finished). */
static bool
spf_void(struct spf_check *c)
{
	if (++c->voids > SPF_MAX_VOID) {
		spf_finish(c, SPF_PERMERROR, "more than %d void lookups",
		    SPF_MAX_VOID);
		return false;
	}
	return true;
}

/* Evaluate term f->next. */
static enum spf_step
spf_term(struct spf_check *c)
{
	struct spf_frame *f = spf_top(c);
	const struct spf_term *t = &f->rec->terms[f->next];
	char rev[DNS_NAME_MAX];
	int r;

	if (spf_need_ptr(c, t->uses_p))
		return SPF_STOP;
	switch (t->type) {
	case SPF_MECH_ALL:
		c->matched = true;
		break;
	case SPF_MECH_IP4:
		c->matched = spf_addr_match(&c->ip, &t->net, t->cidr4);
		break;
	case SPF_MECH_IP6:
		c->matched = spf_addr_match(&c->ip, &t->net, t->cidr6);
		break;
	case SPF_MECH_INCLUDE:
		if (!spf_count_term(c, t) ||
		    (r = spf_expand_target(c, t->spec)) == -1)
			return SPF_STOP;
		if (r == 0) {
			spf_finish(c, SPF_PERMERROR, "include target is not "
			    "a valid name (%s)", t->text);
			return SPF_STOP;
		}
		if (c->depth == SPF_MAX_DEPTH) {
			spf_finish(c, SPF_PERMERROR, "includes nested too "
			    "deep");
			return SPF_STOP;
		}
		spf_push(c, c->target, true);
		return spf_fetch(c);
	case SPF_MECH_A:
	case SPF_MECH_MX:
	case SPF_MECH_PTR:
	case SPF_MECH_EXISTS:
		if (!spf_count_term(c, t) ||
		    (r = spf_expand_target(c, t->spec)) == -1)
			return SPF_STOP;
		if (r == 0) {
			c->matched = false;
			break;
		}
		if (t->type == SPF_MECH_A)
			spf_query(c, c->target, spf_addr_type(c), SPF_W_A);
		else if (t->type == SPF_MECH_MX)
			spf_query(c, c->target, DNS_TYPE_MX, SPF_W_MX);
		else if (t->type == SPF_MECH_EXISTS)
			spf_query(c, c->target, DNS_TYPE_A, SPF_W_EXISTS);
		else {
			spf_reverse_name(&c->ip, rev, sizeof(rev));
			spf_query(c, rev, DNS_TYPE_PTR, SPF_W_PTR);
		}
		return SPF_STOP;
	default:
		/* Modifiers are not evaluated in order (RFC 7208 6). */
		c->matched = false;
		break;
	}
	return spf_term_done(c);
}

/* No term matched: redirect= or neutral (RFC 7208 4.7, 6.1). */
static enum spf_step
spf_no_match(struct spf_check *c)
{
	struct spf_frame *f = spf_top(c);
	const struct spf_term *t = f->rec->redirect;
	int r;

	if (t == NULL)
		return spf_frame_done(c, SPF_NEUTRAL, "no term matched");
	if (spf_need_ptr(c, t->uses_p) || !spf_count_term(c, t) ||
	    (r = spf_expand_target(c, t->spec)) == -1)
		return SPF_STOP;
	if (r == 0) {
		spf_finish(c, SPF_PERMERROR, "redirect target is not a valid "
		    "name (%s)", t->text);
		return SPF_STOP;
	}
	if (c->depth == 1) {
		free(c->mechanism);
		c->mechanism = xstrdup(t->text);
	}
	/* The target's record replaces this one, and its exp= with it. */
	spf_record_free(f->rec);
	f->rec = NULL;
	f->next = 0;
	f->redirected = true;
	strlcpy(f->domain, c->target, sizeof(f->domain));
	return spf_fetch(c);
}

/* A fail without a usable exp=: the default text, and the end. */
static void
spf_explain_default(struct spf_check *c)
{
	struct spf_macro_env env;
	const char *why;

	spf_env(c, spf_top(c)->domain, &env);
	if (spf_macro_expand(c->default_exp, strlen(c->default_exp),
	    SPF_MACRO_EXP, &env, &c->explanation, &why) == -1) {
		buf_reset(&c->explanation);
		(void)buf_append_str(&c->explanation, c->default_exp);
	}
	spf_finish(c, SPF_FAIL, "%s", c->reason);
}

/* The explanation of a fail (RFC 7208 6.2): problems are ignored. */
static enum spf_step
spf_explain(struct spf_check *c)
{
	/* A fail to explain came from the record of the top frame:
	 * NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
	const struct spf_term *t = spf_top(c)->rec->exp;
	struct spf_macro_env env;
	const char *why;

	if (t == NULL) {
		spf_explain_default(c);
		return SPF_STOP;
	}
	if (spf_need_ptr(c, t->uses_p))
		return SPF_STOP;
	spf_env(c, spf_top(c)->domain, &env);
	if (spf_macro_expand(t->spec, strlen(t->spec), SPF_MACRO_DOMAIN,
	    &env, &c->text, &why) == -1 || strlcpy(c->target,
	    buf_str(&c->text), sizeof(c->target)) >= sizeof(c->target) ||
	    !spf_name_ok(c->target)) {
		spf_explain_default(c);
		return SPF_STOP;
	}
	spf_query(c, c->target, DNS_TYPE_TXT, SPF_W_EXP);
	return SPF_STOP;
}

static enum spf_step
spf_step(struct spf_check *c)
{
	struct spf_frame *f = spf_top(c);

	if (c->queries >= SPF_MAX_QUERIES) {
		spf_finish(c, SPF_PERMERROR, "more than %d DNS queries",
		    SPF_MAX_QUERIES);
		return SPF_STOP;
	}
	if (c->explaining)
		return spf_explain(c);
	if (f->rec == NULL)
		return spf_fetch(c);
	if (f->next < f->rec->nterms)
		return spf_term(c);
	return spf_no_match(c);
}

/* Run until a query is in flight or the check is over (a loop: records
 * of many terms do not grow the stack). */
static void
spf_run(struct spf_check *c)
{
	while (spf_step(c) == SPF_GO)
		;
}

static void
spf_go(struct spf_check *c, enum spf_step s)
{
	if (s == SPF_GO)
		spf_run(c);
}

/*
 * Answers.
 */

static void
spf_answer_record(struct spf_check *c, const struct dns_answer *a)
{
	struct spf_frame *f = spf_top(c);
	size_t i, n = 0, which = 0;
	char err[256];

	if (a->status == DNS_TEMPFAIL || a->status == DNS_PERMFAIL) {
		spf_finish(c, SPF_TEMPERROR, "DNS error for TXT %s: %s",
		    f->domain, a->error);
		return;
	}
	/* RFC 7208 4.5: records starting "v=spf1" and a space or the end;
	 * the others are none of our business. */
	for (i = 0; a->status == DNS_OK && a->txt != NULL && i < a->n; i++) {
		if (spf_record_is_spf1(a->txt[i].data, a->txt[i].len)) {
			n++;
			which = i;
		}
	}
	if (n > 1) {
		spf_finish(c, SPF_PERMERROR, "%zu SPF records at %s", n,
		    f->domain);
		return;
	}
	if (n == 0) {
		/* RFC 7208 5.2 (include: none is permerror), 6.1. */
		if (f->include || f->redirected)
			spf_finish(c, SPF_PERMERROR, "no SPF record at %s "
			    "(%s)", f->domain, f->include ? "include" :
			    "redirect");
		else
			spf_finish(c, SPF_NONE, "no SPF record at %s",
			    f->domain);
		return;
	}
	f->rec = spf_record_parse(a->txt[which].data, a->txt[which].len,
	    err, sizeof(err));
	if (f->rec == NULL) {
		spf_finish(c, SPF_PERMERROR, "%s: %s", f->domain, err);
		return;
	}
	f->next = 0;
	spf_run(c);
}

/* The next MX or PTR name's addresses, or the term's end (no match). */
static void
spf_next_host(struct spf_check *c, enum spf_wait w)
{
	if (c->names.i < c->names.n) {
		spf_query_pres(c, c->names.v[c->names.i++], spf_addr_type(c),
		    w);
		return;
	}
	c->matched = false;
	spf_go(c, spf_term_done(c));
}

static bool
spf_any_addr(struct spf_check *c, const struct dns_answer *a, int cidr4,
    int cidr6)
{
	size_t i;

	for (i = 0; a->status == DNS_OK && a->addrs != NULL && i < a->n; i++)
		if (spf_addr_match(&c->ip, &a->addrs[i],
		    c->ip.family == AF_INET ? cidr4 : cidr6))
			return true;
	return false;
}

/* The first max names of an MX or PTR answer, without the null MX. */
static void
spf_names_take(struct spf_names *n, const struct dns_answer *a, size_t max)
{
	size_t i;

	spf_names_clear(n);
	if (a->status != DNS_OK || a->n == 0)
		return;
	n->v = xcalloc(a->n < max ? a->n : max, sizeof(*n->v));
	for (i = 0; i < a->n && i < max; i++) {
		const char *s = a->mx != NULL ? a->mx[i].name :
		    a->names != NULL ? a->names[i] : "";

		if (s[0] == '\0')
			continue;	/* the null MX "." (RFC 7505) */
		strlcpy(n->v[n->n++], s, sizeof(n->v[0]));
	}
}

static void
spf_answer_exp(struct spf_check *c, const struct dns_answer *a)
{
	struct spf_macro_env env;
	const char *why;

	/* RFC 7208 6.2: exactly one record, valid text, else ignored. */
	if (a->status != DNS_OK || a->txt == NULL || a->n != 1 ||
	    spf_macro_expand(a->txt[0].data, a->txt[0].len, SPF_MACRO_EXP,
	    NULL, NULL, &why) == -1) {
		spf_explain_default(c);
		return;
	}
	/* %{p} in the text: look it up, then ask for the text again. */
	if (c->pv_state != 2 && (strstr(a->txt[0].data, "%{p") != NULL ||
	    strstr(a->txt[0].data, "%{P") != NULL)) {
		spf_need_ptr(c, true);
		return;
	}
	spf_env(c, spf_top(c)->domain, &env);
	if (spf_macro_expand(a->txt[0].data, a->txt[0].len, SPF_MACRO_EXP,
	    &env, &c->explanation, &why) == -1) {
		spf_explain_default(c);
		return;
	}
	spf_finish(c, SPF_FAIL, "%s", c->reason);
}

static void
spf_answer(void *arg, const struct dns_answer *a)
{
	struct spf_check *c = arg;
	struct spf_frame *f = spf_top(c);
	const struct spf_term *t = f->rec != NULL && f->next <
	    f->rec->nterms ? &f->rec->terms[f->next] : NULL;
	bool isvoid = a->status == DNS_NXDOMAIN || a->status == DNS_NODATA ||
	    (a->status == DNS_OK && a->n == 0);
	bool temp = a->status == DNS_TEMPFAIL || a->status == DNS_PERMFAIL;
	enum spf_wait w = c->wait;
	size_t i, k;

	c->qid = 0;
	c->wait = SPF_W_NONE;
	/* A mechanism's lookup: the frame is at that term of its record. */
	if (t == NULL && (w == SPF_W_A || w == SPF_W_MX ||
	    w == SPF_W_MX_HOST || w == SPF_W_PTR || w == SPF_W_PTR_HOST ||
	    w == SPF_W_EXISTS))
		fatalx("spf: an answer for no term");
	switch (w) {
	case SPF_W_RECORD:
		spf_answer_record(c, a);
		return;
	case SPF_W_A:
	case SPF_W_EXISTS:
		if (temp) {
			spf_finish(c, SPF_TEMPERROR, "DNS error for %s: %s",
			    a->qname, a->error);
			return;
		}
		if (isvoid && !spf_void(c))
			return;
		c->matched = w == SPF_W_EXISTS ? !isvoid :
		    spf_any_addr(c, a, t->cidr4, t->cidr6);
		spf_go(c, spf_term_done(c));
		return;
	case SPF_W_MX:
		if (temp) {
			spf_finish(c, SPF_TEMPERROR, "DNS error for MX %s: "
			    "%s", a->qname, a->error);
			return;
		}
		if (isvoid && !spf_void(c))
			return;
		/* RFC 7208 4.6.4: more than 10 MX names is permerror. */
		if (a->status == DNS_OK && a->n > SPF_MAX_MX_NAMES) {
			spf_finish(c, SPF_PERMERROR, "more than %d MX names "
			    "at %s", SPF_MAX_MX_NAMES, a->qname);
			return;
		}
		spf_names_take(&c->names, a, SPF_MAX_MX_NAMES);
		spf_next_host(c, SPF_W_MX_HOST);
		return;
	case SPF_W_MX_HOST:
		if (temp) {
			spf_finish(c, SPF_TEMPERROR, "DNS error for %s: %s",
			    a->qname, a->error);
			return;
		}
		if (spf_any_addr(c, a, t->cidr4, t->cidr6)) {
			c->matched = true;
			spf_go(c, spf_term_done(c));
			return;
		}
		spf_next_host(c, SPF_W_MX_HOST);
		return;
	case SPF_W_PTR:
		/* RFC 7208 5.5: a PTR lookup error fails to match; only
		 * the first 10 names count (4.6.4), and only names under
		 * the target can match, so only those are looked up. */
		if (isvoid && !spf_void(c))
			return;
		spf_names_take(&c->names, a, SPF_MAX_PTR_NAMES);
		for (i = 0, k = 0; i < c->names.n; i++)
			if (spf_name_under(c->names.v[i], c->target))
				memmove(c->names.v[k++], c->names.v[i],
				    sizeof(c->names.v[0]));
		c->names.n = k;
		spf_next_host(c, SPF_W_PTR_HOST);
		return;
	case SPF_W_PTR_HOST:
		/* Errors skip the name (RFC 7208 5.5). */
		if (spf_any_addr(c, a, 32, 128)) {
			c->matched = true;
			spf_go(c, spf_term_done(c));
			return;
		}
		spf_next_host(c, SPF_W_PTR_HOST);
		return;
	case SPF_W_PV_PTR:
		spf_names_take(&c->pv_names, a, SPF_MAX_PTR_NAMES);
		free(c->pv_valid);
		c->pv_valid = xcalloc(c->pv_names.n > 0 ? c->pv_names.n : 1,
		    sizeof(*c->pv_valid));
		c->pv_nvalid = 0;
		break;
	case SPF_W_PV_HOST:
		if (spf_any_addr(c, a, 32, 128))
			strlcpy(c->pv_valid[c->pv_nvalid++],
			    c->pv_names.v[c->pv_names.i - 1],
			    sizeof(c->pv_valid[0]));
		break;
	case SPF_W_EXP:
		spf_answer_exp(c, a);
		return;
	case SPF_W_NONE:
		fatalx("spf: an answer in no state");
	}
	/* %{p}: validate the next name, or go back to what needed it. */
	if (c->pv_names.i < c->pv_names.n) {
		spf_query_pres(c, c->pv_names.v[c->pv_names.i++],
		    spf_addr_type(c), SPF_W_PV_HOST);
		return;
	}
	c->pv_state = 2;
	spf_run(c);
}

/*
 * Start, timer, cancel.
 */

static void
spf_start(evutil_socket_t fd, short what, void *arg)
{
	struct spf_check *c = arg;
	const char *dom = c->sender_domain;
	size_t len;

	(void)fd;
	(void)what;
	event_free(c->start_ev);
	c->start_ev = NULL;
	if (c->bad_ip) {
		spf_finish(c, SPF_PERMERROR, "bad client address");
		return;
	}
	/*
	 * RFC 7208 4.3: a domain that is not a multi-label FQDN (a domain
	 * literal, a bare host name, an empty or over-long label) is none.
	 */
	len = strlen(dom);
	if (len > 0 && dom[len - 1] == '.')
		len--;
	if (len == 0 || len >= DNS_NAME_MAX || dom[0] == '[' ||
	    memchr(dom, '.', len) == NULL) {
		strlcpy(c->frames[0].domain, dom, sizeof(c->frames[0].domain));
		c->depth = 1;
		spf_finish(c, SPF_NONE, "not a domain name");
		return;
	}
	spf_push(c, "", false);
	memcpy(c->frames[0].domain, dom, len);
	c->frames[0].domain[len] = '\0';
	if (!spf_name_ok(c->frames[0].domain)) {
		spf_finish(c, SPF_NONE, "not a domain name");
		return;
	}
	spf_run(c);
}

static void
spf_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct spf_check *c = arg;

	(void)fd;
	(void)what;
	if (c->depth == 0)
		c->depth = 1;
	spf_finish(c, SPF_TEMPERROR, "timed out after %u ms", c->timeout_ms);
}

uint64_t
spf_check(struct dns *d, const struct spf_request *req, spf_cb cb,
    void *arg)
{
	struct event_base *base = dns_event_base(d);
	struct spf_check *c = xcalloc(1, sizeof(*c));
	const char *mf = req->mail_from, *at;
	struct timeval tv;

	c->id = __atomic_add_fetch(&spf_last_id, 1, __ATOMIC_RELAXED);
	c->d = d;
	c->cb = cb;
	c->arg = arg;
	c->bad_ip = spf_parse_client(req->ip, &c->ip, &c->ip_upper) == -1;
	c->helo = xstrdup(req->helo != NULL ? req->helo : "");
	if (mf == NULL || mf[0] == '\0') {
		/* RFC 7208 2.3: the HELO identity, postmaster@helo. */
		c->identity = "helo";
		c->local = xstrdup("postmaster");
		c->sender_domain = xstrdup(c->helo);
	} else {
		c->identity = "mailfrom";
		if ((at = strrchr(mf, '@')) == NULL) {
			c->local = xstrdup("postmaster");
			c->sender_domain = xstrdup(mf);
		} else {
			/* RFC 7208 4.3: no local-part is "postmaster". */
			c->local = at == mf ? xstrdup("postmaster") :
			    xstrndup(mf, (size_t)(at - mf));
			c->sender_domain = xstrdup(at + 1);
		}
	}
	c->sender = xasprintf("%s@%s", c->local, c->sender_domain);
	c->receiver = req->receiver != NULL ? xstrdup(req->receiver) : NULL;
	c->default_exp = xstrdup(req->default_exp != NULL ? req->default_exp :
	    SPF_DEFAULT_EXP);
	c->timestamp = req->timestamp != 0 ? req->timestamp :
	    (uint64_t)time(NULL);
	c->timeout_ms = req->timeout_ms != 0 ? req->timeout_ms :
	    SPF_DEFAULT_TIMEOUT_MS;
	buf_init(&c->text, SPF_MACRO_MAX);
	buf_init(&c->explanation, SPF_MACRO_MAX);
	if ((c->start_ev = event_new(base, -1, 0, spf_start, c)) == NULL ||
	    (c->timer = evtimer_new(base, spf_timeout, c)) == NULL)
		fatalx("spf: event_new failed");
	tv.tv_sec = c->timeout_ms / 1000;
	tv.tv_usec = (c->timeout_ms % 1000) * 1000;
	evtimer_add(c->timer, &tv);
	event_active(c->start_ev, EV_TIMEOUT, 1);
	c->next = spf_checks;
	spf_checks = c;
	spf_nchecks++;
	return c->id;
}

void
spf_cancel(uint64_t id)
{
	struct spf_check *c;

	for (c = spf_checks; c != NULL; c = c->next) {
		if (c->id == id) {
			spf_unlink(c);
			spf_check_free(c);
			return;
		}
	}
}

size_t
spf_running(void)
{
	return spf_nchecks;
}
