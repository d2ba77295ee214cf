/*
 * trace.c: `petrel trace [-c FILE] [-f LOGFILE] QUEUE-ID|MESSAGE-ID`,
 * a message's whole story: received (with its SMTP session's lines),
 * checked, every delivery attempt with the remote reply, the reports it
 * caused and its removal (docs/logging.md).
 *
 * It asks the running daemon over its control socket ("trace QUERY",
 * cli/ctlclient.c), which keeps the recent per-message lines in a ring
 * (daemon/trace.c); when the daemon cannot answer (not running, refusing
 * the caller, no answer in time) or no longer has them, it reads log_file
 * (or -f LOGFILE, which skips the daemon) with the same rules: every
 * line with queue=ID; for a Message-ID, the queue IDs of the "queued"
 * lines with that message-id=; the session= lines of the SMTP session
 * that handed the message over; and the story of each report the message
 * caused (report_queue=). Lines are printed as logged, in time order.
 *
 * Exit status: 0 lines printed; 1 nothing known about the message; 2 a
 * bad command line or configuration, or nowhere to look (no daemon
 * answer and no readable log file); 4 the daemon refused the caller (not
 * root, the daemon's user or in its group) and there is no log file the
 * caller can read.
 *
 * Entry point: cmd_trace().
 * SECURITY: runs as the caller and reads only files the caller can read;
 * the daemon checks the caller's credentials as for `petrel queue`. The
 * lines were escaped by the daemon when it logged them; the daemon's
 * answer is printed with control bytes other than TAB as '?'.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/ctlclient.h"
#include "conf/conf.h"
#include "daemon/ctlproto.h"
#include "daemon/trace.h"
#include "lib/buf.h"
#include "lib/util.h"

/* The most a daemon's answer may hold: its lines, and an LF each. */
#define TRACE_REPLY_MAX		(CTLPROTO_TRACE_MAX + 64 * 1024)
#define TRACE_ANSWER_TIMEOUT	30	/* seconds */

#define TRACE_EXIT_OK		0
#define TRACE_EXIT_NOTHING	1
#define TRACE_EXIT_USAGE	2
#define TRACE_EXIT_DENIED	4

/* How the daemon answered. */
enum trace_daemon {
	TRACE_DAEMON_LINES,	/* lines in out */
	TRACE_DAEMON_NOTHING,	/* it answered, knowing nothing of it */
	TRACE_DAEMON_DENIED,	/* it refused the caller */
	TRACE_DAEMON_NONE,	/* no answer: down, failed, malformed */
};

int cmd_trace(int argc, char **argv);

static void
trace_cli_usage(void)
{
	fprintf(stderr, "usage: petrel trace [-c FILE] [-f LOGFILE] "
	    "QUEUE-ID|MESSAGE-ID\n");
}

static void
trace_cli_conf_error(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "petrel: %s\n", msg);
}

/* A "line TEXT" of the answer into out (a struct buf), LF-terminated. */
static int
trace_cli_answer_line(void *arg, char *line, size_t len, FILE *fp)
{
	struct buf *out = arg;
	const char *text;
	size_t i, start = out->len;

	(void)len;
	(void)fp;
	if ((text = ctlproto_trace_line_decode(line, &len)) == NULL ||
	    buf_append(out, text, len) == -1 || buf_append(out, "\n", 1) ==
	    -1)
		return -1;
	/* Whatever the daemon sent, nothing that moves a terminal. */
	for (i = start; i + 1 < out->len; i++)
		if (((unsigned char)out->data[i] < ' ' &&
		    out->data[i] != '\t') || out->data[i] == 0x7f)
			out->data[i] = '?';
	return 0;
}

/*
 * Ask the daemon over its control socket (c->run_dir/control) for the
 * lines of query still in its ring ("trace QUERY", daemon/control.c).
 * Lines go to out; err (errlen bytes) says why there are none.
 */
static enum trace_daemon
trace_cli_ask_daemon(const struct conf *c, const char *query, struct buf *out,
    char *err, size_t errlen)
{
	struct ctlproto_request req;
	struct ctlclient_answer ans;

	memset(&req, 0, sizeof(req));
	req.cmd = CTL_CMD_TRACE;
	req.has_arg = true;
	if (strlcpy(req.arg, query, sizeof(req.arg)) >= sizeof(req.arg) ||
	    strlen(query) >= CTLPROTO_QUERY_MAX) {
		snprintf(err, errlen, "the query is too long for the daemon");
		return TRACE_DAEMON_NONE;
	}
	switch (ctlclient_request(c, &req, TRACE_ANSWER_TIMEOUT,
	    trace_cli_answer_line, out, &ans)) {
	case CTLCLIENT_OK:
		if (strncmp(ans.text, "truncated", 9) == 0)
			fprintf(stderr, "petrel: trace: the daemon sent only "
			    "the first %llu lines (%s)\n", ans.n, ans.text);
		if (out->len > 0)
			return TRACE_DAEMON_LINES;
		snprintf(err, errlen, "the daemon knows nothing of it");
		return TRACE_DAEMON_NOTHING;
	case CTLCLIENT_ERR:
		buf_reset(out);
		if (strcmp(ans.code, "notfound") == 0) {
			snprintf(err, errlen, "the daemon knows nothing of it");
			return TRACE_DAEMON_NOTHING;
		}
		snprintf(err, errlen, "the daemon: %s", ans.text);
		return TRACE_DAEMON_NONE;
	case CTLCLIENT_DENIED:
		buf_reset(out);
		if (ans.error != 0)
			snprintf(err, errlen, "%s (only root, the user %s and "
			    "members of its group may ask the daemon)",
			    ans.text, c->user);
		else
			snprintf(err, errlen, "the daemon: %s", ans.text);
		return TRACE_DAEMON_DENIED;
	case CTLCLIENT_DOWN:
		snprintf(err, errlen, "the daemon is not running (no answer "
		    "on %s)", ans.path);
		return TRACE_DAEMON_NONE;
	case CTLCLIENT_FAIL:
	default:
		buf_reset(out);
		snprintf(err, errlen, "the daemon: %s", ans.text);
		return TRACE_DAEMON_NONE;
	}
}

