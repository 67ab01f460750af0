/* File-service path cleaning: whatever it accepts has no way out of root. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[PATH_MAX], *seg, *save;
	char *in = malloc(size ? size : 1);

	memcpy(in, data, size);
	if (tg_files_clean_path(in, size, out, sizeof(out)) == 0) {
		if (out[0] == '/' || strlen(out) >= sizeof(out))
			abort();
		for (seg = strtok_r(out, "/", &save); seg; seg = strtok_r(NULL, "/", &save))
			if (!strcmp(seg, "..") || !strcmp(seg, "."))
				abort();
	}
	free(in);
	return 0;
}
