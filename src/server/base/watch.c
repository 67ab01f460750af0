/* See watch.h. */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "magic.h"
#include "watch.h"
#include "trust.h"

struct tg_known_watch {
	uint32_t magic;              /* TG_WATCH_MAGIC while it lives */
	struct tg_server *srv;
	struct tg_trust *t;          /* a reference; NULL for a plain file watch */
	void (*changed)(void *);     /* a plain file watch: what to call */
	void *arg;
	struct tg_known_watch *next;
	uv_fs_event_t ev;
	char name[NAME_MAX + 1];     /* the known file's name in the folder */
	int busy, again;             /* a re-read is queued; another change came meanwhile */
	int stopped, closed;
	uv_work_t work;
	struct tg_err err;
	int rv;
};

static void queue_read(struct tg_known_watch *w);

static void
watch_free(struct tg_known_watch *w)
{
	tg_trust_free(w->t);
	w->magic = 0;
	free(w);
}

static void
on_closed(uv_handle_t *h)
{
	struct tg_known_watch *w = h->data;

	TG_MAGIC_CHECK(w, TG_WATCH_MAGIC, "known-file watch");
	w->closed = 1;
	if (!w->busy)
		watch_free(w);
	/* else read_done frees it */
}

static void
read_work(uv_work_t *r)
{
	struct tg_known_watch *w = r->data;

	TG_MAGIC_CHECK(w, TG_WATCH_MAGIC, "known-file watch");
	w->rv = tg_trust_refresh(w->t, &w->err);
}

static void
read_done(uv_work_t *r, int status)
{
	struct tg_known_watch *w = r->data;

	TG_MAGIC_CHECK(w, TG_WATCH_MAGIC, "known-file watch");
	w->busy = 0;
	if (w->stopped) {
		if (w->closed)
			watch_free(w);   /* closed while we read: on_closed left it to us */
		return;
	}
	if (w->rv < 0 && status == 0)
		tg_log(w->srv, TG_LOG_ERROR, "%s changed but cannot be read: %s; the list read before "
		    "stays in use", w->t->known, w->err.msg);
	if (w->again) {
		w->again = 0;
		queue_read(w);
	}
}

static void
queue_read(struct tg_known_watch *w)
{
	if (w->busy) {
		w->again = 1;   /* one more read after this one */
		return;
	}
	w->work.data = w;
	if (uv_queue_work(w->srv->loop, &w->work, read_work, read_done) == 0)
		w->busy = 1;
}

/* NAME.pins: a cluster's pins for the known file NAME (pins.h) */
static int
is_pins_of(const char *file, const char *name)
{
	size_t n = strlen(name);

	return !strncmp(file, name, n) && !strcmp(file + n, ".pins");
}

static void
on_change(uv_fs_event_t *h, const char *file, int events, int status)
{
	struct tg_known_watch *w = h->data;

	TG_MAGIC_CHECK(w, TG_WATCH_MAGIC, "known-file watch");
	if (w->stopped)
		return;
	if (status == 0 && file != NULL && strcmp(file, w->name) != 0 &&
	    !(w->t && is_pins_of(file, w->name)))
		return;   /* another file in the folder (its lock, a temp file) */
	if (w->changed)
		w->changed(w->arg);
	else
		queue_read(w);
}

/* A watch on the folder of path, not yet in the server's list; NULL when
 * it cannot be had (logged). */
static struct tg_known_watch *
watch_new(struct tg_server *s, const char *path)
{
	struct tg_known_watch *w;
	char dir[PATH_MAX], base[PATH_MAX];
	int r;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		tg_log(s, TG_LOG_WARN, "%s: cannot watch it (out of memory); it is checked each time "
		    "instead", path);
		return NULL;
	}
	w->magic = TG_WATCH_MAGIC;
	w->srv = s;
	snprintf(dir, sizeof(dir), "%s", path);
	snprintf(base, sizeof(base), "%s", path);
	snprintf(w->name, sizeof(w->name), "%s", basename(base));
	uv_fs_event_init(s->loop, &w->ev);
	w->ev.data = w;
	if ((r = uv_fs_event_start(&w->ev, on_change, dirname(dir), 0)) != 0) {
		tg_log(s, TG_LOG_WARN, "%s: cannot watch its folder (%s%s); it is checked each time "
		    "instead", path, uv_strerror(r), r == UV_ENOSPC ?
		    ": raise fs.inotify.max_user_watches" : "");
		uv_close((uv_handle_t *)&w->ev, on_closed);
		return NULL;
	}
	return w;
}

void
tg_known_watch_start(struct tg_server *s, struct tg_trust *t)
{
	struct tg_known_watch *w;

	if (t == NULL || t->mode == TG_TRUST_CA || t->known[0] == '\0')
		return;
	if ((w = watch_new(s, t->known)) == NULL)
		return;
	w->t = tg_trust_ref(t);
	/* read now, so no handshake waits for the first read of the file */
	if (tg_trust_refresh(t, &w->err) < 0)
		tg_log(s, TG_LOG_WARN, "%s: %s", t->known, w->err.msg);
	t->watched = 1;
	w->next = s->known_watches;
	s->known_watches = w;
}

int
tg_file_watch_start(struct tg_server *s, const char *path, void (*changed)(void *), void *arg)
{
	struct tg_known_watch *w = watch_new(s, path);

	if (w == NULL)
		return -1;
	w->changed = changed;
	w->arg = arg;
	w->next = s->known_watches;
	s->known_watches = w;
	return 0;
}

static void
stop_one(struct tg_known_watch *w)
{
	w->stopped = 1;
	if (w->t)
		w->t->watched = 0;   /* whoever still judges with it goes back to stat() */
	uv_close((uv_handle_t *)&w->ev, on_closed);
}

void
tg_known_watch_stop(struct tg_server *s, struct tg_trust *t)
{
	struct tg_known_watch **pp, *w;

	for (pp = &s->known_watches; (w = *pp) != NULL; pp = &w->next) {
		if (t != NULL && w->t == t) {
			*pp = w->next;
			stop_one(w);
			return;
		}
	}
}

void
tg_known_watch_stop_all(struct tg_server *s)
{
	struct tg_known_watch *w;

	while ((w = s->known_watches) != NULL) {
		s->known_watches = w->next;
		stop_one(w);
	}
}

void
tg_file_sig_of(const char *path, struct tg_file_sig *sig)
{
	struct stat st;

	memset(sig, 0, sizeof(*sig));
	if (path[0] && stat(path, &st) == 0) {
		sig->dev = (uint64_t)st.st_dev;
		sig->ino = (uint64_t)st.st_ino;
		sig->size = (int64_t)st.st_size;
		sig->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		sig->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
	}
}
