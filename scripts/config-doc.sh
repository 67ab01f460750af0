#!/usr/bin/env bash
# Writes docs/configuration.md from the key list (src/core/config/config_keys.h)
# and the list entries' table in src/core/config/config.c.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
{
	echo "# Configuration keys"
	echo
	echo "The key list in \`src/core/config/config_keys.h\` drives all of this (\`tlsgate config list\` prints it live). Set keys in the"
	echo "YAML file (nested by the dots), as \`TLSGATE_KEY\` in the environment, or with \`--set key=value\`."
	echo "Sizes take \`KiB|MiB|GiB\` or bytes; durations \`ms|s|m|h|d\`; lists are YAML lists or \`a,b,c\`."
	echo
	echo "| key | default | what it is |"
	echo "| --- | --- | --- |"
	{
		grep -E '^\s+X\(TG_CFG_[A-Z0-9_]+, "[a-z_.]+", K_' "$root/src/core/config/config_keys.h" |
			sed -E 's/^\s+X\(TG_CFG_[A-Z0-9_]+, /\t{ /; s/\)( \\)?$/ },/'
		grep -E '^\s+\{ "[a-z_.]+", K_' "$root/src/core/config/config.c"
	} |
		sed -E 's/^\s+\{ "([^"]+)", (K_[A-Z]+), (NULL|"[^"]*"), (NULL|"[^"]*"), "([^"]*)" \},/| `\1` | \3 | \5 |/' |
		sed -E 's/\| NULL \|/| `\/var\/lib\/tlsgate` (root), `~\/.local\/state\/tlsgate` |/; s/\| "" \|/| (empty) |/; s/\| "([^"]*)" \|/| `\1` |/' |
		sed -E 's/^\| `(tunnels|proxy)\./| `\1.N./'
	echo
	echo "\`tunnels\` is a list: in the file one mapping per tunnel (\`- listen: ...\`), on the command line"
	echo "\`--set tunnels.0.listen=...\` (not in the environment). See [tunnels.md](tunnels.md)."
	echo "\`proxy\` is a list of routes in the same way (\`--set proxy.0.prefix=...\`); \`proxy.N.headers.NAME\`"
	echo "is one header each (in the file: a \`headers:\` mapping). See [proxy.md](proxy.md)."
	echo "ACME is described in [acme.md](acme.md)."
	echo "The trust modes are described in [trust.md](trust.md)."
} >"$root/docs/configuration.md"
