/*
 * check.c: the per-message authentication check (check.h): SPF from MAIL
 * on, DKIM over the streamed content, then the DKIM keys, the
 * verifications (on the caller's offload) and DMARC discovery, the DMARC
 * evaluation and the Authentication-Results field.
 *
 * Entry points: msgauth_start(), msgauth_spf_wait(), msgauth_feed(),
 * msgauth_end(), msgauth_free(), msgauth_disposition_name().
 *
 * Every caller-visible callback goes through one event of the check
 * (msgauth_dispatch()): library callbacks (SPF, DNS, DMARC, the offload's
 * done) only record and activate it, so no caller code runs inside them
 * and a caller may free the check from its callbacks. A free requested
 * while a verification runs on the offload only marks the check: the
 * offload's done releases it (the worker reads the stream and the keys).
 *
 * Not yet: the DKIM key lookups start after the last octet, not at the
 * end of the header section (dkim_stream gives the signatures only once
 * finished); the SPF explanation is not in the result's header.
 *
 * SECURITY: the message and the DNS answers are untrusted; this file only
 * passes them to the parsers of dkim.h, dmarc.h and spf.h and copies
 * bounded names (d=, s= of at most DKIM_DOMAIN_MAX, the first
 * MSGAUTH_B_PREFIX characters of b=). The header is built by authres.c,
 * which quotes and escapes. Runs in the session process, unprivileged.
 * STANDARDS: RFC 7208 2.3, 2.4; RFC 6376 6.1.2 (key lookup results),
 * RFC 7489 3.1, 6.6.1-6.6.4; RFC 8601 2.7.1, 2.7.2; RFC 6008.
 * OWNERSHIP: the check owns its copies of the parameters, the DKIM
 * stream, the keys, the copied SPF outcomes and DMARC policies and the
 * result; all live until msgauth_free() (or, during an offloaded
 * verification, until its done).
 */
#include "msgauth/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "dns/dns.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "msgauth/authres.h"
#include "msgauth/metrics.h"

/* One SPF check and its outcome, kept. */
struct msgauth_spf {
	struct msgauth_check *c;
	uint64_t id;		/* running; 0 once done */
	bool started, done;
	struct spf_outcome o;	/* strings below */
	char *identity, *domain, *mechanism, *explanation, *reason;
};

/* One signature's key lookup and verification. */
struct msgauth_sig {
	struct msgauth_check *c;
	size_t i;
	uint64_t qid;		/* key lookup running; 0 otherwise */
	struct dkim_key *key;	/* to verify with; NULL: verdict known */
	struct dkim_verdict v;	/* by the worker */
};

/* One From: domain's policy lookup. */
struct msgauth_dmarc {
	struct msgauth_check *c;
	uint64_t id;		/* running; 0 otherwise */
	struct dmarc_policy pol;
	struct dmarc_verdict v;
};

enum msgauth_verify_state {
	MSGAUTH_VERIFY_IDLE,
	MSGAUTH_VERIFY_RUNNING,
	MSGAUTH_VERIFY_DONE,
};

struct msgauth_check {
	struct dns *dns;
	struct event *ev;		/* msgauth_dispatch() */
	char *authserv_id, *client_ip, *helo, *mail_from;
	unsigned int from_flags;
	unsigned int roll;
	int64_t now;
	bool allow_sha1;
	msgauth_offload_fn offload;
	void *offload_ctx;

	struct msgauth_spf spf, spf_helo;
	msgauth_spf_cb spf_cb;
	void *spf_arg;
	bool spf_fire;			/* spf_cb due */

	struct dkim_stream *ds;
	struct msgauth_sig *sigs;
	struct msgauth_dkim *dkim;
	size_t nsigs;
	size_t keys_pending;
	enum msgauth_verify_state verify;

	struct dmarc_from from;
	struct msgauth_dmarc dm[DMARC_FROM_MAX];
	size_t ndm;			/* lookups made (domains judged) */
	size_t dm_pending;
	struct dmarc_verdict verdict;

