/*
 * The ACME agent thread (see acme_agent.h). Decisions are logged one line
 * each, because silent renewal failure is what operators fear most from
 * ACME clients: "checked, not due until", "renewing because", "failed
 * with ..., next try at", "installed, expires".
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "acme_agent.h"
#include "acme_answers.h"
#include "config_int.h"
#include "error.h"
#include "server.h"
#include "util.h"

struct tg_acme_agent {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct tg_server *srv;
	struct tg_answers *answers;
	struct tg_acme_settings set;     /* guarded by mu; the thread copies it */
	int stop, check_now, failures;
	unsigned char handed[32];        /* fingerprint of the last certificate handed over */
	struct tg_acme_stats stats;      /* guarded by mu */
};

int
tg_acme_settings_from(const struct tg_config *cfg, struct tg_acme_settings *s,
    struct tg_err *err)
{
	const char *const *items;
	size_t n, i, off = 0;

	memset(s, 0, sizeof(*s));
	snprintf(s->directory, sizeof(s->directory), "%s", tg_cfg_str(cfg,
	    TG_CFG_TLS_ACME_DIRECTORY));
	if (tg_cfg_str(cfg, TG_CFG_TLS_ACME_CA_CERT)[0])
		tg_cfg_path(cfg, TG_CFG_TLS_ACME_CA_CERT, s->ca_cert, sizeof(s->ca_cert));
	snprintf(s->email, sizeof(s->email), "%s", tg_cfg_str(cfg, TG_CFG_TLS_ACME_EMAIL));
	snprintf(s->eab_kid, sizeof(s->eab_kid), "%s", tg_cfg_str(cfg, TG_CFG_TLS_ACME_EAB_KID));
	snprintf(s->eab_hmac_key, sizeof(s->eab_hmac_key), "%s",
	    tg_cfg_str(cfg, TG_CFG_TLS_ACME_EAB_HMAC_KEY));
	snprintf(s->dns_hook, sizeof(s->dns_hook), "%s", tg_cfg_str(cfg, TG_CFG_TLS_ACME_DNS_HOOK));
	if (snprintf(s->profile, sizeof(s->profile), "%s", tg_cfg_str(cfg,
	    TG_CFG_TLS_ACME_PROFILE)) >= (int)sizeof(s->profile))
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.acme.profile: too long");
	if (tg_acme_challenge_parse(tg_cfg_str(cfg, TG_CFG_TLS_ACME_CHALLENGE), &s->challenge) < 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.acme.challenge: unknown");
	s->agree_terms = (int)tg_cfg_num(cfg, TG_CFG_TLS_ACME_AGREE_TERMS);
	s->renew_before_s = tg_cfg_num(cfg, TG_CFG_TLS_ACME_RENEW_BEFORE) / 1000;
	s->interval_ms = (uint64_t)tg_cfg_num(cfg, TG_CFG_TLS_ACME_CHECK_INTERVAL);
	tg_path_expand(s->state_dir, sizeof(s->state_dir), tg_cfg_str(cfg, TG_CFG_STATE_DIR));
	tg_store_conf_from(cfg, &s->store);
	if ((n = tg_cfg_list(cfg, TG_CFG_TLS_ACME_NAMES, &items)) == 0)
		n = tg_cfg_list(cfg, TG_CFG_TLS_NAMES, &items);
	if (n > sizeof(s->names) / sizeof(s->names[0]))
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.acme.names: at most %zu names in one "
		    "certificate", sizeof(s->names) / sizeof(s->names[0]));
	for (i = 0; i < n; i++) {
		const char *v = items[i];
		size_t l;
		if (!strncmp(v, "dns:", 4) || !strncmp(v, "ip:", 3))
			v = strchr(v, ':') + 1;
		l = strlen(v) + 1;
		if (off + l > sizeof(s->names_buf))
			return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.acme.names: too long");
		memcpy(s->names_buf + off, v, l);
		s->names[s->nnames++] = s->names_buf + off;
		off += l;
	}
	if (s->nnames == 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.acme.names is empty");
	return 0;
}

void
tg_acme_settings_files(const struct tg_acme_settings *s, char *crt, size_t crtlen, char *key,
    size_t keylen)
{
	tg_acme_cert_names(s->directory, s->names[0], crt, crtlen, key, keylen);
}

void
tg_acme_settings_opts(const struct tg_acme_settings *s, struct tg_acme_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->directory = s->directory;
	o->profile = s->profile;
	o->ca_cert = s->ca_cert;
	o->email = s->email;
	o->agree_terms = s->agree_terms;
	o->eab_kid = s->eab_kid;
	o->eab_hmac_key = s->eab_hmac_key;
	o->names = s->names;
	o->nnames = s->nnames;
	o->challenge = s->challenge;
	o->dns_hook = s->dns_hook;
}

static void
copy_settings(struct tg_acme_settings *dst, const struct tg_acme_settings *src)
{
	size_t i;

	*dst = *src;
	/* the names point into names_buf: re-aim them at the copy */
	for (i = 0; i < dst->nnames; i++)
		dst->names[i] = dst->names_buf + (src->names[i] - src->names_buf);
}

static void
when_text(time_t t, char *buf, size_t len)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void
names_text(const struct tg_acme_settings *s, char *buf, size_t len)
{
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < s->nnames && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? "," : "", s->names[i]);
}

