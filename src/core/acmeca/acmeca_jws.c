/*
 * The ACME CA's side of JWS (RFC 7515, RFC 8555 section 6.2): a flattened
 * JWS taken apart, the JWK of its header made into a key, the signature
 * checked, and the RFC 7638 thumbprint that names an account. Accepts the
 * algorithms ACME clients use: ES256, ES384, RS256 (certbot's default) and
 * EdDSA (Ed25519); HS256 only for the inner JWS of an external account
 * binding. Pure functions, any thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>

#include "acme_wire.h"
#include "acmeca_int.h"

#define MAX_B64 16384

/* base64url text to malloc'ed bytes; NULL when not base64url. */
static unsigned char *
b64_dup(const char *s, size_t *len)
{
	size_t n = strlen(s);
	unsigned char *out;
	long r;

	if (n > MAX_B64 * 4 || strpbrk(s, "+/="))   /* base64url without padding only */
		return NULL;
	if ((out = malloc(n * 3 / 4 + 4)) == NULL)
		return NULL;
	if ((r = tg_b64url_decode(s, out, n * 3 / 4 + 3)) < 0) {
		free(out);
		return NULL;
	}
	out[r] = '\0';
	*len = (size_t)r;
	return out;
}

static const char *
jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

void
tg_jws_clear(struct tg_jws *j)
{
	json_decref(j->jwk);
	free(j->payload);
	free(j->signing_input);
	free(j->sig);
	json_decref(j->header);
	memset(j, 0, sizeof(*j));
}

int
tg_jws_parse(const char *body, size_t len, struct tg_jws *j, char *why, size_t wl)
{
	json_t *root = NULL, *jwk;
	json_error_t je;
	const char *prot, *payload, *sig, *s;
	unsigned char *hdr = NULL;
	size_t hl, n;

	memset(j, 0, sizeof(*j));
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(root)) {
		snprintf(why, wl, "the request body is not a JSON object (a flattened JWS)");
		goto fail;
	}
	prot = jstr(root, "protected");
	payload = jstr(root, "payload");
	sig = jstr(root, "signature");
	if (prot == NULL || payload == NULL || sig == NULL || json_object_get(root, "signatures")) {
		snprintf(why, wl, "the JWS needs protected, payload and signature (flattened "
		    "serialization, one signature)");
		goto fail;
	}
	if ((hdr = b64_dup(prot, &hl)) == NULL || (j->header = json_loadb((char *)hdr, hl,
	    JSON_REJECT_DUPLICATES, &je)) == NULL || !json_is_object(j->header)) {
		snprintf(why, wl, "the JWS protected header is not base64url JSON");
		goto fail;
	}
	if ((s = jstr(j->header, "alg")) == NULL || strlen(s) >= sizeof(j->alg)) {
		snprintf(why, wl, "the JWS header has no alg");
		goto fail;
	}
	snprintf(j->alg, sizeof(j->alg), "%s", s);
	if ((s = jstr(j->header, "nonce")) && strlen(s) < sizeof(j->nonce))
		snprintf(j->nonce, sizeof(j->nonce), "%s", s);
	if ((s = jstr(j->header, "url")) == NULL || strlen(s) >= sizeof(j->url)) {
		snprintf(why, wl, "the JWS header has no url");
		goto fail;
	}
	snprintf(j->url, sizeof(j->url), "%s", s);
	jwk = json_object_get(j->header, "jwk");
	s = jstr(j->header, "kid");
	if ((jwk != NULL) == (s != NULL)) {
		snprintf(why, wl, "the JWS header needs exactly one of jwk and kid");
		goto fail;
	}
	if (s) {
		if (strlen(s) >= sizeof(j->kid)) {
			snprintf(why, wl, "the JWS kid is too long");
			goto fail;
		}
		snprintf(j->kid, sizeof(j->kid), "%s", s);
	} else {
		if (!json_is_object(jwk)) {
			snprintf(why, wl, "the JWS jwk is not an object");
			goto fail;
		}
		j->jwk = json_incref(jwk);
	}
	if ((j->payload = b64_dup(payload, &j->payload_len)) == NULL ||
	    (j->sig = b64_dup(sig, &j->sig_len)) == NULL) {
		snprintf(why, wl, "the JWS payload or signature is not base64url");
		goto fail;
	}
	n = strlen(prot) + 1 + strlen(payload);
	if ((j->signing_input = malloc(n + 1)) == NULL) {
		snprintf(why, wl, "out of memory");
		goto fail;
	}
	snprintf(j->signing_input, n + 1, "%s.%s", prot, payload);
	j->signing_len = n;
	free(hdr);
	json_decref(root);
	return 0;
