#!/usr/bin/env bash
# The local CA as an ACME server (tlsgate ca serve, ca.acme.listen), driven
# by ACME clients nobody here wrote and by tlsgate itself:
#  - enrolment: a key from `tlsgate ca enroll` lets one account in; an
#    unknown key, a reused key and no key at all are refused in words;
#  - certbot (RSA account key): HTTP-01, renewal, revocation (the CRL then
#    lists the serial and `openssl crl -verify` accepts it), and a wildcard
#    by DNS-01 through a manual hook;
#  - lego (EC account key): TLS-ALPN-01, renewal by HTTP-01, revocation;
#    a name outside the account's policy is refused;
#  - two tlsgate nodes with tls.auto: acme against a third node's CA
#    (ca.acme.listen inside tlsgate serve) get 24-hour certificates for
#    their addresses and talk mutual TLS (trust: ca) through a tunnel that
#    presents the node's own certificate; no certificate command is typed.
. "$(dirname "$0")/harness.sh"
TOOLS=$(cd "$(dirname "$0")/../tools" && pwd)
cd "$T"
command -v certbot >/dev/null || fail "certbot is not installed (make test installs it)"
command -v lego >/dev/null || fail "lego is not installed (make test installs it)"

HP=$(free_port); TP=$(free_port); DP=$(free_port); CP=$(free_port)
mkdir -p txt
/usr/bin/python3 "$TOOLS/dns_stub.py" "$DP" "$T/txt" >"$T/dns.log" 2>&1 &
PIDS+=("$!")
"$TG_BIN" ca init --dir ca >/dev/null
VALIDATION="--set ca.acme.http_port=$HP --set ca.acme.tls_port=$TP --set ca.acme.resolver=127.0.0.1:$DP"
# shellcheck disable=SC2086
"$TG_BIN" ca serve --listen "127.0.0.1:$CP" --dir ca --state-dir "$T/caserve" $VALIDATION \
	>"$T/caserve.log" 2>&1 &
PIDS+=("$!")
wait_log caserve.log "ACME CA directory: https://127.0.0.1:$CP/acme/directory" 10 \
	"ca serve prints its directory URL"
DIR="https://127.0.0.1:$CP/acme/directory"
curl -sf --cacert ca/ca.crt "$DIR" | jq -e '.meta.externalAccountRequired == true and .newOrder' >/dev/null ||
	fail "directory: $(curl -s --cacert ca/ca.crt "$DIR")"
pass "the directory is served over HTTPS with a certificate of the same CA, EAB required"

enroll() {   # NAME ALLOW [more flags] -> KID KEY
	local out
	out=$("$TG_BIN" ca enroll "$1" --allow "$2" --state-dir "$T/caserve" "${@:3}") || fail "enroll $1: $out"
	KID=$(awk '/key id:/{print $3}' <<<"$out"); KEY=$(awk '/HMAC key:/{print $3}' <<<"$out")
	[ -n "$KID" ] && [ -n "$KEY" ] || fail "enroll $1 printed no key: $out"
}
expect_fail "enroll without --allow" "needs --allow" "$TG_BIN" ca enroll x --state-dir "$T/caserve"
expect_fail "enroll with a bad policy" 'policy entry "ip:300.1.1.1"' \
	"$TG_BIN" ca enroll x --allow ip:300.1.1.1 --state-dir "$T/caserve"

# ---- lego: TLS-ALPN-01, renewal, policy, revocation ------------------------------------
export LEGO_CA_CERTIFICATES=$T/ca/ca.crt
enroll lego-dev '*.fleet.test' --lifetime 6h
LEGO=(lego --path "$T/lego" --server "$DIR" --email ops@fleet.test --accept-tos)
if out=$(timeout 60 "${LEGO[@]}" --domains a.fleet.test --tls --tls.port "127.0.0.1:$TP" run 2>&1); then
	fail "lego got an account without external account binding"
fi
grep -q "requires External Account Binding" <<<"$out" || fail "no-EAB refusal: $out"
pass "without an enrolment lego does not get an account (the directory requires EAB)"
if out=$(timeout 60 "${LEGO[@]}" --eab --kid nosuchkid --hmac "$KEY" --domains a.fleet.test \
	--tls --tls.port "127.0.0.1:$TP" run 2>&1); then
	fail "lego got an account with an unknown EAB key id"
