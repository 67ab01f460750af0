/*
 * Set-up shared by tunnels and proxy routes (see upstream.h): one entry of
 * `tunnels:` or `proxy:` read, its upstream resolved, its TLS contexts and
 * trust built, a tunnel's listener opened.
 */
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "config_int.h"
#include "error.h"
#include "listen.h"
#include "pki.h"
#include "server.h"
#include "store.h"
#include "tls.h"
#include "trust.h"
#include "upstream.h"
#include "util.h"
#include "watch.h"

/* The route's extra request headers (proxy.N.headers.NAME): a value, or
 * @FILE for a file read again when it changes. */
static int
headers_load(struct tg_tunnel *t, const struct tg_config *cfg, size_t i, struct tg_err *err)
{
	char pre[64];
	const char *k;
	size_t j, pl;

	pl = (size_t)snprintf(pre, sizeof(pre), "proxy.%zu.headers.", i);
	for (j = 0; (k = tg_config_entry_key(cfg, j)) != NULL; j++) {
		struct proxy_header *h, *n;
		const char *v;
		if (strncmp(k, pre, pl) != 0)
			continue;
		if ((n = realloc(t->headers, (t->nheaders + 1) * sizeof(*n))) == NULL)
			return tg_err_set(err, TG_E_INTERNAL, "out of memory");
		t->headers = n;
		h = &n[t->nheaders++];
		memset(h, 0, sizeof(*h));
		snprintf(h->name, sizeof(h->name), "%s", k + pl);
		v = tg_config_get(cfg, k);
		if (strspn(h->name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
		    strlen(h->name))
			return tg_err_set(err, TG_E_CONFIG_VALUE, "%s (%s): '%s' is not a header name", k,
			    tg_config_origin(cfg, k), h->name);
		if (v[0] == '@') {
			/* relative to the config file's folder, like other paths */
			const char *f = tg_cfg_file(cfg);
			char dir[PATH_MAX] = "";
			if (f && v[1] != '/')
				tg_path_dir(dir, sizeof(dir), f);
			tg_path_join(h->file, sizeof(h->file), dir[0] ? dir : NULL, v + 1);
		} else if (strpbrk(v, "\r\n")) {
			return tg_err_set(err, TG_E_CONFIG_VALUE, "%s (%s): a header value cannot hold a "
			    "line break", k, tg_config_origin(cfg, k));
		} else {
			snprintf(h->value, sizeof(h->value), "%s", v);
		}
	}
	return 0;
}

/* What tells t's CRL file changed (watch.h). */
static void
crl_sig_of(const char *path, struct tg_tunnel *t)
{
	tg_file_sig_of(path, &t->crl_sig);
}

/* ---- one entry -------------------------------------------------------------------- */

void
tg_upstream_count(struct tg_tunnel *t, SSL *ssl)
{
	const unsigned char *p = NULL;
	unsigned int n = 0;
	int i;

	SSL_get0_alpn_selected(ssl, &p, &n);
	i = n ? tg_alpn_index(&t->alpn, p, n) : -1;
	t->alpn_count[i >= 0 ? (size_t)i : TG_ALPN_NONE]++;
	i = tg_tls_group_kind(ssl);
	t->group_count[i >= 0 && i < TG_GROUP_KINDS ? i : TG_GROUP_OTHER]++;
}

/* A tunnel that accepts TLS: the first of its alpn the client offers. No
 * list: no ALPN, and a hint once that clients ask for it (gRPC needs h2
 * selected). A list none of whose names the client offers: refused with
 * no_application_protocol, in words in the log. */
static int
tunnel_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
    unsigned int inlen, void *arg)
{
	struct tg_tunnel *t = arg;
	char offer[300], ours[300];

	if (t->alpn.len == 0) {
		if (!t->alpn_hinted) {
			t->alpn_hinted = 1;
			tg_alpn_text(in, inlen, offer, sizeof(offer));
			tg_log(t->srv, TG_LOG_INFO, "tunnel %zu: clients offer ALPN (%s) and tunnels.%zu.alpn "
			    "is not set, so none is selected; gRPC and other h2 clients need "
			    "alpn: [h2]", t->index, offer, t->index);
		}
		return SSL_TLSEXT_ERR_NOACK;
	}
	if (tg_alpn_pick(&t->alpn, in, inlen, out, outlen) >= 0)
		return SSL_TLSEXT_ERR_OK;
	t->alpn_count[TG_ALPN_REFUSED]++;
	tg_alpn_text(in, inlen, offer, sizeof(offer));
	tg_alpn_text(t->alpn.wire, t->alpn.len, ours, sizeof(ours));
	tg_tls_note(ssl, "the client offered ALPN %s; this tunnel accepts %s (tunnels.%zu.alpn)",
	    offer, ours, t->index);
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

int
tg_upstream_tls_in_ctx(struct tg_tunnel *t, struct tg_err *err)
{
	struct tg_server *s = t->srv;
	struct tg_server_tls st;
	struct tg_file_sig was;
	SSL_CTX *ctx;
	char gw[64], cw[64];

	memset(&st, 0, sizeof(st));
	st.cert = s->tls.cert;
	st.key = s->tls.key;
	st.cert_origin = s->tls.cert_origin;
	st.key_origin = s->tls.key_origin;
	st.min_version = s->tls.min_version ? s->tls.min_version : TLS1_2_VERSION;
	st.mutual = t->mutual;
	st.clients_ca = t->ca;
	st.clients_ca_origin = t->ca_origin;
	st.clients = t->trust;
	snprintf(gw, sizeof(gw), "tunnels.%zu.groups", t->index);
	st.groups = t->groups[0] ? t->groups : s->tls.groups;
	st.groups_what = t->groups[0] ? gw : "tls.groups";
	snprintf(cw, sizeof(cw), "tunnels.%zu.crl", t->index);
	st.clients_crl = t->crl[0] ? t->crl : s->tls.clients_crl;
	st.clients_crl_what = t->crl[0] ? cw : "tls.clients.crl";
	st.crl_soft = s->tls.crl_soft;
	was = t->crl_sig;
	crl_sig_of(st.clients_crl ? st.clients_crl : "", t);
	if ((ctx = tg_tls_server_ctx(&st, err)) == NULL) {
		t->crl_sig = was;   /* the CRL in service is still the old one */
		return -1;
	}
	SSL_CTX_set_alpn_select_cb(ctx, tunnel_alpn, t);
	/* a client that closes without close_notify ends its stream, as on
	 * the first context (every rebuild keeps it) */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_free(t->ctx);
	t->ctx = ctx;
	return 0;
}

static void
known_path(const struct tg_config *cfg, const char *list, size_t i,
    enum tg_cfg_key fallback_key, char *buf, size_t len)
{
	const char *k = tg_cfg_entry_str(cfg, list, i, TG_FIELD_KNOWN);
	char sd[PATH_MAX];

	if (!k[0]) {
		tg_cfg_path(cfg, fallback_key, buf, len);
		return;
	}
	tg_path_expand(sd, sizeof(sd), tg_cfg_str(cfg, TG_CFG_STATE_DIR));
	tg_path_join(buf, len, sd, k);
}

/* In a cluster the tunnels' and proxy's pins are the cluster's too: a pin
 * kept only in this node's copy would be overwritten by the store's. A
 * known file outside state_dir is refused for the same reason. */
static int
share_known(const struct tg_config *cfg, struct tg_trust *t, struct tg_err *err)
{
	struct tg_store_conf *sc;
	int r;

	if (strcmp(tg_cfg_str(cfg, TG_CFG_STORE_BACKEND), "etcd") != 0)
		return 0;
	if ((sc = malloc(sizeof(*sc))) == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	tg_store_conf_from(cfg, sc);
	r = tg_trust_share(t, sc, err);
	free(sc);
	return r < 0 ? -1 : 0;
}

/* A proxy route's upstream URL, prefix, timeouts and headers. */
static int
read_route(const struct tg_config *cfg, const char *list, size_t i, struct tg_tunnel *t,
    struct tg_err *err)
{
	const char *up = tg_cfg_entry_str(cfg, list, i, TG_FIELD_UPSTREAM);
	struct tg_url u;

	if (tg_url_parse(up, &u, err) < 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "proxy.%zu.upstream (%s): %s", i,
		    tg_cfg_entry_origin(cfg, list, i, TG_FIELD_UPSTREAM), err->msg);
	t->http = 1;
	t->tls_connect = u.tls;
	snprintf(t->host, sizeof(t->host), "%s", u.host);
	t->port = u.port;
	snprintf(t->connect, sizeof(t->connect), strchr(u.host, ':') ? "[%s]:%d" : "%s:%d",
	    u.host, u.port);
	/* a cut prefix or path would route requests elsewhere: refused */
	if (snprintf(t->prefix, sizeof(t->prefix), "%s", tg_cfg_entry_str(cfg, list, i,
	    TG_FIELD_PREFIX)) >= (int)sizeof(t->prefix) ||
	    snprintf(t->up_path, sizeof(t->up_path), "%s", u.path) >= (int)sizeof(t->up_path))
		return tg_err_set(err, TG_E_CONFIG_VALUE, "proxy.%zu (%s): the prefix or the "
		    "upstream's path is too long (at most %zu and %zu bytes)", i,
		    tg_cfg_entry_origin(cfg, list, i, TG_FIELD_PREFIX), sizeof(t->prefix) - 1,
		    sizeof(t->up_path) - 1);
	snprintf(t->listen, sizeof(t->listen), "%s", t->prefix);
	/* the Host header: the port only when it is not the scheme's */
	if ((u.tls && u.port == 443) || (!u.tls && u.port == 80))
		snprintf(t->up_host, sizeof(t->up_host), strchr(u.host, ':') ? "[%s]" : "%s", u.host);
	else
		snprintf(t->up_host, sizeof(t->up_host), "%s", t->connect);
	t->setup_ms = (uint64_t)tg_cfg_entry_num(cfg, list, i, TG_FIELD_CONNECT_TIMEOUT);
	t->first_byte_ms = (uint64_t)tg_cfg_entry_num(cfg, list, i, TG_FIELD_FIRST_BYTE_TIMEOUT);
	t->max_conns = SIZE_MAX;
	return headers_load(t, cfg, i, err);
}

/* A tunnel's listen and connect addresses, direction, mode and limit. */
static int
read_tunnel(const struct tg_config *cfg, const char *list, size_t i, struct tg_tunnel *t,
    struct tg_err *err)
{
	snprintf(t->listen, sizeof(t->listen), "%s", tg_cfg_entry_str(cfg, list, i,
	    TG_FIELD_LISTEN));
	snprintf(t->connect, sizeof(t->connect), "%s", tg_cfg_entry_str(cfg, list, i,
	    TG_FIELD_CONNECT));
	t->tls_connect = (int)tg_cfg_entry_num(cfg, list, i, TG_FIELD_TLS_CONNECT);
	t->mutual = !strcmp(tg_cfg_entry_str(cfg, list, i, TG_FIELD_MODE), "mutual");
	t->max_conns = (size_t)tg_cfg_entry_num(cfg, list, i, TG_FIELD_MAX_CONNECTIONS);
	t->setup_ms = TUN_SETUP_MS;
	if (tg_parse_hostport(t->connect, t->host, sizeof(t->host), &t->port) < 0 || !t->host[0])
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tunnels.%zu.connect (%s): '%s' needs a "
		    "host", i, tg_cfg_entry_origin(cfg, list, i, TG_FIELD_CONNECT), t->connect);
	return 0;
}

/* ALPN, groups and the PROXY header. A proxy route speaks HTTP/1.1 to its
 * upstream, so that is what it offers a TLS one. */
static int
read_protocols(const struct tg_config *cfg, const char *list, size_t i, struct tg_tunnel *t,
    struct tg_err *err)
{
	const char *pp = tg_cfg_entry_str(cfg, list, i, TG_FIELD_PROXY_PROTOCOL);
	char what[64];

	t->proxy_protocol = !strcmp(pp, "v2") ? 2 : !strcmp(pp, "v1") ? 1 : 0;
	snprintf(what, sizeof(what), "%s.%zu.alpn", list, i);
	if (tg_alpn_parse(t->http ? (t->tls_connect ? "http/1.1" : "") : tg_cfg_entry_str(cfg, list,
	    i, TG_FIELD_ALPN), &t->alpn, what, err) < 0)
		return -1;
	snprintf(t->crl, sizeof(t->crl), "%s", tg_cfg_entry_str(cfg, list, i, TG_FIELD_CRL));
	if (snprintf(t->groups, sizeof(t->groups), "%s", tg_cfg_entry_str(cfg, list, i,
	    TG_FIELD_GROUPS)) >= (int)sizeof(t->groups))
		return tg_err_set(err, TG_E_CONFIG_VALUE, "%s.%zu.groups: the list is too long",
		    list, i);
	return 0;
}

/* The upstream's address, resolved once at start: the loop never waits for
 * DNS. */
static int
resolve(const struct tg_config *cfg, const char *list, size_t i, struct tg_tunnel *t,
    struct tg_err *err)
{
	enum tg_cfg_field f = t->http ? TG_FIELD_UPSTREAM : TG_FIELD_CONNECT;
	struct addrinfo hints, *res = NULL;
	char ps[16];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	snprintf(ps, sizeof(ps), "%d", t->port);
	if ((rc = getaddrinfo(t->host, ps, &hints, &res)) != 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "%s.%zu.%s (%s): cannot resolve %s: %s",
		    list, i, t->http ? "upstream" : "connect", tg_cfg_entry_origin(cfg, list, i, f),
		    t->host, gai_strerror(rc));
	memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
	t->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* The client certificate of TLS out: the entry's, else client.cert, else
 * the node's own (made in mutual mode), as tlsgate get/put use it. */
static int
client_cert(const struct tg_config *cfg, const char *list, size_t i, const char *sd,
    char *cert, char *key, size_t len, struct tg_err *err)
{
	struct stat sb;

	if (tg_cfg_entry_str(cfg, list, i, TG_FIELD_CERT)[0]) {
		snprintf(cert, len, "%s", tg_cfg_entry_str(cfg, list, i, TG_FIELD_CERT));
		snprintf(key, len, "%s", tg_cfg_entry_str(cfg, list, i, TG_FIELD_KEY));
	} else if (tg_cfg_str(cfg, TG_CFG_CLIENT_CERT)[0]) {
		tg_cfg_path(cfg, TG_CFG_CLIENT_CERT, cert, len);
		tg_cfg_path(cfg, TG_CFG_CLIENT_KEY, key, len);
	} else {
		if (tg_path_fmt(cert, len, err, "%s/certs/client.crt", sd) < 0 ||
		    tg_path_fmt(key, len, err, "%s/certs/client.key", sd) < 0)
			return -1;
		if (stat(cert, &sb) != 0 || stat(key, &sb) != 0)
			cert[0] = key[0] = '\0';
	}
	return 0;
}


/* The client context of TLS out from what tls_out kept. */
static int
tls_out_ctx(struct tg_tunnel *t, struct tg_err *err)
{
	struct tg_client_opts o;
	struct tg_file_sig was;
	SSL_CTX *ctx;

	memset(&o, 0, sizeof(o));
	o.trust = t->out_trust;
	o.known = t->out_known;
	o.ca = t->out_ca[0] ? t->out_ca : NULL;
	o.local_ca = t->out_local_ca;
	o.cert = t->out_cert;
	o.key = t->out_key;
	o.groups = t->out_groups;
	o.crl = t->crl;
	o.crl_soft_fail = t->out_crl_soft;
	was = t->crl_sig;
	crl_sig_of(t->crl, t);
	if ((ctx = tg_tls_client_ctx(&o, err)) == NULL) {
		t->crl_sig = was;
		return -1;
	}
	if (t->alpn.len && SSL_CTX_set_alpn_protos(ctx, t->alpn.wire,
	    (unsigned int)t->alpn.len) != 0) {
		SSL_CTX_free(ctx);
		t->crl_sig = was;
		return tg_err_ossl(err, TG_E_TLS, "cannot offer ALPN");
	}
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* connections in flight keep the old one (their SSL holds it) */
	SSL_CTX_free(t->ctx);
	t->ctx = ctx;
	return 0;
}

int
tg_upstream_crl_check(struct tg_tunnel *t, struct tg_err *err)
{
	const char *path = t->crl[0] ? t->crl : (!t->tls_connect && t->mutual) ?
	    t->srv->tls.clients_crl : "";
	struct tg_file_sig in_service = t->crl_sig, now;

	if (!path[0])
		return 0;
	crl_sig_of(path, t);
	now = t->crl_sig;
	t->crl_sig = in_service;
	if (memcmp(&in_service, &now, sizeof(now)) == 0 ||
	    memcmp(&t->crl_failed, &now, sizeof(now)) == 0)
		return 0;   /* unchanged, or this very file was refused already */
	/* a file being written: taken once it stayed the same for a tick */
	if (memcmp(&t->crl_seen, &now, sizeof(now)) != 0) {
		t->crl_seen = now;
		return 0;
	}
	if ((t->tls_connect ? tls_out_ctx(t, err) : tg_upstream_tls_in_ctx(t, err)) < 0) {
		X509_STORE *scratch = X509_STORE_new();
		struct tg_err e2;
		int crl_bad = scratch == NULL || tg_crl_load(scratch, path, &e2) < 0;
		X509_STORE_free(scratch);
		if (crl_bad) {   /* the CRL itself: said once, tried again when it changes */
			t->crl_failed = now;
			return -1;
		}
		/* something else (a certificate or CA file being rewritten, no
		 * memory): tried again at every tick, said once */
		if (t->crl_retrying)
			return 0;
		t->crl_retrying = 1;
		return -1;
	}
	t->crl_retrying = 0;
	return 1;
}

int
tg_upstream_own_cert_check(struct tg_tunnel *t, struct tg_err *err)
{
	const struct tg_tls_files *now = &t->srv->tls;
	char cert[PATH_MAX], key[PATH_MAX];
	struct tg_file_sig sig, was = t->own_sig;

	if (!t->out_cert_own || !t->tls_connect)
		return 0;
	tg_file_sig_of(now->cert, &sig);
	if (!strcmp(now->cert, t->out_cert) && !memcmp(&sig, &t->own_sig, sizeof(sig)))
		return 0;
	memcpy(cert, t->out_cert, sizeof(cert));
	memcpy(key, t->out_key, sizeof(key));
	snprintf(t->out_cert, sizeof(t->out_cert), "%s", now->cert);
	snprintf(t->out_key, sizeof(t->out_key), "%s", now->key);
	t->own_sig = sig;
	if (tls_out_ctx(t, err) < 0) {
		/* said once for this file; the old context keeps serving */
		memcpy(t->out_cert, cert, sizeof(cert));
		memcpy(t->out_key, key, sizeof(key));
		t->own_sig = sig;
		return memcmp(&was, &sig, sizeof(sig)) ? -1 : 0;
	}
	return 1;
}

/* TLS out (a route to https://, a tunnel with tls_connect): the client
 * context and how the upstream is judged (client.* rules by default). */
static int
tls_out(const struct tg_config *cfg, const char *list, size_t i, struct tg_tunnel *t,
    struct tg_err *err)
{
	const char *trust = tg_cfg_entry_str(cfg, list, i, TG_FIELD_TRUST);
	const char *sn = tg_cfg_entry_str(cfg, list, i, TG_FIELD_SERVER_NAME);
	enum tg_trust_mode mode = TG_TRUST_CA;
	char known[PATH_MAX], sd[PATH_MAX], ca[PATH_MAX] = "", local_ca[PATH_MAX];
	char cert[PATH_MAX], key[PATH_MAX];

	if (!trust[0])
		trust = tg_cfg_str(cfg, TG_CFG_CLIENT_TRUST);
	tg_trust_mode_parse(trust, &mode);
	known_path(cfg, list, i, TG_CFG_CLIENT_KNOWN, known, sizeof(known));
	if (tg_cfg_entry_str(cfg, list, i, TG_FIELD_CA)[0])
		snprintf(ca, sizeof(ca), "%s", tg_cfg_entry_str(cfg, list, i, TG_FIELD_CA));
	else if (tg_cfg_str(cfg, TG_CFG_CLIENT_CA)[0])
		tg_cfg_path(cfg, TG_CFG_CLIENT_CA, ca, sizeof(ca));
	tg_path_expand(sd, sizeof(sd), tg_cfg_str(cfg, TG_CFG_STATE_DIR));
	if (tg_path_fmt(local_ca, sizeof(local_ca), err, "%s/ca/ca.crt", sd) < 0)
		return -1;
	if (!sn[0])
		sn = tg_cfg_str(cfg, TG_CFG_CLIENT_SERVER_NAME);
	if (sn[0])
		snprintf(t->host, sizeof(t->host), "%s", sn);
	if (client_cert(cfg, list, i, sd, cert, key, sizeof(cert), err) < 0)
		return -1;
	if (!cert[0] && !strcmp(tg_cfg_str(cfg, TG_CFG_TLS_AUTO), "acme") &&
	    !tg_cfg_str(cfg, TG_CFG_TLS_CERT)[0]) {
		/* "" until the first order lands; the tick takes it then */
		t->out_cert_own = 1;
		snprintf(cert, sizeof(cert), "%s", t->srv->tls.cert);
		snprintf(key, sizeof(key), "%s", t->srv->tls.key);
		tg_file_sig_of(cert, &t->own_sig);
	}
	if (!t->crl[0])
		tg_cfg_path(cfg, TG_CFG_CLIENT_CRL, t->crl, sizeof(t->crl));
	/* kept, to build the context again when the CRL changes */
	snprintf(t->out_trust, sizeof(t->out_trust), "%s", trust);
	snprintf(t->out_known, sizeof(t->out_known), "%s", known);
	snprintf(t->out_ca, sizeof(t->out_ca), "%s", ca);
	snprintf(t->out_local_ca, sizeof(t->out_local_ca), "%s", local_ca);
	snprintf(t->out_cert, sizeof(t->out_cert), "%s", cert);
	snprintf(t->out_key, sizeof(t->out_key), "%s", key);
	snprintf(t->out_groups, sizeof(t->out_groups), "%s", t->groups[0] ? t->groups :
	    tg_cfg_str(cfg, TG_CFG_CLIENT_GROUPS));
	t->out_crl_soft = !strcmp(tg_cfg_str(cfg, TG_CFG_CLIENT_CRL_POLICY), "soft");
	if (tls_out_ctx(t, err) < 0)
		return -1;
	if ((t->trust = tg_trust_new(mode, known, "known-servers", NULL, 0, err)) == NULL ||
	    share_known(cfg, t->trust, err) < 0)
		return -1;
	return 0;
}

/* TLS in (a tunnel without tls_connect): the server context from the
 * server's certificate, and for mutual tunnels how clients are judged
 * (tls.clients.* rules by default). */
static int
tls_in(const struct tg_config *cfg, const char *list, size_t i, struct tg_tunnel *t,
    struct tg_err *err)
{
	const char *trust = tg_cfg_entry_str(cfg, list, i, TG_FIELD_TRUST);
	enum tg_trust_mode mode = TG_TRUST_CA;
	char known[PATH_MAX], sd[PATH_MAX];

	if (!trust[0])
		trust = tg_cfg_str(cfg, TG_CFG_TLS_CLIENTS_TRUST);
	tg_trust_mode_parse(trust, &mode);
	known_path(cfg, list, i, TG_CFG_TLS_CLIENTS_KNOWN, known, sizeof(known));
	if (t->mutual && ((t->trust = tg_trust_new(mode, known, "known-clients", NULL, 0,
	    err)) == NULL || share_known(cfg, t->trust, err) < 0))
		return -1;
	if (tg_cfg_entry_str(cfg, list, i, TG_FIELD_CA)[0]) {
		snprintf(t->ca, sizeof(t->ca), "%s", tg_cfg_entry_str(cfg, list, i, TG_FIELD_CA));
		snprintf(t->ca_origin, sizeof(t->ca_origin), "tunnels.%zu.ca, %s", i,
		    tg_cfg_entry_origin(cfg, list, i, TG_FIELD_CA));
	} else if (tg_cfg_str(cfg, TG_CFG_TLS_CLIENTS_CA)[0]) {
		tg_cfg_path(cfg, TG_CFG_TLS_CLIENTS_CA, t->ca, sizeof(t->ca));
		snprintf(t->ca_origin, sizeof(t->ca_origin), "%s",
		    tg_config_origin(cfg, "tls.clients.ca"));
	} else if (mode == TG_TRUST_CA || mode == TG_TRUST_CA_OR_TOFU) {
		if (tg_path_expand(sd, sizeof(sd), tg_cfg_str(cfg, TG_CFG_STATE_DIR)) < 0 ||
		    tg_path_fmt(t->ca, sizeof(t->ca), err, "%s/ca/ca.crt", sd) < 0)
			return -1;
		snprintf(t->ca_origin, sizeof(t->ca_origin), "default: the local CA");
	}
	return tg_upstream_tls_in_ctx(t, err);
}

/* One entry of list: read, resolved, its TLS built, a tunnel's listener
 * opened. A failure past reading names the entry by its prefix or listen. */
static int
open_one(struct tg_server *s, const struct tg_config *cfg, const char *list, size_t i,
    struct tg_tunnel *t, struct tg_err *err)
{
	int proxy = !strcmp(list, "proxy");
	char m[sizeof(err->msg)];

	t->srv = s;
	t->index = i;
	t->fd = -1;
	/* nothing seen or refused yet (a missing file's signature is all zeros) */
	t->crl_failed.ino = t->crl_seen.ino = UINT64_MAX;
	t->idle_ms = (uint64_t)tg_cfg_entry_num(cfg, list, i, TG_FIELD_IDLE_TIMEOUT);
	if ((proxy ? read_route(cfg, list, i, t, err) : read_tunnel(cfg, list, i, t, err)) < 0 ||
	    resolve(cfg, list, i, t, err) < 0 || read_protocols(cfg, list, i, t, err) < 0)
		return -1;
	if ((t->tls_connect && tls_out(cfg, list, i, t, err) == 0) ||
	    (!t->tls_connect && (proxy || tls_in(cfg, list, i, t, err) == 0))) {
		char name[32];
		snprintf(name, sizeof(name), "tunnel-%zu", i);
		if (proxy || (t->fd = tg_listen_open_as(name, t->listen, 0, err)) >= 0)
			return 0;
	}
	snprintf(m, sizeof(m), "%s", err->msg);
	tg_err_set(err, err->code, "%s.%zu (%s): %s", list, i,
	    tg_cfg_entry_origin(cfg, list, i, proxy ? TG_FIELD_PREFIX : TG_FIELD_LISTEN), m);
	return -1;
}

int
tg_upstream_open_all(struct tg_server *s, const struct tg_config *cfg, const char *list,
    struct tg_tunnel **out, size_t *nout, struct tg_err *err)
{
	size_t i, n = tg_cfg_entries(cfg, list);

	if (n == 0)
		return 0;
	if ((*out = calloc(n, sizeof(**out))) == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	*nout = n;
	for (i = 0; i < n; i++)
		(*out)[i].fd = -1;
	for (i = 0; i < n; i++)
		if (open_one(s, cfg, list, i, &(*out)[i], err) < 0)
			return -1;
	return 0;
}

void
tg_upstream_release(struct tg_tunnel *t)
{
	SSL_CTX_free(t->ctx);
	t->ctx = NULL;
	tg_trust_free(t->trust);
	t->trust = NULL;
	free(t->headers);
	t->headers = NULL;
	t->nheaders = 0;
}
