/*
 * A cluster node's view of the store: etcd is the truth, and the node's
 * state_dir holds a copy of it that the server reads by path (certificates,
 * keys, known files: the same files as on one machine, so nothing on the
 * handshake path waits for the network, and a store outage leaves the node
 * serving what it has). Every write goes to etcd first and, only once etcd
 * took it, into the folder, so this node reads its own writes at once (a
 * failed copy is not a failed write: the follower repairs it); the other
 * nodes get it from their follower's watch (store_follow.c).
 * Reads, lists and locks are etcd's: a decision under a lock is made on
 * the cluster's current value, never on a local copy that may lag.
 */
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "store.h"

struct mirror_impl {
	struct tg_store *primary, *local;
};

static int
m_get(struct tg_store *st, const char *name, unsigned char **out, size_t *len,
    struct tg_err *err)
{
	struct mirror_impl *m = st->impl;

	return tg_store_get(m->primary, name, out, len, err);
}

static int
m_put(struct tg_store *st, const char *name, const void *data, size_t len, int flags,
    struct tg_err *err)
{
	struct mirror_impl *m = st->impl;
	struct tg_err e2;

	if (tg_store_put(m->primary, name, data, len, flags, err) < 0)
		return -1;
	/* the folder copy is 0600 whatever the value: the follower cannot tell
	 * a key from a certificate either, and state_dir is 0700 anyway */
	/* etcd took it: that is the write. A failed copy here (a full disk) is
	 * repaired by the follower, which writes every change it is told of;
	 * failing now would make callers undo what the cluster already has */
	(void)tg_store_put(m->local, name, data, len, flags | TG_STORE_SECRET, &e2);
	return 0;
}

static int
m_del(struct tg_store *st, const char *name, struct tg_err *err)
{
	struct mirror_impl *m = st->impl;
	struct tg_err e2;

	if (tg_store_delete(m->primary, name, err) < 0)
		return -1;
	(void)tg_store_delete(m->local, name, &e2);   /* as for m_put */
	return 0;
}

static char **
m_list(struct tg_store *st, const char *prefix, struct tg_err *err)
{
	struct mirror_impl *m = st->impl;

	return tg_store_list(m->primary, prefix, err);
}

static int
m_lock(struct tg_store *st, const char *name, int wait_ms, struct tg_err *err)
{
	struct mirror_impl *m = st->impl;

	return tg_store_lock(m->primary, name, wait_ms, err);
}

static void
m_unlock(struct tg_store *st, const char *name)
{
	struct mirror_impl *m = st->impl;

	tg_store_unlock(m->primary, name);
}

static void
m_free(struct tg_store *st)
{
	struct mirror_impl *m = st->impl;

	tg_store_free(m->primary);
	tg_store_free(m->local);
	free(m);
	free(st);
}

static const struct tg_store_ops mirror_ops = {
	m_get, m_put, m_del, m_list, m_lock, m_unlock, m_free,
};

struct tg_store *
tg_store_mirror_open(struct tg_store *primary, struct tg_store *local, struct tg_err *err)
{
	struct tg_store *st = calloc(1, sizeof(*st));
	struct mirror_impl *m = calloc(1, sizeof(*m));

	if (st == NULL || m == NULL) {
		free(st);
		free(m);
		tg_store_free(primary);
		tg_store_free(local);
		return tg_err_set(err, TG_E_INTERNAL, "out of memory"), NULL;
	}
	m->primary = primary;
	m->local = local;
	st->ops = &mirror_ops;
	st->impl = m;
	/* path-based readers find the node's copy here */
	snprintf(st->root, sizeof(st->root), "%s", tg_store_path(local));
	return st;
}
