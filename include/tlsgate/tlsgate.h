/*
 * libtlsgate: certificates, trust and TLS connections for any service.
 *
 * The library is the core of the tlsgate command: the configuration model,
 * the storage seam (a folder or an etcd cluster), the PKI toolkit (a CA,
 * certificates, CSRs), and outgoing TLS connections judged by one of the
 * five trust modes (the libtls use case: dial a peer, know whether to trust
 * it). It has no event loop and starts no thread; everything blocks in the
 * caller's thread.
 *
 * Conventions, the same for every function below:
 * - Failure is -1 (or NULL) with a one-line message a person can act on in
 *   the struct tg_err the caller passes (err may be NULL: no message), and
 *   err->code one of enum tg_code. Exceptions are said where they occur.
 * - The caller owns every object a function returns and frees it with the
 *   matching free function named beside it; strings the library returns
 *   without a free function belong to an object, and live as long as it
 *   (or until the next call on it that says it replaces them).
 * - Threads: different objects may be used from different threads at once;
 *   one object is used by one thread at a time, unless a function says
 *   "any thread". The library writes nothing to stdout or stderr and never
 *   exits or aborts the process.
 * - Secrets (private keys) the library read are wiped before their memory
 *   is freed; tg_free_secret does the same for the caller.
 *
 * Build: pkg-config --cflags --libs tlsgate. Examples: examples/ in the
 * source tree, one small program per area below.
 */
#ifndef TLSGATE_H
#define TLSGATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TG_API __attribute__((visibility("default")))
#else
#define TG_API
#endif

/* ---- errors ------------------------------------------------------------ */

/* What failed, in err->code. The numbers are stable: new codes are added at
 * the end, none is ever renumbered. */
enum tg_code {
	TG_E_OK = 0,
	TG_E_USAGE = 1,            /* a bad argument (an unknown trust mode, a bad name) */
	TG_E_CONFIG_KEY = 2,       /* an unknown configuration key */
	TG_E_CONFIG_VALUE = 3,     /* a value its key does not accept */
	TG_E_CONFIG_SYNTAX = 4,    /* a configuration file that is not YAML */
	TG_E_NOT_FOUND = 5,        /* a file or store name that does not exist */
	TG_E_EXISTS = 6,           /* something that must not be overwritten exists */
	TG_E_IO = 7,               /* reading or writing failed */
	TG_E_PERM = 8,             /* unsafe permissions (a key readable by others) */
	TG_E_LOCKED = 9,           /* a store lock held by another process */
	TG_E_PEM = 10,             /* not a PEM or DER object */
	TG_E_KEY_MISMATCH = 11,    /* a key that does not match its certificate */
	TG_E_CERT_EXPIRED = 12,    /* a certificate past its notAfter */
	TG_E_PKI = 13,             /* building or signing a certificate failed */
	TG_E_TLS = 14,             /* a TLS handshake or record failed */
	TG_E_CONNECT = 15,         /* the peer could not be reached */
	TG_E_TRUST = 16,           /* the peer is not trusted by the trust mode */
	TG_E_HTTP = 17,            /* an HTTP exchange failed */
	TG_E_ACME = 18,            /* an ACME CA refused or failed */
	TG_E_INTERNAL = 19         /* out of memory, or a bug */
};

/* The family a code belongs to (several codes share one). */
enum tg_category {
	TG_CAT_USAGE, TG_CAT_CONFIG, TG_CAT_IO, TG_CAT_TLS, TG_CAT_TRUST,
	TG_CAT_PKI, TG_CAT_INTERNAL, TG_CAT_ACME
};

#define TG_ERR_MSG 768   /* the longest message, with its NUL */

/* Filled by a failing call; the caller allocates it (a local is fine). */
struct tg_err {
	int  code;               /* an enum tg_code, TG_E_OK when clear */
	char msg[TG_ERR_MSG];    /* "what is wrong (where): what to do", NUL-terminated */
};

/* The code's name ("TG_E_NOT_FOUND") and category; a static string,
 * "TG_E_UNKNOWN" for a number that is no code. Any thread. */
TG_API const char *tg_code_name(int code);
TG_API enum tg_category tg_code_category(int code);

/* ---- memory -------------------------------------------------------------- */

/* Frees what tg_store_get returned (NULL is fine). */
TG_API void tg_free(void *p);
/* Wipes len bytes at p, then frees it: for keys read with tg_store_get. */
TG_API void tg_free_secret(void *p, size_t len);

/* ---- configuration ----------------------------------------------------- */

/*
 * One model, four layers, later wins: built-in defaults < YAML file <
 * TLSGATE_* environment < flags. Every value remembers where it came from,
 * so errors can say "tls.cert: no such file (tlsgate.yaml:12)".
 * A configuration may be read from several threads at once while nobody
 * changes it.
 */
struct tg_config;

/* The built-in defaults (secure); NULL when out of memory. Free it with
 * tg_config_free. */
TG_API struct tg_config *tg_config_new(void);
TG_API void tg_config_free(struct tg_config *cfg);   /* NULL is fine */

