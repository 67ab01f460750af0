/*
 * The served certificate's life in the daemon: the TLS context built from
 * the settings (files, automatic, ACME), and rebuilt aside and swapped in
 * whole when the certificate changes (the ACME agent hands one over, the
 * files change on disk and settle, a reload); connections keep the context
 * they started with. Loop thread only.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "acme_agent.h"
#include "acme_answers.h"
#include "certs.h"
#include "config_int.h"
#include "error.h"
#include "magic.h"
#include "ossl_words.h"
#include "server.h"
#include "store.h"
#include "tls.h"
#include "tls_life.h"
#include "trust.h"
#include "tunnel.h"
#include "upstream.h"
#include "util.h"
#include "watch.h"

/* The HTTPS listener's ALPN: what it speaks (HTTP/1.1, and 1.0 for a
 * client that asks only for it); acme-tls/1 to a validation server whose
 * name has a challenge being answered (acme_answers.c decided that in the
 * client hello). A client that offers only other protocols (h2 alone, a
 * gRPC client) is refused with no_application_protocol rather than left
 * to fail later without a word. */
static int
https_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
    unsigned int inlen, void *arg)
{
	static const struct tg_alpn http = { "\x08http/1.1\x08http/1.0", 18, 2 },
	    acme = { "\x0a" "acme-tls/1", 11, 1 };
	int challenge = tg_answers_is_challenge(ssl);

	(void)arg;   /* none: a reload builds the context on a temporary server */
	if (tg_alpn_pick(challenge ? &acme : &http, in, inlen, out, outlen) >= 0)
		return SSL_TLSEXT_ERR_OK;
	if (!challenge) {   /* counted by the connection that logs it (conn.c) */
		char offer[300];
		tg_alpn_text(in, inlen, offer, sizeof(offer));
		tg_tls_note(ssl, "the client offered ALPN %s; this listener speaks http/1.1 (an "
		    "h2 or gRPC service goes behind a tunnel with alpn: [h2])", offer);
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* Builds a TLS context from s->tls (and s->clients, s->answers), and notes
 * what /metrics says about its certificate. */
static SSL_CTX *
build_ctx(struct tg_server *s, struct tg_err *err)
{
	struct tg_server_tls t;
	SSL_CTX *ctx;
	X509 *leaf;
	struct tm tm;

	memset(&t, 0, sizeof(t));
	t.cert = s->tls.cert;
	t.key = s->tls.key;
	t.cert_origin = s->tls.cert_origin;
	t.key_origin = s->tls.key_origin;
	t.min_version = s->tls.min_version;
	t.groups = s->tls.groups;
	t.groups_what = "tls.groups";
	t.clients_crl = s->tls.clients_crl;
	t.crl_soft = s->tls.crl_soft;
	t.mutual = s->mutual;
	t.clients_ca = s->tls.clients_ca;
	t.clients_ca_origin = s->tls.clients_ca_origin;
	t.clients = s->clients;
	/* several workers, or a cluster's nodes: stateless tickets under the
	 * shared keys */
	t.shared_sessions = s->workers > 1 || s->store != NULL;
	if ((ctx = tg_tls_server_ctx(&t, err)) == NULL)
		return NULL;
	if (s->answers)
		tg_answers_hook_ctx(ctx, s->answers);
	SSL_CTX_set_alpn_select_cb(ctx, https_alpn, NULL);
	leaf = SSL_CTX_get0_certificate(ctx);
	s->m.cert_not_after = 0;
	s->m.cert_name[0] = '\0';
	if (leaf && ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) == 1)
		s->m.cert_not_after = (int64_t)timegm(&tm);
	if (leaf)
		tg_cert_label(leaf, s->m.cert_name, sizeof(s->m.cert_name));
	snprintf(s->m.cert_source, sizeof(s->m.cert_source), "%s", s->tls.cert_origin);
	return ctx;
}

/* Where ACME's certificate and key are in state_dir (the store's copy). */
static int
acme_paths(const struct tg_acme_settings *set, char *cert, char *key, size_t len,
    struct tg_err *err)
{
	char crt[600], k[600];

	tg_acme_settings_files(set, crt, sizeof(crt), k, sizeof(k));
	if (tg_path_fmt(cert, len, err, "%s/%s", set->state_dir, crt) < 0 ||
	    tg_path_fmt(key, len, err, "%s/%s", set->state_dir, k) < 0)
		return -1;
	return 0;
}

/* The ACME certificate's files, and whether a usable one is there now. */
static int
acme_keypair(struct tg_server *s, const struct tg_config *cfg, struct tg_keypair *kp,
    struct tg_err *err)
{
	struct tg_acme_settings *set = calloc(1, sizeof(*set));
	char crt[600], key[600];
	struct tg_store *st;
	struct tg_err e2;
	X509 *leaf = NULL;

	if (set == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	if (tg_acme_settings_from(cfg, set, err) < 0) {
		free(set);
		return -1;
	}
	free(s->acme_set);
	s->acme_set = set;
	tg_acme_settings_files(set, crt, sizeof(crt), key, sizeof(key));
	memset(kp, 0, sizeof(*kp));
	/* an origin is for messages: a long directory URL may be cut there */
	snprintf(kp->cert_origin, sizeof(kp->cert_origin), "ACME %.300s", set->directory);
	snprintf(kp->key_origin, sizeof(kp->key_origin), "ACME %.300s", set->directory);
	if ((st = tg_store_fs_open(set->state_dir, err)) == NULL)
		return -1;
	if (tg_store_exists(st, "ca/ca.crt") && tg_path_fmt(kp->local_ca, sizeof(kp->local_ca),
	    err, "%s/ca/ca.crt", set->state_dir) < 0)
		goto fail;
	/* a cached certificate that does not pass is not served: the agent
	 * orders a new one at once */
	s->acme_unusable[0] = '\0';
	if (tg_acme_cached(st, crt, key, set->names, set->nnames, &leaf, &e2) < 0)
		snprintf(s->acme_unusable, sizeof(s->acme_unusable), "%.299s", e2.msg);
	else if (acme_paths(set, kp->cert, kp->key, sizeof(kp->cert), err) < 0)
		goto fail;
	X509_free(leaf);
	tg_store_free(st);
	return 0;
fail:
	X509_free(leaf);
	tg_store_free(st);
	return -1;
}

/* In a cluster, pins are the cluster's: recorded through the store. A
 * known file outside state_dir is refused: its pins would bind this node
 * alone, and the follower would never see them. */
static int
share_pins(const struct tg_config *cfg, struct tg_trust *t, struct tg_err *err)
{
	struct tg_store_conf *sc = malloc(sizeof(*sc));
	int r;

	if (sc == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	tg_store_conf_from(cfg, sc);
	r = tg_trust_share(t, sc, err);
	free(sc);
	return r < 0 ? -1 : 0;
}

int
tg_daemon_setup_tls(struct tg_server *s, const struct tg_config *cfg, struct tg_keypair *kp,
    struct tg_err *err)
{
	s->acme_on = !strcmp(tg_cfg_str(cfg, TG_CFG_TLS_AUTO), "acme") && !tg_cfg_str(cfg,
	    TG_CFG_TLS_CERT)[0];
	memset(&s->tls, 0, sizeof(s->tls));
	if (s->acme_on) {
		if (acme_keypair(s, cfg, kp, err) < 0)
			return -1;
	} else if (tg_certs_prepare(cfg, kp, err) < 0) {
		return -1;
	}
	if (kp->warning[0])
		tg_log(s, TG_LOG_WARN, "%s", kp->warning);
	snprintf(s->tls.cert, sizeof(s->tls.cert), "%s", kp->cert);
	snprintf(s->tls.key, sizeof(s->tls.key), "%s", kp->key);
	snprintf(s->tls.cert_origin, sizeof(s->tls.cert_origin), "%s", kp->cert_origin);
	snprintf(s->tls.key_origin, sizeof(s->tls.key_origin), "%s", kp->key_origin);
	s->tls.min_version = !strcmp(tg_cfg_str(cfg, TG_CFG_TLS_MIN_VERSION),
	    "1.3") ? TLS1_3_VERSION :
	    TLS1_2_VERSION;
	if (snprintf(s->tls.groups, sizeof(s->tls.groups), "%s", tg_cfg_str(cfg,
	    TG_CFG_TLS_GROUPS)) >= (int)sizeof(s->tls.groups))
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.groups (%s): the list is too long",
		    tg_config_origin(cfg, "tls.groups"));
	tg_cfg_path(cfg, TG_CFG_TLS_CLIENTS_CRL, s->tls.clients_crl, sizeof(s->tls.clients_crl));
	s->tls.crl_soft = !strcmp(tg_cfg_str(cfg, TG_CFG_TLS_CLIENTS_CRL_POLICY), "soft");
	if (s->mutual) {
		enum tg_trust_mode mode = TG_TRUST_CA;
		const char *const *allow;
		size_t nallow = tg_cfg_list(cfg, TG_CFG_TLS_CLIENTS_ALLOW, &allow);
		char known[PATH_MAX];

		tg_trust_mode_parse(tg_cfg_str(cfg, TG_CFG_TLS_CLIENTS_TRUST), &mode);
		tg_cfg_path(cfg, TG_CFG_TLS_CLIENTS_KNOWN, known, sizeof(known));
		if ((s->clients = tg_trust_new(mode, known, "known-clients", allow, nallow, err)) == NULL)
			return -1;
		if (share_pins(cfg, s->clients, err) < 0)
			return -1;
		if (tg_cfg_str(cfg, TG_CFG_TLS_CLIENTS_CA)[0]) {
			tg_cfg_path(cfg, TG_CFG_TLS_CLIENTS_CA, s->tls.clients_ca,
			    sizeof(s->tls.clients_ca));
			snprintf(s->tls.clients_ca_origin, sizeof(s->tls.clients_ca_origin), "%s",
			    tg_config_origin(cfg, "tls.clients.ca"));
		} else if (mode == TG_TRUST_CA || mode == TG_TRUST_CA_OR_TOFU) {
			snprintf(s->tls.clients_ca, sizeof(s->tls.clients_ca), "%s", kp->local_ca);
			snprintf(s->tls.clients_ca_origin, sizeof(s->tls.clients_ca_origin),
			    "default: the local CA");
		}
		/* a node in mutual mode also gets its own client certificate, so
		 * two nodes need no certificate commands to talk */
		if (!tg_cfg_str(cfg, TG_CFG_CLIENT_CERT)[0] && !tg_cfg_str(cfg,
		    TG_CFG_TLS_CERT)[0] &&
		    !s->acme_on && tg_certs_client_prepare(cfg, err) < 0)
			return -1;
	}
	/* the ACME files may not exist yet: then the context has no
	 * certificate until the agent hands one over */
	s->ssl_ctx = build_ctx(s, err);
	return s->ssl_ctx ? 0 : -1;
}

/* A new certificate for the same settings (ACME, or files edited): the
 * context is built aside and swapped in only if it is whole; connections
 * keep the context they started with. */
static int
swap_cert(struct tg_server *s, struct tg_err *err)
{
	struct tg_metrics keep = s->m;
	SSL_CTX *ctx = build_ctx(s, err);

	if (ctx == NULL) {
		s->m = keep;   /* the gauge keeps describing what is served */
		s->m.cert_swaps_refused++;
		return -1;
	}
	SSL_CTX_free(s->ssl_ctx);
	s->ssl_ctx = ctx;
	s->m.cert_swaps++;
	tg_tunnels_cert_changed(s);
	return 0;
}

void
tg_daemon_acme_cert(uv_async_t *h)
{
	struct tg_server *s = h->data;
	struct tg_tls_files old;   /* named again if the new one is refused */
	char exp[64];
	struct tg_err err;

	TG_MAGIC_CHECK(s, TG_SERVER_MAGIC, "server");
	if (s->acme_set == NULL || s->stopping)
		return;
	old = s->tls;
	if (acme_paths(s->acme_set, s->tls.cert, s->tls.key, sizeof(s->tls.cert), &err) < 0 ||
	    swap_cert(s, &err) < 0) {
		s->tls = old;
		tg_log(s, TG_LOG_ERROR, "acme: the new certificate was refused, the old one keeps "
		    "serving: %s", err.msg);
		return;
	}
	{
		time_t t = (time_t)s->m.cert_not_after;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(exp, sizeof(exp), "%Y-%m-%d %H:%M UTC", &tm);
	}
	tg_log(s, TG_LOG_INFO, "acme: certificate for %s in service, expires %s; open "
	    "connections keep the one they started with", s->m.cert_name, exp);
}

static void
on_settled(uv_timer_t *t)
{
	struct tg_server *s = t->data;
	struct tg_err err;

	TG_MAGIC_CHECK(s, TG_SERVER_MAGIC, "server");
	if (s->stopping)
		return;
	if (s->crl_changed) {   /* the context is built again with the new CRLs */
		s->crl_changed = 0;
		if (swap_cert(s, &err) < 0)
			tg_log(s, TG_LOG_ERROR, "tls.clients.crl changed on disk but was refused, the "
			    "CRLs in service stay: %s", err.msg);
		else
			tg_log(s, TG_LOG_INFO, "tls.clients.crl changed on disk: new handshakes are "
			    "checked against it; open connections stay");
		return;
	}
	if (s->acme_on && s->store) {   /* a cluster node following the store */
		if (swap_cert(s, &err) < 0)
			tg_log(s, TG_LOG_WARN, "acme: worker %u: the certificate in the cluster's store "
			    "is not usable yet (%s); the current one keeps serving", s->worker_index,
			    err.msg);
		else
			tg_log(s, TG_LOG_INFO, "acme: worker %u: certificate for %s in service (from the "
			    "cluster's store)", s->worker_index, s->m.cert_name);
		return;
	}
	if (s->acme_on) {   /* a worker following the first one's ACME agent */
		if (swap_cert(s, &err) < 0)
			tg_log(s, TG_LOG_WARN, "acme: worker %u: the certificate the first worker "
			    "stored is not usable yet (%s); the current one keeps serving",
			    s->worker_index, err.msg);
		else
			tg_log(s, TG_LOG_INFO, "acme: worker %u: certificate for %s in service (ordered "
			    "by the first worker)", s->worker_index, s->m.cert_name);
		return;
	}
	if (swap_cert(s, &err) < 0)
		tg_log(s, TG_LOG_ERROR, "tls.cert changed on disk but the new files were refused, "
		    "the old certificate keeps serving: %s", err.msg);
	else
		tg_log(s, TG_LOG_INFO, "tls.cert changed on disk: certificate for %s in service; "
		    "open connections keep the one they started with", s->m.cert_name);
}

/* Every 2 s on the loop: two stat(2) calls, cheaper than a thread-pool
 * round trip, and nothing in flight when the watch is changed (libuv's
 * fs_poll asserts when it is restarted while a stat is pending). */
static void
on_watch_tick(uv_timer_t *t)
{
	struct tg_server *s = t->data;
	struct tg_file_sig c, k;

	TG_MAGIC_CHECK(s, TG_SERVER_MAGIC, "server");
	tg_tunnels_crl_tick(s);
	if (s->tls.clients_crl[0] && s->mutual) {
		struct tg_file_sig r;
		tg_file_sig_of(s->tls.clients_crl, &r);
		if (memcmp(&r, &s->sig_crl, sizeof(r)) != 0) {
			s->sig_crl = r;
			s->crl_changed = 1;
			uv_timer_start(&s->watch_settle, on_settled, 1000, 0);
		}
	}
	if (!s->watch_cert)
		return;
	tg_file_sig_of(s->tls.cert, &c);
	tg_file_sig_of(s->tls.key, &k);
	if (memcmp(&c, &s->sig_cert, sizeof(c)) == 0 && memcmp(&k, &s->sig_key, sizeof(k)) == 0)
		return;
	s->sig_cert = c;
	s->sig_key = k;
	/* a certificate and key are written one after the other: wait for
	 * both to settle, then try the pair once */
	uv_timer_start(&s->watch_settle, on_settled, 1000, 0);
}

/* Does a CRL, or a TLS-out entry presenting the node's own certificate,
 * need the tick? */
static int
any_crl(const struct tg_server *s)
{
	size_t i;

	if (s->tls.clients_crl[0])
		return 1;
	for (i = 0; i < s->ntunnels; i++)
		if (s->tunnels[i].crl[0] || s->tunnels[i].out_cert_own)
			return 1;
	for (i = 0; i < s->nroutes; i++)
		if (s->routes[i].crl[0] || s->routes[i].out_cert_own)
			return 1;
	return 0;
}

/* Watches bring-your-own certificate files (not ACME or automatic ones,
 * which tlsgate itself replaces), and, in workers after the first, the
 * files the first worker's ACME agent writes: they follow its orders. */
void
tg_daemon_watch_files(struct tg_server *s)
{
	/* a cluster's node follows its copy of the store too: another node
	 * may have renewed */
	int follower = s->ssl_ctx && s->acme_on && s->acme_set && (s->worker_index != 0 ||
	    s->store != NULL);
	int byo = s->ssl_ctx && !s->acme_on && s->tls.cert[0] &&
	    strncmp(s->tls.cert_origin, "automatic", 9) != 0;
	struct tg_err err;

	if (follower) {
		char cert[sizeof(s->tls.cert)], key[sizeof(s->tls.key)];
		if (acme_paths(s->acme_set, cert, key, sizeof(cert), &err) < 0) {
			tg_log(s, TG_LOG_ERROR, "acme: %s", err.msg);
		} else {
			memcpy(s->tls.cert, cert, sizeof(cert));
			memcpy(s->tls.key, key, sizeof(key));
		}
	}

	if (s->loop == NULL || s->stopping)
		return;
	if (!s->watching) {
		uv_timer_init(s->loop, &s->watch_tick);
		uv_timer_init(s->loop, &s->watch_settle);
		s->watch_tick.data = s->watch_settle.data = s;
		s->watching = 1;
	}
	uv_timer_stop(&s->watch_tick);
	s->watch_cert = follower || byo;
	if (s->tls.clients_crl[0])
		tg_file_sig_of(s->tls.clients_crl, &s->sig_crl);   /* what is in service now */
	if (follower) {
		/* what this worker serves may be older than the files (a worker
		 * started again after the first one renewed): the first tick
		 * looks at them */
		memset(&s->sig_cert, 0, sizeof(s->sig_cert));
		memset(&s->sig_key, 0, sizeof(s->sig_key));
		uv_timer_start(&s->watch_tick, on_watch_tick, 2000, 2000);
	} else if (byo) {
		tg_file_sig_of(s->tls.cert, &s->sig_cert);   /* what is in service now */
		tg_file_sig_of(s->tls.key, &s->sig_key);
		uv_timer_start(&s->watch_tick, on_watch_tick, 2000, 2000);
	} else if (any_crl(s)) {   /* the listener's, a tunnel's or a proxy route's */
		uv_timer_start(&s->watch_tick, on_watch_tick, 2000, 2000);
	}
}
