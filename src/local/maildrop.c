/*
 * maildrop.c: maildrop files, the messages `petrel sendmail` leaves
 * through petrel-postdrop while the daemon is down (docs/queue-format.md,
 * "maildrop files"):
 *
 *   PETREL-MAILDROP 1
 *   uid 1000
 *   size 00000000000000000123     (MAILDROP_SIZE_WIDTH digits)
 *   sender <alice@host.example>
 *   ret FULL                      (optional; also envid, notify)
 *   rcpt <bob@example.org>        (one line per recipient)
 *   data
 *   <size octets of message, CRLF line ends>
 *
 * Entry points: maildrop_parse_line, maildrop_read_env (pickup),
 * maildrop_write_env and maildrop_set_size (postdrop).
 *
 * SECURITY: both sides read text a local user wrote (postdrop from its
 * stdin, the pickup from a file that user owns): every line is bounded
 * (MAILDROP_LINE_MAX), recipients are counted (MAILDROP_RCPTS_MAX), values
 * are printable and free of '<', '>' and spaces where an SMTP command
 * would carry them, so nothing can add a command or a parameter. The
 * uid and size lines are postdrop's: maildrop_parse_line() refuses them
 * from the user.
 * OWNERSHIP: a maildrop_env owns its strings; maildrop_env_free().
 */
#include "local/local.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"

void
maildrop_env_init(struct maildrop_env *e)
{
	memset(e, 0, sizeof(*e));
}

void
maildrop_env_free(struct maildrop_env *e)
{
	size_t i;

	free(e->sender);
	for (i = 0; i < e->nrcpts; i++)
		free(e->rcpts[i]);
	free(e->rcpts);
	maildrop_env_init(e);
}

/* "<addr>": printable, no '<', '>' or space inside; "" for "<>". */
static char *
maildrop_addr(const char *v)
{
	size_t n = strlen(v), i;

	if (n < 2 || v[0] != '<' || v[n - 1] != '>' ||
	    n - 2 > SENDMAIL_ADDR_MAX)
		return NULL;
	for (i = 1; i < n - 1; i++)
		if ((unsigned char)v[i] < 0x21 || v[i] == 0x7f ||
		    v[i] == '<' || v[i] == '>')
			return NULL;
	return xstrndup(v + 1, n - 2);
}

/* Printable ASCII without spaces, at most max octets. */
static bool
maildrop_word(const char *v, size_t max)
{
	size_t n = strlen(v), i;

	if (n == 0 || n > max)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e)
			return false;
	return true;
}

int
maildrop_parse_line(struct maildrop_env *e, const char *line, bool from_user,
    const char **error_r)
{
	const char *v = strchr(line, ' ');
	size_t klen = v != NULL ? (size_t)(v - line) : strlen(line);
	uint64_t n;
	char *a;

	if (strlen(line) > MAILDROP_LINE_MAX) {
		*error_r = "envelope line too long";
		return -1;
	}
	if (v == NULL && strcmp(line, "data") == 0) {
		if (e->sender == NULL) {
			*error_r = "no sender line";
			return -1;
		}
		if (e->nrcpts == 0) {
			*error_r = "no recipients";
			return -1;
		}
		return 1;
	}
	if (v == NULL) {
		*error_r = "envelope line without a value";
		return -1;
	}
	v++;
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(line, k, klen) == 0)
	if (KEY("sender")) {
		if (e->sender != NULL || (a = maildrop_addr(v)) == NULL) {
			*error_r = "bad or second sender line";
			return -1;
		}
		e->sender = a;
	} else if (KEY("rcpt")) {
		if ((a = maildrop_addr(v)) == NULL || a[0] == '\0') {
			free(a);
			*error_r = "bad recipient line";
			return -1;
		}
		if (e->nrcpts >= MAILDROP_RCPTS_MAX) {
			free(a);
			*error_r = "too many recipients";
			return -1;
		}
		e->rcpts = xrealloc(e->rcpts, (e->nrcpts + 1) *
		    sizeof(*e->rcpts));
		e->rcpts[e->nrcpts++] = a;
	} else if (KEY("ret")) {
		if (strcmp(v, "FULL") != 0 && strcmp(v, "HDRS") != 0) {
			*error_r = "bad ret line";
			return -1;
		}
		strlcpy(e->ret, v, sizeof(e->ret));
	} else if (KEY("envid")) {
		if (!maildrop_word(v, SENDMAIL_ENVID_MAX) ||
		    strchr(v, '=') != NULL) {
			*error_r = "bad envid line";
			return -1;
		}
		strlcpy(e->envid, v, sizeof(e->envid));
	} else if (KEY("notify")) {
		if (!maildrop_word(v, sizeof(e->notify) - 1) ||
		    strspn(v, "NEVRSUCFAILDY,") != strlen(v)) {
			*error_r = "bad notify line";
			return -1;
		}
		strlcpy(e->notify, v, sizeof(e->notify));
	} else if (!from_user && KEY("uid")) {
		if (e->has_uid || parse_u64(v, 0, UINT32_MAX - 1, &n,
		    NULL) == -1) {
			*error_r = "bad uid line";
			return -1;
		}
		e->uid = (unsigned int)n;
		e->has_uid = true;
	} else if (!from_user && KEY("size")) {
		if (e->has_size || strlen(v) != MAILDROP_SIZE_WIDTH ||
		    strspn(v, "0123456789") != MAILDROP_SIZE_WIDTH) {
			*error_r = "bad size line";
			return -1;
		}
		while (*v == '0' && v[1] != '\0')
			v++;
		if (parse_u64(v, 0, UINT64_MAX / 2, &n, NULL) == -1) {
			*error_r = "bad size line";
			return -1;
		}
		e->size = n;
		e->has_size = true;
	} else {
		*error_r = "unknown envelope line";
		return -1;
	}
