/*
 * main.c: the `petrel` multi-call program.
 *
 *   petrel serve [-c FILE] [-v] [--no-sandbox]
 *                                   run the daemon in the foreground
 *   petrel check-config [-c FILE]   validate a configuration file
 *   petrel resolve [-c FILE] TYPE NAME
 *                                   ask Petrel's resolver (resolve.c)
 *   petrel dkim keygen|sign|verify ...
 *                                   DKIM keys, signing, checks (dkim.c)
 *   petrel sendmail [-t] [-i] [-f sender] ... [recipient ...]
 *                                   local mail injection (sendmail.c); also
 *                                   as argv[0] sendmail, newaliases, mailq
 *   petrel queue list|show|flush|delete|hold|release|bounce ...
 *   petrel mailq                    the queue (queue.c); also as `mailq`
 *   petrel trace [-c FILE] [-f LOGFILE] ID|MESSAGE-ID
 *                                   a message's story (trace.c)
 *   petrel version
 *
 * Every command finds its configuration the same way: -c FILE, else
 * $PETREL_CONFIG, else /etc/petrel/petrel.conf, else the built-in default.
 */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/daemon.h"
#include "daemon/metrics_http.h"
#include "delivery/lmtp.h"
#include "lib/log.h"
#include "policy/policy.h"

int cmd_resolve(int argc, char **argv);
int cmd_user(int argc, char **argv);
int cmd_dkim(int argc, char **argv);
int cmd_spf(int argc, char **argv);
int cmd_auth(int argc, char **argv);
int cmd_sendmail(int argc, char **argv);
int cmd_queue(int argc, char **argv);
int cmd_mailq(int argc, char **argv);
int cmd_trace(int argc, char **argv);	/* issue 6 */

static void
usage(void)
{
	fprintf(stderr,
	    "usage: petrel serve [-c FILE] [-v] [--no-sandbox]\n"
	    "       petrel check-config [-c FILE]\n"
	    "       petrel resolve [-c FILE] A|AAAA|MX|TXT|PTR|CNAME|TLSA|route "
	    "NAME\n"
	    "       petrel user add|passwd [-c FILE] ADDRESS [--stdin]\n"
	    "       petrel user del [-c FILE] ADDRESS\n"
	    "       petrel dkim keygen [-c FILE] --domain D --selector S "
	    "--out FILE\n"
	    "                          [--type rsa|ed25519] [--bits N]\n"
	    "       petrel dkim sign --domain D --selector S --key FILE "
	    "[--headers h1:h2:...]\n"
	    "       petrel dkim verify [-c FILE] [--dns HOST:PORT]...\n"
	    "       petrel spf check [-c FILE] [--dns HOST:PORT]... --ip IP "
	    "--mail-from ADDR\n"
	    "                        [--helo NAME] [--receiver NAME] "
	    "[--default-exp MACRO-STRING]\n"
	    "       petrel auth check [-c FILE] [--dns HOST:PORT]... --ip IP "
	    "--helo NAME\n"
	    "                         --mail-from ADDR < message\n"
	    "       petrel sendmail [-t] [-i] [-f sender] [-F name] [-C FILE] "
	    "[recipient ...]\n"
	    "       petrel queue list [-c FILE] [--json]\n"
	    "       petrel queue show|hold|release|bounce [-c FILE] ID\n"
	    "       petrel queue flush [-c FILE] [ID | --domain DOMAIN]\n"
	    "       petrel queue delete [-c FILE] ID | --all | --sender ADDR"
	    " | --recipient ADDR\n"
	    "       petrel mailq [-c FILE] [--json]\n"
	    "       petrel trace [-c FILE] [-f LOGFILE] QUEUE-ID|MESSAGE-ID\n"
	    "       petrel version\n");
}

/*
 * Parse "-c FILE" and "-v", and "--no-sandbox" when no_sandbox_r is not
 * NULL (serve only); returns 0, or -1 after printing usage.
 */
static int
parse_opts(int argc, char **argv, const char **conf_r, int *verbose_r,
    bool *no_sandbox_r)
{
	static const struct option serve_longopts[] = {
		{ "no-sandbox", no_argument, NULL, 'S' },	/* issue 8 */
		{ NULL, 0, NULL, 0 },
	};
	static const struct option no_longopts[] = {
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:v", no_sandbox_r != NULL ?
	    serve_longopts : no_longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			*conf_r = optarg;
			break;
		case 'v':
			(*verbose_r)++;
			break;
		case 'S':
			/* Only in serve_longopts, given with no_sandbox_r. */
			if (no_sandbox_r == NULL) {
				usage();
				return -1;
			}
			*no_sandbox_r = true;
			break;
		default:
			usage();
			return -1;
		}
	}
	if (optind != argc) {
		usage();
		return -1;
	}
	return 0;
}

