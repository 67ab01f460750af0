/*
 * The follower (store_follow.c): a node's state_dir kept a copy of the
 * etcd store, and the store's health. Built on the store (store.h) and the
 * pins (pins.h); the daemon starts one per process.
 */
#ifndef TG_FOLLOW_H
#define TG_FOLLOW_H

#include <stddef.h>
#include <time.h>

#include "store.h"

struct tg_store_follow;
/* error: 1 for a failure, 0 for news; called from the follower's threads */
typedef void (*tg_store_log_fn)(void *arg, int error, const char *line);

struct tg_store_health {
	int up;                      /* the last probe got a quorum answer */
	time_t since;                /* up or down since */
	double latency_ms;           /* of the last probe */
	long long revision;          /* the store's, at the last probe */
	long long applied;           /* the last revision copied into state_dir */
	int watching;                /* this process keeps the copy */
	time_t behind_since;         /* the copy lags the store since (0: it does not) */
	long long keys;
	unsigned long long probes, failures, events, pulls, watch_restarts;
	time_t last_event;
	char last_error[TG_ERR_MSG];
};

/* Copies every key below sc's prefix into sc->state_dir once (unchanged
 * files are left alone); *rev is the revision copied. */
int tg_store_pull(const struct tg_store_conf *sc, long long *rev, size_t *count,
    struct tg_err *err);
/* Probes the store's health every few seconds (tg_store_up) and, with
 * watch, pulls and then follows by watch: threads of its own, until
 * stopped. One process per state_dir watches; every process probes. */
struct tg_store_follow *tg_store_follow_start(const struct tg_store_conf *sc, int watch,
    tg_store_log_fn log, void *arg, struct tg_err *err);
void tg_store_follow_stop(struct tg_store_follow *f);
void tg_store_follow_health(struct tg_store_follow *f, struct tg_store_health *h);

#endif
