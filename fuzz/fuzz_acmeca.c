/* The ACME CA's untrusted input before any signature is checked: a JWS
 * taken apart, its JWK made into a key and thumbprinted, names and
 * policies matched. Whatever is accepted is whole (the header has alg and
 * url, the payload its length); a refusal always says why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acmeca.h"
#include "acmeca_int.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tg_jws j;
	char why[300], tp[64], s[512];
	EVP_PKEY *k;
	struct tg_err err;

	why[0] = '\0';
	if (tg_jws_parse((const char *)data, size, &j, why, sizeof(why)) == 0) {
		if (!j.alg[0] || !j.url[0] || j.signing_input == NULL ||
		    strlen(j.signing_input) != j.signing_len)
			abort();
		if (j.jwk) {
			k = tg_jwk_key(j.jwk, why, sizeof(why));
			(void)tg_jwk_thumbprint(j.jwk, tp, sizeof(tp));
			if (k) {
				(void)tg_jws_verify(&j, k, why, sizeof(why));
				EVP_PKEY_free(k);
			}
		}
		(void)tg_jws_verify_hs256(&j, (const unsigned char *)"k", 1);
		tg_jws_clear(&j);
	} else if (why[0] == '\0') {
		abort();
	}
	/* the same bytes as a name and as a policy */
	if (size < sizeof(s)) {
		memcpy(s, data, size);
		s[size] = '\0';
		(void)tg_acmeca_dns_ok(s);
		(void)tg_acmeca_allowed(s, "dns", "a.fleet.test");
		(void)tg_acmeca_allowed(s, "ip", "10.1.2.3");
		(void)tg_acmeca_allowed("*.fleet.test,ip:10.0.0.0/8,uri:spiffe://f/*", "uri", s);
		(void)tg_acmeca_policy_check(s, &err);
	}
	return 0;
}
