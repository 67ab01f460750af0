/* The folder store: atomic put, 0600 secrets, list, delete, locks. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "error.h"
#include "util.h"

int
main(void)
{
	char dir[] = "/tmp/tg-store-XXXXXX", p[256];
	struct tg_err err;
	struct tg_store *st;
	unsigned char *out;
	size_t len;
	char **names;
	struct stat sb;
	pid_t pid;
	int status;

	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	st = tg_store_fs_open(dir, &err);
	CHECK(st != NULL, "open: %s", err.msg);
	CHECK(tg_store_put(st, "certs/a.key", "secret", 6, TG_STORE_SECRET, &err) == 0, "put: %s", err.msg);
	CHECK(tg_store_put(st, "certs/b.crt", "public", 6, 0, &err) == 0, "put");
	snprintf(p, sizeof(p), "%s/certs/a.key", dir);
	CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0600, "secret mode %o", sb.st_mode & 0777);
	snprintf(p, sizeof(p), "%s/certs", dir);
	CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0700, "folder mode %o", sb.st_mode & 0777);
	CHECK(tg_store_get(st, "certs/a.key", &out, &len, &err) == 0 && len == 6 &&
	    !memcmp(out, "secret", 6), "get");
	tg_free_secret(out, len);
	names = tg_store_list(st, "certs", &err);
	CHECK(names && names[0] && !strcmp(names[0], "a.key") && !strcmp(names[1], "b.crt") &&
	    names[2] == NULL, "list");
	for (size_t i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
	CHECK(tg_store_get(st, "nope", &out, &len, &err) < 0 && err.code == TG_E_NOT_FOUND, "missing");
	CHECK(tg_store_put(st, "../escape", "x", 1, 0, &err) < 0, "traversal name");
	CHECK(tg_store_put(st, "/abs", "x", 1, 0, &err) < 0, "absolute name");
	CHECK(tg_store_delete(st, "certs/b.crt", &err) == 0 && !tg_store_exists(st, "certs/b.crt"), "delete");
	/* a lock held here is not granted to another process, and is released
	 * when this one lets go */
	CHECK(tg_store_lock(st, "l", 1000, &err) == 0, "lock");
	pid = fork();
	if (pid == 0) {
		struct tg_store *s2 = tg_store_fs_open(dir, &err);
		_exit(tg_store_lock(s2, "l", 100, &err) == 0 ? 1 : 0);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "lock was granted twice");
	tg_store_unlock(st, "l");
	pid = fork();
	if (pid == 0) {
		struct tg_store *s2 = tg_store_fs_open(dir, &err);
		_exit(tg_store_lock(s2, "l", 1000, &err) == 0 ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "unlocked lock not granted");
	tg_store_free(st);
	snprintf(p, sizeof(p), "rm -rf %s", dir);
	CHECK(system(p) == 0, "cleanup");
	return check_done("test_store");
}
