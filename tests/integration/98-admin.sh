#!/usr/bin/env bash
# The admin listener: /metrics has the served certificate's expiry and
# counters that move with traffic and refusals; /status and `tlsgate status`
# tell the same to a person.
. "$(dirname "$0")/harness.sh"
cd "$T"
"$TG_BIN" ca init --dir ca >/dev/null
"$TG_BIN" ca init --dir rogue >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost --ca ca --out srv >/dev/null
"$TG_BIN" cert issue --client --name dev1 --ca ca --out good >/dev/null
"$TG_BIN" cert issue --client --name evil --ca rogue --out bad >/dev/null
AP=$(free_port)
start_tlsgate a --mode mutual --cert srv.crt --key srv.key --set tls.clients.ca=ca/ca.crt \
	--set tls.clients.trust=ca-or-tofu --set "admin.listen=127.0.0.1:$AP"
M="http://127.0.0.1:$AP/metrics"
metric() { curl -sS "$M" | awk -v k="$1" 'index($0, k) == 1 { print $NF }'; }

want=$(date -d "$(openssl x509 -in srv.crt -noout -enddate | cut -d= -f2)" +%s)
[ "$(metric 'tlsgate_cert_not_after_seconds{name="localhost",source="--cert"}')" = "$want" ] \
	|| fail "expiry metric: $(curl -sS "$M" | grep not_after)"
pass "tlsgate_cert_not_after_seconds is the served certificate's notAfter"

ok0=$(metric 'tlsgate_requests_total{code="2xx"}')
hs0=$(metric 'tlsgate_handshakes_total{result="ok"}')
rej0=$(metric 'tlsgate_trust_decisions_total{mode="ca-or-tofu",verdict="rejected"}')
rec0=$(metric 'tlsgate_trust_decisions_total{mode="ca-or-tofu",verdict="recorded"}')
for i in 1 2 3; do
	curl -sS --cacert ca/ca.crt --cert good.crt --key good.key "https://localhost:$PORT_a/files/" >/dev/null
done
# a client from an unknown CA, first seen: ca-or-tofu accepts and records it
curl -sS --cacert ca/ca.crt --cert bad.crt --key bad.key "https://localhost:$PORT_a/files/" >/dev/null \
	|| fail "ca-or-tofu refused a first-seen client"
curl -sS --cacert ca/ca.crt --cert good.crt --key good.key "https://localhost:$PORT_a/files/" >/dev/null
[ "$(metric 'tlsgate_requests_total{code="2xx"}')" -ge $((ok0 + 4)) ] || fail "2xx count did not move"
[ "$(metric 'tlsgate_handshakes_total{result="ok"}')" -ge $((hs0 + 4)) ] || fail "handshake count did not move"
[ "$(metric 'tlsgate_trust_decisions_total{mode="ca-or-tofu",verdict="recorded"}')" -gt "$rec0" ] \
	|| fail "recorded count did not move"
# a different rogue key under the recorded name is refused
"$TG_BIN" cert issue --client --name evil --ca rogue --out bad2 >/dev/null
curl -sS --cacert ca/ca.crt --cert bad2.crt --key bad2.key "https://localhost:$PORT_a/files/" >/dev/null 2>&1 \
	&& fail "a changed key was accepted"
sleep 0.2
[ "$(metric 'tlsgate_trust_decisions_total{mode="ca-or-tofu",verdict="rejected"}')" -gt "$rej0" ] \
	|| fail "rejected count did not move"
[ "$(metric 'tlsgate_handshakes_total{result="refused_certificate"}')" -ge 1 ] || fail "refused handshakes not counted"
pass "request, handshake and trust counters move with traffic and refusals"

curl -sS "http://127.0.0.1:$AP/status" | jq -e '.certificates[0].name == "localhost" and .certificates[0].days_left > 300
	and .known_files[0].entries >= 1 and .listeners[0].tls == "mutual"' >/dev/null || fail "/status JSON"
"$TG_BIN" status --admin "127.0.0.1:$AP" >st.txt || fail "tlsgate status"
grep -qE "^certificate: +localhost, expires [0-9-]+ \([0-9]+ days left\), --cert" st.txt || fail "status: $(cat st.txt)"
grep -qE "^known-clients +.*, [0-9]+ entries \(trust ca-or-tofu\)" st.txt || fail "status known: $(cat st.txt)"
expect_fail "status with nothing listening" "is tlsgate serve running" "$TG_BIN" status --admin 127.0.0.1:1
code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$AP/files/")
[ "$code" = 404 ] || fail "the admin listener served files: $code"
pass "/status, tlsgate status, and nothing else on the admin listener"
# JSON logs: every line is one JSON object; requests carry identity and verdict
start_tlsgate j --mode mutual --cert srv.crt --key srv.key --set tls.clients.ca=ca/ca.crt --set log.format=json --set admin.listen=off
curl -sS --cacert ca/ca.crt --cert good.crt --key good.key "https://localhost:$PORT_j/files/" >/dev/null
curl -sS --cacert ca/ca.crt --cert bad.crt --key bad.key "https://localhost:$PORT_j/files/" >/dev/null 2>&1 || true
sleep 0.2
grep -v '^tlsgate\|^  ' "$T/j.log" | jq -e . >/dev/null || fail "a JSON log line does not parse"
grep -v '^tlsgate\|^  ' "$T/j.log" | jq -c 'select(.path == "/files/") | .identity == "dev1" and .trust == "ca/accepted"
	and .service == "files" and .status == 200' | grep -qx true || fail "the JSON request line"
grep -q '"level":"warn","msg":"127.0.0.1:[0-9]*: refused client certificate' "$T/j.log" || fail "JSON refusal line"
pass "log.format json: one object a line, with identity, trust verdict and service"
echo "98-admin: all passed"
