/*
 * tlsgate: argv to the command groups, nothing else.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <openssl/ssl.h>

#include "cli.h"

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *what;
} cmds[] = {
	{ "serve",  cmd_serve,  "run the TLS gateway and file service" },
	{ "ca",     cmd_ca,     "the local certificate authority: create, revoke, serve over ACME" },
	{ "cert",   cmd_cert,   "issue, request, sign, show and check certificates" },
	{ "acme",   cmd_acme,   "get certificates from Let's Encrypt or another ACME CA" },
	{ "trust",  cmd_trust,  "list, add and remove known client and server keys" },
	{ "store",  cmd_store,  "copy, list and check the stored state (a folder or etcd)" },
	{ "config", cmd_config, "read and edit the configuration" },
	{ "doctor", cmd_doctor, "check a configuration and say what is wrong and how to fix it" },
	{ "status", cmd_status, "ask a running server for its certificates, listeners and counts" },
	{ "get",    cmd_get,    "download a URL with tlsgate's trust rules" },
	{ "put",    cmd_put,    "upload a file to a URL" },
};

static void
usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: tlsgate COMMAND [ARGS]   (tlsgate COMMAND --help for more)\n\n");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(out, "  %-7s %s\n", cmds[i].name, cmds[i].what);
	fprintf(out, "\nSettings: built-in defaults < config file (--config, $TLSGATE_CONFIG,\n"
	    "%s) < TLSGATE_* environment < flags.\n", tg_config_default_path());
}

int
main(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (cli_is_help(argv[1])) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("tlsgate %s (%s)\n", tg_version(), OpenSSL_version(OPENSSL_VERSION));
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);   /* a peer that goes away is an error, not a death */
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(argc - 1, argv + 1);
	return cli_fail("'%s' is not a tlsgate command; see `tlsgate --help`", argv[1]);
}
