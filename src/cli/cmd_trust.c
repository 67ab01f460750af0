/*
 * tlsgate trust list|add|remove: the known-clients and known-servers files.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "config_int.h"
#include "error.h"
#include "pins.h"
#include "pki.h"
#include "trust.h"
#include "util.h"

static const char trust_usage[] =
"usage: tlsgate trust list   [--store known-clients|known-servers]\n"
"       tlsgate trust add    [--store S] IDENTITY sha256:PIN [--comment TEXT]\n"
"       tlsgate trust add    [--store S] --cert FILE [IDENTITY]\n"
"       tlsgate trust add    HOST:PORT [--server-name NAME] [--ca-cert FILE]   (fetched live)\n"
"       tlsgate trust remove [--store S] IDENTITY [sha256:PIN]\n"
"\n"
"The stores are tls.clients.known and client.known (in state_dir unless\n"
"absolute); --file PATH names a file directly. add and remove default to\n"
"known-servers; a live add records the server as HOST:PORT, the identity\n"
"tlsgate's clients use. A client's identity is its first DNS SAN, else its CN.\n"
"Also: --config FILE, --set KEY=VALUE, --state-dir DIR.\n";

struct trust_args {
	struct cli_client cl;
	const char *store, *file, *cert, *comment;
	const char *pos[3];
	int npos;
};

static int
parse(int argc, char **argv, struct trust_args *a)
{
	const char *v;
	int i, r, missing = 0;

	for (i = 2; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(trust_usage, stdout);
			exit(0);
		}
		if ((v = cli_flag(argc, argv, &i, "--store", &missing))) {
			if (strcmp(v, "known-clients") && strcmp(v, "known-servers"))
				return cli_fail("--store %s: use known-clients or known-servers", v), -1;
			a->store = v;
		} else if ((v = cli_flag(argc, argv, &i, "--file", &missing))) {
			a->file = v;
		} else if ((v = cli_flag(argc, argv, &i, "--comment", &missing))) {
			a->comment = v;
		} else if (!strcmp(argv[1], "add") && (v = cli_flag(argc, argv, &i, "--cert", &missing))) {
			a->cert = v;
		} else if (missing) {
			return cli_fail("%s needs a value", argv[i]), -1;
		} else if ((r = cli_client_flag(&a->cl, argc, argv, &i)) != 0) {
			if (r < 0)
				return -1;
		} else if (argv[i][0] == '-' && argv[i][1] == '-') {
			return cli_fail("trust %s: unknown option %s", argv[1], argv[i]), -1;
		} else if (a->npos < 3) {
			a->pos[a->npos++] = argv[i];
		} else {
			return cli_fail("trust %s: too many arguments", argv[1]), -1;
		}
	}
	return 0;
}

/* The known file's path; with store.backend etcd and the file in state_dir,
 * also the cluster's store and the file's name there (*shared, freed by
 * the caller): the cluster's copy is the one that counts. */
static int
store_path(struct trust_args *a, const char *store, char *buf, size_t len,
    struct tg_store **shared, char *name, size_t nlen)
{
	struct tg_config *cfg;
	struct tg_store_conf *sc;
	struct tg_err err;

	*shared = NULL;
	if (a->file) {
		snprintf(buf, len, "%s", a->file);
		return 0;
	}
	if ((cfg = cli_load_config(&a->cl.cfg, &err)) == NULL)
		return cli_fail_err(&err), -1;
	tg_cfg_path(cfg, !strcmp(store,
	    "known-clients") ? TG_CFG_TLS_CLIENTS_KNOWN : TG_CFG_CLIENT_KNOWN,
	    buf, len);
	if ((sc = malloc(sizeof(*sc))) == NULL) {
		tg_config_free(cfg);
		return cli_fail("out of memory"), -1;
	}
	tg_store_conf_from(cfg, sc);
	tg_config_free(cfg);
	if (sc->etcd && tg_store_name_of(sc, buf, name, nlen) == 0 &&
	    (*shared = tg_store_open_conf(sc, 0, &err)) == NULL) {
		free(sc);
		return cli_fail_err(&err), -1;
	}
	free(sc);
	return 0;
}

static int
list_one(const char *store, const char *path, struct tg_store *shared, const char *name)
{
	struct tg_err err;
	struct tg_known *k;
	const char *id, *pin, *comment;
	size_t i, line;

	if (shared) {
		char *text = NULL;
		size_t tl = 0;
		/* the copied file and every identity's key in the store */
		if (tg_known_etcd_text(shared, name, &text, &tl, &err) < 0) {
			tg_store_free(shared);
			return cli_fail_err(&err);
		}
		k = tg_known_parse(text ? text : "", tl, name, &err);
		free(text);
		printf("# %s (%s, the cluster's copy)\n", store, tg_store_path(shared));
		tg_store_free(shared);
	} else {
		k = tg_known_load(path, &err);
		if (k)
			printf("# %s (%s)\n", store, path);
	}
	if (k == NULL)
		return cli_fail_err(&err);
	for (i = 0; tg_known_entry(k, i, &id, &pin, &comment, &line) == 0; i++)
		printf("%s %s%s%s\n", id, pin, comment ? "  # " : "", comment ? comment : "");
	if (i == 0)
		printf("# (empty)\n");
	tg_known_free(k);
	return 0;
}

