/*
 * libtlsgate: certificates, trust and TLS settings for any service.
 *
 * The library is the core of the tlsgate command: the configuration model,
 * the storage seam, the PKI toolkit and OpenSSL context building. It has no
 * event loop of its own. Every function that can fail returns 0 on success
 * and -1 on failure, with a one-line message a person can act on left in a
 * struct tg_err the caller passes in.
 */
#ifndef TLSGATE_H
#define TLSGATE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ------------------------------------------------------------ */

/* Category of a failure; the code table lives in src/core/base/error.h. */
enum tg_category {
	TG_CAT_USAGE, TG_CAT_CONFIG, TG_CAT_IO, TG_CAT_TLS, TG_CAT_TRUST,
	TG_CAT_PKI, TG_CAT_INTERNAL, TG_CAT_ACME
};

struct tg_err {
	int  code;          /* an enum tg_code value, 0 when clear */
	char msg[768];      /* "what is wrong (where): what to do" */
};

const char *tg_code_name(int code);
enum tg_category tg_code_category(int code);

/* ---- configuration ----------------------------------------------------- */

/*
 * One model, four layers, later wins: built-in defaults < YAML file <
 * TLSGATE_* environment < flags. Every value remembers where it came from,
 * so errors can say "tls.cert: no such file (tlsgate.yaml:12)".
 */
struct tg_config;

struct tg_config *tg_config_new(void);      /* secure defaults */
void tg_config_free(struct tg_config *cfg); /* NULL-safe */

/* Reads a YAML file; must_exist=0 makes a missing file a no-op. */
int tg_config_load_file(struct tg_config *cfg, const char *path, int must_exist,
    struct tg_err *err);
/* Applies TLSGATE_* variables of envp (unknown TLSGATE_ names are errors). */
int tg_config_load_env(struct tg_config *cfg, char *const *envp, struct tg_err *err);
/* Sets KEY to VALUE; origin names the source in messages, e.g. "--set". */
int tg_config_set(struct tg_config *cfg, const char *key, const char *value,
    const char *origin, struct tg_err *err);
/* Checks the keys against each other (e.g. mutual mode needs a client CA). */
int tg_config_validate(struct tg_config *cfg, struct tg_err *err);

/* The value as text (lists joined by ","), or NULL for an unknown key. */
const char *tg_config_get(const struct tg_config *cfg, const char *key);
/* "default", "FILE:LINE", "env TLSGATE_X" or the flag, for messages. */
const char *tg_config_origin(const struct tg_config *cfg, const char *key);
/* Iterates the key table: returns the i-th key name, NULL past the end. */
const char *tg_config_key(size_t i, const char **doc);
/* The file tlsgate reads when none is named: $TLSGATE_CONFIG, else the
 * per-user or system default. */
const char *tg_config_default_path(void);

/* ---- storage seam ------------------------------------------------------ */

/*
 * Every persistent blob (CA, certificates, keys, known files) goes through
 * this interface so that a shared backend can replace the local folder.
 * Names are relative paths such as "ca/ca.key".
 */
struct tg_store;

#define TG_STORE_SECRET 0x1   /* mode 0600, wiped from memory after use */

struct tg_store *tg_store_fs_open(const char *dir, struct tg_err *err);
/* An etcd v3 cluster through its JSON gateway: endpoints "https://h:2379,..."
 * (tried in order), keys below prefix, TLS with ca, and client auth with
 * cert+key (may be NULL or ""). Locks are leases (free 10 s after a holder
 * dies); while a lock is held, writes happen only if it still is (fencing).
 * One thread at a time per store object. */
struct tg_store *tg_store_etcd_open(const char *endpoints, const char *prefix, const char *ca,
    const char *cert, const char *key, long timeout_ms, struct tg_err *err);
/* The store a configuration names (store.backend): state_dir or etcd. */
struct tg_store *tg_store_open(const struct tg_config *cfg, struct tg_err *err);
void tg_store_free(struct tg_store *st);
/* *out is OPENSSL_malloc'ed and NUL-terminated (free it with OPENSSL_free,
 * or OPENSSL_clear_free for keys); returns -1 with code TG_E_NOT_FOUND when the
 * name does not exist. */
