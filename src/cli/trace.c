/*
 * trace.c: `petrel trace [-c FILE] [-f LOGFILE] QUEUE-ID|MESSAGE-ID`,
 * a message's whole story: received (with its SMTP session's lines),
 * checked, every delivery attempt with the remote reply, the reports it
 * caused and its removal (docs/logging.md).
 *
 * It asks the running daemon, which keeps the recent per-message lines
 * in a ring (daemon/trace.c); when the daemon cannot answer or no longer
 * has them, it reads log_file (or -f LOGFILE) with the same rules: every
 * line with queue=ID; for a Message-ID, the queue IDs of the "queued"
 * lines with that message-id=; the session= lines of the SMTP session
 * that handed the message over; and the story of each report the message
 * caused (report_queue=). Lines are printed as logged, in time order.
 *
 * Exit status: 0 lines printed; 1 nothing known about the message; 2 a
 * bad command line or configuration, or nowhere to look (no daemon
 * answer and no readable log file).
 *
 * not yet: asking the daemon. trace_cli_ask_daemon() is the one place the
 * control socket (issue 6, src/daemon/control.c, built on another branch)
 * plugs in; until then it answers "unavailable" and the log file is read.
 *
 * Entry point: cmd_trace().
 * SECURITY: runs as the caller and reads only files the caller can read;
 * the lines were escaped by the daemon when it logged them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/trace.h"
#include "lib/buf.h"
#include "lib/util.h"

/* The most a daemon's answer may hold. */
#define TRACE_REPLY_MAX		(4u * 1024 * 1024)

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

/*
 * Ask the daemon over its control socket (c->run_dir/control) for the
 * lines of query still in its ring (trace_lookup()). Returns the number
 * of lines appended to out, or -1 with err set when the daemon cannot
 * answer.
 *
 * not yet: the control socket lands with issue 6's queue control (branch
 * i6-queue); it needs a request "trace QUERY" answered with the text
 * trace_lookup(d->trace, QUERY, out, &error) appends.
 */
static int
trace_cli_ask_daemon(const struct conf *c, const char *query, struct buf *out,
    char *err, size_t errlen)
{
	(void)c;
	(void)query;
	(void)out;
	snprintf(err, errlen, "the daemon's control socket is not there yet");
	return -1;
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
	char err[256];
	size_t found = 0;
	int ch, n, status = 2;

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
			return 2;
		}
	}
	if (argc - optind != 1) {
		trace_cli_usage();
		return 2;
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
		n = trace_cli_ask_daemon(c, argv[optind], &out, err,
		    sizeof(err));
		if (n > 0) {
			fwrite(out.data, 1, out.len, stdout);
			status = 0;
			goto done;
		}
		file = c->log_file;
		if (file == NULL) {
			fprintf(stderr, "petrel: trace: %s, and no log_file is "
			    "configured to read instead\n", n == -1 ? err :
			    "the daemon knows nothing of it");
			goto done;
		}
	}
	if (trace_cli_read_file(file, q, &found) == -1) {
		fprintf(stderr, "petrel: trace: %s: %s\n", file,
		    strerror(errno));
		goto done;
	}
	if (found == 0)
		fprintf(stderr, "petrel: trace: %s: nothing in %s\n",
		    argv[optind], file);
	status = found > 0 ? 0 : 1;
done:
	fflush(stdout);
	buf_free(&out);
	conf_free(c);
	free(q);
	return status;
}
