/*
 * exchange.c: the server side of the PLAIN and LOGIN SASL exchanges, as
 * a state machine with no I/O: the session feeds it the AUTH command's
 * arguments and then each client line, and sends what it yields.
 *
 * Entry points: sasl_exchange_new/free(), sasl_exchange_start_args(),
 * sasl_exchange_start(), sasl_exchange_step(), the accessors, and
 * sasl_error_reply(), sasl_error_is_failure(), sasl_mechanisms().
 *
 *   PLAIN  AUTH PLAIN <b64>       -> DONE | ERROR
 *          AUTH PLAIN             -> "334 " ; <b64> -> DONE | ERROR
 *   LOGIN  AUTH LOGIN             -> "334 VXNlcm5hbWU6" (Username:)
 *          AUTH LOGIN <b64 user>  -> "334 UGFzc3dvcmQ6" (Password:)
 *          <b64 user>             -> "334 UGFzc3dvcmQ6"
 *          <b64 password>         -> DONE | ERROR
 *
 * A LOGIN user name that can never be valid (empty, NUL inside) still
 * gets the Password: challenge and fails at the end, like any other bad
 * login: the client learns nothing earlier.
 *
 * SECURITY: all input is untrusted. Lines are bounded by
 * SASL_RESPONSE_MAX before they are decoded; the decoded password lives
 * in heap buffers that are wiped (OPENSSL_cleanse) before they are
 * freed, as is every scratch buffer that held decoded data.
 * STANDARDS: RFC 4954 4 (AUTH command, "=" empty initial response, "*"
 * cancel -> 501, base64 errors -> 501 5.5.2, 12288-octet responses ->
 * 500 5.5.6), 6 (504 5.5.4, 535 5.7.8); RFC 4616 2 (PLAIN message:
 * [authzid] NUL authcid NUL passwd, authcid and passwd non-empty); RFC
 * 4422 3.1 (mechanism names: 1-20 of A-Z 0-9 - _), 3.4.1 (authzid);
 * draft-murchison-sasl-login-00 (LOGIN).
 * OWNERSHIP: the exchange owns its copies of the credentials.
 */
#include "sasl/sasl.h"

#include <string.h>

#include <openssl/crypto.h>

#include "lib/base64.h"
#include "lib/log.h"
#include "lib/util.h"

#define SASL_CHALLENGE_USERNAME	"VXNlcm5hbWU6"	/* "Username:" */
#define SASL_CHALLENGE_PASSWORD	"UGFzc3dvcmQ6"	/* "Password:" */

enum sasl_mech {
	SASL_MECH_PLAIN,
	SASL_MECH_LOGIN,
};

enum sasl_state {
	SASL_STATE_NEW,
	SASL_STATE_PLAIN,	/* sent the empty challenge */
	SASL_STATE_LOGIN_USER,	/* sent Username: */
	SASL_STATE_LOGIN_PASS,	/* sent Password: */
	SASL_STATE_DONE,
	SASL_STATE_ERROR,
};

struct sasl_exchange {
	enum sasl_state state;
	enum sasl_mech mech;
	enum sasl_error error;
	const char *challenge;
	bool bad;		/* LOGIN: the user name cannot be valid */
	char *authzid;		/* each a wiped heap copy, or NULL */
	size_t authzid_len;
	char *authcid;
	size_t authcid_len;
	char *password;
	size_t password_len;
};

static const struct {
	const char *name;
	enum sasl_mech mech;
} sasl_mechs[] = {
	{ "PLAIN", SASL_MECH_PLAIN },
	{ "LOGIN", SASL_MECH_LOGIN },
};