fi
grep -q "unknown external account binding key id nosuchkid" <<<"$out" || fail "unknown kid: $out"
pass "an unknown EAB key id is refused in words"
rm -rf "$T/lego"
timeout 90 "${LEGO[@]}" --eab --kid "$KID" --hmac "$KEY" --domains a.fleet.test --tls \
	--tls.port "127.0.0.1:$TP" run >lego-run.log 2>&1 || fail "lego run (TLS-ALPN-01): $(tail -5 lego-run.log)"
C=$T/lego/certificates/a.fleet.test.crt
openssl verify -CAfile ca/ca.crt "$C" >/dev/null 2>&1 || fail "lego's certificate does not verify: $(openssl verify -CAfile ca/ca.crt "$C" 2>&1)"
lifetime() {
	echo $(( $(date -d "$(openssl x509 -in "$1" -noout -enddate | cut -d= -f2)" +%s) - \
		$(date -d "$(openssl x509 -in "$1" -noout -startdate | cut -d= -f2)" +%s) ))
}
life=$(lifetime "$C")
[ "$life" -ge 21600 ] && [ "$life" -le 21900 ] || fail "lifetime of lego's certificate: $life s, want the enrolment's 6h"
openssl x509 -in "$C" -noout -ext extendedKeyUsage | grep -q "Client Authentication" ||
	fail "no clientAuth in an ACME certificate"
grep -q "tls-alpn-01 for a.fleet.test valid" caserve.log || fail "no TLS-ALPN-01 line in the CA's log"
pass "lego: TLS-ALPN-01, a certificate for a.fleet.test of the enrolment's lifetime (6 h), serverAuth+clientAuth"
S1=$(openssl x509 -in "$C" -noout -serial | cut -d= -f2)
timeout 90 "${LEGO[@]}" --eab --kid "$KID" --hmac "$KEY" --domains a.fleet.test --http \
	--http.port "127.0.0.1:$HP" renew --days 365 --no-random-sleep >lego-renew.log 2>&1 ||
	fail "lego renew: $(tail -5 lego-renew.log)"
S2=$(openssl x509 -in "$C" -noout -serial | cut -d= -f2)
[ "$S1" != "$S2" ] || fail "lego renew kept the same certificate"
grep -q "http-01 for a.fleet.test valid" caserve.log || fail "no HTTP-01 line for lego's renewal"
pass "lego renews by HTTP-01 (new serial $S2)"
if out=$(timeout 60 "${LEGO[@]}" --eab --kid "$KID" --hmac "$KEY" --domains www.other.test --tls \
	--tls.port "127.0.0.1:$TP" run 2>&1); then
	fail "lego got a name outside its policy"
fi
grep -q 'rejectedIdentifier.*enrolled as "lego-dev") may not have www.other.test: its policy allows \*.fleet.test' <<<"$out" ||
	fail "policy refusal: $out"
pass "a name outside the account's policy is refused in words"
# the same key again, for another account (another key pair): refused
if out=$(timeout 60 lego --path "$T/lego2" --server "$DIR" --email x@fleet.test --accept-tos --eab \
	--kid "$KID" --hmac "$KEY" --domains b.fleet.test --tls --tls.port "127.0.0.1:$TP" run 2>&1); then
	fail "a used EAB key registered a second account"
fi
grep -q "was already used for 1 account" <<<"$out" || fail "reused EAB key: $out"
pass "a used EAB key is refused for another account"
timeout 60 "${LEGO[@]}" --eab --kid "$KID" --hmac "$KEY" --domains a.fleet.test revoke \
	--reason 1 >lego-revoke.log 2>&1 || fail "lego revoke: $(tail -5 lego-revoke.log)"
openssl crl -in ca/crl.pem -CAfile ca/ca.crt -noout -verify 2>&1 | grep -q "verify OK" || fail "CRL does not verify"
openssl crl -in ca/crl.pem -noout -text | grep -A4 "Serial Number: $S2" | grep -q "Key Compromise" ||
	fail "the CRL does not list $S2 with key compromise: $(openssl crl -in ca/crl.pem -noout -text)"
