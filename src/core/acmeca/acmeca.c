/*
 * The ACME CA's protocol (RFC 8555): one request in, one response out.
 * Objects live in the store as JSON under acme-ca/:
 *   acct/ID    an account: its key (jwk), status, contact, enrolment, orders
 *   key/THUMB  which account a key belongs to
 *   order/ID, authz/ID, cert/SERIAL, eab/KID (tlsgate ca enroll)
 * URLs are https://HOST/acme/..., HOST being what the client asked for
 * (the Host header), so one CA answers under every name it is reached by;
 * a JWS must name exactly the URL it was sent to.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "acme_wire.h"
#include "acmeca.h"
#include "acmeca_int.h"
#include "config_int.h"
#include "error.h"
#include "ossl_words.h"
#include "pki.h"
#include "util.h"

#define ACMECA_MAGIC 0x41434d45u   /* "ACME" */
#define NONCES 8192
#define NONCE_LIFE 3600
#define AUTHZ_LIFE (7 * 86400)
#define MAX_IDS 20
/* s: a check not back by then may be asked for again; asking again for one
 * still queued or running changes nothing (acmeca_serve.c takes each once) */
#define STALE_CHECK 60
#define E "urn:ietf:params:acme:error:"

struct nonce { char v[32]; time_t exp; };

struct tg_acmeca {
	uint32_t magic;
	struct tg_acmeca_conf conf;
	struct tg_ca ca;
	char *ca_pem;                /* ca.crt, appended to every chain */
	struct tg_store *st;         /* used under mu only */
	pthread_mutex_t mu;
	struct nonce nonces[NONCES];
	size_t nonce_next;
};

/* A request being answered. */
struct rq {
	struct tg_acmeca *ca;
	const struct tg_acmeca_req *req;
	struct tg_acmeca_resp *resp;
	char base[400];              /* https://HOST/acme/ */
	struct tg_jws jws;
	json_t *payload;             /* NULL: POST-as-GET */
	char acct_id[64];            /* the signer's account (kid), "" for jwk */
	json_t *acct;
};

/* ---- responses -------------------------------------------------------------- */

