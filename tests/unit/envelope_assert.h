/*
 * envelope_assert.h: field-by-field comparison of two envelopes for the
 * queue tests. Include after testutil.h and queue/envelope.h.
 */
#ifndef PETREL_TESTS_ENVELOPE_ASSERT_H
#define PETREL_TESTS_ENVELOPE_ASSERT_H

static inline void
assert_envelope_equal(const struct envelope *a, const struct envelope *b)
{
	size_t i;

	test_assert_str_or_null(a->sender, b->sender);
	assert_int_equal(a->body, b->body);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->smtputf8, b->smtputf8);
	assert_int_equal(a->ret, b->ret);
	test_assert_str_or_null(a->envid, b->envid);
	test_assert_str_or_null(a->auth, b->auth);
	test_assert_str_or_null(a->client_addr, b->client_addr);
	test_assert_str_or_null(a->client_name, b->client_name);
	test_assert_str_or_null(a->helo, b->helo);
	test_assert_str_or_null(a->proto, b->proto);
	test_assert_str_or_null(a->tls, b->tls);
	test_assert_str_or_null(a->auth_user, b->auth_user);
	test_assert_str_or_null(a->prepend, b->prepend);
	assert_int_equal(a->arrival, b->arrival);
	assert_int_equal(a->nrcpts, b->nrcpts);
	for (i = 0; i < a->nrcpts; i++) {
		const struct envelope_rcpt *x = &a->rcpts[i], *y = &b->rcpts[i];

		test_assert_str_or_null(x->orig, y->orig);
		test_assert_str_or_null(x->addr, y->addr);
		test_assert_str_or_null(x->mailbox, y->mailbox);
		assert_int_equal(x->kind, y->kind);
		assert_int_equal(x->notify, y->notify);
		test_assert_str_or_null(x->orcpt, y->orcpt);
		assert_int_equal(x->status, y->status);
		assert_int_equal(x->attempts, y->attempts);
		assert_int_equal(x->next_attempt, y->next_attempt);
		assert_string_equal(x->last_reply, y->last_reply);
		assert_int_equal(x->flags, y->flags);
		assert_int_equal(x->last_attempt, y->last_attempt);
		assert_string_equal(x->remote_mta, y->remote_mta);
	}
}

#endif
