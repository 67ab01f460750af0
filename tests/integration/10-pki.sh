#!/usr/bin/env bash
# The PKI toolkit: CA, server and client certificates, CSRs from tlsgate and
# from openssl, signing, inspection; everything passes openssl verify.
. "$(dirname "$0")/harness.sh"
cd "$T"

"$TG_BIN" ca init --dir ca --name "Test CA" >/dev/null || fail "ca init"
[ "$(stat -c %a ca/ca.key)" = 600 ] || fail "ca.key is not mode 0600"
openssl x509 -in ca/ca.crt -noout -text | grep -q "CA:TRUE" || fail "CA lacks CA:TRUE"
expect_fail "ca init refuses to overwrite" "already exists" "$TG_BIN" ca init --dir ca

for kt in ec-p256 ec-p384 rsa-2048 ed25519; do
	"$TG_BIN" cert issue --server --san dns:localhost,ip:127.0.0.1 --ca ca --key $kt --out srv-$kt >/dev/null \
		|| fail "issue server $kt"
	openssl verify -CAfile ca/ca.crt -purpose sslserver srv-$kt.crt >/dev/null || fail "verify server $kt"
	[ "$(stat -c %a srv-$kt.key)" = 600 ] || fail "srv-$kt.key not 0600"
done
pass "server certificates of four key types verify as sslserver"

"$TG_BIN" cert issue --client --name node1 --ca ca --out cli >/dev/null || fail "issue client"
openssl verify -CAfile ca/ca.crt -purpose sslclient cli.crt >/dev/null || fail "client verify"
openssl verify -CAfile ca/ca.crt -purpose sslserver cli.crt >/dev/null 2>&1 && fail "client cert passes as server"
pass "client certificate verifies as sslclient only"

# every extension strict verifiers demand
txt=$(openssl x509 -in srv-ec-p256.crt -noout -text)
for ext in "Basic Constraints: critical" "Key Usage: critical" "Extended Key Usage" \
	"Subject Key Identifier" "Authority Key Identifier" "DNS:localhost, IP Address:127.0.0.1"; do
	grep -q "$ext" <<<"$txt" || fail "server cert lacks $ext"
done
serial=$(openssl x509 -in srv-ec-p256.crt -noout -serial | cut -d= -f2)
[ ${#serial} -ge 16 ] || fail "serial $serial has fewer than 64 bits"
pass "extensions and a random serial are present"

# leaf then CA in PREFIX.crt
[ "$(grep -c 'BEGIN CERTIFICATE' srv-ec-p256.crt)" = 2 ] || fail "PREFIX.crt is not leaf + CA"

# child device: CSR by tlsgate with a new key, and by openssl
"$TG_BIN" cert csr --new-key ec-p256 --name child1 --san dns:child1.lan --out child1.csr >/dev/null || fail "csr"
[ "$(stat -c %a child1.key)" = 600 ] || fail "child1.key not 0600"
"$TG_BIN" cert sign --client --csr child1.csr --ca ca --out child1.crt >/dev/null || fail "sign tlsgate csr"
openssl verify -CAfile ca/ca.crt -purpose sslclient child1.crt >/dev/null || fail "child1 verify"
openssl x509 -in child1.crt -noout -ext subjectAltName | grep -q "DNS:child1.lan" || fail "child1 SAN lost"
openssl req -new -newkey rsa:2048 -nodes -keyout child2.key -subj /CN=child2 -out child2.csr 2>/dev/null
"$TG_BIN" cert sign --client --csr child2.csr --ca ca --out child2.crt >/dev/null || fail "sign openssl csr"
openssl verify -CAfile ca/ca.crt -purpose sslclient child2.crt >/dev/null || fail "child2 verify"
# an existing key for a CSR
"$TG_BIN" cert csr --key child1.key --name child1b --out child1b.csr >/dev/null || fail "csr --key"
pass "CSRs from tlsgate and openssl are signed into valid client certificates"

# a CSR asking to be a CA gets a leaf anyway
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout evil.key -subj /CN=evil \
	-addext basicConstraints=critical,CA:TRUE -out evil.csr 2>/dev/null
"$TG_BIN" cert sign --server --csr evil.csr --ca ca --out evil.crt >/dev/null || fail "sign evil"
openssl x509 -in evil.crt -noout -text | grep -q "CA:FALSE" || fail "CSR extensions were copied"
pass "CSR extensions other than SANs are not copied"

# show and check
"$TG_BIN" cert show srv-ec-p256.crt --ca-cert ca/ca.crt >show.txt || fail "show"
grep -q "names:   dns:localhost, ip:127.0.0.1" show.txt || fail "show lacks SANs"
grep -q "pin:     sha256:" show.txt || fail "show lacks the pin"
grep -q "verdict: trusted" show.txt || fail "show verdict"
"$TG_BIN" ca init --dir ca2 >/dev/null
"$TG_BIN" cert show srv-ec-p256.crt --ca-cert ca2/ca.crt | grep -q "NOT TRUSTED: .*not a trusted CA" || fail "show untrusted"
"$TG_BIN" cert check srv-ec-p256.crt >/dev/null || fail "check 30 days"
out=$("$TG_BIN" cert check srv-ec-p256.crt --days 500) && fail "check --days 500 passed"
grep -q "fewer than 500" <<<"$out" || fail "check message: $out"
pass "cert show and check"

# bad input: one clear line each
echo "not a csr" >junk.csr
expect_fail "garbage CSR" "junk.csr is not a CSR" "$TG_BIN" cert sign --client --csr junk.csr --ca ca --out x.crt
expect_fail "bad SAN" "not an IP address" "$TG_BIN" cert issue --server --san ip:999.1.1.1 --ca ca --out x
expect_fail "missing CA" "no CA in nowhere" "$TG_BIN" cert issue --server --name a --ca nowhere --out x
expect_fail "bad key type" "not a key type" "$TG_BIN" cert issue --server --name a --ca ca --key dsa --out x
expect_fail "show of a non-cert" "holds no certificate" "$TG_BIN" cert show junk.csr
# flip one base64 character inside the signed part (never to itself)
awk 'NR==3 { c = substr($0, 10, 1); r = (c == "A") ? "B" : "A"; $0 = substr($0, 1, 9) r substr($0, 11) } { print }' \
	evil.csr >tampered.csr
cmp -s evil.csr tampered.csr && fail "tampering changed nothing"
"$TG_BIN" cert sign --client --csr tampered.csr --ca ca --out t.crt >/dev/null 2>&1 && fail "tampered CSR signed"
pass "tampered CSR refused"
echo "10-pki: all passed"
