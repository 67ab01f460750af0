/*
 * The cluster's pins in etcd. A known file in one value cannot hold a
 * fleet (etcd takes values of 1.5 MiB: some 15,000 pins) and every first
 * contact would rewrite all of it under one lock. So each identity is one
 * key, PREFIX pins/NAME/IDENTITY (percent-encoded), its value the file's
 * lines for it ("IDENTITY PIN # comment\n", one a pin):
 *
 *   first contact   one transaction: create the key if it does not exist,
 *                   else read it. Two nodes meeting the same new identity
 *                   at once: one creates, the other reads the winner's pin.
 *   trust add       read, then put if the key did not change meanwhile.
 *   trust remove    NAME's own value (what `store copy` brought, or an older
 *                   cluster wrote) and the identity's key, in one
 *                   transaction conditioned on both.
 *
 * No lock is taken: each write is conditioned on what it read (the
 * identity's key and NAME's own value), and retried when another node
 * wrote first. Nodes learn of new keys by their
 * watch (store_follow.c appends them to state_dir's NAME.pins).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "error.h"
#include "pins.h"
#include "store.h"
#include "store_etcd.h"
#include "util.h"

#define TRIES 8                  /* writes lost to another node's, then give up */
#define KEY_MAX 4400
#define PAGE 1000

void
tg_known_etcd_idkey(char *buf, size_t len, const char *identity)
{
	size_t n = 0;

	for (; *identity && n + 4 < len; identity++) {
		unsigned char c = (unsigned char)*identity;
		if (c == '%' || c == '/' || c <= 0x20 || c >= 0x7f)
			n += (size_t)snprintf(buf + n, len - n, "%%%02X", c);
		else
			buf[n++] = (char)c;
	}
	buf[n] = '\0';
}

static int
key_of(struct tg_store *st, const char *name, const char *identity, char *buf, size_t len,
    struct tg_err *err)
{
	struct etcd_impl *im = st->impl;
	char id[3 * 1024 + 8];

	if (identity == NULL)
		return snprintf(buf, len, "%s%s", im->prefix, name) < (int)len ? 0 :
		    tg_err_set(err, TG_E_USAGE, "%s: name too long for the store", name);
	tg_known_etcd_idkey(id, sizeof(id), identity);
	if (snprintf(buf, len, "%spins/%s/%s", im->prefix, name, id) >= (int)len)
		return tg_err_set(err, TG_E_USAGE, "%s: identity too long for the store", identity);
	return 0;
}

static int get_one(struct tg_store *st, const char *key, char **val, size_t *len,
    long long *mod, struct tg_err *err);

