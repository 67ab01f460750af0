#!/usr/bin/env bash
# Soak: mixed load on one tlsgate for a while, with a reload every 5 s and
# the certificate files replaced every 20 s (issue 13).
#
#   TG_BIN=build/tlsgate bench/soak.sh [SECONDS]      (default 600)
#
# Load, all at once, each loop counting its failures: mutual-TLS
# handshakes (a new connection per request), keep-alive requests (50 per
# connection), uploads and Range downloads checked byte for byte, proxied
# requests to an upstream, and TLS tunnel traffic. Holds: zero failed
# requests; RSS and open descriptors flat (end within 20 % + 8 MiB and 8
# descriptors of the level after warm-up; memory in builds without a
# sanitizer, whose allocators keep freed memory aside); no sanitizer report
# (the harness checks every log). Prints one line of figures; tests/integration
# /91-soak.sh runs it for 2 minutes in CI (1 minute under a sanitizer).
set -uo pipefail
SOAK_SECONDS=${1:-${SOAK_SECONDS:-600}}
. "$(cd "$(dirname "$0")/.." && pwd)/tests/integration/harness.sh"
set +e
cd "$T"

"$TG_BIN" ca init --dir ca >/dev/null
issue_server() { "$TG_BIN" cert issue --server --san dns:localhost,ip:127.0.0.1 --ca ca --out "$1" >/dev/null; }
issue_server srv
"$TG_BIN" cert issue --client --name soak --ca ca --out cli >/dev/null
head -c 1048576 /dev/urandom >up.bin
head -c 200000 /dev/urandom >small.bin

# the upstream: a plain tlsgate file service (proxy route and tunnel target)
start_tlsgate up --mode off
cp small.bin "$T/up/files/small.bin"
TP=$(free_port); AP=$(free_port)
cat >soak.yaml <<EOF
tls:
  mode: mutual
  cert: $T/srv.crt
  key: $T/srv.key
  clients:
    ca: $T/ca/ca.crt
admin: { listen: "127.0.0.1:$AP" }
proxy:
  - prefix: /up/
    upstream: http://127.0.0.1:$PORT_up/files/
tunnels:
  - listen: 127.0.0.1:$TP
    connect: 127.0.0.1:$PORT_up
EOF
start_tlsgate s --config soak.yaml
cp small.bin "$T/s/files/small.bin"
U="https://localhost:$PORT_s"
C=(-sS --max-time 20 --cacert ca/ca.crt --cert cli.crt --key cli.key)
mkdir -p counts
end=$((SECONDS + SOAK_SECONDS))

# each loop: one line per request in counts/NAME (ok|fail what)
loop_handshakes() {
	while [ $SECONDS -lt $end ]; do
		if curl "${C[@]}" -o /dev/null "$U/files/small.bin"; then echo ok; else echo "fail handshake"; fi
	done >counts/handshakes
}
loop_keepalive() {
	local urls=() i
	for i in $(seq 50); do urls+=("$U/files/small.bin?$i" -o /dev/null); done
	while [ $SECONDS -lt $end ]; do
		local out
		out=$(curl "${C[@]}" -w '%{http_code}\n' "${urls[@]}")
		n=$(printf '%s\n' "$out" | grep -c '^200$')
		for i in $(seq "$n"); do echo ok; done
		for i in $(seq $((50 - n))); do echo "fail keepalive"; done
	done >counts/keepalive
}
loop_transfers() {
	local i=0
	while [ $SECONDS -lt $end ]; do
		i=$((i + 1))
		if curl "${C[@]}" -o /dev/null -T up.bin "$U/files/t$((i % 4)).bin" &&
		   curl "${C[@]}" -o part.bin -r 1000-500999 "$U/files/t$((i % 4)).bin" &&
		   cmp -s part.bin <(tail -c +1001 up.bin | head -c 500000); then
			echo ok; echo ok
		else
			echo "fail transfer $i"
		fi
	done >counts/transfers
}
loop_proxy() {
	while [ $SECONDS -lt $end ]; do
		if curl "${C[@]}" -o p.bin "$U/up/small.bin" && cmp -s p.bin small.bin; then echo ok
		else echo "fail proxy"; fi
	done >counts/proxy
}
loop_tunnel() {
	while [ $SECONDS -lt $end ]; do
		if curl -sS --max-time 20 --cacert ca/ca.crt -o t.bin "https://localhost:$TP/files/small.bin" &&
		   cmp -s t.bin small.bin; then echo ok
		else echo "fail tunnel"; fi
	done >counts/tunnel
}

