/*
 * tlsgate ca serve: the local CA as an ACME server (RFC 8555), for certbot,
 * lego and tlsgate's own tls.auto: acme; and tlsgate ca enroll: the
 * external-account-binding keys that let a device or a group in, with the
 * names it may get.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "acmeca.h"
#include "acmeca_int.h"
#include "pki.h"
#include "cli.h"
#include "config_int.h"
#include "server.h"
#include "store.h"
#include "systemd.h"
#include "util.h"

static const char serve_usage[] =
"usage: tlsgate ca serve --listen ADDR [--dir CA_DIR] [--allow LIST] [--lifetime DUR]\n"
"                        [--config FILE] [--set KEY=VALUE ...]\n"
"Serves the local CA over ACME: certbot, lego and tlsgate (tls.auto: acme) get,\n"
"renew and revoke certificates from https://HOST:PORT/acme/directory.\n"
"  --listen ADDR   where (HOST:PORT); the same as ca.acme.listen in tlsgate serve\n"
"  --dir CA_DIR    the CA that signs (default state_dir/ca; tlsgate ca init makes it)\n"
"  --allow LIST    names accounts WITHOUT an enrolment may get (*.lab.example,\n"
"                  ip:10.0.0.0/8); default none: every account needs a key from\n"
"                  `tlsgate ca enroll`\n"
"  --lifetime DUR  of issued certificates (default 24h)\n"
"The server's own certificate comes from the same CA (tls.auto: local-ca), so\n"
"clients trust CA_DIR/ca.crt (also at /acme/ca.pem). More: ca.acme.* in\n"
"docs/configuration.md (challenges, ports they are checked on, resolver).\n";

static const char enroll_usage[] =
"usage: tlsgate ca enroll NAME --allow LIST [--lifetime DUR] [--accounts N]\n"
"                         [--config FILE] [--set KEY=VALUE ...]\n"
"Makes an external account binding key for a device or a group: an ACME client\n"
"that registers with it may get the names LIST allows, and nothing else.\n"
"  --allow LIST    fleet.example, *.fleet.example, *, ip:10.0.0.0/8,\n"
"                  uri:spiffe://fleet/* (URIs are put in the certificate as the\n"
"                  CSR asks; no challenge exists for them)\n"
"  --lifetime DUR  of the certificates its accounts get (default ca.acme.lifetime)\n"
"  --accounts N    accounts the key may register (default 1: one device)\n"
"The key is kept in the store (state_dir, or etcd in a cluster), so every node\n"
"serving the ACME CA knows it.\n";

static struct cli_cfg_flags serve_flags;   /* read again on SIGHUP */

static int
reload(void *arg, struct tg_config **cfg, struct tg_err *err)
{
	*cfg = cli_load_config(arg, err);
	return *cfg ? 0 : -1;
}

static void
started(const struct tg_server *srv, const struct tg_config *cfg)
{
	char host[256], ca[PATH_MAX], sd[PATH_MAX];
	int port = 0;

	if (tg_parse_hostport(srv->ca_listen, host, sizeof(host), &port) < 0 || !host[0] ||
	    !strcmp(host, "0.0.0.0") || !strcmp(host, "::"))
		snprintf(host, sizeof(host), "localhost");
	if (tg_cfg_str(cfg, TG_CFG_CA_ACME_CA_DIR)[0]) {
		tg_cfg_path(cfg, TG_CFG_CA_ACME_CA_DIR, ca, sizeof(ca));
	} else {
		tg_path_expand(sd, sizeof(sd), tg_cfg_str(cfg, TG_CFG_STATE_DIR));
		if (snprintf(ca, sizeof(ca), "%s/ca", sd) >= (int)sizeof(ca))
			ca[0] = '\0';
	}
	printf("ACME CA directory: https://%s%s%s%s:%d/acme/directory\n"
	    "  clients trust:   %s/ca.crt\n  accounts:        %s\n  its certificate: %s\n",
	    strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", "", port, ca,
	    tg_cfg_str(cfg, TG_CFG_CA_ACME_ALLOW)[0] ? "without an enrolment they may get what "
	    "ca.acme.allow lists" : "each needs a key from `tlsgate ca enroll`", srv->tls.cert);
	fflush(stdout);
}

