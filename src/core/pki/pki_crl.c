/*
 * Revocation by the local CA, and CRLs for whoever checks peers.
 *
 * The CA folder keeps what it revoked in `revoked` (a line per serial:
 * "HEX UNIX-TIME REASON-CODE"), the next CRL number in `crlnumber`, and
 * the CRL itself as `crl.pem` and `crl.der` (the form HTTP clients fetch),
 * both signed from the list each time it changes and again before half of
 * its validity is gone (tg_crl_refresh). Writers take the CA's lock.
 *
 * Checking: tg_crl_load puts the CRLs of a file or folder into a trust
 * store; the TLS contexts then ask OpenSSL to check the leaf (tls.c).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "error.h"
#include "pki.h"
#include "store.h"
#include "util.h"

static const struct {
	const char *name;
	int code;
	const char *words;
} reasons[] = {
	{ "unspecified", 0, "unspecified" },
	{ "keyCompromise", 1, "key compromise" },
	{ "cACompromise", 2, "CA compromise" },
	{ "affiliationChanged", 3, "affiliation changed" },
	{ "superseded", 4, "superseded" },
	{ "cessationOfOperation", 5, "cessation of operation" },
	{ "privilegeWithdrawn", 9, "privilege withdrawn" },
};

int
tg_crl_reason_code(const char *name)
{
	size_t i, j, k;
	char a[64], b[64];

	/* keyCompromise, key-compromise, key_compromise, KEYCOMPROMISE */
	for (i = 0, k = 0; name[i] && k + 1 < sizeof(a); i++)
		if (name[i] != '-' && name[i] != '_')
			a[k++] = (char)tolower((unsigned char)name[i]);
	a[k] = '\0';
	for (j = 0; j < sizeof(reasons) / sizeof(reasons[0]); j++) {
		for (i = 0, k = 0; reasons[j].name[i]; i++)
			b[k++] = (char)tolower((unsigned char)reasons[j].name[i]);
		b[k] = '\0';
		if (!strcmp(a, b))
			return reasons[j].code;
	}
	return -1;
}

const char *
tg_crl_reason_words(int code)
{
	size_t j;

	for (j = 0; j < sizeof(reasons) / sizeof(reasons[0]); j++)
		if (reasons[j].code == code)
			return reasons[j].words;
	return "unspecified";
}

/* bn (freed here) as upper hex; -1 when it does not fit or is NULL. */
static int
bn_hex(BIGNUM *bn, char *out, size_t len)
{
	char *h = bn ? BN_bn2hex(bn) : NULL;
	int fits;

	BN_free(bn);
	if (h == NULL)
		return -1;
	fits = snprintf(out, len, "%s", h) < (int)len;
	OPENSSL_free(h);
	return fits ? 0 : -1;
}

/* "0A:1B..", "0x0a1b", "0a1b" -> "0A1B" (upper hex, no leading zeros). */
static int
serial_norm(const char *in, char *out, size_t len)
{
	BIGNUM *bn = NULL;
	char hex[256];
	size_t i, k = 0;

	if (!strncasecmp(in, "0x", 2))
		in += 2;
	for (i = 0; in[i] && k + 1 < sizeof(hex); i++) {
		if (in[i] == ':')
			continue;
		if (!isxdigit((unsigned char)in[i]))
			return -1;
		hex[k++] = in[i];
	}
	hex[k] = '\0';
	if (k == 0 || in[i] || BN_hex2bn(&bn, hex) == 0)
		return -1;
	return bn_hex(bn, out, len);
}

static int
serial_of(X509 *x, char *out, size_t len)
{
	return bn_hex(ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL), out, len);
}

/* The lines of `revoked`, as read; NULL with *n 0 when there is none. */
struct rev {
	char serial[130];
	long long when;
	int reason;
};