static void
hdr(struct tg_acmeca_resp *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
hdr(struct tg_acmeca_resp *r, const char *fmt, ...)
{
	size_t n = strlen(r->headers);
	va_list ap;
	int w;

	va_start(ap, fmt);
	w = vsnprintf(r->headers + n, sizeof(r->headers) - n, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= sizeof(r->headers) - n)
		r->headers[n] = '\0';   /* a header that does not fit is left out whole */
}

static void
problem(struct rq *q, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void
problem(struct rq *q, int status, const char *type, const char *fmt, ...)
{
	char detail[700], t[80];
	json_t *o;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	snprintf(t, sizeof(t), E "%s", type);
	o = json_pack("{s:s, s:s, s:i}", "type", t, "detail", detail, "status", status);
	free(q->resp->body);
	q->resp->body = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
	q->resp->body_len = q->resp->body ? strlen(q->resp->body) : 0;
	json_decref(o);
	q->resp->status = status;
	q->resp->event = TG_ACMECA_EV_REFUSED;
	hdr(q->resp, "Content-Type: application/problem+json\r\n");
	if (strcmp(type, "badNonce") != 0 && strcmp(type, "malformed") != 0)
		if (snprintf(q->resp->log, sizeof(q->resp->log), "ACME CA refused %s %s: %s (%s)",
		    q->req->method, q->req->path, detail, type) < 0)
			q->resp->log[0] = '\0';
}

static void
answer(struct rq *q, int status, json_t *o)
{
	free(q->resp->body);
	q->resp->body = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
	q->resp->body_len = q->resp->body ? strlen(q->resp->body) : 0;
	q->resp->status = status;
	if (o)
		hdr(q->resp, "Content-Type: application/json\r\n");
	json_decref(o);
}

void
tg_acmeca_resp_clear(struct tg_acmeca_resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* ---- nonces ------------------------------------------------------------------ */

static void
nonce_new(struct tg_acmeca *ca, char *out, size_t len)
{
	unsigned char b[16];
	struct nonce *n = &ca->nonces[ca->nonce_next++ % NONCES];

	out[0] = '\0';
	if (RAND_bytes(b, sizeof(b)) != 1) {   /* no nonce rather than a guessable one */
		n->v[0] = '\0';
		return;
	}
	tg_b64url(b, sizeof(b), n->v, sizeof(n->v));
	n->exp = time(NULL) + NONCE_LIFE;
	snprintf(out, len, "%s", n->v);
}

/* Each nonce is good once: used or old, it is badNonce. */
static int
nonce_take(struct tg_acmeca *ca, const char *v)
{
	time_t now = time(NULL);
	size_t i;

	if (strlen(v) != 22)
		return 0;
	for (i = 0; i < NONCES; i++) {
		struct nonce *n = &ca->nonces[i];
		if (n->v[0] && !strcmp(n->v, v)) {
			int ok = n->exp > now;
			n->v[0] = '\0';
			return ok;
		}
	}
	return 0;
}

/* ---- the store ------------------------------------------------------------------ */

/* 1 found, 0 not there, -1 the store failed (q answered). */
static int
load(struct rq *q, const char *kind, const char *id, json_t **out)
{
	char name[200];
	unsigned char *data = NULL;
	size_t len = 0;
	struct tg_err err;
	json_error_t je;

	*out = NULL;
	if (tg_store_name_ok(id, &err) < 0 || strchr(id, '/') || !id[0])
		return 0;
	snprintf(name, sizeof(name), "acme-ca/%s/%s", kind, id);
	if (tg_store_get(q->ca->st, name, &data, &len, &err) < 0) {
		if (err.code == TG_E_NOT_FOUND)
			return 0;
		problem(q, 500, "serverInternal", "the CA's store (%s) failed: %s",
		    tg_store_path(q->ca->st), err.msg);
		return -1;
	}
	*out = json_loadb((char *)data, len, 0, &je);
	if (!strcmp(kind, "eab"))
		OPENSSL_cleanse(data, len);
	tg_free(data);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		problem(q, 500, "serverInternal", "the CA's record %s is damaged", name);
		return -1;
	}
	return 1;
}

static int
save(struct rq *q, const char *kind, const char *id, json_t *o)
{
	char name[200], *text = json_dumps(o, JSON_COMPACT);
	struct tg_err err;
	int secret = !strcmp(kind, "eab"), rv;

	if (text == NULL) {
		problem(q, 500, "serverInternal", "out of memory");
		return -1;
	}
	snprintf(name, sizeof(name), "acme-ca/%s/%s", kind, id);
	rv = tg_store_put(q->ca->st, name, text, strlen(text), secret ? TG_STORE_SECRET : 0, &err);
	if (secret)
		OPENSSL_cleanse(text, strlen(text));
	free(text);
	if (rv < 0)
		problem(q, 500, "serverInternal", "the CA cannot write to its store (%s): %s; "
		    "nothing was changed", tg_store_path(q->ca->st), err.msg);
	return rv;
}

/* A random id or token; -1 (out "") when OpenSSL has no randomness. */
static int
rand_id(char *out, size_t len, size_t bytes)
{
	unsigned char b[32];

	out[0] = '\0';
	if (bytes > sizeof(b) || RAND_bytes(b, (int)bytes) != 1)
		return -1;
	return tg_b64url(b, bytes, out, len);
}

static const char *
sget(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : "";
}

static void
rfc3339(time_t t, char *buf, size_t len)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- objects as the client sees them --------------------------------------------- */

static json_t *
account_json(struct rq *q, const char *id, json_t *a)
{
	char orders[600];
	json_t *o;
	json_t *contact = json_object_get(a, "contact");

	snprintf(orders, sizeof(orders), "%sacct/%s/orders", q->base, id);
	/* "o" takes the reference handed over: one of its own, or a new array */
	o = json_pack("{s:s, s:o, s:s}", "status", sget(a, "status"), "contact",
	    json_is_array(contact) ? json_incref(contact) : json_array(), "orders", orders);
	return o;
}

static json_t *
chall_json(struct rq *q, const char *authz_id, json_t *c, int i)
{
	char url[600];
	json_t *o;

	snprintf(url, sizeof(url), "%schall/%s/%d", q->base, authz_id, i);
	o = json_pack("{s:s, s:s, s:s, s:s}", "type", sget(c, "type"), "url", url,
	    "token", sget(c, "token"), "status", sget(c, "status"));
	if (o && json_object_get(c, "validated"))
		json_object_set(o, "validated", json_object_get(c, "validated"));
	if (o && json_object_get(c, "error"))
		json_object_set(o, "error", json_object_get(c, "error"));
	return o;
}

static json_t *
authz_json(struct rq *q, const char *id, json_t *a)
{
	json_t *o, *cs = json_object_get(a, "challenges"), *arr = json_array(), *c;
	char exp[40];
	size_t i;

	rfc3339((time_t)json_integer_value(json_object_get(a, "expires")), exp, sizeof(exp));
	json_array_foreach(cs, i, c)
		json_array_append_new(arr, chall_json(q, id, c, (int)i));
	o = json_pack("{s:O, s:s, s:s, s:o}", "identifier", json_object_get(a, "identifier"),
	    "status", sget(a, "status"), "expires", exp, "challenges", arr);
	if (o && json_is_true(json_object_get(a, "wildcard")))
		json_object_set_new(o, "wildcard", json_true());
	return o;
}

static json_t *
order_json(struct rq *q, const char *id, json_t *ord)
{
	json_t *o, *auths = json_array(), *v;
	char url[600], exp[40];
	size_t i;

	json_array_foreach(json_object_get(ord, "authorizations"), i, v) {
		snprintf(url, sizeof(url), "%sauthz/%s", q->base, json_string_value(v));
		json_array_append_new(auths, json_string(url));
	}
	rfc3339((time_t)json_integer_value(json_object_get(ord, "expires")), exp, sizeof(exp));
	snprintf(url, sizeof(url), "%sorder/%s/finalize", q->base, id);
	o = json_pack("{s:s, s:s, s:O, s:o, s:s}", "status", sget(ord, "status"), "expires", exp,
	    "identifiers", json_object_get(ord, "identifiers"), "authorizations", auths,
	    "finalize", url);
	if (o && sget(ord, "certificate")[0]) {
		snprintf(url, sizeof(url), "%scert/%s", q->base, sget(ord, "certificate"));
		json_object_set_new(o, "certificate", json_string(url));
	}
	if (o && json_object_get(ord, "error"))
		json_object_set(o, "error", json_object_get(ord, "error"));
	return o;
}

/* ---- the account's policy ------------------------------------------------------------ */

/* What the account may get and for how long; -1 when its enrolment is gone
 * (q answered). who names it for messages. */
static int
policy_of(struct rq *q, char *allow, size_t alen, long *life, char *who, size_t wl)
{
	const char *kid = sget(q->acct, "eab");
	json_t *e;
	int r;

	*life = q->ca->conf.lifetime_s;
	if (!kid[0]) {
		snprintf(allow, alen, "%s", q->ca->conf.allow);
		snprintf(who, wl, "account %s (no enrolment: ca.acme.allow)", q->acct_id);
		return 0;
	}
	if ((r = load(q, "eab", kid, &e)) < 0)
		return -1;
	if (r == 0) {
		problem(q, 403, "unauthorized", "the enrolment (external account binding %s) of "
		    "account %s was withdrawn; enrol again with tlsgate ca enroll", kid, q->acct_id);
		return -1;
	}
	snprintf(allow, alen, "%s", sget(e, "allow"));
	if (json_integer_value(json_object_get(e, "lifetime")) > 0)
		*life = (long)json_integer_value(json_object_get(e, "lifetime"));
	snprintf(who, wl, "account %s (enrolled as \"%s\")", q->acct_id, sget(e, "name"));
	tg_json_wipe(e, "hmac");
	json_decref(e);
	return 0;
}

/* ---- new-account ------------------------------------------------------------------ */

/* RFC 8555 section 7.3.4: the inner JWS, HS256 with the enrolment's key,
 * over the account's JWK. Returns the enrolment's kid, or -1 answered. */
static int
bind_external(struct rq *q, json_t *eab, const char *thumb, char *kid, size_t klen)
{
	struct tg_jws in;
	json_t *e = NULL, *inner_key = NULL, *accts;
	char why[300], *text, tp2[64];
	unsigned char key[128];
	long kl;
	int r, rv = -1;

	if ((text = json_dumps(eab, JSON_COMPACT)) == NULL) {
		problem(q, 500, "serverInternal", "out of memory");
		return -1;
	}
	r = tg_jws_parse(text, strlen(text), &in, why, sizeof(why));
	free(text);
	if (r < 0) {
		problem(q, 400, "malformed", "externalAccountBinding: %s", why);
		return -1;
	}
	if (strcmp(in.alg, "HS256") != 0 || !in.kid[0] || strcmp(in.url, q->jws.url) != 0) {
		problem(q, 400, "malformed", "externalAccountBinding must be HS256, name its key "
		    "id (kid) and the new-account URL");
		goto out;
	}
	if ((r = load(q, "eab", in.kid, &e)) < 0)
		goto out;
	if (r == 0) {
		problem(q, 403, "unauthorized", "unknown external account binding key id %s "
		    "(tlsgate ca enroll makes one)", in.kid);
		goto out;
	}
	kl = tg_b64url_decode(sget(e, "hmac"), key, sizeof(key));
	if (kl <= 0 || tg_jws_verify_hs256(&in, key, (size_t)kl) < 0) {
		OPENSSL_cleanse(key, sizeof(key));
		problem(q, 403, "unauthorized", "the external account binding for key id %s is not "
		    "signed with that key's HMAC key", in.kid);
		goto out;
	}
	OPENSSL_cleanse(key, sizeof(key));
	inner_key = json_loadb((char *)in.payload, in.payload_len, 0, NULL);
	if (inner_key == NULL || tg_jwk_thumbprint(inner_key, tp2, sizeof(tp2)) < 0 ||
	    strcmp(tp2, thumb) != 0) {
		problem(q, 400, "malformed", "the external account binding signs another key than "
		    "the account's");
		goto out;
	}
	accts = json_object_get(e, "accounts");
	if (!json_is_array(accts) || (json_int_t)json_array_size(accts) >=
	    json_integer_value(json_object_get(e, "max_accounts"))) {
		problem(q, 403, "unauthorized", "external account binding key %s (\"%s\") was "
		    "already used for %zu account(s), its limit; enrol again (tlsgate ca enroll) "
		    "for another device", in.kid, sget(e, "name"), json_array_size(accts));
		goto out;
	}
	if (strlen(in.kid) >= klen) {
		problem(q, 400, "malformed", "the external account binding key id is too long");
		goto out;
	}
	memcpy(kid, in.kid, strlen(in.kid) + 1);
	rv = 0;
out:
	if (e)
		tg_json_wipe(e, "hmac");
	json_decref(e);
	json_decref(inner_key);
	tg_jws_clear(&in);
	return rv;
}

static void
new_account_locked(struct rq *q, const char *thumb)
{
	json_t *p = q->payload, *idx, *a, *eab, *e;
	char id[32], kid[64] = "", url[600], now[40];
	int r;

	if ((r = load(q, "key", thumb, &idx)) < 0)
		return;
	if (r == 1) {   /* this key has an account: say where */
		snprintf(id, sizeof(id), "%s", sget(idx, "account"));
		json_decref(idx);
		if ((r = load(q, "acct", id, &a)) <= 0) {
			if (r == 0)
				problem(q, 500, "serverInternal", "account %s is indexed but missing", id);
			return;
		}
		snprintf(url, sizeof(url), "%sacct/%s", q->base, id);
		hdr(q->resp, "Location: %s\r\n", url);
		answer(q, 200, account_json(q, id, a));
		json_decref(a);
		return;
	}
	if (json_is_true(json_object_get(p, "onlyReturnExisting"))) {
		problem(q, 400, "accountDoesNotExist", "no account has this key");
		return;
	}
	eab = json_object_get(p, "externalAccountBinding");
	if (eab) {
		if (bind_external(q, eab, thumb, kid, sizeof(kid)) < 0)
			return;
	} else if (!q->ca->conf.allow[0]) {
		problem(q, 403, "externalAccountRequired", "this CA enrols its clients: ask its "
		    "operator for a key (tlsgate ca enroll NAME --allow ...) and pass it as external "
		    "account binding (certbot --eab-kid/--eab-hmac-key, lego --eab --kid --hmac, "
		    "tlsgate tls.acme.eab_kid/eab_hmac_key)");
		return;
	}
	if (rand_id(id, sizeof(id), 12) < 0) {
		problem(q, 500, "serverInternal", "no random bytes from OpenSSL");
		return;
	}
	rfc3339(time(NULL), now, sizeof(now));
	a = json_pack("{s:O, s:s, s:o, s:s, s:s, s:[]}", "jwk", q->jws.jwk, "status", "valid",
	    "contact", json_is_array(json_object_get(p, "contact")) ?
	    json_incref(json_object_get(p, "contact")) : json_array(), "eab", kid, "created", now,
	    "orders");
	idx = json_pack("{s:s}", "account", id);
	if (a == NULL || idx == NULL) {
		json_decref(a);
		json_decref(idx);
		problem(q, 500, "serverInternal", "out of memory");
		return;
	}
	/* the enrolment counts the account first: a crash between the writes
	 * costs a use of the key, never gives one more */
	if (kid[0]) {
		if (load(q, "eab", kid, &e) == 1) {
			json_array_append_new(json_object_get(e, "accounts"), json_string(id));
			r = save(q, "eab", kid, e);
			tg_json_wipe(e, "hmac");
			json_decref(e);
			if (r < 0)
				goto out;
		} else {
			goto out;
		}
	}
	if (save(q, "acct", id, a) < 0 || save(q, "key", thumb, idx) < 0)
		goto out;
	snprintf(url, sizeof(url), "%sacct/%s", q->base, id);
	hdr(q->resp, "Location: %s\r\n", url);
	snprintf(q->resp->log, sizeof(q->resp->log), "ACME CA: new account %s%s%s", id,
	    kid[0] ? " with external account binding " : " (ca.acme.allow)", kid);
	answer(q, 201, account_json(q, id, a));
out:
	json_decref(a);
	json_decref(idx);
}

/* ---- accounts ----------------------------------------------------------------------- */

static void
account_post(struct rq *q, const char *id, int orders)
{
	json_t *a = q->acct, *v;
	size_t i;

	if (strcmp(id, q->acct_id) != 0) {
		problem(q, 403, "unauthorized", "account %s is not the signer's", id);
		return;
	}
	if (orders) {
		json_t *list = json_array();
		char url[600];
		json_array_foreach(json_object_get(a, "orders"), i, v) {
			snprintf(url, sizeof(url), "%sorder/%s", q->base, json_string_value(v));
			json_array_append_new(list, json_string(url));
		}
		answer(q, 200, json_pack("{s:o}", "orders", list));
		return;
	}
	if (q->payload) {
		if (json_is_array(json_object_get(q->payload, "contact")))
			json_object_set(a, "contact", json_object_get(q->payload, "contact"));
		if (!strcmp(sget(q->payload, "status"), "deactivated"))
			json_object_set_new(a, "status", json_string("deactivated"));
		if (save(q, "acct", id, a) < 0)
			return;
	}
	answer(q, 200, account_json(q, id, a));
}

static void
key_change_locked(struct rq *q)
{
	struct tg_jws in;
	char why[300], tp_old[64], tp_new[64], acct_url[600], *text;
	EVP_PKEY *nk = NULL;
	json_t *inner = NULL, *idx = NULL;
	int r;

	if (q->payload == NULL || (text = json_dumps(q->payload, JSON_COMPACT)) == NULL) {
		problem(q, 400, "malformed", "keyChange needs the inner JWS as its payload");
		return;
	}
	r = tg_jws_parse(text, strlen(text), &in, why, sizeof(why));
	free(text);
	if (r < 0) {
		problem(q, 400, "malformed", "keyChange inner JWS: %s", why);
		return;
	}
	snprintf(acct_url, sizeof(acct_url), "%sacct/%s", q->base, q->acct_id);
	if (in.jwk == NULL || strcmp(in.url, q->jws.url) != 0 || in.nonce[0]) {
		problem(q, 400, "malformed", "the keyChange inner JWS must carry the new key (jwk), "
		    "the same url and no nonce");
		goto out;
	}
	if ((nk = tg_jwk_key(in.jwk, why, sizeof(why))) == NULL ||
	    tg_jws_verify(&in, nk, why, sizeof(why)) < 0) {
		problem(q, 400, "malformed", "keyChange inner JWS: %s", why);
		goto out;
	}
	inner = json_loadb((char *)in.payload, in.payload_len, 0, NULL);
	if (!json_is_object(inner) || strcmp(sget(inner, "account"), acct_url) != 0 ||
	    tg_jwk_thumbprint(json_object_get(inner, "oldKey"), tp_old, sizeof(tp_old)) < 0 ||
	    tg_jwk_thumbprint(json_object_get(q->acct, "jwk"), tp_new, sizeof(tp_new)) < 0 ||
	    strcmp(tp_old, tp_new) != 0) {
		problem(q, 400, "malformed", "keyChange: the inner payload must name this account "
		    "and its current key (oldKey)");
		goto out;
	}
	tg_jwk_thumbprint(in.jwk, tp_new, sizeof(tp_new));
	if ((r = load(q, "key", tp_new, &idx)) != 0) {
		if (r == 1) {
			hdr(q->resp, "Location: %sacct/%s\r\n", q->base, sget(idx, "account"));
			problem(q, 409, "conflict", "the new key already belongs to an account");
		}
		goto out;
	}
	idx = json_pack("{s:s}", "account", q->acct_id);
	json_object_set(q->acct, "jwk", in.jwk);
	if (idx == NULL || save(q, "key", tp_new, idx) < 0 || save(q, "acct", q->acct_id,
	    q->acct) < 0)
		goto out;
	{
		char name[200];
		struct tg_err err;
		snprintf(name, sizeof(name), "acme-ca/key/%s", tp_old);
		tg_store_delete(q->ca->st, name, &err);   /* the old key signs nothing now */
	}
	snprintf(q->resp->log, sizeof(q->resp->log), "ACME CA: account %s changed its key",
	    q->acct_id);
	answer(q, 200, account_json(q, q->acct_id, q->acct));
out:
	json_decref(idx);
	json_decref(inner);
	EVP_PKEY_free(nk);
	tg_jws_clear(&in);
}

/* ---- orders --------------------------------------------------------------------------- */

static json_t *
make_authz(struct rq *q, const char *type, const char *value, const char *order_id, char *id,
    size_t idlen)
{
	int wild = !strncmp(value, "*.", 2), c = q->ca->conf.challenges;
	json_t *cs = json_array(), *a;
	static const struct { int bit; const char *name; } kinds[] = {
		{ TG_ACMECA_HTTP01, "http-01" }, { TG_ACMECA_TLSALPN01, "tls-alpn-01" },
		{ TG_ACMECA_DNS01, "dns-01" } };
	size_t i;

	id[0] = '\0';
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		char token[64];
		if (!(c & kinds[i].bit) || (wild && kinds[i].bit != TG_ACMECA_DNS01) ||
		    (!strcmp(type, "ip") && kinds[i].bit == TG_ACMECA_DNS01))
			continue;
		if (rand_id(token, sizeof(token), 32) < 0) {
			json_decref(cs);
			return NULL;
		}
		json_array_append_new(cs, json_pack("{s:s, s:s, s:s}", "type", kinds[i].name,
		    "token", token, "status", "pending"));
	}
	if (rand_id(id, idlen, 12) < 0) {
		json_decref(cs);
		return NULL;
	}
	a = json_pack("{s:{s:s, s:s}, s:b, s:s, s:I, s:s, s:s, s:o}", "identifier", "type", type,
	    "value", wild ? value + 2 : value, "wildcard", wild, "status", "pending", "expires",
	    (json_int_t)(time(NULL) + AUTHZ_LIFE), "account", q->acct_id, "order", order_id,
	    "challenges", cs);
	return a;
}

/* An identifier ACME may name: a lower-case DNS name, or an address as
 * inet_ntop writes it. */
static int
identifier_ok(const char *type, const char *value, char *why, size_t wl)
{
	if (!strcmp(type, "dns")) {
		if (tg_acmeca_dns_ok(value))
			return 0;
		snprintf(why, wl, "\"%s\" is not a DNS name (lower case letters, digits, hyphens)",
		    value);
	} else if (!strcmp(type, "ip")) {
		unsigned char a[16];
		char back[INET6_ADDRSTRLEN];
		int af = strchr(value, ':') ? AF_INET6 : AF_INET;
		if (inet_pton(af, value, a) == 1 && inet_ntop(af, a, back, sizeof(back)) &&
		    !strcmp(back, value))
			return 0;
		snprintf(why, wl, "\"%s\" is not an IP address in its shortest form", value);
	} else {
		snprintf(why, wl, "identifier type \"%s\" is not dns or ip", type);
	}
	return -1;
}

static void
new_order(struct rq *q)
{
	json_t *ids = json_object_get(q->payload, "identifiers"), *v, *ord = NULL, *auths;
	json_t *made[MAX_IDS];
	char allow[4096], who[300], why[300], oid[32], aid[MAX_IDS][32], url[600];
	long life;
	size_t i, n;

	if (!json_is_array(ids) || (n = json_array_size(ids)) == 0 || n > MAX_IDS) {
		problem(q, 400, "malformed", "newOrder needs 1 to %d identifiers", MAX_IDS);
		return;
	}
	if (policy_of(q, allow, sizeof(allow), &life, who, sizeof(who)) < 0)
		return;
	json_array_foreach(ids, i, v) {
		const char *type = sget(v, "type"), *val = sget(v, "value");
		if (identifier_ok(type, val, why, sizeof(why)) < 0) {
			problem(q, 400, !strcmp(type, "dns") || !strcmp(type, "ip") ?
			    "rejectedIdentifier" : "unsupportedIdentifier", "%s", why);
			return;
		}
		if (!tg_acmeca_allowed(allow, type, val)) {
			problem(q, 403, "rejectedIdentifier", "%s may not have %s: its policy allows %s",
			    who, val, allow[0] ? allow : "nothing");
			return;
		}
		if (!strncmp(val, "*.", 2) && !(q->ca->conf.challenges & TG_ACMECA_DNS01)) {
			problem(q, 400, "rejectedIdentifier", "%s is a wildcard: it needs DNS-01, which "
			    "this CA does not offer (ca.acme.challenges)", val);
			return;
		}
	}
	if (rand_id(oid, sizeof(oid), 12) < 0) {
		problem(q, 500, "serverInternal", "no random bytes from OpenSSL");
		return;
	}
	auths = json_array();
	memset(made, 0, sizeof(made));
	json_array_foreach(ids, i, v) {
		made[i] = make_authz(q, sget(v, "type"), sget(v, "value"), oid, aid[i],
		    sizeof(aid[i]));
		json_array_append_new(auths, json_string(aid[i]));
	}
	ord = json_pack("{s:s, s:I, s:O, s:o, s:s, s:I}", "status", "pending", "expires",
	    (json_int_t)(time(NULL) + AUTHZ_LIFE), "identifiers", ids, "authorizations", auths,
	    "account", q->acct_id, "lifetime", (json_int_t)life);
	for (i = 0; i < n; i++)
		if (made[i] == NULL || save(q, "authz", aid[i], made[i]) < 0)
			goto out;
	if (ord == NULL || save(q, "order", oid, ord) < 0)
		goto out;
	{
		json_t *list = json_object_get(q->acct, "orders");
		if (!json_is_array(list))
			json_object_set_new(q->acct, "orders", list = json_array());
		json_array_append_new(list, json_string(oid));
		while (json_array_size(list) > 200)   /* the newest are what clients ask for */
			json_array_remove(list, 0);
		if (save(q, "acct", q->acct_id, q->acct) < 0)
			goto out;
	}
	snprintf(url, sizeof(url), "%sorder/%s", q->base, oid);
	hdr(q->resp, "Location: %s\r\n", url);
	answer(q, 201, order_json(q, oid, ord));
out:
	for (i = 0; i < n; i++)
		json_decref(made[i]);
	json_decref(ord);
}

/* Loads an object of the signer's; 1, or 0/-1 answered. */
static int
owned(struct rq *q, const char *kind, const char *id, json_t **out)
{
	int r = load(q, kind, id, out);

	if (r == 0) {
		problem(q, 404, "malformed", "no %s %s here", kind, id);
		return 0;
	}
	if (r < 0)
		return -1;
	if (strcmp(sget(*out, "account"), q->acct_id) != 0) {
		json_decref(*out);
		*out = NULL;
		problem(q, 403, "unauthorized", "%s %s belongs to another account", kind, id);
		return 0;
	}
	return 1;
}

/* pending -> ready when every authorization is valid, invalid when one is
 * not to be; an order past its expiry is invalid. Saves a change. */
static int
order_refresh(struct rq *q, const char *oid, json_t *ord)
{
	const char *st = sget(ord, "status");
	json_t *v, *a;
	size_t i;
	int all = 1, bad = 0, r;
	char what[300] = "";

	if (strcmp(st, "pending") && strcmp(st, "ready"))
		return 0;
	if (time(NULL) > (time_t)json_integer_value(json_object_get(ord, "expires"))) {
		bad = 1;
		snprintf(what, sizeof(what), "the order expired");
	}
	json_array_foreach(json_object_get(ord, "authorizations"), i, v) {
		if (bad)
			break;
		if ((r = load(q, "authz", json_string_value(v), &a)) <= 0) {
			if (r == 0)
				bad = 1, snprintf(what, sizeof(what), "an authorization is gone");
			else
				return -1;
			break;
		}
		if (!strcmp(sget(a, "status"), "invalid") || !strcmp(sget(a, "status"), "deactivated")) {
			bad = 1;
			snprintf(what, sizeof(what), "the authorization for %s is %s",
			    sget(json_object_get(a, "identifier"), "value"), sget(a, "status"));
		} else if (strcmp(sget(a, "status"), "valid") != 0) {
			all = 0;
		}
		json_decref(a);
	}
	if (bad) {
		json_object_set_new(ord, "status", json_string("invalid"));
		json_object_set_new(ord, "error", json_pack("{s:s, s:s}", "type",
		    E "unauthorized", "detail", what));
	} else if (all && !strcmp(st, "pending")) {
		json_object_set_new(ord, "status", json_string("ready"));
	} else {
		return 0;
	}
	return save(q, "order", oid, ord);
}

static void
order_post(struct rq *q, const char *oid)
{
	json_t *ord;

	if (owned(q, "order", oid, &ord) <= 0)
		return;
	if (order_refresh(q, oid, ord) == 0)
		answer(q, 200, order_json(q, oid, ord));
	json_decref(ord);
}

/* ---- finalize ------------------------------------------------------------------------- */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A URI as a certificate may carry it, and as the SAN list passes it on
 * (comma-separated: a comma inside would smuggle in a name of its own). */
static int
uri_ok(const unsigned char *p, int len)
{
	int i;

	if (len <= 0 || len > 255)
		return 0;
	for (i = 0; i < len; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f || strchr(",\"<>\\^`{|}", p[i]))
			return 0;
	return memchr(p, ':', (size_t)len) != NULL;
}

/* The CSR's names ("dns:x", "ip:y") sorted in names, URIs in uris. */
static int
csr_names(X509_REQ *req, char names[][300], size_t *nn, char uris[][300], size_t *nu,
    char *why, size_t wl)
{
	STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
	GENERAL_NAMES *g = NULL;
	X509_NAME *subj = X509_REQ_get_subject_name(req);
	int i, cn = X509_NAME_get_index_by_NID(subj, NID_commonName, -1), rv = 0;

	*nn = *nu = 0;
	if (exts)
		g = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
	for (i = 0; g && i < sk_GENERAL_NAME_num(g); i++) {
		const GENERAL_NAME *n = sk_GENERAL_NAME_value(g, i);
		if (*nn >= MAX_IDS || *nu >= MAX_IDS) {
			snprintf(why, wl, "the CSR names more than %d names", MAX_IDS);
			rv = -1;
			break;
		}
		if (n->type == GEN_DNS) {
			snprintf(names[(*nn)++], 300, "dns:%.*s", n->d.dNSName->length,
			    (const char *)n->d.dNSName->data);
		} else if (n->type == GEN_IPADD && tg_san_ip_text(n->d.iPAddress, names[*nn] + 3,
		    297) == 0) {
			memcpy(names[(*nn)++], "ip:", 3);
		} else if (n->type == GEN_URI) {
			const ASN1_IA5STRING *u = n->d.uniformResourceIdentifier;
			if (!uri_ok(u->data, u->length)) {
				snprintf(why, wl, "a URI in the CSR is longer than 255 characters or holds "
				    "characters a URI may not (RFC 3986: no spaces, commas, quotes or "
				    "controls)");
				rv = -1;
				break;
			}
			snprintf(uris[(*nu)++], 300, "%.*s", u->length, (const char *)u->data);
		} else {
			snprintf(why, wl, "the CSR names something other than DNS names, IP "
			    "addresses and URIs");
			rv = -1;
			break;
		}
	}
	GENERAL_NAMES_free(g);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	if (rv == 0 && cn >= 0) {
		/* a CN must be one of the SANs (RFC 8555 section 7.4) */
		ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, cn));
		char c[300];
		size_t k;
		int found = 0;
		snprintf(c, sizeof(c), "dns:%.*s", d->length, (const char *)d->data);
		for (k = 0; k < *nn; k++)
			found |= !strcasecmp(names[k], c) || !strcmp(names[k] + 3, c + 4);
		if (!found) {
			if (snprintf(why, wl, "the CSR's common name %s is not among its SANs", c + 4) < 0)
				why[0] = '\0';
			rv = -1;
		}
	}
	return rv;
}

