/*
 * Session ticket keys shared by a cluster: the seed of tickets.c's ring is
 * kept in the store ("tickets/seed"), so every node derives the same key
 * for the same hour and a ticket from one node resumes on another. The
 * first node creates it under the store's lock; the others take it. The
 * first worker moves the stored seed forward every few minutes (to one
 * epoch behind now), so the store never holds what would let anyone
 * compute keys older than that; etcd's own history of the key goes with
 * its compaction (--auto-compaction-retention, docs/cluster.md).
 *
 * The value: "tlsgate-ticket-seed v1 HEX64 EPOCH-START\n", a secret.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "error.h"
#include "store.h"
#include "tls.h"
#include "util.h"

#define SEED_NAME "tickets/seed"

static int from_cluster;   /* this ring is the cluster's */

static int
parse(const unsigned char *v, size_t len, unsigned char key[32], time_t *at)
{
	char hex[65], text[160];
	long long t;
	size_t i;
	int ok;

	if (len >= sizeof(text))
		return -1;
	memcpy(text, v, len);
	text[len] = '\0';
	ok = sscanf(text, "tlsgate-ticket-seed v1 %64[0-9a-f] %lld", hex, &t) == 2 &&
	    strlen(hex) == 64 && t > 0;
	for (i = 0; ok && i < 32; i++) {
		unsigned b;
		ok = sscanf(hex + 2 * i, "%2x", &b) == 1;
		key[i] = (unsigned char)b;
	}
	OPENSSL_cleanse(text, sizeof(text));
	OPENSSL_cleanse(hex, sizeof(hex));
	if (!ok)
		return -1;
	*at = (time_t)t;
	return 0;
}

static int
put_current(struct tg_store *st, struct tg_err *err)
{
	unsigned char key[32];
	char text[160];
	time_t at;
	size_t i, n;
	int rv;

	if (tg_tickets_export(key, &at) < 0)
		return tg_err_set(err, TG_E_INTERNAL, "no randomness for the session ticket keys");
	n = (size_t)snprintf(text, sizeof(text), "tlsgate-ticket-seed v1 ");
	for (i = 0; i < 32; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%02x", key[i]);
	n += (size_t)snprintf(text + n, sizeof(text) - n, " %lld\n", (long long)at);
	rv = tg_store_put(st, SEED_NAME, text, n, TG_STORE_SECRET, err);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(text, sizeof(text));
	return rv;
}

int
tg_tickets_from_store(struct tg_store *st, struct tg_err *err)
{
	unsigned char *v = NULL, key[32];
	size_t len = 0;
	time_t at;
	int rv = -1;

	if (tg_store_lock(st, "tickets", 15000, err) < 0)
		return -1;
	if (tg_store_get(st, SEED_NAME, &v, &len, err) == 0) {
		if (parse(v, len, key, &at) < 0)
			tg_err_set(err, TG_E_IO, "%s in the store is not a ticket seed; remove it "
			    "(tlsgate makes a new one)", SEED_NAME);
		else if (tg_tickets_seed(key, at) < 0)
			tg_err_set(err, TG_E_INTERNAL, "cannot derive session ticket keys");
		else
			rv = 0, from_cluster = 1;
	} else if (err->code == TG_E_NOT_FOUND) {
		/* the first node: its own ring becomes the cluster's */
		rv = tg_tickets_ready() < 0 ? tg_err_set(err, TG_E_INTERNAL, "no randomness for the "
		    "session ticket keys") : put_current(st, err);
		from_cluster = rv == 0;
	}
	tg_store_unlock(st, "tickets");
	if (v)
		OPENSSL_clear_free(v, len);
	OPENSSL_cleanse(key, sizeof(key));
	return rv;
}

int
tg_tickets_from_file(const char *state_dir, struct tg_err *err)
{
	char path[4200];
	unsigned char *v = NULL, key[32];
	size_t len = 0;
	time_t at;
	int rv = -1;

	snprintf(path, sizeof(path), "%s/%s", state_dir, SEED_NAME);
	if (tg_read_file(path, &v, &len, 1024, err) < 0)
		return -1;
	if (parse(v, len, key, &at) < 0)
		tg_err_set(err, TG_E_IO, "%s: not a ticket seed", path);
	else if (tg_tickets_seed(key, at) < 0)
		tg_err_set(err, TG_E_INTERNAL, "cannot derive session ticket keys");
	else
		rv = 0, from_cluster = 1;
	OPENSSL_clear_free(v, len);
	OPENSSL_cleanse(key, sizeof(key));
	return rv;
}

int
tg_tickets_forward(struct tg_store *st, struct tg_err *err)
{
	unsigned char *v = NULL, key[32], mine[32];
	size_t len = 0;
	time_t at, my_at;
	int rv = -1;

	if (!from_cluster)
		return 0;
	if (tg_tickets_export(mine, &my_at) < 0)
		return tg_err_set(err, TG_E_INTERNAL, "no session ticket keys");
	OPENSSL_cleanse(mine, sizeof(mine));
	if (tg_store_lock(st, "tickets", 5000, err) < 0)
		return -1;
	if (tg_store_get(st, SEED_NAME, &v, &len, err) == 0 && parse(v, len, key, &at) == 0 &&
	    at >= my_at)
		rv = 0;   /* already as far as ours */
	else
		rv = put_current(st, err);
	tg_store_unlock(st, "tickets");
	if (v)
		OPENSSL_clear_free(v, len);
	OPENSSL_cleanse(key, sizeof(key));
	return rv;
}
