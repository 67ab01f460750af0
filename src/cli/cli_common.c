/*
 * Shared CLI plumbing: error printing, flag scanning, and the layered
 * configuration load that serve, config and the clients use.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config_int.h"
#include "pki.h"
#include "store.h"
#include "error.h"
#include "util.h"

extern char **environ;

int
cli_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("tlsgate: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int
cli_fail_err(const struct tg_err *err)
{
	return cli_fail("%s", err->msg[0] ? err->msg : "failed");
}

int
cli_is_help(const char *arg)
{
	return !strcmp(arg, "--help") || !strcmp(arg, "-h") || !strcmp(arg, "help");
}

const char *
cli_flag(int argc, char **argv, int *i, const char *flag, int *missing)
{
	size_t n = strlen(flag);

	if (strncmp(argv[*i], flag, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing = 1;
		return NULL;
	}
	return argv[++*i];
}

int
cli_store_flag(struct cli_cfg_flags *f, int argc, char **argv, int *i)
{
	static const char *const ours[] = { "--config", "--set", "--state-dir" };
	size_t k, n;

	for (k = 0; k < sizeof(ours) / sizeof(ours[0]); k++) {
		n = strlen(ours[k]);
		if (!strncmp(argv[*i], ours[k], n) && (argv[*i][n] == '\0' || argv[*i][n] == '='))
			return cli_cfg_flag(f, argc, argv, i);
	}
	return 0;
}

int
cli_cfg_flag(struct cli_cfg_flags *f, int argc, char **argv, int *i)
{
	static const struct { const char *flag, *key; } shorts[] = {
		{ "--listen", "listen" }, { "--mode", "tls.mode" },
		{ "--cert", "tls.cert" }, { "--key", "tls.key" },
		{ "--state-dir", "state_dir" },
	};
	static char buf[64][1024];
	const char *v;
	int missing = 0;
	size_t k;

	if ((v = cli_flag(argc, argv, i, "--config", &missing)) != NULL) {
		f->config = v;
		return 1;
	}
	if (missing)
		return cli_fail("--config needs a file name"), -1;
	if (f->nsets >= 64)
		return cli_fail("too many configuration flags"), -1;
	if ((v = cli_flag(argc, argv, i, "--set", &missing)) != NULL) {
		if (strchr(v, '=') == NULL)
			return cli_fail("--set %s: write KEY=VALUE, e.g. --set tls.mode=mutual", v), -1;
		f->sets[f->nsets] = v;
		f->origins[f->nsets++] = "--set";
		return 1;
	}
	if (missing)
		return cli_fail("--set needs KEY=VALUE"), -1;
	if (!strcmp(argv[*i], "--allow-insecure-key-permissions")) {
		f->sets[f->nsets] = "tls.allow_insecure_key_permissions=true";
		f->origins[f->nsets++] = "--allow-insecure-key-permissions";
		return 1;
	}
	if ((v = cli_flag(argc, argv, i, "--autocert", &missing)) != NULL) {
		if (f->nsets + 2 > 64)
			return cli_fail("too many configuration flags"), -1;
		f->sets[f->nsets] = "tls.auto=acme";
		f->origins[f->nsets++] = "--autocert";
		snprintf(buf[f->nsets], sizeof(buf[0]), "tls.acme.names=%s", v);
		f->sets[f->nsets] = buf[f->nsets];
		f->origins[f->nsets++] = "--autocert";
		return 1;
	}
	if (missing)
		return cli_fail("--autocert needs NAME[,NAME...]"), -1;
	if (!strcmp(argv[*i], "--agree-terms")) {
		f->sets[f->nsets] = "tls.acme.agree_terms=true";
		f->origins[f->nsets++] = "--agree-terms";
		return 1;
	}
	for (k = 0; k < sizeof(shorts) / sizeof(shorts[0]); k++) {
		if ((v = cli_flag(argc, argv, i, shorts[k].flag, &missing)) != NULL) {
			snprintf(buf[f->nsets], sizeof(buf[0]), "%s=%s", shorts[k].key, v);
			f->sets[f->nsets] = buf[f->nsets];
			f->origins[f->nsets++] = shorts[k].flag;
			return 1;
		}
		if (missing)
			return cli_fail("%s needs a value", shorts[k].flag), -1;
	}
	return 0;
}

struct tg_config *
cli_load_config(const struct cli_cfg_flags *f, struct tg_err *err)
{
	struct tg_config *cfg = tg_config_new();
	const char *path = f->config ? f->config : tg_config_default_path();
	int named = f->config != NULL || (getenv("TLSGATE_CONFIG") && getenv("TLSGATE_CONFIG")[0]);
	int i;

	if (cfg == NULL) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return NULL;
	}
	if (tg_config_load_file(cfg, path, named, err) < 0)
		goto fail;
	tg_config_note_file(cfg, path);
	if (tg_config_load_env(cfg, environ, err) < 0)
		goto fail;
	for (i = 0; i < f->nsets; i++) {
		char key[256];
		const char *eq = strchr(f->sets[i], '=');
		snprintf(key, sizeof(key), "%.*s", (int)(eq - f->sets[i]), f->sets[i]);
		if (tg_config_set(cfg, key, eq + 1, f->origins[i], err) < 0)
			goto fail;
	}
	if (!f->no_validate && tg_config_validate(cfg, err) < 0)
		goto fail;
	tg_pki_allow_insecure_key_permissions((int)tg_cfg_num(cfg,
	    TG_CFG_TLS_ALLOW_INSECURE_KEY_PERMISSIONS));
	return cfg;
fail:
	tg_config_free(cfg);
	return NULL;
}

int
cli_client_flag(struct cli_client *c, int argc, char **argv, int *i)
{
	const struct { const char *flag; const char **dst; } map[] = {
		{ "--trust", &c->trust }, { "--ca-cert", &c->ca },
		{ "--known-servers", &c->known }, { "--server-name", &c->server_name },
		{ "--cert", &c->cert }, { "--key", &c->key }, { "--crl", &c->crl },
	};
	const char *v;
	int missing = 0;
	size_t k;

	for (k = 0; k < sizeof(map) / sizeof(map[0]); k++) {
		if ((v = cli_flag(argc, argv, i, map[k].flag, &missing)) != NULL) {
			*map[k].dst = v;
			return 1;
		}
		if (missing)
			return cli_fail("%s needs a value", map[k].flag), -1;
	}
	if ((v = cli_flag(argc, argv, i, "--timeout", &missing)) != NULL) {
		int64_t ms;
		if (tg_parse_duration(v, &ms) < 0 || ms <= 0 || ms > 86400000)
			return cli_fail("--timeout %s: give a duration such as 30s or 2m", v), -1;
		c->timeout_ms = (int)ms;
		return 1;
	}
	if (missing)
		return cli_fail("--timeout needs a value"), -1;
	if (!strncmp(argv[*i], "--config", 8) || !strncmp(argv[*i], "--set", 5) ||
	    !strncmp(argv[*i], "--state-dir", 11) || !strcmp(argv[*i], "--allow-insecure-key-permissions"))
		return cli_cfg_flag(&c->cfg, argc, argv, i);
	return 0;
}

static void
print_warning(const char *msg)
{
	fprintf(stderr, "tlsgate: WARNING: %s\n", msg);
}

int
cli_client_opts(struct cli_client *c, struct tg_client_opts *o, struct tg_err *err)
{
	struct tg_config *cfg = cli_load_config(&c->cfg, err);
	char sd[PATH_MAX];

	if (cfg == NULL)
		return -1;
	memset(o, 0, sizeof(*o));
	c->store = NULL;
	snprintf(c->bufs[0], sizeof(c->bufs[0]), "%s", c->trust ? c->trust : tg_cfg_str(cfg,
	    TG_CFG_CLIENT_TRUST));
	snprintf(c->bufs[1], sizeof(c->bufs[1]), "%s", c->ca ? c->ca : tg_cfg_str(cfg,
	    TG_CFG_CLIENT_CA));
	snprintf(c->bufs[2], sizeof(c->bufs[2]), "%s", c->server_name ? c->server_name :
	    tg_cfg_str(cfg, TG_CFG_CLIENT_SERVER_NAME));
	snprintf(c->bufs[3], sizeof(c->bufs[3]), "%s", c->cert ? c->cert : tg_cfg_str(cfg,
	    TG_CFG_CLIENT_CERT));
	snprintf(c->bufs[4], sizeof(c->bufs[4]), "%s", c->key ? c->key : tg_cfg_str(cfg,
	    TG_CFG_CLIENT_KEY));
	if (tg_path_expand(sd, sizeof(sd), tg_cfg_str(cfg, TG_CFG_STATE_DIR)) < 0 ||
	    tg_path_fmt(c->bufs[5], sizeof(c->bufs[5]), err, "%s/ca/ca.crt", sd) < 0) {
		tg_config_free(cfg);
		return tg_err_set(err, TG_E_CONFIG_VALUE, "state_dir: the path is too long");
	}
	snprintf(c->bufs[7], sizeof(c->bufs[7]), "%s", tg_cfg_str(cfg, TG_CFG_CLIENT_GROUPS));
	if (c->crl)
		snprintf(c->bufs[8], sizeof(c->bufs[8]), "%s", c->crl);
	else
		tg_cfg_path(cfg, TG_CFG_CLIENT_CRL, c->bufs[8], sizeof(c->bufs[8]));
	c->crl_soft = !strcmp(tg_cfg_str(cfg, TG_CFG_CLIENT_CRL_POLICY), "soft");
	if (c->known)
		snprintf(c->bufs[6], sizeof(c->bufs[6]), "%s", c->known);
	else
		tg_cfg_path(cfg, TG_CFG_CLIENT_KNOWN, c->bufs[6], sizeof(c->bufs[6]));
	/* the node's own client certificate, made by `serve` in mutual mode */
	if (!c->bufs[3][0] && !c->bufs[4][0]) {
		if (tg_path_fmt(c->bufs[3], sizeof(c->bufs[3]), NULL, "%s/certs/client.crt", sd) < 0 ||
		    tg_path_fmt(c->bufs[4], sizeof(c->bufs[4]), NULL, "%s/certs/client.key", sd) < 0 ||
		    access(c->bufs[3], R_OK) != 0 || access(c->bufs[4], R_OK) != 0)
			c->bufs[3][0] = c->bufs[4][0] = '\0';
	}
	if (!strcmp(tg_cfg_str(cfg, TG_CFG_STORE_BACKEND), "etcd")) {
		/* one command, one thread: a static copy outlives the options */
		static struct tg_store_conf sc;
		tg_store_conf_from(cfg, &sc);
		c->store = &sc;
	}
	tg_config_free(cfg);
	o->trust = c->bufs[0];
	o->ca = c->bufs[1];
	o->server_name = c->bufs[2];
	o->cert = c->bufs[3];
	o->key = c->bufs[4];
	o->local_ca = c->bufs[5];
	o->known = c->bufs[6];
	o->groups = c->bufs[7];
	o->crl = c->bufs[8];
	o->crl_soft_fail = c->crl_soft;
	o->warn = print_warning;
	o->timeout_ms = c->timeout_ms ? c->timeout_ms : 30000;
	if (strcmp(o->trust, "ca") != 0 && strcmp(o->trust, "tofu") && strcmp(o->trust, "whitelist") &&
	    strcmp(o->trust, "ca-or-tofu") && strcmp(o->trust, "insecure-no-validation")) {
		return tg_err_set(err, TG_E_USAGE, "--trust %.200s: use ca, tofu, whitelist, "
		    "ca-or-tofu or insecure-no-validation", o->trust);
	}
	return 0;
}
