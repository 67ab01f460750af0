/*
 * tlsgate serve: load the layered configuration, build the server, say
 * where things are and how to reach it, run until told to stop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "certs.h"
#include "cli.h"
#include "config_int.h"
#include "error.h"
#include "follow.h"
#include "acme_agent.h"
#include "sandbox.h"
#include "workers.h"
#include "daemon.h"
#include "server.h"
#include "store.h"
#include "systemd.h"
#include "tls.h"
#include "util.h"

static const char serve_usage[] =
"usage: tlsgate serve [--config FILE] [--set KEY=VALUE]... [--listen ADDR]\n"
"                     [--mode off|server|mutual] [--cert FILE --key FILE] [--state-dir DIR]\n"
"                     [--autocert NAME[,NAME...] --agree-terms]\n"
"\n"
"Serves the file transfer service (PUT/GET/HEAD/DELETE under files.prefix) over\n"
"plain HTTP (mode off), HTTPS (server) or HTTPS with client certificates (mutual),\n"
"the proxy: routes (path prefix -> http(s) upstream) and the tunnels: (raw TCP,\n"
"TLS on one side).\n"
"With no certificate given, one is made from a local CA kept in state_dir;\n"
"--autocert (tls.auto: acme) orders one from Let's Encrypt or tls.acme.directory\n"
"and renews it; --agree-terms accepts the CA's terms of service.\n"
"Every setting is a key (tlsgate config list); --set KEY=VALUE sets any of them,\n"
"TLSGATE_KEY_NAME=VALUE in the environment too.\n"
"SIGTERM or SIGINT: stop accepting, let requests in flight finish (timeouts.shutdown).\n"
"SIGHUP: reload the configuration and certificates; a broken one is refused\n"
"(tunnels and proxy routes apply at the next start). Certificate files are also\n"
"reloaded when they change on disk.\n"
"--set workers=N (or auto: one per CPU) serves with N processes, each with its own\n"
"SO_REUSEPORT socket; the first process supervises them and takes the signals.\n";

static void
banner(const struct tg_config *cfg, const struct tg_keypair *kp, const struct tg_server *srv)
{
	const char *mode = tg_cfg_str(cfg, TG_CFG_TLS_MODE);
	const char *listen = srv->listen;
	char host[256], url[512], root[PATH_MAX];
	int port = 0, tls = strcmp(mode, "off") != 0, mutual = !strcmp(mode, "mutual");

	tg_parse_hostport(listen, host, sizeof(host), &port);
	if (!host[0] || !strcmp(host, "::") || !strcmp(host, "0.0.0.0"))
		snprintf(host, sizeof(host), "localhost");
	snprintf(url, sizeof(url), strchr(host, ':') ? "%s://[%s]:%d%s" : "%s://%s:%d%s",
	    tls ? "https" : "http", host, port, tg_cfg_str(cfg, TG_CFG_FILES_PREFIX));
	tg_cfg_path(cfg, TG_CFG_FILES_ROOT, root, sizeof(root));
	fprintf(stderr, "tlsgate %s: serving %s (%s) on %s%s, files in %s\n", tg_version(), url,
	    tls ? (mutual ? "HTTPS, client certificates required" : "HTTPS") : "plain HTTP",
	    listen, srv->listen_inherited ? " (a socket from systemd)" : "", root);
	if (tls && !kp->cert[0])
		fprintf(stderr, "  certificate: ordering one for %s from %s; HTTPS clients are refused "
		    "until it arrives (see the acme: lines)\n", tg_config_get(cfg, "tls.acme.names")[0] ?
		    tg_config_get(cfg, "tls.acme.names") : tg_config_get(cfg, "tls.names"),
		    tg_cfg_str(cfg, TG_CFG_TLS_ACME_DIRECTORY));
	else if (tls)
		fprintf(stderr, "  certificate: %s (%s)%s\n", kp->cert, kp->cert_origin,
		    kp->made_cert ? ", just issued" : "");
	if (tls && kp->local_ca[0])
		fprintf(stderr, "  local CA:    %s%s\n", kp->local_ca, kp->made_ca ? " (new)" : "");
	if (tls) {
		char words[400];
		tg_tls_groups_words(tg_cfg_str(cfg, TG_CFG_TLS_GROUPS), words, sizeof(words));
		fprintf(stderr, "  key exchange: %s\n", words);
	}
	if (!tls)
		fprintf(stderr, "  try: curl -T hello.txt %shello.txt\n", url);
	else if (mutual)
		fprintf(stderr, "  make a client certificate: tlsgate cert issue --client --name NAME --out client\n"
		    "  try: curl --cacert %s --cert client.crt --key client.key -T hello.txt %shello.txt\n",
		    kp->local_ca[0] ? kp->local_ca : "CA.crt", url);
	else if (!strcmp(tg_cfg_str(cfg, TG_CFG_TLS_AUTO), "acme") && !tg_cfg_str(cfg,
	    TG_CFG_TLS_CERT)[0])
		fprintf(stderr, "  try: curl -T hello.txt %shello.txt   (with a name the certificate "
		    "holds)\n", url);
	else if (kp->local_ca[0] && !strcmp(tg_cfg_str(cfg, TG_CFG_TLS_AUTO), "local-ca") &&
	    !tg_cfg_str(cfg, TG_CFG_TLS_CERT)[0])
		fprintf(stderr, "  try: curl --cacert %s -T hello.txt %shello.txt\n", kp->local_ca, url);
	else if (!tg_cfg_str(cfg,
	    TG_CFG_TLS_CERT)[0])   /* self-signed: trust the certificate itself */
		fprintf(stderr, "  try: curl --cacert %s -T hello.txt %shello.txt\n", kp->cert, url);
	else
		fprintf(stderr, "  try: curl --cacert YOUR-CA.crt -T hello.txt %shello.txt\n", url);
}

