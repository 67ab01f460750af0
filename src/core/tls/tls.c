/*
 * Building OpenSSL contexts for both directions from tlsgate settings, and
 * keeping the reason a peer's certificate failed so it can be told in
 * words. The verify callback never changes OpenSSL's verdict: it only
 * records the first failure (fail closed).
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "chain_cache.h"
#include "sess_cache.h"
#include "error.h"
#include "ossl_words.h"
#include "pki.h"
#include "tls.h"
#include "util.h"

/* ECDHE + AEAD only; AES-128-GCM first (cheapest with AES-NI). */
#define TG_CIPHERS_12 "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TG_SUITES_13 "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:" \
	"TLS_CHACHA20_POLY1305_SHA256"

static int refusal_idx = -1, verdict_idx = -1, cache_idx = -1, trust_idx = -1, note_idx = -1;
static int crl_mode_idx = -1, revoked_idx = -1;
enum { CRL_OFF, CRL_HARD, CRL_SOFT };
static int leaf_crl_check(SSL_CTX *ctx, X509 *leaf, char *words, size_t len);
static void revoked_words(X509 *cert, X509_REVOKED *rev, char *buf, size_t len);
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
refusal_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	free(ptr);
}

static void
cache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	tg_chain_cache_free(ptr);
}

/* A server context holds a reference to the trust object its callbacks
 * judge with: a reload drops the server's reference, and the object goes
 * when the last connection of the old context does. */
static void
trust_unref(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	tg_trust_free(ptr);
}

static void
init_once(void)
{
	cache_idx = SSL_CTX_get_ex_new_index(0, "tlsgate chain cache", NULL, NULL, cache_free);
	trust_idx = SSL_CTX_get_ex_new_index(0, "tlsgate trust", NULL, NULL, trust_unref);
	crl_mode_idx = SSL_CTX_get_ex_new_index(0, "tlsgate crl policy", NULL, NULL, NULL);
	refusal_idx = SSL_get_ex_new_index(0, "tlsgate refusal", NULL, NULL, refusal_free);
	verdict_idx = SSL_get_ex_new_index(0, "tlsgate verdict", NULL, NULL, refusal_free);
	note_idx = SSL_get_ex_new_index(0, "tlsgate note", NULL, NULL, refusal_free);
	revoked_idx = SSL_get_ex_new_index(0, "tlsgate revoked", NULL, NULL, NULL);
}

void
tg_tls_note(SSL *ssl, const char *fmt, ...)
{
	char buf[600], *copy;
	va_list ap;

	if (tg_tls_init() < 0 || SSL_get_ex_data(ssl, note_idx) != NULL)
		return;   /* the first reason is the one */
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if ((copy = strdup(buf)) != NULL && !SSL_set_ex_data(ssl, note_idx, copy))
		free(copy);
}

const char *
tg_tls_noted(SSL *ssl)
{
	const char *n = note_idx >= 0 ? SSL_get_ex_data(ssl, note_idx) : NULL;

	return n ? n : "";
}

int
tg_tls_init(void)
{
	pthread_once(&once, init_once);
	return refusal_idx < 0 || verdict_idx < 0 || cache_idx < 0 || trust_idx < 0 ? -1 : 0;
}

struct tg_trust *
tg_tls_trust(SSL *ssl)
{
	return SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), trust_idx);
}

/* Replaces the kept reason (ex_data does not free what it overwrites). */
static void
set_refusal(SSL *ssl, const char *text)
{
	char *old = SSL_get_ex_data(ssl, refusal_idx), *copy = text ? strdup(text) : NULL;

	if (SSL_set_ex_data(ssl, refusal_idx, copy))
		free(old);
	else
		free(copy);
}

const struct tg_trust_verdict *
tg_tls_verdict(SSL *ssl)
{
	return SSL_get_ex_data(ssl, verdict_idx);
}

/*
 * The server's whole certificate check (SSL_CTX_set_cert_verify_callback):
 * OpenSSL's chain verification runs first, so its verdict and reason are
 * the input of the trust engine, which decides in every mode. Deciding here,
 * inside the handshake, means a refused client gets a TLS alert instead of
 * a connection that is dropped later.
 */
