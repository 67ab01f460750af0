/*
 * tlsgate ca init: the local certificate authority.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config_int.h"
#include "pki.h"
#include "store.h"
#include "util.h"

static const char ca_usage[] =
"usage: tlsgate ca init [--dir DIR] [--name CN] [--key TYPE] [--days N] [--crl-url URL]\n"
"       tlsgate ca crl [--dir DIR] [--days N] [--crl-url URL]\n"
"       tlsgate ca install|uninstall [--dir DIR]\n"
"       tlsgate ca serve --listen ADDR [--dir DIR] ...   (the CA as an ACME server)\n"
"       tlsgate ca enroll NAME --allow LIST ...          (a device's ACME key)\n"
"\n"
"init creates a CA (ca.crt and ca.key, mode 0600) in DIR, by default state_dir/ca.\n"
"install puts DIR/ca.crt into the system trust store (update-ca-certificates or\n"
"update-ca-trust), so every client on the machine trusts it; uninstall takes it out.\n"
"  --name CN    the CA's common name (default \"tlsgate local CA\")\n"
"  --key TYPE   ec-p256 (default), ec-p384, rsa-2048, rsa-3072, ed25519\n"
"  --days N     validity in days (default 3650; crl: 7)\n"
"crl signs the CA's CRL again (DIR/crl.pem, crl.der), from the certificates\n"
"`tlsgate cert revoke` revoked.\n"
"  --crl-url URL  where relying parties fetch the CRL (http://...): written into\n"
"               the certificates issued from then on (CRL distribution point)\n"
"Also: --config FILE, --set KEY=VALUE, --state-dir DIR. With store.backend etcd,\n"
"the cluster's CA (state_dir/ca) keeps its revocations and CRL in the store.\n";

/* The local CA folder: state_dir/ca from the configuration. */
int
cli_default_ca_dir(char *buf, size_t len)
{
	struct cli_cfg_flags f;
	struct tg_config *cfg;
	struct tg_err err;
	char sd[PATH_MAX];

	memset(&f, 0, sizeof(f));
	cfg = cli_load_config(&f, &err);
	if (cfg == NULL)
		return cli_fail_err(&err), -1;
	tg_path_expand(sd, sizeof(sd), tg_cfg_str(cfg, TG_CFG_STATE_DIR));
	snprintf(buf, len, "%s/ca", sd);
	tg_config_free(cfg);
	return 0;
}

int
cli_ca_where(const struct cli_cfg_flags *f, const char *dir, char *buf, size_t len,
    struct tg_store_conf **sc)
{
	struct tg_config *cfg;
	struct tg_err err;
	char sd[PATH_MAX];

	*sc = NULL;
	if ((cfg = cli_load_config(f, &err)) == NULL) {
		/* a folder named, nothing asked of the configuration: a broken
		 * default one does not stand in the way */
		if (dir && f->config == NULL && f->nsets == 0) {
			snprintf(buf, len, "%s", dir);
			return 0;
		}
		return cli_fail_err(&err), -1;
	}
	tg_path_expand(sd, sizeof(sd), tg_cfg_str(cfg, TG_CFG_STATE_DIR));
	if (snprintf(buf, len, "%s", dir ? dir : sd) >= (int)len ||
	    (!dir && strlen(buf) + 3 >= len)) {
		tg_config_free(cfg);
		return cli_fail("the CA folder's path is too long"), -1;
	}
	if (!dir)
		strcat(buf, "/ca");
	if (!strcmp(tg_cfg_str(cfg, TG_CFG_STORE_BACKEND), "etcd")) {
		if ((*sc = malloc(sizeof(**sc))) == NULL) {
			tg_config_free(cfg);
			return cli_fail("out of memory"), -1;
		}
		tg_store_conf_from(cfg, *sc);
	}
	tg_config_free(cfg);
	return 0;
}