/* The folder of a path (a folder itself stays as it is). */
static void
folder_of(const char *path, char *buf, size_t len)
{
	struct stat sb;

	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
		snprintf(buf, len, "%s", path);
	else
		tg_path_dir(buf, len, path);
}

/*
 * After the listener is bound and every key is loaded: switch users when
 * asked, then confine file access with landlock where the kernel has it.
 */
static int
confine(const struct tg_config *cfg, struct tg_server *srv, struct tg_err *err)
{
	/* files read while serving; the store's only with etcd */
	static const struct { enum tg_cfg_key key; int store; } ro_keys[] = {
		{ TG_CFG_TLS_CERT, 0 }, { TG_CFG_TLS_KEY, 0 }, { TG_CFG_TLS_CLIENTS_CA, 0 },
		{ TG_CFG_CLIENT_CA, 0 }, { TG_CFG_CLIENT_CERT, 0 }, { TG_CFG_CLIENT_KEY, 0 },
		{ TG_CFG_STORE_CA, 1 }, { TG_CFG_STORE_CERT, 1 }, { TG_CFG_STORE_KEY, 1 },
		{ TG_CFG_STORE_PASSWORD_FILE, 1 } };
	char rw[5][PATH_MAX], ro[16][PATH_MAX], tmp[PATH_MAX], hook[PATH_MAX];
	const char *rwp[5], *rop[16], *rxp[6];
	int etcd = !strcmp(tg_cfg_str(cfg, TG_CFG_STORE_BACKEND), "etcd");
	size_t i, nro = 0, nrx = 0;
	int r;

	snprintf(rw[0], sizeof(rw[0]), "%s", srv->state_dir);
	snprintf(rw[1], sizeof(rw[1]), "%s", srv->files_root);
	tg_cfg_path(cfg, TG_CFG_TLS_CLIENTS_KNOWN, tmp, sizeof(tmp));
	tg_path_dir(rw[2], sizeof(rw[2]), tmp);
	tg_cfg_path(cfg, TG_CFG_CLIENT_KNOWN, tmp, sizeof(tmp));
	tg_path_dir(rw[3], sizeof(rw[3]), tmp);
	/* the ACME CA's CA folder: revocations write its CRL */
	snprintf(rw[4], sizeof(rw[4]), "%s", srv->state_dir);
	if (srv->acmeca && tg_cfg_str(cfg, TG_CFG_CA_ACME_CA_DIR)[0])
		tg_cfg_path(cfg, TG_CFG_CA_ACME_CA_DIR, rw[4], sizeof(rw[4]));
	for (i = 0; i < 5; i++)
		rwp[i] = rw[i];
	if (tg_sandbox_drop(tg_cfg_str(cfg, TG_CFG_USER), tg_cfg_str(cfg, TG_CFG_GROUP), rwp, 5,
	    err) < 0)
		return -1;
	if (tg_cfg_str(cfg, TG_CFG_USER)[0])
		tg_log(srv, TG_LOG_INFO, "switched to user %s; %s and files.root now belong to it",
		    tg_cfg_str(cfg, TG_CFG_USER), srv->state_dir);
	if (!tg_cfg_num(cfg, TG_CFG_LANDLOCK))
		return 0;
	for (i = 0; i < sizeof(ro_keys) / sizeof(ro_keys[0]); i++) {
		if (!tg_cfg_str(cfg, ro_keys[i].key)[0] || (!etcd && ro_keys[i].store))
			continue;
		tg_cfg_path(cfg, ro_keys[i].key, tmp, sizeof(tmp));
		folder_of(tmp, ro[nro++], sizeof(ro[0]));
	}
	if (tg_cfg_file(cfg))
		tg_path_dir(ro[nro++], sizeof(ro[0]), tg_cfg_file(cfg));
	snprintf(ro[nro++], sizeof(ro[0]), "/etc/ssl");
	snprintf(ro[nro++], sizeof(ro[0]), "/proc/self");   /* sanitizers read their maps */
	if (srv->acme_on || etcd || srv->acmeca) {
		/* the ACME thread resolves the CA's name, the store's threads the
		 * members' (resolv.conf, hosts, nsswitch and the NSS modules it
		 * loads); the ACME thread may run the DNS hook */
		snprintf(ro[nro++], sizeof(ro[0]), "/etc");
		if (srv->acme_on && tg_cfg_str(cfg, TG_CFG_TLS_ACME_CA_CERT)[0]) {
			tg_cfg_path(cfg, TG_CFG_TLS_ACME_CA_CERT, tmp, sizeof(tmp));
			folder_of(tmp, ro[nro++], sizeof(ro[0]));
		}
		rxp[nrx++] = "/usr";
		rxp[nrx++] = "/lib";
		rxp[nrx++] = "/lib64";
		rxp[nrx++] = "/bin";
		if (srv->acme_set && srv->acme_set->dns_hook[0] == '/') {
			folder_of(srv->acme_set->dns_hook, hook, sizeof(hook));
			rxp[nrx++] = hook;
		}
	}
	for (i = 0; i < nro; i++)
		rop[i] = ro[i];
	r = tg_sandbox_landlock(rwp, 5, rop, nro, rxp, nrx, err);
	if (r < 0)
		return -1;
	tg_log(srv, TG_LOG_DEBUG, r == 1 ? "landlock: not offered by this kernel" :
	    "landlock: file access limited to state_dir, files.root, the known files and the "
	    "folders of the configured certificates");
	return 0;
}

