/*
 * tlsgate config get|set|unset|list: the layered model read back, and the
 * file edited in place (comments and the rest of it kept).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config_int.h"
#include "error.h"

static const char config_usage[] =
"usage: tlsgate config list              every key: value and where it came from\n"
"       tlsgate config get KEY           the value in effect\n"
"       tlsgate config set KEY VALUE     write KEY into the config file\n"
"       tlsgate config unset KEY         remove KEY from the config file\n"
"options: --config FILE (else $TLSGATE_CONFIG, else %s)\n"
"Lists are written a,b,c. Sizes take KiB/MiB/GiB, durations s/m/h/d.\n";

int
cmd_config(int argc, char **argv)
{
	struct cli_cfg_flags f;
	struct tg_config *cfg;
	struct tg_err err;
	const char *args[3] = { NULL, NULL, NULL }, *path, *doc, *k;
	int i, n = 0, r;
	size_t j;

	memset(&f, 0, sizeof(f));
	f.no_validate = 1;
	for (i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			printf(config_usage, tg_config_default_path());
			return 0;
		}
		if (argv[i][0] == '-' && argv[i][1] == '-') {
			if ((r = cli_cfg_flag(&f, argc, argv, &i)) < 0)
				return 1;
			if (r == 0)
				return cli_fail("config: unknown option %s", argv[i]);
			continue;
		}
		if (n == 3)
			return cli_fail("config: too many arguments; see `tlsgate config --help`");
		args[n++] = argv[i];
	}
	if (n == 0) {
		fprintf(stderr, config_usage, tg_config_default_path());
		return 1;
	}
	path = f.config ? f.config : tg_config_default_path();
	if (!strcmp(args[0], "set") || !strcmp(args[0], "unset")) {
		int set = args[0][0] == 's';
		if ((set && n != 3) || (!set && n != 2))
			return cli_fail(set ? "usage: tlsgate config set KEY VALUE" :
			    "usage: tlsgate config unset KEY");
		if (tg_config_edit(path, args[1], set ? args[2] : NULL, &err) < 0)
			return cli_fail_err(&err);
		fprintf(stderr, "%s %s in %s\n", set ? "set" : "removed", args[1], path);
		return 0;
	}
	if ((cfg = cli_load_config(&f, &err)) == NULL)
		return cli_fail_err(&err);
	if (!strcmp(args[0], "get") && n == 2) {
		const char *v = tg_config_get(cfg, args[1]);
		if (v == NULL) {
			tg_config_free(cfg);
			return cli_fail("%s: unknown key; see `tlsgate config list`", args[1]);
		}
		printf("%s\n", v);
	} else if (!strcmp(args[0], "list") && n == 1) {
		for (j = 0; (k = tg_config_key(j, &doc)) != NULL; j++)
			printf("%-24s = %-40s # %s\n", k, tg_config_get(cfg, k), tg_config_origin(cfg, k));
		for (j = 0; (k = tg_config_entry_key(cfg, j)) != NULL; j++)
			printf("%-24s = %-40s # %s\n", k, tg_config_get(cfg, k), tg_config_origin(cfg, k));
	} else {
		tg_config_free(cfg);
		return cli_fail("config %s: see `tlsgate config --help`", args[0]);
	}
	tg_config_free(cfg);
	return 0;
}
