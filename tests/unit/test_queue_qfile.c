/*
 * test_queue_qfile.c: the queue file format (src/queue/qfile.c) on its
 * own: CRC32, encode/parse round trip, and that every truncation and every
 * single-byte change of a valid file is caught (except inside a STATE
 * record, which reads as PENDING: a torn in-place update); crafted
 * CRC-valid files with an absent mandatory field or with more RCPT
 * records than the file has room for STATE records are corrupt.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "queue/envelope.h"
#include "queue/qfile.h"

#include "testutil.h"
#include "envelope_assert.h"
#include "qfile_raw.h"

static char tmpdir[] = "/tmp/petrel-test-qfile.XXXXXX";
static char tmpfile_path[256];

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(tmpfile_path, sizeof(tmpfile_path), "%s/q", tmpdir);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(tmpfile_path);
	rmdir(tmpdir);
	return 0;
}

static void
fill_envelope(struct envelope *env)
{
	size_t i;

	envelope_init(env);
	env->sender = xstrdup("alice@example.test");
	env->body = 2;
	env->size = 4242;
	env->smtputf8 = true;
	env->ret = 2;
	env->envid = xstrdup("QQ+2B1");
	env->auth = xstrdup("<>");
	env->client_addr = xstrdup("192.0.2.7");
	env->client_name = NULL;
	env->helo = xstrdup("client.example.test");
	env->proto = xstrdup("UTF8SMTPSA");
	env->tls = xstrdup("TLSv1.3 TLS_AES_256_GCM_SHA384");
	env->auth_user = xstrdup("alice");
	env->arrival = 1764382393;
	envelope_rcpt_add(env, "Bob@Example.Test", "bob@example.test",
	    "/var/mail/example.test/bob", RCPT_KIND_LOCAL, 0x06,
	    "rfc822;Bob@Example.Test");
	i = envelope_rcpt_add(env, "carol@remote.test", "carol@remote.test",
	    NULL, RCPT_KIND_REMOTE, 0, NULL);
	env->rcpts[i].status = RCPT_STATUS_FAILED;
	env->rcpts[i].attempts = 7;
	env->rcpts[i].next_attempt = 1764400000;
	strlcpy(env->rcpts[i].last_reply, "550 5.1.1 no such user",
	    sizeof(env->rcpts[i].last_reply));
	env->rcpts[i].flags = RCPT_FLAG_BOUNCED;
	env->rcpts[i].last_attempt = 1764399000;
	strlcpy(env->rcpts[i].remote_mta, "mx1.remote.test",
	    sizeof(env->rcpts[i].remote_mta));
}

/* Mandatory fields only: no recipients, every optional string NULL. */
static void
minimal_envelope(struct envelope *env)
{
	envelope_init(env);
	env->sender = xstrdup("");
	env->client_addr = xstrdup("127.0.0.1");
	env->helo = xstrdup("localhost");
	env->proto = xstrdup("SMTP");
}

/* A complete file: HEADER, three CONTENT records, the tail. */
static void
build_file(struct buf *b, const struct envelope *env, uint64_t *content_r)
{
	static const char c1[] = "Subject: hi\r\n\r\n";
	static const char c2[] = "binary \0\x01\xff bytes\r\n";
	static const char c3[] = "last line\r\n";

	buf_init(b, 8 << 20);
	assert_int_equal(qfile_encode_header(b, "0123456789ABCDEF", 77), 0);
	assert_int_equal(qfile_record_append(b, QFILE_REC_CONTENT, c1,
	    sizeof(c1) - 1), 0);
	assert_int_equal(qfile_record_append(b, QFILE_REC_CONTENT, c2,
	    sizeof(c2) - 1), 0);
	assert_int_equal(qfile_record_append(b, QFILE_REC_CONTENT, c3,
	    sizeof(c3) - 1), 0);
	*content_r = sizeof(c1) - 1 + sizeof(c2) - 1 + sizeof(c3) - 1;
	assert_int_equal(qfile_encode_tail(b, env, b->len, *content_r), 0);
}

