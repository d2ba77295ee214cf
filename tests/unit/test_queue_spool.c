/*
 * test_queue_spool.c: the durable spool on a real directory with a real
 * libevent loop: commit and read back byte-exact, group commit, recipient
 * state updates and torn updates, start-up recovery, commit errors, queue
 * IDs, the close-time drain and the stats log line; crafted files with
 * absent mandatory fields, writers opened during spool_close(), and
 * moving files to corrupt/ and failed/. Content writes happen on spool
 * threads: pending bytes and drain notifications, a stalled disk (the
 * writer's fd swapped for a pipe nobody reads), write errors found by a
 * thread, abort and spool_close() with write jobs in flight.
 */
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "queue/envelope.h"
#include "queue/qfile.h"
#include "queue/spool.h"

#include "testutil.h"
#include "envelope_assert.h"
#include "qfile_raw.h"

#define MAX_RESULTS	256

struct result {
	char id[QUEUE_ID_MAX];
	uint64_t cookie;
	int error;
};

struct fixture {
	char dir[64];
	struct event_base *base;
	struct spool *sp;
	struct result results[MAX_RESULTS];
	int nresults;
};

/* ---- Helpers ---- */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void
path_of(char *dst, size_t size, const struct fixture *fx, const char *sub,
    const char *name)
{
	if ((size_t)snprintf(dst, size, "%s/%s/%s", fx->dir, sub, name) >=
	    size)
		fail_msg("path too long: %s/%s/%s", fx->dir, sub, name);
}

static int
count_files(const struct fixture *fx, const char *sub)
{
	char path[256];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", fx->dir, sub);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static bool
file_exists(const struct fixture *fx, const char *sub, const char *name)
{
	char path[256];

	path_of(path, sizeof(path), fx, sub, name);
	return access(path, F_OK) == 0;
}

static char *
read_whole(const char *path, size_t *len_r)
{
	struct stat st;
	char *data;
	int fd;

	fd = open(path, O_RDONLY);
	assert_true(fd != -1);
	assert_int_equal(fstat(fd, &st), 0);
	data = xmalloc((size_t)st.st_size + 1);
	assert_int_equal(read(fd, data, (size_t)st.st_size), st.st_size);
	close(fd);
	*len_r = (size_t)st.st_size;
	return data;
}

static void
write_whole(const char *path, const void *data, size_t len)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	assert_int_equal(write_all(fd, data, len), 0);
	assert_int_equal(close(fd), 0);
}

static void
commit_cb(void *arg, uint64_t cookie, const char *id, int error)
{
	struct fixture *fx = arg;
	struct result *r;

	assert_true(fx->nresults < MAX_RESULTS);
	r = &fx->results[fx->nresults++];
	strlcpy(r->id, id, sizeof(r->id));
	r->cookie = cookie;
	r->error = error;
}

/* Run the loop until want callbacks have arrived (30 s at most). */
static void
run_until(struct fixture *fx, int want)
{
	struct timeval tv = { 0, 5000 };
	uint64_t deadline = time_mono_usec() + 30 * 1000000ULL;

	while (fx->nresults < want) {
		if (time_mono_usec() > deadline)
			fail_msg("got %d callbacks, want %d", fx->nresults,
			    want);
		event_base_loopexit(fx->base, &tv);
		event_base_dispatch(fx->base);
	}
}

static void
open_spool(struct fixture *fx)
{
	const char *error = NULL;

	fx->sp = spool_open(fx->dir, fx->base, 4, &error);
	if (fx->sp == NULL)
		fail_msg("spool_open: %s", error);
}

static int
setup(void **state)
{
	struct fixture *fx;

	fx = xcalloc(1, sizeof(*fx));
	strlcpy(fx->dir, "/tmp/petrel-test-spool.XXXXXX", sizeof(fx->dir));
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	fx->base = event_base_new();
	if (fx->base == NULL)
		return -1;
	open_spool(fx);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	spool_close(fx->sp);
	event_base_free(fx->base);
	nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* An envelope with every field set (and a second recipient with NULLs). */
static void
fill_envelope(struct envelope *env)
{
	envelope_init(env);
	env->sender = xstrdup("alice@example.test");
	env->body = 2;
	env->size = 3145728;
	env->smtputf8 = true;
	env->ret = 1;
	env->envid = xstrdup("ID+2Bx");
	env->auth = xstrdup("alice+40example.test");
	env->client_addr = xstrdup("2001:db8::1");
	env->client_name = xstrdup("client.example.test");
	env->helo = xstrdup("[2001:db8::1]");
	env->proto = xstrdup("ESMTPSA");
	env->tls = xstrdup("TLSv1.3 TLS_AES_256_GCM_SHA384");
	env->auth_user = xstrdup("alice@example.test");
	env->arrival = 1764382393;
	envelope_rcpt_add(env, "Bob@Example.Test", "bob@example.test",
	    "/var/mail/example.test/bob", RCPT_KIND_LOCAL, 0x0e,
	    "rfc822;Bob@Example.Test");
	envelope_rcpt_add(env, "\"x y\"@remote.test", "\"x y\"@remote.test",
	    NULL, RCPT_KIND_REMOTE, 0, NULL);
	envelope_rcpt_add(env, "postmaster", "root@example.test",
	    "/var/mail/example.test/root", RCPT_KIND_LOCAL, 0x01, NULL);
}

static int
collect_cb(void *arg, const char *data, size_t len)
{
	struct buf *b = arg;

	/* Chunks are CONTENT records: never empty, at most 64 KiB. */
	assert_true(len > 0 && len <= QFILE_CONTENT_MAX);
	return buf_append(b, data, len);
}

/* Read a message's content; it must equal want exactly. */
static void
assert_content(struct fixture *fx, const char *id, const char *want,
    size_t len)
{
	struct buf b;

	buf_init(&b, 64 * 1024 * 1024);
	assert_int_equal(spool_read_content(fx->sp, id, collect_cb, &b), 0);
	assert_int_equal(b.len, len);
	if (len > 0)
		assert_memory_equal(b.data, want, len);
	buf_free(&b);
}

/*
 * Write data in chunks of the given size (0: all at once), commit it with
 * env and wait for the callback. Returns the result index.
 */
static int
commit_message(struct fixture *fx, const char *data, size_t len,
    size_t chunk, const struct envelope *env, uint64_t cookie, char *id)
{
	struct spool_writer *w;
	size_t off, n;
	int before = fx->nresults;

	w = spool_writer_new(fx->sp, id);
	assert_non_null(w);
	assert_true(file_exists(fx, "incoming", id));
	for (off = 0; off < len; off += n) {
		n = chunk == 0 || chunk > len - off ? len - off : chunk;
		assert_int_equal(spool_writer_write(w, data + off, n), 0);
	}
	assert_int_equal(spool_writer_size(w), len);
	spool_writer_commit(w, env, commit_cb, fx, cookie);
	/* Never during the call. */
	assert_int_equal(fx->nresults, before);
	run_until(fx, before + 1);
	return before;
}

/* ---- Tests ---- */

static void
test_commit_roundtrip(void **state)
{
	struct fixture *fx = *state;
	struct envelope env, got;
	const char *error;
	char id[QUEUE_ID_MAX], path[256];
	struct stat st;
	struct {
		size_t len;
		size_t chunk;
	} cases[] = {
		{ 0, 0 },
		{ 1, 0 },
		{ 512, 1 },			/* one byte at a time */
		{ 65535, 0 },
		{ 65536, 0 },
		{ 65537, 4096 },
		{ 3 * 1024 * 1024, 70001 },	/* odd chunks across records */
		{ 3 * 1024 * 1024 + 17, 0 },	/* one big write */
	};
	size_t i, j;
	char *data;
	int k;

	fill_envelope(&env);
	data = xmalloc(3 * 1024 * 1024 + 17);
	/* Every byte value, NULs, bare CR and LF, CRLF. */
	srandom(42);
	for (j = 0; j < 3 * 1024 * 1024 + 17; j++)
		data[j] = (char)(j < 256 ? (long)j : random());
	memcpy(data + 256, "line\r\n.dot\r\n\0\0\r\n", 17);

	for (i = 0; i < nitems(cases); i++) {
		k = commit_message(fx, data, cases[i].len, cases[i].chunk, &env,
		    1000 + i, id);
		assert_int_equal(fx->results[k].error, 0);
		assert_int_equal(fx->results[k].cookie, 1000 + i);
		assert_string_equal(fx->results[k].id, id);
		assert_false(file_exists(fx, "incoming", id));
		assert_true(file_exists(fx, "queue", id));
		path_of(path, sizeof(path), fx, "queue", id);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);

		assert_int_equal(spool_read_envelope(fx->sp, id, &got, &error),
		    0);
		assert_envelope_equal(&got, &env);
		envelope_free(&got);
		assert_content(fx, id, data, cases[i].len);
	}
	free(data);
	envelope_free(&env);
}

/*
 * Queue format v3: header fields decided after the content (PREPEND) come
 * first from both readers, and count in spool_reader_size().
 */
