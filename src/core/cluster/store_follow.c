/*
 * The follower: keeps a node's state_dir a copy of the etcd store, so every
 * node learns a new certificate, a changed pin or a removed identity when
 * it happens, by etcd's watch (one long HTTP stream, no polling), and the
 * server swaps it in from the files as it does on one machine.
 *
 * It starts with a pull (every key below the prefix, paged, all at one
 * revision), then watches from the revision after it. A stream that breaks
 * (a member killed, the network gone) is opened again on the next endpoint
 * from the last revision applied, so no change is missed; a revision the
 * cluster compacted away meanwhile means a fresh pull. Lock keys (".locks/")
 * and anything that is not a storable name are never copied.
 *
 * A second thread probes the store every few seconds with a linearizable
 * read (it needs the quorum, unlike the watch): its result is the store's
 * health in /status and /metrics, and the one log line when it changes.
 * Each thread has its own curl handle; the shared figures sit under mu.
 */
#include <errno.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "error.h"
#include "pins.h"
#include "follow.h"
#include "store.h"
#include "store_etcd.h"
#include "util.h"

#define PROBE_MS   3000
#define RETRY_MS   1000
#define DOWN_PROBE_MS 2000   /* one member's limit while the store is down */
#define PAGE       64           /* keys a range asks for first */
#define PAGE_MAX   4096
#define LAG_RESTART_S 10          /* a watch this far behind is opened again */

/* The names this node's copy holds because the store had them (the file
 * .store-copied in state_dir, one a line): a pull deletes those the store
 * no longer has (removed while this node was down, or compacted away),
 * and never touches a file the store never had. Watcher thread only. */
struct names {
	char **v;
	size_t n, cap;
};

/* A known file's pins in the store (pins/NAME/...), kept as NAME.pins in
 * state_dir: built whole by a pull, appended to as new keys arrive. */
#define MAX_PINNED 16
struct pinned {
	char name[300];
	char *text;                  /* during a pull: the lines so far */
	size_t len;
	long long built;             /* NAME.pins holds every key up to here */
};

struct tg_store_follow {
	struct tg_store_conf sc;
	struct pinned pins[MAX_PINNED];
	int need_pull;               /* watcher thread: a pin copy failed */
	struct names copied;
	struct names *pulled;        /* during a pull: the names it found */
	struct tg_store *etcd;       /* for its settings (endpoints, prefix, TLS) */
	struct tg_store *local;
	tg_store_log_fn log;
	void *log_arg;
	pthread_t watcher, prober;
	int started_watcher, started_prober;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	/* under mu */
	struct tg_store_health h;
};

static void
say(struct tg_store_follow *f, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
say(struct tg_store_follow *f, int error, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (f->log)
		f->log(f->log_arg, error, line);
}

/* Waits up to ms unless stopped; 1 when stopping. */
static int
nap(struct tg_store_follow *f, uint64_t ms)
{
	struct timespec until;
	int stop;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += (time_t)(ms / 1000);
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L)
		until.tv_sec++, until.tv_nsec -= 1000000000L;
	pthread_mutex_lock(&f->mu);
	while (!f->stop && pthread_cond_timedwait(&f->cv, &f->mu, &until) != ETIMEDOUT)
		;
	stop = f->stop;
	pthread_mutex_unlock(&f->mu);
	return stop;
}

static int
stopping(struct tg_store_follow *f)
{
	int s;

	pthread_mutex_lock(&f->mu);
	s = f->stop;
	pthread_mutex_unlock(&f->mu);
	return s;
}

/* ---- the names copied -------------------------------------------------------- */

static int
names_find(const struct names *ns, const char *name)
{
	size_t i;

	for (i = 0; i < ns->n; i++)
		if (!strcmp(ns->v[i], name))
			return (int)i;
	return -1;
}

static int
names_add(struct names *ns, const char *name)
{
	if (names_find(ns, name) >= 0)
		return 0;
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 32;
		char **v = realloc(ns->v, cap * sizeof(*v));
		if (v == NULL)
			return -1;
		ns->v = v;
		ns->cap = cap;
	}
	if ((ns->v[ns->n] = strdup(name)) == NULL)
		return -1;
	ns->n++;
	return 1;
}

static void
names_del(struct names *ns, const char *name)
{
	int i = names_find(ns, name);

	if (i < 0)
		return;
	free(ns->v[i]);
	ns->v[i] = ns->v[--ns->n];
}

