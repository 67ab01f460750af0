/* The verified-chain cache: keyed by the whole presented chain, bounded,
 * never past the chain's earliest notAfter nor TG_CHAIN_CACHE_TTL. */
#include <string.h>
#include <time.h>

#include "chain_cache.h"
#include "check.h"
#include "error.h"
#include "pki.h"

int
main(void)
{
	struct tg_err err;
	EVP_PKEY *k1 = tg_key_generate(TG_KEY_EC_P256, &err), *k2 = tg_key_generate(TG_KEY_EC_P256, &err);
	X509 *a = tg_cert_build(TG_BUILD_SELF, "a", "dns:a", 30, k1, NULL, &err);
	X509 *b = tg_cert_build(TG_BUILD_SELF, "b", "dns:b", 1, k2, NULL, &err);
	STACK_OF(X509) *chain_a = sk_X509_new_null(), *chain_b = sk_X509_new_null();
	struct tg_chain_cache *cc = tg_chain_cache_new(8);
	unsigned char ka[TG_CHAIN_KEY_LEN], kb[TG_CHAIN_KEY_LEN], kab[TG_CHAIN_KEY_LEN];
	time_t now = time(NULL);
	uint64_t h0, m0, h1, m1;
	int i, hits;

	CHECK(a && b && cc && chain_a && chain_b, "set-up");
	sk_X509_push(chain_a, a);
	sk_X509_push(chain_b, b);
	CHECK(tg_chain_cache_key(a, chain_a, ka) == 0, "key of a");
	CHECK(tg_chain_cache_key(b, chain_b, kb) == 0, "key of b");
	CHECK(tg_chain_cache_key(a, chain_b, kab) == 0, "key of a with b as intermediate");
	CHECK(memcmp(ka, kb, sizeof(ka)) != 0, "different leaves, different keys");
	CHECK(memcmp(ka, kab, sizeof(ka)) != 0, "another intermediate, another key");

	tg_chain_cache_counts(&h0, &m0);
	CHECK(!tg_chain_cache_hit(cc, ka, now), "empty cache misses");
	tg_chain_cache_put(cc, ka, chain_a, now);
	CHECK(tg_chain_cache_hit(cc, ka, now + 10), "a verified chain hits");
	CHECK(!tg_chain_cache_hit(cc, kab, now + 10), "the same leaf with other intermediates misses");
	CHECK(!tg_chain_cache_hit(cc, ka, now + TG_CHAIN_CACHE_TTL), "no entry outlives the TTL");
	CHECK(!tg_chain_cache_hit(cc, ka, now + 10), "an expired entry is forgotten");
	tg_chain_cache_counts(&h1, &m1);
	CHECK(h1 - h0 == 1 && m1 - m0 == 4, "counts: %llu hits %llu misses",
	    (unsigned long long)(h1 - h0), (unsigned long long)(m1 - m0));

	/* b expires in two minutes: its entry must end then, before the TTL */
	X509_gmtime_adj(X509_getm_notAfter(b), 120);
	tg_chain_cache_put(cc, kb, chain_b, now);
	CHECK(tg_chain_cache_hit(cc, kb, now + 60), "b hits");
	CHECK(!tg_chain_cache_hit(cc, kb, now + 130), "not past the chain's notAfter");
	tg_chain_cache_put(cc, kb, chain_b, now + 130);
	CHECK(!tg_chain_cache_hit(cc, kb, now + 131), "an expired chain is not stored");

	/* bounded: 100 chains into 8 places; recent ones mostly stay, no crash */
	for (i = 0; i < 100; i++) {
		unsigned char k[TG_CHAIN_KEY_LEN];
		memset(k, 0, sizeof(k));
		memcpy(k, &i, sizeof(i));
		k[31] = (unsigned char)i;
		tg_chain_cache_put(cc, k, chain_a, now);
	}
	for (i = 92, hits = 0; i < 100; i++) {
		unsigned char k[TG_CHAIN_KEY_LEN];
		memset(k, 0, sizeof(k));
		memcpy(k, &i, sizeof(i));
		k[31] = (unsigned char)i;
		hits += tg_chain_cache_hit(cc, k, now + 1);
	}
	CHECK(hits >= 1 && hits <= 8, "bounded cache keeps at most its capacity (%d of the last 8)", hits);

	tg_chain_cache_free(cc);
	sk_X509_free(chain_a);
	sk_X509_free(chain_b);
	X509_free(a);
	X509_free(b);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	return check_done("test_chain_cache");
}