static void
test_prepend_read_first(void **state)
{
	static const char hdr[] = "Authentication-Results: mx.example.test; "
	    "spf=pass smtp.mailfrom=example.org\r\n";
	static const char body[] = "Subject: x\r\n\r\nbody\r\n";
	struct fixture *fx = *state;
	struct spool_reader *rd;
	struct envelope env, got;
	const char *error, *data;
	struct buf b;
	char id[QUEUE_ID_MAX], want[256];
	size_t len;
	int k, r;

	fill_envelope(&env);
	env.prepend = xstrdup(hdr);
	k = commit_message(fx, body, sizeof(body) - 1, 0, &env, 77, id);
	assert_int_equal(fx->results[k].error, 0);
	assert_int_equal(spool_read_envelope(fx->sp, id, &got, &error), 0);
	assert_string_equal(got.prepend, hdr);
	envelope_free(&got);

	snprintf(want, sizeof(want), "%s%s", hdr, body);
	assert_content(fx, id, want, strlen(want));

	rd = spool_reader_open(fx->sp, id, &error);
	assert_non_null(rd);
	assert_int_equal(spool_reader_size(rd), strlen(want));
	buf_init(&b, 1 << 20);
	while ((r = spool_reader_next(rd, &data, &len)) == 1)
		assert_int_equal(buf_append(&b, data, len), 0);
	assert_int_equal(r, 0);
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);
	buf_free(&b);
	spool_reader_close(rd);
	envelope_free(&env);
}

static void
test_null_fields(void **state)
{
	struct fixture *fx = *state;
	struct envelope env, got;
	const char *error;
	char id[QUEUE_ID_MAX];
	int k;

	/* Null sender <> is "", not NULL; absent params stay NULL. */
	envelope_init(&env);
	env.sender = xstrdup("");
	env.client_addr = xstrdup("127.0.0.1");
	env.helo = xstrdup("localhost");
	env.proto = xstrdup("SMTP");
	envelope_rcpt_add(&env, "postmaster@localhost", "postmaster@localhost",
	    "/m", RCPT_KIND_LOCAL, 0, NULL);
	k = commit_message(fx, "hi\r\n", 4, 0, &env, 7, id);
	assert_int_equal(fx->results[k].error, 0);
	assert_int_equal(spool_read_envelope(fx->sp, id, &got, &error), 0);
	assert_envelope_equal(&got, &env);
	assert_string_equal(got.sender, "");
	assert_null(got.envid);
	assert_null(got.tls);
	assert_null(got.rcpts[0].orcpt);
	envelope_free(&got);
	envelope_free(&env);
}

static void
test_envelope_copy(void **state)
{
	struct envelope env, copy;

	(void)state;
	fill_envelope(&env);
	env.rcpts[1].status = RCPT_STATUS_DELIVERED;
	env.rcpts[1].attempts = 2;
	env.rcpts[1].next_attempt = 5;
	strlcpy(env.rcpts[1].last_reply, "250 ok", 256);
	env.rcpts[1].flags = RCPT_FLAG_NOTIFIED;
	env.rcpts[1].last_attempt = 4;
	strlcpy(env.rcpts[1].remote_mta, "mx.example.org", 256);
	envelope_copy(&copy, &env);
	assert_envelope_equal(&copy, &env);
	/* Deep: no shared strings. */
	assert_ptr_not_equal(copy.sender, env.sender);
	assert_ptr_not_equal(copy.rcpts[0].addr, env.rcpts[0].addr);
	envelope_free(&env);
	assert_string_equal(copy.rcpts[0].addr, "bob@example.test");
	envelope_free(&copy);
	/* Freed envelopes are reusable and free(NULL)-safe. */
	assert_null(copy.rcpts);
	envelope_free(&copy);
}

static void
test_group_commit(void **state)
{
	struct fixture *fx = *state;
	struct spool_writer *w[50];
	struct spool_stats st;
	struct envelope env;
	char ids[50][QUEUE_ID_MAX], *body;
	size_t len = QFILE_CONTENT_MAX + 4096;	/* a record and a bit */
	int i, j;

	fill_envelope(&env);
	body = xmalloc(len);
	memset(body, 'x', len);
	for (i = 0; i < 50; i++) {
		w[i] = spool_writer_new(fx->sp, ids[i]);
		assert_non_null(w[i]);
		assert_int_equal(spool_writer_write(w[i], body, len), 0);
	}
	for (i = 0; i < 50; i++)
		spool_writer_commit(w[i], &env, commit_cb, fx, (uint64_t)i);
	assert_int_equal(fx->nresults, 0);
	run_until(fx, 50);

	for (i = 0; i < 50; i++) {
		struct result *r = &fx->results[i];

		assert_int_equal(r->error, 0);
		assert_string_equal(r->id, ids[r->cookie]);
		for (j = 0; j < i; j++)
			assert_int_not_equal(r->cookie, fx->results[j].cookie);
	}
	spool_get_stats(fx->sp, &st);
	print_message("group commit: 50 messages, file_fsyncs=%llu "
	    "dir_fsyncs=%llu batches=%llu\n",
	    (unsigned long long)st.file_fsyncs,
	    (unsigned long long)st.dir_fsyncs, (unsigned long long)st.batches);
	assert_int_equal(st.file_fsyncs, 50);
	assert_int_equal(st.commits, 50);
	assert_int_equal(st.commit_errors, 0);
	assert_true(st.dir_fsyncs >= 1);
	if (st.dir_fsyncs >= 25)
		fail_msg("dir_fsyncs %llu, want < 25",
		    (unsigned long long)st.dir_fsyncs);
	assert_int_equal(st.batches, st.dir_fsyncs);
	assert_int_equal(count_files(fx, "queue"), 50);
	assert_int_equal(count_files(fx, "incoming"), 0);
	for (i = 0; i < 50; i += 7)
		assert_content(fx, ids[i], body, len);
	free(body);
	envelope_free(&env);
}

static void
test_update_rcpts(void **state)
{
	struct fixture *fx = *state;
	struct envelope env, got;
	const char *error;
	char id[QUEUE_ID_MAX];
	int k, round;

	fill_envelope(&env);
	k = commit_message(fx, "body\r\n", 6, 0, &env, 1, id);
	assert_int_equal(fx->results[k].error, 0);

	for (round = 0; round < 3; round++) {
		env.rcpts[0].status = RCPT_STATUS_DELIVERED;
		env.rcpts[0].attempts = 1 + round;
		env.rcpts[0].next_attempt = 0;
		strlcpy(env.rcpts[0].last_reply, "250 2.0.0 delivered", 256);
		env.rcpts[1].status = round == 2 ? RCPT_STATUS_FAILED :
		    RCPT_STATUS_PENDING;
		env.rcpts[1].attempts = 10 + round;
		env.rcpts[1].next_attempt = 1764390000 + (uint64_t)round;
		/* The longest reply that fits: 255 bytes. */
		memset(env.rcpts[1].last_reply, 'r', 255);
		env.rcpts[1].last_reply[255] = '\0';
		memcpy(env.rcpts[1].last_reply, "451 4.4.1 ", 10);
		assert_int_equal(spool_update_rcpts(fx->sp, id, &env), 0);
		assert_int_equal(spool_read_envelope(fx->sp, id, &got, &error),
		    0);
		assert_envelope_equal(&got, &env);
		envelope_free(&got);
	}
	/* Content untouched by the in-place updates. */
	assert_content(fx, id, "body\r\n", 6);

	/* A different recipient list is refused. */
	envelope_rcpt_add(&env, "x@y", "x@y", NULL, RCPT_KIND_REMOTE, 0, NULL);
	assert_int_equal(spool_update_rcpts(fx->sp, id, &env), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spool_update_rcpts(fx->sp, "NOSUCHID", &env), -1);
	assert_int_equal(errno, ENOENT);
	envelope_free(&env);
}

/* Offset of recipient i's STATE record in queue/id. */
static uint64_t
state_offset(struct fixture *fx, const char *id, size_t i)
{
	struct envelope env;
	struct qfile_info info;
	const char *error;
	char path[256];
	int fd;

	path_of(path, sizeof(path), fx, "queue", id);
	fd = open(path, O_RDONLY);
	assert_true(fd != -1);
	envelope_init(&env);
	assert_int_equal(qfile_parse(fd, 0, &env, &info, &error), 0);
	envelope_free(&env);
	close(fd);
	return info.state_offset + i * QFILE_STATE_RECLEN;
}

static void
recover_none(void *arg, const char *id, const struct envelope *env)
{
	int *n = arg;

	(void)id;
	assert_int_equal(env->rcpts[1].status, RCPT_STATUS_PENDING);
	(*n)++;
}

