/*
 * test_sasl_throttle.c: the per-address failure table: the delay doubles
 * up to the cap, a success or a quiet period resets it, addresses are
 * independent (IPv6 per /64, IPv4-mapped as IPv4), and the table never
 * holds more than its bound, dropping the least recently used address.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sasl/sasl.h"

#define SEC	1000ULL
#define HOUR	(3600 * SEC)

static void
test_doubling_and_cap(void **state)
{
	static const uint64_t want[] = { 1000, 2000, 4000, 8000, 10000,
	    10000, 10000 };
	struct sasl_throttle *t = sasl_throttle_new(0, SEC, 10 * SEC, HOUR);
	uint64_t now = 5000, got;
	size_t i;

	(void)state;
	assert_int_equal(sasl_throttle_failures(t, "192.0.2.1", now), 0);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		got = sasl_throttle_delay(t, "192.0.2.1", now);
		if (got != want[i])
			fail_msg("failure %zu: got delay %llu, want %llu",
			    i + 1, (unsigned long long)got,
			    (unsigned long long)want[i]);
		assert_int_equal(sasl_throttle_failures(t, "192.0.2.1", now),
		    i + 1);
		now += 20 * SEC;
	}
	/* Many more: still the cap, no overflow. */
	for (i = 0; i < 200; i++)
		got = sasl_throttle_delay(t, "192.0.2.1", now);
	assert_int_equal(got, 10 * SEC);
	assert_int_equal(sasl_throttle_size(t), 1);
	sasl_throttle_free(t);
	sasl_throttle_free(NULL);
}

static void
test_other_settings(void **state)
{
	struct sasl_throttle *t;
	int i;

	(void)state;
	/* No delay configured: always 0. */
	t = sasl_throttle_new(10, 0, 10 * SEC, HOUR);
	for (i = 0; i < 5; i++)
		assert_int_equal(sasl_throttle_delay(t, "192.0.2.1", 0), 0);
	assert_int_equal(sasl_throttle_failures(t, "192.0.2.1", 0), 5);
	sasl_throttle_free(t);
	/* 300 ms doubling up to 1 s: 300, 600, 1000. */
	t = sasl_throttle_new(10, 300, SEC, HOUR);
	assert_int_equal(sasl_throttle_delay(t, "192.0.2.1", 0), 300);
	assert_int_equal(sasl_throttle_delay(t, "192.0.2.1", 0), 600);
	assert_int_equal(sasl_throttle_delay(t, "192.0.2.1", 0), 1000);
	sasl_throttle_free(t);
	/* A huge delay does not wrap. */
	t = sasl_throttle_new(10, UINT64_MAX / 3, UINT64_MAX, HOUR);
	for (i = 0; i < 70; i++)
		assert_true(sasl_throttle_delay(t, "192.0.2.1", 0) >=
		    UINT64_MAX / 3);
	sasl_throttle_free(t);
}

static void
test_success_resets(void **state)
{
	struct sasl_throttle *t = sasl_throttle_new(0, SEC, 10 * SEC, HOUR);

	(void)state;
	sasl_throttle_delay(t, "192.0.2.1", 0);
	sasl_throttle_delay(t, "192.0.2.1", 0);
	sasl_throttle_delay(t, "198.51.100.7", 0);
	assert_int_equal(sasl_throttle_delay(t, "192.0.2.1", 0), 4 * SEC);
	sasl_throttle_success(t, "192.0.2.1");
	assert_int_equal(sasl_throttle_failures(t, "192.0.2.1", 0), 0);
	assert_int_equal(sasl_throttle_size(t), 1);
	assert_int_equal(sasl_throttle_delay(t, "192.0.2.1", 0), SEC);
	/* The other address kept its count. */
	assert_int_equal(sasl_throttle_failures(t, "198.51.100.7", 0), 1);
	/* Success of an unknown address is harmless. */
	sasl_throttle_success(t, "203.0.113.9");
	assert_int_equal(sasl_throttle_size(t), 2);
	sasl_throttle_free(t);
}

static void
test_forget_after_quiet_period(void **state)
{
	struct sasl_throttle *t = sasl_throttle_new(0, SEC, 10 * SEC, HOUR);
	uint64_t now = 1000000;

	(void)state;
	sasl_throttle_delay(t, "192.0.2.1", now);
	sasl_throttle_delay(t, "192.0.2.1", now);
	assert_int_equal(sasl_throttle_failures(t, "192.0.2.1",
	    now + HOUR - 1), 2);
	assert_int_equal(sasl_throttle_failures(t, "192.0.2.1", now + HOUR),
	    0);
	/* Just before: counts on; after the period: starts over. */
	assert_int_equal(sasl_throttle_delay(t, "192.0.2.1", now + HOUR - 1),
	    4 * SEC);
	now += HOUR - 1;
	assert_int_equal(sasl_throttle_delay(t, "192.0.2.1", now + HOUR),
	    SEC);
	assert_int_equal(sasl_throttle_failures(t, "192.0.2.1", now + HOUR),
	    1);
	sasl_throttle_free(t);
}