static struct rev *
read_revoked(const char *dir, size_t *n, struct tg_err *err)
{
	char p[PATH_MAX], line[256];
	struct rev *v = NULL, *nv;
	size_t cap = 0;
	FILE *f;

	*n = 0;
	if (tg_path_fmt(p, sizeof(p), err, "%s/revoked", dir) < 0)
		return NULL;
	if ((f = fopen(p, "r")) == NULL) {
		if (errno != ENOENT)
			tg_err_set(err, TG_E_IO, "%s: %s", p, strerror(errno));
		return NULL;
	}
	while (fgets(line, sizeof(line), f)) {
		struct rev r;
		char s[130];
		if (sscanf(line, "%129s %lld %d", s, &r.when, &r.reason) != 3 ||
		    serial_norm(s, r.serial, sizeof(r.serial)) < 0)
			continue;   /* a torn last line of a crash: skipped, the rest stands */
		if (*n == cap) {
			if ((nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v))) == NULL) {
				free(v);
				fclose(f);
				*n = 0;
				tg_err_set(err, TG_E_INTERNAL, "out of memory");
				return NULL;
			}
			v = nv;
		}
		v[(*n)++] = r;
	}
	fclose(f);
	return v;
}

static EVP_PKEY *
ca_signing_key(const struct tg_ca *ca)
{
	return ca->key;
}

/* The next CRL number (kept in crlnumber), RFC 5280 §5.2.3: increasing. */
static long long
next_number(const char *dir, struct tg_err *err)
{
	char p[PATH_MAX], buf[32];
	long long n = 1;
	FILE *f;

	if (tg_path_fmt(p, sizeof(p), err, "%s/crlnumber", dir) < 0)
		return -1;
	if ((f = fopen(p, "r")) != NULL) {
		if (fgets(buf, sizeof(buf), f))
			n = strtoll(buf, NULL, 10) + 1;
		fclose(f);
	}
	if (n < 1)
		n = 1;
	snprintf(buf, sizeof(buf), "%lld\n", n);
	if (tg_write_atomic(p, buf, strlen(buf), 0, err) < 0)
		return -1;
	return n;
}

static int
add_revoked(X509_CRL *crl, const struct rev *r)
{
	X509_REVOKED *x = X509_REVOKED_new();
	ASN1_TIME *t = ASN1_TIME_new();
	ASN1_ENUMERATED *e = ASN1_ENUMERATED_new();
	BIGNUM *bn = NULL;
	ASN1_INTEGER *sn = NULL;
	int ok = 0;

	if (x && t && e && BN_hex2bn(&bn, r->serial) > 0 && (sn = BN_to_ASN1_INTEGER(bn, NULL)) &&
	    X509_REVOKED_set_serialNumber(x, sn) == 1 && ASN1_TIME_set(t, (time_t)r->when) &&
	    X509_REVOKED_set_revocationDate(x, t) == 1 &&
	    (r->reason == 0 || (ASN1_ENUMERATED_set(e, r->reason) == 1 &&
	    X509_REVOKED_add1_ext_i2d(x, NID_crl_reason, e, 0, 0) == 1)) &&
	    X509_CRL_add0_revoked(crl, x) == 1) {
		ok = 1;
		x = NULL;   /* the CRL owns it */
	}
	X509_REVOKED_free(x);
	ASN1_TIME_free(t);
	ASN1_ENUMERATED_free(e);
	ASN1_INTEGER_free(sn);
	BN_free(bn);
	return ok ? 0 : -1;
}

