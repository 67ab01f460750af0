/*
 * TCP tunnels, stunnel-style (the `tunnels:` list): each accepts on its own
 * listener and pumps bytes to `connect`, wrapping one side in TLS — TLS in
 * and plain out (judged by tls.* rules, mutual if asked), or plain in and
 * TLS out (judged by client.* rules). Bounded buffers both ways (a slow
 * receiver stops reading from the sender), half-close passed through, an
 * idle timeout, and a connection limit per tunnel.
 */
#ifndef TG_TUNNEL_H
#define TG_TUNNEL_H

#include <stddef.h>
#include <stdint.h>

#include <tlsgate/tlsgate.h>

struct tg_server;

/* Opens the listeners and builds the TLS contexts of every tunnel in cfg
 * (before privileges are dropped). */
int tg_tunnels_open(struct tg_server *s, const struct tg_config *cfg, struct tg_err *err);
/* Starts accepting (on the loop). */
void tg_tunnels_start(struct tg_server *s);
/* Stops accepting (graceful stop); open tunnel connections go on. */
void tg_tunnels_stop_accepting(struct tg_server *s);
/* Closes every tunnelled connection (end of the drain). */
void tg_tunnels_close_all(struct tg_server *s);
/* The server certificate changed: tunnels accepting TLS take it too. */
void tg_tunnels_cert_changed(struct tg_server *s);
void tg_tunnels_free(struct tg_server *s);

/* Proxy routes (the `proxy:` list) use the same machinery: a request
 * whose path starts with a route's prefix is handed over, with its
 * rewritten head, to a pipe that connects to the upstream. */
#include <openssl/ssl.h>
#include "http_parse.h"
int tg_proxy_open(struct tg_server *s, const struct tg_config *cfg, struct tg_err *err);
void tg_proxy_free(struct tg_server *s);
/* Closes the idle upstream connections (stop). */
void tg_proxy_pool_close(struct tg_server *s);
/* The route for a request path (longest prefix), -1 for none. */
int tg_proxy_match(const struct tg_server *s, const char *target);
/* The upstream request head (malloc'ed): the prefix replaced by the
 * upstream's path, hop-by-hop fields dropped, X-Forwarded-For/-Proto/-Host
 * and the route's headers added, "Connection: close". *expect: the client
 * asked for 100-continue (answered by the pipe, not forwarded). */
char *tg_proxy_head(struct tg_server *s, int route, const char *method, const char *target,
    const struct tg_http_header *h, size_t nh, const char *client_ip, int tls, int *expect,
    size_t *len);
/* Takes over a client socket (and its SSL, now on fd): head is the
 * rewritten request head, body_read the body bytes already read; body_len
 * is the request's Content-Length (0 without a body), -1 when chunked.
 * With client_keep the client's connection goes back to the HTTP side when
 * the exchange ends cleanly; the upstream's joins the route's idle pool. */
int tg_proxy_take(struct tg_server *s, int route, int fd, SSL *ssl, const char *peer,
    const char *ip, const char *what, const char *head, size_t head_len, const char *body_read,
    size_t body, int64_t body_len, int client_keep, int expect);

/* For /metrics and /status. */
struct tg_tunnel_stats {
	const char *listen, *connect;
	int tls_connect;
	size_t open;
	uint64_t accepted, refused, failed, bytes_in, bytes_out;
};
/* 0 with *st filled for tunnel i, -1 past the last. */
int tg_tunnel_stats(const struct tg_server *s, size_t i, struct tg_tunnel_stats *st);

#endif
