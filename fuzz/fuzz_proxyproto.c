/* The PROXY header reader: whatever it accepts has a length within the
 * input and the cap, addresses of a TCP family, and reads the same when
 * given one byte more (only the header's own bytes are consumed). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxyproto.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tg_pp_info pi, pj;
	char why[160];
	int r = tg_pp_parse(data, size, &pi, why, sizeof(why));

	if (r < 0 && why[0] == '\0')
		abort();   /* a refusal always says why */
	if (r > 0) {
		if ((size_t)r > size || (size_t)r > TG_PP_V2_MAX)
			abort();
		if (!pi.local && pi.src.ss_family != AF_INET && pi.src.ss_family != AF_INET6)
			abort();
		if (tg_pp_parse(data, (size_t)r, &pj, why, sizeof(why)) != r ||
		    memcmp(&pi, &pj, sizeof(pi)) != 0)
			abort();
	}
	return 0;
}
