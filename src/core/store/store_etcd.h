/*
 * The etcd backend's insides, shared by store_etcd.c (the operations) and
 * store_follow.c (the local copy kept by a watch). Not a public interface.
 */
#ifndef TG_STORE_ETCD_H
#define TG_STORE_ETCD_H

#include <limits.h>
#include <pthread.h>

#include <curl/curl.h>
#include <jansson.h>

#define MAX_ENDPOINTS 16
#define MAX_LOCKS     16
#define LOCK_TTL_S    10          /* a dead holder's lock is free after this */
#define MAX_REPLY     (32u << 20) /* values are at most 16 MiB, base64 grows them */

/* etcd's own users (store.user, store.password_file): the JSON gateway
 * does not pass a client certificate's CN on to etcd's RBAC, so a user
 * with a password gets a token (/v3/auth/authenticate), sent with every
 * request and fetched again when etcd drops it. Shared by the threads
 * that use one store (its lock keepers): the token under mu. */
struct etcd_auth {
	pthread_mutex_t mu;
	char user[128], password[256];
	char token[2048];
};

struct etcd_conf {
	char endpoints[MAX_ENDPOINTS][256];
	size_t n;
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	long timeout_ms;
	struct etcd_auth *auth;      /* NULL: no etcd user */
};

struct etcd_lock {
	char name[128];
	char key[512];               /* the lock key in etcd */
	long long lease;
	pthread_t keeper;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop, lost;
};

struct etcd_impl {
	struct etcd_conf conf;
	char prefix[256];
	size_t cur;                  /* the endpoint that answered last */
	CURL *curl;
	struct etcd_lock *locks[MAX_LOCKS];
};

/* POSTs body to path on the first endpoint that answers; *out is the JSON
 * reply (json_decref). Errors name the endpoint and say what to do. */
int tg_etcd_call(const struct etcd_conf *cf, size_t *cur, CURL *curl, const char *path,
    json_t *body, json_t **out, struct tg_err *err);
/* The auth token for a request (logs in when there is none); "" without
 * an etcd user. */
int tg_etcd_token(const struct etcd_conf *cf, size_t *cur, CURL *curl, char *buf, size_t len,
    struct tg_err *err);
/* Forgets a token etcd refused (expired, the auth store changed). */
void tg_etcd_token_drop(const struct etcd_conf *cf);
/* Does this error say etcd refused the token? */
int tg_etcd_token_refused(const char *msg);
/* Sets the etcd user of an open store (its endpoints must be https://). */
int tg_store_etcd_login(struct tg_store *st, const char *user, const char *password,
    struct tg_err *err);
/* Reads store.password_file (not open to others, not writable by the
 * group) into buf: "" when path is empty. */
int tg_store_read_password(const char *path, char *buf, size_t len, struct tg_err *err);
/* TLS, client certificate and protocol options of every request. */
void tg_etcd_curl_tls(CURL *curl, const struct etcd_conf *cf);
/* What a failed transfer means, in words (hint after the curl message). */
const char *tg_etcd_hint(const struct etcd_conf *cf, size_t e, CURLcode c, const char *cerr);
/* bytes → base64 (malloc'ed; NULL without memory) */
char *tg_etcd_b64(const void *data, size_t len);
/* base64 → NUL-terminated OPENSSL_malloc'ed buffer */
int tg_etcd_unb64(const char *in, unsigned char **out, size_t *len);
json_t *tg_etcd_key_json(const char *k);
/* etcd's range_end for every key that starts with p */
json_t *tg_etcd_prefix_end(const char *p);
/* the gateway writes 64-bit integers as strings */
long long tg_etcd_ll(json_t *v);

/* Is st the etcd backend (not a folder, not a mirror)? */
int tg_store_is_etcd(const struct tg_store *st);

#endif
