/*
 * dirsync.c: coalesced directory fsyncs (see dirsync.h).
 *
 * One entry per directory being synced, in a small hash table under one
 * mutex. Each entry numbers its fsync runs. A caller needs a run that
 * starts after it arrived (number started + 1); it runs one itself when
 * none is running, else waits on the entry's condition variable. Entries
 * are freed when nobody waits, so the table holds only busy directories.
 */
#include "lib/dirsync.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

#define DIRSYNC_BUCKETS 256

struct dirsync_entry {
	struct dirsync_entry *next;
	char *path;
	pthread_cond_t cv;
	uint64_t started;	/* number of the last run started */
	uint64_t done;		/* number of the last run finished */
	int last_errno;		/* of the last run finished, 0 if it worked */
	unsigned int users;	/* callers inside dirsync() for this path */
	bool running;
};

static pthread_mutex_t dirsync_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct dirsync_entry *dirsync_table[DIRSYNC_BUCKETS];
static uint64_t dirsync_fsyncs;

static struct dirsync_entry **
dirsync_slot(const char *path)
{
	unsigned int h = 5381;
	const char *p;
	struct dirsync_entry **pp;

	for (p = path; *p != '\0'; p++)
		h = h * 33 + (unsigned char)*p;
	pp = &dirsync_table[h % DIRSYNC_BUCKETS];
	while (*pp != NULL && strcmp((*pp)->path, path) != 0)
		pp = &(*pp)->next;
	return pp;
}

int
dirsync(const char *path)
{
	struct dirsync_entry **pp, *e;
	uint64_t target;
	int err;

	pthread_mutex_lock(&dirsync_mtx);
	pp = dirsync_slot(path);
	if (*pp == NULL) {
		e = xcalloc(1, sizeof(*e));
		e->path = xstrdup(path);
		pthread_cond_init(&e->cv, NULL);
		*pp = e;
	}
	e = *pp;
	e->users++;
	target = e->started + 1;
	while (e->done < target) {
		uint64_t n;

		if (e->running) {
			pthread_cond_wait(&e->cv, &dirsync_mtx);
			continue;
		}
		e->running = true;
		n = ++e->started;
		dirsync_fsyncs++;
		pthread_mutex_unlock(&dirsync_mtx);
		err = fsync_dir(path) == -1 ? errno : 0;
		pthread_mutex_lock(&dirsync_mtx);
		e->running = false;
		e->done = n;
		e->last_errno = err;
		pthread_cond_broadcast(&e->cv);
	}
	err = e->last_errno;
	if (--e->users == 0 && !e->running) {
		pp = dirsync_slot(path);
		*pp = e->next;
		pthread_cond_destroy(&e->cv);
		free(e->path);
		free(e);
	}
	pthread_mutex_unlock(&dirsync_mtx);
	if (err != 0) {
		errno = err;
		return -1;
	}
	return 0;
}

uint64_t
dirsync_count(void)
{
	uint64_t n;

	pthread_mutex_lock(&dirsync_mtx);
	n = dirsync_fsyncs;
	pthread_mutex_unlock(&dirsync_mtx);
	return n;
}
