/*
 * The configuration layers: YAML, then TLSGATE_* environment lines, then
 * --set style KEY=VALUE lines, then cross-key validation. The input is
 * "YAML \0 env lines \0 set lines".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"

static size_t
split_lines(char *s, char **out, size_t max)
{
	size_t n = 0;
	char *save, *line;

	for (line = strtok_r(s, "\n", &save); line && n + 1 < max; line = strtok_r(NULL, "\n", &save))
		out[n++] = line;
	out[n] = NULL;
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tg_config *cfg = tg_config_new();
	struct tg_err err;
	char *buf = malloc(size + 2), *env, *sets, *lines[32];
	size_t ylen, i, n;

	memcpy(buf, data, size);
	buf[size] = buf[size + 1] = '\0';
	ylen = strnlen(buf, size);
	env = buf + ylen + (ylen < size);
	sets = env + strlen(env) + (env + strlen(env) < buf + size);
	if (tg_config_load_yaml(cfg, (unsigned char *)buf, ylen, "fuzz.yaml", "/tmp", &err) < 0)
		goto out;
	split_lines(env, lines, 32);
	if (tg_config_load_env(cfg, lines, &err) < 0)
		goto out;
	if (sets < buf + size) {
		n = split_lines(sets, lines, 32);
		for (i = 0; i < n; i++) {
			char *eq = strchr(lines[i], '=');
			if (eq == NULL)
				continue;
			*eq = '\0';
			if (tg_config_set(cfg, lines[i], eq + 1, "--set", &err) < 0)
				goto out;
		}
	}
	(void)tg_config_validate(cfg, &err);
out:
	free(buf);
	tg_config_free(cfg);
	return 0;
}
