/*
 * Making certificates: the local CA, leaf certificates, CSRs and CSR
 * signing. Every certificate carries what strict verifiers demand:
 * basicConstraints (critical), keyUsage (critical), extendedKeyUsage,
 * subject and authority key identifiers, SANs, and a random 127-bit serial.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "error.h"
#include "ossl_words.h"
#include "pki.h"
#include "util.h"

/* ---- SANs -------------------------------------------------------------- */

static int
is_ip(const char *s)
{
	unsigned char b[16];
	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static int
dns_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 253)
		return 0;
	if (s[0] == '*' && s[1] == '.')
		s += 2;   /* one leading wildcard label */
	for (i = 0; s[i]; i++) {
		char c = s[i];
		if (!(isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_'))
			return 0;
	}
	return s[0] != '.' && s[0] != '-';
}

/* Turns "dns:a,ip:b,c" into OpenSSL's "DNS:a,IP:b,DNS:c", validating. */
static int
sans_to_conf(const char *sans, char *out, size_t len, struct tg_err *err)
{
	char item[512];
	const char *p = sans;
	size_t n = 0;

	out[0] = '\0';
	while (p && *p) {
		const char *e = strchr(p, ',');
		const char *v, *kind;
		size_t il = e ? (size_t)(e - p) : strlen(p);

		if (il >= sizeof(item))
			return tg_err_set(err, TG_E_USAGE, "--san: entry too long");
		memcpy(item, p, il);
		item[il] = '\0';
		p = e ? e + 1 : NULL;
		if (il == 0)
			continue;
		if (!strncmp(item, "dns:", 4)) {
			kind = "DNS", v = item + 4;
			if (!dns_ok(v))
				return tg_err_set(err, TG_E_USAGE, "--san: '%s' is not a DNS name", v);
		} else if (!strncmp(item, "ip:", 3)) {
			kind = "IP", v = item + 3;
			if (!is_ip(v))
				return tg_err_set(err, TG_E_USAGE, "--san: '%s' is not an IP address", v);
		} else if (!strncmp(item, "uri:", 4)) {
			kind = "URI", v = item + 4;
			if (!strchr(v, ':') || strpbrk(v, " ,\""))
				return tg_err_set(err, TG_E_USAGE, "--san: '%s' is not a URI", v);
		} else if (!strncmp(item, "email:", 6)) {
			kind = "email", v = item + 6;
			if (!strchr(v, '@') || strpbrk(v, " ,\""))
				return tg_err_set(err, TG_E_USAGE, "--san: '%s' is not an e-mail address", v);
		} else if (strchr(item, ':') && !is_ip(item)) {
			return tg_err_set(err, TG_E_USAGE, "--san: '%s' has an unknown kind; use "
			    "dns:, ip:, uri: or email:", item);
		} else {
			v = item;
			kind = is_ip(v) ? "IP" : "DNS";
			if (kind[0] == 'D' && !dns_ok(v))
				return tg_err_set(err, TG_E_USAGE, "--san: '%s' is not a DNS name "
				    "or IP address", v);
		}
		n += (size_t)snprintf(out + n, n < len ? len - n : 0, "%s%s:%s",
		    n ? "," : "", kind, v);
		if (n >= len)
			return tg_err_set(err, TG_E_USAGE, "--san: too many names");
	}
	return 0;
}

int
tg_sans_check(const char *sans, struct tg_err *err)
{
	char buf[8192];
	return sans_to_conf(sans, buf, sizeof(buf), err);
}

/* ---- building ------------------------------------------------------------ */

static int
add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value, struct tg_err *err)
{
	X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, ctx, nid, value);

	if (ex == NULL)
		return tg_err_ossl(err, TG_E_PKI, "cannot add %s=%s", OBJ_nid2sn(nid), value);
	if (X509_add_ext(x, ex, -1) != 1) {
		X509_EXTENSION_free(ex);
		return tg_err_ossl(err, TG_E_PKI, "cannot add %s", OBJ_nid2sn(nid));
	}
	X509_EXTENSION_free(ex);
	return 0;
}

