/* The chunked decoder, fed in two pieces split where the first byte says. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tg_chunked d;
	size_t split, a, b;
	char *buf;
	ssize_t r;

	if (size < 1)
		return 0;
	split = data[0] % size;
	data++, size--;
	if (split > size)
		split = size;
	memset(&d, 0, sizeof(d));
	buf = malloc(size ? size : 1);
	a = split;
	memcpy(buf, data, a);
	r = tg_chunked_decode(&d, buf, &a);
	if (a > split)
		abort();
	if (r == TG_HTTP_INCOMPLETE) {
		b = size - split;
		memcpy(buf, data + split, b);
		r = tg_chunked_decode(&d, buf, &b);
		if (b > size - split || (r >= 0 && b + (size_t)r > size - split))
			abort();
	}
	free(buf);
	return 0;
}
