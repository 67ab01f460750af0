/*
 * Verified-chain cache: a fixed array of 4-way sets indexed by the chain's
 * hash; a full set loses its entry that expires first. Bounded memory
 * (capacity × ~56 bytes), no allocation on a lookup, a mutex because
 * libtlsgate's users may share one SSL_CTX between threads.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "chain_cache.h"

#define WAYS 4

struct entry {
	unsigned char key[TG_CHAIN_KEY_LEN];
	time_t until;   /* 0: empty */
};

struct tg_chain_cache {
	pthread_mutex_t lock;
	size_t sets;    /* a power of two */
	struct entry *e;
};

static uint64_t n_hits, n_misses;

struct tg_chain_cache *
tg_chain_cache_new(size_t capacity)
{
	struct tg_chain_cache *cc = calloc(1, sizeof(*cc));
	size_t sets = 1;

	if (cc == NULL)
		return NULL;
	while (sets * WAYS < capacity)
		sets <<= 1;
	cc->sets = sets;
	if ((cc->e = calloc(sets * WAYS, sizeof(*cc->e))) == NULL) {
		free(cc);
		return NULL;
	}
	pthread_mutex_init(&cc->lock, NULL);
	return cc;
}

void
tg_chain_cache_free(struct tg_chain_cache *cc)
{
	if (cc == NULL)
		return;
	pthread_mutex_destroy(&cc->lock);
	free(cc->e);
	free(cc);
}

static EVP_MD *sha256;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void
fetch_md(void)
{
	sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);   /* fetched once: fetches are slow */
}

static int
add_cert(EVP_MD_CTX *md, X509 *x)
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der), ok;

	if (n <= 0)
		return -1;
	ok = EVP_DigestUpdate(md, der, (size_t)n);
	OPENSSL_free(der);
	return ok == 1 ? 0 : -1;
}

int
tg_chain_cache_key(X509 *leaf, STACK_OF(X509) *untrusted, unsigned char key[TG_CHAIN_KEY_LEN])
{
	EVP_MD_CTX *md;
	unsigned int len = 0;
	int i, rv = -1;

	pthread_once(&md_once, fetch_md);
	if (sha256 == NULL || (md = EVP_MD_CTX_new()) == NULL)
		return -1;
	if (EVP_DigestInit_ex(md, sha256, NULL) != 1 || add_cert(md, leaf) < 0)
		goto out;
	for (i = 0; i < sk_X509_num(untrusted); i++) {
		X509 *x = sk_X509_value(untrusted, i);
		if (x != leaf && add_cert(md, x) < 0)
			goto out;
	}
	if (EVP_DigestFinal_ex(md, key, &len) == 1 && len == TG_CHAIN_KEY_LEN)
		rv = 0;
out:
	EVP_MD_CTX_free(md);
	return rv;
}

static struct entry *
set_of(struct tg_chain_cache *cc, const unsigned char *key)
{
	uint64_t h;

	memcpy(&h, key, sizeof(h));
	return cc->e + (h & (cc->sets - 1)) * WAYS;
}

int
tg_chain_cache_hit(struct tg_chain_cache *cc, const unsigned char *key, time_t now)
{
	struct entry *s;
	int i, hit = 0;

	if (cc == NULL)
		return 0;
	pthread_mutex_lock(&cc->lock);
	s = set_of(cc, key);
	for (i = 0; i < WAYS; i++) {
		if (s[i].until == 0 || memcmp(s[i].key, key, TG_CHAIN_KEY_LEN) != 0)
			continue;
		if (now < s[i].until)
			hit = 1;
		else
			s[i].until = 0;   /* expired: forget it */
		break;
	}
	pthread_mutex_unlock(&cc->lock);
	__atomic_fetch_add(hit ? &n_hits : &n_misses, 1, __ATOMIC_RELAXED);
	return hit;
}

/* The earliest notAfter of the chain as a time_t; 0 if one cannot be read. */
static time_t
chain_until(STACK_OF(X509) *chain)
{
	time_t until = 0;
	int i;

	for (i = 0; i < sk_X509_num(chain); i++) {
		struct tm tm;
		time_t t;
		if (ASN1_TIME_to_tm(X509_get0_notAfter(sk_X509_value(chain, i)), &tm) != 1)
			return 0;
		t = timegm(&tm);
		if (until == 0 || t < until)
			until = t;
	}
	return until;
}

void
tg_chain_cache_put(struct tg_chain_cache *cc, const unsigned char *key,
    STACK_OF(X509) *verified, time_t now)
{
	struct entry *s, *victim;
	time_t until = chain_until(verified);
	int i;

	if (cc == NULL || until <= now)
		return;
	if (until > now + TG_CHAIN_CACHE_TTL)
		until = now + TG_CHAIN_CACHE_TTL;
	pthread_mutex_lock(&cc->lock);
	s = set_of(cc, key);
	victim = &s[0];
	for (i = 0; i < WAYS; i++) {
		if (s[i].until != 0 && memcmp(s[i].key, key, TG_CHAIN_KEY_LEN) == 0) {
			victim = &s[i];   /* the same chain again: refresh */
			break;
		}
		if (s[i].until < victim->until)
			victim = &s[i];   /* an empty way (0) or the one expiring first */
	}
	memcpy(victim->key, key, TG_CHAIN_KEY_LEN);
	victim->until = until;
	pthread_mutex_unlock(&cc->lock);
}

void
tg_chain_cache_counts(uint64_t *hits, uint64_t *misses)
{
	*hits = __atomic_load_n(&n_hits, __ATOMIC_RELAXED);
	*misses = __atomic_load_n(&n_misses, __ATOMIC_RELAXED);
}
