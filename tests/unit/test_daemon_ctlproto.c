/*
 * test_daemon_ctlproto.c: the control protocol (requests, words, listing
 * lines, trace lines) and the mailq formatters (Postfix's text layout,
 * JSON lines).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "daemon/ctlproto.h"
#include "daemon/mailq.h"
#include "lib/util.h"

static const struct {
	const char *line;
	int ok;
	enum ctlproto_cmd cmd;
	const char *arg;	/* decoded, NULL: none */
	const char *error;
} requests[] = {
	{ "list", 0, CTL_CMD_LIST, NULL, NULL },
	{ "list 0123456789ABCDEF", 0, CTL_CMD_LIST, "0123456789ABCDEF", NULL },
	{ "show 0123456789ABCDEF", 0, CTL_CMD_SHOW, "0123456789ABCDEF", NULL },
	{ "show", -1, 0, NULL, "missing argument" },
	{ "flush", 0, CTL_CMD_FLUSH, NULL, NULL },
	{ "flush-domain example.org", 0, CTL_CMD_FLUSH_DOMAIN, "example.org",
	    NULL },
	{ "flush-domain -", -1, 0, NULL, "bad domain" },
	{ "delete-all", 0, CTL_CMD_DELETE_ALL, NULL, NULL },
	{ "delete-all x", -1, 0, NULL, "unexpected argument" },
	{ "delete-sender -", 0, CTL_CMD_DELETE_SENDER, "", NULL },
	{ "delete-sender %2D", 0, CTL_CMD_DELETE_SENDER, "-", NULL },
	{ "delete-recipient \"a%20b\"@example.org", 0, CTL_CMD_DELETE_RCPT,
	    "\"a b\"@example.org", NULL },
	{ "hold ../etc", -1, 0, NULL, "bad queue ID" },
	{ "hold .hidden", -1, 0, NULL, "bad queue ID" },
	{ "release %00", -1, 0, NULL, "bad argument" },
	{ "bounce %4", -1, 0, NULL, "bad argument" },
	{ "bounce a b", -1, 0, NULL, "bad argument" },
	{ "bounce ", -1, 0, NULL, "bad argument" },
	{ "LIST", -1, 0, NULL, "unknown command" },
	{ "", -1, 0, NULL, "empty request" },
	{ "list\r", -1, 0, NULL, "bad byte in request" },
	{ "delete 0123456789ABCDEF", 0, CTL_CMD_DELETE, "0123456789ABCDEF",
	    NULL },
	{ "trace 0123456789ABCDEF", 0, CTL_CMD_TRACE, "0123456789ABCDEF",
	    NULL },
	{ "trace <a%25b@example.org>", 0, CTL_CMD_TRACE, "<a%b@example.org>",
	    NULL },
	{ "trace", -1, 0, NULL, "missing argument" },
	{ "trace -", -1, 0, NULL, "bad trace query" },
	{ "trace a b", -1, 0, NULL, "bad argument" },
	{ "trace %0A", 0, CTL_CMD_TRACE, "\n", NULL },	/* trace_lookup's */
};

static void
test_request_parse(void **state)
{
	struct ctlproto_request req;
	const char *error;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(requests); i++) {
		int r = ctlproto_request_parse(requests[i].line,
		    strlen(requests[i].line), &req, &error);

		if (r != requests[i].ok)
			fail_msg("%s: got %d, want %d", requests[i].line, r,
			    requests[i].ok);
		if (r == -1) {
			if (strcmp(error, requests[i].error) != 0)
				fail_msg("%s: got error \"%s\", want \"%s\"",
				    requests[i].line, error,
				    requests[i].error);
			continue;
		}
		assert_int_equal(req.cmd, requests[i].cmd);
		assert_int_equal(req.has_arg, requests[i].arg != NULL);
		if (requests[i].arg != NULL &&
		    strcmp(req.arg, requests[i].arg) != 0)
			fail_msg("%s: got arg \"%s\", want \"%s\"",
			    requests[i].line, req.arg, requests[i].arg);
	}
}