static void
test_torn_state(void **state)
{
	struct fixture *fx = *state;
	struct envelope env, got, next;
	const char *error;
	unsigned char rec[QFILE_STATE_RECLEN];
	char id[QUEUE_ID_MAX], path[256];
	uint64_t off;
	int k, fd, n = 0;

	fill_envelope(&env);
	k = commit_message(fx, "torn\r\n", 6, 0, &env, 1, id);
	assert_int_equal(fx->results[k].error, 0);
	env.rcpts[0].status = RCPT_STATUS_DELIVERED;
	env.rcpts[0].attempts = 1;
	assert_int_equal(spool_update_rcpts(fx->sp, id, &env), 0);

	/*
	 * Recipient 1 delivered, but the machine died mid-pwrite: only the
	 * first 100 bytes of its new STATE record reached the disk.
	 */
	envelope_copy(&next, &env);
	next.rcpts[1].status = RCPT_STATUS_DELIVERED;
	next.rcpts[1].attempts = 1;
	strlcpy(next.rcpts[1].last_reply, "250 2.0.0 ok", 256);
	qfile_encode_state(rec, 1, &next.rcpts[1]);
	off = state_offset(fx, id, 1);
	path_of(path, sizeof(path), fx, "queue", id);
	fd = open(path, O_WRONLY);
	assert_true(fd != -1);
	assert_int_equal(pwrite(fd, rec, 100, (off_t)off), 100);
	close(fd);

	/* Read as PENDING (deliver again), not as a corrupt file. */
	assert_int_equal(spool_read_envelope(fx->sp, id, &got, &error), 0);
	assert_int_equal(got.rcpts[1].status, RCPT_STATUS_PENDING);
	assert_int_equal(got.rcpts[0].status, RCPT_STATUS_DELIVERED);
	assert_int_equal(got.rcpts[2].status, RCPT_STATUS_PENDING);
	envelope_free(&got);
	assert_int_equal(spool_recover(fx->sp, recover_none, &n), 1);
	assert_int_equal(n, 1);
	assert_true(file_exists(fx, "queue", id));
	assert_int_equal(count_files(fx, "corrupt"), 0);

	/* The next update repairs it. */
	assert_int_equal(spool_update_rcpts(fx->sp, id, &next), 0);
	assert_int_equal(spool_read_envelope(fx->sp, id, &got, &error), 0);
	assert_envelope_equal(&got, &next);
	envelope_free(&got);

	/* A broken record type in the state table is corruption, though. */
	fd = open(path, O_WRONLY);
	assert_true(fd != -1);
	assert_int_equal(pwrite(fd, "\x30", 1, (off_t)off), 1);
	close(fd);
	assert_int_equal(spool_read_envelope(fx->sp, id, &got, &error), -1);
	assert_int_equal(errno, EBADMSG);
	envelope_free(&next);
	envelope_free(&env);
}

/*
 * Damaged files, as delivery reads them (issue 8): every truncation and
 * every one-byte change of a committed file (for a large one, the bytes
 * around each record boundary and a fixed-seed sample), read with
 * spool_read_envelope(), spool_read_content() and a spool_reader. Each
 * read either fails with EBADMSG or returns exactly the original; a
 * truncated file never reads as a whole envelope, a change outside the
 * STATE records (payload and CRC, read as a torn update) makes some read
 * fail. Never a crash, never other content.
 */
static void
damaged_read_one(struct fixture *fx, const char *id, const char *path,
    const unsigned char *v, size_t vlen, const char *want, size_t wlen,
    int kind, size_t off)
{
	struct envelope got;
	struct spool_reader *rd;
	const char *error, *chunk;
	struct buf b;
	size_t n;
	int fd, r1, r2, r3;

	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd != -1);
	assert_int_equal(write(fd, v, vlen), (ssize_t)vlen);
	close(fd);

	r1 = spool_read_envelope(fx->sp, id, &got, &error);
	if (r1 == 0)
		envelope_free(&got);
	else if (errno != EBADMSG)
		fail_msg("offset %zu kind %d: envelope errno %d", off, kind,
		    errno);

	buf_init(&b, 64 * 1024 * 1024);
	r2 = spool_read_content(fx->sp, id, collect_cb, &b);
	if (r2 == 0) {
		if (b.len != wlen || memcmp(b.data, want, wlen) != 0)
			fail_msg("offset %zu kind %d: other content", off, kind);
	} else if (errno != EBADMSG)
		fail_msg("offset %zu kind %d: content errno %d", off, kind,
		    errno);
	buf_free(&b);

	buf_init(&b, 64 * 1024 * 1024);
	r3 = -1;
	if ((rd = spool_reader_open(fx->sp, id, &error)) != NULL) {
		while ((r3 = spool_reader_next(rd, &chunk, &n)) == 1)
			assert_int_equal(buf_append(&b, chunk, n), 0);
		if (r3 == 0 && (b.len != wlen ||
		    memcmp(b.data, want, wlen) != 0))
			fail_msg("offset %zu kind %d: reader other content",
			    off, kind);
		if (r3 == -1 && errno != EBADMSG)
			fail_msg("offset %zu kind %d: reader errno %d", off,
			    kind, errno);
		spool_reader_close(rd);
	} else if (errno != EBADMSG)
		fail_msg("offset %zu kind %d: reader open errno %d", off, kind,
		    errno);
	buf_free(&b);

	switch (kind) {
	case 0:		/* truncated */
		if (r1 != -1)
			fail_msg("truncated to %zu: envelope read", off);
		break;
	case 1:		/* changed outside STATE */
		if (r1 == 0 && r2 == 0 && r3 == 0)
			fail_msg("changed at %zu: every read succeeded", off);
		break;
	default:	/* changed inside a STATE record: torn */
		if (r1 != 0 || r2 != 0 || r3 != 0)
			fail_msg("changed at %zu (STATE): %d %d %d", off, r1,
			    r2, r3);
		break;
	}
}

static void
damaged_reads(struct fixture *fx, size_t clen, bool every)
{
	struct envelope env;
	unsigned char *data, *v;
	char id[QUEUE_ID_MAX], path[256], *content;
	bool *torn, *pick;
	size_t len, off, i, rec, n;
	uint32_t seed = 8008;
	int k;

	content = xmalloc(clen);
	for (i = 0; i < clen; i++)
		content[i] = (i % 71 == 70) ? '\n' : (char)('a' + i % 26);
	fill_envelope(&env);
	k = commit_message(fx, content, clen, 0, &env, 1, id);
	assert_int_equal(fx->results[k].error, 0);
	path_of(path, sizeof(path), fx, "queue", id);
	data = (unsigned char *)read_whole(path, &len);

	/* Where the STATE payloads and CRCs are; where records start. */
	torn = xcalloc(len + 1, sizeof(*torn));
	pick = xcalloc(len + 1, sizeof(*pick));
	for (rec = 0; rec + 5 <= len; rec += n + 9) {
		n = (size_t)data[rec + 1] << 24 | (size_t)data[rec + 2] << 16 |
		    (size_t)data[rec + 3] << 8 | data[rec + 4];
		for (i = rec >= 64 ? rec - 64 : 0; i < rec + 64 && i <= len;
		    i++)
			pick[i] = true;
		if (data[rec] == QFILE_REC_STATE)
			for (i = rec + 5; i < rec + n + 9; i++)
				torn[i] = true;
	}
	for (i = len >= 64 ? len - 64 : 0; i <= len; i++)
		pick[i] = true;
	for (i = 0; i < 400; i++) {
		seed = seed * 1103515245u + 12345u;
		pick[(seed >> 8) % len] = true;
	}

	v = xmalloc(len);
	for (off = 0; off < len; off++) {
		if (!every && !pick[off])
			continue;
		damaged_read_one(fx, id, path, data, off, content, clen, 0,
		    off);
		memcpy(v, data, len);
		seed = seed * 1103515245u + 12345u;
		v[off] ^= (unsigned char)(1 + (seed >> 8) % 255);
		damaged_read_one(fx, id, path, v, len, content, clen,
		    torn[off] ? 2 : 1, off);
	}
	/* Put back: the original still reads. */
	damaged_read_one(fx, id, path, data, len, content, clen, 2, len);
	free(v);
	free(pick);
	free(torn);
	free(data);
	free(content);
	envelope_free(&env);
}

static void
test_damaged_reads(void **state)
{
	/* Small: every offset. */
	damaged_reads(*state, 3000, true);
	/* Three CONTENT records: around every boundary, and a sample. */
	damaged_reads(*state, 2 * QFILE_CONTENT_MAX + 1000, false);
}

struct recovered {
	int n;
	char ids[8][QUEUE_ID_MAX];
	struct envelope env;
};

static void
recover_cb(void *arg, const char *id, const struct envelope *env)
{
	struct recovered *rc = arg;

	assert_true(rc->n < 8);
	strlcpy(rc->ids[rc->n++], id, QUEUE_ID_MAX);
	envelope_free(&rc->env);
	envelope_copy(&rc->env, env);
}

