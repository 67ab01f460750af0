/*
 * The trust engine: one decision for both directions (a server judging a
 * client certificate, a client judging a server). Input: the mode, the
 * peer's identity and leaf, whether its chain verified (with the reason when
 * not) and the known file; output: accept or reject, whether to record the
 * pin, whether to warn, and the reason in words.
 */
#ifndef TG_TRUST_H
#define TG_TRUST_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

#include <openssl/x509.h>

#include <tlsgate/tlsgate.h>

#include "store.h"

enum tg_trust_mode {
	TG_TRUST_CA,
	TG_TRUST_TOFU,
	TG_TRUST_WHITELIST,
	TG_TRUST_CA_OR_TOFU,
	TG_TRUST_INSECURE_NO_VALIDATION,   /* only when the user writes the word */
};

int tg_trust_mode_parse(const char *s, enum tg_trust_mode *out);
const char *tg_trust_mode_name(enum tg_trust_mode m);

struct tg_known;

struct tg_trust {
	_Atomic int refs;            /* tg_trust_ref / tg_trust_free */
	enum tg_trust_mode mode;
	char known[PATH_MAX];        /* known-clients / known-servers file */
	const char *store_name;      /* "known-clients" or "known-servers" */
	char **allow;                /* identity allow-list (clients), NULL-terminated */
	/* the known file, re-read when it changes on disk */
	pthread_mutex_t lock;
	pthread_mutex_t refresh_lock;   /* one tg_trust_refresh at a time, so
	                                 * an older read never replaces a newer */
	struct tg_known *cache;
	int have_cache;
	int broken;                  /* the file changed and cannot be read (t->lock) */
	char broken_msg[TG_ERR_MSG];
	struct stat broken_st;       /* the file as it was when it failed */
	/* watched: someone calls tg_trust_refresh when the file changes (the
	 * server, from an inotify watch), so a judgement reads the cache
	 * without a stat(); unwatched (the CLI), each judgement stats */
	_Atomic int watched;
	uint64_t checked_ms;         /* when the file was last compared (t->lock) */
	/* a cluster (store.backend etcd) with the known file in state_dir:
	 * pins are recorded in the store, one key an identity, by
	 * transaction (tg_trust_share, pins_etcd.c) */
	struct tg_store_conf *share;
	char share_name[256];
	pthread_mutex_t share_lock;
#define TG_TRUST_STORES 4         /* libuv's thread pool: four records at once */
	struct tg_store *share_st[TG_TRUST_STORES];   /* open stores kept for the next records */
};

struct tg_trust_verdict {
	int accept, record, warn;
	int first;                   /* record: a first contact (unknown identity) */
	char identity[320];
	char pin[64];
	char reason[1200];
};

/* store_name: "known-clients" or "known-servers"; allow may be NULL.
 * The object is counted: it starts with one reference, the caller's. */
struct tg_trust *tg_trust_new(enum tg_trust_mode mode, const char *known_path,
    const char *store_name, const char *const *allow, size_t nallow, struct tg_err *err);
/* Another reference (a TLS context, a queued job); returns t. Any thread. */
struct tg_trust *tg_trust_ref(struct tg_trust *t);
/* Drops one reference; the last one frees it. NULL is ignored. */
void tg_trust_free(struct tg_trust *t);
/* Trust objects alive in this process (for /metrics: reloads must not
 * make them pile up). */
long tg_trust_live(void);

/* Judges a peer. chain_ok: the chain verified (names, dates, purpose
 * included); chain_words: why not, when it did not. */
int tg_trust_judge(struct tg_trust *t, X509 *leaf, const char *identity, int chain_ok,
    const char *chain_words, struct tg_trust_verdict *v, struct tg_err *err);
/* Reads the known file again if it changed since the cache was made; the
 * file is read outside the lock and swapped in under it. Any thread. */
int tg_trust_refresh(struct tg_trust *t, struct tg_err *err);
/* How many pins the cached list holds ((size_t)-1 before the first read). */
size_t tg_trust_count(struct tg_trust *t);
/* Records pins through the cluster's store when sc is etcd and the known
 * file lies in its state_dir: 1 shared, 0 not a cluster, -1 outside
 * state_dir (stays this node's own; err says so). Before any judgement. */
int tg_trust_share(struct tg_trust *t, const struct tg_store_conf *sc, struct tg_err *err);
/* Writes the verdict's pin to the known file (when v->record). */
int tg_trust_record(struct tg_trust *t, const struct tg_trust_verdict *v, struct tg_err *err);
/* Checks the allow-list; 0 allowed, -1 with the reason in v->reason. */
int tg_trust_allowed(const struct tg_trust *t, X509 *leaf, struct tg_trust_verdict *v);

/* A client's identity: its first DNS SAN, else its CN. */
void tg_trust_client_identity(X509 *leaf, char *buf, size_t len);
/* A server's identity: "host:port", "[v6]:port". */
void tg_trust_server_identity(const char *host, int port, char *buf, size_t len);

#endif