/* OpenSSL's chain check, skipped for a chain this context verified before
 * (see chain_cache.h): returning clients do not pay for path building. */
static int
verify_chain(X509_STORE_CTX *xs, SSL *ssl, X509 *leaf)
{
	struct tg_chain_cache *cc = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), cache_idx);
	unsigned char key[TG_CHAIN_KEY_LEN];
	int keyed, ok;

	keyed = cc && tg_chain_cache_key(leaf, X509_STORE_CTX_get0_untrusted(xs), key) == 0;
	if (keyed && tg_chain_cache_hit(cc, key, time(NULL))) {
		X509_STORE_CTX_set_error(xs, X509_V_OK);
		return 1;
	}
	ok = X509_verify_cert(xs) == 1;
	if (ok && keyed)
		tg_chain_cache_put(cc, key, X509_STORE_CTX_get0_chain(xs), time(NULL));
	return ok;
}

static int
server_verify(X509_STORE_CTX *xs, void *arg)
{
	struct tg_trust *t = arg;
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);
	struct tg_trust_verdict *v = calloc(1, sizeof(*v)), *old;
	char id[320], cw[600];
	struct tg_err err;
	int chain_ok;

	if (v == NULL || ssl == NULL || leaf == NULL) {
		free(v);
		return 0;
	}
	chain_ok = verify_chain(xs, ssl, leaf);
	/* the CRLs decide in every mode, even where the chain check stopped
	 * before them or a cached chain skipped it */
	if (leaf_crl_check(SSL_get_SSL_CTX(ssl), leaf, cw, sizeof(cw)) < 0) {
		set_refusal(ssl, cw);
		SSL_set_ex_data(ssl, revoked_idx, (void *)1);
	}
	tg_trust_client_identity(leaf, id, sizeof(id));
	if (SSL_get_ex_data(ssl, revoked_idx)) {
		/* revoked by its CA: no mode lets it in, not even a pin */
		snprintf(v->identity, sizeof(v->identity), "%s", id);
		snprintf(v->reason, sizeof(v->reason), "%s", tg_tls_refusal(ssl));
	} else if (tg_trust_judge(t, leaf, id, chain_ok, tg_tls_refusal(ssl), v, &err) < 0) {
		v->accept = 0;
		snprintf(v->reason, sizeof(v->reason), "%s", err.msg);
	}
	if (v->accept)
		tg_trust_allowed(t, leaf, v);
	old = SSL_get_ex_data(ssl, verdict_idx);
	if (SSL_set_ex_data(ssl, verdict_idx, v))
		free(old);
	else
		free(v), v = NULL;
	if (v == NULL || !v->accept) {
		set_refusal(ssl, v ? v->reason : "out of memory");
		X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	set_refusal(ssl, NULL);
	X509_STORE_CTX_set_error(xs, X509_V_OK);
	return 1;
}

/* A session coming back to a mutual context: the certificate it carries is
 * judged again (a client removed from the known file since must not come
 * back on it); 0 means a full handshake, where the refusal is told. */
static int
judge_session(SSL *ssl, SSL_SESSION *ss, void *arg)
{
	struct tg_trust *t = arg;
	X509 *peer = SSL_SESSION_get0_peer(ss);
	struct tg_trust_verdict *v, *old;
	struct tg_err err;
	char id[320], cw[600];

	if (peer == NULL || X509_cmp_current_time(X509_get0_notAfter(peer)) <= 0 ||
	    leaf_crl_check(SSL_get_SSL_CTX(ssl), peer, cw, sizeof(cw)) < 0 ||
	    (v = calloc(1, sizeof(*v))) == NULL)
		return 0;   /* a full handshake then, which refuses in words */
	tg_trust_client_identity(peer, id, sizeof(id));
	if (tg_trust_judge(t, peer, id, 1, "", v, &err) == 0 && v->accept)
		tg_trust_allowed(t, peer, v);   /* the allow-list may still say no */
	if (!v->accept) {
		free(v);
		return 0;
	}
	old = SSL_get_ex_data(ssl, verdict_idx);
	if (SSL_set_ex_data(ssl, verdict_idx, v))
		free(old);
	else
		free(v);
	return 1;
}