static int
cancelled(void *arg)
{
	struct tg_acme_agent *a = arg;
	int stop;

	pthread_mutex_lock(&a->mu);
	stop = a->stop;
	pthread_mutex_unlock(&a->mu);
	return stop;
}

static void
progress(void *arg, const char *line)
{
	struct tg_acme_agent *a = arg;
	tg_log(a->srv, TG_LOG_INFO, "acme: %s", line);
}

/* Hands a certificate to the loop unless it is the one it already has. */
static void
hand_over(struct tg_acme_agent *a, X509 *leaf)
{
	unsigned char md[32];
	unsigned int len = 0;

	X509_digest(leaf, EVP_sha256(), md, &len);
	pthread_mutex_lock(&a->mu);
	if (!a->stop && memcmp(md, a->handed, sizeof(md)) != 0) {
		memcpy(a->handed, md, sizeof(md));
		uv_async_send(&a->srv->acme_async);
	}
	pthread_mutex_unlock(&a->mu);
}

static uint64_t
jitter(uint64_t interval_ms)
{
	uint32_t r = 0;

	RAND_bytes((unsigned char *)&r, sizeof(r));
	/* uniformly between half the interval and the whole of it */
	return interval_ms / 2 + (interval_ms / 2 ? (uint64_t)r % (interval_ms / 2 + 1) : 0);
}

/* The agent's state for /status, and when it looks next. */
static void
set_state(struct tg_acme_agent *a, const char *state, uint64_t wait)
{
	pthread_mutex_lock(&a->mu);
	snprintf(a->stats.state, sizeof(a->stats.state), "%s", state);
	if (wait)
		a->stats.next_check = time(NULL) + (time_t)(wait / 1000);
	pthread_mutex_unlock(&a->mu);
}

/* A new certificate is in the store and handed over: said and counted. */
static void
succeeded(struct tg_acme_agent *a, X509 *leaf, const char *names, int renewing, uint64_t wait)
{
	char exp[64], next[64];
	struct tm tm;

	ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm);
	when_text(timegm(&tm), exp, sizeof(exp));
	when_text(time(NULL) + (time_t)(wait / 1000), next, sizeof(next));
	tg_log(a->srv, TG_LOG_INFO, "acme: certificate for %s %s; expires %s; next check at "
	    "%s", names, renewing ? "renewed" : "obtained", exp, next);
	pthread_mutex_lock(&a->mu);
	if (renewing)
		a->stats.renewals_ok++;
	else
		a->stats.orders_ok++;
	a->stats.last_success = time(NULL);
	a->stats.last_error[0] = '\0';
	pthread_mutex_unlock(&a->mu);
	set_state(a, "idle", wait);
	a->failures = 0;
}

/* An order or renewal failed: said and counted; the wait before the next
 * try (backoff: 1 min doubling to 1 day, never sooner than the CA asked). */
