/*
 * daemon.c: `petrel serve`. Loads the configuration, binds the listeners
 * as root, creates the spool and Maildir root for the daemon's user, drops
 * privileges before reading any network input, recovers the spool and runs
 * the event loop until SIGTERM or SIGINT. SIGHUP reloads the configuration.
 * Refuses a spool that others could write to or replace (safedir.c), and
 * tells systemd when it is ready, reloading or stopping (sdnotify.c).
 *
 * Queue control (issue 6): serve takes the spool lock (SPOOL/lock, for
 * its whole life: a second daemon on the spool is refused) and binds the
 * control socket RUN_DIR/control as root (src/daemon/control.c).
 *
 * Metrics (issue 6): with `metrics ADDR:PORT`, serve binds that port as
 * root too and serves GET /metrics on the loop (src/daemon/metrics_http.c).
 *
 * SECURITY: runs as root only until the listeners are bound; afterwards as
 * conf->user (default petrel). Staying root needs an explicit `user root`.
 * OWNERSHIP: owns the event base, spool, scheduler, SMTP server, spool
 * lock and control socket.
 */
#include "daemon/daemon.h"
#include "daemon/pickup.h"

#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "daemon/safedir.h"
#include "daemon/sandbox.h"	/* issue 8: seccomp */
#include "daemon/sdnotify.h"
#include "daemon/control.h"
#include "daemon/daemon_log.h"	/* issue 6: log, log_file, trace */
#include "daemon/trace.h"
#include "daemon/metrics_http.h"
#include "delivery/delivery.h"
#include "dns/dns.h"
#include "lib/log.h"
#include "lib/workq.h"
#include "msgauth/dkim.h"
#include "lib/util.h"
#include "policy/policy.h"
#include "queue/spool.h"
#include "queue/spool_admin.h"
#include "smtp/smtp.h"
#include "tls/tls.h"

/* Worker threads for DKIM verification and signing. */
#define DAEMON_MSGAUTH_THREADS	2

struct daemon {
	struct event_base *base;
	struct spool *spool;
	struct scheduler *sched;
	struct dns *dns;
	struct workq *workq;		/* DKIM crypto off the loop */
	struct smtp_server *srv;
	struct smtp_runtime *rt;	/* the current configuration */
	struct pickup *pickup;		/* issue 6: maildrop pickup */
	const char *cli_path;
	int sig_fd;			/* signalfd for the signals below */
	struct event *sig_ev;
	struct event *deadline;
	int stopping;
	/* queue control (issue 6): the spool lock and the control socket */
	int lock_fd;
	int control_fd;
	char control_path[256];
	struct control *control;
	struct trace *trace;		/* issue 6: recent per-message lines */
	/* issue 6: the Prometheus endpoint (`metrics`), bound as root */
	int metrics_fd;
	struct metrics_http *metrics;
};

static void
daemon_print_error(void *arg, const char *msg)
{
	const char *prefix = arg;

	if (prefix != NULL)
		log_err("%s%s", prefix, msg);
	else
		fprintf(stderr, "%s\n", msg);
}

/*
 * relayhost_auth: the password is the first line of its file, read with
 * the caller's privileges (root at start, the daemon's user on reload).
 */
static int
daemon_read_relay_password(struct conf *c, void *arg)
{
	char line[1024], msg[1400];
	FILE *fp;
	size_t n;

	if (c->relayhost_auth_file == NULL)
		return 0;
	if ((fp = fopen(c->relayhost_auth_file, "re")) == NULL) {
		snprintf(msg, sizeof(msg), "%s: relayhost_auth: cannot read "
		    "%s: %s", c->path != NULL ? c->path : "built-in default",
		    c->relayhost_auth_file, strerror(errno));
		daemon_print_error(arg, msg);
		return -1;
	}
	if (fgets(line, sizeof(line), fp) == NULL)
		line[0] = '\0';
	fclose(fp);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (n == 0) {
		snprintf(msg, sizeof(msg), "%s: relayhost_auth: %s: the first "
		    "line (the password) is empty",
		    c->path != NULL ? c->path : "built-in default",
		    c->relayhost_auth_file);
		daemon_print_error(arg, msg);
		return -1;
	}
	c->relayhost_auth_password = xstrdup(line);
	explicit_bzero(line, sizeof(line));
	return 0;
}

int
daemon_load_config(const char *cli_path, struct conf **conf_r,
    struct policy_tables **tables_r, int quiet)
{
	const char *source, *path;
	struct conf *c;
	struct policy_tables *t;
	void *arg = quiet == 2 ? (void *)"config: reload refused: " : NULL;

	path = conf_locate(cli_path, &source);
	if (path != NULL) {
		if (!quiet)
			log_info("config: file=%s source=%s", path, source);
		c = conf_load(path, daemon_print_error, arg);
	} else {
		if (!quiet)
			log_info("config: file=none source=built-in default");
		c = conf_default();
	}
	if (c == NULL)
		return -1;
	if (daemon_read_relay_password(c, arg) == -1) {
		conf_free(c);
		return -1;
	}
	t = policy_tables_load(c, daemon_print_error, arg);
	if (t == NULL) {
		conf_free(c);
		return -1;
	}
	*conf_r = c;
	*tables_r = t;
	return 0;
}