static void
test_request_too_long(void **state)
{
	char line[CTLPROTO_LINE_MAX + 10];
	struct ctlproto_request req;
	const char *error;

	(void)state;
	memset(line, 'a', sizeof(line));
	memcpy(line, "delete-sender ", 14);
	assert_int_equal(ctlproto_request_parse(line, CTLPROTO_LINE_MAX,
	    &req, &error), -1);
	assert_string_equal(error, "request too long");
	/* An argument longer than CTLPROTO_ARG_MAX decodes to too much. */
	assert_int_equal(ctlproto_request_parse(line, CTLPROTO_LINE_MAX - 1,
	    &req, &error), -1);
	assert_string_equal(error, "bad argument");
}

static void
test_request_round_trip(void **state)
{
	static const char *const args[] = { "", "-", "a b", "%", "x\ty",
	    "\xc3\xa9t\xc3\xa9@example.org", "--", "<>" };
	struct ctlproto_request req, back;
	struct buf b;
	const char *error;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(args); i++) {
		memset(&req, 0, sizeof(req));
		req.cmd = CTL_CMD_DELETE_SENDER;
		req.has_arg = true;
		strlcpy(req.arg, args[i], sizeof(req.arg));
		buf_init(&b, 4096);
		assert_int_equal(ctlproto_request_format(&req, &b), 0);
		assert_int_equal(b.data[b.len - 1], '\n');
		assert_null(memchr(b.data, ' ', b.len) == NULL ? NULL :
		    strchr(strchr(b.data, ' ') + 1, ' '));
		if (ctlproto_request_parse(b.data, b.len - 1, &back,
		    &error) == -1)
			fail_msg("\"%s\": %s", args[i], error);
		if (strcmp(back.arg, args[i]) != 0)
			fail_msg("got \"%s\", want \"%s\"", back.arg, args[i]);
		buf_free(&b);
	}
}

/* A query of CTLPROTO_QUERY_MAX - 1 bytes goes; one byte more does not. */
static void
test_request_trace_bound(void **state)
{
	char line[CTLPROTO_QUERY_MAX + 16];
	struct ctlproto_request req, back;
	struct buf b;
	const char *error;

	(void)state;
	memcpy(line, "trace ", 6);
	memset(line + 6, 'A', CTLPROTO_QUERY_MAX);
	assert_int_equal(ctlproto_request_parse(line,
	    6 + CTLPROTO_QUERY_MAX - 1, &req, &error), 0);
	assert_int_equal(req.cmd, CTL_CMD_TRACE);
	assert_int_equal(strlen(req.arg), CTLPROTO_QUERY_MAX - 1);
	assert_int_equal(ctlproto_request_parse(line, 6 + CTLPROTO_QUERY_MAX,
	    &req, &error), -1);
	assert_string_equal(error, "bad trace query");

	/* What `petrel trace` sends comes back as it was. */
	memset(&req, 0, sizeof(req));
	req.cmd = CTL_CMD_TRACE;
	req.has_arg = true;
	strlcpy(req.arg, "<50% off@example.org>", sizeof(req.arg));
	buf_init(&b, CTLPROTO_LINE_MAX);
	assert_int_equal(ctlproto_request_format(&req, &b), 0);
	assert_string_equal(b.data, "trace <50%25%20off@example.org>\n");
	assert_int_equal(ctlproto_request_parse(b.data, b.len - 1, &back,
	    &error), 0);
	assert_int_equal(back.cmd, CTL_CMD_TRACE);
	assert_string_equal(back.arg, req.arg);
	assert_string_equal(ctlproto_cmd_name(CTL_CMD_TRACE), "trace");
	buf_free(&b);
}

