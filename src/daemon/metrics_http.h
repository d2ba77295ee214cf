/*
 * metrics_http.h: the Prometheus endpoint (`metrics ADDR:PORT`, issue 6):
 * GET /metrics over HTTP/1.1 on the daemon's event loop, in the text
 * exposition format 0.0.4. The protocol and its limits are described in
 * metrics_http.c; every metric is listed in docs/metrics.md.
 */
#ifndef PETREL_DAEMON_METRICS_HTTP_H
#define PETREL_DAEMON_METRICS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct buf;
struct conf_listen;
struct event_base;
struct metrics_http;
struct scheduler;
struct smtp_server;
struct spool;

/* Where the values that are not counters of their own are read. */
struct metrics_sources {
	struct spool *spool;		/* fsync and commit counts */
	struct scheduler *sched;	/* deliveries, the queue now */
	struct smtp_server *srv;	/* sessions open now */
};

/*
 * Bind and listen on l (as root, before the privilege drop, like the SMTP
 * listeners). Returns the listening socket (non-blocking, close-on-exec)
 * or -1 with err set.
 */
int metrics_http_bind(const struct conf_listen *l, char *err, size_t errlen);

/*
 * Is l's address a loopback one (127.0.0.0/8, ::1)? The endpoint has no
 * authentication: check-config and serve warn otherwise.
 */
bool metrics_http_is_loopback(const struct conf_listen *l);

/*
 * Check every metric's definition (lib/metrics.h metrics_check): false
 * with *name_r and *error_r naming the first bad one.
 */
bool metrics_http_check_all(const char **name_r, const char **error_r);

/*
 * The whole exposition into out (whose maximum bounds it): every metric
 * of every module, with the spool, scheduler and server values of src
 * (any may be NULL: those metrics then read 0). On the loop thread.
 * Returns 0, or -1 when out's maximum was reached.
 */
int metrics_http_format(struct buf *out, const struct metrics_sources *src);

/*
 * Serve fd (from metrics_http_bind(); owned from now on) on base. text
 * is the address as configured, for logs. Never NULL.
 */
struct metrics_http *metrics_http_new(struct event_base *base, int fd,
    const char *text, const struct metrics_sources *src);

/* Close the socket and every connection. NULL is a no-op. */
void metrics_http_free(struct metrics_http *mh);

#endif
