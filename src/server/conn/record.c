/* See record.h. */
#include <stdlib.h>

#include <stdio.h>

#include "error.h"
#include "magic.h"
#include "record.h"

struct tg_record_job {
	uint32_t magic;
	uv_work_t work;
	struct tg_server *srv;
	struct tg_trust *t;           /* a reference taken when queued */
	struct tg_record_waiter w;    /* w.decided NULL: nobody waits (or not any more) */
	char peer[64];
	struct tg_trust_verdict v;
	struct tg_err err;
	int rv;
};

static void
record_work(uv_work_t *w)
{
	struct tg_record_job *j = w->data;

	TG_MAGIC_CHECK(j, TG_RECORD_MAGIC, "pin record");
	j->rv = tg_trust_record(j->t, &j->v, &j->err);
}

static void
record_done(uv_work_t *w, int status)
{
	struct tg_record_job *j = w->data;
	int waits = j->w.decided != NULL;

	TG_MAGIC_CHECK(j, TG_RECORD_MAGIC, "pin record");
	if (j->rv < 0 && status == 0 && j->err.code == TG_E_TRUST && waits)
		/* another key was pinned first (another node, another process):
		 * refused like a changed key */
		tg_log(j->srv, TG_LOG_WARN, "%s: refused client certificate: %s", j->peer, j->err.msg);
	else if (j->rv < 0 || status != 0)
		tg_log(j->srv, TG_LOG_ERROR, "cannot record the key of %s in %s: %s%s", j->v.identity,
		    j->t->known, status ? "cancelled" : j->err.msg, waits ? "; its connection is closed "
		    "(a first contact the cluster did not record is not let in)" : "");
	else
		tg_log(j->srv, TG_LOG_INFO, "recorded %s %s in %s", j->v.identity, j->v.pin, j->t->known);
	if (waits) {
		*j->w.slot = NULL;
		j->w.decided(j->w.arg, j->rv == 0 && status == 0);
	}
	tg_trust_free(j->t);
	j->magic = 0;
	free(j);
}

int
tg_record_pin(struct tg_server *s, struct tg_trust *t, const struct tg_trust_verdict *v,
    const struct tg_record_waiter *w)
{
	struct tg_record_job *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		tg_log(s, TG_LOG_ERROR, "cannot record the key of %s: out of memory", v->identity);
		return -1;
	}
	j->magic = TG_RECORD_MAGIC;
	j->work.data = j;
	j->srv = s;
	j->t = tg_trust_ref(t);
	j->v = *v;
	if (w) {
		j->w = *w;
		snprintf(j->peer, sizeof(j->peer), "%s", w->peer);
	}
	if (uv_queue_work(s->loop, &j->work, record_work, record_done) != 0) {
		tg_log(s, TG_LOG_ERROR, "cannot record the key of %s: the thread pool refused the job",
		    v->identity);
		tg_trust_free(j->t);
		free(j);
		return -1;
	}
	if (w)
		*w->slot = j;
	return 0;
}

void
tg_record_abort(struct tg_record_job **slot)
{
	struct tg_record_job *j = *slot;

	if (j == NULL)
		return;
	TG_MAGIC_CHECK(j, TG_RECORD_MAGIC, "pin record");
	j->w.decided = NULL;   /* the record goes on; its end calls nobody */
	*slot = NULL;
}
