/*
 * Configuration and errors: the defaults, a YAML file on top, one value set
 * by hand, and a value the library refuses, explained.
 *
 *   cc config.c $(pkg-config --cflags --libs tlsgate) -o config
 *   ./config [tlsgate.yaml]
 */
#include <stdio.h>

#include <tlsgate/tlsgate.h>

int
main(int argc, char **argv)
{
	struct tg_config *cfg = tg_config_new();
	struct tg_err err;
	int rc = 1;

	if (cfg == NULL)
		return 1;
	if (argc > 1 && tg_config_load_file(cfg, argv[1], 1, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		goto out;
	}
	if (tg_config_set(cfg, "listen", "127.0.0.1:8443", "example", &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		goto out;
	}
	printf("listen = %s (from %s)\n", tg_config_get(cfg, "listen"),
	    tg_config_origin(cfg, "listen"));
	printf("tls.mode = %s (from %s)\n", tg_config_get(cfg, "tls.mode"),
	    tg_config_origin(cfg, "tls.mode"));
	/* a value the key does not take: the error says what and where */
	if (tg_config_set(cfg, "tls.min_version", "1.0", "example", &err) < 0)
		printf("refused: %s [%s]\n", err.msg, tg_code_name(err.code));
	rc = err.code == TG_E_CONFIG_VALUE ? 0 : 1;
out:
	tg_config_free(cfg);
	return rc;
}
