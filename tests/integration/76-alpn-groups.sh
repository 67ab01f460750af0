#!/usr/bin/env bash
# ALPN and key-exchange groups, as gRPC, curl and openssl see them:
# gRPC (python3-grpcio, whose C core insists on ALPN) over a TLS -> plain
# tunnel, over mutual TLS, and plain gRPC through plain -> TLS -> plain
# between two nodes; a tunnel whose list leaves out h2 refuses the client in
# words; an upstream that selects no protocol is refused; the HTTPS
# listener selects http/1.1 for curl with and without h2 on offer; the
# configured groups are what a handshake gets, an unknown one and DEFAULT
# are refused at start; /metrics counts both.
. "$(dirname "$0")/harness.sh"
GRPC="/usr/bin/python3 $(cd "$(dirname "$0")/../tools" && pwd)/grpc_echo.py"
/usr/bin/python3 -c 'import grpc' 2>/dev/null || fail "python3-grpcio is missing (make deps-test)"
cd "$T"

GP=$(free_port)
$GRPC serve "$GP" >grpc-server.log 2>&1 &
PIDS+=("$!")
wait_port "$GP" || fail "the gRPC server did not start"
$GRPC call "127.0.0.1:$GP" plain >/dev/null || fail "plain gRPC does not work even directly"

# ---- node B: tunnels that accept TLS in front of the plain gRPC server
H2=$(free_port); MU=$(free_port); NOLIST=$(free_port); H11=$(free_port); MB=$(free_port)
cat >b.yaml <<EOF
admin: { listen: "127.0.0.1:$MB" }
# grpcio offers P-256 alone; s_client is asked for others below
tls: { groups: [P-384, P-256, X25519] }
tunnels:
  - listen: 127.0.0.1:$H2
    connect: 127.0.0.1:$GP
    alpn: [h2]
  - listen: 127.0.0.1:$MU
    connect: 127.0.0.1:$GP
    mode: mutual
    alpn: [h2, http/1.1]
  - listen: 127.0.0.1:$NOLIST
    connect: 127.0.0.1:$GP
  - listen: 127.0.0.1:$H11
    connect: 127.0.0.1:$GP
    alpn: [http/1.1]
EOF
start_tlsgate B --config b.yaml
CA=$T/B/ca/ca.crt

out=$($GRPC call "127.0.0.1:$H2" tls "$CA" localhost) || fail "gRPC over TLS through the tunnel: $out"
pass "gRPC over TLS -> plain tunnel (alpn: [h2]): $(tr '\n' ' ' <<<"$out")"

"$TG_BIN" cert issue --client --name grpc-client --ca "$T/B/ca" --out client >/dev/null
out=$($GRPC call "127.0.0.1:$MU" tls "$CA" localhost client.crt client.key) ||
	fail "gRPC over mutual TLS: $out"
pass "gRPC over mutual TLS with a tlsgate client certificate: $(tr '\n' ' ' <<<"$out")"
out=$($GRPC call "127.0.0.1:$MU" tls "$CA" localhost 2>&1) && fail "mutual tunnel let a client without a certificate in"
pass "the mutual tunnel refuses gRPC without a client certificate"

out=$($GRPC call "127.0.0.1:$H11" tls "$CA" localhost 2>&1) && fail "a tunnel without h2 in its list served gRPC"
grep -q "no application protocol" <<<"$out" || fail "the client was not told no_application_protocol: $out"
wait_log "$T/B.log" "TLS handshake refused: the client offered ALPN .*h2; this tunnel accepts http/1.1 \(tunnels.3.alpn\)" 5 "B logs the refusal in words"
pass "a tunnel whose alpn leaves out h2 refuses the gRPC client (no_application_protocol), logged in words"
out=$($GRPC call "127.0.0.1:$NOLIST" tls "$CA" localhost 2>&1) && fail "gRPC worked with no ALPN selected"
wait_log "$T/B.log" "tunnel 2: clients offer ALPN \(.*h2\) and tunnels.2.alpn is not set" 5 "B hints that gRPC needs alpn: [h2]"
pass "without alpn no protocol is selected, and the log says what gRPC needs"

