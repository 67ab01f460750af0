/*
 * The daemon's shared state: the server (settings read once from the
 * configuration, the TLS context, the listeners, counters), and the log
 * (log.c). Every part of the daemon reads it; the composition root
 * (daemon.c) builds it. Loop thread only, except where a field says.
 */
#ifndef TG_SERVER_H
#define TG_SERVER_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/ssl.h>
#include <uv.h>

#include <tlsgate/tlsgate.h>

#include "metrics.h"

struct tg_acme_settings;
struct tg_acme_agent;
struct tg_answers;
struct tg_tunnel;
struct tg_pipe;
struct tg_worker_slot;
struct tg_known_watch;
struct tg_acmeca;
struct tg_ca_check;
struct tg_ca_req;

#define TG_SERVER_MAGIC 0x54475356u   /* "TGSV" */

/* The listeners a connection can arrive on. */
/* ACME: tls.acme.http_listen (HTTP-01 answers); CA: ca.acme.listen (the ACME CA) */
enum { TG_LISTENER_MAIN, TG_LISTENER_ADMIN, TG_LISTENER_ACME, TG_LISTENER_CA, TG_LISTENER_KINDS };

struct tg_handler;
#define TG_HANDLERS_MAX 4        /* per listener (handler.h) */

struct tg_server {
	uint32_t magic;
	uv_loop_t *loop;
	int listen_fd;
	uv_poll_t listen_poll;
	int admin_fd;                /* /metrics and /status, plain HTTP; -1 when off */
	uv_poll_t admin_poll;
	char admin_listen[300];
	uv_signal_t sig_int, sig_term, sig_hup;
	uv_timer_t drain;            /* bounds a graceful stop */
	int drain_started;
	/* SIGHUP: builds the configuration again (flags, env and file) */
	int (*reload)(void *arg, struct tg_config **cfg, struct tg_err *err);
	void *reload_arg;
	SSL_CTX *ssl_ctx;            /* NULL when tls.mode is off */
	/* what the TLS context is built from, kept to rebuild it when the
	 * certificate changes (ACME, files edited, SIGHUP) */
	struct tg_tls_files {
		char cert[PATH_MAX], key[PATH_MAX];        /* "" = no certificate yet (ACME) */
		char cert_origin[320], key_origin[320];
		char clients_ca[PATH_MAX], clients_ca_origin[320];
		int min_version;
		char groups[512];                          /* tls.groups; "" = default */
		char clients_crl[PATH_MAX];                /* tls.clients.crl; "" = none */
		int crl_soft;                              /* tls.clients.crl_policy soft */
	} tls;
	/* ACME (tls.auto: acme) */
	int acme_on;
	struct tg_acme_settings *acme_set;
	char acme_unusable[300];     /* why the ACME files made no pair at the last build; "" */
	struct tg_acme_agent *acme;
	struct tg_answers *answers;  /* challenge answers the loop serves */
	/* Was this finished handshake itself the answer (RFC 8737 TLS-ALPN-01)?
	 * 0 no, 1 yes, 2 yes with an answer another worker or node published.
	 * Set by the composition root (acme_answers.c), so connections need
	 * not know ACME. */
	int (*tls_answered)(SSL *ssl);
	struct tg_store_conf *store; /* store.backend etcd: the cluster's store */
	struct tg_store_follow *follow;  /* its health; worker 0 also copies it */
	uv_timer_t tickets_tick;     /* worker 0 of a cluster: moves the ticket seed on */
	int tickets_on;
	uv_timer_t watchdog;         /* WatchdogSec: WATCHDOG=1 from the loop (systemd.h) */
	int watchdog_on;
	uv_timer_t crl_tick;         /* the local CA's CRL signed again (crl_life.c) */
	int crl_on, crl_busy;
	int acme_fd;                 /* tls.acme.http_listen (HTTP-01); -1 when unused */
	uv_poll_t acme_poll;
	uv_async_t acme_async;       /* the agent has a new certificate */
	/* the ACME CA (ca.acme.listen; src/server/ca): its own listener, or
	 * /acme/ on the main one when the addresses are the same */
	struct tg_acmeca *acmeca;
	int ca_fd;                   /* -1 when none or on the main listener */
	uv_poll_t ca_poll;
	int ca_on_main;
	char ca_listen[300];
	unsigned char ca_md[32];     /* ca.acme.* as read at start (a reload says a change) */
	/* the ACME CA's work on libuv's pool, which uploads, pin records and
	 * reloads share (acmeca_serve.c): one request at a time (the CA takes
	 * one at a time anyway), a few checks; the rest wait in these lists */
	struct tg_ca_req *ca_req_wait;     /* requests waiting, oldest first */
	unsigned ca_req_running;
	struct tg_ca_check *ca_checks;     /* checks waiting or running, oldest first */
	unsigned ca_checking, ca_waiting;
	/* tunnels (tunnel.c) */
	struct tg_tunnel *tunnels;
	size_t ntunnels;
	struct tg_pipe *pipes;       /* tunnelled connections, counted in nconns */
	struct tg_tunnel *routes;    /* proxy routes */
	size_t nroutes;
	unsigned char entries_md[32];   /* tunnels: and proxy: as read at start */
	/* bring-your-own files watched for changes */
	int watching;
	uv_timer_t watch_tick;
	struct tg_file_sig {
		uint64_t dev, ino;
		int64_t size, mtime_ns, ctime_ns;
	} sig_cert, sig_key, sig_crl;
	int watch_cert;               /* the tick looks at tls.cert/key (not only the CRL) */
	int crl_changed;              /* the settle timer rebuilds for a new CRL */
	uv_timer_t watch_settle;
	int mutual;
	struct tg_trust *clients;    /* how client certificates are judged (mutual) */
	struct tg_known_watch *known_watches;   /* known files watched (known_watch.c) */
	/* settings, copied from the configuration at start */
	char listen[300];
	char state_dir[PATH_MAX];
	int files_enabled;
	char files_prefix[256];
	size_t files_prefix_len;
	char files_root[PATH_MAX];
	int files_root_fd;
	uint64_t max_upload;
	uint64_t t_handshake, t_header, t_body, t_keepalive, t_shutdown;   /* ms */
	size_t max_connections, max_header_bytes, max_headers;
	uint32_t max_per_ip;
	/* proxy_protocol.accept_from: load balancers whose connections on the
	 * main listener start with a PROXY header (proxyproto.h) */
	struct tg_pp_net *pp_nets;
	size_t npp_nets;
	char pp_from[1024];          /* its text, to tell a reload that changed it */
	int listen_inherited;        /* the main socket came from systemd (systemd.h) */
	struct tg_peers *peers;
	uint64_t refused_logged_ms;   /* rate limit for "limit reached" lines */
	_Atomic int log_json, log_level;   /* read by the ACME thread, set by a reload */
	struct tg_metrics m;          /* counters for /metrics (metrics.h) */
	uint64_t chain_base[2];       /* chain cache hits, misses of a dead predecessor */
	/* workers (workers.c): processes with one SO_REUSEPORT socket each */
	unsigned workers, worker_index;
	pid_t supervisor;
	int reload_at_start;          /* a replacement worker after a SIGHUP */
	int worker_fds[64];
	struct tg_worker_slot *slots;   /* shared counters, one per worker */
	uv_timer_t publish;
	uint64_t stop_ms;             /* loop time of the first stop signal */
	/* who answers requests, per listener, in the order they are asked
	 * (handler.h); set by the composition root, NULL-terminated */
	const struct tg_handler *handlers[TG_LISTENER_KINDS][TG_HANDLERS_MAX + 1];
	/* state */
	size_t nconns;
	struct tg_conn_s *conns;     /* intrusive list, for shutdown */
	int stopping;
};

/* The connection list just got shorter: ends a graceful stop when empty.
 * Inline here, so connections and pipes do not call into the composition
 * root (server.c) for it. */
static inline void
tg_server_conn_gone(struct tg_server *s)
{
	if (s->stopping && s->nconns == 0 && s->drain_started &&
	    !uv_is_closing((uv_handle_t *)&s->drain)) {
		uv_timer_stop(&s->drain);
		uv_close((uv_handle_t *)&s->drain, NULL);
	}
}


/* One line of the log; level 0 debug .. 3 error. */
enum { TG_LOG_DEBUG, TG_LOG_INFO, TG_LOG_WARN, TG_LOG_ERROR };
void tg_log(const struct tg_server *srv, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The per-request access line: what conn.c knows of a request. */
struct tg_access {
	const char *peer, *ident, *trust, *service, *method, *target;
	int status;
	uint64_t bytes_in, bytes_out, ms;
};
void tg_log_access(const struct tg_server *srv, const struct tg_access *a);

#endif
