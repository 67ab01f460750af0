/*
 * ACME's messages, below the protocol: the server's JSON documents parsed
 * (acme_json.c, the fuzzed surface) and the client's requests signed
 * (acme_jws.c). Used by the transport (acme_http.c) and the protocol
 * (acme.c); pure functions, any thread.
 */
#ifndef TG_ACME_WIRE_H
#define TG_ACME_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>

#include <tlsgate/tlsgate.h>

/* ---- JSON documents (acme_json.c) --------------------------------------- */

struct tg_acme_dir {
	char new_nonce[512], new_account[512], new_order[512];
	char renewal_info[512];      /* ARI; "" when the CA has none */
	char terms[512];             /* meta.termsOfService */
	int eab_required;            /* meta.externalAccountRequired */
	char profiles[1024];         /* meta.profiles' names, ", " between; "" none */
};

#define TG_ACME_MAX_AUTHZ 100

struct tg_acme_order {
	char status[16];             /* pending ready processing valid invalid */
	char finalize[512], certificate[512];
	char *authz[TG_ACME_MAX_AUTHZ];
	size_t nauthz;
	char error[768];             /* the order's problem, in words */
};

struct tg_acme_chall {
	char type[32], url[512], token[256], status[16];
	char error[768];
};

struct tg_acme_authz {
	char status[16];
	char id_type[8], id_value[256];
	int wildcard;
	struct tg_acme_chall chall[8];
	size_t nchall;
};

struct tg_acme_ari {
	time_t start, end;           /* suggested renewal window */
	char explanation[512];
};

/* Does the directory list profile name? */
int tg_acme_is_profile(const struct tg_acme_dir *d, const char *name);
int tg_acme_parse_directory(const char *json, size_t len, struct tg_acme_dir *d,
    struct tg_err *err);
int tg_acme_parse_order(const char *json, size_t len, struct tg_acme_order *o,
    struct tg_err *err);
void tg_acme_order_clear(struct tg_acme_order *o);
int tg_acme_parse_authz(const char *json, size_t len, struct tg_acme_authz *a,
    struct tg_err *err);
int tg_acme_parse_ari(const char *json, size_t len, struct tg_acme_ari *r,
    struct tg_err *err);
/* A problem document (RFC 7807 / 8555 section 6.7) in words: "the CA refused
 * NAME: DETAIL (urn:...:TYPE)"; 0 when it was one, -1 when not JSON. */
int tg_acme_problem_words(const char *json, size_t len, char *buf, size_t buflen);
/* RFC 3339 time to seconds since the epoch; -1 when malformed. */
int tg_acme_parse_time(const char *s, time_t *out);

/* ---- JWS and keys (acme_jws.c) ----------------------------------------- */

int tg_b64url(const void *data, size_t len, char *out, size_t outlen);
/* Decodes base64url (padding optional); returns the length or -1. */
long tg_b64url_decode(const char *in, unsigned char *out, size_t outlen);
/* The JWK of an EC P-256 key, members in lexicographic order (RFC 7638). */
int tg_acme_jwk(EVP_PKEY *key, char *buf, size_t len);
/* base64url(SHA-256(JWK)): the account key's thumbprint. */
int tg_acme_thumbprint(EVP_PKEY *key, char *buf, size_t len);
/* A flattened JWS (RFC 7515) signed with ES256; kid NULL means "jwk".
 * payload NULL is POST-as-GET (empty payload). Returns malloc'ed JSON. */
char *tg_acme_jws(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
    const char *payload, struct tg_err *err);
/* External account binding (RFC 8555 section 7.3.4): HS256 over the JWK. */
char *tg_acme_eab(EVP_PKEY *account_key, const char *kid, const char *hmac_b64url,
    const char *url, struct tg_err *err);

#endif
