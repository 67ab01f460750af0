/*
 * The storage seam: a secret written to a folder store (mode 0600), read
 * back and wiped, the names listed, a lock taken and given back.
 *
 *   cc store.c $(pkg-config --cflags --libs tlsgate) -o store
 *   ./store DIR
 */
#include <stdio.h>
#include <string.h>

#include <tlsgate/tlsgate.h>

int
main(int argc, char **argv)
{
	static const char secret[] = "not a real key";
	struct tg_store *st;
	struct tg_err err;
	unsigned char *data = NULL;
	size_t len = 0, i;
	char **names;
	int rc = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: store DIR\n");
		return 2;
	}
	if ((st = tg_store_fs_open(argv[1], &err)) == NULL) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	if (tg_store_lock(st, "example", 1000, &err) < 0 ||
	    tg_store_put(st, "keys/example.key", secret, strlen(secret), TG_STORE_SECRET, &err) < 0 ||
	    tg_store_get(st, "keys/example.key", &data, &len, &err) < 0)
		goto fail;
	printf("read back %zu bytes: %s\n", len, len == strlen(secret) &&
	    !memcmp(data, secret, len) ? "the same" : "DIFFERENT");
	tg_free_secret(data, len);
	if (tg_store_get(st, "keys/missing.key", &data, &len, &err) < 0)
		printf("missing: %s\n", tg_code_name(err.code));
	if ((names = tg_store_list(st, "keys", &err)) == NULL)
		goto fail;
	for (i = 0; names[i]; i++)
		printf("keys/%s\n", names[i]);
	tg_store_list_free(names);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "%s\n", err.msg);
out:
	tg_store_unlock(st, "example");
	tg_store_free(st);
	return rc;
}