/* The same for a stateless ticket (several workers share the ticket keys). */
static SSL_TICKET_RETURN
mutual_resume(SSL *ssl, SSL_SESSION *ss, const unsigned char *name, size_t name_len,
    SSL_TICKET_STATUS status, void *arg)
{
	if (status == SSL_TICKET_EMPTY || status == SSL_TICKET_NO_DECRYPT)
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	if (status != SSL_TICKET_SUCCESS && status != SSL_TICKET_SUCCESS_RENEW)
		return SSL_TICKET_RETURN_ABORT;
	if (!judge_session(ssl, ss, arg))
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	return status == SSL_TICKET_SUCCESS ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_USE_RENEW;
}

int
tg_tls_ktls_available(void)
{
	static int known = -1;
	char line[256] = "";
	FILE *f;

	if (known >= 0)
		return known;
	known = 0;
	if ((f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r")) != NULL) {
		if (fgets(line, sizeof(line), f) != NULL) {
			char *w, *save = NULL;
			for (w = strtok_r(line, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
				if (!strcmp(w, "tls"))
					known = 1;
		}
		fclose(f);
	}
	return known;
}

const char *
tg_tls_refusal(SSL *ssl)
{
	const char *r = SSL_get_ex_data(ssl, refusal_idx);
	return r ? r : "";
}

static int
crl_mode(SSL_CTX *ctx)
{
	return crl_mode_idx >= 0 ? (int)(intptr_t)SSL_CTX_get_ex_data(ctx, crl_mode_idx) : CRL_OFF;
}

/*
 * The leaf against the CRLs of its issuer in ctx's store, apart from
 * OpenSSL's verification, which stops at the first error of the chain and
 * so never reaches the CRL in the pinning modes (a pinned self-signed or
 * misnamed certificate). Only ever a reason to refuse: no CRL signature is
 * needed for that (the CRLs are the operator's files). 0 when it may
 * pass; -1 with words when revoked, or, with the hard policy, when no
 * current CRL of its issuer is there.
 */
static int
leaf_crl_check(SSL_CTX *ctx, X509 *leaf, char *words, size_t len)
{
	int mode = crl_mode(ctx), i, current = 0, rv = 0;
	X509_STORE_CTX *xs;
	STACK_OF(X509_CRL) *crls = NULL;
	char label[256], issuer[256];

	if (mode == CRL_OFF || leaf == NULL)
		return 0;
	if ((xs = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(xs, SSL_CTX_get_cert_store(ctx), leaf, NULL) != 1) {
		X509_STORE_CTX_free(xs);
		snprintf(words, len, "cannot check the CRLs: out of memory");
		return -1;
	}
	crls = X509_STORE_CTX_get1_crls(xs, X509_get_issuer_name(leaf));
	for (i = 0; crls && i < sk_X509_CRL_num(crls); i++) {
		X509_CRL *crl = sk_X509_CRL_value(crls, i);
		X509_REVOKED *rev = NULL;
		if (X509_CRL_get0_by_cert(crl, &rev, leaf) == 1 && rev) {
			revoked_words(leaf, rev, words, len);
			rv = -1;
			break;
		}
		if (X509_CRL_get0_nextUpdate(crl) == NULL ||
		    X509_cmp_current_time(X509_CRL_get0_nextUpdate(crl)) > 0)
			current = 1;
	}
	if (rv == 0 && !current && mode == CRL_HARD) {
		tg_cert_label(leaf, label, sizeof(label));
		tg_x509_name_line(X509_get_issuer_name(leaf), issuer, sizeof(issuer));
		if (snprintf(words, len, "no current CRL of \"%s\" to check %s against (hard-fail: "
		    "add or refresh that CA's CRL, or set the crl_policy to soft)", issuer, label) < 0)
			words[0] = '\0';
		rv = -1;
	}
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	X509_STORE_CTX_free(xs);
	ERR_clear_error();
	return rv;
}

/* A CRL that cannot be had or is out of date (not a revocation). */
static int
crl_unavailable(int e)
{
	return e == X509_V_ERR_UNABLE_TO_GET_CRL || e == X509_V_ERR_CRL_HAS_EXPIRED ||
	    e == X509_V_ERR_CRL_NOT_YET_VALID || e == X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER;
}

/* The certificate's serial number in hex ("?" when it cannot be told). */
static void
serial_text(X509 *cert, char *buf, size_t len)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *h = bn ? BN_bn2hex(bn) : NULL;

	snprintf(buf, len, "%s", h ? h : "?");
	OPENSSL_free(h);
	BN_free(bn);
}

/* "certificate for X (serial S) was revoked on DATE, reason: R (the CRL of
 * ISSUER)". */
static void
revoked_words(X509 *cert, X509_REVOKED *rev, char *buf, size_t len)
{
	char label[256], issuer[256], date[64], serial[130];
	ASN1_ENUMERATED *re;
	long code = 0;

	tg_cert_label(cert, label, sizeof(label));
	tg_x509_name_line(X509_get_issuer_name(cert), issuer, sizeof(issuer));
	serial_text(cert, serial, sizeof(serial));
	tg_asn1_date(X509_REVOKED_get0_revocationDate(rev), date, sizeof(date));
	if ((re = X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, NULL, NULL)) != NULL)
		code = ASN1_ENUMERATED_get(re);
	ASN1_ENUMERATED_free(re);
	/* the words may be cut at len; what is cut is the issuer's name */
	if (snprintf(buf, len, "certificate for %s (serial %s) was revoked on %s, reason: %s "
	    "(the CRL of \"%s\")", label, serial, date, tg_crl_reason_words((int)code),
	    issuer) < 0)
		buf[0] = '\0';
}

/* The words of a revocation or a CRL problem: serial, date, reason. */
static int
crl_words(X509_STORE_CTX *xs, int e, char *buf, size_t len)
{
	X509 *cert = X509_STORE_CTX_get_current_cert(xs);
	X509_CRL *crl = X509_STORE_CTX_get0_current_crl(xs);
	char label[256], issuer[256], date[64], serial[130];
	int n;

	if (cert == NULL)
		return -1;
	tg_cert_label(cert, label, sizeof(label));
	tg_x509_name_line(X509_get_issuer_name(cert), issuer, sizeof(issuer));
	serial_text(cert, serial, sizeof(serial));
	if (e == X509_V_ERR_CERT_REVOKED) {
		X509_REVOKED *rev = NULL;
		if (crl && X509_CRL_get0_by_cert(crl, &rev, cert) == 1 && rev) {
			revoked_words(cert, rev, buf, len);
			return 0;
		}
		n = snprintf(buf, len, "certificate for %s (serial %s) was revoked (the CRL of "
		    "\"%s\")", label, serial, issuer);
		return n < 0 ? -1 : 0;
	}
	if (e == X509_V_ERR_CRL_HAS_EXPIRED && crl) {
		tg_asn1_date(X509_CRL_get0_nextUpdate(crl), date, sizeof(date));
		n = snprintf(buf, len, "the CRL of \"%s\" expired on %s (its nextUpdate); a current "
		    "one is needed to check %s (hard-fail: fetch a new CRL, or set the crl_policy to "
		    "soft)", issuer, date, label);
		return n < 0 ? -1 : 0;
	}
	if (e == X509_V_ERR_UNABLE_TO_GET_CRL) {
		n = snprintf(buf, len, "no CRL of \"%s\" to check %s (serial %s) against (hard-fail: "
		    "add that CA's CRL to the configured CRLs, or set the crl_policy to soft)",
		    issuer, label, serial);
		return n < 0 ? -1 : 0;
	}
	return -1;
}

static int
verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl;
	char words[600], *host = NULL, *copy;
	X509_VERIFY_PARAM *vp;
	int e;

	if (ok)
		return ok;
	ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	e = X509_STORE_CTX_get_error(xs);
	if (ssl && e == X509_V_ERR_CERT_REVOKED)
		SSL_set_ex_data(ssl, revoked_idx, (void *)1);
	/* soft-fail: a CRL that cannot be had does not refuse anyone (a
	 * revocation it lists still does) */
	if (ssl && crl_unavailable(e) && crl_mode(SSL_get_SSL_CTX(ssl)) == CRL_SOFT) {
		/* passed: the verification's result must say so too (a client
		 * reads it from SSL_get_verify_result) */
		X509_STORE_CTX_set_error(xs, X509_V_OK);
		return 1;
	}
	if (ssl == NULL || SSL_get_ex_data(ssl, refusal_idx) != NULL)
		return ok;   /* keep the first reason */
	vp = X509_STORE_CTX_get0_param(xs);
	host = X509_VERIFY_PARAM_get0_host(vp, 0) ?
	    strdup(X509_VERIFY_PARAM_get0_host(vp, 0)) : X509_VERIFY_PARAM_get1_ip_asc(vp);
	if (crl_words(xs, e, words, sizeof(words)) < 0)
		tg_verify_words(e, X509_STORE_CTX_get_current_cert(xs), host, words, sizeof(words));
	free(host);
	copy = strdup(words);
	if (copy && !SSL_set_ex_data(ssl, refusal_idx, copy))
		free(copy);
	return ok;
}

/* The CRLs of path into ctx's trust store, and the leaf checked against
 * them in every verification; soft: a missing or stale CRL is let pass. */
static int
use_crls(SSL_CTX *ctx, const char *path, int soft, const char *what, struct tg_err *err)
{
	if (tg_crl_load(SSL_CTX_get_cert_store(ctx), path, err) < 0) {
		char m[sizeof(err->msg)];
		snprintf(m, sizeof(m), "%s", err->msg);
		return tg_err_set(err, err->code, "%s: %s", what, m);
	}
	X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_CRL_CHECK);
	if (!SSL_CTX_set_ex_data(ctx, crl_mode_idx, (void *)(intptr_t)(soft ? CRL_SOFT : CRL_HARD)))
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	return 0;
}

