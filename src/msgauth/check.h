/*
 * check.h: the per-message authentication check the SMTP session runs on
 * an incoming message: SPF at MAIL time, DKIM over the streamed content,
 * DMARC over both, and the Authentication-Results field to prepend.
 *
 *   c = msgauth_start(&params);            MAIL: SPF starts at once
 *   msgauth_spf_wait(c, spf_cb, arg);      (optional) the SPF verdict
 *   msgauth_feed(c, data, len) ...         DATA/BDAT content as stored
 *   msgauth_end(c, done_cb, arg);          after the last octet
 *     -> done_cb(arg, &result)             later, from the loop
 *   msgauth_free(c);                       at any time
 *
 * Everything runs on the event loop of params.dns, except the DKIM
 * verifications, which go through params.offload (a worker thread in the
 * daemon). Callbacks run from that loop, never from inside a msgauth_*
 * call. A check is used from the loop thread only.
 *
 * What msgauth_end() does: the DKIM key lookups of every signature (TXT at
 * "<s>._domainkey.<d>", all at once) and the DMARC policy lookups of the
 * From: domain(s) run in parallel; once every key is in, the verifications
 * go to the offload; once SPF, DKIM and DMARC discovery are all known,
 * DMARC is evaluated and the Authentication-Results field built.
 *
 * A signature whose key is in testing mode (t=y) is reported with its
 * result (and a reason saying so) but does not count for DMARC: RFC 6376
 * 3.6.1 says such mail must be treated as unsigned mail is.
 *
 * Not yet: the key lookups start only after the last octet (see check.c).
 *
 * Time limits are the caller's: SPF bounds its own check (spf.h), DNS its
 * queries; the session's data timeout frees a check that takes too long.
 *
 * SECURITY: the message, its signatures and every DNS answer are
 * untrusted: bounded by the libraries used (dkim_stream keeps at most
 * header_max octets of header, dkim_max_signatures signatures, DMARC at
 * most DMARC_FROM_MAX From: domains); the header built quotes and escapes
 * every untrusted value (authres.h).
 * STANDARDS: RFC 7208 (SPF, 2.3 HELO identity, 2.4 MAIL FROM identity),
 * RFC 6376 (DKIM; 6.1.2: no key record is PERMFAIL, a failed lookup
 * TEMPFAIL), RFC 7489 (DMARC; 3.1 alignment with SPF only when it passed,
 * 6.6.1 From: domains, 6.6.4 pct), RFC 8601 (Authentication-Results;
 * 2.7.1 header.d/s/a/b, 2.7.2 smtp.mailfrom/helo), RFC 6008 (header.b).
 */
#ifndef PETREL_MSGAUTH_CHECK_H
#define PETREL_MSGAUTH_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msgauth/dkim.h"
#include "msgauth/dmarc.h"
#include "msgauth/spf.h"

struct dns;

/* Default bound on the kept header section (dkim_stream_new()). */
#define MSGAUTH_HEADER_MAX	(256 * 1024)
/* Bound on the Authentication-Results field built, and the log line. */
#define MSGAUTH_AUTHRES_MAX	(16 * 1024)
#define MSGAUTH_LOG_MAX		(4 * 1024)
/* msgauth_params.pct_roll: draw the roll. */
#define MSGAUTH_ROLL_DRAW	100
/* Characters of b= kept for header.b (RFC 6008 2: at least 8). */
#define MSGAUTH_B_PREFIX	8

/*
 * Runs work(arg) off the event loop, then done(arg) back on the loop
 * thread. It must call done exactly once, even when the check was freed
 * meanwhile (done then releases it). NULL in msgauth_params: both are
 * called at once, inside the msgauth call or callback that starts the
 * verification (tests, or a daemon without workers).
 */
typedef void (*msgauth_offload_fn)(void *ctx, void (*work)(void *),
    void (*done)(void *), void *arg);

/*
 * Everything a check needs; msgauth_start() copies the strings. Fields
 * not named "required" may be zero.
 */
struct msgauth_params {
	struct dns *dns;		/* required: its loop runs the check */
	const char *authserv_id;	/* required: our hostname, the
					 * Authentication-Results authserv-id
					 * and SPF's %{r} */
	const char *client_ip;		/* required: numeric, as spf.h takes
					 * it */
	const char *helo;		/* HELO/EHLO argument; NULL: "" */
	/*
	 * The reverse-path without <>; "" or NULL for the null path <>:
	 * SPF then checks the HELO identity (RFC 7208 2.3), recorded as
	 * smtp.helo, and DMARC uses that result (RFC 7489 3.1.2).
	 */
	const char *mail_from;
	/* Check HELO too when mail_from is not <> (recorded only; DMARC
	 * keeps to MAIL FROM). */
	bool spf_helo;
	unsigned int dkim_max_signatures; /* 0: 5 */
	bool dkim_allow_sha1;		/* rsa-sha1 may pass (RFC 8301: no) */
	unsigned int dmarc_from_flags;	/* DMARC_FROM_* of dmarc.h */
	size_t header_max;		/* 0: MSGAUTH_HEADER_MAX */
	uint64_t now;			/* seconds since the epoch for SPF's
					 * %{t} and DKIM's x=; 0: the clock */
	/*
	 * The DMARC pct roll (RFC 7489 6.6.4): 0..99 fixes it (tests);
	 * MSGAUTH_ROLL_DRAW (or any value >= 100) draws one uniformly. The
	 * daemon must pass MSGAUTH_ROLL_DRAW: 0 would apply every policy
	 * with pct > 0 in full.
	 */
	unsigned int pct_roll;
	msgauth_offload_fn offload;	/* NULL: run the work at once */
	void *offload_ctx;
};

