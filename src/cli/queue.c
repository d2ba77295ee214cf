/*
 * queue.c: `petrel queue` and `mailq`: the queue as the administrator sees
 * it, through the daemon's control socket (src/daemon/control.c).
 *
 *   petrel queue list [-c FILE] [--json]        (also: petrel mailq, mailq)
 *   petrel queue show [-c FILE] ID
 *   petrel queue flush [-c FILE] [ID | --domain D]
 *   petrel queue delete [-c FILE] ID | --all | --sender X | --recipient X
 *   petrel queue hold|release|bounce [-c FILE] ID
 *
 * The configuration gives run_dir (the socket is RUN_DIR/control, spoken
 * to through cli/ctlclient.c), spool and user. With no daemon running
 * (no socket answers and SPOOL/lock is free), list and delete work on the
 * spool directly, holding the spool lock so that a daemon starting
 * meanwhile waits; the other commands say that the daemon is not
 * running.
 *
 * Exit status: 0 done; 1 refused or failed (no such message, on hold,
 * I/O error, a malformed answer); 2 usage or configuration error; 3 the
 * daemon is not running (or holds the spool but does not answer); 4
 * permission denied (the socket or the spool).
 *
 * Entry points: cmd_queue(), cmd_mailq(), and queue_cli_mailq() (the
 * mailq text for `sendmail -bp`).
 * SECURITY: runs as root or a member of the daemon's group; it trusts
 * the daemon's answer no further than its grammar (ctlproto.c) and
 * prints addresses and replies with control bytes made harmless.
 */
#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/ctlclient.h"
#include "conf/conf.h"
#include "daemon/ctlproto.h"
#include "daemon/mailq.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/util.h"
#include "queue/spool_admin.h"

#define QUEUE_EXIT_OK		0
#define QUEUE_EXIT_FAIL		1
#define QUEUE_EXIT_USAGE	2
#define QUEUE_EXIT_DOWN		3
#define QUEUE_EXIT_DENIED	4

#define QUEUE_ANSWER_TIMEOUT	600	/* seconds: a delete may wait for
					 * a delivery round to end */
#define QUEUE_LOCK_WAIT_MS	10000

int cmd_queue(int argc, char **argv);
int cmd_mailq(int argc, char **argv);
int queue_cli_mailq(const char *conf_path);
int queue_cli_flush(const char *conf_path);

struct queue_cmd {
	const char *conf_path;
	bool json;
	struct ctlproto_request req;
	const char *what;	/* subcommand, for messages */
};

static void
queue_usage(void)
{
	fprintf(stderr,
	    "usage: petrel queue list [-c FILE] [--json]\n"
	    "       petrel queue show [-c FILE] ID\n"
	    "       petrel queue flush [-c FILE] [ID | --domain DOMAIN]\n"
	    "       petrel queue delete [-c FILE] ID | --all | --sender ADDR "
	    "| --recipient ADDR\n"
	    "       petrel queue hold|release|bounce [-c FILE] ID\n"
	    "       petrel mailq [-c FILE] [--json]\n");
}

static void
queue_conf_error(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "petrel: %s\n", msg);
}

static struct conf *
queue_load_conf(const char *cli_path)
{
	const char *source, *path = conf_locate(cli_path, &source);

	return path != NULL ? conf_load(path, queue_conf_error, NULL) :
	    conf_default();
}

/* ---- talking to the daemon (cli/ctlclient.c) ---- */

/* s with control characters as '?' (remote text: a reply, an address). */
static const char *
queue_safe(const char *s, char *out, size_t size)
{
	size_t i;

	strlcpy(out, s, size);
	for (i = 0; out[i] != '\0'; i++)
		if ((unsigned char)out[i] < ' ' || out[i] == 0x7f)
			out[i] = '?';
	return out;
}

/*
 * v (seconds since the epoch) as local time, or as the number when
 * localtime() cannot represent it (it returns NULL past year 2^31).
 */
static const char *
queue_time(uint64_t v, char *out, size_t size)
{
	time_t t = (time_t)v;
	struct tm *tm;

	if (v > INT64_MAX || (tm = localtime(&t)) == NULL ||
	    strftime(out, size, "%a %b %e %H:%M:%S %Y", tm) == 0)
		snprintf(out, size, "%llu", (unsigned long long)v);
	return out;
}

