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
	const char *groups;               /* key-exchange groups; NULL: the default */
	const char *groups_what;          /* the setting, for messages */
	const char *clients_crl;          /* mutual: CRL file or folder; NULL/"" none */
	const char *clients_crl_what;     /* the setting, for messages */
	int crl_soft;                     /* a missing or stale CRL lets clients pass */
};

SSL_CTX *tg_tls_server_ctx(const struct tg_server_tls *s, struct tg_err *err);
/* Why a client's certificate was refused, kept by the verify callback;
 * "" when verification did not fail. */
const char *tg_tls_refusal(SSL *ssl);

/* Why one of our own handshake callbacks (ALPN, say) refused the peer, in
 * words: noted by the callback (the first note stays), read by whoever
 * logs the failed handshake; "" when none. */
void tg_tls_note(SSL *ssl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *tg_tls_noted(SSL *ssl);

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

/*
 * Key-exchange groups (tls_groups.c). A list is names separated by ':' or
 * ','; NULL or "" means tlsgate's default: X25519MLKEM768 first where the
 * library has it (OpenSSL 3.5+), then X25519:P-256:P-384. The DEFAULT
 * keyword is refused (CVE-2026-2673). what names the setting in messages.
 */
int tg_tls_set_groups(SSL_CTX *ctx, const char *list, const char *what, struct tg_err *err);
const char *tg_tls_groups_default(void);
int tg_tls_pq_available(void);                 /* the library has X25519MLKEM768 */
const char *tg_tls_groups_offered(void);       /* "X25519, X448, P-256, ..." */
int tg_tls_groups_pq_first(const char *list);  /* list (NULL: default) leads with ML-KEM */
/* "post-quantum key exchange on (...)" or "... off: why" for list. */
void tg_tls_groups_words(const char *list, char *buf, size_t len);

/* The negotiated group of a finished handshake, by kind, for /metrics:
 * X(id, label, OpenSSL's name). */
#define TG_TLS_GROUP_KINDS(X) \
	X(TG_GROUP_X25519MLKEM768, "X25519MLKEM768", "X25519MLKEM768") \
	X(TG_GROUP_X25519, "x25519", "x25519") \
	X(TG_GROUP_P256, "secp256r1", "secp256r1") \
	X(TG_GROUP_P384, "secp384r1", "secp384r1") \
	X(TG_GROUP_P521, "secp521r1", "secp521r1") \
	X(TG_GROUP_X448, "x448", "x448") \
	X(TG_GROUP_OTHER, "other", "") \
	X(TG_GROUP_NONE, "none", "")
enum tg_tls_group_kind {
#define TG_GROUP_ID(id, label, name) id,
	TG_TLS_GROUP_KINDS(TG_GROUP_ID)
#undef TG_GROUP_ID
	TG_GROUP_KINDS
};
int tg_tls_group_kind(SSL *ssl);
const char *tg_tls_group_label(int kind);

/*
 * ALPN (tls_alpn.c). A list is protocol names separated by ',' or ':'
 * ("h2,http/1.1"); its wire form is what OpenSSL takes (length-prefixed).
 */
#define TG_ALPN_MAX 8                  /* names in one list */
#define TG_ALPN_WIRE 256
struct tg_alpn {
	unsigned char wire[TG_ALPN_WIRE];
	size_t len;                        /* 0: no list */
	size_t n;                          /* names */
};
/* -1 in words (what names the setting) for an empty or too long name. */
int tg_alpn_parse(const char *list, struct tg_alpn *a, const char *what, struct tg_err *err);
/* The position in a of the first of its names the client offers (server
 * preference), -1 when none; sel and sellen then point into offer. */
int tg_alpn_pick(const struct tg_alpn *a, const unsigned char *offer, unsigned int offerlen,
    const unsigned char **sel, unsigned char *sellen);
/* The position in a of proto, -1 when it is not there. */
int tg_alpn_index(const struct tg_alpn *a, const unsigned char *proto, unsigned int len);
/* The name at position i, into buf. */
void tg_alpn_name(const struct tg_alpn *a, size_t i, char *buf, size_t len);
/* A wire-form list as text: "h2, http/1.1" ("nothing" when empty). */
void tg_alpn_text(const unsigned char *wire, size_t len, char *buf, size_t cap);

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