/* Write bytes to the temp file and parse it. */
static int
parse_bytes(const void *data, size_t len, int flags, struct envelope *env,
    struct qfile_info *info, const char **error_r)
{
	int fd, r;

	fd = open(tmpfile_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	assert_int_equal(write_all(fd, data, len), 0);
	envelope_init(env);
	r = qfile_parse(fd, flags, env, info, error_r);
	close(fd);
	return r;
}

static void
test_crc32(void **state)
{
	(void)state;
	/* The standard check value of CRC-32/ISO-HDLC. */
	assert_int_equal(qfile_crc32(0, "123456789", 9), 0xcbf43926U);
	assert_int_equal(qfile_crc32(0, "", 0), 0);
	/* Incremental equals one shot. */
	assert_int_equal(qfile_crc32(qfile_crc32(0, "1234", 4), "56789", 5),
	    0xcbf43926U);
	/* "The quick brown fox..." (43 octets: 5 steps of 8 and a tail). */
	assert_int_equal(qfile_crc32(0, "The quick brown fox jumps over the "
	    "lazy dog", 43), 0x414fa339U);
	/* Eight at a time agrees with a bit at a time, at every length and
	 * alignment, and split anywhere. */
	{
		unsigned char data[300];
		size_t off, len, cut;
		uint32_t want, c;
		unsigned int i, k;

		srandom(7);
		for (i = 0; i < sizeof(data); i++)
			data[i] = (unsigned char)random();
		for (off = 0; off < 8; off++) {
			for (len = 0; len + off <= sizeof(data); len += 7) {
				c = 0xffffffffU;
				for (i = 0; i < len; i++) {
					c ^= data[off + i];
					for (k = 0; k < 8; k++)
						c = (c & 1) ?
						    0xedb88320U ^ (c >> 1) :
						    c >> 1;
				}
				want = ~c;
				assert_int_equal(qfile_crc32(0, data + off,
				    len), want);
				cut = len / 3;
				assert_int_equal(qfile_crc32(qfile_crc32(0,
				    data + off, cut), data + off + cut,
				    len - cut), want);
			}
		}
	}
}

static void
test_roundtrip(void **state)
{
	struct envelope env, got;
	struct qfile_info info;
	struct buf b;
	const char *error = NULL;
	uint64_t content;

	(void)state;
	fill_envelope(&env);
	build_file(&b, &env, &content);
	assert_int_equal(parse_bytes(b.data, b.len, QFILE_VERIFY_CONTENT,
	    &got, &info, &error), 0);
	assert_envelope_equal(&got, &env);
	assert_int_equal(info.version, QFILE_VERSION);
	assert_int_equal(info.created, 77);
	assert_string_equal(info.id, "0123456789ABCDEF");
	assert_int_equal(info.content_size, content);
	assert_int_equal(info.nrcpts, 2);
	assert_int_equal(info.torn_states, 0);
	assert_int_equal(info.file_size, b.len);
	/* The END record is last and has a fixed size. */
	assert_int_equal(info.state_offset + 2 * QFILE_STATE_RECLEN,
	    b.len - QFILE_END_RECLEN);
	envelope_free(&got);

	/*
	 * The smallest valid envelope: no recipients, the mandatory strings
	 * (docs/queue-format.md) set, every optional one absent.
	 */
	envelope_free(&env);
	buf_free(&b);
	minimal_envelope(&env);
	build_file(&b, &env, &content);
	assert_int_equal(parse_bytes(b.data, b.len, QFILE_VERIFY_CONTENT,
	    &got, &info, &error), 0);
	assert_envelope_equal(&got, &env);
	assert_string_equal(got.sender, "");
	assert_null(got.envid);
	assert_null(got.auth);
	assert_null(got.client_name);
	assert_null(got.tls);
	assert_null(got.auth_user);
	envelope_free(&got);
	envelope_free(&env);
	buf_free(&b);
}

/*
 * Version 3: header fields computed after the content (PREPEND) round
 * trip, count in prepend_size, and are refused in an older version's
 * file; a file without them is still read.
 */
static void
test_prepend(void **state)
{
	static const char hdr[] = "Authentication-Results: mx.example.test;"
	    "\r\n\tspf=pass smtp.mailfrom=example.org\r\n";
	struct envelope env, got;
	struct qfile_info info;
	struct buf b;
	const char *error = NULL;
	uint64_t content;

	(void)state;
	fill_envelope(&env);
	env.prepend = xstrdup(hdr);
	build_file(&b, &env, &content);
	assert_int_equal(parse_bytes(b.data, b.len, QFILE_VERIFY_CONTENT,
	    &got, &info, &error), 0);
	assert_envelope_equal(&got, &env);
	assert_string_equal(got.prepend, hdr);
	assert_int_equal(info.prepend_size, sizeof(hdr) - 1);
	assert_int_equal(info.content_size, content);
	envelope_free(&got);
	buf_free(&b);

	/* The encoder and the format description agree. */
	buf_init(&b, 8 << 20);
	{
		struct buf raw;

		buf_init(&raw, 8 << 20);
		assert_int_equal(qfile_encode_tail(&b, &env, 0, 3), 0);
		raw_tail(&raw, &env, 3);
		assert_int_equal(b.len, raw.len);
		assert_memory_equal(b.data, raw.data, b.len);
		buf_free(&raw);
	}
	buf_free(&b);

	/* A PREPEND in a version 2 file is corrupt, never guessed at. */
	buf_init(&b, 8 << 20);
	assert_int_equal(qfile_encode_header(&b, "0123456789ABCDEF", 77), 0);
	b.data[QFILE_REC_HDRLEN + QFILE_MAGIC_LEN + 3] = 2;
	qfile_record_seal((unsigned char *)b.data, QFILE_REC_HEADER,
	    b.len - QFILE_REC_OVERHEAD);
	raw_tail_version(&b, &env, 0, 2);
	assert_int_equal(parse_bytes(b.data, b.len, 0, &got, &info, &error),
	    -1);
	assert_string_equal(error, "PREPEND record before version 3");
	envelope_free(&got);
	buf_free(&b);

	/* Without PREPEND a version 3 file reads as before. */
	free(env.prepend);
	env.prepend = NULL;
	build_file(&b, &env, &content);
	assert_int_equal(parse_bytes(b.data, b.len, 0, &got, &info, &error),
	    0);
	assert_null(got.prepend);
	assert_int_equal(info.prepend_size, 0);
	envelope_free(&got);
	envelope_free(&env);
	buf_free(&b);
}

/*
 * A version 1 file (Petrel before outbound delivery) still parses: its
 * STATE records are shorter and have no flags, last attempt or remote
 * host; replies are at most 255 bytes.
 */
static void
test_version1(void **state)
{
	struct envelope env, got;
	struct qfile_info info;
	struct buf b;
	const char *error = NULL;
	unsigned char hdr[QFILE_MAGIC_LEN + 4 + 8 + 4 + 16];
	static const char content[] = "Subject: old\r\n\r\nbody\r\n";
	size_t i;

	(void)state;
	fill_envelope(&env);
	/* v1 cannot hold these: they read back as zero/empty. */
	for (i = 0; i < env.nrcpts; i++) {
		env.rcpts[i].flags = 0;
		env.rcpts[i].last_attempt = 0;
		env.rcpts[i].remote_mta[0] = '\0';
	}
	buf_init(&b, 1 << 20);
	memcpy(hdr, QFILE_MAGIC, QFILE_MAGIC_LEN);
	memcpy(hdr + QFILE_MAGIC_LEN, "\0\0\0\1", 4);
	memset(hdr + QFILE_MAGIC_LEN + 4, 0, 8);
	memcpy(hdr + QFILE_MAGIC_LEN + 12, "\0\0\0\x10", 4);
	memcpy(hdr + QFILE_MAGIC_LEN + 16, "0123456789ABCDEF", 16);
	assert_int_equal(qfile_record_append(&b, QFILE_REC_HEADER, hdr,
	    sizeof(hdr)), 0);
	assert_int_equal(qfile_record_append(&b, QFILE_REC_CONTENT, content,
	    sizeof(content) - 1), 0);
	raw_tail_version(&b, &env, sizeof(content) - 1, 1);
	assert_int_equal(parse_bytes(b.data, b.len, QFILE_VERIFY_CONTENT,
	    &got, &info, &error), 0);
	assert_int_equal(info.version, 1);
	assert_envelope_equal(&got, &env);
	assert_int_equal(info.state_offset + 2 * QFILE_STATE_RECLEN_V1,
	    b.len - QFILE_END_RECLEN);
	envelope_free(&got);
	envelope_free(&env);
	buf_free(&b);
}

/* ---- Crafted files: what a bug or a human could leave in queue/ ---- */

/* Which mandatory string to take away, and the reason the parser gives. */
struct null_case {
	const char *field;
	const char *error;
};

static const struct null_case null_cases[] = {
	{ "sender", "bad MAIL record" },
	{ "client_addr", "bad CLIENT record" },
	{ "helo", "bad CLIENT record" },
	{ "proto", "bad CLIENT record" },
	{ "orig", "bad RCPT record" },
	{ "addr", "bad RCPT record" },
};

static void
null_field(struct envelope *env, const char *field)
{
	char **f;

	if (strcmp(field, "sender") == 0)
		f = &env->sender;
	else if (strcmp(field, "client_addr") == 0)
		f = &env->client_addr;
	else if (strcmp(field, "helo") == 0)
		f = &env->helo;
	else if (strcmp(field, "proto") == 0)
		f = &env->proto;
	else if (strcmp(field, "orig") == 0)
		f = &env->rcpts[1].orig;	/* not only the first */
	else
		f = &env->rcpts[1].addr;
	free(*f);
	*f = NULL;
}

static void
test_raw_tail_matches_encoder(void **state)
{
	struct envelope env;
	struct buf a, b;

	(void)state;
	/* The crafting helper writes exactly what the encoder writes. */
	fill_envelope(&env);
	buf_init(&a, 1 << 20);
	buf_init(&b, 1 << 20);
	assert_int_equal(qfile_encode_header(&a, "ID", 1), 0);
	assert_int_equal(qfile_encode_header(&b, "ID", 1), 0);
	assert_int_equal(qfile_encode_tail(&a, &env, a.len, 0), 0);
	raw_tail(&b, &env, 0);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.data, b.data, a.len);
	buf_free(&a);
	buf_free(&b);
	envelope_free(&env);
}

