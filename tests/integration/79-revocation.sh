#!/usr/bin/env bash
# Revocation by the local CA, checked everywhere a peer is judged:
#  - `tlsgate cert revoke` (by file and by serial, with a reason) writes a
#    CRL that `openssl crl -verify` accepts; issued certificates name the
#    CRL's URL (ca init --crl-url) and the admin listener serves it (DER
#    and PEM);
#  - a mutual HTTPS server with tls.clients.crl refuses the revoked client
#    in words (serial, date, reason) and, when the CRL file changes, the
#    next revoked one too, without a restart; a mutual tunnel refuses it;
#    `tlsgate get --crl` refuses a server whose certificate is revoked;
#  - hard-fail: a CRL that does not cover the client's CA refuses it,
#    soft-fail lets it pass; nginx with ssl_crl on the same CRL refuses the
#    same client (interop).
. "$(dirname "$0")/harness.sh"
cd "$T"
MP=$(free_port)
"$TG_BIN" ca init --dir ca --crl-url "http://127.0.0.1:$MP/crl" >/dev/null
"$TG_BIN" ca init --dir other --name "Other CA" >/dev/null
"$TG_BIN" ca crl --dir other >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost,ip:127.0.0.1 --ca ca --out srv >/dev/null
for n in alice bob carol dave; do "$TG_BIN" cert issue --client --name $n --ca ca --out $n >/dev/null; done
openssl x509 -in alice.crt -noout -text | grep -A2 "CRL Distribution Points" | grep -q "URI:http://127.0.0.1:$MP/crl" ||
	fail "no CRL distribution point in issued certificates: $(openssl x509 -in alice.crt -noout -text | grep -A2 CRL)"
pass "issued certificates name the CA's CRL URL (crlDistributionPoints)"

out=$("$TG_BIN" cert revoke bob.crt --ca ca --reason keyCompromise) || fail "revoke bob: $out"
grep -q "revoked serial [0-9A-F]* (key compromise)" <<<"$out" || fail "revoke output: $out"
BOB=$(openssl x509 -in bob.crt -noout -serial | cut -d= -f2)
openssl crl -in ca/crl.pem -CAfile ca/ca.crt -noout -verify 2>&1 | grep -q "verify OK" || fail "openssl crl -verify: $(openssl crl -in ca/crl.pem -CAfile ca/ca.crt -noout -verify 2>&1)"
openssl crl -in ca/crl.pem -noout -text | grep -q "Serial Number: $BOB" || fail "bob's serial not in the CRL"
openssl crl -in ca/crl.pem -noout -text | grep -q "Key Compromise" || fail "reason not in the CRL"
cmp <(openssl crl -in ca/crl.der -inform DER -outform PEM) ca/crl.pem || fail "crl.der and crl.pem differ"
pass "cert revoke: bob's serial $BOB with reason keyCompromise in a CRL openssl crl -verify accepts"
expect_fail "revoking twice" "was already revoked" "$TG_BIN" cert revoke "$BOB" --ca ca
expect_fail "revoking another CA's certificate" "was not issued by this CA" "$TG_BIN" cert revoke srv.crt --ca other
expect_fail "a bad reason" "--reason because: use unspecified, keyCompromise" "$TG_BIN" cert revoke carol.crt --ca ca --reason because