static int
random_serial(X509 *x, struct tg_err *err)
{
	unsigned char b[16];
	BIGNUM *bn;
	int rv = -1;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return tg_err_ossl(err, TG_E_PKI, "no randomness for a serial number");
	b[0] &= 0x7f;   /* positive */
	b[0] |= 0x01;   /* and never short: 121+ bits of entropy */
	bn = BN_bin2bn(b, sizeof(b), NULL);
	if (bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL)
		rv = 0;
	else
		tg_err_ossl(err, TG_E_PKI, "cannot set the serial number");
	BN_free(bn);
	return rv;
}

const EVP_MD *
tg_pki_digest_for(EVP_PKEY *signer)
{
	if (EVP_PKEY_get_base_id(signer) == EVP_PKEY_ED25519)
		return NULL;
	if (EVP_PKEY_get_bits(signer) >= 384 && EVP_PKEY_get_base_id(signer) == EVP_PKEY_EC)
		return EVP_sha384();
	return EVP_sha256();
}

X509 *
tg_cert_build(int kind, const char *cn, const char *sans, int days,
    EVP_PKEY *pub, const struct tg_ca *issuer, struct tg_err *err)
{
	return tg_cert_build_secs(kind, cn, sans, days, 0, pub, issuer, err);
}

X509 *
tg_cert_build_secs(int kind, const char *cn, const char *sans, int days, long secs,
    EVP_PKEY *pub, const struct tg_ca *issuer, struct tg_err *err)
{
	X509 *x = X509_new();
	X509_NAME *name = NULL;
	X509V3_CTX ctx;
	char conf[8192], ku[128];
	int is_rsa = EVP_PKEY_get_base_id(pub) == EVP_PKEY_RSA;
	EVP_PKEY *signer = issuer ? issuer->key : pub;

	if (x == NULL)
		goto oom;
	if (days <= 0 && secs <= 0)
		days = kind == TG_BUILD_CA ? TG_DEFAULT_CA_DAYS : TG_DEFAULT_DAYS;
	if (sans && sans_to_conf(sans, conf, sizeof(conf), err) < 0)
		goto fail;
	if (X509_set_version(x, X509_VERSION_3) != 1 || random_serial(x, err) < 0)
		goto fail;
	/* five minutes of slack for peers whose clocks run behind; a tenth of
	 * a short lifetime (ACME's), or renewal at a fraction of the lifetime
	 * would fall due at once */
	if (X509_gmtime_adj(X509_getm_notBefore(x), secs > 0 && days <= 0 && secs < 3000 ?
	    -(secs / 10) : -300) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), days, secs, NULL) == NULL)
		goto ossl;
	name = X509_NAME_new();
	/* no CN (tg_cert_req.no_cn): the names are the SANs alone, and RFC 5280
	 * wants them critical then */
	if (name == NULL || (!(kind & TG_BUILD_NO_CN) && X509_NAME_add_entry_by_txt(name, "CN",
	    MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) != 1))
		goto ossl;
	if (kind == TG_BUILD_CA && X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
	    (const unsigned char *)"tlsgate", -1, -1, 0) != 1)
		goto ossl;
	if (X509_set_subject_name(x, name) != 1 ||
	    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->cert) : name) != 1 ||
	    X509_set_pubkey(x, pub) != 1)
		goto ossl;
	X509V3_set_ctx(&ctx, issuer ? issuer->cert : x, x, NULL, NULL, 0);
	switch (kind & ~TG_BUILD_NO_CN) {
	case TG_BUILD_CA:
		if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", err) < 0 ||
		    add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature", err) < 0)
			goto fail;
		break;
	case TG_BUILD_SERVER:
	case TG_BUILD_CLIENT:
	case TG_BUILD_SELF:
	case TG_BUILD_LEAF:
		snprintf(ku, sizeof(ku), "critical,digitalSignature%s", is_rsa ? ",keyEncipherment" : "");
		if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE", err) < 0 ||
		    add_ext(x, &ctx, NID_key_usage, ku, err) < 0 ||
		    add_ext(x, &ctx, NID_ext_key_usage, (kind & ~TG_BUILD_NO_CN) == TG_BUILD_CLIENT ?
		    "clientAuth" : (kind & ~TG_BUILD_NO_CN) == TG_BUILD_SELF ||
		    (kind & ~TG_BUILD_NO_CN) == TG_BUILD_LEAF ? "serverAuth,clientAuth" :
		    "serverAuth", err) < 0)
			goto fail;
		break;
	}
	if (add_ext(x, &ctx, NID_subject_key_identifier, "hash", err) < 0)
		goto fail;
	if (issuer || kind == TG_BUILD_CA) {
		if (add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always", err) < 0)
			goto fail;
	}
	/* where relying parties fetch the CA's CRL (ca init --crl-url) */
	if (issuer && issuer->crl_url[0] && (kind & ~TG_BUILD_NO_CN) != TG_BUILD_CA) {
		char cdp[sizeof(issuer->crl_url) + 8];
		snprintf(cdp, sizeof(cdp), "URI:%s", issuer->crl_url);
		if (add_ext(x, &ctx, NID_crl_distribution_points, cdp, err) < 0)
			goto fail;
	}
	if (sans && conf[0]) {
		char crit[sizeof(conf) + 16];
		snprintf(crit, sizeof(crit), "critical,%s", conf);   /* fits: conf + 9 */
		if (add_ext(x, &ctx, NID_subject_alt_name, kind & TG_BUILD_NO_CN ? crit : conf, err) < 0)
			goto fail;
	} else if (kind & TG_BUILD_NO_CN) {
		tg_err_set(err, TG_E_USAGE, "a certificate without a CN needs a --san");
		goto fail;
	}
	if (X509_sign(x, signer, tg_pki_digest_for(signer)) <= 0)
		goto ossl;
	X509_NAME_free(name);
	return x;
oom:
	tg_err_set(err, TG_E_INTERNAL, "out of memory");
	goto fail;
ossl:
	tg_err_ossl(err, TG_E_PKI, "cannot build the certificate for %s", cn);
fail:
	X509_NAME_free(name);
	X509_free(x);
	return NULL;
}

