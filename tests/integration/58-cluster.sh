#!/usr/bin/env bash
# tlsgate nodes as one cluster on a real 3-member etcd (issue 14), all on
# loopback: node I lives on 127.0.0.I with its own state_dir, as a machine
# would. ACME against pebble: one order for three nodes, all serving it; a
# renewal on one served by the others within 5 s; HTTP-01 and TLS-ALPN-01
# validations that reach a node which did not place the order; the node
# holding the ACME lock killed mid-order. Trust: one local CA, a tofu pin
# binding every node, a removal freeing the identity everywhere, 2 nodes x
# 100 concurrent first contacts giving 100 pins; a session ticket from one
# node resuming on another; etcd members killed under load.
. "$(dirname "$0")/harness.sh"
cd "$T"
start_etcd_cluster
export PEBBLE_AUTHZREUSE=0   # every order validates: the renewals below must
start_pebble
ADMIN=$(free_port)
LK=("${TG_STORELOCK:?TG_STORELOCK must name tests/tools/storelock}" "$HEPS")
LK_END=("$T/eca/ca.crt" "$T/node.crt" "$T/node.key")

# ---- ACME: three nodes, one name ------------------------------------------
cat >a.yaml <<EOF
tls:
  auto: acme
  acme:
    directory: $ACME_DIR
    ca_cert: $ACME_CA
    names: [c.example.com]
    agree_terms: true
    check_interval: 2s
EOF
node() {   # DIR I PREFIX [flags]: an ACME node on 127.0.0.I, its state in DIR
	local d=$1 i=$2 prefix=$3; shift 3
	"$TG_BIN" serve --config a.yaml --state-dir "$T/$d" --listen "127.0.0.$i:$ACME_TLS_PORT" \
		--set "tls.acme.http_listen=127.0.0.$i:$ACME_HTTP_PORT" --set "admin.listen=127.0.0.$i:$ADMIN" \
		"${NODE_STORE[@]}" --set "store.prefix=$prefix" "$@" >>"$T/$d.log" 2>&1 7>&- &
	PIDS+=("$!"); printf -v "PID_$d" '%s' "$!"
}
serial() {   # I: the serial of the certificate 127.0.0.I serves for c.example.com
	openssl s_client -connect "127.0.0.$1:$ACME_TLS_PORT" -servername c.example.com </dev/null 2>/dev/null |
		openssl x509 -noout -serial 2>/dev/null
}
get() {   # I: one HTTPS request to node I, verified with pebble's root
	curl -sSf -o /dev/null --max-time 5 --cacert "$ACME_ROOT" \
		--resolve "c.example.com:$ACME_TLS_PORT:127.0.0.$1" "https://c.example.com:$ACME_TLS_PORT/"
}
dns() {   # ADDRESS: where pebble's validations for c.example.com go
	curl -sSf -d '{"host":"c.example.com."}' "http://127.0.0.1:$CHALL_MGMT/clear-a" >/dev/null &&
	curl -sSf -d "{\"host\":\"c.example.com.\",\"addresses\":[\"$1\"]}" \
		"http://127.0.0.1:$CHALL_MGMT/add-a" >/dev/null || fail "challtestsrv add-a"
}
# orders pebble created (a POST the CA refused with badNonce, retried, is not
# a second order: pebble rejects 5% of nonces on purpose)
orders() { grep -c "Added order" "$T/pebble.log" || true; }
renew1() {   # [flags]: node 1 restarted to renew at once, until its order
	# validates (pebble may still reuse a fresh authorization now and then)
	local try r a
	for try in 1 2 3 4 5 6; do
		stop_pid "$PID_a1"
		r=$(log_mark "$T/a1.log" "certificate for c.example.com renewed")
		a=$(log_mark "$T/a1.log" "c.example.com: answering")
		node a1 1 /acme/ --set tls.acme.renew_before=2000d --set tls.acme.check_interval=1h "$@"
		wait_new_log "$T/a1.log" "certificate for c.example.com renewed" "$r" 40 "node 1 renewed (try $try)"
		[ "$(log_mark "$T/a1.log" "c.example.com: answering")" -gt "$a" ] && return 0
	done
	fail "node 1's renewals never validated (pebble reused the authorization $try times)"
}

