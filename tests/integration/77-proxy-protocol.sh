#!/usr/bin/env bash
# The PROXY protocol both ways, with peers nobody here wrote:
#  - to backends: a TLS -> plain tunnel with proxy_protocol v2 in front of
#    nginx (listen ... proxy_protocol, logging $proxy_protocol_addr) and of
#    haproxy (accept-proxy, logging the client and the authority TLV it
#    decodes); a mutual tunnel and a proxy route with v2 in front of a
#    spec-only decoder: the real client, SNI, ALPN, TLS version and cipher
#    and the client certificate's verified identity arrive; v1 too;
#  - from a load balancer: tlsgate behind haproxy send-proxy-v2 and
#    send-proxy logs the real client, counts it per address and passes it
#    in X-Forwarded-For; a forged header from an unlisted address and a
#    listed balancer without a header are refused and logged.
# The "real" clients come from 127.0.0.2/.3 (curl --interface), tlsgate and
# haproxy connect from 127.0.0.1, so an address that arrives is the one
# the header carried.
. "$(dirname "$0")/harness.sh"
TOOLS=$(cd "$(dirname "$0")/../tools" && pwd)
command -v haproxy >/dev/null || fail "haproxy is missing (make deps-test)"
cd "$T"

DP=$(free_port)
/usr/bin/python3 "$TOOLS/ppdecode.py" "$DP" >decoder.log 2>&1 &
PIDS+=("$!")
wait_port "$DP" || fail "decoder did not start"

NP=$(free_port)
start_nginx pp "
  log_format pp 'remote=\$remote_addr proxy=\$proxy_protocol_addr:\$proxy_protocol_port';
  server {
    listen 127.0.0.1:$NP proxy_protocol;
    access_log $T/nginx-pp-access.log pp;
    location / { return 200 'nginx saw \$proxy_protocol_addr\n'; }
  }"
wait_port "$NP" || fail "nginx did not start"

HB=$(free_port)
cat >hb.cfg <<EOF
global
  log stdout format raw local0
defaults
  mode tcp
  log global
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:$HB accept-proxy
  log-format "haproxy-backend client=%ci:%cp authority=%[fc_pp_authority]"
  default_backend be
backend be
  server nginx 127.0.0.1:$NP send-proxy-v2
EOF
haproxy -db -f hb.cfg >haproxy-b.log 2>&1 &
PIDS+=("$!")
wait_port "$HB" || fail "haproxy (backend) did not start"

# ---- tlsgate towards the backends
T1=$(free_port); T2=$(free_port); T3=$(free_port); T4=$(free_port); T5=$(free_port)
cat >g.yaml <<EOF
admin: { listen: off }
tunnels:
  - listen: 127.0.0.1:$T1
    connect: 127.0.0.1:$NP
    proxy_protocol: v2
  - listen: 127.0.0.1:$T2
    connect: 127.0.0.1:$HB
    proxy_protocol: v2
  - listen: 127.0.0.1:$T3
    connect: 127.0.0.1:$DP
    mode: mutual
    alpn: [http/1.1]
    proxy_protocol: v2
  - listen: 127.0.0.1:$T4
    connect: 127.0.0.1:$DP
    proxy_protocol: v1
proxy:
  - prefix: /pp/
    upstream: http://127.0.0.1:$DP/
    proxy_protocol: v2
EOF
start_tlsgate G --config g.yaml
CA=$T/G/ca/ca.crt
CURL=(curl -sS --cacert "$CA" --interface 127.0.0.2)

out=$("${CURL[@]}" --connect-to "localhost:$T1:127.0.0.1:$T1" "https://localhost:$T1/") || fail "through the tunnel to nginx: $out"
[ "$out" = "nginx saw 127.0.0.2" ] || fail "nginx saw: $out"
grep -q "remote=127.0.0.1 proxy=127.0.0.2:" "$T/nginx-pp-access.log" || fail "nginx log: $(cat "$T/nginx-pp-access.log")"
pass "nginx (listen proxy_protocol) logs \$proxy_protocol_addr 127.0.0.2, the client behind tlsgate's tunnel"

out=$("${CURL[@]}" "https://localhost:$T2/") || fail "through the tunnel to haproxy: $out"
wait_log "$T/haproxy-b.log" "haproxy-backend client=127.0.0.2:[0-9]+ authority=localhost" 5 \
	"haproxy (accept-proxy) logs client 127.0.0.2 and the SNI from the authority TLV"

"$TG_BIN" cert issue --client --name alice --ca "$T/G/ca" --out alice >/dev/null
out=$("${CURL[@]}" --cert alice.crt --key alice.key "https://localhost:$T3/") || fail "mutual tunnel to the decoder: $out"
for want in '"src": "127.0.0.2"' '"version": 2' '"alpn": "http/1.1"' '"authority": "localhost"' \
	'"ssl_cn": "alice"' '"ssl_verify": 0' '"ssl_version": "TLSv1.3"' '"ssl_cipher": "TLS_' '"ssl_client": 7' \
	'"ssl_key_alg": "EC256"'; do
	grep -qF "$want" <<<"$out" || fail "decoded v2 header lacks $want: $out"
