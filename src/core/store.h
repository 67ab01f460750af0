/*
 * The storage seam's insides: a backend is a table of operations. The
 * folder backend is store_fs.c; a distributed one is another file later.
 */
#ifndef TG_STORE_H
#define TG_STORE_H

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
	char root[4096];
	void *impl;
};

#endif
