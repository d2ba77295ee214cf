/*
 * sasl.h: SMTP AUTH (RFC 4954) without the session: the PLAIN and LOGIN
 * exchanges as a pure state machine, strict base64, password verification
 * on worker threads, and the per-address failure throttle.
 *
 * How a session drives an AUTH command (the session keeps the I/O, the
 * timers, the TLS check (538 5.7.11) and its own failure counter):
 *
 *   x = sasl_exchange_new();
 *   st = sasl_exchange_start_args(x, args);      "PLAIN dGVzdA==" / "LOGIN"
 *   while (st == SASL_STATUS_CHALLENGE) {
 *           send "334 " + sasl_exchange_challenge(x)
 *           st = sasl_exchange_step(x, line, len);   each client line
 *   }
 *   SASL_STATUS_ERROR: send sasl_error_reply(sasl_exchange_error(x));
 *           if sasl_error_is_failure(): count it as a failed login
 *           (throttle delay, counter, "auth failed" log line).
 *   SASL_STATUS_DONE: look up sasl_exchange_authcid(x) in the users
 *           table and sasl_verify(v, hash, sasl_exchange_password(x),
 *           ...); free x (wipes the password) right after that call.
 *
 * SECURITY: everything fed to the exchange is untrusted network input;
 * every length is bounded by SASL_RESPONSE_MAX. Passwords are wiped with
 * OPENSSL_cleanse when the exchange or the verification job is freed.
 * Never log what the exchange holds except the authcid (escaped).
 * STANDARDS: RFC 4954 (SMTP AUTH), RFC 4616 (PLAIN), RFC 4422 3.1
 * (mechanism names), RFC 4648 4 (base64), draft-murchison-sasl-login-00
 * (LOGIN).
 */
#ifndef PETREL_SASL_SASL_H
#define PETREL_SASL_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

/*
 * RFC 4954 4: the longest base64 response (initial response or a
 * continuation line), CRLF excluded, that a server must accept. One
 * octet more is refused with 500 5.5.6. The session's line reader must
 * therefore let AUTH command lines of "AUTH " + mechanism + " " +
 * SASL_RESPONSE_MAX octets and continuation lines of SASL_RESPONSE_MAX
 * octets through to the exchange (SASL_LINE_MAX covers both, CRLF
 * excluded); a line longer than what the reader keeps is answered with
 * sasl_error_reply(SASL_ERR_TOO_LONG) by the session itself.
 */
#define SASL_RESPONSE_MAX	12288
#define SASL_MECH_NAME_MAX	20	/* RFC 4422 3.1 */
#define SASL_LINE_MAX		(5 + SASL_MECH_NAME_MAX + 1 + \
				 SASL_RESPONSE_MAX)

/* ---- replies ---- */

enum sasl_error {
	SASL_ERR_NONE = 0,
	SASL_ERR_SYNTAX,	/* 501 5.5.4: no mechanism, extra words */
	SASL_ERR_UNKNOWN_MECH,	/* 504 5.5.4 */
	SASL_ERR_BAD_BASE64,	/* 501 5.5.2 */
	SASL_ERR_CANCELLED,	/* 501 5.0.0: the client sent "*" */
	SASL_ERR_TOO_LONG,	/* 500 5.5.6 */
	/*
	 * 535 5.7.8: credentials that can never be valid, found without
	 * a lookup: a PLAIN message without exactly two NULs, an empty
	 * authcid or password, a NUL in a LOGIN field, or an authzid
	 * other than the authcid. A wrong password found by sasl_verify()
	 * gets the same reply (the session sends it).
	 */
	SASL_ERR_BAD_CREDENTIALS,
	SASL_ERR_MAX
};

struct sasl_reply {
	int code;		/* 504 */
	const char *enhanced;	/* "5.5.4" */
	const char *text;	/* "Unrecognized authentication type" */
};

/* The reply for err (never SASL_ERR_NONE: that is a bug, fatalx). */
const struct sasl_reply *sasl_error_reply(enum sasl_error err);

