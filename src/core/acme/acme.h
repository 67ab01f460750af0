/*
 * ACME (RFC 8555) with the TLS-ALPN-01 challenge (RFC 8737), IP identifiers
 * (RFC 8738) and renewal information (RFC 9773). The protocol runs in the
 * caller's thread (it blocks on the network); challenge answers are handed
 * to whoever serves them through struct tg_acme_solver, so the same code
 * serves the daemon (event loop) and the one-shot `tlsgate acme issue`.
 *
 * Files: acme_jws.c (keys, JWS, base64url), acme_json.c (parsing the
 * server's JSON: the fuzzed surface), acme_http.c (libcurl, nonces, retries),
 * acme.c (account, order, challenges, finalize), acme_alpn.c (the RFC 8737
 * certificate), acme_renew.c (when to renew; the cached certificate).
 */
#ifndef TG_ACME_H
#define TG_ACME_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <tlsgate/tlsgate.h>

#include "acme_wire.h"

/* ---- the TLS-ALPN-01 certificate (acme_alpn.c) ---------------------------- */

/* A self-signed certificate for name with the critical acmeIdentifier
 * extension holding SHA-256(key_authorization), and its key. */
int tg_acme_alpn_cert(const char *name, const char *key_auth, X509 **cert,
    EVP_PKEY **key, struct tg_err *err);

/* ---- a whole order (acme.c) ---------------------------------------------- */

enum tg_acme_challenge { TG_ACME_HTTP01, TG_ACME_TLSALPN01, TG_ACME_DNS01 };
int tg_acme_challenge_parse(const char *s, enum tg_acme_challenge *out);
const char *tg_acme_challenge_name(enum tg_acme_challenge c);

/* Publishes and withdraws challenge answers. For HTTP-01, what is the token
 * and answer the key authorization; for TLS-ALPN-01, what is the name and
 * answer the key authorization (build the certificate with
 * tg_acme_alpn_cert); DNS-01 never reaches the solver (the hook runs). */
struct tg_acme_solver {
	int (*publish)(void *arg, enum tg_acme_challenge type, const char *what,
	    const char *answer, struct tg_err *err);
	void (*withdraw)(void *arg, enum tg_acme_challenge type, const char *what);
	void *arg;
};

struct tg_acme_opts {
	const char *directory;       /* URL */
	const char *ca_cert;         /* extra trust for the ACME server ("" = none) */
	const char *email;
	int agree_terms;             /* the user accepted the CA's terms */
	const char *eab_kid, *eab_hmac_key;
	const char *const *names;    /* DNS names or IP addresses */
	size_t nnames;
	enum tg_acme_challenge challenge;
	const char *dns_hook;        /* dns-01: HOOK add|remove NAME VALUE */
	const char *replaces;        /* ARI certificate id of the one renewed, or NULL */
	const char *profile;         /* a profile the directory lists; NULL/"" the default */
	struct tg_acme_solver solver;
	/* each step, in words, for a terminal or the log */
	void (*progress)(void *arg, const char *line);
	void *progress_arg;
	int timeout_s;               /* for each authorization and the order; 0 = 120 */
	/* asked between steps and while waiting: nonzero stops the order */
	int (*cancelled)(void *arg);
	void *cancel_arg;
};

/* The outcome of an order; chain_pem is the leaf then the chain. */
struct tg_acme_result {
	char *chain_pem;             /* malloc'ed */
	char *key_pem;               /* OPENSSL_secure_malloc'ed; tg_acme_result_clear */
	size_t key_len;
	int account_created;         /* a new account was registered */
	int retry_after;             /* seconds the CA asked us to wait, 0 if none */
};
void tg_acme_result_clear(struct tg_acme_result *r);

/* Where the account and certificates of a directory live in the store:
 * "acme/HOST-HASH". */
void tg_acme_store_prefix(const char *directory, char *buf, size_t len);

/* Fetches and reads the directory (tlsgate doctor). */
int tg_acme_probe(const char *directory, const char *ca_cert, struct tg_acme_dir *d,
    struct tg_err *err);

/* Runs a whole order: account (created once per directory, key in st),
 * order, authorizations, challenges, finalize, download. */
int tg_acme_obtain(struct tg_store *st, const struct tg_acme_opts *o,
    struct tg_acme_result *res, struct tg_err *err);

/* ---- renewal (acme_renew.c) ---------------------------------------------- */

/* The ARI id of a certificate: base64url(AKI keyid) "." base64url(serial). */
int tg_acme_cert_id(X509 *cert, char *buf, size_t len);
/* Is the certificate due? Due when a third of its lifetime is left (half
 * when the lifetime is under 10 days), or renew_before (0: not set) if
 * that comes first, or at a point in the CA's renewal window (ari, NULL
 * when none) if that comes earlier still. */
int tg_acme_due(X509 *cert, int64_t renew_before_s, const struct tg_acme_ari *ari,
    time_t now, time_t *when, char *why, size_t whylen);
/* Asks the CA's renewalInfo for cert; 0 with *ari filled, -1 when the CA
 * has none or the answer is unusable (not an error for renewal). */
int tg_acme_fetch_ari(const struct tg_acme_opts *o, X509 *cert, struct tg_acme_ari *ari,
    struct tg_err *err);

/* The store names of the certificate for a set of names. */
void tg_acme_cert_names(const char *directory, const char *first_name, char *crt,
    size_t crtlen, char *key, size_t keylen);
/* Loads and checks the stored certificate: parses, key matches, covers every
 * name, not expired. 0 with *leaf set (caller frees), -1 with the reason. */
int tg_acme_cached(struct tg_store *st, const char *crt_name, const char *key_name,
    const char *const *names, size_t nnames, X509 **leaf, struct tg_err *err);
/* Stores a result: the key first, then the chain, each atomically. */
int tg_acme_save(struct tg_store *st, const char *crt_name, const char *key_name,
    const struct tg_acme_result *res, struct tg_err *err);

#endif
