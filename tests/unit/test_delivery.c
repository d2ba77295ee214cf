/*
 * test_delivery.c: Maildir delivery from a real spool (file only in new/,
 * exact bytes, S= size, unique names, errors) and the scheduler (two local
 * recipients, retry after a temporary failure, remote recipients, failed
 * messages kept in failed/, content gone bad moved to corrupt/, absent
 * strings, and the once-per-process fsync of a Maildir's ancestors), the
 * records written at scheduler_free, and remote.c's destinations (freed
 * only from the loop, forgotten once their back-off is over).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "conf/conf.h"
#include "delivery/delivery.h"
#include "delivery/remote.h"
#include "lib/dirsync.h"
#include "lib/util.h"
#include "queue/envelope.h"
#include "queue/qfile.h"
#include "queue/spool.h"
#include "smtp/parse.h"

struct fixture {
	char dir[64];
	char *spooldir;
	struct event_base *base;
	struct spool *sp;
	struct event *tick;
};

/* ---- helpers ---- */

static void
rm_rf(const char *path)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	char *sub;

	if (lstat(path, &st) == -1)
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlink(path);
		return;
	}
	if ((d = opendir(path)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			sub = xasprintf("%s/%s", path, de->d_name);
			rm_rf(sub);
			free(sub);
		}
		closedir(d);
	}
	rmdir(path);
}

/* Names in dir (NULL-terminated, sorted by nothing); count in *n. */
static char **
list_dir(const char *path, size_t *n)
{
	struct dirent *de;
	char **names = NULL;
	DIR *d;

	*n = 0;
	if ((d = opendir(path)) == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		names = xrealloc(names, (*n + 2) * sizeof(*names));
		names[(*n)++] = xstrdup(de->d_name);
		names[*n] = NULL;
	}
	closedir(d);
	return names;
}

static void
free_names(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Entries in a/b. */
static size_t
count_dir(const char *a, const char *b)
{
	char *path = xasprintf("%s/%s", a, b);
	char **names;
	size_t n;

	names = list_dir(path, &n);
	free_names(names, n);
	free(path);
	return n;
}

static char *
read_whole(const char *path, size_t *len)
{
	struct stat st;
	char *data;
	int fd;

	fd = open(path, O_RDONLY);
	assert_true(fd != -1);
	assert_int_equal(fstat(fd, &st), 0);
	data = xmalloc((size_t)st.st_size + 1);
	assert_int_equal(read(fd, data, (size_t)st.st_size), st.st_size);
	data[st.st_size] = '\0';
	close(fd);
	*len = (size_t)st.st_size;
	return data;
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Run the loop until *flag becomes true or timeout_ms passes. */
static bool
run_until(struct fixture *f, bool (*pred)(void *), void *arg,
    unsigned int timeout_ms)
{
	uint64_t end = time_mono_usec() + (uint64_t)timeout_ms * 1000;

	while (!pred(arg)) {
		if (time_mono_usec() > end)
			return false;
		event_base_loop(f->base, EVLOOP_ONCE);
	}
	return true;
}

struct commit_wait {
	bool done;
	int error;
	char id[QUEUE_ID_MAX];
};

static void
commit_cb(void *arg, uint64_t cookie, const char *id, int error)
{
	struct commit_wait *cw = arg;

	(void)cookie;
	cw->done = true;
	cw->error = error;
	strlcpy(cw->id, id, sizeof(cw->id));
}

static bool
commit_done(void *arg)
{
	return ((struct commit_wait *)arg)->done;
}

/* Commit content with env; the queue id goes to id. */
static void
commit_message(struct fixture *f, const struct envelope *env,
    const char *content, size_t len, size_t split, char *id)
{
	struct spool_writer *w;
	struct commit_wait cw;
	char wid[QUEUE_ID_MAX];

	memset(&cw, 0, sizeof(cw));
	w = spool_writer_new(f->sp, wid);
	assert_non_null(w);
	/* Two writes: the split may fall between CR and LF. */
	if (split > len)
		split = len;
	assert_int_equal(spool_writer_write(w, content, split), 0);
	assert_int_equal(spool_writer_write(w, content + split, len - split),
	    0);
	spool_writer_commit(w, env, commit_cb, &cw, 1);
	assert_true(run_until(f, commit_done, &cw, 10000));
	assert_int_equal(cw.error, 0);
	assert_string_equal(cw.id, wid);
	strlcpy(id, wid, QUEUE_ID_MAX);
}

static void
make_env(struct envelope *env, const char *sender)
{
	envelope_init(env);
	env->sender = xstrdup(sender);
	env->client_addr = xstrdup("127.0.0.1");
	env->helo = xstrdup("client.test");
	env->proto = xstrdup("ESMTP");
	env->arrival = (uint64_t)time(NULL);
}

/* Reference conversion: every CR LF becomes LF, nothing else changes. */
static char *
crlf_to_lf(const char *in, size_t len, size_t *outlen)
{
	char *out = xmalloc(len + 1);
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
			continue;
		out[o++] = in[i];
	}
	*outlen = o;
	return out;
}

/* Every file in new/ must be named ...,S=<its size>. */
static void
check_size_tag(const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);
	const char *s;
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	s = strstr(name, ",S=");
	assert_non_null(s);
	assert_int_equal(strtoull(s + 3, NULL, 10),
	    (unsigned long long)st.st_size);
	free(path);
}

/* ---- fixture ---- */