	bool ended, finished;
	msgauth_done_cb done_cb;
	void *done_arg;
	bool done_fire;			/* done_cb due */

	struct dmarc_dkim *dk;		/* DMARC's view of the signatures */
	struct buf authres, log;
	struct msgauth_result result;

	bool in_cb;			/* inside msgauth_dispatch() */
	bool dead;			/* msgauth_free() was called */
};

static void msgauth_ready(struct msgauth_check *);

const char *
msgauth_disposition_name(enum msgauth_disposition d)
{
	switch (d) {
	case MSGAUTH_ACCEPT:
		return "accept";
	case MSGAUTH_QUARANTINE:
		return "quarantine";
	case MSGAUTH_REJECT:
		return "reject";
	}
	return "?";
}

static char *
msgauth_strdup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/* ------------------------------------------------------------------ */
/* Releasing. */

static void
msgauth_spf_clear(struct msgauth_spf *s)
{
	if (s->id != 0) {
		spf_cancel(s->id);
		s->id = 0;
	}
	free(s->identity);
	free(s->domain);
	free(s->mechanism);
	free(s->explanation);
	free(s->reason);
}

/* Stop every request still running: no library callback after this. */
static void
msgauth_cancel_all(struct msgauth_check *c)
{
	size_t i;

	if (c->spf.id != 0) {
		spf_cancel(c->spf.id);
		c->spf.id = 0;
	}
	if (c->spf_helo.id != 0) {
		spf_cancel(c->spf_helo.id);
		c->spf_helo.id = 0;
	}
	for (i = 0; i < c->nsigs; i++)
		if (c->sigs[i].qid != 0) {
			dns_cancel(c->dns, c->sigs[i].qid);
			c->sigs[i].qid = 0;
		}
	for (i = 0; i < c->ndm; i++)
		if (c->dm[i].id != 0) {
			dmarc_lookup_cancel(c->dns, c->dm[i].id);
			c->dm[i].id = 0;
		}
	event_del(c->ev);
}

static void
msgauth_destroy(struct msgauth_check *c)
{
	size_t i;

	msgauth_cancel_all(c);
	event_free(c->ev);
	msgauth_spf_clear(&c->spf);
	msgauth_spf_clear(&c->spf_helo);
	for (i = 0; i < c->nsigs; i++)
		dkim_key_free(c->sigs[i].key);
	free(c->sigs);
	free(c->dkim);
	for (i = 0; i < c->ndm; i++)
		dmarc_policy_clear(&c->dm[i].pol);
	dkim_stream_free(c->ds);
	free(c->dk);
	buf_free(&c->authres);
	buf_free(&c->log);
	free(c->authserv_id);
	free(c->client_ip);
	free(c->helo);
	free(c->mail_from);
	free(c);
}

void
msgauth_free(struct msgauth_check *c)
{
	if (c == NULL || c->dead)
		return;
	c->dead = true;
	msgauth_cancel_all(c);
	/* The dispatcher, or the offload's done, finishes the job. */
	if (c->in_cb || c->verify == MSGAUTH_VERIFY_RUNNING)
		return;
	msgauth_destroy(c);
}

/* ------------------------------------------------------------------ */
/* The caller's callbacks, from the check's own event only. */

static void
msgauth_dispatch(evutil_socket_t fd, short what, void *arg)
{
	struct msgauth_check *c = arg;

	(void)fd;
	(void)what;
	c->in_cb = true;
	if (c->spf_fire && !c->dead) {
		c->spf_fire = false;
		c->spf_cb(c->spf_arg, &c->spf.o);
	}
	if (c->done_fire && !c->dead) {
		c->done_fire = false;
		c->done_cb(c->done_arg, &c->result);
	}
	c->in_cb = false;
	if (c->dead && c->verify != MSGAUTH_VERIFY_RUNNING)
		msgauth_destroy(c);
}

static void
msgauth_wake(struct msgauth_check *c)
{
	event_active(c->ev, EV_TIMEOUT, 0);
}

/* ------------------------------------------------------------------ */
/* SPF. */

