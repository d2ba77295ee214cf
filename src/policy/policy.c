/*
 * policy.c: the users and aliases tables, recipient resolution and the one
 * function that turns a recipient into a Maildir path.
 *
 * Entry points: policy_tables_load/free, policy_user_hash,
 * policy_rcpt_resolve, policy_targets_free, policy_mailbox_path.
 *
 * Both tables live in open-addressing hash tables keyed by the lower-cased
 * address (or alias name), so a lookup costs O(1) with 100k users. A table
 * is never modified after it is loaded; a reload builds new ones.
 *
 * Resolution runs on the event loop for every RCPT, so its cost is linear
 * in the targets it finds: the addresses already expanded and the targets
 * already chosen are kept in hash sets (lib/strset.h), never scanned.
 *
 * SECURITY: the files are trusted (written by the administrator) but
 * checked strictly: every alias target must be a mailbox (RFC 5321
 * syntax), so no target can smuggle '>', spaces or SMTP parameters into a
 * later RCPT TO, and an alias may never name a |command, /file or
 * :include: target: Petrel never runs a shell and writes only Maildirs.
 * A users entry must be usable as a Maildir name. Recipient addresses are
 * untrusted: resolution is bounded in depth (POLICY_ALIAS_DEPTH), in
 * results (POLICY_MAX_TARGETS) and in work (a visited set), and
 * policy_mailbox_path() refuses any local part or domain that could leave
 * the Maildir root.
 * STANDARDS: aliases(5) syntax as sendmail and Postfix read it ("\user"
 * delivers to the user without further aliasing); RFC 5321 2.4 (local
 * parts are case-sensitive, so remote targets are compared as written),
 * 4.1.2 (Dot-string, Quoted-string, Domain, address literals), 4.5.1
 * (postmaster, case-insensitive), 4.5.3.1.1-2 (64-octet local part,
 * 255-octet domain); RFC 6531 3.3 (UTF-8 in atext, qtext and labels).
 * OWNERSHIP: a struct policy_tables owns every string in it; targets
 * returned by policy_rcpt_resolve belong to the caller.
 */
#include "policy/policy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/strset.h"
#include "lib/util.h"
#include "mailaddr/mailaddr.h"

#define POLICY_LINE_MAX		65536	/* longest line in a file */
#define POLICY_PART_MAX		255	/* longest %u or %d: NAME_MAX */
/* Addresses one resolution may look at, duplicates included: bounds the
 * work of a fan-out (each alias may name POLICY_MAX_TARGETS members). */
#define POLICY_MAX_VISITS	(8 * POLICY_MAX_TARGETS)

/* ---- a string-keyed hash table (open addressing, linear probing) ---- */

struct ptab_entry {
	char *key;		/* NULL: empty slot */
	void *val;
};

struct ptab {
	struct ptab_entry *v;
	size_t cap;		/* power of two, or 0 */
	size_t n;
};

struct alias_target {
	char *lp;		/* local part, unquoted, case as written */
	char *dom;		/* lower-case domain; NULL: the domain of
				 * the address being expanded */
	bool noexpand;		/* "\user": a user, never an alias */
};

struct alias {
	struct alias_target *targets;
	size_t ntargets;
	const char *name;	/* its key in the table (owned there) */
	unsigned long line;	/* where the alias starts */
	bool bad;		/* a target was refused (reported) */
};

struct policy_tables {
	struct ptab users;	/* address -> password hash */
	struct ptab aliases;	/* name -> struct alias */
};

static uint64_t
ptab_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;	/* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct ptab_entry *
ptab_slot(const struct ptab *pt, const char *key)
{
	size_t i;

	if (pt->cap == 0)
		return NULL;
	i = (size_t)ptab_hash(key) & (pt->cap - 1);
	while (pt->v[i].key != NULL && strcmp(pt->v[i].key, key) != 0)
		i = (i + 1) & (pt->cap - 1);
	return &pt->v[i];
}

static void *
ptab_get(const struct ptab *pt, const char *key)
{
	struct ptab_entry *e = ptab_slot(pt, key);

	return e != NULL && e->key != NULL ? e->val : NULL;
}

static bool
ptab_has(const struct ptab *pt, const char *key)
{
	struct ptab_entry *e = ptab_slot(pt, key);

	return e != NULL && e->key != NULL;
}

/* Insert key (taken over) unless present. Returns false if present. */
static bool
ptab_put(struct ptab *pt, char *key, void *val)
{
	struct ptab_entry *e, *old;
	size_t i, oldcap;

	if ((pt->n + 1) * 2 > pt->cap) {
		old = pt->v;
		oldcap = pt->cap;
		pt->cap = oldcap ? oldcap * 2 : 16;
		pt->v = xcalloc(pt->cap, sizeof(*pt->v));
		for (i = 0; i < oldcap; i++)
			if (old[i].key != NULL)
				*ptab_slot(pt, old[i].key) = old[i];
		free(old);
	}
	e = ptab_slot(pt, key);
	if (e->key != NULL)
		return false;
	e->key = key;
	e->val = val;
	pt->n++;
	return true;
}