pass "lego revokes: the CRL lists the serial (key compromise) and verifies"

# ---- certbot: HTTP-01, renewal, DNS-01 wildcard, revocation ------------------------------
export REQUESTS_CA_BUNDLE=$T/ca/ca.crt
enroll certbot-host 'web.fleet.test,*.wild.test'
CB=(certbot --config-dir "$T/cb/conf" --work-dir "$T/cb/work" --logs-dir "$T/cb/logs" -n
	--agree-tos --register-unsafely-without-email --server "$DIR")
timeout 90 "${CB[@]}" certonly --standalone --http-01-port "$HP" --http-01-address 127.0.0.1 \
	-d web.fleet.test --eab-kid "$KID" --eab-hmac-key "$KEY" >cb-run.log 2>&1 || fail "certbot certonly: $(tail -20 cb-run.log)"
C=$T/cb/conf/live/web.fleet.test/cert.pem
openssl verify -CAfile ca/ca.crt "$C" >/dev/null 2>&1 || fail "certbot's certificate does not verify"
life=$(lifetime "$C")
[ "$life" -ge 86400 ] && [ "$life" -le 86700 ] || fail "lifetime of certbot's certificate: $life s, want 24h"
grep -q "http-01 for web.fleet.test valid" caserve.log || fail "no HTTP-01 line in the CA's log"
pass "certbot (RSA account key): HTTP-01, a 24-hour certificate for web.fleet.test"
S1=$(openssl x509 -in "$C" -noout -serial | cut -d= -f2)
timeout 90 "${CB[@]}" renew --force-renewal --no-random-sleep-on-renew >cb-renew.log 2>&1 ||
	fail "certbot renew: $(tail -20 cb-renew.log)"
S2=$(openssl x509 -in "$C" -noout -serial | cut -d= -f2)
[ "$S1" != "$S2" ] || fail "certbot renew kept the same certificate"
pass "certbot renews (new serial $S2)"
cat >hook.sh <<HOOK
#!/bin/sh
echo "\$CERTBOT_VALIDATION" >> "$T/txt/_acme-challenge.\$CERTBOT_DOMAIN"
HOOK
chmod +x hook.sh
timeout 90 "${CB[@]}" certonly --manual --preferred-challenges dns --manual-auth-hook "$T/hook.sh" \
	-d '*.wild.test' >cb-dns.log 2>&1 || fail "certbot DNS-01: $(tail -20 cb-dns.log)"
openssl x509 -in "$T/cb/conf/live/wild.test/cert.pem" -noout -ext subjectAltName | grep -q 'DNS:\*.wild.test' ||
	fail "no wildcard in the DNS-01 certificate"
grep -q "dns-01 for wild.test valid" caserve.log || fail "no DNS-01 line in the CA's log"
pass "certbot: a wildcard (*.wild.test) by DNS-01"
timeout 60 "${CB[@]}" revoke --cert-name web.fleet.test --reason superseded --no-delete-after-revoke \
	>cb-revoke.log 2>&1 || fail "certbot revoke: $(tail -20 cb-revoke.log)"
openssl crl -in ca/crl.pem -noout -text | grep -A4 "Serial Number: $S2" | grep -q "Superseded" ||
	fail "the CRL does not list certbot's $S2 as superseded"
grep -q "revoked serial $S2 (superseded) at the request of account" caserve.log || fail "no revocation line"
pass "certbot revokes: the CRL lists $S2 (superseded)"

# ---- tlsgate acme issue (the one-shot client), TLS-ALPN-01 -------------------------------
enroll tool 't.fleet.test'
"$TG_BIN" acme issue --name t.fleet.test --out "$T/tool" --directory "$DIR" --ca-cert ca/ca.crt \
	--challenge tls-alpn-01 --listen "127.0.0.1:$TP" --state-dir "$T/toolstate" \
	--set tls.acme.eab_kid="$KID" --set tls.acme.eab_hmac_key="$KEY" >tool.log 2>&1 ||
	fail "tlsgate acme issue: $(tail -5 tool.log)"