static void
test_null_mandatory_field(void **state)
{
	struct envelope env, got;
	struct qfile_info info;
	struct buf b;
	const char *error;
	size_t i, before;

	(void)state;
	for (i = 0; i < nitems(null_cases); i++) {
		fill_envelope(&env);
		null_field(&env, null_cases[i].field);

		/* A CRC-valid file with the field absent is corrupt... */
		buf_init(&b, 1 << 20);
		assert_int_equal(qfile_encode_header(&b, "ID", 1), 0);
		assert_int_equal(qfile_record_append(&b, QFILE_REC_CONTENT,
		    "x\r\n", 3), 0);
		raw_tail(&b, &env, 3);
		error = NULL;
		if (parse_bytes(b.data, b.len, QFILE_VERIFY_CONTENT, &got,
		    &info, &error) != -1)
			fail_msg("%s absent: parsed, want EBADMSG",
			    null_cases[i].field);
		assert_int_equal(errno, EBADMSG);
		assert_non_null(error);
		if (strcmp(error, null_cases[i].error) != 0)
			fail_msg("%s absent: error \"%s\", want \"%s\"",
			    null_cases[i].field, error, null_cases[i].error);
		assert_null(got.sender);
		assert_int_equal(got.nrcpts, 0);

		/* ...and the encoder refuses to write it at all. */
		before = b.len;
		errno = 0;
		assert_int_equal(qfile_encode_tail(&b, &env, b.len, 3), -1);
		assert_int_equal(errno, EINVAL);
		assert_int_equal(b.len, before);
		buf_free(&b);
		envelope_free(&env);
	}
}

