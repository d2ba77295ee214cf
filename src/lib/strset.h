/*
 * strset.h: a set of strings (open addressing, FNV-1a), for removing
 * duplicates in O(1) per item where a list could otherwise grow to
 * thousands (recipients of one transaction, targets of an expansion).
 * The set copies the strings it stores.
 */
#ifndef PETREL_LIB_STRSET_H
#define PETREL_LIB_STRSET_H

#include <stdbool.h>
#include <stddef.h>

struct strset {
	char **slots;
	size_t cap;	/* power of two, or 0 before the first add */
	size_t len;
};

void strset_init(struct strset *s);
void strset_free(struct strset *s);	/* s reusable after */

/* Add s; returns true if it was not in the set yet. */
bool strset_add(struct strset *set, const char *s);
bool strset_has(const struct strset *set, const char *s);

#endif