/* Capture stderr (the log) into a file while fn runs. */
static char *
capture_stderr_begin(int *saved_r, char *path, size_t size)
{
	int fd;

	snprintf(path, size, "/tmp/petrel-test-spool-log.%d", (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	*saved_r = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
	return path;
}

static char *
capture_stderr_end(int saved, const char *path)
{
	size_t len;
	char *log;

	dup2(saved, STDERR_FILENO);
	close(saved);
	log = read_whole(path, &len);
	log[len] = '\0';
	unlink(path);
	return log;
}

static void
test_recover(void **state)
{
	struct fixture *fx = *state;
	struct envelope env;
	struct recovered rc;
	char valid[QUEUE_ID_MAX], bad[4][QUEUE_ID_MAX], inc[QUEUE_ID_MAX];
	char path[256], logpath[128], want[256];
	char *bytes, *garbage, *got, *log;
	size_t len, glen, blen[4], i;
	int k, saved;

	fill_envelope(&env);
	k = commit_message(fx, "valid\r\n", 7, 0, &env, 1, valid);
	assert_int_equal(fx->results[k].error, 0);
	path_of(path, sizeof(path), fx, "queue", valid);
	bytes = read_whole(path, &len);

	/* Plant the bad files under fresh IDs. */
	for (i = 0; i < 4; i++)
		spool_new_id(fx->sp, bad[i]);
	garbage = xmalloc(1000);
	srandom(7);
	for (i = 0; i < 1000; i++)
		garbage[i] = (char)random();
	blen[0] = len / 2;			/* truncated */
	blen[1] = 1000;				/* garbage */
	blen[2] = len - QFILE_END_RECLEN;	/* no END */
	blen[3] = len;				/* content CRC broken */
	for (i = 0; i < 4; i++) {
		const char *src = i == 1 ? garbage : bytes;
		char *copy = xmalloc(blen[i]);

		memcpy(copy, src, blen[i]);
		if (i == 3) {
			char *c = memmem(copy, blen[i], "valid\r\n", 7);

			assert_non_null(c);
			c[1] ^= 1;
		}
		path_of(path, sizeof(path), fx, "queue", bad[i]);
		write_whole(path, copy, blen[i]);
		free(copy);
	}
	/* A message that never got its 250. */
	spool_new_id(fx->sp, inc);
	path_of(path, sizeof(path), fx, "incoming", inc);
	write_whole(path, bytes, len);

	/* A restart. */
	spool_close(fx->sp);
	open_spool(fx);
	memset(&rc, 0, sizeof(rc));
	envelope_init(&rc.env);
	capture_stderr_begin(&saved, logpath, sizeof(logpath));
	k = spool_recover(fx->sp, recover_cb, &rc);
	log = capture_stderr_end(saved, logpath);

	assert_int_equal(k, 1);
	assert_int_equal(rc.n, 1);
	assert_string_equal(rc.ids[0], valid);
	assert_envelope_equal(&rc.env, &env);
	assert_int_equal(count_files(fx, "incoming"), 0);
	assert_int_equal(count_files(fx, "queue"), 1);
	assert_int_equal(count_files(fx, "corrupt"), 4);
	for (i = 0; i < 4; i++) {
		size_t glen2;

		path_of(path, sizeof(path), fx, "corrupt", bad[i]);
		got = read_whole(path, &glen2);
		assert_int_equal(glen2, blen[i]);
		if (i == 1)
			assert_memory_equal(got, garbage, glen2);
		else if (i != 3)
			assert_memory_equal(got, bytes, glen2);
		free(got);
		snprintf(want, sizeof(want), "spool: corrupt queue=%s "
		    "moved to corrupt/: ", bad[i]);
		if (strstr(log, want) == NULL)
			fail_msg("log lacks \"%s\":\n%s", want, log);
	}
	assert_non_null(strstr(log, "moved to corrupt/: no END record"));
	assert_non_null(strstr(log, "bad CRC in CONTENT record"));
	free(log);
	/* The valid one still reads. */
	assert_content(fx, valid, "valid\r\n", 7);

	/* Recovery is repeatable; a second corrupt file of the same name
	 * does not overwrite the first. */
	path_of(path, sizeof(path), fx, "queue", bad[1]);
	write_whole(path, "x", 1);
	glen = 0;
	k = spool_recover(fx->sp, recover_cb, &rc);
	assert_int_equal(k, 1);
	assert_int_equal(count_files(fx, "corrupt"), 5);
	path_of(path, sizeof(path), fx, "corrupt", bad[1]);
	got = read_whole(path, &glen);
	assert_int_equal(glen, 1000);
	free(got);

	envelope_free(&rc.env);
	free(garbage);
	free(bytes);
	envelope_free(&env);
}

static const char *const mandatory_fields[] = {
	"sender", "client_addr", "helo", "proto", "orig", "addr",
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
		f = &env->rcpts[2].orig;
	else
		f = &env->rcpts[2].addr;
	free(*f);
	*f = NULL;
}

static void
test_recover_null_fields(void **state)
{
	struct fixture *fx = *state;
	struct envelope env;
	struct recovered rc;
	struct buf b;
	char ids[nitems(mandatory_fields)][QUEUE_ID_MAX], valid[QUEUE_ID_MAX];
	char path[256], logpath[128], want[256], *log, *got;
	size_t i, len;
	int k, saved;

	/*
	 * Files that pass every CRC but lack a sender or an address used
	 * to be recovered and then crashed every delivery worker.
	 */
	for (i = 0; i < nitems(mandatory_fields); i++) {
		fill_envelope(&env);
		null_field(&env, mandatory_fields[i]);
		spool_new_id(fx->sp, ids[i]);
		raw_file(&b, ids[i], &env, "x\r\n");
		path_of(path, sizeof(path), fx, "queue", ids[i]);
		write_whole(path, b.data, b.len);
		buf_free(&b);
		envelope_free(&env);
	}
	/* The same crafting with nothing absent gives a good file. */
	fill_envelope(&env);
	spool_new_id(fx->sp, valid);
	raw_file(&b, valid, &env, "x\r\n");
	path_of(path, sizeof(path), fx, "queue", valid);
	write_whole(path, b.data, b.len);

	memset(&rc, 0, sizeof(rc));
	envelope_init(&rc.env);
	capture_stderr_begin(&saved, logpath, sizeof(logpath));
	k = spool_recover(fx->sp, recover_cb, &rc);
	log = capture_stderr_end(saved, logpath);
	assert_int_equal(k, 1);
	assert_int_equal(rc.n, 1);
	assert_string_equal(rc.ids[0], valid);
	assert_envelope_equal(&rc.env, &env);
	assert_int_equal(count_files(fx, "queue"), 1);
	assert_int_equal(count_files(fx, "corrupt"),
	    (int)nitems(mandatory_fields));
	for (i = 0; i < nitems(mandatory_fields); i++) {
		assert_true(file_exists(fx, "corrupt", ids[i]));
		snprintf(want, sizeof(want), "spool: corrupt queue=%s "
		    "moved to corrupt/: bad ", ids[i]);
		if (strstr(log, want) == NULL)
			fail_msg("%s absent: log lacks \"%s\":\n%s",
			    mandatory_fields[i], want, log);
	}
	assert_non_null(strstr(log, "bad MAIL record"));
	assert_non_null(strstr(log, "bad CLIENT record"));
	assert_non_null(strstr(log, "bad RCPT record"));
	/* Kept byte for byte for a human. */
	path_of(path, sizeof(path), fx, "corrupt", ids[0]);
	got = read_whole(path, &len);
	assert_true(len > 0);
	free(got);
	free(log);
	envelope_free(&rc.env);
	envelope_free(&env);
	buf_free(&b);
}

static void
test_commit_null_field(void **state)
{
	struct fixture *fx = *state;
	struct envelope env;
	char id[QUEUE_ID_MAX];
	size_t i;
	int k;

	/* A session bug must give a 4xx (commit error), never a 250 for a
	 * file that recovery then calls corrupt. */
	for (i = 0; i < nitems(mandatory_fields); i++) {
		fill_envelope(&env);
		null_field(&env, mandatory_fields[i]);
		k = commit_message(fx, "m\r\n", 3, 0, &env, i, id);
		if (fx->results[k].error != EINVAL)
			fail_msg("%s absent: commit error %d, want EINVAL",
			    mandatory_fields[i], fx->results[k].error);
		assert_false(file_exists(fx, "queue", id));
		assert_false(file_exists(fx, "incoming", id));
		envelope_free(&env);
	}
	assert_int_equal(count_files(fx, "queue"), 0);
	assert_int_equal(count_files(fx, "incoming"), 0);
}

static void
test_commit_error_rename(void **state)
{
	struct fixture *fx = *state;
	struct spool_writer *w;
	struct spool_stats st;
	struct envelope env;
	char id[QUEUE_ID_MAX], path[256];

	fill_envelope(&env);
	w = spool_writer_new(fx->sp, id);
	assert_non_null(w);
	assert_int_equal(spool_writer_write(w, "x\r\n", 3), 0);
	/* The rename into queue/ will fail: queue/ is gone. */
	snprintf(path, sizeof(path), "%s/queue", fx->dir);
	assert_int_equal(rmdir(path), 0);
	spool_writer_commit(w, &env, commit_cb, fx, 99);
	run_until(fx, 1);
	assert_int_equal(fx->results[0].error, ENOENT);
	assert_int_equal(fx->results[0].cookie, 99);
	assert_int_equal(count_files(fx, "incoming"), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(count_files(fx, "queue"), 0);
	spool_get_stats(fx->sp, &st);
	assert_int_equal(st.commit_errors, 1);
	assert_int_equal(st.commits, 0);
	assert_int_equal(st.dir_fsyncs, 0);
	envelope_free(&env);

	/* The spool comes back by itself with the directory. */
	spool_close(fx->sp);
	open_spool(fx);
	fill_envelope(&env);
	assert_int_equal(commit_message(fx, "y\r\n", 3, 0, &env, 1, id), 1);
	assert_int_equal(fx->results[1].error, 0);
	assert_true(file_exists(fx, "queue", id));
	envelope_free(&env);
}

/* ---- Drain notifications ---- */

struct probe {
	struct spool_writer *w;	/* to read pending from the callback */
	int calls;
	uint64_t cookie;
	size_t pending_seen;
	bool in_call;		/* set around spool_writer_notify() */
	bool during;		/* the callback ran during that call */
};

static void
probe_cb(void *arg, uint64_t cookie)
{
	struct probe *pr = arg;

	pr->calls++;
	pr->cookie = cookie;
	if (pr->in_call)
		pr->during = true;
	if (pr->w != NULL)
		pr->pending_seen = spool_writer_pending(pr->w);
}

static void
probe_notify(struct probe *pr, struct spool_writer *w, size_t low,
    uint64_t cookie)
{
	pr->in_call = true;
	spool_writer_notify(w, low, probe_cb, pr, cookie);
	pr->in_call = false;
}

/* Run the loop until *count reaches want (30 s at most). */
static void
run_until_count(struct fixture *fx, const int *count, int want)
{
	struct timeval tv = { 0, 5000 };
	uint64_t deadline = time_mono_usec() + 30 * 1000000ULL;

	while (*count < want) {
		if (time_mono_usec() > deadline)
			fail_msg("got %d, want %d", *count, want);
		event_base_loopexit(fx->base, &tv);
		event_base_dispatch(fx->base);
	}
}

/* Run the loop for about usec microseconds. */
static void
run_for(struct fixture *fx, uint64_t usec)
{
	struct timeval tv = { 0, 5000 };
	uint64_t end = time_mono_usec() + usec;

	while (time_mono_usec() < end) {
		event_base_loopexit(fx->base, &tv);
		event_base_dispatch(fx->base);
	}
}

static void
test_write_error(void **state)
{
	struct fixture *fx = *state;
	struct spool_writer *w;
	struct rlimit old, small;
	struct envelope env;
	struct probe pr = { 0 };
	char id[QUEUE_ID_MAX], chunk[8192];
	int i, r = 0, err = 0;

	/*
	 * A real write(2) failure, found by the spool thread: files may not
	 * grow past 100 kB while it writes.
	 */
	fill_envelope(&env);
	memset(chunk, 'z', sizeof(chunk));
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	w = spool_writer_new(fx->sp, id);
	assert_non_null(w);
	small = old;
	small.rlim_cur = 100000;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	/* 40 * 8 KiB: five records; the second cannot be written. */
	for (i = 0; i < 40 && r == 0; i++) {
		r = spool_writer_write(w, chunk, sizeof(chunk));
		err = errno;
	}
	if (r == 0) {
		/* The thread is still at it: due on the error at the
		 * latest. */
		probe_notify(&pr, w, 0, 3);
		run_until_count(fx, &pr.calls, 1);
		assert_int_equal(pr.cookie, 3);
		r = spool_writer_write(w, "a", 1);
		err = errno;
	}
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(r, -1);
	assert_int_equal(err, EFBIG);
	/* Stays failed; nothing is held any more. */
	assert_int_equal(spool_writer_write(w, "a", 1), -1);
	assert_int_equal(errno, EFBIG);
	assert_int_equal(spool_writer_pending(w), 0);
	/* A request after the failure is due at once (but not now). */
	pr.calls = 0;
	probe_notify(&pr, w, 0, 4);
	assert_int_equal(pr.calls, 0);
	run_until_count(fx, &pr.calls, 1);
	assert_false(pr.during);
	spool_writer_commit(w, &env, commit_cb, fx, 5);
	assert_int_equal(fx->nresults, 0);
	run_until(fx, 1);
	assert_int_equal(fx->results[0].error, EFBIG);
	assert_int_equal(count_files(fx, "incoming"), 0);
	assert_int_equal(count_files(fx, "queue"), 0);
	envelope_free(&env);
}

/* The fd the spool holds on incoming/ID (found through /proc). */
static int
writer_fd(const struct fixture *fx, const char *id)
{
	char path[256], want[PATH_MAX], link[PATH_MAX], fdpath[300];
	struct dirent *de;
	DIR *d;
	ssize_t n;
	int fd = -1;

	path_of(path, sizeof(path), fx, "incoming", id);
	assert_non_null(realpath(path, want));
	assert_non_null(d = opendir("/proc/self/fd"));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%s",
		    de->d_name);
		n = readlink(fdpath, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, want) == 0) {
			fd = (int)strtol(de->d_name, NULL, 10);
			break;
		}
	}
	closedir(d);
	assert_true(fd != -1);
	return fd;
}

