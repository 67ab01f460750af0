/*
 * The folder backend of the storage seam: each name is a file below the
 * root. Writes are atomic (temp file, fsync, rename, fsync of the folder);
 * secrets are 0600 in 0700 folders; locks are flock(2) on a file in .locks,
 * so a lock held by a process that dies is released by the kernel.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "store.h"
#include "util.h"

#define MAX_LOCKS 16

struct fs_lock {
	char name[128];
	int fd;
};

struct fs_impl {
	struct fs_lock locks[MAX_LOCKS];
};

static int
fs_path(struct tg_store *st, const char *name, char *buf, size_t len)
{
	return snprintf(buf, len, "%s/%s", st->root, name) >= (int)len ? -1 : 0;
}

static int
fs_get(struct tg_store *st, const char *name, unsigned char **out, size_t *len,
    struct tg_err *err)
{
	char p[PATH_MAX];

	struct stat sb;

	if (fs_path(st, name, p, sizeof(p)) < 0)
		return tg_err_set(err, TG_E_IO, "%s: path too long", name);
	if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode))   /* a folder holds names, not a value */
		return tg_err_set(err, TG_E_NOT_FOUND, "%s: a folder, not a stored value", name);
	return tg_read_file(p, out, len, 16 << 20, err);
}

static int
fs_put(struct tg_store *st, const char *name, const void *data, size_t len, int flags,
    struct tg_err *err)
{
	char p[PATH_MAX], dir[PATH_MAX];

	if (fs_path(st, name, p, sizeof(p)) < 0)
		return tg_err_set(err, TG_E_IO, "%s: path too long", name);
	tg_path_dir(dir, sizeof(dir), p);
	if (tg_mkdirs(dir, 0700, err) < 0)
		return -1;
	return tg_write_atomic(p, data, len, flags & TG_STORE_SECRET, err);
}

static int
fs_del(struct tg_store *st, const char *name, struct tg_err *err)
{
	char p[PATH_MAX];

	if (fs_path(st, name, p, sizeof(p)) < 0)
		return tg_err_set(err, TG_E_IO, "%s: path too long", name);
	if (unlink(p) < 0)
		return tg_err_set(err, errno == ENOENT ? TG_E_NOT_FOUND : TG_E_IO,
		    "cannot remove %s: %s", p, strerror(errno));
	return 0;
}

static int
cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **
fs_list(struct tg_store *st, const char *prefix, struct tg_err *err)
{
	char p[PATH_MAX];
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;

	if (snprintf(p, sizeof(p), "%s/%s", st->root, prefix) >= (int)sizeof(p)) {
		tg_err_set(err, TG_E_IO, "%s: path too long", prefix);
		return NULL;
	}
	d = opendir(p);
	names = calloc(1, sizeof(*names));
	if (names == NULL)
		goto fail;
	if (d == NULL)
		return names;   /* an absent folder lists as empty */
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp-"))
			continue;
		if (n + 1 >= cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 8) * sizeof(*nn));
			if (nn == NULL)
				goto fail;
			names = nn;
		}
		if ((names[n] = strdup(de->d_name)) == NULL)
			goto fail;
		names[++n] = NULL;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmpstr);
	return names;
fail:
	if (d)
		closedir(d);
	while (names && n > 0)
		free(names[--n]);
	free(names);
	tg_err_set(err, TG_E_INTERNAL, "out of memory");
	return NULL;
}

static int
fs_lock(struct tg_store *st, const char *name, int wait_ms, struct tg_err *err)
{
	struct fs_impl *im = st->impl;
	char p[PATH_MAX], dir[PATH_MAX];
	struct fs_lock *slot = NULL;
	uint64_t deadline = tg_now_ms() + (uint64_t)(wait_ms < 0 ? 0 : wait_ms);
	size_t i;
	int fd;

	for (i = 0; i < MAX_LOCKS; i++)
		if (im->locks[i].fd < 0) {
			slot = &im->locks[i];
			break;
		}
	if (slot == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "too many store locks held");
	if (snprintf(p, sizeof(p), "%s/.locks/%s", st->root, name) >= (int)sizeof(p))
		return tg_err_set(err, TG_E_IO, "%s: path too long", name);
	tg_path_dir(dir, sizeof(dir), p);
	if (tg_mkdirs(dir, 0700, err) < 0)
		return -1;
	fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return tg_err_set(err, TG_E_IO, "cannot open lock %s: %s", p, strerror(errno));
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		if (errno != EWOULDBLOCK && errno != EINTR) {
			close(fd);
			return tg_err_set(err, TG_E_IO, "cannot lock %s: %s", p, strerror(errno));
		}
		if (tg_now_ms() >= deadline) {
			close(fd);
			return tg_err_set(err, TG_E_LOCKED, "%s is locked by another tlsgate "
			    "process; try again", p);
		}
		nanosleep(&ts, NULL);
	}
	snprintf(slot->name, sizeof(slot->name), "%s", name);
	slot->fd = fd;
	return 0;
}

static void
fs_unlock(struct tg_store *st, const char *name)
{
	struct fs_impl *im = st->impl;
	size_t i;

	for (i = 0; i < MAX_LOCKS; i++) {
		if (im->locks[i].fd >= 0 && strcmp(im->locks[i].name, name) == 0) {
			flock(im->locks[i].fd, LOCK_UN);
			close(im->locks[i].fd);
			im->locks[i].fd = -1;
			return;
		}
	}
}

static void
fs_free(struct tg_store *st)
{
	struct fs_impl *im = st->impl;
	size_t i;

	for (i = 0; i < MAX_LOCKS; i++)
		if (im->locks[i].fd >= 0)
			close(im->locks[i].fd);
	free(im);
	free(st);
}

static const struct tg_store_ops fs_ops = {
	fs_get, fs_put, fs_del, fs_list, fs_lock, fs_unlock, fs_free,
};

struct tg_store *
tg_store_fs_open(const char *dir, struct tg_err *err)
{
	struct tg_store *st;
	struct fs_impl *im;
	size_t i;

	st = calloc(1, sizeof(*st));
	im = calloc(1, sizeof(*im));
	if (st == NULL || im == NULL) {
		free(st);
		free(im);
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		return NULL;
	}
	for (i = 0; i < MAX_LOCKS; i++)
		im->locks[i].fd = -1;
	if (tg_path_expand(st->root, sizeof(st->root), dir) < 0) {
		free(im);
		free(st);
		tg_err_set(err, TG_E_IO, "%s: path too long", dir);
		return NULL;
	}
	if (tg_mkdirs(st->root, 0700, err) < 0) {
		free(im);
		free(st);
		return NULL;
	}
	st->ops = &fs_ops;
	st->impl = im;
	return st;
}