/* What `queue show` prints before the message. */
static void
queue_print_msg_head(const struct ctlproto_msg *m, const char *info,
    FILE *out)
{
	char when[64], s1[2048], s2[2048];
	size_t i;

	fprintf(out, "Queue ID:   %s\n", m->id);
	fprintf(out, "Status:     %s\n", m->state == CTL_STATE_HELD ?
	    "on hold" : m->state == CTL_STATE_ACTIVE ? "being delivered" :
	    "queued");
	queue_time(m->arrival, when, sizeof(when));
	fprintf(out, "Arrival:    %s (%llu)\n", when,
	    (unsigned long long)m->arrival);
	fprintf(out, "Size:       %llu\n", (unsigned long long)m->size);
	fprintf(out, "Sender:     <%s>\n", queue_safe(m->sender, s1,
	    sizeof(s1)));
	fputs(info, out);
	for (i = 0; i < m->nrcpts; i++) {
		const struct ctlproto_rcpt *r = &m->rcpts[i];

		fprintf(out, "Recipient:  <%s>", queue_safe(r->addr, s1,
		    sizeof(s1)));
		if (strcmp(r->addr, r->orig) != 0)
			fprintf(out, " (for <%s>)", queue_safe(r->orig, s1,
			    sizeof(s1)));
		fprintf(out, "\n  waiting: %s; attempts: %u",
		    ctlproto_wait_name(r->wait), r->attempts);
		if (r->last_attempt != 0) {
			queue_time(r->last_attempt, when, sizeof(when));
			fprintf(out, "; last attempt: %s", when);
		}
		if (r->wait != CTL_WAIT_HOLD) {
			queue_time(r->next_attempt, when, sizeof(when));
			fprintf(out, "; next attempt: %s", r->next_attempt ==
			    0 || r->wait == CTL_WAIT_DUE ? "now" : when);
		}
		fprintf(out, "\n");
		if (r->reply[0] != '\0')
			fprintf(out, "  last reply: %s%s%s%s\n",
			    queue_safe(r->reply, s1, sizeof(s1)),
			    r->remote[0] != '\0' ? " (from " : "",
			    queue_safe(r->remote, s2, sizeof(s2)),
			    r->remote[0] != '\0' ? ")" : "");
	}
}

/* "info KEY VALUE" of `show`: one line of the envelope, into out. */
static int
queue_info(struct buf *out, const char *kv)
{
	static const struct {
		const char *key, *label;
	} labels[] = {
		{ "client_addr", "Client:" }, { "client_name", "Client DNS:" },
		{ "helo", "HELO:" }, { "proto", "Protocol:" },
		{ "tls", "TLS:" },
		{ "auth_user", "Logged in:" }, { "envid", "ENVID:" },
		{ "ret", "RET:" }, { "body", "BODY:" },
		{ "smtputf8", "SMTPUTF8:" },
	};
	const char *sp = strchr(kv, ' ');
	char value[1024];
	size_t i, n;

	if (sp == NULL || ctlproto_word_decode(sp + 1, strlen(sp + 1), value,
	    sizeof(value)) == -1)
		return -1;
	n = (size_t)(sp - kv);
	for (i = 0; i < nitems(labels); i++)
		if (strlen(labels[i].key) == n &&
		    memcmp(labels[i].key, kv, n) == 0)
			break;
	if (i == nitems(labels))
		return 0;	/* a newer daemon's: not ours to show */
	for (n = 0; value[n] != '\0'; n++)
		if ((unsigned char)value[n] < ' ' || value[n] == 0x7f)
			value[n] = '?';
	return buf_printf(out, "%-11s %s\n", labels[i].label, value);
}

/* Control bytes other than TAB and LF as '?'; CR LF as LF. */
static void
queue_print_content(const char *p, size_t len, FILE *out)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch == '\r' && i + 1 < len && p[i + 1] == '\n')
			continue;
		if (ch < ' ' && ch != '\t' && ch != '\n')
			ch = '?';
		putc(ch, out);
	}
}

