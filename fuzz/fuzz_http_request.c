/* The HTTP request and response head parsers on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tg_http_header h[64];
	struct tg_http_req req = { .headers = h, .num_headers = 64 };
	struct tg_http_resp resp = { .headers = h, .num_headers = 64 };
	/* an exact-size copy so ASan sees any read past the end */
	char *buf = malloc(size ? size : 1);
	ssize_t r;
	size_t i;

	memcpy(buf, data, size);
	r = tg_http_parse_request(buf, size, &req);
	if (r > 0) {
		if ((size_t)r > size || req.num_headers > 64)
			abort();
		for (i = 0; i < req.num_headers; i++)
			if (h[i].name < buf || h[i].value + h[i].value_len > buf + size)
				abort();
	}
	r = tg_http_parse_response(buf, size, &resp);
	if (r > 0 && (size_t)r > size)
		abort();
	free(buf);
	return 0;
}