static uint64_t
failed(struct tg_acme_agent *a, const char *names, int renewing, int retry_after,
    const struct tg_err *err)
{
	uint64_t wait;
	char next[64];

	a->failures++;
	wait = 60000ull << (a->failures > 10 ? 10 : a->failures - 1);
	if (wait > 86400000ull)
		wait = 86400000ull;
	if ((uint64_t)retry_after * 1000 > wait)
		wait = (uint64_t)retry_after * 1000;
	when_text(time(NULL) + (time_t)(wait / 1000), next, sizeof(next));
	tg_log(a->srv, TG_LOG_ERROR, "acme: %s for %s failed: %s; the current certificate keeps "
	    "serving; next try at %s (failure %d in a row)", renewing ? "renewal" : "order", names,
	    err->msg, next, a->failures);
	pthread_mutex_lock(&a->mu);
	if (renewing)
		a->stats.renewals_failed++;
	else
		a->stats.orders_failed++;
	snprintf(a->stats.last_error, sizeof(a->stats.last_error), "%s", err->msg);
	pthread_mutex_unlock(&a->mu);
	set_state(a, "failing", wait);
	return wait;
}

/* The certificate in the store, if usable, handed over and judged: 0 when
 * it is not due (said), 1 when it is (renewal; *id its ARI id, "" when the
 * CA has no ARI), 2 when there is none to use. *leaf is the caller's. */
static int
judge_cached(struct tg_acme_agent *a, const struct tg_acme_settings *s, struct tg_store *st,
    const struct tg_acme_opts *o, const char *names, uint64_t *wait, X509 **leaf, char *id,
    size_t idlen)
{
	char crt[600], key[600], why[400], next[64];
	struct tg_acme_ari ari;
	struct tg_err err;
	int have_ari = 0;
	time_t when;

	tg_acme_settings_files(s, crt, sizeof(crt), key, sizeof(key));
	if (tg_acme_cached(st, crt, key, s->names, s->nnames, leaf, &err) < 0) {
		tg_log(a->srv, TG_LOG_INFO, "acme: no usable certificate for %s in the store (%s); "
		    "ordering one", names, err.msg);
		return 2;
	}
	hand_over(a, *leaf);   /* a restart, or a copy another process made */
	if (tg_acme_fetch_ari(o, *leaf, &ari, &err) == 0)
		have_ari = 1;
	if (!tg_acme_due(*leaf, s->renew_before_s, have_ari ? &ari : NULL, time(NULL), &when,
	    why, sizeof(why))) {
		/* a short-lived certificate may fall due before the next regular
		 * check: then the next check is just after it falls due */
		time_t now = time(NULL);
		if (when > now && (uint64_t)(when - now) * 1000 + 1000 < *wait)
			*wait = (uint64_t)(when - now) * 1000 + 1000;
		when_text(now + (time_t)(*wait / 1000), next, sizeof(next));
		tg_log(a->srv, TG_LOG_INFO, "acme: certificate for %s checked: %s; next check "
		    "at %s", names, why, next);
		return 0;
	}
	tg_log(a->srv, TG_LOG_INFO, "acme: certificate for %s: %s", names, why);
	if (tg_acme_cert_id(*leaf, id, idlen) < 0 || !have_ari)
		id[0] = '\0';   /* "replaces" only where the CA speaks ARI */
	return 1;
}

/* One check, under the store's "acme" lock (one order per name set across
 * the processes and nodes that share the store); returns the milliseconds
 * until the next one. */
