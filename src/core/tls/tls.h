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
/* Moves an established session onto fd, another descriptor of the same
 * socket (a dup), keeping its BIO: a kernel that encrypts for it (kTLS)
 * keeps doing so, where SSL_set_fd would start a fresh BIO that OpenSSL
 * then encrypts through too. 0, or -1 when it could not. */
int tg_tls_move_fd(SSL *ssl, int fd);
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
/* hours a cluster key file is stepped past its last (tickets.c) */
#define TG_TICKET_STEP_MAX 72
int tg_tickets_ready(void);
/* A cluster's keys: from now on the file at path (the node's copy of the
 * store's tickets/keys) decides them, re-read when it changes; until it
 * exists this process's own ring serves. Before the contexts are built. */
int tg_tickets_use_file(const char *path);
/* The file's text: "tlsgate-ticket-keys v2 HOUR HEX HEX HEX", the keys of
 * HOUR-1, HOUR and HOUR+1 (hours since the epoch). 0 when whole. */
int tg_tickets_parse(const char *text, long *hour, unsigned char k[3][32]);
/* The key of hour e given a file of hour fe (stepped on past its last). */
int tg_tickets_key_of(long fe, const unsigned char k[3][32], long e, unsigned char out[32]);
/* tickets_store.c: makes sure the store holds this hour's keys (fresh
 * random ones each hour, the next hour's published ahead), under the
 * store's lock; any node may, the first to come does. */
int tg_tickets_rotate(struct tg_store *st, struct tg_err *err);
/* A cluster node at start: rotate, then use state_dir's copy of the keys.
 * -1 (err set) when the store did not answer: the copy, if any, is used. */
int tg_tickets_join(struct tg_store *st, const char *state_dir, struct tg_err *err);
int tg_tickets_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
    EVP_MAC_CTX *hctx, int enc);

#endif