done
pass "v2 TLVs decoded by the spec: client 127.0.0.2, ALPN, SNI, TLS version and cipher, verified client identity alice"
out=$("${CURL[@]}" "https://localhost:$T4/") || fail "v1 tunnel: $out"
grep -qF '"proto": "TCP4"' <<<"$out" && grep -qF '"src": "127.0.0.2"' <<<"$out" || fail "v1: $out"
pass "v1 header (PROXY TCP4 127.0.0.2 ...) towards a backend"
out=$("${CURL[@]}" "https://localhost:$PORT_G/pp/x") || fail "proxy route: $out"
grep -qF '"src": "127.0.0.2"' <<<"$out" && grep -qF '"xff": "127.0.0.2"' <<<"$out" || fail "proxy route: $out"
out2=$("${CURL[@]}" "https://localhost:$PORT_G/pp/x" "https://localhost:$PORT_G/pp/y") || fail "two on one connection: $out2"
[ "$(grep -c '"src": "127.0.0.2"' <<<"$out2")" = 2 ] || fail "second request: $out2"
pass "proxy route with proxy_protocol v2: the client in the header and in X-Forwarded-For, a header per upstream connection"

# ---- tlsgate behind haproxy send-proxy-v2 / send-proxy
LM=$(free_port)
cat >l.yaml <<EOF
admin: { listen: "127.0.0.1:$LM" }
proxy_protocol: { accept_from: [127.0.0.1/32, "::1"] }
limits: { max_connections_per_ip: 2 }
proxy:
  - prefix: /pp/
    upstream: http://127.0.0.1:$DP/
    proxy_protocol: v2
EOF
start_tlsgate L --config l.yaml
LA=127.0.0.1 LP=$PORT_L
HF=$(free_port); HF1=$(free_port)
cat >hf.cfg <<EOF
global
  log stdout format raw local0
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend v2
  bind 127.0.0.1:$HF
  default_backend tg2
frontend v1
  bind 127.0.0.1:$HF1
  default_backend tg1
backend tg2
  server tg $LA:$LP send-proxy-v2
backend tg1
  server tg $LA:$LP send-proxy
EOF
haproxy -db -f hf.cfg >haproxy-f.log 2>&1 &
PIDS+=("$!")
wait_port "$HF" || fail "haproxy (front) did not start"
CA_L=$T/L/ca/ca.crt
out=$(curl -sS --cacert "$CA_L" --interface 127.0.0.3 --connect-to "localhost:$HF:127.0.0.1:$HF" "https://localhost:$HF/pp/a") ||
	fail "through haproxy send-proxy-v2: $out"
grep -qF '"xff": "127.0.0.3"' <<<"$out" && grep -qF '"src": "127.0.0.3"' <<<"$out" ||
	fail "X-Forwarded-For and the PROXY header onward, behind haproxy: $out"
wait_log "$T/L.log" "proxy /pp/: 127.0.0.3:[0-9]+ 'GET /pp/a' .* 200" 5 \
	"behind haproxy send-proxy-v2, tlsgate logs and forwards the real client 127.0.0.3"
out=$(curl -sS --cacert "$CA_L" --interface 127.0.0.3 --connect-to "localhost:$HF1:127.0.0.1:$HF1" "https://localhost:$HF1/pp/b") ||
	fail "through haproxy send-proxy (v1): $out"
wait_log "$T/L.log" "proxy /pp/: 127.0.0.3:[0-9]+ 'GET /pp/b' .* 200" 5 \
	"behind haproxy send-proxy (v1), the real client too"

# the per-address limit counts the client, not the balancer: three
# clients' connections at once from one balancer, two allowed per client
exec 5<>/dev/tcp/127.0.0.1/$HF; exec 6<>/dev/tcp/127.0.0.1/$HF
sleep 0.3
out=$(curl -sS --cacert "$CA_L" --interface 127.0.0.2 --connect-to "localhost:$HF:127.0.0.1:$HF" "https://localhost:$HF/pp/c") ||
	fail "another client behind the balancer was limited by the balancer's count: $out"
exec 5<&- 6<&-
pass "limits.max_connections_per_ip counts the client the header names, not the balancer"

# forged: a header from an address not listed
/usr/bin/python3 - "$LA" "$LP" <<'EOF' || true
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), source_address=("127.0.0.5", 0))
s.sendall(b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes([203, 0, 113, 9, 127, 0, 0, 4, 4, 210, 1, 187]))
s.settimeout(5)
try:
    s.recv(10)
except Exception:
    pass
EOF
wait_log "$T/L.log" "127.0.0.5:[0-9]+: refused: a PROXY header from an address proxy_protocol.accept_from does not list" 5 \
	"a forged v2 header from an unlisted address is refused and logged"
grep -q "203.0.113.9" "$T/L.log" && fail "the forged address reached the log as a client"
# a listed balancer that sends no header
/usr/bin/python3 - "$LA" "$LP" <<'EOF' || true
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), source_address=("127.0.0.1", 0))
s.sendall(b"\x16\x03\x01\x00\x05hello")
s.settimeout(5)
try:
    s.recv(10)
except Exception:
    pass
EOF
wait_log "$T/L.log" "127.0.0.1:[0-9]+: refused: no PROXY header where one is required" 5 \
	"a listed balancer's connection without a header is refused in words"
m=$(curl -sS "http://127.0.0.1:$LM/metrics")
grep -q 'tlsgate_proxy_headers_total{result="accepted"} [1-9]' <<<"$m" || fail "accepted not counted: $(grep proxy_headers <<<"$m")"
grep -q 'tlsgate_proxy_headers_total{result="refused"} [2-9]' <<<"$m" || fail "refused not counted: $(grep proxy_headers <<<"$m")"
pass "/metrics counts PROXY headers accepted and refused"
