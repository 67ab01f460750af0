/*
 * Session ticket keys for every server context of the process, rotated
 * without a restart and without talking between threads or workers.
 *
 * A random seed is drawn once per process; the key of epoch e (one
 * TG_TICKET_PERIOD long, counted from the start) is k(e) = HMAC-SHA256(
 * k(e-1), "tlsgate ticket key"). Only the current and the previous keys are
 * kept: a ticket is accepted for one to two periods, and a key that is gone
 * cannot be computed again from the current one (tickets that aged out stay
 * unreadable even if the process's memory leaks later). Every context built
 * in the process (reloads, certificate swaps, ACME renewals) shares the ring,
 * so a swap does not send every returning client back to a full handshake.
 *
 * In a cluster (tg_tickets_use_file) the keys come from the store's
 * tickets/keys, copied into state_dir: random keys for the hour before, this
 * hour and the next, hours counted from the epoch (time / PERIOD) so every
 * node agrees. A node re-reads the file (a stat every few seconds); one of
 * them replaces it every hour with fresh randomness (tickets_store.c), so
 * neither the store nor a copy of it holds what derives later keys for long.
 * Past the file's last hour (no node rotated, the store was down) each node
 * derives the next keys by the same HMAC step from the last one, so they
 * still agree. Until the file exists, the process's own ring serves.
 */
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "tls.h"

