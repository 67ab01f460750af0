/*
 * The ACME server's JSON, read into fixed structs: directory, order,
 * authorization with its challenges, renewal information and problem
 * documents. Everything here is input from the network, so every field is
 * checked for type and length and anything else is an error in words; this
 * is the surface fuzz/fuzz_acme_json.c exercises.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "acme_wire.h"
#include "error.h"

static json_t *
load(const char *json, size_t len, const char *what, struct tg_err *err)
{
	json_error_t je;
	json_t *j = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);

	if (j == NULL) {
		tg_err_set(err, TG_E_ACME, "the ACME server's %s is not JSON (line %d: %s)", what,
		    je.line, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		tg_err_set(err, TG_E_ACME, "the ACME server's %s is not a JSON object", what);
		return NULL;
	}
	return j;
}

/* Copies a string member; a missing member leaves "" and is not an error
 * unless required. Control characters are refused: these strings end up
 * in log lines and HTTP requests. */
static int
str(json_t *o, const char *key, char *buf, size_t len, int required, const char *what,
    struct tg_err *err)
{
	json_t *v = json_object_get(o, key);
	const char *s;
	size_t i, n;

	buf[0] = '\0';
	if (v == NULL || json_is_null(v)) {
		if (required)
			return tg_err_set(err, TG_E_ACME, "the ACME server's %s has no \"%s\"",
			    what, key);
		return 0;
	}
	if (!json_is_string(v))
		return tg_err_set(err, TG_E_ACME, "the ACME server's %s: \"%s\" is not a string",
		    what, key);
	s = json_string_value(v);
	n = json_string_length(v);
	if (n >= len)
		return tg_err_set(err, TG_E_ACME, "the ACME server's %s: \"%s\" is longer than "
		    "%zu bytes", what, key, len - 1);
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return tg_err_set(err, TG_E_ACME, "the ACME server's %s: \"%s\" has "
			    "control characters", what, key);
	memcpy(buf, s, n);
	buf[n] = '\0';
	return 0;
}

static int
is_url(const char *s)
{
	return !strncmp(s, "https://", 8) || !strncmp(s, "http://", 7);
}

/* meta.profiles (draft-ietf-acme-profiles): an object whose keys are the
 * profile names; kept as "a, b, c". Names are short tokens. */
static int
profiles(json_t *p, char *buf, size_t len, struct tg_err *err)
{
	(void)err;
	const char *k;
	json_t *v;
	size_t n = 0;

	buf[0] = '\0';
	if (p == NULL || !json_is_object(p))
		return 0;
	json_object_foreach(p, k, v) {
		size_t i, kl = strlen(k);
		(void)v;
		/* a name we could not send safely is left out, not fatal: it
		 * only cannot be chosen */
		if (kl == 0 || kl > 64)
			continue;
		for (i = 0; i < kl; i++)
			if (!isalnum((unsigned char)k[i]) && !strchr("-_.", k[i]))
				break;
		if (i < kl)
			continue;
		if (n + kl + 3 > len)
			break;   /* more than fit: the first ones are kept */
		n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", k);
	}
	return 0;
}

int
tg_acme_is_profile(const struct tg_acme_dir *d, const char *name)
{
	const char *p = d->profiles;
	size_t nl = strlen(name);

	while (*p) {
		size_t l = strcspn(p, ",");
		if (l == nl && !strncmp(p, name, nl))
			return 1;
		p += l;
		p += strspn(p, ", ");
	}
	return 0;
}

int
tg_acme_parse_directory(const char *json, size_t len, struct tg_acme_dir *d,
    struct tg_err *err)
{
	json_t *j = load(json, len, "directory", err), *meta;
	int rv = -1;

	memset(d, 0, sizeof(*d));
	if (j == NULL)
		return -1;
	if (str(j, "newNonce", d->new_nonce, sizeof(d->new_nonce), 1, "directory", err) < 0 ||
	    str(j, "newAccount", d->new_account, sizeof(d->new_account), 1, "directory", err) < 0 ||
	    str(j, "newOrder", d->new_order, sizeof(d->new_order), 1, "directory", err) < 0 ||
	    str(j, "renewalInfo", d->renewal_info, sizeof(d->renewal_info), 0, "directory", err) < 0)
		goto out;
	if (!is_url(d->new_nonce) || !is_url(d->new_account) || !is_url(d->new_order) ||
	    (d->renewal_info[0] && !is_url(d->renewal_info))) {
		tg_err_set(err, TG_E_ACME, "the ACME directory has a resource that is not an "
		    "http(s) URL; is tls.acme.directory an ACME directory?");
		goto out;
	}
	if ((meta = json_object_get(j, "meta")) != NULL && json_is_object(meta)) {
		if (str(meta, "termsOfService", d->terms, sizeof(d->terms), 0, "directory", err) < 0)
			goto out;
		d->eab_required = json_is_true(json_object_get(meta, "externalAccountRequired"));
		if (profiles(json_object_get(meta, "profiles"), d->profiles, sizeof(d->profiles),
		    err) < 0)
			goto out;
	}
	rv = 0;
out:
	json_decref(j);
	return rv;
}