mem() { awk '/^VmRSS:/ {print $2}' "/proc/$PID_s/status"; }
fds() { ls "/proc/$PID_s/fd" | wc -l; }
loop_handshakes & l1=$!
loop_keepalive & l2=$!
loop_transfers & l3=$!
loop_proxy & l4=$!
loop_tunnel & l5=$!
sleep 5   # warm-up: buffers, caches and pools at their working size
rss0=$(mem); fd0=$(fds)
reloads=0; swaps=0; t=5
while [ $SECONDS -lt $end ]; do
	sleep 5; t=$((t + 5))
	kill -0 "$PID_s" 2>/dev/null || fail "the server died"
	kill -HUP "$PID_s" && reloads=$((reloads + 1))
	if [ $((t % 20)) = 0 ]; then
		issue_server next
		mv next.key srv.key.new && mv next.crt srv.crt.new
		mv srv.crt.new srv.crt && mv srv.key.new srv.key
		swaps=$((swaps + 1))
	fi
done
wait $l1 $l2 $l3 $l4 $l5
sleep 1
rss1=$(mem); fd1=$(fds)
total=$(cat counts/* | wc -l); failed=$(cat counts/* | grep -c '^fail' || true)
applied=$(grep -c "tls.cert changed on disk: certificate for" "$T/s.log" || true)
reloaded=$(grep -c "SIGHUP: configuration and certificates reloaded" "$T/s.log" || true)
printf 'soak %ss: %s requests (handshakes %s, keep-alive %s, transfers %s, proxy %s, tunnel %s), %s failed; ' \
	"$SOAK_SECONDS" "$total" "$(grep -c ok counts/handshakes)" "$(grep -c ok counts/keepalive)" \
	"$(grep -c ok counts/transfers)" "$(grep -c ok counts/proxy)" "$(grep -c ok counts/tunnel)" "$failed"
printf 'RSS %s -> %s KiB, fds %s -> %s; %s reloads (%s applied), %s certificate swaps (%s picked up)\n' \
	"$rss0" "$rss1" "$fd0" "$fd1" "$reloads" "$reloaded" "$swaps" "$applied"
[ "$failed" = 0 ] || fail "$failed failed requests: $(grep -h '^fail' counts/* | sort | uniq -c | head)"
[ "$total" -gt 100 ] || fail "only $total requests: the load did not run"
# a reload that lands between the two renames of a swap is refused (the
# pair does not match) and the old one keeps serving: that is by design
[ "$reloaded" -ge $((reloads - swaps)) ] || fail "$reloads SIGHUPs sent, $reloaded applied"
[ "$swaps" = 0 ] || [ "$applied" -ge 1 ] || fail "the certificate files were replaced $swaps times and never picked up"
# a sanitizer's allocator keeps freed memory aside (ASan's quarantine,
# TSan's history), so memory is judged in the normal build only
if [ "${TG_SANITIZE:-OFF}" != ON ] && [ "${TG_TSAN:-OFF}" != ON ]; then
	[ "$rss1" -le $((rss0 + rss0 / 5 + 8192)) ] || fail "RSS grew from $rss0 to $rss1 KiB"
fi
[ "$fd1" -le $((fd0 + 8)) ] || fail "open descriptors grew from $fd0 to $fd1"
pass "soak: zero failed requests, RSS and descriptors flat"
