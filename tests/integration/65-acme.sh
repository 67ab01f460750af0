#!/usr/bin/env bash
# ACME against pebble, Let's Encrypt's test CA, on loopback: the one-shot
# client with all three challenges, the daemon obtaining, serving, reusing,
# recovering a deleted cache and renewing under load with no failed request,
# and the CA's refusals in words.
. "$(dirname "$0")/harness.sh"
REAL_TG_BIN=$TG_BIN
cd "$T"
start_pebble
A=(--directory "$ACME_DIR" --ca-cert "$ACME_CA" --state-dir "$T/cli" --agree-terms)

# ---- the one-shot client -------------------------------------------------
t0=$(date +%s%N)
"$TG_BIN" acme issue --verbose --name a.example.com,b.example.com --out a "${A[@]}" \
	--listen "127.0.0.1:$ACME_HTTP_PORT" >issue.out 2>issue.err || { cat issue.err; fail "acme issue http-01"; }
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
openssl verify -CAfile "$ACME_ROOT" -untrusted a.crt a.crt >/dev/null || fail "http-01 certificate does not verify"
openssl x509 -in a.crt -noout -ext subjectAltName | grep -q "DNS:b.example.com" || fail "second name missing"
[ "$(stat -c %a a.key)" = 600 ] || fail "key mode is $(stat -c %a a.key)"
grep -q "a.example.com: validated by http-01" issue.err || fail "no progress lines: $(cat issue.err)"
grep -q "expires:" issue.out || fail "no summary"
pass "acme issue http-01: two names in one certificate in $ms ms, verified with pebble's root"

"$TG_BIN" acme issue -v --name c.example.com --challenge tls-alpn-01 --out c "${A[@]}" \
	--listen "127.0.0.1:$ACME_TLS_PORT" >/dev/null 2>issue.err || { cat issue.err; fail "acme issue tls-alpn-01"; }
openssl verify -CAfile "$ACME_ROOT" -untrusted c.crt c.crt >/dev/null || fail "tls-alpn-01 certificate does not verify"
grep -q "account .*: reused" issue.err || fail "the account was not reused: $(cat issue.err)"
pass "acme issue tls-alpn-01, with the account of the first order"

"$TG_BIN" acme issue --name '*.wild.example.com,d.example.com' --challenge dns-01 \
	--dns-hook "$T/pebble/dns-hook" --out d "${A[@]}" >/dev/null 2>issue.err || { cat issue.err; fail "acme issue dns-01"; }
openssl x509 -in d.crt -noout -ext subjectAltName | grep -q 'DNS:\*.wild.example.com' || fail "no wildcard"
pass "acme issue dns-01 through a hook that feeds pebble's DNS (wildcard name)"

expect_fail "a name the CA refuses is reported with the CA's words" \
	"refused the order: .*blocked.example.com.*rejectedIdentifier" \
	"$TG_BIN" acme issue --name blocked.example.com --out e "${A[@]}" --listen "127.0.0.1:$ACME_HTTP_PORT"
expect_fail "the CA's terms must be accepted in writing" "terms of service .*agree_terms" \
	"$TG_BIN" acme issue --name x.example.com --out e --directory "$ACME_DIR" --ca-cert "$ACME_CA" \
	--state-dir "$T/cli2" --listen "127.0.0.1:$ACME_HTTP_PORT"
expect_fail "an ACME server that is not trusted is refused" "is not trusted: .*tls.acme.ca_cert" \
	"$TG_BIN" acme issue --name x.example.com --out e --directory "$ACME_DIR" --agree-terms \
	--state-dir "$T/cli2" --listen "127.0.0.1:$ACME_HTTP_PORT"
[ ! -e e.crt ] && [ ! -e e.key ] || fail "a failed order left files"

"$TG_BIN" acme renew --name a.example.com,b.example.com --out a "${A[@]}" \
	--listen "127.0.0.1:$ACME_HTTP_PORT" >renew.out 2>&1 || fail "acme renew (not due)"