struct ticket_key {
	unsigned char name[16], aes[32], mac[32];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char chain_key[32];     /* k(epoch) */
static long epoch = -1;
static time_t origin;
static struct ticket_key cur, prev;
static int have_prev;
static EVP_CIPHER *aes256cbc;
/* cluster mode */
static char keyfile[4200];
static time_t file_checked;
static struct stat file_st;
static long file_e = -1;                /* the hour of file_k[1] */
static unsigned char file_k[3][32];     /* hours file_e - 1, file_e, file_e + 1 */
static long used_e = -1;                /* the hour cur was computed for */
static unsigned long file_gen, used_gen;

static void
expand(const unsigned char *k, struct ticket_key *out)
{
	unsigned char buf[32];
	unsigned int n;

	HMAC(EVP_sha256(), k, 32, (const unsigned char *)"name", 4, buf, &n);
	memcpy(out->name, buf, sizeof(out->name));
	HMAC(EVP_sha256(), k, 32, (const unsigned char *)"aes", 3, out->aes, &n);
	HMAC(EVP_sha256(), k, 32, (const unsigned char *)"mac", 3, out->mac, &n);
	OPENSSL_cleanse(buf, sizeof(buf));
}

static void
step(void)
{
	unsigned char next[32];
	unsigned int n;

	HMAC(EVP_sha256(), chain_key, 32, (const unsigned char *)"tlsgate ticket key", 18, next, &n);
	memcpy(chain_key, next, 32);
	OPENSSL_cleanse(next, sizeof(next));
}

static int advance_ring(time_t now);

/* "tlsgate-ticket-keys v2 HOUR HEX HEX HEX": the keys of HOUR-1, HOUR and
 * HOUR+1. 0 when whole. */
int
tg_tickets_parse(const char *text, long *e, unsigned char k[3][32])
{
	char hex[3][65];
	long h;
	size_t i, j;

	if (sscanf(text, "tlsgate-ticket-keys v2 %ld %64[0-9a-f] %64[0-9a-f] %64[0-9a-f]", &h,
	    hex[0], hex[1], hex[2]) != 4 || h < 1)
		return -1;
	for (i = 0; i < 3; i++) {
		if (strlen(hex[i]) != 64)
			return -1;
		for (j = 0; j < 32; j++) {
			unsigned b;
			if (sscanf(hex[i] + 2 * j, "%2x", &b) != 1)
				return -1;
			k[i][j] = (unsigned char)b;
		}
	}
	OPENSSL_cleanse(hex, sizeof(hex));
	*e = h;
	return 0;
}

/* The key of hour e from the file: its own three, or stepped on from the
 * last; -1 before the file's first, and -1 for a file more than
 * TG_TICKET_STEP_MAX hours old: the steps are taken under the key lock in
 * a handshake, and a file that old means no node has rotated for days
 * (each node's own ring serves then; resumption stays on one node). */
int
tg_tickets_key_of(long fe, const unsigned char k[3][32], long e, unsigned char out[32])
{
	unsigned char next[32];
	unsigned int n;
	long i;

	if (e < fe - 1 || e > fe + TG_TICKET_STEP_MAX)
		return -1;
	if (e <= fe + 1) {
		memcpy(out, k[e - fe + 1], 32);
		return 0;
	}
	memcpy(out, k[2], 32);
	for (i = fe + 1; i < e; i++) {
		HMAC(EVP_sha256(), out, 32, (const unsigned char *)"tlsgate ticket key", 18, next, &n);
		memcpy(out, next, 32);
	}
	OPENSSL_cleanse(next, sizeof(next));
	return 0;
}

/* Re-reads the cluster's key file when it changed (looked at every 5 s),
 * without the key lock: the stat and the read happen on whichever thread
 * is due (one at a time, file_lock), while every other handshake goes on
 * with the keys it has; only the parsed keys are installed under lock. */
static pthread_mutex_t file_lock = PTHREAD_MUTEX_INITIALIZER;

static void
reload_file(void)
{
	struct stat st, have;
	FILE *fp;
	char text[512], path[sizeof(keyfile)];
	size_t n;
	long e, fe;
	unsigned char k[3][32];
	time_t now = time(NULL);

	pthread_mutex_lock(&lock);
	fe = file_e;
	have = file_st;
	snprintf(path, sizeof(path), "%s", keyfile);
	if (!path[0] || (now - file_checked < 5 && fe >= 0)) {
		pthread_mutex_unlock(&lock);
		return;
	}
	pthread_mutex_unlock(&lock);
	if (pthread_mutex_trylock(&file_lock) != 0)
		return;   /* another thread is reading it right now */
	if (stat(path, &st) != 0 || (st.st_ino == have.st_ino && st.st_mtim.tv_sec ==
	    have.st_mtim.tv_sec && st.st_mtim.tv_nsec == have.st_mtim.tv_nsec &&
	    st.st_size == have.st_size && fe >= 0)) {
		pthread_mutex_lock(&lock);
		file_checked = now;
		pthread_mutex_unlock(&lock);
		pthread_mutex_unlock(&file_lock);
		return;
	}
	n = 0;
	if ((fp = fopen(path, "re")) != NULL) {
		n = fread(text, 1, sizeof(text) - 1, fp);
		fclose(fp);
	}
	text[n] = '\0';
	pthread_mutex_lock(&lock);
	file_checked = now;
	if (fp != NULL && tg_tickets_parse(text, &e, k) == 0) {
		file_st = st;
		file_e = e;
		memcpy(file_k, k, sizeof(k));
		file_gen++;
	}
	pthread_mutex_unlock(&lock);
	pthread_mutex_unlock(&file_lock);
	OPENSSL_cleanse(text, sizeof(text));
	OPENSSL_cleanse(k, sizeof(k));
}

/* Brings the keys to now's hour; with lock held. -1 without randomness. */
static int
advance(time_t now)
{
	long want = (long)(now / TG_TICKET_PERIOD);
	unsigned char kc[32], kp[32];

	if (!keyfile[0])
		return advance_ring(now);
	if (file_e < 0)
		return advance_ring(now);   /* no file yet: this process's own ring */
	if (want == used_e && file_gen == used_gen)
		return 0;
	if (tg_tickets_key_of(file_e, (const unsigned char (*)[32])file_k, want, kc) < 0)
		return advance_ring(now);   /* a file from the future: not trusted */
	expand(kc, &cur);
	have_prev = tg_tickets_key_of(file_e, (const unsigned char (*)[32])file_k, want - 1, kp) == 0;
	if (have_prev)
		expand(kp, &prev);
	used_e = want;
	used_gen = file_gen;
	OPENSSL_cleanse(kc, sizeof(kc));
	OPENSSL_cleanse(kp, sizeof(kp));
	return 0;
}

/* This process's own ring; with lock held. */
static int
advance_ring(time_t now)
{
	long want;

	if (epoch < 0) {
		if (RAND_bytes(chain_key, sizeof(chain_key)) != 1)
			return -1;
		aes256cbc = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
		origin = now;
		epoch = 0;
		expand(chain_key, &cur);
		have_prev = 0;
	}
	want = (long)((now - origin) / TG_TICKET_PERIOD);
	if (want <= epoch)
		return 0;
	if (want > epoch + 1)
		have_prev = 0;   /* asleep for over a period: the old key is gone too */
	else {
		prev = cur;
		have_prev = 1;
	}
	while (epoch < want) {
		step();
		epoch++;
	}
	expand(chain_key, &cur);
	return 0;
}

int
tg_tickets_ready(void)
{
	int rv;

	reload_file();
	pthread_mutex_lock(&lock);
	rv = advance(time(NULL));
	pthread_mutex_unlock(&lock);
	return rv < 0 || aes256cbc == NULL ? -1 : 0;
}

static int
set_mac(EVP_MAC_CTX *hctx, unsigned char *key)
{
	OSSL_PARAM p[2];

	p[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	p[1] = OSSL_PARAM_construct_end();
	return EVP_MAC_init(hctx, key, 32, p) == 1 ? 0 : -1;
}

/* OpenSSL's ticket key callback: 1 use, 2 use and renew, 0 unknown key
 * (a full handshake), -1 error. */
int
tg_tickets_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
    EVP_MAC_CTX *hctx, int enc)
{
	struct ticket_key k;
	int rv = -1;

	reload_file();
	pthread_mutex_lock(&lock);
	if (advance(time(NULL)) < 0)
		goto out;
	if (enc) {
		k = cur;
		memcpy(name, k.name, 16);
		if (RAND_bytes(iv, 16) != 1 ||
		    EVP_EncryptInit_ex(cctx, aes256cbc, NULL, k.aes, iv) != 1 || set_mac(hctx, k.mac) < 0)
			goto out;
		rv = 1;
	} else {
		if (memcmp(name, cur.name, 16) == 0) {
			k = cur;
			rv = 1;
		} else if (have_prev && memcmp(name, prev.name, 16) == 0) {
			k = prev;
			rv = 2;   /* still good; the client gets a ticket under the new key */
		} else {
			rv = 0;
			goto out;
		}
		if (EVP_DecryptInit_ex(cctx, aes256cbc, NULL, k.aes, iv) != 1 || set_mac(hctx, k.mac) < 0)
			rv = -1;
	}
out:
	pthread_mutex_unlock(&lock);
	OPENSSL_cleanse(&k, sizeof(k));
	return rv;
}

int
tg_tickets_use_file(const char *path)
{
	pthread_mutex_lock(&lock);
	snprintf(keyfile, sizeof(keyfile), "%s", path);
	file_checked = 0;
	file_e = -1;
	used_e = -1;
	if (aes256cbc == NULL)
		aes256cbc = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	pthread_mutex_unlock(&lock);
	return tg_tickets_ready();
}
