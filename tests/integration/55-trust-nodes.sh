#!/usr/bin/env bash
# Node to node, as Orion documents it by hand: two nodes start with
# insecure-no-validation both ways and exchange requests while their known
# files fill in; both switch to whitelist, restart, and still talk; a third,
# never seen, is refused by both with a clear reason. No certificate command
# is run: each node makes its own server and client certificate.
. "$(dirname "$0")/harness.sh"
cd "$T"
echo "x" >x.txt

node() {   # NAME TRUST: start node NAME with both directions in mode TRUST
	start_tlsgate "$1" --mode mutual --set tls.auto=self-signed --set "tls.names=node-$1" \
		--set "tls.clients.trust=$2"
}
call() {   # FROM TO TRUST [extra]: FROM puts a file to TO
	local to_port_var="PORT_$2"
	"$TG_BIN" put "https://localhost:${!to_port_var}/files/from-$1.txt" x.txt --state-dir "$T/$1" \
		--trust "$3" "${@:4}"
}

node a insecure-no-validation
node b insecure-no-validation
call a b insecure-no-validation 2>a.err || fail "a -> b (insecure)"
call b a insecure-no-validation 2>b.err || fail "b -> a (insecure)"
grep -q "WARNING" a.err || fail "no warning on the client for insecure-no-validation"
assert_log "$T/b.log" "client node-a accepted WITHOUT VALIDATION" "the server warns on insecure-no-validation"
grep -q "^node-a sha256:" "$T/b/known-clients" || fail "b did not record a as a client"
grep -q "^node-b sha256:" "$T/a/known-clients" || fail "a did not record b as a client"
grep -q "^localhost:$PORT_b sha256:" "$T/a/known-servers" || fail "a did not record b as a server"
grep -q "^localhost:$PORT_a sha256:" "$T/b/known-servers" || fail "b did not record a as a server"
pass "phase 1: insecure-no-validation both ways; the known files fill in"

# phase 2: whitelist, after a restart on the same ports
pa=$PORT_a; pb=$PORT_b
stop_pid "$PID_a"; stop_pid "$PID_b"
restart() {   # NAME PORT
	"$TG_BIN" serve --state-dir "$T/$1" --listen "127.0.0.1:$2" --mode mutual --set tls.auto=self-signed \
		--set "tls.names=node-$1" --set tls.clients.trust=whitelist >>"$T/$1.log" 2>&1 &
	PIDS+=("$!")
	wait_port "$2" 10 || fail "restart $1"
}
restart a "$pa"; restart b "$pb"
call a b whitelist 2>/dev/null || fail "a -> b (whitelist)"
call b a whitelist 2>/dev/null || fail "b -> a (whitelist)"
pass "phase 2: whitelist both ways after a restart; still talking"

# a third node, never seen
node c whitelist
expect_fail "c -> a refused (c's view)" "the server rejected|closed|requires|not trusted|does not trust" \
	call c a whitelist
call c a insecure-no-validation 2>/dev/null && fail "a accepted the unknown client node-c"
assert_log "$T/a.log" "refused client certificate: node-c is not in .*known-clients \(trust whitelist" \
	"a refuses c, naming the identity and the file"
assert_log "$T/b.log" "." "b is up"
call c b insecure-no-validation 2>/dev/null && fail "b accepted the unknown client node-c"
assert_log "$T/b.log" "refused client certificate: node-c is not in .*known-clients" "b refuses c"
expect_fail "a's client refuses the unknown server c" "is not trusted: localhost:[0-9]+ is not in .*known-servers \(trust whitelist" \
	call a c whitelist
expect_fail "b's client refuses the unknown server c" "localhost:[0-9]+ is not in .*known-servers" \
	call b c whitelist
pass "a third node is refused by both, in both directions, with the reason"
echo "55-trust-nodes: all passed"
