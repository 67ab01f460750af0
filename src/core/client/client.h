/*
 * Outgoing connections with tlsgate's trust rules, blocking with timeouts:
 * what `get`, `put` and `cert show|check HOST:PORT` use, and behind the
 * public tg_client_* functions (tlsgate.h). The event-driven server never
 * calls these.
 */
#ifndef TG_CLIENT_H
#define TG_CLIENT_H

#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include <tlsgate/tlsgate.h>

struct tg_store_conf;

/*
 * Connects to host:port, with TLS when use_tls. With enforce set, a server
 * that fails the trust rules is an error (in words); without, the
 * connection stays up and tg_client_verdict() tells what was wrong. store:
 * a cluster node's store, through which pins in its state_dir are recorded
 * (NULL: the known file is written directly). tg_client_open (public) is
 * this with TLS, enforced, no store.
 */
int tg_client_dial(const char *host, int port, int use_tls, const struct tg_client_opts *o,
    const struct tg_store_conf *store, int enforce, struct tg_client **out, struct tg_err *err);
/* The verdict when it carries a warning (insecure-no-validation), else NULL. */
const char *tg_client_warning(struct tg_client *c);
/* The chain the server presented (owned by the connection). */
STACK_OF(X509) *tg_client_chain(struct tg_client *c);

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
    const struct tg_store_conf *store, int body_fd, uint64_t body_len, int out_fd, int *status,
    struct tg_err *err);

#endif
