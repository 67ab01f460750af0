/* The library's version, for `tlsgate --version` and linking programs. */
#include <tlsgate/tlsgate.h>

const char *
tg_version(void)
{
	return TG_VERSION;
}
