/*
 * Revocation by the local CA, and CRLs for whoever checks peers.
 *
 * A cluster's CA (state_dir/ca with store.backend etcd) keeps the same
 * names in the cluster's store under "ca/", under the store's lock "ca";
 * each node's follower copies them into its folder (see struct crl_at).
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
#include <unistd.h>

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

/* Where a CA's revocation state lives: its folder, or, for a cluster's CA
 * (state_dir/ca with store.backend etcd), the cluster's store under "ca/".
 * There every write goes to etcd first and then into this node's folder;
 * the other nodes' followers copy it into theirs, so every node serves the
 * same CRL, numbered in one sequence, whichever node revoked. */
struct crl_at {
	struct tg_store *st;
	const char *pfx;   /* "" (the folder) or "ca/" (the cluster's store) */
};

/* Is dir the cluster's CA folder, state_dir/ca? Compared as real paths:
 * the CLI may name it relative to the working folder. */
static int
cluster_ca_dir(const struct tg_store_conf *sc, const char *dir)
{
	char a[PATH_MAX], b[PATH_MAX], c[PATH_MAX + 4];

	if (sc == NULL || !sc->etcd || realpath(dir, a) == NULL)
		return 0;
	/* state_dir/ca resolved too: either may be a symbolic link */
	if (snprintf(c, sizeof(c), "%s/ca", sc->state_dir) >= (int)sizeof(c) ||
	    realpath(c, b) == NULL)
		return 0;
	return strcmp(a, b) == 0;
}

static int
at_open(const char *dir, const struct tg_store_conf *sc, struct crl_at *at, struct tg_err *err)
{
	if (cluster_ca_dir(sc, dir)) {
		at->pfx = "ca/";
		at->st = tg_store_open_conf(sc, 1, err);
	} else {
		at->pfx = "";
		at->st = tg_store_fs_open(dir, err);
	}
	return at->st ? 0 : -1;
}

static int
at_get(const struct crl_at *at, const char *name, unsigned char **out, size_t *len,
    struct tg_err *err)
{
	char k[64];

	snprintf(k, sizeof(k), "%s%s", at->pfx, name);
	return tg_store_get(at->st, k, out, len, err);
}

static int
at_put(const struct crl_at *at, const char *name, const void *data, size_t len,
    struct tg_err *err)
{
	char k[64];

	snprintf(k, sizeof(k), "%s%s", at->pfx, name);
	return tg_store_put(at->st, k, data, len, 0, err);
}

/* The lines of `revoked`, as read; NULL with *n 0 when there is none. */
struct rev {
	char serial[130];
	long long when;
	int reason;
};

static struct rev *
read_revoked(const struct crl_at *at, size_t *n, struct tg_err *err)
{
	unsigned char *buf = NULL;
	char *line, *next;
	struct rev *v = NULL, *nv;
	size_t cap = 0, len = 0;

	*n = 0;
	err->code = 0;
	if (at_get(at, "revoked", &buf, &len, err) < 0) {
		if (err->code == TG_E_NOT_FOUND)
			err->code = 0;
		return NULL;
	}
	for (line = (char *)buf; line < (char *)buf + len; line = next) {
		struct rev r;
		char s[130], *nl = memchr(line, '\n', (size_t)((char *)buf + len - line));

		/* a line at a time within len: a NUL in one damaged line ends
		 * that line, not the list */
		next = nl ? nl + 1 : (char *)buf + len;
		if (nl)
			*nl = '\0';
		if (sscanf(line, "%129s %lld %d", s, &r.when, &r.reason) != 3 ||
		    serial_norm(s, r.serial, sizeof(r.serial)) < 0)
			continue;   /* a torn last line of a crash: skipped, the rest stands */
		if (*n == cap) {
			if ((nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v))) == NULL) {
				free(v);
				OPENSSL_free(buf);
				*n = 0;
				tg_err_set(err, TG_E_INTERNAL, "out of memory");
				return NULL;
			}
			v = nv;
		}
		v[(*n)++] = r;
	}
	OPENSSL_free(buf);
	return v;
}

static EVP_PKEY *
ca_signing_key(const struct tg_ca *ca)
{
	return ca->key;
}

