#!/bin/bash
# Runs the workloads against tlsgate, the same way run-all.sh runs them
# against the peers: server pinned to CPU 0, file service at / on the
# harness's docroot, TLS 1.3, the harness's ECDSA P-256 certificate.
#   bench/tlsgate.sh [RUNS=3] [DUR=10] [WORKLOADS="W1 W1m W2 W3 W4 W5 W6"]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RUNS=${1:-3} DUR=${2:-10} WS=${3:-"W1 W1m W2 W3 W4 W5 W6"}
TG=${TG_BIN:-$HERE/../build/tlsgate}
DATA=${DATA:-/dev/shm/tlsbench}
"$HERE/certs.sh" >/dev/null
mkdir -p "$DATA/www/upload"
[ -s "$DATA/www/ok" ] || printf 'ok\n' >"$DATA/www/ok"
[ "$(stat -c %s "$DATA/www/big.bin" 2>/dev/null || echo 0)" = 1073741824 ] || \
	head -c 1073741824 /dev/urandom >"$DATA/www/big.bin"
ST=$(mktemp -d)
PIDS=()
stop() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$ST"; }
trap stop EXIT
start() {   # PORT MODE -> echoes pid
	taskset -c "${SERVER_CPU:-0}" "$TG" serve --state-dir "$ST/$1" --listen "127.0.0.1:$1" --mode "$2" \
		--cert "$HERE/run/certs/server.crt" --key "$HERE/run/certs/server.key" \
		--set tls.clients.ca="$HERE/run/certs/ca.crt" --set files.prefix=/ --set files.root="$DATA/www" \
		--set files.max_upload=2GiB --set tls.min_version=1.3 --set admin.listen=off \
		--set log.level=warn --set limits.max_connections=20000 --set limits.max_connections_per_ip=0 \
		--allow-insecure-key-permissions >"$ST/$1.log" 2>&1 &
	PIDS+=("$!")
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && break; sleep 0.05; done
}
start 18450 server; P1=${PIDS[-1]}
start 18451 mutual; P2=${PIDS[-1]}
for w in $WS; do
	case $w in
	W1m) "$HERE/workloads.sh" -p 18451 -s "$P2" -w W1m -r "$RUNS" -d "$DUR" -l tlsgate ;;
	W6)  kill "$P1"; wait "$P1" 2>/dev/null || true; rm -rf "$ST/18450"; start 18450 server; P1=${PIDS[-1]}
	     "$HERE/workloads.sh" -p 18450 -s "$P1" -w W6 -r 1 -l tlsgate ;;
	*)   "$HERE/workloads.sh" -p 18450 -s "$P1" -w "$w" -r "$RUNS" -d "$DUR" -l tlsgate ;;
	esac
done