static void
ptab_free(struct ptab *pt, void (*val_free)(void *))
{
	size_t i;

	for (i = 0; i < pt->cap; i++) {
		if (pt->v[i].key == NULL)
			continue;
		free(pt->v[i].key);
		if (val_free != NULL)
			val_free(pt->v[i].val);
	}
	free(pt->v);
	pt->v = NULL;
	pt->cap = pt->n = 0;
}

static void
alias_free(void *p)
{
	struct alias *a = p;
	size_t i;

	for (i = 0; i < a->ntargets; i++) {
		free(a->targets[i].lp);
		free(a->targets[i].dom);
	}
	free(a->targets);
	free(a);
}

/* ---- names: Maildir components, mailboxes, alias targets ---- */

/* May s become one path component below the Maildir root? */
static bool
is_safe_part(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > POLICY_PART_MAX || s[0] == '.')
		return false;	/* also ".", ".." and ".hidden" */
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '/' || ch < 0x20 || ch == 0x7f)
			return false;
	}
	return true;
}

/*
 * Is all of s an RFC 5321 Domain (labels of letters, digits and hyphens,
 * or RFC 6531 U-labels) or an address literal?
 */
static bool
is_target_domain(const char *s)
{
	const char *end;

	end = mailaddr_scan_domain_or_literal(s, MAILADDR_UTF8, NULL);
	return end != NULL && *end == '\0';
}

/* Why the character at p cannot be there, for an error message. */
static void
policy_why_char(char *why, size_t size, const char *p)
{
	unsigned char c = (unsigned char)*p;

	if (c == ' ')
		strlcpy(why, "space outside quotes", size);
	else if (c < 0x20 || c == 0x7f)
		strlcpy(why, "control character", size);
	else if (c >= 0x80)
		strlcpy(why, "invalid UTF-8", size);
	else
		snprintf(why, size, "unexpected '%c'", c);
}

/*
 * Parse s as a mailbox, "local" or "local@domain", where local is a
 * Dot-string or a Quoted-string (RFC 5321 4.1.2). *lp_r is the local part
 * unquoted as smtp_localpart_unquote() does it for RCPT (quotes and
 * quoted-pair backslashes removed) but with its case kept: a remote local
 * part is case-sensitive (RFC 5321 2.4), and a local one is lower-cased
 * where it is looked up. *dom_r is the lower-cased domain, or NULL.
 * Returns 0, or -1 with the reason in why. The grammar is src/mailaddr's,
 * the one RCPT TO is parsed with; the 64-octet limit here counts the local
 * part unquoted (RCPT counts the octets between the quotes as written).
 */
static int
policy_target_parse(const char *s, char **lp_r, char **dom_r, char *why,
    size_t whysize)
{
	char lp[MAILADDR_LOCALPART_MAX + 1];
	const char *p, *bad = s;

	*lp_r = *dom_r = NULL;
	if (*s == '\0') {
		strlcpy(why, "empty address", whysize);
		return -1;
	}
	if (*s == '"')
		p = mailaddr_scan_quoted_string(s, MAILADDR_UTF8, NULL, &bad);
	else if ((p = mailaddr_scan_dot_string(s, MAILADDR_UTF8, NULL,
	    &bad)) == NULL) {
		/* bad is s, or the octet after a '.'. */
		if (bad == s && *bad == '@')
			strlcpy(why, "empty local part", whysize);
		else if (bad > s)
			strlcpy(why, "unexpected '.'", whysize);
		else
			policy_why_char(why, whysize, bad);
		return -1;
	}
	/*
	 * The limit applies to the local part unquoted, and a quoted one
	 * that goes past it is too long even if it is malformed later on:
	 * what comes before the error is measured first.
	 */
	if (mailaddr_localpart_unquote(s, (size_t)((p != NULL ? p : bad) - s),
	    lp, sizeof(lp)) == -1) {
		strlcpy(why, "local part longer than 64 octets", whysize);
		return -1;
	}
	if (p == NULL) {
		if (*bad == '\0')
			strlcpy(why, "unterminated quote", whysize);
		else if (*bad == '\\')
			strlcpy(why, "invalid quoted pair", whysize);
		else
			policy_why_char(why, whysize, bad);
		return -1;
	}
	if (lp[0] == '\0') {
		strlcpy(why, "empty local part", whysize);
		return -1;
	}
	if (*p != '\0' && *p != '@') {
		policy_why_char(why, whysize, p);
		return -1;
	}
	if (*p == '@') {
		p++;
		if (*p == '\0') {
			strlcpy(why, "empty domain", whysize);
			return -1;
		}
		if (strlen(p) > MAILADDR_DOMAIN_MAX) {
			strlcpy(why, "domain longer than 255 octets", whysize);
			return -1;
		}
		if (!is_target_domain(p)) {
			strlcpy(why, "invalid domain", whysize);
			return -1;
		}
		*dom_r = xstrdup(p);
		ascii_lowercase(*dom_r);
	}
	*lp_r = xstrdup(lp);
	return 0;
}