/* The pin of a live server, as its clients will see it. */
static int
live_pin(struct trust_args *a, const char *target, char *identity, size_t il, char *pin,
    size_t pl, struct tg_err *err)
{
	struct tg_client_opts o;
	struct tg_client *c = NULL;
	STACK_OF(X509) *chain;
	char host[256];
	int port, trusted;
	const char *verdict;

	if (tg_parse_hostport(target, host, sizeof(host), &port) < 0 || !host[0])
		return tg_err_set(err, TG_E_USAGE, "%s: want HOST:PORT", target);
	if (cli_client_opts(&a->cl, &o, err) < 0)
		return -1;
	o.trust = "ca";   /* only to see the chain; the pin is what is recorded */
	if (tg_client_dial(host, port, 1, &o, a->cl.store, 0, &c, err) < 0)
		return -1;
	chain = tg_client_chain(c);
	if (chain == NULL || sk_X509_num(chain) == 0 ||
	    tg_spki_pin(sk_X509_value(chain, 0), pin, pl) < 0) {
		tg_client_close(c);
		return tg_err_set(err, TG_E_TLS, "%s sent no certificate", target);
	}
	tg_trust_server_identity(o.server_name && o.server_name[0] ? o.server_name : host, port,
	    identity, il);
	verdict = tg_client_verdict(c, &trusted);
	if (!trusted)
		fprintf(stderr, "note: its chain does not verify (%s); pinning the key anyway\n", verdict);
	tg_client_close(c);
	return 0;
}

int
cmd_trust(int argc, char **argv)
{
	struct trust_args a;
	struct tg_err err;
	char path[PATH_MAX], identity[320], pin[64], name[256];
	struct tg_store *shared = NULL;
	const char *store;
	size_t removed;
	int rv;

	memset(&a, 0, sizeof(a));
	if (argc < 2 || cli_is_help(argv[1])) {
		fputs(trust_usage, argc < 2 ? stderr : stdout);
		return argc < 2;
	}
	if (parse(argc, argv, &a) < 0)
		return 1;
	store = a.store ? a.store : "known-servers";
	if (!strcmp(argv[1], "list")) {
		if (a.npos)
			return cli_fail("trust list takes no arguments");
		if (a.store || a.file) {
			if (store_path(&a, store, path, sizeof(path), &shared, name, sizeof(name)) < 0)
				return 1;
			return list_one(store, path, shared, name);
		}
		if (store_path(&a, "known-clients", path, sizeof(path), &shared, name,
		    sizeof(name)) < 0 || list_one("known-clients", path, shared, name) != 0 ||
		    store_path(&a, "known-servers", path, sizeof(path), &shared, name, sizeof(name)) < 0)
			return 1;
		return list_one("known-servers", path, shared, name);
	}
	if (strcmp(argv[1], "remove") != 0 && strcmp(argv[1], "add") != 0)
		return cli_fail("trust %s: unknown subcommand; see `tlsgate trust --help`", argv[1]);
	if (!strcmp(argv[1], "remove")) {
		if (a.npos < 1 || a.npos > 2)
			return cli_fail("usage: tlsgate trust remove [--store S] IDENTITY [sha256:PIN]");
		if (store_path(&a, store, path, sizeof(path), &shared, name, sizeof(name)) < 0)
			return 1;
		rv = tg_known_remove(shared, name, path, a.pos[0], a.npos == 2 ? a.pos[1] : NULL,
		    &removed, &err);
		if (shared)
			snprintf(path, sizeof(path), "%s%s", tg_store_path(shared), name);
		tg_store_free(shared);
		if (rv < 0)
			return cli_fail_err(&err);
		if (removed == 0)
			return cli_fail("%s: no entry for %s", path, a.pos[0]);
		fprintf(stderr, "removed %zu line%s for %s from %s\n", removed, removed == 1 ? "" : "s",
		    a.pos[0], path);
		return 0;
	}
	if (a.cert) {
		struct tg_err e2;
		STACK_OF(X509) *sk = tg_certs_read(a.cert, &e2);
		if (sk == NULL)
			return cli_fail_err(&e2);
		tg_spki_pin(sk_X509_value(sk, 0), pin, sizeof(pin));
		if (a.npos >= 1)
			snprintf(identity, sizeof(identity), "%s", a.pos[0]);
		else
			tg_trust_client_identity(sk_X509_value(sk, 0), identity, sizeof(identity));
		sk_X509_pop_free(sk, X509_free);
	} else if (a.npos == 2) {
		snprintf(identity, sizeof(identity), "%s", a.pos[0]);
		snprintf(pin, sizeof(pin), "%s", a.pos[1]);
	} else if (a.npos == 1) {
		if (live_pin(&a, a.pos[0], identity, sizeof(identity), pin, sizeof(pin), &err) < 0)
			return cli_fail_err(&err);
	} else {
		return cli_fail("usage: tlsgate trust add IDENTITY sha256:PIN | --cert FILE | HOST:PORT");
	}
	if (store_path(&a, store, path, sizeof(path), &shared, name, sizeof(name)) < 0)
		return 1;
	rv = tg_known_record(shared, name, path, identity, pin, a.comment ? a.comment :
	    "added by hand", 0, &err);
	if (shared)
		snprintf(path, sizeof(path), "%s%s", tg_store_path(shared), name);
	tg_store_free(shared);
	if (rv < 0)
		return cli_fail_err(&err);
	fprintf(stderr, "%s %s is trusted in %s\n", identity, pin, path);
	return 0;
}
