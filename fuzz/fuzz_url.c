/* URL parsing for get/put: whatever it accepts is a usable host, port, path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	struct tg_url u;
	struct tg_err err;

	memcpy(s, data, size);
	s[size] = '\0';
	if (tg_url_parse(s, &u, &err) == 0) {
		if (u.host[0] == '\0' || u.port <= 0 || u.port > 65535 || u.path[0] != '/')
			abort();
		for (const char *p = u.path; *p; p++)
			if ((unsigned char)*p <= 0x20)
				abort();
	}
	free(s);
	return 0;
}