/* ---- the CA folder ------------------------------------------------------ */

int
tg_ca_load(const char *dir, struct tg_ca *ca, struct tg_err *err)
{
	char p[PATH_MAX];
	STACK_OF(X509) *sk;

	memset(ca, 0, sizeof(*ca));
	snprintf(p, sizeof(p), "%s/ca.crt", dir);
	sk = tg_certs_read(p, err);
	if (sk == NULL) {
		if (err->code == TG_E_NOT_FOUND)
			tg_err_set(err, TG_E_NOT_FOUND, "no CA in %s (ca.crt missing); create one "
			    "with `tlsgate ca init --dir %s`", dir, dir);
		return -1;
	}
	ca->cert = sk_X509_shift(sk);
	sk_X509_pop_free(sk, X509_free);
	snprintf(p, sizeof(p), "%s/ca.key", dir);
	ca->key = tg_key_read(p, err);
	if (ca->key == NULL)
		goto fail;
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		tg_err_set(err, TG_E_KEY_MISMATCH, "%s/ca.key does not match %s/ca.crt", dir, dir);
		goto fail;
	}
	ERR_clear_error();
	snprintf(p, sizeof(p), "%s/crl-url", dir);
	{
		FILE *f = fopen(p, "r");
		if (f) {
			if (fgets(ca->crl_url, sizeof(ca->crl_url), f))
				ca->crl_url[strcspn(ca->crl_url, "\r\n \t")] = '\0';
			/* a hand-edited URL with a comma would add names to the CDP */
			if (strpbrk(ca->crl_url, ",\"\\"))
				ca->crl_url[0] = '\0';
			fclose(f);
		}
	}
	return 0;
