/*
 * Outgoing connections with tlsgate's trust rules, blocking with timeouts:
 * what `get`, `put` and `cert show|check HOST:PORT` use. The event-driven
 * server never calls these.
 */
#ifndef TG_CLIENT_H
#define TG_CLIENT_H

#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include <tlsgate/tlsgate.h>

struct tg_conn;

/*
 * Connects to host:port, with TLS when use_tls. With enforce set, a server
 * that fails the trust rules is an error (in words); without, the
 * connection stays up and tg_conn_verdict() tells what was wrong.
 */
int tg_conn_open(const char *host, int port, int use_tls, const struct tg_client_opts *o,
    int enforce, struct tg_conn **out, struct tg_err *err);
const char *tg_conn_verdict(struct tg_conn *c, int *trusted);
/* The verdict when it carries a warning (insecure-no-validation), else NULL. */
const char *tg_conn_warning(struct tg_conn *c);
STACK_OF(X509) *tg_conn_chain(struct tg_conn *c);
const char *tg_conn_protocol(struct tg_conn *c);   /* "TLSv1.3 TLS_AES_128..." */
/* Bytes read, 0 at a clean end, -1 on error. */
ssize_t tg_conn_read(struct tg_conn *c, void *buf, size_t len, struct tg_err *err);
int tg_conn_write(struct tg_conn *c, const void *buf, size_t len, struct tg_err *err);
void tg_conn_close(struct tg_conn *c);

struct tg_url {
	int tls;
	char host[256];
	int port;
	char path[4096];   /* with query, starting with '/' */
};
int tg_url_parse(const char *url, struct tg_url *u, struct tg_err *err);

/*
 * One HTTP/1.1 exchange. A body comes from body_fd (body_len bytes) when
 * body_fd >= 0; the response body goes to out_fd. Non-2xx answers are
 * errors carrying the status and the server's first line of explanation.
 */
int tg_http_fetch(const char *method, const char *url, const struct tg_client_opts *o,
    int body_fd, uint64_t body_len, int out_fd, int *status, struct tg_err *err);

#endif
