/*
 * The answers table and the TLS-ALPN-01 side of the server's TLS context:
 * a client hello callback that looks at ALPN and SNI before OpenSSL picks a
 * certificate, so a validation server offering "acme-tls/1" for a name in
 * the table gets that name's RFC 8737 certificate, while ordinary clients
 * on the same listener keep getting the real one.
 *
 * Answers are also written to the store (tg_answers_share): a validation
 * may reach another worker of this machine, or another node of a cluster,
 * and the one that did not place the order finds the answer in its copy of
 * the store (state_dir/acme/challenges/...) when its own table lacks it.
 */
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acme_answers.h"
#include "error.h"
#include "store.h"
#include "util.h"

#define MAX_ANSWERS 128
#define SHARE_SETTLE_MS 1000

struct answer {
	int used;
	enum tg_acme_challenge type;
	char what[256];              /* token (HTTP-01) or name (TLS-ALPN-01) */
	char keyauth[400];
	X509 *cert;                  /* TLS-ALPN-01 */
	EVP_PKEY *key;
};

struct tg_answers {
	pthread_mutex_t mu;
	struct answer a[MAX_ANSWERS];
	struct tg_store_conf *share;  /* set before the agent starts, then read-only */
};

static int challenge_idx = -1;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
init_once(void)
{
	challenge_idx = SSL_get_ex_new_index(0, "tlsgate acme-tls/1", NULL, NULL, NULL);
}

struct tg_answers *
tg_answers_new(void)
{
	struct tg_answers *a = calloc(1, sizeof(*a));

	pthread_once(&once, init_once);
	if (a)
		pthread_mutex_init(&a->mu, NULL);
	return a;
}

static void
clear(struct answer *x)
{
	X509_free(x->cert);
	EVP_PKEY_free(x->key);
	OPENSSL_cleanse(x->keyauth, sizeof(x->keyauth));
	memset(x, 0, sizeof(*x));
}

void
tg_answers_free(struct tg_answers *a)
{
	size_t i;

	if (a == NULL)
		return;
	for (i = 0; i < MAX_ANSWERS; i++)
		clear(&a->a[i]);
	pthread_mutex_destroy(&a->mu);
	free(a->share);
	free(a);
}

int
tg_answers_share(struct tg_answers *a, const struct tg_store_conf *sc, struct tg_err *err)
{
	if ((a->share = malloc(sizeof(*a->share))) == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	*a->share = *sc;
	return 0;
}

/* The store name of an answer; -1 for a token or name that cannot be one
 * (then it is never looked up on disk either). */
static int
answer_name(enum tg_acme_challenge type, const char *what, char *buf, size_t len)
{
	char low[256];
	size_t i, n = strlen(what);

	if (n == 0 || n >= sizeof(low))
		return -1;
	for (i = 0; i < n; i++) {
		char c = what[i];
		if (type == TG_ACME_TLSALPN01 && c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');   /* DNS names compare without case */
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    (type == TG_ACME_HTTP01 && c >= 'A' && c <= 'Z') ||
		    (type == TG_ACME_TLSALPN01 && c == '.' && i > 0 && what[i - 1] != '.')))
			return -1;
		low[i] = c;
	}
	low[n] = '\0';
	return snprintf(buf, len, "acme/challenges/%s/%s", type == TG_ACME_HTTP01 ? "http-01" :
	    "tls-alpn-01", low) >= (int)len ? -1 : 0;
}

/* The answer another worker or node published, from this node's copy. */
static int
stored_answer(struct tg_answers *a, enum tg_acme_challenge type, const char *what, char *out,
    size_t len)
{
	char name[400], path[PATH_MAX];
	unsigned char *v = NULL;
	size_t vl = 0;
	struct tg_err err;

	if (a->share == NULL || answer_name(type, what, name, sizeof(name)) < 0 ||
	    snprintf(path, sizeof(path), "%s/%s", a->share->state_dir, name) >= (int)sizeof(path) ||
	    tg_read_file(path, &v, &vl, 1024, &err) < 0)
		return -1;
	if (vl == 0 || vl >= len || memchr(v, 0, vl)) {
		OPENSSL_free(v);
		return -1;
	}
	memcpy(out, v, vl);
	out[vl] = '\0';
	OPENSSL_free(v);
	return 0;
}