fail:
	ERR_clear_error();
	tg_ca_clear(ca);
	return -1;
}

void
tg_ca_clear(struct tg_ca *ca)
{
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);   /* OpenSSL wipes key material on free */
	memset(ca, 0, sizeof(*ca));
}

static int
write_cert_pem(const char *path, X509 *leaf, X509 *chain, struct tg_err *err)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	char *pem = NULL;
	int rv = -1;

	if (sk == NULL || !sk_X509_push(sk, leaf) || (chain && !sk_X509_push(sk, chain)) ||
	    (pem = tg_certs_pem(sk)) == NULL) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		goto out;
	}
	rv = tg_write_atomic(path, pem, strlen(pem), 0, err);
out:
	free(pem);
	sk_X509_free(sk);
	return rv;
}

int
tg_ca_init(const char *dir, const char *cn, enum tg_key_type kt, int days, struct tg_err *err)
{
	struct tg_store *st = NULL;
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	BIO *kb = NULL;
	char *pem = NULL, *kp;
	long kl;
	int rv = -1;

	if ((st = tg_store_fs_open(dir, err)) == NULL)
		return -1;
	/* two processes creating the same CA at once must not both win */
	if (tg_store_lock(st, "ca", 10000, err) < 0)
		goto out;
	if (tg_store_exists(st, "ca.crt") || tg_store_exists(st, "ca.key")) {
		tg_err_set(err, TG_E_EXISTS, "a CA already exists in %s; remove ca.crt and "
		    "ca.key first if you really want a new one (everything it issued stops "
		    "being trusted)", dir);
		goto unlock;
	}
	if ((k = tg_key_generate(kt, err)) == NULL)
		goto unlock;
	if ((x = tg_cert_build(TG_BUILD_CA, cn, NULL, days, k, NULL, err)) == NULL)
		goto unlock;
	kb = BIO_new(BIO_s_secmem());
	if (kb == NULL || PEM_write_bio_PrivateKey(kb, k, NULL, NULL, 0, NULL, NULL) != 1) {
		tg_err_ossl(err, TG_E_PKI, "cannot encode the CA key");
		goto unlock;
	}
	kl = BIO_get_mem_data(kb, &kp);
	{
		STACK_OF(X509) *one = sk_X509_new_null();
		if (one && sk_X509_push(one, x))
			pem = tg_certs_pem(one);
		sk_X509_free(one);
	}
	if (pem == NULL) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		goto unlock;
	}
	if (tg_store_put(st, "ca.key", kp, (size_t)kl, TG_STORE_SECRET, err) < 0 ||
	    tg_store_put(st, "ca.crt", pem, strlen(pem), 0, err) < 0)
		goto unlock;
	rv = 0;
unlock:
	tg_store_unlock(st, "ca");
out:
	free(pem);
	BIO_free(kb);
	EVP_PKEY_free(k);
	X509_free(x);
	tg_store_free(st);
	return rv;
}

static const char *
default_cn(const struct tg_cert_req *req, char *buf, size_t len)
{
	const char *p;

	if (req->name && req->name[0])
		return req->name;
	if (req->sans && req->sans[0]) {
		p = strchr(req->sans, ':');
		if (p && (size_t)(p - req->sans) <= 5 && !is_ip(req->sans))
			p++;
		else
			p = req->sans;
		snprintf(buf, len, "%.*s", (int)strcspn(p, ","), p);
		return buf;
	}
	return NULL;
}

/* SANs to use: the given ones, else the CN as a DNS name or IP address. */
static const char *
default_sans(const struct tg_cert_req *req, const char *cn)
{
	if (req->sans && req->sans[0])
		return req->sans;
	if (req->kind == TG_CERT_CLIENT && !dns_ok(cn))
		return NULL;   /* a client known by CN only ("node 7") */
	return cn;
}