static int
cmd_check_config(const char *conf_path)
{
	struct conf *c;
	struct policy_tables *t;
	const char *source, *path = conf_locate(conf_path, &source);

	char err[512];
	enum lmtp_check lc;
	int rc = 0;

	if (daemon_load_config(conf_path, &c, &t, 1) == -1)
		return 1;
	/* Every check runs, so that one run reports every problem. */
	if (daemon_check_tls(c, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s\n",
		    path != NULL ? path : "built-in default", err);
		rc = 1;
	}
	if (daemon_check_dkim(c) == -1)
		rc = 1;
	/* As root: what `petrel serve` refuses, check-config refuses. */
	if (daemon_check_access(c) == -1)
		rc = 1;
	/* A spool serve would refuse as unsafe (issue 6). */
	if (daemon_check_spool(c) == -1)
		rc = 1;
	/* deliver lmtp: the target (src/delivery/lmtp.h). */
	if ((lc = lmtp_check_target(c, err, sizeof(err))) != LMTP_CHECK_OK)
		fprintf(stderr, "%s: %s%s\n",
		    path != NULL ? path : "built-in default",
		    lc == LMTP_CHECK_WARN ? "warning: " : "", err);
	if (lc == LMTP_CHECK_ERROR)
		rc = 1;
	/* issue 6: a metrics endpoint off loopback has no authentication */
	if (c->metrics != NULL && !metrics_http_is_loopback(c->metrics))
		fprintf(stderr, "%s: warning: metrics %s is not a loopback "
		    "address: anyone who can reach it reads the counters; "
		    "keep it on a private network or firewall it\n",
		    path != NULL ? path : "built-in default",
		    c->metrics->text);
	if (rc == 0)
		printf("%s: configuration is valid (%s)\n",
		    path != NULL ? path : "built-in default", source);
	policy_tables_free(t);
	conf_free(c);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *conf_path = NULL, *cmd;
	int verbose = 0;

	log_init("petrel", LOG_LEVEL_INFO);
	/*
	 * issue 6: the usual names of a mailer's commands (links to
	 * petrel): `mailq` lists the queue (queue.c), `sendmail` and
	 * `newaliases` are the sendmail command line (sendmail.c).
	 */
	if (argc > 0) {
		const char *base = strrchr(argv[0], '/');

		base = base != NULL ? base + 1 : argv[0];
		if (strcmp(base, "mailq") == 0)
			return cmd_mailq(argc, argv);
		if (strcmp(base, "sendmail") == 0 ||
		    strcmp(base, "newaliases") == 0)
			return cmd_sendmail(argc, argv);
	}
	if (argc < 2) {
		usage();
		return 2;
	}
	cmd = argv[1];
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("petrel 0.1.0\n");
		return 0;
	}
	if (strcmp(cmd, "serve") == 0) {
		bool no_sandbox = false;

		if (parse_opts(argc - 1, argv + 1, &conf_path, &verbose,
		    &no_sandbox) == -1)
			return 2;
		if (verbose)
			log_set_level(LOG_LEVEL_DEBUG);
		return daemon_serve(conf_path, no_sandbox);
	}
	if (strcmp(cmd, "resolve") == 0)
		return cmd_resolve(argc - 1, argv + 1);	/* resolve.c */
	if (strcmp(cmd, "user") == 0)
		return cmd_user(argc - 1, argv + 1);	/* user.c */
	if (strcmp(cmd, "dkim") == 0)
		return cmd_dkim(argc - 1, argv + 1);	/* dkim.c */
	if (strcmp(cmd, "spf") == 0)
		return cmd_spf(argc - 1, argv + 1);	/* spf.c */
	if (strcmp(cmd, "auth") == 0)
		return cmd_auth(argc - 1, argv + 1);	/* auth.c */
	if (strcmp(cmd, "sendmail") == 0)
		return cmd_sendmail(argc - 1, argv + 1);	/* sendmail.c */
	if (strcmp(cmd, "queue") == 0)
		return cmd_queue(argc - 1, argv + 1);	/* queue.c */
	if (strcmp(cmd, "mailq") == 0)
		return cmd_mailq(argc - 1, argv + 1);	/* queue.c */
	if (strcmp(cmd, "trace") == 0)
		return cmd_trace(argc - 1, argv + 1);	/* trace.c: issue 6 */
	if (strcmp(cmd, "check-config") == 0) {
		if (parse_opts(argc - 1, argv + 1, &conf_path, &verbose,
		    NULL) == -1)
			return 2;
		return cmd_check_config(conf_path);
	}
	fprintf(stderr, "petrel: unknown command \"%s\"\n", cmd);
	usage();
	return 2;
}
