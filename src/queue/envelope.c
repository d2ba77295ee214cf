/*
 * envelope.c: the in-memory envelope of a queued message.
 *
 * Entry points: envelope_init(), envelope_free(), envelope_rcpt_add(),
 * envelope_copy().
 *
 * SECURITY: no parsing; strings are copied as given (the session has
 * validated and bounded them).
 * OWNERSHIP: the envelope owns every string and the recipient array.
 */
#include "queue/envelope.h"

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

static char *
envelope_strdup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

void
envelope_init(struct envelope *env)
{
	memset(env, 0, sizeof(*env));
}

static void
envelope_rcpt_free(struct envelope_rcpt *r)
{
	free(r->orig);
	free(r->addr);
	free(r->mailbox);
	free(r->orcpt);
}

void
envelope_free(struct envelope *env)
{
	size_t i;

	for (i = 0; i < env->nrcpts; i++)
		envelope_rcpt_free(&env->rcpts[i]);
	free(env->rcpts);
	free(env->sender);
	free(env->envid);
	free(env->auth);
	free(env->client_addr);
	free(env->client_name);
	free(env->helo);
	free(env->proto);
	free(env->tls);
	free(env->auth_user);
	free(env->prepend);
	envelope_init(env);
}

size_t
envelope_rcpt_add(struct envelope *env, const char *orig, const char *addr,
    const char *mailbox, enum rcpt_kind kind, unsigned int notify,
    const char *orcpt)
{
	struct envelope_rcpt *r;
	size_t cap;

	/* Grow by doubling: nrcpts is a power of two when the array is full. */
	if (env->nrcpts == 0 || (env->nrcpts & (env->nrcpts - 1)) == 0) {
		cap = env->nrcpts == 0 ? 1 : env->nrcpts * 2;
		env->rcpts = xrealloc(env->rcpts, cap * sizeof(*env->rcpts));
	}
	r = &env->rcpts[env->nrcpts];
	memset(r, 0, sizeof(*r));
	r->orig = envelope_strdup(orig);
	r->addr = envelope_strdup(addr);
	r->mailbox = envelope_strdup(mailbox);
	r->kind = kind;
	r->notify = notify;
	r->orcpt = envelope_strdup(orcpt);
	r->status = RCPT_STATUS_PENDING;
	return env->nrcpts++;
}

void
envelope_copy(struct envelope *dst, const struct envelope *src)
{
	size_t i;

	envelope_init(dst);
	dst->sender = envelope_strdup(src->sender);
	dst->body = src->body;
	dst->size = src->size;
	dst->smtputf8 = src->smtputf8;
	dst->ret = src->ret;
	dst->envid = envelope_strdup(src->envid);
	dst->auth = envelope_strdup(src->auth);
	dst->client_addr = envelope_strdup(src->client_addr);
	dst->client_name = envelope_strdup(src->client_name);
	dst->helo = envelope_strdup(src->helo);
	dst->proto = envelope_strdup(src->proto);
	dst->tls = envelope_strdup(src->tls);
	dst->auth_user = envelope_strdup(src->auth_user);
	dst->prepend = envelope_strdup(src->prepend);
	dst->arrival = src->arrival;
	for (i = 0; i < src->nrcpts; i++) {
		const struct envelope_rcpt *s = &src->rcpts[i];
		struct envelope_rcpt *d;
		size_t j;

		j = envelope_rcpt_add(dst, s->orig, s->addr, s->mailbox,
		    s->kind, s->notify, s->orcpt);
		d = &dst->rcpts[j];
		d->status = s->status;
		d->attempts = s->attempts;
		d->next_attempt = s->next_attempt;
		memcpy(d->last_reply, s->last_reply, sizeof(d->last_reply));
		d->flags = s->flags;
		d->last_attempt = s->last_attempt;
		memcpy(d->remote_mta, s->remote_mta, sizeof(d->remote_mta));
	}
}
