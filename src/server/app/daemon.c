/*
 * The server: settings taken from the configuration once, the certificate
 * and TLS context, the listening socket, the event loop and the signals
 * that stop it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "acme_agent.h"
#include "acmeca.h"
#include "acmeca_serve.h"
#include "follow.h"
#include "acme_answers.h"
#include "acme_http01.h"
#include "admin.h"
#include "certs.h"
#include "config_int.h"
#include "conn.h"
#include "error.h"
#include "files.h"
#include "listen.h"
#include "ossl_words.h"
#include "peers.h"
#include "systemd.h"
#include "proxyproto.h"
#include "watch.h"
#include "magic.h"
#include "crl_life.h"
#include "daemon.h"
#include "tls_life.h"
#include "server.h"
#include "workers.h"
#include "tls.h"
#include "trust.h"
#include "proxy.h"
#include "tunnel.h"
#include "util.h"

static void
on_accept(uv_poll_t *p, int status, int events)
{
	struct tg_server *s = p->data;
	int i, kind = p == &s->admin_poll ? TG_LISTENER_ADMIN :
	    p == &s->acme_poll ? TG_LISTENER_ACME : p == &s->ca_poll ? TG_LISTENER_CA :
	    TG_LISTENER_MAIN;
	int lfd = kind == TG_LISTENER_ADMIN ? s->admin_fd : kind == TG_LISTENER_ACME ? s->acme_fd :
	    kind == TG_LISTENER_CA ? s->ca_fd : s->listen_fd;

	TG_MAGIC_CHECK(s, TG_SERVER_MAGIC, "server");
	if (status < 0)
		return;
	for (i = 0; i < 64; i++) {   /* a bounded batch, then let others run */
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				tg_log(s, TG_LOG_ERROR, "out of file descriptors; raise the limit "
				    "(ulimit -n) or lower limits.max_connections");
			return;
		}
		tg_conn_accept(s, fd, kind);
	}
}

static void
on_drain_timeout(uv_timer_t *t)
{
	struct tg_server *s = t->data;

	TG_MAGIC_CHECK(s, TG_SERVER_MAGIC, "server");
	if (s->nconns)
		tg_log(s, TG_LOG_WARN, "stop: %zu connection(s) still busy after timeouts.shutdown; "
		    "closing them (unfinished uploads are discarded)", s->nconns);
	tg_conn_close_all(s);
	tg_tunnels_close_all(s);
	tg_server_conn_gone(s);
}

static void
on_signal(uv_signal_t *sig, int signum)
{
	struct tg_server *s = sig->data;

	TG_MAGIC_CHECK(s, TG_SERVER_MAGIC, "server");
	/* A worker gets one stop twice when its supervisor forwards what
	 * systemd or a terminal already sent the whole group: within a second
	 * it is the same stop, later it is the operator's second signal. */
	if (s->stopping && s->slots && uv_now(s->loop) - s->stop_ms < 1000)
		return;
	if (s->stopping) {   /* a second signal: stop now */
		tg_log(s, TG_LOG_INFO, "second stop signal: closing every connection");
		on_drain_timeout(&s->drain);
		return;
	}
	s->stopping = 1;
	s->stop_ms = uv_now(s->loop);
	tg_sd_notify("STOPPING=1");
	if (s->slots) {
		tg_workers_publish(s);
		uv_close((uv_handle_t *)&s->publish, NULL);
	}
	tg_log(s, TG_LOG_INFO, "%s: stopping; requests in flight may finish within %llu ms",
	    signum == SIGINT ? "SIGINT" : "SIGTERM", (unsigned long long)s->t_shutdown);
	uv_poll_stop(&s->listen_poll);
	uv_close((uv_handle_t *)&s->listen_poll, NULL);
	if (s->admin_fd >= 0)
		uv_close((uv_handle_t *)&s->admin_poll, NULL);
	uv_close((uv_handle_t *)&s->sig_hup, NULL);
	if (s->acme_fd >= 0)
		uv_close((uv_handle_t *)&s->acme_poll, NULL);
	if (s->ca_fd >= 0)
		uv_close((uv_handle_t *)&s->ca_poll, NULL);
	tg_tunnels_stop_accepting(s);
	tg_known_watch_stop_all(s);
	tg_proxy_pool_close(s);
	if (s->acme) {
		tg_acme_agent_halt(s->acme);   /* before its async handle goes */
		uv_close((uv_handle_t *)&s->acme_async, NULL);
	}
	if (s->tickets_on)
		uv_close((uv_handle_t *)&s->tickets_tick, NULL);
	if (s->watchdog_on)
		uv_close((uv_handle_t *)&s->watchdog, NULL);
	tg_crl_life_stop(s);
	if (s->watching) {
		uv_close((uv_handle_t *)&s->watch_tick, NULL);
		uv_close((uv_handle_t *)&s->watch_settle, NULL);
	}
	uv_unref((uv_handle_t *)&s->sig_int);
	uv_unref((uv_handle_t *)&s->sig_term);
	uv_timer_init(s->loop, &s->drain);
	s->drain.data = s;
	s->drain_started = 1;
	uv_timer_start(&s->drain, on_drain_timeout, s->t_shutdown, 0);
	tg_conn_close_idle(s);
	tg_server_conn_gone(s);
}

