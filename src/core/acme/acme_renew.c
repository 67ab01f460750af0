/*
 * When an ACME certificate is due, and the stored copy of it: renewal when
 * less than renew_before or a third of the lifetime is left, earlier when
 * the CA's renewal information (RFC 9773) says so; the cached certificate
 * checked before use, so a half-written or foreign file means a new order,
 * never a broken server.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "acme.h"
#include "acme_http.h"
#include "error.h"
#include "ossl_words.h"
#include "pki.h"
#include "util.h"

int
tg_acme_cert_id(X509 *cert, char *buf, size_t len)
{
	const ASN1_OCTET_STRING *kid = X509_get0_authority_key_id(cert);
	const ASN1_INTEGER *serial = X509_get0_serialNumber(cert);
	unsigned char *der = NULL;
	char a[128], s[128];
	int n, rv = -1;

	if (kid == NULL || serial == NULL || ASN1_STRING_length(kid) > 64)
		return -1;
	/* the serial's DER content octets: i2d gives tag, length, content */
	if ((n = i2d_ASN1_INTEGER(serial, &der)) <= 2 || der[1] & 0x80 || n - 2 > 64)
		goto out;
	if (tg_b64url(ASN1_STRING_get0_data(kid), (size_t)ASN1_STRING_length(kid), a,
	    sizeof(a)) < 0 || tg_b64url(der + 2, (size_t)(n - 2), s, sizeof(s)) < 0)
		goto out;
	if ((size_t)snprintf(buf, len, "%s.%s", a, s) < len)
		rv = 0;
out:
	OPENSSL_free(der);
	return rv;
}

static time_t
asn1_time(const ASN1_TIME *t)
{
	struct tm tm;
	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

static void
date(time_t t, char *buf, size_t len)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M UTC", &tm);
}

int
tg_acme_due(X509 *cert, int64_t renew_before_s, const struct tg_acme_ari *ari, time_t now,
    time_t *when, char *why, size_t whylen)
{
	time_t nb = asn1_time(X509_get0_notBefore(cert)), na = asn1_time(X509_get0_notAfter(cert));
	time_t life = na - nb;
	/* a third of the lifetime before expiry, half when it is under 10
	 * days (a 6-day certificate renews after 3): never so late that one
	 * failed attempt loses it, never so early that renewals storm */
	int short_life = life < 10 * 86400;
	time_t by_frac = na - (short_life ? life / 2 : life / 3);
	time_t by_setting = renew_before_s > 0 ? na - (time_t)renew_before_s : by_frac, due;
	char d[64], note[200] = "";

	due = by_setting < by_frac ? by_setting : by_frac;
	if (life <= 0)
		due = now;   /* a certificate that ends before it begins: replace it */
	if (renew_before_s > 0 && renew_before_s >= life)
		snprintf(note, sizeof(note), " (tls.acme.renew_before, %lld days, is not shorter "
		    "than this certificate's lifetime of %lld hours: it renews at every check)",
		    (long long)(renew_before_s / 86400), (long long)(life / 3600));
	if (ari && ari->start && ari->start < due) {
		/* a point in the CA's window, the same for this certificate each
		 * time we look, so checks do not move it */
		time_t span = ari->end - ari->start;
		due = ari->start + (span > 0 ? (time_t)(X509_get0_serialNumber(cert)->length *
		    7919 % span) : 0);
		if (due > ari->end)
			due = ari->end;
	}
	*when = due;
	if (now >= na) {
		date(na, d, sizeof(d));
		snprintf(why, whylen, "renewing because it expired on %s", d);
		return 1;
	}
	if (now < due) {
		date(due, d, sizeof(d));
		snprintf(why, whylen, "not due until %s", d);
		return 0;
	}
	date(na, d, sizeof(d));
	if (ari && ari->start && due < by_setting && due < by_frac)
		snprintf(why, whylen, "renewing because the CA's renewal window has begun "
		    "(expires %s)%s%s", d, ari->explanation[0] ? "; see " : "", ari->explanation);
	else if (renew_before_s > 0 && by_setting <= by_frac)
		snprintf(why, whylen, "renewing because less than renew_before (%lld days) is "
		    "left before %s%s", (long long)(renew_before_s / 86400), d, note);
	else
		snprintf(why, whylen, "renewing because less than %s of its lifetime is left "
		    "before %s", short_life ? "half" : "a third", d);
	return 1;
}

int
tg_acme_fetch_ari(const struct tg_acme_opts *o, X509 *cert, struct tg_acme_ari *ari,
    struct tg_err *err)
{
	struct tg_acme_http h;
	struct tg_acme_resp resp;
	struct tg_acme_dir dir;
	char id[300], url[900];
	int rv = -1;

	memset(&resp, 0, sizeof(resp));
	memset(ari, 0, sizeof(*ari));
	if (tg_acme_cert_id(cert, id, sizeof(id)) < 0)
		return tg_err_set(err, TG_E_ACME, "the certificate has no authority key id");
	if (tg_acme_http_init(&h, o->ca_cert, err) < 0)
		return -1;
	if (tg_acme_get(&h, o->directory, &resp, err) < 0 || resp.status != 200 ||
	    tg_acme_parse_directory(resp.body ? resp.body : "", resp.len, &dir, err) < 0)
		goto out;
	if (!dir.renewal_info[0]) {
		tg_err_set(err, TG_E_NOT_FOUND, "the CA offers no renewal information");
		goto out;
	}
	snprintf(url, sizeof(url), "%s%s%s", dir.renewal_info,
	    dir.renewal_info[strlen(dir.renewal_info) - 1] == '/' ? "" : "/", id);
	if (tg_acme_get(&h, url, &resp, err) < 0)
		goto out;
	if (resp.status != 200) {
		tg_err_set(err, TG_E_ACME, "renewal information: HTTP %d", resp.status);
		goto out;
	}
	rv = tg_acme_parse_ari(resp.body ? resp.body : "", resp.len, ari, err);
out:
	tg_acme_resp_clear(&resp);
	tg_acme_http_free(&h);
	return rv;
}

