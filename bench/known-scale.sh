#!/bin/bash
# known-scale.sh — what a client-certificate handshake costs the server as
# the known file grows (issue 14, "trust at fleet scale"). tlsgate in mutual
# mode, trust whitelist, one worker pinned to CPU 0; the known file holds N
# identities plus the one client's pin; `openssl s_time -new` makes full
# handshakes with that client's certificate for SECS seconds; the server's
# CPU (utime+stime from /proc) over the handshakes made is the figure.
# Also: first contacts per second (trust tofu, fresh identities) at N.
#
# Usage: bench/known-scale.sh [N ...]     (default: 10 100000)
# Env: TLSGATE (binary, default build/tlsgate), SECS (default 10), CONTACTS (default 200)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TG=${TLSGATE:-$HERE/../build/tlsgate}
SECS=${SECS:-10}
CONTACTS=${CONTACTS:-200}
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(10 100000)
W=$(mktemp -d /tmp/tg-known-scale.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
cd "$W"
"$TG" ca init --dir ca >/dev/null
"$TG" cert issue --client --name bench-client --ca ca --out client >/dev/null
pin=$("$TG" cert show client.crt | awk '/pin:/ {print $2; exit}')
ticks=$(getconf CLK_TCK)
cpu_of() { awk -v t="$ticks" '{ printf "%d", ($14 + $15) * 1000000 / t }' "/proc/$1/stat"; }
port=18600

printf '%-10s %-22s %-20s\n' identities "handshake CPU (us)" "first contacts/s"
for n in "${SIZES[@]}"; do
	rm -rf sd; mkdir -p sd
	awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "dev%d sha256:%043d=\n", i, i }' >sd/known-clients
	echo "bench-client $pin" >>sd/known-clients
	port=$((port + 1))
	taskset -c 0 "$TG" serve --state-dir sd --listen "127.0.0.1:$port" --mode mutual \
		--set tls.clients.trust=whitelist --set admin.listen=off --set log.level=error \
		--set tls.clients.ca=ca/ca.crt >serve.log 2>&1 &
	pid=$!
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
	c0=$(cpu_of "$pid")
	out=$(taskset -c 1 openssl s_time -connect "127.0.0.1:$port" -new -time "$SECS" \
		-cert client.crt -key client.key -CAfile ca/ca.crt 2>/dev/null | grep -m1 "connections in" || true)
	c1=$(cpu_of "$pid")
	hs=$(echo "$out" | awk '{print $1}')
	kill "$pid"; wait "$pid" 2>/dev/null || true
	# first contacts: tofu, CONTACTS fresh identities, one after another
	for i in $(seq "$CONTACTS"); do
		[ -f "fc$i.crt" ] || "$TG" cert issue --client --name "fresh$i" --ca ca --out "fc$i" >/dev/null
	done
	taskset -c 0 "$TG" serve --state-dir sd --listen "127.0.0.1:$port" --mode mutual \
		--set tls.clients.trust=tofu --set admin.listen=off --set log.level=error \
		--set tls.clients.ca=ca/ca.crt >serve2.log 2>&1 &
	pid=$!
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
	t0=$(date +%s%N)
	for i in $(seq "$CONTACTS"); do
		curl -s -o /dev/null -k --cert "fc$i.crt" --key "fc$i.key" "https://127.0.0.1:$port/files/" || true
	done
	t1=$(date +%s%N)
	kill "$pid"; wait "$pid" 2>/dev/null || true
	if [ -n "$hs" ] && [ "$hs" -gt 0 ]; then
		us=$(( (c1 - c0) / hs ))
	else
		us="n/a ($(tail -1 serve.log))"
	fi
	fcs=$(( CONTACTS * 1000000000 / (t1 - t0) ))
	printf '%-10s %-22s %-20s\n' "$n" "$us ($hs handshakes)" "$fcs"
done