/*
 * Does err count as a failed login (delay before the reply, the
 * session's failure counter, the throttle, the "auth failed" log line)?
 * True for SASL_ERR_BAD_CREDENTIALS only: syntax errors and a cancel do
 * not test a password. RFC 4954 4 lets a server count them anyway; the
 * session's error counter (max_errors) already bounds them.
 */
bool sasl_error_is_failure(enum sasl_error err);

/* The mechanisms offered in EHLO, "PLAIN LOGIN" ("250-AUTH PLAIN LOGIN"). */
const char *sasl_mechanisms(void);

/* ---- the exchange ---- */

enum sasl_status {
	SASL_STATUS_CHALLENGE,	/* send "334 " + challenge, feed a line */
	SASL_STATUS_DONE,	/* credentials ready to verify */
	SASL_STATUS_ERROR,	/* send sasl_error_reply(); it is over */
};

struct sasl_exchange;

/* A new exchange, waiting for sasl_exchange_start*(). */
struct sasl_exchange *sasl_exchange_new(void);

/* Wipe every credential it holds and free it. NULL is a no-op. */
void sasl_exchange_free(struct sasl_exchange *x);

/*
 * Start with the AUTH command's arguments as the session's parser left
 * them: "MECHANISM" or "MECHANISM SP initial-response", exactly one
 * space between them (RFC 4954 4). No argument or a third word:
 * SASL_ERR_SYNTAX. Then as sasl_exchange_start().
 */
enum sasl_status sasl_exchange_start_args(struct sasl_exchange *x,
    const char *args);

/*
 * Start with mech (any case; an unknown or malformed name is
 * SASL_ERR_UNKNOWN_MECH) and the initial response, NULL if the command
 * had none. "=" is an empty initial response (RFC 4954 4). "*" is not a
 * cancel here: it is bad base64. Returns CHALLENGE, DONE or ERROR.
 * Call once per exchange (a second call is a bug: fatalx).
 */
enum sasl_status sasl_exchange_start(struct sasl_exchange *x,
    const char *mech, const char *initial);

/*
 * Feed one client line (without CRLF; len octets, NUL bytes allowed and
 * refused as bad base64) after a CHALLENGE. "*" cancels (501 5.0.0); an
 * empty line is an empty response. Only after CHALLENGE (otherwise a
 * bug: fatalx).
 */
enum sasl_status sasl_exchange_step(struct sasl_exchange *x,
    const char *line, size_t len);

/*
 * After CHALLENGE: the base64 challenge to send after "334 " ("" for
 * PLAIN's empty challenge: the line is then "334 "). Static storage.
 */
const char *sasl_exchange_challenge(const struct sasl_exchange *x);

/* After ERROR: why; SASL_ERR_NONE otherwise. */
enum sasl_error sasl_exchange_error(const struct sasl_exchange *x);

/* The mechanism in upper case ("PLAIN"), NULL before a good start. */
const char *sasl_exchange_mech(const struct sasl_exchange *x);

/*
 * The authentication identity (login name) as the client sent it, up to
 * a NUL byte inside it, or NULL while unknown. Also set after a
 * BAD_CREDENTIALS error whenever the client got that far, for the
 * "auth failed user=" log line (escape it: it is untrusted).
 */
const char *sasl_exchange_authcid(const struct sasl_exchange *x);

/*
 * After DONE: the authorization identity ("" if none; when set it equals
 * the authcid ignoring ASCII case, which the exchange has checked) and
 * the password (non-empty, no NUL). Valid until sasl_exchange_free().
 */
const char *sasl_exchange_authzid(const struct sasl_exchange *x);
const char *sasl_exchange_password(const struct sasl_exchange *x);

/* ---- verification on worker threads ---- */

/* ok: the password matches the hash. Runs on the event loop. */
typedef void (*sasl_verify_cb)(void *arg, bool ok);

struct sasl_verifier;

/*
 * A verifier with nthreads worker threads (0 means 1) that run crypt_r.
 * The caller has called evthread_use_pthreads() before creating base:
 * workers hand results back with event_active(). Workers block every
 * signal. Aborts (fatalx) if a thread or event cannot be created.
 */
