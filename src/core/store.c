/*
 * The storage interface: name checks and dispatch to the backend. Names are
 * relative paths of [A-Za-z0-9._-] segments; nothing can name a place
 * outside the store.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "error.h"
#include "store.h"
#include "util.h"

static int
name_ok(const char *name, struct tg_err *err)
{
	const char *p = name;

	if (name[0] == '\0' || name[0] == '/')
		goto bad;
	for (; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-' || *p == '/'))
			goto bad;
		if ((p == name || p[-1] == '/') && p[0] == '.')
			goto bad;   /* no "..", no hidden names */
		if (p[0] == '/' && (p[1] == '/' || p[1] == '\0'))
			goto bad;
	}
	return 0;
bad:
	return tg_err_set(err, TG_E_INTERNAL, "bad store name '%s'", name);
}

int
tg_store_get(struct tg_store *st, const char *name, unsigned char **out, size_t *len,
    struct tg_err *err)
{
	if (name_ok(name, err) < 0)
		return -1;
	return st->ops->get(st, name, out, len, err);
}

int
tg_store_put(struct tg_store *st, const char *name, const void *data, size_t len,
    int flags, struct tg_err *err)
{
	if (name_ok(name, err) < 0)
		return -1;
	return st->ops->put(st, name, data, len, flags, err);
}

int
tg_store_delete(struct tg_store *st, const char *name, struct tg_err *err)
{
	if (name_ok(name, err) < 0)
		return -1;
	return st->ops->del(st, name, err);
}

int
tg_store_exists(struct tg_store *st, const char *name)
{
	unsigned char *b;
	size_t n;
	struct tg_err err;

	if (tg_store_get(st, name, &b, &n, &err) < 0)
		return 0;
	tg_free_secret(b, n);
	return 1;
}

char **
tg_store_list(struct tg_store *st, const char *prefix, struct tg_err *err)
{
	if (prefix[0] && name_ok(prefix, err) < 0)
		return NULL;
	return st->ops->list(st, prefix, err);
}

int
tg_store_lock(struct tg_store *st, const char *name, int wait_ms, struct tg_err *err)
{
	if (name_ok(name, err) < 0)
		return -1;
	return st->ops->lock(st, name, wait_ms, err);
}

void
tg_store_unlock(struct tg_store *st, const char *name)
{
	st->ops->unlock(st, name);
}

void
tg_store_free(struct tg_store *st)
{
	if (st)
		st->ops->free(st);
}

const char *
tg_store_path(struct tg_store *st)
{
	return st->root;
}

struct tg_store *
tg_store_open(const struct tg_config *cfg, struct tg_err *err)
{
	const char *const *eps;
	char joined[4096] = "", path[PATH_MAX];
	size_t i, n, off = 0;

	if (strcmp(tg_cfg_str(cfg, "store.backend"), "etcd") != 0) {
		if (tg_path_expand(path, sizeof(path), tg_cfg_str(cfg, "state_dir")) < 0)
			return tg_err_set(err, TG_E_CONFIG_VALUE, "state_dir: path too long"), NULL;
		return tg_store_fs_open(path, err);
	}
	n = tg_cfg_list(cfg, "store.endpoints", &eps);
	for (i = 0; i < n && off < sizeof(joined); i++)
		off += (size_t)snprintf(joined + off, sizeof(joined) - off, "%s%s", i ? "," : "", eps[i]);
	return tg_store_etcd_open(joined, tg_cfg_str(cfg, "store.prefix"), tg_cfg_str(cfg, "store.ca"),
	    tg_cfg_str(cfg, "store.cert"), tg_cfg_str(cfg, "store.key"),
	    (long)tg_cfg_num(cfg, "store.timeout"), err);
}
