/*
 * test_sasl_verify.c: sasl_verify() on worker threads against real
 * crypt_r hashes of each method: the right password authenticates, a
 * wrong one does not; unknown users, empty, malformed and weak hashes
 * never do and still cost a (dummy) crypt; cancel keeps a callback from
 * running wherever its job is; many verifications at once all come back
 * with their own result, on the loop thread.
 */
#include <crypt.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "sasl/sasl.h"

#define DEADLINE_SEC	60

struct fixture {
	struct event_base *base;
	struct sasl_verifier *v;
	struct event *tick;
	pthread_t loop_thread;
	int pending;		/* callbacks still expected */
	int calls;		/* callbacks run */
	bool timed_out;
};

struct result {
	struct fixture *f;
	int calls;
	bool ok;
	bool on_loop;
};

static pthread_t main_thread;

/* A real hash of password with prefix ("$y$", "$2b$"...) and cost. */
static char *
make_hash(const char *prefix, unsigned long cost, const char *password)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *h;
	char *out;

	assert_non_null(cd);
	if (crypt_gensalt_rn(prefix, cost, NULL, 0, salt, sizeof(salt)) ==
	    NULL)
		fail_msg("crypt_gensalt_rn(%s) failed", prefix);
	h = crypt_r(password, salt, cd);
	if (h == NULL || h[0] == '*')
		fail_msg("crypt_r(%s) failed", salt);
	out = strdup(h);
	free(cd);
	return out;
}

static void
result_cb(void *arg, bool ok)
{
	struct result *r = arg;

	r->calls++;
	r->ok = ok;
	r->on_loop = pthread_equal(pthread_self(), main_thread);
	r->f->calls++;
	r->f->pending--;
}

/* Keeps the loop alive and stops it when nothing is pending. */
static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fixture *f = arg;

	(void)fd;
	(void)what;
	if (f->pending <= 0)
		event_base_loopbreak(f->base);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fixture *f = arg;

	(void)fd;
	(void)what;
	f->timed_out = true;
	event_base_loopbreak(f->base);
}

/* Run the loop until every expected callback ran. */
static void
run_until_done(struct fixture *f)
{
	struct timeval deadline = { DEADLINE_SEC, 0 };
	struct event *d = evtimer_new(f->base, deadline_cb, f);

	evtimer_add(d, &deadline);
	if (f->pending > 0)
		event_base_dispatch(f->base);
	event_free(d);
	if (f->timed_out)
		fail_msg("timed out with %d callbacks pending", f->pending);
}

static int
setup(void **state)
{
	static const struct timeval ms5 = { 0, 5000 };
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	main_thread = pthread_self();
	f->base = event_base_new();
	assert_non_null(f->base);
	f->v = sasl_verifier_new(f->base, 4);
	f->tick = event_new(f->base, -1, EV_PERSIST, tick_cb, f);
	event_add(f->tick, &ms5);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	sasl_verifier_free(f->v);
	event_free(f->tick);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* Verify one (hash, password) and wait for the answer. */
static bool
verify_one(struct fixture *f, const char *hash, const char *password)
{
	struct result r = { f, 0, false, false };

	f->pending++;
	assert_int_not_equal(sasl_verify(f->v, hash, password, result_cb,
	    &r), 0);
	/* Never during the call. */
	assert_int_equal(r.calls, 0);
	run_until_done(f);
	assert_int_equal(r.calls, 1);
	assert_true(r.on_loop);
	return r.ok;
}

static void
test_each_method(void **state)
{
	static const struct {
		const char *prefix;
		unsigned long cost;
	} methods[] = {
		{ "$y$", 0 },		/* libxcrypt's default cost */
		{ "$2b$", 4 },
		{ "$2y$", 4 },
		{ "$2a$", 4 },
		{ "$6$", 1000 },
		{ "$5$", 1000 },
	};
	struct fixture *f = *state;
	size_t i;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		char *h = make_hash(methods[i].prefix, methods[i].cost,
		    "correct horse");
		uint64_t before = sasl_verifier_crypt_count(f->v);

		if (!sasl_hash_is_supported(h))
			fail_msg("%s: not supported", h);
		if (!verify_one(f, h, "correct horse"))
			fail_msg("%s: right password refused", h);
		assert_int_equal(sasl_verifier_crypt_count(f->v) - before, 1);
		if (verify_one(f, h, "correct horsE"))
			fail_msg("%s: wrong password accepted", h);
		if (verify_one(f, h, "correct hors"))
			fail_msg("%s: prefix of the password accepted", h);
		if (verify_one(f, h, "x"))
			fail_msg("%s: other password accepted", h);
		free(h);
	}
}