/* The next CRL number (kept in crlnumber), RFC 5280 §5.2.3: increasing. */
static long long
next_number(const struct crl_at *at, struct tg_err *err)
{
	unsigned char *old = NULL;
	size_t olen = 0;
	char buf[32];
	long long n = 1;

	if (at_get(at, "crlnumber", &old, &olen, err) == 0)
		n = strtoll((char *)old, NULL, 10) + 1;
	else if (err->code != TG_E_NOT_FOUND)
		return -1;   /* the store did not answer: never a number used twice */
	OPENSSL_free(old);
	if (n < 1)
		n = 1;
	snprintf(buf, sizeof(buf), "%lld\n", n);
	if (at_put(at, "crlnumber", buf, strlen(buf), err) < 0)
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
make_locked(const struct crl_at *at, const char *dir, const struct tg_ca *ca, int days,
    int *count, struct tg_err *err)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *last = ASN1_TIME_new(), *next = ASN1_TIME_new();
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	struct rev *v = NULL;
	size_t n = 0, i;
	long long number;
	unsigned char *der = NULL;
	BIO *b = NULL;
	BUF_MEM *pem;
	X509V3_CTX xc;
	X509_EXTENSION *akid = NULL;
	int dl, rv = -1;
	time_t now = time(NULL);

	v = read_revoked(at, &n, err);
	if (v == NULL && err->code)
		goto out;
	if ((number = next_number(at, err)) < 0)
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
	if (at_put(at, "crl.der", der, (size_t)dl, err) < 0 ||
	    at_put(at, "crl.pem", pem->data, pem->length, err) < 0)
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

/* A CA folder that kept its revocations before its node joined a cluster
 * brings them in with the cluster's first CRL (under the CA's lock): while
 * the store has no CRL number yet, the folder's list, number and CRL URL
 * are copied in, so no revoked certificate comes back and the number never
 * goes down. Only when the folder's CRL was signed by this CA: a node
 * whose own CA the cluster's replaced keeps the old CA's list (and URL)
 * out. Once the store has a number, the store alone is the truth (nothing
 * a folder holds comes back after an operator changed the store). */
static int
seed_from_folder(const struct crl_at *at, const char *dir, const struct tg_ca *ca,
    struct tg_err *err)
{
	static const char *const names[] = { "revoked", "crl-url", "crlnumber" };
	struct crl_at mine = { NULL, "" };
	unsigned char *v = NULL;
	size_t vl = 0, n = 0, i;
	struct rev *lr = NULL;
	X509_CRL *crl = NULL;
	BIO *b;
	int rv = -1;

	if (!at->pfx[0])
		return 0;
	if (at_get(at, "crlnumber", &v, &vl, err) == 0) {
		OPENSSL_free(v);
		return 0;   /* the cluster has its CRL */
	}
	if (err->code != TG_E_NOT_FOUND)
		return -1;   /* the store did not answer: nothing decided on a guess */
	v = NULL;
	if ((mine.st = tg_store_fs_open(dir, err)) == NULL)
		return -1;
	lr = read_revoked(&mine, &n, err);
	if (lr == NULL && err->code)
		goto out;
	if (at_get(&mine, "crl.pem", &v, &vl, err) == 0) {
		if ((b = BIO_new_mem_buf(v, (int)vl)) != NULL) {
			crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
			BIO_free(b);
		}
	} else if (err->code != TG_E_NOT_FOUND) {
		goto out;
	}
	OPENSSL_free(v);
	v = NULL;
	if (crl == NULL && n > 0) {
		/* a list and no readable CRL to say whose it is: never dropped
		 * without a word, never taken on a guess */
		ERR_clear_error();
		tg_err_set(err, TG_E_PKI, "%s lists %zu revoked certificates but has no readable "
		    "crl.pem to show they are this CA's: sign it without the cluster (tlsgate ca crl "
		    "--dir %s, no store settings) or remove %s/revoked; nothing was changed", dir, n,
		    dir, dir);
		goto out;
	}
	if (crl == NULL || X509_CRL_verify(crl, X509_get0_pubkey(ca->cert)) != 1) {
		ERR_clear_error();
		rv = 0;   /* nothing of this CA's in the folder (another CA's, or none) */
		goto out;
	}
	if (n > TG_CRL_CLUSTER_MAX) {
		tg_err_set(err, TG_E_USAGE, "%s lists %zu revoked certificates, more than a "
		    "cluster's CA can (%d: its CRL is one etcd value); nothing was changed: raise "
		    "etcd's --max-request-bytes and keep this CA out of the cluster, or start a new "
		    "CA for the fleet", dir, n, TG_CRL_CLUSTER_MAX);
		goto out;
	}
	/* the number last: a failure half-way leaves the store without one,
	 * and the next write seeds again */
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (at_get(&mine, names[i], &v, &vl, err) == 0) {
			if (at_put(at, names[i], v, vl, err) < 0)
				goto out;
		} else if (err->code != TG_E_NOT_FOUND) {
			goto out;
		}
		OPENSSL_free(v);
		v = NULL;
	}
	/* a number, whatever the folder had: the seeding happens once */
	if (at_get(at, "crlnumber", &v, &vl, err) < 0) {
		if (err->code != TG_E_NOT_FOUND || at_put(at, "crlnumber", "0\n", 2, err) < 0)
			goto out;
	}
	rv = 0;
out:
	if (rv == 0)
		err->code = 0;
	X509_CRL_free(crl);
	OPENSSL_free(v);
	free(lr);
	tg_store_free(mine.st);
	return rv;
}

