#!/usr/bin/env bash
# The ACME client with today's lifetimes, against pebble issuing 20-second
# certificates: a profile the CA does not list is refused in words naming
# what it offers; the daemon renews each short-lived certificate when half
# of its lifetime is left (under 10 days: half, else a third), waking for
# it even with the default hour between checks, and never in a loop.
. "$(dirname "$0")/harness.sh"
cd "$T"
PEBBLE_VALIDITY=20 start_pebble
A=(--directory "$ACME_DIR" --ca-cert "$ACME_CA" --state-dir "$T/cli" --agree-terms)

expect_fail "a profile the CA's directory does not list" \
	"tls.acme.profile shortlived: the ACME CA at $ACME_DIR offers no profiles \(its directory lists none\)" \
	"$TG_BIN" acme issue --name p.example.com --out p "${A[@]}" --profile shortlived \
	--listen "127.0.0.1:$ACME_HTTP_PORT"
[ ! -e p.crt ] || fail "a refused profile left a certificate"
out=$("$TG_BIN" doctor --state-dir "$T/d" --set tls.auto=acme --set tls.acme.directory="$ACME_DIR" \
	--set tls.acme.ca_cert="$ACME_CA" --set tls.acme.agree_terms=true --set tls.acme.names=x.example.com \
	--set tls.acme.profile=shortlived --set admin.listen=off 2>&1) && fail "doctor found no problem: $out"
grep -q "problem: tls.acme.profile shortlived (--set): the CA at $ACME_DIR offers no profiles" <<<"$out" ||
	fail "doctor on the profile: $out"
pass "doctor names a profile the CA does not offer"

"$TG_BIN" acme issue --name q.example.com --out q "${A[@]}" --listen "127.0.0.1:$ACME_HTTP_PORT" \
	>/dev/null 2>&1 || fail "acme issue with a 20 s lifetime"
nb=$(date -d "$(openssl x509 -in q.crt -noout -startdate | cut -d= -f2)" +%s)
na=$(date -d "$(openssl x509 -in q.crt -noout -enddate | cut -d= -f2)" +%s)
[ $((na - nb)) -le 60 ] || fail "pebble lifetime is $((na - nb)) s, not 20"
out=$("$TG_BIN" acme renew --name q.example.com --out q "${A[@]}" --listen "127.0.0.1:$ACME_HTTP_PORT" 2>&1) ||
	fail "acme renew: $out"
if grep -q "not due until" <<<"$out"; then
	due=$(date -u -d "@$(( na - (na - nb) / 2 ))" '+%Y-%m-%d %H:%M UTC')
	grep -q "not due until $due" <<<"$out" || fail "due time: $out (expected $due: half of $((na - nb)) s)"
fi
pass "acme renew: a $((na - nb))-second certificate is due at half its lifetime"

cat >s.yaml <<YAML
admin: { listen: off }
tls:
  auto: acme
  acme:
    directory: $ACME_DIR
    ca_cert: $ACME_CA
    names: [s.example.com]
    http_listen: 127.0.0.1:$ACME_HTTP_PORT
    agree_terms: true
YAML
start_tlsgate s --config s.yaml
wait_log "$T/s.log" "acme: certificate for s.example.com obtained" 30 "the daemon obtained a 20 s certificate"
grep -q "acme: certificate for s.example.com obtained; expires .*; next check at" "$T/s.log" || fail "no next check"
sleep 25
renewed=$(grep -c "acme: certificate for s.example.com renewed" "$T/s.log" || true)
[ "$renewed" -ge 1 ] && [ "$renewed" -le 4 ] ||
	fail "$renewed renewals of a 20 s certificate in 25 s (expected one every ~10 s, never a loop)"
grep -q "renewing because less than half of its lifetime is left" "$T/s.log" || fail "the reason for renewing"
[ "$(grep -c "Added order" "$T/pebble.log")" -le 7 ] || fail "too many orders: $(grep -c "Added order" "$T/pebble.log")"
pass "the daemon renewed its 20 s certificate $renewed times in 25 s at half its lifetime, with the default hour between checks"