fail:
	free(hdr);
	json_decref(root);
	tg_jws_clear(j);
	return -1;
}

/* A base64url member of a JWK as bytes, exactly want long (0: any up to max). */
static int
jwk_bytes(json_t *jwk, const char *k, unsigned char *out, size_t max, size_t want, size_t *got)
{
	const char *s = jstr(jwk, k);
	long r;

	if (s == NULL || strlen(s) > (max * 4 + 2) / 3 + 1 || strpbrk(s, "+/="))
		return -1;
	if ((r = tg_b64url_decode(s, out, max)) <= 0 || (want && (size_t)r != want))
		return -1;
	/* one text per key: spare bits set, or a leading zero byte, would give
	 * the same key another thumbprint (and another account) */
	{
		char back[1500];
		if (tg_b64url(out, (size_t)r, back, sizeof(back)) < 0 || strcmp(back, s) != 0 ||
		    (!want && r > 1 && out[0] == 0))
			return -1;
	}
	*got = (size_t)r;
	return 0;
}

EVP_PKEY *
tg_jwk_key(json_t *jwk, char *why, size_t wl)
{
	const char *kty = jstr(jwk, "kty"), *crv = jstr(jwk, "crv");
	EVP_PKEY *key = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	BIGNUM *n = NULL, *e = NULL;
	unsigned char a[1024], b[1024], pub[1 + 2 * 66];
	size_t al, bl;

	if (kty == NULL)
		goto bad;
	if (!strcmp(kty, "EC") && crv && (!strcmp(crv, "P-256") || !strcmp(crv, "P-384"))) {
		size_t cl = crv[2] == '2' ? 32 : 48;
		if (jwk_bytes(jwk, "x", a, cl, cl, &al) < 0 || jwk_bytes(jwk, "y", b, cl, cl, &bl) < 0)
			goto bad;
		pub[0] = 4;
		memcpy(pub + 1, a, cl);
		memcpy(pub + 1 + cl, b, cl);
		if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
		    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
		    cl == 32 ? "prime256v1" : "secp384r1", 0) ||
		    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * cl) ||
		    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
		    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
		    EVP_PKEY_fromdata_init(ctx) <= 0 ||
		    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) <= 0)
			goto bad;
	} else if (!strcmp(kty, "RSA")) {
		if (jwk_bytes(jwk, "n", a, sizeof(a), 0, &al) < 0 ||
		    jwk_bytes(jwk, "e", b, 8, 0, &bl) < 0 ||
		    (n = BN_bin2bn(a, (int)al, NULL)) == NULL || (e = BN_bin2bn(b, (int)bl, NULL)) == NULL)
			goto bad;
		if (BN_num_bits(n) < 2048 || BN_num_bits(n) > 8192) {
			snprintf(why, wl, "the account key is RSA %d; use RSA 2048 to 8192, or EC",
			    BN_num_bits(n));
			goto fail;
		}
		if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
		    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
		    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
		    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
		    EVP_PKEY_fromdata_init(ctx) <= 0 ||
		    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) <= 0)
			goto bad;
	} else if (!strcmp(kty, "OKP") && crv && !strcmp(crv, "Ed25519")) {
		if (jwk_bytes(jwk, "x", a, 32, 32, &al) < 0 ||
		    (key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, a, 32)) == NULL)
			goto bad;
	} else {
		snprintf(why, wl, "the account key's type (kty %s%s%s) is not one this CA takes: "
		    "EC P-256/P-384, RSA or Ed25519", kty, crv ? ", crv " : "", crv ? crv : "");
		goto fail;
	}
	goto done;
bad:
	snprintf(why, wl, "the JWS jwk is not a valid public key");
fail:
	EVP_PKEY_free(key);
	key = NULL;
done:
	BN_free(n);
	BN_free(e);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	return key;
}