static int
level_of(const char *l)
{
	return !strcmp(l, "debug") ? TG_LOG_DEBUG : !strcmp(l, "warn") ? TG_LOG_WARN :
	    !strcmp(l, "error") ? TG_LOG_ERROR : TG_LOG_INFO;
}

/* A digest of the tunnels: and proxy: entries, to notice that a reload
 * changed them (they apply at the next start). */
static void
entries_digest(const struct tg_config *cfg, unsigned char md[32])
{
	EVP_MD_CTX *x = EVP_MD_CTX_new();
	const char *k;
	size_t i;

	memset(md, 0, 32);
	if (x == NULL || EVP_DigestInit_ex(x, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(x);
		return;
	}
	for (i = 0; (k = tg_config_entry_key(cfg, i)) != NULL; i++) {
		const char *v = tg_config_get(cfg, k);
		EVP_DigestUpdate(x, k, strlen(k) + 1);
		EVP_DigestUpdate(x, v ? v : "", v ? strlen(v) + 1 : 1);
	}
	EVP_DigestFinal_ex(x, md, NULL);
	EVP_MD_CTX_free(x);
}

/* ca.acme.*, as read at start: the ACME CA is built once. */
static void
acmeca_digest(const struct tg_config *cfg, unsigned char md[32])
{
	static const enum tg_cfg_key keys[] = { TG_CFG_CA_ACME_LISTEN, TG_CFG_CA_ACME_CA_DIR,
		TG_CFG_CA_ACME_LIFETIME, TG_CFG_CA_ACME_ALLOW, TG_CFG_CA_ACME_CHALLENGES,
		TG_CFG_CA_ACME_HTTP_PORT, TG_CFG_CA_ACME_TLS_PORT, TG_CFG_CA_ACME_RESOLVER };
	EVP_MD_CTX *x = EVP_MD_CTX_new();
	size_t i;

	memset(md, 0, 32);
	if (x == NULL || EVP_DigestInit_ex(x, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(x);
		return;
	}
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v = tg_cfg_str(cfg, keys[i]);
		EVP_DigestUpdate(x, v, strlen(v) + 1);
	}
	EVP_DigestFinal_ex(x, md, NULL);
	EVP_MD_CTX_free(x);
}

/* The settings a server copies from its configuration (at start and on
 * SIGHUP). */
static void
load_settings(struct tg_server *s, const struct tg_config *cfg)
{
	const char *w = tg_cfg_str(cfg, TG_CFG_WORKERS);

	if (s->workers == 0)   /* read at start only: a reload keeps the processes */
		s->workers = !strcmp(w, "auto") ? tg_workers_auto() : (unsigned)atoi(w);
	if (s->workers < 1)
		s->workers = 1;
	snprintf(s->listen, sizeof(s->listen), "%s", tg_cfg_str(cfg, TG_CFG_LISTEN));
	tg_path_expand(s->state_dir, sizeof(s->state_dir), tg_cfg_str(cfg, TG_CFG_STATE_DIR));
	s->files_enabled = (int)tg_cfg_num(cfg, TG_CFG_FILES_ENABLED);
	snprintf(s->files_prefix, sizeof(s->files_prefix), "%s", tg_cfg_str(cfg,
	    TG_CFG_FILES_PREFIX));
	s->files_prefix_len = strlen(s->files_prefix);
	tg_cfg_path(cfg, TG_CFG_FILES_ROOT, s->files_root, sizeof(s->files_root));
	s->max_upload = (uint64_t)tg_cfg_num(cfg, TG_CFG_FILES_MAX_UPLOAD);
	s->t_handshake = (uint64_t)tg_cfg_num(cfg, TG_CFG_TIMEOUTS_HANDSHAKE);
	s->t_header = (uint64_t)tg_cfg_num(cfg, TG_CFG_TIMEOUTS_HEADER);
	s->t_body = (uint64_t)tg_cfg_num(cfg, TG_CFG_TIMEOUTS_BODY);
	s->t_keepalive = (uint64_t)tg_cfg_num(cfg, TG_CFG_TIMEOUTS_KEEPALIVE);
	s->t_shutdown = (uint64_t)tg_cfg_num(cfg, TG_CFG_TIMEOUTS_SHUTDOWN);
	s->max_connections = (size_t)tg_cfg_num(cfg, TG_CFG_LIMITS_MAX_CONNECTIONS);
	s->max_per_ip = (uint32_t)tg_cfg_num(cfg, TG_CFG_LIMITS_MAX_CONNECTIONS_PER_IP);
	s->max_header_bytes = (size_t)tg_cfg_num(cfg, TG_CFG_LIMITS_MAX_HEADER_BYTES);
	if (s->max_header_bytes > TG_IO_BUF)
		s->max_header_bytes = TG_IO_BUF;
	s->max_headers = (size_t)tg_cfg_num(cfg, TG_CFG_LIMITS_MAX_HEADERS);
	s->log_json = !strcmp(tg_cfg_str(cfg, TG_CFG_LOG_FORMAT), "json");
	s->log_level = level_of(tg_cfg_str(cfg, TG_CFG_LOG_LEVEL));
	s->mutual = !strcmp(tg_cfg_str(cfg, TG_CFG_TLS_MODE), "mutual");
}

/* GET / on the main listener: which tlsgate this is, and where files are. */
static int
banner_match(const struct tg_handler *h, const struct tg_conn_s *c)
{
	return !strcmp(c->target, "/") && (!strcmp(c->method, "GET") || !strcmp(c->method, "HEAD"));
}

static enum tg_handled
banner_begin(const struct tg_handler *h, struct tg_conn_s *c, const struct tg_http_req *req)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "tlsgate %s: %s", tg_version(), c->srv->files_enabled ?
	    "the file service is at the files prefix" : "the file service is off");
	tg_conn_respond(c, 200, NULL, msg);
	return TG_H_DONE;
}

