/*
 * test_daemon_trace.c: the trace ring and its queries (daemon/trace.c):
 * field parsing, which lines make a message's story (its session, its
 * Message-ID, its reports), the bounds on lines and bytes, a full reply
 * buffer, the log tap, and adds from several threads at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/trace.h"
#include "lib/buf.h"
#include "lib/log.h"

#include "testutil.h"

#define T "2026-11-29T10:00:00.000Z petrel[1]: info: "

/* A day in the log: two sessions, two messages, a bounce of the second. */
static const char *const day[] = {
	T "smtp: connect session=00000000000000a1 client=192.0.2.1 "
	    "listener=0.0.0.0:25",
	T "smtp: connect session=00000000000000b2 client=192.0.2.2 "
	    "listener=0.0.0.0:25",
	T "smtp: mail session=00000000000000a1 client=192.0.2.1 "
	    "from=<a@example.org>",
	T "msgauth: queue=QAAAAAAAAAAAAAA1 session=00000000000000a1 "
	    "client=192.0.2.1 spf=pass",
	T "smtp: queued queue=QAAAAAAAAAAAAAA1 session=00000000000000a1 "
	    "client=192.0.2.1 from=<a@example.org> size=300 nrcpt=1 "
	    "message-id=<one@example.org>",
	T "smtp: queued queue=QBBBBBBBBBBBBBB2 session=00000000000000b2 "
	    "client=192.0.2.2 from=<queue=QAAAAAAAAAAAAAA1@evil.test> "
	    "size=200 nrcpt=1 message-id=<two@example.org>",
	T "listening addr=127.0.0.1 port=25 role=mx",
	T "delivery: rcpt queue=QAAAAAAAAAAAAAA1 to=<x@example.net> "
	    "relay=mx.example.net[192.0.2.25]:25 mailbox=- delay=1 "
	    "attempts=1 dsn=2.0.0 status=sent (250 2.0.0 Ok)",
	T "delivery: rcpt queue=QBBBBBBBBBBBBBB2 to=<y@example.net> "
	    "relay=mx.example.net[192.0.2.25]:25 mailbox=- delay=1 "
	    "attempts=1 dsn=5.1.1 status=bounced (550 5.1.1 no such user "
	    "queue=QAAAAAAAAAAAAAA1)",
	T "delivery: report queue=QBBBBBBBBBBBBBB2 "
	    "report_queue=QCCCCCCCCCCCCCC3 report=failure "
	    "to=<queue=QAAAAAAAAAAAAAA1@evil.test>",
	T "delivery: queued queue=QCCCCCCCCCCCCCC3 "
	    "report_of=QBBBBBBBBBBBBBB2 from=<> size=900 nrcpt=1",
	T "delivery: removed queue=QAAAAAAAAAAAAAA1 (every recipient done)",
	T "smtp: disconnect session=00000000000000a1 client=192.0.2.1 "
	    "errors=0 error_replies=0",
	T "delivery: rcpt queue=QCCCCCCCCCCCCCC3 to=<b@evil.test> "
	    "relay=local mailbox=- delay=0 attempts=1 dsn=2.0.0 "
	    "status=sent (250 2.0.0 delivered)",
};

/* The story as indexes into day[]. */
static void
assert_story(const char *got, const int *want, size_t n)
{
	struct buf b;
	size_t i;

	buf_init(&b, 1 << 20);
	for (i = 0; i < n; i++) {
		buf_append_str(&b, day[want[i]]);
		buf_append_str(&b, "\n");
	}
	if (strcmp(got, buf_str(&b)) != 0)
		fail_msg("got:\n%s\nwant:\n%s", got, buf_str(&b));
	buf_free(&b);
}

static struct trace *
day_ring(void)
{
	struct trace *t = trace_new(1000, 1 << 20);
	size_t i;

	for (i = 0; i < sizeof(day) / sizeof(day[0]); i++)
		trace_add(t, day[i], strlen(day[i]));
	return t;
}

static void
test_field(void **state)
{
	char v[32];
	const char *l = T "smtp: queued queue=Q1 session=S from=<a b=c>";

	(void)state;
	assert_true(trace_line_field(l, strlen(l), "queue", v, sizeof(v)));
	assert_string_equal(v, "Q1");
	assert_true(trace_line_field(l, strlen(l), "session", v, sizeof(v)));
	assert_string_equal(v, "S");
	assert_false(trace_line_field(l, strlen(l), "size", v, sizeof(v)));
	/* "from=<a b=c>": b= is there only inside another value. */
	assert_true(trace_line_field(l, strlen(l), "b", v, sizeof(v)));
	/* Too long for out. */
	assert_false(trace_line_field(l, strlen(l), "queue", v, 2));
	/* Only whole keys: "queue" is not "_queue". */
	l = "x report_queue=R";
	assert_false(trace_line_field(l, strlen(l), "queue", v, sizeof(v)));
	/* Up to len, not the NUL. */
	l = "x queue=ABCDEF";
	assert_true(trace_line_field(l, 10, "queue", v, sizeof(v)));
	assert_string_equal(v, "AB");
}

