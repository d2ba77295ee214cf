/*
 * sandbox.c: the seccomp allow-list of `petrel serve` (issue 8), built
 * with libseccomp.
 *
 * Entry points: sandbox_apply(), sandbox_mode_name(), sandbox_is_relaxed().
 *
 * The daemon calls sandbox_apply() once, after it has bound every socket,
 * opened the spool, the log file and the keys, dropped its privileges and
 * started its threads, and before it accepts the first connection. The
 * filter goes on every thread at once (SECCOMP_FILTER_FLAG_TSYNC) and is
 * inherited by threads created later (libunbound's, the SASL workers of a
 * reloaded runtime). What stays allowed is what a running daemon does:
 * memory, threads and their synchronisation, time, file I/O inside the
 * spool, Maildirs and the files a SIGHUP reloads, sockets of the families
 * AF_UNIX, AF_INET and AF_INET6 (accept, outbound SMTP and LMTP, DNS over
 * UDP and TCP, syslog, Dovecot's auth socket, systemd's notify socket),
 * epoll, signalfd, eventfd and getrandom (OpenSSL). What is gone: execve,
 * fork (clone without CLONE_THREAD), ptrace, mount, setuid and the other
 * credential calls, module and kexec loading, raw and netlink sockets,
 * listen (every listener exists before the filter), and everything else
 * not named below.
 *
 * clone3() answers ENOSYS: its flags are in memory, where a filter cannot
 * look, and glibc then falls back to clone(), whose flags it can check.
 *
 * A forbidden call raises SIGSYS (SECCOMP_RET_TRAP): sandbox_sigsys()
 * writes one line naming the call to standard error and re-raises SIGSYS
 * with its default action, so the process dies by SIGSYS as it would with
 * SECCOMP_RET_KILL_PROCESS, but the administrator reads which call it was.
 * The filter does not set SECCOMP_FILTER_FLAG_LOG: the kernel would then
 * also log every clone3() answered ENOSYS, once per thread started.
 * `sandbox log` allows everything and lets the kernel log each call
 * outside the list instead: the way to find what a new library needs.
 *
 * Sanitizer builds (ASan with LeakSanitizer, TSan) also allow what their
 * runtimes do at exit or on a report: LeakSanitizer stops the world from
 * a clone()d tracer that ptrace()s every thread, and a report forks and
 * executes llvm-symbolizer. Those builds are for tests, not production.
 *
 * SECURITY: runs after the privilege drop, on all threads; sets
 * no_new_privs (which seccomp needs without CAP_SYS_ADMIN).
 * OWNERSHIP: the filter lives in the kernel; the syscall name table used
 * by the SIGSYS handler is static and kept for the process's life.
 */
#include "daemon/sandbox.h"

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <seccomp.h>

#include "lib/util.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANDBOX_RELAXED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(leak_sanitizer) || __has_feature(memory_sanitizer)
#define SANDBOX_RELAXED 1
#endif
#endif
#ifndef SANDBOX_RELAXED
#define SANDBOX_RELAXED 0
#endif

/* System call numbers the SIGSYS handler can name (x86_64 has ~460). */
#define SANDBOX_NAMES	512

static const char *sandbox_names[SANDBOX_NAMES];

/* Allowed with any arguments. */
static const char *const sandbox_allowed[] = {
	/* memory */
	"brk", "mmap", "munmap", "mprotect", "mremap", "madvise",
	/* threads, their synchronisation and exit */
	"futex", "set_robust_list", "get_robust_list", "rseq",
	"set_tid_address", "sched_yield", "sched_getaffinity", "gettid",
	"getpid", "tgkill", "exit", "exit_group", "restart_syscall",
	/* signals (signalfd on the loop, SIGSYS and SIGPIPE handling) */
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
	"signalfd4",
	/* time */
	"clock_gettime", "clock_getres", "clock_nanosleep", "gettimeofday",
	"nanosleep", "time",
	/* descriptors and I/O */
	"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv",
	"pwritev", "lseek", "close", "dup", "dup2", "dup3", "fcntl", "pipe2",
	"eventfd2", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
	"epoll_pwait2", "poll", "ppoll", "select", "pselect6",
	/* files: spool, Maildirs, maildrop, reloaded certificates and tables */
	"open", "openat", "stat", "fstat", "lstat", "newfstatat", "statx",
	"statfs", "fstatfs", "access", "faccessat", "faccessat2", "readlink",
	"readlinkat", "getdents64", "mkdir", "mkdirat", "rename", "renameat",
	"renameat2", "unlink", "unlinkat", "link", "linkat", "rmdir",
	"fsync", "fdatasync", "ftruncate", "fchmod", "flock", "umask",
	"getcwd", "utimensat",
	/* sockets (socket() and socketpair() are limited by family below) */
	"connect", "accept", "accept4", "bind", "getsockname", "getpeername",
	"setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg",
	"sendmmsg", "recvmmsg", "shutdown",
	/* identity, limits, randomness (OpenSSL, libunbound) */
	"getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid",
	"getresgid", "getrlimit", "prlimit64", "getrusage", "uname",
	"sysinfo", "getrandom",
};

