/*
 * mailq.c: the queue listing as Postfix's mailq text and as JSON lines.
 *
 * Entry points: mailq_format_text, mailq_format_json, mailq_json_string.
 *
 * STANDARDS: the text is Postfix's `mailq` (postqueue -p) output byte for
 * byte, in the layout Postfix uses with enable_long_queue_ids (its
 * columns fit IDs of up to 17 characters; ours have 16): compared with a
 * real Postfix 3.7 in tests/e2e/test_queue_cli.py. The JSON objects
 * carry the fields of Postfix's `postqueue -j` (RFC 8259 text, one object
 * per line) plus Petrel's own.
 * SECURITY: addresses and replies come from the network; control bytes
 * are printed as "?" in the text and escaped in JSON, so neither a
 * terminal nor a parser sees them raw.
 */
#include "daemon/mailq.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/utf8.h"
#include "lib/util.h"

/* Postfix's long queue ID layout (postqueue's showq_compat). */
#define MAILQ_HEAD	"----Queue ID----- --Size-- ---Arrival Time---- " \
			"--Sender/Recipient------\n"
#define MAILQ_RCPT_INDENT	47	/* 17 + 1 + 8 + 1 + 19 + 1 */
#define MAILQ_REASON_END	76	/* "(" reason ")" ends in column 78 */

/* asctime()'s first 19 characters, in local time, C locale. */
static void
mailq_time(uint64_t t, char *out, size_t size)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed",
	    "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr",
	    "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL || tm.tm_wday < 0 ||
	    tm.tm_wday > 6 || tm.tm_mon < 0 || tm.tm_mon > 11) {
		snprintf(out, size, "%-19s", "?");
		return;
	}
	snprintf(out, size, "%.3s %.3s%3d %.2d:%.2d:%.2d", days[tm.tm_wday],
	    months[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Text for a terminal: control bytes (and DEL) as "?". */
static int
mailq_put_text(struct buf *out, const char *s)
{
	size_t i, start = 0, n = strlen(s);

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= ' ' && ch != 0x7f)
			continue;
		if (buf_append(out, s + start, i - start) == -1 ||
		    buf_append(out, "?", 1) == -1)
			return -1;
		start = i + 1;
	}
	return buf_append(out, s + start, n - start);
}

int
mailq_format_text(const struct ctlproto_list *l, struct buf *out)
{
	uint64_t total = 0;
	size_t i, j;

	if (l->n == 0)
		return buf_append_str(out, "Mail queue is empty\n");
	if (buf_append_str(out, MAILQ_HEAD) == -1)
		return -1;
	for (i = 0; i < l->n; i++) {
		const struct ctlproto_msg *m = &l->msgs[i];
		const char *prev = "";
		char idst[QUEUE_ID_MAX + 2], when[32];

		snprintf(idst, sizeof(idst), "%s%s", m->id,
		    m->state == CTL_STATE_ACTIVE ? "*" :
		    m->state == CTL_STATE_HELD ? "!" : "");
		mailq_time(m->arrival, when, sizeof(when));
		if ((i > 0 && buf_append(out, "\n", 1) == -1) ||
		    buf_printf(out, "%-17s %8llu %19.19s ", idst,
		    (unsigned long long)m->size, when) == -1 ||
		    mailq_put_text(out, m->sender[0] != '\0' ? m->sender :
		    "MAILER-DAEMON") == -1 || buf_append(out, "\n", 1) == -1)
			return -1;
		total += m->size;
		for (j = 0; j < m->nrcpts; j++) {
			const struct ctlproto_rcpt *r = &m->rcpts[j];

			/* A reason only when it changes; "reason
			 * unavailable" when one had a reason and this
			 * one has none (as Postfix). */
			if (strcmp(prev, r->reply) != 0) {
				const char *why = r->reply[0] != '\0' ?
				    r->reply : "reason unavailable";
				int pad = MAILQ_REASON_END - (int)strlen(why);

				if (pad < 0)
					pad = 0;
				if (buf_printf(out, "%*s(", pad, "") == -1 ||
				    mailq_put_text(out, why) == -1 ||
				    buf_append(out, ")\n", 2) == -1)
					return -1;
				prev = r->reply;
			}
			if (buf_printf(out, "%*s", MAILQ_RCPT_INDENT, "") ==
			    -1 || mailq_put_text(out, r->addr) == -1 ||
			    buf_append(out, "\n", 1) == -1)
				return -1;
		}
	}
	return buf_printf(out, "\n-- %llu Kbytes in %zu Request%s.\n",
	    (unsigned long long)(total / 1024), l->n, l->n == 1 ? "" : "s");
}

