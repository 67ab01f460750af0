/*
 * The etcd backend of the storage seam: each name is a key below a prefix
 * in an etcd v3 cluster, spoken to through etcd's JSON gateway (the /v3/kv and
 * /v3/lease services) with libcurl and jansson, over TLS with a client
 * certificate. Keys and values travel base64-encoded, as the gateway wants.
 *
 * Locks are keys held under a lease: taking one is a transaction that
 * creates the lock key only if it does not exist, attached to a fresh
 * lease; a thread keeps the lease alive while the lock is held, so a holder
 * that dies or stalls loses it when the lease expires (LOCK_TTL). While a
 * lock is held, every write through this store is a transaction that
 * first compares the lock key's lease with ours (fencing): a holder that
 * stalled past its lease cannot overwrite what the next holder wrote.
 *
 * Endpoints are tried in order; the one that answered last is tried first.
 * A store is used by one thread at a time (it keeps one curl handle); the
 * lease-keeping threads have handles of their own.
 */
#include <limits.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "error.h"
#include "store.h"
#include "store_etcd.h"
#include "util.h"

/* ---- transport ----------------------------------------------------------- */

struct reply {
	char *buf;
	size_t len;
	int too_big;
};

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct reply *r = arg;
	size_t add = size * n;

	if (r->len + add > MAX_REPLY) {
		r->too_big = 1;
		return 0;
	}
	return tg_buf_append(&r->buf, &r->len, MAX_REPLY, p, add) < 0 ? 0 : add;
}

void
tg_etcd_curl_tls(CURL *curl, const struct etcd_conf *cf)
{
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (cf->ca[0])
		curl_easy_setopt(curl, CURLOPT_CAINFO, cf->ca);
	if (cf->cert[0]) {
		curl_easy_setopt(curl, CURLOPT_SSLCERT, cf->cert);
		curl_easy_setopt(curl, CURLOPT_SSLKEY, cf->key);
	}
}

const char *
tg_etcd_hint(const struct etcd_conf *cf, size_t e, CURLcode c, const char *cerr)
{
	if (strstr(cerr, "alert bad certificate") || strstr(cerr, "alert unknown ca") ||
	    strstr(cerr, "certificate required"))
		return " (etcd refused the client certificate: store.cert must be issued by "
		    "the CA etcd trusts, --trusted-ca-file)";
	else if (!strncmp(cf->endpoints[e], "https:", 6) && (c == CURLE_SSL_CONNECT_ERROR ||
	    c == CURLE_RECV_ERROR || c == CURLE_SEND_ERROR || strstr(cerr, "getpeername")))
		return " (the TLS handshake was cut: etcd may have refused the client "
		    "certificate; store.cert must be issued by the CA etcd trusts, "
		    "--trusted-ca-file)";
	else if (c == CURLE_PEER_FAILED_VERIFICATION)
		return " (etcd's certificate is not signed by store.ca, or does not name "
		    "the host in store.endpoints)";
	else if (c == CURLE_COULDNT_CONNECT)
		return " (nothing listens there: is the member running?)";
	else if (c == CURLE_OPERATION_TIMEDOUT)
		return " (no answer within store.timeout: the member may have lost its "
		    "quorum)";
	return "";
}

/*
 * POSTs body to PATH on the first endpoint that answers; *out is the JSON
 * reply (json_decref). Errors name the endpoint and say what to do.
 */
static int call_once(const struct etcd_conf *cf, size_t *cur, CURL *curl, const char *path,
    json_t *body, const char *token, json_t **out, struct tg_err *err);

/* A secret inside a JSON value, wiped before the value is freed (jansson
 * frees without wiping). */
static void
wipe_string(json_t *v)
{
	const char *p = json_string_value(v);

	if (p)
		OPENSSL_cleanse((char *)p, strlen(p));
}

int
tg_etcd_token_refused(const char *msg)
{
	return strstr(msg, "invalid auth token") != NULL || strstr(msg, "user name is empty") ||
	    strstr(msg, "revision of auth store is old");
}

void
tg_etcd_token_drop(const struct etcd_conf *cf)
{
	if (cf->auth == NULL)
		return;
	pthread_mutex_lock(&cf->auth->mu);
	OPENSSL_cleanse(cf->auth->token, sizeof(cf->auth->token));
	pthread_mutex_unlock(&cf->auth->mu);
}

int
tg_etcd_token(const struct etcd_conf *cf, size_t *cur, CURL *curl, char *buf, size_t len,
    struct tg_err *err)
{
	struct etcd_auth *a = cf->auth;
	json_t *req, *rep = NULL;
	const char *tok;
	int rv;