/* tlsgate ca crl: the CRL signed again (and its URL set). */
static int
ca_crl(const char *dir, const struct tg_store_conf *sc, int days, const char *url)
{
	struct tg_err err;
	int count = 0;

	if ((url && tg_ca_set_crl_url(dir, sc, url, &err) < 0) ||
	    tg_crl_make(dir, sc, days, &count, &err) < 0)
		return cli_fail_err(&err);
	printf("CRL of %s signed: %s/crl.pem and %s/crl.der, %d revoked, valid %d days\n", dir,
	    dir, dir, count, days > 0 ? days : TG_CRL_DAYS);
	if (url)
		printf("  certificates issued from now on name %s as their CRL distribution point\n",
		    url);
	return 0;
}

int
cmd_ca(int argc, char **argv)
{
	const char *dir = NULL, *name = "tlsgate local CA", *v, *crl_url = NULL;
	char dbuf[PATH_MAX];
	enum tg_key_type kt = TG_KEY_EC_P256;
	int days = 0, i, r, missing = 0, rc;
	struct cli_cfg_flags f;
	struct tg_store_conf *sc = NULL;
	struct tg_err err;

	memset(&f, 0, sizeof(f));

	if (argc < 2 || cli_is_help(argv[1])) {
		fputs(ca_usage, argc < 2 ? stderr : stdout);
		return argc < 2;
	}
	if (!strcmp(argv[1], "serve"))
		return cmd_ca_serve(argc, argv);
	if (!strcmp(argv[1], "enroll"))
		return cmd_ca_enroll(argc, argv);
	if (strcmp(argv[1], "init") && strcmp(argv[1], "install") && strcmp(argv[1], "uninstall") &&
	    strcmp(argv[1], "crl"))
		return cli_fail("ca %s: unknown subcommand; see `tlsgate ca --help`", argv[1]);
	for (i = 2; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(ca_usage, stdout);
			return 0;
		} else if ((v = cli_flag(argc, argv, &i, "--dir", &missing))) {
			dir = v;
		} else if ((v = cli_flag(argc, argv, &i, "--name", &missing))) {
			name = v;
		} else if ((v = cli_flag(argc, argv, &i, "--key", &missing))) {
			if (tg_key_type_parse(v, &kt) < 0)
				return cli_fail("--key %s: use ec-p256, ec-p384, rsa-2048, rsa-3072 "
				    "or ed25519", v);
		} else if ((v = cli_flag(argc, argv, &i, "--crl-url", &missing))) {
			if ((strncmp(v, "http://", 7) && strncmp(v, "https://", 8)) ||
			    strlen(v) > 500 || strpbrk(v, ", \t\r\n\"\\"))
				return cli_fail("--crl-url %s: give an http:// URL of at most 500 "
				    "characters, without commas, quotes or spaces (CRLs are fetched "
				    "without TLS as a rule, RFC 5280)", v);
			crl_url = v;
		} else if ((v = cli_flag(argc, argv, &i, "--days", &missing))) {
			days = atoi(v);
			if (days <= 0 || days > 36500)
				return cli_fail("--days %s: give a number of days from 1 to 36500", v);
		} else if (!missing && (r = cli_store_flag(&f, argc, argv, &i)) != 0) {
			if (r < 0)
				return 1;
		} else {
			return cli_fail(missing ? "%s needs a value" : "ca: unknown argument %s",
			    argv[i]);
		}
	}
	if (cli_ca_where(&f, dir, dbuf, sizeof(dbuf), &sc) < 0)
		return 1;
	dir = dbuf;
	if (!strcmp(argv[1], "crl")) {
		rc = ca_crl(dir, sc, days, crl_url);
		free(sc);
		return rc;
	}
	if (strcmp(argv[1], "init") != 0) {
		char crt[PATH_MAX];
		free(sc);
		if (tg_path_fmt(crt, sizeof(crt), &err, "%s/ca.crt", dir) < 0)
			return cli_fail_err(&err);
		return cli_ca_install(crt, argv[1][0] == 'i');
	}
	rc = tg_ca_init(dir, name, kt, days, &err) < 0 || (crl_url && tg_ca_set_crl_url(dir, sc,
	    crl_url, &err) < 0);
	free(sc);
	if (rc)
		return cli_fail_err(&err);
	printf("created CA \"%s\" in %s\n  certificate: %s/ca.crt (give this to clients)\n"
	    "  key:         %s/ca.key (mode 0600; keep it secret)\n", name, dir, dir, dir);
	return 0;
}