/* What a listing or a show collects while the answer is read. */
struct queue_answer {
	struct ctlproto_list *l;
	struct buf info;	/* a show's "info" lines, as printed */
};

/*
 * A data line of the answer (ctlclient_line_cb): list lines into l, a
 * show's info lines collected and its content printed.
 */
static int
queue_answer_line(void *arg, char *line, size_t len, FILE *fp)
{
	struct queue_answer *qa = arg;
	struct ctlproto_list *l = qa->l;
	const char *error;

	(void)len;
	if (strncmp(line, "info ", 5) == 0)
		return queue_info(&qa->info, line + 5) == -1 ? -1 : 0;
	if (strncmp(line, "data ", 5) == 0) {
		uint64_t clen;
		char *content;

		if (parse_u64(line + 5, 0, SIZE_MAX / 2, &clen, &error) ==
		    -1 || l->n == 0)
			return -1;
		content = xmalloc((size_t)clen + 1);
		if (fread(content, 1, (size_t)clen, fp) != clen ||
		    getc(fp) != '\n') {
			free(content);
			return -1;
		}
		queue_print_msg_head(&l->msgs[l->n - 1], buf_str(&qa->info),
		    stdout);
		printf("\n");
		queue_print_content(content, (size_t)clen, stdout);
		free(content);
		return 0;
	}
	return ctlproto_list_decode(l, line, &error) == 1 ? 0 : -1;
}

/* ---- without a daemon: the spool itself ---- */

struct queue_offline {
	struct ctlproto_list list;
	const struct ctlproto_request *req;
	const char *spool;
	uint64_t now;
	size_t matched, deleted, failed;
	char error[256];
};

static bool
queue_offline_match(const struct ctlproto_request *req, const char *id,
    const struct envelope *env)
{
	size_t i;

	switch (req->cmd) {
	case CTL_CMD_DELETE:
		return strcmp(id, req->arg) == 0;
	case CTL_CMD_DELETE_ALL:
		return true;
	case CTL_CMD_DELETE_SENDER:
		return ascii_strcasecmp(env->sender, req->arg) == 0;
	case CTL_CMD_DELETE_RCPT:
		for (i = 0; i < env->nrcpts; i++) {
			const struct envelope_rcpt *r = &env->rcpts[i];

			if (r->status == RCPT_STATUS_PENDING &&
			    (ascii_strcasecmp(r->orig, req->arg) == 0 ||
			    ascii_strcasecmp(r->addr, req->arg) == 0))
				return true;
		}
		return false;
	case CTL_CMD_LIST:
		return !req->has_arg || strcmp(id, req->arg) == 0;
	default:
		return false;
	}
}

static int
queue_offline_cb(void *arg, const char *id, const struct envelope *env,
    uint64_t size)
{
	struct queue_offline *q = arg;
	bool held = false;
	size_t i;

	if (!queue_offline_match(q->req, id, env))
		return 0;
	q->matched++;
	if (q->req->cmd != CTL_CMD_LIST) {
		if (spool_admin_remove(q->spool, id) == 0 || errno == ENOENT) {
			q->deleted++;
			return 0;
		}
		q->failed++;
		if (q->error[0] == '\0')
			snprintf(q->error, sizeof(q->error), "%s: %s", id,
			    strerror(errno));
		return 0;
	}
	for (i = 0; i < env->nrcpts; i++)
		if ((env->rcpts[i].flags & RCPT_FLAG_HELD) != 0)
			held = true;
	ctlproto_list_add(&q->list, id, env, size, held ? CTL_STATE_HELD :
	    CTL_STATE_QUEUED, q->now);
	return 0;
}

/* The spool's lock file for the daemon's user, when we make it as root. */
static void
queue_owner(const struct conf *c, uid_t *uid, gid_t *gid)
{
	const struct passwd *pw;

	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (geteuid() == 0 && (pw = getpwnam(c->user)) != NULL) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
	}
}

/* list or delete with no daemon. Returns the exit status. */
static int
queue_offline(const struct conf *c, const struct queue_cmd *qc,
    struct ctlproto_list *l, char *text, size_t textsize)
{
	struct queue_offline q;
	char role[32];
	const char *error;
	size_t skipped;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int fd, rc;