echo | openssl s_client -connect "127.0.0.1:$H2" -alpn "http/1.1,h2" -groups P-384 >sc.out 2>&1 || true
grep -q "^ALPN protocol: h2" sc.out || fail "s_client: tunnel did not select h2: $(grep -i alpn sc.out)"
grep -q "Server Temp Key: ECDH, secp384r1" sc.out || fail "tls.groups P-384 was not used: $(grep 'Temp Key' sc.out)"
echo | openssl s_client -connect "127.0.0.1:$H2" -groups X25519 >sc.out 2>&1 || true
grep -q "Server Temp Key: X25519" sc.out || fail "X25519, second in the list, was refused"
echo | openssl s_client -connect "127.0.0.1:$H2" -groups X448 >sc.out 2>&1 || true
grep -q "Server Temp Key" sc.out && fail "X448, not configured, was accepted: $(grep 'Temp Key' sc.out)"
pass "s_client sees the tunnel's ALPN choice (h2, server order) and tls.groups honoured (P-384 and X25519 taken, X448 refused)"

m=$(curl -sS "http://127.0.0.1:$MB/metrics")
grep -q "tlsgate_tunnel_alpn_total{tunnel=\"0\",protocol=\"h2\"} [1-9]" <<<"$m" || fail "no h2 count: $(grep tunnel_alpn <<<"$m")"
grep -q "tlsgate_tunnel_alpn_total{tunnel=\"3\",protocol=\"refused\"} [1-9]" <<<"$m" || fail "no refused count"
grep -q "tlsgate_tunnel_tls_groups_total{tunnel=\"0\",group=\"secp384r1\"} [1-9]" <<<"$m" || fail "no group count: $(grep tunnel_tls_groups <<<"$m" | grep -v ' 0$')"
pass "/metrics counts each tunnel's ALPN protocols and groups"

# ---- node A: plain -> TLS towards B, offering h2; plain gRPC end to end
AP=$(free_port); AX=$(free_port)
cat >a.yaml <<EOF
admin: { listen: off }
client: { ca: $CA }
tunnels:
  - listen: 127.0.0.1:$AP
    connect: 127.0.0.1:$H2
    tls_connect: true
    server_name: localhost
    alpn: [h2]
  - listen: 127.0.0.1:$AX
    connect: 127.0.0.1:$NOLIST
    tls_connect: true
    server_name: localhost
    alpn: [h2]
EOF
start_tlsgate A --config a.yaml
out=$($GRPC call "127.0.0.1:$AP" plain) || fail "plain gRPC through two nodes: $out"
pass "plain gRPC through plain -> TLS (A offers h2) -> plain (B selects h2): $(tr '\n' ' ' <<<"$out")"
out=$($GRPC call "127.0.0.1:$AX" plain 2>&1) && fail "an upstream that selected no protocol was used"
wait_log "$T/A.log" "upstream 127.0.0.1:$NOLIST selected no ALPN protocol; this tunnel offers h2 and needs one of them" 5 "A says in words that the upstream selected no protocol"
pass "a TLS upstream that selects none of the offered protocols is refused in words"

