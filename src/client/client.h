/*
 * client.h: one outbound SMTP/LMTP client connection (OpenSMTPD's
 * mta_session.c is the model): connect, greeting, EHLO/LHLO (HELO as the
 * fallback), opportunistic STARTTLS, SMTP AUTH when credentials are
 * given (only over TLS), then one message after another, each with
 * per-recipient results, and QUIT.
 *
 * The queue manager drives it:
 *
 *   c = smtpc_open(base, &conf, cb, arg);
 *   cb(SMTPC_READY)   -> smtpc_send(c, &msg)
 *   cb(SMTPC_DONE)    -> every msg.rcpts[i].status is final; if
 *                        smtpc_reusable(c): smtpc_send() the next message
 *                        or smtpc_quit(c); else smtpc_free(c)
 *   cb(SMTPC_FAILED)  -> no message was touched: smtpc_last_error(),
 *                        smtpc_failure_status(), smtpc_tls_failed();
 *                        smtpc_free(c)
 *   cb(SMTPC_CLOSED)  -> after smtpc_quit(), or the peer closed (or sent
 *                        421 to) an idle connection: smtpc_free(c)
 *
 * Callbacks run only from the event loop, never from within smtpc_open(),
 * smtpc_send() or smtpc_quit(); a callback may call smtpc_free() (and
 * smtpc_send() or smtpc_quit()) on its connection. Exactly one of READY
 * and FAILED comes first; one DONE per accepted smtpc_send(); nothing
 * after FAILED or CLOSED.
 *
 * SECURITY: every byte from the peer is untrusted. A reply line is at most
 * SMTPC_REPLY_LINE_MAX octets and a reply at most SMTPC_REPLY_LINES lines
 * (else: protocol error, TEMP, connection closed); reply texts are copied
 * with length caps and control characters replaced by '?'. Memory per
 * connection is bounded: replies are parsed line by line, the message
 * content is streamed (at most about SMTPC_OUT_HIGH bytes queued), at most
 * SMTPC_PIPELINE_MAX commands are in flight. The client never emits a bare
 * CR or LF in message content and dot-stuffs it (SMTP smuggling, outbound
 * side). TLS is opportunistic: no certificate verification (RFC 7435).
 * Credentials (auth_user, auth_password) are sent only once TLS is up
 * (RFC 4954 4: PLAIN and LOGIN expose the password), never logged, and
 * the connection's copy of the password is wiped as soon as the AUTH
 * exchange ends and when the connection is freed.
 * STANDARDS: RFC 5321 (SMTP), RFC 2033 (LMTP), RFC 2920 (PIPELINING),
 * RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3461
 * (DSN), RFC 3030 (CHUNKING, BINARYMIME), RFC 3207 (STARTTLS), RFC 2034
 * (enhanced status codes), RFC 7435 (opportunistic security), RFC 4954
 * (SMTP AUTH), RFC 4616 (PLAIN), draft-murchison-sasl-login-00 (LOGIN).
 * OWNERSHIP: the connection copies its configuration (it takes its own
 * reference to ssl_ctx). A struct smtpc_msg and everything it points to
 * (recipients, source) belong to the caller and must stay valid until
 * SMTPC_DONE (or smtpc_free()).
 */
#ifndef PETREL_CLIENT_CLIENT_H
#define PETREL_CLIENT_CLIENT_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct event_base;
struct smtpc;

/* Limits (RFC 5321 4.5.3.1.5 asks for 512-octet reply lines; we allow
 * more because real servers send long EHLO and 5xx texts). */
#define SMTPC_REPLY_LINE_MAX	4096	/* octets, CRLF excluded */
#define SMTPC_REPLY_LINES	100	/* lines in one reply */
#define SMTPC_PIPELINE_MAX	100	/* commands in flight (RFC 2920) */
#define SMTPC_OUT_HIGH		(256 * 1024)	/* content queued */
#define SMTPC_BDAT_CHUNK	(64 * 1024)	/* BDAT chunk (RFC 3030) */
#define SMTPC_LINE_MAX		998	/* RFC 5322 2.1.1, RFC 5321 4.5.3.1.6 */