static void
test_query_init(void **state)
{
	static const struct {
		const char *in;
		const char *msgid;	/* NULL: a queue ID; "": refused */
	} cases[] = {
		{ "1K1CWTRB6T0BBCE8", NULL },
		{ "<one@example.org>", "<one@example.org>" },
		{ "one@example.org", "<one@example.org>" },
		{ "<nobrackets", "" },
		{ "<>", "" },
		{ "", "" },
		{ "a b@example.org", "" },
		{ "a\"b@example.org", "" },
		{ "not an id", "" },
		{ "ID-WITH-DASH", "" },
	};
	struct trace_query q;
	const char *error;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = trace_query_init(&q, cases[i].in, &error);

		if (cases[i].msgid == NULL) {
			assert_int_equal(r, 0);
			assert_int_equal(q.nqueue, 1);
			assert_string_equal(q.queue[0], cases[i].in);
		} else if (cases[i].msgid[0] == '\0') {
			if (r != -1)
				fail_msg("\"%s\": accepted, want refused",
				    cases[i].in);
		} else {
			assert_int_equal(r, 0);
			assert_string_equal(q.msgid, cases[i].msgid);
		}
	}
}

static void
test_story_by_queue_id(void **state)
{
	/* Its session's lines, its own, its bounce's; not the forged. */
	static const int a[] = { 0, 2, 3, 4, 7, 11, 12 };
	static const int b[] = { 1, 5, 8, 9, 10, 13 };
	static const int c[] = { 10, 13 };
	struct trace *t = day_ring();
	struct buf out;
	const char *error;

	(void)state;
	buf_init(&out, 1 << 20);
	assert_int_equal(trace_lookup(t, "QAAAAAAAAAAAAAA1", &out, &error),
	    7);
	assert_story(buf_str(&out), a, 7);
	buf_reset(&out);
	assert_int_equal(trace_lookup(t, "QBBBBBBBBBBBBBB2", &out, &error),
	    6);
	assert_story(buf_str(&out), b, 6);
	buf_reset(&out);
	/* The bounce alone: its own lines (report_of= names the cause). */
	assert_int_equal(trace_lookup(t, "QCCCCCCCCCCCCCC3", &out, &error),
	    2);
	assert_story(buf_str(&out), c, 2);
	buf_reset(&out);
	assert_int_equal(trace_lookup(t, "QZZZZZZZZZZZZZZ9", &out, &error),
	    0);
	assert_int_equal(out.len, 0);
	assert_int_equal(trace_lookup(t, "no such thing", &out, &error), -1);
	buf_free(&out);
	trace_free(t);
}

static void
test_story_by_message_id(void **state)
{
	static const int a[] = { 0, 2, 3, 4, 7, 11, 12 };
	struct trace *t = day_ring();
	struct buf out;
	const char *error;

	(void)state;
	buf_init(&out, 1 << 20);
	assert_int_equal(trace_lookup(t, "<one@example.org>", &out, &error),
	    7);
	assert_story(buf_str(&out), a, 7);
	buf_reset(&out);
	assert_int_equal(trace_lookup(t, "one@example.org", &out, &error), 7);
	buf_reset(&out);
	assert_int_equal(trace_lookup(t, "<none@example.org>", &out, &error),
	    0);
	buf_free(&out);
	trace_free(t);
}

/* Lines without queue= or session= are not kept. */
static void
test_only_message_lines(void **state)
{
	struct trace *t = day_ring();
	size_t lines, bytes;

	(void)state;
	trace_usage(t, &lines, &bytes);
	assert_int_equal(lines, sizeof(day) / sizeof(day[0]) - 1);
	trace_free(t);
}