static const struct sasl_reply sasl_replies[SASL_ERR_MAX] = {
	[SASL_ERR_SYNTAX] = { 501, "5.5.4",
	    "Syntax: AUTH mechanism [initial-response]" },
	[SASL_ERR_UNKNOWN_MECH] = { 504, "5.5.4",
	    "Unrecognized authentication type" },
	[SASL_ERR_BAD_BASE64] = { 501, "5.5.2",
	    "Cannot decode response" },
	[SASL_ERR_CANCELLED] = { 501, "5.0.0",
	    "Authentication cancelled" },
	[SASL_ERR_TOO_LONG] = { 500, "5.5.6",
	    "Authentication Exchange line is too long" },
	[SASL_ERR_BAD_CREDENTIALS] = { 535, "5.7.8",
	    "Authentication credentials invalid" },
};

const struct sasl_reply *
sasl_error_reply(enum sasl_error err)
{
	if (err <= SASL_ERR_NONE || err >= SASL_ERR_MAX)
		fatalx("sasl_error_reply: no reply for error %d", (int)err);
	return &sasl_replies[err];
}

bool
sasl_error_is_failure(enum sasl_error err)
{
	return err == SASL_ERR_BAD_CREDENTIALS;
}

const char *
sasl_mechanisms(void)
{
	return "PLAIN LOGIN";
}

struct sasl_exchange *
sasl_exchange_new(void)
{
	return xcalloc(1, sizeof(struct sasl_exchange));
}

/* Wipe and free one credential field. */
static void
sasl_field_free(char **p, size_t *len)
{
	if (*p != NULL) {
		OPENSSL_cleanse(*p, *len);
		free(*p);
	}
	*p = NULL;
	*len = 0;
}

/* A NUL-terminated heap copy of s[0..len) that the free wipes. */
static void
sasl_field_set(char **p, size_t *len, const unsigned char *s, size_t n)
{
	sasl_field_free(p, len);
	*p = xmalloc(n + 1);
	memcpy(*p, s, n);
	(*p)[n] = '\0';
	*len = n;
}

void
sasl_exchange_free(struct sasl_exchange *x)
{
	if (x == NULL)
		return;
	sasl_field_free(&x->authzid, &x->authzid_len);
	sasl_field_free(&x->authcid, &x->authcid_len);
	sasl_field_free(&x->password, &x->password_len);
	free(x);
}

static enum sasl_status
sasl_fail(struct sasl_exchange *x, enum sasl_error err)
{
	x->state = SASL_STATE_ERROR;
	x->error = err;
	x->challenge = NULL;
	/* Nobody needs the password of a failed exchange. */
	sasl_field_free(&x->password, &x->password_len);
	return SASL_STATUS_ERROR;
}

static enum sasl_status
sasl_challenge(struct sasl_exchange *x, enum sasl_state state,
    const char *challenge)
{
	x->state = state;
	x->challenge = challenge;
	return SASL_STATUS_CHALLENGE;
}

/*
 * RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd, where
 * none of the three holds a NUL and authcid and passwd are not empty.
 * The authzid may only name the authcid itself: Petrel has no
 * administrators who log in on behalf of others (RFC 4422 3.4.1 lets the
 * server refuse). Addresses match in any case, as in the users file.
 */
static enum sasl_status
sasl_plain_message(struct sasl_exchange *x, const unsigned char *m,
    size_t len)
{
	const unsigned char *nul1, *nul2, *end = m + len;

	nul1 = memchr(m, '\0', len);
	if (nul1 == NULL)
		return sasl_fail(x, SASL_ERR_BAD_CREDENTIALS);
	nul2 = memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1));
	if (nul2 == NULL)
		return sasl_fail(x, SASL_ERR_BAD_CREDENTIALS);
	sasl_field_set(&x->authzid, &x->authzid_len, m, (size_t)(nul1 - m));
	sasl_field_set(&x->authcid, &x->authcid_len, nul1 + 1,
	    (size_t)(nul2 - nul1 - 1));
	if (memchr(nul2 + 1, '\0', (size_t)(end - nul2 - 1)) != NULL)
		return sasl_fail(x, SASL_ERR_BAD_CREDENTIALS);
	if (x->authcid_len == 0 || nul2 + 1 == end)
		return sasl_fail(x, SASL_ERR_BAD_CREDENTIALS);
	if (x->authzid_len != 0 &&
	    ascii_strcasecmp(x->authzid, x->authcid) != 0)
		return sasl_fail(x, SASL_ERR_BAD_CREDENTIALS);
	sasl_field_set(&x->password, &x->password_len, nul2 + 1,
	    (size_t)(end - nul2 - 1));
	x->state = SASL_STATE_DONE;
	x->challenge = NULL;
	return SASL_STATUS_DONE;
}