static void
msgauth_spf_cb_lib(void *arg, const struct spf_outcome *o)
{
	struct msgauth_spf *s = arg;
	struct msgauth_check *c = s->c;

	s->id = 0;
	s->done = true;
	s->identity = msgauth_strdup_or_null(o->identity);
	s->domain = msgauth_strdup_or_null(o->domain);
	s->mechanism = msgauth_strdup_or_null(o->mechanism);
	s->explanation = msgauth_strdup_or_null(o->explanation);
	s->reason = msgauth_strdup_or_null(o->reason);
	s->o = *o;
	s->o.identity = s->identity;
	s->o.domain = s->domain;
	s->o.mechanism = s->mechanism;
	s->o.explanation = s->explanation;
	s->o.reason = s->reason;
	if (s == &c->spf && c->spf_cb != NULL) {
		c->spf_fire = true;
		msgauth_wake(c);
	}
	msgauth_ready(c);
}

static void
msgauth_spf_start(struct msgauth_check *c, struct msgauth_spf *s,
    const char *mail_from)
{
	struct spf_request req;

	memset(&req, 0, sizeof(req));
	req.ip = c->client_ip;
	req.mail_from = mail_from;
	req.helo = c->helo;
	req.receiver = c->authserv_id;
	req.timestamp = (uint64_t)c->now;
	s->c = c;
	s->started = true;
	s->id = spf_check(c->dns, &req, msgauth_spf_cb_lib, s);
}

/* ------------------------------------------------------------------ */
/* Start, feed. */

struct msgauth_check *
msgauth_start(const struct msgauth_params *p)
{
	struct msgauth_check *c;
	struct event_base *base;
	unsigned int max_sigs;

	if (p->dns == NULL || p->authserv_id == NULL || p->client_ip == NULL)
		fatalx("msgauth_start: missing parameter");
	base = dns_event_base(p->dns);
	c = xcalloc(1, sizeof(*c));
	c->dns = p->dns;
	c->ev = event_new(base, -1, 0, msgauth_dispatch, c);
	if (c->ev == NULL)
		fatalx("msgauth_start: event_new");
	c->authserv_id = xstrdup(p->authserv_id);
	c->client_ip = xstrdup(p->client_ip);
	c->helo = xstrdup(p->helo != NULL ? p->helo : "");
	c->mail_from = xstrdup(p->mail_from != NULL ? p->mail_from : "");
	c->from_flags = p->dmarc_from_flags;
	c->roll = p->pct_roll < 100 ? p->pct_roll : arc4random_uniform(100);
	c->now = p->now != 0 ? (int64_t)p->now : (int64_t)time(NULL);
	c->allow_sha1 = p->dkim_allow_sha1;
	c->offload = p->offload;
	c->offload_ctx = p->offload_ctx;
	buf_init(&c->authres, MSGAUTH_AUTHRES_MAX);
	buf_init(&c->log, MSGAUTH_LOG_MAX);
	max_sigs = p->dkim_max_signatures != 0 ? p->dkim_max_signatures : 5;
	c->ds = dkim_stream_new(max_sigs,
	    p->header_max != 0 ? p->header_max : MSGAUTH_HEADER_MAX);

	/* RFC 7208 2.4: MAIL FROM, or the HELO identity for <>. */
	msgauth_spf_start(c, &c->spf, c->mail_from[0] != '\0' ?
	    c->mail_from : NULL);
	/* RFC 7208 2.3: HELO as well, recorded only. */
	if (p->spf_helo && c->mail_from[0] != '\0' && c->helo[0] != '\0')
		msgauth_spf_start(c, &c->spf_helo, NULL);
	return c;
}

void
msgauth_spf_wait(struct msgauth_check *c, msgauth_spf_cb cb, void *arg)
{
	c->spf_cb = cb;
	c->spf_arg = arg;
	if (c->spf.done) {
		c->spf_fire = true;
		msgauth_wake(c);
	}
}

void
msgauth_feed(struct msgauth_check *c, const char *data, size_t len)
{
	if (c->ended)
		fatalx("msgauth_feed after msgauth_end");
	dkim_stream_feed(c->ds, data, len);
}

