/*
 * The ACME CA's core without a network: names and policies, the JWS
 * checks (signatures, algorithms, the EAB's HMAC), and the protocol driven
 * through tg_acmeca_handle with a folder store: directory, nonces (one
 * use), accounts with external account binding (an unknown or used key
 * refused), the URL a JWS names, policy refusals, an order and its
 * authorization, finalize before the challenge, key change (the old key
 * then signs nothing), deactivation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "acme.h"
#include "acme_wire.h"
#include "acmeca.h"
#include "acmeca_int.h"
#include "check.h"
#include "error.h"
#include "pki.h"

#define HOST "ca.test"
#define BASE "https://" HOST "/acme/"

static void
names(void)
{
	static const struct { const char *n; int ok; } dns[] = {
		{ "a.fleet.test", 1 }, { "*.fleet.test", 1 }, { "x", 1 }, { "a-b.c", 1 },
		{ "A.fleet.test", 0 }, { "a..b", 0 }, { ".a", 0 }, { "a.", 0 }, { "-a.b", 0 },
		{ "a-.b", 0 }, { "a.*.b", 0 }, { "", 0 }, { "a_b.c", 0 }, { "*.", 0 },
	};
	static const struct { const char *allow, *type, *v; int ok; } pol[] = {
		{ "*.fleet.test", "dns", "a.fleet.test", 1 },
		{ "*.fleet.test", "dns", "a.b.fleet.test", 1 },
		{ "*.fleet.test", "dns", "*.b.fleet.test", 1 },
		{ "*.fleet.test", "dns", "fleet.test", 0 },
		{ "*.fleet.test", "dns", "evilfleet.test", 0 },
		{ "fleet.test", "dns", "fleet.test", 1 },
		{ "dns:fleet.test", "dns", "fleet.test", 1 },
		{ "fleet.test", "dns", "a.fleet.test", 0 },
		{ "*", "dns", "anything.example", 1 },
		{ "*", "ip", "10.0.0.1", 0 },
		{ "ip:10.0.0.0/8", "ip", "10.255.1.2", 1 },
		{ "ip:10.0.0.0/8", "ip", "11.0.0.1", 0 },
		{ "ip:10.0.0.0/8", "dns", "10.0.0.1", 0 },
		{ "ip:10.1.2.3", "ip", "10.1.2.3", 1 },
		{ "ip:10.1.2.3", "ip", "10.1.2.4", 0 },
		{ "ip:fd00::/8", "ip", "fd12::1", 1 },
		{ "ip:fd00::/8", "ip", "fe80::1", 0 },
		{ "ip:0.0.0.0/0", "ip", "192.0.2.1", 1 },
		{ "uri:spiffe://fleet/*", "uri", "spiffe://fleet/node/1", 1 },
		{ "uri:spiffe://fleet/*", "uri", "spiffe://other/node", 0 },
		{ "uri:spiffe://fleet/a", "uri", "spiffe://fleet/ab", 0 },
		{ " a.test , *.b.test ", "dns", "x.b.test", 1 },
		{ "", "dns", "a.test", 0 },
	};
	static const struct { const char *allow; int ok; } chk[] = {
		{ "*.fleet.test,ip:10.0.0.0/8,uri:spiffe://x/*", 1 }, { "*", 1 },
		{ "ip:300.1.1.1", 0 }, { "ip:10.0.0.0/33", 0 }, { "ip:10.0.0.0/x", 0 },
		{ "Fleet.test", 0 }, { "uri:nothing", 0 }, { "a b", 0 }, { "", 1 },
	};
	struct tg_err err;
	size_t i;

	for (i = 0; i < sizeof(dns) / sizeof(dns[0]); i++)
		CHECK(tg_acmeca_dns_ok(dns[i].n) == dns[i].ok, "dns_ok(%s)", dns[i].n);
	for (i = 0; i < sizeof(pol) / sizeof(pol[0]); i++)
		CHECK(tg_acmeca_allowed(pol[i].allow, pol[i].type, pol[i].v) == pol[i].ok,
		    "allowed(%s, %s:%s)", pol[i].allow, pol[i].type, pol[i].v);
	for (i = 0; i < sizeof(chk) / sizeof(chk[0]); i++)
		CHECK((tg_acmeca_policy_check(chk[i].allow, &err) == 0) == chk[i].ok,
		    "policy_check(%s)", chk[i].allow);
}

/* ---- a JWS signer with a header of the test's choosing ------------------------- */