/*
 * The signals the daemon handles. They stay blocked in every thread for
 * the daemon's whole life and are read from a signalfd on the loop: no
 * asynchronous handler runs anywhere. (Under ThreadSanitizer, whose
 * handler defers the user's one, a SIGTERM was lost twice in CI with
 * libevent's evsignal; with a signalfd the kernel keeps it pending until
 * the loop reads it.)
 */
static void
daemon_signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGUSR1);
}

/* Block the daemon's signals in this thread (and the ones it starts). */
static void
daemon_block_signals(void)
{
	sigset_t set;

	daemon_signal_set(&set);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		fatalx("pthread_sigmask failed");
}

static void
daemon_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("daemon: cannot raise the open file limit: %s",
			    strerror(errno));
	}
}

static int
daemon_bind(const struct conf_listen *l)
{
	int fd, one = 1;

	fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (l->addr.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) == -1 ||
	    listen(fd, 4096) == -1) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* The fixed directory part of the Maildir template ("/var/mail/"). */
static void
daemon_maildir_root(const char *tmpl, char *out, size_t outsize)
{
	const char *pct = strchr(tmpl, '%');
	size_t n = pct != NULL ? (size_t)(pct - tmpl) : strlen(tmpl);

	while (n > 0 && tmpl[n - 1] != '/')
		n--;
	if (n >= outsize)
		n = outsize - 1;
	memcpy(out, tmpl, n);
	out[n] = '\0';
}

/*
 * fsync every directory above path, up to /: a directory mkdir_p() just
 * made exists after a power loss only once its parent was fsync'd, and
 * a spool that vanishes takes every acknowledged message with it (found
 * by tests/e2e/test_powerloss.py). An ancestor we may not open (EACCES)
 * holds nothing we made; one on a file system that cannot sync (EROFS,
 * EINVAL) cannot be helped and must not stop the daemon.
 */