/*
 * A cluster node (store.backend etcd), before anything is built: state_dir
 * becomes a copy of the store (the server reads its files from there), and
 * the session ticket keys the cluster's. With the store unreachable, the
 * node starts from the copy it has, and says so; with no copy at all of
 * what it needs, the steps that need the store fail later in words.
 */
static int
join_cluster(const struct tg_config *cfg, struct tg_err *err)
{
	struct tg_store_conf *sc = malloc(sizeof(*sc));
	struct tg_store *st;
	struct tg_err e2;
	long long rev = 0;
	size_t n = 0;

	if (sc == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	tg_store_conf_from(cfg, sc);
	if (tg_store_pull(sc, &rev, &n, &e2) == 0) {
		fprintf(stderr, "tlsgate: store: %zu key%s copied from etcd (revision %lld) into %s\n",
		    n, n == 1 ? "" : "s", rev, sc->state_dir);
	} else if (e2.code == TG_E_CONFIG_VALUE) {
		*err = e2;
		free(sc);
		return -1;
	} else {
		fprintf(stderr, "tlsgate: warning: store: %s; starting from the copy in %s (writes "
		    "are refused until the store is back)\n", e2.msg, sc->state_dir);
	}
	if ((st = tg_store_open_conf(sc, 1, err)) == NULL) {
		free(sc);
		return -1;
	}
	if (tg_tickets_join(st, sc->state_dir, &e2) < 0)
		fprintf(stderr, "tlsgate: warning: store: the session ticket keys were not checked "
		    "(%s); this node uses its copy of them, or its own until the store sends them\n",
		    e2.msg);
	tg_store_free(st);
	free(sc);
	return 0;
}

/* SIGHUP: the same layers again, from the same flags. */
static int
reload(void *arg, struct tg_config **cfg, struct tg_err *err)
{
	*cfg = cli_load_config(arg, err);
	return *cfg ? 0 : -1;
}

int
cmd_serve(int argc, char **argv)
{
	static struct cli_cfg_flags f;   /* the reload reads it while serving */
	struct tg_config *cfg;
	struct tg_err err;
	int i, r;

	memset(&f, 0, sizeof(f));
	tg_sd_init();   /* sockets systemd passed, before any listener opens */
	for (i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(serve_usage, stdout);
			return 0;
		}
		r = cli_cfg_flag(&f, argc, argv, &i);
		if (r < 0)
			return 1;
		if (r == 0)
			return cli_fail("serve: unknown argument %s; see `tlsgate serve --help`", argv[i]);
	}
	if ((cfg = cli_load_config(&f, &err)) == NULL)
		return cli_fail_err(&err);
	return cli_serve(cfg, reload, &f, NULL);
}