grep -q "not due until" renew.out || fail "renew did not say when: $(cat renew.out)"
before=$(openssl x509 -in a.crt -noout -serial)
"$TG_BIN" acme renew --force --name a.example.com,b.example.com --out a "${A[@]}" \
	--listen "127.0.0.1:$ACME_HTTP_PORT" >/dev/null 2>&1 || fail "acme renew --force"
[ "$(openssl x509 -in a.crt -noout -serial)" != "$before" ] || fail "renew --force kept the old certificate"
pass "acme renew: nothing when not due, a new certificate with --force"
"$TG_BIN" acme show --state-dir "$T/cli" >show.out
grep -q "directory: $ACME_DIR" show.out || fail "acme show: $(cat show.out)"

# ---- the daemon ------------------------------------------------------------
cat >s.yaml <<EOF
admin:
  listen: off
tls:
  auto: acme
  acme:
    directory: $ACME_DIR
    ca_cert: $ACME_CA
    names: [s.example.com]
    http_listen: 127.0.0.1:$ACME_HTTP_PORT
    agree_terms: true
    check_interval: 2s
EOF
get() {   # PORT: one HTTPS request to s.example.com verified with pebble's root
	curl -sSf -o /dev/null --max-time 5 --cacert "$ACME_ROOT" \
		--resolve "s.example.com:$1:127.0.0.1" "https://s.example.com:$1/"
}
pin() { "$TG_BIN" cert show "127.0.0.1:$1" --server-name s.example.com --ca-cert "$ACME_ROOT" | grep -m1 pin: | awk '{print $2}'; }
t0=$(date +%s%N)
start_tlsgate s --config s.yaml
wait_log "$T/s.log" "acme: certificate for s.example.com in service" 30 "the daemon obtained a certificate by http-01"
echo "time to first certificate (daemon, http-01): $(( ($(date +%s%N) - t0) / 1000000 )) ms"
get "$PORT_s" || fail "curl with pebble's root"
code=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H "Host: s.example.com" \
	"http://127.0.0.1:$ACME_HTTP_PORT/files/x?y=1")
[ "$code" = "308 https://s.example.com:$PORT_s/files/x?y=1" ] || fail "http_listen redirect: $code"
pass "served and verified by curl; other paths on http_listen redirect to HTTPS"
pin1=$(pin "$PORT_s")
stop_pid "$PID_s"

# a restart reuses the account and the certificate: no order at all
start_tlsgate s --config s.yaml
wait_log "$T/s.log" "checked: not due until" 20 "restart: the cached certificate is checked"
! grep -q "acme: order\|ordering one" "$T/s.log" || fail "a restart ordered again"
[ "$(pin "$PORT_s")" = "$pin1" ] || fail "a restart serves another certificate"
pass "a restart reuses the certificate (no new order)"

# the cache deleted while running: a fresh certificate, never an outage
rm -rf "$T/s/acme"/*/certs
n=0; while [ $n -lt 40 ] && ! grep -q "ordering one" "$T/s.log"; do get "$PORT_s" || fail "outage after the cache was deleted"; n=$((n + 1)); sleep 0.1; done
wait_log "$T/s.log" "acme: certificate for s.example.com obtained" 30 "a deleted cache leads to a new order"
wait_log "$T/s.log" "account .*: reused" 1 "with the same account"
get "$PORT_s" || fail "serving after the cache was rebuilt"
[ -s "$T/s/acme/"*/certs/s.example.com.crt ] || fail "the cache was not rebuilt"
# a half-written certificate file: detected, replaced by a new order
m=$(log_mark "$T/s.log" "acme: certificate for s.example.com obtained")
crt=$(echo "$T/s/acme/"*/certs/s.example.com.crt)
head -c 300 "$crt" >half && cat half >"$crt"
wait_new_log "$T/s.log" "acme: certificate for s.example.com obtained" "$m" 30 "a half-written certificate leads to a new order"
get "$PORT_s" || fail "serving after a half-written certificate"
# a reload that reads the pair while the agent replaces it (its new key
# beside the old certificate): the certificate in service stays, and the
# agent then puts a whole pair in (before: a context without a certificate
# refused every handshake until the agent's hand-over)
m=$(log_mark "$T/s.log" "acme: certificate for s.example.com obtained")
mi=$(log_mark "$T/s.log" "acme: certificate for s.example.com in service")
pin_before=$(pin "$PORT_s")
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key 2>/dev/null
cat other.key >"$(echo "$T/s/acme/"*/certs/s.example.com.key)"
kill -HUP "$PID_s"
ok=0; bad=0   # requests from the reload until the agent's new pair is in service
for _ in $(seq 1000); do
	if get "$PORT_s" 2>/dev/null; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
	[ "$(log_mark "$T/s.log" "acme: certificate for s.example.com obtained")" -gt "$m" ] && break