static int
daemon_sync_parents(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	if (strlcpy(dir, path, sizeof(dir)) >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	while ((slash = strrchr(dir, '/')) != NULL) {
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
		if (fsync_dir(dir) == -1 && errno != EACCES &&
		    errno != EPERM && errno != EROFS && errno != EINVAL)
			return -1;
		if (slash == dir)
			break;
	}
	return 0;
}

static int
daemon_make_dir(const char *path, unsigned int mode, uid_t uid, gid_t gid,
    bool chown_it)
{
	if (path[0] == '\0')
		return 0;
	if (mkdir_p(path, mode) == -1) {
		log_err("daemon: cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	if (chown_it && chown(path, uid, gid) == -1) {
		if (errno == EROFS)
			log_err("daemon: %s is on a read-only file system: it "
			    "must be writable", path);
		else
			log_err("daemon: cannot chown %s: %s", path,
			    strerror(errno));
		return -1;
	}
	if (daemon_sync_parents(path) == -1) {
		log_err("daemon: cannot fsync the directories above %s: %s",
		    path, strerror(errno));
		return -1;
	}
	return 0;
}

static int
daemon_drop(const struct passwd *pw)
{
	/* initgroups: the user's supplementary groups (ssl-cert) too. */
	if (initgroups(pw->pw_name, pw->pw_gid) == -1 ||
	    setgid(pw->pw_gid) == -1 || setuid(pw->pw_uid) == -1) {
		log_err("daemon: cannot drop privileges to %s: %s",
		    pw->pw_name, strerror(errno));
		return -1;
	}
	if (pw->pw_uid != 0 && (setuid(0) == 0 || geteuid() == 0))
		fatalx("daemon: privileges could be regained after the drop");
	log_info("daemon: running as user=%s uid=%u gid=%u", pw->pw_name,
	    (unsigned int)pw->pw_uid, (unsigned int)pw->pw_gid);
	return 0;
}

/*
 * The TLS server for c: its tls_cert/tls_key pairs, or without any the
 * self-signed pair under the spool (made on first use, owned by uid/gid
 * when they are not -1). NULL with err set on failure.
 */
static struct tls_server *
daemon_tls_build(const struct conf *c, uid_t uid, gid_t gid, char *err,
    size_t errlen)
{
	struct tls_pair_config *pairs;
	struct tls_config cfg;
	struct tls_server *srv;
	char *cert = NULL, *key = NULL;
	bool created = false;
	size_t i, n = c->ntls;

	if (n == 0) {
		if (tls_selfsigned_ensure(c->spool, c->hostname, uid, gid,
		    &cert, &key, &created, err, errlen) == -1)
			return NULL;
		if (created)
			log_info("tls: generated a self-signed certificate for "
			    "%s in %s (set tls_cert and tls_key for a real "
			    "one)", c->hostname, cert);
		n = 1;
	}
	pairs = xcalloc(n, sizeof(*pairs));
	if (c->ntls == 0) {
		pairs[0].cert = cert;
		pairs[0].key = key;
	} else
		for (i = 0; i < n; i++) {
			pairs[i].name = c->tls[i].name;
			pairs[i].cert = c->tls[i].cert;
			pairs[i].key = c->tls[i].key;
		}
	memset(&cfg, 0, sizeof(cfg));
	cfg.pairs = pairs;
	cfg.npairs = n;
	cfg.protocols = c->tls_protocols;
	cfg.ciphers = c->tls_ciphers;
	srv = tls_server_new(&cfg, err, errlen);
	free(pairs);
	free(cert);
	free(key);
	return srv;
}

int
daemon_check_tls(const struct conf *c, char *err, size_t errlen)
{
	struct tls_server *srv;

	if (c->ntls == 0)
		return 0;
	if ((srv = daemon_tls_build(c, (uid_t)-1, (gid_t)-1, err,
	    errlen)) == NULL)
		return -1;
	tls_server_unref(srv);
	return 0;
}

/* A small file whole (a key), NUL-terminated; NULL with errno. */
static char *
daemon_read_small_file(const char *path, size_t max, size_t *len_r)
{
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	buf = xmalloc(max + 1);
	while ((n = read(fd, buf + len, max - len)) > 0) {
		len += (size_t)n;
		if (len == max) {
			n = -1;
			errno = EFBIG;
			break;
		}
	}
	saved = errno;
	close(fd);
	if (n < 0) {
		explicit_bzero(buf, len);
		free(buf);
		errno = saved;
		return NULL;
	}
	buf[len] = '\0';
	*len_r = len;
	return buf;
}

/*
 * Load every dkim_sign key of c into rt (read with the caller's
 * privileges: root at start, the daemon's user on reload). Returns 0, or
 * -1 after logging every key that failed; rt then has none.
 */
static int
daemon_load_dkim_keys(const struct conf *c, struct smtp_runtime *rt)
{
	struct dkim_privkey **keys;
	const char *why;
	char *text;
	size_t i, len;
	int rc = 0;

	if (c->ndkim_keys == 0)
		return 0;
	keys = xcalloc(c->ndkim_keys, sizeof(*keys));
	for (i = 0; i < c->ndkim_keys; i++) {
		const struct conf_dkim_key *k = &c->dkim_keys[i];

		why = NULL;
		if ((text = daemon_read_small_file(k->keyfile, 64 * 1024, &len)) == NULL)
			why = strerror(errno);
		else {
			keys[i] = dkim_privkey_load(text, len, &why);
			explicit_bzero(text, len);
			free(text);
		}
		if (keys[i] == NULL) {
			log_err("daemon: dkim_sign %s %s: %s: %s", k->domain,
			    k->selector, k->keyfile, why != NULL ? why :
			    "cannot load the key");
			rc = -1;
		}
	}
	if (rc == -1) {
		for (i = 0; i < c->ndkim_keys; i++)
			dkim_privkey_free(keys[i]);
		free(keys);
		return -1;
	}
	rt->dkim_keys = keys;
	return 0;
}

struct dns *
daemon_dns_new(struct event_base *base, const struct conf *c,
    const char *const *servers, size_t nservers, char *err, size_t errlen)
{
	struct dns_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	if (nservers > 0) {
		cfg.servers = servers;
		cfg.nservers = nservers;
	} else {
		cfg.servers = (const char *const *)c->dns;
		cfg.nservers = c->ndns;
	}
	cfg.dnssec = c->dnssec;
	cfg.max_queries = c->dns_max_queries > UINT_MAX ? UINT_MAX :
	    (unsigned int)c->dns_max_queries;
	return dns_new(base, &cfg, err, errlen);
}

int
daemon_check_dkim(const struct conf *c)
{
	struct smtp_runtime rt;
	size_t i;

	memset(&rt, 0, sizeof(rt));
	if (daemon_load_dkim_keys(c, &rt) == -1)
		return -1;
	if (rt.dkim_keys != NULL) {
		for (i = 0; i < c->ndkim_keys; i++)
			dkim_privkey_free(rt.dkim_keys[i]);
		free(rt.dkim_keys);
	}
	return 0;
}

/*
 * At start, as root: can the daemon's user read every certificate and
 * key, and every dkim_sign key? A reload after the privilege drop reads
 * them as that user, so a file only root can read would fail certbot's
 * first renewal, or the first SIGHUP after a DKIM key rotation.
 */
static int
daemon_check_key_access(const struct conf *c, const struct passwd *pw)
{
	gid_t groups[256];
	int ngroups = (int)nitems(groups);
	size_t i, j;
	int rc = 0;

	if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &ngroups) == -1)
		ngroups = 0;
	for (i = 0; i < c->ntls; i++) {
		const char *files[2] = { c->tls[i].cert, c->tls[i].key };
		const char *what[2] = { "tls_cert", "tls_key" };

		for (j = 0; j < 2; j++) {
			if (tls_file_readable_by(files[j], pw->pw_uid,
			    pw->pw_gid, groups, (size_t)ngroups))
				continue;
			log_err("daemon: %s %s is not readable by user %s: "
			    "make it readable by a group %s is in (on "
			    "Debian: chgrp ssl-cert FILE; chmod g+r FILE; "
			    "adduser %s ssl-cert)", what[j], files[j],
			    pw->pw_name, pw->pw_name, pw->pw_name);
			rc = -1;
		}
	}
	for (i = 0; i < c->ndkim_keys; i++) {
		const struct conf_dkim_key *k = &c->dkim_keys[i];

		if (tls_file_readable_by(k->keyfile, pw->pw_uid, pw->pw_gid,
		    groups, (size_t)ngroups))
			continue;
		log_err("daemon: dkim_sign %s %s: %s is not readable by user "
		    "%s: chown %s FILE (keep it mode 0600), or make it "
		    "readable by a group %s is in", k->domain, k->selector,
		    k->keyfile, pw->pw_name, pw->pw_name, pw->pw_name);
		rc = -1;
	}
	return rc;
}