static int
common_ctx(SSL_CTX *ctx, int min_version, const char *groups, const char *groups_what,
    struct tg_err *err)
{
	if (SSL_CTX_set_min_proto_version(ctx, min_version) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TG_CIPHERS_12) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, TG_SUITES_13) != 1)
		return tg_err_ossl(err, TG_E_TLS, "cannot apply the TLS policy");
	if (tg_tls_set_groups(ctx, groups, groups_what ? groups_what : "groups", err) < 0)
		return -1;
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* NO_AUTO_CHAIN: send the chain from the certificate file as it is;
	 * OpenSSL would otherwise build it from the trust store in every
	 * handshake (a whole X509_verify_cert, ~1M instructions). */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	    SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_NO_AUTO_CHAIN);
	return 0;
}

/* Loads a chain and its key into ctx, checking they belong together and
 * that the leaf is valid now. what/origins name the settings in messages. */
static int
use_keypair(SSL_CTX *ctx, const char *cert, const char *key, const char *cert_what,
    const char *key_what, struct tg_err *err)
{
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *pk = NULL;
	X509 *leaf;
	char label[256], date[64];
	int rv = -1, i;

	if ((chain = tg_certs_read(cert, err)) == NULL) {
		char m[sizeof(err->msg)];
		snprintf(m, sizeof(m), "%s", err->msg);
		tg_err_set(err, err->code, "%s: %s", cert_what, m);
		goto out;
	}
	leaf = sk_X509_value(chain, 0);
	tg_cert_label(leaf, label, sizeof(label));
	if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
		tg_asn1_date(X509_get0_notAfter(leaf), date, sizeof(date));
		tg_err_set(err, TG_E_CERT_EXPIRED, "%s: certificate for %s expired on %s; "
		    "renew it (tlsgate cert issue) or point the key at a current one",
		    cert_what, label, date);
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0) {
		tg_asn1_date(X509_get0_notBefore(leaf), date, sizeof(date));
		tg_err_set(err, TG_E_CERT_EXPIRED, "%s: certificate for %s is not valid "
		    "before %s; check the clock", cert_what, label, date);
		goto out;
	}
	if ((pk = tg_key_read(key, err)) == NULL) {
		char m[sizeof(err->msg)];
		snprintf(m, sizeof(m), "%s", err->msg);
		tg_err_set(err, err->code, "%s: %s", key_what, m);
		goto out;
	}
	if (X509_check_private_key(leaf, pk) != 1) {
		ERR_clear_error();
		tg_err_set(err, TG_E_KEY_MISMATCH, "%s does not match %s (certificate for %s): "
		    "the key belongs to another certificate", key_what, cert_what, label);
		goto out;
	}
	if (SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, pk) != 1) {
		tg_err_ossl(err, TG_E_TLS, "%s: cannot use the certificate", cert_what);
		goto out;
	}
	for (i = 1; i < sk_X509_num(chain); i++) {
		if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i)) != 1) {
			tg_err_ossl(err, TG_E_TLS, "%s: cannot use the chain", cert_what);
			goto out;
		}
	}
	rv = 0;