/*
 * Hashes that must never authenticate, whatever the password: each
 * still runs crypt_r at least once (the dummy), so an unknown user costs
 * as much as a known one.
 */
static void
test_never_authenticates(void **state)
{
	struct fixture *f = *state;
	char *good = make_hash("$6$", 1000, "pw");
	char *longer, *shorter;
	char des[64] = "", md5[128] = "";
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *h;
	size_t i;

	assert_non_null(cd);
	/* Weak methods, if this libcrypt still makes them. */
	if ((h = crypt_r("pw", "ab", cd)) != NULL && h[0] != '*')
		snprintf(des, sizeof(des), "%s", h);
	if ((h = crypt_r("pw", "$1$saltsalt", cd)) != NULL && h[0] != '*')
		snprintf(md5, sizeof(md5), "%s", h);
	free(cd);
	longer = malloc(strlen(good) + 2);
	assert_non_null(longer);
	snprintf(longer, strlen(good) + 2, "%sA", good);
	shorter = strdup(good);
	shorter[strlen(shorter) - 1] = '\0';

	{
		const char *never[] = {
			NULL,			/* unknown user */
			"",			/* receive-only user */
			"*", "!", "!!",
			"$y$",
			"$y$j9T$",
			"$y$j9T$bad!salt$xxxx",
			"$2b$99$abcdefghijklmnopqrstuu",
			"$6$",
			"$9$unknown$method",
			"pw",		/* cleartext is not a hash */
			longer, shorter,
			des[0] != '\0' ? des : "ab",
			md5[0] != '\0' ? md5 : "$1$",
		};

		for (i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
			uint64_t before = sasl_verifier_crypt_count(f->v);

			/* Weak and empty ones are not even supported. */
			if (i < 5 || never[i] == des || never[i] == md5)
				assert_false(sasl_hash_is_supported(never[i]));

			if (verify_one(f, never[i], "pw"))
				fail_msg("hash \"%s\" authenticated",
				    never[i] != NULL ? never[i] : "(null)");
			if (sasl_verifier_crypt_count(f->v) == before)
				fail_msg("hash \"%s\": no crypt_r run",
				    never[i] != NULL ? never[i] : "(null)");
		}
	}
	/* The control: the same password against the good hash. */
	assert_true(verify_one(f, good, "pw"));
	free(good);
	free(longer);
	free(shorter);
}

static void
test_cancel(void **state)
{
	struct fixture *f = *state;
	char *h = make_hash("$y$", 0, "pw");
	struct result r[8];
	uint64_t ids[8], before;
	int i;

	memset(r, 0, sizeof(r));
	before = sasl_verifier_crypt_count(f->v);
	/* Eight yescrypt jobs on four workers: some run, some wait. */
	for (i = 0; i < 8; i++) {
		r[i].f = f;
		ids[i] = sasl_verify(f->v, h, "pw", result_cb, &r[i]);
		assert_int_not_equal(ids[i], 0);
		if (i > 0)
			assert_true(ids[i] > ids[i - 1]);
	}
	/* Cancel the odd ones (running or queued) and 0 (never valid). */
	for (i = 1; i < 8; i += 2)
		assert_true(sasl_verify_cancel(f->v, ids[i]));
	for (i = 1; i < 8; i += 2)
		assert_false(sasl_verify_cancel(f->v, ids[i]));
	assert_false(sasl_verify_cancel(f->v, 0));
	assert_false(sasl_verify_cancel(f->v, ids[7] + 1000));
	f->pending = 4;
	run_until_done(f);
	/* Give a cancelled job that was running time to come back. */
	{
		struct timeval grace = { 0, 300000 };

		event_base_loopexit(f->base, &grace);
		event_base_dispatch(f->base);
	}
	/* Four ran to the end, and at most the two cancelled jobs that
	 * were running: a queued job is dropped before it runs. */
	if (sasl_verifier_crypt_count(f->v) - before > 6)
		fail_msg("got %llu crypt runs, want at most 6",
		    (unsigned long long)(sasl_verifier_crypt_count(f->v) -
		    before));
	for (i = 0; i < 8; i++) {
		if (r[i].calls != (i % 2 == 0 ? 1 : 0))
			fail_msg("job %d: got %d callbacks, want %d", i,
			    r[i].calls, i % 2 == 0);
		if (i % 2 == 0)
			assert_true(r[i].ok);
	}
	/* Its callback ran: nothing left to cancel. */
	assert_false(sasl_verify_cancel(f->v, ids[0]));
	free(h);
}