static enum sasl_status
sasl_login_user(struct sasl_exchange *x, const unsigned char *m,
    size_t len)
{
	const unsigned char *nul = memchr(m, '\0', len);

	/* Keep what precedes a NUL for the log; fail after Password:. */
	if (nul != NULL || len == 0)
		x->bad = true;
	sasl_field_set(&x->authcid, &x->authcid_len, m,
	    nul != NULL ? (size_t)(nul - m) : len);
	sasl_field_set(&x->authzid, &x->authzid_len, m, 0);
	return sasl_challenge(x, SASL_STATE_LOGIN_PASS,
	    SASL_CHALLENGE_PASSWORD);
}

static enum sasl_status
sasl_login_password(struct sasl_exchange *x, const unsigned char *m,
    size_t len)
{
	if (x->bad || len == 0 || memchr(m, '\0', len) != NULL)
		return sasl_fail(x, SASL_ERR_BAD_CREDENTIALS);
	sasl_field_set(&x->password, &x->password_len, m, len);
	x->state = SASL_STATE_DONE;
	x->challenge = NULL;
	return SASL_STATUS_DONE;
}

/*
 * Decode one response (initial or continuation) and hand it to the
 * state's handler. The scratch buffer is wiped: it may hold a password.
 */
static enum sasl_status
sasl_response(struct sasl_exchange *x, const char *b64, size_t len)
{
	enum sasl_status st;
	unsigned char *m;
	size_t mlen, cap;

	if (len > SASL_RESPONSE_MAX)
		return sasl_fail(x, SASL_ERR_TOO_LONG);
	cap = BASE64_DECODED_MAX(len) + 1;
	m = xmalloc(cap);
	/* Canonical: every credential has exactly one accepted text. */
	if (base64_decode(b64, len, BASE64_CANONICAL, m, cap, &mlen,
	    NULL) == -1) {
		OPENSSL_cleanse(m, cap);
		free(m);
		return sasl_fail(x, SASL_ERR_BAD_BASE64);
	}
	switch (x->state) {
	case SASL_STATE_NEW:
		if (x->mech == SASL_MECH_PLAIN)
			st = sasl_plain_message(x, m, mlen);
		else
			st = sasl_login_user(x, m, mlen);
		break;
	case SASL_STATE_PLAIN:
		st = sasl_plain_message(x, m, mlen);
		break;
	case SASL_STATE_LOGIN_USER:
		st = sasl_login_user(x, m, mlen);
		break;
	case SASL_STATE_LOGIN_PASS:
		st = sasl_login_password(x, m, mlen);
		break;
	default:
		fatalx("sasl_response: state %d", (int)x->state);
	}
	OPENSSL_cleanse(m, cap);
	free(m);
	return st;
}

/* RFC 4422 3.1: sasl-mech = 1*20mech-char, mech-char = A-Z 0-9 - _ */
static bool
sasl_is_mech_name(const char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++) {
		char c = s[n];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return n >= 1 && n <= SASL_MECH_NAME_MAX;
}