/* Minimal RCPT payloads after MAIL and CLIENT, and no STATE at all. */
static void
build_rcpt_bomb(struct buf *b, uint32_t n)
{
	struct envelope env;
	unsigned char pl[28];
	struct buf t;
	uint32_t i;

	minimal_envelope(&env);
	assert_int_equal(qfile_encode_header(b, "BOMB", 1), 0);
	buf_init(&t, 1 << 20);
	assert_int_equal(qfile_encode_tail(&t, &env, b->len, 0), 0);
	/* MAIL and CLIENT only: drop END. */
	assert_int_equal(buf_append(b, t.data, t.len - QFILE_END_RECLEN), 0);
	buf_free(&t);
	envelope_free(&env);
	for (i = 0; i < n; i++) {
		struct buf p;

		buf_init(&p, sizeof(pl));
		raw_u32(&p, i);			/* index */
		raw_u32(&p, RCPT_KIND_REMOTE);
		raw_u32(&p, 0);			/* notify */
		raw_str(&p, "");		/* orig */
		raw_str(&p, "");		/* addr */
		raw_str(&p, NULL);		/* mailbox */
		raw_str(&p, NULL);		/* orcpt */
		assert_int_equal(qfile_record_append(b, QFILE_REC_RCPT, p.data,
		    p.len), 0);
		buf_free(&p);
	}
}

