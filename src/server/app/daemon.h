/*
 * The daemon as the command runs it: build a server from a configuration,
 * run it until a stop signal, free it. This is the composition root
 * (daemon.c): it alone knows every part and wires them together.
 */
#ifndef TG_DAEMON_H
#define TG_DAEMON_H

#include <tlsgate/tlsgate.h>

struct tg_server;
struct tg_keypair;

/* Builds a server from a validated configuration: state_dir, certificates
 * (auto when needed), the TLS context, the listening socket. */
struct tg_server *tg_server_new(const struct tg_config *cfg, struct tg_keypair *kp,
    struct tg_err *err);
/* Runs until SIGINT or SIGTERM, then lets requests in flight finish for up
 * to timeouts.shutdown. SIGHUP rebuilds the configuration with srv->reload
 * and applies it (certificates, trust, limits) without dropping anyone; a
 * configuration that does not load is refused and the old one kept. */
int tg_server_run(struct tg_server *srv);
void tg_server_free(struct tg_server *srv);

#endif
