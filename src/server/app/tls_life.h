/*
 * The served certificate's life in the daemon (tls_life.c): the context
 * built at start and on reload, swapped when the certificate changes.
 * Loop thread only; the composition root (daemon.c) calls these.
 */
#ifndef TG_TLS_LIFE_H
#define TG_TLS_LIFE_H

#include <uv.h>

#include <tlsgate/tlsgate.h>

struct tg_server;
struct tg_keypair;

/* The TLS context and the trust of client certificates from cfg, into s
 * (s->ssl_ctx, s->clients, s->tls); the keypair used in kp. */
int tg_daemon_setup_tls(struct tg_server *s, const struct tg_config *cfg, struct tg_keypair *kp,
    struct tg_err *err);
/* Watches the certificate files the server does not write itself (and, in
 * workers after the first or cluster nodes, the ACME copies), and swaps a
 * changed certificate in once both files settle. Again after a reload. */
void tg_daemon_watch_files(struct tg_server *s);
/* The ACME agent has a new certificate (an uv_async callback). */
void tg_daemon_acme_cert(uv_async_t *h);

#endif