int
cli_serve(struct tg_config *cfg, int (*reload_fn)(void *, struct tg_config **,
    struct tg_err *), void *reload_arg, void (*started)(const struct tg_server *,
    const struct tg_config *))
{
	struct tg_server *srv;
	struct tg_keypair kp;
	struct tg_err err;
	char sbuf[400];
	int i;

	if (!strcmp(tg_cfg_str(cfg, TG_CFG_STORE_BACKEND), "etcd") && join_cluster(cfg, &err) < 0) {
		tg_config_free(cfg);
		return cli_fail_err(&err);
	}
	if ((srv = tg_server_new(cfg, &kp, &err)) == NULL) {
		tg_config_free(cfg);
		return cli_fail_err(&err);
	}
	/* the other workers' sockets are bound before privileges are dropped */
	if (srv->workers > 1 && tg_workers_prepare(srv, &err) < 0) {
		tg_config_free(cfg);
		tg_server_free(srv);
		return cli_fail_err(&err);
	}
	if (confine(cfg, srv, &err) < 0) {
		tg_config_free(cfg);
		tg_server_free(srv);
		return cli_fail_err(&err);
	}
	if (started)
		started(srv, cfg);   /* says what it serves itself */
	else
		banner(cfg, &kp, srv);
	for (i = 0; tg_sd_leftover((size_t)i, sbuf, sizeof(sbuf)) == 0; i++)
		fprintf(stderr, "tlsgate: warning: systemd passed the socket %s and no listener "
		    "is configured for it; closed (set listen, admin.listen or a tunnel's listen "
		    "to its address, or name it https, admin or tunnel-N)\n", sbuf);
	tg_config_free(cfg);
	srv->reload = reload_fn;
	srv->reload_arg = reload_arg;
	if (srv->workers > 1) {
		int status = 0;
		if (tg_workers_run(srv, &status) == 0) {   /* the supervisor, all ended */
			tg_server_free(srv);
			return status;
		}
	}
	tg_server_run(srv);
	tg_server_free(srv);
	return 0;
}
