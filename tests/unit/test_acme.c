/* ACME pieces pebble cannot show: base64url, RFC 3339 times, the renewal
 * decision (renew_before, a third of the lifetime, the ARI window), the
 * ARI certificate id, problem documents in words, JWS signatures that
 * verify, and the RFC 8737 certificate's extension. */
#include <string.h>
#include <time.h>

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include <jansson.h>

#include "acme.h"
#include "check.h"
#include "pki.h"

/* a JSON literal and its length */
#define J(s) s, strlen(s)

static X509 *
cert_valid(time_t nb, time_t na, struct tg_ca *ca)
{
	EVP_PKEY *k = tg_key_generate(TG_KEY_EC_P256, NULL);
	X509 *x = tg_cert_build(TG_BUILD_SERVER, "t", "dns:t.example", 10, k, ca, NULL);

	ASN1_TIME_set(X509_getm_notBefore(x), nb);
	ASN1_TIME_set(X509_getm_notAfter(x), na);
	X509_sign(x, ca->key, EVP_sha256());
	EVP_PKEY_free(k);
	return x;
}

/* Verifies a flattened JWS with ES256 against key. */
static int
jws_verifies(const char *jws, EVP_PKEY *key, char *prot_out, size_t plen)
{
	json_t *j = json_loads(jws, 0, NULL);
	const char *p = json_string_value(json_object_get(j, "protected"));
	const char *y = json_string_value(json_object_get(j, "payload"));
	const char *s = json_string_value(json_object_get(j, "signature"));
	unsigned char sig[64], der[80], *dp = der;
	char input[4096];
	ECDSA_SIG *es = ECDSA_SIG_new();
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	long n;
	int dl, ok = 0;

	if (!p || !y || !s || tg_b64url_decode(s, sig, sizeof(sig)) != 64)
		goto out;
	n = tg_b64url_decode(p, (unsigned char *)prot_out, plen - 1);
	prot_out[n < 0 ? 0 : n] = '\0';
	snprintf(input, sizeof(input), "%s.%s", p, y);
	ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
	dl = i2d_ECDSA_SIG(es, &dp);
	ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestVerify(md, der, (size_t)dl, (unsigned char *)input, strlen(input)) == 1;
out:
	EVP_MD_CTX_free(md);
	ECDSA_SIG_free(es);
	json_decref(j);
	return ok;
}

