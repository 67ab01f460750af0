#!/bin/bash
# known-scale.sh — what trust at fleet scale costs (issue 14): the server's
# CPU per client-certificate handshake, and first contacts per second, as
# the list of known identities grows, for both store backends.
#
# Handshakes: tlsgate in mutual mode, trust whitelist, one worker pinned to
# CPU 0; the list holds N identities plus the one client's pin; `openssl
# s_time -new` makes full handshakes with that client's certificate for
# SECS seconds; the server's CPU (utime+stime from /proc) over the
# handshakes made is the figure.
# First contacts: trust tofu, CONTACTS fresh identities (certificates made
# before the clock starts) from 8 client threads (bench/pinclient.py); each
# connection is answered only after its pin is recorded (folder: appended
# to the file and fsynced; etcd: a transaction).
#
# BACKEND=folder: N lines in state_dir/known-clients.
# BACKEND=etcd:   a one-member etcd on loopback (plain HTTP: the figure is
#                 tlsgate's, not TLS to etcd), N keys pins/known-clients/devI
#                 loaded first; the node's pull of them at start is timed too.
#
# Usage: bench/known-scale.sh [N ...]     (default: 10 100000 1000000)
# Env: TLSGATE (binary, default build/tlsgate), SECS (default 10),
#      CONTACTS (default 500), BACKEND (folder or etcd, default folder)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TG=${TLSGATE:-$HERE/../build/tlsgate}
SECS=${SECS:-10}
CONTACTS=${CONTACTS:-500}
BACKEND=${BACKEND:-folder}
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(10 100000 1000000)
W=$(mktemp -d /tmp/tg-known-scale.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
cd "$W"
"$TG" ca init --dir ca >/dev/null
"$TG" cert issue --client --name bench-client --ca ca --out client >/dev/null
pin=$("$TG" cert show client.crt | awk '/pin:/ {print $2; exit}')
ticks=$(getconf CLK_TCK)
cpu_of() { awk -v t="$ticks" '{ printf "%d", ($14 + $15) * 1000000 / t }' "/proc/$1/stat"; }
port=18600
# the port accepts as soon as it is bound, before the server has read its
# list: wait for a whole request from the known client, so reading a
# million identities at start is not counted as handshake CPU
wait_port() {
	for _ in $(seq 1200); do
		[ "$(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 --cert client.crt --key client.key \
			"https://127.0.0.1:$1/files/" 2>/dev/null)" = 200 ] && return 0
		sleep 0.1
	done
	return 1
}
STORE=()
if [ "$BACKEND" = etcd ]; then
	command -v etcd >/dev/null || { echo "etcd not installed (apt install etcd-server)"; exit 1; }
	ec=$((port + 100))
	etcd --name b --data-dir "$W/etcd" --listen-client-urls "http://127.0.0.1:$ec" \
		--advertise-client-urls "http://127.0.0.1:$ec" --listen-peer-urls "http://127.0.0.1:$((ec + 1))" \
		--initial-advertise-peer-urls "http://127.0.0.1:$((ec + 1))" \
		--initial-cluster "b=http://127.0.0.1:$((ec + 1))" --quota-backend-bytes 8589934592 \
		--log-level error >etcd.log 2>&1 &
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$ec") 2>/dev/null && break; sleep 0.1; done
fi

echo "backend: $BACKEND"
printf '%-10s %-22s %-36s %s\n' identities "handshake CPU (us)" "first contacts/s" "server"
for n in "${SIZES[@]}"; do
	rm -rf sd; mkdir -p sd
	pull=""
	if [ "$BACKEND" = etcd ]; then
		pfx="/bench$n/"
		STORE=(--set store.backend=etcd --set "store.endpoints=http://127.0.0.1:$ec" --set "store.prefix=$pfx")
		python3 "$HERE/pinclient.py" load-etcd "http://127.0.0.1:$ec" "$pfx" "$n"
		"$TG" trust add --store known-clients --state-dir sd "${STORE[@]}" bench-client "$pin" 2>/dev/null
		# a bulk load leaves etcd snapshotting for a while: not tlsgate's cost
		[ "$n" -lt 100000 ] || sleep 20
	else
		awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "dev%d sha256:%043d=\n", i, i }' >sd/known-clients
		echo "bench-client $pin" >>sd/known-clients
	fi
	port=$((port + 1))
	t0=$(date +%s%N)
	taskset -c 0 "$TG" serve --state-dir sd --listen "127.0.0.1:$port" --mode mutual "${STORE[@]}" \
		--set tls.clients.trust=whitelist --set admin.listen=off --set log.level=error \
		--set tls.clients.ca=ca/ca.crt >serve.log 2>&1 &
	pid=$!
	wait_port "$port" || { echo "serve did not start: $(tail -3 serve.log)"; exit 1; }
	[ "$BACKEND" = etcd ] && pull=" (start with pull: $(( ($(date +%s%N) - t0) / 1000000 )) ms)"
	c0=$(cpu_of "$pid")
	out=$(taskset -c 1 openssl s_time -connect "127.0.0.1:$port" -new -time "$SECS" \
		-cert client.crt -key client.key -CAfile ca/ca.crt 2>/dev/null | grep -m1 "connections in" || true)
	c1=$(cpu_of "$pid")
	hs=$(echo "$out" | awk '{print $1}')
	rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
	kill "$pid"; wait "$pid" 2>/dev/null || true
	taskset -c 0 "$TG" serve --state-dir sd --listen "127.0.0.1:$port" --mode mutual "${STORE[@]}" \
		--set tls.clients.trust=tofu --set admin.listen=off --set log.level=error \
		--set tls.clients.ca=ca/ca.crt >serve2.log 2>&1 &
	pid=$!
	wait_port "$port" || { echo "serve did not start: $(tail -3 serve2.log)"; exit 1; }
	f0=$(cpu_of "$pid")
	fc=$(taskset -c 1 python3 "$HERE/pinclient.py" "$port" ca "fresh$n-" "$CONTACTS" 8)
	f1=$(cpu_of "$pid")
	kill "$pid"; wait "$pid" 2>/dev/null || true
	if [ -n "$hs" ] && [ "$hs" -gt 0 ]; then
		us=$(( (c1 - c0) / hs ))
	else
		us="n/a ($(tail -1 serve.log))"
	fi
	fcs=$(echo "$fc" | awk -v cpu=$(( (f1 - f0) / CONTACTS )) '{print $NF " (" $4 "/" $2 ", " cpu " us CPU each)"}')
	printf '%-10s %-22s %-36s %s\n' "$n" "$us ($hs handshakes)" "$fcs" "rss ${rss} KiB$pull"
done