/*
 * A stalled disk: the writer's fd becomes a pipe nobody reads (smaller
 * than a record, so not one record can be written until a reader comes).
 * Returns the read end.
 */
static int
stall_writer(const struct fixture *fx, const char *id)
{
	int p[2], fd;

	fd = writer_fd(fx, id);
	assert_int_equal(pipe(p), 0);
	(void)fcntl(p[1], F_SETPIPE_SZ, 4096);
	assert_true(fcntl(p[1], F_GETPIPE_SZ) < QFILE_REC_OVERHEAD +
	    QFILE_CONTENT_MAX);
	assert_int_equal(dup2(p[1], fd), fd);
	close(p[1]);
	return p[0];
}

struct pipe_reader {
	pthread_t th;
	int fd;
	struct buf got;
};

static void *
pipe_reader_main(void *arg)
{
	struct pipe_reader *pr = arg;
	char tmp[65536];
	ssize_t n;

	while ((n = read(pr->fd, tmp, sizeof(tmp))) > 0)
		if (buf_append(&pr->got, tmp, (size_t)n) == -1)
			break;
	return NULL;
}

static void
pipe_reader_start(struct pipe_reader *pr, int fd)
{
	pr->fd = fd;
	buf_init(&pr->got, 64 * 1024 * 1024);
	assert_int_equal(pthread_create(&pr->th, NULL, pipe_reader_main, pr),
	    0);
}

/* Until the writer's end is closed (by the spool). */
static void
pipe_reader_join(struct pipe_reader *pr)
{
	pthread_join(pr->th, NULL);
	close(pr->fd);
}

/* Until the spool thread has begun writing into the pipe. */
static void
wait_pipe_data(int fd)
{
	uint64_t deadline = time_mono_usec() + 30 * 1000000ULL;
	int n = 0;

	while (ioctl(fd, FIONREAD, &n) == 0 && n == 0) {
		if (time_mono_usec() > deadline)
			fail_msg("no data in the pipe");
		usleep(1000);
	}
	assert_true(n > 0);
}