int
daemon_check_access(const struct conf *c)
{
	const struct passwd *pw;

	if (geteuid() != 0 || (pw = getpwnam(c->user)) == NULL ||
	    pw->pw_uid == 0)
		return 0;
	return daemon_check_key_access(c, pw);
}

int
daemon_check_spool(const struct conf *c)
{
	const struct passwd *pw;
	char err[PATH_MAX + 256];
	uid_t owner = geteuid();
	int rc;

	if (owner == 0 && (pw = getpwnam(c->user)) != NULL)
		owner = pw->pw_uid;
	if (access(c->spool, F_OK) == 0)
		rc = safedir_check(c->spool, owner, false, err, sizeof(err));
	else
		rc = safedir_check_parents(c->spool, owner, err, sizeof(err));
	if (rc == -1)
		log_err("daemon: serve would refuse to run: spool %s: %s",
		    c->spool, err);
	return rc;
}

/*
 * queue control: take SPOOL/lock for the daemon's life. A queue command
 * working on the spool is waited for (30 s); another daemon is refused.
 */
static int
daemon_lock_spool(struct daemon *d, const struct conf *c,
    const struct passwd *pw)
{
	char role[32];
	pid_t pid;

	uid_t uid = pw != NULL ? pw->pw_uid : (uid_t)-1;
	gid_t gid = pw != NULL ? pw->pw_gid : (gid_t)-1;

	d->lock_fd = spool_admin_lock(c->spool, SPOOL_LOCK_SERVE, 0, uid, gid,
	    &pid, role, sizeof(role));
	if (d->lock_fd == -1 && errno == EWOULDBLOCK &&
	    strcmp(role, SPOOL_LOCK_SERVE) != 0) {
		log_info("daemon: waiting for the spool lock held by pid %ld "
		    "(%s)", (long)pid, role[0] != '\0' ? role : "unknown");
		d->lock_fd = spool_admin_lock(c->spool, SPOOL_LOCK_SERVE,
		    30000, uid, gid, &pid, role, sizeof(role));
	}
	if (d->lock_fd != -1)
		return 0;
	if (errno == EWOULDBLOCK && strcmp(role, SPOOL_LOCK_SERVE) == 0)
		log_err("daemon: spool %s is in use by another petrel serve "
		    "(pid %ld); stop it first, or give this one its own "
		    "spool", c->spool, (long)pid);
	else if (errno == EWOULDBLOCK)
		log_err("daemon: spool %s is locked by pid %ld (%s) for more "
		    "than 30 seconds", c->spool, (long)pid,
		    role[0] != '\0' ? role : "unknown");
	else
		log_err("daemon: cannot lock %s/%s: %s", c->spool,
		    SPOOL_LOCK_FILE, strerror(errno));
	return -1;
}

static void
daemon_queued(void *arg, const char *id, const struct envelope *env)
{
	struct daemon *d = arg;

	scheduler_add_new(d->sched, id, env);
}

static void
daemon_recovered(void *arg, const char *id, const struct envelope *env)
{
	struct daemon *d = arg;

	scheduler_add(d->sched, id, env);
}

static void
daemon_stopped(void *arg)
{
	struct daemon *d = arg;

	log_info("daemon: every session ended; stopping");
	event_base_loopexit(d->base, NULL);
}

static void
daemon_deadlinecb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	log_warn("daemon: shutdown deadline passed; closing %zu sessions",
	    smtp_server_sessions(d->srv));
	smtp_server_close_all(d->srv);
	event_base_loopexit(d->base, NULL);
}