/* Writes (answer) or removes (NULL) an answer in the shared store. */
static int
share_answer(struct tg_answers *a, enum tg_acme_challenge type, const char *what,
    const char *answer, struct tg_err *err)
{
	struct tg_store *st;
	char name[400];
	int rv;

	if (a->share == NULL || type == TG_ACME_DNS01)
		return 0;
	if (answer_name(type, what, name, sizeof(name)) < 0)
		return answer ? tg_err_set(err, TG_E_ACME, "the CA's challenge token '%s' cannot be "
		    "stored", what) : 0;
	if ((st = tg_store_open_conf(a->share, 1, err)) == NULL)
		return -1;
	if (answer)
		rv = tg_store_put(st, name, answer, strlen(answer), 0, err);
	else if ((rv = tg_store_delete(st, name, err)) < 0 && err->code == TG_E_NOT_FOUND)
		rv = 0;
	tg_store_free(st);
	return rv;
}

static void withdraw(void *arg, enum tg_acme_challenge type, const char *what);

static int
publish(void *arg, enum tg_acme_challenge type, const char *what, const char *answer,
    struct tg_err *err)
{
	struct tg_answers *a = arg;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	size_t i;

	if (strlen(what) >= sizeof(a->a[0].what) || strlen(answer) >= sizeof(a->a[0].keyauth))
		return tg_err_set(err, TG_E_ACME, "challenge token or name too long");
	if (type == TG_ACME_TLSALPN01 && tg_acme_alpn_cert(what, answer, &cert, &key, err) < 0)
		return -1;
	pthread_mutex_lock(&a->mu);
	for (i = 0; i < MAX_ANSWERS && a->a[i].used; i++)
		;
	if (i == MAX_ANSWERS) {
		pthread_mutex_unlock(&a->mu);
		X509_free(cert);
		EVP_PKEY_free(key);
		return tg_err_set(err, TG_E_ACME, "more than %d challenges at once", MAX_ANSWERS);
	}
	a->a[i].used = 1;
	a->a[i].type = type;
	snprintf(a->a[i].what, sizeof(a->a[i].what), "%s", what);
	snprintf(a->a[i].keyauth, sizeof(a->a[i].keyauth), "%s", answer);
	a->a[i].cert = cert;
	a->a[i].key = key;
	pthread_mutex_unlock(&a->mu);
	if (share_answer(a, type, what, answer, err) < 0) {
		char m[sizeof(err->msg)];
		snprintf(m, sizeof(m), "%s", err->msg);
		withdraw(a, type, what);
		return tg_err_set(err, TG_E_ACME, "the challenge answer could not be shared with the "
		    "other workers and nodes: %s", m);
	}
	/* the CA validates the moment it is told to (and from several places
	 * at once): the other nodes' watches get a moment to copy the answer
	 * first (they take milliseconds; the workers of this node read it
	 * from the folder at once) */
	if (a->share && a->share->etcd && type != TG_ACME_DNS01)
		usleep(SHARE_SETTLE_MS * 1000);
	return 0;
}

static void
withdraw(void *arg, enum tg_acme_challenge type, const char *what)
{
	struct tg_answers *a = arg;
	size_t i;

	pthread_mutex_lock(&a->mu);
	for (i = 0; i < MAX_ANSWERS; i++)
		if (a->a[i].used && a->a[i].type == type && !strcmp(a->a[i].what, what)) {
			clear(&a->a[i]);
			break;
		}
	pthread_mutex_unlock(&a->mu);
}

static void
withdraw_shared(void *arg, enum tg_acme_challenge type, const char *what)
{
	struct tg_err err;

	withdraw(arg, type, what);
	(void)share_answer(arg, type, what, NULL, &err);   /* a leftover answer is harmless */
}

struct tg_acme_solver
tg_answers_solver(struct tg_answers *a)
{
	struct tg_acme_solver s = { publish, withdraw_shared, a };
	return s;
}

int
tg_answers_http01(struct tg_answers *a, const char *token, char *out, size_t len)
{
	size_t i;
	int rv = -1;

	pthread_mutex_lock(&a->mu);
	for (i = 0; i < MAX_ANSWERS; i++)
		if (a->a[i].used && a->a[i].type == TG_ACME_HTTP01 && !strcmp(a->a[i].what, token)) {
			snprintf(out, len, "%s", a->a[i].keyauth);
			rv = 0;
			break;
		}
	pthread_mutex_unlock(&a->mu);
	if (rv < 0 && stored_answer(a, TG_ACME_HTTP01, token, out, len) == 0)
		rv = 1;
	return rv;
}