o0=$(orders)
# the three start at once; the ACME lock is held meanwhile (as by a fourth
# node), so every validation finds all three listening
mkfifo hold.fifo
"${LK[0]}" "${LK[1]}" /acme/ "${LK_END[@]}" acme stdin <hold.fifo >hold.out &
hp=$!
exec 7>hold.fifo
for _ in $(seq 50); do grep -q locked hold.out && break; sleep 0.1; done
for i in 1 2 3; do node a$i $i /acme/; done
for i in 1 2 3; do wait_log "$T/a$i.log" "serving" 30 "node $i listens" >/dev/null; done
exec 7>&-
wait "$hp" || fail "holding the ACME lock: $(cat hold.out)"
for i in 1 2 3; do
	wait_log "$T/a$i.log" "acme: (worker 0: )?certificate for c.example.com in service" 40 \
		"node $i serves a certificate"
done
[ $(($(orders) - o0)) = 1 ] || fail "pebble saw $(($(orders) - o0)) orders for three nodes"
n=$(cat a1.log a2.log a3.log | grep -c "acme: no usable certificate .*; ordering one" || true)
[ "$n" = 1 ] || fail "$n nodes ordered"
s1=$(serial 1); s2=$(serial 2); s3=$(serial 3)
[ -n "$s1" ] && [ "$s1" = "$s2" ] && [ "$s1" = "$s3" ] || fail "the nodes serve different certificates: $s1 / $s2 / $s3"
for i in 1 2 3; do get $i || fail "node $i: curl with pebble's root"; done
pass "3 nodes, one name: pebble counted exactly one order, all three serve it ($s1)"

# a renewal on node 1, validated over HTTP-01 by node 2 (which did not
# order): the other two serve the new certificate within 5 s
dns 127.0.0.2
m=$(log_mark "$T/a2.log" "answered an http-01 challenge with the answer another worker or node published")
renew1
t0=$(date +%s%N)
wait_new_log "$T/a2.log" "answered an http-01 challenge with the answer another worker or node published" "$m" 1 \
	"node 2 answered the HTTP-01 validation of node 1's order"
new=$(serial 1)
[ "$new" != "$s1" ] || fail "node 1 still serves the old certificate"
for _ in $(seq 100); do
	[ "$(serial 2)" = "$new" ] && [ "$(serial 3)" = "$new" ] && break
	sleep 0.1
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$(serial 2)" = "$new" ] && [ "$(serial 3)" = "$new" ] || fail "nodes 2 and 3 do not serve the renewal after $ms ms"
[ "$ms" -le 5000 ] || fail "the renewal reached the other nodes after $ms ms (want 5 s)"
pass "a renewal on node 1, validated by node 2 over HTTP-01, served by nodes 2 and 3 after $ms ms"

# TLS-ALPN-01: node 1 renews again; the validation reaches node 3
dns 127.0.0.3
m=$(log_mark "$T/a3.log" "answered a tls-alpn-01 challenge with the answer another worker or node published")
renew1 --set tls.acme.challenge=tls-alpn-01
wait_new_log "$T/a3.log" "answered a tls-alpn-01 challenge with the answer another worker or node published" "$m" 1 \
	"node 3 answered the TLS-ALPN-01 validation of node 1's order"
pass "TLS-ALPN-01: node 3 answered the validation of node 1's order from the store"
[ -z "$(find a2/acme/challenges -type f 2>/dev/null)" ] || fail "answers left in the store: $(find a2/acme/challenges -type f)"
dns 127.0.0.2   # below, node 1 dies; node 2 answers whoever orders
for d in a1 a2 a3; do stop_pid "$(eval echo "\$PID_$d")"; done