static const struct tg_handler banner_handler = {
	.service = "other", .counted = TG_COUNT_OTHER, .match = banner_match, .begin = banner_begin,
};

/* Who answers requests on each listener, in the order they are asked: the
 * proxy routes first (a route may sit below the files prefix), then the
 * file service, then the banner; conn.c answers 404 when none matches. */
static void
register_handlers(struct tg_server *s)
{
	static const struct tg_handler *const main_list[] = {
		&tg_acmeca_handler, &tg_proxy_handler, &tg_files_handler, &banner_handler, NULL };

	memcpy(s->handlers[TG_LISTENER_MAIN], main_list, sizeof(main_list));
	s->handlers[TG_LISTENER_ADMIN][0] = &tg_admin_handler;
	s->handlers[TG_LISTENER_ACME][0] = &tg_acme_http01_handler;
	s->handlers[TG_LISTENER_CA][0] = &tg_acmeca_handler;
}

/* The stores the server works with: a cluster's etcd (store.backend), and
 * for ACME the challenge answers, shared through it so that a validation
 * that reaches another worker or another node finds them there. */
static int
open_stores(struct tg_server *s, const struct tg_config *cfg, struct tg_err *err)
{
	struct tg_store_conf *sc;
	int rv;

	if (!strcmp(tg_cfg_str(cfg, TG_CFG_STORE_BACKEND), "etcd")) {
		if ((s->store = malloc(sizeof(*s->store))) == NULL)
			return tg_err_set(err, TG_E_INTERNAL, "out of memory");
		tg_store_conf_from(cfg, s->store);
	}
	if (strcmp(tg_cfg_str(cfg, TG_CFG_TLS_AUTO), "acme") != 0 ||
	    tg_cfg_str(cfg, TG_CFG_TLS_CERT)[0])
		return 0;
	sc = malloc(sizeof(*sc));
	if (sc == NULL || (s->answers = tg_answers_new()) == NULL) {
		free(sc);
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	}
	tg_store_conf_from(cfg, sc);
	rv = tg_answers_share(s->answers, sc, err);
	free(sc);
	return rv;
}

/* The listening sockets: the HTTP-01 one for ACME, the main one
 * (SO_REUSEPORT with workers). */