static char *
b64(const void *p, size_t n)
{
	char *o = malloc(n * 4 / 3 + 8);
	tg_b64url(p, n, o, n * 4 / 3 + 8);
	return o;
}

static char *
jws(EVP_PKEY *k, const char *prot, const char *payload)
{
	char *ph = b64(prot, strlen(prot)), *pp = b64(payload, strlen(payload)), *in, *out, *sb;
	unsigned char der[128], raw[64];
	size_t dl = sizeof(der);
	const unsigned char *d = der;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	ECDSA_SIG *s;

	if (asprintf(&in, "%s.%s", ph, pp) < 0)
		abort();
	if (EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, k) != 1 ||
	    EVP_DigestSign(m, der, &dl, (unsigned char *)in, strlen(in)) != 1)
		abort();
	s = d2i_ECDSA_SIG(NULL, &d, (long)dl);
	BN_bn2binpad(ECDSA_SIG_get0_r(s), raw, 32);
	BN_bn2binpad(ECDSA_SIG_get0_s(s), raw + 32, 32);
	ECDSA_SIG_free(s);
	EVP_MD_CTX_free(m);
	sb = b64(raw, 64);
	if (asprintf(&out, "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}", ph,
	    payload[0] ? pp : "", sb) < 0)
		abort();
	free(ph);
	free(pp);
	free(in);
	free(sb);
	return out;
}

static void
jws_checks(void)
{
	EVP_PKEY *k = tg_key_generate(TG_KEY_EC_P256, NULL), *k2 = tg_key_generate(TG_KEY_EC_P256, NULL);
	char jwk[300], prot[800], why[300], tp1[64], tp2[64], *body;
	struct tg_jws j;
	EVP_PKEY *pk;
	struct tg_err err;
	static const char *bad[] = {
		"", "[]", "{}", "{\"protected\":\"e30\",\"payload\":\"\"}",
		"{\"protected\":\"!!\",\"payload\":\"\",\"signature\":\"\"}",
		"{\"protected\":\"e30\",\"payload\":\"\",\"signature\":\"\"}",   /* {} : no alg */
		"{\"protected\":\"eyJhbGciOiJFUzI1NiJ9\",\"payload\":\"\",\"signature\":\"\"}",  /* no url */
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		CHECK(tg_jws_parse(bad[i], strlen(bad[i]), &j, why, sizeof(why)) < 0 && why[0],
		    "malformed JWS %zu accepted or refused without words", i);
	}
	tg_acme_jwk(k, jwk, sizeof(jwk));
	snprintf(prot, sizeof(prot), "{\"alg\":\"ES256\",\"jwk\":%s,\"nonce\":\"n\",\"url\":\"u\"}",
	    jwk);
	body = jws(k, prot, "{\"a\":1}");
	CHECK(tg_jws_parse(body, strlen(body), &j, why, sizeof(why)) == 0, "parse: %s", why);
	pk = tg_jwk_key(j.jwk, why, sizeof(why));
	CHECK(pk != NULL, "jwk key: %s", why);
	CHECK(pk && tg_jws_verify(&j, pk, why, sizeof(why)) == 0, "verify: %s", why);
	CHECK(tg_jws_verify(&j, k2, why, sizeof(why)) < 0, "verified with another key");
	tg_jwk_thumbprint(j.jwk, tp1, sizeof(tp1));
	tg_acme_thumbprint(k, tp2, sizeof(tp2));
	CHECK(!strcmp(tp1, tp2), "thumbprints differ: %s %s", tp1, tp2);
	CHECK(!strcmp((char *)j.payload, "{\"a\":1}"), "payload %s", j.payload);
	/* a changed payload no longer verifies */
	j.signing_input[j.signing_len - 1] ^= 1;
	CHECK(pk && tg_jws_verify(&j, pk, why, sizeof(why)) < 0, "tampered JWS verified");
	/* an alg that does not fit the key */
	snprintf(j.alg, sizeof(j.alg), "RS256");
	CHECK(pk && tg_jws_verify(&j, pk, why, sizeof(why)) < 0 && strstr(why, "RS256"),
	    "RS256 on an EC key: %s", why);
	tg_jws_clear(&j);
	EVP_PKEY_free(pk);
	free(body);
	/* the same key written with its spare bits set: refused (one key, one
	 * thumbprint, one account) */
	{
		json_t *jk = json_loads(jwk, 0, NULL);
		const char *x = json_string_value(json_object_get(jk, "x"));
		char alt[64], *c;
		snprintf(alt, sizeof(alt), "%s", x);
		c = alt + strlen(alt) - 1;
		*c = (char)(strchr("AEIMQUYcgkosw048", *c) ? *c + 1 : *c - 1);   /* low 2 bits */
		json_object_set_new(jk, "x", json_string(alt));
		pk = tg_jwk_key(jk, why, sizeof(why));
		CHECK(pk == NULL, "a JWK with spare bits set was taken");
		EVP_PKEY_free(pk);
		json_decref(jk);
	}
	/* HS256, as external account binding signs */
	body = tg_acme_eab(k, "kid-1", "c2VjcmV0LWtleS1vZi10aGlydHktdHdvLWJ5dGVzISE", "u", &err);
	CHECK(body && tg_jws_parse(body, strlen(body), &j, why, sizeof(why)) == 0, "eab parse");
	{
		unsigned char key[64];
		long kl = tg_b64url_decode("c2VjcmV0LWtleS1vZi10aGlydHktdHdvLWJ5dGVzISE", key,
		    sizeof(key));
		CHECK(tg_jws_verify_hs256(&j, key, (size_t)kl) == 0, "HS256 refused");
		key[0] ^= 1;
		CHECK(tg_jws_verify_hs256(&j, key, (size_t)kl) < 0, "HS256 with another key");
	}
	tg_jws_clear(&j);
	free(body);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
}