static void
test_rcpt_bomb(void **state)
{
	struct envelope env, got;
	struct qfile_info info;
	struct buf b;
	const char *error = NULL;
	uint64_t content;
	size_t i;

	(void)state;
	/*
	 * 200000 RCPT records of 37 bytes (7.4 MB) would make 200000
	 * recipients in memory (about 64 MB) before finding no STATE. Each
	 * RCPT needs a 285-byte STATE later in the file: refuse as soon as
	 * the rest of the file cannot hold them.
	 */
	buf_init(&b, 64 << 20);
	build_rcpt_bomb(&b, 200000);
	assert_int_equal(parse_bytes(b.data, b.len, QFILE_VERIFY_CONTENT, &got,
	    &info, &error), -1);
	assert_int_equal(errno, EBADMSG);
	assert_non_null(error);
	assert_string_equal(error, "too many RCPT records");
	assert_int_equal(got.nrcpts, 0);
	buf_free(&b);

	/* The bound never refuses a real file: 2000 recipients parse. */
	fill_envelope(&env);
	for (i = 0; i < 1998; i++)
		envelope_rcpt_add(&env, "r@example.test", "r@example.test",
		    "/m", RCPT_KIND_LOCAL, 0, NULL);
	build_file(&b, &env, &content);
	assert_int_equal(parse_bytes(b.data, b.len, QFILE_VERIFY_CONTENT, &got,
	    &info, &error), 0);
	assert_int_equal(got.nrcpts, 2000);
	envelope_free(&got);
	buf_free(&b);
	/* Nor one with a single recipient and an empty reply. */
	envelope_free(&env);
	minimal_envelope(&env);
	envelope_rcpt_add(&env, "", "", NULL, RCPT_KIND_REMOTE, 0, NULL);
	buf_init(&b, 1 << 20);
	assert_int_equal(qfile_encode_header(&b, "ID", 1), 0);
	assert_int_equal(qfile_encode_tail(&b, &env, b.len, 0), 0);
	assert_int_equal(parse_bytes(b.data, b.len, 0, &got, &info, &error),
	    0);
	assert_int_equal(got.nrcpts, 1);
	envelope_free(&got);
	envelope_free(&env);
	buf_free(&b);
}

