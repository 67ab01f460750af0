/*
 * A bounded cache of client certificate chains that passed OpenSSL's
 * verification against one trust store, so a returning client does not pay
 * for path building and the CA's signature again. One cache belongs to one
 * server SSL_CTX (its store and verify parameters never change), an entry
 * lives until the earliest notAfter of the verified chain or an hour,
 * whichever comes first, and only successes are kept: a failure is always
 * checked afresh. The trust engine still judges every handshake.
 */
#ifndef TG_CHAIN_CACHE_H
#define TG_CHAIN_CACHE_H

#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#define TG_CHAIN_KEY_LEN 32
#define TG_CHAIN_CACHE_TTL 3600   /* seconds an entry may be reused at most */
#define TG_CHAIN_CACHE_SIZE 4096  /* chains per server context */

struct tg_chain_cache;

struct tg_chain_cache *tg_chain_cache_new(size_t capacity);
void tg_chain_cache_free(struct tg_chain_cache *cc);

/* The key of a presented chain: SHA-256 over the leaf and every untrusted
 * certificate the peer sent, in order. 0 on success. */
int tg_chain_cache_key(X509 *leaf, STACK_OF(X509) *untrusted,
    unsigned char key[TG_CHAIN_KEY_LEN]);

/* 1 if key was verified and is still good at now, else 0. */
int tg_chain_cache_hit(struct tg_chain_cache *cc, const unsigned char *key, time_t now);

/* Remembers a verified chain (the whole chain OpenSSL built, for expiry). */
void tg_chain_cache_put(struct tg_chain_cache *cc, const unsigned char *key,
    STACK_OF(X509) *verified, time_t now);

/* Process-wide lookups that hit and missed, for metrics. */
void tg_chain_cache_counts(uint64_t *hits, uint64_t *misses);

#endif
