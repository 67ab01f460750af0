/*
 * What ACME signs with: base64url, the account key as a JWK and its
 * thumbprint, flattened JWS objects with ES256, and the HS256 inner JWS of
 * external account binding. Only EC P-256 account keys: every ACME CA
 * accepts them and they keep the code to one algorithm.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "acme_wire.h"
#include "error.h"

static const char b64u[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int
tg_b64url(const void *data, size_t len, char *out, size_t outlen)
{
	const unsigned char *p = data;
	size_t i, o = 0;

	if (outlen < (len + 2) / 3 * 4 + 1)
		return -1;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = b64u[v >> 18];
		out[o++] = b64u[(v >> 12) & 63];
		out[o++] = b64u[(v >> 6) & 63];
		out[o++] = b64u[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		out[o++] = b64u[v >> 18];
		out[o++] = b64u[(v >> 12) & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = b64u[v >> 18];
		out[o++] = b64u[(v >> 12) & 63];
		out[o++] = b64u[(v >> 6) & 63];
	}
	out[o] = '\0';
	return 0;
}

static int
b64u_val(char c)
{
	const char *p = c ? strchr(b64u, c) : NULL;
	if (c == '+')
		return 62;   /* plain base64 too: keys are pasted from anywhere */
	if (c == '/')
		return 63;
	return p ? (int)(p - b64u) : -1;
}

long
tg_b64url_decode(const char *in, unsigned char *out, size_t outlen)
{
	uint32_t acc = 0;
	int bits = 0, v;
	size_t o = 0;

	for (; *in && *in != '='; in++) {
		if ((v = b64u_val(*in)) < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= outlen)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return (long)o;
}

static int
ec_xy(EVP_PKEY *key, unsigned char x[32], unsigned char y[32])
{
	unsigned char pub[65];
	size_t len = 0;

	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC || EVP_PKEY_get_bits(key) != 256 ||
	    EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub),
	    &len) != 1 || len != 65 || pub[0] != 4)
		return -1;
	memcpy(x, pub + 1, 32);
	memcpy(y, pub + 33, 32);
	return 0;
}

int
tg_acme_jwk(EVP_PKEY *key, char *buf, size_t len)
{
	unsigned char x[32], y[32];
	char xs[48], ys[48];
	int n;

	if (ec_xy(key, x, y) < 0 || tg_b64url(x, 32, xs, sizeof(xs)) < 0 ||
	    tg_b64url(y, 32, ys, sizeof(ys)) < 0)
		return -1;
	n = snprintf(buf, len, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
	    xs, ys);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
tg_acme_thumbprint(EVP_PKEY *key, char *buf, size_t len)
{
	char jwk[256];
	unsigned char md[SHA256_DIGEST_LENGTH];

	if (tg_acme_jwk(key, jwk, sizeof(jwk)) < 0)
		return -1;
	SHA256((const unsigned char *)jwk, strlen(jwk), md);
	return tg_b64url(md, sizeof(md), buf, len);
}

/* ES256 wants r || s, 32 bytes each, not OpenSSL's DER. */
static int
es256(EVP_PKEY *key, const char *input, unsigned char sig[64])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[80];
	const unsigned char *p = der;
	size_t dlen = sizeof(der);
	ECDSA_SIG *es = NULL;
	const BIGNUM *r, *s;
	int rv = -1;

	if (md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestSign(md, der, &dlen, (const unsigned char *)input, strlen(input)) == 1 &&
	    (es = d2i_ECDSA_SIG(NULL, &p, (long)dlen)) != NULL) {
		ECDSA_SIG_get0(es, &r, &s);
		if (BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32)
			rv = 0;
	}
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return rv;
}

/* Joins protected header and payload, signs, and returns the JSON. */
static char *
flatten(const char *prot, const char *payload, const unsigned char *sig, size_t siglen,
    struct tg_err *err)
{
	size_t pl = strlen(prot), yl = strlen(payload);
	char *p64 = malloc(pl * 4 / 3 + 8), *y64 = malloc(yl * 4 / 3 + 8), *out = NULL;
	char s64[200];
	size_t n;

	if (p64 == NULL || y64 == NULL || tg_b64url(prot, pl, p64, pl * 4 / 3 + 8) < 0 ||
	    tg_b64url(payload, yl, y64, yl * 4 / 3 + 8) < 0 ||
	    tg_b64url(sig, siglen, s64, sizeof(s64)) < 0)
		goto out;
	n = strlen(p64) + strlen(y64) + strlen(s64) + 64;
	if ((out = malloc(n)) != NULL)
		snprintf(out, n, "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}",
		    p64, y64, s64);
out:
	if (out == NULL)
		tg_err_set(err, TG_E_INTERNAL, "out of memory signing an ACME request");
	free(p64);
	free(y64);
	return out;
}

