/*
 * Session ticket keys shared by a cluster (see tickets.c): the store's
 * tickets/keys holds random keys for the hour before, this hour and the
 * next. Every hour one node (whichever takes the store's lock first; each
 * node's first worker tries every 10 minutes) moves it on: the old current
 * key becomes the previous one, the published next key the current one,
 * and a fresh random key is published for the next hour, so every node has
 * a key before its hour starts. Nothing in the store derives a later key
 * for more than about two hours; etcd's own history of the key goes with
 * its compaction (--auto-compaction-retention, docs/cluster.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "error.h"
#include "store.h"
#include "tls.h"
#include "util.h"

#define KEYS_NAME "tickets/keys"

static size_t
format(char *buf, size_t len, long e, unsigned char k[3][32])
{
	size_t n = (size_t)snprintf(buf, len, "tlsgate-ticket-keys v2 %ld", e), i, j;

	for (i = 0; i < 3; i++) {
		n += (size_t)snprintf(buf + n, len - n, " ");
		for (j = 0; j < 32; j++)
			n += (size_t)snprintf(buf + n, len - n, "%02x", k[i][j]);
	}
	n += (size_t)snprintf(buf + n, len - n, "\n");
	return n;
}

int
tg_tickets_rotate(struct tg_store *st, struct tg_err *err)
{
	long want = (long)(time(NULL) / TG_TICKET_PERIOD), fe;
	unsigned char *v = NULL, fk[3][32], k[3][32];
	char text[400];
	size_t len = 0, n;
	int rv = -1, have = 0;

	if (tg_store_lock(st, "tickets", 15000, err) < 0)
		return -1;
	if (tg_store_get(st, KEYS_NAME, &v, &len, err) == 0)
		have = tg_tickets_parse((char *)v, &fe, fk) == 0;
	else if (err->code != TG_E_NOT_FOUND)
		goto out;   /* the store did not answer: change nothing */
	if (have && fe >= want) {
		rv = 0;   /* current (or from a node whose clock runs ahead) */
		goto out;
	}
	if (RAND_bytes(k[2], 32) != 1 || (!have && (RAND_bytes(k[0], 32) != 1 ||
	    RAND_bytes(k[1], 32) != 1))) {
		tg_err_set(err, TG_E_INTERNAL, "no randomness for the session ticket keys");
		goto out;
	}
	/* the hours before keep the keys the nodes have been using: the
	 * published next one, or, past the file's end, the ones they derived */
	if (have && (tg_tickets_key_of(fe, (const unsigned char (*)[32])fk, want - 1, k[0]) < 0 ||
	    tg_tickets_key_of(fe, (const unsigned char (*)[32])fk, want, k[1]) < 0)) {
		tg_err_set(err, TG_E_INTERNAL, "cannot derive the session ticket keys");
		goto out;
	}
	n = format(text, sizeof(text), want, k);
	rv = tg_store_put(st, KEYS_NAME, text, n, TG_STORE_SECRET, err);
	OPENSSL_cleanse(text, sizeof(text));
out:
	tg_store_unlock(st, "tickets");
	if (v)
		OPENSSL_clear_free(v, len);
	OPENSSL_cleanse(fk, sizeof(fk));
	OPENSSL_cleanse(k, sizeof(k));
	return rv;
}

int
tg_tickets_join(struct tg_store *st, const char *state_dir, struct tg_err *err)
{
	char path[4200];
	int rv = tg_tickets_rotate(st, err);

	snprintf(path, sizeof(path), "%s/%s", state_dir, KEYS_NAME);
	if (tg_tickets_use_file(path) < 0 && rv == 0)
		rv = tg_err_set(err, TG_E_INTERNAL, "no randomness for the session ticket keys");
	return rv;
}