static int
add_set(struct cli_cfg_flags *f, char *buf, size_t len, const char *origin, const char *key,
    const char *v)
{
	if (f->nsets >= 60)
		return cli_fail("too many configuration flags");
	if (snprintf(buf, len, "%s=%s", key, v) >= (int)len)
		return cli_fail("%s: too long", origin);
	f->sets[f->nsets] = buf;
	f->origins[f->nsets++] = origin;
	return 0;
}

/* The HTTPS certificate of ca serve --dir DIR: from DIR too, so that one
 * file (DIR/ca.crt) is all a client needs. Kept in state_dir/certs and
 * made again when it is missing, from another CA, or within 30 days of its
 * end. The CA of state_dir/ca (no --dir) is tls.auto local-ca's already. */
static int
server_cert(const char *ca_dir, const char *state_dir, const char *listen, char *crt,
    char *key, size_t len, struct tg_err *err)
{
	char prefix[PATH_MAX], host[256], me[256], sans[1024], cafile[PATH_MAX];
	struct tg_cert_req req;
	STACK_OF(X509) *sk = NULL, *ca = NULL;
	int port, days = -1, fresh = 0;

	if (tg_path_fmt(prefix, sizeof(prefix), err, "%s/certs", state_dir) < 0 ||
	    tg_mkdirs(prefix, 0700, err) < 0 ||
	    tg_path_fmt(prefix, sizeof(prefix), err, "%s/certs/acme-ca-server", state_dir) < 0 ||
	    tg_path_fmt(crt, len, err, "%s.crt", prefix) < 0 ||
	    tg_path_fmt(key, len, err, "%s.key", prefix) < 0 ||
	    tg_path_fmt(cafile, sizeof(cafile), err, "%s/ca.crt", ca_dir) < 0)
		return -1;
	if ((sk = tg_certs_read(crt, err)) != NULL && (ca = tg_certs_read(cafile, err)) != NULL &&
	    tg_cert_days_left(sk_X509_value(sk, 0), &days) == 0 && days > 30 &&
	    X509_verify(sk_X509_value(sk, 0), X509_get0_pubkey(sk_X509_value(ca, 0))) == 1)
		fresh = 1;
	ERR_clear_error();
	sk_X509_pop_free(sk, X509_free);
	sk_X509_pop_free(ca, X509_free);
	if (fresh)
		return 0;
	if (gethostname(me, sizeof(me)) != 0 || !tg_acmeca_dns_ok(me))
		snprintf(me, sizeof(me), "localhost");
	snprintf(sans, sizeof(sans), "dns:localhost,ip:127.0.0.1,ip:::1%s%s", strcmp(me,
	    "localhost") ? ",dns:" : "", strcmp(me, "localhost") ? me : "");
	if (tg_parse_hostport(listen, host, sizeof(host), &port) == 0 && host[0] &&
	    strcmp(host, "0.0.0.0") && strcmp(host, "::") && strcmp(host, "127.0.0.1") &&
	    strcmp(host, "localhost") && strcmp(host, "::1") && strcmp(host, me))
		snprintf(sans + strlen(sans), sizeof(sans) - strlen(sans), ",%s:%s",
		    strspn(host, "0123456789.:abcdefABCDEF") == strlen(host) ? "ip" : "dns", host);
	memset(&req, 0, sizeof(req));
	req.kind = TG_CERT_SERVER;
	req.name = "tlsgate ACME CA";
	req.sans = sans;
	req.key_type = TG_KEY_EC_P256;
	return tg_cert_issue(ca_dir, &req, prefix, err);
}

