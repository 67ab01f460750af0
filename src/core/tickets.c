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
 */
#include <pthread.h>
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
static unsigned char prev_chain[32];    /* k(epoch-1), when have_prev */
static long epoch = -1;
static time_t origin;
static struct ticket_key cur, prev;
static int have_prev;
static EVP_CIPHER *aes256cbc;

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

/* Brings the ring to now's epoch; with lock held. -1 without randomness. */
static int
advance(time_t now)
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
		memcpy(prev_chain, chain_key, 32);
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
tg_tickets_seed(const unsigned char key[32], time_t at)
{
	time_t now = time(NULL);
	long want;
	int rv = 0;

	pthread_mutex_lock(&lock);
	if (aes256cbc == NULL)
		aes256cbc = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	memcpy(chain_key, key, 32);
	origin = at > now ? now : at;
	epoch = 0;
	have_prev = 0;
	/* stepped to the epoch before now's, so that the previous key, which
	 * other nodes' tickets may still use, is known too */
	want = (long)((now - origin) / TG_TICKET_PERIOD);
	while (epoch + 1 < want) {
		step();
		epoch++;
	}
	expand(chain_key, &cur);
	rv = advance(now);
	pthread_mutex_unlock(&lock);
	return rv < 0 || aes256cbc == NULL ? -1 : 0;
}

int
tg_tickets_export(unsigned char key[32], time_t *at)
{
	int rv = -1;

	pthread_mutex_lock(&lock);
	if (advance(time(NULL)) == 0) {
		/* one epoch behind: a node seeded from it knows the previous key */
		if (have_prev) {
			memcpy(key, prev_chain, 32);
			*at = origin + (time_t)(epoch - 1) * TG_TICKET_PERIOD;
		} else {
			memcpy(key, chain_key, 32);
			*at = origin + (time_t)epoch * TG_TICKET_PERIOD;
		}
		rv = 0;
	}
	pthread_mutex_unlock(&lock);
	return rv;
}