/* A job cancelled after it finished but before the loop saw it. */
static void
test_cancel_done_not_delivered(void **state)
{
	struct fixture *f = *state;
	struct result r = { f, 0, false, false };
	uint64_t id, before = sasl_verifier_crypt_count(f->v);

	id = sasl_verify(f->v, "", "pw", result_cb, &r);
	/* Wait off the loop until a worker has finished it. */
	while (sasl_verifier_crypt_count(f->v) == before)
		;
	assert_true(sasl_verify_cancel(f->v, id));
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(r.calls, 0);
}

static void
test_many_concurrent(void **state)
{
	enum { N = 400 };
	struct fixture *f = *state;
	char *sha = make_hash("$6$", 1000, "alpha");
	char *bf = make_hash("$2b$", 4, "beta");
	char *ys = make_hash("$y$", 0, "gamma");
	struct result *r = calloc(N, sizeof(*r));
	bool *want = calloc(N, sizeof(*want));
	int i;

	assert_non_null(r);
	assert_non_null(want);
	for (i = 0; i < N; i++) {
		const char *hash, *pw;

		r[i].f = f;
		switch (i % 5) {
		case 0: hash = sha; pw = "alpha"; want[i] = true; break;
		case 1: hash = sha; pw = "beta"; break;
		case 2: hash = bf; pw = "beta"; want[i] = true; break;
		case 3: hash = i % 40 == 3 ? ys : bf;
			pw = i % 40 == 3 ? "gamma" : "alpha";
			want[i] = i % 40 == 3;
			break;
		default: hash = NULL; pw = "alpha"; break;
		}
		sasl_verify(f->v, hash, pw, result_cb, &r[i]);
		f->pending++;
	}
	run_until_done(f);
	assert_int_equal(f->pending, 0);
	for (i = 0; i < N; i++) {
		if (r[i].calls != 1)
			fail_msg("job %d: got %d callbacks, want 1", i,
			    r[i].calls);
		if (r[i].ok != want[i])
			fail_msg("job %d: got ok=%d, want %d", i, r[i].ok,
			    want[i]);
		assert_true(r[i].on_loop);
	}
	free(r);
	free(want);
	free(sha);
	free(bf);
	free(ys);
}

/* A callback may start a verification and cancel another one. */
struct chain {
	struct fixture *f;
	struct result *second;
	struct result *victim;
	uint64_t victim_id;
	char *hash;
	bool cancelled;
};

static void
chain_cb(void *arg, bool ok)
{
	struct chain *c = arg;

	assert_true(ok);
	c->f->pending--;
	c->cancelled = sasl_verify_cancel(c->f->v, c->victim_id);
	if (c->cancelled)
		c->f->pending--;
	c->f->pending++;
	sasl_verify(c->f->v, c->hash, "pw", result_cb, c->second);
}

static void
test_callback_reenters(void **state)
{
	struct fixture *f = *state;
	struct result second = { f, 0, false, false };
	struct result victim = { f, 0, false, false };
	struct chain c = { f, &second, &victim, 0, NULL, false };

	c.hash = make_hash("$6$", 1000, "pw");
	f->pending = 2;
	sasl_verify(f->v, c.hash, "pw", chain_cb, &c);
	c.victim_id = sasl_verify(f->v, "", "pw", result_cb, &victim);
	run_until_done(f);
	assert_int_equal(second.calls, 1);
	assert_true(second.ok);
	/* Either cancelled in time, or already delivered: never both. */
	assert_int_equal(victim.calls, c.cancelled ? 0 : 1);
	free(c.hash);
}

/* Freeing with jobs queued runs no callback (and leaks nothing). */
static void
test_free_with_pending(void **state)
{
	struct fixture *f = *state;
	struct result r[16];
	int i;

	memset(r, 0, sizeof(r));
	for (i = 0; i < 16; i++) {
		r[i].f = f;
		sasl_verify(f->v, NULL, "pw", result_cb, &r[i]);
	}
	sasl_verifier_free(f->v);
	f->v = sasl_verifier_new(f->base, 0);
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	for (i = 0; i < 16; i++)
		assert_int_equal(r[i].calls, 0);
	/* The new one (one thread) works. */
	assert_false(verify_one(f, NULL, "pw"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_each_method, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_never_authenticates,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_cancel_done_not_delivered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_concurrent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_callback_reenters, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_free_with_pending, setup,
		    teardown),
	};

	if (evthread_use_pthreads() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