/* Signs and writes the CRL from `revoked`; the CA's lock is held. */
static int
make_locked(const char *dir, const struct tg_ca *ca, int days, int *count, struct tg_err *err)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *last = ASN1_TIME_new(), *next = ASN1_TIME_new();
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	struct rev *v = NULL;
	size_t n = 0, i;
	long long number;
	char p[PATH_MAX];
	unsigned char *der = NULL;
	BIO *b = NULL;
	BUF_MEM *pem;
	X509V3_CTX xc;
	X509_EXTENSION *akid = NULL;
	int dl, rv = -1;
	time_t now = time(NULL);

	err->code = 0;
	v = read_revoked(dir, &n, err);
	if (v == NULL && err->code)
		goto out;
	if ((number = next_number(dir, err)) < 0)
		goto out;
	if (crl == NULL || last == NULL || next == NULL || num == NULL ||
	    X509_CRL_set_version(crl, X509_CRL_VERSION_2) != 1 ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cert)) != 1 ||
	    !ASN1_TIME_set(last, now - 300) || !ASN1_TIME_set(next, now + (time_t)days * 86400) ||
	    X509_CRL_set1_lastUpdate(crl, last) != 1 || X509_CRL_set1_nextUpdate(crl, next) != 1 ||
	    ASN1_INTEGER_set_int64(num, number) != 1 ||
	    X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0) != 1)
		goto ossl;
	X509V3_set_ctx(&xc, ca->cert, NULL, NULL, crl, 0);
	if ((akid = X509V3_EXT_conf_nid(NULL, &xc, NID_authority_key_identifier,
	    "keyid:always")) == NULL || X509_CRL_add_ext(crl, akid, -1) != 1)
		goto ossl;
	for (i = 0; i < n; i++)
		if (add_revoked(crl, &v[i]) < 0)
			goto ossl;
	if (X509_CRL_sort(crl) != 1 ||
	    X509_CRL_sign(crl, ca_signing_key(ca), tg_pki_digest_for(ca_signing_key(ca))) <= 0)
		goto ossl;
	if ((b = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_X509_CRL(b, crl) != 1)
		goto ossl;
	BIO_get_mem_ptr(b, &pem);
	if ((dl = i2d_X509_CRL(crl, &der)) <= 0)
		goto ossl;
	/* the DER first: a reader of crl.pem never finds it newer than crl.der */
	if (tg_path_fmt(p, sizeof(p), err, "%s/crl.der", dir) < 0 ||
	    tg_write_atomic(p, der, (size_t)dl, 0, err) < 0 ||
	    tg_path_fmt(p, sizeof(p), err, "%s/crl.pem", dir) < 0 ||
	    tg_write_atomic(p, pem->data, pem->length, 0, err) < 0)
		goto out;
	if (count)
		*count = (int)n;
	rv = 0;
	goto out;
ossl:
	tg_err_ossl(err, TG_E_PKI, "cannot make the CRL of %s", dir);
out:
	X509_EXTENSION_free(akid);
	BIO_free(b);
	OPENSSL_free(der);
	X509_CRL_free(crl);
	ASN1_TIME_free(last);
	ASN1_TIME_free(next);
	ASN1_INTEGER_free(num);
	free(v);
	return rv;
}

/* The CA loaded and its lock taken, for a write. */
static struct tg_store *
ca_open_locked(const char *dir, struct tg_ca *ca, struct tg_err *err)
{
	struct tg_store *st;

	if (tg_ca_load(dir, ca, err) < 0)
		return NULL;
	if ((st = tg_store_fs_open(dir, err)) == NULL) {
		tg_ca_clear(ca);
		return NULL;
	}
	if (tg_store_lock(st, "ca", 10000, err) < 0) {
		tg_store_free(st);
		tg_ca_clear(ca);
		return NULL;
	}
	return st;
}

static void
ca_close(struct tg_store *st, struct tg_ca *ca)
{
	tg_store_unlock(st, "ca");
	tg_store_free(st);
	tg_ca_clear(ca);
}

int
tg_crl_make(const char *dir, int days, int *count, struct tg_err *err)
{
	struct tg_ca ca;
	struct tg_store *st = ca_open_locked(dir, &ca, err);
	int rv;

	if (st == NULL)
		return -1;
	rv = make_locked(dir, &ca, days > 0 ? days : TG_CRL_DAYS, count, err);
	ca_close(st, &ca);
	return rv;
}

/* A serial from a certificate file (which this CA must have issued) or
 * from hex. */