static int
open_listeners(struct tg_server *s, const struct tg_config *cfg, struct tg_err *err)
{
	char m[sizeof(err->msg)];

	if (s->acme_on && s->acme_set->challenge == TG_ACME_HTTP01 && (s->acme_fd =
	    tg_listen_open(tg_cfg_str(cfg, TG_CFG_TLS_ACME_HTTP_LISTEN), 0, err)) < 0) {
		snprintf(m, sizeof(m), "%s", err->msg);
		return tg_err_set(err, err->code, "tls.acme.http_listen (%s): %s; HTTP-01 needs it "
		    "(or choose tls.acme.challenge tls-alpn-01 or dns-01)",
		    tg_config_origin(cfg, "tls.acme.http_listen"), m);
	}
	if ((s->listen_fd = tg_listen_open_as("https", s->listen, s->workers > 1, err)) < 0)
		return -1;
	/* from systemd: serve (and say) where that socket is, which a name
	 * may have chosen over the configured address */
	if ((s->listen_inherited = tg_sd_inherited(s->listen_fd)))
		tg_listen_address(s->listen_fd, s->listen, sizeof(s->listen));
	return 0;
}

/* The admin listener, last: a start that fails for another reason says
 * only that. Its port busy is a warning, not a failed start (9090 often
 * is). */
static void
open_admin(struct tg_server *s, const struct tg_config *cfg)
{
	struct tg_err aerr;

	snprintf(s->admin_listen, sizeof(s->admin_listen), "%s", tg_cfg_str(cfg,
	    TG_CFG_ADMIN_LISTEN));
	s->admin_fd = -1;
	if (strcmp(s->admin_listen, "off") != 0 &&
	    (s->admin_fd = tg_listen_open_as("admin", s->admin_listen, 0, &aerr)) < 0)
		tg_log(s, TG_LOG_WARN, "admin.listen: %s; /metrics and /status are off (set "
		    "admin.listen to a free address, or off)", aerr.msg);
}

/* The ACME CA (ca.acme.listen): a listener of its own, or /acme/ on the
 * main one when the address is the same (tlsgate ca serve). HTTPS only. */
static int
open_acmeca(struct tg_server *s, const struct tg_config *cfg, struct tg_err *err)
{
	struct tg_acmeca_conf conf;
	const char *where = tg_config_origin(cfg, "ca.acme.listen");

	s->ca_fd = -1;
	snprintf(s->ca_listen, sizeof(s->ca_listen), "%s", tg_cfg_str(cfg, TG_CFG_CA_ACME_LISTEN));
	if (!strcmp(s->ca_listen, "off"))
		return 0;
	if (s->ssl_ctx == NULL)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "ca.acme.listen (%s): the ACME CA speaks "
		    "HTTPS only; set tls.mode to server or mutual", where);
	s->ca_on_main = !strcmp(s->ca_listen, s->listen);
	if (s->ca_on_main && s->mutual)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "ca.acme.listen (%s) is the main listener, "
		    "which asks for client certificates (tls.mode mutual): ACME clients come to get "
		    "one; give the ACME CA an address of its own", where);
	if (s->ca_on_main && s->workers > 1)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "ca.acme.listen (%s) is the main listener, "
		    "served by %u workers: the ACME CA's nonces live in one process; give it an "
		    "address of its own (worker 0 serves that) or set workers: 1", where, s->workers);
	if (tg_acmeca_conf_from(cfg, &conf, err) < 0 || (s->acmeca = tg_acmeca_new(&conf,
	    err)) == NULL)
		return -1;
	if (!s->ca_on_main && (s->ca_fd = tg_listen_open_as("acme-ca", s->ca_listen, 0,
	    err)) < 0) {
		char m[sizeof(err->msg)];
		snprintf(m, sizeof(m), "%s", err->msg);
		return tg_err_set(err, err->code, "ca.acme.listen (%s): %s", where, m);
	}
	return 0;
}

/* proxy_protocol.accept_from, read at start. */
static int
proxy_senders(struct tg_server *s, const struct tg_config *cfg, struct tg_err *err)
{
	const char *const *items;
	size_t n = tg_cfg_list(cfg, TG_CFG_PROXY_PROTOCOL_ACCEPT_FROM, &items);
	char why[200];

	snprintf(s->pp_from, sizeof(s->pp_from), "%s", tg_cfg_str(cfg,
	    TG_CFG_PROXY_PROTOCOL_ACCEPT_FROM));
	if (tg_pp_nets_parse(items, n, &s->pp_nets, &s->npp_nets, why, sizeof(why)) < 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "proxy_protocol.accept_from (%s): %s",
		    tg_config_origin(cfg, "proxy_protocol.accept_from"), why);
	if (n && s->worker_index == 0)
		tg_log(s, TG_LOG_INFO, "PROXY headers required from %s on %s; refused from "
		    "everyone else", tg_cfg_str(cfg, TG_CFG_PROXY_PROTOCOL_ACCEPT_FROM), s->listen);
	return 0;
}