	buf[0] = '\0';
	if (a == NULL)
		return 0;
	pthread_mutex_lock(&a->mu);
	snprintf(buf, len, "%s", a->token);
	if (buf[0]) {
		pthread_mutex_unlock(&a->mu);
		return 0;
	}
	req = json_pack("{s:s,s:s}", "name", a->user, "password", a->password);
	pthread_mutex_unlock(&a->mu);
	if (req == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	rv = call_once(cf, cur, curl, "/v3/auth/authenticate", req, "", &rep, err);
	wipe_string(json_object_get(req, "password"));
	json_decref(req);
	if (rv < 0) {
		if (strstr(err->msg, "authentication failed"))
			return tg_err_set(err, TG_E_CONNECT, "etcd refused the user '%s' "
			    "(store.user): authentication failed: check store.password_file", a->user);
		return -1;
	}
	tok = json_string_value(json_object_get(rep, "token"));
	if (tok == NULL || strlen(tok) >= len || strlen(tok) >= sizeof(a->token)) {
		wipe_string(json_object_get(rep, "token"));
		json_decref(rep);
		return tg_err_set(err, TG_E_CONNECT, "etcd gave no usable token for the user '%s' "
		    "(is auth enabled? etcdctl auth enable)", a->user);
	}
	pthread_mutex_lock(&a->mu);
	snprintf(a->token, sizeof(a->token), "%s", tok);
	pthread_mutex_unlock(&a->mu);
	snprintf(buf, len, "%s", tok);
	wipe_string(json_object_get(rep, "token"));
	json_decref(rep);
	return 0;
}

int
tg_etcd_call(const struct etcd_conf *cf, size_t *cur, CURL *curl, const char *path,
    json_t *body, json_t **out, struct tg_err *err)
{
	char tok[2048];
	int tries, rv = -1;

	for (tries = 0; tries < 2; tries++) {
		if (tg_etcd_token(cf, cur, curl, tok, sizeof(tok), err) < 0)
			return -1;
		rv = call_once(cf, cur, curl, path, body, tok, out, err);
		OPENSSL_cleanse(tok, sizeof(tok));
		/* a token etcd dropped (its TTL, a change of the auth store):
		 * log in again, once */
		if (rv == 0 || cf->auth == NULL || !tg_etcd_token_refused(err->msg))
			break;
		tg_etcd_token_drop(cf);
	}
	return rv;
}

/* One POST of text to endpoint e; the answer collected in r, its status in
 * *code. */
static CURLcode
post_to(CURL *curl, const struct etcd_conf *cf, size_t e, const char *path, const char *text,
    struct curl_slist *hdr, struct reply *r, char *cerr, long *code)
{
	char url[512];
	CURLcode c;

	snprintf(url, sizeof(url), "%s%s", cf->endpoints[e], path);
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, cf->timeout_ms);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, cf->timeout_ms < 2000 ?
	    cf->timeout_ms : 2000);
	tg_etcd_curl_tls(curl, cf);
	c = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, code);
	return c;
}

/* An answer that is not JSON, in words: what it said (printable, one line,
 * never for the login, which might echo the password), or the gateway's
 * refusal of a certificate with a CN. */
static void
no_json_words(const struct etcd_conf *cf, size_t e, const char *path, const struct reply *r,
    long code, char *why, size_t len)
{
	char said[120];
	size_t k, n = r->len < sizeof(said) - 1 ? r->len : sizeof(said) - 1;
	int cn;

	for (k = 0; k < n; k++)
		said[k] = r->buf[k] >= 0x20 && r->buf[k] < 0x7f ? r->buf[k] : ' ';
	said[n] = '\0';
	cn = strstr(said, "CommonName") != NULL;
	if (!strcmp(path, "/v3/auth/authenticate"))
		said[0] = '\0', n = 0;
	if (cn)
		snprintf(why, len, "etcd at %s refused the client certificate: etcd auth is on, and "
		    "its JSON gateway takes no certificate with a CN; issue store.cert with `tlsgate "
		    "cert issue --client --no-cn --san dns:NAME` and log in with store.user",
		    cf->endpoints[e]);
	else
		snprintf(why, len, "etcd at %s answered %ld with no JSON%s%s%s (is it an etcd "
		    "v3.4+ client URL?)", cf->endpoints[e], code, n ? " (\"" : "", said,
		    n ? "\")" : "");
}

/* A JSON answer that is not 200, in words with what to do; 1 when it is
 * about rights (the cluster's word, the same from every member), 0 when
 * another member may do better (one without quorum). */