/* The answer's "line TEXT" lines: one line each, control bytes '?'. */
static void
test_trace_lines(void **state)
{
	static const char logged[] = "2026-11-29T10:24:35.184Z petrel[1]: "
	    "info: smtp: queued queue=1K1CYSJ5AGPA5Z9J reply=\"250 ok\"";
	struct buf b;
	const char *text;
	size_t len;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(ctlproto_trace_line_encode(&b, logged,
	    strlen(logged)), 0);
	assert_int_equal(b.len, 5 + strlen(logged) + 1);
	assert_int_equal(b.data[b.len - 1], '\n');
	b.data[--b.len] = '\0';
	text = ctlproto_trace_line_decode(b.data, &len);
	assert_non_null(text);
	assert_int_equal(len, strlen(logged));
	assert_memory_equal(text, logged, len);
	buf_free(&b);

	/* An LF, CR, NUL or DEL inside cannot split or spoil the line. */
	buf_init(&b, 4096);
	assert_int_equal(ctlproto_trace_line_encode(&b, "a\nb\rc\0d\x7f\te",
	    10), 0);
	assert_string_equal(b.data, "line a?b?c?d?\te\n");
	buf_free(&b);

	/* A bounded buffer: -1, never a cut line. */
	buf_init(&b, 8);
	assert_int_equal(ctlproto_trace_line_encode(&b, logged,
	    strlen(logged)), -1);
	buf_free(&b);

	assert_null(ctlproto_trace_line_decode("ok 1 lines", &len));
	assert_null(ctlproto_trace_line_decode("lines x", &len));
	text = ctlproto_trace_line_decode("line ", &len);
	assert_non_null(text);
	assert_int_equal(len, 0);
}

static void
add_rcpt(struct envelope *env, const char *addr, const char *reply,
    uint64_t next, uint32_t attempts)
{
	size_t i = envelope_rcpt_add(env, addr, addr, NULL, RCPT_KIND_REMOTE,
	    0, NULL);

	strlcpy(env->rcpts[i].last_reply, reply,
	    sizeof(env->rcpts[i].last_reply));
	env->rcpts[i].next_attempt = next;
	env->rcpts[i].attempts = attempts;
	env->rcpts[i].last_attempt = attempts > 0 ? 1795946000 : 0;
}

/* Three messages as in tests/data/postfix-mailq/long-ids.txt. */
static void
make_list(struct ctlproto_list *l)
{
	struct envelope env;
	const char *why = "connect to 192.0.2.1[192.0.2.1]:25: Network is "
	    "unreachable";
	const char *why2 = "connect to 192.0.2.2[192.0.2.2]:25: Network is "
	    "unreachable";

	memset(l, 0, sizeof(*l));
	envelope_init(&env);
	env.sender = xstrdup("alice@example.org");
	env.arrival = 1795946677;
	add_rcpt(&env, "bob@[192.0.2.1]", why, 1795950000, 1);
	ctlproto_list_add(l, "4JCJSJ5VMQZ1D5T6", &env, 264, CTL_STATE_QUEUED,
	    1795946700);
	envelope_free(&env);

	envelope_init(&env);
	env.sender = xstrdup("");
	env.arrival = 1795946677;
	add_rcpt(&env, "carol@[192.0.2.1]", why, 1795950000, 1);
	add_rcpt(&env, "dave@[192.0.2.2]", why2, 1795950000, 1);
	add_rcpt(&env, "erin@[192.0.2.2]", why2, 0, 2);
	add_rcpt(&env, "fred@[192.0.2.3]", "", 0, 0);
	env.rcpts[env.nrcpts - 1].status = RCPT_STATUS_PENDING;
	add_rcpt(&env, "done@[192.0.2.3]", "250 ok", 0, 1);
	env.rcpts[env.nrcpts - 1].status = RCPT_STATUS_DELIVERED;
	ctlproto_list_add(l, "4JCJSJ60JWZ1D5ST", &env, 1800, CTL_STATE_ACTIVE,
	    1795946700);
	envelope_free(&env);

	envelope_init(&env);
	env.sender = xstrdup("held@example.org");
	env.arrival = 1795946677;
	add_rcpt(&env, "erin@[192.0.2.1]", why, 1795950000, 1);
	ctlproto_list_add(l, "4JCJSJ612VZ1D5T5", &env, 265, CTL_STATE_HELD,
	    1795946700);
	envelope_free(&env);
}