/* Added in sanitizer builds only (see the header comment). */
static const char *const sandbox_allowed_relaxed[] = {
	"clone", "ptrace", "wait4", "waitid", "prctl", "execve", "fork",
	"vfork", "kill", "getppid", "process_vm_readv", "sched_setaffinity",
	"pipe", "setsid", "mincore", "personality",
	"getdents",	/* LeakSanitizer's thread lister, on x86_64 */
};

/* socket() and socketpair(): these address families only. */
static const int sandbox_families[] = { AF_UNIX, AF_INET, AF_INET6 };

/* ioctl(): FIONREAD (libevent), FIONBIO, TCGETS (isatty in stdio). */
static const unsigned long sandbox_ioctls[] = { FIONREAD, FIONBIO, TCGETS };

bool
sandbox_is_relaxed(void)
{
	return SANDBOX_RELAXED;
}

const char *
sandbox_mode_name(enum conf_sandbox mode)
{
	switch (mode) {
	case CONF_SANDBOX_YES:
		return "yes";
	case CONF_SANDBOX_NO:
		return "no";
	case CONF_SANDBOX_LOG:
		return "log";
	}
	return "?";
}

/* Decimal digits of v into buf (no NUL); returns the count. */
static size_t
sandbox_utoa(char *buf, unsigned long v)
{
	char tmp[24];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0 && n < sizeof(tmp));
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

static size_t
sandbox_append(char *buf, size_t len, size_t size, const char *s)
{
	while (*s != '\0' && len + 1 < size)
		buf[len++] = *s++;
	return len;
}

/*
 * SIGSYS from the filter. Async-signal-safe only: the forbidden call may
 * have come from inside malloc or with a lock held. One write(2), then
 * death by SIGSYS with its default action (a core dump where enabled).
 */
static void
sandbox_sigsys(int sig, siginfo_t *si, void *uctx)
{
	char line[256];
	const char *name = NULL;
	size_t len = 0;
	int nr = si->si_syscall;
	sigset_t set;

	(void)uctx;
	if (nr >= 0 && nr < SANDBOX_NAMES)
		name = sandbox_names[nr];
	len = sandbox_append(line, len, sizeof(line), "petrel[");
	len += sandbox_utoa(line + len, (unsigned long)getpid());
	len = sandbox_append(line, len, sizeof(line), "]: error: sandbox: "
	    "forbidden system call nr=");
	len += sandbox_utoa(line + len, (unsigned long)(unsigned int)nr);
	len = sandbox_append(line, len, sizeof(line), " name=");
	len = sandbox_append(line, len, sizeof(line),
	    name != NULL ? name : "unknown");
	len = sandbox_append(line, len, sizeof(line), " tid=");
	len += sandbox_utoa(line + len, (unsigned long)gettid());
	len = sandbox_append(line, len, sizeof(line), ": killing the "
	    "process (`sandbox log` or `petrel serve --no-sandbox` to "
	    "debug)\n");
	(void)!write(STDERR_FILENO, line, len);

	signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
	/* In case SIGSYS could not kill: raise() does return in general. */
	/* cppcheck-suppress unreachableCode */
	_exit(128 + sig);
}

/* Name every system call number for the handler, before the filter. */
static void
sandbox_names_init(void)
{
	int nr;

	for (nr = 0; nr < SANDBOX_NAMES; nr++)
		if (sandbox_names[nr] == NULL)
			sandbox_names[nr] = seccomp_syscall_resolve_num_arch(
			    SCMP_ARCH_NATIVE, nr);
}