/* One DKIM-Signature field (in header order) and its verdict. */
struct msgauth_dkim {
	enum dkim_result result;
	enum dkim_reason reason;	/* DKIM_OK for pass */
	const char *reason_str;		/* static text; NULL for pass */
	bool parsed;			/* the field parsed: the names below
					 * are set; else all "" */
	bool testing;			/* the key has t=y */
	bool partial_body;		/* l= left part of the body unsigned */
	char domain[DKIM_DOMAIN_MAX + 1];	/* d= */
	char selector[DKIM_DOMAIN_MAX + 1];	/* s= */
	char alg[16];				/* a= ("rsa-sha256") */
	char b[MSGAUTH_B_PREFIX + 1];		/* b=, first characters */
};

enum msgauth_disposition {
	MSGAUTH_ACCEPT,
	MSGAUTH_QUARANTINE,
	MSGAUTH_REJECT,
};

/*
 * Valid until msgauth_free() (not only during the callback). The session
 * acts on disposition only with dmarc_enforce.
 */
struct msgauth_result {
	const struct spf_outcome *spf;		/* MAIL FROM, or HELO for <> */
	const struct spf_outcome *spf_helo;	/* spf_helo only, else NULL */
	const struct msgauth_dkim *dkim;	/* ndkim, NULL when 0 */
	size_t ndkim;
	size_t dkim_extra;		/* DKIM-Signature fields over the
					 * limit: not checked */
	/* The DMARC verdict, merged over the From: domains when several
	 * are evaluated (dmarc_verdict_merge()). */
	const struct dmarc_verdict *dmarc;
	const char *dmarc_from;		/* the author domain; NULL when the
					 * From: gave none or several */
	/* "Authentication-Results: ...\r\n", folded (authres_format()). */
	const char *authres;
	/*
	 * One key=value line for the session's log (no newline; untrusted
	 * names escaped), e.g. "spf=fail dkim=pass dmarc from=example.org
	 * policy_domain=example.org p=reject ... result=pass ..." (one
	 * dmarc_verdict_format() per From: domain judged).
	 */
	const char *log;
	enum msgauth_disposition disposition;	/* from dmarc */
};

struct msgauth_check;

/*
 * Start a check and its SPF evaluation (the MAIL FROM identity, or HELO
 * for <>, and also HELO with spf_helo). Never NULL; fatalx on a missing
 * required field.
 */
struct msgauth_check *msgauth_start(const struct msgauth_params *p);

typedef void (*msgauth_spf_cb)(void *arg, const struct spf_outcome *o);

/*
 * cb(arg, outcome) once the SPF verdict of the MAIL FROM (or HELO for <>)
 * identity is known: from the loop, soon, when it already is; never
 * during this call. For spf_reject and spf_temperror_defer at MAIL. One
 * wait per check (a second call replaces the first if it has not run).
 * outcome stays valid until msgauth_free(); cb may call msgauth_free().
 */
void msgauth_spf_wait(struct msgauth_check *c, msgauth_spf_cb cb, void *arg);

/*
 * The next len octets of the message content, as stored (DATA after
 * dot-unstuffing, BDAT chunks): CRLF line ends, any chunking. Not after
 * msgauth_end() (fatalx).
 */
void msgauth_feed(struct msgauth_check *c, const char *data, size_t len);

typedef void (*msgauth_done_cb)(void *arg, const struct msgauth_result *r);

/*
 * After the last octet: finish DKIM and DMARC (see the top of this file)
 * and call done(arg, result) from the loop, never during this call, once.
 * Once per check (fatalx otherwise). done may call msgauth_free().
 */
void msgauth_end(struct msgauth_check *c, msgauth_done_cb done, void *arg);

/*
 * Cancel what is in flight (SPF checks, DNS and DMARC lookups) and free:
 * no callback runs after it. Safe at any time, from the check's own
 * callbacks too, and while a verification is on the offload (the memory
 * it reads is then released by its done). NULL is a no-op.
 */
void msgauth_free(struct msgauth_check *c);

/* MSGAUTH_ACCEPT -> "accept", ... */
const char *msgauth_disposition_name(enum msgauth_disposition d);

#endif
