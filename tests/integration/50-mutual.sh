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
echo "50-mutual: all passed"