/* Does the ALPN list offer proto? */
static int
offers(const unsigned char *p, size_t len, const char *proto)
{
	size_t pl = strlen(proto), n;

	if (len < 2 || (size_t)(p[0] << 8 | p[1]) != len - 2)
		return 0;
	for (p += 2, len -= 2; len > 0; p += n, len -= n) {
		n = *p++;
		len--;
		if (n > len)
			return 0;
		if (n == pl && memcmp(p, proto, pl) == 0)
			return 1;
	}
	return 0;
}

/* The host name of the server_name extension (RFC 6066 section 3). */
static int
sni(SSL *ssl, char *buf, size_t len)
{
	const unsigned char *p;
	size_t n, l;

	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &n) != 1 || n < 5 ||
	    (size_t)(p[0] << 8 | p[1]) != n - 2 || p[2] != TLSEXT_NAMETYPE_host_name)
		return -1;
	l = (size_t)(p[3] << 8 | p[4]);
	if (l == 0 || l + 5 > n || l >= len || memchr(p + 5, 0, l))
		return -1;
	memcpy(buf, p + 5, l);
	buf[l] = '\0';
	return 0;
}

static int
on_client_hello(SSL *ssl, int *al, void *arg)
{
	struct tg_answers *a = arg;
	const unsigned char *alpn;
	size_t alen, i;
	char name[256];
	int found = 0, stored = 0;

	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation,
	    &alpn, &alen) != 1 || !offers(alpn, alen, "acme-tls/1")) {
		if (SSL_CTX_get0_certificate(SSL_get_SSL_CTX(ssl)) == NULL) {
			*al = SSL_AD_INTERNAL_ERROR;   /* no certificate yet: refuse, never fake */
			return SSL_CLIENT_HELLO_ERROR;
		}
		return SSL_CLIENT_HELLO_SUCCESS;
	}
	if (sni(ssl, name, sizeof(name)) < 0) {
		*al = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_CLIENT_HELLO_ERROR;
	}
	pthread_mutex_lock(&a->mu);
	for (i = 0; i < MAX_ANSWERS; i++) {
		struct answer *x = &a->a[i];
		if (x->used && x->type == TG_ACME_TLSALPN01 && !strcasecmp(x->what, name)) {
			found = SSL_use_certificate(ssl, x->cert) == 1 &&
			    SSL_use_PrivateKey(ssl, x->key) == 1;
			break;
		}
	}
	pthread_mutex_unlock(&a->mu);
	if (!found) {
		/* published by another worker or node: built here, for this
		 * handshake only */
		char keyauth[400];
		X509 *cert = NULL;
		EVP_PKEY *key = NULL;
		struct tg_err err;
		if (stored_answer(a, TG_ACME_TLSALPN01, name, keyauth, sizeof(keyauth)) == 0 &&
		    tg_acme_alpn_cert(name, keyauth, &cert, &key, &err) == 0)
			found = stored = SSL_use_certificate(ssl, cert) == 1 &&
			    SSL_use_PrivateKey(ssl, key) == 1;
		OPENSSL_cleanse(keyauth, sizeof(keyauth));
		X509_free(cert);
		EVP_PKEY_free(key);
	}
	if (!found) {
		*al = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_CLIENT_HELLO_ERROR;
	}
	/* the validation server has no client certificate to give */
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	SSL_set_ex_data(ssl, challenge_idx, (void *)(intptr_t)(stored ? 2 : 1));
	return SSL_CLIENT_HELLO_SUCCESS;
}

static int
on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
    unsigned int inlen, void *arg)
{
	static const unsigned char acme[] = "\x0a" "acme-tls/1", http11[] = "\x08" "http/1.1";
	const unsigned char *want = tg_answers_is_challenge(ssl) ? acme : http11;
	unsigned int i;

	for (i = 0; i < inlen; i += 1u + in[i]) {
		if (i + 1u + in[i] > inlen)
			break;
		if (in[i] == want[0] && memcmp(in + i + 1, want + 1, want[0]) == 0) {
			*out = in + i + 1;
			*outlen = in[i];
			return SSL_TLSEXT_ERR_OK;
		}
	}
	return tg_answers_is_challenge(ssl) ? SSL_TLSEXT_ERR_ALERT_FATAL : SSL_TLSEXT_ERR_NOACK;
}

void
tg_answers_hook_ctx(SSL_CTX *ctx, struct tg_answers *a)
{
	SSL_CTX_set_client_hello_cb(ctx, on_client_hello, a);
	SSL_CTX_set_alpn_select_cb(ctx, on_alpn, a);
}

int
tg_answers_is_challenge(SSL *ssl)
{
	return challenge_idx >= 0 ? (int)(intptr_t)SSL_get_ex_data(ssl, challenge_idx) : 0;
}