int
cmd_ca_serve(int argc, char **argv)
{
	static char bufs[10][PATH_MAX + 64], cadir_abs[PATH_MAX];
	struct cli_cfg_flags *f = &serve_flags;
	const char *listen = NULL, *v;
	struct tg_config *cfg;
	struct tg_err err;
	int i, r, missing = 0, nb = 0;

	memset(f, 0, sizeof(*f));
	/* what ca serve is: the ACME CA on the main listener, nothing else
	 * (flags and --set given after may still change the rest) */
	f->sets[f->nsets] = "files.enabled=false";
	f->origins[f->nsets++] = "ca serve";
	f->sets[f->nsets] = "admin.listen=off";
	f->origins[f->nsets++] = "ca serve";
	f->sets[f->nsets] = "workers=1";
	f->origins[f->nsets++] = "ca serve";
	f->sets[f->nsets] = "tls.mode=server";
	f->origins[f->nsets++] = "ca serve";
	for (i = 2; i < argc; i++) {
		if (nb >= 3)   /* the rest are for --listen and --dir's certificate */
			return cli_fail("ca serve: give --dir, --allow and --lifetime once each");
		if (cli_is_help(argv[i])) {
			fputs(serve_usage, stdout);
			return 0;
		}
		if ((v = cli_flag(argc, argv, &i, "--listen", &missing))) {
			listen = v;
		} else if ((v = cli_flag(argc, argv, &i, "--dir", &missing))) {
			if (add_set(f, bufs[nb++], sizeof(bufs[0]), "--dir", "ca.acme.ca_dir", v) < 0)
				return 1;
		} else if ((v = cli_flag(argc, argv, &i, "--allow", &missing))) {
			if (add_set(f, bufs[nb++], sizeof(bufs[0]), "--allow", "ca.acme.allow", v) < 0)
				return 1;
		} else if ((v = cli_flag(argc, argv, &i, "--lifetime", &missing))) {
			if (add_set(f, bufs[nb++], sizeof(bufs[0]), "--lifetime", "ca.acme.lifetime",
			    v) < 0)
				return 1;
		} else if (missing) {
			return cli_fail("%s needs a value", argv[i]);
		} else if ((r = cli_cfg_flag(f, argc, argv, &i)) < 0) {
			return 1;
		} else if (r == 0) {
			return cli_fail("ca serve: unknown argument %s; see `tlsgate ca serve --help`",
			    argv[i]);
		}
	}
	if (listen == NULL)
		return cli_fail("ca serve needs --listen HOST:PORT (where ACME clients connect)");
	if ((cfg = cli_load_config(f, &err)) == NULL)
		return cli_fail_err(&err);
	if (tg_cfg_str(cfg, TG_CFG_CA_ACME_CA_DIR)[0] && !tg_cfg_str(cfg, TG_CFG_TLS_CERT)[0]) {
		char dir[PATH_MAX], sd[PATH_MAX], crt[PATH_MAX], key[PATH_MAX];
		tg_cfg_path(cfg, TG_CFG_CA_ACME_CA_DIR, dir, sizeof(dir));
		tg_path_expand(sd, sizeof(sd), tg_cfg_str(cfg, TG_CFG_STATE_DIR));
		if (realpath(dir, cadir_abs) == NULL)
			snprintf(cadir_abs, sizeof(cadir_abs), "%s", dir);
		r = server_cert(cadir_abs, sd, listen, crt, key,
		    sizeof(crt), &err) < 0;
		tg_config_free(cfg);
		if (r)
			return cli_fail_err(&err);
		if (add_set(f, bufs[nb++], sizeof(bufs[0]), "--dir", "ca.acme.ca_dir", cadir_abs) < 0 ||
		    add_set(f, bufs[nb++], sizeof(bufs[0]), "--dir", "tls.cert", crt) < 0 ||
		    add_set(f, bufs[nb++], sizeof(bufs[0]), "--dir", "tls.key", key) < 0)
			return 1;
	} else {
		tg_config_free(cfg);
	}
	if (add_set(f, bufs[nb++], sizeof(bufs[0]), "--listen", "listen", listen) < 0 ||
	    add_set(f, bufs[nb++], sizeof(bufs[0]), "--listen", "ca.acme.listen", listen) < 0)
		return 1;
	tg_sd_init();
	if ((cfg = cli_load_config(f, &err)) == NULL)
		return cli_fail_err(&err);
	return cli_serve(cfg, reload, f, started);
}