static void
test_stalled_disk(void **state)
{
	struct fixture *fx = *state;
	struct spool_writer *w;
	struct pipe_reader rd;
	struct probe pr = { 0 };
	char id[QUEUE_ID_MAX];
	const size_t total = 4 * 1024 * 1024, chunk = 7001;
	size_t off, n, i, nrec;
	unsigned char *data, *rec;
	uint32_t crc;
	int rfd;

	signal(SIGPIPE, SIG_IGN);
	/* A write(2) on the loop would block for good: die instead. */
	alarm(120);
	data = xmalloc(total);
	srandom(7);
	for (off = 0; off < total; off++)
		data[off] = (unsigned char)random();
	w = spool_writer_new(fx->sp, id);
	assert_non_null(w);
	assert_int_equal(spool_writer_pending(w), 0);
	rfd = stall_writer(fx, id);

	/* The loop never blocks: every write returns, all is pending. */
	for (off = 0; off < total; off += n) {
		n = chunk < total - off ? chunk : total - off;
		assert_int_equal(spool_writer_write(w, data + off, n), 0);
		assert_int_equal(spool_writer_pending(w), off + n);
	}
	assert_int_equal(spool_writer_size(w), total);

	/* Not due while the disk is stalled. */
	pr.w = w;
	probe_notify(&pr, w, 1024 * 1024, 11);
	run_for(fx, 50000);
	assert_int_equal(pr.calls, 0);
	assert_int_equal(spool_writer_pending(w), total);

	/* The disk comes back: due once pending <= 1 MiB, from the loop. */
	pipe_reader_start(&rd, rfd);
	run_until_count(fx, &pr.calls, 1);
	assert_false(pr.during);
	assert_int_equal(pr.cookie, 11);
	assert_true(pr.pending_seen <= 1024 * 1024);
	/* A whole number of records: pending reaches 0. */
	probe_notify(&pr, w, 0, 12);
	run_until_count(fx, &pr.calls, 2);
	assert_int_equal(pr.cookie, 12);
	assert_int_equal(spool_writer_pending(w), 0);
	run_for(fx, 20000);
	assert_int_equal(pr.calls, 2);	/* once per request */

	spool_writer_abort(w);	/* closes the pipe: the reader ends */
	pipe_reader_join(&rd);
	spool_drain(fx->sp);	/* the job may still be finishing */
	assert_int_equal(count_files(fx, "incoming"), 0);

	/* The pipe got the CONTENT records, in order, as the file would. */
	nrec = total / QFILE_CONTENT_MAX;
	assert_int_equal(rd.got.len, nrec * (QFILE_REC_OVERHEAD +
	    QFILE_CONTENT_MAX));
	for (i = 0; i < nrec; i++) {
		rec = (unsigned char *)rd.got.data + i * (QFILE_REC_OVERHEAD +
		    QFILE_CONTENT_MAX);
		assert_int_equal(rec[0], QFILE_REC_CONTENT);
		assert_int_equal(((uint32_t)rec[1] << 24) |
		    ((uint32_t)rec[2] << 16) | ((uint32_t)rec[3] << 8) | rec[4],
		    QFILE_CONTENT_MAX);
		assert_memory_equal(rec + QFILE_REC_HDRLEN,
		    data + i * QFILE_CONTENT_MAX, QFILE_CONTENT_MAX);
		crc = qfile_crc32(0, rec, QFILE_REC_HDRLEN + QFILE_CONTENT_MAX);
		rec += QFILE_REC_HDRLEN + QFILE_CONTENT_MAX;
		assert_int_equal(((uint32_t)rec[0] << 24) |
		    ((uint32_t)rec[1] << 16) | ((uint32_t)rec[2] << 8) | rec[3],
		    crc);
	}
	buf_free(&rd.got);
	free(data);
	alarm(0);
}

static void
test_pending_notify(void **state)
{
	struct fixture *fx = *state;
	struct spool_writer *w;
	struct envelope env;
	struct probe pr = { 0 }, pr2 = { 0 };
	char id[QUEUE_ID_MAX], *data;
	size_t len = 3 * QFILE_CONTENT_MAX + 10;
	int k;

	data = xmalloc(len);
	memset(data, 'p', len);
	fill_envelope(&env);
	w = spool_writer_new(fx->sp, id);
	assert_non_null(w);
	pr.w = w;

	/* Already due: from the loop, never during the call. */
	assert_int_equal(spool_writer_pending(w), 0);
	probe_notify(&pr, w, 0, 1);
	assert_int_equal(pr.calls, 0);
	run_until_count(fx, &pr.calls, 1);
	assert_false(pr.during);
	assert_int_equal(pr.cookie, 1);
	run_for(fx, 20000);
	assert_int_equal(pr.calls, 1);

	/* The record being filled counts and stays until it is full. */
	assert_int_equal(spool_writer_write(w, data, 10), 0);
	assert_int_equal(spool_writer_pending(w), 10);
	probe_notify(&pr, w, 5, 2);
	run_for(fx, 50000);
	assert_int_equal(pr.calls, 1);
	assert_int_equal(spool_writer_pending(w), 10);
	/* Full records go to the thread; the request becomes due. */
	assert_int_equal(spool_writer_write(w, data + 10,
	    3 * QFILE_CONTENT_MAX - 10), 0);
	run_until_count(fx, &pr.calls, 2);
	assert_int_equal(pr.cookie, 2);
	assert_int_equal(pr.pending_seen, 0);

	/* A new request replaces the old one. */
	assert_int_equal(spool_writer_write(w, data, 10), 0);
	probe_notify(&pr, w, 100, 3);
	probe_notify(&pr2, w, 100, 4);
	run_until_count(fx, &pr2.calls, 1);
	assert_int_equal(pr2.cookie, 4);
	run_for(fx, 20000);
	assert_int_equal(pr.calls, 2);
	assert_int_equal(pr2.calls, 1);

	k = fx->nresults;
	spool_writer_commit(w, &env, commit_cb, fx, 9);
	run_until(fx, k + 1);
	assert_int_equal(fx->results[k].error, 0);
	assert_content(fx, id, data, 3 * QFILE_CONTENT_MAX + 10);
	envelope_free(&env);
	free(data);
}

/* From an abort or commit on, the callback never runs. */
static void
test_notify_cancel(void **state)
{
	struct fixture *fx = *state;
	struct spool_writer *w;
	struct envelope env;
	struct probe pr = { 0 };
	char id[QUEUE_ID_MAX], *data;
	size_t len = 8 * 1024 * 1024;
	int k;

	fill_envelope(&env);
	data = xmalloc(len);
	memset(data, 'c', len);

	/* Due (on notify_q), then committed. */
	w = spool_writer_new(fx->sp, id);
	assert_non_null(w);
	assert_int_equal(spool_writer_write(w, "abc", 3), 0);
	probe_notify(&pr, w, 100, 1);
	k = fx->nresults;
	spool_writer_commit(w, &env, commit_cb, fx, 1);
	run_until(fx, k + 1);
	assert_int_equal(fx->results[k].error, 0);

	/* Due, then aborted. */
	w = spool_writer_new(fx->sp, id);
	assert_non_null(w);
	probe_notify(&pr, w, 0, 2);
	spool_writer_abort(w);

	/* Armed with much pending, then committed or aborted. */
	w = spool_writer_new(fx->sp, id);
	assert_non_null(w);
	assert_int_equal(spool_writer_write(w, data, len), 0);
	probe_notify(&pr, w, 0, 3);
	k = fx->nresults;
	spool_writer_commit(w, &env, commit_cb, fx, 3);
	run_until(fx, k + 1);
	assert_int_equal(fx->results[k].error, 0);
	assert_content(fx, id, data, len);

	w = spool_writer_new(fx->sp, id);
	assert_non_null(w);
	assert_int_equal(spool_writer_write(w, data, len), 0);
	probe_notify(&pr, w, 0, 4);
	spool_writer_abort(w);

	spool_drain(fx->sp);
	run_for(fx, 50000);
	assert_int_equal(pr.calls, 0);
	assert_int_equal(count_files(fx, "incoming"), 0);
	assert_int_equal(count_files(fx, "queue"), 2);
	envelope_free(&env);
	free(data);
}

/* Abort while a thread is inside write(2) for the writer. */
static void
test_abort_inflight(void **state)
{
	struct fixture *fx = *state;
	struct spool_writer *w;
	struct pipe_reader rd;
	struct probe pr = { 0 };
	char id[QUEUE_ID_MAX], *data;
	size_t len = 8 * 1024 * 1024;
	int rfd, i;

	signal(SIGPIPE, SIG_IGN);
	alarm(120);
	data = xmalloc(len);
	memset(data, 'a', len);

	/* Stalled in write(2): the thread finishes that record only. */
	w = spool_writer_new(fx->sp, id);
	assert_non_null(w);
	rfd = stall_writer(fx, id);
	assert_int_equal(spool_writer_write(w, data, len), 0);
	probe_notify(&pr, w, 0, 1);
	wait_pipe_data(rfd);
	spool_writer_abort(w);
	assert_true(file_exists(fx, "incoming", id));	/* thread's job */
	pipe_reader_start(&rd, rfd);
	pipe_reader_join(&rd);		/* the thread closed the fd */
	assert_int_equal(rd.got.len, QFILE_REC_OVERHEAD + QFILE_CONTENT_MAX);
	buf_free(&rd.got);
	spool_drain(fx->sp);		/* waits for that job */
	assert_false(file_exists(fx, "incoming", id));

	/* Real files, many MB, aborted at once. */
	for (i = 0; i < 8; i++) {
		w = spool_writer_new(fx->sp, id);
		assert_non_null(w);
		assert_int_equal(spool_writer_write(w, data, len), 0);
		probe_notify(&pr, w, 0, 2);
		spool_writer_abort(w);
	}
	spool_drain(fx->sp);
	run_for(fx, 20000);
	assert_int_equal(pr.calls, 0);
	assert_int_equal(count_files(fx, "incoming"), 0);
	assert_int_equal(count_files(fx, "queue"), 0);
	free(data);
	alarm(0);
}

/* spool_close() with write jobs in flight: everything goes through. */
static void
test_close_writes_inflight(void **state)
{
	struct fixture *fx = *state;
	struct spool_writer *w[10], *gone;
	struct envelope env;
	char ids[10][QUEUE_ID_MAX], id[QUEUE_ID_MAX], *data;
	size_t len = 2 * 1024 * 1024 + 3;
	int i;

	fill_envelope(&env);
	data = xmalloc(len);
	for (i = 0; i < (int)len; i++)
		data[i] = (char)(i * 7);
	for (i = 0; i < 10; i++) {
		w[i] = spool_writer_new(fx->sp, ids[i]);
		assert_non_null(w[i]);
		assert_int_equal(spool_writer_write(w[i], data, len), 0);
	}
	gone = spool_writer_new(fx->sp, id);
	assert_non_null(gone);
	assert_int_equal(spool_writer_write(gone, data, len), 0);
	spool_writer_abort(gone);
	for (i = 0; i < 10; i++)
		spool_writer_commit(w[i], &env, commit_cb, fx, (uint64_t)i);
	spool_close(fx->sp);
	fx->sp = NULL;
	assert_int_equal(fx->nresults, 10);
	assert_int_equal(count_files(fx, "incoming"), 0);
	open_spool(fx);
	for (i = 0; i < 10; i++) {
		assert_int_equal(fx->results[i].error, 0);
		assert_content(fx, ids[fx->results[i].cookie], data, len);
	}
	envelope_free(&env);
	free(data);
}