/* ---- the protocol ------------------------------------------------------------------ */

static struct tg_acmeca *ca;
static char nonce[64];

static int
call(const char *method, const char *path, const char *body, struct tg_acmeca_resp *r)
{
	struct tg_acmeca_req q = { method, HOST, path, body ? body : "", body ? strlen(body) : 0 };
	const char *n;

	tg_acmeca_resp_clear(r);
	tg_acmeca_handle(ca, &q, r);
	if ((n = strstr(r->headers, "Replay-Nonce: ")) != NULL)
		sscanf(n + 14, "%63[^\r]", nonce);
	return r->status;
}

/* A POST signed by k, with its jwk or as kid, to path. */
static int
post(EVP_PKEY *k, const char *kid, const char *path, const char *payload,
    struct tg_acmeca_resp *r)
{
	char prot[1200], jwk[300];
	char *body;
	int st;

	if (kid)
		snprintf(prot, sizeof(prot), "{\"alg\":\"ES256\",\"kid\":\"%s\",\"nonce\":\"%s\","
		    "\"url\":\"" BASE "%s\"}", kid, nonce, path + 6);
	else {
		tg_acme_jwk(k, jwk, sizeof(jwk));
		snprintf(prot, sizeof(prot), "{\"alg\":\"ES256\",\"jwk\":%s,\"nonce\":\"%s\","
		    "\"url\":\"" BASE "%s\"}", jwk, nonce, path + 6);
	}
	body = jws(k, prot, payload);
	st = call("POST", path, body, r);
	free(body);
	return st;
}

static int
has(const struct tg_acmeca_resp *r, const char *s)
{
	return (r->body && strstr(r->body, s)) || strstr(r->headers, s);
}

static void
location(const struct tg_acmeca_resp *r, char *out, size_t len)
{
	const char *l = strstr(r->headers, "Location: ");
	out[0] = '\0';
	if (l)
		snprintf(out, len, "%.*s", (int)strcspn(l + 10, "\r"), l + 10);
}

/* A CSR for key k naming sans, "DNS:a|IP:b|URI:c" (built by hand: a URI
 * may hold a comma, which OpenSSL's own syntax cannot write), as base64url
 * DER. */
