/*
 * The storage seam's insides: a backend is a table of operations. The
 * folder backend is store_fs.c; a distributed one is another file later.
 */
#ifndef TG_STORE_H
#define TG_STORE_H

#include <limits.h>
#include <time.h>

#include <tlsgate/tlsgate.h>

struct tg_store_ops {
	int (*get)(struct tg_store *, const char *, unsigned char **, size_t *, struct tg_err *);
	int (*put)(struct tg_store *, const char *, const void *, size_t, int, struct tg_err *);
	int (*del)(struct tg_store *, const char *, struct tg_err *);
	char **(*list)(struct tg_store *, const char *, struct tg_err *);
	int (*lock)(struct tg_store *, const char *, int, struct tg_err *);
	void (*unlock)(struct tg_store *, const char *);
	void (*free)(struct tg_store *);
};

struct tg_store {
	const struct tg_store_ops *ops;
	char root[PATH_MAX];
	void *impl;
};

/* Where a configuration keeps its state, copied out of it (so a long-lived
 * object can open the store again later without holding the config). */
struct tg_store_conf {
	int etcd;                    /* store.backend: etcd */
	char state_dir[PATH_MAX];
	char endpoints[4096], prefix[256];
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	long timeout_ms;
	char user[128], password_file[PATH_MAX];   /* an etcd user (RBAC) */
};

void tg_store_conf_from(const struct tg_config *cfg, struct tg_store_conf *sc);
/* The etcd store sc names, logged in as its user if it has one. */
struct tg_store *tg_store_etcd_open_conf(const struct tg_store_conf *sc, struct tg_err *err);
/* The store sc names. mirror: with etcd, every write also lands in
 * state_dir (the node's local copy, which the server reads by path and a
 * follower keeps current; see store_follow.c). */
struct tg_store *tg_store_open_conf(const struct tg_store_conf *sc, int mirror,
    struct tg_err *err);
/* etcd first, then the same bytes into the folder (store_mirror.c);
 * takes both. Reads and locks are etcd's: it is the truth. */
struct tg_store *tg_store_mirror_open(struct tg_store *primary, struct tg_store *local,
    struct tg_err *err);
/* Is name a storable name (no "..", no hidden segment)? 0 or -1, err set. */
int tg_store_name_ok(const char *name, struct tg_err *err);
/* Inside the state_dir of sc, path's name in the store ("known-clients");
 * -1 when path lies elsewhere. */
int tg_store_name_of(const struct tg_store_conf *sc, const char *path, char *name, size_t len);

/* This process's last word on the store (the follower's probe): 1 until
 * a probe failed. Any thread. */
int tg_store_up(void);
void tg_store_set_up(int up);

#endif
