/*
 * The ACME client's HTTP transport (acme_http.c): one libcurl handle, the
 * current nonce, and signed POSTs that survive badNonce.
 */
#ifndef TG_ACME_HTTP_H
#define TG_ACME_HTTP_H

#include <limits.h>

#include <openssl/evp.h>

#include <tlsgate/tlsgate.h>

struct tg_acme_http {
	void *curl;
	char nonce[256];
	char new_nonce_url[512];
	char ca_cert[PATH_MAX];
	char ca_error[TG_ERR_MSG];
};

struct tg_acme_resp {
	int status;
	char *body;                  /* NUL-terminated, or NULL */
	size_t len;
	char location[512];
	char content_type[128];
	int retry_after;             /* seconds, 0 if none */
};

int tg_acme_http_init(struct tg_acme_http *h, const char *ca_cert, struct tg_err *err);
void tg_acme_http_free(struct tg_acme_http *h);
void tg_acme_resp_clear(struct tg_acme_resp *r);
int tg_acme_get(struct tg_acme_http *h, const char *url, struct tg_acme_resp *r,
    struct tg_err *err);
/* A JWS-signed POST (payload NULL = POST-as-GET); 0 when an answer came,
 * whatever its status. */
int tg_acme_post(struct tg_acme_http *h, EVP_PKEY *key, const char *kid, const char *url,
    const char *payload, const char *accept, struct tg_acme_resp *r, struct tg_err *err);
/* The answer in words: the problem document if it is one, else the status. */
void tg_acme_resp_words(const struct tg_acme_resp *r, char *buf, size_t len);

#endif
