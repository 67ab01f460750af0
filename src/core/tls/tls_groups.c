/*
 * Key-exchange groups (tls.groups, client.groups, a tunnel's groups): the
 * default puts the post-quantum hybrid X25519MLKEM768 first where the
 * OpenSSL in use has it (3.5 and later) and is today's classical list
 * elsewhere; what the library has is asked of the library, once, so the
 * same source builds and behaves right on 3.0 and 3.5. The DEFAULT keyword
 * is never written by us and refused from users: what it means changed
 * between releases (CVE-2026-2673), and a group list is a security choice
 * that must read the same on every machine.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "error.h"
#include "tls.h"

#define TG_PQ_GROUP "X25519MLKEM768"
#define TG_CLASSIC_GROUPS "X25519:P-256:P-384"

/* Names that may stand in a list, asked one by one when an unknown name
 * needs the list of what the library offers (OpenSSL 3.0 has no call that
 * lists them). Only for that message: what is accepted is the library's
 * decision. */
static const char *const candidates[] = {
	"X25519MLKEM768", "SecP256r1MLKEM768", "SecP384r1MLKEM1024", "X25519", "X448",
	"P-256", "P-384", "P-521", "ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144",
	"ffdhe8192", "brainpoolP256r1tls13", "brainpoolP384r1tls13", "brainpoolP512r1tls13",
	"MLKEM512", "MLKEM768", "MLKEM1024",
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int pq;                     /* the library has X25519MLKEM768 */
static char offered[512];          /* candidates the library accepts, ", " between */

static int
accepts(SSL_CTX *ctx, const char *list)
{
	int ok = SSL_CTX_set1_groups_list(ctx, list) == 1;

	ERR_clear_error();
	return ok;
}

static void
probe(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	size_t i, n = 0;

	if (ctx == NULL) {
		ERR_clear_error();
		return;
	}
	pq = accepts(ctx, TG_PQ_GROUP);
	for (i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		if (!accepts(ctx, candidates[i]))
			continue;
		n += (size_t)snprintf(offered + n, sizeof(offered) - n, "%s%s", n ? ", " : "",
		    candidates[i]);
		if (n >= sizeof(offered))
			break;
	}
	SSL_CTX_free(ctx);
}

int
tg_tls_pq_available(void)
{
	pthread_once(&once, probe);
	return pq;
}

const char *
tg_tls_groups_default(void)
{
	return tg_tls_pq_available() ? TG_PQ_GROUP ":" TG_CLASSIC_GROUPS : TG_CLASSIC_GROUPS;
}

const char *
tg_tls_groups_offered(void)
{
	pthread_once(&once, probe);
	return offered;
}

/* "a, b c:d" -> "a:b:c:d" (what OpenSSL reads). -1 when it does not fit. */
static int
normalise(const char *list, char *out, size_t cap)
{
	size_t n = 0;
	const char *p = list;

	while (*p) {
		size_t len;
		p += strspn(p, ", :\t");
		len = strcspn(p, ", :\t");
		if (len == 0)
			break;
		if (n + len + 2 > cap)
			return -1;
		if (n)
			out[n++] = ':';
		memcpy(out + n, p, len);
		n += len;
		p += len;
	}
	out[n] = '\0';
	return 0;
}

/* DEFAULT anywhere: as a name, with OpenSSL 3.5's prefixes (?, *, -) or
 * inside a tuple (a/b). */
static int
has_default_keyword(const char *list)
{
	const char *p = list;

	while (*p) {
		size_t len;
		p += strspn(p, ":/?*-");
		len = strcspn(p, ":/");
		if (len == 7 && !strncasecmp(p, "DEFAULT", 7))
			return 1;
		p += len;
	}
	return 0;
}

int
tg_tls_set_groups(SSL_CTX *ctx, const char *list, const char *what, struct tg_err *err)
{
	char norm[1024];
	const char *use = tg_tls_groups_default();

	if (list && list[0]) {
		if (normalise(list, norm, sizeof(norm)) < 0 || !norm[0])
			return tg_err_set(err, TG_E_CONFIG_VALUE, "%s: '%.200s' is not a list of "
			    "group names", what, list);
		if (has_default_keyword(norm))
			return tg_err_set(err, TG_E_CONFIG_VALUE, "%s: DEFAULT is not accepted in a "
			    "group list (its meaning differs between OpenSSL releases, "
			    "CVE-2026-2673); name the groups, or remove the setting for tlsgate's "
			    "default (%s)", what, use);
		use = norm;
	}
	if (SSL_CTX_set1_groups_list(ctx, use) != 1) {
		char bad[128] = "", one[128];
		const char *p = use;
		ERR_clear_error();
		while (*p && !bad[0]) {   /* name the first one it refuses */
			size_t len = strcspn(p, ":");
			snprintf(one, sizeof(one), "%.*s", (int)len, p);
			if (len && !accepts(ctx, one))
				snprintf(bad, sizeof(bad), "%s", one);
			p += len + (p[len] == ':');
		}
		SSL_CTX_set1_groups_list(ctx, tg_tls_groups_default());   /* never left half-set */
		ERR_clear_error();
		return tg_err_set(err, TG_E_CONFIG_VALUE, "%s: %s%s%s; the groups this TLS library "
		    "(%s) offers: %s", what, bad[0] ? "unknown group '" : "the TLS library refuses '",
		    bad[0] ? bad : use, "'", OpenSSL_version(OPENSSL_VERSION),
		    tg_tls_groups_offered());
	}
	return 0;
}

int
tg_tls_groups_pq_first(const char *list)
{
	char norm[1024];

	if (!list || !list[0])
		return tg_tls_pq_available();
	if (normalise(list, norm, sizeof(norm)) < 0)
		return 0;
	/* the first group is the key share a client sends: a hybrid or pure
	 * ML-KEM one there is what makes the exchange post-quantum */
	norm[strcspn(norm, ":")] = '\0';
	return strstr(norm, "MLKEM") != NULL;
}

void
tg_tls_groups_words(const char *list, char *buf, size_t len)
{
	if (tg_tls_groups_pq_first(list))
		snprintf(buf, len, "post-quantum key exchange on (%s first)",
		    list && list[0] ? "the configured hybrid" : TG_PQ_GROUP);
	else if (!tg_tls_pq_available())
		snprintf(buf, len, "post-quantum key exchange off: %s has no %s (OpenSSL 3.5 and "
		    "later have it); classical groups %s", OpenSSL_version(OPENSSL_VERSION),
		    TG_PQ_GROUP, list && list[0] ? list : TG_CLASSIC_GROUPS);
	else
		snprintf(buf, len, "post-quantum key exchange off: the configured groups (%s) do "
		    "not start with %s", list, TG_PQ_GROUP);
}

static const char *const kind_labels[TG_GROUP_KINDS] = {
#define TG_GROUP_LABEL(id, label, name) label,
	TG_TLS_GROUP_KINDS(TG_GROUP_LABEL)
#undef TG_GROUP_LABEL
};

static const char *const kind_names[TG_GROUP_KINDS] = {
#define TG_GROUP_NAME(id, label, name) name,
	TG_TLS_GROUP_KINDS(TG_GROUP_NAME)
#undef TG_GROUP_NAME
};

const char *
tg_tls_group_label(int kind)
{
	return kind >= 0 && kind < TG_GROUP_KINDS ? kind_labels[kind] : "other";
}

int
tg_tls_group_kind(SSL *ssl)
{
	int nid = SSL_get_negotiated_group(ssl), k;
	const char *name;

	if (nid == 0 || nid == NID_undef)
		return TG_GROUP_NONE;
	if ((name = SSL_group_to_name(ssl, nid)) == NULL)
		return TG_GROUP_OTHER;
	for (k = 0; k < TG_GROUP_KINDS; k++)
		if (kind_names[k][0] && !strcasecmp(name, kind_names[k]))
			return k;
	return TG_GROUP_OTHER;
}