struct tg_server *
tg_server_new(const struct tg_config *cfg, struct tg_keypair *kp, struct tg_err *err)
{
	struct tg_server *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		return NULL;
	}
	memset(kp, 0, sizeof(*kp));
	s->magic = TG_SERVER_MAGIC;
	s->listen_fd = s->files_root_fd = s->admin_fd = s->acme_fd = s->ca_fd = -1;
	load_settings(s, cfg);
	if (tg_mkdirs(s->state_dir, 0700, err) < 0 || open_stores(s, cfg, err) < 0)
		goto fail;
	if (strcmp(tg_cfg_str(cfg, TG_CFG_TLS_MODE), "off") != 0 && tg_daemon_setup_tls(s, cfg, kp, err) < 0)
		goto fail;
	if (s->files_enabled) {
		if (tg_files_open_root(s, err) < 0)
			goto fail;
		tg_files_sweep(s);
	}
	if (open_listeners(s, cfg, err) < 0 || tg_tunnels_open(s, cfg, err) < 0 ||
	    tg_proxy_open(s, cfg, err) < 0)
		goto fail;
	if (open_acmeca(s, cfg, err) < 0)
		goto fail;
	open_admin(s, cfg);
	if (proxy_senders(s, cfg, err) < 0)
		goto fail;
	entries_digest(cfg, s->entries_md);
	acmeca_digest(cfg, s->ca_md);
	s->m.started = time(NULL);
	if ((s->peers = tg_peers_new()) == NULL) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		goto fail;
	}
	s->loop = uv_default_loop();
	register_handlers(s);
	s->tls_answered = tg_answers_is_challenge;
	return s;
fail:
	tg_server_free(s);
	return NULL;
}

/* What a reload cannot change, said (the old value keeps serving). */
static void
restart_notes(struct tg_server *s, const struct tg_config *cfg, unsigned workers,
    const char *old_listen)
{
	unsigned char md[32];

	entries_digest(cfg, md);
	if (memcmp(md, s->entries_md, sizeof(md)) != 0)
		tg_log(s, TG_LOG_WARN, "tunnels or proxy routes changed: a restart applies "
		    "that; the ones read at start keep working");
	acmeca_digest(cfg, md);
	if (memcmp(md, s->ca_md, sizeof(md)) != 0)
		tg_log(s, TG_LOG_WARN, "ca.acme.* changed: a restart applies that; the ACME CA "
		    "keeps the settings read at start (%s)", s->ca_listen);
	if (workers != s->workers)
		tg_log(s, TG_LOG_WARN, "workers changed to %u: a restart applies that; still %u",
		    workers, s->workers);
	if (strcmp(tg_cfg_str(cfg, TG_CFG_PROXY_PROTOCOL_ACCEPT_FROM), s->pp_from) != 0)
		tg_log(s, TG_LOG_WARN, "proxy_protocol.accept_from changed: a restart applies that; "
		    "still trusted to name clients: %s", s->pp_from[0] ? s->pp_from : "nobody");
	if (s->listen_inherited) {   /* systemd's socket decides, not listen */
		snprintf(s->listen, sizeof(s->listen), "%s", old_listen);
	} else if (strcmp(old_listen, s->listen) != 0) {
		tg_log(s, TG_LOG_WARN, "listen changed to %s: a restart applies that; still on %s",
		    s->listen, old_listen);
		snprintf(s->listen, sizeof(s->listen), "%s", old_listen);
	}
}

/* The certificate, key and chain of from into to (each takes its own
 * references). */