static bool
daemon_same_listeners(const struct conf *a, const struct conf *b)
{
	size_t i;

	if (a->nlisten != b->nlisten)
		return false;
	for (i = 0; i < a->nlisten; i++)
		if (strcmp(a->listen[i].text, b->listen[i].text) != 0 ||
		    a->listen[i].role != b->listen[i].role)
			return false;
	return true;
}

static bool
daemon_same_dns(const struct conf *a, const struct conf *b)
{
	size_t i;

	if (a->ndns != b->ndns || a->dnssec != b->dnssec)
		return false;
	for (i = 0; i < a->ndns; i++)
		if (strcmp(a->dns[i], b->dns[i]) != 0)
			return false;
	return true;
}

/*
 * A report's recipient into final recipients, as RCPT TO resolves it:
 * a local domain through users and aliases, anything else remote.
 */
static int
daemon_resolve(void *arg, const char *addr, struct envelope *env)
{
	struct daemon *d = arg;
	const struct conf *c = d->rt->conf;
	struct policy_target *targets = NULL;
	size_t ntargets = 0, i;
	const char *at = strrchr(addr, '@');
	char local[512], domain[256];

	if (at == NULL || at == addr || (size_t)(at - addr) >= sizeof(local) ||
	    strlen(at + 1) >= sizeof(domain))
		return -1;
	memcpy(local, addr, (size_t)(at - addr));
	local[at - addr] = '\0';
	strlcpy(domain, at + 1, sizeof(domain));
	ascii_lowercase(domain);
	if (!conf_is_local_domain(c, domain)) {
		envelope_rcpt_add(env, addr, addr, NULL, RCPT_KIND_REMOTE, 0,
		    NULL);
		return 0;
	}
	if (policy_rcpt_resolve(d->rt->tables, c, local, domain, &targets,
	    &ntargets) != POLICY_RCPT_OK)
		return -1;
	for (i = 0; i < ntargets; i++)
		envelope_rcpt_add(env, addr, targets[i].addr,
		    targets[i].mailbox, targets[i].local ? RCPT_KIND_LOCAL :
		    RCPT_KIND_REMOTE, 0, NULL);
	policy_targets_free(targets, ntargets);
	return 0;
}

static void
daemon_sigcb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct conf *c;
	struct policy_tables *t;

	(void)what;
	if (sig == SIGUSR1) {
		log_info("daemon: SIGUSR1: retrying every queued message now");
		scheduler_flush(d->sched);
		return;
	}
	if (sig == SIGHUP) {
		daemon_log_reopen();	/* issue 6: logrotate moved it */
		log_info("config: reload requested");
		if (daemon_load_config(d->cli_path, &c, &t, 2) == -1) {
			log_err("config: reload failed; keeping the running "
			    "configuration");
			return;
		}
		if (!daemon_same_listeners(d->rt->conf, c))
			log_warn("config: listen changed; the listeners stay "
			    "as they are until a restart");
		if ((d->rt->conf->metrics == NULL) != (c->metrics == NULL) ||
		    (c->metrics != NULL && strcmp(d->rt->conf->metrics->text,
		    c->metrics->text) != 0))	/* issue 6: metrics */
			log_warn("config: metrics changed; the endpoint stays "
			    "as it is until a restart");
		if (d->rt->conf->sandbox != c->sandbox)	/* issue 8 */
			log_warn("config: sandbox changed; it stays as it is "
			    "until a restart");
		if (!daemon_same_dns(d->rt->conf, c))
			log_warn("config: dns or dnssec changed; the resolver "
			    "keeps its settings until a restart");
		{
			struct smtp_runtime *rt = smtp_runtime_new(c, t);
			struct tls_server *tls;
			char err[512];

			/* Certificates are read again (certbot renewed
			 * them); a failure keeps the ones in use. */
			tls = daemon_tls_build(c, (uid_t)-1, (gid_t)-1, err,
			    sizeof(err));
			if (tls == NULL) {
				log_err("tls: reload failed: %s; keeping the "
				    "certificates in use", err);
				if (d->rt->tls != NULL)
					tls = tls_server_ref(d->rt->tls);
			} else
				log_info("tls: certificates reloaded");
			smtp_runtime_set_tls(rt, tls);
			if (daemon_load_dkim_keys(c, rt) == -1) {
				log_err("config: reload failed (dkim_sign); "
				    "keeping the running configuration");
				smtp_runtime_unref(rt);
				return;
			}
			daemon_log_reload(d->rt->conf, c);	/* issue 6 */
			smtp_runtime_unref(d->rt);
			d->rt = rt;
		}
		smtp_server_set_runtime(d->srv, d->rt);
		scheduler_set_conf(d->sched, c);
		if (d->dns != NULL)
			dns_set_max_queries(d->dns,
			    (unsigned int)c->dns_max_queries);
		log_info("config: reloaded domains=%zu", c->ndomains);
		return;
	}
	if (d->stopping++) {
		log_info("daemon: second signal; closing every session now");
		smtp_server_close_all(d->srv);
		event_base_loopexit(d->base, NULL);
		return;
	}
	log_info("daemon: signal=%d: stopping; sessions=%zu", (int)sig,
	    smtp_server_sessions(d->srv));
	sdnotify_send("STOPPING=1");
	{
		struct timeval tv = {
			.tv_sec = (time_t)d->rt->conf->timeout_shutdown };

		d->deadline = evtimer_new(d->base, daemon_deadlinecb, d);
		evtimer_add(d->deadline, &tv);
	}
	smtp_server_shutdown(d->srv, daemon_stopped, d);
}

