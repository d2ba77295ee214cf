/*
 * dovecot.h: a client of Dovecot's authentication socket (the "auth
 * client" protocol Postfix uses for smtpd_sasl_type = dovecot), so that
 * one user database serves IMAP and SMTP (`auth dovecot unix:PATH`).
 *
 * The SMTP exchange (sasl.h) still runs in Petrel: it yields authzid,
 * authcid and password, and sasl_dovecot_auth() asks Dovecot about them
 * as one PLAIN request. Requests share one connection, opened when the
 * first one comes and again after a failure; they are answered in any
 * order.
 *
 * STANDARDS: Dovecot authentication protocol 1.x (doc.dovecot.org,
 * developer manual, "Dovecot Authentication Protocol").
 */
#ifndef PETREL_SASL_DOVECOT_H
#define PETREL_SASL_DOVECOT_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;

enum sasl_dovecot_result {
	SASL_DOVECOT_OK,	/* authenticated: 235 */
	SASL_DOVECOT_FAIL,	/* bad credentials: 535 5.7.8 */
	/*
	 * Dovecot could not decide (its "temp" flag, no socket, a broken
	 * or silent connection, a protocol error): 454 4.7.0, not counted
	 * as a failed login.
	 */
	SASL_DOVECOT_TEMPFAIL,
};

/*
 * user: after OK, the user name Dovecot settled on (its "user=", which
 * may differ from the login name in case or form), else NULL. Valid
 * during the call only. Runs on the loop, never during
 * sasl_dovecot_auth().
 */
typedef void (*sasl_dovecot_cb)(void *arg, enum sasl_dovecot_result res,
    const char *user);

struct sasl_dovecot_request {
	const char *authzid;	/* "" or NULL: none */
	const char *authcid;
	const char *password;
	const char *service;	/* "smtp" if NULL */
	const char *local_ip;	/* numeric, or NULL */
	const char *remote_ip;	/* numeric, or NULL */
	bool secured;		/* over TLS (disable_plaintext_auth) */
};

struct sasl_dovecot;

/*
 * A client for the unix socket at path. timeout_sec bounds each request
 * (0: 30 s): Dovecot delays failures itself (auth_failure_delay), so keep
 * it well above that. Connects lazily. Never fails.
 */
struct sasl_dovecot *sasl_dovecot_new(struct event_base *base,
    const char *path, unsigned int timeout_sec);

/* Close the connection and drop every request without callbacks. NULL
 * is a no-op. Not from inside a callback. */
void sasl_dovecot_free(struct sasl_dovecot *d);

/*
 * Ask Dovecot. Strings are copied (the password is wiped when sent or
 * dropped). Returns the request's id, never 0; cb runs exactly once later
 * unless cancelled. A callback may start or cancel requests.
 */
uint64_t sasl_dovecot_auth(struct sasl_dovecot *d,
    const struct sasl_dovecot_request *req, sasl_dovecot_cb cb, void *arg);

/* Keep request id's callback from running. Returns true if it was still
 * pending. */
bool sasl_dovecot_cancel(struct sasl_dovecot *d, uint64_t id);

#endif
