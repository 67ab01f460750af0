#!/usr/bin/env bash
# Interop with nginx: it serves with a tlsgate server certificate and curl
# verifies it; it requires a tlsgate client certificate and accepts it;
# tlsgate get/put talk to it.
. "$(dirname "$0")/harness.sh"
command -v nginx >/dev/null || fail "nginx is not installed (scripts/deps.sh --test installs it)"
cd "$T"
"$TG_BIN" ca init --dir ca >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost --ca ca --out srv >/dev/null
"$TG_BIN" cert issue --client --name device7 --ca ca --out cli >/dev/null
"$TG_BIN" ca init --dir rogue >/dev/null
"$TG_BIN" cert issue --client --name rogue --ca rogue --out bad >/dev/null
mkdir -p www/up && echo "from nginx" >www/index.txt
P1=$(free_port); P2=$(free_port)
start_nginx n "
  server {
    listen 127.0.0.1:$P1 ssl;
    ssl_certificate $T/srv.crt;
    ssl_certificate_key $T/srv.key;
    root $T/www;
    location /up/ { dav_methods PUT DELETE; create_full_put_path on; }
  }
  server {
    listen 127.0.0.1:$P2 ssl;
    ssl_certificate $T/srv.crt;
    ssl_certificate_key $T/srv.key;
    ssl_client_certificate $T/ca/ca.crt;
    ssl_verify_client on;
    root $T/www;
    location / { return 200 \"client \$ssl_client_s_dn\n\"; }
  }"
wait_port "$P1" 10 && wait_port "$P2" 10 || fail "nginx did not start"

[ "$(curl -sS --cacert ca/ca.crt "https://localhost:$P1/index.txt")" = "from nginx" ] || fail "curl verify nginx"
pass "nginx serves a tlsgate server certificate that curl verifies"
out=$(curl -sS --cacert ca/ca.crt --cert cli.crt --key cli.key "https://localhost:$P2/")
grep -q "CN=device7" <<<"$out" || fail "nginx did not accept the tlsgate client certificate: $out"
code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert ca/ca.crt "https://localhost:$P2/")
[ "$code" = 400 ] || fail "nginx without a client certificate: $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' --cacert ca/ca.crt --cert bad.crt --key bad.key "https://localhost:$P2/")
[ "$code" = 400 ] || fail "nginx with a rogue client certificate: $code"
pass "nginx requires a tlsgate client certificate and accepts it"

echo "from tlsgate" >t.txt
"$TG_BIN" put "https://127.0.0.1:$P1/up/t.txt" t.txt --ca-cert ca/ca.crt --server-name localhost 2>/dev/null \
	|| fail "tlsgate put to nginx"
cmp -s t.txt www/up/t.txt || fail "nginx stored something else"
[ "$("$TG_BIN" get "https://127.0.0.1:$P1/up/t.txt" --ca-cert ca/ca.crt --server-name localhost)" = "from tlsgate" ] \
	|| fail "tlsgate get from nginx"
"$TG_BIN" get "https://localhost:$P2/" --ca-cert ca/ca.crt --cert cli.crt --key cli.key | grep -q "CN=device7" \
	|| fail "tlsgate get with a client certificate to nginx"
expect_fail "tlsgate get to nginx, name mismatch" "name 127.0.0.1 is not in the certificate's names" \
	"$TG_BIN" get "https://127.0.0.1:$P1/index.txt" --ca-cert ca/ca.crt
pass "tlsgate get/put against nginx"

# and the other way round: tlsgate serves, nginx-style client (openssl s_client) verifies
start_tlsgate g --cert srv.crt --key srv.key
echo | openssl s_client -connect "127.0.0.1:$PORT_g" -servername localhost -verify_hostname localhost \
	-CAfile ca/ca.crt -verify_return_error 2>&1 | grep -q "Verify return code: 0 (ok)" || fail "s_client verify"
pass "openssl s_client verifies tlsgate's chain"
echo "60-nginx: all passed"
