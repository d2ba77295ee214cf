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
 * An alias with a |command or /file target is an error in the file
 * ("|command targets are not supported: Petrel never runs a shell").
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

enum policy_rcpt {
	POLICY_RCPT_OK,
	POLICY_RCPT_UNKNOWN,	/* 550 5.1.1 */
	POLICY_RCPT_UNSAFE,	/* 550 5.1.3: mailbox would escape root */
	POLICY_RCPT_REFUSED,	/* 550 5.3.5: |command or /file target */
	POLICY_RCPT_LOOP,	/* 550 5.1.1 too: expansion found no user */
};

struct policy_target {
	char *addr;		/* final address, lower-cased domain */
	char *mailbox;		/* Maildir path for local targets, else NULL */
	bool local;
};

/*
 * Resolve a recipient in a local domain. localpart is unquoted (see
 * smtp_localpart_unquote), domain is lower-case. Aliases are expanded
 * recursively (depth POLICY_ALIAS_DEPTH, loops detected, duplicates
 * removed); targets outside our domains are remote (forwarded with the
 * envelope sender kept). On POLICY_RCPT_OK, *targets_r is a new array of
 * *ntargets_r entries, freed with policy_targets_free().
 */
enum policy_rcpt policy_rcpt_resolve(const struct policy_tables *t,
    const struct conf *c, const char *localpart, const char *domain,
    struct policy_target **targets_r, size_t *ntargets_r);
void policy_targets_free(struct policy_target *targets, size_t n);

/*
 * Expand c->maildir (%d domain, %u local part, lower-cased) into out.
 * Returns 0, or -1 when either part is empty, contains '/', NUL or a
 * control character, is "." or "..", starts with '.', or the result does
 * not fit. UTF-8 is allowed (it cannot form '/' or '.').
 */
int policy_mailbox_path(const struct conf *c, const char *localpart,
    const char *domain, char *out, size_t outsize);

#endif
