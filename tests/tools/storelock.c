/*
 * Drives a store's lock from a test, as a node would:
 *
 *   storelock ENDPOINTS PREFIX CA CERT KEY LOCK HOLD_MS [NAME VALUE]
 *
 * takes LOCK (waiting up to 30 s), prints "locked" with the wall-clock
 * milliseconds, holds it HOLD_MS (HOLD_MS "stdin": until its standard
 * input ends, so a test lets go when it is ready), then (with NAME VALUE) writes VALUE to
 * NAME under the lock, prints "wrote" or "refused: WHY", and unlocks.
 * Exit 0 when the write was done (or none was asked for), 1 otherwise.
 * ENDPOINTS "folder:PATH" uses the folder backend instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <tlsgate/tlsgate.h>

static long long
now_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int
main(int argc, char **argv)
{
	struct tg_store *st;
	struct tg_err err;
	int rc = 0;

	if (argc != 8 && argc != 10) {
		fprintf(stderr, "usage: storelock ENDPOINTS PREFIX CA CERT KEY LOCK HOLD_MS [NAME VALUE]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	st = !strncmp(argv[1], "folder:", 7) ? tg_store_fs_open(argv[1] + 7, &err) :
	    tg_store_etcd_open(argv[1], argv[2], argv[3], argv[4], argv[5], 3000, &err);
	if (st == NULL) {
		fprintf(stderr, "storelock: %s\n", err.msg);
		return 1;
	}
	if (tg_store_lock(st, argv[6], 30000, &err) < 0) {
		printf("not locked: %s\n", err.msg);
		tg_store_free(st);
		return 1;
	}
	printf("locked %lld\n", now_ms());
	if (!strcmp(argv[7], "stdin")) {
		char buf[256];
		while (fread(buf, 1, sizeof(buf), stdin) > 0)
			;
	} else {
		usleep((useconds_t)atoi(argv[7]) * 1000);
	}
	if (argc == 10) {
		if (tg_store_put(st, argv[8], argv[9], strlen(argv[9]), 0, &err) == 0) {
			printf("wrote %lld\n", now_ms());
		} else {
			printf("refused: %s\n", err.msg);
			rc = 1;
		}
	}
	printf("unlocking %lld\n", now_ms());
	tg_store_unlock(st, argv[6]);
	tg_store_free(st);
	return rc;
}