static int
carry_pair(SSL_CTX *to, SSL_CTX *from)
{
	STACK_OF(X509) *chain = NULL;

	if (SSL_CTX_use_certificate(to, SSL_CTX_get0_certificate(from)) != 1 ||
	    SSL_CTX_use_PrivateKey(to, SSL_CTX_get0_privatekey(from)) != 1 ||
	    SSL_CTX_get0_chain_certs(from, &chain) != 1 ||
	    (chain && SSL_CTX_set1_chain(to, chain) != 1)) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

/* SIGHUP: everything is built aside first; only a complete new set is
 * swapped in, so a broken file or certificate leaves the old one serving. */
static int
apply(struct tg_server *s, const struct tg_config *cfg, struct tg_err *err)
{
	struct tg_server n;
	struct tg_keypair kp;
	char old_listen[sizeof(s->listen)];
	int carried = 0;

	int want_acme = !strcmp(tg_cfg_str(cfg, TG_CFG_TLS_AUTO), "acme") &&
	    !tg_cfg_str(cfg, TG_CFG_TLS_CERT)[0] && strcmp(tg_cfg_str(cfg, TG_CFG_TLS_MODE),
	    "off") != 0;

	if (want_acme != s->acme_on)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "switching %s ACME certificates needs a "
		    "restart (tls.auto, %s)", want_acme ? "to" : "away from",
		    tg_config_origin(cfg, "tls.auto"));
	memset(&n, 0, sizeof(n));
	n.files_root_fd = -1;
	n.answers = s->answers;
	n.store = s->store;
	load_settings(&n, cfg);
	if (strcmp(tg_cfg_str(cfg, TG_CFG_TLS_MODE), "off") != 0 && tg_daemon_setup_tls(&n, cfg, &kp,
	    err) < 0) {
		tg_trust_free(n.clients);
		free(n.acme_set);
		return -1;
	}
	if (n.files_enabled && tg_files_open_root(&n, err) < 0) {
		SSL_CTX_free(n.ssl_ctx);
		tg_trust_free(n.clients);
		free(n.acme_set);
		return -1;
	}
	/* the ACME pair read while the agent was replacing it (its new key
	 * beside the old certificate for a moment: two files) is no pair, and
	 * a context without a certificate refuses every handshake: the pair in
	 * service goes into the new context, and the agent hands the new one
	 * over once both files are written (CI saw one request in 923 fail) */
	if (s->acme_on && n.ssl_ctx && s->ssl_ctx && SSL_CTX_get0_certificate(n.ssl_ctx) == NULL &&
	    SSL_CTX_get0_certificate(s->ssl_ctx) != NULL) {
		if (carry_pair(n.ssl_ctx, s->ssl_ctx) < 0) {
			SSL_CTX_free(n.ssl_ctx);
			tg_trust_free(n.clients);
			free(n.acme_set);
			if (n.files_root_fd >= 0)
				close(n.files_root_fd);
			return tg_err_set(err, TG_E_TLS, "the ACME certificate is being replaced and "
			    "the one in service could not be kept; try the reload again");
		}
		carried = 1;
	}
	/* contexts in use by open connections hold their own reference to the
	 * old trust object: it goes when the last of them does */
	tg_known_watch_stop(s, s->clients);
	tg_trust_free(s->clients);
	SSL_CTX_free(s->ssl_ctx);
	if (s->files_root_fd >= 0)
		close(s->files_root_fd);
	snprintf(old_listen, sizeof(old_listen), "%s", s->listen);
	load_settings(s, cfg);
	s->ssl_ctx = n.ssl_ctx;
	s->clients = n.clients;
	tg_known_watch_start(s, s->clients);
	if (carried) {   /* the certificate's figures and files stay those of the one kept */
		tg_log(s, TG_LOG_WARN, "SIGHUP: the ACME files are no usable pair (%s): being "
		    "replaced right now, or no longer what tls.acme asks for; the certificate for %s "
		    "keeps serving until the agent hands over its next one", n.acme_unusable,
		    s->m.cert_name[0] ? s->m.cert_name : "(unnamed)");
		/* rebuilds (a CRL change, a tunnel presenting the node's
		 * certificate) read these paths: never empty while it serves */
		memcpy(n.tls.cert, s->tls.cert, sizeof(n.tls.cert));
		memcpy(n.tls.key, s->tls.key, sizeof(n.tls.key));
		memcpy(n.tls.cert_origin, s->tls.cert_origin, sizeof(n.tls.cert_origin));
		memcpy(n.tls.key_origin, s->tls.key_origin, sizeof(n.tls.key_origin));
	} else {
		memcpy(s->m.cert_name, n.m.cert_name, sizeof(s->m.cert_name));
		memcpy(s->m.cert_source, n.m.cert_source, sizeof(s->m.cert_source));
		s->m.cert_not_after = n.m.cert_not_after;
	}
	s->tls = n.tls;
	if (n.acme_set) {
		free(s->acme_set);
		s->acme_set = n.acme_set;
		if (s->acme)
			tg_acme_agent_update(s->acme, s->acme_set);
	}
	tg_daemon_watch_files(s);
	s->files_root_fd = n.files_root_fd;
	restart_notes(s, cfg, n.workers, old_listen);
	return 0;
}