static int
target_serial(const char *what, const struct tg_ca *ca, char *serial, size_t len,
    struct tg_err *err)
{
	STACK_OF(X509) *sk;
	struct stat sb;
	X509 *x;
	int ok;

	if (stat(what, &sb) != 0) {
		if (serial_norm(what, serial, len) < 0)
			return tg_err_set(err, TG_E_USAGE, "'%s' is neither a certificate file nor a "
			    "serial number in hex (tlsgate cert show FILE prints it)", what);
		return 0;
	}
	if ((sk = tg_certs_read(what, err)) == NULL)
		return -1;
	x = sk_X509_value(sk, 0);
	ok = X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(ca->cert)) == 0 &&
	    X509_verify(x, X509_get0_pubkey(ca->cert)) == 1;
	ERR_clear_error();
	if (ok)
		ok = serial_of(x, serial, len) == 0;
	sk_X509_pop_free(sk, X509_free);
	if (!ok)
		return tg_err_set(err, TG_E_USAGE, "%s was not issued by this CA: only the CA that "
		    "signed a certificate can revoke it", what);
	return 0;
}

int
tg_ca_revoke(const char *dir, const char *what, int reason, char *serial, size_t slen,
    int *count, struct tg_err *err)
{
	struct tg_ca ca;
	struct tg_store *st;
	struct rev *v = NULL;
	size_t n = 0, i;
	char p[PATH_MAX], line[200];
	unsigned char *old = NULL, *buf = NULL;
	size_t olen = 0;
	int rv = -1;

	if ((st = ca_open_locked(dir, &ca, err)) == NULL)
		return -1;
	if (target_serial(what, &ca, serial, slen, err) < 0)
		goto out;
	err->code = 0;
	v = read_revoked(dir, &n, err);
	if (v == NULL && err->code)
		goto out;
	for (i = 0; i < n; i++) {
		if (!strcmp(v[i].serial, serial)) {
			/* signed again all the same: a CRL that a failed write left
			 * behind the list gets it now */
			if (make_locked(dir, &ca, TG_CRL_DAYS, count, err) == 0)
				tg_err_set(err, TG_E_EXISTS, "serial %s was already revoked (%s); the "
				    "CRL, signed again, lists it", serial,
				    tg_crl_reason_words(v[i].reason));
			goto out;
		}
	}
	/* the list grows by one line, written whole (a copy, then a rename) */
	if (tg_path_fmt(p, sizeof(p), err, "%s/revoked", dir) < 0)
		goto out;
	if (tg_read_file(p, &old, &olen, 64 << 20, err) < 0) {
		if (err->code != TG_E_NOT_FOUND)
			goto out;
		old = NULL, olen = 0;
	}
	snprintf(line, sizeof(line), "%s %lld %d\n", serial, (long long)time(NULL), reason);
	if ((buf = malloc(olen + strlen(line))) == NULL) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		goto out;
	}
	if (olen)
		memcpy(buf, old, olen);
	memcpy(buf + olen, line, strlen(line));
	if (tg_write_atomic(p, buf, olen + strlen(line), 0, err) < 0)
		goto out;
	rv = make_locked(dir, &ca, TG_CRL_DAYS, count, err);
out:
	OPENSSL_free(old);
	free(buf);
	free(v);
	ca_close(st, &ca);
	return rv;
}