static int
setup(void **state)
{
	struct timeval tv = { 0, 20000 };
	struct fixture *f;
	const char *err;

	f = xcalloc(1, sizeof(*f));
	strlcpy(f->dir, "/tmp/petrel-test-delivery-XXXXXX", sizeof(f->dir));
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->spooldir = xasprintf("%s/spool", f->dir);
	f->base = event_base_new();
	if (f->base == NULL)
		return -1;
	f->sp = spool_open(f->spooldir, f->base, 2, &err);
	if (f->sp == NULL)
		return -1;
	/* A periodic no-op so that EVLOOP_ONCE returns regularly. */
	f->tick = event_new(f->base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(f->tick, &tv);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	event_free(f->tick);
	spool_close(f->sp);
	event_base_free(f->base);
	rm_rf(f->dir);
	free(f->spooldir);
	free(f);
	return 0;
}

/* ---- maildir_deliver ---- */

/* Content with CR LF across every power-of-two chunk boundary. */
static char *
make_content(size_t *len)
{
	static const char head[] = "Subject: test\r\nFrom: <a@b.test>\r\n\r\n"
				   "bare\rcr and bare\nlf\r\r\n..dots\r\n";
	size_t n = 300000, i, k;
	char *c = xmalloc(n);

	memset(c, 'x', n);
	memcpy(c, head, sizeof(head) - 1);
	for (i = sizeof(head) - 1 + 70; i + 1 < n; i += 72) {
		c[i] = '\r';
		c[i + 1] = '\n';
	}
	for (k = 12; k <= 18; k++) {
		c[(1UL << k) - 1] = '\r';
		c[1UL << k] = '\n';
	}
	c[n - 3] = '\r';
	c[n - 2] = '\n';
	c[n - 1] = '\r';	/* a lone CR at the very end stays */
	*len = n;
	return c;
}

static void
test_maildir_deliver_content(void **state)
{
	struct fixture *f = *state;
	struct envelope env;
	char id[QUEUE_ID_MAX], err[256], *mbox, *newdir, *file, *want, *got;
	char **names;
	size_t clen, wlen, glen, n, expect_len;
	char *content, *expect;
	bool perm = true;

	make_env(&env, "sender@example.test");
	envelope_rcpt_add(&env, "rcpt@example.test", "rcpt@example.test",
	    "/unused", RCPT_KIND_LOCAL, 0, NULL);
	content = make_content(&clen);
	/* Split the writes between a CR and its LF. */
	commit_message(f, &env, content, clen, 4096, id);

	mbox = xasprintf("%s/mail/example.test/rcpt", f->dir);
	assert_int_equal(maildir_deliver(f->sp, id, "sender@example.test",
	    mbox, "mx.example.test", err, sizeof(err), &perm), 0);
	assert_string_equal(err, "");
	assert_false(perm);

	/* One file in new/, nothing in tmp/ or cur/. */
	assert_int_equal(count_dir(mbox, "tmp"), 0);
	assert_int_equal(count_dir(mbox, "cur"), 0);
	newdir = xasprintf("%s/new", mbox);
	names = list_dir(newdir, &n);
	assert_int_equal(n, 1);
	check_size_tag(newdir, names[0]);
	assert_non_null(strstr(names[0], ".mx.example.test,S="));
	assert_true(strchr(names[0], 'M') != NULL &&
	    strchr(names[0], 'P') != NULL && strchr(names[0], 'Q') != NULL);

	/* Exact bytes: Return-Path, then the content with CR LF -> LF. */
	expect = crlf_to_lf(content, clen, &expect_len);
	want = xmalloc(expect_len + 64);
	wlen = (size_t)snprintf(want, 64, "Return-Path: <%s>\n",
	    "sender@example.test");
	memcpy(want + wlen, expect, expect_len);
	wlen += expect_len;
	file = xasprintf("%s/%s", newdir, names[0]);
	got = read_whole(file, &glen);
	assert_int_equal(glen, wlen);
	assert_memory_equal(got, want, wlen);
	/* The chunk boundaries really were crossed by CR LF pairs. */
	assert_true(clen > 131073);

	free(got);
	free(file);
	free(want);
	free(expect);
	free_names(names, n);
	free(newdir);
	free(mbox);
	free(content);
	envelope_free(&env);
}

static void
test_maildir_deliver_twice(void **state)
{
	struct fixture *f = *state;
	struct envelope env;
	char id[QUEUE_ID_MAX], err[256], *mbox, *newdir, *file, *got;
	char **names;
	size_t n, glen, i;
	bool perm;
	const char *msg = "Subject: x\r\n\r\nbody\r\n";

	make_env(&env, "");
	envelope_rcpt_add(&env, "r@example.test", "r@example.test", "/unused",
	    RCPT_KIND_LOCAL, 0, NULL);
	commit_message(f, &env, msg, strlen(msg), 3, id);
	mbox = xasprintf("%s/deep/a/b/c", f->dir);
	/* Host names with '/' and ':' are escaped as Dovecot does. */
	for (i = 0; i < 2; i++)
		assert_int_equal(maildir_deliver(f->sp, id, "", mbox,
		    "odd/host:name", err, sizeof(err), &perm), 0);
	newdir = xasprintf("%s/new", mbox);
	names = list_dir(newdir, &n);
	assert_int_equal(n, 2);
	assert_string_not_equal(names[0], names[1]);
	for (i = 0; i < n; i++) {
		check_size_tag(newdir, names[i]);
		assert_non_null(strstr(names[i], ".odd\\057host\\072name,S="));
		file = xasprintf("%s/%s", newdir, names[i]);
		got = read_whole(file, &glen);
		assert_string_equal(got,
		    "Return-Path: <>\nSubject: x\n\nbody\n");
		free(got);
		free(file);
	}
	assert_int_equal(count_dir(mbox, "tmp"), 0);
	{
		struct stat st;
		char *cur = xasprintf("%s/cur", mbox);

		assert_int_equal(stat(cur, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0700);
		free(cur);
	}
	free_names(names, n);
	free(newdir);
	free(mbox);
	envelope_free(&env);
}

static void
test_maildir_deliver_errors(void **state)
{
	struct fixture *f = *state;
	struct envelope env;
	char id[QUEUE_ID_MAX], err[256], *blocked, *mbox, *longpath;
	bool perm;
	size_t i;
	int fd;
	const char *msg = "Subject: x\r\n\r\nbody\r\n";

	make_env(&env, "s@example.test");
	envelope_rcpt_add(&env, "r@example.test", "r@example.test", "/unused",
	    RCPT_KIND_LOCAL, 0, NULL);
	commit_message(f, &env, msg, strlen(msg), 0, id);

	/* The Maildir path is a regular file: temporary. */
	blocked = xasprintf("%s/blocked", f->dir);
	fd = open(blocked, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd != -1);
	close(fd);
	perm = true;
	assert_int_equal(maildir_deliver(f->sp, id, "s@example.test", blocked,
	    "h", err, sizeof(err), &perm), -1);
	assert_false(perm);
	assert_memory_equal(err, "451 4.3.0 ", 10);

	/* A parent is a regular file: temporary too. */
	mbox = xasprintf("%s/blocked/sub", f->dir);
	assert_int_equal(maildir_deliver(f->sp, id, "s@example.test", mbox,
	    "h", err, sizeof(err), &perm), -1);
	assert_false(perm);
	assert_memory_equal(err, "451 4.3.0 ", 10);
	free(mbox);

	/* An unknown queue id: temporary, and nothing left behind. */
	mbox = xasprintf("%s/mail/ghost", f->dir);
	assert_int_equal(maildir_deliver(f->sp, id + 1, "s@example.test",
	    mbox, "h", err, sizeof(err), &perm), -1);
	assert_false(perm);
	assert_memory_equal(err, "451 4.3.0 ", 10);
	assert_int_equal(count_dir(mbox, "tmp"), 0);
	assert_int_equal(count_dir(mbox, "new"), 0);
	free(mbox);

	/* A path longer than PATH_MAX: permanent. */
	longpath = xmalloc(5000);
	strlcpy(longpath, f->dir, 5000);
	for (i = strlen(longpath); i < 4500; i += 10)
		strlcat(longpath, "/aaaaaaaaa", 5000);
	assert_int_equal(maildir_deliver(f->sp, id, "s@example.test",
	    longpath, "h", err, sizeof(err), &perm), -1);
	assert_true(perm);
	assert_memory_equal(err, "550 5.1.3 ", 10);
	free(longpath);

	free(blocked);
	envelope_free(&env);
}

/* ---- scheduler ---- */

struct sched_wait {
	struct scheduler *s;
	uint64_t delivered, deferred, failed, queued;
};

static bool
stats_reached(void *arg)
{
	struct sched_wait *w = arg;
	struct scheduler_stats st;

	scheduler_get_stats(w->s, &st);
	return st.delivered >= w->delivered && st.deferred >= w->deferred &&
	    st.failed >= w->failed && st.queued <= w->queued;
}

/* The queue file records an attempt for recipient 0 (states written). */
struct state_wait {
	struct fixture *f;
	const char *id;
};

static bool
first_attempt_recorded(void *arg)
{
	struct state_wait *sw = arg;
	struct envelope disk;
	const char *errstr;
	bool r;

	if (spool_read_envelope(sw->f->sp, sw->id, &disk, &errstr) != 0)
		return false;
	r = disk.nrcpts > 0 && disk.rcpts[0].attempts >= 1;
	envelope_free(&disk);
	return r;
}

static bool
queue_file_exists(struct fixture *f, const char *id)
{
	char *path = xasprintf("%s/queue/%s", f->spooldir, id);
	bool r = access(path, F_OK) == 0;

	free(path);
	return r;
}

static bool
spool_file_exists(struct fixture *f, const char *sub, const char *id)
{
	char *path = xasprintf("%s/%s/%s", f->spooldir, sub, id);
	bool r = access(path, F_OK) == 0;

	free(path);
	return r;
}

/* Capture stderr (the log) into a file between begin and end. */
static void
capture_begin(int *saved_r, char *path, size_t size)
{
	int fd;

	snprintf(path, size, "/tmp/petrel-test-delivery-log.%d",
	    (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	fflush(stderr);
	*saved_r = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

static char *
capture_end(int saved, const char *path)
{
	size_t len;
	char *log;

	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	log = read_whole(path, &len);
	unlink(path);
	return log;
}

static struct conf *
sched_conf(uint64_t lifetime)
{
	struct conf *c = xcalloc(1, sizeof(*c));

	c->hostname = xstrdup("mx.example.test");
	c->queue_lifetime = lifetime;
	c->retry_initial = 60;
	c->retry_max = 3600;
	c->bounce_size_limit = 50 * 1024;
	c->max_hops = 100;
	c->destination_concurrency = 20;
	c->max_outbound_connections = 500;
	c->max_messages_per_connection = 100;
	c->client_timeout_connect = 5;
	c->client_timeout_command = 5;
	c->client_timeout_data = 5;
	return c;
}

/*
 * Reports go to a Maildir per address under test_hooks_root, as the
 * daemon's resolver would send them to a local user; "nobody@..."
 * cannot receive mail.
 */
static char test_hooks_root[512];

static int
test_resolve(void *arg, const char *addr, struct envelope *env)
{
	char *mbox;

	(void)arg;
	if (strncmp(addr, "nobody@", 7) == 0 || test_hooks_root[0] == '\0')
		return -1;
	mbox = xasprintf("%s/%s", test_hooks_root, addr);
	envelope_rcpt_add(env, addr, addr, mbox, RCPT_KIND_LOCAL, 0, NULL);
	free(mbox);
	return 0;
}

static const struct scheduler_hooks test_hooks = { test_resolve, NULL };

static void
sched_conf_free(struct conf *c)
{
	free(c->hostname);
	free(c);
}

static void
test_scheduler_two_local(void **state)
{
	struct fixture *f = *state;
	struct scheduler_stats st;
	struct sched_wait w;
	struct envelope env;
	struct conf *c;
	char id[QUEUE_ID_MAX], *m1, *m2, *file, *got, **names;
	size_t n, glen;
	const char *msg = "Subject: two\r\n\r\nhello\r\n";

	c = sched_conf(5 * 86400);
	m1 = xasprintf("%s/mail/example.test/one", f->dir);
	m2 = xasprintf("%s/mail/example.test/two", f->dir);
	make_env(&env, "from@example.test");
	envelope_rcpt_add(&env, "one@example.test", "one@example.test", m1,
	    RCPT_KIND_LOCAL, 0, NULL);
	envelope_rcpt_add(&env, "two@example.test", "two@example.test", m2,
	    RCPT_KIND_LOCAL, 0, NULL);
	commit_message(f, &env, msg, strlen(msg), 5, id);
	assert_true(queue_file_exists(f, id));

	memset(&w, 0, sizeof(w));
	w.s = scheduler_new(f->base, f->sp, c, 2, NULL, &test_hooks);
	scheduler_add(w.s, id, &env);
	scheduler_get_stats(w.s, &st);
	assert_int_equal(st.queued, 1);
	w.delivered = 2;
	w.queued = 0;
	assert_true(run_until(f, stats_reached, &w, 10000));
	scheduler_get_stats(w.s, &st);
	assert_int_equal(st.delivered, 2);
	assert_int_equal(st.deferred, 0);
	assert_int_equal(st.failed, 0);
	assert_false(queue_file_exists(f, id));

	file = xasprintf("%s/new", m2);
	names = list_dir(file, &n);
	assert_int_equal(n, 1);
	free(file);
	file = xasprintf("%s/new/%s", m2, names[0]);
	got = read_whole(file, &glen);
	assert_string_equal(got,
	    "Return-Path: <from@example.test>\nSubject: two\n\nhello\n");
	assert_int_equal(count_dir(m1, "new"), 1);
	free(got);
	free(file);
	free_names(names, n);

	scheduler_free(w.s);
	sched_conf_free(c);
	free(m1);
	free(m2);
	envelope_free(&env);
}

static void
test_scheduler_retry(void **state)
{
	struct fixture *f = *state;
	struct scheduler_stats st;
	struct sched_wait w;
	struct envelope env, disk;
	struct conf *c;
	char id[QUEUE_ID_MAX], *m1, *m2;
	const char *errstr;
	uint64_t t0;
	int fd;
	const char *msg = "Subject: retry\r\n\r\nagain\r\n";

	c = sched_conf(5 * 86400);
	c->retry_initial = 1;
	m1 = xasprintf("%s/blocked-mbox", f->dir);
	m2 = xasprintf("%s/mail/fine", f->dir);
	fd = open(m1, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd != -1);
	close(fd);
	make_env(&env, "from@example.test");
	envelope_rcpt_add(&env, "a@example.test", "a@example.test", m1,
	    RCPT_KIND_LOCAL, 0, NULL);
	envelope_rcpt_add(&env, "b@example.test", "b@example.test", m2,
	    RCPT_KIND_LOCAL, 0, NULL);
	commit_message(f, &env, msg, strlen(msg), 1, id);

	memset(&w, 0, sizeof(w));
	w.s = scheduler_new(f->base, f->sp, c, 1, NULL, &test_hooks);
	t0 = (uint64_t)time(NULL);
	scheduler_add(w.s, id, &env);
	w.delivered = 1;
	w.deferred = 1;
	w.queued = 1;
	assert_true(run_until(f, stats_reached, &w, 10000));
	{
		struct state_wait sw = { f, id };

		assert_true(run_until(f, first_attempt_recorded, &sw, 10000));
	}

	/* The states are in the queue file before the retry. */
	assert_true(queue_file_exists(f, id));
	assert_int_equal(spool_read_envelope(f->sp, id, &disk, &errstr), 0);
	assert_int_equal(disk.nrcpts, 2);
	assert_int_equal(disk.rcpts[0].status, RCPT_STATUS_PENDING);
	assert_int_equal(disk.rcpts[0].attempts, 1);
	assert_true(disk.rcpts[0].next_attempt >= t0 + 1);
	assert_true(disk.rcpts[0].next_attempt <= (uint64_t)time(NULL) + 1);
	assert_memory_equal(disk.rcpts[0].last_reply, "451 4.3.0 ", 10);
	assert_int_equal(disk.rcpts[1].status, RCPT_STATUS_DELIVERED);
	assert_int_equal(disk.rcpts[1].attempts, 1);
	envelope_free(&disk);
	assert_int_equal(count_dir(m2, "new"), 1);

	/* Unblock: the retry (after ~1 s) delivers, and only to a. */
	assert_int_equal(unlink(m1), 0);
	w.delivered = 2;
	w.queued = 0;
	assert_true(run_until(f, stats_reached, &w, 15000));
	scheduler_get_stats(w.s, &st);
	assert_int_equal(st.delivered, 2);
	assert_true(st.deferred >= 1);
	assert_int_equal(st.failed, 0);
	assert_false(queue_file_exists(f, id));
	assert_int_equal(count_dir(m1, "new"), 1);
	assert_int_equal(count_dir(m2, "new"), 1);

	scheduler_free(w.s);
	sched_conf_free(c);
	free(m1);
	free(m2);
	envelope_free(&env);
}

static void
test_scheduler_remote(void **state)
{
	struct fixture *f = *state;
	struct scheduler_stats st;
	struct sched_wait w;
	struct envelope env, disk;
	struct conf *c;
	char id[QUEUE_ID_MAX], id2[QUEUE_ID_MAX], *bounces;
	const char *errstr;
	const char *msg = "Subject: fwd\r\n\r\nout\r\n";

	/* No resolver: the remote recipient waits, deferred. */
	c = sched_conf(5 * 86400);
	make_env(&env, "from@example.test");
	envelope_rcpt_add(&env, "x@example.test", "x@remote.test", NULL,
	    RCPT_KIND_REMOTE, 0, NULL);
	commit_message(f, &env, msg, strlen(msg), 2, id);
	memset(&w, 0, sizeof(w));
	w.s = scheduler_new(f->base, f->sp, c, 1, NULL, &test_hooks);
	scheduler_add(w.s, id, &env);
	w.deferred = 1;
	w.queued = 1;
	assert_true(run_until(f, stats_reached, &w, 10000));
	{
		struct state_wait sw = { f, id };

		assert_true(run_until(f, first_attempt_recorded, &sw, 10000));
	}
	assert_true(queue_file_exists(f, id));
	assert_int_equal(spool_read_envelope(f->sp, id, &disk, &errstr), 0);
	assert_int_equal(disk.rcpts[0].status, RCPT_STATUS_PENDING);
	assert_int_equal(disk.rcpts[0].attempts, 1);
	assert_string_equal(disk.rcpts[0].last_reply,
	    "451 4.4.3 no DNS resolver configured");
	envelope_free(&disk);

	/*
	 * Past the lifetime: FAILED, and the sender gets a bounce (here a
	 * Maildir under the test's root); the queue file goes once the
	 * bounce is queued.
	 */
	bounces = xasprintf("%s/bounces", f->dir);
	strlcpy(test_hooks_root, bounces, sizeof(test_hooks_root));
	c->queue_lifetime = 0;
	make_env(&disk, "from@example.test");
	envelope_rcpt_add(&disk, "y@example.test", "y@remote.test", NULL,
	    RCPT_KIND_REMOTE, 0, NULL);
	commit_message(f, &disk, msg, strlen(msg), 2, id2);
	scheduler_add(w.s, id2, &disk);
	w.failed = 1;
	w.delivered = 1;	/* the bounce, into from@'s Maildir */
	w.queued = 1;		/* the first message is still waiting */
	assert_true(run_until(f, stats_reached, &w, 10000));
	scheduler_get_stats(w.s, &st);
	assert_int_equal(st.failed, 1);
	assert_int_equal(st.delivered, 1);
	assert_false(queue_file_exists(f, id2));
	assert_false(spool_file_exists(f, "failed", id2));
	assert_true(queue_file_exists(f, id));
	envelope_free(&disk);
	{
		char *mb = xasprintf("%s/from@example.test", bounces);
		char **names, *file, *got;
		size_t n, len;

		assert_int_equal(count_dir(mb, "new"), 1);
		file = xasprintf("%s/new", mb);
		names = list_dir(file, &n);
		free(file);
		file = xasprintf("%s/new/%s", mb, names[0]);
		got = read_whole(file, &len);
		/* A report about y@remote.test, from MAILER-DAEMON, with
		 * the reason and the original headers. */
		assert_non_null(strstr(got, "Return-Path: <>"));
		assert_non_null(strstr(got, "MAILER-DAEMON@mx.example.test"));
		assert_non_null(strstr(got, "report-type=delivery-status"));
		assert_non_null(strstr(got,
		    "Final-Recipient: rfc822; y@remote.test"));
		assert_non_null(strstr(got, "Action: failed"));
		assert_non_null(strstr(got, "451 4.4.3 no DNS resolver"));
		assert_non_null(strstr(got, "Subject: fwd"));
		free(got);
		free(file);
		free_names(names, n);
		free(mb);
	}
	test_hooks_root[0] = '\0';

	/* Freeing with a message queued leaves its file for next time. */
	scheduler_free(w.s);
	assert_true(queue_file_exists(f, id));
	sched_conf_free(c);
	free(bounces);
	envelope_free(&env);
}

/* scheduler_free right after an add waits for the job in flight. */
static void
test_scheduler_free_busy(void **state)
{
	struct fixture *f = *state;
	struct scheduler *s;
	struct envelope env;
	struct conf *c;
	char id[QUEUE_ID_MAX], *m;
	size_t n;
	const char *msg = "Subject: quick\r\n\r\nx\r\n";

	c = sched_conf(5 * 86400);
	m = xasprintf("%s/mail/quick", f->dir);
	make_env(&env, "");
	envelope_rcpt_add(&env, "q@example.test", "q@example.test", m,
	    RCPT_KIND_LOCAL, 0, NULL);
	commit_message(f, &env, msg, strlen(msg), 0, id);
	s = scheduler_new(f->base, f->sp, c, 3, NULL, &test_hooks);
	scheduler_add(s, id, &env);
	scheduler_free(s);
	/* Either delivered (and the file gone) or not started (file kept):
	 * never both lost. */
	n = count_dir(m, "new");
	assert_true(n == 1 || queue_file_exists(f, id));
	assert_true(n <= 1);
	sched_conf_free(c);
	free(m);
	envelope_free(&env);
}

/*
 * scheduler_free with work queued behind a busy worker: a message whose
 * delivery is done but whose state write (or unlink) never started must
 * still be on record, or the next start delivers it a second time. Every
 * message is either in its Maildir and recorded (file gone, or DELIVERED
 * on disk), or in neither.
 */
static void
test_scheduler_free_records_results(void **state)
{
	struct fixture *f = *state;
	struct sched_wait w;
	struct envelope env, disk;
	struct conf *c;
	char id[40][QUEUE_ID_MAX], *m[40];
	const char *errstr;
	size_t i, n = 40, unrecorded = 0, delivered = 0;
	const char *msg = "Subject: many\r\n\r\nx\r\n";

	c = sched_conf(5 * 86400);
	for (i = 0; i < n; i++) {
		m[i] = xasprintf("%s/mail/many%zu", f->dir, i);
		make_env(&env, "from@example.test");
		envelope_rcpt_add(&env, "r@example.test", "r@example.test",
		    m[i], RCPT_KIND_LOCAL, 0, NULL);
		commit_message(f, &env, msg, strlen(msg), 0, id[i]);
		envelope_free(&env);
	}
	memset(&w, 0, sizeof(w));
	w.s = scheduler_new(f->base, f->sp, c, 1, NULL, &test_hooks);
	for (i = 0; i < n; i++) {
		assert_int_equal(spool_read_envelope(f->sp, id[i], &env,
		    &errstr), 0);
		scheduler_add(w.s, id[i], &env);
		envelope_free(&env);
	}
	w.delivered = n / 2;
	w.queued = n;
	assert_true(run_until(f, stats_reached, &w, 10000));
	scheduler_free(w.s);
	for (i = 0; i < n; i++) {
		if (count_dir(m[i], "new") == 0)
			continue;
		delivered++;
		if (!queue_file_exists(f, id[i]))
			continue;
		assert_int_equal(spool_read_envelope(f->sp, id[i], &disk,
		    &errstr), 0);
		if (disk.rcpts[0].status != RCPT_STATUS_DELIVERED)
			unrecorded++;
		envelope_free(&disk);
	}
	if (unrecorded > 0)
		fail_msg("%zu of %zu delivered messages still PENDING in "
		    "their queue files", unrecorded, delivered);
	assert_true(delivered >= n / 2);
	for (i = 0; i < n; i++)
		free(m[i]);
	sched_conf_free(c);
}

/*
 * A message past queue_lifetime: one recipient delivered, the other
 * failing. The failure is bounced to the sender; a bounce nobody can
 * receive (the sender "nobody@") is dropped with a log line; a message
 * from <> is never bounced. In every case the queue file goes once
 * nothing is owed, and failed/ stays empty.
 */
static void
test_scheduler_bounce(void **state)
{
	struct fixture *f = *state;
	struct sched_wait w;
	struct envelope env, disk;
	struct conf *c;
	char id[QUEUE_ID_MAX], *m1, *m2, logpath[128], want[256], *log;
	char *bounces, *mb;
	bool ok;
	int fd, saved;
	const char *msg = "Subject: old\r\n\r\nstale\r\n";

	c = sched_conf(5 * 86400);
	m1 = xasprintf("%s/blocked-mbox", f->dir);
	m2 = xasprintf("%s/mail/fine", f->dir);
	bounces = xasprintf("%s/bounces2", f->dir);
	strlcpy(test_hooks_root, bounces, sizeof(test_hooks_root));
	fd = open(m1, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd != -1);
	close(fd);
	make_env(&env, "from@example.test");
	env.arrival = (uint64_t)time(NULL) - 6 * 86400;
	envelope_rcpt_add(&env, "a@example.test", "a@example.test", m1,
	    RCPT_KIND_LOCAL, 0, NULL);
	envelope_rcpt_add(&env, "b@example.test", "b@example.test", m2,
	    RCPT_KIND_LOCAL, 0, NULL);
	commit_message(f, &env, msg, strlen(msg), 0, id);

	memset(&w, 0, sizeof(w));
	w.s = scheduler_new(f->base, f->sp, c, 1, NULL, &test_hooks);
	scheduler_add(w.s, id, &env);
	w.delivered = 2;	/* b, and the bounce to from@ */
	w.failed = 1;
	w.queued = 0;
	assert_true(run_until(f, stats_reached, &w, 10000));
	scheduler_free(w.s);
	assert_false(queue_file_exists(f, id));
	assert_false(spool_file_exists(f, "failed", id));
	assert_int_equal(count_dir(m2, "new"), 1);
	mb = xasprintf("%s/from@example.test", bounces);
	assert_int_equal(count_dir(mb, "new"), 1);
	free(mb);

	/* The sender cannot receive the bounce: dropped, logged. */
	free(env.sender);
	env.sender = xstrdup("nobody@example.test");
	commit_message(f, &env, msg, strlen(msg), 0, id);
	capture_begin(&saved, logpath, sizeof(logpath));
	w.s = scheduler_new(f->base, f->sp, c, 1, NULL, &test_hooks);
	scheduler_add(w.s, id, &env);
	w.delivered = 1;
	w.failed = 1;
	w.queued = 0;
	/* No assertion while stderr is captured. */
	ok = run_until(f, stats_reached, &w, 10000);
	scheduler_free(w.s);
	log = capture_end(saved, logpath);
	if (!ok)
		fail_msg("not done in 10 s:\n%s", log);
	snprintf(want, sizeof(want), "delivery: report dropped "
	    "queue=%s to=<nobody@example.test>", id);
	if (strstr(log, want) == NULL)
		fail_msg("log lacks \"%s\":\n%s", want, log);
	free(log);
	assert_false(queue_file_exists(f, id));

	/* From <>: never a report about a report (RFC 5321 6.2). */
	free(env.sender);
	env.sender = xstrdup("");
	commit_message(f, &env, msg, strlen(msg), 0, id);
	capture_begin(&saved, logpath, sizeof(logpath));
	w.s = scheduler_new(f->base, f->sp, c, 1, NULL, &test_hooks);
	scheduler_add(w.s, id, &env);
	ok = run_until(f, stats_reached, &w, 10000);
	scheduler_free(w.s);
	log = capture_end(saved, logpath);
	if (!ok)
		fail_msg("not done in 10 s:\n%s", log);
	if (strstr(log, "status=dropped (undeliverable mail from <>") == NULL)
		fail_msg("log lacks the dropped line:\n%s", log);
	free(log);
	assert_false(queue_file_exists(f, id));

	/*
	 * A file left in queue/ with every state final and the bounce
	 * flag set (a crash before the unlink) is removed at the next
	 * start, with no second bounce.
	 */
	env.rcpts[0].status = RCPT_STATUS_FAILED;
	env.rcpts[0].flags = RCPT_FLAG_BOUNCED;
	env.rcpts[1].status = RCPT_STATUS_DELIVERED;
	free(env.sender);
	env.sender = xstrdup("from@example.test");
	commit_message(f, &env, msg, strlen(msg), 0, id);
	w.s = scheduler_new(f->base, f->sp, c, 1, NULL, &test_hooks);
	scheduler_add(w.s, id, &env);
	w.delivered = 0;
	w.failed = 0;
	w.queued = 0;
	assert_true(run_until(f, stats_reached, &w, 10000));
	scheduler_free(w.s);
	assert_false(queue_file_exists(f, id));
	mb = xasprintf("%s/from@example.test", bounces);
	assert_int_equal(count_dir(mb, "new"), 1);
	free(mb);
	/*
	 * Failed but not flagged (a crash after the state write, before
	 * the report was queued): the bounce is sent at the next start.
	 */
	env.rcpts[0].flags = 0;
	commit_message(f, &env, msg, strlen(msg), 0, id);
	w.s = scheduler_new(f->base, f->sp, c, 1, NULL, &test_hooks);
	scheduler_add(w.s, id, &env);
	w.delivered = 1;
	assert_true(run_until(f, stats_reached, &w, 10000));
	scheduler_free(w.s);
	assert_false(queue_file_exists(f, id));
	mb = xasprintf("%s/from@example.test", bounces);
	assert_int_equal(count_dir(mb, "new"), 2);
	free(mb);
	(void)disk;

	test_hooks_root[0] = '\0';
	sched_conf_free(c);
	free(m1);
	free(m2);
	free(bounces);
	envelope_free(&env);
}

/*
 * A crash after the states were written, before the success notice was
 * queued (NOTIFY=SUCCESS): the file says DELIVERED without the notified
 * flag. The notice was owed only in memory, so the next start removed
 * the file and the sender never heard. It is sent at the next start: a
 * local delivery gets "delivered", a remote one "relayed" (a DSN-capable
 * next hop would have set the flag at once: it reports itself).
 */
static void
test_scheduler_success_notice_after_crash(void **state)
{
	struct fixture *f = *state;
	struct sched_wait w;
	struct envelope env;
	struct conf *c;
	char id[QUEUE_ID_MAX], *bounces, *mb, **names, *file, *got;
	size_t n, len, i;
	const char *msg = "Subject: yay\r\n\r\nsent\r\n";

	c = sched_conf(5 * 86400);
	bounces = xasprintf("%s/notices", f->dir);
	strlcpy(test_hooks_root, bounces, sizeof(test_hooks_root));
	mb = xasprintf("%s/from@example.test", bounces);
	make_env(&env, "from@example.test");
	envelope_rcpt_add(&env, "l@example.test", "l@example.test",
	    "/nonexistent/never-written", RCPT_KIND_LOCAL,
	    SMTP_NOTIFY_SUCCESS, NULL);
	envelope_rcpt_add(&env, "r@remote.test", "r@remote.test", NULL,
	    RCPT_KIND_REMOTE, SMTP_NOTIFY_SUCCESS, NULL);
	/* Delivered to a peer with DSN: it reports; nothing from us. */
	envelope_rcpt_add(&env, "d@remote.test", "d@remote.test", NULL,
	    RCPT_KIND_REMOTE, SMTP_NOTIFY_SUCCESS, NULL);
	for (i = 0; i < env.nrcpts; i++) {
		env.rcpts[i].status = RCPT_STATUS_DELIVERED;
		env.rcpts[i].attempts = 1;
		strlcpy(env.rcpts[i].last_reply, "250 2.0.0 ok",
		    sizeof(env.rcpts[i].last_reply));
	}
	env.rcpts[2].flags = RCPT_FLAG_NOTIFIED;
	commit_message(f, &env, msg, strlen(msg), 0, id);

	memset(&w, 0, sizeof(w));
	w.s = scheduler_new(f->base, f->sp, c, 1, NULL, &test_hooks);
	scheduler_add(w.s, id, &env);
	w.delivered = 2;	/* the notices, into from@'s Maildir */
	w.queued = 0;
	assert_true(run_until(f, stats_reached, &w, 10000));
	scheduler_free(w.s);
	assert_false(queue_file_exists(f, id));
	/* One report per action: "delivered" and "relayed". */
	assert_int_equal(count_dir(mb, "new"), 2);
	file = xasprintf("%s/new", mb);
	names = list_dir(file, &n);
	free(file);
	for (i = 0; i < n; i++) {
		file = xasprintf("%s/new/%s", mb, names[i]);
		got = read_whole(file, &len);
		if (strstr(got, "Action: delivered") != NULL)
			assert_non_null(strstr(got,
			    "Final-Recipient: rfc822; l@example.test"));
		else {
			assert_non_null(strstr(got, "Action: relayed"));
			assert_non_null(strstr(got,
			    "Final-Recipient: rfc822; r@remote.test"));
		}
		assert_null(strstr(got, "d@remote.test"));
		free(got);
		free(file);
	}
	free_names(names, n);

	test_hooks_root[0] = '\0';
	free(mb);
	free(bounces);
	sched_conf_free(c);
	envelope_free(&env);
}

/* Occurrences of needle in hay. */
static size_t
count_str(const char *hay, const char *needle)
{
	size_t n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

/*
 * The content cannot be read before a remote delivery (here the queue
 * file is gone; EIO or EMFILE do the same): the round ended with the
 * recipient still due, the timer fired at once, and the scan failed
 * again, in a loop that logged an error each time without end. The
 * recipients due are deferred like any failed attempt.
 */
static void
test_scheduler_scan_failure_backs_off(void **state)
{
	struct fixture *f = *state;
	struct sched_wait w;
	struct envelope env;
	struct conf *c;
	char id[QUEUE_ID_MAX], logpath[128], want[128], *log, *path;
	uint64_t end;
	size_t scans;
	int saved;
	const char *msg = "Subject: gone\r\n\r\nx\r\n";

	c = sched_conf(5 * 86400);
	make_env(&env, "from@example.test");
	envelope_rcpt_add(&env, "x@remote.test", "x@remote.test", NULL,
	    RCPT_KIND_REMOTE, 0, NULL);
	commit_message(f, &env, msg, strlen(msg), 0, id);
	path = xasprintf("%s/queue/%s", f->spooldir, id);
	assert_int_equal(unlink(path), 0);

	memset(&w, 0, sizeof(w));
	capture_begin(&saved, logpath, sizeof(logpath));
	w.s = scheduler_new(f->base, f->sp, c, 1, NULL, &test_hooks);
	scheduler_add(w.s, id, &env);
	end = time_mono_usec() + 1000 * 1000;
	while (time_mono_usec() < end)
		event_base_loop(f->base, EVLOOP_ONCE);
	scheduler_free(w.s);
	log = capture_end(saved, logpath);
	snprintf(want, sizeof(want), "error: delivery: error queue=%s "
	    "cannot read queue file", id);
	scans = count_str(log, want);
	if (scans != 1)
		fail_msg("the scan ran %zu times in 1 s (retry_initial 60 s):"
		    "\n%.2000s", scans, log);
	if (strstr(log, "to=<x@remote.test> relay=none") == NULL ||
	    strstr(log, "status=deferred (451 4.3.0 cannot read "
	    "queue file: No such file or directory)") == NULL)
		fail_msg("no deferral logged:\n%.2000s", log);
	free(log);
	free(path);
	sched_conf_free(c);
	envelope_free(&env);
}

/*
 * Content gone bad, and corrupt/ cannot take the file (here the
 * directory is gone): the round ended with the recipient still due and
 * started again at once, reading and failing to move the file in a loop
 * that logged an error each time. The recipient is deferred instead.
 */
static void
test_scheduler_quarantine_failure_backs_off(void **state)
{
	struct fixture *f = *state;
	struct sched_wait w;
	struct envelope env;
	struct conf *c;
	char id[QUEUE_ID_MAX], logpath[128], want[128], *log, *path, *data;
	char *p, *corrupt;
	uint64_t end;
	size_t len, tries;
	int fd, saved;
	const char *msg = "Subject: rot\r\n\r\nbit rot here\r\n";

	c = sched_conf(5 * 86400);
	make_env(&env, "from@example.test");
	envelope_rcpt_add(&env, "x@remote.test", "x@remote.test", NULL,
	    RCPT_KIND_REMOTE, 0, NULL);
	commit_message(f, &env, msg, strlen(msg), 0, id);
	path = xasprintf("%s/queue/%s", f->spooldir, id);
	data = read_whole(path, &len);
	p = memmem(data, len, "bit rot", 7);
	assert_non_null(p);
	fd = open(path, O_WRONLY);
	assert_true(fd != -1);
	assert_int_equal(pwrite(fd, "B", 1, (off_t)(p - data)), 1);
	close(fd);
	free(data);
	corrupt = xasprintf("%s/corrupt", f->spooldir);
	rm_rf(corrupt);

	memset(&w, 0, sizeof(w));
	capture_begin(&saved, logpath, sizeof(logpath));
	w.s = scheduler_new(f->base, f->sp, c, 1, NULL, &test_hooks);
	scheduler_add(w.s, id, &env);
	end = time_mono_usec() + 1000 * 1000;
	while (time_mono_usec() < end)
		event_base_loop(f->base, EVLOOP_ONCE);
	scheduler_free(w.s);
	log = capture_end(saved, logpath);
	snprintf(want, sizeof(want), "delivery: error queue=%s queue file "
	    "is corrupt and stays in queue/", id);
	tries = count_str(log, want);
	if (tries != 1)
		fail_msg("tried %zu times in 1 s (retry_initial 60 s):"
		    "\n%.2000s", tries, log);
	assert_true(queue_file_exists(f, id));
	free(log);
	free(corrupt);
	free(path);
	sched_conf_free(c);
	envelope_free(&env);
}

/* Content that went bad after start-up: corrupt/ at once, no retries. */
static void
test_scheduler_corrupt_content(void **state)
{
	struct fixture *f = *state;
	struct scheduler_stats st;
	struct sched_wait w;
	struct envelope env;
	struct conf *c;
	char id[QUEUE_ID_MAX], *m, *path, *data, logpath[128], *log, *p;
	char want[256];
	size_t len;
	bool ok;
	int fd, saved;
	const char *msg = "Subject: rot\r\n\r\nbit rot here\r\n";

	c = sched_conf(5 * 86400);
	m = xasprintf("%s/mail/rot", f->dir);
	make_env(&env, "from@example.test");
	envelope_rcpt_add(&env, "r@example.test", "r@example.test", m,
	    RCPT_KIND_LOCAL, 0, NULL);
	commit_message(f, &env, msg, strlen(msg), 0, id);
	path = xasprintf("%s/queue/%s", f->spooldir, id);
	data = read_whole(path, &len);
	p = memmem(data, len, "bit rot", 7);
	assert_non_null(p);
	fd = open(path, O_WRONLY);
	assert_true(fd != -1);
	assert_int_equal(pwrite(fd, "B", 1, (off_t)(p - data)), 1);
	close(fd);
	free(data);

	memset(&w, 0, sizeof(w));
	capture_begin(&saved, logpath, sizeof(logpath));
	w.s = scheduler_new(f->base, f->sp, c, 1, NULL, &test_hooks);
	scheduler_add(w.s, id, &env);
	w.queued = 0;
	/* The retry base is 60 s: only a quarantine empties it this fast. */
	ok = run_until(f, stats_reached, &w, 10000);
	scheduler_get_stats(w.s, &st);
	scheduler_free(w.s);
	log = capture_end(saved, logpath);
	if (!ok)
		fail_msg("still queued after 10 s:\n%s", log);
	assert_int_equal(st.delivered, 0);
	assert_int_equal(st.failed, 0);
	assert_false(queue_file_exists(f, id));
	assert_true(spool_file_exists(f, "corrupt", id));
	assert_int_equal(count_dir(m, "new"), 0);
	assert_int_equal(count_dir(m, "tmp"), 0);
	snprintf(want, sizeof(want), "spool: corrupt queue=%s moved "
	    "to corrupt/: ", id);
	if (strstr(log, want) == NULL)
		fail_msg("log lacks \"%s\":\n%s", want, log);
	free(log);
	free(path);
	sched_conf_free(c);
	free(m);
	envelope_free(&env);
}

/* Missing strings in memory must not crash a worker (defence in depth). */
static void
test_null_fields_no_crash(void **state)
{
	struct fixture *f = *state;
	struct sched_wait w;
	struct envelope env, mem;
	struct conf *c;
	char id[QUEUE_ID_MAX], err[256], *m;
	bool perm = true;
	const char *msg = "Subject: n\r\n\r\nx\r\n";

	c = sched_conf(5 * 86400);
	m = xasprintf("%s/mail/null", f->dir);
	make_env(&env, "from@example.test");
	envelope_rcpt_add(&env, "r@example.test", "r@example.test", m,
	    RCPT_KIND_LOCAL, 0, NULL);
	commit_message(f, &env, msg, strlen(msg), 0, id);

	assert_int_equal(maildir_deliver(f->sp, id, NULL, m, "h", err,
	    sizeof(err), &perm), -1);
	assert_false(perm);
	assert_memory_equal(err, "451 4.3.0 ", 10);
	assert_int_equal(count_dir(m, "new"), 0);

	envelope_copy(&mem, &env);
	free(mem.sender);
	mem.sender = NULL;
	free(mem.rcpts[0].addr);
	mem.rcpts[0].addr = NULL;
	memset(&w, 0, sizeof(w));
	w.s = scheduler_new(f->base, f->sp, c, 1, NULL, &test_hooks);
	scheduler_add(w.s, id, &mem);
	w.deferred = 1;
	w.queued = 1;
	assert_true(run_until(f, stats_reached, &w, 10000));
	scheduler_free(w.s);
	assert_true(queue_file_exists(f, id));
	envelope_free(&mem);
	sched_conf_free(c);
	free(m);
	envelope_free(&env);
}

/* ---- remote.c ---- */

struct rbatch {
	struct remote_batch b;
	struct envelope env;
	bool done;
	bool spin;		/* done waits for the next second */
};

static void
rbatch_done(struct remote_batch *b, void *arg)
{
	struct rbatch *rb = arg;
	time_t t0 = time(NULL);

	(void)b;
	rb->done = true;
	/* A slow callback across a second boundary: the back-off the
	 * destination just took may be over when it returns. */
	while (rb->spin && time(NULL) == t0)
		;
}

static bool
rbatch_is_done(void *arg)
{
	return ((struct rbatch *)arg)->done;
}

/* One remote recipient at rcpt, submitted to r. */
static void
rbatch_submit(struct remote *r, struct rbatch *rb, const char *rcpt,
    bool spin)
{
	memset(rb, 0, sizeof(*rb));
	rb->spin = spin;
	make_env(&rb->env, "from@example.test");
	envelope_rcpt_add(&rb->env, rcpt, rcpt, NULL, RCPT_KIND_REMOTE, 0,
	    NULL);
	strlcpy(rb->b.id, "TESTID", sizeof(rb->b.id));
	rb->b.env = &rb->env;
	rb->b.idx = xcalloc(1, sizeof(*rb->b.idx));
	rb->b.n = 1;
	rb->b.res = xcalloc(1, sizeof(*rb->b.res));
	rb->b.done = rbatch_done;
	rb->b.arg = rb;
	remote_submit(r, &rb->b);
}

static void
rbatch_free(struct rbatch *rb)
{
	free(rb->b.idx);
	free(rb->b.res);
	envelope_free(&rb->env);
}

/*
 * A destination waits for a connection slot (max_outbound_connections
 * 1, held by an LMTP connection that fails); when the slot frees, it
 * finds no resolver and backs off, and its batch's done callback returns
 * after the back-off is over (retry_initial 1 s, a second boundary
 * crossed). remote.c freed the destination inside that callback and
 * went on pumping it: a use after free (ASan).
 */
static void
test_remote_backoff_over_in_callback(void **state)
{
	struct fixture *f = *state;
	struct conf_route route;
	struct remote *r;
	struct rbatch a, b;
	struct conf *c;

	c = sched_conf(5 * 86400);
	c->retry_initial = 1;
	c->retry_max = 1;
	c->max_outbound_connections = 1;
	memset(&route, 0, sizeof(route));
	route.domain = xstrdup("lmtp.test");
	route.kind = CONF_ROUTE_LMTP_UNIX;
	route.path = xasprintf("%s/no-such-socket", f->dir);
	c->routes = &route;
	c->nroutes = 1;
	r = remote_new(f->base, f->sp, c, NULL);
	rbatch_submit(r, &a, "x@lmtp.test", false);
	rbatch_submit(r, &b, "y@remote.test", true);
	assert_false(a.done);
	assert_false(b.done);
	assert_true(run_until(f, rbatch_is_done, &b, 5000));
	assert_true(a.done);
	assert_int_equal(a.b.res[0].status, REMOTE_TEMP);
	assert_int_equal(b.b.res[0].status, REMOTE_TEMP);
	assert_memory_equal(b.b.res[0].reply, "451 4.4.3 ", 10);
	rbatch_free(&a);
	rbatch_free(&b);
	remote_free(r);
	c->routes = NULL;
	c->nroutes = 0;
	conf_route_clear(&route);
	sched_conf_free(c);
}

/*
 * Destinations that backed off are kept while the back-off lasts, and
 * forgotten after it: a long-running daemon talking to many failing
 * domains must not keep every one for ever.
 */
static void
test_remote_dests_forgotten(void **state)
{
	struct fixture *f = *state;
	struct remote *r;
	struct rbatch rb;
	struct conf *c;
	char addr[64];
	uint64_t end;
	size_t i;

	c = sched_conf(5 * 86400);
	c->retry_initial = 1;
	c->retry_max = 1;
	r = remote_new(f->base, f->sp, c, NULL);
	for (i = 0; i < 50; i++) {
		snprintf(addr, sizeof(addr), "x@d%zu.test", i);
		rbatch_submit(r, &rb, addr, false);
		assert_true(rb.done);
		assert_int_equal(rb.b.res[0].status, REMOTE_TEMP);
		rbatch_free(&rb);
	}
	assert_int_equal(remote_ndests(r), 50);
	/* Past the back-off, the next submission sweeps them. */
	end = time_mono_usec() + 2100 * 1000;
	while (time_mono_usec() < end)
		event_base_loop(f->base, EVLOOP_ONCE);
	rbatch_submit(r, &rb, "x@last.test", false);
	assert_true(rb.done);
	rbatch_free(&rb);
	for (i = 0; i < 10; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	if (remote_ndests(r) > 1)
		fail_msg("got %zu destinations, want at most 1",
		    remote_ndests(r));
	remote_free(r);
	sched_conf_free(c);
}

/* Directories in path up to the root ("/a/b" has 3: /a/b, /a, /). */
static uint64_t
count_levels(const char *path)
{
	uint64_t n = 1;
	const char *p;

	for (p = path + 1; *p != '\0'; p++)
		if (*p == '/')
			n++;
	return n + 1;
}

/*
 * A Maildir that already exists (another thread made it, or a crash came
 * between its mkdir and the parent fsync): the first delivery of this
 * process still fsyncs it and its ancestors; later ones only new/.
 */
static void
test_maildir_ancestors_synced(void **state)
{
	struct fixture *f = *state;
	struct envelope env;
	char id[QUEUE_ID_MAX], err[256], *m, *sub;
	const char *subs[] = { "", "/tmp", "/new", "/cur" };
	uint64_t before, first, second;
	size_t i;
	bool perm;
	const char *msg = "Subject: s\r\n\r\nx\r\n";

	make_env(&env, "from@example.test");
	envelope_rcpt_add(&env, "r@example.test", "r@example.test", "/m",
	    RCPT_KIND_LOCAL, 0, NULL);
	commit_message(f, &env, msg, strlen(msg), 0, id);
	m = xasprintf("%s/pre/made/box", f->dir);
	assert_int_equal(mkdir_p(m, 0700), 0);
	for (i = 1; i < nitems(subs); i++) {
		sub = xasprintf("%s%s", m, subs[i]);
		assert_int_equal(mkdir(sub, 0700), 0);
		free(sub);
	}

	before = dirsync_count();
	assert_int_equal(maildir_deliver(f->sp, id, "a@b", m, "h", err,
	    sizeof(err), &perm), 0);
	first = dirsync_count() - before;
	before = dirsync_count();
	assert_int_equal(maildir_deliver(f->sp, id, "a@b", m, "h", err,
	    sizeof(err), &perm), 0);
	second = dirsync_count() - before;
	print_message("dirsyncs: first delivery %llu, second %llu\n",
	    (unsigned long long)first, (unsigned long long)second);
	/* new/, then the Maildir and every ancestor up to /. */
	assert_int_equal(first, 1 + count_levels(m));
	assert_int_equal(second, 1);
	assert_int_equal(count_dir(m, "new"), 2);
	free(m);
	envelope_free(&env);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_maildir_deliver_content,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_maildir_deliver_twice,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_maildir_deliver_errors,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_scheduler_two_local,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_scheduler_retry, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_scheduler_remote, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_scheduler_free_busy,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_scheduler_free_records_results, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scheduler_bounce,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_scheduler_success_notice_after_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_scheduler_scan_failure_backs_off, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_scheduler_quarantine_failure_backs_off, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_scheduler_corrupt_content,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_null_fields_no_crash,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_remote_backoff_over_in_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remote_dests_forgotten,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_maildir_ancestors_synced,
		    setup, teardown),
	};

	evthread_use_pthreads();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
