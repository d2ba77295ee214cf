/*
 * lmtp.h: local delivery over LMTP (`deliver lmtp unix:/PATH` or
 * `deliver lmtp inet:HOST:PORT`, issue 6). With it, every local
 * recipient goes to that LMTP server (Dovecot's lmtp) instead of a
 * Maildir: the scheduler hands local recipients to remote.c like remote
 * ones, and remote.c sends them to the destination conf->deliver_lmtp
 * names, through the same client, connections and back-offs as a
 * transport file's lmtp: lines. This header holds the small pieces that
 * are specific to it; the connection code is remote.c's.
 */
#ifndef PETREL_DELIVERY_LMTP_H
#define PETREL_DELIVERY_LMTP_H

#include <stdbool.h>
#include <stddef.h>

struct conf;
struct envelope_rcpt;

/*
 * Does rcpt go through remote.c under c (a remote recipient, or a local
 * one with `deliver lmtp`)? Local recipients under `deliver maildir` do
 * not.
 */
bool lmtp_via_client(const struct conf *c, const struct envelope_rcpt *r);

/*
 * A local recipient's address as RCPT TO needs it: NULL when addr can go
 * as it is (its local part is a Dot-string), else a new string with the
 * local part as a Quoted-string (RFC 5321 4.1.2), for the caller to free.
 * Local addresses are stored unquoted (policy_rcpt_resolve).
 */
char *lmtp_rcpt_addr(const char *addr);

enum lmtp_check {
	LMTP_CHECK_OK,		/* nothing to say (or `deliver maildir`) */
	LMTP_CHECK_WARN,	/* mail would wait in the queue: msg says why */
	LMTP_CHECK_ERROR,	/* the target can never work: msg says why */
};

/*
 * For `petrel check-config` (blocking; never from the daemon): look at
 * the `deliver lmtp` target of c. unix: a path that exists and is not a
 * socket is an error; no socket there, or one that refuses a connection,
 * is a warning (Dovecot may not be running yet). inet: a host that does
 * not resolve, or nothing listening (a connect with a 3 s timeout), is a
 * warning. Nothing is sent to the server. msg gets one line without
 * "\n".
 */
enum lmtp_check lmtp_check_target(const struct conf *c, char *msg,
    size_t msgsize);

#endif
