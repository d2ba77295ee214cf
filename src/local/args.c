/*
 * args.c: the sendmail command line, as programs call /usr/sbin/sendmail
 * (cron: "-FCronDaemon -i -B8BITMIME -oem user", PHP: "-t -i", mutt:
 * "-oem -oi", git send-email: "-i").
 *
 * Entry point: sendmail_args_parse. Flags are read up to the first
 * operand or "--"; every operand after is a recipient. A flag letter
 * that takes a value takes the rest of its word or the next word
 * ("-fuser" or "-f user"); flags without values may be grouped ("-ti").
 *
 * Accepted and ignored, as Postfix's sendmail(1) ignores them: -Am, -Ac,
 * -B type, -G, -h count, -L label, -n, -O option=value, -o7, -o8, -om,
 * -oe* (error modes: -oem, -oee, -oep, -oeq, -oew), -od* (-odi, -odb,
 * -odq: delivery modes), -ob*, -oA*, -oQ*, -U, -v, -X file, and -q with a
 * time or queue selector (-q1h: a sendmail daemon's queue interval).
 * Refused (exit 64): -bd, -bl, -bD, -bh, -bH, -bv, -ba, -bt, and
 * everything unknown.
 *
 * SECURITY: pure (no I/O); the values are copied into bounded fields
 * with their length checked; an -N, -R or -V value that would not make a
 * valid ESMTP parameter is refused here rather than sent.
 * STANDARDS: RFC 3461 4.1 (NOTIFY), 4.3 (RET), 4.4 (ENVID, xtext of
 * RFC 3461 4), sendmail(8) and Postfix's sendmail(1) for the flags.
 */
#include "local/local.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"

static void
sendmail_err(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
sendmail_err(char *err, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, size, fmt, ap);
	va_end(ap);
}

/* -f / -r: "user@host", "<user@host>", "" or "<>" (the null sender). */
static int
sendmail_set_sender(struct sendmail_args *a, const char *v, char *err,
    size_t errsize)
{
	size_t n = strlen(v), i;

	if (n >= 2 && v[0] == '<' && v[n - 1] == '>') {
		v++;
		n -= 2;
	}
	if (n > SENDMAIL_ADDR_MAX) {
		sendmail_err(err, errsize, "-f: sender address too long");
		return -1;
	}
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f ||
		    v[i] == '<' || v[i] == '>' || v[i] == ' ') {
			sendmail_err(err, errsize, "-f: bad sender address");
			return -1;
		}
	memcpy(a->sender, v, n);
	a->sender[n] = '\0';
	a->has_sender = true;
	return 0;
}