enum sasl_status
sasl_exchange_start(struct sasl_exchange *x, const char *mech,
    const char *initial)
{
	size_t i;

	if (x->state != SASL_STATE_NEW || x->error != SASL_ERR_NONE)
		fatalx("sasl_exchange_start: called twice");
	if (!sasl_is_mech_name(mech))
		return sasl_fail(x, SASL_ERR_UNKNOWN_MECH);
	for (i = 0; i < nitems(sasl_mechs); i++)
		if (ascii_strcasecmp(mech, sasl_mechs[i].name) == 0)
			break;
	if (i == nitems(sasl_mechs))
		return sasl_fail(x, SASL_ERR_UNKNOWN_MECH);
	x->mech = sasl_mechs[i].mech;

	if (initial == NULL) {
		if (x->mech == SASL_MECH_PLAIN)
			return sasl_challenge(x, SASL_STATE_PLAIN, "");
		return sasl_challenge(x, SASL_STATE_LOGIN_USER,
		    SASL_CHALLENGE_USERNAME);
	}
	/* RFC 4954 4: "=" is an initial response of zero length. */
	if (strcmp(initial, "=") == 0)
		return sasl_response(x, "", 0);
	return sasl_response(x, initial, strlen(initial));
}

enum sasl_status
sasl_exchange_start_args(struct sasl_exchange *x, const char *args)
{
	char mech[SASL_MECH_NAME_MAX + 2];
	const char *sp;
	size_t n;

	if (x->state != SASL_STATE_NEW || x->error != SASL_ERR_NONE)
		fatalx("sasl_exchange_start_args: called twice");
	if (args == NULL || *args == '\0' || *args == ' ')
		return sasl_fail(x, SASL_ERR_SYNTAX);
	sp = strchr(args, ' ');
	n = sp != NULL ? (size_t)(sp - args) : strlen(args);
	if (sp != NULL && (sp[1] == '\0' || strchr(sp + 1, ' ') != NULL))
		return sasl_fail(x, SASL_ERR_SYNTAX);
	if (n >= sizeof(mech))
		return sasl_fail(x, SASL_ERR_UNKNOWN_MECH);
	memcpy(mech, args, n);
	mech[n] = '\0';
	return sasl_exchange_start(x, mech, sp != NULL ? sp + 1 : NULL);
}

enum sasl_status
sasl_exchange_step(struct sasl_exchange *x, const char *line, size_t len)
{
	if (x->state != SASL_STATE_PLAIN &&
	    x->state != SASL_STATE_LOGIN_USER &&
	    x->state != SASL_STATE_LOGIN_PASS)
		fatalx("sasl_exchange_step: no challenge outstanding "
		    "(state %d)", (int)x->state);
	/* RFC 4954 4: a line of "*" cancels the exchange with 501. */
	if (len == 1 && line[0] == '*')
		return sasl_fail(x, SASL_ERR_CANCELLED);
	return sasl_response(x, line, len);
}

const char *
sasl_exchange_challenge(const struct sasl_exchange *x)
{
	return x->challenge;
}

enum sasl_error
sasl_exchange_error(const struct sasl_exchange *x)
{
	return x->state == SASL_STATE_ERROR ? x->error : SASL_ERR_NONE;
}

const char *
sasl_exchange_mech(const struct sasl_exchange *x)
{
	size_t i;

	if (x->state == SASL_STATE_NEW ||
	    (x->state == SASL_STATE_ERROR &&
	    (x->error == SASL_ERR_SYNTAX ||
	    x->error == SASL_ERR_UNKNOWN_MECH)))
		return NULL;
	for (i = 0; i < nitems(sasl_mechs); i++)
		if (sasl_mechs[i].mech == x->mech)
			return sasl_mechs[i].name;
	return NULL;
}

const char *
sasl_exchange_authcid(const struct sasl_exchange *x)
{
	return x->authcid;
}

const char *
sasl_exchange_authzid(const struct sasl_exchange *x)
{
	return x->state == SASL_STATE_DONE ? x->authzid : NULL;
}

const char *
sasl_exchange_password(const struct sasl_exchange *x)
{
	return x->state == SASL_STATE_DONE ? x->password : NULL;
}