# bad luck while revoking: the CRL or the list cannot be written; nothing
# half-written is left, the words say what, and doing it again repairs it
faults_for revoke
"$TG_BIN" cert issue --client --name eve --ca ca --out eve >/dev/null
cp ca/crl.pem crl.before
out=$(TG_FAULT='rename@crl.pem:*:ENOSPC' "$FAULTY_BIN" cert revoke eve.crt --ca ca 2>&1) && fail "revoke with a full disk succeeded"
grep -q "cannot write ca/crl.pem: No space left on device" <<<"$out" || fail "full disk: $out"
faults_met "rename .*crl.pem" "a failing rename of crl.pem"
cmp -s ca/crl.pem crl.before || fail "crl.pem changed although its write failed"
openssl crl -in ca/crl.pem -CAfile ca/ca.crt -noout -verify 2>&1 | grep -q "verify OK" || fail "the CRL in place is damaged"
out=$("$TG_BIN" cert revoke eve.crt --ca ca 2>&1) && fail "revoking eve again succeeded"
grep -q "was already revoked .*the CRL, signed again, lists it" <<<"$out" || fail "repair: $out"
EVE=$(openssl x509 -in eve.crt -noout -serial | cut -d= -f2)
openssl crl -in ca/crl.pem -noout -text | grep -q "Serial Number: $EVE" || fail "eve not in the repaired CRL"
"$TG_BIN" cert issue --client --name mallory --ca ca --out mallory >/dev/null
cp ca/revoked revoked.before
out=$(TG_FAULT='rename@revoked:*:EIO' "$FAULTY_BIN" cert revoke mallory.crt --ca ca 2>&1) && fail "revoke with a failing disk succeeded"
grep -q "cannot write ca/revoked: Input/output error" <<<"$out" || fail "failing list write: $out"
cmp -s ca/revoked revoked.before || fail "the revoked list changed although its write failed"
pass "a full disk or a failing write while revoking: said in words, nothing half-written, a second revoke repairs the CRL"

# ---- a mutual server checking the CRL; its admin listener serves it
mkdir -p A && cp -r ca A/ca
start_tlsgate A --mode mutual --cert srv.crt --key srv.key --set tls.clients.ca=ca/ca.crt \
	--set tls.clients.crl="$T/ca/crl.pem" --set admin.listen="127.0.0.1:$MP"
U="https://localhost:$PORT_A/files/"
code=$(curl -sS --cacert ca/ca.crt --cert alice.crt --key alice.key -o /dev/null -w '%{http_code}' "$U")
[ "$code" = 200 ] || fail "alice: $code"
curl -sS --cacert ca/ca.crt --cert bob.crt --key bob.key "$U" >/dev/null 2>&1 && fail "revoked bob got in"
wait_log "$T/A.log" "refused client certificate: certificate for bob \(serial $BOB\) was revoked on [0-9-]+ [0-9:]+ UTC, reason: key compromise" 5 \
	"the server refuses revoked bob in words: serial, date, reason"
"$TG_BIN" get "$U" --ca-cert ca/ca.crt --cert bob.crt --key bob.key >/dev/null 2>&1 && fail "tlsgate get as bob got in"