/*
 * The address of a remote target as it will go into RCPT TO: the local
 * part as a Quoted-string ('"' and '\' as quoted pairs) unless it is a
 * Dot-string, the domain lower-cased.
 */
static char *
policy_remote_addr(const char *lp, const char *dom)
{
	char *addr, *q, *o;
	const char *p;

	/* A Dot-string needs no quotes (RFC 5321 4.1.2). */
	p = mailaddr_scan_dot_string(lp, MAILADDR_UTF8, NULL, NULL);
	if (p != NULL && *p == '\0')
		addr = xasprintf("%s@%s", lp, dom);
	else {
		o = q = xmalloc(2 * strlen(lp) + 3);
		*o++ = '"';
		for (p = lp; *p != '\0'; p++) {
			if (*p == '"' || *p == '\\')
				*o++ = '\\';
			*o++ = *p;
		}
		*o++ = '"';
		*o = '\0';
		addr = xasprintf("%s@%s", q, dom);
		free(q);
	}
	ascii_lowercase(strrchr(addr, '@'));
	return addr;
}

/* ---- loading ---- */

struct policy_load {
	const char *path;
	unsigned long line;
	conf_error_cb cb;
	void *arg;
	int errors;
};

static void policy_load_error(struct policy_load *pl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void policy_load_warn(struct policy_load *pl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
policy_load_error(struct policy_load *pl, const char *fmt, ...)
{
	char msg[512];
	char *full;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (pl->line > 0)
		full = xasprintf("%s:%lu: %s", pl->path, pl->line, msg);
	else
		full = xasprintf("%s: %s", pl->path, msg);
	if (pl->cb != NULL)
		pl->cb(pl->arg, full);
	free(full);
	pl->errors++;
}

/*
 * Something legal but almost certainly not meant: the log, as FILE:LINE
 * like an error, and the load goes on.
 */
static void
policy_load_warn(struct policy_load *pl, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("%s:%lu: %s", pl->path, pl->line, msg);
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Trim spaces and tabs at both ends, in place. */
static char *
trim(char *s)
{
	size_t n;

	while (is_space(*s))
		s++;
	n = strlen(s);
	while (n > 0 && is_space(s[n - 1]))
		s[--n] = '\0';
	return s;
}

static bool
has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return true;
	return false;
}

/* A printable copy of admin text for error messages. */
static const char *
esc(char *dst, size_t size, const char *s)
{
	return log_escape(dst, size, s, strlen(s));
}

/*
 * Read the next line into *linep (without CR LF). Returns 1, 0 at end of
 * file, -1 on a read error or an overlong line (reported).
 */
static int
policy_read_line(struct policy_load *pl, FILE *fp, char **linep,
    size_t *capp)
{
	ssize_t n;

	errno = 0;
	n = getline(linep, capp, fp);
	if (n == -1) {
		if (errno != 0 && !feof(fp)) {
			policy_load_error(pl, "read error: %s",
			    strerror(errno));
			return -1;
		}
		return 0;
	}
	pl->line++;
	if (n > POLICY_LINE_MAX) {
		policy_load_error(pl, "line too long (more than %d bytes)",
		    POLICY_LINE_MAX);
		(*linep)[0] = '\0';
		return 1;
	}
	if ((size_t)n != strlen(*linep)) {
		policy_load_error(pl, "NUL byte in line");
		(*linep)[0] = '\0';
		return 1;
	}
	while (n > 0 && ((*linep)[n - 1] == '\n' || (*linep)[n - 1] == '\r'))
		(*linep)[--n] = '\0';
	return 1;
}

static FILE *
policy_open(struct policy_load *pl)
{
	FILE *fp;

	fp = fopen(pl->path, "re");
	if (fp == NULL) {
		pl->line = 0;
		policy_load_error(pl, "cannot open: %s", strerror(errno));
	}
	return fp;
}

/* "local@domain" with both parts non-empty and exactly one '@'. */
static bool
is_plain_address(const char *s)
{
	const char *at = strchr(s, '@');

	return at != NULL && at != s && at[1] != '\0' &&
	    strchr(at + 1, '@') == NULL;
}

/*
 * One users line. The key is matched against the unquoted, lower-cased
 * local part of a RCPT and becomes a Maildir name, so anything that can
 * never match or never be a Maildir is an error here, not a silent
 * dead entry.
 */
static void
policy_users_line(struct policy_load *pl, const struct conf *c,
    struct ptab *users, char *line)
{
	char e1[128];
	char *colon, *addr, *hash, *key, *at;

	if (*trim(line) == '\0' || *trim(line) == '#')
		return;
	colon = strchr(line, ':');
	if (colon == NULL) {
		policy_load_error(pl, "missing ':'");
		return;
	}
	*colon = '\0';
	addr = trim(line);
	hash = trim(colon + 1);
	if (*addr == '\0') {
		policy_load_error(pl, "empty address");
		return;
	}
	if (strchr(addr, '@') == NULL) {
		policy_load_error(pl, "address without @: %s",
		    esc(e1, sizeof(e1), addr));
		return;
	}
	if (!is_plain_address(addr) || has_ctl(addr) ||
	    strpbrk(addr, " \t") != NULL) {
		policy_load_error(pl, "invalid address: %s",
		    esc(e1, sizeof(e1), addr));
		return;
	}
	if (strpbrk(addr, "\"\\") != NULL) {
		policy_load_error(pl, "quotes and backslashes are not allowed "
		    "(write the local part unquoted): %s",
		    esc(e1, sizeof(e1), addr));
		return;
	}
	at = strchr(addr, '@');
	if ((size_t)(at - addr) > MAILADDR_LOCALPART_MAX) {
		policy_load_error(pl, "local part longer than %d octets",
		    MAILADDR_LOCALPART_MAX);
		return;
	}
	if (strlen(at + 1) > MAILADDR_DOMAIN_MAX) {
		policy_load_error(pl, "domain longer than %d octets",
		    MAILADDR_DOMAIN_MAX);
		return;
	}
	*at = '\0';
	if (!is_safe_part(addr) || !is_safe_part(at + 1)) {
		bool lp_bad = !is_safe_part(addr);

		policy_load_error(pl, "%s %s cannot be a Maildir name (a "
		    "leading '.' or a '/')", lp_bad ? "local part" : "domain",
		    esc(e1, sizeof(e1), lp_bad ? addr : at + 1));
		return;
	}
	*at = '@';
	if (has_ctl(hash) || strpbrk(hash, " \t") != NULL) {
		policy_load_error(pl, "invalid password hash for %s",
		    esc(e1, sizeof(e1), addr));
		return;
	}
	key = xstrdup(addr);
	ascii_lowercase(key);
	if (ptab_has(users, key)) {
		policy_load_error(pl, "duplicate user %s",
		    esc(e1, sizeof(e1), key));
		free(key);
		return;
	}
	ptab_put(users, key, xstrdup(hash));
	at = strchr(key, '@');
	if (!conf_is_local_domain(c, at + 1)) {
		char e2[128];

		/* It may still log in (submission), so not an error. */
		policy_load_warn(pl, "user %s: %s is not a local domain, so "
		    "this address never receives mail",
		    esc(e1, sizeof(e1), key), esc(e2, sizeof(e2), at + 1));
	}
}

static int
policy_users_load(struct policy_tables *t, const struct conf *c,
    conf_error_cb cb, void *arg)
{
	struct policy_load pl = { c->users, 0, cb, arg, 0 };
	char *line = NULL;
	size_t cap = 0;
	FILE *fp;
	int r;

	if ((fp = policy_open(&pl)) == NULL)
		return -1;
	while ((r = policy_read_line(&pl, fp, &line, &cap)) == 1)
		policy_users_line(&pl, c, &t->users, line);
	free(line);
	fclose(fp);
	return r == -1 || pl.errors > 0 ? -1 : 0;
}

static bool
is_include(const char *s)
{
	return ascii_strncasecmp(s, ":include:", 9) == 0 ||
	    ascii_strncasecmp(s, "include:", 8) == 0;
}

/*
 * "alice bob": white space outside quotes between words that are each a
 * target. aliases(5) separates targets with commas; guessing would turn
 * "bob smith@remote.test" into two recipients.
 */
static bool
is_missing_comma(const char *tok)
{
	char why[64];
	char *copy, *p, *word, *lp, *dom;
	bool quoted = false, ok = true;
	int words = 0;

	copy = xstrdup(tok);
	for (p = copy; ok;) {
		while (is_space(*p))
			p++;
		if (*p == '\0')
			break;
		for (word = p; *p != '\0' && (quoted || !is_space(*p)); p++) {
			if (quoted && *p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '"')
				quoted = !quoted;
		}
		if (*p != '\0')
			*p++ = '\0';
		if (*word == '\\')
			word++;
		if (policy_target_parse(word, &lp, &dom, why,
		    sizeof(why)) == -1)
			ok = false;
		else {
			free(lp);
			free(dom);
			words++;
		}
	}
	free(copy);
	return ok && words >= 2;
}

/*
 * One target, as written between commas (trimmed, not empty). Returns -1
 * when the alias is full (reported), else 0.
 */
static int
policy_alias_target(struct policy_load *pl, struct alias *a, char *tok)
{
	struct alias_target *at;
	char e1[128], why[64];
	char *lp, *dom, *q;
	size_t n = strlen(tok);
	bool noexpand = false;

	esc(e1, sizeof(e1), tok);
	if (n >= 2 && tok[0] == '<' && tok[n - 1] == '>') {
		tok[n - 1] = '\0';
		tok = trim(tok + 1);
		n = strlen(tok);
	}
	/*
	 * aliases(5) lets a whole target be quoted: "|cmd", "/file name",
	 * "user@domain". Any other leading quote opens a quoted local part
	 * ("John Doe"@example.test, ".hidden").
	 */
	if (n >= 2 && tok[0] == '"' && tok[n - 1] == '"' &&
	    memchr(tok + 1, '"', n - 2) != NULL)
		;	/* "a\"b"@x: quotes inside, a local part */
	else if (n >= 2 && tok[0] == '"' && tok[n - 1] == '"') {
		q = tok + 1;
		while (is_space(*q))
			q++;
		if (*q == '|' || *q == '/' || is_include(q) ||
		    memchr(tok + 1, '@', n - 2) != NULL) {
			tok[n - 1] = '\0';
			tok = trim(tok + 1);
		}
	}
	/* aliases(5) "\user": this user's mailbox, no further aliasing. */
	if (*tok == '\\') {
		noexpand = true;
		tok++;
	}
	if (*tok == '|') {
		policy_load_error(pl, "|command targets are not "
		    "supported: Petrel never runs a shell");
		return 0;
	}
	if (*tok == '/') {
		policy_load_error(pl, "/file targets are not "
		    "supported: Petrel delivers only to Maildirs");
		return 0;
	}
	if (is_include(tok)) {
		policy_load_error(pl, ":include: targets are not "
		    "supported: list every target in the aliases file");
		return 0;
	}
	if (policy_target_parse(tok, &lp, &dom, why, sizeof(why)) == -1) {
		if (is_missing_comma(tok))
			policy_load_error(pl, "missing ',' between targets: "
			    "%s", e1);
		else
			policy_load_error(pl, "invalid target: %s (%s)", e1,
			    why);
		return 0;
	}
	if (a->ntargets >= POLICY_MAX_TARGETS) {
		policy_load_error(pl, "too many targets (at most %d)",
		    POLICY_MAX_TARGETS);
		free(lp);
		free(dom);
		return -1;
	}
	a->targets = xrealloc(a->targets,
	    (a->ntargets + 1) * sizeof(*a->targets));
	at = &a->targets[a->ntargets++];
	at->lp = lp;
	at->dom = dom;
	at->noexpand = noexpand;
	return 0;
}

/*
 * Split s on commas outside double quotes (a quoted pair may escape a
 * quote) and add every target to a. *open is true when the entry's
 * previous line ended in a target without a comma, so s must not start
 * with one; on return it says the same of s. Errors name pl->line.
 */
static void
policy_alias_targets(struct policy_load *pl, struct alias *a, char *s,
    bool *open)
{
	char *tok, *p;
	bool quoted, comma, first = true;
	int errors = pl->errors;

	while (*s != '\0') {
		tok = s;
		quoted = false;
		for (p = s; *p != '\0' && (quoted || *p != ','); p++) {
			if (quoted && *p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '"')
				quoted = !quoted;
		}
		if (quoted) {
			policy_load_error(pl, "unterminated quote");
			*open = false;
			break;
		}
		comma = *p == ',';
		s = comma ? p + 1 : p;
		*p = '\0';
		tok = trim(tok);
		if (first && *open && *tok != '\0')
			policy_load_error(pl, "missing ',' at the end of the "
			    "previous line");
		first = false;
		*open = *tok != '\0' && !comma;
		if (*tok == '\0')
			continue;	/* "a, , b" or a trailing comma */
		if (policy_alias_target(pl, a, tok) == -1)
			break;
	}
	if (pl->errors != errors)
		a->bad = true;
}

/* Is the alias name "local", "local@domain" or "@domain"? */
static bool
is_alias_name(const char *s)
{
	const char *at = strchr(s, '@');

	if (*s == '\0' || has_ctl(s) || strpbrk(s, " \t\"") != NULL)
		return false;
	if (at == NULL)
		return true;
	return at[1] != '\0' && strchr(at + 1, '@') == NULL;
}

/*
 * A "local" alias (a name without a domain) is looked up before the users
 * of that name in every local domain. Warn for each such user that the
 * alias does not deliver to itself ("x: \x" or "x: x, ..." keep it).
 */
static void
policy_alias_shadow(struct policy_load *pl, const struct conf *c,
    const struct policy_tables *t, const struct alias *a)
{
	const struct alias_target *tg;
	char e1[128], e2[128];
	char *addr;
	size_t i, j;
	bool kept;

	for (i = 0; i < c->ndomains; i++) {
		addr = xasprintf("%s@%s", a->name, c->domains[i]);
		ascii_lowercase(addr);
		if (!ptab_has(&t->users, addr)) {
			free(addr);
			continue;
		}
		kept = false;
		for (j = 0; j < a->ntargets && !kept; j++) {
			tg = &a->targets[j];
			kept = ascii_strcasecmp(tg->lp, a->name) == 0 &&
			    (tg->dom == NULL ||
			    ascii_strcasecmp(tg->dom, c->domains[i]) == 0);
		}
		if (!kept)
			policy_load_warn(pl, "alias %s shadows user %s (its "
			    "mail goes to the alias)",
			    esc(e1, sizeof(e1), a->name),
			    esc(e2, sizeof(e2), addr));
		free(addr);
	}
}

/* The entry a is complete (all its continuation lines read). */
static void
policy_alias_finish(struct policy_load *pl, const struct conf *c,
    const struct policy_tables *t, const struct alias *a)
{
	char e1[128];
	unsigned long line = pl->line;

	if (a == NULL)
		return;
	pl->line = a->line;
	if (a->ntargets == 0 && !a->bad)
		policy_load_error(pl, "alias %s has no targets",
		    esc(e1, sizeof(e1), a->name));
	if (strchr(a->name, '@') == NULL)
		policy_alias_shadow(pl, c, t, a);
	pl->line = line;
}

static int
policy_aliases_load(struct policy_tables *t, const struct conf *c,
    conf_error_cb cb, void *arg)
{
	struct policy_load pl = { c->aliases, 0, cb, arg, 0 };
	struct alias *cur = NULL;	/* entry being read, NULL if bad */
	bool in_entry = false;		/* a name line was seen */
	bool open = false;		/* last line ended without ',' */
	char e1[128];
	char *line = NULL, *colon, *s, *key;
	size_t cap = 0;
	FILE *fp;
	int r;

	if ((fp = policy_open(&pl)) == NULL)
		return -1;
	while ((r = policy_read_line(&pl, fp, &line, &cap)) == 1) {
		s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		if (is_space(line[0])) {
			/* aliases(5): a line starting with white space
			 * continues the previous entry. */
			if (!in_entry)
				policy_load_error(&pl, "continuation line "
				    "without an alias");
			else if (cur != NULL)
				policy_alias_targets(&pl, cur, s, &open);
			continue;
		}
		policy_alias_finish(&pl, c, t, cur);
		cur = NULL;
		open = false;
		in_entry = true;	/* a bad entry swallows its
					 * continuation lines */
		if ((colon = strchr(s, ':')) == NULL) {
			policy_load_error(&pl, "missing ':'");
			continue;
		}
		*colon = '\0';
		key = trim(s);
		if (*key == '\0') {
			policy_load_error(&pl, "empty alias name");
			continue;
		}
		if (!is_alias_name(key)) {
			policy_load_error(&pl, "invalid alias name: %s",
			    esc(e1, sizeof(e1), key));
			continue;
		}
		key = xstrdup(key);
		ascii_lowercase(key);
		if (ptab_has(&t->aliases, key)) {
			policy_load_error(&pl, "duplicate alias %s",
			    esc(e1, sizeof(e1), key));
			free(key);
			continue;
		}
		cur = xcalloc(1, sizeof(*cur));
		cur->line = pl.line;
		cur->name = key;	/* the table keeps key where it is */
		ptab_put(&t->aliases, key, cur);
		policy_alias_targets(&pl, cur, colon + 1, &open);
	}
	policy_alias_finish(&pl, c, t, cur);
	free(line);
	fclose(fp);
	return r == -1 || pl.errors > 0 ? -1 : 0;
}

struct policy_tables *
policy_tables_load(const struct conf *c, conf_error_cb cb, void *arg)
{
	struct policy_tables *t;
	int bad = 0;

	t = xcalloc(1, sizeof(*t));
	/* Users first: the aliases loader warns about users it hides. */
	if (c->users != NULL && policy_users_load(t, c, cb, arg) == -1)
		bad = 1;
	if (c->aliases != NULL && policy_aliases_load(t, c, cb, arg) == -1)
		bad = 1;
	if (bad) {
		policy_tables_free(t);
		return NULL;
	}
	return t;
}

void
policy_tables_free(struct policy_tables *t)
{
	if (t == NULL)
		return;
	ptab_free(&t->users, free);
	ptab_free(&t->aliases, alias_free);
	free(t);
}

const char *
policy_user_hash(const struct policy_tables *t, const char *address)
{
	const char *hash;
	char *key;

	if (t == NULL)
		return NULL;
	key = xstrdup(address);
	ascii_lowercase(key);
	hash = ptab_get(&t->users, key);
	free(key);
	return hash;
}

/* ---- resolution ---- */

struct policy_resolve {
	const struct policy_tables *t;
	const struct conf *c;
	struct policy_target *targets;
	size_t ntargets;
	struct strset chosen;		/* addr of every target */
	struct strset visited;		/* every local address expanded */
	size_t looked;			/* addresses looked at */
	const char *chain[POLICY_ALIAS_DEPTH + 2];	/* being expanded */
	size_t nchain;
	bool unknown;		/* the recipient itself does not exist */
	bool looped;		/* an alias led back into its own chain */
	bool too_deep;
	bool too_many;
	bool unsafe;
};

static bool
policy_is_postmaster(const char *localpart)
{
	/* RFC 5321 4.5.1: "postmaster" in any case. */
	return ascii_strcasecmp(localpart, "postmaster") == 0;
}

static void
policy_add_target(struct policy_resolve *r, const char *lp, const char *dom,
    bool local)
{
	char path[4096];
	char *addr;

	/*
	 * A local target is one Maildir whatever the case; a remote one
	 * keeps its local part as written and compares it exactly (RFC 5321
	 * 2.4: only the remote host may decide that Bob is bob).
	 */
	if (local) {
		addr = xasprintf("%s@%s", lp, dom);
		ascii_lowercase(addr);
	} else
		addr = policy_remote_addr(lp, dom);
	if (strset_has(&r->chosen, addr)) {
		free(addr);
		return;		/* delivered once */
	}
	if (local && policy_mailbox_path(r->c, lp, dom, path,
	    sizeof(path)) == -1) {
		r->unsafe = true;
		free(addr);
		return;
	}
	if (r->ntargets >= POLICY_MAX_TARGETS) {
		r->too_many = true;
		free(addr);
		return;
	}
	strset_add(&r->chosen, addr);
	r->targets = xrealloc(r->targets,
	    (r->ntargets + 1) * sizeof(*r->targets));
	r->targets[r->ntargets].addr = addr;
	r->targets[r->ntargets].mailbox = local ? xstrdup(path) : NULL;
	r->targets[r->ntargets].local = local;
	r->ntargets++;
}

/* Count one more address looked at; false past the work bound. */
static bool
policy_look(struct policy_resolve *r)
{
	if (++r->looked > POLICY_MAX_VISITS) {
		r->too_many = true;
		return false;
	}
	return true;
}

/* "\user" in alias from: the user (or postmaster), never an alias. */
static void
policy_expand_user(struct policy_resolve *r, const struct alias *from,
    const char *lp, const char *dom)
{
	char e1[128], e2[256];
	char *addr;

	if (!policy_look(r))
		return;
	if (!conf_is_local_domain(r->c, dom)) {
		policy_add_target(r, lp, dom, false);
		return;
	}
	addr = xasprintf("%s@%s", lp, dom);
	ascii_lowercase(addr);
	if (ptab_has(&r->t->users, addr) || policy_is_postmaster(lp))
		policy_add_target(r, lp, dom, true);
	else
		log_warn("policy: alias %s: member \\%s is not a user; "
		    "skipped", esc(e1, sizeof(e1), from->name),
		    esc(e2, sizeof(e2), addr));
	free(addr);
}

static void policy_expand(struct policy_resolve *r, const struct alias *from,
    const char *lp, const char *dom, unsigned int depth);

static void
policy_expand_alias(struct policy_resolve *r, const struct alias *a,
    const char *dom, unsigned int depth)
{
	const struct alias_target *tg;
	const char *tdom;
	size_t i;

	if (depth >= POLICY_ALIAS_DEPTH) {
		r->too_deep = true;
		return;
	}
	for (i = 0; i < a->ntargets && !r->too_deep && !r->too_many; i++) {
		tg = &a->targets[i];
		/* "user": the domain of the address expanded. */
		tdom = tg->dom != NULL ? tg->dom : dom;
		if (tg->noexpand)
			policy_expand_user(r, a, tg->lp, tdom);
		else
			policy_expand(r, a, tg->lp, tdom, depth + 1);
	}
}

/* Expand lp@dom, a member of alias from (NULL for the recipient). */
static void
policy_expand(struct policy_resolve *r, const struct alias *from,
    const char *lp, const char *dom, unsigned int depth)
{
	const struct alias *a;
	char *addr, *key;
	bool is_user;
	size_t i;

	if (!policy_look(r))
		return;
	if (!conf_is_local_domain(r->c, dom)) {
		policy_add_target(r, lp, dom, false);
		return;
	}
	addr = xasprintf("%s@%s", lp, dom);
	ascii_lowercase(addr);
	is_user = ptab_has(&r->t->users, addr) || policy_is_postmaster(lp);
	for (i = 0; i < r->nchain; i++) {
		if (strcmp(r->chain[i], addr) != 0)
			continue;
		/* A loop. sendmail's "alice: alice, bob" delivers to the
		 * user alice; anything else on the chain is skipped. */
		if (is_user)
			policy_add_target(r, lp, dom, true);
		else
			r->looped = true;
		free(addr);
		return;
	}
	if (!strset_add(&r->visited, addr)) {
		free(addr);
		return;		/* expanded already: duplicates once */
	}

	r->chain[r->nchain++] = addr;
	key = xstrdup(lp);
	ascii_lowercase(key);
	/* A quoted local part may hold '@': it never matches a "local"
	 * key, which would name another domain's alias. */
	if ((a = ptab_get(&r->t->aliases, addr)) != NULL ||
	    (strchr(key, '@') == NULL &&
	    (a = ptab_get(&r->t->aliases, key)) != NULL))
		policy_expand_alias(r, a, dom, depth);
	else if (is_user)
		policy_add_target(r, lp, dom, true);
	else {
		free(key);
		key = xasprintf("@%s", dom);
		ascii_lowercase(key);
		if ((a = ptab_get(&r->t->aliases, key)) != NULL)
			policy_expand_alias(r, a, dom, depth);
		else if (from == NULL)
			r->unknown = true;
		else {
			char e1[128], e2[256];

			log_warn("policy: alias %s: member %s does not "
			    "exist; skipped", esc(e1, sizeof(e1), from->name),
			    esc(e2, sizeof(e2), addr));
		}
	}
	free(key);
	r->nchain--;
	free(addr);
}

enum policy_rcpt
policy_rcpt_resolve(const struct policy_tables *t, const struct conf *c,
    const char *localpart, const char *domain,
    struct policy_target **targets_r, size_t *ntargets_r)
{
	static const struct policy_tables empty;
	struct policy_resolve r;
	enum policy_rcpt res;
	char e1[256];

	*targets_r = NULL;
	*ntargets_r = 0;
	if (*localpart == '\0' || *domain == '\0')
		return POLICY_RCPT_UNKNOWN;
	memset(&r, 0, sizeof(r));
	r.t = t != NULL ? t : &empty;
	r.c = c;
	strset_init(&r.chosen);
	strset_init(&r.visited);
	policy_expand(&r, NULL, localpart, domain, 0);
	strset_free(&r.chosen);
	strset_free(&r.visited);

	esc(e1, sizeof(e1), localpart);
	if (r.unknown)
		res = POLICY_RCPT_UNKNOWN;
	else if (r.too_deep || r.too_many) {
		if (r.too_deep)
			log_warn("policy: expansion of %s@%s nests aliases "
			    "more than %d deep; check the aliases file", e1,
			    domain, POLICY_ALIAS_DEPTH);
		else
			log_warn("policy: expansion of %s@%s exceeds %d "
			    "targets; check the aliases file", e1, domain,
			    POLICY_MAX_TARGETS);
		res = POLICY_RCPT_TOO_MANY;
	} else if (r.unsafe)
		res = POLICY_RCPT_UNSAFE;
	else if (r.ntargets > 0) {
		*targets_r = r.targets;
		*ntargets_r = r.ntargets;
		return POLICY_RCPT_OK;
	} else if (r.looped) {
		log_warn("policy: expansion of %s@%s loops without reaching "
		    "a user; check the aliases file", e1, domain);
		res = POLICY_RCPT_LOOP;
	} else
		res = POLICY_RCPT_UNKNOWN;	/* every member unknown */
	policy_targets_free(r.targets, r.ntargets);
	return res;
}

bool
policy_sender_owned(const struct policy_tables *t, const struct conf *c,
    const char *user, const char *localpart, const char *domain)
{
	struct policy_target *targets;
	size_t ntargets, i;
	char *addr, *key;
	bool owned = false;

	if (user == NULL || *localpart == '\0' || *domain == '\0')
		return false;
	if (strchr(user, '@') == NULL)
		addr = xasprintf("%s@%s", user, domain);
	else
		addr = xstrdup(user);
	ascii_lowercase(addr);
	key = xasprintf("%s@%s", localpart, domain);
	ascii_lowercase(key);
	if (strcmp(key, addr) == 0) {
		owned = conf_is_local_domain(c, domain) ||
		    strchr(user, '@') != NULL;
		goto done;
	}
	if (t == NULL || !conf_is_local_domain(c, domain))
		goto done;
	/* An alias of its own, not a catch-all: its full address, or its
	 * local part ("local" keys never hold '@'). */
	if (!ptab_has(&t->aliases, key)) {
		char *lp = xstrdup(localpart);
		bool named;

		ascii_lowercase(lp);
		named = strchr(lp, '@') == NULL && ptab_has(&t->aliases, lp);
		free(lp);
		if (!named)
			goto done;
	}
	if (policy_rcpt_resolve(t, c, localpart, domain, &targets,
	    &ntargets) != POLICY_RCPT_OK)
		goto done;
	for (i = 0; i < ntargets && !owned; i++)
		owned = targets[i].local && strcmp(targets[i].addr, addr) == 0;
	policy_targets_free(targets, ntargets);
done:
	free(key);
	free(addr);
	return owned;
}

void
policy_targets_free(struct policy_target *targets, size_t n)
{
	size_t i;

	if (targets == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(targets[i].addr);
		free(targets[i].mailbox);
	}
	free(targets);
}

/* ---- Maildir paths ---- */

int
policy_mailbox_path(const struct conf *c, const char *localpart,
    const char *domain, char *out, size_t outsize)
{
	char lp[POLICY_PART_MAX + 1], dom[POLICY_PART_MAX + 1];
	const char *p, *add;
	size_t o = 0, n;

	if (outsize == 0)
		return -1;
	out[0] = '\0';
	if (c->maildir == NULL || !is_safe_part(localpart) ||
	    !is_safe_part(domain))
		return -1;
	strlcpy(lp, localpart, sizeof(lp));
	strlcpy(dom, domain, sizeof(dom));
	ascii_lowercase(lp);
	ascii_lowercase(dom);
	for (p = c->maildir; *p != '\0'; p++) {
		if (*p != '%') {
			add = p;
			n = 1;
		} else if (p[1] == 'u' || p[1] == 'd') {
			add = *++p == 'u' ? lp : dom;
			n = strlen(add);
		} else if (p[1] == '%') {
			add = ++p;
			n = 1;
		} else
			return -1;	/* conf refuses other escapes */
		if (o + n >= outsize) {
			out[0] = '\0';
			return -1;
		}
		memcpy(out + o, add, n);
		o += n;
	}
	out[o] = '\0';
	return 0;
}