int
mailq_json_string(struct buf *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	if (buf_append(out, "\"", 1) == -1)
		return -1;
	while (*p != '\0') {
		if (*p == '"' || *p == '\\') {
			if (buf_printf(out, "\\%c", *p) == -1)
				return -1;
			p++;
		} else if (*p < 0x20 || *p == 0x7f) {
			if (buf_printf(out, "\\u%04x", *p) == -1)
				return -1;
			p++;
		} else if (*p < 0x80) {
			if (buf_append(out, p, 1) == -1)
				return -1;
			p++;
		} else if ((n = utf8_seq_len((const char *)p)) > 0) {
			if (buf_append(out, p, n) == -1)
				return -1;
			p += n;
		} else {
			if (buf_append_str(out, "\\ufffd") == -1)
				return -1;
			p++;
		}
	}
	return buf_append(out, "\"", 1);
}

static const char *
mailq_queue_name(enum ctlproto_state st)
{
	switch (st) {
	case CTL_STATE_ACTIVE:
		return "active";
	case CTL_STATE_HELD:
		return "hold";
	case CTL_STATE_QUEUED:
		break;
	}
	return "deferred";
}

int
mailq_format_json(const struct ctlproto_list *l, struct buf *out)
{
	size_t i, j;

	for (i = 0; i < l->n; i++) {
		const struct ctlproto_msg *m = &l->msgs[i];

		if (buf_printf(out, "{\"queue_name\": \"%s\", \"queue_id\": "
		    "\"%s\", \"arrival_time\": %llu, \"message_size\": %llu, "
		    "\"forced_expire\": false, \"sender\": ",
		    mailq_queue_name(m->state), m->id,
		    (unsigned long long)m->arrival,
		    (unsigned long long)m->size) == -1 ||
		    mailq_json_string(out, m->sender[0] != '\0' ? m->sender :
		    "MAILER-DAEMON") == -1 ||
		    buf_append_str(out, ", \"recipients\": [") == -1)
			return -1;
		for (j = 0; j < m->nrcpts; j++) {
			const struct ctlproto_rcpt *r = &m->rcpts[j];

			if ((j > 0 && buf_append(out, ", ", 2) == -1) ||
			    buf_append_str(out, "{\"address\": ") == -1 ||
			    mailq_json_string(out, r->addr) == -1 ||
			    buf_append_str(out, ", \"original_address\": ") ==
			    -1 || mailq_json_string(out, r->orig) == -1 ||
			    buf_append_str(out, ", \"delay_reason\": ") == -1 ||
			    mailq_json_string(out, r->reply) == -1 ||
			    buf_append_str(out, ", \"remote_mta\": ") == -1 ||
			    mailq_json_string(out, r->remote) == -1 ||
			    buf_printf(out, ", \"attempts\": %u, "
			    "\"last_attempt\": %llu, \"next_attempt\": %llu, "
			    "\"waiting\": \"%s\"}", r->attempts,
			    (unsigned long long)r->last_attempt,
			    (unsigned long long)r->next_attempt,
			    ctlproto_wait_name(r->wait)) == -1)
				return -1;
		}
		if (buf_append_str(out, "]}\n") == -1)
			return -1;
	}
	return 0;
}