done
[ "$bad" = 0 ] || fail "a reload during a renewal left no certificate in service: $bad of $((ok + bad)) requests failed"
wait_log "$T/s.log" "SIGHUP: the ACME files are no usable pair \(.*\): being replaced right now.*the certificate for s.example.com keeps serving" 5 \
	"a reload amid a renewal keeps the certificate in service ($ok requests until the new pair, 0 failed)"
wait_new_log "$T/s.log" "acme: certificate for s.example.com in service" "$mi" 30 "the agent's new pair goes into service"
get "$PORT_s" || fail "serving after the pair was replaced"
[ "$(pin "$PORT_s")" != "$pin_before" ] || fail "the old certificate still serves after the agent's new pair"
stop_pid "$PID_s"

# renewal under load: renew_before longer than the lifetime forces one at
# every check; a client loop must see no failed request across the swaps
start_tlsgate s --config s.yaml --set tls.acme.renew_before=2000d
wait_log "$T/s.log" "in service" 30 "renewing daemon started"
pin_start=$(pin "$PORT_s")
ok=0; bad=0; end=$((SECONDS + 8)); hups=0
while [ $SECONDS -lt $end ]; do
	if get "$PORT_s" 2>>swap.err; then ok=$((ok + 1)); else bad=$((bad + 1)); date +%T.%N >>swap.err; fi
	# reloads while the ACME thread logs (the log settings are shared)
	if [ $((ok % 10)) = 5 ] && [ $hups -lt 6 ]; then kill -HUP "$PID_s"; hups=$((hups + 1)); fi
done
renewed=$(grep -c "certificate for s.example.com renewed" "$T/s.log" || true)
[ "$renewed" -ge 2 ] || fail "only $renewed renewals in 8 s"
[ "$bad" = 0 ] || fail "$bad of $((ok + bad)) requests failed during $renewed swaps: $(cat swap.err)"
[ "$(pin "$PORT_s")" != "$pin_start" ] || fail "the renewed certificate is not served"
pass "$renewed renewals swapped in under load, $hups reloads: $ok requests, 0 failed"
# the renewal's certificate write fails: the old pair stays whole in the
# store (the new key is put back), the old certificate keeps serving
faults_for s
cp "$T/s.log" "$T/s-before.log"
TG_BIN=$FAULTY_BIN
stop_pid "$PID_s"
arm "rename@s.example.com.crt:1+:EIO"
start_tlsgate s --config s.yaml --set tls.acme.renew_before=2000d
TG_BIN=$REAL_TG_BIN
wait_log "$T/s.log" "acme: renewal for s.example.com failed: cannot write .*s.example.com.crt: Input/output error" 30 \
	"a renewal whose certificate cannot be written fails in words"
faults_met "rename .*s.example.com.crt" "certificate rename"
crt=$(echo "$T/s/acme/"*/certs/s.example.com.crt); key=${crt%.crt}.key
[ "$(openssl x509 -in "$crt" -noout -pubkey)" = "$(openssl pkey -in "$key" -pubout)" ] ||
	fail "after a failed certificate write the stored key and certificate do not match"
! ls "$T/s/acme/"*/certs/ | grep -q tmp || fail "a temp file was left in the store"
get "$PORT_s" || fail "serving after a failed renewal write"
disarm
pass "a failed certificate write leaves the old pair whole and serving"
stop_pid "$PID_s"