# the node holding the ACME lock dies mid-order: another node finishes,
# one certificate in service (a fresh prefix: no certificate yet)
cat >hang <<'EOF'
#!/bin/sh
exec sleep 120
EOF
chmod +x hang
node b1 1 /acme2/ --set tls.acme.challenge=dns-01 --set "tls.acme.dns_hook=$T/hang"
wait_log "$T/b1.log" "ordering one" 20 "node 1 took the lock and ordered"
node b2 2 /acme2/; node b3 3 /acme2/
sleep 1
kill -9 "$PID_b1"; wait "$PID_b1" 2>/dev/null || true
pkill -f "$T/hang" || true
t0=$(date +%s)
for _ in $(seq 400); do
	grep -q "certificate for c.example.com obtained" b2.log b3.log && break
	sleep 0.1
done
grep -q "certificate for c.example.com obtained" b2.log b3.log || fail "no node finished the order after its holder died"
n=$(cat b2.log b3.log | grep -c "certificate for c.example.com obtained" || true)
[ "$n" = 1 ] || fail "$n nodes obtained a certificate"
for i in 2 3; do
	wait_log "$T/b$i.log" "acme: (worker 0: )?certificate for c.example.com in service" 10 "node $i serves"
done
[ "$(serial 2)" = "$(serial 3)" ] || fail "nodes 2 and 3 serve different certificates"
pass "the lock holder killed with -9 mid-order: another node finished $(( $(date +%s) - t0 )) s later, one certificate in service"
for d in b2 b3; do stop_pid "$(eval echo "\$PID_$d")"; done

# ---- trust across the fleet -------------------------------------------------
"$TG_BIN" ca init --dir dev-ca >/dev/null
"$TG_BIN" ca init --dir other-ca >/dev/null
"$TG_BIN" cert issue --client --name dev1 --ca dev-ca --out dev1a >/dev/null
"$TG_BIN" cert issue --client --name dev1 --ca other-ca --out dev1b >/dev/null
TRUST=(--mode mutual --set tls.clients.trust=tofu "${NODE_STORE[@]}" --set store.prefix=/trust/)
TA=$(free_port)
start_tlsgate t1 "${TRUST[@]}" --set "admin.listen=127.0.0.1:$TA"
start_tlsgate t2 "${TRUST[@]}" --set admin.listen=off
start_tlsgate t3 "${TRUST[@]}" --set admin.listen=off
cmp -s t1/ca/ca.crt t2/ca/ca.crt && cmp -s t1/ca/ca.crt t3/ca/ca.crt || fail "the nodes made CAs of their own"
pass "one local CA for the cluster: made by the first node, taken by the others"
req() {   # NODE CERT: one request with a client certificate; the HTTP code
	local p; p=$(eval echo "\$PORT_$1")
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert t1/ca/ca.crt --cert "$2.crt" \
		--key "$2.key" "https://localhost:$p/files/" 2>/dev/null || true
}
TL=("$TG_BIN" trust list --store known-clients --state-dir "$T/cli" "${NODE_STORE[@]}" --set store.prefix=/trust/)
[ "$(req t1 dev1a)" = 200 ] || fail "first contact on node 1"
"${TL[@]}" | grep -q "^dev1 sha256:" || fail "the pin is not in the store: $("${TL[@]}")"
for n in t2 t3; do
	code=000
	for _ in $(seq 50); do code=$(req $n dev1b); [ "$code" = 000 ] && break; sleep 0.1; done
	[ "$code" = 000 ] || fail "$n let a changed key for dev1 in ($code)"
	wait_log "$T/$n.log" "refused client certificate: THE KEY OF dev1 HAS CHANGED" 5 "$n refuses the changed key"
done
[ "$(req t2 dev1a)" = 200 ] || fail "node 2 refused the pinned key"
pass "dev1 pinned via node 1: its changed key refused by nodes 2 and 3, its own key accepted"
"$TG_BIN" trust remove --store known-clients --state-dir "$T/cli" "${NODE_STORE[@]}" \
	--set store.prefix=/trust/ dev1 2>rm.out || fail "trust remove against the cluster: $(cat rm.out)"
t0=$(date +%s%N)
code=000
for _ in $(seq 50); do code=$(req t1 dev1b); [ "$code" = 200 ] && break; sleep 0.1; done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$code" = 200 ] || fail "after trust remove, node 1 still refuses dev1's new key"
[ "$ms" -le 5000 ] || fail "the removal reached node 1 after $ms ms"
pass "trust remove through the cluster: node 1 lets the new key in after $ms ms"