static char *
csr_b64(EVP_PKEY *k, const char *sans)
{
	X509_REQ *r = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	GENERAL_NAMES *g = sk_GENERAL_NAME_new_null();
	X509_EXTENSION *ext;
	unsigned char *der = NULL;
	char item[300];
	const char *p = sans;
	int n;
	char *out;

	while (*p) {
		size_t l = strcspn(p, "|");
		GENERAL_NAME *gn = GENERAL_NAME_new();
		snprintf(item, sizeof(item), "%.*s", (int)l, p);
		p += l + (p[l] == '|');
		if (!strncmp(item, "IP:", 3)) {
			ASN1_OCTET_STRING *ip = a2i_IPADDRESS(item + 3);
			GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
		} else {
			ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
			int uri = !strncmp(item, "URI:", 4);
			ASN1_STRING_set(ia5, item + (uri ? 4 : 4), -1);
			GENERAL_NAME_set0_value(gn, uri ? GEN_URI : GEN_DNS, ia5);
		}
		sk_GENERAL_NAME_push(g, gn);
	}
	ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, g);
	if (r == NULL || ext == NULL || !sk_X509_EXTENSION_push(exts, ext) ||
	    X509_REQ_add_extensions(r, exts) != 1 || X509_REQ_set_pubkey(r, k) != 1 ||
	    X509_REQ_sign(r, k, EVP_sha256()) <= 0 || (n = i2d_X509_REQ(r, &der)) <= 0)
		abort();
	out = b64(der, (size_t)n);
	OPENSSL_free(der);
	GENERAL_NAMES_free(g);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(r);
	return out;
}

/* finalize at path, signed by k as kid, with a CSR for ck naming sans: the
 * status */
static int
finalize_csr(EVP_PKEY *k, const char *kid, const char *path, EVP_PKEY *ck, const char *sans,
    struct tg_acmeca_resp *r)
{
	char payload[2000], *csr = csr_b64(ck, sans);
	snprintf(payload, sizeof(payload), "{\"csr\":\"%s\"}", csr);
	free(csr);
	return post(k, kid, path, payload, r);
}

/* Marks an authorization valid in the folder store, as a check would. */
static void
authz_valid(const char *dir, const char *url)
{
	char p[600];
	json_t *a;

	snprintf(p, sizeof(p), "%s/acme-ca/authz/%s", dir, url + strlen(BASE "authz/"));
	a = json_load_file(p, 0, NULL);
	CHECK(a != NULL, "authz file %s", p);
	if (a == NULL)
		return;
	json_object_set_new(a, "status", json_string("valid"));
	json_dump_file(a, p, JSON_COMPACT);
	json_decref(a);
}

/* Renewal information (RFC 9773) for leaf, issued by the CA in cadir: a
 * window ahead while it stands, one in the past once it is revoked. */
static void
ari_checks(X509 *leaf, const char *cadir)
{
	struct tg_acmeca_resp r;
	struct tg_acme_ari w;
	struct tg_err err;
	char id[300], path[400], serial[130], other[300];
	time_t now = time(NULL);
	int count = 0;

	memset(&r, 0, sizeof(r));
	CHECK(tg_acme_cert_id(leaf, id, sizeof(id)) == 0, "certificate ID");
	snprintf(path, sizeof(path), "/acme/renewal-info/%s", id);
	CHECK(call("GET", path, NULL, &r) == 200 && has(&r, "Retry-After: ") &&
	    tg_acme_parse_ari(r.body, r.body_len, &w, &err) == 0, "renewal info: %d %s",
	    r.status, r.body);
	/* a 1-hour certificate: around half its life, within it */
	CHECK(w.start > now + 1200 && w.end > w.start && w.end < now + 3600 + 60,
	    "window %lld..%lld, now %lld", (long long)w.start, (long long)w.end, (long long)now);
	CHECK(call("GET", "/acme/renewal-info/nodot", NULL, &r) == 400, "no dot: %d", r.status);
	snprintf(path, sizeof(path), "/acme/renewal-info/AAAA%s", strchr(id, '.'));
	CHECK(call("GET", path, NULL, &r) == 404 && has(&r, "authority key id"),
	    "another AKI: %d %s", r.status, r.body);
	snprintf(other, sizeof(other), "%.*s.AQ", (int)strcspn(id, "."), id);
	snprintf(path, sizeof(path), "/acme/renewal-info/%s", other);
	CHECK(call("GET", path, NULL, &r) == 404 && has(&r, "no certificate with serial"),
	    "an unknown serial: %d %s", r.status, r.body);
	/* revoked: a window that has passed, so its holder renews now */
	CHECK(tg_ca_revoke(cadir, NULL, "x", 0, 0, serial, sizeof(serial), &count, &err) < 0,
	    "revoked 'x'");
	{
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
		char *hex = BN_bn2hex(bn);
		CHECK(tg_ca_revoke(cadir, NULL, hex, 1, 0, serial, sizeof(serial), &count, &err) == 0,
		    "revoke: %s", err.msg);
		CHECK(tg_ca_revoked(cadir, hex, NULL, NULL, &err) == 1, "not in the list");
		OPENSSL_free(hex);
		BN_free(bn);
	}
	snprintf(path, sizeof(path), "/acme/renewal-info/%s", id);
	CHECK(call("GET", path, NULL, &r) == 200 &&
	    tg_acme_parse_ari(r.body, r.body_len, &w, &err) == 0 && w.end < time(NULL) &&
	    w.start < w.end, "revoked: window %lld..%lld: %s", (long long)w.start,
	    (long long)w.end, r.body);
	tg_acmeca_resp_clear(&r);
}