static void
test_abort_and_remove(void **state)
{
	struct fixture *fx = *state;
	struct spool_writer *w;
	struct envelope env, got;
	const char *error;
	char id[QUEUE_ID_MAX];
	int k;

	w = spool_writer_new(fx->sp, id);
	assert_non_null(w);
	assert_int_equal(spool_writer_write(w, "abc", 3), 0);
	spool_writer_abort(w);
	assert_int_equal(count_files(fx, "incoming"), 0);
	spool_writer_abort(NULL);

	fill_envelope(&env);
	k = commit_message(fx, "bye\r\n", 5, 0, &env, 1, id);
	assert_int_equal(fx->results[k].error, 0);
	assert_int_equal(spool_remove(fx->sp, id), 0);
	assert_false(file_exists(fx, "queue", id));
	assert_int_equal(spool_read_envelope(fx->sp, id, &got, &error), -1);
	assert_int_equal(errno, ENOENT);
	/* IDs are file names, never paths. */
	assert_int_equal(spool_remove(fx->sp, "../queue"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spool_read_envelope(fx->sp, "a/b", &got, &error), -1);
	assert_int_equal(errno, EINVAL);
	envelope_free(&env);
}

/*
 * Spare files: a removed message's file goes to spare/ and a later message
 * is written over it, but only once a fsync of queue/ has begun after the
 * removal; the new file in queue/ holds exactly the new message (none of
 * the old, longer content's tail); a restart deletes leftover spares.
 */
static void
test_spare_reuse(void **state)
{
	struct fixture *fx = *state;
	struct spool_stats st;
	struct envelope env, got;
	const char *error;
	char a[QUEUE_ID_MAX], b[QUEUE_ID_MAX], c[QUEUE_ID_MAX], path[256];
	struct spool_writer *w;
	struct stat sa, sc;
	char *big;
	int k;

	fill_envelope(&env);
	big = xmalloc(200000);
	memset(big, 'x', 200000);
	k = commit_message(fx, big, 200000, 0, &env, 1, a);
	assert_int_equal(fx->results[k].error, 0);
	path_of(path, sizeof(path), fx, "queue", a);
	assert_int_equal(stat(path, &sa), 0);
	assert_int_equal(spool_remove(fx->sp, a), 0);
	assert_false(file_exists(fx, "queue", a));
	assert_int_equal(count_files(fx, "spare"), 1);

	/* No fsync of queue/ since: the spare must wait. */
	w = spool_writer_new(fx->sp, b);
	assert_non_null(w);
	spool_get_stats(fx->sp, &st);
	assert_int_equal(st.files_reused, 0);
	assert_int_equal(count_files(fx, "spare"), 1);
	assert_int_equal(spool_writer_write(w, "b\r\n", 3), 0);
	spool_writer_commit(w, &env, commit_cb, fx, 2);
	run_until(fx, k + 2);
	assert_int_equal(fx->results[k + 1].error, 0);

	/* That commit fsync'd queue/: now the spare is used. */
	k = commit_message(fx, "short\r\n", 7, 0, &env, 3, c);
	assert_int_equal(fx->results[k].error, 0);
	spool_get_stats(fx->sp, &st);
	assert_int_equal(st.files_reused, 1);
	assert_int_equal(count_files(fx, "spare"), 0);
	path_of(path, sizeof(path), fx, "queue", c);
	assert_int_equal(stat(path, &sc), 0);
	assert_int_equal(sc.st_ino, sa.st_ino);		/* the same file */
	{
		struct stat sb;

		/* Its tail cut: as long as b's, a new file, give or take
		 * the content's 4 bytes more. */
		path_of(path, sizeof(path), fx, "queue", b);
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(sc.st_size, sb.st_size + 4);
		path_of(path, sizeof(path), fx, "queue", c);
	}
	assert_int_equal(sc.st_mode & 0777, 0600);
	assert_content(fx, c, "short\r\n", 7);
	assert_int_equal(spool_read_envelope(fx->sp, c, &got, &error), 0);
	assert_envelope_equal(&got, &env);
	envelope_free(&got);
	assert_content(fx, b, "b\r\n", 3);

	/* A restart deletes spares instead of trusting them. */
	assert_int_equal(spool_remove(fx->sp, b), 0);
	assert_int_equal(count_files(fx, "spare"), 1);
	spool_close(fx->sp);
	open_spool(fx);
	assert_int_equal(count_files(fx, "spare"), 0);
	assert_true(file_exists(fx, "queue", c));
	free(big);
	envelope_free(&env);
}

/* spool_writer_open: the file is made on a spool thread, cb on the loop. */
static struct spool_writer *opened_w[4];

static void
open_cb(void *arg, uint64_t cookie, struct spool_writer *w, int error)
{
	struct fixture *fx = arg;
	struct result *r;

	assert_true(cookie < 4);
	r = &fx->results[fx->nresults++];
	r->cookie = cookie;
	r->error = error;
	if (w != NULL)
		strlcpy(r->id, spool_writer_id(w), sizeof(r->id));
	opened_w[cookie] = w;
}

static void
test_writer_open_async(void **state)
{
	struct fixture *fx = *state;
	struct envelope env;
	int i;

	for (i = 0; i < 3; i++)
		spool_writer_open(fx->sp, open_cb, fx, (uint64_t)i);
	/* Never during the call. */
	assert_int_equal(fx->nresults, 0);
	run_until(fx, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(fx->results[i].error, 0);
		assert_non_null(opened_w[fx->results[i].cookie]);
		assert_true(file_exists(fx, "incoming", fx->results[i].id));
	}
	assert_string_not_equal(fx->results[0].id, fx->results[1].id);

	/* One is committed, one aborted, one committed. */
	fill_envelope(&env);
	assert_int_equal(spool_writer_write(opened_w[0], "one\r\n", 5), 0);
	spool_writer_commit(opened_w[0], &env, commit_cb, fx, 10);
	spool_writer_abort(opened_w[1]);
	assert_int_equal(spool_writer_write(opened_w[2], "three\r\n", 7), 0);
	spool_writer_commit(opened_w[2], &env, commit_cb, fx, 12);
	run_until(fx, 5);
	assert_int_equal(fx->results[3].error, 0);
	assert_int_equal(fx->results[4].error, 0);
	assert_int_equal(count_files(fx, "incoming"), 0);
	assert_int_equal(count_files(fx, "queue"), 2);
	for (i = 0; i < 3; i++) {
		if (fx->results[i].cookie == 0)
			assert_content(fx, fx->results[i].id, "one\r\n", 5);
		if (fx->results[i].cookie == 2)
			assert_content(fx, fx->results[i].id, "three\r\n", 7);
	}
	envelope_free(&env);
}

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void
test_queue_ids(void **state)
{
	struct fixture *fx = *state;
	static char ids[100000][QUEUE_ID_MAX];
	char id[QUEUE_ID_MAX];
	size_t i, j;

	for (i = 0; i < nitems(ids); i++)
		spool_new_id(fx->sp, ids[i]);
	for (i = 0; i < nitems(ids); i++) {
		assert_int_equal(strlen(ids[i]), 16);
		for (j = 0; j < 16; j++)
			assert_non_null(strchr(
			    "0123456789ABCDEFGHJKMNPQRSTVWXYZ", ids[i][j]));
		/* Strictly increasing, hence all different. */
		if (i > 0 && strcmp(ids[i - 1], ids[i]) >= 0)
			fail_msg("id %zu %s not after %s", i, ids[i],
			    ids[i - 1]);
	}
	/*
	 * Across a restart: unique (another tag), even though this burst
	 * ran ahead of the clock and the new process's time part may
	 * repeat one of the old ones.
	 */
	spool_close(fx->sp);
	open_spool(fx);
	for (i = 0; i < 1000; i++) {
		spool_new_id(fx->sp, id);
		assert_null(bsearch(id, ids, nitems(ids), sizeof(ids[0]),
		    cmp_id));
	}
	/* The tag differs from the first process's. */
	assert_string_not_equal(id + 11, ids[0] + 11);
}

static void
test_close_drains(void **state)
{
	struct fixture *fx = *state;
	struct spool_writer *w[10];
	struct envelope env;
	char ids[10][QUEUE_ID_MAX], logpath[128];
	char *log;
	int i, saved;

	fill_envelope(&env);
	for (i = 0; i < 10; i++) {
		w[i] = spool_writer_new(fx->sp, ids[i]);
		assert_non_null(w[i]);
		assert_int_equal(spool_writer_write(w[i], "m\r\n", 3), 0);
		spool_writer_commit(w[i], &env, commit_cb, fx, (uint64_t)i);
	}
	/* The loop never runs: the callbacks run from spool_close. */
	capture_stderr_begin(&saved, logpath, sizeof(logpath));
	spool_close(fx->sp);
	log = capture_stderr_end(saved, logpath);
	fx->sp = NULL;
	assert_int_equal(fx->nresults, 10);
	for (i = 0; i < 10; i++) {
		assert_int_equal(fx->results[i].error, 0);
		assert_true(file_exists(fx, "queue", ids[i]));
	}
	assert_int_equal(count_files(fx, "incoming"), 0);
	if (strstr(log, "spool: stats file_fsyncs=10 dir_fsyncs=") == NULL ||
	    strstr(log, " commits=10 errors=0 batches=") == NULL)
		fail_msg("stats line missing or wrong:\n%s", log);
	free(log);
	envelope_free(&env);
}

static void
test_drain(void **state)
{
	struct fixture *fx = *state;
	struct spool_writer *w[5], *open_w;
	struct envelope env;
	char ids[5][QUEUE_ID_MAX], id[QUEUE_ID_MAX];
	int i;

	fill_envelope(&env);
	open_w = spool_writer_new(fx->sp, id);
	assert_non_null(open_w);
	assert_int_equal(spool_writer_write(open_w, "still open", 10), 0);
	for (i = 0; i < 5; i++) {
		w[i] = spool_writer_new(fx->sp, ids[i]);
		assert_non_null(w[i]);
		spool_writer_commit(w[i], &env, commit_cb, fx, (uint64_t)i);
	}
	/* Without running the loop: the callbacks run from spool_drain. */
	spool_drain(fx->sp);
	assert_int_equal(fx->nresults, 5);
	for (i = 0; i < 5; i++) {
		assert_int_equal(fx->results[i].error, 0);
		assert_true(file_exists(fx, "queue", ids[i]));
	}
	/* The open writer and the spool still work. */
	spool_writer_commit(open_w, &env, commit_cb, fx, 5);
	run_until(fx, 6);
	assert_int_equal(fx->results[5].error, 0);
	assert_content(fx, id, "still open", 10);
	spool_drain(fx->sp);	/* nothing in flight: returns at once */
	assert_int_equal(fx->nresults, 6);
	envelope_free(&env);
}

struct reader_arg {
	struct fixture *fx;
	char (*ids)[QUEUE_ID_MAX];
	int nids;
	int failures;
};

static void *
reader_main(void *arg)
{
	struct reader_arg *ra = arg;
	struct envelope env;
	const char *error;
	struct buf b;
	int round, i;

	for (round = 0; round < 20; round++) {
		for (i = 0; i < ra->nids; i++) {
			buf_init(&b, 1 << 20);
			if (spool_read_envelope(ra->fx->sp, ra->ids[i], &env,
			    &error) != 0 || env.nrcpts != 3)
				ra->failures++;
			envelope_free(&env);
			if (spool_read_content(ra->fx->sp, ra->ids[i],
			    collect_cb, &b) != 0 || b.len != 10000)
				ra->failures++;
			buf_free(&b);
		}
	}
	return NULL;
}

static void
test_readers_in_threads(void **state)
{
	struct fixture *fx = *state;
	struct reader_arg ra[4];
	pthread_t th[4];
	struct envelope env;
	char ids[8][QUEUE_ID_MAX], body[10000];
	int i;

	fill_envelope(&env);
	memset(body, 'q', sizeof(body));
	for (i = 0; i < 8; i++)
		commit_message(fx, body, sizeof(body), 3000, &env, 0, ids[i]);
	for (i = 0; i < 4; i++) {
		ra[i].fx = fx;
		ra[i].ids = ids;
		ra[i].nids = 8;
		ra[i].failures = 0;
		assert_int_equal(pthread_create(&th[i], NULL, reader_main,
		    &ra[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(ra[i].failures, 0);
	}
	envelope_free(&env);
}

/* Open jobs that finish while spool_close() drains must not hand out a
 * live writer on a spool about to be freed. */
static struct spool_writer *close_w;
static int close_calls, close_error;

static void
close_open_cb(void *arg, uint64_t cookie, struct spool_writer *w, int error)
{
	(void)arg;
	(void)cookie;
	close_calls++;
	close_error = error;
	close_w = w;	/* a session would keep it */
}

static void
test_close_open_inflight(void **state)
{
	struct fixture *fx = *state;
	int i;

	close_w = NULL;
	close_calls = 0;
	close_error = 0;
	for (i = 0; i < 3; i++)
		spool_writer_open(fx->sp, close_open_cb, NULL, (uint64_t)i);
	assert_int_equal(close_calls, 0);
	spool_close(fx->sp);
	fx->sp = NULL;
	assert_int_equal(close_calls, 3);
	/* Leaked (not aborted) on failure: aborting would touch freed
	 * memory. */
	if (close_w != NULL)
		fail_msg("open callback got a writer from inside spool_close");
	assert_int_equal(close_error, ESHUTDOWN);
	/* The files the threads created are gone. */
	assert_int_equal(count_files(fx, "incoming"), 0);
}

static void
test_quarantine_and_failed(void **state)
{
	struct fixture *fx = *state;
	struct envelope env, got;
	struct qfile_info info;
	struct stat st;
	const char *error;
	char a[QUEUE_ID_MAX], b[QUEUE_ID_MAX], path[256], logpath[128];
	char *before, *after, *log;
	size_t blen, alen;
	int k, fd, saved;

	/* spool_open made failed/ like the others. */
	snprintf(path, sizeof(path), "%s/failed", fx->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);

	fill_envelope(&env);
	k = commit_message(fx, "bad\r\n", 5, 0, &env, 1, a);
	assert_int_equal(fx->results[k].error, 0);
	k = commit_message(fx, "kept\r\n", 6, 0, &env, 2, b);
	assert_int_equal(fx->results[k].error, 0);

	/* Into corrupt/, byte for byte, with the usual log line. */
	path_of(path, sizeof(path), fx, "queue", a);
	before = read_whole(path, &blen);
	capture_stderr_begin(&saved, logpath, sizeof(logpath));
	assert_int_equal(spool_quarantine(fx->sp, a, "bad content"), 0);
	log = capture_stderr_end(saved, logpath);
	assert_false(file_exists(fx, "queue", a));
	path_of(path, sizeof(path), fx, "corrupt", a);
	after = read_whole(path, &alen);
	assert_int_equal(alen, blen);
	assert_memory_equal(after, before, blen);
	if (strstr(log, "moved to corrupt/: bad content") == NULL)
		fail_msg("log: %s", log);
	free(log);
	free(before);
	free(after);

	/* Into failed/ with its recipient states. */
	env.rcpts[0].status = RCPT_STATUS_FAILED;
	strlcpy(env.rcpts[0].last_reply, "550 5.1.1 gone", 256);
	env.rcpts[1].status = RCPT_STATUS_DELIVERED;
	env.rcpts[2].status = RCPT_STATUS_FAILED;
	assert_int_equal(spool_update_rcpts(fx->sp, b, &env), 0);
	assert_int_equal(spool_move_failed(fx->sp, b), 0);
	assert_false(file_exists(fx, "queue", b));
	assert_true(file_exists(fx, "failed", b));
	path_of(path, sizeof(path), fx, "failed", b);
	fd = open(path, O_RDONLY);
	assert_true(fd != -1);
	envelope_init(&got);
	assert_int_equal(qfile_parse(fd, QFILE_VERIFY_CONTENT, &got, &info,
	    &error), 0);
	close(fd);
	assert_envelope_equal(&got, &env);
	envelope_free(&got);
	/* Neither is seen by recovery. */
	assert_int_equal(spool_recover(fx->sp, recover_cb, NULL), 0);

	/* Gone or bad IDs. */
	assert_int_equal(spool_move_failed(fx->sp, b), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_quarantine(fx->sp, "../x", "r"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spool_move_failed(fx->sp, "a/b"), -1);
	assert_int_equal(errno, EINVAL);
	envelope_free(&env);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_writer_open_async, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_commit_roundtrip, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_prepend_read_first, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_null_fields, setup,
		    teardown),
		cmocka_unit_test(test_envelope_copy),
		cmocka_unit_test_setup_teardown(test_group_commit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_update_rcpts, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_torn_state, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_damaged_reads, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_error_rename, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_write_error, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_spare_reuse, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_abort_and_remove, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_queue_ids, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_close_drains, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readers_in_threads, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_recover_null_fields, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_commit_null_field, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_close_open_inflight, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_quarantine_and_failed,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_notify, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stalled_disk, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_notify_cancel, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_abort_inflight, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_close_writes_inflight,
		    setup, teardown),
	};

	/* As the daemon does: event_active() from the commit threads. */
	if (evthread_use_pthreads() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
