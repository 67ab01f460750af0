/*
 * The server's keypair: user files as given, or an automatic certificate
 * kept in the store under certs/. An automatic certificate is reused while
 * it covers the wanted names, was issued by the current local CA (or is
 * self-signed, for that mode) and has more than 30 days left; otherwise a
 * new key and certificate replace it. All of it happens under a store lock
 * so two starting processes agree on one certificate.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "certs.h"
#include "config_int.h"
#include "error.h"
#include "ossl_words.h"
#include "pki.h"
#include "store.h"
#include "util.h"

#define RENEW_DAYS 30

static void
add_name(char *buf, size_t len, const char *kind, const char *v)
{
	char item[300];
	size_t n = strlen(buf);

	snprintf(item, sizeof(item), "%s:%s", kind, v);
	/* no duplicates */
	for (const char *p = buf; (p = strstr(p, item)) != NULL; p++)
		if ((p == buf || p[-1] == ',') && (p[strlen(item)] == ',' || p[strlen(item)] == '\0'))
			return;
	if (n + strlen(item) + 2 < len)
		snprintf(buf + n, len - n, "%s%s", n ? "," : "", item);
}

int
tg_certs_default_names(char *buf, size_t len)
{
	struct ifaddrs *ifs = NULL, *i;
	char host[256], ip[INET6_ADDRSTRLEN];

	buf[0] = '\0';
	add_name(buf, len, "dns", "localhost");
	if (gethostname(host, sizeof(host)) == 0 && host[0] && strcmp(host, "localhost") &&
	    strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") == strlen(host))
		add_name(buf, len, "dns", host);
	add_name(buf, len, "ip", "127.0.0.1");
	add_name(buf, len, "ip", "::1");
	if (getifaddrs(&ifs) == 0) {
		for (i = ifs; i; i = i->ifa_next) {
			if (i->ifa_addr == NULL || !(i->ifa_flags & IFF_UP))
				continue;
			if (i->ifa_addr->sa_family == AF_INET) {
				inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, ip, sizeof(ip));
				add_name(buf, len, "ip", ip);
			} else if (i->ifa_addr->sa_family == AF_INET6) {
				struct in6_addr *a = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
				if (IN6_IS_ADDR_LINKLOCAL(a))
					continue;   /* needs a zone; not a name anyone dials */
				inet_ntop(AF_INET6, a, ip, sizeof(ip));
				add_name(buf, len, "ip", ip);
			}
		}
		freeifaddrs(ifs);
	}
	return 0;
}

static void
wanted_names(const struct tg_config *cfg, char *buf, size_t len)
{
	const char *const *items;
	size_t n = tg_cfg_list(cfg, TG_CFG_TLS_NAMES, &items), i;
	unsigned char b[16];

	if (n == 0) {
		tg_certs_default_names(buf, len);
		return;
	}
	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		if (strchr(items[i], ':') && (!strncmp(items[i], "dns:", 4) ||
		    !strncmp(items[i], "ip:", 3) || !strncmp(items[i], "uri:", 4))) {
			const char *c = strchr(items[i], ':');
			char kind[8];
			snprintf(kind, sizeof(kind), "%.*s", (int)(c - items[i]), items[i]);
			add_name(buf, len, kind, c + 1);
		} else {
			add_name(buf, len, inet_pton(AF_INET, items[i], b) == 1 ||
			    inet_pton(AF_INET6, items[i], b) == 1 ? "ip" : "dns", items[i]);
		}
	}
}