int
cmd_ca_enroll(int argc, char **argv)
{
	struct tg_acmeca_enrolment e;
	struct cli_cfg_flags f;
	struct tg_config *cfg;
	struct tg_store *st;
	struct tg_err err;
	const char *v, *name = NULL;
	char life[64];
	int64_t ms;
	int i, r, missing = 0;

	memset(&e, 0, sizeof(e));
	memset(&f, 0, sizeof(f));
	e.max_accounts = 1;
	for (i = 2; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(enroll_usage, stdout);
			return 0;
		}
		if ((v = cli_flag(argc, argv, &i, "--allow", &missing))) {
			if (strlen(v) >= sizeof(e.allow))
				return cli_fail("--allow: too long");
			snprintf(e.allow, sizeof(e.allow), "%s", v);
		} else if ((v = cli_flag(argc, argv, &i, "--lifetime", &missing))) {
			if (tg_parse_duration(v, &ms) < 0 || ms < 60000)
				return cli_fail("--lifetime %s: give a duration of at least 1m (24h, 7d)", v);
			e.lifetime_s = (long)(ms / 1000);
		} else if ((v = cli_flag(argc, argv, &i, "--accounts", &missing))) {
			e.max_accounts = atoi(v);
			if (e.max_accounts < 1 || e.max_accounts > 100000)
				return cli_fail("--accounts %s: give a number from 1 to 100000", v);
		} else if (missing) {
			return cli_fail("%s needs a value", argv[i]);
		} else if ((r = cli_cfg_flag(&f, argc, argv, &i)) < 0) {
			return 1;
		} else if (r == 0) {
			if (argv[i][0] == '-' || name)
				return cli_fail("ca enroll: unknown argument %s; see `tlsgate ca enroll "
				    "--help`", argv[i]);
			name = argv[i];
		}
	}
	if (name == NULL || strlen(name) >= sizeof(e.name))
		return cli_fail("ca enroll needs the NAME of the device or group (at most 127 "
		    "characters)");
	snprintf(e.name, sizeof(e.name), "%s", name);
	if ((cfg = cli_load_config(&f, &err)) == NULL)
		return cli_fail_err(&err);
	st = tg_store_open(cfg, &err);
	tg_config_free(cfg);
	if (st == NULL)
		return cli_fail_err(&err);
	if (e.lifetime_s)
		snprintf(life, sizeof(life), "%lds", e.lifetime_s);
	else
		snprintf(life, sizeof(life), "the CA's (ca.acme.lifetime, 24h unless set)");
	r = tg_acmeca_enroll(st, &e, &err);
	tg_store_free(st);
	if (r < 0)
		return cli_fail_err(&err);
	printf("enrolled \"%s\": an external account binding key\n"
	    "  key id:    %s\n  HMAC key:  %s\n  may get:   %s\n  lifetime:  %s\n"
	    "  accounts:  %d\n"
	    "give both to the device: certbot --eab-kid ID --eab-hmac-key KEY; lego --eab --kid ID "
	    "--hmac KEY;\ntlsgate: tls.acme.eab_kid and tls.acme.eab_hmac_key\n", e.name, e.kid,
	    e.hmac, e.allow, life, e.max_accounts);
	OPENSSL_cleanse(e.hmac, sizeof(e.hmac));
	return 0;
}