# workers: 2 with ACME (HTTP-01): the first worker orders, once; the other
# takes the certificate from the store; a renewal reaches both
rm -rf "$T/w"
start_tlsgate w --config s.yaml --set workers=2 --set tls.acme.renew_before=2000d \
	--set admin.listen=off
wait_log "$T/w.log" "acme: certificate for s.example.com (obtained|renewed)" 30 "two workers: the first ordered"
wait_log "$T/w.log" "acme: worker 1: certificate for s.example.com in service" 10 \
	"two workers: the second took the certificate from the store"
n=$(grep -c "acme: no usable certificate .*; ordering one" "$T/w.log" || true)
[ "$n" = 1 ] || fail "two workers: $n first orders"
for i in $(seq 16); do get "$PORT_w" || fail "two workers: handshake $i failed"; done
pass "workers: 2 with ACME: one first order, 16 of 16 handshakes verified whichever worker took them"
m=$(log_mark "$T/w.log" "acme: worker 1: certificate for s.example.com in service")
wait_log "$T/w.log" "certificate for s.example.com renewed" 30 "two workers: a renewal by the first"
wait_new_log "$T/w.log" "acme: worker 1: certificate for s.example.com in service" "$m" 10 \
	"two workers: the renewal reaches the second within seconds"
pins=$(for i in $(seq 8); do pin "$PORT_w"; done | sort -u | wc -l)
[ "$pins" -le 2 ] || fail "two workers serve $pins different certificates"
stop_pid "$PID_w"
# no renewals now: the second worker dies, and its replacement (forked from
# the supervisor, which started with no certificate) must take the stored
# one, though the files do not change any more
rm -rf "$T/w2"
{ cat s.yaml; echo "workers: 2"; } >w2.yaml
start_tlsgate w2 --config w2.yaml --set admin.listen=off
wait_log "$T/w2.log" "acme: worker 1: certificate for s.example.com in service" 30 \
	"two workers, no renewals: the second follows the first order"
w1=$(pgrep -P "$PID_w2" | sort -n | sed -n 2p)
kill -9 "$w1"
wait_log "$T/w2.log" "worker 1 \(pid $w1\) died of signal 9; starting it again" 5 "the second worker restarted"
sleep 4   # its first look at the files (2 s) and their settling (1 s)
for i in $(seq 16); do get "$PORT_w2" || fail "after the second worker was replaced: handshake $i failed"; done
pass "a replaced second worker serves the stored certificate: 16 of 16 handshakes"
stop_pid "$PID_w2"

# TLS-ALPN-01 on the main listener while it serves; mutual mode too, since
# the validation server has no client certificate
cat >t.yaml <<EOF
listen: 127.0.0.1:$ACME_TLS_PORT
admin:
  listen: off
tls:
  mode: mutual
  auto: acme
  clients:
    trust: insecure-no-validation
  acme:
    directory: $ACME_DIR
    ca_cert: $ACME_CA
    names: [s.example.com]
    challenge: tls-alpn-01
    agree_terms: true
EOF
"$TG_BIN" serve --config t.yaml --state-dir "$T/t" >"$T/t.log" 2>&1 &
PID_t=$!; PIDS+=("$PID_t")
wait_log "$T/t.log" "answered a tls-alpn-01 challenge" 30 "the daemon answered tls-alpn-01 on its TLS listener"
wait_log "$T/t.log" "in service" 30 "and obtained the certificate"
"$TG_BIN" cert issue --client --name cl --ca "$T/cli/ca" --out cl >/dev/null 2>&1 ||
	{ "$TG_BIN" ca init --dir cca >/dev/null; "$TG_BIN" cert issue --client --name cl --ca cca --out cl >/dev/null; }
curl -sSf -o /dev/null --cacert "$ACME_ROOT" --cert cl.crt --key cl.key \
	--resolve "s.example.com:$ACME_TLS_PORT:127.0.0.1" "https://s.example.com:$ACME_TLS_PORT/" ||
	fail "curl to the tls-alpn-01 certificate"
