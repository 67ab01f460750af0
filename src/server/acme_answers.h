/*
 * Challenge answers being published: HTTP-01 tokens and TLS-ALPN-01
 * certificates. The ACME thread publishes and withdraws them; the event
 * loop (or the one-shot responder) reads them. One mutex; lookups copy out.
 */
#ifndef TG_ACME_ANSWERS_H
#define TG_ACME_ANSWERS_H

#include <openssl/ssl.h>

#include "acme.h"

struct tg_answers;

struct tg_answers *tg_answers_new(void);
void tg_answers_free(struct tg_answers *a);
/* The solver the ACME code publishes through. */
struct tg_acme_solver tg_answers_solver(struct tg_answers *a);
/* The key authorization for an HTTP-01 token; 0 when found. */
int tg_answers_http01(struct tg_answers *a, const char *token, char *out, size_t len);
/* Hooks ctx so that a client offering ALPN "acme-tls/1" for a name being
 * validated gets that name's TLS-ALPN-01 certificate, and every other
 * client the context's own certificate (or, when it has none yet, a
 * handshake failure and a log line: never an unrelated certificate). */
void tg_answers_hook_ctx(SSL_CTX *ctx, struct tg_answers *a);
/* Did this handshake answer a TLS-ALPN-01 challenge? (Close it then.) */
int tg_answers_is_challenge(SSL *ssl);

/* The one-shot responder of `tlsgate acme issue`: answers on addr, plain
 * HTTP (HTTP-01) or TLS (TLS-ALPN-01), on its own thread until stopped. */
struct tg_responder;
struct tg_responder *tg_responder_start(struct tg_answers *a, const char *addr, int tls,
    struct tg_err *err);
void tg_responder_stop(struct tg_responder *r);

#endif
