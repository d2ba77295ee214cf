/*
 * envelope.h: what the queue keeps about a message besides its content:
 * the sender with every ESMTP parameter, where the message came from, and
 * per recipient the original and rewritten address and delivery state.
 *
 * OWNERSHIP: every string is owned by the envelope; envelope_free()
 * releases all of them. envelope_rcpt_add() copies its arguments.
 */
#ifndef PETREL_QUEUE_ENVELOPE_H
#define PETREL_QUEUE_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUEUE_ID_MAX	32	/* "1H2K3J4L5M6N7P8Q" plus room */

enum rcpt_status {
	RCPT_STATUS_PENDING = 0,	/* not yet delivered; retry at next */
	RCPT_STATUS_DELIVERED,
	RCPT_STATUS_FAILED,		/* permanent failure, bounced */
};

enum rcpt_kind {
	RCPT_KIND_LOCAL = 0,	/* Maildir */
	RCPT_KIND_REMOTE,	/* forwarded: outbound delivery */
};

/* Notices already sent for a recipient (RFC 3464 DSNs). */
#define RCPT_FLAG_BOUNCED	0x01	/* failure DSN queued (or not wanted) */
#define RCPT_FLAG_DELAYED	0x02	/* delay DSN queued */
#define RCPT_FLAG_NOTIFIED	0x04	/* success or relayed DSN queued, or
					 * none owed (a DSN peer reports) */
#define RCPT_FLAG_HELD		0x08	/* message on hold (`petrel queue
					 * hold`): set on every recipient;
					 * queue format v4 */
#define RCPT_FLAGS_ALL		0x0f

struct envelope_rcpt {
	char *orig;		/* address as given in RCPT TO (no <>) */
	char *addr;		/* rewritten: final destination address */
	char *mailbox;		/* local: Maildir path; remote: NULL */
	enum rcpt_kind kind;
	unsigned int notify;	/* SMTP_NOTIFY_* bits */
	char *orcpt;		/* ORCPT xtext or NULL */

	/* Delivery state, updated in place in the queue file. */
	enum rcpt_status status;
	uint32_t attempts;
	uint64_t next_attempt;	/* unix seconds */
	char last_reply[1024];	/* "452 4.3.1 disk full" or "" */
	uint32_t flags;		/* RCPT_FLAG_* */
	uint64_t last_attempt;	/* unix seconds, 0: never tried */
	char remote_mta[256];	/* host that gave last_reply, or "" */
};

struct envelope {
	char *sender;		/* "" for <> */
	int body;		/* enum smtp_body */
	uint64_t size;		/* SIZE= declared, 0 if absent */
	bool smtputf8;
	int ret;		/* enum smtp_ret */
	char *envid;		/* or NULL */
	char *auth;		/* MAIL AUTH= or NULL */

	char *client_addr;	/* "127.0.0.1" */
	char *client_name;	/* reverse DNS or NULL */
	char *helo;
	char *proto;		/* "ESMTP", "SMTP", "UTF8SMTP", ... */
	char *tls;		/* "TLSv1.3 TLS_AES_256_GCM_SHA384" or NULL */
	char *auth_user;	/* authenticated user or NULL */
	/*
	 * Header fields computed after the content was received
	 * (Authentication-Results, DKIM-Signature), CRLF-terminated lines,
	 * delivered in front of the content; or NULL.
	 */
	char *prepend;
	uint64_t arrival;	/* unix seconds */

	struct envelope_rcpt *rcpts;
	size_t nrcpts;
};

void envelope_init(struct envelope *env);
void envelope_free(struct envelope *env);	/* deinit; env reusable */

/* Append a recipient; returns its index. */
size_t envelope_rcpt_add(struct envelope *env, const char *orig,
    const char *addr, const char *mailbox, enum rcpt_kind kind,
    unsigned int notify, const char *orcpt);

/* Deep copy. dst is initialised first: free it before if it holds data. */
void envelope_copy(struct envelope *dst, const struct envelope *src);

#endif
