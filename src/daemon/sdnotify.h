/*
 * sdnotify.h: systemd's readiness protocol (sd_notify(3)) without
 * libsystemd, for contrib/petrel.service's Type=notify.
 */
#ifndef PETREL_DAEMON_SDNOTIFY_H
#define PETREL_DAEMON_SDNOTIFY_H

/*
 * Send state ("READY=1", "STOPPING=1", ...; newline-separated
 * assignments) as one datagram to the socket $NOTIFY_SOCKET names (a
 * path, or an abstract socket written "@name"). Nothing to do (0) when
 * NOTIFY_SOCKET is unset or empty. Never blocks. Returns 0, or -1 after
 * logging a warning.
 */
int sdnotify_send(const char *state);

/* "RELOADING=1" with MONOTONIC_USEC=now, as systemd 253 wants it. */
int sdnotify_reloading(void);

#endif
