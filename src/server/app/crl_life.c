/*
 * The local CA's CRL kept current by a serving node: when the CA has one
 * (state_dir/ca/crl.pem, made by the first `tlsgate cert revoke` or `ca
 * crl`), it is signed again before half its validity is gone, on the
 * thread pool, checked at start and every hour. The admin listener serves
 * it (admin.c: /crl, /crl.pem). In a cluster the CRL is the store's: each
 * node asks, the first to take the store's lock signs it, and the
 * followers bring it to every node.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crl_life.h"
#include "error.h"
#include "magic.h"
#include "pki.h"
#include "server.h"
#include "store.h"
#include "util.h"

#define CRL_CHECK_MS (3600 * 1000)

struct crl_job {
	uv_work_t work;
	struct tg_server *srv;
	char dir[PATH_MAX];
	struct tg_store_conf sc;   /* a copy: the job owns what it reads */
	int shared;                /* a cluster's store: sc is set */
	struct tg_err err;
	int rv;
};

static void
crl_work(uv_work_t *w)
{
	struct crl_job *j = w->data;
	char p[PATH_MAX + 16];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/crl.pem", j->dir);
	j->rv = stat(p, &sb) == 0 ? tg_crl_refresh(j->dir, j->shared ? &j->sc : NULL,
	    &j->err) : 0;
}

static void
crl_done(uv_work_t *w, int status)
{
	struct crl_job *j = w->data;
	struct tg_server *s = j->srv;

	TG_MAGIC_CHECK(s, TG_SERVER_MAGIC, "server");
	s->crl_busy = 0;
	if (status == 0 && j->rv < 0)
		tg_log(s, TG_LOG_ERROR, "ca: the CRL of %s could not be signed again: %s; relying "
		    "parties with a hard-fail policy refuse this CA's certificates once it expires",
		    j->dir, j->err.msg);
	else if (status == 0 && j->rv > 0)
		tg_log(s, TG_LOG_INFO, "ca: the CRL of %s signed again (valid %d days)", j->dir,
		    TG_CRL_DAYS);
	free(j);
}

static void
on_crl_tick(uv_timer_t *t)
{
	struct tg_server *s = t->data;
	struct crl_job *j;

	TG_MAGIC_CHECK(s, TG_SERVER_MAGIC, "server");
	if (s->stopping || s->crl_busy || (j = calloc(1, sizeof(*j))) == NULL)
		return;
	j->work.data = j;
	j->srv = s;
	if (s->store) {
		j->sc = *s->store;
		j->shared = 1;
	}
	if (tg_path_fmt(j->dir, sizeof(j->dir), NULL, "%s/ca", s->state_dir) < 0 ||
	    uv_queue_work(s->loop, &j->work, crl_work, crl_done) != 0) {
		free(j);
		return;
	}
	s->crl_busy = 1;
}

void
tg_crl_life_start(struct tg_server *s)
{
	if (s->worker_index != 0 || s->crl_on)
		return;
	uv_timer_init(s->loop, &s->crl_tick);
	s->crl_tick.data = s;
	uv_timer_start(&s->crl_tick, on_crl_tick, 1000, CRL_CHECK_MS);
	uv_unref((uv_handle_t *)&s->crl_tick);
	s->crl_on = 1;
}

void
tg_crl_life_stop(struct tg_server *s)
{
	if (!s->crl_on)
		return;
	uv_close((uv_handle_t *)&s->crl_tick, NULL);
	s->crl_on = 0;
}