	queue_owner(c, &uid, &gid);
	fd = spool_admin_lock(c->spool, SPOOL_LOCK_QUEUE, QUEUE_LOCK_WAIT_MS,
	    uid, gid, &pid, role, sizeof(role));
	if (fd == -1 && errno == EWOULDBLOCK) {
		snprintf(text, textsize, "the spool %s is locked by pid %ld "
		    "(%s)%s", c->spool, (long)pid, role[0] != '\0' ? role :
		    "unknown", strcmp(role, SPOOL_LOCK_SERVE) == 0 ?
		    ", but its control socket does not answer" : "");
		return QUEUE_EXIT_DOWN;
	}
	if (fd == -1 && (errno == ENOENT || errno == ENOTDIR)) {
		/* No spool yet: nothing was ever queued. */
		memset(l, 0, sizeof(*l));
		if (qc->req.cmd == CTL_CMD_LIST && !qc->req.has_arg)
			return QUEUE_EXIT_OK;
		snprintf(text, textsize, "no such message in the queue");
		return QUEUE_EXIT_FAIL;
	}
	if (fd == -1) {
		rc = errno == EACCES || errno == EPERM ? QUEUE_EXIT_DENIED :
		    QUEUE_EXIT_FAIL;
		snprintf(text, textsize, "the daemon is not running, and the "
		    "spool %s cannot be locked: %s", c->spool,
		    strerror(errno));
		return rc;
	}
	memset(&q, 0, sizeof(q));
	q.req = &qc->req;
	q.spool = c->spool;
	q.now = (uint64_t)time(NULL);
	if (spool_admin_scan(c->spool, queue_offline_cb, &q, &skipped,
	    &error) == -1) {
		rc = errno == EACCES ? QUEUE_EXIT_DENIED : QUEUE_EXIT_FAIL;
		snprintf(text, textsize, "%s/queue: %s: %s", c->spool, error,
		    strerror(errno));
		close(fd);
		ctlproto_list_free(&q.list);
		return rc;
	}
	close(fd);
	if (skipped > 0)
		fprintf(stderr, "petrel: queue: %zu queue file%s could not be "
		    "read (the daemon moves them to %s/corrupt/ at its next "
		    "start)\n", skipped, skipped == 1 ? "" : "s", c->spool);
	*l = q.list;
	if (qc->req.cmd == CTL_CMD_LIST) {
		if (qc->req.has_arg && l->n == 0) {
			snprintf(text, textsize, "no message %.64s in the "
			    "queue", qc->req.arg);
			return QUEUE_EXIT_FAIL;
		}
		return QUEUE_EXIT_OK;
	}
	if (qc->req.cmd == CTL_CMD_DELETE && q.matched == 0) {
		snprintf(text, textsize, "no message %.64s in the queue",
		    qc->req.arg);
		return QUEUE_EXIT_FAIL;
	}
	if (q.failed > 0) {
		snprintf(text, textsize, "%zu of %zu not deleted: %s",
		    q.failed, q.matched, q.error);
		return QUEUE_EXIT_FAIL;
	}
	snprintf(text, textsize, "%zu message%s deleted (the daemon is not "
	    "running: from the spool)", q.deleted, q.deleted == 1 ? "" : "s");
	return QUEUE_EXIT_OK;
}

/* ---- one command ---- */