# 2 nodes x 100 concurrent first contacts of the same 100 identities
for i in $(seq 100); do "$TG_BIN" cert issue --client --name "d$i" --ca dev-ca --out "d$i" >/dev/null; done
for i in $(seq 100); do echo "t1 d$i"; echo "t2 d$i"; done >pairs
export -f req; export T PORT_t1 PORT_t2
xargs -P 32 -L 1 bash -c 'req "$0" "$1"' <pairs >codes
n=$("${TL[@]}" | grep -c "^d[0-9]* sha256:" || true)
[ "$n" = 100 ] || fail "200 concurrent first contacts of 100 identities gave $n pins"
ok=$(grep -o 200 codes | wc -l)
[ "$ok" = 200 ] || fail "only $ok of 200 first contacts were let in"
pass "2 nodes x 100 concurrent first contacts of the same 100 identities: exactly 100 pins, 200 let in"
# one key per identity in etcd (a fleet's pins are not one value), and
# every node's copy (NAME.pins) has each of them once
keys=$(curl -s --cacert eca/ca.crt --cert node.crt --key node.key -X POST \
	"https://127.0.0.1:${C[1]}/v3/kv/range" -d "{\"key\":\"$(printf /trust/pins/known-clients/ | base64 -w0)\",
	\"range_end\":\"$(printf /trust/pins/known-clients0 | base64 -w0)\",\"count_only\":true}" |
	sed -n 's/.*"count":"\([0-9]*\)".*/\1/p')
[ "$keys" = 101 ] || fail "etcd holds $keys pin keys below /trust/pins/known-clients/ (want 101: dev1 and d1..d100)"
for n in t1 t2 t3; do
	for _ in $(seq 50); do
		c=$(grep -c "^d[0-9]* sha256:" "$n/known-clients.pins" 2>/dev/null || true)
		[ "$c" = 100 ] && break; sleep 0.1
	done
	[ "$c" = 100 ] || fail "$n's copy has $c of the 100 pins"
	[ "$(grep "^d[0-9]* " "$n/known-clients.pins" | sort | uniq -d | wc -l)" = 0 ] || fail "$n's copy repeats a pin"
done
pass "one etcd key per identity (101), each node's copy with every pin once"

# a session ticket from node 1 resumes on node 2 (dev1b: the key now pinned)
(sleep 1) | openssl s_client -connect "127.0.0.1:$PORT_t1" -cert dev1b.crt -key dev1b.key \
	-CAfile t1/ca/ca.crt -sess_out sess.pem >s1.out 2>&1 || true
[ -s sess.pem ] || fail "node 1 gave no session: $(tail -5 s1.out)"
openssl s_client -connect "127.0.0.1:$PORT_t2" -cert dev1b.crt -key dev1b.key -CAfile t1/ca/ca.crt \
	-sess_in sess.pem </dev/null >s2.out 2>&1 || true
grep -q "^Reused, TLSv1.3" s2.out || fail "node 2 did not resume node 1's ticket: $(grep -E 'New|Reused' s2.out)"
pass "a session ticket from node 1 resumes on node 2 (openssl s_client -sess_out/-sess_in)"

# ---- etcd members lost under load -------------------------------------------
load() {   # SECONDS OUT: dev1 (known) against the three nodes in turn; counts
	local end=$(( $(date +%s) + $1 )) ok=0 bad=0 n
	while [ "$(date +%s)" -lt "$end" ]; do
		for n in t1 t2 t3; do
			if [ "$(req $n dev1b)" = 200 ]; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
		done
	done
	echo "$ok $bad" >"$2"
}
kill "$PID_ETCD1"; wait "$PID_ETCD1" 2>/dev/null || true
load 5 one.out
read -r ok bad <one.out
[ "$bad" = 0 ] || fail "one etcd member down: $bad of $((ok + bad)) requests failed"
"$TG_BIN" cert issue --client --name d101 --ca dev-ca --out d101 >/dev/null
[ "$(req t2 d101)" = 200 ] || fail "a first contact with one member down"
pass "one etcd member killed: $ok requests, 0 failed; first contacts still recorded"
kill "$PID_ETCD2"; wait "$PID_ETCD2" 2>/dev/null || true
# 60 s in the normal build, as the issue asks; 10 s under the sanitizers
# (CI time; TG_QUORUM_SECONDS sets it)
QSECS=${TG_QUORUM_SECONDS:-60}
if { [ "${TG_SANITIZE:-OFF}" = ON ] || [ "${TG_TSAN:-OFF}" = ON ]; } && [ -z "${TG_QUORUM_SECONDS:-}" ]; then QSECS=10; fi
load "$QSECS" quorum.out &
lp=$!
"$TG_BIN" cert issue --client --name d102 --ca dev-ca --out d102 >/dev/null
for n in t1 t2 t3; do
	wait_log "$T/$n.log" "store: .*serving on from memory and state_dir" 15 "$n noticed the store is gone"