static void
test_every_truncation_fails(void **state)
{
	struct envelope env, got;
	struct qfile_info info;
	struct buf b;
	const char *error;
	uint64_t content;
	size_t len;

	(void)state;
	fill_envelope(&env);
	build_file(&b, &env, &content);
	for (len = 0; len < b.len; len++) {
		error = NULL;
		if (parse_bytes(b.data, len, QFILE_VERIFY_CONTENT, &got, &info,
		    &error) != -1)
			fail_msg("truncated to %zu of %zu: parsed, want error",
			    len, b.len);
		if (errno != EBADMSG)
			fail_msg("truncated to %zu: errno %d, want EBADMSG",
			    len, errno);
		assert_non_null(error);
		/* env is freed on failure: nothing left to leak. */
		assert_null(got.sender);
		assert_int_equal(got.nrcpts, 0);
	}
	/* Without the END record exactly. */
	assert_int_equal(parse_bytes(b.data, b.len - QFILE_END_RECLEN, 0, &got,
	    &info, &error), -1);
	assert_string_equal(error, "no END record");
	envelope_free(&env);
	buf_free(&b);
}

static void
test_every_byte_flip(void **state)
{
	struct envelope env, got;
	struct qfile_info info;
	struct buf b;
	const char *error;
	uint64_t content, state_off, state_end;
	size_t i;
	char *copy;
	int r;

	(void)state;
	fill_envelope(&env);
	/* A PREPEND record too (version 3): every byte of it is checked. */
	env.prepend = xstrdup("Authentication-Results: mx.example.test; "
	    "dkim=pass header.d=example.org\r\n");
	build_file(&b, &env, &content);
	assert_int_equal(parse_bytes(b.data, b.len, 0, &got, &info, &error),
	    0);
	envelope_free(&got);
	state_off = info.state_offset;
	state_end = state_off + 2 * QFILE_STATE_RECLEN;
	copy = xmalloc(b.len);
	for (i = 0; i < b.len; i++) {
		size_t in_state = (i - state_off) % QFILE_STATE_RECLEN;
		bool torn;

		memcpy(copy, b.data, b.len);
		copy[i] ^= 0x20;
		/* Inside a STATE payload or CRC (not its type/length). */
		torn = i >= state_off && i < state_end &&
		    in_state >= QFILE_REC_HDRLEN;
		r = parse_bytes(copy, b.len, QFILE_VERIFY_CONTENT, &got,
		    &info, &error);
		if (torn) {
			size_t k = (i - state_off) / QFILE_STATE_RECLEN;

			if (r != 0)
				fail_msg("flip at %zu (STATE %zu): %s, want "
				    "PENDING", i, k, error);
			assert_int_equal(info.torn_states, 1);
			assert_int_equal(got.rcpts[k].status,
			    RCPT_STATUS_PENDING);
			assert_int_equal(got.rcpts[k].attempts, 0);
			assert_string_equal(got.rcpts[k].last_reply, "");
			/* The other recipient is intact. */
			assert_int_equal(got.rcpts[1 - k].status,
			    env.rcpts[1 - k].status);
			envelope_free(&got);
		} else if (r != -1 || errno != EBADMSG) {
			fail_msg("flip at %zu of %zu: r=%d errno=%d, want "
			    "EBADMSG", i, b.len, r, errno);
		}
	}
	free(copy);
	envelope_free(&env);
	buf_free(&b);
}

static void
test_trailing_data(void **state)
{
	struct envelope env, got;
	struct qfile_info info;
	struct buf b;
	const char *error;
	uint64_t content;

	(void)state;
	fill_envelope(&env);
	build_file(&b, &env, &content);
	/* A second, well-formed record after END. */
	assert_int_equal(qfile_record_append(&b, QFILE_REC_CONTENT, "x", 1),
	    0);
	assert_int_equal(parse_bytes(b.data, b.len, 0, &got, &info, &error),
	    -1);
	assert_string_equal(error, "data after END record");
	envelope_free(&env);
	buf_free(&b);
}

