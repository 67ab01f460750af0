/*
 * The session cache of sess_cache.h: 4-way sets indexed by the session id
 * (random bytes OpenSSL draws), the oldest session of a full set makes room.
 * The table holds one reference per session. OpenSSL's own cache is off
 * (SSL_SESS_CACHE_NO_INTERNAL), so every lookup passes through get_session
 * and its judge.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sess_cache.h"

struct slot {
	SSL_SESSION *sess;   /* NULL: free */
	unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH];
	unsigned int len;
};

#define WAYS 4

struct tg_sess_cache {
	pthread_mutex_t lock;
	struct slot *ring;   /* sets × WAYS */
	size_t cap, sets;
	tg_sess_judge judge;
	void *arg;
};

static int idx = -1;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
cache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int i, long argl, void *argp)
{
	struct tg_sess_cache *c = ptr;
	size_t k;

	if (c == NULL)
		return;
	for (k = 0; k < c->cap; k++)
		SSL_SESSION_free(c->ring[k].sess);
	pthread_mutex_destroy(&c->lock);
	free(c->ring);
	free(c);
}

static void
init_once(void)
{
	idx = SSL_CTX_get_ex_new_index(0, "tlsgate session cache", NULL, NULL, cache_free);
}

static struct tg_sess_cache *
cache_of(SSL_CTX *ctx)
{
	return ctx ? SSL_CTX_get_ex_data(ctx, idx) : NULL;
}

static struct slot *
set_of(struct tg_sess_cache *c, const unsigned char *id, unsigned int len)
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a: ids are random already */
	unsigned int i;

	for (i = 0; i < len; i++)
		h = (h ^ id[i]) * 1099511628211ULL;
	return &c->ring[(h & (c->sets - 1)) * WAYS];
}

/* The slot holding id, with the lock held; NULL if none. */
static struct slot *
find(struct tg_sess_cache *c, const unsigned char *id, unsigned int len)
{
	struct slot *set = set_of(c, id, len);
	int k;

	for (k = 0; k < WAYS; k++)
		if (set[k].sess && set[k].len == len && memcmp(set[k].id, id, len) == 0)
			return &set[k];
	return NULL;
}

static int
on_new(SSL *ssl, SSL_SESSION *sess)
{
	struct tg_sess_cache *c = cache_of(SSL_get_SSL_CTX(ssl));
	const unsigned char *id;
	unsigned int len;
	struct slot *s;

	if (c == NULL)
		return 0;
	id = SSL_SESSION_get_id(sess, &len);
	if (len == 0 || len > SSL_MAX_SSL_SESSION_ID_LENGTH)
		return 0;
	pthread_mutex_lock(&c->lock);
	{
		struct slot *set = set_of(c, id, len);
		int k;
		s = &set[0];
		for (k = 0; k < WAYS; k++) {
			if (set[k].sess == NULL) {
				s = &set[k];
				break;
			}
			if (SSL_SESSION_get_time(set[k].sess) < SSL_SESSION_get_time(s->sess))
				s = &set[k];
		}
	}
	SSL_SESSION_free(s->sess);   /* a full set: its oldest goes */
	s->sess = sess;
	memcpy(s->id, id, len);
	s->len = len;
	pthread_mutex_unlock(&c->lock);
	return 1;   /* the reference OpenSSL gave is the table's now */
}

static SSL_SESSION *
on_get(SSL *ssl, const unsigned char *id, int len, int *copy)
{
	struct tg_sess_cache *c = cache_of(SSL_get_SSL_CTX(ssl));
	SSL_SESSION *sess = NULL;
	struct slot *s;

	*copy = 0;
	if (c == NULL || len <= 0 || len > SSL_MAX_SSL_SESSION_ID_LENGTH)
		return NULL;
	pthread_mutex_lock(&c->lock);
	s = find(c, id, (unsigned int)len);
	if (s) {
		/* TLS 1.3 tickets are used once: it leaves the table either way */
		sess = s->sess;
		s->sess = NULL;
		if ((long)time(NULL) > (long)(SSL_SESSION_get_time(sess) + SSL_SESSION_get_timeout(sess))) {
			SSL_SESSION_free(sess);
			sess = NULL;
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (sess && !c->judge(ssl, sess, c->arg)) {
		SSL_SESSION_free(sess);
		sess = NULL;
	}
	return sess;   /* our reference goes to OpenSSL (*copy = 0) */
}

static void
on_remove(SSL_CTX *ctx, SSL_SESSION *sess)
{
	struct tg_sess_cache *c = cache_of(ctx);
	const unsigned char *id;
	unsigned int len;
	struct slot *s;

	if (c == NULL)
		return;
	id = SSL_SESSION_get_id(sess, &len);
	pthread_mutex_lock(&c->lock);
	if ((s = find(c, id, len)) != NULL) {
		SSL_SESSION_free(s->sess);
		s->sess = NULL;
	}
	pthread_mutex_unlock(&c->lock);
}

int
tg_sess_cache_attach(SSL_CTX *ctx, size_t capacity, tg_sess_judge judge, void *arg)
{
	struct tg_sess_cache *c;

	pthread_once(&once, init_once);
	if (idx < 0 || capacity == 0 || (c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	for (c->sets = 1; c->sets * WAYS < capacity; c->sets <<= 1)
		;
	c->cap = c->sets * WAYS;
	if ((c->ring = calloc(c->cap, sizeof(*c->ring))) == NULL) {
		free(c);
		return -1;
	}
	c->judge = judge;
	c->arg = arg;
	pthread_mutex_init(&c->lock, NULL);
	if (!SSL_CTX_set_ex_data(ctx, idx, c)) {
		cache_free(NULL, c, NULL, 0, 0, NULL);
		return -1;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);   /* TLS 1.3: stateful tickets */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
	SSL_CTX_sess_set_new_cb(ctx, on_new);
	SSL_CTX_sess_set_get_cb(ctx, on_get);
	SSL_CTX_sess_set_remove_cb(ctx, on_remove);
	return 0;
}
