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

#include "handler.h"
#include "http_parse.h"

struct tg_server;

/* Proxy routes (the `proxy:` list) use the same machinery: a request
 * whose path starts with a route's prefix is handed over, with its
 * rewritten head, to a pipe that connects to the upstream. */
int tg_proxy_open(struct tg_server *s, const struct tg_config *cfg, struct tg_err *err);
void tg_proxy_free(struct tg_server *s);
/* Closes the idle upstream connections (stop). */
void tg_proxy_pool_close(struct tg_server *s);
/* Watches the files of the routes' @FILE headers (read on change, never
 * per request) and reads each once. Loop thread, at start. */
void tg_proxy_watch_headers(struct tg_server *s);
/* Requests whose path starts with a route's prefix: the connection is
 * handed over, with the rewritten head (the prefix replaced by the
 * upstream's path, hop-by-hop fields dropped, X-Forwarded-For/-Proto/-Host
 * and the route's headers added), to a pipe that connects to the upstream.
 * With a keep-alive client the connection goes back to the HTTP side when
 * the exchange ends cleanly; the upstream's joins the route's idle pool. */
extern const struct tg_handler tg_proxy_handler;

#endif