/* SIGHUP, framed for systemd (Type=notify): reloading, then ready. */
static void
daemon_hupcb(evutil_socket_t sig, short what, void *arg)
{
	sdnotify_reloading();
	daemon_sigcb(sig, what, arg);
	sdnotify_send("READY=1");
}

/* The loop's view of the signals: read each one from the signalfd. */
static void
daemon_sigfdcb(evutil_socket_t fd, short what, void *arg)
{
	struct signalfd_siginfo si;
	ssize_t n;

	(void)what;
	while ((n = read(fd, &si, sizeof(si))) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP)
			daemon_hupcb(SIGHUP, EV_SIGNAL, arg);
		else
			daemon_sigcb((evutil_socket_t)si.ssi_signo, EV_SIGNAL,
			    arg);
	}
	if (n == -1 && errno != EAGAIN && errno != EINTR)
		log_warn("daemon: reading signals: %s", strerror(errno));
}

/* Release whatever daemon_serve() built, in reverse order. */
static void
daemon_teardown(struct daemon *d)
{
	/* issue 6: metrics, first: it reads the server and scheduler */
	if (d->metrics != NULL)
		metrics_http_free(d->metrics);
	else if (d->metrics_fd != -1)
		close(d->metrics_fd);
	pickup_stop(d->pickup);		/* issue 6 */
	scheduler_stop(d->sched);
	if (d->spool != NULL)
		spool_drain(d->spool);
	smtp_server_free(d->srv);
	pickup_free(d->pickup);		/* issue 6: after the sessions */
	/* After the sessions (their checks are freed), before DNS. */
	workq_free(d->workq);
	if (d->sched != NULL)
		scheduler_free(d->sched);
	dns_free(d->dns);
	if (d->spool != NULL)
		spool_close(d->spool);
	if (d->sig_ev != NULL)
		event_free(d->sig_ev);
	if (d->sig_fd != -1)
		close(d->sig_fd);
	if (d->deadline != NULL)
		event_free(d->deadline);
	/* queue control: after the work queue and the scheduler, whose
	 * callbacks may still answer a client */
	if (d->control != NULL)
		control_free(d->control);
	else if (d->control_fd != -1) {
		close(d->control_fd);
		unlink(d->control_path);
	}
	if (d->lock_fd != -1)
		close(d->lock_fd);
	smtp_runtime_unref(d->rt);
	if (d->base != NULL)
		event_base_free(d->base);
}

