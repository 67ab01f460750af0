/* The ACME CA's parts, between its files (acmeca*.c). */
#ifndef TG_ACMECA_INT_H
#define TG_ACMECA_INT_H

#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>

/* ---- acmeca_jws.c ------------------------------------------------------- */

struct tg_jws {
	json_t *header;               /* the protected header */
	char alg[16], nonce[128], url[1024], kid[1024];
	json_t *jwk;                  /* the header's jwk, or NULL (kid) */
	unsigned char *payload;       /* decoded, NUL-terminated */
	size_t payload_len;
	char *signing_input;          /* protected "." payload */
	size_t signing_len;
	unsigned char *sig;
	size_t sig_len;
};
int tg_jws_parse(const char *body, size_t len, struct tg_jws *j, char *why, size_t wl);
void tg_jws_clear(struct tg_jws *j);
EVP_PKEY *tg_jwk_key(json_t *jwk, char *why, size_t wl);
int tg_jwk_thumbprint(json_t *jwk, char *out, size_t len);
int tg_jws_verify(const struct tg_jws *j, EVP_PKEY *key, char *why, size_t wl);
int tg_jws_verify_hs256(const struct tg_jws *j, const unsigned char *key, size_t klen);

/* ---- acmeca_policy.c ---------------------------------------------------- */

/* An identifier (type "dns" or "ip", or "uri" from a CSR) against a policy
 * (a list, comma-separated): 1 allowed, 0 not. */
int tg_acmeca_allowed(const char *allow, const char *type, const char *value);
/* A DNS name ACME may ask for (lower case LDH labels, "*." first allowed). */
int tg_acmeca_dns_ok(const char *name);
/* Zeroes a secret string member of o in place (before json_decref). */
void tg_json_wipe(json_t *o, const char *member);

/* ---- acmeca_validate.c -------------------------------------------------- */

struct tg_acmeca_check {
	int type;                     /* TG_ACMECA_* */
	char id_type[8];              /* dns ip */
	char id_value[256];
	char key_auth[400];           /* token "." thumbprint */
	char token[128];
	int http_port, tls_port;
	const char *resolver;
};
/* 0 when the challenge is met; -1 with why in words. Blocking. */
int tg_acmeca_check(const struct tg_acmeca_check *k, char *why, size_t wl);

#endif