static void
protocol(void)
{
	char dir[] = "/tmp/tg-acmeca-XXXXXX", cadir[300], acct[300], order[300], payload[2000];
	char path[400], jwk_old[300], *eab, *inner;
	struct tg_acmeca_conf conf;
	struct tg_acmeca_enrolment e;
	struct tg_acmeca_resp r;
	struct tg_store *st;
	struct tg_err err;
	EVP_PKEY *k1 = tg_key_generate(TG_KEY_EC_P256, NULL);
	EVP_PKEY *k2 = tg_key_generate(TG_KEY_EC_P256, NULL);
	EVP_PKEY *k3 = tg_key_generate(TG_KEY_EC_P256, NULL);

	memset(&r, 0, sizeof(r));
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(cadir, sizeof(cadir), "%s/ca", dir);
	CHECK(tg_ca_init(cadir, "Test CA", TG_KEY_EC_P256, 0, &err) == 0, "ca init: %s", err.msg);
	memset(&conf, 0, sizeof(conf));
	snprintf(conf.ca_dir, sizeof(conf.ca_dir), "%s", cadir);
	snprintf(conf.store.state_dir, sizeof(conf.store.state_dir), "%s", dir);
	conf.lifetime_s = 3600;
	conf.challenges = TG_ACMECA_HTTP01 | TG_ACMECA_TLSALPN01 | TG_ACMECA_DNS01;
	conf.http_port = 80;
	conf.tls_port = 443;
	ca = tg_acmeca_new(&conf, &err);
	CHECK(ca != NULL, "acmeca_new: %s", err.msg);
	if (ca == NULL)
		return;
	st = tg_store_fs_open(dir, &err);
	memset(&e, 0, sizeof(e));
	snprintf(e.name, sizeof(e.name), "dev");
	snprintf(e.allow, sizeof(e.allow), "*.t.test,ip:10.0.0.0/8,uri:spiffe://t/*");
	CHECK(tg_acmeca_enroll(st, &e, &err) == 0, "enroll: %s", err.msg);
	tg_store_free(st);

	CHECK(call("GET", "/acme/directory", NULL, &r) == 200 && has(&r, BASE "new-order") &&
	    has(&r, BASE "renewal-info") &&
	    has(&r, "\"externalAccountRequired\": true"), "directory: %s", r.body);
	CHECK(call("HEAD", "/acme/new-nonce", NULL, &r) == 200 && nonce[0], "new-nonce");
	CHECK(call("GET", "/acme/new-order", NULL, &r) == 405, "GET new-order: %d", r.status);

