/*
 * The PKI toolkit's internal face: keys, certificates and CAs as OpenSSL
 * objects. The public tg_ca_* / tg_cert_* calls in tlsgate.h are built on
 * these; so are the auto certificates of the server.
 */
#ifndef TG_PKI_H
#define TG_PKI_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <tlsgate/tlsgate.h>

#define TG_DEFAULT_DAYS    397     /* what browsers accept for a leaf */
#define TG_DEFAULT_CA_DAYS 3650

EVP_PKEY *tg_key_generate(enum tg_key_type type, struct tg_err *err);
/* PEM (PKCS#8) to a 0600 file, atomically; the PEM text is wiped. */
int tg_key_write(const char *path, EVP_PKEY *key, struct tg_err *err);
/* Refuses a key file that group or others can read, unless the process
 * allowed it (tls.allow_insecure_key_permissions). */
EVP_PKEY *tg_key_read(const char *path, struct tg_err *err);
void tg_pki_allow_insecure_key_permissions(int allow);
/* "EC P-256", "RSA 2048", "Ed25519" */
void tg_key_describe(EVP_PKEY *key, char *buf, size_t len);

/* Certificates from a PEM file (all of them, in order) or one DER cert. */
STACK_OF(X509) *tg_certs_read(const char *path, struct tg_err *err);
STACK_OF(X509) *tg_certs_parse(const unsigned char *data, size_t len,
    const char *name, struct tg_err *err);
/* Appends PEM of each certificate to a malloc'ed string. */
char *tg_certs_pem(STACK_OF(X509) *certs);
/* Trust anchors from a PEM file or a folder of PEM files (no c_rehash). */
X509_STORE *tg_trust_store_load(const char *path, STACK_OF(X509_NAME) **names,
    struct tg_err *err);
int tg_trust_store_add(X509_STORE *st, const char *path, STACK_OF(X509_NAME) *names,
    struct tg_err *err);

/* sha256:BASE64 of the SubjectPublicKeyInfo. */
int tg_spki_pin(X509 *cert, char *buf, size_t len);
/* Whole days from now until the certificate's notAfter (negative: past). */
int tg_cert_days_left(X509 *cert, int *days);

/* A CA loaded from a folder with ca.crt and ca.key. */
struct tg_ca {
	X509 *cert;
	EVP_PKEY *key;
	char crl_url[512];   /* CA_DIR/crl-url: put in issued certificates' CDP; "" none */
};
int tg_ca_load(const char *dir, struct tg_ca *ca, struct tg_err *err);
void tg_ca_clear(struct tg_ca *ca);

/* The digest a signature by signer uses: SHA-384 for P-384 and up,
 * none (built in) for Ed25519, else SHA-256. */
const EVP_MD *tg_pki_digest_for(EVP_PKEY *signer);
/* Builds and signs a certificate for pub; issuer NULL = self-signed. */
/* LEAF: issued by a CA for both ends of a connection (serverAuth and
 * clientAuth), as the ACME CA issues them */
enum tg_build_kind { TG_BUILD_SERVER, TG_BUILD_CLIENT, TG_BUILD_CA, TG_BUILD_SELF, TG_BUILD_LEAF };
/* or'ed into kind: a subject without CN, the SANs (critical) name it */
#define TG_BUILD_NO_CN 0x100
X509 *tg_cert_build(int kind, const char *cn, const char *sans,
    int days, EVP_PKEY *pub, const struct tg_ca *issuer, struct tg_err *err);
/* The same, valid for days plus secs from now (valid from five minutes
 * ago, or a tenth of secs ago when days is 0 and secs under 50 minutes). */
X509 *tg_cert_build_secs(int kind, const char *cn, const char *sans, int days, long secs,
    EVP_PKEY *pub, const struct tg_ca *issuer, struct tg_err *err);
/* Validates a SAN list ("dns:a,ip:b,uri:c"; bare names guessed). */
int tg_sans_check(const char *sans, struct tg_err *err);

/*
 * Revocation (pki_crl.c). The CA folder keeps `revoked` (what was
 * revoked), `crlnumber`, and the CRL as crl.pem and crl.der, valid for
 * TG_CRL_DAYS and signed again when half of that is gone.
 *
 * sc: the configuration's store, or NULL. When it is a cluster's (etcd)
 * and ca_dir is its state_dir/ca, these live in the cluster's store
 * (ca/revoked, ...; this node's folder gets its copy at once, the others
 * through their followers): every node serves one CRL whichever revoked.
 * Otherwise, the folder. Blocking (files, etcd): not on an event loop.
 */
#define TG_CRL_DAYS 7
struct tg_store_conf;
/* keyCompromise, key-compromise, ...: the RFC 5280 reason code; -1 unknown. */
int tg_crl_reason_code(const char *name);
const char *tg_crl_reason_words(int code);   /* "key compromise" */
/* Revokes what (a certificate file this CA issued, or a hex serial) with
 * reason, writes the new CRL; the serial lands in serial, the number of
 * revoked certificates in *count. wait_ms: for the CA's lock (0: 10 s). */
int tg_ca_revoke(const char *ca_dir, const struct tg_store_conf *sc, const char *what,
    int reason, int wait_ms, char *serial, size_t slen, int *count, struct tg_err *err);
/* A cluster's CA refuses to list more (its CRL is one etcd value). */
#define TG_CRL_CLUSTER_MAX 12000
/* Signs the CRL again (days 0: TG_CRL_DAYS). */
int tg_crl_make(const char *ca_dir, const struct tg_store_conf *sc, int days, int *count,
    struct tg_err *err);
/* Signs it again when due: 1 made, 0 still current, -1 error. */
int tg_crl_refresh(const char *ca_dir, const struct tg_store_conf *sc, struct tg_err *err);
/* Is serial (hex) in the list of ca_dir (in a cluster, this node's copy,
 * which its follower keeps)? 1 yes (*when, *reason set when not NULL), 0
 * no, -1 the list could not be read (err). */
int tg_ca_revoked(const char *ca_dir, const char *serial, long long *when, int *reason,
    struct tg_err *err);
/* Sets where relying parties fetch the CRL (ca_dir/crl-url, put in the
 * CRL distribution point of certificates issued from then on). */
int tg_ca_set_crl_url(const char *ca_dir, const struct tg_store_conf *sc, const char *url,
    struct tg_err *err);
/* Adds the CRLs of a file (PEM, several, or DER) or a folder to st: their
 * number, or -1 in words. */
int tg_crl_load(X509_STORE *st, const char *path, struct tg_err *err);

#endif