static void
test_bounded(void **state)
{
	struct trace *t;
	struct buf out;
	const char *error;
	char line[200];
	size_t lines, bytes, i;

	(void)state;
	/* By lines: 10 kept of 100, the newest. */
	t = trace_new(10, 1 << 20);
	for (i = 0; i < 100; i++) {
		snprintf(line, sizeof(line), T "delivery: rcpt queue=Q%03zu "
		    "status=sent (250 ok)", i);
		trace_add(t, line, strlen(line));
	}
	trace_usage(t, &lines, &bytes);
	assert_int_equal(lines, 10);
	buf_init(&out, 1 << 20);
	assert_int_equal(trace_lookup(t, "Q089", &out, &error), 0);
	assert_int_equal(trace_lookup(t, "Q090", &out, &error), 1);
	assert_int_equal(trace_lookup(t, "Q099", &out, &error), 1);
	trace_free(t);

	/* By bytes: never more than 1000 held. */
	t = trace_new(1000, 1000);
	for (i = 0; i < 100; i++) {
		snprintf(line, sizeof(line), T "delivery: rcpt queue=Q%03zu "
		    "status=sent (250 ok)", i);
		trace_add(t, line, strlen(line));
		trace_usage(t, &lines, &bytes);
		if (bytes > 1000)
			fail_msg("got %zu bytes held, want at most 1000",
			    bytes);
	}
	assert_true(lines > 0 && lines < 100);
	buf_reset(&out);
	assert_int_equal(trace_lookup(t, "Q099", &out, &error), 1);
	/* A line larger than the whole ring is not kept. */
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	memcpy(line, "a queue=Q1 ", 11);
	trace_free(t);
	t = trace_new(10, 100);
	trace_add(t, line, strlen(line));
	trace_usage(t, &lines, &bytes);
	assert_int_equal(lines, 0);
	buf_free(&out);
	trace_free(t);
}

/* A reply buffer too small: -1 EMSGSIZE, whole lines only. */
static void
test_reply_full(void **state)
{
	struct trace *t = day_ring();
	struct buf out;
	const char *error;

	(void)state;
	buf_init(&out, strlen(day[0]) + strlen(day[2]) + 2 + 10);
	errno = 0;
	assert_int_equal(trace_lookup(t, "QAAAAAAAAAAAAAA1", &out, &error),
	    -1);
	assert_int_equal(errno, EMSGSIZE);
	assert_int_equal(out.len, strlen(day[0]) + strlen(day[2]) + 2);
	assert_true(out.data[out.len - 1] == '\n');
	buf_free(&out);
	trace_free(t);
}

/* What the daemon logs reaches the ring through the tap. */
static void
test_log_tap(void **state)
{
	struct trace *t = trace_new(100, 1 << 20);
	struct buf out;
	const char *error;

	(void)state;
	log_set_tap(trace_log_tap, t);
	log_info("delivery: rcpt queue=QTAP1 to=<x@example.net> "
	    "status=sent (250 ok)");
	log_info("config: reloaded domains=1");
	log_debug("delivery: rcpt queue=QTAP1 below the level");
	log_set_tap(NULL, NULL);
	log_info("delivery: rcpt queue=QTAP1 after the tap");
	buf_init(&out, 1 << 20);
	assert_int_equal(trace_lookup(t, "QTAP1", &out, &error), 1);
	assert_non_null(strstr(buf_str(&out), "Z test_daemon_trace["));
	assert_non_null(strstr(buf_str(&out), "]: info: delivery: rcpt "
	    "queue=QTAP1 to=<x@example.net> status=sent (250 ok)\n"));
	buf_free(&out);
	trace_free(t);
}

struct adder {
	struct trace *t;
	int n;
};

static void *
adder_run(void *arg)
{
	struct adder *a = arg;
	char line[100];
	int i;

	for (i = 0; i < 5000; i++) {
		snprintf(line, sizeof(line), "x queue=T%dL%d", a->n, i);
		trace_add(a->t, line, strlen(line));
	}
	return NULL;
}

static void
test_threads(void **state)
{
	struct trace *t = trace_new(1000, 30000);
	struct adder a[4];
	pthread_t th[4];
	struct buf out;
	const char *error;
	size_t lines, bytes;
	int i;

	(void)state;
	for (i = 0; i < 4; i++) {
		a[i].t = t;
		a[i].n = i;
		assert_int_equal(pthread_create(&th[i], NULL, adder_run,
		    &a[i]), 0);
	}
	buf_init(&out, 1 << 20);
	for (i = 0; i < 50; i++) {
		buf_reset(&out);
		(void)trace_lookup(t, "T1L4999", &out, &error);
	}
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	trace_usage(t, &lines, &bytes);
	if (lines != 1000 || bytes > 30000)
		fail_msg("got %zu lines, %zu bytes; want 1000, <= 30000",
		    lines, bytes);
	trace_add(t, "x queue=LAST", 12);
	buf_reset(&out);
	assert_int_equal(trace_lookup(t, "LAST", &out, &error), 1);
	buf_free(&out);
	trace_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_field),
		cmocka_unit_test(test_query_init),
		cmocka_unit_test(test_story_by_queue_id),
		cmocka_unit_test(test_story_by_message_id),
		cmocka_unit_test(test_only_message_lines),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_reply_full),
		cmocka_unit_test(test_log_tap),
		cmocka_unit_test(test_threads),
	};

	log_init("test_daemon_trace", LOG_LEVEL_INFO);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