void
tg_acme_order_clear(struct tg_acme_order *o)
{
	while (o->nauthz)
		free(o->authz[--o->nauthz]);
}

static void
problem_of(json_t *p, char *buf, size_t len)
{
	char type[256] = "", detail[512] = "", value[256] = "", sd[400] = "";
	char sub[sizeof(value) + sizeof(sd) + 8] = "";
	json_t *subs, *s0, *id;
	const char *t;
	struct tg_err e;

	buf[0] = '\0';
	if (!json_is_object(p))
		return;
	str(p, "type", type, sizeof(type), 0, "problem", &e);
	str(p, "detail", detail, sizeof(detail), 0, "problem", &e);
	/* the first subproblem names the identifier it is about */
	subs = json_object_get(p, "subproblems");
	if (json_is_array(subs) && (s0 = json_array_get(subs, 0)) != NULL && json_is_object(s0)) {
		str(s0, "detail", sd, sizeof(sd), 0, "problem", &e);
		id = json_object_get(s0, "identifier");
		if (json_is_object(id))
			str(id, "value", value, sizeof(value), 0, "problem", &e);
		if (sd[0])
			snprintf(sub, sizeof(sub), "; %s%s%s", value, value[0] ? ": " : "", sd);
	}
	t = strncmp(type, "urn:ietf:params:acme:error:", 27) == 0 ? type + 27 : type;
	snprintf(buf, len, "%s%s(%s)%s", detail[0] ? detail : "no detail given",
	    detail[0] ? " " : " ", t[0] ? t : "no type", sub);
}

int
tg_acme_problem_words(const char *json, size_t len, char *buf, size_t buflen)
{
	struct tg_err e;
	json_t *j = load(json, len, "problem document", &e);

	buf[0] = '\0';
	if (j == NULL)
		return -1;
	problem_of(j, buf, buflen);
	json_decref(j);
	return 0;
}

int
tg_acme_parse_order(const char *json, size_t len, struct tg_acme_order *o,
    struct tg_err *err)
{
	json_t *j = load(json, len, "order", err), *a, *v;
	size_t i;
	int rv = -1;

	memset(o, 0, sizeof(*o));
	if (j == NULL)
		return -1;
	if (str(j, "status", o->status, sizeof(o->status), 1, "order", err) < 0 ||
	    str(j, "finalize", o->finalize, sizeof(o->finalize), 1, "order", err) < 0 ||
	    str(j, "certificate", o->certificate, sizeof(o->certificate), 0, "order", err) < 0)
		goto out;
	problem_of(json_object_get(j, "error"), o->error, sizeof(o->error));
	a = json_object_get(j, "authorizations");
	if (!json_is_array(a)) {
		tg_err_set(err, TG_E_ACME, "the ACME server's order has no \"authorizations\" list");
		goto out;
	}
	if (json_array_size(a) > TG_ACME_MAX_AUTHZ) {
		tg_err_set(err, TG_E_ACME, "the ACME server's order has %zu authorizations, more "
		    "than the %d tlsgate handles", json_array_size(a), TG_ACME_MAX_AUTHZ);
		goto out;
	}
	json_array_foreach(a, i, v) {
		if (!json_is_string(v) || json_string_length(v) >= 512 ||
		    !is_url(json_string_value(v)) || strpbrk(json_string_value(v), "\"\\ \r\n")) {
			tg_err_set(err, TG_E_ACME, "the ACME server's order has an authorization that "
			    "is not a URL");
			goto out;
		}
		if ((o->authz[o->nauthz] = strdup(json_string_value(v))) == NULL) {
			tg_err_set(err, TG_E_INTERNAL, "out of memory");
			goto out;
		}
		o->nauthz++;
	}
	if (o->finalize[0] && !is_url(o->finalize)) {
		tg_err_set(err, TG_E_ACME, "the ACME server's order: finalize is not a URL");
		goto out;
	}
	rv = 0;
out:
	if (rv < 0)
		tg_acme_order_clear(o);
	json_decref(j);
	return rv;
}

