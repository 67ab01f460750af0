#!/usr/bin/env bash
# Mutual TLS (tls.mode mutual): a client certificate from the CA gets in;
# none, or one from another CA, is refused with a log line that says why.
# The child-device flow: CSRs from tlsgate and openssl, signed, used by curl.
. "$(dirname "$0")/harness.sh"
cd "$T"
"$TG_BIN" ca init --dir ca >/dev/null
"$TG_BIN" ca init --dir rogue --name "Rogue CA" >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost,ip:127.0.0.1 --ca ca --out srv >/dev/null
"$TG_BIN" cert issue --client --name node1 --ca ca --out good >/dev/null
"$TG_BIN" cert issue --client --name intruder --ca rogue --out bad >/dev/null
"$TG_BIN" cert issue --server --name localhost --ca ca --out srvascli >/dev/null
echo "payload" >p.txt

start_tlsgate m --mode mutual --cert srv.crt --key srv.key --set tls.clients.ca=ca/ca.crt
U="https://localhost:$PORT_m/files"
curl -sS --cacert ca/ca.crt --cert good.crt --key good.key -T p.txt "$U/p.txt" >/dev/null || fail "good client"
[ "$(curl -sS --cacert ca/ca.crt --cert good.crt --key good.key "$U/p.txt")" = payload ] || fail "good GET"
assert_log "$T/m.log" 'id=node1 trust=ca/accepted files "PUT /files/p.txt" 201' "the log names the client identity, trust verdict and service"
pass "a client certificate from the CA is accepted"

curl -sS --cacert ca/ca.crt "$U/p.txt" >/dev/null 2>&1 && fail "no client certificate accepted"
assert_log "$T/m.log" "refused|TLS handshake failed: the client sent no certificate" "no certificate: refused, in words"
curl -sS --cacert ca/ca.crt --cert bad.crt --key bad.key "$U/p.txt" >/dev/null 2>&1 && fail "rogue CA accepted"
assert_log "$T/m.log" 'refused client certificate: the chain ends at the CA ."CN=Rogue CA, O=tlsgate.", which is not a trusted CA .tls.clients.ca' \
	"another CA: refused, naming the certificate and its issuer"
curl -sS --cacert ca/ca.crt --cert srvascli.crt --key srvascli.key "$U/p.txt" >/dev/null 2>&1 && fail "server cert accepted as client"
assert_log "$T/m.log" "refused client certificate: certificate for localhost is not meant for this use" \
	"a server certificate presented as a client one: refused (EKU)"
# tlsgate's own client
"$TG_BIN" get "$U/p.txt" --ca-cert ca/ca.crt --cert good.crt --key good.key >/dev/null || fail "tlsgate get with a client cert"
expect_fail "tlsgate get without a client cert" "requires a client certificate \(give --cert and --key\)" \
	"$TG_BIN" get "$U/p.txt" --ca-cert ca/ca.crt
pass "refusals"

# child devices: key and CSR on the device, signed by the CA
"$TG_BIN" cert csr --new-key ec-p256 --name child1 --out child1.csr >/dev/null
"$TG_BIN" cert sign --client --csr child1.csr --ca ca --out child1.crt >/dev/null
curl -sS --cacert ca/ca.crt --cert child1.crt --key child1.key -T p.txt "$U/child1.txt" >/dev/null || fail "child1"
openssl req -new -newkey rsa:2048 -nodes -keyout child2.key -subj /CN=child2 -out child2.csr 2>/dev/null
"$TG_BIN" cert sign --client --csr child2.csr --ca ca --out child2.crt >/dev/null
curl -sS --cacert ca/ca.crt --cert child2.crt --key child2.key -T p.txt "$U/child2.txt" >/dev/null || fail "child2"
assert_log "$T/m.log" 'id=child2 trust=ca/accepted files "PUT /files/child2.txt" 201' "child2 identified"
pass "child devices with tlsgate and openssl CSRs get in"

# a folder of CA files, no c_rehash
mkdir -p cadir && cp rogue/ca.crt cadir/1-rogue.pem && cp ca/ca.crt cadir/2-ours.crt && echo "notes" >cadir/README
start_tlsgate d --mode mutual --cert srv.crt --key srv.key --set tls.clients.ca=cadir
curl -sS --cacert ca/ca.crt --cert good.crt --key good.key "https://localhost:$PORT_d/files/" >/dev/null || fail "CA dir: ours"
curl -sS --cacert ca/ca.crt --cert bad.crt --key bad.key "https://localhost:$PORT_d/files/" >/dev/null || fail "CA dir: rogue (listed)"
pass "tls.clients.ca as a folder of PEM files"

