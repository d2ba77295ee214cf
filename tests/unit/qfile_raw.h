/*
 * qfile_raw.h: a queue-file writer for the queue tests, written from
 * docs/queue-format.md independently of qfile_encode_tail(). It writes an
 * absent string wherever the envelope has NULL, so it can make CRC-valid
 * files that the real encoder refuses to write (what a bug or a human
 * could leave in queue/). test_queue_qfile.c checks that it writes the
 * same bytes as the real encoder for a complete envelope.
 * Include after <cmocka.h>, lib/buf.h, queue/envelope.h and queue/qfile.h.
 */
#ifndef PETREL_TESTS_QFILE_RAW_H
#define PETREL_TESTS_QFILE_RAW_H

#include <string.h>

static inline void
raw_u32(struct buf *p, uint32_t v)
{
	unsigned char t[4] = { (unsigned char)(v >> 24),
	    (unsigned char)(v >> 16), (unsigned char)(v >> 8),
	    (unsigned char)v };

	assert_int_equal(buf_append(p, t, sizeof(t)), 0);
}

static inline void
raw_u64(struct buf *p, uint64_t v)
{
	raw_u32(p, (uint32_t)(v >> 32));
	raw_u32(p, (uint32_t)v);
}

static inline void
raw_str(struct buf *p, const char *s)
{
	if (s == NULL) {
		raw_u32(p, QFILE_STR_NULL);
		return;
	}
	raw_u32(p, (uint32_t)strlen(s));
	assert_int_equal(buf_append(p, s, strlen(s)), 0);
}

/*
 * The envelope tail written from the format description, independently of
 * qfile_encode_tail(): it writes absent strings wherever env has NULL, so
 * it can make CRC-valid files the real encoder refuses to write.
 */
static inline void
raw_tail_version(struct buf *b, const struct envelope *env,
    uint64_t content_size, uint32_t version)
{
	unsigned char state[QFILE_STATE_RECLEN];
	uint64_t env_off = b->len, state_off;
	struct buf p;
	size_t i;

	buf_init(&p, QFILE_RECORD_MAX);
	raw_u32(&p, (uint32_t)env->body);
	raw_u64(&p, env->size);
	raw_u32(&p, env->smtputf8 ? 1 : 0);
	raw_u32(&p, (uint32_t)env->ret);
	raw_str(&p, env->sender);
	raw_str(&p, env->envid);
	raw_str(&p, env->auth);
	assert_int_equal(qfile_record_append(b, QFILE_REC_MAIL, p.data,
	    p.len), 0);
	buf_reset(&p);
	raw_u64(&p, env->arrival);
	raw_str(&p, env->client_addr);
	raw_str(&p, env->client_name);
	raw_str(&p, env->helo);
	raw_str(&p, env->proto);
	raw_str(&p, env->tls);
	raw_str(&p, env->auth_user);
	assert_int_equal(qfile_record_append(b, QFILE_REC_CLIENT, p.data,
	    p.len), 0);
	if (env->prepend != NULL) {
		buf_reset(&p);
		raw_str(&p, env->prepend);
		assert_int_equal(qfile_record_append(b, QFILE_REC_PREPEND,
		    p.data, p.len), 0);
	}
	for (i = 0; i < env->nrcpts; i++) {
		const struct envelope_rcpt *r = &env->rcpts[i];

		buf_reset(&p);
		raw_u32(&p, (uint32_t)i);
		raw_u32(&p, (uint32_t)r->kind);
		raw_u32(&p, r->notify);
		raw_str(&p, r->orig);
		raw_str(&p, r->addr);
		raw_str(&p, r->mailbox);
		raw_str(&p, r->orcpt);
		assert_int_equal(qfile_record_append(b, QFILE_REC_RCPT,
		    p.data, p.len), 0);
	}
	state_off = b->len;
	for (i = 0; i < env->nrcpts; i++) {
		qfile_encode_state_version(state, version, (uint32_t)i,
		    &env->rcpts[i]);
		assert_int_equal(buf_append(b, state,
		    qfile_state_reclen(version)), 0);
	}
	buf_reset(&p);
	raw_u64(&p, content_size);
	raw_u64(&p, env_off);
	raw_u64(&p, state_off);
	raw_u32(&p, (uint32_t)env->nrcpts);
	assert_int_equal(qfile_record_append(b, QFILE_REC_END, p.data, p.len),
	    0);
	buf_free(&p);
}

static inline void
raw_tail(struct buf *b, const struct envelope *env, uint64_t content_size)
{
	raw_tail_version(b, env, content_size, QFILE_VERSION);
}

/* A whole queue file: header, one CONTENT record, the tail. */
static inline void
raw_file(struct buf *b, const char *id, const struct envelope *env,
    const char *content)
{
	size_t clen = strlen(content);

	buf_init(b, 1 << 20);
	assert_int_equal(qfile_encode_header(b, id, 1), 0);
	assert_int_equal(qfile_record_append(b, QFILE_REC_CONTENT, content,
	    clen), 0);
	raw_tail(b, env, clen);
}

#endif