static const char mailq_want[] =
"----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n"
"4JCJSJ5VMQZ1D5T6       264 Sun Nov 29 10:04:37 alice@example.org\n"
"                  (connect to 192.0.2.1[192.0.2.1]:25: Network is unreachable)\n"
"                                               bob@[192.0.2.1]\n"
"\n"
"4JCJSJ60JWZ1D5ST*     1800 Sun Nov 29 10:04:37 MAILER-DAEMON\n"
"                  (connect to 192.0.2.1[192.0.2.1]:25: Network is unreachable)\n"
"                                               carol@[192.0.2.1]\n"
"                  (connect to 192.0.2.2[192.0.2.2]:25: Network is unreachable)\n"
"                                               dave@[192.0.2.2]\n"
"                                               erin@[192.0.2.2]\n"
"                                                          (reason unavailable)\n"
"                                               fred@[192.0.2.3]\n"
"\n"
"4JCJSJ612VZ1D5T5!      265 Sun Nov 29 10:04:37 held@example.org\n"
"                  (connect to 192.0.2.1[192.0.2.1]:25: Network is unreachable)\n"
"                                               erin@[192.0.2.1]\n"
"\n"
"-- 2 Kbytes in 3 Requests.\n";

static void
test_mailq_text(void **state)
{
	struct ctlproto_list l;
	struct buf b;

	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	make_list(&l);
	buf_init(&b, 1 << 20);
	assert_int_equal(mailq_format_text(&l, &b), 0);
	if (strcmp(buf_str(&b), mailq_want) != 0)
		fail_msg("got:\n%s\nwant:\n%s", buf_str(&b), mailq_want);
	buf_free(&b);
	ctlproto_list_free(&l);

	/* Empty, and one request (no plural). */
	buf_init(&b, 1 << 20);
	assert_int_equal(mailq_format_text(&l, &b), 0);
	assert_string_equal(buf_str(&b), "Mail queue is empty\n");
	buf_free(&b);
	make_list(&l);
	l.n = 1;
	buf_init(&b, 1 << 20);
	assert_int_equal(mailq_format_text(&l, &b), 0);
	assert_non_null(strstr(buf_str(&b), "\n\n-- 0 Kbytes in 1 Request.\n"));
	buf_free(&b);
	l.n = 3;
	ctlproto_list_free(&l);
}

static void
test_mailq_control_bytes(void **state)
{
	struct ctlproto_list l = { NULL, 0 };
	struct envelope env;
	struct buf b;

	(void)state;
	envelope_init(&env);
	env.sender = xstrdup("evil\x1b[2J@example.org");
	env.arrival = 1795946677;
	add_rcpt(&env, "x@example.org", "451 a\r\nb \"q\" \\ \xff", 1, 1);
	ctlproto_list_add(&l, "0123456789ABCDEF", &env, 1, CTL_STATE_QUEUED,
	    0);
	envelope_free(&env);
	buf_init(&b, 1 << 20);
	assert_int_equal(mailq_format_text(&l, &b), 0);
	assert_null(strchr(buf_str(&b), '\x1b'));
	assert_null(strchr(buf_str(&b), '\r'));
	assert_non_null(strstr(buf_str(&b), "evil?[2J@example.org"));
	buf_reset(&b);
	assert_int_equal(mailq_format_json(&l, &b), 0);
	assert_non_null(strstr(buf_str(&b),
	    "\"delay_reason\": \"451 a\\u000d\\u000ab \\\"q\\\" \\\\ "
	    "\\ufffd\""));
	assert_non_null(strstr(buf_str(&b), "\"sender\": \"evil\\u001b[2J"));
	buf_free(&b);
	ctlproto_list_free(&l);
}

