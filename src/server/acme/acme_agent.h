/*
 * The daemon's ACME agent: one thread that keeps the ACME certificate
 * current. It checks at random times between half of and the whole of
 * tls.acme.check_interval, renews when due (tg_acme_due), retries failures
 * with exponential backoff that honours Retry-After, logs every decision on
 * one line, and hands a new certificate to the event loop through a
 * uv_async, where the TLS context is rebuilt and swapped in.
 */
#ifndef TG_ACME_AGENT_H
#define TG_ACME_AGENT_H

#include <limits.h>
#include <stdint.h>
#include <time.h>

#include <tlsgate/tlsgate.h>

#include "acme.h"
#include "store.h"

struct tg_server;
struct tg_answers;
struct tg_acme_agent;

/* What the agent needs from the configuration, copied so the thread never
 * touches a configuration the loop may free. */
struct tg_acme_settings {
	char directory[512], ca_cert[PATH_MAX], email[256];
	char eab_kid[256], eab_hmac_key[256], dns_hook[PATH_MAX];
	char profile[128];           /* tls.acme.profile; "" the CA's default */
	char names_buf[4096];
	const char *names[64];
	size_t nnames;
	enum tg_acme_challenge challenge;
	int agree_terms;
	int64_t renew_before_s;
	uint64_t interval_ms;
	char state_dir[PATH_MAX];
	struct tg_store_conf store;  /* where orders and answers are written */
};

int tg_acme_settings_from(const struct tg_config *cfg, struct tg_acme_settings *s,
    struct tg_err *err);
/* The order options these settings give (solver, progress, replaces and
 * cancel left empty). */
void tg_acme_settings_opts(const struct tg_acme_settings *s, struct tg_acme_opts *o);
/* Store names of the certificate these settings order. */
void tg_acme_settings_files(const struct tg_acme_settings *s, char *crt, size_t crtlen,
    char *key, size_t keylen);

/* Starts the thread; its first check runs at once. */
struct tg_acme_agent *tg_acme_agent_start(struct tg_server *srv,
    const struct tg_acme_settings *s, struct tg_answers *answers, struct tg_err *err);
/* New settings (SIGHUP): taken at the next check, which runs now. */
void tg_acme_agent_update(struct tg_acme_agent *a, const struct tg_acme_settings *s);
/* Tells the thread to stop and to hand nothing more over (before the
 * loop's async handle closes). */
void tg_acme_agent_halt(struct tg_acme_agent *a);
/* Stops the thread and frees; an order in flight is waited for 10 s only,
 * then -1: the thread still uses the server, which must not be freed. */
int tg_acme_agent_stop(struct tg_acme_agent *a);

/* For /metrics and /status. */
struct tg_acme_stats {
	uint64_t orders_ok, orders_failed, renewals_ok, renewals_failed;
	time_t next_check, last_success;
	char state[32];              /* idle, ordering, failing */
	char last_error[TG_ERR_MSG];
};
void tg_acme_agent_stats(struct tg_acme_agent *a, struct tg_acme_stats *out);

#endif