/* Is the stored certificate still the right one? */
static int
still_good(struct tg_store *st, const char *crt_name, const char *key_name,
    const char *names, EVP_PKEY *issuer_pub)
{
	unsigned char *pem = NULL;
	size_t len;
	STACK_OF(X509) *sk = NULL;
	EVP_PKEY *k = NULL;
	X509 *x;
	char have[2048], key_path[PATH_MAX], *p;
	int days, ok = 0;
	struct tg_err err;

	if (tg_store_get(st, crt_name, &pem, &len, &err) < 0)
		return 0;
	sk = tg_certs_parse(pem, len, crt_name, &err);
	OPENSSL_free(pem);
	if (sk == NULL)
		goto out;
	x = sk_X509_value(sk, 0);
	tg_cert_sans(x, have, sizeof(have));
	for (p = have; (p = strstr(p, ", ")) != NULL;)
		memmove(p + 1, p + 2, strlen(p + 2) + 1);
	if (strcmp(have, names) != 0)
		goto out;
	if (tg_cert_days_left(x, &days) < 0 || days <= RENEW_DAYS)
		goto out;
	if (X509_verify(x, issuer_pub ? issuer_pub : X509_get0_pubkey(x)) != 1)
		goto out;
	snprintf(key_path, sizeof(key_path), "%s/%s", tg_store_path(st), key_name);
	if ((k = tg_key_read(key_path, &err)) == NULL || X509_check_private_key(x, k) != 1)
		goto out;
	ok = 1;
out:
	ERR_clear_error();
	EVP_PKEY_free(k);
	sk_X509_pop_free(sk, X509_free);
	return ok;
}

static int
make_auto(struct tg_store *st, const char *crt_name, const char *key_name,
    const char *names, const struct tg_ca *ca, int client, struct tg_err *err)
{
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	BIO *kb = NULL;
	STACK_OF(X509) *chain = sk_X509_new_null();
	char *pem = NULL, *kp, cn[256];
	const char *colon = strchr(names, ':');
	long kl;
	int rv = -1;

	snprintf(cn, sizeof(cn), "%.*s", (int)strcspn(colon + 1, ","), colon + 1);
	if ((k = tg_key_generate(TG_KEY_EC_P256, err)) == NULL)
		goto out;
	x = tg_cert_build(!ca ? TG_BUILD_SELF : client ? TG_BUILD_CLIENT : TG_BUILD_SERVER, cn, names,
	    0, k, ca, err);
	if (x == NULL)
		goto out;
	kb = BIO_new(BIO_s_secmem());
	if (kb == NULL || chain == NULL ||
	    PEM_write_bio_PrivateKey(kb, k, NULL, NULL, 0, NULL, NULL) != 1 ||
	    !sk_X509_push(chain, x) || (ca && !sk_X509_push(chain, ca->cert)) ||
	    (pem = tg_certs_pem(chain)) == NULL) {
		tg_err_ossl(err, TG_E_PKI, "cannot encode the automatic certificate");
		goto out;
	}
	kl = BIO_get_mem_data(kb, &kp);
	/* the key first: a certificate never points at a key that is not there */
	if (tg_store_put(st, key_name, kp, (size_t)kl, TG_STORE_SECRET, err) < 0 ||
	    tg_store_put(st, crt_name, pem, strlen(pem), 0, err) < 0)
		goto out;
	rv = 0;
out:
	free(pem);
	sk_X509_free(chain);
	BIO_free(kb);
	X509_free(x);
	EVP_PKEY_free(k);
	return rv;
}

/* Keeps the stored certificate crt_name (and key_name) if it is still the
 * right one for names, else makes a new one: from the CA loaded from cadir
 * (local), or self-signed. The caller holds the auto-certs lock. */
static int
keep_or_make(struct tg_store *st, const char *cadir, int local, const char *crt_name,
    const char *key_name, const char *names, int client, int *made, struct tg_err *err)
{
	struct tg_ca ca;
	int rv = -1;

	memset(&ca, 0, sizeof(ca));
	if (local && tg_ca_load(cadir, &ca, err) < 0)
		return -1;
	if (still_good(st, crt_name, key_name, names, local ? X509_get0_pubkey(ca.cert) : NULL))
		rv = 0;
	else if (make_auto(st, crt_name, key_name, names, local ? &ca : NULL, client, err) == 0)
		rv = 0, *made = 1;
	tg_ca_clear(&ca);
	return rv;
}

/*
 * A cluster (store.backend etcd) has one local CA, in the store: the first
 * node to start creates it (or brings its own), under the cluster's lock;
 * the others received it with their copy of the store. The node's own
 * certificates stay its own (they name this node), made from that CA.
 * With the store unreachable, a node that has the CA starts from its copy.
 */