static uint64_t
check(struct tg_acme_agent *a, const struct tg_acme_settings *s)
{
	struct tg_store *st = NULL;
	struct tg_acme_opts o;
	struct tg_acme_result res;
	struct tg_err err;
	X509 *leaf = NULL;
	char crt[600], key[600], names[1024], id[300] = "";
	uint64_t wait = jitter(s->interval_ms);
	int due = 2, locked = 0;

	memset(&res, 0, sizeof(res));
	names_text(s, names, sizeof(names));
	tg_acme_settings_files(s, crt, sizeof(crt), key, sizeof(key));
	tg_acme_settings_opts(s, &o);
	/* a cluster's store writes through to state_dir, where the workers and
	 * the server read the certificate */
	if ((st = tg_store_open_conf(&s->store, 1, &err)) == NULL)
		goto out;
	if (tg_store_lock(st, "acme", 60000, &err) < 0)
		goto out;
	locked = 1;
	if ((due = judge_cached(a, s, st, &o, names, &wait, &leaf, id, sizeof(id))) == 0) {
		set_state(a, "idle", wait);
		a->failures = 0;
		goto out;
	}
	set_state(a, "ordering", 0);
	o.replaces = id[0] ? id : NULL;
	o.solver = tg_answers_solver(a->answers);
	o.progress = progress;
	o.progress_arg = a;
	o.cancelled = cancelled;
	o.cancel_arg = a;
	X509_free(leaf);
	leaf = NULL;
	if (tg_acme_obtain(st, &o, &res, &err) == 0 && tg_acme_save(st, crt, key, &res, &err) == 0 &&
	    tg_acme_cached(st, crt, key, s->names, s->nnames, &leaf, &err) == 0) {
		hand_over(a, leaf);
		{
			/* the new certificate's own due time may come before the
			 * next regular check (a short-lived one) */
			time_t when, now = time(NULL);
			char why[400];
			if (!tg_acme_due(leaf, s->renew_before_s, NULL, now, &when, why, sizeof(why)) &&
			    when > now && (uint64_t)(when - now) * 1000 + 1000 < wait)
				wait = (uint64_t)(when - now) * 1000 + 1000;
		}
		succeeded(a, leaf, names, due == 1, wait);
		due = 0;
	}
out:
	if (locked)
		tg_store_unlock(st, "acme");
	if (due != 0)   /* failed; stopping is not a failure worth a log line */
		wait = cancelled(a) ? 0 : failed(a, names, due == 1, res.retry_after, &err);
	tg_acme_result_clear(&res);
	X509_free(leaf);
	tg_store_free(st);
	return wait;
}

static void *
run(void *arg)
{
	struct tg_acme_agent *a = arg;
	struct tg_acme_settings s;
	uint64_t wait;

	for (;;) {
		struct timespec until;
		pthread_mutex_lock(&a->mu);
		if (a->stop) {
			pthread_mutex_unlock(&a->mu);
			break;
		}
		copy_settings(&s, &a->set);
		a->check_now = 0;
		pthread_mutex_unlock(&a->mu);
		wait = check(a, &s);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)(wait / 1000);
		until.tv_nsec += (long)(wait % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L)
			until.tv_sec++, until.tv_nsec -= 1000000000L;
		pthread_mutex_lock(&a->mu);
		while (!a->stop && !a->check_now &&
		    pthread_cond_timedwait(&a->cv, &a->mu, &until) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&a->mu);
	}
	return NULL;
}

struct tg_acme_agent *
tg_acme_agent_start(struct tg_server *srv, const struct tg_acme_settings *s,
    struct tg_answers *answers, struct tg_err *err)
{
	struct tg_acme_agent *a = calloc(1, sizeof(*a));

	if (a == NULL) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		return NULL;
	}
	a->srv = srv;
	a->answers = answers;
	copy_settings(&a->set, s);
	snprintf(a->stats.state, sizeof(a->stats.state), "starting");
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	if (pthread_create(&a->th, NULL, run, a) != 0) {
		pthread_mutex_destroy(&a->mu);
		pthread_cond_destroy(&a->cv);
		free(a);
		tg_err_set(err, TG_E_INTERNAL, "cannot start the ACME thread");
		return NULL;
	}
	return a;
}

void
tg_acme_agent_update(struct tg_acme_agent *a, const struct tg_acme_settings *s)
{
	pthread_mutex_lock(&a->mu);
	copy_settings(&a->set, s);
	a->check_now = 1;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

void
tg_acme_agent_halt(struct tg_acme_agent *a)
{
	pthread_mutex_lock(&a->mu);
	a->stop = 1;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

int
tg_acme_agent_stop(struct tg_acme_agent *a)
{
	struct timespec until;

	if (a == NULL)
		return 0;
	tg_acme_agent_halt(a);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	/* an order in flight stops at its next step or wait; one blocked on the
	 * network longer than this is left to die with the process */
	if (pthread_timedjoin_np(a->th, NULL, &until) != 0) {
		pthread_detach(a->th);
		return -1;
	}
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	free(a);
	return 0;
}

void
tg_acme_agent_stats(struct tg_acme_agent *a, struct tg_acme_stats *out)
{
	pthread_mutex_lock(&a->mu);
	*out = a->stats;
	pthread_mutex_unlock(&a->mu);
}
