/* The configuration model: typed validation on set, YAML origins, layering. */
#include <string.h>

#include "check.h"
#include "config_int.h"
#include "error.h"

static const struct {
	const char *key, *value;
	int ok;
	const char *normal;
} sets[] = {
	{ "tls.mode", "mutual", 1, "mutual" },
	{ "tls.mode", "MUTUAL", 0, NULL },
	{ "files.max_upload", "10MiB", 1, "10MiB" },
	{ "files.max_upload", "10 apples", 0, NULL },
	{ "files.enabled", "yes", 1, "true" },
	{ "files.enabled", "maybe", 0, NULL },
	{ "timeouts.body", "2m", 1, "2m" },
	{ "timeouts.body", "2", 0, NULL },
	{ "listen", "[::1]:443", 1, "[::1]:443" },
	{ "listen", ":80", 1, ":80" },
	{ "listen", "::1:443", 0, NULL },
	{ "listen", "host:99999", 0, NULL },
	{ "limits.max_headers", "-1", 0, NULL },
	{ "tls.names", "a, b ,c", 1, "a,b,c" },
	{ "no.such", "1", 0, NULL },
	{ "tls", "x", 0, NULL },
};

int
main(void)
{
	struct tg_config *cfg = tg_config_new();
	struct tg_err err;
	size_t i;
	const char *yaml = "# c\nlisten: \"127.0.0.1:9\"\ntls:\n  mode: off\n  names: [x, y]\n";
	int code;

	/* the public codes (tlsgate.h) each have their row in the error table */
	for (code = TG_E_OK; code <= TG_E_INTERNAL; code++)
		CHECK(tg_code_name(code) != NULL && strncmp(tg_code_name(code), "TG_E_", 5) == 0 &&
		    strcmp(tg_code_name(code), "TG_E_UNKNOWN") != 0, "code %d has a name", code);
	CHECK(!strcmp(tg_code_name(TG_E_NOT_FOUND), "TG_E_NOT_FOUND"), "codes keep their numbers");
	CHECK(!strcmp(tg_code_name(TG_E_INTERNAL + 1), "TG_E_UNKNOWN"), "past the last code");
	CHECK(tg_code_category(TG_E_TRUST) == TG_CAT_TRUST, "a code's category");
	const char *const *items;

	for (i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		int r = tg_config_set(cfg, sets[i].key, sets[i].value, "test", &err);
		CHECK((r == 0) == sets[i].ok, "case %zu (%s=%s): %s", i, sets[i].key, sets[i].value,
		    r ? err.msg : "accepted");
		if (r == 0 && sets[i].normal)
			CHECK(!strcmp(tg_config_get(cfg, sets[i].key), sets[i].normal), "case %zu: %s", i,
			    tg_config_get(cfg, sets[i].key));
		if (r != 0)
			CHECK(strstr(err.msg, "(test)") != NULL, "case %zu: message names the origin: %s",
			    i, err.msg);
	}
	CHECK(tg_cfg_num(cfg, TG_CFG_FILES_MAX_UPLOAD) == 10 << 20, "size parsed");
	CHECK(tg_cfg_num(cfg, TG_CFG_TIMEOUTS_BODY) == 120000, "duration parsed");
	tg_config_free(cfg);

	cfg = tg_config_new();
	CHECK(tg_config_load_yaml(cfg, (const unsigned char *)yaml, strlen(yaml), "t.yaml", "/etc",
	    &err) == 0, "yaml: %s", err.msg);
	CHECK(!strcmp(tg_config_origin(cfg, "listen"), "t.yaml:2"), "origin %s",
	    tg_config_origin(cfg, "listen"));
	CHECK(!strcmp(tg_config_origin(cfg, "tls.mode"), "t.yaml:4"), "origin %s",
	    tg_config_origin(cfg, "tls.mode"));
	CHECK(tg_cfg_list(cfg, TG_CFG_TLS_NAMES, &items) == 2 && !strcmp(items[1], "y"), "list");
	CHECK(tg_config_load_yaml(cfg, (const unsigned char *)"listen: a\nlisten: b\n", 20, "d.yaml",
	    "/", &err) < 0, "duplicate key");
	CHECK(tg_config_load_yaml(cfg, (const unsigned char *)"a: &x 1\nb: *x\n", 14, "e.yaml", "/",
	    &err) < 0, "alias refused");
	CHECK(tg_config_validate(cfg, &err) == 0, "validate: %s", err.msg);
	tg_config_set(cfg, "tls.cert", "/x.crt", "test", &err);
	CHECK(tg_config_validate(cfg, &err) < 0 && strstr(err.msg, "tls.key is empty"), "cert without key");
	tg_config_free(cfg);
	return check_done("test_config");
}
