/*
 * What the command groups share: printing errors the one way, the common
 * configuration flags, and small argv helpers.
 */
#ifndef TG_CLI_H
#define TG_CLI_H

#include <tlsgate/tlsgate.h>

/* Prints "tlsgate: MSG" on stderr and returns 1 (the failure exit code). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_fail_err(const struct tg_err *err);

/* The value of "--flag VALUE" or "--flag=VALUE" at argv[*i]; advances *i.
 * Returns NULL when argv[*i] is not that flag. A flag without its value
 * sets *missing. */
const char *cli_flag(int argc, char **argv, int *i, const char *flag, int *missing);
int cli_is_help(const char *arg);

/* Configuration flags every command that reads the config accepts:
 * --config FILE, --set KEY=VALUE, --listen, --mode, --cert, --key. */
struct cli_cfg_flags {
	const char *config;
	const char *sets[64];   /* "key=value" or mapped short flags */
	const char *origins[64];
	int nsets;
	int no_validate;   /* config get/list show a model that may not validate */
};
/* Consumes a config flag at argv[*i]; 1 consumed, 0 not ours, -1 error. */
int cli_cfg_flag(struct cli_cfg_flags *f, int argc, char **argv, int *i);
/* The same for --config, --set and --state-dir only: commands that read
 * where the state lives, not what to serve. */
int cli_store_flag(struct cli_cfg_flags *f, int argc, char **argv, int *i);
/* defaults < file < env < flags, then validation. */
struct tg_config *cli_load_config(const struct cli_cfg_flags *f, struct tg_err *err);

int cli_default_ca_dir(char *buf, size_t len);
struct tg_store_conf;
/* The CA folder (dir, or state_dir/ca) into buf, and when the configuration
 * names a cluster's store, its conf (*sc, malloc'ed, the caller frees;
 * NULL otherwise): a cluster's CA revokes through the store. */
int cli_ca_where(const struct cli_cfg_flags *f, const char *dir, char *buf, size_t len,
    struct tg_store_conf **sc);
int cmd_ca_serve(int argc, char **argv);    /* cmd_ca_acme.c */
int cmd_ca_enroll(int argc, char **argv);

struct tg_server;
/* Serves cfg (taken) until stopped: tlsgate serve and tlsgate ca serve.
 * reload_fn builds the configuration again on SIGHUP; started, if not
 * NULL, is called once the listeners are bound. The exit status. */
int cli_serve(struct tg_config *cfg, int (*reload_fn)(void *, struct tg_config **,
    struct tg_err *), void *reload_arg, void (*started)(const struct tg_server *,
    const struct tg_config *));
/* ca install / uninstall of the CA certificate file ca. */
int cli_ca_install(const char *ca, int install);

/* Client-side settings for get, put and cert show|check: client.* from the
 * configuration, overridden by --trust, --ca-cert, --known-servers,
 * --server-name, --cert, --key, --timeout. */
struct cli_client {
	struct cli_cfg_flags cfg;
	const char *trust, *ca, *known, *server_name, *cert, *key;
	int timeout_ms;
	char bufs[9][4096];
	const char *crl;        /* --crl FILE */
	int crl_soft;
	/* a cluster node's store (store.backend etcd), set by cli_client_opts:
	 * pins in its state_dir are recorded through it; NULL otherwise */
	const struct tg_store_conf *store;
};
int cli_client_flag(struct cli_client *c, int argc, char **argv, int *i);
int cli_client_opts(struct cli_client *c, struct tg_client_opts *o, struct tg_err *err);

int cmd_acme(int argc, char **argv);
int cmd_ca(int argc, char **argv);
int cmd_cert(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_put(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_trust(int argc, char **argv);
int cmd_store(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_doctor(int argc, char **argv);

#endif
