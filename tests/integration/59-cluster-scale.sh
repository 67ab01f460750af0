#!/usr/bin/env bash
# Scale by simulation (issue 14): 20 tlsgate nodes on loopback (node I on
# 127.0.0.I) sharing one 3-member etcd cluster and one ACME name. One order
# for the fleet; a renewal on one node served by every node within 5 s; the
# steady-state etcd request rate per node per hour, idle and under load (it
# must not grow with the number of connections: watches, not polls).
. "$(dirname "$0")/harness.sh"
cd "$T"
NODES=${TG_CLUSTER_NODES:-20}
start_etcd_cluster
export PEBBLE_AUTHZREUSE=0
start_pebble
LOCKT=${TG_STORELOCK:?TG_STORELOCK must name tests/tools/storelock}
cat >a.yaml <<EOF
admin:
  listen: off
tls:
  auto: acme
  acme:
    directory: $ACME_DIR
    ca_cert: $ACME_CA
    names: [fleet.example.com]
    agree_terms: true
EOF
node() {   # I [flags]
	local i=$1; shift
	"$TG_BIN" serve --config a.yaml --state-dir "$T/n$i" --listen "127.0.0.$i:$ACME_TLS_PORT" \
		--set "tls.acme.http_listen=127.0.0.$i:$ACME_HTTP_PORT" "${NODE_STORE[@]}" "$@" \
		>>"$T/n$i.log" 2>&1 7>&- &   # not the lock holder's pipe (below)
	PIDS+=("$!"); printf -v "PID_n$i" '%s' "$!"
}
serial() {
	openssl s_client -connect "127.0.0.$1:$ACME_TLS_PORT" -servername fleet.example.com </dev/null 2>/dev/null |
		openssl x509 -noout -serial 2>/dev/null
}
etcd_calls() {   # gRPC calls the three members started, in all
	local i sum=0 n
	for i in 1 2 3; do
		n=$(curl -s --cacert eca/ca.crt --cert node.crt --key node.key "https://127.0.0.1:${C[$i]}/metrics" |
			awk '/^grpc_server_started_total/ { s += $2 } END { printf "%d", s }')
		sum=$((sum + n))
	done
	echo "$sum"
}

# the ACME lock is held (as by another node) until every node listens, so
# the validation finds node 1 whoever orders
mkfifo hold.fifo
"$LOCKT" "$HEPS" /tlsgate/ eca/ca.crt node.crt node.key acme stdin <hold.fifo >hold.out &
hp=$!
exec 7>hold.fifo
for _ in $(seq 50); do grep -q locked hold.out && break; sleep 0.1; done
t0=$(date +%s%N)
for i in $(seq "$NODES"); do node "$i"; done
for i in $(seq "$NODES"); do wait_log "$T/n$i.log" "serving" 60 "node $i listens" >/dev/null; done
exec 7>&-
wait "$hp" || fail "holding the ACME lock: $(cat hold.out)"
for i in $(seq "$NODES"); do
	wait_log "$T/n$i.log" "acme: (worker 0: )?certificate for fleet.example.com in service" 60 "node $i serves" >/dev/null
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
orders=$(grep -c "Added order" pebble.log || true)   # not the badNonce retries
[ "$orders" = 1 ] || fail "pebble saw $orders orders for $NODES nodes"
first=$(serial 1)
for i in $(seq 2 "$NODES"); do [ "$(serial "$i")" = "$first" ] || fail "node $i serves another certificate"; done
pass "$NODES nodes: one order, every node serves it ($ms ms from the first start)"

# steady state, idle
sleep 5
c0=$(etcd_calls); s0=$(date +%s%N)
sleep 30
c1=$(etcd_calls); s1=$(date +%s%N)
idle=$(( (c1 - c0) * 3600 * 1000000000 / (s1 - s0) / NODES ))
# steady state under load: many connections to every node
load_end=$(( $(date +%s) + 30 ))
lp=()
for w in $(seq 8); do
	( while [ "$(date +%s)" -lt "$load_end" ]; do
		for i in $(seq "$NODES"); do
			curl -s -o /dev/null --max-time 5 --cacert "$ACME_ROOT" \
				--resolve "fleet.example.com:$ACME_TLS_PORT:127.0.0.$i" "https://fleet.example.com:$ACME_TLS_PORT/" || true
		done
	done ) &
	lp+=("$!")
done
c2=$(etcd_calls); s2=$(date +%s%N)
for p in "${lp[@]}"; do wait "$p" || true; done
c3=$(etcd_calls); s3=$(date +%s%N)
loaded=$(( (c3 - c2) * 3600 * 1000000000 / (s3 - s2) / NODES ))
echo "etcd requests per node per hour: idle $idle, under load $loaded"
[ "$loaded" -le $(( idle * 3 / 2 + 100 )) ] || fail "the etcd request rate grows with load: $idle idle, $loaded loaded"
pass "steady state: $idle etcd requests per node per hour idle, $loaded under load (no polls per connection)"

# a renewal on node 1 reaches all nodes within 5 s
stop_pid "$PID_n1"
node 1 --set tls.acme.renew_before=2000d
wait_log "$T/n1.log" "certificate for fleet.example.com renewed" 60 "node 1 renewed"
t0=$(date +%s%N)
new=$(serial 1)
[ "$new" != "$first" ] || fail "node 1 serves the old certificate"
left=$NODES
for _ in $(seq 100); do
	left=0
	for i in $(seq 2 "$NODES"); do [ "$(serial "$i")" = "$new" ] || left=$((left + 1)); done
	[ "$left" = 0 ] && break
	sleep 0.1
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$left" = 0 ] || fail "$left nodes do not serve the renewal after $ms ms"
[ "$ms" -le 5000 ] || fail "the renewal reached every node after $ms ms (want 5 s)"
pass "a renewal on node 1: all $NODES nodes serve it $ms ms later"