out:
	EVP_PKEY_free(pk);
	sk_X509_pop_free(chain, X509_free);
	return rv;
}

/* The session context of a mutual server whose tickets other processes
 * read: the trust mode and the bytes of the client CA file. */
static int
mutual_context(const struct tg_server_tls *s, unsigned char *out, size_t len)
{
	unsigned char md[32], *ca = NULL, *crl = NULL;
	size_t calen = 0, crllen = 0;
	struct tg_err err;
	EVP_MD_CTX *x = EVP_MD_CTX_new();
	const char *mode = tg_trust_mode_name(s->clients->mode);
	int ok;

	if (s->clients_ca && s->clients_ca[0] && tg_read_file(s->clients_ca, &ca, &calen, 16 << 20,
	    &err) < 0)
		ca = NULL, calen = 0;   /* the load below fails in words */
	/* the CRL too: a session from before a revocation must not resume
	 * into a context that would refuse its certificate */
	if (s->clients_crl && s->clients_crl[0] && tg_read_file(s->clients_crl, &crl, &crllen,
	    64 << 20, &err) < 0)
		crl = NULL, crllen = 0;
	ok = x && EVP_DigestInit_ex(x, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(x, mode, strlen(mode) + 1) == 1 &&
	    EVP_DigestUpdate(x, ca ? ca : (unsigned char *)"", calen) == 1 &&
	    EVP_DigestUpdate(x, crl ? crl : (unsigned char *)"", crllen) == 1 &&
	    EVP_DigestFinal_ex(x, md, NULL) == 1;
	EVP_MD_CTX_free(x);
	OPENSSL_free(ca);
	OPENSSL_free(crl);
	if (!ok)
		return -1;
	memcpy(out, md, len < sizeof(md) ? len : sizeof(md));
	return 0;
}

SSL_CTX *
tg_tls_server_ctx(const struct tg_server_tls *s, struct tg_err *err)
{
	static const unsigned char sid[] = "tlsgate";
	unsigned char msid[24] = "tlsgate-m";
	SSL_CTX *ctx;
	char cw[512], kw[512];

	if (tg_tls_init() < 0 || (ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tg_err_ossl(err, TG_E_TLS, "cannot create a TLS context");
		return NULL;
	}
	if (common_ctx(ctx, s->min_version, s->groups, s->groups_what, err) < 0)
		goto fail;
	SSL_CTX_set_num_tickets(ctx, 1);
	if (tg_tickets_ready() < 0) {
		tg_err_ossl(err, TG_E_TLS, "cannot make session ticket keys");
		goto fail;
	}
	SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tg_tickets_cb);
	SSL_CTX_set_timeout(ctx, TG_TICKET_PERIOD);
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	/* read-ahead: one read(2) takes what the socket has (whole records)
	 * instead of a header read and a body read per record; the server
	 * always reads until OpenSSL wants more before it polls again */
	SSL_CTX_set_read_ahead(ctx, 1);
	/* kTLS: only where the kernel offers the tls ULP (modprobe tls);
	 * elsewhere every connection would pay a failing setsockopt */
	if (tg_tls_ktls_available())
		SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS);
	snprintf(cw, sizeof(cw), "tls.cert %s (%s)", s->cert, s->cert_origin);
	snprintf(kw, sizeof(kw), "tls.key %s (%s)", s->key, s->key_origin);
	/* no certificate (yet): an ACME order is on its way; the client hello
	 * hook refuses ordinary handshakes until it arrives */
	if (s->cert && s->cert[0] && use_keypair(ctx, s->cert, s->key, cw, kw, err) < 0)
		goto fail;
	if (s->mutual) {
		if (s->clients_ca && s->clients_ca[0]) {
			STACK_OF(X509_NAME) *names = NULL;
			X509_STORE *st = tg_trust_store_load(s->clients_ca, &names, err);
			if (st == NULL) {
				char m[sizeof(err->msg)];
				snprintf(m, sizeof(m), "%s", err->msg);
				tg_err_set(err, err->code, "tls.clients.ca (%s): %s", s->clients_ca_origin, m);
				goto fail;
			}
			SSL_CTX_set_cert_store(ctx, st);
			SSL_CTX_set_client_CA_list(ctx, names);
		}
		if (s->clients_crl && s->clients_crl[0] && use_crls(ctx, s->clients_crl,
		    s->crl_soft, s->clients_crl_what ? s->clients_crl_what : "tls.clients.crl",
		    err) < 0)
			goto fail;
		if (!SSL_CTX_set_ex_data(ctx, trust_idx, s->clients))
			goto fail;
		tg_trust_ref(s->clients);
		X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(ctx), X509_PURPOSE_SSL_CLIENT);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
		SSL_CTX_set_cert_verify_callback(ctx, server_verify, s->clients);
		SSL_CTX_set_verify_depth(ctx, 6);
		if (!SSL_CTX_set_ex_data(ctx, cache_idx, tg_chain_cache_new(TG_CHAIN_CACHE_SIZE)))
			goto fail;
		/* Sessions of a mutual context resume only in a context made
		 * alike (a reload may have changed the CA), and only after the
		 * trust engine accepts the certificate they carry again. One
		 * process: a random context of its own; workers and cluster
		 * nodes sharing tickets: a digest of what decides the chain, the
		 * same in every one of them. */
		if ((s->shared_sessions ? mutual_context(s, msid + 8, sizeof(msid) - 8) :
		    RAND_bytes(msid + 8, sizeof(msid) - 8) == 1 ? 0 : -1) < 0 ||
		    SSL_CTX_set_session_id_context(ctx, msid, sizeof(msid)) != 1) {
			tg_err_ossl(err, TG_E_TLS, "cannot make a session context");
			goto fail;
		}
		/* one process: sessions kept here (a stateless ticket would carry,
		 * encode and decode the client certificate, ~120 µs a handshake);
		 * several workers: the tickets whose keys they share */
		if (s->shared_sessions) {
			SSL_CTX_set_session_ticket_cb(ctx, NULL, mutual_resume, s->clients);
			/* tickets only: a session-ID resumption from the internal
			 * cache would skip the judgement (trust engine, CRLs) */
			SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		}
		else if (tg_sess_cache_attach(ctx, TG_SESS_CACHE_SIZE, judge_session, s->clients) < 0) {
			tg_err_set(err, TG_E_INTERNAL, "cannot make the session cache: out of memory");
			goto fail;
		}
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *
tg_tls_client_ctx(const struct tg_client_opts *o, struct tg_err *err)
{
	SSL_CTX *ctx;
	struct stat sb;

	if (tg_tls_init() < 0 || (ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tg_err_ossl(err, TG_E_TLS, "cannot create a TLS context");
		return NULL;
	}
	if (common_ctx(ctx, TLS1_2_VERSION, o->groups, "client.groups", err) < 0)
		goto fail;
	if (o->ca && o->ca[0]) {
		X509_STORE *st = tg_trust_store_load(o->ca, NULL, err);
		if (st == NULL)
			goto fail;
		SSL_CTX_set_cert_store(ctx, st);
	} else {
		if (SSL_CTX_set_default_verify_paths(ctx) != 1)
			ERR_clear_error();
		if (o->local_ca && stat(o->local_ca, &sb) == 0 &&
		    tg_trust_store_add(SSL_CTX_get_cert_store(ctx), o->local_ca, NULL, err) < 0)
			goto fail;
	}
	if (o->crl && o->crl[0] && use_crls(ctx, o->crl, o->crl_soft_fail, "client.crl", err) < 0)
		goto fail;
	X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(ctx), X509_PURPOSE_SSL_SERVER);
	/* RFC 9525 §6.4.4: names are matched in subjectAltName only; a name
	 * that stands only in the subject's CN does not match */
	X509_VERIFY_PARAM_set_hostflags(SSL_CTX_get0_param(ctx), X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
	/* The handshake completes either way; tg_tls_client_judge decides before
	 * a single byte of ours is sent, so the reason can be told in words. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, verify_cb);
	if ((o->cert && o->cert[0]) || (o->key && o->key[0])) {
		char cw[512], kw[512];
		if (!(o->cert && o->cert[0]) || !(o->key && o->key[0])) {
			tg_err_set(err, TG_E_USAGE, "a client certificate needs both --cert and --key");
			goto fail;
		}
		snprintf(cw, sizeof(cw), "client certificate %s", o->cert);
		snprintf(kw, sizeof(kw), "client key %s", o->key);
		if (use_keypair(ctx, o->cert, o->key, cw, kw, err) < 0)
			goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static int
is_ip(const char *s)
{
	unsigned char b[16];
	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

int
tg_tls_client_prepare(SSL *ssl, const char *host, struct tg_err *err)
{
	if (is_ip(host)) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1)
			return tg_err_ossl(err, TG_E_TLS, "bad address %s", host);
		return 0;
	}
	if (SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1)
		return tg_err_ossl(err, TG_E_TLS, "bad server name %s", host);
	return 0;
}

int
tg_tls_client_judge(SSL *ssl, struct tg_trust *t, const char *identity, const char *ca_hint,
    struct tg_trust_verdict *v, struct tg_err *err)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);
	long r = SSL_get_verify_result(ssl);
	const char *why = tg_tls_refusal(ssl);
	char words[800];

	if (peer == NULL) {
		memset(v, 0, sizeof(*v));
		snprintf(v->reason, sizeof(v->reason), "the server sent no certificate");
		return 0;
	}
	if (r == X509_V_OK)
		words[0] = '\0';
	else if (why[0])
		snprintf(words, sizeof(words), "%s", why);
	else
		tg_verify_words(r, peer, NULL, words, sizeof(words));
	if (strstr(words, "not a trusted CA") && ca_hint)
		snprintf(words + strlen(words), sizeof(words) - strlen(words), " (%s)", ca_hint);
	if (!SSL_get_ex_data(ssl, revoked_idx) && leaf_crl_check(SSL_get_SSL_CTX(ssl), peer,
	    words, sizeof(words)) < 0)
		SSL_set_ex_data(ssl, revoked_idx, (void *)1);
	if (SSL_get_ex_data(ssl, revoked_idx)) {   /* no mode accepts a revoked server */
		memset(v, 0, sizeof(*v));
		snprintf(v->identity, sizeof(v->identity), "%s", identity);
		snprintf(v->reason, sizeof(v->reason), "%s", words);
		return 0;
	}
	return tg_trust_judge(t, peer, identity, r == X509_V_OK, words, v, err);
}

int
tg_tls_move_fd(SSL *ssl, int fd)
{
	BIO *r = SSL_get_rbio(ssl);

	if (r == NULL || r != SSL_get_wbio(ssl) || BIO_method_type(r) != BIO_TYPE_SOCKET) {
		/* not the one socket BIO SSL_set_fd made: a fresh one is right
		 * only when the kernel does not encrypt for the session */
		if ((r && BIO_get_ktls_recv(r) > 0) ||
		    (SSL_get_wbio(ssl) && BIO_get_ktls_send(SSL_get_wbio(ssl)) > 0))
			return -1;
		return SSL_set_fd(ssl, fd) == 1 ? 0 : -1;
	}
	/* BIO_NOCLOSE, as SSL_set_fd made it: the BIO keeps its flags (kTLS)
	 * and never closes either descriptor */
	return BIO_set_fd(r, fd, BIO_NOCLOSE) == 1 ? 0 : -1;
}
