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
 * SECURITY: the files are trusted (written by the administrator) but
 * checked strictly, and an alias may never name a |command, /file or
 * :include: target: Petrel never runs a shell and writes only Maildirs.
 * Recipient addresses are untrusted: resolution is bounded in depth
 * (POLICY_ALIAS_DEPTH), in results (POLICY_MAX_TARGETS) and in work (a
 * visited set), and policy_mailbox_path() refuses any local part or domain
 * that could leave the Maildir root.
 * STANDARDS: aliases(5) syntax as sendmail and Postfix read it; RFC 5321
 * 4.5.1 (postmaster, case-insensitive).
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
#include "lib/util.h"

#define POLICY_LINE_MAX		65536	/* longest line in a file */
#define POLICY_PART_MAX		255	/* longest %u or %d: NAME_MAX */
/* Addresses one resolution may look at: bounds the work of a fan-out. */
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

struct alias {
	char **targets;		/* as written, quotes and <> removed */
	size_t ntargets;
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

	for (i = 0; i < a->ntargets; i++)
		free(a->targets[i]);
	free(a->targets);
	free(a);
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

static void
policy_users_line(struct policy_load *pl, struct ptab *users, char *line)
{
	char e1[128];
	char *colon, *addr, *hash, *key;

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
}

static int
policy_users_load(struct policy_tables *t, const char *path,
    conf_error_cb cb, void *arg)
{
	struct policy_load pl = { path, 0, cb, arg, 0 };
	char *line = NULL;
	size_t cap = 0;
	FILE *fp;
	int r;

	if ((fp = policy_open(&pl)) == NULL)
		return -1;
	while ((r = policy_read_line(&pl, fp, &line, &cap)) == 1)
		policy_users_line(&pl, &t->users, line);
	free(line);
	fclose(fp);
	return r == -1 || pl.errors > 0 ? -1 : 0;
}

/*
 * Split s on commas outside double quotes and add every target to a.
 * Errors name pl->line.
 */
static void
policy_alias_targets(struct policy_load *pl, struct alias *a, char *s)
{
	char e1[128];
	char *tok, *p, *at;
	bool quoted;
	size_t n;
	int errors = pl->errors;

	while (*s != '\0') {
		tok = s;
		quoted = false;
		for (p = s; *p != '\0' && (quoted || *p != ','); p++)
			if (*p == '"')
				quoted = !quoted;
		if (quoted) {
			policy_load_error(pl, "unterminated quote");
			break;
		}
		s = *p == ',' ? p + 1 : p;
		*p = '\0';
		tok = trim(tok);
		n = strlen(tok);
		if (n >= 2 && tok[0] == '<' && tok[n - 1] == '>') {
			tok[n - 1] = '\0';
			tok = trim(tok + 1);
			n = strlen(tok);
		}
		/* "target" as a whole: drop the quotes ("|cmd" too). */
		if (n >= 2 && tok[0] == '"' && tok[n - 1] == '"' &&
		    memchr(tok + 1, '"', n - 2) == NULL) {
			tok[n - 1] = '\0';
			tok = trim(tok + 1);
		}
		if (*tok == '\0')
			continue;	/* "a, , b" or a trailing comma */
		if (*tok == '|') {
			policy_load_error(pl, "|command targets are not "
			    "supported: Petrel never runs a shell");
			continue;
		}
		if (*tok == '/') {
			policy_load_error(pl, "/file targets are not "
			    "supported: Petrel delivers only to Maildirs");
			continue;
		}
		if (ascii_strncasecmp(tok, ":include:", 9) == 0 ||
		    ascii_strncasecmp(tok, "include:", 8) == 0) {
			policy_load_error(pl, ":include: targets are not "
			    "supported: list every target in the aliases "
			    "file");
			continue;
		}
		at = strrchr(tok, '@');
		if (has_ctl(tok) || at == tok ||
		    (at != NULL && at[1] == '\0') ||
		    (at != NULL && strchr(at, '"') != NULL)) {
			policy_load_error(pl, "invalid target: %s",
			    esc(e1, sizeof(e1), tok));
			continue;
		}
		if (a->ntargets >= POLICY_MAX_TARGETS) {
			policy_load_error(pl, "too many targets (at most %d)",
			    POLICY_MAX_TARGETS);
			break;
		}
		a->targets = xrealloc(a->targets,
		    (a->ntargets + 1) * sizeof(*a->targets));
		tok = xstrdup(tok);
		if ((at = strrchr(tok, '@')) != NULL)
			ascii_lowercase(at);
		a->targets[a->ntargets++] = tok;
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

static void
policy_alias_finish(struct policy_load *pl, const struct alias *a,
    const char *name)
{
	char e1[128];
	unsigned long line = pl->line;

	if (a == NULL || a->ntargets > 0 || a->bad)
		return;
	pl->line = a->line;
	policy_load_error(pl, "alias %s has no targets",
	    esc(e1, sizeof(e1), name));
	pl->line = line;
}

static int
policy_aliases_load(struct policy_tables *t, const char *path,
    conf_error_cb cb, void *arg)
{
	struct policy_load pl = { path, 0, cb, arg, 0 };
	struct alias *cur = NULL;	/* entry being read, NULL if bad */
	const char *curname = NULL;	/* its key, owned by the table */
	bool in_entry = false;		/* a name line was seen */
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
				policy_alias_targets(&pl, cur, s);
			continue;
		}
		policy_alias_finish(&pl, cur, curname);
		cur = NULL;
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
		curname = key;
		ptab_put(&t->aliases, key, cur);
		policy_alias_targets(&pl, cur, colon + 1);
	}
	policy_alias_finish(&pl, cur, curname);
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
	if (c->users != NULL && policy_users_load(t, c->users, cb, arg) == -1)
		bad = 1;
	if (c->aliases != NULL &&
	    policy_aliases_load(t, c->aliases, cb, arg) == -1)
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
	struct ptab visited;		/* every address looked at */
	const char *chain[POLICY_ALIAS_DEPTH + 2];	/* being expanded */
	size_t nchain;
	bool unknown;		/* the recipient itself does not exist */
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
	size_t i;

	addr = xasprintf("%s@%s", lp, dom);
	if (local)
		ascii_lowercase(addr);
	else
		ascii_lowercase(strrchr(addr, '@'));
	for (i = 0; i < r->ntargets; i++) {
		if ((local ? strcmp(r->targets[i].addr, addr) :
		    ascii_strcasecmp(r->targets[i].addr, addr)) == 0) {
			free(addr);
			return;		/* delivered once */
		}
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
	r->targets = xrealloc(r->targets,
	    (r->ntargets + 1) * sizeof(*r->targets));
	r->targets[r->ntargets].addr = addr;
	r->targets[r->ntargets].mailbox = local ? xstrdup(path) : NULL;
	r->targets[r->ntargets].local = local;
	r->ntargets++;
}

static void policy_expand(struct policy_resolve *r, const char *lp,
    const char *dom, unsigned int depth);

static void
policy_expand_alias(struct policy_resolve *r, const struct alias *a,
    const char *dom, unsigned int depth)
{
	const char *at;
	char *lp;
	size_t i;

	if (depth >= POLICY_ALIAS_DEPTH) {
		r->too_deep = true;
		return;
	}
	for (i = 0; i < a->ntargets && !r->too_deep && !r->too_many; i++) {
		at = strrchr(a->targets[i], '@');
		if (at == NULL) {
			/* "user": the domain of the address expanded. */
			policy_expand(r, a->targets[i], dom, depth + 1);
			continue;
		}
		lp = xstrndup(a->targets[i], (size_t)(at - a->targets[i]));
		policy_expand(r, lp, at + 1, depth + 1);
		free(lp);
	}
}

static void
policy_expand(struct policy_resolve *r, const char *lp, const char *dom,
    unsigned int depth)
{
	const struct alias *a;
	char *addr, *key;
	bool is_user;
	size_t i;

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
		free(addr);
		return;
	}
	if (r->visited.n >= POLICY_MAX_VISITS) {
		r->too_many = true;
		free(addr);
		return;
	}
	if (!ptab_put(&r->visited, addr, NULL)) {
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
		else if (depth == 0)
			r->unknown = true;
		else {
			char e1[256];

			log_warn("policy: alias target %s does not exist",
			    esc(e1, sizeof(e1), addr));
		}
	}
	free(key);
	r->nchain--;
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
	policy_expand(&r, localpart, domain, 0);
	ptab_free(&r.visited, NULL);

	if (r.unknown)
		res = POLICY_RCPT_UNKNOWN;
	else if (r.too_deep || r.too_many) {
		if (r.too_deep)
			log_warn("policy: expansion of %s@%s nests aliases "
			    "more than %d deep; check the aliases file",
			    esc(e1, sizeof(e1), localpart), domain,
			    POLICY_ALIAS_DEPTH);
		else
			log_warn("policy: expansion of %s@%s exceeds %d "
			    "targets; check the aliases file",
			    esc(e1, sizeof(e1), localpart), domain,
			    POLICY_MAX_TARGETS);
		res = POLICY_RCPT_LOOP;
	} else if (r.unsafe)
		res = POLICY_RCPT_UNSAFE;
	else if (r.ntargets == 0)
		res = POLICY_RCPT_LOOP;
	else {
		*targets_r = r.targets;
		*ntargets_r = r.ntargets;
		return POLICY_RCPT_OK;
	}
	policy_targets_free(r.targets, r.ntargets);
	return res;
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