static int
cluster_ca(const struct tg_config *cfg, const char *cadir, struct tg_keypair *kp,
    struct tg_err *err)
{
	struct tg_store_conf *sc = malloc(sizeof(*sc));
	struct tg_store *cst = NULL, *fs = NULL;
	unsigned char *crt = NULL, *key = NULL;
	size_t clen = 0, klen = 0;
	char host[200], cn[300], p[PATH_MAX];
	int rv = -1, have_local;

	if (sc == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	tg_store_conf_from(cfg, sc);
	if (tg_path_fmt(p, sizeof(p), err, "%s/ca.crt", cadir) < 0) {
		free(sc);
		return -1;
	}
	have_local = access(p, F_OK) == 0;
	if ((cst = tg_store_open_conf(sc, 1, err)) == NULL)
		goto out;
	if (tg_store_lock(cst, "auto-certs", 15000, err) < 0) {
		if (have_local) {   /* serve on with the copy; the store is down */
			snprintf(kp->warning, sizeof(kp->warning), "%.700s; using this node's copy "
			    "of the local CA", err->msg);
			rv = 0;
		}
		goto out;
	}
	if (tg_store_get(cst, "ca/ca.crt", &crt, &clen, err) == 0) {
		/* the cluster's CA: this node's copy made sure of (the pull at
		 * start may have failed) */
		if (tg_store_get(cst, "ca/ca.key", &key, &klen, err) < 0 ||
		    (fs = tg_store_fs_open(cadir, err)) == NULL ||
		    tg_store_put(fs, "ca.key", key, klen, TG_STORE_SECRET, err) < 0 ||
		    tg_store_put(fs, "ca.crt", crt, clen, 0, err) < 0)
			goto unlock;
		rv = 0;
		goto unlock;
	}
	if (err->code != TG_E_NOT_FOUND)
		goto unlock;   /* the store did not answer: never a second CA */
	OPENSSL_free(crt);
	crt = NULL;
	if (!have_local) {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "localhost");
		snprintf(cn, sizeof(cn), "tlsgate local CA (%s)", host);
		if (tg_ca_init(cadir, cn, TG_KEY_EC_P256, 0, err) < 0)
			goto unlock;
	}
	/* this node's CA becomes the cluster's */
	if ((fs = tg_store_fs_open(cadir, err)) == NULL ||
	    tg_store_get(fs, "ca.key", &key, &klen, err) < 0 ||
	    tg_store_get(fs, "ca.crt", &crt, &clen, err) < 0 ||
	    tg_store_put(cst, "ca/ca.key", key, klen, TG_STORE_SECRET, err) < 0 ||
	    tg_store_put(cst, "ca/ca.crt", crt, clen, 0, err) < 0)
		goto unlock;
	rv = 0;
unlock:
	tg_store_unlock(cst, "auto-certs");
out:
	if (key)
		OPENSSL_clear_free(key, klen);
	OPENSSL_free(crt);
	tg_store_free(fs);
	tg_store_free(cst);
	free(sc);
	return rv;
}

