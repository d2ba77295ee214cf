/*
 * test_daemon_sandbox.c: the seccomp allow-list of `petrel serve`
 * (src/daemon/sandbox.c). Each case forks a child that installs the real
 * filter with sandbox_apply() and then does one thing: an allowed call
 * lets it exit 0; a forbidden one kills it by SIGSYS, after the handler
 * wrote a line naming the call to its standard error (a pipe read here).
 * A thread started before the filter is covered too (TSYNC), threads
 * started after it work, `sandbox log` lets a forbidden call run, and
 * `sandbox no` installs nothing. Sanitizer builds allow more (clone,
 * execve, ptrace: sandbox_is_relaxed()); the cases those calls would
 * show are skipped there.
 */
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/sandbox.h"

/* Child exit codes besides 0 (the action ran and returned). */
#define CHILD_APPLY_FAILED	3
#define CHILD_ACTION_FAILED	4

/* ---- actions, run in the child after the filter ---- */

static int
act_everyday(void)
{
	char buf[64];
	int fds[2], fd, s;
	void *p;

	/* what the loop, the spool and the resolver do all day */
	if (pipe2(fds, O_CLOEXEC) == -1 || write(fds[1], "x", 1) != 1 ||
	    read(fds[0], buf, 1) != 1)
		return -1;
	close(fds[0]);
	close(fds[1]);
	if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	close(fd);
	if ((s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	close(s);
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	close(s);
	if ((p = malloc(1 << 20)) == NULL)
		return -1;
	memset(p, 1, 1 << 20);
	free(p);
	if (getrandom(buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
		return -1;
	return getpid() > 0 ? 0 : -1;
}

static void *
thread_main(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)(getpid() > 0 ? 7 : 0);
}

/* pthread_create after the filter: clone3 answers ENOSYS, clone works. */
static int
act_thread(void)
{
	pthread_t t;
	void *rv;

	if (pthread_create(&t, NULL, thread_main, NULL) != 0 ||
	    pthread_join(t, &rv) != 0)
		return -1;
	return (intptr_t)rv == 7 ? 0 : -1;
}

static int
act_execve(void)
{
	char *argv[] = { "true", NULL };
	char *envp[] = { NULL };

	execve("/bin/true", argv, envp);
	return -1;
}

static int
act_fork(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	return -1;
}

static int
act_socket_packet(void)
{
	/* A raw packet socket: the tool of a sniffer. */
	socket(AF_PACKET, SOCK_RAW, 0);
	return -1;
}

static int
act_socket_netlink(void)
{
	socket(AF_NETLINK, SOCK_RAW, 0);
	return -1;
}

static int
act_setuid(void)
{
	syscall(SYS_setuid, 0);
	return -1;
}

static int
act_listen(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);

	listen(s, 1);
	return -1;
}

static int
act_ptrace(void)
{
	syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
	return -1;
}

static int
act_unshare(void)
{
	unshare(CLONE_NEWUSER);
	return -1;
}

static int
act_ioctl_tiocsti(void)
{
	char c = 'x';

	ioctl(0, TIOCSTI, &c);
	return -1;
}

/* In `sandbox log` the forbidden call runs (and fails here: EBADF). */
static int
act_listen_badfd(void)
{
	return listen(-1, 1) == -1 && errno == EBADF ? 0 : -1;
}

static atomic_int thread_go;

static void *
early_thread_main(void *arg)
{
	(void)arg;
	while (!thread_go)
		sched_yield();
	listen(-1, 1);		/* forbidden in every build */
	return NULL;
}

/* ---- the harness ---- */

struct child_result {
	int status;
	char err[2048];		/* the child's standard error */
};

/*
 * Fork; the child optionally starts a thread, applies mode, runs act and
 * exits 0 when act returned 0. The parent collects status and stderr.
 */
static void
run_child(enum conf_sandbox mode, int (*act)(void), bool early_thread,
    struct child_result *res)
{
	int fds[2];
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	assert_int_equal(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		struct rlimit nocore = { 0, 0 };
		char err[512];
		pthread_t t;

		setrlimit(RLIMIT_CORE, &nocore);	/* SIGSYS dumps core */
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		close(fds[1]);
		if (early_thread && pthread_create(&t, NULL,
		    early_thread_main, NULL) != 0)
			_exit(CHILD_ACTION_FAILED);
		if (sandbox_apply(mode, err, sizeof(err)) == -1) {
			dprintf(STDERR_FILENO, "sandbox_apply: %s\n", err);
			_exit(CHILD_APPLY_FAILED);
		}
		if (early_thread) {
			thread_go = 1;
			pthread_join(t, NULL);
			_exit(0);
		}
		_exit(act() == 0 ? 0 : CHILD_ACTION_FAILED);
	}
	close(fds[1]);
	while ((n = read(fds[0], res->err + len,
	    sizeof(res->err) - 1 - len)) > 0)
		len += (size_t)n;
	res->err[len] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &res->status, 0), pid);
}

static void
assert_exited_ok(const struct child_result *r, const char *what)
{
	if (!WIFEXITED(r->status) || WEXITSTATUS(r->status) != 0)
		fail_msg("%s: child %s %d, want exit 0; stderr: %s", what,
		    WIFEXITED(r->status) ? "exited" : "killed by signal",
		    WIFEXITED(r->status) ? WEXITSTATUS(r->status) :
		    WTERMSIG(r->status), r->err);
}

