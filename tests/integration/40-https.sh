#!/usr/bin/env bash
# HTTPS: the zero-config start and its printed curl line, certificates from
# files, tlsgate get/put with --server-name, and client errors in words.
. "$(dirname "$0")/harness.sh"
cd "$T"

# --- zero config: nothing but where to keep state (so the test does not
# write /var/lib/tlsgate when run as root)
start=$(date +%s%N)
TLSGATE_STATE_DIR="$T/zc" "$TG_BIN" serve >"$T/zc.log" 2>&1 &
PIDS+=("$!"); zpid=$!
wait_port 8443 10 || fail "zero-config server did not listen on 8443"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
limit=1000; [ "${TG_SANITIZE:-OFF}" = ON ] && limit=4000
[ "$ms" -lt "$limit" ] || fail "zero-config start took $ms ms"
pass "zero-config start in $ms ms"
[ "$(stat -c %a "$T/zc/ca/ca.key")" = 600 ] || fail "CA key mode"
[ "$(stat -c %a "$T/zc/certs/server.key")" = 600 ] || fail "server key mode"
line=$(grep -o 'curl --cacert .*' "$T/zc.log") || fail "no curl line printed"
echo "hello from zero config" >hello.txt
eval "$line" >put.out || fail "the printed line failed: $line"
cmp -s hello.txt "$T/zc/files/hello.txt" || fail "upload via printed line"
pass "printed line works: $line"
# names: localhost, 127.0.0.1, ::1 all verify
for h in localhost 127.0.0.1 "[::1]"; do
	curl -sS --cacert "$T/zc/ca/ca.crt" "https://$h:8443/files/hello.txt" | grep -q "zero config" \
		|| fail "https://$h:8443 did not verify"
done
pass "the automatic certificate covers localhost, 127.0.0.1 and ::1"
# TLS policy: no TLS 1.1, no CBC suites
openssl s_client -connect 127.0.0.1:8443 -tls1_1 </dev/null >/dev/null 2>&1 && fail "TLS 1.1 accepted"
openssl s_client -connect 127.0.0.1:8443 -tls1_2 -cipher AES128-SHA </dev/null >/dev/null 2>&1 && fail "CBC accepted"
openssl s_client -connect 127.0.0.1:8443 -tls1_2 </dev/null 2>/dev/null | grep -q "Cipher is ECDHE" \
	|| fail "TLS 1.2 without ECDHE"
pass "TLS 1.1 and CBC refused; TLS 1.2 uses ECDHE"
# a restart reuses the CA and the certificate
pin1=$("$TG_BIN" cert show "$T/zc/certs/server.crt" | grep -m1 pin:)
stop_pid "$zpid"
TLSGATE_STATE_DIR="$T/zc" "$TG_BIN" serve >"$T/zc2.log" 2>&1 &
PIDS+=("$!"); zpid=$!
wait_port 8443 10 || fail "restart"
pin2=$("$TG_BIN" cert show "$T/zc/certs/server.crt" | grep -m1 pin:)
[ "$pin1" = "$pin2" ] || fail "restart made a new certificate"
grep -q "(new)" "$T/zc2.log" && fail "restart made a new CA"
stop_pid "$zpid"
pass "restart reuses the CA and certificate"

# --- self-signed: the printed line trusts the certificate itself
start_tlsgate ss --set tls.auto=self-signed
line=$(grep -o 'curl --cacert .*' "$T/ss.log") || fail "no curl line for self-signed"
eval "${line/8443/$PORT_ss}" >/dev/null || fail "self-signed line failed: $line"
openssl x509 -in "$T/ss/certs/self-signed.crt" -noout -issuer -subject | uniq -f1 | grep -q . || fail "self-signed"
[ ! -e "$T/ss/ca" ] || fail "self-signed mode made a CA"
pass "tls.auto self-signed"

# --- certificate from files, with a name that is not the dialled address
"$TG_BIN" ca init --dir ca >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost --ca ca --out srv >/dev/null
start_tlsgate s --cert srv.crt --key srv.key
U="https://127.0.0.1:$PORT_s/files"
expect_fail "address not in the certificate" "name 127.0.0.1 is not in the certificate's names \(dns:localhost\); use --server-name" \
	"$TG_BIN" put "$U/a.txt" hello.txt --ca-cert ca/ca.crt
"$TG_BIN" put "$U/a.txt" hello.txt --ca-cert ca/ca.crt --server-name localhost 2>/dev/null || fail "put --server-name"
"$TG_BIN" get "$U/a.txt" --ca-cert ca/ca.crt --server-name localhost -o got.txt || fail "get --server-name"
cmp -s hello.txt got.txt || fail "get content"
[ "$("$TG_BIN" get "https://localhost:$PORT_s/files/a.txt" --ca-cert ca/ca.crt)" = "hello from zero config" ] \
	|| fail "get to stdout"
pass "tlsgate put/get with --server-name"
"$TG_BIN" ca init --dir other >/dev/null
expect_fail "unknown CA" "chain ends at the CA .*tlsgate local CA.*not a trusted CA" \
	"$TG_BIN" get "https://localhost:$PORT_s/files/a.txt" --ca-cert other/ca.crt
expect_fail "404 in words" "answered 404 Not Found: no such file" \
	"$TG_BIN" get "https://localhost:$PORT_s/files/none.txt" --ca-cert ca/ca.crt -o never.txt
[ ! -e never.txt ] || fail "a failed download left a file"
ls never.txt.* >/dev/null 2>&1 && fail "a failed download left a partial file"
start_tlsgate p --mode off
expect_fail "TLS to a plain port" "does not speak TLS" \
	"$TG_BIN" get "https://localhost:$PORT_p/files/a.txt" --ca-cert ca/ca.crt
expect_fail "nothing listening" "cannot connect to 127.0.0.1 port 1: Connection refused" \
	"$TG_BIN" get "https://127.0.0.1:1/x"
# cert show / check against the live server
"$TG_BIN" cert show "127.0.0.1:$PORT_s" --ca-cert ca/ca.crt --server-name localhost | grep -q "verdict: trusted" \
	|| fail "cert show HOST:PORT"
"$TG_BIN" cert check "127.0.0.1:$PORT_s" --ca-cert ca/ca.crt --server-name localhost >/dev/null || fail "check live"
"$TG_BIN" cert check "127.0.0.1:$PORT_s" --ca-cert ca/ca.crt >/dev/null && fail "check live without the name passed"
pass "cert show/check HOST:PORT"
# a client that never finishes the handshake is dropped
start_tlsgate h --set timeouts.handshake=1s
t0=$(date +%s%N)
timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT_h; cat <&3 >/dev/null" || fail "silent client not dropped"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -ge 900 ] && [ "$ms" -lt 3000 ] || fail "handshake timeout after $ms ms"
pass "a silent TLS client is dropped after timeouts.handshake ($ms ms)"
echo "40-https: all passed"
