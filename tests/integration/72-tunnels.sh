#!/usr/bin/env bash
# TCP tunnels between two nodes: plain -> TLS (node A) -> plain (node B),
# with client certificates and pinning both ways; 256 MiB and 100
# concurrent connections with every byte checked and half-close passed
# through; bounded memory; a dead upstream fails fast; idle timeout and the
# connection limit; an untrusted upstream refused in words.
. "$(dirname "$0")/harness.sh"
E=${TG_TCPECHO:?TG_TCPECHO must name the tcpecho tool}
cd "$T"
EP=$(free_port); BP=$(free_port); AP=$(free_port); XP=$(free_port); MP=$(free_port)
"$E" serve "$EP" >echo.log 2>&1 &
ECHO=$!
PIDS+=("$ECHO")
wait_port "$EP" || fail "echo server"

"$TG_BIN" ca init --dir caA >/dev/null
"$TG_BIN" cert issue --client --name nodeA --ca caA --out nodeA >/dev/null
cat >b.yaml <<EOF
admin: { listen: "127.0.0.1:$MP" }
tunnels:
  - listen: 127.0.0.1:$BP
    connect: 127.0.0.1:$EP
    mode: mutual
    trust: tofu
    idle_timeout: 30s
EOF
cat >a.yaml <<EOF
admin: { listen: off }
tunnels:
  - listen: 127.0.0.1:$AP
    connect: 127.0.0.1:$BP
    tls_connect: true
    server_name: localhost
    trust: tofu
    cert: nodeA.crt
    key: nodeA.key
  - listen: 127.0.0.1:$XP
    connect: 127.0.0.1:$BP
    tls_connect: true
    server_name: localhost
    cert: nodeA.crt
    key: nodeA.key
    idle_timeout: 1s
    max_connections: 2
EOF
start_tlsgate B --config b.yaml
start_tlsgate A --config a.yaml
assert_log "$T/A.log" "tunnel 0: plain 127.0.0.1:$AP -> TLS 127.0.0.1:$BP" "tunnel A started"

out=$("$E" blast 127.0.0.1 "$AP" 1 268435456) || fail "256 MiB through two tunnels: $out"
pass "256 MiB each way through plain -> TLS -> plain, every byte checked, half-close passed: $out"
out=$("$E" blast 127.0.0.1 "$AP" 100 1048576) || fail "100 connections: $out"
pass "100 concurrent connections, 1 MiB each way each: $out"
grep -q "^nodeA sha256:" "$T/B/known-clients" || fail "B did not record A's client key: $(cat "$T/B/known-clients")"
grep -q "^localhost:$BP sha256:" "$T/A/known-servers" || fail "A did not record B: $(cat "$T/A/known-servers")"
pass "client certificate and server pinned on first use (tofu both ways)"
for i in $(seq 20); do   # a connection is counted when its last side has closed
	m=$(curl -sS "http://127.0.0.1:$MP/metrics")
	grep -q 'tlsgate_tunnel_connections_open{tunnel="0"} 0$' <<<"$m" && break
	sleep 0.1
done
grep -q 'tlsgate_tunnel_connections_total{tunnel="0",result="accepted"} 101$' <<<"$m" ||
	fail "tunnel metrics: $(grep tunnel <<<"$m")"
bin=$(awk -F' ' '/tlsgate_tunnel_bytes_total\{tunnel="0",direction="in"\}/ {print $2}' <<<"$m")
[ "$bin" = $((268435456 + 100 * 1048576)) ] || fail "tunnel bytes in: $bin"
pass "tunnel metrics count connections and bytes"
if [ "${TG_SANITIZE:-OFF}" != ON ]; then   # ASan's quarantine keeps freed memory
	for n in A B; do
		hwm=$(awk '/VmHWM/ {print $2}' "/proc/$(eval echo "\$PID_$n")/status")
		[ "$hwm" -lt 65536 ] || fail "node $n peak RSS $hwm KiB"
		echo "node $n peak RSS: $hwm KiB"
	done
	pass "bounded buffers: both nodes stay far below 64 MiB"
fi

# the second tunnel trusts CAs only: B's certificate is from B's own local CA
exec 3<>"/dev/tcp/127.0.0.1/$XP"
IFS= read -r -t 5 line <&3 || true
exec 3<&-
assert_log "$T/A.log" "tunnel 1: .*upstream localhost:$BP refused: .*not a trusted CA" \
	"an untrusted upstream is refused, and the reason logged"

# a dead upstream: the transfer in flight ends, new connections fail fast
"$E" blast 127.0.0.1 "$AP" 4 1073741824 >long.out 2>&1 &
blast=$!
sleep 0.5
kill "$ECHO"; wait "$ECHO" 2>/dev/null || true
t0=$(date +%s%N)
if wait "$blast"; then fail "a transfer survived its upstream"; fi
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -lt 3000 ] || fail "connections in flight took $ms ms to end"
t0=$(date +%s%N)
out=$("$E" blast 127.0.0.1 "$AP" 1 1000 2>&1) && fail "a new connection to a dead upstream succeeded"
ms2=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms2" -lt 2000 ] || fail "a new connection took $ms2 ms to fail"
assert_log "$T/B.log" "cannot connect to 127.0.0.1:$EP: Connection refused" "the refused connect is logged"
pass "upstream killed: connections in flight ended in $ms ms, a new one failed in $ms2 ms ($out)"

# idle timeout and the connection limit (idle 1s, at most 2)
"$E" serve "$EP" >echo2.log 2>&1 &
PIDS+=("$!")
wait_port "$EP"
cat >a2.yaml <<EOF
admin: { listen: off }
tunnels:
  - listen: 127.0.0.1:$XP
    connect: 127.0.0.1:$BP
    tls_connect: true
    server_name: localhost
    trust: tofu
    cert: nodeA.crt
    key: nodeA.key
    idle_timeout: 1s
    max_connections: 2
EOF
stop_pid "$PID_A"
start_tlsgate A --config a2.yaml
exec 4<>"/dev/tcp/127.0.0.1/$XP"; exec 5<>"/dev/tcp/127.0.0.1/$XP"; exec 6<>"/dev/tcp/127.0.0.1/$XP"
t0=$(date +%s%N)
IFS= read -r -t 5 line <&6 && fail "a third connection over max_connections 2 was served"
assert_log "$T/A.log" "tunnel 0: its max_connections is reached" "the connection limit refuses the third"
IFS= read -r -t 5 line <&4 || true
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -lt 4000 ] || fail "an idle connection lived $ms ms with idle_timeout 1s"
assert_log "$T/A.log" "tunnel 0: .*idle for the idle_timeout; closed" "idle connections are closed"
exec 4<&- 5<&- 6<&-
sed -i 's/idle_timeout: 1s/idle_timeout: 2s/' a2.yaml
kill -HUP "$PID_A"
assert_log "$T/A.log" "tunnels or proxy routes changed: a restart applies that" \
	"SIGHUP says that tunnel changes wait for a restart"
echo "72-tunnels: all passed"