	/* no EAB: refused */
	CHECK(post(k1, NULL, "/acme/new-account", "{\"termsOfServiceAgreed\":true}", &r) == 403 &&
	    has(&r, "externalAccountRequired") && has(&r, "tlsgate ca enroll"),
	    "no EAB: %d %s", r.status, r.body);
	/* an unknown key id */
	eab = tg_acme_eab(k1, "nosuch", e.hmac, BASE "new-account", &err);
	snprintf(payload, sizeof(payload), "{\"termsOfServiceAgreed\":true,"
	    "\"externalAccountBinding\":%s}", eab);
	free(eab);
	CHECK(post(k1, NULL, "/acme/new-account", payload, &r) == 403 &&
	    has(&r, "unknown external account binding key id nosuch"), "unknown kid: %s", r.body);
	/* the right one, but the HMAC of another key */
	eab = tg_acme_eab(k1, e.kid, "c2VjcmV0LWtleS1vZi10aGlydHktdHdvLWJ5dGVzISE",
	    BASE "new-account", &err);
	snprintf(payload, sizeof(payload), "{\"externalAccountBinding\":%s}", eab);
	free(eab);
	CHECK(post(k1, NULL, "/acme/new-account", payload, &r) == 403 &&
	    has(&r, "not signed with that key's HMAC key"), "bad HMAC: %s", r.body);
	/* the EAB binding another key than the account's */
	eab = tg_acme_eab(k2, e.kid, e.hmac, BASE "new-account", &err);
	snprintf(payload, sizeof(payload), "{\"externalAccountBinding\":%s}", eab);
	free(eab);
	CHECK(post(k1, NULL, "/acme/new-account", payload, &r) == 400 &&
	    has(&r, "signs another key"), "EAB of another key: %s", r.body);
	/* right */
	eab = tg_acme_eab(k1, e.kid, e.hmac, BASE "new-account", &err);
	snprintf(payload, sizeof(payload), "{\"externalAccountBinding\":%s}", eab);
	free(eab);
	CHECK(post(k1, NULL, "/acme/new-account", payload, &r) == 201, "account: %d %s", r.status,
	    r.body);
	location(&r, acct, sizeof(acct));
	CHECK(!strncmp(acct, BASE "acct/", strlen(BASE "acct/")), "Location %s", acct);
	/* the same nonce twice: badNonce */
	{
		char used[64], prot[600], *body;
		snprintf(used, sizeof(used), "%s", nonce);
		CHECK(post(k1, acct, "/acme/new-order", "{\"identifiers\":[]}", &r) == 400, "empty order");
		snprintf(nonce, sizeof(nonce), "%s", used);
		snprintf(prot, sizeof(prot), "{\"alg\":\"ES256\",\"kid\":\"%s\",\"nonce\":\"%s\","
		    "\"url\":\"" BASE "new-order\"}", acct, used);
		body = jws(k1, prot, "{}");
		CHECK(call("POST", "/acme/new-order", body, &r) == 400 && has(&r, "badNonce"),
		    "reused nonce: %s", r.body);
		free(body);
		/* a JWS naming another URL than where it went */
		snprintf(prot, sizeof(prot), "{\"alg\":\"ES256\",\"kid\":\"%s\",\"nonce\":\"%s\","
		    "\"url\":\"" BASE "new-account\"}", acct, nonce);
		body = jws(k1, prot, "{}");
		CHECK(call("POST", "/acme/new-order", body, &r) == 401 && has(&r, "names the URL"),
		    "URL mismatch: %s", r.body);
		free(body);
	}
	/* the key again: the same account (200), even without EAB */
	CHECK(post(k1, NULL, "/acme/new-account", "{}", &r) == 200, "existing: %d", r.status);
	/* the used EAB key for a second account */
	eab = tg_acme_eab(k2, e.kid, e.hmac, BASE "new-account", &err);
	snprintf(payload, sizeof(payload), "{\"externalAccountBinding\":%s}", eab);
	free(eab);
	CHECK(post(k2, NULL, "/acme/new-account", payload, &r) == 403 &&
	    has(&r, "already used for 1 account"), "reused EAB: %s", r.body);
	/* a kid that signs with another key */
	CHECK(post(k2, acct, "/acme/new-order", "{}", &r) == 403, "kid signed by another key: %d",
	    r.status);
	/* policy */
	CHECK(post(k1, acct, "/acme/new-order", "{\"identifiers\":[{\"type\":\"dns\","
	    "\"value\":\"www.other.test\"}]}", &r) == 403 && has(&r, "rejectedIdentifier") &&
	    has(&r, "enrolled as \\\"dev\\\") may not have www.other.test"), "policy: %s", r.body);
	CHECK(post(k1, acct, "/acme/new-order", "{\"identifiers\":[{\"type\":\"dns\","
	    "\"value\":\"A.T.TEST\"}]}", &r) == 400, "upper case accepted");
	CHECK(post(k1, acct, "/acme/new-order", "{\"identifiers\":[{\"type\":\"ip\","
	    "\"value\":\"10.0.0.01\"}]}", &r) == 400, "a non-canonical address accepted");
	/* an order, its authorization, finalize too early */
	CHECK(post(k1, acct, "/acme/new-order", "{\"identifiers\":[{\"type\":\"dns\","
	    "\"value\":\"a.t.test\"},{\"type\":\"ip\",\"value\":\"10.1.2.3\"}]}", &r) == 201,
	    "order: %s", r.body);
	location(&r, order, sizeof(order));
	{
		json_t *o = json_loads(r.body, 0, NULL), *a = json_object_get(o, "authorizations");
		const char *az = json_string_value(json_array_get(a, 0));
		CHECK(json_array_size(a) == 2, "authorizations: %zu", json_array_size(a));
		snprintf(path, sizeof(path), "/acme/%s", az ? az + strlen(BASE) : "");
		CHECK(post(k1, acct, path, "", &r) == 200 && has(&r, "\"http-01\"") &&
		    has(&r, "\"tls-alpn-01\"") && has(&r, "\"dns-01\"") && has(&r, "\"pending\""),
		    "authz: %s", r.body);
		az = json_string_value(json_array_get(a, 1));
		snprintf(path, sizeof(path), "/acme/%s", az ? az + strlen(BASE) : "");
		CHECK(post(k1, acct, path, "", &r) == 200 && !has(&r, "\"dns-01\""),
		    "an address's authorization offers DNS-01: %s", r.body);
		json_decref(o);
	}
	snprintf(path, sizeof(path), "/acme/%s/finalize", order + strlen(BASE));
	CHECK(post(k1, acct, path, "{\"csr\":\"AAAA\"}", &r) == 403 && has(&r, "orderNotReady"),
	    "finalize early: %s", r.body);
	/* the checks passed (as if): the order is ready; CSRs are judged */
	{
		char opath[400];
		json_t *o, *a;
		EVP_PKEY *ck = tg_key_generate(TG_KEY_EC_P256, NULL);
		size_t i;
		snprintf(opath, sizeof(opath), "/acme/%s", order + strlen(BASE));
		CHECK(post(k1, acct, opath, "", &r) == 200, "order: %s", r.body);
		o = json_loads(r.body, 0, NULL);
		a = json_object_get(o, "authorizations");
		for (i = 0; i < json_array_size(a); i++)
			authz_valid(dir, json_string_value(json_array_get(a, i)));
		json_decref(o);
		/* a comma inside a URI would have smuggled in a name of its own */
		CHECK(finalize_csr(k1, acct, path, ck,
		    "DNS:a.t.test|IP:10.1.2.3|URI:spiffe://t/x,dns:victim.example", &r) == 400 &&
		    has(&r, "badCSR") &&
		    has(&r, "characters a URI may not"), "URI with a comma: %d %s", r.status, r.body);
		/* a URI outside the policy */
		CHECK(finalize_csr(k1, acct, path, ck, "DNS:a.t.test|IP:10.1.2.3|URI:spiffe://other/x",
		    &r) == 403 && has(&r, "may not have the URI"),
		    "URI outside the policy: %s", r.body);
		/* a name the order does not have */
		CHECK(finalize_csr(k1, acct, path, ck, "DNS:a.t.test|DNS:b.t.test|IP:10.1.2.3", &r) ==
		    400 && has(&r, "not exactly the order"),
		    "extra name: %s", r.body);
		/* the account key as the certificate's */
		CHECK(finalize_csr(k1, acct, path, k1, "DNS:a.t.test|IP:10.1.2.3", &r) == 400 &&
		    has(&r, "account key"),
		    "account key in the CSR: %s", r.body);
		/* right: the certificate names exactly that */
		CHECK(finalize_csr(k1, acct, path, ck, "DNS:a.t.test|IP:10.1.2.3|URI:spiffe://t/node-1",
		    &r) == 200 && has(&r, "\"valid\"") &&
		    has(&r, BASE "cert/"), "finalize: %s", r.body);
		{
			const char *c = r.body ? strstr(r.body, BASE "cert/") : NULL;
			char cpath[300];
			STACK_OF(X509) *sk;
			snprintf(cpath, sizeof(cpath), "/acme/%.*s", c ? (int)strcspn(c + strlen(BASE),
			    "\"") : 0, c ? c + strlen(BASE) : "");
			CHECK(post(k1, acct, cpath, "", &r) == 200, "download: %d", r.status);
			sk = r.body ? tg_certs_parse((unsigned char *)r.body, r.body_len, "chain", &err) :
			    NULL;
			CHECK(sk && sk_X509_num(sk) == 2, "chain of 2");
			if (sk) {
				GENERAL_NAMES *g = X509_get_ext_d2i(sk_X509_value(sk, 0),
				    NID_subject_alt_name, NULL, NULL);
				CHECK(g && sk_GENERAL_NAME_num(g) == 3, "three SANs, got %d",
				    g ? sk_GENERAL_NAME_num(g) : -1);
				GENERAL_NAMES_free(g);
				ari_checks(sk_X509_value(sk, 0), cadir);
				sk_X509_pop_free(sk, X509_free);
			}
		}
		EVP_PKEY_free(ck);
	}
	/* new-account signed as an account (kid): RFC 8555 wants the jwk */
	CHECK(post(k1, acct, "/acme/new-account", "{}", &r) == 400 && has(&r, "not an account"),
	    "new-account by kid: %d %s", r.status, r.body);
	/* another account cannot read this one's order */
	/* key change: the new key signs the inner JWS, the old one the outer */
	{
		char prot[800], jwk_new[300], inner_payload[1200], *body;
		tg_acme_jwk(k1, jwk_old, sizeof(jwk_old));
		tg_acme_jwk(k3, jwk_new, sizeof(jwk_new));
		snprintf(prot, sizeof(prot), "{\"alg\":\"ES256\",\"jwk\":%s,\"url\":\"" BASE
		    "key-change\"}", jwk_new);
		snprintf(inner_payload, sizeof(inner_payload), "{\"account\":\"%s\",\"oldKey\":%s}",
		    acct, jwk_old);
		inner = jws(k3, prot, inner_payload);
		CHECK(post(k1, acct, "/acme/key-change", inner, &r) == 200, "key change: %d %s",
		    r.status, r.body);
		free(inner);
		CHECK(post(k1, acct, "/acme/new-order", "{}", &r) == 403, "the old key still signs");
		CHECK(post(k3, NULL, "/acme/new-account", "{\"onlyReturnExisting\":true}", &r) == 200,
		    "the new key finds no account: %d %s", r.status, r.body);
		CHECK(post(k1, NULL, "/acme/new-account", "{\"onlyReturnExisting\":true}", &r) == 400 &&
		    has(&r, "accountDoesNotExist"), "the old key still finds it: %s", r.body);
		(void)body;
	}
	/* deactivation: nothing is signed for it afterwards */
	snprintf(path, sizeof(path), "/acme/%s", acct + strlen(BASE));
	CHECK(post(k3, acct, path, "{\"status\":\"deactivated\"}", &r) == 200 &&
	    has(&r, "deactivated"), "deactivate: %s", r.body);
	CHECK(post(k3, acct, "/acme/new-order", "{\"identifiers\":[{\"type\":\"dns\","
	    "\"value\":\"a.t.test\"}]}", &r) == 403, "a deactivated account ordered");
	tg_acmeca_resp_clear(&r);
	tg_acmeca_free(ca);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k3);
	{
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
}

/* No check reaches an address no device has (cloud metadata lives at
 * link-local), however it is written. */
static void
refused_addresses(void)
{
	static const char *bad[] = { "169.254.169.254", "0.0.0.0", "224.0.0.1", "fe80::1", "ff02::1",
		"::", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe" };
	struct tg_acmeca_check k;
	char why[300];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&k, 0, sizeof(k));
		k.type = i % 2 ? TG_ACMECA_TLSALPN01 : TG_ACMECA_HTTP01;
		snprintf(k.id_type, sizeof(k.id_type), "ip");
		snprintf(k.id_value, sizeof(k.id_value), "%s", bad[i]);
		snprintf(k.token, sizeof(k.token), "t");
		snprintf(k.key_auth, sizeof(k.key_auth), "t.x");
		k.http_port = k.tls_port = 1;
		why[0] = '\0';
		CHECK(tg_acmeca_check(&k, why, sizeof(why)) < 0 && strstr(why, "link-local"),
		    "%s: %s", bad[i], why);
	}
}

int
main(void)
{
	names();
	refused_addresses();
	jws_checks();
	protocol();
	return check_done("test_acmeca");
}
