/*
 * Which names an ACME account may get, and the enrolments (external
 * account binding keys) that carry that policy. A policy is a list:
 *   fleet.example          that name
 *   *.fleet.example        any name below fleet.example (and wildcards there)
 *   *                      any DNS name
 *   ip:10.0.0.0/8          an address in that network (ip:10.1.2.3 one)
 *   uri:spiffe://fleet/...* URIs with that prefix (no star at the end: that URI)
 * "dns:" may be written before a name. URIs are never validated by ACME
 * (there is no challenge for them): the enrolment is their authorization.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "acme_wire.h"
#include "acmeca.h"
#include "acmeca_int.h"
#include "error.h"

int
tg_acmeca_dns_ok(const char *name)
{
	size_t n = strlen(name), label = 0, i;

	if (!strncmp(name, "*.", 2))
		name += 2, n -= 2;
	if (n == 0 || n > 253 || name[n - 1] == '.' || name[0] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (ch == '.') {
			if (label == 0 || name[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!(islower(ch) || isdigit(ch) || ch == '-') || (label == 0 && ch == '-') ||
		    ++label > 63)
			return 0;
	}
	return name[n - 1] != '-';
}

/* addr in "net/bits" (or the one address net)? */
static int
ip_in(const char *net, const char *addr)
{
	unsigned char a[16], b[16];
	char nb[64];
	const char *slash = strchr(net, '/');
	int fa = strchr(addr, ':') ? AF_INET6 : AF_INET, fn, bits, i;
	size_t nl = slash ? (size_t)(slash - net) : strlen(net);

	if (nl >= sizeof(nb))
		return 0;
	memcpy(nb, net, nl);
	nb[nl] = '\0';
	fn = strchr(nb, ':') ? AF_INET6 : AF_INET;
	if (fa != fn || inet_pton(fn, nb, b) != 1 || inet_pton(fa, addr, a) != 1)
		return 0;
	bits = slash ? atoi(slash + 1) : (fn == AF_INET ? 32 : 128);
	if (bits < 0 || bits > (fn == AF_INET ? 32 : 128))
		return 0;
	for (i = 0; bits > 0; i++, bits -= 8) {
		unsigned char m = bits >= 8 ? 0xff : (unsigned char)(0xff << (8 - bits));
		if ((a[i] & m) != (b[i] & m))
			return 0;
	}
	return 1;
}

static int
one_allows(const char *pat, const char *type, const char *value)
{
	size_t pl, vl = strlen(value);

	if (!strncmp(pat, "ip:", 3))
		return !strcmp(type, "ip") && ip_in(pat + 3, value);
	if (!strncmp(pat, "uri:", 4)) {
		pat += 4;
		pl = strlen(pat);
		if (strcmp(type, "uri") != 0)
			return 0;
		if (pl && pat[pl - 1] == '*')
			return !strncmp(value, pat, pl - 1);
		return !strcmp(value, pat);
	}
	if (!strncmp(pat, "dns:", 4))
		pat += 4;
	if (strcmp(type, "dns") != 0)
		return 0;
	if (!strcmp(pat, "*"))
		return 1;
	if (!strncmp(pat, "*.", 2)) {
		pl = strlen(pat + 1);   /* ".fleet.example" */
		return vl > pl && !strcasecmp(value + vl - pl, pat + 1);
	}
	return !strcasecmp(pat, value);
}