static int
key_ok(EVP_PKEY *k)
{
	int id = EVP_PKEY_get_base_id(k), bits = EVP_PKEY_get_bits(k);

	return (id == EVP_PKEY_RSA && bits >= 2048 && bits <= 8192) ||
	    (id == EVP_PKEY_EC && (bits == 256 || bits == 384)) || id == EVP_PKEY_ED25519;
}

static void
finalize_locked(struct rq *q, const char *oid)
{
	json_t *ord = NULL, *v, *rec = NULL;
	const char *csr_b64 = sget(q->payload, "csr");
	unsigned char *der = NULL;
	const unsigned char *dp;
	long dl;
	X509_REQ *req = NULL;
	EVP_PKEY *pub = NULL, *acct_key = NULL;
	X509 *x = NULL;
	char names[MAX_IDS][300], uris[MAX_IDS][300], want[MAX_IDS][300];
	char *np[MAX_IDS], *wp[MAX_IDS], why[300], sans[8192], allow[4096], who[300];
	char serial[80], cn[300] = "", *leaf = NULL, *chain = NULL;
	size_t nn, nu, nw = 0, i, o = 0;
	struct tg_err err;
	long life;
	BIGNUM *bn = NULL;
	char *hex = NULL;

	if (owned(q, "order", oid, &ord) <= 0)
		return;
	if (order_refresh(q, oid, ord) < 0)
		goto out;
	if (strcmp(sget(ord, "status"), "ready") != 0) {
		problem(q, 403, "orderNotReady", "the order is %s%s", sget(ord, "status"),
		    !strcmp(sget(ord, "status"), "pending") ? ": not every authorization is valid "
		    "yet" : "");
		goto out;
	}
	if (!csr_b64[0] || (der = malloc(strlen(csr_b64))) == NULL ||
	    (dl = tg_b64url_decode(csr_b64, der, strlen(csr_b64))) <= 0) {
		problem(q, 400, "badCSR", "finalize needs the CSR, DER in base64url");
		goto out;
	}
	dp = der;
	if ((req = d2i_X509_REQ(NULL, &dp, dl)) == NULL || (pub = X509_REQ_get_pubkey(req)) == NULL ||
	    X509_REQ_verify(req, pub) != 1) {
		problem(q, 400, "badCSR", "the CSR does not parse or its signature does not verify");
		goto out;
	}
	if (!key_ok(pub)) {
		problem(q, 400, "badCSR", "the CSR's key is not RSA 2048 to 8192, EC P-256/P-384 "
		    "or Ed25519");
		goto out;
	}
	acct_key = tg_jwk_key(json_object_get(q->acct, "jwk"), why, sizeof(why));
	if (acct_key && EVP_PKEY_eq(acct_key, pub) == 1) {
		problem(q, 400, "badCSR", "the CSR's key is the account key; use a key of its own");
		goto out;
	}
	if (csr_names(req, names, &nn, uris, &nu, why, sizeof(why)) < 0) {
		problem(q, 400, "badCSR", "%s", why);
		goto out;
	}
	json_array_foreach(json_object_get(ord, "identifiers"), i, v) {
		if (nw >= MAX_IDS)
			break;
		snprintf(want[nw++], 300, "%s:%s", sget(v, "type"), sget(v, "value"));
	}
	for (i = 0; i < nn; i++) {
		char *c;
		for (c = names[i]; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		np[i] = names[i];
	}
	for (i = 0; i < nw; i++)
		wp[i] = want[i];
	qsort(np, nn, sizeof(*np), cmp_str);
	qsort(wp, nw, sizeof(*wp), cmp_str);
	for (i = 0; i < nn && i < nw && !strcmp(np[i], wp[i]); i++)
		;
	if (nn != nw || i != nn) {
		problem(q, 400, "badCSR", "the CSR's names are not exactly the order's identifiers");
		goto out;
	}
	if (policy_of(q, allow, sizeof(allow), &life, who, sizeof(who)) < 0)
		goto out;
	for (i = 0; i < nu; i++)
		if (!tg_acmeca_allowed(allow, "uri", uris[i])) {
			problem(q, 403, "rejectedIdentifier", "%s may not have the URI %s: its policy "
			    "allows %s", who, uris[i], allow);
			goto out;
		}
	/* an order's lifetime is the one of its account when it was placed */
	if (json_integer_value(json_object_get(ord, "lifetime")) > 0)
		life = (long)json_integer_value(json_object_get(ord, "lifetime"));
	sans[0] = '\0';
	for (i = 0; i < nn; i++) {
		o += (size_t)snprintf(sans + o, sizeof(sans) - o, "%s%s", o ? "," : "", want[i]);
		if (!cn[0] && !strncmp(want[i], "dns:", 4))
			snprintf(cn, sizeof(cn), "%s", want[i] + 4);
	}
	for (i = 0; i < nu && o < sizeof(sans); i++)
		o += (size_t)snprintf(sans + o, sizeof(sans) - o, ",uri:%s", uris[i]);
	if (o >= sizeof(sans)) {
		problem(q, 400, "badCSR", "the CSR names too much");
		goto out;
	}
	if ((x = tg_cert_build_secs(TG_BUILD_LEAF | (cn[0] ? 0 : TG_BUILD_NO_CN), cn, sans, 0, life,
	    pub, &q->ca->ca, &err)) == NULL) {
		problem(q, 500, "serverInternal", "signing failed: %s", err.msg);
		goto out;
	}
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) == NULL ||
	    (hex = BN_bn2hex(bn)) == NULL) {
		problem(q, 500, "serverInternal", "out of memory");
		goto out;
	}
	snprintf(serial, sizeof(serial), "%s", hex);
	{
		STACK_OF(X509) *one = sk_X509_new_null();
		if (one && sk_X509_push(one, x))
			leaf = tg_certs_pem(one);
		sk_X509_free(one);
	}
	if (leaf == NULL || asprintf(&chain, "%s%s", leaf, q->ca->ca_pem) < 0) {
		chain = NULL;
		problem(q, 500, "serverInternal", "out of memory");
		goto out;
	}
	rec = json_pack("{s:s, s:s, s:s, s:s}", "pem", chain, "account", q->acct_id, "order", oid,
	    "names", sans);
	if (rec == NULL || save(q, "cert", serial, rec) < 0)
		goto out;
	json_object_set_new(ord, "status", json_string("valid"));
	json_object_set_new(ord, "certificate", json_string(serial));
	if (save(q, "order", oid, ord) < 0)
		goto out;
	q->resp->event = TG_ACMECA_EV_ISSUED;
	if (snprintf(q->resp->log, sizeof(q->resp->log), "ACME CA: issued %s (serial %s, valid "
	    "%lds) to %s", sans, serial, life, who) >= (int)sizeof(q->resp->log))
		snprintf(q->resp->log, sizeof(q->resp->log), "ACME CA: issued serial %s (valid %lds, "
		    "%zu names) to %s", serial, life, nn + nu, who);
	answer(q, 200, order_json(q, oid, ord));
