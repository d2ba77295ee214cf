/*
 * sdnotify.c: tell systemd how the daemon is doing (Type=notify).
 *
 * Entry points: sdnotify_send(), sdnotify_reloading().
 *
 * `petrel serve` sends READY=1 once every listener accepts connections,
 * RELOADING=1 and then READY=1 around a SIGHUP reload, and STOPPING=1 when
 * it begins to stop. The protocol is one datagram of "KEY=VALUE" lines to
 * the AF_UNIX socket named by $NOTIFY_SOCKET; a few lines here spare a
 * libsystemd dependency. The variable is left in the environment: the
 * reload and stop notices come later, after the privilege drop (systemd's
 * socket is writable by every user, and NotifyAccess=main accepts the
 * main PID, which we stay).
 *
 * SECURITY: sends only fixed text; reads only the environment.
 * STANDARDS: sd_notify(3) and systemd.service(5), systemd 252-253
 * (MONOTONIC_USEC with RELOADING=1 is what Type=notify-reload checks).
 * OWNERSHIP: nothing is kept; the socket is closed before returning.
 */
#include "daemon/sdnotify.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

int
sdnotify_send(const char *state)
{
	struct sockaddr_un sun;
	const char *path = getenv("NOTIFY_SOCKET");
	socklen_t salen;
	size_t n;
	ssize_t r;
	int fd, saved;

	if (path == NULL || path[0] == '\0')
		return 0;
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n < 2 ||
	    n >= sizeof(sun.sun_path)) {
		log_warn("sdnotify: NOTIFY_SOCKET is not a socket path or "
		    "@name; not notifying");
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, n);
	/* "@name": the abstract namespace, whose address has no NUL end. */
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("sdnotify: socket: %s", strerror(errno));
		return -1;
	}
	/* MSG_DONTWAIT: the event loop calls this; a full queue drops it. */
	r = sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT,
	    (struct sockaddr *)&sun, salen);
	saved = errno;
	close(fd);
	if (r == -1) {
		log_warn("sdnotify: cannot send to NOTIFY_SOCKET %s: %s",
		    path, strerror(saved));
		return -1;
	}
	return 0;
}

int
sdnotify_reloading(void)
{
	char msg[64];

	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)time_mono_usec());
	return sdnotify_send(msg);
}
