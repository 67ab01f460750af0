/*
 * The reverse proxy (the `proxy:` list): routes by path prefix to HTTP or
 * HTTPS upstreams, carried by the same pipes as the tunnels (pipe.c).
 */
#ifndef TG_PROXY_H
#define TG_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include <tlsgate/tlsgate.h>

#include "http_parse.h"

struct tg_server;

/* Proxy routes (the `proxy:` list) use the same machinery: a request
 * whose path starts with a route's prefix is handed over, with its
 * rewritten head, to a pipe that connects to the upstream. */
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
/* Watches the files of the routes' @FILE headers (read on change, never
 * per request) and reads each once. Loop thread, at start. */
void tg_proxy_watch_headers(struct tg_server *s);
/* Takes over a client socket (and its SSL, now on fd): head is the
 * rewritten request head, body_read the body bytes already read; body_len
 * is the request's Content-Length (0 without a body), -1 when chunked.
 * With client_keep the client's connection goes back to the HTTP side when
 * the exchange ends cleanly; the upstream's joins the route's idle pool. */
int tg_proxy_take(struct tg_server *s, int route, int fd, SSL *ssl, const char *peer,
    const char *ip, const char *what, const char *head, size_t head_len, const char *body_read,
    size_t body, int64_t body_len, int client_keep, int expect);

#endif
