/* The multipart reader: content type line, then a body fed in pieces. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"

static int
sink(void *arg, const char *d, size_t n)
{
	size_t *total = arg;
	volatile char c = n ? d[n - 1] : 0;   /* touch the bytes */
	(void)c;
	*total += n;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	struct tg_multipart *m;
	size_t ctl, off, total = 0, step;

	if (nl == NULL || size < 2)
		return 0;
	ctl = (size_t)(nl - data);
	m = tg_multipart_new((const char *)data, ctl);
	if (m == NULL)
		return 0;
	step = (data[0] % 7) + 1;
	for (off = ctl + 1; off < size;) {
		size_t n = size - off < step ? size - off : step;
		char *piece = malloc(n);
		int r;
		memcpy(piece, data + off, n);
		r = tg_multipart_feed(m, piece, n, sink, &total);
		free(piece);
		if (r != 0)
			break;
		off += n;
	}
	if (total > size)
		abort();
	tg_multipart_free(m);
	return 0;
}