static void
test_json(void **state)
{
	struct ctlproto_list l;
	struct buf b;
	const char *s, *nl;

	(void)state;
	make_list(&l);
	buf_init(&b, 1 << 20);
	assert_int_equal(mailq_format_json(&l, &b), 0);
	s = buf_str(&b);
	nl = strchr(s, '\n');
	assert_non_null(nl);
	assert_memory_equal(s, "{\"queue_name\": \"deferred\", \"queue_id\": "
	    "\"4JCJSJ5VMQZ1D5T6\", \"arrival_time\": 1795946677, "
	    "\"message_size\": 264, \"forced_expire\": false, \"sender\": "
	    "\"alice@example.org\", \"recipients\": [{\"address\": "
	    "\"bob@[192.0.2.1]\", \"original_address\": \"bob@[192.0.2.1]\", "
	    "\"delay_reason\": \"connect to 192.0.2.1[192.0.2.1]:25: Network "
	    "is unreachable\", \"remote_mta\": \"\", \"attempts\": 1, "
	    "\"last_attempt\": 1795946000, \"next_attempt\": 1795950000, "
	    "\"waiting\": \"retry\"}]}\n", (size_t)(nl - s + 1));
	assert_non_null(strstr(s, "\"queue_name\": \"active\""));
	assert_non_null(strstr(s, "\"queue_name\": \"hold\""));
	assert_non_null(strstr(s, "\"waiting\": \"hold\""));
	assert_non_null(strstr(s, "\"waiting\": \"active\""));
	assert_null(strstr(s, "done@"));
	buf_free(&b);
	ctlproto_list_free(&l);
}

static void
test_list_wire_round_trip(void **state)
{
	struct ctlproto_list l, back = { NULL, 0 };
	struct buf b, t1, t2;
	const char *error;
	char *line, *save = NULL;
	size_t i;

	(void)state;
	make_list(&l);
	buf_init(&b, 1 << 20);
	for (i = 0; i < l.n; i++)
		assert_int_equal(ctlproto_msg_encode(&l.msgs[i], &b), 0);
	for (line = strtok_r(b.data, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		if (ctlproto_list_decode(&back, line, &error) != 1)
			fail_msg("%s: %s", line, error);
	assert_int_equal(back.n, l.n);
	buf_init(&t1, 1 << 20);
	buf_init(&t2, 1 << 20);
	assert_int_equal(mailq_format_json(&l, &t1), 0);
	assert_int_equal(mailq_format_json(&back, &t2), 0);
	assert_string_equal(buf_str(&t1), buf_str(&t2));
	buf_free(&t1);
	buf_free(&t2);
	buf_free(&b);
	ctlproto_list_free(&l);
	ctlproto_list_free(&back);

	/* Malformed lines are errors, unknown ones are not ours. */
	assert_int_equal(ctlproto_list_decode(&back, "rcpt a b 1 2 3 due - -",
	    &error), -1);	/* rcpt before msg */
	assert_int_equal(ctlproto_list_decode(&back, "msg ID 1 2 queued",
	    &error), -1);
	assert_int_equal(ctlproto_list_decode(&back, "msg ../x 1 2 queued -",
	    &error), -1);
	assert_int_equal(ctlproto_list_decode(&back, "msg ABC 1 2 bogus -",
	    &error), -1);
	assert_int_equal(ctlproto_list_decode(&back, "ok 1 listed", &error),
	    0);
	ctlproto_list_free(&back);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_parse),
		cmocka_unit_test(test_request_too_long),
		cmocka_unit_test(test_request_round_trip),
		cmocka_unit_test(test_request_trace_bound),
		cmocka_unit_test(test_trace_lines),
		cmocka_unit_test(test_mailq_text),
		cmocka_unit_test(test_mailq_control_bytes),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_list_wire_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