struct sasl_verifier *sasl_verifier_new(struct event_base *base,
    unsigned int nthreads);

/*
 * Stop the workers (waiting for the crypt_r calls in progress) and free
 * every pending job without calling its callback. NULL is a no-op. Not
 * from inside a callback.
 */
void sasl_verifier_free(struct sasl_verifier *v);

/*
 * Is hash of a method sasl_verify() checks: yescrypt "$y$" (and "$gy$",
 * "$7$"), bcrypt "$2b$" ("$2y$", "$2a$"), SHA-512 "$6$" or SHA-256
 * "$5$"? Old and weak methods (DES, MD5 "$1$") and "" (receive-only) are
 * not: such users can never log in. For warnings at load time.
 */
bool sasl_hash_is_supported(const char *hash);

/*
 * Check password against hash (a crypt(3) string of a method
 * sasl_hash_is_supported() accepts) on a worker; cb(arg, ok) runs later on the loop, never during
 * this call. hash NULL (unknown user), "" (receive-only user), another
 * method, or a string crypt_r refuses never authenticates, and still
 * costs one yescrypt computation so that timing does not tell which
 * users exist. Both strings are copied (the password is wiped after
 * use), so the caller may free them at once. Returns the job's id,
 * never 0.
 */
uint64_t sasl_verify(struct sasl_verifier *v, const char *hash,
    const char *password, sasl_verify_cb cb, void *arg);

/*
 * Make sure the callback of job id never runs (a session going away
 * calls this). Returns true if the job was still pending, false if its
 * callback already ran or id is unknown. Only on the loop thread.
 */
bool sasl_verify_cancel(struct sasl_verifier *v, uint64_t id);

/* crypt_r calls the workers have finished, dummy ones included (tests). */
uint64_t sasl_verifier_crypt_count(struct sasl_verifier *v);

/* ---- failure throttle ---- */

#define SASL_THROTTLE_ENTRIES_DEFAULT	10000
#define SASL_THROTTLE_DELAY_DEFAULT	1000	/* ms: auth_fail_delay */
#define SASL_THROTTLE_DELAY_MAX_DEFAULT	10000	/* ms */
#define SASL_THROTTLE_FORGET_DEFAULT	(3600 * 1000)	/* ms */

struct sasl_throttle;

/*
 * A table of failed logins per client address, at most max_entries
 * addresses (0: SASL_THROTTLE_ENTRIES_DEFAULT); when full, the address
 * used least recently is forgotten. delay_ms is the delay after a first
 * failure; it doubles with each further failure up to max_delay_ms. An
 * address with no failure for forget_ms starts again from zero.
 * IPv6 addresses count per /64 (one customer's network); IPv4-mapped
 * IPv6 addresses count as IPv4. Pure data: no timers, no threads (use it
 * from the loop thread only). Times are milliseconds on any monotonic
 * clock (time_mono_usec() / 1000).
 */
struct sasl_throttle *sasl_throttle_new(size_t max_entries,
    uint64_t delay_ms, uint64_t max_delay_ms, uint64_t forget_ms);
void sasl_throttle_free(struct sasl_throttle *t);

/*
 * Record one failed login from addr (a numeric IPv4 or IPv6 address; any
 * other string is keyed as it is) at now and return the delay, in ms,
 * before the session answers 535: delay_ms << (failures - 1), at most
 * max_delay_ms.
 */
uint64_t sasl_throttle_delay(struct sasl_throttle *t, const char *addr,
    uint64_t now);

/* Failures recorded for addr and not yet forgotten at now (0: none). */
unsigned int sasl_throttle_failures(struct sasl_throttle *t,
    const char *addr, uint64_t now);

/* A successful login from addr: forget its failures. */
void sasl_throttle_success(struct sasl_throttle *t, const char *addr);

/* Addresses in the table (tests). */
size_t sasl_throttle_size(const struct sasl_throttle *t);

#endif