done
[ "$(req t3 d102)" = 000 ] || fail "a first contact was let in without a quorum"
wait_log "$T/t3.log" "first contact of d102 .* refused: the cluster's store is unreachable or has lost its quorum" 2 \
	"the first contact refused in words"
# the gauge is the last probe's (every 3 s): under a sanitizer's load the
# log line of one probe can come before the scrape sees it
up=1
for i in $(seq 50); do
	curl -s --max-time 5 "http://127.0.0.1:$TA/metrics" | grep -q "^tlsgate_store_up 0" && { up=0; break; }
	sleep 0.2
done
[ "$up" = 0 ] || fail "/metrics: store up during the outage: $(curl -s --max-time 5 "http://127.0.0.1:$TA/metrics" | grep '^tlsgate_store')"
curl -s "http://127.0.0.1:$TA/status" | grep -q '"store":{"backend":"etcd".*"up":false' ||
	fail "/status: $(curl -s "http://127.0.0.1:$TA/status")"
wait "$lp" || true
read -r ok bad <quorum.out
[ "$bad" = 0 ] || fail "quorum lost: $bad of $((ok + bad)) requests of a known client failed"
pass "quorum lost for ${QSECS} s: $ok requests of a known client, 0 failed; first contacts refused in words; /metrics and /status say so"
start_member 1; start_member 2
t0=$(date +%s%N)
code=000
for _ in $(seq 150); do code=$(req t3 d102); [ "$code" = 200 ] && break; sleep 0.1; done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$code" = 200 ] || fail "first contacts still refused after the quorum came back"
[ "$ms" -le 10000 ] || fail "first contacts came back after $ms ms (want 10 s)"
# each node's own probe says so within seconds: while down it asks every
# second, each member for at most 2 s (it was 3 s plus up to three members
# each waiting out store.timeout, 5 s: 18 s, and CI saw this fail)
tu=$(date +%s%N)
for _ in $(seq 100); do
	curl -s "http://127.0.0.1:$TA/metrics" | grep -q "^tlsgate_store_up 1" && break
	sleep 0.1
done
curl -s "http://127.0.0.1:$TA/metrics" | grep -q "^tlsgate_store_up 1" || fail "/metrics: store down 10 s after the outage"
pass "quorum back: first contacts accepted again after $ms ms, no restart; node 1's /metrics up $(( ($(date +%s%N) - tu) / 1000000 )) ms later"

# a node killed with -9 during pin writes: nothing partial in the store
for i in $(seq 103 140); do "$TG_BIN" cert issue --client --name "d$i" --ca dev-ca --out "d$i" >/dev/null; done
for i in $(seq 103 140); do echo "t1 d$i"; done | xargs -P 16 -L 1 bash -c 'req "$0" "$1"' >/dev/null &
xp=$!
sleep 0.3
kill -9 "$PID_t1"; wait "$PID_t1" 2>/dev/null || true
wait "$xp" || true
"${TL[@]}" >after.txt || fail "the known file in the store does not parse after a kill: $(cat after.txt)"
n=$(grep -c "^d[0-9]* sha256:" after.txt || true)
[ "$n" -ge 100 ] || fail "pins were lost: $n"
pass "node 1 killed with -9 during pin writes: the store's known file parses ($n pins), nothing partial"