/*
 * Allow name with the given argument checks. A call this architecture
 * does not have (libseccomp gives it a negative pseudo number) is
 * skipped.
 */
static int
sandbox_allow(scmp_filter_ctx ctx, const char *name, unsigned int narg,
    const struct scmp_arg_cmp *args, char *err, size_t errlen)
{
	int nr = seccomp_syscall_resolve_name(name), r;

	if (nr == __NR_SCMP_ERROR || nr < 0)
		return 0;
	r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, narg, args);
	if (r < 0) {
		snprintf(err, errlen, "seccomp rule for %s: %s", name,
		    strerror(-r));
		return -1;
	}
	return 0;
}

static scmp_filter_ctx
sandbox_build(enum conf_sandbox mode, char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	struct scmp_arg_cmp cmp;
	size_t i;
	int r;

	ctx = seccomp_init(mode == CONF_SANDBOX_LOG ? SCMP_ACT_LOG :
	    SCMP_ACT_TRAP);
	if (ctx == NULL) {
		snprintf(err, errlen, "seccomp_init failed");
		return NULL;
	}
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0 ||
	    (r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1)) < 0 ||
	    (r = seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1)) < 0) {
		snprintf(err, errlen, "seccomp_attr_set: %s", strerror(-r));
		goto fail;
	}
	for (i = 0; i < nitems(sandbox_allowed); i++)
		if (sandbox_allow(ctx, sandbox_allowed[i], 0, NULL, err,
		    errlen) == -1)
			goto fail;
	if (SANDBOX_RELAXED) {
		for (i = 0; i < nitems(sandbox_allowed_relaxed); i++)
			if (sandbox_allow(ctx, sandbox_allowed_relaxed[i], 0,
			    NULL, err, errlen) == -1)
				goto fail;
	} else {
		/* Threads only: CLONE_THREAD set. */
		cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD);
		if (sandbox_allow(ctx, "clone", 1, &cmp, err, errlen) == -1)
			goto fail;
	}
	if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS),
	    SCMP_SYS(clone3), 0)) < 0) {
		snprintf(err, errlen, "seccomp rule for clone3: %s",
		    strerror(-r));
		goto fail;
	}
	for (i = 0; i < nitems(sandbox_families); i++) {
		cmp = SCMP_A0(SCMP_CMP_EQ,
		    (scmp_datum_t)sandbox_families[i], 0);
		if (sandbox_allow(ctx, "socket", 1, &cmp, err, errlen) == -1 ||
		    sandbox_allow(ctx, "socketpair", 1, &cmp, err,
		    errlen) == -1)
			goto fail;
	}
	for (i = 0; i < nitems(sandbox_ioctls); i++) {
		cmp = SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)sandbox_ioctls[i],
		    0);
		if (sandbox_allow(ctx, "ioctl", 1, &cmp, err, errlen) == -1)
			goto fail;
	}
	return ctx;
fail:
	seccomp_release(ctx);
	return NULL;
}

int
sandbox_apply(enum conf_sandbox mode, char *err, size_t errlen)
{
	struct sigaction sa;
	scmp_filter_ctx ctx;
	int r;

	if (mode == CONF_SANDBOX_NO)
		return 0;
	sandbox_names_init();
	if ((ctx = sandbox_build(mode, err, errlen)) == NULL)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sandbox_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) == -1) {
		snprintf(err, errlen, "sigaction SIGSYS: %s", strerror(errno));
		seccomp_release(ctx);
		return -1;
	}
	r = seccomp_load(ctx);
	seccomp_release(ctx);
	if (r < 0) {
		/* The kernel's own errno (API_SYSRAWRC). EINVAL or ENOSYS:
		 * no seccomp filters in this kernel; ESRCH: a thread that
		 * TSYNC could not join (it has another filter). */
		if (r == -EINVAL || r == -ENOSYS)
			snprintf(err, errlen, "the kernel refused the seccomp "
			    "filter (%s): it may lack CONFIG_SECCOMP_FILTER",
			    strerror(-r));
		else
			snprintf(err, errlen, "seccomp_load: %s",
			    strerror(-r));
		return -1;
	}
	return 0;
}
