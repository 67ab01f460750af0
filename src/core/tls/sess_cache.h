/*
 * A bounded server-side session cache for mutual TLS. A stateless ticket
 * carries the client's certificate, and OpenSSL 3.0 encodes the session,
 * decodes it back (the certificate's key through the provider decoders) and
 * encodes it again to make one: ~120 µs of a ~630 µs handshake. A session
 * kept here costs a reference instead, and a returning session is judged by
 * the trust engine again before it is handed back. One process only: with
 * several workers the shared stateless tickets are used instead.
 */
#ifndef TG_SESS_CACHE_H
#define TG_SESS_CACHE_H

#include <openssl/ssl.h>

#define TG_SESS_CACHE_SIZE 2048   /* sessions at most; each holds its client certificate, ~5.6 KiB */

/* 1: the session may resume; 0: a full handshake instead. */
typedef int (*tg_sess_judge)(SSL *ssl, SSL_SESSION *sess, void *arg);

/* Makes ctx keep its sessions here (stateful TLS 1.3 tickets). */
int tg_sess_cache_attach(SSL_CTX *ctx, size_t capacity, tg_sess_judge judge, void *arg);

#endif