/*
 * Body types, RET values and NOTIFY bits: the same numbers as enum
 * smtp_body, enum smtp_ret and SMTP_NOTIFY_* in smtp/parse.h (the test
 * checks it), so values from the spool pass through unchanged. Defined
 * here because the client sits beside the server, not above it.
 */
enum smtpc_body {
	SMTPC_BODY_UNSPEC = 0,
	SMTPC_BODY_7BIT,
	SMTPC_BODY_8BITMIME,
	SMTPC_BODY_BINARYMIME,
};

enum smtpc_ret {
	SMTPC_RET_UNSPEC = 0,
	SMTPC_RET_FULL,
	SMTPC_RET_HDRS,
};

#define SMTPC_NOTIFY_NEVER	0x01
#define SMTPC_NOTIFY_SUCCESS	0x02
#define SMTPC_NOTIFY_FAILURE	0x04
#define SMTPC_NOTIFY_DELAY	0x08

/* Peer capabilities from the EHLO/LHLO reply (smtpc_caps()). */
#define SMTPC_CAP_PIPELINING	0x0001
#define SMTPC_CAP_SIZE		0x0002
#define SMTPC_CAP_8BITMIME	0x0004
#define SMTPC_CAP_SMTPUTF8	0x0008
#define SMTPC_CAP_DSN		0x0010
#define SMTPC_CAP_CHUNKING	0x0020
#define SMTPC_CAP_BINARYMIME	0x0040
#define SMTPC_CAP_STARTTLS	0x0080
#define SMTPC_CAP_ENHANCEDSTATUSCODES 0x0100
#define SMTPC_CAP_AUTH		0x0200	/* AUTH, any mechanisms */

enum smtpc_proto {
	SMTPC_SMTP,
	SMTPC_LMTP,	/* LHLO only, one final reply per recipient */
};

struct smtpc_config {
	enum smtpc_proto proto;
	const char *helo;	/* our name for EHLO/LHLO/HELO */
	const char *peer_name;	/* MX host name: texts, logs, TLS SNI */
	const struct sockaddr *addr;	/* AF_INET, AF_INET6, AF_UNIX */
	socklen_t addrlen;
	const struct sockaddr *bind;	/* source address or NULL */
	socklen_t bindlen;
	bool starttls;		/* STARTTLS when offered (no verification) */
	SSL_CTX *ssl_ctx;	/* from smtpc_ssl_ctx_new(); NULL: never TLS */
	/*
	 * Seconds (RFC 5321 4.5.3.2; 0 means a default: 30, 300, 600):
	 * timeout_connect for the TCP connect; timeout_command for each
	 * reply to a command, the greeting, STARTTLS's handshake and the
	 * 354 included; timeout_data for each block of content written
	 * and for the reply to the end of data.
	 */
	unsigned int timeout_connect;
	unsigned int timeout_command;
	unsigned int timeout_data;
	/*
	 * SMTP AUTH (RFC 4954) after the last EHLO, before SMTPC_READY, or
	 * NULL: no AUTH. Both or neither. The connection then insists on
	 * TLS (starttls and ssl_ctx must allow it): without TLS, or when the
	 * peer offers neither PLAIN nor LOGIN, it sends QUIT and fails TEMP
	 * without sending them. PLAIN is preferred (one round trip), LOGIN
	 * is the fallback. A refusal (4xx or 5xx, 535 wrong password
	 * included) fails TEMP as well, never PERM: the peer's reply stays
	 * in the text ("454 4.7.8 SASL authentication failed; server
	 * HOST[ADDR] said: 535 5.7.8 ..."), see smtpc_auth_refused(). The
	 * strings are copied; the copy of the password is wiped.
	 */
	const char *auth_user;
	const char *auth_password;
};