static int
refusal_words(const struct etcd_conf *cf, size_t e, json_t *ans, char *why, size_t len)
{
	const char *m = json_string_value(json_object_get(ans, "message"));

	if (m == NULL)
		m = json_string_value(json_object_get(ans, "error"));
	snprintf(why, len, "etcd at %s refused: %s%s", cf->endpoints[e], m ? m : "unknown error",
	    m && strstr(m, "permission denied") ? " (store.user has no role with readwrite on "
	    "store.prefix: etcdctl role grant-permission ROLE --prefix=true readwrite PREFIX, then "
	    "etcdctl user grant-role USER ROLE)" : m && strstr(m, "user name is empty") ? " (etcd "
	    "auth is on: set store.user and store.password_file, an etcd user with readwrite on "
	    "store.prefix)" : "");
	return m && (strstr(m, "permission denied") || strstr(m, "user name") ||
	    strstr(m, "authentication") || tg_etcd_token_refused(m));
}

static int
call_once(const struct etcd_conf *cf, size_t *cur, CURL *curl, const char *path,
    json_t *body, const char *token, json_t **out, struct tg_err *err)
{
	char *text = json_dumps(body, JSON_COMPACT);
	char why[TG_ERR_MSG] = "";   /* the endpoint, what went wrong and the hint, whole */
	struct curl_slist *hdr = NULL;
	size_t i;
	int rv = -1, refused = 0;

	*out = NULL;
	if (text == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	hdr = curl_slist_append(NULL, "Content-Type: application/json");
	if (hdr && token[0]) {
		char h[2100];
		struct curl_slist *h2;
		snprintf(h, sizeof(h), "Authorization: %s", token);
		if ((h2 = curl_slist_append(hdr, h)) != NULL)
			hdr = h2;
		OPENSSL_cleanse(h, sizeof(h));
	}
	for (i = 0; i < cf->n && rv < 0; i++) {
		size_t e = (*cur + i) % cf->n;
		struct reply r = { 0 };
		char cerr[CURL_ERROR_SIZE] = "";
		long code = 0;
		CURLcode c = post_to(curl, cf, e, path, text, hdr, &r, cerr, &code);
		json_error_t je;

		if (c != CURLE_OK) {
			refused = 0;
			snprintf(why, sizeof(why), "etcd at %s: %s%s", cf->endpoints[e], r.too_big ?
			    "the answer is over 32 MiB" : cerr[0] ? cerr : curl_easy_strerror(c),
			    tg_etcd_hint(cf, e, c, cerr));
		} else if ((*out = json_loadb(r.buf ? r.buf : "", r.len, 0, &je)) == NULL) {
			no_json_words(cf, e, path, &r, code, why, sizeof(why));
			refused = 1;
		} else if (code != 200) {
			/* rights: every member would say the same, so this is the word the
			 * caller sees (a token to fetch again), not a later member that
			 * is down; no quorum: another member may have it */
			refused = refusal_words(cf, e, *out, why, sizeof(why));
			json_decref(*out);
			*out = NULL;
			if (refused) {
				if (r.buf)
					OPENSSL_cleanse(r.buf, r.len);
				free(r.buf);
				break;
			}
		} else {
			*cur = e;
			rv = 0;
		}
		if (r.buf)   /* values may be keys */
			OPENSSL_cleanse(r.buf, r.len);
		free(r.buf);
	}
	for (struct curl_slist *h = hdr; h; h = h->next)   /* the token */
		OPENSSL_cleanse(h->data, strlen(h->data));
	curl_slist_free_all(hdr);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	if (rv < 0)
		tg_err_set(err, TG_E_CONNECT, "%s%s", why, cf->n > 1 && !refused ? "; no member of "
		    "store.endpoints answered: the store is unreachable or has lost its quorum" : "");
	return rv;
}

/* ---- encoding ------------------------------------------------------------ */

char *
tg_etcd_b64(const void *data, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

/* Decodes base64 into a NUL-terminated OPENSSL_malloc'ed buffer. */
int
tg_etcd_unb64(const char *in, unsigned char **out, size_t *len)
{
	size_t n = strlen(in), pad = 0;
	unsigned char *buf;
	int r;

	if (n % 4)
		return -1;
	if ((buf = OPENSSL_malloc(n / 4 * 3 + 1)) == NULL)
		return -1;
	r = n ? EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n) : 0;
	if (r < 0) {
		OPENSSL_free(buf);
		return -1;
	}
	if (n >= 1 && in[n - 1] == '=')
		pad++;
	if (n >= 2 && in[n - 2] == '=')
		pad++;
	*len = (size_t)r - pad;
	buf[*len] = '\0';
	*out = buf;
	return 0;
}

json_t *
tg_etcd_key_json(const char *k)
{
	char *e = tg_etcd_b64(k, strlen(k));
	json_t *j = e ? json_string(e) : NULL;

	free(e);
	return j;
}

/* The key just past every key that starts with p (etcd's range_end). */
json_t *
tg_etcd_prefix_end(const char *p)
{
	char end[600];
	size_t n = strlen(p);

	snprintf(end, sizeof(end), "%s", p);
	while (n > 0 && (unsigned char)end[n - 1] == 0xff)
		end[--n] = '\0';
	if (n == 0)
		return tg_etcd_key_json("\0");
	end[n - 1]++;
	end[n] = '\0';
	return tg_etcd_key_json(end);
}

long long
tg_etcd_ll(json_t *v)
{
	/* the gateway writes 64-bit integers as strings */
	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* ---- operations ------------------------------------------------------------ */

/* PREFIX + name; -1 (err set) when it does not fit: a cut key would name
 * another one. */
static int
full_key(struct tg_store *st, const char *name, char *buf, size_t len, struct tg_err *err)
{
	struct etcd_impl *im = st->impl;

	if (snprintf(buf, len, "%s%s", im->prefix, name) >= (int)len)
		return tg_err_set(err, TG_E_IO, "%s: name too long for the store", name);
	return 0;
}

static int
etcd_get(struct tg_store *st, const char *name, unsigned char **out, size_t *len,
    struct tg_err *err)
{
	struct etcd_impl *im = st->impl;
	char k[600];
	json_t *req, *rep, *kvs;
	const char *v;
	int rv;

	if (full_key(st, name, k, sizeof(k), err) < 0)
		return -1;
	req = json_pack("{s:o}", "key", tg_etcd_key_json(k));
	rv = tg_etcd_call(&im->conf, &im->cur, im->curl, "/v3/kv/range", req, &rep, err);
	json_decref(req);
	if (rv < 0)
		return -1;
	kvs = json_object_get(rep, "kvs");
	if (!json_is_array(kvs) || json_array_size(kvs) == 0) {
		json_decref(rep);
		return tg_err_set(err, TG_E_NOT_FOUND, "%s: not in the store (%s)", name, k);
	}
	v = json_string_value(json_object_get(json_array_get(kvs, 0), "value"));
	rv = tg_etcd_unb64(v ? v : "", out, len);
	json_decref(rep);
	if (rv < 0)
		return tg_err_set(err, TG_E_IO, "%s: the store sent a value that is not base64", name);
	return 0;
}

/* The fencing compare for every held lock: its key still has our lease. */
static json_t *
fences(struct etcd_impl *im)
{
	json_t *cmp = json_array();
	size_t i;

	for (i = 0; cmp && i < MAX_LOCKS; i++) {
		struct etcd_lock *l = im->locks[i];
		char lease[32];
		if (l == NULL)
			continue;
		snprintf(lease, sizeof(lease), "%lld", l->lease);
		/* a fence that cannot be built must not be dropped: no write */
		if (json_array_append_new(cmp, json_pack("{s:o,s:s,s:s,s:s}", "key",
		    tg_etcd_key_json(l->key), "target", "LEASE", "result", "EQUAL", "lease", lease)) < 0) {
			json_decref(cmp);
			cmp = NULL;
		}
	}
	return cmp;
}

/* A write (put or delete request) under the fences; 1 when the fences held
 * and the write was done, 0 when a fence failed. */
static int
fenced(struct tg_store *st, const char *op, json_t *request, json_t **resp, struct tg_err *err)
{
	struct etcd_impl *im = st->impl;
	json_t *req, *rep;
	int ok;

	req = json_pack("{s:o,s:[{s:o}]}", "compare", fences(im), "success", op, request);
	if (req == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	if (tg_etcd_call(&im->conf, &im->cur, im->curl, "/v3/kv/txn", req, &rep, err) < 0) {
		json_decref(req);
		return -1;
	}
	json_decref(req);
	ok = json_is_true(json_object_get(rep, "succeeded"));
	if (resp)
		*resp = rep;
	else
		json_decref(rep);
	return ok;
}

static int
lost_lock(struct etcd_impl *im, const char *name, struct tg_err *err)
{
	size_t i, n = 0;
	char which[300] = "";

	for (i = 0; i < MAX_LOCKS; i++)
		if (im->locks[i] && n < sizeof(which))
			n += (size_t)snprintf(which + n, sizeof(which) - n, "%s%s", n ? "', '" : "",
			    im->locks[i]->name);
	return tg_err_set(err, TG_E_LOCKED, "%s: not written: the lock '%s' was lost (its lease "
	    "expired: this node stalled or lost the store), so another node may hold it now", name,
	    which);
}

static int
etcd_put(struct tg_store *st, const char *name, const void *data, size_t len, int flags,
    struct tg_err *err)
{
	struct etcd_impl *im = st->impl;
	char k[600], *v = tg_etcd_b64(data, len);
	int r;

	if (v == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	if (full_key(st, name, k, sizeof(k), err) < 0) {
		free(v);
		return -1;
	}
	r = fenced(st, "request_put", json_pack("{s:o,s:s}", "key", tg_etcd_key_json(k), "value", v), NULL,
	    err);
	if (flags & TG_STORE_SECRET)
		OPENSSL_cleanse(v, strlen(v));
	free(v);
	if (r < 0)
		return -1;
	return r ? 0 : lost_lock(im, name, err);
}

static int
etcd_del(struct tg_store *st, const char *name, struct tg_err *err)
{
	struct etcd_impl *im = st->impl;
	char k[600];
	json_t *rep = NULL, *resp;
	long long deleted = 0;
	int r;

	if (full_key(st, name, k, sizeof(k), err) < 0)
		return -1;
	r = fenced(st, "request_delete_range", json_pack("{s:o}", "key", tg_etcd_key_json(k)), &rep, err);
	if (r < 0)
		return -1;
	if (r == 0) {
		json_decref(rep);
		return lost_lock(im, name, err);
	}
	resp = json_array_get(json_object_get(rep, "responses"), 0);
	deleted = tg_etcd_ll(json_object_get(json_object_get(resp, "response_delete_range"), "deleted"));
	json_decref(rep);
	return deleted ? 0 : tg_err_set(err, TG_E_NOT_FOUND, "%s: not in the store", name);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names directly below prefix: files and "folders" alike, as the folder
 * backend lists them. */
static char **
etcd_list(struct tg_store *st, const char *prefix, struct tg_err *err)
{
	struct etcd_impl *im = st->impl;
	char base[600];
	json_t *req, *rep, *kvs, *kv;
	char **names = NULL;
	size_t i, n = 0, bl;

	if (snprintf(base, sizeof(base), "%s%s%s", im->prefix, prefix, prefix[0] ? "/" : "") >=
	    (int)sizeof(base))
		return tg_err_set(err, TG_E_IO, "%s: name too long for the store", prefix), NULL;
	bl = strlen(base);
	req = json_pack("{s:o,s:o,s:b}", "key", tg_etcd_key_json(base), "range_end", tg_etcd_prefix_end(base),
	    "keys_only", 1);
	if (tg_etcd_call(&im->conf, &im->cur, im->curl, "/v3/kv/range", req, &rep, err) < 0) {
		json_decref(req);
		return NULL;
	}
	json_decref(req);
	kvs = json_object_get(rep, "kvs");
	if ((names = calloc(json_array_size(kvs) + 1, sizeof(*names))) == NULL)
		goto oom;
	json_array_foreach(kvs, i, kv) {
		unsigned char *k;
		size_t kl;
		char *rest, *slash;
		if (tg_etcd_unb64(json_string_value(json_object_get(kv, "key")) ? json_string_value(json_object_get(kv, "key")) : "", &k, &kl) < 0)
			continue;
		rest = (char *)k + (kl >= bl ? bl : kl);
		if ((slash = strchr(rest, '/')) != NULL)
			*slash = '\0';
		/* what the folder backend hides: locks, dot names, temp files */
		if (rest[0] && rest[0] != '.' && !strstr(rest, ".tmp-") &&
		    (n == 0 || strcmp(names[n - 1], rest) != 0)) {
			if ((names[n] = strdup(rest)) == NULL) {
				OPENSSL_free(k);
				goto oom;
			}
			n++;
		}
		OPENSSL_free(k);
	}
	json_decref(rep);
	qsort(names, n, sizeof(*names), cmp_str);
	/* keys come sorted, so a folder's keys are adjacent: duplicates gone */
	return names;
oom:
	json_decref(rep);
	if (names)
		for (i = 0; names[i]; i++)
			free(names[i]);
	free(names);
	tg_err_set(err, TG_E_INTERNAL, "out of memory");
	return NULL;
}

/* ---- locks ------------------------------------------------------------------- */

struct keeper_arg {
	struct etcd_conf conf;
	struct etcd_lock *l;
};

/* Keeps a lock's lease alive until unlock; marks the lock lost when the
 * store says the lease is gone. */
static void *
keeper(void *arg)
{
	struct keeper_arg *ka = arg;
	struct etcd_lock *l = ka->l;
	CURL *curl = curl_easy_init();
	size_t cur = 0;
	struct timespec ts;
	int failed = 0;

	pthread_mutex_lock(&l->mu);
	while (!l->stop && curl) {
		json_t *req, *rep = NULL;
		struct tg_err err;
		char lease[32];
		int r;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += failed ? 1 : LOCK_TTL_S / 3;   /* after a failure, sooner */
		pthread_cond_timedwait(&l->cv, &l->mu, &ts);
		if (l->stop)
			break;
		pthread_mutex_unlock(&l->mu);
		snprintf(lease, sizeof(lease), "%lld", l->lease);
		req = json_pack("{s:s}", "ID", lease);
		r = tg_etcd_call(&ka->conf, &cur, curl, "/v3/lease/keepalive", req, &rep, &err);
		failed = r < 0;
		if (r == 0 && tg_etcd_ll(json_object_get(json_object_get(rep, "result"), "TTL")) <= 0) {
			pthread_mutex_lock(&l->mu);
			l->lost = 1;   /* expired: the fences refuse our writes */
			pthread_mutex_unlock(&l->mu);
		}
		json_decref(req);
		json_decref(rep);
		pthread_mutex_lock(&l->mu);
	}
	pthread_mutex_unlock(&l->mu);
	curl_easy_cleanup(curl);
	free(ka);
	return NULL;
}

/* A new lease of LOCK_TTL_S; its id, or 0 with err set. */
static long long
lease_grant(struct etcd_impl *im, struct tg_err *err)
{
	json_t *req = json_pack("{s:i}", "TTL", LOCK_TTL_S), *rep;
	long long id;

	if (tg_etcd_call(&im->conf, &im->cur, im->curl, "/v3/lease/grant", req, &rep, err) < 0) {
		json_decref(req);
		return 0;
	}
	json_decref(req);
	id = tg_etcd_ll(json_object_get(rep, "ID"));
	json_decref(rep);
	if (id == 0)
		tg_err_set(err, TG_E_IO, "etcd granted no lease");
	return id;
}

/* One keepalive: the lease's remaining TTL (0 when it is gone), -1 when
 * the store did not answer. */
static long long
lease_keep(struct etcd_impl *im, long long id, CURL *curl, size_t *cur, struct tg_err *err)
{
	char lease[32];
	json_t *req, *rep;
	long long ttl;

	snprintf(lease, sizeof(lease), "%lld", id);
	req = json_pack("{s:s}", "ID", lease);
	if (tg_etcd_call(&im->conf, cur, curl, "/v3/lease/keepalive", req, &rep, err) < 0) {
		json_decref(req);
		return -1;
	}
	json_decref(req);
	ttl = tg_etcd_ll(json_object_get(json_object_get(rep, "result"), "TTL"));
	json_decref(rep);
	return ttl;
}

static int
etcd_lock(struct tg_store *st, const char *name, int wait_ms, struct tg_err *err)
{
	struct etcd_impl *im = st->impl;
	struct etcd_lock *l;
	struct keeper_arg *ka;
	uint64_t deadline = tg_now_ms() + (uint64_t)(wait_ms > 0 ? wait_ms : 0);
	size_t slot;
	json_t *req, *rep;
	char lease[32];
	uint64_t kept;

	for (slot = 0; slot < MAX_LOCKS && im->locks[slot]; slot++)
		;
	if (slot == MAX_LOCKS)
		return tg_err_set(err, TG_E_INTERNAL, "too many store locks held at once");
	if (strlen(name) >= sizeof(l->name) || strlen(im->prefix) + strlen(name) + 8 >= sizeof(l->key))
		return tg_err_set(err, TG_E_INTERNAL, "lock name too long: %s", name);
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	snprintf(l->name, sizeof(l->name), "%s", name);
	snprintf(l->key, sizeof(l->key), "%s.locks/%s", im->prefix, name);
	if ((l->lease = lease_grant(im, err)) == 0) {
		free(l);
		return -1;
	}
	snprintf(lease, sizeof(lease), "%lld", l->lease);
	kept = tg_now_ms();
	for (;;) {
		int ok;
		/* a long wait: our own lease must not run out before we get in */
		if (tg_now_ms() - kept > LOCK_TTL_S * 1000 / 3) {
			kept = tg_now_ms();
			if (lease_keep(im, l->lease, im->curl, &im->cur, err) <= 0) {
				if ((l->lease = lease_grant(im, err)) == 0)
					goto fail;
				snprintf(lease, sizeof(lease), "%lld", l->lease);
			}
		}
		/* create the lock key only if nobody holds it */
		/* on failure, read the key: a request retried on another member
		 * after its first answer was lost finds our own lease there */
		req = json_pack("{s:[{s:o,s:s,s:s,s:s}],s:[{s:{s:o,s:s,s:s}}],s:[{s:{s:o}}]}",
		    "compare", "key", tg_etcd_key_json(l->key), "target", "CREATE", "result", "EQUAL",
		    "create_revision", "0",
		    "success", "request_put", "key", tg_etcd_key_json(l->key), "value", "", "lease", lease,
		    "failure", "request_range", "key", tg_etcd_key_json(l->key));
		if (tg_etcd_call(&im->conf, &im->cur, im->curl, "/v3/kv/txn", req, &rep, err) < 0) {
			json_decref(req);
			goto fail;
		}
		json_decref(req);
		ok = json_is_true(json_object_get(rep, "succeeded"));
		if (!ok) {
			json_t *kv = json_array_get(json_object_get(json_object_get(json_array_get(
			    json_object_get(rep, "responses"), 0), "response_range"), "kvs"), 0);
			ok = kv && tg_etcd_ll(json_object_get(kv, "lease")) == l->lease;
		}
		json_decref(rep);
		if (ok)
			break;
		if (wait_ms < 0 || tg_now_ms() >= deadline) {
			tg_err_set(err, TG_E_LOCKED, "%s is locked by another tlsgate node (etcd key "
			    "%s); it is freed when that node finishes, or %d s after it dies", name,
			    l->key, LOCK_TTL_S);
			goto fail;
		}
		usleep(100 * 1000);
	}
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* a clock step must not stall it */
		pthread_mutex_init(&l->mu, NULL);
		pthread_cond_init(&l->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	if ((ka = malloc(sizeof(*ka))) == NULL ||
	    (ka->conf = im->conf, ka->l = l,
	    /* a keepalive must fit well inside the lease, or a slow member
	     * costs the lock */
	    ka->conf.timeout_ms = ka->conf.timeout_ms > 2000 ? 2000 : ka->conf.timeout_ms,
	    pthread_create(&l->keeper, NULL, keeper, ka)) != 0) {
		free(ka);
		pthread_mutex_destroy(&l->mu);
		pthread_cond_destroy(&l->cv);
		tg_err_set(err, TG_E_INTERNAL, "cannot start the lease keeper");
		goto fail;
	}
	im->locks[slot] = l;
	return 0;
fail:
	req = json_pack("{s:s}", "ID", lease);
	if (tg_etcd_call(&im->conf, &im->cur, im->curl, "/v3/lease/revoke", req, &rep, &(struct tg_err){0}) == 0)
		json_decref(rep);
	json_decref(req);
	free(l);
	return -1;
}

static void
etcd_unlock(struct tg_store *st, const char *name)
{
	struct etcd_impl *im = st->impl;
	struct etcd_lock *l = NULL;
	struct tg_err err;
	json_t *req, *rep;
	char lease[32];
	size_t i;

	for (i = 0; i < MAX_LOCKS; i++)
		if (im->locks[i] && !strcmp(im->locks[i]->name, name)) {
			l = im->locks[i];
			im->locks[i] = NULL;
			break;
		}
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = 1;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->keeper, NULL);
	/* revoking the lease deletes the lock key with it */
	snprintf(lease, sizeof(lease), "%lld", l->lease);
	req = json_pack("{s:s}", "ID", lease);
	if (tg_etcd_call(&im->conf, &im->cur, im->curl, "/v3/lease/revoke", req, &rep, &err) == 0)
		json_decref(rep);
	json_decref(req);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	free(l);
}

static void
etcd_free(struct tg_store *st)
{
	struct etcd_impl *im = st->impl;
	size_t i;

	for (i = 0; i < MAX_LOCKS; i++)
		if (im->locks[i])
			etcd_unlock(st, im->locks[i]->name);
	curl_easy_cleanup(im->curl);
	if (im->conf.auth) {
		pthread_mutex_destroy(&im->conf.auth->mu);
		OPENSSL_cleanse(im->conf.auth, sizeof(*im->conf.auth));
		free(im->conf.auth);
	}
	free(im);
	free(st);
}

int
tg_store_etcd_login(struct tg_store *st, const char *user, const char *password,
    struct tg_err *err)
{
	struct etcd_impl *im = st->impl;
	struct etcd_auth *a;
	size_t i;

	if (user == NULL || user[0] == '\0')
		return 0;
	if (strlen(user) >= sizeof(a->user))
		return tg_err_set(err, TG_E_CONFIG_VALUE, "store.user: too long");
	if (password == NULL || password[0] == '\0')
		return tg_err_set(err, TG_E_CONFIG_VALUE, "store.user is set but no password was "
		    "read: put the etcd user's password in a file (mode 0600 or 0640) and name it in "
		    "store.password_file");
	if (strlen(password) >= sizeof(a->password))
		return tg_err_set(err, TG_E_CONFIG_VALUE, "store.password_file: too long");
	for (i = 0; i < im->conf.n; i++)
		if (strncmp(im->conf.endpoints[i], "https://", 8) != 0)
			return tg_err_set(err, TG_E_CONFIG_VALUE, "store.user: %s is not https://; "
			    "the etcd password and token would travel in clear", im->conf.endpoints[i]);
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	pthread_mutex_init(&a->mu, NULL);
	snprintf(a->user, sizeof(a->user), "%s", user);
	snprintf(a->password, sizeof(a->password), "%s", password);
	im->conf.auth = a;
	return 0;
}

/* The password as first read: a server reads it at start, before it
 * gives up root, and every store it opens later (a worker's follower, a
 * pin record) takes it from here. */
static struct {
	pthread_mutex_t mu;
	char path[PATH_MAX];
	char pw[256];
} pw_cache = { PTHREAD_MUTEX_INITIALIZER, "", "" };

int
tg_store_read_password(const char *path, char *buf, size_t len, struct tg_err *err)
{
	unsigned char *pw = NULL;
	size_t n = 0;
	struct stat sb;

	buf[0] = '\0';
	if (path == NULL || path[0] == '\0')
		return 0;
	pthread_mutex_lock(&pw_cache.mu);
	if (pw_cache.pw[0] && !strcmp(pw_cache.path, path) && strlen(pw_cache.pw) < len) {
		snprintf(buf, len, "%s", pw_cache.pw);
		pthread_mutex_unlock(&pw_cache.mu);
		return 0;
	}
	pthread_mutex_unlock(&pw_cache.mu);
	if (stat(path, &sb) == 0 && (sb.st_mode & 027))
		return tg_err_set(err, TG_E_CONFIG_VALUE, "%s: open to others (mode %03o): chmod 600 "
		    "it (it holds the etcd password)", path, (unsigned)(sb.st_mode & 0777));
	if (tg_read_file(path, &pw, &n, 1024, err) < 0)
		return -1;
	while (n && (pw[n - 1] == '\n' || pw[n - 1] == '\r'))
		n--;
	if (n == 0 || n >= len) {
		tg_free_secret(pw, n);
		return tg_err_set(err, TG_E_CONFIG_VALUE, "%s: %s", path, n ? "too long" : "empty");
	}
	memcpy(buf, pw, n);
	buf[n] = '\0';
	tg_free_secret(pw, n);
	pthread_mutex_lock(&pw_cache.mu);
	if (n < sizeof(pw_cache.pw) && strlen(path) < sizeof(pw_cache.path)) {
		OPENSSL_cleanse(pw_cache.pw, sizeof(pw_cache.pw));
		snprintf(pw_cache.path, sizeof(pw_cache.path), "%s", path);
		snprintf(pw_cache.pw, sizeof(pw_cache.pw), "%s", buf);
	}
	pthread_mutex_unlock(&pw_cache.mu);
	return 0;
}

static const struct tg_store_ops etcd_ops = {
	etcd_get, etcd_put, etcd_del, etcd_list, etcd_lock, etcd_unlock, etcd_free,
};

int
tg_store_is_etcd(const struct tg_store *st)
{
	return st != NULL && st->ops == &etcd_ops;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void
curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);   /* before any thread makes a handle */
}

struct tg_store *
tg_store_etcd_open(const char *endpoints, const char *prefix, const char *ca, const char *cert,
    const char *key, long timeout_ms, struct tg_err *err)
{
	struct tg_store *st;
	struct etcd_impl *im;
	const char *p = endpoints;

	pthread_once(&curl_once, curl_init_once);
	if (prefix == NULL || prefix[0] == '\0' || strlen(prefix) > 200)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "store.prefix must be a key prefix of 1 to "
		    "200 bytes, such as /tlsgate/"), NULL;
	st = calloc(1, sizeof(*st));
	im = calloc(1, sizeof(*im));

	if (st == NULL || im == NULL || (im->curl = curl_easy_init()) == NULL) {
		free(st);
		free(im);
		return tg_err_set(err, TG_E_INTERNAL, "out of memory"), NULL;
	}
	st->ops = &etcd_ops;
	st->impl = im;
	while (*p && im->conf.n < MAX_ENDPOINTS) {
		size_t l = strcspn(p, ", ");
		if (l > 0 && l < sizeof(im->conf.endpoints[0])) {
			char *e = im->conf.endpoints[im->conf.n];
			memcpy(e, p, l);
			e[l] = '\0';
			while (l > 0 && e[l - 1] == '/')
				e[--l] = '\0';
			if (strncmp(e, "https://", 8) && strncmp(e, "http://", 7)) {
				tg_err_set(err, TG_E_CONFIG_VALUE, "store.endpoints: '%s' is not an "
				    "https:// URL (an etcd client URL, e.g. https://10.0.0.1:2379)", e);
				etcd_free(st);
				return NULL;
			}
			im->conf.n++;
		}
		p += l;
		p += strspn(p, ", ");
	}
	if (im->conf.n == 0) {
		etcd_free(st);
		return tg_err_set(err, TG_E_CONFIG_VALUE, "store.endpoints: no etcd endpoint given "
		    "(store.backend is etcd)"), NULL;
	}
	snprintf(im->prefix, sizeof(im->prefix), "%s%s", prefix, prefix[0] &&
	    prefix[strlen(prefix) - 1] != '/' ? "/" : "");
	snprintf(im->conf.ca, sizeof(im->conf.ca), "%s", ca ? ca : "");
	snprintf(im->conf.cert, sizeof(im->conf.cert), "%s", cert ? cert : "");
	snprintf(im->conf.key, sizeof(im->conf.key), "%s", key ? key : "");
	im->conf.timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
	snprintf(st->root, sizeof(st->root), "etcd:%s%s", im->conf.endpoints[0], im->prefix);
	return st;
}