/* The CA loaded and its lock taken, for a write: the folder's, or the
 * cluster's (an etcd lease; writes under it are fenced), waiting at most
 * wait_ms (0: 10 s) for it. */
static int
ca_open_locked(const char *dir, const struct tg_store_conf *sc, struct tg_ca *ca,
    struct crl_at *at, int wait_ms, struct tg_err *err)
{
	if (tg_ca_load(dir, ca, err) < 0)
		return -1;
	if (at_open(dir, sc, at, err) < 0) {
		tg_ca_clear(ca);
		return -1;
	}
	if (tg_store_lock(at->st, "ca", wait_ms > 0 ? wait_ms : 10000, err) < 0) {
		if (at->pfx[0]) {   /* the cluster's store */
			char m[sizeof(err->msg)];
			snprintf(m, sizeof(m), "%s", err->msg);
			tg_err_set(err, err->code, "the CA's lock in the cluster's store: %s; nothing "
			    "was changed", m);
		}
		tg_store_free(at->st);
		tg_ca_clear(ca);
		return -1;
	}
	if (seed_from_folder(at, dir, ca, err) < 0) {
		tg_store_unlock(at->st, "ca");
		tg_store_free(at->st);
		tg_ca_clear(ca);
		return -1;
	}
	return 0;
}

static void
ca_close(struct crl_at *at, struct tg_ca *ca)
{
	tg_store_unlock(at->st, "ca");
	tg_store_free(at->st);
	tg_ca_clear(ca);
}

int
tg_crl_make(const char *dir, const struct tg_store_conf *sc, int days, int *count,
    struct tg_err *err)
{
	struct tg_ca ca;
	struct crl_at at;
	int rv;