static void
test_address_keys(void **state)
{
	static const struct {
		const char *a, *b;
		bool same;
	} cases[] = {
		{ "192.0.2.1", "192.0.2.2", false },
		{ "192.0.2.1", "::ffff:192.0.2.1", true },
		{ "2001:db8::1", "2001:db8::2", true },	/* same /64 */
		{ "2001:db8::1", "2001:db8:0:0:ffff:ffff:ffff:ffff", true },
		{ "2001:db8::1", "2001:db8:0:1::1", false },
		{ "2001:DB8::1", "2001:db8::1", true },
		{ "local", "local", true },
		{ "local", "other", false },
		{ "::1", "127.0.0.1", false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sasl_throttle *t = sasl_throttle_new(0, SEC, 10 * SEC,
		    HOUR);
		unsigned int n;

		sasl_throttle_delay(t, cases[i].a, 0);
		n = sasl_throttle_failures(t, cases[i].b, 0);
		if (n != (cases[i].same ? 1U : 0U))
			fail_msg("%s then %s: got %u failures, want %d",
			    cases[i].a, cases[i].b, n, cases[i].same);
		assert_int_equal(sasl_throttle_size(t), 1);
		sasl_throttle_free(t);
	}
}

static void
addr_of(char *buf, size_t size, unsigned int i)
{
	snprintf(buf, size, "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255,
	    i & 255);
}

static void
test_lru_bound(void **state)
{
	struct sasl_throttle *t = sasl_throttle_new(100, SEC, 10 * SEC, HOUR);
	char a[32];
	unsigned int i;

	(void)state;
	/* 0 fails twice, then 1..99 once: the table is full. */
	sasl_throttle_delay(t, "10.0.0.0", 0);
	for (i = 1; i < 100; i++) {
		addr_of(a, sizeof(a), i);
		sasl_throttle_delay(t, a, i);
	}
	assert_int_equal(sasl_throttle_size(t), 100);
	/* 0 is used again, so 1 is now the least recently used. */
	assert_int_equal(sasl_throttle_delay(t, "10.0.0.0", 100), 2 * SEC);
	assert_int_equal(sasl_throttle_delay(t, "10.0.0.100", 101), SEC);
	assert_int_equal(sasl_throttle_size(t), 100);
	assert_int_equal(sasl_throttle_failures(t, "10.0.0.1", 101), 0);
	assert_int_equal(sasl_throttle_failures(t, "10.0.0.0", 101), 2);
	assert_int_equal(sasl_throttle_failures(t, "10.0.0.2", 101), 1);
	/* A flood of new addresses: the bound holds, the newest stay. */
	for (i = 1000; i < 50000; i++) {
		addr_of(a, sizeof(a), i);
		sasl_throttle_delay(t, a, i);
		if (sasl_throttle_size(t) > 100)
			fail_msg("got %zu entries, want at most 100",
			    sasl_throttle_size(t));
	}
	for (i = 49900; i < 50000; i++) {
		addr_of(a, sizeof(a), i);
		assert_int_equal(sasl_throttle_failures(t, a, 50000), 1);
	}
	assert_int_equal(sasl_throttle_failures(t, "10.0.0.0", 50000), 0);
	addr_of(a, sizeof(a), 49899);
	assert_int_equal(sasl_throttle_failures(t, a, 50000), 0);
	sasl_throttle_free(t);
}

/* The default bound (0 given) is SASL_THROTTLE_ENTRIES_DEFAULT. */
static void
test_default_bound(void **state)
{
	struct sasl_throttle *t = sasl_throttle_new(0, SEC, 10 * SEC, HOUR);
	char a[32];
	unsigned int i;

	(void)state;
	for (i = 0; i < SASL_THROTTLE_ENTRIES_DEFAULT + 500; i++) {
		addr_of(a, sizeof(a), i);
		sasl_throttle_delay(t, a, i);
	}
	assert_int_equal(sasl_throttle_size(t), SASL_THROTTLE_ENTRIES_DEFAULT);
	/* Successes shrink it. */
	for (i = SASL_THROTTLE_ENTRIES_DEFAULT; i <
	    SASL_THROTTLE_ENTRIES_DEFAULT + 500; i++) {
		addr_of(a, sizeof(a), i);
		sasl_throttle_success(t, a);
	}
	assert_int_equal(sasl_throttle_size(t),
	    SASL_THROTTLE_ENTRIES_DEFAULT - 500);
	sasl_throttle_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doubling_and_cap),
		cmocka_unit_test(test_other_settings),
		cmocka_unit_test(test_success_resets),
		cmocka_unit_test(test_forget_after_quiet_period),
		cmocka_unit_test(test_address_keys),
		cmocka_unit_test(test_lru_bound),
		cmocka_unit_test(test_default_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