openssl verify -CAfile ca/ca.crt "$T/tool.crt" >/dev/null 2>&1 || fail "tlsgate acme issue's certificate"
[ "$(stat -c %a "$T/tool.key")" = 600 ] || fail "tool.key is not 0600"
pass "tlsgate acme issue gets t.fleet.test by TLS-ALPN-01 from the ACME CA"

# ---- two tlsgate nodes, certified by a third node's ACME CA, talk mutual TLS ------------------
AP=$(free_port)
faults_for hub   # the hub runs under the fault shim: its store fails on demand below
# shellcheck disable=SC2086
MP=$(free_port)
TG_BIN=$FAULTY_BIN start_tlsgate hub --set ca.acme.listen=127.0.0.1:$AP --set admin.listen=127.0.0.1:$MP $VALIDATION
HUB=https://127.0.0.1:$AP/acme/directory
curl -sf --cacert hub/ca/ca.crt "$HUB" >/dev/null || fail "the hub's ACME directory is not served"
pass "a node serves the ACME CA beside HTTPS (ca.acme.listen)"
node_conf() {   # NAME ADDRESS PORT [ENROLL FLAGS] -> NAME.yaml
	local out
	out=$("$TG_BIN" ca enroll "$1" --allow "ip:$2" --state-dir "$T/hub" "${@:4}") || fail "enroll $1: $out"
	cat >"$1.yaml" <<YAML
state_dir: $T/$1
listen: $2:$3
admin.listen: "off"
tls.mode: mutual
tls.clients.ca: $T/hub/ca/ca.crt
tls.auto: acme
tls.names: [$2]
tls.acme.directory: $HUB
tls.acme.ca_cert: $T/hub/ca/ca.crt
tls.acme.eab_kid: $(awk '/key id:/{print $3}' <<<"$out")
tls.acme.eab_hmac_key: $(awk '/HMAC key:/{print $3}' <<<"$out")
tls.acme.http_listen: $2:$HP
YAML
}
NA=$(free_port); NB=$(free_port); TUN=$(free_port)
node_conf nodea 127.0.0.1 "$NA"
echo "tls.acme.check_interval: 3s" >>nodea.yaml   # asks the hub's renewal information often
node_conf nodeb 127.0.0.2 "$NB" --lifetime 2m   # B renews by itself within the test
cat >>nodeb.yaml <<YAML
tunnels:
  - listen: 127.0.0.1:$TUN
    connect: 127.0.0.1:$NA
    tls_connect: true
    trust: ca
    ca: $T/hub/ca/ca.crt
    idle_timeout: 5s