static void
assert_killed_naming(const struct child_result *r, const char *syscall,
    const char *what)
{
	char want[128];

	if (!WIFSIGNALED(r->status) || WTERMSIG(r->status) != SIGSYS)
		fail_msg("%s: child %s %d, want death by SIGSYS (%d); "
		    "stderr: %s", what, WIFEXITED(r->status) ? "exited" :
		    "killed by signal", WIFEXITED(r->status) ?
		    WEXITSTATUS(r->status) : WTERMSIG(r->status), SIGSYS,
		    r->err);
	snprintf(want, sizeof(want), "sandbox: forbidden system call nr=");
	if (strstr(r->err, want) == NULL)
		fail_msg("%s: stderr lacks \"%s\": %s", what, want, r->err);
	snprintf(want, sizeof(want), " name=%s ", syscall);
	if (strstr(r->err, want) == NULL)
		fail_msg("%s: stderr lacks \"%s\": %s", what, want, r->err);
}

struct forbidden_case {
	const char *name;
	int (*act)(void);
	const char *syscall;	/* the name the handler must print */
	bool relaxed_allows;	/* allowed in sanitizer builds */
};

static const struct forbidden_case forbidden[] = {
	{ "execve", act_execve, "execve", true },
	{ "fork", act_fork, "clone", true },
	{ "ptrace", act_ptrace, "ptrace", true },
	{ "socket(AF_PACKET)", act_socket_packet, "socket", false },
	{ "socket(AF_NETLINK)", act_socket_netlink, "socket", false },
	{ "setuid(0)", act_setuid, "setuid", false },
	{ "listen", act_listen, "listen", false },
	{ "unshare(CLONE_NEWUSER)", act_unshare, "unshare", false },
	{ "ioctl(TIOCSTI)", act_ioctl_tiocsti, "ioctl", false },
};

static void
test_forbidden_calls_kill(void **state)
{
	struct child_result r;
	size_t i, ran = 0;

	(void)state;
	for (i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
		if (forbidden[i].relaxed_allows && sandbox_is_relaxed())
			continue;
		run_child(CONF_SANDBOX_YES, forbidden[i].act, false, &r);
		assert_killed_naming(&r, forbidden[i].syscall,
		    forbidden[i].name);
		ran++;
	}
	assert_true(ran >= 6);
}

static void
test_allowed_calls_run(void **state)
{
	struct child_result r;

	(void)state;
	run_child(CONF_SANDBOX_YES, act_everyday, false, &r);
	assert_exited_ok(&r, "everyday calls");
	run_child(CONF_SANDBOX_YES, act_thread, false, &r);
	assert_exited_ok(&r, "a thread started under the filter");
}

/* A thread that existed before the filter has it too (TSYNC). */
static void
test_earlier_thread_is_covered(void **state)
{
	struct child_result r;

	(void)state;
	run_child(CONF_SANDBOX_YES, NULL, true, &r);
	assert_killed_naming(&r, "listen", "listen from an earlier thread");
}

static void
test_log_mode_lets_it_run(void **state)
{
	struct child_result r;

	(void)state;
	run_child(CONF_SANDBOX_LOG, act_listen_badfd, false, &r);
	assert_exited_ok(&r, "sandbox log: listen(-1)");
	/* and the filter is really enforcing in the other mode */
	run_child(CONF_SANDBOX_YES, act_listen_badfd, false, &r);
	assert_killed_naming(&r, "listen", "sandbox yes: listen(-1)");
}

/* Seccomp and NoNewPrivs as /proc/self/status reports them; -1 if absent. */
static int
status_field(const char *key)
{
	char line[256];
	size_t klen = strlen(key);
	FILE *fp = fopen("/proc/self/status", "re");
	int v = -1;

	if (fp == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			v = (int)strtol(line + klen + 1, NULL, 10);
			break;
		}
	fclose(fp);
	return v;
}

static int
act_status_filtered(void)
{
	return status_field("Seccomp") == 2 &&
	    status_field("NoNewPrivs") == 1 ? 0 : -1;
}

static int
act_status_unfiltered(void)
{
	return status_field("Seccomp") == 0 ? 0 : -1;
}

static void
test_status_fields(void **state)
{
	struct child_result r;

	(void)state;
	if (status_field("Seccomp") != 0)
		skip();		/* already filtered, or no such field */
	run_child(CONF_SANDBOX_YES, act_status_filtered, false, &r);
	assert_exited_ok(&r, "sandbox yes: Seccomp 2, NoNewPrivs 1");
	run_child(CONF_SANDBOX_NO, act_status_unfiltered, false, &r);
	assert_exited_ok(&r, "sandbox no: Seccomp 0");
	/* and with no filter, a call the list forbids simply runs */
	run_child(CONF_SANDBOX_NO, act_listen_badfd, false, &r);
	assert_exited_ok(&r, "sandbox no: listen(-1)");
}

static void
test_mode_names(void **state)
{
	(void)state;
	assert_string_equal(sandbox_mode_name(CONF_SANDBOX_YES), "yes");
	assert_string_equal(sandbox_mode_name(CONF_SANDBOX_NO), "no");
	assert_string_equal(sandbox_mode_name(CONF_SANDBOX_LOG), "log");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forbidden_calls_kill),
		cmocka_unit_test(test_allowed_calls_run),
		cmocka_unit_test(test_earlier_thread_is_covered),
		cmocka_unit_test(test_log_mode_lets_it_run),
		cmocka_unit_test(test_status_fields),
		cmocka_unit_test(test_mode_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