out:
	OPENSSL_free(hex);
	BN_free(bn);
	free(leaf);
	free(chain);
	json_decref(rec);
	X509_free(x);
	EVP_PKEY_free(acct_key);
	EVP_PKEY_free(pub);
	X509_REQ_free(req);
	free(der);
	json_decref(ord);
}

static void
cert_post(struct rq *q, const char *serial)
{
	json_t *rec;

	if (owned(q, "cert", serial, &rec) <= 0)
		return;
	free(q->resp->body);
	q->resp->body = strdup(sget(rec, "pem"));
	q->resp->body_len = q->resp->body ? strlen(q->resp->body) : 0;
	q->resp->status = q->resp->body ? 200 : 500;
	hdr(q->resp, "Content-Type: application/pem-certificate-chain\r\n");
	json_decref(rec);
}

/* ---- authorizations and challenges ----------------------------------------------------- */

static void
authz_post(struct rq *q, const char *id)
{
	json_t *a;

	if (owned(q, "authz", id, &a) <= 0)
		return;
	if (q->payload && !strcmp(sget(q->payload, "status"), "deactivated")) {
		json_object_set_new(a, "status", json_string("deactivated"));
		if (save(q, "authz", id, a) < 0) {
			json_decref(a);
			return;
		}
	} else if (!strcmp(sget(a, "status"), "pending") &&
	    time(NULL) > (time_t)json_integer_value(json_object_get(a, "expires"))) {
		json_object_set_new(a, "status", json_string("expired"));
		if (save(q, "authz", id, a) < 0) {
			json_decref(a);
			return;
		}
	}
	if (!strcmp(sget(a, "status"), "pending"))
		hdr(q->resp, "Retry-After: 1\r\n");   /* a check takes a second or two */
	answer(q, 200, authz_json(q, id, a));
	json_decref(a);
}