/* -N never | a comma list of success, failure, delay (any case). */
static int
sendmail_set_notify(struct sendmail_args *a, const char *v, char *err,
    size_t errsize)
{
	static const char *const words[] = { "success", "failure", "delay" };
	char out[40] = "";
	bool seen[3] = { false, false, false }, never = false;
	const char *p = v;
	size_t n, k;

	if (*v == '\0')
		goto bad;
	for (;;) {
		n = strcspn(p, ",");
		if (n == 5 && ascii_strncasecmp(p, "never", 5) == 0)
			never = true;
		else {
			for (k = 0; k < 3; k++)
				if (n == strlen(words[k]) &&
				    ascii_strncasecmp(p, words[k], n) == 0)
					break;
			if (k == 3)
				goto bad;
			seen[k] = true;
		}
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	/* RFC 3461 4.1: NEVER alone, or any of the others. */
	if (never) {
		if (seen[0] || seen[1] || seen[2])
			goto bad;
		strlcpy(a->notify, "NEVER", sizeof(a->notify));
		return 0;
	}
	for (k = 0; k < 3; k++)
		if (seen[k]) {
			if (out[0] != '\0')
				strlcat(out, ",", sizeof(out));
			strlcat(out, k == 0 ? "SUCCESS" : k == 1 ? "FAILURE" :
			    "DELAY", sizeof(out));
		}
	strlcpy(a->notify, out, sizeof(a->notify));
	return 0;
bad:
	sendmail_err(err, errsize, "-N: want never, or a list of success, "
	    "failure and delay separated by commas");
	return -1;
}

/* -V envid: printable ASCII, sent as xtext (RFC 3461 4). */
static int
sendmail_set_envid(struct sendmail_args *a, const char *v, char *err,
    size_t errsize)
{
	size_t o = 0;
	const unsigned char *p;

	if (*v == '\0')
		goto bad;
	for (p = (const unsigned char *)v; *p != '\0'; p++) {
		if (*p < 0x20 || *p > 0x7e)
			goto bad;
		if (*p == '+' || *p == '=' || *p == ' ') {
			if (o + 3 > SENDMAIL_ENVID_MAX)
				goto toolong;
			snprintf(a->envid + o, 4, "+%02X", *p);
			o += 3;
		} else {
			if (o + 1 > SENDMAIL_ENVID_MAX)
				goto toolong;
			a->envid[o++] = (char)*p;
		}
	}
	a->envid[o] = '\0';
	return 0;
toolong:
	sendmail_err(err, errsize, "-V: envelope id longer than %d "
	    "characters (xtext-encoded)", SENDMAIL_ENVID_MAX);
	return -1;
bad:
	sendmail_err(err, errsize, "-V: the envelope id must be printable "
	    "ASCII");
	return -1;
}

/* -o...: the whole word. Returns 0 (handled) or -1 (unknown). */
static int
sendmail_option_o(struct sendmail_args *a, const char *w)
{
	if (strcmp(w, "oi") == 0) {
		a->i = true;
		return 0;
	}
	if (strcmp(w, "o7") == 0 || strcmp(w, "o8") == 0 ||
	    strcmp(w, "om") == 0 || strncmp(w, "oe", 2) == 0 ||
	    strncmp(w, "od", 2) == 0 || strncmp(w, "ob", 2) == 0 ||
	    strncmp(w, "oA", 2) == 0 || strncmp(w, "oQ", 2) == 0) {
		a->ignored++;
		return 0;
	}
	return -1;
}

static const char *
sendmail_basename(const char *p)
{
	const char *s = strrchr(p, '/');

	return s != NULL ? s + 1 : p;
}

int
sendmail_args_parse(int argc, char *const *argv, struct sendmail_args *a,
    char *err, size_t errsize)
{
	const char *name, *w, *v;
	int i;

	memset(a, 0, sizeof(*a));
	a->mode = SENDMAIL_MODE_SEND;
	err[0] = '\0';
	if (argc > 0 && argv[0] != NULL) {
		name = sendmail_basename(argv[0]);
		if (strcmp(name, "newaliases") == 0)
			a->mode = SENDMAIL_MODE_NEWALIASES;
		else if (strcmp(name, "mailq") == 0)
			a->mode = SENDMAIL_MODE_QUEUE;
	}
	for (i = 1; i < argc; i++) {
		w = argv[i];
		if (w[0] != '-' || w[1] == '\0')
			break;
		if (strcmp(w, "--") == 0) {
			i++;
			break;
		}
		for (w++; *w != '\0'; w++) {
			switch (*w) {
			case 't':
				a->t = true;
				continue;
			case 'i':
				a->i = true;
				continue;
			case 'n': case 'U': case 'v': case 'G':
				a->ignored++;
				continue;
			case 'I':
				a->mode = SENDMAIL_MODE_NEWALIASES;
				continue;
			case 'f': case 'r': case 'F': case 'N': case 'R':
			case 'V': case 'C': case 'c': case 'B': case 'h':
			case 'L': case 'O': case 'X':
				break;
			case 'o':
				if (sendmail_option_o(a, w) == -1) {
					sendmail_err(err, errsize, "unknown "
					    "option -%s", w);
					return -1;
				}
				goto next;
			case 'A':
				if (strcmp(w, "Am") != 0 &&
				    strcmp(w, "Ac") != 0) {
					sendmail_err(err, errsize, "unknown "
					    "option -%s", w);
					return -1;
				}
				a->ignored++;
				goto next;
			case 'q':
				/* -q alone flushes; -q1h, -qIid, -qRsite... are
				 * a sendmail daemon's queue runs: ignored. */
				if (w[1] == '\0')
					a->mode = SENDMAIL_MODE_FLUSH;
				else
					a->ignored++;
				goto next;
			case 'b':
				switch (w[1]) {
				case 'm':
					a->mode = SENDMAIL_MODE_SEND;
					break;
				case 's':
					a->mode = SENDMAIL_MODE_SMTP;
					break;
				case 'p':
					a->mode = SENDMAIL_MODE_QUEUE;
					break;
				case 'i':
					a->mode = SENDMAIL_MODE_NEWALIASES;
					break;
				default:
					sendmail_err(err, errsize, "-%s is not "
					    "supported (petrel sendmail knows "
					    "-bm, -bs, -bp and -bi)", w);
					return -1;
				}
				if (w[2] != '\0') {
					sendmail_err(err, errsize, "unknown "
					    "option -%s", w);
					return -1;
				}
				goto next;
			default:
				sendmail_err(err, errsize, "unknown option -%c",
				    *w);
				return -1;
			}
			/* A flag with a value: the rest of the word, or the
			 * next word. */
			if (w[1] != '\0')
				v = w + 1;
			else if (i + 1 < argc)
				v = argv[++i];
			else {
				sendmail_err(err, errsize, "option -%c needs a "
				    "value", *w);
				return -1;
			}
			switch (*w) {
			case 'f':
			case 'r':
				if (sendmail_set_sender(a, v, err,
				    errsize) == -1)
					return -1;
				break;
			case 'F':
				a->fullname = v;
				break;
			case 'N':
				if (sendmail_set_notify(a, v, err,
				    errsize) == -1)
					return -1;
				break;
			case 'R':
				if (ascii_strcasecmp(v, "full") == 0)
					strlcpy(a->ret, "FULL", sizeof(a->ret));
				else if (ascii_strcasecmp(v, "hdrs") == 0)
					strlcpy(a->ret, "HDRS", sizeof(a->ret));
				else {
					sendmail_err(err, errsize, "-R: want "
					    "full or hdrs");
					return -1;
				}
				break;
			case 'V':
				if (sendmail_set_envid(a, v, err,
				    errsize) == -1)
					return -1;
				break;
			case 'C':
			case 'c':
				a->conf = v;
				break;
			default:	/* -B, -h, -L, -O, -X: ignored */
				a->ignored++;
				break;
			}
			goto next;
		}
next:
		;
	}
	a->rcpts = argv + i;
	a->nrcpts = (size_t)(argc - i);
	return 0;
}
