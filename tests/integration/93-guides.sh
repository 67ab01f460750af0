#!/usr/bin/env bash
# Runs every `sh` block of every guide in docs/guides, in order, in a fresh
# folder, with the built tlsgate first on PATH: the guides cannot rot.
. "$(dirname "$0")/harness.sh"
guides=$(cd "$(dirname "$0")/../../docs/guides" && pwd)
export PATH="$(cd "$(dirname "$TG_BIN")" && pwd):$PATH"
for g in "$guides"/*.md; do
	name=$(basename "$g" .md)
	mkdir -p "$T/$name"
	{
		echo 'set -euo pipefail'
		echo 'trap '"'"'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null || true'"'"' EXIT'
		awk '/^```sh$/ { on = 1; next } /^```/ { on = 0; next } on { print }' "$g"
	} >"$T/$name.sh"
	grep -q . <(awk '/^```sh$/' "$g") || fail "$name has no sh blocks"
	(cd "$T/$name" && bash "$T/$name.sh") >"$T/$name.log" 2>&1 || fail "guide $name failed; see its log"
	pass "guide $name: $(grep -c . <(awk '/^```sh$/ { on = 1; next } /^```/ { on = 0; next } on' "$g")) lines run"
done
echo "93-guides: all passed"
