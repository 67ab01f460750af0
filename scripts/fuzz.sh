#!/usr/bin/env bash
# Runs every libFuzzer target on its corpus for N seconds each:
#   scripts/fuzz.sh BUILD-DIR SECONDS
# New inputs go to a scratch corpus; the seeds in fuzz/corpus stay as they are.
set -euo pipefail
build=${1:-build-fuzz}; secs=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
for t in http_request chunked multipart config pem path known url acme_json proxyproto acmeca server; do
	work=$(mktemp -d)
	# inputs that once crashed a target are replayed first
	if [ -d "$root/fuzz/regressions/$t" ]; then
		"$build/fuzz/fuzz_$t" "$root/fuzz/regressions/$t"/* >"$work.log" 2>&1 \
			|| { tail -50 "$work.log"; echo "fuzz_$t: a regression input fails again" >&2; exit 1; }
	fi
	echo "fuzz_$t: ${secs}s"
	"$build/fuzz/fuzz_$t" -max_total_time="$secs" -print_final_stats=0 "$work" "$root/fuzz/corpus/$t" \
		>"$work.log" 2>&1 || { tail -50 "$work.log"; echo "fuzz_$t FAILED" >&2; exit 1; }
	grep -E "^Done|#[0-9]+.*DONE" "$work.log" | tail -1 || true
	rm -rf "$work" "$work.log"
done