static void
chall_post(struct rq *q, const char *rest)
{
	char id[64];
	int idx;
	json_t *a, *c;
	const char *slash = strchr(rest, '/');

	if (slash == NULL || (size_t)(slash - rest) >= sizeof(id) || sscanf(slash + 1, "%d", &idx)
	    != 1 || idx < 0) {
		problem(q, 404, "malformed", "no such challenge");
		return;
	}
	memcpy(id, rest, (size_t)(slash - rest));
	id[slash - rest] = '\0';
	if (owned(q, "authz", id, &a) <= 0)
		return;
	c = json_array_get(json_object_get(a, "challenges"), (size_t)idx);
	if (c == NULL) {
		problem(q, 404, "malformed", "no such challenge");
		json_decref(a);
		return;
	}
	/* asked for: checked now; a check that never reported back (the
	 * process ended, the pool could not take it) may be asked for again */
	if (q->payload && !strcmp(sget(a, "status"), "pending") &&
	    (!strcmp(sget(c, "status"), "pending") || (!strcmp(sget(c, "status"), "processing") &&
	    time(NULL) - (time_t)json_integer_value(json_object_get(c, "since")) > STALE_CHECK))) {
		json_object_set_new(c, "status", json_string("processing"));
		json_object_set_new(c, "since", json_integer((json_int_t)time(NULL)));
		if (save(q, "authz", id, a) < 0) {
			json_decref(a);
			return;
		}
		q->resp->validate = 1;
		snprintf(q->resp->account, sizeof(q->resp->account), "%s", q->acct_id);
		snprintf(q->resp->authz, sizeof(q->resp->authz), "%s", id);
		q->resp->chall = idx;
	}
	if (!strcmp(sget(c, "status"), "pending") || !strcmp(sget(c, "status"), "processing"))
		hdr(q->resp, "Retry-After: 1\r\n");   /* clients wait this long before they look */
	hdr(q->resp, "Link: <%sauthz/%s>;rel=\"up\"\r\n", q->base, id);
	answer(q, 200, chall_json(q, id, c, idx));
	json_decref(a);
}

/* ---- revocation -------------------------------------------------------------------------- */

static void
revoke(struct rq *q)
{
	const char *b64 = sget(q->payload, "certificate");
	json_t *reason = json_object_get(q->payload, "reason"), *rec = NULL;
	unsigned char *der = NULL;
	const unsigned char *dp;
	long dl;
	X509 *x = NULL;
	EVP_PKEY *jk = NULL;
	BIGNUM *bn = NULL;
	char *hex = NULL, serial[80], why[300];
	struct tg_err err;
	int code = reason ? (int)json_integer_value(reason) : 0, count, r;

	if (!b64[0] || (der = malloc(strlen(b64))) == NULL ||
	    (dl = tg_b64url_decode(b64, der, strlen(b64))) <= 0 ||
	    (dp = der, x = d2i_X509(NULL, &dp, dl)) == NULL) {
		problem(q, 400, "malformed", "revokeCert needs the certificate, DER in base64url");
		goto out;
	}
	if (reason && (!json_is_integer(reason) || code < 0 || code > 10 || code == 7)) {
		problem(q, 400, "badRevocationReason", "reason %d is not an RFC 5280 reason code "
		    "(0-10 but 7)", code);
		goto out;
	}
	if (X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(q->ca->ca.cert)) != 0 ||
	    X509_verify(x, X509_get0_pubkey(q->ca->ca.cert)) != 1) {
		problem(q, 404, "malformed", "this CA did not issue that certificate");
		goto out;
	}
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	if (bn == NULL || (hex = BN_bn2hex(bn)) == NULL) {
		problem(q, 500, "serverInternal", "out of memory");
		goto out;
	}
	snprintf(serial, sizeof(serial), "%s", hex);
	if (q->acct_id[0]) {
		/* the account that ordered it may revoke it */
		if ((r = load(q, "cert", serial, &rec)) < 0)
			goto out;
		if (r == 0 || strcmp(sget(rec, "account"), q->acct_id) != 0) {
			problem(q, 403, "unauthorized", "serial %s was not issued to account %s",
			    serial, q->acct_id);
			goto out;
		}
	} else {
		/* or whoever holds its key (signed with it, RFC 8555 section 7.6) */
		if ((jk = tg_jwk_key(q->jws.jwk, why, sizeof(why))) == NULL ||
		    EVP_PKEY_eq(jk, X509_get0_pubkey(x)) != 1) {
			problem(q, 403, "unauthorized", "a revocation signed with a jwk must be signed "
			    "by the certificate's own key");
			goto out;
		}
	}
	/* a short wait for the CA's lock: this holds a pool thread and the
	 * CA's mutex */
	if (tg_ca_revoke(q->ca->conf.ca_dir, &q->ca->conf.store, serial, code, 2000, serial,
	    sizeof(serial), &count, &err) < 0) {
		if (err.code == TG_E_EXISTS) {
			problem(q, 400, "alreadyRevoked", "%s", err.msg);
		} else if (err.code == TG_E_LOCKED || err.code == TG_E_CONNECT) {
			hdr(q->resp, "Retry-After: 5\r\n");
			problem(q, 503, "serverInternal", "revoking serial %s: the CA is busy or its "
			    "store unreachable (%s); nothing was revoked, try again", serial, err.msg);
		} else {
			problem(q, 500, "serverInternal", "revoking serial %s failed: %s", serial,
			    err.msg);
		}
		goto out;
	}
	q->resp->event = TG_ACMECA_EV_REVOKED;
	snprintf(q->resp->log, sizeof(q->resp->log), "ACME CA: revoked serial %s (%s) at the "
	    "request of %s%s; the CRL lists %d", serial, tg_crl_reason_words(code), q->acct_id[0] ?
	    "account " : "the certificate's key", q->acct_id, count);
	answer(q, 200, NULL);
