/*
 * daemon.h: start-up, privilege drop, signals and the main loop of
 * `petrel serve`, and the configuration checks shared with
 * `petrel check-config`.
 */
#ifndef PETREL_DAEMON_DAEMON_H
#define PETREL_DAEMON_DAEMON_H

#include "conf/conf.h"

#include <stdbool.h>
#include <stddef.h>

struct dns;
struct event_base;
struct policy_tables;

/*
 * A resolver on base set up as c says (dns, dnssec, dns_max_queries),
 * with servers[0..nservers) in place of c's dns lines when nservers > 0
 * (the commands' --dns). NULL with err set when dns_new() refuses.
 */
struct dns *daemon_dns_new(struct event_base *base, const struct conf *c,
    const char *const *servers, size_t nservers, char *err, size_t errlen);

/*
 * Can c's tls_cert/tls_key pairs be loaded (files read, keys matching,
 * tls_protocols and tls_ciphers valid) by this process? 0, or -1 with
 * err set. Nothing to check (0) without tls_cert lines: the self-signed
 * certificate is made by `petrel serve`.
 */
int daemon_check_tls(const struct conf *c, char *err, size_t errlen);

/*
 * Can every dkim_sign key of c be loaded by this process? 0, or -1 with
 * the reason logged ("dkim_sign DOMAIN SELECTOR: FILE: reason").
 */
int daemon_check_dkim(const struct conf *c);

/*
 * Run as root: can the daemon's user (c's `user`) read every tls_cert,
 * tls_key and dkim_sign file, as `petrel serve` requires? 0 (also when
 * not root, or when that user is root or does not exist: serve reports
 * those itself), or -1 with each file that user cannot read logged.
 */
int daemon_check_access(const struct conf *c);

/*
 * Would `petrel serve` refuse c's spool as unsafe (src/daemon/safedir.c)?
 * The directories above it, and the spool itself when it exists (its
 * owner is not checked: serve, as root, gives it to `user` first). The
 * daemon's user is c's `user` when run as root, else the caller. 0, or -1
 * with the reason logged.
 */
int daemon_check_spool(const struct conf *c);

/*
 * Find and load the configuration (conf_locate rules) and the tables it
 * names. Every error is printed to stderr as FILE:LINE: message. Returns
 * 0 with *conf_r and *tables_r set, or -1.
 */
int daemon_load_config(const char *cli_path, struct conf **conf_r,
    struct policy_tables **tables_r, int quiet);

/*
 * Run the daemon in the foreground. Returns the process exit status.
 * no_sandbox (`--no-sandbox`) overrides the `sandbox` directive: no
 * seccomp filter (src/daemon/sandbox.c).
 */
int daemon_serve(const char *cli_path, bool no_sandbox);

#endif
