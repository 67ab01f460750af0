/* The known-clients / known-servers parser and lookup. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pins.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tg_err err;
	char *buf = malloc(size ? size : 1);
	struct tg_known *k;
	const char *id, *pin, *comment;
	size_t i, line;
	char expected[64];

	memcpy(buf, data, size);
	k = tg_known_parse(buf, size, "fuzz", &err);
	for (i = 0; k && tg_known_entry(k, i, &id, &pin, &comment, &line) == 0; i++) {
		if (!tg_pin_valid(pin) || line == 0)
			abort();
		if (tg_known_lookup(k, id, pin, NULL, expected, sizeof(expected)) != TG_PIN_MATCH)
			abort();
	}
	tg_known_free(k);
	free(buf);
	return 0;
}