static int
queue_run(const struct queue_cmd *qc)
{
	struct ctlproto_list l = { NULL, 0 };
	struct queue_answer qa;
	struct ctlclient_answer ans;
	struct conf *c;
	struct buf out;
	char text[1024];
	int rc;
	bool offline_ok = qc->req.cmd == CTL_CMD_LIST ||
	    qc->req.cmd == CTL_CMD_DELETE ||
	    qc->req.cmd == CTL_CMD_DELETE_ALL ||
	    qc->req.cmd == CTL_CMD_DELETE_SENDER ||
	    qc->req.cmd == CTL_CMD_DELETE_RCPT;

	if ((c = queue_load_conf(qc->conf_path)) == NULL)
		return QUEUE_EXIT_USAGE;
	text[0] = '\0';
	qa.l = &l;
	buf_init(&qa.info, 64 * 1024);
	switch (ctlclient_request(c, &qc->req, QUEUE_ANSWER_TIMEOUT,
	    queue_answer_line, &qa, &ans)) {
	case CTLCLIENT_OK:
		strlcpy(text, ans.text, sizeof(text));
		rc = QUEUE_EXIT_OK;
		break;
	case CTLCLIENT_DENIED:
		if (ans.error != 0)
			snprintf(text, sizeof(text), "%s (only root, the user "
			    "%s and members of its group may use it)",
			    ans.text, c->user);
		else
			strlcpy(text, ans.text, sizeof(text));
		rc = QUEUE_EXIT_DENIED;
		break;
	case CTLCLIENT_DOWN:
		if (offline_ok)
			rc = queue_offline(c, qc, &l, text, sizeof(text));
		else {
			snprintf(text, sizeof(text), "the daemon is not "
			    "running (no answer on %s); `%s` needs it",
			    ans.path, qc->what);
			rc = QUEUE_EXIT_DOWN;
		}
		break;
	case CTLCLIENT_ERR:
	case CTLCLIENT_FAIL:
	default:
		strlcpy(text, ans.text, sizeof(text));
		rc = QUEUE_EXIT_FAIL;
		break;
	}
	buf_free(&qa.info);
	if (rc == QUEUE_EXIT_OK && qc->req.cmd == CTL_CMD_LIST) {
		buf_init(&out, SIZE_MAX / 2);
		if ((qc->json ? mailq_format_json(&l, &out) :
		    mailq_format_text(&l, &out)) == -1 ||
		    fwrite(out.data != NULL ? out.data : "", 1, out.len,
		    stdout) != out.len || fflush(stdout) == EOF) {
			fprintf(stderr, "petrel: queue: cannot write the "
			    "listing\n");
			rc = QUEUE_EXIT_FAIL;
		}
		buf_free(&out);
	} else if (rc == QUEUE_EXIT_OK && qc->req.cmd != CTL_CMD_SHOW)
		printf("petrel: queue: %s\n", text);
	else if (rc != QUEUE_EXIT_OK)
		fprintf(stderr, "petrel: queue: %s\n", text);
	ctlproto_list_free(&l);
	conf_free(c);
	return rc;
}

/* `sendmail -q`: retry every queued message now. */
int
queue_cli_flush(const char *conf_path)
{
	struct queue_cmd qc;

	memset(&qc, 0, sizeof(qc));
	qc.conf_path = conf_path;
	qc.req.cmd = CTL_CMD_FLUSH;
	qc.what = "flush";
	return queue_run(&qc);
}

int
queue_cli_mailq(const char *conf_path)
{
	struct queue_cmd qc;

	memset(&qc, 0, sizeof(qc));
	qc.conf_path = conf_path;
	qc.req.cmd = CTL_CMD_LIST;
	qc.what = "mailq";
	return queue_run(&qc);
}

/* An argument into req->arg, checked as the daemon will check it. */
static int
queue_set_arg(struct queue_cmd *qc, const char *arg)
{
	struct buf b;
	struct ctlproto_request chk;
	const char *error;
	int rc;

	if (strlcpy(qc->req.arg, arg, sizeof(qc->req.arg)) >=
	    sizeof(qc->req.arg)) {
		fprintf(stderr, "petrel: queue: argument too long\n");
		return -1;
	}
	qc->req.has_arg = true;
	buf_init(&b, CTLPROTO_LINE_MAX * 4);
	rc = ctlproto_request_format(&qc->req, &b);
	if (rc == 0 && ctlproto_request_parse(b.data, b.len - 1, &chk,
	    &error) == -1) {
		fprintf(stderr, "petrel: queue: %s: \"%s\"\n", error, arg);
		rc = -1;
	}
	buf_free(&b);
	return rc;
}

