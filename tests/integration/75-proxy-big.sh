#!/usr/bin/env bash
# 1 GiB through the reverse proxy in each direction, to and from nginx over
# HTTPS with a client certificate: SHA-256 equal, tlsgate's RSS under 64 MiB
# (bodies are streamed through bounded buffers), and the server CPU it took.
. "$(dirname "$0")/harness.sh"
command -v nginx >/dev/null || fail "nginx is not installed (scripts/deps.sh --test installs it)"
cd "$T"
"$TG_BIN" ca init --dir ca >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost --ca ca --out up >/dev/null
"$TG_BIN" cert issue --client --name gateway --ca ca --out gw >/dev/null
mkdir -p www/up
P2=$(free_port)
start_nginx n "
  server {
    listen 127.0.0.1:$P2 ssl;
    ssl_certificate $T/up.crt;
    ssl_certificate_key $T/up.key;
    ssl_client_certificate $T/ca/ca.crt;
    ssl_verify_client on;
    root $T/www;
    client_max_body_size 0;
    location /up/ { dav_methods PUT; create_full_put_path on; }
  }"
cat >p.yaml <<YAML
admin: { listen: off }
client: { ca: ca/ca.crt, cert: gw.crt, key: gw.key }
proxy:
  - prefix: /store/
    upstream: https://localhost:$P2/up/
YAML
start_tlsgate p --config p.yaml
U="https://localhost:$PORT_p"
head -c 1073741824 /dev/urandom >big.bin
want=$(sha big.bin)
cpu() { awk '{print $14 + $15}' "/proc/$PID_p/stat"; }
hz=$(getconf CLK_TCK)
c0=$(cpu); t0=$(date +%s%N)
code=$(curl -sS --cacert p/ca/ca.crt -o /dev/null -w '%{http_code}' -T big.bin "$U/store/big.bin")
t1=$(date +%s%N); c1=$(cpu)
[ "$code" = 201 ] || fail "1 GiB PUT through the proxy: $code"
[ "$(sha www/up/big.bin)" = "$want" ] || fail "the upstream stored other bytes"
up_ms=$(( (t1 - t0) / 1000000 )); up_cpu=$(( (c1 - c0) * 1000 / hz ))
rm -f big.bin
c0=$(cpu); t0=$(date +%s%N)
curl -sS --cacert p/ca/ca.crt -o down.bin "$U/store/big.bin" || fail "1 GiB GET through the proxy"
t1=$(date +%s%N); c1=$(cpu)
[ "$(sha down.bin)" = "$want" ] || fail "the download differs"
down_ms=$(( (t1 - t0) / 1000000 )); down_cpu=$(( (c1 - c0) * 1000 / hz ))
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$PID_p/status")
[ "${TG_SANITIZE:-OFF}" = ON ] || [ "$hwm" -lt 65536 ] || fail "tlsgate peak RSS $hwm KiB (want under 64 MiB)"
echo "proxy 1 GiB up: $up_ms ms ($(( 1024 * 1000 / (up_ms + 1) )) MiB/s), tlsgate CPU $up_cpu ms"
echo "proxy 1 GiB down: $down_ms ms ($(( 1024 * 1000 / (down_ms + 1) )) MiB/s), tlsgate CPU $down_cpu ms"
pass "1 GiB each way through the proxy, SHA-256 equal, tlsgate peak RSS $hwm KiB"
