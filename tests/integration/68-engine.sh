#!/usr/bin/env bash
# The engine's shortcuts must not change what a client is told or allowed:
# a returning client certificate skips chain building (verified-chain cache)
# but is still judged; tickets survive a reload in server mode and are
# judged again in mutual mode (a client removed from the known file cannot
# come back on its ticket); pipelined requests over TLS with read-ahead are
# all answered.
. "$(dirname "$0")/harness.sh"
cd "$T"
"$TG_BIN" ca init --dir ca >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost --ca ca --out srv >/dev/null
"$TG_BIN" cert issue --client --name dev1 --ca ca --out c1 >/dev/null
"$TG_BIN" cert issue --client --name dev2 --ca ca --out c2 >/dev/null
mkdir -p www; printf 'hello\n' >www/ok; head -c 200000 /dev/urandom >www/big.bin

AP=$(free_port)
start_tlsgate m --mode mutual --cert srv.crt --key srv.key --set tls.clients.ca=ca/ca.crt \
	--set tls.clients.trust=whitelist --set "admin.listen=127.0.0.1:$AP" \
	--set files.root="$T/www" --set files.prefix=/
metric() { curl -sS "http://127.0.0.1:$AP/metrics" | awk -v k="$1" 'index($0, k) == 1 { print $NF }'; }
KC=$T/m/known-clients
"$TG_BIN" trust add --store known-clients --cert c1.crt --file "$KC" 2>/dev/null || fail "trust add dev1"
"$TG_BIN" trust add --store known-clients --cert c2.crt --file "$KC" 2>/dev/null || fail "trust add dev2"

# 1. verified-chain cache: the first handshake of a chain misses, the next hit
h0=$(metric 'tlsgate_chain_cache_lookups_total{result="hit"}')
m0=$(metric 'tlsgate_chain_cache_lookups_total{result="miss"}')
for i in 1 2 3; do
	[ "$(curl -sS --cacert ca/ca.crt --cert c1.crt --key c1.key "https://localhost:$PORT_m/ok")" = hello ] \
		|| fail "dev1 request $i"
done
h1=$(metric 'tlsgate_chain_cache_lookups_total{result="hit"}')
m1=$(metric 'tlsgate_chain_cache_lookups_total{result="miss"}')
[ $((m1 - m0)) = 1 ] && [ $((h1 - h0)) = 2 ] || fail "chain cache: misses +$((m1 - m0)) hits +$((h1 - h0)), want +1 +2"
pass "a returning client chain is served from the verified-chain cache (1 miss, 2 hits)"

# ... and the cache does not decide: dev2 removed from the whitelist is refused
# although its chain verified before
curl -sS --cacert ca/ca.crt --cert c2.crt --key c2.key "https://localhost:$PORT_m/ok" >/dev/null \
	|| fail "dev2 first request"
"$TG_BIN" trust remove --file "$KC" dev2 2>/dev/null || fail "trust remove dev2"
curl -sS --cacert ca/ca.crt --cert c2.crt --key c2.key "https://localhost:$PORT_m/ok" >/dev/null 2>&1 \
	&& fail "dev2 accepted after its removal (cached chain decided?)"
assert_log "$T/m.log" "refused client certificate: dev2 is not in .*known-clients" \
	"a cached chain is still judged: dev2 refused after trust remove"

# 2. mutual tickets are judged again when they come back
rm -f s1.pem s2.pem
get() {   # EXTRA s_client args: one HTTP/1.0 request for /ok
	printf 'GET /ok HTTP/1.0\r\n\r\n' | openssl s_client -connect "127.0.0.1:$PORT_m" -ign_eof "$@" 2>/dev/null
}
"$TG_BIN" trust add --store known-clients --cert c2.crt --file "$KC" 2>/dev/null || fail "trust add dev2 again"
get -cert c1.crt -key c1.key -sess_out s1.pem | grep -q '^hello' || fail "dev1 over s_client"
get -cert c2.crt -key c2.key -sess_out s2.pem | grep -q '^hello' || fail "dev2 over s_client"
r0=$(metric 'tlsgate_handshakes_resumed_total')
out=$(get -sess_in s1.pem)
echo "$out" | grep -q '^Reused' && echo "$out" | grep -q '^hello' || fail "dev1 did not resume: $out"
[ $(( $(metric 'tlsgate_handshakes_resumed_total') - r0 )) = 1 ] || fail "resumption not counted"
pass "mutual: a known client resumes on its ticket without sending its certificate again"
"$TG_BIN" trust remove --file "$KC" dev2 2>/dev/null || fail "trust remove dev2"
out=$(get -sess_in s2.pem || true)
echo "$out" | grep -q '^hello' && fail "dev2 came back on its ticket after its removal: $out"
echo "$out" | grep -q '^Reused' && fail "the removed client's ticket was accepted: $out"
pass "mutual: the ticket of a removed client is not accepted (full handshake, no certificate, refused)"

# a reload makes a new mutual context: old mutual sessions do not resume there
kill -HUP "$PID_m"; wait_log "$T/m.log" "reloaded" 10 "mutual server reloaded" || fail "no reload"
out=$(get -sess_in s1.pem -cert c1.crt -key c1.key || true)
echo "$out" | grep -q '^New' && echo "$out" | grep -q '^hello' || fail "after reload: $out"
pass "mutual: after a reload the old ticket is not resumed (full handshake, certificate judged)"

# 3. server mode: tickets survive a reload (shared rotating keys)
start_tlsgate s --mode server --cert srv.crt --key srv.key --set files.root="$T/www" --set files.prefix=/
rm -f s3.pem
printf 'GET /ok HTTP/1.0\r\n\r\n' | openssl s_client -connect "127.0.0.1:$PORT_s" -ign_eof -sess_out s3.pem \
	2>/dev/null | grep -q '^hello' || fail "server mode first request"
kill -HUP "$PID_s"; wait_log "$T/s.log" "reloaded" 10 "server-mode server reloaded" || fail "no reload (s)"
out=$(printf 'GET /ok HTTP/1.0\r\n\r\n' | openssl s_client -connect "127.0.0.1:$PORT_s" -ign_eof -sess_in s3.pem 2>/dev/null)
echo "$out" | grep -q '^Reused' && echo "$out" | grep -q '^hello' || fail "server mode ticket after reload: $out"
pass "server mode: a ticket from before a reload still resumes"

# 4. pipelined requests in one TLS write (read-ahead keeps them) all answered,
out=$(printf 'GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' |
	openssl s_client -connect "127.0.0.1:$PORT_s" -quiet -ign_eof 2>/dev/null | wc -c)
[ "$out" -gt 200000 ] || fail "pipelined requests: $out bytes back"
n=$(printf 'GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' |
	openssl s_client -connect "127.0.0.1:$PORT_s" -quiet -ign_eof 2>/dev/null | grep -c '^hello')
[ "$n" = 2 ] || fail "pipelined requests: $n answers"
big=$(curl -sS --cacert ca/ca.crt "https://localhost:$PORT_s/big.bin" | sha256sum | cut -d' ' -f1)
[ "$big" = "$(sha www/big.bin)" ] || fail "big.bin differs"
pass "pipelined requests over TLS all answered; a 200 kB file arrives whole"