/* Reads a YAML file; must_exist=0 makes a missing file a no-op. Relative
 * paths in it are taken from the file's folder. */
TG_API int tg_config_load_file(struct tg_config *cfg, const char *path, int must_exist,
    struct tg_err *err);
/* Applies the TLSGATE_* variables of envp (unknown TLSGATE_ names are
 * errors). envp is only read. */
TG_API int tg_config_load_env(struct tg_config *cfg, char *const *envp, struct tg_err *err);
/* Sets KEY to VALUE (both copied); origin names the source in messages,
 * e.g. "--set". The key's earlier value is replaced: pointers to it from
 * tg_config_get or tg_config_origin are no longer valid. */
TG_API int tg_config_set(struct tg_config *cfg, const char *key, const char *value,
    const char *origin, struct tg_err *err);
/* Checks the keys against each other (e.g. mutual mode needs a client CA). */
TG_API int tg_config_validate(struct tg_config *cfg, struct tg_err *err);

/* The value as text (lists joined by ","), or NULL for an unknown key.
 * Owned by cfg: valid until the key is set again or cfg is freed. */
TG_API const char *tg_config_get(const struct tg_config *cfg, const char *key);
/* "default", "FILE:LINE", "env TLSGATE_X" or the flag, for messages; NULL
 * for an unknown key. Owned by cfg, like tg_config_get's. */
TG_API const char *tg_config_origin(const struct tg_config *cfg, const char *key);
/* The key table: the i-th key's name (and its one-line doc in *doc when
 * doc is not NULL), NULL past the end. Static strings; any thread. */
TG_API const char *tg_config_key(size_t i, const char **doc);
/* The file tlsgate reads when none is named: $TLSGATE_CONFIG, else the
 * per-user or system default. Valid until the next call in the same
 * thread. */
TG_API const char *tg_config_default_path(void);

/* ---- storage seam ------------------------------------------------------ */

/*
 * Every persistent blob (CA, certificates, keys, known files) goes through
 * this interface, so a shared backend can replace the local folder. Names
 * are relative paths such as "ca/ca.key" (no "..", no hidden segment).
 * Each store object is used by one thread at a time.
 */
struct tg_store;

#define TG_STORE_SECRET 0x1   /* put: mode 0600 (folder); the library's own copy is wiped */

/* A folder (created if missing). Free with tg_store_free. */
TG_API struct tg_store *tg_store_fs_open(const char *dir, struct tg_err *err);
/* An etcd v3 cluster through its JSON gateway: endpoints "https://h:2379,..."
 * (tried in order), keys below prefix, TLS with ca, and client auth with
 * cert+key (may be NULL or ""). Locks are leases (free 10 s after a holder
 * dies); while a lock is held, writes happen only if it still is (fencing).
 * Free with tg_store_free. */
TG_API struct tg_store *tg_store_etcd_open(const char *endpoints, const char *prefix,
    const char *ca, const char *cert, const char *key, long timeout_ms, struct tg_err *err);
/* The store a configuration names (store.backend): state_dir or etcd. */
TG_API struct tg_store *tg_store_open(const struct tg_config *cfg, struct tg_err *err);
/* Releases the locks it holds, then frees it. NULL is fine. */
TG_API void tg_store_free(struct tg_store *st);
/* Reads name: *out is NUL-terminated (not counted in *len); free it with
 * tg_free, or tg_free_secret for a key. -1 with TG_E_NOT_FOUND when the
 * name does not exist. */
TG_API int tg_store_get(struct tg_store *st, const char *name, unsigned char **out,
    size_t *len, struct tg_err *err);
/* Writes name whole (a reader sees the old bytes or the new, never a mix);
 * flags: 0 or TG_STORE_SECRET. */
TG_API int tg_store_put(struct tg_store *st, const char *name, const void *data,
    size_t len, int flags, struct tg_err *err);
TG_API int tg_store_delete(struct tg_store *st, const char *name, struct tg_err *err);
/* 1 when name exists; 0 when it does not, or when the store cannot say
 * (use tg_store_get to tell those apart). */
TG_API int tg_store_exists(struct tg_store *st, const char *name);
/* The names directly below prefix ("" for the top), as a NULL-terminated
 * array; free it with tg_store_list_free. NULL on failure. */
TG_API char **tg_store_list(struct tg_store *st, const char *prefix, struct tg_err *err);
TG_API void tg_store_list_free(char **names);   /* NULL is fine */
/* An exclusive lock, waited for up to wait_ms, released by unlock, by
 * tg_store_free or by the holder's death (an expired holder never blocks
 * others). A store holds at most 16 locks at once. */
TG_API int tg_store_lock(struct tg_store *st, const char *name, int wait_ms,
    struct tg_err *err);
TG_API void tg_store_unlock(struct tg_store *st, const char *name);
/* Where the store is, for messages: a folder's root, or
 * "etcd:ENDPOINT/PREFIX". Owned by st. */
TG_API const char *tg_store_path(struct tg_store *st);

/* ---- PKI --------------------------------------------------------------- */