/* ------------------------------------------------------------------ */
/* DKIM. */

static void
msgauth_sig_verdict(struct msgauth_check *c, size_t i,
    enum dkim_reason reason, const char *text)
{
	struct msgauth_dkim *k = &c->dkim[i];

	k->reason = reason;
	k->result = dkim_reason_result(reason);
	k->reason_str = reason == DKIM_OK ? NULL :
	    text != NULL ? text : dkim_reason_str(reason);
}

static void
msgauth_key_cb(void *arg, const struct dns_answer *ans)
{
	struct msgauth_sig *s = arg;
	struct msgauth_check *c = s->c;
	enum dkim_reason reason;

	s->qid = 0;
	c->keys_pending--;
	switch (ans->status) {
	case DNS_OK:
		/* RFC 6376 3.6.2.2: several records make the result
		 * undefined; we refuse rather than pick one. */
		if (ans->n > 1) {
			msgauth_sig_verdict(c, s->i, DKIM_KEY_SYNTAX,
			    "several key records");
			break;
		}
		if (dkim_key_parse(ans->txt[0].data, ans->txt[0].len,
		    &s->key, &reason) == -1) {
			s->key = NULL;
			msgauth_sig_verdict(c, s->i, reason, NULL);
		}
		break;
	case DNS_NODATA:
	case DNS_NXDOMAIN:
		/* RFC 6376 6.1.2: PERMFAIL (no key for signature). */
		msgauth_sig_verdict(c, s->i, DKIM_KEY_NOT_FOUND, NULL);
		break;
	case DNS_TEMPFAIL:
		msgauth_sig_verdict(c, s->i, DKIM_KEY_TEMPFAIL, NULL);
		break;
	case DNS_PERMFAIL:
	default:
		msgauth_sig_verdict(c, s->i, DKIM_KEY_SYNTAX,
		    "key record unreadable");
		break;
	}
	msgauth_ready(c);
}

/* On the worker: reads the finished stream and the keys only. */
static void
msgauth_verify_work(void *arg)
{
	struct msgauth_check *c = arg;
	struct dkim_verify_opts opts;
	size_t i;

	opts.now = c->now;
	opts.allow_rsa_sha1 = c->allow_sha1;
	for (i = 0; i < c->nsigs; i++)
		if (c->sigs[i].key != NULL)
			(void)dkim_stream_verify(c->ds, i, c->sigs[i].key,
			    &opts, &c->sigs[i].v);
}

/* Back on the loop. */
static void
msgauth_verify_done(void *arg)
{
	struct msgauth_check *c = arg;
	size_t i;

	c->verify = MSGAUTH_VERIFY_DONE;
	if (c->dead) {
		if (!c->in_cb)
			msgauth_destroy(c);
		return;
	}
	for (i = 0; i < c->nsigs; i++)
		if (c->sigs[i].key != NULL) {
			msgauth_sig_verdict(c, i, c->sigs[i].v.reason, NULL);
			c->dkim[i].testing = c->sigs[i].v.testing;
			c->dkim[i].partial_body = c->sigs[i].v.partial_body;
		}
	msgauth_ready(c);
}

/* Copy what Authentication-Results shows of signature i. */
static void
msgauth_sig_names(struct msgauth_dkim *k, const struct dkim_sig *sig)
{
	size_t j, n = 0;
	char ch;

	k->parsed = true;
	strlcpy(k->domain, sig->domain, sizeof(k->domain));
	strlcpy(k->selector, sig->selector, sizeof(k->selector));
	strlcpy(k->alg, dkim_alg_str(sig->alg), sizeof(k->alg));
	/* RFC 6008 2: the first characters of b=, white space aside. */
	for (j = sig->b_start; j < sig->b_end && n < MSGAUTH_B_PREFIX; j++) {
		ch = sig->field[j];
		if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')
			continue;
		k->b[n++] = ch;
	}
	k->b[n] = '\0';
}