void
tg_acme_cert_names(const char *directory, const char *first_name, char *crt, size_t crtlen,
    char *key, size_t keylen)
{
	char prefix[200], n[256];
	size_t i;

	tg_acme_store_prefix(directory, prefix, sizeof(prefix));
	snprintf(n, sizeof(n), "%s", first_name);
	for (i = 0; n[i]; i++)   /* "*.example.com" and v6 addresses as file names */
		if (n[i] == '*' || n[i] == ':' || n[i] == '/')
			n[i] = '_';
	snprintf(crt, crtlen, "%s/certs/%s.crt", prefix, n);
	snprintf(key, keylen, "%s/certs/%s.key", prefix, n);
}

static int
is_ip(const char *s)
{
	unsigned char b[16];
	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

int
tg_acme_cached(struct tg_store *st, const char *crt_name, const char *key_name,
    const char *const *names, size_t nnames, X509 **leaf, struct tg_err *err)
{
	unsigned char *pem = NULL, *kpem = NULL;
	size_t len = 0, klen = 0, i;
	STACK_OF(X509) *sk = NULL;
	EVP_PKEY *k = NULL;
	BIO *b = NULL;
	X509 *x;
	int rv = -1;

	*leaf = NULL;
	if (tg_store_get(st, crt_name, &pem, &len, err) < 0 ||
	    tg_store_get(st, key_name, &kpem, &klen, err) < 0)
		goto out;
	if ((sk = tg_certs_parse(pem, len, crt_name, err)) == NULL)
		goto out;
	x = sk_X509_value(sk, 0);
	if ((b = BIO_new_mem_buf(kpem, (int)klen)) == NULL ||
	    (k = PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"")) == NULL) {
		tg_err_set(err, TG_E_PEM, "%s is not a private key", key_name);
		goto out;
	}
	if (X509_check_private_key(x, k) != 1) {
		tg_err_set(err, TG_E_KEY_MISMATCH, "%s does not match %s", key_name, crt_name);
		goto out;
	}
	for (i = 0; i < nnames; i++) {
		int ok = is_ip(names[i]) ? X509_check_ip_asc(x, names[i], 0) == 1 :
		    X509_check_host(x, names[i], 0, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL) == 1;
		if (!ok) {
			tg_err_set(err, TG_E_ACME, "%s does not name %s (tls.acme.names changed)",
			    crt_name, names[i]);
			goto out;
		}
	}
	if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
		char d[64];
		tg_asn1_date(X509_get0_notAfter(x), d, sizeof(d));
		tg_err_set(err, TG_E_CERT_EXPIRED, "%s expired on %s", crt_name, d);
		goto out;
	}
	*leaf = X509_dup(x);
	rv = *leaf ? 0 : tg_err_set(err, TG_E_INTERNAL, "out of memory");
out:
	ERR_clear_error();
	BIO_free(b);
	EVP_PKEY_free(k);
	sk_X509_pop_free(sk, X509_free);
	OPENSSL_free(pem);
	if (kpem)
		tg_free_secret(kpem, klen);
	return rv;
}

int
tg_acme_save(struct tg_store *st, const char *crt_name, const char *key_name,
    const struct tg_acme_result *res, struct tg_err *err)
{
	unsigned char *old = NULL;
	size_t old_len = 0;
	struct tg_err e2;
	int had_old;

	/* The key first, so a certificate never points at a key that is not
	 * there. If the certificate cannot be written (a full disk, EIO), the
	 * key written before it is put back the way it was, so the pair in
	 * the store stays the old, matching one; a crash between the two
	 * leaves a mismatch, which tg_acme_cached detects and a new order
	 * repairs. */
	had_old = tg_store_get(st, key_name, &old, &old_len, &e2) == 0;
	if (!had_old && e2.code != TG_E_NOT_FOUND)   /* it could not be put back */
		return tg_err_set(err, e2.code, "cannot read the current key before replacing it: %s",
		    e2.msg);
	if (tg_store_put(st, key_name, res->key_pem, res->key_len, TG_STORE_SECRET, err) < 0)
		goto fail;
	if (tg_store_put(st, crt_name, res->chain_pem, strlen(res->chain_pem), 0, err) < 0) {
		int undone = had_old ?
		    tg_store_put(st, key_name, old, old_len, TG_STORE_SECRET, &e2) == 0 :
		    tg_store_delete(st, key_name, &e2) == 0 || e2.code == TG_E_NOT_FOUND;
		if (!undone)
			snprintf(err->msg + strlen(err->msg), sizeof(err->msg) - strlen(err->msg),
			    "; the new key stays beside the old certificate (%s), and a new order "
			    "will replace both", e2.msg);
		goto fail;
	}
	tg_free_secret(old, old_len);
	return 0;
fail:
	tg_free_secret(old, old_len);
	return -1;
}