/* Files written: certificates 0644, keys 0600, each whole (temp file, fsync,
 * rename). No object stays behind. */

enum tg_key_type { TG_KEY_EC_P256, TG_KEY_EC_P384, TG_KEY_RSA_2048,
	TG_KEY_RSA_3072, TG_KEY_ED25519 };
enum tg_cert_kind { TG_CERT_SERVER, TG_CERT_CLIENT };

/* "ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "ed25519"; -1 (no message)
 * for anything else. */
TG_API int tg_key_type_parse(const char *s, enum tg_key_type *out);

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
TG_API int tg_ca_init(const char *dir, const char *cn, enum tg_key_type kt, int days,
    struct tg_err *err);
/* Issues a key and certificate signed by the CA in ca_dir, written to
 * PREFIX.crt (leaf then CA) and PREFIX.key (0600). */
TG_API int tg_cert_issue(const char *ca_dir, const struct tg_cert_req *req,
    const char *prefix, struct tg_err *err);
/* Writes a CSR for the key in key_path (created with req->key_type when
 * new_key is set and the file does not exist). */
TG_API int tg_cert_csr(const char *key_path, int new_key, const struct tg_cert_req *req,
    const char *csr_path, struct tg_err *err);
/* Signs a CSR with the CA in ca_dir; names come from the CSR unless req
 * gives them. Extensions in the CSR other than SANs are never copied. */
TG_API int tg_cert_sign(const char *ca_dir, const char *csr_path,
    const struct tg_cert_req *req, const char *out_path, struct tg_err *err);

/* ---- client connections ------------------------------------------------ */

/*
 * An outgoing TLS connection (TLS 1.2 at least, AEAD only), its peer judged
 * by a trust mode before tg_client_open returns: a peer the mode does not
 * trust is an error (TG_E_TRUST, in words), never a connection. Blocking,
 * with a timeout on every step. One thread at a time per connection. A
 * peer that vanishes makes a call fail; it never raises SIGPIPE in the
 * program (the signal is held in the calling thread during the call).
 */
struct tg_client;

/* Whom a client trusts when it connects out. All strings are read during
 * tg_client_open only; zeros everywhere mean: trust mode ca, the system's
 * roots, SNI and verification against host, no client certificate, 30 s. */
struct tg_client_opts {
	const char *trust;        /* ca | tofu | whitelist | ca-or-tofu | insecure-no-validation */
	const char *known;        /* known-servers file, for every mode but ca */
	const char *ca;           /* PEM file or folder; NULL = system roots + local_ca */
	const char *local_ca;     /* a CA file added to the defaults; NULL = none */
	const char *server_name;  /* name to verify and send in SNI; NULL = host */
	const char *cert, *key;   /* client certificate and its key; NULL = none */
	int timeout_ms;           /* each connect, handshake, read, write; 0 = 30 s */
	/* insecure-no-validation: called, in the caller's thread during
	 * tg_client_open, with the warning the user must see; NULL = none */
	void (*warn)(const char *msg);
	/* key-exchange groups, "X25519:P-256"; NULL = X25519MLKEM768 first
	 * where the library has it (OpenSSL 3.5+), then X25519:P-256:P-384 */
	const char *groups;
	/* ALPN protocols to offer, "h2,http/1.1"; NULL = none. A server that
	 * selects none of them is refused (TG_E_TLS), one that selects nothing
	 * is accepted; tg_client_alpn tells which it chose. */
	const char *alpn;
	/* CRLs (a PEM or DER file, or a folder of them) the server's
	 * certificate is checked against; NULL = none. Without a CRL of its
	 * issuer the server is refused, unless crl_soft_fail. */
	const char *crl;
	int crl_soft_fail;
};

/* Connects to host:port with TLS and judges the server by o (NULL: the
 * zeros above). Pinning modes record a first contact in o->known. Free
 * with tg_client_close. */
TG_API int tg_client_open(const char *host, int port, const struct tg_client_opts *o,
    struct tg_client **out, struct tg_err *err);
/* Up to len bytes; 0 when the server closed cleanly; -1 on error. */
TG_API ssize_t tg_client_read(struct tg_client *c, void *buf, size_t len, struct tg_err *err);
/* All len bytes, or -1. */
TG_API int tg_client_write(struct tg_client *c, const void *buf, size_t len,
    struct tg_err *err);
/* Why the server was trusted, in words ("trusted: ... issued by ..."); *trusted
 * (when not NULL) 1. Owned by c. */
TG_API const char *tg_client_verdict(const struct tg_client *c, int *trusted);
/* "TLSv1.3 TLS_AES_128_GCM_SHA256". Owned by c. */
TG_API const char *tg_client_protocol(const struct tg_client *c);
/* The ALPN protocol the server selected ("h2"), "" when none. Owned by c. */
TG_API const char *tg_client_alpn(const struct tg_client *c);
/* Sends close_notify, closes the socket, frees c. NULL is fine. */
TG_API void tg_client_close(struct tg_client *c);

/* "0.1.0"; a static string, any thread. */
TG_API const char *tg_version(void);

#ifdef __cplusplus
}
#endif
#endif
