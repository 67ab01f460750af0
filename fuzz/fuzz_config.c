/* The YAML configuration layer and the cross-key validation. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tg_config *cfg = tg_config_new();
	struct tg_err err;
	unsigned char *buf = malloc(size ? size : 1);

	memcpy(buf, data, size);
	if (tg_config_load_yaml(cfg, buf, size, "fuzz.yaml", "/tmp", &err) == 0)
		(void)tg_config_validate(cfg, &err);
	free(buf);
	tg_config_free(cfg);
	return 0;
}
