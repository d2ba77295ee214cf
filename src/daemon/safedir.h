/*
 * safedir.h: is a directory safe to keep mail in? `petrel serve` refuses
 * to run on a spool that others could write to or replace.
 */
#ifndef PETREL_DAEMON_SAFEDIR_H
#define PETREL_DAEMON_SAFEDIR_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>

/*
 * The directories above path, up to /, both as written (a relative path
 * is taken from the working directory) and as resolved (realpath(3) of
 * path, or of its deepest existing ancestor): each must be owned by root,
 * by owner or by this process's effective user, and must not be writable
 * by every user unless its sticky bit is set (/tmp, mode 1777). A
 * directory that does not exist yet is not checked (serve creates it, as
 * root, mode 0755). A group-writable one is only logged as a warning.
 * Returns 0, or -1 with err set to a message naming the directory.
 */
int safedir_check_parents(const char *path, uid_t owner, char *err,
    size_t errlen);

/*
 * safedir_check_parents(), then path itself: a directory, not writable by
 * every user (the sticky bit does not help here) and, with check_owner,
 * owned by owner (without: check-config, before serve has chowned it).
 * Returns 0, or -1 with err set.
 */
int safedir_check(const char *path, uid_t owner, bool check_owner, char *err,
    size_t errlen);

#endif