YAML
"$TG_BIN" serve --config nodea.yaml >nodea.log 2>&1 &
PIDS+=("$!")
wait_log nodea.log "acme: certificate for 127.0.0.1 in service" 30 "node A got its certificate from the hub"
"$TG_BIN" serve --config nodeb.yaml >nodeb.log 2>&1 &
PIDS+=("$!")
wait_log nodeb.log "acme: certificate for 127.0.0.2 in service" 30 "node B got its certificate from the hub"
wait_log nodeb.log "tunnel 0: presents the node's new certificate" 10 "node B's tunnel presents its ACME certificate"
life=$(lifetime "$(ls "$T"/nodea/acme/*/certs/127.0.0.1.crt)")
[ "$life" -ge 86400 ] && [ "$life" -le 86700 ] || fail "node A's certificate lives $life s, want 24h"
echo "from b" >note.txt
curl -sf -T note.txt "http://127.0.0.1:$TUN/files/note.txt" >/dev/null || fail "PUT through node B's tunnel to node A"
[ "$(curl -sf "http://127.0.0.1:$TUN/files/note.txt")" = "from b" ] || fail "GET through the tunnel"
grep -q 'id=127.0.0.2 trust=ca/accepted files "PUT /files/note.txt" 201' nodea.log ||
	fail "node A did not judge node B by its CA: $(tail -3 nodea.log)"
pass "node B reaches node A over mutual TLS (node A names it 127.0.0.2), both with 24-hour certificates from the hub's ACME CA"
if curl -s --cacert hub/ca/ca.crt "https://127.0.0.1:$NA/files/note.txt" >/dev/null; then
	fail "node A let in a client without a certificate"
fi
pass "node A refuses a client without a certificate"
# revoked at the hub: node A's next check finds the renewal window (RFC
# 9773) in the past and replaces the certificate by itself, once
CA_A=$(ls "$T"/nodea/acme/*/certs/127.0.0.1.crt)
SA1=$(openssl x509 -in "$CA_A" -noout -serial)
mk=$(log_mark nodea.log "acme: certificate for 127.0.0.1 in service")
"$TG_BIN" cert revoke "$CA_A" --ca hub/ca --reason keyCompromise >/dev/null || fail "revoke node A's certificate"
wait_new_log nodea.log "acme: certificate for 127.0.0.1 in service" "$mk" 30 "node A replaces its revoked certificate"
grep -q "acme: certificate for 127.0.0.1: renewing because the CA's renewal window has begun" nodea.log ||
	fail "node A did not say why it renewed: $(grep acme: nodea.log | tail -4)"
[ "$(openssl x509 -in "$CA_A" -noout -serial)" != "$SA1" ] || fail "node A's certificate file did not change"
# two checks after the renewal (every 1.5 to 3 s) find the new one not due
mc=$(log_mark nodea.log "acme: certificate for 127.0.0.1 checked: not due until")
wait_new_log nodea.log "acme: certificate for 127.0.0.1 checked: not due until" "$((mc + 1))" 10 \
	"node A's next checks find its new certificate not due"
[ "$(log_mark nodea.log "acme: certificate for 127.0.0.1 in service")" = $((mk + 1)) ] ||
	fail "node A renews in a loop: $(grep -c 'in service' nodea.log)"
[ "$(curl -sf "http://127.0.0.1:$TUN/files/note.txt")" = "from b" ] || fail "the tunnel to node A after its renewal"
pass "a revoked certificate: the hub's renewal information says renew now, node A does, once (no command on node A)"
# doctor: a renew_before not shorter than the lifetime the CA issues
out=$("$TG_BIN" doctor --config nodea.yaml --set tls.acme.renew_before=48h) && fail "doctor found nothing: $out"
grep -q "^problem: tls.acme.renew_before (--set) is 48 hours, not shorter than the 24-hour lifetime" <<<"$out" ||
	fail "doctor on renew_before: $out"
pass "doctor: a renew_before of 48 h against 24-hour certificates is a problem"

# bad luck: the hub's disk is full when it would record a certificate;
# the client is told in words, nothing half-written stays, and the same
# order is finalized once the disk has room again
enroll faulty 'f.fleet.test' --state-dir "$T/hub"
LEGOH=(lego --path "$T/legoh" --server "$HUB" --email f@fleet.test --accept-tos --eab --kid "$KID"
	--hmac "$KEY" --domains f.fleet.test --tls --tls.port "127.0.0.1:$TP")
export LEGO_CA_CERTIFICATES=$T/hub/ca/ca.crt
arm 'rename@acme-ca/cert:*:ENOSPC'
if out=$(timeout 90 "${LEGOH[@]}" run 2>&1); then fail "issued with a full disk"; fi
grep -q "the CA cannot write to its store .*No space left on device; nothing was changed" <<<"$out" ||
	fail "lego was not told why: $out"
faults_met "rename .*acme-ca/cert.* -> No space left on device" "a full disk while recording a certificate"
grep -q "ACME CA refused POST /acme/order/.*/finalize: the CA cannot write to its store" hub.log ||
	fail "the hub did not log the failed finalize"
ls -a "$T"/hub/acme-ca/cert/ 2>/dev/null | grep -q "tmp-" && fail "a half-written record stayed: $(ls -a "$T"/hub/acme-ca/cert/)"
disarm
timeout 90 "${LEGOH[@]}" run >legoh.log 2>&1 || fail "lego after the disk has room: $(tail -5 legoh.log)"
openssl verify -CAfile hub/ca/ca.crt "$T/legoh/certificates/f.fleet.test.crt" >/dev/null 2>&1 ||
	fail "no certificate after the fault"
pass "a full disk at finalize: refused in words (lego shows it), nothing half-written, issued once the disk has room"
# the store's lock held elsewhere (another node finalizing): a registration
# is answered 503 with the CA's problem document and a fresh nonce, in words
enroll busy 'ip:127.0.0.9' --state-dir "$T/hub"
exec 7> >("${TG_STORELOCK:?TG_STORELOCK must name tests/tools/storelock}" "folder:$T/hub" "" "" "" "" \
	acme-ca stdin >"$T/lock.out" 2>&1)
for i in $(seq 100); do grep -q locked "$T/lock.out" 2>/dev/null && break; sleep 0.1; done
grep -q locked "$T/lock.out" || fail "storelock did not take the lock: $(cat "$T/lock.out")"
if out=$(timeout 60 lego --path "$T/legob" --server "$HUB" --email b@fleet.test --accept-tos --eab \
	--kid "$KID" --hmac "$KEY" --domains 127.0.0.9 --tls --tls.port "127.0.0.1:$TP" run 2>&1); then
	fail "registered while the store's lock was held elsewhere"
fi
exec 7>&-
grep -q "503 .*serverInternal :: the CA's store .* is busy or unreachable" <<<"$out" ||
	fail "a busy store was not answered with the CA's problem document: $out"
pass "a busy store lock: 503 with the CA's problem document (not a stopping notice)"
m=$(curl -sf "http://127.0.0.1:$MP/metrics") || fail "the hub's /metrics"
# at least: node B may have renewed meanwhile
for ev in issued:3 challenge_valid:4 refused:2; do
	n=$(awk -v e="tlsgate_acme_ca_events_total{event=\"${ev%%:*}\"}" '$1 == e {print $2}' <<<"$m")
	[ -n "$n" ] && [ "$n" -ge "${ev#*:}" ] ||
		fail "/metrics: ${ev%%:*} is ${n:-missing}, want at least ${ev#*:}: $(grep acme_ca <<<"$m")"
done
pass "/metrics counts the hub's issued certificates, valid challenges and the refused finalize"

# node B's 2-minute certificate: renewed by the node itself at half its
# lifetime (no cron, no CA key on B), its tunnel presenting the new one
# (the normal build only: a minute of waiting the sanitizer builds skip,
# the renewal code is the same as 65/66's)
if [ "${TG_SANITIZE:-OFF}" != ON ] && [ "${TG_TSAN:-OFF}" != ON ]; then
	S1=$(openssl x509 -in "$(ls "$T"/nodeb/acme/*/certs/127.0.0.2.crt)" -noout -serial)
	for i in $(seq 90); do
		[ "$(grep -c "acme: certificate for 127.0.0.2 in service" nodeb.log)" -ge 2 ] && break
		sleep 1
	done
	[ "$(grep -c "acme: certificate for 127.0.0.2 in service" nodeb.log)" -ge 2 ] ||
		fail "node B did not renew its 2-minute certificate within 90 s: $(grep acme: nodeb.log | tail -5)"
	S2=$(openssl x509 -in "$(ls "$T"/nodeb/acme/*/certs/127.0.0.2.crt)" -noout -serial)
	[ "$S1" != "$S2" ] || fail "node B's certificate file did not change"
	for i in $(seq 50); do   # the 2-second watch tick
		[ "$(grep -c "tunnel 0: presents the node's new certificate" nodeb.log)" -ge 2 ] && break
		sleep 0.1
	done
	[ "$(grep -c "tunnel 0: presents the node's new certificate" nodeb.log)" -ge 2 ] ||
		fail "the tunnel did not take the renewed certificate within 5 s"
	[ "$(curl -sf "http://127.0.0.1:$TUN/files/note.txt")" = "from b" ] || fail "the tunnel after the renewal"
	[ "$(grep -c "acme: certificate for 127.0.0.2 in service" nodeb.log)" -le 3 ] ||
		fail "node B renews in a loop: $(grep -c 'in service' nodeb.log) certificates"
	pass "node B renewed its 2-minute certificate at half its lifetime, once, and its tunnel took it"
fi