int
tg_certs_prepare(const struct tg_config *cfg, struct tg_keypair *kp, struct tg_err *err)
{
	const char *mode = tg_cfg_str(cfg, TG_CFG_TLS_AUTO);
	int local = !strcmp(mode, "local-ca");
	const char *crt_name = local ? "certs/server.crt" : "certs/self-signed.crt";
	const char *key_name = local ? "certs/server.key" : "certs/self-signed.key";
	char sd[PATH_MAX], cadir[PATH_MAX], host[200], cn[300];
	struct tg_store *st = NULL;
	int rv = -1;

	memset(kp, 0, sizeof(*kp));
	if (tg_path_expand(sd, sizeof(sd), tg_cfg_str(cfg, TG_CFG_STATE_DIR)) < 0 ||
	    tg_path_fmt(cadir, sizeof(cadir) - sizeof("/ca.crt"), err, "%s/ca", sd) < 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "state_dir (%s): the path is too long",
		    tg_config_origin(cfg, "state_dir"));
	if ((st = tg_store_fs_open(sd, err)) == NULL) {
		char m[sizeof(err->msg)];
		snprintf(m, sizeof(m), "%s", err->msg);
		tg_err_set(err, err->code, "state_dir (%s): %s", tg_config_origin(cfg, "state_dir"), m);
		return -1;
	}
	if (local && !strcmp(tg_cfg_str(cfg, TG_CFG_STORE_BACKEND), "etcd") && cluster_ca(cfg,
	    cadir, kp, err) < 0)
		goto out;
	if (tg_store_exists(st, "ca/ca.crt") || local)
		(void)tg_path_fmt(kp->local_ca, sizeof(kp->local_ca), NULL, "%s/ca.crt", cadir);
	if (tg_cfg_str(cfg, TG_CFG_TLS_CERT)[0]) {
		tg_cfg_path(cfg, TG_CFG_TLS_CERT, kp->cert, sizeof(kp->cert));
		tg_cfg_path(cfg, TG_CFG_TLS_KEY, kp->key, sizeof(kp->key));
		snprintf(kp->cert_origin, sizeof(kp->cert_origin), "%s", tg_config_origin(cfg, "tls.cert"));
		snprintf(kp->key_origin, sizeof(kp->key_origin), "%s", tg_config_origin(cfg, "tls.key"));
		rv = 0;
		goto out;
	}
	wanted_names(cfg, kp->names, sizeof(kp->names));
	if (tg_store_lock(st, "auto-certs", 15000, err) < 0)
		goto out;
	if (local && !tg_store_exists(st, "ca/ca.crt")) {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "localhost");
		snprintf(cn, sizeof(cn), "tlsgate local CA (%s)", host);
		if (tg_ca_init(cadir, cn, TG_KEY_EC_P256, 0, err) < 0)
			goto unlock;
		kp->made_ca = 1;
	}
	if (keep_or_make(st, cadir, local, crt_name, key_name, kp->names, 0, &kp->made_cert, err) < 0)
		goto unlock;
	if (tg_path_fmt(kp->cert, sizeof(kp->cert), err, "%s/%s", sd, crt_name) < 0 ||
	    tg_path_fmt(kp->key, sizeof(kp->key), err, "%s/%s", sd, key_name) < 0)
		goto unlock;
	snprintf(kp->cert_origin, sizeof(kp->cert_origin), "automatic, tls.auto %s", mode);
	snprintf(kp->key_origin, sizeof(kp->key_origin), "automatic, tls.auto %s", mode);
	rv = 0;
unlock:
	tg_store_unlock(st, "auto-certs");
out:
	tg_store_free(st);
	return rv;
}

int
tg_certs_client_prepare(const struct tg_config *cfg, struct tg_err *err)
{
	int local = !strcmp(tg_cfg_str(cfg, TG_CFG_TLS_AUTO), "local-ca"), made = 0, rv;
	const char *const *items;
	char sd[PATH_MAX], cadir[PATH_MAX], names[300], host[256];
	unsigned char ip[16];
	struct tg_store *st;

	/* the node's name: the first of tls.names, else the host name */
	if (tg_cfg_list(cfg, TG_CFG_TLS_NAMES, &items) > 0) {
		const char *n = items[0];
		if (!strncmp(n, "dns:", 4) || !strncmp(n, "ip:", 3))
			n = strchr(n, ':') + 1;
		snprintf(host, sizeof(host), "%s", n);
	} else if (gethostname(host, sizeof(host)) != 0) {
		snprintf(host, sizeof(host), "localhost");
	}
	snprintf(names, sizeof(names), "%s:%s", inet_pton(AF_INET, host, ip) == 1 ||
	    inet_pton(AF_INET6, host, ip) == 1 ? "ip" : "dns", host);
	if (tg_path_expand(sd, sizeof(sd), tg_cfg_str(cfg, TG_CFG_STATE_DIR)) < 0 ||
	    tg_path_fmt(cadir, sizeof(cadir), err, "%s/ca", sd) < 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "state_dir (%s): the path is too long",
		    tg_config_origin(cfg, "state_dir"));
	if ((st = tg_store_fs_open(sd, err)) == NULL)
		return -1;
	if ((rv = tg_store_lock(st, "auto-certs", 15000, err)) == 0) {
		rv = keep_or_make(st, cadir, local, "certs/client.crt", "certs/client.key", names, 1,
		    &made, err);
		tg_store_unlock(st, "auto-certs");
	}
	tg_store_free(st);
	return rv;
}
