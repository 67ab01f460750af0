/*
 * Listening sockets: the server's, each worker's (SO_REUSEPORT), the
 * admin port's, the ACME responder's and every tunnel's. Its own file so
 * none of them reaches into the server's composition root for it.
 */
#ifndef TG_LISTEN_H
#define TG_LISTEN_H

#include <tlsgate/tlsgate.h>

/* A listening socket for HOST:PORT (":PORT" = every address), non-blocking
 * and close-on-exec; reuseport lets several workers bind the same address.
 * Errors say what to do (port in use, privileged port). */
int tg_listen_open(const char *spec, int reuseport, struct tg_err *err);
/* The same, taking first a socket systemd passed (systemd.h) named name
 * (NULL: none) or bound to spec. */
int tg_listen_open_as(const char *name, const char *spec, int reuseport, struct tg_err *err);

/* The address fd is bound to, "HOST:PORT" ("[V6]:PORT"); -1 if unknown. */
int tg_listen_address(int fd, char *buf, size_t len);

#endif
