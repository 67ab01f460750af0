/* See record.h. */
#include <stdlib.h>

#include "conn.h"
#include "error.h"
#include "magic.h"
#include "record.h"

struct tg_record_job {
	uint32_t magic;
	uv_work_t work;
	struct tg_server *srv;
	struct tg_trust *t;           /* a reference taken when queued */
	struct tg_conn_s *conn;       /* waits for the outcome; NULL when gone */
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
	struct tg_conn_s *c = j->conn;

	TG_MAGIC_CHECK(j, TG_RECORD_MAGIC, "pin record");
	if (j->rv < 0 && status == 0 && j->err.code == TG_E_TRUST && c)
		/* another key was pinned first (another node, another process):
		 * refused like a changed key */
		tg_log(j->srv, TG_LOG_WARN, "%s: refused client certificate: %s", c->peer, j->err.msg);
	else if (j->rv < 0 || status != 0)
		tg_log(j->srv, TG_LOG_ERROR, "cannot record the key of %s in %s: %s%s", j->v.identity,
		    j->t->known, status ? "cancelled" : j->err.msg, c ? "; its connection is closed "
		    "(a first contact the cluster did not record is not let in)" : "");
	else
		tg_log(j->srv, TG_LOG_INFO, "recorded %s %s in %s", j->v.identity, j->v.pin, j->t->known);
	if (c) {
		TG_MAGIC_CHECK(c, TG_CONN_MAGIC, "connection");
		c->record = NULL;
		tg_conn_pin_decided(c, j->rv == 0 && status == 0);
	}
	tg_trust_free(j->t);
	j->magic = 0;
	free(j);
}

int
tg_record_pin(struct tg_server *s, struct tg_trust *t, const struct tg_trust_verdict *v,
    struct tg_conn_s *c)
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
	j->conn = c;
	if (uv_queue_work(s->loop, &j->work, record_work, record_done) != 0) {
		tg_log(s, TG_LOG_ERROR, "cannot record the key of %s: the thread pool refused the job",
		    v->identity);
		tg_trust_free(j->t);
		free(j);
		return -1;
	}
	if (c)
		c->record = j;
	return 0;
}

void
tg_record_abort(struct tg_conn_s *c)
{
	if (c->record == NULL)
		return;
	TG_MAGIC_CHECK(c->record, TG_RECORD_MAGIC, "pin record");
	c->record->conn = NULL;   /* the record goes on; its end touches no connection */
	c->record = NULL;
}
