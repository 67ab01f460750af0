/*
 * Challenge answers being published: HTTP-01 tokens and TLS-ALPN-01
 * certificates. The ACME thread publishes and withdraws them; the event
 * loop (or the one-shot responder) reads them. One mutex; lookups copy out.
 */
#ifndef TG_ACME_ANSWERS_H
#define TG_ACME_ANSWERS_H

#include <openssl/ssl.h>

#include "acme.h"
#include "store.h"

struct tg_answers;

struct tg_answers *tg_answers_new(void);
void tg_answers_free(struct tg_answers *a);
/* Also writes answers to the store sc names (a copy is kept), and looks
 * there (in sc's state_dir) for answers another process published. Before
 * the agent starts. */
int tg_answers_share(struct tg_answers *a, const struct tg_store_conf *sc, struct tg_err *err);
/* The solver the ACME code publishes through. */
struct tg_acme_solver tg_answers_solver(struct tg_answers *a);
/* The key authorization for an HTTP-01 token: 0 found in this process's
 * table, 1 in the store (published by another worker or node), -1 none. */
int tg_answers_http01(struct tg_answers *a, const char *token, char *out, size_t len);
/* Hooks ctx so that a client offering ALPN "acme-tls/1" for a name being
 * validated gets that name's TLS-ALPN-01 certificate, and every other
 * client the context's own certificate (or, when it has none yet, a
 * handshake failure and a log line: never an unrelated certificate). */
void tg_answers_hook_ctx(SSL_CTX *ctx, struct tg_answers *a);
/* Did this handshake answer a TLS-ALPN-01 challenge? (Close it then.)
 * 0 no, 1 from this process's table, 2 from the store. */
int tg_answers_is_challenge(SSL *ssl);

/* The one-shot responder of `tlsgate acme issue`: answers on addr, plain
 * HTTP (HTTP-01) or TLS (TLS-ALPN-01), on its own thread until stopped. */
struct tg_responder;
struct tg_responder *tg_responder_start(struct tg_answers *a, const char *addr, int tls,
    struct tg_err *err);
void tg_responder_stop(struct tg_responder *r);

#endif