int
daemon_serve(const char *cli_path, bool no_sandbox)
{
	struct daemon d;
	struct conf *c;
	struct policy_tables *t;
	struct passwd *pw = NULL;
	struct spool_stats st;
	const char *error;
	char root[4096];
	int *fds = NULL, sendmail_fd = -1;
	size_t i, nfds = 0;
	bool as_root = geteuid() == 0;
	int status = 1;

	memset(&d, 0, sizeof(d));
	d.cli_path = cli_path;
	d.lock_fd = d.control_fd = -1;
	d.sig_fd = -1;
	d.metrics_fd = -1;	/* issue 6: metrics */
	if (daemon_load_config(cli_path, &c, &t, 0) == -1)
		return 1;
	/* From here on the runtime owns c and t. */
	d.rt = smtp_runtime_new(c, t);
	daemon_raise_nofile();
	/*
	 * glibc gives each thread that allocates its own arena, up to 8 per
	 * core, and each keeps what was freed in it: with the spool, delivery
	 * and DNS threads that is a megabyte or more of RSS for nothing.
	 */
	mallopt(M_ARENA_MAX, 4);
	signal(SIGPIPE, SIG_IGN);
	/*
	 * SIGTERM, SIGINT, SIGHUP and SIGUSR1 stay blocked in every thread
	 * (the threads started below inherit the mask); the loop reads them
	 * from a signalfd. One that comes before the loop runs waits.
	 */
	daemon_block_signals();

	if (as_root) {
		pw = getpwnam(c->user);
		if (pw == NULL) {
			log_err("daemon: user \"%s\" does not exist; create "
			    "it (scripts/deps.sh does) or set `user`",
			    c->user);
			goto done;
		}
		if (pw->pw_uid == 0)
			log_warn("daemon: staying root (`user root`): every "
			    "bug is then a root bug");
	}
	/* issue 6: log, log_file (created for the daemon's user), trace. */
	if ((d.trace = daemon_log_start(c, pw ? pw->pw_uid : (uid_t)-1,
	    pw ? pw->pw_gid : (gid_t)-1)) == NULL)
		goto done;
	daemon_maildir_root(c->maildir, root, sizeof(root));
	/* Spool safety (safedir.c): the tree above it before anything is
	 * made or chowned, then the spool as it will be used. */
	{
		uid_t owner = pw != NULL ? pw->pw_uid : geteuid();
		char err[PATH_MAX + 256];

		if (safedir_check_parents(c->spool, owner, err,
		    sizeof(err)) == -1) {
			log_err("daemon: refusing to run: spool %s: %s",
			    c->spool, err);
			goto done;
		}
		if (daemon_make_dir(c->spool, 0700, pw ? pw->pw_uid : 0,
		    pw ? pw->pw_gid : 0, as_root) == -1)
			goto done;
		if (safedir_check(c->spool, owner, true, err,
		    sizeof(err)) == -1) {
			log_err("daemon: refusing to run: spool %s: %s",
			    c->spool, err);
			goto done;
		}
	}
	if (daemon_make_dir(root, 0755, pw ? pw->pw_uid : 0,
	    pw ? pw->pw_gid : 0, as_root) == -1)
		goto done;
	/* queue control: the spool lock for our whole life (run_dir, for
	 * the control socket, is made by pickup_prepare below: mode first,
	 * then owner, which the unit's capabilities allow in that order) */
	if (daemon_lock_spool(&d, c, pw) == -1)
		goto done;

	if (as_root && daemon_check_key_access(c, pw) == -1)
		goto done;
	{
		struct tls_server *tls;
		char err[512];

		tls = daemon_tls_build(c, pw ? pw->pw_uid : (uid_t)-1,
		    pw ? pw->pw_gid : (gid_t)-1, err, sizeof(err));
		if (tls == NULL) {
			log_err("daemon: TLS: %s", err);
			goto done;
		}
		smtp_runtime_set_tls(d.rt, tls);
	}
	if (daemon_load_dkim_keys(c, d.rt) == -1)
		goto done;
	fds = xcalloc(c->nlisten, sizeof(*fds));
	for (nfds = 0; nfds < c->nlisten; nfds++) {
		fds[nfds] = daemon_bind(&c->listen[nfds]);
		if (fds[nfds] == -1) {
			log_err("daemon: cannot listen on %s: %s",
			    c->listen[nfds].text, strerror(errno));
			goto done;
		}
	}
	/* issue 6: run_dir, the maildrop and the sendmail socket. */
	sendmail_fd = pickup_prepare(c, pw ? pw->pw_uid : 0,
	    pw ? pw->pw_gid : 0, as_root);
	if (sendmail_fd == -1)
		goto done;
	/* queue control: the control socket, bound as root */
	{
		char err[512];

		d.control_fd = control_bind(c->run_dir, pw ? pw->pw_uid : 0,
		    pw ? pw->pw_gid : 0, as_root, d.control_path,
		    sizeof(d.control_path), err, sizeof(err));
		if (d.control_fd == -1) {
			log_err("daemon: control socket: %s", err);
			goto done;
		}
	}
	/* issue 6: the metrics endpoint, bound as root like the others */
	if (c->metrics != NULL) {
		char err[512];

		if ((d.metrics_fd = metrics_http_bind(c->metrics, err,
		    sizeof(err))) == -1) {
			log_err("daemon: %s", err);
			goto done;
		}
		if (!metrics_http_is_loopback(c->metrics))
			log_warn("daemon: metrics %s is not a loopback "
			    "address: anyone who reaches it reads the "
			    "counters (keep it on a private network)",
			    c->metrics->text);
	}
	if (as_root && pw->pw_uid != 0 && daemon_drop(pw) == -1)
		goto done;

	if (evthread_use_pthreads() == -1)
		fatalx("evthread_use_pthreads failed");
	/*
	 * Not EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST: it defers epoll_ctl to
	 * the next loop pass, and a socket closed meanwhile may have its
	 * number reused by another thread (libunbound's): ThreadSanitizer
	 * caught the deferred epoll_ctl landing on the resolver's socket.
	 */
	d.base = event_base_new();
	if (d.base == NULL)
		fatalx("event_base_new failed");
	d.spool = spool_open(c->spool, d.base,
	    (unsigned int)c->spool_sync_workers, &error);
	if (d.spool == NULL) {
		log_err("daemon: spool %s: %s", c->spool, error);
		goto done;
	}
	{
		struct scheduler_hooks hooks = { daemon_resolve, &d };
		char err[256];

		d.dns = daemon_dns_new(d.base, c, NULL, 0, err, sizeof(err));
		if (d.dns == NULL && c->ndns > 0) {
			log_err("daemon: DNS resolver: %s", err);
			goto done;
		}
		/* No dns lines and no usable /etc/resolv.conf: receive and
		 * deliver locally; outbound mail waits (deferred) for a
		 * resolver rather than the daemon refusing to start. */
		if (d.dns == NULL)
			log_warn("daemon: no DNS resolver (%s); mail for other "
			    "domains stays queued until one is configured",
			    err);
		d.sched = scheduler_new(d.base, d.spool, c,
		    (unsigned int)c->delivery_workers, d.dns, &hooks);
	}
	if (spool_recover(d.spool, daemon_recovered, &d) == -1) {
		log_err("daemon: cannot read the spool queue %s/queue",
		    c->spool);
		goto done;
	}
	d.srv = smtp_server_new(d.base, d.spool, d.rt, daemon_queued, &d);
	d.workq = workq_new(d.base, DAEMON_MSGAUTH_THREADS);
	smtp_server_set_msgauth(d.srv, d.dns, d.workq);
	/* queue control: serve the control socket (owns control_fd) */
	d.control = control_new(d.base, d.control_fd, d.control_path, d.sched,
	    d.spool, d.workq, d.trace, getuid(),
	    pw != NULL ? pw->pw_gid : getgid());
	/* issue 6: serve the metrics endpoint (owns metrics_fd) */
	if (d.metrics_fd != -1) {
		struct metrics_sources ms = { d.spool, d.sched, d.srv };
		const char *mname, *merr;

		if (!metrics_http_check_all(&mname, &merr))
			log_err("daemon: metric %s is badly defined (%s): "
			    "left out", mname, merr);
		d.metrics = metrics_http_new(d.base, d.metrics_fd,
		    c->metrics->text, &ms);
		log_info("listening metrics=%s path=/metrics",
		    c->metrics->text);
	}

	/* Signals before the readiness lines: a test may stop us at once. */
	{
		sigset_t set;

		daemon_signal_set(&set);
		d.sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
		if (d.sig_fd == -1)
			fatalx("signalfd: %s", strerror(errno));
		d.sig_ev = event_new(d.base, d.sig_fd, EV_READ | EV_PERSIST,
		    daemon_sigfdcb, &d);
		if (d.sig_ev == NULL || event_add(d.sig_ev, NULL) == -1)
			fatalx("daemon: cannot watch signals");
	}

	/*
	 * issue 8: start-up is done (sockets bound, files open, privileges
	 * dropped, threads started): the seccomp allow-list, on every
	 * thread, before the first connection is accepted.
	 */
	{
		enum conf_sandbox mode = no_sandbox ? CONF_SANDBOX_NO :
		    c->sandbox;
		char err[512];

		if (sandbox_apply(mode, err, sizeof(err)) == -1) {
			log_err("daemon: sandbox: %s; refusing to run without "
			    "it (`petrel serve --no-sandbox` or `sandbox no` "
			    "runs unprotected)", err);
			goto done;
		}
		if (mode == CONF_SANDBOX_YES)
			log_info("daemon: sandbox=yes%s", sandbox_is_relaxed() ?
			    " relaxed=sanitizer-build" : "");
		else
			log_warn("daemon: sandbox=%s: no seccomp allow-list%s",
			    sandbox_mode_name(mode), mode == CONF_SANDBOX_LOG ?
			    " (the kernel logs each call outside it)" : "");
	}
	for (i = 0; i < nfds; i++) {
		if (smtp_server_listen(d.srv, fds[i], &c->listen[i]) == -1) {
			log_err("daemon: cannot accept on %s",
			    c->listen[i].text);
			goto done;
		}
		fds[i] = -1;	/* the listener owns it */
		log_info("listening addr=%s port=%u role=%s",
		    c->listen[i].host, c->listen[i].port,
		    conf_role_name(c->listen[i].role));
	}
	sdnotify_send("READY=1");	/* systemd: accepting connections */

	/* issue 6: local injection (sendmail socket, maildrop pickup). */
	if (smtp_server_listen_local(d.srv, sendmail_fd) == -1) {
		log_err("daemon: cannot accept on %s/sendmail", c->run_dir);
		goto done;
	}
	sendmail_fd = -1;	/* the listener owns it */
	log_info("listening sendmail=%s/sendmail maildrop=%s", c->run_dir,
	    c->maildrop);
	d.pickup = pickup_new(d.base, d.srv, c);

	event_base_dispatch(d.base);
	/*
	 * Already stopping. A further SIGTERM (an init system's retry) stays
	 * blocked, so it cannot kill us before the spool drains: it stays
	 * pending and dies with the process.
	 */
	log_info("daemon: finishing commits and deliveries in progress");
	status = 0;
done:
	for (i = 0; i < nfds; i++)
		if (fds[i] != -1)
			close(fds[i]);
	free(fds);
	if (sendmail_fd != -1)
		close(sendmail_fd);
	memset(&st, 0, sizeof(st));
	if (d.spool != NULL)
		spool_get_stats(d.spool, &st);
	daemon_teardown(&d);
	if (status == 0)
		log_info("daemon: stopped commits=%llu",
		    (unsigned long long)st.commits);
	daemon_log_stop(d.trace);	/* issue 6 */
	return status;
}