/*
 * A reply. text is the whole reply as received, lines joined with one
 * space ("550-5.1.1 a 550 5.1.1 b"), at most sizeof(text) - 1 octets,
 * control characters replaced by '?'. enhanced is "5.1.1" when the first
 * line carries an RFC 3463 code of the reply's class, else "". Replies the
 * client makes up itself have the same form: "451 4.4.1 connect to
 * mx.example[192.0.2.1]:25: Connection refused". code 0: no reply.
 */
struct smtpc_reply {
	int code;
	char enhanced[16];
	char text[1024];
};

enum smtpc_status {
	SMTPC_OK,	/* delivered (accepted by the peer) */
	SMTPC_TEMP,	/* try again later */
	SMTPC_PERM,	/* failed for good (bounce) */
};

struct smtpc_rcpt {
	/* in */
	const char *addr;	/* "user@domain", no angle brackets */
	unsigned int notify;	/* SMTPC_NOTIFY_* bits, 0: none given */
	const char *orcpt;	/* "rfc822;xtext" as received, or NULL */
	/* out, final at SMTPC_DONE */
	enum smtpc_status status;
	struct smtpc_reply reply;
};

/*
 * The message content: CRLF lines, NOT dot-stuffed (as in the spool).
 * next() returns 1 with a chunk in *data and *len (valid until the next
 * call; *len may be 0), 0 at the end, or -1 with errno set (EBADMSG:
 * the stored content is corrupt). The client calls it only while the
 * peer is ready for content; a failure drops the connection (the content
 * cannot be taken back) and gives the accepted recipients TEMP.
 */
struct smtpc_source {
	int (*next)(void *arg, const char **data, size_t *len);
	void *arg;
};

struct smtpc_msg {
	const char *sender;	/* "" for the null sender <> */
	int body;		/* enum smtpc_body (== enum smtp_body) */
	bool smtputf8;		/* needs SMTPUTF8 (RFC 6531) */
	uint64_t size;		/* content octets (SIZE=, RFC 1870); 0: unknown */
	int ret;		/* enum smtpc_ret (== enum smtp_ret) */
	const char *envid;	/* ENVID xtext or NULL */
	bool dsn;		/* pass NOTIFY/ORCPT/RET/ENVID to a DSN peer */
	bool eight_bit;		/* content has octets >= 0x80 */
	size_t longest_line;	/* longest line in octets, CRLF excluded */
	struct smtpc_rcpt *rcpts;
	size_t nrcpts;
	struct smtpc_source src;
	/*
	 * out, at SMTPC_DONE: SMTPC_OK with the peer's final reply (or
	 * code 0 when no recipient was accepted), or the message-level
	 * failure that every recipient without a reply of its own shares:
	 * MAIL refused, a local refusal (8BITMIME, SMTPUTF8, line length,
	 * SIZE), DATA refused, the final reply (SMTP), lost connection.
	 */
	enum smtpc_status status;
	struct smtpc_reply reply;
};

enum smtpc_event {
	SMTPC_READY,	/* greeting, EHLO (TLS, AUTH) done: smtpc_send() */
	SMTPC_FAILED,	/* the connection could not be set up */
	SMTPC_DONE,	/* the message given to smtpc_send() is finished */
	SMTPC_CLOSED,	/* the connection is gone (after smtpc_quit()...) */
};

typedef void (*smtpc_cb)(struct smtpc *c, enum smtpc_event ev, void *arg);

/*
 * Start a connection. Never returns NULL; every failure (socket, bind,
 * connect, timeout) arrives as SMTPC_FAILED from the loop. conf and the
 * strings and addresses it points to are copied.
 */
struct smtpc *smtpc_open(struct event_base *base,
    const struct smtpc_config *conf, smtpc_cb cb, void *arg);