curl -sS "http://127.0.0.1:$MP/crl" -o fetched.der || fail "GET /crl"
openssl crl -inform DER -in fetched.der -noout -text | grep -q "Serial Number: $BOB" || fail "the served CRL"
[ "$(curl -sS -o /dev/null -w '%{content_type}' "http://127.0.0.1:$MP/crl")" = application/pkix-crl ] || fail "content type"
curl -sS "http://127.0.0.1:$MP/crl.pem" | grep -q "BEGIN X509 CRL" || fail "GET /crl.pem"
pass "the admin listener serves the local CA's CRL at the distribution point (DER) and as PEM"

# revoked while serving: the CRL file changes, the next handshake is checked against it
code=$(curl -sS --cacert ca/ca.crt --cert carol.crt --key carol.key -o /dev/null -w '%{http_code}' "$U")
[ "$code" = 200 ] || fail "carol before: $code"
"$TG_BIN" cert revoke carol.crt --ca ca --reason cessationOfOperation >/dev/null
wait_log "$T/A.log" "tls.clients.crl changed on disk: new handshakes are checked against it" 10 \
	"the changed CRL is taken in while serving"
curl -sS --cacert ca/ca.crt --cert carol.crt --key carol.key "$U" >/dev/null 2>&1 && fail "carol still got in"
wait_log "$T/A.log" "certificate for carol .* was revoked on .*reason: cessation of operation" 5 \
	"carol, revoked while the server ran, is refused without a restart"
code=$(curl -sS --cacert ca/ca.crt --cert alice.crt --key alice.key -o /dev/null -w '%{http_code}' "$U")
[ "$code" = 200 ] || fail "alice after the reload: $code"

# a pinning mode cannot let a revoked client in: tofu, where the chain
# check stops before the CRL (the CA is not a trusted one there)
start_tlsgate P --mode mutual --cert srv.crt --key srv.key --set tls.clients.trust=tofu \
	--set tls.clients.crl="$T/ca/crl.pem" --set admin.listen=off
UP="https://localhost:$PORT_P/files/"
code=$(curl -sS --cacert ca/ca.crt --cert alice.crt --key alice.key -o /dev/null -w '%{http_code}' "$UP")
[ "$code" = 200 ] || fail "tofu: alice: $code"
curl -sS --cacert ca/ca.crt --cert bob.crt --key bob.key "$UP" >/dev/null 2>&1 && fail "tofu let revoked bob in"
wait_log "$T/P.log" "refused client certificate: certificate for bob \(serial $BOB\) was revoked" 5 \
	"tofu (a pinning mode) refuses revoked bob too"
grep -q "^bob " "$T/P/known-clients" 2>/dev/null && fail "revoked bob was pinned"
# the client's soft policy: a server whose CA no CRL covers passes, hard refuses
"$TG_BIN" get "$U" --ca-cert ca/ca.crt --cert alice.crt --key alice.key --crl other/crl.pem \
	--set client.crl_policy=soft >/dev/null || fail "client soft-fail refused"
expect_fail "client hard-fail without the server CA's CRL" "no .*CRL of .*CN=tlsgate local CA" \
	"$TG_BIN" get "$U" --ca-cert ca/ca.crt --cert alice.crt --key alice.key --crl other/crl.pem

# ---- a mutual tunnel; soft and hard policy
EP=$(free_port); TP=$(free_port); TS=$(free_port)
"${TG_TCPECHO:?}" serve "$EP" >echo.log 2>&1 &
PIDS+=("$!")
cat >t.yaml <<YAML
admin: { listen: off }
tls: { clients: { ca: $T/ca/ca.crt } }
tunnels:
  - listen: 127.0.0.1:$TP
    connect: 127.0.0.1:$EP
    mode: mutual
    crl: $T/ca/crl.pem
    idle_timeout: 2s
  - listen: 127.0.0.1:$TS
    connect: 127.0.0.1:$EP
    mode: mutual
    crl: $T/other/none.pem
    idle_timeout: 2s
YAML
cp other/crl.pem other/none.pem
start_tlsgate T --config t.yaml --cert srv.crt --key srv.key
(echo hi; sleep 0.5) | timeout 10 openssl s_client -connect "127.0.0.1:$TP" -cert alice.crt -key alice.key -CAfile ca/ca.crt -quiet >sc.out 2>&1 || true
grep -q "^hi" sc.out || fail "alice through the tunnel: $(cat sc.out)"
(echo hi; sleep 0.5) | timeout 10 openssl s_client -connect "127.0.0.1:$TP" -cert bob.crt -key bob.key -CAfile ca/ca.crt -quiet >sc.out 2>&1 || true
grep -q "^hi" sc.out && fail "revoked bob got through the tunnel"
wait_log "$T/T.log" "tunnel 0: .*certificate for bob \(serial $BOB\) was revoked" 5 "a mutual tunnel refuses revoked bob"
(echo hi; sleep 0.5) | timeout 10 openssl s_client -connect "127.0.0.1:$TP" -cert dave.crt -key dave.key -CAfile ca/ca.crt -quiet >sc.out 2>&1 || true
grep -q "^hi" sc.out || fail "dave through the tunnel before his revocation"
"$TG_BIN" cert revoke dave.crt --ca ca >/dev/null
wait_log "$T/T.log" "tunnel 0: its CRL changed on disk: new connections are checked against it" 10 \
	"the tunnel's own CRL file is read again when it changes"
(echo hi; sleep 0.5) | timeout 10 openssl s_client -connect "127.0.0.1:$TP" -cert dave.crt -key dave.key -CAfile ca/ca.crt -quiet >sc.out 2>&1 || true
grep -q "^hi" sc.out && fail "dave, revoked while the tunnel ran, got through"
pass "dave, revoked while the tunnel ran, is refused without a restart"
(echo hi; sleep 0.5) | timeout 10 openssl s_client -connect "127.0.0.1:$TS" -cert alice.crt -key alice.key -CAfile ca/ca.crt -quiet >sc.out 2>&1 || true
grep -q "^hi" sc.out && fail "hard-fail let alice in without a CRL of her CA"
wait_log "$T/T.log" "tunnel 1: .*no (current )?CRL of .*CN=tlsgate local CA, O=tlsgate.* to check alice" 5 \
	"hard-fail: no CRL of the client's CA refuses it, in words"
stop_pid "$PID_T"
start_tlsgate S --config t.yaml --cert srv.crt --key srv.key --set tls.clients.crl_policy=soft
(echo hi; sleep 0.5) | timeout 10 openssl s_client -connect "127.0.0.1:$TS" -cert alice.crt -key alice.key -CAfile ca/ca.crt -quiet >sc.out 2>&1 || true
grep -q "^hi" sc.out || fail "soft-fail refused alice: $(tail -3 "$T/S.log")"
(echo hi; sleep 0.5) | timeout 10 openssl s_client -connect "127.0.0.1:$TP" -cert bob.crt -key bob.key -CAfile ca/ca.crt -quiet >sc.out 2>&1 || true
grep -q "^hi" sc.out && fail "soft-fail let revoked bob in"
pass "soft-fail lets a client pass when no CRL covers its CA, and still refuses a listed revocation"

# ---- tlsgate get against a revoked server certificate
"$TG_BIN" cert issue --server --san dns:localhost,ip:127.0.0.1 --ca ca --out srv2 >/dev/null
start_tlsgate R --cert srv2.crt --key srv2.key --set admin.listen=off
"$TG_BIN" get "https://localhost:$PORT_R/files/" --ca-cert ca/ca.crt --crl ca/crl.pem >/dev/null || fail "get before revoking"
"$TG_BIN" cert revoke srv2.crt --ca ca --reason superseded >/dev/null
expect_fail "tlsgate get a revoked server" "certificate for localhost \(serial [0-9A-F]+\) was revoked on .* reason: superseded" \
	"$TG_BIN" get "https://localhost:$PORT_R/files/" --ca-cert ca/ca.crt --crl ca/crl.pem

# ---- nginx with ssl_crl refuses the same client
NP=$(free_port)
start_nginx crl "
  server {
    listen 127.0.0.1:$NP ssl;
    ssl_certificate $T/srv.crt;
    ssl_certificate_key $T/srv.key;
    ssl_client_certificate $T/ca/ca.crt;
    ssl_verify_client on;
    ssl_crl $T/ca/crl.pem;
    location / { return 200 'hello \$ssl_client_s_dn\n'; }
  }"
wait_port "$NP" || fail "nginx"
code=$(curl -sS --cacert ca/ca.crt --cert alice.crt --key alice.key -o /dev/null -w '%{http_code}' "https://localhost:$NP/")
[ "$code" = 200 ] || fail "nginx refused alice: $code"
code=$(curl -sS --cacert ca/ca.crt --cert bob.crt --key bob.key -o /dev/null -w '%{http_code}' "https://localhost:$NP/")
[ "$code" = 400 ] || fail "nginx with ssl_crl let bob in: $code"
grep -q "certificate revoked" "$T/nginx-crl.log" || fail "nginx did not say revoked: $(tail -3 "$T/nginx-crl.log")"
pass "nginx with ssl_crl pointed at the CRL refuses the same revoked client (400, certificate revoked)"
