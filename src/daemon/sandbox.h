/*
 * sandbox.h: the seccomp allow-list of `petrel serve` (issue 8). Once the
 * daemon has bound its sockets, opened its files and dropped its
 * privileges, sandbox_apply() limits every thread of the process, and
 * every thread started later, to the system calls a mail server needs.
 */
#ifndef PETREL_DAEMON_SANDBOX_H
#define PETREL_DAEMON_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"	/* enum conf_sandbox */

/*
 * Install the filter on every thread of the calling process (TSYNC); it
 * is inherited by the threads they create. With CONF_SANDBOX_YES a system
 * call outside the list raises SIGSYS: a handler writes one line naming
 * it ("sandbox: forbidden system call nr=N name=NAME") to standard error
 * and the process dies by SIGSYS (with a core dump where enabled). With
 * CONF_SANDBOX_LOG such a call runs and the kernel logs it (audit, dmesg:
 * "type=1326 ... syscall=N"). Also sets no_new_privs. CONF_SANDBOX_NO does
 * nothing. Returns 0, or -1 with err set (the kernel lacks seccomp, or
 * another filter refused TSYNC): nothing was installed then.
 */
int sandbox_apply(enum conf_sandbox mode, char *err, size_t errlen);

/* The mode's name as `sandbox` spells it: "yes", "no", "log". */
const char *sandbox_mode_name(enum conf_sandbox mode);

/*
 * Does this build relax the filter for a sanitizer runtime (ASan, LSan,
 * TSan: clone without CLONE_THREAD, ptrace, wait4, prctl, execve for
 * the symbolizer)? Such builds are for tests, not for production.
 */
bool sandbox_is_relaxed(void);

#endif
