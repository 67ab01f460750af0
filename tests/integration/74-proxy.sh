#!/usr/bin/env bash
# The reverse proxy in front of nginx upstreams over verified HTTPS with a
# client certificate: headers injected (one from a file, re-read when it
# changes) and X-Forwarded-*, bodies both ways; 502 in words for an
# untrusted or dead upstream, 504 for a silent one.
. "$(dirname "$0")/harness.sh"
command -v nginx >/dev/null || fail "nginx is not installed (scripts/deps.sh --test installs it)"
E=${TG_TCPECHO:?TG_TCPECHO must name the tcpecho tool}
cd "$T"
"$TG_BIN" ca init --dir ca >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost --ca ca --out up >/dev/null
"$TG_BIN" cert issue --client --name gateway --ca ca --out gw >/dev/null
"$TG_BIN" ca init --dir rogue >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost --ca rogue --out rogue-srv >/dev/null
mkdir -p www/up
P2=$(free_port); P3=$(free_port); P4=$(free_port); DEAD=$(free_port); SLOW=$(free_port)
head -c 200000 /dev/urandom | base64 >www/text.txt
start_nginx n "
  server {
    listen 127.0.0.1:$P2 ssl;
    ssl_certificate $T/up.crt;
    ssl_certificate_key $T/up.key;
    ssl_client_certificate $T/ca/ca.crt;
    ssl_verify_client on;
    root $T/www;
    client_max_body_size 0;
    location /api/ { return 200 \"key=\$http_x_api_key static=\$http_x_static xff=\$http_x_forwarded_for proto=\$http_x_forwarded_proto host=\$http_x_forwarded_host uri=\$request_uri client=\$ssl_client_s_dn conn=\$connection\n\"; }
    location /up/ { dav_methods PUT DELETE; create_full_put_path on; }
  }
  server {
    listen 127.0.0.1:$P4;
    root $T/www;
    gzip on; gzip_types text/plain; gzip_min_length 1;
    location /up/ { dav_methods PUT; create_full_put_path on; client_max_body_size 0; }
  }
  server {
    listen 127.0.0.1:$P3 ssl;
    ssl_certificate $T/rogue-srv.crt;
    ssl_certificate_key $T/rogue-srv.key;
    location / { return 200 \"should never be seen\n\"; }
  }"
"$E" sink "$SLOW" >sink.log 2>&1 &
PIDS+=("$!")
wait_port "$SLOW"
echo "token-1" >token
cat >p.yaml <<EOF
admin: { listen: off }
client:
  ca: ca/ca.crt
  cert: gw.crt
  key: gw.key
proxy:
  - prefix: /cloud/
    upstream: https://localhost:$P2/api/
    headers:
      X-Api-Key: "@token"
      X-Static: hello
  - prefix: /store/
    upstream: https://localhost:$P2/up/
  - prefix: /plain/
    upstream: http://127.0.0.1:$P4/
  - prefix: /rogue/
    upstream: https://localhost:$P3/
  - prefix: /down/
    upstream: http://127.0.0.1:$DEAD/
    connect_timeout: 2s
  - prefix: /slow/
    upstream: http://127.0.0.1:$SLOW/
    first_byte_timeout: 1s
EOF
start_tlsgate p --config p.yaml
U="https://localhost:$PORT_p"
C=(-sS --cacert "$T/p/ca/ca.crt")

out=$(curl "${C[@]}" -H "X-Forwarded-For: 10.0.0.7" -H "X-Api-Key: from-client" "$U/cloud/v1/items?x=1")
for want in "key=token-1 " "static=hello " "xff=10.0.0.7, 127.0.0.1 " "proto=https " "host=localhost:$PORT_p " \
	"uri=/api/v1/items?x=1 " "client=CN=gateway"; do
	[[ "$out" == *"$want"* ]] || fail "upstream saw: $out (wanted $want)"
done
pass "through the proxy: client certificate, injected headers (the route's beat the client's), X-Forwarded-*, path: $out"
assert_log "$T/p.log" "proxy /cloud/: 127.0.0.1:[0-9]+ 'GET /cloud/v1/items\?x=1' -> localhost:$P2 200" "one log line per proxied request"

# keep-alive: the client's connection is kept across proxied requests, and
# the upstream connection is pooled (nginx's \$connection stays the same)
curl "${C[@]}" -v "$U/cloud/k1" "$U/cloud/k2" "$U/files/" >ka.out 2>ka.err || fail "keep-alive requests"
[ "$(grep -c 'Re-using existing connection' ka.err)" = 2 ] || fail "the client connection was not kept: $(grep -E 'Connection|HTTP/' ka.err)"
c1=$(grep -o 'uri=/api/k1 .*conn=[0-9]*' ka.out | grep -o 'conn=[0-9]*')
c2=$(grep -o 'uri=/api/k2 .*conn=[0-9]*' ka.out | grep -o 'conn=[0-9]*')
[ -n "$c1" ] && [ "$c1" = "$c2" ] || fail "the upstream connection was not reused: $c1 / $c2"
pass "keep-alive: one client connection for three requests (two proxied, one file service), one upstream connection ($c1) for both proxied"

sleep 0.05; echo "token-2" >token
out=$(curl "${C[@]}" "$U/cloud/again")
[[ "$out" == *"key=token-2 "* ]] || fail "the header file was not read again: $out"
pass "a header read from a file follows the file"
# it is watched, not looked at per request (issue 13)
strace -f -qq -e trace=stat,newfstatat,statx,open,openat -o "$T/strace.out" -p "$PID_p" &
spid=$!
sleep 0.5
for i in 1 2 3 4 5; do curl "${C[@]}" -o /dev/null "$U/cloud/s$i" || fail "proxied request $i under strace"; done
kill "$spid"; wait "$spid" 2>/dev/null || true
! grep -q '/token"' "$T/strace.out" || fail "proxied requests stat or open the header file: $(grep token "$T/strace.out" | head -2)"
pass "5 proxied requests: the header file is neither stat'ed nor opened"

head -c 3000000 /dev/urandom >body.bin
code=$(curl "${C[@]}" -o /dev/null -w '%{http_code}' -T body.bin "$U/store/dir/body.bin")
[ "$code" = 201 ] || fail "PUT through the proxy: $code"
cmp -s body.bin www/up/dir/body.bin || fail "the upstream stored something else"
curl "${C[@]}" -o back.bin "$U/store/dir/body.bin"
cmp -s body.bin back.bin || fail "GET through the proxy returned something else"
pass "request and response bodies pass whole (3 MB each way, curl -T with Expect: 100-continue)"

# chunked both ways (a gzip answer from nginx, a chunked upload), still keep-alive
curl "${C[@]}" -v --compressed -o got1.txt "$U/plain/text.txt" \
	--next "${C[@]}" -v -o /dev/null -H "Transfer-Encoding: chunked" -T www/text.txt "$U/plain/up/chunked.txt" \
	--next "${C[@]}" -v --compressed -o got2.txt "$U/plain/text.txt" 2>ch.err ||
	fail "chunked exchanges: $(cat ch.err)"
grep -qi "transfer-encoding: chunked" ch.err || fail "nginx did not answer chunked (test set-up)"
cmp -s got1.txt www/text.txt && cmp -s got2.txt www/text.txt || fail "a chunked answer was cut or changed"
cmp -s www/up/chunked.txt www/text.txt || fail "the chunked upload arrived different"
[ "$(grep -c 'Re-using existing connection' ch.err)" = 2 ] || fail "chunked exchanges did not keep the connection"
pass "chunked answers and chunked uploads pass whole and keep the connection"

# a chunked body and a second request in the same packet: the second one is
# not the route's (it was never rewritten), so it must not reach the upstream
python3 - "$PORT_p" "$T/p/ca/ca.crt" >pipelined.out 2>&1 <<'PY' || fail "pipelined chunked request: $(cat pipelined.out)"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="localhost")
s.sendall(b"PUT /plain/up/pipelined.txt HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
          b"5\r\nhello\r\n0\r\n\r\n"
          b"GET /smuggled-past-the-route HTTP/1.1\r\nHost: localhost\r\n\r\n")
s.settimeout(3)
got = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
except (socket.timeout, ssl.SSLError, ConnectionError):
    pass
print(got.decode(errors="replace").split("\r\n")[0])
PY
grep -q "^HTTP/1.1 20[01]" pipelined.out || fail "the chunked PUT was not answered: $(cat pipelined.out)"
sleep 0.5
[ "$(cat www/up/pipelined.txt)" = hello ] || fail "the chunked PUT stored something else"
if grep -q "smuggled-past-the-route" "$T/nginx-n.log"; then
	fail "a request pipelined after a chunked body reached the upstream unrewritten: $(grep smuggled "$T/nginx-n.log")"
fi
pass "a request pipelined after a chunked body does not reach the upstream"

code=$(curl "${C[@]}" -o err.txt -w '%{http_code}' "$U/rogue/x")
[ "$code" = 502 ] || fail "untrusted upstream: $code"
grep -q "upstream localhost:$P3 refused: .*not a trusted CA" err.txt || fail "502 body: $(cat err.txt)"
assert_log "$T/p.log" "proxy /rogue/: .* 502: upstream localhost:$P3 refused" "the refusal is logged"
pass "an upstream whose certificate is not trusted: 502 with the reason ($(cat err.txt))"

t0=$(date +%s%N)
code=$(curl "${C[@]}" -o err.txt -w '%{http_code}' "$U/down/x")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$code" = 502 ] && grep -q "cannot connect to 127.0.0.1:$DEAD" err.txt || fail "dead upstream: $code $(cat err.txt)"
[ "$ms" -lt 2000 ] || fail "502 took $ms ms (connect_timeout 2s)"
pass "a dead upstream: 502 in $ms ms ($(cat err.txt))"

t0=$(date +%s%N)
code=$(curl "${C[@]}" -o err.txt -w '%{http_code}' "$U/slow/x")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$code" = 504 ] || fail "silent upstream: $code $(cat err.txt)"
[ "$ms" -ge 900 ] && [ "$ms" -lt 3000 ] || fail "504 after $ms ms (first_byte_timeout 1s)"
pass "a silent upstream: 504 after $ms ms ($(cat err.txt))"

code=$(curl "${C[@]}" -o /dev/null -w '%{http_code}' "$U/files/")
[ "$code" = 200 ] || fail "the file service next to the proxy: $code"
pass "other paths are still served by the file service"
echo "74-proxy: all passed"