static void
names_clear(struct names *ns)
{
	size_t i;

	for (i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
	memset(ns, 0, sizeof(*ns));
}

static void
manifest_path(struct tg_store_follow *f, char *buf, size_t len)
{
	snprintf(buf, len, "%s/.store-copied", tg_store_path(f->local));
}

static int
manifest_write(struct tg_store_follow *f, struct tg_err *err)
{
	char path[4200], *text = NULL;
	size_t i, len = 0;
	int rv;

	for (i = 0; i < f->copied.n; i++)
		if (tg_buf_append(&text, &len, 64u << 20, f->copied.v[i], strlen(f->copied.v[i])) < 0 ||
		    tg_buf_append(&text, &len, 64u << 20, "\n", 1) < 0) {
			free(text);
			return tg_err_set(err, TG_E_INTERNAL, "out of memory");
		}
	manifest_path(f, path, sizeof(path));
	rv = tg_write_atomic(path, text ? text : "", len, 1, err);
	free(text);
	return rv;
}

/* The names the last pull copied, from the manifest it wrote. */
static int
manifest_load(struct tg_store_follow *f)
{
	char path[4200], *line, *save = NULL;
	unsigned char *text = NULL;
	size_t len = 0;
	struct tg_err err;
	int rv = 0;

	manifest_path(f, path, sizeof(path));
	if (tg_read_file(path, &text, &len, 64u << 20, &err) < 0)
		return err.code == TG_E_NOT_FOUND ? 0 : -1;
	for (line = strtok_r((char *)text, "\n", &save); line && rv == 0;
	    line = strtok_r(NULL, "\n", &save))
		if (names_add(&f->copied, line) < 0)
			rv = -1;
	OPENSSL_free(text);
	if (rv < 0)
		names_clear(&f->copied);
	return rv;
}

/* Does name exist in the store now (after the pull's revision)? A name
 * missing at the pull's revision but there now was written since: the
 * watch brings it, and deleting the copy meanwhile would take away, for a
 * moment, what a mirror write on this node just put there. When in doubt
 * (the store did not answer) the copy stays too: the watch deletes it if
 * the store did. */
static int
exists_now(struct tg_store_follow *f, CURL *curl, const char *name)
{
	struct etcd_impl *im = f->etcd->impl;
	char key[4600];
	json_t *req, *rep = NULL;
	struct tg_err err;
	int rv = 1;

	snprintf(key, sizeof(key), "%s%s", im->prefix, name);
	req = json_pack("{s:o, s:b}", "key", tg_etcd_key_json(key), "count_only", 1);
	if (req && tg_etcd_call(&im->conf, &im->cur, curl, "/v3/kv/range", req, &rep, &err) == 0)
		rv = tg_etcd_ll(json_object_get(rep, "count")) > 0;
	json_decref(req);
	json_decref(rep);
	return rv;
}

/* After a whole pull (its names in *now): what the copy held from the
 * store before and the store no longer has goes. */
static void
manifest_sweep(struct tg_store_follow *f, CURL *curl, struct names *now)
{
	char path[4200], *line, *save = NULL;
	unsigned char *text = NULL;
	size_t len = 0;
	struct tg_err err;

	manifest_path(f, path, sizeof(path));
	if (tg_read_file(path, &text, &len, 64u << 20, &err) == 0) {
		for (line = strtok_r((char *)text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			if (names_find(now, line) < 0 && tg_store_name_ok(line, &err) == 0 &&
			    strncmp(line, "certs/", 6) != 0 && !exists_now(f, curl, line))
				(void)tg_store_delete(f->local, line, &err);
		OPENSSL_free(text);
	}
	names_clear(&f->copied);
	f->copied = *now;
	memset(now, 0, sizeof(*now));
	(void)manifest_write(f, &err);
}

/* ---- applying one key ------------------------------------------------------ */

/* The key's name below the prefix, or NULL for keys that are not copied:
 * locks, names that are not storable, and each node's own certificates
 * (certs/: they name one node; `store copy` may have put a node's there). */
static const char *
local_name(struct etcd_impl *im, const char *key)
{
	size_t n = strlen(im->prefix);
	struct tg_err err;

	if (strncmp(key, im->prefix, n) != 0 || tg_store_name_ok(key + n, &err) < 0 ||
	    !strncmp(key + n, "certs/", 6))
		return NULL;
	return key + n;
}

/* Writes a value unless the copy already holds exactly it: a rewrite
 * would give the file a new inode, and the server would swap a certificate
 * that did not change. */
static int
apply_put(struct tg_store_follow *f, const char *name, const unsigned char *v, size_t len,
    struct tg_err *err)
{
	unsigned char *cur = NULL;
	size_t clen = 0;
	struct tg_err e2;
	int same = 0;

	if (tg_store_get(f->local, name, &cur, &clen, &e2) == 0) {
		same = clen == len && CRYPTO_memcmp(cur, v, len) == 0;
		tg_free_secret(cur, clen);
	}
	if (same)
		return 0;
	return tg_store_put(f->local, name, v, len, TG_STORE_SECRET, err);
}

/* ---- the cluster's pins --------------------------------------------------- */

static struct pinned *
pinned_of(struct tg_store_follow *f, const char *name)
{
	size_t i;

	for (i = 0; i < MAX_PINNED; i++)
		if (f->pins[i].name[0] && !strcmp(f->pins[i].name, name))
			return &f->pins[i];
	for (i = 0; i < MAX_PINNED; i++)
		if (!f->pins[i].name[0]) {
			snprintf(f->pins[i].name, sizeof(f->pins[i].name), "%s", name);
			return &f->pins[i];
		}
	return NULL;
}

static void
copied_add(struct tg_store_follow *f, const char *name)
{
	struct tg_err e2;

	if (f->pulled)
		(void)names_add(f->pulled, name);
	else if (names_add(&f->copied, name) == 1)
		(void)manifest_write(f, &e2);
}

/* An identity from its key's last part (percent-encoded). */
static int
id_decode(const char *in, char *out, size_t len)
{
	size_t n = 0;

	for (; *in; in++) {
		int c = (unsigned char)*in;
		if (c == '%') {
			int h = tg_hexval(in[1]), l = h < 0 ? -1 : tg_hexval(in[2]);
			if (h < 0 || l < 0)
				return -1;
			c = h * 16 + l;
			in += 2;
		}
		if (n + 1 >= len || c == 0)
			return -1;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return n ? 0 : -1;
}

/* A pin key that changed or went (a removal, a second pin added, a key
 * that changed under insecure-no-validation): NAME.pins is written again
 * without that identity's lines, then with the key's new ones. Local work
 * only: the watch's event says everything (rare: operators' actions). */
static int
pins_replace(struct tg_store_follow *f, const char *jname, const char *identity,
    const unsigned char *val, size_t vlen, struct tg_err *err)
{
	unsigned char *cur = NULL;
	size_t len = 0;
	char *text;
	int rv;

	if (tg_store_get(f->local, jname, &cur, &len, err) < 0) {
		if (err->code != TG_E_NOT_FOUND)
			return -1;
		len = 0;
	}
	if ((text = malloc(len + vlen + 2)) == NULL) {
		OPENSSL_free(cur);
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	}
	if (len)
		memcpy(text, cur, len);
	OPENSSL_free(cur);
	(void)tg_known_drop(text, &len, identity, NULL);
	if (len && text[len - 1] != '\n')
		text[len++] = '\n';
	if (vlen) {
		memcpy(text + len, val, vlen);
		len += vlen;
		if (text[len - 1] != '\n')
			text[len++] = '\n';
	}
	/* a new file renamed over the old: readers read it whole again */
	rv = tg_store_put(f->local, jname, text, len, TG_STORE_SECRET, err);
	free(text);
	return rv;
}

/* One pin key (rest: NAME/IDENTITY). A pull gathers them; the watch
 * appends a new one's lines to NAME.pins, and writes NAME.pins again
 * without the identity's old lines when one changed or went. */
static int
apply_pin(struct tg_store_follow *f, const char *rest, json_t *kv, int deleted,
    struct tg_err *err)
{
	const char *slash = strrchr(rest, '/'), *vb;
	char name[300], jname[320], path[4400];
	struct pinned *p;
	unsigned char *val = NULL;
	size_t vlen = 0;
	long long mod = tg_etcd_ll(json_object_get(kv, "mod_revision"));
	long long created = tg_etcd_ll(json_object_get(kv, "create_revision"));
	struct tg_err e2;
	int fd, rv = 0;

	if (slash == NULL || slash == rest || (size_t)(slash - rest) >= sizeof(name))
		return 0;   /* not a pin key of ours */
	memcpy(name, rest, (size_t)(slash - rest));
	name[slash - rest] = '\0';
	if (tg_store_name_ok(name, &e2) < 0 || !strncmp(name, "certs/", 6))
		return 0;
	if ((p = pinned_of(f, name)) == NULL) {
		say(f, 1, "store: pins of %s not copied: more than %d known files have pins", name,
		    MAX_PINNED);
		return 0;
	}
	snprintf(jname, sizeof(jname), "%s.pins", name);
	if (f->pulled == NULL && mod <= p->built)
		return 0;   /* NAME.pins was read whole after this */
	if (!deleted) {
		vb = json_string_value(json_object_get(kv, "value"));
		if (tg_etcd_unb64(vb ? vb : "", &val, &vlen) < 0) {
			val = NULL;
			rv = tg_err_set(err, TG_E_IO, "%s: the store sent a value that is not base64",
			    jname);
			goto out;
		}
	}
	if (f->pulled) {
		if (tg_buf_append(&p->text, &p->len, 1u << 30, val, vlen) < 0 ||
		    (vlen && val[vlen - 1] != '\n' && tg_buf_append(&p->text, &p->len, 1u << 30,
		    "\n", 1) < 0))
			rv = tg_err_set(err, TG_E_INTERNAL, "out of memory");
		goto out;
	}
	if (deleted || created != mod) {
		char id[1100];
		if (id_decode(slash + 1, id, sizeof(id)) < 0 || !tg_identity_valid(id))
			goto out;   /* not a key tlsgate writes: nothing of it is read */
		rv = pins_replace(f, jname, id, val, vlen, err);
		if (rv == 0)
			copied_add(f, jname);
		goto out;
	}
	/* a new identity: its lines go at the end, one write (O_APPEND) */
	snprintf(path, sizeof(path), "%s/%s", tg_store_path(f->local), jname);
	if (strchr(jname, '/')) {
		char dir[4400];
		tg_path_dir(dir, sizeof(dir), path);
		if (tg_mkdirs(dir, 0700, err) < 0) {
			rv = -1;
			goto out;
		}
	}
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		rv = tg_err_set(err, TG_E_IO, "cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	if (vlen && val[vlen - 1] != '\n') {
		unsigned char *nv = OPENSSL_realloc(val, vlen + 2);
		if (nv == NULL) {
			close(fd);
			rv = tg_err_set(err, TG_E_INTERNAL, "out of memory");
			goto out;
		}
		val = nv;
		val[vlen++] = '\n';
		val[vlen] = '\0';
	}
	if (tg_write_all(fd, val, vlen) < 0)
		rv = tg_err_set(err, TG_E_IO, "cannot write %s: %s", path, strerror(errno));
	close(fd);
	if (rv == 0)
		copied_add(f, jname);
out:
	OPENSSL_free(val);
	if (rv < 0 && f->pulled == NULL) {
		/* a pin not copied must not stop the watch (certificates and
		 * tickets follow it too), nor be skipped: the copy is made
		 * whole again by a pull */
		say(f, 1, "store: %s: %s; copying the store again", jname, err->msg);
		f->need_pull = 1;
		rv = 0;
	}
	return rv;
}

/* After a pull: each NAME.pins whole, as gathered. */
static int
pins_write(struct tg_store_follow *f, long long rev, struct tg_err *err)
{
	size_t i;
	int rv = 0;

	for (i = 0; i < MAX_PINNED; i++) {
		struct pinned *p = &f->pins[i];
		char jname[320];
		if (!p->name[0])
			continue;
		snprintf(jname, sizeof(jname), "%s.pins", p->name);
		if (p->len && rv == 0) {
			if ((rv = apply_put(f, jname, (unsigned char *)p->text, p->len, err)) == 0 &&
			    names_add(f->pulled, jname) < 0)
				rv = tg_err_set(err, TG_E_INTERNAL, "out of memory");
		}
		p->built = rev;
		free(p->text);
		p->text = NULL;
		p->len = 0;
	}
	return rv;
}

static int
apply_kv(struct tg_store_follow *f, json_t *kv, int deleted, struct tg_err *err)
{
	struct etcd_impl *im = f->etcd->impl;
	const char *kb = json_string_value(json_object_get(kv, "key"));
	const char *vb = json_string_value(json_object_get(kv, "value"));
	unsigned char *key = NULL, *val = NULL;
	size_t klen = 0, vlen = 0;
	const char *name;
	int rv = 0;

	if (kb == NULL || tg_etcd_unb64(kb, &key, &klen) < 0)
		return tg_err_set(err, TG_E_IO, "the store sent a key that is not base64");
	if (strlen((char *)key) == klen && !strncmp((char *)key, im->prefix, strlen(im->prefix)) &&
	    !strncmp((char *)key + strlen(im->prefix), "pins/", 5)) {
		rv = apply_pin(f, (char *)key + strlen(im->prefix) + 5, kv, deleted, err);
		goto out;
	}
	if (strlen((char *)key) != klen || (name = local_name(im, (char *)key)) == NULL)
		goto out;
	if (deleted) {
		struct tg_err e2;
		if (tg_store_delete(f->local, name, &e2) < 0 && e2.code != TG_E_NOT_FOUND)
			rv = -1, *err = e2;
		if (names_find(&f->copied, name) >= 0) {
			names_del(&f->copied, name);
			(void)manifest_write(f, &e2);
		}
		goto out;
	}
	if (tg_etcd_unb64(vb ? vb : "", &val, &vlen) < 0) {
		rv = tg_err_set(err, TG_E_IO, "%s: the store sent a value that is not base64", name);
		goto out;
	}
	rv = apply_put(f, name, val, vlen, err);
	if (rv == 0 && f->pulled) {
		if (names_add(f->pulled, name) < 0)
			rv = tg_err_set(err, TG_E_INTERNAL, "out of memory");
	} else if (rv == 0) {
		struct tg_err e2;
		if (names_add(&f->copied, name) == 1)
			(void)manifest_write(f, &e2);
	}
out:
	OPENSSL_free(key);
	if (val)
		OPENSSL_clear_free(val, vlen);
	return rv;
}

/* ---- the pull -------------------------------------------------------------- */

static int
pull(struct tg_store_follow *f, CURL *curl, long long *rev, size_t *count, struct tg_err *err)
{
	struct etcd_impl *im = f->etcd->impl;
	char start[700];
	long long at = 0;
	size_t n = 0, page = PAGE;

	struct names now = { NULL, 0, 0 };
	int rv = -1;

	f->pulled = &now;
	snprintf(start, sizeof(start), "%s", im->prefix);
	for (;;) {
		json_t *req = json_pack("{s:o, s:o, s:I}", "key", tg_etcd_key_json(start),
		    "range_end", tg_etcd_prefix_end(im->prefix), "limit", (json_int_t)page);
		size_t bytes = 0;
		json_t *rep, *kvs, *kv;
		const char *last = NULL;
		unsigned char *lk = NULL;
		size_t lklen, i;
		int more;

		if (req == NULL) {
			tg_err_set(err, TG_E_INTERNAL, "out of memory");
			goto out;
		}
		if (at)   /* every page at the first page's revision: one consistent copy */
			json_object_set_new(req, "revision", json_integer(at));
		if (tg_etcd_call(&im->conf, &im->cur, curl, "/v3/kv/range", req, &rep, err) < 0) {
			json_decref(req);
			if (page > PAGE) {
				/* grown on small values, the page met big ones (a reply
				 * over MAX_REPLY): the same start again, small */
				page = PAGE;
				continue;
			}
			goto out;
		}
		json_decref(req);
		if (!at && (at = tg_etcd_ll(json_object_get(json_object_get(rep, "header"),
		    "revision"))) <= 0) {
			json_decref(rep);
			tg_err_set(err, TG_E_IO, "etcd answered a range without its revision");
			goto out;
		}
		kvs = json_object_get(rep, "kvs");
		json_array_foreach(kvs, i, kv) {
			if (apply_kv(f, kv, 0, err) < 0) {
				json_decref(rep);
				goto out;
			}
			last = json_string_value(json_object_get(kv, "key"));
			bytes += json_string_length(json_object_get(kv, "value"));
			n++;
		}
		/* pages of small values (a fleet's pins) grow, of big ones shrink:
		 * a million keys are not a million requests, and a reply stays
		 * far below what one may hold */
		if (bytes < (1u << 20) && page < PAGE_MAX)
			page *= 2;
		else if (bytes > (8u << 20) && page > PAGE)
			page /= 2;
		more = json_is_true(json_object_get(rep, "more")) && last != NULL;
		if (more && (tg_etcd_unb64(last, &lk, &lklen) < 0 || lklen + 2 > sizeof(start))) {
			OPENSSL_free(lk);
			json_decref(rep);
			tg_err_set(err, TG_E_IO, "the store sent a key that cannot be followed");
			goto out;
		}
		if (more) {   /* the next page starts just past the last key */
			memcpy(start, lk, lklen);
			start[lklen] = '\0';
			OPENSSL_free(lk);
			/* key + "\0" is not a C string; the smallest key after
			 * "k" that is one is "k" + "\x01" */
			start[lklen] = '\x01';
			start[lklen + 1] = '\0';
		}
		json_decref(rep);
		if (!more)
			break;
	}
	if (pins_write(f, at, err) < 0)
		goto out;
	*rev = at;
	if (count)
		*count = n;
	f->pulled = NULL;
	manifest_sweep(f, curl, &now);   /* a whole copy: what the store lost goes */
	rv = 0;
out:
	f->pulled = NULL;
	names_clear(&now);
	for (size_t i = 0; i < MAX_PINNED; i++) {   /* a pull cut short: gathered for nothing */
		free(f->pins[i].text);
		f->pins[i].text = NULL;
		f->pins[i].len = 0;
	}
	return rv;
}

/* The last whole pull this process made (before it forked its workers):
 * the watcher of the same state_dir follows on from its revision instead
 * of copying a fleet's keys a second time. */
static struct {
	pthread_mutex_t mu;
	char state_dir[PATH_MAX];
	long long rev;
	uint64_t at_ms;              /* monotonic: a clock set back does not matter */
} last_pull = { PTHREAD_MUTEX_INITIALIZER, "", 0, 0 };
/* only a watcher started with the process: a worker forked again hours
 * later (the first one died) pulls whole, or it would replay hours of
 * events over newer files */
#define PULL_FRESH_S 60

/* ---- the watch ------------------------------------------------------------- */

struct stream {
	struct tg_store_follow *f;
	char *buf;
	size_t len;
	long long rev;               /* last revision applied */
	int resync;                  /* compacted: pull again */
	int pin_failed;              /* a pin was not copied: pull again */
	int failed;
	struct tg_err err;
};

/* One message of the stream: {"result": {"header":..., "events": [...]}}. */
static int
on_message(struct stream *s, json_t *msg)
{
	json_t *res = json_object_get(msg, "result"), *ev;
	size_t i;

	if (res == NULL) {
		json_t *e = json_object_get(msg, "error");
		const char *m = json_string_value(json_object_get(e, "message"));
		tg_err_set(&s->err, TG_E_CONNECT, "the watch ended: %s", m ? m : "unknown error");
		return -1;
	}
	if (tg_etcd_ll(json_object_get(res, "compact_revision")) > 0) {
		s->resync = 1;
		return -1;
	}
	if (json_is_true(json_object_get(res, "canceled"))) {
		const char *why = json_string_value(json_object_get(res, "cancel_reason"));
		tg_err_set(&s->err, TG_E_CONNECT, "etcd cancelled the watch: %s", why ? why : "no reason");
		return -1;
	}
	json_array_foreach(json_object_get(res, "events"), i, ev) {
		json_t *kv = json_object_get(ev, "kv");
		const char *type = json_string_value(json_object_get(ev, "type"));
		long long r = tg_etcd_ll(json_object_get(kv, "mod_revision"));
		if (apply_kv(s->f, kv, type && !strcmp(type, "DELETE"), &s->err) < 0) {
			s->failed = 1;
			return -1;
		}
		if (s->f->need_pull) {   /* a pin copy failed: a whole pull repairs it */
			s->f->need_pull = 0;
			s->resync = s->pin_failed = 1;
			return -1;
		}
		if (r > s->rev)
			s->rev = r;
		pthread_mutex_lock(&s->f->mu);
		s->f->h.events++;
		s->f->h.applied = s->rev;
		s->f->h.last_event = time(NULL);
		pthread_mutex_unlock(&s->f->mu);
	}
	return 0;
}

static size_t
on_stream(char *p, size_t size, size_t n, void *arg)
{
	struct stream *s = arg;
	size_t add = size * n, off = 0;

	if (tg_buf_append(&s->buf, &s->len, MAX_REPLY, p, add) < 0)
		return 0;
	/* the gateway sends one JSON object per message; a message may come
	 * in several pieces, or several in one */
	for (;;) {
		json_error_t je;
		json_t *msg;
		while (off < s->len && (s->buf[off] == '\n' || s->buf[off] == '\r' ||
		    s->buf[off] == ' '))
			off++;
		if (off == s->len)
			break;
		msg = json_loadb(s->buf + off, s->len - off, JSON_DISABLE_EOF_CHECK, &je);
		if (msg == NULL)
			break;   /* not whole yet */
		off += (size_t)je.position;
		if (on_message(s, msg) < 0) {
			json_decref(msg);
			return 0;   /* ends the transfer */
		}
		json_decref(msg);
	}
	if (off) {
		OPENSSL_cleanse(s->buf, off);
		memmove(s->buf, s->buf + off, s->len - off);
		s->len -= off;
	}
	return add;
}

static int
on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct stream *s = arg;
	time_t behind;
	int stop, lagging;

	(void)a, (void)b, (void)c, (void)d;
	/* libcurl calls this about once a second when idle */
	pthread_mutex_lock(&s->f->mu);
	stop = s->f->stop;
	behind = s->f->h.behind_since;
	lagging = s->f->h.applied < s->f->h.revision;
	pthread_mutex_unlock(&s->f->mu);
	if (!stop && lagging && behind && time(NULL) - behind > LAG_RESTART_S) {
		/* the probe sees newer keys than the stream brought: a member cut
		 * off from its quorum keeps a watch open and silent */
		tg_err_set(&s->err, TG_E_CONNECT, "the watch lagged the store for over %d s (its "
		    "member may be cut off from the quorum)", LAG_RESTART_S);
		return 1;
	}
	return stop;
}

/* One watch stream from rev+1 on the endpoint after *cur; returns when it
 * breaks or when stopping. */
static void
watch_once(struct tg_store_follow *f, CURL *curl, size_t e, struct stream *s)
{
	struct etcd_impl *im = f->etcd->impl;
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	json_t *req = json_pack("{s:{s:o, s:o, s:I}}", "create_request", "key",
	    tg_etcd_key_json(im->prefix), "range_end", tg_etcd_prefix_end(im->prefix),
	    "start_revision", (json_int_t)(s->rev + 1));
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	char url[600], cerr[CURL_ERROR_SIZE] = "";
	CURLcode c;

	json_decref(req);
	if (text == NULL || hdr == NULL) {
		tg_err_set(&s->err, TG_E_INTERNAL, "out of memory");
		goto out;
	}
	if (im->conf.auth) {
		char tok[2048], h[2100];
		struct curl_slist *h2;
		if (tg_etcd_token(&im->conf, &e, curl, tok, sizeof(tok), &s->err) < 0)
			goto out;
		snprintf(h, sizeof(h), "Authorization: %s", tok);
		if ((h2 = curl_slist_append(hdr, h)) != NULL)
			hdr = h2;
		OPENSSL_cleanse(tok, sizeof(tok));
		OPENSSL_cleanse(h, sizeof(h));
	}
	snprintf(url, sizeof(url), "%s/v3/watch", im->conf.endpoints[e]);
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, s);
	/* a member that vanished without a word (power, network) is noticed
	 * by keepalive probes rather than never */
	curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(curl, CURLOPT_TCP_KEEPIDLE, 5L);
	curl_easy_setopt(curl, CURLOPT_TCP_KEEPINTVL, 2L);
	tg_etcd_curl_tls(curl, &im->conf);
	c = curl_easy_perform(curl);
	if (!s->resync && !s->failed && !s->err.msg[0] && !stopping(f))
		tg_err_set(&s->err, TG_E_CONNECT, "etcd at %s: the watch stream ended: %s%s",
		    im->conf.endpoints[e], cerr[0] ? cerr : curl_easy_strerror(c),
		    tg_etcd_hint(&im->conf, e, c, cerr));
out:
	curl_slist_free_all(hdr);
	free(text);
	if (s->buf) {
		OPENSSL_cleanse(s->buf, s->len);
		free(s->buf);
	}
	s->buf = NULL;
	s->len = 0;
}

static void *
watcher(void *arg)
{
	struct tg_store_follow *f = arg;
	struct etcd_impl *im = f->etcd->impl;
	CURL *curl = curl_easy_init();
	struct stream s;
	long long rev = 0;
	size_t e = 0;
	int need_pull = 1, quiet = 0;
	uint64_t pull_wait = RETRY_MS * 2;

	if (curl == NULL) {
		say(f, 1, "store: cannot follow etcd: out of memory; this node will not learn "
		    "other nodes' changes until restarted");
		return NULL;
	}
	pthread_mutex_lock(&last_pull.mu);
	if (last_pull.rev > 0 && !strcmp(last_pull.state_dir, f->sc.state_dir) &&
	    tg_now_ms() - last_pull.at_ms < PULL_FRESH_S * 1000u && manifest_load(f) == 0) {
		rev = last_pull.rev;   /* copied a moment ago: follow on from there */
		need_pull = 0;
		pthread_mutex_lock(&f->mu);
		f->h.applied = rev;
		f->h.pulls++;
		pthread_mutex_unlock(&f->mu);
	}
	pthread_mutex_unlock(&last_pull.mu);
	while (!stopping(f)) {
		struct tg_err err;
		if (need_pull) {
			size_t n = 0;
			if (pull(f, curl, &rev, &n, &err) < 0) {
				if (!quiet++)
					say(f, 1, "store: copying the store into state_dir failed: %s; "
					    "serving from the copy there, trying again", err.msg);
				/* 2 s, doubling to a minute: a failure that stays (a full
				 * disk) must not read a fleet's keys every two seconds */
				nap(f, pull_wait);
				if (pull_wait < 60000)
					pull_wait *= 2;
				continue;
			}
			pull_wait = RETRY_MS * 2;
			pthread_mutex_lock(&f->mu);
			f->h.applied = rev;
			f->h.pulls++;
			pthread_mutex_unlock(&f->mu);
			need_pull = 0;
		}
		memset(&s, 0, sizeof(s));
		s.f = f;
		s.rev = rev;
		e = im->cur;
		watch_once(f, curl, e, &s);
		pthread_mutex_lock(&f->mu);
		f->h.watch_restarts++;
		pthread_mutex_unlock(&f->mu);
		if (s.rev > rev) {
			rev = s.rev;
			quiet = 0;
		}
		if (s.resync && s.pin_failed) {
			need_pull = 1;   /* said by apply_pin */
			continue;
		}
		if (s.resync) {
			say(f, 0, "store: the cluster compacted revisions this node had not seen; "
			    "copying the store again");
			need_pull = 1;
			continue;
		}
		if (stopping(f))
			break;
		if (tg_etcd_token_refused(s.err.msg))
			tg_etcd_token_drop(&im->conf);   /* log in again for the next watch */
		if (!quiet++)
			say(f, 1, "store: %s; following from revision %lld on the next member",
			    s.err.msg, rev);
		im->cur = (e + 1) % im->conf.n;
		nap(f, RETRY_MS);
	}
	curl_easy_cleanup(curl);
	return NULL;
}

/* ---- the probe ------------------------------------------------------------- */

static void *
prober(void *arg)
{
	struct tg_store_follow *f = arg;
	struct tg_store_conf *sc = &f->sc;
	struct tg_err err;
	struct tg_store *st = tg_store_etcd_open_conf(sc, &err);
	struct etcd_impl *im;
	long full;
	int was_up = 1;

	if (st == NULL) {
		say(f, 1, "store: cannot probe etcd: %s", err.msg);
		return NULL;
	}
	im = st->impl;
	full = im->conf.timeout_ms;   /* store.timeout */
	do {
		uint64_t t0 = tg_now_ms();

		/* while the store is down, each member gets at most 2 s and the
		 * probe comes back every second: members without a quorum each
		 * wait out the timeout, and three of them at store.timeout would
		 * hide the store's return for 15 s and more */
		im->conf.timeout_ms = was_up || full < DOWN_PROBE_MS ? full : DOWN_PROBE_MS;

		tg_err_set(&err, TG_E_INTERNAL, "out of memory");
		/* the newest key below the prefix: its revision is what the copy
		 * must have reached (the store's own revision also counts other
		 * prefixes' writes) */
		json_t *req = json_pack("{s:o, s:o, s:i, s:s, s:s, s:b}", "key",
		    tg_etcd_key_json(im->prefix), "range_end", tg_etcd_prefix_end(im->prefix),
		    "limit", 1, "sort_order", "DESCEND", "sort_target", "MOD", "keys_only", 1);
		json_t *rep = NULL;
		int ok = req && tg_etcd_call(&im->conf, &im->cur, im->curl, "/v3/kv/range", req, &rep,
		    &err) == 0;
		uint64_t dt = tg_now_ms() - t0;

		json_decref(req);
		pthread_mutex_lock(&f->mu);
		f->h.probes++;
		f->h.up = ok;
		tg_store_set_up(ok);
		f->h.latency_ms = (double)dt;
		if (ok) {
			f->h.revision = tg_etcd_ll(json_object_get(json_array_get(json_object_get(rep,
			    "kvs"), 0), "mod_revision"));
			f->h.keys = tg_etcd_ll(json_object_get(rep, "count"));
			f->h.last_error[0] = '\0';
			if (!f->started_watcher || f->h.applied >= f->h.revision)
				f->h.behind_since = 0;
			else if (f->h.behind_since == 0)
				f->h.behind_since = time(NULL);
		} else {
			f->h.failures++;
			snprintf(f->h.last_error, sizeof(f->h.last_error), "%s", err.msg);
		}
		if (ok != was_up)
			f->h.since = time(NULL);
		pthread_mutex_unlock(&f->mu);
		json_decref(rep);
		if (!ok && was_up)
			say(f, 1, "store: %s; serving on from memory and state_dir (certificates, pins "
			    "and keys keep working); writes (first-contact pins, ACME orders, trust "
			    "changes) are refused until it is back", err.msg);
		else if (ok && !was_up)
			say(f, 0, "store: etcd answers again (%llu ms); writes are accepted",
			    (unsigned long long)dt);
		was_up = ok;
	} while (!nap(f, was_up ? PROBE_MS : RETRY_MS));
	tg_store_free(st);
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------- */

int
tg_store_pull(const struct tg_store_conf *sc, long long *rev, size_t *count, struct tg_err *err)
{
	struct tg_store_follow f;
	CURL *curl;
	int rv = -1;

	memset(&f, 0, sizeof(f));
	if ((f.etcd = tg_store_etcd_open_conf(sc, err)) == NULL)
		return -1;
	if (tg_mkdirs(sc->state_dir, 0700, err) < 0 ||
	    (f.local = tg_store_fs_open(sc->state_dir, err)) == NULL)
		goto out;
	pthread_mutex_init(&f.mu, NULL);
	if ((curl = curl_easy_init()) == NULL) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
	} else {
		rv = pull(&f, curl, rev, count, err);
		curl_easy_cleanup(curl);
		if (rv == 0) {
			pthread_mutex_lock(&last_pull.mu);
			snprintf(last_pull.state_dir, sizeof(last_pull.state_dir), "%s", sc->state_dir);
			last_pull.rev = *rev;
			last_pull.at_ms = tg_now_ms();
			pthread_mutex_unlock(&last_pull.mu);
		}
	}
	pthread_mutex_destroy(&f.mu);
out:
	names_clear(&f.copied);
	tg_store_free(f.local);
	tg_store_free(f.etcd);
	return rv;
}

struct tg_store_follow *
tg_store_follow_start(const struct tg_store_conf *sc, int watch, tg_store_log_fn log,
    void *arg, struct tg_err *err)
{
	struct tg_store_follow *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory"), NULL;
	f->sc = *sc;
	f->log = log;
	f->log_arg = arg;
	f->h.up = 1;
	f->h.since = time(NULL);
	pthread_mutex_init(&f->mu, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&f->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	if ((f->etcd = tg_store_etcd_open_conf(sc, err)) == NULL ||
	    (f->local = tg_store_fs_open(sc->state_dir, err)) == NULL)
		goto fail;
	if (watch && pthread_create(&f->watcher, NULL, watcher, f) != 0) {
		tg_err_set(err, TG_E_INTERNAL, "cannot start the store follower thread");
		goto fail;
	}
	pthread_mutex_lock(&f->mu);
	f->started_watcher = watch;
	f->h.watching = watch;
	pthread_mutex_unlock(&f->mu);
	if (pthread_create(&f->prober, NULL, prober, f) != 0) {
		tg_err_set(err, TG_E_INTERNAL, "cannot start the store probe thread");
		tg_store_follow_stop(f);
		return NULL;
	}
	f->started_prober = 1;
	return f;
fail:
	tg_store_follow_stop(f);
	return NULL;
}

void
tg_store_follow_stop(struct tg_store_follow *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->mu);
	f->stop = 1;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	if (f->started_watcher)
		pthread_join(f->watcher, NULL);
	if (f->started_prober)
		pthread_join(f->prober, NULL);
	names_clear(&f->copied);
	tg_store_free(f->local);
	tg_store_free(f->etcd);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

void
tg_store_follow_health(struct tg_store_follow *f, struct tg_store_health *h)
{
	pthread_mutex_lock(&f->mu);
	*h = f->h;
	pthread_mutex_unlock(&f->mu);
}
