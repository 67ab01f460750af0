#!/bin/bash
# Runs the workloads against tlsgate, the same way run-all.sh runs them
# against the peers: server pinned to CPU 0, file service at / on the
# harness's docroot, TLS 1.3, the harness's ECDSA P-256 certificate.
#   bench/tlsgate.sh [RUNS=3] [DUR=10] [WORKLOADS="W1 W1m W2 W3 W4 W5 W6"]
# W4p/W5p and W4t/W5t are W4/W5 through the reverse proxy and through a
# tunnel (TLS in, plain out) to a plain-HTTP tlsgate upstream on the client's
# core: the CPU figures are the front tlsgate's alone.
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
start() {   # PORT MODE [more serve args] -> PIDS gets the pid
	local port=$1 mode=$2; shift 2
	taskset -c "${SERVER_CPU:-0}" "$TG" serve --state-dir "$ST/$port" --listen "127.0.0.1:$port" --mode "$mode" \
		--cert "$HERE/run/certs/server.crt" --key "$HERE/run/certs/server.key" \
		--set tls.clients.ca="$HERE/run/certs/ca.crt" --set files.prefix=/ --set files.root="$DATA/www" \
		--set files.max_upload=2GiB --set tls.min_version=1.3 --set admin.listen=off \
		--set log.level=warn --set limits.max_connections=20000 --set limits.max_connections_per_ip=0 \
		--allow-insecure-key-permissions "$@" >"$ST/$port.log" 2>&1 &
	PIDS+=("$!")
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
}
start 18450 server; P1=${PIDS[-1]}
start 18451 mutual; P2=${PIDS[-1]}
case " $WS " in *" W4p "*|*" W5p "*|*" W4t "*|*" W5t "*)
	SERVER_CPU=${CLIENT_CPU:-1} start 18460 off; PU=${PIDS[-1]}   # the upstream, plain HTTP
	start 18452 server --set proxy.0.prefix=/ --set proxy.0.upstream=http://127.0.0.1:18460/
	PP=${PIDS[-1]}
	start 18454 server --set tunnels.0.listen=127.0.0.1:18453 --set tunnels.0.connect=127.0.0.1:18460
	PT=${PIDS[-1]} ;;
esac
for w in $WS; do
	case $w in
	W1m) "$HERE/workloads.sh" -p 18451 -s "$P2" -w W1m -r "$RUNS" -d "$DUR" -l tlsgate ;;
	W4p|W5p) "$HERE/workloads.sh" -p 18452 -s "$PP" -w "${w%p}" -r "$RUNS" -d "$DUR" -l tlsgate-proxy ;;
	W4t|W5t) "$HERE/workloads.sh" -p 18453 -s "$PT" -w "${w%t}" -r "$RUNS" -d "$DUR" -l tlsgate-tunnel ;;
	W6)  kill "$P1"; wait "$P1" 2>/dev/null || true; rm -rf "$ST/18450"; start 18450 server; P1=${PIDS[-1]}
	     "$HERE/workloads.sh" -p 18450 -s "$P1" -w W6 -r 1 -l tlsgate
	     # the floor under W6: OpenSSL's own heap per idle server connection
	     if cc -O2 -o "$ST/ssl_conn_mem" "$HERE/ssl_conn_mem.c" -lssl -lcrypto 2>/dev/null; then
	         "$ST/ssl_conn_mem" "$HERE/run/certs/server.crt" "$HERE/run/certs/server.key" 2000 |
	             tee -a "$HERE/results/ssl-conn-mem.txt"
	     fi ;;
	*)   "$HERE/workloads.sh" -p 18450 -s "$P1" -w "$w" -r "$RUNS" -d "$DUR" -l tlsgate ;;
	esac
done