static void
test_bad_structure(void **state)
{
	struct envelope env, got;
	struct qfile_info info;
	struct buf b;
	const char *error;

	(void)state;
	/* A CONTENT after the envelope (MAIL, CLIENT): out of order. */
	fill_envelope(&env);
	buf_init(&b, 1 << 20);
	assert_int_equal(qfile_encode_header(&b, "ID", 1), 0);
	{
		struct envelope none;
		struct buf t;

		minimal_envelope(&none);
		buf_init(&t, 1 << 20);
		assert_int_equal(qfile_encode_tail(&t, &none, b.len, 0), 0);
		/* MAIL and CLIENT only: drop END. */
		assert_int_equal(buf_append(&b, t.data,
		    t.len - QFILE_END_RECLEN), 0);
		buf_free(&t);
		envelope_free(&none);
	}
	assert_int_equal(qfile_record_append(&b, QFILE_REC_CONTENT, "x", 1),
	    0);
	assert_int_equal(parse_bytes(b.data, b.len, 0, &got, &info, &error),
	    -1);
	assert_int_equal(errno, EBADMSG);

	/* Not a queue file at all. */
	assert_int_equal(parse_bytes("From: x\r\n\r\nhello\r\n", 18, 0, &got,
	    &info, &error), -1);
	assert_int_equal(errno, EBADMSG);

	/* A future version is refused, not guessed at. */
	buf_reset(&b);
	{
		unsigned char p[QFILE_MAGIC_LEN + 4 + 8 + 4];

		memset(p, 0, sizeof(p));
		memcpy(p, QFILE_MAGIC, QFILE_MAGIC_LEN);
		p[QFILE_MAGIC_LEN + 3] = QFILE_VERSION + 1;
		assert_int_equal(qfile_record_append(&b, QFILE_REC_HEADER, p,
		    sizeof(p)), 0);
	}
	assert_int_equal(parse_bytes(b.data, b.len, 0, &got, &info, &error),
	    -1);
	assert_string_equal(error, "unsupported version");
	envelope_free(&env);
	buf_free(&b);
}

/* Random mutations must give a clean error or a sane envelope. */
static void
test_random_mutations(void **state)
{
	struct envelope env, got;
	struct qfile_info info;
	struct buf b;
	const char *error;
	uint64_t content;
	unsigned int seed = 20261129, iter, k, nmut;
	char *copy;
	size_t len;
	int r;

	(void)state;
	print_message("random mutations: seed %u\n", seed);
	srandom(seed);
	fill_envelope(&env);
	build_file(&b, &env, &content);
	copy = xmalloc(b.len);
	for (iter = 0; iter < 3000; iter++) {
		memcpy(copy, b.data, b.len);
		len = b.len;
		nmut = 1 + (unsigned int)(random() % 4);
		for (k = 0; k < nmut; k++)
			copy[random() % (long)len] = (char)random();
		if (random() % 4 == 0)
			len = (size_t)(random() % (long)len);
		r = parse_bytes(copy, len, QFILE_VERIFY_CONTENT, &got, &info,
		    &error);
		if (r == 0) {
			assert_int_equal(info.nrcpts, got.nrcpts);
			envelope_free(&got);
		} else {
			assert_int_equal(errno, EBADMSG);
		}
	}
	free(copy);
	envelope_free(&env);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_raw_tail_matches_encoder),
		cmocka_unit_test(test_prepend),
		cmocka_unit_test(test_version1),
		cmocka_unit_test(test_null_mandatory_field),
		cmocka_unit_test(test_rcpt_bomb),
		cmocka_unit_test(test_every_truncation_fails),
		cmocka_unit_test(test_every_byte_flip),
		cmocka_unit_test(test_trailing_data),
		cmocka_unit_test(test_bad_structure),
		cmocka_unit_test(test_random_mutations),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
