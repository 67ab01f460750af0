/*
 * Giving things up once the server is set up (Linux): root's identity
 * (after binding low ports, drop to `user`/`group`), and file access beyond
 * what serving needs (landlock: state_dir, files.root and the known files
 * read-write; the folders of the configured certificates, keys, CAs and the
 * config file read-only, so SIGHUP can still reload them).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <linux/landlock.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "error.h"
#include "sandbox.h"

/* Landlock ABI 3 (Linux 6.2); Debian 12's headers stop at ABI 2. The value
 * is part of the kernel's stable ABI. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#include "util.h"

static uid_t chown_uid;
static gid_t chown_gid;

static int
chown_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb, (void)type, (void)ftw;
	return lchown(path, chown_uid, chown_gid) < 0 ? -1 : 0;
}

int
tg_sandbox_drop(const char *user, const char *group, const char *const *own, size_t nown,
    struct tg_err *err)
{
	struct passwd *pw;
	struct group *gr;
	gid_t gid;
	size_t i;

	if (user == NULL || user[0] == '\0')
		return 0;
	if (geteuid() != 0)
		return tg_err_set(err, TG_E_USAGE, "user is set to %s, but tlsgate does not run as "
		    "root, so it cannot switch users; unset user or start as root", user);
	if ((pw = getpwnam(user)) == NULL)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "user: no such user '%s' (create it, "
		    "e.g. useradd --system %s)", user, user);
	gid = pw->pw_gid;
	if (group && group[0]) {
		if ((gr = getgrnam(group)) == NULL)
			return tg_err_set(err, TG_E_CONFIG_VALUE, "group: no such group '%s'", group);
		gid = gr->gr_gid;
	}
	/* what the server writes after the switch must belong to the new user */
	chown_uid = pw->pw_uid;
	chown_gid = gid;
	for (i = 0; i < nown; i++)
		if (own[i] && own[i][0] && nftw(own[i], chown_one, 16, FTW_PHYS) < 0 && errno != ENOENT)
			return tg_err_set(err, TG_E_IO, "cannot give %s to %s: %s", own[i], user,
			    strerror(errno));
	if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0)
		return tg_err_set(err, TG_E_PERM, "cannot switch to user %s: %s", user, strerror(errno));
	if (setuid(0) == 0)
		return tg_err_set(err, TG_E_PERM, "switched to %s but could become root again; "
		    "refusing to run", user);
	return 0;
}

static int
add_path(int ruleset, const char *path, uint64_t access)
{
	struct landlock_path_beneath_attr pb = { .allowed_access = access };
	struct stat sb;
	int fd, rv;

	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;   /* a folder that does not exist needs no rule */
	if (fstat(fd, &sb) == 0 && !S_ISDIR(sb.st_mode))
		pb.allowed_access &= LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
		    LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE;
	pb.parent_fd = fd;
	rv = (int)syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
	close(fd);
	return rv;
}

int
tg_sandbox_landlock(const char *const *rw, size_t nrw, const char *const *ro, size_t nro,
    const char *const *rx, size_t nrx, struct tg_err *err)
{
	struct landlock_ruleset_attr attr;
	uint64_t all, read;
	long abi;
	int rs;
	size_t i;

	abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1)
		return 1;   /* not in this kernel: nothing to do */
	read = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;
	all = read | LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
	    LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
	    LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
	    LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |
	    LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
	if (abi >= 2)
		all |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		all |= LANDLOCK_ACCESS_FS_TRUNCATE;
	memset(&attr, 0, sizeof(attr));
	attr.handled_access_fs = all;
	rs = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (rs < 0)
		return tg_err_set(err, TG_E_INTERNAL, "landlock: %s", strerror(errno));
	for (i = 0; i < nrw; i++)
		if (rw[i] && rw[i][0] && add_path(rs, rw[i], all & ~LANDLOCK_ACCESS_FS_EXECUTE) < 0)
			goto fail;
	for (i = 0; i < nro; i++)
		if (ro[i] && ro[i][0] && add_path(rs, ro[i], read) < 0)
			goto fail;
	for (i = 0; i < nrx; i++)
		if (rx[i] && rx[i][0] && add_path(rs, rx[i], read | LANDLOCK_ACCESS_FS_EXECUTE) < 0)
			goto fail;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_landlock_restrict_self, rs, 0) < 0)
		goto fail;
	close(rs);
	return 0;
fail:
	tg_err_set(err, TG_E_INTERNAL, "landlock: %s", strerror(errno));
	close(rs);
	return -1;
}
