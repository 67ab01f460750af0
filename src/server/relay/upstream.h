/*
 * What a tunnel and a proxy route have in common: an upstream to connect
 * to (its address, TLS context and trust, resolved and built once at
 * start from the `tunnels:` or `proxy:` entry), counters, and for tunnels
 * a listener. Set-up only; the pipe (pipe.c) carries the bytes.
 */
#ifndef TG_UPSTREAM_H
#define TG_UPSTREAM_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/ssl.h>
#include <uv.h>

#include <tlsgate/tlsgate.h>

#include "server.h"
#include "tls.h"

#define TUN_SETUP_MS  10000          /* connect and handshakes must finish within */

struct tg_server;
struct tg_trust;

#define TG_ALPN_NONE    TG_ALPN_MAX        /* index in alpn_count */
#define TG_ALPN_REFUSED (TG_ALPN_MAX + 1)
struct idle_up;

struct tg_tunnel {
	struct tg_server *srv;
	size_t index;
	char listen[300], connect[300];
	int tls_connect, mutual;
	SSL_CTX *ctx;
	struct tg_trust *trust;      /* TLS in (mutual): clients; TLS out: the server */
	char host[256];              /* TLS out: the name verified and sent in SNI */
	int port;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	uint64_t idle_ms;
	size_t max_conns, nconns;
	int fd;
	uv_poll_t poll;
	uint64_t refused_logged_ms;
	uint64_t accepted, refused, failed, bytes_in, bytes_out;
	uint64_t setup_ms;           /* connect and handshakes within */
	/* proxy routes (http): the request goes to up_host + up_path */
	int http;
	char prefix[256], up_path[2048], up_host[300];
	uint64_t first_byte_ms;
	struct proxy_header *headers;
	size_t nheaders;
	struct idle_up *idle;        /* kept upstream connections, newest first (proxy.c) */
	size_t nidle;
	/* TLS in: how the context is built again when the certificate changes */
	char ca[PATH_MAX], ca_origin[320];
	char groups[512];            /* key-exchange groups of the TLS side; "" default */
	char crl[PATH_MAX];          /* tunnels.N.crl: the TLS peer's CRLs; "" the default */
	struct tg_file_sig crl_sig, crl_seen, crl_failed;   /* in service, seen last tick, refused */
	int crl_retrying;            /* a rebuild failed for another cause than the CRL: said */
	/* TLS out: what the client context is built from, to build it again
	 * when its CRL changes */
	char out_trust[32], out_known[PATH_MAX], out_ca[PATH_MAX], out_local_ca[PATH_MAX];
	char out_cert[PATH_MAX], out_key[PATH_MAX], out_groups[512];
	int out_crl_soft;
	/* TLS out with tls.auto: acme and no client certificate configured:
	 * the node's own certificate is presented (an ACME CA of tlsgate issues
	 * it for clientAuth too), and followed when it is renewed */
	int out_cert_own;
	struct tg_file_sig own_sig;   /* of the certificate file in service */
	/* ALPN: TLS in, the protocols selected (server preference); TLS out,
	 * the ones offered, one of which the upstream must select; none: no
	 * ALPN (docs/tunnels.md) */
	struct tg_alpn alpn;
	int alpn_hinted;             /* the "clients offer ALPN" hint was logged */
	int proxy_protocol;          /* 0 off, 1 or 2: PROXY header version sent upstream */
	/* /metrics: by position in alpn, then none and refused; groups by kind */
	uint64_t alpn_count[TG_ALPN_MAX + 2];
	uint64_t group_count[TG_GROUP_KINDS];
};


/* An extra request header of a proxy route: a value, or a file's content
 * read again when the file changes. */
struct proxy_header {
	char name[128];
	char value[4096];
	char file[PATH_MAX];
	struct timespec mtime;
	int loaded;                  /* value holds what the file had when last read */
	int watched;                 /* a watch re-reads it on change: no stat per request */
	struct tg_tunnel *t;         /* the route (for the watch's callback) */
};

/* Every entry of list ("tunnels" or "proxy") from the configuration, each
 * a listener or a route, into *out (calloc'ed, *nout entries, each fd -1
 * until its listener opens); -1 with a message naming the entry. What was
 * built before a failure stays in *out for the caller's free. */
int tg_upstream_open_all(struct tg_server *s, const struct tg_config *cfg, const char *list,
    struct tg_tunnel **out, size_t *nout, struct tg_err *err);
/* (Re)builds the server-side context of a tunnel that accepts TLS from the
 * server's current certificate; the old one is kept on failure. */
int tg_upstream_tls_in_ctx(struct tg_tunnel *t, struct tg_err *err);
/* /metrics: the ALPN protocol and group of a finished handshake of t. */
void tg_upstream_count(struct tg_tunnel *t, SSL *ssl);
/* t's CRL file changed since its context was built: the context is built
 * again (TLS in or out). 1 when rebuilt, 0 unchanged or none, -1 in words
 * (the old context stays). Loop thread. */
int tg_upstream_crl_check(struct tg_tunnel *t, struct tg_err *err);
/* TLS out presenting the node's own certificate (out_cert_own): when the
 * server's certificate was renewed or replaced, the client context is built
 * again with it. 1 rebuilt, 0 unchanged, -1 in words (the old one stays).
 * Loop thread. */
int tg_upstream_own_cert_check(struct tg_tunnel *t, struct tg_err *err);
/* Frees an entry's context and trust (not the entry). */
void tg_upstream_release(struct tg_tunnel *t);

#endif