int
tg_acme_parse_authz(const char *json, size_t len, struct tg_acme_authz *a,
    struct tg_err *err)
{
	json_t *j = load(json, len, "authorization", err), *id, *cs, *c;
	size_t i;
	int rv = -1;

	memset(a, 0, sizeof(*a));
	if (j == NULL)
		return -1;
	if (str(j, "status", a->status, sizeof(a->status), 1, "authorization", err) < 0)
		goto out;
	id = json_object_get(j, "identifier");
	if (!json_is_object(id) ||
	    str(id, "type", a->id_type, sizeof(a->id_type), 1, "authorization", err) < 0 ||
	    str(id, "value", a->id_value, sizeof(a->id_value), 1, "authorization", err) < 0) {
		if (!err || !err->code)
			tg_err_set(err, TG_E_ACME, "the ACME server's authorization has no identifier");
		goto out;
	}
	a->wildcard = json_is_true(json_object_get(j, "wildcard"));
	cs = json_object_get(j, "challenges");
	if (!json_is_array(cs)) {
		tg_err_set(err, TG_E_ACME, "the ACME server's authorization for %s has no "
		    "challenges", a->id_value);
		goto out;
	}
	json_array_foreach(cs, i, c) {
		struct tg_acme_chall *ch;
		if (a->nchall == sizeof(a->chall) / sizeof(a->chall[0]))
			break;
		if (!json_is_object(c))
			continue;
		ch = &a->chall[a->nchall];
		if (str(c, "type", ch->type, sizeof(ch->type), 1, "challenge", err) < 0 ||
		    str(c, "url", ch->url, sizeof(ch->url), 1, "challenge", err) < 0 ||
		    str(c, "token", ch->token, sizeof(ch->token), 0, "challenge", err) < 0 ||
		    str(c, "status", ch->status, sizeof(ch->status), 0, "challenge", err) < 0)
			goto out;
		if (!is_url(ch->url)) {
			tg_err_set(err, TG_E_ACME, "the ACME server's challenge URL is not a URL");
			goto out;
		}
		/* tokens go into URL paths and file-like lookups: base64url only */
		if (strspn(ch->token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789-_") != strlen(ch->token)) {
			tg_err_set(err, TG_E_ACME, "the ACME server's challenge token is not base64url");
			goto out;
		}
		problem_of(json_object_get(c, "error"), ch->error, sizeof(ch->error));
		a->nchall++;
	}
	rv = 0;
out:
	json_decref(j);
	return rv;
}

int
tg_acme_parse_time(const char *s, time_t *out)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, n = 0, oh = 0, om = 0;
	const char *p;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
	    n < 19)
		return -1;
	p = s + n;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
	    sscanf(p + 1, "%2d:%2d", &oh, &om) == 2) {
		if (*p == '-')
			oh = -oh, om = -om;
		p += 6;
	} else {
		return -1;
	}
	if (*p || y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60 || h < 0 || mi < 0 || sec < 0 || oh > 23 || oh < -23)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	*out = t - (time_t)oh * 3600 - (time_t)om * 60;
	return 0;
}

int
tg_acme_parse_ari(const char *json, size_t len, struct tg_acme_ari *r, struct tg_err *err)
{
	json_t *j = load(json, len, "renewal information", err), *w;
	char s[64], e[64];
	int rv = -1;

	memset(r, 0, sizeof(*r));
	if (j == NULL)
		return -1;
	w = json_object_get(j, "suggestedWindow");
	if (!json_is_object(w) ||
	    str(w, "start", s, sizeof(s), 1, "renewal information", err) < 0 ||
	    str(w, "end", e, sizeof(e), 1, "renewal information", err) < 0)
		goto out;
	if (tg_acme_parse_time(s, &r->start) < 0 || tg_acme_parse_time(e, &r->end) < 0 ||
	    r->end < r->start) {
		tg_err_set(err, TG_E_ACME, "the ACME server's renewal window is not two RFC 3339 "
		    "times in order");
		goto out;
	}
	if (str(j, "explanationURL", r->explanation, sizeof(r->explanation), 0,
	    "renewal information", err) < 0)
		goto out;
	rv = 0;
out:
	json_decref(j);
	return rv;
}