	if (ca_open_locked(dir, sc, &ca, &at, 0, err) < 0)
		return -1;
	rv = make_locked(&at, dir, &ca, days > 0 ? days : TG_CRL_DAYS, count, err);
	ca_close(&at, &ca);
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
tg_ca_revoke(const char *dir, const struct tg_store_conf *sc, const char *what, int reason,
    int wait_ms, char *serial, size_t slen, int *count, struct tg_err *err)
{
	struct tg_ca ca;
	struct crl_at at;
	struct rev *v = NULL;
	size_t n = 0, i;
	char line[200];
	unsigned char *old = NULL, *buf = NULL;
	size_t olen = 0;
	int rv = -1;

	if (ca_open_locked(dir, sc, &ca, &at, wait_ms, err) < 0)
		return -1;
	if (target_serial(what, &ca, serial, slen, err) < 0)
		goto out;
	v = read_revoked(&at, &n, err);
	if (v == NULL && err->code)
		goto out;
	for (i = 0; i < n; i++) {
		if (!strcmp(v[i].serial, serial)) {
			/* signed again all the same: a CRL that a failed write left
			 * behind the list gets it now */
			if (make_locked(&at, dir, &ca, TG_CRL_DAYS, count, err) == 0)
				tg_err_set(err, TG_E_EXISTS, "serial %s was already revoked (%s); the "
				    "CRL, signed again, lists it", serial,
				    tg_crl_reason_words(v[i].reason));
			goto out;
		}
	}
	/* in etcd the CRL is one value: about 100 bytes an entry as PEM in a
	 * JSON request, under etcd's default limit of 1.5 MiB per request */
	if (at.pfx[0] && n >= TG_CRL_CLUSTER_MAX) {
		tg_err_set(err, TG_E_USAGE, "the cluster's CA lists %zu revoked certificates: its "
		    "CRL would outgrow etcd's request limit (1.5 MiB); nothing was revoked (start "
		    "a new CA for the fleet, or raise etcd's --max-request-bytes)", n);
		goto out;
	}
	/* the list grows by one line, written whole (a copy, then a rename;
	 * in a cluster, one value in etcd) */
	if (at_get(&at, "revoked", &old, &olen, err) < 0) {
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
	if (at_put(&at, "revoked", buf, olen + strlen(line), err) < 0)
		goto out;
	if ((rv = make_locked(&at, dir, &ca, TG_CRL_DAYS, count, err)) < 0) {
		/* listed, not yet signed: the next revocation or refresh signs it
		 * (a code of its own: "nothing was revoked" would be untrue) */
		char m[sizeof(err->msg)];
		snprintf(m, sizeof(m), "%s", err->msg);
		tg_err_set(err, TG_E_IO, "serial %s is listed as revoked, but its CRL could not be "
		    "signed: %s; `tlsgate ca crl` (or the next revocation) signs it", serial, m);
	}
out:
	OPENSSL_free(old);
	free(buf);
	free(v);
	ca_close(&at, &ca);
	return rv;
}

/* Is the CRL due to be signed again: less than half of its validity left,
 * or none (or none readable)? */
static int
crl_due(const struct crl_at *at)
{
	unsigned char *pem = NULL;
	size_t len = 0;
	X509_CRL *crl = NULL;
	struct tg_err e2;
	BIO *b;
	int due = 1;

	if (at_get(at, "crl.pem", &pem, &len, &e2) == 0 &&
	    (b = BIO_new_mem_buf(pem, (int)len)) != NULL) {
		crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
		BIO_free(b);
	}
	OPENSSL_free(pem);
	if (crl && X509_CRL_get0_nextUpdate(crl)) {
		int day, sec, dl, dsl;
		if (ASN1_TIME_diff(&day, &sec, NULL, X509_CRL_get0_nextUpdate(crl)) == 1 &&
		    ASN1_TIME_diff(&dl, &dsl, X509_CRL_get0_lastUpdate(crl),
		    X509_CRL_get0_nextUpdate(crl)) == 1)
			due = (long long)day * 86400 + sec < ((long long)dl * 86400 + dsl) / 2;
	}
	X509_CRL_free(crl);
	ERR_clear_error();
	return due;
}

/* When the CRL should be signed again. In a cluster every node asks; the
 * first to take the lock signs, the others find it current under the lock
 * (so one number per refresh, not one per node). */
int
tg_crl_refresh(const char *dir, const struct tg_store_conf *sc, struct tg_err *err)
{
	struct tg_ca ca;
	struct crl_at at;
	int rv = 0;

	if (at_open(dir, sc, &at, err) < 0)
		return -1;
	rv = crl_due(&at);
	tg_store_free(at.st);
	if (rv == 0)
		return 0;
	if (ca_open_locked(dir, sc, &ca, &at, 0, err) < 0)
		return -1;
	if ((rv = crl_due(&at)) != 0)
		rv = make_locked(&at, dir, &ca, TG_CRL_DAYS, NULL, err) < 0 ? -1 : 1;
	ca_close(&at, &ca);
	return rv;
}

int
tg_ca_set_crl_url(const char *dir, const struct tg_store_conf *sc, const char *url,
    struct tg_err *err)
{
	struct tg_ca ca;
	struct crl_at at;
	char line[600];
	int rv;

	if (snprintf(line, sizeof(line), "%s\n", url) >= (int)sizeof(line))
		return tg_err_set(err, TG_E_USAGE, "the CRL's URL is too long (at most 500 characters)");
	/* the CA must be there (never a folder made for a mistyped name), and
	 * its lock held, as for every other write of its revocation state */
	if (ca_open_locked(dir, sc, &ca, &at, 0, err) < 0)
		return -1;
	rv = at_put(&at, "crl-url", line, strlen(line), err);
	ca_close(&at, &ca);
	return rv;
}

int
tg_ca_revoked(const char *dir, const char *serial, long long *when, int *reason,
    struct tg_err *err)
{
	struct crl_at at;
	struct rev *v;
	char want[130];
	size_t n = 0, i;
	int rv = 0;

	if (serial_norm(serial, want, sizeof(want)) < 0)
		return tg_err_set(err, TG_E_USAGE, "'%s' is not a serial number in hex", serial);
	if (at_open(dir, NULL, &at, err) < 0)   /* the folder: this node's copy */
		return -1;
	v = read_revoked(&at, &n, err);
	if (v == NULL && err->code)
		rv = -1;
	for (i = 0; i < n && rv == 0; i++) {
		if (!strcmp(v[i].serial, want)) {
			if (when)
				*when = v[i].when;
			if (reason)
				*reason = v[i].reason;
			rv = 1;
		}
	}
	free(v);
	tg_store_free(at.st);
	return rv;
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
