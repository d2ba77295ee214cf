/*
 * policy.h: decisions the session asks for: may this client relay, and
 * where does a recipient's mail go (users, aliases, catch-all).
 *
 * The tables (users and aliases files) are loaded into memory once per
 * configuration load; a reload builds new tables and swaps them.
 *
 * SECURITY: recipient addresses are untrusted. policy_mailbox_path() is the
 * one place that turns a local part and domain into a filesystem path, and
 * it refuses anything that could leave the Maildir root.
 */
#ifndef PETREL_POLICY_POLICY_H
#define PETREL_POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"

#define POLICY_ALIAS_DEPTH	10	/* alias expansion depth limit */
#define POLICY_MAX_TARGETS	1000	/* targets one RCPT may expand to */

struct policy_tables;

/*
 * Load c->users and c->aliases (either may be NULL: empty table). Errors
 * are reported through cb as "FILE:LINE: message"; returns NULL if any.
 * Errors include: a users entry that could never receive mail (a part
 * policy_mailbox_path() would refuse, quotes or backslashes, a local part
 * over 64 or a domain over 255 octets); an alias target that is not a
 * mailbox (RFC 5321 syntax: spaces outside quotes, '<', '>', control
 * characters, empty parts), a missing comma between targets, and a
 * |command, /file or :include: target ("|command targets are not
 * supported: Petrel never runs a shell"). "\user" targets mean the user,
 * never an alias; quoted local parts are unquoted.
 * Warnings go to the log as "FILE:LINE: message" and do not fail the
 * load: a user outside c's local domains, and a user hidden by a "local"
 * alias of the same name that does not deliver to it.
 */
struct policy_tables *policy_tables_load(const struct conf *c,
    conf_error_cb cb, void *arg);
void policy_tables_free(struct policy_tables *t);

/*
 * The user's password hash from the users file ("" for receive-only), or
 * NULL if address (any case) is not a user.
 */
const char *policy_user_hash(const struct policy_tables *t,
    const char *address);

/*
 * The result of policy_rcpt_resolve(). The replies in brackets are what
 * the session is expected to send; the mapping lives in src/smtp.
 */
enum policy_rcpt {
	/* Resolved: *targets_r holds at least one target. */
	POLICY_RCPT_OK,
	/*
	 * No such recipient: neither an alias, a user, postmaster nor a
	 * catch-all matches, or it is an alias every one of whose members
	 * is unknown (each such member is logged). [550 5.1.1]
	 */
	POLICY_RCPT_UNKNOWN,
	/* A target's Maildir path would be refused by
	 * policy_mailbox_path(). [550 5.1.3] */
	POLICY_RCPT_UNSAFE,
	/* A |command or /file target. Unreachable today: the loader
	 * refuses such files. [550 5.3.5] */
	POLICY_RCPT_REFUSED,
	/*
	 * The expansion ran into a real alias loop (a chain that comes
	 * back to an address already being expanded, not a user) and
	 * yielded no target at all. [550 5.1.1 or 5.4.6]
	 */
	POLICY_RCPT_LOOP,
	/*
	 * The expansion went past a limit: more than POLICY_MAX_TARGETS
	 * targets, aliases nested deeper than POLICY_ALIAS_DEPTH, or more
	 * addresses examined than the work bound. A configuration problem
	 * (logged); nothing is delivered. [a 5xx or 4xx "system
	 * incorrectly configured", X.3.5, chosen by the session]
	 */
	POLICY_RCPT_TOO_MANY,
};

struct policy_target {
	char *addr;		/* final address, lower-cased domain;
				 * local: all lower-case, unquoted */
	char *mailbox;		/* Maildir path for local targets, else NULL */
	bool local;
};

/*
 * Resolve a recipient in a local domain. localpart is unquoted (see
 * smtp_localpart_unquote), domain is lower-case. Aliases are expanded
 * recursively (depth POLICY_ALIAS_DEPTH, loops detected, duplicates
 * removed in O(1) each); targets outside our domains are remote
 * (forwarded with the envelope sender kept). A remote target's addr keeps
 * the local part's case (RFC 5321 2.4: Bob@x and bob@x are two targets)
 * and is in RCPT TO form: quoted where it is not a Dot-string. A member
 * that does not exist is skipped and logged with its alias. On
 * POLICY_RCPT_OK, *targets_r is a new array of *ntargets_r entries, freed
 * with policy_targets_free(); otherwise it is NULL.
 */
enum policy_rcpt policy_rcpt_resolve(const struct policy_tables *t,
    const struct conf *c, const char *localpart, const char *domain,
    struct policy_target **targets_r, size_t *ntargets_r);
void policy_targets_free(struct policy_target *targets, size_t n);

/*
 * sender_login: may the authenticated user send as localpart@domain
 * (localpart unquoted, domain lower-case)? Yes when it is the user's own
 * address (ASCII case ignored), or when it is an alias, named in the
 * aliases file by its full address or by its local part (not a catch-all
 * "@domain"), whose expansion reaches the user. A user name without '@'
 * (an `auth dovecot` login such as "alice") owns that local part in
 * every local domain.
 */
bool policy_sender_owned(const struct policy_tables *t, const struct conf *c,
    const char *user, const char *localpart, const char *domain);

/*
 * Expand c->maildir (%d domain, %u local part, lower-cased) into out.
 * Returns 0, or -1 when either part is empty, contains '/', NUL or a
 * control character, is "." or "..", starts with '.', or the result does
 * not fit. UTF-8 is allowed (it cannot form '/' or '.').
 */
int policy_mailbox_path(const struct conf *c, const char *localpart,
    const char *domain, char *out, size_t outsize);

#endif