int
tg_cert_issue(const char *ca_dir, const struct tg_cert_req *req, const char *prefix,
    struct tg_err *err)
{
	struct tg_ca ca;
	char crt[PATH_MAX], key[PATH_MAX], cnbuf[256];
	const char *cn = default_cn(req, cnbuf, sizeof(cnbuf));
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	int rv = -1;

	if (cn == NULL)
		return tg_err_set(err, TG_E_USAGE, "give --name or --san: a certificate needs a name");
	if (req->sans && tg_sans_check(req->sans, err) < 0)
		return -1;
	if (snprintf(crt, sizeof(crt), "%s.crt", prefix) >= (int)sizeof(crt) ||
	    snprintf(key, sizeof(key), "%s.key", prefix) >= (int)sizeof(key))
		return tg_err_set(err, TG_E_USAGE, "--out: path too long");
	if (tg_ca_load(ca_dir, &ca, err) < 0)
		return -1;
	if ((k = tg_key_generate(req->key_type, err)) == NULL)
		goto out;
	x = tg_cert_build((req->kind == TG_CERT_SERVER ? TG_BUILD_SERVER : TG_BUILD_CLIENT) |
	    (req->no_cn ? TG_BUILD_NO_CN : 0), cn, default_sans(req, cn), req->days, k, &ca, err);
	if (x == NULL)
		goto out;
	if (tg_key_write(key, k, err) < 0 || write_cert_pem(crt, x, ca.cert, err) < 0)
		goto out;
	rv = 0;
out:
	EVP_PKEY_free(k);
	X509_free(x);
	tg_ca_clear(&ca);
	return rv;
}

int
tg_cert_csr(const char *key_path, int new_key, const struct tg_cert_req *req,
    const char *csr_path, struct tg_err *err)
{
	char cnbuf[256], conf[8192];
	const char *cn = default_cn(req, cnbuf, sizeof(cnbuf));
	const char *sans;
	X509_REQ *r = NULL;
	X509_NAME *name = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	EVP_PKEY *k = NULL;
	struct stat sb;
	BIO *b = NULL;
	char *pem;
	long n;
	int rv = -1;

	if (cn == NULL)
		return tg_err_set(err, TG_E_USAGE, "give --name or --san: a CSR needs a name");
	sans = default_sans(req, cn);
	if (sans && sans_to_conf(sans, conf, sizeof(conf), err) < 0)
		return -1;
	if (new_key && stat(key_path, &sb) == 0)
		return tg_err_set(err, TG_E_EXISTS, "%s exists; use --key %s to make a CSR for "
		    "it, or another file for --new-key", key_path, key_path);
	if (new_key) {
		if ((k = tg_key_generate(req->key_type, err)) == NULL ||
		    tg_key_write(key_path, k, err) < 0)
			goto out;
	} else if ((k = tg_key_read(key_path, err)) == NULL) {
		goto out;
	}
	r = X509_REQ_new();
	name = X509_NAME_new();
	if (r == NULL || name == NULL ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
	    -1, -1, 0) != 1 || X509_REQ_set_subject_name(r, name) != 1 ||
	    X509_REQ_set_pubkey(r, k) != 1)
		goto ossl;
	if (sans) {
		X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, conf);
		exts = sk_X509_EXTENSION_new_null();
		if (ex == NULL || exts == NULL || !sk_X509_EXTENSION_push(exts, ex)) {
			X509_EXTENSION_free(ex);
			goto ossl;
		}
		if (X509_REQ_add_extensions(r, exts) != 1)
			goto ossl;
	}
	if (X509_REQ_sign(r, k, tg_pki_digest_for(k)) <= 0)
		goto ossl;
	b = BIO_new(BIO_s_mem());
	if (b == NULL || PEM_write_bio_X509_REQ(b, r) != 1)
		goto ossl;
	n = BIO_get_mem_data(b, &pem);
	rv = tg_write_atomic(csr_path, pem, (size_t)n, 0, err);
	goto out;