/* When the CRL should be signed again: half its validity gone, or none. */
int
tg_crl_refresh(const char *dir, struct tg_err *err)
{
	char p[PATH_MAX];
	X509_CRL *crl = NULL;
	FILE *f;
	int due = 1;

	if (tg_path_fmt(p, sizeof(p), err, "%s/crl.pem", dir) < 0)
		return -1;
	if ((f = fopen(p, "r")) != NULL) {
		crl = PEM_read_X509_CRL(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (crl && X509_CRL_get0_nextUpdate(crl)) {
		int day, sec, dl, dsl;
		/* due when less than half of lastUpdate..nextUpdate is left */
		if (ASN1_TIME_diff(&day, &sec, NULL, X509_CRL_get0_nextUpdate(crl)) == 1 &&
		    ASN1_TIME_diff(&dl, &dsl, X509_CRL_get0_lastUpdate(crl),
		    X509_CRL_get0_nextUpdate(crl)) == 1)
			due = (long long)day * 86400 + sec < ((long long)dl * 86400 + dsl) / 2;
	}
	X509_CRL_free(crl);
	ERR_clear_error();
	if (!due)
		return 0;
	return tg_crl_make(dir, TG_CRL_DAYS, NULL, err) < 0 ? -1 : 1;
}

/* ---- checking ------------------------------------------------------------------------ */

static int
load_file(X509_STORE *st, const char *path, int *count, struct tg_err *err)
{
	unsigned char *data = NULL;
	size_t len = 0;
	const unsigned char *q;
	X509_CRL *crl;
	BIO *b;
	int n = 0;

	if (tg_read_file(path, &data, &len, 64 << 20, err) < 0)
		return -1;
	if ((b = BIO_new_mem_buf(data, (int)len)) == NULL) {
		OPENSSL_free(data);
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	}
	ERR_clear_error();
	while ((crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL) {
		X509_STORE_add_crl(st, crl);
		X509_CRL_free(crl);
		n++;
	}
	BIO_free(b);
	/* the loop ends at the end of the text, or at a block it cannot read:
	 * a CRL dropped from the middle of a bundle would go unenforced */
	if (n > 0 && !(ERR_GET_LIB(ERR_peek_last_error()) == ERR_LIB_PEM &&
	    ERR_GET_REASON(ERR_peek_last_error()) == PEM_R_NO_START_LINE)) {
		ERR_clear_error();
		OPENSSL_free(data);
		return tg_err_set(err, TG_E_PKI, "%s: CRL number %d cannot be read (a damaged or "
		    "cut PEM block)", path, n + 1);
	}
	ERR_clear_error();
	if (n == 0) {   /* DER, as CAs publish them over HTTP */
		q = data;
		if ((crl = d2i_X509_CRL(NULL, &q, (long)len)) != NULL) {
			X509_STORE_add_crl(st, crl);
			X509_CRL_free(crl);
			n = 1;
		}
		ERR_clear_error();
	}
	OPENSSL_free(data);
	if (n == 0)
		return tg_err_set(err, TG_E_PKI, "%s holds no CRL (PEM or DER)", path);
	*count += n;
	return 0;
}

int
tg_crl_load(X509_STORE *st, const char *path, struct tg_err *err)
{
	struct stat sb;
	DIR *d;
	struct dirent *e;
	int count = 0;

	if (stat(path, &sb) != 0)
		return tg_err_set(err, TG_E_NOT_FOUND, "%s: %s", path, strerror(errno));
	if (!S_ISDIR(sb.st_mode)) {
		if (load_file(st, path, &count, err) < 0)
			return -1;
	} else {
		if ((d = opendir(path)) == NULL)
			return tg_err_set(err, TG_E_IO, "%s: %s", path, strerror(errno));
		while ((e = readdir(d)) != NULL) {
			char p[PATH_MAX];
			size_t l = strlen(e->d_name);
			if (l < 5 || (strcmp(e->d_name + l - 4, ".pem") && strcmp(e->d_name + l - 4, ".crl") &&
			    strcmp(e->d_name + l - 4, ".der")))
				continue;
			if (tg_path_fmt(p, sizeof(p), err, "%s/%s", path, e->d_name) < 0 ||
			    load_file(st, p, &count, err) < 0) {
				closedir(d);
				return -1;
			}
		}
		closedir(d);
		if (count == 0)
			return tg_err_set(err, TG_E_PKI, "%s holds no CRL (*.pem, *.crl, *.der)", path);
	}
	return count;
}
