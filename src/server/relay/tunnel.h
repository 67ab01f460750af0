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

#include "tls.h"

struct tg_server;

/* Opens the listeners and builds the TLS contexts of every tunnel in cfg
 * (before privileges are dropped). */
int tg_tunnels_open(struct tg_server *s, const struct tg_config *cfg, struct tg_err *err);
/* Starts accepting (on the loop). */
void tg_tunnels_start(struct tg_server *s);
/* Watches the known files of proxy routes and (first worker) tunnels. */
void tg_tunnels_watch_known(struct tg_server *s);
/* Stops accepting (graceful stop); open tunnel connections go on. */
void tg_tunnels_stop_accepting(struct tg_server *s);
/* Closes every tunnelled connection (end of the drain). */
void tg_tunnels_close_all(struct tg_server *s);
/* The server certificate changed: tunnels accepting TLS take it too. */
void tg_tunnels_cert_changed(struct tg_server *s);
void tg_tunnels_free(struct tg_server *s);

/* For /metrics and /status. */
struct tg_tunnel_stats {
	const char *listen, *connect;
	int tls_connect;
	size_t open;
	uint64_t accepted, refused, failed, bytes_in, bytes_out;
	const struct tg_alpn *alpn;      /* the tunnel's list (names of alpn_count) */
	const uint64_t *alpn_count;      /* by position, then none, refused (upstream.h) */
	const uint64_t *group_count;     /* by TG_TLS_GROUP_KINDS */
};
/* Tunnels and proxy routes whose CRL file changed build their TLS context
 * again (every 2 s, from the certificate watch). */
void tg_tunnels_crl_tick(struct tg_server *s);
/* 0 with *st filled for tunnel i, -1 past the last. */
int tg_tunnel_stats(const struct tg_server *s, size_t i, struct tg_tunnel_stats *st);

#endif