static void
msgauth_dkim_start(struct msgauth_check *c)
{
	const struct dkim_sig *sig;
	enum dkim_reason err;
	const char *name;
	size_t i;

	dkim_stream_finish(c->ds);
	c->nsigs = dkim_stream_nsigs(c->ds);
	if (c->nsigs == 0)
		return;
	c->sigs = xcalloc(c->nsigs, sizeof(*c->sigs));
	c->dkim = xcalloc(c->nsigs, sizeof(*c->dkim));
	for (i = 0; i < c->nsigs; i++) {
		c->sigs[i].c = c;
		c->sigs[i].i = i;
		sig = dkim_stream_sig(c->ds, i, &err);
		if (sig != NULL)
			msgauth_sig_names(&c->dkim[i], sig);
		if (err != DKIM_OK) {
			msgauth_sig_verdict(c, i, err, NULL);
			continue;
		}
		if ((name = dkim_stream_key_name(c->ds, i)) == NULL) {
			msgauth_sig_verdict(c, i, DKIM_KEY_NOT_FOUND, NULL);
			continue;
		}
		c->keys_pending++;
		c->sigs[i].qid = dns_query(c->dns, name, DNS_TYPE_TXT,
		    msgauth_key_cb, &c->sigs[i]);
	}
}

/* ------------------------------------------------------------------ */
/* DMARC. */

static void
msgauth_dmarc_cb(void *arg, const struct dmarc_policy *pol)
{
	struct msgauth_dmarc *m = arg;
	struct msgauth_check *c = m->c;

	m->id = 0;
	c->dm_pending--;
	dmarc_policy_copy(&m->pol, pol);
	msgauth_ready(c);
}

static void
msgauth_dmarc_start(struct msgauth_check *c)
{
	const char *const *values;
	const size_t *lens;
	struct msgauth_dmarc *m;
	size_t n, i;

	n = dkim_stream_from(c->ds, &values, &lens);
	dmarc_from_domains(values, lens, n, &c->from);
	if (!dmarc_from_verdict(&c->from, c->from_flags, &c->verdict))
		return;
	n = c->from.status == DMARC_FROM_ONE ? 1 : c->from.ndomains;
	if (n > DMARC_FROM_MAX)
		n = DMARC_FROM_MAX;	/* dmarc_from_verdict() refused it */
	for (i = 0; i < n; i++) {
		m = &c->dm[c->ndm++];
		m->c = c;
		m->id = dmarc_lookup(c->dns, c->from.domains[i],
		    msgauth_dmarc_cb, m);
		if (m->id == 0) {
			/* Not a name dmarc_lookup() can ask for. */
			m->pol.status = DMARC_POLICY_PERMERROR;
			strlcpy(m->pol.reason, "invalid From domain",
			    sizeof(m->pol.reason));
			continue;
		}
		c->dm_pending++;
	}
}

static void
msgauth_dmarc_input(struct msgauth_check *c, struct dmarc_input *in)
{
	memset(in, 0, sizeof(*in));
	/* RFC 7489 3.1.2: the SPF identity counts only when it passed. */
	in->spf_pass = c->spf.o.result == SPF_PASS;
	in->spf_domain = c->spf.o.domain;
	in->dkim = c->dk;
	in->ndkim = c->nsigs;
	in->roll = c->roll;
}

static void
msgauth_dmarc_evaluate(struct msgauth_check *c)
{
	struct dmarc_input in;
	size_t i;

	if (c->ndm == 0)
		return;		/* c->verdict from dmarc_from_verdict() */
	if (c->nsigs > 0)
		c->dk = xcalloc(c->nsigs, sizeof(*c->dk));
	/*
	 * RFC 7489 3.1.1: the d= of the signatures that passed. RFC 6376
	 * 3.6.1: mail signed with a key in testing mode (t=y) must not be
	 * treated differently from unsigned mail, so such a signature
	 * does not count, pass or fail (it is reported all the same).
	 */
	for (i = 0; i < c->nsigs; i++) {
		c->dk[i].domain = c->dkim[i].domain;
		c->dk[i].pass = c->dkim[i].result == DKIM_RESULT_PASS &&
		    !c->dkim[i].testing;
	}
	msgauth_dmarc_input(c, &in);
	for (i = 0; i < c->ndm; i++) {
		in.from_domain = c->from.domains[i];
		in.policy = &c->dm[i].pol;
		dmarc_evaluate(&in, &c->dm[i].v);
		if (i == 0)
			c->verdict = c->dm[i].v;
		else
			dmarc_verdict_merge(&c->verdict, &c->dm[i].v);
	}
}