# zero-config mutual: the local CA issues both sides
start_tlsgate z --mode mutual
TLSGATE_STATE_DIR="$T/z" "$TG_BIN" cert issue --client --name dev9 --out dev9 >/dev/null
curl -sS --cacert "$T/z/ca/ca.crt" --cert dev9.crt --key dev9.key "https://localhost:$PORT_z/files/" >/dev/null \
	|| fail "mutual with the local CA"
curl -sS --cacert "$T/z/ca/ca.crt" --cert good.crt --key good.key "https://localhost:$PORT_z/files/" >/dev/null 2>&1 \
	&& fail "mutual with the local CA accepted a foreign CA"
pass "mutual mode with the local CA by default"
# --- reloads do not pile up trust objects: the old one lives while a
# connection made before the reload does, and goes with it (issue 13)
AP=$(free_port)
start_tlsgate r --mode mutual --cert srv.crt --key srv.key --set tls.clients.ca=ca/ca.crt \
	--set tls.clients.trust=tofu --set "admin.listen=127.0.0.1:$AP"
trust_objects() { curl -sS "http://127.0.0.1:$AP/metrics" | awk '/^tlsgate_trust_objects /{print $2}'; }
[ "$(trust_objects)" = 1 ] || fail "trust objects at start: $(trust_objects)"
# a connection that stays open across the reloads (s_client waits on stdin)
(sleep 6) | openssl s_client -quiet -connect "127.0.0.1:$PORT_r" -cert good.crt -key good.key \
	-CAfile ca/ca.crt >/dev/null 2>&1 &
held=$!
sleep 0.5
for i in $(seq 20); do
	m=$(log_mark "$T/r.log" "configuration and certificates reloaded")
	kill -HUP "$PID_r"
	wait_new_log "$T/r.log" "configuration and certificates reloaded" "$m" 5 "reload $i" >/dev/null
done
n=$(trust_objects)
[ "$n" = 2 ] || fail "after 20 reloads with one old connection open: $n trust objects, want 2"
kill "$held" 2>/dev/null; wait "$held" 2>/dev/null || true
for i in $(seq 50); do [ "$(trust_objects)" = 1 ] && break; sleep 0.1; done
[ "$(trust_objects)" = 1 ] || fail "the old trust object outlived its last connection: $(trust_objects)"
curl -sS --cacert ca/ca.crt --cert good.crt --key good.key "https://localhost:$PORT_r/files/" >/dev/null ||
	fail "a client after the reloads"
pass "20 reloads: 2 trust objects while an old connection lives, 1 after it ends"
# --- handshakes do not stat or read the known file: it is watched (inotify),
# and a pin recorded or removed elsewhere is seen within moments
"$TG_BIN" cert issue --client --name node2 --ca ca --out good2 >/dev/null
strace -f -qq -e trace=stat,newfstatat,statx,lstat,open,openat -o "$T/strace.out" -p "$PID_r" &
spid=$!
sleep 0.5
for i in $(seq 10); do
	curl -sS --cacert ca/ca.crt --cert good.crt --key good.key "https://localhost:$PORT_r/files/" >/dev/null ||
		fail "handshake $i under strace"
done
kill "$spid"; wait "$spid" 2>/dev/null || true
# (one stat every 10 s at most is the safety net for what inotify misses)
n=$(grep -c "known-clients" "$T/strace.out" || true)
[ "$n" -le 1 ] || fail "10 known handshakes touched the known file $n times: $(grep known-clients "$T/strace.out" | head -3)"
pass "10 handshakes of a known client: $n stat or open of known-clients"
curl -sS --cacert ca/ca.crt --cert good2.crt --key good2.key "https://localhost:$PORT_r/files/" >/dev/null ||
	fail "first contact of node2"
"$TG_BIN" trust remove --file "$T/r/known-clients" node2 >/dev/null || fail "trust remove node2"
"$TG_BIN" cert issue --client --name node2 --ca ca --out good2b >/dev/null
sleep 0.3
curl -sS --cacert ca/ca.crt --cert good2b.crt --key good2b.key "https://localhost:$PORT_r/files/" >/dev/null ||
	fail "node2 with a new key after trust remove (the watch did not see the change)"
pass "a pin removed by trust remove is seen by the running server"
echo "50-mutual: all passed"