int
main(void)
{
	char buf[512], prot[1024], why[400];
	unsigned char bin[64];
	struct tg_err err;
	struct tg_acme_ari ari;
	struct tg_acme_authz az;
	struct tg_acme_order ord;
	struct tg_acme_dir dir;
	struct tg_ca ca;
	time_t t, now = time(NULL), when;
	EVP_PKEY *k;
	X509 *x, *ac;
	char *jws;

	/* base64url */
	CHECK(tg_b64url("\xfb\xff", 2, buf, sizeof(buf)) == 0 && !strcmp(buf, "-_8"), "%s", buf);
	CHECK(tg_b64url_decode("-_8", bin, sizeof(bin)) == 2 && bin[0] == 0xfb && bin[1] == 0xff, "dec");
	CHECK(tg_b64url_decode("a*b", bin, sizeof(bin)) < 0, "bad base64url refused");

	/* RFC 3339 */
	CHECK(tg_acme_parse_time("2026-01-02T03:04:05Z", &t) == 0 && t == 1767323045, "%lld", (long long)t);
	CHECK(tg_acme_parse_time("2026-01-02T05:04:05.123+02:00", &t) == 0 && t == 1767323045, "offset");
	CHECK(tg_acme_parse_time("2026-13-02T03:04:05Z", &t) < 0, "month 13");
	CHECK(tg_acme_parse_time("2026-01-02T03:04:05", &t) < 0, "no zone");

	/* the renewal decision */
	memset(&ca, 0, sizeof(ca));
	ca.key = tg_key_generate(TG_KEY_EC_P256, NULL);
	ca.cert = tg_cert_build(TG_BUILD_CA, "ca", NULL, 10, ca.key, NULL, NULL);
	x = cert_valid(now - 10 * 86400, now + 80 * 86400, &ca);   /* 90-day certificate */
	CHECK(tg_acme_due(x, 30 * 86400, NULL, now, &when, why, sizeof(why)) == 0 &&
	    when == now + 50 * 86400 && strstr(why, "not due until"), "90d: %s", why);
	CHECK(tg_acme_due(x, 30 * 86400, NULL, now + 51 * 86400, &when, why, sizeof(why)) == 1 &&
	    strstr(why, "renew_before"), "due after 50 days: %s", why);
	CHECK(tg_acme_due(x, 0, NULL, now, &when, why, sizeof(why)) == 0 &&
	    when == now + 50 * 86400, "90d without renew_before: a third: %s", why);
	X509_free(x);
	x = cert_valid(now - 2 * 86400, now + 4 * 86400, &ca);     /* 6-day certificate */
	CHECK(tg_acme_due(x, 30 * 86400, NULL, now, &when, why, sizeof(why)) == 1 &&
	    strstr(why, "renew_before"), "short: %s", why);
	CHECK(tg_acme_due(x, 86400, NULL, now, &when, why, sizeof(why)) == 0 &&
	    when == now + 1 * 86400, "half of 6 days (under 10 days): %s", why);
	CHECK(tg_acme_due(x, 0, NULL, now, &when, why, sizeof(why)) == 0 &&
	    when == now + 1 * 86400, "no renew_before, 6 days: renewed after 3: %s", why);
	CHECK(tg_acme_due(x, 0, NULL, now + 86400 + 1, &when, why, sizeof(why)) == 1 &&
	    strstr(why, "half of its lifetime"), "6 days, due: %s", why);
	memset(&ari, 0, sizeof(ari));
	ari.start = now - 3600;
	ari.end = now - 60;
	snprintf(ari.explanation, sizeof(ari.explanation), "https://ca.example/why");
	CHECK(tg_acme_due(x, 86400, &ari, now, &when, why, sizeof(why)) == 1 &&
	    strstr(why, "renewal window") && strstr(why, "ca.example/why"), "ARI: %s", why);
	ari.start = now + 3600;
	ari.end = now + 7200;
	CHECK(tg_acme_due(x, 86400, &ari, now, &when, why, sizeof(why)) == 0 &&
	    when >= ari.start && when <= ari.end, "ARI window later: %s", why);
	CHECK(tg_acme_due(x, 86400, NULL, now + 5 * 86400, &when, why, sizeof(why)) == 1 &&
	    strstr(why, "expired"), "expired: %s", why);
	CHECK(tg_acme_cert_id(x, buf, sizeof(buf)) == 0 && strchr(buf, '.') &&
	    !strpbrk(buf, "+/="), "cert id %s", buf);
	X509_free(x);

	/* documents */
	CHECK(tg_acme_parse_ari(J("{\"suggestedWindow\":{\"start\":\"2026-01-02T03:04:05Z\","
	    "\"end\":\"2026-01-03T03:04:05Z\"}}"), &ari, &err) == 0 && ari.end - ari.start == 86400,
	    "ari");
	CHECK(tg_acme_parse_ari(J("{\"suggestedWindow\":{\"start\":\"2026-01-03T03:04:05Z\","
	    "\"end\":\"2026-01-02T03:04:05Z\"}}"), &ari, &err) < 0, "reversed window refused");
	CHECK(tg_acme_problem_words(J("{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\","
	    "\"detail\":\"no\",\"subproblems\":[{\"detail\":\"bad name\",\"identifier\":"
	    "{\"type\":\"dns\",\"value\":\"x.example\"}}]}"), buf, sizeof(buf)) == 0 &&
	    !strcmp(buf, "no (rejectedIdentifier); x.example: bad name"), "%s", buf);
	CHECK(tg_acme_parse_directory(J("{\"newNonce\":\"https://a/n\",\"newAccount\":\"https://a/a\","
	    "\"newOrder\":\"https://a/o\",\"meta\":{\"termsOfService\":\"https://a/t\","
	    "\"externalAccountRequired\":true}}"), &dir, &err) == 0 && dir.eab_required &&
	    !strcmp(dir.terms, "https://a/t"), "directory: %s", err.msg);
	CHECK(tg_acme_parse_directory(J("{\"newNonce\":\"https://a/n\",\"newAccount\":\"https://a/a\","
	    "\"newOrder\":\"https://a/o\",\"meta\":{\"profiles\":{\"classic\":\"https://a/c\","
	    "\"shortlived\":\"https://a/s\"}}}"), &dir, &err) == 0 &&
	    !strcmp(dir.profiles, "classic, shortlived") && tg_acme_is_profile(&dir, "shortlived") &&
	    !tg_acme_is_profile(&dir, "short") && !tg_acme_is_profile(&dir, "tlsserver"),
	    "profiles: %s", dir.profiles);
	CHECK(tg_acme_parse_directory(J("{\"newNonce\":\"https://a/n\",\"newAccount\":\"https://a/a\","
	    "\"newOrder\":\"https://a/o\",\"meta\":{\"profiles\":{\"bad\\\"name\":\"x\",\"ok\":\"y\"}}}"),
	    &dir, &err) == 0 && !strcmp(dir.profiles, "ok"), "a profile name with a quote left out: %s",
	    dir.profiles);
	CHECK(tg_acme_parse_directory(J("{\"newNonce\":\"ftp://a\",\"newAccount\":\"https://a/a\","
	    "\"newOrder\":\"https://a/o\"}"), &dir, &err) < 0, "non-http URL refused");
	CHECK(tg_acme_parse_order(J("{\"status\":\"pending\",\"finalize\":\"https://a/f\","
	    "\"authorizations\":[\"https://a/z1\",\"https://a/z2\"]}"), &ord, &err) == 0 &&
	    ord.nauthz == 2, "order: %s", err.msg);
	tg_acme_order_clear(&ord);
	CHECK(tg_acme_parse_authz(J("{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\","
	    "\"value\":\"a\"},\"challenges\":[{\"type\":\"http-01\",\"url\":\"https://a/c\","
	    "\"token\":\"../etc\"}]}"), &az, &err) < 0 && strstr(err.msg, "base64url"),
	    "a token that is not base64url is refused: %s", err.msg);

	/* JWS: signatures verify, headers carry what RFC 8555 wants */
	k = tg_key_generate(TG_KEY_EC_P256, NULL);
	jws = tg_acme_jws(k, NULL, "nonce1", "https://a/new-acct", "{\"x\":1}", &err);
	CHECK(jws && jws_verifies(jws, k, prot, sizeof(prot)), "jwk JWS verifies");
	CHECK(strstr(prot, "\"jwk\":{\"crv\":\"P-256\"") && strstr(prot, "\"nonce\":\"nonce1\""),
	    "%s", prot);
	free(jws);
	jws = tg_acme_jws(k, "https://a/acct/1", "n2", "https://a/order", NULL, &err);
	CHECK(jws && jws_verifies(jws, k, prot, sizeof(prot)) && strstr(prot, "\"kid\":") &&
	    strstr(jws, "\"payload\":\"\""), "POST-as-GET");
	free(jws);
	CHECK(tg_acme_jws(k, NULL, "bad\"nonce", "https://a", NULL, &err) == NULL, "quotes refused");
	jws = tg_acme_eab(k, "kid-1", "c2VjcmV0LWtleQ", "https://a/new-acct", &err);
	CHECK(jws && strstr(jws, "\"signature\":\""), "EAB: %s", jws ? jws : err.msg);
	free(jws);
	CHECK(tg_acme_thumbprint(k, buf, sizeof(buf)) == 0 && strlen(buf) == 43, "thumbprint");

	EVP_PKEY_free(k);
	/* RFC 8737 certificate: critical acmeIdentifier with SHA-256(keyauth) */
	CHECK(tg_acme_alpn_cert("t.example", "tok.thumb", &ac, &k, &err) == 0, "alpn: %s", err.msg);
	{
		ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
		int i = X509_get_ext_by_OBJ(ac, oid, -1);
		X509_EXTENSION *ex = X509_get_ext(ac, i);
		ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ex);
		unsigned char md[32];
		SHA256((const unsigned char *)"tok.thumb", 9, md);
		CHECK(i >= 0 && X509_EXTENSION_get_critical(ex) && v->length == 34 &&
		    v->data[0] == 4 && v->data[1] == 32 && !memcmp(v->data + 2, md, 32), "extension");
		CHECK(X509_check_host(ac, "t.example", 0, 0, NULL) == 1, "SAN");
		ASN1_OBJECT_free(oid);
	}
	X509_free(ac);
	EVP_PKEY_free(k);
	tg_ca_clear(&ca);
	return check_done("test_acme");
}