#undef KEY
	return 0;
}

int
maildrop_read_env(FILE *fp, struct maildrop_env *e, uint64_t *offset_r,
    const char **error_r)
{
	char line[MAILDROP_LINE_MAX + 2];
	uint64_t off = 0;
	size_t n;
	bool first = true;
	int r;

	for (;;) {
		if (fgets(line, sizeof(line), fp) == NULL) {
			*error_r = ferror(fp) ? "read error" :
			    "truncated envelope (no data line)";
			return -1;
		}
		n = strlen(line);
		off += n;
		if (n == 0 || line[n - 1] != '\n') {
			*error_r = "envelope line too long or not ended";
			return -1;
		}
		line[n - 1] = '\0';
		if (first) {
			if (strcmp(line, MAILDROP_MAGIC) != 0) {
				*error_r = "not a maildrop file (magic line)";
				return -1;
			}
			first = false;
			continue;
		}
		r = maildrop_parse_line(e, line, false, error_r);
		if (r == -1)
			return -1;
		if (r == 1)
			break;
	}
	if (!e->has_uid || !e->has_size) {
		*error_r = "no uid or size line";
		return -1;
	}
	*offset_r = off;
	return 0;
}

static int
maildrop_put(struct buf *b, const char *k, const char *v, bool angle)
{
	return buf_printf(b, angle ? "%s <%s>\n" : "%s %s\n", k, v);
}

long long
maildrop_write_env(int fd, const struct maildrop_env *e)
{
	struct buf b;
	size_t i;
	long long n;
	int bad = 0;

	buf_init(&b, (size_t)MAILDROP_RCPTS_MAX * (MAILDROP_LINE_MAX + 2) +
	    8192);
	bad |= buf_printf(&b, "%s\nuid %u\nsize %0*d\n", MAILDROP_MAGIC,
	    e->uid, MAILDROP_SIZE_WIDTH, 0);
	bad |= maildrop_put(&b, "sender", e->sender, true);
	if (e->ret[0] != '\0')
		bad |= maildrop_put(&b, "ret", e->ret, false);
	if (e->envid[0] != '\0')
		bad |= maildrop_put(&b, "envid", e->envid, false);
	if (e->notify[0] != '\0')
		bad |= maildrop_put(&b, "notify", e->notify, false);
	for (i = 0; i < e->nrcpts; i++)
		bad |= maildrop_put(&b, "rcpt", e->rcpts[i], true);
	bad |= buf_append_str(&b, "data\n");
	if (bad != 0) {
		buf_free(&b);
		errno = EMSGSIZE;
		return -1;
	}
	n = (long long)b.len;
	if (write_all(fd, b.data, b.len) == -1)
		n = -1;
	buf_free(&b);
	return n;
}

int
maildrop_set_size(int fd, uint64_t size)
{
	char field[MAILDROP_SIZE_WIDTH + 1];
	off_t at = (off_t)(sizeof(MAILDROP_MAGIC "\n") - 1);
	char uidline[32];

	/* The size line follows the magic and uid lines. */
	if (pread(fd, uidline, sizeof(uidline), at) <= 0)
		return -1;
	uidline[sizeof(uidline) - 1] = '\0';
	at += (off_t)(strcspn(uidline, "\n") + 1 + strlen("size "));
	snprintf(field, sizeof(field), "%0*" PRIu64, MAILDROP_SIZE_WIDTH,
	    size);
	if (pwrite(fd, field, MAILDROP_SIZE_WIDTH, at) != MAILDROP_SIZE_WIDTH)
		return -1;
	return 0;
}