/* The signing input "B64(protected).B64(payload)". */
static char *
signing_input(const char *prot, const char *payload)
{
	size_t pl = strlen(prot), yl = strlen(payload), n = (pl + yl) * 4 / 3 + 16;
	char *in = malloc(n);

	if (in == NULL || tg_b64url(prot, pl, in, n) < 0) {
		free(in);
		return NULL;
	}
	in[strlen(in) + 1] = '\0';
	in[strlen(in)] = '.';
	if (tg_b64url(payload, yl, in + strlen(in), n - strlen(in)) < 0) {
		free(in);
		return NULL;
	}
	return in;
}

/* Escapes nothing: every value we put in a header is a URL, a nonce or a
 * key id the server gave us, checked for quotes and backslashes here. */
static int
json_safe(const char *s)
{
	return s && !strpbrk(s, "\"\\") && strlen(s) < 1024;
}

char *
tg_acme_jws(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
    const char *payload, struct tg_err *err)
{
	char prot[2600], jwk[256], *in, *out;
	unsigned char sig[64];
	int n;

	if (!json_safe(nonce) || !json_safe(url) || (kid && !json_safe(kid))) {
		tg_err_set(err, TG_E_ACME, "the ACME server sent a URL or nonce with quotes in it");
		return NULL;
	}
	if (kid)
		n = snprintf(prot, sizeof(prot), "{\"alg\":\"ES256\",\"kid\":\"%s\",\"nonce\":\"%s\","
		    "\"url\":\"%s\"}", kid, nonce, url);
	else if (tg_acme_jwk(key, jwk, sizeof(jwk)) == 0)
		n = snprintf(prot, sizeof(prot), "{\"alg\":\"ES256\",\"jwk\":%s,\"nonce\":\"%s\","
		    "\"url\":\"%s\"}", jwk, nonce, url);
	else {
		tg_err_set(err, TG_E_ACME, "the ACME account key is not EC P-256");
		return NULL;
	}
	if (n < 0 || (size_t)n >= sizeof(prot)) {   /* a cut header would be refused anyway */
		tg_err_set(err, TG_E_ACME, "the ACME server's account URL or nonce is too long");
		return NULL;
	}
	if (payload == NULL)
		payload = "";
	if ((in = signing_input(prot, payload)) == NULL || es256(key, in, sig) < 0) {
		free(in);
		tg_err_ossl(err, TG_E_ACME, "cannot sign the ACME request");
		return NULL;
	}
	free(in);
	out = flatten(prot, payload, sig, sizeof(sig), err);
	return out;
}

char *
tg_acme_eab(EVP_PKEY *account_key, const char *kid, const char *hmac_b64url,
    const char *url, struct tg_err *err)
{
	char prot[1200], jwk[256], *in, *out;
	unsigned char mac[EVP_MAX_MD_SIZE], hkey[256];
	unsigned int maclen = 0;
	long klen;

	if (!json_safe(kid) || !json_safe(url))
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.acme.eab_kid: quotes are not "
		    "allowed"), NULL;
	if ((klen = tg_b64url_decode(hmac_b64url, hkey, sizeof(hkey))) <= 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.acme.eab_hmac_key is not "
		    "base64url; paste the key exactly as the CA gave it"), NULL;
	if (tg_acme_jwk(account_key, jwk, sizeof(jwk)) < 0)
		return tg_err_set(err, TG_E_ACME, "the ACME account key is not EC P-256"), NULL;
	snprintf(prot, sizeof(prot), "{\"alg\":\"HS256\",\"kid\":\"%s\",\"url\":\"%s\"}", kid, url);
	if ((in = signing_input(prot, jwk)) == NULL ||
	    HMAC(EVP_sha256(), hkey, (int)klen, (unsigned char *)in, strlen(in), mac,
	    &maclen) == NULL) {
		OPENSSL_cleanse(hkey, sizeof(hkey));
		free(in);
		return tg_err_ossl(err, TG_E_ACME, "cannot compute the account binding"), NULL;
	}
	OPENSSL_cleanse(hkey, sizeof(hkey));
	free(in);
	out = flatten(prot, jwk, mac, maclen, err);
	return out;
}