static const char *
msgauth_from_status_name(enum dmarc_from_status st)
{
	switch (st) {
	case DMARC_FROM_ONE:
		return "one";
	case DMARC_FROM_NONE:
		return "none";
	case DMARC_FROM_MULTIPLE:
		return "multiple";
	case DMARC_FROM_INVALID:
		return "invalid";
	}
	return "?";
}

/* The log line (check.h); a line cut at MSGAUTH_LOG_MAX is kept. */
static void
msgauth_log_line(struct msgauth_check *c)
{
	struct dmarc_input in;
	size_t i;
	int r;

	r = buf_printf(&c->log, "spf=%s", spf_result_name(c->spf.o.result));
	if (r == 0 && c->spf_helo.started)
		r = buf_printf(&c->log, " spf_helo=%s",
		    spf_result_name(c->spf_helo.o.result));
	if (r == 0 && c->nsigs == 0)
		r = buf_printf(&c->log, " dkim=none");
	for (i = 0; r == 0 && i < c->nsigs; i++)
		r = buf_printf(&c->log, "%s%s%s", i == 0 ? " dkim=" : ",",
		    dkim_result_str(c->dkim[i].result),
		    c->dkim[i].testing ? "(testing)" : "");
	if (r == 0 && c->ndm == 0)
		r = buf_printf(&c->log, " dmarc from_status=%s result=%s "
		    "disposition=%s",
		    msgauth_from_status_name(c->from.status),
		    dmarc_result_name(c->verdict.result),
		    dmarc_disposition_name(c->verdict.disposition));
	msgauth_dmarc_input(c, &in);
	for (i = 0; r == 0 && i < c->ndm; i++) {
		in.from_domain = c->from.domains[i];
		in.policy = &c->dm[i].pol;
		if ((r = buf_append_str(&c->log, " ")) == 0)
			r = dmarc_verdict_format(&c->log, &in, &c->dm[i].v);
	}
}

/* ------------------------------------------------------------------ */
/* Authentication-Results. */

static void
msgauth_authres_spf(struct authres *ar, const struct msgauth_spf *s,
    const char *helo_or_null, const char *mail_from)
{
	enum spf_result r = s->o.result;
	const char *comment = NULL;

	if (r == SPF_TEMPERROR || r == SPF_PERMERROR)
		comment = s->o.reason;
	if (authres_add(ar, "spf", spf_result_name(r), comment) == -1)
		return;
	/* Properties are untrusted text: one authres refuses is left out. */
	if (helo_or_null != NULL) {
		if (helo_or_null[0] != '\0')
			(void)authres_prop(ar, "smtp", "helo", helo_or_null);
	} else
		(void)authres_prop(ar, "smtp", "mailfrom", mail_from);
}