ossl:
	tg_err_ossl(err, TG_E_PKI, "cannot make the CSR");
out:
	BIO_free(b);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(name);
	X509_REQ_free(r);
	EVP_PKEY_free(k);
	return rv;
}

/* SANs requested by a CSR, in our "dns:a,ip:b" form. */
static void
csr_sans(X509_REQ *r, char *buf, size_t len)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(r);
	X509 *tmp = X509_new();
	int i;

	buf[0] = '\0';
	if (exts && tmp) {
		for (i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
			X509_EXTENSION *ex = sk_X509_EXTENSION_value(exts, i);
			if (OBJ_obj2nid(X509_EXTENSION_get_object(ex)) == NID_subject_alt_name)
				X509_add_ext(tmp, ex, -1);
		}
		tg_cert_sans(tmp, buf, len);
	}
	/* tg_cert_sans writes "dns:a, ip:b": drop the spaces */
	for (i = 0; buf[i]; i++)
		if (buf[i] == ' ')
			memmove(buf + i, buf + i + 1, strlen(buf + i)), i--;
	X509_free(tmp);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
}

int
tg_cert_sign(const char *ca_dir, const char *csr_path, const struct tg_cert_req *req,
    const char *out_path, struct tg_err *err)
{
	unsigned char *data = NULL;
	size_t len;
	X509_REQ *r = NULL;
	EVP_PKEY *pub;
	X509 *x = NULL;
	struct tg_ca ca;
	char cn[256], sans[4096];
	struct tg_cert_req use = *req;
	BIO *b = NULL;
	int rv = -1;

	memset(&ca, 0, sizeof(ca));
	if (tg_read_file(csr_path, &data, &len, 1 << 20, err) < 0)
		return -1;
	b = BIO_new_mem_buf(data, (int)len);
	if (b == NULL)
		goto out;
	r = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
	if (r == NULL) {
		const unsigned char *p = data;
		r = d2i_X509_REQ(NULL, &p, (long)len);
	}
	if (r == NULL) {
		ERR_clear_error();
		tg_err_set(err, TG_E_PEM, "%s is not a CSR (expected PEM -----BEGIN "
		    "CERTIFICATE REQUEST----- or DER)", csr_path);
		goto out;
	}
	pub = X509_REQ_get0_pubkey(r);
	if (pub == NULL || X509_REQ_verify(r, pub) != 1) {
		tg_err_ossl(err, TG_E_PKI, "%s: the CSR's signature does not verify (it was "
		    "altered, or not made with its key)", csr_path);
		goto out;
	}
	ERR_clear_error();
	if (X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(r), NID_commonName, cn,
	    sizeof(cn)) < 0)
		cn[0] = '\0';
	csr_sans(r, sans, sizeof(sans));
	if (!use.name || !use.name[0])
		use.name = cn[0] ? cn : NULL;
	if (!use.sans || !use.sans[0])
		use.sans = sans[0] ? sans : NULL;
	{
		char cnbuf[256];
		const char *name = default_cn(&use, cnbuf, sizeof(cnbuf));
		if (name == NULL) {
			tg_err_set(err, TG_E_USAGE, "%s names nobody (no CN, no SAN); give --name",
			    csr_path);
			goto out;
		}
		if (tg_ca_load(ca_dir, &ca, err) < 0)
			goto out;
		x = tg_cert_build(req->kind == TG_CERT_SERVER ? TG_BUILD_SERVER : TG_BUILD_CLIENT,
		    name, default_sans(&use, name), req->days, pub, &ca, err);
	}
	if (x == NULL)
		goto out;
	rv = write_cert_pem(out_path, x, ca.cert, err);
out:
	BIO_free(b);
	OPENSSL_free(data);
	X509_REQ_free(r);
	X509_free(x);
	tg_ca_clear(&ca);
	return rv;
}
