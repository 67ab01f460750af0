/*
 * OpenSSL contexts built from tlsgate settings: the server context (which
 * certificate, which TLS versions and suites, whether client certificates
 * are required and from which CAs) and the client context (whom we trust
 * when connecting out). Policy: TLS 1.2 minimum, ECDHE + AEAD only, no
 * renegotiation, no compression.
 */
#ifndef TG_TLS_H
#define TG_TLS_H

#include <openssl/ssl.h>

#include <tlsgate/tlsgate.h>

#include "trust.h"

struct tg_server_tls {
	const char *cert, *key;           /* chain and key files; "" = none yet (ACME) */
	const char *cert_origin, *key_origin;
	int min_version;                  /* TLS1_2_VERSION or TLS1_3_VERSION */
	int mutual;                       /* require client certificates */
	const char *clients_ca;           /* file or folder; "" = none */
	const char *clients_ca_origin;
	struct tg_trust *clients;         /* how client certificates are judged */
	int shared_sessions;              /* several workers: stateless tickets only */
};

SSL_CTX *tg_tls_server_ctx(const struct tg_server_tls *s, struct tg_err *err);
/* Why a client's certificate was refused, kept by the verify callback;
 * "" when verification did not fail. */
const char *tg_tls_refusal(SSL *ssl);

/* The trust engine's verdict on the client certificate of a finished
 * handshake (NULL when there was none). */
const struct tg_trust_verdict *tg_tls_verdict(SSL *ssl);
/* The trust object that judged ssl's client (its server context holds a
 * reference while it lives); NULL outside mutual mode. */
struct tg_trust *tg_tls_trust(SSL *ssl);

SSL_CTX *tg_tls_client_ctx(const struct tg_client_opts *o, struct tg_err *err);
/* Prepares ssl to talk to host (SNI unless an IP; name to verify). */
int tg_tls_client_prepare(SSL *ssl, const char *host, struct tg_err *err);
/* After the handshake, before any byte is sent: judges the server as
 * identity (host:port) by the trust engine; v tells the outcome. ca_hint
 * (e.g. "give its certificate with --ca-cert") follows an untrusted-CA
 * reason: the caller knows which setting the user should change. */
int tg_tls_client_judge(SSL *ssl, struct tg_trust *t, const char *identity, const char *ca_hint,
    struct tg_trust_verdict *v, struct tg_err *err);

int tg_tls_init(void);   /* once per process: ex_data indexes */

/* 1 if the kernel offers kTLS (the tls ULP is loaded): server contexts then
 * ask OpenSSL to hand the record layer to the kernel after the handshake. */
int tg_tls_ktls_available(void);

/* Session ticket keys shared by every server context of the process and
 * rotated each period (tickets.c); a ticket is good for one to two. */
#define TG_TICKET_PERIOD 3600
int tg_tickets_ready(void);
/* Seeds the ring with a key shared by a cluster: k at time at (an epoch
 * start); every node seeded alike derives the same keys at the same time.
 * Before any context is built. */
int tg_tickets_seed(const unsigned char key[32], time_t at);
/* The ring's seed as of now, one epoch behind, for the store. */
int tg_tickets_export(unsigned char key[32], time_t *at);
/* tickets_store.c: the seed in a cluster's store (taken, or created from
 * this ring under the store's lock), or from state_dir's copy of it when
 * the store is down; then moved forward by one process now and then (only
 * when this ring came from the store: a ring of its own never replaces the
 * cluster's). Before the fork of workers. */
int tg_tickets_from_store(struct tg_store *st, struct tg_err *err);
int tg_tickets_from_file(const char *state_dir, struct tg_err *err);
int tg_tickets_forward(struct tg_store *st, struct tg_err *err);
int tg_tickets_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
    EVP_MAC_CTX *hctx, int enc);

#endif