out:
	json_decref(rec);
	OPENSSL_free(hex);
	BN_free(bn);
	EVP_PKEY_free(jk);
	X509_free(x);
	free(der);
}

/*
 * The steps that read, decide and write across records (an enrolment's
 * count of accounts, an order becoming a certificate) hold the store's
 * lock: the mutex covers this process, the lock every node that shares
 * the store, so a key is never used twice and an order never signed twice.
 */
static int
store_lock(struct rq *q)
{
	struct tg_err err;

	/* a short wait: this holds a pool thread (and the CA's mutex) */
	if (tg_store_lock(q->ca->st, "acme-ca", 2000, &err) == 0)
		return 0;
	hdr(q->resp, "Retry-After: 5\r\n");
	problem(q, 503, "serverInternal", "the CA's store (%s) is busy or unreachable: %s; try "
	    "again", tg_store_path(q->ca->st), err.msg);
	return -1;
}

static void
key_change(struct rq *q)
{
	if (store_lock(q) < 0)
		return;
	key_change_locked(q);
	tg_store_unlock(q->ca->st, "acme-ca");
}

static void
new_account(struct rq *q, const char *thumb)
{
	if (store_lock(q) < 0)
		return;
	new_account_locked(q, thumb);
	tg_store_unlock(q->ca->st, "acme-ca");
}

static void
finalize(struct rq *q, const char *oid)
{
	if (store_lock(q) < 0)
		return;
	finalize_locked(q, oid);
	tg_store_unlock(q->ca->st, "acme-ca");
}

/* ---- renewal information (RFC 9773) ------------------------------------------------------ */

/* GET renewal-info/AKI.SERIAL: when the holder of a certificate this CA
 * issued should renew it. The window sits around the point tlsgate's own
 * client would pick (a third of the lifetime left, half under 10 days),
 * a tenth of the lifetime wide, so a fleet's renewals spread; a revoked
 * certificate gets a window in the past, so its holder renews at its next
 * check, without anyone touching the device. */
static time_t
asn1_secs(const ASN1_TIME *t)
{
	struct tm tm;

	return ASN1_TIME_to_tm(t, &tm) == 1 ? timegm(&tm) : 0;
}

static void
renewal_info(struct rq *q, const char *id)
{
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(q->ca->ca.cert);
	const char *dot = strchr(id, '.');
	unsigned char aki[128], sn[128];
	char part[200], *hex = NULL, ts[40], te[40];
	long al, sl;
	BIGNUM *bn = NULL;
	json_t *rec = NULL;
	X509 *x = NULL;
	BIO *b = NULL;
	struct tg_err err;
	long long when = 0;
	time_t nb, na, life, mid, start, end, now = time(NULL);
	int r, reason = 0;

	if (dot == NULL || (size_t)(dot - id) >= sizeof(part) || strlen(dot + 1) >= sizeof(part)) {
		problem(q, 400, "malformed", "a certificate ID is base64url(authority key id) \".\" "
		    "base64url(serial number) (RFC 9773 section 4.1)");
		return;
	}
	memcpy(part, id, (size_t)(dot - id));
	part[dot - id] = '\0';
	al = tg_b64url_decode(part, aki, sizeof(aki));
	sl = tg_b64url_decode(dot + 1, sn, sizeof(sn));
	if (al <= 0 || sl <= 0) {
		problem(q, 400, "malformed", "the certificate ID is not base64url");
		return;
	}
	if (sl > 20) {   /* RFC 5280 section 4.1.2.2: at most 20 octets */
		problem(q, 400, "malformed", "a serial number has at most 20 octets");
		return;
	}
	if (ski == NULL || ASN1_STRING_length(ski) != al ||
	    memcmp(ASN1_STRING_get0_data(ski), aki, (size_t)al) != 0) {
		problem(q, 404, "malformed", "this CA did not issue a certificate with that "
		    "authority key id");
		return;
	}
	if ((bn = BN_bin2bn(sn, (int)sl, NULL)) == NULL || (hex = BN_bn2hex(bn)) == NULL) {
		problem(q, 500, "serverInternal", "out of memory");
		goto out;
	}
	if ((r = load(q, "cert", hex, &rec)) <= 0) {
		if (r == 0)
			problem(q, 404, "malformed", "this CA issued no certificate with serial %s", hex);
		goto out;
	}
	if ((b = BIO_new_mem_buf(sget(rec, "pem"), -1)) == NULL ||
	    (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL ||
	    (nb = asn1_secs(X509_get0_notBefore(x))) == 0 ||
	    (na = asn1_secs(X509_get0_notAfter(x))) <= nb) {
		ERR_clear_error();
		problem(q, 500, "serverInternal", "the CA's record of serial %s is damaged", hex);
		goto out;
	}
	if ((r = tg_ca_revoked(q->ca->conf.ca_dir, hex, &when, &reason, &err)) < 0) {
		problem(q, 500, "serverInternal", "the CA's revocation list: %s", err.msg);
		goto out;
	}
	life = na - nb;
	if (r == 1) {   /* renew now: an hour ago until a second before it was revoked */
		end = (time_t)when < now ? (time_t)when : now;
		end -= 1;
		start = end - 3600;
	} else {
		mid = na - (life < 10 * 86400 ? life / 2 : life / 3);
		start = mid - life / 20;
		end = mid + life / 20;
	}
	rfc3339(start, ts, sizeof(ts));
	rfc3339(end, te, sizeof(te));
	/* when to ask again: a twentieth of the lifetime, 1 minute to 6 hours */
	hdr(q->resp, "Retry-After: %ld\r\n", (long)(life / 20 < 60 ? 60 : life / 20 > 21600 ?
	    21600 : life / 20));
	answer(q, 200, json_pack("{s:{s:s, s:s}}", "suggestedWindow", "start", ts, "end", te));
out:
	X509_free(x);
	BIO_free(b);
	json_decref(rec);
	OPENSSL_free(hex);
	BN_free(bn);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static void
directory(struct rq *q)
{
	char u[6][600];

	snprintf(u[0], sizeof(u[0]), "%snew-nonce", q->base);
	snprintf(u[1], sizeof(u[1]), "%snew-account", q->base);
	snprintf(u[2], sizeof(u[2]), "%snew-order", q->base);
	snprintf(u[3], sizeof(u[3]), "%srevoke-cert", q->base);
	snprintf(u[4], sizeof(u[4]), "%skey-change", q->base);
	snprintf(u[5], sizeof(u[5]), "%srenewal-info", q->base);
	answer(q, 200, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:b}}", "newNonce", u[0],
	    "newAccount", u[1], "newOrder", u[2], "revokeCert", u[3], "keyChange", u[4],
	    "renewalInfo", u[5], "meta", "externalAccountRequired", !q->ca->conf.allow[0]));
}

static void
file_answer(struct rq *q, const char *name, const char *type)
{
	char p[PATH_MAX];
	unsigned char *data = NULL;
	size_t len = 0;
	struct tg_err err;

	if (tg_path_fmt(p, sizeof(p), &err, "%s/%s", q->ca->conf.ca_dir, name) < 0 ||
	    tg_read_file(p, &data, &len, 16 << 20, &err) < 0) {
		problem(q, 404, "malformed", "%s: %s", name, err.msg);
		return;
	}
	free(q->resp->body);
	q->resp->body = (char *)data;
	q->resp->body_len = len;
	q->resp->status = 200;
	hdr(q->resp, "Content-Type: %s\r\n", type);
}