int
cmd_queue(int argc, char **argv)
{
	struct queue_cmd qc;
	const char *sub, *id = NULL, *domain = NULL, *sender = NULL,
	    *rcpt = NULL;
	bool all = false;
	int i, nsel;

	memset(&qc, 0, sizeof(qc));
	if (argc < 2) {
		queue_usage();
		return QUEUE_EXIT_USAGE;
	}
	sub = argv[1];
	qc.what = sub;
	for (i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-c") == 0 && i + 1 < argc)
			qc.conf_path = argv[++i];
		else if (strcmp(a, "--json") == 0)
			qc.json = true;
		else if (strcmp(a, "--all") == 0)
			all = true;
		else if (strcmp(a, "--domain") == 0 && i + 1 < argc)
			domain = argv[++i];
		else if (strcmp(a, "--sender") == 0 && i + 1 < argc)
			sender = argv[++i];
		else if (strcmp(a, "--recipient") == 0 && i + 1 < argc)
			rcpt = argv[++i];
		else if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "petrel: queue: unknown option or "
			    "missing value: %s\n", a);
			queue_usage();
			return QUEUE_EXIT_USAGE;
		} else if (id == NULL)
			id = a;
		else {
			queue_usage();
			return QUEUE_EXIT_USAGE;
		}
	}
	nsel = (id != NULL) + all + (domain != NULL) + (sender != NULL) +
	    (rcpt != NULL);
	if (qc.json && strcmp(sub, "list") != 0)
		goto usage;
	if (strcmp(sub, "list") == 0) {
		if (nsel != 0)
			goto usage;
		qc.req.cmd = CTL_CMD_LIST;
	} else if (strcmp(sub, "flush") == 0) {
		if (nsel > 1 || all || sender != NULL || rcpt != NULL)
			goto usage;
		qc.req.cmd = domain != NULL ? CTL_CMD_FLUSH_DOMAIN :
		    CTL_CMD_FLUSH;
		if ((id != NULL && queue_set_arg(&qc, id) == -1) ||
		    (domain != NULL && queue_set_arg(&qc, domain) == -1))
			return QUEUE_EXIT_USAGE;
	} else if (strcmp(sub, "delete") == 0) {
		if (nsel != 1 || domain != NULL)
			goto usage;
		qc.req.cmd = all ? CTL_CMD_DELETE_ALL : sender != NULL ?
		    CTL_CMD_DELETE_SENDER : rcpt != NULL ?
		    CTL_CMD_DELETE_RCPT : CTL_CMD_DELETE;
		/* <> names the null sender. */
		if (sender != NULL && strcmp(sender, "<>") == 0)
			sender = "";
		if (!all && queue_set_arg(&qc, id != NULL ? id :
		    sender != NULL ? sender : rcpt) == -1)
			return QUEUE_EXIT_USAGE;
	} else if (strcmp(sub, "show") == 0 || strcmp(sub, "hold") == 0 ||
	    strcmp(sub, "release") == 0 || strcmp(sub, "bounce") == 0) {
		if (id == NULL || nsel != 1)
			goto usage;
		qc.req.cmd = strcmp(sub, "show") == 0 ? CTL_CMD_SHOW :
		    strcmp(sub, "hold") == 0 ? CTL_CMD_HOLD :
		    strcmp(sub, "release") == 0 ? CTL_CMD_RELEASE :
		    CTL_CMD_BOUNCE;
		if (queue_set_arg(&qc, id) == -1)
			return QUEUE_EXIT_USAGE;
	} else {
		fprintf(stderr, "petrel: unknown queue command \"%s\"\n", sub);
		goto usage;
	}
	return queue_run(&qc);
usage:
	queue_usage();
	return QUEUE_EXIT_USAGE;
}

int
cmd_mailq(int argc, char **argv)
{
	struct queue_cmd qc;
	int i;

	memset(&qc, 0, sizeof(qc));
	qc.req.cmd = CTL_CMD_LIST;
	qc.what = "mailq";
	for (i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "-C") ==
		    0) && i + 1 < argc)
			qc.conf_path = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)
			qc.json = true;
		else if (strcmp(argv[i], "-v") == 0)
			continue;	/* sendmail's verbose: nothing more */
		else {
			queue_usage();
			return QUEUE_EXIT_USAGE;
		}
	}
	return queue_run(&qc);
}