static void
on_hup(uv_signal_t *sig, int signum)
{
	struct tg_server *s = sig->data;
	struct tg_config *cfg = NULL;
	struct tg_err err;

	TG_MAGIC_CHECK(s, TG_SERVER_MAGIC, "server");
	if (s->reload == NULL || s->stopping)
		return;
	tg_sd_reloading();
	if (s->reload(s->reload_arg, &cfg, &err) < 0 || apply(s, cfg, &err) < 0) {
		tg_log(s, TG_LOG_ERROR, "SIGHUP: new configuration refused, the old one keeps "
		    "serving: %s", err.msg);
		tg_sd_notify("READY=1\nSTATUS=reload refused, the old configuration serves");
	} else {
		tg_log(s, TG_LOG_INFO, "SIGHUP: configuration and certificates reloaded; open "
		    "connections keep the ones they started with");
		tg_sd_notify("READY=1\nSTATUS=serving %s (reloaded)", s->listen);
	}
	tg_config_free(cfg);
}

static void
on_publish(uv_timer_t *t)
{
	tg_workers_publish(t->data);
}

struct tickets_job {
	uv_work_t work;
	struct tg_server *srv;
	struct tg_store_conf sc;     /* a copy: the job owns what it reads */
	struct tg_err err;
	int rv;
};

static void
tickets_work(uv_work_t *w)
{
	struct tickets_job *j = w->data;
	struct tg_store *st = tg_store_open_conf(&j->sc, 1, &j->err);

	j->rv = st ? tg_tickets_rotate(st, &j->err) : -1;
	tg_store_free(st);
}

static void
tickets_done(uv_work_t *w, int status)
{
	struct tickets_job *j = w->data;

	TG_MAGIC_CHECK(j->srv, TG_SERVER_MAGIC, "server");
	if (j->rv < 0 && status == 0)
		tg_log(j->srv, TG_LOG_WARN, "store: the session ticket keys were not moved on (%s); "
		    "tickets keep working, the next try is in 10 minutes", j->err.msg);
	free(j);
}

/* Every 10 minutes: the cluster's ticket keys are moved on when the hour
 * changed, fresh random ones for the next hour (tickets_store.c). */
static void
on_tickets_tick(uv_timer_t *t)
{
	struct tg_server *s = t->data;
	struct tickets_job *j;

	TG_MAGIC_CHECK(s, TG_SERVER_MAGIC, "server");
	if (s->stopping || (j = calloc(1, sizeof(*j))) == NULL)
		return;
	j->work.data = j;
	j->srv = s;
	j->sc = *s->store;
	if (uv_queue_work(s->loop, &j->work, tickets_work, tickets_done) != 0)
		free(j);
}

static void
on_store_log(void *arg, int error, const char *line)
{
	tg_log(arg, error ? TG_LOG_ERROR : TG_LOG_INFO, "%s", line);
}

/* Accepting on the listeners. */
static void
start_listeners(struct tg_server *s)
{
	uv_poll_init(s->loop, &s->listen_poll, s->listen_fd);
	s->listen_poll.data = s;
	uv_poll_start(&s->listen_poll, UV_READABLE, on_accept);
	if (s->admin_fd >= 0) {
		uv_poll_init(s->loop, &s->admin_poll, s->admin_fd);
		s->admin_poll.data = s;
		uv_poll_start(&s->admin_poll, UV_READABLE, on_accept);
	}
	if (s->acme_fd >= 0) {
		uv_poll_init(s->loop, &s->acme_poll, s->acme_fd);
		s->acme_poll.data = s;
		uv_poll_start(&s->acme_poll, UV_READABLE, on_accept);
	}
	if (s->ca_fd >= 0) {
		uv_poll_init(s->loop, &s->ca_poll, s->ca_fd);
		s->ca_poll.data = s;
		uv_poll_start(&s->ca_poll, UV_READABLE, on_accept);
	}
}

/* The threads beside the loop: the ACME agent (one orders for every
 * worker) and the store's follower, and the ticket seed's timer. */
static void
start_agents(struct tg_server *s)
{
	if (s->acme_on && s->worker_index == 0) {   /* one agent orders for every worker */
		struct tg_err err;
		uv_async_init(s->loop, &s->acme_async, tg_daemon_acme_cert);
		s->acme_async.data = s;
		/* started here, after the privilege drop and landlock, so the
		 * thread writes as the service user and inside the sandbox */
		if ((s->acme = tg_acme_agent_start(s, s->acme_set, s->answers, &err)) == NULL) {
			tg_log(s, TG_LOG_ERROR, "acme: %s", err.msg);
			uv_close((uv_handle_t *)&s->acme_async, NULL);
		}
	}
	if (s->store) {
		struct tg_err err;
		/* the first worker keeps state_dir a copy of the store; every
		 * worker probes it, to refuse what needs a write while it is down */
		if ((s->follow = tg_store_follow_start(s->store, s->worker_index == 0, on_store_log, s,
		    &err)) == NULL)
			tg_log(s, TG_LOG_ERROR, "store: %s; this node will not learn other nodes' "
			    "changes", err.msg);
		if (s->worker_index == 0) {
			uv_timer_init(s->loop, &s->tickets_tick);
			s->tickets_tick.data = s;
			uv_timer_start(&s->tickets_tick, on_tickets_tick, 600000, 600000);
			uv_unref((uv_handle_t *)&s->tickets_tick);
			s->tickets_on = 1;
		}
	}
}