pass "tls-alpn-01 certificate served in mutual mode"
stop_pid "$PID_t"

# TLS-ALPN-01 with two workers: pebble's validations land on either one
# (SO_REUSEPORT); the second finds the answer the first published in the
# store (state_dir), so every renewal validates
"$TG_BIN" serve --config t.yaml --state-dir "$T/t2" --set workers=2 \
	--set tls.acme.renew_before=2000d --set tls.acme.check_interval=1s >"$T/t2.log" 2>&1 &
PID_t2=$!; PIDS+=("$PID_t2")
wait_log "$T/t2.log" "answered a tls-alpn-01 challenge with the answer another worker or node published" 40 \
	"two workers: the second answered a TLS-ALPN-01 validation from the store"
wait_log "$T/t2.log" "certificate for s.example.com renewed" 30 "two workers: renewals over TLS-ALPN-01"
! grep -q "acme: .* failed" "$T/t2.log" || fail "two workers over TLS-ALPN-01: $(grep 'acme: .* failed' "$T/t2.log" | head -2)"
pass "workers: 2 with TLS-ALPN-01: every validation answered, whichever worker pebble reached"
stop_pid "$PID_t2"

# DNS-01 from the daemon, inside its landlock sandbox: the hook runs, the
# CA's name and root are readable (the config sits in a folder of its own,
# so nothing else of the test's folder is)
mkdir -p conf
cat >conf/d.yaml <<EOF
admin:
  listen: off
tls:
  auto: acme
  acme:
    directory: $ACME_DIR
    ca_cert: $ACME_CA
    names: [dns.example.com]
    challenge: dns-01
    dns_hook: $T/pebble/dns-hook
    agree_terms: true
EOF
start_tlsgate dd --config conf/d.yaml --set log.level=debug
wait_log "$T/dd.log" "acme: certificate for dns.example.com in service" 30 "the daemon obtained a certificate by dns-01 through the hook"
assert_log "$T/dd.log" "landlock: file access limited" "with landlock on"
curl -sSf -o /dev/null --cacert "$ACME_ROOT" --resolve "dns.example.com:$PORT_dd:127.0.0.1" \
	"https://dns.example.com:$PORT_dd/" || fail "curl to the dns-01 certificate"
stop_pid "$PID_dd"

# a refused order: the CA's words in the log, the next try scheduled
start_tlsgate b --config s.yaml --set tls.acme.names=blocked.example.com
wait_log "$T/b.log" "acme: order for blocked.example.com failed: .*rejectedIdentifier.*next try at" 20 \
	"a refused order is logged with the CA's problem and the next try"
code=$(curl -s -o /dev/null -w '%{http_code}' -k "https://127.0.0.1:$PORT_b/" || true)
[ "$code" = 000 ] || fail "without a certificate HTTPS must refuse, got $code"
assert_log "$T/b.log" "TLS handshake refused: no certificate yet" "handshakes before the first certificate are refused in words"

# external account binding, with a CA that requires it
stop_pid "$PID_b"
PEBBLE_EAB=true start_pebble
expect_fail "a CA that requires external account binding says so" "requires external account binding" \
	"$TG_BIN" acme issue --name eab.example.com --out eab --directory "$ACME_DIR" --ca-cert "$ACME_CA" \
	--state-dir "$T/eab" --agree-terms --challenge dns-01 --dns-hook "$T/pebble/dns-hook"
"$TG_BIN" acme issue --name eab.example.com --out eab --directory "$ACME_DIR" --ca-cert "$ACME_CA" \
	--state-dir "$T/eab" --agree-terms --challenge dns-01 --dns-hook "$T/pebble/dns-hook" \
	--set tls.acme.eab_kid=kid-1 \
	--set tls.acme.eab_hmac_key=zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W \
	>/dev/null 2>eab.err || fail "acme issue with external account binding: $(cat eab.err)"
openssl verify -CAfile "$ACME_ROOT" -untrusted eab.crt eab.crt >/dev/null || fail "EAB certificate does not verify"
pass "external account binding (HS256 over the account key) accepted by pebble"