# ---- the HTTPS listener: http/1.1 to curl, whatever it offers
code=$(curl -sS --cacert "$CA" -o /dev/null -w '%{http_code} %{http_version}' "https://localhost:$PORT_B/files/")
[ "$code" = "200 1.1" ] || fail "curl (offering h2): $code"
code=$(curl -sS --http1.1 --cacert "$CA" -o /dev/null -w '%{http_code} %{http_version}' "https://localhost:$PORT_B/files/")
[ "$code" = "200 1.1" ] || fail "curl --http1.1: $code"
echo | openssl s_client -connect "127.0.0.1:$PORT_B" -alpn h2,http/1.1 >sc.out 2>&1 || true
grep -q "^ALPN protocol: http/1.1" sc.out || fail "s_client -alpn: $(grep -i alpn sc.out)"
echo | openssl s_client -connect "127.0.0.1:$PORT_B" -alpn h2 >sc.out 2>&1 || true
grep -q "no application protocol" sc.out || fail "an h2-only client was not refused: $(grep -i alpn sc.out)"
wait_log "$T/B.log" "TLS handshake refused: the client offered ALPN h2; this listener speaks http/1.1" 5 "the listener logs its refusal in words"
m=$(curl -sS "http://127.0.0.1:$MB/metrics")
grep -q 'tlsgate_alpn_total{listener="https",protocol="http/1.1"} [1-9]' <<<"$m" || fail "listener ALPN not counted"
grep -q 'tlsgate_alpn_total{listener="https",protocol="refused"} 1$' <<<"$m" || fail "listener refusal not counted"
grep -q 'tlsgate_tls_groups_total{listener="https",group="x25519"} [1-9]' <<<"$m" || fail "listener groups not counted: $(grep tls_groups <<<"$m" | grep -v ' 0$')"
pass "HTTPS listener: curl and curl --http1.1 get HTTP/1.1, s_client sees http/1.1, an h2-only client is refused in words, all counted"
# after a reload the context is a new one: its ALPN choice and count too
kill -HUP "$PID_B"
wait_log "$T/B.log" "SIGHUP: configuration and certificates reloaded" 5 "B reloaded"
echo | openssl s_client -connect "127.0.0.1:$PORT_B" -alpn h2 >sc.out 2>&1 || true
grep -q "no application protocol" sc.out || fail "after a reload an h2-only client was not refused"
m=$(curl -sS "http://127.0.0.1:$MB/metrics")
grep -q 'tlsgate_alpn_total{listener="https",protocol="refused"} 2$' <<<"$m" ||
	fail "the refusal after a reload was not counted: $(grep 'protocol="refused"' <<<"$m")"
pass "after SIGHUP the new context refuses and counts the same way"

# ---- groups: what start and doctor say, what is refused
if grep -q "key exchange: post-quantum key exchange on" "$T/B.log"; then
	fail "B configured P-384 first yet claims post-quantum"
fi
grep -q "key exchange: post-quantum key exchange off" "$T/B.log" || fail "no key exchange line at start"
out=$("$TG_BIN" serve --state-dir "$T/C" --listen 127.0.0.1:$(free_port) --set admin.listen=off \
	--set tls.groups=X25519,P-999 2>&1) && fail "an unknown group was accepted"
grep -q "tls.groups: unknown group 'P-999'; the groups this TLS library (OpenSSL .*) offers: .*X25519.*P-256" <<<"$out" ||
	fail "unknown group message: $out"
out=$("$TG_BIN" serve --state-dir "$T/C" --listen 127.0.0.1:$(free_port) --set admin.listen=off \
	--set tls.groups=DEFAULT 2>&1) && fail "DEFAULT was accepted"
grep -q "DEFAULT is not accepted in a group list" <<<"$out" || fail "DEFAULT message: $out"
pass "an unknown group and DEFAULT are refused at start, naming what the library offers"
if "$TG_BIN" doctor --state-dir "$T/C" >doc.out 2>&1; then :; fi
if openssl list -kem-algorithms 2>/dev/null | grep -qi mlkem; then
	grep -q "ok: tls.groups: post-quantum key exchange on (X25519MLKEM768 first)" doc.out || fail "doctor: $(grep groups doc.out)"
	"$TG_BIN" serve --state-dir "$T/D" --listen 127.0.0.1:$(free_port) --set admin.listen=off >D.log 2>&1 &
	PIDS+=("$!")
	wait_log "$T/D.log" "key exchange: post-quantum key exchange on" 5 "post-quantum key exchange on by default"
	pass "OpenSSL with ML-KEM: post-quantum key exchange on by default"
else
	grep -q "ok: tls.groups: post-quantum key exchange off: OpenSSL .* has no X25519MLKEM768" doc.out ||
		fail "doctor does not say why post-quantum is off: $(grep groups doc.out)"
	pass "doctor says post-quantum key exchange is off and why ($(openssl version))"
fi