int
tg_jwk_thumbprint(json_t *jwk, char *out, size_t len)
{
	const char *kty = jstr(jwk, "kty");
	unsigned char md[SHA256_DIGEST_LENGTH];
	char *canon;
	int n, r;

	if (kty == NULL)
		return -1;
	/* RFC 7638: the required members only, in lexicographic order */
	if (!strcmp(kty, "RSA") && jstr(jwk, "e") && jstr(jwk, "n"))
		n = asprintf(&canon, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", jstr(jwk, "e"),
		    jstr(jwk, "n"));
	else if (!strcmp(kty, "EC") && jstr(jwk, "crv") && jstr(jwk, "x") && jstr(jwk, "y"))
		n = asprintf(&canon, "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
		    jstr(jwk, "crv"), jstr(jwk, "x"), jstr(jwk, "y"));
	else if (!strcmp(kty, "OKP") && jstr(jwk, "crv") && jstr(jwk, "x"))
		n = asprintf(&canon, "{\"crv\":\"%s\",\"kty\":\"OKP\",\"x\":\"%s\"}",
		    jstr(jwk, "crv"), jstr(jwk, "x"));
	else
		return -1;
	if (n < 0)
		return -1;
	SHA256((unsigned char *)canon, (size_t)n, md);
	free(canon);
	r = tg_b64url(md, sizeof(md), out, len);
	return r;
}

/* r||s (RFC 7518 section 3.4) to the DER OpenSSL verifies. */
static unsigned char *
ecdsa_der(const unsigned char *sig, size_t len, size_t half, size_t *dlen)
{
	ECDSA_SIG *es;
	BIGNUM *r, *s;
	unsigned char *der = NULL;
	int n;

	if (len != 2 * half || (es = ECDSA_SIG_new()) == NULL)
		return NULL;
	r = BN_bin2bn(sig, (int)half, NULL);
	s = BN_bin2bn(sig + half, (int)half, NULL);
	if (r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(es);
		return NULL;
	}
	n = i2d_ECDSA_SIG(es, &der);
	ECDSA_SIG_free(es);
	if (n <= 0)
		return NULL;
	*dlen = (size_t)n;
	return der;
}

int
tg_jws_verify(const struct tg_jws *j, EVP_PKEY *key, char *why, size_t wl)
{
	int id = EVP_PKEY_get_base_id(key), bits = EVP_PKEY_get_bits(key), ok = 0;
	const EVP_MD *md = NULL;
	unsigned char *der = NULL;
	const unsigned char *sig = j->sig;
	size_t sl = j->sig_len;
	EVP_MD_CTX *mctx;

	if (!strcmp(j->alg, "ES256") && id == EVP_PKEY_EC && bits == 256) {
		md = EVP_sha256();
		if ((der = ecdsa_der(sig, sl, 32, &sl)) == NULL)
			goto bad;
		sig = der;
	} else if (!strcmp(j->alg, "ES384") && id == EVP_PKEY_EC && bits == 384) {
		md = EVP_sha384();
		if ((der = ecdsa_der(sig, sl, 48, &sl)) == NULL)
			goto bad;
		sig = der;
	} else if (!strcmp(j->alg, "RS256") && id == EVP_PKEY_RSA) {
		md = EVP_sha256();
	} else if (!strcmp(j->alg, "EdDSA") && id == EVP_PKEY_ED25519) {
		md = NULL;
	} else {
		snprintf(why, wl, "the JWS alg %s does not fit the account key (%s); use ES256, "
		    "ES384, RS256 or EdDSA", j->alg, id == EVP_PKEY_RSA ? "RSA" : id == EVP_PKEY_EC ?
		    "EC" : "other");
		return -1;
	}
	if ((mctx = EVP_MD_CTX_new()) != NULL) {
		ok = EVP_DigestVerifyInit(mctx, NULL, md, NULL, key) == 1 &&
		    EVP_DigestVerify(mctx, sig, sl, (const unsigned char *)j->signing_input,
		    j->signing_len) == 1;
		EVP_MD_CTX_free(mctx);
	}
	OPENSSL_free(der);
	if (ok)
		return 0;
bad:
	snprintf(why, wl, "the JWS signature does not verify with the account key");
	return -1;
}

int
tg_jws_verify_hs256(const struct tg_jws *j, const unsigned char *key, size_t klen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int ml = 0;

	if (strcmp(j->alg, "HS256") != 0 || HMAC(EVP_sha256(), key, (int)klen,
	    (const unsigned char *)j->signing_input, j->signing_len, mac, &ml) == NULL)
		return -1;
	return ml == j->sig_len && CRYPTO_memcmp(mac, j->sig, ml) == 0 ? 0 : -1;
}