static void
msgauth_authres(struct msgauth_check *c)
{
	struct authres *ar = authres_new(c->authserv_id);
	const struct msgauth_dkim *k;
	size_t i;

	msgauth_authres_spf(ar, &c->spf,
	    c->mail_from[0] == '\0' ? c->helo : NULL, c->mail_from);
	if (c->spf_helo.started)
		msgauth_authres_spf(ar, &c->spf_helo, c->helo, NULL);
	if (c->nsigs == 0)
		(void)authres_add(ar, "dkim", "none", NULL);
	for (i = 0; i < c->nsigs; i++) {
		k = &c->dkim[i];
		if (authres_add(ar, "dkim", dkim_result_str(k->result),
		    NULL) == -1)
			continue;
		if (k->reason_str != NULL)
			(void)authres_reason(ar, k->reason_str);
		else if (k->result == DKIM_RESULT_PASS &&
		    (k->testing || k->partial_body))
			(void)authres_reason(ar, dkim_pass_note_flags(k->testing,
			    k->partial_body));
		if (!k->parsed)
			continue;
		(void)authres_prop(ar, "header", "d", k->domain);
		(void)authres_prop(ar, "header", "s", k->selector);
		(void)authres_prop(ar, "header", "a", k->alg);
		if (k->b[0] != '\0')
			(void)authres_prop(ar, "header", "b", k->b);
	}
	if (c->ndm == 0)
		(void)dmarc_authres(ar, &c->verdict, NULL);
	for (i = 0; i < c->ndm; i++)
		(void)dmarc_authres(ar, &c->dm[i].v, c->from.domains[i]);
	if (authres_format(ar, &c->authres) == -1) {
		/* Too many results for MSGAUTH_AUTHRES_MAX: keep a field
		 * that says nothing rather than a cut one. */
		log_warn("msgauth: Authentication-Results over %d octets",
		    MSGAUTH_AUTHRES_MAX);
		buf_reset(&c->authres);
		(void)buf_printf(&c->authres,
		    "Authentication-Results: %s; none\r\n", c->authserv_id);
	}
	authres_free(ar);
}

/* ------------------------------------------------------------------ */
/* The end. */

static void
msgauth_finish(struct msgauth_check *c)
{
	struct msgauth_result *r = &c->result;

	c->finished = true;
	msgauth_dmarc_evaluate(c);
	msgauth_authres(c);
	msgauth_log_line(c);
	r->spf = &c->spf.o;
	r->spf_helo = c->spf_helo.started ? &c->spf_helo.o : NULL;
	r->dkim = c->dkim;
	r->ndkim = c->nsigs;
	r->dkim_extra = dkim_stream_nextra(c->ds);
	r->dmarc = &c->verdict;
	r->dmarc_from = c->from.status == DMARC_FROM_ONE ?
	    c->from.domains[0] : NULL;
	r->authres = buf_str(&c->authres);
	r->log = buf_str(&c->log);
	switch (c->verdict.disposition) {
	case DMARC_DISP_REJECT:
		r->disposition = MSGAUTH_REJECT;
		break;
	case DMARC_DISP_QUARANTINE:
		r->disposition = MSGAUTH_QUARANTINE;
		break;
	case DMARC_DISP_NONE:
	default:
		r->disposition = MSGAUTH_ACCEPT;
		break;
	}
	msgauth_metrics_count(r);	/* issue 6: metrics */
	c->done_fire = true;
	msgauth_wake(c);
}

/* Move on as far as what is known allows. */
static void
msgauth_ready(struct msgauth_check *c)
{
	size_t i;
	bool any = false;

	if (!c->ended || c->finished || c->dead || c->keys_pending > 0)
		return;
	if (c->verify == MSGAUTH_VERIFY_IDLE) {
		for (i = 0; i < c->nsigs; i++)
			any |= c->sigs[i].key != NULL;
		if (any) {
			c->verify = MSGAUTH_VERIFY_RUNNING;
			if (c->offload == NULL) {
				msgauth_verify_work(c);
				msgauth_verify_done(c);
			} else
				c->offload(c->offload_ctx, msgauth_verify_work,
				    msgauth_verify_done, c);
			return;	/* msgauth_verify_done() goes on */
		}
		c->verify = MSGAUTH_VERIFY_DONE;
	}
	if (c->verify != MSGAUTH_VERIFY_DONE || c->dm_pending > 0 ||
	    !c->spf.done || (c->spf_helo.started && !c->spf_helo.done))
		return;
	msgauth_finish(c);
}

void
msgauth_end(struct msgauth_check *c, msgauth_done_cb done, void *arg)
{
	if (c->ended)
		fatalx("msgauth_end called twice");
	c->ended = true;
	c->done_cb = done;
	c->done_arg = arg;
	msgauth_dkim_start(c);
	msgauth_dmarc_start(c);
	msgauth_ready(c);
}