static int
call(struct tg_store *st, const char *path, json_t *req, json_t **rep, struct tg_err *err)
{
	struct etcd_impl *im = st->impl;
	int rv;

	if (req == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	rv = tg_etcd_call(&im->conf, &im->cur, im->curl, path, req, rep, err);
	json_decref(req);
	return rv;
}

/* A kv of a range reply: its value (malloc'ed, NUL-terminated) and
 * mod_revision; 0 for no kv. */
static int
kv_value(json_t *kv, char **val, size_t *len, long long *mod, struct tg_err *err)
{
	unsigned char *v = NULL;
	const char *b = json_string_value(json_object_get(kv, "value"));

	*val = NULL;
	*len = 0;
	*mod = 0;
	if (kv == NULL)
		return 0;
	if (tg_etcd_unb64(b ? b : "", &v, len) < 0)
		return tg_err_set(err, TG_E_IO, "the store sent a value that is not base64");
	if ((*val = malloc(*len + 1)) == NULL) {
		OPENSSL_free(v);
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	}
	memcpy(*val, v, *len + 1);
	OPENSSL_free(v);
	*mod = tg_etcd_ll(json_object_get(kv, "mod_revision"));
	return 1;
}

/* NAME's own value only when it exists: its mod_revision first (no value
 * travels: a fleet's first contacts meet an absent one), then the value */
static int
get_base(struct tg_store *st, const char *key, char **val, size_t *len, long long *mod,
    struct tg_err *err)
{
	json_t *rep = NULL;
	int found;

	*val = NULL;
	*len = 0;
	*mod = 0;
	if (call(st, "/v3/kv/range", json_pack("{s:o,s:b}", "key", tg_etcd_key_json(key),
	    "keys_only", 1), &rep, err) < 0)
		return -1;
	found = json_array_size(json_object_get(rep, "kvs")) > 0;
	json_decref(rep);
	return found ? get_one(st, key, val, len, mod, err) : 0;
}

static int
get_one(struct tg_store *st, const char *key, char **val, size_t *len, long long *mod,
    struct tg_err *err)
{
	json_t *rep = NULL;
	int rv;

	if (call(st, "/v3/kv/range", json_pack("{s:o}", "key", tg_etcd_key_json(key)), &rep,
	    err) < 0)
		return -1;
	rv = kv_value(json_array_get(json_object_get(rep, "kvs"), 0), val, len, mod, err);
	json_decref(rep);
	return rv;
}

/* The compare that says key is as read: mod_revision, or absent. */
static json_t *
unchanged(const char *key, long long mod)
{
	char r[32];

	snprintf(r, sizeof(r), "%lld", mod);
	return mod > 0 ? json_pack("{s:o,s:s,s:s,s:s}", "key", tg_etcd_key_json(key), "target",
	    "MOD", "result", "EQUAL", "mod_revision", r) :
	    json_pack("{s:o,s:s,s:s,s:s}", "key", tg_etcd_key_json(key), "target", "CREATE",
	    "result", "EQUAL", "create_revision", "0");
}

static json_t *
put_op(const char *key, const char *val, size_t len)
{
	char *v = tg_etcd_b64(val, len);
	json_t *op = v ? json_pack("{s:{s:o,s:s}}", "request_put", "key", tg_etcd_key_json(key),
	    "value", v) : NULL;

	free(v);
	return op;
}

static json_t *
del_op(const char *key)
{
	return json_pack("{s:{s:o}}", "request_delete_range", "key", tg_etcd_key_json(key));
}

static enum tg_pin_match
lines_match(const char *text, size_t len, const char *identity, const char *pin, char *exp)
{
	struct tg_err err;
	struct tg_known *k = tg_known_parse(text, len, "store", &err);
	enum tg_pin_match m = k ? tg_known_lookup(k, identity, pin, NULL, exp, 64) : TG_PIN_UNKNOWN;

	tg_known_free(k);
	return m;
}

int
tg_known_etcd_record(struct tg_store *st, const char *name, const char *identity,
    const char *pin, const char *comment, int first, struct tg_err *err)
{
	char key[KEY_MAX], fkey[KEY_MAX], line[2200], *cur = NULL, *nv, *fv = NULL, exp[64] = "";
	size_t clen = 0, flen = 0;
	long long mod = 0, fmod = 0;
	int n, tries, r;

	if (!tg_store_is_etcd(st))
		return tg_err_set(err, TG_E_INTERNAL, "pins: not an etcd store");
	if (key_of(st, name, identity, key, sizeof(key), err) < 0 ||
	    key_of(st, name, NULL, fkey, sizeof(fkey), err) < 0)
		return -1;
	/* NAME's own value (what `store copy` or an older cluster wrote) may
	 * pin the identity already: a first contact is decided against it
	 * too, and the write below is conditioned on it not changing */
	if ((r = get_base(st, fkey, &fv, &flen, &fmod, err)) < 0)
		return -1;
	if (r == 1) {
		enum tg_pin_match m = lines_match(fv, flen, identity, pin, exp);
		free(fv);
		if (m == TG_PIN_MATCH)
			return 0;
		if (m == TG_PIN_MISMATCH && first)
			return tg_known_taken(identity, pin, "the cluster's store", exp, err);
	}
	n = snprintf(line, sizeof(line), "%s %s%s%s\n", identity, pin, comment ? " # " : "",
	    comment ? comment : "");
	if (n < 0 || (size_t)n >= sizeof(line))
		return tg_err_set(err, TG_E_USAGE, "%s: identity or comment too long", identity);
	for (tries = 0; tries < TRIES; tries++) {
		json_t *rep = NULL, *req, *got;
		/* as if absent (the usual case: one round trip); what is there
		 * comes back when it is not */
		if (cur == NULL) {
			req = json_pack("{s:[o,o],s:[o],s:[{s:{s:o}}]}", "compare", unchanged(key, 0),
			    unchanged(fkey, fmod), "success", put_op(key, line, (size_t)n), "failure",
			    "request_range", "key", tg_etcd_key_json(key));
		} else {
			if ((nv = malloc(clen + (size_t)n + 2)) == NULL) {
				free(cur);
				return tg_err_set(err, TG_E_INTERNAL, "out of memory");
			}
			memcpy(nv, cur, clen);
			if (clen && nv[clen - 1] != '\n')
				nv[clen++] = '\n';
			memcpy(nv + clen, line, (size_t)n);
			req = json_pack("{s:[o,o],s:[o],s:[{s:{s:o}}]}", "compare", unchanged(key, mod),
			    unchanged(fkey, fmod), "success", put_op(key, nv, clen + (size_t)n), "failure",
			    "request_range", "key", tg_etcd_key_json(key));
			free(nv);
		}
		free(cur);
		cur = NULL;
		if (call(st, "/v3/kv/txn", req, &rep, err) < 0)
			return -1;
		if (json_is_true(json_object_get(rep, "succeeded"))) {
			json_decref(rep);
			return 0;
		}
		got = json_object_get(json_object_get(json_array_get(json_object_get(rep, "responses"),
		    0), "response_range"), "kvs");
		r = kv_value(json_array_get(got, 0), &cur, &clen, &mod, err);
		json_decref(rep);
		if (r < 0)
			return -1;
		{
			/* lost to another write: NAME's value may have changed too (a
			 * removal, a copy); decide again against it */
			int fr;
			if ((fr = get_base(st, fkey, &fv, &flen, &fmod, err)) < 0) {
				free(cur);
				return -1;
			}
			if (fr == 1) {
				enum tg_pin_match m = lines_match(fv, flen, identity, pin, exp);
				free(fv);
				fv = NULL;
				if (m == TG_PIN_MATCH || (m == TG_PIN_MISMATCH && first)) {
					free(cur);
					return m == TG_PIN_MATCH ? 0 :
					    tg_known_taken(identity, pin, "the cluster's store", exp, err);
				}
			}
		}
		if (r == 0)
			continue;   /* the key is absent (removed meanwhile): create it */
		switch (lines_match(cur, clen, identity, pin, exp)) {
		case TG_PIN_MATCH:
			free(cur);
			return 0;   /* recorded by now (another node met the same key) */
		case TG_PIN_MISMATCH:
			if (first) {
				free(cur);
				return tg_known_taken(identity, pin, "the cluster's store", exp, err);
			}
			break;
		case TG_PIN_UNKNOWN:
			break;
		}
	}
	free(cur);
	return tg_err_set(err, TG_E_LOCKED, "%s: the store's pins for %s kept changing under this "
	    "write (%d tries); try again", name, identity, TRIES);
}

int
tg_known_etcd_remove(struct tg_store *st, const char *name, const char *identity,
    const char *pin, size_t *removed, struct tg_err *err)
{
	char fkey[KEY_MAX], pkey[KEY_MAX], *fv = NULL, *pv = NULL;
	size_t flen, plen, rf, rp;
	long long fmod, pmod;
	int tries, fr, pr;

	*removed = 0;
	if (!tg_store_is_etcd(st))
		return tg_err_set(err, TG_E_INTERNAL, "pins: not an etcd store");
	if (key_of(st, name, NULL, fkey, sizeof(fkey), err) < 0 ||
	    key_of(st, name, identity, pkey, sizeof(pkey), err) < 0)
		return -1;
	for (tries = 0; tries < TRIES; tries++) {
		json_t *req, *ops, *rep = NULL;
		int ok;

		if ((fr = get_one(st, fkey, &fv, &flen, &fmod, err)) < 0 ||
		    (pr = get_one(st, pkey, &pv, &plen, &pmod, err)) < 0) {
			free(fv);
			return -1;
		}
		rf = fv ? tg_known_drop(fv, &flen, identity, pin) : 0;
		rp = pv ? tg_known_drop(pv, &plen, identity, pin) : 0;
		if (rf + rp == 0) {
			free(fv);
			free(pv);
			return 0;
		}
		ops = json_array();
		if (rf)
			json_array_append_new(ops, put_op(fkey, fv, flen));
		if (rp)
			json_array_append_new(ops, plen ? put_op(pkey, pv, plen) : del_op(pkey));
		req = json_pack("{s:[o,o],s:o}", "compare", unchanged(fkey, fmod), unchanged(pkey, pmod),
		    "success", ops);
		free(fv);
		free(pv);
		fv = pv = NULL;
		if (call(st, "/v3/kv/txn", req, &rep, err) < 0)
			return -1;
		ok = json_is_true(json_object_get(rep, "succeeded"));
		json_decref(rep);
		if (ok) {
			*removed = rf + rp;
			return 0;
		}
	}
	return tg_err_set(err, TG_E_LOCKED, "%s: the store's pins for %s kept changing under this "
	    "removal (%d tries); try again", name, identity, TRIES);
}

int
tg_known_etcd_pins(struct tg_store *st, const char *name, char **text, size_t *len,
    long long *rev, struct tg_err *err)
{
	struct etcd_impl *im;
	char start[KEY_MAX], end[KEY_MAX];
	long long mod, at = 0;
	int r;

	*text = NULL;
	*len = 0;
	if (!tg_store_is_etcd(st))
		return tg_err_set(err, TG_E_INTERNAL, "pins: not an etcd store");
	im = st->impl;
	if (snprintf(start, sizeof(start), "%spins/%s/", im->prefix, name) >= (int)sizeof(start) ||
	    strlen(start) > 500)
		return 0;   /* no pin keys can be below a name that long */
	snprintf(end, sizeof(end), "%s", start);
	for (;;) {
		json_t *req = json_pack("{s:o,s:o,s:I}", "key", tg_etcd_key_json(start), "range_end",
		    tg_etcd_prefix_end(end), "limit", (json_int_t)PAGE), *rep = NULL, *kv;
		const char *last = NULL;
		size_t i;
		int more;

		/* every page at the first one's revision: one consistent list */
		if (req && at)
			json_object_set_new(req, "revision", json_integer(at));
		if (call(st, "/v3/kv/range", req, &rep, err) < 0)
			goto fail;
		if (!at)
			at = tg_etcd_ll(json_object_get(json_object_get(rep, "header"), "revision"));
		json_array_foreach(json_object_get(rep, "kvs"), i, kv) {
			char *v;
			size_t vl;
			if (kv_value(kv, &v, &vl, &mod, err) < 0) {
				json_decref(rep);
				goto fail;
			}
			r = tg_buf_append(text, len, 1u << 30, v, vl);
			if (r == 0 && vl && v[vl - 1] != '\n')
				r = tg_buf_append(text, len, 1u << 30, "\n", 1);
			free(v);
			if (r < 0) {
				json_decref(rep);
				tg_err_set(err, TG_E_INTERNAL, "out of memory");
				goto fail;
			}
			last = json_string_value(json_object_get(kv, "key"));
		}
		more = json_is_true(json_object_get(rep, "more")) && last != NULL;
		if (more) {
			unsigned char *lk = NULL;
			size_t lkl = 0;
			if (tg_etcd_unb64(last, &lk, &lkl) < 0 || lkl + 2 > sizeof(start)) {
				OPENSSL_free(lk);
				json_decref(rep);
				tg_err_set(err, TG_E_IO, "the store sent a key that cannot be followed");
				goto fail;
			}
			memcpy(start, lk, lkl);
			start[lkl] = '\x01';   /* just past it (keys are C strings here) */
			start[lkl + 1] = '\0';
			OPENSSL_free(lk);
		}
		json_decref(rep);
		if (!more)
			break;
	}
	if (rev)
		*rev = at;
	return 0;
fail:
	free(*text);
	*text = NULL;
	*len = 0;
	return -1;
}

int
tg_known_etcd_text(struct tg_store *st, const char *name, char **text, size_t *len,
    struct tg_err *err)
{
	char fkey[KEY_MAX], *fv = NULL, *pv = NULL;
	size_t flen = 0, plen = 0;
	long long mod;
	int r;

	*text = NULL;
	*len = 0;
	if (!tg_store_is_etcd(st))
		return tg_err_set(err, TG_E_INTERNAL, "pins: not an etcd store");
	if (key_of(st, name, NULL, fkey, sizeof(fkey), err) < 0 ||
	    (r = get_one(st, fkey, &fv, &flen, &mod, err)) < 0)
		return -1;
	if (tg_known_etcd_pins(st, name, &pv, &plen, NULL, err) < 0) {
		free(fv);
		return -1;
	}
	if (plen == 0) {   /* no pins: the value as it is, byte for byte */
		*text = fv;
		*len = flen;
		free(pv);
		return 0;
	}
	if ((r == 1 && tg_buf_append(text, len, 1u << 30, fv, flen) < 0) ||
	    (flen && fv[flen - 1] != '\n' && tg_buf_append(text, len, 1u << 30, "\n", 1) < 0) ||
	    tg_buf_append(text, len, 1u << 30, pv, plen) < 0) {
		free(fv);
		free(pv);
		free(*text);
		*text = NULL;
		*len = 0;
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	}
	free(fv);
	free(pv);
	return 0;
}
