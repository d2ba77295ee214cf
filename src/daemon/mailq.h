/*
 * mailq.h: the queue listing as text: Postfix's mailq layout (for the
 * monitoring plugins that parse it) and JSON lines (for scripts). The
 * formats are specified in docs/commands.md ("petrel queue list").
 */
#ifndef PETREL_DAEMON_MAILQ_H
#define PETREL_DAEMON_MAILQ_H

#include "daemon/ctlproto.h"
#include "lib/buf.h"

/*
 * Postfix's `mailq` output for the long queue ID layout (Petrel's queue
 * IDs are 16 characters): a heading, per message the ID ("*" active,
 * "!" on hold), size, arrival time (local time, asctime form), sender
 * (MAILER-DAEMON for <>), then each pending recipient with its last
 * error on a line of its own before it, "(...)" ending in column 78
 * (only when it differs from the previous recipient's); a blank line
 * between messages; "-- N Kbytes in M Requests." at the end; "Mail
 * queue is empty" for none. Appends to out; 0 or -1 (EMSGSIZE).
 */
int mailq_format_text(const struct ctlproto_list *l, struct buf *out);

/*
 * One JSON object per message and line (as Postfix's `postqueue -j`),
 * with Petrel's fields added: queue_name, queue_id, arrival_time,
 * message_size, forced_expire, sender (MAILER-DAEMON for <>, as
 * Postfix), recipients [{address,
 * original_address, delay_reason, remote_mta, attempts, last_attempt,
 * next_attempt, waiting}]. Appends to out; 0 or -1.
 */
int mailq_format_json(const struct ctlproto_list *l, struct buf *out);

/* A JSON string (quotes included); invalid UTF-8 becomes U+FFFD. */
int mailq_json_string(struct buf *out, const char *s);

#endif
