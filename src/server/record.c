/* See record.h. */
#include <stdlib.h>

#include "error.h"
#include "record.h"

struct record_job {
	uv_work_t work;
	struct tg_server *srv;
	struct tg_trust *t;           /* a reference taken when queued */
	struct tg_trust_verdict v;
	struct tg_err err;
	int rv;
};

static void
record_work(uv_work_t *w)
{
	struct record_job *j = w->data;

	j->rv = tg_trust_record(j->t, &j->v, &j->err);
}

static void
record_done(uv_work_t *w, int status)
{
	struct record_job *j = w->data;

	if (j->rv < 0)
		tg_log(j->srv, TG_LOG_ERROR, "cannot record the key of %s in %s: %s", j->v.identity,
		    j->t->known, j->err.msg);
	else
		tg_log(j->srv, TG_LOG_INFO, "recorded %s %s in %s", j->v.identity, j->v.pin, j->t->known);
	tg_trust_free(j->t);
	free(j);
}

void
tg_record_pin(struct tg_server *s, struct tg_trust *t, const struct tg_trust_verdict *v)
{
	struct record_job *j = calloc(1, sizeof(*j));

	if (j == NULL) {
		tg_log(s, TG_LOG_ERROR, "cannot record the key of %s: out of memory", v->identity);
		return;
	}
	j->work.data = j;
	j->srv = s;
	j->t = tg_trust_ref(t);
	j->v = *v;
	if (uv_queue_work(s->loop, &j->work, record_work, record_done) != 0) {
		tg_log(s, TG_LOG_ERROR, "cannot record the key of %s: the thread pool refused the job",
		    v->identity);
		tg_trust_free(j->t);
		free(j);
	}
}