/* SIGINT and SIGTERM stop (gracefully, then at once), SIGHUP reloads. */
static void
start_signals(struct tg_server *s)
{
	uv_signal_init(s->loop, &s->sig_int);
	uv_signal_init(s->loop, &s->sig_term);
	s->sig_int.data = s->sig_term.data = s;
	uv_signal_start(&s->sig_int, on_signal, SIGINT);
	uv_signal_start(&s->sig_term, on_signal, SIGTERM);
	uv_signal_init(s->loop, &s->sig_hup);
	s->sig_hup.data = s;
	uv_signal_start(&s->sig_hup, on_hup, SIGHUP);
}

/* WatchdogSec=: WATCHDOG=1 from the loop itself, so a loop that hangs
 * stops them and systemd restarts the service. */
static void
on_watchdog(uv_timer_t *t)
{
	(void)t;
	tg_sd_notify("WATCHDOG=1");
}

static void
start_watchdog(struct tg_server *s)
{
	uint64_t ms = tg_sd_watchdog_ms();

	if (ms == 0)
		return;
	uv_timer_init(s->loop, &s->watchdog);
	s->watchdog.data = s;
	uv_timer_start(&s->watchdog, on_watchdog, 0, ms);
	uv_unref((uv_handle_t *)&s->watchdog);
	s->watchdog_on = 1;
}

int
tg_server_run(struct tg_server *s)
{
	signal(SIGPIPE, SIG_IGN);
	start_listeners(s);
	start_agents(s);
	if (s->ssl_ctx && s->worker_index == 0)
		tg_log(s, tg_tls_ktls_available() ? TG_LOG_INFO : TG_LOG_DEBUG, tg_tls_ktls_available() ?
		    "kTLS: offered by the kernel; file downloads go through SSL_sendfile" :
		    "kTLS: not offered by this kernel (modprobe tls to use it)");
	tg_daemon_watch_files(s);
	tg_known_watch_start(s, s->clients);
	if (s->worker_index == 0)   /* tunnels are served by the first worker */
		tg_tunnels_start(s);
	tg_tunnels_watch_known(s);
	tg_proxy_watch_headers(s);
	if (s->slots) {
		uv_timer_init(s->loop, &s->publish);
		s->publish.data = s;
		uv_timer_start(&s->publish, on_publish, 0, 1000);
		uv_unref((uv_handle_t *)&s->publish);
	}
	start_signals(s);
	if (s->reload_at_start)
		on_hup(&s->sig_hup, SIGHUP);   /* settings as the other workers have them */
	start_watchdog(s);
	tg_crl_life_start(s);
	tg_sd_notify("READY=1\nSTATUS=serving %s", s->listen);
	uv_run(s->loop, UV_RUN_DEFAULT);
	/* the stop signals were unref'ed, not closed: close them now */
	uv_close((uv_handle_t *)&s->sig_int, NULL);
	uv_close((uv_handle_t *)&s->sig_term, NULL);
	uv_run(s->loop, UV_RUN_DEFAULT);
	return 0;
}

void
tg_server_free(struct tg_server *s)
{
	if (s == NULL)
		return;
	if (s->loop)
		uv_loop_close(s->loop);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->admin_fd >= 0)
		close(s->admin_fd);
	if (s->acme_fd >= 0)
		close(s->acme_fd);
	if (s->ca_fd >= 0)
		close(s->ca_fd);
	tg_store_follow_stop(s->follow);
	s->follow = NULL;
	if (tg_acme_agent_stop(s->acme) < 0)
		return;   /* an order in flight still uses the server; the process is ending */
	free(s->acme_set);
	if (s->files_root_fd >= 0)
		close(s->files_root_fd);
	SSL_CTX_free(s->ssl_ctx);
	tg_trust_free(s->clients);
	tg_peers_free(s->peers);
	free(s->pp_nets);
	tg_answers_free(s->answers);
	free(s->store);
	tg_tunnels_free(s);
	tg_proxy_free(s);
	tg_acmeca_free(s->acmeca);   /* the loop has ended: no request or check is running */
	s->magic = 0;
	free(s);
}