/*
 * Send one message; only on an idle connection (after SMTPC_READY or
 * SMTPC_DONE with smtpc_reusable()). Returns 0, or -1 with errno EBUSY
 * (not idle) or EINVAL (no recipients). Resets every recipient's status
 * to TEMP first. Refusals that need no round trip (8-bit content for a
 * peer without 8BITMIME: 554 5.6.3; SMTPUTF8: 553 5.6.7; a line over 998
 * octets: 554 5.6.0; SIZE: 552 5.3.4) are PERM for every recipient, send
 * nothing, and still come as SMTPC_DONE from the loop. A recipient whose
 * address or ORCPT holds a control character is refused (553 5.1.3)
 * without being sent.
 */
int smtpc_send(struct smtpc *c, struct smtpc_msg *msg);

/*
 * Say QUIT, wait briefly for the reply, close; then SMTPC_CLOSED. On a
 * connection that is not idle (set-up or a message in progress) it drops
 * the connection at once: a message in progress gets TEMP for every
 * recipient without a final status, and only SMTPC_CLOSED follows (no
 * SMTPC_DONE). After SMTPC_FAILED or SMTPC_CLOSED it does nothing.
 */
void smtpc_quit(struct smtpc *c);

/* Drop the connection and free everything, at any time (also from the
 * callback); no callback after it. smtpc_free(NULL) is a no-op. */
void smtpc_free(struct smtpc *c);

/*
 * After SMTPC_FAILED: the peer's reply (421 or 5xx greeting, EHLO/HELO
 * refused) or a made-up one ("451 4.4.1 connect to HOST[ADDR]:PORT:
 * Connection refused", "451 4.4.2 conversation with HOST[ADDR] timed out
 * while receiving the initial server greeting", "454 4.7.0 HOST[ADDR]
 * offers no TLS: ...", "454 4.7.8 SASL authentication failed; ...").
 * After SMTPC_DONE on a connection that is no longer reusable, or
 * SMTPC_CLOSED that did not follow a 221 to QUIT: why the connection
 * ended (a 421, a lost connection, a timeout, a protocol error). Code 0
 * when nothing went wrong.
 */
const struct smtpc_reply *smtpc_last_error(const struct smtpc *c);

/* SMTPC_PERM when the peer refused us with 5xx (greeting, EHLO and HELO,
 * LHLO): no use retrying this host soon; else SMTPC_TEMP (always after
 * an AUTH failure of any kind). */
enum smtpc_status smtpc_failure_status(const struct smtpc *c);

/* After SMTPC_FAILED: the peer answered our AUTH with 5xx (535: wrong
 * credentials): another address of the same service would say the same,
 * and trying them all only adds failed logins. */
bool smtpc_auth_refused(const struct smtpc *c);

/* AUTH succeeded on this connection (it stays authenticated for every
 * message it carries: RSET does not undo it, RFC 4954 4). */
bool smtpc_authenticated(const struct smtpc *c);

/* The STARTTLS handshake itself failed (or timed out): the caller may
 * retry this host without TLS. */
bool smtpc_tls_failed(const struct smtpc *c);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" once TLS is up, else NULL. */
const char *smtpc_tls_info(const struct smtpc *c);

/* Idle, connected and in a known state: may carry another message. */
bool smtpc_reusable(const struct smtpc *c);

/* SMTPC_CAP_* bits of the last EHLO/LHLO reply (0 after HELO). */
unsigned int smtpc_caps(const struct smtpc *c);

/* The peer's SIZE limit (RFC 1870), 0 when none was announced. */
uint64_t smtpc_max_size(const struct smtpc *c);

/* "HOST[ADDR]" for log lines and texts (ADDR is the socket path for
 * AF_UNIX). */
const char *smtpc_peer(const struct smtpc *c);

/*
 * A client SSL_CTX for opportunistic TLS: TLS 1.2 or later, no
 * certificate verification (RFC 7435), no compression, unexpected EOF
 * tolerated. Returns NULL with a message in err (errlen bytes) on failure.
 * The caller frees it with SSL_CTX_free() (connections hold references).
 */
SSL_CTX *smtpc_ssl_ctx_new(char *err, size_t errlen);

#endif