int
tg_acmeca_allowed(const char *allow, const char *type, const char *value)
{
	char item[300];
	const char *p = allow;

	while (*p) {
		size_t n = strcspn(p, ",");
		size_t s = 0;
		while (s < n && isspace((unsigned char)p[s]))
			s++;
		if (n - s < sizeof(item)) {
			size_t e = n;
			while (e > s && isspace((unsigned char)p[e - 1]))
				e--;
			memcpy(item, p + s, e - s);
			item[e - s] = '\0';
			if (item[0] && one_allows(item, type, value))
				return 1;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

int
tg_acmeca_policy_check(const char *allow, struct tg_err *err)
{
	char item[300];
	const char *p = allow;

	while (*p) {
		size_t n = strcspn(p, ","), s = 0, e = n;
		while (s < n && isspace((unsigned char)p[s]))
			s++;
		while (e > s && isspace((unsigned char)p[e - 1]))
			e--;
		if (e - s >= sizeof(item))
			return tg_err_set(err, TG_E_USAGE, "policy entry too long: %.40s...", p + s);
		memcpy(item, p + s, e - s);
		item[e - s] = '\0';
		if (item[0]) {
			const char *v = item;
			int ok;
			if (!strncmp(v, "ip:", 3)) {
				const char *addr = v + 3;
				char a[64];
				size_t al = strcspn(addr, "/");
				unsigned char b[16];
				ok = al < sizeof(a);
				if (ok) {
					memcpy(a, addr, al);
					a[al] = '\0';
					ok = inet_pton(strchr(a, ':') ? AF_INET6 : AF_INET, a, b) == 1;
				}
				if (ok && addr[al] == '/') {
					char *end;
					long bits = strtol(addr + al + 1, &end, 10);
					ok = *end == '\0' && end != addr + al + 1 && bits >= 0 &&
					    bits <= (strchr(a, ':') ? 128 : 32);
				}
			} else if (!strncmp(v, "uri:", 4)) {
				ok = strstr(v + 4, "://") != NULL && !strpbrk(v + 4, " \t\"");
			} else {
				if (!strncmp(v, "dns:", 4))
					v += 4;
				ok = !strcmp(v, "*") || tg_acmeca_dns_ok(v);
			}
			if (!ok)
				return tg_err_set(err, TG_E_USAGE, "policy entry \"%s\": write a DNS name "
				    "(fleet.example, *.fleet.example, *), ip:ADDRESS[/BITS] or "
				    "uri:SCHEME://...[*], lower case", item);
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

void
tg_json_wipe(json_t *o, const char *member)
{
	json_t *v = json_object_get(o, member);

	if (json_is_string(v))
		OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
}

int
tg_acmeca_enroll(struct tg_store *st, struct tg_acmeca_enrolment *e, struct tg_err *err)
{
	unsigned char kid[16], key[32];
	char name[128];
	json_t *o;
	char *text;
	int rv;

	if (tg_acmeca_policy_check(e->allow, err) < 0)
		return -1;
	if (!e->allow[0])
		return tg_err_set(err, TG_E_USAGE, "an enrolment needs --allow: the names, "
		    "addresses or URIs its accounts may get");
	/* neither may start with "-": certbot and lego would take it for an
	 * option ("--eab-hmac-key: expected one argument"); the key id is a
	 * store name too, and base64url never starts a hidden one */
	do {
		if (RAND_bytes(kid, sizeof(kid)) != 1 || RAND_bytes(key, sizeof(key)) != 1)
			return tg_err_set(err, TG_E_INTERNAL, "no random bytes from OpenSSL");
		tg_b64url(kid, sizeof(kid), e->kid, sizeof(e->kid));
		tg_b64url(key, sizeof(key), e->hmac, sizeof(e->hmac));
	} while (e->kid[0] == '-' || e->hmac[0] == '-');
	OPENSSL_cleanse(key, sizeof(key));
	if (e->max_accounts <= 0)
		e->max_accounts = 1;
	o = json_pack("{s:s, s:s, s:s, s:I, s:i, s:[], s:I}", "name", e->name, "hmac", e->hmac,
	    "allow", e->allow, "lifetime", (json_int_t)e->lifetime_s, "max_accounts",
	    e->max_accounts, "accounts", "created", (json_int_t)time(NULL));
	if (o == NULL || (text = json_dumps(o, JSON_COMPACT)) == NULL) {
		json_decref(o);
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	}
	snprintf(name, sizeof(name), "acme-ca/eab/%s", e->kid);
	rv = tg_store_put(st, name, text, strlen(text), TG_STORE_SECRET, err);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	tg_json_wipe(o, "hmac");
	json_decref(o);   /* the HMAC key stays in e->hmac for the caller to show */
	return rv;
}
