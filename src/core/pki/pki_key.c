/*
 * Keys and PEM input: generating, writing (0600, atomically, wiped),
 * reading, describing; certificates and trust anchors from files and
 * folders; SPKI pins.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "error.h"
#include "ossl_words.h"
#include "pki.h"
#include "util.h"

#define MAX_PEM_BYTES (4 << 20)

int
tg_key_type_parse(const char *s, enum tg_key_type *out)
{
	static const struct { const char *n; enum tg_key_type t; } m[] = {
		{ "ec-p256", TG_KEY_EC_P256 }, { "ec-p384", TG_KEY_EC_P384 },
		{ "rsa-2048", TG_KEY_RSA_2048 }, { "rsa-3072", TG_KEY_RSA_3072 },
		{ "ed25519", TG_KEY_ED25519 },
	};
	size_t i;

	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		if (strcmp(s, m[i].n) == 0) {
			*out = m[i].t;
			return 0;
		}
	}
	return -1;
}

EVP_PKEY *
tg_key_generate(enum tg_key_type type, struct tg_err *err)
{
	EVP_PKEY *k = NULL;

	switch (type) {
	case TG_KEY_EC_P256:
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case TG_KEY_EC_P384:
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
		break;
	case TG_KEY_RSA_2048:
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		break;
	case TG_KEY_RSA_3072:
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
		break;
	case TG_KEY_ED25519:
		k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		break;
	}
	if (k == NULL)
		tg_err_ossl(err, TG_E_PKI, "cannot generate a key");
	return k;
}

int
tg_key_write(const char *path, EVP_PKEY *key, struct tg_err *err)
{
	BIO *b = BIO_new(BIO_s_secmem());
	char *pem;
	long n;
	int rv = -1;

	if (b == NULL)
		return tg_err_ossl(err, TG_E_INTERNAL, "out of memory");
	if (PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) != 1) {
		tg_err_ossl(err, TG_E_PKI, "cannot encode the key");
		goto out;
	}
	n = BIO_get_mem_data(b, &pem);
	rv = tg_write_atomic(path, pem, (size_t)n, 1, err);
out:
	BIO_free(b);   /* a secmem BIO wipes its buffer */
	return rv;
}

static int insecure_key_permissions;

void
tg_pki_allow_insecure_key_permissions(int allow)
{
	insecure_key_permissions = allow;
}

EVP_PKEY *
tg_key_read(const char *path, struct tg_err *err)
{
	unsigned char *data;
	size_t len;
	EVP_PKEY *k = NULL;
	struct stat sb;
	BIO *b;

	/* a key others can read is a key others may have copied */
	if (!insecure_key_permissions && stat(path, &sb) == 0 && S_ISREG(sb.st_mode) &&
	    (sb.st_mode & 077) != 0) {
		tg_err_set(err, TG_E_PERM, "%s: mode %03o lets other users read the private key; "
		    "run chmod 600 %s (or pass --allow-insecure-key-permissions)", path,
		    (unsigned)(sb.st_mode & 0777), path);
		return NULL;
	}
	if (tg_read_file(path, &data, &len, MAX_PEM_BYTES, err) < 0)
		return NULL;
	b = BIO_new_mem_buf(data, (int)len);
	if (b) {
		ERR_clear_error();
		k = PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"");
		if (k == NULL) {
			(void)BIO_reset(b);
			k = d2i_PrivateKey_bio(b, NULL);
		}
		BIO_free(b);
	}
	tg_free_secret(data, len);
	if (k == NULL) {
		char words[256];
		tg_ossl_words(words, sizeof(words));
		tg_err_set(err, TG_E_PEM, "%s is not a private key (want PEM \"-----BEGIN "
		    "PRIVATE KEY-----\" or DER, unencrypted)%s%s", path,
		    strstr(words, "passphrase") ? ": " : "", strstr(words, "passphrase") ? words : "");
	}
	else
		ERR_clear_error();
	return k;
}

void
tg_key_describe(EVP_PKEY *key, char *buf, size_t len)
{
	char group[64];
	size_t gl = 0;

	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group), &gl) != 1)
			snprintf(group, sizeof(group), "?");
		snprintf(buf, len, "EC %s", strcmp(group, "prime256v1") == 0 ? "P-256" :
		    strcmp(group, "secp384r1") == 0 ? "P-384" : group);
		break;
	case EVP_PKEY_RSA:
		snprintf(buf, len, "RSA %d", EVP_PKEY_get_bits(key));
		break;
	case EVP_PKEY_ED25519:
		snprintf(buf, len, "Ed25519");
		break;
	default:
		snprintf(buf, len, "%s %d", OBJ_nid2sn(EVP_PKEY_get_base_id(key)),
		    EVP_PKEY_get_bits(key));
		break;
	}
}