/* Verifies the JWS of a POST; sets q->acct for kid requests. 0, or -1 answered. */
static int
authenticate(struct rq *q, int jwk_ok, char *thumb, size_t tl)
{
	char why[300], want[1400];
	EVP_PKEY *key = NULL;
	int r;

	if (tg_jws_parse(q->req->body, q->req->body_len, &q->jws, why, sizeof(why)) < 0) {
		problem(q, 400, "malformed", "%s", why);
		return -1;
	}
	snprintf(want, sizeof(want), "https://%s%s", q->req->host, q->req->path);
	if (strcmp(q->jws.url, want) != 0) {
		problem(q, 401, "unauthorized", "the JWS names the URL %s, but was sent to %s",
		    q->jws.url, want);
		return -1;
	}
	if (q->jws.jwk) {
		if (!jwk_ok) {
			problem(q, 400, "malformed", "this request must be signed by an account (kid)");
			return -1;
		}
		if ((key = tg_jwk_key(q->jws.jwk, why, sizeof(why))) == NULL) {
			problem(q, 400, "badPublicKey", "%s", why);
			return -1;
		}
		if (thumb && tg_jwk_thumbprint(q->jws.jwk, thumb, tl) < 0) {
			EVP_PKEY_free(key);
			problem(q, 400, "badPublicKey", "the jwk has no thumbprint");
			return -1;
		}
	} else {
		size_t bl = strlen(q->base);
		if (strncmp(q->jws.kid, q->base, bl) != 0 || strncmp(q->jws.kid + bl, "acct/", 5) ||
		    strlen(q->jws.kid + bl + 5) >= sizeof(q->acct_id)) {
			problem(q, 400, "accountDoesNotExist", "kid %s is no account of this CA",
			    q->jws.kid);
			return -1;
		}
		snprintf(q->acct_id, sizeof(q->acct_id), "%s", q->jws.kid + bl + 5);
		if ((r = load(q, "acct", q->acct_id, &q->acct)) <= 0) {
			if (r == 0)
				problem(q, 400, "accountDoesNotExist", "no account %s", q->acct_id);
			return -1;
		}
		if (strcmp(sget(q->acct, "status"), "valid") != 0) {
			problem(q, 403, "unauthorized", "account %s is %s", q->acct_id,
			    sget(q->acct, "status"));
			return -1;
		}
		if ((key = tg_jwk_key(json_object_get(q->acct, "jwk"), why, sizeof(why))) == NULL) {
			problem(q, 500, "serverInternal", "account %s's key: %s", q->acct_id, why);
			return -1;
		}
	}
	r = tg_jws_verify(&q->jws, key, why, sizeof(why));
	EVP_PKEY_free(key);
	if (r < 0) {
		problem(q, 403, "unauthorized", "%s", why);
		return -1;
	}
	if (!nonce_take(q->ca, q->jws.nonce)) {
		problem(q, 400, "badNonce", "the nonce is unknown, used or old: get a new one");
		return -1;
	}
	if (q->jws.payload_len) {
		q->payload = json_loadb((char *)q->jws.payload, q->jws.payload_len, 0, NULL);
		if (!json_is_object(q->payload)) {
			problem(q, 400, "malformed", "the JWS payload is not a JSON object");
			return -1;
		}
	}
	return 0;
}

static int
host_ok(const char *h)
{
	size_t n = strlen(h);

	if (n == 0 || n > 260)
		return 0;
	for (; *h; h++)
		if (!isalnum((unsigned char)*h) && !strchr(".-:[]", *h))
			return 0;
	return 1;
}

static void
dispatch(struct rq *q)
{
	const char *p = q->req->path + 6, *m = q->req->method;   /* after "/acme/" */
	char thumb[64] = "";
	int post = !strcmp(m, "POST");

	if (!strcmp(p, "directory") && !post) {
		directory(q);
		return;
	}
	if (!strcmp(p, "new-nonce")) {
		q->resp->status = strcmp(m, "GET") ? 200 : 204;
		return;
	}
	if (!strcmp(p, "ca.pem") && !post) {
		file_answer(q, "ca.crt", "application/pem-certificate-chain");
		return;
	}
	if (!strcmp(p, "crl") && !post) {
		file_answer(q, "crl.der", "application/pkix-crl");
		return;
	}
	if (!strncmp(p, "renewal-info/", 13) && !post) {
		renewal_info(q, p + 13);
		return;
	}
	if (!post) {
		hdr(q->resp, "Allow: POST\r\n");
		problem(q, 405, "malformed", "use POST (POST-as-GET to read)");
		return;
	}
	if (!strcmp(p, "new-account")) {
		if (authenticate(q, 1, thumb, sizeof(thumb)) == 0) {
			if (q->jws.jwk == NULL || !thumb[0])   /* RFC 8555 7.3: jwk, never kid */
				problem(q, 400, "malformed", "newAccount must be signed with the key itself "
				    "(jwk), not an account (kid)");
			else if (q->payload == NULL)
				problem(q, 400, "malformed", "newAccount needs a payload");
			else
				new_account(q, thumb);
		}
		return;
	}
	if (!strcmp(p, "revoke-cert")) {
		if (authenticate(q, 1, NULL, 0) == 0)
			revoke(q);
		return;
	}
	if (authenticate(q, 0, NULL, 0) < 0)
		return;
	if (!strcmp(p, "new-order")) {
		if (q->payload)
			new_order(q);
		else
			problem(q, 400, "malformed", "newOrder needs a payload");
	} else if (!strcmp(p, "key-change")) {
		key_change(q);
	} else if (!strncmp(p, "acct/", 5)) {
		const char *id = p + 5, *sl = strchr(id, '/');
		char a[64];
		size_t n = sl ? (size_t)(sl - id) : strlen(id);
		if (n >= sizeof(a) || (sl && strcmp(sl, "/orders") != 0)) {
			problem(q, 404, "malformed", "no such account URL");
			return;
		}
		memcpy(a, id, n);
		a[n] = '\0';
		account_post(q, a, sl != NULL);
	} else if (!strncmp(p, "order/", 6)) {
		const char *id = p + 6, *sl = strchr(id, '/');
		char o[64];
		size_t n = sl ? (size_t)(sl - id) : strlen(id);
		if (n >= sizeof(o) || (sl && strcmp(sl, "/finalize") != 0)) {
			problem(q, 404, "malformed", "no such order URL");
			return;
		}
		memcpy(o, id, n);
		o[n] = '\0';
		if (sl && q->payload == NULL)
			problem(q, 400, "malformed", "finalize needs a payload with the CSR");
		else if (sl)
			finalize(q, o);
		else
			order_post(q, o);
	} else if (!strncmp(p, "authz/", 6)) {
		authz_post(q, p + 6);
	} else if (!strncmp(p, "chall/", 6)) {
		chall_post(q, p + 6);
	} else if (!strncmp(p, "cert/", 5)) {
		cert_post(q, p + 5);
	} else {
		problem(q, 404, "malformed", "no such ACME resource");
	}
}

void
tg_acmeca_handle(struct tg_acmeca *ca, const struct tg_acmeca_req *req,
    struct tg_acmeca_resp *resp)
{
	struct rq q;
	char nonce[32];

	memset(resp, 0, sizeof(*resp));
	if (ca == NULL || ca->magic != ACMECA_MAGIC) {   /* freed, or never made: a bug */
		resp->status = 500;
		return;
	}
	memset(&q, 0, sizeof(q));
	q.ca = ca;
	q.req = req;
	q.resp = resp;
	if (!host_ok(req->host) || strncmp(req->path, "/acme/", 6) != 0) {
		problem(&q, 400, "malformed", "the request needs a Host header of a name or address");
		return;
	}
	snprintf(q.base, sizeof(q.base), "https://%s/acme/", req->host);
	pthread_mutex_lock(&ca->mu);
	dispatch(&q);
	if (resp->status == 0)   /* a path that failed without a word (out of memory) */
		problem(&q, 500, "serverInternal", "the CA could not answer (out of memory?)");
	nonce_new(ca, nonce, sizeof(nonce));
	pthread_mutex_unlock(&ca->mu);
	if (nonce[0])
		hdr(resp, "Replay-Nonce: %s\r\n", nonce);
	hdr(resp, "Cache-Control: no-store\r\nLink: <%sdirectory>;rel=\"index\"\r\n", q.base);
	json_decref(q.payload);
	json_decref(q.acct);
	tg_jws_clear(&q.jws);
}

/* ---- validation ------------------------------------------------------------------------------ */