int tg_store_get(struct tg_store *st, const char *name, unsigned char **out,
    size_t *len, struct tg_err *err);
int tg_store_put(struct tg_store *st, const char *name, const void *data,
    size_t len, int flags, struct tg_err *err);
int tg_store_delete(struct tg_store *st, const char *name, struct tg_err *err);
int tg_store_exists(struct tg_store *st, const char *name);
/* Names directly below a prefix; returns a NULL-terminated malloc'ed array. */
char **tg_store_list(struct tg_store *st, const char *prefix, struct tg_err *err);
/* An exclusive lock, waited for up to wait_ms, released by unlock or by the
 * holder's death (so an expired holder never blocks others). */
int tg_store_lock(struct tg_store *st, const char *name, int wait_ms, struct tg_err *err);
void tg_store_unlock(struct tg_store *st, const char *name);
const char *tg_store_path(struct tg_store *st); /* folder backend: its root */

/* ---- PKI --------------------------------------------------------------- */

enum tg_key_type { TG_KEY_EC_P256, TG_KEY_EC_P384, TG_KEY_RSA_2048,
	TG_KEY_RSA_3072, TG_KEY_ED25519 };
enum tg_cert_kind { TG_CERT_SERVER, TG_CERT_CLIENT };

int tg_key_type_parse(const char *s, enum tg_key_type *out);

/* What to put in a certificate or CSR. */
struct tg_cert_req {
	enum tg_cert_kind kind;
	const char *name;        /* subject CN; NULL = first SAN */
	const char *sans;        /* "dns:a,ip:1.2.3.4,uri:spiffe://x" or NULL */
	int days;                /* validity; 0 = default (397) */
	enum tg_key_type key_type;
	int no_cn;               /* subject without CN, the SANs (critical) name
	                          * it: etcd's JSON gateway refuses a client
	                          * certificate with a CN once etcd auth is on */
};

/* Creates a CA (ca.crt, ca.key) in dir; refuses to overwrite one. */
int tg_ca_init(const char *dir, const char *cn, enum tg_key_type kt, int days,
    struct tg_err *err);
/* Issues a key and certificate signed by the CA in ca_dir, written to
 * PREFIX.crt (leaf then CA) and PREFIX.key (0600). */
int tg_cert_issue(const char *ca_dir, const struct tg_cert_req *req,
    const char *prefix, struct tg_err *err);
/* Writes a CSR for the key in key_path (created with req->key_type when
 * new_key is set and the file does not exist). */
int tg_cert_csr(const char *key_path, int new_key, const struct tg_cert_req *req,
    const char *csr_path, struct tg_err *err);
/* Signs a CSR with the CA in ca_dir; names come from the CSR unless req
 * gives them. Extensions in the CSR other than SANs are never copied. */
int tg_cert_sign(const char *ca_dir, const char *csr_path,
    const struct tg_cert_req *req, const char *out_path, struct tg_err *err);

/* ---- client connections ------------------------------------------------ */

struct tg_store_conf;

/* Whom a client trusts when it connects out (get, put, cert show/check). */
struct tg_client_opts {
	const char *trust;        /* ca | tofu | whitelist | ca-or-tofu | insecure-no-validation */
	const char *known;        /* known-servers file for the pinning modes */
	const char *ca;           /* PEM file or folder; NULL = system + local CA */
	const char *local_ca;     /* the local CA file added to the defaults */
	const char *server_name;  /* name to verify and send in SNI */
	const char *cert, *key;   /* client certificate */
	int timeout_ms;
	/* called with a warning the user must see (insecure-no-validation) */
	void (*warn)(const char *msg);
	/* a cluster node's store (store.backend etcd): pins are recorded
	 * there when known lies in its state_dir; NULL: in the file */
	const struct tg_store_conf *store;
};

const char *tg_version(void);

#ifdef __cplusplus
}
#endif
#endif