STACK_OF(X509) *
tg_certs_parse(const unsigned char *data, size_t len, const char *name, struct tg_err *err)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *b;
	X509 *x;

	if (sk == NULL || len > INT32_MAX) {
		sk_X509_free(sk);
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		return NULL;
	}
	b = BIO_new_mem_buf(data, (int)len);
	if (b == NULL)
		goto fail;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			break;
		}
	}
	ERR_clear_error();
	if (sk_X509_num(sk) == 0) {
		const unsigned char *p = data;
		x = d2i_X509(NULL, &p, (long)len);
		if (x != NULL && !sk_X509_push(sk, x))
			X509_free(x);
	}
	BIO_free(b);
	if (sk_X509_num(sk) == 0) {
		ERR_clear_error();
		tg_err_set(err, TG_E_PEM, "%s holds no certificate (expected PEM "
		    "-----BEGIN CERTIFICATE----- or DER)", name);
		goto fail;
	}
	return sk;
fail:
	sk_X509_pop_free(sk, X509_free);
	return NULL;
}

STACK_OF(X509) *
tg_certs_read(const char *path, struct tg_err *err)
{
	unsigned char *data;
	size_t len;
	STACK_OF(X509) *sk;

	if (tg_read_file(path, &data, &len, MAX_PEM_BYTES, err) < 0)
		return NULL;
	sk = tg_certs_parse(data, len, path, err);
	OPENSSL_free(data);
	return sk;
}

char *
tg_certs_pem(STACK_OF(X509) *certs)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *out = NULL;
	long n;
	int i;

	if (b == NULL)
		return NULL;
	for (i = 0; i < sk_X509_num(certs); i++)
		if (PEM_write_bio_X509(b, sk_X509_value(certs, i)) != 1)
			goto out;
	n = BIO_get_mem_data(b, &p);
	out = malloc((size_t)n + 1);
	if (out) {
		memcpy(out, p, (size_t)n);
		out[n] = '\0';
	}
out:
	BIO_free(b);
	return out;
}

int
tg_trust_store_add(X509_STORE *st, const char *path, STACK_OF(X509_NAME) *names,
    struct tg_err *err)
{
	STACK_OF(X509) *sk = tg_certs_read(path, err);
	int i;

	if (sk == NULL)
		return -1;
	for (i = 0; i < sk_X509_num(sk); i++) {
		X509 *x = sk_X509_value(sk, i);
		if (X509_STORE_add_cert(st, x) != 1)
			ERR_clear_error();   /* a duplicate is fine */
		if (names) {
			X509_NAME *nm = X509_NAME_dup(X509_get_subject_name(x));
			if (nm && !sk_X509_NAME_push(names, nm))
				X509_NAME_free(nm);
		}
	}
	sk_X509_pop_free(sk, X509_free);
	return 0;
}

X509_STORE *
tg_trust_store_load(const char *path, STACK_OF(X509_NAME) **names, struct tg_err *err)
{
	X509_STORE *st = X509_STORE_new();
	struct stat sb;
	char p[PATH_MAX];
	int loaded = 0;

	if (names)
		*names = sk_X509_NAME_new_null();
	if (st == NULL || (names && *names == NULL)) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		goto fail;
	}
	if (stat(path, &sb) < 0) {
		tg_err_set(err, TG_E_NOT_FOUND, "CA %s: %s", path, strerror(errno));
		goto fail;
	}
	if (S_ISDIR(sb.st_mode)) {
		/* every PEM file in the folder, no hashed names needed */
		struct dirent **ents;
		int n = scandir(path, &ents, NULL, alphasort), i;
		if (n < 0) {
			tg_err_set(err, TG_E_IO, "CA folder %s: %s", path, strerror(errno));
			goto fail;
		}
		for (i = 0; i < n; i++) {
			struct tg_err ignore;
			if (ents[i]->d_name[0] != '.' &&
			    snprintf(p, sizeof(p), "%s/%s", path, ents[i]->d_name) < (int)sizeof(p) &&
			    stat(p, &sb) == 0 && S_ISREG(sb.st_mode) &&
			    tg_trust_store_add(st, p, names ? *names : NULL, &ignore) == 0)
				loaded++;
			free(ents[i]);
		}
		free(ents);
		if (loaded == 0) {
			tg_err_set(err, TG_E_PEM, "CA folder %s holds no PEM certificate", path);
			goto fail;
		}
	} else if (tg_trust_store_add(st, path, names ? *names : NULL, err) < 0) {
		goto fail;
	}
	return st;
fail:
	X509_STORE_free(st);
	if (names) {
		sk_X509_NAME_pop_free(*names, X509_NAME_free);
		*names = NULL;
	}
	return NULL;
}

int
tg_spki_pin(X509 *cert, char *buf, size_t len)
{
	unsigned char *der = NULL, md[32];
	unsigned char b64[64];
	int n;

	n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
	if (n <= 0)
		return -1;
	if (EVP_Digest(der, (size_t)n, md, NULL, EVP_sha256(), NULL) != 1) {
		OPENSSL_free(der);
		return -1;
	}
	OPENSSL_free(der);
	EVP_EncodeBlock(b64, md, sizeof(md));
	return snprintf(buf, len, "sha256:%s", b64) >= (int)len ? -1 : 0;
}

int
tg_cert_days_left(X509 *cert, int *days)
{
	int d, s;

	if (ASN1_TIME_diff(&d, &s, NULL, X509_get0_notAfter(cert)) != 1)
		return -1;
	*days = d;
	return 0;
}
