/*
 * strset.c: string set with linear probing; grows at 50% load.
 */
#include "lib/strset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

static uint64_t
strset_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

void
strset_init(struct strset *s)
{
	s->slots = NULL;
	s->cap = 0;
	s->len = 0;
}

void
strset_free(struct strset *s)
{
	size_t i;

	for (i = 0; i < s->cap; i++)
		free(s->slots[i]);
	free(s->slots);
	strset_init(s);
}

static size_t
strset_find(char **slots, size_t cap, const char *s)
{
	size_t i = (size_t)strset_hash(s) & (cap - 1);

	while (slots[i] != NULL && strcmp(slots[i], s) != 0)
		i = (i + 1) & (cap - 1);
	return i;
}

static void
strset_grow(struct strset *s)
{
	size_t cap = s->cap ? s->cap * 2 : 16, i;
	char **slots = xcalloc(cap, sizeof(*slots));

	for (i = 0; i < s->cap; i++)
		if (s->slots[i] != NULL)
			slots[strset_find(slots, cap, s->slots[i])] =
			    s->slots[i];
	free(s->slots);
	s->slots = slots;
	s->cap = cap;
}

bool
strset_add(struct strset *set, const char *s)
{
	size_t i;

	if ((set->len + 1) * 2 > set->cap)
		strset_grow(set);
	i = strset_find(set->slots, set->cap, s);
	if (set->slots[i] != NULL)
		return false;
	set->slots[i] = xstrdup(s);
	set->len++;
	return true;
}

bool
strset_has(const struct strset *set, const char *s)
{
	if (set->cap == 0)
		return false;
	return set->slots[strset_find(set->slots, set->cap, s)] != NULL;
}