int
tg_acmeca_validate(struct tg_acmeca *ca, const char *authz, int idx, char *log, size_t loglen)
{
	struct tg_acmeca_resp resp;
	struct tg_acmeca_req req = { "POST", "-", "/acme/-", NULL, 0 };
	struct tg_acmeca_check k;
	struct rq q;
	json_t *a = NULL, *c, *acct = NULL;
	char why[700] = "", tp[64], now[40], type[32], acct_id[64] = "";
	int r, ok, rv = -1;

	if (ca == NULL || ca->magic != ACMECA_MAGIC) {
		snprintf(log, loglen, "ACME CA: a check of %s/%d reached a CA that is gone", authz, idx);
		return -1;
	}
	memset(&q, 0, sizeof(q));
	memset(&resp, 0, sizeof(resp));
	memset(&k, 0, sizeof(k));
	q.ca = ca;
	q.req = &req;
	q.resp = &resp;
	log[0] = '\0';
	/* what to check, read under the lock; the network is waited on without it */
	pthread_mutex_lock(&ca->mu);
	r = load(&q, "authz", authz, &a);
	if (r == 1) {
		snprintf(acct_id, sizeof(acct_id), "%s", sget(a, "account"));
		r = load(&q, "acct", acct_id, &acct);
	}
	pthread_mutex_unlock(&ca->mu);
	if (r <= 0 || (c = json_array_get(json_object_get(a, "challenges"), (size_t)idx)) == NULL ||
	    tg_jwk_thumbprint(json_object_get(acct, "jwk"), tp, sizeof(tp)) < 0) {
		snprintf(log, loglen, "ACME CA: cannot validate %s/%d: %s", authz, idx,
		    resp.log[0] ? resp.log : "it is gone");
		goto out;
	}
	/* a check asked for twice, or an authorization settled meanwhile:
	 * nothing to look at on the network */
	if (strcmp(sget(c, "status"), "processing") || strcmp(sget(a, "status"), "pending") ||
	    strcmp(sget(acct, "status"), "valid")) {
		snprintf(log, loglen, "ACME CA: %s/%d is no longer waiting for a check", authz, idx);
		goto out;
	}
	snprintf(type, sizeof(type), "%s", sget(c, "type"));
	k.type = !strcmp(type, "http-01") ? TG_ACMECA_HTTP01 : !strcmp(type, "tls-alpn-01") ?
	    TG_ACMECA_TLSALPN01 : TG_ACMECA_DNS01;
	snprintf(k.id_type, sizeof(k.id_type), "%s", sget(json_object_get(a, "identifier"), "type"));
	snprintf(k.id_value, sizeof(k.id_value), "%s",
	    sget(json_object_get(a, "identifier"), "value"));
	snprintf(k.token, sizeof(k.token), "%s", sget(c, "token"));
	snprintf(k.key_auth, sizeof(k.key_auth), "%s.%s", k.token, tp);
	k.http_port = ca->conf.http_port;
	k.tls_port = ca->conf.tls_port;
	k.resolver = ca->conf.resolver;
	ok = tg_acmeca_check(&k, why, sizeof(why)) == 0;
	json_decref(a);
	a = NULL;
	pthread_mutex_lock(&ca->mu);
	/* read again: the client may have deactivated it meanwhile, or changed
	 * or deactivated the account whose key the answer was made with */
	json_decref(acct);
	acct = NULL;
	if (ok) {
		char tp2[64];
		if ((r = load(&q, "acct", acct_id, &acct)) < 0) {
			/* the store failed: nothing is written, the check may be asked
			 * for again (a store hiccup never makes a client start over) */
			pthread_mutex_unlock(&ca->mu);
			snprintf(log, loglen, "ACME CA: %s for %s: %s; not recorded", type, k.id_value,
			    resp.log);
			goto out;
		}
		if (r == 0 || strcmp(sget(acct, "status"), "valid") ||
		    tg_jwk_thumbprint(json_object_get(acct, "jwk"), tp2, sizeof(tp2)) < 0 ||
		    strcmp(tp, tp2) != 0) {
			ok = 0;
			snprintf(why, sizeof(why), "the account's key or status changed while it was "
			    "checked; ask again");
		}
	}
	if (load(&q, "authz", authz, &a) == 1 &&
	    (c = json_array_get(json_object_get(a, "challenges"), (size_t)idx)) != NULL &&
	    !strcmp(sget(c, "status"), "processing")) {
		rfc3339(time(NULL), now, sizeof(now));
		json_object_set_new(c, "status", json_string(ok ? "valid" : "invalid"));
		if (ok) {
			json_object_set_new(c, "validated", json_string(now));
		} else {
			json_object_set_new(c, "error", json_pack("{s:s, s:s, s:i}", "type",
			    E "incorrectResponse", "detail", why, "status", 403));
		}
		if (!strcmp(sget(a, "status"), "pending"))
			json_object_set_new(a, "status", json_string(ok ? "valid" : "invalid"));
		if (save(&q, "authz", authz, a) == 0)
			rv = ok;
	}
	pthread_mutex_unlock(&ca->mu);
	if (rv < 0)
		snprintf(log, loglen, "ACME CA: %s for %s: not recorded: %s", type, k.id_value,
		    resp.log[0] ? resp.log : "the authorization was settled meanwhile");
	else
		snprintf(log, loglen, "ACME CA: %s for %s %s: %s", type, k.id_value, ok ? "valid" :
		    "invalid", ok ? "the key authorization matched" : why);
out:
	json_decref(a);
	json_decref(acct);
	tg_acmeca_resp_clear(&resp);
	return rv;
}

/* ---- life ------------------------------------------------------------------------------------ */

int
tg_acmeca_conf_from(const struct tg_config *cfg, struct tg_acmeca_conf *c, struct tg_err *err)
{
	const char *const *items;
	size_t n, i, o = 0;
	char sd[PATH_MAX];

	memset(c, 0, sizeof(*c));
	tg_store_conf_from(cfg, &c->store);
	if (tg_cfg_path(cfg, TG_CFG_CA_ACME_CA_DIR, c->ca_dir, sizeof(c->ca_dir)) < 0 ||
	    !c->ca_dir[0]) {
		tg_path_expand(sd, sizeof(sd), tg_cfg_str(cfg, TG_CFG_STATE_DIR));
		if (tg_path_fmt(c->ca_dir, sizeof(c->ca_dir), err, "%s/ca", sd) < 0)
			return -1;
	}
	c->lifetime_s = (long)(tg_cfg_num(cfg, TG_CFG_CA_ACME_LIFETIME) / 1000);
	if (c->lifetime_s < 60)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "ca.acme.lifetime (%s): at least 1m",
		    tg_config_origin(cfg, "ca.acme.lifetime"));
	n = tg_cfg_list(cfg, TG_CFG_CA_ACME_ALLOW, &items);
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(c->allow + o, o < sizeof(c->allow) ? sizeof(c->allow) - o : 0,
		    "%s%s", i ? "," : "", items[i]);
	if (o >= sizeof(c->allow))
		return tg_err_set(err, TG_E_CONFIG_VALUE, "ca.acme.allow is too long");
	if (tg_acmeca_policy_check(c->allow, err) < 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "ca.acme.allow (%s): %s",
		    tg_config_origin(cfg, "ca.acme.allow"), err->msg);
	n = tg_cfg_list(cfg, TG_CFG_CA_ACME_CHALLENGES, &items);
	for (i = 0; i < n; i++) {
		if (!strcmp(items[i], "http-01"))
			c->challenges |= TG_ACMECA_HTTP01;
		else if (!strcmp(items[i], "tls-alpn-01"))
			c->challenges |= TG_ACMECA_TLSALPN01;
		else if (!strcmp(items[i], "dns-01"))
			c->challenges |= TG_ACMECA_DNS01;
		else
			return tg_err_set(err, TG_E_CONFIG_VALUE, "ca.acme.challenges (%s): \"%s\" is "
			    "not http-01, tls-alpn-01 or dns-01", tg_config_origin(cfg,
			    "ca.acme.challenges"), items[i]);
	}
	if (c->challenges == 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "ca.acme.challenges (%s): name at least "
		    "one of http-01, tls-alpn-01, dns-01", tg_config_origin(cfg, "ca.acme.challenges"));
	c->http_port = (int)tg_cfg_num(cfg, TG_CFG_CA_ACME_HTTP_PORT);
	c->tls_port = (int)tg_cfg_num(cfg, TG_CFG_CA_ACME_TLS_PORT);
	if (c->http_port < 1 || c->http_port > 65535 || c->tls_port < 1 || c->tls_port > 65535)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "ca.acme.http_port and ca.acme.tls_port "
		    "are ports, 1 to 65535");
	snprintf(c->resolver, sizeof(c->resolver), "%s", tg_cfg_str(cfg, TG_CFG_CA_ACME_RESOLVER));
	if (c->resolver[0]) {
		char h[64];
		struct in_addr ia;
		size_t hl = strcspn(c->resolver, ":");
		if (hl >= sizeof(h) || (memcpy(h, c->resolver, hl), h[hl] = '\0',
		    inet_pton(AF_INET, h, &ia) != 1))
			return tg_err_set(err, TG_E_CONFIG_VALUE, "ca.acme.resolver (%s): write an "
			    "IPv4 address, with :PORT if not 53", tg_config_origin(cfg,
			    "ca.acme.resolver"));
	}
	return 0;
}

struct tg_acmeca *
tg_acmeca_new(const struct tg_acmeca_conf *c, struct tg_err *err)
{
	struct tg_acmeca *ca = calloc(1, sizeof(*ca));
	STACK_OF(X509) *one;

	if (ca == NULL) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		return NULL;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);   /* before any pool thread validates */
	ca->conf = *c;
	pthread_mutex_init(&ca->mu, NULL);
	ca->magic = ACMECA_MAGIC;
	if (tg_ca_load(c->ca_dir, &ca->ca, err) < 0) {
		char m[sizeof(err->msg)];
		snprintf(m, sizeof(m), "%s", err->msg);
		tg_err_set(err, err->code, "the ACME CA signs with %s: %s (tlsgate ca init makes "
		    "one)", c->ca_dir, m);
		goto fail;
	}
	one = sk_X509_new_null();
	if (one && sk_X509_push(one, ca->ca.cert))
		ca->ca_pem = tg_certs_pem(one);
	sk_X509_free(one);
	if (ca->ca_pem == NULL) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		goto fail;
	}
	if ((ca->st = tg_store_open_conf(&c->store, 0, err)) == NULL)
		goto fail;
	return ca;
fail:
	tg_acmeca_free(ca);
	return NULL;
}

void
tg_acmeca_free(struct tg_acmeca *ca)
{
	if (ca == NULL)
		return;
	tg_ca_clear(&ca->ca);
	free(ca->ca_pem);
	tg_store_free(ca->st);
	pthread_mutex_destroy(&ca->mu);
	ca->magic = 0;
	free(ca);
}
