/*
 * The storage interface: name checks and dispatch to the backend. Names are
 * relative paths of [A-Za-z0-9._-] segments; nothing can name a place
 * outside the store.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "config_int.h"
#include "error.h"
#include "store.h"
#include "store_etcd.h"
#include "util.h"

int
tg_store_name_ok(const char *name, struct tg_err *err)
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
	if (tg_store_name_ok(name, err) < 0)
		return -1;
	return st->ops->get(st, name, out, len, err);
}

int
tg_store_put(struct tg_store *st, const char *name, const void *data, size_t len,
    int flags, struct tg_err *err)
{
	if (tg_store_name_ok(name, err) < 0)
		return -1;
	return st->ops->put(st, name, data, len, flags, err);
}

int
tg_store_delete(struct tg_store *st, const char *name, struct tg_err *err)
{
	if (tg_store_name_ok(name, err) < 0)
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
	if (prefix[0] && tg_store_name_ok(prefix, err) < 0)
		return NULL;
	return st->ops->list(st, prefix, err);
}

void
tg_store_list_free(char **names)
{
	size_t i;

	if (names == NULL)
		return;
	for (i = 0; names[i]; i++)
		free(names[i]);
	free(names);
}

int
tg_store_lock(struct tg_store *st, const char *name, int wait_ms, struct tg_err *err)
{
	if (tg_store_name_ok(name, err) < 0)
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

void
tg_store_conf_from(const struct tg_config *cfg, struct tg_store_conf *sc)
{
	const char *const *eps;
	size_t i, n, off = 0;

	memset(sc, 0, sizeof(*sc));
	sc->etcd = !strcmp(tg_cfg_str(cfg, TG_CFG_STORE_BACKEND), "etcd");
	if (tg_path_expand(sc->state_dir, sizeof(sc->state_dir), tg_cfg_str(cfg,
	    TG_CFG_STATE_DIR)) < 0)
		sc->state_dir[0] = '\0';   /* refused by the open below */
	n = tg_cfg_list(cfg, TG_CFG_STORE_ENDPOINTS, &eps);
	for (i = 0; i < n && off < sizeof(sc->endpoints); i++)
		off += (size_t)snprintf(sc->endpoints + off, sizeof(sc->endpoints) - off, "%s%s",
		    i ? "," : "", eps[i]);
	snprintf(sc->prefix, sizeof(sc->prefix), "%s", tg_cfg_str(cfg, TG_CFG_STORE_PREFIX));
	snprintf(sc->ca, sizeof(sc->ca), "%s", tg_cfg_str(cfg, TG_CFG_STORE_CA));
	snprintf(sc->cert, sizeof(sc->cert), "%s", tg_cfg_str(cfg, TG_CFG_STORE_CERT));
	snprintf(sc->key, sizeof(sc->key), "%s", tg_cfg_str(cfg, TG_CFG_STORE_KEY));
	sc->timeout_ms = (long)tg_cfg_num(cfg, TG_CFG_STORE_TIMEOUT);
	snprintf(sc->user, sizeof(sc->user), "%s", tg_cfg_str(cfg, TG_CFG_STORE_USER));
	if (tg_path_expand(sc->password_file, sizeof(sc->password_file),
	    tg_cfg_str(cfg, TG_CFG_STORE_PASSWORD_FILE)) < 0)
		sc->password_file[0] = '\0';
}

struct tg_store *
tg_store_etcd_open_conf(const struct tg_store_conf *sc, struct tg_err *err)
{
	struct tg_store *e = tg_store_etcd_open(sc->endpoints, sc->prefix, sc->ca, sc->cert,
	    sc->key, sc->timeout_ms, err);

	char pw[256];
	int r;

	if (e == NULL || sc->user[0] == '\0')
		return e;
	r = tg_store_read_password(sc->password_file, pw, sizeof(pw), err) < 0 ||
	    tg_store_etcd_login(e, sc->user, pw, err) < 0;
	OPENSSL_cleanse(pw, sizeof(pw));
	if (r) {
		tg_store_free(e);
		return NULL;
	}
	return e;
}

struct tg_store *
tg_store_open_conf(const struct tg_store_conf *sc, int mirror, struct tg_err *err)
{
	struct tg_store *e, *l;

	if (sc->state_dir[0] == '\0' && (!sc->etcd || mirror))
		return tg_err_set(err, TG_E_CONFIG_VALUE, "state_dir: path too long"), NULL;
	if (!sc->etcd)
		return tg_store_fs_open(sc->state_dir, err);
	if ((e = tg_store_etcd_open_conf(sc, err)) == NULL)
		return NULL;
	if (!mirror)
		return e;
	if (tg_mkdirs(sc->state_dir, 0700, err) < 0 || (l = tg_store_fs_open(sc->state_dir, err)) == NULL) {
		tg_store_free(e);
		return NULL;
	}
	return tg_store_mirror_open(e, l, err);
}

int
tg_store_name_of(const struct tg_store_conf *sc, const char *path, char *name, size_t len)
{
	size_t n = strlen(sc->state_dir);
	struct tg_err err;

	while (n > 1 && sc->state_dir[n - 1] == '/')
		n--;
	if (n == 0 || strncmp(path, sc->state_dir, n) != 0 || path[n] != '/')
		return -1;
	path += n;
	while (*path == '/')
		path++;
	if (snprintf(name, len, "%s", path) >= (int)len || tg_store_name_ok(name, &err) < 0)
		return -1;
	return 0;
}

struct tg_store *
tg_store_open(const struct tg_config *cfg, struct tg_err *err)
{
	struct tg_store_conf *sc = malloc(sizeof(*sc));
	struct tg_store *st;

	if (sc == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory"), NULL;
	tg_store_conf_from(cfg, sc);
	st = tg_store_open_conf(sc, 0, err);
	free(sc);
	return st;
}

/* The follower's probe (store_follow.c) sets it; trust reads it (a first
 * contact is not let in while the store is down). */
static _Atomic int store_up = 1;

int
tg_store_up(void)
{
	return store_up;
}

void
tg_store_set_up(int up)
{
	store_up = up;
}