/* Both passes over path; lines printed as they are. -1: cannot read. */
static int
trace_cli_read_file(const char *path, struct trace_query *q, size_t *found_r)
{
	FILE *fp;
	char *line = NULL;
	size_t cap = 0, len;
	ssize_t n;
	int pass;

	*found_r = 0;
	if ((fp = fopen(path, "re")) == NULL)
		return -1;
	for (pass = 0; pass < 2; pass++) {
		rewind(fp);
		while ((n = getline(&line, &cap, fp)) != -1) {
			len = (size_t)n;
			if (len > 0 && line[len - 1] == '\n')
				line[--len] = '\0';
			if (pass == 0)
				trace_query_learn(q, line, len);
			else if (trace_query_match(q, line, len)) {
				fwrite(line, 1, len, stdout);
				putchar('\n');
				(*found_r)++;
			}
		}
		if (ferror(fp)) {
			free(line);
			fclose(fp);
			errno = EIO;
			return -1;
		}
	}
	free(line);
	fclose(fp);
	return 0;
}

int
cmd_trace(int argc, char **argv)
{
	const char *conf_path = NULL, *file = NULL, *path, *source, *error;
	struct trace_query *q;
	struct conf *c = NULL;
	struct buf out;
	enum trace_daemon asked = TRACE_DAEMON_NONE;
	char err[1024];
	bool asked_daemon = false;
	size_t found = 0;
	int ch, status = TRACE_EXIT_USAGE, saved;

	optind = 1;
	while ((ch = getopt(argc, argv, "c:f:")) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		default:
			trace_cli_usage();
			return TRACE_EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		trace_cli_usage();
		return TRACE_EXIT_USAGE;
	}
	q = xmalloc(sizeof(*q));
	buf_init(&out, TRACE_REPLY_MAX);
	if (trace_query_init(q, argv[optind], &error) == -1) {
		fprintf(stderr, "petrel: trace: \"%s\": %s\n", argv[optind],
		    error);
		goto done;
	}
	path = conf_locate(conf_path, &source);
	c = path != NULL ? conf_load(path, trace_cli_conf_error, NULL) :
	    conf_default();
	if (c == NULL)
		goto done;
	if (file == NULL) {
		asked_daemon = true;
		asked = trace_cli_ask_daemon(c, argv[optind], &out, err,
		    sizeof(err));
		if (asked == TRACE_DAEMON_LINES) {
			if (fwrite(out.data, 1, out.len, stdout) != out.len ||
			    fflush(stdout) == EOF) {
				fprintf(stderr, "petrel: trace: cannot write "
				    "the lines\n");
				status = 1;
			} else
				status = TRACE_EXIT_OK;
			goto done;
		}
		file = c->log_file;
		if (file == NULL) {
			fprintf(stderr, "petrel: trace: %s: %s, and no "
			    "log_file is configured to read instead\n",
			    argv[optind], err);
			status = asked == TRACE_DAEMON_NOTHING ?
			    TRACE_EXIT_NOTHING : asked == TRACE_DAEMON_DENIED ?
			    TRACE_EXIT_DENIED : TRACE_EXIT_USAGE;
			goto done;
		}
	}
	if (trace_cli_read_file(file, q, &found) == -1) {
		saved = errno;
		/* Why the daemon did not answer first, if it was asked. */
		if (asked_daemon)
			fprintf(stderr, "petrel: trace: %s: %s\n",
			    argv[optind], err);
		fprintf(stderr, "petrel: trace: %s: %s\n", file,
		    strerror(saved));
		status = !asked_daemon ? TRACE_EXIT_USAGE :
		    asked == TRACE_DAEMON_NOTHING ? TRACE_EXIT_NOTHING :
		    asked == TRACE_DAEMON_DENIED ? TRACE_EXIT_DENIED :
		    TRACE_EXIT_USAGE;
		goto done;
	}
	if (found == 0)
		fprintf(stderr, "petrel: trace: %s: nothing in %s\n",
		    argv[optind], file);
	status = found > 0 ? TRACE_EXIT_OK : TRACE_EXIT_NOTHING;
done:
	fflush(stdout);
	buf_free(&out);
	conf_free(c);
	free(q);
	return status;
}
