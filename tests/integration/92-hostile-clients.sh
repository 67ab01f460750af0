#!/usr/bin/env bash
# Hostile clients: 2,000 slow connections (half-sent heads over plain HTTP,
# silent ones over TLS) while a normal client keeps getting answers in under
# 100 ms; a per-address limit; slow heads time out.
. "$(dirname "$0")/harness.sh"
SLOW=${TG_SLOWCLIENTS:?TG_SLOWCLIENTS must name the slowclients helper}
cd "$T"
limit=100; [ "${TG_SANITIZE:-OFF}" = ON ] && limit=500
echo hello >h.txt

latency_check() {   # URL CURL-ARGS...: 20 requests, each under $limit ms
	local url=$1 i t worst=0; shift
	for i in $(seq 20); do
		t=$(curl -sS -o /dev/null -w '%{time_total}' "$@" "$url") || fail "normal client failed"
		t=$(awk -v t="$t" 'BEGIN { printf "%d", t * 1000 }')
		[ "$t" -gt "$worst" ] && worst=$t
	done
	[ "$worst" -lt "$limit" ] || fail "slowest normal request took $worst ms (limit $limit)"
	echo "$worst"
}

# plain HTTP: 2,000 connections from 8 addresses, each stuck in its head
start_tlsgate p --mode off
curl -sS -T h.txt "http://127.0.0.1:$PORT_p/files/h.txt" >/dev/null
"$SLOW" "$PORT_p" 2000 4 8 >slow.out &
spid=$!
sleep 1.5
worst=$(latency_check "http://127.0.0.1:$PORT_p/files/h.txt")
wait "$spid"
[ "$(cat slow.out)" -ge 1990 ] || fail "only $(cat slow.out) of 2000 slow connections were held"
pass "2000 slow plain connections held; normal requests answered, slowest $worst ms"

# TLS: 2,000 silent connections that never start the handshake
start_tlsgate t
CA="$T/t/ca/ca.crt"
"$SLOW" "$PORT_t" 2000 4 8 -s >slow.out &
spid=$!
sleep 1.5
worst=$(latency_check "https://localhost:$PORT_t/files/" --cacert "$CA")
wait "$spid"
pass "2000 silent TLS connections; normal HTTPS requests answered, slowest $worst ms"

# one address may hold only limits.max_connections_per_ip connections
start_tlsgate l --mode off --set limits.max_connections_per_ip=10
"$SLOW" "$PORT_l" 50 2 1 >slow.out &
spid=$!
sleep 0.5
curl -sS "http://127.0.0.1:$PORT_l/files/" >/dev/null || fail "another address was refused"
wait "$spid"
[ "$(cat slow.out)" = 10 ] || fail "$(cat slow.out) connections held from one address, want 10"
assert_log "$T/l.log" "limits.max_connections_per_ip reached" "the per-address limit is logged"
pass "limits.max_connections_per_ip holds one address to 10 while others are served"

# slow heads are cut at timeouts.header
start_tlsgate h --mode off --set timeouts.header=1s
"$SLOW" "$PORT_h" 20 2 1 >slow.out
[ "$(cat slow.out)" = 0 ] || fail "$(cat slow.out) slow heads outlived timeouts.header"
pass "slow heads are answered 408 and closed at timeouts.header"
echo "92-hostile-clients: all passed"
